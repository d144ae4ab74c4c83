# mackerel-plugin-linux-process-status: Mackerel metric plugin (fds, CPU, memory of a process).
PROGRAMS  += $(BUILD)/mackerel-plugin-linux-process-status
MANPAGES  += process-status/mackerel-plugin-linux-process-status.1
# util-linux: prlimit/setpriv in tests; procps: pgrep cross-check; time: bench.
DEPS_PKGS += util-linux procps time
PS_CORE_SRCS := process-status/procfs.c process-status/state.c process-status/scan.c
PS_SRCS      := process-status/main.c $(PS_CORE_SRCS)
# Linked statically (saves the dynamic loader's ~0.2 ms and ~1 MiB RSS per run: the
# agent runs us every minute), except in sanitizer builds, which cannot be static.
PS_STATIC := $(if $(findstring sanitize,$(SAN_FLAGS) $(CFLAGS) $(EXTRA_CFLAGS) $(LDFLAGS) $(EXTRA_LDFLAGS)),,-static)
$(BUILD)/mackerel-plugin-linux-process-status: $(call objs,$(PS_SRCS)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(PS_STATIC) -o $@ $^
$(BUILD)/tests/unit/test_process_status: $(call objs,$(PS_CORE_SRCS))
FUZZ_SRCS_fuzz_procstat := process-status/procfs.c process-status/state.c
