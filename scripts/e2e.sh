#!/usr/bin/env bash
# End-to-end test of the operator, the chart, the CRD and the traces against a real
# Kubernetes API server. Each scenario is a named check; the last line is
# 'e2e: N passed, N failed', and any failure makes the exit status non-zero.
#
#   scripts/e2e.sh           # the local control plane of scripts/cluster-up.sh, started and stopped here
#   KUBECONFIG=~/.kube/config scripts/e2e.sh   # a cluster of yours (namespaces cstore-e2e-*,
#                                             # the CRD and a Helm release cstore-operator are
#                                             # created there and removed at the end)
#
# Without KUBECONFIG (or with it naming the local cluster's kubeconfig) the script builds the
# control plane and Jaeger (scripts/cluster-build.sh; warm: seconds), starts the cluster
# (scripts/cluster-up.sh) and stops it on exit, whatever happens.
#
# What runs where: the API server, the controllers, the scheduler and KWOK's fake nodes run the
# cluster side; KWOK marks pods Running and Ready, but nothing runs in them. So `cstore
# operator` runs here as a local process, authenticated as the chart's ServiceAccount with a
# token from the TokenRequest API: every call it makes is authorized by the chart's own RBAC.
# A store that must answer commands is a local `cstore serve`. Pod and Service addresses are
# fake (RFC 5737 documentation ranges): nothing here ever dials one; every connection goes to
# 127.0.0.1 or to the API server of the kubeconfig. Jaeger v2 runs on 127.0.0.1 and receives
# the operator's and the store's traces over OTLP; its query API is what the trace checks read.
#
# Scenarios: CRD (server-side apply, explain, every validation rule refuses a bad spec with its
# message), the chart with its ClusterRole, a store's children with owner references, Ready,
# printer columns, repair of deleted or edited children, no adoption of foreign objects,
# garbage collection, leader election (failover after kill -9, hand-over on SIGTERM), Degraded
# from a ResourceQuota, no Degraded from a transient API error (a 409 Conflict that an admission
# webhook on 127.0.0.1 injects), namespaced mode with the chart's Roles, an https tracing
# endpoint accepted by both the CRD and the store or by neither, new connections right after
# SIGTERM, the Argo CD health checks under gopher-lua, and traces in Jaeger (reconciles, command
# spans, and a live reconfiguration's store spans in the reconcile's trace).
#
# Environment:
#   CSTORE_BIN   the cstore binary (default target/debug/cstore, built with cargo if missing)
#   E2E_KEEP=1   leave the local cluster running at the end (stop it with scripts/cluster-down.sh)
#   CI           under CI a missing tool fails the run; elsewhere the run is skipped with a warning

# Helpers defined inside a check and called through until_true look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. scripts/lib.sh

START=$(date +%s)
TOOLS=.tools/cluster
LOCAL_KUBECONFIG=$(pwd)/$TOOLS/run/kubeconfig
CSTORE=${CSTORE_BIN:-target/debug/cstore}
RELEASE=cstore-operator
OPERATOR_NS=cstore-e2e-system
NS=cstore-e2e
NS_A=cstore-e2e-team-a
NS_B=cstore-e2e-team-b
NS_QUOTA=cstore-e2e-quota
CRD_NAME=concurrentstores.cstore.dev
STORE_IMAGE=registry.example.com/cstore:e2e
# The operator's lease duration (LEASE_DURATION_SECS in src/operator/mod.rs).
LEASE_SECS=15
# Loopback is never proxied: the kube client, curl and the OTLP exporter all honour NO_PROXY.
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}
export no_proxy=$NO_PROXY

# --- tools --------------------------------------------------------------------------------
KUBECTL=${KUBECTL:-}
[ -n "$KUBECTL" ] || { [ -x .tools/bin/kubectl ] && KUBECTL=.tools/bin/kubectl; } || KUBECTL=$(command -v kubectl || true)
HELM=.tools/bin/helm
[ -x "$HELM" ] || HELM=$(command -v helm || true)
for tool in "$KUBECTL:kubectl" "$HELM:helm"; do
    [ -n "${tool%%:*}" ] || { missing "${tool#*:} is not installed (scripts/delivery-deps.sh installs it)" || exit 0; }
done
for tool in go curl python3 openssl redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || { missing "$tool is not installed" || exit 0; }
done

use_local_cluster=true
if [ -n "${KUBECONFIG:-}" ] && [ "$(realpath -m "$KUBECONFIG")" != "$(realpath -m "$LOCAL_KUBECONFIG")" ]; then
    use_local_cluster=false
fi

WORK=$(mktemp -d)
kubectl() { "$KUBECTL" "$@"; }
helm() { "$HELM" "$@"; }

