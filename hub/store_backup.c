/*
 * store_backup.c - backup, restore, and devices that find the hub behind them (hub.h).
 *
 * A store carries a generation id (new at init and at every restore) and a cursor epoch.
 * Restoring an older copy loses every change after it; devices that synced in between hold
 * cursors beyond the restored change log. Marking a restore records the head it restored
 * (restored_head) and moves the change sequence to a new base (epoch_base = epoch << 40), so
 * that the changes made after the restore never reuse the seq values of the lost ones: a
 * device cursor in (restored_head, epoch_base) can only come from the lost timeline. Such a
 * device is answered 409 "hub_rewound" once; its evidence (how far it had seen) is kept in
 * `rewinds` for the operator, and its sync state here is reset so that it re-syncs from the
 * start, keeping its own copy and pending edits (docs/HAZARDS.md H-36). Before it does, it
 * reports the published plans it holds from the lost timeline (POST /v1/evidence): the ones
 * this store has no version that high of join `lost_plans` under that device, so the plans
 * lost with the backup are known even when the store it replaced is gone (H-42).
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_EPOCH_SHIFT 40

/* Plans changed after the backup and lost with it, and each device that had received one of
 * those versions (device_id '' when none had): by the old store's own record (its holdings),
 * filled at a restore from what the store held before it (source 'store'), and by the
 * devices' own evidence after it (source 'device', hub_evidence_record). `reported`, added
 * by a later migration (hub_schema_lost_plans_2), is when the device itself said it holds
 * the version (0: never). */
const char hub_schema_lost_plans[] =
    "CREATE TABLE IF NOT EXISTS lost_plans(plan_id TEXT NOT NULL, device_id TEXT NOT NULL,"
    " name TEXT NOT NULL, version INTEGER NOT NULL, generation TEXT NOT NULL,"
    " PRIMARY KEY(plan_id, device_id, generation));";

const char hub_schema_lost_plans_2[] =
    "ALTER TABLE lost_plans ADD COLUMN source TEXT NOT NULL DEFAULT 'store';"
    "ALTER TABLE lost_plans ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;";

const char hub_schema_rewinds[] =
    "CREATE TABLE IF NOT EXISTS rewinds(device_id TEXT NOT NULL, generation TEXT NOT NULL,"
    " cursor INTEGER NOT NULL, head INTEGER NOT NULL, at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, generation));";

/* A meta value as text (0 when absent). */
static int meta_text(hub *h, const char *k, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, "SELECT v FROM meta WHERE k = ?1", &st);
    out[0] = '\0';
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *v = sqlite3_column_blob(st, 0);
        if (n > 0 && (size_t)n < cap && v != NULL) {
            memcpy(out, v, (size_t)n);
            out[n] = '\0';
        }
    } else if (src != SQLITE_DONE) {
        rc = hub_db_fail(h, src, "meta");
    }
    sqlite3_finalize(st);
    return rc;
}

static int meta_u64(hub *h, const char *k, uint64_t *out)
{
    char buf[32];
    int rc = meta_text(h, k, buf, sizeof buf);
    *out = rc == CMC_OK ? strtoull(buf, NULL, 10) : 0;
    return rc;
}

static int meta_put_u64(hub *h, const char *k, uint64_t v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return hub_meta_put(h, k, buf, (size_t)n);
}

int hub_new_generation(hub *h)
{
    uint8_t raw[16];
    char hex[33];
    cry_random(raw, sizeof raw);
    cry_hex(hex, raw, sizeof raw);
    return hub_meta_put(h, "generation", hex, 32);
}

int hub_restore_point(hub *h)
{
    int rc = meta_u64(h, "restored_head", &h->restored_head);
    if (rc == CMC_OK)
        rc = meta_u64(h, "epoch_base", &h->epoch_base);
    return rc;
}

int hub_generation_get(hub *h, struct hub_generation *out)
{
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = meta_text(h, "generation", out->id, sizeof out->id)) != CMC_OK ||
        (rc = meta_u64(h, "epoch", &out->epoch)) != CMC_OK ||
        (rc = meta_u64(h, "restored_head", &out->restored_head)) != CMC_OK)
        return rc;
    return meta_u64(h, "epoch_base", &out->epoch_base);
}

/* ---- lost plans ------------------------------------------------------------------------ */

struct lost_list {
    struct hub_lost_plan *v;
    size_t n, cap;
};

