/*
 * test_agent_store_sync.c - what the sync engine writes: drafts only where the device's role
 * allows them, purges that leave no copy and refuse replays, batches that commit all or
 * nothing, and sync state.
 */
#include "agent/store.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/db.h"
#include "sync/plan.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"
#include "tests/support/run.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MARKER "QUOKKA-TEST-MARKER-55821"

/* ---- helpers --------------------------------------------------------------------------- */

/* Rows (in any table of the replica, any column) whose value contains `needle`. */
static int64_t logical_occurrences(sqlite3 *db, const char *needle)
{
    sqlite3_stmt *tables = NULL;
    int64_t hits = 0;
    size_t nlen = strlen(needle);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type = 'table'",
                                        -1, &tables, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char sql[256];
        sqlite3_stmt *rows = NULL;
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tables, 0));
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &rows, NULL), SQLITE_OK);
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(rows); c++) {
                const uint8_t *b = sqlite3_column_blob(rows, c);
                size_t len = (size_t)sqlite3_column_bytes(rows, c);
                for (size_t i = 0; b != NULL && len >= nlen && i <= len - nlen; i++)
                    if (memcmp(b + i, needle, nlen) == 0) {
                        hits++;
                        break;
                    }
            }
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    return hits;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_drafts_stored_only_where_allowed(void **state)
{
    struct tst_store_env *f = *state;
    struct plan d, got;
    tst_plan_make(&d, 30, PLAN_STATUS_AWAITING_APPROVAL, 1);
    plan_init(&got);
    /* A device enrolled for urgent care refuses drafts, whoever the session is. */
    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_state_set(s, STORE_STATE_DEVICE_ROLE, "urgent_care"), CMC_OK);
    assert_int_equal(store_put_version(s, &d, 1), CMC_ERR_DENIED);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_identity", NULL), 0);
    store_close(s);

    /* A clinician device holds them, even when an urgent-care user syncs... */
    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_set(s, STORE_STATE_DEVICE_ROLE, "clinician"), CMC_OK);
    tst_store_put(s, &d, 1);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 1);
    /* ... and urgent care still cannot read them. */
    assert_int_equal(store_plan_get(s, d.plan_id, &got), CMC_ERR_NOT_FOUND);
    /* An invalid plan is refused before anything is written. */
    d.version = 0;
    d.status = PLAN_STATUS_PUBLISHED;
    assert_int_equal(store_put_version(s, &d, 2), CMC_ERR_INVALID);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 1);
    store_close(s);
    plan_free(&d);
}

