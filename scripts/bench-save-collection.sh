#!/usr/bin/env bash
# Peak extra memory while cstore saves or loads one huge hash: loads a hash of FIELDS fields
# (40-byte values) into a fresh `cstore serve` with the AOF on, resets the process's peak RSS
# (/proc/PID/clear_refs), runs BGREWRITEAOF or BGSAVE, waits for it to finish and prints the
# RSS before and the peak during it; LOAD saves the hash with SAVE and starts a second server
# on that snapshot, and prints its RSS and peak RSS once it has loaded. A save or a load that
# copied the collection whole shows here.
#
#   scripts/bench-save-collection.sh [BGREWRITEAOF|BGSAVE|LOAD]   # default: all three
#
# Environment:
#   CSTORE_BIN   the cstore binary (default: target/release/cstore, built if missing)
#   FIELDS       fields of the hash (default 1000000)
#   PORT         loopback port (default 17001)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

FIELDS=${FIELDS:-1000000}
PORT=${PORT:-17001}
BIN=${CSTORE_BIN:-target/release/cstore}
for tool in redis-cli python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
done
[ -n "${CSTORE_BIN:-}" ] || cargo build --release --quiet

measure() {
    local command=$1 in_progress dir pid
    case "$command" in
        BGREWRITEAOF) in_progress=aof_rewrite_in_progress ;;
        BGSAVE) in_progress=rdb_bgsave_in_progress ;;
        LOAD) in_progress=loading ;;
        *) fail "unknown command $command (BGREWRITEAOF, BGSAVE or LOAD)" ;;
    esac
    dir=$(mktemp -d)
    "$BIN" serve --port "$PORT" --dir "$dir" --appendonly yes --save "" >"$dir/log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null; rm -rf "$dir"' RETURN
    until redis-cli -p "$PORT" PING >/dev/null 2>&1; do sleep 0.1; done
    python3 - "$FIELDS" <<'PY' | redis-cli -p "$PORT" --pipe >/dev/null
import sys
fields = int(sys.argv[1])
out = sys.stdout.buffer
for start in range(0, fields, 1000):
    args = [b"HSET", b"big"]
    for i in range(start, min(start + 1000, fields)):
        args += [b"field:%09d" % i, b"v" * 40]
    out.write(b"*%d\r\n" % len(args))
    for arg in args:
        out.write(b"$%d\r\n%s\r\n" % (len(arg), arg))
PY
    [ "$(redis-cli -p "$PORT" HLEN big)" = "$FIELDS" ] || fail "the hash was not loaded whole"
    if [ "$command" = LOAD ]; then
        redis-cli -p "$PORT" SAVE >/dev/null
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        "$BIN" serve --port "$PORT" --dir "$dir" --save "" >"$dir/log" 2>&1 &
        pid=$!
        until [ "$(redis-cli -p "$PORT" INFO persistence 2>/dev/null | tr -d '\r' | awk -F: -v f="$in_progress" '$1 == f {print $2}')" = 0 ]; do
            sleep 0.1
        done
        [ "$(redis-cli -p "$PORT" HLEN big)" = "$FIELDS" ] || fail "the snapshot did not load whole"
        printf '%-13s %9d fields: RSS loaded %7d kB, peak while loading %7d kB\n' "$command" "$FIELDS" \
            "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")" "$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
        return
    fi
    local before
    before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo 5 >"/proc/$pid/clear_refs" # resets VmHWM to the current RSS
    redis-cli -p "$PORT" "$command" >/dev/null
    sleep 0.05
    while [ "$(redis-cli -p "$PORT" INFO persistence | tr -d '\r' | awk -F: -v f="$in_progress" '$1 == f {print $2}')" != 0 ]; do
        sleep 0.05
    done
    local peak
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    printf '%-13s %9d fields: RSS before %7d kB, peak during %7d kB, extra %6d kB (%.1f%%)\n' \
        "$command" "$FIELDS" "$before" "$peak" $((peak - before)) "$(awk -v p="$peak" -v b="$before" 'BEGIN { print 100 * (p - b) / b }')"
}

for command in ${1:-BGREWRITEAOF BGSAVE LOAD}; do
    measure "$command"
done
