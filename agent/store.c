/*
 * store.c - the device's encrypted replica (see store.h; schema in docs/STORAGE.md): opening
 * and closing, the statement cache, bindings, transactions and roles. The other concepts live
 * in the store_*.c files listed in store_int.h.
 */
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_test.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/trace.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- small helpers --------------------------------------------------------------------- */

int store_role_from_name(const char *name)
{
    if (name == NULL)
        return STORE_ROLE_NONE;
    if (strcmp(name, "urgent_care") == 0)
        return STORE_ROLE_URGENT_CARE;
    if (strcmp(name, "clinician") == 0)
        return STORE_ROLE_CLINICIAN;
    return STORE_ROLE_NONE;
}

const char *store_role_name(int role)
{
    switch (role) {
    case STORE_ROLE_URGENT_CARE:
        return "urgent_care";
    case STORE_ROLE_CLINICIAN:
        return "clinician";
    default:
        return NULL;
    }
}

const char *store_safe_id(const char *id)
{
    return plan_uuid_valid(id) ? id : "(malformed id)";
}

/* A ready statement for `sql` (a static string): from the handle's cache, reset, or newly
 * prepared. Give it back with store_stmt_put. */
int store_stmt_get(store *s, const char *sql, sqlite3_stmt **out)
{
    *out = NULL;
    for (size_t i = 0; i < STORE_STMT_CACHE && s->stmts[i].sql != NULL; i++) {
        if (s->stmts[i].st != NULL && strcmp(s->stmts[i].sql, sql) == 0) {
            *out = s->stmts[i].st;
            s->stmts[i].st = NULL; /* in use: a nested use prepares its own */
            return CMC_OK;
        }
    }
    return db_prepare(s->db, sql, out);
}

/* Resets a statement and keeps it for the next store_stmt_get of the same SQL. */
void store_stmt_put(store *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    const char *sql = sqlite3_sql(st);
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        if (s->stmts[i].sql == NULL) {
            s->stmts[i].sql = sql;
            s->stmts[i].st = st;
            return;
        }
        if (s->stmts[i].st == NULL && strcmp(s->stmts[i].sql, sql) == 0) {
            s->stmts[i].sql = sql; /* the text now lives in this statement */
            s->stmts[i].st = st;
            return;
        }
    }
    sqlite3_finalize(st);
}

void store_stmt_cache_clear(store *s)
{
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        sqlite3_finalize(s->stmts[i].st);
        s->stmts[i].st = NULL;
        s->stmts[i].sql = NULL;
    }
}

const char *store_col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* Binds text (NULL binds SQL NULL). Values must outlive the step (SQLITE_STATIC). */
int store_bind_text(store *s, sqlite3_stmt *st, int i, const char *v)
{
    int rc = v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    return db_error(s->db, rc, "binding a value");
}

int store_bind_blob(store *s, sqlite3_stmt *st, int i, const void *b, size_t len)
{
    int rc;
    if (b == NULL)
        rc = sqlite3_bind_null(st, i);
    else if (len > (size_t)PLAN_MAX_ENCODED * 4)
        return cmc_fail(CMC_ERR_TOO_LARGE, "replica: value of %zu bytes is too large", len);
    else
        rc = sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC);
    return db_error(s->db, rc, "binding a value");
}

int store_bind_int(store *s, sqlite3_stmt *st, int i, int64_t v)
{
    return db_error(s->db, sqlite3_bind_int64(st, i, v), "binding a value");
}

/* Runs a statement that returns no rows. */
int store_step_done(store *s, sqlite3_stmt *st)
{
    int has_row = 0;
    return db_step(s->db, st, &has_row);
}

/* A statement from the cache with ?1, ?2, ... bound as `types` says (store_exec_bound), then
 * stepped once: *row 1 when it gave a row. */
static int step_bound(store *s, const char *sql, const char *types, va_list ap, sqlite3_stmt **out,
                      int *row)
{
    int rc = store_stmt_get(s, sql, out);
    for (int i = 0; rc == CMC_OK && types[i] != '\0'; i++) {
        if (types[i] == 't') {
            rc = store_bind_text(s, *out, i + 1, va_arg(ap, const char *));
        } else if (types[i] == 'i') {
            rc = store_bind_int(s, *out, i + 1, va_arg(ap, int64_t));
        } else {
            const void *b = va_arg(ap, const void *);
            rc = store_bind_blob(s, *out, i + 1, b, va_arg(ap, size_t));
        }
    }
    return rc == CMC_OK ? db_step(s->db, *out, row) : rc;
}

int store_exec_bound(store *s, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    va_list ap;
    va_start(ap, types);
    int rc = step_bound(s, sql, types, ap, &st, &row);
    va_end(ap);
    store_stmt_put(s, st);
    return rc;
}

int store_query_row(store *s, sqlite3_stmt **st, const char *missing, const char *sql,
                    const char *types, ...)
{
    int row = 0;
    va_list ap;
    va_start(ap, types);
    int rc = step_bound(s, sql, types, ap, st, &row);
    va_end(ap);
    if (rc == CMC_OK && !row)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "%s", missing);
    return rc;
}

/* One integer from `sql` with an optional text parameter; *found 0 when no row. */
int store_query_int(store *s, const char *sql, const char *param, int64_t *out, int *found)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = store_stmt_get(s, sql, &st);
    *out = 0;
    if (found != NULL)
        *found = 0;
    if (rc != CMC_OK)
        goto out;
    if (param != NULL && (rc = store_bind_text(s, st, 1, param)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row) {
        *out = sqlite3_column_int64(st, 0);
        if (found != NULL)
            *found = 1;
    }
out:
    store_stmt_put(s, st);
    return rc;
}

