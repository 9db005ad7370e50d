/*
 * hstore.h - the hub store's connection: the embedded SQLCipher file (the default) or a
 * PostgreSQL database reached through libpq, behind one statement interface.
 *
 * The hub's modules are written against SQLite's statement API (prepare, bind, step,
 * column, reset, finalize). hub/internal.h maps those names onto the hst_ functions below,
 * so every hub statement runs on whichever store the handle opened, and code added to the
 * hub later does too without knowing there are two. On SQLCipher each call is passed
 * straight through. On PostgreSQL (hstore_pg.c):
 *   - SQL text is translated once per connection and cached with its server-side prepared
 *     statement (hstore_sql.c: `?N` -> `$N`, INSERT OR IGNORE -> ON CONFLICT DO NOTHING,
 *     INSERT OR REPLACE -> ON CONFLICT (primary key) DO UPDATE, INTEGER -> BIGINT,
 *     BLOB -> BYTEA, AUTOINCREMENT -> identity, scalar max/min -> greatest/least, ...);
 *   - an INSERT into a table with an identity column returns it (sqlite3_last_insert_rowid);
 *   - a statement runs at its first step and its rows are kept until reset, so statements
 *     may be interleaved on one connection as they are on SQLite;
 *   - BEGIN IMMEDIATE takes one transaction-scoped advisory lock, so write transactions
 *     are serialized across every hub node exactly as SQLite serializes writers: the change
 *     log's seq values become visible in the order they were taken (docs/HAZARDS.md H-35);
 *     the BEGIN and the lock travel in one pipeline with the transaction's first statement,
 *     and a transaction that only read does not wait for its COMMIT's answer, so a
 *     transaction costs no round trip beyond its statements' (hst_round_trips counts them);
 *   - a commit that may concern a device's held wait sends NOTIFY with it (hst_listen_*);
 *   - errors carry SQLite result codes (unique violation -> SQLITE_CONSTRAINT_UNIQUE,
 *     serialization or lock failures -> SQLITE_BUSY, a lost connection -> SQLITE_IOERR) so
 *     the one map in sync/db.c still decides the cmc error; hst_error words the detail from
 *     the server's primary message, which never carries a bound value.
 *
 * Memory: hst_open_* leave *out NULL on failure; hst_close(NULL) is a no-op. Text, blob and
 * column pointers stay valid until the statement is stepped again, reset or finalized.
 * Thread-safety: a connection and its statements are used by one thread at a time.
 */
#ifndef CMC_HUB_HSTORE_H
#define CMC_HUB_HSTORE_H

#include "crypto/cry.h"

#include <sqlite3.h>
#include <stdint.h>

typedef struct hst_db hst_db;
typedef struct hst_stmt hst_stmt;

enum hst_kind { HST_SQLITE, HST_PG };

/* Opens the SQLCipher file at `path` with `key` (sync/db.h: db_open). */
int hst_open_sqlite(const char *path, const struct cry_secret *key, hst_db **out);
/* Connects to PostgreSQL (`url`: postgresql://user@host:port/db, libpq's syntax). */
int hst_open_pg(const char *url, hst_db **out);
void hst_close(hst_db *db);
enum hst_kind hst_kind(const hst_db *db);
/* The SQLite connection (NULL on PostgreSQL): backup, migrations. */
sqlite3 *hst_sqlite(hst_db *db);
/* 1 when `url` names a PostgreSQL database (postgresql:// or postgres://). */
int hst_is_pg_url(const char *url);

/* cmc error for result code rc, the detail "<what>: <the store's message>" (db_error). */
int hst_error(hst_db *db, int rc, const char *what);
/* Runs the migration steps not yet applied (db_migrate's contract on both stores; on
 * PostgreSQL the steps are translated and the version is kept in table schema_version). */
int hst_migrate(hst_db *db, const char *const *steps, size_t n_steps);

/* Requests to the store that waited for its answer (always 0 on SQLite): what an operation
 * costs in round trips to the PostgreSQL server. */
