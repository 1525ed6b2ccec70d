//! `cstore operator`: the controller for `ConcurrentStore`.
//!
//! The flow is one way: custom resource -> desired objects and live settings (`resources`,
//! pure) -> server-side apply of what drifted (`apply`) -> live settings sent to each running
//! pod over RESP (`reconfigure`, deciding with the pure `live`, talking through
//! `store_client`) -> status (`status`, pure), driven per store by `reconcile`.
//! This module wires it up: the API client, a check that the CRD is installed, leader election
//! on a Lease so that only one replica reconciles, one `Controller` per watched namespace
//! (or one for all), the admin HTTP server, and a shutdown that finishes the reconciles in
//! flight and releases the lease.

pub mod admin;
pub mod api_call;
pub mod apply;
pub mod crd;
pub mod live;
pub mod metrics;
pub mod quantity;
pub mod reconcile;
pub mod reconfigure;
pub mod resources;
pub mod status;
pub mod store_client;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::core::crd::CustomResourceExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource};
use kube_lease_manager::LeaseManagerBuilder;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::crd::ConcurrentStore;
use self::metrics::Metrics;
use self::reconcile::{Context, error_policy, reconcile};
use self::resources::{MANAGED_BY, Settings};
use crate::server::admin::Readiness;
use crate::server::bind;
use crate::server::config::LogFormat;

/// Seconds a leader's lease stays valid without renewal: how long a crashed leader's stores
/// go unreconciled before a standby takes over.
const LEASE_DURATION_SECS: u64 = 15;

/// Seconds before expiry at which the leader renews its lease.
const LEASE_GRACE_SECS: u64 = 5;

/// Flags of `cstore operator`; each can also be given by the environment variable shown.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Namespaces whose ConcurrentStores to manage, repeated or comma-separated; namespaced
    /// RBAC is enough then [default: all namespaces, which needs cluster-wide RBAC]
    #[arg(long = "namespace", env = "CSTORE_WATCH_NAMESPACES", value_delimiter = ',', value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// Image that stores run when their spec names none; the chart passes the operator's own
    #[arg(long, env = "CSTORE_IMAGE", value_name = "IMAGE")]
    pub store_image: String,

    /// IP address the admin HTTP server (/healthz, /readyz, /metrics) binds to; :: is every
    /// IPv6 and IPv4 address (IPv4 only on a host without IPv6)
    #[arg(long, env = "CSTORE_OPERATOR_ADMIN_BIND", value_name = "IP", default_value_t = bind::ALL_ADDRESSES)]
    pub admin_bind: IpAddr,

    /// TCP port of the admin HTTP server; 0 lets the OS pick one
    #[arg(long, env = "CSTORE_OPERATOR_ADMIN_PORT", value_name = "PORT", default_value_t = 8080)]
    pub admin_port: u16,

    /// Reconcile without competing for the leader Lease: for a single replica only, such as
    /// a developer's `cstore operator` against a test cluster
    #[arg(long, env = "CSTORE_DISABLE_LEADER_ELECTION")]
    pub disable_leader_election: bool,

    /// Name of the coordination Lease the operator's replicas compete for
    #[arg(long, env = "CSTORE_LEASE_NAME", value_name = "NAME", default_value = "cstore-operator")]
    pub lease_name: String,

    /// Namespace of the Lease [default: the kubeconfig's or service account's namespace]
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's name in the Lease and in Events [default: a random name in the Lease, none in Events]
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,

    /// Reach every store pod's RESP port at this address instead of its pod IP, to apply live
    /// settings: for an operator running outside the cluster, through a port-forward to a
    /// single-pod store (development, the end-to-end test) [default: the pod IP]
    #[arg(long, env = "CSTORE_OPERATOR_STORE_ADDRESS", value_name = "HOST:PORT")]
    pub store_address: Option<std::net::SocketAddr>,

    /// Log line format
    #[arg(long, env = "CSTORE_LOG_FORMAT", value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub otlp: crate::telemetry::OtlpArgs,
}

