# daffid - one entry point: all, run, test, bench, asan, deps, clean.
# Sources are found by wildcard, so a new file in a known folder needs no edit here:
#   sdk/src/*.c                  -> libdaffi (static + shared), the codec and client
#   sdk/daffictl/*.c             -> daffictl (all but daffictl.c also in libdaffictl.a,
#                                   which the unit tests and fuzz targets link)
#   server/*.c (but main.c)      -> libdfd.a, linked into daffid and the tests
#   plugins/NAME/*.c             -> build/plugins/NAME.so
#   tests/fixtures/plugins/X.c   -> build/tests/fixtures/X.so
#   tests/fixtures/plugins/X.cc  -> build/tests/fixtures/X.so (g++: a C++ plugin)
#   tests/unit/test_X.c          -> build/tests/unit/test_X        (cmocka)
#   tests/integration/test_X.c   -> build/tests/integration/test_X (cmocka + tests/support)
#   tests/bench/bench_X.c        -> build/tests/bench/bench_X      (+ tests/bench/*.c, tests/support)

VERSION   := $(shell cat VERSION)
BUILD     ?= build
CC        ?= cc
OPT       ?= -O2
SAN       ?=
# libdaffi needs libevent, msgpack-c and OpenSSL (what daffi.pc requires); daffid and
# daffictl add libevent_extra (evhttp: the metrics listener), libevent_pthreads (loop 0
# of a NATS role: nats-io.h), inih, jansson and libnats
# (NATS: docs/NATS.md).
SDK_PKGS  := libevent_core msgpack openssl
PKGS      := $(SDK_PKGS) libevent_extra libevent_pthreads inih jansson libnats
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SDK_LIBS   := $(shell pkg-config --libs $(SDK_PKGS) 2>/dev/null) -ldl -lpthread -lm

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -fPIC \
              -fvisibility=default -DDAFFID_VERSION='"$(VERSION)"' \
              -Isdk/include -Isdk/src -Iserver $(PKG_CFLAGS) $(SAN) $(CFLAGS)
LDFLAGS_ALL := $(SAN) $(LDFLAGS)
LIBS_ALL    := $(PKG_LIBS) -ldl -lpthread -lm

