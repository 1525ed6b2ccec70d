//! `cstore bench`: runs one read/write mix in-process on every strategy × shard count ×
//! thread count and ranks them, to answer "which strategy should I pick for this workload?".
//!
//! `workload` (mixes, operation streams, the multi-threaded driver) is shared with
//! `benches/workloads.rs`, which runs the same driver against other concurrent maps;
//! `report` turns measurements into tables and CSV; `plot` draws the PNG.

pub mod loadgen;
mod migration;
mod persistence;
mod plot;
pub mod report;
pub mod workload;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{ConfigError, EngineConfig, Store, Strategy};
use report::Point;
use workload::{DEFAULT_KEYS, Mix, OPS_PER_THREAD, RunLength, STREAM_SEED};

/// More threads than this is surely a typo; each thread also holds its own pre-generated
/// stream of a few megabytes.
const MAX_THREADS: usize = 256;
/// About 150 bytes of memory per key: 100 million keys already need some 15 GB.
const MAX_KEYS: usize = 100_000_000;
/// Longest measurement per point.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Options of `cstore bench`. Every field is checked while parsing, so a value of this type
/// is always valid.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Fraction of operations that are GETs, from 0 to 1; the rest are SETs that overwrite
    /// existing keys
    #[arg(long, value_name = "RATIO", allow_negative_numbers = true, default_value_t = 0.95, value_parser = parse_read_ratio)]
    read_ratio: f64,

    /// Worker-thread counts to measure, comma-separated (e.g. 1,2,4); by default powers of two
    /// up to the number of cores, and the core count itself
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        allow_negative_numbers = true,
        default_value = default_thread_list(),
        value_parser = parse_threads
    )]
    threads: Vec<usize>,

    /// Number of distinct keys, all written before measuring (14-byte keys, 8-byte values)
    #[arg(long, value_name = "COUNT", allow_negative_numbers = true, default_value_t = DEFAULT_KEYS, value_parser = parse_keys)]
    keys: usize,

    /// Measured time per point (one strategy × shard count × thread count), with a unit: ms,
    /// s or m (e.g. 250ms, 1.5s); a bare number is seconds
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, default_value = "1s", value_parser = parse_duration)]
    duration: Duration,

    /// Shard counts to measure, comma-separated powers of two from 1 to 4096
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        allow_negative_numbers = true,
        default_value = "1,16,256",
        value_parser = parse_shards
    )]
    shards: Vec<u64>,

    /// Also write the ranking as CSV to this file (replaced if it exists)
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,

    /// Also draw a PNG plot of throughput against threads to this file (replaced if it exists)
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,
}

/// The default of `--threads`, as the text a user would type (clap shows it in `--help`).
fn default_thread_list() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| comma_separated(&workload::thread_counts_up_to_cores()))
}

/// Runs the benchmark, prints the ranking to stdout, and writes the CSV and plot if asked.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let threads = sorted_unique(&args.threads);
    let shards = sorted_unique(&args.shards);
    // Open the outputs first: a bad path fails now, not after minutes of measuring.
    let csv = args.csv.as_deref().map(|path| create_output(path, "CSV file")).transpose()?;
    let plot = args.plot.as_deref().map(|path| create_output(path, "plot")).transpose()?;

    let points = measure(args, &threads, &shards)?;
    let ranked = report::rank(&points);

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}\n", describe(args, &threads, &shards))?;
    write!(stdout, "{}", report::ranking_table(&ranked).render())?;
    writeln!(stdout, "\n{}", report::verdict(&ranked))?;
    stdout.flush()?;

    if let Some((path, file)) = csv {
        let mut out = BufWriter::new(file);
        report::write_csv(&mut out, &ranked, args.read_ratio, args.keys)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write the CSV file {}", path.display()))?;
        note(&format!("CSV written to {}", path.display()));
    }
    if let Some((path, file)) = plot {
        let title =
            format!("cstore bench: read ratio {}, {} keys, {:?} per point", args.read_ratio, args.keys, args.duration);
        let mut out = BufWriter::new(file);
        plot::write_png(&points, &title, &mut out)
            .and_then(|()| out.flush().map_err(anyhow::Error::from))
            .with_context(|| format!("cannot write the plot {}", path.display()))?;
        note(&format!("Plot written to {}", path.display()));
    }
    Ok(())
}

