/*
 * store_pending.c - pending local edits (store.h) and the sync engine's side of them: the
 * base each edit was made on, pushed-edit bookkeeping, rebasing and three-way merge state
 * (store_sync.h).
 */
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_sync.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"
#include "sync/wire.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pending local edits --------------------------------------------------------------- */

/* The session user's signature of an edit, or none (has = 0) for a session without a
 * signing key: such an edit is signed when a clinician's sync pushes it. */
static void sign_edit(store *s, const char *plan_id, int64_t base_version, const char *idem,
                      const uint8_t *change, size_t change_len, uint8_t sig[CRY_SIG_BYTES], int *has)
{
    uint8_t digest[CRY_HASH_BYTES];
    wire_push_digest(plan_id, base_version, idem, change, change_len, digest);
    *has = store_session_sign(s, digest, sig) == CMC_OK;
    cmc_err_clear();
}

int store_pending_add(store *s, const char *plan_id, int64_t base_version, const uint8_t *change,
                      size_t change_len, struct store_pending *out_meta)
{
    sqlite3_stmt *st = NULL;
    struct store_pending meta;
    int found = 0;
    int rc;

    memset(&meta, 0, sizeof meta);
    if ((rc = store_require_clinician(s, "pending edit")) != CMC_OK)
        return rc;
    if (!plan_uuid_valid(plan_id))
        return cmc_fail(CMC_ERR_INVALID, "pending edit: plan id is not a lower-case UUID");
    if (change == NULL || change_len == 0)
        return cmc_fail(CMC_ERR_INVALID, "pending edit: the change is empty");
    if (change_len > PLAN_MAX_ENCODED)
        return cmc_fail(CMC_ERR_TOO_LARGE, "pending edit: the change is larger than %d bytes",
                        PLAN_MAX_ENCODED);
    if ((rc = store_stmt_get(s, "SELECT 1 FROM " STORE_HELD_VERSIONS " WHERE plan_id = ?1 AND version = ?2",
                         &st)) != CMC_OK)
        goto out;
    if ((rc = store_bind_text(s, st, 1, plan_id)) != CMC_OK ||
        (rc = store_bind_int(s, st, 2, base_version)) != CMC_OK ||
        (rc = db_step(s->db, st, &found)) != CMC_OK)
        goto out;
    if (!found) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "pending edit: plan %s version %" PRId64 " is not held",
                      plan_id, base_version);
        goto out;
    }
    store_stmt_put(s, st);
    st = NULL;
    plan_uuid_new(meta.idempotency_id);
    store_copy_text(meta.plan_id, sizeof meta.plan_id, plan_id);
    store_copy_text(meta.user, sizeof meta.user, s->session.user);
    meta.base_version = base_version;
    meta.created_at = plat_wall_now();
    meta.state = 0;
    sign_edit(s, meta.plan_id, base_version, meta.idempotency_id, change, change_len, meta.user_sig,
              &meta.has_sig);
    if ((rc = store_exec_bound(s,
                               "INSERT INTO pending_edits (plan_id, base_version, idempotency_id, user,"
                               " created_at, change, state, base, user_sig)"
                               " SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, body, ?7 FROM " STORE_HELD_VERSIONS
                               " WHERE plan_id = ?1 AND version = ?2",
                               "tittibb", meta.plan_id, base_version, meta.idempotency_id, meta.user,
                               meta.created_at, change, change_len,
                               meta.has_sig ? meta.user_sig : NULL,
                               (size_t)(meta.has_sig ? CRY_SIG_BYTES : 0))) != CMC_OK)
        goto out;
    meta.id = sqlite3_last_insert_rowid(s->db);
    if (out_meta != NULL)
        *out_meta = meta;
out:
    store_stmt_put(s, st);
    return rc;
}

void store_pending_free(struct store_pending *p, size_t n)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cmc_free(p[i].change);
    cmc_free(p);
}

int store_pending_list(store *s, const char *plan_id, struct store_pending **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = store_require_clinician(s, "pending edits");
    if (rc != CMC_OK)
        return rc;
    return store_sync_pending_list(s, plan_id, out, n);
}

