/*
 * bench_util.h - the measuring helpers every benchmark driver shares: elapsed milliseconds,
 * nearest-rank percentiles, bounded number arguments. Header-only: each bench driver is its own
 * program (Makefile BENCH_BINS).
 */
#ifndef CMC_BENCH_UTIL_H
#define CMC_BENCH_UTIL_H

#include "platform/err.h"
#include "platform/plat.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static inline double ms_since(uint64_t t0)
{
    return (double)(plat_mono_now_ns() - t0) / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static inline double pct(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

static inline int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi)
        return cmc_fail(CMC_ERR_USAGE, "bad number '%s' (expected %ld..%ld)", s, lo, hi);
    *out = v;
    return CMC_OK;
}

#endif