static void test_purge_leaves_no_copy(void **state)
{
    struct tst_store_env *f = *state;
    struct plan v1, v2, other, got;
    tst_plan_make(&v1, 50, PLAN_STATUS_PUBLISHED, 1);
    tst_set_str(&v1.social_support, "Neighbour " MARKER " checks in.");
    tst_plan_make(&v2, 50, PLAN_STATUS_DRAFT, 2);
    tst_set_str(&v2.social_support, "Neighbour " MARKER " checks in daily.");
    tst_plan_make(&other, 51, PLAN_STATUS_PUBLISHED, 1);
    char nhs[PLAN_NHS_LEN + 1], id[PLAN_ID_LEN + 1];
    snprintf(nhs, sizeof nhs, "%s", v1.nhs_number);
    snprintf(id, sizeof id, "%s", v1.plan_id);

    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_put(s, &v1, 3);
    tst_store_put(s, &v2, 4);
    tst_store_put(s, &other, 5);
    static const uint8_t change[] = {0x91, 0x93, 0x01, 0x05, 0xa1, 'x'};
    assert_int_equal(store_pending_add(s, id, 2, change, sizeof change, NULL), CMC_OK);
    assert_int_equal(store_pending_add(s, id, 1, change, sizeof change, NULL), CMC_OK);
    assert_int_equal(store_pending_add(s, other.plan_id, 1, change, sizeof change, NULL), CMC_OK);
    /* Merge state holds whole plans: it must go too. */
    tst_store_exec(s, "INSERT INTO merges (plan_id, base, local, remote, created_at)"
                   " SELECT plan_id, body, body, body, 0 FROM plan_versions WHERE plan_id = ? AND version = 1",
                   id);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM merges WHERE plan_id = ?", id), 1);
    assert_int_equal(store_checkpoint(s), CMC_OK);
    assert_true(logical_occurrences(store_test_db(s), nhs) > 0); /* the scan sees it first */

    int discarded = -1;
    assert_int_equal(store_purge(s, id, "consent_withdrawn", 10, &discarded), CMC_OK);
    assert_int_equal(discarded, 2);

    /* Gone from every table and index, for every role. */
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions WHERE plan_id = ?", id), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_identity WHERE plan_id = ?", id), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_identity WHERE nhs_number = ?", nhs), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM pending_edits WHERE plan_id = ?", id), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM merges WHERE plan_id = ?", id), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM pending_edits", NULL), 1); /* other's */
    plan_init(&got);
    assert_int_equal(store_plan_get(s, nhs, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_plan_get(s, id, &got), CMC_ERR_NOT_FOUND);
    struct store_hit *h = NULL;
    size_t n = tst_store_search_n(s, NULL, "1938-04-17", NULL, &h);
    assert_int_equal(n, 1); /* only the other plan */
    assert_string_equal(h[0].plan_id, other.plan_id);
    store_hits_free(h, n);
    struct store_counts counts;
    assert_int_equal(store_counts_get(s, &counts), CMC_OK);
    assert_int_equal(counts.visible, 1);
    assert_int_equal(counts.pending, 1);
    assert_int_equal(counts.conflicts, 0);
    assert_int_equal(counts.tombstones, 1);

    /* The tombstone: a hash of the NHS number, never the number. */
    sqlite3_stmt *st = tst_store_row(s, "SELECT nhs_hash, reason, change_seq FROM tombstones WHERE plan_id = ?", id);
    uint8_t want[CRY_HASH_BYTES];
    cry_hash(want, nhs, strlen(nhs));
    assert_int_equal(sqlite3_column_bytes(st, 0), CRY_HASH_BYTES);
    assert_memory_equal(sqlite3_column_blob(st, 0), want, CRY_HASH_BYTES);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "consent_withdrawn");
    assert_int_equal(sqlite3_column_int64(st, 2), 10);
    sqlite3_finalize(st);

    /* A replayed older bundle cannot bring it back. */
    assert_int_equal(store_put_version(s, &v1, 3), CMC_ERR_STATE);
    assert_int_equal(store_put_version(s, &v1, 10), CMC_ERR_STATE);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions WHERE plan_id = ?", id), 0);

    /* After the checkpoint the WAL is empty and nothing holds the data. */
    assert_int_equal(store_checkpoint(s), CMC_OK);
    char wal[160];
    uint64_t wal_size = 1;
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(plat_file_size(wal, &wal_size), CMC_OK);
    assert_int_equal(wal_size, 0);
    assert_int_equal(logical_occurrences(store_test_db(s), nhs), 0);
    assert_int_equal(logical_occurrences(store_test_db(s), MARKER), 0);
    /* Control: the other plan is still found (row column, body, index, its pending edit's
     * copy of the base version). */
    assert_int_equal(logical_occurrences(store_test_db(s), other.nhs_number), 4);
    assert_false(tst_dir_contains(f->dir, nhs));
    assert_false(tst_dir_contains(f->dir, MARKER));
    assert_int_equal(store_verify(s), CMC_OK);
    store_close(s);
    assert_false(tst_dir_contains(f->dir, nhs));
    assert_false(tst_dir_contains(f->dir, MARKER));

    /* A later change (the plan shared again) is accepted. */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_put(s, &v1, 11);
    assert_int_equal(store_plan_get(s, id, &got), CMC_OK);
    plan_free(&got);
    /* Purging twice is harmless; an older purge does not move the tombstone back. */
    assert_int_equal(store_purge(s, id, "left_scope", 12, NULL), CMC_OK);
    assert_int_equal(store_purge(s, id, "not_shared", 7, &discarded), CMC_OK);
    assert_int_equal(discarded, 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT change_seq FROM tombstones WHERE plan_id = ?", id), 12);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM tombstones WHERE reason = 'left_scope'", NULL),
                     1);
    /* Purging a plan never held still leaves a tombstone (without a hash). */
    char never[PLAN_ID_LEN + 1];
    tst_make_plan_id(999, never);
    assert_int_equal(store_purge(s, never, "left_scope", 13, NULL), CMC_OK);
    assert_int_equal(
        tst_store_sql_int(s, "SELECT count(*) FROM tombstones WHERE plan_id = ? AND nhs_hash IS NULL", never),
        1);
    assert_int_equal(store_purge(s, "not-a-uuid", "left_scope", 14, NULL), CMC_ERR_INVALID);
    store_close(s);
    plan_free(&v1);
    plan_free(&v2);
    plan_free(&other);
}

