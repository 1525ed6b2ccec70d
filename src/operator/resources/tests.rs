//! Every spec field lands where it should; defaults; the pod template changes exactly when
//! something only new pods can apply does, and never for a live setting.

use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::api::core::v1::{Toleration, TopologySpreadConstraint};

use super::*;
use crate::engine::Strategy;
use crate::operator::crd::{AuthSpec, ConcurrentStoreSpec, PodSpecOverrides, SecretKeyRef, TracingSpec};
use crate::operator::live::LivePersistence;
use crate::persistence::config::AppendFsync;
use crate::server::config::MaxMemoryPolicy;

const OPERATOR_IMAGE: &str = "ghcr.io/example/cstore:1.2.3";

fn settings() -> Settings {
    Settings { default_image: OPERATOR_IMAGE.to_owned() }
}

/// A store as the API server hands it over: named, namespaced, with a uid.
fn store(spec: ConcurrentStoreSpec) -> ConcurrentStore {
    let mut store = ConcurrentStore::new("cache", spec);
    store.metadata.namespace = Some("apps".to_owned());
    store.metadata.uid = Some("0b9a2f9e-1111-2222-3333-444455556666".to_owned());
    store.metadata.generation = Some(1);
    store
}

fn render(spec: ConcurrentStoreSpec) -> Desired {
    Desired::render(&store(spec), &settings()).unwrap()
}

fn config_of(desired: &Desired) -> ServerConfig {
    ServerConfig::from_toml_str(&desired.config_map.data.as_ref().unwrap()[CONFIG_FILE_NAME]).unwrap()
}

