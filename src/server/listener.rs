//! The server's lifecycle: bind both ports, accept clients within `maxclients`, run the
//! expiry sweeper and the admin endpoint, and drain gracefully on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::admin::{self, AdminState, Readiness};
use super::aof::Aof;
use super::bind;
use super::command::COMMANDS;
use super::config::{RuntimeSettings, ServerConfig};
use super::connection;
use super::metrics::Metrics;
use super::persistence::{CRON_INTERVAL, Persistence};
use super::reconfigure::Reconfigurer;
use super::session::{Clients, EVICTION_RETRY};
use super::state::{ServerState, ShutdownRequest};
use crate::engine::{Databases, Store, Strategy, SweepReport, Sweeper};
use crate::telemetry;

/// Sent to a client refused because the server is full, before closing.
const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// A bound, not yet running, server. Binding first lets callers (tests, the operator's
/// probes) learn the actual ports when port 0 was asked for.
pub struct Server {
    state: Arc<ServerState>,
    listener: TcpListener,
    admin_listener: TcpListener,
}

/// How the error that stops a store unable to load its data at startup begins (`cstore serve`
/// prints it as `error: <this>: <cause>`): the operator reads it in a crashed pod's
/// termination message to report the load failure.
pub const LOAD_FAILED: &str = "cannot load the data at startup";