/// Measures every strategy × shard count × thread count. One store per strategy × shard
/// count serves all thread counts: the get/set mix over a full key space leaves its contents
/// the same shape, and prefilling once saves time. Every point replays the same streams.
fn measure(args: &BenchArgs, threads: &[usize], shards: &[u64]) -> anyhow::Result<Vec<Point>> {
    let most_threads = threads.last().copied().unwrap_or(1);
    let streams = workload::generate_streams(
        Mix::read_write(args.read_ratio),
        args.keys,
        most_threads,
        OPS_PER_THREAD,
        STREAM_SEED,
    );
    let total = Strategy::ALL.len() * shards.len() * threads.len();
    let progress = progress_bar(total)?;
    let mut points = Vec::with_capacity(total);
    for strategy in Strategy::ALL {
        for &shard_count in shards {
            let configuration = format!("{strategy}, {}", report::counted(shard_count, "shard"));
            progress.set_message(format!("{configuration}: writing {} keys", args.keys));
            let store = Store::builder().strategy(strategy).shards(shard_count).build()?;
            workload::prefill(&store, args.keys);
            for &thread_count in threads {
                progress.set_message(format!("{configuration}, {}", report::counted(thread_count as u64, "thread")));
                let throughput = workload::drive(&store, &streams[..thread_count], RunLength::For(args.duration))?;
                points.push(Point { strategy, shards: shard_count, threads: thread_count, throughput });
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    Ok(points)
}

// `wide_msg` takes the rest of the line and is cut to fit, so the bar never wraps.
const PROGRESS_TEMPLATE: &str = "{elapsed_precise} [{bar:20}] {pos}/{len}, about {eta} left: {wide_msg}";

/// A progress bar on stderr when stderr is a terminal, and nothing otherwise: the bar redraws
/// itself with control sequences that would garble a log file or a pipe. It is not ticked in
/// the background, so that it takes no CPU from the threads being measured.
fn progress_bar(points: usize) -> anyhow::Result<ProgressBar> {
    let target = if io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(points as u64), target);
    bar.set_style(
        ProgressStyle::with_template(PROGRESS_TEMPLATE).context("invalid progress bar template")?.progress_chars("=> "),
    );
    Ok(bar)
}

/// A status line on stderr, apart from the report on stdout. One that cannot be shown is no
/// reason to fail the command (unlike `eprintln!`, which would panic).
fn note(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

fn create_output(path: &Path, what: &str) -> anyhow::Result<(PathBuf, File)> {
    let file = File::create(path).with_context(|| format!("cannot write the {what} {}", path.display()))?;
    Ok((path.to_owned(), file))
}

fn describe(args: &BenchArgs, threads: &[usize], shards: &[u64]) -> String {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!(
        "cstore bench: read ratio {} (GET, the rest SET of existing keys), {} keys, {:?} per point, \
         threads {}, shards {}; {} available",
        args.read_ratio,
        args.keys,
        args.duration,
        comma_separated(threads),
        comma_separated(shards),
        report::counted(cores as u64, "core"),
    )
}

/// "1,2,4": lists as the command line takes them.
fn comma_separated<T: ToString>(values: &[T]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn sorted_unique<T: Ord + Copy>(values: &[T]) -> Vec<T> {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.dedup();
    values
}

fn parse_read_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("the read ratio is a fraction of operations, between 0 and 1 (got {text})"))
    }
}

fn parse_count(text: &str, what: &str, max: usize) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!("at least 1 {what} is needed")),
        Ok(count) if count > max => Err(format!("at most {max} {what}s are supported (got {count})")),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("{text:?} is not a whole number of {what}s")),
    }
}

fn parse_threads(text: &str) -> Result<usize, String> {
    parse_count(text, "thread", MAX_THREADS)
}

fn parse_keys(text: &str) -> Result<usize, String> {
    parse_count(text, "key", MAX_KEYS)
}