# --- the tally ----------------------------------------------------------------------------
passed=0
failed=0
results=()
# check NAME COMMAND...: runs one scenario; a non-zero status fails it, and the run goes on.
check() {
    local name=$1 start rc
    shift
    step "check: $name"
    start=$(date +%s)
    "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        results+=("ok    $name ($(($(date +%s) - start))s)")
    else
        failed=$((failed + 1))
        results+=("FAIL  $name ($(($(date +%s) - start))s)")
    fi
    return 0
}
# Prints why a check fails, and fails.
no() {
    printf 'FAIL: %s\n' "$*" >&2
    return 1
}
# until_true SECONDS COMMAND...: polls COMMAND every half second until it succeeds.
until_true() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# --- processes we start -------------------------------------------------------------------
declare -A PIDS=()
# spawn NAME COMMAND...: a background process with its output in WORK/NAME.log.
spawn() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    PIDS[$name]=$!
}
# stop NAME [SIGNAL]: signals one of our processes (SIGTERM by default) and waits for it.
stop() {
    local pid=${PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    kill "-${2:-TERM}" "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "PIDS[$1]"
}

cluster_started=false
finish() {
    local rc=$?
    trap - EXIT INT TERM
    for name in "${!PIDS[@]}"; do stop "$name"; done
    if $use_local_cluster; then
        if $cluster_started && [ "${E2E_KEEP:-0}" != 1 ]; then
            scripts/cluster-down.sh >"$WORK/cluster-down.log" 2>&1 || { cat "$WORK/cluster-down.log" >&2; failed=$((failed + 1)); results+=("FAIL  cluster-down.sh"); }
        fi
    else
        # A cluster of yours: remove what this run created.
        helm uninstall "$RELEASE" -n "$OPERATOR_NS" >/dev/null 2>&1
        kubectl delete namespace "$NS" "$NS_A" "$NS_B" "$NS_QUOTA" "$OPERATOR_NS" --ignore-not-found --wait=false >/dev/null 2>&1
        kubectl delete validatingwebhookconfiguration cstore-e2e-transient --ignore-not-found >/dev/null 2>&1
        $crd_existed || kubectl delete crd "$CRD_NAME" --ignore-not-found --wait=false >/dev/null 2>&1
    fi
    if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -s "$log" ] || continue
            printf '\n--- last lines of %s ---\n' "$log"
            tail -n 25 "$log"
        done
    fi
    rm -rf "$WORK"
    step "e2e summary ($(($(date +%s) - START))s in all)"
    printf '%s\n' "${results[@]}"
    # A setup step that failed before the checks counts as a failure.
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    printf 'e2e: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}
crd_existed=false
trap finish EXIT
trap 'exit 130' INT TERM

# --- setup --------------------------------------------------------------------------------
if [ ! -x "$CSTORE" ]; then
    step "building $CSTORE"
    cargo build --locked --bin cstore || fail "cargo build failed"
fi
step "building the test cluster's tools and Jaeger (scripts/cluster-build.sh)"
build_start=$(date +%s)
scripts/cluster-build.sh >"$WORK/cluster-build.log" 2>&1 || { cat "$WORK/cluster-build.log" >&2; fail "scripts/cluster-build.sh failed"; }
tail -n 12 "$WORK/cluster-build.log"
echo "cluster-build.sh took $(($(date +%s) - build_start))s"
JAEGER=$TOOLS/bin/jaeger
[ -x "$JAEGER" ] || fail "$JAEGER is missing after scripts/cluster-build.sh"

if $use_local_cluster; then
    step "starting the local control plane (scripts/cluster-up.sh)"
    cluster_started=true
    CLUSTER_SKIP_BUILD=1 scripts/cluster-up.sh >"$WORK/cluster-up.log" 2>&1 || { cat "$WORK/cluster-up.log" >&2; fail "scripts/cluster-up.sh failed"; }
    tail -n 4 "$WORK/cluster-up.log"
    export KUBECONFIG=$LOCAL_KUBECONFIG
else
    step "using the cluster of KUBECONFIG=$KUBECONFIG ($(kubectl config current-context))"
    kubectl get --raw /readyz >/dev/null || fail "the cluster of $KUBECONFIG is not reachable"
    kubectl get crd "$CRD_NAME" >/dev/null 2>&1 && crd_existed=true
fi
kubectl version

# Free ports on 127.0.0.1, as many as asked. Below the kernel's ephemeral range: a port the OS
# gave out (bind to port 0) is released before our process binds it, and in between any
# outgoing connection on this busy machine may take it as its local port (EADDRINUSE).
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < int(sys.argv[1]):
    port = random.randrange(10000, low)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
    if port not in ports:
        ports.append(port)
print(*ports)
PY
}

# --- Jaeger --------------------------------------------------------------------------------
read -r OTLP_GRPC OTLP_HTTP QUERY_HTTP QUERY_GRPC < <(free_ports 4)
cat >"$WORK/jaeger.yaml" <<EOF
# Jaeger v2 for the e2e test: OTLP in, memory storage, the query API; loopback only, no
# self-telemetry endpoint.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:$QUERY_HTTP
    grpc:
      endpoint: 127.0.0.1:$QUERY_GRPC
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$OTLP_GRPC
      http:
        endpoint: 127.0.0.1:$OTLP_HTTP
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
step "starting Jaeger: OTLP/gRPC 127.0.0.1:$OTLP_GRPC, query API http://127.0.0.1:$QUERY_HTTP"
spawn jaeger "$JAEGER" --config "$WORK/jaeger.yaml"
JAEGER_API=http://127.0.0.1:$QUERY_HTTP/api
until_true 60 curl -fsS "$JAEGER_API/services" || fail "Jaeger's query API did not come up"
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_GRPC
export OTEL_EXPORTER_OTLP_PROTOCOL=grpc

# A kubeconfig that authenticates as ServiceAccount NAMESPACE/NAME with a TokenRequest token,
# for the API server and CA of the current kubeconfig: prints its path.
sa_kubeconfig() {
    local namespace=$1 name=$2 file=$WORK/kubeconfig-$1-$2 token server ca
    token=$(kubectl -n "$namespace" create token "$name" --duration=2h) || return 1
    server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
    ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
    if [ -z "$ca" ]; then
        ca=$(base64 -w0 <"$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')") || return 1
    fi
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $namespace-$name
  user:
    token: $token
contexts:
- name: e2e
  context:
    cluster: e2e
    user: $namespace-$name
    namespace: $namespace
current-context: e2e
EOF
    chmod 600 "$file"
    echo "$file"
}

# The stores' pods are KWOK's: no process behind them, and pod IPs that lead off this machine.
# So every operator applies live settings to one local `cstore serve` that stands in for every
# pod (--store-address), and never dials a pod IP. It exports its spans to Jaeger, as a pod would.
read -r STANDIN_PORT STANDIN_ADMIN < <(free_ports 2)
# Its --dir is the run's scratch directory: a persistent store's rules, which it is told too,
# make it save there as it stops, not in the work tree.
spawn standin env NO_COLOR=1 OTEL_SERVICE_NAME=cstore-e2e-standin \
    "$CSTORE" serve --bind 127.0.0.1 --port "$STANDIN_PORT" --admin-port "$STANDIN_ADMIN" --dir "$WORK"
until_true 30 curl -fsS "http://127.0.0.1:$STANDIN_ADMIN/readyz" || fail "the stand-in cstore serve did not start"
# standin COMMAND...: one command to the stand-in store, its reply on stdout.
standin() { redis-cli -p "$STANDIN_PORT" "$@" | tr -d '\r'; }

