//! The append-only file through a real `cstore serve`, with redis-server 7 and
//! redis-check-aof as oracles: cstore's directory passes redis-check-aof and loads in
//! redis-server with every key, value and TTL; cstore loads what redis-server writes;
//! `kill -9` during writes with `appendfsync always` loses no acknowledged write; a torn
//! tail is cut with a warning and other corruption stops startup; BGREWRITEAOF under writes
//! loses nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::server::{PATIENCE, RespClient, TestServer, bulk, int, ok, simple};
use common::tools::{RedisServer, require};
use cstore::server::resp_value::Value;

fn serve_aof(dir: &Path, extra: &[&str]) -> TestServer {
    let base = ["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "always"];
    TestServer::start(&[&base[..], extra].concat())
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn manifest(dir: &Path) -> std::path::PathBuf {
    dir.join("appendonlydir/appendonly.aof.manifest")
}

/// redis-check-aof's verdict on the manifest: it must say the AOF is valid.
fn check_aof(check: &Path, dir: &Path) {
    let output = Command::new(check).arg(manifest(dir)).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && text.contains("is valid"), "redis-check-aof refused:\n{text}");
}

/// The RDB preamble of the base file says what it is, as Redis's does: redis-check-rdb shows
/// its `aof-base` field as 1 (a snapshot has 0).
fn assert_marked_as_aof_base(dir: &Path) {
    let Some(check_rdb) = require("redis-check-rdb") else { return };
    let base = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with(".base.rdb"))
        .expect("no .base.rdb in appendonlydir");
    let output = Command::new(check_rdb).arg(&base).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("AUX FIELD aof-base = '1'"), "{base:?}:\n{text}");
}

/// Writes of every kind; returns what the store must hold: key -> (value, deadline ms).
fn write_mix(client: &mut RespClient) -> BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)> {
    let deadline = unix_ms() + 3_600_000;
    let at = deadline.to_string();
    for command in [
        vec![&b"SET"[..], b"\x00bin\xffary", b"\r\n\x00"],
        vec![b"SET", b"empty", b""],
        vec![b"SET", b"gone", b"x"],
        vec![b"DEL", b"gone"],
        vec![b"INCRBY", b"counter", b"41"],
        vec![b"INCR", b"counter"],
        vec![b"SET", b"ttl", b"v", b"EX", b"3600"],
        vec![b"APPEND", b"ttl", b"w"],
        vec![b"SET", b"abs", b"y"],
        vec![b"PEXPIREAT", b"abs", at.as_bytes()],
        vec![b"MSET", b"m1", b"1", b"m2", b"2"],
        vec![b"SETRANGE", b"m2", b"3", b"!"],
        vec![b"SET", b"big", &b"abc".repeat(40_000)],
    ] {
        let reply = client.send(&command);
        assert!(!matches!(reply, Value::Error(_)), "{command:?}: {reply:?}");
    }
    // EX 3600 from about now: the deadline read back below.
    let ttl_deadline = match client.send(&["PTTL", "ttl"]) {
        Value::Integer(ms) => unix_ms() + ms,
        other => panic!("PTTL gave {other:?}"),
    };
    BTreeMap::from([
        (b"\x00bin\xffary".to_vec(), (b"\r\n\x00".to_vec(), None)),
        (b"empty".to_vec(), (Vec::new(), None)),
        (b"counter".to_vec(), (b"42".to_vec(), None)),
        (b"ttl".to_vec(), (b"vw".to_vec(), Some(ttl_deadline))),
        (b"abs".to_vec(), (b"y".to_vec(), Some(deadline))),
        (b"m1".to_vec(), (b"1".to_vec(), None)),
        (b"m2".to_vec(), (b"2\x00\x00!".to_vec(), None)),
        (b"big".to_vec(), (b"abc".repeat(40_000), None)),
    ])
}

