/*
 * test_crypto_primitives.c - secure memory, Ed25519, BLAKE2b, hex and sealing (crypto/cry.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"

static int setup(void **state)
{
    (void)state;
    return cry_init() == CMC_OK ? 0 : -1;
}

static void unhex_ok(uint8_t *out, size_t len, const char *hex)
{
    assert_int_equal(cry_unhex(out, len, hex), CMC_OK);
}

/* ---- secure memory --------------------------------------------------------------------- */

static void test_secret_new_is_zeroed(void **state)
{
    (void)state;
    struct cry_secret *s = NULL;
    assert_int_equal(cry_secret_new(48, &s), CMC_OK);
    assert_non_null(s);
    assert_int_equal(s->len, 48);
    static const uint8_t zeros[48];
    assert_memory_equal(s->buf, zeros, sizeof zeros);
    cry_secret_free(s);
    cry_secret_free(NULL);
}

static void test_secret_new_out_of_memory(void **state)
{
    (void)state;
    struct cry_secret *s = (struct cry_secret *)(uintptr_t)1;
    cmc_alloc_fail_after(0, 0);
    int rc = cry_secret_new(32, &s);
    cmc_alloc_fail_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_NOMEM);
    assert_null(s);
}

static void test_memeq_and_memzero(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    cry_random(a, sizeof a);
    memcpy(b, a, sizeof b);
    assert_int_equal(cry_memeq(a, b, sizeof a), 1);
    b[31] ^= 1;
    assert_int_equal(cry_memeq(a, b, sizeof a), 0);
    cry_memzero(a, sizeof a);
    static const uint8_t zeros[32];
    assert_memory_equal(a, zeros, sizeof a);
}

static void test_random_differs(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    cry_random(a, sizeof a);
    cry_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
}

/* ---- signatures ------------------------------------------------------------------------ */

/* RFC 8032 section 7.1, test 1 (empty message). */
static void test_sign_known_answer(void **state)
{
    (void)state;
    struct cry_secret *sk = NULL;
    uint8_t pk[CRY_SIGN_PK_BYTES], want_pk[CRY_SIGN_PK_BYTES], sig[CRY_SIG_BYTES],
        want_sig[CRY_SIG_BYTES];
    assert_int_equal(cry_secret_new(CRY_SIGN_SK_BYTES, &sk), CMC_OK);
    unhex_ok(sk->buf, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    unhex_ok(want_pk, sizeof want_pk,
             "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    memcpy(sk->buf + 32, want_pk, 32);
    unhex_ok(want_sig, sizeof want_sig,
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
             "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    cry_sign_public(sk, pk);
    assert_memory_equal(pk, want_pk, sizeof pk);
    assert_int_equal(cry_sign(sk, "", 0, sig), CMC_OK);
    assert_memory_equal(sig, want_sig, sizeof sig);
    assert_int_equal(cry_verify(pk, "", 0, sig), CMC_OK);
    cry_secret_free(sk);
}

static void test_sign_verify_and_tamper(void **state)
{
    (void)state;
    uint8_t pk[CRY_SIGN_PK_BYTES], pk2[CRY_SIGN_PK_BYTES], sig[CRY_SIG_BYTES];
    struct cry_secret *sk = NULL, *other = NULL;
    uint8_t msg[100];
    cry_random(msg, sizeof msg);
    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    cry_sign_public(sk, pk2);
    assert_memory_equal(pk, pk2, sizeof pk);
    assert_int_equal(cry_sign(sk, msg, sizeof msg, sig), CMC_OK);
    assert_int_equal(cry_verify(pk, msg, sizeof msg, sig), CMC_OK);

    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] ^= 0x01;
        assert_int_equal(cry_verify(pk, msg, sizeof msg, sig), CMC_ERR_TAMPERED);
        msg[i] ^= 0x01;
    }
    for (size_t i = 0; i < sizeof sig; i++) {
        sig[i] ^= 0x80;
        assert_int_equal(cry_verify(pk, msg, sizeof msg, sig), CMC_ERR_TAMPERED);
        sig[i] ^= 0x80;
    }
    /* A shorter message (truncation) and another key's signature are refused too. */
    assert_int_equal(cry_verify(pk, msg, sizeof msg - 1, sig), CMC_ERR_TAMPERED);
    assert_int_equal(cry_sign_keypair(pk2, &other), CMC_OK);
    assert_int_equal(cry_verify(pk2, msg, sizeof msg, sig), CMC_ERR_TAMPERED);
    assert_int_equal(cry_verify(pk, msg, sizeof msg, sig), CMC_OK);

    /* A key of the wrong size is a clean error, not a crash. */
    struct cry_secret *short_key = NULL;
    assert_int_equal(cry_secret_new(32, &short_key), CMC_OK);
    assert_int_equal(cry_sign(short_key, msg, sizeof msg, sig), CMC_ERR_INVALID);
    cry_secret_free(short_key);
    cry_secret_free(other);
    cry_secret_free(sk);
}

static void test_sign_keypair_out_of_memory(void **state)
{
    (void)state;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk = NULL;
    cmc_alloc_fail_after(0, 1);
    int rc = cry_sign_keypair(pk, &sk);
    cmc_alloc_fail_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_NOMEM);
    assert_null(sk);
}

