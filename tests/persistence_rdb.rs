//! The RDB codec against the real thing: files cstore writes pass `redis-check-rdb` and load
//! into `redis-server` 7 with every key, value and expiry; files `redis-server` saves load
//! into cstore with the same, and keys of other types or databases stop the load by name
//! (or are skipped when told). Needs redis-server and redis-check-rdb
//! (`scripts/test-deps.sh`); under CI a missing tool fails the test.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::server::{RespClient, bulk, int, ok, simple};
use common::tools::{RedisServer, require};
use cstore::persistence::rdb::{LoadOptions, RdbError, RdbHeader, RdbWriter, SaveOptions, load};
use cstore::server::resp_value::Value;

type Entry = (Vec<u8>, Vec<u8>, Option<u64>);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Binary keys, empty values, integers at each encoding's edges, non-canonical integers,
/// compressible and incompressible large values, and expiries.
fn entries() -> Vec<Entry> {
    let in_an_hour = now_ms() + 3_600_000;
    let mut entries: Vec<Entry> = vec![
        (b"empty".to_vec(), Vec::new(), None),
        (b"\x00\xffbinary\r\nkey".to_vec(), b"\x00\x01\x02".to_vec(), None),
        (Vec::new(), b"the empty key".to_vec(), None),
        (b"large compressible".to_vec(), b"0123456789".repeat(100_000), Some(in_an_hour)),
        (b"expires".to_vec(), b"soon".to_vec(), Some(in_an_hour + 1)),
    ];
    for (i, number) in ["0", "-1", "127", "-128", "128", "32767", "-32768", "65536", "2147483647", "-2147483648"]
        .iter()
        .chain(&["2147483648", "9223372036854775807", "007", "+1", "-0", "1e3", " 1"])
        .enumerate()
    {
        entries.push((format!("number:{i}").into_bytes(), number.as_bytes().to_vec(), None));
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    entries.push((b"large random".to_vec(), random, None));
    entries
}

fn write_rdb(path: &Path, entries: &[Entry], options: SaveOptions) {
    let header = RdbHeader { redis_version: "7.0.0", ctime_secs: now_ms() / 1000, used_mem: 1 << 20, aof_base: false };
    let file = std::fs::File::create(path).unwrap();
    let mut writer = RdbWriter::new(std::io::BufWriter::new(file), options, &header).unwrap();
    for (key, value, at) in entries {
        writer.entry(key, &cstore::engine::Value::from(value.as_slice()), *at).unwrap();
    }
    writer.finish().unwrap();
}

fn load_file(path: &Path, options: LoadOptions) -> Result<Vec<Entry>, RdbError> {
    let mut loaded = Vec::new();
    load(std::fs::File::open(path).unwrap(), &options, &cstore::engine::EncodingLimits::default(), |k| {
        loaded.push((
            k.key.clone(),
            k.value.as_string().expect("only strings are saved here").to_vec(),
            k.expires_at_ms,
        ));
        Ok(())
    })?;
    Ok(loaded)
}

fn strict() -> LoadOptions {
    LoadOptions::strict(now_ms())
}

/// redis-check-rdb accepts the file, and reads it as a snapshot, not an AOF base.
fn check_rdb(tool: &Path, file: &Path) {
    let output = Command::new(tool).arg(file).output().expect("cannot run redis-check-rdb");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("RDB looks OK"), "redis-check-rdb refused {file:?}:\n{text}");
    assert!(text.contains("AUX FIELD aof-base = '0'"), "{file:?}:\n{text}");
}

/// Every entry is in `redis` with its value and exact deadline, and nothing else is.
fn assert_redis_holds(redis: &mut RespClient, entries: &[Entry]) {
    assert_eq!(redis.send(&["DBSIZE"]), int(entries.len() as i64));
    for (key, value, at) in entries {
        let shown = String::from_utf8_lossy(key);
        assert_eq!(redis.send(&[&b"GET"[..], key]), bulk(value), "value of {shown:?}");
        let deadline = at.map_or(-1, |at| at as i64);
        assert_eq!(redis.send(&[&b"PEXPIRETIME"[..], key]), int(deadline), "deadline of {shown:?}");
    }
}