fn assert_holds(client: &mut RespClient, expected: &BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)>) {
    assert_eq!(client.send(&["DBSIZE"]), int(expected.len() as i64));
    for (key, (value, deadline)) in expected {
        let shown = String::from_utf8_lossy(key).into_owned();
        assert_eq!(client.send(&[&b"GET"[..], key]), bulk(value), "{shown}");
        match (client.send(&[&b"PTTL"[..], key]), deadline) {
            (Value::Integer(-1), None) => {}
            (Value::Integer(ms), Some(at)) => {
                let left = at - unix_ms();
                assert!((left - 2000..=left + 1000).contains(&ms), "{shown}: PTTL {ms}, expected about {left}");
            }
            (other, _) => panic!("{shown}: PTTL {other:?}, deadline {deadline:?}"),
        }
    }
}

fn wait_for_rewrite(client: &mut RespClient) {
    let deadline = Instant::now() + PATIENCE;
    while client.info_field("aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGREWRITEAOF did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.info_field("aof_last_bgrewrite_status"), "ok");
}

#[test]
fn cstore_aof_passes_redis_check_aof_and_loads_in_redis_server_and_back() {
    let (Some(check), Some(redis_server)) = (require("redis-check-aof"), require("redis-server")) else { return };
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let server = serve_aof(dir.path(), &["--aof-use-rdb-preamble", preamble]);
            let mut client = server.connect();
            assert_eq!(client.info_field("aof_enabled"), "1");
            let mut expected = write_mix(&mut client);
            // Half before a rewrite, half after: base plus incremental file.
            assert_eq!(client.send(&["BGREWRITEAOF"]), simple("Background append only file rewriting started"));
            wait_for_rewrite(&mut client);
            assert_eq!(client.send(&["SET", "after", "rewrite"]), ok());
            assert_eq!(client.send(&["DEL", "m1"]), int(1));
            expected.insert(b"after".to_vec(), (b"rewrite".to_vec(), None));
            expected.remove(b"m1".as_slice());
            assert_holds(&mut client, &expected);
            expected
        };
        check_aof(&check, dir.path());
        let base = std::fs::read_to_string(manifest(dir.path())).unwrap();
        let base_kind = if preamble == "yes" { "base.rdb" } else { "base.aof" };
        assert!(base.contains(base_kind) && base.contains("incr.aof"), "{base}");
        if preamble == "yes" {
            assert_marked_as_aof_base(dir.path());
        }
        {
            let redis =
                RedisServer::start(&redis_server, &["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes"]);
            let mut client = RespClient::connect(redis.addr);
            assert_holds(&mut client, &expected);
        }
        // And back: cstore loads the directory redis-server has now continued.
        let server = serve_aof(dir.path(), &[]);
        assert_holds(&mut server.connect(), &expected);
    }
}