fn pod_spec(desired: &Desired) -> &PodSpec {
    desired.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(desired: &Desired) -> &Container {
    &pod_spec(desired).containers[0]
}

fn pod_annotations(desired: &Desired) -> &BTreeMap<String, String> {
    desired.deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
}

fn pod_template(desired: &Desired) -> &PodTemplateSpec {
    &desired.deployment.spec.as_ref().unwrap().template
}

fn env(desired: &Desired) -> BTreeMap<String, EnvVar> {
    container(desired).env.iter().flatten().map(|var| (var.name.clone(), var.clone())).collect()
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    Some(pairs.iter().map(|(name, value)| (name.to_string(), Quantity(value.to_string()))).collect())
}

#[test]
fn defaults_render_one_hardened_replica_of_the_default_engine() {
    let desired = render(ConcurrentStoreSpec::default());

    let config = config_of(&desired);
    assert_eq!(config.engine, EngineConfig { strategy: Strategy::RwLock, shards: 16 });
    assert_eq!(config.max_memory, 768 << 20, "three quarters of the default 1Gi memory limit");
    assert_eq!(config.max_memory_policy, MaxMemoryPolicy::Noeviction);
    assert_eq!((config.require_pass.clone(), config.require_pass_file.clone()), (None, None));
    assert_eq!((config.trace_sample_ratio, config.log_format), (0.0, LogFormat::Json));
    assert_eq!((config.port, config.admin_port), (6379, 8080));

    let deployment = desired.deployment.spec.as_ref().unwrap();
    assert_eq!(deployment.replicas, Some(1));
    let rollout = deployment.strategy.as_ref().unwrap();
    assert_eq!(
        (rollout.type_.as_deref(), rollout.rolling_update.as_ref()),
        (Some("Recreate"), None),
        "old pods stop before new, empty ones start"
    );
    assert_eq!(
        desired.live_settings,
        LiveSettings {
            strategy: Strategy::RwLock,
            shards: 16,
            max_memory: 768 << 20,
            max_memory_policy: MaxMemoryPolicy::Noeviction,
            trace_sample_ratio: 0.0,
            persistence: None,
        }
    );
    assert_eq!(desired.resp_port, 6379);
    let selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "cstore".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), "cache".to_owned()),
    ]);
    assert_eq!(deployment.selector.match_labels.as_ref(), Some(&selector));
    let pod_labels = deployment.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert!(selector.iter().all(|(key, value)| pod_labels.get(key) == Some(value)));

    let pod = pod_spec(&desired);
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(40),
        "the 5 s preStop delay, the store's 30 s drain and a margin"
    );
    let pre_stop = pod.containers[0].lifecycle.as_ref().and_then(|lifecycle| lifecycle.pre_stop.as_ref());
    assert_eq!(pre_stop.and_then(|hook| hook.sleep.as_ref()).map(|sleep| sleep.seconds), Some(5));
    assert_eq!((pod.automount_service_account_token, pod.enable_service_links), (Some(false), Some(false)));
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!((pod.node_selector.as_ref(), pod.tolerations.as_ref(), pod.affinity.as_ref()), (None, None, None));
    assert_eq!(pod.volumes.as_ref().unwrap().len(), 1, "only the config volume without auth");

    let container = container(&desired);
    assert_eq!(container.image.as_deref(), Some(OPERATOR_IMAGE));
    assert_eq!(container.args, Some(vec!["serve".into(), "--config".into(), "/etc/cstore/cstore.toml".into()]));
    let ports: Vec<(Option<&str>, i32)> =
        container.ports.iter().flatten().map(|p| (p.name.as_deref(), p.container_port)).collect();
    assert_eq!(ports, [(Some("redis"), 6379), (Some("admin"), 8080)]);
    let probe_path = |probe: &Option<Probe>| {
        let action = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        (action.path.clone().unwrap(), action.port.clone())
    };
    assert_eq!(probe_path(&container.readiness_probe), ("/readyz".into(), IntOrString::String("admin".into())));
    assert_eq!(probe_path(&container.liveness_probe), ("/healthz".into(), IntOrString::String("admin".into())));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(
        (security.allow_privilege_escalation, security.read_only_root_filesystem, security.run_as_non_root),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(security.capabilities.as_ref().unwrap().drop, Some(vec!["ALL".to_owned()]));
    let resources = container.resources.as_ref().unwrap();
    assert_eq!(resources.requests, quantities(&[("cpu", "100m"), ("memory", "128Mi")]));
    assert_eq!(resources.limits, quantities(&[("memory", "1Gi")]));
    let mounts: Vec<(&str, &str)> =
        container.volume_mounts.iter().flatten().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
    assert_eq!(mounts, [("config", "/etc/cstore")]);

    let env = env(&desired);
    for (name, field_path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_UID", "metadata.uid"),
        ("NODE_NAME", "spec.nodeName"),
    ] {
        let source = env[name].value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(source.field_path, field_path);
    }
    assert_eq!(env["OTEL_SERVICE_NAME"].value.as_deref(), Some("cache"));
    assert!(env["OTEL_RESOURCE_ATTRIBUTES"].value.as_ref().unwrap().contains("k8s.pod.name=$(POD_NAME)"));
    assert!(!env.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"), "no endpoint, no export");

    let service = desired.service.spec.as_ref().unwrap();
    assert_eq!(service.selector.as_ref(), Some(&selector));
    let service_ports: Vec<(Option<&str>, i32)> =
        service.ports.iter().flatten().map(|p| (p.name.as_deref(), p.port)).collect();
    assert_eq!(service_ports, [(Some("redis"), 6379), (Some("admin"), 8080)]);
    assert_eq!(desired.pod_disruption_budget, None, "no budget for a single replica");
}

#[test]
fn every_child_is_owned_by_the_store_and_named_after_it() {
    let desired = render(ConcurrentStoreSpec { replicas: 3, ..ConcurrentStoreSpec::default() });
    let budget = desired.pod_disruption_budget.as_ref().unwrap();
    let children = [
        (&desired.config_map.metadata, "cache-config"),
        (&desired.deployment.metadata, "cache"),
        (&desired.service.metadata, "cache"),
        (&budget.metadata, "cache"),
    ];
    for (metadata, name) in children {
        assert_eq!(metadata.name.as_deref(), Some(name));
        assert_eq!(metadata.namespace.as_deref(), Some("apps"));
        let owners = metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        let owner = &owners[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("ConcurrentStore", "cache"));
        assert_eq!(owner.api_version, "cstore.dev/v1alpha1");
        assert_eq!(owner.uid, "0b9a2f9e-1111-2222-3333-444455556666");
        assert_eq!(owner.controller, Some(true), "one controller per child");
        assert_eq!(metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"], MANAGED_BY);
    }
    let spec = budget.spec.as_ref().unwrap();
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.selector, desired.deployment.spec.as_ref().map(|d| d.selector.clone()));
}

#[test]
fn every_spec_field_lands_where_it_should() {
    let toleration = Toleration {
        key: Some("dedicated".into()),
        operator: Some("Equal".into()),
        value: Some("cache".into()),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    };
    let affinity = Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "kubernetes.io/arch".into(),
                        operator: "In".into(),
                        values: Some(vec!["arm64".into()]),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    };
    let spread = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        ..TopologySpreadConstraint::default()
    };
    let resources = ResourceRequirements {
        requests: quantities(&[("cpu", "2"), ("memory", "4Gi")]),
        limits: quantities(&[("memory", "4Gi")]),
        ..ResourceRequirements::default()
    };
    let spec = ConcurrentStoreSpec {
        strategy: Strategy::CopyOnWrite,
        shards: 256,
        replicas: 2,
        image: Some("registry.local/cstore:dev".into()),
        resources: Some(resources.clone()),
        max_memory: Some(Quantity("3Gi".into())),
        eviction_policy: MaxMemoryPolicy::AllkeysRandom,
        auth: Some(AuthSpec { secret_ref: SecretKeyRef { name: "cache-auth".into(), key: "redis-password".into() } }),
        tracing: Some(TracingSpec {
            endpoint: Some("http://otel-collector.observability:4317".into()),
            sample_ratio: 0.25,
        }),
        pod: PodSpecOverrides {
            labels: BTreeMap::from([("team".into(), "payments".into())]),
            annotations: BTreeMap::from([("prometheus.io/scrape".into(), "true".into())]),
            node_selector: BTreeMap::from([("pool".into(), "memory".into())]),
            tolerations: vec![toleration.clone()],
            affinity: Some(affinity.clone()),
            topology_spread_constraints: vec![spread.clone()],
            priority_class_name: Some("critical-cache".into()),
        },
        persistence: None,
    };
    let desired = render(spec);

    let config = config_of(&desired);
    assert_eq!(config.engine, EngineConfig { strategy: Strategy::CopyOnWrite, shards: 256 });
    assert_eq!(config.max_memory, 3 << 30);
    assert_eq!(config.max_memory_policy, MaxMemoryPolicy::AllkeysRandom);
    assert_eq!(config.require_pass_file, Some("/var/run/secrets/cstore/password".into()));
    assert_eq!(config.trace_sample_ratio, 0.25);
    assert_eq!(
        desired.live_settings,
        LiveSettings {
            strategy: Strategy::CopyOnWrite,
            shards: 256,
            max_memory: 3 << 30,
            max_memory_policy: MaxMemoryPolicy::AllkeysRandom,
            trace_sample_ratio: 0.25,
            persistence: None,
        }
    );

    assert_eq!(desired.deployment.spec.as_ref().unwrap().replicas, Some(2));
    assert!(desired.pod_disruption_budget.is_some());
    let container = container(&desired);
    assert_eq!(container.image.as_deref(), Some("registry.local/cstore:dev"));
    assert_eq!(container.resources.as_ref(), Some(&resources));
    let env = env(&desired);
    assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"].value.as_deref(), Some("http://otel-collector.observability:4317"));
    assert!(!env.contains_key("OTEL_TRACES_SAMPLER_ARG"), "the config file's ratio, which CONFIG SET changes, rules");

    let pod = pod_spec(&desired);
    let password = pod.volumes.iter().flatten().find(|v| v.name == "password").unwrap().secret.as_ref().unwrap();
    assert_eq!(password.secret_name.as_deref(), Some("cache-auth"));
    let item = &password.items.as_ref().unwrap()[0];
    assert_eq!((item.key.as_str(), item.path.as_str()), ("redis-password", "password"));
    assert!(
        container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "password" && m.mount_path == "/var/run/secrets/cstore" && m.read_only == Some(true))
    );
    assert_eq!(pod.node_selector, Some(BTreeMap::from([("pool".to_owned(), "memory".to_owned())])));
    assert_eq!(pod.tolerations, Some(vec![toleration]));
    assert_eq!(pod.affinity, Some(affinity));
    assert_eq!(pod.topology_spread_constraints, Some(vec![spread]));
    assert_eq!(pod.priority_class_name.as_deref(), Some("critical-cache"));

    let template = desired.deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    assert_eq!(template.labels.as_ref().unwrap()["team"], "payments");
    assert_eq!(template.labels.as_ref().unwrap()[INSTANCE_LABEL], "cache");
    assert_eq!(pod_annotations(&desired)["prometheus.io/scrape"], "true");
}

