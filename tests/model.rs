//! Model-based property test: random command sequences over a few colliding keys run on the
//! real store (every strategy, 1 and 16 shards) and on a sequential model of Redis's string
//! and expiry commands, and every reply must agree.
//!
//! The model is written from Redis 7's documented behaviour and source (`t_string.c`,
//! `expire.c`, `db.c`, `util.c`), checked against redis-server 7.0, not from the engine.
//! Where the engine deviates from Redis, the ignored tests at the bottom (marked `TODO(engine)`)
//! reproduce the deviation, and the generators leave those inputs out until it is fixed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::ops::{Deadline, GetExTtl, Op, OpSpace, Reply, SetTtl, apply};
use common::{CLOCK_START_MS, SHARD_COUNTS, manual_store, proptest_cases};
use cstore::engine::{
    CompactBytes, ExpireCondition, ManualClock, SetCondition, SetExpiry, SetOptions, SetOutcome, Store, StoreError,
    Strategy as EngineStrategy, Ttl, glob_match,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

/// Cases run by default: about 400 s of wall time (720 s of CPU) in a debug build on a busy
/// two-core machine; the longest test target of the suite.
/// `PROPTEST_CASES` overrides it for a longer search.
const DEFAULT_CASES: u32 = 16_000;

/// The store's value limit: small, so that APPEND and SETRANGE can exceed it.
const MAX_VALUE_LEN: usize = 64;

/// Few keys, so that commands keep meeting each other's keys. The empty key and a key holding
/// a glob metacharacter are keys like any other.
const KEYS: &[&str] = &["", "a", "b", "ab", "k1", "k*"];

/// Values for SET, APPEND and SETRANGE: integers at the i64 limits, decimals in the forms C's
/// `strtold` accepts or refuses, text, and a long value that two APPENDs push past
/// [`MAX_VALUE_LEN`]. No value holds `e`, `i`, `n`, `p` or `x`, and neither can any
/// concatenation or patch of them, so the float grammar the model needs is plain decimals
/// (see [`read_float`]).
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "10",
    "-3",
    "007",
    "+5",
    " 7",
    "7 ",
    "1.5",
    "-0.25",
    ".5",
    "5.",
    "abc",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775806",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
];

/// Readable KEYS and SCAN patterns: wildcards, classes (negated, reversed range,
/// unterminated), escapes, and the empty pattern.
const PATTERNS: &[&str] =
    &["*", "a*", "?", "??", "*b", "k?", "[ab]", "[^a]*", "[a-k]*", "[k-a]?", "k\\*", "\\a", "*1*", "", "[ab"];

/// Patterns for KEYS and SCAN MATCH: the readable ones, and short random strings of glob
/// metacharacters and key bytes (the model's matcher agrees with redis-server 7.0 on 4000 such
/// patterns).
fn patterns() -> BoxedStrategy<Bytes> {
    let metacharacters = select(&[b'*', b'?', b'[', b']', b'^', b'-', b'\\', b'a', b'b', b'k', b'1'][..]);
    let random = proptest::collection::vec(metacharacters, 0..7).prop_map(Bytes::from);
    prop_oneof![bytes_from(PATTERNS), random].boxed()
}

fn bytes_from(texts: &'static [&'static str]) -> BoxedStrategy<Bytes> {
    select(texts).prop_map(|text| Bytes::from_static(text.as_bytes())).boxed()
}

