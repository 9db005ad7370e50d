/*
 * test_hub_core.c - the hub core without sockets: lifecycle rules, per-device views, bundle
 * pages and deltas, purges, enrollment, request signatures, push, audit intake, seeding.
 *
 * A "device" here is a small simulation: it enrolls with a fresh Ed25519 key, signs its
 * requests with sync/reqsig.h, verifies every bundle with the hub's key and applies the ops
 * to an in-memory set of plans, the way the agent does. The clock is fake.
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
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/reqsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1767225600 /* 2026-01-01 */
#define REGION "south-east-london"
#define TEAM "peckham-district-nursing"
#define MAX_HELD 4096

struct env {
    char dir[64];
    hub *h;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
};

struct device {
    char id[PLAN_ID_LEN + 1];
    struct cry_secret *sk;
    uint64_t cursor;
    struct plan *held; /* MAX_HELD */
    size_t n_held;
    /* what the last pull brought */
    size_t puts, deltas, purges, wipes;
    char last_reason[32];
    char purged[8][PLAN_ID_LEN + 1];
    /* the policy and flags of the last bundle, and acknowledgements */
    int64_t lease_days;
    uint16_t last_flags;
    int rollback_pages; /* pages of the last sync flagged ROLLBACK */
    int no_ack; /* models a device that never acknowledges its purges */
    char (*page_purged)[PLAN_ID_LEN + 1]; /* MAX_HELD: purges of the last committed page */
    size_t n_page_purged;
};

/* ---- fixtures -------------------------------------------------------------------------- */

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    plat_fake_clock_enable(T0, 1000000000ull);
    snprintf(e->dir, sizeof e->dir, "/tmp/cmc-hubtest-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    strcat(e->dir, "/hub");
    assert_int_equal(hub_init(e->dir), CMC_OK);
    assert_int_equal(hub_open(e->dir, &e->h), CMC_OK);
    hub_public_key(e->h, e->hub_pk);
    assert_int_equal(hub_user_add(e->h, "gp1", "gp"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "nurse1", "clinician"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "admin1", "admin"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "pat1", "patient"), CMC_OK);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    char cmd[160];
    hub_close(e->h);
    e->dir[strlen(e->dir) - 4] = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    plat_fake_clock_disable();
    return 0;
}

/* A complete synthetic plan (from the seed generator) with chosen identity and scope,
 * as JSON for import. */
static char *plan_json(long i, const char *nhs, const char *region, const char *team,
                       const char *care_home)
{
    struct plan p;
    int status, extra;
    char *json = NULL;
    size_t len;
    for (long k = i;; k++) {
        assert_int_equal(hub_seed_plan(99, k, &p, &status, &extra), CMC_OK);
        if (plan_validate(&p, PLAN_CHECK_COMPLETE) == CMC_OK)
            break;
        plan_free(&p);
    }
    if (nhs != NULL) {
        cmc_free(p.nhs_number);
        p.nhs_number = cmc_strdup(nhs);
    }
    cmc_free(p.region);
    p.region = region ? cmc_strdup(region) : NULL;
    cmc_free(p.team);
    p.team = team ? cmc_strdup(team) : NULL;
    cmc_free(p.care_home);
    p.care_home = care_home ? cmc_strdup(care_home) : NULL;
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    plan_free(&p);
    return json;
}

static void import_plan(struct env *e, long i, const char *nhs, const char *region,
                        const char *team, const char *as, char id[PLAN_ID_LEN + 1])
{
    char *json = plan_json(i, nhs, region, team, NULL);
    assert_int_equal(hub_plan_import(e->h, as, json, strlen(json), id), CMC_OK);
    cmc_free(json);
}

static void publish(struct env *e, const char *id)
{
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

static void new_device(struct env *e, struct device *d, const char *scope, const char *role)
{
    char code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct hub_enrollment en;
    memset(d, 0, sizeof *d);
    d->held = calloc(MAX_HELD, sizeof *d->held);
    assert_non_null(d->held);
    d->page_purged = calloc(MAX_HELD, sizeof *d->page_purged);
    assert_non_null(d->page_purged);
    d->lease_days = -1;
    assert_int_equal(hub_device_add(e->h, "dev", scope, role, d->id, code), CMC_OK);
    assert_int_equal(cry_sign_keypair(pk, &d->sk), CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, pk, "dev", &en), CMC_OK);
    assert_string_equal(en.device_id, d->id);
    assert_memory_equal(en.hub_pk, e->hub_pk, CRY_SIGN_PK_BYTES);
}

static void device_free(struct device *d)
{
    for (size_t i = 0; i < d->n_held; i++)
        plan_free(&d->held[i]);
    free(d->held);
    free(d->page_purged);
    cry_secret_free(d->sk);
}

static struct plan *held_plan(struct device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++)
        if (strcmp(d->held[i].plan_id, id) == 0)
            return &d->held[i];
    return NULL;
}

static void drop_plan(struct device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++) {
        if (strcmp(d->held[i].plan_id, id) == 0) {
            plan_free(&d->held[i]);
            d->held[i] = d->held[--d->n_held];
            return;
        }
    }
}

/* Verifies and applies one bundle; returns its header. `commit` 0 models a device that
 * received the bundle but crashed before committing it. */
static struct bundle_header apply_bundle(struct env *e, struct device *d, const uint8_t *buf,
                                         size_t len, int commit)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    size_t n = 0;
    uint8_t dev_bytes[16];
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.from_cursor, d->cursor);
    /* the header names this device */
    {
        char hex[33];
        size_t k = 0;
        for (size_t i = 0; d->id[i]; i++)
            if (d->id[i] != '-')
                hex[k++] = d->id[i];
        hex[k] = '\0';
        assert_int_equal(cry_unhex(dev_bytes, 16, hex), CMC_OK);
        assert_memory_equal(hdr.device_id, dev_bytes, 16);
    }
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    assert_int_equal(n, hdr.op_count);
    /* every bundle opens with exactly one policy op */
    assert_true(n >= 1);
    assert_int_equal(ops[0].kind, BUNDLE_OP_POLICY);
    for (size_t i = 1; i < n; i++)
        assert_int_not_equal(ops[i].kind, BUNDLE_OP_POLICY);
    if (commit) {
        d->n_page_purged = 0;
        d->last_flags = hdr.flags;
        if (hdr.flags & BUNDLE_FLAG_ROLLBACK)
            d->rollback_pages++;
        for (size_t i = 0; i < n; i++) {
            struct bundle_op *op = &ops[i];
            struct plan *p;
            switch (op->kind) {
            case BUNDLE_OP_PUT:
                d->puts++;
                drop_plan(d, op->plan_id);
                assert_true(d->n_held < MAX_HELD);
                assert_int_equal(plan_copy(&d->held[d->n_held], &op->plan), CMC_OK);
                d->n_held++;
                break;
            case BUNDLE_OP_DELTA:
                d->deltas++;
                p = held_plan(d, op->plan_id);
                assert_non_null(p);
                assert_int_equal(p->version, op->base_version);
                assert_int_equal(plan_change_apply(p, &op->change), CMC_OK);
                break;
            case BUNDLE_OP_PURGE:
                if (d->purges < 8)
                    snprintf(d->purged[d->purges], PLAN_ID_LEN + 1, "%s", op->plan_id);
                d->purges++;
                snprintf(d->last_reason, sizeof d->last_reason, "%s", op->reason);
                drop_plan(d, op->plan_id);
                assert_true(d->n_page_purged < MAX_HELD);
                snprintf(d->page_purged[d->n_page_purged++], PLAN_ID_LEN + 1, "%s", op->plan_id);
                break;
            case BUNDLE_OP_WIPE:
                d->wipes++;
                break;
            case BUNDLE_OP_POLICY:
                d->lease_days = op->lease_days;
                break;
            }
        }
        d->cursor = hdr.to_cursor;
    }
    bundle_ops_free(ops, n);
    return hdr;
}