impl Server {
    /// Validates the configuration, builds the store and binds both ports.
    #[tracing::instrument(name = "startup", skip_all, fields(
        cstore.strategy = %config.engine.strategy,
        cstore.shards = config.engine.shards,
        port = config.port,
    ))]
    pub async fn bind(mut config: ServerConfig) -> anyhow::Result<Server> {
        config.validate()?;
        config.max_clients = fit_max_clients_to_file_limit(config.max_clients);
        let settings = RuntimeSettings::from_config(&config)?;
        let databases = Store::builder()
            .config(config.engine)
            .max_value_len(usize::try_from(config.max_bulk_len).unwrap_or(usize::MAX))
            .build_databases(config.databases)
            .context("invalid engine configuration")?;
        let listener = bind::listen(config.bind, config.port, "redis")
            .with_context(|| format!("cannot listen on {}", SocketAddr::new(config.bind, config.port)))?;
        let admin_listener = bind::listen(config.bind, config.admin_port, "admin")
            .with_context(|| format!("cannot listen on {} (admin)", SocketAddr::new(config.bind, config.admin_port)))?;
        // The port asked for may be 0: the span shows the one the OS gave.
        tracing::Span::current().record("port", listener.local_addr()?.port());
        let command_names: Vec<&'static str> = COMMANDS.iter().map(|spec| spec.name).collect();
        let databases = Arc::new(databases);
        let settings = Arc::new(settings);
        let metrics = Arc::new(Metrics::new(&command_names));
        let reconfigurer = Reconfigurer::start(Arc::clone(&databases), Arc::clone(&settings), Arc::clone(&metrics))
            .context("cannot start the migration thread")?;
        let persistence =
            Arc::new(Persistence::new(Arc::clone(&databases), Arc::clone(&settings), Arc::clone(&metrics)));
        let aof = Aof::new(Arc::clone(&databases), Arc::clone(&settings), Arc::clone(&metrics))
            .context("cannot start the AOF writer thread")?;
        let state = ServerState {
            databases,
            never_used: Store::builder().strategy(Strategy::Mutex).shards(1).build().context("the empty store")?,
            settings,
            metrics,
            reconfigurer,
            clients: Arc::new(Clients::default()),
            resp_addr: listener.local_addr()?,
            config,
            started: Instant::now(),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            persistence,
            aof,
            shutdown: ShutdownRequest::default(),
        };
        Ok(Server { state: Arc::new(state), listener, admin_listener })
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.resp_addr
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin_listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, turns not-ready, answers
    /// what connections have already sent, closes them and returns, within the configured
    /// grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { state, listener, admin_listener } = self;
        let config = &state.config;
        let admin_port = admin_listener.local_addr()?.port();
        let databases = Arc::clone(&state.databases);

        // Not ready (503) until the data is loaded.
        let readiness = Readiness::default();
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_state = AdminState { metrics: Arc::clone(&state.metrics), readiness: readiness.clone(), databases };
        let admin = tokio::spawn(admin::serve_admin(admin_listener, admin_state, async {
            let _ = admin_stopped.await;
        }));
        let client_eviction = tokio::spawn(client_eviction_cron(Arc::clone(&state)));

        // Clients are accepted while the data loads and answered -LOADING, as Redis does; the
        // load runs on a thread of its own (not tokio's blocking pool, whose shutdown would
        // wait for a load that a SIGTERM cut short).
        let (connection_done, mut all_done) = mpsc::channel::<()>(1);
        let loaded = start_loading(&state)?;
        tracing::info!(
            port = state.resp_addr.port(),
            admin_port,
            "accepting clients while the data loads (-LOADING until it is in)"
        );
        tokio::pin!(shutdown);
        // In a block: the accept loop borrows the listener, which the drain below drops.
        let background = {
            let accept = accept_loop(&state, &listener, &connection_done);
            tokio::pin!(accept);
            let load_result = tokio::select! {
                () = &mut accept => None,
                () = &mut shutdown => None,
                () = state.shutdown.requested.notified() => None,
                result = loaded => Some(result.unwrap_or_else(|_| Err(anyhow::anyhow!("the startup load thread died")))),
            };
            if let Some(result) = load_result {
                // A load that fails ends the server, with the files untouched.
                result?;
                state.persistence.finish_loading();
                let sweep_state = Arc::clone(&state);
                let sweeper = Sweeper::start(
                    Arc::clone(&state.databases),
                    Duration::from_millis(config.active_expire_interval_ms),
                    move |databases| traced_sweep(&sweep_state, databases),
                )?;
                let cron = tokio::spawn(save_cron(Arc::clone(&state.persistence), Arc::clone(&state.aof)));
                readiness.set_ready();
                // Logged once ready: tests and operators take this line to mean /readyz answers ready.
                tracing::info!(
                    version = env!("CARGO_PKG_VERSION"),
                    strategy = %state.databases.engine_status().running.strategy,
                    shards = state.databases.engine_status().running.shards,
                    databases = state.databases.count(),
                    port = state.resp_addr.port(),
                    admin_port,
                    maxmemory = state.settings.max_memory(),
                    maxmemory_policy = state.settings.max_memory_policy().name(),
                    "cstore serve started"
                );
                tokio::select! {
                    () = &mut accept => {}
                    () = &mut shutdown => {}
                    () = state.shutdown.requested.notified() => {}
                }
                Some((sweeper, cron))
            } else {
                tracing::info!("shutdown asked during the startup load: stopping without saving, as Redis does");
                None
            }
        };
        let sweeper = background.map(|(sweeper, cron)| {
            cron.abort();
            sweeper
        });

        // Drain: not ready, no new clients, answer what was sent, close.
        let open = state.clients.len();
        let drain = async {
            readiness.set_draining();
            drop(listener);
            tracing::info!(open_connections = open, "shutting down: draining connections");
            state.shutdown.begin_drain();
            state.clients.shut_down_all();
            drop(connection_done);
            let grace = Duration::from_secs(config.shutdown_grace_secs);
            if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
                tracing::warn!(
                    open_connections = state.clients.len(),
                    "grace period ended with connections still open"
                );
            }
            client_eviction.abort();
            if let Some(sweeper) = sweeper {
                sweeper.stop();
            }
            // After the drain: everything logged is written and fsynced (SIGTERM, SHUTDOWN).
            let aof = Arc::clone(&state.aof);
            tokio::task::spawn_blocking(move || aof.shutdown()).await.context("the AOF flush panicked")?;
            // After the drain, so that every acknowledged write is in the file.
            let saved = final_save(&state).await;
            let _ = stop_admin.send(());
            admin.await.context("admin endpoint task failed")?.context("admin endpoint failed")?;
            saved?;
            tracing::info!("cstore serve stopped");
            Ok(())
        };
        drain.instrument(tracing::info_span!("shutdown", open_connections = open)).await
    }
}

