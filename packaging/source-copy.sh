#!/bin/sh
# packaging/source-copy.sh DEST - copies the source tree into DEST (which must not
# exist): in a git work tree, the files git tracks (git ls-files), as they are on disk
# now (uncommitted edits included), and nothing else: an untracked file (the README
# tour's conf.d/20-hello.ini, a local build) never reaches a package; outside git,
# everything but the build directories. The packages are built from this copy so
# that their builds never write into the work tree.
set -eu
dest=$1
case $dest in /*) ;; *) dest=$(pwd)/$dest ;; esac
cd "$(dirname "$0")/.."
[ -e "$dest" ] && { echo "source-copy: $dest exists" >&2; exit 1; }
mkdir -p "$dest"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # a tracked file deleted in the work tree is left out rather than an error
    git ls-files -z --cached |
        xargs -0 sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -C "$dest" -xf -
else
    tar --exclude='./build' --exclude='./build-*' -cf - . | tar -C "$dest" -xf -
fi
