#include "agent/store_sync.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind_text(sqlite3 *db, sqlite3_stmt *st, int i, const char *v)
{
    return db_error(db, sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC), "binding a value");
}

static int bind_int(sqlite3 *db, sqlite3_stmt *st, int i, int64_t v)
{
    return db_error(db, sqlite3_bind_int64(st, i, v), "binding a value");
}

static int bind_blob(sqlite3 *db, sqlite3_stmt *st, int i, const void *b, size_t len)
{
    if (b == NULL)
        return db_error(db, sqlite3_bind_null(st, i), "binding a value");
    return db_error(db, sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC), "binding a value");
}

/* Decodes a plan body column and checks it belongs to `plan_id`. */
static int column_plan(sqlite3_stmt *st, int col, const char *plan_id, struct plan *out)
{
    const void *b = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (b == NULL || len <= 0)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body is missing");
    int rc = plan_unpack(b, (size_t)len, out);
    if (rc != CMC_OK)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body does not decode");
    if (plan_id != NULL && (out->plan_id == NULL || strcmp(out->plan_id, plan_id) != 0)) {
        plan_free(out);
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body names another plan");
    }
    return CMC_OK;
}

int store_sync_version_get(store *s, const char *plan_id, int64_t version, struct plan *out)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    plan_init(out);
    int rc = store_stmt_get(s, "SELECT body FROM plan_versions WHERE plan_id = ?1 AND version = ?2", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK && (rc = bind_int(db, st, 2, version)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && !row)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: that version is not held");
    if (rc == CMC_OK) {
        rc = column_plan(st, 0, plan_id, out);
        if (rc == CMC_OK && out->version != version) {
            plan_free(out);
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body has another version");
        }
    }
    store_stmt_put(s, st);
    return rc;
}

int store_sync_newest_version(store *s, const char *plan_id, int64_t *version)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = store_stmt_get(s, "SELECT max(version) FROM plan_versions WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && (!row || sqlite3_column_type(st, 0) == SQLITE_NULL))
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no version of that plan is held");
    if (rc == CMC_OK)
        *version = sqlite3_column_int64(st, 0);
    store_stmt_put(s, st);
    return rc;
}

int store_sync_prune(store *s, const char *plan_id)
{
    /* Keep the newest version and the newest published one; older ones serve nothing (a
     * pending edit keeps its own base). */
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = store_stmt_get(s,
                            "DELETE FROM plan_versions WHERE plan_id = ?1"
                            " AND version < (SELECT max(version) FROM plan_versions WHERE plan_id = ?1)"
                            " AND version < coalesce((SELECT max(version) FROM plan_versions"
                            "                         WHERE plan_id = ?1 AND status = 'published'), 0)",
                            &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    store_stmt_put(s, st);
    return rc;
}

int store_pending_base(store *s, int64_t pending_id, struct plan *out)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    plan_init(out);
    int rc = db_prepare(db, "SELECT plan_id, base FROM pending_edits WHERE id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_int(db, st, 1, pending_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && !row)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no such pending edit");
    if (rc == CMC_OK)
        rc = column_plan(st, 1, (const char *)sqlite3_column_text(st, 0), out);
    sqlite3_finalize(st);
    return rc;
}

static int exec_plan_int(store *s, const char *sql, int64_t a, int64_t b)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = db_prepare(db, sql, &st);
    if (rc == CMC_OK && (rc = bind_int(db, st, 1, a)) == CMC_OK && (rc = bind_int(db, st, 2, b)) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
    return rc;
}

