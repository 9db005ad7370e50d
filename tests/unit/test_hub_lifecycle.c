/*
 * test_hub_lifecycle.c - the hub core without sockets: plan lifecycle rules per role, and what each device
 * view shows while a published plan has a draft in edit.
 *
 * The hub store, plans and simulated devices come from tests/support (hub_fixture.h,
 * hub_device.h); the clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

static void test_lifecycle_roles(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], pid[PLAN_ID_LEN + 1];
    struct hub_plan_info info;
    struct plan p;

    tst_hub_import(e, 0, "9434765919", TST_REGION, TST_TEAM, "admin1", id);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_NEEDS_FINALISATION);
    assert_int_equal(info.version, 1);

    /* nobody approves a plan that is not awaiting approval, and admin cannot submit */
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_ERR_STATE);
    assert_int_equal(hub_plan_submit(e->h, "admin1", id), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", "9434765919"), CMC_OK);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_AWAITING_APPROVAL);

    /* admin and clinician are refused at approval, with a clear message */
    assert_int_equal(hub_plan_approve(e->h, "admin1", id), CMC_ERR_DENIED);
    assert_non_null(strstr(cmc_errmsg(), "only a gp"));
    assert_int_equal(hub_plan_approve(e->h, "nurse1", id), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_approve(e->h, "nobody", id), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_AWAITING_APPROVAL);
    assert_int_equal(info.published_version, 0);

    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_PUBLISHED);
    assert_int_equal(info.published_version, info.version);
    plan_init(&p);
    assert_int_equal(hub_plan_get(e->h, id, 0, &p), CMC_OK);
    assert_string_equal(p.approved_by, "gp1");
    assert_non_null(p.approved_at);
    assert_non_null(p.review_due); /* kept from the file, or a year on */
    assert_int_equal(plan_validate(&p, PLAN_CHECK_COMPLETE), CMC_OK);
    plan_free(&p);
    /* every version kept */
    for (int64_t v = 1; v <= info.version; v++) {
        plan_init(&p);
        assert_int_equal(hub_plan_get(e->h, id, v, &p), CMC_OK);
        assert_int_equal(p.version, v);
        plan_free(&p);
    }

    /* a patient's own plan stays a draft; a patient cannot submit it */
    tst_hub_import(e, 1, "4010232137", TST_REGION, TST_TEAM, "pat1", pid);
    assert_int_equal(hub_plan_info(e->h, pid, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_DRAFT);
    assert_int_equal(hub_plan_submit(e->h, "pat1", pid), CMC_ERR_DENIED);

    /* importing the same patient twice is refused */
    {
        char *json = tst_plan_json(2, "9434765919", TST_REGION, TST_TEAM, NULL);
        char other[PLAN_ID_LEN + 1];
        assert_int_equal(hub_plan_import(e->h, "nurse1", json, strlen(json), other), CMC_ERR_EXISTS);
        cmc_free(json);
    }

    /* consent withdrawal stops changes */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_ERR_STATE);
}

static void test_incomplete_plan_cannot_be_submitted(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct plan p;
    char *json = NULL;
    size_t len;
    int status, extra;

    for (long k = 0;; k++) {
        assert_int_equal(hub_seed_plan(99, k, &p, &status, &extra), CMC_OK);
        if (plan_validate(&p, PLAN_CHECK_COMPLETE) == CMC_OK)
            break;
        plan_free(&p);
    }
    p.resuscitation.decision = 0; /* a required clinical field missing */
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    plan_free(&p);
    assert_int_equal(hub_plan_import(e->h, "pat1", json, len, id), CMC_OK);
    cmc_free(json);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "resuscitation.decision"));
}