/// The commands of this test: small keys and values, offsets and deadlines around the
/// interesting edges, and only the combinations Redis accepts.
fn op_space() -> OpSpace {
    let limit = MAX_VALUE_LEN;
    OpSpace {
        key: bytes_from(KEYS),
        value: bytes_from(VALUES),
        pattern: patterns(),
        int_delta: prop_oneof![
            4 => -5i64..=5,
            1 => select(&[i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1, 1 << 62, -(1 << 62)][..]),
            1 => any::<i64>(),
        ]
        .boxed(),
        // Multiples of 1/8 below 2^40 are exact both in f64 and in the long double Redis
        // computes with, so the model can predict Redis's digits for them (see
        // `Model::incr_by_float`); 0.1 and the infinities take the approximate path.
        float_delta: prop_oneof![
            6 => (-80i64..=80).prop_map(|eighths| eighths as f64 / 8.0),
            1 => (-(1i64 << 40)..(1i64 << 40)).prop_map(|eighths| eighths as f64 / 8.0),
            1 => select(&[0.1, -0.3, 2.5e-7, -0.0, f64::INFINITY, f64::NEG_INFINITY][..]),
        ]
        .boxed(),
        range_index: prop_oneof![
            6 => -8i64..=8,
            1 => select(&[i64::MIN, i64::MAX, -100, 100][..]),
        ]
        .boxed(),
        offset: prop_oneof![4 => 0..=10usize, 1 => limit - 8..=limit + 2, 1 => Just(1000)].boxed(),
        deadline: prop_oneof![
            4 => (-3i64..=3).prop_map(Deadline::In),
            3 => (-60i64..=60).prop_map(Deadline::In),
            1 => select(&[-1_000_000i64, 1_000_000][..]).prop_map(Deadline::In),
        ]
        .boxed(),
        expire_condition: expire_conditions_redis_accepts(),
        cursor: Just(0).boxed(),
        count: prop_oneof![1..=3usize, 4..=20usize].boxed(),
        advance: prop_oneof![4 => 0..=3u64, 2 => 0..=60u64, 1 => Just(10_000u64)].boxed(),
    }
}

/// NX, XX, GT, LT and the pairs Redis accepts: it refuses NX with any other flag, and GT with
/// LT ("NX and XX, GT or LT options at the same time are not compatible").
fn expire_conditions_redis_accepts() -> BoxedStrategy<ExpireCondition> {
    let none = ExpireCondition::default();
    select(vec![
        none,
        ExpireCondition { nx: true, ..none },
        ExpireCondition { xx: true, ..none },
        ExpireCondition { gt: true, ..none },
        ExpireCondition { lt: true, ..none },
        ExpireCondition { xx: true, gt: true, ..none },
        ExpireCondition { xx: true, lt: true, ..none },
    ])
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(DEFAULT_CASES)))]

    #[test]
    fn every_reply_matches_the_redis_model(ops in proptest::collection::vec(op_space().op(), 1..80)) {
        for strategy in EngineStrategy::ALL {
            for shards in SHARD_COUNTS {
                let builder = Store::builder().strategy(strategy).shards(shards).max_value_len(MAX_VALUE_LEN);
                let (store, clock) = manual_store(builder);
                let mut model = Model::new(CLOCK_START_MS);
                for (step, op) in ops.iter().enumerate() {
                    let reply = apply(&store, &clock, op);
                    model.check(op, reply).map_err(|why| {
                        TestCaseError::fail(format!("{strategy} with {shards} shard(s), step {step}, {op:?}: {why}"))
                    })?;
                }
            }
        }
    }
}

/// One key's state in the model.
#[derive(Clone, Debug)]
struct Entry {
    value: Vec<u8>,
    /// Absolute deadline in milliseconds, or `None` for a key without expiry.
    deadline: Option<u64>,
}

/// Redis's view of expiry: a key past its deadline is gone for every command, but it stays in
/// the keyspace (and in DBSIZE) until a command looks it up or the active cycle reclaims it.
/// A key expires once `now > deadline` (db.c `keyIsExpired`): during its deadline millisecond
/// it is still readable and PTTL answers 0.
fn is_due(deadline: u64, now: u64) -> bool {
    now > deadline
}

impl Entry {
    fn is_live(&self, now: u64) -> bool {
        self.deadline.is_none_or(|deadline| !is_due(deadline, now))
    }
}

/// A sequential model of the Redis commands the engine offers.
struct Model {
    /// Every key in the keyspace, expired ones not yet looked up included.
    entries: BTreeMap<Vec<u8>, Entry>,
    now: u64,
}

type Verdict = Result<(), String>;

fn expect(actual: Reply, expected: Reply) -> Verdict {
    if actual == expected { Ok(()) } else { Err(format!("store answered {actual:?}, Redis answers {expected:?}")) }
}

