#!/usr/bin/env bash
# Persistence next to Redis 7, same machine, same client (issue 13; docs/BENCHMARKS.md,
# "Persistence"). Two measurements, each alternating redis-server and `cstore serve` (default
# configuration) over several rounds, each round on fresh servers and empty directories:
#
#   1. BGSAVE under writes: `cstore loadgen save` loads 1,000,000 keys of 64 bytes, overwrites
#      random ones on 4 connections, and times a BGSAVE: its duration, the peak extra memory
#      of the server's process tree (Redis's fork child included, Pss so that shared pages
#      count once) and the write p99 before and during the save.
#   2. AOF write throughput: redis-benchmark SET (-c 50 -d 64 -r 1000000) with appendonly yes,
#      appendfsync everysec and always.
#
# Prints medians and cstore/Redis ratios as Markdown, then the issue's two targets with
# PASS/MISS (peak extra memory at most half of Redis's; everysec throughput at least Redis's).
# The targets are reported, never enforced: they depend on the machine.
#
# Usage: scripts/bench-persistence.sh [--smoke] [--rounds N] [--out DIR]
#   --smoke     20,000 keys, short windows, one round: proves the harness end to end (CI runs
#               it); no number it prints means anything
#   --rounds N  rounds per measurement (default 3)
#   --out DIR   keep the raw TSV results in DIR
# Environment:
#   CSTORE_BIN  a cstore binary to use instead of building target/release/cstore
#   BASE_PORT   first of the three loopback ports used (default 16779)
#   KEYS, AOF_REQUESTS   key count of the save benchmark and SETs per AOF run
# Under CI=true, a missing redis-server, redis-benchmark or redis-cli fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=0
ROUNDS=3
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

for tool in redis-server redis-benchmark redis-cli python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing "$tool is not installed: nothing to compare against" || exit 0
    fi
done

KEYS=${KEYS:-1000000}
AOF_REQUESTS=${AOF_REQUESTS:-300000}
LOADGEN_ARGS=()
if [ "$SMOKE" = 1 ]; then
    KEYS=20000 AOF_REQUESTS=2000 ROUNDS=1
    LOADGEN_ARGS=(--warmup-ms 100 --baseline-ms 300)
fi
BASE_PORT=${BASE_PORT:-16779}
REDIS_PORT=$BASE_PORT
CSTORE_PORT=$((BASE_PORT + 1))
CSTORE_ADMIN_PORT=$((BASE_PORT + 2))

cstore_bin_or_build

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 200); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || fail "the server on port $1 exited at startup (logs in $WORK)"
        sleep 0.1
    done
    fail "nothing answers PING on port $1"
}

