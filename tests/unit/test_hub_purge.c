/*
 * test_hub_purge.c - purges and wipes from the hub core without sockets: consent withdrawal and caseload
 * removal reach exactly the devices holding the plan, purges repeat until acknowledged, and
 * wipes come in order and are acknowledged.
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

/* Syncs d and checks that its pull purged exactly the plan id, for `reason` (unless NULL). */
static void sync_purges(struct tst_hub *e, struct tst_device *d, const char *id, const char *reason)
{
    tst_device_sync(e, d, 0);
    assert_int_equal(d->purges, 1);
    assert_string_equal(d->purged[0], id);
    if (reason != NULL)
        assert_string_equal(d->last_reason, reason);
}

/* Syncs d and checks how many purges its pull brought, and how many plans (unless puts < 0). */
static void sync_counts(struct tst_hub *e, struct tst_device *d, size_t purges, long puts)
{
    tst_device_sync(e, d, 0);
    assert_int_equal(d->purges, purges);
    if (puts >= 0)
        assert_int_equal(d->puts, puts);
}

static void test_consent_withdrawal_purges_holders_only(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], other[PLAN_ID_LEN + 1];
    struct tst_device a, b, c, late, crashed;
    uint8_t *buf = NULL;
    size_t len = 0;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_hub_import(e, 1, "4010232137", "north-central-london", NULL, "nurse1", other);
    tst_hub_publish(e, other);
    tst_device_new(e, &a, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &b, "all", "urgent_care");
    tst_device_new(e, &c, "region:north-central-london", "urgent_care");
    tst_device_new(e, &late, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &crashed, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &a, 0);
    tst_device_sync(e, &b, 0);
    tst_device_sync(e, &c, 0);
    assert_non_null(tst_device_held(&a, id));
    assert_non_null(tst_device_held(&b, id));
    assert_null(tst_device_held(&c, id));
    /* `crashed` received the plan but never committed that bundle */
    assert_int_equal(hub_pull(e->h, crashed.id, 0, 0, 0, &buf, &len), CMC_OK);
    tst_device_apply(e, &crashed, buf, len, 0);
    cmc_free(buf);

    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    sync_purges(e, &a, id, "consent_withdrawn");
    assert_null(tst_device_held(&a, id));
    sync_purges(e, &b, id, NULL);
    assert_non_null(tst_device_held(&b, other)); /* the other plan stays */
    sync_counts(e, &c, 0, -1);
    sync_counts(e, &late, 0, 0);
    sync_counts(e, &crashed, 0, 0); /* its holding was rolled back with the bundle */
    /* a second poll brings nothing more */
    tst_device_sync(e, &a, 0);
    assert_int_equal(a.purges + a.puts + a.deltas, 0);
    tst_device_free_all(&a, &b, &c, &late, &crashed, NULL);
}

static void test_caseload_removal_purges_team_devices(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device nurse, team_urgent, other_team, amb;

    tst_hub_import_published(e, 0, "9434765919", id);
    assert_int_equal(hub_caseload_add(e->h, TST_TEAM, "943 476 5919"), CMC_OK);
    assert_int_equal(hub_caseload_add(e->h, "lewisham-community-palliative", "9434765919"), CMC_OK);
    tst_device_new(e, &nurse, "team:" TST_TEAM, "clinician");
    tst_device_new(e, &team_urgent, "team:" TST_TEAM, "urgent_care");
    tst_device_new(e, &other_team, "team:lewisham-community-palliative", "clinician");
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &nurse, 0);
    tst_device_sync(e, &team_urgent, 0);
    tst_device_sync(e, &other_team, 0);
    tst_device_sync(e, &amb, 0);
    assert_int_equal(nurse.n_held, 1);
    assert_int_equal(team_urgent.n_held, 1);
    assert_int_equal(other_team.n_held, 1);

    assert_int_equal(hub_caseload_remove(e->h, TST_TEAM, "9434765919"), CMC_OK);
    assert_int_equal(hub_caseload_remove(e->h, TST_TEAM, "9434765919"), CMC_ERR_NOT_FOUND);
    sync_purges(e, &nurse, id, "left_scope");
    assert_int_equal(nurse.n_held, 0);
    sync_counts(e, &team_urgent, 1, -1);
    sync_counts(e, &other_team, 0, -1);
    assert_int_equal(other_team.n_held, 1);
    sync_counts(e, &amb, 0, -1);
    assert_int_equal(amb.n_held, 1);
    tst_device_free_all(&nurse, &team_urgent, &other_team, &amb, NULL);
}

