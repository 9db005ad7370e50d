/*
 * store_audit.c - rows of the audit table (store.h). The hash chain, its anchor and what an
 * entry means belong to agent/audit.c; this file only reads and writes the rows.
 */
#include "agent/audit.h"
#include "agent/store.h"
#include "agent/store_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/db.h"

#include <string.h>

#define AUDIT_HASH_BYTES 32

int store_audit_last(store *s, int64_t *seq, uint8_t hash[32], int *found)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    memset(hash, 0, AUDIT_HASH_BYTES);
    *seq = 0;
    *found = 0;
    int rc = store_stmt_get(s, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &st);
    if (rc == CMC_OK)
        rc = db_step(s->db, st, &row);
    if (rc == CMC_OK && row) {
        *found = 1;
        *seq = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) != AUDIT_HASH_BYTES)
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log: entry %lld has a damaged hash",
                          (long long)*seq);
        else
            memcpy(hash, sqlite3_column_blob(st, 1), AUDIT_HASH_BYTES);
    }
    store_stmt_put(s, st);
    return rc;
}

int store_audit_append(store *s, const struct audit_entry *e)
{
    return store_exec_bound(s,
                            "INSERT INTO audit (seq, prev_hash, hash, device, user, role, plan_id,"
                            " identifier, action, wall_time, mono, seal)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                            "ibbttttttiib", e->seq, e->prev, sizeof e->prev, e->hash, sizeof e->hash,
                            e->device, e->user, e->role, e->plan_id, e->identifier, e->action,
                            e->wall, e->mono, e->sealed ? e->seal : NULL, sizeof e->seal);
}

static void entry_from_row(sqlite3_stmt *st, struct audit_entry *e)
{
    memset(e, 0, sizeof *e);
    e->seq = sqlite3_column_int64(st, 0);
    if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_BYTES)
        memcpy(e->prev, sqlite3_column_blob(st, 1), AUDIT_HASH_BYTES);
    if (sqlite3_column_bytes(st, 2) == AUDIT_HASH_BYTES)
        memcpy(e->hash, sqlite3_column_blob(st, 2), AUDIT_HASH_BYTES);
    store_copy_text(e->device, sizeof e->device, store_col_text(st, 3));
    store_copy_text(e->user, sizeof e->user, store_col_text(st, 4));
    store_copy_text(e->role, sizeof e->role, store_col_text(st, 5));
    store_copy_text(e->plan_id, sizeof e->plan_id, store_col_text(st, 6));
    store_copy_text(e->identifier, sizeof e->identifier, store_col_text(st, 7));
    store_copy_text(e->action, sizeof e->action, store_col_text(st, 8));
    e->wall = sqlite3_column_int64(st, 9);
    e->mono = sqlite3_column_int64(st, 10);
    if (sqlite3_column_bytes(st, 11) == AUDIT_HASH_BYTES) {
        memcpy(e->seal, sqlite3_column_blob(st, 11), AUDIT_HASH_BYTES);
        e->sealed = 1;
    }
}

int store_audit_range(store *s, int64_t after_seq, size_t max, struct audit_entry **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct audit_entry *v = NULL;
    size_t count = 0, cap = 0;
    int row = 0;
    *out = NULL;
    *n = 0;
    int rc =
        store_stmt_get(s,
                       "SELECT seq, prev_hash, hash, device, user, role, plan_id, identifier,"
                       " action, wall_time, mono, seal FROM audit WHERE seq > ?1 ORDER BY seq"
                       " LIMIT ?2",
                       &st);
    if (rc == CMC_OK && (rc = store_bind_int(s, st, 1, after_seq)) == CMC_OK)
        rc = store_bind_int(s, st, 2, max == 0 ? -1 : (int64_t)max);
    while (rc == CMC_OK && (rc = db_step(s->db, st, &row)) == CMC_OK && row) {
        if ((rc = store_grow(&v, count, &cap, sizeof *v, 64)) != CMC_OK)
            break;
        entry_from_row(st, &v[count++]);
    }
    store_stmt_put(s, st);
    if (rc != CMC_OK) {
        cmc_free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return CMC_OK;
}

int store_audit_hash_at(store *s, int64_t seq, uint8_t hash[32], int *found, int *intact)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    memset(hash, 0, AUDIT_HASH_BYTES);
    *found = 0;
    *intact = 0;
    int rc = store_stmt_get(s, "SELECT hash FROM audit WHERE seq = ?1", &st);
    if (rc == CMC_OK && (rc = store_bind_int(s, st, 1, seq)) == CMC_OK)
        rc = db_step(s->db, st, &row);
    if (rc == CMC_OK && row) {
        *found = 1;
        if (sqlite3_column_bytes(st, 0) == AUDIT_HASH_BYTES) {
            memcpy(hash, sqlite3_column_blob(st, 0), AUDIT_HASH_BYTES);
            *intact = 1;
        }
    }
    store_stmt_put(s, st);
    return rc;
}

int store_audit_prune(store *s, int64_t through_seq)
{
    return store_exec_bound(s, "DELETE FROM audit WHERE seq <= ?1", "i", through_seq);
}
