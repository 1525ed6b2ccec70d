//! The limits of `cstore serve`, reached on purpose over the network: request size and shape
//! (`--max-inline-len`, `--max-args`, `--max-bulk-len`, `--max-request-len`), memory that a
//! client's announced lengths must not reserve, `--maxclients`, and `--maxmemory` with both
//! policies, set at startup and with CONFIG SET.

mod common;

use std::time::{Duration, Instant};

use common::server::{RespClient, TestServer, bulk, error, int, ok, simple};
use common::{SHARD_COUNTS, with_each_configuration};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

#[test]
fn an_endless_line_is_refused_at_the_inline_limit() {
    let server = TestServer::start(&["--max-inline-len", "1024"]);
    let endless = |prefix: &[u8]| [prefix, &[b'a'; 2000][..]].concat();
    server.assert_refuses(&endless(b"SET k "), "ERR Protocol error: too big inline request");
    // A NUL ends no line (Redis looks for the end with strchr), so it cannot dodge the limit.
    server.assert_refuses(&endless(b"SET k \0"), "ERR Protocol error: too big inline request");
    // Header lines of a multibulk request are bounded the same way.
    let digits = [b'1'; 2000];
    server.assert_refuses(&[&b"*"[..], &digits].concat(), "ERR Protocol error: too big mbulk count string");
    server.assert_refuses(&[&b"*1\r\n$"[..], &digits].concat(), "ERR Protocol error: too big bulk count string");
    // Up to the limit, inline commands work.
    let mut client = server.connect();
    client.write_raw(&[&b"SET k "[..], &[b'a'; 1000], b"\r\n"].concat());
    assert_eq!(client.read_reply(), ok());
}

#[test]
fn too_many_arguments_are_refused() {
    let server = TestServer::start(&["--max-args", "4"]);
    let mset = b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n";
    server.assert_refuses(mset, "ERR Protocol error: invalid multibulk length");
    // The count alone is refused, before any argument arrives.
    server.assert_refuses(b"*5\r\n", "ERR Protocol error: invalid multibulk length");
    assert_eq!(server.send(&["MSET", "a", "1"]), ok());
}

#[test]
fn a_request_over_max_request_len_is_refused() {
    let server =
        TestServer::start(&["--max-request-len", "4096", "--max-bulk-len", "2048", "--max-inline-len", "1024"]);
    let value = "v".repeat(1500);
    let mut request = bytes::BytesMut::new();
    cstore::server::resp_value::encode_command(&["MSET", "a", &value, "b", &value, "c", &value], &mut request);
    server.assert_refuses(&request, "ERR Protocol error: too big request (max_request_len is 4096 bytes)");
    // One argument over --max-bulk-len is refused by its header.
    server.assert_refuses(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2049\r\n", "ERR Protocol error: invalid bulk length");
    // Within the limits, large requests work.
    assert_eq!(server.send(&["MSET", "a", &value, "b", &value]), ok());
    assert_eq!(server.send(&["GET", "b"]), bulk(&value));
}

/// SET k, announcing a value of `len` bytes and sending none of it.
fn announce_set(len: u64) -> Vec<u8> {
    format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes()
}

#[test]
fn an_announced_2gb_value_is_refused_at_once() {
    let server = TestServer::start(&[]);
    let rss_before = server.rss_bytes();
    let started = Instant::now();
    server.assert_refuses(&announce_set(2_000_000_000), "ERR Protocol error: invalid bulk length");
    assert!(started.elapsed() < Duration::from_secs(5), "refused only after {:?}", started.elapsed());
    let growth = server.rss_bytes().saturating_sub(rss_before);
    assert!(growth < 64 << 20, "RSS grew by {growth} bytes");
}

#[test]
fn announced_lengths_reserve_no_memory() {
    // Limits high enough that a 1 GB announcement is allowed: the server must wait for bytes
    // that never come, without reserving what was announced.
    const ANNOUNCED: u64 = 1_000_000_000;
    const CLIENTS: usize = 20;
    let server = TestServer::start(&["--max-bulk-len", "1gb", "--max-request-len", "1gb"]);
    let mut bystander = server.connect();
    assert_eq!(bystander.send(&["SET", "bystander", "still here"]), ok());
    let rss_before = server.rss_bytes();
    let mut announcers: Vec<RespClient> = (0..CLIENTS).map(|_| server.connect()).collect();
    for announcer in &mut announcers {
        announcer.write_raw(&announce_set(ANNOUNCED));
        announcer.write_raw(&[b'x'; 4096]);
    }
    for announcer in &mut announcers {
        announcer.assert_waiting(Duration::from_millis(100));
    }
    let growth = server.rss_bytes().saturating_sub(rss_before);
    assert!(growth < 64 << 20, "{CLIENTS} clients announcing {ANNOUNCED} bytes each grew the RSS by {growth} bytes");
    drop(announcers);
    server.assert_serving(&mut bystander);
}

#[test]
fn clients_beyond_maxclients_are_refused_and_the_others_unaffected() {
    let server = TestServer::start(&["--maxclients", "3"]);
    let mut admitted: Vec<RespClient> = (0..3).map(|_| server.connect()).collect();
    for (i, client) in admitted.iter_mut().enumerate() {
        assert_eq!(client.send(&["SET", &format!("client:{i}"), "here"]), ok());
    }
    for _ in 0..2 {
        let mut refused = server.connect();
        assert_eq!(refused.replies_until_closed(), vec![error("ERR max number of clients reached")]);
    }
    for (i, client) in admitted.iter_mut().enumerate() {
        assert_eq!(client.send(&["GET", &format!("client:{i}")]), bulk("here"));
    }
    assert_eq!(admitted[0].info_field("rejected_connections"), "2");
    // A slot that frees up is given to the next client (once the server has seen the close).
    admitted.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = server.connect();
        next.write_command(&["PING"]);
        match next.read_reply() {
            reply if reply == simple("PONG") => break,
            reply => assert!(Instant::now() < deadline, "no slot freed up; last reply {reply:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes 1 KiB values under fresh keys until the server refuses one with -OOM; returns how
/// many were written.
fn fill_until_refused(client: &mut RespClient) -> usize {
    let value = "v".repeat(1024);
    for written in 0..10_000 {
        match client.send(&["SET", &format!("fill:{written}"), &value]) {
            reply if reply == ok() => {}
            reply => {
                assert_eq!(reply, error(OOM), "after {written} writes");
                return written;
            }
        }
    }
    panic!("10000 writes of 1 KiB fit under --maxmemory");
}

#[test]
fn noeviction_refuses_writes_but_not_reads_or_deletes_under_every_engine() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server = TestServer::with_engine(strategy, shards, &["--maxmemory", "64kb"]);
        let mut client = server.connect();
        let written = fill_until_refused(&mut client);
        assert!(written > 10, "only {written} writes of 1 KiB fit in 64 KiB");
        for write in
            [&["SET", "new", "v"][..], &["APPEND", "fill:0", "more"], &["INCR", "counter"], &["MSET", "a", "b"]]
        {
            assert_eq!(client.send(write), error(OOM), "{write:?}");
        }
        assert_eq!(client.send(&["GET", "fill:0"]), bulk("v".repeat(1024)));
        assert_eq!(client.send(&["EXISTS", "fill:1"]), int(1));
        assert_eq!(client.send(&["DBSIZE"]), int(i64::try_from(written).unwrap()));
        assert_eq!(client.send(&["DEL", "fill:0", "fill:1", "fill:2", "fill:3"]), int(4));
        assert_eq!(client.send(&["SET", "fits-again", "v"]), ok());
        assert_eq!(client.info_field("evicted_keys"), "0");
    });
}

#[test]
fn allkeys_random_evicts_to_make_room_under_every_engine() {
    const KEYS: usize = 400;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server =
            TestServer::with_engine(strategy, shards, &["--maxmemory", "64kb", "--maxmemory-policy", "allkeys-random"]);
        let mut client = server.connect();
        let value = "v".repeat(1024);
        let writes: Vec<Vec<String>> =
            (0..KEYS).map(|i| vec!["SET".into(), format!("key:{i}"), value.clone()]).collect();
        for (i, reply) in client.pipeline(&writes).into_iter().enumerate() {
            assert_eq!(reply, ok(), "write {i}");
        }
        let Value::Integer(keys) = client.send(&["DBSIZE"]) else { panic!("DBSIZE") };
        assert!(keys > 0 && keys < i64::try_from(KEYS).unwrap(), "{keys} keys left of {KEYS}");
        let evicted: i64 = client.info_field("evicted_keys").parse().unwrap();
        assert_eq!(evicted, i64::try_from(KEYS).unwrap() - keys, "every missing key was evicted");
        // Eviction runs before a write, so the store may exceed the limit by that one write.
        let used: u64 = client.info_field("used_memory").parse().unwrap();
        assert!(used <= (64 << 10) + 2048, "used_memory {used} is well over maxmemory");
        // The last write always survives its own eviction round.
        assert_eq!(client.send(&["GET", &format!("key:{}", KEYS - 1)]), bulk(&value));
    });
}

