/*
 * store_evidence.c - the published plans the replica holds from after a hub's restored head
 * (agent/store_evidence.h).
 */
#include "agent/store_evidence.h"
#include "agent/store_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/db.h"

int store_evidence_list(store *s, int64_t head, struct store_evidence **out, size_t *n)
{
    struct store_evidence *v = NULL;
    sqlite3_stmt *st = NULL;
    size_t count = 0, cap = 0;
    int row = 0;
    int rc = db_prepare(s->db, "SELECT plan_id, max(version), max(change_seq) FROM plan_versions"
                               " WHERE status = 'published' AND change_seq > ?1"
                               " GROUP BY plan_id ORDER BY plan_id", &st);
    *out = NULL;
    *n = 0;
    if (rc == CMC_OK)
        sqlite3_bind_int64(st, 1, head);
    while (rc == CMC_OK && (rc = db_step(s->db, st, &row)) == CMC_OK && row &&
           (rc = store_grow(&v, count, &cap, sizeof *v, 64)) == CMC_OK) {
        struct store_evidence *e = &v[count++];
        store_copy_text(e->plan_id, sizeof e->plan_id, store_col_text(st, 0));
        e->version = sqlite3_column_int64(st, 1);
        e->change_seq = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != CMC_OK) {
        cmc_free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return CMC_OK;
}
