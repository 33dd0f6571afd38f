#!/usr/bin/env bash
# Installs PhotoScribe for the current user, in their home folder (no root needed):
#   the program            ~/.local/lib/photoscribe/
#   the command            ~/.local/bin/photoscribe
#   the menu entry         ~/.local/share/applications/photoscribe.desktop ("Open with" for photos)
#   the icons              ~/.local/share/icons/hicolor/*/apps/photoscribe.{png,svg}
# Run it from the unpacked photoscribe-*-linux-* folder:  ./install.sh [--check]
#   --check   run `photoscribe --self-test` once installed
# It first checks every unpacked file against SHA256SUMS and that there is room: a damaged or
# incomplete download stops it before anything is changed.
# Installing again replaces the previous version. ~/.local/lib/photoscribe/uninstall.sh removes it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check=0
for arg in "$@"; do
    case "$arg" in
    --check) check=1 ;;
    -h | --help)
        sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install.sh: unknown option $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

: "${HOME:?install.sh needs HOME}"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
lib_dir="$HOME/.local/lib/photoscribe"
bin_dir="$HOME/.local/bin"
apps_dir="$data_home/applications"
icons_dir="$data_home/icons/hicolor"
manifest="$lib_dir/installed-files.txt"

refuse() {
    echo "install.sh: $1" >&2
    shift
    [ "$#" = 0 ] || printf '%s\n' "$@" >&2
    echo "Nothing was installed or changed." >&2
    exit 1
}

if [ ! -x "$here/app/photoscribe" ] || [ ! -d "$here/app/_internal" ]; then
    refuse "$here/app/photoscribe is missing; run this from the unpacked PhotoScribe folder." \
        "If you did, the archive was not unpacked completely: download it again and unpack it afresh."
fi

# 0. Before anything changes: every file as it was packed (SHA256SUMS, written by pack.sh), and
#    room for it. A damaged or cut-off download stops here.
if [ ! -f "$here/SHA256SUMS" ]; then
    refuse "the file list $here/SHA256SUMS is missing, so the unpacked folder is incomplete." \
        "Download the archive again and unpack it afresh."
fi
echo "Checking the unpacked files..."
if ! failed="$(cd "$here" && LC_ALL=C sha256sum --check --quiet --strict SHA256SUMS 2>&1)"; then
    count="$(printf '%s\n' "$failed" | grep -c 'FAILED' || true)"
    refuse "the unpacked folder is damaged or incomplete: $count file(s) are missing or differ from the" \
        "archive, for example:" "$(printf '%s\n' "$failed" | grep 'FAILED' | head -n 3 | sed 's/^/    /')" \
        "Download the archive again (the download was probably cut off or corrupted) and unpack it afresh."
fi
probe="$HOME/.local/lib"
while [ ! -d "$probe" ]; do probe="$(dirname "$probe")"; done
need_kb="$(du -sk "$here/app" | cut -f1)"
free_kb="$(df -Pk "$probe" | awk 'NR == 2 { print $4 }')"
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((need_kb + need_kb / 20)) ]; then
    refuse "not enough disk space in $probe: PhotoScribe needs $((need_kb / 1024)) MB," \
        "$((free_kb / 1024)) MB are free."
fi

# Desktop-entry quoting (freedesktop Desktop Entry Specification, "The Exec key").
exec_quoted() {
    local s="$1"
    if [[ "$s" =~ ^[A-Za-z0-9_./+@:,=-]+$ ]]; then
        printf '%s' "$s"
        return
    fi
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//\`/\\\`}"
    s="${s//\$/\\\$}"
    s="${s//%/%%}" # a lone % would start a field code
    s="\"$s\""
    printf '%s' "${s//\\/\\\\}" # the value of a string key escapes its backslashes once more
}

# 1. The program: copied next to the old one, then swapped in, so a failed copy changes nothing.
mkdir -p "$(dirname "$lib_dir")"
rm -rf "$lib_dir.new" "$lib_dir.old"
trap 'rm -rf "$lib_dir.new"' EXIT # a copy that fails half-way leaves nothing behind
cp -a "$here/app" "$lib_dir.new"
cp "$here/uninstall.sh" "$lib_dir.new/uninstall.sh"
chmod 755 "$lib_dir.new/uninstall.sh"
if [ -d "$lib_dir" ]; then mv "$lib_dir" "$lib_dir.old"; fi
mv "$lib_dir.new" "$lib_dir"
rm -rf "$lib_dir.old"
installed=()

# 2. The command, unless something else already answers to `photoscribe` there.
mkdir -p "$bin_dir"
link="$bin_dir/photoscribe"
if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$lib_dir/photoscribe" "$link"
    installed+=("$link")
else
    echo "install.sh: left $link alone (it is not ours); the program is $lib_dir/photoscribe" >&2
fi

# 3. Icons: the PNG sizes and the SVG.
for png in "$here"/icons/photoscribe-*.png; do
    size="$(basename "$png" .png)"
    size="${size#photoscribe-}"
    target="$icons_dir/${size}x${size}/apps/photoscribe.png"
    install -D -m 644 "$png" "$target"
    installed+=("$target")
done
install -D -m 644 "$here/icons/photoscribe.svg" "$icons_dir/scalable/apps/photoscribe.svg"
installed+=("$icons_dir/scalable/apps/photoscribe.svg")

# 4. The menu entry, pointing at the installed program (the menu does not search ~/.local/bin).
mkdir -p "$apps_dir"
desktop_file="$apps_dir/photoscribe.desktop"
program="$lib_dir/photoscribe"
exec_value="$(exec_quoted "$program")"
tryexec_value="${program//\\/\\\\}"
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    Exec=*) line="${line/@EXEC@/"$exec_value"}" ;;
    TryExec=*) line="${line/@TRYEXEC@/"$tryexec_value"}" ;;
    esac
    printf '%s\n' "$line"
done <"$here/photoscribe.desktop" >"$desktop_file.tmp"
chmod 644 "$desktop_file.tmp"
mv "$desktop_file.tmp" "$desktop_file"
installed+=("$desktop_file")

printf '%s\n' "${installed[@]}" >"$manifest"

# 5. Tell the desktop: menus, "Open with" (mimeinfo.cache) and the icon cache.
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$apps_dir" || true
fi
[ ! -d "$icons_dir" ] || touch "$icons_dir" # newer mtime: icon caches reload
if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$icons_dir/index.theme" ]; then
    gtk-update-icon-cache -q -t -f "$icons_dir" || true
fi
for tool in kbuildsycoca6 kbuildsycoca5; do
    if command -v "$tool" >/dev/null 2>&1; then
        "$tool" >/dev/null 2>&1 || true
        break
    fi
done

echo "PhotoScribe is installed in $lib_dir."
echo "Open it from your application menu, or with \"Open with > PhotoScribe\" on a photo."
case ":$PATH:" in
*":$bin_dir:"*) echo "On the command line: photoscribe --help" ;;
*) echo "On the command line: $link --help (add $bin_dir to PATH to type just photoscribe)" ;;
esac
echo "To remove it: $lib_dir/uninstall.sh"

if [ "$check" = 1 ]; then
    "$lib_dir/photoscribe" --self-test
fi
