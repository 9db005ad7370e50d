/*
 * internal.h - what the hub's own .c files share: the handle, SQL helpers, the change log
 * and small text helpers. Not for use outside hub/.
 *
 * SQL helpers translate SQLite's result codes to cmc_err at the boundary with the one map
 * in sync/db.h (db_error: busy -> BUSY, full -> DISK_FULL, a taken key -> EXISTS,
 * not-a-database -> TAMPERED) and keep SQLite's text in the detail. Transactions are
 * BEGIN IMMEDIATE so two writers queue on the busy timeout instead of failing halfway.
 *
 * The handle keeps the statements every request runs prepared (hub_stmt), and the state
 * other modules keep per handle (parts: the feed's statements and deltas); all belong to the
 * handle's one connection and go with hub_close. Like the handle itself they are used by one
 * thread at a time.
 */
#ifndef CMC_HUB_INTERNAL_H
#define CMC_HUB_INTERNAL_H

#include "hub/hub.h"
#include "hub/hstore.h" /* the store: SQLite's statement API on either store */

#include <sqlite3.h>

/* Statements kept prepared on the handle, one slot each (hub_stmt): transaction control and
 * those every request runs; the rest are prepared per call. The feed keeps its own (feed.h). */
enum hub_stmt_slot {
    HUB_STMT_BEGIN,
    HUB_STMT_COMMIT,
    HUB_STMT_HEAD,
    HUB_STMT_DEVICE,      /* devices.c: hub_device_get */
    HUB_STMT_DEVICE_AUTH, /* devices.c: hub_auth_request */
    HUB_STMT_COUNT
};

/* Per-handle state a hub module keeps beside the connection (its kept statements, its
 * caches). The module makes it on first use and registers it here with the functions that
 * reset and free it, so the handle does both without knowing what is inside. */
struct hub_part {
    void *state;                /* NULL until the module first runs */
    void (*reset)(void *state); /* resets its kept statements (before a transaction ends) */
    void (*close)(void *state); /* finalizes and frees everything (hub_close) */
};

enum hub_part_slot {
    HUB_PART_FEED, /* feed_cache.c */
    HUB_PART_COUNT
};

struct hub {
    hst_db *db;            /* SQLCipher or PostgreSQL (hub/hstore.h) */
    struct cry_secret *sk; /* Ed25519 secret key */
    struct cry_secret *key; /* the key file's store key (backups are encrypted under it) */
    uint8_t pk[CRY_SIGN_PK_BYTES];
    sqlite3_stmt *stmt[HUB_STMT_COUNT]; /* NULL until first used; finalized by hub_close */
    struct hub_part part[HUB_PART_COUNT]; /* closed by hub_close */
    /* Set by a restore (store_backup.c), read at hub_open: a device cursor in
     * (restored_head, epoch_base) saw changes the restored store does not have. */
    uint64_t restored_head, epoch_base;
    struct hub_group *group; /* group commit while serving (feed_group.h); NULL: off */
};

/* Restores and the devices that found the hub behind them (store_backup.c). */
extern const char hub_schema_rewinds[];
extern const char hub_schema_lost_plans[];
extern const char hub_schema_lost_plans_2[];
int hub_meta_put(hub *h, const char *k, const void *v, size_t len);
/* A new generation id for a new store (hub_init). */
int hub_new_generation(hub *h);
/* Loads restored_head and epoch_base into the handle. */
int hub_restore_point(hub *h);
/* 1 when a device cursor saw changes this restored store lost (restored_head < cursor <
 * epoch_base): its pull is answered by hub_rewind_check. */
int hub_cursor_lost(const hub *h, uint64_t cursor);

/* The schema a new PostgreSQL store starts from (store_pg.c): migrations 1 to 3's result. */
extern const char hub_schema_pg[];

/* SQLite result -> cmc_err with a detail naming `what`. */
int hub_db_fail(hub *h, int rc, const char *what);
int hub_db_exec(hub *h, const char *sql);
int hub_db_prepare(hub *h, const char *sql, sqlite3_stmt **out);
/* The statement kept in `slot`, prepared from `sql` on first use, reset and with its bindings
 * cleared: ready to bind and step. The handle owns it (never finalize it); reset it when done
 * so it holds no read snapshot open. A slot is always used with the same SQL text. */
int hub_stmt(hub *h, enum hub_stmt_slot slot, const char *sql, sqlite3_stmt **out);
/* The same for a statement a part keeps in *slot (prepared into it on first use). */
int hub_stmt_keep(hub *h, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out);
/* Resets every kept statement, the parts' included (after an error mid-step, before ending
 * a transaction). */
void hub_stmt_reset_all(hub *h);

/* A value for a statement's ?N, made with HUB_TEXT, HUB_INT, HUB_BLOB or HUB_NULL and
 * passed as HUB_ARGS(...) (the array and its length), or as NULL, 0 when there is none.
 * Text and blobs are bound without a copy: they must stay valid until the statement is
 * finalized. A NULL text binds SQL NULL. */
enum hub_arg_kind { HUB_ARG_TEXT, HUB_ARG_INT, HUB_ARG_BLOB, HUB_ARG_NULL };
struct hub_arg {
    enum hub_arg_kind kind;
    const void *p; /* TEXT, BLOB */
    int64_t n;     /* INT: the value; BLOB: its length */
};
#define HUB_TEXT(s) ((struct hub_arg){HUB_ARG_TEXT, (s), 0})
#define HUB_INT(v) ((struct hub_arg){HUB_ARG_INT, NULL, (int64_t)(v)})
#define HUB_BLOB(b, len) ((struct hub_arg){HUB_ARG_BLOB, (b), (int64_t)(len)})
#define HUB_NULL ((struct hub_arg){HUB_ARG_NULL, NULL, 0})
#define HUB_ARGS(...)                                                                          \
    ((const struct hub_arg[]){__VA_ARGS__}),                                                  \
        (sizeof((const struct hub_arg[]){__VA_ARGS__}) / sizeof(struct hub_arg))

