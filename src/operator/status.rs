//! A store's status, computed from what one reconcile observed. Pure: every condition
//! transition is unit-tested without an API server.
//!
//! - `Ready`: every replica is ready and runs the spec of the current generation, as each pod
//!   itself reports (its engine, with no migration left).
//! - `Progressing`: a rollout is under way (reason `RollingOut`: a scale, or pods being
//!   replaced), or a live reconfiguration (reason `Reconfiguring`: some pod still migrates,
//!   was just told, or cannot be asked yet; the message says how many pods run the spec).
//! - `Degraded`: the reconcile failed, a store container exited with an error at startup
//!   (reason `LoadFailed` when it could not load its data, `StartFailed` otherwise, with the
//!   container's own message), the rollout stalled past its progress deadline or cannot
//!   create its pods (the Deployment's ReplicaFailure, e.g. a ResourceQuota), a pod refused
//!   the spec's settings or the password (reason `ReconfigurationFailed`), or a pod's last
//!   save failed (`SaveFailed`, `AofWriteFailed`).
//! - `PersistenceHealthy`, only with persistence: every pod's last snapshot and append-only
//!   write succeeded, as `INFO persistence` reports them; False with reason `SaveFailed`,
//!   `AofWriteFailed` or `LoadFailed`; Unknown while no pod could be asked.
//!
//! Each condition keeps its `lastTransitionTime` until its status changes, and carries the
//! generation it was computed for.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::crd::{ConcurrentStore, ConcurrentStoreSpec, ConcurrentStoreStatus, PodEngineStatus};
use super::live::{Convergence, Crash, EngineInfo, Migration, PodReport};
use super::resources::endpoint;
use crate::engine::Strategy;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// The Deployment condition reason that says a rollout stopped making progress.
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Progressing's reason while pods apply new live settings.
pub const RECONFIGURING: &str = "Reconfiguring";

/// The reason of a reconfiguration some pod refused.
pub const RECONFIGURATION_FAILED: &str = "ReconfigurationFailed";

/// Whether the pods of a store with persistence save and log their data.
pub const PERSISTENCE_HEALTHY: &str = "PersistenceHealthy";

/// A pod's last snapshot failed (`rdb_last_bgsave_status:err`).
pub const SAVE_FAILED: &str = "SaveFailed";

/// A pod's last write to its append-only file failed (`aof_last_write_status:err`).
pub const AOF_WRITE_FAILED: &str = "AofWriteFailed";

/// A store container exited at startup because it could not load its data.
pub const LOAD_FAILED: &str = "LoadFailed";

/// A store container exited with an error at startup, for another reason.
pub const START_FAILED: &str = "StartFailed";

/// What one reconcile found.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'a> {
    /// Every child matches the spec: the store's Deployment as the API server holds it, what
    /// each running pod reported of its engine after it was told the spec's settings, and the
    /// store containers that crashed and are not running again.
    Applied { deployment: &'a Deployment, pods: &'a [PodReport], crashes: &'a [Crash] },
    /// The reconcile failed; `reason` is a CamelCase word, `message` says what failed.
    Failed { reason: &'a str, message: &'a str },
}

