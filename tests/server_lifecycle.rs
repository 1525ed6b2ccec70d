//! The life of a `cstore serve` process: the admin endpoints while it serves, idle clients
//! timing out, and graceful shutdown on SIGTERM and SIGINT: not ready, no new clients, every
//! request already received answered, exit status 0.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::server::{Received, RespClient, TestServer, bulk, eventually, http_get, int, ok, simple, text_of};
use cstore::engine::Strategy;
use cstore::server::resp_value::Value;

/// Grace period given to the server under test; draining must finish well within it.
const GRACE_SECS: u64 = 20;

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let server = TestServer::start(&[]);
    assert_eq!((server.admin_get("/healthz").status, server.admin_get("/healthz").body.as_str()), (200, "ok"));
    let ready = server.admin_get("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    assert_eq!(server.admin_get("/nope").status, 404);

    let mut client = server.connect();
    for key in ["a", "b", "c"] {
        assert_eq!(client.send(&["SET", key, "value"]), ok());
    }
    assert_eq!(client.send(&["GET", "a"]), bulk("value"));
    assert!(matches!(client.send(&["INCR", "a"]), cstore::server::resp_value::Value::Error(_)));
    assert!(matches!(client.send(&["NOSUCH"]), cstore::server::resp_value::Value::Error(_)));

    let expected = [
        ("cstore_commands_total{command=\"set\",outcome=\"ok\"}", 3.0),
        ("cstore_commands_total{command=\"get\",outcome=\"ok\"}", 1.0),
        ("cstore_commands_total{command=\"incr\",outcome=\"error\"}", 1.0),
        ("cstore_unknown_commands_total", 1.0),
        ("cstore_connected_clients", 1.0),
        ("cstore_keys", 3.0),
    ];
    for (series, value) in expected {
        assert_eq!(server.metric(series), Some(value), "{series}");
    }
    let memory = server.metric("cstore_memory_bytes").expect("cstore_memory_bytes");
    assert!(memory > 0.0, "cstore_memory_bytes is {memory}");
    drop(client);
}

/// 127.0.0.1, and ::1 unless this machine has no IPv6 loopback (then the test says so).
fn loopbacks() -> Vec<IpAddr> {
    let mut loopbacks = vec![IpAddr::from(Ipv4Addr::LOCALHOST)];
    match std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => loopbacks.push(Ipv6Addr::LOCALHOST.into()),
        Err(error) => eprintln!("not testing ::1, this machine has no IPv6 loopback: {error}"),
    }
    loopbacks
}

#[test]
fn the_default_bind_serves_ipv6_and_ipv4_clients_on_both_ports() {
    let server = TestServer::start_on_default_bind(&[]);
    assert_eq!(server.send(&["CONFIG", "GET", "bind"]), Value::Array(vec![bulk("bind"), bulk("::")]));
    let (port, admin_port) = (server.resp_addr.port(), server.admin_addr.port());
    for ip in loopbacks() {
        let mut client = RespClient::connect(SocketAddr::new(ip, port));
        assert_eq!(client.send(&["SET", "reached-over", &ip.to_string()]), ok());
        assert_eq!(client.send(&["GET", "reached-over"]), bulk(ip.to_string()));
        // Each client sees the addresses it used: 127.0.0.1 rather than ::ffff:127.0.0.1.
        let info = text_of(&client.send(&["CLIENT", "INFO"]));
        let local = SocketAddr::new(ip, port);
        let peer = match ip {
            IpAddr::V4(_) => format!(" addr={ip}:"),
            IpAddr::V6(_) => format!(" addr=[{ip}]:"),
        };
        assert!(info.contains(&peer) && info.contains(&format!(" laddr={local} ")), "{ip}: {info}");
        let health = http_get(SocketAddr::new(ip, admin_port), "/healthz");
        assert_eq!((health.status, health.body.as_str()), (200, "ok"), "{ip}");
    }
}

