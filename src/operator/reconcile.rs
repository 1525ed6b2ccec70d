//! One reconcile of a `ConcurrentStore`: render the desired state (pure), apply each child that
//! drifted, bring the running pods to the spec's live settings (`reconfigure`), write the
//! status (pure), and say what happened in Events and metrics.
//!
//! No finalizer: everything a store owns lives in the cluster and carries an owner reference,
//! so the garbage collector deletes it with the store; there is nothing outside the cluster to
//! clean up, and a finalizer would only let a stopped operator block namespace deletion. The
//! one child without an owner reference, a data claim the store retains (whenDeleted: Retain),
//! is meant to outlive it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use opentelemetry::trace::TraceContextExt as _;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::field::Empty;
use tracing::{Span, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::api_call::traced;
use super::apply::{ApplyError, Change, FIELD_MANAGER, apply};
use super::crd::{ConcurrentStore, ConcurrentStoreStatus};
use super::live::{Convergence, Crash, LiveSettings, PodReport, crashes};
use super::metrics::Metrics;
use super::reconfigure::{PasswordError, PodAddress, Target, pod_ip_address, read_password, reconfigure_pods};
use super::resources::{Desired, ROLLOUT_STRATEGY, RenderError, Settings, pod_selector};
use super::status::{Observation, PERSISTENCE_HEALTHY, next_status};
use super::store_client::Timeouts;

/// How often a healthy store is reconciled even when nothing changes: a safety net, since
/// every change to the store or its children triggers a reconcile anyway.
const RESYNC_INTERVAL: Duration = Duration::from_secs(300);

/// How often a store whose pods are still applying new live settings is looked at again: a
/// migration reports progress, not its end, and the status should follow it within seconds.
const RECONFIGURING_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How often a pod that refused the settings or the password is tried again: it will refuse
/// until someone fixes the spec (which triggers a reconcile anyway) or the Secret.
const REFUSED_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// How long transient failures of one store (each retried after the backoff) leave its
/// conditions alone; a failure that lasts longer marks it Degraded.
pub const TRANSIENT_FAILURE_GRACE: Duration = Duration::from_secs(30);

/// The `reportingController` of the operator's Events.
pub const CONTROLLER_NAME: &str = "cstore-operator";

/// Why a reconcile failed: the `reason` label of the failure metric and of the Degraded
/// condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The spec cannot be turned into a running store (the API server's schema let it by).
    InvalidSpec,
    /// The operator's RBAC does not allow a request.
    Forbidden,
    /// Another writer holds a field or a newer version: retried.
    Conflict,
    /// The API server (or an admission webhook) refused an object the operator sent.
    Rejected,
    /// The API server answered with another error.
    ApiError,
    /// The API server could not be reached or did not answer in time.
    Unreachable,
    /// An object under a child's name belongs to someone else.
    NotOwned,
}

impl FailureReason {
    pub const ALL: [FailureReason; 7] = [
        FailureReason::InvalidSpec,
        FailureReason::Forbidden,
        FailureReason::Conflict,
        FailureReason::Rejected,
        FailureReason::ApiError,
        FailureReason::Unreachable,
        FailureReason::NotOwned,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FailureReason::InvalidSpec => "InvalidSpec",
            FailureReason::Forbidden => "Forbidden",
            FailureReason::Conflict => "Conflict",
            FailureReason::Rejected => "Rejected",
            FailureReason::ApiError => "ApiError",
            FailureReason::Unreachable => "Unreachable",
            FailureReason::NotOwned => "NotOwned",
        }
    }
}

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] RenderError),
    #[error("cannot {action} {kind} {name}: {}", describe(source))]
    Api { action: &'static str, kind: String, name: String, source: kube::Error },
    #[error("cannot read the store's password: {0}")]
    Password(#[from] PasswordError),
    #[error("cannot apply {kind} {name}: it exists and is not owned by this store; rename or delete it")]
    NotOwned { kind: String, name: String },
}

impl Error {
    /// Whether retrying may well succeed: a conflict with another writer, a throttled or
    /// failing API server, a connection that broke. One such failure says nothing about the
    /// store's health, so it does not turn the store Degraded (see [`TRANSIENT_FAILURE_GRACE`]).
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Error::Api { source, .. } | Error::Password(PasswordError::Api { source, .. }) => source,
            Error::InvalidSpec(_) | Error::Password(_) | Error::NotOwned { .. } => return false,
        };
        match source {
            kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
            kube::Error::HyperError(_) | kube::Error::Service(_) => true,
            _ => false,
        }
    }

    pub fn reason(&self) -> FailureReason {
        match self {
            Error::InvalidSpec(_) => FailureReason::InvalidSpec,
            Error::Api { source, .. } | Error::Password(PasswordError::Api { source, .. }) => classify(source),
            // The Secret the spec names cannot be what the store reads either.
            Error::Password(_) => FailureReason::InvalidSpec,
            Error::NotOwned { .. } => FailureReason::NotOwned,
        }
    }
}

