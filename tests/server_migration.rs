//! `CONFIG SET strategy|shards` on a running `cstore serve`: the store migrates live, no
//! client is disconnected, no request fails, a pipeline and a SCAN in progress carry on, and
//! INFO, CONFIG GET and /metrics tell what runs.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::server::{PATIENCE, RespClient, TestServer, bulk, error, int, ok, text_of};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;

const KEYS: usize = 20_000;

fn fill(client: &mut RespClient) {
    let commands: Vec<Vec<String>> =
        (0..KEYS).map(|i| vec!["SET".into(), format!("key:{i}"), format!("value-{i}")]).collect();
    for chunk in commands.chunks(1000) {
        assert!(client.pipeline(chunk).iter().all(|reply| *reply == ok()));
    }
}

/// Waits until INFO says the store runs `strategy` x `shards` with no migration pending.
fn wait_until_running(client: &mut RespClient, strategy: &str, shards: u32) {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let running =
            (client.info_field("strategy"), client.info_field("shards"), client.info_field("migration_in_progress"));
        if running == (strategy.to_owned(), shards.to_string(), "0".to_owned()) {
            return;
        }
        assert!(Instant::now() < give_up, "still running {running:?}, waiting for {strategy} x {shards}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn config_set_migrates_live_while_clients_keep_working() {
    let server = TestServer::with_engine(Strategy::RwLock, 16, &[]);
    let mut control = server.connect();
    fill(&mut control);
    let stop = AtomicBool::new(false);
    let walk = [("Mutex", 4096), ("LockFree", 1), ("CopyOnWrite", 256), ("RwLock", 2)];
    thread::scope(|scope| {
        // A pipelining client: 50 INCRs per round trip, each reply checked.
        let pipeliner = scope.spawn(|| {
            let mut client = server.connect();
            let mut expected = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Vec<&str>> = (0..50).map(|_| vec!["INCR", "counter"]).collect();
                for reply in client.pipeline(&batch) {
                    expected += 1;
                    assert_eq!(reply, int(expected), "a pipelined INCR failed or lost an update");
                }
            }
            expected
        });
        // A SCAN walk with a small COUNT, started before the first migration.
        let scanner = scope.spawn(|| {
            let mut client = server.connect();
            let mut seen = HashSet::new();
            let mut walks = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut cursor = "0".to_owned();
                loop {
                    let Value::Array(reply) = client.send(&["SCAN", &cursor, "COUNT", "20"]) else {
                        panic!("SCAN did not answer an array");
                    };
                    cursor = text_of(&reply[0]);
                    let Value::Array(keys) = &reply[1] else { panic!("SCAN keys are not an array") };
                    seen.extend(keys.iter().map(text_of));
                    if cursor == "0" {
                        break;
                    }
                }
                walks += 1;
                let missing = (0..KEYS).filter(|i| !seen.contains(&format!("key:{i}"))).count();
                assert_eq!(missing, 0, "walk {walks} across migrations missed {missing} keys");
                seen.clear();
            }
        });
        for (strategy, shards) in walk {
            let shards_text = shards.to_string();
            assert_eq!(control.send(&["CONFIG", "SET", "strategy", strategy, "shards", &shards_text]), ok());
            assert_eq!(
                control.send(&["CONFIG", "GET", "strategy"]),
                Value::Array(vec![bulk("strategy"), bulk(strategy)]),
                "CONFIG GET answers what was asked for at once"
            );
            wait_until_running(&mut control, strategy, shards);
        }
        stop.store(true, Ordering::Relaxed);
        let increments = pipeliner.join().expect("the pipelining client failed");
        scanner.join().expect("the scanning client failed");
        assert_eq!(control.send(&["GET", "counter"]), bulk(increments.to_string()));
    });
    for i in (0..KEYS).step_by(97) {
        assert_eq!(control.send(&["GET", &format!("key:{i}")]), bulk(format!("value-{i}")));
    }
    assert_eq!(control.send(&["DBSIZE"]), int(KEYS as i64 + 1));
    assert_eq!(control.info_field("migrations_completed"), walk.len().to_string());
    assert_eq!(server.metric("cstore_migrations_total"), Some(walk.len() as f64));
    assert_eq!(server.metric("cstore_engine_info{strategy=\"RwLock\",shards=\"2\"}"), Some(1.0));
    assert_eq!(server.metric("cstore_migration_in_progress"), Some(0.0));
}

#[test]
fn changes_made_during_a_migration_are_queued_and_the_latest_wins() {
    let server = TestServer::with_engine(Strategy::Mutex, 1, &[]);
    let mut control = server.connect();
    fill(&mut control);
    for (strategy, shards) in [("LockFree", "64"), ("CopyOnWrite", "8"), ("RwLock", "512")] {
        assert_eq!(control.send(&["CONFIG", "SET", "strategy", strategy, "shards", shards]), ok());
    }
    assert_eq!(control.info_field("migration_target_strategy"), "RwLock");
    assert_eq!(control.info_field("migration_target_shards"), "512");
    wait_until_running(&mut control, "RwLock", 512);
    let completed: u32 = control.info_field("migrations_completed").parse().expect("a count");
    assert!((1..=3).contains(&completed), "{completed} migrations for three quick changes");
    assert_eq!(control.send(&["GET", "key:123"]), bulk("value-123"));
}

#[test]
fn bad_engine_values_get_redis_style_errors_and_change_nothing() {
    let server = TestServer::with_engine(Strategy::RwLock, 16, &[]);
    let prefix = "ERR CONFIG SET failed (possibly related to argument";
    for (args, expected) in [
        (
            ["strategy", "spinlock"],
            format!(
                "{prefix} 'strategy') - argument(s) must be one of the following: Mutex, RwLock, LockFree, CopyOnWrite"
            ),
        ),
        (["shards", "12"], format!("{prefix} 'shards') - argument must be a power of two between 1 and 4096")),
        (["shards", "8192"], format!("{prefix} 'shards') - argument must be between 1 and 4096 inclusive")),
    ] {
        assert_eq!(server.send(&[&["CONFIG", "SET"][..], &args[..]].concat()), error(&expected));
    }
    // All or nothing: a bad shard count refuses the strategy given with it.
    assert!(matches!(server.send(&["CONFIG", "SET", "strategy", "Mutex", "shards", "3"]), Value::Error(_)));
    let mut client = server.connect();
    assert_eq!((client.info_field("strategy"), client.info_field("shards")), ("RwLock".into(), "16".into()));
    assert_eq!(client.info_field("migration_in_progress"), "0");
}