int store_grow(void *arr_ptr, size_t count, size_t *cap, size_t elem, size_t first)
{
    void *arr;
    if (count < *cap)
        return CMC_OK;
    size_t ncap = *cap ? *cap * 2 : first;
    memcpy(&arr, arr_ptr, sizeof arr); /* the caller's array pointer, whatever its type */
    void *grown = cmc_realloc(arr, ncap * elem);
    if (grown == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    memcpy(arr_ptr, &grown, sizeof grown);
    *cap = ncap;
    return CMC_OK;
}

int store_dup_text(const char *src, char **out)
{
    *out = NULL;
    if (src == NULL)
        return CMC_OK;
    *out = cmc_strdup(src);
    return *out != NULL ? CMC_OK : cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
}

int store_dup_blob(const void *src, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (src == NULL)
        return CMC_OK;
    *out = cmc_malloc(len > 0 ? len : 1);
    if (*out == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    if (len > 0)
        memcpy(*out, src, len);
    *out_len = len;
    return CMC_OK;
}

void store_copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}


static int memory_security;

void store_memory_security(int on)
{
    memory_security = on != 0;
}

int store_require_clinician(const store *s, const char *what)
{
    if (s->session.role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "%s: only a clinician may do this", what);
    if (!s->clinical)
        return cmc_fail(CMC_ERR_DENIED, "%s: your key slot does not hold the clinical key; ask a clinician "
                                        "who has it to add you again ('cmc-agent user remove' then 'user add')",
                        what);
    return CMC_OK;
}

/* ---- open / close ---------------------------------------------------------------------- */

int store_open(const char *path, const struct cry_secret *key, const struct store_session *session,
               store **out)
{
    store *s = NULL;
    int rc = CMC_OK;

    if (out == NULL)
        return cmc_fail(CMC_ERR_USAGE, "store_open: no output handle");
    *out = NULL;
    if (path == NULL || key == NULL || session == NULL)
        return cmc_fail(CMC_ERR_USAGE, "store_open: missing argument");
    if (session->role != STORE_ROLE_URGENT_CARE && session->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "replica: the session has no known role");
    size_t ulen = strnlen(session->user, sizeof session->user);
    if (ulen == 0 || ulen > CRY_USER_MAX)
        return cmc_fail(CMC_ERR_USAGE, "replica: the session has no valid user name");

    s = cmc_calloc(1, sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    memcpy(s->session.user, session->user, ulen);
    s->session.user[ulen] = '\0';
    s->session.role = session->role;
    s->session.sign_key = session->sign_key;
    if ((rc = db_open(path, key, &s->db)) != CMC_OK)
        goto out;
    if (memory_security && (rc = db_exec(s->db, "PRAGMA cipher_memory_security = ON")) != CMC_OK)
        goto out;
    if ((rc = store_schema_open(s->db)) != CMC_OK)
        goto out;
    if ((rc = store_clinical_open(s, path, session->role_key)) != CMC_OK)
        goto out;
    *out = s;
    s = NULL;
out:
    store_close(s);
    return rc;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->in_batch)
        db_rollback(s->db);
    store_stmt_cache_clear(s);
    store_seals_free(s);
    db_close(s->db);
    cmc_free(s);
}

int store_session_sign(store *s, const uint8_t digest[CRY_HASH_BYTES], uint8_t sig[CRY_SIG_BYTES])
{
    if (s->session.role != STORE_ROLE_CLINICIAN || s->session.sign_key == NULL)
        return cmc_fail(CMC_ERR_DENIED, "only a clinician's session can sign an edit");
    return cry_sign(s->session.sign_key, digest, CRY_HASH_BYTES, sig);
}

const struct store_session *store_session_of(const store *s)
{
    return &s->session;
}

/* ---- transactions ---------------------------------------------------------------------- */

/* A statement without bindings or rows, prepared once per handle (savepoints are run for
 * every op of a bundle). */
static int exec_cached(store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = store_stmt_get(s, sql, &st);
    if (rc == CMC_OK)
        rc = store_step_done(s, st);
    store_stmt_put(s, st);
    return rc;
}

int store_op_begin(store *s)
{
    if (s->in_batch)
        return exec_cached(s, "SAVEPOINT store_op");
    return db_begin(s->db);
}

int store_op_end(store *s, int rc)
{
    if (rc == CMC_OK) {
        if (s->in_batch)
            return exec_cached(s, "RELEASE store_op");
        return db_commit(s->db);
    }
    /* Keep the op's error detail, not the cleanup's. */
    if (s->in_batch) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK TO store_op; RELEASE store_op", NULL, NULL, NULL);
    } else {
        db_rollback(s->db);
    }
    return rc;
}

int store_batch_begin(store *s)
{
    if (s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: a batch is already open");
    int rc = db_begin(s->db);
    if (rc == CMC_OK)
        s->in_batch = 1;
    return rc;
}

int store_batch_commit(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: no batch is open");
    s->in_batch = 0;
    /* SQLite rolls a transaction back by itself after some errors (disk full, I/O); the
     * batch is then gone and must not be reported as committed. */
    if (sqlite3_get_autocommit(s->db))
        return cmc_fail(CMC_ERR_DB, "replica: the batch was rolled back after an error");
    uint64_t t0 = plat_phase_begin();
    int rc = db_commit(s->db);
    plat_phase_end(PLAT_PHASE_COMMIT, t0);
    return rc;
}

void store_batch_rollback(store *s)
{
    if (s == NULL || !s->in_batch)
        return;
    db_rollback(s->db);
    s->in_batch = 0;
}

int store_checkpoint(store *s)
{
    if (s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: checkpoint inside an open batch");
    return db_checkpoint_truncate(s->db);
}
