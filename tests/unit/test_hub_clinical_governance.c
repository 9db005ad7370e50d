/* Clinical governance at the hub: the consistency rules stop submission and approval; every
 * approval renews the review date (12 months, or earlier by the GP's choice, never later);
 * "reviewed, no changes" publishes a new version; practices list plans due for review;
 * consent is withdrawn only by a clinician, a GP or the patient's own bound account, with a
 * reason kept beside who asked; renewed consent is a draft that needs approval; patient
 * accounts act only on their own plan. The clock is fake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/plat_test.h"
#include "hub/clinical.h"
#include "hub/internal.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/hub_fixture.h"
#include "sync/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796202000 /* 2026-12-02T09:00:00Z */
#define DAY 86400
#define NHS "9434765919" /* the example plan's */
#define OTHER_NHS "4010232137"
#define THIRD_NHS "9000000009"

/* The staff of tst_hub_setup() and two patients' accounts, on a fake clock at T0. */
static int setup(void **state)
{
    struct tst_hub *e = calloc(1, sizeof *e);
    assert_non_null(e);
    tst_hub_open(e, T0);
    tst_hub_add_staff(e);
    assert_int_equal(hub_user_add_patient(e->h, "maggie", "943 476 5919"), CMC_OK);
    assert_int_equal(hub_user_add_patient(e->h, "someone", OTHER_NHS), CMC_OK);
    *state = e;
    return 0;
}

/* The second-edition example, optionally changed, as JSON for import. */
static char *example_json(void (*mutate)(struct plan *), const char *nhs)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct plan p;
    char *json = NULL;
    assert_int_equal(plat_read_file("docs/examples/plan-second-edition.json", 1 << 20, &buf, &len), CMC_OK);
    assert_int_equal(plan_from_json((const char *)buf, len, &p), CMC_OK);
    cmc_free(buf);
    if (nhs != NULL) {
        char id[PLAN_ID_LEN + 1];
        cmc_free(p.nhs_number);
        p.nhs_number = cmc_strdup(nhs);
        plan_uuid_new(id);
        cmc_free(p.plan_id);
        p.plan_id = cmc_strdup(id);
    }
    if (mutate != NULL)
        mutate(&p);
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    plan_free(&p);
    return json;
}

static void import(struct tst_hub *e, const char *as, void (*mutate)(struct plan *), const char *nhs,
                   char id[PLAN_ID_LEN + 1])
{
    char *json = example_json(mutate, nhs);
    int rc = hub_plan_import(e->h, as, json, strlen(json), id);
    cmc_free(json);
    if (rc != CMC_OK)
        fail_msg("import: %s", cmc_errmsg());
}

static void publish(struct tst_hub *e, char id[PLAN_ID_LEN + 1])
{
    import(e, "nurse1", NULL, NULL, id);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

static void review_due(struct tst_hub *e, const char *id, char out[11])
{
    struct plan p;
    assert_int_equal(hub_plan_get(e->h, id, 0, &p), CMC_OK);
    assert_non_null(p.review_due);
    snprintf(out, 11, "%s", p.review_due);
    plan_free(&p);
}

/* ---- rules at submit and approval ------------------------------------------------------ */

static void for_cpr_over_dnacpr(struct plan *p) { p->resuscitation.decision = PLAN_CPR_FOR_CPR; }
static void no_gp(struct plan *p) { p->contacts[0].role = PLAN_CONTACT_OTHER; }
static void nka_beside_allergy(struct plan *p) { p->allergies_status = PLAN_ALLERGIES_NKA; }

static void test_rules_stop_submission(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], id2[PLAN_ID_LEN + 1];
    import(e, "nurse1", for_cpr_over_dnacpr, NULL, id);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "resuscitation.decision"));
    assert_non_null(strstr(cmc_errmsg(), "rule cpr-recommendation"));
    assert_int_equal(cmc_exit_code(CMC_ERR_INVALID), 2);
    import(e, "nurse1", no_gp, OTHER_NHS, id2);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id2), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "rule gp-contact"));
    /* "no known allergies" beside a listed allergy: refused, naming both fields */
    import(e, "nurse1", nka_beside_allergy, THIRD_NHS, id2);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id2), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "rule allergies-status"));
    assert_non_null(strstr(cmc_errmsg(), "allergies_status, allergies:"));
}

