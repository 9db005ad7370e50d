/*
 * test_hub_devices.c - devices at the hub's API handler without sockets: enrollment codes, request
 * signatures (replay, revocation), idempotent push with conflicts, and hostile input.
 *
 * The hub store, plans and simulated devices come from tests/support (hub_fixture.h,
 * hub_device.h); the clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "platform/plat_test.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/reqsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "hub/device_users.h"
#include "tests/support/hub_fixture.h"

static void test_enrollment_code_once_and_expiry(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], id2[PLAN_ID_LEN + 1];
    char code[HUB_CODE_LEN + 1], code2[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES] = {1};
    struct hub_enrollment en;
    struct hub_device_info d;

    assert_int_equal(hub_device_add(e->h, "amb-7", "region:" TST_REGION, "urgent_care", id, code),
                     CMC_OK);
    assert_int_equal(strlen(code), HUB_CODE_LEN);
    assert_int_equal(hub_device_add(e->h, "bad", "planet:mars", "urgent_care", id2, code2),
                     CMC_ERR_USAGE);
    assert_int_equal(hub_device_add(e->h, "bad", "all", "pilot", id2, code2), CMC_ERR_USAGE);
    assert_int_equal(hub_enroll(e->h, "AAAA-AAAA-AAAA-AAAA", pk, "x", &en), CMC_ERR_UNAUTHORIZED);
    /* lower case and no dashes are the same code */
    char typed[HUB_CODE_LEN + 1];
    size_t k = 0;
    for (size_t i = 0; code[i]; i++)
        if (code[i] != '-')
            typed[k++] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] + 32 : code[i]);
    typed[k] = '\0';
    assert_int_equal(hub_enroll(e->h, typed, pk, "x", &en), CMC_OK);
    assert_string_equal(en.device_id, id);
    assert_string_equal(en.scope, "region:" TST_REGION);
    assert_string_equal(en.role, "urgent_care");
    assert_int_equal(en.hub_time, TST_T0);
    assert_int_equal(hub_device_get(e->h, id, &d), CMC_OK);
    assert_string_equal(d.state, "active");
    /* the code enrolls one key: another key is refused; the same key (its answer was lost)
     * gets the same answer again, and nothing changes */
    {
        uint8_t pk2[CRY_SIGN_PK_BYTES] = {2};
        assert_int_equal(hub_enroll(e->h, code, pk2, "x", &en), CMC_ERR_UNAUTHORIZED);
        assert_int_equal(hub_enroll(e->h, code, pk, "x", &en), CMC_OK);
        assert_string_equal(en.device_id, id);
        assert_memory_equal(en.hub_pk, e->hub_pk, CRY_SIGN_PK_BYTES);
        assert_int_equal(hub_device_get(e->h, id, &d), CMC_OK);
        assert_string_equal(d.state, "active");
        /* a revoked device's code does not bring it back */
        assert_int_equal(hub_device_revoke(e->h, id), CMC_OK);
        assert_int_equal(hub_enroll(e->h, code, pk, "x", &en), CMC_ERR_UNAUTHORIZED);
    }

    /* and only for 24 hours */
    assert_int_equal(hub_device_add(e->h, "amb-8", "all", "urgent_care", id2, code2), CMC_OK);
    plat_fake_clock_advance((uint64_t)(HUB_CODE_TTL + 1) * 1000000000ull);
    assert_int_equal(hub_enroll(e->h, code2, pk, "x", &en), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(hub_device_get(e->h, id2, &d), CMC_OK);
    assert_string_equal(d.state, "pending");
}