# start_server redis|cstore DIR EXTRA-ARGS...: one fresh server with its files in DIR (sets
# SERVER_PID and PORT). Both start with no save rules and no AOF unless EXTRA-ARGS say so.
start_server() {
    local server=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    if [ "$server" = redis ]; then
        PORT=$REDIS_PORT
        redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
            --logfile "$dir/server.log" "$@" &
    else
        PORT=$CSTORE_PORT
        RUST_LOG=warn "$CSTORE_BIN" serve --bind 127.0.0.1 --port "$PORT" --admin-port "$CSTORE_ADMIN_PORT" \
            --dir "$dir" "$@" >"$dir/server.log" 2>&1 &
    fi
    SERVER_PID=$!
    wait_port "$PORT"
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# The order alternates by round, so that drift in the machine's background load hits both.
servers_for_round() { if [ $(($1 % 2)) = 1 ]; then echo redis cstore; else echo cstore redis; fi; }

SAVES="$WORK/saves.tsv"
echo "==> BGSAVE under writes: $KEYS keys of 64 bytes, $ROUNDS round(s)" >&2
for round in $(seq "$ROUNDS"); do
    for server in $(servers_for_round "$round"); do
        start_server "$server" "$WORK/save-$server-$round"
        "$CSTORE_BIN" loadgen save --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --label "$server" \
            --keys "$KEYS" --tsv "$SAVES" "${LOADGEN_ARGS[@]}" >&2 ||
            fail "the save benchmark failed against $server (logs in $WORK/save-$server-$round)"
        stop_server
        rm -rf "$WORK/save-$server-$round"
    done
done

AOF="$WORK/aof.tsv"
printf 'server\tfsync\tround\trps\tp99_ms\n' >"$AOF"
echo "==> AOF SET throughput: redis-benchmark -c 50 -d 64 -r 1000000 -n $AOF_REQUESTS, $ROUNDS round(s)" >&2
for fsync in everysec always; do
    for round in $(seq "$ROUNDS"); do
        for server in $(servers_for_round "$round"); do
            dir="$WORK/aof-$server-$fsync-$round"
            start_server "$server" "$dir" --appendonly yes --appendfsync "$fsync"
            csv=$(redis-benchmark -p "$PORT" -c 50 -d 64 -r 1000000 -t set -n "$AOF_REQUESTS" --csv 2>/dev/null) ||
                fail "redis-benchmark failed against $server (appendfsync $fsync)"
            # The AOF must hold the writes: an empty log would mean persistence was not on.
            [ -n "$(find "$dir" -name '*.incr.aof' -size +0 -print -quit)" ] ||
                fail "$server wrote no incremental AOF file under $dir"
            # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
            line=$(printf '%s\n' "$csv" | tr -d '"' | awk -F, 'NR == 2 { print $2 "\t" $7 }')
            [ -n "$line" ] || fail "no result from redis-benchmark against $server (appendfsync $fsync): $csv"
            printf '%s\t%s\t%s\t%s\n' "$server" "$fsync" "$round" "$line" >>"$AOF"
            printf '  %-6s appendfsync %-8s round %s: %s rps, p99 %s ms\n' "$server" "$fsync" "$round" \
                "${line%%$'\t'*}" "${line##*$'\t'}" >&2
            stop_server
            rm -rf "$dir"
        done
    done
done

if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$SAVES" "$AOF" "$OUT/"
fi

python3 - "$SAVES" "$AOF" "$SMOKE" <<'EOF'
import csv, statistics, sys
saves, aof, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
save_rows = list(csv.DictReader(open(saves), delimiter="\t"))
aof_rows = list(csv.DictReader(open(aof), delimiter="\t"))

def median(rows, field, **match):
    values = [float(r[field]) for r in rows if all(r[k] == v for k, v in match.items()) and r[field] != "-"]
    return statistics.median(values) if values else float("nan")

def ratio(a, b):
    return a / b if b else float("nan")

if smoke:
    print("SMOKE RUN: tiny key counts and windows, one round; these numbers mean nothing.\n")
rounds = len(save_rows) // 2
keys = save_rows[0]["keys"]
print(f"BGSAVE under writes: {keys} keys of {save_rows[0]['value_size']} bytes, "
      f"{save_rows[0]['connections']} write connections (one SET in flight each); medians of {rounds} round(s)\n")
print("| server | save ms | memory before MiB | peak extra MiB | writes/s before | writes/s during "
      "| write p99 before µs | write p99 during µs | longest write during µs |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
m = {}
for server in ("redis", "cstore"):
    f = lambda field: median(save_rows, field, server=server)
    m[server] = {k: f(k) for k in ("save_ms", "pss_before_kib", "peak_extra_kib", "baseline_writes_per_sec",
                                   "saving_writes_per_sec", "baseline_p99_us", "saving_p99_us", "saving_max_us")}
    v = m[server]
    print(f"| {server} | {v['save_ms']:.0f} | {v['pss_before_kib'] / 1024:.1f} | {v['peak_extra_kib'] / 1024:.1f} "
          f"| {v['baseline_writes_per_sec']:.0f} | {v['saving_writes_per_sec']:.0f} | {v['baseline_p99_us']:.0f} "
          f"| {v['saving_p99_us']:.0f} | {v['saving_max_us']:.0f} |")
r, c = m["redis"], m["cstore"]
print(f"\ncstore/Redis: save time {ratio(c['save_ms'], r['save_ms']):.2f}×, "
      f"peak extra memory {ratio(c['peak_extra_kib'], r['peak_extra_kib']):.2f}×, "
      f"write p99 during the save {ratio(c['saving_p99_us'], r['saving_p99_us']):.2f}×")

print(f"\nAOF: redis-benchmark SET -c 50 -d 64 -r 1000000; medians of {rounds} round(s)\n")
print("| appendfsync | Redis rps | cstore rps | rps ratio | Redis p99 ms | cstore p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
rps = {}
for fsync in ("everysec", "always"):
    rr, cr = median(aof_rows, "rps", server="redis", fsync=fsync), median(aof_rows, "rps", server="cstore", fsync=fsync)
    rps[fsync] = ratio(cr, rr)
    print(f"| {fsync} | {rr:.0f} | {cr:.0f} | {rps[fsync]:.2f} "
          f"| {median(aof_rows, 'p99_ms', server='redis', fsync=fsync):.3f} "
          f"| {median(aof_rows, 'p99_ms', server='cstore', fsync=fsync):.3f} |")

memory = ratio(c["peak_extra_kib"], r["peak_extra_kib"])
verdict = lambda ok: "PASS" if ok else "MISS"
print("\nTargets (reported, not enforced):")
print(f"  peak extra memory during BGSAVE <= 0.5x Redis's: {memory:.2f}x {verdict(memory <= 0.5)}")
print(f"  SET throughput with appendfsync everysec >= Redis's: {rps['everysec']:.2f}x {verdict(rps['everysec'] >= 1.0)}")
EOF
