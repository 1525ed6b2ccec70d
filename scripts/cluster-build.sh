#!/usr/bin/env bash
# Builds the local Kubernetes control plane that the cluster tests run (scripts/cluster-up.sh):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK, from the Go modules
# pinned in tests/cluster (etcd and the Kubernetes components) and tests/cluster/kwok (KWOK,
# in a module of its own so that its newer grpc/otel/x/* pins do not change what the
# Kubernetes components link against); and Jaeger v2, the trace backend of scripts/e2e.sh,
# from tests/cluster/jaeger (its own module for the same reason). Nothing is downloaded but
# Go modules.
#
#   scripts/cluster-build.sh        # binaries into .tools/cluster/bin/, KWOK's stages beside them
#
# Environment:
#   CLUSTER_TOOLS  where to put bin/ and kwok-stages.yaml (default .tools/cluster)
#   CI             under CI a missing Go fails the run; elsewhere it warns and exits 0
#
# Caching: the Go build cache and module cache stay where `go env` puts them (under $HOME),
# not in the work tree, because CI runs in a fresh clone on the same machine: a repo-local
# cache would start cold every run. A warm run (nothing changed) compiles and links nothing:
# go build sees that each binary's build ID already matches and leaves it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

MODULE=tests/cluster
KWOK_MODULE=tests/cluster/kwok
JAEGER_MODULE=tests/cluster/jaeger
TOOLS=${CLUSTER_TOOLS:-.tools/cluster}
mkdir -p "$TOOLS/bin"
TOOLS=$(cd "$TOOLS" && pwd) # go build -C changes directory: -o needs an absolute path
BIN=$TOOLS/bin

if ! command -v go >/dev/null 2>&1; then
    missing "go is not installed: cannot build the test cluster" || exit 0
fi

# Never let a build rewrite go.mod/go.sum: a dependency change is a reviewed commit.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
TIMINGS=()
# Runs one build step at low priority (the machine is shared with Rust builds) and times it.
timed() {
    local name=$1 start
    shift
    start=$(now)
    nice -n 10 "$@" || fail "building $name failed (command: $*)"
    TIMINGS+=("$(printf '%-48s %6ss' "$name" "$(elapsed "$start")")")
}