int store_sync_pending_list(store *s, const char *plan_id, struct store_pending **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct store_pending *items = NULL;
    size_t count = 0, cap = 0;
    int rc, has_row = 0;

    *out = NULL;
    *n = 0;
    if ((rc = store_stmt_get(s,
                       "SELECT id, plan_id, base_version, idempotency_id, user, created_at,"
                       " change, state, user_sig FROM pending_edits"
                       " WHERE ?1 IS NULL OR plan_id = ?1 ORDER BY id",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = store_bind_text(s, st, 1, plan_id)) != CMC_OK)
        goto out;
    for (;;) {
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        if ((rc = store_grow(&items, count, &cap, sizeof *items, 8)) != CMC_OK)
            break;
        struct store_pending *e = &items[count];
        memset(e, 0, sizeof *e);
        e->id = sqlite3_column_int64(st, 0);
        store_copy_text(e->plan_id, sizeof e->plan_id, store_col_text(st, 1));
        e->base_version = sqlite3_column_int64(st, 2);
        store_copy_text(e->idempotency_id, sizeof e->idempotency_id, store_col_text(st, 3));
        store_copy_text(e->user, sizeof e->user, store_col_text(st, 4));
        e->created_at = sqlite3_column_int64(st, 5);
        e->state = sqlite3_column_int(st, 7);
        if (sqlite3_column_bytes(st, 8) == CRY_SIG_BYTES) {
            memcpy(e->user_sig, sqlite3_column_blob(st, 8), CRY_SIG_BYTES);
            e->has_sig = 1;
        }
        const void *b = sqlite3_column_blob(st, 6);
        size_t blen = (size_t)sqlite3_column_bytes(st, 6);
        count++;
        if ((rc = store_dup_blob(b, blen, &e->change, &e->change_len)) != CMC_OK)
            break;
    }
out:
    store_stmt_put(s, st);
    if (rc != CMC_OK) {
        store_pending_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return CMC_OK;
}

/* Runs a one-row change by id; CMC_ERR_NOT_FOUND when it touched nothing. */
static int change_by_id(store *s, const char *sql, int64_t id, int has_second, int64_t second,
                        const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = store_stmt_get(s, sql, &st);
    if (rc != CMC_OK)
        goto out;
    if ((rc = store_bind_int(s, st, 1, id)) != CMC_OK)
        goto out;
    if (has_second && (rc = store_bind_int(s, st, 2, second)) != CMC_OK)
        goto out;
    if ((rc = store_step_done(s, st)) != CMC_OK)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "%s %" PRId64 " does not exist", what, id);
out:
    store_stmt_put(s, st);
    return rc;
}

int store_pending_set_state(store *s, int64_t id, int state)
{
    if (state < 0 || state > 2)
        return cmc_fail(CMC_ERR_INVALID, "pending edit: state must be 0, 1 or 2");
    return change_by_id(s, "UPDATE pending_edits SET state = ?2 WHERE id = ?1", id, 1, state,
                        "pending edit");
}

/* ---- the engine's bookkeeping ------------------------------------------------------------ */

int store_pending_base(store *s, int64_t pending_id, struct plan *out)
{
    sqlite3_stmt *st = NULL;
    plan_init(out);
    int rc = store_query_row(s, &st, "replica: no such pending edit",
                             "SELECT plan_id, base FROM pending_edits WHERE id = ?1", "i", pending_id);
    if (rc == CMC_OK)
        rc = store_column_plan(st, 1, store_col_text(st, 0), out);
    store_stmt_put(s, st);
    return rc;
}

int store_pending_mark_pushed(store *s, int64_t id, int64_t hub_version)
{
    int rc = store_exec_bound(s, "UPDATE pending_edits SET state = 1, hub_version = ?2 WHERE id = ?1",
                              "ii", id, hub_version);
    if (rc == CMC_OK && sqlite3_changes(s->db) == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no such pending edit");
    return rc;
}

int store_pending_settle(store *s, const char *plan_id, int64_t held_version, int *settled)
{
    int rc = store_exec_bound(s,
                              "DELETE FROM pending_edits WHERE plan_id = ?1 AND state = 1"
                              " AND hub_version <= ?2",
                              "ti", plan_id, held_version);
    if (rc == CMC_OK && settled != NULL)
        *settled = sqlite3_changes(s->db);
    return rc;
}

int store_pending_replace(store *s, const char *plan_id, const struct plan *base,
                          const uint8_t *change, size_t change_len)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    char user[CRY_USER_MAX + 1];
    snprintf(user, sizeof user, "%s", store_session_of(s)->user);
    int rc = store_exec_for_plan(s, "DELETE FROM pending_edits WHERE plan_id = ?1", plan_id);
    if (rc != CMC_OK || change == NULL || change_len == 0)
        return rc;
    char idem[PLAN_ID_LEN + 1];
    plan_uuid_new(idem);
    if ((rc = plan_pack(base, &body, &body_len)) != CMC_OK)
        return rc;
    uint8_t sig[CRY_SIG_BYTES];
    int has_sig = 0;
    sign_edit(s, plan_id, base->version, idem, change, change_len, sig, &has_sig);
    rc = store_exec_bound(s,
                          "INSERT INTO pending_edits (plan_id, base_version, idempotency_id, user,"
                          " created_at, change, state, base, user_sig)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
                          "tittibbb", plan_id, base->version, idem, user, plat_wall_now(), change,
                          change_len, body, body_len, has_sig ? sig : NULL,
                          (size_t)(has_sig ? CRY_SIG_BYTES : 0));
    cmc_free(body);
    return rc;
}

#define NO_MERGE "replica: no merge state for that plan"

/* ---- merge state -------------------------------------------------------------------------- */

int store_merge_put(store *s, const char *plan_id, const struct plan *base,
                    const struct plan *local, const struct plan *remote)
{
    uint8_t *b[3] = { NULL, NULL, NULL };
    size_t len[3] = { 0, 0, 0 };
    const struct plan *plans[3] = { base, local, remote };
    int rc = CMC_OK;
    for (int i = 0; rc == CMC_OK && i < 3; i++)
        rc = plan_pack(plans[i], &b[i], &len[i]);
    if (rc == CMC_OK)
        rc = store_exec_bound(s,
                              "INSERT OR REPLACE INTO merges (plan_id, base, local, remote, choices,"
                              " created_at) VALUES (?1, ?2, ?3, ?4, '{}', ?5)",
                              "tbbbi", plan_id, b[0], len[0], b[1], len[1], b[2], len[2], plat_wall_now());
    for (int i = 0; i < 3; i++)
        cmc_free(b[i]);
    return rc;
}

int store_merge_get(store *s, const char *plan_id, struct plan *base, struct plan *local,
                    struct plan *remote)
{
    sqlite3_stmt *st = NULL;
    plan_init(base);
    plan_init(local);
    plan_init(remote);
    int rc = store_query_row(s, &st, NO_MERGE, "SELECT base, local, remote FROM merges WHERE plan_id = ?1",
                             "t", plan_id);
    if (rc == CMC_OK && (rc = store_column_plan(st, 0, plan_id, base)) == CMC_OK &&
        (rc = store_column_plan(st, 1, plan_id, local)) == CMC_OK)
        rc = store_column_plan(st, 2, plan_id, remote);
    store_stmt_put(s, st);
    if (rc != CMC_OK) {
        plan_free(base);
        plan_free(local);
        plan_free(remote);
    }
    return rc;
}

int store_merge_list(store *s, char ***plan_ids, size_t *n)
{
    sqlite3 *db = s->db;
    sqlite3_stmt *st = NULL;
    char **ids = NULL;
    size_t count = 0;
    int row = 0;
    *plan_ids = NULL;
    *n = 0;
    int rc = db_prepare(db, "SELECT plan_id FROM merges ORDER BY created_at, plan_id", &st);
    while (rc == CMC_OK && (rc = db_step(db, st, &row)) == CMC_OK && row) {
        char **grown = cmc_realloc(ids, (count + 1) * sizeof *ids);
        char *id = grown ? cmc_strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
        if (grown != NULL)
            ids = grown;
        if (id == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
            break;
        }
        ids[count++] = id;
    }
    sqlite3_finalize(st);
    if (rc != CMC_OK) {
        for (size_t i = 0; i < count; i++)
            cmc_free(ids[i]);
        cmc_free(ids);
        return rc;
    }
    *plan_ids = ids;
    *n = count;
    return CMC_OK;
}

static int load_choices(store *s, const char *plan_id, json_t **out)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    int rc = store_query_row(s, &st, NO_MERGE, "SELECT choices FROM merges WHERE plan_id = ?1", "t", plan_id);
    if (rc == CMC_OK) {
        *out = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: merge choices are damaged");
        }
    }
    store_stmt_put(s, st);
    return rc;
}

