//! A differential fuzz with Redis 7 as the oracle. Where `redis_oracle.rs` replays one
//! hand-written script, this draws seeded random sequences of commands over a handful of keys,
//! fields, members and values chosen to collide: types clash, counters overflow, strings grow
//! by APPEND and SETRANGE, hashes and sets outgrow their listpack limits and shrink to nothing,
//! keys move between databases, inside and outside MULTI/EXEC. Each sequence goes to a fresh
//! `redis-server` state and to cstore under every strategy and shard count, over RESP2 and
//! RESP3; every reply must be Redis's, compared exactly except where `common::replies` says
//! how two correct replies may differ (the order of an unordered collection, a remaining
//! time's last second). INCRBYFLOAT's sums compare exactly too: they stay in the range where
//! cstore's decimals and Redis's long double print the same digits (see [`FLOATS`]).
//!
//! The other tests replay such sequences while the store is busy with something else, and
//! keep what they leave:
//! - while the engine migrates round and round (CONFIG SET strategy and shards from a second
//!   connection), and while BGSAVE and BGREWRITEAOF take turns: every reply is still Redis's;
//! - cstore killed and restarted from its AOF (plain, or compacted by those rewrites), from
//!   the snapshot SAVE wrote, and redis-server started on that snapshot all hold exactly what
//!   Redis holds (values, collections, databases, expiries).
//!
//! Expiry uses absolute deadlines fixed when the run starts, so that NX, XX, GT and LT decide
//! the same way in both servers whatever the milliseconds between them. A failure names the
//! configuration, the seed and the commands up to the first difference; `FUZZ_SEED` and
//! `FUZZ_COMMANDS` replay one seed or run longer sequences.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use common::replies::{
    close_seconds, elements, integer_of, same_distinct_elements, same_elements_in_any_order, same_pairs_in_any_order,
};
use common::server::{RespClient, TestServer};
use common::tools::RedisServer;
use common::{SHARD_COUNTS, with_each_configuration};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Commands per configuration unless `FUZZ_COMMANDS` says otherwise.
const DEFAULT_COMMANDS: usize = 2_000;

/// The first seed unless `FUZZ_SEED` says otherwise; each configuration runs its own seed.
const DEFAULT_SEED: u64 = 0x0c57_03e5;

/// Commands shown before the first difference in a failure.
const CONTEXT: usize = 25;

const KEYS: [&str; 5] = ["fz:a", "fz:b", "fz:c", "fz:d", "fz:e"];

/// Values that parse as integers at and beyond the edges, as floats, as neither, empty, binary,
/// and one longer than `hash-max-listpack-value` (64).
const VALUES: [&[u8]; 16] = [
    b"",
    b"0",
    b"1",
    b"-1",
    b"42",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"3.5",
    b"abc",
    b"x y",
    b"\x00\xff",
    b"1e3",
    b" 7",
    b"007",
    b"-0",
    b"a-long-value-past-the-listpack-limit-of-sixty-four-bytes-0123456789",
];

const INTEGERS: [&str; 8] = ["1", "-3", "1000", "0", "9223372036854775807", "-9223372036854775808", "x", "1.5"];

/// Increments whose sums both servers print alike, digit for digit, starting from a value of
/// [`FLOAT_VALUES`]: Redis adds in long double and prints 17 decimals, cstore adds decimals,
/// which agree while the magnitude stays well below 100 (past that, the oracle's
/// `long-double` deviation). So these go to [`FLOAT_KEYS`] and [`FLOAT_FIELDS`] only, which
/// nothing else writes and SET resets often, and they drift neither up nor down.
const FLOATS: [&str; 7] = ["0.5", "-1.25", "3", "1e1", "-1e1", "-0.0", "2.5e-3"];

/// Increments that fail: what the servers check, and in which order, must agree. (Not
/// `1e400`: Redis's long double holds it, cstore's f64 does not, as `float.rs` says.)
const BAD_FLOATS: [&str; 4] = ["abc", "inf", "-inf", "1.5x"];

const FLOAT_KEYS: [&str; 2] = ["fz:float:0", "fz:float:1"];
const FLOAT_FIELDS: [&str; 2] = ["ff0", "ff1"];
const FLOAT_VALUES: [&str; 4] = ["0", "1.5", "-7", "10.25"];

#[test]
fn random_command_sequences_answer_like_redis() {
    let Some(redis_server) = common::tools::require("redis-server") else { return };
    let redis = RedisServer::start(&redis_server, &[]);
    let first_seed = first_seed(0);
    let deadlines = Deadlines::from_now();
    let mut failures = Vec::new();
    let mut run = 0;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let seed = first_seed + run;
        let protocol = if run % 2 == 0 { "2" } else { "3" };
        run += 1;
        let cstore = TestServer::with_engine(strategy, shards, &[]);
        let sequence = drawn_sequence(seed, &deadlines);
        if let Err(difference) = replay(&sequence, protocol, &redis, &cstore) {
            failures.push(format!("{strategy} x {shards} shards, seed {seed}, RESP{protocol}: {difference}"));
        }
    });
    assert!(failures.is_empty(), "cstore answered unlike Redis:\n\n{}", failures.join("\n\n"));
}