/* Pulls pages until "more" is clear; returns the number of pages. */
static int sync_device(struct env *e, struct device *d, size_t budget)
{
    int pages = 0;
    d->puts = d->deltas = d->purges = d->wipes = 0;
    d->rollback_pages = 0;
    d->last_reason[0] = '\0';
    for (;;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(hub_pull(e->h, d->id, d->cursor, d->cursor, budget, &buf, &len), CMC_OK);
        struct bundle_header hdr = apply_bundle(e, d, buf, len, 1);
        cmc_free(buf);
        /* like the agent: purges made durable are acknowledged */
        if (!d->no_ack && d->n_page_purged > 0) {
            const char *ids[MAX_HELD];
            for (size_t i = 0; i < d->n_page_purged; i++)
                ids[i] = d->page_purged[i];
            assert_int_equal(hub_ack(e->h, d->id, ids, d->n_page_purged, 0), CMC_OK);
        }
        pages++;
        assert_true(pages < 10000);
        if (!(hdr.flags & BUNDLE_FLAG_MORE))
            break;
    }
    return pages;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void test_lifecycle_roles(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1], pid[PLAN_ID_LEN + 1];
    struct hub_plan_info info;
    struct plan p;

    import_plan(e, 0, "9434765919", REGION, TEAM, "admin1", id);
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
    import_plan(e, 1, "4010232137", REGION, TEAM, "pat1", pid);
    assert_int_equal(hub_plan_info(e->h, pid, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_DRAFT);
    assert_int_equal(hub_plan_submit(e->h, "pat1", pid), CMC_ERR_DENIED);

    /* importing the same patient twice is refused */
    {
        char *json = plan_json(2, "9434765919", REGION, TEAM, NULL);
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
    struct env *e = *state;
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

/* ---- views ----------------------------------------------------------------------------- */

static void test_published_stays_while_draft_edited(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb, nurse;
    struct hub_plan_info info;
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    int64_t v = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    assert_int_equal(hub_caseload_add(e->h, TEAM, "9434765919"), CMC_OK);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    new_device(e, &nurse, "team:" TEAM, "clinician");
    sync_device(e, &amb, 0);
    sync_device(e, &nurse, 0);
    assert_int_equal(amb.n_held, 1);
    int64_t published = amb.held[0].version;

    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), &v), CMC_OK);
    assert_int_equal(v, published + 1);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_DRAFT);
    assert_int_equal(info.published_version, published);

    /* the ambulance keeps the published version: nothing new for it */
    sync_device(e, &amb, 0);
    assert_int_equal(amb.puts + amb.deltas, 0);
    assert_int_equal(amb.held[0].version, published);
    assert_int_equal(amb.held[0].status, PLAN_STATUS_PUBLISHED);
    /* the team's clinician device gets the draft */
    sync_device(e, &nurse, 0);
    assert_int_equal(nurse.puts + nurse.deltas, 1);
    assert_int_equal(nurse.held[0].status, PLAN_STATUS_DRAFT);
    assert_string_equal(nurse.held[0].prognosis, "days");

    /* once approved, the ambulance gets the new version */
    publish(e, id);
    sync_device(e, &amb, 0);
    assert_int_equal(amb.puts + amb.deltas, 1);
    assert_int_equal(amb.held[0].status, PLAN_STATUS_PUBLISHED);
    assert_string_equal(amb.held[0].prognosis, "days");
    device_free(&amb);
    device_free(&nurse);
}

static void test_urgent_care_never_gets_drafts(void **state)
{
    struct env *e = *state;
    struct device amb, team_urgent, nurse;
    long published_in_region = 0, caseload_all = 0, caseload_published = 0;
    size_t drafts_seen = 0;

    assert_int_equal(hub_seed(e->h, 300, 5, NULL, NULL), CMC_OK);
    /* count what each device should get, straight from the seed */
    for (long i = 0; i < 300; i++) {
        struct plan p;
        int status, extra;
        assert_int_equal(hub_seed_plan(5, i, &p, &status, &extra), CMC_OK);
        if (strcmp(p.region, REGION) == 0 && status == PLAN_STATUS_PUBLISHED)
            published_in_region++;
        if (strcmp(p.team, TEAM) == 0) {
            caseload_all++;
            if (status == PLAN_STATUS_PUBLISHED)
                caseload_published++;
        }
        plan_free(&p);
    }
    assert_true(published_in_region > 0);
    assert_true(caseload_all > caseload_published);

    new_device(e, &amb, "region:" REGION, "urgent_care");
    new_device(e, &team_urgent, "team:" TEAM, "urgent_care");
    new_device(e, &nurse, "team:" TEAM, "clinician");
    /* a small budget: many pages, each checked */
    int pages = sync_device(e, &amb, 2048);
    assert_true(pages > 1);
    sync_device(e, &team_urgent, 0);
    sync_device(e, &nurse, 0);
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
    device_free(&amb);
    device_free(&team_urgent);
    device_free(&nurse);
}

static void test_bundle_verifies_and_flipped_byte_fails(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb;
    struct bundle_header hdr;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t other_pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *other_sk = NULL;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    assert_int_equal(hub_pull(e->h, amb.id, 0, 0, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.op_count, 2); /* the policy and the plan */
    assert_true(hdr.flags & BUNDLE_FLAG_SNAPSHOT);
    /* every single flipped byte, header or body, fails verification */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x01;
        assert_int_not_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
        buf[i] ^= 0x01;
    }
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    /* another key does not verify it */
    assert_int_equal(cry_sign_keypair(other_pk, &other_sk), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, other_pk, &hdr), CMC_ERR_TAMPERED);
    cry_secret_free(other_sk);
    cmc_free(buf);
    device_free(&amb);
}

