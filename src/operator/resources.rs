//! Desired state: a pure function from a `ConcurrentStore` to the objects that run it (the
//! store's config file in a ConfigMap, a Deployment, a Service, a PodDisruptionBudget when
//! there is more than one replica, and a PersistentVolumeClaim with persistence), and the live
//! settings the running pods are told. No API calls here, so every field is unit-tested.
//!
//! What needs new pods and what does not: the pod template changes only with what a running
//! store cannot apply (image, resources, placement, the rest of the config file). strategy,
//! shards, maxMemory, evictionPolicy, tracing.sampleRatio and the persistence rules (save,
//! appendonly, appendfsync) are left out of it; the operator
//! sends them to the running pods with CONFIG SET (`reconfigure`). New pods replace old ones
//! with the Deployment strategy Recreate: see [`deployment`].

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, SleepAction, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::crd::{ConcurrentStore, INSTANCE_LABEL, NAME_LABEL, PersistenceMode, PersistenceSpec, WhenDeleted};
use super::live::LiveSettings;
use super::quantity::{QuantityError, quantity_to_bytes};
use crate::engine::EngineConfig;
use crate::persistence::config::PersistenceConfig;
use crate::persistence::rules::{InvalidSaveRules, SaveRules};
use crate::server::config::{ConfigError, LogFormat, ServerConfig};

/// Pod template annotation holding the SHA-256 of the part of the config file that only new
/// pods can apply (the file without its live settings): a new hash replaces the pods, and a
/// change of a live setting leaves the hash, and so the pods, as they are.
pub const RESTART_CONFIG_HASH_ANNOTATION: &str = "cstore.dev/restart-config-hash";

/// The Deployment strategy of every store: old pods stop before new ones start.
pub const ROLLOUT_STRATEGY: &str = "Recreate";

/// The ConfigMap key (and so the file name) of the store's config file.
pub const CONFIG_FILE_NAME: &str = "cstore.toml";

/// Where the ConfigMap is mounted in the store container.
pub const CONFIG_DIR: &str = "/etc/cstore";

/// Where the auth Secret is mounted; outside CONFIG_DIR because a ConfigMap volume is
/// read-only and cannot hold another volume's mount point.
pub const PASSWORD_DIR: &str = "/var/run/secrets/cstore";

/// The file name of the password inside PASSWORD_DIR, whatever the Secret's key is called.
pub const PASSWORD_FILE_NAME: &str = "password";

/// Where the store's PersistentVolumeClaim is mounted, and the store's `dir`.
pub const DATA_DIR: &str = "/data";

/// Label on a store's PersistentVolumeClaim naming the store it holds the data of. A claim
/// the store retains (whenDeleted: Retain) has no owner reference: this label is how the
/// operator knows it as its own, and a store created again under that name uses it again.
pub const DATA_OF_LABEL: &str = "cstore.dev/data-of";

/// The store container's name.
pub const CONTAINER_NAME: &str = "cstore";

/// `app.kubernetes.io/name` of every store object.
pub const APP_NAME: &str = "cstore";

/// `app.kubernetes.io/managed-by` of every object the operator creates.
pub const MANAGED_BY: &str = "cstore-operator";

/// The user and group the store runs as: the conventional unprivileged id of distroless
/// images, numeric so that `runAsNonRoot` can be verified by the kubelet.
const STORE_UID: i64 = 65532;

/// Seconds the kubelet waits past the store's own drain before it kills the container.
const TERMINATION_MARGIN_SECS: u64 = 5;

/// Seconds a persistent store gets, after its drain, for the snapshot it writes when it stops
/// (or the append-only file's last fsync): a minute writes several GB on ordinary disks.
/// Killed before it finishes, the store keeps its previous snapshot, whole (the new file only
/// replaces it once complete), and loses the writes since.
pub const FINAL_SAVE_SECS: u64 = 60;

/// How long a persistent store may take to load its data before the kubelet's liveness
/// probe may restart it: the admin port answers only once the data is loaded, and a restart
/// mid-load would begin the load again, forever. Ten minutes loads tens of GB.
const LOAD_ALLOWANCE_SECS: i32 = 600;