int store_merge_choose(store *s, const char *plan_id, const char *path, const char *keep)
{
    json_t *choices = NULL;
    int rc = load_choices(s, plan_id, &choices);
    if (rc != CMC_OK)
        return rc;
    char *text = NULL;
    if (json_object_set_new(choices, path, json_string(keep)) != 0 ||
        (text = json_dumps(choices, JSON_SORT_KEYS)) == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    json_decref(choices);
    if (rc != CMC_OK)
        return rc;
    rc = store_exec_bound(s, "UPDATE merges SET choices = ?2 WHERE plan_id = ?1", "tt", plan_id, text);
    free(text);
    return rc;
}

int store_merge_choice(store *s, const char *plan_id, const char *path, char out[8])
{
    json_t *choices = NULL;
    out[0] = '\0';
    int rc = load_choices(s, plan_id, &choices);
    if (rc != CMC_OK)
        return rc;
    const char *v = json_string_value(json_object_get(choices, path));
    if (v != NULL && (strcmp(v, "local") == 0 || strcmp(v, "remote") == 0))
        snprintf(out, 8, "%s", v);
    json_decref(choices);
    return CMC_OK;
}

int store_merge_delete(store *s, const char *plan_id)
{
    return store_exec_for_plan(s, "DELETE FROM merges WHERE plan_id = ?1", plan_id);
}
