/*
 * test_hub_audit.c - audit intake at the hub: the hash chain a device sends, a fork after a restored
 * device, and answering who viewed a patient's plan.
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
#include "tests/support/hub_fixture.h"

/* Starts an audit upload body: a map whose "entries" array will hold n entries. */
static void audit_begin(struct mp_writer *w, uint32_t n)
{
    mp_writer_init(w);
    mp_write_map(w, 1);
    mp_write_cstr(w, "entries");
    mp_write_array(w, n);
}

/* One entry, hashed as docs/PROTOCOL.md says. */
static void audit_entry(struct mp_writer *w, uint64_t seq, uint8_t prev[CRY_HASH_BYTES],
                        const char *plan_id, const char *identifier)
{
    struct mp_writer inner;
    uint8_t *bytes = NULL;
    size_t len = 0;
    uint8_t hash[CRY_HASH_BYTES];
    struct cry_hash_state hs;

    mp_writer_init(&inner);
    mp_write_map(&inner, 9);
    mp_write_cstr(&inner, "seq");
    mp_write_uint(&inner, seq);
    mp_write_cstr(&inner, "prev");
    mp_write_bin(&inner, prev, CRY_HASH_BYTES);
    mp_write_cstr(&inner, "user");
    mp_write_cstr(&inner, "crew1");
    mp_write_cstr(&inner, "role");
    mp_write_cstr(&inner, "urgent_care");
    mp_write_cstr(&inner, "plan_id");
    mp_write_cstr(&inner, plan_id);
    mp_write_cstr(&inner, "identifier");
    mp_write_cstr(&inner, identifier);
    mp_write_cstr(&inner, "action");
    mp_write_cstr(&inner, "lookup");
    mp_write_cstr(&inner, "wall");
    mp_write_int(&inner, TST_T0 + (int64_t)seq);
    mp_write_cstr(&inner, "mono");
    mp_write_int(&inner, (int64_t)seq * 1000);
    assert_int_equal(mp_writer_finish(&inner, &bytes, &len), CMC_OK);
    cry_hash_init(&hs);
    cry_hash_update(&hs, prev, CRY_HASH_BYTES);
    cry_hash_update(&hs, bytes, len);
    cry_hash_final(&hs, hash);
    /* the entry as sent: the same pairs plus "hash" */
    mp_write_map(w, 10);
    mp_write_raw(w, bytes + 1, len - 1);
    mp_write_cstr(w, "hash");
    mp_write_bin(w, hash, CRY_HASH_BYTES);
    memcpy(prev, hash, CRY_HASH_BYTES);
    cmc_free(bytes);
}

/* A plan for NHS number 9434765919 (its id into id) and an urgent-care device that logs. */
static void audit_device(struct tst_hub *e, char id[PLAN_ID_LEN + 1], struct tst_device *d)
{
    tst_hub_import(e, 0, "9434765919", TST_REGION, TST_TEAM, "nurse1", id);
    tst_device_new(e, d, "all", "urgent_care");
}

/* Finishes the upload in w and hands it to the hub's intake as device d's; returns the
 * intake's result. */
static int audit_send(struct tst_hub *e, const struct tst_device *d, struct mp_writer *w,
                      uint64_t *acked)
{
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(mp_writer_finish(w, &body, &len), CMC_OK);
    int rc = hub_audit_intake(e->h, d->id, body, len, acked);
    cmc_free(body);
    return rc;
}

static int count_cb(const struct hub_audit_entry *en, void *ctx)
{
    (void)en;
    (*(int *)ctx)++;
    return 0;
}

