#!/usr/bin/env python3
"""Keeps argocd/argocd-cm-health-patch.yaml equal to the health checks under argocd/health.

    argocd-cm-health.py render HEALTH_DIR          print the argocd-cm patch
    argocd-cm-health.py check HEALTH_DIR PATCH     exit 1 unless PATCH installs exactly them

Every HEALTH_DIR/<group>/<Kind>/health.lua becomes the argocd-cm key
resource.customizations.health.<group>_<Kind> (Argo CD's key for a custom health check).
`check` parses PATCH as YAML and compares each key's script with its health.lua byte for
byte, refuses keys without a health.lua, and also compares the whole file with `render`.
"""
import os
import sys

import yaml

KEY_PREFIX = "resource.customizations.health."

HEADER = """\
# Installs cstore's Argo CD health checks into argocd-cm. Generated from argocd/health/ by
# `scripts/check-delivery.sh --update`; CI fails when it differs from the health.lua files.
#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd/argocd-cm-health-patch.yaml
# (Argo CD picks the change up without a restart.) With Argo CD installed by its Helm chart,
# put the same keys under configs.cm instead.
#   cstore.dev_ConcurrentStore: Healthy when Ready=True at the current generation.
#   argoproj.io_Application: lets the app-of-apps wait for each wave's Applications.
"""


def scripts(health_dir):
    found = {}
    for group in sorted(os.listdir(health_dir)):
        group_dir = os.path.join(health_dir, group)
        if not os.path.isdir(group_dir):
            continue
        for kind in sorted(os.listdir(group_dir)):
            path = os.path.join(group_dir, kind, "health.lua")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as fh:
                    found[f"{KEY_PREFIX}{group}_{kind}"] = (path, fh.read())
    return found


def render(health_dir):
    lines = [HEADER.rstrip("\n"), "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: argocd-cm",
             "  namespace: argocd", "  labels:", "    app.kubernetes.io/name: argocd-cm",
             "    app.kubernetes.io/part-of: argocd", "data:"]
    for key, (path, script) in scripts(health_dir).items():
        if not script.endswith("\n") or script.endswith("\n\n"):
            raise SystemExit(f"{path}: must end with exactly one newline (a YAML literal block keeps one)")
        if any(line != line.rstrip() for line in script.splitlines()):
            raise SystemExit(f"{path}: trailing whitespace cannot round-trip through a YAML literal block")
        lines.append(f"  {key}: |")
        lines.extend(("    " + line) if line else "" for line in script.splitlines())
    return "\n".join(lines) + "\n"


def check(health_dir, patch_path):
    expected = scripts(health_dir)
    with open(patch_path, encoding="utf-8") as fh:
        text = fh.read()
    data = (yaml.safe_load(text) or {}).get("data") or {}
    problems = []
    checked = 0
    for key, (path, script) in expected.items():
        if key not in data:
            problems.append(f"{patch_path} lacks {key} (from {path})")
        elif data[key] != script:
            problems.append(f"{patch_path}: {key} differs from {path}")
        else:
            checked += 1
            print(f"ok   {key} == {path}")
    for key in data:
        if key.startswith(KEY_PREFIX) and key not in expected:
            problems.append(f"{patch_path}: {key} has no health.lua under {health_dir}")
    if text != render(health_dir):
        problems.append(f"{patch_path} is not what `scripts/check-delivery.sh --update` writes")
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{checked} passed, {len(problems)} failed")
    return 1 if problems else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "render":
        sys.stdout.write(render(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
