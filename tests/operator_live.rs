//! The operator against real stores: `cstore serve` processes stand in for a store's pods
//! (through the context's pod address seam) while the API is kube-fake-client's. A change of
//! strategy, shards and the plain live settings must reach every process with CONFIG SET, keep
//! every key, replace no pod, and leave the status Ready with the engine the processes report.

mod common;
mod operator_common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use common::server::{RespClient, TestServer, bulk, ok, text_of};
use cstore::engine::Strategy;
use cstore::operator::crd::{AuthSpec, ConcurrentStoreSpec, SecretKeyRef};
use cstore::server::resp_value::Value;
use operator_common::{Cluster, new_store};

const KEYS: usize = 2000;

/// Reconciles as the controller would (each reconcile after the delay it asked for, but no
/// longer than 100 ms here) until the store is Ready, at most `limit`; returns every
/// (Progressing reason, message) seen on the way.
async fn reconcile_until_ready(cluster: &Cluster, limit: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        cluster.reconcile().await.unwrap();
        let progressing = (cluster.condition("Progressing").await.1, cluster.condition_message("Progressing").await);
        if seen.last() != Some(&progressing) {
            seen.push(progressing);
        }
        if cluster.condition("Ready").await.0 == "True" {
            return seen;
        }
        assert!(Instant::now() < deadline, "not Ready within {limit:?}; conditions seen: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fill(server: &TestServer) {
    let commands: Vec<Vec<String>> =
        (0..KEYS).map(|i| vec!["SET".into(), format!("key:{i}"), format!("value:{i}")]).collect();
    assert!(server.connect().pipeline(&commands).iter().all(|reply| *reply == ok()));
}

fn assert_every_key_kept(client: &mut RespClient) {
    let commands: Vec<Vec<String>> = (0..KEYS).map(|i| vec!["GET".into(), format!("key:{i}")]).collect();
    let replies = client.pipeline(&commands);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(*reply, bulk(format!("value:{i}")), "key:{i}");
    }
}

fn config_get(client: &mut RespClient, name: &str) -> String {
    let reply = client.send(&["CONFIG", "GET", name]);
    let Value::Array(pair) = reply else { panic!("CONFIG GET {name}: {reply:?}") };
    text_of(&pair[1])
}

#[tokio::test]
async fn real_stores_migrate_live_keep_their_keys_and_the_status_follows() {
    let servers: Vec<TestServer> = (0..2).map(|_| TestServer::with_engine(Strategy::Mutex, 32, &[])).collect();
    let spec =
        ConcurrentStoreSpec { strategy: Strategy::Mutex, shards: 32, replicas: 2, ..ConcurrentStoreSpec::default() };
    let cluster = Cluster::with(new_store("cache", spec)).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    for (index, server) in servers.iter().enumerate() {
        cluster.add_pod(&format!("cache-{index}"), server.resp_addr).await;
        fill(server);
    }
    // The operator sends the rendered maxmemory (three quarters of the memory limit) at once.
    reconcile_until_ready(&cluster, Duration::from_secs(30)).await;
    let template =
        serde_json::to_value(cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().template).unwrap();
    let clients: Vec<RespClient> = servers.iter().map(TestServer::connect).collect();

    for (strategy, shards) in [(Strategy::LockFree, 256), (Strategy::CopyOnWrite, 1), (Strategy::RwLock, 4096)] {
        cluster
            .patch_spec(json!({
                "strategy": strategy.name(),
                "shards": shards,
                "maxMemory": "512Mi",
                "evictionPolicy": "allkeys-random",
                "tracing": {"sampleRatio": 0.125},
            }))
            .await;
        let seen = reconcile_until_ready(&cluster, Duration::from_secs(60)).await;
        eprintln!("to {strategy} with {shards} shards, Progressing went through {seen:#?}");

        let status = cluster.store().await.status.clone().unwrap();
        assert_eq!((status.strategy, status.shards), (Some(strategy), Some(shards)));
        assert!(status.pods.iter().all(|pod| pod.runs_spec && !pod.migrating), "{:?}", status.pods);
        for server in &servers {
            let mut client = server.connect();
            assert_eq!(client.info_field("strategy"), strategy.name());
            assert_eq!(client.info_field("shards"), shards.to_string());
            assert_eq!(client.info_field("migration_in_progress"), "0");
            assert_eq!(config_get(&mut client, "maxmemory"), (512u64 << 20).to_string());
            assert_eq!(config_get(&mut client, "maxmemory-policy"), "allkeys-random");
            assert_eq!(config_get(&mut client, "trace-sample-ratio"), "0.125");
            assert_every_key_kept(&mut client);
        }
    }
    // The connections opened before the first change were never dropped.
    for mut client in clients {
        assert_every_key_kept(&mut client);
    }
    let after = serde_json::to_value(cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().template).unwrap();
    assert_eq!(after, template, "no pod was replaced");
}

#[tokio::test]
async fn a_real_store_with_a_password_is_reconfigured_after_auth() {
    let server = TestServer::with_engine(Strategy::RwLock, 16, &["--requirepass", "s3cret"]);
    let mut spec = ConcurrentStoreSpec { strategy: Strategy::RwLock, shards: 16, ..ConcurrentStoreSpec::default() };
    spec.auth = Some(AuthSpec { secret_ref: SecretKeyRef { name: "cache-auth".into(), key: "password".into() } });
    let cluster = Cluster::with(new_store("cache", spec)).await;
    cluster.add_secret("cache-auth", "password", "s3cret\n").await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.add_pod("cache-0", server.resp_addr).await;

    cluster.patch_spec(json!({"strategy": "LockFree", "shards": 64})).await;
    reconcile_until_ready(&cluster, Duration::from_secs(30)).await;
    let mut client = server.connect();
    assert_eq!(client.send(&["AUTH", "s3cret"]), ok());
    assert_eq!(client.info_field("strategy"), "LockFree");
    assert_eq!(client.info_field("shards"), "64");
}