# start_operator NAME KUBECONFIG [VAR=VALUE...]: `cstore operator` as a local process.
start_operator() {
    local name=$1 config=$2
    shift 2
    spawn "operator-$name" env KUBECONFIG="$config" CSTORE_IMAGE="$STORE_IMAGE" \
        CSTORE_OPERATOR_STORE_ADDRESS="127.0.0.1:$STANDIN_PORT" \
        CSTORE_OPERATOR_ADMIN_BIND=127.0.0.1 CSTORE_OPERATOR_ADMIN_PORT=0 \
        POD_NAMESPACE="$OPERATOR_NS" POD_NAME="e2e-$name" CSTORE_LEASE_NAME=cstore-operator \
        OTEL_SERVICE_NAME=cstore-operator-e2e NO_COLOR=1 "$@" "$CSTORE" operator
}
lease_holder() { kubectl -n "$OPERATOR_NS" get lease cstore-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
holder_is() { [ "$(lease_holder)" = "$1" ]; }

# A store's condition: cond NAMESPACE STORE TYPE prints "status|reason|message".
cond() {
    kubectl -n "$1" get cstore "$2" -o jsonpath="{range .status.conditions[?(@.type==\"$3\")]}{.status}|{.reason}|{.message}{end}" 2>/dev/null
}
cond_is() { [[ "$(cond "$1" "$2" "$3")" == "$4"* ]]; }

# store_yaml NAME [REPLICAS]: a small store.
store_yaml() {
    cat <<EOF
apiVersion: cstore.dev/v1alpha1
kind: ConcurrentStore
metadata:
  name: $1
spec:
  strategy: RwLock
  shards: 8
  replicas: ${2:-1}
EOF
}

# --- CRD -------------------------------------------------------------------------------------
crd_apply() {
    kubectl apply --server-side -f crds/ || return 1
    # Retried: until the API server writes the CRD's first status, `kubectl wait` fails at once
    # (".status.conditions accessor error: <nil>") instead of waiting.
    until_true 60 kubectl wait --for=condition=Established "crd/$CRD_NAME" --timeout=10s
}
check "CRD: kubectl apply --server-side -f crds/, Established" crd_apply

crd_explain() {
    # The API server publishes a new CRD's OpenAPI a moment after Established.
    explain() { kubectl explain concurrentstores.spec >"$WORK/explain.out" 2>&1; }
    until_true 30 explain || { cat "$WORK/explain.out"; no "kubectl explain failed"; return 1; }
    head -n 12 "$WORK/explain.out"
    if ! grep -q 'strategy' "$WORK/explain.out" || ! grep -q 'shards' "$WORK/explain.out"; then
        no "explain lists no strategy or shards"
    fi
}
check "CRD: kubectl explain concurrentstores.spec" crd_explain

kubectl create namespace "$NS" >/dev/null 2>&1 || true
# refused NAME SPEC_YAML EXPECTED_MESSAGE: the API server refuses the store with that message.
refused() {
    local name=$1 spec=$2 want=$3 out
    if out=$(printf 'apiVersion: cstore.dev/v1alpha1\nkind: ConcurrentStore\nmetadata:\n  name: %s\nspec:\n%s\n' "$name" "$spec" |
        kubectl -n "$NS" create --dry-run=server -f - 2>&1); then
        no "accepted: $out"
        return 1
    fi
    echo "$out"
    [[ "$out" == *"$want"* ]] || no "refused, but without the message: $want"
}
check "CRD refuses: strategy not in the enum" refused bad-strategy '  strategy: Spinlock' 'Unsupported value: "Spinlock"'
check "CRD refuses: shards not a power of two (CEL)" refused bad-shards '  shards: 12' 'shards must be a power of two between 1 and 4096'
check "CRD refuses: shards above 4096" refused many-shards '  shards: 8192' 'should be less than or equal to 4096'
check "CRD refuses: negative maxMemory (CEL)" refused negative-memory '  maxMemory: -1Gi' 'maxMemory must be a non-negative quantity such as 512Mi or 2Gi'
check "CRD refuses: maxMemory not a quantity (CEL)" refused word-memory '  maxMemory: lots' 'maxMemory must be a non-negative quantity such as 512Mi or 2Gi'
check "CRD refuses: pod labels the operator sets (CEL)" refused own-labels \
    "$(printf '  pod:\n    labels:\n      app.kubernetes.io/name: mine')" 'labels app.kubernetes.io/name and app.kubernetes.io/instance are set by the operator'
check "CRD refuses: a name that is no Service name (CEL)" refused dotted.name '  shards: 4' "metadata.name must be at most 63 lowercase letters"
check "CRD refuses: tracing endpoint without http(s) scheme" refused bad-endpoint \
    "$(printf '  tracing:\n    endpoint: otel-collector:4317')" 'should match'
check "CRD refuses: sampleRatio above 1" refused bad-ratio \
    "$(printf '  tracing:\n    sampleRatio: 2')" 'should be less than or equal to 1'
check "CRD refuses: unknown eviction policy" refused bad-eviction '  evictionPolicy: allkeys-lru' 'Unsupported value: "allkeys-lru"'
check "CRD refuses: persistence with two replicas (CEL)" refused persistent-pair \
    $'  replicas: 2\n  persistence:\n    mode: Snapshot' 'persistence needs replicas: 1: each replica is an independent store'
check "CRD refuses: snapshot rules that are no Redis save syntax (CEL)" refused bad-rules \
    $'  persistence:\n    mode: Snapshot\n    snapshotRules: "3600"' 'persistence.snapshotRules must be pairs of whole numbers'
check "CRD refuses: a volume size of zero (CEL)" refused no-volume \
    $'  persistence:\n    mode: AppendOnly\n    size: "0"' 'persistence.size must be a positive quantity'

# --- the chart, cluster-wide ----------------------------------------------------------------
helm_install() {
    helm upgrade --install "$RELEASE" charts/cstore-operator -n "$OPERATOR_NS" --create-namespace \
        --set image.repository="${STORE_IMAGE%:*}" --set image.tag="${STORE_IMAGE##*:}" \
        --wait --timeout 180s "$@" || return 1
    kubectl -n "$OPERATOR_NS" get deployment,serviceaccount,role,rolebinding -l app.kubernetes.io/instance="$RELEASE"
}
check "chart: helm install (ClusterRole, leader-election Role)" helm_install
kubectl get clusterrole "$RELEASE" >/dev/null 2>&1 || echo "warning: no ClusterRole $RELEASE" >&2

SA_CONFIG=$(sa_kubeconfig "$OPERATOR_NS" "$RELEASE") || fail "no TokenRequest token for $OPERATOR_NS/$RELEASE"
operator_leads() {
    start_operator a "$SA_CONFIG"
    until_true 60 holder_is e2e-a || no "e2e-a never held the lease (holder: '$(lease_holder)')"
}
check "operator: runs as the chart's ServiceAccount (TokenRequest) and takes the lease" operator_leads

# --- a store and its children ---------------------------------------------------------------
STORE=sessions
# owned_by KIND NAME UID: the object has a controller owner reference to the store.
owned_by() {
    [ "$(kubectl -n "$NS" get "$1" "$2" -o jsonpath='{.metadata.ownerReferences[?(@.controller==true)].uid}' 2>/dev/null)" = "$3" ]
}
store_children() {
    store_yaml "$STORE" 2 | kubectl -n "$NS" apply -f - || return 1
    local uid
    uid=$(kubectl -n "$NS" get cstore "$STORE" -o jsonpath='{.metadata.uid}')
    for child in "configmap $STORE-config" "deployment $STORE" "service $STORE" "poddisruptionbudget $STORE"; do
        # shellcheck disable=SC2086 # KIND NAME
        until_true 60 owned_by $child "$uid" || no "$child does not exist with the store as controlling owner" || return 1
        echo "$child: owned by ConcurrentStore $STORE ($uid)"
    done
}
check "store: ConfigMap, Deployment, Service, PDB with owner references" store_children

store_ready() {
    kubectl -n "$NS" wait --for=condition=Ready "cstore/$STORE" --timeout=120s || return 1
    kubectl -n "$NS" get pods -o wide
}
check "store: KWOK makes the pods Ready; kubectl wait --for=condition=Ready cstore/$STORE" store_ready

printer_columns() {
    kubectl -n "$NS" get cstore "$STORE" | tee "$WORK/columns.out"
    local header
    header=$(head -1 "$WORK/columns.out")
    for column in NAME STRATEGY SHARDS READY AGE; do
        [[ "$header" == *"$column"* ]] || no "no column $column" || return 1
    done
    if ! grep -q "RwLock" "$WORK/columns.out" || ! grep -q "2/2" "$WORK/columns.out"; then
        no "the row does not show RwLock and 2/2"
    fi
}
check "store: printer columns" printer_columns

# store_runs STRATEGY SHARDS: the status says every pod runs it, and the store is Ready.
store_runs() {
    [ "$(kubectl -n "$NS" get cstore "$STORE" -o jsonpath='{.status.strategy}/{.status.shards}')" = "$1/$2" ] &&
        cond_is "$NS" "$STORE" Ready True
}
replica_sets() { kubectl -n "$NS" get replicasets -l app.kubernetes.io/instance="$STORE" -o name | sort; }
live_reconfiguration() {
    local before after
    before=$(replica_sets)
    [ "$(standin SET e2e:kept before-the-change)" = OK ] || no "the stand-in store refused a SET" || return 1
    kubectl -n "$NS" patch cstore "$STORE" --type merge -p '{"spec":{"strategy":"LockFree","shards":64}}' || return 1
    until_true 60 store_runs LockFree 64 || no "status never showed LockFree x 64 and Ready: $(cond "$NS" "$STORE" Progressing)" || return 1
    standin INFO cstore | grep -E '^(strategy|shards|migrations_completed):'
    standin INFO cstore | grep -qx 'strategy:LockFree' || no "the store does not run LockFree" || return 1
    [ "$(standin GET e2e:kept)" = before-the-change ] || no "the key written before the change is gone" || return 1
    after=$(replica_sets)
    [ "$before" = "$after" ] || no "the change made a new ReplicaSet: $before -> $after" || return 1
    echo "ReplicaSets unchanged: $after"
    # Back to the spec the other checks expect.
    kubectl -n "$NS" patch cstore "$STORE" --type merge -p '{"spec":{"strategy":"RwLock","shards":8}}' || return 1
    until_true 60 store_runs RwLock 8 || no "the store never came back to RwLock x 8"
}
check "live reconfiguration: a strategy and shard change reaches the store, no new ReplicaSet, the key stays" live_reconfiguration

restore_deleted_service() {
    local old
    old=$(kubectl -n "$NS" get service "$STORE" -o jsonpath='{.metadata.uid}')
    kubectl -n "$NS" delete service "$STORE" --wait=true || return 1
    new_service() {
        local uid
        uid=$(kubectl -n "$NS" get service "$STORE" -o jsonpath='{.metadata.uid}' 2>/dev/null)
        [ -n "$uid" ] && [ "$uid" != "$old" ]
    }
    until_true 30 new_service || no "the deleted Service was not recreated"
}
check "store: a deleted Service is recreated" restore_deleted_service

restore_edited_configmap() {
    local want key
    want=$(kubectl -n "$NS" get configmap "$STORE-config" -o jsonpath='{.data}')
    # shellcheck disable=SC2016 # a Go template, not shell
    key=$(kubectl -n "$NS" get configmap "$STORE-config" -o go-template='{{range $k, $v := .data}}{{$k}}{{end}}')
    [ -n "$key" ] || no "the ConfigMap has no data" || return 1
    # A hand edit of the operator's own field (an added key would be the editor's, not drift).
    kubectl -n "$NS" patch configmap "$STORE-config" --type merge \
        -p "{\"data\":{\"$key\":\"# edited by hand\\n\"}}" || return 1
    restored() { [ "$(kubectl -n "$NS" get configmap "$STORE-config" -o jsonpath='{.data}')" = "$want" ]; }
    until_true 30 restored || no "the edited ConfigMap was not restored: $(kubectl -n "$NS" get configmap "$STORE-config" -o jsonpath='{.data}')"
}
check "store: a ConfigMap edited by hand is restored" restore_edited_configmap

restore_scaled_deployment() {
    kubectl -n "$NS" scale deployment "$STORE" --replicas=5 || return 1
    restored() { [ "$(kubectl -n "$NS" get deployment "$STORE" -o jsonpath='{.spec.replicas}')" = 2 ]; }
    until_true 30 restored || no "the Deployment scaled by hand was not set back to 2 replicas"
}
check "store: a Deployment scaled by hand is set back" restore_scaled_deployment

no_forbidden() {
    if grep -niE 'forbidden' "$WORK/operator-a.log"; then
        no "the operator's log shows requests refused by RBAC"
        return 1
    fi
    echo "no 403 in $(wc -l <"$WORK/operator-a.log") log lines"
}
check "operator: no call refused by the chart's ClusterRole" no_forbidden

# --- objects that are not the store's --------------------------------------------------------
# foreign KIND: an object of that kind exists under the store's child name, not owned by it.
foreign() {
    local kind=$1 store=taken-${1,,} name
    case "$kind" in
        Service)
            name=$store
            kubectl -n "$NS" create service clusterip "$name" --tcp=5432:5432 >/dev/null || return 1
            ;;
        ConfigMap)
            name=$store-config
            kubectl -n "$NS" create configmap "$name" --from-literal=owner=someone-else >/dev/null || return 1
            ;;
    esac
    local before
    before=$(kubectl -n "$NS" get "$kind" "$name" -o jsonpath='{.metadata.resourceVersion}')
    store_yaml "$store" | kubectl -n "$NS" apply -f - || return 1
    degraded_naming() { cond_is "$NS" "$store" Degraded True && [[ "$(cond "$NS" "$store" Degraded)" == *"$name"* ]]; }
    local ok=true
    until_true 30 degraded_naming || { no "the store is not Degraded with a message naming $kind $name: '$(cond "$NS" "$store" Degraded)'"; ok=false; }
    local owners after
    owners=$(kubectl -n "$NS" get "$kind" "$name" -o jsonpath='{.metadata.ownerReferences}')
    after=$(kubectl -n "$NS" get "$kind" "$name" -o jsonpath='{.metadata.resourceVersion}')
    [ -z "$owners" ] || { no "$kind $name was adopted: ownerReferences $owners"; ok=false; }
    [ "$before" = "$after" ] || { no "$kind $name was modified (resourceVersion $before -> $after)"; ok=false; }
    kubectl -n "$NS" delete cstore "$store" --wait=false >/dev/null
    $ok
}
check "store: a foreign Service under its name is neither adopted nor changed; Degraded names it" foreign Service
check "store: a foreign ConfigMap under its name is neither adopted nor changed; Degraded names it" foreign ConfigMap