/// A shard count the engine accepts; the error is the engine's own message.
fn parse_shards(text: &str) -> Result<u64, String> {
    let shards: u64 = text.trim().parse().map_err(|_| format!("{text:?} is not a whole number of shards"))?;
    let config = u32::try_from(shards).map(|shards| EngineConfig { shards, ..EngineConfig::default() });
    match config {
        Ok(config) => config.validate(),
        Err(_) => Err(ConfigError::InvalidShards(shards)),
    }
    .map(|()| shards)
    .map_err(|error| error.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, seconds_per_unit) = if let Some(number) = trimmed.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = trimmed.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = trimmed.strip_suffix('m') {
        (number, 60.0)
    } else {
        (trimmed, 1.0)
    };
    let not_a_duration = || format!("{text:?} is not a duration: use e.g. 1s, 250ms, 1.5s or 2m");
    let value: f64 = number.trim().parse().map_err(|_| not_a_duration())?;
    let duration = Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| not_a_duration())?;
    if duration.is_zero() {
        Err(format!("the duration must be longer than zero (got {text})"))
    } else if duration > MAX_DURATION {
        Err(format!("at most {MAX_DURATION:?} per point is supported (got {text})"))
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(flags: &[&str]) -> Result<BenchArgs, String> {
        Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied()))
            .map(|cli| cli.args)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_are_documented_values() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.read_ratio, 0.95);
        assert_eq!(args.threads, workload::thread_counts_up_to_cores());
        assert_eq!(args.keys, 100_000);
        assert_eq!(args.duration, Duration::from_secs(1));
        assert_eq!(args.shards, [1, 16, 256]);
        assert_eq!((args.csv, args.plot), (None, None));
    }

    #[test]
    fn lists_and_units_parse() {
        let args = parse(&[
            "--read-ratio",
            "0.5",
            "--threads",
            "4,1,2",
            "--keys",
            "1000",
            "--duration",
            "50ms",
            "--shards",
            "1,16",
            "--csv",
            "out.csv",
        ])
        .unwrap();
        assert_eq!(args.read_ratio, 0.5);
        assert_eq!(args.threads, [4, 1, 2]);
        assert_eq!(sorted_unique(&args.threads), [1, 2, 4]);
        assert_eq!(args.duration, Duration::from_millis(50));
        assert_eq!(args.csv.as_deref(), Some(Path::new("out.csv")));
        for (text, expected) in [("2", 2000), ("1.5s", 1500), ("2m", 120_000), (" 250ms ", 250), ("0.001", 1)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(expected)), "{text}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (flags, reason) in [
            (&["--read-ratio", "1.5"][..], "between 0 and 1"),
            (&["--read-ratio", "-0.1"], "between 0 and 1"),
            (&["--read-ratio", "NaN"], "between 0 and 1"),
            (&["--read-ratio", "most"], "is not a number"),
            (&["--threads", "0"], "at least 1 thread"),
            (&["--threads", "1,0"], "at least 1 thread"),
            (&["--threads", "100000"], "at most 256 threads"),
            (&["--threads", "-1"], "not a whole number of threads"),
            (&["--keys", "0"], "at least 1 key"),
            (&["--keys", "many"], "not a whole number of keys"),
            (&["--duration", "0s"], "longer than zero"),
            (&["--duration", "-1s"], "not a duration"),
            (&["--duration", "1h"], "not a duration"),
            (&["--duration", "2000m"], "at most 3600s"),
            (&["--shards", "-4"], "not a whole number of shards"),
            (&["--shards", "3"], "shards must be a power of two between 1 and 4096, got 3"),
            (&["--shards", "16,8192"], "got 8192"),
            (&["--shards", "99999999999"], "got 99999999999"),
        ] {
            let error = parse(flags).expect_err(&format!("{flags:?} should be refused"));
            assert!(error.contains(reason), "{flags:?}: {error}");
        }
    }

    #[test]
    fn unwritable_outputs_are_reported_before_measuring() {
        let error = create_output(Path::new("/nonexistent-dir/out.csv"), "CSV file").unwrap_err();
        assert!(format!("{error:#}").starts_with("cannot write the CSV file /nonexistent-dir/out.csv: "), "{error:#}");
    }

    #[test]
    fn progress_template_is_valid() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }

    #[test]
    fn description_names_the_workload() {
        let args = parse(&["--read-ratio", "0.9", "--keys", "10", "--duration", "20ms"]).unwrap();
        let text = describe(&args, &[1, 2], &[1, 16]);
        assert!(text.starts_with("cstore bench: read ratio 0.9 (GET, the rest SET of existing keys), 10 keys, 20ms per point, threads 1,2, shards 1,16;"), "{text}");
    }
}