static void test_wipe_order(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct mp_writer w;

    assert_int_equal(hub_seed(e->h, 20, 3, NULL, NULL), CMC_OK);
    tst_device_new(e, &d, "all", "urgent_care");
    tst_device_sync(e, &d, 0);
    assert_int_equal(hub_device_wipe(e->h, d.id), CMC_OK);
    uint64_t before = d.cursor;
    tst_device_sync(e, &d, 0);
    assert_int_equal(d.wipes, 1);
    assert_int_equal(d.puts + d.purges + d.deltas, 0);
    assert_int_equal(d.cursor, before);
    /* the device confirms; from then on it is refused */
    mp_writer_init(&w);
    mp_write_map(&w, 2);
    mp_write_cstr(&w, "purges");
    mp_write_array(&w, 0);
    mp_write_cstr(&w, "wipe");
    mp_write_bool(&w, 1);
    assert_int_equal(tst_device_post(e, &d, "/v1/ack", &w), 200);
    assert_int_equal(tst_device_send(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, NULL), 401);
    tst_device_free(&d);
}

static void ack_purge_api(struct tst_hub *e, struct tst_device *d, const char *plan_id)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "purges");
    mp_write_array(&w, 1);
    mp_write_cstr(&w, plan_id);
    assert_int_equal(tst_device_post(e, d, "/v1/ack", &w), 200);
}