# --- failure status ------------------------------------------------------------------------
quota_degraded() {
    kubectl create namespace "$NS_QUOTA" >/dev/null 2>&1
    kubectl -n "$NS_QUOTA" create quota no-pods --hard=pods=0 || return 1
    store_yaml quota | kubectl -n "$NS_QUOTA" apply -f - || return 1
    local start=$SECONDS
    # The Deployment controller reports the refusal within seconds (ReplicaFailure=True,
    # FailedCreate); the store should say so well before the 10-minute progress deadline.
    until_true 60 cond_is "$NS_QUOTA" quota Degraded True || {
        kubectl -n "$NS_QUOTA" get deployment quota -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
        no "not Degraded after 60s: Degraded='$(cond "$NS_QUOTA" quota Degraded)' Progressing='$(cond "$NS_QUOTA" quota Progressing)'"
        return 1
    }
    echo "Degraded after $((SECONDS - start))s: $(cond "$NS_QUOTA" quota Degraded)"
    [[ "$(cond "$NS_QUOTA" quota Degraded)" == *quota* || "$(cond "$NS_QUOTA" quota Degraded)" == *FailedCreate* ]] ||
        no "the Degraded message does not give the ReplicaFailure reason"
}
check "failure: a ResourceQuota that forbids the pods -> Degraded quickly, with the reason" quota_degraded

