#!/usr/bin/env bash
# Removes PhotoScribe as installed by install.sh: the program, the command, the menu entry and
# the icons. Your photos and the captions saved in them or beside them are never touched.
#   ~/.local/lib/photoscribe/uninstall.sh [--purge]
#   --purge   also delete PhotoScribe's settings, logs, thumbnail cache, library index and its
#             copy of the sample photos
set -euo pipefail

purge=0
for arg in "$@"; do
    case "$arg" in
    --purge) purge=1 ;;
    -h | --help)
        sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "uninstall.sh: unknown option $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

: "${HOME:?uninstall.sh needs HOME}"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
lib_dir="$HOME/.local/lib/photoscribe"
manifest="$lib_dir/installed-files.txt"

if [ ! -d "$lib_dir" ]; then
    echo "PhotoScribe is not installed in $lib_dir; nothing to remove."
else
    if [ -f "$manifest" ]; then
        while IFS= read -r file; do
            [ -n "$file" ] || continue
            # Only what install.sh put there: the command link must still point at us.
            if [ -L "$file" ]; then
                case "$(readlink "$file")" in
                "$lib_dir"/*) rm -f "$file" ;;
                *) echo "uninstall.sh: left $file alone (it no longer points to PhotoScribe)" >&2 ;;
                esac
            elif [ -f "$file" ]; then
                rm -f "$file"
            fi
        done <"$manifest"
    fi
    rm -rf "$lib_dir"
    echo "Removed PhotoScribe from $lib_dir."
fi

if [ "$purge" = 1 ]; then
    # The folders the app writes (platformdirs and QSettings names: "PhotoScribe").
    for dir in \
        "${XDG_CONFIG_HOME:-$HOME/.config}/PhotoScribe" \
        "${XDG_CACHE_HOME:-$HOME/.cache}/PhotoScribe" \
        "${XDG_STATE_HOME:-$HOME/.local/state}/PhotoScribe" \
        "$data_home/PhotoScribe"; do
        if [ -e "$dir" ]; then
            rm -rf "$dir"
            echo "Removed $dir"
        fi
    done
fi

apps_dir="$data_home/applications"
icons_dir="$data_home/icons/hicolor"
if command -v update-desktop-database >/dev/null 2>&1 && [ -d "$apps_dir" ]; then
    update-desktop-database -q "$apps_dir" || true
fi
[ ! -d "$icons_dir" ] || touch "$icons_dir" # newer mtime: icon caches reload
if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$icons_dir/index.theme" ]; then
    gtk-update-icon-cache -q -t -f "$icons_dir" || true
fi
if [ "$purge" = 0 ]; then
    echo "Settings and the library index were kept; run with --purge to remove them too."
fi
