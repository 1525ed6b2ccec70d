//! Reconcile scenarios against an in-memory API server (kube-fake-client): each asserts the
//! cluster state the operator leaves behind, not the requests it sent. The Deployment
//! controller and the kubelet do not run here, so tests play their part by writing the
//! Deployment's status the way they would.

mod operator_common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use cstore::engine::Strategy;
use cstore::operator::crd::ConcurrentStoreSpec;
use cstore::operator::reconcile::{FailureReason, error_policy};
use cstore::operator::resources::CONFIG_HASH_ANNOTATION;
use cstore::server::config::ServerConfig;
use operator_common::{Cluster, new_store};

fn spec(strategy: Strategy, replicas: i32) -> ConcurrentStoreSpec {
    ConcurrentStoreSpec { strategy, shards: 32, replicas, ..ConcurrentStoreSpec::default() }
}

fn config_hash(deployment: &Deployment) -> String {
    deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
        [CONFIG_HASH_ANNOTATION]
        .clone()
}

#[tokio::test]
async fn create_applies_every_child_owned_by_the_store_and_reports_progress() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::LockFree, 1))).await;
    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));

    let store = cluster.store().await;
    let config_map: ConfigMap = cluster.get("cache-config").await.unwrap();
    let config = ServerConfig::from_toml_str(&config_map.data.unwrap()["cstore.toml"]).unwrap();
    assert_eq!((config.engine.strategy, config.engine.shards), (Strategy::LockFree, 32));
    let deployment: Deployment = cluster.get("cache").await.unwrap();
    let service: Service = cluster.get("cache").await.unwrap();
    for owners in [deployment.owner_references(), service.owner_references()] {
        assert_eq!(owners[0].uid, store.uid().unwrap());
    }
    assert!(cluster.get::<PodDisruptionBudget>("cache").await.is_none(), "one replica needs no budget");

    let status = store.status.clone().unwrap();
    assert_eq!(status.observed_generation, store.metadata.generation);
    assert_eq!(status.endpoint.as_deref(), Some("cache.apps.svc:6379"));
    assert_eq!(status.ready, "0/1");
    assert_eq!(status.strategy, None, "nothing runs yet");
    assert_eq!(cluster.condition("Ready").await, ("False".into(), "ReplicasNotReady".into()));
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "RollingOut".into()));
    assert_eq!(cluster.condition("Degraded").await, ("False".into(), "ReconcileSucceeded".into()));

    let events = cluster.events().await;
    for note in ["Created ConfigMap cache-config", "Created Deployment cache", "Created Service cache"] {
        assert!(events.contains(&("Created".to_owned(), note.to_owned())), "missing {note:?} in {events:?}");
    }
    assert_eq!(cluster.metrics_line("cstore_operator_reconciles_total"), Some("1".into()));
}

#[tokio::test]
async fn all_replicas_ready_at_the_current_generation_is_ready() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::Mutex, 2))).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();

    assert_eq!(cluster.condition("Ready").await, ("True".into(), "AllReplicasReady".into()));
    assert_eq!(cluster.condition("Progressing").await, ("False".into(), "RolloutComplete".into()));
    let status = cluster.store().await.status.clone().unwrap();
    assert_eq!((status.ready.as_str(), status.replicas, status.ready_replicas), ("2/2", 2, 2));
    assert_eq!((status.strategy, status.shards), (Some(Strategy::Mutex), Some(32)));
    assert!(cluster.get::<PodDisruptionBudget>("cache").await.is_some(), "two replicas get a budget");
}

#[tokio::test]
async fn a_steady_store_is_left_alone() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();
    let before = (
        cluster.get::<Deployment>("cache").await.unwrap().resource_version(),
        cluster.get::<ConfigMap>("cache-config").await.unwrap().resource_version(),
        cluster.store().await.resource_version(),
        cluster.events().await.len(),
    );
    for _ in 0..3 {
        cluster.reconcile().await.unwrap();
    }
    let after = (
        cluster.get::<Deployment>("cache").await.unwrap().resource_version(),
        cluster.get::<ConfigMap>("cache-config").await.unwrap().resource_version(),
        cluster.store().await.resource_version(),
        cluster.events().await.len(),
    );
    assert_eq!(before, after, "no write, no status update and no Event when nothing changed");
}

#[tokio::test]
async fn changing_the_strategy_rolls_the_pods_and_status_follows_the_rollout() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::Mutex, 1))).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();
    let old_hash = config_hash(&cluster.get("cache").await.unwrap());

    cluster.patch_spec(json!({"strategy": "CopyOnWrite"})).await;
    cluster.reconcile().await.unwrap();
    let deployment: Deployment = cluster.get("cache").await.unwrap();
    assert_ne!(config_hash(&deployment), old_hash, "a new config hash in the pod template rolls the pods");
    let config_map: ConfigMap = cluster.get("cache-config").await.unwrap();
    assert!(config_map.data.unwrap()["cstore.toml"].contains("strategy = \"CopyOnWrite\""));
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "RollingOut".into()));
    assert_eq!(cluster.condition("Ready").await, ("False".into(), "ReplicasNotReady".into()));
    let status = cluster.store().await.status.clone().unwrap();
    assert_eq!(status.strategy, Some(Strategy::Mutex), "the old pods still run Mutex");
    assert_eq!(status.observed_generation, Some(2));
    let events = cluster.events().await;
    for note in ["Updated ConfigMap cache-config", "Updated Deployment cache"] {
        assert!(events.contains(&("Updated".to_owned(), note.to_owned())), "missing {note:?} in {events:?}");
    }

    cluster.rollout_halfway().await;
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "RollingOut".into()));

    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("Ready").await, ("True".into(), "AllReplicasReady".into()));
    assert_eq!(cluster.store().await.status.clone().unwrap().strategy, Some(Strategy::CopyOnWrite));
}