#[test]
fn live_settings_change_the_config_map_but_never_the_pod_template() {
    let base = ConcurrentStoreSpec::default();
    let base_desired = render(base.clone());
    let file = |desired: &Desired| desired.config_map.data.as_ref().unwrap()[CONFIG_FILE_NAME].clone();
    let restart_part = LiveSettings::without_live_settings(&config_of(&base_desired)).to_toml_string().unwrap();
    assert_eq!(
        pod_annotations(&base_desired)[RESTART_CONFIG_HASH_ANNOTATION],
        sha256_hex(&restart_part),
        "the annotation is the hash of the file without its live settings"
    );
    assert_eq!(render(base.clone()), base_desired, "rendering is deterministic");

    let live_changes = [
        ConcurrentStoreSpec { strategy: Strategy::Mutex, ..base.clone() },
        ConcurrentStoreSpec { shards: 32, ..base.clone() },
        ConcurrentStoreSpec { max_memory: Some(Quantity("100Mi".into())), ..base.clone() },
        ConcurrentStoreSpec { eviction_policy: MaxMemoryPolicy::AllkeysRandom, ..base.clone() },
        ConcurrentStoreSpec { tracing: Some(TracingSpec { endpoint: None, sample_ratio: 0.5 }), ..base.clone() },
        ConcurrentStoreSpec {
            strategy: Strategy::LockFree,
            shards: 4096,
            max_memory: Some(Quantity("1Gi".into())),
            tracing: Some(TracingSpec { endpoint: None, sample_ratio: 1.0 }),
            ..base.clone()
        },
    ];
    for spec in live_changes {
        let desired = render(spec.clone());
        assert_eq!(pod_template(&desired), pod_template(&base_desired), "{spec:?}");
        assert_eq!(desired.deployment, base_desired.deployment, "{spec:?}");
        assert_ne!(file(&desired), file(&base_desired), "a restarted pod starts with the new value: {spec:?}");
        assert_ne!(desired.live_settings, base_desired.live_settings, "{spec:?}");
    }
}

