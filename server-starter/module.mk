# start_server: superdaemon for hot deploy, a drop-in for Perl's Server::Starter
# 0.35 with the worker-exit fix and a readiness gate (see start_server.1).
PROGRAMS  += $(BUILD)/start_server
MANPAGES  += server-starter/start_server.1
# Perl's start_server is the oracle of the e2e tests; util-linux: unshare (PID 1 test).
DEPS_PKGS += libserver-starter-perl util-linux procps curl
SS_SRCS := server-starter/main.c server-starter/options.c server-starter/sockets.c \
           server-starter/envdir.c server-starter/supervisor.c server-starter/ready.c \
           server-starter/control.c
$(BUILD)/start_server: $(call objs,$(SS_SRCS)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^
FUZZ_SRCS_fuzz_start_server_specs := server-starter/options.c
DEPS_PKGS += systemd # systemd-analyze verify of the example units (tests/e2e/test_examples.py)
