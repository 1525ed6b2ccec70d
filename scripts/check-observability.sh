#!/usr/bin/env bash
# Checks the observability stack (manifests/observability), as CI runs it:
#   1. yamllint --strict on every YAML file of the stack (manifests and config files);
#   2. `kubectl kustomize` renders it, and every rendered object passes
#      `kubernetes-validate --strict` for the Kubernetes version the operator is built against;
#   3. the dashboards (dashboards/*.json) parse, every panel queries a provisioned datasource,
#      and the rendered objects agree with each other (collector -> Tempo, Grafana -> its
#      datasources and dashboards, the example store -> the collector);
#   4. every metric named by a dashboard query, a dashboard variable or a datasource link
#      exists: the store's names come from a live /metrics scrape of `cstore serve`, the
#      operator's from a live /metrics scrape of `cstore operator` (started against a fake API
#      server that never answers, so only its admin server works). A renamed metric fails here.
# Tools (installed by scripts/delivery-deps.sh): .tools/bin/kubectl, and .venv/bin/yamllint and
# .venv/bin/kubernetes-validate. The binary is $CSTORE_BIN, else target/debug/cstore (build it
# first; scripts/test.sh passes the one `cargo test` built). Under CI=true a missing tool or
# binary fails the check; elsewhere the step that needs it is skipped with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=1.36.0
STACK=manifests/observability
KUBECTL=.tools/bin/kubectl
YAMLLINT=.venv/bin/yamllint
KUBERNETES_VALIDATE=.venv/bin/kubernetes-validate
PYTHON=.venv/bin/python
CSTORE=${CSTORE_BIN:-target/debug/cstore}
# The repository has no yamllint config of its own: yamllint's defaults, with room for the
# comments' line length, and no `---` required at the top of a one-document file.
YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 120}, document-start: disable}}'

. scripts/lib.sh

