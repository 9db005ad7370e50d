/*
 * cry.c - secure memory, Ed25519 signatures, BLAKE2b hashes and hex on top of libsodium.
 * Key slots live in slots.c, the unlock throttle in throttle.c.
 */
#include "crypto/cry.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <assert.h>
#include <stdalign.h>
#include <string.h>

#include <sodium.h>

/* The public state must hold libsodium's so callers can keep it on the stack without
 * including sodium.h. */
static_assert(sizeof(struct cry_hash_state) >= sizeof(crypto_generichash_state),
              "cry_hash_state too small for crypto_generichash_state");
static_assert(alignof(struct cry_hash_state) >= alignof(crypto_generichash_state),
              "cry_hash_state under-aligned for crypto_generichash_state");
static_assert(CRY_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "seal key size");
static_assert(CRY_SEAL_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
static_assert(CRY_SEAL_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
static_assert(CRY_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "public key size");
static_assert(CRY_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "secret key size");
static_assert(CRY_SIG_BYTES == crypto_sign_BYTES, "signature size");
static_assert(CRY_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
                  CRY_HASH_BYTES <= crypto_generichash_BYTES_MAX,
              "hash size");

int cry_init(void)
{
    /* sodium_init is itself idempotent and thread-safe: 0 first time, 1 afterwards. */
    if (sodium_init() < 0)
        return cmc_fail(CMC_ERR_CRYPTO, "libsodium could not initialise");
    return CMC_OK;
}

/* ---- secure memory --------------------------------------------------------------------- */

int cry_secret_new(size_t len, struct cry_secret **out)
{
    *out = NULL;
    /* The handle comes from cmc_malloc so allocation-failure tests reach this path too. */
    struct cry_secret *s = cmc_malloc(sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory for a secret");
    s->buf = sodium_malloc(len ? len : 1);
    if (s->buf == NULL) {
        cmc_free(s);
        return cmc_fail(CMC_ERR_NOMEM, "out of secure memory");
    }
    /* sodium_malloc fills with a canary pattern; the contract promises zeros. */
    memset(s->buf, 0, len ? len : 1);
    s->len = len;
    *out = s;
    return CMC_OK;
}

void cry_secret_free(struct cry_secret *s)
{
    if (s == NULL)
        return;
    /* sodium_free zeroes the whole region before unmapping it. */
    sodium_free(s->buf);
    cmc_free(s);
}

void cry_memzero(void *p, size_t n)
{
    if (p != NULL && n > 0)
        sodium_memzero(p, n);
}

int cry_memeq(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return 1;
    return sodium_memcmp(a, b, n) == 0;
}

void cry_random(void *buf, size_t n)
{
    if (n > 0)
        randombytes_buf(buf, n);
}

/* ---- signatures ------------------------------------------------------------------------ */

int cry_sign_keypair(uint8_t pk[CRY_SIGN_PK_BYTES], struct cry_secret **sk_out)
{
    struct cry_secret *sk = NULL;
    *sk_out = NULL;
    int rc = cry_secret_new(CRY_SIGN_SK_BYTES, &sk);
    if (rc != CMC_OK)
        return rc;
    if (crypto_sign_keypair(pk, sk->buf) != 0) {
        cry_secret_free(sk);
        return cmc_fail(CMC_ERR_CRYPTO, "signing key generation failed");
    }
    *sk_out = sk;
    return CMC_OK;
}

void cry_sign_public(const struct cry_secret *sk, uint8_t pk[CRY_SIGN_PK_BYTES])
{
    if (sk == NULL || sk->len != CRY_SIGN_SK_BYTES) {
        memset(pk, 0, CRY_SIGN_PK_BYTES);
        return;
    }
    crypto_sign_ed25519_sk_to_pk(pk, sk->buf);
}

int cry_sign(const struct cry_secret *sk, const void *msg, size_t len, uint8_t sig[CRY_SIG_BYTES])
{
    if (sk == NULL || sk->len != CRY_SIGN_SK_BYTES)
        return cmc_fail(CMC_ERR_INVALID, "signing key: wrong size");
    if (msg == NULL && len > 0)
        return cmc_fail(CMC_ERR_INVALID, "message to sign missing");
    if (crypto_sign_detached(sig, NULL, msg, len, sk->buf) != 0)
        return cmc_fail(CMC_ERR_CRYPTO, "signing failed");
    return CMC_OK;
}

int cry_verify(const uint8_t pk[CRY_SIGN_PK_BYTES], const void *msg, size_t len,
               const uint8_t sig[CRY_SIG_BYTES])
{
    if (msg == NULL && len > 0)
        return cmc_fail(CMC_ERR_INVALID, "signed message missing");
    if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
        return cmc_fail(CMC_ERR_TAMPERED, "signature does not verify");
    return CMC_OK;
}

/* ---- sealed boxes ---------------------------------------------------------------------- */

static_assert(CRY_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "box public key size");
static_assert(CRY_KEY_BYTES == crypto_box_SECRETKEYBYTES, "box secret key size");
static_assert(CRY_BOX_SEAL_BYTES == crypto_box_SEALBYTES, "sealed box overhead");

int cry_box_keypair_from(uint8_t pk[CRY_BOX_PK_BYTES], struct cry_secret **sk_out,
                         const struct cry_secret *key)
{
    static const char context[] = "cmc draft box v1";
    struct cry_secret *seed = NULL, *sk = NULL;
    *sk_out = NULL;
    if (key == NULL || key->len != CRY_KEY_BYTES)
        return cmc_fail(CMC_ERR_INVALID, "box key: wrong size");
    int rc = cry_secret_new(crypto_box_SEEDBYTES, &seed);
    if (rc == CMC_OK)
        rc = cry_secret_new(CRY_KEY_BYTES, &sk);
    /* a keyed hash of a fixed context: the box pair is independent of other uses of `key` */
    if (rc == CMC_OK && crypto_generichash(seed->buf, seed->len, (const uint8_t *)context,
                                           sizeof context - 1, key->buf, key->len) != 0)
        rc = cmc_fail(CMC_ERR_CRYPTO, "box key derivation failed");
    if (rc == CMC_OK && crypto_box_seed_keypair(pk, sk->buf, seed->buf) != 0)
        rc = cmc_fail(CMC_ERR_CRYPTO, "box key derivation failed");
    cry_secret_free(seed);
    if (rc != CMC_OK) {
        cry_secret_free(sk);
        return rc;
    }
    *sk_out = sk;
    return CMC_OK;
}

int cry_box_seal(uint8_t *out, const void *msg, size_t len, const uint8_t pk[CRY_BOX_PK_BYTES])
{
    if (msg == NULL && len > 0)
        return cmc_fail(CMC_ERR_INVALID, "message to seal missing");
    if (crypto_box_seal(out, msg, len, pk) != 0)
        return cmc_fail(CMC_ERR_CRYPTO, "sealing failed");
    return CMC_OK;
}

int cry_box_open(uint8_t *out, const uint8_t *box, size_t clen, const uint8_t pk[CRY_BOX_PK_BYTES],
                 const struct cry_secret *sk)
{
    if (box == NULL || clen < CRY_BOX_SEAL_BYTES || sk == NULL || sk->len != CRY_KEY_BYTES)
        return cmc_fail(CMC_ERR_TAMPERED, "sealed box: malformed");
    if (crypto_box_seal_open(out, box, clen, pk, sk->buf) != 0)
        return cmc_fail(CMC_ERR_TAMPERED, "sealed box: does not open with this key");
    return CMC_OK;
}

/* ---- hashes ---------------------------------------------------------------------------- */

void cry_hash(uint8_t out[CRY_HASH_BYTES], const void *msg, size_t len)
{
    crypto_generichash(out, CRY_HASH_BYTES, msg, len, NULL, 0);
}

static crypto_generichash_state *hash_state(struct cry_hash_state *st)
{
    return (crypto_generichash_state *)(void *)st->opaque;
}

void cry_hash_init(struct cry_hash_state *st)
{
    crypto_generichash_init(hash_state(st), NULL, 0, CRY_HASH_BYTES);
}

void cry_hash_update(struct cry_hash_state *st, const void *msg, size_t len)
{
    if (len > 0)
        crypto_generichash_update(hash_state(st), msg, len);
}

void cry_hash_final(struct cry_hash_state *st, uint8_t out[CRY_HASH_BYTES])
{
    crypto_generichash_final(hash_state(st), out, CRY_HASH_BYTES);
    /* The state of a keyed or sensitive hash must not linger on the caller's stack. */
    sodium_memzero(st, sizeof *st);
}

/* ---- hex ------------------------------------------------------------------------------- */

void cry_hex(char *out, const uint8_t *in, size_t len)
{
    /* sodium_bin2hex runs in constant time, so hex of a key leaks nothing by timing. */
    sodium_bin2hex(out, 2 * len + 1, in, len);
}

int cry_unhex(uint8_t *out, size_t len, const char *hex)
{
    if (hex == NULL)
        return cmc_fail(CMC_ERR_INVALID, "hex string missing");
    if (strlen(hex) != 2 * len)
        return cmc_fail(CMC_ERR_INVALID, "hex string must be %zu digits", 2 * len);
    size_t got = 0;
    const char *end = NULL;
    if (sodium_hex2bin(out, len, hex, 2 * len, NULL, &got, &end) != 0 || got != len ||
        end != hex + 2 * len) {
        sodium_memzero(out, len);
        return cmc_fail(CMC_ERR_INVALID, "not a hex string");
    }
    return CMC_OK;
}
