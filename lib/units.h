/* units: parsing of human sizes (go-humanize ParseBytes semantics) and Go-style
 * durations (time.ParseDuration semantics), shared by every program's flags. */
#ifndef OPSKIT_UNITS_H
#define OPSKIT_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parse a size like go-humanize's ParseBytes: "100M" = 100000000, "100MiB" =
 * 104857600, "1.5G", "32K", "500 kB", "42" (bytes). Case-insensitive units,
 * optional space between number and unit, optional trailing "B"/"iB".
 * Returns 0 and stores the byte count in *out, or -1 and writes a message
 * (without the input quoted) to err (errlen bytes) on junk, negatives,
 * empty input or overflow past UINT64_MAX. */
int units_parse_bytes(const char *s, uint64_t *out, char *err, size_t errlen);

/* Parse a duration like Go's time.ParseDuration: "10s", "1h0m0s", "300ms",
 * "1.5h", "86400s", "-1s", "0"; units ns, us, µs, ms, s, m, h. Stores
 * nanoseconds in *ns. Returns 0, or -1 with a message in err. */
int units_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen);

/* Format nanoseconds the way Go's Duration.String() does ("1h0m0s", "300ms",
 * "1.5s", "0s"). Returns buf. */
char *units_format_duration(int64_t ns, char *buf, size_t len);

#endif
