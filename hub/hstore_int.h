/*
 * hstore_int.h - shared by the files that implement the hub store's connection (hstore.c,
 * hstore_pg.c, hstore_sql.c): the handles and the PostgreSQL side's functions. See hstore.h.
 */
#ifndef CMC_HUB_HSTORE_INT_H
#define CMC_HUB_HSTORE_INT_H

#define HUB_STORE_IMPL 1
#include "hub/hstore.h"

#include <stddef.h>
#include <stdint.h>

struct hst_pg;      /* hstore_pg.c: the libpq connection and its statement cache */
struct hst_pg_stmt; /* hstore_pg.c: one statement's parameters and result */

struct hst_db {
    enum hst_kind kind;
    sqlite3 *lite;      /* HST_SQLITE */
    struct hst_pg *pg;  /* HST_PG */
};

struct hst_stmt {
    hst_db *db;
    sqlite3_stmt *lite;
    struct hst_pg_stmt *pg;
};

int hst_pg_connect(const char *url, struct hst_pg **out);
void hst_pg_close(struct hst_pg *pg);
int hst_pg_error(struct hst_pg *pg, int rc, const char *what);
int hst_pg_migrate(struct hst_pg *pg, const char *const *steps, size_t n_steps);
int hst_pg_prepare(struct hst_pg *pg, const char *sql, struct hst_pg_stmt **out);
int hst_pg_step(struct hst_pg_stmt *st);
void hst_pg_reset(struct hst_pg_stmt *st);
void hst_pg_clear(struct hst_pg_stmt *st);
void hst_pg_finalize(struct hst_pg_stmt *st);
/* kind: 't' text, 'b' blob (binary), 'i' integer, 'n' NULL */
int hst_pg_bind(struct hst_pg_stmt *st, int i, char kind, const void *v, size_t n);
const char *hst_pg_value(struct hst_pg_stmt *st, int col, int *len, int *type);
const void *hst_pg_blob(struct hst_pg_stmt *st, int col, int *len);
int hst_pg_changes(struct hst_pg *pg);
uint64_t hst_pg_round_trips(const struct hst_pg *pg);
int64_t hst_pg_last_id(struct hst_pg *pg);
int hst_pg_autocommit(struct hst_pg *pg);
int hst_pg_exec(struct hst_pg *pg, const char *sql);
void *hst_pg_clientdata(struct hst_pg *pg, const char *name);
int hst_pg_set_clientdata(struct hst_pg *pg, const char *name, void *data, void (*del)(void *));

/* hstore_sql.c: SQLite's dialect as PostgreSQL's. `lookup` answers catalog questions the
 * translation needs (a table's primary key columns for INSERT OR REPLACE, its identity
 * column for RETURNING); it writes a comma-separated list into out ("" when none). */
struct hst_sql_out {
    char *sql;       /* cmc_free */
    int returning;   /* 1: RETURNING <identity column> was appended */
    int nparams;     /* highest $N */
    uint64_t used;   /* bit N-1: $N appears (SQLite lets a statement leave some unused) */
};
typedef int (*hst_catalog_fn)(void *ctx, const char *question, const char *table, char *out,
                              size_t cap);
int hst_sql_translate(const char *sql, int for_exec, hst_catalog_fn lookup, void *ctx,
                      struct hst_sql_out *out);

#endif
