//! Nothing in the engine's public API may panic, whatever it is given: arbitrary byte keys
//! and values (empty, large, not UTF-8), any integer or float (NaN, infinities, subnormals),
//! any offset, deadline, cursor or COUNT, malformed glob patterns, and invalid configurations,
//! which must come back as errors with a message.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::ops::{Deadline, OpSpace, apply};
use common::{manual_store, proptest_cases};
use cstore::engine::{
    CompactBytes, ConfigError, EngineConfig, ExpireCondition, MAX_SHARDS, SetOptions, Store,
    Strategy as EngineStrategy, Sweeper, glob_match, parse_float, parse_integer,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Cases run by default (about 7 s in a debug build on a busy two-core machine);
/// `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 2_000;

/// Keys and texts: short byte strings that collide, the empty string, bytes that are not
/// UTF-8, and a few hundred arbitrary bytes.
fn any_key() -> BoxedStrategy<Bytes> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..16),
        2 => select(vec![Vec::new(), vec![0xff, 0xfe, 0xc0, 0x80], vec![0], b"k".to_vec()]),
        1 => proptest::collection::vec(any::<u8>(), 0..400),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

/// Values: everything a key can be, and large values too.
fn any_value() -> BoxedStrategy<Bytes> {
    prop_oneof![
        9 => any_key(),
        1 => (0usize..70_000, any::<u8>()).prop_map(|(len, byte)| Bytes::from(vec![byte; len])),
    ]
    .boxed()
}

/// Glob patterns built from the metacharacters (unterminated classes, trailing backslashes,
/// runs of `*`), pathological star patterns, and arbitrary bytes.
fn any_pattern() -> BoxedStrategy<Bytes> {
    let metacharacters = select(&[b'*', b'?', b'[', b']', b'^', b'-', b'\\', b'a', b'b', 0, 0xff][..]);
    prop_oneof![
        4 => proptest::collection::vec(metacharacters, 0..40).prop_map(Bytes::from),
        1 => (1usize..100).prop_map(|stars| Bytes::from(format!("{}a{}b", "*a".repeat(stars), "*".repeat(stars)))),
        1 => any_key(),
    ]
    .boxed()
}

fn any_i64() -> BoxedStrategy<i64> {
    prop_oneof![any::<i64>(), select(&[0, 1, -1, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1][..])].boxed()
}

fn any_u64() -> BoxedStrategy<u64> {
    prop_oneof![any::<u64>(), select(&[0, 1, u64::MAX, u64::MAX - 1, i64::MAX as u64, 1 << 40, 1 << 52][..])].boxed()
}

fn any_usize() -> BoxedStrategy<usize> {
    prop_oneof![any::<usize>(), 0usize..100, select(&[0, usize::MAX, usize::MAX / 2, isize::MAX as usize][..])].boxed()
}

/// What a case runs: a store shape, a value limit, and the commands.
fn store_and_ops() -> impl Strategy<Value = (EngineStrategy, u64, usize, Vec<common::ops::Op>)> {
    let shape = (select(&EngineStrategy::ALL[..]), select(&[1u64, 2, 16, 256, 4096][..]));
    let max_value_len = select(&[1usize, 16, 1 << 16, 1 << 20][..]);
    (shape, max_value_len).prop_flat_map(|((strategy, shards), max_value_len)| {
        let ops = proptest::collection::vec(op_space().op(), 1..40);
        (Just(strategy), Just(shards), Just(max_value_len), ops)
    })
}

