//! The `ConcurrentStore` custom resource (`cstore.dev/v1alpha1`): its Rust types, from which
//! `cstore crd` generates the CRD and its schema.
//!
//! Everything the API server can check is checked in the schema (enums, ranges, patterns and
//! CEL rules), so a bad spec is refused at `kubectl apply` time with a message instead of
//! surfacing later as a Degraded store. Every field carries a description for `kubectl explain`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use kube::core::crd::CustomResourceExt;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::engine::{MAX_SHARDS, Strategy};
use crate::persistence::config::AppendFsync;
use crate::persistence::rules::SaveRules;
use crate::server::config::MaxMemoryPolicy;

/// The API group of every cstore resource.
pub const GROUP: &str = "cstore.dev";

/// The shard count a store gets when its spec names none (the store's own default).
pub const DEFAULT_SHARDS: u32 = 16;

/// Pod labels the operator sets itself to select a store's pods; users may not set them.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The desired state of a store: its concurrency engine, size, and where its pods run.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cstore.dev",
    version = "v1alpha1",
    kind = "ConcurrentStore",
    plural = "concurrentstores",
    shortname = "cstore",
    namespaced,
    status = "ConcurrentStoreStatus",
    // Deleting the CRD deletes every store: neither an Argo CD prune nor a helm uninstall may.
    annotation("argocd.argoproj.io/sync-options", "Prune=false"),
    annotation("helm.sh/resource-policy", "keep"),
    derive = "Default",
    derive = "PartialEq",
    doc = "A Redis-protocol key-value store whose locking strategy and shard count are chosen here. The cstore \
           operator runs it as a Deployment behind a Service, configured through a ConfigMap. strategy, shards, \
           maxMemory, evictionPolicy, tracing.sampleRatio and the persistence rules are applied live to the \
           running pods, keeping their data; any other change replaces the pods, which load their data from \
           their volume with persistence and start empty without it.",
    validation = kube::core::Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')").message(
        "metadata.name must be at most 63 lowercase letters, digits and '-', starting with a letter and not \
         ending with '-': it names the store's Service"
    ),
    // At the root, where both fields are in sight. Absent fields read as their defaults, so
    // the rule holds whether or not defaulting has run.
    validation = kube::core::Rule::new(
        "!has(self.spec) || !has(self.spec.persistence) || !has(self.spec.persistence.mode) || \
         self.spec.persistence.mode == 'None' || !has(self.spec.replicas) || self.spec.replicas == 1"
    )
    .message(PERSISTENCE_NEEDS_ONE_REPLICA),
    printcolumn(
        name = "Strategy",
        type_ = "string",
        json_path = ".status.strategy",
        description = "The strategy every pod runs; empty while they differ (see status.pods)"
    ),
    printcolumn(
        name = "Shards",
        type_ = "integer",
        json_path = ".status.shards",
        description = "The shard count every pod runs; empty while they differ (see status.pods)"
    ),
    printcolumn(
        name = "Persistence",
        type_ = "string",
        json_path = ".spec.persistence.mode",
        description = "How the store keeps its data across restarts (empty: None, in memory only)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready replicas out of desired"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrentStoreSpec {
    /// How each shard is guarded. Mutex: one lock per shard. RwLock: readers share, writers are
    /// exclusive. LockFree: reads never block. CopyOnWrite: readers load immutable snapshots,
    /// writers publish new versions. Applied live, without a restart: each running pod migrates
    /// its keys to the new strategy while it keeps serving; status.pods shows each pod's progress.
    #[serde(default)]
    pub strategy: Strategy,

    /// How many independent shards the key space is hashed into: a power of two from 1 to 4096.
    /// Applied live, without a restart, like strategy.
    #[serde(default = "default_shards")]
    #[schemars(schema_with = "shards_schema")]
    pub shards: u32,

    /// Number of store pods. Until cstore has a clustered mode, each replica is an independent
    /// store with its own keys: the Service spreads connections over them, so a client may
    /// not read what it wrote through another connection. Use 1 unless that is what you want.
    /// A pod added by scaling up starts empty. Must be 1 with persistence (see persistence).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Container image of the store. Defaults to the image the operator itself runs. Changing it
    /// replaces the pods: with persistence the new pod loads the data the old one saved when it
    /// stopped; without it (mode None) the new pods start with an EMPTY store. The old pods
    /// stop before the new ones start, so clients never reach old and new data at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// CPU and memory requests and limits of the store container. Defaults to requests of
    /// 100m CPU and 128Mi memory and a limit of 1Gi memory. Changing them replaces the pods,
    /// which load their data with persistence and start with an EMPTY store without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Memory limit for keys and values, as a quantity (512Mi, 2Gi); 0 means unlimited. At the
    /// limit a write is refused with -OOM or evicts keys, as evictionPolicy says. Defaults to
    /// three quarters of the container memory limit when there is one, so the store refuses
    /// writes before the kernel kills it; otherwise unlimited. Applied live, without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isQuantity(string(self)) && sign(quantity(string(self))) >= 0",
        "message": "maxMemory must be a non-negative quantity such as 512Mi or 2Gi",
    }]))]
    pub max_memory: Option<Quantity>,

    /// What a write does once maxMemory is reached: noeviction refuses it with -OOM,
    /// allkeys-random evicts random keys until the store fits. Applied live, without a restart.
    #[serde(default)]
    pub eviction_policy: MaxMemoryPolicy,

    /// Client authentication. When set, clients must AUTH with the password held in the named
    /// Secret key; when absent, the store accepts every client. The password is read when a
    /// pod starts: after changing it, restart the pods (kubectl rollout restart deployment/NAME).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// OpenTelemetry tracing of store commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,

    /// Scheduling and metadata of the store's pods. Changing any of it replaces the pods, which
    /// load their data with persistence and start with an EMPTY store without it.
    #[serde(default, skip_serializing_if = "PodSpecOverrides::is_empty")]
    pub pod: PodSpecOverrides,

    /// Whether and how the store keeps its data across restarts, on a PersistentVolumeClaim
    /// named <store name>-data. Without it (mode None, the default) the data is in memory only
    /// and every new pod starts empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceSpec>,
}