SDK_SRC    := $(wildcard sdk/src/*.c)
SDK_OBJ    := $(SDK_SRC:%.c=$(BUILD)/obj/%.o)
CTL_SRC    := $(wildcard sdk/daffictl/*.c)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/obj/%.o)
CTL_MAIN   := $(BUILD)/obj/sdk/daffictl/daffictl.o
CTL_LIB    := $(BUILD)/libdaffictl.a
SRV_SRC    := $(filter-out server/main.c,$(wildcard server/*.c))
SRV_OBJ    := $(SRV_SRC:%.c=$(BUILD)/obj/%.o)
PLUGINS    := $(notdir $(wildcard plugins/*))
PLUGIN_SO  := $(PLUGINS:%=$(BUILD)/plugins/%.so)
FIXTURE_SO := $(patsubst tests/fixtures/plugins/%.c,$(BUILD)/tests/fixtures/%.so,$(wildcard tests/fixtures/plugins/*.c)) \
              $(patsubst tests/fixtures/plugins/%.cc,$(BUILD)/tests/fixtures/%.so,$(wildcard tests/fixtures/plugins/*.cc))
SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/support/*.c))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(wildcard tests/bench/bench_*.c))
# the bench's own helpers (tests/bench/*.c but bench_*.c), linked into every bench_X
BENCH_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out tests/bench/bench_%.c,$(wildcard tests/bench/*.c)))

# pkg-config files (sdk/daffi.pc.in): $(BUILD)/daffi.pc describes an installed libdaffi
# (PREFIX, LIBDIR, INCLUDEDIR, PLUGINDIR); $(BUILD)/daffi-uninstalled.pc this tree,
# which pkg-config prefers when PKG_CONFIG_PATH=$(BUILD). sdk/examples/X.c ->
# $(BUILD)/examples/X, built with pkg-config alone, as a user's program is.
# SYSCONFDIR follows the prefix as autotools and meson have it (PREFIX/etc/daffid;
# meson's exception: /etc/daffid for PREFIX=/usr); the packages pass /etc/daffid.
# It is compiled into daffid as the default -c directory (SYSCONFDIR/conf.d).
# SITEPLUGINDIR is where a site's own plugins go: outside every package's files, so
# that no upgrade touches them (daffi.pc's siteplugindir).
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PLUGINDIR  ?= $(LIBDIR)/daffid/plugins
DATADIR    ?= $(PREFIX)/share
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)/daffid
SITEPLUGINDIR ?= /usr/local/lib/daffid/plugins
PC_FILES   := $(BUILD)/daffi.pc $(BUILD)/daffi-uninstalled.pc
EXAMPLES   := $(patsubst sdk/examples/%.c,$(BUILD)/examples/%,$(wildcard sdk/examples/*.c))

.PHONY: all run test test-only bench asan tsan fuzz fuzz-bins deps clean check-config
all: $(BUILD)/daffid $(BUILD)/daffictl $(BUILD)/libdaffi.a $(BUILD)/libdaffi.so $(PLUGIN_SO) \
     $(PC_FILES) $(EXAMPLES)

deps:
	@sh mk/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/daffid -c conf.d

test: deps
	@$(MAKE) --no-print-directory test-only

# Builds everything the suite needs, then runs it (tests/run.sh prints the totals;
# it runs the Python package's pytest suite, python/tests, last).
test-only: all $(FIXTURE_SO) $(UNIT_BIN) $(INTEG_BIN)
	@BUILD=$(BUILD) sh tests/run.sh

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  test-only

# The whole suite under ThreadSanitizer (data races between loops, the blocking pool
# and the main thread). TSAN_OPTIONS makes a race fail the test that hit it.
tsan: deps
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $${TSAN_OPTIONS:-}" \
	  $(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 \
	  SAN="-fsanitize=thread -fno-omit-frame-pointer" test-only

# make bench: tests/bench/run.sh (README "Benchmarks"); its comparisons need
# redis-server and strace, installed here, not for make test. Then the Python
# package's rows (python/bench/bench_echo.py: its client against a raw msgpack one).
bench:
	@sh mk/deps.sh bench
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) sh tests/bench/run.sh
	@PYTHONDONTWRITEBYTECODE=1 BUILD=$(BUILD) /usr/bin/python3 python/bench/bench_echo.py

# Fuzz targets (libFuzzer, clang): every tests/fuzz/fuzz_X.c is one target, linked
# against the whole server and SDK built with coverage and ASan + UBSan in build-fuzz/
# (a new target needs no edit here). `make fuzz` runs each for FUZZ_TIME seconds
# (tests/fuzz/run.sh; crashes and their inputs land in build-fuzz/fuzz/) and prints
# "fuzz: N passed, N failed", one per target. FUZZ_FILTER=NAME runs the matching ones.
FUZZ_TIME ?= 30
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: deps
	@sh mk/deps.sh fuzz
	@command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT=-O1 \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  fuzz-bins
	@BUILD=build-fuzz FUZZ_TIME=$(FUZZ_TIME) sh tests/fuzz/run.sh

fuzz-bins: $(FUZZ_BIN)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libdfd.a $(BUILD)/libdaffi.a $(CTL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer $< $(TEST_LINK) -o $@ $(LIBS_ALL)

check-config: all
	$(BUILD)/daffid -t -c conf.d

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libdaffi.a: $(SDK_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# --no-undefined: the shared library must need nothing beyond SDK_PKGS.
$(BUILD)/libdaffi.so: $(SDK_OBJ)
	$(CC) -shared -Wl,-soname,libdaffi.so.0 -Wl,--no-undefined $(LDFLAGS_ALL) $^ -o $@ $(SDK_LIBS)

# daffictl's modules without its main(): daffictl, the unit tests and the fuzz targets
# link them.
$(CTL_LIB): $(filter-out $(CTL_MAIN),$(CTL_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/daffi.pc: sdk/daffi.pc.in VERSION Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' \
	    -e 's|@SITEPLUGINDIR@|$(SITEPLUGINDIR)|' -e 's|@CONFDIR@|$(SYSCONFDIR)/conf.d|' \
	    -e 's|@TEMPLATEDIR@|$(DATADIR)/daffi/templates|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES@|msgpack libevent_core|' -e 's|@REQUIRES_PRIVATE@|openssl|' \
	    -e 's|@LIBS@|-L$${libdir} -ldaffi|' \
	    -e 's|@LIBS_PRIVATE@|-ldl -lpthread -lm|' $< > $@

# In the tree the static library is linked by path: a program runs without an
# installed libdaffi.so.0.
$(BUILD)/daffi-uninstalled.pc: sdk/daffi.pc.in VERSION Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$(CURDIR)/$(BUILD)|' \
	    -e 's|@INCLUDEDIR@|$(CURDIR)/sdk/include|' \
	    -e 's|@PLUGINDIR@|$(CURDIR)/$(BUILD)/plugins|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@SITEPLUGINDIR@|$(CURDIR)/$(BUILD)/plugins|' -e 's|@CONFDIR@|$(CURDIR)/conf.d|' \
	    -e 's|@TEMPLATEDIR@|$(CURDIR)/sdk/templates|' \
	    -e 's|@REQUIRES@|msgpack libevent_core openssl|' -e 's|@REQUIRES_PRIVATE@||' \
	    -e 's|@LIBS@|$${libdir}/libdaffi.a -ldl -lpthread -lm|' -e 's|@LIBS_PRIVATE@||' \
	    $< > $@

$(BUILD)/examples/%: sdk/examples/%.c $(BUILD)/libdaffi.a $(PC_FILES)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -g $(OPT) $(SAN) $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(BUILD) pkg-config --cflags --libs daffi)

$(BUILD)/libdfd.a: $(SRV_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# daffid's default configuration directory is SYSCONFDIR/conf.d: main.o is compiled
# with it and made again when it changes (the stamp is rewritten only then).
CONFDIR_STAMP := $(BUILD)/confdir.stamp
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(CONFDIR_STAMP) 2>/dev/null)" = "$(SYSCONFDIR)" ] || \
    printf '%s' "$(SYSCONFDIR)" > $(CONFDIR_STAMP); })
$(BUILD)/obj/server/main.o: CFLAGS_ALL += -DDAFFID_CONFDIR='"$(SYSCONFDIR)/conf.d"'
$(BUILD)/obj/server/main.o: $(CONFDIR_STAMP)
# daffictl looks there for the admin socket too (sdk/daffictl/admin_socket.c).
$(CTL_OBJ): CFLAGS_ALL += -DCTL_CONFDIR='"$(SYSCONFDIR)/conf.d"'
$(CTL_OBJ): $(CONFDIR_STAMP)

# -rdynamic: plugins resolve the SDK functions (daffi_reply_int, ...) against daffid.
$(BUILD)/daffid: $(BUILD)/obj/server/main.o $(BUILD)/libdfd.a $(BUILD)/libdaffi.a
	$(CC) $(LDFLAGS_ALL) -rdynamic -Wl,--whole-archive $(BUILD)/libdfd.a $(BUILD)/libdaffi.a \
	  -Wl,--no-whole-archive $< -o $@ $(LIBS_ALL)

$(BUILD)/daffictl: $(CTL_MAIN) $(CTL_LIB) $(BUILD)/libdaffi.a
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LIBS_ALL)

# A plugin is every .c file of its folder; it links nothing from the host.
# keep objects make would treat as intermediate (test and bench objects)
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) sdk/include/daffi/plugin.h sdk/include/daffi/errors.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared $(filter %.c,$^) -o $@ $(LDFLAGS_ALL)

$(BUILD)/tests/fixtures/%.so: tests/fixtures/plugins/%.c sdk/include/daffi/plugin.h sdk/include/daffi/errors.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared $< -o $@ $(LDFLAGS_ALL)

# A C++ fixture, built as C++ libraries often are (hidden visibility by default): the
# DAFFI_PLUGIN macro must export the descriptor with C linkage anyway.
$(BUILD)/tests/fixtures/%.so: tests/fixtures/plugins/%.cc $(wildcard sdk/include/daffi/*.h)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++11 -Wall -Wextra -Werror -g $(OPT) -fPIC -fvisibility=hidden -Isdk/include \
	  $(PKG_CFLAGS) $(SAN) $(CXXFLAGS) -shared $< -o $@ $(LDFLAGS_ALL)

TEST_LINK = -rdynamic -Wl,--whole-archive $(BUILD)/libdfd.a $(BUILD)/libdaffi.a $(CTL_LIB) \
            -Wl,--no-whole-archive

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libdfd.a $(BUILD)/libdaffi.a $(CTL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(TEST_LINK) -o $@ $(LIBS_ALL) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(SUPPORT_OBJ) $(BUILD)/libdaffi.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(SUPPORT_OBJ) $(BUILD)/libdaffi.a -o $@ $(LIBS_ALL) -lcmocka

$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(BENCH_OBJ) $(SUPPORT_OBJ) $(BUILD)/libdaffi.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(BENCH_OBJ) $(SUPPORT_OBJ) $(BUILD)/libdaffi.a -o $@ $(LIBS_ALL) -lcmocka

# ---- install, man pages and packages (packaging/, see README "Packages") ----
# `make install` lays daffid out as the packages do; debian/rules and the rpm spec call
# it with their own directories, DESTDIR staging every path. PREFIX, LIBDIR,
# INCLUDEDIR, PLUGINDIR, DATADIR, SYSCONFDIR and SITEPLUGINDIR are above (they also go
# into daffi.pc). The unit, sysusers.d and tmpfiles.d files name /run/daffid,
# systemd's RuntimeDirectory=daffid. `make uninstall` with the same variables removes
# what install wrote (the configuration too).
DESTDIR     ?=
SBINDIR     ?= $(PREFIX)/sbin
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/daffid
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
TEMPLATEDIR := $(DATADIR)/daffi/templates
RUNDIR      := /run/daffid
PKGDIR      := build/pkg
MAN_PAGES   := $(patsubst packaging/man/%.scd,$(BUILD)/man/%,$(wildcard packaging/man/*.scd))
# the example plugins' inis only: a stray ini in conf.d (the README tour's
# 20-hello.ini) is the user's, never installed
PLUGIN_INIS := $(wildcard $(PLUGINS:%=conf.d/10-%.ini))
TEMPLATES   := $(wildcard sdk/templates/plugin/*)
# bash completion: one file for daffictl and daffid (completions/daffid links to it)
COMPLETIONS := daffictl daffid

.PHONY: man install uninstall deb rpm
man: $(MAN_PAGES)

# packaging/man/NAME.SECTION.scd -> $(BUILD)/man/NAME.SECTION (roff), with the version
# and the installed paths filled in.
$(BUILD)/man/%: packaging/man/%.scd VERSION
	@command -v scdoc >/dev/null || { echo "man: scdoc is needed (sh mk/deps.sh)"; exit 1; }
	@mkdir -p $(dir $@)
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@PLUGINDIR@|$(PLUGINDIR)|g' -e 's|@RUNDIR@|$(RUNDIR)|g' \
	    -e 's|@DATADIR@|$(DATADIR)|g' -e 's|@SITEPLUGINDIR@|$(SITEPLUGINDIR)|g' \
	    $< | scdoc > $@

# daffi.pc and the man pages name installed paths: they are made again with this
# install's directories. The installed server ini is the tree's conf.d/00-daffid.ini
# with the installed plugin directory, the listeners under $(RUNDIR) and an admin
# socket (wherever the tree's path for it appears); the check fails the install when a
# line it rewrites changed shape in the tree.
install: all
	@$(MAKE) --no-print-directory -B $(BUILD)/daffi.pc $(MAN_PAGES)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCLUDEDIR)/daffi $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(SYSCONFDIR)/conf.d \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples/callers \
	  $(DESTDIR)$(TEMPLATEDIR)/plugin $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 $(BUILD)/daffid $(DESTDIR)$(SBINDIR)/daffid
	install -m 0755 $(BUILD)/daffictl $(DESTDIR)$(BINDIR)/daffictl
	install -m 0644 $(BUILD)/libdaffi.a $(DESTDIR)$(LIBDIR)/libdaffi.a
	install -m 0755 $(BUILD)/libdaffi.so $(DESTDIR)$(LIBDIR)/libdaffi.so.$(VERSION)
	ln -sf libdaffi.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaffi.so.0
	ln -sf libdaffi.so.0 $(DESTDIR)$(LIBDIR)/libdaffi.so
	install -m 0644 $(BUILD)/daffi.pc $(DESTDIR)$(LIBDIR)/pkgconfig/daffi.pc
	install -m 0644 sdk/include/daffi/*.h $(DESTDIR)$(INCLUDEDIR)/daffi/
	install -m 0755 $(PLUGIN_SO) $(DESTDIR)$(PLUGINDIR)/
	tree_admin=$$(sed -n 's|^socket = ||p' conf.d/00-daffid.ini); \
	sed -e 's|^plugin_dir = .*|plugin_dir = $(PLUGINDIR)|' \
	    -e 's|^; where relative plugin paths point (relative to this directory)|; where relative plugin paths point|' \
	    -e 's|^listen = .*|listen = tcp://127.0.0.1:6001, unix://$(RUNDIR)/daffid.sock|' \
	    $${tree_admin:+-e "s|$$tree_admin|$(RUNDIR)/admin.sock|g"} \
	    conf.d/00-daffid.ini > $(DESTDIR)$(SYSCONFDIR)/conf.d/00-daffid.ini
	@f=$(DESTDIR)$(SYSCONFDIR)/conf.d/00-daffid.ini; \
	 for l in 'plugin_dir = $(PLUGINDIR)' 'socket = $(RUNDIR)/admin.sock' \
	          'listen = tcp://127.0.0.1:6001, unix://$(RUNDIR)/daffid.sock'; do \
	   grep -qxF "$$l" $$f || { echo "install: $$f lacks '$$l': conf.d/00-daffid.ini changed shape"; exit 1; }; \
	 done
	install -m 0644 $(PLUGIN_INIS) $(DESTDIR)$(SYSCONFDIR)/conf.d/
	sed -e 's|/usr/sbin/daffid|$(SBINDIR)/daffid|g' -e 's|/etc/daffid|$(SYSCONFDIR)|g' \
	    packaging/systemd/daffid.service > $(DESTDIR)$(UNITDIR)/daffid.service
	install -m 0644 packaging/sysusers.d/daffid.conf $(DESTDIR)$(SYSUSERSDIR)/daffid.conf
	install -m 0644 packaging/tmpfiles.d/daffid.conf $(DESTDIR)$(TMPFILESDIR)/daffid.conf
	for m in $(MAN_PAGES); do \
	  install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} || exit 1; done
	@# every other name of a section-3 page's NAME line (daffi_arg.3: daffi_argc,
	@# daffi_arg_int, ...) is a link to it, so that `man daffi_arg_int` finds it
	for p in $(filter %.3.scd,$(wildcard packaging/man/*.scd)); do \
	  page=$${p##*/}; page=$${page%.scd}; \
	  for a in $$(sed -n '/^# NAME/{n;n;s/ - .*//;s/,//g;p;q}' $$p | cut -s -d' ' -f2-); do \
	    ln -sf $$page $(DESTDIR)$(MANDIR)/man3/$$a.3 || exit 1; done; done
	install -m 0644 README.md LICENSE sdk/PROTOCOL.md sdk/CLIENT.md $(DESTDIR)$(DOCDIR)/
	for d in $(PLUGINS); do \
	  install -d $(DESTDIR)$(DOCDIR)/examples/plugins/$$d && \
	  install -m 0644 plugins/$$d/* conf.d/10-$$d.ini $(DESTDIR)$(DOCDIR)/examples/plugins/$$d/ \
	  || exit 1; done
	install -m 0644 sdk/examples/*.c $(DESTDIR)$(DOCDIR)/examples/callers/
	install -m 0644 $(TEMPLATES) $(DESTDIR)$(TEMPLATEDIR)/plugin/
	sed -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/completion/daffictl \
	    > $(DESTDIR)$(COMPLETIONDIR)/daffictl
	ln -sf daffictl $(DESTDIR)$(COMPLETIONDIR)/daffid

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/daffid $(DESTDIR)$(BINDIR)/daffictl \
	  $(DESTDIR)$(LIBDIR)/libdaffi.a $(DESTDIR)$(LIBDIR)/libdaffi.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/libdaffi.so.0 $(DESTDIR)$(LIBDIR)/libdaffi.so \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/daffi.pc $(DESTDIR)$(UNITDIR)/daffid.service \
	  $(DESTDIR)$(SYSUSERSDIR)/daffid.conf $(DESTDIR)$(TMPFILESDIR)/daffid.conf \
	  $(DESTDIR)$(SYSCONFDIR)/conf.d/00-daffid.ini \
	  $(PLUGIN_INIS:conf.d/%=$(DESTDIR)$(SYSCONFDIR)/conf.d/%) \
	  $(PLUGIN_SO:$(BUILD)/plugins/%=$(DESTDIR)$(PLUGINDIR)/%) \
	  $(COMPLETIONS:%=$(DESTDIR)$(COMPLETIONDIR)/%)
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done
	for p in $(filter %.3.scd,$(wildcard packaging/man/*.scd)); do \
	  for a in $$(sed -n '/^# NAME/{n;n;s/ - .*//;s/,//g;p;q}' $$p | cut -s -d' ' -f2-); do \
	    rm -f $(DESTDIR)$(MANDIR)/man3/$$a.3; done; done
	rm -rf $(DESTDIR)$(INCLUDEDIR)/daffi $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/daffi
	@# directories install made, when nothing else is left in them
	-rmdir $(DESTDIR)$(SYSCONFDIR)/conf.d $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(PLUGINDIR) \
	  $(DESTDIR)$(LIBDIR)/daffid $(DESTDIR)$(UNITDIR) $(dir $(DESTDIR)$(UNITDIR)) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(COMPLETIONDIR) $(dir $(DESTDIR)$(COMPLETIONDIR)) 2>/dev/null

# Packages are built from a copy of the tree (packaging/source-copy.sh: the files git
# tracks, as they are on disk), never from the work tree itself; output in $(PKGDIR).
deb:
	@sh mk/deps.sh package
	@sh packaging/build-deb.sh $(PKGDIR)

rpm:
	@sh mk/deps.sh package
	@sh packaging/build-rpm.sh $(PKGDIR)

clean:
	rm -rf build build-asan build-fuzz build-tsan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