impl Model {
    fn new(now: u64) -> Self {
        Model { entries: BTreeMap::new(), now }
    }

    /// The live entry under `key`. Like Redis's `lookupKey`, looking up an expired key deletes
    /// it.
    fn live(&mut self, key: &[u8]) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|entry| !entry.is_live(self.now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Live keys in key order, without reclaiming anything (KEYS and SCAN only skip expired
    /// keys; whether they also reclaim them is not observable through DBSIZE bounds).
    fn live_keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.entries.iter().filter(|(_, entry)| entry.is_live(self.now)).map(|(key, _)| key)
    }

    /// Applies `op` as Redis would and compares the store's `actual` reply with Redis's.
    fn check(&mut self, op: &Op, actual: Reply) -> Verdict {
        let now = self.now;
        match op {
            Op::Get(key) => expect(actual, Reply::Value(self.live(key).map(|entry| Bytes::from(entry.value.clone())))),
            Op::Set { key, value, condition, ttl, return_previous } => {
                self.set(key, value, *condition, *ttl, *return_previous, actual)
            }
            Op::Delete(key) => {
                let existed = self.live(key).is_some();
                self.entries.remove(key.as_ref());
                expect(actual, Reply::Flag(existed))
            }
            Op::Exists(key) => expect(actual, Reply::Flag(self.live(key).is_some())),
            Op::GetDel(key) => {
                let value = self.live(key).map(|entry| Bytes::from(entry.value.clone()));
                self.entries.remove(key.as_ref());
                expect(actual, Reply::Value(value))
            }
            Op::GetEx(key, ttl) => self.getex(key, *ttl, actual),
            Op::IncrBy(key, delta) => self.incr_by(key, *delta, actual),
            Op::IncrByFloat(key, delta) => self.incr_by_float(key, *delta, actual),
            Op::Append(key, suffix) => self.append(key, suffix, actual),
            Op::Strlen(key) => expect(actual, Reply::Size(self.live(key).map_or(0, |entry| entry.value.len()))),
            Op::GetRange(key, start, end) => {
                let value = self.live(key).map(|entry| entry.value.clone()).unwrap_or_default();
                expect(actual, Reply::Range(Bytes::from(getrange(&value, *start, *end))))
            }
            Op::SetRange(key, offset, patch) => self.setrange(key, *offset, patch, actual),
            Op::ExpireAt(key, deadline, condition) => {
                let replied = self.expire_at(key, deadline.resolve(now), *condition);
                expect(actual, Reply::Flag(replied))
            }
            Op::Persist(key) => {
                let removed = self.live(key).is_some_and(|entry| entry.deadline.take().is_some());
                expect(actual, Reply::Flag(removed))
            }
            Op::Ttl(key) => {
                let ttl = match self.live(key) {
                    None => Ttl::Missing,
                    Some(Entry { deadline: None, .. }) => Ttl::Persistent,
                    Some(Entry { deadline: Some(deadline), .. }) => Ttl::ExpiresIn(deadline.saturating_sub(now)),
                };
                expect(actual, Reply::Ttl(ttl))
            }
            Op::RandomKey => match actual {
                Reply::Value(Some(key)) if self.live_keys().any(|live| live[..] == key[..]) => Ok(()),
                Reply::Value(None) if self.live_keys().next().is_none() => Ok(()),
                other => Err(format!("RANDOMKEY answered {other:?}, live keys are {:?}", self.live_key_list())),
            },
            Op::Len => self.check_key_count("DBSIZE", actual),
            Op::Clear => {
                let verdict = self.check_key_count("FLUSHDB's removal count", actual);
                self.entries.clear();
                verdict
            }
            Op::Keys(pattern) => self.check_keys(actual, |key| keys_pattern_matches(pattern, key)),
            Op::Scan { pattern, .. } => {
                self.check_keys(actual, |key| pattern.as_ref().is_none_or(|pattern| keys_pattern_matches(pattern, key)))
            }
            Op::Advance(ms) => {
                self.now += ms;
                expect(actual, Reply::Done)
            }
            Op::Sweep => {
                let unreclaimed = self.entries.len() - self.live_keys().count();
                match actual {
                    Reply::Swept(report)
                        if report.expired <= unreclaimed as u64 && report.examined >= report.expired =>
                    {
                        Ok(())
                    }
                    other => Err(format!("sweep answered {other:?} with {unreclaimed} expired keys to reclaim")),
                }
            }
        }
    }

    fn live_key_list(&self) -> Vec<String> {
        self.live_keys().map(|key| String::from_utf8_lossy(key).into_owned()).collect()
    }

    /// DBSIZE counts expired keys nobody has looked up yet, and the active expiry cycle may
    /// reclaim them at any moment, so Redis's count lies between the live keys and every key
    /// not yet reclaimed by a lookup.
    fn check_key_count(&self, what: &str, actual: Reply) -> Verdict {
        let (live, held) = (self.live_keys().count(), self.entries.len());
        match actual {
            Reply::Size(count) if (live..=held).contains(&count) => Ok(()),
            other => Err(format!("{what} answered {other:?}, expected between {live} and {held}")),
        }
    }

    /// KEYS and a whole SCAN walk without concurrent writes: each live matching key exactly
    /// once, in any order.
    fn check_keys(&self, actual: Reply, matches: impl Fn(&[u8]) -> bool) -> Verdict {
        let Reply::Keys(returned) = actual else { return Err(format!("expected keys, store answered {actual:?}")) };
        let expected: BTreeSet<&[u8]> = self.live_keys().map(Vec::as_slice).filter(|key| matches(key)).collect();
        let mut sorted: Vec<&[u8]> = returned.iter().map(|key| &key[..]).collect();
        sorted.sort_unstable();
        if sorted.iter().copied().eq(expected.iter().copied()) {
            Ok(())
        } else {
            Err(format!("store returned {sorted:?}, Redis returns each of {expected:?} once"))
        }
    }

    /// SET (t_string.c `setGenericCommand`): GET answers the old value whether or not NX/XX
    /// let the write happen; a plain SET drops the old expiry, KEEPTTL keeps it, and PXAT sets
    /// it even when already past (the key then reads as absent).
    fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        condition: SetCondition,
        ttl: SetTtl,
        return_previous: bool,
        actual: Reply,
    ) -> Verdict {
        let now = self.now;
        let current = self.live(key).cloned();
        let previous = if return_previous {
            current.as_ref().map(|entry| CompactBytes::from(entry.value.as_slice()))
        } else {
            None
        };
        let written = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => current.is_none(),
            SetCondition::IfPresent => current.is_some(),
        };
        if written {
            let deadline = match ttl {
                SetTtl::Clear => None,
                SetTtl::Keep => current.and_then(|entry| entry.deadline),
                SetTtl::At(deadline) => Some(deadline.resolve(now)),
            };
            self.entries.insert(key.to_vec(), Entry { value: value.to_vec(), deadline });
        }
        expect(actual, Reply::Set(SetOutcome { written, previous }))
    }

    /// GETEX: answers the value, then applies the expiry change; an absolute deadline already
    /// reached deletes the key (`checkAlreadyExpired`: `deadline <= now`).
    fn getex(&mut self, key: &[u8], ttl: GetExTtl, actual: Reply) -> Verdict {
        let now = self.now;
        let Some(entry) = self.live(key) else { return expect(actual, Reply::Value(None)) };
        let value = Bytes::from(entry.value.clone());
        match ttl {
            GetExTtl::Keep => {}
            GetExTtl::Persist => entry.deadline = None,
            GetExTtl::At(deadline) => {
                let deadline = deadline.resolve(now);
                if deadline <= now {
                    self.entries.remove(key);
                } else {
                    entry.deadline = Some(deadline);
                }
            }
        }
        expect(actual, Reply::Value(Some(value)))
    }

    /// EXPIREAT/PEXPIREAT (expire.c `expireGenericCommand`): 0 for a missing key or a refused
    /// condition (no expiry counts as infinitely late for GT and LT); otherwise 1, and a
    /// deadline already reached deletes the key.
    fn expire_at(&mut self, key: &[u8], deadline: u64, condition: ExpireCondition) -> bool {
        let now = self.now;
        let Some(entry) = self.live(key) else { return false };
        let current = entry.deadline;
        let refused = condition.nx && current.is_some()
            || condition.xx && current.is_none()
            || condition.gt && current.is_none_or(|current| deadline <= current)
            || condition.lt && current.is_some_and(|current| deadline >= current);
        if refused {
            return false;
        }
        if deadline <= now {
            self.entries.remove(key);
        } else {
            entry.deadline = Some(deadline);
        }
        true
    }

    /// INCRBY (t_string.c `incrDecrCommand`): a missing key counts as 0, the value must be an
    /// integer as `string2ll` reads it, overflow is refused, and the expiry is kept.
    fn incr_by(&mut self, key: &[u8], delta: i64, actual: Reply) -> Verdict {
        let entry = self.live(key);
        let current = match &entry {
            None => Some(0),
            Some(entry) => read_integer(&entry.value),
        };
        let expected = match current {
            None => Err(StoreError::NotAnInteger),
            Some(current) => current.checked_add(delta).ok_or(StoreError::Overflow),
        };
        if let Ok(next) = expected {
            self.put_keeping_ttl(key, next.to_string().into_bytes());
        }
        expect(actual, Reply::Integer(expected))
    }

    /// INCRBYFLOAT (t_string.c `incrbyfloatCommand`): Redis adds in `long double` and prints
    /// the sum with `%.17Lf` minus trailing zeros. When the stored value and the increment are
    /// multiples of 1/8 below 2^40, that sum is exact and the model predicts Redis's exact
    /// digits. Otherwise the digits depend on 80-bit rounding that f64 cannot reproduce, so the
    /// model checks the number to f64 precision and adopts the store's digits as the new value.
    fn incr_by_float(&mut self, key: &[u8], delta: f64, actual: Reply) -> Verdict {
        let stored = match self.live(key) {
            None => StoredFloat::Eighths(0),
            Some(entry) => read_float(&entry.value),
        };
        let base = match stored {
            StoredFloat::NotAFloat => return expect(actual, Reply::Float(Err(StoreError::NotAFloat))),
            StoredFloat::Eighths(base) => match exact_eighths(delta).and_then(|delta| base.checked_add(delta)) {
                Some(sum) if sum.unsigned_abs() < EXACT_EIGHTHS_LIMIT => {
                    let text = redis_float_text(sum);
                    self.put_keeping_ttl(key, text.clone());
                    return expect(actual, Reply::Float(Ok(Bytes::from(text))));
                }
                _ => base as f64 / 8.0,
            },
            StoredFloat::Inexact(base) => base,
        };
        let sum = base + delta;
        if !sum.is_finite() {
            return expect(actual, Reply::Float(Err(StoreError::NotFinite)));
        }
        match actual {
            Reply::Float(Ok(text))
                if is_plain_decimal(&text) && approximately(parse_decimal(&text), sum, base.abs().max(delta.abs())) =>
            {
                self.put_keeping_ttl(key, text.to_vec());
                Ok(())
            }
            other => Err(format!("INCRBYFLOAT answered {other:?}, Redis answers about {sum}")),
        }
    }

    /// APPEND: creates the key when missing, keeps the expiry, and refuses a result longer
    /// than proto-max-bulk-len (`checkStringLength`).
    fn append(&mut self, key: &[u8], suffix: &[u8], actual: Reply) -> Verdict {
        let mut value = self.live(key).map(|entry| entry.value.clone()).unwrap_or_default();
        let expected = if value.len() + suffix.len() > MAX_VALUE_LEN {
            Err(StoreError::TooLarge)
        } else {
            value.extend_from_slice(suffix);
            let len = value.len();
            self.put_keeping_ttl(key, value);
            Ok(len)
        };
        expect(actual, Reply::NewLength(expected))
    }

    /// SETRANGE (t_string.c `setrangeCommand`): an empty patch answers the current length and
    /// creates nothing; `offset + patch length` beyond proto-max-bulk-len is refused; gaps are
    /// zero bytes; the expiry is kept.
    fn setrange(&mut self, key: &[u8], offset: usize, patch: &[u8], actual: Reply) -> Verdict {
        let mut value = self.live(key).map(|entry| entry.value.clone()).unwrap_or_default();
        let expected = if patch.is_empty() {
            Ok(value.len())
        } else if offset + patch.len() > MAX_VALUE_LEN {
            Err(StoreError::TooLarge)
        } else {
            let end = offset + patch.len();
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(patch);
            let len = value.len();
            self.put_keeping_ttl(key, value);
            Ok(len)
        };
        expect(actual, Reply::NewLength(expected))
    }

    /// Stores `value` under `key`, keeping the live key's expiry (none for a new key).
    fn put_keeping_ttl(&mut self, key: &[u8], value: Vec<u8>) {
        let deadline = self.live(key).and_then(|entry| entry.deadline);
        self.entries.insert(key.to_vec(), Entry { value, deadline });
    }
}

