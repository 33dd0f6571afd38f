#!/usr/bin/env bash
# Sets up everything PhotoScribe needs (venv, torch, the project) and then runs the app or the tests.
#   bash packaging/bootstrap.sh run [ARGS...]   set up, then open the app (ARGS go to `photoscribe`)
#   bash packaging/bootstrap.sh test [PYTEST ARGS...]   set up, then lint and run the whole test suite
#   bash packaging/bootstrap.sh system   only the system packages below (no venv)
#   bash packaging/bootstrap.sh setup    only set up (or update) the venv; build.sh runs this
#   bash packaging/bootstrap.sh torch    say which build of torch set-up would install, and why
# torch: the CPU build (a 1.5 GB venv instead of 6 GB, no torchvision) unless this machine has an
# NVIDIA GPU (nvidia-smi lists one, or the driver's /proc/driver/nvidia/gpus does);
# PHOTOSCRIBE_TORCH=cpu or =cuda asks for one. The CUDA build also runs on the CPU, and brings
# torchvision for decoding JPEGs on the GPU (nvJPEG).
# Idempotent: a second run with nothing changed (files and torch choice) only checks a stamp
# file and starts at once.
# On Debian and Ubuntu it first installs, with apt-get (sudo when not root; it says so first),
# the system libraries Qt's window needs (libxcb-cursor0, ...) and, for `test`, exiftool.
set -euo pipefail
shopt -s inherit_errexit

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

apt_install() { # apt_install REASON PACKAGE...: install with apt-get, saying why before any sudo
    local reason="$1"
    shift
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "$reason: $*"
    if [ "${#sudo[@]}" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "Install them as root (apt-get install $*) and run this again." >&2
        return 1
    fi
    if [ "${#sudo[@]}" != 0 ]; then
        echo "Installing them with sudo apt-get (sudo may ask for your password)."
    else
        echo "Installing them with apt-get."
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

not_installed() { # not_installed PACKAGE...: those of the Debian packages that are not installed
    { dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true; } |
        awk -v want="$*" '$NF == "installed" { ok[$1] = 1 }
            END { n = split(want, w, " "); for (i = 1; i <= n; i++) if (!(w[i] in ok)) print w[i] }'
}

system_packages() { # system_packages run|test
    [ "$(uname -s)" = Linux ] || {
        # exiftool is the independent metadata reader the tests check against.
        if [ "$1" = test ] && ! command -v exiftool >/dev/null 2>&1 && command -v brew >/dev/null 2>&1; then
            brew install exiftool
        fi
        return 0
    }
    local py missing=()
    py="$(find_python)"
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        # Not Debian or Ubuntu: name what Qt's window needs when the loader cannot find it.
        if ! ldconfig -p 2>/dev/null | grep -q 'libxcb-cursor\.so\.0'; then
            echo "Qt's window needs the X11 libraries xcb-util-cursor, xcb-util-wm, xcb-util-keysyms," \
                "xcb-util-image, xcb-util-renderutil and libxkbcommon-x11; install them with your" \
                "package manager if PhotoScribe's window does not open." >&2
        fi
        return 0
    fi
    # Qt's window (X11) links these from the system; the PySide6 wheels carry only Qt itself.
    read -r -a missing < <(not_installed $("$py" packaging/bundle_rules.py qt-packages) | tr '\n' ' ') || true
    if [ "${#missing[@]}" != 0 ]; then
        apt_install "PhotoScribe's window (Qt) needs these system libraries" "${missing[@]}"
    fi
    if [ "$1" = test ] && ! command -v exiftool >/dev/null 2>&1; then
        apt_install "The tests check metadata with exiftool" libimage-exiftool-perl
    fi
}

# The torch builds set-up installs: the CUDA pair that imports together (see README, "Install"),
# and the CPU build, taken from the package index pip is set up with when it has it (this
# project's machines keep it on local disk), else from PyTorch's CPU index.
CUDA_TORCH=(torch==2.14.1 torchvision==0.29.1)
CPU_TORCH="torch==2.13.0+cpu"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

has_nvidia_gpu() {
    local gpus="${PHOTOSCRIBE_NVIDIA_GPUS:-/proc/driver/nvidia/gpus}" # one folder per GPU
    if [ -d "$gpus" ] && [ -n "$(ls -A "$gpus" 2>/dev/null)" ]; then return 0; fi
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

torch_choice() { # prints "cpu REASON" or "cuda REASON"
    case "${PHOTOSCRIBE_TORCH:-}" in
    cpu | cuda) echo "$PHOTOSCRIBE_TORCH PHOTOSCRIBE_TORCH=$PHOTOSCRIBE_TORCH" ;;
    "")
        if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
            echo "cpu torch's own build for $(uname -s) $(uname -m)"
        elif has_nvidia_gpu; then
            echo "cuda this machine has an NVIDIA GPU"
        else
            echo "cpu this machine has no NVIDIA GPU; PHOTOSCRIBE_TORCH=cuda asks for the CUDA build"
        fi
        ;;
    *)
        echo "PHOTOSCRIBE_TORCH must be cpu or cuda, not '$PHOTOSCRIBE_TORCH'" >&2
        return 2
        ;;
    esac
}