# A transient error: a validating admission webhook on 127.0.0.1 answers the operator's
# updates of the store's Deployment with 409 Conflict for a few seconds, as a real conflict
# would. A healthy store must not turn Degraded meanwhile.
WEBHOOK=cstore-e2e-transient
start_conflict_webhook() {
    local port
    read -r port < <(free_ports 1)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/webhook.key" -out "$WORK/webhook.crt" 2>/dev/null || return 1
    spawn webhook python3 -c "$(cat <<'PY'
import http.server, json, ssl, sys
port, cert, key, user = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Review(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["request"]
        deny = request["userInfo"]["username"] == user
        response = {"uid": request["uid"], "allowed": not deny}
        if deny:
            response["status"] = {"code": 409, "reason": "Conflict",
                                  "message": "injected by the cstore e2e test: a transient conflict"}
        print("deny" if deny else "allow", request["operation"], request["name"], request["userInfo"]["username"], flush=True)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Review)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
)" "$port" "$WORK/webhook.crt" "$WORK/webhook.key" "system:serviceaccount:$OPERATOR_NS:$RELEASE"
    kubectl apply -f - <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: $WEBHOOK
webhooks:
- name: transient.e2e.cstore.dev
  clientConfig:
    url: https://127.0.0.1:$port/
    caBundle: $(base64 -w0 <"$WORK/webhook.crt")
  rules:
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["UPDATE"]
    resources: ["deployments"]
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: $NS
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: ["v1"]
  timeoutSeconds: 5
EOF
}
transient_not_degraded() {
    local user="system:serviceaccount:$OPERATOR_NS:$RELEASE" ok=true
    start_conflict_webhook || { kubectl delete validatingwebhookconfiguration "$WEBHOOK" --ignore-not-found >/dev/null; return 1; }
    # The API server takes the webhook up within a second or so: wait until an update of the
    # operator's (impersonated, dry run) meets the conflict.
    conflicted() {
        kubectl --as="$user" -n "$NS" label deployment "$STORE" e2e=probe --overwrite --dry-run=server >/dev/null 2>&1
        grep -q '^deny' "$WORK/webhook.log"
    }
    if until_true 30 conflicted; then
        local before hits degraded=false
        before=$(grep -cE 'a transient conflict|transient.e2e.cstore.dev' "$WORK/operator-a.log")
        # Make the operator update the Deployment: scale it by hand; the operator sets it back.
        kubectl -n "$NS" scale deployment "$STORE" --replicas=3 >/dev/null
        for _ in $(seq 1 20); do
            if ! $degraded && cond_is "$NS" "$STORE" Degraded True; then
                degraded=true
                echo "Degraded: $(cond "$NS" "$STORE" Degraded)"
            fi
            sleep 0.5
        done
        hits=$(($(grep -cE 'a transient conflict|transient.e2e.cstore.dev' "$WORK/operator-a.log") - before))
        echo "operator log lines with the injected 409 meanwhile: $hits"
        [ "$hits" -gt 0 ] || { no "the operator met no injected 409"; ok=false; }
        ! $degraded || { no "the store turned Degraded on a transient 409"; ok=false; }
    else
        no "the webhook never refused the operator's updates"
        ok=false
    fi
    kubectl delete validatingwebhookconfiguration "$WEBHOOK" --ignore-not-found >/dev/null
    stop webhook
    kubectl -n "$NS" wait --for=condition=Ready "cstore/$STORE" --timeout=60s >/dev/null ||
        { no "not Ready again once the conflicts stop"; ok=false; }
    $ok
}
check "failure: a transient API error (409 Conflict) does not turn a healthy store Degraded" transient_not_degraded

# --- leader election ---------------------------------------------------------------------
two_operators() {
    start_operator b "$SA_CONFIG"
    sleep 3
    holder_is e2e-a || no "the lease moved from e2e-a to '$(lease_holder)' while e2e-a lives"
}
check "leader election: a second operator waits while the first leads" two_operators

failover() {
    local start=$SECONDS
    stop operator-a KILL
    until_true $((LEASE_SECS + 10)) holder_is e2e-b || no "e2e-b did not take the lease after e2e-a's kill -9 (holder '$(lease_holder)')" || return 1
    local took=$((SECONDS - start))
    echo "e2e-b leads ${took}s after kill -9 of e2e-a (lease duration ${LEASE_SECS}s)"
    [ "$took" -le $((LEASE_SECS + 5)) ] || no "took longer than the lease duration"
}
check "leader election: kill -9 of the leader, the other takes over within the lease duration" failover

