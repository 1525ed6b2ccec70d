//! Hashes: the value (a listpack of pairs in insertion order, or a B-tree in scan order once
//! it outgrows `hash-max-listpack-*`) and the hash commands over [`Store::read`] and
//! [`Store::update`], like every command in `ops.rs`.

use std::sync::Arc;

use imbl::OrdMap;

use super::compact::CompactBytes;
use super::entry::{Entry, Write};
use super::float::{self, Float, parse_float};
use super::member::{self, From, Member, Named};
use super::ops::{StoreError, parse_integer};
use super::store::Store;
use super::value::{EncodingLimits, Value, store_collection};

/// Bytes charged per field beyond its field's and value's bytes: the two handles and the
/// share of a B-tree node (the listpack's entries cost less, but are charged alike so that a
/// conversion does not move the accounting).
const FIELD_OVERHEAD: usize = 64;

/// A hash value. Immutable once stored: a write builds the next version from a clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hash {
    repr: Repr,
    /// The bytes of every field and value, for the memory accounting.
    payload: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Listpack(Vec<(CompactBytes, CompactBytes)>),
    Table(OrdMap<Member, CompactBytes>),
}

impl Hash {
    fn new() -> Self {
        Hash { repr: Repr::Listpack(Vec::new()), payload: 0 }
    }

    /// A hash of `pairs` (a repeated field keeps its last value), encoded as setting them one
    /// by one would.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        limits: &EncodingLimits,
    ) -> Self {
        let mut hash = Hash::new();
        for (field, value) in pairs {
            hash.insert(field.as_ref(), CompactBytes::from(value.as_ref()), limits);
        }
        hash
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(pairs) => pairs.len(),
            Repr::Table(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&CompactBytes> {
        match &self.repr {
            Repr::Listpack(pairs) => pairs.iter().find(|(f, _)| &f[..] == field).map(|(_, v)| v),
            Repr::Table(map) => map.get(&Named(field)),
        }
    }

    /// Every field and value: in insertion order for a listpack, in scan order otherwise.
    pub fn pairs(&self) -> Vec<(CompactBytes, CompactBytes)> {
        match &self.repr {
            Repr::Listpack(pairs) => pairs.clone(),
            Repr::Table(map) => map.iter().map(|(f, v)| (f.0.clone(), v.clone())).collect(),
        }
    }

    /// Calls `f` with every field and value, in the order of [`Hash::pairs`], until it fails:
    /// a walk that copies nothing (the AOF rewrite and the RDB writer stream with it).
    pub fn try_for_each<E>(&self, mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>) -> Result<(), E> {
        match &self.repr {
            Repr::Listpack(pairs) => pairs.iter().try_for_each(|(field, value)| f(field, value)),
            Repr::Table(map) => map.iter().try_for_each(|(field, value)| f(&field.0, value)),
        }
    }

    /// A pair picked at random: uniformly for a listpack; for a B-tree, the first pair at or
    /// after a random scan position (O(log n), as fair as Redis's bucket sampling).
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<(&CompactBytes, &CompactBytes)> {
        use rand::RngExt;
        match &self.repr {
            Repr::Listpack(pairs) if pairs.is_empty() => None,
            Repr::Listpack(pairs) => pairs.get(rng.random_range(0..pairs.len())).map(|(f, v)| (f, v)),
            Repr::Table(map) => {
                let (f, v) = map.range(From(rng.random())..).next().or_else(|| map.iter().next())?;
                Some((&f.0, v))
            }
        }
    }

    /// One HSCAN step from `cursor`: visits about `count` pairs (a listpack, all of them, as
    /// Redis does) and returns the next cursor, 0 at the end (see `member.rs`).
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&CompactBytes, &CompactBytes)) -> u64 {
        match &self.repr {
            Repr::Listpack(pairs) => {
                pairs.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Repr::Table(map) => member::walk(map.range(From(cursor)..), count, |f, v| visit(&f.0, v)),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub(crate) fn memory(&self) -> usize {
        self.payload + self.len() * FIELD_OVERHEAD
    }

    /// Sets `field` to `value`; whether the field is new. Converts to the B-tree when the
    /// listpack would exceed `limits`.
    fn insert(&mut self, field: &[u8], value: CompactBytes, limits: &EncodingLimits) -> bool {
        let fits = |pairs: &Vec<(CompactBytes, CompactBytes)>| {
            field.len() <= limits.hash_max_listpack_value && value.len() <= limits.hash_max_listpack_value && {
                let adds = usize::from(!pairs.iter().any(|(f, _)| &f[..] == field));
                pairs.len() + adds <= limits.hash_max_listpack_entries
            }
        };
        if let Repr::Listpack(pairs) = &self.repr
            && !fits(pairs)
        {
            let table = pairs.iter().map(|(f, v)| (Member(f.clone()), v.clone())).collect();
            self.repr = Repr::Table(table);
        }
        let added = value.len();
        let replaced = match &mut self.repr {
            Repr::Listpack(pairs) => match pairs.iter_mut().find(|(f, _)| &f[..] == field) {
                Some((_, old)) => Some(std::mem::replace(old, value)),
                None => {
                    pairs.push((CompactBytes::from(field), value));
                    None
                }
            },
            Repr::Table(map) => map.insert(Member(CompactBytes::from(field)), value),
        };
        match replaced {
            Some(old) => {
                self.payload = self.payload + added - old.len();
                false
            }
            None => {
                self.payload += field.len() + added;
                true
            }
        }
    }

    /// Removes `field`; whether it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        let removed = match &mut self.repr {
            Repr::Listpack(pairs) => pairs.iter().position(|(f, _)| &f[..] == field).map(|index| pairs.remove(index).1),
            Repr::Table(map) => map.remove(&Named(field)),
        };
        removed.inspect(|value| self.payload -= field.len() + value.len()).is_some()
    }
}

