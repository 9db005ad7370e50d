/*
 * poll_idle.c - idle polls answered in one statement on a pool of store connections
 * (poll_idle.h).
 */
#include "hub/poll_idle.h"

#include "hub/internal.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* A batch of idle polls, one statement: ?1 device ids, ?2 nonces, ?3 the keys the signatures
 * were checked with (hex), ?4 the cursors, as array literals; ?5 now, ?6 the default lease.
 * One row per idle poll (its place in the batch, name, lease, last seen, nonce recorded 0/1);
 * none for the others, whose nonces are not recorded (the INSERT reads d). Each look-up is by
 * key, per poll (LATERAL and correlated subqueries), or an index's end (max). */
static const char hub_idle_sql[] =
    "WITH r AS (SELECT * FROM unnest(?1::text[], ?2::text[], ?3::text[], ?4::bigint[])"
    " WITH ORDINALITY AS r(device_id, nonce, pk, cursor, i)),"
    " hd AS (SELECT (SELECT coalesce(max(seq), 0) FROM changes) AS head,"
    " (SELECT coalesce(max(seq), 0) FROM plans) AS stamped),"
    " d AS (SELECT r.i, r.device_id, r.nonce, x.name, x.lease, x.last_seen FROM r CROSS JOIN hd"
    " CROSS JOIN LATERAL (SELECT v.name, v.last_seen, coalesce(v.lease_days,"
    " (SELECT days FROM scope_leases s WHERE s.scope = v.scope), ?6) AS lease FROM devices v"
    " WHERE v.device_id = r.device_id AND v.state = 'active' AND v.pk = decode(r.pk, 'hex')"
    " AND v.wipe = 0 AND v.cursor = r.cursor AND v.proven <= r.cursor) x"
    " WHERE hd.head = r.cursor AND hd.stamped <= r.cursor"
    " AND NOT EXISTS (SELECT 1 FROM purges pu WHERE pu.device_id = r.device_id"
    " AND pu.acked IS NULL)"
    " AND NOT EXISTS (SELECT 1 FROM unproven u JOIN holders k ON k.num = u.dev"
    " WHERE k.device_id = r.device_id)),"
    " n AS (INSERT INTO seen_nonces(device_id, nonce, at) SELECT device_id, nonce, ?5 FROM d"
    " ON CONFLICT DO NOTHING RETURNING device_id, nonce)"
    " SELECT d.i, d.name, d.lease, d.last_seen, EXISTS (SELECT 1 FROM n"
    " WHERE n.device_id = d.device_id AND n.nonce = d.nonce) FROM d";

/* Last seen, to the minute, for the devices of a batch whose idle poll was recorded. */
static const char hub_idle_seen_sql[] =
    "UPDATE devices SET last_seen = ?2 WHERE device_id = ANY (?1::text[])"
    " AND (last_seen IS NULL OR last_seen < ?2 - 60)";

/* One idle poll waiting for its batch. */
struct hub_idle_req {
    const char *device_id, *nonce;
    char pk_hex[2 * CRY_SIGN_PK_BYTES + 1];
    uint64_t cursor;
    struct hub_idle_row *out;
    int rc, done;
    pthread_cond_t cv; /* its caller waits here: for its answer, or its turn to lead */
    struct hub_idle_req *next;
};

struct hub_idle_conn {
    hst_db *db;   /* NULL until first used, or after a failure */
    hst_stmt *st; /* hub_idle_sql, prepared on it */
    int busy;
};

/* Polls queue here; a thread whose poll is queued and that finds a connection free takes
 * up to HUB_IDLE_BATCH queued polls (its own or others') to the store in one statement, so
 * polls that arrive while a batch is on its way go together in the next. */
#define HUB_IDLE_BATCH 64

struct hub_idle {
    char *url;
    pthread_mutex_t mu; /* the queue, the busy flags and every req's done/rc */
    struct hub_idle_req *head, *tail;
    struct hub_idle_conn *conns;
    unsigned n;
    atomic_uint_fast64_t checked, idle, batches;
};

int hub_idle_open(const char *url, unsigned conns, hub_idle **out)
{
    hub_idle *ip;
    *out = NULL;
    if (url == NULL || conns == 0)
        return cmc_fail(CMC_ERR_USAGE, "idle polls: no store to connect to");
    if ((ip = cmc_calloc(1, sizeof *ip)) == NULL ||
        (ip->conns = cmc_calloc(conns, sizeof *ip->conns)) == NULL ||
        (ip->url = cmc_strdup(url)) == NULL) {
        if (ip != NULL)
            cmc_free(ip->conns);
        cmc_free(ip);
        return cmc_fail(CMC_ERR_NOMEM, "idle polls");
    }
    ip->n = conns;
    pthread_mutex_init(&ip->mu, NULL);
    atomic_init(&ip->checked, 0);
    atomic_init(&ip->idle, 0);
    atomic_init(&ip->batches, 0);
    *out = ip;
    return CMC_OK;
}