/// The status `store` should have after a reconcile that observed `observation` at `now`.
pub fn next_status(store: &ConcurrentStore, observation: Observation<'_>, now: Timestamp) -> ConcurrentStoreStatus {
    let previous = store.status.clone().unwrap_or_default();
    let generation = store.metadata.generation;
    let conditions = Conditions { previous: &previous.conditions, generation, now };
    match observation {
        Observation::Applied { deployment, pods, crashes } => {
            let rollout = Rollout::of(deployment);
            let engines = Engines { pods, spec: &store.spec };
            let convergence = Convergence::of(pods, store.spec.strategy, store.spec.shards);
            let desired = store.spec.replicas;
            let complete = rollout.is_complete();
            let replicas_ready = complete && rollout.ready == desired;
            let counts = format!("{}/{desired} replicas ready", rollout.ready);
            let crash = crashes.first().map(|crash| {
                let reason = if crash.is_load_failure() { LOAD_FAILED } else { START_FAILED };
                (reason, describe_crash(crash))
            });
            let persistence =
                store.spec.persistent().map(|_| persistence_health(pods, crashes.iter().find(|c| c.is_load_failure())));
            let mut next = ConcurrentStoreStatus {
                observed_generation: generation,
                replicas: rollout.replicas,
                ready_replicas: rollout.ready,
                ready: format!("{}/{desired}", rollout.ready),
                endpoint: endpoint(store),
                strategy: engines.common(|engine| engine.strategy),
                shards: engines.common(|engine| engine.shards),
                pods: pods.iter().map(|pod| pod_status(pod, &store.spec)).collect(),
                conditions: vec![
                    match convergence {
                        _ if !replicas_ready => conditions.set(READY, "False", "ReplicasNotReady", counts),
                        Convergence::Converged => conditions.set(READY, "True", "AllReplicasReady", counts),
                        Convergence::Converging => conditions.set(READY, "False", RECONFIGURING, engines.describe()),
                        Convergence::Blocked => {
                            conditions.set(READY, "False", RECONFIGURATION_FAILED, engines.describe())
                        }
                    },
                    match (&rollout.stalled, convergence) {
                        (Some(stall), _) => conditions.set(PROGRESSING, "False", &stall.reason, stall.message.clone()),
                        (None, _) if !complete => conditions.set(PROGRESSING, "True", "RollingOut", rollout.describe()),
                        (None, Convergence::Converged) => conditions.set(
                            PROGRESSING,
                            "False",
                            "RolloutComplete",
                            format!("all {desired} replicas run the current spec"),
                        ),
                        (None, Convergence::Converging) => {
                            conditions.set(PROGRESSING, "True", RECONFIGURING, engines.describe())
                        }
                        (None, Convergence::Blocked) => {
                            conditions.set(PROGRESSING, "False", RECONFIGURATION_FAILED, engines.describe())
                        }
                    },
                    match (&crash, &rollout.stalled, convergence, &persistence) {
                        (Some((reason, message)), ..) => conditions.set(DEGRADED, "True", reason, message.clone()),
                        (None, Some(stall), ..) => {
                            conditions.set(DEGRADED, "True", &stall.reason, stall.message.clone())
                        }
                        (None, None, Convergence::Blocked, _) => {
                            conditions.set(DEGRADED, "True", RECONFIGURATION_FAILED, engines.describe())
                        }
                        (None, None, _, Some(Health { status: "False", reason, message })) => {
                            conditions.set(DEGRADED, "True", reason, message.clone())
                        }
                        _ => conditions.set(DEGRADED, "False", "ReconcileSucceeded", String::new()),
                    },
                ],
            };
            if let Some(health) = persistence {
                next.conditions.push(conditions.set(PERSISTENCE_HEALTHY, health.status, health.reason, health.message));
            }
            next
        }
        Observation::Failed { reason, message } => {
            let mut conditions_now = vec![
                conditions.keep_current_or_unknown(READY, reason, message),
                conditions.keep_current_or_unknown(PROGRESSING, reason, message),
                conditions.set(DEGRADED, "True", reason, message.to_owned()),
            ];
            if store.spec.persistent().is_some() {
                conditions_now.push(conditions.keep_current_or_unknown(PERSISTENCE_HEALTHY, reason, message));
            }
            ConcurrentStoreStatus { observed_generation: generation, conditions: conditions_now, ..previous.clone() }
        }
    }
}

/// One condition's status, reason and message.
struct Health {
    status: &'static str,
    reason: &'static str,
    message: String,
}