/// Then the data the sequences leave, whole: what cstore holds equals what Redis holds, and so
/// does what cstore loads back after `kill -9` from its AOF (`appendfsync always`) and from
/// the snapshot SAVE wrote, and what redis-server loads from that snapshot.
#[test]
fn the_data_left_survives_restarts_and_loads_in_redis() {
    let Some(redis_server) = common::tools::require("redis-server") else { return };
    let redis = RedisServer::start(&redis_server, &[]);
    let first_seed = first_seed(PERSISTENCE_SEEDS);
    let deadlines = Deadlines::from_now();
    for (run, strategy) in (0..).zip(Strategy::ALL) {
        let seed = first_seed + run;
        let failed = |what: &str| format!("{strategy}, seed {seed}: {what}");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dir = dir.path().to_str().expect("a UTF-8 path");
        let with_aof = ["--dir", dir, "--appendonly", "yes", "--appendfsync", "always"];
        let cstore = TestServer::with_engine(strategy, SHARDS, &with_aof);
        let sequence = drawn_sequence(seed, &deadlines);
        replay(&sequence, "2", &redis, &cstore).unwrap_or_else(|difference| panic!("{}", failed(&difference)));
        let expected = contents(redis.addr);
        assert_same_contents(&expected, &contents(cstore.resp_addr), &failed("while serving"));
        assert_eq!(cstore.send(&["SAVE"]), common::server::ok(), "{}", failed("SAVE"));
        drop(cstore); // kill -9
        let from_aof = TestServer::with_engine(strategy, SHARDS, &with_aof);
        assert_same_contents(&expected, &contents(from_aof.resp_addr), &failed("loaded from the AOF"));
        drop(from_aof);
        let from_snapshot = TestServer::with_engine(strategy, SHARDS, &["--dir", dir, "--appendonly", "no"]);
        assert_same_contents(&expected, &contents(from_snapshot.resp_addr), &failed("loaded from the snapshot"));
        drop(from_snapshot);
        let in_redis = RedisServer::start(&redis_server, &["--dir", dir]);
        assert_same_contents(&expected, &contents(in_redis.addr), &failed("redis-server loading cstore's snapshot"));
    }
}

/// The same sequences while the engine migrates under them, one `CONFIG SET` after another
/// from a second connection (every strategy, shard counts up and down, both at once): not one
/// reply may differ from Redis's.
#[test]
fn sequences_answer_like_redis_while_the_engine_migrates() {
    let cstore = TestServer::with_engine(Strategy::RwLock, SHARDS, &[]);
    replay_while(&cstore, MIGRATION_SEEDS, "migrations", |control, round| {
        let (strategy, shards) = MIGRATION_WALK[round % MIGRATION_WALK.len()];
        let change = control.send(&["CONFIG", "SET", "strategy", strategy, "shards", shards]);
        assert_eq!(change, common::server::ok(), "CONFIG SET strategy {strategy} shards {shards}");
        wait_for_info(control, &[("strategy", strategy), ("shards", shards), ("migration_in_progress", "0")]);
    });
}

/// The same sequences while BGSAVE and BGREWRITEAOF take turns under them (point-in-time
/// walks of the store, whose writers keep the versions a walk still needs), under every
/// strategy: every reply is Redis's, and the store restarted from the AOF those rewrites
/// compacted holds what Redis holds.
#[test]
fn sequences_answer_like_redis_while_snapshots_and_rewrites_run() {
    for (index, strategy) in (0..).zip(Strategy::ALL) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dir = dir.path().to_str().expect("a UTF-8 path");
        let with_aof = ["--dir", dir, "--appendonly", "yes", "--appendfsync", "always"];
        let cstore = TestServer::with_engine(strategy, SHARDS, &with_aof);
        let replayed = replay_while(&cstore, SNAPSHOT_SEEDS + index, "snapshots and rewrites", |control, round| {
            let (command, running) = if round % 2 == 0 {
                ("BGSAVE", "rdb_bgsave_in_progress")
            } else {
                ("BGREWRITEAOF", "aof_rewrite_in_progress")
            };
            assert!(matches!(control.send(&[command]), Value::Simple(_)), "{command} started");
            wait_for_info(control, &[(running, "0")]);
            assert_eq!(control.info_field("rdb_last_bgsave_status"), "ok");
            assert_eq!(control.info_field("aof_last_bgrewrite_status"), "ok");
        });
        if !replayed {
            return;
        }
        let held = contents(cstore.resp_addr);
        drop(cstore); // kill -9
        let restarted = TestServer::with_engine(strategy, SHARDS, &with_aof);
        assert_same_contents(&held, &contents(restarted.resp_addr), &format!("{strategy}: restarted from the AOF"));
    }
}

