//! Memory and time per client, reached on purpose over the network: replies far larger than
//! memory, clients that never read, `client-output-buffer-limit`, `maxmemory-clients` (client
//! eviction), KEYS within the output limit, buffers trimmed after a large request, limits
//! before AUTH, authentication decided per command, `tcp-keepalive`, the open files limit, and
//! what CLIENT LIST and INFO show of it all.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{RespClient, TestServer, bulk, error, eventually, ok, simple, text_of};
use cstore::server::resp_value::Value;

const MIB: usize = 1 << 20;

/// Sets `key` to a 1 MiB value.
fn set_large(client: &mut RespClient, key: &str) {
    assert_eq!(client.send(&["SET", key, &"v".repeat(MIB)]), ok());
}

/// Sends `count` pipelined GETs of the 1 MiB value `big` and never reads the replies.
fn pipeline_large_gets_unread(stalled: &mut RespClient, count: usize) {
    let gets: Vec<Vec<&str>> = (0..count).map(|_| vec!["GET", "big"]).collect();
    stalled.write_commands(&gets);
}

/// `MGET key key ... (times)`.
fn mget_repeated(key: &str, times: usize) -> Vec<String> {
    std::iter::once("MGET".to_owned()).chain(std::iter::repeat_n(key.to_owned(), times)).collect()
}

