# open_no_excl.so (LD_PRELOAD shim) and the no_excl_open wrapper.
PROGRAMS  += $(BUILD)/open_no_excl.so $(BUILD)/no_excl_open
MANPAGES  += no_excl_open/no_excl_open.1
DEPS_PKGS += logrotate

# The shim is loaded into programs we did not build (logrotate), so it is
# built without sanitizers whatever CFLAGS says: an ASan-instrumented .so
# cannot be preloaded into an uninstrumented program. Position-independent,
# exporting only open/open64/openat/openat64. Its objects live under
# $(OBJ)/pic/ and have their own rule.
NXO_PIC       := $(OBJ)/pic/no_excl_open
NXO_CFLAGS     = -std=gnu11 $(WARN) \
                 $(filter-out -fsanitize% -fno-sanitize%,$(CFLAGS) $(EXTRA_CFLAGS)) \
                 -fPIC -fvisibility=hidden -D_GNU_SOURCE -Ilib -MMD -MP
NXO_LDFLAGS    = $(filter-out -fsanitize% -fno-sanitize%,$(LDFLAGS) $(EXTRA_LDFLAGS))
NXO_SHIM_OBJS := $(NXO_PIC)/shim.o $(NXO_PIC)/nxo.o
NXO_HOOK      := $(BUILD)/tests/helpers/nxo_rename_hook.so

$(NXO_PIC)/%.o: no_excl_open/%.c
	@mkdir -p $(@D)
	$(CC) $(NXO_CFLAGS) -c -o $@ $<

$(BUILD)/open_no_excl.so: $(NXO_SHIM_OBJS)
	@mkdir -p $(@D)
	$(CC) $(NXO_CFLAGS) $(NXO_LDFLAGS) -shared -Wl,-z,defs -Wl,-soname,open_no_excl.so \
	    -o $@ $^ -ldl

$(BUILD)/no_excl_open: $(call objs,no_excl_open/main.c)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -ldl

# Test-only helper for the e2e test and demo (recreates the log right after
# logrotate renames it): built with everything, never installed.
all: $(NXO_HOOK)
$(NXO_HOOK): $(NXO_PIC)/test_rename_hook.o
	@mkdir -p $(@D)
	$(CC) $(NXO_CFLAGS) $(NXO_LDFLAGS) -shared -Wl,-z,defs -o $@ $^ -ldl

# Unit tests: the interposers are linked into the test program itself, so its
# calls to open() & co. go through them and dlsym(RTLD_NEXT) finds libc's.
# These objects come from the generic rule: under `make asan` they are
# instrumented like the test program.
$(BUILD)/tests/unit/test_no_excl_open: $(call objs,no_excl_open/shim.c no_excl_open/nxo.c)
$(BUILD)/tests/unit/test_no_excl_open: LDLIBS += -ldl -lpthread
$(BUILD)/tests/unit/test_no_excl_open_paths: $(call objs,no_excl_open/nxo.c)

FUZZ_SRCS_fuzz_no_excl_paths := no_excl_open/nxo.c
