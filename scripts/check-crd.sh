#!/usr/bin/env bash
# Checks the ConcurrentStore CRD and its examples, as CI runs it:
#   1. crds/ (and every chart's copy under charts/*/crds/) is exactly what `cstore crd` prints;
#   2. the CRD, and the built-in objects beside the examples, pass `kubernetes-validate --strict`
#      for the Kubernetes version the operator is built against (k8s-openapi feature v1_36);
#   3. every example ConcurrentStore under manifests/examples validates strictly against the
#      generated CRD (../shared/tools/validate-crs.py: unknown fields are errors).
# Python tools go into a venv at .venv/ (created here when missing). Under CI=true a missing
# tool fails the check; elsewhere the step that needs it is skipped with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=1.36.0
CRD=crds/concurrentstores.cstore.dev.yaml
EXAMPLES=manifests/examples
VALIDATE_CRS=../shared/tools/validate-crs.py

. scripts/lib.sh

# The validators, pinned as scripts/delivery-deps.sh installs them (scripts/test.sh runs it
# first); run alone, this script installs them itself.
ensure_python_tools() {
    venv_has "${KUBERNETES_VALIDATE_PACKAGES[@]}" && return 0
    command -v python3 >/dev/null 2>&1 || { missing "python3 is required to validate the CRD"; return 1; }
    LOG_NAME=check-crd SKIP_HINT="the validation steps will be skipped" venv_install "${KUBERNETES_VALIDATE_PACKAGES[@]}"
    venv_has "${KUBERNETES_VALIDATE_PACKAGES[@]}" || missing "cannot install ${KUBERNETES_VALIDATE_PACKAGES[*]} into $VENV"
}

command -v cargo >/dev/null 2>&1 || fail "cargo is required"

step "crds/ matches \`cstore crd\`"
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
# CSTORE_BIN names an already built binary (scripts/test.sh passes the one `cargo test`
# built): a plain `cargo run` would rebuild much of the dependency tree, because a build
# without the dev-dependencies resolves some crates' features differently.
if [ -n "${CSTORE_BIN:-}" ]; then
    "$CSTORE_BIN" crd >"$generated"
else
    cargo run --locked --quiet --bin cstore -- crd >"$generated"
fi
shopt -s nullglob
copies=("$CRD" charts/*/crds/concurrentstores.cstore.dev.yaml)
for copy in "${copies[@]}"; do
    if ! diff -u "$copy" "$generated"; then
        fail "$copy differs from \`cstore crd\`: regenerate it with \`cargo run -- crd > $copy\`"
    fi
    echo "ok   $copy"
done

if ensure_python_tools; then
    step "kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION)"
    .venv/bin/kubernetes-validate --strict --kubernetes-version "$KUBERNETES_VERSION" "$CRD"
    # The built-in objects beside the examples (Secrets); ConcurrentStores are the next step's.
    .venv/bin/kubernetes-validate --strict --no-warn --kubernetes-version "$KUBERNETES_VERSION" "$EXAMPLES"/*.yaml

    step "example ConcurrentStores against the generated CRD"
    if [ -f "$VALIDATE_CRS" ]; then
        .venv/bin/python "$VALIDATE_CRS" --crds "$CRD" "$EXAMPLES"
    else
        missing "$VALIDATE_CRS not found (shared/ must sit beside the repository)" || true
    fi
fi
