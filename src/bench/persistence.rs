//! `cstore loadgen save`: what a background save costs while writes go on (issue 13), against
//! any Redis-protocol server, so that redis-server and cstore are measured by the same client.
//!
//! 1. Loads `--keys` keys (`save:NNNNNNNN`, `--value-size` bytes each) on one pipelined
//!    connection into an empty server.
//! 2. Runs SETs of random loaded keys on `--connections` connections, one request in flight
//!    each, so that every write's latency is measured, and overwrites continue throughout.
//! 3. After a warm-up and a baseline window, sends BGSAVE and polls `INFO persistence` until
//!    `rdb_bgsave_in_progress:0`; meanwhile a thread samples the memory of the server and of
//!    every process it forked (Redis saves in a child) every few milliseconds.
//! 4. Checks `rdb_last_bgsave_status:ok` and `DBSIZE`, then reports the save's duration, the
//!    peak extra memory and the write latencies before and during the save, as text and as one
//!    TSV row (`--tsv`) for `scripts/bench-persistence.sh` to compare servers with.
//!
//! Memory is proportional set size (`Pss` of `/proc/PID/smaps_rollup`) summed over the server
//! and its descendants: a page a fork child still shares with its parent counts once, a page
//! copied on write counts twice. The extra memory of a save is the peak of that sum minus its
//! value just before BGSAVE.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;

use super::loadgen::{Client, command, expect_ok, info, pipeline, show, xorshift};
use super::report::{fmt_ns, load_average, percentile};
use crate::server::resp_value::{Value, encode_command};

/// How often the memory sampler reads `/proc`.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How often the save's progress is polled.
const POLL_EVERY: Duration = Duration::from_millis(5);

const WINDOW_OFF: usize = 0;
const WINDOW_BASELINE: usize = 1;
const WINDOW_SAVING: usize = 2;
const WINDOWS: usize = 3;

#[derive(Clone, Debug, clap::Args)]
pub(super) struct SaveArgs {
    /// Server address
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// The server's process id: its memory and that of its children is sampled from /proc
    #[arg(long)]
    pid: u32,
    /// A name for the server in the report and the TSV row (e.g. redis, cstore)
    #[arg(long, default_value = "server")]
    label: String,
    /// Keys loaded before the save
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Bytes per value
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Write connections, one SET in flight each
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Writes run this long before the baseline window, in milliseconds
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,
    /// Length of the baseline window, in milliseconds
    #[arg(long, default_value_t = 3000)]
    baseline_ms: u64,
    /// A save not finished after this many seconds fails the run
    #[arg(long, default_value_t = 600)]
    save_timeout_secs: u64,
    /// Append one result row to this TSV file (header written if it is new)
    #[arg(long)]
    tsv: Option<PathBuf>,
}

/// The columns of `--tsv`.
const TSV_HEADER: &str = "server\tkeys\tvalue_size\tconnections\tsave_ms\tpss_before_kib\tpeak_extra_kib\
     \tbaseline_writes_per_sec\tsaving_writes_per_sec\tbaseline_p50_us\tbaseline_p99_us\tsaving_p50_us\tsaving_p99_us\tsaving_max_us";

pub(super) fn run(args: &SaveArgs) -> anyhow::Result<()> {
    if args.keys == 0 || args.connections == 0 || args.value_size == 0 {
        bail!("--keys, --connections and --value-size must be at least 1");
    }
    let outcome = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(drive(args))?;
    print!("{}", report(args, &outcome));
    if let Some(path) = &args.tsv {
        let new = !path.exists();
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if new {
            writeln!(file, "{TSV_HEADER}")?;
        }
        writeln!(file, "{}", tsv_row(args, &outcome))?;
    }
    Ok(())
}

fn key(index: u64) -> String {
    format!("save:{index:08}")
}

/// What the write connections tell each other.
struct Shared {
    stop: AtomicBool,
    window: AtomicUsize,
}

/// The write latencies of one connection, in nanoseconds, per window.
type WindowLatencies = [Vec<u32>; WINDOWS];

/// Everything one run measured.
struct Outcome {
    load_elapsed: Duration,
    baseline_elapsed: Duration,
    save_elapsed: Duration,
    memory: MemoryPeak,
    latencies: WindowLatencies,
    load_average: [Option<String>; 2],
}

