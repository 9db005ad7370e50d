/*
 * test_sync_reqsig.c - request signatures: a device's signed request verifies on the hub
 * side, and any change to what was signed, or to the headers, is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/reqsig.h"
#include "tests/support/bundle_fixture.h"

#include <stdio.h>
#include <string.h>

static const char *device_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
static const uint8_t body[] = "\x82\xa4" "code" "\xa3" "abc";

static void sign_fixed(struct tst_bundle_fixture *k, struct reqsig_headers *h)
{
    uint8_t nonce[REQSIG_NONCE_BYTES];
    memset(nonce, 0xab, sizeof nonce);
    assert_int_equal(reqsig_sign_at(k->sk, device_id, "POST", "/v1/push", body, sizeof body - 1,
                                    1700000000, nonce, h),
                     CMC_OK);
}

static int verify_as(struct tst_bundle_fixture *k, const struct reqsig_headers *h, const char *method,
                     const char *path, const uint8_t *b, size_t blen)
{
    struct reqsig_request req;
    int rc = reqsig_parse(h->device, h->time, h->nonce, h->signature, &req);
    if (rc != CMC_OK)
        return rc;
    return reqsig_verify(&req, k->pk, method, path, b, blen);
}

static void test_canonical_string_is_the_documented_one(void **state)
{
    (void)state;
    char *s = NULL;
    size_t len = 0;
    uint8_t h[CRY_HASH_BYTES];
    char hex[2 * CRY_HASH_BYTES + 1];
    char want[256];

    assert_int_equal(reqsig_canonical("GET", "/v1/pull?cursor=7", 1700000000,
                                      "000102030405060708090a0b0c0d0e0f", NULL, 0, &s, &len),
                     CMC_OK);
    cry_hash(h, "", 0);
    cry_hex(hex, h, sizeof h);
    snprintf(want, sizeof want,
             "CMC-REQ-1\nGET\n/v1/pull?cursor=7\n1700000000\n000102030405060708090a0b0c0d0e0f\n%s",
             hex);
    assert_string_equal(s, want);
    assert_int_equal(len, strlen(want));
    cmc_free(s);
}

static void test_sign_then_verify(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers h;
    struct reqsig_request req;

    sign_fixed(k, &h);
    assert_string_equal(h.device, device_id);
    assert_string_equal(h.time, "1700000000");
    assert_string_equal(h.nonce, "abababababababababababababababab");
    assert_int_equal(strlen(h.signature), REQSIG_SIG_HEX_LEN);

    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, h.signature, &req), CMC_OK);
    assert_string_equal(req.device_id, device_id);
    assert_int_equal(req.time, 1700000000);
    assert_string_equal(req.nonce, h.nonce);
    assert_int_equal(reqsig_verify(&req, k->pk, "POST", "/v1/push", body, sizeof body - 1),
                     CMC_OK);
}

static void test_sign_now_uses_clock_and_fresh_nonce(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers a, b;

    plat_fake_clock_enable(1800000000, 0);
    assert_int_equal(reqsig_sign(k->sk, device_id, "GET", "/v1/pull?cursor=0", NULL, 0, &a),
                     CMC_OK);
    assert_int_equal(reqsig_sign(k->sk, device_id, "GET", "/v1/pull?cursor=0", NULL, 0, &b),
                     CMC_OK);
    plat_fake_clock_disable();
    assert_string_equal(a.time, "1800000000");
    assert_string_not_equal(a.nonce, b.nonce);
    assert_int_equal(verify_as(k, &a, "GET", "/v1/pull?cursor=0", NULL, 0), CMC_OK);
    assert_int_equal(verify_as(k, &b, "GET", "/v1/pull?cursor=0", NULL, 0), CMC_OK);
}

static void test_tampered_request_fails(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers h, t;
    uint8_t other_body[sizeof body];

    sign_fixed(k, &h);
    /* method, path, query, body */
    assert_int_equal(verify_as(k, &h, "GET", "/v1/push", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_as(k, &h, "POST", "/v1/audit", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_as(k, &h, "POST", "/v1/push?x=1", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    memcpy(other_body, body, sizeof body);
    other_body[3] ^= 1;
    assert_int_equal(verify_as(k, &h, "POST", "/v1/push", other_body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_as(k, &h, "POST", "/v1/push", body, sizeof body - 2),
                     CMC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_as(k, &h, "POST", "/v1/push", NULL, 0), CMC_ERR_UNAUTHORIZED);

    /* time */
    t = h;
    strcpy(t.time, "1700000001");
    assert_int_equal(verify_as(k, &t, "POST", "/v1/push", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    /* nonce */
    t = h;
    t.nonce[0] = t.nonce[0] == 'a' ? 'b' : 'a';
    assert_int_equal(verify_as(k, &t, "POST", "/v1/push", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    /* the device id is not in the signed string: the hub looks the key up by it, so a
     * request claimed by another device is checked against that device's key and fails */
    uint8_t other_pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *other_sk = NULL;
    struct reqsig_request req;
    assert_int_equal(cry_sign_keypair(other_pk, &other_sk), CMC_OK);
    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, h.signature, &req), CMC_OK);
    assert_int_equal(reqsig_verify(&req, other_pk, "POST", "/v1/push", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    cry_secret_free(other_sk);
    /* every bit of the signature */
    for (size_t i = 0; i < REQSIG_SIG_HEX_LEN; i++) {
        t = h;
        t.signature[i] = t.signature[i] == '0' ? '1' : '0';
        assert_int_equal(verify_as(k, &t, "POST", "/v1/push", body, sizeof body - 1),
                         CMC_ERR_UNAUTHORIZED);
    }
}

static void test_malformed_headers_refused(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers h;
    struct reqsig_request req;
    char buf[200];

    sign_fixed(k, &h);
    assert_int_equal(reqsig_parse(NULL, h.time, h.nonce, h.signature, &req), CMC_ERR_UNAUTHORIZED);
    assert_non_null(strstr(cmc_errmsg(), "X-CMC-Device"));
    assert_int_equal(reqsig_parse(h.device, NULL, h.nonce, h.signature, &req), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(reqsig_parse(h.device, h.time, NULL, h.signature, &req), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, NULL, &req), CMC_ERR_UNAUTHORIZED);
    assert_non_null(strstr(cmc_errmsg(), "X-CMC-Signature"));

    /* non-canonical spellings: each would let one signature cover two header texts */
    const char *bad_times[] = { "", "01700000000", "+1700000000", "-5", "17e8", "1700000000 ",
                                "99999999999999999999" };
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++)
        assert_int_equal(reqsig_parse(h.device, bad_times[i], h.nonce, h.signature, &req),
                         CMC_ERR_UNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s", h.nonce);
    buf[5] = 'A';
    assert_int_equal(reqsig_parse(h.device, h.time, buf, h.signature, &req), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(reqsig_parse(h.device, h.time, "abcd", h.signature, &req),
                     CMC_ERR_UNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s", h.signature);
    buf[0] = 'G';
    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, buf, &req), CMC_ERR_UNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s00", h.signature);
    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, buf, &req), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(reqsig_parse("0F8FAD5B-D9CB-469F-A165-70867728950E", h.time, h.nonce,
                                  h.signature, &req),
                     CMC_ERR_UNAUTHORIZED);
    assert_int_equal(reqsig_parse("not-a-uuid", h.time, h.nonce, h.signature, &req),
                     CMC_ERR_UNAUTHORIZED);
}

static void test_paths_that_would_break_the_canonical_form_refused(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers h;
    uint8_t nonce[REQSIG_NONCE_BYTES] = { 0 };

    assert_int_equal(reqsig_sign_at(k->sk, device_id, "GET", "/v1/pull\n1", NULL, 0, 1, nonce, &h),
                     CMC_ERR_INVALID);
    assert_int_equal(reqsig_sign_at(k->sk, device_id, "GET", "v1/pull", NULL, 0, 1, nonce, &h),
                     CMC_ERR_INVALID);
    assert_int_equal(reqsig_sign_at(k->sk, device_id, "get", "/v1/pull", NULL, 0, 1, nonce, &h),
                     CMC_ERR_INVALID);
    assert_int_equal(reqsig_sign_at(k->sk, device_id, "GET", "/v1/pull x", NULL, 0, 1, nonce, &h),
                     CMC_ERR_INVALID);
    assert_int_equal(reqsig_sign_at(k->sk, "bad", "GET", "/v1/pull", NULL, 0, 1, nonce, &h),
                     CMC_ERR_INVALID);
    /* and the verifier answers 401, not a crash, for a request line it cannot canonicalise */
    struct reqsig_request req;
    sign_fixed(k, &h);
    assert_int_equal(reqsig_parse(h.device, h.time, h.nonce, h.signature, &req), CMC_OK);
    assert_int_equal(reqsig_verify(&req, k->pk, "POST", "/v1/push\r\nX: y", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
}

static void test_time_window(void **state)
{
    (void)state;
    struct reqsig_request req;
    int64_t skew = 0;
    memset(&req, 0, sizeof req);

    req.time = 1700000000;
    assert_int_equal(reqsig_check_time(&req, 1700000000 + 300, &skew), CMC_OK);
    assert_int_equal(skew, -300);
    assert_int_equal(reqsig_check_time(&req, 1700000000 - 300, &skew), CMC_OK);
    assert_int_equal(skew, 300);
    assert_int_equal(reqsig_check_time(&req, 1700000000 + 301, &skew), CMC_ERR_CLOCK);
    assert_int_equal(skew, -301);
    assert_non_null(strstr(cmc_errmsg(), "wrong by 301 seconds"));
    assert_int_equal(reqsig_check_time(&req, 1700000000 - 3600, NULL), CMC_ERR_CLOCK);
    assert_non_null(strstr(cmc_errmsg(), "wrong by 3600 seconds"));
    req.time = INT64_MAX;
    assert_int_equal(reqsig_check_time(&req, -5, &skew), CMC_ERR_CLOCK);
    assert_int_equal(skew, INT64_MAX);
}

static void test_out_of_memory(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct reqsig_headers h;
    uint8_t nonce[REQSIG_NONCE_BYTES] = { 0 };
    int rc;
    long n = 0;
    do {
        cmc_alloc_fail_after(n++, 1);
        rc = reqsig_sign_at(k->sk, device_id, "GET", "/v1/pull", NULL, 0, 1, nonce, &h);
        cmc_alloc_fail_after(-1, 0);
        assert_true(rc == CMC_OK || rc == CMC_ERR_NOMEM);
    } while (rc != CMC_OK && n < 50);
    assert_int_equal(rc, CMC_OK);
    assert_true(n > 1); /* at least one failing allocation was exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_string_is_the_documented_one),
        cmocka_unit_test(test_sign_then_verify),
        cmocka_unit_test(test_sign_now_uses_clock_and_fresh_nonce),
        cmocka_unit_test(test_tampered_request_fails),
        cmocka_unit_test(test_malformed_headers_refused),
        cmocka_unit_test(test_paths_that_would_break_the_canonical_form_refused),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, tst_sign_keys_setup, tst_bundle_fixture_teardown);
}