/// PersistenceHealthy from what the pods reported: the first failure found (a load that
/// failed, then a failed save, then a failed append-only write, pod by pod), else True when
/// some pod could be asked, else Unknown.
fn persistence_health(pods: &[PodReport], load_failure: Option<&Crash>) -> Health {
    if let Some(crash) = load_failure {
        return Health { status: "False", reason: LOAD_FAILED, message: describe_crash(crash) };
    }
    let reported = || pods.iter().filter_map(|pod| Some((pod.name.as_str(), pod.persistence?)));
    if let Some((name, _)) = reported().find(|(_, info)| info.save_failed) {
        let message = format!(
            "pod {name}: the last snapshot failed (rdb_last_bgsave_status:err; its log says why, a full or \
             read-only volume most often); the previous snapshot is intact, and while snapshotRules are set \
             the store refuses writes (MISCONF) until a save succeeds"
        );
        return Health { status: "False", reason: SAVE_FAILED, message };
    }
    if let Some((name, _)) = reported().find(|(_, info)| info.aof_write_failed) {
        let message = format!(
            "pod {name}: the last write to the append-only file failed (aof_last_write_status:err; its log says \
             why, a full volume most often)"
        );
        return Health { status: "False", reason: AOF_WRITE_FAILED, message };
    }
    match reported().count() {
        0 => Health {
            status: "Unknown",
            reason: "NotReported",
            message: "no pod could be asked how its saves went yet".to_owned(),
        },
        count => Health {
            status: "True",
            reason: "SavesSucceeding",
            message: format!("the last save of {count} pod(s) succeeded"),
        },
    }
}

/// `pod cache-x exited with code 1: error: cannot load the data at startup: ...`.
fn describe_crash(crash: &Crash) -> String {
    let mut text = format!("pod {} exited with code {}", crash.pod, crash.exit_code);
    if !crash.message.is_empty() {
        text.push_str(": ");
        text.push_str(&crash.message);
    }
    text
}

/// What the store's pods reported of their engines, against the spec.
struct Engines<'a> {
    pods: &'a [PodReport],
    spec: &'a ConcurrentStoreSpec,
}

impl Engines<'_> {
    /// The value every pod reports, when they all could be asked, none still migrates, and
    /// they agree; `None` otherwise (and with no pod).
    fn common<T: PartialEq + Copy>(&self, field: impl Fn(&EngineInfo) -> T) -> Option<T> {
        let mut values = self.pods.iter().map(|pod| {
            let settled = pod.outcome.as_ref().ok().filter(|engine| engine.migration.is_none());
            settled.map(&field)
        });
        let first = values.next()??;
        values.all(|value| value == Some(first)).then_some(first)
    }

    /// How many pods run the spec, and what each other pod is doing.
    fn describe(&self) -> String {
        let running = self.pods.iter().filter(|pod| runs(pod, self.spec)).count();
        let spec = engine_text(self.spec.strategy, self.spec.shards);
        let mut text = format!("{running} of {} pods run the spec ({spec})", self.pods.len());
        for pod in self.pods.iter().filter(|pod| !runs(pod, self.spec)) {
            let state = match &pod.outcome {
                Ok(EngineInfo { migration: Some(migration), .. }) => format!("migrating {}", describe(migration)),
                Ok(engine) => format!("runs {}", engine_text(engine.strategy, engine.shards)),
                Err(failure) => format!("{}: {}", failure.failure.label(), failure.message),
            };
            text.push_str(&format!("; {}: {state}", pod.name));
        }
        text
    }
}

fn runs(pod: &PodReport, spec: &ConcurrentStoreSpec) -> bool {
    pod.outcome.as_ref().is_ok_and(|engine| engine.runs(spec.strategy, spec.shards))
}

fn describe(migration: &Migration) -> String {
    let target = engine_text(migration.target_strategy, migration.target_shards);
    match migration.keys_total {
        // Accepted or queued, not yet counting: "0 of 0 keys moved" would read as done.
        0 => format!("to {target}, starting"),
        total => format!("to {target}, {} of {total} keys moved", migration.keys_moved),
    }
}

/// `LockFree with 64 shards`, `Mutex with 1 shard`.
fn engine_text(strategy: Strategy, shards: u32) -> String {
    format!("{strategy} with {shards} shard{}", if shards == 1 { "" } else { "s" })
}

fn pod_status(pod: &PodReport, spec: &ConcurrentStoreSpec) -> PodEngineStatus {
    match &pod.outcome {
        Ok(engine) => PodEngineStatus {
            name: pod.name.clone(),
            strategy: Some(engine.strategy),
            shards: Some(engine.shards),
            runs_spec: runs(pod, spec),
            migrating: engine.migration.is_some(),
            migration: engine.migration.as_ref().map(describe),
            error: None,
        },
        Err(failure) => PodEngineStatus {
            name: pod.name.clone(),
            error: Some(format!("{}: {}", failure.failure.label(), failure.message)),
            ..PodEngineStatus::default()
        },
    }
}

