//! Comparing a reply of cstore with the reply of the oracle, `redis-server`, where the two may
//! legitimately differ in order, in a float's last digits or in a remaining time: the
//! comparisons the oracle script (`redis_oracle.rs`) and the differential fuzz
//! (`redis_fuzz.rs`) share. Each returns what does not hold.

use cstore::server::resp_value::Value;

/// The discriminant-level kind of a reply, for replies whose contents legitimately differ.
pub fn kind(value: &Value) -> std::mem::Discriminant<Value> {
    std::mem::discriminant(value)
}

pub fn same_kind(redis: &Value, cstore: &Value) -> Result<(), String> {
    if kind(redis) == kind(cstore) { Ok(()) } else { Err("different reply types".into()) }
}

/// The elements of an array, set or map (keys and values interleaved).
pub fn elements(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items.clone()),
        Value::Map(pairs) => Some(pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()),
        _ => None,
    }
}

pub fn integer_of(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        Value::Bulk(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

/// Remaining seconds: positive, and at most one apart.
pub fn close_seconds(redis: &Value, cstore: &Value) -> Result<(), String> {
    close_positive_integers(redis, cstore, 1)
}

/// Remaining milliseconds: positive, and at most a second apart.
pub fn close_milliseconds(redis: &Value, cstore: &Value) -> Result<(), String> {
    close_positive_integers(redis, cstore, 1000)
}

pub fn close_positive_integers(redis: &Value, cstore: &Value, tolerance: u64) -> Result<(), String> {
    match (integer_of(redis), integer_of(cstore)) {
        (Some(expected), Some(actual)) if expected > 0 && actual > 0 && expected.abs_diff(actual) <= tolerance => {
            Ok(())
        }
        _ => Err(format!("not positive integers at most {tolerance} apart")),
    }
}

/// Elements in a canonical order, to compare them as multisets.
pub fn sorted(items: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    texts.sort();
    texts
}

/// The same elements, in any order and however often each comes: what two complete SCAN
/// walks must agree on (SCAN may return a key more than once).
pub fn same_distinct_elements(redis: &Value, cstore: &Value) -> Result<(), String> {
    let distinct = |value: &Value| {
        elements(value).map(|items| {
            let mut texts = sorted(&items);
            texts.dedup();
            texts
        })
    };
    match (distinct(redis), distinct(cstore)) {
        (Some(expected), Some(actual)) if expected == actual => Ok(()),
        _ => Err("different distinct elements".into()),
    }
}

pub fn same_elements_in_any_order(redis: &Value, cstore: &Value) -> Result<(), String> {
    same_kind(redis, cstore)?;
    match (elements(redis), elements(cstore)) {
        (Some(expected), Some(actual)) if sorted(&expected) == sorted(&actual) => Ok(()),
        _ => Err("different elements".into()),
    }
}

/// Maps (flat arrays in RESP2, or arrays of two-element arrays as RESP3's HRANDFIELD ...
/// WITHVALUES) with the same key-value pairs, in any order.
pub fn same_pairs_in_any_order(redis: &Value, cstore: &Value) -> Result<(), String> {
    same_kind(redis, cstore)?;
    let pairs = |value: &Value| {
        let items = elements(value)?;
        let nested =
            !items.is_empty() && items.iter().all(|item| matches!(item, Value::Array(pair) if pair.len() == 2));
        let flat =
            if nested { items.iter().flat_map(|item| elements(item).unwrap_or_default()).collect() } else { items };
        let mut pairs: Vec<String> = flat.chunks(2).map(|pair| format!("{pair:?}")).collect();
        pairs.sort();
        Some(pairs)
    };
    if pairs(redis).is_some_and(|expected| Some(expected) == pairs(cstore)) {
        Ok(())
    } else {
        Err("different pairs".into())
    }
}

/// Bulk strings holding numbers equal to f64 precision.
pub fn same_float(redis: &Value, cstore: &Value) -> Result<(), String> {
    let number = |value: &Value| match value {
        Value::Bulk(text) => std::str::from_utf8(text).ok()?.parse::<f64>().ok(),
        _ => None,
    };
    match (number(redis), number(cstore)) {
        (Some(expected), Some(actual)) if (expected - actual).abs() <= expected.abs() * 4.0 * f64::EPSILON => Ok(()),
        _ => Err("different numbers".into()),
    }
}
