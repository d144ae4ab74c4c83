# opskit — one GNU Makefile. Each program directory contributes a module.mk
# (its sources, libraries, Debian packages, man page); this file holds the rules.
#
#   make            build every program into build/
#   make deps       install the Debian packages the build and tests need (root)
#   make test       deps + build + unit tests + e2e tests
#   make asan       the same suite against an ASan+UBSan build in build-asan/
#   make demo       deps + build + show the tools working on loopback
#   make bench      benchmarks against peers (bench/)
#   make fuzz       build libFuzzer targets (clang) and run each briefly
#   make install    PREFIX=/usr/local DESTDIR=

BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
CFLAGS   ?= -O2 -g
PYTHON   ?= /usr/bin/python3
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Werror=implicit-function-declaration
# SAN_FLAGS is set by `make asan`; code that must not be instrumented (an
# LD_PRELOAD shim loaded into uninstrumented programs) compiles without it.
SAN_FLAGS ?=
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SAN_FLAGS) $(EXTRA_CFLAGS) -D_GNU_SOURCE -Ilib -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS) $(EXTRA_LDFLAGS)
OBJ      := $(BUILD)/obj
LIBOPSKIT := $(BUILD)/libopskit.a

# Filled in by the module.mk files.
PROGRAMS  :=
MANPAGES  :=
DEPS_PKGS := build-essential pkg-config libcmocka-dev python3-pytest python3-pytest-timeout clang libclang-rt-14-dev
LIB_SRCS  :=
FUZZERS   :=

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))
pkg  = $(shell pkg-config --libs $(1) 2>/dev/null)
pkgcflags = $(shell pkg-config --cflags $(1) 2>/dev/null)

.PHONY: all deps test unit e2e asan demo bench fuzz install clean
all:

include lib/module.mk
include $(sort $(filter-out lib/module.mk,$(wildcard */module.mk)))

UNIT_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))

all: $(PROGRAMS)

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBOPSKIT): $(call objs,$(LIB_SRCS))
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# Unit tests: tests/unit/test_X.c linked with libopskit and cmocka. A module.mk
# may add prerequisites (program objects) and LDLIBS to its own tests.
$(BUILD)/tests/unit/test_%: $(OBJ)/tests/unit/test_%.o $(LIBOPSKIT)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS) -lcmocka

deps:
	@scripts/deps.sh $(sort $(DEPS_PKGS))

unit: $(UNIT_TESTS)
	@set -e; n=0; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; n=$$((n+1)); done; \
	echo "unit: $$n cmocka test programs passed"

e2e: all
	OPSKIT_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -ra -q tests/e2e $(PYTEST_ARGS)

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e

asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" unit e2e

demo: deps
	$(MAKE) all
	@scripts/demo.sh $(abspath $(BUILD))

bench: deps
	$(MAKE) all
	@set -e; for b in $(sort $(wildcard bench/*.sh)); do echo "== $$b"; OPSKIT_BUILD=$(abspath $(BUILD)) bash $$b; done

# libFuzzer targets: fuzz/fuzz_NAME.c is linked with every lib/ source, plus
# FUZZ_SRCS_fuzz_NAME (program sources) and FUZZ_LDLIBS_fuzz_NAME from module.mk.
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -Ilib -fsanitize=fuzzer,address,undefined
.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(LIB_SRCS) $$(FUZZ_SRCS_fuzz_$$*)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LDLIBS_fuzz_$*) $(LIB_LDLIBS)

fuzz: deps
	$(MAKE) $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do n=$$(basename $$f); echo "== $$n"; \
	  mkdir -p fuzz/corpus/$$n; \
	  $$f -max_total_time=$${FUZZ_SECONDS:-20} fuzz/corpus/$$n 2>&1 | tail -1; done

# install, uninstall, deb: packaging/module.mk

clean:
	rm -rf build build-asan

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