#[test]
fn cstore_loads_the_aof_redis_server_writes() {
    let Some(redis_server) = require("redis-server") else { return };
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let redis = RedisServer::start(
            &redis_server,
            &["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "always"],
        );
        let mut client = RespClient::connect(redis.addr);
        let expected = write_mix(&mut client);
        assert_eq!(client.send(&["BGREWRITEAOF"]), simple("Background append only file rewriting started"));
        let deadline = Instant::now() + PATIENCE;
        while client.info_field("aof_rewrite_in_progress") != "0" || client.info_field("aof_rewrite_scheduled") != "0" {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(client.send(&["INCR", "counter"]), int(43));
        let mut expected = expected;
        expected.insert(b"counter".to_vec(), (b"43".to_vec(), None));
        expected
        // Killed here (SIGKILL): redis-server wrote the log before replying.
    };
    let server = serve_aof(dir.path(), &[]);
    assert_holds(&mut server.connect(), &expected);
}

/// One writer's SETs on a raw socket, each waiting for its reply, until the server dies:
/// what was acknowledged, and the write in flight when it died.
type Outcome = (Vec<(String, String)>, Option<(String, String)>);

fn write_until_killed(addr: std::net::SocketAddr, writer: usize, round: usize) -> Outcome {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut acked = Vec::new();
    for i in 0.. {
        let (key, value) = (format!("k{writer}-{}", i % 50), format!("r{round}-{i}"));
        let request = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n", key.len(), value.len());
        let mut reply = [0u8; 5];
        if stream.write_all(request.as_bytes()).is_err() || stream.read_exact(&mut reply).is_err() {
            return (acked, Some((key, value)));
        }
        assert_eq!(&reply, b"+OK\r\n");
        acked.push((key, value));
    }
    unreachable!("the loop ends only when the server is gone")
}

#[test]
fn kill_9_during_writes_with_appendfsync_always_loses_no_acknowledged_write() {
    kill_9_rounds("always");
}

/// `everysec` fsyncs once a second, but a reply still waits for the write to the file: a
/// killed process (unlike a crashed machine) loses no acknowledged write either, as with Redis.
#[test]
fn kill_9_during_writes_with_appendfsync_everysec_loses_no_acknowledged_write() {
    kill_9_rounds("everysec");
}

/// 20 rounds of writes from 3 clients, each ended by `kill -9` at a random moment; after each
/// restart every acknowledged write is there.
fn kill_9_rounds(appendfsync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let serve = |dir: &Path| {
        TestServer::start(&["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", appendfsync])
    };
    // Per key: the last acknowledged value (none if no write to it was ever acknowledged, so
    // it must be absent), and a later one in flight at the kill (which may or may not have
    // reached the log).
    type Expected = BTreeMap<String, (Option<String>, Option<String>)>;
    let mut state = Expected::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let verify = |client: &mut RespClient, state: &mut Expected, round: usize| {
        for (key, (acked, in_flight)) in state.iter_mut() {
            let got = client.send(&["GET", key]);
            if got == acked.as_ref().map_or(Value::NullBulk, bulk) {
                *in_flight = None;
            } else if in_flight.as_ref().is_some_and(|v| got == bulk(v)) {
                *acked = in_flight.take();
            } else {
                panic!("round {round}: {key} holds {got:?}, acknowledged {acked:?}, in flight {in_flight:?}");
            }
        }
    };
    for round in 0..20 {
        let server = serve(dir.path());
        verify(&mut server.connect(), &mut state, round);
        let addr = server.resp_addr;
        let writers: Vec<_> = (0..3).map(|w| std::thread::spawn(move || write_until_killed(addr, w, round))).collect();
        // A random moment between 20 and 150 ms into the load.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 130));
        server.signal("KILL");
        for writer in writers {
            let (acked, in_flight) = writer.join().unwrap();
            for (key, value) in acked {
                state.insert(key, (Some(value), None));
            }
            if let Some((key, value)) = in_flight {
                state.entry(key).or_default().1 = Some(value);
            }
        }
        drop(server);
    }
    assert!(
        state.values().filter(|(acked, _)| acked.is_some()).count() > 50,
        "the rounds wrote too little to mean anything: {}",
        state.len()
    );
    let server = serve(dir.path());
    verify(&mut server.connect(), &mut state, 20);
}

#[test]
fn a_torn_tail_is_cut_with_a_warning_and_corruption_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut server = serve_aof(dir.path(), &[]);
        let mut client = server.connect();
        assert_eq!(client.send(&["SET", "kept", "1"]), ok());
        server.signal("TERM");
        assert!(server.wait_for_exit(PATIENCE).success());
    }
    let incr = dir.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let good = std::fs::read(&incr).unwrap();
    std::fs::write(&incr, [&good[..], b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$5\r\nval"].concat()).unwrap();
    {
        let server = serve_aof(dir.path(), &[]);
        let mut client = server.connect();
        assert_eq!(client.send(&["GET", "kept"]), bulk("1"));
        assert_eq!(client.send(&["EXISTS", "torn"]), int(0));
        assert!(server.logs_within_seconds("torn last command was cut off"), "{:?}", server.log());
    }
    assert_eq!(std::fs::read(&incr).unwrap(), good, "the tail is cut back to the last whole command");

    std::fs::write(&incr, [&good[..], b"+garbage\r\n*1\r\n$4\r\nPING\r\n"].concat()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cstore"))
        .args(["serve", "--port", "0", "--admin-port", "0", "--bind", "127.0.0.1"])
        .args(["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started on a corrupt AOF: {stderr}");
    assert!(stderr.contains("bad file format") && stderr.contains("redis-check-aof"), "{stderr}");
    assert!(std::fs::read(&incr).unwrap().ends_with(b"PING\r\n"), "a corrupt file is left untouched");
}

#[test]
fn bgrewriteaof_under_writes_loses_nothing_and_passes_redis_check_aof() {
    let Some(check) = require("redis-check-aof") else { return };
    let dir = tempfile::tempdir().unwrap();
    let everysec = ["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "everysec"];
    let server = TestServer::start(&everysec);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let mut client = server.connect();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut model = BTreeMap::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{writer}-{}", i % 200);
                    match client.send(&["INCR", &key]) {
                        Value::Integer(n) => model.insert(key, n),
                        other => panic!("INCR {key}: {other:?}"),
                    };
                    i += 1;
                }
                model
            })
        })
        .collect();
    let mut client = server.connect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(client.send(&["BGREWRITEAOF"]), simple("Background append only file rewriting started"));
        wait_for_rewrite(&mut client);
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let models: Vec<_> = writers.into_iter().map(|writer| writer.join().unwrap()).collect();
    // Three BGREWRITEAOFs, and the rewrite that created the AOF at startup.
    assert_eq!(client.info_field("aof_rewrites"), "4");
    server.signal("KILL");
    drop(server);
    check_aof(&check, dir.path());
    let files: Vec<String> = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 3, "the manifest, one base, one incremental file: {files:?}");
    let server = serve_aof(dir.path(), &[]);
    let mut client = server.connect();
    for (key, n) in models.iter().flatten() {
        assert_eq!(client.send(&["GET", key]), bulk(n.to_string()), "{key}");
    }
}