async fn drive(args: &SaveArgs) -> anyhow::Result<Outcome> {
    let mut control = Client::connect(&args.addr).await?;
    match command(&mut control, &[&b"DBSIZE"[..]]).await? {
        Value::Integer(0) => {}
        Value::Integer(keys) => bail!("the server holds {keys} keys: this run needs an empty server"),
        other => bail!("DBSIZE answered {}", show(&other)),
    }
    let load_at_start = load_average();
    let value = vec![b'v'; args.value_size];
    eprintln!("{}: loading {} keys of {} bytes", args.label, args.keys, args.value_size);
    let started = Instant::now();
    pipeline(
        &mut control,
        args.keys,
        1,
        |i, out| encode_command(&[&b"SET"[..], key(i).as_bytes(), &value], out),
        |i, replies, _, _| expect_ok(&format!("SET {}", key(i)), &replies[0]),
    )
    .await?;
    let load_elapsed = started.elapsed();

    let shared = Arc::new(Shared { stop: AtomicBool::new(false), window: AtomicUsize::new(WINDOW_OFF) });
    let mut writers = Vec::with_capacity(args.connections);
    for seed in 1..=args.connections as u64 {
        let client = Client::connect(&args.addr).await?;
        writers.push(tokio::spawn(write_connection(client, seed, args.keys, args.value_size, Arc::clone(&shared))));
    }
    tokio::time::sleep(Duration::from_millis(args.warmup_ms)).await;
    shared.window.store(WINDOW_BASELINE, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(args.baseline_ms)).await;
    let baseline_elapsed = started.elapsed();

    let sampler = MemorySampler::start(args.pid)?;
    shared.window.store(WINDOW_SAVING, Ordering::Relaxed);
    let started = Instant::now();
    let saved = save(&mut control, Duration::from_secs(args.save_timeout_secs)).await;
    let save_elapsed = started.elapsed();
    shared.window.store(WINDOW_OFF, Ordering::Relaxed);
    let memory = sampler.stop();
    shared.stop.store(true, Ordering::Relaxed);

    let mut latencies = WindowLatencies::default();
    for writer in writers {
        let theirs = writer.await.context("a write connection panicked")??;
        for (all, one) in latencies.iter_mut().zip(theirs) {
            all.extend(one);
        }
    }
    latencies.iter_mut().for_each(|window| window.sort_unstable());
    saved?;
    match command(&mut control, &[&b"DBSIZE"[..]]).await? {
        Value::Integer(n) if u64::try_from(n) == Ok(args.keys) => {}
        other => bail!("DBSIZE answered {} after the save; {} keys were loaded", show(&other), args.keys),
    }
    Ok(Outcome {
        load_elapsed,
        baseline_elapsed,
        save_elapsed,
        memory,
        latencies,
        load_average: [load_at_start, load_average()],
    })
}

/// Overwrites random loaded keys until told to stop, timing every SET.
async fn write_connection(
    mut client: Client,
    seed: u64,
    keys: u64,
    value_size: usize,
    shared: Arc<Shared>,
) -> anyhow::Result<WindowLatencies> {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut latencies = WindowLatencies::default();
    let mut request = BytesMut::new();
    let mut value = vec![b'w'; value_size];
    while !shared.stop.load(Ordering::Relaxed) {
        let index = xorshift(&mut rng) % keys;
        // A value that differs from the loaded one, so that every write really changes the key.
        value[0] = b'a' + (xorshift(&mut rng) % 26) as u8;
        request.clear();
        encode_command(&[&b"SET"[..], key(index).as_bytes(), &value], &mut request);
        let window = shared.window.load(Ordering::Relaxed);
        let sent = Instant::now();
        client.send(&request).await?;
        let reply = client.read_value().await?;
        let ns = u32::try_from(sent.elapsed().as_nanos()).unwrap_or(u32::MAX);
        expect_ok(&format!("SET {}", key(index)), &reply)?;
        latencies[window].push(ns);
    }
    Ok(latencies)
}

/// Sends BGSAVE and waits until the server reports it finished, and finished well.
async fn save(control: &mut Client, timeout: Duration) -> anyhow::Result<()> {
    match command(control, &[&b"BGSAVE"[..]]).await? {
        Value::Simple(_) => {}
        other => bail!("BGSAVE answered {}", show(&other)),
    }
    let started = Instant::now();
    loop {
        let fields = info(control, "persistence").await?;
        let field = |name: &str| fields.get(name).with_context(|| format!("INFO persistence has no {name} field"));
        if field("rdb_bgsave_in_progress")? == "0" {
            let status = field("rdb_last_bgsave_status")?;
            if status != "ok" {
                bail!("the save failed: rdb_last_bgsave_status:{status}");
            }
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("the save has not finished after {} s", timeout.as_secs());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The memory of the server's process tree over a save.
#[derive(Clone, Copy, Debug, Default)]
struct MemoryPeak {
    before_kib: u64,
    peak_kib: u64,
    /// The most processes seen in the tree at once (2 while Redis's child saves).
    processes: usize,
    samples: u64,
}

impl MemoryPeak {
    fn extra_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.before_kib)
    }
}

struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<MemoryPeak>,
}

