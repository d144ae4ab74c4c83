# relaxlogs: stdin log writer with time rotation (see the relaxlogs section of README.md).
PROGRAMS  += $(BUILD)/relaxlogs
MANPAGES  += relaxlogs/relaxlogs.1
DEPS_PKGS += zlib1g-dev faketime daemontools runit s6 apache2-utils cronolog time
RELAXLOGS_SRCS := relaxlogs/period.c relaxlogs/logdir.c relaxlogs/compress.c
$(BUILD)/relaxlogs: $(call objs,$(RELAXLOGS_SRCS) relaxlogs/main.c) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lz -pthread
$(BUILD)/tests/unit/test_relaxlogs_period: $(OBJ)/relaxlogs/period.o
$(BUILD)/tests/unit/test_relaxlogs_compress: $(OBJ)/relaxlogs/compress.o
$(BUILD)/tests/unit/test_relaxlogs_compress: LDLIBS += -lz -pthread
FUZZ_SRCS_fuzz_relaxlogs_name := relaxlogs/period.c