sigterm_releases() {
    local start=$SECONDS
    stop operator-b TERM
    released() { [ -z "$(lease_holder)" ] || ! holder_is e2e-b; }
    until_true 5 released || no "the lease still names e2e-b 5s after its SIGTERM" || return 1
    echo "lease released $((SECONDS - start))s after SIGTERM (holder now '$(lease_holder)')"
    start_operator a "$SA_CONFIG"
    until_true 10 holder_is e2e-a || no "a new operator did not take the released lease at once"
}
check "leader election: SIGTERM releases the lease at once" sigterm_releases

# --- garbage collection ------------------------------------------------------------------
garbage_collected() {
    kubectl -n "$NS" delete cstore "$STORE" --wait=true --timeout=60s || return 1
    kubectl -n "$NS" wait --for=delete "deployment/$STORE" "service/$STORE" "configmap/$STORE-config" \
        "poddisruptionbudget/$STORE" --timeout=60s || no "the store's children outlived it"
}
check "store: deleting the store lets the garbage collector remove its children" garbage_collected

# --- persistence ----------------------------------------------------------------------------
# persistent_yaml NAME WHEN_DELETED: a store with snapshots on a claim.
persistent_yaml() {
    store_yaml "$1"
    printf '  persistence:\n    mode: Snapshot\n    size: 1Gi\n    whenDeleted: %s\n' "$2"
}
claim_owners() { kubectl -n "$NS" get pvc "$1" -o jsonpath='{.metadata.ownerReferences[*].kind}' 2>/dev/null; }
# jsonpath_is KIND NAME JSONPATH WANT: the object's field is WANT.
jsonpath_is() {
    local got
    got=$(kubectl -n "$NS" get "$1" "$2" -o jsonpath="$3") || return 1
    [ "$got" = "$4" ] || no "$1 $2 $3 is '$got', not '$4'"
}
persistent_claim() {
    persistent_yaml durable Retain | kubectl -n "$NS" apply -f - || return 1
    until_true 60 kubectl -n "$NS" get pvc durable-data || no "no claim durable-data" || return 1
    jsonpath_is pvc durable-data '{.spec.accessModes[0]} {.spec.resources.requests.storage}' 'ReadWriteOnce 1Gi' || return 1
    jsonpath_is pvc durable-data '{.metadata.labels.cstore\.dev/data-of}' durable || return 1
    [ -z "$(claim_owners durable-data)" ] || no "a retained claim has an owner: $(claim_owners durable-data)" || return 1
    until_true 60 kubectl -n "$NS" get deployment durable || no "no Deployment durable" || return 1
    jsonpath_is deployment durable '{.spec.strategy.type}' Recreate || return 1
    jsonpath_is deployment durable '{.spec.template.spec.volumes[?(@.name=="data")].persistentVolumeClaim.claimName}' durable-data || return 1
    jsonpath_is deployment durable '{.spec.template.spec.containers[0].volumeMounts[?(@.name=="data")].mountPath}' /data || return 1
    jsonpath_is deployment durable '{.spec.template.spec.terminationGracePeriodSeconds}' 100 || return 1
    kubectl -n "$NS" get configmap durable-config -o jsonpath='{.data.cstore\.toml}' | grep -q '^dir = "/data"' ||
        no "the config file does not put the data on the volume" || return 1
    # KWOK's pods have no volumes, but the scheduler places a pod only once its claim is bound,
    # and this cluster has no provisioner: a PersistentVolume made for the claim binds it.
    printf '%s\n' "apiVersion: v1" "kind: PersistentVolume" "metadata: {name: $NS-durable-data}" "spec:" \
        "  capacity: {storage: 1Gi}" "  accessModes: [ReadWriteOnce]" "  persistentVolumeReclaimPolicy: Retain" \
        '  storageClassName: ""' "  hostPath: {path: /var/lib/cstore-e2e/durable}" \
        "  claimRef: {namespace: $NS, name: durable-data}" | kubectl apply -f - || return 1
    until_true 60 jsonpath_is pvc durable-data '{.status.phase}' Bound || no "the claim was never bound" || return 1
    kubectl -n "$NS" wait --for=condition=Ready cstore/durable --timeout=120s || no "the persistent store never became Ready" || return 1
    kubectl -n "$NS" get cstore durable | tee "$WORK/persistent-columns.out"
    { grep -q 'PERSISTENCE' "$WORK/persistent-columns.out" && grep -q 'Snapshot' "$WORK/persistent-columns.out"; } ||
        no "the printer columns do not show the persistence mode"
}
check "persistence: a claim (ReadWriteOnce, labelled, no owner with Retain) mounted at /data by a Recreate Deployment; Ready once bound" persistent_claim

retained_claim() {
    kubectl -n "$NS" patch cstore durable --type merge -p '{"spec":{"persistence":{"whenDeleted":"Delete"}}}' || return 1
    until_true 30 test "$(claim_owners durable-data)" = ConcurrentStore || no "Delete did not give the claim an owner" || return 1
    kubectl -n "$NS" patch cstore durable --type merge -p '{"spec":{"persistence":{"whenDeleted":"Retain"}}}' || return 1
    until_true 30 test -z "$(claim_owners durable-data)" || no "back to Retain, the claim still has an owner" || return 1
    local uid
    uid=$(kubectl -n "$NS" get pvc durable-data -o jsonpath='{.metadata.uid}')
    kubectl -n "$NS" delete cstore durable --wait=true --timeout=60s || return 1
    kubectl -n "$NS" wait --for=delete deployment/durable configmap/durable-config --timeout=60s ||
        no "the store's other children outlived it" || return 1
    sleep 3 # the garbage collector had its chance
    [ "$(kubectl -n "$NS" get pvc durable-data -o jsonpath='{.metadata.uid}' 2>/dev/null)" = "$uid" ] ||
        no "the retained claim is gone" || return 1
    echo "claim durable-data ($uid) kept after the store was deleted"
    # Created again under the name, the store uses its claim, the same one.
    persistent_yaml durable Retain | kubectl -n "$NS" apply -f - || return 1
    until_true 60 cond_is "$NS" durable Degraded False ||
        no "the new store did not take its retained claim: $(cond "$NS" durable Degraded)" || return 1
    [ "$(kubectl -n "$NS" get pvc durable-data -o jsonpath='{.metadata.uid}')" = "$uid" ] || no "the claim was replaced"
}
check "persistence: deleting a store with Retain keeps its claim (after Delete and back), and the store created again uses it" retained_claim