static void hub_idle_drop(struct hub_idle_conn *c)
{
    hst_finalize(c->st);
    hst_close(c->db);
    c->st = NULL;
    c->db = NULL;
}

void hub_idle_close(hub_idle *ip)
{
    if (ip == NULL)
        return;
    plat_log(PLAT_LOG_INFO, "idle polls: %llu asked, %llu answered, in %llu statements",
             (unsigned long long)atomic_load(&ip->checked),
             (unsigned long long)atomic_load(&ip->idle),
             (unsigned long long)atomic_load(&ip->batches));
    for (unsigned i = 0; i < ip->n; i++)
        hub_idle_drop(&ip->conns[i]);
    pthread_mutex_destroy(&ip->mu);
    cmc_free(ip->conns);
    cmc_free(ip->url);
    cmc_free(ip);
}

/* Opens the connection and prepares the statement on first use (and after a failure). */
static int hub_idle_ready(hub_idle *ip, struct hub_idle_conn *c)
{
    int rc;
    if (c->st != NULL)
        return CMC_OK;
    if (c->db == NULL && (rc = hst_open_pg(ip->url, &c->db)) != CMC_OK)
        return rc;
    /* Only the idle polls' nonces ride on these connections (poll_idle.h, H-41). The statement
     * is planned once: every look-up in it is by key or an index's end (max), so the plan
     * does not depend on the values, and planning it anew each time would cost more than
     * running it. */
    if (hst_exec(c->db, "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan",
                 NULL, NULL, NULL) != SQLITE_OK ||
        hst_prepare_v2(c->db, hub_idle_sql, -1, &c->st, NULL) != SQLITE_OK) {
        rc = hst_error(c->db, SQLITE_ERROR, "idle polls");
        hub_idle_drop(c);
        return rc;
    }
    return CMC_OK;
}

/* Runs a statement with one text array and now; logs a failure (it only tidies). */
static void hub_idle_tidy(struct hub_idle_conn *c, const char *sql, const char *list,
                          int64_t at, const char *what)
{
    hst_stmt *st = NULL;
    int src = hst_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        if (list != NULL)
            hst_bind_text(st, 1, list, -1, SQLITE_STATIC);
        hst_bind_int64(st, list != NULL ? 2 : 1, at);
        src = hst_step(st);
    }
    if (src != SQLITE_DONE)
        plat_log(PLAT_LOG_WARN, "idle polls: %s: %s", what,
                 cmc_errmsg()[0] != '\0' ? cmc_errmsg() : "store error");
    hst_finalize(st);
}

/* Adds a value to an array literal {a,b,c} (closed by hub_idle_list_end). Every value is a
 * device id, a nonce, hex or a number, checked before it got here, so none needs quoting. */
static int hub_idle_list_add(struct hub_text *l, const char *v)
{
    int rc = hub_text_add(l, l->len == 0 ? "{" : ",", 1);
    return rc == CMC_OK ? hub_text_add(l, v, strlen(v)) : rc;
}

static int hub_idle_list_end(struct hub_text *l)
{
    return hub_text_add(l, "}", 1);
}

/* Sends one batch and fills its polls' rows; the failure, if any, is every poll's. Runs
 * without the queue's mutex, on a connection only this thread holds. */
