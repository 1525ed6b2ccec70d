//! `cstore serve` exporting spans to a real OTLP receiver (tests/common/otlp.rs), over gRPC
//! and HTTP: sampled commands, expiry sweeps, startup and shutdown, with their attributes and
//! resource; and a collector that is down or hangs never slows the store, its spans are
//! counted as dropped instead.

mod common;
#[path = "common/otlp.rs"]
mod otlp;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::server::{PATIENCE, TestServer, eventually, holds_within};
use cstore::server::resp_value::Value;
use otlp::{OtlpReceiver, ReceivedSpan, dump};

const POD: [(&str, &str); 2] = [("POD_NAME", "cstore-7d9f-x2k4q"), ("POD_NAMESPACE", "apps")];

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// Stops the server the way Kubernetes does, so it flushes its spans on the way out.
fn stop(mut server: TestServer) {
    server.signal("TERM");
    assert!(server.wait_for_exit(PATIENCE).success());
}

#[test]
fn sampled_commands_sweeps_startup_and_shutdown_reach_a_grpc_collector() {
    let receiver = OtlpReceiver::start();
    let endpoint = format!("http://{}", receiver.grpc_addr);
    let server = TestServer::start_with_env(
        &["--strategy", "RwLock", "--shards", "16", "--trace-sample-ratio", "1", "--otlp-endpoint", &endpoint],
        &POD,
    );
    let server_port = server.resp_addr.port();
    assert_eq!(server.send(&["SET", "greeting", "hello"]), Value::Simple("OK".into()));
    assert!(matches!(server.send(&["MGET", "greeting", "a", "b"]), Value::Array(values) if values.len() == 3));
    let not_a_number = server.send(&["INCR", "greeting"]);
    assert!(matches!(not_a_number, Value::Error(_)), "{not_a_number:?}");
    // The sweeper runs every 100 ms; one of its passes reclaims a key nobody reads. A pass is
    // traced only when it starts with keys that have a deadline, so one that began just
    // before the SET can reclaim the key untraced (seen on a loaded machine): write another,
    // after the exporter's 5 s batch delay, until a traced pass has reclaimed one.
    let swept =
        |spans: &[ReceivedSpan]| named(spans, "expiry sweep").iter().any(|span| span.attribute("expired") == Some("1"));
    let deadline = Instant::now() + PATIENCE;
    for attempt in 0.. {
        server.send(&["SET", &format!("short-lived:{attempt}"), "x", "PX", "1"]);
        if holds_within(Duration::from_secs(6), || swept(&receiver.spans())) {
            break;
        }
        assert!(Instant::now() < deadline, "no traced sweep reclaimed a key:\n{}", dump(&receiver.spans()));
    }
    // Every short-lived key is gone before the migration counts the keys it moves.
    eventually(PATIENCE, "the short-lived keys reclaimed", || server.send(&["DBSIZE"]) == Value::Integer(1));
    // A live migration is one span, with where it went from and to.
    assert_eq!(server.send(&["CONFIG", "SET", "strategy", "LockFree", "shards", "64"]), Value::Simple("OK".into()));
    let spans = receiver.wait_for(PATIENCE, |spans| !named(spans, "migration").is_empty());
    let migration = named(&spans, "migration")[0];
    for (key, value) in [
        ("cstore.from.strategy", "RwLock"),
        ("cstore.from.shards", "16"),
        ("cstore.to.strategy", "LockFree"),
        ("cstore.to.shards", "64"),
        ("cstore.keys_moved", "1"),
    ] {
        assert_eq!(migration.attribute(key), Some(value), "{key} of {migration:?}");
    }
    stop(server);

    let spans = receiver.wait_for(PATIENCE, |spans| !named(spans, "shutdown").is_empty());
    println!("{}", dump(&spans));
    let set = named(&spans, "SET")[0];
    assert_eq!(set.transport, "grpc");
    assert_eq!(set.parent_span_id, "", "a command is the root of its trace");
    assert_eq!(set.kind, 2, "a command is served: SpanKind SERVER");
    for (key, value) in [
        ("db.system.name", "redis"),
        ("db.operation.name", "set"),
        ("cstore.keys", "1"),
        ("cstore.request_bytes", "16"),
        ("cstore.reply_bytes", "5"),
        ("cstore.outcome", "ok"),
    ] {
        assert_eq!(set.attribute(key), Some(value), "{key} of {set:?}");
    }
    let shard: u64 = set.attribute("cstore.shard").unwrap().parse().unwrap();
    assert!(shard < 16);
    // Nanoseconds spent waiting for the shard lock: zero unless the sweeper held it.
    let _waited: u64 = set.attribute("cstore.lock_wait_ns").unwrap().parse().unwrap();
    for (key, value) in [
        ("service.name", "cstore"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("k8s.pod.name", POD[0].1),
        ("k8s.namespace.name", POD[1].1),
        ("cstore.strategy", "RwLock"),
        ("cstore.shards", "16"),
    ] {
        assert_eq!(set.resource.get(key).map(String::as_str), Some(value), "resource {key}");
    }
    assert_eq!(named(&spans, "MGET")[0].attribute("cstore.keys"), Some("3"));
    let failed = named(&spans, "INCR")[0];
    assert_eq!(failed.status_code, 2, "an error reply marks the span as an error");
    assert_eq!(failed.status_message, "ERR value is not an integer or out of range");
    assert_eq!(failed.attribute("cstore.outcome"), Some("error"));
    assert_eq!(named(&spans, "startup")[0].attribute("cstore.strategy"), Some("RwLock"));
    assert_eq!(named(&spans, "startup")[0].attribute("cstore.shards"), Some("16"));
    let port = named(&spans, "startup")[0].attribute("port").unwrap().parse::<u16>().unwrap();
    assert_eq!(port, server_port, "the startup span names the port the OS gave");
    let empty_sweeps = named(&spans, "expiry sweep").into_iter().filter(|s| s.attribute("examined") == Some("0"));
    assert!(empty_sweeps.count() <= 1, "a sweep with no keys to examine is not traced (beyond a race)");
    assert!(named(&spans, "shutdown")[0].attribute("open_connections").is_some());
    let sweep = named(&spans, "expiry sweep").into_iter().find(|span| span.attribute("expired") == Some("1")).unwrap();
    assert!(sweep.attribute("examined").unwrap().parse::<u64>().unwrap() >= 1);
}

#[test]
fn spans_go_over_http_too_and_ratio_zero_traces_no_command() {
    let receiver = OtlpReceiver::start();
    let endpoint = format!("http://{}", receiver.http_addr);
    let traced = TestServer::start(&["--otlp-protocol", "http/protobuf", "--otlp-endpoint", &endpoint]);
    traced.send(&["CONFIG", "SET", "trace-sample-ratio", "1"]);
    traced.send(&["SET", "k", "v"]);
    traced.send(&["CONFIG", "SET", "trace-sample-ratio", "0"]);
    for _ in 0..200 {
        traced.send(&["GET", "k"]);
    }
    stop(traced);
    let spans = receiver.wait_for(PATIENCE, |spans| !named(spans, "shutdown").is_empty());
    assert!(spans.iter().all(|span| span.transport == "http"));
    assert_eq!(named(&spans, "SET").len(), 1, "{}", dump(&spans));
    assert!(named(&spans, "GET").is_empty(), "ratio 0 traces nothing:\n{}", dump(&spans));
    assert_eq!(named(&spans, "SET")[0].resource.get("service.name").map(String::as_str), Some("cstore"));
}

#[test]
fn a_traceparent_makes_the_next_command_its_child_and_the_migration_links_to_that() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const RECONCILE: &str = "00f067aa0ba902b7";
    const UNSAMPLED: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = OtlpReceiver::start();
    let endpoint = format!("http://{}", receiver.grpc_addr);
    // Ratio 0: commands are traced only because a caller's sampled trace context asks.
    let server = TestServer::start(&["--otlp-endpoint", &endpoint]);
    let mut client = server.connect();
    assert_eq!(client.send(&["SET", "k", "v"]), Value::Simple("OK".into()));
    let traceparent = format!("00-{TRACE}-{RECONCILE}-01");
    assert_eq!(client.send(&["CLIENT", "TRACEPARENT", &traceparent]), Value::Simple("OK".into()));
    assert_eq!(client.send(&["CONFIG", "SET", "strategy", "LockFree", "shards", "64"]), Value::Simple("OK".into()));
    // Only the next command: this one is not traced.
    assert_eq!(client.send(&["GET", "k"]), Value::Bulk("v".into()));
    // The caller's decision not to sample is followed too.
    let unsampled = format!("00-{UNSAMPLED}-{RECONCILE}-00");
    assert_eq!(client.send(&["CLIENT", "TRACEPARENT", &unsampled]), Value::Simple("OK".into()));
    assert_eq!(client.send(&["PING"]), Value::Simple("PONG".into()));
    for malformed in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "nonsense",
    ] {
        let expected = format!(
            "ERR invalid traceparent '{malformed}': expected W3C Trace Context 00-<32 hex digits trace id>-<16 hex \
             digits parent id>-<2 hex digits flags>, lowercase, ids not all zero"
        );
        assert_eq!(client.send(&["CLIENT", "TRACEPARENT", malformed]), Value::Error(expected.into()));
    }
    let arity = Value::Error("ERR wrong number of arguments for 'client|traceparent' command".into());
    assert_eq!(client.send(&["CLIENT", "TRACEPARENT"]), arity);
    assert_eq!(client.send(&["CLIENT", "TRACEPARENT", &traceparent, "extra"]), arity);
    stop(server);

    let spans = receiver.wait_for(PATIENCE, |spans| !named(spans, "shutdown").is_empty());
    println!("{}", dump(&spans));
    let config = named(&spans, "CONFIG");
    assert_eq!(config.len(), 1, "only the CONFIG SET after CLIENT TRACEPARENT is traced");
    let config = config[0];
    assert_eq!((config.trace_id.as_str(), config.parent_span_id.as_str()), (TRACE, RECONCILE));
    assert_eq!(config.attribute("db.operation.name"), Some("config"));
    let migration = named(&spans, "migration")[0];
    assert_eq!(migration.links, [(TRACE.to_owned(), config.span_id.clone())], "{migration:?}");
    assert!(named(&spans, "GET").is_empty() && named(&spans, "PING").is_empty(), "{}", dump(&spans));
    assert!(spans.iter().all(|span| span.trace_id != UNSAMPLED));
}

