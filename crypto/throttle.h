/*
 * throttle.h - the persistent unlock throttle of a key-slot file (internal to crypto/).
 *
 * Failed unlocks are counted in a small companion file "<slot file>.throttle" so that the
 * delay survives a restart of the program. After CRY_THROTTLE_FREE failures each further
 * attempt must wait 2^(failures - CRY_THROTTLE_FREE) seconds after the last failure, capped
 * at CRY_THROTTLE_CAP_S. Elapsed time is measured with the boot clock while the device has
 * not rebooted (so changing the wall clock, either way, cannot shorten a wait); after a
 * reboot only the larger of the uptime and the wall-clock difference counts.
 *
 * The file is not secret and not authenticated: deleting it needs the same access as
 * copying the slot file for an offline attack, which Argon2id is there to slow. A malformed
 * throttle file is treated as "the free attempts are used up" rather than as an error, so
 * a damaged file can never lock a clinician out for good.
 *
 * Not thread-safe against concurrent unlocks of the same file; the agent holds the data
 * directory's process lock.
 */
#ifndef CMC_CRY_THROTTLE_H
#define CMC_CRY_THROTTLE_H

#include <stdint.h>

#define CRY_THROTTLE_FREE 3          /* failures allowed without a delay */
#define CRY_THROTTLE_CAP_S 900       /* longest delay: 15 minutes */
#define CRY_THROTTLE_FILE_BYTES 68   /* docs/STORAGE.md has the layout */

struct cry_throttle {
    uint32_t failures;   /* failed (or unfinished) attempts since the last success */
    int64_t wall_at;     /* plat_wall_now() at the last failure */
    int64_t boot_at;     /* plat_boot_now() at the last failure */
    char boot_id[37];    /* plat_boot_id() at the last failure; "" when unknown */
};

/* Reads the throttle file; an absent file is a clean record. CMC_ERR_NOMEM / CMC_ERR_IO. */
int cry_throttle_load(const char *path, struct cry_throttle *t);
/* Seconds to wait before the next attempt (0 = now), from the record and the clocks. */
int64_t cry_throttle_wait(const struct cry_throttle *t);
/* Counts one more failure, stamped now, in *t and on disk (atomic replace). */
int cry_throttle_count_failure(const char *path, struct cry_throttle *t);
/* Forgets all failures (removes the file). */
int cry_throttle_clear(const char *path);

#endif
