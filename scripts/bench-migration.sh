#!/usr/bin/env bash
# Live reconfiguration under load (issue 12; docs/BENCHMARKS.md, "Live migration"): starts
# `cstore serve` (RwLock, 16 shards) on a free loopback port and runs `cstore loadgen migrate`
# against it: loads 1,000,000 keys (10% with a TTL), runs GET/SET/INCR on 4 connections, walks
# the server live through every strategy and 16 -> 4096 -> 1 -> 256 shards with CONFIG SET,
# then checks every key, value, TTL and counter. Prints each migration's duration and the GET
# latency before and during migrations; any lost key, wrong value or TTL, counter off by one,
# error reply or dropped connection fails the script (timing targets are only reported).
#
# Usage: scripts/bench-migration.sh [--smoke] [-- MIGRATE-ARGS...]
#   --smoke            20,000 keys and short windows, still every check (CI runs this); the
#                      timings it prints mean nothing
#   -- MIGRATE-ARGS    passed on to `cstore loadgen migrate` (see `cstore loadgen migrate --help`),
#                      e.g. -- --connections 8 --walk Mutex:4096,LockFree:1
# Environment: CSTORE_BIN (default: build target/release/cstore), PORT (default: the first free
#   pair of ports from 16579; the admin port is PORT + 1)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=(--smoke) ;;
        --) shift; break ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (loadgen arguments go after --)" >&2; exit 2 ;;
    esac
    shift
done

cstore_bin_or_build

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${PORT:-}" ]; then
    PORT=16579
    while listening "$PORT" || listening $((PORT + 1)); do
        PORT=$((PORT + 2))
        [ "$PORT" -lt 16779 ] || fail "no free pair of loopback ports in 16579-16778"
    done
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

step "cstore serve --strategy RwLock --shards 16 on 127.0.0.1:$PORT ($CSTORE_BIN)"
RUST_LOG=warn "$CSTORE_BIN" serve --bind 127.0.0.1 --port "$PORT" --admin-port $((PORT + 1)) \
    --strategy RwLock --shards 16 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    listening "$PORT" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "cstore serve exited at startup"; }
    sleep 0.1
done
listening "$PORT" || fail "cstore serve does not listen on port $PORT after 10 s"

step "cstore loadgen migrate ${SMOKE[*]} $*"
status=0
"$CSTORE_BIN" loadgen migrate --addr "127.0.0.1:$PORT" "${SMOKE[@]}" "$@" || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "--- server log ---" >&2
    cat "$WORK/server.log" >&2
    fail "cstore serve is no longer running"
fi
if [ "$status" -ne 0 ]; then
    echo "--- server log (last 50 lines) ---" >&2
    tail -n 50 "$WORK/server.log" >&2
    fail "the live migration run failed (exit status $status)"
fi