/// The fields of this client's line in CLIENT LIST, by name.
fn client_fields(observer: &mut RespClient, id: i64) -> Vec<(String, String)> {
    let list = text_of(&observer.send(&["CLIENT", "LIST", "ID", &id.to_string()]));
    let line = list.lines().next().unwrap_or_else(|| panic!("no client {id} in CLIENT LIST"));
    line.split(' ').filter_map(|field| field.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn field(fields: &[(String, String)], name: &str) -> usize {
    fields.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or_else(|| panic!("{name}"))
}

fn client_id(client: &mut RespClient) -> i64 {
    match client.send(&["CLIENT", "ID"]) {
        Value::Integer(id) => id,
        other => panic!("CLIENT ID answered {other:?}"),
    }
}

fn connected_clients(client: &mut RespClient) -> usize {
    client.info_field("connected_clients").parse().unwrap()
}

fn info_number(client: &mut RespClient, name: &str) -> usize {
    client.info_field(name).parse().unwrap_or_else(|_| panic!("INFO {name}"))
}

/// The ids CLIENT LIST shows.
fn listed_ids(observer: &mut RespClient) -> Vec<i64> {
    let list = text_of(&observer.send(&["CLIENT", "LIST"]));
    list.lines().filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok()).collect()
}

/// A client named `name` that sends `GET key` and never reads the reply, with its id.
fn unread_get(server: &TestServer, name: &str, key: &str) -> (RespClient, i64) {
    let mut client = server.connect();
    assert_eq!(client.send(&["CLIENT", "SETNAME", name]), ok());
    let id = client_id(&mut client);
    client.write_command(&["GET", key]);
    (client, id)
}

/// Client `id`'s `tot-mem` once it has stopped changing (its socket took what it could).
fn settled_tot_mem(observer: &mut RespClient, id: i64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut previous = None;
    loop {
        let now = field(&client_fields(observer, id), "tot-mem");
        if previous == Some(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "client {id}'s memory keeps changing");
        previous = Some(now);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_mget_naming_a_large_value_hundreds_of_times_is_streamed_not_built() {
    const TIMES: usize = 600;
    let server = TestServer::start(&["--client-write-timeout-secs", "2"]);
    let mut client = server.connect();
    set_large(&mut client, "big");
    let before = server.rss_bytes();

    // A reader gets every byte of a 600 MiB reply, more than the 256 MiB hard output limit:
    // the reply is written as it is produced.
    let mut reader = TcpStream::connect(server.resp_addr).unwrap();
    let mut request = bytes::BytesMut::new();
    cstore::server::resp_value::encode_command(&mget_repeated("big", TIMES), &mut request);
    reader.write_all(&request).unwrap();
    let element = format!("${MIB}\r\n").len() + MIB + 2;
    let expected = format!("*{TIMES}\r\n").len() + TIMES * element;
    reader.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut received, mut chunk) = (0usize, vec![0u8; 1 << 20]);
    let mut head = Vec::new();
    while received < expected {
        let read = reader.read(&mut chunk).expect("the reply stops short");
        assert!(read > 0, "closed after {received} of {expected} bytes");
        if head.len() < 32 {
            head.extend_from_slice(&chunk[..read.min(32)]);
        }
        received += read;
    }
    assert!(head.starts_with(format!("*{TIMES}\r\n${MIB}\r\nvvvv").as_bytes()), "{:?}", String::from_utf8_lossy(&head));
    let growth = server.peak_rss_bytes().saturating_sub(before);
    assert!(growth < 64 << 20, "streaming {TIMES} MiB grew the peak RSS by {growth} bytes");
    drop(reader);

    // The same request, never read: the server does not build it either, and lets the client go.
    let mut idle = server.connect();
    assert_eq!(idle.send(&["PING"]), simple("PONG"));
    idle.write_commands(&[mget_repeated("big", TIMES)]);
    std::thread::sleep(Duration::from_secs(1));
    let growth = server.rss_bytes().saturating_sub(before);
    assert!(growth < 64 << 20, "an unread {TIMES} MiB reply grew the RSS by {growth} bytes");
    eventually(Duration::from_secs(15), "the non-reading client is closed", || connected_clients(&mut client) == 1);
    assert_eq!(client.send(&["PING"]), simple("PONG"));
}

#[test]
fn a_client_that_never_reads_is_closed_at_its_write_deadline_while_others_are_served() {
    let server = TestServer::start(&["--client-write-timeout-secs", "1"]);
    let mut bystander = server.connect();
    set_large(&mut bystander, "big");
    let mut stalled = server.connect();
    assert_eq!(stalled.send(&["PING"]), simple("PONG"));
    // 2000 GETs fit in the socket buffers; the 2 GB of replies do not.
    pipeline_large_gets_unread(&mut stalled, 2000);
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = Instant::now();
        assert_eq!(bystander.send(&["PING"]), simple("PONG"));
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(100), "a PING took {slowest:?} next to a stalled client");
    eventually(Duration::from_secs(10), "the stalled client is closed", || connected_clients(&mut bystander) == 1);
    assert!(server.logs_within_seconds("left its replies unread"), "{:?}", server.log());
}

#[test]
fn the_hard_output_limit_closes_a_client_whose_reply_reaches_it() {
    let server = TestServer::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut client = server.connect();
    assert_eq!(
        client.send(&["CONFIG", "GET", "client-output-buffer-limit"]),
        Value::Array(vec![
            bulk("client-output-buffer-limit"),
            bulk("normal 1048576 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
        ])
    );
    assert_eq!(client.send(&["SET", "two-mib", &"v".repeat(2 * MIB)]), ok());
    assert_eq!(client.send(&["SET", "small", "v"]), ok());
    let mut greedy = server.connect();
    greedy.write_command(&["GET", "two-mib"]);
    assert_eq!(greedy.replies_until_closed(), vec![], "nothing of a reply over the hard limit is sent");
    assert!(server.logs_within_seconds("overcoming of output buffer limits"), "the limit is not logged");
    assert_eq!(client.send(&["GET", "small"]), bulk("v"));
    // Changed at runtime, in Redis's syntax and with its errors.
    assert_eq!(client.send(&["CONFIG", "SET", "client-output-buffer-limit", "normal 4mb 0 0"]), ok());
    assert_eq!(server.connect().send(&["GET", "two-mib"]), bulk("v".repeat(2 * MIB)));
    assert_eq!(
        client.send(&["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 512kb"]),
        error(
            "ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Wrong number of \
             arguments in buffer limit configuration."
        )
    );
}

#[test]
fn the_soft_output_limit_closes_a_client_that_stays_over_it() {
    let server =
        TestServer::start(&["--client-output-buffer-limit", "normal 0 1kb 1", "--client-write-timeout-secs", "0"]);
    let mut client = server.connect();
    set_large(&mut client, "big");
    let mut stalled = server.connect();
    assert_eq!(stalled.send(&["PING"]), simple("PONG"));
    assert_eq!(connected_clients(&mut client), 2);
    pipeline_large_gets_unread(&mut stalled, 64);
    let started = Instant::now();
    eventually(Duration::from_secs(10), "the client over the soft limit is closed", || {
        connected_clients(&mut client) == 1
    });
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}, before its second", started.elapsed());
}

#[test]
fn shutdown_does_not_wait_its_grace_period_for_a_client_that_never_reads() {
    let mut server = TestServer::start(&["--shutdown-grace-secs", "60"]);
    let mut client = server.connect();
    set_large(&mut client, "big");
    let mut stalled = server.connect();
    pipeline_large_gets_unread(&mut stalled, 200);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.signal("TERM");
    assert!(server.wait_for_exit(Duration::from_secs(20)).success());
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
}

#[test]
fn buffers_left_large_by_one_request_are_trimmed_and_client_list_shows_them() {
    let server = TestServer::start(&[]);
    let mut observer = server.connect();
    let mut client = server.connect();
    let id = client_id(&mut client);
    // Half of a 4 MiB SET: the read buffer holds it, CLIENT LIST shows it.
    let header = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 4 * MIB);
    client.write_raw(header.as_bytes());
    client.write_raw(&vec![b'v'; 2 * MIB]);
    eventually(Duration::from_secs(5), "qbuf shows the partial request", || {
        field(&client_fields(&mut observer, id), "qbuf") >= 2 * MIB
    });
    let fields = client_fields(&mut observer, id);
    assert!(field(&fields, "tot-mem") >= field(&fields, "qbuf"), "{fields:?}");
    client.write_raw(&vec![b'v'; 2 * MIB]);
    client.write_raw(b"\r\n");
    assert_eq!(client.read_reply(), ok());
    let mem: usize = observer.info_field("mem_clients_normal").parse().unwrap();
    assert!(mem > 0, "mem_clients_normal {mem}");
    // Idle for a while, its buffers go back to their usual size.
    eventually(Duration::from_secs(10), "the read buffer is trimmed", || {
        field(&client_fields(&mut observer, id), "tot-mem") < 256 * 1024
    });

    // A client that does not read shows its pending output.
    set_large(&mut observer, "big");
    let mut stalled = server.connect();
    let stalled_id = client_id(&mut stalled);
    pipeline_large_gets_unread(&mut stalled, 16);
    eventually(Duration::from_secs(5), "omem shows the unread replies", || {
        field(&client_fields(&mut observer, stalled_id), "omem") > 0
    });
    let recent: usize = observer.info_field("client_recent_max_output_buffer").parse().unwrap();
    assert!(recent > 0, "client_recent_max_output_buffer {recent}");
}

