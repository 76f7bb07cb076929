#!/bin/sh
# packaging/build-deb.sh OUTDIR - builds the Debian packages daffid, libdaffi0 and
# libdaffi-dev (plus their -dbgsym) with dpkg-buildpackage -us -uc -b, from a copy of
# the tree with packaging/debian as its debian/. The version is the VERSION file's:
# when debian/changelog's top entry says another, the copy gets an entry for VERSION.
# `make deb` calls it; the .deb, .ddeb, .buildinfo and .changes land in OUTDIR.
set -eu
out=$1
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$root/VERSION")
work=$out/deb-build
src=$work/daffid-$version

rm -rf "$work"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mkdir -p "$work"
sh "$root/packaging/source-copy.sh" "$src"
cp -R "$src/packaging/debian" "$src/debian"

top=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if [ "$top" != "$version" ]; then
    who=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Maintainer)
    {
        printf 'daffid (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * New upstream version %s.\n\n' "$version"
        printf ' -- %s  %s\n\n' "$who" "$(date -R)"
        cat "$src/debian/changelog"
    } > "$work/changelog"
    mv "$work/changelog" "$src/debian/changelog"
fi

jobs=$(nproc 2>/dev/null || echo 2)
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b)
for f in "$work"/*.deb "$work"/*.ddeb "$work"/*.buildinfo "$work"/*.changes; do
    [ -e "$f" ] && mv "$f" "$out/"
done
rm -rf "$work"
echo "deb: packages in $out:"
ls -1 "$out"/*.deb
