/*
 * test_agent_store_counts.c - the plan counts the replica keeps (store_counts_get, read by
 * `cmc-agent status` without decoding any plan) equal a full decoding scan
 * (store_counts_scan) after every kind of change: puts, new versions over old ones, drafts
 * over published versions, prunes, purges, a bulk-loaded snapshot, a wipe of every row, and
 * a replica whose counts were filled by the migration from rows already there.
 */
#include "agent/store.h"
#include "agent/store_sync.h"
#include "agent/store_test.h"
#include "platform/err.h"
#include "sync/plan.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"
#include "tests/support/run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Kept counts equal the scan, for both roles, and the figures are the expected ones. */
static void expect_counts(const struct tst_store_env *f, int64_t plans, int64_t published,
                          int64_t drafts)
{
    for (int role = STORE_ROLE_URGENT_CARE; role <= STORE_ROLE_CLINICIAN; role++) {
        store *s = tst_store_open_as(f, role);
        struct store_counts kept, scan;
        assert_int_equal(store_counts_get(s, &kept), CMC_OK);
        assert_int_equal(store_counts_scan(s, &scan), CMC_OK);
        assert_memory_equal(&kept, &scan, sizeof kept);
        if (role == STORE_ROLE_CLINICIAN) {
            assert_int_equal(kept.visible, plans);
            assert_int_equal(kept.drafts, drafts);
        } else {
            assert_int_equal(kept.visible, published);
            assert_int_equal(kept.drafts, 0);
        }
        assert_int_equal(kept.published, published);
        assert_int_equal(store_verify(s), CMC_OK);
        store_close(s);
    }
}

static void put(store *s, unsigned n, int status, int64_t version, int64_t seq)
{
    struct plan p;
    tst_plan_make(&p, n, status, version);
    tst_store_put(s, &p, seq);
    plan_free(&p);
}

static void test_counts_follow_puts_prunes_purges(void **state)
{
    struct tst_store_env *f = *state;
    expect_counts(f, 0, 0, 0);

    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    for (unsigned i = 0; i < 12; i++)
        put(s, 100 + i, PLAN_STATUS_PUBLISHED, 1, i + 1);
    put(s, 200, PLAN_STATUS_DRAFT, 1, 20); /* a plan that was never published */
    store_close(s);
    expect_counts(f, 13, 12, 1);

    /* A draft over a published version: still published (v1), newest not published. */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    put(s, 100, PLAN_STATUS_DRAFT, 2, 30);
    put(s, 101, PLAN_STATUS_PUBLISHED, 2, 31); /* a newer published version */
    put(s, 101, PLAN_STATUS_PUBLISHED, 2, 32); /* the same version again: replaced */
    store_close(s);
    expect_counts(f, 13, 12, 2);

    /* Prune keeps the newest and the newest published version: nothing changes. */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    char id[PLAN_ID_LEN + 1];
    for (unsigned n = 100; n <= 101; n++) {
        tst_make_plan_id(n, id);
        assert_int_equal(store_sync_prune(s, id), CMC_OK);
    }
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 14);
    /* The draft is published as version 3: v1 and v2 go at the next prune. */
    put(s, 100, PLAN_STATUS_PUBLISHED, 3, 40);
    tst_make_plan_id(100, id);
    assert_int_equal(store_sync_prune(s, id), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_versions WHERE plan_id = ?1", id),
                     1);
    store_close(s);
    expect_counts(f, 13, 12, 1);

    /* Purges: a published plan, the never-published draft, a plan not held. */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_make_plan_id(102, id);
    assert_int_equal(store_purge(s, id, "consent withdrawn", 50, NULL), CMC_OK);
    tst_make_plan_id(200, id);
    assert_int_equal(store_purge(s, id, "withdrawn", 51, NULL), CMC_OK);
    tst_make_plan_id(999, id);
    assert_int_equal(store_purge(s, id, "withdrawn", 52, NULL), CMC_OK);
    store_close(s);
    expect_counts(f, 11, 11, 0);

    /* A wipe of every row (as a replica emptied in place would be). */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_exec(s, "DELETE FROM plan_identity; DELETE FROM plan_versions;", NULL);
    store_close(s);
    expect_counts(f, 0, 0, 0);
}

/* A multi-page snapshot sets the indexes aside and loads in one batch: the counts follow. */
static void test_counts_follow_a_bulk_snapshot(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_batch_begin(s), CMC_OK);
    assert_int_equal(store_bulk_begin(s), CMC_OK);
    for (unsigned i = 0; i < 200; i++) {
        struct plan p;
        tst_plan_make(&p, 1000 + i, PLAN_STATUS_PUBLISHED, 1 + i % 3);
        assert_int_equal(store_put_version(s, &p, i + 1), CMC_OK);
        plan_free(&p);
    }
    assert_int_equal(store_bulk_end(s), CMC_OK);
    assert_int_equal(store_batch_commit(s), CMC_OK);
    store_close(s);
    expect_counts(f, 200, 200, 0);
}

/* A replica made before the counts were kept: the migration fills them from its rows, and a
 * count that drifted (a trigger dropped by something other than this code) is reported by
 * store_verify. */
static void test_counts_filled_by_migration_and_checked(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    put(s, 300, PLAN_STATUS_PUBLISHED, 1, 1);
    put(s, 300, PLAN_STATUS_DRAFT, 2, 2);
    put(s, 301, PLAN_STATUS_PUBLISHED, 1, 3);
    put(s, 302, PLAN_STATUS_DRAFT, 1, 4);
    /* Back to the schema before migration 6, then reopen: the migration runs again. */
    tst_store_exec(s, "DROP TABLE plan_heads; DROP TABLE plan_counts;"
                   "DROP TRIGGER IF EXISTS plan_versions_head_ins;"
                   "DROP TRIGGER IF EXISTS plan_versions_head_del;"
                   "DROP TRIGGER IF EXISTS plan_versions_head_upd;"
                   "DROP TABLE plan_seals; ALTER TABLE audit DROP COLUMN seal;"
                   "PRAGMA user_version = 5;", NULL);
    store_close(s);
    expect_counts(f, 3, 2, 2);

    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_exec(s, "UPDATE plan_counts SET plans = plans + 5;", NULL);
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    store_close(s);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_counts_follow_puts_prunes_purges,
         test_counts_follow_a_bulk_snapshot, test_counts_filled_by_migration_and_checked)