static void test_audit_intake_chain(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device d;
    uint8_t prev[CRY_HASH_BYTES] = {0}, saved[CRY_HASH_BYTES];
    struct mp_writer w;
    uint8_t *body = NULL;
    size_t len = 0;
    uint64_t acked = 0;
    int n = 0;

    audit_device(e, id, &d);
    audit_begin(&w, 3);
    audit_entry(&w, 1, prev, id, "9434765919");
    audit_entry(&w, 2, prev, "", "9434765919"); /* a look-up that found nothing */
    memcpy(saved, prev, sizeof saved);
    audit_entry(&w, 3, prev, "", "4010232137");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    {
        struct hub_response resp;
        assert_int_equal(tst_device_send(e, &d, "POST", "/v1/audit", body, len, &resp), 200);
        assert_true(tst_body_has(&resp, "acked_seq"));
        hub_response_free(&resp);
    }
    /* sending the same entries again is harmless */
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    assert_int_equal(acked, 3);
    assert_int_equal(hub_audit_list(e->h, "9434765919", count_cb, &n), CMC_OK);
    assert_int_equal(n, 2);
    /* a flipped byte in an entry breaks its hash */
    body[len - 40] ^= 1;
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_ERR_INVALID);
    cmc_free(body);

    /* an entry that does not continue the chain is refused */
    audit_begin(&w, 1);
    audit_entry(&w, 4, saved, "", "1"); /* prev is entry 2's hash, not entry 3's */
    assert_int_equal(audit_send(e, &d, &w, &acked), CMC_ERR_INVALID);
    audit_begin(&w, 1);
    audit_entry(&w, 4, prev, id, "9434765919");
    assert_int_equal(audit_send(e, &d, &w, &acked), CMC_OK);
    assert_int_equal(acked, 4);
    tst_device_free(&d);
}

struct audit_rows {
    int n;
    char action[8][16];
    char device_name[8][HUB_NAME_MAX + 1];
    char plan_id[8][PLAN_ID_LEN + 1];
    int64_t wall[8], received[8];
};

static int audit_rows_cb(const struct hub_audit_entry *en, void *ctx)
{
    struct audit_rows *a = ctx;
    if (a->n < 8) {
        snprintf(a->action[a->n], sizeof a->action[0], "%s", en->action);
        snprintf(a->device_name[a->n], sizeof a->device_name[0], "%s", en->device_name);
        snprintf(a->plan_id[a->n], sizeof a->plan_id[0], "%s", en->plan_id);
        a->wall[a->n] = en->wall;
        a->received[a->n] = en->received;
        assert_string_equal(en->user, "crew1");
        assert_string_equal(en->role, "urgent_care");
    }
    a->n++;
    return 0;
}

/* A device restored from an older copy goes on logging from an earlier entry: its new line
 * is kept beside the old one (both are evidence), the restore is recorded, and a log that
 * continues nothing the hub holds is still refused. */
static void test_audit_fork_after_restore(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device d;
    struct hub_device_info info;
    uint8_t prev[CRY_HASH_BYTES] = {0}, at2[CRY_HASH_BYTES], stray[CRY_HASH_BYTES];
    struct mp_writer w;
    uint8_t *body = NULL, *old3 = NULL;
    size_t len = 0, old3_len = 0;
    uint64_t acked = 0;
    int n = 0;

    audit_device(e, id, &d);
    audit_begin(&w, 2);
    audit_entry(&w, 1, prev, id, "");
    audit_entry(&w, 2, prev, id, "");
    assert_int_equal(audit_send(e, &d, &w, &acked), CMC_OK);
    memcpy(at2, prev, sizeof at2); /* the backup was taken here */
    /* entry 3 on the original line */
    audit_begin(&w, 1);
    audit_entry(&w, 3, prev, id, "");
    assert_int_equal(mp_writer_finish(&w, &old3, &old3_len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, old3, old3_len, &acked), CMC_OK);
    assert_int_equal(acked, 3);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 0);

    /* a different entry 3 that continues nothing the hub holds: refused */
    memset(stray, 0x5a, sizeof stray);
    audit_begin(&w, 1);
    audit_entry(&w, 3, stray, "", "4010232137");
    assert_int_equal(audit_send(e, &d, &w, &acked), CMC_ERR_CONFLICT);

    /* the restored copy logs a different entry 3 after entry 2, then entry 4 */
    memcpy(prev, at2, sizeof prev);
    audit_begin(&w, 2);
    audit_entry(&w, 3, prev, "", "4010232137");
    audit_entry(&w, 4, prev, id, "");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    assert_int_equal(acked, 4);
    /* the same batch again is harmless, and so is the old line's entry 3 */
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    assert_int_equal(acked, 4);
    assert_int_equal(hub_audit_intake(e->h, d.id, old3, old3_len, &acked), CMC_OK);
    cmc_free(body);
    cmc_free(old3);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 1);
    assert_true(info.last_rollback > 0);
    /* every view is there: entries 1, 2, 3 (old), 4 (new) name the plan; the new 3 missed */
    n = 0;
    assert_int_equal(hub_audit_list(e->h, id, count_cb, &n), CMC_OK);
    assert_int_equal(n, 4);
    n = 0;
    assert_int_equal(hub_audit_list(e->h, "4010232137", count_cb, &n), CMC_OK);
    assert_int_equal(n, 1);
    /* the new line goes on */
    audit_begin(&w, 1);
    audit_entry(&w, 5, prev, id, "");
    assert_int_equal(audit_send(e, &d, &w, &acked), CMC_OK);
    assert_int_equal(acked, 5);
    tst_device_free(&d);
}

