//! Persistence through the reconcile, against an in-memory API server (kube-fake-client): the
//! data claim and who owns it, a claim that is not the store's, live changes of the rules,
//! and what the status and Events say of failed saves and a failed load. The kubelet does not
//! run here: tests write the pod status it would write.

mod operator_common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

use cstore::engine::Strategy;
use cstore::operator::crd::{ConcurrentStoreSpec, PersistenceMode, PersistenceSpec, WhenDeleted};
use cstore::operator::reconcile::FailureReason;
use cstore::operator::resources::DATA_OF_LABEL;
use operator_common::fake_store::FakeStore;
use operator_common::{Cluster, NAMESPACE, new_store};

fn persistent(mode: PersistenceMode, when_deleted: WhenDeleted) -> ConcurrentStoreSpec {
    ConcurrentStoreSpec {
        persistence: Some(PersistenceSpec { mode, when_deleted, ..PersistenceSpec::default() }),
        ..ConcurrentStoreSpec::default()
    }
}

/// A persistent store, rolled out, whose one pod is a fake store.
async fn running(spec: ConcurrentStoreSpec) -> (Cluster, FakeStore) {
    let cluster = Cluster::with(new_store("cache", spec)).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    let pod = FakeStore::start(Strategy::RwLock, 16).await;
    cluster.add_pod("cache-0", pod.address).await;
    cluster.reconcile().await.unwrap();
    (cluster, pod)
}

#[tokio::test]
async fn a_retained_claim_has_no_owner_and_a_deleted_one_is_owned_by_the_store() {
    let cluster = Cluster::with(new_store("cache", persistent(PersistenceMode::Snapshot, WhenDeleted::Retain))).await;
    cluster.reconcile().await.unwrap();
    let claim: PersistentVolumeClaim = cluster.get("cache-data").await.unwrap();
    assert!(claim.owner_references().is_empty(), "Retain: the claim outlives the store");
    assert_eq!(claim.labels()[DATA_OF_LABEL], "cache");
    let deployment: Deployment = cluster.get("cache").await.unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == "data").unwrap();
    assert_eq!(volume.persistent_volume_claim.unwrap().claim_name, "cache-data");
    assert!(cluster.events().await.contains(&("Created".into(), "Created PersistentVolumeClaim cache-data".into())));

    cluster.patch_spec(json!({"persistence": {"whenDeleted": "Delete"}})).await;
    cluster.reconcile().await.unwrap();
    let claim: PersistentVolumeClaim = cluster.get("cache-data").await.unwrap();
    let store = cluster.store().await;
    assert_eq!(claim.owner_references().len(), 1, "Delete: garbage-collected with the store");
    assert_eq!(claim.owner_references()[0].uid, store.uid().unwrap());
    // Back to Retain removes the owner reference through server-side apply, which
    // kube-fake-client merges instead: scripts/e2e.sh checks that on a real API server.
}

#[tokio::test]
async fn a_store_created_again_uses_its_retained_claim_but_never_a_users_claim() {
    let cluster = Cluster::with(new_store("cache", persistent(PersistenceMode::Snapshot, WhenDeleted::Retain))).await;
    cluster.reconcile().await.unwrap();
    let before: PersistentVolumeClaim = cluster.get("cache-data").await.unwrap();

    // The store deleted (the garbage collector takes its owned children) and created again
    // under its name: another uid, the same claim.
    let deleted = kube::api::DeleteParams::default();
    cluster.api::<ConfigMap>().delete("cache-config", &deleted).await.unwrap();
    cluster.api::<Deployment>().delete("cache", &deleted).await.unwrap();
    cluster.api::<Service>().delete("cache", &deleted).await.unwrap();
    let mut again = (*cluster.store().await).clone();
    again.metadata.uid = Some("a-new-incarnation".into());
    cluster.reconcile_object(again).await.unwrap();
    let after: PersistentVolumeClaim = cluster.get("cache-data").await.unwrap();
    assert_eq!(after.uid(), before.uid(), "the same claim, with its data");

    // A claim of the user's own under the name is left alone, and the store says why.
    let users = Cluster::with(new_store("orders", persistent(PersistenceMode::AppendOnly, WhenDeleted::Retain))).await;
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "orders-data", "namespace": NAMESPACE, "labels": {"team": "orders"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "9Gi"}}},
    }))
    .unwrap();
    users.api::<PersistentVolumeClaim>().create(&PostParams::default(), &claim).await.unwrap();
    let error = users.reconcile().await.unwrap_err();
    assert_eq!(error.reason(), FailureReason::NotOwned);
    let kept: PersistentVolumeClaim = users.get("orders-data").await.unwrap();
    assert_eq!(kept.spec.as_ref().unwrap().access_modes, Some(vec!["ReadWriteMany".to_owned()]), "unchanged");
    assert!(kept.labels().get(DATA_OF_LABEL).is_none());
    assert!(users.get::<Deployment>("orders").await.is_none(), "no pod waits for a claim it must not use");
    assert_eq!(users.condition("Degraded").await, ("True".into(), "NotOwned".into()));
}

