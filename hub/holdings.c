/*
 * holdings.c - what each device holds, as the hub recorded it from the pages it sent
 * (feed.h; the model is described atop feed.c): holder numbers, the holdings rows, the
 * device's unproven pages, purge records and rollbacks, and `plan show`'s list of holders.
 */
#include "hub/feed.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

/* Steps a statement that returns no rows and resets it. */
static int hub_step_done(hub *h, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return hub_db_fail(h, src, what);
    return CMC_OK;
}

/* ---- holdings -------------------------------------------------------------------------- */

int hub_holder_get(hub *h, const char *device_id, struct hub_holder *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;
    memset(out, 0, sizeof *out);
    if ((rc = hub_feed_stmt(h, HUB_FEED_HOLDER, "SELECT num FROM holders WHERE device_id = ?1",
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
        enum hub_feed_stmt_slot id;
        const char *sql;
    } steps[] = {
        { HUB_FEED_PAGE_RESTORE,
          "UPDATE holdings SET version = prev_version, to_cursor = prev_cursor,"
          " prev_version = NULL, prev_cursor = NULL WHERE dev = ?1"
          " AND plan IN (SELECT value FROM json_each(?2)) AND to_cursor > ?3"
          " AND prev_version IS NOT NULL AND prev_cursor <= ?3" },
        { HUB_FEED_PAGE_DROP,
          "DELETE FROM holdings WHERE dev = ?1 AND plan IN (SELECT value FROM json_each(?2))"
          " AND to_cursor > ?3" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = hub_feed_stmt(h, steps[i].id, steps[i].sql, &st);
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
int hub_holdings_commit_point(hub *h, const char *device_id, struct hub_holder *hd,
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
        if ((rc = hub_feed_stmt(h, HUB_FEED_PAGES, "SELECT to_cursor, plans FROM unproven"
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
            if ((rc = hub_feed_stmt(h, HUB_FEED_PAGE_FORGET, "DELETE FROM unproven WHERE dev = ?1"
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
        if ((rc = hub_feed_stmt(h, HUB_FEED_ROLLBACK_DROP,
                                "DELETE FROM holdings WHERE dev = ?1 AND to_cursor > ?2", &st)) !=
            CMC_OK)
            return rc;
        sqlite3_bind_int64(st, 1, hd->num);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)applied);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
    }
    if (applied != prev) {
        if ((rc = hub_feed_stmt(h, HUB_FEED_CURSOR, "UPDATE devices SET cursor = ?2"
                                                    " WHERE device_id = ?1", &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)applied);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* Holdings written per statement: a page of a hundred changed plans is four statements, not
 * a hundred (on PostgreSQL each is a round trip). 2 + 2 x 31 values: the most a PostgreSQL
 * statement takes here (hstore_pg.c). */
#define HUB_HOLDINGS_ROWS 31

/* Writes the holdings of n <= HUB_HOLDINGS_ROWS sent plans in one statement, each row keeping
 * the one it replaced. A full chunk's statement is kept; a shorter one is prepared anew (on
 * PostgreSQL its translation is cached per text). */
static int hub_holdings_put(hub *h, int64_t dev, uint64_t to_cursor, const struct hub_sent *sent,
                            size_t n)
{
    char sql[HUB_HOLDINGS_ROWS * 24 + 320];
    size_t off;
    sqlite3_stmt *st = NULL;
    int rc;

    off = (size_t)snprintf(sql, sizeof sql, "INSERT INTO holdings(dev, plan, version, to_cursor)"
                                            " VALUES");
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(sql + off, sizeof sql - off, "%s(?1, ?%zu, ?%zu, ?2)",
                                i > 0 ? ", " : "", 3 + 2 * i, 4 + 2 * i);
    snprintf(sql + off, sizeof sql - off,
             " ON CONFLICT(dev, plan) DO UPDATE SET prev_version = version,"
             " prev_cursor = to_cursor, version = excluded.version,"
             " to_cursor = excluded.to_cursor");
    rc = n == HUB_HOLDINGS_ROWS ? hub_feed_stmt(h, HUB_FEED_HOLDING_PUT, sql, &st)
                                : hub_db_prepare(h, sql, &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_int64(st, 1, dev);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)to_cursor);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, (int)(3 + 2 * i), sent[i].plan);
        sqlite3_bind_int64(st, (int)(4 + 2 * i), sent[i].version);
    }
    rc = hub_step_done(h, st, "holdings");
    if (n != HUB_HOLDINGS_ROWS)
        sqlite3_finalize(st);
    return rc;
}

/* Records what the page gave the device: its holdings (each row keeping the one it replaced
 * until the page is proven), the page itself as one of the device's unproven ones, and for
 * purges an open purge record (a new purge of a plan restarts its acknowledgement); a put
 * closes any purge record of the plan, since the device is meant to hold it again. */
int hub_record_sent(hub *h, const char *device_id, struct hub_holder *hd,
                           const struct hub_sent *sent, size_t n, uint64_t to_cursor)
{
    sqlite3_stmt *st = NULL;
    struct hub_text plans = {NULL, 0, 0};
    int64_t now = plat_wall_now();
    int has_purges = 0, rc, src;
    char num[32];

    if (n == 0)
        return CMC_OK;
    if (hd->num == 0) {
        if ((rc = hub_feed_stmt(h, HUB_FEED_HOLDER_ADD, "INSERT INTO holders(device_id) VALUES(?1)",
                                &st)) != CMC_OK)
            return rc;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        if ((rc = hub_step_done(h, st, "holdings")) != CMC_OK)
            return rc;
        hd->num = sqlite3_last_insert_rowid(h->db);
    }
    /* Closing purge records costs a look-up per put; a device without any skips them. */
    if ((rc = hub_feed_stmt(h, HUB_FEED_HAS_PURGES, "SELECT 1 FROM purges WHERE device_id = ?1"
                                                    " LIMIT 1", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return hub_db_fail(h, src, "purges");
    has_purges = src == SQLITE_ROW;

    if ((rc = hub_text_add(&plans, "[", 1)) != CMC_OK)
        goto out;
    for (size_t i = 0; i < n; i += HUB_HOLDINGS_ROWS)
        if ((rc = hub_holdings_put(h, hd->num, to_cursor, sent + i,
                                   n - i < HUB_HOLDINGS_ROWS ? n - i : HUB_HOLDINGS_ROWS)) != CMC_OK)
            goto out;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof num, "%s%lld", i > 0 ? "," : "", (long long)sent[i].plan);
        if ((rc = hub_text_add(&plans, num, (size_t)k)) != CMC_OK)
            goto out;
        if (sent[i].version == 0) {
            if ((rc = hub_feed_stmt(h, HUB_FEED_PURGE_OPEN,
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
            if ((rc = hub_feed_stmt(h, HUB_FEED_PURGE_CLOSE,
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
    if ((rc = hub_feed_stmt(h, HUB_FEED_PAGE_ADD, "INSERT OR REPLACE INTO unproven(dev, to_cursor,"
                                                  " plans) VALUES(?1, ?2, ?3)", &st)) != CMC_OK)
        goto out;
    sqlite3_bind_int64(st, 1, hd->num);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)to_cursor);
    sqlite3_bind_text(st, 3, plans.p, (int)plans.len, SQLITE_STATIC);
    rc = hub_step_done(h, st, "holdings");
out:
    cmc_free(plans.p);
    return rc;
}

/* A restored replica: reopen every purge first sent in a page the restored copy never
 * applied, and note when it happened. Logged by device id only. */
int hub_note_rollback(hub *h, const char *device_id, uint64_t proven, uint64_t cursor)
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

/* A purge record's cursor is the lowest to_cursor of the pages that carried it, so that an
 * acknowledgement (which follows the commit of one of them) never claims more than the device
 * committed, and a rollback below any of them reopens it. */
int hub_nags_carried(hub *h, const char *device_id, const struct hub_nags *nags,
                            uint64_t to_cursor)
{
    sqlite3_stmt *st = NULL;
    int rc = CMC_OK;
    if (nags->n == 0)
        return CMC_OK;
    if ((rc = hub_feed_stmt(h, HUB_FEED_PURGE_CARRIED, "UPDATE purges SET cursor = ?3"
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