/// GETRANGE (t_string.c `getrangeCommand`), in wide integers where C relies on wrap-around.
fn getrange(value: &[u8], start: i64, end: i64) -> Vec<u8> {
    let len = value.len() as i128;
    let (mut start, mut end) = (i128::from(start), i128::from(end));
    if start < 0 && end < 0 && start > end {
        return Vec::new();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        return Vec::new();
    }
    value[start as usize..=end as usize].to_vec()
}

/// An integer as Redis's `string2ll` reads it: exactly the canonical decimal form of an i64
/// (no sign but `-`, no leading zeros, no `-0`, no spaces).
fn read_integer(text: &[u8]) -> Option<i64> {
    let number: i64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    (number.to_string().as_bytes() == text).then_some(number)
}

/// Sums below this many eighths (2^40) are exact in f64 and in long double alike, and f64's
/// shortest digits for them are their exact decimal expansion.
const EXACT_EIGHTHS_LIMIT: u64 = 1 << 43;

/// How INCRBYFLOAT reads a stored value.
enum StoredFloat {
    NotAFloat,
    /// A multiple of 1/8 below 2^40, as a count of eighths.
    Eighths(i64),
    /// Any other decimal, to f64 precision.
    Inexact(f64),
}

/// A stored value as Redis's `string2ld` reads it: C's `strtold` must consume the whole
/// string, and a leading space is refused. The values this test stores contain no `e`, `i`,
/// `n`, `p` or `x`, which leaves C's grammar as plain decimals: an optional sign, then digits
/// with at most one point, and at least one digit.
fn read_float(text: &[u8]) -> StoredFloat {
    let unsigned = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    let (whole, fraction) = match unsigned.iter().position(|&byte| byte == b'.') {
        Some(point) => (&unsigned[..point], &unsigned[point + 1..]),
        None => (unsigned, &[][..]),
    };
    let digits_only = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if !digits_only(whole) || !digits_only(fraction) || whole.len() + fraction.len() == 0 {
        return StoredFloat::NotAFloat;
    }
    match decimal_eighths(whole, fraction) {
        Some(eighths) if text.starts_with(b"-") => StoredFloat::Eighths(-eighths),
        Some(eighths) => StoredFloat::Eighths(eighths),
        None => StoredFloat::Inexact(parse_decimal(text)),
    }
}