/// The defaults the schema gives a spec that sets nothing.
impl Default for ConcurrentStoreSpec {
    fn default() -> Self {
        ConcurrentStoreSpec {
            strategy: Strategy::default(),
            shards: default_shards(),
            replicas: default_replicas(),
            image: None,
            resources: None,
            max_memory: None,
            eviction_policy: MaxMemoryPolicy::default(),
            auth: None,
            tracing: None,
            pod: PodSpecOverrides::default(),
            persistence: None,
        }
    }
}

impl ConcurrentStoreSpec {
    /// The persistence settings when the store keeps its data (a mode other than None).
    pub fn persistent(&self) -> Option<&PersistenceSpec> {
        self.persistence.as_ref().filter(|persistence| persistence.mode != PersistenceMode::None)
    }
}

/// The message of the CEL rule that keeps persistence to one replica.
pub const PERSISTENCE_NEEDS_ONE_REPLICA: &str = "persistence needs replicas: 1: each replica is an independent \
     store, and two pods must never write the same files";

/// How the store keeps its data, with the settings of its volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.mode) || self.mode != 'Snapshot' || !has(self.snapshotRules) || \
             !self.snapshotRules.matches('^\\\\s*$')",
    "message": "persistence.snapshotRules may not be empty with mode Snapshot: nothing would ever be saved \
                (use mode None for no persistence)",
}]))]
pub struct PersistenceSpec {
    /// None: in memory only, every new pod starts empty. Snapshot: the store writes a
    /// Redis-format snapshot (dump.rdb) as snapshotRules say and when it stops, and loads it
    /// when it starts; a crash loses the writes since the last snapshot. AppendOnly: every write
    /// is also logged to an append-only file (Redis's format) that the store replays when it
    /// starts; appendFsync says how much a power loss can cost. Needs replicas: 1: each replica
    /// is an independent store and two pods must never write the same files (one claim per
    /// replica, a StatefulSet, is future work). Switching between Snapshot and AppendOnly is
    /// applied live. Turning persistence on for a running store adds a volume, so it replaces
    /// the pod once: the store restarts EMPTY (what it held in memory is lost) and keeps its data
    /// from then on. Turning it off replaces the pod too, which then starts empty; the claim is
    /// kept (see whenDeleted) and used again if persistence is turned back on.
    #[serde(default)]
    pub mode: PersistenceMode,

