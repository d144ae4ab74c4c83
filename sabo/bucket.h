/* bucket: the token bucket that paces sabo's output.
 *
 * Time is passed in by the caller (nanoseconds from CLOCK_MONOTONIC), so the
 * arithmetic is deterministic and unit-testable. The bucket holds at most a
 * small fraction of a second of credit (BUCKET_BURST_DIV), so an idle input
 * never banks more than that: after a pause the output resumes at the share,
 * not at full speed. Any transfer size works at any rate: the caller asks how
 * much it may move now (bucket_allowance) and moves at most that. */
#ifndef SABO_BUCKET_H
#define SABO_BUCKET_H

#include <stdint.h>

/* Capacity = rate / BUCKET_BURST_DIV (40 ms of credit). */
#define BUCKET_BURST_DIV 25
/* Smallest transfer worth waking up for = rate / BUCKET_GRAIN_DIV (10 ms). */
#define BUCKET_GRAIN_DIV 100

struct bucket {
    double rate;     /* bytes per second, > 0 */
    double capacity; /* most credit ever held, bytes */
    double grain;    /* least credit worth a transfer, bytes (<= capacity) */
    double tokens;   /* current credit, bytes; may be fractional */
    int64_t last_ns; /* time tokens was last brought up to date */
};

/* Start at time now_ns with one grain of credit, so the first bytes go out at
 * once and a run's output stays within one grain of rate x elapsed time.
 * max_xfer caps the grain (the largest single transfer the caller makes). */
void bucket_init(struct bucket *b, double rate, uint64_t max_xfer, int64_t now_ns);

/* Change the rate (a rebalance). Credit already earned is kept but clipped to
 * the new capacity, so a lowered share takes effect at once. */
void bucket_set_rate(struct bucket *b, double rate, uint64_t max_xfer, int64_t now_ns);

/* Bring the credit up to now_ns (never above capacity). */
void bucket_refill(struct bucket *b, int64_t now_ns);

/* Whole bytes that may be moved now (after refill), capped at max. Returns 0
 * when less than one grain is available: wait bucket_wait_ns() first. */
uint64_t bucket_allowance(struct bucket *b, int64_t now_ns, uint64_t max);

/* Nanoseconds until one grain of credit is available (0 if it already is). */
int64_t bucket_wait_ns(struct bucket *b, int64_t now_ns);

/* Charge n bytes actually moved. */
void bucket_consume(struct bucket *b, uint64_t n);

#endif
