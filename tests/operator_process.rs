//! The real `cstore operator` process against a stub API server on loopback that serves
//! empty lists and holds watches open: startup, the admin endpoints, the missing-CRD message,
//! shutdown on SIGTERM, and the process's resident memory once idle (printed; see it with
//! `-- --nocapture`). Leader election is off here: the stub has no Lease semantics.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the stub answers for ConcurrentStores.
#[derive(Clone, Copy)]
enum Crd {
    Installed,
    Missing,
}

/// Serves lists (empty) and watches (open, silent) for every path; 404 for ConcurrentStores
/// when the CRD is missing.
async fn start_stub_api(crd: Crd) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().fallback(move |uri: Uri| async move { answer(crd, &uri) });
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

fn answer(crd: Crd, uri: &Uri) -> Response {
    if matches!(crd, Crd::Missing) && uri.path().contains("/concurrentstores") {
        let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"the server could not find the requested resource"}"#;
        return (StatusCode::NOT_FOUND, [("content-type", "application/json")], status).into_response();
    }
    if uri.query().is_some_and(|query| query.contains("watch=true") || query.contains("watch=1")) {
        let silence = futures::stream::pending::<Result<Bytes, Infallible>>();
        return ([("content-type", "application/json")], Body::from_stream(silence)).into_response();
    }
    let list = r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"1"},"items":[]}"#;
    ([("content-type", "application/json")], list).into_response()
}

/// A kubeconfig for the stub, in a directory removed on drop.
struct Kubeconfig {
    dir: PathBuf,
}

impl Kubeconfig {
    fn for_server(address: SocketAddr, name: &str) -> Kubeconfig {
        let dir = std::env::temp_dir().join(format!("cstore-operator-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: http://{address}\n\
             contexts:\n- name: stub\n  context:\n    cluster: stub\n    user: stub\n    namespace: default\n\
             current-context: stub\nusers:\n- name: stub\n  user:\n    token: stub\n"
        );
        std::fs::write(dir.join("config"), config).unwrap();
        Kubeconfig { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("config")
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn operator(kubeconfig: &Kubeconfig, admin_port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cstore"));
    command
        .args(["operator", "--store-image", "cstore:test", "--disable-leader-election"])
        // The default admin bind: every address, IPv6 and IPv4.
        .args(["--admin-port", &admin_port.to_string()])
        .env("KUBECONFIG", kubeconfig.path())
        .env_remove("CSTORE_WATCH_NAMESPACES")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// One HTTP/1.1 GET over 127.0.0.1 on a fresh connection: the status code and body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_from(IpAddr::V4(Ipv4Addr::LOCALHOST), port, path).await
}

async fn get_from(ip: IpAddr, port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((ip, port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Resident memory of a process, in kibibytes, from /proc.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn terminate(child: &Child) {
    // The shell's builtin kill: no procps needed.
    let sent = Command::new("sh").args(["-c", &format!("kill -TERM {}", child.id())]).status().unwrap();
    assert!(sent.success());
}

/// Waits for the child to exit, at most `limit`; kills it if it does not.
fn wait_for_exit(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the operator did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_serves_its_admin_endpoints_idles_and_stops_on_sigterm() {
    let api = start_stub_api(Crd::Installed).await;
    let kubeconfig = Kubeconfig::for_server(api, "idle");
    let admin_port = free_port();
    let child = operator(&kubeconfig, admin_port).spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while get(admin_port, "/readyz").await.map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "the operator did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(admin_port, "/healthz").await, Some((200, "ok".to_owned())));
    // Over IPv6 too, unless this machine has no IPv6 loopback.
    match std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => {
            assert_eq!(get_from(Ipv6Addr::LOCALHOST.into(), admin_port, "/healthz").await, Some((200, "ok".into())))
        }
        Err(error) => eprintln!("not testing ::1, this machine has no IPv6 loopback: {error}"),
    }
    let (status, metrics) = get(admin_port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in ["cstore_operator_leader 1", "cstore_operator_reconciles_total 0"] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }

    // Idle: watches open, nothing to reconcile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = resident_kib(child.id()).expect("the operator runs");
    println!("operator idle resident memory: {rss} KiB ({:.1} MiB), this build's profile", rss as f64 / 1024.0);

    terminate(&child);
    let output = tokio::task::spawn_blocking(move || wait_for_exit(child, Duration::from_secs(15))).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}, stderr:\n{stderr}", output.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_stops_the_operator_with_instructions() {
    let api = start_stub_api(Crd::Missing).await;
    let kubeconfig = Kubeconfig::for_server(api, "no-crd");
    let child = operator(&kubeconfig, free_port()).spawn().unwrap();
    let output = tokio::task::spawn_blocking(move || wait_for_exit(child, Duration::from_secs(30))).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "error: the ConcurrentStore CRD (concurrentstores.cstore.dev) is not installed in this cluster: install it \
             with `kubectl apply -f crds/` or `cstore crd | kubectl apply -f -`, then restart the operator"
        ),
        "{stderr}"
    );
}
