//! Live reconfiguration, the pure part: which settings a running store applies without a
//! restart, what each pod reports of its engine, which pods need a CONFIG SET, and whether the
//! store as a whole runs its spec. No network and no API here; `reconfigure` does the talking.
//!
//! A pod is asked two things: the *configured* values (`CONFIG GET`: what it was last told)
//! and the *running* engine (`INFO cstore`: what serves now, and whether a migration is under
//! way). A pod runs the spec when it is configured with the spec's settings and its engine
//! runs the spec's strategy and shard count with no migration in progress.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::resources::CONTAINER_NAME;
use super::store_client::StoreFailure;
use crate::engine::Strategy;
use crate::persistence::config::{AppendFsync, PersistenceConfig};
use crate::persistence::rules::SaveRules;
use crate::server::LOAD_FAILED;
use crate::server::config::{MaxMemoryPolicy, ServerConfig};

/// The settings a running store applies in place, with the CONFIG parameter names they travel
/// under. Everything else in the config file needs new pods.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSettings {
    pub strategy: Strategy,
    pub shards: u32,
    /// Bytes; 0 is unlimited.
    pub max_memory: u64,
    pub max_memory_policy: MaxMemoryPolicy,
    pub trace_sample_ratio: f64,
    /// Only for a store with persistence: one without is never asked about it, so a store
    /// image from before persistence still takes the other settings.
    pub persistence: Option<LivePersistence>,
}

/// The persistence settings a running store applies in place (Redis's `save`, `appendonly`
/// and `appendfsync`). Turning `appendonly` on writes the append-only file's base first, as
/// Redis does, so Snapshot and AppendOnly switch without a restart.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePersistence {
    pub save: SaveRules,
    pub appendonly: bool,
    pub appendfsync: AppendFsync,
}

impl LiveSettings {
    /// The CONFIG parameters of every store, in the order they are sent.
    pub const PARAMETERS: [&'static str; 5] =
        ["strategy", "shards", "maxmemory", "maxmemory-policy", "trace-sample-ratio"];

    /// The CONFIG parameters of a store with persistence, sent after [`Self::PARAMETERS`].
    pub const PERSISTENCE_PARAMETERS: [&'static str; 3] = ["save", "appendonly", "appendfsync"];

    /// The live part of `config`; `persistent` says whether the store has persistence.
    pub fn of(config: &ServerConfig, persistent: bool) -> LiveSettings {
        let persistence = &config.persistence;
        LiveSettings {
            strategy: config.engine.strategy,
            shards: config.engine.shards,
            max_memory: config.max_memory,
            max_memory_policy: config.max_memory_policy,
            trace_sample_ratio: config.trace_sample_ratio,
            persistence: persistent.then(|| LivePersistence {
                save: persistence.save.clone(),
                appendonly: persistence.appendonly,
                appendfsync: persistence.appendfsync,
            }),
        }
    }

    /// The parameters a CONFIG GET asks this store for.
    pub fn parameters(&self) -> Vec<&'static str> {
        let mut parameters = Self::PARAMETERS.to_vec();
        if self.persistence.is_some() {
            parameters.extend(Self::PERSISTENCE_PARAMETERS);
        }
        parameters
    }

    /// `config` with these settings replaced by fixed values, so that what remains is exactly
    /// what only new pods can apply (its hash goes into the pod template).
    pub fn without_live_settings(config: &ServerConfig) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            engine: defaults.engine,
            max_memory: defaults.max_memory,
            max_memory_policy: defaults.max_memory_policy,
            trace_sample_ratio: defaults.trace_sample_ratio,
            persistence: PersistenceConfig {
                save: defaults.persistence.save,
                appendonly: defaults.persistence.appendonly,
                appendfsync: defaults.persistence.appendfsync,
                ..config.persistence.clone()
            },
            ..config.clone()
        }
    }

    /// The (parameter, value) pairs of one multi-parameter CONFIG SET.
    pub fn config_set_pairs(&self) -> Vec<(&'static str, String)> {
        let values = [
            self.strategy.name().to_owned(),
            self.shards.to_string(),
            self.max_memory.to_string(),
            self.max_memory_policy.name().to_owned(),
            self.trace_sample_ratio.to_string(),
        ];
        let mut pairs: Vec<(&'static str, String)> = Self::PARAMETERS.into_iter().zip(values).collect();
        if let Some(persistence) = &self.persistence {
            let values = [
                persistence.save.to_string(),
                if persistence.appendonly { "yes" } else { "no" }.to_owned(),
                persistence.appendfsync.name().to_owned(),
            ];
            pairs.extend(Self::PERSISTENCE_PARAMETERS.into_iter().zip(values));
        }
        pairs
    }

    /// The settings a CONFIG GET of [`Self::parameters`] reported; `None` when one is missing
    /// or unreadable (a store too old to apply it live reports no `strategy`). The persistence
    /// settings are read when the reply has them, as it has when they were asked for.
    pub fn from_config_get(pairs: &[(String, String)]) -> Option<LiveSettings> {
        let reported: BTreeMap<String, &str> =
            pairs.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.as_str())).collect();
        let value = |name: &str| reported.get(name).copied();
        let policy = value("maxmemory-policy")?;
        let persistence = || {
            let fsync = value("appendfsync")?;
            Some(LivePersistence {
                save: value("save")?.parse().ok()?,
                appendonly: match value("appendonly")? {
                    yes if yes.eq_ignore_ascii_case("yes") => true,
                    no if no.eq_ignore_ascii_case("no") => false,
                    _ => return None,
                },
                appendfsync: AppendFsync::ALL.into_iter().find(|known| known.name().eq_ignore_ascii_case(fsync))?,
            })
        };
        Some(LiveSettings {
            strategy: value("strategy")?.parse().ok()?,
            shards: value("shards")?.parse().ok()?,
            max_memory: value("maxmemory")?.parse().ok()?,
            max_memory_policy: MaxMemoryPolicy::ALL
                .into_iter()
                .find(|known| known.name().eq_ignore_ascii_case(policy))?,
            trace_sample_ratio: value("trace-sample-ratio")?.parse().ok()?,
            persistence: persistence(),
        })
    }
}

