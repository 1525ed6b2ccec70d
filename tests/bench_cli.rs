//! `cstore bench` end to end: the real binary, a tiny configuration, and its outputs.

use std::collections::HashSet;
use std::fs;
use std::process::{Command, Output};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn cstore_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cstore")).arg("bench").args(args).output().expect("the cstore binary runs")
}

#[test]
fn bench_prints_a_ranking_and_writes_the_csv_and_the_plot() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("points.csv");
    let png = dir.path().join("plot.png");
    let (csv_arg, png_arg) = (csv.to_str().unwrap(), png.to_str().unwrap());
    let output = cstore_bench(&[
        "--duration",
        "50ms",
        "--keys",
        "1000",
        "--threads",
        "1,2",
        "--shards",
        "1,16",
        "--csv",
        csv_arg,
        "--plot",
        png_arg,
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Not a terminal: no progress bar, so no control sequences in either stream.
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "stderr: {stderr:?}");
    let ranking_rows =
        stdout.lines().filter(|line| line.split('|').nth(1).is_some_and(|c| c.trim().parse::<u32>().is_ok()));
    assert_eq!(ranking_rows.count(), 16, "4 strategies × 2 shard counts × 2 thread counts:\n{stdout}");
    assert!(stdout.contains("\nFastest: "), "{stdout}");

    let csv_text = fs::read_to_string(&csv).unwrap();
    let mut lines = csv_text.lines();
    assert_eq!(
        lines.next(),
        Some("rank,strategy,shards,threads,read_ratio,keys,ops,seconds,mops_per_sec,ratio_to_best")
    );
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 16);
    let configurations: HashSet<(&str, &str, &str)> = rows.iter().map(|row| (row[1], row[2], row[3])).collect();
    for strategy in ["Mutex", "RwLock", "LockFree", "CopyOnWrite"] {
        for shards in ["1", "16"] {
            for threads in ["1", "2"] {
                assert!(configurations.contains(&(strategy, shards, threads)), "{strategy} {shards} {threads}");
            }
        }
    }
    let throughputs: Vec<f64> = rows.iter().map(|row| row[8].parse().unwrap()).collect();
    assert!(throughputs.iter().all(|&mops| mops > 0.0), "{csv_text}");
    assert!(throughputs.windows(2).all(|pair| pair[0] >= pair[1]), "rows are ranked best first: {csv_text}");
    assert_eq!(rows[0][0], "1");
    assert_eq!(rows[0][9], "1.0000");
    assert!(rows.iter().all(|row| row[4] == "0.95" && row[5] == "1000"));

    assert!(fs::read(&png).unwrap().starts_with(PNG_SIGNATURE));
}

#[test]
fn bad_input_exits_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().to_str().unwrap();
    for (args, message) in [
        (&["--read-ratio", "1.5"][..], "between 0 and 1"),
        (&["--threads", "0"], "at least 1 thread"),
        (&["--keys", "0"], "at least 1 key"),
        (&["--duration", "0ms"], "longer than zero"),
        (&["--shards", "1,12"], "shards must be a power of two between 1 and 4096, got 12"),
        (
            &["--duration", "10ms", "--csv", "/nonexistent-dir/points.csv"],
            "cannot write the CSV file /nonexistent-dir/points.csv",
        ),
        (&["--duration", "10ms", "--plot", directory], "cannot write the plot"),
    ] {
        let output = cstore_bench(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} fails before measuring");
    }
}
