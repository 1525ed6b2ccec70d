#!/usr/bin/env bash
# End-to-end test of the operator on a real cluster (kind or k3d, or any cluster kubectl
# reaches): installs the CRD and the operator with its Helm chart (2 replicas, leader
# election, the chart's least-privilege RBAC), applies a store,
# waits for Ready, SETs and GETs through a port-forward, changes the strategy and follows the
# rollout and the status, then deletes the store and checks its children go with it.
#
# Without a reachable cluster it prints that it was skipped and exits 0.
#
# The store image: CSTORE_IMAGE names one the cluster can pull. Unset, the script builds
# cstore:e2e from the Dockerfile with docker and loads it into the kind or k3d cluster of the
# current kubectl context.
#
# Environment: E2E_NAMESPACE (default cstore-e2e), E2E_TIMEOUT (default 180s).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${E2E_NAMESPACE:-cstore-e2e}
TIMEOUT=${E2E_TIMEOUT:-180s}
STORE=coarse
# The chart's objects are named after the release: cstore-operator.
RELEASE=cstore-operator
LOCAL_PORT=16379
CRD_NAME=concurrentstores.cstore.dev

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf 'error: %s\n' "$*" >&2
    kubectl -n "$NAMESPACE" get concurrentstores,deployments,pods,events 2>/dev/null | tail -40 >&2 || true
    kubectl -n "$NAMESPACE" logs deployment/cstore-operator --tail=60 2>/dev/null >&2 || true
    exit 1
}
skip() {
    printf 'SKIPPED: e2e-kind: %s\n' "$*"
    exit 0
}

# --- Is there a cluster? -----------------------------------------------------------------
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
    skip "no kubeconfig (KUBECONFIG unset and no ~/.kube/config)"
fi
kubectl cluster-info --request-timeout=5s >/dev/null 2>&1 || skip "the cluster of context '$(kubectl config current-context 2>/dev/null || echo none)' is not reachable"
# helm from scripts/delivery-deps.sh, else the one on PATH.
HELM=.tools/bin/helm
[ -x "$HELM" ] || HELM=$(command -v helm) || skip "helm is not installed (scripts/delivery-deps.sh installs it)"

# --- The image ---------------------------------------------------------------------------
if [ -z "${CSTORE_IMAGE:-}" ]; then
    CSTORE_IMAGE=cstore:e2e
    context=$(kubectl config current-context)
    [ -f Dockerfile ] || fail "no Dockerfile to build $CSTORE_IMAGE from: set CSTORE_IMAGE to an image the cluster can pull"
    command -v docker >/dev/null 2>&1 || fail "docker is needed to build $CSTORE_IMAGE: set CSTORE_IMAGE instead"
    step "building $CSTORE_IMAGE"
    docker build --quiet --tag "$CSTORE_IMAGE" .
    case "$context" in
        kind-*) kind load docker-image "$CSTORE_IMAGE" --name "${context#kind-}" ;;
        k3d-*) k3d image import "$CSTORE_IMAGE" --cluster "${context#k3d-}" ;;
        *) fail "context $context is neither kind nor k3d: push an image and set CSTORE_IMAGE" ;;
    esac
fi

