/*
 * throttle.h - the persistent unlock throttle of a key-slot file (internal to crypto/).
 *
 * The throttle counts; it never reads a clock. Failed unlocks are counted in a small
 * companion file "<slot file>.throttle" and, for the user tried, inside that user's slot
 * (slots.c), and the larger count rules. After CRY_THROTTLE_FREE failures each further
 * attempt first runs cry_throttle_work(failures) extra Argon2id derivations with the slot's
 * own limits, so the cost of a guess grows with the number of guesses and no faked, wound
 * or reset clock shortens it. Attempts are serialised by an exclusive file lock
 * ("<slot file>.lock", held across the whole attempt), so parallel guesses each pay and
 * each count.
 *
 * The file is not secret and not authenticated; deleting it does not reset the count kept
 * in the slot. A malformed throttle file is treated as "the free attempts are used up"
 * rather than as an error, so a damaged file can never lock a clinician out.
 */
#ifndef CMC_CRY_THROTTLE_H
#define CMC_CRY_THROTTLE_H

#include <stdint.h>

#define CRY_THROTTLE_FREE 3          /* failures allowed at no extra cost */
#define CRY_THROTTLE_WORK_CAP 100    /* most extra derivations one attempt runs */
#define CRY_THROTTLE_FILE_BYTES 16   /* docs/STORAGE.md has the layout */
#define CRY_THROTTLE_V1_BYTES 68     /* the earlier, clock-based layout: its count is kept */

struct cry_throttle {
    uint32_t failures;   /* failed (or unfinished) attempts since the last success */
};

/* Reads the throttle file; an absent file is a clean record. CMC_ERR_NOMEM / CMC_ERR_IO. */
int cry_throttle_load(const char *path, struct cry_throttle *t);
/* Extra derivations the next attempt runs after `failures` failures: 0 for the free ones,
 * then 1, 2, 3, ... up to CRY_THROTTLE_WORK_CAP. */
uint32_t cry_throttle_work(uint32_t failures);
/* Writes `failures` (atomic replace). */
int cry_throttle_store(const char *path, uint32_t failures);
/* Forgets all failures (removes the file). */
int cry_throttle_clear(const char *path);

#endif
