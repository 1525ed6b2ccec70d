//! Hashes and sets against the real thing: files cstore writes pass `redis-check-rdb` and
//! load into `redis-server` 7 with every field, member and deadline; files `redis-server`
//! writes (listpack and hashtable hashes, intset and hashtable sets) load into cstore.
//! Needs redis-server, redis-cli and redis-check-rdb (`scripts/test-deps.sh`): skipped
//! without them, except under CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::super::{RdbHeader, RdbWriter, SaveOptions, load};
use super::collections::collections;
use super::options;
use crate::engine::{EncodingLimits, Value};

/// Whether the tools are there; a missing one fails under CI and skips elsewhere.
fn have_tools() -> bool {
    let missing: Vec<&str> = ["redis-server", "redis-cli", "redis-check-rdb"]
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

/// A redis-server on a free port with `dir/dbfilename` as its RDB file, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--hash-max-listpack-entries", "128", "--set-max-intset-entries", "512"])
            .args(["--dbfilename", "dump.rdb", "--dir"])
            .arg(dir)
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

    /// One command through redis-cli; its raw output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8(output.stdout).unwrap().trim_end().to_owned()
    }

    fn lines(&self, args: &[&str]) -> Vec<String> {
        self.cli(args).lines().map(str::to_owned).collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A hash's pairs or a set's members as `field=value` / `member` strings, sorted.
fn contents(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Hash(hash) => hash.pairs().iter().map(|(f, v)| format!("{}={}", text(f), text(v))).collect(),
        Value::Set(set) => set.members().iter().map(|m| text(m)).collect(),
        Value::String(s) => [text(s)].into(),
    }
}

fn temp_dir() -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    dir.keep()
}

#[test]
fn cstore_hashes_and_sets_load_into_redis_server() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    // Deadlines an hour on, for a live server.
    let entries: Vec<_> =
        collections().into_iter().map(|(key, value, at)| (key, value, at.map(|_| now_ms() + 3_600_000))).collect();
    let header = RdbHeader { redis_version: "7.0.0", ctime_secs: 0, used_mem: 0, keys: 0, volatile_keys: 0 };
    let file = std::fs::File::create(dir.join("dump.rdb")).unwrap();
    let mut writer = RdbWriter::new(std::io::BufWriter::new(file), SaveOptions::default(), &header).unwrap();
    for (key, value, at) in &entries {
        writer.entry(key, value, *at).unwrap();
    }
    writer.finish().unwrap();

    let check = Command::new("redis-check-rdb").arg(dir.join("dump.rdb")).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && report.contains("RDB looks OK"), "{report}");

    let redis = Redis::start(&dir);
    for (key, value, at) in &entries {
        let key = text(key);
        let got: BTreeSet<String> = match value {
            Value::Hash(_) => {
                let flat = redis.lines(&["HGETALL", &key]);
                flat.chunks(2).map(|pair| format!("{}={}", pair[0], pair[1])).collect()
            }
            Value::Set(_) => redis.lines(&["SMEMBERS", &key]).into_iter().collect(),
            Value::String(_) => [redis.cli(&["GET", &key])].into(),
        };
        assert_eq!(got, contents(value), "{key}");
        let ttl: i64 = redis.cli(&["PTTL", &key]).parse().unwrap();
        if at.is_some() {
            assert!(ttl > 3_000_000, "{key}: PTTL {ttl}");
        } else {
            assert_eq!(ttl, -1, "{key}");
        }
    }
    assert_eq!(redis.cli(&["DBSIZE"]), entries.len().to_string());
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_server_hashes_and_sets_load_into_cstore() {
    if !have_tools() {
        return;
    }
    let dir = temp_dir();
    let redis = Redis::start(&dir);
    let fields: Vec<String> = (0..600).flat_map(|i| [format!("f{i}"), format!("value {i}")]).collect();
    let large_members: Vec<String> = (0..1000).map(|i| format!("member:{i}")).collect();
    let ints: Vec<String> = [-70000i64, -5, 0, 12, 1 << 40].iter().map(i64::to_string).collect();
    let with = |command: &[&str], rest: &[String]| {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(rest.iter().map(String::as_str));
        redis.cli(&args)
    };
    // Listpack field encodings: strings, 7-bit, 13-bit, 16/24/32/64-bit integers.
    let small =
        ["a", "text", "b", "7", "c", "-1000", "d", "30000", "e", "-8000000", "f", "2000000000", "g", "-9000000000"];
    let small: Vec<String> = small.iter().map(|s| s.to_string()).collect();
    assert_eq!(with(&["HSET", "small hash"], &small), "7");
    assert_eq!(with(&["HSET", "large hash"], &fields), "600");
    assert_eq!(with(&["SADD", "intset"], &ints), "5");
    assert_eq!(with(&["SADD", "large set"], &large_members), "1000");
    assert_eq!(redis.cli(&["SADD", "small set", "x", "y", "z"]), "3");
    assert_eq!(redis.cli(&["PEXPIRE", "large hash", "3600000"]), "1");
    assert_eq!(redis.cli(&["PEXPIRE", "intset", "3600000"]), "1");
    let keys = ["small hash", "large hash", "intset", "large set", "small set"];
    let encodings: Vec<String> = keys.iter().map(|key| redis.cli(&["OBJECT", "ENCODING", key])).collect();
    assert_eq!(encodings[..4], ["listpack", "hashtable", "intset", "hashtable"]);
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    drop(redis);

    let mut loaded = Vec::new();
    let file = std::fs::File::open(dir.join("dump.rdb")).unwrap();
    let report = load(file, &options(), &EncodingLimits::default(), |key| {
        loaded.push((text(&key.key), key.value.clone(), key.expires_at_ms));
        Ok(())
    })
    .unwrap();
    assert!(report.written_by.unwrap().starts_with('7'));
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = loaded.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["intset", "large hash", "large set", "small hash", "small set"]);
    let pairs =
        |flat: &[String]| -> BTreeSet<String> { flat.chunks(2).map(|p| format!("{}={}", p[0], p[1])).collect() };
    let expected: [BTreeSet<String>; 5] = [
        ints.iter().cloned().collect(),
        pairs(&fields),
        large_members.iter().cloned().collect(),
        pairs(&small),
        ["x", "y", "z"].iter().map(|s| s.to_string()).collect(),
    ];
    for ((name, value, _), expected) in loaded.iter().zip(&expected) {
        assert_eq!(&contents(value), expected, "{name}");
    }
    let deadlines: Vec<bool> = loaded.iter().map(|e| e.2.is_some_and(|at| at > now_ms())).collect();
    assert_eq!(deadlines, [true, true, false, false, false]);
    let encodings: Vec<&str> = loaded.iter().map(|e| e.1.encoding()).collect();
    assert_eq!(encodings, ["intset", "hashtable", "hashtable", "listpack", "listpack"]);
    let _ = std::fs::remove_dir_all(dir);
}