/// The hash under a live entry; WRONGTYPE for another type.
fn hash_of(entry: Option<&Entry>) -> Result<Option<&Arc<Hash>>, StoreError> {
    match entry.map(|entry| &entry.value) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// See [`store_collection`].
fn store_hash(entry: Option<&Entry>, hash: Hash) -> Write {
    store_collection(entry, Value::Hash(Arc::new(hash)))
}

impl Store {
    /// The hash under `key` as it is now: a version no later write changes, to iterate with
    /// no lock held (HGETALL, HKEYS, HVALS, HSCAN, HRANDFIELD).
    pub fn hash(&self, key: &[u8]) -> Result<Option<Arc<Hash>>, StoreError> {
        self.read(key, |entry| hash_of(entry).map(Option::<&Arc<Hash>>::cloned))
    }

    /// Calls `f` with the hash under `key` while it is read, for short reads (HGET, HLEN).
    pub fn read_hash<R>(&self, key: &[u8], f: impl FnOnce(Option<&Hash>) -> R) -> Result<R, StoreError> {
        self.read(key, |entry| hash_of(entry).map(|hash| f(hash.map(|h| &**h))))
    }

    /// HSET / HMSET: sets every pair (a field named twice takes its last value) and returns
    /// how many fields are new.
    pub fn hset(&self, key: &[u8], pairs: &[(&[u8], &[u8])]) -> Result<usize, StoreError> {
        let limits = self.encoding_limits();
        let values: Vec<CompactBytes> = pairs.iter().map(|(_, value)| CompactBytes::from(*value)).collect();
        self.update(key, |current| {
            let mut hash = match hash_of(current) {
                Ok(hash) => hash.map_or_else(Hash::new, |h| (**h).clone()),
                Err(error) => return (Write::Keep, Err(error)),
            };
            let mut added = 0;
            for ((field, _), value) in pairs.iter().zip(&values) {
                added += usize::from(hash.insert(field, value.clone(), &limits));
            }
            (store_hash(current, hash), Ok(added))
        })
    }

    /// HSETNX: sets `field` only if the hash lacks it; whether it did.
    pub fn hsetnx(&self, key: &[u8], field: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let limits = self.encoding_limits();
        let value = CompactBytes::from(value);
        self.update(key, |current| {
            let hash = match hash_of(current) {
                Ok(hash) => hash,
                Err(error) => return (Write::Keep, Err(error)),
            };
            if hash.is_some_and(|h| h.get(field).is_some()) {
                return (Write::Keep, Ok(false));
            }
            let mut hash = hash.map_or_else(Hash::new, |h| (**h).clone());
            hash.insert(field, value.clone(), &limits);
            (store_hash(current, hash), Ok(true))
        })
    }

    /// HDEL: removes the fields and returns how many were there; the key goes with its last
    /// field.
    pub fn hdel(&self, key: &[u8], fields: &[&[u8]]) -> Result<usize, StoreError> {
        self.update(key, |current| {
            let hash = match hash_of(current) {
                Ok(Some(hash)) => hash,
                Ok(None) => return (Write::Keep, Ok(0)),
                Err(error) => return (Write::Keep, Err(error)),
            };
            if !fields.iter().any(|field| hash.get(field).is_some()) {
                return (Write::Keep, Ok(0));
            }
            let mut hash = (**hash).clone();
            let removed = fields.iter().filter(|field| hash.remove(field)).count();
            (store_hash(current, hash), Ok(removed))
        })
    }

    /// HINCRBY: the field's new value; a missing field counts as 0.
    pub fn hincr_by(&self, key: &[u8], field: &[u8], delta: i64) -> Result<i64, StoreError> {
        let next = |old: Option<&CompactBytes>| {
            let old = match old {
                None => 0,
                Some(text) => parse_integer(text).ok_or(StoreError::HashNotAnInteger)?,
            };
            let next = old.checked_add(delta).ok_or(StoreError::Overflow)?;
            Ok((CompactBytes::from(itoa::Buffer::new().format(next)), next))
        };
        self.update_field(key, field, next)
    }

    /// HINCRBYFLOAT: the field's new value as stored (the AOF logs it as HSET, as Redis does).
    pub fn hincr_by_float(
        &self,
        key: &[u8],
        field: &[u8],
        increment: impl Into<Float>,
    ) -> Result<CompactBytes, StoreError> {
        let increment = increment.into();
        let next = |old: Option<&CompactBytes>| {
            let old = match old {
                None => Float::from(0.0),
                Some(text) => parse_float(text).ok_or(StoreError::HashNotAFloat)?,
            };
            let text = float::add(old, increment)?;
            Ok((text.clone(), text))
        };
        self.update_field(key, field, next)
    }

    /// Replaces one field with what `next` makes of its value (the new value and the reply).
    fn update_field<R: Clone>(
        &self,
        key: &[u8],
        field: &[u8],
        next: impl Fn(Option<&CompactBytes>) -> Result<(CompactBytes, R), StoreError>,
    ) -> Result<R, StoreError> {
        let limits = self.encoding_limits();
        self.update(key, |current| {
            let hash = match hash_of(current) {
                Ok(hash) => hash,
                Err(error) => return (Write::Keep, Err(error)),
            };
            match next(hash.and_then(|h| h.get(field))) {
                Ok((value, reply)) => {
                    let mut hash = hash.map_or_else(Hash::new, |h| (**h).clone());
                    hash.insert(field, value, &limits);
                    (store_hash(current, hash), Ok(reply))
                }
                Err(error) => (Write::Keep, Err(error)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize, limits: &EncodingLimits) -> Hash {
        let mut hash = Hash::new();
        for i in 0..n {
            hash.insert(format!("f{i}").as_bytes(), CompactBytes::from(format!("v{i}").as_bytes()), limits);
        }
        hash
    }

    #[test]
    fn a_hash_converts_past_its_listpack_limits_and_stays() {
        let limits = EncodingLimits::default();
        let mut hash = filled(limits.hash_max_listpack_entries, &limits);
        assert_eq!(hash.encoding(), "listpack");
        hash.insert(b"one-more", CompactBytes::from(&b"x"[..]), &limits);
        assert_eq!(hash.encoding(), "hashtable");
        assert!(hash.remove(b"one-more"));
        assert_eq!((hash.encoding(), hash.len()), ("hashtable", limits.hash_max_listpack_entries));
        let mut small = filled(1, &limits);
        small.insert(b"f0", CompactBytes::from(vec![b'x'; 65]), &limits);
        assert_eq!(small.encoding(), "hashtable");
    }

    #[test]
    fn the_payload_follows_every_change() {
        let limits = EncodingLimits::default();
        let mut hash = filled(200, &limits);
        let expected = |hash: &Hash| hash.pairs().iter().map(|(f, v)| f.len() + v.len()).sum::<usize>();
        assert_eq!(hash.payload, expected(&hash));
        hash.insert(b"f3", CompactBytes::from(&b"a longer value"[..]), &limits);
        hash.remove(b"f7");
        assert_eq!(hash.payload, expected(&hash));
    }
}