#[test]
fn config_set_changes_maxmemory_and_its_policy_at_runtime() {
    let server = TestServer::with_engine(Strategy::CopyOnWrite, 16, &[]);
    let mut client = server.connect();
    assert_eq!(client.send(&["CONFIG", "SET", "maxmemory", "32kb"]), ok());
    assert_eq!(client.send(&["CONFIG", "GET", "maxmemory"]), Value::Array(vec![bulk("maxmemory"), bulk("32768")]));
    fill_until_refused(&mut client);
    assert_eq!(client.send(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]), ok());
    assert_eq!(client.send(&["SET", "evicts-another", "v"]), ok());
    assert_ne!(client.info_field("evicted_keys"), "0");
    assert_eq!(client.send(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]), ok());
    fill_until_refused(&mut client);
    assert_eq!(client.send(&["CONFIG", "SET", "maxmemory", "0"]), ok());
    assert_eq!(client.send(&["SET", "unlimited", "v".repeat(4096).as_str()]), ok());
}

/// A huge negative count asks SRANDMEMBER and HRANDFIELD for that many picks with repeats:
/// the reply is written pick by pick and stops at the client's output limit, which closes the
/// client, instead of building the whole reply (or a vector of picks) first.
#[test]
fn a_huge_random_count_stops_at_the_output_limit() {
    let server = TestServer::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    assert_eq!(server.send(&["SADD", "s", "member"]), int(1));
    assert_eq!(server.send(&["HSET", "h", "field", "value"]), int(1));
    for request in [["SRANDMEMBER", "s", "-4000000000000000000"], ["HRANDFIELD", "h", "-4000000000000000000"]] {
        let mut greedy = server.connect();
        greedy.write_command(&request);
        let closed = loop {
            match greedy.read_within(Duration::from_secs(30)) {
                common::server::Received::Reply(_) => continue,
                common::server::Received::Closed => break true,
                common::server::Received::Nothing => break false,
            }
        };
        assert!(closed, "{request:?}: the client is closed at its output limit");
        assert_eq!(server.send(&["SRANDMEMBER", "s", "-3"]), Value::Array(vec![bulk("member"); 3]));
    }
}