crd_existed=false
kubectl get crd "$CRD_NAME" >/dev/null 2>&1 && crd_existed=true
port_forward=
cleanup() {
    if [ -n "$port_forward" ]; then kill "$port_forward" 2>/dev/null || true; fi
    "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --wait >/dev/null 2>&1 || true
    kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    if [ "$crd_existed" = false ]; then
        kubectl delete crd "$CRD_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# --- CRD and operator --------------------------------------------------------------------
step "installing the CRD"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established "crd/$CRD_NAME" --timeout=60s

step "installing the operator ($CSTORE_IMAGE, 2 replicas) in $NAMESPACE with the chart"
# The chart users install, with its least-privilege RBAC: a missing permission fails here.
# A tag is what follows the last colon, unless a slash follows it (a registry port).
image_repository=${CSTORE_IMAGE%:*}
image_tag=${CSTORE_IMAGE##*:}
if [ "$image_repository" = "$CSTORE_IMAGE" ] || [[ "$image_tag" == */* ]]; then
    image_repository=$CSTORE_IMAGE
    image_tag=latest
fi
"$HELM" upgrade --install "$RELEASE" charts/cstore-operator --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="$image_repository" --set image.tag="$image_tag" --set image.pullPolicy=IfNotPresent \
    --wait --timeout "$TIMEOUT" || fail "the operator chart did not install"
kubectl -n "$NAMESPACE" rollout status deployment/cstore-operator --timeout="$TIMEOUT" || fail "the operator did not start"
holder=$(kubectl -n "$NAMESPACE" get lease cstore-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
[ -n "$holder" ] || fail "no replica holds the cstore-operator lease"
echo "leader: $holder"

# --- A store -----------------------------------------------------------------------------
step "applying ConcurrentStore $STORE (Mutex, 1 shard) and waiting for Ready"
kubectl -n "$NAMESPACE" apply -f manifests/examples/mutex.yaml
kubectl -n "$NAMESPACE" wait --for=condition=Ready "concurrentstore/$STORE" --timeout="$TIMEOUT" || fail "the store did not become Ready"
kubectl -n "$NAMESPACE" get concurrentstore "$STORE"

# Sends one inline command to the forwarded store and prints the reply's first line.
redis() {
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -p "$LOCAL_PORT" "$@"
    else
        exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_PORT"
        printf '%s\r\n' "$*" >&3
        local reply
        IFS= read -r reply <&3
        if [[ "$reply" == \$* ]]; then IFS= read -r reply <&3; fi
        exec 3>&-
        printf '%s\n' "${reply%$'\r'}" | sed 's/^+//'
    fi
}

# Forwards $LOCAL_PORT to the store's Service until stop_forwarding.
forward_to_store() {
    kubectl -n "$NAMESPACE" port-forward "service/$STORE" "$LOCAL_PORT:6379" >/dev/null 2>&1 &
    port_forward=$!
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_PORT") 2>/dev/null && break
        sleep 0.2
    done
}
stop_forwarding() {
    kill "$port_forward" 2>/dev/null || true
    port_forward=
}

step "SET and GET through a port-forward"
forward_to_store
[ "$(redis SET e2e-key e2e-value)" = OK ] || fail "SET did not answer OK"
[ "$(redis GET e2e-key)" = e2e-value ] || fail "GET did not return the value just set"
echo "SET/GET ok"
stop_forwarding

# --- A live strategy change ---------------------------------------------------------------
step "changing the strategy to LockFree with 16 shards, live"
hash_path='{.spec.template.metadata.annotations.cstore\.dev/restart-config-hash}'
old_hash=$(kubectl -n "$NAMESPACE" get deployment "$STORE" -o jsonpath="$hash_path")
old_pods=$(kubectl -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$STORE" -o name | sort)
kubectl -n "$NAMESPACE" patch concurrentstore "$STORE" --type merge -p '{"spec":{"strategy":"LockFree","shards":16}}'
kubectl -n "$NAMESPACE" get concurrentstore "$STORE" --watch --output-watch-events &
watcher=$!
kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.strategy}'=LockFree "concurrentstore/$STORE" --timeout="$TIMEOUT" \
    || fail "the status never reported LockFree"
kubectl -n "$NAMESPACE" wait --for=condition=Ready "concurrentstore/$STORE" --timeout="$TIMEOUT"
kill "$watcher" 2>/dev/null || true
new_hash=$(kubectl -n "$NAMESPACE" get deployment "$STORE" -o jsonpath="$hash_path")
[ "$old_hash" = "$new_hash" ] || fail "a live change altered the pod template"
new_pods=$(kubectl -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$STORE" -o name | sort)
[ "$old_pods" = "$new_pods" ] || fail "a live change replaced the pods: $old_pods -> $new_pods"
[ "$(kubectl -n "$NAMESPACE" get concurrentstore "$STORE" -o jsonpath='{.status.shards}')" = 16 ] || fail "status.shards is not 16"
kubectl -n "$NAMESPACE" get concurrentstore "$STORE" -o jsonpath='{.status.pods}'; echo
forward_to_store
[ "$(redis GET e2e-key)" = e2e-value ] || fail "the key written before the live change is gone"
stop_forwarding
echo "live change kept the pods and the data"

# --- Deletion ----------------------------------------------------------------------------
step "deleting the store; its children must go"
kubectl -n "$NAMESPACE" delete concurrentstore "$STORE" --wait=true --timeout="$TIMEOUT"
kubectl -n "$NAMESPACE" wait --for=delete "deployment/$STORE" "service/$STORE" "configmap/$STORE-config" --timeout=120s \
    || fail "the store's children outlived it"

printf '\ne2e-kind: passed\n'
