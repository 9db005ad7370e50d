/*
 * plans.c - the plan lifecycle at the hub: import, edit, submit, approve, consent
 * withdrawal, look-ups and caseloads.
 *
 * Every state change writes a new version (see hub.h for why) inside one transaction with
 * its event and change-log entry, so a crash leaves either the whole step or none of it.
 */
#include "hub/internal.h"

#include "hub/clinical.h"
#include "sync/rules.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"

#include <stdio.h>
#include <string.h>

static int hub_patient_owns(hub *h, const char *as_user, int role, const char *nhs);
static int hub_patient_owns_bind(hub *h, const char *as_user, int role, const char *nhs,
                                 int bind_first);
static int hub_check_rules(const struct plan *p, const char *what);

int hub_set_text(char **member, const char *s)
{
    char *copy = NULL;
    if (s != NULL && (copy = cmc_strdup(s)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "plan field");
    cmc_free(*member);
    *member = copy;
    return CMC_OK;
}

static void hub_now_text(char out[21])
{
    plat_format_time(plat_wall_now(), out);
}

int hub_plan_resolve(hub *h, const char *plan_ref, char plan_id[PLAN_ID_LEN + 1])
{
    sqlite3_stmt *st = NULL;
    char nhs[PLAN_NHS_LEN + 1];
    int by_id, rc;

    if (plan_ref == NULL || plan_ref[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "PLAN: a plan id or an NHS number");
    by_id = plan_uuid_valid(plan_ref);
    if (!by_id && plan_nhs_normalise(plan_ref, nhs) != CMC_OK)
        return hub_fail_wrap(CMC_ERR_INVALID, "PLAN: not a plan id, and");
    if ((rc = hub_db_row(h, "plan look-up", &st,
                         by_id ? "SELECT plan_id FROM plans WHERE plan_id = ?1"
                               : "SELECT plan_id FROM plans WHERE nhs = ?1",
                         HUB_ARGS(HUB_TEXT(by_id ? plan_ref : nhs)))) != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no plan on the hub for that plan id or NHS number");
    hub_col_copy(st, 0, plan_id, PLAN_ID_LEN + 1);
    sqlite3_finalize(st);
    return rc;
}

static void hub_info_from_row(sqlite3_stmt *st, struct hub_plan_info *out)
{
    memset(out, 0, sizeof *out);
    hub_col_copy(st, 0, out->plan_id, sizeof out->plan_id);
    hub_col_copy(st, 1, out->nhs_number, sizeof out->nhs_number);
    out->version = sqlite3_column_int64(st, 2);
    out->status = sqlite3_column_int(st, 3);
    out->published_version = sqlite3_column_int64(st, 4);
    out->consent_withdrawn = sqlite3_column_int(st, 5);
    out->seq = (uint64_t)sqlite3_column_int64(st, 6);
}

#define HUB_INFO_COLS "plan_id, nhs, latest, latest_status, published, withdrawn, seq"

int hub_plan_info(hub *h, const char *plan_ref, struct hub_plan_info *out)
{
    char id[PLAN_ID_LEN + 1];
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = hub_plan_resolve(h, plan_ref, id)) != CMC_OK)
        return rc;
    if ((rc = hub_db_row(h, "plan", &st,
                         "SELECT " HUB_INFO_COLS " FROM plans WHERE plan_id = ?1",
                         HUB_ARGS(HUB_TEXT(id)))) != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "plan %s not found", id);
    hub_info_from_row(st, out);
    sqlite3_finalize(st);
    return rc;
}

int hub_plan_list(hub *h, int status, int (*cb)(const struct hub_plan_info *, void *), void *ctx)
{
    struct hub_plan_info info;
    struct hub_rows r;
    hub_rows_open(h, &r, "plan list",
                  "SELECT " HUB_INFO_COLS " FROM plans WHERE ?1 = 0 OR latest_status = ?1"
                  " ORDER BY plan_id", HUB_ARGS(HUB_INT(status)));
    while (hub_rows_next(&r)) {
        hub_info_from_row(r.st, &info);
        r.rc = cb(&info, ctx);
    }
    return hub_rows_end(&r);
}

int hub_plan_get(hub *h, const char *plan_ref, int64_t version, struct plan *out)
{
    struct hub_plan_info info;
    int rc = hub_plan_info(h, plan_ref, &info);
    if (rc != CMC_OK)
        return rc;
    return hub_load_version(h, info.plan_id, version > 0 ? version : info.version, out);
}

int hub_plan_history(hub *h, const char *plan_ref,
                     int (*cb)(const struct hub_plan_event *, void *), void *ctx)
{
    char id[PLAN_ID_LEN + 1];
    struct hub_plan_event ev;
    struct hub_rows r;
    int rc;
    if ((rc = hub_plan_resolve(h, plan_ref, id)) != CMC_OK)
        return rc;
    hub_rows_open(h, &r, "plan history",
                  "SELECT version, actor, action, at FROM events WHERE plan_id = ?1 ORDER BY id",
                  HUB_ARGS(HUB_TEXT(id)));
    while (hub_rows_next(&r)) {
        ev.version = sqlite3_column_int64(r.st, 0);
        ev.actor = hub_col_text(r.st, 1);
        ev.action = hub_col_text(r.st, 2);
        ev.at = sqlite3_column_int64(r.st, 3);
        r.rc = cb(&ev, ctx);
    }
    return hub_rows_end(&r);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* Loads the newest version of a plan for a state change, refusing withdrawn plans. */
static int hub_load_current(hub *h, const char *plan_ref, struct hub_plan_info *info,
                            struct plan *p)
{
    int rc = hub_plan_info(h, plan_ref, info);
    if (rc != CMC_OK)
        return rc;
    if (info->consent_withdrawn)
        return cmc_fail(CMC_ERR_STATE, "plan %s: consent was withdrawn; it can no longer change",
                        info->plan_id);
    return hub_load_version(h, info->plan_id, info->version, p);
}

/* Stamps `p` as the next version with `status` and stores it, inside the caller's
 * transaction. */
static int hub_store_next(hub *h, struct plan *p, int64_t prev_version, int status,
                          const char *actor, const char *action)
{
    char now[21];
    int rc;
    hub_now_text(now);
    p->version = prev_version + 1;
    p->status = status;
    if ((rc = hub_set_text(&p->updated_at, now)) != CMC_OK)
        return rc;
    return hub_store_version(h, p, actor, action);
}

/* Writes `p` as the next version with `status`, in a transaction of its own. */
static int hub_new_version(hub *h, struct plan *p, int64_t prev_version, int status,
                           const char *actor, const char *action)
{
    int rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    return hub_tx_end(h, hub_store_next(h, p, prev_version, status, actor, action));
}

int hub_plan_import(hub *h, const char *as_user, const char *json, size_t len,
                    char plan_id[PLAN_ID_LEN + 1])
{
    struct plan p;
    int role, rc;

    plan_init(&p);
    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        return rc;
    if ((rc = plan_from_json(json, len, &p)) != CMC_OK)
        goto out;
    if ((rc = hub_patient_owns_bind(h, as_user, role, p.nhs_number, 1)) != CMC_OK)
        goto out;
    /* Status, version and approval are the hub's to give, never the file's. */
    if ((rc = hub_set_text(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_text(&p.approved_at, NULL)) != CMC_OK)
        goto out;
    rc = hub_new_version(h, &p, 0,
                         role == HUB_ROLE_ADMIN ? PLAN_STATUS_NEEDS_FINALISATION : PLAN_STATUS_DRAFT,
                         as_user, "import");
    if (rc != CMC_OK)
        goto out;
    snprintf(plan_id, PLAN_ID_LEN + 1, "%s", p.plan_id);
    plat_log(PLAT_LOG_INFO, "plan %s imported", p.plan_id);
out:
    plan_free(&p);
    return rc;
}

int hub_plan_edit(hub *h, const char *as_user, const char *plan_ref, const char *json,
                  size_t len, int64_t *version_out)
{
    struct hub_plan_info info;
    struct plan_change c;
    struct plan p;
    int role, rc;

    plan_init(&p);
    plan_change_init(&c);
    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        goto out;
    if ((rc = plan_change_from_json(json, len, &c)) != CMC_OK)
        goto out;
    if ((rc = hub_load_current(h, plan_ref, &info, &p)) != CMC_OK)
        goto out;
    if ((rc = hub_patient_owns(h, as_user, role, info.nhs_number)) != CMC_OK)
        goto out;
    if ((rc = plan_change_apply(&p, &c)) != CMC_OK)
        goto out;
    /* A new draft: the published version (if any) stays what devices see until this one
     * is approved, and the approval belongs to the version it was given to. */
    if ((rc = hub_set_text(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_text(&p.approved_at, NULL)) != CMC_OK)
        goto out;
    rc = hub_new_version(h, &p, info.version,
                         role == HUB_ROLE_ADMIN ? PLAN_STATUS_NEEDS_FINALISATION : PLAN_STATUS_DRAFT,
                         as_user, "edit");
    if (rc == CMC_OK && version_out != NULL)
        *version_out = p.version;
out:
    plan_change_free(&c);
    plan_free(&p);
    return rc;
}

int hub_plan_submit(hub *h, const char *as_user, const char *plan_ref)
{
    struct hub_plan_info info;
    struct plan p;
    int role, rc;

    plan_init(&p);
    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        goto out;
    if (role != HUB_ROLE_CLINICIAN && role != HUB_ROLE_GP) {
        rc = cmc_fail(CMC_ERR_DENIED, "only a clinician or gp submits a plan for approval (%s is %s)",
                      as_user, hub_role_name(role));
        goto out;
    }
    if ((rc = hub_load_current(h, plan_ref, &info, &p)) != CMC_OK)
        goto out;
    if (info.status != PLAN_STATUS_DRAFT && info.status != PLAN_STATUS_NEEDS_FINALISATION) {
        rc = cmc_fail(CMC_ERR_STATE, "plan %s is %s: only a draft can be submitted", info.plan_id,
                      plan_status_name(info.status));
        goto out;
    }
    if ((rc = plan_validate(&p, PLAN_CHECK_COMPLETE)) != CMC_OK) {
        rc = hub_fail_wrap(CMC_ERR_INVALID, "the plan is not complete");
        goto out;
    }
    if ((rc = hub_check_rules(&p, "the plan cannot be submitted")) != CMC_OK)
        goto out;
    rc = hub_new_version(h, &p, info.version, PLAN_STATUS_AWAITING_APPROVAL, as_user, "submit");
out:
    plan_free(&p);
    return rc;
}

/* Sets approved_by/at to now and review_due to `next` or 12 months ahead, then checks the
 * rules (which see the new review date). */
static int hub_approval_stamp(struct plan *p, const char *as_user, const char *next)
{
    char now[21], today[11], latest[11], due[11];
    int rc;
    hub_now_text(now);
    hub_today(today);
    if ((rc = rules_date_add(today, 365, latest)) != CMC_OK)
        return rc;
    if (next != NULL) {
        int64_t t;
        if (strlen(next) != 10 || plat_parse_time(next, &t) != CMC_OK)
            return cmc_fail(CMC_ERR_USAGE, "--next: a date, YYYY-MM-DD");
        if (strcmp(next, today) <= 0 || strcmp(next, latest) > 0)
            return cmc_fail(CMC_ERR_USAGE, "--next: after today and at most 12 months ahead"
                                           " (by %s)", latest);
    }
    snprintf(due, sizeof due, "%s", next != NULL ? next : latest);
    if ((rc = hub_set_text(&p->approved_by, as_user)) != CMC_OK ||
        (rc = hub_set_text(&p->approved_at, now)) != CMC_OK ||
        (rc = hub_set_text(&p->review_due, due)) != CMC_OK)
        return rc;
    p->status = PLAN_STATUS_PUBLISHED;
    return hub_check_rules(p, "the plan cannot be approved");
}

static int hub_require_gp(hub *h, const char *as_user, const char *what)
{
    int role, rc;
    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        return rc;
    if (role != HUB_ROLE_GP)
        return cmc_fail(CMC_ERR_DENIED, "only a gp may %s a plan; %s has the %s role", what,
                        as_user, hub_role_name(role));
    return CMC_OK;
}

int hub_plan_approve(hub *h, const char *as_user, const char *plan_ref)
{
    return hub_plan_approve_next(h, as_user, plan_ref, NULL);
}

/* Whether the newest version may be approved (`review` 0: it awaits approval and is
 * complete) or reviewed (`review` 1: it is the published one, and stays as it is). */
static int hub_publish_check(const struct hub_plan_info *info, const struct plan *p, int review)
{
    if (review && info->status != PLAN_STATUS_PUBLISHED)
        return cmc_fail(CMC_ERR_STATE, "plan %s is %s: review records \"no changes\" to a"
                                       " published plan; approve the pending version instead",
                        info->plan_id, plan_status_name(info->status));
    if (review)
        return CMC_OK;
    if (info->status != PLAN_STATUS_AWAITING_APPROVAL)
        return cmc_fail(CMC_ERR_STATE, "plan %s is %s: only a plan awaiting approval can be"
                                       " approved", info->plan_id, plan_status_name(info->status));
    if (plan_validate(p, PLAN_CHECK_COMPLETE) != CMC_OK)
        return hub_fail_wrap(CMC_ERR_INVALID, "the plan is not complete");
    return CMC_OK;
}

/* A gp's approval or review: the newest version again, stamped and published, when
 * hub_publish_check allows it. */
static int hub_plan_publish(hub *h, const char *as_user, const char *plan_ref, const char *next,
                            int review)
{
    const char *action = review ? "review" : "approve";
    struct hub_plan_info info;
    struct plan p;
    int rc;

    plan_init(&p);
    if ((rc = hub_require_gp(h, as_user, action)) != CMC_OK)
        goto out;
    if ((rc = hub_load_current(h, plan_ref, &info, &p)) != CMC_OK)
        goto out;
    if ((rc = hub_publish_check(&info, &p, review)) != CMC_OK)
        goto out;
    if ((rc = hub_approval_stamp(&p, as_user, next)) != CMC_OK)
        goto out;
    rc = hub_new_version(h, &p, info.version, PLAN_STATUS_PUBLISHED, as_user, action);
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_INFO, "plan %s%s version %lld published", info.plan_id,
                 review ? " reviewed:" : "", (long long)p.version);
out:
    plan_free(&p);
    return rc;
}

int hub_plan_approve_next(hub *h, const char *as_user, const char *plan_ref, const char *next)
{
    return hub_plan_publish(h, as_user, plan_ref, next, 0);
}

int hub_plan_review(hub *h, const char *as_user, const char *plan_ref, const char *next)
{
    return hub_plan_publish(h, as_user, plan_ref, next, 1);
}

static int hub_consent_log(hub *h, const char *plan_id, const char *action, const char *as_user,
                           int role, const char *reason, int64_t version);

/* The acting user's role and the plan they name. */
static int hub_role_and_plan(hub *h, const char *as_user, const char *plan_ref, int *role,
                             struct hub_plan_info *info)
{
    int rc = hub_user_role(h, as_user, role);
    return rc != CMC_OK ? rc : hub_plan_info(h, plan_ref, info);
}

/* Stops sharing in one transaction: the flag, the event, the change devices pull (a purge)
 * and, when a reason is given, the consent log entry. */
static int hub_withdraw(hub *h, const char *as_user, const struct hub_plan_info *info, int role,
                        const char *reason)
{
    int rc;

    if (info->consent_withdrawn)
        return cmc_fail(CMC_ERR_STATE, "plan %s: consent is already withdrawn", info->plan_id);
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_run(h, "withdraw consent", "UPDATE plans SET withdrawn = 1 WHERE plan_id = ?1",
                         HUB_ARGS(HUB_TEXT(info->plan_id)))) != CMC_OK)
        goto out;
    if ((rc = hub_log_event(h, info->plan_id, info->version, as_user, "withdraw_consent")) != CMC_OK)
        goto out;
    if ((rc = hub_log_change(h, info->plan_id, "withdraw_consent", NULL)) != CMC_OK)
        goto out;
    if (reason != NULL)
        rc = hub_consent_log(h, info->plan_id, "withdraw", as_user, role, reason, info->version);
out:
    if ((rc = hub_tx_end(h, rc)) == CMC_OK)
        plat_log(PLAT_LOG_INFO, "plan %s: consent withdrawn, sharing stopped", info->plan_id);
    return rc;
}

/* The unguarded form kept for in-process callers; the command line goes through
 * hub_plan_withdraw_consent_reason (clinical.h). */
int hub_plan_withdraw_consent(hub *h, const char *as_user, const char *plan_ref)
{
    struct hub_plan_info info;
    int role, rc;

    if ((rc = hub_role_and_plan(h, as_user, plan_ref, &role, &info)) != CMC_OK)
        return rc;
    return hub_withdraw(h, as_user, &info, role, NULL);
}

/* ---- rules, patients and consent governance (clinical.h) ------------------------------- */

/* New tables only (IF NOT EXISTS), so the step is safe to run again over a store a test or
 * an operator rolled back to an earlier schema version. */
const char hub_schema_clinical[] =
    "CREATE TABLE IF NOT EXISTS patient_accounts(name TEXT PRIMARY KEY, nhs TEXT NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS consent_log(id INTEGER PRIMARY KEY, plan_id TEXT NOT NULL,"
    " action TEXT NOT NULL, requester TEXT NOT NULL, role TEXT NOT NULL, reason TEXT NOT NULL,"
    " version INTEGER NOT NULL, at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS consent_log_plan ON consent_log(plan_id, id);";

void hub_today(char out[11])
{
    char now[21];
    hub_now_text(now);
    snprintf(out, 11, "%.10s", now);
}

static int hub_check_rules(const struct plan *p, const char *what)
{
    char today[11];
    hub_today(today);
    if (rules_check(p, today, NULL) != CMC_OK)
        return hub_fail_wrap(CMC_ERR_INVALID, what);
    return CMC_OK;
}

int hub_user_nhs(hub *h, const char *name, char nhs[PLAN_NHS_LEN + 1])
{
    sqlite3_stmt *st = NULL;
    nhs[0] = '\0';
    int rc = hub_db_row(h, "user", &st, "SELECT nhs FROM patient_accounts WHERE name = ?1",
                        HUB_ARGS(HUB_TEXT(name)));
    if (st != NULL)
        hub_col_copy(st, 0, nhs, PLAN_NHS_LEN + 1);
    sqlite3_finalize(st);
    return rc;
}

static int hub_bind_patient(hub *h, const char *name, const char *nhs)
{
    return hub_db_run(h, "patient account",
                      "INSERT INTO patient_accounts(name, nhs) VALUES(?1, ?2)",
                      HUB_ARGS(HUB_TEXT(name), HUB_TEXT(nhs)));
}

/* A patient account acts only on the plan for the NHS number it is bound to. An account
 * made without a binding (before bindings existed) is bound by the first plan it starts
 * (`bind_first`), and to nothing else after that. */
static int hub_patient_owns_bind(hub *h, const char *as_user, int role, const char *nhs,
                                 int bind_first)
{
    char bound[PLAN_NHS_LEN + 1];
    int rc;
    if (role != HUB_ROLE_PATIENT)
        return CMC_OK;
    if ((rc = hub_user_nhs(h, as_user, bound)) != CMC_OK)
        return rc;
    if (bound[0] == '\0' && bind_first && nhs != NULL)
        return hub_bind_patient(h, as_user, nhs);
    if (bound[0] == '\0' || nhs == NULL || strcmp(bound, nhs) != 0)
        return cmc_fail(CMC_ERR_DENIED, "%s is a patient account: it may act only on the plan for"
                                        " its own NHS number", as_user);
    return CMC_OK;
}

static int hub_patient_owns(hub *h, const char *as_user, int role, const char *nhs)
{
    return hub_patient_owns_bind(h, as_user, role, nhs, 0);
}

int hub_plan_may_see(hub *h, const char *as_user, const char *plan_ref)
{
    struct hub_plan_info info;
    int role, rc;
    if ((rc = hub_role_and_plan(h, as_user, plan_ref, &role, &info)) != CMC_OK)
        return rc;
    return hub_patient_owns(h, as_user, role, info.nhs_number);
}

int hub_user_add_patient(hub *h, const char *name, const char *nhs_in)
{
    char nhs[PLAN_NHS_LEN + 1];
    int rc;
    if ((rc = plan_nhs_normalise(nhs_in != NULL ? nhs_in : "", nhs)) != CMC_OK)
        return hub_fail_wrap(CMC_ERR_USAGE, "--nhs");
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_user_add(h, name, "patient")) != CMC_OK)
        goto out;
    rc = hub_bind_patient(h, name, nhs);