/// `whole.fraction` as a number of eighths, when it is a multiple of 1/8 below 2^40.
fn decimal_eighths(whole: &[u8], fraction: &[u8]) -> Option<i64> {
    let whole = &whole[whole.iter().position(|&digit| digit != b'0').unwrap_or(whole.len())..];
    let fraction = &fraction[..fraction.iter().rposition(|&digit| digit != b'0').map_or(0, |last| last + 1)];
    // An eighth needs at most three decimals; 2^40 has 13 digits.
    if fraction.len() > 3 || whole.len() > 13 {
        return None;
    }
    let number = |digits: &[u8]| digits.iter().fold(0i64, |n, digit| n * 10 + i64::from(digit - b'0'));
    let scale = 10i64.pow(fraction.len() as u32);
    let fraction_eighths = number(fraction) * 8;
    let eighths = number(whole) * 8 + fraction_eighths / scale;
    (fraction_eighths % scale == 0 && eighths.unsigned_abs() < EXACT_EIGHTHS_LIMIT).then_some(eighths)
}

/// `delta` as a number of eighths, when it is a multiple of 1/8 below 2^40.
fn exact_eighths(delta: f64) -> Option<i64> {
    let eighths = delta * 8.0;
    (eighths.fract() == 0.0 && eighths.abs() < EXACT_EIGHTHS_LIMIT as f64).then_some(eighths as i64)
}

