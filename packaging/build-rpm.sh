#!/bin/sh
# packaging/build-rpm.sh OUTDIR - builds the rpm packages daffid and daffid-devel
# from packaging/rpm/daffid.spec with rpmbuild, from a tarball of a copy of the tree.
# The version is the VERSION file's. On a system whose rpm database does not hold the
# build dependencies (Debian, where `make rpm` runs in CI) they are not checked.
# `make rpm` calls it; the .rpm files land in OUTDIR.
set -eu
out=$1
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$root/VERSION")
top=$out/rpm-build

rm -rf "$top"
rm -f "$out"/*.rpm
mkdir -p "$top/SOURCES" "$top/SPECS" "$top/BUILD" "$top/RPMS" "$top/SRPMS"
sh "$root/packaging/source-copy.sh" "$top/daffid-$version"
tar -C "$top" -czf "$top/SOURCES/daffid-$version.tar.gz" "daffid-$version"
rm -rf "$top/daffid-$version"

# The spec's %changelog starts with the release it was written for: a newer VERSION
# gets an entry of its own in the copy that is built, as build-deb.sh does.
spec=$top/SPECS/daffid.spec
cp "$root/packaging/rpm/daffid.spec" "$spec"
top_version=$(sed -n '/^%changelog/{n;s/.* - \([^ ]*\)-[^-]*$/\1/p;q}' "$spec")
if [ "$top_version" != "$version" ]; then
    who=$(sed -n '/^%changelog/{n;s/^\* [A-Z][a-z]* [A-Z][a-z]* [0-9]* [0-9]* \(.*\) - .*/\1/p;q}' "$spec")
    entry="* $(LC_ALL=C date -u '+%a %b %d %Y') $who - $version-1\n- New upstream version $version.\n"
    sed -i "/^%changelog/a $entry" "$spec"
fi

nodeps=""
rpm -q rpm >/dev/null 2>&1 || nodeps="--nodeps"
rpmbuild -bb $nodeps --define "_topdir $top" --define "daffid_version $version" \
    "$spec"
mv "$top"/RPMS/*/*.rpm "$out/"
rm -rf "$top"
echo "rpm: packages in $out:"
ls -1 "$out"/*.rpm
