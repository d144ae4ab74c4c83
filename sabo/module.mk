# sabo: bandwidth-limiting pipe whose copies share one budget via lock files.
PROGRAMS  += $(BUILD)/sabo
MANPAGES  += sabo/sabo.1
# pv, cstream, mbuffer: benchmark peers (bench/sabo.sh); util-linux: setpriv in the e2e tests.
DEPS_PKGS += pv cstream mbuffer util-linux
SABO_LIB_SRCS := sabo/bucket.c sabo/lockname.c sabo/group.c sabo/progress.c
SABO_SRCS := sabo/main.c $(SABO_LIB_SRCS)

$(BUILD)/sabo: $(call objs,$(SABO_SRCS)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lm

# Unit tests link the program's modules (main.c stays out).
$(BUILD)/tests/unit/test_sabo_bucket: $(OBJ)/sabo/bucket.o
$(BUILD)/tests/unit/test_sabo_bucket: LDLIBS += -lm
$(BUILD)/tests/unit/test_sabo_lockname: $(OBJ)/sabo/lockname.o
$(BUILD)/tests/unit/test_sabo_group: $(OBJ)/sabo/group.o $(OBJ)/sabo/lockname.o
$(BUILD)/tests/unit/test_sabo_progress: $(OBJ)/sabo/progress.o
FUZZ_SRCS_fuzz_sabo_lockname := sabo/lockname.c
DEPS_PKGS += man-db groff-base # man --warnings -l in tests/e2e/test_manpages.py
