#!/usr/bin/env bash
# Starts a real, local Kubernetes control plane for the cluster tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and KWOK for fake nodes (built by
# scripts/cluster-build.sh, which this runs first: a warm build takes seconds). Every process
# listens on 127.0.0.1 only, on free ports picked at start. Then it checks that the cluster
# works: /readyz, a ServiceAccount token through the TokenRequest API, and a one-replica
# Deployment that becomes Available (its pod scheduled onto a KWOK node and marked Running and
# Ready by KWOK) and is then deleted through the garbage collector.
#
#   scripts/cluster-up.sh           # prints the kubeconfig path; stop with scripts/cluster-down.sh
#
# Environment:
#   CLUSTER_RUN    state dir: certificates, etcd data, logs, pid files, kubeconfig
#                  (default .tools/cluster/run)
#   CLUSTER_TOOLS  where cluster-build.sh put bin/ (default .tools/cluster)
#   CLUSTER_SKIP_BUILD=1  use the binaries as they are, without running cluster-build.sh
#   KUBECTL        kubectl to use (default .tools/bin/kubectl from scripts/delivery-deps.sh,
#                  else kubectl on PATH)
#
# Already running (the same state dir)? It checks /readyz and reuses the cluster. Half running
# (some processes gone)? It refuses: run scripts/cluster-down.sh first.
#
# KWOK pods have no containers: nothing in them runs, and nothing listens on their addresses.
# Fake nodes report 127.0.0.1 (the apiserver's only way to a "kubelet"). Pod and Service IPs
# must be outside loopback (Endpoints and EndpointSlices reject 127.0.0.0/8), so they come from
# the documentation ranges of RFC 5737, which no real network uses: an address from them in a
# log is plainly fake. Never dial one: no route leads to a pod here, and packets to such
# addresses would leave this machine. Tests reach cstore as local processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

