//! The `cstore` binary: parses the command line and hands over to the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cstore::server::Server;
use cstore::server::config::ServeArgs;
use cstore::telemetry::{self, Process, Sampling};
use opentelemetry::KeyValue;

/// How long exiting waits for the collector to take the spans still queued.
const TELEMETRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// jemalloc, as Redis links it, rather than glibc's malloc. A migration drops a source
/// shard of millions of small blocks at once, and glibc's malloc then spends its time
/// sorting those free chunks on the allocations that follow: a migration right after a
/// CopyOnWrite one ran 2.4x slower, with 18% of its samples in `_int_malloc`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it initializes, before `main`; the `_RJEM_MALLOC_CONF`
/// environment variable still overrides them (docs/BENCHMARKS.md, "The allocator").
/// - `background_thread:true`, as Redis's `jemalloc-bg-thread yes`: freed pages go back to
///   the system from jemalloc's own thread, not inline in whichever thread frees or
///   allocates (a worker in a request, or a migration's mover holding a shard's gate).
/// - `dirty_decay_ms:1000` instead of 10 s: freed pages stay about a second for reuse. Maps
///   grow by doubling and free their old tables, so with 10 s the RSS just after loading
///   1,000,000 keys was 1.42x Redis's; with 1 s it is 1.17x. Purging at once (0) halved the
///   SET throughput of 200 KB values.
#[cfg(not(target_env = "msvc"))]
// SAFETY: jemalloc (built with the `_rjem_` prefix by tikv-jemalloc-sys) declares this
// symbol weak as `const char *` and only reads it; a reference to a byte array is a thin
// pointer to a NUL-terminated string that lives for the whole program.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 43] = b"background_thread:true,dirty_decay_ms:1000\0";

/// A concurrency-aware key-value store that speaks the Redis protocol.
#[derive(Parser)]
#[command(name = "cstore", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the store: Redis protocol on --port, /healthz, /readyz and /metrics on --admin-port.
    Serve(Box<ServeArgs>),
    /// Compare every locking strategy in-process for one read/write mix.
    Bench(cstore::bench::BenchArgs),
    /// Drive a GET/SET mix over the network at several connection counts (and plot the results).
    Loadgen(cstore::bench::loadgen::LoadgenArgs),
    /// Run the Kubernetes operator that turns ConcurrentStore resources into running stores.
    Operator(cstore::operator::OperatorArgs),
    /// Print the ConcurrentStore CustomResourceDefinition as YAML (the content of crds/).
    Crd,
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Bench(args) => cstore::bench::run(&args),
        Command::Loadgen(args) => cstore::bench::loadgen::run(&args),
        Command::Operator(args) => operator(args),
        Command::Crd => cstore::operator::crd::crd_yaml().map(|yaml| print!("{yaml}")).map_err(Into::into),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let telemetry = telemetry::init(Process {
            default_service_name: "cstore",
            log_format: config.log_format,
            otlp: &args.otlp,
            attributes: vec![
                KeyValue::new("cstore.strategy", config.engine.strategy.name()),
                KeyValue::new("cstore.shards", i64::from(config.engine.shards)),
            ],
            // Commands and sweeps are head-sampled by the store at traceSampleRatio (which
            // OTEL_TRACES_SAMPLER sets), so every span that is started is kept.
            sampling: Sampling { ratio: 1.0, parent_based: false },
        })?;
        let served = async { Server::bind(config).await?.run(termination_signal()).await }.await;
        telemetry.shutdown(TELEMETRY_FLUSH_TIMEOUT).await;
        served
    })
}

fn operator(args: cstore::operator::OperatorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let telemetry = telemetry::init(Process {
            default_service_name: "cstore-operator",
            log_format: args.log_format,
            otlp: &args.otlp,
            attributes: Vec::new(),
            // Reconciles are rare enough to keep them all unless told otherwise.
            sampling: args.otlp.sampling(Sampling { ratio: 1.0, parent_based: true })?,
        })?;
        let operated = cstore::operator::run(args, termination_signal()).await;
        telemetry.shutdown(TELEMETRY_FLUSH_TIMEOUT).await;
        operated
    })
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