/// Builds conditions for one generation, keeping transition times from the previous ones.
struct Conditions<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions<'_> {
    fn find(&self, type_: &str) -> Option<&Condition> {
        self.previous.iter().find(|condition| condition.type_ == type_)
    }

    fn set(&self, type_: &str, status: &str, reason: &str, message: String) -> Condition {
        let last_transition_time = match self.find(type_) {
            Some(previous) if previous.status == status => previous.last_transition_time.clone(),
            _ => Time(self.now),
        };
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: self.generation,
            last_transition_time,
        }
    }

    /// A failed reconcile does not change the pods: a condition computed for the current
    /// generation still holds; one from an older generation says nothing about this one.
    fn keep_current_or_unknown(&self, type_: &str, reason: &str, message: &str) -> Condition {
        match self.find(type_) {
            Some(previous) if previous.observed_generation == self.generation => previous.clone(),
            _ => self.set(type_, "Unknown", reason, message.to_owned()),
        }
    }
}

/// The rollout state of the store's Deployment.
struct Rollout {
    desired: i32,
    /// Pods of any version.
    replicas: i32,
    /// Pods of the current pod template.
    updated: i32,
    ready: i32,
    available: i32,
    /// Whether the Deployment controller has seen the Deployment's current spec.
    observed: bool,
    /// Why the rollout cannot go on, in the Deployment's own words: it gave up (progress
    /// deadline), or its pods cannot be created (ReplicaFailure, e.g. a ResourceQuota), which
    /// the Deployment reports at once instead of after the deadline.
    stalled: Option<Stall>,
}

struct Stall {
    reason: String,
    message: String,
}

