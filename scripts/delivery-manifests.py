#!/usr/bin/env python3
"""Helpers of scripts/check-delivery.sh for rendered manifests and Argo CD Applications.

    delivery-manifests.py split RENDERED OUTDIR
        Splits a multi-document YAML file (helm template output, an install directory's
        files concatenated) into OUTDIR/builtin.yaml (for kubernetes-validate) and
        OUTDIR/servicemonitors.json (for scripts/validate-servicemonitors.mjs), and checks
        the policy the chart promises: RBAC without wildcards, every namespaced object with
        a namespace, operator pods with the restricted security context and both probes.
        Prints 'N documents: X built-in, Y ServiceMonitor, Z CustomResourceDefinition'.

    delivery-manifests.py operator-env RENDERED CSTORE_BIN
        Starts CSTORE_BIN with the args and environment of the operator container of every
        Deployment in RENDERED (downward-API values filled in, $(VAR) references expanded as
        the kubelet does, the admin port moved to 0), without any cluster: it must get past
        its flag and environment parsing to the point where it looks for a Kubernetes client.

    delivery-manifests.py project-fit PROJECT_FILE APP_DIR RENDERED...
        Checks that the AppProject in PROJECT_FILE lets the Applications deploy what they
        render: every Application (PROJECT_FILE's directory and APP_DIR) uses it and has a
        permitted destination; every cluster-scoped object in RENDERED is of a whitelisted
        kind; every object with a namespace goes to a permitted namespace.

    delivery-manifests.py app-paths REPO_ROOT APP_FILE...
        Checks that every Argo CD Application's source path exists in this repository and
        holds what Argo CD will render there (a Chart.yaml, a kustomization.yaml, or YAML).
"""
import json
import os
import sys

import yaml

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
REPO_URL = "https://github.com/cstore-dev/cstore.git"


def load(path):
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def check_rbac(doc, problems):
    for i, rule in enumerate(doc.get("rules") or []):
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            if "*" in (rule.get(field) or []):
                problems.append(f"{doc['kind']}/{doc['metadata']['name']} rule {i}: wildcard in {field}")


def check_pod(doc, problems):
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    pod = doc["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: pod seccompProfile is not RuntimeDefault")
    for c in pod.get("containers") or []:
        sc = c.get("securityContext") or {}
        where = f"{name} container {c.get('name')}"
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities do not drop ALL")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if ((c.get(probe) or {}).get("httpGet") or {}).get("path") != path:
                problems.append(f"{where}: {probe} is not an HTTP GET of {path}")
        if not (c.get("resources") or {}).get("requests"):
            problems.append(f"{where}: no resource requests")


def split(rendered, outdir):
    docs = load(rendered)
    builtin, monitors, crds, problems = [], [], 0, []
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if kind not in CLUSTER_SCOPED and kind != "ServiceMonitor" and not meta.get("namespace"):
            problems.append(f"{kind}/{meta.get('name')}: no metadata.namespace")
        if kind in ("ClusterRole", "Role"):
            check_rbac(doc, problems)
        if kind == "Deployment":
            check_pod(doc, problems)
        if kind == "ServiceMonitor":
            monitors.append(doc)
        else:
            builtin.append(doc)
            crds += kind == "CustomResourceDefinition"
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "builtin.yaml"), "w", encoding="utf-8") as fh:
        yaml.safe_dump_all(builtin, fh, sort_keys=False)
    with open(os.path.join(outdir, "servicemonitors.json"), "w", encoding="utf-8") as fh:
        json.dump(monitors, fh)
    for problem in problems:
        print(f"FAIL {rendered}: {problem}")
    print(f"{len(docs)} documents: {len(builtin)} built-in, {len(monitors)} ServiceMonitor, {crds} CustomResourceDefinition")
    return 1 if problems or not docs else 0


def app_paths(root, files):
    problems, checked = [], 0
    for path in files:
        for doc in load(path):
            if doc.get("kind") != "Application":
                continue
            spec = doc["spec"]
            for source in spec.get("sources") or [spec.get("source")]:
                name = f"{path}: Application/{doc['metadata']['name']}"
                if source.get("repoURL") != REPO_URL:
                    problems.append(f"{name}: repoURL is not {REPO_URL}")
                    continue
                target = os.path.join(root, source.get("path", ""))
                if "chart" in source:
                    problems.append(f"{name}: a chart from a Helm repository, not this repository")
                elif not os.path.isdir(target):
                    problems.append(f"{name}: path {source.get('path')} does not exist")
                elif "helm" in source and not os.path.isfile(os.path.join(target, "Chart.yaml")):
                    problems.append(f"{name}: helm source without {source['path']}/Chart.yaml")
                elif not any(f.endswith((".yaml", ".yml")) for f in os.listdir(target)):
                    problems.append(f"{name}: {source['path']} holds no YAML")
                else:
                    checked += 1
                    kind = ("Helm chart" if os.path.isfile(os.path.join(target, "Chart.yaml"))
                            else "kustomization" if os.path.isfile(os.path.join(target, "kustomization.yaml"))
                            else "directory")
                    print(f"ok   {name} -> {source['path']} ({kind})")
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{checked} passed, {len(problems)} failed")
    return 1 if problems else 0


