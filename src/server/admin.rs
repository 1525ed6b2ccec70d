//! The admin HTTP server, on its own port so that probes and scrapes never queue behind
//! Redis clients: `/healthz` (the process is alive), `/readyz` (it accepts clients; 503 while
//! starting or draining, so Kubernetes stops routing to a pod that is shutting down) and
//! `/metrics` (Prometheus).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::metrics::{self, Metrics};
use crate::engine::Databases;

/// Whether the server accepts clients, shared between the server (which changes it) and
/// `/readyz` (which reports it). Clones share one state; a new one is starting.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

/// The phases `/readyz` reports, stored as `u8` in [`Readiness`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not listening for clients yet.
    Starting = 0,
    /// Accepting clients.
    Ready = 1,
    /// Shutting down: no new clients; open ones are finishing.
    Draining = 2,
}

impl Readiness {
    pub fn new() -> Self {
        Readiness::default()
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Call once the Redis listener accepts connections.
    pub fn set_ready(&self) {
        self.0.store(Phase::Ready as u8, Relaxed);
    }

    /// Call when shutdown begins, before connections are drained.
    pub fn set_draining(&self) {
        self.0.store(Phase::Draining as u8, Relaxed);
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// Read at scrape time for the store-wide metrics.
    pub databases: Arc<Databases>,
}

/// The admin routes; every other path answers 404.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_metrics))
        .with_state(state)
}

/// Serves the admin endpoints on `listener` until `shutdown` completes, then lets requests
/// in flight finish. Keep it running while draining, so that `/readyz` can say so.
pub async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    match state.readiness.phase() {
        Phase::Ready => (StatusCode::OK, "ready"),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
    }
}

async fn prometheus_metrics(State(state): State<AdminState>) -> Response {
    match state.metrics.encode(&state.databases.stats(), &state.databases.engine_status()) {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::engine::{EngineConfig, SetOptions, Store, Strategy};
    use crate::server::metrics::Outcome;

    /// An admin server on a free port, stopped by dropping (or sending on) `stop`.
    struct Running {
        address: SocketAddr,
        state: AdminState,
        stop: oneshot::Sender<()>,
        server: JoinHandle<io::Result<()>>,
    }

    async fn start() -> Running {
        let engine = EngineConfig { strategy: Strategy::Mutex, shards: 2 };
        let state = AdminState {
            metrics: Arc::new(Metrics::new(&["get", "set"])),
            readiness: Readiness::new(),
            databases: Arc::new(Store::builder().config(engine).build_databases(16).unwrap()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_admin(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Running { address, state, stop, server }
    }

    struct HttpResponse {
        status: u16,
        headers: String,
        body: String,
    }

    /// One HTTP/1.1 request on a fresh connection, read to the end.
    async fn request(address: SocketAddr, method: &str, path: &str) -> HttpResponse {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: cstore\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        HttpResponse { status, headers: headers.to_ascii_lowercase(), body: body.to_owned() }
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let running = start().await;
        let response = request(running.address, "GET", "/healthz").await;
        assert_eq!((response.status, response.body.as_str()), (200, "ok"));
    }

    #[tokio::test]
    async fn readyz_follows_the_server_phase() {
        let running = start().await;
        let phase_answer = || async {
            let response = request(running.address, "GET", "/readyz").await;
            (response.status, response.body)
        };
        assert_eq!(phase_answer().await, (503, "starting".to_owned()));
        running.state.readiness.set_ready();
        assert_eq!(phase_answer().await, (200, "ready".to_owned()));
        running.state.readiness.set_draining();
        assert_eq!(phase_answer().await, (503, "draining".to_owned()));
        assert_eq!(running.state.readiness.phase(), Phase::Draining);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_with_live_store_numbers() {
        let running = start().await;
        running.state.metrics.record_command(1, Outcome::Ok, Duration::from_micros(20));
        running
            .state
            .databases
            .get(0)
            .unwrap()
            .set(&Bytes::from_static(b"k"), Bytes::from_static(b"v"), SetOptions::default())
            .unwrap();
        let response = request(running.address, "GET", "/metrics").await;
        assert_eq!(response.status, 200);
        assert!(
            response.headers.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{}",
            response.headers
        );
        let version = env!("CARGO_PKG_VERSION");
        let build_info = format!("cstore_build_info{{version=\"{version}\"}} 1");
        let engine_info = "cstore_engine_info{strategy=\"Mutex\",shards=\"2\"} 1";
        for line in
            ["cstore_commands_total{command=\"set\",outcome=\"ok\"} 1", "cstore_keys 1", &build_info, engine_info]
        {
            assert!(response.body.lines().any(|l| l == line), "missing {line:?} in\n{}", response.body);
        }
        assert!(response.body.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let running = start().await;
        assert_eq!(request(running.address, "GET", "/nope").await.status, 404);
        assert_eq!(request(running.address, "POST", "/metrics").await.status, 405);
    }

    #[tokio::test]
    async fn shutdown_stops_the_server_cleanly() {
        let running = start().await;
        assert_eq!(request(running.address, "GET", "/healthz").await.status, 200);
        running.stop.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), running.server).await;
        result.expect("the server stops promptly").unwrap().unwrap();
        assert!(TcpStream::connect(running.address).await.is_err(), "the port is closed");
    }
}
