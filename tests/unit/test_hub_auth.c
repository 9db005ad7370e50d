/*
 * test_hub_auth.c - the hub's check of signed requests (hub_auth_request): a signature
 * checked by the caller before the hub's lock stands in only for the device's stored key,
 * and never for the device's state, the clock window or the nonce; seen nonces are
 * remembered for at least HUB_NONCE_KEEP seconds, per device, however many there are; and
 * last_seen is written at most once a minute. The clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/reqsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

#define PULL "/v1/pull?cursor=0"


struct device {
    char id[PLAN_ID_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk;
};

static void new_device(struct tst_hub *e, struct device *d)
{
    char code[HUB_CODE_LEN + 1];
    struct hub_enrollment en;
    memset(d, 0, sizeof *d);
    assert_int_equal(hub_device_add(e->h, "dev", "all", "urgent_care", d->id, code), CMC_OK);
    assert_int_equal(cry_sign_keypair(d->pk, &d->sk), CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, d->pk, "dev", &en), CMC_OK);
}

/* A GET of PULL signed by `sk` for device `id` at wall time `at`. */
static void sign_at(const struct cry_secret *sk, const char *id, int64_t at,
                    struct reqsig_headers *hdrs)
{
    uint8_t nonce[REQSIG_NONCE_BYTES];
    cry_random(nonce, sizeof nonce);
    assert_int_equal(reqsig_sign_at(sk, id, "GET", PULL, NULL, 0, at, nonce, hdrs), CMC_OK);
}

/* hub_auth_request on the headers, with the caller's pre-check (checked_pk may be NULL). */
static int auth(struct tst_hub *e, const struct reqsig_headers *hdrs, const uint8_t *checked_pk,
                int checked_ok, int *replay)
{
    char who[PLAN_ID_LEN + 1];
    int rc = tst_auth_get(e->h, PULL, hdrs, checked_pk, checked_ok, who, replay);
    if (rc == CMC_OK)
        assert_string_equal(who, hdrs->device);
    return rc;
}

static void test_checked_signature_stands_only_for_the_stored_key(void **state)
{
    struct tst_hub *e = *state;
    struct device d, thief;
    struct reqsig_headers hdrs;
    int replay;

    new_device(e, &d);
    new_device(e, &thief);

    /* the caller's "does not verify" against the device's key is the answer */
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, d.pk, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 0);
    assert_non_null(strstr(cmc_errmsg(), "does not verify"));

    /* another device's key signing as `d`, "checked" against that other key: the hub checks
     * with d's stored key itself and refuses */
    sign_at(thief.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, thief.pk, 1, &replay), CMC_ERR_UNAUTHORIZED);
    assert_non_null(strstr(cmc_errmsg(), "does not verify"));
    assert_int_equal(auth(e, &hdrs, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);

    /* a good signature, checked or not */
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_OK);
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, NULL, 0, &replay), CMC_OK);
    /* checked against another key, the hub still finds it good with the stored one */
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, thief.pk, 0, &replay), CMC_OK);

    /* a checked signature does not get past the clock, a replay or a revocation */
    sign_at(d.sk, d.id, TST_T0 + HUB_CLOCK_SKEW + 1, &hdrs);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_ERR_CLOCK);
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_OK);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);
    assert_int_equal(hub_device_revoke(e->h, d.id), CMC_OK);
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 0);
    assert_non_null(strstr(cmc_errmsg(), "revoked"));

    cry_secret_free(d.sk);
    cry_secret_free(thief.sk);
}