static void test_replayed_request_refused(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct reqsig_headers h;
    struct hub_response resp;

    tst_device_new(e, &d, "all", "urgent_care");
    memset(&h, 0, sizeof h);
    tst_device_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/vnd.cmc.bundle");
    hub_response_free(&resp);
    /* the very same request again */
    tst_device_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(tst_body_has(&resp, "\"error\":\"replay\""));
    hub_response_free(&resp);
    /* a signature over another path does not verify */
    memset(&h, 0, sizeof h);
    assert_int_equal(reqsig_sign(d.sk, d.id, "GET", "/v1/pull?cursor=0", NULL, 0, &h), CMC_OK);
    tst_device_call(e, &d, "GET", "/v1/pull?cursor=1", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(tst_body_has(&resp, "unauthorized"));
    hub_response_free(&resp);
    /* no headers at all */
    {
        struct hub_request req = {.method = "GET", .path = "/v1/pull?cursor=0"};
        hub_api_handle(e->h, &req, &resp);
        assert_int_equal(resp.status, 401);
        hub_response_free(&resp);
    }
    /* a device clock ten minutes fast */
    memset(&h, 0, sizeof h);
    plat_fake_clock_set_wall(TST_T0 + 600);
    assert_int_equal(reqsig_sign(d.sk, d.id, "GET", "/v1/pull?cursor=0", NULL, 0, &h), CMC_OK);
    plat_fake_clock_set_wall(TST_T0);
    tst_device_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(tst_body_has(&resp, "\"error\":\"clock\""));
    assert_true(tst_body_has(&resp, "600 seconds"));
    hub_response_free(&resp);
    /* after the nonce window the same nonce is out of the time window anyway */
    tst_device_free(&d);
}

static void test_revoked_device_refused(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct hub_response resp;

    tst_device_new(e, &d, "all", "urgent_care");
    assert_int_equal(hub_device_revoke(e->h, d.id), CMC_OK);
    assert_int_equal(tst_device_send(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &resp), 401);
    assert_true(tst_body_has(&resp, "revoked"));
    hub_response_free(&resp);
    /* an unknown device too */
    {
        struct tst_device ghost;
        uint8_t pk[CRY_SIGN_PK_BYTES];
        memset(&ghost, 0, sizeof ghost);
        strcpy(ghost.id, "00000000-0000-4000-8000-000000000000");
        assert_int_equal(cry_sign_keypair(pk, &ghost.sk), CMC_OK);
        assert_int_equal(tst_device_send(e, &ghost, "GET", "/v1/pull?cursor=0", NULL, 0, NULL), 401);
        cry_secret_free(ghost.sk);
    }
    assert_int_equal(hub_device_revoke(e->h, "00000000-0000-4000-8000-000000000000"),
                     CMC_ERR_NOT_FOUND);
    tst_device_free(&d);
}

static int push_actor_cb(const struct hub_plan_event *ev, void *ctx)
{
    if (strcmp(ev->action, "push") == 0)
        snprintf(ctx, 128, "%s", ev->actor);
    return 0;
}

/* The simulated devices' clinician user signs an edit. */
static struct hub_push_author *tst_author(const char *idem, const char *plan_id, int64_t base,
                                          const uint8_t *change, size_t len)
{
    static uint8_t sig[CRY_SIG_BYTES];
    static struct hub_push_author a;
    tst_user_sign(idem, plan_id, base, change, len, sig);
    a.user = TST_USER;
    a.sig = sig;
    return &a;
}

static void test_push_idempotency_and_conflict(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device nurse, amb;
    struct hub_plan_info info;
    struct hub_push_reply r1, r2, r3;
    struct plan p;
    uint8_t *packed = NULL;
    size_t plen = 0;
    struct plan_change c;
    const char *edit = "{\"set\": {\"prognosis\": \"hours to days\"}}";

    tst_hub_import_published(e, 0, "9434765919", id);
    assert_int_equal(hub_caseload_add(e->h, TST_TEAM, "9434765919"), CMC_OK);
    tst_device_new(e, &nurse, "team:" TST_TEAM, "clinician");
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &nurse, 0);
    int64_t base = nurse.held[0].version;

    plan_change_init(&c);
    assert_int_equal(plan_change_from_json(edit, strlen(edit), &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &packed, &plen), CMC_OK);
    plan_change_free(&c);

    assert_int_equal(hub_push(e->h, amb.id, tst_author("k0", id, base, packed, plen), "k0", id, base, packed, plen, &r1), CMC_ERR_DENIED);
    assert_int_equal(hub_push(e->h, nurse.id, tst_author("k1", id, base, packed, plen), "k1", id, base, packed, plen, &r1), CMC_OK);
    assert_int_equal(r1.result, HUB_PUSH_ACCEPTED);
    assert_int_equal(r1.version, base + 1);
    {
        /* an edit naming nobody (an agent from before users signed), an unknown user, an
         * urgent-care user, a signature of other bytes: refused, nothing stored */
        struct hub_push_author *a = tst_author("k9", id, base + 1, packed, plen);
        assert_int_equal(hub_push(e->h, nurse.id, NULL, "k9", id, base + 1, packed, plen, &r2), CMC_ERR_DENIED);
        assert_non_null(strstr(cmc_errmsg(), "too old"));
        a->user = "someone-else";
        assert_int_equal(hub_push(e->h, nurse.id, a, "k9", id, base + 1, packed, plen, &r2), CMC_ERR_DENIED);
        a = tst_author("k9", id, base, packed, plen); /* signed for another base */
        assert_int_equal(hub_push(e->h, nurse.id, a, "k9", id, base + 1, packed, plen, &r2), CMC_ERR_DENIED);
        assert_non_null(strstr(cmc_errmsg(), "does not verify"));
        struct wire_user u;
        memset(&u, 0, sizeof u);
        snprintf(u.user, sizeof u.user, "%s", TST_USER);
        snprintf(u.role, sizeof u.role, "urgent_care");
        tst_user_key(u.pk);
        assert_int_equal(hub_device_users_set(e->h, nurse.id, &u, 1), CMC_OK);
        a = tst_author("k9", id, base + 1, packed, plen);
        assert_int_equal(hub_push(e->h, nurse.id, a, "k9", id, base + 1, packed, plen, &r2), CMC_ERR_DENIED);
        assert_non_null(strstr(cmc_errmsg(), "only a clinician"));
        snprintf(u.role, sizeof u.role, "clinician");
        assert_int_equal(hub_device_users_set(e->h, nurse.id, &u, 1), CMC_OK);
        assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
        assert_int_equal(info.version, base + 1);
    }
    assert_int_equal(hub_push(e->h, nurse.id, tst_author("k1", id, base, packed, plen), "k1", id, base, packed, plen, &r2), CMC_OK);
    assert_int_equal(r2.result, HUB_PUSH_DUPLICATE);
    assert_int_equal(r2.version, r1.version);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.version, base + 1); /* one new version, not two */
    assert_int_equal(info.status, PLAN_STATUS_AWAITING_APPROVAL); /* never published */
    assert_int_equal(info.published_version, base);
    plan_init(&p);
    assert_int_equal(hub_plan_get(e->h, id, 0, &p), CMC_OK);
    assert_string_equal(p.prognosis, "hours to days");
    assert_null(p.approved_by);
    plan_free(&p);
    /* the history names the person and the device */
    char actor[128] = "";
    assert_int_equal(hub_plan_history(e->h, id, push_actor_cb, actor), CMC_OK);
    assert_string_equal(actor, TST_USER " on dev");

    /* a stale base: conflict, carrying the current version */
    assert_int_equal(hub_push(e->h, nurse.id, tst_author("k2", id, base, packed, plen), "k2", id, base, packed, plen, &r3), CMC_OK);
    assert_int_equal(r3.result, HUB_PUSH_CONFLICT);
    assert_int_equal(r3.version, base + 1);
    plan_init(&p);
    assert_int_equal(plan_unpack(r3.current, r3.current_len, &p), CMC_OK);
    assert_int_equal(p.version, base + 1);
    plan_free(&p);
    cmc_free(r3.current);
    cmc_free(packed);

    /* through the API: accepted, then the same idempotency id is a duplicate */
    {
        struct hub_response resp;
        size_t blen = 0;
        uint8_t *body = tst_push_body("k3", id, base + 1, "{\"set\": {\"prognosis\": \"days\"}}", &blen);
        assert_int_equal(tst_device_send(e, &nurse, "POST", "/v1/push", body, blen, &resp), 200);
        assert_true(tst_body_has(&resp, "accepted"));
        hub_response_free(&resp);
        assert_int_equal(tst_device_send(e, &nurse, "POST", "/v1/push", body, blen, &resp), 200);
        assert_true(tst_body_has(&resp, "duplicate"));
        hub_response_free(&resp);
        cmc_free(body);
    }

    /* record metadata cannot be pushed */
    {
        struct plan_change meta;
        struct plan from, to;
        plan_init(&from);
        plan_init(&to);
        plan_change_init(&meta);
        assert_int_equal(hub_plan_get(e->h, id, 0, &from), CMC_OK);
        assert_int_equal(plan_copy(&to, &from), CMC_OK);
        to.status = PLAN_STATUS_PUBLISHED;
        assert_int_equal(plan_change_diff(&from, &to, &meta), CMC_OK);
        assert_int_equal(plan_change_pack(&meta, &packed, &plen), CMC_OK);
        assert_int_equal(hub_push(e->h, nurse.id, tst_author("k4", id, from.version, packed, plen), "k4", id, from.version, packed, plen, &r1),
                         CMC_ERR_INVALID);
        cmc_free(packed);
        plan_change_free(&meta);
        plan_free(&from);
        plan_free(&to);
    }
    tst_device_free_all(&nurse, &amb, NULL);
}

