//! What one SCAN step, one KEYS, one RANDOMKEY and one `allkeys-random` eviction cost, per
//! strategy, against the number of keys in a shard: each should be bounded by COUNT or by a
//! constant, not grow with the shard (issue 15). One shard holds every key, the worst case.
//!
//! `cargo bench --bench walks` measures; `cargo bench --bench walks -- --test` (and
//! `cargo test --benches`) runs each once as a smoke test.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use cstore::engine::{SetOptions, Store, Strategy};

const STRATEGIES: [Strategy; 4] = [Strategy::Mutex, Strategy::RwLock, Strategy::LockFree, Strategy::CopyOnWrite];
const SIZES: [usize; 2] = [10_000, 100_000];

fn store(strategy: Strategy, keys: usize) -> Store {
    let store = Store::builder().strategy(strategy).shards(1).build().expect("a valid configuration");
    for i in 0..keys {
        store.set(format!("key:{i}").as_bytes(), "v", SetOptions::default()).unwrap();
    }
    store
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .without_plots()
        .configure_from_args();
    for strategy in STRATEGIES {
        for size in SIZES {
            let store = store(strategy, size);
            let id = |what: &str| BenchmarkId::new(format!("{strategy:?}/{what}"), size);
            let mut group = criterion.benchmark_group("walks");
            group.bench_function(id("scan-count-10"), |b| {
                let mut cursor = 0;
                b.iter(|| {
                    let (next, keys) = store.scan(cursor, None, 10);
                    cursor = next;
                    black_box(keys)
                })
            });
            group.bench_function(id("randomkey"), |b| b.iter(|| black_box(store.random_key())));
            group.bench_function(id("keys"), |b| b.iter(|| black_box(store.keys(b"*").len())));
            // Evict one key, then put one back, so that the store keeps its size.
            group.bench_function(id("evict-random"), |b| {
                let mut i = size;
                b.iter(|| {
                    black_box(store.evict_random(1));
                    i += 1;
                    store.set(format!("key:{i}").as_bytes(), "v", SetOptions::default()).unwrap();
                })
            });
            group.finish();
        }
    }
    criterion.final_summary();
}
