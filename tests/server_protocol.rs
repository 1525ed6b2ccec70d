//! `cstore serve` driven over raw RESP bytes: commands under every strategy and shard count,
//! RESP3, pipelining, concurrent clients, authentication, and one test per class of bad
//! input (each checks Redis's exact error text and that other clients are still served).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Barrier;
use std::time::Duration;

use common::server::{TestServer, bulk, error, int, ok, simple, text_of};
use common::{SHARD_COUNTS, with_each_configuration};
use cstore::server::resp_value::Value;

/// How long a test waits to conclude that the server is waiting for more input.
const QUIET: Duration = Duration::from_millis(300);

#[test]
fn commands_work_under_every_engine() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server = TestServer::with_engine(strategy, shards, &[]);
        let mut client = server.connect();
        assert_eq!(client.send(&["PING"]), simple("PONG"));
        assert_eq!(client.send(&["SET", "greeting", "hello"]), ok());
        assert_eq!(client.send(&["GET", "greeting"]), bulk("hello"));
        assert_eq!(client.send(&["GET", "missing"]), Value::NullBulk);
        assert_eq!(client.send(&["APPEND", "greeting", " world"]), int(11));
        assert_eq!(client.send(&["INCRBY", "counter", "41"]), int(41));
        assert_eq!(client.send(&["INCR", "counter"]), int(42));
        assert_eq!(client.send(&["MSET", "a", "1", "b", "2"]), ok());
        assert_eq!(
            client.send(&["MGET", "a", "b", "missing"]),
            Value::Array(vec![bulk("1"), bulk("2"), Value::NullBulk])
        );
        assert_eq!(client.send(&["EXPIRE", "a", "100"]), int(1));
        assert_eq!(client.send(&["TTL", "a"]), int(100));
        assert_eq!(client.send(&["DEL", "a", "b", "missing"]), int(2));
        assert_eq!(client.send(&["DBSIZE"]), int(2));
        // Binary-safe keys and values.
        assert_eq!(client.send(&[&b"SET"[..], b"\x00\xff", b"\r\n\x00"]), ok());
        assert_eq!(client.send(&[&b"GET"[..], b"\x00\xff"]), bulk(b"\r\n\x00"));
        // Values on both sides of the size up to which GET copies while the shard is read.
        for len in [16 * 1024, 16 * 1024 + 1, 1 << 20] {
            let value = "v".repeat(len);
            assert_eq!(client.send(&["SET", "sized", &value]), ok());
            assert_eq!(client.send(&["GET", "sized"]), bulk(value.as_str()), "{len}-byte value");
            let reply = client.send(&["MGET", "sized", "missing"]);
            assert_eq!(reply, Value::Array(vec![bulk(value.as_str()), Value::NullBulk]), "{len}-byte value");
        }
    });
}

#[test]
fn scan_walks_every_key_under_every_engine() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server = TestServer::with_engine(strategy, shards, &[]);
        let mut client = server.connect();
        let keys: BTreeSet<String> = (0..300).map(|i| format!("key:{i}")).collect();
        let sets: Vec<Vec<&str>> = keys.iter().map(|key| vec!["SET", key.as_str(), "v"]).collect();
        assert!(client.pipeline(&sets).iter().all(|reply| *reply == ok()));
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_owned();
        for _ in 0..10_000 {
            let reply = client.send(&["SCAN", cursor.as_str(), "COUNT", "25"]);
            let Value::Array(parts) = reply else { panic!("SCAN replied {reply:?}") };
            let [Value::Bulk(next), Value::Array(batch)] = parts.as_slice() else { panic!("SCAN replied {parts:?}") };
            seen.extend(batch.iter().map(text_of));
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(cursor, "0", "the iteration ends");
        assert_eq!(seen, keys);
    });
}

