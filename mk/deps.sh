#!/bin/sh
# Installs the Debian packages daffid needs to build and test, when any is missing.
# Uses sudo when not root. Prints nothing when everything is present. With the
# argument "package", also the tools that build and check the deb and rpm packages;
# with "bench", what `make bench` compares with and counts with (redis-server, strace);
# with "fuzz", clang.
set -e
PKGS="build-essential pkg-config libevent-dev libmsgpack-dev libinih-dev libcmocka-dev libjansson-dev libssl-dev openssl libnats-dev nats-server python3 python3-msgpack python3-pytest python3-prometheus-client socat scdoc"
# `sh mk/deps.sh package`: also what `make deb` and `make rpm` need (elfutils:
# eu-strip, for the rpm -debuginfo split; rpmlint: the package test; dh-python:
# python3-daffid)
if [ "${1:-}" = package ]; then
    PKGS="$PKGS debhelper dh-python dpkg-dev fakeroot lintian rpm elfutils rpmlint"
fi
if [ "${1:-}" = bench ]; then
    PKGS="$PKGS redis-server strace"
fi
# `sh mk/deps.sh fuzz`: clang, whose libFuzzer `make fuzz` builds with
if [ "${1:-}" = fuzz ]; then
    PKGS="$PKGS clang"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