/// How long a terminating pod keeps serving before it is sent SIGTERM: Endpoints and the
/// kube-proxies take a moment to stop routing new connections to it, and the store closes its
/// listener at SIGTERM. The kubelet's own sleep action, since the image has no shell.
const PRE_STOP_DELAY_SECS: i64 = 5;

/// Operator-wide inputs to the desired state.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The image stores run when their spec names none: the operator's own.
    pub default_image: String,
}

/// Everything the operator keeps in the cluster for one store.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    /// Present only with more than one replica: with one, a budget would block node drains.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// Present only with persistence: the volume of the store's data.
    pub persistent_volume_claim: Option<PersistentVolumeClaim>,
    /// What the running pods are told with CONFIG SET, so a change needs no new pods.
    pub live_settings: LiveSettings,
    /// The store's RESP port, where the operator reaches each pod.
    pub resp_port: u16,
}

/// Why a store's desired state cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the ConcurrentStore has no {0} (it must come from the API server)")]
    MissingMetadata(&'static str),
    #[error("spec.maxMemory: {0}")]
    MaxMemory(QuantityError),
    #[error("spec.resources.limits.memory: {0}")]
    MemoryLimit(QuantityError),
    #[error("spec.persistence.snapshotRules: {0}")]
    SnapshotRules(InvalidSaveRules),
    #[error("spec.persistence.snapshotRules may not be empty with mode Snapshot: nothing would ever be saved")]
    NoSnapshotRules,
    #[error("spec.persistence needs replicas: 1")]
    PersistentReplicas,
    #[error("the store would refuse its config file: {0}")]
    Config(#[from] ConfigError),
}

impl Desired {
    /// Renders every object for `store`. Pure: the same store and settings always give the
    /// same objects, byte for byte.
    pub fn render(store: &ConcurrentStore, settings: &Settings) -> Result<Desired, RenderError> {
        let names = Names::of(store)?;
        let config = server_config(store)?;
        let config_file = config.to_toml_string()?;
        let restart_config_hash = sha256_hex(&LiveSettings::without_live_settings(&config).to_toml_string()?);
        Ok(Desired {
            config_map: config_map(&names, &config_file),
            deployment: deployment(store, &names, settings, &config, &restart_config_hash),
            service: service(&names),
            pod_disruption_budget: (store.spec.replicas > 1).then(|| pod_disruption_budget(&names)),
            persistent_volume_claim: store
                .spec
                .persistent()
                .map(|persistence| persistent_volume_claim(&names, persistence)),
            live_settings: LiveSettings::of(&config, store.spec.persistent().is_some()),
            resp_port: config.port,
        })
    }
}

/// The store's config file, as `cstore serve --config` reads it.
pub fn server_config(store: &ConcurrentStore) -> Result<ServerConfig, RenderError> {
    let spec = &store.spec;
    let config = ServerConfig {
        engine: EngineConfig { strategy: spec.strategy, shards: spec.shards },
        max_memory: max_memory_bytes(store)?,
        max_memory_policy: spec.eviction_policy,
        require_pass_file: spec.auth.as_ref().map(|_| format!("{PASSWORD_DIR}/{PASSWORD_FILE_NAME}").into()),
        trace_sample_ratio: spec.tracing.as_ref().map_or(0.0, |tracing| tracing.sample_ratio),
        // Log collectors in a cluster parse JSON lines; people read `kubectl logs | jq`.
        log_format: LogFormat::Json,
        persistence: persistence_config(store)?,
        ..ServerConfig::default()
    };
    config.validate()?;
    Ok(config)
}

/// The store's persistence settings: the defaults (nothing written) without persistence;
/// otherwise the volume as `dir`, the spec's rules, and the append-only file with AppendOnly.
/// The rules are read with the store's own parser, so what the operator accepts the store does.
fn persistence_config(store: &ConcurrentStore) -> Result<PersistenceConfig, RenderError> {
    let Some(persistence) = store.spec.persistent() else {
        return Ok(PersistenceConfig::default());
    };
    // The API server's CEL rules refuse both; a store created before they existed may not.
    if store.spec.replicas != 1 {
        return Err(RenderError::PersistentReplicas);
    }
    let save: SaveRules = persistence.snapshot_rules.parse().map_err(RenderError::SnapshotRules)?;
    if persistence.mode == PersistenceMode::Snapshot && save.is_empty() {
        return Err(RenderError::NoSnapshotRules);
    }
    Ok(PersistenceConfig {
        dir: DATA_DIR.into(),
        save,
        appendonly: persistence.mode == PersistenceMode::AppendOnly,
        appendfsync: persistence.append_fsync,
        ..PersistenceConfig::default()
    })
}

/// The name of the PersistentVolumeClaim holding a store's data.
pub fn data_claim_name(store_name: &str) -> String {
    format!("{store_name}-data")
}

/// The address clients use: the Service's cluster DNS name and the Redis port.
pub fn endpoint(store: &ConcurrentStore) -> Option<String> {
    let namespace = store.namespace()?;
    Some(format!("{}.{namespace}.svc:{}", store.name_any(), ServerConfig::default().port))
}

/// SHA-256 of `text`, in hex: the restart config hash on the pod template, and the applied
/// hash on every child.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The label selector of a store's pods, as a list request takes it.
pub fn pod_selector(store_name: &str) -> String {
    format!("{NAME_LABEL}={APP_NAME},{INSTANCE_LABEL}={store_name}")
}

/// The name of the ConfigMap holding a store's config file.
pub fn config_map_name(store_name: &str) -> String {
    format!("{store_name}-config")
}

/// The explicit `maxMemory`, else three quarters of the container memory limit (headroom
/// for the allocator and connection buffers), else 0: unlimited.
fn max_memory_bytes(store: &ConcurrentStore) -> Result<u64, RenderError> {
    if let Some(max_memory) = &store.spec.max_memory {
        return quantity_to_bytes(max_memory).map_err(RenderError::MaxMemory);
    }
    let limit = resources(store).limits.and_then(|limits| limits.get("memory").cloned());
    match limit {
        Some(limit) => Ok(quantity_to_bytes(&limit).map_err(RenderError::MemoryLimit)? / 4 * 3),
        None => Ok(0),
    }
}

/// Names, labels and ownership shared by every child of one store.
struct Names {
    name: String,
    namespace: String,
    owner: OwnerReference,
}

impl Names {
    fn of(store: &ConcurrentStore) -> Result<Names, RenderError> {
        let namespace = store.namespace().ok_or(RenderError::MissingMetadata("namespace"))?;
        let owner = store.controller_owner_ref(&()).ok_or(RenderError::MissingMetadata("name or uid"))?;
        Ok(Names { name: store.name_any(), namespace, owner })
    }

    /// The labels that select the store's pods; never changed once a Deployment exists,
    /// since a Deployment's selector is immutable.
    fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(NAME_LABEL.to_owned(), APP_NAME.to_owned()), (INSTANCE_LABEL.to_owned(), self.name.clone())])
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned());
        labels
    }

    /// Metadata of a child named `name`, owned by the store so that deleting the store
    /// deletes it.
    fn child_metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of the data claim: labelled as this store's data whatever `when_deleted`
    /// says, and owned by the store (so deleted with it) only with Delete.
    fn claim_metadata(&self, when_deleted: WhenDeleted) -> ObjectMeta {
        let mut labels = self.labels();
        labels.insert(DATA_OF_LABEL.to_owned(), self.name.clone());
        ObjectMeta {
            name: Some(data_claim_name(&self.name)),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: match when_deleted {
                WhenDeleted::Retain => None,
                WhenDeleted::Delete => Some(vec![self.owner.clone()]),
            },
            ..ObjectMeta::default()
        }
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector { match_labels: Some(self.selector_labels()), ..LabelSelector::default() }
    }
}

