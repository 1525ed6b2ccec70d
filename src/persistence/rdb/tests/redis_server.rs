//! Hashes, sets and numbered databases against the real thing: files cstore writes pass
//! `redis-check-rdb` and load into `redis-server` 7 with every field, member, deadline and
//! database; files `redis-server` writes (listpack and hashtable hashes, intset and
//! hashtable sets, several databases) load into cstore. Needs the tools of
//! `redis_oracle.rs`: skipped without them, except under CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{RdbHeader, RdbWriter, SaveOptions, load};
use super::collections::collections;
use super::options;
use crate::engine::{EncodingLimits, SetExpiry, SetOptions, Store, Value};
use crate::persistence::config::PersistenceConfig;
use crate::persistence::progress::LoadProgress;
use crate::persistence::redis_oracle::{Redis, have_tools, now_ms};
use crate::persistence::snapshot;

/// The encoding thresholds the collection tests expect of redis-server.
const LIMITS: [&str; 4] = ["--hash-max-listpack-entries", "128", "--set-max-intset-entries", "512"];

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A hash's pairs or a set's members as `field=value` / `member` strings, sorted.
fn contents(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Hash(hash) => hash.pairs().iter().map(|(f, v)| format!("{}={}", text(f), text(v))).collect(),
        Value::Set(set) => set.members().iter().map(|m| text(m)).collect(),
        Value::String(s) => [text(s)].into(),
    }
}

/// redis-check-rdb accepts the file.
fn check_rdb(path: &Path) {
    let check = Command::new("redis-check-rdb").arg(path).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && report.contains("RDB looks OK"), "{report}");
}

fn temp_dir() -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    dir.keep()
}

