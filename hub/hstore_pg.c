/*
 * hstore_pg.c - the hub store on PostgreSQL through libpq (hstore.h).
 *
 * Each distinct SQL text is translated once (hstore_sql.c) and prepared on the server once
 * per set of parameter types, under a name kept in the connection's cache; the cache is
 * bounded (past HST_PG_CACHE entries a statement is prepared unnamed each time). A statement
 * runs at its first step; all its rows arrive at once (text format; bytea values decoded in
 * place as they arrive) and stay until the statement is reset.
 */
#include "hub/hstore_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HST_PG_CACHE 512
#define HST_PG_MAX_PARAMS 64
/* The one lock every write transaction takes (hstore.h): an arbitrary constant, "cmc hub". */
#define HST_PG_WRITE_LOCK "SELECT pg_advisory_xact_lock(7136771)"
/* The channel every node LISTENs on (hst_listen_*): a commit that a device's held wait may
 * care about NOTIFYs it (see stmt_notifies), naming the schema it wrote in, as channels are
 * shared by every schema of a database (another hub's store, a test's). */
#define HST_PG_CHANNEL "cmc_hub"
#define HST_PG_NOTIFY "SELECT pg_notify('" HST_PG_CHANNEL "', current_schema())"
/* force_custom_plan: the hub's statements are prepared once and run with very different
 * values (a device at cursor 0 or at the head); a generic plan for "seq > $1" scans the whole
 * table, a plan for the value at hand uses the index. */
#define HST_PG_SESSION                                                                        \
    "SET client_min_messages = warning; SET TIME ZONE 'UTC'; SET bytea_output = hex;"          \
    " SET plan_cache_mode = force_custom_plan"

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

enum hst_pg_kind { Q_SQL, Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_NOOP };

struct hst_pg_entry {
    char *src;        /* the hub's SQL text */
    char *sql;        /* translated */
    int kind, returning, nparams;
    int notifies; /* its commit must wake other nodes' held waits (stmt_notifies) */
    uint64_t used; /* which parameters the text uses */
    int reads;     /* a SELECT: writes nothing */
    char sig[HST_PG_MAX_PARAMS + 1]; /* parameter types it was prepared with ("" : not yet) */
    char name[16];
};

struct hst_pg_cdata {
    char name[32];
    void *data;
    void (*del)(void *);
};

struct hst_pg {
    PGconn *conn;
    struct hst_pg_entry *cache;
    size_t n_cache;
    int changes;
    int64_t last_id;
    int last_code;
    int in_tx;      /* a transaction is open (or was, when the connection dropped) */
    int begin_pending;   /* BEGIN and the write lock go with the next statement (run_sql) */
    int tx_wrote;        /* a statement other than SELECT ran in the open transaction */
    int commit_inflight; /* a read-only transaction's COMMIT was sent, its answer not read */
    int notify;     /* the open transaction wrote something a held wait may care about */
    uint64_t round_trips; /* requests that waited for the server's answer */
    char msg[256];
    struct hst_pg_cdata cdata[4];
};

struct hst_pg_param {
    char kind; /* 0 unbound (NULL), 'n', 't', 'b', 'i' */
    char *v;   /* small, or allocated */
    size_t n;
    char small[32];
};

struct hst_pg_stmt {
    struct hst_pg *pg;
    struct hst_pg_entry *e;   /* in pg->cache, or owned (e_own) when the cache is full */
    struct hst_pg_entry e_own;
    struct hst_pg_param p[HST_PG_MAX_PARAMS];
    PGresult *res;
    int row, nrows, done;
    int bind_nomem; /* a bind ran out of memory: the step says so (SQLite's binds cannot) */
};

static int pg_usable(struct hst_pg *pg, int ends_tx);
static int run_simple(struct hst_pg *pg, const char *sql);

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICE lines ("relation already exists, skipping") are not for users */
}

/* SQLSTATE -> the SQLite result code the hub's callers test. */
static int pg_code(const char *state)
{
    if (state == NULL)
        return SQLITE_IOERR; /* no answer at all: the connection */
    if (strcmp(state, "23505") == 0)
        return SQLITE_CONSTRAINT_UNIQUE;
    if (strcmp(state, "23502") == 0)
        return SQLITE_CONSTRAINT_NOTNULL;
    if (strncmp(state, "23", 2) == 0)
        return SQLITE_CONSTRAINT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
        return SQLITE_BUSY;
    if (strcmp(state, "53100") == 0)
        return SQLITE_FULL;
    if (strcmp(state, "53200") == 0)
        return SQLITE_NOMEM;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return SQLITE_IOERR;
    return SQLITE_ERROR;
}

