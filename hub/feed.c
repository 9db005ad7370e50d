/*
 * feed.c - what each device should hold, and the bundle pages that bring it there.
 *
 * A device's view: the plans of its scope (all, region:R, team:T's caseload, care_home:H)
 * whose consent stands, at the published version - or, for a clinician device with a team
 * scope, at the newest version whatever its status. Urgent-care devices only ever get
 * published versions: the choice is made here, from the version's recorded status, and
 * nothing else puts a plan in a bundle.
 *
 * Holdings: table `holdings` records, per device (its number in `holders`) and plan (its
 * `num`), the version the newest page gave it (0 = purged) and that page's to_cursor. A pull
 * names the cursor C to continue from and the cursor A <= C the device has committed
 * (`applied`; C when absent): it proves the device applied every page up to A. Pages beyond
 * A are unproven - a device may fetch the next page while it applies one, or commit several
 * pages in one transaction. Table `unproven` names each such page and the plans it carried,
 * and each row an unproven page wrote keeps the holding it replaced (prev_version,
 * prev_cursor), which is always a proven one: a page never carries a plan that an unproven
 * page carries (it ends before that plan; the device proves the earlier page, then gets it).
 * A pull from C shows pages beyond C were never applied: their rows go back to the holding
 * they replaced, or away when there was none. Pages at or below A are proven and forgotten.
 * Each holding is one row with integer keys, so a page of puts costs one small insert per
 * plan and nothing needs compacting later.
 *
 * Purges: table `purges` keeps every purge a device was sent until the device acknowledges
 * it (POST /v1/ack); each page repeats the unacknowledged ones (purges are idempotent on the
 * device), so a device that lost the page or crashed before destroying the plan is asked
 * again, and `plan show` can say where a withdrawn plan still is.
 *
 * Rollback: a device's cursor only moves forward (a pull from C proves C). A pull from a
 * cursor below the one it already proved means the replica was restored from an older copy:
 * the holdings beyond that cursor are dropped like unapplied pages (so every plan changed
 * since comes again as a put), every purge first sent after that cursor is reopened (so it is
 * sent again even if the newer copy had acknowledged it), and the answer is flagged ROLLBACK.
 *
 * Cost: the statements of a pull are kept prepared on the handle (hub_stmt), an idle poll
 * writes nothing and allocates only its bundle, and a delta is computed once per (plan, base
 * version, target version) and then served from a small cache to every device on that base
 * (stored versions never change, so a cached delta never goes stale).
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hub_view {
    int clinician; /* role clinician */
    char kind[16];
    char value[HUB_SCOPE_MAX + 1];
    const char *device_id;
    sqlite3_stmt *caseload; /* team scope: membership */
};

/* Columns of a plan row as hub_view_target reads them (the scan, the repeated purges and
 * hub_device_target select them in this order). */
#define HUB_PLAN_COLS                                                                      \
    "p.plan_id, p.nhs, p.latest, p.latest_status, p.published, p.region, p.team,"          \
    " p.care_home, p.withdrawn"

/* The device's holder number: 0 until it is first sent something. */
struct hub_holder {
    int64_t num;
};

struct hub_sent {
    int64_t plan;       /* plans.num */
    char plan_id[PLAN_ID_LEN + 1];
    int64_t version;    /* 0: a purge */
    uint64_t seq;       /* purge: the change it reflects */
    const char *reason; /* purge: a static reason name */
};

/* The plans whose unacknowledged purges a page repeats, sorted for bsearch, so the scan
 * does not purge the same plan twice in one page. */
struct hub_nags {
    char (*ids)[PLAN_ID_LEN + 1];
    size_t n, cap;
};

/* ---- the delta cache ------------------------------------------------------------------- */

/* Direct-mapped: a new delta takes its slot from whatever was there. Bounded in entries and
 * bytes; when the bytes would pass the cap the whole cache is emptied (a burst of changes
 * refills it with what devices ask for now). */
#define HUB_DELTA_SLOTS 4096
#define HUB_DELTA_ENTRY_MAX (64u * 1024u)
#define HUB_DELTA_BYTES_MAX (8u * 1024u * 1024u)

struct hub_delta_entry {
    char plan_id[PLAN_ID_LEN + 1]; /* "" = empty slot */
    int64_t base, target;
    uint8_t *delta; /* plan_change_pack of base -> target */
    size_t len;
    size_t put_len; /* the whole target version's packed length */
};

struct hub_delta_cache {
    struct hub_delta_entry slot[HUB_DELTA_SLOTS];
    size_t bytes;
};

static struct hub_delta_entry *hub_delta_slot(hub *h, const char *plan_id, int64_t base,
                                              int64_t target)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a over the key */
    if (h->deltas == NULL)
        return NULL;
    for (const char *c = plan_id; *c != '\0'; c++)
        x = (x ^ (uint8_t)*c) * 1099511628211ull;
    x = (x ^ (uint64_t)base) * 1099511628211ull;
    x = (x ^ (uint64_t)target) * 1099511628211ull;
    return &h->deltas->slot[(x >> 20) % HUB_DELTA_SLOTS];
}

static const struct hub_delta_entry *hub_delta_find(hub *h, const char *plan_id, int64_t base,
                                                    int64_t target)
{
    const struct hub_delta_entry *e = hub_delta_slot(h, plan_id, base, target);
    if (e == NULL || e->delta == NULL || e->base != base || e->target != target ||
        strcmp(e->plan_id, plan_id) != 0)
        return NULL;
    return e;
}

