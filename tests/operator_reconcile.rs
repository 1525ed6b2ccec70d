//! Reconcile scenarios against an in-memory API server (kube-fake-client): each asserts the
//! cluster state the operator leaves behind, not the requests it sent. The Deployment
//! controller and the kubelet do not run here, so tests play their part by writing the
//! Deployment's status and creating Pods the way they would; each pod's RESP port is a
//! scripted fake store (`operator_common::fake_store`) reached through the pod address seam.

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
use cstore::operator::crd::{AuthSpec, ConcurrentStoreStatus, SecretKeyRef};
use cstore::operator::reconcile::{FailureReason, error_policy};
use cstore::server::config::ServerConfig;
use operator_common::fake_store::FakeStore;
use operator_common::{Cluster, NAMESPACE, new_store};

fn spec(strategy: Strategy, replicas: i32) -> ConcurrentStoreSpec {
    ConcurrentStoreSpec { strategy, shards: 32, replicas, ..ConcurrentStoreSpec::default() }
}

fn pod_template(deployment: &Deployment) -> serde_json::Value {
    serde_json::to_value(&deployment.spec.as_ref().unwrap().template).unwrap()
}

/// A store of `replicas` pods of `spec`, rolled out and Ready, each pod a fake store.
async fn running_store(spec: ConcurrentStoreSpec) -> (Cluster, Vec<FakeStore>) {
    let cluster = Cluster::with(new_store("cache", spec.clone())).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    let mut pods = Vec::new();
    for index in 0..spec.replicas {
        let pod = FakeStore::start(spec.strategy, spec.shards).await;
        cluster.add_pod(&format!("cache-{index}"), pod.address).await;
        pods.push(pod);
    }
    cluster.reconcile().await.unwrap();
    (cluster, pods)
}

async fn status(cluster: &Cluster) -> ConcurrentStoreStatus {
    cluster.store().await.status.clone().unwrap()
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
    let (cluster, _pods) = running_store(spec(Strategy::Mutex, 2)).await;

    assert_eq!(cluster.condition("Ready").await, ("True".into(), "AllReplicasReady".into()));
    assert_eq!(cluster.condition("Progressing").await, ("False".into(), "RolloutComplete".into()));
    let status = cluster.store().await.status.clone().unwrap();
    assert_eq!((status.ready.as_str(), status.replicas, status.ready_replicas), ("2/2", 2, 2));
    assert_eq!((status.strategy, status.shards), (Some(Strategy::Mutex), Some(32)), "as both pods report");
    assert_eq!(status.pods.len(), 2);
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
async fn live_settings_reach_the_running_pods_in_one_config_set_and_never_the_pod_template() {
    let (cluster, pods) = running_store(spec(Strategy::Mutex, 2)).await;
    assert!(pods.iter().all(|pod| pod.state().config_sets == 0), "a pod that runs the spec is left alone");
    let before: Deployment = cluster.get("cache").await.unwrap();

    cluster
        .patch_spec(json!({
            "strategy": "CopyOnWrite",
            "shards": 256,
            "maxMemory": "100Mi",
            "evictionPolicy": "allkeys-random",
            "tracing": {"sampleRatio": 0.25},
        }))
        .await;
    cluster.reconcile().await.unwrap();

    for pod in &pods {
        assert_eq!(pod.state().config_sets, 1);
        for (name, value) in [
            ("strategy", "CopyOnWrite"),
            ("shards", "256"),
            ("maxmemory", "104857600"),
            ("maxmemory-policy", "allkeys-random"),
            ("trace-sample-ratio", "0.25"),
        ] {
            assert_eq!(pod.configured(name).as_deref(), Some(value), "{name}");
        }
    }
    assert_eq!(cluster.metrics_line("cstore_operator_live_reconfigurations_total"), Some("2".into()));

    let after: Deployment = cluster.get("cache").await.unwrap();
    assert_eq!(pod_template(&after), pod_template(&before), "the pods stay");
    assert_eq!(after.resource_version(), before.resource_version(), "the Deployment is not even written");
    let config_map: ConfigMap = cluster.get("cache-config").await.unwrap();
    let config = ServerConfig::from_toml_str(&config_map.data.unwrap()["cstore.toml"]).unwrap();
    assert_eq!((config.engine.strategy, config.engine.shards), (Strategy::CopyOnWrite, 256), "a restart starts here");
    assert_eq!((config.max_memory, config.trace_sample_ratio), (100 << 20, 0.25));
    let events = cluster.events().await;
    assert!(events.contains(&("Updated".into(), "Updated ConfigMap cache-config".into())), "{events:?}");
    assert!(!events.contains(&("Updated".into(), "Updated Deployment cache".into())), "{events:?}");
}

#[tokio::test]
async fn status_is_reconfiguring_while_pods_migrate_then_ready() {
    let (cluster, pods) = running_store(spec(Strategy::Mutex, 2)).await;
    assert_eq!(cluster.condition("Ready").await, ("True".into(), "AllReplicasReady".into()));
    let template = pod_template(&cluster.get("cache").await.unwrap());

    cluster.patch_spec(json!({"strategy": "LockFree", "shards": 64})).await;
    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)), "a migration is polled");
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "Reconfiguring".into()));
    assert_eq!(cluster.condition("Ready").await, ("False".into(), "Reconfiguring".into()));
    assert_eq!(
        cluster.condition_message("Progressing").await,
        "0 of 2 pods run the spec (LockFree with 64 shards); \
         cache-0: migrating to LockFree with 64 shards, 250 of 1000 keys moved; \
         cache-1: migrating to LockFree with 64 shards, 250 of 1000 keys moved"
    );
    let reconfiguring = status(&cluster).await;
    assert_eq!((reconfiguring.strategy, reconfiguring.shards), (None, None), "no pod runs the new engine yet");
    assert_eq!(reconfiguring.ready, "2/2", "both pods keep serving");
    assert!(reconfiguring.pods.iter().all(|pod| pod.migrating && pod.strategy == Some(Strategy::Mutex)));

    pods[0].finish_migration();
    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    assert!(
        cluster
            .condition_message("Progressing")
            .await
            .starts_with("1 of 2 pods run the spec (LockFree with 64 shards); cache-1:")
    );
    let partial = status(&cluster).await;
    assert_eq!(partial.strategy, None, "the pods differ");
    let engines: Vec<_> =
        partial.pods.iter().map(|pod| (pod.name.as_str(), pod.strategy, pod.shards, pod.runs_spec)).collect();
    assert_eq!(
        engines,
        [("cache-0", Some(Strategy::LockFree), Some(64), true), ("cache-1", Some(Strategy::Mutex), Some(32), false)]
    );
    assert!(pods.iter().all(|pod| pod.state().config_sets == 1), "a pod told already is not told again");

    pods[1].finish_migration();
    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(cluster.condition("Ready").await, ("True".into(), "AllReplicasReady".into()));
    assert_eq!(cluster.condition("Progressing").await, ("False".into(), "RolloutComplete".into()));
    let done = status(&cluster).await;
    assert_eq!((done.strategy, done.shards), (Some(Strategy::LockFree), Some(64)));
    assert_eq!(pod_template(&cluster.get("cache").await.unwrap()), template, "no pod was replaced");
}

