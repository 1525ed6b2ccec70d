//! What the engine stores per key, and what a read-modify-write decides to do with it.

use super::clock::Now;
use super::value::Value;

/// Expiry deadline meaning "never expires". Deadlines are milliseconds since the Unix epoch.
pub(crate) const NEVER: u64 = u64::MAX;

/// Approximate bytes a stored entry costs beyond its key and value: the map slot (hash,
/// key and value handles, expiry), the index table, the value's reference-count header and
/// the allocator's rounding. It only needs to be stable and roughly right, since
/// `maxmemory` is enforced against this estimate.
pub(crate) const ENTRY_OVERHEAD: usize = 96;

/// One stored value. Cloning is cheap (see [`Value`]), so a reader that holds a clone is
/// never affected by a later delete or overwrite of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Absolute deadline in milliseconds since the Unix epoch, or [`NEVER`].
    pub(crate) expires_at: u64,
}

impl Entry {
    pub(crate) fn new(value: impl Into<Value>, expires_at: u64) -> Self {
        Entry { value: value.into(), expires_at }
    }

    /// Whether the entry has expired at `now`. As in Redis (`keyIsExpired`), a key is
    /// still alive at its deadline and gone one millisecond later.
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        now > self.expires_at
    }

    /// [`Entry::is_expired`] that reads the clock only for an entry with a deadline.
    pub(crate) fn has_expired(&self, now: &Now) -> bool {
        self.expires_at != NEVER && self.is_expired(now.0)
    }

    pub(crate) fn is_volatile(&self) -> bool {
        self.expires_at != NEVER
    }
}

/// What a read-modify-write does to the key once its closure has looked at the entry.
#[derive(Debug)]
pub(crate) enum Write {
    /// Leave the key as it is.
    Keep,
    /// Store this entry (insert or overwrite).
    Put(Entry),
    /// Delete the key.
    Remove,
}

/// A read-modify-write's decision: given the live entry, what to write and what to answer.
pub(crate) trait Decide<R>: FnMut(Option<&Entry>) -> (Write, R) {}

impl<R, F: FnMut(Option<&Entry>) -> (Write, R)> Decide<R> for F {}

/// The accounting footprint of one entry, used to keep the per-shard counters exact: every
/// change adds what it stored and subtracts what it replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub(crate) keys: i64,
    pub(crate) bytes: i64,
    pub(crate) volatile: i64,
}

impl Footprint {
    pub(crate) fn of(key: &[u8], entry: &Entry) -> Self {
        Footprint {
            keys: 1,
            bytes: (key.len() + entry.value.memory() + ENTRY_OVERHEAD) as i64,
            volatile: i64::from(entry.is_volatile()),
        }
    }

    pub(crate) fn of_slot(key: &[u8], entry: Option<&Entry>) -> Self {
        entry.map_or_else(Footprint::default, |e| Footprint::of(key, e))
    }
}

impl std::ops::Sub for Footprint {
    type Output = Footprint;
    fn sub(self, rhs: Footprint) -> Footprint {
        Footprint { keys: self.keys - rhs.keys, bytes: self.bytes - rhs.bytes, volatile: self.volatile - rhs.volatile }
    }
}

impl std::ops::AddAssign for Footprint {
    fn add_assign(&mut self, rhs: Footprint) {
        self.keys += rhs.keys;
        self.bytes += rhs.bytes;
        self.volatile += rhs.volatile;
    }
}