#[test]
fn resp3_is_negotiated_with_hello() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let Value::Map(fields) = client.send(&["HELLO", "3"]) else { panic!("HELLO 3 must answer a map") };
    assert!(fields.contains(&(bulk("proto"), int(3))), "{fields:?}");
    assert_eq!(client.send(&["GET", "missing"]), Value::Null);
    assert_eq!(
        client.send(&["CONFIG", "GET", "maxmemory-policy"]),
        Value::Map(vec![(bulk("maxmemory-policy"), bulk("noeviction"))])
    );
    assert!(matches!(client.send(&["INFO", "server"]), Value::Verbatim { .. }));
    // HELLO 2 goes back, and the reply to HELLO itself is already in the new protocol.
    assert!(matches!(client.send(&["HELLO", "2"]), Value::Array(_)));
    assert_eq!(client.send(&["GET", "missing"]), Value::NullBulk);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let commands: Vec<Vec<String>> = (0..2000)
        .map(|i| match i % 3 {
            0 => vec!["SET".into(), format!("p{i}"), i.to_string()],
            1 => vec!["GET".into(), format!("p{}", i - 1)],
            _ => vec!["INCR".into(), "pipelined".into()],
        })
        .collect();
    let replies = client.pipeline(&commands);
    for (i, reply) in replies.iter().enumerate() {
        let expected = match i % 3 {
            0 => ok(),
            1 => bulk((i - 1).to_string()),
            _ => int(i64::try_from(i / 3 + 1).unwrap()),
        };
        assert_eq!(*reply, expected, "reply {i}");
    }
    // Inline commands, as telnet sends them, pipeline too.
    client.write_raw(b"PING\r\nECHO \"two words\"\nGET p0\r\n");
    assert_eq!(client.read_replies(3), vec![simple("PONG"), bulk("two words"), bulk("0")]);
}

/// Clients that run at once against one server, each on its own connection.
const CLIENTS: usize = 8;

#[test]
fn concurrent_incr_loses_no_update_under_every_engine() {
    const KEYS: usize = 4;
    const BATCHES: usize = 5;
    const BATCH: usize = 40;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server = TestServer::with_engine(strategy, shards, &[]);
        let start = Barrier::new(CLIENTS);
        let results: Vec<Vec<(usize, i64)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..CLIENTS)
                .map(|client_index| {
                    let (server, start) = (&server, &start);
                    scope.spawn(move || {
                        let mut client = server.connect();
                        start.wait();
                        let mut results = Vec::new();
                        for batch in 0..BATCHES {
                            let keys: Vec<usize> = (0..BATCH).map(|i| (client_index + batch + i) % KEYS).collect();
                            let commands: Vec<Vec<String>> =
                                keys.iter().map(|key| vec!["INCR".into(), format!("counter:{key}")]).collect();
                            for (key, reply) in keys.into_iter().zip(client.pipeline(&commands)) {
                                let Value::Integer(value) = reply else { panic!("INCR replied {reply:?}") };
                                results.push((key, value));
                            }
                        }
                        results
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().expect("client thread")).collect()
        });
        // Linearizable increments hand out every value from 1 to the final count exactly once.
        let mut seen: HashMap<usize, Vec<i64>> = HashMap::new();
        for (key, value) in results.into_iter().flatten() {
            seen.entry(key).or_default().push(value);
        }
        let mut client = server.connect();
        for (key, mut values) in seen {
            values.sort_unstable();
            let count = i64::try_from(values.len()).unwrap();
            assert_eq!(
                values,
                (1..=count).collect::<Vec<_>>(),
                "counter:{key} handed out a value twice or skipped one"
            );
            assert_eq!(client.send(&["GET", &format!("counter:{key}")]), bulk(count.to_string()));
        }
        assert_eq!(client.send(&["DBSIZE"]), int(i64::try_from(KEYS).unwrap()));
    });
}

