# libopskit.a: small pieces shared by two or more programs. Each module adds its
# own .c here (one line per module keeps merges trivial).
LIB_SRCS += lib/units.c
LIB_SRCS += lib/flags.c
LIB_SRCS += lib/ws.c
LIB_SRCS += lib/ws_handshake.c
LIB_SRCS += lib/ws_deflate.c
LIB_SRCS += lib/jsonlog.c
LIB_SRCS += lib/net.c
LIB_SRCS += lib/mapfile.c
LIB_SRCS += lib/acceptor.c
LIB_SRCS += lib/workers.c
LIB_SRCS += lib/relay.c
# Libraries lib/ code needs (e.g. -lcrypto for the WebSocket handshake); any
# program or test that links a module needing them adds them too.
LIB_LDLIBS +=
LIB_LDLIBS += -lhttp_parser -lcrypto -lz
LIB_LDLIBS += -lev
DEPS_PKGS += libev-dev
DEPS_PKGS += libhttp-parser-dev libssl-dev zlib1g-dev
$(BUILD)/tests/unit/test_ws_frame: LDLIBS += $(LIB_LDLIBS)
$(BUILD)/tests/unit/test_ws_handshake: LDLIBS += $(LIB_LDLIBS)
$(BUILD)/tests/unit/test_ws_deflate: LDLIBS += $(LIB_LDLIBS)
$(BUILD)/tests/unit/test_ws_interop: LDLIBS += $(LIB_LDLIBS)
DEPS_PKGS += python3-websockets
$(BUILD)/tests/unit/test_relay: LDLIBS += -lev -lpthread
$(BUILD)/tests/unit/test_workers: LDLIBS += -lev -lpthread