#[tokio::test]
async fn persistence_rules_reach_the_running_pod_live() {
    let (cluster, pod) = running(persistent(PersistenceMode::Snapshot, WhenDeleted::Retain)).await;
    assert_eq!(pod.configured("save").as_deref(), Some("3600 1 300 100 60 10000"));
    assert_eq!(pod.configured("appendonly").as_deref(), Some("no"));
    let template = cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().template;

    cluster
        .patch_spec(json!({"persistence": {"mode": "AppendOnly", "appendFsync": "always", "snapshotRules": ""}}))
        .await;
    cluster.reconcile().await.unwrap();
    assert_eq!(
        (pod.configured("save"), pod.configured("appendonly"), pod.configured("appendfsync")),
        (Some(String::new()), Some("yes".into()), Some("always".into()))
    );
    let after = cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().template;
    assert_eq!(after, template, "no new pod");
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("True".into(), "SavesSucceeding".into()));
}

#[tokio::test]
async fn a_failed_save_is_a_condition_and_one_warning() {
    let (cluster, pod) = running(persistent(PersistenceMode::Snapshot, WhenDeleted::Retain)).await;
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("True".into(), "SavesSucceeding".into()));

    pod.fail_saves(true, false);
    cluster.reconcile().await.unwrap();
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("False".into(), "SaveFailed".into()));
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "SaveFailed".into()));
    let warnings = cluster.events().await.into_iter().filter(|(reason, _)| reason == "SaveFailed").count();
    assert_eq!(warnings, 1, "once per failure, not per reconcile");

    pod.fail_saves(false, true);
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("False".into(), "AofWriteFailed".into()));
    assert!(cluster.events().await.iter().any(|(reason, _)| reason == "AofWriteFailed"));

    pod.fail_saves(false, false);
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("True".into(), "SavesSucceeding".into()));
    assert_eq!(cluster.condition("Degraded").await, ("False".into(), "ReconcileSucceeded".into()));
}

#[tokio::test]
async fn a_store_that_cannot_load_its_data_is_degraded_with_its_error() {
    let cluster = Cluster::with(new_store("cache", persistent(PersistenceMode::Snapshot, WhenDeleted::Retain))).await;
    cluster.reconcile().await.unwrap();
    let log_tail = format!(
        "{{\"level\":\"INFO\",\"fields\":{{\"message\":\"rdb load\"}}}}\nerror: {}: {}\n",
        cstore::server::LOAD_FAILED,
        "cannot read /data/dump.rdb: the CRC-64 trailer does not match"
    );
    // What the kubelet reports of a container that exited at startup and waits to restart.
    let crashed: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "cache-0",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "cstore", "app.kubernetes.io/instance": "cache"},
        },
        "spec": {"containers": [{"name": "cstore", "image": "cstore"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "cstore", "image": "cstore", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": log_tail}},
        }]},
    }))
    .unwrap();
    cluster.api::<Pod>().create(&PostParams::default(), &crashed).await.unwrap();
    cluster.reconcile().await.unwrap();

    let expected = format!(
        "pod cache-0 exited with code 1: error: {}: cannot read /data/dump.rdb: the CRC-64 trailer does not match",
        cstore::server::LOAD_FAILED
    );
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "LoadFailed".into()));
    assert_eq!(cluster.condition_message("Degraded").await, expected);
    assert_eq!(cluster.condition("PersistenceHealthy").await, ("False".into(), "LoadFailed".into()));
    assert!(cluster.events().await.contains(&("LoadFailed".into(), expected)));
}
