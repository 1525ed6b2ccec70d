//! Every command, written once over [`Store::read`] and [`Store::update`]. Each closure
//! here is a pure function of the entry it is shown, which is what makes the same code
//! correct under a lock, a snapshot publication, or a lock-free retry loop.

use super::clock::Now;
use super::compact::CompactBytes;
use super::entry::{Entry, NEVER, Write};
use super::float::{self, Float, parse_float};
use super::store::Store;
use super::value::{Value, ValueType};

/// A command that cannot be applied to the value it found. Messages follow Redis's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("value is not a valid float")]
    NotAFloat,
    #[error("increment would produce NaN or Infinity")]
    NotFinite,
    #[error("string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    #[error("no such key")]
    NoSuchKey,
    #[error("Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("hash value is not an integer")]
    HashNotAnInteger,
    #[error("hash value is not a float")]
    HashNotAFloat,
}

impl StoreError {
    /// The error code a reply starts with: WRONGTYPE for a type mismatch, ERR otherwise.
    pub fn code(self) -> &'static str {
        match self {
            StoreError::WrongType => "WRONGTYPE",
            _ => "ERR",
        }
    }
}

/// The string under a live entry; WRONGTYPE for another type.
fn string_of(entry: Option<&Entry>) -> Result<Option<&CompactBytes>, StoreError> {
    entry.map(|e| e.value.as_string()).transpose()
}

/// When SET writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetCondition {
    #[default]
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

/// What SET does to the key's expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetExpiry {
    /// Remove any expiry (plain SET).
    #[default]
    Clear,
    /// KEEPTTL: keep the current expiry.
    Keep,
    /// Expire at this absolute time (ms since the Unix epoch); a time already past
    /// leaves the key absent, as Redis does (the deadline itself is still alive).
    At(u64),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    pub condition: SetCondition,
    pub expiry: SetExpiry,
    /// GET: also return the previous value.
    pub return_previous: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetOutcome {
    /// Whether the value was stored (false when NX/XX did not hold).
    pub written: bool,
    /// The value before the command, when `return_previous` was asked for.
    pub previous: Option<CompactBytes>,
}

/// What GETEX does to the expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TtlUpdate {
    #[default]
    Keep,
    Persist,
    /// Expire at this absolute time (ms since the Unix epoch); a past time deletes the key.
    At(u64),
}

/// The NX / XX / GT / LT flags of EXPIRE and friends. Redis refuses NX together with XX, GT
/// or LT, and GT with LT; the engine applies whichever are set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireCondition {
    /// NX: only if the key has no expiry.
    pub nx: bool,
    /// XX: only if the key has an expiry.
    pub xx: bool,
    /// GT: only if the new expiry is later (no expiry counts as infinitely late).
    pub gt: bool,
    /// LT: only if the new expiry is earlier (no expiry counts as infinitely late).
    pub lt: bool,
}

impl ExpireCondition {
    fn allows(self, current: u64, new: u64) -> bool {
        let has_ttl = current != NEVER;
        !(self.nx && has_ttl
            || self.xx && !has_ttl
            || self.gt && (!has_ttl || new <= current)
            || self.lt && has_ttl && new >= current)
    }
}

/// Remaining time to live of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (TTL answers -2).
    Missing,
    /// The key exists without an expiry (TTL answers -1).
    Persistent,
    /// Milliseconds until the key expires.
    ExpiresIn(u64),
}

/// Parses a decimal integer exactly as Redis does (`string2ll`): optional `-`, no `+`, no
/// spaces, no leading zeros, within i64.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    match digits.first() {
        Some(b'1'..=b'9') if digits.len() <= 19 => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

/// An integer as Redis stores it after INCR: its decimal text (at most 20 bytes, so inline).
fn integer_bytes(n: i64) -> CompactBytes {
    CompactBytes::from(itoa::Buffer::new().format(n))
}

impl Store {
    pub fn get(&self, key: &[u8]) -> Result<Option<CompactBytes>, StoreError> {
        self.read(key, |entry| string_of(entry).map(|s| s.cloned()))
    }

