/* bucket: a token bucket with a small burst and no idle credit (see bucket.h). */
#include "bucket.h"

#include <math.h>

static void bucket_shape(struct bucket *b, double rate, uint64_t max_xfer)
{
    if (rate < 1.0)
        rate = 1.0;
    if (max_xfer < 1)
        max_xfer = 1;
    b->rate = rate;
    b->capacity = rate / BUCKET_BURST_DIV;
    b->grain = rate / BUCKET_GRAIN_DIV;
    if (b->grain > (double)max_xfer)
        b->grain = (double)max_xfer;
    if (b->grain < 1.0)
        b->grain = 1.0;
    /* The bucket must be able to hold one grain, or nothing would ever move. */
    if (b->capacity < b->grain)
        b->capacity = b->grain;
}

void bucket_init(struct bucket *b, double rate, uint64_t max_xfer, int64_t now_ns)
{
    bucket_shape(b, rate, max_xfer);
    b->tokens = b->grain;
    b->last_ns = now_ns;
}

void bucket_refill(struct bucket *b, int64_t now_ns)
{
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * b->rate / 1e9;
        if (b->tokens > b->capacity)
            b->tokens = b->capacity;
    }
    b->last_ns = now_ns;
}

void bucket_set_rate(struct bucket *b, double rate, uint64_t max_xfer, int64_t now_ns)
{
    bucket_refill(b, now_ns); /* earn at the old rate up to now */
    bucket_shape(b, rate, max_xfer);
    if (b->tokens > b->capacity)
        b->tokens = b->capacity;
}

uint64_t bucket_allowance(struct bucket *b, int64_t now_ns, uint64_t max)
{
    bucket_refill(b, now_ns);
    if (b->tokens < b->grain)
        return 0;
    double n = floor(b->tokens);
    if (n > (double)max)
        return max;
    return (uint64_t)n;
}

int64_t bucket_wait_ns(struct bucket *b, int64_t now_ns)
{
    bucket_refill(b, now_ns);
    if (b->tokens >= b->grain)
        return 0;
    double ns = ceil((b->grain - b->tokens) * 1e9 / b->rate);
    if (ns < 1.0)
        ns = 1.0;
    return (int64_t)ns;
}

void bucket_consume(struct bucket *b, uint64_t n)
{
    b->tokens -= (double)n;
}
