//! `cstore serve` driven by real, unmodified Redis clients: redis-py (RESP2 and RESP3),
//! redis-cli, and a short redis-benchmark run, under every strategy. scripts/test-deps.sh
//! installs them; see `common::tools` for what happens when one is missing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::server::TestServer;
use common::tools;
use cstore::engine::Strategy;

/// Shards for these tests: clients see no difference, the engine tests cover shard counts.
const SHARDS: u64 = 16;
const PASSWORD: &str = "s3cret";

#[test]
fn redis_py_works_over_resp2_and_resp3_under_every_strategy() {
    let Some(python) = tools::python_with_redis() else { return };
    for strategy in Strategy::ALL {
        let server = TestServer::with_engine(strategy, SHARDS, &[]);
        for protocol in ["2", "3"] {
            run_redis_py(&python, &server, protocol, None);
        }
    }
}

#[test]
fn redis_py_and_redis_cli_authenticate_with_requirepass() {
    let secret = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(secret.path(), format!("{PASSWORD}\n")).expect("write password");
    let server = TestServer::start(&["--requirepass-file", secret.path().to_str().expect("UTF-8 temp path")]);
    if let Some(python) = tools::python_with_redis() {
        for protocol in ["2", "3"] {
            run_redis_py(&python, &server, protocol, Some(PASSWORD));
        }
    }
    if let Some(cli) = tools::require("redis-cli") {
        let redis_cli = RedisCli { binary: cli, port: server.resp_addr.port() };
        assert_eq!(redis_cli.run(&["GET", "k"]), "NOAUTH Authentication required.\n\n");
        let with_password = ["--no-auth-warning", "-a", PASSWORD];
        assert_eq!(redis_cli.run(&[&with_password[..], &["SET", "k", "v"]].concat()), "OK\n");
        assert_eq!(redis_cli.run(&[&with_password[..], &["-3", "GET", "k"]].concat()), "v\n");
    }
}

