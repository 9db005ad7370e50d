/*
 * test_hub_evidence.c - a restored hub learns from its devices which plans it lost
 * (POST /v1/evidence): what an operator depends on after losing the primary, when the
 * devices that synced after the backup are the only record of those plans.
 *
 * Each test restores the hub from a copy of itself (SQLCipher: hub_backup then hub_restore;
 * PostgreSQL: the store marked restored), and a device that had seen LOST changes the
 * restored log does not have is answered "hub_rewound" on its next pull. It then reports
 * plans; the hub keeps only those it has no version that high of, under that device, and a
 * report it cannot trust is refused whole, with one clear error and nothing kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/mp.h"
#include "sync/wire.h"
#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

#include <stdio.h>
#include <string.h>

#define LOST 5 /* changes each rewound device had seen that the restore lost */
#define ABSENT_1 "33333333-4444-4555-8666-777777777771"
#define ABSENT_2 "33333333-4444-4555-8666-777777777772"

/* The hub restored from a copy of itself; the restored log's end. */
static uint64_t restore_hub(struct tst_hub *e)
{
    struct hub_generation g;
    char copy[128];
    if (hub_store_shared(e->h)) {
        assert_int_equal(hub_restore(e->h, NULL), CMC_OK);
    } else {
        snprintf(copy, sizeof copy, "%s/hub.backup", e->tmp);
        assert_int_equal(hub_backup(e->h, copy), CMC_OK);
        assert_int_equal(hub_restore(e->h, copy), CMC_OK);
    }
    assert_int_equal(hub_generation_get(e->h, &g), CMC_OK);
    return g.restored_head;
}

/* The device pulls with a cursor LOST changes beyond the restored head: answered hub_rewound. */
static void rewind_device(struct tst_hub *e, struct tst_device *d, uint64_t head)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    d->cursor = head + LOST;
    assert_int_equal(hub_pull(e->h, d->id, d->cursor, d->cursor, 0, &buf, &len), CMC_ERR_STATE);
    assert_non_null(strstr(cmc_errmsg(), "hub_rewound"));
    cmc_free(buf);
}

/* POSTs the entries as a device would (wire_evidence_encode); the answer's status. */
static int report(struct tst_hub *e, struct tst_device *d, const struct wire_evidence *v, size_t n,
                  struct hub_response *resp)
{
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(wire_evidence_encode(v, n, &body, &len), CMC_OK);
    int status = tst_device_send(e, d, "POST", "/v1/evidence", body, len, resp);
    cmc_free(body);
    return status;
}

/* The lost plans the hub lists now. */
struct lost_rows {
    size_t n;
    struct hub_lost_plan v[16];
};

static int lost_cb(const struct hub_lost_plan *lp, void *ctx)
{
    struct lost_rows *l = ctx;
    if (l->n < 16)
        l->v[l->n] = *lp;
    l->n++;
    return CMC_OK;
}

static struct lost_rows lost_now(struct tst_hub *e)
{
    struct lost_rows l;
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_lost_plans_list(e->h, lost_cb, &l), CMC_OK);
    return l;
}

static struct wire_evidence entry(const char *plan_id, int64_t version, uint64_t seq)
{
    struct wire_evidence w;
    memset(&w, 0, sizeof w);
    snprintf(w.plan_id, sizeof w.plan_id, "%s", plan_id);
    w.version = version;
    w.seq = seq;
    return w;
}

/* One published plan, two devices that synced it, the hub restored, both devices rewound. */
struct scene {
    char plan[PLAN_ID_LEN + 1];
    struct tst_device a, b;
    uint64_t head;
};

static void scene_set(struct tst_hub *e, struct scene *s)
{
    memset(s, 0, sizeof *s);
    tst_hub_import_published(e, 0, NULL, s->plan);
    tst_device_new(e, &s->a, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &s->b, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &s->a, 0);
    tst_device_sync(e, &s->b, 0);
    s->head = restore_hub(e);
    rewind_device(e, &s->a, s->head);
}

static void test_evidence_kept_only_for_versions_the_hub_lacks(void **state)
{
    struct tst_hub *e = *state;
    struct scene s;
    scene_set(e, &s);
    rewind_device(e, &s.b, s.head);
    /* version 1 of the plan: the restored hub has it; version 1000: it does not; and a plan
     * it has never heard of */
    const struct wire_evidence v[] = {
        entry(s.plan, 1, s.head + 1),
        entry(s.plan, 1000, s.head + 2),
        entry(ABSENT_1, 3, s.head + 3),
    };
    assert_int_equal(report(e, &s.a, v, 3, NULL), 200);
    assert_int_equal(report(e, &s.a, v, 3, NULL), 200); /* again: nothing new */
    struct lost_rows l = lost_now(e);
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < 2; i++) {
        int absent = strcmp(l.v[i].plan_id, ABSENT_1) == 0;
        assert_true(absent || strcmp(l.v[i].plan_id, s.plan) == 0);
        assert_int_equal(l.v[i].version, absent ? 3 : 1000);
        assert_string_equal(l.v[i].device_id, s.a.id);
        assert_string_equal(l.v[i].source, "device");
        assert_true(l.v[i].reported > 0);
    }
    assert_string_not_equal(l.v[0].plan_id, l.v[1].plan_id);

    /* another device's report adds its own row and leaves the first device's as they were */
    const struct wire_evidence w[] = { entry(ABSENT_1, 4, s.head + 1) };
    assert_int_equal(report(e, &s.b, w, 1, NULL), 200);
    l = lost_now(e);
    assert_int_equal(l.n, 3);
    int a_rows = 0;
    for (size_t i = 0; i < 3; i++)
        if (strcmp(l.v[i].device_id, s.a.id) == 0) {
            a_rows++;
            assert_int_equal(l.v[i].version, strcmp(l.v[i].plan_id, ABSENT_1) == 0 ? 3 : 1000);
        }
    assert_int_equal(a_rows, 2);
    tst_device_free_all(&s.a, &s.b, NULL);
}