static void test_delta_reproduces_hub_version(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb, nurse;
    struct plan hub_copy;
    const char *change =
        "{\"set\": {\"prognosis\": \"days\", \"resuscitation.decision\": \"for_cpr\"},"
        " \"add\": {\"medications\": [{\"id\": \"m99\", \"name\": \"Haloperidol\","
        " \"dose\": \"0.5 mg\", \"anticipatory\": true}]},"
        " \"update\": {\"contacts\": [{\"id\": \"c1\", \"phone\": \"020 7946 0555\"}]},"
        " \"remove\": {\"anticipated_problems\": [\"p1\"]}}";

    import_plan(e, 3, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    assert_int_equal(hub_caseload_add(e->h, TEAM, "9434765919"), CMC_OK);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    new_device(e, &nurse, "team:" TEAM, "clinician");
    sync_device(e, &amb, 0);
    sync_device(e, &nurse, 0);
    assert_int_equal(amb.puts, 1);

    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    /* the clinician device gets the draft as a delta, equal to the hub's draft */
    sync_device(e, &nurse, 0);
    assert_int_equal(nurse.deltas, 1);
    assert_int_equal(nurse.puts, 0);
    plan_init(&hub_copy);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_true(plan_equal(&nurse.held[0], &hub_copy));
    plan_free(&hub_copy);

    publish(e, id);
    sync_device(e, &amb, 0);
    assert_int_equal(amb.deltas, 1);
    assert_int_equal(amb.puts, 0);
    plan_init(&hub_copy);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_int_equal(hub_copy.status, PLAN_STATUS_PUBLISHED);
    assert_true(plan_equal(&amb.held[0], &hub_copy));
    plan_free(&hub_copy);
    device_free(&amb);
    device_free(&nurse);
}

/* ---- purges ---------------------------------------------------------------------------- */

static void test_consent_withdrawal_purges_holders_only(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1], other[PLAN_ID_LEN + 1];
    struct device a, b, c, late, crashed;
    uint8_t *buf = NULL;
    size_t len = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    import_plan(e, 1, "4010232137", "north-central-london", NULL, "nurse1", other);
    publish(e, other);
    new_device(e, &a, "region:" REGION, "urgent_care");
    new_device(e, &b, "all", "urgent_care");
    new_device(e, &c, "region:north-central-london", "urgent_care");
    new_device(e, &late, "region:" REGION, "urgent_care");
    new_device(e, &crashed, "region:" REGION, "urgent_care");
    sync_device(e, &a, 0);
    sync_device(e, &b, 0);
    sync_device(e, &c, 0);
    assert_non_null(held_plan(&a, id));
    assert_non_null(held_plan(&b, id));
    assert_null(held_plan(&c, id));
    /* `crashed` received the plan but never committed that bundle */
    assert_int_equal(hub_pull(e->h, crashed.id, 0, 0, 0, &buf, &len), CMC_OK);
    apply_bundle(e, &crashed, buf, len, 0);
    cmc_free(buf);

    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    sync_device(e, &a, 0);
    assert_int_equal(a.purges, 1);
    assert_string_equal(a.purged[0], id);
    assert_string_equal(a.last_reason, "consent_withdrawn");
    assert_null(held_plan(&a, id));
    sync_device(e, &b, 0);
    assert_int_equal(b.purges, 1);
    assert_string_equal(b.purged[0], id);
    assert_non_null(held_plan(&b, other)); /* the other plan stays */
    sync_device(e, &c, 0);
    assert_int_equal(c.purges, 0);
    sync_device(e, &late, 0);
    assert_int_equal(late.purges, 0);
    assert_int_equal(late.puts, 0);
    sync_device(e, &crashed, 0);
    assert_int_equal(crashed.purges, 0); /* its holding was rolled back with the bundle */
    assert_int_equal(crashed.puts, 0);
    /* a second poll brings nothing more */
    sync_device(e, &a, 0);
    assert_int_equal(a.purges + a.puts + a.deltas, 0);
    device_free(&a);
    device_free(&b);
    device_free(&c);
    device_free(&late);
    device_free(&crashed);
}

static void test_caseload_removal_purges_team_devices(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device nurse, team_urgent, other_team, amb;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    assert_int_equal(hub_caseload_add(e->h, TEAM, "943 476 5919"), CMC_OK);
    assert_int_equal(hub_caseload_add(e->h, "lewisham-community-palliative", "9434765919"), CMC_OK);
    new_device(e, &nurse, "team:" TEAM, "clinician");
    new_device(e, &team_urgent, "team:" TEAM, "urgent_care");
    new_device(e, &other_team, "team:lewisham-community-palliative", "clinician");
    new_device(e, &amb, "region:" REGION, "urgent_care");
    sync_device(e, &nurse, 0);
    sync_device(e, &team_urgent, 0);
    sync_device(e, &other_team, 0);
    sync_device(e, &amb, 0);
    assert_int_equal(nurse.n_held, 1);
    assert_int_equal(team_urgent.n_held, 1);
    assert_int_equal(other_team.n_held, 1);

    assert_int_equal(hub_caseload_remove(e->h, TEAM, "9434765919"), CMC_OK);
    assert_int_equal(hub_caseload_remove(e->h, TEAM, "9434765919"), CMC_ERR_NOT_FOUND);
    sync_device(e, &nurse, 0);
    assert_int_equal(nurse.purges, 1);
    assert_string_equal(nurse.last_reason, "left_scope");
    assert_int_equal(nurse.n_held, 0);
    sync_device(e, &team_urgent, 0);
    assert_int_equal(team_urgent.purges, 1);
    sync_device(e, &other_team, 0);
    assert_int_equal(other_team.purges, 0);
    assert_int_equal(other_team.n_held, 1);
    sync_device(e, &amb, 0);
    assert_int_equal(amb.purges, 0);
    assert_int_equal(amb.n_held, 1);
    device_free(&nurse);
    device_free(&team_urgent);
    device_free(&other_team);
    device_free(&amb);
}