/// How Redis prints an INCRBYFLOAT result (util.c `ld2string`, `LD_STR_HUMAN`): `%.17Lf`,
/// then trailing zeros and a trailing point removed, and `-0` printed as `0`.
fn redis_float_text(eighths: i64) -> Vec<u8> {
    let magnitude = eighths.unsigned_abs();
    let sign = if eighths < 0 { "-" } else { "" };
    let fixed = format!("{sign}{}.{:03}", magnitude / 8, magnitude % 8 * 125);
    fixed.trim_end_matches('0').trim_end_matches('.').as_bytes().to_vec()
}

/// Whether `text` is a decimal as Redis prints one: digits, at most one point, an optional
/// leading minus, and no exponent.
fn is_plain_decimal(text: &[u8]) -> bool {
    let unsigned = text.strip_prefix(b"-").unwrap_or(text);
    !unsigned.is_empty()
        && unsigned.iter().all(|&byte| byte.is_ascii_digit() || byte == b'.')
        && unsigned.iter().filter(|&&byte| byte == b'.').count() <= 1
}

/// A decimal the caller has already validated, to f64 precision.
fn parse_decimal(text: &[u8]) -> f64 {
    std::str::from_utf8(text).ok().and_then(|text| text.parse().ok()).unwrap_or(f64::NAN)
}

