//! Round trips through the writer and reader, hand-built files for what only Redis writes,
//! and random corruption: every outcome is a value or an error, never a panic. Hashes and
//! sets, their blobs and the files redis-server writes are in the submodules.

mod blobs;
mod collections;
mod redis_server;

use proptest::prelude::*;

use super::*;
use crate::engine::{EncodingLimits, Value};

const NOW_MS: u64 = 1_700_000_000_000;

/// Redis's default 16 databases.
fn options() -> LoadOptions {
    LoadOptions::strict(NOW_MS)
}

fn header() -> RdbHeader<'static> {
    RdbHeader { redis_version: "7.0.0", ctime_secs: NOW_MS / 1000, used_mem: 1234, aof_base: false }
}

type Entry = (Vec<u8>, Value, Option<u64>);

/// A string entry.
fn text(key: &[u8], value: &[u8], at: Option<u64>) -> Entry {
    (key.to_vec(), Value::from(value), at)
}

/// `entries` as database 0.
fn save(entries: &[Entry], options: SaveOptions) -> Vec<u8> {
    save_databases(&[(0, entries.to_vec())], options)
}

/// Each database's entries in its own section, in the order given.
fn save_databases(databases: &[(usize, Vec<Entry>)], options: SaveOptions) -> Vec<u8> {
    let mut writer = RdbWriter::new(Vec::new(), options, &header()).unwrap();
    for (number, entries) in databases {
        let volatile = entries.iter().filter(|e| e.2.is_some()).count() as u64;
        writer.select_db(*number, entries.len() as u64, volatile);
        for (key, value, at) in entries {
            writer.entry(key, value, *at).unwrap();
        }
    }
    writer.finish().unwrap()
}

/// The keys loaded, whatever their database.
fn load_all(bytes: &[u8], options: &LoadOptions) -> Result<(Vec<Entry>, LoadReport), RdbError> {
    let (loaded, report) = load_databases(bytes, options)?;
    Ok((loaded.into_iter().map(|(_, entry)| entry).collect(), report))
}

/// The keys loaded, with their databases.
fn load_databases(bytes: &[u8], options: &LoadOptions) -> Result<(Vec<(usize, Entry)>, LoadReport), RdbError> {
    let mut loaded = Vec::new();
    let report = load(bytes, options, &EncodingLimits::default(), |k| {
        loaded.push((k.db, (k.key.clone(), k.value.clone(), k.expires_at_ms)));
        Ok(())
    })?;
    Ok((loaded, report))
}

fn sample_entries() -> Vec<Entry> {
    let long_text = b"abcdefgh".repeat(1000);
    // xorshift64*: bytes LZF cannot compress.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..5000)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect();
    [
        (&b"empty"[..], &b""[..], None),
        (b"int8", b"-128", None),
        (b"int16", b"32767", None),
        (b"int32", b"-2147483648", Some(NOW_MS + 60_000)),
        (b"int64", b"9223372036854775807", None),
        (b"leading zero", b"007", None),
        (b"plus", b"+5", None),
        (b"minus zero", b"-0", None),
        (b"\x00binary\xff key", b"\r\n\x00", None),
        (b"twenty one bytes long", b"aaaaaaaaaaaaaaaaaaaaa", None),
        (b"long", &long_text, Some(NOW_MS + 1)),
        (b"random", &random, None),
        (b"1234", b"value under an integer key", None),
    ]
    .into_iter()
    .map(|(k, v, at)| text(k, v, at))
    .collect()
}

#[test]
fn every_encoding_round_trips() {
    let entries = sample_entries();
    for options in [SaveOptions::default(), SaveOptions { compression: false, checksum: false }] {
        let bytes = save(&entries, options);
        let (loaded, report) = load_all(&bytes, &self::options()).unwrap();
        assert_eq!(loaded, entries);
        assert_eq!(report.keys_loaded, entries.len() as u64);
        assert_eq!(report.checksum_verified, options.checksum);
        assert_eq!(report.written_by.as_deref(), Some("7.0.0"));
    }
}

