//! MULTI, EXEC, DISCARD, WATCH and UNWATCH on a running `cstore serve`, under every strategy:
//! Redis's replies (queuing, EXECABORT, errors inside EXEC without rollback), every kind of
//! change that must make a watched EXEC fail, an EXEC that other clients see whole while they
//! read and write, and the AOF's MULTI/EXEC wrapping.

mod common;

use std::thread;
use std::time::Duration;

use common::server::{RespClient, TestServer, bulk, error, int, ok, simple};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;

const STRATEGIES: [Strategy; 4] = [Strategy::Mutex, Strategy::RwLock, Strategy::LockFree, Strategy::CopyOnWrite];

fn queued() -> Value {
    simple("QUEUED")
}

/// Runs `test` against a server of each strategy (8 shards: a transaction spans several).
fn with_each_server(test: impl Fn(&TestServer)) {
    for strategy in STRATEGIES {
        let server = TestServer::with_engine(strategy, 8, &[]);
        test(&server);
    }
}

#[test]
fn exec_answers_every_queued_command_and_does_not_roll_back_a_failed_one() {
    with_each_server(|server| {
        let mut client = server.connect();
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["SET", "a", "x"]), queued());
        assert_eq!(client.send(&["INCR", "a"]), queued());
        assert_eq!(client.send(&["SET", "b", "1"]), queued());
        assert_eq!(client.send(&["GET", "a"]), queued());
        assert_eq!(
            client.send(&["EXEC"]),
            Value::Array(vec![ok(), error("ERR value is not an integer or out of range"), ok(), bulk("x")])
        );
        assert_eq!(client.send(&["GET", "b"]), bulk("1"));
        // CLIENT LIST shows the transaction (`x`, and the queued commands) until EXEC ends.
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["PING"]), queued());
        assert_eq!(client.send(&["CLIENT", "INFO"]), queued());
        let Value::Array(replies) = client.send(&["EXEC"]) else { panic!("EXEC answers an array") };
        let info = common::server::text_of(&replies[1]);
        assert!(info.contains(" flags=x ") && info.contains(" multi=2 "), "{info}");
        let info = common::server::text_of(&client.send(&["CLIENT", "INFO"]));
        assert!(info.contains(" flags=N ") && info.contains(" multi=-1 ") && info.contains(" multi-mem=0 "), "{info}");
        // An empty transaction answers an empty array.
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["EXEC"]), Value::Array(vec![]));
    });
}

#[test]
fn a_command_refused_while_queuing_aborts_the_transaction() {
    with_each_server(|server| {
        let mut client = server.connect();
        let execabort = error("EXECABORT Transaction discarded because of previous errors.");
        for refused in [vec!["SET", "a"], vec!["NOSUCHCOMMAND"], vec!["SAVE"]] {
            assert_eq!(client.send(&["MULTI"]), ok());
            assert_eq!(client.send(&["SET", "a", "1"]), queued());
            assert!(matches!(client.send(&refused), Value::Error(_)), "{refused:?} must be refused");
            assert_eq!(client.send(&["EXEC"]), execabort, "after {refused:?}");
            assert_eq!(client.send(&["EXISTS", "a"]), int(0), "nothing of an aborted transaction runs");
        }
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["MULTI"]), error("ERR MULTI calls can not be nested"));
        assert_eq!(client.send(&["WATCH", "a"]), error("ERR WATCH inside MULTI is not allowed"));
        assert_eq!(client.send(&["SET", "a", "1"]), queued());
        assert_eq!(client.send(&["DISCARD"]), ok());
        assert_eq!(client.send(&["EXISTS", "a"]), int(0));
        assert_eq!(client.send(&["EXEC"]), error("ERR EXEC without MULTI"));
        assert_eq!(client.send(&["DISCARD"]), error("ERR DISCARD without MULTI"));
        // RESET discards, and so does a dropped connection.
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["SET", "a", "1"]), queued());
        assert_eq!(client.send(&["RESET"]), simple("RESET"));
        assert_eq!(client.send(&["EXEC"]), error("ERR EXEC without MULTI"));
        let mut dropped = server.connect();
        assert_eq!(dropped.send(&["MULTI"]), ok());
        assert_eq!(dropped.send(&["SET", "a", "1"]), queued());
        drop(dropped);
        assert_eq!(client.send(&["EXISTS", "a"]), int(0));
    });
}

/// WATCH `key` on a fresh client, let `change` run on another, then EXEC a SET: whether the
/// EXEC ran.
fn exec_after(server: &TestServer, key: &str, change: impl FnOnce(&mut RespClient)) -> bool {
    let mut watcher = server.connect();
    let mut other = server.connect();
    assert_eq!(watcher.send(&["WATCH", key]), ok());
    change(&mut other);
    assert_eq!(watcher.send(&["MULTI"]), ok());
    assert_eq!(watcher.send(&["SET", "outcome", "ran"]), queued());
    match watcher.send(&["EXEC"]) {
        Value::Array(replies) => {
            assert_eq!(replies, vec![ok()]);
            true
        }
        Value::NullArray => false,
        other => panic!("EXEC answered {other:?}"),
    }
}

