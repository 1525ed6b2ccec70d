//! The real Redis tools some integration tests drive: `redis-server`, `redis-cli`,
//! `redis-benchmark` (Debian `redis-server`, `redis-tools`) and redis-py (PyPI `redis`, in
//! the project's `.venv`). `scripts/test-deps.sh` installs them all.
//!
//! A missing tool fails the test under CI (`CI` set and not `false`/`0`), where skipping
//! would hide that nothing was tested; elsewhere the test prints a notice and skips.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Whether this is a CI run, where every tool must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}

/// The executable `name` found on PATH; `None` (after a notice) when it is missing outside
/// CI, so the caller returns early. Under CI a missing tool fails the test.
pub fn require(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file()));
    found.or_else(|| missing(name))
}

/// A Python interpreter that can `import redis`: the project's `.venv` first, then `python3`
/// on PATH. Same rules as [`require`] when there is none.
pub fn python_with_redis() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    [venv, PathBuf::from("python3")]
        .into_iter()
        .find(|python| {
            Command::new(python).args(["-c", "import redis"]).output().is_ok_and(|output| output.status.success())
        })
        .or_else(|| missing("redis-py (a Python with `import redis`)"))
}

fn missing(what: &str) -> Option<PathBuf> {
    let remedy = "run scripts/test-deps.sh to install it";
    assert!(!in_ci(), "{what} is required under CI but missing: {remedy}");
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and a skip
    // must not go unnoticed.
    let _ = writeln!(std::io::stderr(), "notice: skipping this test, {what} is not installed ({remedy})");
    None
}

/// A real `redis-server` on a free port, without automatic saves or an AOF, killed when
/// dropped.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
}

impl RedisServer {
    /// Starts `binary` with `extra` arguments after the defaults (so they may override them).
    pub fn start(binary: &Path, extra: &[&str]) -> RedisServer {
        // redis-server cannot listen on port 0 and report it: take a free port from the OS.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|probe| probe.local_addr()).expect("free port").port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        let mut server = RedisServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let deadline = Instant::now() + super::server::PATIENCE;
        while std::net::TcpStream::connect(server.addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server {extra:?} exited at startup ({status})");
            }
            assert!(Instant::now() < deadline, "redis-server {extra:?} did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // redis-server accepts while it loads its files and answers -LOADING until done.
        while server.ping().starts_with(b"-LOADING") {
            assert!(
                Instant::now() < deadline,
                "redis-server {extra:?} still loading after {:?}",
                super::server::PATIENCE
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    /// The first line of the reply to an inline PING.
    fn ping(&self) -> Vec<u8> {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).expect("redis-server accepts");
        stream.write_all(b"PING\r\n").expect("send PING");
        let mut line = Vec::new();
        std::io::BufReader::new(stream).read_until(b'\n', &mut line).expect("read the PING reply");
        line
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