out:
    return hub_tx_end(h, rc);
}

/* The plan whose consent changes, and whether as_user may change it: who may withdraw or
 * reinstate consent, and the reason they must give. */
static int hub_consent_actor(hub *h, const char *as_user, const char *plan_ref,
                             const char *reason, struct hub_plan_info *info, int *role)
{
    int rc;
    if ((rc = hub_plan_info(h, plan_ref, info)) != CMC_OK)
        return rc;
    if ((rc = hub_user_role(h, as_user, role)) != CMC_OK)
        return rc;
    if (*role == HUB_ROLE_ADMIN)
        return cmc_fail(CMC_ERR_DENIED, "consent is changed by a clinician, a gp or the patient;"
                                        " %s has the admin role", as_user);
    if ((rc = hub_patient_owns(h, as_user, *role, info->nhs_number)) != CMC_OK)
        return rc;
    if (reason == NULL || reason[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "--reason is required: it is kept with who asked");
    if (strlen(reason) > HUB_REASON_MAX)
        return cmc_fail(CMC_ERR_USAGE, "--reason: at most %d bytes", HUB_REASON_MAX);
    return CMC_OK;
}

static int hub_consent_log(hub *h, const char *plan_id, const char *action, const char *as_user,
                           int role, const char *reason, int64_t version)
{
    return hub_db_run(h, "consent log",
                      "INSERT INTO consent_log(plan_id, action, requester, role, reason, version,"
                      " at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      HUB_ARGS(HUB_TEXT(plan_id), HUB_TEXT(action), HUB_TEXT(as_user),
                               HUB_TEXT(hub_role_name(role)), HUB_TEXT(reason), HUB_INT(version),
                               HUB_INT(plat_wall_now())));
}