fn classify(error: &kube::Error) -> FailureReason {
    match error {
        kube::Error::Api(status) => match status.code {
            403 => FailureReason::Forbidden,
            409 => FailureReason::Conflict,
            400 | 422 => FailureReason::Rejected,
            _ => FailureReason::ApiError,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => FailureReason::Unreachable,
        _ => FailureReason::ApiError,
    }
}

/// The API server's own message for an API error, which says what is wrong; the error's
/// display otherwise.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    settings: Settings,
    backoff: Backoff,
    pod_address: PodAddress,
    store_timeouts: Timeouts,
    transient_failure_grace: Duration,
}

impl Context {
    /// `instance` names this operator replica in Events (its pod name).
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: CONTROLLER_NAME.to_owned(), instance };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            backoff: Backoff::new(Duration::from_secs(1), RESYNC_INTERVAL),
            transient_failure_grace: TRANSIENT_FAILURE_GRACE,
            pod_address: Arc::new(pod_ip_address),
            store_timeouts: Timeouts::default(),
        }
    }

    /// Reaches store pods at the addresses `pod_address` gives instead of their pod IPs: the
    /// seam through which tests stand local `cstore serve` processes in for pods.
    pub fn with_pod_address(mut self, pod_address: PodAddress) -> Self {
        self.pod_address = pod_address;
        self
    }

    /// How long transient failures leave a store's conditions alone (default
    /// [`TRANSIENT_FAILURE_GRACE`]); tests shorten it.
    pub fn with_transient_failure_grace(mut self, grace: Duration) -> Self {
        self.transient_failure_grace = grace;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Reconciles one store, recording the outcome in metrics, Events, its status and its span
/// (whose trace id the duration metric carries as an exemplar).
#[tracing::instrument(skip_all, fields(
    otel.kind = "internal",
    otel.status_code = Empty,
    otel.status_description = Empty,
    k8s.namespace.name = store.namespace().unwrap_or_default(),
    cstore.store = %store.name_any(),
    cstore.generation = store.metadata.generation,
    cstore.outcome = Empty,
    cstore.duration_ms = Empty,
))]
pub async fn reconcile(store: Arc<ConcurrentStore>, context: Arc<Context>) -> Result<Action, Error> {
    let timer = context.metrics.reconcile_started();
    let result = reconcile_store(&store, &context).await;
    match &result {
        Ok(_) => context.backoff.reset(&store),
        Err(error) => report_failure(&store, &context, error).await,
    }
    let span = Span::current();
    let elapsed = timer.finish(result.as_ref().err().map(Error::reason), trace_id(&span));
    span.record("cstore.duration_ms", elapsed.as_secs_f64() * 1000.0);
    match &result {
        Ok(_) => span.record("cstore.outcome", "Success"),
        Err(error) => {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", error.to_string());
            span.record("cstore.outcome", error.reason().label())
        }
    };
    tracing::debug!(?elapsed, ok = result.is_ok(), "reconciled");
    result
}

/// The trace id of `span` when it is sampled and exported, for the duration exemplar.
fn trace_id(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_sampled().then(|| span_context.trace_id().to_string())
}

/// What the controller does after a failed reconcile: retry this store after a delay that
/// doubles with each consecutive failure, so a broken store does not hammer the API server
/// while the others keep their pace.
pub fn error_policy(store: Arc<ConcurrentStore>, _error: &Error, context: Arc<Context>) -> Action {
    Action::requeue(context.backoff.next_delay(&store))
}

