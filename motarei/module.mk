# motarei: TCP proxy that follows the newest Docker container with a label.
PROGRAMS  += $(BUILD)/motarei
MANPAGES  += motarei/motarei.1
DEPS_PKGS += libev-dev libcurl4-openssl-dev libjansson-dev docker.io busybox-static haproxy \
             iperf3 socat libserver-starter-perl curl iproute2 procps tar
MOTAREI_CORE := motarei/docker.c motarei/discovery.c
MOTAREI_LDLIBS := -lcurl $(call pkg,jansson) -lev -lpthread $(LIB_LDLIBS)
$(BUILD)/motarei: $(call objs,motarei/main.c motarei/proxy.c $(MOTAREI_CORE)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(MOTAREI_LDLIBS)
$(BUILD)/tests/unit/test_motarei_docker: $(call objs,$(MOTAREI_CORE))
$(BUILD)/tests/unit/test_motarei_docker: LDLIBS += $(LIBOPSKIT) $(MOTAREI_LDLIBS)
FUZZ_SRCS_fuzz_docker_json := $(MOTAREI_CORE)
FUZZ_LDLIBS_fuzz_docker_json := -lcurl $(call pkg,jansson) -lev -lpthread
