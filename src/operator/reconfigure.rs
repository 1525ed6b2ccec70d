//! Live reconfiguration, the talking part: the operator connects to each running pod of a
//! store, sends the spec's live settings in one CONFIG SET when the pod needs them (the
//! decision is `live::needs_config_set`), and reads back the engine it runs.
//!
//! Why the operator pushes CONFIG SET rather than letting each store re-read its mounted
//! ConfigMap: the kubelet updates a ConfigMap volume only after its sync delay (a minute or
//! more), so a file watch could not reach every pod within seconds, and nothing would report
//! back which pods had applied it. A CONFIG SET reaches a pod in one round trip, its reply says
//! whether the store accepted the settings, and `INFO cstore` then says what it runs, which is
//! what the status shows. The ConfigMap still holds the full config, so a pod that restarts
//! starts with the current spec.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;
use tracing::field::Empty;
use tracing::{Instrument as _, Span, debug, info, warn};

use super::api_call::traced;
use super::live::{
    EngineInfo, InfoError, LiveSettings, PersistenceInfo, PodFailure, PodReport, needs_config_set, pods_to_reach,
};
use super::metrics::Metrics;
use super::store_client::{StoreClient, StoreError, StoreFailure, Timeouts};
use crate::telemetry;

/// Where the operator reaches a pod's RESP port (given as the second argument). In a cluster
/// that is the pod's IP; tests map pods to local `cstore serve` processes.
pub type PodAddress = Arc<dyn Fn(&Pod, u16) -> Option<SocketAddr> + Send + Sync>;

/// The pod's own IP (`status.podIP`), which the operator reaches directly: the Service would
/// pick one pod at random, and every pod must be told.
pub fn pod_ip_address(pod: &Pod, port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// What every pod of one store is brought to, and how to reach it.
pub struct Target<'a> {
    pub settings: LiveSettings,
    /// The store's RESP port, from its rendered config.
    pub port: u16,
    /// The store's password when it requires one.
    pub password: Option<&'a str>,
    pub address: &'a PodAddress,
    pub timeouts: Timeouts,
    pub metrics: &'a Metrics,
}

/// Configures every running pod in `pods` (concurrently, so one slow pod delays the others by
/// at most its timeouts) and reports each one's engine, in pod name order.
pub async fn reconfigure_pods(pods: &[Pod], target: &Target<'_>) -> Vec<PodReport> {
    let reports = pods_to_reach(pods).into_iter().map(|pod| {
        let span = tracing::info_span!(
            "configure pod",
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            k8s.pod.name = %pod.name_any(),
        );
        report(pod, target).instrument(span)
    });
    futures::future::join_all(reports).await
}

/// Configures one pod and reports its engine, or why it could not; a failure is counted,
/// logged (quietly when waiting will do) and recorded as the span's error.
async fn report(pod: &Pod, target: &Target<'_>) -> PodReport {
    let outcome = match (target.address)(pod, target.port) {
        Some(address) => reconfigure_pod(address, target).await.map_err(|error| {
            let failure = error.failure();
            target.metrics.store_request_failed(failure);
            if failure.is_transient() {
                debug!(%error, "cannot configure the pod yet");
            } else {
                warn!(%error, "cannot configure the pod");
            }
            PodFailure { failure, message: error.to_string() }
        }),
        None => Err(PodFailure { failure: StoreFailure::Unreachable, message: "the pod has no IP yet".into() }),
    };
    if let Err(failure) = &outcome {
        let span = Span::current();
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", failure.message.as_str());
    }
    let (outcome, persistence) = match outcome {
        Ok((engine, persistence)) => (Ok(engine), persistence),
        Err(failure) => (Err(failure), None),
    };
    PodReport { name: pod.name_any(), outcome, persistence }
}

/// Why a pod could not be configured or read.
#[derive(Debug, thiserror::Error)]
enum PodError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Info(#[from] InfoError),
}

impl PodError {
    fn failure(&self) -> StoreFailure {
        match self {
            PodError::Store(error) => error.failure(),
            PodError::Info(_) => StoreFailure::BadReply,
        }
    }
}

/// Configures one pod, and reads its engine and, with persistence, how its saves went.
async fn reconfigure_pod(
    address: SocketAddr,
    target: &Target<'_>,
) -> Result<(EngineInfo, Option<PersistenceInfo>), PodError> {
    let mut client = StoreClient::connect(address, target.password, target.timeouts).await?;
    let engine = configure_engine(&mut client, target).await?;
    let persistence = match target.settings.persistence {
        Some(_) => Some(PersistenceInfo::parse(&client.info("persistence").await?)?),
        None => None,
    };
    Ok((engine, persistence))
}

async fn configure_engine(client: &mut StoreClient, target: &Target<'_>) -> Result<EngineInfo, PodError> {
    let configured = LiveSettings::from_config_get(&client.config_get(&target.settings.parameters()).await?);
    let running = EngineInfo::parse(&client.info("cstore").await?)?;
    if !needs_config_set(&target.settings, configured.as_ref(), &running) {
        return Ok(running);
    }
    // The store traces its CONFIG SET as a child of this pod's span, in the reconcile's trace,
    // and its migration span links to that: the trace shows which reconcile changed the store.
    if let Some(traceparent) = telemetry::propagation::current_traceparent() {
        match client.trace_next(&traceparent).await {
            Ok(()) => {}
            // A store from before CLIENT TRACEPARENT: the change goes through, untraced.
            Err(error @ StoreError::Refused { .. }) => debug!(%error, "the store takes no trace context"),
            Err(error) => return Err(error.into()),
        }
    }
    // The store answers +OK once it accepted the settings and started (or queued) the
    // migration; the engine read next shows how far it got.
    client.config_set(&target.settings.config_set_pairs()).await?;
    target.metrics.live_reconfiguration_sent();
    info!(settings = ?target.settings, "sent the spec's live settings");
    Ok(EngineInfo::parse(&client.info("cstore").await?)?)
}

/// Why the store's password cannot be read from its Secret.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot read Secret {name}: {source}")]
    Api { name: String, source: kube::Error },
    #[error("Secret {name} has no key {key}")]
    MissingKey { name: String, key: String },
    #[error("the password in Secret {name} key {key} is not UTF-8")]
    NotUtf8 { name: String, key: String },
}

/// The password the store's pods read from `secret_name`/`key`, trailing newlines dropped as
/// the store drops them.
pub async fn read_password(secrets: &Api<Secret>, secret_name: &str, key: &str) -> Result<String, PasswordError> {
    let secret = traced("get", "Secret", secret_name, secrets.get(secret_name))
        .await
        .map_err(|source| PasswordError::Api { name: secret_name.to_owned(), source })?;
    let missing = || PasswordError::MissingKey { name: secret_name.to_owned(), key: key.to_owned() };
    let bytes = secret.data.as_ref().and_then(|data| data.get(key)).ok_or_else(missing)?;
    let password = String::from_utf8(bytes.0.clone())
        .map_err(|_| PasswordError::NotUtf8 { name: secret_name.to_owned(), key: key.to_owned() })?;
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}