#[test]
fn idle_clients_are_disconnected_after_the_timeout() {
    let server = TestServer::start(&["--client-idle-timeout-secs", "1"]);
    let mut idle = server.connect();
    let mut busy = server.connect();
    assert_eq!(idle.send(&["PING"]), simple("PONG"));
    let idle_since = Instant::now();
    // A client that keeps talking is never idle for a whole second.
    while idle_since.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.send(&["PING"]), simple("PONG"));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(idle.read_within(Duration::from_secs(5)), Received::Closed);
    assert!(idle_since.elapsed() >= Duration::from_secs(1));
    assert_eq!(busy.send(&["PING"]), simple("PONG"));
}

#[test]
fn sigterm_answers_the_requests_in_flight_and_exits_zero_under_every_engine() {
    for strategy in Strategy::ALL {
        assert_graceful_shutdown(strategy, "TERM", Arrival::ReadBeforeTheSignal);
    }
}

#[test]
fn sigint_answers_the_requests_in_flight_and_exits_zero() {
    assert_graceful_shutdown(Strategy::RwLock, "INT", Arrival::ReadBeforeTheSignal);
}

/// Requests still unread in the socket buffer when the signal arrives were sent before
/// shutdown: they are answered, and the close does not reset the connection (which would
/// destroy replies already written).
#[test]
fn sigterm_answers_requests_still_in_the_socket_buffer() {
    assert_graceful_shutdown(Strategy::RwLock, "TERM", Arrival::InTheSocketBufferAtTheSignal);
}

/// Where the last request of the pipelined batch is when the signal arrives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Sent with the rest of the batch in one write, so the server has read it.
    ReadBeforeTheSignal,
    /// Sent on its own while the server is blocked writing replies, so it waits, unread, in
    /// the server's socket buffer.
    InTheSocketBufferAtTheSignal,
}

/// A client pipelines far more reply bytes than the sockets buffer and reads none of them,
/// so the server is still writing when the signal arrives: the drain is observable. Then the
/// client reads everything and the server exits 0.
fn assert_graceful_shutdown(strategy: Strategy, signal: &str, last_request: Arrival) {
    const BIG_VALUE_LEN: usize = 4 << 20;
    const GETS: usize = 16;
    let grace = GRACE_SECS.to_string();
    let mut server = TestServer::with_engine(strategy, 16, &["--shutdown-grace-secs", &grace]);
    let big = "x".repeat(BIG_VALUE_LEN);
    let mut client = server.connect();
    assert_eq!(client.send(&["SET", "big", &big]), ok());
    let mut idle = server.connect();
    assert_eq!(idle.send(&["PING"]), simple("PONG"));

    let mut batch: Vec<Vec<&str>> = vec![vec!["GET", "big"]; GETS];
    let last = vec!["INCR", "after-the-gets"];
    if last_request == Arrival::ReadBeforeTheSignal {
        batch.push(last.clone());
    }
    client.write_commands(&batch);
    // Wait until the server is answering the batch (and blocked writing it).
    let get_series = "cstore_commands_total{command=\"get\",outcome=\"ok\"}";
    eventually(Duration::from_secs(10), "the server starts on the batch", || {
        server.metric(get_series).is_some_and(|gets| gets >= 1.0)
    });
    if last_request == Arrival::InTheSocketBufferAtTheSignal {
        client.write_command(&last);
    }

    server.signal(signal);
    eventually(Duration::from_secs(10), "/readyz reports draining", || server.admin_get("/readyz").body == "draining");
    assert_eq!(server.admin_get("/readyz").status, 503);
    // The listener closes right after readiness turns: wait for it rather than race it.
    eventually(Duration::from_secs(10), "the listener refuses new clients", || {
        TcpStream::connect(server.resp_addr).is_err()
    });
    // A client with nothing in flight is let go at once.
    assert_eq!(idle.read_within(Duration::from_secs(5)), Received::Closed);

    for i in 0..GETS {
        assert!(client.read_reply() == bulk(&big), "GET {i} of the batch was not answered with the value");
    }
    assert_eq!(client.read_reply(), int(1));
    assert_eq!(client.read_within(Duration::from_secs(5)), Received::Closed);

    let status = server.wait_for_exit(Duration::from_secs(GRACE_SECS));
    assert!(status.success(), "cstore serve exited with {status} after SIG{signal}");
    let log = server.log().join("\n");
    for message in ["shutting down: draining connections", "cstore serve stopped"] {
        assert!(log.contains(message), "no {message:?} in the log:\n{log}");
    }
}