static void test_device_key(void **state)
{
    struct tst_hub *e = *state;
    struct device d;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];

    new_device(e, &d);
    assert_int_equal(hub_device_key(e->h, d.id, pk), CMC_OK);
    assert_memory_equal(pk, d.pk, CRY_SIGN_PK_BYTES);
    /* a revoked device's key is still its key; its requests are refused for its state */
    assert_int_equal(hub_device_revoke(e->h, d.id), CMC_OK);
    assert_int_equal(hub_device_key(e->h, d.id, pk), CMC_OK);
    assert_memory_equal(pk, d.pk, CRY_SIGN_PK_BYTES);
    /* registered but not enrolled, and unknown */
    assert_int_equal(hub_device_add(e->h, "later", "all", "urgent_care", id, code), CMC_OK);
    assert_int_equal(hub_device_key(e->h, id, pk), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_device_key(e->h, "00000000-0000-4000-8000-000000000000", pk),
                     CMC_ERR_NOT_FOUND);
    cry_secret_free(d.sk);
}

static void test_nonce_remembered_through_the_window(void **state)
{
    struct tst_hub *e = *state;
    struct device d;
    struct reqsig_headers first, second, third;
    int replay;

    new_device(e, &d);
    /* a device clock 300 s fast: the request stays inside the window until TST_T0 + 600 */
    sign_at(d.sk, d.id, TST_T0 + HUB_CLOCK_SKEW, &first);
    assert_int_equal(auth(e, &first, NULL, 0, &replay), CMC_OK);
    plat_fake_clock_set_wall(TST_T0 + 2 * HUB_CLOCK_SKEW - 1);
    assert_int_equal(auth(e, &first, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);

    /* seen just before the hub's memory turns over, replayed well after it has */
    plat_fake_clock_set_wall(TST_T0 + HUB_NONCE_KEEP - 100);
    sign_at(d.sk, d.id, TST_T0 + HUB_NONCE_KEEP - 100 + HUB_CLOCK_SKEW, &second);
    assert_int_equal(auth(e, &second, NULL, 0, &replay), CMC_OK);
    plat_fake_clock_set_wall(TST_T0 + HUB_NONCE_KEEP + 50);
    sign_at(d.sk, d.id, TST_T0 + HUB_NONCE_KEEP + 50 + HUB_CLOCK_SKEW, &third);
    assert_int_equal(auth(e, &third, NULL, 0, &replay), CMC_OK);
    plat_fake_clock_set_wall(TST_T0 + HUB_NONCE_KEEP - 100 + 2 * HUB_CLOCK_SKEW - 1);
    assert_int_equal(auth(e, &second, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);
    assert_int_equal(auth(e, &third, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);

    /* after a long quiet spell, old requests fail the clock check, new ones are served */
    plat_fake_clock_set_wall(TST_T0 + 10 * HUB_NONCE_KEEP);
    assert_int_equal(auth(e, &second, NULL, 0, &replay), CMC_ERR_CLOCK);
    sign_at(d.sk, d.id, TST_T0 + 10 * HUB_NONCE_KEEP, &first);
    assert_int_equal(auth(e, &first, NULL, 0, &replay), CMC_OK);
    assert_int_equal(auth(e, &first, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);

    /* a wall clock set back keeps what was seen */
    plat_fake_clock_set_wall(TST_T0 + 10 * HUB_NONCE_KEEP - 200);
    assert_int_equal(auth(e, &first, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);
    cry_secret_free(d.sk);
}

/* Headers with a given nonce and a placeholder signature: the signature is "checked" by the
 * caller, so many requests cost no Ed25519 work. */
static void fake_headers(const struct device *d, unsigned long i, struct reqsig_headers *hdrs)
{
    memset(hdrs, 0, sizeof *hdrs);
    memcpy(hdrs->device, d->id, sizeof hdrs->device);
    snprintf(hdrs->time, sizeof hdrs->time, "%lld", (long long)plat_wall_now());
    snprintf(hdrs->nonce, sizeof hdrs->nonce, "%016lx%016lx", i * 0x9e3779b97f4a7c15ul, i);
    memset(hdrs->signature, 'a', REQSIG_SIG_HEX_LEN);
}

static void test_many_nonces_per_device(void **state)
{
    struct tst_hub *e = *state;
    struct device a, b;
    struct reqsig_headers hdrs;
    const unsigned long n = 5000; /* several times the table's first size */
    int replay;

    new_device(e, &a);
    new_device(e, &b);
    for (unsigned long i = 0; i < n; i++) {
        fake_headers(&a, i, &hdrs);
        assert_int_equal(auth(e, &hdrs, a.pk, 1, &replay), CMC_OK);
    }
    for (unsigned long i = 0; i < n; i++) {
        fake_headers(&a, i, &hdrs);
        assert_int_equal(auth(e, &hdrs, a.pk, 1, &replay), CMC_ERR_UNAUTHORIZED);
        assert_int_equal(replay, 1);
        /* the same nonce from another device is that device's own */
        if (i % 50 == 0) {
            fake_headers(&b, i, &hdrs);
            assert_int_equal(auth(e, &hdrs, b.pk, 1, &replay), CMC_OK);
        }
    }
    cry_secret_free(a.sk);
    cry_secret_free(b.sk);
}

/* Out of memory while remembering a nonce: a hub error, not a 401 (which would stop the
 * device for good), and the same request is served when memory is back. */
static void test_nonce_out_of_memory(void **state)
{
    struct tst_hub *e = *state;
    struct device d;
    struct reqsig_headers hdrs;
    int replay, rc = CMC_ERR_NOMEM;
    long k;

    new_device(e, &d);
    fake_headers(&d, 1, &hdrs);
    for (k = 0; k < 100 && rc == CMC_ERR_NOMEM; k++) {
        cmc_alloc_fail_after(k, 1);
        rc = auth(e, &hdrs, d.pk, 1, &replay);
        cmc_alloc_fail_after(-1, 0);
        assert_int_equal(replay, 0);
        assert_true(rc == CMC_OK || rc == CMC_ERR_NOMEM);
    }
    assert_true(k > 1); /* the first request does allocate */
    assert_int_equal(rc, CMC_OK);
    assert_int_equal(auth(e, &hdrs, d.pk, 1, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);
    cry_secret_free(d.sk);
}

static void test_last_seen_to_the_minute(void **state)
{
    struct tst_hub *e = *state;
    struct device d;
    struct reqsig_headers hdrs;
    struct hub_device_info info;
    int replay;

    new_device(e, &d); /* enrollment counts as seen */
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.last_seen, TST_T0);
    plat_fake_clock_set_wall(TST_T0 + 60);
    sign_at(d.sk, d.id, TST_T0 + 60, &hdrs);
    assert_int_equal(auth(e, &hdrs, NULL, 0, &replay), CMC_OK);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.last_seen, TST_T0);
    plat_fake_clock_set_wall(TST_T0 + 61);
    sign_at(d.sk, d.id, TST_T0 + 61, &hdrs);
    assert_int_equal(auth(e, &hdrs, NULL, 0, &replay), CMC_OK);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.last_seen, TST_T0 + 61);
    /* a refused request is not a sighting */
    plat_fake_clock_set_wall(TST_T0 + 200);
    assert_int_equal(auth(e, &hdrs, NULL, 0, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.last_seen, TST_T0 + 61);
    cry_secret_free(d.sk);
}

/* The pre-check through the request handler, as the server passes it. */
static void test_api_passes_the_check_through(void **state)
{
    struct tst_hub *e = *state;
    struct device d;
    struct reqsig_headers hdrs;

    new_device(e, &d);
    sign_at(d.sk, d.id, TST_T0, &hdrs);
    struct hub_request req = tst_request("GET", PULL, &hdrs, NULL, 0);
    struct hub_response resp;
    req.checked_pk = d.pk;
    req.checked_ok = 0;
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr((const char *)resp.body, "\"error\":\"unauthorized\""));
    hub_response_free(&resp);
    req.checked_ok = 1;
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr((const char *)resp.body, "\"error\":\"replay\""));
    hub_response_free(&resp);
    cry_secret_free(d.sk);
}

TST_HUB_MAIN_BARE(test_checked_signature_stands_only_for_the_stored_key, test_device_key,
                  test_nonce_remembered_through_the_window, test_many_nonces_per_device,
                  test_nonce_out_of_memory, test_last_seen_to_the_minute,
                  test_api_passes_the_check_through)
