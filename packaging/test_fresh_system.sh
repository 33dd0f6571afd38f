#!/usr/bin/env bash
# Proves that a PhotoScribe archive runs on a bare Linux that has only an X server and the
# libraries the bundle leaves to the system (bundle_rules.SYSTEM_LIBRARIES): it makes a minimal
# Debian root file system with debootstrap (--variant=minbase) plus Xvfb and those libraries,
# then, inside it (chroot, no network, as an ordinary user), unpacks the archive, runs
# install.sh, `photoscribe --self-test` and `photoscribe --smoke-gui` on the X server, and
# finally removes the root file system again. It reports what ran and how long each step took.
#   sudo bash packaging/test_fresh_system.sh [ARCHIVE] [--mirror URL] [--suite NAME] [--keep]
#                                            [--workdir DIR] [--out FILE.json]
#   ARCHIVE    a photoscribe-*-linux-*.tar.zst/.tar.xz/.tar.gz (default: the newest in dist/)
#   --mirror   the Debian mirror (default: the first one in apt's sources, else deb.debian.org)
#   --suite    the Debian release to bootstrap (default: bookworm)
#   --keep     leave the root file system in place (its path is printed) instead of removing it
#   --workdir  where to make it (default: build/fresh-system; needs twice the unpacked app plus
#              1 GB free, about 10 GB: the root, the unpacked archive and its installed copy)
#   --out      also write the report as JSON (default: build/fresh_system.json)
# Needs root (debootstrap, chroot, mount, unshare) and the network for the Debian packages only;
# the downloaded packages are kept in build/debootstrap-cache for the next run. Exit 0 when every
# step passed, 3 when the work dir has too little free space for it (nothing was made), 2 for a
# wrong option, else 1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
archive=""
mirror=""
suite="bookworm"
keep=0
workdir="$here/build/fresh-system"
out="$here/build/fresh_system.json"
while [ "$#" -gt 0 ]; do
    case "$1" in
    --mirror) mirror="$2" && shift ;;
    --suite) suite="$2" && shift ;;
    --keep) keep=1 ;;
    --workdir) workdir="$(realpath -m "$2")" && shift ;;
    --out) out="$(realpath -m "$2")" && shift ;;
    -h | --help)
        sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "test_fresh_system.sh: unknown option $1 (try --help)" >&2
        exit 2
        ;;
    *) archive="$(realpath "$1")" ;;
    esac
    shift
done

fail() {
    echo "test_fresh_system.sh: $*" >&2
    exit 1
}
# The exit status: 0 passed, 3 only when the work dir had too little room (CI skips then), and
# 1 for every other failure, whatever status the command that failed under set -e had.
no_room=0
final_status() {
    if [ "$1" = 0 ]; then echo 0; elif [ "$no_room" = 1 ]; then echo 3; else echo 1; fi
}
trap 'exit "$(final_status $?)"' EXIT
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot and mount): sudo bash $0"
if [ -z "$archive" ]; then
    archive="$(ls -t dist/photoscribe-*-linux-*.tar.* 2>/dev/null | head -n 1 || true)"
    [ -n "$archive" ] || fail "no archive in dist/; build one with packaging/build.sh or name it"
    archive="$(realpath "$archive")"
fi
[ -f "$archive" ] || fail "$archive is not a file"
package="$(basename "$archive")"
package="${package%.tar.*}"
if ! command -v debootstrap >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "== installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    else
        fail "needs debootstrap (Debian's tool; most distributions package it)"
    fi
fi
if [ -z "$mirror" ]; then
    mirror="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list |
        grep -oE 'https?://[^ ]*debian/?' | grep -v security | head -n 1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

# The packages: an X server, the written list of system libraries, and zstd/xz for tar.
python="${PHOTOSCRIBE_VENV:-$here/.venv}/bin/python"
[ -x "$python" ] || python=python3
read -r -a listed < <("$python" packaging/bundle_rules.py system-packages)
packages=(xvfb zstd xz-utils "${listed[@]}")
include="$(IFS=,; echo "${packages[*]}")"

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
steps=()  # "name seconds status" lines for the report
record() { steps+=("$1 $2 $3"); printf '   %-12s %6s s  %s\n' "$1" "$2" "$3"; }

mkdir -p "$workdir" "$here/build/debootstrap-cache" "$(dirname "$out")"

# Room for it, checked before anything is made: the Debian root (about 0.5 GB, 1 GB allowed), the
# unpacked archive in the tester's home and the copy install.sh makes of it.
free_kb() { df -Pk "$1" | awk 'NR == 2 { print $4 }'; }
unpacked_kb="$(tar -tvf "$archive" | awk '{ s += $3 } END { printf "%d", s / 1024 }')"
need_kb=$((2 * unpacked_kb + 1024 * 1024))
if [ "$(free_kb "$workdir")" -lt "$need_kb" ]; then
    echo "test_fresh_system.sh: $workdir has $(($(free_kb "$workdir") / 1024)) MB free;" \
        "the test needs $((need_kb / 1024)) MB (the archive unpacks to $((unpacked_kb / 1024)) MB," \
        "installed once more, and about 1 GB of Debian)" >&2
    no_room=1
    exit 3