uint64_t hst_round_trips(const hst_db *db);

/* PostgreSQL only: a connection of its own that LISTENs for the commits of every node (and
 * of `cmc-hub` commands): each transaction that wrote the change log, a purge, a scope's
 * lease, or a device's wipe order, state or lease sends one NOTIFY with its COMMIT.
 * hst_listen_poll never blocks on the server: it returns 1 when notifications arrived since
 * the last call, or when the connection was lost and is made again (anything may have been
 * missed meanwhile: look), 0 when none, -1 while the connection is down (it is tried again at
 * most every few seconds; the caller then looks on its own schedule). A listener is used by
 * one thread at a time; hst_listen_close(NULL) is a no-op. */
typedef struct hst_listen hst_listen;
int hst_listen_open(const char *url, hst_listen **out);
int hst_listen_poll(hst_listen *l);
void hst_listen_close(hst_listen *l);

/* SQLite's statement API, one function each (see the mapping in hub/internal.h). */
int hst_prepare_v2(hst_db *db, const char *sql, int n, hst_stmt **out, const char **tail);
int hst_step(hst_stmt *st);
int hst_reset(hst_stmt *st);
int hst_clear_bindings(hst_stmt *st);
int hst_finalize(hst_stmt *st);
int hst_bind_text(hst_stmt *st, int i, const char *v, int n, void (*del)(void *));
int hst_bind_blob(hst_stmt *st, int i, const void *v, int n, void (*del)(void *));
int hst_bind_int64(hst_stmt *st, int i, sqlite3_int64 v);
int hst_bind_int(hst_stmt *st, int i, int v);
int hst_bind_null(hst_stmt *st, int i);
const unsigned char *hst_column_text(hst_stmt *st, int col);
const void *hst_column_blob(hst_stmt *st, int col);
int hst_column_bytes(hst_stmt *st, int col);
int hst_column_type(hst_stmt *st, int col);
sqlite3_int64 hst_column_int64(hst_stmt *st, int col);
int hst_column_int(hst_stmt *st, int col);
int hst_changes(hst_db *db);
sqlite3_int64 hst_last_insert_rowid(hst_db *db);
int hst_get_autocommit(hst_db *db);
/* Only callback-free use is supported: cb must be NULL (statements whose rows nobody reads). */
int hst_exec(hst_db *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
             char **errmsg);
void *hst_get_clientdata(hst_db *db, const char *name);
int hst_set_clientdata(hst_db *db, const char *name, void *data, void (*del)(void *));

/* The hub's API over the same statements, mapped from SQLite's names. Not applied in the
 * files that implement the stores (they define HUB_STORE_IMPL first). */
#ifndef HUB_STORE_IMPL
#define sqlite3_stmt hst_stmt
#define sqlite3_prepare_v2 hst_prepare_v2
#define sqlite3_step hst_step
#define sqlite3_reset hst_reset
#define sqlite3_clear_bindings hst_clear_bindings
#define sqlite3_finalize hst_finalize
#define sqlite3_bind_text hst_bind_text
#define sqlite3_bind_blob hst_bind_blob
#define sqlite3_bind_int64 hst_bind_int64
#define sqlite3_bind_int hst_bind_int
#define sqlite3_bind_null hst_bind_null
#define sqlite3_column_text hst_column_text
#define sqlite3_column_blob hst_column_blob
#define sqlite3_column_bytes hst_column_bytes
#define sqlite3_column_type hst_column_type
#define sqlite3_column_int64 hst_column_int64
#define sqlite3_column_int hst_column_int
#define sqlite3_changes hst_changes
#define sqlite3_last_insert_rowid hst_last_insert_rowid
#define sqlite3_get_autocommit hst_get_autocommit
#define sqlite3_exec hst_exec
#define sqlite3_get_clientdata hst_get_clientdata
#define sqlite3_set_clientdata hst_set_clientdata
#endif

#endif