#[test]
fn what_only_new_pods_can_apply_changes_the_pod_template() {
    let base = ConcurrentStoreSpec::default();
    let base_template = pod_template(&render(base.clone())).clone();
    let restart_changes = [
        ConcurrentStoreSpec { image: Some("other:1".into()), ..base.clone() },
        ConcurrentStoreSpec {
            resources: Some(ResourceRequirements { limits: quantities(&[("memory", "2Gi")]), ..Default::default() }),
            ..base.clone()
        },
        ConcurrentStoreSpec {
            auth: Some(AuthSpec { secret_ref: SecretKeyRef { name: "s".into(), key: "k".into() } }),
            ..base.clone()
        },
        ConcurrentStoreSpec {
            tracing: Some(TracingSpec { endpoint: Some("http://collector:4317".into()), sample_ratio: 0.0 }),
            ..base.clone()
        },
        ConcurrentStoreSpec {
            pod: PodSpecOverrides { node_selector: BTreeMap::from([("e".into(), "f".into())]), ..Default::default() },
            ..base.clone()
        },
    ];
    for spec in restart_changes {
        assert_ne!(pod_template(&render(spec.clone())), &base_template, "{spec:?}");
    }
    let scaled = render(ConcurrentStoreSpec { replicas: 3, ..base.clone() });
    assert_eq!(pod_template(&scaled), &base_template, "scaling adds pods and leaves the running ones alone");
    let with_auth = render(ConcurrentStoreSpec {
        auth: Some(AuthSpec { secret_ref: SecretKeyRef { name: "s".into(), key: "k".into() } }),
        ..base.clone()
    });
    let base_hash =
        &base_template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[RESTART_CONFIG_HASH_ANNOTATION];
    assert_ne!(
        &pod_annotations(&with_auth)[RESTART_CONFIG_HASH_ANNOTATION],
        base_hash,
        "requirePassFile is read at startup only"
    );
}

#[test]
fn the_endpoint_is_the_service_dns_name_and_redis_port() {
    assert_eq!(endpoint(&store(ConcurrentStoreSpec::default())).as_deref(), Some("cache.apps.svc:6379"));
}