#[test]
fn cstore_hashes_and_sets_load_into_redis_server() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    // Deadlines an hour on, for a live server.
    let entries: Vec<_> =
        collections().into_iter().map(|(key, value, at)| (key, value, at.map(|_| now_ms() + 3_600_000))).collect();
    let header = RdbHeader { redis_version: "7.0.0", ctime_secs: 0, used_mem: 0, aof_base: false };
    let file = std::fs::File::create(dir.join("dump.rdb")).unwrap();
    let mut writer = RdbWriter::new(std::io::BufWriter::new(file), SaveOptions::default(), &header).unwrap();
    writer.select_db(0, entries.len() as u64, entries.iter().filter(|e| e.2.is_some()).count() as u64);
    for (key, value, at) in &entries {
        writer.entry(key, value, *at).unwrap();
    }
    writer.finish().unwrap();

    check_rdb(&dir.join("dump.rdb"));

    let redis = Redis::start(&dir, &LIMITS);
    for (key, value, at) in &entries {
        let key = text(key);
        let got: BTreeSet<String> = match value {
            Value::Hash(_) => {
                let flat = redis.lines(&["HGETALL", &key]);
                flat.chunks(2).map(|pair| format!("{}={}", pair[0], pair[1])).collect()
            }
            Value::Set(_) => redis.lines(&["SMEMBERS", &key]).into_iter().collect(),
            Value::String(_) => [redis.cli(&["GET", &key])].into(),
        };
        assert_eq!(got, contents(value), "{key}");
        let ttl: i64 = redis.cli(&["PTTL", &key]).parse().unwrap();
        if at.is_some() {
            assert!(ttl > 3_000_000, "{key}: PTTL {ttl}");
        } else {
            assert_eq!(ttl, -1, "{key}");
        }
    }
    assert_eq!(redis.cli(&["DBSIZE"]), entries.len().to_string());
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_server_hashes_and_sets_load_into_cstore() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    let redis = Redis::start(&dir, &LIMITS);
    let fields: Vec<String> = (0..600).flat_map(|i| [format!("f{i}"), format!("value {i}")]).collect();
    let large_members: Vec<String> = (0..1000).map(|i| format!("member:{i}")).collect();
    let ints: Vec<String> = [-70000i64, -5, 0, 12, 1 << 40].iter().map(i64::to_string).collect();
    let with = |command: &[&str], rest: &[String]| {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(rest.iter().map(String::as_str));
        redis.cli(&args)
    };
    // Listpack field encodings: strings, 7-bit, 13-bit, 16/24/32/64-bit integers.
    let small =
        ["a", "text", "b", "7", "c", "-1000", "d", "30000", "e", "-8000000", "f", "2000000000", "g", "-9000000000"];
    let small: Vec<String> = small.iter().map(|s| s.to_string()).collect();
    assert_eq!(with(&["HSET", "small hash"], &small), "7");
    assert_eq!(with(&["HSET", "large hash"], &fields), "600");
    assert_eq!(with(&["SADD", "intset"], &ints), "5");
    assert_eq!(with(&["SADD", "large set"], &large_members), "1000");
    assert_eq!(redis.cli(&["SADD", "small set", "x", "y", "z"]), "3");
    assert_eq!(redis.cli(&["PEXPIRE", "large hash", "3600000"]), "1");
    assert_eq!(redis.cli(&["PEXPIRE", "intset", "3600000"]), "1");
    let keys = ["small hash", "large hash", "intset", "large set", "small set"];
    let encodings: Vec<String> = keys.iter().map(|key| redis.cli(&["OBJECT", "ENCODING", key])).collect();
    assert_eq!(encodings[..4], ["listpack", "hashtable", "intset", "hashtable"]);
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    drop(redis);

    let mut loaded = Vec::new();
    let file = std::fs::File::open(dir.join("dump.rdb")).unwrap();
    let report = load(file, &options(), &EncodingLimits::default(), |key| {
        loaded.push((text(&key.key), key.value.clone(), key.expires_at_ms));
        Ok(())
    })
    .unwrap();
    assert!(report.written_by.unwrap().starts_with('7'));
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = loaded.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["intset", "large hash", "large set", "small hash", "small set"]);
    let pairs =
        |flat: &[String]| -> BTreeSet<String> { flat.chunks(2).map(|p| format!("{}={}", p[0], p[1])).collect() };
    let expected: [BTreeSet<String>; 5] = [
        ints.iter().cloned().collect(),
        pairs(&fields),
        large_members.iter().cloned().collect(),
        pairs(&small),
        ["x", "y", "z"].iter().map(|s| s.to_string()).collect(),
    ];
    for ((name, value, _), expected) in loaded.iter().zip(&expected) {
        assert_eq!(&contents(value), expected, "{name}");
    }
    let deadlines: Vec<bool> = loaded.iter().map(|e| e.2.is_some_and(|at| at > now_ms())).collect();
    assert_eq!(deadlines, [true, true, false, false, false]);
    let encodings: Vec<&str> = loaded.iter().map(|e| e.1.encoding()).collect();
    assert_eq!(encodings, ["intset", "hashtable", "hashtable", "listpack", "listpack"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A config saving to and loading from `dir/dump.rdb`.
fn config_in(dir: &Path) -> PersistenceConfig {
    PersistenceConfig { dir: dir.to_owned(), ..PersistenceConfig::default() }
}

#[test]
fn cstore_databases_load_into_redis_server() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    let databases = Store::builder().build_databases(16).unwrap();
    let in_an_hour = SetOptions { expiry: SetExpiry::At(now_ms() + 3_600_000), ..SetOptions::default() };
    for (number, name) in [(0, "zero"), (3, "three"), (15, "fifteen")] {
        let store = databases.get(number).unwrap();
        let options = if number == 3 { in_an_hour } else { SetOptions::default() };
        store.put(b"k", Value::from(name), options);
        store.put(name.as_bytes(), Value::from("only here"), SetOptions::default());
    }
    databases.get(3).unwrap().hset(b"h", &[(b"f", b"three")]).unwrap();
    databases.get(15).unwrap().sadd(b"s", &[b"a", b"b", b"c"]).unwrap();
    databases.get(15).unwrap().expire_at(b"s", now_ms() + 3_600_000, Default::default());
    // Used, then emptied: no section.
    databases.get(7).unwrap().put(b"gone", Value::from("x"), SetOptions::default());
    databases.get(7).unwrap().delete(b"gone");
    let report = snapshot::save(&databases, &config_in(&dir), "7.0.0").unwrap();
    assert_eq!(report.keys, 8);
    check_rdb(&dir.join("dump.rdb"));

    let redis = Redis::start(&dir, &[]);
    let keyspace: Vec<String> =
        redis.lines(&["INFO", "keyspace"]).into_iter().filter(|line| line.starts_with("db")).collect();
    let sizes: Vec<&str> = keyspace.iter().map(|line| line.split(",avg_ttl").next().unwrap()).collect();
    assert_eq!(sizes, ["db0:keys=2,expires=0", "db3:keys=3,expires=1", "db15:keys=3,expires=1"]);
    for (number, name) in [(0, "zero"), (3, "three"), (15, "fifteen")] {
        assert_eq!(redis.cli_in(number, &["GET", "k"]), name);
        assert_eq!(redis.cli_in(number, &["GET", name]), "only here");
    }
    let ttl: i64 = redis.cli_in(3, &["PTTL", "k"]).parse().unwrap();
    assert!(ttl > 3_000_000, "PTTL {ttl}");
    assert_eq!(redis.cli_in(0, &["PTTL", "k"]), "-1");
    assert_eq!(redis.cli_in(3, &["HGET", "h", "f"]), "three");
    let members: BTreeSet<String> = redis.cli_in(15, &["SMEMBERS", "s"]).lines().map(str::to_owned).collect();
    assert_eq!(members, ["a", "b", "c"].map(str::to_owned).into());
    let ttl: i64 = redis.cli_in(15, &["PTTL", "s"]).parse().unwrap();
    assert!(ttl > 3_000_000, "PTTL {ttl}");
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_server_databases_load_into_cstore() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    let redis = Redis::start(&dir, &[]);
    assert_eq!(redis.cli_in(0, &["SET", "k", "zero"]), "OK");
    assert_eq!(redis.cli_in(3, &["SET", "k", "three"]), "OK");
    assert_eq!(redis.cli_in(3, &["PEXPIRE", "k", "3600000"]), "1");
    assert_eq!(redis.cli_in(3, &["HSET", "h", "f", "v", "g", "w"]), "2");
    assert_eq!(redis.cli_in(15, &["SADD", "s", "a", "b", "1"]), "3");
    assert_eq!(redis.cli_in(15, &["SET", "k", "fifteen"]), "OK");
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    drop(redis);

    let config = config_in(&dir);
    let databases = Store::builder().build_databases(16).unwrap();
    let report = snapshot::load(&databases, &config, &LoadProgress::default()).unwrap().unwrap();
    assert_eq!((report.keys_loaded, report.keys_skipped), (5, 0));
    let dbsizes: Vec<usize> = (0..16).map(|n| databases.existing(n).map_or(0, Store::len)).collect();
    assert_eq!(dbsizes, [1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for (number, name) in [(0, "zero"), (3, "three"), (15, "fifteen")] {
        assert_eq!(databases.get(number).unwrap().get(b"k").unwrap().as_deref(), Some(name.as_bytes()));
    }
    let (_, deadline) = databases.get(3).unwrap().get_with_deadline(b"k").unwrap();
    assert!(deadline.is_some_and(|at| at > now_ms() + 3_000_000), "{deadline:?}");
    assert_eq!(databases.get(0).unwrap().get_with_deadline(b"k").unwrap().1, None);
    let (hash, _) = databases.get(3).unwrap().get_with_deadline(b"h").unwrap();
    assert_eq!(contents(&hash), ["f=v", "g=w"].map(str::to_owned).into());
    let (set, _) = databases.get(15).unwrap().get_with_deadline(b"s").unwrap();
    assert_eq!(contents(&set), ["1", "a", "b"].map(str::to_owned).into());

    // A server with 4 databases: refused, naming the key and database, or skipped if told.
    let four = Store::builder().build_databases(4).unwrap();
    let error = snapshot::load(&four, &config, &LoadProgress::default()).unwrap_err();
    for expected in ["in database 15", "`databases` 4", "rdb-skip-other-dbs"] {
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
    let skipping = PersistenceConfig { rdb_skip_other_dbs: true, ..config };
    let four = Store::builder().build_databases(4).unwrap();
    let report = snapshot::load(&four, &skipping, &LoadProgress::default()).unwrap().unwrap();
    assert_eq!((report.keys_loaded, report.keys_skipped), (3, 2));
    assert_eq!((four.get(0).unwrap().len(), four.get(3).unwrap().len()), (1, 2));
    let _ = std::fs::remove_dir_all(dir);
}
