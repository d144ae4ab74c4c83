/* libFuzzer target: arbitrary argument vectors (NUL-separated) through both
 * flag styles must never crash. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink_func(void *t, const char *v, char *err, size_t errlen)
{
    (void)t;
    if (*v == 'x') {
        snprintf(err, errlen, "x");
        return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[1024];
    char *argv[64];
    int argc = 0, first, b = 0;
    const char *s = NULL;
    long long n;
    uint64_t sz;
    int64_t d;
    const struct flag_spec specs[] = {
        {.name = "b", .short_name = 'b', .kind = FLAG_BOOL, .target = &b},
        {.name = "str", .short_name = 's', .kind = FLAG_STRING, .target = &s},
        {.name = "n", .kind = FLAG_INT, .target = &n},
        {.name = "size", .short_name = 'z', .kind = FLAG_SIZE, .target = &sz},
        {.name = "dur", .kind = FLAG_DURATION, .target = &d},
        {.name = "f", .short_name = 'f', .kind = FLAG_FUNC, .func = sink_func},
        {.name = "version", .kind = FLAG_VERSION},
        {0},
    };
    if (size >= sizeof buf || size < 1)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    argv[argc++] = (char *)"fuzz";
    for (char *p = buf; p < buf + size - 1 && argc < 63; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    struct flags_def def = {.prog = "fuzz", .style = data[0] & 1 ? FLAGS_GO : FLAGS_GNU,
                            .specs = specs, .stop_at_operand = (data[0] >> 1) & 1};
    char err[256];
    int r = flags_parse(&def, argc, argv, &first, err, sizeof err);
    if (r == FLAGS_OK && (first < 1 || first > argc))
        __builtin_trap();
    return 0;
}