# Version stamps, read from the pinned modules so that they cannot drift from go.mod.
mod_field() { go -C "$1" list -m -f "$3" "$2"; }
KUBE_VERSION=$(mod_field "$MODULE" k8s.io/kubernetes '{{.Version}}')
# The release's own date, not the build's: a fixed -ldflags keeps the build ID stable, so a
# warm run relinks nothing (the SOURCE_DATE_EPOCH idea of reproducible builds).
KUBE_DATE=$(mod_field "$MODULE" k8s.io/kubernetes '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}')
KUBE_MAJOR=${KUBE_VERSION#v}
KUBE_MAJOR=${KUBE_MAJOR%%.*}
KUBE_MINOR=${KUBE_VERSION#v*.}
KUBE_MINOR=${KUBE_MINOR%%.*}
# The module proxy does not say which commit v1.N.x is, so gitCommit keeps its in-tree default.
KUBE_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    KUBE_LDFLAGS+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$KUBE_MAJOR -X $pkg.gitMinor=$KUBE_MINOR"
    KUBE_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$KUBE_DATE"
done

ETCD_VERSION=$(mod_field "$MODULE" go.etcd.io/etcd/server/v3 '{{.Version}}')
# etcd's version string is compiled in; its Git SHA is not, unless given. The proxy's .info
# file for the tag records the commit (Origin.Hash) when it knows it.
ETCD_LDFLAGS="-s -w"
etcd_info="$(go env GOMODCACHE)/cache/download/go.etcd.io/etcd/server/v3/@v/$ETCD_VERSION.info"
etcd_sha=$(sed -n 's/.*"Hash":"\([0-9a-f]\{7\}\)[0-9a-f]*".*/\1/p' "$etcd_info" 2>/dev/null || true)
[ -n "$etcd_sha" ] && ETCD_LDFLAGS+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_sha"

KWOK_VERSION=$(mod_field "$KWOK_MODULE" sigs.k8s.io/kwok '{{.Version}}')
JAEGER_VERSION=$(mod_field "$JAEGER_MODULE" github.com/jaegertracing/jaeger '{{.Version}}')
# Jaeger's own build stamps the release into internal/version; the module's tag is v1.N.x, its
# v2 binary's release v2.(N-63).x: stamp the tag we pinned, with the proxy's date and commit.
JAEGER_LDFLAGS="-s -w"
jaeger_pkg=github.com/jaegertracing/jaeger/internal/version
JAEGER_LDFLAGS+=" -X $jaeger_pkg.latestVersion=$JAEGER_VERSION"
JAEGER_LDFLAGS+=" -X $jaeger_pkg.date=$(mod_field "$JAEGER_MODULE" github.com/jaegertracing/jaeger '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}')"
jaeger_info="$(go env GOMODCACHE)/cache/download/github.com/jaegertracing/jaeger/@v/$JAEGER_VERSION.info"
jaeger_sha=$(sed -n 's/.*"Hash":"\([0-9a-f]\{40\}\)".*/\1/p' "$jaeger_info" 2>/dev/null || true)
[ -n "$jaeger_sha" ] && JAEGER_LDFLAGS+=" -X $jaeger_pkg.commitSHA=$jaeger_sha"

step "building the test cluster: Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, KWOK $KWOK_VERSION, Jaeger $JAEGER_VERSION ($(go env GOVERSION))"
echo "GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE)"
start_all=$(now)

# The modules first, so that a slow or refused download shows as such and not as a build error.
timed "module download" go -C "$MODULE" mod download
timed "module download (kwok)" go -C "$KWOK_MODULE" mod download
timed "module download (jaeger)" go -C "$JAEGER_MODULE" mod download

# One go build for the three Kubernetes commands: they share most packages, and go build
# compiles those once and schedules the rest across the cores.
timed "kube-apiserver, -controller-manager, -scheduler" \
    go build -C "$MODULE" -trimpath -ldflags "$KUBE_LDFLAGS" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
# etcd's main package is the root of its server module.
timed etcd go build -C "$MODULE" -trimpath -ldflags "$ETCD_LDFLAGS" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
timed kwok go build -C "$KWOK_MODULE" -trimpath -ldflags "-s -w" -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok
# Jaeger v2 (an OpenTelemetry Collector distribution: OTLP receivers, in-memory storage, the
# query API), the trace backend of scripts/e2e.sh. The module's v1.x tags carry the v2
# binary, cmd/jaeger (v1.76.0 is Jaeger v2.13.0).
timed jaeger go build -C "$JAEGER_MODULE" -trimpath -ldflags "$JAEGER_LDFLAGS" -o "$BIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger

# The kwok binary does nothing without Stages (kwokctl normally supplies them). Use the
# default ones that kwokctl uses, read from the pinned KWOK module rather than kept in this
# repository: nodes become Ready and keep a lease, pods become Running and Ready, and deleted
# or completed pods go away.
kwok_dir=$(go -C "$KWOK_MODULE" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
stages=$TOOLS/kwok-stages.yaml
{
    echo "# Generated by scripts/cluster-build.sh from sigs.k8s.io/kwok@$KWOK_VERSION: do not edit."
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        echo "---"
        cat "$kwok_dir/kustomize/stage/$f"
    done
} >"$stages.tmp"
mv "$stages.tmp" "$stages"

step "built into $BIN"
for t in "${TIMINGS[@]}"; do echo "  $t"; done
printf '  %-48s %6ss\n' total "$(elapsed "$start_all")"
# sed, not head: head exits after its lines, and under pipefail the writer's SIGPIPE would
# fail the whole build whenever it loses that race.
"$BIN/kube-apiserver" --version
"$BIN/etcd" --version | sed -n 1,2p | paste -sd' '
"$BIN/kwok" --version 2>&1 | sed -n 1p
"$BIN/jaeger" version 2>&1 | tail -1
echo # its version line ends without a newline
ls -l "$BIN"
