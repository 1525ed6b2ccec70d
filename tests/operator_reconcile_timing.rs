//! Reconcile time in-process against the in-memory API server, over 1,000 reconciles each of
//! a steady store (every child in sync: reads only) and of a store whose strategy changes
//! before every reconcile (ConfigMap, Deployment and status rewritten, Events published).
//! It prints p50/p99 (see them with `-- --nocapture`); it asserts outcomes, never times, since
//! timings depend on the machine.

mod operator_common;

use std::time::{Duration, Instant};

use serde_json::json;

use cstore::engine::Strategy;
use cstore::operator::crd::ConcurrentStoreSpec;
use operator_common::{Cluster, new_store};

const RECONCILES: usize = 1000;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: {} reconciles, p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::test]
async fn reconcile_time_over_a_thousand_reconciles() {
    let spec = ConcurrentStoreSpec { strategy: Strategy::RwLock, replicas: 2, ..ConcurrentStoreSpec::default() };
    let cluster = Cluster::with(new_store("cache", spec)).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();

    let mut steady = Vec::with_capacity(RECONCILES);
    for _ in 0..RECONCILES {
        let store = cluster.store().await;
        let started = Instant::now();
        cstore::operator::reconcile::reconcile(store, cluster.context.clone()).await.unwrap();
        steady.push(started.elapsed());
    }

    let mut changing = Vec::with_capacity(RECONCILES);
    for round in 0..RECONCILES {
        let strategy = if round % 2 == 0 { "LockFree" } else { "RwLock" };
        cluster.patch_spec(json!({ "strategy": strategy })).await;
        let store = cluster.store().await;
        let started = Instant::now();
        cstore::operator::reconcile::reconcile(store, cluster.context.clone()).await.unwrap();
        changing.push(started.elapsed());
    }

    assert_eq!(cluster.condition("Degraded").await.0, "False");
    report("steady store (reads only)", steady);
    report("strategy changed before each reconcile (writes)", changing);
}
