/*
 * fss.h - forward-secure sealing of the device's audit log (after journald's Forward Secure
 * Sealing; docs/PROTOCOL.md, "Audit seals").
 *
 * At enrollment the hub draws a 32-byte seed and gives it to the device; it is the key of
 * the first sealed entry, K_1. Each entry the device records is sealed with the current key
 * and the key then moves one way, K_{i+1} = BLAKE2b-256("cmc-audit-evolve-1" || K_i); the
 * device keeps only the current key, so whoever takes the device later holds K_{n+1} and
 * cannot seal (or reseal) any entry before it. The hub keeps the seed's line too and checks
 * every seal as entries arrive.
 *
 *   seal_i = BLAKE2b-256 keyed with K_i of ("cmc-audit-seal-1" || 0x00 || seq (be64)
 *            || the entry's chain hash)
 *   state  = BLAKE2b-256 keyed with K_{n+1} of ("cmc-audit-state-1" || n (be64)
 *            || newest seq (be64))
 *
 * `state` tells the hub, with the key only the current device holds, how many entries it has
 * sealed and the seq of the newest: a tail deleted before upload, or a replica put back to an
 * older copy, disagrees with it.
 *
 * Pure functions on caller buffers, thread-safe. Keys are CRY_FSS_KEY_BYTES; a caller keeps
 * them in memory only as long as it needs and zeroes them (cry_memzero).
 */
#ifndef CMC_FSS_H
#define CMC_FSS_H

#include "crypto/cry.h"

#include <stddef.h>
#include <stdint.h>

#define CRY_FSS_KEY_BYTES 32
#define CRY_FSS_SEAL_BYTES 32
#define CRY_FSS_MAX_STEPS 10000000u /* the most keys cry_fss_advance moves in one call */

/* key <- the next key; the old one is overwritten. */
void cry_fss_evolve(uint8_t key[CRY_FSS_KEY_BYTES]);
/* Moves the key `steps` times. CMC_ERR_TOO_LARGE past CRY_FSS_MAX_STEPS (key unchanged). */
int cry_fss_advance(uint8_t key[CRY_FSS_KEY_BYTES], uint64_t steps);
/* The seal of entry `seq` whose chain hash is `entry_hash`, with that entry's key. */
void cry_fss_seal(const uint8_t key[CRY_FSS_KEY_BYTES], uint64_t seq,
                  const uint8_t entry_hash[CRY_HASH_BYTES], uint8_t out[CRY_FSS_SEAL_BYTES]);
/* The state tag: `sealed` entries sealed so far, the newest with seq `newest`, under the
 * current (next unused) key. */
void cry_fss_state(const uint8_t key[CRY_FSS_KEY_BYTES], uint64_t sealed, uint64_t newest,
                   uint8_t out[CRY_FSS_SEAL_BYTES]);
/* Constant-time comparison of two seals: CMC_OK or CMC_ERR_TAMPERED. */
CRY_MUST_CHECK int cry_fss_check(const uint8_t a[CRY_FSS_SEAL_BYTES],
                                 const uint8_t b[CRY_FSS_SEAL_BYTES]);

#endif
