/*
 * feed.c - what each device should hold, and the bundle pages that bring it there.
 *
 * A device's view: the plans of its scope (all, region:R, team:T's caseload, care_home:H)
 * whose consent stands, at the published version - or, for a clinician device with a team
 * scope, at the newest version whatever its status. Urgent-care devices only ever get
 * published versions: the choice is made here, from the version's recorded status, and
 * nothing else puts a plan in a bundle.
 *
 * Holdings: table `held` records, per device and plan, the version each bundle page gave
 * it (0 = purged), keyed by the page's to_cursor. A pull from cursor C proves the device
 * applied every page up to C, so rows beyond C are deleted first (those pages were never
 * applied) and older rows at or below C are compacted away.
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
    sqlite3_stmt *held;     /* the device's current holding of a plan */
    sqlite3_stmt *version;  /* a stored version's body */
};

struct hub_sent {
    char plan_id[PLAN_ID_LEN + 1];
    int64_t version;    /* 0: a purge */
    uint64_t seq;       /* purge: the change it reflects */
    const char *reason; /* purge: a static reason name */
};

/* The plans whose unacknowledged purges a page repeats, sorted for bsearch, so the scan
 * does not purge the same plan twice in one page. */
struct hub_nags {
    char (*ids)[PLAN_ID_LEN + 1];
    size_t n;
};

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

static int hub_held_version(hub *h, struct hub_view *v, const char *plan_id, int64_t *out)
{
    sqlite3_reset(v->held);
    sqlite3_bind_text(v->held, 2, plan_id, -1, SQLITE_TRANSIENT);
    int src = sqlite3_step(v->held);
    if (src == SQLITE_ROW) {
        *out = sqlite3_column_int64(v->held, 0);
        return CMC_OK;
    }
    if (src == SQLITE_DONE) {
        *out = 0;
        return CMC_OK;
    }
    return hub_db_fail(h, src, "holdings");
}