/* Approval re-checks the rules against the day it happens: a decision dated after the
 * submission day but before approval passes; one the approval clock has not reached fails. */
static void decided_tomorrow(struct plan *p)
{
    cmc_free(p->resuscitation.decided_at);
    p->resuscitation.decided_at = cmc_strdup("2026-12-03");
}

static void test_rules_stop_approval(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    import(e, "nurse1", decided_tomorrow, NULL, id);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_ERR_INVALID); /* in the future */
    plat_fake_clock_set_wall(T0 + DAY);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    plat_fake_clock_set_wall(T0); /* the approving hub's clock is a day behind */
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "rule no-future-dates"));
    plat_fake_clock_set_wall(T0 + DAY);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

/* ---- review that renews ---------------------------------------------------------------- */

static int count_cb(const struct hub_plan_info *info, const char *due, void *ctx)
{
    (void)info;
    (void)due;
    ++*(int *)ctx;
    return 0;
}

static void test_approval_sets_review_date(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], due[11];
    import(e, "nurse1", NULL, NULL, id);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    /* the file's review_due (2027-02-11) is replaced: approval always sets it */
    assert_int_equal(hub_plan_approve_next(e->h, "gp1", id, "2028-01-01"), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_approve_next(e->h, "gp1", id, "2026-12-02"), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_approve_next(e->h, "gp1", id, "2026-13-01"), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_approve_next(e->h, "gp1", id, "2027-06-01"), CMC_OK);
    review_due(e, id, due);
    assert_string_equal(due, "2027-06-01");
}

static void test_review_renews(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], due[11];
    struct hub_plan_info info;
    int n = 0;
    publish(e, id);
    review_due(e, id, due);
    assert_string_equal(due, "2027-12-02"); /* default: 12 months */
    assert_int_equal(hub_plan_list_review_due(e->h, "2027-12-02", count_cb, &n), CMC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hub_plan_list_review_due(e->h, "2027-12-03", count_cb, &n), CMC_OK);
    assert_int_equal(n, 1);

    plat_fake_clock_set_wall(T0 + 400 * DAY); /* 2028-01-06: overdue */
    assert_int_equal(hub_plan_review(e->h, "nurse1", id, NULL), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_review(e->h, "gp1", id, "2029-06-01"), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_review(e->h, "gp1", id, NULL), CMC_OK);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.status, PLAN_STATUS_PUBLISHED);
    assert_int_equal(info.version, 4);
    assert_int_equal(info.published_version, 4);
    review_due(e, id, due);
    assert_string_equal(due, "2029-01-05");
    n = 0;
    assert_int_equal(hub_plan_list_review_due(e->h, "2028-01-06", count_cb, &n), CMC_OK);
    assert_int_equal(n, 0);

    /* with a draft pending, the draft is what gets approved: review refuses */
    static const char change[] = "{\"set\": {\"prognosis\": \"weeks\"}}";
    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    assert_int_equal(hub_plan_review(e->h, "gp1", id, NULL), CMC_ERR_STATE);
}

/* ---- consent governance ---------------------------------------------------------------- */