#[test]
fn cstore_files_pass_redis_check_rdb_and_load_into_redis_server() {
    let (Some(redis_server), Some(check)) = (require("redis-server"), require("redis-check-rdb")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.rdb");
    let all = entries();
    for (entries, options) in [
        (&all[..], SaveOptions::default()),
        (&all[..], SaveOptions { compression: false, checksum: false }),
        (&[][..], SaveOptions::default()),
    ] {
        write_rdb(&file, entries, options);
        check_rdb(&check, &file);
        let redis = RedisServer::start(&redis_server, &["--dir", dir.path().to_str().unwrap()]);
        assert_redis_holds(&mut RespClient::connect(redis.addr), entries);
    }
}

/// A redis-server on a fresh directory, with every database a Redis file may use.
fn redis_in(redis_server: &Path, dir: &Path) -> (RedisServer, RespClient) {
    let redis = RedisServer::start(redis_server, &["--dir", dir.to_str().unwrap()]);
    let client = RespClient::connect(redis.addr);
    (redis, client)
}

fn put(redis: &mut RespClient, entries: &[Entry]) {
    for (key, value, at) in entries {
        assert_eq!(redis.send(&[&b"SET"[..], key, value]), ok());
        if let Some(at) = at {
            assert_eq!(redis.send(&[&b"PEXPIREAT"[..], key, at.to_string().as_bytes()]), int(1));
        }
    }
}

#[test]
fn redis_server_files_load_into_cstore_with_every_key_value_and_deadline() {
    let Some(redis_server) = require("redis-server") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_redis, mut client) = redis_in(&redis_server, dir.path());
    let mut expected = entries();
    put(&mut client, &expected);
    expected.sort();
    for compression in ["yes", "no"] {
        assert_eq!(client.send(&["CONFIG", "SET", "rdbcompression", compression]), ok());
        assert_eq!(client.send(&["SAVE"]), ok());
        let mut loaded = load_file(&dir.path().join("dump.rdb"), strict()).unwrap();
        loaded.sort();
        assert_eq!(loaded.len(), expected.len());
        assert!(loaded == expected, "rdbcompression {compression}: loaded keys differ from those set");
    }
}

/// Each key loaded, with its type and number of elements, sorted.
fn load_kinds(path: &Path, options: LoadOptions) -> Result<Vec<(String, &'static str, usize)>, RdbError> {
    let mut loaded = Vec::new();
    let limits = cstore::engine::EncodingLimits::default();
    load(std::fs::File::open(path).unwrap(), &options, &limits, |k| {
        loaded.push((String::from_utf8(k.key.clone()).unwrap(), k.value.kind().name(), k.value.elements()));
        Ok(())
    })?;
    loaded.sort();
    Ok(loaded)
}