/// A pod's engine as `INFO cstore` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// What serves requests now.
    pub strategy: Strategy,
    pub shards: u32,
    pub migration: Option<Migration>,
}

/// A live migration under way in one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub target_strategy: Strategy,
    pub target_shards: u32,
    pub keys_moved: u64,
    pub keys_total: u64,
}

/// The `key:value` fields of an INFO reply.
struct InfoFields<'a>(BTreeMap<&'a str, &'a str>);

impl InfoFields<'_> {
    fn get<T: FromStr>(&self, field: &'static str) -> Result<T, InfoError> {
        let value = self.0.get(field).ok_or(InfoError::Missing(field))?;
        value.parse().map_err(|_| InfoError::Unreadable { field, value: (*value).to_owned() })
    }
}

/// Why an `INFO cstore` or `INFO persistence` reply cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("INFO has no {0} field")]
    Missing(&'static str),
    #[error("INFO field {field} has an unreadable value {value:?}")]
    Unreadable { field: &'static str, value: String },
}

impl<'a> InfoFields<'a> {
    fn of(info: &'a str) -> Self {
        InfoFields(info.lines().filter_map(|line| line.trim_end_matches('\r').split_once(':')).collect())
    }

    /// A Redis `ok`/`err` status field: whether it says `err`.
    fn failed(&self, field: &'static str) -> Result<bool, InfoError> {
        match *self.0.get(field).ok_or(InfoError::Missing(field))? {
            "ok" => Ok(false),
            "err" => Ok(true),
            value => Err(InfoError::Unreadable { field, value: value.to_owned() }),
        }
    }
}

/// A pod's persistence as `INFO persistence` reports it, with Redis's field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistenceInfo {
    /// `rdb_last_bgsave_status:err`: the last snapshot failed (a full or read-only disk); the
    /// store refuses writes (MISCONF) until one succeeds.
    pub save_failed: bool,
    /// `aof_last_write_status:err`: the last write or fsync of the append-only file failed.
    pub aof_write_failed: bool,
}

impl PersistenceInfo {
    pub fn parse(info: &str) -> Result<PersistenceInfo, InfoError> {
        let fields = InfoFields::of(info);
        Ok(PersistenceInfo {
            save_failed: fields.failed("rdb_last_bgsave_status")?,
            aof_write_failed: fields.failed("aof_last_write_status")?,
        })
    }
}

