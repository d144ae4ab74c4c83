/* period: rotation periods of relaxlogs and the names of their files.
 *
 * A period is the span of time whose lines go into one file. Boundaries are
 * multiples of the rotation length on the LOCAL wall clock (so 1440 minutes
 * rotates at local midnight and 60 on the local hour, also in +05:30 zones);
 * with utc set they are multiples in UTC. A period is identified by the UTC
 * instant at which it starts, so the repeated hour of a DST fall-back is a
 * different period from the first one even though both have the same wall-clock
 * name; the writer gives the second one a ".N" suffix (see logdir.c). */
#ifndef RELAXLOGS_PERIOD_H
#define RELAXLOGS_PERIOD_H

#include <stddef.h>
#include <stdint.h>

struct period {
    int64_t start; /* UTC instant (seconds since the epoch) at which the period starts */
    int64_t wall;  /* the local wall-clock time of its start, as seconds since 1970-01-01
                    * 00:00 wall time (i.e. start + UTC offset in force at the boundary) */
};

/* UTC offset in seconds in force at instant t (0 when utc is set). */
long period_gmtoff(int64_t t, int utc);

/* The period containing instant t for rotation length len seconds (> 0). */
void period_of(int64_t t, int64_t len, int utc, struct period *p);

/* Write "log.YYYYmmddHHMM" (seq 0) or "log.YYYYmmddHHMM.SEQ" for the period's
 * wall-clock start into buf. Returns the length, or -1 if it does not fit. */
int period_name(const struct period *p, unsigned seq, char *buf, size_t len);

/* Parse a file name written by period_name, optionally followed by ".gz".
 * Stores the wall time, the sequence number and whether it ends in .gz.
 * Returns 0, or -1 for any other name (including "*.gz.tmp"). */
int period_parse_name(const char *name, int64_t *wall, unsigned *seq, int *gz);

/* Format the --with-time prefix "[02/Jan/2006:15:04:05 +0900] " for instant t
 * (local time, or UTC with utc set) into buf (at least 40 bytes). Returns the
 * length. */
int period_time_prefix(int64_t t, int utc, char *buf, size_t len);

#endif