static void test_api_bad_input(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct hub_response resp;
    uint8_t junk[512];

    tst_device_new(e, &d, "all", "clinician");
    struct hub_request req = {.method = "GET", .path = "/v2/nothing"};
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 404);
    hub_response_free(&resp);
    req.path = "/v1/push";
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 405);
    hub_response_free(&resp);
    /* enroll with garbage, with a bad code */
    req.method = "POST";
    req.path = "/v1/enroll";
    req.body = (const uint8_t *)"\xc1\xc1";
    req.body_len = 2;
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.content_type, "application/json");
    hub_response_free(&resp);
    {
        struct mp_writer w;
        uint8_t *b = NULL;
        size_t bl = 0;
        uint8_t pk[32] = {0};
        mp_writer_init(&w);
        mp_write_map(&w, 3);
        mp_write_cstr(&w, "code");
        mp_write_cstr(&w, "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        mp_write_cstr(&w, "device_pk");
        mp_write_bin(&w, pk, 32);
        mp_write_cstr(&w, "name");
        mp_write_cstr(&w, "tablet");
        assert_int_equal(mp_writer_finish(&w, &b, &bl), CMC_OK);
        req.body = b;
        req.body_len = bl;
        hub_api_handle(e->h, &req, &resp);
        assert_int_equal(resp.status, 401);
        hub_response_free(&resp);
        cmc_free(b);
    }
    /* signed but malformed bodies and queries */
    assert_int_equal(tst_device_send(e, &d, "POST", "/v1/push", (const uint8_t *)"\x93\x01", 2, NULL),
                     400);
    assert_int_equal(tst_device_send(e, &d, "GET", "/v1/pull?cursor=abc", NULL, 0, NULL), 400);
    assert_int_equal(tst_device_send(e, &d, "GET", "/v1/pull", NULL, 0, NULL), 400);
    /* random bodies to every endpoint: always a 4xx answer, never a crash */
    const char *paths[] = {"/v1/push", "/v1/audit", "/v1/ack", "/v1/enroll"};
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(round * 7 % (int)sizeof junk);
        cry_random(junk, n);
        if (round % 3 == 0 && n > 0)
            junk[0] = (uint8_t)(0x80 | (round % 16)); /* a map header, to get further in */
        int status = tst_device_send(e, &d, "POST", paths[round % 4], junk, n, NULL);
        assert_true(status >= 400 && status < 500);
    }
    tst_device_free(&d);
}

TST_HUB_MAIN(test_enrollment_code_once_and_expiry, test_replayed_request_refused,
             test_revoked_device_refused, test_push_idempotency_and_conflict, test_api_bad_input)