    /// When the store writes a snapshot, in Redis's save syntax: "seconds changes" pairs, a
    /// snapshot being written when at least that many writes happened within that many seconds.
    /// The default is Redis's, "3600 1 300 100 60 10000". The store also writes one when it stops.
    /// As in Redis, snapshots and the append-only file are independent: with AppendOnly these
    /// rules still write snapshots (the append-only file is what is loaded); "" turns them off
    /// there. Mode Snapshot needs at least one rule. Applied live, without a restart.
    #[serde(default = "default_snapshot_rules")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": SNAPSHOT_RULES_CEL,
        "message": "persistence.snapshotRules must be pairs of whole numbers \"seconds changes\" as Redis's \
                    save setting, such as \"3600 1 300 100 60 10000\", or \"\" for none",
    }]))]
    pub snapshot_rules: String,

    /// With AppendOnly: when the log reaches the disk. always: a write is acknowledged once it
    /// is on disk. everysec: once a second, so a power loss costs about a second of writes (a
    /// crash of the store alone costs none). no: the kernel decides. Applied live.
    #[serde(default)]
    pub append_fsync: AppendFsync,

    /// Size of the volume, as a quantity (1Gi, 20Gi). It must hold the snapshot twice while one
    /// is written (the new file replaces the old one only once complete), or the append-only
    /// file and its rewrite. Growing it later needs a StorageClass that allows expansion; a
    /// claim cannot shrink.
    #[serde(default = "default_volume_size")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isQuantity(string(self)) && sign(quantity(string(self))) > 0",
        "message": "persistence.size must be a positive quantity such as 1Gi or 20Gi",
    }]))]
    pub size: Quantity,

    /// StorageClass of the claim; the cluster's default class when unset. Fixed once the claim
    /// exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,

    /// What happens to the claim, and so the data, when the store is deleted, as a StatefulSet's
    /// persistentVolumeClaimRetentionPolicy. Retain (the default): the claim stays, and a store
    /// created again under the same name uses it, with its data; delete it yourself to free
    /// the volume. Delete: the claim is deleted with the store.
    #[serde(default)]
    pub when_deleted: WhenDeleted,
}

/// The CEL rule for Redis's `save` syntax: whitespace-separated pairs of whole numbers (at
/// most 19 digits, so that each fits the store's 64-bit parser), or nothing.
const SNAPSHOT_RULES_CEL: &str =
    "self.matches('^\\\\s*([0-9]{1,19}\\\\s+[0-9]{1,19}(\\\\s+[0-9]{1,19}\\\\s+[0-9]{1,19})*)?\\\\s*$')";

/// How the store keeps its data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PersistenceMode {
    #[default]
    None,
    Snapshot,
    AppendOnly,
}

/// What deleting the store does to its claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WhenDeleted {
    #[default]
    Retain,
    Delete,
}

impl Default for PersistenceSpec {
    fn default() -> Self {
        PersistenceSpec {
            mode: PersistenceMode::default(),
            snapshot_rules: default_snapshot_rules(),
            append_fsync: AppendFsync::default(),
            size: default_volume_size(),
            storage_class_name: None,
            when_deleted: WhenDeleted::default(),
        }
    }
}

/// Where the store's password comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The Secret key holding the password, mounted into the pods as a file. Trailing newlines
    /// are ignored.
    pub secret_ref: SecretKeyRef,
}

/// One key of a Secret in the store's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the store's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key within the Secret whose value is the password.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Where traces go and how many commands are traced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// OTLP/gRPC endpoint of an OpenTelemetry collector, with its scheme
    /// (http://otel-collector.observability:4317). Without it nothing is exported. Only
    /// http:// for now: the store does not speak TLS to a collector, so an https:// endpoint
    /// is refused here rather than crash-looping the pods (send to a collector in the cluster,
    /// which may forward over TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^http://[^\s]+$"))]
    pub endpoint: Option<String>,

    /// Fraction of commands traced, from 0 (none, no measurable cost) to 1 (every command).
    /// Applied live, without a restart (changing the endpoint replaces the pods).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sample_ratio: f64,
}

