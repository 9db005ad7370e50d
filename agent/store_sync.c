/*
 * store_sync.c - what the sync engine writes and reads: sync state (key/value), storing plan
 * versions with their identity index rows, purges with their tombstones, and the engine's
 * reads of stored versions whatever their status (store.h, store_sync.h).
 */
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_sync.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sync state ------------------------------------------------------------------------ */

int store_state_get(store *s, const char *key, char **out)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc;
    *out = NULL;
    if (key == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: no state key");
    if ((rc = store_stmt_get(s, "SELECT value FROM sync_state WHERE key = ?1", &st)) != CMC_OK)
        goto out;
    if ((rc = store_bind_text(s, st, 1, key)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (!has_row) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: sync state %s is not set", key);
        goto out;
    }
    const char *v = store_col_text(st, 0);
    rc = store_dup_text(v != NULL ? v : "", out);
out:
    store_stmt_put(s, st);
    return rc;
}

int store_state_find(store *s, const char *key, char **out)
{
    int rc = store_state_get(s, key, out);
    if (rc != CMC_ERR_NOT_FOUND)
        return rc;
    cmc_err_clear();
    return CMC_OK;
}

int store_state_get_hex(store *s, const char *key, uint8_t *out, size_t len, int *found)
{
    char *hex = NULL;
    *found = 0;
    int rc = store_state_find(s, key, &hex);
    if (rc != CMC_OK || hex == NULL)
        return rc;
    if (cry_unhex(out, len, hex) != CMC_OK)
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: the stored %s is malformed", key);
    else
        *found = 1;
    cmc_free(hex);
    return rc;
}

int store_state_get_int(store *s, const char *key, int64_t *out)
{
    char *v = NULL, *end = NULL;
    *out = 0;
    int rc = store_state_get(s, key, &v);
    if (rc != CMC_OK)
        return rc;
    long long x = strtoll(v, &end, 10);
    if (v[0] == '\0' || end == NULL || *end != '\0')
        rc = cmc_fail(CMC_ERR_CORRUPT, "replica: sync state %s is not a number", key);
    else
        *out = (int64_t)x;
    cmc_free(v);
    return rc;
}

int store_state_set(store *s, const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0' || value == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: state key and value are required");
    return store_exec_bound(s,
                            "INSERT INTO sync_state (key, value) VALUES (?1, ?2)"
                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            "tt", key, value);
}

int store_state_set_int(store *s, const char *key, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return store_state_set(s, key, buf);
}

/* ---- writes ---------------------------------------------------------------------------- */

/* May this store hold drafts? Not on a device the hub enrolled for urgent care: the hub
 * never sends it one, so a draft arriving there is refused rather than kept. Elsewhere
 * (clinician devices, a replica not yet enrolled) they are stored, and the published-only
 * rule still holds at read time for every urgent-care session. */
static int drafts_allowed(store *s, int *allowed)
{
    char *role = NULL;
    *allowed = 1;
    int rc = store_state_find(s, STORE_STATE_DEVICE_ROLE, &role);
    if (rc != CMC_OK || role == NULL)
        return rc;
    *allowed = store_role_from_name(role) != STORE_ROLE_URGENT_CARE;
    cmc_free(role);
    return CMC_OK;
}

/* CMC_ERR_STATE when a tombstone at or after change_seq forbids bringing the plan back. */
static int check_tombstone(store *s, const char *plan_id, int64_t change_seq)
{
    int64_t purged_seq = 0;
    int found = 0;
    int rc = store_query_int(s, "SELECT change_seq FROM tombstones WHERE plan_id = ?1", plan_id,
                       &purged_seq, &found);
    if (rc != CMC_OK)
        return rc;
    if (found && purged_seq >= change_seq)
        return cmc_fail(CMC_ERR_STATE,
                        "replica: plan %s was purged at change %" PRId64
                        "; refusing change %" PRId64 " (a replayed old update)",
                        store_safe_id(plan_id), purged_seq, change_seq);
    return CMC_OK;
}

/* `packed`: the plan's encoding when the caller has it (and plan_unpack validated the plan
 * from it); NULL: validate the plan and encode it here. */
static int put_version(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                       const uint8_t *seal, size_t seal_len, int64_t change_seq)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    struct store_identity id;
    int rc, allowed = 0, in_op = 0;
    const char *status;

    memset(&id, 0, sizeof id);
    if (p == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: no plan to store");
    if (packed == NULL && (rc = plan_validate(p, PLAN_CHECK_DRAFT)) != CMC_OK)
        return rc;
    status = plan_status_name(p->status);
    if (status == NULL || p->version <= 0 || !plan_uuid_valid(p->plan_id))
        return cmc_fail(CMC_ERR_INVALID,
                        "replica: a stored plan needs a plan id, a status and a version");
    if (p->status != PLAN_STATUS_PUBLISHED) {
        if ((rc = drafts_allowed(s, &allowed)) != CMC_OK)
            return rc;
        if (!allowed)
            return cmc_fail(CMC_ERR_DENIED,
                            "replica: plan %s: this urgent-care device holds published "
                            "plans only",
                            p->plan_id);
    }
    if (packed == NULL && (rc = plan_pack(p, &body, &body_len)) != CMC_OK)
        goto out;
    if ((rc = store_identity_of(p, &id)) != CMC_OK)
        goto out;
    if ((rc = store_op_begin(s)) != CMC_OK)
        goto out;
    in_op = 1;
    if ((rc = check_tombstone(s, p->plan_id, change_seq)) != CMC_OK)
        goto out;
    /* Not published: under the role key, never in the replica in clear (store_drafts.c). */
    if (p->status != PLAN_STATUS_PUBLISHED) {
        int stored = 0;
        rc = store_draft_put(s, p, packed != NULL ? packed : body, packed != NULL ? packed_len : body_len,
                             seal, seal_len, change_seq, &stored);
        if (rc != CMC_OK || stored)
            goto out;
    }
    /* Replacing a version: the cascade removes its index row with it. */
    if ((rc = store_exec_bound(s, "DELETE FROM plan_versions WHERE plan_id = ?1 AND version = ?2",
                               "ti", p->plan_id, p->version)) != CMC_OK)
        goto out;
    if ((rc = store_exec_bound(s,
                               "INSERT INTO plan_versions (plan_id, version, status, nhs_number,"
                               " change_seq, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                               "tittiib", p->plan_id, p->version, status, p->nhs_number, change_seq,
                               plat_wall_now(), packed != NULL ? packed : body,
                               packed != NULL ? packed_len : body_len)) != CMC_OK)
        goto out;
    int64_t version_id = sqlite3_last_insert_rowid(s->db);
    if (seal != NULL && (rc = store_seal_insert(s, version_id, seal, seal_len)) != CMC_OK)
        goto out;
    rc = store_exec_bound(s,
                          "INSERT INTO plan_identity (version_id, plan_id, nhs_number, family_name,"
                          " given_name, date_of_birth, postcode, postcode_outward)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                          "ittttttt", version_id, p->plan_id, p->nhs_number, id.family, id.given,
                          p->patient.date_of_birth, id.postcode, id.outward);
out:
    if (in_op)
        rc = store_op_end(s, rc);
    store_identity_free(&id);
    cmc_free(body);
    return rc;
}

int store_put_version(store *s, const struct plan *p, int64_t change_seq)
{
    return put_version(s, p, NULL, 0, NULL, 0, change_seq);
}

int store_put_packed(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                     int64_t change_seq)
{
    if (packed == NULL || packed_len == 0)
        return cmc_fail(CMC_ERR_USAGE, "replica: no encoding to store");
    return put_version(s, p, packed, packed_len, NULL, 0, change_seq);
}

int store_put_sealed(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                     const uint8_t *seal, size_t seal_len, int64_t change_seq)
{
    if (packed == NULL || packed_len == 0)
        return cmc_fail(CMC_ERR_USAGE, "replica: no encoding to store");
    return put_version(s, p, packed, packed_len, seal, seal_len, change_seq);
}

int store_purge(store *s, const char *plan_id, const char *reason, int64_t change_seq,
                int *discarded)
{
    sqlite3_stmt *st = NULL;
    uint8_t nhs_hash[CRY_HASH_BYTES];
    int have_hash = 0, in_op = 0, has_row = 0;
    int64_t pending = 0;
    int rc;

    if (discarded != NULL)
        *discarded = 0;
    if (!plan_uuid_valid(plan_id))
        return cmc_fail(CMC_ERR_INVALID, "purge: plan id is not a lower-case UUID");
    if (reason == NULL || reason[0] == '\0' || strlen(reason) > 64)
        return cmc_fail(CMC_ERR_INVALID, "purge: a reason of 1 to 64 bytes is required");
    if ((rc = store_op_begin(s)) != CMC_OK)
        return rc;
    in_op = 1;
    /* The tombstone keeps a hash of the NHS number, never the number. */
    if ((rc = store_stmt_get(s, "SELECT nhs_number FROM plan_versions WHERE plan_id = ?1 UNION ALL"
                                " SELECT nhs_number FROM drafts WHERE plan_id = ?1 LIMIT 1",
                         &st)) != CMC_OK)
        goto out;
    if ((rc = store_bind_text(s, st, 1, plan_id)) != CMC_OK ||
        (rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row && store_col_text(st, 0) != NULL) {
        const char *nhs = store_col_text(st, 0);
        cry_hash(nhs_hash, nhs, strlen(nhs));
        have_hash = 1;
    }
    store_stmt_put(s, st);
    st = NULL;
    if ((rc = store_query_int(s, "SELECT count(*) FROM pending_edits WHERE plan_id = ?1",
                              plan_id, &pending, NULL)) != CMC_OK)
        goto out;
    if ((rc = store_drafts_purge(s, plan_id)) != CMC_OK ||
        (rc = store_exec_for_plan(s, "DELETE FROM pending_edits WHERE plan_id = ?1", plan_id)) !=
            CMC_OK ||
        (rc = store_exec_for_plan(s, "DELETE FROM merges WHERE plan_id = ?1", plan_id)) != CMC_OK ||
        (rc = store_exec_for_plan(s, "DELETE FROM plan_identity WHERE plan_id = ?1", plan_id)) !=
            CMC_OK ||
        (rc = store_exec_for_plan(s, "DELETE FROM plan_versions WHERE plan_id = ?1", plan_id)) != CMC_OK)
        goto out;
    /* A later purge of the same plan moves the tombstone forward; an older one leaves it. */
    rc = store_exec_bound(s,
                          "INSERT INTO tombstones (plan_id, nhs_hash, reason, change_seq, purged_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (plan_id) DO UPDATE SET"
                          " nhs_hash = coalesce(excluded.nhs_hash, nhs_hash),"
                          " reason = CASE WHEN excluded.change_seq >= change_seq"
                          "   THEN excluded.reason ELSE reason END,"
                          " purged_at = CASE WHEN excluded.change_seq >= change_seq"
                          "   THEN excluded.purged_at ELSE purged_at END,"
                          " change_seq = max(change_seq, excluded.change_seq)",
                          "tbtii", plan_id, have_hash ? nhs_hash : NULL, sizeof nhs_hash, reason,
                          change_seq, plat_wall_now());
out:
    store_stmt_put(s, st);
    if (in_op)
        rc = store_op_end(s, rc);
    if (rc == CMC_OK) {
        if (discarded != NULL)
            *discarded = (int)pending;
        plat_log(PLAT_LOG_INFO, "replica: purged plan %s (%s), %" PRId64 " pending edits discarded",
                 plan_id, reason, pending);
    }
    return rc;
}

/* ---- the engine's reads ------------------------------------------------------------------ */

int store_sync_version_get(store *s, const char *plan_id, int64_t version, struct plan *out)
{
    sqlite3_stmt *st = NULL;
    plan_init(out);
    /* a draft this session can read serves as well (the clinical file's) */
    int rc = store_query_row(s, &st, "replica: that version is not held",
                             "SELECT body FROM " STORE_HELD_VERSIONS " WHERE plan_id = ?1 AND version = ?2",
                             "ti", plan_id, version);
    if (rc == CMC_OK)
        rc = store_column_plan(st, 0, plan_id, out);
    if (rc == CMC_OK && out->version != version) {
        plan_free(out);
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body has another version");
    }
    store_stmt_put(s, st);
    return rc;
}

int store_sync_prune(store *s, const char *plan_id)
{
    /* Keep the newest version and the newest published one; older ones serve nothing (a
     * pending edit keeps its own base). */
    sqlite3 *db = s->db;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc =
        store_stmt_get(s,
                       "DELETE FROM plan_versions WHERE plan_id = ?1"
                       " AND version < (SELECT max(version) FROM plan_versions WHERE plan_id = ?1)"
                       " AND version < coalesce((SELECT max(version) FROM plan_versions"
                       "                         WHERE plan_id = ?1 AND status = 'published'), 0)",
                       &st);
    if (rc == CMC_OK && (rc = store_bind_text(s, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    store_stmt_put(s, st);
    return rc == CMC_OK ? store_drafts_prune(s, plan_id) : rc;
}

int store_sync_has_pending(store *s, int *yes)
{
    sqlite3 *db = s->db;
    sqlite3_stmt *st = NULL;
    int row = 0;
    *yes = 0;
    int rc = store_stmt_get(s, "SELECT EXISTS (SELECT 1 FROM pending_edits)", &st);
    if (rc == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && row)
        *yes = sqlite3_column_int(st, 0) != 0;
    store_stmt_put(s, st);
    return rc;
}
