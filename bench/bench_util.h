/*
 * bench_util.h - the measuring helpers every benchmark driver shares: elapsed milliseconds,
 * nearest-rank percentiles, bounded number arguments. Header-only: each bench driver is its own
 * program (Makefile BENCH_BINS).
 */
#ifndef CMC_BENCH_UTIL_H
#define CMC_BENCH_UTIL_H

#include "platform/err.h"
#include "platform/plat.h"

#include "crypto/cry.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A sample's summary: nearest-rank percentiles, extremes, mean (all 0 for no samples). */
struct bench_dist {
    double p50, p99, p999, min, max, mean;
};

/* Sorts v[0..n) and summarises it. */
static inline struct bench_dist dist_of(double *v, size_t n)
{
    struct bench_dist d = { 0, 0, 0, 0, 0, 0 };
    double sum = 0;
    qsort(v, n, sizeof *v, cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    d.mean = n ? sum / (double)n : 0.0;
    d.p50 = pct(v, n, 50);
    d.p99 = pct(v, n, 99);
    d.p999 = pct(v, n, 99.9);
    d.min = n ? v[0] : 0.0;
    d.max = n ? v[n - 1] : 0.0;
    return d;
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

/* One number argument: the text, its bounds, where it goes. */
struct bench_num {
    const char *s;
    long lo, hi;
    long *out;
};

/* parse_long for each of v[0..n), stopping at the first bad one. */
static inline int parse_longs(const struct bench_num *v, size_t n)
{
    int rc = CMC_OK;
    for (size_t i = 0; rc == CMC_OK && i < n; i++)
        rc = parse_long(v[i].s, v[i].lo, v[i].hi, v[i].out);
    return rc;
}

/* One subcommand of a driver: `prog NAME ARGS...` runs run(argc, argv) on the ARGS. */
struct bench_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
};

/* A driver's main: libsodium started, argv[1] looked up in cmds, its ARGS run; the one error
 * line "PROG CMD: message" on failure. Returns the process's exit status (0 or 1). */
static inline int bench_main(const char *prog, const char *usage, const struct bench_cmd *cmds,
                             size_t n_cmds, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s %s ...\n", prog, usage);
        return 1;
    }
    if (cry_init() != CMC_OK) {
        fprintf(stderr, "%s: %s\n", prog, cmc_errmsg());
        return 1;
    }
    const char *cmd = argv[1];
    int rc = cmc_fail(CMC_ERR_USAGE, "unknown subcommand '%s'", cmd);
    for (size_t i = 0; i < n_cmds; i++)
        if (strcmp(cmd, cmds[i].name) == 0) {
            cmc_err_clear();
            rc = cmds[i].run(argc - 2, argv + 2);
            break;
        }
    if (rc != CMC_OK) {
        fprintf(stderr, "%s %s: %s\n", prog, cmd, cmc_errmsg());
        return 1;
    }
    return 0;
}

#endif