int hub_plan_withdraw_consent_reason(hub *h, const char *as_user, const char *plan_ref,
                                     const char *reason)
{
    struct hub_plan_info info;
    int role, rc;
    if ((rc = hub_consent_actor(h, as_user, plan_ref, reason, &info, &role)) != CMC_OK)
        return rc;
    return hub_withdraw(h, as_user, &info, role, reason);
}

int hub_plan_reinstate_consent(hub *h, const char *as_user, const char *plan_ref,
                               const char *reason, int64_t *version_out)
{
    struct hub_plan_info info;
    struct plan p;
    int role, rc;

    if ((rc = hub_consent_actor(h, as_user, plan_ref, reason, &info, &role)) != CMC_OK)
        return rc;
    if (!info.consent_withdrawn)
        return cmc_fail(CMC_ERR_STATE, "plan %s: consent is not withdrawn", info.plan_id);
    plan_init(&p);
    if ((rc = hub_load_version(h, info.plan_id, info.version, &p)) != CMC_OK)
        return rc;
    if ((rc = hub_set_text(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_text(&p.approved_at, NULL)) != CMC_OK)
        goto out;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        goto out;
    /* Sharing resumes only when a gp approves this draft: until then nothing is published. */
    rc = hub_db_run(h, "reinstate consent",
                    "UPDATE plans SET withdrawn = 0, published = 0 WHERE plan_id = ?1",
                    HUB_ARGS(HUB_TEXT(info.plan_id)));
    if (rc == CMC_OK)
        rc = hub_store_next(h, &p, info.version, PLAN_STATUS_DRAFT, as_user, "reinstate_consent");
    if (rc == CMC_OK)
        rc = hub_consent_log(h, info.plan_id, "reinstate", as_user, role, reason, p.version);
    if ((rc = hub_tx_end(h, rc)) == CMC_OK && version_out != NULL)
        *version_out = p.version;
out:
    plan_free(&p);
    return rc;
}

int hub_plan_list_review_due(hub *h, const char *before,
                             int (*cb)(const struct hub_plan_info *, const char *review_due,
                                       void *),
                             void *ctx)
{
    struct hub_plan_info info;
    struct hub_rows r;
    struct plan p;
    int64_t t;

    if (before == NULL || strlen(before) != 10 || plat_parse_time(before, &t) != CMC_OK)
        return cmc_fail(CMC_ERR_USAGE, "--review-due-before: a date, YYYY-MM-DD");
    plan_init(&p);
    hub_rows_open(h, &r, "plan list",
                  "SELECT " HUB_INFO_COLS " FROM plans WHERE published > 0 AND withdrawn = 0"
                  " ORDER BY plan_id", NULL, 0);
    while (hub_rows_next(&r)) {
        hub_info_from_row(r.st, &info);
        plan_free(&p);
        if ((r.rc = hub_load_version(h, info.plan_id, info.published_version, &p)) == CMC_OK &&
            p.review_due != NULL && strcmp(p.review_due, before) < 0)
            r.rc = cb(&info, p.review_due, ctx);
    }
    plan_free(&p);
    return hub_rows_end(&r);
}

/* ---- caseloads ------------------------------------------------------------------------- */

static int hub_caseload_change(hub *h, const char *team, const char *nhs_in, int add)
{
    char nhs[PLAN_NHS_LEN + 1];
    char id[PLAN_ID_LEN + 1];
    int rc;

    if (team == NULL || team[0] == '\0' || strlen(team) > PLAN_MAX_SHORT)
        return cmc_fail(CMC_ERR_USAGE, "TEAM: a team name");
    if ((rc = plan_nhs_normalise(nhs_in, nhs)) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_run(h, "caseload",
                         add ? "INSERT OR IGNORE INTO caseload(team, nhs) VALUES(?1, ?2)"
                             : "DELETE FROM caseload WHERE team = ?1 AND nhs = ?2",
                         HUB_ARGS(HUB_TEXT(team), HUB_TEXT(nhs)))) != CMC_OK)
        goto out;
    if (sqlite3_changes(h->db) == 0) {
        rc = add ? CMC_OK
                 : cmc_fail(CMC_ERR_NOT_FOUND, "that NHS number is not on team %s's caseload", team);
        goto out;
    }
    /* The team's devices must learn of it: stamp the patient's plan (if any) in the log. */
    if (hub_plan_resolve(h, nhs, id) == CMC_OK) {
        if ((rc = hub_log_change(h, id, add ? "caseload_add" : "caseload_remove", NULL)) != CMC_OK)
            goto out;
    }
    rc = CMC_OK;
out:
    return hub_tx_end(h, rc);
}

int hub_caseload_add(hub *h, const char *team, const char *nhs)
{
    return hub_caseload_change(h, team, nhs, 1);
}

int hub_caseload_remove(hub *h, const char *team, const char *nhs)
{
    return hub_caseload_change(h, team, nhs, 0);
}