have() { [ -x "$1" ] || missing "$1 is missing ($2)"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rendered=$work/rendered.yaml
linted=0
validated=0

step "yamllint --strict $STACK"
if have "$YAMLLINT" "scripts/delivery-deps.sh installs it"; then
    mapfile -t yaml_files < <(find "$STACK" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
    "$YAMLLINT" --strict -d "$YAMLLINT_CONFIG" "${yaml_files[@]}"
    linted=${#yaml_files[@]}
    echo "ok   $linted YAML files"
fi

step "kubectl kustomize $STACK"
if have "$KUBECTL" "scripts/delivery-deps.sh installs it"; then
    "$KUBECTL" kustomize "$STACK" >"$rendered"
    echo "ok   rendered $(grep -c '^kind:' "$rendered") objects"
else
    rendered=""
fi

if [ -n "$rendered" ]; then
    step "kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION)"
    if have "$KUBERNETES_VALIDATE" "scripts/delivery-deps.sh installs it"; then
        "$KUBERNETES_VALIDATE" --strict --quiet --kubernetes-version "$KUBERNETES_VERSION" "$rendered"
        validated=$(grep -c '^kind:' "$rendered")
        echo "ok   $validated rendered documents"
    fi
fi

step "dashboards, datasources and the metrics they name"
if ! have "$PYTHON" "scripts/delivery-deps.sh creates the venv"; then
    printf '\nchecked: %s YAML files linted, %s rendered documents validated; dashboards not checked\n' \
        "$linted" "$validated"
    exit 0
fi
scrape=1
if [ ! -x "$CSTORE" ]; then
    missing "$CSTORE is missing: build it (cargo build) or set CSTORE_BIN" || scrape=0
elif [ -n "$(find src -newer "$CSTORE" -name '*.rs' -print -quit)" ]; then
    printf 'warning: %s is older than src/: its metrics may not be the ones the sources define\n' "$CSTORE" >&2
fi

RENDERED=$rendered STACK=$STACK CSTORE=$CSTORE SCRAPE=$scrape WORK=$work LINTED=$linted VALIDATED=$validated \
    "$PYTHON" - <<'PY'
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

STACK = Path(os.environ["STACK"])
RENDERED = os.environ["RENDERED"]
CSTORE = os.environ["CSTORE"]
SCRAPE = os.environ["SCRAPE"] == "1"
WORK = Path(os.environ["WORK"])
errors = []


def error(message):
    errors.append(message)
    print(f"FAIL {message}")


# ---------------------------------------------------------------- PromQL metric names
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names an expression selects: identifiers that are not functions, keywords,
    label names (inside {...} or by/without/on/ignoring (...)) or Grafana variables."""
    names = set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))
    expr = re.sub(r"label_values\(\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{[^}]*\})?\s*,\s*\w+\s*\)", " ", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', " ", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


assert metric_names('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])))') == {"a_bucket"}
assert metric_names("sum(rate(a_total[5m])) / sum(rate(b_count[1m])) > 0") == {"a_total", "b_count"}
assert metric_names('label_values(m{namespace=~"$namespace"}, app_instance)') == {"m"}


# ---------------------------------------------------------------- dashboards
datasources = yaml.safe_load((STACK / "config/grafana-datasources.yaml").read_text())["datasources"]
datasource_uids = {d["uid"]: d for d in datasources}
for d in datasources:
    for destination in d.get("jsonData", {}).get("exemplarTraceIdDestinations", []):
        if destination.get("datasourceUid") not in datasource_uids:
            error(f"datasource {d['uid']}: exemplar destination {destination} names no datasource")
if datasource_uids.get("prometheus", {}).get("jsonData", {}).get("exemplarTraceIdDestinations", [{}])[0].get("name") != "trace_id":
    error("the Prometheus datasource must send exemplars' trace_id label to Tempo")

queries = []  # (where, expr)
panels_checked = 0
dashboard_files = sorted((STACK / "dashboards").glob("*.json"))
if len(dashboard_files) < 2:
    error(f"expected the store and operator dashboards in {STACK}/dashboards")
uids = set()
for path in dashboard_files:
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        error(f"{path}: not JSON: {e}")
        continue
    uid = dashboard.get("uid")
    if not uid or uid in uids:
        error(f"{path}: missing or duplicate uid {uid!r}")
    uids.add(uid)
    ids = set()
    exemplars = 0
    panels = list(dashboard.get("panels", []))
    for panel in list(panels):
        panels.extend(panel.get("panels", []))
    for panel in panels:
        where = f"{path.name}: panel {panel.get('title')!r}"
        if panel.get("id") in ids:
            error(f"{where}: duplicate panel id {panel.get('id')}")
        ids.add(panel.get("id"))
        if "gridPos" not in panel:
            error(f"{where}: no gridPos")
        if panel.get("type") == "row":
            continue
        panels_checked += 1
        targets = panel.get("targets") or []
        if not targets:
            error(f"{where}: no query")
        for t in targets:
            uid_ = (t.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid_ not in datasource_uids:
                error(f"{where}: datasource {uid_!r} is not provisioned")
            expr = t.get("expr", "")
            if not expr.strip():
                error(f"{where}: query {t.get('refId')} has no expr")
                continue
            exemplars += bool(t.get("exemplar"))
            queries.append((where, expr))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and query:
            queries.append((f"{path.name}: variable ${variable.get('name')}", query))
    if "operator" in path.name and exemplars == 0:
        error(f"{path.name}: the reconcile duration panel must query exemplars (trace links)")
for d in datasources:
    for q in d.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
        queries.append((f"datasource {d['uid']}: link {q.get('name')!r}", q["query"].replace("$$", "$")))
print(f"ok   {len(dashboard_files)} dashboards parse: {panels_checked} panels, {len(queries)} queries")


# ---------------------------------------------------------------- rendered objects agree
def service_port(objects, host_port):
    """Whether `host:port` (a cluster DNS name) is a port of a rendered Service."""
    host_port = re.sub(r"^\w+://", "", host_port).rstrip("/")
    host, _, port = host_port.rpartition(":")
    name, _, rest = host.partition(".")
    namespace = rest.split(".")[0] if rest else "observability"
    for o in objects:
        if o["kind"] == "Service" and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace:
            return any(str(p["port"]) == port for p in o["spec"]["ports"])
    return False


documents = 0
if RENDERED:
    objects = [o for o in yaml.safe_load_all(Path(RENDERED).read_text()) if o]
    documents = len(objects)
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    for o in objects:
        if o["kind"] == "ConfigMap":
            size = len(json.dumps(o))
            # kubectl apply (client-side) keeps the whole object in an annotation of 256 KiB.
            if size > 250_000:
                error(f"ConfigMap {o['metadata']['name']} is {size} bytes: too big for kubectl apply")

    def config_map(prefix, key):
        for name, o in by_kind.get("ConfigMap", {}).items():
            if name.startswith(prefix + "-") and key in o.get("data", {}):
                return yaml.safe_load(o["data"][key])
        error(f"no rendered ConfigMap {prefix}-<hash> with {key}")
        return {}

    collector = config_map("otel-collector-config", "config.yaml")
    pipeline = collector.get("service", {}).get("pipelines", {}).get("traces", {})
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline.get(kind, []):
            if component not in (collector.get(kind) or {}):
                error(f"collector: {kind[:-1]} {component} is in the traces pipeline but not configured")
    if pipeline.get("processors", [None])[0] != "memory_limiter":
        error("collector: memory_limiter must come first in the traces pipeline")
    for name in pipeline.get("exporters", []):
        endpoint = collector["exporters"][name]["endpoint"]
        if not service_port(objects, endpoint):
            error(f"collector: exporter {name} sends to {endpoint}, which is no rendered Service port")
    for d in datasources:
        if not service_port(objects, d["url"]):
            error(f"Grafana datasource {d['uid']}: {d['url']} is no rendered Service port")
    example = yaml.safe_load(Path("manifests/examples/with-tracing.yaml").read_text())
    if not service_port(objects, example["spec"]["tracing"]["endpoint"]):
        error(f"manifests/examples/with-tracing.yaml: {example['spec']['tracing']['endpoint']} is no collector port")

    prometheus = config_map("prometheus-config", "prometheus.yml")
    pods = [j for j in prometheus.get("scrape_configs", []) if j.get("kubernetes_sd_configs")]
    if not pods or not pods[0].get("scrape_protocols", [""])[0].startswith("OpenMetrics"):
        error("prometheus: the pod scrape job must negotiate OpenMetrics first (exemplars)")
    args = by_kind["Deployment"]["prometheus"]["spec"]["template"]["spec"]["containers"][0]["args"]
    if "--enable-feature=exemplar-storage" not in args:
        error("prometheus: --enable-feature=exemplar-storage is missing")

    grafana = by_kind["Deployment"]["grafana"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in grafana["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in grafana["containers"][0]["volumeMounts"]}
    provider = config_map("grafana-dashboard-provider", "cstore.yaml")
    for p in provider.get("providers", []):
        volume = mounts.get(p["options"]["path"], {})
        cm = by_kind["ConfigMap"].get(volume.get("configMap", {}).get("name", ""), {})
        missing = {f.name for f in dashboard_files} - set(cm.get("data", {}))
        if not cm or missing:
            error(f"Grafana: the provider path {p['options']['path']} does not hold the dashboards {sorted(missing)}")
    for mount, kind in (("/etc/grafana/provisioning/datasources", "grafana-datasources"),):
        if not mounts.get(mount, {}).get("configMap", {}).get("name", "").startswith(kind):
            error(f"Grafana: {mount} is not the {kind} ConfigMap")
    print(f"ok   {documents} rendered objects agree (collector, Tempo, Prometheus, Grafana, example store)")


# ---------------------------------------------------------------- live /metrics
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url, process, deadline=60.0):
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.headers.get("Content-Type", ""), response.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"{url} did not answer within {deadline:.0f} s")
            time.sleep(0.2)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sample_names(text, who, content_type):
    if "application/openmetrics-text" not in content_type:
        error(f"{who} /metrics: Content-Type {content_type!r} is not OpenMetrics (exemplars need it)")
    if not text.endswith("# EOF\n"):
        error(f"{who} /metrics: does not end with '# EOF' (OpenMetrics)")
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            for line in text.splitlines() if line and not line.startswith("#")}


def resp(*args):
    return b"".join([f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args])


def run_store(log):
    port, admin = free_port(), free_port()
    env = dict(os.environ, CSTORE_LOG_FORMAT="text",
               # Tracing on, towards a port where nothing listens: the exporter's metrics
               # must be there all the same.
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    # CopyOnWrite reports every store metric: lock waits (its writers take a lock) and the
    # published snapshot versions that only it has.
    process = subprocess.Popen(
        [CSTORE, "serve", "--bind", "127.0.0.1", "--port", str(port), "--admin-port", str(admin),
         "--strategy", "CopyOnWrite", "--shards", "4", "--trace-sample-ratio", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        scrape(f"http://127.0.0.1:{admin}/readyz", process)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for command in (resp("SET", "a", "b"), resp("GET", "a"), resp("SET", "t", "x", "PX", "1"),
                            resp("INCR", "a"), resp("DEL", "a")):
                s.sendall(command)
                s.recv(4096)
        return scrape(f"http://127.0.0.1:{admin}/metrics", process)
    finally:
        stop(process)


def run_operator(log):
    # An API server that accepts connections and never answers: the operator's admin server
    # (started before it talks to the API) serves /metrics while its first request waits.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    kubeconfig = WORK / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "silent",
        "clusters": [{"name": "silent", "cluster": {"server": f"http://127.0.0.1:{listener.getsockname()[1]}"}}],
        "users": [{"name": "silent", "user": {}}],
        "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "silent", "namespace": "default"}}],
    }))
    admin = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(kubeconfig), OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    process = subprocess.Popen(
        [CSTORE, "operator", "--store-image", "cstore:check", "--admin-bind", "127.0.0.1",
         "--admin-port", str(admin)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return scrape(f"http://127.0.0.1:{admin}/metrics", process)
    finally:
        stop(process)
        listener.close()
        for c in held:
            c.close()


if SCRAPE:
    inventories = {}
    for who, run in (("cstore serve", run_store), ("cstore operator", run_operator)):
        log_path = WORK / f"{who.replace(' ', '-')}.log"
        with open(log_path, "w") as log:
            try:
                content_type, text = run(log)
            except RuntimeError as e:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                error(f"{who}: {e}")
                continue
        inventories[who] = sample_names(text, who, content_type)
        print(f"ok   {who}: {len(inventories[who])} sample names scraped from /metrics")
    if len(inventories) == 2:
        known = inventories["cstore serve"] | inventories["cstore operator"]
        checked = set()
        before = len(errors)
        for where, expr in queries:
            names = metric_names(expr)
            if not names:
                error(f"{where}: names no metric: {expr}")
            for name in sorted(names):
                checked.add(name)
                if name not in known:
                    prefix = "cstore operator" if name.startswith("cstore_operator_") else "cstore serve"
                    error(f"{where}: {name} is not served by {prefix} (/metrics has no such sample)")
        if len(errors) == before:
            print(f"ok   {len(queries)} queries name {len(checked)} distinct metrics, all served")

print()
if errors:
    print(f"{len(errors)} problem(s) in {STACK}", file=sys.stderr)
    sys.exit(1)
print(f"checked: {os.environ['LINTED']} YAML files linted, {os.environ['VALIDATED']} rendered documents validated "
      f"(kubernetes-validate --strict), {len(dashboard_files)} dashboards, {panels_checked} panels, "
      f"{len(queries)} queries" + ("" if SCRAPE else " (metric names not checked: no binary)"))
PY