deleted_claim() {
    persistent_yaml scratch Delete | kubectl -n "$NS" apply -f - || return 1
    until_true 60 test "$(claim_owners scratch-data)" = ConcurrentStore || no "the claim has no owner with Delete" || return 1
    kubectl -n "$NS" delete cstore scratch --wait=true --timeout=60s || return 1
    kubectl -n "$NS" wait --for=delete pvc/scratch-data --timeout=90s || no "the claim outlived its store with Delete"
}
check "persistence: deleting a store with Delete lets the garbage collector remove its claim" deleted_claim

# Leftovers removed, and the stand-in, which was told the persistent stores' rules, back to
# saving nothing.
{
    kubectl -n "$NS" delete cstore durable --wait=true --timeout=60s &&
        kubectl -n "$NS" delete pvc durable-data --wait=true --timeout=60s &&
        kubectl delete pv "$NS-durable-data" --wait=false &&
        [ "$(standin CONFIG SET save '')" = OK ]
} >/dev/null 2>&1 || echo "note: the persistence checks' leftovers could not all be removed" >&2

# --- traces --------------------------------------------------------------------------------
# Jaeger's query API (the HTTP API of its UI): traces of a service, as JSON.
traces() { curl -fsS "$JAEGER_API/traces?service=$1&limit=${3:-50}${2:+&operation=$2}"; }
# jaeger_has SERVICE OPERATION LIMIT CHECK.py [ARG...]: the traces pass the Python check (given
# the traces' file and ARGs), within 15 seconds (spans exported at a process's exit take a
# moment to be queryable, those of a running one up to the batch delay, 5 seconds).
jaeger_has() {
    local json=$WORK/traces.json out=$WORK/traces-check.out
    for _ in $(seq 1 30); do
        if traces "$1" "$2" "$3" >"$json" 2>"$out" && python3 "$4" "$json" "${@:5}" >"$out" 2>&1; then
            cat "$out"
            return 0
        fi
        sleep 0.5
    done
    cat "$out"
    return 1
}
reconcile_trace() {
    stop operator-a TERM # flushes its spans on the way out
    cat >"$WORK/reconcile.py" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["data"]
best = None
for trace in data:
    spans = {s["spanID"]: s for s in trace["spans"]}
    for root in (s for s in trace["spans"] if s["operationName"] == "reconcile"):
        children = [s["operationName"] for s in trace["spans"]
                    if any(r["refType"] == "CHILD_OF" and r["spanID"] == root["spanID"] for r in s.get("references", []))]
        if children and (best is None or len(children) > len(best[1])):
            best = (trace["traceID"], children)
print(f"{len(data)} reconcile traces")
if best is None:
    sys.exit("no reconcile span with child spans")
print(f"trace {best[0]}: reconcile -> {', '.join(sorted(set(best[1])))}")
if not any(" " in name for name in best[1]):
    sys.exit("no API-call child span (named '<verb> <kind>')")
PY
    jaeger_has cstore-operator-e2e reconcile 50 "$WORK/reconcile.py"
}
check "traces: Jaeger holds a reconcile trace with its API-call child spans" reconcile_trace

# The live reconfiguration above (to LockFree x 64) was sent with CLIENT TRACEPARENT: the
# stand-in store's CONFIG SET span is in the reconcile's trace, a child of the operator's
# `configure pod` span, and its `migration` span links to that CONFIG SET span.
reconfiguration_trace() {
    cat >"$WORK/reconfiguration.py" <<'PY'
import json, sys, urllib.request
data, api = json.load(open(sys.argv[1]))["data"], sys.argv[2]
tags = lambda s: {t["key"]: t["value"] for t in s.get("tags", [])}
migrations = [s for t in data for s in t["spans"] if s["operationName"] == "migration"
              and str(tags(s).get("cstore.to.strategy")) == "LockFree" and str(tags(s).get("cstore.to.shards")) == "64"]
print(f"{len(migrations)} migration spans of the stand-in store to LockFree x 64")
if not migrations:
    sys.exit("no migration span to LockFree x 64")
for migration in migrations:
    links = [r for r in migration.get("references", []) if r["refType"] == "FOLLOWS_FROM"]
    if not links:
        sys.exit(f"migration span {migration['spanID']} links to nothing")
    for link in links:
        trace = json.load(urllib.request.urlopen(f"{api}/traces/{link['traceID']}"))["data"][0]
        service = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
        spans = {s["spanID"]: s for s in trace["spans"]}
        config = spans.get(link["spanID"])
        if config is None or config["operationName"] != "CONFIG" or service[config["processID"]] != "cstore-e2e-standin":
            sys.exit(f"the migration's link {link} is not the stand-in's CONFIG span")
        parents = [spans.get(r["spanID"]) for r in config.get("references", []) if r["refType"] == "CHILD_OF"]
        if not parents or parents[0] is None or parents[0]["operationName"] != "configure pod":
            sys.exit(f"CONFIG span {config['spanID']} is not a child of the operator's configure pod span")
        reconciles = [s for s in trace["spans"] if s["operationName"] == "reconcile"
                      and service[s["processID"]] == "cstore-operator-e2e"]
        if not reconciles:
            sys.exit(f"trace {link['traceID']} has no reconcile span of the operator")
        print(f"trace {link['traceID']}: reconcile -> configure pod -> CONFIG (cstore-e2e-standin), "
              f"linked from migration {migration['spanID']} in trace {migration['traceID']}")
PY
    jaeger_has cstore-e2e-standin migration 50 "$WORK/reconfiguration.py" "$JAEGER_API"
}
check "traces: a live reconfiguration's CONFIG SET and migration spans carry the reconcile's trace" reconfiguration_trace