impl Rollout {
    fn of(deployment: &Deployment) -> Rollout {
        let status = deployment.status.clone().unwrap_or_default();
        let conditions = status.conditions.iter().flatten();
        let deadline = conditions.clone().find(|condition| {
            condition.type_ == PROGRESSING
                && condition.status == "False"
                && condition.reason.as_deref() == Some(DEADLINE_EXCEEDED)
        });
        let replica_failure =
            conditions.clone().find(|condition| condition.type_ == "ReplicaFailure" && condition.status == "True");
        let stalled = deadline.or(replica_failure).map(|condition| Stall {
            reason: condition.reason.clone().unwrap_or_else(|| condition.type_.clone()),
            message: condition.message.clone().unwrap_or_else(|| condition.type_.clone()),
        });
        Rollout {
            desired: deployment.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1),
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed: status.observed_generation >= deployment.metadata.generation,
            stalled,
        }
    }

    /// As `kubectl rollout status` has it: every pod updated and available, none of an older
    /// template left.
    fn is_complete(&self) -> bool {
        self.observed && self.updated == self.desired && self.replicas == self.desired && self.available == self.desired
    }

    fn describe(&self) -> String {
        if !self.observed {
            return "the Deployment controller has not yet seen the new spec".to_owned();
        }
        let old = self.replicas - self.updated;
        let mut text = format!("{} of {} replicas updated, {} available", self.updated, self.desired, self.available);
        if old > 0 {
            text.push_str(&format!(", {old} old replica(s) still running"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::operator::crd::ConcurrentStoreSpec;
    use crate::operator::live::PodFailure;
    use crate::operator::store_client::StoreFailure;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn store(generation: i64, replicas: i32) -> ConcurrentStore {
        let mut store = ConcurrentStore::new(
            "cache",
            ConcurrentStoreSpec {
                strategy: Strategy::LockFree,
                shards: 64,
                replicas,
                ..ConcurrentStoreSpec::default()
            },
        );
        store.metadata.namespace = Some("apps".into());
        store.metadata.generation = Some(generation);
        store
    }

    /// A Deployment at `generation`, its controller having observed `observed`.
    fn deployment(generation: i64, observed: i64, replicas: i32, updated: i32, ready: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(generation), ..ObjectMeta::default() },
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..DeploymentSpec::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas.max(updated)),
                updated_replicas: Some(updated),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn running(name: &str, strategy: Strategy, shards: u32) -> PodReport {
        PodReport {
            name: name.into(),
            outcome: Ok(EngineInfo { strategy, shards, migration: None }),
            persistence: None,
        }
    }

    fn migrating(name: &str, keys_moved: u64, keys_total: u64) -> PodReport {
        let migration = Migration { target_strategy: Strategy::LockFree, target_shards: 64, keys_moved, keys_total };
        PodReport {
            name: name.into(),
            outcome: Ok(EngineInfo { strategy: Strategy::Mutex, shards: 1, migration: Some(migration) }),
            persistence: None,
        }
    }

    fn failed(name: &str, failure: StoreFailure, message: &str) -> PodReport {
        PodReport {
            name: name.into(),
            outcome: Err(PodFailure { failure, message: message.into() }),
            persistence: None,
        }
    }

    fn condition<'a>(status: &'a ConcurrentStoreStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn summary(status: &ConcurrentStoreStatus) -> Vec<(String, String, String)> {
        status.conditions.iter().map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone())).collect()
    }

    fn owned(conditions: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        conditions.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
    }

    #[test]
    fn a_complete_rollout_with_every_replica_ready_is_ready() {
        let store = store(3, 2);
        let pods = [running("cache-a", Strategy::LockFree, 64), running("cache-b", Strategy::LockFree, 64)];
        let status = next_status(
            &store,
            Observation::Applied { deployment: &deployment(5, 5, 2, 2, 2), pods: &pods, crashes: &[] },
            at(0),
        );
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "True", "AllReplicasReady"),
                ("Progressing", "False", "RolloutComplete"),
                ("Degraded", "False", "ReconcileSucceeded")
            ])
        );
        assert_eq!((status.replicas, status.ready_replicas, status.ready.as_str()), (2, 2, "2/2"));
        assert_eq!((status.strategy, status.shards), (Some(Strategy::LockFree), Some(64)));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.endpoint.as_deref(), Some("cache.apps.svc:6379"));
        assert!(status.conditions.iter().all(|c| c.observed_generation == Some(3)));
        assert_eq!(
            status.pods.iter().map(|pod| (pod.name.as_str(), pod.runs_spec, pod.migrating)).collect::<Vec<_>>(),
            [("cache-a", true, false), ("cache-b", true, false)]
        );
    }

    #[test]
    fn a_rollout_under_way_is_progressing_and_shows_the_engine_the_pods_run() {
        let store = store(4, 2);
        let old_pods = [running("cache-a", Strategy::Mutex, 1), running("cache-b", Strategy::Mutex, 1)];
        for (deployment, message) in [
            (deployment(6, 5, 2, 2, 2), "the Deployment controller has not yet seen the new spec"),
            (deployment(6, 6, 2, 1, 2), "1 of 2 replicas updated, 2 available, 1 old replica(s) still running"),
            (deployment(6, 6, 2, 2, 1), "2 of 2 replicas updated, 1 available"),
        ] {
            let status = next_status(
                &store,
                Observation::Applied { deployment: &deployment, pods: &old_pods, crashes: &[] },
                at(0),
            );
            assert_eq!(
                summary(&status),
                owned(&[
                    ("Ready", "False", "ReplicasNotReady"),
                    ("Progressing", "True", "RollingOut"),
                    ("Degraded", "False", "ReconcileSucceeded")
                ])
            );
            assert_eq!(condition(&status, PROGRESSING).message, message);
            assert_eq!((status.strategy, status.shards), (Some(Strategy::Mutex), Some(1)), "what the pods report");
        }
    }

    #[test]
    fn a_stalled_rollout_is_degraded_with_the_deployment_message() {
        let mut stalled = deployment(2, 2, 1, 1, 0);
        stalled.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"cache-1\" has timed out progressing.".into()),
            ..DeploymentCondition::default()
        }]);
        let status =
            next_status(&store(1, 1), Observation::Applied { deployment: &stalled, pods: &[], crashes: &[] }, at(0));
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "False", "ReplicasNotReady"),
                ("Progressing", "False", "ProgressDeadlineExceeded"),
                ("Degraded", "True", "ProgressDeadlineExceeded")
            ])
        );
        assert_eq!(condition(&status, DEGRADED).message, "ReplicaSet \"cache-1\" has timed out progressing.");
    }

    #[test]
    fn pods_that_cannot_be_created_are_degraded_at_once_with_the_reason() {
        let mut blocked = deployment(1, 1, 1, 0, 0);
        let message = "pods \"cache-7d9f-x2k4q\" is forbidden: exceeded quota: no-pods, requested: pods=1";
        blocked.status.as_mut().unwrap().conditions = Some(vec![
            DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("NewReplicaSetCreated".into()),
                ..DeploymentCondition::default()
            },
            DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some(message.into()),
                ..DeploymentCondition::default()
            },
        ]);
        let status =
            next_status(&store(1, 1), Observation::Applied { deployment: &blocked, pods: &[], crashes: &[] }, at(0));
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "False", "ReplicasNotReady"),
                ("Progressing", "False", "FailedCreate"),
                ("Degraded", "True", "FailedCreate")
            ])
        );
        assert_eq!(condition(&status, DEGRADED).message, message);
    }

    #[test]
    fn transition_times_change_only_with_the_status() {
        let mut store = store(1, 1);
        let first = next_status(
            &store,
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 0), pods: &[], crashes: &[] },
            at(0),
        );
        store.status = Some(first.clone());
        let second = next_status(
            &store,
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 0), pods: &[], crashes: &[] },
            at(10),
        );
        assert_eq!(first, second, "nothing changed, so the status is equal and need not be written");

        let ready = next_status(
            &store,
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 1), pods: &[], crashes: &[] },
            at(20),
        );
        assert_eq!(condition(&ready, READY).last_transition_time, Time(at(20)));
        assert_eq!(condition(&ready, DEGRADED).last_transition_time, Time(at(0)));
    }

    #[test]
    fn a_failure_is_degraded_and_keeps_what_is_known_of_the_current_generation() {
        let mut store = store(2, 1);
        store.status = Some(next_status(
            &store,
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 1), pods: &[], crashes: &[] },
            at(0),
        ));
        let failed = Observation::Failed { reason: "Forbidden", message: "cannot apply Deployment cache: forbidden" };
        let status = next_status(&store, failed, at(5));
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "True", "AllReplicasReady"),
                ("Progressing", "False", "RolloutComplete"),
                ("Degraded", "True", "Forbidden")
            ])
        );
        assert_eq!(condition(&status, DEGRADED).message, "cannot apply Deployment cache: forbidden");
        assert_eq!(status.ready, "1/1", "the last observed counts stay");

        // A new generation that fails says nothing about whether its replicas are ready.
        store.metadata.generation = Some(3);
        store.status = Some(status);
        let status = next_status(&store, failed, at(9));
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "Unknown", "Forbidden"),
                ("Progressing", "Unknown", "Forbidden"),
                ("Degraded", "True", "Forbidden")
            ])
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(condition(&status, DEGRADED).last_transition_time, Time(at(5)));
    }

    #[test]
    fn recovery_clears_degraded() {
        let mut store = store(1, 1);
        store.status = Some(next_status(&store, Observation::Failed { reason: "ApiError", message: "boom" }, at(0)));
        let status = next_status(
            &store,
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 1), pods: &[], crashes: &[] },
            at(30),
        );
        assert_eq!(condition(&status, DEGRADED).status, "False");
        assert_eq!(condition(&status, DEGRADED).last_transition_time, Time(at(30)));
        assert_eq!(condition(&status, READY).status, "True");
    }

    #[test]
    fn a_live_reconfiguration_is_progressing_until_every_pod_runs_the_spec() {
        let store = store(2, 2);
        let rolled_out = deployment(1, 1, 2, 2, 2);
        let status_with = |pods: &[PodReport]| {
            next_status(&store, Observation::Applied { deployment: &rolled_out, pods, crashes: &[] }, at(0))
        };

        let status = status_with(&[running("cache-a", Strategy::LockFree, 64), migrating("cache-b", 10, 40)]);
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "False", "Reconfiguring"),
                ("Progressing", "True", "Reconfiguring"),
                ("Degraded", "False", "ReconcileSucceeded")
            ])
        );
        assert_eq!(
            condition(&status, PROGRESSING).message,
            "1 of 2 pods run the spec (LockFree with 64 shards); cache-b: migrating to LockFree with 64 shards, 10 of 40 keys moved"
        );
        assert_eq!((status.strategy, status.shards), (None, None), "the pods differ");
        assert_eq!(status.ready, "2/2", "both pods serve throughout");
        let migrating_pod = &status.pods[1];
        assert_eq!((migrating_pod.strategy, migrating_pod.shards), (Some(Strategy::Mutex), Some(1)));
        assert!(migrating_pod.migrating && !migrating_pod.runs_spec);
        assert_eq!(migrating_pod.migration.as_deref(), Some("to LockFree with 64 shards, 10 of 40 keys moved"));
        let starting = status_with(&[running("cache-a", Strategy::LockFree, 64), migrating("cache-b", 0, 0)]);
        assert_eq!(starting.pods[1].migration.as_deref(), Some("to LockFree with 64 shards, starting"));

        let status = status_with(&[running("cache-a", Strategy::LockFree, 64), running("cache-b", Strategy::Mutex, 1)]);
        assert_eq!(
            condition(&status, PROGRESSING).message,
            "1 of 2 pods run the spec (LockFree with 64 shards); cache-b: runs Mutex with 1 shard",
            "told just now, its migration not started yet"
        );

        let status =
            status_with(&[running("cache-a", Strategy::LockFree, 64), running("cache-b", Strategy::LockFree, 64)]);
        assert_eq!(condition(&status, READY).status, "True");
        assert_eq!(condition(&status, PROGRESSING).reason, "RolloutComplete");
        assert_eq!((status.strategy, status.shards), (Some(Strategy::LockFree), Some(64)));
    }

    #[test]
    fn an_unreachable_pod_keeps_the_store_reconfiguring_and_says_why() {
        let pods = [
            running("cache-a", Strategy::LockFree, 64),
            failed("cache-b", StoreFailure::Unreachable, "cannot connect to 10.0.0.7:6379: connection refused"),
        ];
        let status = next_status(
            &store(2, 2),
            Observation::Applied { deployment: &deployment(1, 1, 2, 2, 2), pods: &pods, crashes: &[] },
            at(0),
        );
        assert_eq!(condition(&status, PROGRESSING).reason, "Reconfiguring");
        assert_eq!(
            condition(&status, PROGRESSING).message,
            "1 of 2 pods run the spec (LockFree with 64 shards); cache-b: Unreachable: cannot connect to 10.0.0.7:6379: connection refused"
        );
        assert_eq!(condition(&status, DEGRADED).status, "False", "a pod starting or stopping is not a failure");
        assert_eq!(status.strategy, None, "cache-b's engine is unknown");
        assert_eq!(
            status.pods[1].error.as_deref(),
            Some("Unreachable: cannot connect to 10.0.0.7:6379: connection refused")
        );
        assert_eq!((status.pods[1].strategy, status.pods[1].runs_spec), (None, false));
    }

    #[test]
    fn a_refused_reconfiguration_is_degraded() {
        let refusal =
            "the store refused CONFIG SET: ERR Unknown option or number of arguments for CONFIG SET - 'strategy'";
        let pods = [failed("cache-a", StoreFailure::Refused, refusal)];
        let status = next_status(
            &store(2, 1),
            Observation::Applied { deployment: &deployment(1, 1, 1, 1, 1), pods: &pods, crashes: &[] },
            at(0),
        );
        assert_eq!(
            summary(&status),
            owned(&[
                ("Ready", "False", "ReconfigurationFailed"),
                ("Progressing", "False", "ReconfigurationFailed"),
                ("Degraded", "True", "ReconfigurationFailed")
            ])
        );
        assert_eq!(
            condition(&status, DEGRADED).message,
            format!("0 of 1 pods run the spec (LockFree with 64 shards); cache-a: Refused: {refusal}")
        );
    }

    fn persistent_store() -> ConcurrentStore {
        let mut store = store(1, 1);
        store.spec.persistence = Some(crate::operator::crd::PersistenceSpec {
            mode: crate::operator::crd::PersistenceMode::Snapshot,
            ..Default::default()
        });
        store
    }

    fn saving(name: &str, save_failed: bool, aof_write_failed: bool) -> PodReport {
        let persistence = Some(crate::operator::live::PersistenceInfo { save_failed, aof_write_failed });
        PodReport { persistence, ..running(name, Strategy::LockFree, 64) }
    }

    fn observe(store: &ConcurrentStore, pods: &[PodReport], crashes: &[Crash]) -> ConcurrentStoreStatus {
        let deployment = deployment(1, 1, 1, 1, 1);
        next_status(store, Observation::Applied { deployment: &deployment, pods, crashes }, at(0))
    }

    #[test]
    fn a_failed_save_or_append_turns_persistence_unhealthy_and_the_store_degraded() {
        let persistent = persistent_store();
        let healthy = observe(&persistent, &[saving("cache-a", false, false)], &[]);
        assert_eq!(
            summary(&healthy),
            owned(&[
                ("Ready", "True", "AllReplicasReady"),
                ("Progressing", "False", "RolloutComplete"),
                ("Degraded", "False", "ReconcileSucceeded"),
                ("PersistenceHealthy", "True", "SavesSucceeding"),
            ])
        );
        for (pod, reason, says) in [
            (saving("cache-a", true, true), SAVE_FAILED, "pod cache-a: the last snapshot failed"),
            (saving("cache-a", false, true), AOF_WRITE_FAILED, "pod cache-a: the last write to the append-only file"),
        ] {
            let status = observe(&persistent, &[pod], &[]);
            for type_ in [PERSISTENCE_HEALTHY, DEGRADED] {
                let condition = condition(&status, type_);
                assert_eq!(condition.reason, reason, "{type_}");
                assert!(condition.message.starts_with(says), "{type_}: {}", condition.message);
            }
            assert_eq!(condition(&status, PERSISTENCE_HEALTHY).status, "False");
            assert_eq!(condition(&status, DEGRADED).status, "True");
        }
        let unasked = observe(&persistent, &[failed("cache-a", StoreFailure::Unreachable, "connection refused")], &[]);
        assert_eq!(
            (condition(&unasked, PERSISTENCE_HEALTHY).status.as_str(), condition(&unasked, DEGRADED).status.as_str()),
            ("Unknown", "False")
        );
        let plain = observe(&store(1, 1), &[saving("cache-a", true, false)], &[]);
        assert!(plain.conditions.iter().all(|c| c.type_ != PERSISTENCE_HEALTHY), "no persistence, no condition");
    }

    #[test]
    fn a_store_that_cannot_load_its_data_is_degraded_with_its_own_words() {
        let load = Crash {
            pod: "cache-a".into(),
            exit_code: 1,
            message: format!("error: {}: bad RDB file", crate::server::LOAD_FAILED),
        };
        let status = observe(&persistent_store(), &[failed("cache-a", StoreFailure::Unreachable, "refused")], &[load]);
        let expected = format!("pod cache-a exited with code 1: error: {}: bad RDB file", crate::server::LOAD_FAILED);
        for (type_, status_) in [(DEGRADED, "True"), (PERSISTENCE_HEALTHY, "False")] {
            let condition = condition(&status, type_);
            assert_eq!((condition.status.as_str(), condition.reason.as_str()), (status_, LOAD_FAILED), "{type_}");
            assert_eq!(condition.message, expected, "{type_}");
        }

        let other = Crash { pod: "cache-a".into(), exit_code: 2, message: String::new() };
        let status = observe(&store(1, 1), &[], &[other]);
        let degraded = condition(&status, DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str(), degraded.message.as_str()),
            ("True", START_FAILED, "pod cache-a exited with code 2")
        );
    }
}