/* One row of "plan_id, device_id, name, version". */
static void lost_row_read(sqlite3_stmt *st, struct hub_lost_plan *lp)
{
    memset(lp, 0, sizeof *lp);
    hub_col_copy(st, 0, lp->plan_id, sizeof lp->plan_id);
    hub_col_copy(st, 1, lp->device_id, sizeof lp->device_id);
    hub_col_copy(st, 2, lp->name, sizeof lp->name);
    lp->version = sqlite3_column_int64(st, 3);
}

/* From `old`, the store as it was before the restore: every published plan with a change
 * after `head` (the restored log's end) and each device its holdings say received a version
 * after it. */
static int lost_collect(hst_db *old, uint64_t head, struct lost_list *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        old, "SELECT c.plan_id, coalesce(hd.device_id, ''), coalesce(d.name, ''), p.published"
             " FROM (SELECT DISTINCT plan_id FROM changes WHERE seq > ?1) c"
             " JOIN plans p ON p.plan_id = c.plan_id AND p.published > 0"
             " LEFT JOIN holdings h ON h.plan = p.num AND h.to_cursor > ?1"
             " LEFT JOIN holders hd ON hd.num = h.dev"
             " LEFT JOIN devices d ON d.device_id = hd.device_id ORDER BY 1, 2",
        -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)head);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 16;
                struct hub_lost_plan *v = cmc_realloc(out->v, cap * sizeof *v);
                if (v == NULL) {
                    sqlite3_finalize(st);
                    return cmc_fail(CMC_ERR_NOMEM, "lost plans");
                }
                out->v = v;
                out->cap = cap;
            }
            lost_row_read(st, &out->v[out->n++]);
        }
    }
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? CMC_OK : hst_error(old, src, "lost plans (the store before the restore)");
}