#[test]
fn appendonly_turns_on_and_off_live() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&["--dir", dir.path().to_str().unwrap()]);
    let mut client = server.connect();
    assert_eq!(client.send(&["SET", "before", "1"]), ok());
    assert_eq!(client.send(&["CONFIG", "SET", "appendonly", "yes"]), ok());
    let deadline = Instant::now() + PATIENCE;
    while client.info_field("aof_enabled") != "1" {
        assert!(Instant::now() < deadline, "the AOF did not turn on");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.send(&["SET", "after", "2"]), ok());
    assert_eq!(client.send(&["CONFIG", "SET", "appendonly", "no"]), ok());
    while client.info_field("aof_enabled") != "0" {
        assert!(Instant::now() < deadline, "the AOF did not turn off");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.send(&["SET", "unlogged", "3"]), ok());
    server.signal("KILL");
    drop(server);
    let server = serve_aof(dir.path(), &[]);
    let mut client = server.connect();
    assert_eq!(client.send(&["GET", "before"]), bulk("1"));
    assert_eq!(client.send(&["GET", "after"]), bulk("2"));
    assert_eq!(client.send(&["EXISTS", "unlogged"]), int(0));
}

/// The bytes of every file in the AOF directory, concatenated.
fn aof_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("appendonlydir")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().flat_map(|file| std::fs::read(file).unwrap()).collect()
}