#[test]
fn setnx_races_have_exactly_one_winner_under_every_engine() {
    const KEYS: usize = 200;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let server = TestServer::with_engine(strategy, shards, &[]);
        let start = Barrier::new(CLIENTS);
        let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..CLIENTS)
                .map(|client_index| {
                    let (server, start) = (&server, &start);
                    scope.spawn(move || {
                        let mut client = server.connect();
                        let commands: Vec<Vec<String>> = (0..KEYS)
                            .map(|key| vec!["SETNX".into(), format!("race:{key}"), format!("client-{client_index}")])
                            .collect();
                        start.wait();
                        client.pipeline(&commands).into_iter().map(|reply| reply == int(1)).collect()
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().expect("racer thread")).collect()
        });
        let mut winners_by_key = vec![Vec::new(); KEYS];
        for (client_index, client_wins) in wins.iter().enumerate() {
            for (key, _) in client_wins.iter().enumerate().filter(|(_, won)| **won) {
                winners_by_key[key].push(client_index);
            }
        }
        let mut client = server.connect();
        for (key, winners) in winners_by_key.iter().enumerate() {
            let [winner] = winners.as_slice() else { panic!("race:{key} was won by clients {winners:?}") };
            assert_eq!(client.send(&["GET", &format!("race:{key}")]), bulk(format!("client-{winner}")));
        }
    });
}