#[tokio::test]
async fn an_unreachable_pod_is_reported_and_retried_without_failing_the_reconcile() {
    let (cluster, _pods) = running_store(spec(Strategy::Mutex, 1)).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    cluster.add_pod("cache-9", nowhere).await;

    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "Reconfiguring".into()));
    assert_eq!(cluster.condition("Degraded").await, ("False".into(), "ReconcileSucceeded".into()));
    let message = cluster.condition_message("Progressing").await;
    assert!(
        message
            .starts_with("1 of 2 pods run the spec (Mutex with 32 shards); cache-9: Unreachable: cannot connect to "),
        "{message}"
    );
    let unreachable = status(&cluster).await.pods.into_iter().find(|pod| pod.name == "cache-9").unwrap();
    assert!(unreachable.error.unwrap().starts_with("Unreachable: "));
    assert_eq!(
        cluster.metrics_line("cstore_operator_store_request_failures_total{reason=\"Unreachable\"}"),
        Some("1".into())
    );
}

#[tokio::test]
async fn a_pod_that_never_answers_costs_a_reconcile_its_reply_timeout_only() {
    let (cluster, _pods) = running_store(spec(Strategy::Mutex, 1)).await;
    // The kernel accepts the connection into the backlog; nothing ever reads or answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cluster.add_pod("cache-9", silent.local_addr().unwrap()).await;

    let started = std::time::Instant::now();
    let action = cluster.reconcile().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let message = cluster.condition_message("Progressing").await;
    assert!(message.ends_with("cache-9: Unreachable: no reply to CONFIG GET within 2s"), "{message}");
}

#[tokio::test]
async fn a_refused_config_set_is_degraded_and_retried_slowly() {
    let (cluster, pods) = running_store(spec(Strategy::Mutex, 1)).await;
    pods[0].refuse_config_set(Some("ERR Unknown option or number of arguments for CONFIG SET - 'strategy'"));
    cluster.patch_spec(json!({"strategy": "RwLock"})).await;

    let action = cluster.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "ReconfigurationFailed".into()));
    assert_eq!(cluster.condition("Progressing").await, ("False".into(), "ReconfigurationFailed".into()));
    assert!(
        cluster.condition_message("Degraded").await.ends_with(
            "cache-0: Refused: the store refused CONFIG SET: ERR Unknown option or number of arguments for CONFIG SET - 'strategy'"
        ),
        "{}",
        cluster.condition_message("Degraded").await
    );

    pods[0].refuse_config_set(None);
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("Degraded").await.0, "False");
}

