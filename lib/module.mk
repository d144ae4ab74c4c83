# libopskit.a: small pieces shared by two or more programs. Each module adds its
# own .c here (one line per module keeps merges trivial).
LIB_SRCS += lib/units.c
LIB_SRCS += lib/flags.c
# Libraries lib/ code needs (e.g. -lcrypto for the WebSocket handshake); any
# program or test that links a module needing them adds them too.
LIB_LDLIBS +=
