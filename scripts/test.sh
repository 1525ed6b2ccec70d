#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs on a fresh Debian machine
# (Debian packages, a Python venv), then runs every check. Under CI=true a tool that is
# still missing after installation fails the run; nothing is skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

require() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool is required but not installed"
    done
}

step "disk space for the build"
# CI builds a fresh clone once: incremental compilation only adds its cache (2 to 5 GiB).
in_ci && export CARGO_INCREMENTAL=0
# Out of space, the build fails deep inside a -sys crate's C compiler output ("No space left
# on device" from cc or ar), which reads like a toolchain problem. Say it first, plainly.
# A cold run writes about 8 GiB under target/ (measured: 7.3 GiB without incremental), plus
# Go's build cache under $HOME when that is cold too: below these floors it cannot finish.
if [ -d target/debug/deps ]; then need_gib=${CSTORE_TEST_MIN_FREE_GIB:-3}; else need_gib=${CSTORE_TEST_MIN_FREE_GIB:-10}; fi
free_gib=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
[ "$free_gib" -ge "$need_gib" ] ||
    fail "$free_gib GiB free on the file system of $PWD; this run needs about $need_gib GiB (set CSTORE_TEST_MIN_FREE_GIB to override)"
echo "$free_gib GiB free, about $need_gib GiB needed"

step "test dependencies (redis-server, redis-cli, redis-benchmark, redis-py in .venv, make; helm, kubectl, lua5.1, yamllint, kubernetes-validate, hadolint)"
scripts/test-deps.sh
scripts/delivery-deps.sh
require cargo rustfmt cargo-clippy go

# The Go build of the test cluster (about 30 minutes on 2 cores when cold, seconds when warm)
# runs in the background from here on, at low priority (cluster-build.sh nices each step):
# it takes the cores that the Rust build leaves idle (links, the crate's last codegen units)
# and most of them while the tests and scripts below wait on sockets and processes, which
# cuts a cold run by about that much. The tests keep their priority. The e2e step waits for it.
step "test cluster and trace backend from Go modules, in the background: etcd, Kubernetes, KWOK, Jaeger (log: .tools/cluster-build.log)"
mkdir -p .tools
# GOCACHE and GOMODCACHE stay under $HOME (go env's defaults), so CI's fresh clone on the same
# machine finds them warm. setsid: a process group of its own, so that an early exit stops
# every go process it started. A new session is also a new scheduler autogroup, which Linux
# shares the CPU with equally whatever the nice values inside it: the group itself is niced
# (/proc/self/autogroup), else the Go build takes half the machine from the tests.
setsid sh -c 'echo 10 >/proc/self/autogroup 2>/dev/null; exec scripts/cluster-build.sh' >.tools/cluster-build.log 2>&1 &
CLUSTER_BUILD=$!
trap 'kill -- -"$CLUSTER_BUILD" 2>/dev/null || true' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

step "shuttle explores the real engine's interleavings (the test-only shuttle feature; clippy too)"
# The feature swaps the engine's locks, atomics and ArcSwap for shuttle's (src/engine/sync.rs).
# Only cstore itself recompiles: its dependencies are the test build's.
cargo clippy --locked --features shuttle --lib --test shuttle -- -D warnings
cargo test --locked --features shuttle --test shuttle

step "benchmarks (smoke run: each benchmark once, nothing timed; debug build, no release compile)"
cargo test --locked --bench workloads

step "CRD drift (cstore crd vs crds/) and manifest validation"
CSTORE_BIN=target/debug/cstore scripts/check-crd.sh

step "delivery: Dockerfile, Helm chart, manifests/install, Argo CD apps and health checks (no cluster needed)"
CSTORE_BIN=target/debug/cstore scripts/check-delivery.sh

step "observability stack (kustomize, kubernetes-validate --strict, dashboards against live /metrics)"
CSTORE_BIN=target/debug/cstore scripts/check-observability.sh

step "cstore vs Redis 7 harness (smoke run: proves the harness end to end, times nothing)"
CSTORE_BIN=target/debug/cstore scripts/bench-vs-redis.sh --smoke

step "strategy map over the network (smoke run: every strategy x shards x connections, CSV and plots, times nothing)"
map_dir=$(mktemp -d)
CSTORE_BIN=target/debug/cstore scripts/strategy-map.sh --smoke --out-dir "$map_dir"
for file in network-map.csv network-read-0.95.png network-read-0.5.png; do
    [ -s "$map_dir/$file" ] || fail "strategy-map.sh --smoke wrote no $file"
done
rm -rf "$map_dir"

step "live migration under load (smoke run: every strategy and shard change, every key, TTL and counter checked, times nothing)"
CSTORE_BIN=target/debug/cstore scripts/bench-migration.sh --smoke

step "persistence vs Redis 7 (smoke run: BGSAVE under writes with memory sampling, AOF everysec/always throughput; times nothing)"
CSTORE_BIN=target/debug/cstore scripts/bench-persistence.sh --smoke

step "per-client limits at work (output limits, clients that never read, maxmemory-clients, pre-AUTH limits, keepalive, RLIMIT_NOFILE, expiry on 4,096 shards; debug build)"
CSTORE_BIN=target/debug/cstore scripts/probe-limits.sh

step "tracing overhead benchmark (smoke run: proves the harness end to end, times nothing)"
scripts/bench-tracing.py --smoke

step "waiting for the test cluster's Go build (started in the background at the beginning)"
waited_from=$(date +%s)
if ! wait "$CLUSTER_BUILD"; then
    cat .tools/cluster-build.log >&2
    fail "building the test cluster failed (log above)"
fi
trap - EXIT
tail -n 20 .tools/cluster-build.log
echo "waited $(($(date +%s) - waited_from)) s for it"

step "end-to-end tests against the local control plane (scripts/e2e.sh: never skipped in CI)"
# The local cluster always, even when the caller's environment names a cluster of its own.
env -u KUBECONFIG CSTORE_BIN=target/debug/cstore scripts/e2e.sh
