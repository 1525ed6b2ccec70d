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

step "test dependencies (redis-server, redis-cli, redis-benchmark, redis-py in .venv; helm, kubectl, lua5.1, yamllint, kubernetes-validate, hadolint)"
scripts/test-deps.sh
scripts/delivery-deps.sh
require cargo rustfmt cargo-clippy go

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

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

step "per-client limits at work (output limits, clients that never read, pre-AUTH limits, keepalive, RLIMIT_NOFILE; debug build)"
CSTORE_BIN=target/debug/cstore scripts/probe-limits.sh

step "tracing overhead benchmark (smoke run: proves the harness end to end, times nothing)"
scripts/bench-tracing.py --smoke

step "test cluster and trace backend from Go modules: etcd, Kubernetes, KWOK, Jaeger (cold: about 30 minutes on 2 cores, once per machine; warm: seconds)"
# GOCACHE and GOMODCACHE stay under $HOME (go env's defaults), so CI's fresh clone on the same
# machine finds them warm.
scripts/cluster-build.sh

step "end-to-end tests against the local control plane (scripts/e2e.sh: never skipped in CI)"
# The local cluster always, even when the caller's environment names a cluster of its own.
env -u KUBECONFIG CSTORE_BIN=target/debug/cstore scripts/e2e.sh