/// Scheduling constraints and extra metadata for the store's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecOverrides {
    /// Extra labels on the store's pods. app.kubernetes.io/name and app.kubernetes.io/instance
    /// are set by the operator to select the pods and may not be given here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self)",
        "message": "labels app.kubernetes.io/name and app.kubernetes.io/instance are set by the operator",
    }]))]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations on the store's pods (for example for a service mesh or a scraper).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Labels a node must have for the store's pods to be scheduled on it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the store's pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node and pod affinity and anti-affinity of the store's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How the store's pods spread across zones or nodes. Their labelSelector should match the
    /// labels app.kubernetes.io/name=cstore and app.kubernetes.io/instance=<store name>.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// PriorityClass of the store's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

impl PodSpecOverrides {
    fn is_empty(&self) -> bool {
        *self == PodSpecOverrides::default()
    }
}

/// What the operator last observed of the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrentStoreStatus {
    /// The metadata.generation of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Store pods that exist, whatever their version.
    #[serde(default)]
    pub replicas: i32,

    /// Store pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Ready pods out of desired, as kubectl get shows it (1/1).
    #[serde(default)]
    pub ready: String,

    /// Service address clients connect to: host:port, resolvable inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// The strategy every running pod serves with, as the pods themselves report it. Unset while
    /// they differ, while one still migrates or cannot be asked, and before any pod runs:
    /// status.pods then shows each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // A plain nullable string in the schema: the API server refuses an explicit null (how
    // the operator clears the field) for an enum, even one that lists null.
    #[schemars(with = "Option<String>")]
    pub strategy: Option<Strategy>,

    /// The shard count every running pod serves with, as the pods report it; unset like
    /// strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub shards: Option<u32>,

    /// Each running pod's engine as the operator last read it, in pod name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub pods: Vec<PodEngineStatus>,

    /// Ready: every replica is ready and runs the spec of the current generation. Progressing:
    /// a rollout (reason RollingOut) or a live reconfiguration (reason Reconfiguring) is under
    /// way. Degraded: the operator, the rollout or a reconfiguration failed; the message says why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One pod's engine, as it reported it to the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodEngineStatus {
    /// Name of the pod.
    pub name: String,

    /// The strategy the pod serves with now; unset when it could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub strategy: Option<Strategy>,

    /// The shard count the pod serves with now; unset when it could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub shards: Option<u32>,

    /// Whether the pod runs the spec's strategy, shards, maxMemory, evictionPolicy and
    /// tracing.sampleRatio, with no migration left.
    #[serde(default)]
    pub runs_spec: bool,

    /// Whether a live migration is under way in the pod.
    #[serde(default)]
    pub migrating: bool,

    /// The migration's target and progress, while one is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,

    /// Why the operator could not configure or read the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn default_shards() -> u32 {
    DEFAULT_SHARDS
}

fn default_replicas() -> i32 {
    1
}

fn default_snapshot_rules() -> String {
    SaveRules::redis_default().to_string()
}

fn default_volume_size() -> Quantity {
    Quantity("1Gi".to_owned())
}

fn default_secret_key() -> String {
    "password".to_owned()
}

/// Shards are an integer from 1 to 4096 that must be a power of two. CEL has no bitwise
/// operators, so the rule lists the powers; they are computed from the engine's limit.
fn shards_schema(_: &mut SchemaGenerator) -> Schema {
    let powers: Vec<u32> = (0..=MAX_SHARDS.ilog2()).map(|exponent| 1 << exponent).collect();
    let list = powers.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": MAX_SHARDS,
        "x-kubernetes-validations": [{
            "rule": format!("self in [{list}]"),
            "message": format!("shards must be a power of two between 1 and {MAX_SHARDS}"),
        }],
    })
}

/// The strategy is a string enum named as in the store's config file.
impl JsonSchema for Strategy {
    fn schema_name() -> Cow<'static, str> {
        "Strategy".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": Strategy::ALL.map(Strategy::name) })
    }
}

/// appendfsync is a string enum with Redis's names.
impl JsonSchema for AppendFsync {
    fn schema_name() -> Cow<'static, str> {
        "AppendFsync".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": AppendFsync::ALL.map(AppendFsync::name) })
    }
}