async fn reconcile_store(store: &ConcurrentStore, context: &Context) -> Result<Action, Error> {
    if store.metadata.deletion_timestamp.is_some() {
        // The garbage collector is deleting the children; recreating them would race it.
        return Ok(Action::await_change());
    }
    let desired = Desired::render(store, &context.settings)?;
    let namespace = store.namespace().ok_or(RenderError::MissingMetadata("namespace"))?;
    let client = &context.client;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    ensure(store, context, &config_maps, desired.config_map).await?;
    // Before the Deployment, so that its pod finds the claim. Without persistence a claim
    // is left as it is: turning persistence off must not delete data (whenDeleted decides
    // when the claim goes), and turning it on again uses the claim again.
    if let Some(claim) = desired.persistent_volume_claim {
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
        ensure(store, context, &claims, claim).await?;
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    drop_rolling_update(&deployments, &store.name_any()).await?;
    let deployment = ensure(store, context, &deployments, desired.deployment).await?;
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    ensure(store, context, &services, desired.service).await?;
    let budgets = Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace);
    match desired.pod_disruption_budget {
        Some(budget) => {
            ensure(store, context, &budgets, budget).await?;
        }
        None => remove_owned(store, context, &budgets).await?,
    }

    let (pods, crashed) = reconfigure(store, context, &namespace, desired.live_settings, desired.resp_port).await?;
    let observation = Observation::Applied { deployment: &deployment, pods: &pods, crashes: &crashed };
    let status = next_status(store, observation, Timestamp::now());
    warn_of_persistence_failure(store, context, &status).await;
    write_status(store, context, status).await?;
    // Rollout progress needs no polling: the Deployment's status changes trigger reconciles.
    // A live migration changes no object, so its progress is polled.
    Ok(Action::requeue(match Convergence::of(&pods, store.spec.strategy, store.spec.shards) {
        Convergence::Converged => RESYNC_INTERVAL,
        Convergence::Converging => RECONFIGURING_POLL_INTERVAL,
        Convergence::Blocked => REFUSED_RETRY_INTERVAL,
    }))
}

/// Tells every running pod of the store the spec's live settings and reports what each runs,
/// and which store containers crashed. A pod that cannot be reached is reported, not an
/// error: the reconcile goes on and the status says why.
async fn reconfigure(
    store: &ConcurrentStore,
    context: &Context,
    namespace: &str,
    settings: LiveSettings,
    port: u16,
) -> Result<(Vec<PodReport>, Vec<Crash>), Error> {
    let name = store.name_any();
    let pods = Api::<Pod>::namespaced(context.client.clone(), namespace);
    let listed = traced("list", "Pod", &name, pods.list(&ListParams::default().labels(&pod_selector(&name))))
        .await
        .map_err(|source| api_error("list the pods of", "ConcurrentStore", &name, source))?;
    if listed.items.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let password = match &store.spec.auth {
        Some(auth) => {
            let secrets = Api::<Secret>::namespaced(context.client.clone(), namespace);
            Some(read_password(&secrets, &auth.secret_ref.name, &auth.secret_ref.key).await?)
        }
        None => None,
    };
    let target = Target {
        settings,
        port,
        password: password.as_deref(),
        address: &context.pod_address,
        timeouts: context.store_timeouts,
        metrics: &context.metrics,
    };
    Ok((reconfigure_pods(&listed.items, &target).await, crashes(&listed.items)))
}

/// A Warning Event when PersistenceHealthy turns False, or False for another reason: once per
/// failure, not once per reconcile.
async fn warn_of_persistence_failure(store: &ConcurrentStore, context: &Context, next: &ConcurrentStoreStatus) {
    let find = |status: Option<&ConcurrentStoreStatus>| {
        status?.conditions.iter().find(|condition| condition.type_ == PERSISTENCE_HEALTHY).cloned()
    };
    let Some(now) = find(Some(next)).filter(|condition| condition.status == "False") else {
        return;
    };
    let before = find(store.status.as_ref());
    if before.is_some_and(|before| before.status == now.status && before.reason == now.reason) {
        return;
    }
    publish(store, context, EventType::Warning, &now.reason, now.message, None).await;
}

