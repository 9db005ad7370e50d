/*
 * lease.h - the offline lease: the most days a replica may go without a successful sync
 * before it locks (hub policy; docs/HAZARDS.md weighs a crew locked out of data against a
 * crew trusting stale data).
 *
 * Evidence of when the device last synced comes from the hub's signed time in the last
 * bundle, not the device's wall clock, and is guarded twice against a clock wound back:
 *   - the highest wall time this replica has seen is kept (a clock set back does not lower it);
 *   - within one boot, the boot clock (CLOCK_BOOTTIME, counts suspend, ignores wall changes)
 *     measures the time since the sync directly.
 * The elapsed time is the largest of these. Enrollment starts the lease as a sync would.
 *
 * Fails closed: a lease value that is set but cannot be read (a read error, a value that is
 * not a number) locks the replica; only a lease never set means "no lease".
 */
#ifndef CMC_LEASE_H
#define CMC_LEASE_H

#include "agent/store.h"

#include <stdint.h>

struct lease_info {
    int64_t lease_days;   /* 0: no lease */
    int64_t since;        /* hub time of the last successful sync (or enrollment); 0 unknown */
    int64_t elapsed;      /* seconds since then, by the rules above */
    int locked;
};

/* Records a successful sync (or enrollment) at the hub's signed time `hub_time`. */
int lease_note_sync(store *s, int64_t hub_time);
/* The lease as stored. When a value cannot be read: that error, with out->locked 1. */
int lease_info_get(store *s, struct lease_info *out);
/* CMC_OK, or CMC_ERR_LOCKED with one line naming the last sync date (or saying the lease
 * could not be read). Also raises the wall clock high-water mark. */
int lease_check(store *s);

#endif
