//! A real `cstore serve` process for integration tests, and a raw RESP client to drive it.
//!
//! [`TestServer`] spawns the binary Cargo built for this test run on ports the OS picks,
//! learns them from the JSON startup log line, and kills the process when dropped (printing
//! its log if the test is failing, so a failure shows what the server said).
//! [`RespClient`] speaks RESP over a plain `TcpStream`: commands are encoded and replies
//! decoded with `cstore::server::resp_value`, so tests see every byte the server sends.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use cstore::engine::Strategy;
use cstore::server::resp_value::{Value, encode_command, parse_value};

/// How long a test waits for the server to start, or for one reply. Generous: debug builds
/// on two busy cores can be slow, and a healthy server answers in microseconds anyway.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `cstore serve`, killed when dropped.
pub struct TestServer {
    child: Child,
    pub resp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub pid: u32,
    /// Every line the server wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server with this engine configuration and `extra` flags.
    pub fn with_engine(strategy: Strategy, shards: u64, extra: &[&str]) -> TestServer {
        let shards = shards.to_string();
        let engine = ["--strategy", strategy.name(), "--shards", shards.as_str()];
        Self::start(&[&engine[..], extra].concat())
    }

    /// Starts a server with the default engine and `extra` flags.
    pub fn start(extra: &[&str]) -> TestServer {
        Self::start_with_env(extra, &[])
    }

    /// Starts a server with `extra` flags and environment variables `env`.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::start_wrapped(&[], extra, env)
    }

    /// Starts a server on the default bind address (every address, IPv6 and IPv4) rather than
    /// on 127.0.0.1 only, with `extra` flags.
    pub fn start_on_default_bind(extra: &[&str]) -> TestServer {
        Self::spawn(&[], extra, &[])
    }

    /// Starts a server on 127.0.0.1 through `wrapper`, a command that execs the rest of its
    /// arguments (such as `prlimit --nofile=64`), so the process is still the server itself.
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::spawn(wrapper, &[&["--bind", "127.0.0.1"], extra].concat(), env)
    }

    /// Starts a server on 127.0.0.1 with `extra` flags and returns as soon as it accepts
    /// clients, before its data is loaded (they are answered -LOADING until then).
    pub fn start_loading(extra: &[&str]) -> TestServer {
        Self::spawn_until(&[], &[&["--bind", "127.0.0.1"], extra].concat(), &[], ACCEPTING)
    }

    fn spawn(wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::spawn_until(wrapper, extra, env, STARTED)
    }

    /// Spawns the server and waits for the log line `message`, which carries the ports.
    fn spawn_until(wrapper: &[&str], extra: &[&str], env: &[(&str, &str)], message: &'static str) -> TestServer {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_cstore"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_cstore")),
        };
        command
            .args(["serve", "--port", "0", "--admin-port", "0", "--log-format", "json"])
            .args(extra)
            // The startup line is logged at info; settings from the caller's environment must
            // not change what the test asked for.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if ["CSTORE_", "OTEL_", "POD_"].iter().any(|prefix| name_text.starts_with(prefix)) {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("cannot start the cstore binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started_rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        // Keeps draining stderr for the server's whole life, so logging never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(ports) = startup_ports(&line, message) {
                    let _ = started_tx.send(ports);
                }
                lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
            }
        });
        let pid = child.id();
        match started_rx.recv_timeout(PATIENCE) {
            Ok((port, admin_port)) => TestServer {
                child,
                resp_addr: SocketAddr::from(([127, 0, 0, 1], port)),
                admin_addr: SocketAddr::from(([127, 0, 0, 1], admin_port)),
                pid,
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Give the reader thread a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!("cstore serve {extra:?} did not start; its log:\n{}", lines_of(&log).join("\n"));
            }
        }
    }

    /// A new raw client connection.
    pub fn connect(&self) -> RespClient {
        RespClient::connect(self.resp_addr)
    }

    /// Sends one command on a fresh connection and returns the reply.
    pub fn send<A: AsRef<[u8]>>(&self, args: &[A]) -> Value {
        self.connect().send(args)
    }

    /// Sends raw bytes on a fresh connection and returns every reply the server sent until
    /// it closed the connection.
    pub fn send_raw(&self, bytes: &[u8]) -> Vec<Value> {
        let mut client = self.connect();
        client.write_raw(bytes);
        client.replies_until_closed()
    }

    /// Asserts that the server answers `bytes` (sent on a fresh connection) with exactly the
    /// error `expected` and closes that connection, while a client connected before, and a
    /// new one, still get correct answers.
    pub fn assert_refuses(&self, bytes: &[u8], expected: &str) {
        let mut bystander = self.connect();
        assert_eq!(bystander.send(&["SET", "bystander", "still here"]), ok());
        assert_eq!(self.send_raw(bytes), vec![error(expected)], "the reply to {:?}", Bytes::copy_from_slice(bytes));
        self.assert_serving(&mut bystander);
    }

    /// Asserts that `bystander` (which SET `bystander` to "still here" through
    /// [`assert_refuses`](Self::assert_refuses) or by itself) and a new client are served.
    pub fn assert_serving(&self, bystander: &mut RespClient) {
        assert_eq!(bystander.send(&["GET", "bystander"]), bulk("still here"));
        assert_eq!(self.send(&["PING"]), simple("PONG"));
    }

    /// Every line the server logged so far.
    pub fn log(&self) -> Vec<String> {
        lines_of(&self.log)
    }

    /// Whether the server logs a line containing `needle` within 10 s. The server writes its
    /// log from a background thread and a reader thread here collects it, so a line about
    /// something a reply already reported can arrive after the reply.
    pub fn logs_within_seconds(&self, needle: &str) -> bool {
        holds_within(Duration::from_secs(10), || lines_of(&self.log).iter().any(|line| line.contains(needle)))
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command, which needs no
    /// dependency and no unsafe code.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid.to_string()]).status().expect("cannot run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid);
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmRSS:")
    }

    /// The most resident memory the server ever had (its high-water mark), from /proc.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmHWM:")
    }

    /// Starts a new high-water mark from the resident memory now (Linux's `clear_refs` 5), so
    /// that [`peak_rss_bytes`](Self::peak_rss_bytes) measures what happens next only.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").expect("cannot reset the peak RSS");
    }

    fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("cannot read /proc status");
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"));
        kib * 1024
    }

    /// `GET path` on the admin port.
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        http_get(self.admin_addr, path)
    }

    /// The value of an unlabelled metric (or a full `name{labels}` series) in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = self.admin_get("/metrics").body;
        body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of cstore serve (pid {}) ---\n{}", self.pid, self.log().join("\n"));
        }
    }
}

