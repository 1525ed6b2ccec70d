//! Numbered databases through a real `cstore serve`: SELECT, MOVE, SWAPDB, COPY ... DB,
//! FLUSHDB, INFO keyspace and CLIENT LIST per database, the `databases` setting, and every
//! database surviving a restart through the AOF and through a snapshot, read back by
//! redis-server 7 too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::server::{RespClient, TestServer, bulk, int, ok, simple};
use common::tools::{RedisServer, require};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;

fn error(text: &str) -> Value {
    Value::Error(text.as_bytes().to_vec().into())
}

fn text(value: &Value) -> String {
    match value {
        Value::Bulk(bytes) | Value::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

fn sorted(value: &Value) -> Vec<String> {
    let Value::Array(items) = value else { panic!("not an array: {value:?}") };
    let mut items: Vec<String> = items.iter().map(text).collect();
    items.sort();
    items
}

/// Every key of the first 16 databases: (db, key) -> type, value and whether it expires.
/// Works against cstore and redis-server alike.
fn contents(client: &mut RespClient) -> BTreeMap<(usize, String), String> {
    let mut all = BTreeMap::new();
    for db in 0..16 {
        assert_eq!(client.send(&["SELECT", &db.to_string()]), ok());
        for key in sorted(&client.send(&["KEYS", "*"])) {
            let kind = text(&client.send(&["TYPE", &key]));
            let value = match kind.as_str() {
                "string" => text(&client.send(&["GET", &key])),
                "hash" => {
                    let Value::Array(flat) = client.send(&["HGETALL", &key]) else { panic!() };
                    let mut pairs: Vec<String> =
                        flat.chunks(2).map(|pair| format!("{}={}", text(&pair[0]), text(&pair[1]))).collect();
                    pairs.sort();
                    pairs.join(",")
                }
                "set" => sorted(&client.send(&["SMEMBERS", &key])).join(","),
                other => panic!("unexpected type {other}"),
            };
            let Value::Integer(pttl) = client.send(&["PTTL", &key]) else { panic!() };
            all.insert((db, key), format!("{kind}:{value}:{}", if pttl > 0 { "volatile" } else { "persistent" }));
        }
    }
    assert_eq!(client.send(&["SELECT", "0"]), ok());
    all
}

/// Writes in several databases, with the commands that move data between them.
fn write_across_databases(client: &mut RespClient) {
    for command in [
        vec!["SET", "k", "zero"],
        vec!["SET", "ttl", "zero", "EX", "3600"],
        vec!["SELECT", "3"],
        vec!["SET", "k", "three"],
        vec!["HSET", "h", "f1", "v1", "f2", "v2"],
        vec!["SADD", "s", "a", "b", "c"],
        vec!["SELECT", "15"],
        vec!["SET", "k", "fifteen"],
        vec!["SET", "moved", "from fifteen", "PX", "3600000"],
        vec!["SELECT", "7"],
        vec!["SET", "flushed", "soon"],
    ] {
        assert!(!matches!(client.send(&command), Value::Error(_)), "{command:?}");
    }
    assert_eq!(client.send(&["FLUSHDB"]), ok());
    assert_eq!(client.send(&["SELECT", "15"]), ok());
    assert_eq!(client.send(&["MOVE", "moved", "4"]), int(1));
    assert_eq!(client.send(&["COPY", "k", "copied", "DB", "5"]), int(1));
    assert_eq!(client.send(&["SWAPDB", "3", "6"]), ok());
    assert_eq!(client.send(&["SELECT", "0"]), ok());
    // MOVE and COPY ... DB inside a transaction: with the AOF on, their records go inside
    // the EXEC's MULTI ... EXEC, not in a MULTI of their own.
    for command in [
        vec!["MULTI"],
        vec!["SET", "in-exec", "x"],
        vec!["MOVE", "in-exec", "8"],
        vec!["COPY", "k", "k", "DB", "8"],
        vec!["EXEC"],
    ] {
        assert!(!matches!(client.send(&command), Value::Error(_)), "{command:?}");
    }
}

fn expected_after_writes() -> BTreeMap<(usize, String), String> {
    [
        ((0, "k"), "string:zero:persistent"),
        ((0, "ttl"), "string:zero:volatile"),
        ((4, "moved"), "string:from fifteen:volatile"),
        ((5, "copied"), "string:fifteen:persistent"),
        ((6, "h"), "hash:f1=v1,f2=v2:persistent"),
        ((6, "k"), "string:three:persistent"),
        ((6, "s"), "set:a,b,c:persistent"),
        ((8, "in-exec"), "string:x:persistent"),
        ((8, "k"), "string:zero:persistent"),
        ((15, "k"), "string:fifteen:persistent"),
    ]
    .into_iter()
    .map(|((db, key), value)| ((db, key.to_owned()), value.to_owned()))
    .collect()
}

#[test]
fn commands_work_in_the_selected_database_under_every_strategy() {
    for strategy in Strategy::ALL {
        let server = TestServer::with_engine(strategy, 8, &[]);
        let mut client = server.connect();
        write_across_databases(&mut client);
        assert_eq!(contents(&mut client), expected_after_writes(), "under {strategy}");
        assert_eq!(client.send(&["DBSIZE"]), int(2));
        assert_eq!(client.send(&["SELECT", "6"]), ok());
        assert_eq!(client.send(&["DBSIZE"]), int(3));
        assert_eq!(client.send(&["GET", "k"]), bulk("three"));
        let keyspace = text(&client.send(&["INFO", "keyspace"]));
        for line in [
            "db8:keys=2,expires=0",
            "db0:keys=2,expires=1",
            "db4:keys=1,expires=1",
            "db5:keys=1,expires=0",
            "db6:keys=3,expires=0",
        ] {
            assert!(keyspace.contains(line), "{line} missing from {keyspace}");
        }
        assert!(!keyspace.contains("db3:") && !keyspace.contains("db7:"), "{keyspace}");
        assert!(text(&client.send(&["CLIENT", "INFO"])).contains(" db=6 "));
        // RESET goes back to database 0.
        assert_eq!(client.send(&["RESET"]), simple("RESET"));
        assert_eq!(client.send(&["GET", "k"]), bulk("zero"));
        // FLUSHALL empties every database.
        assert_eq!(client.send(&["FLUSHALL"]), ok());
        assert!(contents(&mut client).is_empty());
    }
}

#[test]
fn the_number_of_databases_is_a_setting() {
    let server = TestServer::start(&["--databases", "4"]);
    let mut client = server.connect();
    assert_eq!(client.send(&["CONFIG", "GET", "databases"]), Value::Array(vec![bulk("databases"), bulk("4")]));
    assert_eq!(client.send(&["SELECT", "3"]), ok());
    assert_eq!(client.send(&["SELECT", "4"]), error("ERR DB index is out of range"));
    assert_eq!(client.send(&["MOVE", "k", "4"]), error("ERR DB index is out of range"));
    assert_eq!(client.send(&["SWAPDB", "0", "4"]), error("ERR DB index is out of range"));
    let refused = Command::new(env!("CARGO_BIN_EXE_cstore")).args(["serve", "--databases", "0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("databases"), "{stderr}");
}

fn serve_in(dir: &Path, extra: &[&str]) -> TestServer {
    TestServer::start(&[&["--dir", dir.to_str().unwrap()][..], extra].concat())
}

#[test]
fn every_database_survives_a_restart_through_the_aof() {
    let dir = tempfile::tempdir().unwrap();
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    {
        let server = serve_in(dir.path(), &aof);
        write_across_databases(&mut server.connect());
    }
    let server = serve_in(dir.path(), &aof);
    let mut client = server.connect();
    assert_eq!(contents(&mut client), expected_after_writes(), "replayed from the log");
    // After a rewrite, from the new base, with more writes after it in the new log.
    assert!(matches!(client.send(&["BGREWRITEAOF"]), Value::Simple(_)));
    wait_for(&mut client, "aof_rewrite_in_progress", "0");
    assert_eq!(client.send(&["SELECT", "9"]), ok());
    assert_eq!(client.send(&["SET", "after", "rewrite"]), ok());
    assert_eq!(client.send(&["SWAPDB", "9", "10"]), ok());
    drop(client);
    drop(server);
    let mut expected = expected_after_writes();
    expected.insert((10, "after".into()), "string:rewrite:persistent".into());
    let server = serve_in(dir.path(), &aof);
    assert_eq!(contents(&mut server.connect()), expected, "replayed from the rewritten log");
    drop(server);
    if let Some(check) = require("redis-check-aof") {
        let manifest = dir.path().join("appendonlydir/appendonly.aof.manifest");
        let output = Command::new(check).arg(&manifest).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    }
    if let Some(redis_server) = require("redis-server") {
        let redis = RedisServer::start(&redis_server, &["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes"]);
        assert_eq!(contents(&mut RespClient::connect(redis.addr)), expected, "as redis-server reads it");
    }
}

#[test]
fn every_database_survives_a_restart_through_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve_in(dir.path(), &[]);
        let mut client = server.connect();
        write_across_databases(&mut client);
        assert_eq!(client.send(&["SAVE"]), ok());
    }
    let server = serve_in(dir.path(), &[]);
    assert_eq!(contents(&mut server.connect()), expected_after_writes(), "loaded from the snapshot");
    drop(server);
    if let Some(check) = require("redis-check-rdb") {
        let output = Command::new(check).arg(dir.path().join("dump.rdb")).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    }
    if let Some(redis_server) = require("redis-server") {
        let redis = RedisServer::start(&redis_server, &["--dir", dir.path().to_str().unwrap()]);
        let mut client = RespClient::connect(redis.addr);
        assert_eq!(contents(&mut client), expected_after_writes(), "as redis-server reads it");
        // And back: redis-server's own snapshot of several databases loads in cstore.
        assert_eq!(client.send(&["SELECT", "12"]), ok());
        assert_eq!(client.send(&["SET", "from", "redis"]), ok());
        assert_eq!(client.send(&["SAVE"]), ok());
        drop(client);
        drop(redis);
        let mut expected = expected_after_writes();
        expected.insert((12, "from".into()), "string:redis:persistent".into());
        let server = serve_in(dir.path(), &[]);
        assert_eq!(contents(&mut server.connect()), expected);
    }
}

fn wait_for(client: &mut RespClient, field: &str, value: &str) {
    let deadline = std::time::Instant::now() + common::server::PATIENCE;
    while client.info_field(field) != value {
        assert!(std::time::Instant::now() < deadline, "{field} stayed away from {value}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reading a database never used does not create it: with an engine whose empty store is
/// large (lock-free, 4,096 shards: tens of MB each), a client reading every database leaves
/// the server's memory where it was.
#[test]
fn reading_an_unused_database_does_not_create_it() {
    let server = TestServer::with_engine(Strategy::LockFree, 4096, &[]);
    let mut client = server.connect();
    let before = server.rss_bytes();
    for db in 1..16 {
        assert_eq!(client.send(&["SELECT", &db.to_string()]), ok());
        for command in [vec!["GET", "k"], vec!["DBSIZE"], vec!["SCAN", "0"], vec!["KEYS", "*"], vec!["EXISTS", "k"]] {
            assert!(!matches!(client.send(&command), Value::Error(_)), "{command:?}");
        }
        assert_eq!(client.send(&["FLUSHDB"]), ok());
    }
    assert_eq!(client.send(&["SWAPDB", "14", "15"]), ok());
    let grown = server.rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "reading 15 unused databases grew the server by {} MiB", grown >> 20);
    // A write creates the database, with the engine the server runs.
    assert_eq!(client.send(&["SET", "k", "v"]), ok());
    assert_eq!(client.send(&["GET", "k"]), bulk("v"));
}

/// FLUSHALL with save rules saves the emptied databases before replying, from inside the
/// command (which holds a pass) and inside EXEC (which holds every database): the save takes
/// its cut without asking for either again. FLUSHDB counts its keys as changes.
#[test]
fn flushall_saves_from_inside_a_command_and_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), &["--save", "3600 1"]);
    let mut client = server.connect();
    assert_eq!(client.send(&["SET", "a", "1"]), ok());
    assert_eq!(client.send(&["FLUSHALL"]), ok());
    assert_eq!(client.info_field("rdb_changes_since_last_save"), "1");
    assert_eq!(client.send(&["SELECT", "2"]), ok());
    for key in ["x", "y", "z"] {
        assert_eq!(client.send(&["SET", key, "1"]), ok());
    }
    assert_eq!(client.send(&["MULTI"]), ok());
    assert_eq!(client.send(&["FLUSHALL"]), simple("QUEUED"));
    assert_eq!(client.send(&["SET", "after", "flush"]), simple("QUEUED"));
    assert_eq!(client.send(&["EXEC"]), Value::Array(vec![ok(), ok()]));
    assert_eq!(client.info_field("rdb_changes_since_last_save"), "2", "saved by the FLUSHALL, then one write");
    let changes: u64 = client.info_field("rdb_changes_since_last_save").parse().unwrap();
    for key in ["p", "q"] {
        assert_eq!(client.send(&["SET", key, "1"]), ok());
    }
    assert_eq!(client.send(&["FLUSHDB"]), ok());
    let after: u64 = client.info_field("rdb_changes_since_last_save").parse().unwrap();
    assert_eq!(after - changes, 2 + 3 + 1, "two SETs, three keys flushed, and FLUSHDB itself");
}