static void hub_delta_clear(struct hub_delta_entry *e)
{
    cmc_free(e->delta);
    memset(e, 0, sizeof *e);
}

/* Best effort: a delta that cannot be kept (no memory, too large) is simply not cached. */
static void hub_delta_keep(hub *h, const char *plan_id, int64_t base, int64_t target,
                           const uint8_t *delta, size_t len, size_t put_len)
{
    struct hub_delta_entry *e;
    uint8_t *copy;
    if (len > HUB_DELTA_ENTRY_MAX)
        return;
    if (h->deltas == NULL && (h->deltas = cmc_calloc(1, sizeof *h->deltas)) == NULL)
        return;
    if (h->deltas->bytes + len > HUB_DELTA_BYTES_MAX) {
        for (size_t i = 0; i < HUB_DELTA_SLOTS; i++)
            hub_delta_clear(&h->deltas->slot[i]);
        h->deltas->bytes = 0;
    }
    if ((copy = cmc_malloc(len > 0 ? len : 1)) == NULL)
        return;
    memcpy(copy, delta, len);
    e = hub_delta_slot(h, plan_id, base, target);
    h->deltas->bytes -= e->len;
    hub_delta_clear(e);
    snprintf(e->plan_id, sizeof e->plan_id, "%s", plan_id);
    e->base = base;
    e->target = target;
    e->delta = copy;
    e->len = len;
    e->put_len = put_len;
    h->deltas->bytes += len;
}

void hub_feed_cache_free(hub *h)
{
    if (h == NULL || h->deltas == NULL)
        return;
    for (size_t i = 0; i < HUB_DELTA_SLOTS; i++)
        cmc_free(h->deltas->slot[i].delta);
    cmc_free(h->deltas);
    h->deltas = NULL;
}

/* ---- views ----------------------------------------------------------------------------- */

/* The version of a plan row the device should hold (0: none, with the purge reason). */
static int hub_view_target(hub *h, struct hub_view *v, sqlite3_stmt *row, int64_t *target,
                           const char **reason)
{
    const char *nhs = hub_col_text(row, 1);
    int64_t latest = sqlite3_column_int64(row, 2);
    int64_t published = sqlite3_column_int64(row, 4);
    int in_scope;

    *target = 0;
    *reason = NULL;
    if (sqlite3_column_int(row, 8)) {
        *reason = "consent_withdrawn";
        return CMC_OK;
    }
    if (strcmp(v->kind, "all") == 0) {
        in_scope = 1;
    } else if (strcmp(v->kind, "region") == 0) {
        in_scope = strcmp(hub_col_text(row, 5), v->value) == 0;
    } else if (strcmp(v->kind, "care_home") == 0) {
        in_scope = strcmp(hub_col_text(row, 7), v->value) == 0;
    } else {
        sqlite3_reset(v->caseload);
        sqlite3_bind_text(v->caseload, 2, nhs, -1, SQLITE_TRANSIENT);
        int src = sqlite3_step(v->caseload);
        sqlite3_reset(v->caseload);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return hub_db_fail(h, src, "caseload");
        in_scope = src == SQLITE_ROW;
    }
    if (!in_scope) {
        *reason = "left_scope";
        return CMC_OK;
    }
    if (v->clinician && strcmp(v->kind, "team") == 0)
        *target = latest;
    else
        *target = published;
    if (*target == 0)
        *reason = "not_shared";
    return CMC_OK;
}

/* ---- packing ops ----------------------------------------------------------------------- */

/* Every op of a page is packed into one mp_writer whose buffer is reused op after op. */
static void hub_op_begin(struct mp_writer *op)
{
    op->len = 0;
}

static int hub_op_check(const struct mp_writer *op)
{
    if (op->err != CMC_OK)
        return cmc_fail(op->err, "bundle page: %s while packing an op",
                        op->err == CMC_ERR_NOMEM ? "out of memory" : "value too large");
    return CMC_OK;
}

/* Steps the kept version statement onto a stored version's packed body; the body stays
 * valid until the statement is reset. */
static int hub_version_body(hub *h, const char *plan_id, int64_t version, sqlite3_stmt **out,
                            const uint8_t **body, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc, src;
    *body = NULL;
    *len = 0;
    if ((rc = hub_stmt(h, HUB_STMT_VERSION,
                       "SELECT body FROM versions WHERE plan_id = ?1 AND version = ?2", &st)) !=
        CMC_OK)
        return rc;
    *out = st;
    sqlite3_bind_text(st, 1, plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *body = sqlite3_column_blob(st, 0);
        *len = (size_t)sqlite3_column_bytes(st, 0);
        return CMC_OK;
    }
    sqlite3_reset(st);
    if (src == SQLITE_DONE)
        return cmc_fail(CMC_ERR_NOT_FOUND, "plan %s has no version %lld", plan_id,
                        (long long)version);
    return hub_db_fail(h, src, "plan version");
}

static void hub_write_put(struct mp_writer *op, const char *plan_id, uint64_t seq,
                          const uint8_t *body, size_t len)
{
    hub_op_begin(op);
    mp_write_array(op, 4);
    mp_write_uint(op, BUNDLE_OP_PUT);
    mp_write_cstr(op, plan_id);
    mp_write_uint(op, seq);
    mp_write_raw(op, body, len);
}