#[tokio::test]
async fn a_store_with_auth_is_told_after_auth_with_the_secret_password() {
    let mut with_auth = spec(Strategy::Mutex, 1);
    with_auth.auth = Some(AuthSpec { secret_ref: SecretKeyRef { name: "cache-auth".into(), key: "password".into() } });
    let cluster = Cluster::with(new_store("cache", with_auth)).await;
    cluster.add_secret("cache-auth", "password", "s3cret\n").await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    let pod = FakeStore::start(Strategy::Mutex, 32).await;
    pod.require_password("s3cret");
    cluster.add_pod("cache-0", pod.address).await;

    cluster.patch_spec(json!({"shards": 8})).await;
    cluster.reconcile().await.unwrap();
    assert_eq!(pod.configured("shards").as_deref(), Some("8"), "trailing newlines of the Secret are dropped");

    pod.require_password("rotated");
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "ReconfigurationFailed".into()));
    assert!(
        cluster.condition_message("Degraded").await.contains("cache-0: AuthFailed: the store refused the password")
    );
}

#[tokio::test]
async fn a_change_that_needs_new_pods_replaces_them_all_at_once() {
    let (cluster, _pods) = running_store(spec(Strategy::Mutex, 2)).await;
    let before = pod_template(&cluster.get("cache").await.unwrap());

    cluster.patch_spec(json!({"image": "registry.local/cstore:2"})).await;
    cluster.reconcile().await.unwrap();
    let deployment: Deployment = cluster.get("cache").await.unwrap();
    assert_ne!(pod_template(&deployment), before);
    let strategy = deployment.spec.unwrap().strategy.unwrap();
    assert_eq!((strategy.type_.as_deref(), strategy.rolling_update), (Some("Recreate"), None));
    assert_eq!(cluster.condition("Progressing").await, ("True".into(), "RollingOut".into()));
    let events = cluster.events().await;
    assert!(events.contains(&("Updated".into(), "Updated Deployment cache".into())), "{events:?}");
}

#[tokio::test]
async fn a_deployment_made_for_rolling_updates_is_switched_to_recreate() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    // What an older operator left, with the API server's defaults for RollingUpdate.
    let rolling = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    cluster.api::<Deployment>().patch("cache", &PatchParams::default(), &Patch::Merge(&rolling)).await.unwrap();

    cluster.reconcile().await.unwrap();
    let strategy = cluster.get::<Deployment>("cache").await.unwrap().spec.unwrap().strategy.unwrap();
    assert_eq!((strategy.type_.as_deref(), strategy.rolling_update), (Some("Recreate"), None));
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
async fn an_object_the_store_does_not_own_is_neither_adopted_nor_changed() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    let theirs: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cache", "namespace": NAMESPACE, "labels": {"team": "payments"}},
        "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    cluster.api::<Service>().create(&Default::default(), &theirs).await.unwrap();

    let error = cluster.reconcile().await.unwrap_err();
    assert_eq!(error.reason(), FailureReason::NotOwned);
    let service: Service = cluster.get("cache").await.unwrap();
    assert!(service.metadata.owner_references.is_none(), "the Service was adopted");
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80, "the Service was changed");
    assert_eq!(cluster.condition("Degraded").await, ("True".into(), "NotOwned".into()));
    let message = cluster.condition_message("Degraded").await;
    assert!(message.contains("Service cache") && message.contains("not owned by this store"), "{message}");
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
async fn a_transient_api_error_leaves_the_conditions_alone_and_is_retried() {
    let cluster = Cluster::with(new_store("cache", spec(Strategy::RwLock, 1))).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();

    cluster.patch_spec(json!({"image": "registry.local/cstore:2"})).await;
    cluster.fail_deployment_applies(true);
    for attempt in 1..=3 {
        let error = cluster.reconcile().await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert_eq!(cluster.condition("Degraded").await.0, "False", "transient failure {attempt} turned it Degraded");
        error_policy(cluster.store().await, &error, cluster.context.clone());
    }
    assert!(cluster.events().await.iter().any(|(reason, _)| reason == "ApiError"), "each failure is an Event");
}

#[tokio::test]
async fn a_persistent_api_error_is_degraded_with_the_error_and_retried_with_backoff() {
    // No grace: as if the failure had lasted past it.
    let store = new_store("cache", spec(Strategy::RwLock, 1));
    let cluster = Cluster::with_transient_failure_grace(store, Duration::ZERO).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    cluster.reconcile().await.unwrap();

    cluster.patch_spec(json!({"image": "registry.local/cstore:2"})).await;
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
