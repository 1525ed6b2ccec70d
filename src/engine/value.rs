//! What a key holds: a string, a hash or a set.
//!
//! Collections are persistent values behind an `Arc`: a command that changes one builds a new
//! version that shares everything it did not touch with the old one, and the engine stores
//! that version with the same read-modify-write as a string. So every strategy keeps its one
//! write rule (a lock-free retry or a copy-on-write publication redoes one O(log n) path
//! copy, never a copy of the collection), a reader that took a version iterates it with no
//! lock held, and a point-in-time snapshot gets the version it cut for free.
//!
//! Small collections use compact encodings with Redis's names and thresholds (a listpack,
//! in insertion order; an intset, sorted), large ones a B-tree in scan order
//! (`member.rs`); as in Redis, a collection converts to the large encoding once and stays.

use std::sync::Arc;

use super::compact::CompactBytes;
use super::entry::{Entry, NEVER, Write};
use super::hash::Hash;
use super::ops::StoreError;
use super::set::Set;

/// The value under a key. Cloning is cheap: a string's handle, or a collection's `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(CompactBytes),
    Hash(Arc<Hash>),
    Set(Arc<Set>),
}

/// A value's type, as TYPE names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    String,
    Hash,
    Set,
}

impl ValueType {
    /// TYPE's answer and SCAN's TYPE argument.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
            ValueType::Set => "set",
        }
    }

    /// The type SCAN's TYPE names (case-insensitive, as Redis).
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        [ValueType::String, ValueType::Hash, ValueType::Set]
            .into_iter()
            .find(|kind| kind.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

impl Value {
    pub fn kind(&self) -> ValueType {
        match self {
            Value::String(_) => ValueType::String,
            Value::Hash(_) => ValueType::Hash,
            Value::Set(_) => ValueType::Set,
        }
    }

    /// OBJECT ENCODING's answer, with Redis's rules for strings: `int` for a canonical
    /// integer, `embstr` up to 44 bytes, `raw` beyond.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::String(text) if text.len() <= 20 && super::ops::parse_integer(text).is_some() => "int",
            Value::String(text) if text.len() <= 44 => "embstr",
            Value::String(_) => "raw",
            Value::Hash(hash) => hash.encoding(),
            Value::Set(set) => set.encoding(),
        }
    }

    /// Elements the value holds: fields, members, or 1 for a string.
    pub fn elements(&self) -> usize {
        match self {
            Value::String(_) => 1,
            Value::Hash(hash) => hash.len(),
            Value::Set(set) => set.len(),
        }
    }

    /// The string, or WRONGTYPE.
    pub fn as_string(&self) -> Result<&CompactBytes, StoreError> {
        match self {
            Value::String(text) => Ok(text),
            _ => Err(StoreError::WrongType),
        }
    }

    /// The bytes this value is charged in the memory accounting.
    pub fn memory(&self) -> usize {
        match self {
            Value::String(text) => text.len(),
            Value::Hash(hash) => hash.memory(),
            Value::Set(set) => set.memory(),
        }
    }
}

/// The write that gives the key of `entry` the new version of its collection, keeping its
/// deadline, or removes the key once the collection is empty, as Redis does.
pub(crate) fn store_collection(entry: Option<&Entry>, collection: Value) -> Write {
    if collection.elements() == 0 {
        return Write::Remove;
    }
    Write::Put(Entry::new(collection, entry.map_or(NEVER, |e| e.expires_at)))
}

/// Anything that makes a string makes a string value.
impl<T: Into<CompactBytes>> From<T> for Value {
    fn from(text: T) -> Self {
        Value::String(text.into())
    }
}

/// The thresholds of the compact encodings, Redis's `*-max-*` settings (CONFIG SET changes
/// them; collections already converted stay converted, as in Redis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
}

impl EncodingLimits {
    /// redis-server 7's built-in values (Redis 7.2's for the set listpack).
    pub const REDIS_DEFAULTS: EncodingLimits = EncodingLimits {
        hash_max_listpack_entries: 512,
        hash_max_listpack_value: 64,
        set_max_intset_entries: 512,
        set_max_listpack_entries: 128,
        set_max_listpack_value: 64,
    };
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits::REDIS_DEFAULTS
    }
}
