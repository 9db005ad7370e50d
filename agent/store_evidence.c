/*
 * store_evidence.c - the published plans the replica holds from after a hub's restored head
 * (agent/store_evidence.h).
 */
#include "agent/store_evidence.h"
#include "agent/store_int.h"

#include "platform/err.h"
#include "sync/db.h"

int store_evidence_each(store *s, int64_t head, store_evidence_fn cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = db_prepare(s->db, "SELECT plan_id, max(version), max(change_seq) FROM plan_versions"
                               " WHERE status = 'published' AND change_seq > ?1"
                               " GROUP BY plan_id ORDER BY plan_id", &st);
    if (rc == CMC_OK)
        sqlite3_bind_int64(st, 1, head);
    while (rc == CMC_OK && (rc = db_step(s->db, st, &row)) == CMC_OK && row)
        rc = cb(store_col_text(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                ctx);
    sqlite3_finalize(st);
    return rc;
}