impl EngineInfo {
    /// Reads the `key:value` lines of `INFO cstore`. The migration fields may be absent: a store
    /// that cannot migrate has none in progress.
    pub fn parse(info: &str) -> Result<EngineInfo, InfoError> {
        let fields = InfoFields::of(info);
        let migrating = match fields.0.get("migration_in_progress") {
            None => false,
            Some(_) => fields.get::<u8>("migration_in_progress")? == 1,
        };
        Ok(EngineInfo {
            strategy: fields.get("strategy")?,
            shards: fields.get("shards")?,
            migration: if migrating {
                Some(Migration {
                    target_strategy: fields.get("migration_target_strategy")?,
                    target_shards: fields.get("migration_target_shards")?,
                    keys_moved: fields.get("migration_keys_moved")?,
                    keys_total: fields.get("migration_keys_total")?,
                })
            } else {
                None
            },
        })
    }

    /// Whether this engine is the spec's, with no migration left to run.
    pub fn runs(&self, strategy: Strategy, shards: u32) -> bool {
        self.migration.is_none() && self.strategy == strategy && self.shards == shards
    }
}

/// Whether a pod must be sent the spec's settings: it is configured with other ones (or cannot
/// say), or it runs another engine with no migration under way to fix that.
pub fn needs_config_set(desired: &LiveSettings, configured: Option<&LiveSettings>, running: &EngineInfo) -> bool {
    configured != Some(desired) || (running.migration.is_none() && !running.runs(desired.strategy, desired.shards))
}

/// The store's pods the operator talks to: running, not being deleted, by name. A pending pod
/// runs nothing yet; a terminating one is draining and will not be asked to change.
pub fn pods_to_reach(pods: &[Pod]) -> Vec<&Pod> {
    let mut running: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| pod.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by_key(|pod| pod.name_any());
    running
}

/// What one reconcile learned from one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodReport {
    pub name: String,
    /// The pod's engine, read after it was configured with the spec's settings; or why that
    /// could not be done.
    pub outcome: Result<EngineInfo, PodFailure>,
    /// With persistence, how the pod's last save and append-only write went; `None` without
    /// persistence or when the pod could not be read.
    pub persistence: Option<PersistenceInfo>,
}

/// A store container that exited with an error and has not run since (it waits to be
/// restarted, or is restarting): a startup failure, as the container reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    pub pod: String,
    pub exit_code: i32,
    /// The store's fatal error line (`error: ...`) from its termination message, or the
    /// message's last line when it has none.
    pub message: String,
}

impl Crash {
    /// Whether the store stopped because it could not load its data.
    pub fn is_load_failure(&self) -> bool {
        self.message.contains(LOAD_FAILED)
    }
}

/// The store containers among `pods` that crashed and are not running again: each one's last
/// termination with a non-zero exit code, while the container is not ready. A pod that
/// crashed once and then started fine is not listed.
pub fn crashes(pods: &[Pod]) -> Vec<Crash> {
    let mut crashes: Vec<Crash> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .flat_map(|pod| {
            let statuses = pod.status.as_ref().and_then(|status| status.container_statuses.as_ref());
            statuses.into_iter().flatten().filter(|status| status.name == CONTAINER_NAME && !status.ready).filter_map(
                |status| {
                    let current = status.state.as_ref().and_then(|state| state.terminated.as_ref());
                    let last = status.last_state.as_ref().and_then(|state| state.terminated.as_ref());
                    let terminated = current.or(last).filter(|terminated| terminated.exit_code != 0)?;
                    Some(Crash {
                        pod: pod.name_any(),
                        exit_code: terminated.exit_code,
                        message: fatal_error(terminated.message.as_deref().unwrap_or_default()),
                    })
                },
            )
        })
        .collect();
    crashes.sort_by(|a, b| a.pod.cmp(&b.pod));
    crashes
}

/// The line `cstore` prints as it exits with an error (`error: ...`), found in a termination
/// message that may hold the log's tail before it; else the message's last line.
fn fatal_error(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|line| !line.is_empty());
    let last = lines.clone().next_back().unwrap_or_default();
    lines.rfind(|line| line.starts_with("error: ")).unwrap_or(last).to_owned()
}

/// Why a pod could not be configured or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFailure {
    pub failure: StoreFailure,
    pub message: String,
}