#[test]
fn compression_applies_only_where_it_saves_space() {
    let compressible = vec![text(b"k", &b"x".repeat(10_000), None)];
    assert!(save(&compressible, SaveOptions::default()).len() < 1000);
    assert!(save(&compressible, SaveOptions { compression: false, checksum: true }).len() > 10_000);
    // Incompressible: written raw, so the file is not larger than without compression.
    let random = vec![(b"k".to_vec(), sample_entries()[11].1.clone(), None)];
    assert_eq!(
        save(&random, SaveOptions::default()).len(),
        save(&random, SaveOptions { compression: false, checksum: true }).len()
    );
}

#[test]
fn an_empty_store_has_no_database_section() {
    let bytes = save(&[], SaveOptions::default());
    assert!(!bytes.contains(&op::SELECTDB), "{bytes:?}");
    assert_eq!(bytes[bytes.len() - 9], op::EOF);
    let (loaded, report) = load_all(&bytes, &options()).unwrap();
    assert!(loaded.is_empty() && report.checksum_verified);
}

#[test]
fn expired_keys_are_not_loaded() {
    let entries = vec![
        text(b"past", b"1", Some(NOW_MS - 1)),
        text(b"now", b"1", Some(NOW_MS)),
        text(b"future", b"1", Some(NOW_MS + 1)),
    ];
    let (loaded, report) = load_all(&save(&entries, SaveOptions::default()), &options()).unwrap();
    assert_eq!(loaded, entries[2..]);
    assert_eq!((report.keys_loaded, report.keys_expired), (1, 2));
}

#[test]
fn a_flipped_bit_fails_the_checksum_unless_checking_is_off() {
    let mut bytes = save(&[text(b"key", b"value", None)], SaveOptions::default());
    let position = bytes.windows(5).position(|w| w == b"value").unwrap();
    bytes[position] = b'w';
    assert!(matches!(load_all(&bytes, &options()), Err(RdbError::Checksum { .. })));
    let unchecked = LoadOptions { verify_checksum: false, ..options() };
    assert_eq!(load_all(&bytes, &unchecked).unwrap().0[0].1, Value::from("walue"));
}