int store_pending_mark_pushed(store *s, int64_t id, int64_t hub_version)
{
    int rc = exec_plan_int(s, "UPDATE pending_edits SET state = 1, hub_version = ?2 WHERE id = ?1", id, hub_version);
    if (rc == CMC_OK && sqlite3_changes(store_db(s)) == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no such pending edit");
    return rc;
}

int store_pending_settle(store *s, const char *plan_id, int64_t held_version, int *settled)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = db_prepare(db, "DELETE FROM pending_edits WHERE plan_id = ?1 AND state = 1 AND hub_version <= ?2", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK && (rc = bind_int(db, st, 2, held_version)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && settled != NULL)
        *settled = sqlite3_changes(db);
    sqlite3_finalize(st);
    return rc;
}

int store_pending_replace(store *s, const char *plan_id, const struct plan *base, const uint8_t *change,
                          size_t change_len)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    uint8_t *body = NULL;
    size_t body_len = 0;
    int row = 0;
    char user[CRY_USER_MAX + 1];
    snprintf(user, sizeof user, "%s", store_session_of(s)->user);
    int rc = db_prepare(db, "DELETE FROM pending_edits WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != CMC_OK || change == NULL || change_len == 0)
        return rc;
    char idem[PLAN_ID_LEN + 1];
    plan_uuid_new(idem);
    if ((rc = plan_pack(base, &body, &body_len)) != CMC_OK)
        return rc;
    rc = db_prepare(db,
                    "INSERT INTO pending_edits (plan_id, base_version, idempotency_id, user, created_at, change,"
                    " state, base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                    &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK && (rc = bind_int(db, st, 2, base->version)) == CMC_OK &&
        (rc = bind_text(db, st, 3, idem)) == CMC_OK && (rc = bind_text(db, st, 4, user)) == CMC_OK &&
        (rc = bind_int(db, st, 5, plat_wall_now())) == CMC_OK && (rc = bind_blob(db, st, 6, change, change_len)) == CMC_OK &&
        (rc = bind_blob(db, st, 7, body, body_len)) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
    cmc_free(body);
    return rc;
}

/* ---- merge state -------------------------------------------------------------------------- */

int store_merge_put(store *s, const char *plan_id, const struct plan *base, const struct plan *local,
                    const struct plan *remote)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    uint8_t *b[3] = { NULL, NULL, NULL };
    size_t len[3] = { 0, 0, 0 };
    const struct plan *plans[3] = { base, local, remote };
    int row = 0, rc = CMC_OK;
    for (int i = 0; rc == CMC_OK && i < 3; i++)
        rc = plan_pack(plans[i], &b[i], &len[i]);
    if (rc == CMC_OK)
        rc = db_prepare(db,
                        "INSERT OR REPLACE INTO merges (plan_id, base, local, remote, choices, created_at)"
                        " VALUES (?1, ?2, ?3, ?4, '{}', ?5)",
                        &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK && (rc = bind_blob(db, st, 2, b[0], len[0])) == CMC_OK &&
        (rc = bind_blob(db, st, 3, b[1], len[1])) == CMC_OK && (rc = bind_blob(db, st, 4, b[2], len[2])) == CMC_OK &&
        (rc = bind_int(db, st, 5, plat_wall_now())) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
    for (int i = 0; i < 3; i++)
        cmc_free(b[i]);
    return rc;
}

int store_merge_get(store *s, const char *plan_id, struct plan *base, struct plan *local, struct plan *remote)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    plan_init(base);
    plan_init(local);
    plan_init(remote);
    int rc = db_prepare(db, "SELECT base, local, remote FROM merges WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && !row)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no merge state for that plan");
    if (rc == CMC_OK && (rc = column_plan(st, 0, plan_id, base)) == CMC_OK &&
        (rc = column_plan(st, 1, plan_id, local)) == CMC_OK)
        rc = column_plan(st, 2, plan_id, remote);
    sqlite3_finalize(st);
    if (rc != CMC_OK) {
        plan_free(base);
        plan_free(local);
        plan_free(remote);
    }
    return rc;
}

int store_merge_list(store *s, char ***plan_ids, size_t *n)
{
    sqlite3 *db = store_db(s);
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
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    *out = NULL;
    int rc = db_prepare(db, "SELECT choices FROM merges WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    if (rc == CMC_OK && !row)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: no merge state for that plan");
    if (rc == CMC_OK) {
        *out = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: merge choices are damaged");
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int store_merge_choose(store *s, const char *plan_id, const char *path, const char *keep)
{
    json_t *choices = NULL;
    int rc = load_choices(s, plan_id, &choices);
    if (rc != CMC_OK)
        return rc;
    char *text = NULL;
    if (json_object_set_new(choices, path, json_string(keep)) != 0 || (text = json_dumps(choices, JSON_SORT_KEYS)) == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    json_decref(choices);
    if (rc != CMC_OK)
        return rc;
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    rc = db_prepare(db, "UPDATE merges SET choices = ?2 WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK && (rc = bind_text(db, st, 2, text)) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
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
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = db_prepare(db, "DELETE FROM merges WHERE plan_id = ?1", &st);
    if (rc == CMC_OK && (rc = bind_text(db, st, 1, plan_id)) == CMC_OK)
        rc = db_step(db, st, &row);
    sqlite3_finalize(st);
    return rc;
}

int store_sync_has_pending(store *s, int *yes)
{
    sqlite3 *db = store_db(s);
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
