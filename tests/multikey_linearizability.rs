//! Evidence that transactions (MULTI ... EXEC) and the multi-key commands that promise
//! atomicity (MSET, MSETNX, RENAME) are linearizable over the whole store, mixed with
//! single-key commands, on a running `cstore serve` under every strategy, and while it
//! migrates live between strategies.
//!
//! Client threads run short random histories over three keys: GET, SET, DEL, MSET, MSETNX,
//! RENAME, and EXECs of two or three queued GET, SET and DEL. Each operation is recorded with
//! the instants (from one global counter) before its first command was sent and after its
//! last reply was read, and with every reply (an EXEC's included). The Wing–Gong checker
//! (`linearizability/checker.rs`) then searches for one order of all the operations, each
//! taking effect whole at one instant, that respects real time and gives every operation the
//! replies it observed on a sequential model of the three keys. Atomicity across keys is what
//! a per-key projection would lose, so each history is checked whole; histories stay short
//! so that the search stays small.
//!
//! A deliberately non-atomic EXEC must be rejected: the negative test sends every EXEC's and
//! MSET's commands one by one, with the same round trips but without MULTI/EXEC and as SETs,
//! and the checker must find a history that no atomic execution explains.

mod common;

#[path = "linearizability/checker.rs"]
mod checker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use checker::{Operation, SequentialSpec, check};
use common::server::{RespClient, TestServer, ok, simple};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const STRATEGIES: [Strategy; 4] = [Strategy::Mutex, Strategy::RwLock, Strategy::LockFree, Strategy::CopyOnWrite];

/// Keys per history: few, so that operations on different threads meet.
const KEYS: usize = 3;

/// Enough threads to outnumber CI's two cores, few enough operations that the whole-history
/// search is instant.
const THREADS: usize = 4;
const OPERATIONS_PER_THREAD: usize = 8;

/// Histories per strategy and shard count when `CSTORE_TXN_HISTORIES` is not set.
const DEFAULT_HISTORIES: usize = 400;

/// A non-atomic EXEC is usually caught within a few dozen histories; this many without a
/// rejection means the checker has lost its teeth.
const BROKEN_HISTORIES_CAP: usize = 3_000;

/// One step of an EXEC, or a single-key command of its own.
#[derive(Clone, Debug)]
enum Step {
    Get(usize),
    Set(usize, u64),
    Del(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Single(Step),
    MSet(Vec<(usize, u64)>),
    MSetNx(Vec<(usize, u64)>),
    Rename { from: usize, to: usize },
    Exec(Vec<Step>),
}

#[derive(Clone, Debug, PartialEq)]
enum Output {
    Ok,
    Value(Option<u64>),
    Count(i64),
    NoSuchKey,
    Replies(Vec<Output>),
}

/// The sequential specification: three keys holding distinct numbers, or nothing.
struct Keys;

impl Keys {
    fn step(state: &mut [Option<u64>; KEYS], step: &Step) -> Output {
        match *step {
            Step::Get(key) => Output::Value(state[key]),
            Step::Set(key, value) => {
                state[key] = Some(value);
                Output::Ok
            }
            Step::Del(key) => Output::Count(i64::from(state[key].take().is_some())),
        }
    }
}

impl SequentialSpec for Keys {
    type State = [Option<u64>; KEYS];
    type Op = Op;
    type Output = Output;

    fn apply(state: &Self::State, op: &Op) -> Vec<(Self::State, Output)> {
        let mut next = *state;
        let output = match op {
            Op::Single(step) => Keys::step(&mut next, step),
            Op::MSet(pairs) => {
                pairs.iter().for_each(|&(key, value)| next[key] = Some(value));
                Output::Ok
            }
            Op::MSetNx(pairs) => {
                let none_exist = pairs.iter().all(|&(key, _)| next[key].is_none());
                if none_exist {
                    pairs.iter().for_each(|&(key, value)| next[key] = Some(value));
                }
                Output::Count(i64::from(none_exist))
            }
            Op::Rename { from, to } => match next[*from].take() {
                None => Output::NoSuchKey,
                Some(value) => {
                    next[*to] = Some(value);
                    Output::Ok
                }
            },
            Op::Exec(steps) => Output::Replies(steps.iter().map(|step| Keys::step(&mut next, step)).collect()),
        };
        vec![(next, output)]
    }
}

/// How the client sends EXECs and MSETs: as Redis clients do, or cut into separate commands.
#[derive(Clone, Copy, PartialEq)]
enum Atomicity {
    Real,
    /// Every EXEC's commands sent without MULTI/EXEC, every MSET as one SET per key.
    Broken,
}

/// A client thread's view of one history: its connection and the keys of this history.
struct Client<'a> {
    connection: &'a mut RespClient,
    keys: &'a [String; KEYS],
}

