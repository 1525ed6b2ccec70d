#!/usr/bin/env bash
# Installs what the integration tests drive for real, and only what is missing:
#   - redis-server, redis-check-rdb, redis-check-aof, redis-cli, redis-benchmark (Debian packages redis-server,
#     redis-tools);
#   - redis-py (PyPI package redis, pinned) in a Python venv at .venv;
#   - make, which the cargo build runs for jemalloc's bundled C sources (tikv-jemalloc-sys).
# Idempotent and quiet: a second run changes nothing and prints nothing.
# Under CI=true, a tool still missing afterwards fails the script: the tests would fail
# anyway, and this says why. Elsewhere it warns, and the tests that need the tool skip.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(redis-server redis-tools make)
REDIS_PY="redis==8.1.0"

LOG_NAME=test-deps
SKIP_HINT="the tests that need it will be skipped"
. scripts/lib.sh

install_debian_packages() {
    local missing=()
    for package in "${DEBIAN_PACKAGES[@]}"; do
        debian_installed "$package" || missing+=("$package")
    done
    # A Python that can make a venv with pip: Debian's python3 needs python3-venv for that.
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3 python3-venv)
    [ ${#missing[@]} -eq 0 ] && return 0
    warn "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}" || problem "cannot install Debian packages ${missing[*]}"
}

verify() {
    for tool in redis-server redis-cli redis-benchmark redis-check-rdb redis-check-aof make; do
        command -v "$tool" >/dev/null 2>&1 || problem "$tool is missing"
    done
    venv_has "$REDIS_PY" || problem "$REDIS_PY is missing from $VENV"
}

install_debian_packages
venv_install "$REDIS_PY"
verify