/// A file as Redis would write it, from raw body bytes (after the magic, before EOF).
fn raw_file(version: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("REDIS{version:04}").into_bytes();
    bytes.extend_from_slice(body);
    bytes.push(op::EOF);
    let checksum = CRC64.checksum(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// A raw string with a 6-bit length.
fn s(text: &[u8]) -> Vec<u8> {
    let mut out = vec![text.len() as u8];
    out.extend_from_slice(text);
    out
}

/// A list (a type cstore does not hold) in database `db`, then a string in database 0.
fn list_then_string(db: u8) -> Vec<u8> {
    let mut body = vec![op::SELECTDB, db, 1];
    body.extend(s(b"mylist"));
    body.push(2); // two elements
    body.extend(s(b"a"));
    body.extend(s(b"b"));
    body.push(op::SELECTDB);
    body.push(0);
    body.push(0);
    body.extend(s(b"kept"));
    body.extend(s(b"yes"));
    raw_file(10, &body)
}

#[test]
fn an_unsupported_type_stops_the_load_naming_the_key_unless_skipped() {
    let bytes = list_then_string(0);
    let error = load_all(&bytes, &options()).unwrap_err();
    assert!(matches!(&error, RdbError::UnsupportedType { key, type_name: "list" } if key == "mylist"), "{error}");
    assert!(error.to_string().contains("rdb-skip-unsupported-types yes"), "{error}");
    let skip = LoadOptions { skip_unsupported_types: true, ..options() };
    let (loaded, report) = load_all(&bytes, &skip).unwrap();
    assert_eq!(loaded, [text(b"kept", b"yes", None)]);
    assert_eq!(report.keys_skipped, 1);
}

#[test]
fn a_key_of_a_database_beyond_databases_stops_the_load_unless_skipped() {
    let mut body = vec![op::SELECTDB, 3, 0];
    body.extend(s(b"three"));
    body.extend(s(b"v"));
    body.extend([op::SELECTDB, 20, 0]);
    body.extend(s(b"twenty"));
    body.extend(s(b"v"));
    let bytes = raw_file(10, &body);
    let error = load_all(&bytes, &options()).unwrap_err();
    assert!(matches!(&error, RdbError::OtherDatabase { key, db: 20, databases: 16 } if key == "twenty"), "{error}");
    for expected in ["database 20", "`databases` 16", "`databases` 21 or more", "rdb-skip-other-dbs yes"] {
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
    let skip = LoadOptions { skip_other_dbs: true, ..options() };
    let (loaded, report) = load_databases(&bytes, &skip).unwrap();
    assert_eq!(loaded, [(3, text(b"three", b"v", None))]);
    assert_eq!((report.keys_loaded, report.keys_skipped), (1, 1));
    // With 21 databases, both load; with 3, database 3 is beyond too.
    assert_eq!(load_databases(&bytes, &LoadOptions { databases: 21, ..options() }).unwrap().0.len(), 2);
    let three = LoadOptions { databases: 3, ..options() };
    assert!(matches!(load_all(&bytes, &three), Err(RdbError::OtherDatabase { db: 3, databases: 3, .. })));
    // A list in database 20 needs both options.
    let both = LoadOptions { skip_other_dbs: true, skip_unsupported_types: true, ..options() };
    assert!(load_all(&list_then_string(20), &skip).is_err());
    assert_eq!(load_all(&list_then_string(20), &both).unwrap().0.len(), 1);
    // A database number no machine can index is beyond too, not a panic.
    let mut body = vec![op::SELECTDB, op::LEN_64BIT];
    body.extend(u64::MAX.to_be_bytes());
    body.extend([0]);
    body.extend(s(b"far"));
    body.extend(s(b"v"));
    let error = load_all(&raw_file(10, &body), &options()).unwrap_err();
    assert!(matches!(error, RdbError::OtherDatabase { db: u64::MAX, .. }), "{error}");
    assert_eq!(load_all(&raw_file(10, &body), &skip).unwrap().1.keys_skipped, 1);
}

#[test]
fn databases_round_trip_each_in_its_own_section_in_order() {
    let collections = collections::collections();
    let databases = vec![
        (0, vec![text(b"zero", b"0", None), text(b"shared name", b"in 0", Some(NOW_MS + 5_000))]),
        (3, collections[..4].to_vec()),
        // Selected but without keys: no section, as Redis.
        (7, Vec::new()),
        (15, collections[4..].iter().cloned().chain([text(b"shared name", b"in 15", None)]).collect()),
    ];
    let bytes = save_databases(&databases, SaveOptions::default());
    let (loaded, report) = load_databases(&bytes, &options()).unwrap();
    let expected: Vec<(usize, Entry)> =
        databases.iter().flat_map(|(number, entries)| entries.iter().map(|e| (*number, e.clone()))).collect();
    assert_eq!(loaded, expected);
    assert_eq!(report.keys_loaded, expected.len() as u64);
    // SELECTDB n RESIZEDB keys volatile, as rdbSaveDb writes them; none for database 7.
    for (number, keys, volatile) in [(0u8, 2u8, 1u8), (3, 4, 1), (15, 5, 1)] {
        let section = [op::SELECTDB, number, op::RESIZEDB, keys, volatile];
        assert_eq!(bytes.windows(5).filter(|w| *w == section).count(), 1, "{section:?}");
    }
    assert!(!bytes.windows(2).any(|w| w == [op::SELECTDB, 7]));
}

#[test]
fn old_expiry_opcodes_aux_eviction_hints_and_functions_are_read() {
    let mut body = vec![op::AUX];
    body.extend(s(b"redis-ver"));
    body.extend(s(b"6.2.0"));
    body.extend([op::RESIZEDB, 2, 2, op::EXPIRETIME]);
    body.extend(((NOW_MS / 1000 + 100) as u32).to_le_bytes());
    body.extend([op::FREQ, 5, 0]);
    body.extend(s(b"seconds"));
    body.extend(s(b"v"));
    body.extend([op::IDLE, 10, 0]);
    body.extend(s(b"idle"));
    body.extend([0xC0 | op::ENC_INT16, 0x39, 0x30]);
    let (loaded, report) = load_all(&raw_file(9, &body), &options()).unwrap();
    assert_eq!(report.written_by.as_deref(), Some("6.2.0"));
    assert_eq!(loaded[0].2, Some((NOW_MS / 1000 + 100) * 1000));
    assert_eq!(loaded[1], text(b"idle", b"12345", None));

    let mut body = vec![op::FUNCTION2];
    body.extend(s(b"#!lua name=lib"));
    let bytes = raw_file(10, &body);
    let error = load_all(&bytes, &options()).unwrap_err();
    assert!(error.to_string().contains("a function library"), "{error}");
    let skip = LoadOptions { skip_unsupported_types: true, ..options() };
    assert_eq!(load_all(&bytes, &skip).unwrap().1.other_skipped, 1);
}

#[test]
fn headers_and_versions_are_checked() {
    assert!(matches!(load_all(b"", &options()), Err(RdbError::NotRdb)));
    assert!(matches!(load_all(b"REDIS", &options()), Err(RdbError::NotRdb)));
    assert!(matches!(load_all(b"*1\r\n$4\r\nPING\r\n", &options()), Err(RdbError::NotRdb)));
    assert!(matches!(load_all(&raw_file(13, &[]), &options()), Err(RdbError::UnsupportedVersion(13))));
    assert!(matches!(load_all(&raw_file(0, &[]), &options()), Err(RdbError::UnsupportedVersion(0))));
    // Before version 5 there is no trailer.
    let mut old = b"REDIS0004".to_vec();
    old.extend([0]);
    old.extend(s(b"k"));
    old.extend(s(b"v"));
    old.push(op::EOF);
    assert_eq!(load_all(&old, &options()).unwrap().0.len(), 1);
}

#[test]
fn corrupt_lengths_give_errors_without_huge_allocations() {
    // A string claiming 2^64 - 1 bytes, and LZF claiming a 1 TB expansion of 2 bytes.
    let mut body = vec![0, op::LEN_64BIT];
    body.extend(u64::MAX.to_be_bytes());
    assert!(matches!(load_all(&raw_file(10, &body), &options()), Err(RdbError::Truncated { .. })));
    let mut body = vec![0];
    body.extend(s(b"k"));
    body.extend([0xC0 | op::ENC_LZF, 2, op::LEN_64BIT]);
    body.extend((1u64 << 40).to_be_bytes());
    body.extend([0, b'a']);
    let error = load_all(&raw_file(10, &body), &options()).unwrap_err();
    assert!(matches!(error, RdbError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("LZF"), "{error}");
}

/// The strings, and the collections in their small encodings.
fn small_entries() -> Vec<Entry> {
    let small = collections::collections().into_iter().filter(|e| e.1.encoding() != "hashtable");
    sample_entries().into_iter().chain(small).collect()
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = save(&small_entries(), SaveOptions::default());
    for len in 0..bytes.len() {
        assert!(load_all(&bytes[..len], &options()).is_err(), "a file cut at {len} of {} loaded", bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random byte changes and cuts, with the checksum off so that the decoder sees them.
    #[test]
    fn corruption_never_panics(
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        skip in any::<bool>(),
    ) {
        let mut bytes = save(&small_entries(), SaveOptions::default());
        for (index, byte) in changes {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let len = cut.index(bytes.len() + 1);
        let options = LoadOptions {
            verify_checksum: false,
            skip_unsupported_types: skip,
            skip_other_dbs: skip,
            ..options()
        };
        let _ = load_all(&bytes[..len], &options);
    }

    /// Arbitrary bytes after a valid header.
    #[test]
    fn garbage_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), skip in any::<bool>()) {
        let options = LoadOptions { skip_unsupported_types: skip, skip_other_dbs: skip, ..options() };
        let _ = load_all(&raw_file(10, &body), &options);
    }

    #[test]
    fn any_strings_round_trip(
        entries in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..40), prop::collection::vec(any::<u8>(), 0..300), any::<Option<u32>>()),
            0..20,
        ),
    ) {
        let entries: Vec<Entry> =
            entries.into_iter().map(|(k, v, ttl)| text(&k, &v, ttl.map(|t| NOW_MS + 1 + u64::from(t)))).collect();
        let (loaded, _) = load_all(&save(&entries, SaveOptions::default()), &options()).unwrap();
        prop_assert_eq!(loaded, entries);
    }
}