impl Client<'_> {
    fn step_command(&self, step: &Step) -> Vec<String> {
        match *step {
            Step::Get(key) => vec!["GET".into(), self.keys[key].clone()],
            Step::Set(key, value) => vec!["SET".into(), self.keys[key].clone(), value.to_string()],
            Step::Del(key) => vec!["DEL".into(), self.keys[key].clone()],
        }
    }

    fn pairs_command(&self, name: &str, pairs: &[(usize, u64)]) -> Vec<String> {
        let mut command = vec![name.to_owned()];
        for &(key, value) in pairs {
            command.extend([self.keys[key].clone(), value.to_string()]);
        }
        command
    }

    fn run(&mut self, op: &Op, atomicity: Atomicity) -> Output {
        match (op, atomicity) {
            (Op::Single(step), _) => output_of(&self.connection.send(&self.step_command(step))),
            (Op::MSet(pairs), Atomicity::Real) => output_of(&self.connection.send(&self.pairs_command("MSET", pairs))),
            (Op::MSet(pairs), Atomicity::Broken) => {
                let steps: Vec<Step> = pairs.iter().map(|&(key, value)| Step::Set(key, value)).collect();
                let replies = self.run_one_by_one(&steps);
                assert!(replies.iter().all(|reply| *reply == Output::Ok), "{replies:?}");
                Output::Ok
            }
            (Op::MSetNx(pairs), _) => output_of(&self.connection.send(&self.pairs_command("MSETNX", pairs))),
            (Op::Rename { from, to }, _) => {
                let command = ["RENAME", &self.keys[*from], &self.keys[*to]];
                output_of(&self.connection.send(&command))
            }
            (Op::Exec(steps), Atomicity::Real) => {
                assert_eq!(self.connection.send(&["MULTI"]), ok());
                for step in steps {
                    assert_eq!(self.connection.send(&self.step_command(step)), simple("QUEUED"));
                }
                output_of(&self.connection.send(&["EXEC"]))
            }
            (Op::Exec(steps), Atomicity::Broken) => Output::Replies(self.run_one_by_one(steps)),
        }
    }

    fn run_one_by_one(&mut self, steps: &[Step]) -> Vec<Output> {
        steps.iter().map(|step| output_of(&self.connection.send(&self.step_command(step)))).collect()
    }
}

