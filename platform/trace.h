/*
 * trace.h - an opt-in breakdown of where a process spent its time, for benchmarks.
 *
 * With CMC_TRACE_PHASES=1 in the environment, the phases a user's tap goes through are timed
 * (monotonic clock) and summed, and at exit the process prints one line to stderr:
 *
 *   cmc-trace: {"cpu_ms": 80.3, "unlock_ms": 61.2, "open_ms": 0.4, "network_ms": 9.8,
 *               "apply_ms": 4.1, "commit_ms": 1.2, "requests": 3, "pages": 1, "commits": 1}
 *
 * cpu: the process's user and system CPU time (all threads) at exit; unlock: the key slot's Argon2id; open: the replica's open and migrations; network: time
 * inside HTTP requests (the device's fetching thread included: it overlaps apply); apply:
 * applying pages to the replica; commit: the replica's commits. Without the variable every
 * call is one load of a cached flag and nothing is printed. The line carries no patient data.
 */
#ifndef CMC_PLAT_TRACE_H
#define CMC_PLAT_TRACE_H

#include <stdint.h>

enum plat_phase {
    PLAT_PHASE_UNLOCK,
    PLAT_PHASE_OPEN,
    PLAT_PHASE_NETWORK,
    PLAT_PHASE_APPLY,
    PLAT_PHASE_COMMIT,
    PLAT_PHASE_COUNT
};

/* The start of a timed phase: the monotonic time in ns when tracing is on, else 0. */
uint64_t plat_phase_begin(void);
/* Adds the time since `t0` (from plat_phase_begin; 0 does nothing) to `phase`, and counts one
 * occurrence. Safe from any thread. */
void plat_phase_end(enum plat_phase phase, uint64_t t0);

#endif
