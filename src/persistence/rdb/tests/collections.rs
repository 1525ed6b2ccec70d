//! Hashes and sets: through the writer and back, and in the blob encodings only Redis
//! writes (hand-built files), with corrupt values named by key.

use std::sync::Arc;

use super::super::{LoadOptions, RdbError, SaveOptions, op};
use super::{Entry, NOW_MS, load_all, options, raw_file, save, text};
use crate::engine::{EncodingLimits, Hash, Set, Value};

fn hash_of(pairs: &[(Vec<u8>, Vec<u8>)]) -> Value {
    let limits = EncodingLimits::default();
    Value::Hash(Arc::new(Hash::from_pairs(pairs.iter().map(|(f, v)| (&f[..], &v[..])), &limits)))
}

fn set_of(members: &[Vec<u8>]) -> Value {
    Value::Set(Arc::new(Set::from_members(members.iter().map(Vec::as_slice), &EncodingLimits::default())))
}

fn pairs(n: usize, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n).map(|i| (format!("field:{i}").into_bytes(), format!("{i:0value_len$}").into_bytes())).collect()
}

fn members(n: usize, prefix: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{prefix}{i}").into_bytes()).collect()
}

/// Every encoding of each type cstore holds, some with deadlines.
pub(super) fn collections() -> Vec<Entry> {
    vec![
        (b"small hash".to_vec(), hash_of(&pairs(3, 1)), None),
        (b"large hash".to_vec(), hash_of(&pairs(600, 1)), Some(NOW_MS + 60_000)),
        (b"long-valued hash".to_vec(), hash_of(&pairs(2, 100)), None),
        (b"intset".to_vec(), set_of(&members(10, "")), None),
        (b"small set".to_vec(), set_of(&members(5, "m")), Some(NOW_MS + 1)),
        (b"large set".to_vec(), set_of(&members(1000, "member:")), None),
        (b"large intset".to_vec(), set_of(&members(2000, "")), None),
        text(b"string", b"between them", None),
    ]
}

#[test]
fn hashes_and_sets_round_trip_through_the_writer() {
    let entries = collections();
    let encodings: Vec<&str> = entries.iter().map(|e| e.1.encoding()).collect();
    assert_eq!(
        encodings,
        ["listpack", "hashtable", "hashtable", "intset", "listpack", "hashtable", "hashtable", "embstr"]
    );
    for options in [SaveOptions::default(), SaveOptions { compression: false, checksum: false }] {
        let (loaded, report) = load_all(&save(&entries, options), &self::options()).unwrap();
        assert_eq!(loaded, entries);
        assert_eq!(report.keys_loaded, entries.len() as u64);
    }
}

#[test]
fn loaded_collections_take_the_encoding_the_limits_give() {
    let entries = collections();
    let bytes = save(&entries, SaveOptions::default());
    let limits =
        EncodingLimits { hash_max_listpack_entries: 1, set_max_intset_entries: 2, ..EncodingLimits::default() };
    let mut encodings = Vec::new();
    super::super::load(&bytes[..], &options(), &limits, |key| {
        encodings.push(key.value.encoding());
        Ok(())
    })
    .unwrap();
    // An intset past its limit becomes a listpack when it fits one, as in Redis 7.2.
    assert_eq!(
        encodings,
        ["hashtable", "hashtable", "hashtable", "listpack", "listpack", "hashtable", "hashtable", "embstr"]
    );
}

/// An RDB string of any length (`rdbSaveLen` widths).
fn string(bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len();
    let mut out = if len < 64 {
        vec![len as u8]
    } else if len < 16384 {
        vec![0x40 | (len >> 8) as u8, len as u8]
    } else {
        let mut out = vec![op::LEN_32BIT];
        out.extend((len as u32).to_be_bytes());
        out
    };
    out.extend(bytes);
    out
}

/// A file holding key `key` of type `kind` with the given value bytes, then a string.
fn file_with(kind: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = vec![op::SELECTDB, 0, kind];
    body.extend(string(key));
    body.extend(value);
    body.push(op::TYPE_STRING);
    body.extend(string(b"after"));
    body.extend(string(b"it"));
    raw_file(11, &body)
}

/// A listpack of strings (6-bit lengths) and small integers, as listpack.c writes them.
fn listpack(items: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        match item.parse::<u8>() {
            Ok(n) if n < 128 => body.extend([n, 1]),
            _ => {
                body.push(0x80 | item.len() as u8);
                body.extend(item.as_bytes());
                body.push(1 + item.len() as u8);
            }
        }
    }
    let mut out = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    out.extend((items.len() as u16).to_le_bytes());
    out.extend(body);
    out.push(0xFF);
    out
}

fn intset(numbers: &[i16]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    out.extend((numbers.len() as u32).to_le_bytes());
    numbers.iter().for_each(|n| out.extend(n.to_le_bytes()));
    out
}