fn op_space() -> OpSpace {
    let count = any_usize();
    OpSpace {
        key: any_key(),
        value: any_value(),
        pattern: any_pattern(),
        int_delta: any_i64(),
        float_delta: prop_oneof![
            any::<f64>(),
            select(
                &[
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::MIN_POSITIVE / 2.0,
                    5e-324,
                    -0.0,
                    f64::MAX,
                    f64::MIN
                ][..]
            ),
        ]
        .boxed(),
        range_index: any_i64(),
        offset: any_usize(),
        deadline: prop_oneof![any_i64().prop_map(Deadline::In), any_u64().prop_map(Deadline::At)].boxed(),
        expire_condition: any::<(bool, bool, bool, bool)>()
            .prop_map(|(nx, xx, gt, lt)| ExpireCondition { nx, xx, gt, lt })
            .boxed(),
        cursor: any_u64(),
        count,
        advance: prop_oneof![0u64..100, any_u64()].boxed(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(DEFAULT_CASES)))]

    #[test]
    fn no_command_panics((strategy, shards, max_value_len, ops) in store_and_ops()) {
        let builder = Store::builder().strategy(strategy).shards(shards).max_value_len(max_value_len);
        let (store, clock) = manual_store(builder);
        for op in &ops {
            apply(&store, &clock, op);
        }
        // The store-wide reads and maintenance calls, on whatever state the commands left.
        let _ = (store.stats(), store.memory_bytes(), store.is_empty(), store.random_key());
        store.evict_random(usize::MAX);
        prop_assert!(store.keys(b"*").is_empty(), "evicting without limit leaves no live key");
    }

    #[test]
    fn glob_matching_never_panics(pattern in any_pattern(), text in any_key()) {
        glob_match(&pattern, &text);
    }

    #[test]
    fn number_parsing_never_panics(text in any_key()) {
        parse_integer(&text);
        parse_float(&text);
    }

    #[test]
    fn integers_parse_back_from_their_decimal_form(number in any_i64()) {
        prop_assert_eq!(parse_integer(number.to_string().as_bytes()), Some(number));
    }

    #[test]
    fn shard_counts_are_accepted_exactly_when_valid(shards in any_u64()) {
        let valid = shards.is_power_of_two() && shards <= u64::from(MAX_SHARDS);
        match Store::builder().shards(shards).build() {
            Ok(store) => prop_assert!(valid && store.shard_count() as u64 == shards),
            Err(error) => {
                prop_assert!(!valid);
                prop_assert_eq!(error, ConfigError::InvalidShards(shards));
            }
        }
        if let Ok(shards) = u32::try_from(shards) {
            prop_assert_eq!(EngineConfig { shards, ..EngineConfig::default() }.validate().is_ok(), valid);
        }
    }

    #[test]
    fn strategy_names_parse_without_panicking(text in ".*") {
        if let Ok(strategy) = EngineStrategy::from_str(&text) {
            let folded = |name: &str| name.replace(['-', '_'], "").to_ascii_lowercase();
            prop_assert_eq!(folded(&text), folded(strategy.name()));
        }
    }
}

#[test]
fn invalid_shard_counts_are_refused_with_a_message() {
    for shards in [0, 3, 5000, u64::MAX] {
        let error = Store::builder().shards(shards).build().err().expect("an invalid shard count is refused");
        let message = error.to_string();
        assert!(message.contains(&shards.to_string()) && message.contains("power of two"), "{message}");
    }
}

#[test]
fn value_limits_outside_what_the_engine_can_store_are_refused_with_a_message() {
    for limit in [0, cstore::engine::MAX_STRING_LEN + 1, usize::MAX] {
        let error = Store::builder().max_value_len(limit).build().err().expect("the limit is refused");
        assert_eq!(error, ConfigError::InvalidMaxValueLen(limit));
        assert!(error.to_string().contains(&limit.to_string()), "{error}");
    }
    assert!(Store::builder().max_value_len(cstore::engine::MAX_STRING_LEN).build().is_ok());
}

#[test]
fn the_sweeper_starts_and_stops_at_any_interval() {
    for interval in [Duration::ZERO, Duration::from_millis(1), Duration::MAX] {
        let store = Arc::new(Store::builder().build().expect("the default configuration is valid"));
        store.set(&Bytes::from_static(b"k"), Bytes::from_static(b"v"), SetOptions::default()).unwrap();
        let sweeper = Sweeper::start(Arc::clone(&store), interval, |store| store.sweep_expired())
            .expect("the sweeper thread starts");
        std::thread::sleep(Duration::from_millis(5));
        sweeper.stop();
    }
}

#[test]
fn lockfree_scan_accepts_any_count() {
    // SCAN 0 COUNT 9223372036854775807 is a valid Redis command: LockFree's scan must not
    // size anything by COUNT (it once reserved COUNT + 1 heap slots and panicked).
    let store = Store::builder().strategy(EngineStrategy::LockFree).shards(1).build().expect("valid configuration");
    store.set(&Bytes::from_static(b"k"), Bytes::from_static(b"v"), SetOptions::default()).unwrap();
    for count in [usize::MAX, usize::MAX / 2, 1 << 40] {
        assert_eq!(store.scan(0, None, count), (0, vec![CompactBytes::from("k")]), "COUNT {count}");
    }
}