/* Records a failed result's code and primary message; returns the SQLite code. */
static int pg_fail_res(struct hst_pg *pg, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(pg->conn);
    snprintf(pg->msg, sizeof pg->msg, "%s", msg != NULL ? msg : "no answer from the server");
    pg->msg[strcspn(pg->msg, "\n")] = '\0';
    pg->last_code = PQstatus(pg->conn) == CONNECTION_BAD ? SQLITE_IOERR : pg_code(state);
    return pg->last_code;
}

int hst_pg_error(struct hst_pg *pg, int rc, const char *what)
{
    int code = db_map_code(rc);
    if (code == CMC_OK)
        return CMC_OK;
    return cmc_fail(code, "%s: %s", what, pg->msg[0] != '\0' ? pg->msg : "PostgreSQL error");
}

int hst_pg_connect(const char *url, struct hst_pg **out)
{
    struct hst_pg *pg;
    PGresult *res;
    *out = NULL;
    if ((pg = cmc_calloc(1, sizeof *pg)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub store");
    pg->conn = PQconnectdb(url);
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", pg->conn != NULL ? PQerrorMessage(pg->conn) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(pg->conn);
        cmc_free(pg);
        /* libpq's text names the host and port, never the password */
        return cmc_fail(CMC_ERR_IO, "hub store: cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeProcessor(pg->conn, pg_quiet, NULL);
    res = PQexec(pg->conn, HST_PG_SESSION);
    PQclear(res);
    *out = pg;
    return CMC_OK;
}

static void entry_free(struct hst_pg_entry *e)
{
    cmc_free(e->src);
    cmc_free(e->sql);
    memset(e, 0, sizeof *e);
}

void hst_pg_close(struct hst_pg *pg)
{
    if (pg == NULL)
        return;
    for (size_t i = 0; i < sizeof pg->cdata / sizeof pg->cdata[0]; i++)
        if (pg->cdata[i].data != NULL && pg->cdata[i].del != NULL)
            pg->cdata[i].del(pg->cdata[i].data);
    for (size_t i = 0; i < pg->n_cache; i++)
        entry_free(&pg->cache[i]);
    cmc_free(pg->cache);
    PQfinish(pg->conn);
    cmc_free(pg);
}

/* ---- catalog questions for the translation --------------------------------------------- */

static int pg_catalog(void *ctx, const char *question, const char *table, char *out, size_t cap)
{
    static const char pk_sql[] =
        "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum))"
        " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary";
    static const char id_sql[] =
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attidentity <> '' LIMIT 1";
    struct hst_pg *pg = ctx;
    const char *params[1] = {table};
    if (pg_usable(pg, 0) != SQLITE_OK)
        return cmc_fail(CMC_ERR_IO, "hub store (catalog): %s", pg->msg);
    pg->round_trips++;
    PGresult *res = PQexecParams(pg->conn, strcmp(question, "pk") == 0 ? pk_sql : id_sql, 1,
                                 NULL, params, NULL, NULL, 0);
    out[0] = '\0';
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_fail_res(pg, res);
        PQclear(res);
        return cmc_fail(db_map_code(rc), "hub store (catalog): %s", pg->msg);
    }
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return CMC_OK;
}

/* ---- statements ------------------------------------------------------------------------ */

static int starts_with_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    return strncasecmp(s, w, n) == 0 && (s[n] == '\0' || s[n] == ' ' || s[n] == ';');
}

/* The table a write statement names (after INSERT ... INTO, UPDATE [OR ...], DELETE FROM):
 * whether it is `table`. */
static int writes_table(const char *sql, const char *table)
{
    const char *t;
    size_t n = strlen(table);
    while (*sql == ' ' || *sql == '\n' || *sql == '\t')
        sql++;
    if (starts_with_word(sql, "INSERT") || starts_with_word(sql, "REPLACE"))
        t = strstr(sql, "INTO ");
    else if (starts_with_word(sql, "DELETE"))
        t = strstr(sql, "FROM ");
    else if (starts_with_word(sql, "UPDATE"))
        t = sql;
    else
        return 0;
    if (t == NULL)
        return 0;
    t += strcspn(t, " ");
    while (*t == ' ')
        t++;
    if (starts_with_word(t, "OR")) { /* UPDATE OR IGNORE x */
        t += 2;
        while (*t == ' ')
            t++;
        t += strcspn(t, " ");
        while (*t == ' ')
            t++;
    }
    return strncmp(t, table, n) == 0 && (t[n] == ' ' || t[n] == '(' || t[n] == '\0');
}

/* Whether a statement's commit must wake the held waits of every node (hub/live.h): it
 * writes the change log, a purge or a scope's lease, or a device's wipe order, state or
 * lease. A device's cursor, last contact or audit key, a nonce, holdings: no. */
static int stmt_notifies(const char *sql)
{
    if (writes_table(sql, "changes") || writes_table(sql, "purges") ||
        writes_table(sql, "scope_leases"))
        return 1;
    if (!writes_table(sql, "devices"))
        return 0;
    const char *set = strstr(sql, " SET ");
    return set != NULL && (strstr(set, "wipe") != NULL || strstr(set, "state") != NULL ||
                           strstr(set, "lease_days") != NULL || strstr(set, "scope") != NULL);
}

static int entry_fill(struct hst_pg *pg, const char *sql, struct hst_pg_entry *e)
{
    struct hst_sql_out t;
    int rc;
    memset(e, 0, sizeof *e);
    if ((e->src = cmc_strdup(sql)) == NULL)
        return SQLITE_NOMEM;
    if (starts_with_word(sql, "BEGIN"))
        e->kind = Q_BEGIN;
    else if (starts_with_word(sql, "COMMIT") || starts_with_word(sql, "END"))
        e->kind = Q_COMMIT;
    else if (starts_with_word(sql, "ROLLBACK"))
        e->kind = Q_ROLLBACK;
    else if (starts_with_word(sql, "PRAGMA"))
        e->kind = Q_NOOP; /* SQLite's tuning (cache size): nothing to do here */
    else
        e->kind = Q_SQL;
    if (e->kind != Q_SQL)
        return SQLITE_OK;
    if ((rc = hst_sql_translate(sql, 0, pg_catalog, pg, &t)) != CMC_OK) {
        snprintf(pg->msg, sizeof pg->msg, "%s", cmc_errmsg());
        entry_free(e);
        return pg->last_code = rc == CMC_ERR_NOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
    }
    if (t.nparams > HST_PG_MAX_PARAMS) {
        cmc_free(t.sql);
        entry_free(e);
        snprintf(pg->msg, sizeof pg->msg, "statement has more than %d parameters", HST_PG_MAX_PARAMS);
        return pg->last_code = SQLITE_ERROR;
    }
    e->sql = t.sql;
    e->notifies = stmt_notifies(sql);
    e->reads = starts_with_word(sql, "SELECT");
    e->returning = t.returning;
    e->nparams = t.nparams;
    e->used = t.used;
    return SQLITE_OK;
}

int hst_pg_prepare(struct hst_pg *pg, const char *sql, struct hst_pg_stmt **out)
{
    struct hst_pg_stmt *st;
    int rc;
    *out = NULL;
    if ((st = cmc_calloc(1, sizeof *st)) == NULL)
        return SQLITE_NOMEM;
    st->pg = pg;
    st->row = -1;
    for (size_t i = 0; i < pg->n_cache; i++)
        if (strcmp(pg->cache[i].src, sql) == 0) {
            st->e = &pg->cache[i];
            *out = st;
            return SQLITE_OK;
        }
    if (pg->cache == NULL && (pg->cache = cmc_calloc(HST_PG_CACHE, sizeof *pg->cache)) == NULL) {
        cmc_free(st);
        return SQLITE_NOMEM;
    }
    if (pg->n_cache < HST_PG_CACHE) {
        st->e = &pg->cache[pg->n_cache];
        if ((rc = entry_fill(pg, sql, st->e)) != SQLITE_OK) {
            cmc_free(st);
            return rc;
        }
        snprintf(st->e->name, sizeof st->e->name, "h%zu", pg->n_cache);
        pg->n_cache++;
    } else {
        st->e = &st->e_own;
        if ((rc = entry_fill(pg, sql, st->e)) != SQLITE_OK) {
            cmc_free(st);
            return rc;
        }
    }
    *out = st;
    return SQLITE_OK;
}

static void param_drop(struct hst_pg_param *p)
{
    if (p->v != p->small)
        cmc_free(p->v);
    memset(p, 0, sizeof *p);
}

void hst_pg_reset(struct hst_pg_stmt *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->row = -1;
    st->nrows = 0;
    st->done = 0;
}

void hst_pg_clear(struct hst_pg_stmt *st)
{
    for (int i = 0; i < HST_PG_MAX_PARAMS; i++)
        param_drop(&st->p[i]);
    st->bind_nomem = 0;
}

void hst_pg_finalize(struct hst_pg_stmt *st)
{
    if (st == NULL)
        return;
    hst_pg_reset(st);
    hst_pg_clear(st);
    if (st->e == &st->e_own)
        entry_free(&st->e_own);
    cmc_free(st);
}

int hst_pg_bind(struct hst_pg_stmt *st, int i, char kind, const void *v, size_t n)
{
    struct hst_pg_param *p;
    char num[32];
    if (i < 1 || i > HST_PG_MAX_PARAMS)
        return SQLITE_RANGE;
    p = &st->p[i - 1];
    param_drop(p);
    p->kind = kind;
    if (kind == 'i') {
        int64_t x;
        memcpy(&x, v, sizeof x);
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)x);
        v = num;
    } else if (kind != 't' && kind != 'b') {
        return SQLITE_OK;
    }
    if (n < sizeof p->small) {
        p->v = p->small;
    } else if ((p->v = cmc_malloc(n + 1)) == NULL) {
        p->kind = 0;
        st->bind_nomem = 1;
        return SQLITE_NOMEM;
    }
    if (n > 0)
        memcpy(p->v, v, n);
    p->v[n] = '\0';
    p->n = n;
    return SQLITE_OK;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* Every bytea value of a new result, from the server's hex text to its bytes, in place and
 * followed by a NUL (a blob read as text is a string): reading a row then allocates nothing,
 * as reading one from SQLite does not. */