def expand(value, env):
    """$(VAR) expansion of container env values, as the kubelet does for defined variables."""
    import re
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def operator_env(rendered, binary):
    import subprocess
    import tempfile
    field_values = {"metadata.name": "cstore-operator-0", "metadata.namespace": "cstore-system"}
    problems, checked = [], 0
    for doc in load(rendered):
        if doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = {}
            for var in container.get("env") or []:
                if "value" in var:
                    env[var["name"]] = expand(str(var["value"]), env)
                else:
                    env[var["name"]] = field_values[var["valueFrom"]["fieldRef"]["fieldPath"]]
            name = f"{doc['metadata']['name']}/{container['name']}"
            with tempfile.TemporaryDirectory() as home:
                run_env = dict(env, PATH="/usr/bin:/bin", HOME=home, KUBECONFIG=os.path.join(home, "none"),
                               CSTORE_OPERATOR_ADMIN_PORT="0")
                try:
                    result = subprocess.run([binary] + (container.get("args") or []), env=run_env,
                                            capture_output=True, text=True, timeout=30)
                    output = result.stdout + result.stderr
                except subprocess.TimeoutExpired:
                    output = "<timed out>"
            if "cannot configure the Kubernetes client" in output:
                checked += 1
                print(f"ok   {name}: {len(env)} environment variables and args {container.get('args')} accepted")
            else:
                problems.append(f"{name}: the operator did not start as far as the Kubernetes client:\n{output.strip()}")
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{checked} passed, {len(problems)} failed")
    return 1 if problems or not checked else 0


# Cluster-scoped kinds any of our sources could hold; a namespaced kind without a namespace
# gets its Application's destination namespace.
CLUSTER_SCOPED_KINDS = CLUSTER_SCOPED | {
    "PriorityClass", "StorageClass", "PersistentVolume", "APIService", "IngressClass", "RuntimeClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "CSIDriver", "VolumeSnapshotClass",
}


def project_fit(project_file, app_dir, rendered):
    project = next(d for d in load(project_file) if d.get("kind") == "AppProject")
    name = project["metadata"]["name"]
    spec = project["spec"]
    whitelist = {(w.get("group", ""), w["kind"]) for w in spec.get("clusterResourceWhitelist") or []}
    destinations = {(d.get("server"), d.get("namespace")) for d in spec.get("destinations") or []}
    namespaces = {ns for _, ns in destinations}
    problems, checked = [], 0
    app_files = [os.path.join(os.path.dirname(project_file), f) for f in os.listdir(os.path.dirname(project_file))]
    app_files += [os.path.join(app_dir, f) for f in os.listdir(app_dir)]
    for path in sorted(f for f in app_files if f.endswith(".yaml") and os.path.isfile(f)):
        for doc in load(path):
            if doc.get("kind") != "Application":
                continue
            app = f"Application/{doc['metadata']['name']}"
            dest = doc["spec"]["destination"]
            checked += 1
            if doc["spec"].get("project") != name:
                problems.append(f"{path}: {app} is not in project {name}")
            if (dest.get("server"), dest.get("namespace")) not in destinations:
                problems.append(f"{path}: {app} deploys to {dest} which project {name} does not permit")
    for path in rendered:
        for doc in load(path):
            kind = doc.get("kind")
            group = doc.get("apiVersion", "").rpartition("/")[0]
            meta = doc.get("metadata") or {}
            what = f"{path}: {kind}/{meta.get('name')}"
            checked += 1
            if kind in CLUSTER_SCOPED_KINDS:
                if (group, kind) not in whitelist:
                    problems.append(f"{what}: cluster-scoped {group or 'core'}/{kind} is not in the clusterResourceWhitelist")
            elif meta.get("namespace") and meta["namespace"] not in namespaces:
                problems.append(f"{what}: namespace {meta['namespace']} is not a destination of project {name}")
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{checked} objects and Applications fit project {name}; {len(problems)} problems")
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "project-fit":
        return project_fit(argv[2], argv[3], argv[4:])
    if len(argv) == 4 and argv[1] == "operator-env":
        return operator_env(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "split":
        return split(argv[2], argv[3])
    if len(argv) >= 4 and argv[1] == "app-paths":
        return app_paths(argv[2], argv[3:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