static int consent_log_rows(struct tst_hub *e, const char *action, const char *requester,
                            const char *reason)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    assert_int_equal(sqlite3_prepare_v2(e->h->db, "SELECT count(*) FROM consent_log WHERE action = ?1"
                                        " AND requester = ?2 AND reason = ?3", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, requester, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_withdrawal_is_governed(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct hub_plan_info info;
    publish(e, id);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "admin1", id, "asked"), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "someone", id, "asked"), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "nurse1", id, NULL), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "nurse1", id, ""), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_false(info.consent_withdrawn);
    /* the patient's own account may */
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "maggie", id, "I no longer want it shared"),
                     CMC_OK);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_true(info.consent_withdrawn);
    assert_int_equal(consent_log_rows(e, "withdraw", "maggie", "I no longer want it shared"), 1);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "gp1", id, "again"), CMC_ERR_STATE);
}

static void test_reinstated_consent_needs_approval(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct hub_plan_info info;
    int64_t v = 0;
    publish(e, id);
    assert_int_equal(hub_plan_reinstate_consent(e->h, "nurse1", id, "renewed", &v), CMC_ERR_STATE);
    assert_int_equal(hub_plan_withdraw_consent_reason(e->h, "gp1", id, "patient request"), CMC_OK);
    assert_int_equal(hub_plan_reinstate_consent(e->h, "admin1", id, "renewed", &v), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_reinstate_consent(e->h, "nurse1", id, NULL, &v), CMC_ERR_USAGE);
    assert_int_equal(hub_plan_reinstate_consent(e->h, "nurse1", id, "consent renewed at visit", &v),
                     CMC_OK);
    assert_int_equal(v, 4);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_false(info.consent_withdrawn);
    assert_int_equal(info.status, PLAN_STATUS_DRAFT);
    assert_int_equal(info.published_version, 0); /* devices get nothing until approval */
    assert_int_equal(consent_log_rows(e, "reinstate", "nurse1", "consent renewed at visit"), 1);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    assert_int_equal(info.published_version, 6);
}

/* ---- patient accounts ------------------------------------------------------------------ */

static void test_patient_accounts_own_plan_only(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], other[PLAN_ID_LEN + 1], nhs[PLAN_NHS_LEN + 1];
    char *json = example_json(NULL, OTHER_NHS);
    assert_int_equal(hub_user_nhs(e->h, "maggie", nhs), CMC_OK);
    assert_string_equal(nhs, NHS);
    assert_int_equal(hub_user_add_patient(e->h, "bad", "9434765918"), CMC_ERR_USAGE);
    /* maggie starts her own plan, not someone else's */
    assert_int_equal(hub_plan_import(e->h, "maggie", json, strlen(json), other), CMC_ERR_DENIED);
    cmc_free(json);
    import(e, "maggie", NULL, NULL, id);
    assert_int_equal(hub_plan_may_see(e->h, "maggie", id), CMC_OK);
    assert_int_equal(hub_plan_may_see(e->h, "someone", id), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_may_see(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_submit(e->h, "maggie", id), CMC_ERR_DENIED);
    static const char change[] = "{\"set\": {\"what_matters_to_me\": \"My garden.\"}}";
    assert_int_equal(hub_plan_edit(e->h, "someone", id, change, strlen(change), NULL), CMC_ERR_DENIED);
    assert_int_equal(hub_plan_edit(e->h, "maggie", id, change, strlen(change), NULL), CMC_OK);
    /* an account made before bindings is bound by the first plan it starts */
    assert_int_equal(hub_user_add(e->h, "legacy", "patient"), CMC_OK);
    import(e, "legacy", NULL, OTHER_NHS, other);
    assert_int_equal(hub_user_nhs(e->h, "legacy", nhs), CMC_OK);
    assert_string_equal(nhs, OTHER_NHS);
    assert_int_equal(hub_plan_may_see(e->h, "legacy", id), CMC_ERR_DENIED);
}

TST_HUB_MAIN_WITH(setup, test_rules_stop_submission, test_rules_stop_approval,
                  test_approval_sets_review_date, test_review_renews, test_withdrawal_is_governed,
                  test_reinstated_consent_needs_approval, test_patient_accounts_own_plan_only)