/* A stored version's packed body (cmc_free), through the page's prepared statement. */
static int hub_view_load(hub *h, struct hub_view *v, const char *plan_id, int64_t version,
                         uint8_t **out, size_t *len)
{
    int src;
    *out = NULL;
    *len = 0;
    sqlite3_reset(v->version);
    sqlite3_bind_text(v->version, 1, plan_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(v->version, 2, version);
    src = sqlite3_step(v->version);
    if (src == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(v->version, 0);
        if ((*out = cmc_malloc(n > 0 ? n : 1)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "plan version");
        if (n > 0)
            memcpy(*out, sqlite3_column_blob(v->version, 0), n);
        *len = n;
        return CMC_OK;
    }
    if (src == SQLITE_DONE)
        return cmc_fail(CMC_ERR_NOT_FOUND, "plan %s has no version %lld", plan_id,
                        (long long)version);
    return hub_db_fail(h, src, "plan version");
}

/* Packs a put: a delta against the held version when that is smaller, else the plan. */
static int hub_pack_put(hub *h, struct hub_view *v, const char *plan_id, uint64_t seq,
                        int64_t held, int64_t target, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    struct plan from, to;
    struct plan_change c;
    uint8_t *raw = NULL, *delta = NULL, *old = NULL;
    size_t raw_len = 0, delta_len = 0, old_len = 0;
    int rc;

    plan_init(&from);
    plan_init(&to);
    plan_change_init(&c);
    mp_writer_init(&w);
    if ((rc = hub_view_load(h, v, plan_id, target, &raw, &raw_len)) != CMC_OK)
        goto out;
    if (held > 0 && held != target) {
        if ((rc = hub_view_load(h, v, plan_id, held, &old, &old_len)) != CMC_OK)
            goto out;
        if ((rc = plan_unpack(old, old_len, &from)) != CMC_OK)
            goto out;
        if ((rc = plan_unpack(raw, raw_len, &to)) != CMC_OK)
            goto out;
        if ((rc = plan_change_diff(&from, &to, &c)) != CMC_OK)
            goto out;
        if ((rc = plan_change_pack(&c, &delta, &delta_len)) != CMC_OK)
            goto out;
    }
    if (delta != NULL && delta_len < raw_len) {
        mp_write_array(&w, 5);
        mp_write_uint(&w, BUNDLE_OP_DELTA);
        mp_write_cstr(&w, plan_id);
        mp_write_uint(&w, seq);
        mp_write_int(&w, held);
        mp_write_raw(&w, delta, delta_len);
    } else {
        mp_write_array(&w, 4);
        mp_write_uint(&w, BUNDLE_OP_PUT);
        mp_write_cstr(&w, plan_id);
        mp_write_uint(&w, seq);
        mp_write_raw(&w, raw, raw_len);
    }
    rc = mp_writer_finish(&w, out, len);
out:
    if (rc != CMC_OK)
        mp_writer_discard(&w);
    plan_free(&from);
    plan_free(&to);
    plan_change_free(&c);
    cmc_free(raw);
    cmc_free(old);
    cmc_free(delta);
    return rc;
}

static int hub_pack_purge(const char *plan_id, uint64_t seq, const char *reason, uint8_t **out,
                          size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_array(&w, 4);
    mp_write_uint(&w, BUNDLE_OP_PURGE);
    mp_write_cstr(&w, plan_id);
    mp_write_uint(&w, seq);
    mp_write_cstr(&w, reason);
    return mp_writer_finish(&w, out, len);
}

static int hub_step_done(hub *h, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    if (src != SQLITE_DONE)
        return hub_db_fail(h, src, what);
    return CMC_OK;
}

/* Forgets holdings from pages the device never applied, and compacts the rows of plans
 * touched by pages it has now proved applied (prev, cursor]; an idle poll (cursor equal to
 * the last one) does no compaction at all. */
static int hub_holdings_commit_point(hub *h, const char *device_id, uint64_t prev,
                                     uint64_t cursor)
{
    static const char *const sql[] = {
        "DELETE FROM held WHERE device_id = ?1 AND to_cursor > ?2",
        "DELETE FROM held WHERE device_id = ?1 AND plan_id IN (SELECT plan_id FROM held"
        " WHERE device_id = ?1 AND to_cursor > ?3 AND to_cursor <= ?2) AND to_cursor <"
        " (SELECT max(h2.to_cursor) FROM held h2 WHERE h2.device_id = held.device_id"
        " AND h2.plan_id = held.plan_id AND h2.to_cursor <= ?2)",
        "UPDATE devices SET cursor = ?2 WHERE device_id = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc;
        if (i > 0 && cursor == prev)
            break;
        if ((rc = hub_db_prepare(h, sql[i], &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)cursor);
        if (i == 1)
            sqlite3_bind_int64(st, 3, (sqlite3_int64)(prev < cursor ? prev : 0));
        rc = hub_step_done(h, st, "holdings");
        sqlite3_finalize(st);
        if (rc != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* Records what the page gave the device: its holdings, and for purges an open purge record
 * (a new purge of a plan restarts its acknowledgement); a put closes any purge record of the
 * plan, since the device is meant to hold it again. */
static int hub_record_sent(hub *h, const char *device_id, const struct hub_sent *sent, size_t n,
                           uint64_t to_cursor)
{
    sqlite3_stmt *held = NULL, *purge = NULL, *unpurge = NULL;
    int64_t now = plat_wall_now();
    int rc;
    if ((rc = hub_db_prepare(h, "INSERT OR REPLACE INTO held(device_id, plan_id, to_cursor, version)"
                                " VALUES(?1, ?2, ?3, ?4)", &held)) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, "INSERT OR REPLACE INTO purges(device_id, plan_id, seq, reason,"
                                " cursor, sent, acked) VALUES(?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                             &purge)) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, "DELETE FROM purges WHERE device_id = ?1 AND plan_id = ?2",
                             &unpurge)) != CMC_OK)
        goto out;
    for (size_t i = 0; i < n && rc == CMC_OK; i++) {
        sqlite3_reset(held);
        sqlite3_bind_text(held, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(held, 2, sent[i].plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(held, 3, (sqlite3_int64)to_cursor);
        sqlite3_bind_int64(held, 4, sent[i].version);
        if ((rc = hub_step_done(h, held, "holdings")) != CMC_OK)
            break;
        if (sent[i].version == 0) {
            sqlite3_reset(purge);
            sqlite3_bind_text(purge, 1, device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(purge, 2, sent[i].plan_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(purge, 3, (sqlite3_int64)sent[i].seq);
            sqlite3_bind_text(purge, 4, sent[i].reason != NULL ? sent[i].reason : "not_shared", -1,
                              SQLITE_STATIC);
            sqlite3_bind_int64(purge, 5, (sqlite3_int64)to_cursor);
            sqlite3_bind_int64(purge, 6, now);
            rc = hub_step_done(h, purge, "purges");
        } else {
            sqlite3_reset(unpurge);
            sqlite3_bind_text(unpurge, 1, device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(unpurge, 2, sent[i].plan_id, -1, SQLITE_STATIC);
            rc = hub_step_done(h, unpurge, "purges");
        }
    }
out:
    sqlite3_finalize(held);
    sqlite3_finalize(purge);
    sqlite3_finalize(unpurge);
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

static int hub_pack_policy(uint64_t seq, int64_t lease_days, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_array(&w, 3);
    mp_write_uint(&w, BUNDLE_OP_POLICY);
    mp_write_uint(&w, seq);
    mp_write_int(&w, lease_days);
    return mp_writer_finish(&w, out, len);
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
    if ((rc = hub_db_prepare(h, "UPDATE purges SET cursor = ?3 WHERE device_id = ?1"
                                " AND plan_id = ?2 AND cursor > ?3", &st)) != CMC_OK)
        return rc;
    for (size_t i = 0; i < nags->n && rc == CMC_OK; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, nags->ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)to_cursor);
        rc = hub_step_done(h, st, "purges");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Adds the device's unacknowledged purges (oldest first, at most HUB_NAG_MAX) whose plan is
 * still out of its view, and remembers which plans they name. */
static int hub_add_nags(hub *h, struct hub_view *v, bundle_writer *w, struct hub_nags *nags)
{
    sqlite3_stmt *st = NULL;
    uint8_t *op = NULL;
    size_t op_len = 0;
    int rc, src;

    if ((rc = hub_db_prepare(h, "SELECT p.plan_id, p.nhs, p.latest, p.latest_status, p.published,"
                                " p.region, p.team, p.care_home, p.withdrawn, pu.seq, pu.reason"
                                " FROM purges pu JOIN plans p ON p.plan_id = pu.plan_id"
                                " WHERE pu.device_id = ?1 AND pu.acked IS NULL"
                                " ORDER BY pu.seq LIMIT ?2", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, v->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, HUB_NAG_MAX);
    if ((nags->ids = cmc_calloc(HUB_NAG_MAX, sizeof nags->ids[0])) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle page");
        goto out;
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t target = 0;
        const char *reason = NULL;
        if ((rc = hub_view_target(h, v, st, &target, &reason)) != CMC_OK)
            goto out;
        if (target > 0)
            continue; /* in the view again: the scan puts it back */
        cmc_free(op);
        op = NULL;
        if ((rc = hub_pack_purge(hub_col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 9),
                                 hub_col_text(st, 10), &op, &op_len)) != CMC_OK)
            goto out;
        if ((rc = bundle_writer_add_raw(w, op, op_len)) != CMC_OK)
            goto out;
        hub_col_copy(st, 0, nags->ids[nags->n], sizeof nags->ids[0]);
        nags->n++;
    }
    if (src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "purges");
        goto out;
    }
    qsort(nags->ids, nags->n, sizeof nags->ids[0], hub_nag_cmp);
    rc = CMC_OK;
out:
    sqlite3_finalize(st);
    cmc_free(op);
    return rc;
}

/* The plans a pull looks at: every plan stamped after the cursor, in seq order, straight
 * off the seq index (no sort), so a page reads only as far as it fills and a snapshot reads
 * each plan once over all its pages; the view decides per plan. An idle poll reads an empty
 * index range. */
static const char hub_scan_sql[] =
    "SELECT plan_id, nhs, latest, latest_status, published, region, team, care_home,"
    " withdrawn, seq FROM plans INDEXED BY plans_seq WHERE seq > ?1 ORDER BY seq";

int hub_pull(hub *h, const char *device_id, uint64_t cursor, size_t budget, uint8_t **out,
             size_t *len)
{
    struct hub_device_info dev;
    struct hub_view v;
    struct hub_nags nags = {NULL, 0};
    struct bundle_header hdr;
    bundle_writer *w = NULL;
    sqlite3_stmt *scan = NULL;
    struct hub_sent *sent = NULL;
    size_t n_sent = 0, cap_sent = 0, n_scanned_ops = 0;
    uint8_t *op = NULL;
    size_t op_len = 0;
    uint64_t head = 0, last_seq = cursor;
    const char *value;
    int more = 0, rollback = 0, rc, src, in_tx = 0;

    *out = NULL;
    *len = 0;
    memset(&v, 0, sizeof v);
    memset(&hdr, 0, sizeof hdr);
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
    if (cursor < dev.proven) {
        rollback = 1;
        if ((rc = hub_note_rollback(h, device_id, dev.proven, cursor)) != CMC_OK)
            goto out;
    }
    if ((rc = hub_holdings_commit_point(h, device_id, dev.cursor, cursor)) != CMC_OK)
        goto out;
    if ((rc = bundle_writer_new(&w)) != CMC_OK)
        goto out;
    hdr.protocol = BUNDLE_PROTOCOL;
    hdr.from_cursor = cursor;
    hdr.hub_time = plat_wall_now();

    /* Every bundle opens with the lease in force, so the device always knows the current
     * policy, idle polls and wipe orders included. */
    if ((rc = hub_pack_policy(head, dev.lease_days, &op, &op_len)) != CMC_OK)
        goto out;
    if ((rc = bundle_writer_add_raw(w, op, op_len)) != CMC_OK)
        goto out;

    if (dev.wipe) {
        /* The wipe order is the whole answer; the cursor does not move. */
        struct mp_writer mw;
        cmc_free(op);
        op = NULL;
        mp_writer_init(&mw);
        mp_write_array(&mw, 2);
        mp_write_uint(&mw, BUNDLE_OP_WIPE);
        mp_write_uint(&mw, head);
        if ((rc = mp_writer_finish(&mw, &op, &op_len)) != CMC_OK)
            goto out;
        if ((rc = bundle_writer_add_raw(w, op, op_len)) != CMC_OK)
            goto out;
        hdr.to_cursor = cursor;
        goto finish;
    }

    if ((rc = hub_db_prepare(h, "SELECT 1 FROM caseload WHERE team = ?1 AND nhs = ?2",
                             &v.caseload)) != CMC_OK)
        goto out;
    sqlite3_bind_text(v.caseload, 1, v.value, -1, SQLITE_STATIC);
    if ((rc = hub_db_prepare(h, "SELECT version FROM held WHERE device_id = ?1 AND plan_id = ?2"
                                " ORDER BY to_cursor DESC LIMIT 1", &v.held)) != CMC_OK)
        goto out;
    sqlite3_bind_text(v.held, 1, device_id, -1, SQLITE_STATIC);
    if ((rc = hub_db_prepare(h, "SELECT body FROM versions WHERE plan_id = ?1 AND version = ?2",
                             &v.version)) != CMC_OK)
        goto out;
    /* Purges the device has not acknowledged yet go again, ahead of the new changes. */
    if ((rc = hub_add_nags(h, &v, w, &nags)) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, hub_scan_sql, &scan)) != CMC_OK)
        goto out;
    sqlite3_bind_int64(scan, 1, (sqlite3_int64)cursor);

    while ((src = sqlite3_step(scan)) == SQLITE_ROW) {
        const char *plan_id = hub_col_text(scan, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(scan, 9);
        int64_t target = 0, held = 0;
        const char *reason = NULL;
        int write_op = 1;

        if ((rc = hub_view_target(h, &v, scan, &target, &reason)) != CMC_OK)
            goto out;
        if ((rc = hub_held_version(h, &v, plan_id, &held)) != CMC_OK)
            goto out;
        cmc_free(op);
        op = NULL;
        if (target > 0 && held != target) {
            if ((rc = hub_pack_put(h, &v, plan_id, seq, held, target, &op, &op_len)) != CMC_OK)
                goto out;
        } else if (target == 0 && held > 0) {
            if ((rc = hub_pack_purge(plan_id, seq, reason, &op, &op_len)) != CMC_OK)
                goto out;
            /* Already in this page as a repeated purge: recorded, not sent twice. */
            write_op = !hub_nagged(&nags, plan_id);
        }
        if (op != NULL) {
            /* The cut counts only this scan's ops, so a page full of repeated purges still
             * makes progress. */
            if (write_op && n_scanned_ops > 0 && bundle_writer_raw_size(w) + op_len > budget) {
                more = 1;
                break;
            }
            if (write_op && bundle_writer_count(w) >= BUNDLE_MAX_OPS) {
                more = 1;
                break;
            }
            if (write_op) {
                if ((rc = bundle_writer_add_raw(w, op, op_len)) != CMC_OK)
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
            snprintf(sent[n_sent].plan_id, sizeof sent[n_sent].plan_id, "%s", plan_id);
            sent[n_sent].version = target;
            sent[n_sent].seq = seq;
            sent[n_sent].reason = reason;
            n_sent++;
        }
        last_seq = seq;
    }
    if (!more && src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "pull");
        goto out;
    }
    hdr.to_cursor = more ? last_seq : head;
    if ((rc = hub_record_sent(h, device_id, sent, n_sent, hdr.to_cursor)) != CMC_OK)
        goto out;
    if ((rc = hub_nags_carried(h, device_id, &nags, hdr.to_cursor)) != CMC_OK)
        goto out;
    hdr.flags = (uint16_t)((more ? BUNDLE_FLAG_MORE : 0) | (cursor == 0 ? BUNDLE_FLAG_SNAPSHOT : 0));

finish:
    if (rollback)
        hdr.flags = (uint16_t)(hdr.flags | BUNDLE_FLAG_ROLLBACK);
    if ((rc = bundle_writer_finish(w, &hdr, h->sk, out, len)) != CMC_OK)
        goto out;
    sqlite3_finalize(scan);
    scan = NULL;
    rc = hub_tx_commit(h);
    in_tx = 0;
    if (rc != CMC_OK) {
        cmc_free(*out);
        *out = NULL;
        *len = 0;
    }
out:
    sqlite3_finalize(scan);
    sqlite3_finalize(v.caseload);
    sqlite3_finalize(v.held);
    sqlite3_finalize(v.version);
    if (in_tx)
        hub_tx_rollback(h);
    bundle_writer_free(w);
    cmc_free(nags.ids);
    cmc_free(sent);
    cmc_free(op);
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
    if ((rc = hub_db_prepare(h, "SELECT plan_id, nhs, latest, latest_status, published, region,"
                                " team, care_home, withdrawn, seq FROM plans WHERE plan_id = ?1",
                             &row)) != CMC_OK)
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
                                " (SELECT version FROM held WHERE device_id = d.device_id"
                                "  AND plan_id = ?1 ORDER BY to_cursor DESC LIMIT 1),"
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