#[test]
fn watch_refuses_exec_after_any_change_of_a_watched_key() {
    with_each_server(|server| {
        let mut setup = server.connect();
        let reset = |setup: &mut RespClient| {
            assert_eq!(setup.send(&["FLUSHALL"]), ok());
            assert_eq!(setup.send(&["SET", "k", "v"]), ok());
        };
        // Each change of `k`, as a command and its reply.
        let changes = [
            (vec!["SET", "k", "v"], ok()),
            (vec!["APPEND", "k", "w"], int(2)),
            (vec!["SETRANGE", "k", "0", "w"], int(1)),
            (vec!["DEL", "k"], int(1)),
            (vec!["EXPIRE", "k", "100"], int(1)),
            (vec!["FLUSHALL"], ok()),
        ];
        for (change, reply) in &changes {
            reset(&mut setup);
            let ran = exec_after(server, "k", |c| assert_eq!(&c.send(change), reply, "{change:?}"));
            assert!(!ran, "EXEC ran after {change:?} of a watched key");
        }
        // Nothing touched, or only other keys: EXEC runs.
        reset(&mut setup);
        assert!(exec_after(server, "k", |c| assert_eq!(c.send(&["SET", "other", "1"]), ok())));
        assert!(exec_after(server, "k", |c| assert_eq!(c.send(&["GET", "k"]), bulk("v"))));
        // FLUSHALL of a store without the watched key is no change of it.
        assert!(exec_after(server, "absent", |c| assert_eq!(c.send(&["FLUSHALL"]), ok())));
        // A key that had already expired when watched changes nothing by being reclaimed.
        assert_eq!(setup.send(&["SET", "gone", "v", "PX", "1"]), ok());
        thread::sleep(Duration::from_millis(5));
        assert!(exec_after(server, "gone", |c| assert_eq!(c.send(&["EXISTS", "gone"]), int(0))));
    });
}

#[test]
fn an_expiry_after_watch_refuses_exec_even_before_anyone_reclaims_the_key() {
    with_each_server(|server| {
        let mut client = server.connect();
        assert_eq!(client.send(&["SET", "k", "v", "PX", "50"]), ok());
        assert_eq!(client.send(&["WATCH", "k"]), ok());
        thread::sleep(Duration::from_millis(80));
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["PING"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::NullArray);
    });
}

#[test]
fn unwatch_exec_and_own_writes_follow_redis() {
    with_each_server(|server| {
        let mut client = server.connect();
        // The client's own change after WATCH aborts its EXEC too, as in Redis.
        assert_eq!(client.send(&["WATCH", "k"]), ok());
        assert_eq!(client.send(&["SET", "k", "1"]), ok());
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["INCR", "k"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::NullArray);
        // EXEC (even a refused one) forgets the watched keys.
        assert_eq!(client.send(&["SET", "k", "2"]), ok());
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["INCR", "k"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::Array(vec![int(3)]));
        // UNWATCH forgets them.
        assert_eq!(client.send(&["WATCH", "k"]), ok());
        assert_eq!(server.connect().send(&["SET", "k", "10"]), ok());
        assert_eq!(client.send(&["UNWATCH"]), ok());
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["INCR", "k"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::Array(vec![int(11)]));
    });
}

/// Transfers between accounts in transactions while other clients read all the accounts with
/// MGET and race their own transfers: every MGET must see the total unchanged.
#[test]
fn every_client_sees_a_transaction_whole() {
    const ACCOUNTS: usize = 8;
    const TOTAL: i64 = 1_000 * ACCOUNTS as i64;
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("account:{i}")).collect();
    with_each_server(|server| {
        let mut setup = server.connect();
        for account in &accounts {
            assert_eq!(setup.send(&["SET", account.as_str(), "1000"]), ok());
        }
        thread::scope(|scope| {
            for writer in 0..2 {
                let accounts = &accounts;
                scope.spawn(move || {
                    let mut client = server.connect();
                    for round in 0..300 {
                        let from = &accounts[(round + writer) % ACCOUNTS];
                        let to = &accounts[(round * 3 + 1 + writer) % ACCOUNTS];
                        let commands = vec![
                            vec!["MULTI", ""],
                            vec!["DECRBY", from, "7"],
                            vec!["INCRBY", to, "7"],
                            vec!["EXEC", ""],
                        ];
                        let commands: Vec<Vec<&str>> = commands
                            .into_iter()
                            .map(|c| c.into_iter().filter(|arg| !arg.is_empty()).collect())
                            .collect();
                        let replies = client.pipeline(&commands);
                        assert!(
                            matches!(&replies[3], Value::Array(r) if r.len() == 2),
                            "EXEC answered {:?}",
                            replies[3]
                        );
                    }
                });
            }
            for _ in 0..2 {
                let accounts = &accounts;
                scope.spawn(move || {
                    let mut client = server.connect();
                    let mget: Vec<&str> = std::iter::once("MGET").chain(accounts.iter().map(String::as_str)).collect();
                    for _ in 0..600 {
                        let Value::Array(balances) = client.send(&mget) else { panic!("MGET failed") };
                        let total: i64 = balances
                            .iter()
                            .map(|balance| match balance {
                                Value::Bulk(text) => std::str::from_utf8(text).unwrap().parse::<i64>().unwrap(),
                                other => panic!("balance {other:?}"),
                            })
                            .sum();
                        assert_eq!(total, TOTAL, "an MGET saw part of a transaction: {balances:?}");
                    }
                });
            }
        });
    });
}