fi
root="$(mktemp -d "$workdir/root.XXXXXX")"
chmod 755 "$root" # it becomes /, which every user must be able to enter
mounts=()
cleanup() {
    local status=$?
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
    if [ "$keep" = 1 ]; then
        echo "== kept the root file system: $root"
    else
        local t
        t="$(now)"
        rm -rf --one-file-system "$root"
        echo "== removed $root in $(seconds "$t" "$(now)") s"
    fi
    exit "$(final_status "$status")"
}
trap cleanup EXIT
mount_in() { # mount_in ARGS... TARGET: mount inside the root, undone by cleanup
    mount "$@"
    mounts+=("${!#}")
}

echo "== fresh-system test of $(basename "$archive") ($(du -h "$archive" | cut -f1))"
echo "   Debian $suite (minbase) from $mirror, plus: ${packages[*]}"
t="$(now)"
if ! debootstrap --variant=minbase --include="$include" --cache-dir="$here/build/debootstrap-cache" \
    "$suite" "$root" "$mirror" >"$workdir/debootstrap.log" 2>&1; then
    tail -n 20 "$workdir/debootstrap.log" >&2
    # dpkg's own messages (why a package would not unpack) are in the root's log, which goes
    # with the root: show them, and the free space, first.
    if [ -f "$root/debootstrap/debootstrap.log" ]; then
        cp "$root/debootstrap/debootstrap.log" "$workdir/debootstrap-inside.log"
        echo "-- the end of $workdir/debootstrap-inside.log:" >&2
        tail -n 30 "$workdir/debootstrap-inside.log" >&2
    fi
    echo "-- free space: $(($(free_kb "$workdir") / 1024)) MB in $workdir" >&2
    fail "debootstrap failed (log: $workdir/debootstrap.log)"
fi
record debootstrap "$(seconds "$t" "$(now)")" "ok, $(du -sh --one-file-system "$root" | cut -f1) root file system"

# An ordinary user, the archive read-only beside it, and the kernel file systems programs expect.
chroot "$root" useradd --create-home --uid 4242 --user-group tester
download="$root/mnt/download/$(basename "$archive")"
mkdir -p "$(dirname "$download")"
: >"$download"
mount_in --bind "$archive" "$download"
mount -o remount,bind,ro "$download"
mount_in --rbind /dev "$root/dev"
mount_in -t tmpfs -o mode=1777 tmpfs "$root/tmp"

# Everything below runs in the new root without network (its own network namespace holds only
# a loopback interface that is down) and as the user tester.
inside() {
    unshare --net --pid --fork --mount-proc="$root/proc" \
        chroot --userspec=4242:4242 "$root" /usr/bin/env -i HOME=/home/tester USER=tester \
        PATH=/home/tester/.local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR=/tmp "$@"
}
step() { # step NAME COMMAND...: run it inside, time it, stop the test when it fails
    local name="$1" t status=0
    shift
    t="$(now)"
    inside "$@" >"$workdir/$name.log" 2>&1 || status=$?
    if [ "$status" != 0 ]; then
        record "$name" "$(seconds "$t" "$(now)")" "FAILED (exit $status)"
        tail -n 25 "$workdir/$name.log" >&2
        fail "$name failed; its output: $workdir/$name.log"
    fi
    record "$name" "$(seconds "$t" "$(now)")" "ok"
}

echo "== inside the new root, as user tester, without network"
inside sh -c 'printf "   network interfaces: "; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " "; echo'
step unpack sh -c "cd ~ && tar xf '/mnt/download/$(basename "$archive")'"
step install sh -c "cd ~/'$package' && ./install.sh"
step self-test photoscribe --self-test
step smoke-gui sh -c '
    Xvfb :7 -screen 0 1280x800x24 -nolisten tcp >/tmp/xvfb.log 2>&1 &
    xvfb=$!
    for _ in $(seq 100); do [ -S /tmp/.X11-unix/X7 ] && break; sleep 0.1; done
    DISPLAY=:7 QT_QPA_PLATFORM=xcb photoscribe --smoke-gui
    status=$?
    kill "$xvfb"
    exit "$status"'
shown="$(tail -n 1 "$workdir/smoke-gui.log")"
echo "   $shown"
case "$shown" in
*'"platform": "xcb"'*) ;;
*) fail "the smoke test did not run on the X server (xcb): $shown" ;;
esac
step uninstall sh -c '~/.local/lib/photoscribe/uninstall.sh --purge'

total=0
json_steps=""
for s in "${steps[@]}"; do
    read -r name secs status <<<"$s"
    total="$(awk -v a="$total" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')"
    json_steps+="${json_steps:+, }\"$name\": $secs"
done
cat >"$out" <<EOF
{"archive": "$(basename "$archive")", "archive_bytes": $(stat -c %s "$archive"), "suite": "$suite",
 "variant": "minbase", "packages_added": "${packages[*]}", "seconds": {$json_steps},
 "total_s_before_cleanup": $total, "smoke_gui": $shown}
EOF
echo "== passed: $(basename "$archive") installs and runs on a bare Debian $suite with only" \
    "Xvfb and the listed system libraries; steps took $total s in all (report: $out)"
