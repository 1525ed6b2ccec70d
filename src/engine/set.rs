//! Sets: the value (an intset, sorted; a listpack, in insertion order; or a B-tree in scan
//! order, with Redis 7.2's conversion rules and `set-max-*` thresholds) and the set commands
//! that change one key, over [`Store::read`] and [`Store::update`].

use std::sync::Arc;

use imbl::OrdSet;

use super::compact::CompactBytes;
use super::entry::{Entry, Write};
use super::member::{self, From, Member, Named};
use super::ops::{StoreError, parse_integer};
use super::store::Store;
use super::value::{EncodingLimits, Value, store_collection};

/// Bytes charged per member beyond its own: its handle and its share of a B-tree node.
const MEMBER_OVERHEAD: usize = 40;

/// A set value. Immutable once stored: a write builds the next version from a clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    repr: Repr,
    /// The bytes of every member (as text), for the memory accounting.
    payload: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Intset(Vec<i64>),
    Listpack(Vec<CompactBytes>),
    Table(OrdSet<Member>),
}

fn integer_text(n: i64) -> CompactBytes {
    CompactBytes::from(itoa::Buffer::new().format(n))
}

impl Set {
    fn new() -> Self {
        Set { repr: Repr::Intset(Vec::new()), payload: 0 }
    }

