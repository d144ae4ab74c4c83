/* libFuzzer target: size and duration parsers must never crash, and an
 * accepted duration must survive a format/parse round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[128], err[128], buf[64];
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    uint64_t b;
    (void)units_parse_bytes(s, &b, err, sizeof err);
    int64_t d, d2;
    if (units_parse_duration(s, &d, err, sizeof err) == 0) {
        units_format_duration(d, buf, sizeof buf);
        if (units_parse_duration(buf, &d2, err, sizeof err) != 0 || d2 != d)
            abort();
    }
    return 0;
}
