//! `cstore loadgen`: a GET/SET mix over the network, against any Redis-protocol server.
//!
//! redis-benchmark runs one command type at a time, so it cannot answer "95% GET, 5% SET at 8
//! connections". `cstore loadgen run` can: N connections, each sending one request and
//! waiting for its reply (no pipelining), for a fixed time, after writing every key of the key
//! space once. It appends one CSV row per connection count, labelled with the server's
//! configuration, and `cstore loadgen plot` draws those rows as throughput against
//! connections, one line per configuration (`scripts/strategy-map.sh` drives both).
//! `cstore loadgen migrate` (in `migration.rs`) reconfigures a server live under load and
//! checks that nothing was lost; `cstore loadgen save` (in `persistence.rs`) times a background
//! save under writes.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plot;
use super::report::Point;
use super::workload::Throughput;
use crate::engine::Strategy;
use crate::server::resp_value::{Value, ValueError, encode_command, parse_value};

/// Options of `cstore loadgen`.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadgenArgs {
    #[command(subcommand)]
    command: LoadgenCommand,
}

#[derive(Clone, Debug, clap::Subcommand)]
enum LoadgenCommand {
    /// Measure one server: write every key once, then run the mix at each connection count
    Run(RunArgs),
    /// Draw the rows of a CSV written by `run` as a PNG: ops/s against connections
    Plot(PlotArgs),
    /// Change strategy and shard count live under load, then check every key, TTL and counter
    /// (`scripts/bench-migration.sh` drives it)
    Migrate(super::migration::MigrateArgs),
    /// Time a BGSAVE under a write load: duration, peak extra memory of the server's process
    /// tree, write latencies (`scripts/bench-persistence.sh` drives it against Redis and cstore)
    Save(super::persistence::SaveArgs),
}

#[derive(Clone, Debug, clap::Args)]
struct RunArgs {
    /// Server address
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// Fraction of requests that are GETs, from 0 to 1; the rest are SETs of existing keys
    #[arg(long, default_value_t = 0.95)]
    read_ratio: f64,
    /// Connection counts to measure, comma-separated; each connection has one request in flight
    #[arg(long, value_delimiter = ',', default_value = "1,8,50")]
    connections: Vec<usize>,
    /// Number of distinct keys (`key:NNNNNNNN`), all written before measuring
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Bytes per value
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Measured time per connection count, in milliseconds
    #[arg(long, default_value_t = 2000)]
    duration_ms: u64,
    /// The server's strategy, for the CSV row (loadgen cannot see it)
    #[arg(long)]
    strategy: Strategy,
    /// The server's shard count, for the CSV row
    #[arg(long)]
    shards: u64,
    /// Append one row per connection count to this CSV file (header written if it is new)
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Clone, Debug, clap::Args)]
struct PlotArgs {
    /// CSV written by `cstore loadgen run --csv`
    #[arg(long)]
    csv: PathBuf,
    /// PNG to write (replaced if it exists)
    #[arg(long)]
    out: PathBuf,
    /// Only rows with this read ratio (the CSV may hold several mixes)
    #[arg(long)]
    read_ratio: Option<f64>,
    /// Plot title
    #[arg(long, default_value = "cstore over loopback TCP")]
    title: String,
}

const CSV_HEADER: &str = "strategy,shards,connections,read_ratio,keys,value_size,ops,seconds,ops_per_sec";

/// Runs `cstore loadgen`.
pub fn run(args: &LoadgenArgs) -> anyhow::Result<()> {
    match &args.command {
        LoadgenCommand::Run(run) => run_mix(run),
        LoadgenCommand::Plot(plot) => plot_csv(plot),
        LoadgenCommand::Migrate(migrate) => super::migration::run(migrate),
        LoadgenCommand::Save(save) => super::persistence::run(save),
    }
}