#[test]
fn before_auth_requests_are_limited_as_redis_limits_them() {
    let server = TestServer::start(&["--requirepass", "pw"]);
    let refused = |bytes: &[u8], expected: &str| assert_eq!(server.send_raw(bytes), vec![error(expected)]);
    let eleven = format!("*11\r\n{}", "$1\r\na\r\n".repeat(11));
    refused(eleven.as_bytes(), "ERR Protocol error: unauthenticated multibulk length");
    refused(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", "ERR Protocol error: unauthenticated bulk length");
    // Refused by the header alone, before the 512 MiB are sent.
    refused(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n", "ERR Protocol error: unauthenticated bulk length");
    // Up to the limits, a request before AUTH is answered (NOAUTH), and the connection stays.
    let ten = format!("*10\r\n$4\r\nMSET\r\n{}", format!("$16384\r\n{}\r\n", "v".repeat(16384)).repeat(9));
    let mut waiting = server.connect();
    waiting.write_raw(ten.as_bytes());
    assert_eq!(waiting.read_reply(), error("NOAUTH Authentication required."));
    assert_eq!(waiting.send(&["AUTH", "pw"]), ok());
    let mut client = server.connect();
    assert_eq!(client.send(&["AUTH", "pw"]), ok());
    let large = "v".repeat(64 * 1024);
    let args: Vec<String> = ["MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"].map(String::from).to_vec();
    assert_eq!(client.send(&args), ok());
    assert_eq!(client.send(&["SET", "large", &large]), ok());
}

#[test]
fn fifty_unauthenticated_clients_announcing_512_mib_cost_almost_nothing() {
    let server = TestServer::start(&["--requirepass", "pw"]);
    let before = server.rss_bytes();
    let mut clients: Vec<RespClient> = (0..50).map(|_| server.connect()).collect();
    for client in &mut clients {
        client.write_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n");
    }
    for client in &mut clients {
        assert_eq!(client.replies_until_closed(), vec![error("ERR Protocol error: unauthenticated bulk length")]);
    }
    let growth = server.rss_bytes().saturating_sub(before);
    assert!(growth < 16 << 20, "50 announcers grew the RSS by {growth} bytes");
}

/// What redis-server 7.0.15 does: whether a command needs AUTH is decided against the password
/// in force when it runs; a client connected while no password was set stays authenticated.
#[test]
fn authentication_is_decided_per_command_against_the_current_password() {
    let server = TestServer::start(&[]);
    let mut early = server.connect();
    // Served before the password is set (a connection is admitted when the server accepts it).
    assert_eq!(early.send(&["PING"]), simple("PONG"));
    let mut admin = server.connect();
    assert_eq!(admin.send(&["CONFIG", "SET", "requirepass", "pw"]), ok());
    assert_eq!(early.send(&["PING"]), simple("PONG"));
    assert_eq!(admin.send(&["PING"]), simple("PONG"));
    let mut late = server.connect();
    assert_eq!(late.send(&["PING"]), error("NOAUTH Authentication required."));
    assert_eq!(admin.send(&["CONFIG", "SET", "requirepass", ""]), ok());
    assert_eq!(late.send(&["PING"]), simple("PONG"), "clearing the password releases waiting clients");
    assert_eq!(admin.send(&["CONFIG", "SET", "requirepass", "pw"]), ok());
    assert_eq!(late.send(&["PING"]), error("NOAUTH Authentication required."));
    assert_eq!(late.send(&["AUTH", "p"]), error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(late.send(&["AUTH", "pw"]), ok());
    assert_eq!(late.send(&["PING"]), simple("PONG"));
}

/// The server side of the connection from `client` as `ss` shows it, with its timer.
fn server_socket(server: &TestServer, client: &TcpStream) -> String {
    let filter =
        format!("( sport = :{} and dport = :{} )", server.resp_addr.port(), client.local_addr().unwrap().port());
    let output = Command::new("ss").args(["-tnoH", "state", "established", &filter]).output().expect("ss runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn tcp_keepalive_is_set_on_accepted_sockets_and_changes_at_runtime() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    assert_eq!(
        client.send(&["CONFIG", "GET", "tcp-keepalive"]),
        Value::Array(vec![bulk("tcp-keepalive"), bulk("300")])
    );
    // ss shows the keepalive timer once no other timer (a delayed ACK) is pending.
    let with = TcpStream::connect(server.resp_addr).unwrap();
    eventually(Duration::from_secs(5), "a keepalive timer of about 300 s", || {
        server_socket(&server, &with).contains("timer:(keepalive,4min")
    });
    assert_eq!(client.send(&["CONFIG", "SET", "tcp-keepalive", "0"]), ok());
    let without = TcpStream::connect(server.resp_addr).unwrap();
    eventually(Duration::from_secs(5), "the connection is accepted", || !server_socket(&server, &without).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert!(!server_socket(&server, &without).contains("keepalive"), "{}", server_socket(&server, &without));
    assert_eq!(
        client.send(&["CONFIG", "SET", "tcp-keepalive", "-1"]),
        error(
            "ERR CONFIG SET failed (possibly related to argument 'tcp-keepalive') - argument must be between 0 and \
             2147483647 inclusive"
        )
    );
}

#[test]
fn maxclients_is_lowered_to_fit_the_open_files_limit() {
    let server = TestServer::start_wrapped(&["prlimit", "--nofile=96:96"], &["--maxclients", "1000"], &[]);
    let mut client = server.connect();
    assert_eq!(client.send(&["CONFIG", "GET", "maxclients"]), Value::Array(vec![bulk("maxclients"), bulk("64")]));
    assert!(server.logs_within_seconds("maxclients lowered"), "{:?}", server.log());
    // Within what fits, nothing changes.
    let roomy = TestServer::start_wrapped(&["prlimit", "--nofile=64:4096"], &["--maxclients", "1000"], &[]);
    let limit = std::fs::read_to_string(format!("/proc/{}/limits", roomy.pid)).unwrap();
    let open_files = limit.lines().find(|line| line.starts_with("Max open files")).unwrap();
    assert!(open_files.split_whitespace().nth(3) == Some("1032"), "soft limit raised to 1000 + 32: {open_files}");
    assert_eq!(roomy.send(&["CONFIG", "GET", "maxclients"]), Value::Array(vec![bulk("maxclients"), bulk("1000")]));
}

#[test]
fn maxmemory_clients_evicts_the_clients_using_the_most_until_the_rest_fit() {
    let server = TestServer::start(&[]);
    // Each on a connection of its own, closed after: a read buffer that took a large SET is
    // large until it is trimmed, and would count.
    for (key, mib) in [("huge", 32), ("large", 24), ("medium", 8)] {
        assert_eq!(server.send(&["SET", key, &"v".repeat(mib * MIB)]), ok());
    }
    let mut observer = server.connect();
    // The largest client of all, but exempt from eviction.
    let mut protected = server.connect();
    assert_eq!(protected.send(&["CLIENT", "NO-EVICT", "on"]), ok());
    let protected_id = client_id(&mut protected);
    protected.write_command(&["GET", "huge"]);
    let (_largest, largest_id) = unread_get(&server, "largest", "large");
    let (mut medium, medium_id) = unread_get(&server, "medium", "medium");
    let (mut other_medium, other_medium_id) = unread_get(&server, "other-medium", "medium");
    let protected_memory = settled_tot_mem(&mut observer, protected_id);
    let largest_memory = settled_tot_mem(&mut observer, largest_id);
    let medium_memory = settled_tot_mem(&mut observer, medium_id).max(settled_tot_mem(&mut observer, other_medium_id));
    assert!(
        protected_memory > largest_memory && largest_memory > medium_memory,
        "{protected_memory} {largest_memory} {medium_memory}"
    );

    // A limit the clients are over by half the largest evictable one: it alone must go.
    let total = info_number(&mut observer, "mem_clients_normal");
    let limit = total - largest_memory / 2;
    assert_eq!(observer.send(&["CONFIG", "SET", "maxmemory-clients", &limit.to_string()]), ok());
    eventually(Duration::from_secs(5), "the largest evictable client is evicted", || {
        !listed_ids(&mut observer).contains(&largest_id)
    });
    std::thread::sleep(Duration::from_millis(300));
    let listed = listed_ids(&mut observer);
    for id in [protected_id, medium_id, other_medium_id] {
        assert!(listed.contains(&id), "client {id} was evicted too: {listed:?}");
    }
    assert_eq!(info_number(&mut observer, "evicted_clients"), 1);
    assert!(info_number(&mut observer, "mem_clients_normal") < limit);
    assert!(server.logs_within_seconds("client evicted"), "{:?}", server.log());

    // The others are served as before.
    assert_eq!(medium.read_reply(), bulk("v".repeat(8 * MIB)));
    assert_eq!(medium.send(&["PING"]), simple("PONG"));
    assert_eq!(other_medium.read_reply(), bulk("v".repeat(8 * MIB)));
    assert_eq!(protected.read_reply(), bulk("v".repeat(32 * MIB)));
    assert_eq!(protected.send(&["PING"]), simple("PONG"));
    assert_eq!(info_number(&mut observer, "evicted_clients"), 1);
}

#[test]
fn clients_are_evicted_as_their_buffers_grow_past_maxmemory_clients() {
    let server = TestServer::start(&["--maxmemory-clients", "4mb"]);
    let mut observer = server.connect();
    assert_eq!(
        observer.send(&["CONFIG", "GET", "maxmemory-clients"]),
        Value::Array(vec![bulk("maxmemory-clients"), bulk("4194304")])
    );
    // A 16 MiB value, in parts: one SET of it would take a read buffer over the limit.
    let mut loader = server.connect();
    for part in 1..=16 {
        assert_eq!(loader.send(&["APPEND", "big", &"v".repeat(MIB)]), Value::Integer((part * MIB) as i64));
    }
    drop(loader);

    // A request arriving in parts: under the limit it waits for the rest, past it the client goes.
    let mut sender = server.connect();
    let sender_id = client_id(&mut sender);
    sender.write_raw(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 16 * MIB).as_bytes());
    sender.write_raw(&vec![b'v'; MIB]);
    eventually(Duration::from_secs(5), "the first mebibyte is buffered", || {
        field(&client_fields(&mut observer, sender_id), "qbuf") >= MIB
    });
    assert_eq!(info_number(&mut observer, "evicted_clients"), 0);
    sender.write_raw_until_closed(&vec![b'v'; 4 * MIB]);
    eventually(Duration::from_secs(5), "the sender is evicted", || !listed_ids(&mut observer).contains(&sender_id));
    assert_eq!(info_number(&mut observer, "evicted_clients"), 1);

    // A reply the client does not read: evicted while it waits, long before its output limit.
    let (_reader, reader_id) = unread_get(&server, "reader", "big");
    eventually(Duration::from_secs(5), "the reader is evicted", || !listed_ids(&mut observer).contains(&reader_id));
    assert_eq!(info_number(&mut observer, "evicted_clients"), 2);
    assert_eq!(observer.send(&["PING"]), simple("PONG"));
    assert_eq!(server.send(&["GET", "k"]), Value::NullBulk, "the partial SET was never executed");
}

#[test]
fn maxmemory_clients_and_client_no_evict_follow_redis() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let get = |client: &mut RespClient| client.send(&["CONFIG", "GET", "maxmemory-clients"]);
    let pair = |value: &str| Value::Array(vec![bulk("maxmemory-clients"), bulk(value)]);
    assert_eq!(get(&mut client), pair("10%"), "the default: 10% of maxmemory");
    for (set, shown) in [("64mb", "67108864"), ("5%", "5%"), ("0%", "0"), ("1gb", "1073741824"), ("0", "0")] {
        assert_eq!(client.send(&["CONFIG", "SET", "maxmemory-clients", set]), ok());
        assert_eq!(get(&mut client), pair(shown), "{set}");
    }
    let refused = |reason: &str| {
        error(&format!("ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - {reason}"))
    };
    for (value, reason) in [
        ("abc", "argument must be a memory or percent value"),
        ("-1", "argument must be a memory or percent value"),
        ("1.5gb", "argument must be a memory or percent value"),
        ("5.5%", "argument must be a memory or percent value"),
        ("101%", "percentage argument must be less or equal to 100"),
    ] {
        assert_eq!(client.send(&["CONFIG", "SET", "maxmemory-clients", value]), refused(reason), "{value}");
    }
    assert_eq!(get(&mut client), pair("0"), "a refused value changes nothing");
    assert_eq!(client.info_field("evicted_clients"), "0");
    assert!(info_number(&mut client, "mem_clients_normal") > 0);

    assert_eq!(client.send(&["CLIENT", "NO-EVICT", "ON"]), ok());
    assert!(text_of(&client.send(&["CLIENT", "INFO"])).contains(" flags=e "));
    assert_eq!(client.send(&["CLIENT", "NO-EVICT", "off"]), ok());
    assert!(text_of(&client.send(&["CLIENT", "INFO"])).contains(" flags=N "));
    assert_eq!(client.send(&["CLIENT", "NO-EVICT", "maybe"]), error("ERR syntax error"));
    assert_eq!(
        client.send(&["CLIENT", "NO-EVICT"]),
        error("ERR wrong number of arguments for 'client|no-evict' command")
    );
}

/// `key:` and 28 digits: 32 bytes, longer than the engine keeps inline.
fn numbered_key(n: usize) -> String {
    format!("key:{n:028}")
}

/// MSET commands of 1,000 keys each that write `numbered_key(0..count)`, all with value `v`.
fn mset_numbered_keys(count: usize) -> Vec<Vec<String>> {
    (0..count)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            std::iter::once("MSET".to_owned())
                .chain(chunk.iter().flat_map(|&n| [numbered_key(n), "v".to_owned()]))
                .collect()
        })
        .collect()
}