/// The line a server logs once it has loaded its data and is ready.
const STARTED: &str = "cstore serve started";
/// The line a server logs once it accepts clients, before loading its data.
const ACCEPTING: &str = "accepting clients while the data loads (-LOADING until it is in)";

/// The ports in the `message` line, if this is it.
fn startup_ports(line: &str, message: &str) -> Option<(u16, u16)> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event.get("message")?.as_str()? != message {
        return None;
    }
    let port = |field: &str| event.get(field)?.as_u64().and_then(|port| u16::try_from(port).ok());
    Some((port("port")?, port("admin_port")?))
}

fn lines_of(log: &Mutex<Vec<String>>) -> Vec<String> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// What reading one reply gave.
#[derive(Debug, PartialEq)]
pub enum Received {
    Reply(Value),
    /// The server closed the connection.
    Closed,
    /// Nothing complete arrived in time.
    Nothing,
}

/// A client that speaks RESP over a plain socket, byte for byte.
pub struct RespClient {
    stream: TcpStream,
    received: BytesMut,
}

impl RespClient {
    pub fn connect(addr: SocketAddr) -> RespClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        RespClient { stream, received: BytesMut::new() }
    }

    /// Sends one command and waits for its reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.write_command(args);
        self.read_reply()
    }

    /// Every key of the selected database (KEYS *), sorted.
    pub fn sorted_keys(&mut self) -> Vec<Vec<u8>> {
        let Value::Array(keys) = self.send(&["KEYS", "*"]) else { panic!("KEYS did not answer an array") };
        let mut keys: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|key| match key {
                Value::Bulk(bytes) => bytes.to_vec(),
                other => panic!("KEYS gave {other:?}"),
            })
            .collect();
        keys.sort();
        keys
    }

    /// One field of `INFO`, such as `evicted_keys`.
    pub fn info_field(&mut self, field: &str) -> String {
        let info = text_of(&self.send(&["INFO"]));
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("INFO has no {field}:\n{info}"))
            .to_owned()
    }

    /// Sends every command in one write, then reads their replies in order.
    pub fn pipeline<A: AsRef<[u8]>>(&mut self, commands: &[Vec<A>]) -> Vec<Value> {
        self.write_commands(commands);
        self.read_replies(commands.len())
    }

    /// Sends every command in one write, without waiting for replies.
    pub fn write_commands<A: AsRef<[u8]>>(&mut self, commands: &[Vec<A>]) {
        let mut encoded = BytesMut::new();
        for command in commands {
            encode_command(command, &mut encoded);
        }
        self.write_raw(&encoded);
    }

    /// Sends one command without waiting, to pipeline several.
    pub fn write_command<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut encoded = BytesMut::new();
        encode_command(args, &mut encoded);
        self.write_raw(&encoded);
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("cannot write to the server");
    }

    /// Writes bytes that may get the client closed while they are sent (a limit crossed
    /// mid-write): the server then drops unread input, so the write can see a reset.
    pub fn write_raw_until_closed(&mut self, bytes: &[u8]) {
        match self.stream.write_all(bytes) {
            Ok(()) => {}
            Err(error) if matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
            Err(error) => panic!("cannot write to the server: {error}"),
        }
    }

    /// Closes the sending side: the server sees end of input.
    pub fn finish_writing(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The next reply; fails the test if none comes.
    pub fn read_reply(&mut self) -> Value {
        match self.read_within(PATIENCE) {
            Received::Reply(value) => value,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The next `count` replies, for a pipeline.
    pub fn read_replies(&mut self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.read_reply()).collect()
    }

    /// The next reply, if one arrives within `limit`.
    pub fn read_within(&mut self, limit: Duration) -> Received {
        let deadline = Instant::now() + limit;
        loop {
            match parse_value(&self.received) {
                Ok(Some((value, used))) => {
                    self.received.advance(used);
                    return Received::Reply(value);
                }
                Ok(None) => {}
                Err(error) => panic!("malformed reply ({error}): {:?}", Bytes::copy_from_slice(&self.received)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::Nothing;
            }
            self.stream.set_read_timeout(Some(left)).expect("set read timeout");
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.received.is_empty(), "connection closed mid-reply: {:?}", self.received);
                    return Received::Closed;
                }
                Ok(read) => self.received.extend_from_slice(&chunk[..read]),
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return Received::Closed,
                Err(error) => panic!("cannot read from the server: {error}"),
            }
        }
    }

    /// Every reply until the server closes the connection; fails if it keeps it open.
    pub fn replies_until_closed(&mut self) -> Vec<Value> {
        let mut replies = Vec::new();
        loop {
            match self.read_within(PATIENCE) {
                Received::Reply(value) => replies.push(value),
                Received::Closed => return replies,
                Received::Nothing => panic!("the server kept the connection open; replies so far: {replies:?}"),
            }
        }
    }

    /// Asserts that the server neither answers nor closes within `quiet`: it is waiting for
    /// the rest of a request.
    pub fn assert_waiting(&mut self, quiet: Duration) {
        assert_eq!(self.read_within(quiet), Received::Nothing, "the server should wait for more input");
    }
}

