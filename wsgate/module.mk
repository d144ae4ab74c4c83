# wsgate-server and wsgate-client: TCP over WebSocket (see the wsgate section of README.md).
PROGRAMS  += $(BUILD)/wsgate-server $(BUILD)/wsgate-client
MANPAGES  += wsgate/wsgate-server.1 wsgate/wsgate-client.1
DEPS_PKGS += libev-dev libssl-dev libjwt-dev libjansson-dev libhttp-parser-dev zlib1g-dev \
             libcurl4-openssl-dev \
             memcached mariadb-server mariadb-client python3-websockets python3-jwt python3-cryptography \
             libserver-starter-perl socat curl openssl
WSGATE_COMMON := wsgate/tunnel.c wsgate/transport.c wsgate/tls.c wsgate/map.c wsgate/auth.c
WSGATE_LDLIBS := -lev -ljwt $(call pkg,jansson) -lssl -lcrypto $(LIB_LDLIBS)
$(BUILD)/wsgate-server: $(call objs,wsgate/server.c $(WSGATE_COMMON)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lpthread $(WSGATE_LDLIBS)
$(BUILD)/wsgate-client: $(call objs,wsgate/client.c wsgate/iap.c $(WSGATE_COMMON)) $(LIBOPSKIT)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lcurl -lpthread $(WSGATE_LDLIBS)
# unit tests of the lib modules this directory brought in
$(BUILD)/tests/unit/test_net: LDLIBS += -lev
$(BUILD)/tests/unit/test_jsonlog: LDLIBS += -lev
$(BUILD)/tests/unit/test_mapfile: LDLIBS += -lev
FUZZ_SRCS_fuzz_jwt_claims := wsgate/auth.c
FUZZ_LDLIBS_fuzz_jwt_claims := -ljwt $(call pkg,jansson) -lssl -lcrypto
# the tunnel state machine on socketpairs
$(BUILD)/tests/unit/test_wsgate_tunnel: $(call objs,wsgate/tunnel.c wsgate/transport.c wsgate/tls.c)
$(BUILD)/tests/unit/test_wsgate_tunnel: LDLIBS += $(LIBOPSKIT) -lev -lssl -lcrypto -lpthread $(LIB_LDLIBS)