/// Replays a sequence (drawn from the first seed plus `seeds`) against a fresh redis-server
/// and `cstore`, over RESP3, while `round` runs again and again on a second connection to
/// `cstore` (told its round number) until the sequence is done, at least [`MIN_ROUNDS`]
/// times during it. Panics at the first reply that differs; false (having done nothing) when
/// redis-server is missing outside CI.
fn replay_while(cstore: &TestServer, seeds: u64, rounds: &str, round: impl Fn(&mut RespClient, usize) + Sync) -> bool {
    let Some(redis_server) = common::tools::require("redis-server") else { return false };
    let redis = RedisServer::start(&redis_server, &[]);
    let seed = first_seed(seeds);
    let sequence = drawn_sequence(seed, &Deadlines::from_now());
    let replayed = AtomicBool::new(false);
    let rounds_done = AtomicUsize::new(0);
    // However the machine runs, at least MIN_ROUNDS rounds overlap the sequence, spread over
    // it: before step i, i * MIN_ROUNDS / len of them have finished.
    let pace = |index: usize| {
        let give_up = std::time::Instant::now() + common::server::PATIENCE;
        while rounds_done.load(Ordering::Relaxed) * sequence.len() < index * MIN_ROUNDS {
            assert!(std::time::Instant::now() < give_up, "no {rounds} round ended in {:?}", common::server::PATIENCE);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    let (outcome, done) = std::thread::scope(|scope| {
        let rounds = scope.spawn(|| {
            let mut control = cstore.connect();
            while !replayed.load(Ordering::Relaxed) {
                round(&mut control, rounds_done.load(Ordering::Relaxed));
                rounds_done.fetch_add(1, Ordering::Relaxed);
            }
            rounds_done.load(Ordering::Relaxed)
        });
        let outcome = replay_paced(&sequence, "3", &redis, cstore, pace);
        replayed.store(true, Ordering::Relaxed);
        (outcome, rounds.join().expect("the second connection panicked"))
    });
    outcome.unwrap_or_else(|difference| panic!("seed {seed}, during {done} {rounds}: {difference}"));
    true
}

/// Engines the migration test walks through, round and round.
const MIGRATION_WALK: [(&str, &str); 8] = [
    ("Mutex", "4096"),
    ("LockFree", "1"),
    ("CopyOnWrite", "256"),
    ("RwLock", "2"),
    ("LockFree", "16"),
    ("CopyOnWrite", "1"),
    ("Mutex", "16"),
    ("RwLock", "16"),
];

/// Fewest migrations, or snapshots and rewrites, that overlap a sequence: `replay_while` holds
/// the sequence back when they fall behind (each takes a few milliseconds on the small data
/// here, so it rarely has to).
const MIN_ROUNDS: usize = 20;

/// Seeds the migration test adds to the first one.
const MIGRATION_SEEDS: u64 = 2_000;

/// Seeds the snapshot and rewrite test adds to the first one.
const SNAPSHOT_SEEDS: u64 = 3_000;

/// Waits until every INFO field named in `fields` has its value.
fn wait_for_info(client: &mut RespClient, fields: &[(&str, &str)]) {
    let give_up = std::time::Instant::now() + common::server::PATIENCE;
    loop {
        let now: Vec<(&str, String)> = fields.iter().map(|&(name, _)| (name, client.info_field(name))).collect();
        if now.iter().zip(fields).all(|((_, value), (_, wanted))| value == wanted) {
            return;
        }
        assert!(std::time::Instant::now() < give_up, "INFO still says {now:?}, waiting for {fields:?}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Seeds the persistence test adds to the first one, so that it draws other sequences.
const PERSISTENCE_SEEDS: u64 = 1_000;

/// Shards of the stores the persistence test restarts.
const SHARDS: u64 = 16;

/// Databases the sequences use (SELECT, MOVE, SWAPDB and COPY ... DB name 0 and 1).
const DATABASES: [&str; 2] = ["0", "1"];

/// How far apart two readings of one key's remaining time may be: the restarts in between.
const TTL_SLACK_MS: i64 = 10_000;

/// One key as `contents` reads it: its database, name, type and value (collections sorted),
/// and its remaining milliseconds if it expires.
#[derive(Debug)]
struct Held {
    name: String,
    value: String,
    pttl: Option<i64>,
}

/// Every key of [`DATABASES`], sorted by database and name.
fn contents(addr: std::net::SocketAddr) -> Vec<Held> {
    let mut client = RespClient::connect(addr);
    let mut held = Vec::new();
    for db in DATABASES {
        client.send(&["SELECT", db]);
        for key in client.sorted_keys() {
            let kind = common::server::text_of(&client.send(&[b"TYPE".as_slice(), &key]));
            let read: &[u8] = match kind.as_str() {
                "string" => b"GET",
                "hash" => b"HGETALL",
                "set" => b"SMEMBERS",
                other => panic!("a key of type {other}"),
            };
            let value = match client.send(&[read, &key]) {
                Value::Array(items) if kind == "hash" => {
                    let mut pairs: Vec<String> = items.chunks(2).map(|pair| format!("{pair:?}")).collect();
                    pairs.sort();
                    pairs.join(" ")
                }
                Value::Array(items) => {
                    let mut members: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
                    members.sort();
                    members.join(" ")
                }
                other => format!("{other:?}"),
            };
            let pttl = integer_of(&client.send(&[b"PTTL".as_slice(), &key])).filter(|&ms| ms >= 0);
            let name = format!("db{db} {:?}", String::from_utf8_lossy(&key));
            held.push(Held { name, value: format!("{kind} {value}"), pttl });
        }
    }
    held
}

fn assert_same_contents(expected: &[Held], actual: &[Held], context: &str) {
    let names = |held: &[Held]| held.iter().map(|key| key.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(expected), names(actual), "{context}: different keys");
    for (expected, actual) in expected.iter().zip(actual) {
        assert_eq!(expected.value, actual.value, "{context}: {} differs", expected.name);
        let close = match (expected.pttl, actual.pttl) {
            (None, None) => true,
            (Some(a), Some(b)) => a.abs_diff(b) <= TTL_SLACK_MS.unsigned_abs(),
            _ => false,
        };
        assert!(close, "{context}: {}'s expiry differs ({:?} against {:?})", expected.name, expected.pttl, actual.pttl);
    }
}

/// The first seed of a test that adds `offset` to the run's (`FUZZ_SEED`, or the default).
fn first_seed(offset: u64) -> u64 {
    env_number("FUZZ_SEED").unwrap_or(DEFAULT_SEED) + offset
}

/// The sequence drawn from `seed`, as long as `FUZZ_COMMANDS` says (or the default).
fn drawn_sequence(seed: u64, deadlines: &Deadlines) -> Vec<Step> {
    let commands = env_number("FUZZ_COMMANDS").map_or(DEFAULT_COMMANDS, |n| usize::try_from(n).unwrap_or(usize::MAX));
    Generator::new(seed, deadlines).sequence(commands)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|text| text.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// How a reply is compared with Redis's.
#[derive(Clone, Copy, Debug)]
enum Compare {
    Exact,
    /// An unordered collection: the same elements.
    AnyOrder,
    /// A map, or a flat array of pairs: the same pairs.
    Pairs,
    /// TTL: a positive number of seconds may be one apart; -1 and -2 exactly.
    Seconds,
    /// `[cursor, items]` of a scan that covers everything: cursor 0 in both, and the same
    /// items in any order (field-value pairs for HSCAN; for SCAN and SSCAN, however often
    /// each comes, as a scan may repeat an item: SCAN does during a migration).
    WholeScan {
        pairs: bool,
    },
}

impl Compare {
    fn check(self, redis: &Value, cstore: &Value) -> Result<(), String> {
        match self {
            Compare::Exact => Compare::check_exact(redis, cstore),
            // An error or a null (a key of another type, or none) compares exactly.
            Compare::AnyOrder | Compare::Pairs if elements(redis).is_none() => Compare::check_exact(redis, cstore),
            Compare::AnyOrder => same_elements_in_any_order(redis, cstore),
            Compare::Pairs => same_pairs_in_any_order(redis, cstore),
            Compare::Seconds if integer_of(redis).is_some_and(|seconds| seconds > 0) => close_seconds(redis, cstore),
            Compare::WholeScan { pairs } => match (scanned(redis), scanned(cstore)) {
                (Some((0, expected)), Some((0, actual))) if pairs => same_pairs_in_any_order(&expected, &actual),
                (Some((0, expected)), Some((0, actual))) => same_distinct_elements(&expected, &actual),
                (Some(_), Some(_)) => Err("a scan left unfinished".to_owned()),
                _ => Compare::check_exact(redis, cstore),
            },
            Compare::Seconds => Compare::check_exact(redis, cstore),
        }
    }

    fn check_exact(redis: &Value, cstore: &Value) -> Result<(), String> {
        if redis == cstore { Ok(()) } else { Err("replies differ".to_owned()) }
    }
}

/// A scan's reply split into its cursor and its items.
fn scanned(reply: &Value) -> Option<(i64, Value)> {
    match elements(reply)?.as_slice() {
        [cursor, items @ Value::Array(_)] => Some((integer_of(cursor)?, items.clone())),
        _ => None,
    }
}

/// One step of a sequence: a command, or a whole MULTI ... EXEC block.
enum Step {
    Command(Vec<Vec<u8>>, Compare),
    /// The queued commands with how their results in EXEC's reply compare.
    Transaction(Vec<(Vec<Vec<u8>>, Compare)>),
    /// TYPE of the key, then OBJECT ENCODING, judged knowing the type.
    Encoding(String),
}

/// Unix times in seconds for EXPIREAT and EXAT: a few minutes to hours ahead, and, last, one
/// long past (which deletes the key at once).
struct Deadlines([String; 4]);

impl Deadlines {
    fn from_now() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let ahead = |seconds: u64| (now + seconds).to_string();
        Deadlines([ahead(1_000), ahead(2_000), ahead(9_000), "1".to_owned()])
    }
}

struct Generator<'a> {
    rng: SmallRng,
    deadlines: &'a Deadlines,
}

impl<'a> Generator<'a> {
    fn new(seed: u64, deadlines: &'a Deadlines) -> Self {
        Generator { rng: SmallRng::seed_from_u64(seed), deadlines }
    }

    fn sequence(&mut self, commands: usize) -> Vec<Step> {
        let mut steps = Vec::with_capacity(commands);
        while steps.len() < commands {
            let step = match self.rng.random_range(0..40) {
                0 => Step::Transaction((0..self.rng.random_range(1..5)).map(|_| self.command()).collect()),
                1 => Step::Encoding(self.key()),
                _ => {
                    let (args, compare) = self.command();
                    Step::Command(args, compare)
                }
            };
            steps.push(step);
        }
        steps
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn key(&mut self) -> String {
        self.pick(&KEYS).to_owned()
    }

    fn value(&mut self) -> Vec<u8> {
        self.pick(&VALUES).to_vec()
    }

    /// A hash field or set member: mostly a few shared names, sometimes one of many, so that
    /// collections both collide and grow past 128 elements.
    fn element(&mut self, prefix: &str) -> String {
        match self.rng.random_range(0..10) {
            0..=5 => format!("{prefix}{}", self.rng.random_range(0..6)),
            6 => self.pick(&["1", "2", "300", "-5"]).to_owned(),
            _ => format!("{prefix}{}", self.rng.random_range(0..400)),
        }
    }

    fn small_offset(&mut self) -> String {
        self.rng.random_range(-6..12).to_string()
    }

    /// A deadline, the past one included when `past` allows it. SET ... EXAT never gets it:
    /// Redis 7.0 stores such a key and counts it in DBSIZE until its expiry cycle reclaims
    /// it (a matter of timing), where cstore does not store it.
    fn deadline(&mut self, past: bool) -> String {
        let choices = if past { self.deadlines.0.len() } else { self.deadlines.0.len() - 1 };
        self.deadlines.0[self.rng.random_range(0..choices)].clone()
    }

    fn command(&mut self) -> (Vec<Vec<u8>>, Compare) {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let compare = match self.rng.random_range(0..100) {
            0..=37 => self.string_command(&mut words),
            38..=51 => self.keyspace_command(&mut words),
            52..=74 => self.hash_command(&mut words),
            75..=96 => self.set_command(&mut words),
            _ => self.scan_command(&mut words),
        };
        // Now and then a word short or one too many: which error, and which comes first. (A
        // word short only where replies compare exactly: `HRANDFIELD k 1000` without its
        // WITHVALUES, or SPOP without its count, would be valid and compare otherwise.)
        match self.rng.random_range(0..50) {
            0 | 1 if words.len() > 1 && matches!(compare, Compare::Exact) => drop(words.pop()),
            2 => words.push(b"bogus".to_vec()),
            _ => {}
        }
        (words, compare)
    }

    /// SCAN, HSCAN or SSCAN with a COUNT that covers everything here: one call, every match.
    fn scan_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let key = self.key();
        let mut push = |parts: &[&str]| words.extend(parts.iter().map(|part| part.as_bytes().to_vec()));
        let pairs = match self.rng.random_range(0..4) {
            0 => {
                push(&["SCAN", "0", "COUNT", "1000"]);
                if self.rng.random_bool(0.3) {
                    push(&["TYPE", self.pick(&["string", "hash", "set", "list"])]);
                }
                false
            }
            1 => {
                push(&["KEYS", self.pick(&["*", "fz:[a-c]", "fz:?", "fz:float:*"])]);
                return Compare::AnyOrder;
            }
            2 => {
                push(&["HSCAN", &key, "0", "COUNT", "1000"]);
                true
            }
            _ => {
                push(&["SSCAN", &key, "0", "COUNT", "1000"]);
                false
            }
        };
        if self.rng.random_bool(0.4) {
            push(&["MATCH", self.pick(&["*", "f1*", "m?", "fz:[ab]*", "*[0-2]"])]);
        }
        Compare::WholeScan { pairs }
    }

    fn string_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let key = self.key();
        let mut push = |parts: &[&[u8]]| words.extend(parts.iter().map(|part| part.to_vec()));
        match self.rng.random_range(0..20) {
            0 | 1 => {
                let value = self.value();
                push(&[b"SET", key.as_bytes(), &value]);
                if self.rng.random_bool(0.3) {
                    push(&[self.pick(&[b"NX".as_slice(), b"XX"])]);
                }
                if self.rng.random_bool(0.2) {
                    push(&[b"GET"]);
                }
                match self.rng.random_range(0..6) {
                    0 => push(&[b"KEEPTTL"]),
                    1 => push(&[b"EX", b"1000"]),
                    2 => push(&[b"EXAT", self.deadline(false).as_bytes()]),
                    _ => {}
                }
            }
            2 => push(&[b"GET", key.as_bytes()]),
            3 => push(&[b"GETSET", key.as_bytes(), &self.value()]),
            4 => push(&[b"GETDEL", key.as_bytes()]),
            5 => push(&[b"SETNX", key.as_bytes(), &self.value()]),
            6 | 7 => push(&[b"APPEND", key.as_bytes(), &self.value()]),
            8 => push(&[b"STRLEN", key.as_bytes()]),
            9 => push(&[b"GETRANGE", key.as_bytes(), self.small_offset().as_bytes(), self.small_offset().as_bytes()]),
            10 => {
                let offset = self.rng.random_range(0..12).to_string();
                push(&[b"SETRANGE", key.as_bytes(), offset.as_bytes(), &self.value()]);
            }
            11 => push(&[self.pick(&[b"INCR".as_slice(), b"DECR"]), key.as_bytes()]),
            12 | 13 => {
                push(&[self.pick(&[b"INCRBY".as_slice(), b"DECRBY"]), key.as_bytes(), self.pick(&INTEGERS).as_bytes()])
            }
            14 => return self.float_command(words),
            15 => {
                let command = self.pick(&[b"MSET".as_slice(), b"MSETNX"]);
                push(&[command]);
                for _ in 0..self.rng.random_range(1..4) {
                    push(&[self.key().as_bytes(), &self.value()]);
                }
            }
            16 => {
                push(&[b"MGET"]);
                for _ in 0..self.rng.random_range(1..4) {
                    push(&[self.key().as_bytes()]);
                }
            }
            17 => {
                push(&[b"GETEX", key.as_bytes()]);
                match self.rng.random_range(0..3) {
                    0 => push(&[b"PERSIST"]),
                    1 => push(&[b"EXAT", self.deadline(true).as_bytes()]),
                    _ => {}
                }
            }
            18 => match self.rng.random_range(0..5) {
                0 => push(&[b"SETEX", key.as_bytes(), self.pick(&[b"1000".as_slice(), b"0", b"-1"]), &self.value()]),
                1 => push(&[b"PSETEX", key.as_bytes(), b"1000000", &self.value()]),
                // Past the 512 MB a string may hold, and before its start: refused unallocated.
                2 => push(&[b"SETRANGE", key.as_bytes(), self.pick(&[b"536870912".as_slice(), b"-1"]), b"x"]),
                3 => {
                    let far = [b"9223372036854775807".as_slice(), b"-9223372036854775808", b"0", b"-1"];
                    push(&[b"GETRANGE", key.as_bytes(), self.pick(&far), self.pick(&far)]);
                }
                _ => push(&[b"PSETEX", key.as_bytes(), b"0", &self.value()]),
            },
            _ => push(&[b"TYPE", key.as_bytes()]),
        }
        Compare::Exact
    }

    /// INCRBYFLOAT on a key only float commands write, or on any key with a failing
    /// increment; SET and GET of the float keys.
    fn float_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let float_key = self.pick(&FLOAT_KEYS);
        let mut push = |parts: &[&str]| words.extend(parts.iter().map(|part| part.as_bytes().to_vec()));
        match self.rng.random_range(0..6) {
            0..=2 => push(&["INCRBYFLOAT", float_key, self.pick(&FLOATS)]),
            3 => push(&["INCRBYFLOAT", &self.key(), self.pick(&BAD_FLOATS)]),
            4 => push(&["SET", float_key, self.pick(&FLOAT_VALUES)]),
            _ => push(&["GET", float_key]),
        }
        Compare::Exact
    }

    fn keyspace_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let (key, other) = (self.key(), self.key());
        let mut push = |parts: &[&str]| words.extend(parts.iter().map(|part| part.as_bytes().to_vec()));
        match self.rng.random_range(0..17) {
            0 => push(&["DEL", &key, &other]),
            1 => push(&["UNLINK", &key]),
            2 => push(&["EXISTS", &key, &other, &key]),
            3 => push(&["RENAME", &key, &other]),
            4 => push(&["RENAMENX", &key, &other]),
            5 => {
                push(&["COPY", &key, &other]);
                if self.rng.random_bool(0.3) {
                    push(&["DB", self.pick(&["0", "1"])]);
                }
                if self.rng.random_bool(0.5) {
                    push(&["REPLACE"]);
                }
            }
            6 => push(&["PERSIST", &key]),
            7 | 8 => {
                push(&["EXPIREAT", &key, &self.deadline(true)]);
                if self.rng.random_bool(0.6) {
                    push(&[self.pick(&["NX", "XX", "GT", "LT"])]);
                }
            }
            9 => push(&["EXPIRE", &key, self.pick(&["1000", "0", "-1", "x"])]),
            10 | 11 => {
                push(&["TTL", &key]);
                return Compare::Seconds;
            }
            12 => push(&["DBSIZE"]),
            13 => push(&["MOVE", &key, self.pick(&["0", "1"])]),
            14 => push(&["SELECT", self.pick(&["0", "0", "1"])]),
            15 => push(&["SWAPDB", "0", "1"]),
            _ if self.rng.random_range(0..4) == 0 => push(&["FLUSHDB"]),
            _ => push(&["EXISTS", &key]),
        }
        Compare::Exact
    }

    fn hash_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let key = self.key();
        let field = self.element("f");
        let mut push = |parts: &[&[u8]]| words.extend(parts.iter().map(|part| part.to_vec()));
        match self.rng.random_range(0..16) {
            0..=3 => {
                push(&[self.pick(&[b"HSET".as_slice(), b"HSET", b"HMSET"]), key.as_bytes()]);
                let pairs = if self.rng.random_range(0..8) == 0 { 24 } else { self.rng.random_range(1..4) };
                for _ in 0..pairs {
                    push(&[self.element("f").as_bytes(), &self.value()]);
                }
            }
            4 => push(&[b"HSETNX", key.as_bytes(), field.as_bytes(), &self.value()]),
            5 | 6 => push(&[b"HGET", key.as_bytes(), field.as_bytes()]),
            7 => push(&[b"HMGET", key.as_bytes(), field.as_bytes(), self.element("f").as_bytes()]),
            8 => {
                push(&[b"HDEL", key.as_bytes(), field.as_bytes()]);
                for _ in 0..self.rng.random_range(0..3) {
                    push(&[self.element("f").as_bytes()]);
                }
            }
            9 => push(&[self.pick(&[b"HLEN".as_slice(), b"HEXISTS"]), key.as_bytes()]),
            10 => push(&[self.pick(&[b"HEXISTS".as_slice(), b"HSTRLEN"]), key.as_bytes(), field.as_bytes()]),
            11 => push(&[b"HINCRBY", key.as_bytes(), field.as_bytes(), self.pick(&INTEGERS).as_bytes()]),
            12 => {
                // A float field of its own, or any field with an increment that fails.
                if self.rng.random_bool(0.7) {
                    let (field, increment) = (self.pick(&FLOAT_FIELDS), self.pick(&FLOATS));
                    push(&[b"HINCRBYFLOAT", key.as_bytes(), field.as_bytes(), increment.as_bytes()]);
                } else {
                    push(&[b"HINCRBYFLOAT", key.as_bytes(), field.as_bytes(), self.pick(&BAD_FLOATS).as_bytes()]);
                }
            }
            13 => {
                push(&[self.pick(&[b"HKEYS".as_slice(), b"HVALS"]), key.as_bytes()]);
                return Compare::AnyOrder;
            }
            14 => {
                push(&[b"HGETALL", key.as_bytes()]);
                return Compare::Pairs;
            }
            _ => {
                // A count covering any hash here returns every field, in each server's order.
                push(&[b"HRANDFIELD", key.as_bytes(), b"1000"]);
                if self.rng.random_bool(0.5) {
                    push(&[b"WITHVALUES"]);
                    return Compare::Pairs;
                }
                return Compare::AnyOrder;
            }
        }
        Compare::Exact
    }

    fn set_command(&mut self, words: &mut Vec<Vec<u8>>) -> Compare {
        let (key, other) = (self.key(), self.key());
        let member = self.element("m");
        let mut push = |parts: &[&str]| words.extend(parts.iter().map(|part| part.as_bytes().to_vec()));
        match self.rng.random_range(0..15) {
            0..=3 => {
                push(&["SADD", &key]);
                let members = if self.rng.random_range(0..8) == 0 { 24 } else { self.rng.random_range(1..4) };
                for _ in 0..members {
                    push(&[&self.element("m")]);
                }
            }
            4 | 5 => {
                push(&["SREM", &key, &member]);
                for _ in 0..self.rng.random_range(0..3) {
                    push(&[&self.element("m")]);
                }
            }
            6 => push(&["SCARD", &key]),
            7 => push(&["SISMEMBER", &key, &member]),
            8 => push(&["SMISMEMBER", &key, &member, &self.element("m")]),
            9 => {
                push(&["SMEMBERS", &key]);
                return Compare::AnyOrder;
            }
            10 => {
                push(&[self.pick(&["SINTER", "SUNION", "SDIFF"]), &key, &other]);
                return Compare::AnyOrder;
            }
            11 => push(&[self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), &self.key(), &key, &other]),
            12 => push(&["SMOVE", &key, &other, &member]),
            13 => {
                push(&["SINTERCARD", "2", &key, &other]);
                if self.rng.random_bool(0.5) {
                    push(&["LIMIT", self.pick(&["0", "1", "3"])]);
                }
            }
            _ => {
                // Counts covering any set here: every member, in each server's order.
                push(&[self.pick(&["SRANDMEMBER", "SPOP"]), &key, "1000"]);
                return Compare::AnyOrder;
            }
        }
        Compare::Exact
    }
}

