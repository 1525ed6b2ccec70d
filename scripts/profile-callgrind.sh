#!/usr/bin/env bash
# Instructions per request of `cstore serve` under redis-benchmark load, counted by
# valgrind's callgrind (repeatable, unlike timings on a shared 2-core machine). Used for the
# before/after numbers in docs/BENCHMARKS.md.
#
# Usage: scripts/profile-callgrind.sh [OUT_DIR]   (default /tmp/cstore-callgrind)
# Environment: CSTORE_BIN (default target/release/cstore, built if missing), N (requests per
#   test, default 20000), TESTS (default "set get"), PORT (default 16579)
# For each test, unpipelined and with -P 16: zeroes the counters after a warm-up, runs
# redis-benchmark -c 50 -r 100000 -d 64, dumps, and prints instructions per request; the
# dumps (OUT_DIR/<test>-<mode>.*) open with callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/cstore-callgrind}
N=${N:-20000}
TESTS=${TESTS:-set get}
PORT=${PORT:-16579}
CSTORE_BIN=${CSTORE_BIN:-target/release/cstore}
[ -x "$CSTORE_BIN" ] || cargo build --release --quiet
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.out.*

valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" --dump-instr=no --collect-atstart=yes \
    "$CSTORE_BIN" serve --bind 127.0.0.1 --port "$PORT" --admin-port $((PORT + 1)) >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-benchmark -p "$PORT" -c 50 -r 100000 -d 64 -t set,get -n 5000 -q >/dev/null

printf '%-5s %-6s %12s\n' test mode Ir/request
for test in $TESTS; do
    for mode in plain P16; do
        pipeline=1
        [ "$mode" = P16 ] && pipeline=16
        callgrind_control -z "$PID" >/dev/null 2>&1
        redis-benchmark -p "$PORT" -c 50 -r 100000 -d 64 -t "$test" -n "$N" -P "$pipeline" -q >/dev/null
        callgrind_control -d "$test-$mode" "$PID" >/dev/null 2>&1
        sleep 0.5
        dump=$(ls -t "$OUT"/callgrind.out.* | head -1)
        mv "$dump" "$OUT/$test-$mode.callgrind"
        total=$(grep -m1 '^summary:' "$OUT/$test-$mode.callgrind" | awk '{ print $2 }')
        [ -n "$total" ] || total=$(grep -m1 '^totals:' "$OUT/$test-$mode.callgrind" | awk '{ print $2 }')
        printf '%-5s %-6s %12.0f\n' "$test" "$mode" "$(awk -v t="$total" -v n="$N" 'BEGIN { print t / n }')"
    done
done