static void hub_write_delta(struct mp_writer *op, const char *plan_id, uint64_t seq,
                            int64_t base, const uint8_t *delta, size_t len)
{
    hub_op_begin(op);
    mp_write_array(op, 5);
    mp_write_uint(op, BUNDLE_OP_DELTA);
    mp_write_cstr(op, plan_id);
    mp_write_uint(op, seq);
    mp_write_int(op, base);
    mp_write_raw(op, delta, len);
}

/* The change from the held version to the target one, packed (cmc_free), and the target's
 * packed length: computed from the stored bodies. */
static int hub_delta_compute(hub *h, const char *plan_id, int64_t held, int64_t target,
                             uint8_t **delta, size_t *delta_len, size_t *put_len)
{
    struct plan from, to;
    struct plan_change c;
    sqlite3_stmt *st = NULL;
    const uint8_t *body;
    size_t len;
    int rc;

    plan_init(&from);
    plan_init(&to);
    plan_change_init(&c);
    if ((rc = hub_version_body(h, plan_id, target, &st, &body, &len)) != CMC_OK)
        goto out;
    rc = plan_unpack(body, len, &to);
    sqlite3_reset(st);
    *put_len = len;
    if (rc != CMC_OK)
        goto out;
    if ((rc = hub_version_body(h, plan_id, held, &st, &body, &len)) != CMC_OK)
        goto out;
    rc = plan_unpack(body, len, &from);
    sqlite3_reset(st);
    if (rc != CMC_OK)
        goto out;
    if ((rc = plan_change_diff(&from, &to, &c)) != CMC_OK)
        goto out;
    rc = plan_change_pack(&c, delta, delta_len);
out:
    plan_free(&from);
    plan_free(&to);
    plan_change_free(&c);
    return rc;
}

/* Packs a put into `op`: a delta against the held version when that is smaller, else the
 * whole plan, copied straight from the stored body. */
static int hub_pack_put(hub *h, struct mp_writer *op, const char *plan_id, uint64_t seq,
                        int64_t held, int64_t target)
{
    sqlite3_stmt *st = NULL;
    const uint8_t *body;
    size_t len;
    int rc;

    if (held > 0 && held != target) {
        const struct hub_delta_entry *e = hub_delta_find(h, plan_id, held, target);
        if (e != NULL && e->len < e->put_len) {
            hub_write_delta(op, plan_id, seq, held, e->delta, e->len);
            return hub_op_check(op);
        }
        if (e == NULL) {
            uint8_t *delta = NULL;
            size_t delta_len = 0, put_len = 0;
            int smaller;
            if ((rc = hub_delta_compute(h, plan_id, held, target, &delta, &delta_len,
                                        &put_len)) != CMC_OK)
                return rc;
            hub_delta_keep(h, plan_id, held, target, delta, delta_len, put_len);
            smaller = delta_len < put_len;
            if (smaller)
                hub_write_delta(op, plan_id, seq, held, delta, delta_len);
            cmc_free(delta);
            if (smaller)
                return hub_op_check(op);
        }
    }
    if ((rc = hub_version_body(h, plan_id, target, &st, &body, &len)) != CMC_OK)
        return rc;
    hub_write_put(op, plan_id, seq, body, len);
    sqlite3_reset(st);
    return hub_op_check(op);
}

static void hub_write_purge(struct mp_writer *op, const char *plan_id, uint64_t seq,
                            const char *reason)
{
    hub_op_begin(op);
    mp_write_array(op, 4);
    mp_write_uint(op, BUNDLE_OP_PURGE);
    mp_write_cstr(op, plan_id);
    mp_write_uint(op, seq);
    mp_write_cstr(op, reason);
}

static int hub_step_done(hub *h, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return hub_db_fail(h, src, what);
    return CMC_OK;
}

/* ---- holdings -------------------------------------------------------------------------- */

