/*
 * store_counts.c - the plan counts `status` and the web page show, as the replica keeps them.
 *
 * Replica migration 6 (agent/store_schema.c) adds plan_heads (one row per plan: has it a
 * published version, is its newest version published) and plan_counts (their sums), kept by
 * triggers on plan_versions and plan_heads in the same transaction as every insert, prune,
 * purge and wipe. Reading them is one row: `cmc-agent status` no longer decodes every plan
 * (at 100k plans that took over a second). store_counts_check recounts the same figures from
 * the rows' columns, for store_verify.
 */
#include "agent/store.h"
#include "agent/store_int.h"

#include "platform/err.h"
#include "sync/db.h"

#include <inttypes.h>
#include <string.h>

/* plans, plans with a published version, plans whose newest version is published */
struct head_sums {
    int64_t plans;
    int64_t published;
    int64_t newest_published;
};

static int read_sums(store *s, const char *sql, struct head_sums *out)
{
    sqlite3_stmt *st = NULL;
    int rc, has_row = 0;

    memset(out, 0, sizeof *out);
    if ((rc = store_stmt_get(s, sql, &st)) != CMC_OK)
        return rc;
    if ((rc = db_step(s->db, st, &has_row)) == CMC_OK && !has_row)
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: the plan counts are missing");
    if (rc == CMC_OK) {
        out->plans = sqlite3_column_int64(st, 0);
        out->published = sqlite3_column_int64(st, 1);
        out->newest_published = sqlite3_column_int64(st, 2);
    }
    store_stmt_put(s, st);
    return rc;
}

int store_counts_get(store *s, struct store_counts *out)
{
    struct head_sums h;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = read_sums(s, "SELECT plans, published, newest_published FROM plan_counts WHERE id = 1",
                        &h)) != CMC_OK)
        return rc;
    if (s->session.role == STORE_ROLE_CLINICIAN) {
        /* and the drafts of the clinical file (store_drafts.c): plans only they hold, plans
         * whose newest version is one of them */
        int64_t only = 0, newer = 0;
        if ((rc = store_drafts_counts(s, &only, &newer)) != CMC_OK)
            return rc;
        out->visible = h.plans + only;
        out->published = h.published;
        out->drafts = h.plans - h.newest_published + only + newer;
    } else {
        /* Urgent care is not told that drafts exist: drafts stays 0. */
        out->visible = h.published;
        out->published = h.published;
    }
    return store_counts_local(s, out);
}

int store_counts_check(store *s)
{
    struct head_sums kept, heads, rows;
    int rc;

    if ((rc = read_sums(s, "SELECT plans, published, newest_published FROM plan_counts WHERE id = 1",
                        &kept)) != CMC_OK ||
        (rc = read_sums(s,
                        "SELECT count(*), coalesce(sum(has_published), 0),"
                        " coalesce(sum(newest_published), 0) FROM plan_heads",
                        &heads)) != CMC_OK ||
        (rc = read_sums(s,
                        "SELECT count(*), coalesce(sum(pub), 0), coalesce(sum(newest), 0) FROM"
                        " (SELECT max(p.status = 'published') AS pub,"
                        "   (SELECT q.status = 'published' FROM plan_versions q"
                        "    WHERE q.plan_id = p.plan_id ORDER BY q.version DESC LIMIT 1) AS newest"
                        "  FROM plan_versions p GROUP BY p.plan_id)",
                        &rows)) != CMC_OK)
        return rc;
    if (memcmp(&kept, &rows, sizeof rows) != 0 || memcmp(&heads, &rows, sizeof rows) != 0)
        return cmc_fail(CMC_ERR_TAMPERED,
                        "replica: kept plan counts (%" PRId64 " plans, %" PRId64
                        " published) disagree with the rows (%" PRId64 ", %" PRId64 ")",
                        kept.plans, kept.published, rows.plans, rows.published);
    return CMC_OK;
}