fn config_map(names: &Names, config_file: &str) -> ConfigMap {
    ConfigMap {
        metadata: names.child_metadata(config_map_name(&names.name)),
        data: Some(BTreeMap::from([(CONFIG_FILE_NAME.to_owned(), config_file.to_owned())])),
        ..ConfigMap::default()
    }
}

/// The store's Deployment, with the strategy Recreate: a change that needs new pods stops
/// every old pod before the first new one starts. Without persistence each pod holds its data
/// in memory, so a new pod starts empty; with RollingUpdate (maxSurge) the Service would send
/// some clients to the new empty pod and others to an old one while both run, and the writes
/// that reach the old pod are lost with it. A readiness gate does not help: the new pod is
/// truly ready (it serves correctly, just without the data), and an old pod stays in the
/// Service until it is deleted. Recreate costs a short outage instead, and never shows two
/// data sets at once. With persistence it is what makes the data survive: the old pod saves
/// as it stops, and only then does the new one start and load that file; the claim is
/// ReadWriteOnce, so a surge pod could not even mount it on another node, and two stores on
/// one node would write the same files.
fn deployment(
    store: &ConcurrentStore,
    names: &Names,
    settings: &Settings,
    config: &ServerConfig,
    restart_config_hash: &str,
) -> Deployment {
    let overrides = &store.spec.pod;
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(names.labels());
    // Prometheus's conventional pod discovery finds /metrics through these; the spec's own
    // annotations may change them (to turn scraping off, say).
    let mut pod_annotations: BTreeMap<String, String> = [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", config.admin_port.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    pod_annotations.extend(overrides.annotations.clone());
    pod_annotations.insert(RESTART_CONFIG_HASH_ANNOTATION.to_owned(), restart_config_hash.to_owned());

    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(&names.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if store.spec.persistent().is_some() {
        volumes.push(Volume {
            name: "data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: data_claim_name(&names.name),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    if let Some(auth) = &store.spec.auth {
        volumes.push(Volume {
            name: "password".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(auth.secret_ref.name.clone()),
                items: Some(vec![KeyToPath {
                    key: auth.secret_ref.key.clone(),
                    path: PASSWORD_FILE_NAME.to_owned(),
                    ..KeyToPath::default()
                }]),
                // Readable by the store's group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let pod = PodSpec {
        containers: vec![store_container(store, settings, config)],
        volumes: Some(volumes),
        // The preStop delay, then SIGTERM: the store drains for shutdownGraceSecs, saves its
        // data when it has persistence, and exits.
        termination_grace_period_seconds: Some(termination_grace_secs(store, config)),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(STORE_UID),
            run_as_group: Some(STORE_UID),
            fs_group: Some(STORE_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        // The store never talks to the API server.
        automount_service_account_token: Some(false),
        // Service links would inject variables such as CSTORE_PORT=tcp://... for a Service
        // named cstore, which the store reads as its own --port flag.
        enable_service_links: Some(false),
        node_selector: non_empty_map(&overrides.node_selector),
        tolerations: non_empty_vec(&overrides.tolerations),
        affinity: overrides.affinity.clone(),
        topology_spread_constraints: non_empty_vec(&overrides.topology_spread_constraints),
        priority_class_name: overrides.priority_class_name.clone(),
        ..PodSpec::default()
    };

    Deployment {
        metadata: names.child_metadata(names.name.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(store.spec.replicas),
            selector: names.selector(),
            strategy: Some(DeploymentStrategy { type_: Some(ROLLOUT_STRATEGY.to_owned()), rolling_update: None }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// How long the kubelet lets a stopping pod run: the preStop delay, the store's drain, the
/// final save with persistence, and a margin.
fn termination_grace_secs(store: &ConcurrentStore, config: &ServerConfig) -> i64 {
    let save = if store.spec.persistent().is_some() { FINAL_SAVE_SECS } else { 0 };
    i64::try_from(config.shutdown_grace_secs.saturating_add(save).saturating_add(TERMINATION_MARGIN_SECS))
        .unwrap_or(i64::MAX)
        .saturating_add(PRE_STOP_DELAY_SECS)
}

fn store_container(store: &ConcurrentStore, settings: &Settings, config: &ServerConfig) -> Container {
    let mut volume_mounts = vec![VolumeMount {
        name: "config".to_owned(),
        mount_path: CONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let persistent = store.spec.persistent().is_some();
    if persistent {
        volume_mounts.push(VolumeMount {
            name: "data".to_owned(),
            mount_path: DATA_DIR.to_owned(),
            ..VolumeMount::default()
        });
    }
    if store.spec.auth.is_some() {
        volume_mounts.push(VolumeMount {
            name: "password".to_owned(),
            mount_path: PASSWORD_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let http_probe = |path: &str, period_seconds, failure_threshold| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("admin".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    };

    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(store.spec.image.clone().unwrap_or_else(|| settings.default_image.clone())),
        // The image's entrypoint is the cstore binary; the same image runs the operator.
        args: Some(vec!["serve".to_owned(), "--config".to_owned(), format!("{CONFIG_DIR}/{CONFIG_FILE_NAME}")]),
        ports: Some(vec![container_port("redis", config.port), container_port("admin", config.admin_port)]),
        env: Some(environment(store)),
        resources: Some(resources(store)),
        // /readyz turns 503 as soon as the store starts draining, so it leaves the Service
        // within one period; /healthz only fails if the process is wedged.
        readiness_probe: Some(http_probe("/readyz", 5, 1)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        // Only persistent stores load at startup; a probe added to every store would change
        // every pod template, and so restart (and empty) every store, on an operator upgrade.
        startup_probe: persistent.then(|| http_probe("/healthz", 5, LOAD_ALLOWANCE_SECS / 5)),
        // A store that cannot load its data exits with the reason on stderr, before it writes
        // a termination log: the kubelet then keeps the log's tail as the container's
        // termination message, which the operator reports (status.rs). Persistent stores
        // only, for the same reason as the startup probe.
        termination_message_policy: persistent.then(|| "FallbackToLogsOnError".to_owned()),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: PRE_STOP_DELAY_SECS }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// Pod identity from the downward API, and the OpenTelemetry settings the store's telemetry
/// reads from the standard variables. Later variables may refer to earlier ones as $(NAME).
fn environment(store: &ConcurrentStore) -> Vec<EnvVar> {
    let from_field = |name: &str, field_path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let value = |name: &str, value: String| EnvVar { name: name.to_owned(), value: Some(value), ..EnvVar::default() };

    let mut env = vec![
        from_field("POD_NAME", "metadata.name"),
        from_field("POD_NAMESPACE", "metadata.namespace"),
        from_field("POD_UID", "metadata.uid"),
        from_field("NODE_NAME", "spec.nodeName"),
        value("OTEL_SERVICE_NAME", store.name_any()),
        value(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.instance.id=$(POD_UID),k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),\
             k8s.node.name=$(NODE_NAME)"
                .to_owned(),
        ),
    ];
    // No OTEL_TRACES_SAMPLER(_ARG) for sampleRatio: the store would let it override the config
    // file's ratio, so a pod restarted after a live change would trace at the old ratio, and a
    // change of it would change the pod template and so replace the pods.
    if let Some(endpoint) = store.spec.tracing.as_ref().and_then(|tracing| tracing.endpoint.as_ref()) {
        env.push(value("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()));
        env.push(value("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()));
    }
    env
}

/// The spec's resources, or modest defaults: requests so the scheduler reserves room, and a
/// memory limit so that a runaway store is contained (and maxMemory has a default).
fn resources(store: &ConcurrentStore) -> ResourceRequirements {
    store.spec.resources.clone().unwrap_or_else(|| {
        let quantities = |pairs: &[(&str, &str)]| {
            Some(pairs.iter().map(|(name, amount)| (name.to_string(), Quantity(amount.to_string()))).collect())
        };
        ResourceRequirements {
            requests: quantities(&[("cpu", "100m"), ("memory", "128Mi")]),
            limits: quantities(&[("memory", "1Gi")]),
            ..ResourceRequirements::default()
        }
    })
}

fn service(names: &Names) -> Service {
    let defaults = ServerConfig::default();
    let port = |name: &str, number: u16| ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(number),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata: names.child_metadata(names.name.clone()),
        spec: Some(ServiceSpec {
            selector: Some(names.selector_labels()),
            ports: Some(vec![port("redis", defaults.port), port("admin", defaults.admin_port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The claim of the store's data: one ReadWriteOnce volume, mounted by the one pod.
fn persistent_volume_claim(names: &Names, persistence: &PersistenceSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: names.claim_metadata(persistence.when_deleted),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), persistence.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: persistence.storage_class_name.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

fn pod_disruption_budget(names: &Names) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: names.child_metadata(names.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(names.selector()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// `None` for an empty map: the API server drops empty collections, and a field we send but
/// it does not keep would look like drift on every reconcile.
fn non_empty_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

fn non_empty_vec<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

#[cfg(test)]
mod tests;
