/*
 * audit_forge - test tool: what someone who knows one user's PIN can do to the device's
 * audit log before it is uploaded (the PIN from CMC_PIN, the user from CMC_USER or the first
 * slot; nothing secret on the command line).
 *
 *   audit_forge DIR trim N        deletes the newest N entries
 *   audit_forge DIR rewrite SEQ   turns entry SEQ into a "list" of no plan, then recomputes
 *                                 the BLAKE2b chain of it and every later entry and seals
 *                                 them again with the only key the device still has (the
 *                                 current one), as a thief would
 *
 * exit 0 when done, 2 otherwise.
 */
#include "crypto/fss.h"
#include "sync/wire.h"
#include "tests/tools/tool_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int trim(sqlite3 *db, long n)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "DELETE FROM audit WHERE seq > (SELECT max(seq) FROM audit) - %ld", n);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : 2;
}

static void text_col(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static int rewrite(sqlite3 *db, long at)
{
    sqlite3_stmt *st = NULL, *up = NULL, *kq = NULL;
    uint8_t key[CRY_FSS_KEY_BYTES], prev[CRY_HASH_BYTES];
    int have_key = 0, first = 1, rc = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM sync_state WHERE key = 'audit_seal_key'", -1,
                           &kq, NULL) == SQLITE_OK &&
        sqlite3_step(kq) == SQLITE_ROW)
        have_key = cry_unhex(key, sizeof key, (const char *)sqlite3_column_text(kq, 0)) == CMC_OK;
    sqlite3_finalize(kq);
    if (sqlite3_prepare_v2(db, "SELECT seq, prev_hash, user, role, plan_id, identifier, action,"
                               " wall_time, mono FROM audit WHERE seq >= ?1 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE audit SET prev_hash = ?2, hash = ?3, plan_id = ?4,"
                               " action = ?5, seal = ?6 WHERE seq = ?1", -1, &up, NULL) != SQLITE_OK)
        return 2;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_bind_int64(st, 1, at);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        struct wire_audit_entry e;
        memset(&e, 0, sizeof e);
        e.seq = (uint64_t)sqlite3_column_int64(st, 0);
        if (first && sqlite3_column_bytes(st, 1) == CRY_HASH_BYTES)
            memcpy(prev, sqlite3_column_blob(st, 1), CRY_HASH_BYTES);
        memcpy(e.prev, prev, CRY_HASH_BYTES);
        text_col(st, 2, e.user, sizeof e.user);
        text_col(st, 3, e.role, sizeof e.role);
        text_col(st, 4, e.plan_id, sizeof e.plan_id);
        text_col(st, 5, e.identifier, sizeof e.identifier);
        text_col(st, 6, e.action, sizeof e.action);
        e.wall = sqlite3_column_int64(st, 7);
        e.mono = sqlite3_column_int64(st, 8);
        if (first) { /* the view disappears: a list of nothing in its place */
            e.plan_id[0] = '\0';
            snprintf(e.action, sizeof e.action, "list");
        }
        first = 0;
        if (wire_audit_entry_hash(&e, e.hash) != CMC_OK)
            rc = 2;
        if (have_key)
            cry_fss_seal(key, e.seq, e.hash, e.seal);
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, (sqlite3_int64)e.seq);
        sqlite3_bind_blob(up, 2, e.prev, CRY_HASH_BYTES, SQLITE_TRANSIENT);
        sqlite3_bind_blob(up, 3, e.hash, CRY_HASH_BYTES, SQLITE_TRANSIENT);
        sqlite3_bind_text(up, 4, e.plan_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up, 5, e.action, -1, SQLITE_TRANSIENT);
        if (have_key)
            sqlite3_bind_blob(up, 6, e.seal, CRY_HASH_BYTES, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(up, 6);
        if (rc == 0 && sqlite3_step(up) != SQLITE_DONE)
            rc = 2;
        memcpy(prev, e.hash, CRY_HASH_BYTES);
    }
    sqlite3_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    cry_memzero(key, sizeof key);
    return first ? 2 : rc; /* no such entry: nothing was forged */
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "trim") != 0 && strcmp(argv[2], "rewrite") != 0)) {
        fprintf(stderr, "usage: audit_forge DIR trim N | audit_forge DIR rewrite SEQ\n");
        return 2;
    }
    long arg = strtol(argv[3], NULL, 10);
    struct tool_slots t;
    if (tool_open_replica(argv[1], &t) != CMC_OK || arg < 1) {
        if (t.db == NULL)
            fprintf(stderr, "audit_forge: %s\n", cmc_errmsg());
        tool_slots_free(&t);
        return 2;
    }
    int rc = strcmp(argv[2], "trim") == 0 ? trim(t.db, arg) : rewrite(t.db, arg);
    if (rc != 0)
        fprintf(stderr, "audit_forge: %s failed: %s\n", argv[2], sqlite3_errmsg(t.db));
    tool_slots_free(&t);
    return rc;
}