static int hub_idle_run(hub_idle *ip, struct hub_idle_conn *c, struct hub_idle_req **batch,
                        size_t n, int64_t now)
{
    struct hub_text ids = {0}, nonces = {0}, pks = {0}, cursors = {0}, stale = {0};
    char num[24];
    int rc = CMC_OK, src;

    for (size_t i = 0; i < n && rc == CMC_OK; i++) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)batch[i]->cursor);
        if ((rc = hub_idle_list_add(&ids, batch[i]->device_id)) == CMC_OK &&
            (rc = hub_idle_list_add(&nonces, batch[i]->nonce)) == CMC_OK &&
            (rc = hub_idle_list_add(&pks, batch[i]->pk_hex)) == CMC_OK)
            rc = hub_idle_list_add(&cursors, num);
    }
    if (rc == CMC_OK && (rc = hub_idle_list_end(&ids)) == CMC_OK &&
        (rc = hub_idle_list_end(&nonces)) == CMC_OK && (rc = hub_idle_list_end(&pks)) == CMC_OK &&
        (rc = hub_idle_list_end(&cursors)) == CMC_OK)
        rc = hub_idle_ready(ip, c);
    if (rc != CMC_OK)
        goto out;
    hst_bind_text(c->st, 1, ids.p, -1, SQLITE_STATIC);
    hst_bind_text(c->st, 2, nonces.p, -1, SQLITE_STATIC);
    hst_bind_text(c->st, 3, pks.p, -1, SQLITE_STATIC);
    hst_bind_text(c->st, 4, cursors.p, -1, SQLITE_STATIC);
    hst_bind_int64(c->st, 5, now);
    hst_bind_int64(c->st, 6, HUB_LEASE_DAYS);
    while ((src = hst_step(c->st)) == SQLITE_ROW) {
        int64_t i = hst_column_int64(c->st, 0) - 1;
        if (i < 0 || (size_t)i >= n)
            continue;
        struct hub_idle_row *o = batch[i]->out;
        o->state = hst_column_int64(c->st, 4) ? HUB_IDLE_YES : HUB_IDLE_REPLAY;
        o->lease_days = hst_column_int64(c->st, 2);
        snprintf(o->name, sizeof o->name, "%s", (const char *)hst_column_text(c->st, 1));
        if (o->state == HUB_IDLE_YES && (hst_column_type(c->st, 3) == SQLITE_NULL ||
                                         hst_column_int64(c->st, 3) < now - 60) &&
            (rc = hub_idle_list_add(&stale, batch[i]->device_id)) != CMC_OK)
            break;
    }
    if (rc == CMC_OK && src != SQLITE_DONE) {
        rc = hst_error(c->db, src, "idle poll");
        hub_idle_drop(c); /* made again at its next use */
        goto out;
    }
    hst_reset(c->st);
    if (rc == CMC_OK && stale.p != NULL && hub_idle_list_end(&stale) == CMC_OK)
        hub_idle_tidy(c, hub_idle_seen_sql, stale.p, now, "last seen not noted");
    /* old nonces go from time to time, as hub_store_nonce drops them on the handle */
    if (rc == CMC_OK && (atomic_fetch_add(&ip->batches, 1) & 1023) == 1023)
        hub_idle_tidy(c, "DELETE FROM seen_nonces WHERE at < ?1", NULL,
                      now - 2 * HUB_NONCE_KEEP, "old request nonces not dropped");
out:
    cmc_free(ids.p);
    cmc_free(nonces.p);
    cmc_free(pks.p);
    cmc_free(cursors.p);
    cmc_free(stale.p);
    return rc;
}

/* Under ip->mu: a free connection, or NULL. */
static struct hub_idle_conn *hub_idle_free_conn(hub_idle *ip)
{
    for (unsigned i = 0; i < ip->n; i++)
        if (!ip->conns[i].busy)
            return &ip->conns[i];
    return NULL;
}

int hub_idle_check(hub_idle *ip, const char *device_id, const char *nonce, int64_t now,
                   const uint8_t pk[CRY_SIGN_PK_BYTES], uint64_t cursor,
                   struct hub_idle_row *out)
{
    struct hub_idle_req me, *batch[HUB_IDLE_BATCH];
    struct hub_idle_conn *c;

    memset(out, 0, sizeof *out);
    memset(&me, 0, sizeof me);
    me.device_id = device_id;
    me.nonce = nonce;
    me.cursor = cursor;
    me.out = out;
    cry_hex(me.pk_hex, pk, CRY_SIGN_PK_BYTES);
    pthread_cond_init(&me.cv, NULL);
    pthread_mutex_lock(&ip->mu);
    if (ip->tail != NULL)
        ip->tail->next = &me;
    else
        ip->head = &me;
    ip->tail = &me;
    while (!me.done) {
        if (ip->head == NULL || (c = hub_idle_free_conn(ip)) == NULL) {
            pthread_cond_wait(&me.cv, &ip->mu);
            continue;
        }
        size_t n = 0;
        while (ip->head != NULL && n < HUB_IDLE_BATCH) {
            batch[n++] = ip->head;
            ip->head = ip->head->next;
        }
        if (ip->head == NULL)
            ip->tail = NULL;
        c->busy = 1;
        pthread_mutex_unlock(&ip->mu);
        int rc = hub_idle_run(ip, c, batch, n, now);
        pthread_mutex_lock(&ip->mu);
        c->busy = 0;
        for (size_t i = 0; i < n; i++) {
            batch[i]->rc = rc;
            if (rc != CMC_OK)
                batch[i]->out->state = HUB_IDLE_NOT;
            batch[i]->done = 1;
            if (batch[i] != &me)
                pthread_cond_signal(&batch[i]->cv);
        }
        /* the connection is free: whoever queued meanwhile takes the next batch */
        if (ip->head != NULL && ip->head != &me)
            pthread_cond_signal(&ip->head->cv);
    }
    pthread_mutex_unlock(&ip->mu);
    pthread_cond_destroy(&me.cv);
    atomic_fetch_add(&ip->checked, 1);
    if (out->state == HUB_IDLE_YES)
        atomic_fetch_add(&ip->idle, 1);
    return me.rc;
}

void hub_idle_counts(hub_idle *ip, uint64_t *checked, uint64_t *idle)
{
    *checked = ip != NULL ? atomic_load(&ip->checked) : 0;
    *idle = ip != NULL ? atomic_load(&ip->idle) : 0;
}
