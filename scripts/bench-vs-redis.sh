#!/usr/bin/env bash
# cstore next to Redis 7, same machine, same client, same parameters (docs/BENCHMARKS.md,
# "cstore vs Redis"). Starts redis-server (persistence off) and `cstore serve` (default
# configuration) on loopback ports, runs redis-benchmark against each in turn, alternating
# A/B for several rounds, and prints medians, the server's CPU time per request (utime+stime
# from /proc/<pid>/stat before and after each run) and the cstore/Redis ratios. Then loads
# the same data into a fresh instance of each and compares memory: 1,000,000 string keys,
# one hash of 1,000,000 fields, one set of 1,000,000 members (RSS growth and INFO
# used_memory growth per element).
#
# Collection tests: redis-benchmark's hset writes `HSET myhash element:<12 digits> <-d bytes>`,
# sadd `SADD myset element:<12 digits>`, spop `SPOP myset`. Before each hset or sadd run the
# key is deleted (every run starts from an empty collection); before each spop run `myset` is
# deleted and refilled with as many members as the run pops, plus 1,000, so that every SPOP
# pops a member in both servers (the filling is not timed, and the script fails if a run
# emptied the set).
#
# Usage: scripts/bench-vs-redis.sh [--smoke] [--rounds N] [--skip-memory] [--out FILE]
#   --smoke        tiny runs, one round, small memory loads, every test including hset, sadd
#                  and spop: proves the harness works end to end (CI runs this); no number
#                  it prints means anything
#   --rounds N     A/B rounds per configuration (default 3)
#   --skip-memory  skip the memory comparison
#   --out FILE     also write the raw per-run results (TSV) to FILE
# Environment:
#   CSTORE_BIN     a cstore binary to use instead of building target/release/cstore
#   CSTORE_ARGS    extra `cstore serve` arguments (default: none, the default configuration)
#   BASE_PORT      first of the four loopback ports used (default 16379)
#   N_PLAIN, N_PIPE, N_MSET_DIV, MEM_KEYS   request counts and key count (see below)
#   MEM_ELEMENTS   fields of the hash and members of the set in the memory comparison
#                  (default 1000000)
#   MEM_KINDS      any of "keys hash set" (the default: all three)
#   TESTS          redis-benchmark tests (default "set get incr mset"; any of those and
#                  "hset sadd spop")
#   MODES          any of "plain P16 plain-t2 P16-t2" (the default: all four; " " for none,
#                  which runs the memory comparison alone)
# Under CI=true, a missing redis-server, redis-benchmark or redis-cli fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
ROUNDS=3
MEMORY=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --skip-memory) MEMORY=0 ;;
        --out) OUT="$2"; shift ;;
        -h | --help) sed -n '2,37p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

. scripts/lib.sh
for tool in redis-server redis-benchmark redis-cli python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if in_ci; then fail "$tool is required (CI=true) but not installed"; fi
        printf 'bench-vs-redis: %s is not installed; nothing to compare against (skipped)\n' "$tool" >&2
        exit 0
    fi
done

# Requests per run: about a second or two of load each on a 2-core machine.
N_PLAIN=${N_PLAIN:-200000}   # unpipelined
N_PIPE=${N_PIPE:-1000000}    # -P 16
N_MSET_DIV=${N_MSET_DIV:-4}  # MSET writes 10 keys per request: run 1/4 as many
MEM_KEYS=${MEM_KEYS:-1000000}
MEM_ELEMENTS=${MEM_ELEMENTS:-1000000}
DEFAULT_TESTS="set get incr mset"
if [ "$SMOKE" = 1 ]; then
    N_PLAIN=2000 N_PIPE=5000 ROUNDS=1 MEM_KEYS=20000 MEM_ELEMENTS=20000
    DEFAULT_TESTS="set get incr mset hset sadd spop"
fi
read -r -a TESTS <<<"${TESTS:-$DEFAULT_TESTS}"
read -r -a MEM_KINDS <<<"${MEM_KINDS:-keys hash set}"
# Members SPOP finds beyond the requests of its run: redis-benchmark may send a few more
# than -n (at most one pipeline per client, 50 x 16).
SPOP_SPARE=1000
BASE_PORT=${BASE_PORT:-16379}
REDIS_PORT=$BASE_PORT
CSTORE_PORT=$((BASE_PORT + 1))
CSTORE_ADMIN_PORT=$((BASE_PORT + 2))
read -r -a CSTORE_EXTRA <<<"${CSTORE_ARGS:-}"