/// `+OK`
pub fn ok() -> Value {
    simple("OK")
}

pub fn simple(text: &str) -> Value {
    Value::Simple(Bytes::copy_from_slice(text.as_bytes()))
}

pub fn bulk(bytes: impl AsRef<[u8]>) -> Value {
    Value::Bulk(Bytes::copy_from_slice(bytes.as_ref()))
}

pub fn int(n: i64) -> Value {
    Value::Integer(n)
}

/// An error reply with exactly this text (code included, `-` excluded).
pub fn error(text: &str) -> Value {
    Value::Error(Bytes::copy_from_slice(text.as_bytes()))
}

/// The text of a bulk, simple or verbatim string reply.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::Bulk(bytes) | Value::Simple(bytes) | Value::Verbatim { text: bytes, .. } => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// An admin HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// A one-shot HTTP/1.1 GET, read to the end of the connection.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    stream.set_read_timeout(Some(PATIENCE)).expect("set read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: cstore\r\nConnection: close\r\n\r\n").expect("send HTTP request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read HTTP response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("bad HTTP: {raw}"));
    HttpResponse { status, body: body.to_owned() }
}

/// Polls `check` every 20 ms until it holds or `limit` has passed; whether it held.
pub fn holds_within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it holds; fails the test, naming `what`, once `limit` has passed.
pub fn eventually(limit: Duration, what: &str, check: impl FnMut() -> bool) {
    assert!(holds_within(limit, check), "{what}: not within {limit:?}");
}
