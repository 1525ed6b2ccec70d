//! Turning measurements into answers: ranking, text tables and CSV. Pure functions, so that
//! the formats are unit-tested without running a benchmark.

use std::io::{self, Write};

use crate::engine::Strategy;

use super::workload::Throughput;

/// One measured configuration of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub strategy: Strategy,
    pub shards: u64,
    pub threads: usize,
    pub throughput: Throughput,
}

/// A point and how it compares with the fastest point of the same run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    pub point: Point,
    /// This point's throughput divided by the best one (1.0 for the best).
    pub ratio_to_best: f64,
}

/// The points, fastest first (ties keep their measurement order).
pub fn rank(points: &[Point]) -> Vec<Ranked> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| b.throughput.mops_per_sec().total_cmp(&a.throughput.mops_per_sec()));
    let best = sorted.first().map_or(0.0, |p| p.throughput.mops_per_sec());
    sorted
        .into_iter()
        .map(|point| Ranked { point, ratio_to_best: ratio(point.throughput.mops_per_sec(), best) })
        .collect()
}

/// `value / best`, or 0 when nothing was measured (so that no NaN reaches a report).
pub fn ratio(value: f64, best: f64) -> f64 {
    if best > 0.0 { value / best } else { 0.0 }
}

/// The ranking as a table: the answer to "which strategy should I pick for this workload?".
pub fn ranking_table(ranked: &[Ranked]) -> Table {
    let mut table = Table::new(["rank", "strategy", "shards", "threads", "Mops/s", "vs best"]);
    for (index, entry) in ranked.iter().enumerate() {
        let point = &entry.point;
        table.push_row([
            (index + 1).to_string(),
            point.strategy.name().to_owned(),
            point.shards.to_string(),
            point.threads.to_string(),
            format!("{:.2}", point.throughput.mops_per_sec()),
            format!("{:.2}", entry.ratio_to_best),
        ]);
    }
    table
}

/// One sentence naming the winner, and the winner at the highest thread count measured when
/// that is another configuration (what matters once every core is busy).
pub fn verdict(ranked: &[Ranked]) -> String {
    let describe = |point: &Point| {
        format!(
            "{} with {} ({:.2} Mops/s at {})",
            point.strategy,
            counted(point.shards, "shard"),
            point.throughput.mops_per_sec(),
            counted(point.threads as u64, "thread"),
        )
    };
    let Some(best) = ranked.first().map(|entry| entry.point) else {
        return "Nothing was measured.".to_owned();
    };
    let mut verdict = format!("Fastest: {}.", describe(&best));
    let most_threads = ranked.iter().map(|entry| entry.point.threads).max().unwrap_or(best.threads);
    if let Some(busiest) = ranked.iter().map(|entry| entry.point).find(|point| point.threads == most_threads)
        && (busiest.strategy, busiest.shards) != (best.strategy, best.shards)
    {
        verdict.push_str(&format!("\nFastest at {most_threads} threads: {}.", describe(&busiest)));
    }
    verdict
}

/// "1 shard", "16 shards".
pub(crate) fn counted(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// The CSV header; one row per point follows.
/// The 1-minute load average, where the system tells it: the machine's other work shows in
/// every latency here.
pub(super) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

/// The nearest-rank percentile `p` (0 to 100) of sorted samples.
pub(super) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Nanoseconds as a person reads them: µs, ms or s.
pub(super) fn fmt_ns(ns: Option<u32>) -> String {
    match ns {
        None => "-".to_owned(),
        Some(ns) if ns < 1_000_000 => format!("{:.0} µs", f64::from(ns) / 1e3),
        Some(ns) if ns < 1_000_000_000 => format!("{:.2} ms", f64::from(ns) / 1e6),
        Some(ns) => format!("{:.2} s", f64::from(ns) / 1e9),
    }
}

pub const CSV_HEADER: &str = "rank,strategy,shards,threads,read_ratio,keys,ops,seconds,mops_per_sec,ratio_to_best";

/// Writes the ranking as CSV, with the workload (read ratio, key count) on every row so that
/// files from several runs can be concatenated.
pub fn write_csv(out: &mut impl Write, ranked: &[Ranked], read_ratio: f64, keys: usize) -> io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for (index, entry) in ranked.iter().enumerate() {
        let point = &entry.point;
        writeln!(
            out,
            "{},{},{},{},{},{},{},{:.6},{:.4},{:.4}",
            index + 1,
            point.strategy.name(),
            point.shards,
            point.threads,
            read_ratio,
            keys,
            point.throughput.ops,
            point.throughput.elapsed.as_secs_f64(),
            point.throughput.mops_per_sec(),
            entry.ratio_to_best,
        )?;
    }
    Ok(())
}