/// Starts the startup load (then the AOF, which continues from what was loaded) on its own
/// thread; the receiver gets its result.
fn start_loading(state: &Arc<ServerState>) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
    let (done, loaded) = tokio::sync::oneshot::channel();
    let state = Arc::clone(state);
    std::thread::Builder::new()
        .name("startup-load".into())
        .spawn(move || {
            let result = state.persistence.load_at_startup().context(LOAD_FAILED).and_then(|manifest| {
                // A server stopping during the load must not start (or create) the AOF from it.
                if state.shutdown.is_draining() { Ok(()) } else { state.aof.start(manifest) }
            });
            let _ = done.send(result);
        })
        .context("cannot start the startup load thread")?;
    Ok(loaded)
}

/// Checks the save rules at serverCron's pace for the server's life.
async fn save_cron(persistence: Arc<Persistence>, aof: Arc<Aof>) {
    let mut ticks = tokio::time::interval(CRON_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        persistence.cron();
        aof.cron();
    }
}

/// Client eviction at a steady pace, besides the checks connections make when their buffers
/// grow: it catches a limit lowered by CONFIG SET (of `maxmemory-clients` or `maxmemory`) while
/// every client is idle.
async fn client_eviction_cron(state: Arc<ServerState>) {
    let mut ticks = tokio::time::interval(EVICTION_RETRY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        state.evict_clients();
    }
}

