//! Shared test harness: every behavioural test runs under every strategy and several shard
//! counts, with a manual clock so that expiry is deterministic.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use cstore::engine::{CompactBytes, ManualClock, Store, Strategy};

/// Shard counts every behavioural test runs with: the coarse single shard and a sharded map.
pub const SHARD_COUNTS: [u64; 2] = [1, 16];

/// Where the manual clock starts: a realistic epoch time, so absolute deadlines look real.
pub const CLOCK_START_MS: u64 = 1_700_000_000_000;

/// Runs `test` once per strategy × shard count, each time on a fresh store driven by a
/// manual clock. A failure names the configuration it happened under.
pub fn with_each_strategy(mut test: impl FnMut(Store, ManualClock)) {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let clock = ManualClock::new(CLOCK_START_MS);
        let store = Store::builder()
            .strategy(strategy)
            .shards(shards)
            .clock(cstore::engine::Clock::Manual(clock.clone()))
            .build()
            .expect("test configurations are valid");
        test(store, clock);
    });
}

/// Runs `test` for every strategy and each of `shard_counts`, naming the configuration when
/// it fails.
pub fn with_each_configuration(shard_counts: &[u64], mut test: impl FnMut(Strategy, u64)) {
    for strategy in Strategy::ALL {
        for &shards in shard_counts {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| test(strategy, shards))) {
                eprintln!("failed under strategy={strategy} shards={shards}");
                resume_unwind(panic);
            }
        }
    }
}

/// The engine's byte string from a string literal or any byte slice.
pub fn b(text: impl AsRef<[u8]>) -> CompactBytes {
    CompactBytes::from(text.as_ref())
}

pub mod ops;
pub mod replies;
pub mod server;
pub mod tools;

/// A store built by `builder` and driven by a fresh manual clock standing at
/// [`CLOCK_START_MS`], for tests that need more than strategy and shard count (a value limit,
/// say).
pub fn manual_store(builder: cstore::engine::StoreBuilder) -> (Store, ManualClock) {
    let clock = ManualClock::new(CLOCK_START_MS);
    let store =
        builder.clock(cstore::engine::Clock::Manual(clock.clone())).build().expect("test configurations are valid");
    (store, clock)
}

/// The number of cases a property test runs: `default`, unless the `PROPTEST_CASES`
/// environment variable asks for another number (to run a longer search on demand).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(default)
}