fn load_one(bytes: &[u8]) -> Result<Value, RdbError> {
    let (loaded, _) = load_all(bytes, &options())?;
    assert_eq!(loaded[1], text(b"after", b"it", None));
    Ok(loaded[0].1.clone())
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn blob_encodings_load() {
    let hash = load_one(&file_with(op::TYPE_HASH_LISTPACK, b"h", &string(&listpack(&["a", "1", "b", "xyz"])))).unwrap();
    let expected = [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"xyz".to_vec())];
    assert_eq!(hash, hash_of(&expected));
    let set = load_one(&file_with(op::TYPE_SET_LISTPACK, b"s", &string(&listpack(&["x", "7", "y"])))).unwrap();
    assert_eq!(set, set_of(&texts(&["x", "7", "y"])));
    let set = load_one(&file_with(op::TYPE_SET_INTSET, b"i", &string(&intset(&[-3, 0, 300])))).unwrap();
    assert_eq!((set.encoding(), set), ("intset", set_of(&texts(&["-3", "0", "300"]))));
}

fn plain(count: u8, items: &[&str]) -> Vec<u8> {
    let mut out = vec![count];
    items.iter().for_each(|item| out.extend(string(item.as_bytes())));
    out
}

#[test]
fn corrupt_collections_stop_the_load_naming_the_key() {
    let cases: Vec<(u8, Vec<u8>, &str)> = vec![
        (op::TYPE_HASH_LISTPACK, string(&listpack(&["a", "1", "b"])), "odd count"),
        (op::TYPE_HASH_LISTPACK, string(&listpack(&["a", "1", "a", "2"])), "duplicates"),
        (op::TYPE_HASH_LISTPACK, string(&listpack(&[])), "an empty hash"),
        (op::TYPE_HASH_LISTPACK, string(b"\x07\x00\x00\x00\x02\x00\xff"), "header says 2"),
        (op::TYPE_SET_LISTPACK, string(&listpack(&["x", "x"])), "duplicates"),
        (op::TYPE_SET_LISTPACK, string(b"junk"), "shorter than its header"),
        (op::TYPE_SET_INTSET, string(&intset(&[2, 1])), "not strictly ascending"),
        (op::TYPE_SET_INTSET, string(&intset(&[])), "an intset of 0"),
        (op::TYPE_SET, plain(0, &[]), "an empty set"),
        (op::TYPE_SET, plain(2, &["m", "m"]), "duplicates"),
        (op::TYPE_HASH, plain(0, &[]), "an empty hash"),
        (op::TYPE_HASH, plain(2, &["f", "1", "f", "2"]), "duplicates"),
    ];
    for (kind, value, expected) in cases {
        let error = load_one(&file_with(kind, b"the key", &value)).unwrap_err();
        let shown = error.to_string();
        assert!(matches!(error, RdbError::Corrupt { .. }), "type {kind}: {shown}");
        assert!(shown.contains("key 'the key'") && shown.contains(expected), "type {kind}: {shown}");
    }
    // A hash whose count of pairs overflows; a plain set cut short.
    let mut huge = vec![op::LEN_64BIT];
    huge.extend(u64::MAX.to_be_bytes());
    let error = load_one(&file_with(op::TYPE_HASH, b"k", &huge)).unwrap_err();
    assert!(matches!(error, RdbError::Corrupt { .. }), "{error}");
    let cut = file_with(op::TYPE_SET, b"k", &plain(3, &["a", "b"]));
    assert!(load_all(&cut, &options()).is_err());
    // A plain hash cut short inside a pair, and after a whole one.
    for items in [&["f", "1", "g"][..], &["f", "1"]] {
        let cut = file_with(op::TYPE_HASH, b"k", &plain(2, items));
        assert!(load_all(&cut, &options()).is_err(), "{items:?}");
    }
}

#[test]
fn redis_6_encodings_stay_unsupported_and_skippable() {
    // A zipmap (9) and a ziplist hash (13): each one string, which the skipper reads past.
    for kind in [9, 13] {
        let bytes = file_with(kind, b"old", &string(b"opaque blob"));
        let error = load_all(&bytes, &options()).unwrap_err();
        assert!(matches!(&error, RdbError::UnsupportedType { key, type_name: "hash" } if key == "old"), "{error}");
        let skip = LoadOptions { skip_unsupported_types: true, ..options() };
        let (loaded, report) = load_all(&bytes, &skip).unwrap();
        assert_eq!((loaded, report.keys_skipped), (vec![text(b"after", b"it", None)], 1));
    }
}

#[test]
fn collections_of_databases_beyond_databases_are_skipped_when_told() {
    let mut body = vec![op::SELECTDB, 16, op::TYPE_SET_INTSET];
    body.extend(string(b"elsewhere"));
    body.extend(string(&intset(&[1])));
    let bytes = raw_file(11, &body);
    assert!(matches!(load_all(&bytes, &options()), Err(RdbError::OtherDatabase { .. })));
    let skip = LoadOptions { skip_other_dbs: true, ..options() };
    assert_eq!(load_all(&bytes, &skip).unwrap().1.keys_skipped, 1);
}