fn run_mix(args: &RunArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!("the read ratio is between 0 and 1 (got {})", args.read_ratio);
    }
    if args.keys == 0 || args.connections.contains(&0) {
        bail!("at least one key and one connection are needed");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let value = vec![b'v'; args.value_size];
    runtime.block_on(prefill(&args.addr, args.keys, &value))?;
    let mut rows = Vec::new();
    for &connections in &args.connections {
        let throughput = runtime.block_on(measure(args, connections, &value))?;
        let ops_per_sec = throughput.mops_per_sec() * 1e6;
        println!(
            "{} {} shards, read ratio {}, {connections} connections: {ops_per_sec:.0} ops/s",
            args.strategy, args.shards, args.read_ratio
        );
        rows.push(format!(
            "{},{},{connections},{},{},{},{},{:.3},{ops_per_sec:.0}",
            args.strategy,
            args.shards,
            args.read_ratio,
            args.keys,
            args.value_size,
            throughput.ops,
            throughput.elapsed.as_secs_f64()
        ));
    }
    if let Some(path) = &args.csv {
        let new = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut out = BufWriter::new(file);
        if new {
            writeln!(out, "{CSV_HEADER}")?;
        }
        for row in rows {
            writeln!(out, "{row}")?;
        }
        out.flush()?;
    }
    Ok(())
}

fn key(index: u64) -> String {
    format!("key:{index:08}")
}

fn set_request(out: &mut BytesMut, key: &str, value: &[u8]) {
    encode_command(&[&b"SET"[..], key.as_bytes(), value], out);
}

fn get_request(out: &mut BytesMut, key: &str) {
    encode_command(&[&b"GET"[..], key.as_bytes()], out);
}

/// Writes every key once, pipelined.
async fn prefill(addr: &str, keys: u64, value: &[u8]) -> anyhow::Result<()> {
    let mut client = Client::connect(addr).await?;
    let set = |index, out: &mut BytesMut| set_request(out, &key(index), value);
    pipeline(&mut client, keys, 1, set, |_, replies, _, _| expect_ok("SET", &replies[0])).await?;
    Ok(())
}

/// Items per pipelined batch.
pub(super) const BATCH: u64 = 1000;