fn run_redis_py(python: &Path, server: &TestServer, protocol: &str, password: Option<&str>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_py_client.py");
    let port = server.resp_addr.port().to_string();
    let mut command = Command::new(python);
    command.arg(&script).args(["--port", &port, "--protocol", protocol]);
    if let Some(password) = password {
        command.args(["--password", password]);
    }
    let output = command.output().expect("cannot run python");
    assert!(output.status.success(), "redis-py over RESP{protocol} failed:\n{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

/// redis-cli against one server.
struct RedisCli {
    binary: PathBuf,
    port: u16,
}

impl RedisCli {
    /// Runs redis-cli with `args` and returns what it printed (redis-cli exits 0 even for
    /// error replies, so its output is what tells).
    fn run(&self, args: &[&str]) -> String {
        self.run_with_input(args, b"")
    }

    fn run_with_input(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = Command::new(&self.binary)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run redis-cli");
        child.stdin.take().expect("stdin is piped").write_all(input).expect("write to redis-cli");
        let output = child.wait_with_output().expect("redis-cli output");
        assert!(output.status.success(), "redis-cli {args:?} failed:\n{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

#[test]
fn redis_cli_works_under_every_strategy() {
    let Some(binary) = tools::require("redis-cli") else { return };
    for strategy in Strategy::ALL {
        let server = TestServer::with_engine(strategy, SHARDS, &[]);
        let cli = RedisCli { binary: binary.clone(), port: server.resp_addr.port() };
        assert_eq!(cli.run(&["PING"]), "PONG\n");
        assert_eq!(cli.run(&["SET", "k", "v"]), "OK\n");
        assert_eq!(cli.run(&["GET", "k"]), "v\n");
        assert_eq!(cli.run(&["GET", "missing"]), "\n");
        // In raw mode redis-cli follows an error with an empty line.
        assert_eq!(cli.run(&["INCR", "k"]), "ERR value is not an integer or out of range\n\n");
        assert_eq!(cli.run(&["-3", "CONFIG", "GET", "maxmemory"]), "maxmemory 0\n");
        // Commands typed on standard input, one per line.
        assert_eq!(cli.run_with_input(&[], b"INCR counter\nINCRBY counter 41\nGET counter\n"), "1\n42\n42\n");

        // Mass insertion with --pipe, which sends raw RESP and counts the replies.
        const KEYS: usize = 1000;
        let mut protocol = bytes::BytesMut::new();
        for i in 0..KEYS {
            cstore::server::resp_value::encode_command(&["SET", &format!("pipe:{i}"), "x"], &mut protocol);
        }
        let report = cli.run_with_input(&["--pipe"], &protocol);
        assert!(report.contains(&format!("errors: 0, replies: {KEYS}")), "redis-cli --pipe said:\n{report}");

        // --scan walks SCAN to the end.
        let mut scanned: Vec<String> = cli.run(&["--scan", "--pattern", "pipe:*"]).lines().map(str::to_owned).collect();
        scanned.sort();
        let mut expected: Vec<String> = (0..KEYS).map(|i| format!("pipe:{i}")).collect();
        expected.sort();
        assert_eq!(scanned, expected);
        assert!(cli.run(&["INFO", "keyspace"]).contains(&format!("db0:keys={}", KEYS + 2)));

        // avg_ttl: estimated by active expiry, which runs every 100 ms.
        assert_eq!(cli.run(&["SET", "expiring", "v", "EX", "1000"]), "OK\n");
        let estimate = (0..100)
            .find_map(|_| {
                let info = cli.run(&["INFO", "keyspace"]);
                let avg_ttl: u64 = info.split("avg_ttl=").nth(1)?.trim().parse().ok()?;
                if avg_ttl == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                (avg_ttl > 0).then_some(avg_ttl)
            })
            .expect("INFO keyspace reports an avg_ttl within 2 s");
        assert!((990_000..=1_000_000).contains(&estimate), "avg_ttl={estimate} for one key with 1,000 s left");
    }
}

/// The tests redis-benchmark runs, as it names them in its report.
const BENCHMARK_TESTS: [&str; 4] = ["SET", "GET", "INCR", "MSET (10 keys)"];

#[test]
fn redis_benchmark_runs_without_errors_under_every_strategy() {
    let Some(binary) = tools::require("redis-benchmark") else { return };
    for strategy in Strategy::ALL {
        let server = TestServer::with_engine(strategy, SHARDS, &[]);
        let port = server.resp_addr.port().to_string();
        let output = Command::new(&binary)
            .args(["-h", "127.0.0.1", "-p", &port, "-t", "set,get,incr,mset", "-n", "20000", "-r", "1000", "-q"])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-benchmark");
        let report = describe(&output);
        assert!(output.status.success(), "redis-benchmark failed:\n{report}");
        for problem in ["error", "warning"] {
            assert!(!report.to_lowercase().contains(problem), "redis-benchmark reported an {problem}:\n{report}");
        }
        let rates = requests_per_second(&report);
        let names: Vec<&str> = rates.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, BENCHMARK_TESTS, "redis-benchmark said:\n{report}");
        assert!(rates.iter().all(|(_, rate)| *rate > 0.0), "{rates:?}");
        // What the server saw agrees: every command succeeded.
        let metrics = server.admin_get("/metrics").body;
        let failed: Vec<&str> = metrics
            .lines()
            .filter(|line| line.contains("outcome=\"error\"") || line.contains("outcome=\"rejected\""))
            .filter(|line| !line.ends_with(" 0"))
            .collect();
        assert!(failed.is_empty(), "commands failed during the benchmark: {failed:?}");
        assert_eq!(server.metric("cstore_unknown_commands_total"), Some(0.0));
        eprintln!("redis-benchmark against {strategy}: {rates:?}");
    }
}

/// The final `NAME: N requests per second, ...` lines of a `-q` report, in order. Progress
/// updates share the line, separated by carriage returns.
fn requests_per_second(report: &str) -> Vec<(String, f64)> {
    report
        .split(['\r', '\n'])
        .filter_map(|part| {
            let (name, rest) = part.trim().split_once(": ")?;
            let rate = rest.strip_suffix(" msec")?.split_once(" requests per second")?.0;
            Some((name.to_owned(), rate.parse().ok()?))
        })
        .collect()
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
