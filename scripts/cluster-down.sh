#!/usr/bin/env bash
# Stops the cluster that scripts/cluster-up.sh started in a state dir, and deletes the dir.
#
#   scripts/cluster-down.sh          # stop everything, remove the state dir
#   scripts/cluster-down.sh --keep   # stop everything, keep the state dir (logs, etcd data)
#
# Environment: CLUSTER_RUN and CLUSTER_TOOLS as for cluster-up.sh.
#
# Only the processes whose pids cluster-up.sh recorded are signalled, and only while their
# command line still names the state dir (a pid can be reused after a crash). Afterwards no
# process may still name the state dir on its command line, or this fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

keep=false
case "${1:-}" in
    "") ;;
    --keep) keep=true ;;
    *) fail "usage: $0 [--keep]" ;;
esac

TOOLS=${CLUSTER_TOOLS:-.tools/cluster}
RUN=${CLUSTER_RUN:-$TOOLS/run}
if [ ! -d "$RUN" ]; then
    echo "no cluster state in $RUN: nothing to stop"
    exit 0
fi
RUN=$(cd "$RUN" && pwd)
[ -f "$RUN/.cstore-test-cluster" ] || fail "$RUN is not a test cluster's state dir: leaving it alone"

# The pid in RUN/NAME.pid, if that process is still one of ours.
our_pid() {
    local pid
    [ -f "$RUN/$1.pid" ] || return 1
    pid=$(cat "$RUN/$1.pid")
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$RUN/" && echo "$pid"
}

# stop NAME...: SIGTERM to each (they shut down gracefully on it), then SIGKILL for any that
# is still there after 20 seconds.
stop() {
    local pids=() name pid i start
    start=$(date +%s.%N)
    for name in "$@"; do
        if pid=$(our_pid "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            echo "stopping $name (pid $pid)"
        fi
        rm -f "$RUN/$name.pid"
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid ignored SIGTERM: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    [ "${#pids[@]}" -eq 0 ] || awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "  gone after %.1fs\n", b - a }'
}

# Clients first, then the apiserver, then its storage, so that no component spends its last
# seconds retrying against a server that is already gone.
stop kwok kube-scheduler kube-controller-manager
stop kube-apiserver
stop etcd

sleep 0.2 # a SIGKILLed process may take a moment to leave the process table
if left=$(pgrep -af -- "$RUN/"); then
    fail "processes still use $RUN: $left"
fi

if $keep; then
    echo "stopped; state kept in $RUN"
else
    rm -rf "$RUN"
    echo "stopped; removed $RUN"
fi
