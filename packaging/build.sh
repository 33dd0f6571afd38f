#!/usr/bin/env bash
# Builds the packaged PhotoScribe with PyInstaller, smoke-tests the frozen program and, on Linux,
# packs the installable archive.
#   bash packaging/build.sh [--placeholder-weights] [--no-archive] [--no-build]
#   --placeholder-weights  ship random stand-in weights (packaging/placeholder_weights.py) when
#                          the trained model is not in core/weights yet; makes no archive
#   --no-archive           stop after the smoke tests (the installable folder is still made)
#   --no-build             smoke-test, check and pack the app already in dist/photoscribe
# Output: dist/photoscribe/ (the app), dist/photoscribe-VERSION-linux-ARCH-VARIANT/ (app plus
# install.sh, uninstall.sh, menu entry, icons, SHA256SUMS) and its .tar.zst (packaging/pack.sh;
# PHOTOSCRIBE_ARCHIVE_FORMAT=xz or gz for another format); build/bundle_report.json (sizes) and
# build/build_times.json. VARIANT is "cpu" or e.g. "cu130", after the torch in the venv: .venv,
# which bootstrap.sh sets up first with the CPU build of torch on a machine without an NVIDIA GPU
# (PHOTOSCRIBE_TORCH=cuda for the CUDA one), or the venv PHOTOSCRIBE_VENV names, used as it is.
# Before PyInstaller runs it installs, with apt-get, the system libraries the bundle carries that
# this machine lacks (libxcb-cursor0, ...: bundle_rules.BUILD_MACHINE_LIBRARIES), or names them.
# The machine is busy for a while: run it as `nice -n 19 bash packaging/build.sh` beside other work.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${PHOTOSCRIBE_VENV:-$root/.venv}"
py="$venv/bin/python"
placeholder=0
archive=1
build=1
format="${PHOTOSCRIBE_ARCHIVE_FORMAT:-zst}"
for arg in "$@"; do
    case "$arg" in
    --placeholder-weights) placeholder=1 ;;
    --no-archive) archive=0 ;;
    --no-build) build=0 ;;
    -h | --help)
        sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build.sh: unknown option $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