/// Keys evicted under `allkeys-random` and keys expired by active expiry reach the AOF as
/// DEL, as Redis propagates them: after `kill -9` the store holds exactly the keys it held
/// (an evicted key logged only by its SET would come back), and expired keys are deleted
/// in the log, not only past their deadline.
#[test]
fn evicted_and_expired_keys_reach_the_aof_as_del_and_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let limits =
        ["--maxmemory", "300000", "--maxmemory-policy", "allkeys-random", "--auto-aof-rewrite-percentage", "0"];
    let mut server = serve_aof(dir.path(), &limits);
    let mut client = server.connect();
    let value = "v".repeat(1000);
    let sets: Vec<Vec<String>> = (0..1000).map(|i| vec!["SET".into(), format!("key:{i}"), value.clone()]).collect();
    for chunk in sets.chunks(100) {
        assert!(client.pipeline(chunk).iter().all(|reply| *reply == ok()));
    }
    let evicted: u64 = client.info_field("evicted_keys").parse().unwrap();
    assert!(evicted > 100, "only {evicted} keys were evicted");
    let held = client.sorted_keys();
    assert_eq!(held.len() as u64 + evicted, 1000);
    server.signal("KILL");
    server.wait_for_exit(PATIENCE);

    let mut server = serve_aof(dir.path(), &["--auto-aof-rewrite-percentage", "0"]);
    let mut client = server.connect();
    assert_eq!(client.sorted_keys(), held, "evicted keys came back after the restart");

    for i in 0..20 {
        assert_eq!(client.send(&["SET", &format!("short:{i}"), "v", "PX", "50"]), ok());
    }
    let deadline = Instant::now() + PATIENCE;
    while client.info_field("expired_keys") != "20" {
        assert!(Instant::now() < deadline, "active expiry did not remove the keys");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("TERM");
    assert!(server.wait_for_exit(PATIENCE).success());
    let log = aof_bytes(dir.path());
    for i in 0..20 {
        let del = format!("*2\r\n$3\r\nDEL\r\n${}\r\nshort:{i}\r\n", format!("short:{i}").len());
        assert!(log.windows(del.len()).any(|window| window == del.as_bytes()), "no DEL of short:{i} in the AOF");
    }
    let server = serve_aof(dir.path(), &[]);
    let mut client = server.connect();
    assert_eq!(client.sorted_keys(), held);
}

/// The automatic rewrite follows `auto-aof-rewrite-percentage` and `-min-size` as Redis's:
/// none while the AOF is under the minimum size, one once it is over it and has grown by
/// the percentage since the last rewrite; the rewrite compacts, keeps every key and shows in
/// /metrics.
#[test]
fn the_aof_is_rewritten_automatically_by_the_growth_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rule = ["--auto-aof-rewrite-percentage", "100", "--auto-aof-rewrite-min-size", "100000"];
    let mut server = serve_aof(dir.path(), &rule);
    let mut client = server.connect();
    let before: u64 = client.info_field("aof_rewrites").parse().unwrap();
    let value = "x".repeat(1000);
    let overwrite = |client: &mut RespClient, times: usize| {
        let sets: Vec<Vec<&str>> = (0..times).map(|_| vec!["SET", "k", value.as_str()]).collect();
        assert!(client.pipeline(&sets).iter().all(|reply| *reply == ok()));
    };
    // About 50 kB: over twice the base, under the minimum size.
    overwrite(&mut client, 50);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client.info_field("aof_rewrites").parse::<u64>().unwrap(), before, "rewrote under min-size");
    overwrite(&mut client, 100);
    let deadline = Instant::now() + PATIENCE;
    while client.info_field("aof_rewrites").parse::<u64>().unwrap() == before {
        assert!(Instant::now() < deadline, "no automatic rewrite");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_rewrite(&mut client);
    let size: u64 = client.info_field("aof_current_size").parse().unwrap();
    assert!(size < 20_000, "the rewritten AOF holds {size} bytes");
    assert!(server.metric("cstore_aof_rewrites_total").is_some_and(|count| count >= 1.0));
    assert!(server.metric("cstore_aof_fsync_duration_seconds_count").is_some_and(|count| count >= 1.0));
    assert_eq!(server.metric("cstore_aof_write_failures_total"), Some(0.0));
    assert_eq!(client.send(&["SET", "after", "rewrite"]), ok());
    server.signal("TERM");
    assert!(server.wait_for_exit(PATIENCE).success());
    let server = serve_aof(dir.path(), &[]);
    assert_eq!(server.send(&["GET", "k"]), bulk(&value));
    assert_eq!(server.send(&["GET", "after"]), bulk("rewrite"));
    if let Some(check) = require("redis-check-aof") {
        check_aof(&check, dir.path());
    }
}