cstore_bin_or_build

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

CLK_TCK=$(getconf CLK_TCK)
# utime and stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat; the
# command name in field 2 may hold spaces, so count from the closing parenthesis).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

wait_port() {
    for _ in $(seq 100); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "nothing answers PING on port $1"
}

# start_redis / start_cstore set SERVER_PID.
start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" --logfile "$WORK/redis.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$REDIS_PORT"
}
start_cstore() {
    RUST_LOG=warn "$CSTORE_BIN" serve --bind 127.0.0.1 --port "$CSTORE_PORT" \
        --admin-port "$CSTORE_ADMIN_PORT" "${CSTORE_EXTRA[@]}" >"$WORK/cstore.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$CSTORE_PORT"
}
stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

RESULTS="$WORK/results.tsv"
printf 'mode\ttest\tserver\tround\trequests\trps\tp50_ms\tp99_ms\tcpu_us_per_req\tsys_share\n' >"$RESULTS"

# The RESP stream that fills `myset` with N members element:000000000000, element:000000000001,
# ... (names like those redis-benchmark's sadd writes), 1,000 per SADD; written once per N.
spop_fill_file() {
    local file="$WORK/spop-fill-$1.resp"
    if [ ! -s "$file" ]; then
        python3 - "$1" >"$file" <<'EOF'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
for start in range(0, n, 1000):
    members = [b"element:%012d" % i for i in range(start, min(n, start + 1000))]
    parts = [b"*%d\r\n$4\r\nSADD\r\n$5\r\nmyset\r\n" % (len(members) + 2)]
    parts += [b"$%d\r\n%s\r\n" % (len(m), m) for m in members]
    out.write(b"".join(parts))
EOF
    fi
    printf '%s' "$file"
}

# prepare TEST SERVER PORT REQUESTS: puts the key a collection test works on in the state each
# run of it starts from (see the header); nothing for the string tests. Not timed.
prepare() {
    local test=$1 server=$2 port=$3 requests=$4 file members got
    case "$test" in
        hset) redis-cli -p "$port" del myhash >/dev/null ;;
        sadd) redis-cli -p "$port" del myset >/dev/null ;;
        spop)
            members=$((requests + SPOP_SPARE))
            file=$(spop_fill_file "$members")
            redis-cli -p "$port" del myset >/dev/null
            redis-cli -p "$port" --pipe <"$file" >"$WORK/fill.log" 2>&1 ||
                fail "filling myset in $server failed: $(tail -3 "$WORK/fill.log")"
            got=$(redis-cli -p "$port" scard myset)
            [ "$got" = "$members" ] || fail "$server holds $got members in myset after filling $members"
            ;;
    esac
}