/// Sends `sequence` to both servers, each on one connection, after flushing Redis and
/// selecting `protocol`; the first difference, with the commands that led to it.
fn replay(sequence: &[Step], protocol: &str, redis: &RedisServer, cstore: &TestServer) -> Result<(), String> {
    replay_paced(sequence, protocol, redis, cstore, |_| {})
}

/// [`replay`] that calls `pace` with each step's index before sending it.
fn replay_paced(
    sequence: &[Step],
    protocol: &str,
    redis: &RedisServer,
    cstore: &TestServer,
    pace: impl Fn(usize),
) -> Result<(), String> {
    let mut both = Both {
        oracle: RespClient::connect(redis.addr),
        tested: cstore.connect(),
        history: Vec::new(),
        last_oracle_reply: Value::Null,
    };
    for client in [&mut both.oracle, &mut both.tested] {
        client.send(&["FLUSHALL"]);
        client.send(&["HELLO", protocol]);
    }
    for (index, step) in sequence.iter().enumerate() {
        pace(index);
        match step {
            Step::Command(args, how) => both.compare(args, |expected, actual| how.check(expected, actual))?,
            Step::Encoding(key) => {
                both.compare(&[b"TYPE".to_vec(), key.clone().into_bytes()], Compare::check_exact)?;
                let is_set = both.last_oracle_reply == Value::Simple("set".into());
                let args = [b"OBJECT".to_vec(), b"ENCODING".to_vec(), key.clone().into_bytes()];
                both.compare(&args, |expected, actual| encodings_agree(expected, actual, is_set))?;
            }
            Step::Transaction(queued) => {
                both.compare(&[b"MULTI".to_vec()], Compare::check_exact)?;
                for (args, _) in queued {
                    both.compare(args, Compare::check_exact)?;
                }
                // EXEC's results compare one by one, each as its command's reply would.
                both.compare(&[b"EXEC".to_vec()], |expected, actual| match (expected, actual) {
                    (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => {
                        expected.iter().zip(actual).zip(queued).try_for_each(|((expected, actual), (args, how))| {
                            how.check(expected, actual).map_err(|why| format!("in EXEC, {}: {why}", shown(args)))
                        })
                    }
                    _ => Compare::check_exact(expected, actual),
                })?;
            }
        }
    }
    Ok(())
}

/// OBJECT ENCODING's answers agree, or differ only as documented: Redis 7.0 has no listpack
/// sets (a small set of strings is a hashtable there, a listpack in cstore as in Redis 7.2),
/// and cstore names a string's encoding from its bytes, where Redis keeps `raw` for a string
/// that APPEND or SETRANGE changed (and its copies), whatever it holds.
fn encodings_agree(redis: &Value, cstore: &Value, is_set: bool) -> Result<(), String> {
    let named = |value: &Value| match value {
        Value::Bulk(name) => std::str::from_utf8(name).ok().map(str::to_owned),
        _ => None,
    };
    match (named(redis).as_deref(), named(cstore).as_deref()) {
        (Some("hashtable"), Some("listpack")) if is_set => Ok(()),
        (Some("raw"), Some("embstr" | "int")) => Ok(()),
        _ => Compare::check_exact(redis, cstore),
    }
}

/// A connection to each server and the commands sent so far.
struct Both {
    oracle: RespClient,
    tested: RespClient,
    history: Vec<String>,
    /// Redis's reply to the last command.
    last_oracle_reply: Value,
}

impl Both {
    /// Sends `args` to both and judges the replies (Redis's first) with `check`.
    fn compare(
        &mut self,
        args: &[Vec<u8>],
        check: impl FnOnce(&Value, &Value) -> Result<(), String>,
    ) -> Result<(), String> {
        self.history.push(shown(args));
        let (expected, actual) = (self.oracle.send(args), self.tested.send(args));
        let verdict = check(&expected, &actual);
        self.last_oracle_reply = expected.clone();
        verdict.map_err(|why| {
            let from = self.history.len().saturating_sub(CONTEXT);
            format!(
                "command {} differs ({why})\n  redis:  {expected:?}\n  cstore: {actual:?}\n  the last commands:\n    {}",
                self.history.len(),
                self.history[from..].join("\n    ")
            )
        })
    }
}

fn shown(args: &[Vec<u8>]) -> String {
    args.iter().map(|arg| format!("{:?}", String::from_utf8_lossy(arg))).collect::<Vec<_>>().join(" ")
}