/* Keeps the list in the restored store, under its new generation. */
static int lost_record(hub *h, const struct lost_list *l)
{
    struct hub_generation g;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;
    if (l->n == 0)
        return CMC_OK;
    if ((rc = hub_generation_get(h, &g)) != CMC_OK ||
        (rc = hub_db_prepare(h, "INSERT OR IGNORE INTO lost_plans(plan_id, device_id, name, version,"
                                " generation) VALUES(?1, ?2, ?3, ?4, ?5)", &st)) != CMC_OK)
        return rc;
    for (size_t i = 0; i < l->n && src == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, l->v[i].plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, l->v[i].device_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, l->v[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, l->v[i].version);
        sqlite3_bind_text(st, 5, g.id, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "lost plans");
}

static int mark_restored(hub *h);

int hub_restore_lost_from(hub *h, const char *url)
{
    struct lost_list l = { 0 };
    hst_db *old = NULL;
    const char *at = url != NULL ? strchr(url, '@') : NULL, *sep = url != NULL ? strstr(url, "://") : NULL;
    int rc;
    if (hst_kind(h->db) != HST_PG || !hst_is_pg_url(url))
        return cmc_fail(CMC_ERR_USAGE, "--lost-from: the PostgreSQL database as it was before the"
                        " restore (postgresql://USER@HOST:PORT/DB)");
    if (strstr(url, "password=") != NULL ||
        (sep != NULL && at != NULL && memchr(sep + 3, ':', (size_t)(at - sep - 3)) != NULL))
        return cmc_fail(CMC_ERR_USAGE, "--lost-from: put the password in ~/.pgpass or $PGPASSWORD,"
                        " not on the command line");
    /* The old database is reached before anything is marked, so a wrong URL changes nothing. */
    if ((rc = hst_open_pg(url, &old)) != CMC_OK)
        return rc;
    if ((rc = mark_restored(h)) == CMC_OK)
        rc = lost_collect(old, h->restored_head, &l);
    hst_close(old);
    if (rc == CMC_OK)
        rc = lost_record(h, &l);
    cmc_free(l.v);
    return rc;
}

int hub_lost_plans_list(hub *h, int (*cb)(const struct hub_lost_plan *lp, void *ctx), void *ctx)
{
    struct hub_generation g;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;
    if ((rc = hub_generation_get(h, &g)) != CMC_OK ||
        (rc = hub_db_prepare(h, "SELECT l.plan_id, l.device_id, coalesce(d.name, l.name),"
                                " l.version, l.source, l.reported FROM lost_plans l"
                                " LEFT JOIN devices d ON d.device_id = l.device_id"
                                " WHERE l.generation = ?1 ORDER BY l.plan_id, l.device_id",
                             &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, g.id, -1, SQLITE_STATIC);
    struct hub_lost_plan lp;
    while (rc == CMC_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        lost_row_read(st, &lp);
        hub_col_copy(st, 4, lp.source, sizeof lp.source);
        lp.reported = sqlite3_column_int64(st, 5);
        rc = cb(&lp, ctx);
    }
    if (rc == CMC_OK && src != SQLITE_DONE)
        rc = hub_db_fail(h, src, "lost plans");
    sqlite3_finalize(st);
    return rc;
}

/* ---- backup and restore (SQLCipher) ---------------------------------------------------- */

/* Copies every page of `from` into `to` (both keyed with the hub's key). */
static int copy_db(sqlite3 *to, sqlite3 *from, const char *what)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL)
        return db_error(to, sqlite3_errcode(to), what);
    int src;
    do {
        src = sqlite3_backup_step(b, 256);
        if (src == SQLITE_BUSY || src == SQLITE_LOCKED)
            plat_sleep_ms(20);
    } while (src == SQLITE_OK || src == SQLITE_BUSY || src == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    return src == SQLITE_DONE ? CMC_OK : db_error(to, src, what);
}

static int open_with_hub_key(hub *h, const char *file, sqlite3 **out)
{
    return db_open(file, h->key, out);
}

int hub_backup(hub *h, const char *file)
{
    sqlite3 *to = NULL;
    int rc;
    if (hst_kind(h->db) == HST_PG)
        return cmc_fail(CMC_ERR_USAGE, "backup: this hub's store is PostgreSQL: back it up with"
                        " pg_dump, or pg_basebackup and WAL archiving (docs/OPERATIONS.md)");
    if (file == NULL || file[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "backup FILE: where to write the copy");
    if (plat_exists(file))
        return cmc_fail(CMC_ERR_EXISTS, "%s: already exists (a backup never overwrites)", file);
    if ((rc = open_with_hub_key(h, file, &to)) != CMC_OK)
        return rc;
    rc = copy_db(to, hst_sqlite(h->db), "backup");
    db_close(to);
    if (rc != CMC_OK)
        plat_remove(file);
    return rc;
}

/* A new generation, the next epoch, the head restored, and the change sequence moved on. */
static int mark_restored(hub *h)
{
    struct hub_generation g;
    uint64_t head = 0, base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_generation_get(h, &g)) != CMC_OK || (rc = hub_head_seq(h, &head)) != CMC_OK)
        goto fail;
    base = (g.epoch + 1) << HUB_EPOCH_SHIFT;
    if (base <= head)
        base = head + 1;
    if ((rc = hub_new_generation(h)) != CMC_OK || (rc = meta_put_u64(h, "epoch", g.epoch + 1)) != CMC_OK ||
        (rc = meta_put_u64(h, "restored_head", head)) != CMC_OK ||
        (rc = meta_put_u64(h, "epoch_base", base)) != CMC_OK)
        goto fail;
    if (hst_kind(h->db) == HST_SQLITE &&
        (rc = hub_db_exec(h, "DELETE FROM sqlite_sequence WHERE name = 'changes'")) != CMC_OK)
        goto fail;
    rc = hub_db_prepare(h, hst_kind(h->db) == HST_PG
                               ? "SELECT setval(pg_get_serial_sequence('changes', 'seq'), ?1 - 1)"
                               : "INSERT INTO sqlite_sequence(name, seq) VALUES('changes', ?1 - 1)",
                        &st);
    if (rc != CMC_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)base);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE && src != SQLITE_ROW) {
        rc = hub_db_fail(h, src, "restore");
        goto fail;
    }
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        goto fail;
    h->restored_head = head;
    h->epoch_base = base;
    return CMC_OK;
fail:
    hub_tx_rollback(h);
    return rc;
}