static int hub_holder_get(hub *h, const char *device_id, struct hub_holder *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;
    memset(out, 0, sizeof *out);
    if ((rc = hub_stmt(h, HUB_STMT_HOLDER, "SELECT num FROM holders WHERE device_id = ?1",
                       &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        out->num = sqlite3_column_int64(st, 0);
    else if (src != SQLITE_DONE)
        rc = hub_db_fail(h, src, "holdings");
    sqlite3_reset(st);
    return rc;
}

/* Puts the rows of one page that was never applied back to the holding each replaced (when
 * that one is at or below `cursor`), or away. */
static int hub_page_restore(hub *h, int64_t dev, const char *plans, uint64_t cursor)
{
    static const struct {
        int id;
        const char *sql;
    } steps[] = {
        { HUB_STMT_PAGE_RESTORE,
          "UPDATE holdings SET version = prev_version, to_cursor = prev_cursor,"
          " prev_version = NULL, prev_cursor = NULL WHERE dev = ?1"
          " AND plan IN (SELECT value FROM json_each(?2)) AND to_cursor > ?3"
          " AND prev_version IS NOT NULL AND prev_cursor <= ?3" },
        { HUB_STMT_PAGE_DROP,
          "DELETE FROM holdings WHERE dev = ?1 AND plan IN (SELECT value FROM json_each(?2))"
          " AND to_cursor > ?3" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = hub_stmt(h, steps[i].id, steps[i].sql, &st);
        if (rc != CMC_OK)
            return rc;
        sqlite3_bind_int64(st, 1, dev);
        sqlite3_bind_text(st, 2, plans, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)cursor);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* Settles the device's unproven pages and its cursor before a page is built from `cursor`
 * for a device that has committed `applied`: a page beyond the cursor was never applied, so
 * its rows go back to the holding each replaced (when that one is at or below the cursor) or
 * away; a page at or below `applied` is proven; one in between is still on its way (fetched
 * ahead, or in a transaction that spans pages). After a rollback (`applied` below the last
 * proven cursor) the rows beyond it go too. An idle poll (nothing unproven, the same cursor)
 * writes nothing. */
static int hub_holdings_commit_point(hub *h, const char *device_id, struct hub_holder *hd,
                                     uint64_t prev, uint64_t cursor, uint64_t applied)
{
    sqlite3_stmt *st = NULL, *pages = NULL;
    struct unproven_page {
        uint64_t to;
        char *plans;
    } *list = NULL;
    size_t n = 0, cap = 0;
    int rollback = applied < prev, rc = CMC_OK, src;

    if (hd->num != 0) {
        /* newest first, so a plan in two lost pages ends at what it held before both */
        if ((rc = hub_stmt(h, HUB_STMT_PAGES, "SELECT to_cursor, plans FROM unproven"
                                              " WHERE dev = ?1 ORDER BY to_cursor DESC",
                           &pages)) != CMC_OK)
            return rc;
        sqlite3_bind_int64(pages, 1, hd->num);
        while ((src = sqlite3_step(pages)) == SQLITE_ROW) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct unproven_page *nl = cmc_realloc(list, ncap * sizeof *nl);
                if (nl == NULL) {
                    rc = cmc_fail(CMC_ERR_NOMEM, "holdings");
                    break;
                }
                list = nl;
                cap = ncap;
            }
            list[n].to = (uint64_t)sqlite3_column_int64(pages, 0);
            if ((list[n].plans = cmc_strdup(hub_col_text(pages, 1))) == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "holdings");
                break;
            }
            n++;
        }
        sqlite3_reset(pages);
        if (rc == CMC_OK && src != SQLITE_DONE)
            rc = hub_db_fail(h, src, "holdings");
        for (size_t i = 0; rc == CMC_OK && i < n; i++) {
            if (list[i].to > cursor)
                rc = hub_page_restore(h, hd->num, list[i].plans, cursor);
            if (rc != CMC_OK || !(list[i].to > cursor || list[i].to <= applied || rollback))
                continue;
            if ((rc = hub_stmt(h, HUB_STMT_PAGE_FORGET, "DELETE FROM unproven WHERE dev = ?1"
                                                        " AND to_cursor = ?2", &st)) != CMC_OK)
                break;
            sqlite3_bind_int64(st, 1, hd->num);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)list[i].to);
            rc = hub_step_done(h, st, "holdings");
        }
        for (size_t i = 0; i < n; i++)
            cmc_free(list[i].plans);
        cmc_free(list);
        if (rc != CMC_OK)
            return rc;
    }
    if (rollback && hd->num != 0) {
        if ((rc = hub_stmt(h, HUB_STMT_ROLLBACK_DROP,
                           "DELETE FROM holdings WHERE dev = ?1 AND to_cursor > ?2", &st)) !=
            CMC_OK)
            return rc;
        sqlite3_bind_int64(st, 1, hd->num);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)applied);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
    }
    if (applied != prev) {
        if ((rc = hub_stmt(h, HUB_STMT_CURSOR, "UPDATE devices SET cursor = ?2"
                                               " WHERE device_id = ?1", &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)applied);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* A growing text buffer for the page's plan list. */
struct hub_text {
    char *p;
    size_t len, cap;
};

static int hub_text_add(struct hub_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *np = cmc_realloc(t->p, cap);
        if (np == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "bundle page");
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return CMC_OK;
}

/* Records what the page gave the device: its holdings (each row keeping the one it replaced
 * until the page is proven), the page itself as one of the device's unproven ones, and for purges an
 * open purge record (a new purge of a plan restarts its acknowledgement); a put closes any
 * purge record of the plan, since the device is meant to hold it again. */
static int hub_record_sent(hub *h, const char *device_id, struct hub_holder *hd,
                           const struct hub_sent *sent, size_t n, uint64_t to_cursor)
{
    sqlite3_stmt *st = NULL, *held = NULL;
    struct hub_text plans = {NULL, 0, 0};
    int64_t now = plat_wall_now();
    int has_purges = 0, rc, src;
    char num[32];

    if (n == 0)
        return CMC_OK;
    if (hd->num == 0) {
        if ((rc = hub_stmt(h, HUB_STMT_HOLDER_ADD, "INSERT INTO holders(device_id) VALUES(?1)",
                           &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
        hd->num = sqlite3_last_insert_rowid(h->db);
    }
    /* Closing purge records costs a look-up per put; a device without any skips them. */
    if ((rc = hub_stmt(h, HUB_STMT_HAS_PURGES, "SELECT 1 FROM purges WHERE device_id = ?1"
                                               " LIMIT 1", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return hub_db_fail(h, src, "purges");
    has_purges = src == SQLITE_ROW;

    if ((rc = hub_stmt(h, HUB_STMT_HOLDING_PUT,
                       "INSERT INTO holdings(dev, plan, version, to_cursor) VALUES(?1, ?2, ?3, ?4)"
                       " ON CONFLICT(dev, plan) DO UPDATE SET prev_version = version,"
                       " prev_cursor = to_cursor, version = excluded.version,"
                       " to_cursor = excluded.to_cursor", &held)) != CMC_OK)
        return rc;
    sqlite3_bind_int64(held, 1, hd->num);
    sqlite3_bind_int64(held, 4, (sqlite3_int64)to_cursor);
    if ((rc = hub_text_add(&plans, "[", 1)) != CMC_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof num, "%s%lld", i > 0 ? "," : "", (long long)sent[i].plan);
        if ((rc = hub_text_add(&plans, num, (size_t)k)) != CMC_OK)
            goto out;
        sqlite3_bind_int64(held, 2, sent[i].plan);
        sqlite3_bind_int64(held, 3, sent[i].version);
        if ((rc = hub_step_done(h, held, "holdings")) != CMC_OK)
            goto out;
        if (sent[i].version == 0) {
            if ((rc = hub_stmt(h, HUB_STMT_PURGE_OPEN,
                               "INSERT OR REPLACE INTO purges(device_id, plan_id, seq, reason,"
                               " cursor, sent, acked) VALUES(?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                               &st)) != CMC_OK)
                goto out;
            sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, sent[i].plan_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)sent[i].seq);
            sqlite3_bind_text(st, 4, sent[i].reason != NULL ? sent[i].reason : "not_shared", -1,
                              SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, (sqlite3_int64)to_cursor);
            sqlite3_bind_int64(st, 6, now);
            if ((rc = hub_step_done(h, st, "purges")) != CMC_OK)
                goto out;
            has_purges = 1;
        } else if (has_purges) {
            if ((rc = hub_stmt(h, HUB_STMT_PURGE_CLOSE,
                               "DELETE FROM purges WHERE device_id = ?1 AND plan_id = ?2",
                               &st)) != CMC_OK)
                goto out;
            sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, sent[i].plan_id, -1, SQLITE_STATIC);
            if ((rc = hub_step_done(h, st, "purges")) != CMC_OK)
                goto out;
        }
    }
    if ((rc = hub_text_add(&plans, "]", 1)) != CMC_OK)
        goto out;
    if ((rc = hub_stmt(h, HUB_STMT_PAGE_ADD, "INSERT OR REPLACE INTO unproven(dev, to_cursor,"
                                             " plans) VALUES(?1, ?2, ?3)", &st)) != CMC_OK)
        goto out;
    sqlite3_bind_int64(st, 1, hd->num);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)to_cursor);
    sqlite3_bind_text(st, 3, plans.p, (int)plans.len, SQLITE_STATIC);
    rc = hub_step_done(h, st, "holdings");
out:
    sqlite3_reset(held);
    cmc_free(plans.p);
    return rc;
}

/* A restored replica: reopen every purge first sent in a page the restored copy never
 * applied, and note when it happened. Logged by device id only. */
static int hub_note_rollback(hub *h, const char *device_id, uint64_t proven, uint64_t cursor)
{
    static const char *const sql[] = {
        "UPDATE purges SET acked = NULL WHERE device_id = ?1 AND cursor > ?2",
        "UPDATE devices SET last_rollback = ?3, rollbacks = rollbacks + 1, proven = ?2"
        " WHERE device_id = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = hub_db_prepare(h, sql[i], &st);
        if (rc != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)cursor);
        sqlite3_bind_int64(st, 3, plat_wall_now());
        rc = hub_step_done(h, st, "rollback");
        sqlite3_finalize(st);
        if (rc != CMC_OK)
            return rc;
    }
    plat_log(PLAT_LOG_WARN, "device %s pulled from cursor %llu after proving %llu: its replica was"
             " restored from an older copy; repairing it", device_id, (unsigned long long)cursor,
             (unsigned long long)proven);
    return CMC_OK;
}

static void hub_write_policy(struct mp_writer *op, uint64_t seq, int64_t lease_days)
{
    hub_op_begin(op);
    mp_write_array(op, 3);
    mp_write_uint(op, BUNDLE_OP_POLICY);
    mp_write_uint(op, seq);
    mp_write_int(op, lease_days);
}

static int hub_nag_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int hub_nagged(const struct hub_nags *nags, const char *plan_id)
{
    return nags->n > 0 &&
           bsearch(plan_id, nags->ids, nags->n, sizeof nags->ids[0], hub_nag_cmp) != NULL;
}

/* A purge record's cursor is the lowest to_cursor of the pages that carried it, so that an
 * acknowledgement (which follows the commit of one of them) never claims more than the device
 * committed, and a rollback below any of them reopens it. */
static int hub_nags_carried(hub *h, const char *device_id, const struct hub_nags *nags,
                            uint64_t to_cursor)
{
    sqlite3_stmt *st = NULL;
    int rc = CMC_OK;
    if (nags->n == 0)
        return CMC_OK;
    if ((rc = hub_stmt(h, HUB_STMT_PURGE_CARRIED, "UPDATE purges SET cursor = ?3"
                                                  " WHERE device_id = ?1 AND plan_id = ?2"
                                                  " AND cursor > ?3", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)to_cursor);
    for (size_t i = 0; i < nags->n && rc == CMC_OK; i++) {
        sqlite3_bind_text(st, 2, nags->ids[i], -1, SQLITE_STATIC);
        rc = hub_step_done(h, st, "purges");
    }
    return rc;
}

static int hub_nags_add(struct hub_nags *nags, const char *plan_id)
{
    if (nags->n == nags->cap) {
        size_t cap = nags->cap ? nags->cap * 2 : 16;
        if (cap > HUB_NAG_MAX)
            cap = HUB_NAG_MAX;
        void *ids = cmc_realloc(nags->ids, cap * sizeof nags->ids[0]);
        if (ids == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "bundle page");
        nags->ids = ids;
        nags->cap = cap;
    }
    snprintf(nags->ids[nags->n], sizeof nags->ids[0], "%s", plan_id);
    nags->n++;
    return CMC_OK;
}

/* Adds the device's unacknowledged purges (oldest first, at most HUB_NAG_MAX) whose plan is
 * still out of its view, and remembers which plans they name. */
static int hub_add_nags(hub *h, struct hub_view *v, bundle_writer *w, struct mp_writer *op,
                        struct hub_nags *nags)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = hub_stmt(h, HUB_STMT_NAGS, "SELECT " HUB_PLAN_COLS ", pu.seq, pu.reason"
                                         " FROM purges pu JOIN plans p ON p.plan_id = pu.plan_id"
                                         " WHERE pu.device_id = ?1 AND pu.acked IS NULL"
                                         " ORDER BY pu.seq LIMIT ?2", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, v->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, HUB_NAG_MAX);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t target = 0;
        const char *reason = NULL;
        if ((rc = hub_view_target(h, v, st, &target, &reason)) != CMC_OK)
            goto out;
        if (target > 0)
            continue; /* in the view again: the scan puts it back */
        hub_write_purge(op, hub_col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 9),
                        hub_col_text(st, 10));
        if ((rc = hub_op_check(op)) != CMC_OK)
            goto out;
        if ((rc = bundle_writer_add_raw(w, op->buf, op->len)) != CMC_OK)
            goto out;
        if ((rc = hub_nags_add(nags, hub_col_text(st, 0))) != CMC_OK)
            goto out;
    }
    if (src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "purges");
        goto out;
    }
    if (nags->n > 1)
        qsort(nags->ids, nags->n, sizeof nags->ids[0], hub_nag_cmp);
    rc = CMC_OK;
out:
    sqlite3_reset(st);
    return rc;
}

/* The plans a pull looks at: every plan stamped after the cursor, in seq order, straight
 * off the seq index (no sort), with the device's holding of each (one primary-key look-up
 * in the same statement), so a page reads only as far as it fills and a snapshot reads
 * each plan once over all its pages; the view decides per plan. An idle poll reads an empty
 * index range. */
static const char hub_scan_sql[] =
    "SELECT " HUB_PLAN_COLS ", p.seq, p.num, h.version, h.to_cursor FROM plans p INDEXED BY plans_seq"
    " LEFT JOIN holdings h ON h.dev = ?2 AND h.plan = p.num WHERE p.seq > ?1 ORDER BY p.seq";

int hub_pull(hub *h, const char *device_id, uint64_t cursor, uint64_t applied, size_t budget,
             uint8_t **out, size_t *len)
{
    struct hub_device_info dev;
    struct hub_view v;
    struct hub_holder hd;
    struct hub_nags nags = {NULL, 0, 0};
    struct bundle_header hdr;
    struct mp_writer op;
    bundle_writer *w = NULL;
    sqlite3_stmt *scan = NULL;
    struct hub_sent *sent = NULL;
    size_t n_sent = 0, cap_sent = 0, n_scanned_ops = 0;
    uint64_t head = 0, last_seq = cursor;
    const char *value;
    int more = 0, rollback = 0, rc, src, in_tx = 0;

    *out = NULL;
    *len = 0;
    memset(&v, 0, sizeof v);
    memset(&hd, 0, sizeof hd);
    memset(&hdr, 0, sizeof hdr);
    mp_writer_init(&op);
    if (budget == 0)
        budget = HUB_BUDGET_DEFAULT;
    if (budget > HUB_BUDGET_MAX)
        budget = HUB_BUDGET_MAX;
    if (budget < HUB_BUDGET_MIN)
        budget = HUB_BUDGET_MIN;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    in_tx = 1;
    /* Read inside the transaction, so the proven cursor compared below is the current one
     * even when two pulls of the same device race. */
    if ((rc = hub_device_get(h, device_id, &dev)) != CMC_OK)
        goto out;
    if ((rc = hub_scope_parse(dev.scope, v.kind, &value)) != CMC_OK)
        goto out;
    snprintf(v.value, sizeof v.value, "%s", value);
    v.clinician = strcmp(dev.role, "clinician") == 0;
    v.device_id = device_id;
    if ((rc = plan_uuid_bytes(device_id, hdr.device_id)) != CMC_OK)
        goto out;
    if ((rc = hub_head_seq(h, &head)) != CMC_OK)
        goto out;
    if (cursor > head) {
        rc = cmc_fail(CMC_ERR_INVALID, "cursor %llu is beyond the hub's change log (%llu)",
                      (unsigned long long)cursor, (unsigned long long)head);
        goto out;
    }
    if (applied > cursor) {
        rc = cmc_fail(CMC_ERR_INVALID, "applied %llu is beyond the cursor %llu",
                      (unsigned long long)applied, (unsigned long long)cursor);
        goto out;
    }
    if (applied < dev.proven) {
        rollback = 1;
        if ((rc = hub_note_rollback(h, device_id, dev.proven, applied)) != CMC_OK)
            goto out;
    }
    if ((rc = hub_holder_get(h, device_id, &hd)) != CMC_OK)
        goto out;
    if ((rc = hub_holdings_commit_point(h, device_id, &hd, dev.cursor, cursor, applied)) !=
        CMC_OK)
        goto out;
    if ((rc = bundle_writer_new(&w)) != CMC_OK)
        goto out;
    hdr.protocol = BUNDLE_PROTOCOL;
    hdr.from_cursor = cursor;
    hdr.hub_time = plat_wall_now();

    /* Every bundle opens with the lease in force, so the device always knows the current
     * policy, idle polls and wipe orders included. */
    hub_write_policy(&op, head, dev.lease_days);
    if ((rc = hub_op_check(&op)) != CMC_OK)
        goto out;
    if ((rc = bundle_writer_add_raw(w, op.buf, op.len)) != CMC_OK)
        goto out;

    if (dev.wipe) {
        /* The wipe order is the whole answer; the cursor does not move. */
        hub_op_begin(&op);
        mp_write_array(&op, 2);
        mp_write_uint(&op, BUNDLE_OP_WIPE);
        mp_write_uint(&op, head);
        if ((rc = hub_op_check(&op)) != CMC_OK)
            goto out;
        if ((rc = bundle_writer_add_raw(w, op.buf, op.len)) != CMC_OK)
            goto out;
        hdr.to_cursor = cursor;
        goto finish;
    }

    if (strcmp(v.kind, "team") == 0) {
        if ((rc = hub_stmt(h, HUB_STMT_CASELOAD, "SELECT 1 FROM caseload WHERE team = ?1"
                                                 " AND nhs = ?2", &v.caseload)) != CMC_OK)
            goto out;
        sqlite3_bind_text(v.caseload, 1, v.value, -1, SQLITE_STATIC);
    }
    /* Purges the device has not acknowledged yet go again, ahead of the new changes. */
    if ((rc = hub_add_nags(h, &v, w, &op, &nags)) != CMC_OK)
        goto out;
    if ((rc = hub_stmt(h, HUB_STMT_SCAN, hub_scan_sql, &scan)) != CMC_OK)
        goto out;
    sqlite3_bind_int64(scan, 1, (sqlite3_int64)cursor);
    sqlite3_bind_int64(scan, 2, hd.num);

    while ((src = sqlite3_step(scan)) == SQLITE_ROW) {
        const char *plan_id = hub_col_text(scan, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(scan, 9);
        int64_t target = 0, held = sqlite3_column_int64(scan, 11); /* NULL: 0, none */
        /* the holding came from a page the device has not proven yet */
        int unproven = sqlite3_column_type(scan, 12) != SQLITE_NULL &&
                       (uint64_t)sqlite3_column_int64(scan, 12) > applied;
        const char *reason = NULL;
        int write_op = 1, has_op = 0;

        if ((rc = hub_view_target(h, &v, scan, &target, &reason)) != CMC_OK)
            goto out;
        if (target > 0 && held != target) {
            if ((rc = hub_pack_put(h, &op, plan_id, seq, held, target)) != CMC_OK)
                goto out;
            has_op = 1;
        } else if (target == 0 && held > 0) {
            hub_write_purge(&op, plan_id, seq, reason);
            if ((rc = hub_op_check(&op)) != CMC_OK)
                goto out;
            has_op = 1;
            /* Already in this page as a repeated purge: recorded, not sent twice. */
            write_op = !hub_nagged(&nags, plan_id);
        }
        if (has_op && unproven) {
            /* The page ends before it (even with nothing in it): one unproven page per plan,
             * so a lost page restores exactly the proven holding. The device proves the
             * earlier page with its next pull and gets the plan then. */
            more = 1;
            break;
        }
        if (has_op) {
            /* The cut counts only this scan's ops, so a page full of repeated purges still
             * makes progress. */
            if (write_op && n_scanned_ops > 0 && bundle_writer_raw_size(w) + op.len > budget) {
                more = 1;
                break;
            }
            if (write_op && bundle_writer_count(w) >= BUNDLE_MAX_OPS) {
                more = 1;
                break;
            }
            if (write_op) {
                if ((rc = bundle_writer_add_raw(w, op.buf, op.len)) != CMC_OK)
                    goto out;
                n_scanned_ops++;
            }
            if (n_sent == cap_sent) {
                size_t ncap = cap_sent ? cap_sent * 2 : 64;
                struct hub_sent *ns = cmc_realloc(sent, ncap * sizeof *ns);
                if (ns == NULL) {
                    rc = cmc_fail(CMC_ERR_NOMEM, "bundle page");
                    goto out;
                }
                sent = ns;
                cap_sent = ncap;
            }
            sent[n_sent].plan = sqlite3_column_int64(scan, 10);
            snprintf(sent[n_sent].plan_id, sizeof sent[n_sent].plan_id, "%s", plan_id);
            sent[n_sent].version = target;
            sent[n_sent].seq = seq;
            sent[n_sent].reason = reason;
            n_sent++;
        }
        last_seq = seq;
    }
    sqlite3_reset(scan);
    if (!more && src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "pull");
        goto out;
    }
    hdr.to_cursor = more ? last_seq : head;
    if ((rc = hub_record_sent(h, device_id, &hd, sent, n_sent, hdr.to_cursor)) != CMC_OK)
        goto out;
    if ((rc = hub_nags_carried(h, device_id, &nags, hdr.to_cursor)) != CMC_OK)
        goto out;
    hdr.flags = (uint16_t)((more ? BUNDLE_FLAG_MORE : 0) | (cursor == 0 ? BUNDLE_FLAG_SNAPSHOT : 0));

finish:
    if (rollback)
        hdr.flags = (uint16_t)(hdr.flags | BUNDLE_FLAG_ROLLBACK);
    if ((rc = bundle_writer_finish(w, &hdr, h->sk, out, len)) != CMC_OK)
        goto out;
    rc = hub_tx_commit(h);
    if (rc != CMC_OK) {
        cmc_free(*out);
        *out = NULL;
        *len = 0;
        goto out;
    }
    in_tx = 0;
out:
    if (in_tx)
        hub_tx_rollback(h);
    mp_writer_discard(&op);
    bundle_writer_free(w);
    cmc_free(nags.ids);
    cmc_free(sent);
    return rc;
}

int hub_device_target(hub *h, const struct hub_device_info *dev, const char *plan_id,
                      int64_t *target, const char **reason)
{
    struct hub_view v;
    sqlite3_stmt *row = NULL;
    const char *value;
    int rc, src;

    memset(&v, 0, sizeof v);
    *target = 0;
    *reason = "left_scope";
    if ((rc = hub_scope_parse(dev->scope, v.kind, &value)) != CMC_OK)
        return rc;
    snprintf(v.value, sizeof v.value, "%s", value);
    v.clinician = strcmp(dev->role, "clinician") == 0;
    if ((rc = hub_db_prepare(h, "SELECT 1 FROM caseload WHERE team = ?1 AND nhs = ?2",
                             &v.caseload)) != CMC_OK)
        goto out;
    sqlite3_bind_text(v.caseload, 1, v.value, -1, SQLITE_STATIC);
    if ((rc = hub_db_prepare(h, "SELECT " HUB_PLAN_COLS ", p.seq FROM plans p"
                                " WHERE p.plan_id = ?1", &row)) != CMC_OK)
        goto out;
    sqlite3_bind_text(row, 1, plan_id, -1, SQLITE_STATIC);
    src = sqlite3_step(row);
    if (src == SQLITE_DONE) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan %s", plan_id);
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = hub_db_fail(h, src, "plan");
        goto out;
    }
    rc = hub_view_target(h, &v, row, target, reason);
out:
    sqlite3_finalize(row);
    sqlite3_finalize(v.caseload);
    return rc;
}

