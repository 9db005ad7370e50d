/*
 * hstore.c - the hub store's connection: one call each, passed to SQLite or to the
 * PostgreSQL side (hstore_pg.c). See hstore.h.
 */
#include "hub/hstore_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/db.h"

#include <stdlib.h>
#include <string.h>

int hst_is_pg_url(const char *url)
{
    return url != NULL &&
           (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0);
}

int hst_open_sqlite(const char *path, const struct cry_secret *key, hst_db **out)
{
    hst_db *db;
    int rc;
    *out = NULL;
    if ((db = cmc_calloc(1, sizeof *db)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub store");
    db->kind = HST_SQLITE;
    if ((rc = db_open(path, key, &db->lite)) != CMC_OK) {
        cmc_free(db);
        return rc;
    }
    *out = db;
    return CMC_OK;
}

int hst_open_pg(const char *url, hst_db **out)
{
    hst_db *db;
    int rc;
    *out = NULL;
    if ((db = cmc_calloc(1, sizeof *db)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub store");
    db->kind = HST_PG;
    if ((rc = hst_pg_connect(url, &db->pg)) != CMC_OK) {
        cmc_free(db);
        return rc;
    }
    *out = db;
    return CMC_OK;
}

void hst_close(hst_db *db)
{
    if (db == NULL)
        return;
    if (db->kind == HST_SQLITE)
        db_close(db->lite);
    else
        hst_pg_close(db->pg);
    cmc_free(db);
}

enum hst_kind hst_kind(const hst_db *db)
{
    return db->kind;
}

uint64_t hst_round_trips(const hst_db *db)
{
    return db != NULL && db->kind == HST_PG ? hst_pg_round_trips(db->pg) : 0;
}

sqlite3 *hst_sqlite(hst_db *db)
{
    return db != NULL && db->kind == HST_SQLITE ? db->lite : NULL;
}

int hst_error(hst_db *db, int rc, const char *what)
{
    if (db != NULL && db->kind == HST_PG)
        return hst_pg_error(db->pg, rc, what);
    return db_error(db != NULL ? db->lite : NULL, rc, what);
}

int hst_migrate(hst_db *db, const char *const *steps, size_t n_steps)
{
    if (db->kind == HST_PG)
        return hst_pg_migrate(db->pg, steps, n_steps);
    return db_migrate(db->lite, steps, n_steps, NULL);
}

/* ---- statements ------------------------------------------------------------------------ */

int hst_prepare_v2(hst_db *db, const char *sql, int n, hst_stmt **out, const char **tail)
{
    hst_stmt *st;
    int rc;
    (void)n; /* the hub always passes NUL-terminated text */
    *out = NULL;
    if (tail != NULL)
        *tail = NULL;
    if ((st = cmc_calloc(1, sizeof *st)) == NULL)
        return SQLITE_NOMEM;
    st->db = db;
    if (db->kind == HST_SQLITE)
        rc = sqlite3_prepare_v2(db->lite, sql, -1, &st->lite, NULL);
    else
        rc = hst_pg_prepare(db->pg, sql, &st->pg);
    if (rc != SQLITE_OK) {
        if (st->lite != NULL)
            sqlite3_finalize(st->lite);
        cmc_free(st);
        return rc;
    }
    *out = st;
    return SQLITE_OK;
}

int hst_step(hst_stmt *st)
{
    return st->lite != NULL ? sqlite3_step(st->lite) : hst_pg_step(st->pg);
}

int hst_reset(hst_stmt *st)
{
    if (st == NULL)
        return SQLITE_OK;
    if (st->lite != NULL)
        return sqlite3_reset(st->lite);
    hst_pg_reset(st->pg);
    return SQLITE_OK;
}

int hst_clear_bindings(hst_stmt *st)
{
    if (st->lite != NULL)
        return sqlite3_clear_bindings(st->lite);
    hst_pg_clear(st->pg);
    return SQLITE_OK;
}

int hst_finalize(hst_stmt *st)
{
    int rc = SQLITE_OK;
    if (st == NULL)
        return SQLITE_OK;
    if (st->lite != NULL)
        rc = sqlite3_finalize(st->lite);
    else
        hst_pg_finalize(st->pg);
    cmc_free(st);
    return rc;
}

int hst_bind_text(hst_stmt *st, int i, const char *v, int n, void (*del)(void *))
{
    if (st->lite != NULL)
        return sqlite3_bind_text(st->lite, i, v, n, del);
    if (v == NULL)
        return hst_pg_bind(st->pg, i, 'n', NULL, 0);
    return hst_pg_bind(st->pg, i, 't', v, n < 0 ? strlen(v) : (size_t)n);
}

int hst_bind_blob(hst_stmt *st, int i, const void *v, int n, void (*del)(void *))
{
    if (st->lite != NULL)
        return sqlite3_bind_blob(st->lite, i, v, n, del);
    if (v == NULL)
        return hst_pg_bind(st->pg, i, 'n', NULL, 0);
    return hst_pg_bind(st->pg, i, 'b', v, n > 0 ? (size_t)n : 0);
}

int hst_bind_int64(hst_stmt *st, int i, sqlite3_int64 v)
{
    if (st->lite != NULL)
        return sqlite3_bind_int64(st->lite, i, v);
    return hst_pg_bind(st->pg, i, 'i', &v, sizeof v);
}

int hst_bind_int(hst_stmt *st, int i, int v)
{
    return hst_bind_int64(st, i, v);
}

int hst_bind_null(hst_stmt *st, int i)
{
    if (st->lite != NULL)
        return sqlite3_bind_null(st->lite, i);
    return hst_pg_bind(st->pg, i, 'n', NULL, 0);
}

const unsigned char *hst_column_text(hst_stmt *st, int col)
{
    if (st->lite != NULL)
        return sqlite3_column_text(st->lite, col);
    int len;
    return (const unsigned char *)hst_pg_blob(st->pg, col, &len);
}

const void *hst_column_blob(hst_stmt *st, int col)
{
    if (st->lite != NULL)
        return sqlite3_column_blob(st->lite, col);
    int len;
    return hst_pg_blob(st->pg, col, &len);
}

int hst_column_bytes(hst_stmt *st, int col)
{
    if (st->lite != NULL)
        return sqlite3_column_bytes(st->lite, col);
    int len;
    (void)hst_pg_blob(st->pg, col, &len);
    return len;
}

int hst_column_type(hst_stmt *st, int col)
{
    if (st->lite != NULL)
        return sqlite3_column_type(st->lite, col);
    int len, type;
    (void)hst_pg_value(st->pg, col, &len, &type);
    return type;
}

sqlite3_int64 hst_column_int64(hst_stmt *st, int col)
{
    if (st->lite != NULL)
        return sqlite3_column_int64(st->lite, col);
    int len, type;
    const char *v = hst_pg_value(st->pg, col, &len, &type);
    if (v == NULL)
        return 0;
    if (v[0] == 't' && v[1] == '\0')
        return 1; /* a boolean expression: SQLite answers 1 or 0 */
    return strtoll(v, NULL, 10);
}

int hst_column_int(hst_stmt *st, int col)
{
    return (int)hst_column_int64(st, col);
}

int hst_changes(hst_db *db)
{
    return db->kind == HST_SQLITE ? sqlite3_changes(db->lite) : hst_pg_changes(db->pg);
}

sqlite3_int64 hst_last_insert_rowid(hst_db *db)
{
    return db->kind == HST_SQLITE ? sqlite3_last_insert_rowid(db->lite) : hst_pg_last_id(db->pg);
}

int hst_get_autocommit(hst_db *db)
{
    return db->kind == HST_SQLITE ? sqlite3_get_autocommit(db->lite) : hst_pg_autocommit(db->pg);
}

int hst_exec(hst_db *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
             char **errmsg)
{
    if (db->kind == HST_SQLITE)
        return sqlite3_exec(db->lite, sql, cb, arg, errmsg);
    if (errmsg != NULL)
        *errmsg = NULL;
    if (cb != NULL)
        return SQLITE_MISUSE;
    return hst_pg_exec(db->pg, sql);
}

void *hst_get_clientdata(hst_db *db, const char *name)
{
    return db->kind == HST_SQLITE ? sqlite3_get_clientdata(db->lite, name)
                                  : hst_pg_clientdata(db->pg, name);
}

int hst_set_clientdata(hst_db *db, const char *name, void *data, void (*del)(void *))
{
    return db->kind == HST_SQLITE ? sqlite3_set_clientdata(db->lite, name, data, del)
                                  : hst_pg_set_clientdata(db->pg, name, data, del);
}
