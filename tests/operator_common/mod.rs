//! An in-memory cluster for reconcile tests: kube-fake-client's API server with the
//! ConcurrentStore CRD registered, a reconcile context on it, and the parts of the Deployment
//! controller and kubelet the tests need, played by writing Deployment status and creating
//! Pods. A pod's RESP port is whatever local address the test registers for it (a
//! [`fake_store::FakeStore`] or a real `cstore serve`), through the context's pod address seam.

#![allow(dead_code)] // each test crate uses its own subset

pub mod fake_store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::PostParams;
use parking_lot::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use kube_fake_client::{ClientBuilder, interceptor};
use serde::de::DeserializeOwned;
use serde_json::json;

use cstore::operator::crd::{ConcurrentStore, ConcurrentStoreSpec};
use cstore::operator::metrics::Metrics;
use cstore::operator::reconcile::{Context, Error, reconcile};
use cstore::operator::resources::Settings;

pub const NAMESPACE: &str = "apps";
pub const OPERATOR_IMAGE: &str = "ghcr.io/example/cstore:test";

/// A store as a user would apply it.
pub fn new_store(name: &str, spec: ConcurrentStoreSpec) -> ConcurrentStore {
    let mut store = ConcurrentStore::new(name, spec);
    store.metadata.namespace = Some(NAMESPACE.to_owned());
    store
}

pub struct Cluster {
    pub client: Client,
    pub context: Arc<Context>,
    name: String,
    fail_deployment_applies: Arc<AtomicBool>,
    /// Where each pod's RESP port is, by pod name.
    pod_addresses: Arc<Mutex<HashMap<String, SocketAddr>>>,
}

impl Cluster {
    /// A cluster holding `store`, whose server-side applies of Deployments fail while
    /// [`Cluster::fail_deployment_applies`] is on.
    pub async fn with(store: ConcurrentStore) -> Cluster {
        Cluster::with_transient_failure_grace(store, cstore::operator::reconcile::TRANSIENT_FAILURE_GRACE).await
    }

    /// [`Cluster::with`], with transient API failures turning the store Degraded after `grace`.
    pub async fn with_transient_failure_grace(store: ConcurrentStore, grace: std::time::Duration) -> Cluster {
        let fail_deployment_applies = Arc::new(AtomicBool::new(false));
        let failing = Arc::clone(&fail_deployment_applies);
        let faults = interceptor::Funcs::new().patch(move |call| {
            if failing.load(Ordering::SeqCst) && call.patch.get("kind").and_then(|k| k.as_str()) == Some("Deployment") {
                return Err(kube_fake_client::Error::Internal("injected fault".into()));
            }
            Ok(None)
        });
        let name = store.metadata.name.clone().unwrap();
        let client = ClientBuilder::new()
            .with_resource::<ConcurrentStore>()
            .with_status_subresource::<ConcurrentStore>()
            .with_status_subresource::<Deployment>()
            .with_interceptor_funcs(faults)
            .with_object(store)
            .build()
            .await
            .unwrap();
        let settings = Settings { default_image: OPERATOR_IMAGE.to_owned() };
        let pod_addresses = Arc::new(Mutex::new(HashMap::<String, SocketAddr>::new()));
        let addresses = Arc::clone(&pod_addresses);
        let context = Context::new(client.clone(), settings, Arc::new(Metrics::new()), None)
            .with_pod_address(Arc::new(move |pod: &Pod, _port| addresses.lock().get(&pod.name_any()).copied()))
            .with_transient_failure_grace(grace);
        Cluster { client, context: Arc::new(context), name, fail_deployment_applies, pod_addresses }
    }

    /// A running pod of the store, whose RESP port is at `address`: what the Deployment
    /// controller, the scheduler and the kubelet would make.
    pub async fn add_pod(&self, pod_name: &str, address: SocketAddr) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": pod_name,
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/name": "cstore", "app.kubernetes.io/instance": self.name},
            },
            "spec": {"containers": [{"name": "cstore", "image": OPERATOR_IMAGE}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }))
        .unwrap();
        self.api::<Pod>().create(&PostParams::default(), &pod).await.unwrap();
        self.pod_addresses.lock().insert(pod_name.to_owned(), address);
    }

    /// A Secret holding `password` under `key`.
    pub async fn add_secret(&self, secret_name: &str, key: &str, password: &str) {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret_name.to_owned()),
                namespace: Some(NAMESPACE.to_owned()),
                ..Default::default()
            },
            data: Some([(key.to_owned(), k8s_openapi::ByteString(password.as_bytes().to_vec()))].into()),
            ..Secret::default()
        };
        self.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    }

    pub fn fail_deployment_applies(&self, fail: bool) {
        self.fail_deployment_applies.store(fail, Ordering::SeqCst);
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    pub async fn get<K>(&self, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.api::<K>().get_opt(name).await.unwrap()
    }

    /// The store as the controller's cache would hand it to a reconcile.
    pub async fn store(&self) -> Arc<ConcurrentStore> {
        Arc::new(self.api::<ConcurrentStore>().get(&self.name).await.unwrap())
    }

    pub async fn reconcile(&self) -> Result<Action, Error> {
        reconcile(self.store().await, Arc::clone(&self.context)).await
    }

    pub async fn reconcile_object(&self, store: ConcurrentStore) -> Result<Action, Error> {
        reconcile(Arc::new(store), Arc::clone(&self.context)).await
    }

    /// Changes the spec as `kubectl apply` would; the generation goes up.
    pub async fn patch_spec(&self, spec: serde_json::Value) {
        let patch = json!({ "spec": spec });
        self.api::<ConcurrentStore>().patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// The Deployment controller and kubelets finished: every replica runs the current
    /// template and is ready.
    pub async fn finish_rollout(&self) {
        let replicas = self.desired_replicas().await;
        self.write_deployment_status(replicas, replicas, replicas, replicas).await;
    }

    /// Half a rollout: one new pod is up but not yet ready, and the old ones still serve.
    pub async fn rollout_halfway(&self) {
        let replicas = self.desired_replicas().await;
        self.write_deployment_status(replicas + 1, 1, replicas, replicas).await;
    }

    async fn desired_replicas(&self) -> i32 {
        let deployment: Deployment = self.api().get(&self.name).await.unwrap();
        deployment.spec.unwrap().replicas.unwrap()
    }

    async fn write_deployment_status(&self, replicas: i32, updated: i32, ready: i32, available: i32) {
        let deployment: Deployment = self.api().get(&self.name).await.unwrap();
        let status = json!({"status": {
            "observedGeneration": deployment.metadata.generation,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
        }});
        self.api::<Deployment>()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// The status and reason of one of the store's conditions.
    pub async fn condition(&self, type_: &str) -> (String, String) {
        let condition = self.find_condition(type_).await;
        (condition.status, condition.reason)
    }

    pub async fn condition_message(&self, type_: &str) -> String {
        self.find_condition(type_).await.message
    }

    async fn find_condition(&self, type_: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        let store = self.store().await;
        let conditions = store.status.as_ref().map(|status| status.conditions.clone()).unwrap_or_default();
        conditions.into_iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition"))
    }

    /// Every Event in the namespace, as (reason, note).
    pub async fn events(&self) -> Vec<(String, String)> {
        let events = self.api::<Event>().list(&Default::default()).await.unwrap();
        events.items.into_iter().map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default())).collect()
    }

    /// The value of the metric line starting with `series` followed by a space.
    pub fn metrics_line(&self, series: &str) -> Option<String> {
        let text = self.context.metrics().encode().unwrap();
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }
}