/* A growing text, always NUL-terminated (store_query.c): a list built for one statement. */
struct hub_text {
    char *p; /* cmc_free */
    size_t len, cap;
};
int hub_text_add(struct hub_text *t, const char *s, size_t n);

/* Prepares `sql` with args bound to ?1..?n. */
int hub_db_query(hub *h, const char *sql, const struct hub_arg *args, size_t n,
                 sqlite3_stmt **out);
/* Runs a statement that returns no rows (INSERT, UPDATE, DELETE) and finalizes it; a
 * failure's detail names `what`. */
int hub_db_run(hub *h, const char *what, const char *sql, const struct hub_arg *args, size_t n);
/* Runs a prepared statement again with new values (a loop over rows to write); it stays
 * prepared for the caller to finalize. */
int hub_db_again(hub *h, sqlite3_stmt *st, const char *what, const struct hub_arg *args,
                 size_t n);
/* Runs a query for its first row: CMC_OK with *st on that row for the caller to read and
 * finalize, or NULL when there is none. On failure *st is NULL. */
int hub_db_row(hub *h, const char *what, sqlite3_stmt **st, const char *sql,
               const struct hub_arg *args, size_t n);

/* A query's rows, read in a loop:
 *     struct hub_rows r;
 *     hub_rows_open(h, &r, "what", sql, HUB_ARGS(...));
 *     while (hub_rows_next(&r)) { read r.st; r.rc = cb(...); }
 *     return hub_rows_end(&r);
 * hub_rows_next gives 0 once the rows run out, when the open or a step failed, or when the
 * loop set r.rc nonzero (a callback that stops the walk); hub_rows_end finalizes the
 * statement and returns r.rc: CMC_OK when every row was read, else the failure or the
 * callback's value. */
struct hub_rows {
    hub *h;
    sqlite3_stmt *st;
    const char *what;
    int rc;
};
void hub_rows_open(hub *h, struct hub_rows *r, const char *what, const char *sql,
                   const struct hub_arg *args, size_t n);
int hub_rows_next(struct hub_rows *r);
int hub_rows_end(struct hub_rows *r);

int hub_tx_begin(hub *h);
int hub_tx_commit(hub *h);
void hub_tx_rollback(hub *h);
/* Ends the caller's transaction by its result: commits when rc is CMC_OK, else rolls back.
 * Returns rc, or the commit's failure. */
int hub_tx_end(hub *h, int rc);

/* Records a new detail that wraps the current one ("<prefix>: <current detail>"); the
 * current detail is copied first because cmc_fail writes into the same buffer. */
int hub_fail_wrap(int code, const char *prefix);

/* Replaces a plan's string member with a copy of s (NULL clears it). */
int hub_set_text(char **member, const char *s);

/* Text column as a C string ("" for NULL). */
const char *hub_col_text(sqlite3_stmt *st, int col);
/* Copies a text column into out (cap bytes, truncating). */
void hub_col_copy(sqlite3_stmt *st, int col, char *out, size_t cap);

/* Several nodes on one PostgreSQL store: records a device's request nonce in the store;
 * *seen is set (and nothing recorded) when any node has recorded it already. Rows older
 * than `keep` seconds are dropped from time to time. */
int hub_store_nonce(hub *h, const char *device_id, const char *nonce, int64_t now, int64_t keep,
                    int *seen);

/* Appends an entry to the change log for a plan and stamps the plan with its seq. */
int hub_log_change(hub *h, const char *plan_id, const char *what, uint64_t *seq_out);
/* Records who did what to which version. */
int hub_log_event(hub *h, const char *plan_id, int64_t version, const char *actor,
                  const char *action);

/* Stores a new version of a plan (p->version and p->status set by the caller) and updates
 * the plan row: newest version and status, published version and scope columns when the
 * version is published (or when nothing is published yet). Creates the row for version 1. */
int hub_store_version(hub *h, const struct plan *p, const char *actor, const char *action);
/* Loads a stored version's packed body (cmc_free) and/or its decoded plan. */
int hub_load_version_raw(hub *h, const char *plan_id, int64_t version, uint8_t **body,
                         size_t *len);
int hub_load_version(hub *h, const char *plan_id, int64_t version, struct plan *out);


/* The whole answer to a pull that finds nothing for the device (hub/poll_idle.h): the page
 * from `cursor` to the same cursor, the hub's head, holding only the lease in force, signed
 * with the hub's key. Byte for byte what hub_pull_sealed answers then (but for hub_time).
 * Reads only h->sk, so it runs outside the handle's one thread. */
int hub_pull_idle_page(const hub *h, const char *device_id, uint64_t cursor, int64_t lease_days,
                       uint64_t codecs, uint8_t **out, size_t *len);

/* The version of a plan a device may see (0: none; *reason then says why: "left_scope",
 * "consent_withdrawn" or "not_shared"). */
int hub_device_target(hub *h, const struct hub_device_info *dev, const char *plan_id,
                      int64_t *target, const char **reason);

/* Scope parsing: kind "all", "region", "team", "care_home"; value points into `scope`. */
int hub_scope_parse(const char *scope, char kind[16], const char **value);

#endif