#[test]
fn a_store_that_cannot_run_is_refused_with_the_field_at_fault() {
    let error = |spec: ConcurrentStoreSpec| Desired::render(&store(spec), &settings()).unwrap_err().to_string();
    assert_eq!(
        error(ConcurrentStoreSpec { max_memory: Some(Quantity("lots".into())), ..ConcurrentStoreSpec::default() }),
        "spec.maxMemory: \"lots\" is not a quantity: expected a number with an optional suffix such as Ki, Mi, Gi, k, M, G or e6"
    );
    let bad_limit = ResourceRequirements { limits: quantities(&[("memory", "-1")]), ..Default::default() };
    assert_eq!(
        error(ConcurrentStoreSpec { resources: Some(bad_limit), ..ConcurrentStoreSpec::default() }),
        "spec.resources.limits.memory: \"-1\" is negative: a byte count cannot be"
    );
    assert_eq!(
        error(ConcurrentStoreSpec { shards: 12, ..ConcurrentStoreSpec::default() }),
        "the store would refuse its config file: invalid engine.shards: shards must be a power of two between 1 and 4096, got 12"
    );
    let mut unsaved = store(ConcurrentStoreSpec::default());
    unsaved.metadata.uid = None;
    assert_eq!(
        Desired::render(&unsaved, &settings()).unwrap_err().to_string(),
        "the ConcurrentStore has no name or uid (it must come from the API server)"
    );
}

fn persistent(mode: PersistenceMode) -> ConcurrentStoreSpec {
    ConcurrentStoreSpec {
        persistence: Some(PersistenceSpec { mode, ..PersistenceSpec::default() }),
        ..ConcurrentStoreSpec::default()
    }
}

fn claim_spec(desired: &Desired) -> &PersistentVolumeClaimSpec {
    desired.persistent_volume_claim.as_ref().unwrap().spec.as_ref().unwrap()
}

#[test]
fn a_persistent_store_gets_a_claim_mounted_at_its_dir_and_time_to_save() {
    let desired = render(persistent(PersistenceMode::Snapshot));

    let claim = desired.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(claim.metadata.name.as_deref(), Some("cache-data"));
    assert_eq!(claim.metadata.namespace.as_deref(), Some("apps"));
    assert_eq!(claim.metadata.labels.as_ref().unwrap()[DATA_OF_LABEL], "cache");
    assert_eq!(claim.metadata.labels.as_ref().unwrap()[INSTANCE_LABEL], "cache");
    assert_eq!(claim.metadata.owner_references, None, "retained by default: the data outlives the store");
    let spec = claim_spec(&desired);
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(spec.resources.as_ref().unwrap().requests, quantities(&[("storage", "1Gi")]));
    assert_eq!(spec.storage_class_name, None, "the cluster's default class");

    let pod = pod_spec(&desired);
    let volume = pod.volumes.iter().flatten().find(|v| v.name == "data").unwrap();
    assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, "cache-data");
    let container = container(&desired);
    let mount = container.volume_mounts.iter().flatten().find(|m| m.name == "data").unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/data", None));
    assert_eq!(
        desired.deployment.spec.as_ref().unwrap().strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate"),
        "the old pod releases the ReadWriteOnce volume, saved, before the new one starts"
    );
    // preStop 5 s + drain 30 s + final save 60 s + margin 5 s.
    assert_eq!(pod.termination_grace_period_seconds, Some(100));
    assert_eq!(container.termination_message_policy.as_deref(), Some("FallbackToLogsOnError"));
    let startup = container.startup_probe.as_ref().unwrap();
    assert_eq!(startup.http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(startup.period_seconds.unwrap() * startup.failure_threshold.unwrap(), 600, "ten minutes to load");

    let config = config_of(&desired);
    assert_eq!(config.persistence.dir, std::path::PathBuf::from("/data"));
    assert_eq!(config.persistence.save.to_string(), "3600 1 300 100 60 10000");
    assert!(!config.persistence.appendonly);
    assert_eq!(
        desired.live_settings.persistence,
        Some(LivePersistence {
            save: SaveRules::redis_default(),
            appendonly: false,
            appendfsync: AppendFsync::Everysec
        })
    );
}