#[tokio::test]
async fn a_deleted_child_is_restored() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    cluster.api::<Service>().delete("cache", &DeleteParams::default()).await.unwrap();
    cluster.api::<ConfigMap>().delete("cache-config", &DeleteParams::default()).await.unwrap();

    cluster.reconcile().await.unwrap();
    let service: Service = cluster.get("cache").await.expect("the Service is back");
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 6379);
    assert!(cluster.get::<ConfigMap>("cache-config").await.is_some(), "the ConfigMap is back");
}

#[tokio::test]
async fn a_hand_edited_child_is_restored() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    let edit = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "cstore", "image": "evil:latest"}]}}}});
    cluster.api::<Deployment>().patch("cache", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    let edit = json!({"data": {"cstore.toml": "version = 1\n"}});
    cluster.api::<ConfigMap>().patch("cache-config", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();

    cluster.reconcile().await.unwrap();
    let deployment: Deployment = cluster.get("cache").await.unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.template.spec.unwrap().containers[0].image.as_deref(), Some(operator_common::OPERATOR_IMAGE));
    let config_map: ConfigMap = cluster.get("cache-config").await.unwrap();
    assert!(config_map.data.unwrap()["cstore.toml"].contains("strategy = \"RwLock\""));
}

#[tokio::test]
async fn scaling_down_to_one_replica_removes_the_budget() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 3))).await;
    cluster.reconcile().await.unwrap();
    assert!(cluster.get::<PodDisruptionBudget>("cache").await.is_some());

    cluster.patch_spec(json!({"replicas": 1})).await;
    cluster.reconcile().await.unwrap();
    assert!(cluster.get::<PodDisruptionBudget>("cache").await.is_none());
    assert_eq!(cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().replicas, Some(1));
    assert!(cluster.events().await.contains(&("Deleted".into(), "Deleted PodDisruptionBudget cache".into())));
}

#[tokio::test]
async fn an_api_error_is_degraded_with_the_error_and_retried_with_backoff() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();

    cluster.patch_spec(json!({"shards": 64})).await;
    cluster.fail_deployment_applies(true);
    let error = cluster.reconcile().await.unwrap_err();
    assert_eq!(error.reason(), FailureReason::ApiError);
    assert!(error.to_string().starts_with("cannot apply Deployment cache: "), "{error}");
    let (status, reason) = cluster.condition("Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ApiError"));
    assert!(cluster.condition_message("Degraded").await.contains("injected fault"));
    assert_eq!(cluster.condition("Ready").await.0, "Unknown", "generation 2 never reached the pods");
    assert!(
        cluster.events().await.iter().any(|(reason, note)| reason == "ApiError" && note.contains("injected fault"))
    );
    assert_eq!(cluster.metrics_line("cstore_operator_reconcile_failures_total{reason=\"ApiError\"}"), Some("1".into()));

    let store = cluster.store().await;
    let delays: Vec<Action> = (0..4).map(|_| error_policy(store.clone(), &error, cluster.context.clone())).collect();
    let expected: Vec<Action> = [1, 2, 4, 8].map(|s| Action::requeue(Duration::from_secs(s))).into();
    assert_eq!(delays, expected, "the retry delay doubles per failure");

    cluster.fail_deployment_applies(false);
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("Degraded").await, ("False".into(), "ReconcileSucceeded".into()));
    assert_eq!(
        error_policy(store, &error, cluster.context.clone()),
        Action::requeue(Duration::from_secs(1)),
        "a success resets the backoff"
    );
}

#[tokio::test]
async fn a_spec_the_store_cannot_run_is_degraded_without_children() {
    // The API server's CEL rule refuses this quantity; the fake has no CEL, like an old CRD.
    let mut bad = spec(Strategy::RwLock, 1);
    bad.max_memory = Some(Quantity("lots".into()));
    let cluster = Cluster::with(new_store("cache", bad)).await;
    let error = cluster.reconcile().await.unwrap_err();
    assert_eq!(error.reason(), FailureReason::InvalidSpec);
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "InvalidSpec".into()));
    assert!(cluster.condition_message("Degraded").await.contains("spec.maxMemory: \"lots\" is not a quantity"));
    assert!(cluster.get::<Deployment>("cache").await.is_none());
}

#[tokio::test]
async fn deleting_the_store_deletes_its_children() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 2))).await;
    cluster.reconcile().await.unwrap();
    let mut being_deleted = (*cluster.store().await).clone();
    cluster.api::<cstore::operator::crd::ConcurrentStore>().delete("cache", &DeleteParams::default()).await.unwrap();

    assert!(cluster.get::<Deployment>("cache").await.is_none());
    assert!(cluster.get::<Service>("cache").await.is_none());
    assert!(cluster.get::<ConfigMap>("cache-config").await.is_none());
    assert!(cluster.get::<PodDisruptionBudget>("cache").await.is_none());

    // A reconcile still in flight for the deleted store must not bring the children back.
    being_deleted.metadata.deletion_timestamp = being_deleted.metadata.creation_timestamp.clone();
    let action = cluster.reconcile_object(being_deleted).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(cluster.get::<Deployment>("cache").await.is_none());
}