int hub_restore(hub *h, const char *file)
{
    sqlite3 *from = NULL;
    int rc;
    if (hst_kind(h->db) == HST_PG) {
        if (file != NULL)
            return cmc_fail(CMC_ERR_USAGE, "restore: this hub's store is PostgreSQL: restore the"
                            " database with pg_restore or point-in-time recovery, then run"
                            " `cmc-hub restore` with no FILE to mark it (docs/OPERATIONS.md)");
        return mark_restored(h);
    }
    if (file == NULL || file[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "restore FILE: a copy made by cmc-hub backup");
    if (!plat_exists(file))
        return cmc_fail(CMC_ERR_NOT_FOUND, "%s: no such backup", file);
    if ((rc = open_with_hub_key(h, file, &from)) != CMC_OK)
        return rc == CMC_ERR_TAMPERED
                   ? cmc_fail(rc, "%s: not a backup of this hub (its key file does not open it)", file)
                   : rc;
    /* What the store holds now and the copy does not: the plans lost with it, and who had
     * them, before the copy replaces it. */
    struct lost_list l = { 0 };
    hst_db *copy = NULL;
    uint64_t head = 0;
    if ((rc = hst_open_sqlite(file, h->key, &copy)) == CMC_OK) {
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(copy, "SELECT coalesce(max(seq), 0) FROM changes", -1, &st, NULL);
        if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
            head = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        rc = src == SQLITE_ROW ? CMC_OK : hst_error(copy, src, "restore (the copy's change log)");
        hst_close(copy);
    }
    if (rc == CMC_OK)
        rc = lost_collect(h->db, head, &l);
    if (rc == CMC_OK) {
        hub_stmt_reset_all(h);
        rc = copy_db(hst_sqlite(h->db), from, "restore");
    }
    db_close(from);
    if (rc == CMC_OK)
        rc = mark_restored(h);
    if (rc == CMC_OK)
        rc = lost_record(h, &l);
    cmc_free(l.v);
    return rc;
}

/* ---- devices ahead of the hub ---------------------------------------------------------- */

int hub_cursor_lost(const hub *h, uint64_t cursor)
{
    return h->epoch_base != 0 && cursor > h->restored_head && cursor < h->epoch_base;
}

int hub_rewind_check(hub *h, const char *device_id, uint64_t cursor)
{
    static const char *const reset[] = {
        "INSERT OR IGNORE INTO rewinds(device_id, generation, cursor, head, at)"
        " VALUES(?1, ?2, ?3, ?4, ?5)",
        "DELETE FROM unproven WHERE dev = (SELECT num FROM holders WHERE device_id = ?1)",
        "DELETE FROM holdings WHERE dev = (SELECT num FROM holders WHERE device_id = ?1)",
        "UPDATE purges SET acked = NULL WHERE device_id = ?1",
        "UPDATE devices SET cursor = 0, proven = 0 WHERE device_id = ?1",
    };
    struct hub_generation g;
    int rc;

    if (!hub_cursor_lost(h, cursor))
        return CMC_OK;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_generation_get(h, &g)) != CMC_OK)
        goto fail;
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) {
        sqlite3_stmt *st = NULL;
        if ((rc = hub_db_prepare(h, reset[i], &st)) != CMC_OK)
            goto fail;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        if (i == 0) {
            sqlite3_bind_text(st, 2, g.id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)cursor);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)h->restored_head);
            sqlite3_bind_int64(st, 5, plat_wall_now());
        }
        int src = sqlite3_step(st);
        sqlite3_finalize(st);
        if (src != SQLITE_DONE) {
            rc = hub_db_fail(h, src, "rewound device");
            goto fail;
        }
    }
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        goto fail;
    plat_log(PLAT_LOG_WARN, "device %s had seen %llu changes this restored hub lost; it"
             " re-syncs from the start", device_id,
             (unsigned long long)(cursor - h->restored_head));
    return cmc_fail(CMC_ERR_STATE, "hub_rewound: the hub was restored from an earlier backup"
                    " (its change log ends at %llu, this device had seen %llu); re-sync from the"
                    " start", (unsigned long long)h->restored_head, (unsigned long long)cursor);
fail:
    hub_tx_rollback(h);
    return rc;
}

int hub_rewinds_list(hub *h, int (*cb)(const struct hub_rewind *r, void *ctx), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, "SELECT r.device_id, coalesce(d.name, ''), r.cursor, r.head, r.at,"
                               " r.generation FROM rewinds r LEFT JOIN devices d"
                               " ON d.device_id = r.device_id ORDER BY r.at DESC, r.device_id",
                            &st);
    int src;
    if (rc != CMC_OK)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct hub_rewind r;
        memset(&r, 0, sizeof r);
        hub_col_copy(st, 0, r.device_id, sizeof r.device_id);
        hub_col_copy(st, 1, r.name, sizeof r.name);
        r.cursor = (uint64_t)sqlite3_column_int64(st, 2);
        r.head = (uint64_t)sqlite3_column_int64(st, 3);
        r.at = sqlite3_column_int64(st, 4);
        hub_col_copy(st, 5, r.generation, sizeof r.generation);
        if ((rc = cb(&r, ctx)) != CMC_OK)
            break;
    }
    if (rc == CMC_OK && src != SQLITE_DONE)
        rc = hub_db_fail(h, src, "rewinds");
    sqlite3_finalize(st);
    return rc;
}