/// A shutdown signal every part of the operator can wait on.
type ShutdownSignal = Shared<BoxFuture<'static, ()>>;

/// Runs the operator until `shutdown` completes (SIGTERM): reconciles stop after the ones in
/// flight finish, and the leader lease is released rather than left to expire, so no stale
/// holder remains and a standby takes it at its next check (within the lease duration).
pub async fn run(args: OperatorArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    // rustls picks its crypto provider from its enabled features, and panics when a build
    // enables more than one (a test build may, through dev-dependencies): name ours. An error
    // only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shutdown: ShutdownSignal = shutdown.boxed().shared();
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();

    let listener = bind::listen(args.admin_bind, args.admin_port, "admin").with_context(|| {
        format!("cannot listen on {} for the admin server", SocketAddr::new(args.admin_bind, args.admin_port))
    })?;
    info!(address = %listener.local_addr()?, "admin server listening");
    let (stop_admin, admin_stopped) = watch::channel(());
    let admin = tokio::spawn(admin::serve(listener, Arc::clone(&metrics), readiness.clone(), async move {
        let mut admin_stopped = admin_stopped;
        let _ = admin_stopped.changed().await;
    }));

    let outcome = operate(&args, Arc::clone(&metrics), &readiness, shutdown).await;
    readiness.set_draining();
    drop(stop_admin);
    match admin.await {
        Ok(Err(error)) => warn!(%error, "the admin server failed"),
        Err(error) => warn!(%error, "the admin server task failed"),
        Ok(Ok(())) => {}
    }
    outcome
}

async fn operate(
    args: &OperatorArgs,
    metrics: Arc<Metrics>,
    readiness: &Readiness,
    shutdown: ShutdownSignal,
) -> anyhow::Result<()> {
    let client = Client::try_default().await.context(
        "cannot configure the Kubernetes client: no in-cluster service account and no usable kubeconfig \
         (KUBECONFIG or ~/.kube/config)",
    )?;
    ensure_crd_installed(&client, &args.namespaces).await?;
    let settings = Settings { default_image: args.store_image.clone() };
    let mut context = Context::new(client.clone(), settings, Arc::clone(&metrics), args.identity.clone());
    if let Some(address) = args.store_address {
        context =
            context.with_pod_address(Arc::new(move |_pod: &k8s_openapi::api::core::v1::Pod, _port: u16| Some(address)));
    }
    let context = Arc::new(context);
    readiness.set_ready();

    if args.disable_leader_election {
        info!("leader election disabled: reconciling");
        metrics.set_leader(true);
        run_controllers(&client, &args.namespaces, context, shutdown).await;
        return Ok(());
    }
    let lease_namespace = args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let mut lease = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&lease_namespace)
        .with_duration(LEASE_DURATION_SECS)
        .with_grace(LEASE_GRACE_SECS);
    if let Some(identity) = &args.identity {
        lease = lease.with_identity(identity);
    }
    let lease = lease.build().await.with_context(|| {
        format!("cannot use the leader election Lease {lease_namespace}/{}: check the operator's RBAC", args.lease_name)
    })?;
    let (mut is_leader, lease_task) = lease.watch().await;
    info!(lease = %args.lease_name, namespace = %lease_namespace, "waiting to be elected leader");

    let outcome = lead_while_elected(&client, args, &context, &mut is_leader, shutdown).await;
    metrics.set_leader(false);
    // Closing the channel makes the lease manager release the lease before it returns.
    drop(is_leader);
    match lease_task.await {
        Ok(Ok(_)) => info!("leader lease released"),
        Ok(Err(error)) => warn!(%error, "cannot release the leader lease; it expires in {LEASE_DURATION_SECS}s"),
        Err(error) => warn!(%error, "the lease manager task failed"),
    }
    outcome
}

