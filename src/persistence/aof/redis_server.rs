//! Numbered databases against the real thing: the AOFs redis-server 7 writes (RDB preamble or
//! commands, then SELECT, MOVE, COPY ... DB, SWAPDB, FLUSHDB and MULTI/EXEC as it logs them)
//! replay into cstore to redis-server's own contents; the AOFs cstore writes pass
//! redis-check-aof and load into redis-server. Needs the tools of `redis_oracle.rs`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::manifest::{AofFile, FileKind, Manifest};
use super::{base_name, incr_name, load, manifest_name, resp, select_db0, write_base};
use crate::engine::{Databases, SetExpiry, SetOptions, Store, Value};
use crate::persistence::progress::LoadProgress;
use crate::persistence::rdb::{LoadOptions, RdbHeader, SaveOptions};
use crate::persistence::redis_oracle::{Contents, Redis, contents_of, have_tools, now_ms};

const NAME: &str = "appendonly.aof";

fn options() -> LoadOptions {
    LoadOptions::strict(0)
}

/// Waits until redis-server has no AOF rewrite running or scheduled.
fn wait_for_rewrite(redis: &Redis) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = redis.cli(&["INFO", "persistence"]);
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return;
        }
        assert!(Instant::now() < deadline, "the AOF rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_server_aofs_with_databases_replay_into_cstore() {
    if !have_tools() {
        return;
    }
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(dir.path(), &["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        // Into the base at the rewrite.
        redis.pipe(
            "SET a zero\nSELECT 3\nSET a three\nHSET h f v g w\nSADD s x y 1 2\nSET t ttl PX 3600000\n\
             SELECT 15\nSET a fifteen\n",
        );
        assert!(redis.cli(&["BGREWRITEAOF"]).contains("started"));
        wait_for_rewrite(&redis);
        // Into the incremental file, as Redis logs them.
        redis.pipe(
            "SELECT 3\nMOVE a 0\nMOVE h 7\nCOPY s s2 DB 15\nCOPY a a2\nSET b moved PX 3600000\nMOVE b 9\n\
             SWAPDB 3 12\nSELECT 15\nMULTI\nSET in-multi 15\nSELECT 4\nSET m 4\nEXEC\nSET after 4\n\
             SELECT 5\nSET gone 5\nFLUSHDB\nSELECT 6\nCOPY nothing x DB 2\nSELECT 0\nSET last 0\n",
        );
        let expected = redis.contents(16);
        drop(redis);
        let databases = Store::builder().build_databases(16).unwrap();
        let loaded = load::load(
            &dir.path().join("appendonlydir"),
            &manifest_name(NAME),
            &databases,
            options(),
            &LoadProgress::default(),
        )
        .unwrap();
        assert!(loaded.is_some(), "preamble {preamble}");
        assert_eq!(contents_of(&databases), expected, "preamble {preamble}");
        // What the commands did, so that the comparison is not of two empty sets.
        let keys: Vec<(usize, &str)> = expected.keys().map(|(db, key)| (*db, key.as_str())).collect();
        assert_eq!(
            keys,
            [
                (0, "a"),
                (0, "last"),
                (4, "after"),
                (4, "m"),
                (7, "h"),
                (9, "b"),
                (12, "a"),
                (12, "a2"),
                (12, "s"),
                (12, "t"),
                (15, "a"),
                (15, "in-multi"),
                (15, "s2")
            ],
            "preamble {preamble}"
        );
    }
}

/// Strings, a hash and a set, some with deadlines an hour on, in databases 0, 3 and 15.
fn filled() -> Databases {
    let databases = Store::builder().build_databases(16).unwrap();
    let later = SetOptions { expiry: SetExpiry::At(now_ms() + 3_600_000), ..SetOptions::default() };
    for number in [0, 3, 15] {
        let store = databases.get(number).unwrap();
        store.put(b"name", Value::from(format!("db {number}")), SetOptions::default());
        store.put(b"later", Value::from("x"), later);
        store.hset(b"hash", &[(b"db", number.to_string().as_bytes()), (b"f", b"v")]).unwrap();
        store.sadd(b"set", &[b"a", b"1", number.to_string().as_bytes()]).unwrap();
    }
    databases
}

/// Writes an AOF of `source` as its base and an incremental file with SELECTs.
fn write_aof(dir: &Path, source: &Databases, rdb: bool) {
    let base = AofFile { name: base_name(NAME, 1, rdb), seq: 1, kind: FileKind::Base };
    let header = RdbHeader {
        redis_version: "7.0.0",
        ctime_secs: now_ms() / 1000,
        used_mem: source.memory_bytes(),
        aof_base: true,
    };
    write_base(source.snapshot(), dir, &base.name, rdb.then_some((SaveOptions::default(), header))).unwrap();
    let incr = AofFile { name: incr_name(NAME, 1), seq: 1, kind: FileKind::Incr };
    let mut commands = select_db0();
    for command in [&["SET", "incr", "0"][..], &["SELECT", "3"], &["SET", "incr", "3"], &["SWAPDB", "3", "4"]] {
        resp::encode(&mut commands, &command.iter().map(|arg| arg.as_bytes()).collect::<Vec<_>>());
    }
    std::fs::write(dir.join(&incr.name), commands).unwrap();
    let manifest = Manifest { base: Some(base), history: Vec::new(), incrs: vec![incr] };
    std::fs::write(dir.join(manifest_name(NAME)), manifest.to_text()).unwrap();
}

#[test]
fn cstore_aofs_with_databases_load_into_redis_server() {
    if !have_tools() {
        return;
    }
    for (rdb, source) in [(true, filled()), (false, filled()), (false, Store::builder().build_databases(16).unwrap())] {
        let dir = tempfile::tempdir().unwrap();
        let aof_dir = dir.path().join("appendonlydir");
        std::fs::create_dir(&aof_dir).unwrap();
        write_aof(&aof_dir, &source, rdb);
        let shown = format!("rdb {rdb}, {} keys", source.len());

        let check = Command::new("redis-check-aof").arg(aof_dir.join(manifest_name(NAME))).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success() && report.contains("is valid"), "{shown}: {report}");

        let loaded = Store::builder().build_databases(16).unwrap();
        load::load(&aof_dir, &manifest_name(NAME), &loaded, options(), &LoadProgress::default()).unwrap();
        let mut expected: Contents = contents_of(&loaded);
        let redis = Redis::start(dir.path(), &["--appendonly", "yes"]);
        assert_eq!(redis.contents(16), expected, "{shown}");
        drop(redis);
        // The incremental file's writes, on top of the base's keys.
        let incr = |db| (db, "incr".to_owned());
        assert_eq!(expected.remove(&incr(0)).map(|(_, items, _)| items), Some(["0".to_owned()].into()), "{shown}");
        assert_eq!(expected.remove(&incr(4)).map(|(_, items, _)| items), Some(["3".to_owned()].into()), "{shown}");
        let moved: Contents =
            expected.into_iter().map(|((db, key), value)| ((if db == 4 { 3 } else { db }, key), value)).collect();
        assert_eq!(moved, contents_of(&source), "{shown}");
    }
}
