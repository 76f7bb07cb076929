# daffid - one entry point: all, run, test, bench, asan, deps, clean.
# Sources are found by wildcard, so a new file in a known folder needs no edit here:
#   sdk/src/*.c                  -> libdaffi (static + shared), the codec and client
#   sdk/daffictl/*.c             -> daffictl
#   server/*.c (but main.c)      -> libdfd.a, linked into daffid and the tests
#   plugins/NAME/*.c             -> build/plugins/NAME.so
#   tests/fixtures/plugins/X.c   -> build/tests/fixtures/X.so
#   tests/unit/test_X.c          -> build/tests/unit/test_X        (cmocka)
#   tests/integration/test_X.c   -> build/tests/integration/test_X (cmocka + tests/support)
#   tests/bench/bench_X.c        -> build/tests/bench/bench_X      (+ tests/support)

VERSION   := $(shell cat VERSION)
BUILD     ?= build
CC        ?= cc
OPT       ?= -O2
SAN       ?=
PKGS      := libevent_core libevent_pthreads msgpack inih jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -fPIC \
              -fvisibility=default -DDAFFID_VERSION='"$(VERSION)"' \
              -Isdk/include -Isdk/src -Iserver $(PKG_CFLAGS) $(SAN) $(CFLAGS)
LDFLAGS_ALL := $(SAN) $(LDFLAGS)
LIBS_ALL    := $(PKG_LIBS) -ldl -lpthread -lm

SDK_SRC    := $(wildcard sdk/src/*.c)
SDK_OBJ    := $(SDK_SRC:%.c=$(BUILD)/obj/%.o)
CTL_SRC    := $(wildcard sdk/daffictl/*.c)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/obj/%.o)
SRV_SRC    := $(filter-out server/main.c,$(wildcard server/*.c))
SRV_OBJ    := $(SRV_SRC:%.c=$(BUILD)/obj/%.o)
PLUGINS    := $(notdir $(wildcard plugins/*))
PLUGIN_SO  := $(PLUGINS:%=$(BUILD)/plugins/%.so)
FIXTURE_SO := $(patsubst tests/fixtures/plugins/%.c,$(BUILD)/tests/fixtures/%.so,$(wildcard tests/fixtures/plugins/*.c))
SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/support/*.c))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(wildcard tests/bench/bench_*.c))

# pkg-config files (sdk/daffi.pc.in): $(BUILD)/daffi.pc describes an installed libdaffi
# (PREFIX, LIBDIR, INCLUDEDIR, PLUGINDIR); $(BUILD)/daffi-uninstalled.pc this tree,
# which pkg-config prefers when PKG_CONFIG_PATH=$(BUILD). sdk/examples/X.c ->
# $(BUILD)/examples/X, built with pkg-config alone, as a user's program is.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PLUGINDIR  ?= $(LIBDIR)/daffid/plugins
PC_FILES   := $(BUILD)/daffi.pc $(BUILD)/daffi-uninstalled.pc
EXAMPLES   := $(patsubst sdk/examples/%.c,$(BUILD)/examples/%,$(wildcard sdk/examples/*.c))

.PHONY: all run test test-only bench asan deps clean check-config
all: $(BUILD)/daffid $(BUILD)/daffictl $(BUILD)/libdaffi.a $(BUILD)/libdaffi.so $(PLUGIN_SO) \
     $(PC_FILES) $(EXAMPLES)

deps:
	@sh mk/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/daffid -c conf.d

test: deps
	@$(MAKE) --no-print-directory test-only

# Builds everything the suite needs, then runs it (tests/run.sh prints the totals).
test-only: all $(FIXTURE_SO) $(UNIT_BIN) $(INTEG_BIN)
	@BUILD=$(BUILD) sh tests/run.sh

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  test-only

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) sh tests/bench/run.sh

check-config: all
	$(BUILD)/daffid -t -c conf.d

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libdaffi.a: $(SDK_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdaffi.so: $(SDK_OBJ)
	$(CC) -shared -Wl,-soname,libdaffi.so.0 $(LDFLAGS_ALL) $^ -o $@ $(LIBS_ALL)

$(BUILD)/daffi.pc: sdk/daffi.pc.in VERSION
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES@|msgpack libevent_core|' \
	    -e 's|@REQUIRES_PRIVATE@|jansson|' -e 's|@LIBS@|-L$${libdir} -ldaffi|' \
	    -e 's|@LIBS_PRIVATE@|-ldl -lpthread -lm|' $< > $@

# In the tree the static library is linked by path: a program runs without an
# installed libdaffi.so.0.
$(BUILD)/daffi-uninstalled.pc: sdk/daffi.pc.in VERSION
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$(CURDIR)/$(BUILD)|' \
	    -e 's|@INCLUDEDIR@|$(CURDIR)/sdk/include|' \
	    -e 's|@PLUGINDIR@|$(CURDIR)/$(BUILD)/plugins|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES@|msgpack libevent_core jansson|' -e 's|@REQUIRES_PRIVATE@||' \
	    -e 's|@LIBS@|$${libdir}/libdaffi.a -ldl -lpthread -lm|' -e 's|@LIBS_PRIVATE@||' \
	    $< > $@

$(BUILD)/examples/%: sdk/examples/%.c $(BUILD)/libdaffi.a $(PC_FILES)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -g $(OPT) $(SAN) $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(BUILD) pkg-config --cflags --libs daffi)

$(BUILD)/libdfd.a: $(SRV_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# -rdynamic: plugins resolve the SDK functions (daffi_reply_int, ...) against daffid.
$(BUILD)/daffid: $(BUILD)/obj/server/main.o $(BUILD)/libdfd.a $(BUILD)/libdaffi.a
	$(CC) $(LDFLAGS_ALL) -rdynamic -Wl,--whole-archive $(BUILD)/libdfd.a $(BUILD)/libdaffi.a \
	  -Wl,--no-whole-archive $< -o $@ $(LIBS_ALL)

$(BUILD)/daffictl: $(CTL_OBJ) $(BUILD)/libdaffi.a
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LIBS_ALL)

# A plugin is every .c file of its folder; it links nothing from the host.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) sdk/include/daffi/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared $(filter %.c,$^) -o $@ $(LDFLAGS_ALL)

$(BUILD)/tests/fixtures/%.so: tests/fixtures/plugins/%.c sdk/include/daffi/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared $< -o $@ $(LDFLAGS_ALL)

TEST_LINK = -rdynamic -Wl,--whole-archive $(BUILD)/libdfd.a $(BUILD)/libdaffi.a -Wl,--no-whole-archive

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libdfd.a $(BUILD)/libdaffi.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(TEST_LINK) -o $@ $(LIBS_ALL) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(SUPPORT_OBJ) $(BUILD)/libdaffi.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(SUPPORT_OBJ) $(BUILD)/libdaffi.a -o $@ $(LIBS_ALL) -lcmocka

$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(SUPPORT_OBJ) $(BUILD)/libdaffi.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $< $(SUPPORT_OBJ) $(BUILD)/libdaffi.a -o $@ $(LIBS_ALL) -lcmocka

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