now() { "$py" -c 'import time; print(f"{time.time():.3f}")'; }
seconds() { "$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

if [ -z "${PHOTOSCRIBE_VENV:-}" ]; then
    # .venv follows this machine (bootstrap.sh): the CPU build of torch without an NVIDIA GPU,
    # so that the CPU variant is what gets built here; PHOTOSCRIBE_TORCH=cuda asks for the other.
    # With nothing changed this only checks its stamp.
    bash packaging/bootstrap.sh setup
fi
[ -x "$py" ] || {
    echo "build.sh: no virtual environment at $venv; run: bash packaging/bootstrap.sh setup" >&2
    exit 1
}
if ! "$py" -c "import PyInstaller" 2>/dev/null; then
    echo "== installing PyInstaller into $venv (the \"package\" extra in pyproject.toml)"
    "$py" -m pip install -q "pyinstaller>=6"
fi

# The libraries the bundle carries from this machine (bundle_rules.BUILD_MACHINE_LIBRARIES: what
# Qt's X11 plugin links and many desktops lack, such as libxcb-cursor0). The same bundle comes
# out whatever else is installed here; check_bundle.py fails if one is missing after all.
needed="$("$py" packaging/check_bundle.py --build-machine | tr '\n' ' ')"
needed="${needed% }"
if [ -n "$needed" ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    if command -v apt-get >/dev/null 2>&1 && { [ "${#sudo[@]}" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
        echo "== the bundle carries libraries this machine lacks; installing $needed"
        [ "${#sudo[@]}" = 0 ] || echo "   with sudo apt-get (it may ask for your password)"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $needed >/dev/null ||
            { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq $needed >/dev/null; }
    else
        echo "build.sh: the bundle carries libraries this machine lacks; install these packages" >&2
        echo "  (Debian/Ubuntu names; on other systems the packages with the same libraries):" >&2
        echo "  $needed" >&2
        exit 1
    fi
fi

version="$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
cuda="$(
    "$py" - <<'EOF'
import importlib.util, pathlib, re
text = (pathlib.Path(importlib.util.find_spec("torch").origin).parent / "version.py").read_text()
found = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", text, re.MULTILINE)
print(found.group(1) if found else "")
EOF
)"
variant="cpu"
[ -z "$cuda" ] || variant="cu${cuda//./}"

if [ "$build" = 0 ]; then
    : # the app is already built; its self-test says which model it carries
elif [ "$placeholder" = 1 ]; then
    "$py" packaging/placeholder_weights.py build/placeholder/photoscribe-b0.safetensors >/dev/null
    export PHOTOSCRIBE_BUNDLE_WEIGHTS="$root/build/placeholder/photoscribe-b0.safetensors"
    if [ "$archive" = 1 ]; then
        echo "build.sh: placeholder weights: the app is built and tested, but no archive is made" >&2
    fi
    archive=0
elif [ -z "${PHOTOSCRIBE_BUNDLE_WEIGHTS:-}" ] && [ ! -f core/weights/photoscribe-b0.safetensors ]; then
    echo "build.sh: the trained model core/weights/photoscribe-b0.safetensors is not there yet." >&2
    echo "  Train and export it (README, \"Train your own model\"), or test the packaging with" >&2
    echo "  --placeholder-weights." >&2
    exit 1
fi

t0="$(now)"
if [ "$build" = 1 ]; then
    echo "== building PhotoScribe $version ($variant) with PyInstaller"
    "$py" -m PyInstaller --noconfirm --log-level WARN \
        --distpath dist --workpath build/pyinstaller packaging/photoscribe.spec
    echo "   built dist/photoscribe in $(seconds "$t0" "$(now)") s"
elif [ ! -x dist/photoscribe/photoscribe ]; then
    echo "build.sh: --no-build, but there is no dist/photoscribe/photoscribe" >&2
    exit 1
fi
t1="$(now)"

app="$root/dist/photoscribe/photoscribe"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home"
# A bare environment, run from an empty folder: nothing from the source tree or the venv helps.
clean_env=(env -i "HOME=$scratch/home" "PATH=/usr/bin:/bin" "LANG=C.UTF-8" "TMPDIR=$scratch"
    "QT_QPA_PLATFORM=offscreen")
offline=()
if unshare -rn true 2>/dev/null; then
    offline=(unshare -rn) # no network at all: the app must not need it
fi

echo "== smoke test 1: photoscribe --self-test${offline:+ (without network)}"
(cd "$scratch" && "${offline[@]}" "${clean_env[@]}" "$app" --self-test)
t2="$(now)"

echo "== smoke test 2: the main window, headless"
launched="$(now)"
shown="$(cd "$scratch" && "${offline[@]}" "${clean_env[@]}" "$app" --smoke-gui | tail -n 1)"
t3="$(now)"
echo "   $shown"
startup="$(
    "$py" -c 'import json, sys; print("%.2f" % (json.loads(sys.argv[1])["shown_at"] - float(sys.argv[2])))' \
        "$shown" "$launched"
)"
echo "   main window painted $startup s after launch (one cold-ish run; see tests/benchmarks/startup.py)"

echo "== checking the bundle's contents"
"$py" packaging/check_bundle.py dist/photoscribe --out build/bundle_report.json
t4="$(now)"

# The installable folder: the app plus what install.sh needs. Hard links: no second copy on disk.
package="photoscribe-$version-linux-$(uname -m)-$variant"
stage="dist/$package"
rm -rf "$stage"
mkdir -p "$stage/icons"
cp -al dist/photoscribe "$stage/app"
cp packaging/linux/install.sh packaging/linux/uninstall.sh packaging/linux/photoscribe.desktop "$stage/"
cp packaging/icons/photoscribe.svg packaging/icons/photoscribe-*.png "$stage/icons/"
cp packaging/linux/INSTALL.txt "$stage/INSTALL.txt"
chmod 755 "$stage/install.sh" "$stage/uninstall.sh"

archive_s=0
archive_file=""
if [ "$archive" = 1 ] && head -c 1000000 dist/photoscribe/_internal/core/weights/photoscribe-b0.safetensors |
    grep -q PLACEHOLDER; then
    echo "build.sh: the app carries placeholder weights; no archive is made" >&2
    archive=0
fi
if [ "$archive" = 0 ]; then
    bash packaging/pack.sh "$stage" none # the file list install.sh checks, without an archive
else
    echo "== packing dist/$package.tar.$format"
    rm -f dist/"$package".tar.*
    packed="$(bash packaging/pack.sh "$stage" "$format")"
    t5="$(now)"
    archive_s="$(seconds "$t4" "$t5")"
    archive_file="dist/$package.tar.$format"
    echo "   $(du -h "$archive_file" | cut -f1) in $archive_s s: $packed"
fi

cat >build/build_times.json <<EOF
{"variant": "$variant", "pyinstaller_s": $(seconds "$t0" "$t1"), "self_test_s": $(seconds "$t1" "$t2"),
 "smoke_gui_s": $(seconds "$t2" "$t3"), "launch_to_window_s": $startup,
 "check_s": $(seconds "$t3" "$t4"), "archive": "$archive_file", "archive_format": "$format",
 "archive_bytes": $([ -z "$archive_file" ] && echo 0 || stat -c %s "$archive_file"),
 "archive_s": $archive_s, "total_s": $(seconds "$t0" "$(now)")}
EOF
echo "== done: dist/photoscribe ($variant); install with $stage/install.sh"
cat build/build_times.json