/// The save Redis makes when it stops: with save rules set (SIGTERM, plain SHUTDOWN) or
/// SHUTDOWN SAVE, never with SHUTDOWN NOSAVE. A save already running is waited for first.
async fn final_save(state: &Arc<ServerState>) -> anyhow::Result<()> {
    let asked = *state.shutdown.save.lock();
    // Never during the startup load: the store holds part of the data (Redis likewise turns
    // SHUTDOWN SAVE into NOSAVE while loading).
    if state.persistence.is_loading() {
        return Ok(());
    }
    if !asked.unwrap_or_else(|| state.settings.saves_configured()) {
        return Ok(());
    }
    let persistence = Arc::clone(&state.persistence);
    let saved = tokio::task::spawn_blocking(move || {
        loop {
            match persistence.save() {
                Ok(result) => return result,
                // A BGSAVE is under way: its cut is older than the drain, so save again after it.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
    .await
    .context("the final save panicked")?;
    let report = saved.context("the final save before exiting failed")?;
    tracing::info!(keys = report.keys, "saved the final snapshot before exiting");
    Ok(())
}

/// One active-expiry pass, traced as often as commands are when there are keys with an
/// expiry to look at (a pass over none would only add empty spans).
fn traced_sweep(state: &ServerState, databases: &Databases) -> SweepReport {
    if !telemetry::sampler::sample(state.settings.trace_sample_ratio()) || databases.stats().volatile_keys == 0 {
        let report = databases.sweep_expired();
        state.aof.log_removals();
        return report;
    }
    let span = tracing::info_span!("expiry sweep", examined = Empty, expired = Empty);
    let report = span.in_scope(|| databases.sweep_expired());
    // The expired keys go to the AOF as DEL, as Redis propagates them.
    span.in_scope(|| state.aof.log_removals());
    span.record("examined", report.examined);
    span.record("expired", report.expired);
    report
}

/// Descriptors Redis keeps for itself beyond `maxclients` (listening sockets, files, logs):
/// `CONFIG_MIN_RESERVED_FDS`.
const RESERVED_FDS: u64 = 32;

/// Makes room for `maxclients` connections under RLIMIT_NOFILE, as Redis's
/// `adjustOpenFilesLimit` does: raises the soft limit toward `maxclients` + 32 (up to the hard
/// limit), and if that is not enough lowers `maxclients` to what fits, with a warning.
/// Returns the `maxclients` to run with.
fn fit_max_clients_to_file_limit(max_clients: u32) -> u32 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = u64::from(max_clients) + RESERVED_FDS;
    let limit = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= needed {
        return max_clients;
    }
    let ceiling = limit.maximum.unwrap_or(u64::MAX);
    let wanted = needed.min(ceiling);
    let raised = if wanted > current {
        match setrlimit(Resource::Nofile, rustix::process::Rlimit { current: Some(wanted), maximum: limit.maximum }) {
            Ok(()) => wanted,
            Err(error) => {
                tracing::warn!(%error, wanted, "cannot raise the open files limit (RLIMIT_NOFILE)");
                current
            }
        }
    } else {
        current
    };
    if raised >= needed {
        tracing::info!(open_files_limit = raised, "raised the open files limit (RLIMIT_NOFILE) for maxclients");
        return max_clients;
    }
    let fitting = u32::try_from(raised.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(max_clients);
    tracing::warn!(
        maxclients = max_clients,
        open_files_limit = raised,
        lowered_to = fitting,
        "the open files limit (RLIMIT_NOFILE) is too low for maxclients: maxclients lowered; raise it with ulimit -n"
    );
    fitting
}

/// Applies `tcp-keepalive` to an accepted socket as Redis's `anetKeepAlive` does: the first
/// probe after `interval` of silence, then probes every third of it, three unanswered probes
/// closing the connection, so a dead peer frees its slot after about twice the interval.
fn set_keepalive(stream: &TcpStream, interval: Option<Duration>) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let Some(interval) = interval else { return socket.set_keepalive(false) };
    let probes = (interval / 3).max(Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new().with_time(interval).with_interval(probes).with_retries(3);
    socket.set_tcp_keepalive(&keepalive)
}

/// Pause after a failed accept, so that running out of descriptors does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning per this long for failed accepts: under EMFILE every attempt fails.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts clients forever. Accept errors (such as running out of file descriptors) are
/// logged (at most once a second, with how many failed since) and retried after a pause
/// rather than ending the server.
async fn accept_loop(state: &Arc<ServerState>, listener: &TcpListener, connection_done: &mpsc::Sender<()>) {
    let mut failed_since_warning: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                failed_since_warning += 1;
                if last_warning.is_none_or(|at| at.elapsed() >= ACCEPT_WARNING_INTERVAL) {
                    tracing::warn!(%error, failed_accepts = failed_since_warning, "accept failed; retrying");
                    last_warning = Some(Instant::now());
                    failed_since_warning = 0;
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        state.connections_received.fetch_add(1, Ordering::Relaxed);
        if state.clients.len() >= usize::try_from(state.settings.max_clients()).unwrap_or(usize::MAX) {
            state.rejected_connections.fetch_add(1, Ordering::Relaxed);
            state.metrics.connection_rejected();
            tokio::spawn(reject(stream));
            continue;
        }
        // Low latency matters more than packet count for request/reply traffic.
        let _ = stream.set_nodelay(true);
        if let Err(error) = set_keepalive(&stream, state.settings.tcp_keepalive()) {
            tracing::debug!(%error, "cannot set TCP keepalive on a client socket");
        }
        let local = stream.local_addr().unwrap_or(state.resp_addr);
        let registration = state.clients.register(bind::canonical(peer), bind::canonical(local));
        let done = connection_done.clone();
        let state = Arc::clone(state);
        tokio::spawn(async move {
            connection::serve(state, stream, registration).await;
            drop(done);
        });
    }
}

/// Tells a client the server is full, then closes the connection.
async fn reject(mut stream: TcpStream) {
    let _ = stream.write_all(MAX_CLIENTS_REPLY).await;
    let _ = stream.shutdown().await;
}