static void test_batch_is_all_or_nothing(void **state)
{
    struct tst_store_env *f = *state;
    struct plan a, b, got;
    char *v = NULL;
    tst_plan_make(&a, 60, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_make(&b, 61, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    plan_init(&got);

    /* Rolled back: nothing. */
    assert_int_equal(store_batch_begin(s), CMC_OK);
    assert_int_equal(store_batch_begin(s), CMC_ERR_STATE);
    tst_store_put(s, &a, 1);
    assert_int_equal(store_state_set_int(s, "cursor", 1), CMC_OK);
    assert_int_equal(store_purge(s, b.plan_id, "left_scope", 1, NULL), CMC_OK);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_OK); /* visible inside */
    plan_free(&got);
    store_batch_rollback(s);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_get(s, "cursor", &v), CMC_ERR_NOT_FOUND);
    assert_null(v);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM tombstones", NULL), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_identity", NULL), 0);
    assert_int_equal(store_batch_commit(s), CMC_ERR_STATE);
    store_batch_rollback(s); /* nothing open: harmless */

    /* Committed: all of it, the cursor included. A refused op inside the batch leaves the
     * rest intact (each op is its own savepoint). */
    assert_int_equal(store_purge(s, b.plan_id, "left_scope", 5, NULL), CMC_OK);
    assert_int_equal(store_batch_begin(s), CMC_OK);
    tst_store_put(s, &a, 6);
    assert_int_equal(store_put_version(s, &b, 4), CMC_ERR_STATE);
    assert_int_equal(store_state_set_int(s, "cursor", 6), CMC_OK);
    assert_int_equal(store_checkpoint(s), CMC_ERR_STATE);
    assert_int_equal(store_batch_commit(s), CMC_OK);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_OK);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_NOT_FOUND);
    int64_t cursor = 0;
    assert_int_equal(store_state_get_int(s, "cursor", &cursor), CMC_OK);
    assert_int_equal(cursor, 6);

    /* A batch left open is rolled back by close (as by a crash). */
    assert_int_equal(store_batch_begin(s), CMC_OK);
    assert_int_equal(store_state_set_int(s, "cursor", 99), CMC_OK);
    tst_store_put(s, &b, 7);
    store_close(s);
    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_get_int(s, "cursor", &cursor), CMC_OK);
    assert_int_equal(cursor, 6);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_NOT_FOUND);
    store_close(s);
    plan_free(&a);
    plan_free(&b);
}

static void test_sync_state(void **state)
{
    struct tst_store_env *f = *state;
    char *v = NULL;
    int64_t x = 0;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_get(s, "cursor", &v), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_get_int(s, "cursor", &x), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_set(s, "hub_key", "abc"), CMC_OK);
    assert_int_equal(store_state_set(s, "hub_key", "def"), CMC_OK);
    assert_int_equal(store_state_get(s, "hub_key", &v), CMC_OK);
    assert_string_equal(v, "def");
    cmc_free(v);
    assert_int_equal(store_state_get_int(s, "hub_key", &x), CMC_ERR_CORRUPT);
    assert_int_equal(store_state_set_int(s, "cursor", INT64_C(9007199254740993)), CMC_OK);
    assert_int_equal(store_state_get_int(s, "cursor", &x), CMC_OK);
    assert_int_equal(x, INT64_C(9007199254740993));
    assert_int_equal(store_state_set(s, "", "x"), CMC_ERR_USAGE);

    store_close(s);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_drafts_stored_only_where_allowed,
         test_purge_leaves_no_copy, test_batch_is_all_or_nothing, test_sync_state)