/// Equal to f64 precision: relative for large numbers, absolute for small ones (Redis prints
/// 17 decimals, so it rounds anything below 1e-17 away).
/// Whether `actual` is `expected` up to f64 rounding of a sum whose operands reach
/// `operand_scale`: cancellation (a large sum of opposite signs) leaves an error relative to
/// the operands, not to the small result.
fn approximately(actual: f64, expected: f64, operand_scale: f64) -> bool {
    (actual - expected).abs() <= 1e-15 * expected.abs().max(operand_scale).max(1.0) * 4.0
}

/// Whether KEYS or SCAN MATCH with `pattern` returns `key`: `*` alone means every key
/// (`keysCommand`, `scanGenericCommand`), anything else goes through `stringmatchlen`.
fn keys_pattern_matches(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || redis_stringmatch(pattern, key)
}

/// Redis's `stringmatchlen` (util.c, 7.0), case-sensitive, transcribed onto slices. Note that
/// it never matches the empty string unless the pattern is empty too, and that in a class a
/// `-` right before the closing `]` makes a range that ends at `]`.
fn redis_stringmatch(mut pattern: &[u8], mut text: &[u8]) -> bool {
    while !pattern.is_empty() && !text.is_empty() {
        let width = match pattern[0] {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                return (0..text.len()).any(|skip| redis_stringmatch(&pattern[1..], &text[skip..]));
            }
            b'?' => 1,
            b'[' => match redis_class(pattern, text[0]) {
                (true, width) => width,
                (false, _) => return false,
            },
            b'\\' if pattern.len() >= 2 && pattern[1] == text[0] => 2,
            b'\\' if pattern.len() >= 2 => return false,
            literal if literal == text[0] => 1,
            _ => return false,
        };
        pattern = &pattern[width..];
        text = &text[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
        }
    }
    pattern.is_empty() && text.is_empty()
}