static void test_idle_poll_is_tiny_and_paging_resumes(void **state)
{
    struct env *e = *state;
    struct device amb;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct bundle_header hdr;
    uint64_t head = 0;

    assert_int_equal(hub_seed(e->h, 120, 11, NULL, NULL), CMC_OK);
    new_device(e, &amb, "all", "urgent_care");
    int pages = sync_device(e, &amb, 4096);
    assert_true(pages > 2);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(amb.cursor, head);
    size_t n = amb.n_held;
    assert_true(n > 0);
    /* nothing new: a header and the policy op alone */
    assert_int_equal(hub_pull(e->h, amb.id, amb.cursor, amb.cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.op_count, 1);
    assert_int_equal(hdr.to_cursor, head);
    assert_int_equal(hdr.flags, 0);
    assert_true(len < BUNDLE_HEADER_BYTES + 32);
    cmc_free(buf);
    /* a cursor past the head is refused */
    assert_int_equal(hub_pull(e->h, amb.id, head + 5, head + 5, 0, &buf, &len), CMC_ERR_INVALID);
    /* a fresh snapshot in one page gives the same set */
    {
        struct device again;
        new_device(e, &again, "all", "urgent_care");
        assert_int_equal(sync_device(e, &again, HUB_BUDGET_MAX), 1);
        assert_int_equal(again.n_held, n);
        device_free(&again);
    }
    device_free(&amb);
}

/* ---- devices --------------------------------------------------------------------------- */

static void test_enrollment_code_once_and_expiry(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1], id2[PLAN_ID_LEN + 1];
    char code[HUB_CODE_LEN + 1], code2[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES] = {1};
    struct hub_enrollment en;
    struct hub_device_info d;

    assert_int_equal(hub_device_add(e->h, "amb-7", "region:" REGION, "urgent_care", id, code),
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
    assert_string_equal(en.scope, "region:" REGION);
    assert_string_equal(en.role, "urgent_care");
    assert_int_equal(en.hub_time, T0);
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

/* A signed request through the pure API handler. */
static void signed_call(struct env *e, struct device *d, const char *method, const char *path,
                        const uint8_t *body, size_t len, struct reqsig_headers *hdrs,
                        struct hub_response *resp)
{
    struct hub_request req;
    if (hdrs->signature[0] == '\0')
        assert_int_equal(reqsig_sign(d->sk, d->id, method, path, body, len, hdrs), CMC_OK);
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.device = hdrs->device;
    req.time = hdrs->time;
    req.nonce = hdrs->nonce;
    req.signature = hdrs->signature;
    req.body = body;
    req.body_len = len;
    hub_api_handle(e->h, &req, resp);
}

static int body_has(const struct hub_response *r, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; r->body != NULL && i + n <= r->body_len; i++)
        if (memcmp(r->body + i, s, n) == 0)
            return 1;
    return 0;
}

static void test_replayed_request_refused(void **state)
{
    struct env *e = *state;
    struct device d;
    struct reqsig_headers h;
    struct hub_response resp;

    new_device(e, &d, "all", "urgent_care");
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/vnd.cmc.bundle");
    hub_response_free(&resp);
    /* the very same request again */
    signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(body_has(&resp, "\"error\":\"replay\""));
    hub_response_free(&resp);
    /* a signature over another path does not verify */
    memset(&h, 0, sizeof h);
    assert_int_equal(reqsig_sign(d.sk, d.id, "GET", "/v1/pull?cursor=0", NULL, 0, &h), CMC_OK);
    signed_call(e, &d, "GET", "/v1/pull?cursor=1", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(body_has(&resp, "unauthorized"));
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
    plat_fake_clock_set_wall(T0 + 600);
    assert_int_equal(reqsig_sign(d.sk, d.id, "GET", "/v1/pull?cursor=0", NULL, 0, &h), CMC_OK);
    plat_fake_clock_set_wall(T0);
    signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(body_has(&resp, "\"error\":\"clock\""));
    assert_true(body_has(&resp, "600 seconds"));
    hub_response_free(&resp);
    /* after the nonce window the same nonce is out of the time window anyway */
    device_free(&d);
}

static void test_revoked_device_refused(void **state)
{
    struct env *e = *state;
    struct device d;
    struct reqsig_headers h;
    struct hub_response resp;

    new_device(e, &d, "all", "urgent_care");
    assert_int_equal(hub_device_revoke(e->h, d.id), CMC_OK);
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(body_has(&resp, "revoked"));
    hub_response_free(&resp);
    /* an unknown device too */
    {
        struct device ghost;
        uint8_t pk[CRY_SIGN_PK_BYTES];
        memset(&ghost, 0, sizeof ghost);
        strcpy(ghost.id, "00000000-0000-4000-8000-000000000000");
        assert_int_equal(cry_sign_keypair(pk, &ghost.sk), CMC_OK);
        memset(&h, 0, sizeof h);
        signed_call(e, &ghost, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
        assert_int_equal(resp.status, 401);
        hub_response_free(&resp);
        cry_secret_free(ghost.sk);
    }
    assert_int_equal(hub_device_revoke(e->h, "00000000-0000-4000-8000-000000000000"),
                     CMC_ERR_NOT_FOUND);
    device_free(&d);
}

static void test_wipe_order(void **state)
{
    struct env *e = *state;
    struct device d;
    struct reqsig_headers h;
    struct hub_response resp;
    struct mp_writer w;
    uint8_t *body = NULL;
    size_t len = 0;

    assert_int_equal(hub_seed(e->h, 20, 3, NULL, NULL), CMC_OK);
    new_device(e, &d, "all", "urgent_care");
    sync_device(e, &d, 0);
    assert_int_equal(hub_device_wipe(e->h, d.id), CMC_OK);
    uint64_t before = d.cursor;
    sync_device(e, &d, 0);
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
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "POST", "/v1/ack", body, len, &h, &resp);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 401);
    hub_response_free(&resp);
    cmc_free(body);
    device_free(&d);
}

/* ---- push ------------------------------------------------------------------------------ */

static uint8_t *push_body(const char *idem, const char *plan_id, int64_t base, const char *json,
                          size_t *len)
{
    struct plan_change c;
    struct mp_writer w;
    uint8_t *packed = NULL, *out = NULL;
    size_t plen = 0;
    plan_change_init(&c);
    assert_int_equal(plan_change_from_json(json, strlen(json), &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &packed, &plen), CMC_OK);
    plan_change_free(&c);
    mp_writer_init(&w);
    mp_write_map(&w, 4);
    mp_write_cstr(&w, "idempotency_id");
    mp_write_cstr(&w, idem);
    mp_write_cstr(&w, "plan_id");
    mp_write_cstr(&w, plan_id);
    mp_write_cstr(&w, "base_version");
    mp_write_int(&w, base);
    mp_write_cstr(&w, "change");
    mp_write_bin(&w, packed, plen);
    cmc_free(packed);
    assert_int_equal(mp_writer_finish(&w, &out, len), CMC_OK);
    return out;
}

static void test_push_idempotency_and_conflict(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device nurse, amb;
    struct hub_plan_info info;
    struct hub_push_reply r1, r2, r3;
    struct plan p;
    uint8_t *packed = NULL;
    size_t plen = 0;
    struct plan_change c;
    const char *edit = "{\"set\": {\"prognosis\": \"hours to days\"}}";

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    assert_int_equal(hub_caseload_add(e->h, TEAM, "9434765919"), CMC_OK);
    new_device(e, &nurse, "team:" TEAM, "clinician");
    new_device(e, &amb, "region:" REGION, "urgent_care");
    sync_device(e, &nurse, 0);
    int64_t base = nurse.held[0].version;

    plan_change_init(&c);
    assert_int_equal(plan_change_from_json(edit, strlen(edit), &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &packed, &plen), CMC_OK);
    plan_change_free(&c);

    assert_int_equal(hub_push(e->h, amb.id, "k0", id, base, packed, plen, &r1), CMC_ERR_DENIED);
    assert_int_equal(hub_push(e->h, nurse.id, "k1", id, base, packed, plen, &r1), CMC_OK);
    assert_int_equal(r1.result, HUB_PUSH_ACCEPTED);
    assert_int_equal(r1.version, base + 1);
    assert_int_equal(hub_push(e->h, nurse.id, "k1", id, base, packed, plen, &r2), CMC_OK);
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

    /* a stale base: conflict, carrying the current version */
    assert_int_equal(hub_push(e->h, nurse.id, "k2", id, base, packed, plen, &r3), CMC_OK);
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
        struct reqsig_headers h;
        struct hub_response resp;
        size_t blen = 0;
        uint8_t *body = push_body("k3", id, base + 1, "{\"set\": {\"prognosis\": \"days\"}}", &blen);
        memset(&h, 0, sizeof h);
        signed_call(e, &nurse, "POST", "/v1/push", body, blen, &h, &resp);
        assert_int_equal(resp.status, 200);
        assert_true(body_has(&resp, "accepted"));
        hub_response_free(&resp);
        memset(&h, 0, sizeof h);
        signed_call(e, &nurse, "POST", "/v1/push", body, blen, &h, &resp);
        assert_int_equal(resp.status, 200);
        assert_true(body_has(&resp, "duplicate"));
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
        assert_int_equal(hub_push(e->h, nurse.id, "k4", id, from.version, packed, plen, &r1),
                         CMC_ERR_INVALID);
        cmc_free(packed);
        plan_change_free(&meta);
        plan_free(&from);
        plan_free(&to);
    }
    device_free(&nurse);
    device_free(&amb);
}

/* ---- audit ----------------------------------------------------------------------------- */

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
    mp_write_int(&inner, T0 + (int64_t)seq);
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

static int count_cb(const struct hub_audit_entry *en, void *ctx)
{
    (void)en;
    (*(int *)ctx)++;
    return 0;
}