int hub_plan_holders(hub *h, const char *plan_ref,
                     int (*cb)(const struct hub_plan_holder *, void *), void *ctx)
{
    struct hub_plan_info info;
    struct hub_plan_holder ph;
    struct hub_device_info d;
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = hub_plan_info(h, plan_ref, &info)) != CMC_OK)
        return rc;
    /* The newest holding the hub recorded (sent pages included: a page the device has not
     * yet proven may already be applied) and any open purge record. */
    if ((rc = hub_db_prepare(h, "SELECT d.device_id, d.name, d.state, d.wipe, d.last_seen,"
                                " (SELECT hg.version FROM holders hd JOIN holdings hg"
                                "  ON hg.dev = hd.num WHERE hd.device_id = d.device_id"
                                "  AND hg.plan = (SELECT num FROM plans WHERE plan_id = ?1)),"
                                " pu.sent, pu.acked, pu.device_id IS NOT NULL"
                                " FROM devices d LEFT JOIN purges pu ON pu.device_id = d.device_id"
                                " AND pu.plan_id = ?1 WHERE d.state <> 'wiped'"
                                " ORDER BY d.created, d.name", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, info.plan_id, -1, SQLITE_TRANSIENT);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int has_purge = sqlite3_column_int(st, 8);
        int64_t held = sqlite3_column_int64(st, 5);
        int open_purge = has_purge && sqlite3_column_type(st, 7) == SQLITE_NULL;
        if (!(open_purge || (!has_purge && held > 0)))
            continue;
        memset(&d, 0, sizeof d);
        hub_col_copy(st, 2, d.state, sizeof d.state);
        d.wipe = sqlite3_column_int(st, 3);
        memset(&ph, 0, sizeof ph);
        ph.device_id = hub_col_text(st, 0);
        ph.device_name = hub_col_text(st, 1);
        ph.state = hub_device_state_label(&d);
        ph.last_seen = sqlite3_column_int64(st, 4);
        ph.version = open_purge ? 0 : held;
        ph.purge_sent = open_purge;
        ph.purge_sent_at = open_purge ? sqlite3_column_int64(st, 6) : 0;
        if ((rc = cb(&ph, ctx)) != 0)
            goto out;
    }
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "plan holders");
out:
    sqlite3_finalize(st);
    return rc;
}