/// Switches a Deployment made before stores used the Recreate strategy. It carries the API
/// server's default `rollingUpdate` block, which the API server refuses beside
/// `type: Recreate`, and which a server-side apply cannot remove: no field manager of ours owns
/// it. One JSON merge patch removes it (what `kubectl apply` does with its retainKeys).
async fn drop_rolling_update(deployments: &Api<Deployment>, name: &str) -> Result<(), Error> {
    let current = traced("get", "Deployment", name, deployments.get_opt(name))
        .await
        .map_err(|source| api_error("read", "Deployment", name, source))?;
    let strategy = current.as_ref().and_then(|deployment| deployment.spec.as_ref()?.strategy.as_ref());
    if strategy.is_none_or(|strategy| strategy.rolling_update.is_none()) {
        return Ok(());
    }
    let patch = serde_json::json!({"spec": {"strategy": {"type": ROLLOUT_STRATEGY, "rollingUpdate": null}}});
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    traced("patch", "Deployment", name, deployments.patch(name, &params, &Patch::Merge(&patch)))
        .await
        .map_err(|source| api_error("switch to the Recreate strategy", "Deployment", name, source))?;
    info!(%name, "switched the Deployment to the Recreate strategy");
    Ok(())
}

/// Applies one child if it drifted, with an Event saying what changed.
async fn ensure<K>(store: &ConcurrentStore, context: &Context, api: &Api<K>, desired: K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.name_any();
    let (child, change) = apply(api, desired).await.map_err(|error| match error {
        ApplyError::Api(source) => api_error("apply", &K::kind(&()), &name, source),
        ApplyError::NotOwned => Error::NotOwned { kind: K::kind(&()).into_owned(), name: name.clone() },
    })?;
    let verb = match change {
        Change::Created => "Created",
        Change::Updated => "Updated",
        Change::Unchanged => return Ok(child),
    };
    info!(kind = %K::kind(&()), %name, "{}", verb.to_lowercase());
    let note = format!("{verb} {} {name}", K::kind(&()));
    publish(store, context, EventType::Normal, verb, note, Some(child.object_ref(&()))).await;
    Ok(child)
}

/// Deletes the store's child of kind `K` (named like the store) if it exists and is the
/// store's own: one the store no longer needs, such as the budget after a scale to one replica.
async fn remove_owned<K>(store: &ConcurrentStore, context: &Context, api: &Api<K>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let name = store.name_any();
    let kind = K::kind(&());
    let existing = traced("get", &kind, &name, api.get_opt(&name))
        .await
        .map_err(|source| api_error("read", &kind, &name, source))?;
    let owned = existing
        .is_some_and(|child| child.owner_references().iter().any(|owner| Some(&owner.uid) == store.uid().as_ref()));
    if !owned {
        return Ok(());
    }
    match traced("delete", &kind, &name, api.delete(&name, &DeleteParams::default())).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(source) => return Err(api_error("delete", &kind, &name, source)),
    }
    info!(%kind, %name, "deleted");
    publish(store, context, EventType::Normal, "Deleted", format!("Deleted {kind} {name}"), None).await;
    Ok(())
}

/// Writes the status with server-side apply, unless it is already what the store shows.
async fn write_status(store: &ConcurrentStore, context: &Context, status: ConcurrentStoreStatus) -> Result<(), Error> {
    if store.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let name = store.name_any();
    let api = Api::<ConcurrentStore>::namespaced(context.client.clone(), &store.namespace().unwrap_or_default());
    let mut patch = serde_json::json!({
        "apiVersion": ConcurrentStore::api_version(&()),
        "kind": ConcurrentStore::kind(&()),
        "status": status,
    });
    // strategy and shards come and go with what the pods report. An unset one is sent as an
    // explicit null (both fields are nullable in the schema), so the old value goes whatever
    // the apply implementation: server-side apply stores the null, and one that merges
    // patches (kube-fake-client) deletes the field; omitted, a merge would keep the old value.
    for cleared in ["strategy", "shards"] {
        if patch["status"][cleared].is_null() {
            patch["status"][cleared] = serde_json::Value::Null;
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    traced("apply status", "ConcurrentStore", &name, api.patch_status(&name, &params, &Patch::Apply(&patch)))
        .await
        .map_err(|source| api_error("update the status of", "ConcurrentStore", &name, source))?;
    Ok(())
}

/// Logs a failure, records it in the status (Degraded) and as a Warning Event. Failing to
/// record it is logged only: the reconcile's own error is what the caller must see.
async fn report_failure(store: &ConcurrentStore, context: &Context, error: &Error) {
    let reason = error.reason().label();
    let message = error.to_string();
    warn!(reason, %message, transient = error.is_transient(), "reconcile failed");
    let tolerated = error.is_transient() && context.backoff.failing_for(store) < context.transient_failure_grace;
    if !tolerated {
        let status = next_status(store, Observation::Failed { reason, message: &message }, Timestamp::now());
        if let Err(status_error) = write_status(store, context, status).await {
            warn!(error = %status_error, "cannot record the failure in the status");
        }
    }
    publish(store, context, EventType::Warning, reason, message, None).await;
}

/// Publishes an Event about the store; `related` is the child it concerns. Events are best
/// effort: a lost one is logged, never a reason to fail or retry the reconcile.
async fn publish(
    store: &ConcurrentStore,
    context: &Context,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<k8s_openapi::api::core::v1::ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, MAX_EVENT_NOTE_BYTES)),
        action: "Reconcile".to_owned(),
        secondary: related,
    };
    let published =
        traced("create", "Event", &store.name_any(), context.recorder.publish(&event, &store.object_ref(&()))).await;
    if let Err(error) = published {
        warn!(%error, reason, "cannot publish an Event");
    }
}

