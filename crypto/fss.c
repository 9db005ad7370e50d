/*
 * fss.c - forward-secure audit sealing (contract in fss.h) on libsodium's keyed BLAKE2b.
 */
#include "crypto/fss.h"

#include "platform/err.h"

#include <string.h>

#include <sodium.h>

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void cry_fss_evolve(uint8_t key[CRY_FSS_KEY_BYTES])
{
    static const char domain[] = "cmc-audit-evolve-1";
    uint8_t next[CRY_FSS_KEY_BYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof next);
    crypto_generichash_update(&st, (const uint8_t *)domain, sizeof domain - 1);
    crypto_generichash_update(&st, key, CRY_FSS_KEY_BYTES);
    crypto_generichash_final(&st, next, sizeof next);
    memcpy(key, next, sizeof next);
    sodium_memzero(next, sizeof next);
    sodium_memzero(&st, sizeof st);
}

int cry_fss_advance(uint8_t key[CRY_FSS_KEY_BYTES], uint64_t steps)
{
    if (steps > CRY_FSS_MAX_STEPS)
        return cmc_fail(CMC_ERR_TOO_LARGE, "audit seal: %llu key steps (at most %u)",
                        (unsigned long long)steps, CRY_FSS_MAX_STEPS);
    for (uint64_t i = 0; i < steps; i++)
        cry_fss_evolve(key);
    return CMC_OK;
}

static void keyed(const uint8_t key[CRY_FSS_KEY_BYTES], const char *domain, const uint8_t *a,
                  size_t a_len, const uint8_t *b, size_t b_len, uint8_t out[CRY_FSS_SEAL_BYTES])
{
    crypto_generichash_state st;
    uint8_t zero = 0;
    crypto_generichash_init(&st, key, CRY_FSS_KEY_BYTES, CRY_FSS_SEAL_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)domain, strlen(domain));
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, a, a_len);
    crypto_generichash_update(&st, b, b_len);
    crypto_generichash_final(&st, out, CRY_FSS_SEAL_BYTES);
    sodium_memzero(&st, sizeof st);
}

void cry_fss_seal(const uint8_t key[CRY_FSS_KEY_BYTES], uint64_t seq,
                  const uint8_t entry_hash[CRY_HASH_BYTES], uint8_t out[CRY_FSS_SEAL_BYTES])
{
    uint8_t s[8];
    put_be64(s, seq);
    keyed(key, "cmc-audit-seal-1", s, sizeof s, entry_hash, CRY_HASH_BYTES, out);
}

void cry_fss_state(const uint8_t key[CRY_FSS_KEY_BYTES], uint64_t sealed, uint64_t newest,
                   uint8_t out[CRY_FSS_SEAL_BYTES])
{
    uint8_t a[8], b[8];
    put_be64(a, sealed);
    put_be64(b, newest);
    keyed(key, "cmc-audit-state-1", a, sizeof a, b, sizeof b, out);
}

int cry_fss_check(const uint8_t a[CRY_FSS_SEAL_BYTES], const uint8_t b[CRY_FSS_SEAL_BYTES])
{
    return sodium_memcmp(a, b, CRY_FSS_SEAL_BYTES) == 0 ? CMC_OK : CMC_ERR_TAMPERED;
}