static void test_audit_intake_chain(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device d;
    uint8_t prev[CRY_HASH_BYTES] = {0}, saved[CRY_HASH_BYTES];
    struct mp_writer w;
    uint8_t *body = NULL;
    size_t len = 0;
    uint64_t acked = 0;
    int n = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    new_device(e, &d, "all", "urgent_care");
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 3);
    audit_entry(&w, 1, prev, id, "9434765919");
    audit_entry(&w, 2, prev, "", "9434765919"); /* a look-up that found nothing */
    memcpy(saved, prev, sizeof saved);
    audit_entry(&w, 3, prev, "", "4010232137");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    {
        struct reqsig_headers h;
        struct hub_response resp;
        memset(&h, 0, sizeof h);
        signed_call(e, &d, "POST", "/v1/audit", body, len, &h, &resp);
        assert_int_equal(resp.status, 200);
        assert_true(body_has(&resp, "acked_seq"));
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
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 1);
    audit_entry(&w, 4, saved, "", "1"); /* prev is entry 2's hash, not entry 3's */
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_ERR_INVALID);
    cmc_free(body);
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 1);
    audit_entry(&w, 4, prev, id, "9434765919");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    assert_int_equal(acked, 4);
    cmc_free(body);
    device_free(&d);
}

/* ---- lost devices and accountability --------------------------------------------------- */

/* The lease in the POLICY op (the first op) of a pull for the device; nothing applied. */
static int64_t pulled_lease(struct env *e, struct device *d)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    int64_t days;
    assert_int_equal(hub_pull(e->h, d->id, d->cursor, d->cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    assert_true(n >= 1);
    assert_int_equal(ops[0].kind, BUNDLE_OP_POLICY);
    days = ops[0].lease_days;
    bundle_ops_free(ops, n);
    cmc_free(buf);
    return days;
}

static void test_policy_in_every_bundle_and_lease_precedence(void **state)
{
    struct env *e = *state;
    struct device amb, amb2, other;
    struct hub_device_info info;
    struct hub_enrollment en;
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES] = {7};
    int64_t days = 0;
    const char *from = NULL;

    assert_int_equal(hub_seed(e->h, 60, 4, NULL, NULL), CMC_OK);
    new_device(e, &amb, "all", "urgent_care");
    new_device(e, &amb2, "all", "urgent_care");
    new_device(e, &other, "region:" REGION, "urgent_care");
    /* paged snapshot: every page opens with the policy (apply_bundle checks it) */
    assert_true(sync_device(e, &amb, 2048) > 2);
    assert_int_equal(amb.lease_days, HUB_LEASE_DAYS);
    assert_int_equal(hub_lease_days(e->h, amb.id, &days, &from), CMC_OK);
    assert_int_equal(days, HUB_LEASE_DAYS);
    assert_string_equal(from, "default");
    /* idle poll: the policy alone */
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_DAYS);

    /* a scope setting reaches every device of that scope, and only those */
    assert_int_equal(hub_scope_lease_set(e->h, "all", 30), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 30);
    assert_int_equal(pulled_lease(e, &amb2), 30);
    assert_int_equal(pulled_lease(e, &other), HUB_LEASE_DAYS);
    /* the device's own setting wins over its scope's */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, 7), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 7);
    assert_int_equal(pulled_lease(e, &amb2), 30);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.lease_days, 7);
    assert_string_equal(info.lease_from, "device");
    /* 0 = no lease, and it still wins over the scope */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, 0), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 0);
    /* removing the device's setting falls back to the scope, then to the default */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, -1), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 30);
    assert_int_equal(hub_scope_lease_set(e->h, "all", -1), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_DAYS);
    /* refused settings change nothing */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, HUB_LEASE_MAX + 1), CMC_ERR_USAGE);
    assert_int_equal(hub_scope_lease_set(e->h, "planet:mars", 3), CMC_ERR_USAGE);
    assert_int_equal(hub_device_lease_set(e->h, "00000000-0000-4000-8000-000000000000", 3),
                     CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_device_lease_set(e->h, amb.id, HUB_LEASE_MAX), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_MAX);

    /* the enrollment answer carries the lease in force */
    assert_int_equal(hub_scope_lease_set(e->h, "region:" REGION, 3), CMC_OK);
    assert_int_equal(hub_device_add(e->h, "amb-9", "region:" REGION, "urgent_care", id, code),
                     CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, pk, "amb-9", &en), CMC_OK);
    assert_int_equal(en.lease_days, 3);
    assert_int_equal(pulled_lease(e, &other), 3);

    /* a wipe order carries the policy too, first */
    assert_int_equal(hub_device_wipe(e->h, amb2.id), CMC_OK);
    sync_device(e, &amb2, 0);
    assert_int_equal(amb2.wipes, 1);
    assert_int_equal(amb2.lease_days, HUB_LEASE_DAYS);
    device_free(&amb);
    device_free(&amb2);
    device_free(&other);
}

struct holder_list {
    int n;
    char ids[8][PLAN_ID_LEN + 1];
    int purge_sent[8];
    int64_t version[8];
};

static int holder_cb(const struct hub_plan_holder *ph, void *ctx)
{
    struct holder_list *l = ctx;
    if (l->n < 8) {
        snprintf(l->ids[l->n], PLAN_ID_LEN + 1, "%s", ph->device_id);
        l->purge_sent[l->n] = ph->purge_sent;
        l->version[l->n] = ph->version;
    }
    l->n++;
    return 0;
}

static int holder_index(const struct holder_list *l, const char *device_id)
{
    for (int i = 0; i < l->n && i < 8; i++)
        if (strcmp(l->ids[i], device_id) == 0)
            return i;
    return -1;
}

static void ack_purge_api(struct env *e, struct device *d, const char *plan_id)
{
    struct mp_writer w;
    struct reqsig_headers h;
    struct hub_response resp;
    uint8_t *body = NULL;
    size_t len = 0;
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "purges");
    mp_write_array(&w, 1);
    mp_write_cstr(&w, plan_id);
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    memset(&h, 0, sizeof h);
    signed_call(e, d, "POST", "/v1/ack", body, len, &h, &resp);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    cmc_free(body);
}

static void test_purge_repeated_until_acknowledged(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1], other[PLAN_ID_LEN + 1];
    struct device quiet, acker, away, gone;
    struct holder_list l;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    import_plan(e, 1, "4010232137", REGION, NULL, "nurse1", other);
    publish(e, other);
    new_device(e, &quiet, "region:" REGION, "urgent_care");
    new_device(e, &acker, "region:" REGION, "urgent_care");
    new_device(e, &away, "all", "urgent_care");
    new_device(e, &gone, "all", "urgent_care");
    quiet.no_ack = 1;
    sync_device(e, &quiet, 0);
    sync_device(e, &acker, 0);
    sync_device(e, &away, 0);
    sync_device(e, &gone, 0);
    assert_int_equal(quiet.n_held, 2);

    /* before the withdrawal, the holders are the devices that hold it */
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, holder_cb, &l), CMC_OK);
    assert_int_equal(l.n, 4);

    /* `gone` is wiped: its copy no longer exists and it is not listed */
    assert_int_equal(hub_device_wipe(e->h, gone.id), CMC_OK);
    assert_int_equal(hub_ack(e->h, gone.id, NULL, 0, 1), CMC_OK);

    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    sync_device(e, &quiet, 0);
    sync_device(e, &acker, 0);
    assert_int_equal(quiet.purges, 1);
    assert_int_equal(acker.purges, 1);
    assert_null(held_plan(&quiet, id));

    /* `quiet` never acknowledged: listed as sent-not-acknowledged; `away` has not synced
     * since, so it still holds the published version; `acker` is done */
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, "943 476 5919", holder_cb, &l), CMC_OK);
    assert_int_equal(l.n, 2);
    int qi = holder_index(&l, quiet.id), ai = holder_index(&l, away.id);
    assert_true(qi >= 0 && ai >= 0);
    assert_int_equal(l.purge_sent[qi], 1);
    assert_int_equal(l.purge_sent[ai], 0);
    assert_true(l.version[ai] >= 1);
    assert_int_equal(holder_index(&l, acker.id), -1);
    assert_int_equal(holder_index(&l, gone.id), -1);

    /* the purge goes again in each of quiet's bundles, idle polls included, once per page;
     * the acknowledging device gets nothing more */
    for (int round = 0; round < 3; round++) {
        sync_device(e, &quiet, 0);
        assert_int_equal(quiet.purges, 1);
        assert_string_equal(quiet.purged[0], id);
        assert_string_equal(quiet.last_reason, "consent_withdrawn");
        assert_non_null(held_plan(&quiet, other));
        sync_device(e, &acker, 0);
        assert_int_equal(acker.purges + acker.puts + acker.deltas, 0);
    }
    /* a change elsewhere arrives alongside the repeated purge, without a second copy */
    {
        const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", other, change, strlen(change), NULL),
                         CMC_OK);
        publish(e, other);
        sync_device(e, &quiet, 0);
        assert_int_equal(quiet.purges, 1);
        assert_int_equal(quiet.puts + quiet.deltas, 1);
        assert_string_equal(held_plan(&quiet, other)->prognosis, "days");
    }

    /* the acknowledgement (POST /v1/ack) stops it */
    ack_purge_api(e, &quiet, id);
    sync_device(e, &quiet, 0);
    assert_int_equal(quiet.purges, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, holder_cb, &l), CMC_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], away.id);

    /* the late device gets the purge on its next sync, acknowledges it, and the plan is
     * gone everywhere */
    sync_device(e, &away, 0);
    assert_int_equal(away.purges, 1);
    assert_null(held_plan(&away, id));
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, id, holder_cb, &l), CMC_OK);
    assert_int_equal(l.n, 0);
    device_free(&quiet);
    device_free(&acker);
    device_free(&away);
    device_free(&gone);
}

