#!/usr/bin/env bash
# Packs an installable PhotoScribe folder (as build.sh stages it) into the archive users download.
#   bash packaging/pack.sh FOLDER [zst|xz|gz|none]      (default zst; none: only SHA256SUMS)
# Writes FOLDER/SHA256SUMS first (install.sh checks every file against it before it changes
# anything), then FOLDER.tar.zst (or .tar.xz / .tar.gz) beside FOLDER, install.sh and the file
# list first so that even a cut-off download unpacks them. `tar xf` unpacks all three formats
# (GNU tar runs zstd, xz or gzip; desktop archive managers use libarchive). Prints one JSON line:
# {"archive": ..., "format": ..., "bytes": ..., "seconds": ...}.
# zst: zstd -T0 -6 --long=27 (all cores; a 128 MiB window, which unpacking needs as memory).
set -euo pipefail

folder="${1:?usage: pack.sh FOLDER [zst|xz|gz|none]}"
format="${2:-zst}"
folder="${folder%/}"
[ -d "$folder" ] || {
    echo "pack.sh: $folder is not a folder" >&2
    exit 2
}
case "$format" in
zst) compress=(zstd -q -T0 -6 --long=27) ;;
xz) compress=(xz -T0 -6) ;;
gz) compress=(gzip -6) ;;
none) compress=(true) ;;
*)
    echo "pack.sh: unknown format $format (zst, xz or gz)" >&2
    exit 2
    ;;
esac
command -v "${compress[0]}" >/dev/null 2>&1 || {
    echo "pack.sh: ${compress[0]} is not installed (Debian/Ubuntu package: ${compress[0]/xz/xz-utils})" >&2
    exit 1
}

parent="$(cd "$(dirname "$folder")" && pwd)"
name="$(basename "$folder")"
archive="$parent/$name.tar.$format"
start="$(date +%s.%N)"

# Every file and link but the list itself, by path relative to the folder, in sha256sum's own format.
list="$(mktemp)"
trap 'rm -f "$list" "$archive.tmp"' EXIT
(cd "$folder" && find . \( -type f -o -type l \) ! -path ./SHA256SUMS -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 sha256sum --) >"$list"
mv "$list" "$folder/SHA256SUMS"
chmod 644 "$folder/SHA256SUMS"
[ "$format" != none ] || exit 0

# The order in the archive: the folder, its small files (install.sh, SHA256SUMS, ...), then the rest.
list="$(mktemp)"
(
    cd "$parent"
    printf '%s\n' "$name"
    find "$name" -mindepth 1 -maxdepth 1 -type f | LC_ALL=C sort
    find "$name" -mindepth 1 -maxdepth 1 ! -type f | LC_ALL=C sort | while IFS= read -r top; do
        find "$top" | LC_ALL=C sort
    done
) >"$list"
tar -C "$parent" --no-recursion --owner=0 --group=0 --numeric-owner -cf - -T "$list" |
    "${compress[@]}" >"$archive.tmp"
mv "$archive.tmp" "$archive"

seconds="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
printf '{"archive": "%s", "format": "%s", "bytes": %d, "seconds": %s}\n' \
    "$archive" "$format" "$(stat -c %s "$archive")" "$seconds"