/// Sends `count` items in pipelined batches: `encode` appends item `i`'s `per_item` requests,
/// `check` gets its replies with when its batch was sent and when the batch's last reply
/// arrived. Returns those two instants per batch.
pub(super) async fn pipeline(
    client: &mut Client,
    count: u64,
    per_item: usize,
    mut encode: impl FnMut(u64, &mut BytesMut),
    mut check: impl FnMut(u64, &[Value], Instant, Instant) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<(Instant, Instant)>> {
    let mut batches = Vec::new();
    let mut out = BytesMut::new();
    let mut replies = Vec::new();
    for start in (0..count).step_by(BATCH as usize) {
        let end = (start + BATCH).min(count);
        out.clear();
        (start..end).for_each(|i| encode(i, &mut out));
        let sent = Instant::now();
        client.send(&out).await?;
        replies.clear();
        for _ in 0..(end - start) as usize * per_item {
            replies.push(client.read_value().await?);
        }
        let received = Instant::now();
        for (i, item) in (start..end).zip(replies.chunks(per_item)) {
            check(i, item, sent, received)?;
        }
        batches.push((sent, received));
    }
    Ok(batches)
}

/// Fails unless `reply` is `+OK`.
pub(super) fn expect_ok(what: &str, reply: &Value) -> anyhow::Result<()> {
    match reply {
        Value::Simple(ok) if &ok[..] == b"OK" => Ok(()),
        other => bail!("{what} answered {}", show(other)),
    }
}

/// A reply as redis-cli would show it, for failure messages.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::Simple(text) => String::from_utf8_lossy(text).into_owned(),
        Value::Error(text) => format!("(error) {}", String::from_utf8_lossy(text)),
        Value::Integer(n) => format!("(integer) {n}"),
        Value::Bulk(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        Value::NullBulk | Value::Null | Value::NullArray => "(nil)".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Runs the mix on `connections` connections for the configured time.
async fn measure(args: &RunArgs, connections: usize, value: &[u8]) -> anyhow::Result<Throughput> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(Client::connect(&args.addr).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for (seed, mut client) in (1u64..).zip(clients) {
        let (stop, done, value) = (Arc::clone(&stop), Arc::clone(&done), value.to_vec());
        let (keys, read_ratio) = (args.keys, args.read_ratio);
        tasks.push(tokio::spawn(async move {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut request = BytesMut::with_capacity(128 + value.len());
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let roll = xorshift(&mut rng);
                let key = key(xorshift(&mut rng) % keys);
                request.clear();
                // The top 53 bits as a fraction in [0, 1).
                if ((roll >> 11) as f64 / (1u64 << 53) as f64) < read_ratio {
                    get_request(&mut request, &key);
                } else {
                    set_request(&mut request, &key, &value);
                }
                client.send(&request).await?;
                client.reply().await?;
                ops += 1;
            }
            done.fetch_add(ops, Ordering::Relaxed);
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(args.duration_ms)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(Throughput { ops: done.load(Ordering::Relaxed), elapsed: started.elapsed() })
}

pub(super) fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// One connection and its read buffer (also the client of `cstore loadgen migrate`).
pub(super) struct Client {
    stream: TcpStream,
    input: BytesMut,
}

impl Client {
    pub(super) async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, input: BytesMut::with_capacity(16 * 1024) })
    }

    /// Writes requests already encoded: one, or a whole pipeline.
    pub(super) async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.stream.write_all(requests).await
    }

    /// Reads one reply of any type, error replies included; a closed connection or bytes
    /// that are not RESP fail.
    pub(super) async fn read_value(&mut self) -> anyhow::Result<Value> {
        loop {
            if let Some(value) = take_reply(&mut self.input)? {
                return Ok(value);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Reads one reply; an error reply fails.
    pub(super) async fn reply(&mut self) -> anyhow::Result<Value> {
        match self.read_value().await? {
            Value::Error(text) => Err(anyhow!("server error: {}", String::from_utf8_lossy(&text))),
            value => Ok(value),
        }
    }
}

/// Sends one command and reads its reply, error replies included.
pub(super) async fn command(client: &mut Client, args: &[&[u8]]) -> anyhow::Result<Value> {
    let mut out = BytesMut::new();
    encode_command(args, &mut out);
    client.send(&out).await?;
    client.read_value().await
}

/// The `field:value` lines of an INFO reply.
pub(super) fn info_fields(text: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(field, value)| (field.to_owned(), value.trim().to_owned()))
        .collect()
}

pub(super) async fn info(client: &mut Client, section: &str) -> anyhow::Result<HashMap<String, String>> {
    match command(client, &[&b"INFO"[..], section.as_bytes()]).await? {
        Value::Bulk(text) => Ok(info_fields(&text)),
        other => bail!("INFO {section} answered {}", show(&other)),
    }
}

/// Removes the complete reply at the front of `input` and returns it, if it is all there.
fn take_reply(input: &mut BytesMut) -> Result<Option<Value>, ValueError> {
    let Some((value, len)) = parse_value(input)? else { return Ok(None) };
    input.advance(len);
    Ok(Some(value))
}

fn plot_csv(args: &PlotArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.csv).with_context(|| format!("cannot read {}", args.csv.display()))?;
    let mut points = Vec::new();
    for line in text.lines().skip(1).filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let [strategy, shards, connections, read_ratio, _keys, _value_size, ops, seconds, _] = fields[..] else {
            bail!("malformed row {line:?} in {}", args.csv.display());
        };
        let read_ratio: f64 = read_ratio.parse()?;
        if args.read_ratio.is_some_and(|wanted| (wanted - read_ratio).abs() > 1e-9) {
            continue;
        }
        points.push(Point {
            strategy: strategy.parse().map_err(|error| anyhow!("{error}"))?,
            shards: shards.parse()?,
            threads: connections.parse()?,
            throughput: Throughput { ops: ops.parse()?, elapsed: Duration::from_secs_f64(seconds.parse()?) },
        });
    }
    let file = std::fs::File::create(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    plot::write_png_with_x(&points, &args.title, "client connections (one request in flight each)", &mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_taken_only_when_complete() {
        let take = |bytes: &[u8]| {
            let mut input = BytesMut::from(bytes);
            let value = take_reply(&mut input).unwrap();
            (value, input.len())
        };
        assert_eq!(take(b"+OK\r\n"), (Some(Value::Simple("OK".into())), 0));
        assert_eq!(take(b"+OK\r"), (None, 4));
        assert_eq!(take(b"$-1\r\n"), (Some(Value::NullBulk), 0));
        assert_eq!(take(b"$3\r\nabc\r\n+OK"), (Some(Value::Bulk("abc".into())), 3));
        assert_eq!(take(b"$3\r\nab"), (None, 6));
        assert_eq!(take(b":12\r\n"), (Some(Value::Integer(12)), 0));
        assert_eq!(take(b"-ERR no\r\n"), (Some(Value::Error("ERR no".into())), 0));
        assert!(take_reply(&mut BytesMut::from(&b"?x\r\n"[..])).is_err());
    }

    #[test]
    fn requests_are_resp_arrays() {
        let mut out = BytesMut::new();
        set_request(&mut out, "k", b"vv");
        get_request(&mut out, "k");
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