    /// The whole value under `key`, of any type.
    pub fn value(&self, key: &[u8]) -> Option<Value> {
        self.read(key, |entry| entry.map(|e| e.value.clone()))
    }

    /// TYPE: the type of the value under `key`.
    pub fn value_type(&self, key: &[u8]) -> Option<ValueType> {
        self.read(key, |entry| entry.map(|e| e.value.kind()))
    }

    /// OBJECT ENCODING: the encoding of the value under `key`.
    pub fn encoding(&self, key: &[u8]) -> Option<&'static str> {
        self.read(key, |entry| entry.map(|e| e.value.encoding()))
    }

    /// GET without taking a reference: `f` sees the live value while the shard is being read
    /// (under its lock, for the locked strategies), so a server can copy a small value into a
    /// reply without the atomic increment and decrement of a clone. `f` must be short: a
    /// writer to the shard may wait for it. Clone large values out instead.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<&CompactBytes>) -> R) -> Result<R, StoreError> {
        self.read(key, |entry| string_of(entry).map(f))
    }

    /// The value and absolute deadline (ms since the Unix epoch) of a live key: what the
    /// append-only file records after a write, so that replaying it needs no clock.
    pub fn get_with_deadline(&self, key: &[u8]) -> Option<(Value, Option<u64>)> {
        self.read(key, |entry| entry.map(|e| (e.value.clone(), e.is_volatile().then_some(e.expires_at))))
    }

    pub fn exists(&self, key: &[u8]) -> bool {
        self.read(key, |entry| entry.is_some())
    }

    pub fn strlen(&self, key: &[u8]) -> Result<usize, StoreError> {
        self.read(key, |entry| string_of(entry).map(|s| s.map_or(0, |s| s.len())))
    }

    pub fn ttl(&self, key: &[u8]) -> Ttl {
        let now = self.now();
        self.read_at(key, &now, |entry| match entry {
            None => Ttl::Missing,
            Some(e) if e.expires_at == NEVER => Ttl::Persistent,
            Some(e) => Ttl::ExpiresIn(e.expires_at.saturating_sub(now.0)),
        })
    }

    /// GETRANGE: the bytes between `start` and `end` inclusive; negative offsets count from
    /// the end. A missing key reads as the empty string.
    pub fn getrange(&self, key: &[u8], start: i64, end: i64) -> Result<CompactBytes, StoreError> {
        self.read(key, |entry| {
            let Some(value) = string_of(entry)? else { return Ok(CompactBytes::default()) };
            let len = i64::try_from(value.len()).unwrap_or(i64::MAX);
            if start < 0 && end < 0 && start > end {
                return Ok(CompactBytes::default());
            }
            let start = if start < 0 { (len + start).max(0) } else { start };
            let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
            if len == 0 || start > end {
                return Ok(CompactBytes::default());
            }
            // Both bounds now lie in 0..len.
            Ok(value.slice(start as usize..=end as usize))
        })
    }

    /// SET. Only SET ... GET looks at the type of what it replaces (WRONGTYPE, and nothing
    /// written, unless it is a string).
    pub fn set(&self, key: &[u8], value: impl Into<Value>, options: SetOptions) -> Result<SetOutcome, StoreError> {
        let value = value.into();
        self.update(key, |current| {
            let previous = match options.return_previous.then(|| string_of(current)) {
                Some(Err(error)) => return (Write::Keep, Err(error)),
                Some(Ok(previous)) => previous.cloned(),
                None => None,
            };
            let allowed = match options.condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => current.is_none(),
                SetCondition::IfPresent => current.is_some(),
            };
            if !allowed {
                return (Write::Keep, Ok(SetOutcome { written: false, previous }));
            }
            let expires_at = match options.expiry {
                SetExpiry::Clear => NEVER,
                SetExpiry::Keep => current.map_or(NEVER, |e| e.expires_at),
                SetExpiry::At(deadline) => deadline,
            };
            (Write::Put(Entry::new(value.clone(), expires_at)), Ok(SetOutcome { written: true, previous }))
        })
    }

    /// SET without GET, which stores any value and cannot fail: whether it stored it.
    pub(crate) fn put(&self, key: &[u8], value: Value, options: SetOptions) -> bool {
        let options = SetOptions { return_previous: false, ..options };
        self.set(key, value, options).is_ok_and(|outcome| outcome.written)
    }

    /// DEL / UNLINK of one key: whether it existed.
    pub fn delete(&self, key: &[u8]) -> bool {
        self.remove(key).is_some()
    }

    /// Removes the key and returns its value, so that the caller frees a large collection
    /// after the shard is released (or hands it to another thread: UNLINK).
    pub fn remove(&self, key: &[u8]) -> Option<Value> {
        self.update(key, |current| (Write::Remove, current.map(|e| e.value.clone())))
    }

    pub fn getdel(&self, key: &[u8]) -> Result<Option<CompactBytes>, StoreError> {
        self.update(key, |current| match string_of(current) {
            Ok(value) => (Write::Remove, Ok(value.cloned())),
            Err(error) => (Write::Keep, Err(error)),
        })
    }

    /// GETEX: the value, after changing its expiry as asked.
    pub fn getex(&self, key: &[u8], ttl: TtlUpdate) -> Result<Option<CompactBytes>, StoreError> {
        let at = self.now();
        let now = at.0;
        self.update_with(key, &at, |current| {
            let Some(entry) = current else { return (Write::Keep, Ok(None)) };
            let value = match entry.value.as_string() {
                Ok(value) => Ok(Some(value.clone())),
                Err(error) => return (Write::Keep, Err(error)),
            };
            let write = match ttl {
                TtlUpdate::Keep => Write::Keep,
                TtlUpdate::Persist if entry.expires_at == NEVER => Write::Keep,
                TtlUpdate::Persist => Write::Put(Entry::new(entry.value.clone(), NEVER)),
                // Redis deletes at once when the new deadline is not in the future.
                TtlUpdate::At(deadline) if deadline <= now => Write::Remove,
                TtlUpdate::At(deadline) => Write::Put(Entry::new(entry.value.clone(), deadline)),
            };
            (write, value)
        })
    }

    /// INCRBY / DECRBY / INCR / DECR: the new value. A missing key counts as 0; the
    /// expiry is kept.
    pub fn incr_by(&self, key: &[u8], delta: i64) -> Result<i64, StoreError> {
        self.update(key, |current| {
            let value = match current {
                None => 0,
                Some(entry) => match entry.value.as_string().map(|text| parse_integer(text)) {
                    Ok(Some(value)) => value,
                    Ok(None) => return (Write::Keep, Err(StoreError::NotAnInteger)),
                    Err(error) => return (Write::Keep, Err(error)),
                },
            };
            match value.checked_add(delta) {
                Some(next) => {
                    let expires_at = current.map_or(NEVER, |e| e.expires_at);
                    (Write::Put(Entry::new(integer_bytes(next), expires_at)), Ok(next))
                }
                None => (Write::Keep, Err(StoreError::Overflow)),
            }
        })
    }

    /// INCRBYFLOAT: the new value, formatted as stored (see `float.rs` for the digits).
    pub fn incr_by_float(&self, key: &[u8], increment: impl Into<Float>) -> Result<CompactBytes, StoreError> {
        let increment = increment.into();
        let max_len = self.max_value_len();
        self.update(key, |current| {
            let value = match current {
                None => Float::from(0.0),
                Some(entry) => match entry.value.as_string().map(|text| parse_float(text)) {
                    Ok(Some(value)) => value,
                    Ok(None) => return (Write::Keep, Err(StoreError::NotAFloat)),
                    Err(error) => return (Write::Keep, Err(error)),
                },
            };
            let text = match float::add(value, increment) {
                Ok(text) if text.len() > max_len => return (Write::Keep, Err(StoreError::TooLarge)),
                Ok(text) => text,
                Err(error) => return (Write::Keep, Err(error)),
            };
            let expires_at = current.map_or(NEVER, |e| e.expires_at);
            (Write::Put(Entry::new(text.clone(), expires_at)), Ok(text))
        })
    }

    /// APPEND: the new length. Creates the key when missing; keeps the expiry.
    pub fn append(&self, key: &[u8], suffix: &[u8]) -> Result<usize, StoreError> {
        let max_len = self.max_value_len();
        self.update(key, |current| {
            let value = match string_of(current) {
                Ok(Some(value)) => value,
                Ok(None) if suffix.len() > max_len => return (Write::Keep, Err(StoreError::TooLarge)),
                Ok(None) => return (Write::Put(Entry::new(CompactBytes::from(suffix), NEVER)), Ok(suffix.len())),
                Err(error) => return (Write::Keep, Err(error)),
            };
            let len = value.len() + suffix.len();
            if len > max_len {
                return (Write::Keep, Err(StoreError::TooLarge));
            }
            let expires_at = current.map_or(NEVER, |e| e.expires_at);
            (Write::Put(Entry::new(CompactBytes::concat(value, suffix), expires_at)), Ok(len))
        })
    }

    /// SETRANGE: overwrites part of the value at `offset`, padding with zero bytes, and
    /// returns the new length. An empty `patch` changes nothing (and creates nothing).
    pub fn setrange(&self, key: &[u8], offset: usize, patch: &[u8]) -> Result<usize, StoreError> {
        let max_len = self.max_value_len();
        self.update(key, |current| {
            let old = match string_of(current) {
                Ok(old) => old,
                Err(error) => return (Write::Keep, Err(error)),
            };
            let old_len = old.map_or(0, |old| old.len());
            if patch.is_empty() {
                return (Write::Keep, Ok(old_len));
            }
            let end = match offset.checked_add(patch.len()) {
                Some(end) if end <= max_len => end,
                _ => return (Write::Keep, Err(StoreError::TooLarge)),
            };
            let mut value = vec![0; old_len.max(end)];
            if let Some(old) = old {
                value[..old_len].copy_from_slice(old);
            }
            value[offset..end].copy_from_slice(patch);
            let new_len = value.len();
            let expires_at = current.map_or(NEVER, |e| e.expires_at);
            (Write::Put(Entry::new(CompactBytes::from(value), expires_at)), Ok(new_len))
        })
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with an absolute deadline (ms since the Unix
    /// epoch): whether the expiry was set. A deadline already past deletes the key.
    pub fn expire_at(&self, key: &[u8], deadline: u64, condition: ExpireCondition) -> bool {
        let at = self.now();
        let now = at.0;
        self.update_with(key, &at, |current| {
            let Some(entry) = current else { return (Write::Keep, false) };
            if !condition.allows(entry.expires_at, deadline) {
                return (Write::Keep, false);
            }
            // Redis deletes at once when the deadline is not in the future (`checkAlreadyExpired`).
            if deadline <= now {
                return (Write::Remove, true);
            }
            (Write::Put(Entry::new(entry.value.clone(), deadline)), true)
        })
    }

    fn update_with<R>(&self, key: &[u8], now: &Now, f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        self.update_at(key, now, f).reply
    }

    /// PERSIST: whether an expiry was removed.
    pub fn persist(&self, key: &[u8]) -> bool {
        self.update(key, |current| match current {
            Some(entry) if entry.expires_at != NEVER => (Write::Put(Entry::new(entry.value.clone(), NEVER)), true),
            _ => (Write::Keep, false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis_string2ll() {
        for (text, expected) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("42", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1.0", None),
            ("99999999999999999999999", None),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let (none, at_100) = (NEVER, 100);
        let plain = ExpireCondition::default();
        assert!(plain.allows(none, 50));
        let nx = ExpireCondition { nx: true, ..plain };
        assert!(nx.allows(none, 50) && !nx.allows(at_100, 50));
        let xx = ExpireCondition { xx: true, ..plain };
        assert!(!xx.allows(none, 50) && xx.allows(at_100, 50));
        let gt = ExpireCondition { gt: true, ..plain };
        assert!(!gt.allows(none, 50) && gt.allows(at_100, 150) && !gt.allows(at_100, 100));
        let lt = ExpireCondition { lt: true, ..plain };
        assert!(lt.allows(none, 50) && lt.allows(at_100, 50) && !lt.allows(at_100, 100));
    }
}