/// The eviction policy is a string enum with Redis's names, as in the store's config file.
impl JsonSchema for MaxMemoryPolicy {
    fn schema_name() -> Cow<'static, str> {
        "MaxMemoryPolicy".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": MaxMemoryPolicy::ALL.map(MaxMemoryPolicy::name) })
    }
}

/// The CRD as YAML, exactly what `cstore crd` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&ConcurrentStore::crd())
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde_json::{Value, json};

    use super::*;

    const COMMITTED_CRD: &str = include_str!("../../crds/concurrentstores.cstore.dev.yaml");

    fn schema() -> Value {
        let crd = ConcurrentStore::crd();
        serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap()
    }

    /// A store as a client would send it: `spec` merged over a minimal valid object.
    fn store_json(name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "cstore.dev/v1alpha1",
            "kind": "ConcurrentStore",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": spec,
        })
    }

    /// The messages the API server would answer for a store with `spec`, evaluating the
    /// schema's CEL rules as the API server does.
    fn cel_errors(name: &str, spec: Value) -> Vec<String> {
        match kube::core::cel::Validator::new().validate(&schema(), &store_json(name, spec), None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_vec().into_iter().map(|error| error.message).collect(),
        }
    }

    #[test]
    fn the_committed_crd_is_what_cstore_crd_prints() {
        assert!(
            COMMITTED_CRD == crd_yaml().unwrap(),
            "crds/concurrentstores.cstore.dev.yaml is stale: regenerate it with \
             `cargo run -- crd > crds/concurrentstores.cstore.dev.yaml`"
        );
    }

    #[test]
    fn the_yaml_reads_back_as_the_same_crd() {
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&crd_yaml().unwrap()).unwrap();
        assert_eq!(parsed, ConcurrentStore::crd());
    }

    #[test]
    fn names_scope_subresources_and_columns() {
        let crd = ConcurrentStore::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("concurrentstores.cstore.dev"));
        assert_eq!((crd.spec.group.as_str(), crd.spec.scope.as_str()), (GROUP, "Namespaced"));
        assert_eq!(crd.spec.names.kind, "ConcurrentStore");
        assert_eq!(crd.spec.names.plural, "concurrentstores");
        assert_eq!(crd.spec.names.short_names, Some(vec!["cstore".to_owned()]), "not cs: componentstatuses has it");
        let version = &crd.spec.versions[0];
        assert_eq!((version.name.as_str(), version.served, version.storage), ("v1alpha1", true, true));
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        let columns: Vec<(&str, &str)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Strategy", ".status.strategy"),
                ("Shards", ".status.shards"),
                ("Persistence", ".spec.persistence.mode"),
                ("Ready", ".status.ready"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );
        assert_eq!(ConcurrentStore::api_version(&()), "cstore.dev/v1alpha1");
    }

    /// `kubectl explain` shows a field's description: every property of the spec and status,
    /// down to the fields of embedded Kubernetes types, has one.
    #[test]
    fn every_field_has_a_description() {
        fn undescribed(path: &str, node: &Value, missing: &mut Vec<String>) {
            if let Some(properties) = node.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    let path = format!("{path}.{name}");
                    if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                        missing.push(path.clone());
                    }
                    undescribed(&path, property, missing);
                }
            }
            for nested in ["items", "additionalProperties"] {
                if let Some(child) = node.get(nested) {
                    undescribed(path, child, missing);
                }
            }
        }
        let schema = schema();
        let mut missing = Vec::new();
        for part in ["spec", "status"] {
            undescribed(part, &schema["properties"][part], &mut missing);
        }
        assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    }

    #[test]
    fn defaults_are_in_the_schema_and_in_the_types() {
        let spec = &schema()["properties"]["spec"]["properties"];
        assert_eq!(spec["strategy"]["default"], "RwLock");
        assert_eq!(spec["shards"]["default"], 16);
        assert_eq!(spec["replicas"]["default"], 1);
        assert_eq!(spec["evictionPolicy"]["default"], "noeviction");
        assert_eq!(spec["strategy"]["enum"], json!(["Mutex", "RwLock", "LockFree", "CopyOnWrite"]));

        let parsed: ConcurrentStore = serde_json::from_value(store_json("a", json!({}))).unwrap();
        assert_eq!(parsed.spec, ConcurrentStoreSpec::default());
        assert_eq!(parsed.spec.strategy, Strategy::RwLock);
        assert_eq!((parsed.spec.shards, parsed.spec.replicas), (16, 1));
        assert_eq!(parsed.spec.eviction_policy, MaxMemoryPolicy::Noeviction);
        assert_eq!(parsed.spec.pod, PodSpecOverrides::default());
        let auth: AuthSpec = serde_json::from_value(json!({"secretRef": {"name": "s"}})).unwrap();
        assert_eq!(auth.secret_ref.key, "password");
    }

    #[test]
    fn conditions_are_a_list_map_keyed_by_type() {
        let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }

    #[test]
    fn shards_must_be_a_power_of_two() {
        for shards in [1, 2, 16, 1024, 4096] {
            assert_eq!(cel_errors("a", json!({"shards": shards})), Vec::<String>::new(), "{shards}");
        }
        for shards in [3, 12, 1000, 4095] {
            assert_eq!(
                cel_errors("a", json!({"shards": shards})),
                ["shards must be a power of two between 1 and 4096"],
                "{shards}"
            );
        }
        let shards = &schema()["properties"]["spec"]["properties"]["shards"];
        assert_eq!((shards["minimum"].as_f64(), shards["maximum"].as_f64()), (Some(1.0), Some(4096.0)));
    }

    #[test]
    fn max_memory_must_be_a_non_negative_quantity() {
        for quantity in [json!("512Mi"), json!("2Gi"), json!("1.5G"), json!(0), json!(1048576)] {
            assert_eq!(cel_errors("a", json!({"maxMemory": quantity})), Vec::<String>::new(), "{quantity}");
        }
        for quantity in [json!("lots"), json!("-1Gi"), json!("1 Gi")] {
            assert_eq!(
                cel_errors("a", json!({"maxMemory": quantity})),
                ["maxMemory must be a non-negative quantity such as 512Mi or 2Gi"],
                "{quantity}"
            );
        }
    }

    #[test]
    fn the_selector_labels_are_reserved() {
        let labels = |key: &str| json!({"pod": {"labels": {key: "x"}}});
        assert_eq!(cel_errors("a", labels("team")), Vec::<String>::new());
        for reserved in [NAME_LABEL, INSTANCE_LABEL] {
            assert_eq!(
                cel_errors("a", labels(reserved)),
                ["labels app.kubernetes.io/name and app.kubernetes.io/instance are set by the operator"]
            );
        }
    }

    #[test]
    fn the_name_must_suit_a_service() {
        for name in ["cache", "a", "store-2", &"a".repeat(63)] {
            assert_eq!(cel_errors(name, json!({})), Vec::<String>::new(), "{name}");
        }
        for name in ["2cache", "cache.v2", "cache-", &"a".repeat(64)] {
            let errors = cel_errors(name, json!({}));
            assert_eq!(errors.len(), 1, "{name}: {errors:?}");
            assert!(errors[0].starts_with("metadata.name must be at most 63 lowercase letters"), "{name}");
        }
    }

    #[test]
    fn persistence_defaults_to_none_and_redis_s_rules() {
        let persistence = &schema()["properties"]["spec"]["properties"]["persistence"]["properties"];
        assert_eq!(persistence["mode"]["default"], "None");
        assert_eq!(persistence["mode"]["enum"], json!(["None", "Snapshot", "AppendOnly"]));
        assert_eq!(persistence["snapshotRules"]["default"], "3600 1 300 100 60 10000");
        assert_eq!(persistence["appendFsync"]["default"], "everysec");
        assert_eq!(persistence["appendFsync"]["enum"], json!(["always", "everysec", "no"]));
        assert_eq!(persistence["size"]["default"], "1Gi");
        assert_eq!(persistence["whenDeleted"]["default"], "Retain");
        assert_eq!(persistence["whenDeleted"]["enum"], json!(["Retain", "Delete"]));

        let parsed: PersistenceSpec = serde_json::from_value(json!({"mode": "Snapshot"})).unwrap();
        assert_eq!(parsed, PersistenceSpec { mode: PersistenceMode::Snapshot, ..PersistenceSpec::default() });
        assert_eq!(parsed.snapshot_rules.parse::<SaveRules>(), Ok(SaveRules::redis_default()));
        let spec = |persistence| ConcurrentStoreSpec { persistence, ..ConcurrentStoreSpec::default() };
        assert!(spec(None).persistent().is_none());
        assert!(spec(Some(PersistenceSpec::default())).persistent().is_none(), "mode None");
        assert!(spec(Some(parsed)).persistent().is_some());
    }

    #[test]
    fn persistence_needs_one_replica() {
        let persistence = |mode: &str, replicas: i32| json!({"replicas": replicas, "persistence": {"mode": mode}});
        for (mode, replicas) in [("None", 3), ("Snapshot", 1), ("AppendOnly", 1)] {
            assert_eq!(cel_errors("a", persistence(mode, replicas)), Vec::<String>::new(), "{mode} {replicas}");
        }
        for (mode, replicas) in [("Snapshot", 2), ("AppendOnly", 5)] {
            assert_eq!(cel_errors("a", persistence(mode, replicas)), [PERSISTENCE_NEEDS_ONE_REPLICA], "{mode}");
        }
        assert_eq!(cel_errors("a", json!({"replicas": 2, "persistence": {}})), Vec::<String>::new(), "mode None");
    }

    #[test]
    fn persistence_size_must_be_a_positive_quantity() {
        let size = |size: Value| json!({"persistence": {"mode": "Snapshot", "size": size}});
        for good in [json!("1Gi"), json!("500M"), json!(1073741824)] {
            assert_eq!(cel_errors("a", size(good.clone())), Vec::<String>::new(), "{good}");
        }
        for bad in [json!("0"), json!("-1Gi"), json!("lots")] {
            assert_eq!(
                cel_errors("a", size(bad.clone())),
                ["persistence.size must be a positive quantity such as 1Gi or 20Gi"],
                "{bad}"
            );
        }
    }

    /// The CEL rule refuses exactly what the store's own parser refuses, for rules of
    /// numbers that fit its 64 bits.
    #[test]
    fn snapshot_rules_are_redis_save_syntax_as_the_store_parses_it() {
        const SYNTAX: &str = "persistence.snapshotRules must be pairs of whole numbers \"seconds changes\" as \
                              Redis's save setting, such as \"3600 1 300 100 60 10000\", or \"\" for none";
        let rules = |mode: &str, rules: &str| json!({"persistence": {"mode": mode, "snapshotRules": rules}});
        for text in ["3600 1 300 100 60 10000", "900 1", "  900   1 ", "1\t2", "", "0 0", "3600", "a 1", "-1 1"]
            .into_iter()
            .chain(["1.5 2", "3600 1 300", "1 2 3 4 5", "60,10"])
        {
            let store_accepts = text.parse::<SaveRules>().is_ok();
            let errors = cel_errors("a", rules("AppendOnly", text));
            assert_eq!(errors.is_empty(), store_accepts, "{text:?}: {errors:?}");
            if !store_accepts {
                assert_eq!(errors, [SYNTAX], "{text:?}");
            }
        }
        let empty = "persistence.snapshotRules may not be empty with mode Snapshot: nothing would ever be saved \
                     (use mode None for no persistence)";
        for blank in ["", "  "] {
            assert_eq!(cel_errors("a", rules("Snapshot", blank)), [empty], "{blank:?}");
            assert_eq!(cel_errors("a", rules("AppendOnly", blank)), Vec::<String>::new(), "the AOF alone");
        }
    }

    #[test]
    fn ranges_and_patterns_are_in_the_schema() {
        let spec = &schema()["properties"]["spec"]["properties"];
        assert_eq!(spec["replicas"]["minimum"].as_f64(), Some(1.0));
        let ratio = &spec["tracing"]["properties"]["sampleRatio"];
        assert_eq!(
            (ratio["minimum"].as_f64(), ratio["maximum"].as_f64(), ratio["default"].as_f64()),
            (Some(0.0), Some(1.0), Some(0.0))
        );
        assert_eq!(spec["tracing"]["properties"]["endpoint"]["pattern"], r"^http://[^\s]+$");
        assert_eq!(spec["auth"]["properties"]["secretRef"]["required"], json!(["name"]));
    }
}