/// SHUTDOWN (NOSAVE: no snapshot to hide behind) answers the writes sent before it, and the
/// AOF holds every one acknowledged when the server is back.
#[test]
fn shutdown_flushes_the_aof_with_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let everysec = ["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "everysec"];
    let mut server = TestServer::start(&everysec);
    let mut client = server.connect();
    let mut batch: Vec<Vec<String>> = (0..2000).map(|i| vec!["SET".into(), format!("k{i}"), format!("v{i}")]).collect();
    batch.push(vec!["SHUTDOWN".into(), "NOSAVE".into()]);
    client.write_commands(&batch);
    let replies = client.replies_until_closed();
    let acknowledged = replies.iter().take_while(|reply| **reply == ok()).count();
    assert!(acknowledged > 0, "no write was answered: {:?}", replies.first());
    assert!(server.wait_for_exit(PATIENCE).success());
    let server = serve_aof(dir.path(), &[]);
    let mut client = server.connect();
    for i in 0..acknowledged {
        assert_eq!(client.send(&["GET", &format!("k{i}")]), bulk(format!("v{i}")), "k{i} was acknowledged");
    }
}

/// A full disk under the AOF (a 400 kB tmpfs): the write that does not fit waits unanswered,
/// INFO says `aof_last_write_status:err`, other writes get MISCONF; once space returns the
/// waiting write is answered, writes go on, and a restart holds every acknowledged key.
/// Needs root for the tmpfs: passes elsewhere with a notice, but fails under CI.
#[test]
fn a_full_disk_holds_back_the_aof_writes_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=400k", "tmpfs"]).arg(dir.path()).status();
    if !mounted.is_ok_and(|status| status.success()) {
        assert!(!common::tools::in_ci(), "cannot mount a tmpfs for the full-disk test under CI");
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let unmount = unmount_on_drop(dir.path().to_owned());
    let dir_arg = dir.path().to_str().unwrap();
    let server = TestServer::start(&["--dir", dir_arg, "--appendonly", "yes", "--appendfsync", "everysec"]);
    let addr = server.resp_addr;
    // A writer that goes on until a write is held back (it gets its reply only later).
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        std::thread::spawn(move || {
            let mut client = RespClient::connect(addr);
            let value = "x".repeat(1000);
            for i in 0..2000 {
                let reply = client.send(&["SET", &format!("k{i}"), &value]);
                if reply != ok() {
                    return (i, Some(reply));
                }
                acknowledged.store(i + 1, Ordering::SeqCst);
            }
            (2000, None)
        })
    };
    let mut client = server.connect();
    let deadline = Instant::now() + PATIENCE;
    while client.info_field("aof_last_write_status") != "err" {
        assert!(Instant::now() < deadline, "the AOF never reported the full disk");
        assert!(!writer.is_finished(), "the writer finished without filling the disk");
        std::thread::sleep(Duration::from_millis(20));
    }
    let Value::Error(refused) = client.send(&["SET", "other", "v"]) else { panic!("a write was accepted") };
    assert!(refused.starts_with(b"MISCONF Errors writing to the AOF file"), "{refused:?}");
    assert!(server.logs_within_seconds("error writing the AOF"), "the log says nothing");

    let resized = Command::new("mount").args(["-o", "remount,size=8m"]).arg(dir.path()).status();
    assert!(resized.unwrap().success(), "cannot resize the tmpfs");
    while client.info_field("aof_last_write_status") != "ok" {
        assert!(Instant::now() < deadline + PATIENCE, "the AOF never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (written, failure) = writer.join().unwrap();
    assert_eq!(failure, None, "a held-back write failed instead of waiting");
    assert_eq!(written, 2000);
    assert_eq!(client.send(&["SET", "other", "v"]), ok());
    server.signal("TERM");
    drop(server);
    let restarted = serve_aof(dir.path(), &[]);
    assert_eq!(restarted.send(&["DBSIZE"]), int(2001));
    drop(restarted);
    drop(unmount);
}

/// Unmounts the tmpfs when the test ends, whichever way.
fn unmount_on_drop(dir: std::path::PathBuf) -> impl Drop {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    Unmount(dir)
}

/// Hashes and sets, written by every logged hash and set command (SPOP's random pick is
/// logged as the SREM it was), come back the same after a restart, after BGREWRITEAOF and a
/// restart, with either kind of rewrite base; redis-check-aof accepts the files and
/// redis-server loads them with the same contents.
#[test]
fn hashes_and_sets_survive_restarts_and_bgrewriteaof() {
    for preamble in ["no", "yes"] {
        let dir = tempfile::tempdir().unwrap();
        let options = ["--aof-use-rdb-preamble", preamble];
        let written = {
            let server = serve_aof(dir.path(), &options);
            let mut client = server.connect();
            write_collections(&mut client);
            let written = collections(&mut client);
            assert_eq!(client.send(&["TYPE", "hash"]), simple("hash"));
            assert_eq!(client.send(&["OBJECT", "ENCODING", "bighash"]), bulk("hashtable"));
            assert_eq!(client.send(&["OBJECT", "ENCODING", "bigset"]), bulk("hashtable"));
            written
        };
        let keys: Vec<String> = written.keys().map(|key| String::from_utf8_lossy(key).into_owned()).collect();
        let expected_keys = "bighash bigset diff hash ints moved overwritten set strings union";
        assert_eq!(keys.join(" "), expected_keys, "gonehash and solo went with their last field or member");
        assert_eq!(written[b"hash".as_slice()].1, [&b"counter=41"[..], b"f1=v1", b"f3=v3", b"f4=v4", b"float=1.75"]);
        assert_eq!((written[b"hash".as_slice()].2, written[b"strings".as_slice()].2), (1, 2), "TTLs in hours");
        assert_eq!(written[b"overwritten".as_slice()], ("set".to_owned(), vec![b"c".to_vec(), b"d".to_vec()], -1));
        let rewritten = {
            let server = serve_aof(dir.path(), &options);
            let mut client = server.connect();
            assert_eq!(collections(&mut client), written, "after a restart (preamble {preamble})");
            assert_eq!(client.send(&["BGREWRITEAOF"]), simple("Background append only file rewriting started"));
            wait_for_rewrite(&mut client);
            // After the rewrite, into the incremental file on top of the new base.
            assert_eq!(client.send(&["HSET", "hash", "after", "rewrite"]), int(1));
            assert_eq!(client.send(&["SADD", "set", "after"]), int(1));
            assert_eq!(client.send(&["SREM", "ints", "2"]), int(1));
            collections(&mut client)
        };
        assert_ne!(rewritten, written);
        if let Some(check) = require("redis-check-aof") {
            check_aof(&check, dir.path());
        }
        let base = std::fs::read_to_string(manifest(dir.path())).unwrap();
        let base_kind = if preamble == "yes" { "base.rdb" } else { "base.aof" };
        assert!(base.contains(base_kind) && base.contains("incr.aof"), "{base}");
        {
            let server = serve_aof(dir.path(), &options);
            assert_eq!(collections(&mut server.connect()), rewritten, "after BGREWRITEAOF (preamble {preamble})");
        }
        if let Some(redis_server) = require("redis-server") {
            let redis =
                RedisServer::start(&redis_server, &["--dir", dir.path().to_str().unwrap(), "--appendonly", "yes"]);
            assert_eq!(collections(&mut RespClient::connect(redis.addr)), rewritten, "in redis-server");
        }
    }
}

/// Every logged hash and set command, and their effects on expiry and on vanishing keys.
fn write_collections(client: &mut RespClient) {
    let many_fields: Vec<String> = (0..600).flat_map(|i| [format!("f{i}"), format!("v{i}")]).collect();
    let many_members: Vec<String> = (0..600).map(|i| format!("m{i}")).collect();
    let commands: Vec<Vec<String>> = vec![
        words("HSET hash f1 v1 f2 v2 f3 v3"),
        words("HDEL hash f2 nosuch"),
        words("HINCRBYFLOAT hash float 1.5"),
        words("HINCRBYFLOAT hash float 0.25"),
        words("HINCRBY hash counter 41"),
        words("HSETNX hash f1 ignored"),
        words("HMSET hash f4 v4"),
        words("EXPIRE hash 3600"),
        [&words("HSET bighash")[..], &many_fields].concat(),
        words("HSET gonehash f v"),
        words("HDEL gonehash f"),
        words("SADD set a b c d"),
        words("SREM set b"),
        words("SADD ints 3 1 2 5"),
        words("SPOP ints"),
        words("SPOP ints 1"),
        words("SADD ints 2 7"),
        words("SADD solo only"),
        words("SPOP solo"),
        words("SMOVE set moved a"),
        words("SADD strings x y"),
        words("SUNIONSTORE union set ints strings"),
        words("SET overwritten text"),
        words("SINTERSTORE overwritten set union"),
        words("SDIFFSTORE diff union set"),
        [&words("SADD bigset")[..], &many_members].concat(),
        words("SREM bigset m7"),
        words("PEXPIRE strings 7200000"),
    ];
    for command in commands {
        let reply = client.send(&command);
        assert!(!matches!(reply, Value::Error(_)), "{command:?}: {reply:?}");
    }
}

fn words(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_owned).collect()
}

