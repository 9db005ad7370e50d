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
 * Cost: the statements of a pull are kept prepared in the feed's state on the handle
 * (feed_cache.c), an idle poll writes nothing and allocates only its bundle, and a delta is
 * computed once per (plan, base version, target version) and then served from a small cache
 * to every device on that base (stored versions never change, so a cached delta never goes
 * stale).
 *
 * Files: feed.c builds pages (views, packing, hub_pull), holdings.c records what each device
 * holds, feed_cache.c keeps the feed's statements and deltas.
 */
#include "hub/feed.h"
#include "hub/feed_group.h"

#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/wire.h"

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
    if ((rc = hub_feed_stmt(h, HUB_FEED_VERSION,
                            "SELECT body FROM versions WHERE plan_id = ?1 AND version = ?2",
                            &st)) != CMC_OK)
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

/* The stored bodies of a held and a target version, copied (cmc_free both), read in one
 * statement: a delta needs both, and on PostgreSQL every statement is a round trip. */
struct hub_body_pair {
    uint8_t *held, *target;
    size_t held_len, target_len;
};

static void hub_body_pair_free(struct hub_body_pair *b)
{
    cmc_free(b->held);
    cmc_free(b->target);
    memset(b, 0, sizeof *b);
}

static int hub_body_pair_read(hub *h, const char *plan_id, int64_t held, int64_t target,
                              struct hub_body_pair *b)
{
    sqlite3_stmt *st = NULL;
    int rc, src;
    memset(b, 0, sizeof *b);
    if ((rc = hub_feed_stmt(h, HUB_FEED_VERSION_PAIR,
                            "SELECT version, body FROM versions WHERE plan_id = ?1"
                            " AND version IN (?2, ?3)", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, held);
    sqlite3_bind_int64(st, 3, target);
    while ((src = sqlite3_step(st)) == SQLITE_ROW && rc == CMC_OK) {
        int64_t v = sqlite3_column_int64(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        uint8_t **to = v == target ? &b->target : &b->held;
        if (*to != NULL)
            continue;
        if ((*to = cmc_malloc(len ? len : 1)) == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "plan version");
            break;
        }
        memcpy(*to, sqlite3_column_blob(st, 1), len);
        *(v == target ? &b->target_len : &b->held_len) = len;
    }
    sqlite3_reset(st);
    if (rc == CMC_OK && src != SQLITE_DONE)
        rc = hub_db_fail(h, src, "plan version");
    if (rc == CMC_OK && (b->held == NULL || b->target == NULL))
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "plan %s has no version %lld", plan_id,
                      (long long)(b->target == NULL ? target : held));
    if (rc != CMC_OK)
        hub_body_pair_free(b);
    return rc;
}

/* The change from the held version's body to the target's, packed (cmc_free). */
static int hub_delta_compute(const struct hub_body_pair *b, uint8_t **delta, size_t *delta_len)
{
    struct plan from, to;
    struct plan_change c;
    int rc;

    plan_init(&from);
    plan_init(&to);
    plan_change_init(&c);
    if ((rc = plan_unpack(b->target, b->target_len, &to)) == CMC_OK &&
        (rc = plan_unpack(b->held, b->held_len, &from)) == CMC_OK &&
        (rc = plan_change_diff(&from, &to, &c)) == CMC_OK)
        rc = plan_change_pack(&c, delta, delta_len);
    plan_free(&from);
    plan_free(&to);
    plan_change_free(&c);
    return rc;
}

/* Packs a put into `op`: a delta against the held version when that is smaller, else the
 * whole plan, copied straight from the stored body. `leaf`: the target's seal leaf, over its
 * stored body (the bytes a device holds once it applies the put or the delta). A delta
 * computed once is kept with its leaf, so another device holding the same version costs no
 * read of the store. */
static int hub_pack_put(hub *h, struct mp_writer *op, const char *plan_id, uint64_t seq,
                        int64_t held, int64_t target, uint8_t leaf[CRY_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    const uint8_t *body;
    size_t len;
    int rc;

    if (held > 0 && held != target) {
        const struct hub_delta_entry *e = hub_delta_find(h, plan_id, held, target);
        struct hub_body_pair b;
        uint8_t *delta = NULL;
        size_t delta_len = 0;
        if (e != NULL && e->len < e->put_len) {
            memcpy(leaf, e->leaf, CRY_HASH_BYTES);
            hub_write_delta(op, plan_id, seq, held, e->delta, e->len);
            return hub_op_check(op);
        }
        if (e == NULL) {
            if ((rc = hub_body_pair_read(h, plan_id, held, target, &b)) != CMC_OK)
                return rc;
            cry_merkle_leaf(leaf, plan_id, target, b.target, b.target_len);
            if ((rc = hub_delta_compute(&b, &delta, &delta_len)) == CMC_OK) {
                hub_delta_keep(h, plan_id, held, target, delta, delta_len, b.target_len, leaf);
                if (delta_len < b.target_len)
                    hub_write_delta(op, plan_id, seq, held, delta, delta_len);
                else
                    hub_write_put(op, plan_id, seq, b.target, b.target_len);
                rc = hub_op_check(op);
            }
            cmc_free(delta);
            hub_body_pair_free(&b);
            return rc;
        }
    }
    if ((rc = hub_version_body(h, plan_id, target, &st, &body, &len)) != CMC_OK)
        return rc;
    hub_write_put(op, plan_id, seq, body, len);
    cry_merkle_leaf(leaf, plan_id, target, body, len);
    sqlite3_reset(st);
    return hub_op_check(op);
}

/* One stored version as a device of `edition` holds it (hub_edition_project). */
static int hub_version_projected(hub *h, const char *plan_id, int64_t version, int edition,
                                 struct plan *out, uint8_t **packed, size_t *len)
{
    sqlite3_stmt *st = NULL;
    const uint8_t *body;
    size_t body_len;
    int reduced = 0;
    int rc = hub_version_body(h, plan_id, version, &st, &body, &body_len);
    if (rc != CMC_OK)
        return rc;
    rc = plan_unpack(body, body_len, out);
    sqlite3_reset(st);
    if (rc == CMC_OK)
        rc = hub_edition_project(out, edition, &reduced);
    if (rc == CMC_OK && packed != NULL)
        rc = plan_pack(out, packed, len);
    return rc;
}

/* Packs a put for a device of an older edition: the target's projection, or a delta between
 * the projections of the held and the target versions when that is smaller. Neither the
 * shared delta cache nor the stored bodies hold projections, so this costs a decode per
 * plan; it lasts only while a fleet updates. */
static int hub_pack_put_edition(hub *h, struct mp_writer *op, const char *plan_id,
                                uint64_t seq, int64_t held, int64_t target, int edition,
                                uint8_t leaf[CRY_HASH_BYTES])
{
    struct plan from, to;
    struct plan_change c;
    uint8_t *body = NULL, *delta = NULL;
    size_t len = 0, delta_len = 0;
    int rc;

    plan_init(&from);
    plan_init(&to);
    plan_change_init(&c);
    rc = hub_version_projected(h, plan_id, target, edition, &to, &body, &len);
    if (rc == CMC_OK)
        cry_merkle_leaf(leaf, plan_id, target, body, len);
    if (rc == CMC_OK && held > 0 && held != target) {
        rc = hub_version_projected(h, plan_id, held, edition, &from, NULL, NULL);
        if (rc == CMC_OK)
            rc = plan_change_diff(&from, &to, &c);
        if (rc == CMC_OK)
            rc = plan_change_pack(&c, &delta, &delta_len);
    }
    if (rc == CMC_OK) {
        if (delta != NULL && delta_len < len)
            hub_write_delta(op, plan_id, seq, held, delta, delta_len);
        else
            hub_write_put(op, plan_id, seq, body, len);
        rc = hub_op_check(op);
    }
    cmc_free(body);
    cmc_free(delta);
    plan_free(&from);
    plan_free(&to);
    plan_change_free(&c);
    return rc;
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

    if ((rc = hub_feed_stmt(h, HUB_FEED_NAGS,
                            "SELECT " HUB_PLAN_COLS ", pu.seq, pu.reason"
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
    "SELECT " HUB_PLAN_COLS ", p.seq, p.num, h.version, h.to_cursor"
    " FROM plans p INDEXED BY plans_seq"
    " LEFT JOIN holdings h ON h.dev = ?2 AND h.plan = p.num WHERE p.seq > ?1 ORDER BY p.seq";

/* One page being built: what hub_pull's setup, scan and finish share. */
struct hub_page {
    const char *device_id;
    uint64_t cursor, applied, head;
    size_t budget;
    int edition; /* the newest plan edition the device can show */
    int plans;   /* puts and deltas in the page */
    struct hub_device_info dev;
    struct hub_view v;
    struct hub_holder hd;
    struct hub_nags nags;
    struct bundle_header hdr;
    struct mp_writer op; /* one op at a time, its buffer reused */
    bundle_writer *w;
    struct hub_sent *sent; /* what the scan put in the page, for the holdings */
    size_t n_sent, cap_sent;
    int more, rollback;
    int seal;        /* the device keeps seals: the page ends with one over its plans */
    uint8_t *leaves; /* the seal's leaves, one per plan op in page order */
    size_t n_leaves, cap_leaves;
};

static int hub_page_add_op(struct hub_page *pg);

/* Remembers the seal leaf of a plan op just added to the page. */
static int hub_page_leaf(struct hub_page *pg, const uint8_t leaf[CRY_HASH_BYTES])
{
    if (pg->n_leaves == pg->cap_leaves) {
        size_t ncap = pg->cap_leaves ? pg->cap_leaves * 2 : 64;
        uint8_t *nl = cmc_realloc(pg->leaves, ncap * CRY_HASH_BYTES);
        if (nl == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "bundle page");
        pg->leaves = nl;
        pg->cap_leaves = ncap;
    }
    memcpy(pg->leaves + CRY_HASH_BYTES * pg->n_leaves++, leaf, CRY_HASH_BYTES);
    return CMC_OK;
}

/* Ends a page that carries plans with their SEAL op: [6, head, signature of the root]. */
static int hub_page_seal(hub *h, struct hub_page *pg)
{
    uint8_t sig[CRY_SIG_BYTES];
    int rc;
    if (!pg->seal || pg->n_leaves == 0)
        return CMC_OK;
    if ((rc = bundle_seal_sign(pg->leaves, pg->n_leaves, h->sk, sig)) != CMC_OK)
        return rc;
    hub_op_begin(&pg->op);
    mp_write_array(&pg->op, 3);
    mp_write_uint(&pg->op, BUNDLE_OP_SEAL);
    mp_write_uint(&pg->op, pg->head);
    mp_write_bin(&pg->op, sig, sizeof sig);
    return hub_page_add_op(pg);
}

/* Adds an op already packed in pg->op to the page. */
static int hub_page_add_op(struct hub_page *pg)
{
    int rc = hub_op_check(&pg->op);
    if (rc == CMC_OK)
        rc = bundle_writer_add_raw(pg->w, pg->op.buf, pg->op.len);
    return rc;
}

/* Opens the page from pg->cursor with the lease in force (pg->head, pg->dev.lease_days): every
 * bundle starts with it, so the device always knows the current policy, idle polls and wipe
 * orders included. Touches nothing on the handle. */
static int hub_page_open(struct hub_page *pg)
{
    int rc;
    if ((rc = plan_uuid_bytes(pg->device_id, pg->hdr.device_id)) != CMC_OK)
        return rc;
    if ((rc = bundle_writer_new(&pg->w)) != CMC_OK)
        return rc;
    pg->hdr.protocol = BUNDLE_PROTOCOL;
    pg->hdr.from_cursor = pg->cursor;
    pg->hdr.hub_time = plat_wall_now();
    hub_write_policy(&pg->op, pg->head, pg->dev.lease_days);
    return hub_page_add_op(pg);
}

/* Inside the pull's transaction: reads the device and its view, checks the cursors, notes a
 * rollback, settles the holdings and opens the page with the lease in force. */
static int hub_pull_setup(hub *h, struct hub_page *pg)
{
    const char *value;
    int rc;

    /* Read inside the transaction, so the proven cursor compared below is the current one
     * even when two pulls of the same device race. */
    if ((rc = hub_device_get(h, pg->device_id, &pg->dev)) != CMC_OK)
        return rc;
    if ((rc = hub_scope_parse(pg->dev.scope, pg->v.kind, &value)) != CMC_OK)
        return rc;
    snprintf(pg->v.value, sizeof pg->v.value, "%s", value);
    pg->v.clinician = strcmp(pg->dev.role, "clinician") == 0;
    pg->v.device_id = pg->device_id;
    if ((rc = hub_head_seq(h, &pg->head)) != CMC_OK)
        return rc;
    if (pg->cursor > pg->head)
        return cmc_fail(CMC_ERR_INVALID, "cursor %llu is beyond the hub's change log (%llu)",
                        (unsigned long long)pg->cursor, (unsigned long long)pg->head);
    if (pg->applied > pg->cursor)
        return cmc_fail(CMC_ERR_INVALID, "applied %llu is beyond the cursor %llu",
                        (unsigned long long)pg->applied, (unsigned long long)pg->cursor);
    if (pg->applied < pg->dev.proven) {
        pg->rollback = 1;
        if ((rc = hub_note_rollback(h, pg->device_id, pg->dev.proven, pg->applied)) != CMC_OK)
            return rc;
    }
    if ((rc = hub_holder_get(h, pg->device_id, &pg->hd)) != CMC_OK)
        return rc;
    if ((rc = hub_holdings_commit_point(h, pg->device_id, &pg->hd, pg->dev.cursor, pg->cursor,
                                        pg->applied)) != CMC_OK)
        return rc;
    return hub_page_open(pg);
}

/* Remembers a plan the page carries, for the holdings. */
static int hub_page_sent(struct hub_page *pg, sqlite3_stmt *scan, const char *plan_id,
                         uint64_t seq, int64_t target, const char *reason)
{
    if (pg->n_sent == pg->cap_sent) {
        size_t ncap = pg->cap_sent ? pg->cap_sent * 2 : 64;
        struct hub_sent *ns = cmc_realloc(pg->sent, ncap * sizeof *ns);
        if (ns == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "bundle page");
        pg->sent = ns;
        pg->cap_sent = ncap;
    }
    struct hub_sent *s = &pg->sent[pg->n_sent++];
    s->plan = sqlite3_column_int64(scan, 10);
    snprintf(s->plan_id, sizeof s->plan_id, "%s", plan_id);
    s->version = target;
    s->seq = seq;
    s->reason = reason;
    return CMC_OK;
}

/* The repeated purges, then every plan stamped after the cursor that the device's view puts
 * in or takes out, until the page is full; sets the page's to_cursor and MORE. */
static int hub_pull_scan(hub *h, struct hub_page *pg)
{
    sqlite3_stmt *scan = NULL;
    size_t n_scanned_ops = 0;
    uint64_t last_seq = pg->cursor;
    int rc, src;

    if (strcmp(pg->v.kind, "team") == 0) {
        if ((rc = hub_feed_stmt(h, HUB_FEED_CASELOAD, "SELECT 1 FROM caseload WHERE team = ?1"
                                                           " AND nhs = ?2", &pg->v.caseload)) !=
            CMC_OK)
            return rc;
        sqlite3_bind_text(pg->v.caseload, 1, pg->v.value, -1, SQLITE_STATIC);
    }
    /* Purges the device has not acknowledged yet go again, ahead of the new changes. */
    if ((rc = hub_add_nags(h, &pg->v, pg->w, &pg->op, &pg->nags)) != CMC_OK)
        return rc;
    if ((rc = hub_feed_stmt(h, HUB_FEED_SCAN, hub_scan_sql, &scan)) != CMC_OK)
        return rc;
    sqlite3_bind_int64(scan, 1, (sqlite3_int64)pg->cursor);
    sqlite3_bind_int64(scan, 2, pg->hd.num);

    while ((src = sqlite3_step(scan)) == SQLITE_ROW) {
        const char *plan_id = hub_col_text(scan, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(scan, 9);
        int64_t target = 0, held = sqlite3_column_int64(scan, 11); /* NULL: 0, none */
        /* the holding came from a page the device has not proven yet */
        int unproven = sqlite3_column_type(scan, 12) != SQLITE_NULL &&
                            (uint64_t)sqlite3_column_int64(scan, 12) > pg->applied;
        const char *reason = NULL;
        int write_op = 1, has_op = 0;
        uint8_t leaf[CRY_HASH_BYTES];

        if ((rc = hub_view_target(h, &pg->v, scan, &target, &reason)) != CMC_OK)
            goto out;
        if (target > 0 && held != target) {
            rc = pg->edition < PLAN_EDITION_CURRENT
                     ? hub_pack_put_edition(h, &pg->op, plan_id, seq, held, target, pg->edition,
                                            leaf)
                     : hub_pack_put(h, &pg->op, plan_id, seq, held, target, leaf);
            if (rc != CMC_OK)
                goto out;
            has_op = 1;
        } else if (target == 0 && held > 0) {
            hub_write_purge(&pg->op, plan_id, seq, reason);
            if ((rc = hub_op_check(&pg->op)) != CMC_OK)
                goto out;
            has_op = 1;
            /* Already in this page as a repeated purge: recorded, not sent twice. */
            write_op = !hub_nagged(&pg->nags, plan_id);
        }
        if (has_op && unproven) {
            /* The page ends before it (even with nothing in it): one unproven page per plan,
             * so a lost page restores exactly the proven holding. The device proves the
             * earlier page with its next pull and gets the plan then. */
            pg->more = 1;
            break;
        }
        if (has_op) {
            /* The cut counts only this scan's ops, so a page full of repeated purges still
             * makes progress. */
            if (write_op && ((n_scanned_ops > 0 &&
                              bundle_writer_raw_size(pg->w) + pg->op.len > pg->budget) ||
                             bundle_writer_count(pg->w) >= BUNDLE_MAX_OPS)) {
                pg->more = 1;
                break;
            }
            if (write_op) {
                if ((rc = bundle_writer_add_raw(pg->w, pg->op.buf, pg->op.len)) != CMC_OK)
                    goto out;
                n_scanned_ops++;
                pg->plans += target > 0;
                if (target > 0 && (rc = hub_page_leaf(pg, leaf)) != CMC_OK)
                    goto out;
            }
            if ((rc = hub_page_sent(pg, scan, plan_id, seq, target, reason)) != CMC_OK)
                goto out;
        }
        last_seq = seq;
    }
    rc = pg->more || src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "pull");
    pg->hdr.to_cursor = pg->more ? last_seq : pg->head;
out:
    sqlite3_reset(scan);
    return rc;
}

/* Records what the page carried and sets its flags. */
static int hub_pull_record(hub *h, struct hub_page *pg)
{
    int rc = hub_record_sent(h, pg->device_id, &pg->hd, pg->sent, pg->n_sent, pg->hdr.to_cursor);
    if (rc == CMC_OK)
        rc = hub_nags_carried(h, pg->device_id, &pg->nags, pg->hdr.to_cursor);
    pg->hdr.flags = (uint16_t)((pg->more ? BUNDLE_FLAG_MORE : 0) |
                               (pg->cursor == 0 ? BUNDLE_FLAG_SNAPSHOT : 0) |
                               (pg->edition >= 2 && pg->plans > 0 ? BUNDLE_FLAG_EDITION2 : 0));
    return rc;
}

/* The wipe order is the whole answer; the cursor does not move. */
static int hub_pull_wipe(struct hub_page *pg)
{
    hub_op_begin(&pg->op);
    mp_write_array(&pg->op, 2);
    mp_write_uint(&pg->op, BUNDLE_OP_WIPE);
    mp_write_uint(&pg->op, pg->head);
    pg->hdr.to_cursor = pg->cursor;
    return hub_page_add_op(pg);
}

/* Signs the page and commits the pull's transaction; the page is handed back only when the
 * holdings it recorded are committed. */
static int hub_pull_finish(hub *h, struct hub_page *pg, uint8_t **out, size_t *len)
{
    int rc;
    if (pg->rollback)
        pg->hdr.flags = (uint16_t)(pg->hdr.flags | BUNDLE_FLAG_ROLLBACK);
    if ((rc = hub_page_seal(h, pg)) != CMC_OK)
        return rc;
    size_t raw_size = bundle_writer_raw_size(pg->w);
    uint16_t codec = (uint16_t)(pg->hdr.flags & BUNDLE_FLAG_BROTLI);
    uint8_t digest[CRY_HASH_BYTES];
    const struct hub_body_entry *kept = NULL;
    if (raw_size >= HUB_BODY_MIN) { /* a large page: compress it once for every device */
        bundle_writer_digest(pg->w, digest);
        kept = hub_body_find(h, digest, bundle_writer_count(pg->w), codec);
    }
    if (kept != NULL) {
        pg->hdr.op_count = kept->count;
        pg->hdr.raw_len = kept->raw_len;
        rc = bundle_seal(&pg->hdr, kept->body, kept->len, h->sk, out, len);
    } else {
        rc = bundle_writer_finish(pg->w, &pg->hdr, h->sk, out, len);
        if (rc == CMC_OK && raw_size >= HUB_BODY_MIN)
            hub_body_keep(h, digest, bundle_writer_count(pg->w), codec, (uint32_t)raw_size,
                          *out + BUNDLE_HEADER_BYTES, *len - BUNDLE_HEADER_BYTES);
    }
    if (rc != CMC_OK)
        return rc;
    /* The holdings are durable, alone or in a group commit, before the page is handed back. */
    if ((rc = hub_group_commit(h)) != CMC_OK) {
        cmc_free(*out);
        *out = NULL;
        *len = 0;
    }
    return rc;
}

int hub_pull(hub *h, const char *device_id, uint64_t cursor, uint64_t applied, size_t budget,
             uint8_t **out, size_t *len)
{
    return hub_pull_sealed(h, device_id, cursor, applied, budget, PLAN_EDITION_CURRENT, 0, 1, out,
                           len);
}

int hub_pull_edition(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                     size_t budget, uint64_t edition, uint8_t **out, size_t *len)
{
    return hub_pull_sealed(h, device_id, cursor, applied, budget, edition, 0, 0, out, len);
}

int hub_pull_opts(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                  size_t budget, uint64_t edition, uint64_t codecs, uint8_t **out, size_t *len)
{
    return hub_pull_sealed(h, device_id, cursor, applied, budget, edition, codecs, 1, out, len);
}

int hub_pull_sealed(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                    size_t budget, uint64_t edition, uint64_t codecs, int seal, uint8_t **out,
                    size_t *len)
{
    struct hub_page pg;
    int rc;

    *out = NULL;
    *len = 0;
    memset(&pg, 0, sizeof pg);
    mp_writer_init(&pg.op);
    pg.device_id = device_id;
    pg.seal = seal;
    pg.cursor = cursor;
    pg.applied = applied;
    pg.edition = edition < 1 ? 1 : edition > PLAN_EDITION_CURRENT ? PLAN_EDITION_CURRENT
                                                                   : (int)edition;
    if (budget == 0)
        budget = HUB_BUDGET_DEFAULT;
    if (budget > HUB_BUDGET_MAX)
        budget = HUB_BUDGET_MAX;
    if (budget < HUB_BUDGET_MIN)
        budget = HUB_BUDGET_MIN;
    pg.budget = budget;
    /* a cursor from the timeline a restore lost: recorded, reset, answered 409 (hub.h) */
    if ((rc = hub_rewind_check(h, device_id, cursor)) != CMC_OK)
        goto out;
    if ((rc = hub_group_begin(h)) != CMC_OK)
        goto out;
    if ((rc = hub_pull_setup(h, &pg)) == CMC_OK) {
        if (pg.dev.wipe)
            rc = hub_pull_wipe(&pg);
        else if ((rc = hub_pull_scan(h, &pg)) == CMC_OK)
            rc = hub_pull_record(h, &pg);
    }
    if (rc == CMC_OK && (codecs & WIRE_CODEC_BROTLI))
        pg.hdr.flags = (uint16_t)(pg.hdr.flags | BUNDLE_FLAG_BROTLI);
    if (rc == CMC_OK)
        rc = hub_pull_finish(h, &pg, out, len);
    if (rc != CMC_OK)
        hub_group_rollback(h);
out:
    mp_writer_discard(&pg.op);
    bundle_writer_free(pg.w);
    cmc_free(pg.nags.ids);
    cmc_free(pg.sent);
    cmc_free(pg.leaves);
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

/* ---- the change feed's question (hub/live.h) ------------------------------------------- */

int hub_pending(hub *h, const char *device_id, uint64_t cursor, int64_t lease_days,
                uint64_t *scanned, int *pending)
{
    struct hub_device_info dev;
    struct hub_holder hd;
    struct hub_view v;
    sqlite3_stmt *scan = NULL;
    const char *value;
    uint64_t head = 0, from;
    int rc, src = SQLITE_DONE;

    *pending = 1;
    memset(&v, 0, sizeof v);
    if ((rc = hub_device_get(h, device_id, &dev)) != CMC_OK)
        return rc;
    /* Answered at once: the pull that follows says what is wrong or carries the order. */
    if (strcmp(dev.state, "active") != 0 || dev.wipe ||
        (lease_days >= 0 && lease_days != dev.lease_days))
        return CMC_OK;
    /* The head first: a change committed while the plans are read is stamped after it and
     * read again next time. */
    if ((rc = hub_head_seq(h, &head)) != CMC_OK)
        return rc;
    if (cursor > head)
        return CMC_OK;
    from = *scanned > cursor ? *scanned : cursor;
    if ((rc = hub_holder_get(h, device_id, &hd)) != CMC_OK)
        return rc;
    if ((rc = hub_scope_parse(dev.scope, v.kind, &value)) != CMC_OK)
        return rc;
    snprintf(v.value, sizeof v.value, "%s", value);
    v.clinician = strcmp(dev.role, "clinician") == 0;
    v.device_id = device_id;
    if (strcmp(v.kind, "team") == 0) {
        if ((rc = hub_db_prepare(h, "SELECT 1 FROM caseload WHERE team = ?1 AND nhs = ?2",
                                 &v.caseload)) != CMC_OK)
            goto out;
        sqlite3_bind_text(v.caseload, 1, v.value, -1, SQLITE_STATIC);
    }
    if ((rc = hub_db_prepare(h, hub_scan_sql, &scan)) != CMC_OK)
        goto out;
    sqlite3_bind_int64(scan, 1, (sqlite3_int64)from);
    sqlite3_bind_int64(scan, 2, hd.num);
    *pending = 0;
    while (!*pending && (src = sqlite3_step(scan)) == SQLITE_ROW) {
        int64_t target = 0, held = sqlite3_column_int64(scan, 11);
        const char *reason = NULL;
        if ((rc = hub_view_target(h, &v, scan, &target, &reason)) != CMC_OK)
            goto out;
        *pending = (target > 0 && held != target) || (target == 0 && held > 0) ||
                   (sqlite3_column_type(scan, 12) != SQLITE_NULL &&
                    (uint64_t)sqlite3_column_int64(scan, 12) > cursor);
    }
    if (!*pending && src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "wait");
        goto out;
    }
    if (!*pending)
        *scanned = head;
    rc = CMC_OK;
out:
    if (rc != CMC_OK)
        *pending = 1;
    sqlite3_finalize(scan);
    sqlite3_finalize(v.caseload);
    return rc;
}

int hub_pull_idle_page(const hub *h, const char *device_id, uint64_t cursor, int64_t lease_days,
                       uint64_t codecs, uint8_t **out, size_t *len)
{
    struct hub_page pg;
    int rc;

    *out = NULL;
    *len = 0;
    memset(&pg, 0, sizeof pg);
    mp_writer_init(&pg.op);
    pg.device_id = device_id;
    pg.cursor = pg.head = cursor;
    pg.dev.lease_days = lease_days;
    if ((rc = hub_page_open(&pg)) == CMC_OK) {
        pg.hdr.to_cursor = cursor;
        /* as hub_pull_record and hub_pull_sealed set them for a page with no plan in it */
        pg.hdr.flags = (uint16_t)((cursor == 0 ? BUNDLE_FLAG_SNAPSHOT : 0) |
                                  ((codecs & WIRE_CODEC_BROTLI) ? BUNDLE_FLAG_BROTLI : 0));
        rc = bundle_writer_finish(pg.w, &pg.hdr, h->sk, out, len);
    }
    mp_writer_discard(&pg.op);
    bundle_writer_free(pg.w);
    return rc;
}