venv_hash() { # the stamp: what set-up installs follows these files and the torch choice
    { cat pyproject.toml packaging/bootstrap.sh && echo "$1"; } |
        "$venv/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

install_torch() { # install_torch cpu|cuda; sets extras, the project's extras that go with it
    local pip=("$venv/bin/python" -m pip install -q) leftovers
    if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
        # macOS and Linux on ARM: PyPI's torch is the CPU (and MPS) build; torchvision, for
        # decoding on a GPU only, comes with the "cuda" extra.
        echo "[1/2] torch: a few hundred MB to download."
        "${pip[@]}" torch
        extras="test"
        [ "$1" != cuda ] || extras="test,cuda"
    elif [ "$1" = cpu ]; then
        echo "[1/2] torch, CPU build (no NVIDIA libraries): about 200 MB to download, 750 MB on disk."
        if ! "${pip[@]}" "$CPU_TORCH" 2>/dev/null && ! "${pip[@]}" "$CPU_TORCH" --index-url "$CPU_INDEX"; then
            echo "      No CPU build of torch could be installed; taking the CUDA build instead."
            install_torch cuda
            return 0
        fi
        # A venv that had the CUDA build: its torchvision, triton and NVIDIA libraries (about
        # 4 GB) go; the CPU build uses none of them.
        leftovers="$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null |
            sed -n 's/^\(torchvision\|triton\|nvidia-[^=]*\|cuda-[^=]*\)==.*/\1/p' | tr '\n' ' ')"
        if [ -n "${leftovers// /}" ]; then
            echo "      Removing what only the CUDA build used: $leftovers"
            "$venv/bin/python" -m pip uninstall -y -q $leftovers
        fi
        extras="test"
    else
        echo "[1/2] torch 2.14.1 and torchvision 0.29.1 with NVIDIA's CUDA 13 libraries (they also run"
        echo "      on the CPU): about 3 GB to download, 5.4 GB on disk; a few minutes."
        "${pip[@]}" "${CUDA_TORCH[@]}"
        extras="test,cuda"
    fi
}

setup_venv() {
    local py stamp choice want size extras started="$SECONDS"
    py="$(find_python)"
    choice="$(torch_choice)"
    stamp="$venv/.photoscribe-stamp"
    if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
        want="$(venv_hash "${choice%% *}")"
        if [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
        echo "Updating $venv (pyproject.toml, this script or the torch build changed)."
    else
        echo "Setting up $venv, once: a Python environment with PhotoScribe and what it needs."
    fi
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    echo "torch: the ${choice%% *} build: ${choice#* }."
    install_torch "${choice%% *}"
    echo "[2/2] PhotoScribe (editable, from this folder) with PySide6 (Qt), Pillow, pi-heif, exiv2,"
    echo "      numpy, safetensors and the test tools: about 650 MB on disk."
    # PYTHONWARNINGS=ignore: setuptools' build backend prints a ten-line "Editable installation"
    # notice as a Python warning for every editable install, whatever the mode; it asks nothing
    # of the user. pip's own errors still show.
    PYTHONWARNINGS=ignore "$venv/bin/python" -m pip install -q -e ".[$extras]"
    venv_hash "${choice%% *}" >"$stamp"
    size="$(du -sm "$venv" 2>/dev/null | cut -f1)"
    echo "Done in $((SECONDS - started)) s: $venv holds ${size:-?} MB (torch: ${choice%% *} build)."
}

case "$mode" in
run)
    system_packages run
    setup_venv
    exec "$venv/bin/photoscribe" "$@"
    ;;
system)
    system_packages test
    ;;
setup)
    setup_venv
    ;;
torch)
    choice="$(torch_choice)"
    echo "${choice%% *}: ${choice#* }"
    ;;
test)
    system_packages test
    setup_venv
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/lint-imports"
    QT_QPA_PLATFORM=offscreen exec "$venv/bin/python" -m pytest "$@"
    ;;
*)
    echo "usage: bash packaging/bootstrap.sh run|test|system|setup|torch [ARGS...]" >&2
    exit 2
    ;;
esac
