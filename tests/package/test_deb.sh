#!/bin/bash
# tests/package/test_deb.sh - the packages, tested the way an operator and a plugin
# author use them. CI runs it after `make asan` (.ci/run).
#
#  1. make deb and make rpm build from the files git tracks: an untracked ini in
#     conf.d (the README tour's 20-hello.ini) reaches no package; lintian reports no
#     error or warning on the .debs; debian/copyright's license is LICENSE's.
#  1b. make install DESTDIR=... PREFIX=/usr/local stages everything under DESTDIR
#     with SYSCONFDIR /usr/local/etc/daffid; a real make install (PREFIX=/usr/local)
#     followed by apt-get install of the debs meets no conffile prompt; make
#     uninstall removes it again.
#  2. apt-get installs daffid, libdaffi0 and libdaffi-dev; the files, conffiles,
#     documentation, API man pages, plugin template, bash completion, the system
#     user and group daffid and /run/daffid are where they belong.
#  3. The installed daffid runs as systemd would run daffid.service (no systemd in
#     CI): the unit's ExecStartPre and ExecStart, as its User/Group, with
#     RUNTIME_DIRECTORY and a NOTIFY_SOCKET this script listens on (READY=1).
#     The installed daffictl calls plugins over TCP and the Unix socket and reads
#     the admin socket.
#  4. A plugin built out of tree against the installed SDK (pkg-config daffi) is
#     loaded by dropping an ini into /etc/daffid/conf.d and running the unit's
#     ExecReload lines; the installed plugin template builds, its make install puts
#     it in the site plugin directory, daffid serves it, and reinstalling the
#     package leaves it alone; a caller links the installed libdaffi.
#  5. With a broken ini, ExecReload fails at its check and the daemon keeps serving.
#  6. SIGTERM drains and exits 0; dpkg -r keeps the configuration, --purge removes
#     everything the packages installed.
#  7. The rpm packages hold the same files and their scripts create the user; the
#     binaries are stripped into -debuginfo; License, URL and %changelog are set;
#     rpmlint (with packaging/rpm/daffid.rpmlintrc) reports no error.
#
# Installs and purges packages on this machine (as root: run through sudo when not),
# and cleans up on any exit (trap). Refuses to run when a daffid package is already
# installed (in CI, CI=true, it purges it first). NO_BUILD=1 tests the packages
# already in build/pkg.
# Ends with "N passed, N failed"; exits 0 only when nothing failed.

set -u
[ "$(id -u)" -eq 0 ] || exec sudo -E bash "$0" "$@"
cd "$(dirname "$0")/../.." || exit 2
VERSION=$(cat VERSION)
PKG=build/pkg
PACKAGES="daffid libdaffi0 libdaffi-dev"
UNIT=/lib/systemd/system/daffid.service
CONFD=/etc/daffid/conf.d
RUNDIR=/run/daffid

passed=0
failed=0
WORK=$(mktemp -d /tmp/daffid-pkgtest.XXXXXX)
chmod 0755 "$WORK"
OUT=$WORK/out
installed=0
daemon_pid=""
listener_pid=""
make_installed=0
tpl_installed=0
STRAY=conf.d/20-hello.ini
stray_made=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }

# check DESCRIPTION COMMAND...: runs COMMAND; its output is shown only on failure.
check() {
    local what=$1
    shift
    if "$@" >"$OUT" 2>&1; then
        ok "$what"
    else
        not_ok "$what"
        sed 's/^/    /' "$OUT" | tail -n 40
    fi
}

# same OUTPUT COMMAND...: COMMAND's standard output is exactly OUTPUT.
same() {
    local want=$1 got
    shift
    got=$("$@" 2>&1)
    [ "$got" = "$want" ] || { echo "expected '$want', got '$got'"; return 1; }
}

# as_unit COMMAND...: runs COMMAND as daffid.service's User= and Group=, with the
# environment systemd gives it (RUNTIME_DIRECTORY, NOTIFY_SOCKET, nothing of ours).
as_unit() {
    setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        RUNTIME_DIRECTORY="$RUNDIR" NOTIFY_SOCKET="$WORK/notify.sock" "$@"
}

# unit_lines KEY: the values of KEY= in the installed unit, one per line.
unit_lines() { sed -n "s/^$1=//p" "$UNIT"; }