static void decode_bytea(PGresult *res)
{
    int rows = PQntuples(res), cols = PQnfields(res);
    for (int c = 0; c < cols; c++) {
        if (PQftype(res, c) != OID_BYTEA)
            continue;
        for (int r = 0; r < rows; r++) {
            char *v = PQgetvalue(res, r, c);
            int n = PQgetlength(res, r, c);
            if (PQgetisnull(res, r, c) || n < 2 || v[0] != '\\' || v[1] != 'x')
                continue;
            int k = 0;
            for (int i = 2; i + 1 < n; i += 2)
                v[k++] = (char)(hex_digit(v[i]) << 4 | hex_digit(v[i + 1]));
            v[k] = '\0';
        }
    }
}

/* A connection the server dropped (a restart, a failover) is made again before the next
 * statement, but never in the middle of a transaction: that one fails whole, and is rolled
 * back by its caller, before anything runs on the new connection. Statements are prepared
 * again as they are used. */
static int pg_usable(struct hst_pg *pg, int ends_tx)
{
    if (pg->commit_inflight) { /* a read-only COMMIT's answer: nothing in it matters */
        PGresult *res;
        while ((res = PQgetResult(pg->conn)) != NULL)
            PQclear(res);
        pg->commit_inflight = 0;
    }
    if (PQstatus(pg->conn) == CONNECTION_OK)
        return SQLITE_OK;
    if (pg->in_tx) {
        if (ends_tx)
            pg->in_tx = 0;
        snprintf(pg->msg, sizeof pg->msg, "the connection to PostgreSQL was lost in a transaction");
        return pg->last_code = SQLITE_IOERR;
    }
    PQreset(pg->conn);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(pg->msg, sizeof pg->msg, "cannot reconnect to PostgreSQL");
        return pg->last_code = SQLITE_IOERR;
    }
    for (size_t i = 0; i < pg->n_cache; i++)
        pg->cache[i].sig[0] = '\0';
    PQclear(PQexec(pg->conn, HST_PG_SESSION));
    return SQLITE_OK;
}