static void test_audit_answers_who_viewed(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device d;
    uint8_t prev[CRY_HASH_BYTES] = {0};
    struct mp_writer w;
    struct audit_rows a;
    struct hub_response resp;
    uint8_t *body = NULL;
    size_t len = 0;
    int n = 0;

    audit_device(e, id, &d);
    plat_fake_clock_advance(100ull * 1000000000ull);
    audit_begin(&w, 3);
    audit_entry(&w, 1, prev, id, "9434765919");   /* a hit */
    audit_entry(&w, 2, prev, "", "9434765919");   /* a miss for the same patient */
    audit_entry(&w, 3, prev, "", "4010232137");   /* a miss for a patient with no plan */
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    /* one altered byte in the last entry: the whole request is refused, nothing stored */
    body[len - 40] ^= 1;
    assert_int_equal(tst_device_send(e, &d, "POST", "/v1/audit", body, len, &resp), 400);
    assert_true(tst_body_has(&resp, "hash"));
    hub_response_free(&resp);
    n = 0;
    assert_int_equal(hub_audit_list(e->h, id, count_cb, &n), CMC_OK);
    assert_int_equal(n, 0);
    body[len - 40] ^= 1;
    assert_int_equal(tst_device_send(e, &d, "POST", "/v1/audit", body, len, NULL), 200);
    cmc_free(body);

    /* by plan id and by NHS number (spaces allowed): the hit and the miss, oldest first */
    const char *refs[] = {id, "943 476 5919"};
    for (size_t k = 0; k < 2; k++) {
        memset(&a, 0, sizeof a);
        assert_int_equal(hub_audit_list(e->h, refs[k], audit_rows_cb, &a), CMC_OK);
        assert_int_equal(a.n, 2);
        assert_string_equal(a.plan_id[0], id);
        assert_string_equal(a.plan_id[1], "");
        assert_string_equal(a.device_name[0], "dev");
        assert_int_equal(a.wall[0], TST_T0 + 1);
        assert_int_equal(a.received[0], TST_T0 + 100);
        assert_string_equal(a.action[0], "lookup");
    }
    /* an NHS number with no plan on the hub still finds the look-up that missed */
    memset(&a, 0, sizeof a);
    assert_int_equal(hub_audit_list(e->h, "4010232137", audit_rows_cb, &a), CMC_OK);
    assert_int_equal(a.n, 1);
    /* nothing at all known: not found; a bad check digit: invalid */
    assert_int_equal(hub_audit_list(e->h, "9990001111", count_cb, &n), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_audit_list(e->h, "9434765918", count_cb, &n), CMC_ERR_INVALID);
    tst_device_free(&d);
}

TST_HUB_MAIN(test_audit_intake_chain, test_audit_answers_who_viewed, test_audit_fork_after_restore)