/* ---- hashes ---------------------------------------------------------------------------- */

static void test_hash_known_answers(void **state)
{
    (void)state;
    uint8_t out[CRY_HASH_BYTES], want[CRY_HASH_BYTES];
    cry_hash(out, "", 0);
    unhex_ok(want, sizeof want, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    assert_memory_equal(out, want, sizeof out);
    cry_hash(out, "abc", 3);
    unhex_ok(want, sizeof want, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    assert_memory_equal(out, want, sizeof out);
}

static void test_hash_incremental_matches_one_shot(void **state)
{
    (void)state;
    /* 1 KiB of 0x00..0xff repeated; the answer was computed independently. */
    uint8_t data[1024], want[CRY_HASH_BYTES], one[CRY_HASH_BYTES], inc[CRY_HASH_BYTES];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    unhex_ok(want, sizeof want, "f1551feeb252c7e60bb362205bd1ac2f70b145260a91d41e8c5d0a187549a5f2");
    cry_hash(one, data, sizeof data);
    assert_memory_equal(one, want, sizeof one);
    static const size_t splits[] = { 0, 1, 127, 128, 129, 500, 1023, 1024 };
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        struct cry_hash_state st;
        cry_hash_init(&st);
        cry_hash_update(&st, data, splits[k]);
        cry_hash_update(&st, data + splits[k], sizeof data - splits[k]);
        cry_hash_final(&st, inc);
        assert_memory_equal(inc, want, sizeof inc);
    }
    /* Byte by byte (exercises the buffering inside the state). */
    struct cry_hash_state st;
    cry_hash_init(&st);
    for (size_t i = 0; i < sizeof data; i++)
        cry_hash_update(&st, data + i, 1);
    cry_hash_final(&st, inc);
    assert_memory_equal(inc, want, sizeof inc);
}

/* ---- hex ------------------------------------------------------------------------------- */

static void test_hex_round_trip_and_strictness(void **state)
{
    (void)state;
    uint8_t in[5] = { 0x00, 0x01, 0xab, 0xcd, 0xff }, out[5];
    char hex[11];
    cry_hex(hex, in, sizeof in);
    assert_string_equal(hex, "0001abcdff");
    assert_int_equal(cry_unhex(out, sizeof out, hex), CMC_OK);
    assert_memory_equal(out, in, sizeof in);
    assert_int_equal(cry_unhex(out, sizeof out, "0001ABCDFF"), CMC_OK);
    assert_memory_equal(out, in, sizeof in);

    assert_int_equal(cry_unhex(out, sizeof out, "0001abcdf"), CMC_ERR_INVALID);   /* short */
    assert_int_equal(cry_unhex(out, sizeof out, "0001abcdff0"), CMC_ERR_INVALID); /* long */
    assert_int_equal(cry_unhex(out, sizeof out, "0001abcdfg"), CMC_ERR_INVALID);  /* not hex */
    assert_int_equal(cry_unhex(out, sizeof out, "0001 bcdff"), CMC_ERR_INVALID);  /* space */
    assert_int_equal(cry_unhex(out, sizeof out, ""), CMC_ERR_INVALID);
    assert_int_equal(cry_unhex(out, sizeof out, NULL), CMC_ERR_INVALID);
}

/* ---- sealing --------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_new_is_zeroed),
        cmocka_unit_test(test_secret_new_out_of_memory),
        cmocka_unit_test(test_memeq_and_memzero),
        cmocka_unit_test(test_random_differs),
        cmocka_unit_test(test_sign_known_answer),
        cmocka_unit_test(test_sign_verify_and_tamper),
        cmocka_unit_test(test_sign_keypair_out_of_memory),
        cmocka_unit_test(test_hash_known_answers),
        cmocka_unit_test(test_hash_incremental_matches_one_shot),
        cmocka_unit_test(test_hex_round_trip_and_strictness),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