# run_one MODE TEST SERVER PORT PID ROUND REQUESTS ARGS...
run_one() {
    local mode=$1 test=$2 server=$3 port=$4 pid=$5 round=$6 requests=$7
    shift 7
    local user_before sys_before user_after sys_after csv left
    prepare "$test" "$server" "$port" "$requests"
    read -r user_before sys_before < <(cpu_ticks "$pid")
    csv=$(redis-benchmark -p "$port" -c 50 -r 100000 -d 64 -t "$test" -n "$requests" --csv "$@" 2>/dev/null) ||
        fail "redis-benchmark failed against $server ($mode $test)"
    read -r user_after sys_after < <(cpu_ticks "$pid")
    if [ "$test" = spop ]; then
        left=$(redis-cli -p "$port" scard myset)
        [ "$left" -gt 0 ] || fail "$server: the spop run emptied myset, so some SPOPs popped nothing"
    fi
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    local line
    line=$(printf '%s\n' "$csv" | tr -d '"' | awk -F, 'NR == 2 { print $2 "\t" $5 "\t" $7 }')
    [ -n "$line" ] || fail "no result from redis-benchmark against $server ($mode $test): $csv"
    local cpu_us sys_share user=$((user_after - user_before)) sys=$((sys_after - sys_before))
    cpu_us=$(awk -v t=$((user + sys)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
    # The kernel's part of that time: the read and write system calls and the TCP stack.
    sys_share=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", (u + s) ? s / (u + s) : 0 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$test" "$server" "$round" "$requests" "$line" "$cpu_us" "$sys_share" >>"$RESULTS"
    printf '  %-10s %-5s %-6s round %s: %s\n' "$mode" "$test" "$server" "$round" "$(printf '%s' "$line" | tr '\t' ' ') cpu_us/req=$cpu_us sys=$sys_share" >&2
}

echo "==> throughput: redis-server $(redis-server --version | awk '{ print $3 }') vs $CSTORE_BIN ${CSTORE_ARGS:-}" >&2
start_redis
REDIS_PID=$SERVER_PID
start_cstore
CSTORE_PID=$SERVER_PID
# Warm both up (page faults, first allocations) outside the measurement.
for port in "$REDIS_PORT" "$CSTORE_PORT"; do
    redis-benchmark -p "$port" -c 50 -r 100000 -d 64 -t set,get -n $((N_PLAIN / 4 + 1000)) -q >/dev/null 2>&1
done

read -r -a MODES <<<"${MODES:-plain P16 plain-t2 P16-t2}"
for mode in "${MODES[@]}"; do
    extra=()
    requests=$N_PLAIN
    case "$mode" in P16*) extra+=(-P 16); requests=$N_PIPE ;; esac
    case "$mode" in *-t2) extra+=(--threads 2) ;; esac
    for test in "${TESTS[@]}"; do
        n=$requests
        [ "$test" = mset ] && n=$((requests / N_MSET_DIV))
        for round in $(seq "$ROUNDS"); do
            # Alternate which server goes first, so drift in background load hits both.
            if [ $((round % 2)) = 1 ]; then
                run_one "$mode" "$test" redis "$REDIS_PORT" "$REDIS_PID" "$round" "$n" "${extra[@]}"
                run_one "$mode" "$test" cstore "$CSTORE_PORT" "$CSTORE_PID" "$round" "$n" "${extra[@]}"
            else
                run_one "$mode" "$test" cstore "$CSTORE_PORT" "$CSTORE_PID" "$round" "$n" "${extra[@]}"
                run_one "$mode" "$test" redis "$REDIS_PORT" "$REDIS_PID" "$round" "$n" "${extra[@]}"
            fi
        done
    done
done
stop_server "$REDIS_PID"
stop_server "$CSTORE_PID"

MEMORY_RESULTS="$WORK/memory.tsv"
# INFO memory's used_memory: Redis's allocator count; cstore's own accounting of its keys,
# values and client buffers (an estimate: the figure maxmemory is checked against).
used_memory() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
if [ "$MEMORY" = 1 ]; then
    printf 'kind\tserver\tempty_kib\tloaded_kib\telements\tused_before\tused_after\tencoding\n' >"$MEMORY_RESULTS"
    for kind in "${MEM_KINDS[@]}"; do
        case "$kind" in
            keys) n=$MEM_KEYS what="$n keys (11-byte names key:NNNNNNN..., 64-byte values)" ;;
            hash) n=$MEM_ELEMENTS what="one hash, bighash, of $n fields (field:NNNNNNN, values value:NNNNNNN)" ;;
            set) n=$MEM_ELEMENTS what="one set, bigset, of $n members (member:NNNNNNN)" ;;
            *) fail "unknown MEM_KINDS entry: $kind (keys, hash or set)" ;;
        esac
        echo "==> memory: $what, one element per command through redis-cli --pipe" >&2
        python3 - "$kind" "$n" >"$WORK/load.resp" <<'EOF'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
value = b"v" * 64
out = sys.stdout.buffer
def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
chunk = []
for i in range(n):
    if kind == "keys":
        chunk.append(command(b"SET", b"key:%07d" % i, value))
    elif kind == "hash":
        chunk.append(command(b"HSET", b"bighash", b"field:%07d" % i, b"value:%07d" % i))
    else:
        chunk.append(command(b"SADD", b"bigset", b"member:%07d" % i))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
EOF
        for server in redis cstore; do
            if [ "$server" = redis ]; then start_redis; port=$REDIS_PORT; else start_cstore; port=$CSTORE_PORT; fi
            pid=$SERVER_PID
            sleep 0.5
            empty=$(rss_kib "$pid")
            used_before=$(used_memory "$port")
            redis-cli -p "$port" --pipe <"$WORK/load.resp" >"$WORK/pipe-$server.log" 2>&1 ||
                fail "redis-cli --pipe into $server failed: $(tail -3 "$WORK/pipe-$server.log")"
            case "$kind" in
                keys) count=$(redis-cli -p "$port" dbsize) encoding=- ;;
                hash) count=$(redis-cli -p "$port" hlen bighash) encoding=$(redis-cli -p "$port" object encoding bighash) ;;
                set) count=$(redis-cli -p "$port" scard bigset) encoding=$(redis-cli -p "$port" object encoding bigset) ;;
            esac
            [ "$count" = "$n" ] || fail "$server holds $count $kind elements after loading $n"
            sleep 1
            loaded=$(rss_kib "$pid")
            used_after=$(used_memory "$port")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$server" "$empty" "$loaded" "$count" \
                "$used_before" "$used_after" "$encoding" >>"$MEMORY_RESULTS"
            stop_server "$pid"
        done
    done
