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

nodeps=""
rpm -q rpm >/dev/null 2>&1 || nodeps="--nodeps"
rpmbuild -bb $nodeps --define "_topdir $top" --define "daffid_version $version" \
    "$root/packaging/rpm/daffid.spec"
mv "$top"/RPMS/*/*.rpm "$out/"
rm -rf "$top"
echo "rpm: packages in $out:"
ls -1 "$out"/*.rpm