/// The `[...]` class at the start of `pattern` as `stringmatchlen` reads it: whether it
/// matches `byte`, and how many pattern bytes it spans (through `]`, or to the end of the
/// pattern when unterminated).
fn redis_class(pattern: &[u8], byte: u8) -> (bool, usize) {
    let mut at = 1;
    let negated = pattern.get(at) == Some(&b'^');
    if negated {
        at += 1;
    }
    let mut matched = false;
    let width = loop {
        let remaining = pattern.len() - at;
        if remaining >= 2 && pattern[at] == b'\\' {
            at += 1;
            matched |= pattern[at] == byte;
        } else if remaining == 0 {
            break pattern.len();
        } else if pattern[at] == b']' {
            break at + 1;
        } else if remaining >= 3 && pattern[at + 1] == b'-' {
            let (low, high) = (pattern[at].min(pattern[at + 2]), pattern[at].max(pattern[at + 2]));
            matched |= (low..=high).contains(&byte);
            at += 2;
        } else {
            matched |= pattern[at] == byte;
        }
        at += 1;
    };
    (matched != negated, width)
}

// Deviations from Redis 7 found by the model. Each reproduces one with the answers
// redis-server 7.0.15 gives; run them with `cargo test --test model -- --ignored`.

/// A store on a manual clock with a value already stored, for the reproductions below.
fn store_holding(key: &'static str, value: &'static str) -> (Store, ManualClock, Bytes) {
    let (store, clock) = manual_store(Store::builder());
    let key = Bytes::from_static(key.as_bytes());
    store.set(&key, Bytes::from_static(value.as_bytes()), SetOptions::default()).unwrap();
    (store, clock, key)
}

#[test]
fn keys_live_through_their_deadline_millisecond() {
    // Redis expires a key once now > deadline (db.c `keyIsExpired`): during the deadline
    // millisecond, GET answers the value and PTTL answers 0.
    let (store, clock, key) = store_holding("k", "v");
    let deadline = clock.now_ms() + 5;
    store
        .set(&key, Bytes::from_static(b"v"), SetOptions { expiry: SetExpiry::At(deadline), ..SetOptions::default() })
        .unwrap();
    clock.advance(5);
    assert_eq!(store.ttl(&key), Ttl::ExpiresIn(0));
    assert_eq!(store.get(&key).unwrap().as_deref(), Some(&b"v"[..]));
    // SET k v PXAT <now> stores a key that reads until the clock moves on.
    let now = clock.now_ms();
    store
        .set(&key, Bytes::from_static(b"w"), SetOptions { expiry: SetExpiry::At(now), ..SetOptions::default() })
        .unwrap();
    assert_eq!(store.get(&key).unwrap().as_deref(), Some(&b"w"[..]));
    clock.advance(1);
    assert_eq!(store.get(&key).unwrap(), None);
}

#[test]
fn incrbyfloat_prints_like_redis() {
    // (stored value, increment, what redis-server 7.0.15 answers)
    let cases: &[(&'static str, f64, &str)] = &[
        ("-0", -0.0, "0"),
        ("0", 1e-20, "0"),
        ("0.1", 0.2, "0.3"),
        ("9223372036854775807", 0.5, "9223372036854775807.5"),
    ];
    for &(stored, delta, redis) in cases {
        let (store, _clock, key) = store_holding("f", stored);
        let answer = store.incr_by_float(&key, delta);
        assert_eq!(answer.as_deref(), Ok(redis.as_bytes()), "SET f {stored}; INCRBYFLOAT f {delta:?}");
    }
}

#[test]
fn glob_matches_redis_on_star_runs_and_dash_before_bracket() {
    // (pattern, key, whether KEYS <pattern> returns the key in redis-server 7.0.15)
    let cases: &[(&str, &str, bool)] =
        &[("**", "", false), ("[a-]", "_", true), ("[a-]", "]", true), ("[a-]", "-", false)];
    for &(pattern, key, redis) in cases {
        assert_eq!(keys_pattern_matches(pattern.as_bytes(), key.as_bytes()), redis, "model: {pattern:?} vs {key:?}");
        assert_eq!(glob_match(pattern.as_bytes(), key.as_bytes()), redis, "engine: {pattern:?} vs {key:?}");
    }
}
