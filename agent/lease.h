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

/* ---- the warning before the lock, and the break-glass view after it ----------------------
 *
 * A crew must not meet the lock unwarned: within CMC_LEASE_WARN_DAYS days (default
 * LEASE_WARN_DAYS_DEFAULT) of locking, `status`, every card and the page say "this copy locks
 * in N days without a sync". Once locked, an authenticated user (their PIN) may still open one
 * patient's card by NHS number with a typed reason ("break glass"); the view is shown under a
 * red "copy is N days old" banner and audited as AUDIT_BREAK_GLASS with the reason
 * (docs/HAZARDS.md, H-26, weighs a crew kept from a DNACPR against a stale copy). */
#define LEASE_WARN_DAYS_DEFAULT 2
#define LEASE_WARN_DAYS_MAX 365
/* A break-glass reason: typed, one line, LEASE_REASON_MIN..LEASE_REASON_MAX bytes once trimmed. */
#define LEASE_REASON_MIN 8
#define LEASE_REASON_MAX 200

/* The warning threshold from CMC_LEASE_WARN_DAYS (0 turns the warning off); CMC_ERR_USAGE
 * when it is set but not a whole number of days 0..LEASE_WARN_DAYS_MAX. */
int lease_warn_days(int *out);
/* Whole days (rounded up) before `li`'s lease locks when that is within `warn_days`; -1 when
 * there is no lease, it is locked already or the lock is further off. */
int lease_days_left(const struct lease_info *li, int warn_days);
/* The copy's age in whole days since the last sync (or enrollment); -1 when unknown. */
int64_t lease_age_days(const struct lease_info *li);
/* Sets ctx's lease fields (agent/card.h): lease_days_left from the lease and
 * CMC_LEASE_WARN_DAYS (its default when unset or bad), break_glass = `broken`, and
 * copy_age_days. ctx must already hold `now` and `last_sync` (card_context_init). */
struct card_context;
void lease_card_context(store *s, int broken, struct card_context *ctx);
/* Checks a break-glass reason and trims it into out (LEASE_REASON_MAX + 1 bytes):
 * CMC_ERR_USAGE naming what is wrong (missing, too short, too long, not one line of text). */
int lease_reason_check(const char *reason, char *out);

#endif