/// A port nothing listens on: bound by the OS, then released.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_collector_that_refuses_or_hangs_costs_dropped_spans_not_availability() {
    // One collector refuses connections; the other accepts them and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing = format!("http://127.0.0.1:{}", closed_port());
    let hanging_endpoint = format!("http://{}", hanging.local_addr().unwrap());
    for endpoint in [refusing, hanging_endpoint] {
        let flags = [
            "--trace-sample-ratio",
            "1",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-max-queue-size",
            "64",
            "--otlp-timeout-ms",
            "1000",
        ];
        let server = TestServer::start(&flags);
        let mut client = server.connect();
        let started = Instant::now();
        let commands: Vec<Vec<String>> =
            (0..2000).map(|i| vec!["SET".into(), format!("key:{i}"), "v".into()]).collect();
        for chunk in commands.chunks(100) {
            let replies = client.pipeline(chunk);
            assert!(replies.iter().all(|reply| *reply == Value::Simple("OK".into())), "{endpoint}");
        }
        let elapsed = started.elapsed();
        assert_eq!(server.send(&["DBSIZE"]), Value::Integer(2000));
        let deadline = Instant::now() + PATIENCE;
        let dropped = loop {
            let dropped = server.metric("cstore_trace_spans_dropped_total").unwrap_or(0.0);
            if dropped >= 1000.0 || Instant::now() > deadline {
                break dropped;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // 2,000 spans cannot fit a queue of 64 behind a collector that takes none of them.
        assert!(dropped >= 1000.0, "{endpoint}: only {dropped} spans counted as dropped");
        println!("{endpoint}: 2000 traced SETs answered in {elapsed:?}; {dropped} spans dropped");
        let warned = server.logs_within_seconds("trace spans are being dropped");
        assert!(warned, "{endpoint}: no warning logged");
        stop(server);
    }
    drop(hanging);
}
