#!/usr/bin/env python3
"""What tracing costs the store, measured in one run against the same build.

Starts an OTLP receiver (examples/otlp_sink.rs) and, in rotating order each round, `cstore
serve` with the tracing layer absent (no endpoint) and exporting with traceSampleRatio 0,
0.01 and 1. redis-benchmark drives each with identical parameters; the table gives median
requests/s, the server's CPU time per request (utime + stime from /proc, which is what
carries over to bigger machines: on two cores redis-benchmark itself is often the
bottleneck), each relative to "absent", and the spans received and dropped.

    scripts/bench-tracing.py                 # 5 rounds of 200,000 requests per test
    scripts/bench-tracing.py --smoke         # one tiny round: proves the harness works
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ("absent", None),
    ("ratio 0", "0"),
    ("ratio 0.01", "0.01"),
    ("ratio 1", "1"),
]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port, process, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"cstore serve exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"cstore serve did not listen on {port} within {limit} s")


def dropped_spans(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("cstore_trace_spans_dropped_total "):
                return float(line.split()[1])
    return 0.0


class Sink:
    def __init__(self, binary):
        self.process = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self.process.stdout.readline().split()
        self.grpc = dict(part.split("=", 1) for part in first)["grpc"]

    def count(self):
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def run_one(binary, ratio, sink, args, pipeline):
    port, admin_port = free_port(), free_port()
    command = [binary, "serve", "--bind", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port)]
    if ratio is not None:
        command += ["--otlp-endpoint", f"http://{sink.grpc}", "--trace-sample-ratio", ratio]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CSTORE_"))}
    env["RUST_LOG"] = "warn"
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        spans_before = sink.count()
        cpu_before = cpu_seconds(server.pid)
        bench = [
            "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(args.requests), "-r", "100000",
            "-d", "64", "-t", "set,get", "-P", str(pipeline), "--csv",
        ]
        output = subprocess.run(bench, check=True, capture_output=True, text=True).stdout
        cpu = cpu_seconds(server.pid) - cpu_before
        rps = {}
        for line in output.splitlines()[1:]:
            cells = [cell.strip('"') for cell in line.split(",")]
            rps[cells[0]] = float(cells[1])
        dropped = dropped_spans(admin_port)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        # Spans still queued are flushed at shutdown.
        time.sleep(0.2)
        spans = sink.count() - spans_before
        requests = args.requests * len(rps)
        return {"SET": rps.get("SET", 0.0), "GET": rps.get("GET", 0.0), "cpu_us": cpu / requests * 1e6,
                "spans": spans, "dropped": dropped}
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def report(pipeline, results):
    base = {key: statistics.median(run[key] for run in results["absent"]) for key in ("SET", "GET", "cpu_us")}
    print(f"\n-P {pipeline}: medians of {len(results['absent'])} rounds, relative to 'absent' in the same run")
    print("| configuration | SET rps | GET rps | server CPU us/request | vs absent: SET, GET, CPU | spans received | spans dropped |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for name, _ in CONFIGS:
        runs = results[name]
        med = {key: statistics.median(run[key] for run in runs) for key in ("SET", "GET", "cpu_us", "spans", "dropped")}
        spread = f"{min(r['cpu_us'] for r in runs):.2f}-{max(r['cpu_us'] for r in runs):.2f}"
        print(f"| {name} | {med['SET']:,.0f} | {med['GET']:,.0f} | {med['cpu_us']:.2f} ({spread}) | "
              f"{med['SET'] / base['SET']:.3f}, {med['GET'] / base['GET']:.3f}, {med['cpu_us'] / base['cpu_us']:.3f} | "
              f"{med['spans']:,.0f} | {med['dropped']:,.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200_000, help="requests per test per run")
    parser.add_argument("--pipelines", default="1,16", help="redis-benchmark -P values")
    parser.add_argument("--smoke", action="store_true", help="one round of 2,000 requests, debug build")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.requests = 1, 2_000
    for tool in ("redis-benchmark", "cargo"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            sys.exit(f"error: {tool} is required")
    profile = [] if args.smoke else ["--release"]
    subprocess.run(["cargo", "build", "--locked", *profile, "--bin", "cstore", "--example", "otlp_sink"],
                   check=True, cwd=ROOT)
    target = ROOT / "target" / ("debug" if args.smoke else "release")
    sink = Sink(str(target / "examples" / "otlp_sink"))
    try:
        for pipeline in [int(p) for p in args.pipelines.split(",")]:
            results = {name: [] for name, _ in CONFIGS}
            for round_index in range(args.rounds):
                # Rotate the order so no configuration always runs first (or last) in a round.
                order = CONFIGS[round_index % len(CONFIGS):] + CONFIGS[:round_index % len(CONFIGS)]
                for name, ratio in order:
                    results[name].append(run_one(str(target / "cstore"), ratio, sink, args, pipeline))
                    print(f"  round {round_index + 1} -P {pipeline} {name}: {results[name][-1]}", file=sys.stderr)
            report(pipeline, results)
            if args.smoke:
                received = statistics.median(run["spans"] for run in results["ratio 1"])
                if received < args.requests:
                    sys.exit(f"error: ratio 1 exported only {received} spans for {2 * args.requests} commands")
    finally:
        sink.close()


if __name__ == "__main__":
    main()
