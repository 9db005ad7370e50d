/*
 * store_query.c - statements with their values: prepare, bind, step and finalize in one
 * call, the loop over a query's rows, and a growing text for a statement's list of values
 * (contracts in internal.h). Every failure is translated by hub_db_fail, so callers keep
 * only what differs: the SQL, the values and what a row means.
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

static void hub_db_bind(sqlite3_stmt *st, const struct hub_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int col = (int)i + 1;
        switch (args[i].kind) {
        case HUB_ARG_TEXT:
            sqlite3_bind_text(st, col, args[i].p, -1, SQLITE_STATIC);
            break;
        case HUB_ARG_INT:
            sqlite3_bind_int64(st, col, args[i].n);
            break;
        case HUB_ARG_BLOB:
            sqlite3_bind_blob(st, col, args[i].p, (int)args[i].n, SQLITE_STATIC);
            break;
        case HUB_ARG_NULL:
            sqlite3_bind_null(st, col);
            break;
        }
    }
}

int hub_db_query(hub *h, const char *sql, const struct hub_arg *args, size_t n,
                 sqlite3_stmt **out)
{
    int rc = hub_db_prepare(h, sql, out);
    if (rc == CMC_OK)
        hub_db_bind(*out, args, n);
    return rc;
}

int hub_db_run(hub *h, const char *what, const char *sql, const struct hub_arg *args, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_query(h, sql, args, n, &st);
    if (rc != CMC_OK)
        return rc;
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, what);
    sqlite3_finalize(st);
    return rc;
}

int hub_db_again(hub *h, sqlite3_stmt *st, const char *what, const struct hub_arg *args,
                 size_t n)
{
    sqlite3_reset(st);
    hub_db_bind(st, args, n);
    int src = sqlite3_step(st);
    return src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, what);
}

int hub_db_row(hub *h, const char *what, sqlite3_stmt **st, const char *sql,
               const struct hub_arg *args, size_t n)
{
    int rc = hub_db_query(h, sql, args, n, st);
    if (rc != CMC_OK)
        return rc;
    int src = sqlite3_step(*st);
    if (src == SQLITE_ROW)
        return CMC_OK;
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, what);
    sqlite3_finalize(*st);
    *st = NULL;
    return rc;
}

void hub_rows_open(hub *h, struct hub_rows *r, const char *what, const char *sql,
                   const struct hub_arg *args, size_t n)
{
    r->h = h;
    r->what = what;
    r->rc = hub_db_query(h, sql, args, n, &r->st);
}

int hub_rows_next(struct hub_rows *r)
{
    if (r->rc != CMC_OK || r->st == NULL)
        return 0;
    int src = sqlite3_step(r->st);
    if (src == SQLITE_ROW)
        return 1;
    if (src != SQLITE_DONE)
        r->rc = hub_db_fail(r->h, src, r->what);
    /* finalized at once: stepped again, a finished statement would start over */
    sqlite3_finalize(r->st);
    r->st = NULL;
    return 0;
}

int hub_rows_end(struct hub_rows *r)
{
    sqlite3_finalize(r->st);
    r->st = NULL;
    return r->rc;
}

int hub_text_add(struct hub_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *np = cmc_realloc(t->p, cap);
        if (np == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "statement text");
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return CMC_OK;
}