#[test]
fn requirepass_file_gates_every_command_until_auth() {
    let secret = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(secret.path(), "s3cret\n").expect("write password");
    let server = TestServer::start(&["--requirepass-file", secret.path().to_str().expect("UTF-8 temp path")]);

    let mut client = server.connect();
    assert_eq!(client.send(&["GET", "k"]), error("NOAUTH Authentication required."));
    assert_eq!(client.send(&["PING"]), error("NOAUTH Authentication required."));
    assert_eq!(client.send(&["AUTH", "wrong"]), error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(
        client.send(&["AUTH", "someone", "s3cret"]),
        error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(client.send(&["AUTH", "s3cret"]), ok());
    assert_eq!(client.send(&["SET", "k", "v"]), ok());
    assert_eq!(client.send(&["GET", "k"]), bulk("v"));

    let mut resp3 = server.connect();
    assert_eq!(
        resp3.send(&["HELLO", "3"]),
        error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH \
             <user> <pass> option can be used to authenticate the client and select the RESP protocol version at \
             the same time"
        )
    );
    let Value::Map(fields) = resp3.send(&["HELLO", "3", "AUTH", "default", "s3cret"]) else { panic!("HELLO 3 map") };
    assert!(fields.contains(&(bulk("proto"), int(3))), "{fields:?}");
    assert_eq!(resp3.send(&["GET", "k"]), bulk("v"));
    assert_eq!(resp3.send(&["GET", "missing"]), Value::Null);
    // RESET forgets the authentication.
    assert_eq!(resp3.send(&["RESET"]), simple("RESET"));
    assert_eq!(resp3.send(&["GET", "k"]), error("NOAUTH Authentication required."));
}

// One test per class of bad input. The texts are Redis 7's, checked against redis-server.

#[test]
fn an_unknown_type_byte_inside_a_request_is_refused() {
    let server = TestServer::start(&[]);
    server.assert_refuses(b"*1\r\n%3\r\n", "ERR Protocol error: expected '$', got '%'");
    server.assert_refuses(b"*2\r\n$4\r\nECHO\r\n:5\r\n", "ERR Protocol error: expected '$', got ':'");
    // At the start of a request any byte but '*' begins an inline command, as in Redis.
    let mut client = server.connect();
    client.write_raw(b"%3\r\n");
    assert_eq!(client.read_reply(), error("ERR unknown command '%3', with args beginning with: "));
    assert_eq!(client.send(&["PING"]), simple("PONG"));
}

#[test]
fn negative_lengths_are_refused() {
    let server = TestServer::start(&[]);
    server.assert_refuses(b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length");
    server.assert_refuses(b"*2\r\n$4\r\nECHO\r\n$-1\r\n", "ERR Protocol error: invalid bulk length");
    // A negative (or zero) count is an empty request, skipped as Redis skips it.
    let mut client = server.connect();
    client.write_raw(b"*-5\r\n*0\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(client.read_reply(), simple("PONG"));
}

#[test]
fn huge_lengths_are_refused() {
    let server = TestServer::start(&[]);
    server.assert_refuses(b"*1\r\n$99999999999999999999\r\n", "ERR Protocol error: invalid bulk length");
    server.assert_refuses(b"*1\r\n$9223372036854775807\r\n", "ERR Protocol error: invalid bulk length");
    server.assert_refuses(b"*99999999999999999999\r\n", "ERR Protocol error: invalid multibulk length");
    // Above the default --max-args (Redis allows more, up to 2^31 - 1: a documented limit).
    server.assert_refuses(b"*2000000\r\n", "ERR Protocol error: invalid multibulk length");
}

#[test]
fn missing_crlf_is_refused() {
    let server = TestServer::start(&[]);
    server.assert_refuses(b"*1$4\r\nPING\r\n", "ERR Protocol error: invalid multibulk length");
    server.assert_refuses(b"*1\n$4\r\nPING\r\n", "ERR Protocol error: invalid multibulk length");
    server.assert_refuses(b"*1\r\n$4PING\r\n", "ERR Protocol error: invalid bulk length");
    server.assert_refuses(b"*1\r\n$\r\nPING\r\n", "ERR Protocol error: invalid bulk length");
    // Like Redis, the two bytes after a bulk payload are taken as its CRLF unseen.
    let mut client = server.connect();
    client.write_raw(b"*1\r\n$4\r\nPINGXX*1\r\n$4\r\nPING\r\n");
    assert_eq!(client.read_replies(2), vec![simple("PONG"), simple("PONG")]);
}

#[test]
fn truncated_requests_wait_for_the_rest() {
    let server = TestServer::start(&[]);
    let request = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$11\r\nhello world\r\n";
    let mut client = server.connect();
    // Cut at every interesting place: in the count, a header, a payload, the final CRLF.
    for cut in [1, 3, 6, 12, 20, 30, request.len() - 1] {
        client.write_raw(&request[..cut]);
        client.assert_waiting(QUIET / 3);
        client.write_raw(&request[cut..]);
        assert_eq!(client.read_reply(), ok(), "the request cut at byte {cut}");
    }
    // A client that leaves in the middle of a request gets nothing and hurts nobody.
    let mut bystander = server.connect();
    assert_eq!(bystander.send(&["SET", "bystander", "still here"]), ok());
    let mut leaver = server.connect();
    leaver.write_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nspl");
    leaver.finish_writing();
    assert_eq!(leaver.replies_until_closed(), vec![]);
    server.assert_serving(&mut bystander);
    assert_eq!(bystander.send(&["GET", "split"]), bulk("hello world"));
}

#[test]
fn binary_garbage_is_refused() {
    let server = TestServer::start(&[]);
    // Redis echoes the raw byte; cstore shows a byte above 0x7f as its Latin-1 character.
    server.assert_refuses(b"*3\r\n\xff\xfe\xfd\r\n", "ERR Protocol error: expected '$', got '\u{ff}'");
    server.assert_refuses(b"*\xff\xfe\r\n", "ERR Protocol error: invalid multibulk length");
    // Arbitrary bytes after a '*': at most one protocol error each, and the server lives on.
    let mut bystander = server.connect();
    assert_eq!(bystander.send(&["SET", "bystander", "still here"]), ok());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..50 {
        let garbage: Vec<u8> = std::iter::once(b'*').chain((0..64).map(|_| next_byte(&mut seed))).collect();
        let mut client = server.connect();
        client.write_raw(&garbage);
        // End of input: a request still incomplete is dropped without a reply.
        client.finish_writing();
        let replies = client.replies_until_closed();
        let protocol_error =
            |reply: &Value| matches!(reply, Value::Error(text) if text.starts_with(b"ERR Protocol error: "));
        assert!(replies.len() <= 1 && replies.iter().all(protocol_error), "{garbage:?} got {replies:?}");
    }
    server.assert_serving(&mut bystander);
}

/// A deterministic xorshift byte stream, so a failing input can be reproduced.
fn next_byte(state: &mut u64) -> u8 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    state.to_le_bytes()[0]
}