/* ---- devices' evidence of lost plans --------------------------------------------------- */

/* The changes this device saw that the restore lost, (head, cursor], by its rewind under the
 * current generation; CMC_ERR_DENIED when it has none. */
static int evidence_window(hub *h, const char *device_id, const char *gen, uint64_t *head,
                           uint64_t *cursor)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "evidence", &st, "SELECT head, cursor FROM rewinds"
                        " WHERE device_id = ?1 AND generation = ?2",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(gen)));
    if (rc != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_DENIED, "evidence: only a device this restored hub answered"
                        " hub_rewound reports lost plans");
    *head = (uint64_t)sqlite3_column_int64(st, 0);
    *cursor = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return CMC_OK;
}

/* One entry: a row for this device when the store has no version of the plan that high
 * (absent, or its newest lower), and this device's row marked as reported by it. */
static int evidence_put(hub *h, const char *device_id, const char *gen, const struct wire_evidence *e,
                        int64_t now)
{
    int rc = hub_db_run(h, "evidence",
                        "INSERT OR IGNORE INTO lost_plans(plan_id, device_id, name, version,"
                        " generation, source, reported) SELECT ?1, ?2, coalesce((SELECT name FROM"
                        " devices WHERE device_id = ?2), ''), ?3, ?4, 'device', ?5 WHERE NOT EXISTS"
                        " (SELECT 1 FROM versions WHERE plan_id = ?1 AND version >= ?3)",
                        HUB_ARGS(HUB_TEXT(e->plan_id), HUB_TEXT(device_id), HUB_INT(e->version),
                                 HUB_TEXT(gen), HUB_INT(now)));
    if (rc == CMC_OK)
        rc = hub_db_run(h, "evidence", "UPDATE lost_plans SET reported = ?4 WHERE plan_id = ?1"
                        " AND device_id = ?2 AND generation = ?3 AND reported = 0",
                        HUB_ARGS(HUB_TEXT(e->plan_id), HUB_TEXT(device_id), HUB_TEXT(gen),
                                 HUB_INT(now)));
    return rc;
}

int hub_evidence_record(hub *h, const char *device_id, const struct wire_evidence *v, size_t n)
{
    struct hub_generation g;
    uint64_t head = 0, cursor = 0;
    sqlite3_stmt *st = NULL;
    int64_t now = plat_wall_now();
    int rc;

    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_generation_get(h, &g)) == CMC_OK)
        rc = evidence_window(h, device_id, g.id, &head, &cursor);
    for (size_t i = 0; i < n && rc == CMC_OK; i++) {
        if (v[i].seq <= head || v[i].seq > cursor)
            rc = cmc_fail(CMC_ERR_INVALID, "evidence: plans[%zu]: seq %llu is not one of the"
                          " changes this device saw after the restored head (%llu to %llu)", i,
                          (unsigned long long)v[i].seq, (unsigned long long)head + 1,
                          (unsigned long long)cursor);
        else
            rc = evidence_put(h, device_id, g.id, &v[i], now);
    }
    /* A device cannot hold more lost plans than the lost changes it saw. */
    if (rc == CMC_OK &&
        (rc = hub_db_row(h, "evidence", &st, "SELECT count(*) FROM lost_plans WHERE device_id = ?1"
                         " AND generation = ?2 AND reported > 0",
                         HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(g.id)))) == CMC_OK &&
        st != NULL && (uint64_t)sqlite3_column_int64(st, 0) > cursor - head)
        rc = cmc_fail(CMC_ERR_TOO_LARGE, "evidence: more plans than the %llu changes this device"
                      " saw after the restored head", (unsigned long long)(cursor - head));
    sqlite3_finalize(st);
    rc = hub_tx_end(h, rc);
    if (rc == CMC_OK && n > 0)
        plat_log(PLAT_LOG_WARN, "device %s reported %zu plans it holds from after the restored head; see"
                 " `cmc-hub restore report`", device_id, n);
    return rc;
}
