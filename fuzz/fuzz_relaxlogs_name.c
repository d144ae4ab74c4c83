/* libFuzzer target: relaxlogs decides what to purge and which names are taken
 * by parsing every file name in the log dir; arbitrary names must never crash
 * it, and a parsed name must format back to an equivalent name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../relaxlogs/period.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256], again[256];
    int64_t wall, wall2;
    unsigned seq, seq2;
    int gz, gz2;
    if (size >= sizeof name)
        return 0;
    memcpy(name, data, size);
    name[size] = 0;
    if (period_parse_name(name, &wall, &seq, &gz) == 0) {
        struct period p = {.start = wall, .wall = wall};
        if (period_name(&p, seq, again, sizeof again) < 0)
            abort();
        if (period_parse_name(again, &wall2, &seq2, &gz2) != 0 || wall2 != wall || seq2 != seq ||
            gz2 != 0)
            abort();
    }
    return 0;
}
