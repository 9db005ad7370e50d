/*
 * plans.c - the plan lifecycle at the hub: import, edit, submit, approve, consent
 * withdrawal, look-ups and caseloads.
 *
 * Every state change writes a new version (see hub.h for why) inside one transaction with
 * its event and change-log entry, so a crash leaves either the whole step or none of it.
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"

#include <stdio.h>
#include <string.h>

/* Replaces a plan string member with a copy of s (NULL clears). */
static int hub_set_str(char **member, const char *s)
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
    int rc, src;

    if (plan_ref == NULL || plan_ref[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "PLAN: a plan id or an NHS number");
    if (plan_uuid_valid(plan_ref)) {
        rc = hub_db_prepare(h, "SELECT plan_id FROM plans WHERE plan_id = ?1", &st);
        if (rc != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, plan_ref, -1, SQLITE_STATIC);
    } else {
        if ((rc = plan_nhs_normalise(plan_ref, nhs)) != CMC_OK)
            return hub_fail_wrap(CMC_ERR_INVALID, "PLAN: not a plan id, and");
        if ((rc = hub_db_prepare(h, "SELECT plan_id FROM plans WHERE nhs = ?1", &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, nhs, -1, SQLITE_TRANSIENT);
    }
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        hub_col_copy(st, 0, plan_id, PLAN_ID_LEN + 1);
        rc = CMC_OK;
    } else if (src == SQLITE_DONE) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan on the hub for that plan id or NHS number");
    } else {
        rc = hub_db_fail(h, src, "plan look-up");
    }
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
    if ((rc = hub_db_prepare(h, "SELECT " HUB_INFO_COLS " FROM plans WHERE plan_id = ?1", &st)) !=
        CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        hub_info_from_row(st, out);
        rc = CMC_OK;
    } else {
        rc = src == SQLITE_DONE ? cmc_fail(CMC_ERR_NOT_FOUND, "plan %s not found", id)
                                : hub_db_fail(h, src, "plan");
    }
    sqlite3_finalize(st);
    return rc;
}