/// A pipeline keeps the store's exclusivity from one MSET-like command to the next and must
/// let it go before anything that asks for a pass or for exclusivity itself (any other
/// command, EXEC, a queued command); a mistake there deadlocks the connection.
#[test]
fn pipelines_that_mix_exclusive_commands_with_others_complete() {
    with_each_server(|server| {
        thread::scope(|scope| {
            for client_id in 0..3 {
                scope.spawn(move || {
                    let mut client = server.connect();
                    let (a, b, c) = (format!("a{client_id}"), format!("b{client_id}"), format!("c{client_id}"));
                    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());
                    for _ in 0..200 {
                        let commands: Vec<Vec<&str>> = vec![
                            vec!["MSET", a, "1", b, "2"],
                            vec!["MSET", c, "3"],
                            vec!["RENAME", c, "moved"],
                            vec!["GET", a],
                            vec!["MSETNX", a, "9", "fresh", "9"],
                            vec!["MULTI"],
                            vec!["MSET", c, "4"],
                            vec!["GET", c],
                            vec!["EXEC"],
                            vec!["MSET", b, "5"],
                            vec!["PING"],
                            vec!["MSET", a, "6"],
                        ];
                        let replies = client.pipeline(&commands);
                        assert_eq!(replies[3], bulk("1"));
                        assert_eq!(replies[4], int(0));
                        assert_eq!(replies[8], Value::Array(vec![ok(), bulk("4")]));
                        assert_eq!(replies[11], ok());
                    }
                });
            }
        });
    });
}

/// A long pipeline of exclusive commands hands the store over every so often; it and a
/// client reading meanwhile both finish, with every MSET applied.
#[test]
fn a_long_run_of_pipelined_msets_completes_beside_a_reader() {
    with_each_server(|server| {
        thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut client = server.connect();
                for _ in 0..500 {
                    assert!(!matches!(client.send(&["GET", "run:0"]), Value::Error(_)));
                }
            });
            let mut client = server.connect();
            let values: Vec<String> = (0..1_000).map(|i| i.to_string()).collect();
            let commands: Vec<Vec<&str>> =
                values.iter().map(|value| vec!["MSET", "run:0", value.as_str(), "run:1", value.as_str()]).collect();
            assert!(client.pipeline(&commands).iter().all(|reply| *reply == ok()));
            assert_eq!(client.send(&["MGET", "run:0", "run:1"]), Value::Array(vec![bulk("999"), bulk("999")]));
            reader.join().unwrap();
        });
    });
}

#[test]
fn the_aof_logs_a_transaction_between_multi_and_exec_and_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let extra = ["--dir", dir_arg, "--appendonly", "yes", "--appendfsync", "always", "--save", ""];
    {
        let server = TestServer::start(&extra);
        let mut client = server.connect();
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["SET", "a", "1"]), queued());
        assert_eq!(client.send(&["INCR", "a"]), queued());
        assert_eq!(client.send(&["GET", "a"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::Array(vec![ok(), int(2), bulk("2")]));
        // A transaction that writes nothing logs nothing.
        assert_eq!(client.send(&["MULTI"]), ok());
        assert_eq!(client.send(&["GET", "a"]), queued());
        assert_eq!(client.send(&["EXEC"]), Value::Array(vec![bulk("2")]));
        // RENAME logs both keys' states as one transaction of its own.
        assert_eq!(client.send(&["SET", "from", "moved"]), ok());
        assert_eq!(client.send(&["RENAME", "from", "to"]), ok());
    }
    let incr = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incremental AOF file");
    let log = String::from_utf8(std::fs::read(incr).unwrap()).unwrap();
    let multi = "*1\r\n$5\r\nMULTI\r\n";
    let exec = "*1\r\n$4\r\nEXEC\r\n";
    assert_eq!(log.matches(multi).count(), 2, "{log:?}");
    assert_eq!(log.matches(exec).count(), 2, "{log:?}");
    let (start, end) = (log.find(multi).unwrap(), log.find(exec).unwrap());
    assert!(start < end && log[start..end].contains("$1\r\na\r\n"), "the writes sit between MULTI and EXEC: {log:?}");
    let (start, end) = (log.rfind(multi).unwrap(), log.rfind(exec).unwrap());
    let rename = &log[start..end];
    assert!(rename.contains("$4\r\nfrom\r\n") && rename.contains("$2\r\nto\r\n"), "RENAME's records: {log:?}");
    let server = TestServer::start(&extra);
    let mut client = server.connect();
    assert_eq!(client.send(&["GET", "a"]), bulk("2"));
    assert_eq!(client.send(&["MGET", "from", "to"]), Value::Array(vec![Value::NullBulk, bulk("moved")]));
}