/// How far the store's pods are from the spec's engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convergence {
    /// Every pod reached runs the spec.
    Converged,
    /// Some pod migrates, was just told, or cannot be reached yet: worth asking again soon.
    Converging,
    /// Some pod refused the settings or the password, and will until someone acts.
    Blocked,
}

impl Convergence {
    pub fn of(pods: &[PodReport], strategy: Strategy, shards: u32) -> Convergence {
        let mut convergence = Convergence::Converged;
        for pod in pods {
            match &pod.outcome {
                Ok(engine) if engine.runs(strategy, shards) => {}
                Err(failure) if !failure.failure.is_transient() => return Convergence::Blocked,
                _ => convergence = Convergence::Converging,
            }
        }
        convergence
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    use super::*;

    fn settings(strategy: Strategy, shards: u32) -> LiveSettings {
        LiveSettings {
            strategy,
            shards,
            max_memory: 100 << 20,
            max_memory_policy: MaxMemoryPolicy::AllkeysRandom,
            trace_sample_ratio: 0.25,
            persistence: None,
        }
    }

    fn engine(strategy: Strategy, shards: u32, migration: Option<Migration>) -> EngineInfo {
        EngineInfo { strategy, shards, migration }
    }

    fn migration_to(strategy: Strategy, shards: u32) -> Option<Migration> {
        Some(Migration { target_strategy: strategy, target_shards: shards, keys_moved: 10, keys_total: 40 })
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn the_settings_travel_as_one_config_set_and_read_back_from_config_get() {
        let desired = settings(Strategy::LockFree, 64);
        let pairs = desired.config_set_pairs();
        assert_eq!(
            pairs,
            [
                ("strategy", "LockFree".to_owned()),
                ("shards", "64".to_owned()),
                ("maxmemory", "104857600".to_owned()),
                ("maxmemory-policy", "allkeys-random".to_owned()),
                ("trace-sample-ratio", "0.25".to_owned()),
            ]
        );
        let reported: Vec<(String, String)> = pairs.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        assert_eq!(LiveSettings::from_config_get(&reported), Some(desired.clone()));

        // Redis echoes names as asked and values may differ in case.
        let shouted = owned(&[
            ("STRATEGY", "lockfree"),
            ("shards", "64"),
            ("maxmemory", "104857600"),
            ("maxmemory-policy", "ALLKEYS-RANDOM"),
            ("trace-sample-ratio", "0.25"),
        ]);
        assert_eq!(LiveSettings::from_config_get(&shouted), Some(desired));
        let without_strategy = owned(&[
            ("maxmemory", "104857600"),
            ("maxmemory-policy", "allkeys-random"),
            ("trace-sample-ratio", "0.25"),
        ]);
        assert_eq!(LiveSettings::from_config_get(&without_strategy), None, "a store that cannot migrate");
    }

    #[test]
    fn a_persistent_store_is_also_sent_and_asked_its_persistence_rules() {
        let desired = LiveSettings {
            persistence: Some(LivePersistence {
                save: "900 1".parse().unwrap(),
                appendonly: true,
                appendfsync: AppendFsync::Always,
            }),
            ..settings(Strategy::LockFree, 64)
        };
        assert_eq!(desired.parameters()[5..], ["save", "appendonly", "appendfsync"]);
        assert_eq!(settings(Strategy::LockFree, 64).parameters(), LiveSettings::PARAMETERS, "not without it");
        let pairs = desired.config_set_pairs();
        assert_eq!(
            pairs[5..],
            [("save", "900 1".to_owned()), ("appendonly", "yes".to_owned()), ("appendfsync", "always".to_owned())]
        );
        let reported: Vec<(String, String)> = pairs.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        assert_eq!(LiveSettings::from_config_get(&reported), Some(desired.clone()));

        // A store from before persistence answers nothing for them: it is sent them, and refuses.
        let old_store = &reported[..5];
        let configured = LiveSettings::from_config_get(old_store).unwrap();
        assert_eq!(configured.persistence, None);
        assert!(needs_config_set(&desired, Some(&configured), &engine(Strategy::LockFree, 64, None)));
        let mut unreadable = reported.clone();
        unreadable[6].1 = "maybe".into();
        assert_eq!(LiveSettings::from_config_get(&unreadable).unwrap().persistence, None);
    }

    #[test]
    fn info_persistence_says_whether_the_last_save_and_append_failed() {
        let info = |rdb: &str, aof: &str| {
            format!(
                "# Persistence\r\nloading:0\r\nrdb_last_bgsave_status:{rdb}\r\naof_enabled:1\r\naof_last_write_status:{aof}\r\n"
            )
        };
        let parse = |rdb, aof| PersistenceInfo::parse(&info(rdb, aof));
        assert_eq!(parse("ok", "ok"), Ok(PersistenceInfo { save_failed: false, aof_write_failed: false }));
        assert_eq!(parse("err", "ok"), Ok(PersistenceInfo { save_failed: true, aof_write_failed: false }));
        assert_eq!(parse("ok", "err"), Ok(PersistenceInfo { save_failed: false, aof_write_failed: true }));
        assert_eq!(
            parse("maybe", "ok"),
            Err(InfoError::Unreadable { field: "rdb_last_bgsave_status", value: "maybe".into() })
        );
        assert_eq!(PersistenceInfo::parse("# Persistence\r\n"), Err(InfoError::Missing("rdb_last_bgsave_status")));
    }

    fn crashed(name: &str, ready: bool, current: Option<(i32, &str)>, last: Option<(i32, &str)>) -> Pod {
        use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};
        let state = |terminated: Option<(i32, &str)>| {
            terminated.map(|(exit_code, message)| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    message: Some(message.into()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            })
        };
        let mut pod = pod(name, "Running", false);
        pod.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: CONTAINER_NAME.into(),
            ready,
            state: state(current),
            last_state: state(last),
            ..ContainerStatus::default()
        }]);
        pod
    }

    #[test]
    fn a_crashed_store_container_is_reported_with_its_fatal_error() {
        let log_tail = format!(
            "{{\"level\":\"INFO\",\"message\":\"rdb load\"}}\nerror: {LOAD_FAILED}: bad RDB file: checksum mismatch\n\n"
        );
        let pods = [
            crashed("c", false, None, Some((1, &log_tail))),
            crashed("a", false, Some((2, "error: cannot listen on [::]:6379\n")), None),
            crashed("b", true, None, Some((1, "error: once"))),
            crashed("d", false, None, Some((0, "exited cleanly"))),
            crashed("e", false, None, Some((137, "last words\nkilled"))),
        ];
        let found = crashes(&pods);
        let summary: Vec<(&str, i32, &str, bool)> = found
            .iter()
            .map(|crash| (crash.pod.as_str(), crash.exit_code, crash.message.as_str(), crash.is_load_failure()))
            .collect();
        let load = format!("error: {LOAD_FAILED}: bad RDB file: checksum mismatch");
        assert_eq!(
            summary,
            [
                ("a", 2, "error: cannot listen on [::]:6379", false),
                ("c", 1, load.as_str(), true),
                ("e", 137, "killed", false),
            ],
            "b runs again, d exited with 0"
        );
    }

    #[test]
    fn without_live_settings_keeps_everything_else() {
        let mut config = ServerConfig::default();
        config.engine.shards = 256;
        config.max_memory = 1 << 30;
        config.trace_sample_ratio = 0.5;
        config.max_clients = 7;
        config.persistence.dir = "/data".into();
        config.persistence.save = SaveRules::redis_default();
        config.persistence.appendonly = true;
        config.persistence.appendfsync = AppendFsync::Always;
        let rest = LiveSettings::without_live_settings(&config);
        let defaults = PersistenceConfig::default();
        assert_eq!(
            (&rest.persistence.save, rest.persistence.appendonly, rest.persistence.appendfsync),
            (&defaults.save, defaults.appendonly, defaults.appendfsync)
        );
        assert_eq!(rest.persistence.dir, std::path::PathBuf::from("/data"), "the volume is no live setting");
        assert_eq!(rest.engine, ServerConfig::default().engine);
        assert_eq!((rest.max_memory, rest.trace_sample_ratio), (0, 0.0));
        assert_eq!(rest.max_clients, 7);
    }

    #[test]
    fn info_cstore_is_read_with_and_without_a_migration() {
        let idle = "# Cstore\r\nstrategy:RwLock\r\nshards:16\r\nversion:0.1.0\r\nmigration_in_progress:0\r\n\
                    migration_target_strategy:RwLock\r\nmigration_target_shards:16\r\nmigration_keys_moved:0\r\n\
                    migration_keys_total:0\r\n";
        assert_eq!(EngineInfo::parse(idle), Ok(engine(Strategy::RwLock, 16, None)));
        let busy = "# Cstore\r\nstrategy:RwLock\r\nshards:16\r\nmigration_in_progress:1\r\n\
                    migration_target_strategy:LockFree\r\nmigration_target_shards:64\r\nmigration_keys_moved:10\r\n\
                    migration_keys_total:40\r\n";
        assert_eq!(EngineInfo::parse(busy), Ok(engine(Strategy::RwLock, 16, migration_to(Strategy::LockFree, 64))));
        let before_live_migration = "# Cstore\r\nstrategy:Mutex\r\nshards:1\r\nversion:0.1.0\r\n";
        assert_eq!(EngineInfo::parse(before_live_migration), Ok(engine(Strategy::Mutex, 1, None)));

        assert_eq!(EngineInfo::parse("# Cstore\r\nshards:1\r\n"), Err(InfoError::Missing("strategy")));
        assert_eq!(
            EngineInfo::parse("strategy:Mutex\r\nshards:many\r\n"),
            Err(InfoError::Unreadable { field: "shards", value: "many".into() })
        );
        assert_eq!(
            EngineInfo::parse("strategy:Mutex\r\nshards:1\r\nmigration_in_progress:1\r\n").unwrap_err(),
            InfoError::Missing("migration_target_strategy")
        );
    }

    #[test]
    fn a_pod_is_sent_the_settings_only_when_it_is_configured_otherwise_or_stuck() {
        let desired = settings(Strategy::LockFree, 64);
        let old = settings(Strategy::RwLock, 16);
        let running_old = engine(Strategy::RwLock, 16, None);
        let running_new = engine(Strategy::LockFree, 64, None);
        let migrating = engine(Strategy::RwLock, 16, migration_to(Strategy::LockFree, 64));

        assert!(needs_config_set(&desired, Some(&old), &running_old), "a new spec");
        assert!(needs_config_set(&desired, None, &running_old), "cannot tell what it is configured with");
        let other_memory = LiveSettings { max_memory: 0, ..desired.clone() };
        assert!(needs_config_set(&desired, Some(&other_memory), &running_new), "a plain setting changed");
        assert!(!needs_config_set(&desired, Some(&desired), &migrating), "told already: its migration runs");
        assert!(!needs_config_set(&desired, Some(&desired), &running_new), "runs the spec");
        assert!(needs_config_set(&desired, Some(&desired), &running_old), "told, but no migration runs");
    }

    fn pod(name: &str, phase: &str, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                deletion_timestamp: deleting.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus { phase: Some(phase.into()), ..PodStatus::default() }),
            ..Pod::default()
        }
    }

    #[test]
    fn only_running_pods_that_stay_are_reached_in_name_order() {
        let pods = [
            pod("c", "Running", false),
            pod("a", "Running", false),
            pod("b", "Pending", false),
            pod("d", "Running", true),
            pod("e", "Succeeded", false),
        ];
        let names: Vec<String> = pods_to_reach(&pods).into_iter().map(|pod| pod.name_any()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn convergence_waits_for_migrations_and_unreachable_pods_and_stops_at_refusals() {
        let report = |outcome| PodReport { name: "p".into(), outcome, persistence: None };
        let failed = |failure| Err(PodFailure { failure, message: "x".into() });
        let done = report(Ok(engine(Strategy::LockFree, 64, None)));
        let migrating = report(Ok(engine(Strategy::RwLock, 16, migration_to(Strategy::LockFree, 64))));
        let of = |pods: &[PodReport]| Convergence::of(pods, Strategy::LockFree, 64);

        assert_eq!(of(&[]), Convergence::Converged);
        assert_eq!(of(&[done.clone(), done.clone()]), Convergence::Converged);
        assert_eq!(of(&[done.clone(), migrating.clone()]), Convergence::Converging);
        assert_eq!(of(&[done.clone(), report(failed(StoreFailure::Unreachable))]), Convergence::Converging);
        assert_eq!(of(&[migrating, report(failed(StoreFailure::Refused))]), Convergence::Blocked);
        assert_eq!(of(&[done, report(failed(StoreFailure::AuthFailed))]), Convergence::Blocked);
    }
}
