//! Values of the types cstore holds, read into engine values (`rdbLoadObject`): strings, and
//! hashes and sets in every encoding redis-server 7.0 to 7.4 writes:
//!
//! - set: `RDB_TYPE_SET` (a count, then the members), `RDB_TYPE_SET_INTSET` and (Redis 7.2+)
//!   `RDB_TYPE_SET_LISTPACK` (one string holding the blob, see `blob.rs`);
//! - hash: `RDB_TYPE_HASH` (a count, then field and value pairs) and `RDB_TYPE_HASH_LISTPACK`
//!   (a listpack of fields and values alternating).
//!
//! Redis 6's encodings (zipmap 9, ziplist hash 13, and the list/zset ones) are not read:
//! they stop the load, or are skipped under `rdb-skip-unsupported-types`, like any type
//! cstore does not hold. Hashes with field expiries (Redis 7.4, types 24 and 25) likewise.
//!
//! A corrupt value (a bad blob, a duplicate member or field, an empty collection, which
//! Redis never writes) is [`RdbError::Corrupt`] naming the key. The collection is built with
//! the caller's encoding limits, so it gets the encoding adding its members would give, and
//! as its members are read ([`Strings`]): a huge one is never held twice.

use std::io::BufRead;
use std::sync::Arc;

use super::decode::Input;
use super::{RdbError, blob, op, printable_key};
use crate::engine::{EncodingLimits, Hash, MAX_STRING_LEN, Set, Value};

/// Whether values of type `kind` load into cstore (rather than being unsupported).
pub(super) fn is_loadable(kind: u8) -> bool {
    matches!(
        kind,
        op::TYPE_STRING
            | op::TYPE_SET
            | op::TYPE_HASH
            | op::TYPE_SET_INTSET
            | op::TYPE_HASH_LISTPACK
            | op::TYPE_SET_LISTPACK
    )
}

/// Reads the value of `key`, of loadable type `kind`.
pub(super) fn read(
    input: &mut Input<impl BufRead>,
    kind: u8,
    key: &[u8],
    limits: &EncodingLimits,
) -> Result<Value, RdbError> {
    let corrupt = |input: &Input<_>, reason: String| input.corrupt(format!("key '{}': {reason}", printable_key(key)));
    let value = match kind {
        op::TYPE_STRING => {
            let text = input.string("a string value")?;
            fits(key, &text)?;
            return Ok(Value::from(text));
        }
        op::TYPE_SET => {
            let count = input.plain_length("a set size")?;
            let mut members = Strings { input: &mut *input, key, left: count, what: "a set member", error: None };
            let set = Set::from_members(&mut members, limits);
            members.finish()?;
            counted_set(set, count)
        }
        op::TYPE_HASH => {
            let count = input.plain_length("a hash size")?;
            let items = count.checked_mul(2).ok_or_else(|| corrupt(input, format!("a hash of {count} fields")))?;
            let mut items =
                Strings { input: &mut *input, key, left: items, what: "a hash field or value", error: None };
            let pairs = std::iter::from_fn(|| Some((items.next()?, items.next()?)));
            let hash = Hash::from_pairs(pairs, limits);
            items.finish()?;
            counted_hash(hash, count)
        }
        // A blob's entries are at most 2^32 - 1 bytes (listpack) or integers (intset): they fit.
        op::TYPE_SET_INTSET => {
            let blob = input.string("an intset")?;
            blob::intset(&blob).and_then(|members| set(members, limits))
        }
        op::TYPE_SET_LISTPACK => {
            let blob = input.string("a set listpack")?;
            blob::listpack(&blob).and_then(|members| set(members, limits))
        }
        op::TYPE_HASH_LISTPACK => {
            let blob = input.string("a hash listpack")?;
            blob::listpack(&blob).and_then(|items| hash(items, limits))
        }
        _ => unreachable!("value type {kind} is not loadable"),
    };
    value.map_err(|reason| corrupt(input, reason))
}

/// The strings of a collection, read from the file one at a time while the collection is built
/// from them. The first error (a bad string, or one longer than cstore stores) ends the
/// iteration and is kept for [`Strings::finish`].
struct Strings<'a, R> {
    input: &'a mut Input<R>,
    key: &'a [u8],
    left: u64,
    what: &'static str,
    error: Option<RdbError>,
}

impl<R: BufRead> Iterator for Strings<'_, R> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.left == 0 || self.error.is_some() {
            return None;
        }
        self.left -= 1;
        let read = self.input.string(self.what).and_then(|text| fits(self.key, &text).map(|()| text));
        read.map_err(|error| self.error = Some(error)).ok()
    }
}

impl<R> Strings<'_, R> {
    /// The error that ended the reading, if one did.
    fn finish(self) -> Result<(), RdbError> {
        self.error.map_or(Ok(()), Err)
    }
}

/// A set built from a file that said it holds `count` members.
fn counted_set(set: Set, count: u64) -> Result<Value, String> {
    check_count(set.len(), count, "set", "members").map(|()| Value::Set(Arc::new(set)))
}

/// A hash built from a file that said it holds `count` fields.
fn counted_hash(hash: Hash, count: u64) -> Result<Value, String> {
    check_count(hash.len(), count, "hash", "fields").map(|()| Value::Hash(Arc::new(hash)))
}

/// Redis never writes an empty collection, nor one with duplicates: a built collection of
/// `len` elements from a claimed `count` must be neither.
fn check_count(len: usize, count: u64, kind: &str, elements: &str) -> Result<(), String> {
    match count {
        0 => Err(format!("an empty {kind}")),
        _ if len as u64 != count => Err(format!("a {kind} of {count} {elements} with duplicates")),
        _ => Ok(()),
    }
}

fn set(members: Vec<Vec<u8>>, limits: &EncodingLimits) -> Result<Value, String> {
    let count = members.len() as u64;
    counted_set(Set::from_members(members, limits), count)
}

/// A hash from fields and values alternating.
fn hash(items: Vec<Vec<u8>>, limits: &EncodingLimits) -> Result<Value, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("a hash of {} fields and values (an odd count)", items.len()));
    }
    let count = items.len() as u64 / 2;
    let pairs = items.chunks_exact(2).map(|pair| (&pair[0], &pair[1]));
    counted_hash(Hash::from_pairs(pairs, limits), count)
}

/// Refuses (naming the key) a string, field or member longer than cstore stores.
fn fits(key: &[u8], text: &[u8]) -> Result<(), RdbError> {
    if text.len() <= MAX_STRING_LEN {
        return Ok(());
    }
    Err(RdbError::Rejected {
        key: printable_key(key),
        reason: format!("its value holds a string of {} bytes, longer than cstore stores", text.len()),
    })
}
