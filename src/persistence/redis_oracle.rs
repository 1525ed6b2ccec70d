//! The real Redis, for tests that use it as the oracle: a `redis-server` 7 of their own and
//! `redis-cli` to drive it. Needs redis-server, redis-cli, redis-check-rdb and
//! redis-check-aof (`scripts/test-deps.sh`): the tests skip without them, except under CI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{Databases, Value};

/// Whether the tools are there; a missing one fails under CI and skips elsewhere.
pub(crate) fn have_tools() -> bool {
    let missing: Vec<&str> = ["redis-server", "redis-cli", "redis-check-rdb", "redis-check-aof"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{missing:?} missing (scripts/test-deps.sh installs them)");
    eprintln!("skipped: {missing:?} missing (scripts/test-deps.sh installs them)");
    false
}

/// A redis-server on a free port with `dir` as its directory and `dump.rdb` as its RDB file,
/// no save rules and no AOF unless `args` say otherwise; killed on drop.
pub(crate) struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dbfilename", "dump.rdb", "--dir"])
            .arg(dir)
            // Later arguments override earlier ones.
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// One command through redis-cli, in database 0; its raw output, trimmed.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        self.cli_in(0, args)
    }

    /// One command through redis-cli in database `db`; its raw output, trimmed.
    pub(crate) fn cli_in(&self, db: usize, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-n", &db.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim_end().to_owned()
    }

    pub(crate) fn lines(&self, args: &[&str]) -> Vec<String> {
        self.cli(args).lines().map(str::to_owned).collect()
    }

    /// Commands, one a line, through one connection (so that SELECT and MULTI hold from one
    /// to the next); redis-cli's output.
    pub(crate) fn pipe(&self, commands: &str) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }

    /// Every key of databases 0 to `databases - 1` as [`Contents`] (values without newlines).
    pub(crate) fn contents(&self, databases: usize) -> Contents {
        let mut all = Contents::new();
        for db in 0..databases {
            for key in self.cli_in(db, &["--scan"]).lines() {
                let kind = self.cli_in(db, &["TYPE", key]);
                let items: BTreeSet<String> = match kind.as_str() {
                    "string" => [self.cli_in(db, &["GET", key])].into(),
                    "hash" => {
                        let flat: Vec<String> = self.cli_in(db, &["HGETALL", key]).lines().map(str::to_owned).collect();
                        flat.chunks(2).map(|pair| format!("{}={}", pair[0], pair[1])).collect()
                    }
                    "set" => self.cli_in(db, &["SMEMBERS", key]).lines().map(str::to_owned).collect(),
                    other => panic!("{key} is a {other}"),
                };
                let ttl: i64 = self.cli_in(db, &["PTTL", key]).parse().unwrap();
                all.insert((db, key.to_owned()), (kind, items, ttl > 0));
            }
        }
        all
    }
}

/// Keys by (database, name): their type, their items (a string's value, a hash's
/// `field=value`s, a set's members) and whether they have a deadline.
pub(crate) type Contents = BTreeMap<(usize, String), (String, BTreeSet<String>, bool)>;

/// [`Contents`] of cstore's databases.
pub(crate) fn contents_of(databases: &Databases) -> Contents {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut all = Contents::new();
    for (db, cut) in databases.snapshot() {
        let walked = cut.for_each(|entry| {
            let (kind, items): (&str, BTreeSet<String>) = match entry.value {
                Value::String(value) => ("string", [text(value)].into()),
                Value::Hash(hash) => {
                    ("hash", hash.pairs().iter().map(|(f, v)| format!("{}={}", text(f), text(v))).collect())
                }
                Value::Set(set) => ("set", set.members().iter().map(|m| text(m)).collect()),
            };
            all.insert((db, text(entry.key)), (kind.to_owned(), items, entry.expires_at_ms.is_some()));
            Ok::<(), std::io::Error>(())
        });
        assert!(walked.is_ok());
    }
    all
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}
