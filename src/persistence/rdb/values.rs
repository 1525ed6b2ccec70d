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
//! the caller's encoding limits, so it gets the encoding adding its members would give.

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
            fits(key, std::slice::from_ref(&text))?;
            return Ok(Value::from(text));
        }
        op::TYPE_SET => {
            let count = input.plain_length("a set size")?;
            let members = strings(input, count, "a set member")?;
            fits(key, &members)?;
            set(members, limits)
        }
        op::TYPE_HASH => {
            let count = input.plain_length("a hash size")?;
            let count = count.checked_mul(2).ok_or_else(|| corrupt(input, format!("a hash of {count} fields")))?;
            let items = strings(input, count, "a hash field or value")?;
            fits(key, &items)?;
            hash(items, limits)
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

/// `count` strings; the vector grows with what the file holds, not with what it claims.
fn strings(input: &mut Input<impl BufRead>, count: u64, what: &'static str) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut items = Vec::with_capacity(usize::try_from(count.min(1024)).unwrap_or(0));
    for _ in 0..count {
        items.push(input.string(what)?);
    }
    Ok(items)
}

fn set(members: Vec<Vec<u8>>, limits: &EncodingLimits) -> Result<Value, String> {
    if members.is_empty() {
        return Err("an empty set".to_owned());
    }
    let set = Set::from_members(members.iter().map(Vec::as_slice), limits);
    if set.len() != members.len() {
        return Err(format!("a set of {} members with duplicates", members.len()));
    }
    Ok(Value::Set(Arc::new(set)))
}

/// A hash from fields and values alternating.
fn hash(items: Vec<Vec<u8>>, limits: &EncodingLimits) -> Result<Value, String> {
    if items.is_empty() {
        return Err("an empty hash".to_owned());
    }
    if !items.len().is_multiple_of(2) {
        return Err(format!("a hash of {} fields and values (an odd count)", items.len()));
    }
    let pairs = items.chunks_exact(2).map(|pair| (&pair[0][..], &pair[1][..]));
    let hash = Hash::from_pairs(pairs, limits);
    if hash.len() * 2 != items.len() {
        return Err(format!("a hash of {} fields with duplicates", items.len() / 2));
    }
    Ok(Value::Hash(Arc::new(hash)))
}

/// Refuses (naming the key) a string, field or member longer than cstore stores.
fn fits(key: &[u8], strings: &[Vec<u8>]) -> Result<(), RdbError> {
    match strings.iter().find(|s| s.len() > MAX_STRING_LEN) {
        Some(long) => Err(RdbError::Rejected {
            key: printable_key(key),
            reason: format!("its value holds a string of {} bytes, longer than cstore stores", long.len()),
        }),
        None => Ok(()),
    }
}