/* A deep copy of a device's replica (what a backup of the tablet would hold). */
static void device_snapshot(const struct device *from, struct device *to)
{
    *to = *from;
    to->held = calloc(MAX_HELD, sizeof *to->held);
    to->page_purged = calloc(MAX_HELD, sizeof *to->page_purged);
    assert_non_null(to->held);
    assert_non_null(to->page_purged);
    for (size_t i = 0; i < from->n_held; i++)
        assert_int_equal(plan_copy(&to->held[i], &from->held[i]), CMC_OK);
    to->sk = NULL; /* the key stays with the original */
}

static void snapshot_free(struct device *d)
{
    for (size_t i = 0; i < d->n_held; i++)
        plan_free(&d->held[i]);
    free(d->held);
    free(d->page_purged);
}

static void test_rollback_detected_and_repaired(void **state)
{
    struct env *e = *state;
    char kept[PLAN_ID_LEN + 1], withdrawn[PLAN_ID_LEN + 1], edited[PLAN_ID_LEN + 1];
    char added[PLAN_ID_LEN + 1], moved[PLAN_ID_LEN + 1];
    struct device amb, backup, fresh;
    struct hub_device_info info;
    struct holder_list l;
    uint64_t c1, c2;
    int64_t edited_v1;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", kept);
    publish(e, kept);
    import_plan(e, 1, "4010232137", REGION, NULL, "nurse1", withdrawn);
    publish(e, withdrawn);
    import_plan(e, 2, "9990001111", REGION, NULL, "nurse1", edited);
    publish(e, edited);
    import_plan(e, 3, "9990002223", REGION, TEAM, "nurse1", moved);
    publish(e, moved);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    sync_device(e, &amb, 0);
    c1 = amb.cursor;
    assert_int_equal(amb.n_held, 4);
    edited_v1 = held_plan(&amb, edited)->version;
    device_snapshot(&amb, &backup); /* the tablet is backed up at C1 */

    /* between C1 and C2: a withdrawal, an approved edit, a new plan, a plan leaving */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", withdrawn), CMC_OK);
    {
        const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", edited, change, strlen(change), NULL),
                         CMC_OK);
        publish(e, edited);
    }
    import_plan(e, 4, "9990003335", REGION, NULL, "nurse1", added);
    publish(e, added);
    {
        const char *change = "{\"set\": {\"region\": \"north-central-london\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", moved, change, strlen(change), NULL),
                         CMC_OK);
        publish(e, moved);
    }
    sync_device(e, &amb, 0);
    c2 = amb.cursor;
    assert_true(c2 > c1);
    assert_int_equal(amb.rollback_pages, 0);
    assert_int_equal(amb.purges, 2); /* withdrawn and moved, both acknowledged */
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    /* a poll from C2 proves C2 */
    sync_device(e, &amb, 0);
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.cursor, c2);
    assert_int_equal(info.last_rollback, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, withdrawn, holder_cb, &l), CMC_OK);
    assert_int_equal(l.n, 0);

    /* the old copy is restored onto the tablet: it pulls from C1 again */
    snapshot_free(&amb);
    amb.held = backup.held;
    amb.n_held = backup.n_held;
    amb.page_purged = backup.page_purged;
    amb.cursor = backup.cursor;
    assert_non_null(held_plan(&amb, withdrawn)); /* the withdrawn plan is back on the tablet */
    plat_fake_clock_advance(60ull * 1000000000ull);
    sync_device(e, &amb, 0);
    /* caught: the answer is flagged, and it repairs the replica */
    assert_int_equal(amb.rollback_pages, 1);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 1);
    assert_int_equal(info.last_rollback, T0 + 60);
    assert_null(held_plan(&amb, withdrawn));
    assert_null(held_plan(&amb, moved));
    assert_non_null(held_plan(&amb, added));
    assert_non_null(held_plan(&amb, kept));
    assert_true(held_plan(&amb, edited)->version > edited_v1);
    assert_string_equal(held_plan(&amb, edited)->prognosis, "days");
    assert_int_equal(amb.cursor, c2);
    /* the restored tablet now holds exactly what a new device of its scope holds */
    new_device(e, &fresh, "region:" REGION, "urgent_care");
    sync_device(e, &fresh, 0);
    assert_int_equal(fresh.n_held, amb.n_held);
    for (size_t i = 0; i < fresh.n_held; i++) {
        struct plan *p = held_plan(&amb, fresh.held[i].plan_id);
        assert_non_null(p);
        assert_true(plan_equal(p, &fresh.held[i]));
    }
    /* the next sync is ordinary again */
    sync_device(e, &amb, 0);
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(amb.purges + amb.puts + amb.deltas, 0);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 1);
    device_free(&amb);
    device_free(&fresh);
}