/// The API server refuses Event notes longer than 1 kB.
const MAX_EVENT_NOTE_BYTES: usize = 1024;

fn truncate(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn api_error(action: &'static str, kind: &str, name: &str, source: kube::Error) -> Error {
    Error::Api { action, kind: kind.to_owned(), name: name.to_owned(), source }
}

/// Consecutive failures per store, for an exponential retry delay.
struct Backoff {
    first: Duration,
    max: Duration,
    /// Per store: consecutive failures, and when the first of them was counted.
    failures: Mutex<HashMap<ObjectRef<ConcurrentStore>, (u32, Instant)>>,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max, failures: Mutex::new(HashMap::new()) }
    }

    /// Counts a failure of `store` and returns how long to wait before retrying it: `first`,
    /// then twice as long after each further failure, at most `max`.
    fn next_delay(&self, store: &ConcurrentStore) -> Duration {
        let mut failures = self.failures.lock();
        let (count, _) = failures.entry(ObjectRef::from(store)).or_insert((0, Instant::now()));
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(*count - 1);
        self.first.saturating_mul(factor).min(self.max)
    }

    fn reset(&self, store: &ConcurrentStore) {
        self.failures.lock().remove(&ObjectRef::from(store));
    }

    /// How long `store` has been failing: since the first of its consecutive failures
    /// counted so far (zero before the first is counted).
    fn failing_for(&self, store: &ConcurrentStore) -> Duration {
        self.failures.lock().get(&ObjectRef::from(store)).map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_store_up_to_the_cap_and_resets_on_success() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut store = ConcurrentStore::new("a", Default::default());
        store.metadata.namespace = Some("n".into());
        let mut other = store.clone();
        other.metadata.name = Some("b".into());

        let delays: Vec<u64> = (0..12).map(|_| backoff.next_delay(&store).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff.next_delay(&other), Duration::from_secs(1), "each store has its own count");
        backoff.reset(&store);
        assert_eq!(backoff.next_delay(&store), Duration::from_secs(1));
        for _ in 0..100 {
            backoff.next_delay(&store);
        }
        assert_eq!(backoff.next_delay(&store), Duration::from_secs(300), "no overflow after many failures");
    }

    #[test]
    fn api_errors_are_classified_for_metrics_and_conditions() {
        let api = |code: u16| Error::Api {
            action: "apply",
            kind: "Deployment".into(),
            name: "a".into(),
            source: kube::Error::Api(Box::new(kube::core::Status::failure("nope", "Reason").with_code(code))),
        };
        for (code, reason) in [
            (403, FailureReason::Forbidden),
            (409, FailureReason::Conflict),
            (422, FailureReason::Rejected),
            (500, FailureReason::ApiError),
        ] {
            assert_eq!(api(code).reason(), reason, "{code}");
        }
        assert_eq!(api(403).to_string(), "cannot apply Deployment a: nope (403)");
    }

    #[test]
    fn event_notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("short".to_owned(), 1024), "short");
    }
}