fn output_of(reply: &Value) -> Output {
    match reply {
        Value::Simple(text) if &text[..] == b"OK" => Output::Ok,
        Value::Bulk(bytes) => {
            let text = std::str::from_utf8(bytes).expect("values are numbers");
            Output::Value(Some(text.parse().expect("values are numbers")))
        }
        Value::NullBulk | Value::Null => Output::Value(None),
        Value::Integer(n) => Output::Count(*n),
        Value::Error(text) if &text[..] == b"ERR no such key" => Output::NoSuchKey,
        Value::Array(replies) => Output::Replies(replies.iter().map(output_of).collect()),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// `count` different keys, in random order.
fn distinct_keys(rng: &mut SmallRng, count: usize) -> Vec<usize> {
    let mut keys: Vec<usize> = (0..KEYS).collect();
    for i in 0..count {
        keys.swap(i, rng.random_range(i..KEYS));
    }
    keys.truncate(count);
    keys
}

/// A random operation; `fresh` gives every written value its own number, so that a read
/// tells which write it saw.
fn random_op(rng: &mut SmallRng, fresh: &AtomicU64) -> Op {
    let value = || fresh.fetch_add(1, Ordering::Relaxed);
    let key = rng.random_range(0..KEYS);
    match rng.random_range(0..100) {
        0..25 => Op::Single(Step::Get(key)),
        25..37 => Op::Single(Step::Set(key, value())),
        37..42 => Op::Single(Step::Del(key)),
        42..54 => {
            let count = rng.random_range(2..=KEYS);
            Op::MSet(distinct_keys(rng, count).into_iter().map(|key| (key, value())).collect())
        }
        54..59 => Op::MSetNx(distinct_keys(rng, 2).into_iter().map(|key| (key, value())).collect()),
        59..64 => Op::Rename { from: key, to: rng.random_range(0..KEYS) },
        // An EXEC that reads every key: the reader that sees a torn write.
        64..80 => Op::Exec((0..KEYS).map(Step::Get).collect()),
        _ => {
            let steps = rng.random_range(2..=3);
            Op::Exec(
                (0..steps)
                    .map(|_| {
                        let key = rng.random_range(0..KEYS);
                        match rng.random_range(0..3) {
                            0 => Step::Get(key),
                            1 => Step::Set(key, value()),
                            _ => Step::Del(key),
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// Runs one history on `connections` (one thread each) over fresh keys and returns it.
fn record_history(
    connections: &mut [RespClient],
    history: usize,
    seed: u64,
    atomicity: Atomicity,
) -> Vec<Operation<Op, Output>> {
    let keys: [String; KEYS] = std::array::from_fn(|key| format!("h{history}:{key}"));
    let clock = AtomicU64::new(0);
    let fresh = AtomicU64::new(1);
    thread::scope(|scope| {
        let workers: Vec<_> = connections
            .iter_mut()
            .enumerate()
            .map(|(thread, connection)| {
                let (keys, clock, fresh) = (&keys, &clock, &fresh);
                scope.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let mut client = Client { connection, keys };
                    (0..OPERATIONS_PER_THREAD)
                        .map(|_| {
                            let op = random_op(&mut rng, fresh);
                            let invoked = clock.fetch_add(1, Ordering::SeqCst);
                            let output = client.run(&op, atomicity);
                            let responded = clock.fetch_add(1, Ordering::SeqCst);
                            Operation { thread, invoked, responded, op, output }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("client thread panicked")).collect()
    })
}

/// Whether `op` is a multi-key operation that overlapped another thread's operation in time.
fn overlapped_multikey(history: &[Operation<Op, Output>], index: usize) -> bool {
    let this = &history[index];
    let multikey = matches!(this.op, Op::MSet(_) | Op::MSetNx(_) | Op::Rename { .. } | Op::Exec(_));
    multikey
        && history.iter().any(|other| {
            other.thread != this.thread && other.invoked < this.responded && this.invoked < other.responded
        })
}

fn histories() -> usize {
    std::env::var("CSTORE_TXN_HISTORIES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_HISTORIES)
}

/// Records and checks `count` histories against `server`; returns how many multi-key
/// operations overlapped another thread's operation.
fn check_histories(server: &TestServer, count: usize, seed: u64, label: &str) -> usize {
    let mut connections: Vec<RespClient> = (0..THREADS).map(|_| server.connect()).collect();
    let mut overlapping = 0;
    for history_index in 0..count {
        let history = record_history(&mut connections, history_index, seed + history_index as u64, Atomicity::Real);
        if let Err(failure) = check::<Keys>(&[None; KEYS], &history) {
            panic!("{label}, history {history_index}: {failure}");
        }
        overlapping += (0..history.len()).filter(|&index| overlapped_multikey(&history, index)).count();
    }
    overlapping
}

/// Asserts that enough multi-key operations raced others for the histories to mean something.
fn assert_raced(overlapping: usize, histories: usize, label: &str) {
    let multikey_ops = histories * THREADS * OPERATIONS_PER_THREAD / 2;
    eprintln!("{label}: {histories} histories checked, {overlapping} multi-key operations overlapped another");
    assert!(
        overlapping * 10 >= multikey_ops,
        "{label}: only {overlapping} multi-key operations overlapped another (of about {multikey_ops})"
    );
}

#[test]
fn transactions_and_atomic_multikey_commands_are_linearizable_under_every_strategy() {
    let count = histories();
    for strategy in STRATEGIES {
        for shards in [1, 8] {
            let server = TestServer::with_engine(strategy, shards, &[]);
            let label = format!("{strategy:?} with {shards} shards");
            let overlapping = check_histories(&server, count, 0x5eed_0000 + shards, &label);
            assert_raced(overlapping, count, &label);
        }
    }
}

#[test]
fn transactions_stay_linearizable_while_the_store_migrates() {
    let server = TestServer::with_engine(Strategy::RwLock, 4, &[]);
    let stop = AtomicBool::new(false);
    let count = histories();
    let migrations = thread::scope(|scope| {
        let migrator = scope.spawn(|| {
            let mut admin = server.connect();
            let plan =
                [("LockFree", "16"), ("CopyOnWrite", "2"), ("Mutex", "32"), ("RwLock", "1"), ("CopyOnWrite", "64")];
            let mut started = 0;
            while !stop.load(Ordering::Relaxed) {
                let (strategy, shards) = plan[started % plan.len()];
                assert_eq!(admin.send(&["CONFIG", "SET", "strategy", strategy, "shards", shards]), ok());
                started += 1;
                // The next change waits for this migration, so that every one runs whole.
                while admin.info_field("migration_in_progress") == "1" {
                    thread::yield_now();
                }
            }
            started
        });
        let overlapping = check_histories(&server, count, 0x0d1f_f00d, "during migrations");
        stop.store(true, Ordering::Relaxed);
        assert_raced(overlapping, count, "during migrations");
        migrator.join().expect("migrating thread panicked")
    });
    assert!(migrations >= 2, "only {migrations} migrations overlapped the histories");
}

#[test]
fn a_non_atomic_exec_is_rejected_by_the_checker() {
    let server = TestServer::with_engine(Strategy::Mutex, 8, &[]);
    let mut connections: Vec<RespClient> = (0..THREADS).map(|_| server.connect()).collect();
    let rejected = (0..BROKEN_HISTORIES_CAP).find_map(|history_index| {
        let history =
            record_history(&mut connections, history_index, 0xbad_5eed + history_index as u64, Atomicity::Broken);
        check::<Keys>(&[None; KEYS], &history).err().map(|failure| (history_index, failure))
    });
    if let Some((index, failure)) = &rejected {
        eprintln!("history {index} of non-atomic EXECs and MSETs rejected, as it must be:\n{failure}");
    }
    assert!(
        rejected.is_some(),
        "{BROKEN_HISTORIES_CAP} histories of non-atomic EXECs and MSETs all passed: the checker cannot see torn transactions"
    );
}
