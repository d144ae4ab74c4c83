# libopskit.a: small pieces shared by two or more programs. Each module adds its
# own .c here (one line per module keeps merges trivial).
LIB_SRCS += lib/units.c
LIB_SRCS += lib/flags.c
