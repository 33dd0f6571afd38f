#!/usr/bin/env bash
# Sets up everything PhotoScribe needs (venv, torch, the project) and then runs the app or the tests.
#   bash packaging/bootstrap.sh run [ARGS...]   set up, then open the app (ARGS go to `photoscribe`)
#   bash packaging/bootstrap.sh test [PYTEST ARGS...]   set up, then lint and run the whole test suite
# Idempotent: a second run with nothing changed only checks a stamp file and starts at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-run}"
shift || true
venv="${PHOTOSCRIBE_VENV:-$here/.venv}"

find_python() {
    for py in python3.11 python3.12 python3.13 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    echo "PhotoScribe needs Python 3.11 or newer; install it and run this again." >&2
    return 1
}

system_packages() {
    # exiftool is the independent metadata reader the tests check against.
    if command -v exiftool >/dev/null 2>&1; then return 0; fi
    if [ "$(uname -s)" = Darwin ]; then
        if command -v brew >/dev/null 2>&1; then brew install exiftool; fi
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libimage-exiftool-perl >/dev/null
    fi
}

setup_venv() {
    local py stamp want
    py="$(find_python)"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    stamp="$venv/.photoscribe-stamp"
    want="$(cat pyproject.toml packaging/bootstrap.sh | "$venv/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    "$venv/bin/python" -m pip install -q --upgrade pip
    if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
        # The torch/torchvision pair that imports together here (see README, "Install").
        "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
    fi
    "$venv/bin/python" -m pip install -q -e ".[test]"
    echo "$want" >"$stamp"
}

case "$mode" in
run)
    setup_venv
    exec "$venv/bin/photoscribe" "$@"
    ;;
test)
    system_packages
    setup_venv
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/lint-imports"
    QT_QPA_PLATFORM=offscreen exec "$venv/bin/python" -m pytest "$@"
    ;;
*)
    echo "usage: bash packaging/bootstrap.sh run|test [ARGS...]" >&2
    exit 2
    ;;
esac
