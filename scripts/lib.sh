# Shell helpers shared by the test scripts. Sourced, never run:
#   cd "$(dirname "$0")/.." && . scripts/lib.sh

# Whether this runs in CI, where a missing tool fails the run instead of skipping a check.
in_ci() { case "${CI:-}" in "" | 0 | false) return 1 ;; *) return 0 ;; esac; }

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A check cannot run because a tool is missing: fails under CI; elsewhere warns and returns 1
# so the caller skips that check.
missing() {
    in_ci && fail "$1"
    printf 'warning: %s; skipping this step (CI fails instead)\n' "$1" >&2
    return 1
}

# For the installers: LOG_NAME prefixes their lines, and outside CI a problem warns that
# SKIP_HINT (what will be skipped) rather than failing.
warn() { printf '%s: %s\n' "${LOG_NAME:-${0##*/}}" "$*" >&2; }
problem() {
    if in_ci; then
        warn "error: $*"
        exit 1
    fi
    warn "warning: $* (${SKIP_HINT:-the checks that need it will be skipped})"
}

# Sets CSTORE_BIN to the binary the caller named, or builds target/release/cstore for it.
cstore_bin_or_build() {
    if [ -z "${CSTORE_BIN:-}" ]; then
        echo "==> cargo build --release" >&2
        cargo build --release --quiet
        CSTORE_BIN=target/release/cstore
    fi
    [ -x "$CSTORE_BIN" ] || fail "$CSTORE_BIN is not an executable"
}

debian_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_install() {
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Python venv the scripts share, and the pinned packages that validate Kubernetes objects.
VENV=${VENV:-.venv}
KUBERNETES_VALIDATE_PACKAGES=(kubernetes-validate==1.37.0 PyYAML==6.0.3 jsonschema==4.26.0)

# Whether the venv holds exactly these pinned packages (NAME==VERSION ...).
venv_has() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$@" >/dev/null 2>&1 <<'PY'
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(1)
PY
}

# Installs pinned packages into the venv (created when missing), unless it holds them already.
venv_install() {
    venv_has "$@" && return 0
    warn "installing $* into $VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || { problem "cannot create the Python venv $VENV"; return 0; }
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" || problem "cannot install $* into $VENV"
}