#[test]
fn append_only_logs_with_its_fsync_policy_and_keeps_the_snapshot_rules_as_redis_does() {
    let spec = ConcurrentStoreSpec {
        persistence: Some(PersistenceSpec {
            mode: PersistenceMode::AppendOnly,
            append_fsync: AppendFsync::Always,
            snapshot_rules: "900 1".into(),
            size: Quantity("20Gi".into()),
            storage_class_name: Some("fast-ssd".into()),
            when_deleted: WhenDeleted::Delete,
        }),
        ..ConcurrentStoreSpec::default()
    };
    let desired = render(spec);
    let config = config_of(&desired);
    assert!(config.persistence.appendonly);
    assert_eq!(config.persistence.appendfsync, AppendFsync::Always);
    assert_eq!(config.persistence.save.to_string(), "900 1");
    let spec = claim_spec(&desired);
    assert_eq!(spec.resources.as_ref().unwrap().requests, quantities(&[("storage", "20Gi")]));
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
    let owners = desired.persistent_volume_claim.as_ref().unwrap().metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1, "Delete: garbage-collected with the store");
    assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str()), ("ConcurrentStore", "cache"));
    assert_eq!(owners[0].uid, "0b9a2f9e-1111-2222-3333-444455556666");

    let aof_only = render(ConcurrentStoreSpec {
        persistence: Some(PersistenceSpec {
            mode: PersistenceMode::AppendOnly,
            snapshot_rules: String::new(),
            ..PersistenceSpec::default()
        }),
        ..ConcurrentStoreSpec::default()
    });
    assert!(config_of(&aof_only).persistence.save.is_empty(), "\"\": the append-only file alone");
}

#[test]
fn without_persistence_the_store_renders_as_before_it_existed() {
    let plain = render(ConcurrentStoreSpec::default());
    assert_eq!(render(persistent(PersistenceMode::None)), plain, "mode None is no persistence");
    assert_eq!(plain.persistent_volume_claim, None);
    assert_eq!(config_of(&plain).persistence, PersistenceConfig::default(), "nothing written anywhere");
    assert_eq!(plain.live_settings.persistence, None, "never asked: an older store image still takes the rest");
    let pod = pod_spec(&plain);
    assert!(pod.volumes.iter().flatten().all(|v| v.name != "data"));
    assert_eq!(pod.termination_grace_period_seconds, Some(40));
    // An operator upgrade must not change (and so restart, emptying) a store's pod template.
    let container = container(&plain);
    assert_eq!((container.startup_probe.as_ref(), container.termination_message_policy.as_ref()), (None, None));
}

#[test]
fn persistence_rules_change_live_and_only_a_new_volume_needs_a_new_pod() {
    let snapshot = render(persistent(PersistenceMode::Snapshot));
    let with = |change: &dyn Fn(&mut PersistenceSpec)| {
        let mut spec = persistent(PersistenceMode::Snapshot);
        change(spec.persistence.as_mut().unwrap());
        render(spec)
    };
    for live in [
        with(&|p| p.mode = PersistenceMode::AppendOnly),
        with(&|p| p.snapshot_rules = "60 1".into()),
        with(&|p| {
            p.mode = PersistenceMode::AppendOnly;
            p.append_fsync = AppendFsync::No;
        }),
    ] {
        assert_eq!(live.deployment, snapshot.deployment);
        assert_ne!(live.config_map, snapshot.config_map, "a restarted pod starts with the new rules");
        assert_ne!(live.live_settings, snapshot.live_settings);
    }
    let plain = render(ConcurrentStoreSpec::default());
    assert_ne!(pod_template(&snapshot), pod_template(&plain), "turning persistence on adds the volume: a new pod");
    let bigger = with(&|p| p.size = Quantity("5Gi".into()));
    assert_eq!(bigger.deployment, snapshot.deployment, "the claim grows; the pod stays");
    assert_ne!(bigger.persistent_volume_claim, snapshot.persistent_volume_claim);
}

#[test]
fn persistence_the_store_would_refuse_is_refused_with_the_field_at_fault() {
    let error = |spec: ConcurrentStoreSpec| Desired::render(&store(spec), &settings()).unwrap_err().to_string();
    let rules = |mode, rules: &str| ConcurrentStoreSpec {
        persistence: Some(PersistenceSpec { mode, snapshot_rules: rules.into(), ..PersistenceSpec::default() }),
        ..ConcurrentStoreSpec::default()
    };
    assert_eq!(
        error(rules(PersistenceMode::Snapshot, "3600")),
        "spec.persistence.snapshotRules: Invalid save parameters"
    );
    assert_eq!(
        error(rules(PersistenceMode::Snapshot, "  ")),
        "spec.persistence.snapshotRules may not be empty with mode Snapshot: nothing would ever be saved"
    );
    assert_eq!(
        error(ConcurrentStoreSpec { replicas: 2, ..persistent(PersistenceMode::AppendOnly) }),
        "spec.persistence needs replicas: 1"
    );
    assert!(Desired::render(&store(rules(PersistenceMode::None, "nonsense")), &settings()).is_ok(), "unused");
}