#[test]
fn other_types_and_databases_stop_the_load_by_name_or_are_skipped() {
    let Some(redis_server) = require("redis-server") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_redis, mut client) = redis_in(&redis_server, dir.path());
    let file = dir.path().join("dump.rdb");
    assert_eq!(client.send(&["SET", "kept", "yes"]), ok());
    assert_eq!(client.send(&["RPUSH", "my list", "item"]), int(1));
    assert_eq!(client.send(&["SAVE"]), ok());
    let error = load_file(&file, strict()).unwrap_err();
    assert!(matches!(&error, RdbError::UnsupportedType { key, type_name: "list" } if key == "my list"), "{error}");
    // A failed load reads only: the file is as redis-server wrote it.
    let saved = std::fs::read(&file).unwrap();
    load_file(&file, strict()).unwrap_err();
    assert_eq!(std::fs::read(&file).unwrap(), saved);

    // Every type and encoding redis-server 7.0 writes, small and large, is loaded (strings,
    // hashes, sets) or walked past (the others).
    let many: Vec<String> = (0..600).map(|i| format!("member {i} {}", "x".repeat(i % 70))).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(client.send(&[&["RPUSH", "small list", "a", "1"][..]].concat()), int(2));
    assert_eq!(client.send(&[&["RPUSH", "large list"][..], &many].concat()), int(600));
    assert_eq!(client.send(&["SADD", "intset", "1", "2", "3"]), int(3));
    assert_eq!(client.send(&["SADD", "small set", "a", "b"]), int(2));
    assert_eq!(client.send(&[&["SADD", "large set"][..], &many].concat()), int(600));
    assert_eq!(client.send(&["ZADD", "small zset", "1.5", "a", "inf", "b"]), int(2));
    let scored: Vec<String> = many.iter().enumerate().flat_map(|(i, m)| [i.to_string(), m.to_string()]).collect();
    let scored: Vec<&str> = scored.iter().map(String::as_str).collect();
    assert_eq!(client.send(&[&["ZADD", "large zset"][..], &scored].concat()), int(600));
    let pairs: Vec<&str> = many.iter().flat_map(|m| [*m, *m]).collect();
    assert_eq!(client.send(&[&["HSET", "large hash"][..], &pairs].concat()), int(600));
    for id in ["1-1", "2-1", "3-1"] {
        assert!(matches!(client.send(&["XADD", "stream", id, "f", "v"]), Value::Bulk(_)));
    }
    assert_eq!(client.send(&["XGROUP", "CREATE", "stream", "group", "0"]), ok());
    assert!(matches!(
        client.send(&["XREADGROUP", "GROUP", "group", "alice", "COUNT", "2", "STREAMS", "stream", ">"]),
        Value::Array(_)
    ));
    assert_eq!(client.send(&["SELECT", "5"]), ok());
    assert_eq!(client.send(&["SET", "in db 5", "v"]), ok());
    assert_eq!(client.send(&["SAVE"]), ok());

    // A server with fewer databases than the file uses refuses the key, or skips it when told.
    let skip_types = LoadOptions { skip_unsupported_types: true, databases: 5, ..strict() };
    let error = load_kinds(&file, skip_types).unwrap_err();
    assert!(matches!(&error, RdbError::OtherDatabase { key, db: 5, .. } if key == "in db 5"), "{error}");
    let skip_both = LoadOptions { skip_other_dbs: true, ..skip_types };
    let loaded = load_kinds(&file, skip_both).unwrap();
    let expected = [
        ("intset", "set", 3),
        ("kept", "string", 1),
        ("large hash", "hash", 600),
        ("large set", "set", 600),
        ("small set", "set", 2),
    ];
    assert_eq!(loaded, expected.map(|(key, kind, len)| (key.to_owned(), kind, len)));
    assert_eq!(client.send(&["SELECT", "0"]), ok());
    assert_eq!(client.send(&["TYPE", "stream"]), simple("stream"));
}

#[test]
fn corrupt_redis_files_give_clear_errors() {
    let Some(redis_server) = require("redis-server") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_redis, mut client) = redis_in(&redis_server, dir.path());
    put(&mut client, &entries());
    assert_eq!(client.send(&["SAVE"]), ok());
    let file = dir.path().join("dump.rdb");
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    std::fs::write(&file, &flipped).unwrap();
    let error = load_file(&file, strict()).unwrap_err().to_string();
    assert!(error.contains("checksum") || error.contains("corrupt"), "{error}");

    std::fs::write(&file, &good[..good.len() / 3]).unwrap();
    let error = load_file(&file, strict()).unwrap_err().to_string();
    assert!(error.starts_with("the RDB file is truncated: it ends at byte"), "{error}");
}