# run_exec_lines KEY: runs each KEY= line of the unit in order, $MAINPID replaced,
# stopping at the first that fails, as systemd does for ExecStartPre/ExecReload.
run_exec_lines() {
    local line
    while IFS= read -r line; do
        line=${line//\$MAINPID/$daemon_pid}
        echo "+ $line"
        # word splitting is what systemd does to these lines (no quotes used in them)
        # shellcheck disable=SC2086
        as_unit $line </dev/null || return 1
    done < <(unit_lines "$1")
}

cleanup() {
    [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null && {
        kill -TERM "$daemon_pid"
        sleep 1
        kill -KILL "$daemon_pid" 2>/dev/null
    }
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null
    rm -f "$CONFD/50-greet.ini" "$CONFD/60-broken.ini"
    rm -f /usr/local/lib/daffid/plugins/greet.so
    [ "$stray_made" = 1 ] && rm -f "$STRAY"
    [ "$tpl_installed" = 1 ] && make -s -C "$WORK/tpl" uninstall >/dev/null 2>&1
    rmdir /usr/local/lib/daffid/plugins /usr/local/lib/daffid 2>/dev/null
    if [ "$make_installed" = 1 ]; then
        echo "# cleanup: make uninstall (PREFIX=/usr/local)"
        make -s uninstall >/dev/null 2>&1
        ldconfig
    fi
    if [ "$installed" = 1 ]; then
        echo "# cleanup: purging $PACKAGES"
        # shellcheck disable=SC2086
        dpkg --purge $PACKAGES >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Packages already here are a person's to keep, except in CI, where they can only be
# left by a run of this test that was killed before its trap ran.
for p in $PACKAGES; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$\|config-files\|half'; then
        if [ "${CI:-}" = true ]; then
            echo "# CI: purging $PACKAGES left by an earlier run"
            # shellcheck disable=SC2086
            dpkg --purge $PACKAGES
            break
        fi
        echo "test_deb: $p is installed on this machine; this test installs and purges"
        echo "test_deb: the packages itself. Remove it first: dpkg --purge $PACKAGES"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

# ---- 1. build and lint -------------------------------------------------------------
if [ "${NO_BUILD:-0}" != 1 ]; then
    # what the README tour leaves behind: an ini git does not track, whose .so is not
    # built by make; it must reach neither package nor make install
    if [ ! -e "$STRAY" ]; then
        printf '[plugin]\nname = hello\npath = hello.so\n' >"$STRAY"
        stray_made=1
    fi
    check "$STRAY is not tracked by git" sh -c "! git ls-files --error-unmatch $STRAY"
    check "make deb builds the packages" make deb
    check "make rpm builds the packages" make rpm
fi
DEBS="./$PKG/daffid_${VERSION}_*.deb ./$PKG/libdaffi0_${VERSION}_*.deb ./$PKG/libdaffi-dev_${VERSION}_*.deb"
# shellcheck disable=SC2086
if ! ls $DEBS >/dev/null 2>&1; then
    not_ok "the three .deb files of version $VERSION are in $PKG"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "the three .deb files of version $VERSION are in $PKG"

lintian_clean() {
    # shellcheck disable=SC2086
    lintian -I --pedantic --show-overrides $DEBS >"$WORK/lintian" 2>&1
    cat "$WORK/lintian"
    ! grep -E '^(E|W): |unused-override|mismatched-override' "$WORK/lintian"
}
check "lintian: no error, no warning, every override used" lintian_clean

if [ "${NO_BUILD:-0}" != 1 ]; then
    no_stray() {
        local l
        # shellcheck disable=SC2086
        l=$(for d in $DEBS; do dpkg-deb -c "$d"; done; rpm -qlp $PKG/*-$VERSION-1.*.rpm)
        ! echo "$l" | grep "20-hello.ini"
    }
    check "the untracked $STRAY reaches no .deb and no .rpm" no_stray
fi

# debian/copyright's BSD-2-Clause paragraph is the LICENSE file's text
license_agrees() {
    sed -n '/^Redistribution/,$p' LICENSE >"$WORK/license.txt"
    awk '/^License: BSD-2-Clause$/ && ++n == 2 { on = 1; next } on' \
        packaging/debian/copyright | sed -e 's/^ //' -e 's/^\.$//' >"$WORK/copyright.txt"
    grep -qx 'Copyright (c) 2026 the daffid authors' LICENSE &&
        grep -qx 'Copyright: 2026 the daffid authors' packaging/debian/copyright &&
        diff "$WORK/license.txt" "$WORK/copyright.txt"
}
check "debian/copyright: BSD-2-Clause with LICENSE's text and holder" license_agrees

# ---- 1b. make install ---------------------------------------------------------------
stage_layout() {
    local s=$WORK/stage f rc=0
    [ -e /etc/daffid ] && { echo "/etc/daffid exists before the test"; return 1; }
    make install DESTDIR="$s" PREFIX=/usr/local >"$WORK/stage.log" 2>&1 ||
        { tail -20 "$WORK/stage.log"; return 1; }
    [ -e /etc/daffid ] && { echo "make install with DESTDIR wrote /etc/daffid"; return 1; }
    [ -e "$s/etc" ] && { echo "wrote $s/etc:"; find "$s/etc"; return 1; }
    for f in sbin/daffid bin/daffictl etc/daffid/conf.d/00-daffid.ini \
        etc/daffid/conf.d/10-calc.ini lib/daffid/plugins/calc.so lib/libdaffi.so.0 \
        lib/pkgconfig/daffi.pc include/daffi/plugin.h lib/systemd/system/daffid.service \
        share/man/man3/daffi_arg.3 share/man/man3/daffi_arg_int.3 share/man/man8/daffid.8 \
        share/bash-completion/completions/daffictl share/bash-completion/completions/daffid \
        share/daffi/templates/plugin/hello.c share/daffi/templates/plugin/Makefile \
        share/doc/daffid/README.md share/doc/daffid/examples/callers/sync_caller.c; do
        [ -e "$s/usr/local/$f" ] || { echo "missing: $s/usr/local/$f"; rc=1; }
    done
    [ -e "$s/usr/local/etc/daffid/conf.d/20-hello.ini" ] && { echo "installed $STRAY"; rc=1; }
    grep -qx 'ExecStart=/usr/local/sbin/daffid -c /usr/local/etc/daffid/conf.d' \
        "$s/usr/local/lib/systemd/system/daffid.service" || { echo "unit: wrong paths"; rc=1; }
    "$s/usr/local/sbin/daffid" --help | grep -q '(default /usr/local/etc/daffid/conf.d)' ||
        { echo "daffid's default -c is not /usr/local/etc/daffid/conf.d"; rc=1; }
    grep -qx 'confdir=/usr/local/etc/daffid/conf.d' "$s/usr/local/lib/pkgconfig/daffi.pc" ||
        { echo "daffi.pc: wrong confdir"; rc=1; }
    [ "$(readlink "$s/usr/local/share/man/man3/daffi_arg_int.3")" = daffi_arg.3 ] ||
        { echo "man3: daffi_arg_int.3 is not a link to daffi_arg.3"; rc=1; }
    return $rc
}
check "make install DESTDIR=... PREFIX=/usr/local: all under DESTDIR, SYSCONFDIR /usr/local/etc/daffid" \
    stage_layout

real_make_install() {
    make_installed=1
    make install >"$WORK/make-install.log" 2>&1 || { tail -20 "$WORK/make-install.log"; return 1; }
    [ ! -e /etc/daffid ] || { echo "make install (PREFIX=/usr/local) wrote /etc/daffid"; return 1; }
    [ -f /usr/local/etc/daffid/conf.d/00-daffid.ini ]
}
check "make install (PREFIX=/usr/local) writes /usr/local/etc/daffid, not /etc/daffid" \
    real_make_install
[ "$stray_made" = 1 ] && rm -f "$STRAY" && stray_made=0

# ---- 2. install, files, user ------------------------------------------------------
installed=1
# after that make install: apt-get must meet no conffile prompt (stdin is closed, so
# a prompt fails the install), and the conffiles are the package's own
apt_install() {
    local rc=0
    # shellcheck disable=SC2086
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $DEBS </dev/null \
        >"$WORK/apt.log" 2>&1 || rc=1
    cat "$WORK/apt.log"
    [ "$rc" = 0 ] && ! grep -q 'Configuration file' "$WORK/apt.log"
}
check "apt-get installs the packages after a make install: no conffile prompt" apt_install
check "the installed conffiles are the package's (dpkg --verify daffid)" \
    sh -c 'v=$(dpkg --verify daffid); echo "$v"; [ -z "$v" ]'
make_uninstall() {
    make uninstall >"$WORK/make-uninstall.log" 2>&1 || { tail "$WORK/make-uninstall.log"; return 1; }
    make_installed=0
    ldconfig
    local left
    left=$(find /usr/local -name '*daffi*' 2>/dev/null)
    [ -z "$left" ] || { echo "left by make uninstall: $left"; return 1; }
}
check "make uninstall removes what make install wrote" make_uninstall

files_present() {
    local f rc=0
    for f in /usr/sbin/daffid /usr/bin/daffictl \
        $CONFD/00-daffid.ini $CONFD/10-calc.ini $CONFD/10-echo.ini $CONFD/10-fib.ini \
        /usr/lib/daffid/plugins/calc.so /usr/lib/daffid/plugins/echo.so \
        /usr/lib/daffid/plugins/fib.so $UNIT /usr/lib/sysusers.d/daffid.conf \
        /usr/lib/tmpfiles.d/daffid.conf /usr/share/man/man8/daffid.8.gz \
        /usr/share/man/man1/daffictl.1.gz /usr/share/man/man5/daffid.ini.5.gz \
        /usr/include/daffi/plugin.h /usr/include/daffi/client.h \
        /usr/include/daffi/rpc.h /usr/include/daffi/errors.h \
        /usr/share/doc/daffid/README.md.gz /usr/share/doc/daffid/PROTOCOL.md.gz \
        /usr/share/doc/libdaffi-dev/PROTOCOL.md.gz /usr/share/doc/libdaffi-dev/CLIENT.md.gz \
        /usr/share/doc/libdaffi-dev/examples/plugins/calc/calc.c \
        /usr/share/doc/libdaffi-dev/examples/plugins/echo/10-echo.ini \
        /usr/share/doc/libdaffi-dev/examples/callers/sync_caller.c \
        /usr/share/doc/libdaffi-dev/examples/callers/async_caller.c \
        /usr/share/man/man3/daffi_plugin.3.gz /usr/share/man/man3/daffi_client.3.gz \
        /usr/share/daffi/templates/plugin/hello.c /usr/share/daffi/templates/plugin/hello.ini \
        /usr/share/daffi/templates/plugin/Makefile \
        /usr/share/bash-completion/completions/daffictl \
        /usr/share/bash-completion/completions/daffid; do
        [ -e "$f" ] || { echo "missing: $f"; rc=1; }
    done
    local multiarch
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    for f in libdaffi.so.0 libdaffi.so libdaffi.a pkgconfig/daffi.pc; do
        [ -e "/usr/lib/$multiarch/$f" ] || { echo "missing: /usr/lib/$multiarch/$f"; rc=1; }
    done
    return $rc
}
check "the files are installed where the layout says" files_present

# every name of a page's NAME line opens it: man daffi_arg_int is daffi_arg(3)
man3_links() {
    local f=/usr/share/man/man3/daffi_arg_int.3.gz
    [ -L "$f" ] && [ "$(readlink -f "$f")" = /usr/share/man/man3/daffi_arg.3.gz ] &&
        zcat "$f" | grep -q '^daffi_arg, daffi_argc, daffi_arg_int'
}
check "man3: daffi_arg_int(3) is daffi_arg(3), from libdaffi-dev" man3_links
check "the copyright file says BSD-2-Clause" \
    grep -qx 'License: BSD-2-Clause' /usr/share/doc/daffid/copyright

conffiles_listed() {
    local c f
    c=$(dpkg-query -W -f='${Conffiles}\n' daffid)
    echo "$c"
    for f in 00-daffid.ini 10-calc.ini 10-echo.ini 10-fib.ini; do
        echo "$c" | grep -q " $CONFD/$f " || return 1
    done
}
check "the inis in $CONFD are conffiles" conffiles_listed
check "daffid -v prints the version of VERSION" \
    sh -c "/usr/sbin/daffid -v | grep -q '^daffid $VERSION '"
check "pkg-config daffi: version $VERSION" same "$VERSION" pkg-config --modversion daffi
check "pkg-config daffi: plugindir is /usr/lib/daffid/plugins" \
    same /usr/lib/daffid/plugins pkg-config --variable=plugindir daffi
check "pkg-config daffi: siteplugindir /usr/local/lib/daffid/plugins, confdir $CONFD" \
    same "/usr/local/lib/daffid/plugins $CONFD /usr/share/daffi/templates" \
    sh -c 'echo $(pkg-config --variable=siteplugindir daffi) \
        $(pkg-config --variable=confdir daffi) $(pkg-config --variable=templatedir daffi)'

# complete LINE: what the installed bash completion offers for LINE (up to the end)
complete_line() {
    bash -c 'source /usr/share/bash-completion/completions/"$1" || exit 3
        COMP_LINE=$2; COMP_POINT=${#2}
        read -r -a COMP_WORDS <<< "$2"
        [[ $2 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        "_$1"; echo "${COMPREPLY[*]}"' sh "${1%% *}" "$1"
}
check "bash completion: daffictl sta -> stats status" same "stats status" \
    complete_line "daffictl sta"
check "bash completion: daffid -o log.le -> log.level=" same "log.level=" \
    complete_line "daffid -o log.le"

installed_config() {
    local f=$CONFD/00-daffid.ini
    grep -qxF "plugin_dir = /usr/lib/daffid/plugins" $f &&
        grep -qxF "listen = tcp://127.0.0.1:6001, unix://$RUNDIR/daffid.sock" $f &&
        grep -qxF "socket = $RUNDIR/admin.sock" $f
}
check "00-daffid.ini: installed plugin_dir, listeners and admin socket" installed_config

system_user() {
    local pw gr uid
    pw=$(getent passwd daffid) && gr=$(getent group daffid) || return 1
    echo "$pw / $gr"
    uid=$(echo "$pw" | cut -d: -f3)
    [ "$uid" -lt 1000 ] && echo "$pw" | grep -q ':/nonexistent:/usr/sbin/nologin$'
}
check "the system user and group daffid exist (no home, no shell)" system_user

unit_user=$(unit_lines User)
unit_group=$(unit_lines Group)
check "the unit runs as daffid:daffid" same "daffid:daffid" echo "$unit_user:$unit_group"
check "the unit is Type=notify with RuntimeDirectory=daffid" \
    sh -c "grep -qx 'Type=notify' $UNIT && grep -qx 'RuntimeDirectory=daffid' $UNIT"
unit_verify() {
    command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skipped"; return 0; }
    systemd-analyze verify "$UNIT"
}
check "systemd-analyze verify accepts the unit" unit_verify

# postinst ran systemd-tmpfiles --create; make it here the same way when it could not
[ -d $RUNDIR ] || systemd-tmpfiles --create /usr/lib/tmpfiles.d/daffid.conf
check "$RUNDIR is daffid:daffid 750 (tmpfiles.d)" \
    same "daffid:daffid 750" stat -c '%U:%G %a' $RUNDIR

# ---- 3. the installed daffid, run as the unit runs it ------------------------------
python3 - "$WORK/notify.sock" "$WORK/notify.log" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.settimeout(120)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        log.write(data.decode(errors="replace").replace("\n", " ") + "\n")
EOF
listener_pid=$!
for _ in $(seq 50); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done

check "ExecStartPre (daffid -t) passes on the installed configuration" \
    run_exec_lines ExecStartPre

read -r -a start_cmd < <(unit_lines ExecStart)
# the installed configuration listens on 127.0.0.1:6001; if something else already
# does (a developer's daffid), this run moves the TCP listener and says so
ADDR=tcp://127.0.0.1:6001
if (exec 3<>/dev/tcp/127.0.0.1/6001) 2>/dev/null; then
    echo "# 127.0.0.1:6001 is taken on this machine: listening on 127.0.0.1:6097 instead"
    start_cmd+=(-o "server.listen=tcp://127.0.0.1:6097, unix://$RUNDIR/daffid.sock")
    ADDR=tcp://127.0.0.1:6097
fi
CTL=(daffictl -s "$ADDR")
# not through a function: $! must be daffid's own pid (setpriv and env exec)
setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    RUNTIME_DIRECTORY="$RUNDIR" NOTIFY_SOCKET="$WORK/notify.sock" \
    "${start_cmd[@]}" >"$WORK/daffid.log" 2>&1 &
daemon_pid=$!

wait_ready() {
    for _ in $(seq 100); do
        grep -q 'READY=1' "$WORK/notify.log" 2>/dev/null && return 0
        kill -0 "$daemon_pid" 2>/dev/null || { cat "$WORK/daffid.log"; return 1; }
        sleep 0.1
    done
    cat "$WORK/daffid.log"
    return 1
}
check "the daemon tells NOTIFY_SOCKET READY=1" wait_ready
check "it runs as the user daffid" same daffid ps -o user= -p "$daemon_pid"
check "installed daffictl: add(1, 2) = 3 over TCP" same 3 "${CTL[@]}" call add 1 2
check "installed daffictl: multiply(6, 7) = 42 over $RUNDIR/daffid.sock" \
    same 42 daffictl -s unix://$RUNDIR/daffid.sock call multiply 6 7
check "installed daffictl: fib(20) = 6765 (blocking pool)" same 6765 "${CTL[@]}" call fib 20
check "the admin socket answers daffictl status" \
    sh -c 'daffictl --json status | grep -q "\"status\":\"ok\""'
check "bash completion asks the server: daffictl -s ADDR call mul -> multiply" \
    same multiply complete_line "daffictl -s $ADDR call mul"
check "the admin socket is daffid:daffid 660" \
    same "daffid:daffid 660" stat -c '%U:%G %a' $RUNDIR/admin.sock
check "plugin copies live in RUNTIME_DIRECTORY ($RUNDIR)" \
    sh -c "ls -d $RUNDIR/daffid-plugins.* >/dev/null"

# Where /run is mounted noexec (Debian's initramfs-tools does), the copies in
# /run/daffid cannot be mapped; the unit's ExecPaths=/run/daffid gives the runtime
# directory a bind mount of its own without noexec. The same, by hand, in a private
# mount namespace (skipped where this machine refuses one).
exec_paths_needed() {
    grep -qx "ExecPaths=$RUNDIR" "$UNIT" || { echo "no ExecPaths=$RUNDIR in the unit"; return 1; }
    unshare -m true 2>/dev/null || { echo "unshare -m refused here: skipped"; return 0; }
    # shellcheck disable=SC2016
    unshare -m bash -c '
        d=$1 user=$2 group=$3
        check() {
            setpriv --reuid="$user" --regid="$group" --init-groups env -i \
                RUNTIME_DIRECTORY="$d/run" /usr/sbin/daffid -t -c /etc/daffid/conf.d
        }
        mount -t tmpfs -o noexec,nosuid,nodev tmpfs "$d" &&
            install -d -o "$user" -g "$group" -m 0750 "$d/run" || exit 1
        if check; then echo "plugins loaded from a noexec directory?"; exit 1; fi
        mount --bind "$d/run" "$d/run" && mount -o remount,bind,exec "$d/run" || exit 1
        check' sh "$WORK/noexec" "$unit_user" "$unit_group"
}
mkdir -p "$WORK/noexec"
check "noexec /run: daffid -t fails; with the runtime dir remounted exec (ExecPaths=) it passes" \
    exec_paths_needed

# ---- 4. a plugin and a caller built against the installed SDK ----------------------
cat >"$WORK/greet.c" <<'EOF'
/* greet.c - an out-of-tree plugin: greet(name) returns "hello NAME". */
#include <daffi/plugin.h>

static daffi_status greet(daffi_call *call)
{
    const char *name;
    size_t len;
    if (daffi_arg_str(call, 0, &name, &len) == -1) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "argument 1 must be a string");
        return DAFFI_DONE;
    }
    msgpack_packer *pk = daffi_reply_packer(call);
    msgpack_pack_str(pk, 6 + len);
    msgpack_pack_str_body(pk, "hello ", 6);
    msgpack_pack_str_body(pk, name, len);
    return DAFFI_DONE;
}

static const daffi_callback_def callbacks[] = {
    {"greet", greet, 0, "greets its argument"},
    {NULL, NULL, 0, NULL},
};

DAFFI_PLUGIN("greet", "1.0.0", NULL, NULL, callbacks);
EOF
check "an out-of-tree plugin builds with cc -shared -fPIC \$(pkg-config --cflags daffi)" \
    sh -c "cd $WORK && cc -shared -fPIC \$(pkg-config --cflags daffi) greet.c -o greet.so"
# as the README does it by hand: into the site plugin directory, by absolute path
siteplugindir=$(pkg-config --variable=siteplugindir daffi)
install -D -m 0755 "$WORK/greet.so" "$siteplugindir/greet.so"
printf '[plugin]\nname = greet\npath = %s/greet.so\n' "$siteplugindir" |
    tee "$CONFD/50-greet.ini" >/dev/null
check "ExecReload (daffid -t, then SIGHUP) passes with the new ini" run_exec_lines ExecReload

# wait_answer WANT CALLBACK ARGS...: the installed daffictl's answer becomes WANT
# within 5 s (the reload that loads CALLBACK is under way).
wait_answer() {
    local want=$1
    shift
    for _ in $(seq 50); do
        [ "$("${CTL[@]}" call "$@" 2>/dev/null)" = "$want" ] && return 0
        sleep 0.1
    done
    "${CTL[@]}" call "$@"
    return 1
}
check "the installed daffid serves the new plugin: greet(world)" \
    wait_answer '"hello world"' greet world
check "the daemon told NOTIFY_SOCKET RELOADING=1 for the SIGHUP" \
    grep -q 'RELOADING=1' "$WORK/notify.log"

# the SDK's plugin skeleton, as a plugin author uses it: copy, make, make install
tpl_build() {
    cp -R "$(pkg-config --variable=templatedir daffi)/plugin" "$WORK/tpl" &&
        make -C "$WORK/tpl"
}
check "the installed plugin template builds as it is (make, pkg-config daffi)" tpl_build
tpl_install() {
    tpl_installed=1
    make -C "$WORK/tpl" install &&
        [ -f /usr/local/lib/daffid/plugins/hello.so ] &&
        grep -qx 'path = /usr/local/lib/daffid/plugins/hello.so' "$CONFD/20-hello.ini"
}
check "its make install: hello.so into /usr/local/lib/daffid/plugins, $CONFD/20-hello.ini" \
    tpl_install
check "ExecReload passes with the template's ini" run_exec_lines ExecReload
check "the installed daffid serves the template plugin: hello(world)" \
    wait_answer '"hello world"' hello world
site_kept() {
    local before after
    before=$(md5sum /usr/local/lib/daffid/plugins/hello.so "$CONFD/20-hello.ini")
    # shellcheck disable=SC2086
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
        ./$PKG/daffid_${VERSION}_*.deb </dev/null >"$WORK/reinstall.log" 2>&1 ||
        { tail "$WORK/reinstall.log"; return 1; }
    after=$(md5sum /usr/local/lib/daffid/plugins/hello.so "$CONFD/20-hello.ini")
    [ "$before" = "$after" ] && same '"hello again"' "${CTL[@]}" call hello again
}
check "reinstalling the package leaves the site plugin and its ini alone" site_kept

cp sdk/examples/sync_caller.c "$WORK/"
check "a caller links the installed libdaffi (pkg-config --cflags --libs daffi)" \
    sh -c "cd $WORK && cc sync_caller.c \$(pkg-config --cflags --libs daffi) -o sync_caller"
check "the caller uses the installed libdaffi.so.0" \
    sh -c "ldd $WORK/sync_caller | grep -Eq 'libdaffi.so.0 => (/usr)?/lib/'"
check "the caller's calls get the answers it expects" \
    env DAFFI_ADDRESS="$ADDR" "$WORK/sync_caller"

# ---- 5. a broken configuration leaves the daemon untouched ------------------------
printf '[plugin]\nname = broken\npath = no-such-plugin.so\n' |
    tee "$CONFD/60-broken.ini" >/dev/null
reload_refused() {
    local rc=0
    run_exec_lines ExecReload >"$WORK/reload.log" 2>&1 || rc=1
    cat "$WORK/reload.log"
    [ "$rc" = 1 ] && ! grep -q '^+ /bin/kill' "$WORK/reload.log"
}
check "ExecReload fails at daffid -t with a broken ini (no SIGHUP sent)" reload_refused
check "the check's error names the broken file" grep -q '60-broken.ini' "$WORK/reload.log"
check "the daemon is still running" kill -0 "$daemon_pid"
still_serves() {
    same 5 "${CTL[@]}" call add 2 3 && same '"hello again"' "${CTL[@]}" call greet again
}
check "it still serves add and greet" still_serves
rm -f "$CONFD/60-broken.ini"

# ---- 6. stop, remove, purge -------------------------------------------------------
stop_daemon() {
    kill -TERM "$daemon_pid"
    local rc
    wait "$daemon_pid"
    rc=$?
    daemon_pid=""
    [ "$rc" = 0 ] || { echo "exit status $rc"; tail -5 "$WORK/daffid.log"; return 1; }
}
check "SIGTERM: the daemon drains and exits 0" stop_daemon
check "it told NOTIFY_SOCKET STOPPING=1" grep -q 'STOPPING=1' "$WORK/notify.log"
check "it leaves $RUNDIR empty (sockets and plugin copies removed)" \
    sh -c "[ -z \"\$(ls -A $RUNDIR)\" ] || { ls -la $RUNDIR; exit 1; }"
kill "$listener_pid" 2>/dev/null
listener_pid=""

rm -f "$CONFD/50-greet.ini" "$siteplugindir/greet.so"
check "the template's make uninstall removes its plugin and ini" \
    sh -c "make -C $WORK/tpl uninstall && [ ! -e $CONFD/20-hello.ini ] &&
           [ ! -e /usr/local/lib/daffid/plugins/hello.so ]"
tpl_installed=0
rmdir /usr/local/lib/daffid/plugins /usr/local/lib/daffid 2>/dev/null
check "dpkg -r daffid removes the package" dpkg -r daffid
removed_keeps_config() {
    [ ! -e /usr/sbin/daffid ] && [ ! -e /usr/lib/daffid ] && [ ! -e $RUNDIR ] &&
        [ -f $CONFD/00-daffid.ini ] &&
        dpkg-query -W -f='${Status}\n' daffid | grep -qx 'deinstall ok config-files'
}
check "after remove: the programs are gone, the configuration is kept" removed_keeps_config

# shellcheck disable=SC2086
check "dpkg --purge removes the three packages" dpkg --purge $PACKAGES
installed=0
nothing_left() {
    local f p rc=0 multiarch
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    for f in /etc/daffid /usr/sbin/daffid /usr/bin/daffictl /usr/lib/daffid $UNIT \
        /usr/lib/sysusers.d/daffid.conf /usr/lib/tmpfiles.d/daffid.conf $RUNDIR \
        /usr/include/daffi /usr/lib/$multiarch/libdaffi.so.0 /usr/lib/$multiarch/libdaffi.a \
        /usr/lib/$multiarch/pkgconfig/daffi.pc /usr/share/man/man8/daffid.8.gz \
        /usr/share/doc/daffid /etc/systemd/system/multi-user.target.wants/daffid.service \
        /var/lib/systemd/deb-systemd-helper-enabled/daffid.service.dsh-also; do
        [ -e "$f" ] || [ -L "$f" ] && { echo "left: $f"; rc=1; }
    done
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$\|config-files\|half' &&
            { echo "still on the system for dpkg: $p"; rc=1; }
    done
    return $rc
}
check "after purge: no file, configuration or enablement link is left" nothing_left
check "after purge: the system user daffid is kept (Debian practice for system users)" \
    getent passwd daffid

# ---- 7. the rpm packages ----------------------------------------------------------
RPM=$PKG/daffid-$VERSION-1.$(uname -m).rpm
RPM_LIB=$PKG/libdaffi0-$VERSION-1.$(uname -m).rpm
RPM_DEVEL=$PKG/daffid-devel-$VERSION-1.$(uname -m).rpm
RPM_DEBUG=$PKG/daffid-debuginfo-$VERSION-1.$(uname -m).rpm
rpm_lists() {
    local l f rc=0
    l=$(rpm -qlp "$RPM") || return 1
    for f in /usr/sbin/daffid /usr/bin/daffictl $CONFD/00-daffid.ini $CONFD/10-calc.ini \
        /usr/lib/daffid/plugins/calc.so /usr/lib/daffid/plugins/echo.so \
        /usr/lib/daffid/plugins/fib.so /usr/lib/systemd/system/daffid.service \
        /usr/lib/sysusers.d/daffid.conf /usr/lib/tmpfiles.d/daffid.conf $RUNDIR \
        /usr/share/doc/daffid/README.md /usr/share/doc/daffid/PROTOCOL.md \
        /usr/share/bash-completion/completions/daffictl \
        /usr/share/bash-completion/completions/daffid; do
        echo "$l" | grep -qx "$f" || { echo "$RPM lacks $f"; rc=1; }
    done
    echo "$l" | grep -q '/man8/daffid\.8' || { echo "$RPM lacks daffid(8)"; rc=1; }
    echo "$l" | grep -q '/LICENSE$' || { echo "$RPM lacks the LICENSE"; rc=1; }
    echo "$l" | grep -q 'libdaffi\.so' && { echo "$RPM holds libdaffi (libdaffi0's)"; rc=1; }
    l=$(rpm -qlp "$RPM_LIB") || return 1
    echo "$l" | grep -q '/libdaffi\.so\.0$' || { echo "$RPM_LIB lacks libdaffi.so.0"; rc=1; }
    l=$(rpm -qlp "$RPM_DEVEL") || return 1
    for f in /usr/include/daffi/plugin.h /usr/include/daffi/client.h \
        /usr/share/daffi/templates/plugin/hello.c /usr/share/doc/daffid-devel/CLIENT.md \
        /usr/share/doc/daffid-devel/PROTOCOL.md \
        /usr/share/doc/daffid-devel/examples/plugins/calc/calc.c \
        /usr/share/doc/daffid-devel/examples/callers/sync_caller.c; do
        echo "$l" | grep -qx "$f" || { echo "$RPM_DEVEL lacks $f"; rc=1; }
    done
    echo "$l" | grep -q '/man3/daffi_rpc\.3' || { echo "$RPM_DEVEL lacks daffi_rpc(3)"; rc=1; }
    for f in 'libdaffi\.so' 'libdaffi\.a' 'pkgconfig/daffi\.pc'; do
        echo "$l" | grep -q "/$f\$" || { echo "$RPM_DEVEL lacks $f"; rc=1; }
    done
    return $rc
}
check "rpm -qlp: daffid and daffid-devel hold the layout's files" rpm_lists
check "rpm -qcp: the inis are %config" \
    sh -c "[ \"\$(rpm -qcp $RPM | grep -c '^$CONFD/.*\.ini$')\" = 4 ]"
rpm_scripts() {
    local s
    s=$(rpm -qp --scripts "$RPM") || return 1
    echo "$s"
    echo "$s" | grep -q 'useradd -r -g daffid' &&
        echo "$s" | grep -q 'groupadd -r daffid' &&
        echo "$s" | grep -q 'systemd-tmpfiles --create' &&
        echo "$s" | grep -q 'daffid.service'
}
check "rpm -qp --scripts: the user, /run/daffid and the unit are handled" rpm_scripts
check "rpm: version $VERSION from VERSION" \
    same "$VERSION" rpm -qp --qf '%{VERSION}' "$RPM"
check "rpm: daffid and daffid-devel require this very libdaffi0" \
    sh -c "for p in $RPM $RPM_DEVEL; do rpm -qp --requires \$p |
        grep -qx 'libdaffi0(x86-64) = $VERSION-1\|libdaffi0 = $VERSION-1' || exit 1; done"
check "rpm: License BSD-2-Clause, a URL, a %changelog entry for $VERSION-1" \
    sh -c "[ \"\$(rpm -qp --qf '%{LICENSE}' $RPM)\" = BSD-2-Clause ] &&
        rpm -qp --qf '%{URL}' $RPM | grep -q '^https://' &&
        rpm -qp --changelog $RPM | head -1 | grep -q ' - $VERSION-1\$'"
check "rpm: libdaffi.so.0.* is mode 0755" \
    sh -c "rpm -qlvp $RPM_LIB | grep -q '^-rwxr-xr-x .*/libdaffi\.so\.0\.'"
rpm_debuginfo() {
    local x=$WORK/rpmx
    rpm -qlp "$RPM_DEBUG" | grep -q '^/usr/lib/debug/usr/sbin/daffid-.*\.debug$' ||
        { echo "$RPM_DEBUG lacks daffid's .debug"; return 1; }
    mkdir -p "$x" && (cd "$x" && rpm2cpio "$OLDPWD/$RPM" | cpio -idm --quiet) || return 1
    readelf -S "$x/usr/sbin/daffid" | grep -q '\.gnu_debuglink' &&
        ! readelf -S "$x/usr/sbin/daffid" | grep -q '\.debug_info' &&
        ! readelf -S "$x/usr/sbin/daffid" | grep -q ' \.symtab'
}
check "rpm: the binaries are stripped, their debug information is in daffid-debuginfo" \
    rpm_debuginfo
rpm_lint() {
    command -v rpmlint >/dev/null || { echo "rpmlint is not installed (sh mk/deps.sh package)"; return 1; }
    rpmlint -r packaging/rpm/daffid.rpmlintrc "$RPM" "$RPM_LIB" "$RPM_DEVEL" >"$WORK/rpmlint" 2>&1
    grep -v 'manpage-not-compressed' "$WORK/rpmlint"
    grep -q ' 0 errors,' "$WORK/rpmlint" && ! grep -q ': E: ' "$WORK/rpmlint"
}
check "rpmlint: no error in daffid, libdaffi0, daffid-devel (daffid.rpmlintrc says why each filter)" \
    rpm_lint

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