int hub_plan_list(hub *h, int status, int (*cb)(const struct hub_plan_info *, void *), void *ctx)
{
    sqlite3_stmt *st = NULL;
    struct hub_plan_info info;
    int rc, src;
    rc = hub_db_prepare(h, "SELECT " HUB_INFO_COLS " FROM plans WHERE ?1 = 0 OR latest_status = ?1"
                           " ORDER BY plan_id", &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_int(st, 1, status);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        hub_info_from_row(st, &info);
        if ((rc = cb(&info, ctx)) != 0)
            goto out;
    }
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "plan list");
out:
    sqlite3_finalize(st);
    return rc;
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
    sqlite3_stmt *st = NULL;
    struct hub_plan_event ev;
    int rc, src;
    if ((rc = hub_plan_resolve(h, plan_ref, id)) != CMC_OK)
        return rc;
    if ((rc = hub_db_prepare(h, "SELECT version, actor, action, at FROM events WHERE plan_id = ?1"
                                " ORDER BY id", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ev.version = sqlite3_column_int64(st, 0);
        ev.actor = hub_col_text(st, 1);
        ev.action = hub_col_text(st, 2);
        ev.at = sqlite3_column_int64(st, 3);
        if ((rc = cb(&ev, ctx)) != 0)
            goto out;
    }
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "plan history");
out:
    sqlite3_finalize(st);
    return rc;
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

/* Writes `p` as the next version with `status`, in a transaction of its own. */
static int hub_new_version(hub *h, struct plan *p, int64_t prev_version, int status,
                           const char *actor, const char *action)
{
    char now[21];
    int rc;
    hub_now_text(now);
    p->version = prev_version + 1;
    p->status = status;
    if ((rc = hub_set_str(&p->updated_at, now)) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_store_version(h, p, actor, action)) != CMC_OK) {
        hub_tx_rollback(h);
        return rc;
    }
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        hub_tx_rollback(h);
    return rc;
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
    /* Status, version and approval are the hub's to give, never the file's. */
    if ((rc = hub_set_str(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_str(&p.approved_at, NULL)) != CMC_OK)
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
    if ((rc = plan_change_apply(&p, &c)) != CMC_OK)
        goto out;
    /* A new draft: the published version (if any) stays what devices see until this one
     * is approved, and the approval belongs to the version it was given to. */
    if ((rc = hub_set_str(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_str(&p.approved_at, NULL)) != CMC_OK)
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
    rc = hub_new_version(h, &p, info.version, PLAN_STATUS_AWAITING_APPROVAL, as_user, "submit");
out:
    plan_free(&p);
    return rc;
}

int hub_plan_approve(hub *h, const char *as_user, const char *plan_ref)
{
    struct hub_plan_info info;
    struct plan p;
    char now[21];
    int role, rc;

    plan_init(&p);
    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        goto out;
    if (role != HUB_ROLE_GP) {
        rc = cmc_fail(CMC_ERR_DENIED,
                      "only a gp may approve a plan; %s has the %s role", as_user,
                      hub_role_name(role));
        goto out;
    }
    if ((rc = hub_load_current(h, plan_ref, &info, &p)) != CMC_OK)
        goto out;
    if (info.status != PLAN_STATUS_AWAITING_APPROVAL) {
        rc = cmc_fail(CMC_ERR_STATE, "plan %s is %s: only a plan awaiting approval can be approved",
                      info.plan_id, plan_status_name(info.status));
        goto out;
    }
    if ((rc = plan_validate(&p, PLAN_CHECK_COMPLETE)) != CMC_OK) {
        rc = hub_fail_wrap(CMC_ERR_INVALID, "the plan is not complete");
        goto out;
    }
    hub_now_text(now);
    if ((rc = hub_set_str(&p.approved_by, as_user)) != CMC_OK ||
        (rc = hub_set_str(&p.approved_at, now)) != CMC_OK)
        goto out;
    if (p.review_due == NULL) {
        /* Plans are reviewed at least annually. */
        char due[21];
        plat_format_time(plat_wall_now() + 365 * 86400, due);
        due[10] = '\0';
        if ((rc = hub_set_str(&p.review_due, due)) != CMC_OK)
            goto out;
    }
    rc = hub_new_version(h, &p, info.version, PLAN_STATUS_PUBLISHED, as_user, "approve");
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_INFO, "plan %s version %lld published", info.plan_id,
                 (long long)p.version);
out:
    plan_free(&p);
    return rc;
}

int hub_plan_withdraw_consent(hub *h, const char *as_user, const char *plan_ref)
{
    struct hub_plan_info info;
    sqlite3_stmt *st = NULL;
    int role, rc, src;

    if ((rc = hub_user_role(h, as_user, &role)) != CMC_OK)
        return rc;
    if ((rc = hub_plan_info(h, plan_ref, &info)) != CMC_OK)
        return rc;
    if (info.consent_withdrawn)
        return cmc_fail(CMC_ERR_STATE, "plan %s: consent is already withdrawn", info.plan_id);
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_prepare(h, "UPDATE plans SET withdrawn = 1 WHERE plan_id = ?1", &st)) != CMC_OK)
        goto out;
    sqlite3_bind_text(st, 1, info.plan_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "withdraw consent");
        goto out;
    }
    if ((rc = hub_log_event(h, info.plan_id, info.version, as_user, "withdraw_consent")) != CMC_OK)
        goto out;
    if ((rc = hub_log_change(h, info.plan_id, "withdraw_consent", NULL)) != CMC_OK)
        goto out;
    rc = hub_tx_commit(h);
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_INFO, "plan %s: consent withdrawn, sharing stopped", info.plan_id);
out:
    sqlite3_finalize(st);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    return rc;
}

/* ---- caseloads ------------------------------------------------------------------------- */

static int hub_caseload_change(hub *h, const char *team, const char *nhs_in, int add)
{
    char nhs[PLAN_NHS_LEN + 1];
    char id[PLAN_ID_LEN + 1];
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (team == NULL || team[0] == '\0' || strlen(team) > PLAN_MAX_SHORT)
        return cmc_fail(CMC_ERR_USAGE, "TEAM: a team name");
    if ((rc = plan_nhs_normalise(nhs_in, nhs)) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    rc = hub_db_prepare(h, add ? "INSERT OR IGNORE INTO caseload(team, nhs) VALUES(?1, ?2)"
                               : "DELETE FROM caseload WHERE team = ?1 AND nhs = ?2",
                        &st);
    if (rc != CMC_OK)
        goto out;
    sqlite3_bind_text(st, 1, team, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, nhs, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "caseload");
        goto out;
    }
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
    sqlite3_finalize(st);
    if (rc == CMC_OK)
        rc = hub_tx_commit(h);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    return rc;
}

int hub_caseload_add(hub *h, const char *team, const char *nhs)
{
    return hub_caseload_change(h, team, nhs, 1);
}

int hub_caseload_remove(hub *h, const char *team, const char *nhs)
{
    return hub_caseload_change(h, team, nhs, 0);
}