/* The flag itself, page by page: set on the answer to the older cursor only. */
static void test_rollback_flag_on_the_answer(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb;
    struct bundle_header hdr;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t c1;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    sync_device(e, &amb, 0);
    c1 = amb.cursor;
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    sync_device(e, &amb, 0);
    assert_true(amb.cursor > c1);
    /* a pull repeated from the same cursor (a lost answer) is not a rollback */
    assert_int_equal(hub_pull(e->h, amb.id, amb.cursor, amb.cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_false(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    cmc_free(buf);
    assert_int_equal(hub_pull(e->h, amb.id, amb.cursor, amb.cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_false(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    cmc_free(buf);
    /* from C1, after C2 was proven: flagged, with the purge again */
    amb.cursor = c1;
    assert_int_equal(hub_pull(e->h, amb.id, c1, c1, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_true(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(hdr.from_cursor, c1);
    amb.purges = 0;
    apply_bundle(e, &amb, buf, len, 1);
    assert_int_equal(amb.purges, 1);
    assert_string_equal(amb.purged[0], id);
    cmc_free(buf);
    device_free(&amb);
}

/* A device that pulled the page with a purge, committed it and acknowledged the purge has
 * proven that page even before its next pull: a copy restored from before it is caught. */
static void test_rollback_proven_by_acknowledgement(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb, quiet;
    struct hub_device_info info;
    struct bundle_header hdr;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t c1, q1;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    new_device(e, &quiet, "region:" REGION, "urgent_care");
    quiet.no_ack = 1;
    sync_device(e, &amb, 0);
    sync_device(e, &quiet, 0);
    sync_device(e, &amb, 0); /* proves C1 */
    sync_device(e, &quiet, 0);
    c1 = amb.cursor;
    q1 = quiet.cursor;
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    sync_device(e, &amb, 0);   /* one pull: the purge page, committed and acknowledged */
    sync_device(e, &quiet, 0); /* the same, never acknowledged */
    assert_int_equal(amb.purges, 1);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.proven, amb.cursor);
    assert_true(info.proven > c1);
    /* the copy from C1 comes back: caught although no pull ever came from the newer cursor */
    assert_int_equal(hub_pull(e->h, amb.id, c1, c1, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_true(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    cmc_free(buf);
    /* without an acknowledgement nothing proves the newer page: an ordinary repeat */
    assert_int_equal(hub_pull(e->h, quiet.id, q1, q1, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_false(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    cmc_free(buf);
    device_free(&amb);
    device_free(&quiet);
}

static void test_wipe_states_and_ack(void **state)
{
    struct env *e = *state;
    struct device d, other;
    struct hub_device_info info;

    new_device(e, &d, "all", "urgent_care");
    new_device(e, &other, "all", "urgent_care");
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
    sync_device(e, &d, 0);
    assert_int_equal(d.wipes, 1);
    {
        struct mp_writer w;
        struct reqsig_headers h;
        struct hub_response resp;
        uint8_t *body = NULL;
        size_t len = 0;
        mp_writer_init(&w);
        mp_write_map(&w, 1);
        mp_write_cstr(&w, "wipe");
        mp_write_bool(&w, 1);
        assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
        memset(&h, 0, sizeof h);
        plat_fake_clock_advance(5ull * 1000000000ull);
        signed_call(e, &d, "POST", "/v1/ack", body, len, &h, &resp);
        assert_int_equal(resp.status, 200);
        hub_response_free(&resp);
        cmc_free(body);
    }
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "wiped");
    assert_int_equal(info.wiped_at, T0 + 5);
    assert_int_equal(info.wipe, 0);
    /* wiped is final: refused from then on, and no second order */
    {
        struct reqsig_headers h;
        struct hub_response resp;
        memset(&h, 0, sizeof h);
        signed_call(e, &d, "GET", "/v1/pull?cursor=0", NULL, 0, &h, &resp);
        assert_int_equal(resp.status, 401);
        hub_response_free(&resp);
    }
    assert_int_equal(hub_device_wipe(e->h, d.id), CMC_ERR_STATE);
    /* a revoked device shows as revoked */
    assert_int_equal(hub_device_revoke(e->h, other.id), CMC_OK);
    assert_int_equal(hub_device_get(e->h, other.id, &info), CMC_OK);
    assert_string_equal(hub_device_state_label(&info), "revoked");
    device_free(&d);
    device_free(&other);
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
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device d;
    struct hub_device_info info;
    uint8_t prev[CRY_HASH_BYTES] = {0}, at2[CRY_HASH_BYTES], stray[CRY_HASH_BYTES];
    struct mp_writer w;
    uint8_t *body = NULL, *old3 = NULL;
    size_t len = 0, old3_len = 0;
    uint64_t acked = 0;
    int n = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    new_device(e, &d, "all", "urgent_care");
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 2);
    audit_entry(&w, 1, prev, id, "");
    audit_entry(&w, 2, prev, id, "");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    cmc_free(body);
    memcpy(at2, prev, sizeof at2); /* the backup was taken here */
    /* entry 3 on the original line */
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 1);
    audit_entry(&w, 3, prev, id, "");
    assert_int_equal(mp_writer_finish(&w, &old3, &old3_len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, old3, old3_len, &acked), CMC_OK);
    assert_int_equal(acked, 3);
    assert_int_equal(hub_device_get(e->h, d.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 0);

    /* a different entry 3 that continues nothing the hub holds: refused */
    memset(stray, 0x5a, sizeof stray);
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 1);
    audit_entry(&w, 3, stray, "", "4010232137");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_ERR_CONFLICT);
    cmc_free(body);

    /* the restored copy logs a different entry 3 after entry 2, then entry 4 */
    memcpy(prev, at2, sizeof prev);
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 2);
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
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 1);
    audit_entry(&w, 5, prev, id, "");
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    assert_int_equal(hub_audit_intake(e->h, d.id, body, len, &acked), CMC_OK);
    assert_int_equal(acked, 5);
    cmc_free(body);
    device_free(&d);
}

static void test_audit_answers_who_viewed(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device d;
    uint8_t prev[CRY_HASH_BYTES] = {0};
    struct mp_writer w;
    struct audit_rows a;
    struct reqsig_headers h;
    struct hub_response resp;
    uint8_t *body = NULL;
    size_t len = 0;
    int n = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    new_device(e, &d, "all", "urgent_care");
    plat_fake_clock_advance(100ull * 1000000000ull);
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, 3);
    audit_entry(&w, 1, prev, id, "9434765919");   /* a hit */
    audit_entry(&w, 2, prev, "", "9434765919");   /* a miss for the same patient */
    audit_entry(&w, 3, prev, "", "4010232137");   /* a miss for a patient with no plan */
    assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    /* one altered byte in the last entry: the whole request is refused, nothing stored */
    body[len - 40] ^= 1;
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "POST", "/v1/audit", body, len, &h, &resp);
    assert_int_equal(resp.status, 400);
    assert_true(body_has(&resp, "hash"));
    hub_response_free(&resp);
    n = 0;
    assert_int_equal(hub_audit_list(e->h, id, count_cb, &n), CMC_OK);
    assert_int_equal(n, 0);
    body[len - 40] ^= 1;
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "POST", "/v1/audit", body, len, &h, &resp);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
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
        assert_int_equal(a.wall[0], T0 + 1);
        assert_int_equal(a.received[0], T0 + 100);
        assert_string_equal(a.action[0], "lookup");
    }
    /* an NHS number with no plan on the hub still finds the look-up that missed */
    memset(&a, 0, sizeof a);
    assert_int_equal(hub_audit_list(e->h, "4010232137", audit_rows_cb, &a), CMC_OK);
    assert_int_equal(a.n, 1);
    /* nothing at all known: not found; a bad check digit: invalid */
    assert_int_equal(hub_audit_list(e->h, "9990001111", count_cb, &n), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_audit_list(e->h, "9434765918", count_cb, &n), CMC_ERR_INVALID);
    device_free(&d);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void test_api_bad_input(void **state)
{
    struct env *e = *state;
    struct device d;
    struct hub_response resp;
    struct reqsig_headers h;
    uint8_t junk[512];

    new_device(e, &d, "all", "clinician");
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
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "POST", "/v1/push", (const uint8_t *)"\x93\x01", 2, &h, &resp);
    assert_int_equal(resp.status, 400);
    hub_response_free(&resp);
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "GET", "/v1/pull?cursor=abc", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 400);
    hub_response_free(&resp);
    memset(&h, 0, sizeof h);
    signed_call(e, &d, "GET", "/v1/pull", NULL, 0, &h, &resp);
    assert_int_equal(resp.status, 400);
    hub_response_free(&resp);
    /* random bodies to every endpoint: always a 4xx answer, never a crash */
    const char *paths[] = {"/v1/push", "/v1/audit", "/v1/ack", "/v1/enroll"};
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(round * 7 % (int)sizeof junk);
        cry_random(junk, n);
        if (round % 3 == 0 && n > 0)
            junk[0] = (uint8_t)(0x80 | (round % 16)); /* a map header, to get further in */
        memset(&h, 0, sizeof h);
        signed_call(e, &d, "POST", paths[round % 4], junk, n, &h, &resp);
        assert_true(resp.status >= 400 && resp.status < 500);
        hub_response_free(&resp);
    }
    device_free(&d);
}

/* ---- seeding --------------------------------------------------------------------------- */

static void test_seed_determinism(void **state)
{
    struct env *e = *state;
    int counts[5] = {0};
    int extras = 0;
    static char nhs_seen[2000][PLAN_NHS_LEN + 1];
    long n = 2000;
    (void)e;
    for (long i = 0; i < n; i++) {
        struct plan a, b, c;
        int sa, sb, sc, xa, xb, xc;
        assert_int_equal(hub_seed_plan(42, i, &a, &sa, &xa), CMC_OK);
        assert_int_equal(hub_seed_plan(42, i, &b, &sb, &xb), CMC_OK);
        assert_int_equal(hub_seed_plan(43, i, &c, &sc, &xc), CMC_OK);
        assert_true(plan_equal(&a, &b));
        assert_false(plan_equal(&a, &c));
        assert_true(plan_nhs_valid(a.nhs_number));
        assert_int_equal(plan_validate(&a, PLAN_CHECK_DRAFT), CMC_OK);
        if (sa == PLAN_STATUS_PUBLISHED || sa == PLAN_STATUS_AWAITING_APPROVAL)
            assert_int_equal(plan_validate(&a, PLAN_CHECK_COMPLETE), CMC_OK);
        assert_true(sa > 0 && sa < 5);
        counts[sa]++;
        extras += xa;
        strcpy(nhs_seen[i], a.nhs_number);
        plan_free(&a);
        plan_free(&b);
        plan_free(&c);
    }
    for (int s = 1; s <= 4; s++)
        assert_true(counts[s] > 0);
    assert_true(extras > 0);
    assert_true(counts[PLAN_STATUS_PUBLISHED] > n / 2);
    for (long i = 0; i < n; i++)
        for (long j = i + 1; j < n; j++)
            assert_string_not_equal(nhs_seen[i], nhs_seen[j]);
}

static void test_seed_store_same_plans(void **state)
{
    struct env *e = *state;
    struct hub_plan_info info;
    struct plan stored, fresh;
    int status, extra;
    uint64_t head = 0;

    assert_int_equal(hub_seed(e->h, 500, 8, NULL, NULL), CMC_OK);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(head, 500);
    /* the same seed again collides: nothing half-added */
    assert_int_equal(hub_seed(e->h, 10, 8, NULL, NULL), CMC_ERR_EXISTS);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(head, 500);
    for (long i = 0; i < 500; i += 37) {
        assert_int_equal(hub_seed_plan(8, i, &fresh, &status, &extra), CMC_OK);
        assert_int_equal(hub_plan_info(e->h, fresh.nhs_number, &info), CMC_OK);
        assert_string_equal(info.plan_id, fresh.plan_id);
        plan_init(&stored);
        assert_int_equal(hub_plan_get(e->h, info.plan_id, 1, &stored), CMC_OK);
        assert_true(plan_equal(&stored, &fresh));
        assert_int_equal(info.status, extra ? PLAN_STATUS_DRAFT : status);
        plan_free(&stored);
        plan_free(&fresh);
    }
}


/* ---- allocation failure ---------------------------------------------------------------- */

static void test_allocation_failure_is_clean(void **state)
{
    struct env *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct device amb;
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    int failures = 0;

    import_plan(e, 0, "9434765919", REGION, TEAM, "nurse1", id);
    publish(e, id);
    new_device(e, &amb, "region:" REGION, "urgent_care");
    sync_device(e, &amb, 0);
    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    publish(e, id);
    /* the n-th allocation of a pull (a delta page) fails: an error, nothing leaked, and
     * nothing recorded, so the device can simply ask again */
    for (long n = 0; n < 10000; n++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        cmc_alloc_fail_after(n, 1);
        int rc = hub_pull(e->h, amb.id, amb.cursor, amb.cursor, 0, &buf, &len);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            cmc_free(buf);
            break;
        }
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(buf);
        failures++;
    }
    assert_true(failures > 3);
    sync_device(e, &amb, 0);
    assert_int_equal(amb.deltas, 1);
    /* the same for an edit: the plan stays as it was */
    failures = 0;
    for (long n = 0; n < 10000; n++) {
        struct hub_plan_info before, after;
        assert_int_equal(hub_plan_info(e->h, id, &before), CMC_OK);
        cmc_alloc_fail_after(n, 1);
        int rc = hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL);
        cmc_alloc_fail_after(-1, 0);
        assert_int_equal(hub_plan_info(e->h, id, &after), CMC_OK);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_int_equal(after.version, before.version);
        failures++;
    }
    assert_true(failures > 3);

    /* a rollback answer carrying a repeated purge: a failed attempt records nothing, so the
     * rollback is counted once, by the answer that got through */
    {
        char gone[PLAN_ID_LEN + 1];
        struct hub_device_info info;
        uint64_t old_cursor;
        import_plan(e, 1, "4010232137", REGION, NULL, "nurse1", gone);
        publish(e, gone);
        amb.no_ack = 1;
        sync_device(e, &amb, 0);
        old_cursor = amb.cursor;
        assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", gone), CMC_OK);
        sync_device(e, &amb, 0);
        sync_device(e, &amb, 0); /* proves the newer cursor */
        assert_int_equal(amb.purges, 1); /* repeated: never acknowledged */
        failures = 0;
        for (long n = 0; n < 10000; n++) {
            struct bundle_header hdr;
            uint8_t *buf = NULL;
            size_t len = 0;
            cmc_alloc_fail_after(n, 1);
            int rc = hub_pull(e->h, amb.id, old_cursor, old_cursor, 0, &buf, &len);
            cmc_alloc_fail_after(-1, 0);
            if (rc == CMC_OK) {
                assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
                assert_true(hdr.flags & BUNDLE_FLAG_ROLLBACK);
                cmc_free(buf);
                break;
            }
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(buf);
            assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
            assert_int_equal(info.rollbacks, 0);
            failures++;
        }
        assert_true(failures > 3);
        assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
        assert_int_equal(info.rollbacks, 1);
    }
    device_free(&amb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_plan_cannot_be_submitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_stays_while_draft_edited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_urgent_care_never_gets_drafts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_verifies_and_flipped_byte_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_reproduces_hub_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_withdrawal_purges_holders_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caseload_removal_purges_team_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_poll_is_tiny_and_paging_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enrollment_code_once_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replayed_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_device_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_idempotency_and_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_intake_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_in_every_bundle_and_lease_precedence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purge_repeated_until_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_detected_and_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_flag_on_the_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_proven_by_acknowledgement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_states_and_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_answers_who_viewed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_fork_after_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_determinism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_store_same_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failure_is_clean, setup, teardown),
    };
    assert_int_equal(cry_init(), CMC_OK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