static void test_published_stays_while_draft_edited(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb, nurse;
    struct hub_plan_info info;
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    int64_t v = 0;

    tst_hub_import_published(e, 0, "9434765919", id);
    assert_int_equal(hub_caseload_add(e->h, TST_TEAM, "9434765919"), CMC_OK);
    tst_device_new_amb_and_nurse(e, &amb, &nurse);
    assert_int_equal(amb.n_held, 1);
    int64_t published = amb.held[0].version;

    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), &v), CMC_OK);
    assert_int_equal(v, published + 1);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_DRAFT);
    assert_int_equal(info.published_version, published);

    /* the ambulance keeps the published version: nothing new for it */
    tst_device_sync(e, &amb, 0);
    assert_int_equal(amb.puts + amb.deltas, 0);
    assert_int_equal(amb.held[0].version, published);
    assert_int_equal(amb.held[0].status, PLAN_STATUS_PUBLISHED);
    /* the team's clinician device gets the draft */
    tst_device_sync(e, &nurse, 0);
    assert_int_equal(nurse.puts + nurse.deltas, 1);
    assert_int_equal(nurse.held[0].status, PLAN_STATUS_DRAFT);
    assert_string_equal(nurse.held[0].prognosis, "days");

    /* once approved, the ambulance gets the new version */
    tst_hub_publish(e, id);
    tst_device_sync(e, &amb, 0);
    assert_int_equal(amb.puts + amb.deltas, 1);
    assert_int_equal(amb.held[0].status, PLAN_STATUS_PUBLISHED);
    assert_string_equal(amb.held[0].prognosis, "days");
    tst_device_free_all(&amb, &nurse, NULL);
}

static void test_urgent_care_never_gets_drafts(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device amb, team_urgent, nurse;
    long published_in_region = 0, caseload_all = 0, caseload_published = 0;
    size_t drafts_seen = 0;

    assert_int_equal(hub_seed(e->h, 300, 5, NULL, NULL), CMC_OK);
    /* count what each device should get, straight from the seed */
    for (long i = 0; i < 300; i++) {
        struct plan p;
        int status, extra;
        assert_int_equal(hub_seed_plan(5, i, &p, &status, &extra), CMC_OK);
        if (strcmp(p.region, TST_REGION) == 0 && status == PLAN_STATUS_PUBLISHED)
            published_in_region++;
        if (strcmp(p.team, TST_TEAM) == 0) {
            caseload_all++;
            if (status == PLAN_STATUS_PUBLISHED)
                caseload_published++;
        }
        plan_free(&p);
    }
    assert_true(published_in_region > 0);
    assert_true(caseload_all > caseload_published);

    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &team_urgent, "team:" TST_TEAM, "urgent_care");
    tst_device_new(e, &nurse, "team:" TST_TEAM, "clinician");
    /* a small budget: many pages, each checked */
    int pages = tst_device_sync(e, &amb, 2048);
    assert_true(pages > 1);
    tst_device_sync(e, &team_urgent, 0);
    tst_device_sync(e, &nurse, 0);
    assert_int_equal((long)amb.n_held, published_in_region);
    assert_int_equal((long)team_urgent.n_held, caseload_published);
    assert_int_equal((long)nurse.n_held, caseload_all);
    for (size_t i = 0; i < amb.n_held; i++)
        assert_int_equal(amb.held[i].status, PLAN_STATUS_PUBLISHED);
    for (size_t i = 0; i < team_urgent.n_held; i++)
        assert_int_equal(team_urgent.held[i].status, PLAN_STATUS_PUBLISHED);
    for (size_t i = 0; i < nurse.n_held; i++)
        if (nurse.held[i].status != PLAN_STATUS_PUBLISHED)
            drafts_seen++;
    assert_true(drafts_seen > 0); /* the clinician device does get drafts */
    tst_device_free_all(&amb, &team_urgent, &nurse, NULL);
}

TST_HUB_MAIN(test_lifecycle_roles, test_incomplete_plan_cannot_be_submitted,
             test_published_stays_while_draft_edited, test_urgent_care_never_gets_drafts)