static void test_purge_repeated_until_acknowledged(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], other[PLAN_ID_LEN + 1];
    struct tst_device quiet, acker, away, gone;
    struct tst_holders l;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_hub_import(e, 1, "4010232137", TST_REGION, NULL, "nurse1", other);
    tst_hub_publish(e, other);
    tst_device_new(e, &quiet, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &acker, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &away, "all", "urgent_care");
    tst_device_new(e, &gone, "all", "urgent_care");
    quiet.no_ack = 1;
    tst_device_sync(e, &quiet, 0);
    tst_device_sync(e, &acker, 0);
    tst_device_sync(e, &away, 0);
    tst_device_sync(e, &gone, 0);
    assert_int_equal(quiet.n_held, 2);

    /* before the withdrawal, the holders are the devices that hold it */
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, tst_holders_cb, &l), CMC_OK);
    assert_int_equal(l.n, 4);

    /* `gone` is wiped: its copy no longer exists and it is not listed */
    assert_int_equal(hub_device_wipe(e->h, gone.id), CMC_OK);
    assert_int_equal(hub_ack(e->h, gone.id, NULL, 0, 1), CMC_OK);

    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    tst_device_sync(e, &quiet, 0);
    tst_device_sync(e, &acker, 0);
    assert_int_equal(quiet.purges, 1);
    assert_int_equal(acker.purges, 1);
    assert_null(tst_device_held(&quiet, id));

    /* `quiet` never acknowledged: listed as sent-not-acknowledged; `away` has not synced
     * since, so it still holds the published version; `acker` is done */
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, "943 476 5919", tst_holders_cb, &l), CMC_OK);
    assert_int_equal(l.n, 2);
    int qi = tst_holders_index(&l, quiet.id), ai = tst_holders_index(&l, away.id);
    assert_true(qi >= 0 && ai >= 0);
    assert_int_equal(l.purge_sent[qi], 1);
    assert_int_equal(l.purge_sent[ai], 0);
    assert_true(l.version[ai] >= 1);
    assert_int_equal(tst_holders_index(&l, acker.id), -1);
    assert_int_equal(tst_holders_index(&l, gone.id), -1);

    /* the purge goes again in each of quiet's bundles, idle polls included, once per page;
     * the acknowledging device gets nothing more */
    for (int round = 0; round < 3; round++) {
        sync_purges(e, &quiet, id, "consent_withdrawn");
        assert_non_null(tst_device_held(&quiet, other));
        tst_device_sync(e, &acker, 0);
        assert_int_equal(acker.purges + acker.puts + acker.deltas, 0);
    }
    /* a change elsewhere arrives alongside the repeated purge, without a second copy */
    {
        const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", other, change, strlen(change), NULL),
                         CMC_OK);
        tst_hub_publish(e, other);
        tst_device_sync(e, &quiet, 0);
        assert_int_equal(quiet.purges, 1);
        assert_int_equal(quiet.puts + quiet.deltas, 1);
        assert_string_equal(tst_device_held(&quiet, other)->prognosis, "days");
    }

    /* the acknowledgement (POST /v1/ack) stops it */
    ack_purge_api(e, &quiet, id);
    tst_device_sync(e, &quiet, 0);
    assert_int_equal(quiet.purges, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, tst_holders_cb, &l), CMC_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], away.id);

    /* the late device gets the purge on its next sync, acknowledges it, and the plan is
     * gone everywhere */
    tst_device_sync(e, &away, 0);
    assert_int_equal(away.purges, 1);
    assert_null(tst_device_held(&away, id));
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, tst_holders_cb, &l), CMC_OK);
    assert_int_equal(l.n, 0);
    tst_device_free_all(&quiet, &acker, &away, &gone, NULL);
}

static void test_wipe_states_and_ack(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d, other;
    struct hub_device_info info;

    tst_device_new(e, &d, "all", "urgent_care");
    tst_device_new(e, &other, "all", "urgent_care");
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "active");
    /* a wipe acknowledgement without an order changes nothing */
    assert_int_equal(hub_ack(e->h, other.id, NULL, 0, 1), CMC_OK);
    assert_int_equal(hub_device_get(e->h, other.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "active");
    assert_int_equal(info.wiped_at, 0);

    assert_int_equal(hub_device_wipe(e->h, d.id), CMC_OK);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "wipe ordered");
    /* the device, wipe-ordered, can still fetch the order and acknowledge it (signed) */
    tst_device_sync(e, &d, 0);
    assert_int_equal(d.wipes, 1);
    {
        struct mp_writer w;
        mp_writer_init(&w);
        mp_write_map(&w, 1);
        mp_write_cstr(&w, "wipe");
        mp_write_bool(&w, 1);
        plat_fake_clock_advance(5ull * 1000000000ull);
        assert_int_equal(tst_device_post(e, &d, "/v1/ack", &w), 200);
    }
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "wiped");
    assert_int_equal(info.wiped_at, TST_T0 + 5);
    assert_int_equal(info.wipe, 0);
    /* wiped is final: refused from then on, and no second order */
    assert_int_equal(tst_device_send(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, NULL), 401);
    assert_int_equal(hub_device_wipe(e->h, d.id), CMC_ERR_STATE);
    /* a revoked device shows as revoked */
    assert_int_equal(hub_device_revoke(e->h, other.id), CMC_OK);
    assert_int_equal(hub_device_get(e->h, other.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "revoked");
    tst_device_free_all(&d, &other, NULL);
}

TST_HUB_MAIN(test_consent_withdrawal_purges_holders_only, test_caseload_removal_purges_team_devices,
             test_purge_repeated_until_acknowledged, test_wipe_order, test_wipe_states_and_ack)