/* A refused report: the status, one error line naming evidence, and nothing kept. */
static void refused(struct tst_hub *e, struct tst_device *d, int status, const uint8_t *body,
                    size_t len)
{
    struct hub_response resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(tst_device_send(e, d, "POST", "/v1/evidence", body, len, &resp), status);
    assert_true(tst_body_has(&resp, "evidence"));
    assert_false(tst_body_has(&resp, "\\n"));
    hub_response_free(&resp);
    assert_int_equal(lost_now(e).n, 0);
}

static void refused_entries(struct tst_hub *e, struct tst_device *d, int status,
                            const struct wire_evidence *v, size_t n)
{
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(wire_evidence_encode(v, n, &body, &len), CMC_OK);
    refused(e, d, status, body, len);
    cmc_free(body);
}

static void test_evidence_refused_whole_nothing_kept(void **state)
{
    struct tst_hub *e = *state;
    struct scene s;
    struct mp_writer w;
    uint8_t *body = NULL;
    size_t len = 0;
    scene_set(e, &s);
    const uint64_t h = s.head;

    /* a device this restore never rewound may not report */
    const struct wire_evidence one[] = { entry(ABSENT_1, 2, h + 1) };
    refused_entries(e, &s.b, 403, one, 1);

    /* a bad entry after a good one: the good one is not kept either */
    const struct wire_evidence bad_id[] = { entry(ABSENT_1, 2, h + 1), entry("not-a-plan-id", 2, h + 2) };
    refused_entries(e, &s.a, 400, bad_id, 2);
    const struct wire_evidence bad_version[] = { entry(ABSENT_1, 2, h + 1), entry(ABSENT_2, 0, h + 2) };
    refused_entries(e, &s.a, 400, bad_version, 2);
    /* a change number the device cannot have seen lost: before the restored head, or past
     * its cursor */
    const struct wire_evidence old_seq[] = { entry(ABSENT_1, 2, h + 1), entry(ABSENT_2, 2, h) };
    refused_entries(e, &s.a, 400, old_seq, 2);
    const struct wire_evidence late_seq[] = { entry(ABSENT_1, 2, h + 1), entry(ABSENT_2, 2, h + LOST + 1) };
    refused_entries(e, &s.a, 400, late_seq, 2);

    /* more plans than the lost changes it saw */
    struct wire_evidence many[LOST + 1];
    for (size_t i = 0; i <= LOST; i++) {
        char id[PLAN_ID_LEN + 1];
        snprintf(id, sizeof id, "33333333-4444-4555-8666-7777777777%02zu", i);
        many[i] = entry(id, 2, h + 1);
    }
    refused_entries(e, &s.a, 413, many, LOST + 1);

    /* a list over the limit, an unknown key, trailing bytes */
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "plans");
    mp_write_array(&w, WIRE_EVIDENCE_MAX + 1);
    for (size_t i = 0; i <= WIRE_EVIDENCE_MAX; i++) {
        mp_write_map(&w, 3);
        mp_write_cstr(&w, "plan_id");
        mp_write_cstr(&w, ABSENT_1);
        mp_write_cstr(&w, "version");
        mp_write_int(&w, 2);
        mp_write_cstr(&w, "seq");
        mp_write_uint(&w, h + 1);
    }
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    refused(e, &s.a, 400, body, len);
    cmc_free(body);
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "plans");
    mp_write_array(&w, 1);
    mp_write_map(&w, 3);
    mp_write_cstr(&w, "plan_id");
    mp_write_cstr(&w, ABSENT_1);
    mp_write_cstr(&w, "version");
    mp_write_int(&w, 2);
    mp_write_cstr(&w, "name"); /* patient data has no place here */
    mp_write_cstr(&w, "x");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    refused(e, &s.a, 400, body, len);
    cmc_free(body);
    assert_int_equal(wire_evidence_encode(one, 1, &body, &len), CMC_OK);
    uint8_t *longer = cmc_malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, body, len);
    longer[len] = 0xc0; /* nil */
    refused(e, &s.a, 400, longer, len + 1);
    cmc_free(longer);
    cmc_free(body);

    /* and the same device's sound report is kept */
    struct hub_response resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(report(e, &s.a, one, 1, &resp), 200);
    hub_response_free(&resp);
    assert_int_equal(lost_now(e).n, 1);
    tst_device_free_all(&s.a, &s.b, NULL);
}

TST_HUB_MAIN(test_evidence_kept_only_for_versions_the_hub_lacks,
             test_evidence_refused_whole_nothing_kept)