/// A text table printed as Markdown with padded columns, so that it reads well in a terminal
/// and can be pasted into a document as is. Columns whose cells are all numbers are
/// right-aligned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Appends a row; missing cells print empty, extra cells are dropped.
    pub fn push_row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).take(self.header.len()).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|row| row[c].chars().count())
                    .chain([self.header[c].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let numeric: Vec<bool> = (0..columns)
            .map(|c| !self.rows.is_empty() && self.rows.iter().all(|row| row[c].parse::<f64>().is_ok()))
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    if numeric[c] { format!("{cell:>w$}", w = widths[c]) } else { format!("{cell:<w$}", w = widths[c]) }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let rule: Vec<String> = (0..columns)
            .map(|c| if numeric[c] { format!("{}:", "-".repeat(widths[c] - 1)) } else { "-".repeat(widths[c]) })
            .collect();
        let mut text = line(&self.header);
        text.push_str(&format!("| {} |\n", rule.join(" | ")));
        for row in &self.rows {
            text.push_str(&line(row));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn point(strategy: Strategy, shards: u64, threads: usize, ops: u64) -> Point {
        Point { strategy, shards, threads, throughput: Throughput { ops, elapsed: Duration::from_secs(1) } }
    }

    #[test]
    fn ranking_puts_the_fastest_first_with_ratios_to_it() {
        let ranked = rank(&[
            point(Strategy::Mutex, 1, 1, 1_000_000),
            point(Strategy::LockFree, 16, 2, 4_000_000),
            point(Strategy::RwLock, 16, 2, 2_000_000),
        ]);
        let order: Vec<Strategy> = ranked.iter().map(|r| r.point.strategy).collect();
        assert_eq!(order, [Strategy::LockFree, Strategy::RwLock, Strategy::Mutex]);
        let ratios: Vec<f64> = ranked.iter().map(|r| r.ratio_to_best).collect();
        assert_eq!(ratios, [1.0, 0.5, 0.25]);
    }

    #[test]
    fn ranking_of_nothing_or_of_zero_throughput_has_no_nan() {
        assert!(rank(&[]).is_empty());
        let ranked = rank(&[point(Strategy::Mutex, 1, 1, 0)]);
        assert_eq!(ranked[0].ratio_to_best, 0.0);
        assert_eq!(verdict(&[]), "Nothing was measured.");
    }

    #[test]
    fn verdict_names_the_winner_and_the_winner_under_full_load() {
        let ranked = rank(&[point(Strategy::Mutex, 1, 1, 3_000_000), point(Strategy::LockFree, 256, 2, 2_000_000)]);
        assert_eq!(
            verdict(&ranked),
            "Fastest: Mutex with 1 shard (3.00 Mops/s at 1 thread).\n\
             Fastest at 2 threads: LockFree with 256 shards (2.00 Mops/s at 2 threads)."
        );
        let same = rank(&[point(Strategy::RwLock, 16, 2, 3_000_000), point(Strategy::RwLock, 16, 1, 2_000_000)]);
        assert_eq!(verdict(&same), "Fastest: RwLock with 16 shards (3.00 Mops/s at 2 threads).");
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_point_in_rank_order() {
        let ranked = rank(&[point(Strategy::CopyOnWrite, 1, 1, 500_000), point(Strategy::RwLock, 256, 2, 2_000_000)]);
        let mut out = Vec::new();
        write_csv(&mut out, &ranked, 0.95, 1000).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "rank,strategy,shards,threads,read_ratio,keys,ops,seconds,mops_per_sec,ratio_to_best\n\
             1,RwLock,256,2,0.95,1000,2000000,1.000000,2.0000,1.0000\n\
             2,CopyOnWrite,1,1,0.95,1000,500000,1.000000,0.5000,0.2500\n"
        );
    }

    #[test]
    fn tables_pad_columns_and_right_align_numbers() {
        let mut table = Table::new(["map", "Mops/s"]);
        table.push_row(["dashmap", "12.50"]);
        table.push_row(["cstore LockFree", "3.10"]);
        table.push_row(["short"]);
        assert_eq!(
            table.render(),
            "| map             | Mops/s |\n\
             | --------------- | ------ |\n\
             | dashmap         | 12.50  |\n\
             | cstore LockFree | 3.10   |\n\
             | short           |        |\n"
        );
        let mut numbers = Table::new(["n"]);
        numbers.push_row(["7"]);
        numbers.push_row(["12"]);
        assert_eq!(numbers.render(), "|   n |\n| --: |\n|   7 |\n|  12 |\n");
    }
}