static void pg_note_tx(struct hst_pg *pg)
{
    if (PQstatus(pg->conn) == CONNECTION_OK)
        pg->in_tx = PQtransactionStatus(pg->conn) != PQTRANS_IDLE;
}

/* Transactions cost no round trip of their own where they can help it:
 *   - BEGIN (with the write lock) is not sent on its own but in one pipeline with the
 *     transaction's first statement (run_sql); a transaction that ran nothing ends without
 *     a word to the server;
 *   - the COMMIT of a transaction that only read is sent without waiting for its answer
 *     (read before the connection's next request): the server ends the transaction and frees
 *     the lock as it reads it, and nothing in the answer could change what was read. A
 *     transaction that wrote waits for its COMMIT, as the hub answers only what is durable. */
static int tx_begin(struct hst_pg *pg)
{
    if (pg->in_tx || pg->begin_pending)
        return run_simple(pg, "BEGIN"); /* refused by the server, as SQLite refuses it */
    pg->begin_pending = 1;
    pg->tx_wrote = 0;
    return SQLITE_DONE;
}

static int run_simple(struct hst_pg *pg, const char *sql)
{
    int commit = starts_with_word(sql, "COMMIT") || starts_with_word(sql, "END");
    int ends_tx = commit || starts_with_word(sql, "ROLLBACK");
    char *joined = NULL;
    if (pg->begin_pending && ends_tx) { /* nothing ran: nothing to end */
        pg->begin_pending = 0;
        return SQLITE_DONE;
    }
    if (commit && !pg->tx_wrote && !pg->notify && pg->in_tx &&
        PQstatus(pg->conn) == CONNECTION_OK && !pg->commit_inflight &&
        PQsendQuery(pg->conn, "COMMIT")) {
        pg->commit_inflight = 1;
        pg->in_tx = 0;
        return SQLITE_DONE;
    }
    if (!ends_tx)
        pg->tx_wrote = 1; /* DDL or a script: counted as a write */
    if (pg->begin_pending && !ends_tx) {
        size_t n = strlen(sql) + sizeof "BEGIN; " HST_PG_WRITE_LOCK "; ";
        if ((joined = cmc_malloc(n)) == NULL) {
            snprintf(pg->msg, sizeof pg->msg, "out of memory");
            return pg->last_code = SQLITE_NOMEM;
        }
        snprintf(joined, n, "BEGIN; " HST_PG_WRITE_LOCK "; %s", sql);
        sql = joined;
        pg->begin_pending = 0;
    }
    /* The NOTIFY rides with the COMMIT (one round trip) and is delivered only if it commits. */
    if (commit && pg->notify)
        sql = HST_PG_NOTIFY "; COMMIT";
    if (ends_tx)
        pg->notify = 0;
    int rc = pg_usable(pg, ends_tx);
    if (rc != SQLITE_OK)
        return rc;
    pg->round_trips++;
    PGresult *res = PQexec(pg->conn, sql);
    cmc_free(joined);
    ExecStatusType s = PQresultStatus(res);
    rc = SQLITE_DONE;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = pg_fail_res(pg, res);
    PQclear(res);
    pg_note_tx(pg);
    return rc;
}

