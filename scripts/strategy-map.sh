#!/usr/bin/env bash
# The strategy map over the network (docs/BENCHMARKS.md, "Strategy map over the network"):
# for every strategy × shard count, starts `cstore serve` on a loopback port and drives it
# with `cstore loadgen run` at 1, 8 and 50 connections (no pipelining) for a read-heavy (95%
# GET) and a write-heavy (50% SET) mix; then draws one PNG per mix and prints the table.
#
# Usage: scripts/strategy-map.sh [--smoke] [--out-dir DIR]
#   --smoke        short points and a small key space: proves the script works (nothing timed)
#   --out-dir DIR  where the CSV and PNGs go (default docs/benchmarks)
# Environment: CSTORE_BIN (default: build target/release/cstore), DURATION_MS (default 2000),
#   KEYS (default 100000), CONNECTIONS (default 1,8,50), PORT (default 16479)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=docs/benchmarks
SMOKE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --out-dir) OUT_DIR="$2"; shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
DURATION_MS=${DURATION_MS:-2000}
KEYS=${KEYS:-100000}
CONNECTIONS=${CONNECTIONS:-1,8,50}
PORT=${PORT:-16479}
if [ "$SMOKE" = 1 ]; then DURATION_MS=100 KEYS=1000; fi

. scripts/lib.sh
cstore_bin_or_build
mkdir -p "$OUT_DIR"
CSV="$OUT_DIR/network-map.csv"
rm -f "$CSV"

SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }; true; }
trap cleanup EXIT

for strategy in Mutex RwLock LockFree CopyOnWrite; do
    for shards in 1 16 256; do
        RUST_LOG=warn "$CSTORE_BIN" serve --bind 127.0.0.1 --port "$PORT" --admin-port $((PORT + 1)) \
            --strategy "$strategy" --shards "$shards" >/dev/null 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
            sleep 0.1
        done
        for ratio in 0.95 0.5; do
            "$CSTORE_BIN" loadgen run --addr "127.0.0.1:$PORT" --strategy "$strategy" --shards "$shards" \
                --read-ratio "$ratio" --connections "$CONNECTIONS" --keys "$KEYS" --duration-ms "$DURATION_MS" \
                --csv "$CSV" >&2
        done
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    done
done

for ratio in 0.95 0.5; do
    "$CSTORE_BIN" loadgen plot --csv "$CSV" --read-ratio "$ratio" --out "$OUT_DIR/network-read-$ratio.png" \
        --title "cstore serve over loopback TCP: read ratio $ratio, $KEYS keys, 64-byte values, ${DURATION_MS} ms per point"
done

python3 - "$CSV" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
conns = sorted({int(r["connections"]) for r in rows})
for ratio in dict.fromkeys(r["read_ratio"] for r in rows):
    print(f"\nread ratio {ratio} (ops/s; best per column in bold)\n")
    print("| strategy | shards | " + " | ".join(f"{c} conn" for c in conns) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in conns) + " |")
    mine = [r for r in rows if r["read_ratio"] == ratio]
    best = {c: max(float(r["ops_per_sec"]) for r in mine if int(r["connections"]) == c) for c in conns}
    configs = list(dict.fromkeys((r["strategy"], r["shards"]) for r in mine))
    for strategy, shards in configs:
        cells = []
        for c in conns:
            v = [float(r["ops_per_sec"]) for r in mine if (r["strategy"], r["shards"], int(r["connections"])) == (strategy, shards, c)]
            cell = f"{v[0]:.0f}" if v else "-"
            cells.append(f"**{cell}**" if v and v[0] == best[c] else cell)
        print(f"| {strategy} | {shards} | " + " | ".join(cells) + " |")
EOF