#[test]
fn keys_over_the_output_limit_closes_the_client_without_gathering_every_key() {
    const KEYS: usize = 400_000;
    let server = TestServer::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut client = server.connect();
    let batches = mset_numbered_keys(KEYS);
    for group in batches.chunks(20) {
        assert!(client.pipeline(group).iter().all(|reply| *reply == ok()));
    }
    let reply_size = format!("*{KEYS}\r\n").len() + KEYS * ("$32\r\n".len() + 32 + 2);

    std::thread::sleep(Duration::from_millis(200));
    server.reset_peak_rss();
    let before = server.rss_bytes();
    let mut greedy = server.connect();
    greedy.write_command(&["KEYS", "*"]);
    assert_eq!(greedy.replies_until_closed(), vec![], "nothing of a reply over the hard limit is sent");
    let growth = server.peak_rss_bytes().saturating_sub(before);
    assert!(
        growth < (reply_size / 4) as u64,
        "KEYS over the limit grew the peak RSS by {growth} bytes (reply: {reply_size})"
    );
    assert!(server.logs_within_seconds("overcoming of output buffer limits"), "the limit is not logged");

    // Within the limit, KEYS answers each key once, streamed to a client that reads.
    let matching: Vec<Value> = (100..200).map(|n| bulk(numbered_key(n))).collect();
    let Value::Array(mut found) = client.send(&["KEYS", "key:0000000000000000000000000[1]??"]) else { panic!("KEYS") };
    found.sort_by_key(text_of);
    assert_eq!(found, matching);
    assert_eq!(client.send(&["CONFIG", "SET", "client-output-buffer-limit", "normal 64mb 0 0"]), ok());
    let mut reader = TcpStream::connect(server.resp_addr).unwrap();
    reader.write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n").unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reply = vec![0u8; reply_size];
    reader.read_exact(&mut reply).expect("the whole KEYS reply");
    let (Value::Array(keys), used) = cstore::server::resp_value::parse_value(&reply).unwrap().unwrap() else {
        panic!("KEYS answers an array")
    };
    assert_eq!((keys.len(), used), (KEYS, reply_size));
    let distinct: std::collections::HashSet<String> = keys.iter().map(text_of).collect();
    assert_eq!(distinct.len(), KEYS, "each key once");
}

#[test]
fn a_huge_scan_count_is_capped_and_the_walk_still_returns_every_key() {
    const KEYS: usize = 50_000;
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let sets = mset_numbered_keys(KEYS);
    assert!(client.pipeline(&sets).iter().all(|reply| *reply == ok()));

    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_owned();
    let mut calls = 0;
    loop {
        let reply = client.send(&["SCAN", &cursor, "COUNT", "100000000"]);
        let Value::Array(parts) = reply else { panic!("SCAN replied {reply:?}") };
        let [Value::Bulk(next), Value::Array(batch)] = parts.as_slice() else { panic!("SCAN replied {parts:?}") };
        // About 10,000 entries examined per call, never the whole store at once.
        assert!(batch.len() <= 20_000, "one SCAN call returned {} keys", batch.len());
        seen.extend(batch.iter().map(text_of));
        cursor = String::from_utf8_lossy(next).into_owned();
        calls += 1;
        if cursor == "0" {
            break;
        }
    }
    assert!(calls >= KEYS / 20_000, "{calls} calls walked {KEYS} keys");
    assert_eq!(seen.len(), KEYS, "every key returned");
}