impl MemorySampler {
    /// Reads the tree's memory once now (the "before" value), then every
    /// [`MEMORY_SAMPLE_EVERY`] on a thread of its own until [`MemorySampler::stop`].
    fn start(pid: u32) -> anyhow::Result<MemorySampler> {
        let (before_kib, processes) =
            tree_pss_kib(pid).with_context(|| format!("cannot read the memory of process {pid} from /proc"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut peak = MemoryPeak { before_kib, peak_kib: before_kib, processes, samples: 1 };
            while !stopped.load(Ordering::Relaxed) {
                thread::sleep(MEMORY_SAMPLE_EVERY);
                // The child may exit between listing and reading it: such a sample is skipped.
                if let Some((kib, processes)) = tree_pss_kib(pid) {
                    peak.peak_kib = peak.peak_kib.max(kib);
                    peak.processes = peak.processes.max(processes);
                    peak.samples += 1;
                }
            }
            peak
        });
        Ok(MemorySampler { stop, thread })
    }

    fn stop(self) -> MemoryPeak {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The summed `Pss` of `pid` and all its descendants, and how many processes that is.
fn tree_pss_kib(pid: u32) -> Option<(u64, usize)> {
    let tree = descendants(pid);
    let mut total = pss_kib(pid)?;
    for child in &tree {
        total += pss_kib(*child)?;
    }
    Some((total, tree.len() + 1))
}

fn pss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|line| line.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root`, found through the parent id in each `/proc/PID/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut tree = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            tree.push(pid);
            frontier.push(pid);
        }
    }
    tree
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in field 2 may hold spaces: count the fields after its parenthesis.
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn writes_per_sec(latencies: &[u32], elapsed: Duration) -> f64 {
    latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn micros(ns: Option<u32>) -> String {
    ns.map_or("-".to_owned(), |ns| format!("{:.0}", f64::from(ns) / 1e3))
}

fn tsv_row(args: &SaveArgs, outcome: &Outcome) -> String {
    let baseline = &outcome.latencies[WINDOW_BASELINE];
    let saving = &outcome.latencies[WINDOW_SAVING];
    [
        args.label.clone(),
        args.keys.to_string(),
        args.value_size.to_string(),
        args.connections.to_string(),
        format!("{:.1}", outcome.save_elapsed.as_secs_f64() * 1e3),
        outcome.memory.before_kib.to_string(),
        outcome.memory.extra_kib().to_string(),
        format!("{:.0}", writes_per_sec(baseline, outcome.baseline_elapsed)),
        format!("{:.0}", writes_per_sec(saving, outcome.save_elapsed)),
        micros(percentile(baseline, 50.0)),
        micros(percentile(baseline, 99.0)),
        micros(percentile(saving, 50.0)),
        micros(percentile(saving, 99.0)),
        micros(saving.last().copied()),
    ]
    .join("\t")
}

fn report(args: &SaveArgs, outcome: &Outcome) -> String {
    let mut out = String::new();
    let memory = &outcome.memory;
    let _ = writeln!(
        out,
        "\n{}: BGSAVE of {} keys ({}-byte values) under {} write connections. Loaded in {:.2} s; \
         1-minute load average {} at the start, {} at the end.",
        args.label,
        args.keys,
        args.value_size,
        args.connections,
        outcome.load_elapsed.as_secs_f64(),
        outcome.load_average[0].as_deref().unwrap_or("?"),
        outcome.load_average[1].as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "save: {:.0} ms (BGSAVE to rdb_bgsave_in_progress:0); memory (Pss of the process tree, {} samples, \
         up to {} processes): {:.1} MiB before, peak {:.1} MiB extra",
        outcome.save_elapsed.as_secs_f64() * 1e3,
        memory.samples,
        memory.processes,
        memory.before_kib as f64 / 1024.0,
        memory.extra_kib() as f64 / 1024.0,
    );
    let _ = writeln!(out, "| window | time | writes/s | write p50 | write p99 | longest write |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, window, elapsed) in [
        ("before the save", WINDOW_BASELINE, outcome.baseline_elapsed),
        ("during the save", WINDOW_SAVING, outcome.save_elapsed),
    ] {
        let latencies = &outcome.latencies[window];
        let _ = writeln!(
            out,
            "| {name} | {:.2} s | {:.0} | {} | {} | {} |",
            elapsed.as_secs_f64(),
            writes_per_sec(latencies, elapsed),
            fmt_ns(percentile(latencies, 50.0)),
            fmt_ns(percentile(latencies, 99.0)),
            fmt_ns(latencies.last().copied()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_below_its_parent_and_has_a_memory_size() {
        let me = std::process::id();
        let parent = parent_of(me).expect("our own /proc/PID/stat names a parent");
        assert!(descendants(parent).contains(&me));
        let (kib, processes) = tree_pss_kib(me).expect("our own smaps_rollup is readable");
        assert!(kib > 0 && processes >= 1);
    }

    #[test]
    fn the_extra_memory_never_goes_below_zero() {
        let peak = MemoryPeak { before_kib: 100, peak_kib: 100, processes: 1, samples: 1 };
        assert_eq!(peak.extra_kib(), 0);
        assert_eq!(MemoryPeak { peak_kib: 160, ..peak }.extra_kib(), 60);
    }
}