/// A key's type, its contents (hash pairs as `field=value` and set members, sorted; a
/// string's value) and its remaining TTL rounded to the hour (-1 for none).
type Contents = (String, Vec<Vec<u8>>, i64);

/// Every key's [`Contents`].
fn collections(client: &mut RespClient) -> BTreeMap<Vec<u8>, Contents> {
    let flat = |value: Value| match value {
        Value::Array(items) | Value::Set(items) => {
            items.iter().map(|item| common::server::text_of(item).into_bytes()).collect()
        }
        Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(field, value)| [field, value].map(|item| common::server::text_of(item).into_bytes()))
            .collect(),
        other => panic!("not a collection: {other:?}"),
    };
    client
        .sorted_keys()
        .into_iter()
        .map(|key| {
            let kind = common::server::text_of(&client.send(&[&b"TYPE"[..], &key]));
            let contents: Vec<Vec<u8>> = match kind.as_str() {
                "hash" => {
                    let items: Vec<Vec<u8>> = flat(client.send(&[&b"HGETALL"[..], &key]));
                    let mut pairs: Vec<Vec<u8>> =
                        items.chunks(2).map(|pair| [&pair[0][..], b"=", &pair[1]].concat()).collect();
                    pairs.sort();
                    pairs
                }
                "set" => {
                    let mut members = flat(client.send(&[&b"SMEMBERS"[..], &key]));
                    members.sort();
                    members
                }
                "string" => vec![common::server::text_of(&client.send(&[&b"GET"[..], &key])).into_bytes()],
                other => panic!("unexpected type {other}"),
            };
            let hours = match client.send(&[&b"PTTL"[..], &key]) {
                Value::Integer(-1) => -1,
                Value::Integer(ms) if ms > 0 => (ms + 1_800_000) / 3_600_000,
                other => panic!("PTTL gave {other:?}"),
            };
            (key, (kind, contents, hours))
        })
        .collect()
}