/* The first statement of a transaction after its BEGIN and write lock, in one pipeline (one
 * round trip): the statement's result, or the first failure's. */
static PGresult *exec_begun(struct hst_pg *pg, const char *name, int n, const char *const *values,
                            const int *lens, const int *fmts)
{
    PGresult *res, *out = NULL;
    pg->begin_pending = 0;
    pg->tx_wrote = 0;
    if (!PQenterPipelineMode(pg->conn))
        return NULL;
    if (!PQsendQueryParams(pg->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryParams(pg->conn, HST_PG_WRITE_LOCK, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryPrepared(pg->conn, name, n, values, lens, fmts, 0) || !PQpipelineSync(pg->conn)) {
        PQexitPipelineMode(pg->conn);
        return NULL;
    }
    /* BEGIN, the lock, the statement: each a result and a NULL; then the sync. */
    for (int i = 0; i < 3; i++) {
        if ((res = PQgetResult(pg->conn)) == NULL)
            break;
        ExecStatusType s = PQresultStatus(res);
        int failed = s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK;
        if (out == NULL && (i == 2 || failed)) {
            out = res; /* the statement's, or the first failure (later ones are aborted) */
        } else {
            PQclear(res);
        }
        while ((res = PQgetResult(pg->conn)) != NULL)
            PQclear(res);
    }
    while ((res = PQgetResult(pg->conn)) != NULL) /* PGRES_PIPELINE_SYNC */
        PQclear(res);
    PQexitPipelineMode(pg->conn);
    return out;
}

/* Prepares e on the server for the parameter types in sig, once per (text, types). */
static int ensure_prepared(struct hst_pg_stmt *st, const char *sig, const Oid *types, int n)
{
    struct hst_pg *pg = st->pg;
    struct hst_pg_entry *e = st->e;
    const char *name = e == &st->e_own ? "" : e->name;
    PGresult *res;

    if (e != &st->e_own && strcmp(e->sig, sig) == 0 && e->sig[0] != '\0')
        return SQLITE_OK;
    if (e != &st->e_own && e->sig[0] != '\0') {
        /* same text, other types: prepared again under the same name */
        char dealloc[48];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", name);
        pg->round_trips++;
        PQclear(PQexec(pg->conn, dealloc));
        e->sig[0] = '\0';
    }
    pg->round_trips++;
    res = PQprepare(pg->conn, name, e->sql, n, types);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        int rc = pg_fail_res(pg, res);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    if (e != &st->e_own)
        snprintf(e->sig, sizeof e->sig, "%s", sig[0] != '\0' ? sig : "-");
    return SQLITE_OK;
}

static int run_sql(struct hst_pg_stmt *st)
{
    struct hst_pg *pg = st->pg;
    struct hst_pg_entry *e = st->e;
    int n = e->nparams, rc;
    Oid types[HST_PG_MAX_PARAMS];
    const char *values[HST_PG_MAX_PARAMS];
    int lens[HST_PG_MAX_PARAMS], fmts[HST_PG_MAX_PARAMS];
    char sig[HST_PG_MAX_PARAMS + 1];

    for (int i = 0; i < n; i++) {
        const struct hst_pg_param *p = &st->p[i];
        types[i] = p->kind == 'i' ? OID_INT8 : p->kind == 'b' ? OID_BYTEA : 0;
        if (types[i] == 0 && !(e->used & ((uint64_t)1 << i)))
            types[i] = OID_TEXT; /* bound but unused: the server cannot infer a type */
        sig[i] = p->kind == 'i' ? 'i' : p->kind == 'b' ? 'b' : 't';
        values[i] = p->kind == 'n' || p->kind == 0 ? NULL : p->v;
        lens[i] = (int)p->n;
        fmts[i] = p->kind == 'b' ? 1 : 0;
    }
    sig[n] = '\0';
    if (n == 0)
        snprintf(sig, sizeof sig, "-");
    if ((rc = pg_usable(pg, 0)) != SQLITE_OK || (rc = ensure_prepared(st, sig, types, n)) != SQLITE_OK)
        return rc;
    pg->round_trips++;
    if (pg->begin_pending)
        st->res = exec_begun(pg, e == &st->e_own ? "" : e->name, n, values, lens, fmts);
    else
        st->res = PQexecPrepared(pg->conn, e == &st->e_own ? "" : e->name, n, values, lens, fmts, 0);
    if (!e->reads)
        pg->tx_wrote = 1;
    pg_note_tx(pg);
    if (e->notifies && (PQresultStatus(st->res) == PGRES_COMMAND_OK ||
                        PQresultStatus(st->res) == PGRES_TUPLES_OK)) {
        if (pg->in_tx) {
            pg->notify = 1; /* sent with the COMMIT (run_simple) */
        } else {
            pg->round_trips++;
            PQclear(PQexec(pg->conn, HST_PG_NOTIFY)); /* committed already: a lost one only
                                                         delays the wake to the waits' hold */
        }
    }
    switch (PQresultStatus(st->res)) {
    case PGRES_COMMAND_OK:
        pg->changes = atoi(PQcmdTuples(st->res));
        st->nrows = 0;
        return SQLITE_DONE;
    case PGRES_TUPLES_OK:
        if (e->returning) {
            pg->changes = atoi(PQcmdTuples(st->res));
            if (PQntuples(st->res) > 0)
                pg->last_id = strtoll(PQgetvalue(st->res, 0, 0), NULL, 10);
            st->nrows = 0;
            return SQLITE_DONE;
        }
        st->nrows = PQntuples(st->res);
        st->row = 0;
        decode_bytea(st->res);
        return st->nrows > 0 ? SQLITE_ROW : SQLITE_DONE;
    case PGRES_EMPTY_QUERY:
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
    case PGRES_FATAL_ERROR:
    case PGRES_COPY_BOTH:
    case PGRES_SINGLE_TUPLE:
    case PGRES_PIPELINE_SYNC:
    case PGRES_PIPELINE_ABORTED:
    default:
        rc = pg_fail_res(pg, st->res);
        PQclear(st->res);
        st->res = NULL;
        return rc;
    }
}

int hst_pg_step(struct hst_pg_stmt *st)
{
    int rc;
    if (st->done)
        return SQLITE_DONE;
    if (st->bind_nomem) {
        snprintf(st->pg->msg, sizeof st->pg->msg, "out of memory");
        return st->pg->last_code = SQLITE_NOMEM;
    }
    if (st->res != NULL) {
        if (++st->row < st->nrows)
            return SQLITE_ROW;
        st->done = 1;
        return SQLITE_DONE;
    }
    switch (st->e->kind) {
    case Q_BEGIN:
        rc = tx_begin(st->pg);
        break;
    case Q_COMMIT:
        rc = run_simple(st->pg, "COMMIT");
        break;
    case Q_ROLLBACK:
        rc = run_simple(st->pg, "ROLLBACK");
        break;
    case Q_NOOP:
        rc = SQLITE_DONE;
        break;
    default:
        rc = run_sql(st);
        if (rc == SQLITE_ROW)
            return rc;
        break;
    }
    if (rc == SQLITE_DONE)
        st->done = 1;
    return rc;
}

static int col_ok(const struct hst_pg_stmt *st, int col)
{
    return st->res != NULL && st->row >= 0 && st->row < st->nrows && col >= 0 &&
           col < PQnfields(st->res);
}

const char *hst_pg_value(struct hst_pg_stmt *st, int col, int *len, int *type)
{
    *len = 0;
    *type = SQLITE_NULL;
    if (!col_ok(st, col) || PQgetisnull(st->res, st->row, col))
        return NULL;
    switch (PQftype(st->res, col)) {
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_NUMERIC:
        *type = SQLITE_INTEGER;
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
        *type = SQLITE_FLOAT;
        break;
    case OID_BYTEA:
        *type = SQLITE_BLOB;
        break;
    default:
        *type = SQLITE_TEXT;
        break;
    }
    *len = PQgetlength(st->res, st->row, col);
    return PQgetvalue(st->res, st->row, col);
}

const void *hst_pg_blob(struct hst_pg_stmt *st, int col, int *len)
{
    int type;
    const char *v = hst_pg_value(st, col, len, &type);
    if (v != NULL && type == SQLITE_BLOB)
        *len = (*len - 2) / 2; /* decoded in place by decode_bytea: "\\x" and two digits a byte */
    return v;
}

int hst_pg_changes(struct hst_pg *pg)
{
    return pg->changes;
}

uint64_t hst_pg_round_trips(const struct hst_pg *pg)
{
    return pg->round_trips;
}

int64_t hst_pg_last_id(struct hst_pg *pg)
{
    return pg->last_id;
}

int hst_pg_autocommit(struct hst_pg *pg)
{
    if (pg->begin_pending)
        return 0;
    if (pg->commit_inflight)
        return 1;
    return PQtransactionStatus(pg->conn) == PQTRANS_IDLE;
}

int hst_pg_exec(struct hst_pg *pg, const char *sql)
{
    struct hst_sql_out t;
    int rc;
    if (starts_with_word(sql, "PRAGMA"))
        return SQLITE_OK;
    if (starts_with_word(sql, "BEGIN"))
        return tx_begin(pg) == SQLITE_DONE ? SQLITE_OK : pg->last_code;
    /* nothing to translate: an error path's ROLLBACK must not allocate or record a detail */
    if (starts_with_word(sql, "ROLLBACK") || starts_with_word(sql, "COMMIT"))
        return run_simple(pg, sql) == SQLITE_DONE ? SQLITE_OK : pg->last_code;
    if ((rc = hst_sql_translate(sql, 1, pg_catalog, pg, &t)) != CMC_OK) {
        snprintf(pg->msg, sizeof pg->msg, "%s", cmc_errmsg());
        return pg->last_code = rc == CMC_ERR_NOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
    }
    rc = run_simple(pg, t.sql);
    cmc_free(t.sql);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void *hst_pg_clientdata(struct hst_pg *pg, const char *name)
{
    for (size_t i = 0; i < sizeof pg->cdata / sizeof pg->cdata[0]; i++)
        if (pg->cdata[i].data != NULL && strcmp(pg->cdata[i].name, name) == 0)
            return pg->cdata[i].data;
    return NULL;
}

int hst_pg_set_clientdata(struct hst_pg *pg, const char *name, void *data, void (*del)(void *))
{
    for (size_t i = 0; i < sizeof pg->cdata / sizeof pg->cdata[0]; i++) {
        struct hst_pg_cdata *c = &pg->cdata[i];
        if (c->data != NULL && strcmp(c->name, name) != 0)
            continue;
        if (c->data != NULL && c->del != NULL)
            c->del(c->data);
        snprintf(c->name, sizeof c->name, "%s", name);
        c->data = data;
        c->del = del;
        return SQLITE_OK;
    }
    if (del != NULL)
        del(data);
    return SQLITE_NOMEM;
}

/* ---- LISTEN ---------------------------------------------------------------------------- */

/* Seconds between attempts to make a lost listening connection again. */
#define HST_LISTEN_RETRY_S 3

struct hst_listen {
    PGconn *conn;
    int64_t retry_at; /* plat_mono_now_ns() / 1e9 of the next attempt when down */
    char schema[128]; /* this store's: notifications from other schemas are not for it */
};

static int listen_start(struct hst_listen *l)
{
    PGresult *res = PQexec(l->conn, "LISTEN " HST_PG_CHANNEL "; SELECT current_schema()");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        snprintf(l->schema, sizeof l->schema, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return ok && PQsetnonblocking(l->conn, 1) == 0;
}

int hst_listen_open(const char *url, hst_listen **out)
{
    struct hst_listen *l;
    *out = NULL;
    if ((l = cmc_calloc(1, sizeof *l)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub store (listen)");
    l->conn = PQconnectdb(url);
    if (l->conn == NULL || PQstatus(l->conn) != CONNECTION_OK || !listen_start(l)) {
        hst_listen_close(l);
        return cmc_fail(CMC_ERR_IO, "hub store: cannot LISTEN on PostgreSQL");
    }
    PQsetNoticeProcessor(l->conn, pg_quiet, NULL);
    *out = l;
    return CMC_OK;
}

int hst_listen_poll(hst_listen *l)
{
    PGnotify *n;
    int got = 0;
    if (PQstatus(l->conn) != CONNECTION_OK || PQconsumeInput(l->conn) == 0) {
        int64_t now = (int64_t)(plat_mono_now_ns() / 1000000000u);
        if (now < l->retry_at)
            return -1;
        l->retry_at = now + HST_LISTEN_RETRY_S;
        PQsetnonblocking(l->conn, 0);
        PQreset(l->conn);
        return PQstatus(l->conn) == CONNECTION_OK && listen_start(l) ? 1 : -1;
    }
    while ((n = PQnotifies(l->conn)) != NULL) {
        got |= strcmp(n->extra, l->schema) == 0;
        PQfreemem(n);
    }
    return got;
}

void hst_listen_close(hst_listen *l)
{
    if (l != NULL)
        PQfinish(l->conn);
    cmc_free(l);
}

/* ---- migrations ------------------------------------------------------------------------ */

static int pg_version(struct hst_pg *pg, int64_t *v)
{
    PGresult *res = PQexec(pg->conn, "SELECT v FROM schema_version");
    int rc = CMC_OK;
    *v = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_fail_res(pg, res);
        rc = cmc_fail(CMC_ERR_DB, "hub store (schema version): %s", pg->msg);
    } else if (PQntuples(res) > 0) {
        *v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return rc;
}

int hst_pg_migrate(struct hst_pg *pg, const char *const *steps, size_t n_steps)
{
    int64_t v = 0;
    int rc;
    if (hst_pg_exec(pg, "CREATE TABLE IF NOT EXISTS schema_version(v BIGINT NOT NULL)") != SQLITE_OK)
        return cmc_fail(CMC_ERR_DB, "hub store (schema): %s", pg->msg);
    /* Every node may open the store at once: the write lock makes one of them migrate. */
    if (run_simple(pg, "BEGIN; " HST_PG_WRITE_LOCK) != SQLITE_DONE)
        return cmc_fail(CMC_ERR_DB, "hub store (schema): %s", pg->msg);
    if ((rc = pg_version(pg, &v)) != CMC_OK)
        goto fail;
    if (v < 0 || (uint64_t)v > n_steps) {
        rc = cmc_fail(CMC_ERR_STATE, "database schema version %lld is newer than this program"
                      " knows (%zu)", (long long)v, n_steps);
        goto fail;
    }
    for (size_t i = (size_t)v; i < n_steps; i++) {
        if (steps[i] == NULL || steps[i][0] == '\0')
            continue;
        if (hst_pg_exec(pg, steps[i]) != SQLITE_OK) {
            rc = cmc_fail(CMC_ERR_DB, "hub store: migration step %zu failed: %s", i + 1, pg->msg);
            goto fail;
        }
    }
    char set[96];
    snprintf(set, sizeof set, "DELETE FROM schema_version; INSERT INTO schema_version VALUES(%zu)",
             n_steps);
    if (run_simple(pg, set) != SQLITE_DONE || run_simple(pg, "COMMIT") != SQLITE_DONE) {
        rc = cmc_fail(CMC_ERR_DB, "hub store (schema): %s", pg->msg);
        goto fail;
    }
    return CMC_OK;
fail:
    PQclear(PQexec(pg->conn, "ROLLBACK"));
    return rc;
}