/// Reconciles whenever this replica holds the lease, until shutdown. Losing the lease stops
/// the controllers at once (another replica now reconciles) and waits to be elected again.
async fn lead_while_elected(
    client: &Client,
    args: &OperatorArgs,
    context: &Arc<Context>,
    is_leader: &mut watch::Receiver<bool>,
    shutdown: ShutdownSignal,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = shutdown.clone() => return Ok(()),
            elected = wait_for(is_leader, true) => elected?,
        }
        info!("elected leader: reconciling");
        context.metrics().set_leader(true);
        tokio::select! {
            () = run_controllers(client, &args.namespaces, Arc::clone(context), shutdown.clone()) => return Ok(()),
            lost = wait_for(is_leader, false) => lost?,
        }
        context.metrics().set_leader(false);
        warn!("lost the leader lease: stopped reconciling");
    }
}

/// Waits until the leadership channel says `leader`.
async fn wait_for(is_leader: &mut watch::Receiver<bool>, leader: bool) -> anyhow::Result<()> {
    while *is_leader.borrow_and_update() != leader {
        if is_leader.changed().await.is_err() {
            bail!("the lease manager stopped");
        }
    }
    Ok(())
}

/// Refuses to start without the CRD, with a message that says how to install it.
async fn ensure_crd_installed(client: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    let (api, scope) = match namespaces.first() {
        Some(namespace) => (Api::<ConcurrentStore>::namespaced(client.clone(), namespace), format!(" in {namespace}")),
        None => (Api::<ConcurrentStore>::all(client.clone()), String::new()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => bail!(
            "the ConcurrentStore CRD ({}) is not installed in this cluster: install it with \
             `kubectl apply -f crds/` or `cstore crd | kubectl apply -f -`, then restart the operator",
            ConcurrentStore::crd_name()
        ),
        Err(kube::Error::Api(status)) if status.code == 403 => bail!(
            "not allowed to list ConcurrentStores{scope}: grant the operator's service account the RBAC of its \
             chart, or pass --namespace for namespaced RBAC ({})",
            status.message
        ),
        Err(error) => Err(error).context("cannot reach the Kubernetes API server to check for the ConcurrentStore CRD"),
    }
}

/// Runs one controller per watched namespace (one for the whole cluster when none is given)
/// until `shutdown`, then lets the reconciles in flight finish.
async fn run_controllers(client: &Client, namespaces: &[String], context: Arc<Context>, shutdown: ShutdownSignal) {
    let scopes: Vec<Option<&str>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.iter().map(|n| Some(n.as_str())).collect() };
    let controllers = scopes.into_iter().map(|namespace| {
        let api = ScopedApi { client: client.clone(), namespace };
        // Only the operator's own children are watched (and cached), not every ConfigMap
        // and Deployment of the cluster.
        let children = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
        Controller::new(api.of::<ConcurrentStore>(), watcher::Config::default())
            .owns(api.of::<ConfigMap>(), children.clone())
            .owns(api.of::<Deployment>(), children.clone())
            .owns(api.of::<Service>(), children.clone())
            .owns(api.of::<PodDisruptionBudget>(), children)
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, Arc::clone(&context))
            .for_each(|outcome| async move { log_controller_outcome(outcome) })
    });
    futures::future::join_all(controllers).await;
}

fn log_controller_outcome<T: std::fmt::Debug, QueueError: std::error::Error>(
    outcome: Result<T, controller::Error<reconcile::Error, QueueError>>,
) {
    match outcome {
        Ok(reconciled) => debug!(?reconciled, "reconciled"),
        // Already logged, counted and written to the status by the reconcile.
        Err(controller::Error::ReconcilerFailed(..)) => {}
        // A store deleted while queued: its children go with it.
        Err(controller::Error::ObjectNotFound(object)) => debug!(%object, "store gone before its reconcile"),
        // Watch errors are retried by the controller with its own backoff.
        Err(error) => warn!(%error, "controller error"),
    }
}

/// Apis of every kind, in one namespace or in all.
struct ScopedApi<'a> {
    client: Client,
    namespace: Option<&'a str>,
}

impl ScopedApi<'_> {
    fn of<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned,
    {
        match self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }
}