START=$(date +%s.%N)
elapsed() { awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

TOOLS=${CLUSTER_TOOLS:-.tools/cluster}
RUN=${CLUSTER_RUN:-$TOOLS/run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd) # components get absolute paths: they may resolve them from elsewhere
BIN=$(cd "$TOOLS" && pwd)/bin
STAGES=$(cd "$TOOLS" && pwd)/kwok-stages.yaml
PKI=$RUN/pki
LOGS=$RUN/logs
KUBECONFIG_PATH=$RUN/kubeconfig
# Marks a state dir as ours: cluster-up and cluster-down delete only a dir that holds it.
MARKER=$RUN/.cstore-test-cluster
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
SERVICE_CIDR=203.0.113.0/24 # TEST-NET-3
SERVICE_IP=203.0.113.1      # the first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR=198.51.100.0/24    # TEST-NET-2; KWOK hands out and recycles addresses from it
SA_ISSUER=https://kubernetes.default.svc.cluster.local

KUBECTL=${KUBECTL:-}
if [ -z "$KUBECTL" ]; then
    if [ -x .tools/bin/kubectl ]; then
        KUBECTL=.tools/bin/kubectl
    else
        KUBECTL=$(command -v kubectl || true)
    fi
fi
[ -n "$KUBECTL" ] || { missing "kubectl is not installed (scripts/delivery-deps.sh installs it)" || exit 0; }
command -v openssl >/dev/null 2>&1 || { missing "openssl is not installed (apt-get install openssl)" || exit 0; }
command -v curl >/dev/null 2>&1 || { missing "curl is not installed (apt-get install curl)" || exit 0; }
command -v python3 >/dev/null 2>&1 || { missing "python3 is not installed (apt-get install python3)" || exit 0; }
kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# Whether the process in RUN/NAME.pid runs, and is still ours: its command line names the state
# dir (a pid can be reused; a zombie's command line is empty).
alive() {
    local cmdline
    [ -f "$RUN/$1.pid" ] || return 1
    cmdline=/proc/$(cat "$RUN/$1.pid")/cmdline
    [ -r "$cmdline" ] && tr '\0' ' ' <"$cmdline" | grep -qF -- "$RUN/"
}

print_usage() {
    echo "kubeconfig: $KUBECONFIG_PATH"
    echo "  export KUBECONFIG=$KUBECONFIG_PATH"
    echo "stop with:  scripts/cluster-down.sh$([ -n "${CLUSTER_RUN:-}" ] && echo " (CLUSTER_RUN=$RUN)")"
}

# --- already running? -------------------------------------------------------------------
running=()
for c in "${COMPONENTS[@]}"; do alive "$c" && running+=("$c"); done
if [ "${#running[@]}" -eq "${#COMPONENTS[@]}" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    step "the cluster in $RUN is already running: reusing it"
    print_usage
    exit 0
fi
if [ "${#running[@]}" -gt 0 ]; then
    fail "a cluster in $RUN is partly running (${running[*]}): stop it with scripts/cluster-down.sh first"
fi
if [ -n "$(ls -A "$RUN")" ]; then
    [ -f "$MARKER" ] || fail "$RUN is not empty and is not a test cluster's state dir: choose another CLUSTER_RUN"
    # Left over from a cluster that died or was kept: nothing in it is worth reusing.
    rm -rf "$RUN"
    mkdir -p "$RUN"
fi
mkdir -p "$PKI" "$LOGS"
touch "$MARKER"

# --- binaries ---------------------------------------------------------------------------
if [ "${CLUSTER_SKIP_BUILD:-0}" != 1 ]; then
    scripts/cluster-build.sh >"$LOGS/build.log" 2>&1 || { cat "$LOGS/build.log" >&2; fail "scripts/cluster-build.sh failed"; }
fi
for c in "${COMPONENTS[@]}"; do
    [ -x "$BIN/$c" ] || fail "$BIN/$c is missing: run scripts/cluster-build.sh"
done
[ -f "$STAGES" ] || fail "$STAGES is missing: run scripts/cluster-build.sh"
BUILT=$(elapsed)

# On any failure from here on: show the logs' tails, stop what started, keep the state dir.
on_exit() {
    local rc=$?
    [ "$rc" -eq 0 ] && return
    for c in "${COMPONENTS[@]}"; do
        [ -f "$LOGS/$c.log" ] || continue
        printf '\n--- last lines of %s ---\n' "$LOGS/$c.log" >&2
        tail -n 15 "$LOGS/$c.log" >&2
    done
    echo "cluster-up failed: stopping what it started; logs stay in $LOGS" >&2
    CLUSTER_RUN=$RUN scripts/cluster-down.sh --keep >&2 || true
}
trap on_exit EXIT

# --- ports ------------------------------------------------------------------------------
# Free ports that the kernel hands out, so that clusters in other state dirs (and whatever
# else runs on this machine) never collide. All are taken at once, then released: a port is
# reused only if someone grabs it in the second before a component binds it.
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
[ -n "${KWOK_PORT:-}" ] || fail "could not pick free ports on 127.0.0.1"
printf '%s\n' "etcd=$ETCD_PORT etcd-peer=$ETCD_PEER_PORT kube-apiserver=$API_PORT" \
    "kube-controller-manager=$KCM_PORT kube-scheduler=$SCHED_PORT kwok=$KWOK_PORT" >"$RUN/ports"

# --- certificates -----------------------------------------------------------------------
step "certificates and keys in $PKI"
# ECDSA P-256 keys: generated instantly, and accepted everywhere here (TLS, client
# certificates, the CSR signer, and ES256 ServiceAccount tokens).
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" 2>/dev/null; }

newkey ca
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=cstore-test-cluster-ca" -days 365 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null

# cert NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES [CA]]: a key and a certificate
# signed by the CA (default: the cluster's).
cert() {
    local name=$1 subject=$2 eku=$3 san=${4:-} ca=${5:-ca}
    newkey "$name"
    openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [ -n "$san" ] && echo "subjectAltName=$san"
    } >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
        -days 365 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
# One serving certificate for every server here: they all listen on 127.0.0.1, and the
# apiserver's also has to match the names that in-cluster clients use.
cert serving "/CN=cstore-test-cluster" serverAuth,clientAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP"
cert etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
cert admin "/O=system:masters/CN=cstore-test-admin" clientAuth
# The identities that the default RBAC roles (system:kube-controller-manager, ...) are bound to.
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
# The front proxy: the apiserver proves who a request is from when it forwards it to an
# aggregated API server, and every server that delegates authentication (the controller
# manager and scheduler too) reads this CA from the extension-apiserver-authentication
# ConfigMap. A CA of its own, as kubeadm does: these client certificates assert any user.
newkey front-proxy-ca
openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=cstore-test-front-proxy-ca" -days 365 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
cert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
# KWOK plays every kubelet and writes node and pod status for all of them: no built-in role fits.
cert kwok "/O=system:masters/CN=kwok-controller" clientAuth
# The ServiceAccount token signing key pair.
newkey sa
openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI"/*.key

# kubeconfig FILE CERT_NAME: a kubeconfig with the certificates embedded, so that it can be
# copied elsewhere (for example into a test's own temp dir) and still work.
kubeconfig() {
    local file=$1 name=$2
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cstore-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: cstore-test
  context:
    cluster: cstore-test
    user: $name
current-context: cstore-test
EOF
    chmod 600 "$file"
}
kubeconfig "$KUBECONFIG_PATH" admin
kubeconfig "$RUN/controller-manager.kubeconfig" controller-manager
kubeconfig "$RUN/scheduler.kubeconfig" scheduler
kubeconfig "$RUN/kwok.kubeconfig" kwok

# --- processes --------------------------------------------------------------------------
# start NAME ARGS...: runs BIN/NAME in the background, its own session (a Ctrl-C in this
# shell does not reach it), output to logs/NAME.log, pid in NAME.pid.
start() {
    local name=$1
    shift
    setsid "$BIN/$name" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds, or fails the run.
wait_for() {
    local what=$1 deadline=$(($(date +%s) + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $what"
        for c in "${COMPONENTS[@]}"; do
            # Our own children: bash reaps them, so kill -0 fails once one has exited.
            if [ -f "$RUN/$c.pid" ] && ! kill -0 "$(cat "$RUN/$c.pid")" 2>/dev/null; then
                fail "$c exited (see $LOGS/$c.log)"
            fi
        done
        sleep 0.2
    done
}

# https_ok URL: a GET that the CA's certificate verifies, as the admin.
https_ok() {
    curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$1"
}

step "starting etcd on 127.0.0.1:$ETCD_PORT"
# TLS with client certificates on both ports: the data is every Secret of the cluster.
# No fsync: a test cluster is thrown away, and fsync on a busy shared disk is what makes etcd slow.
start etcd \
    --name=cstore-test --data-dir="$RUN/etcd" \
    --listen-client-urls="https://127.0.0.1:$ETCD_PORT" --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="cstore-test=https://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --cert-file="$PKI/serving.crt" --key-file="$PKI/serving.key" \
    --trusted-ca-file="$PKI/ca.crt" --client-cert-auth \
    --peer-cert-file="$PKI/serving.crt" --peer-key-file="$PKI/serving.key" \
    --peer-trusted-ca-file="$PKI/ca.crt" --peer-client-cert-auth \
    --unsafe-no-fsync
etcd_healthy() {
    curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/etcd-client.crt" --key "$PKI/etcd-client.key" \
        "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}
wait_for "etcd to be healthy" 30 etcd_healthy

step "starting kube-apiserver on https://127.0.0.1:$API_PORT"
# The default admission plugins stay on (no --enable/--disable-admission-plugins).
# No endpoint reconciler: it would publish the advertised 127.0.0.1 as the `kubernetes`
# Service's endpoint, which validation rejects (loopback), and retry every 10 seconds. The
# Service exists, without endpoints; clients here use the kubeconfig's address.
start kube-apiserver \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" \
    --etcd-cafile="$PKI/ca.crt" --etcd-certfile="$PKI/etcd-client.crt" --etcd-keyfile="$PKI/etcd-client.key" \
    --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true \
    --profiling=false
wait_for "kube-apiserver /readyz" 120 https_ok "https://127.0.0.1:$API_PORT/readyz"
echo "kube-apiserver ready after $(elapsed)s"

step "starting kube-controller-manager, kube-scheduler and kwok"
# All default controllers (garbage collector, deployment, replicaset, namespace,
# resourcequota, serviceaccount, serviceaccount-token, root-ca-cert-publisher, ...), each with
# its own ServiceAccount's token as in a kubeadm cluster. One instance: no leader election.
start kube-controller-manager \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --client-ca-file="$PKI/ca.crt" \
    --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --cluster-name=cstore-test \
    --leader-elect=false \
    --profiling=false
start kube-scheduler \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
    --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key" \
    --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --client-ca-file="$PKI/ca.crt" \
    --leader-elect=false \
    --profiling=false
# KWOK manages only the nodes annotated as fake (a real node joining by mistake stays
# untouched). It renews each node's Lease as a kubelet does (its own default is no leases;
# kwokctl passes 40 s too): the node lifecycle controller then keeps the nodes Ready, and the
# heartbeat stage only needs to rewrite node status every 10 minutes. --server-address keeps
# its health endpoint on loopback: without it and with a --node-port it would listen on
# 0.0.0.0.
start kwok \
    --kubeconfig="$RUN/kwok.kubeconfig" \
    --config="$STAGES" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --node-ip=127.0.0.1 \
    --cidr="$POD_CIDR" \
    --server-address="127.0.0.1:$KWOK_PORT"
wait_for "kube-controller-manager /healthz" 60 https_ok "https://127.0.0.1:$KCM_PORT/healthz"
wait_for "kube-scheduler /readyz" 60 https_ok "https://127.0.0.1:$SCHED_PORT/readyz"
wait_for "kwok /healthz" 60 curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"

# Nothing may listen beyond loopback: check every socket that our processes opened.
pids=()
for c in "${COMPONENTS[@]}"; do pids+=("$(cat "$RUN/$c.pid")"); done
if command -v ss >/dev/null 2>&1; then
    pid_re=$(IFS='|'; echo "${pids[*]}")
    bad=$(ss -Hltnup | grep -E "pid=($pid_re)," | awk '{print $5}' | grep -vE '^127\.0\.0\.1:' || true)
    [ -z "$bad" ] || fail "a component listens beyond 127.0.0.1: $bad"
fi

step "fake nodes"
# Two nodes, so that anti-affinity and spreading have somewhere to go. Their status is set at
# creation (KWOK keeps what is there): the capacity the scheduler counts against.
for i in 0 1; do
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  addresses:
  - type: InternalIP
    address: 127.0.0.1
  - type: Hostname
    address: kwok-node-$i
  allocatable: {cpu: "16", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "16", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi}
---
EOF
done | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Ready node/kwok-node-0 node/kwok-node-1 --timeout=60s

step "checks"
kubectl get --raw /readyz
echo
# The ServiceAccount admission plugin rejects pods until the namespace's `default`
# ServiceAccount exists; the serviceaccount controller creates it shortly after start.
wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default
token=$(kubectl -n default create token default --duration=10m)
[ -n "$token" ] || fail "kubectl create token returned nothing"
echo "TokenRequest: a ServiceAccount token of ${#token} bytes"
kubectl -n default create deployment cluster-smoke --image=registry.k8s.io/pause:3.10 --replicas=1 >/dev/null
kubectl -n default wait --for=condition=Available deployment/cluster-smoke --timeout=120s
kubectl -n default get pods -l app=cluster-smoke -o wide
# Foreground deletion: the garbage collector deletes the ReplicaSet and its pod first.
kubectl -n default delete deployment cluster-smoke --cascade=foreground --wait --timeout=60s
no_smoke_pods() { [ -z "$(kubectl -n default get pods -l app=cluster-smoke -o name)" ]; }
wait_for "the smoke test's pods to be gone" 60 no_smoke_pods

trap - EXIT
step "cluster up in $(elapsed)s (binaries ready after ${BUILT}s); state dir $RUN"
"$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" version 2>/dev/null || true
print_usage