fi

[ -n "$OUT" ] && cp "$RESULTS" "$OUT"

python3 - "$RESULTS" "$MEMORY_RESULTS" "$SMOKE" <<'EOF'
import csv, statistics, sys, os
results, memory, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
rows = list(csv.DictReader(open(results), delimiter="\t"))
def med(mode, test, server, field):
    values = [float(r[field]) for r in rows if (r["mode"], r["test"], r["server"]) == (mode, test, server)]
    return statistics.median(values) if values else float("nan")
def ratio(a, b):
    return a / b if b else float("nan")
def r2(x):
    # A smoke run's CPU time can round to zero ticks: no ratio then.
    return "-" if x != x else f"{x:.2f}"
modes = list(dict.fromkeys(r["mode"] for r in rows))
tests = list(dict.fromkeys(r["test"] for r in rows))
if smoke:
    print("SMOKE RUN: tiny request counts, one round; these numbers mean nothing.")
if rows:  # MODES=" " runs the memory comparison alone
    rounds = max(int(r["round"]) for r in rows)
    print(f"medians of {rounds} alternating round(s); redis-benchmark -c 50 -r 100000 -d 64; "
          "modes: plain = no pipelining, P16 = -P 16, -t2 = --threads 2")
    print()
    print("| mode | test | Redis rps | cstore rps | rps ratio | Redis p50/p99 ms | cstore p50/p99 ms | p99 ratio "
          "| Redis CPU µs/req | cstore CPU µs/req | CPU ratio | kernel share Redis / cstore |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for mode in modes:
    for test in tests:
        fields = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "sys_share")
        r = {f: med(mode, test, "redis", f) for f in fields}
        c = {f: med(mode, test, "cstore", f) for f in fields}
        print(f"| {mode} | {test.upper()} | {r['rps']:.0f} | {c['rps']:.0f} | {r2(ratio(c['rps'], r['rps']))} "
              f"| {r['p50_ms']:.3f} / {r['p99_ms']:.3f} | {c['p50_ms']:.3f} / {c['p99_ms']:.3f} "
              f"| {r2(ratio(c['p99_ms'], r['p99_ms']))} "
              f"| {r['cpu_us_per_req']:.2f} | {c['cpu_us_per_req']:.2f} | {r2(ratio(c['cpu_us_per_req'], r['cpu_us_per_req']))} "
              f"| {r['sys_share']:.0%} / {c['sys_share']:.0%} |")
if os.path.exists(memory):
    mem = list(csv.DictReader(open(memory), delimiter="\t"))
    label = {"keys": "string keys", "hash": "hash fields", "set": "set members"}
    print()
    print("memory: growth over the empty server per element (per key, per hash field, per set member); "
          "used_memory is Redis's allocator count, but cstore's own estimate of its data")
    print()
    print("| data | server | encoding | empty RSS MiB | loaded RSS MiB | elements | bytes/element (RSS) "
          "| bytes/element (used_memory) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    per = {}
    for m in mem:
        empty, loaded, n = int(m["empty_kib"]), int(m["loaded_kib"]), int(m["elements"])
        rss = (loaded - empty) * 1024 / n
        used = (int(m["used_after"]) - int(m["used_before"])) / n
        per[(m["kind"], m["server"])] = (rss, used)
        print(f"| {label[m['kind']]} | {m['server']} | {m['encoding']} | {empty / 1024:.1f} | {loaded / 1024:.1f} "
              f"| {n} | {rss:.1f} | {used:.1f} |")
    print()
    print("| data | RSS ratio cstore/Redis | used_memory ratio cstore/Redis |")
    print("| --- | ---: | ---: |")
    for kind in dict.fromkeys(m["kind"] for m in mem):
        c, r = per[(kind, "cstore")], per[(kind, "redis")]
        print(f"| {label[kind]} | {r2(ratio(c[0], r[0]))} | {r2(ratio(c[1], r[1]))} |")
EOF