    /// A set of `members` (duplicates count once), encoded as adding them one by one would.
    pub fn from_members(members: impl IntoIterator<Item = impl AsRef<[u8]>>, limits: &EncodingLimits) -> Self {
        let mut set = Set::new();
        for member in members {
            set.insert(member.as_ref(), limits);
        }
        set
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Intset(numbers) => numbers.len(),
            Repr::Listpack(members) => members.len(),
            Repr::Table(members) => members.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Intset(numbers) => parse_integer(member).is_some_and(|n| numbers.binary_search(&n).is_ok()),
            Repr::Listpack(members) => members.iter().any(|m| &m[..] == member),
            Repr::Table(members) => members.contains(&Named(member)),
        }
    }

    /// Every member: ascending for an intset, in insertion order for a listpack, in scan
    /// order otherwise.
    pub fn members(&self) -> Vec<CompactBytes> {
        match &self.repr {
            Repr::Intset(numbers) => numbers.iter().map(|&n| integer_text(n)).collect(),
            Repr::Listpack(members) => members.clone(),
            Repr::Table(members) => members.iter().map(|m| m.0.clone()).collect(),
        }
    }

    /// Calls `f` with every member, in the order of [`Set::members`], until it fails: a walk
    /// that copies nothing (the AOF rewrite and the RDB writer stream with it).
    pub fn try_for_each<E>(&self, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        match &self.repr {
            Repr::Intset(numbers) => {
                let mut text = itoa::Buffer::new();
                numbers.iter().try_for_each(|&n| f(text.format(n).as_bytes()))
            }
            Repr::Listpack(members) => members.iter().try_for_each(|member| f(member)),
            Repr::Table(members) => members.iter().try_for_each(|member| f(&member.0)),
        }
    }

    /// A member picked at random: uniformly for the compact encodings; for a B-tree, the
    /// first member at or after a random scan position (O(log n)).
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        use rand::RngExt;
        if self.is_empty() {
            return None;
        }
        match &self.repr {
            Repr::Intset(numbers) => Some(integer_text(numbers[rng.random_range(0..numbers.len())])),
            Repr::Listpack(members) => Some(members[rng.random_range(0..members.len())].clone()),
            Repr::Table(members) => {
                members.range(From(rng.random())..).next().or_else(|| members.iter().next()).map(|m| m.0.clone())
            }
        }
    }

    /// One SSCAN step from `cursor`: about `count` members (the compact encodings, all of
    /// them, as Redis does) and the next cursor, 0 at the end (see `member.rs`).
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8])) -> u64 {
        match &self.repr {
            Repr::Intset(numbers) => {
                numbers.iter().for_each(|&n| visit(itoa::Buffer::new().format(n).as_bytes()));
                0
            }
            Repr::Listpack(members) => {
                members.iter().for_each(|m| visit(m));
                0
            }
            Repr::Table(members) => {
                member::walk(members.range(From(cursor)..).map(|m| (m, ())), count, |m, ()| visit(&m.0))
            }
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Intset(_) => "intset",
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub(crate) fn memory(&self) -> usize {
        self.payload + self.len() * MEMBER_OVERHEAD
    }

    /// Adds `member`; whether it is new. Converts as Redis 7.2 does: an intset takes
    /// integers up to `set-max-intset-entries`; past that, or on a non-integer, the set
    /// becomes a listpack if it fits `set-max-listpack-*`, else a B-tree.
    pub(crate) fn insert(&mut self, member: &[u8], limits: &EncodingLimits) -> bool {
        if self.contains(member) {
            return false;
        }
        let grown = self.len() + 1;
        let fits_listpack = grown <= limits.set_max_listpack_entries && member.len() <= limits.set_max_listpack_value;
        match &mut self.repr {
            Repr::Intset(numbers) => match parse_integer(member) {
                Some(n) if grown <= limits.set_max_intset_entries => {
                    let at = numbers.binary_search(&n).unwrap_or_else(|at| at);
                    numbers.insert(at, n);
                }
                _ => {
                    let mut members: Vec<CompactBytes> = numbers.iter().map(|&n| integer_text(n)).collect();
                    members.push(CompactBytes::from(member));
                    let fits = fits_listpack && members.iter().all(|m| m.len() <= limits.set_max_listpack_value);
                    self.repr = if fits {
                        Repr::Listpack(members)
                    } else {
                        Repr::Table(members.into_iter().map(Member).collect())
                    };
                }
            },
            Repr::Listpack(members) if fits_listpack => members.push(CompactBytes::from(member)),
            Repr::Listpack(members) => {
                let mut table: OrdSet<Member> = members.drain(..).map(Member).collect();
                table.insert(Member(CompactBytes::from(member)));
                self.repr = Repr::Table(table);
            }
            Repr::Table(members) => {
                members.insert(Member(CompactBytes::from(member)));
            }
        }
        self.payload += member.len();
        true
    }

    /// Removes `member`; whether it was there.
    pub(crate) fn remove(&mut self, member: &[u8]) -> bool {
        let removed = match &mut self.repr {
            Repr::Intset(numbers) => match parse_integer(member).map(|n| numbers.binary_search(&n)) {
                Some(Ok(at)) => {
                    numbers.remove(at);
                    true
                }
                _ => false,
            },
            Repr::Listpack(members) => match members.iter().position(|m| &m[..] == member) {
                Some(at) => {
                    members.remove(at);
                    true
                }
                None => false,
            },
            Repr::Table(members) => members.remove(&Named(member)).is_some(),
        };
        if removed {
            self.payload -= member.len();
        }
        removed
    }
}

/// The set under a live entry; WRONGTYPE for another type.
pub(crate) fn set_of(entry: Option<&Entry>) -> Result<Option<&Arc<Set>>, StoreError> {
    match entry.map(|entry| &entry.value) {
        None => Ok(None),
        Some(Value::Set(set)) => Ok(Some(set)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// See [`store_collection`].
fn store_set(entry: Option<&Entry>, set: Set) -> Write {
    store_collection(entry, Value::Set(Arc::new(set)))
}

impl Store {
    /// The set under `key` as it is now: a version no later write changes, to iterate with
    /// no lock held (SMEMBERS, SSCAN, SRANDMEMBER, SINTER and the other set algebra).
    pub fn set_value(&self, key: &[u8]) -> Result<Option<Arc<Set>>, StoreError> {
        self.read(key, |entry| set_of(entry).map(Option::<&Arc<Set>>::cloned))
    }

    /// Calls `f` with the set under `key` while it is read, for short reads (SISMEMBER).
    pub fn read_set<R>(&self, key: &[u8], f: impl FnOnce(Option<&Set>) -> R) -> Result<R, StoreError> {
        self.read(key, |entry| set_of(entry).map(|set| f(set.map(|s| &**s))))
    }

    /// SADD: adds the members and returns how many are new.
    pub fn sadd(&self, key: &[u8], members: &[&[u8]]) -> Result<usize, StoreError> {
        let limits = self.encoding_limits();
        self.update(key, |current| {
            let set = match set_of(current) {
                Ok(set) => set,
                Err(error) => return (Write::Keep, Err(error)),
            };
            if set.is_some_and(|set| members.iter().all(|m| set.contains(m))) {
                return (Write::Keep, Ok(0));
            }
            let mut set = set.map_or_else(Set::new, |s| (**s).clone());
            let added = members.iter().filter(|m| set.insert(m, &limits)).count();
            (store_set(current, set), Ok(added))
        })
    }

    /// SREM: removes the members and returns how many were there; the key goes with its last
    /// member.
    pub fn srem(&self, key: &[u8], members: &[&[u8]]) -> Result<usize, StoreError> {
        self.update(key, |current| {
            let set = match set_of(current) {
                Ok(Some(set)) => set,
                Ok(None) => return (Write::Keep, Ok(0)),
                Err(error) => return (Write::Keep, Err(error)),
            };
            if !members.iter().any(|m| set.contains(m)) {
                return (Write::Keep, Ok(0));
            }
            let mut set = (**set).clone();
            let removed = members.iter().filter(|m| set.remove(m)).count();
            (store_set(current, set), Ok(removed))
        })
    }

    /// SPOP: removes up to `count` members picked at random and returns them.
    pub fn spop(&self, key: &[u8], count: usize) -> Result<Vec<CompactBytes>, StoreError> {
        self.update(key, |current| {
            let set = match set_of(current) {
                Ok(Some(set)) => set,
                Ok(None) => return (Write::Keep, Ok(Vec::new())),
                Err(error) => return (Write::Keep, Err(error)),
            };
            if count >= set.len() {
                return (Write::Remove, Ok(set.members()));
            }
            let mut rng = rand::rng();
            let mut set = (**set).clone();
            let mut popped = Vec::with_capacity(count);
            while popped.len() < count
                && let Some(member) = set.random(&mut rng)
            {
                set.remove(&member);
                popped.push(member);
            }
            (store_set(current, set), Ok(popped))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding_after(members: &[&str]) -> &'static str {
        Set::from_members(members.iter().map(|m| m.as_bytes()), &EncodingLimits::default()).encoding()
    }

    #[test]
    fn sets_convert_as_redis_7_2_does() {
        assert_eq!(encoding_after(&["1", "2", "-3"]), "intset");
        assert_eq!(encoding_after(&["1", "two"]), "listpack");
        assert_eq!(encoding_after(&["01"]), "listpack");
        let long = "x".repeat(65);
        assert_eq!(encoding_after(&["1", &long]), "hashtable");
        let many: Vec<String> = (0..513).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(encoding_after(&many[..512]), "intset");
        assert_eq!(encoding_after(&many), "hashtable");
    }

    #[test]
    fn an_intset_stays_sorted_and_answers_by_value() {
        let mut set = Set::from_members([&b"5"[..], b"-2", b"10"], &EncodingLimits::default());
        assert_eq!(set.members(), [&b"-2"[..], b"5", b"10"].map(CompactBytes::from));
        assert!(set.contains(b"10") && !set.contains(b"010"));
        assert!(set.remove(b"5") && !set.remove(b"5"));
        assert_eq!(set.payload, "-2".len() + "10".len());
    }
}