command_spans() {
    local port admin
    read -r port admin < <(free_ports 2)
    spawn serve env NO_COLOR=1 OTEL_SERVICE_NAME=cstore-e2e-store CSTORE_BIND=127.0.0.1 CSTORE_PORT="$port" \
        CSTORE_ADMIN_PORT="$admin" CSTORE_TRACE_SAMPLE_RATIO=1 "$CSTORE" serve
    until_true 30 curl -fsS "http://127.0.0.1:$admin/readyz" || no "cstore serve did not become ready" || return 1
    python3 - "$port" <<'PY' || return 1
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
def cmd(*args):
    s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
    return s.recv(4096)
for i in range(20):
    assert cmd("SET", f"k{i}", "v") == b"+OK\r\n"
    assert cmd("GET", f"k{i}") == b"$1\r\nv\r\n"
print("20 SET and 20 GET answered")
PY
    stop serve TERM # exports what is queued
    cat >"$WORK/commands.py" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["data"]
spans = [s for t in data for s in t["spans"]]
tags = lambda s: {t["key"]: t["value"] for t in s.get("tags", [])}
commands = [s for s in spans if tags(s).get("db.system.name") == "redis"]
print(f"{len(spans)} spans of cstore-e2e-store, {len(commands)} with db.system.name=redis")
if not commands:
    sys.exit("no command span with OpenTelemetry's database attributes")
ops = sorted({tags(s).get("db.operation.name") for s in commands})
print("db.operation.name:", ops, "example:", commands[0]["operationName"], tags(commands[0]))
if not {"SET", "GET"} <= {op.upper() for op in ops if op}:
    sys.exit("SET and GET spans missing")
PY
    jaeger_has cstore-e2e-store "" 200 "$WORK/commands.py"
}
check "traces: Jaeger holds sampled command spans of a local cstore serve with db.* attributes" command_spans

# --- namespaced mode ---------------------------------------------------------------------
namespaced_chart() {
    kubectl create namespace "$NS_A" >/dev/null 2>&1
    kubectl create namespace "$NS_B" >/dev/null 2>&1
    helm_install --set "watchNamespaces={$NS_A}" || return 1
    if kubectl get clusterrole "$RELEASE" >/dev/null 2>&1; then
        no "the ClusterRole $RELEASE still exists in namespaced mode"
        return 1
    fi
    kubectl -n "$NS_A" get role,rolebinding "$RELEASE"
}
check "chart: helm upgrade to namespaced mode (Roles in the watched namespace, no ClusterRole)" namespaced_chart

namespaced_operator() {
    local config
    config=$(sa_kubeconfig "$OPERATOR_NS" "$RELEASE") || return 1
    start_operator ns "$config" CSTORE_WATCH_NAMESPACES="$NS_A"
    until_true 60 holder_is e2e-ns || no "the namespaced operator never held the lease" || return 1
    store_yaml team-a 2 | kubectl -n "$NS_A" apply -f - || return 1
    store_yaml team-b | kubectl -n "$NS_B" apply -f - || return 1
    kubectl -n "$NS_A" wait --for=condition=Ready cstore/team-a --timeout=120s || no "the store in $NS_A did not become Ready" || return 1
    kubectl -n "$NS_A" get cstore,deployment,service,configmap,pdb
    sleep 2
    [ -z "$(kubectl -n "$NS_B" get cstore team-b -o jsonpath='{.status}')" ] || no "the store outside the watched namespaces was reconciled"
    [ -z "$(kubectl -n "$NS_B" get deployment -o name)" ] || no "a Deployment appeared outside the watched namespaces"
    if grep -niE 'forbidden' "$WORK/operator-ns.log"; then
        no "the namespaced operator's calls were refused by RBAC"
        return 1
    fi
}
check "operator: namespaced mode with the chart's Roles makes a store Ready, ignores other namespaces" namespaced_operator
stop operator-ns

# --- what the CRD accepts, the store must run ----------------------------------------------
# The CRD lets spec.tracing.endpoint be https://; the store is started with it as
# OTEL_EXPORTER_OTLP_ENDPOINT. Either the API server refuses https, or the store runs with it.
https_endpoint() {
    local accepted=false port admin
    if printf 'apiVersion: cstore.dev/v1alpha1\nkind: ConcurrentStore\nmetadata:\n  name: tls-tracing\nspec:\n  tracing:\n    endpoint: https://127.0.0.1:4317\n' |
        kubectl -n "$NS" create --dry-run=server -f - >/dev/null 2>&1; then
        accepted=true
    fi
    echo "the API server $($accepted && echo accepts || echo refuses) spec.tracing.endpoint https://..."
    $accepted || return 0
    read -r port admin < <(free_ports 2)
    spawn serve-https env NO_COLOR=1 OTEL_EXPORTER_OTLP_ENDPOINT=https://127.0.0.1:4317 CSTORE_BIND=127.0.0.1 \
        CSTORE_PORT="$port" CSTORE_ADMIN_PORT="$admin" "$CSTORE" serve
    # Ready, or exited (a refused setting ends it at once).
    up_or_gone() { curl -fsS "http://127.0.0.1:$admin/readyz" || ! kill -0 "${PIDS[serve-https]}" 2>/dev/null; }
    until_true 15 up_or_gone
    if curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; then
        stop serve-https
        echo "cstore serve runs with an https:// OTLP endpoint"
        return 0
    fi
    stop serve-https
    tail -n 3 "$WORK/serve-https.log"
    no "the CRD accepts an https:// tracing endpoint that cstore serve refuses (the pod would crash-loop)"
}
check "CRD and store agree: an https:// tracing endpoint is refused by both or runs" https_endpoint

# Endpoints keep routing to a terminating pod for a moment: the store must still accept new
# connections right after SIGTERM (or its pods must delay SIGTERM with a preStop hook).
sigterm_accepts() {
    local port admin
    read -r port admin < <(free_ports 2)
    spawn serve-term env NO_COLOR=1 CSTORE_BIND=127.0.0.1 CSTORE_PORT="$port" CSTORE_ADMIN_PORT="$admin" "$CSTORE" serve
    until_true 30 curl -fsS "http://127.0.0.1:$admin/readyz" || no "cstore serve did not become ready" || return 1
    kill -TERM "${PIDS[serve-term]}"
    sleep 0.3
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()' "$port" 2>/dev/null; then
        stop serve-term
        echo "a new connection 0.3s after SIGTERM was accepted"
        return 0
    fi
    stop serve-term
    local pre_stop
    pre_stop=$(kubectl -n "$NS_A" get deployment team-a -o jsonpath='{.spec.template.spec.containers[0].lifecycle.preStop}' 2>/dev/null)
    if [ -n "$pre_stop" ]; then
        echo "the listener closes at SIGTERM, but the pods have a preStop hook: $pre_stop"
        return 0
    fi
    no "0.3s after SIGTERM a new connection is refused, and the store's pods have no preStop delay"
}
check "store: new connections still accepted right after SIGTERM (or a preStop delay)" sigterm_accepts

# --- Argo CD health checks under gopher-lua -----------------------------------------------
gopher_lua() {
    GOFLAGS=-mod=readonly go build -C tests/cluster/luacheck -o "$WORK/luacheck" . || return 1
    "$WORK/luacheck" argocd/health | tail -n 1 && "$WORK/luacheck" -openlibs argocd/health | tail -n 1
}
check "Argo CD: every health_test.yaml case under gopher-lua (argocd-cm and open libraries)" gopher_lua
