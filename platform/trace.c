/*
 * trace.c - CMC_TRACE_PHASES: per-phase time sums printed at exit (see trace.h).
 */
#include "platform/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static pthread_once_t trace_once = PTHREAD_ONCE_INIT;
static int trace_on;
static _Atomic uint64_t phase_ns[PLAT_PHASE_COUNT];
static _Atomic uint64_t phase_n[PLAT_PHASE_COUNT];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ms(enum plat_phase p)
{
    return (double)atomic_load(&phase_ns[p]) / 1e6;
}

static void trace_report(void)
{
    struct rusage ru;
    double cpu_ms = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    fprintf(stderr,
            "cmc-trace: {\"cpu_ms\": %.3f, \"unlock_ms\": %.3f, \"open_ms\": %.3f, \"network_ms\": %.3f, "
            "\"apply_ms\": %.3f, \"commit_ms\": %.3f, \"requests\": %llu, \"pages\": %llu, "
            "\"commits\": %llu}\n",
            cpu_ms, ms(PLAT_PHASE_UNLOCK), ms(PLAT_PHASE_OPEN), ms(PLAT_PHASE_NETWORK), ms(PLAT_PHASE_APPLY),
            ms(PLAT_PHASE_COMMIT), (unsigned long long)atomic_load(&phase_n[PLAT_PHASE_NETWORK]),
            (unsigned long long)atomic_load(&phase_n[PLAT_PHASE_APPLY]),
            (unsigned long long)atomic_load(&phase_n[PLAT_PHASE_COMMIT]));
}

static void trace_init(void)
{
    const char *v = getenv("CMC_TRACE_PHASES");
    trace_on = v != NULL && strcmp(v, "1") == 0;
    if (trace_on && atexit(trace_report) != 0)
        trace_on = 0;
}

uint64_t plat_phase_begin(void)
{
    pthread_once(&trace_once, trace_init);
    return trace_on ? now_ns() : 0;
}

void plat_phase_end(enum plat_phase phase, uint64_t t0)
{
    if (t0 == 0 || phase >= PLAT_PHASE_COUNT)
        return;
    atomic_fetch_add(&phase_ns[phase], now_ns() - t0);
    atomic_fetch_add(&phase_n[phase], 1);
}
