/*
 * test_agent_store.c - opening the device replica: nothing readable at rest, tamper and
 * wrong-key detection, migrations, bad keys and lookups, running out of memory. Reads are
 * tested in test_agent_store_read.c, sync writes in _sync.c, pending edits in _pending.c,
 * the lease in _lease.c.
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
#include "tests/support/example_plan.h"
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

/* ---- tests ----------------------------------------------------------------------------- */

static void test_open_rules(void **state)
{
    struct tst_store_env *f = *state;
    struct store_session sess = { .user = "crew", .role = STORE_ROLE_NONE };
    store *s = (store *)1;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_DENIED);
    assert_null(s);
    sess.role = 7;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_DENIED);
    sess.role = STORE_ROLE_URGENT_CARE;
    sess.user[0] = '\0';
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_USAGE);
    assert_null(s);
    store_close(NULL);

    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_string_equal(store_session_of(s)->user, "crew");
    assert_int_equal(store_session_of(s)->role, STORE_ROLE_URGENT_CARE);
    store_close(s);

    assert_int_equal(store_role_from_name("urgent_care"), STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_role_from_name("clinician"), STORE_ROLE_CLINICIAN);
    assert_int_equal(store_role_from_name("admin"), STORE_ROLE_NONE);
    assert_int_equal(store_role_from_name(NULL), STORE_ROLE_NONE);
    assert_string_equal(store_role_name(STORE_ROLE_URGENT_CARE), "urgent_care");
    assert_null(store_role_name(STORE_ROLE_NONE));
}

static void test_no_plaintext_at_rest(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p, got;
    tst_plan_make(&p, 4242, PLAN_STATUS_PUBLISHED, 1);
    tst_set_str(&p.what_matters_to_me, "Being at home. " MARKER);
    char nhs[PLAN_NHS_LEN + 1];
    snprintf(nhs, sizeof nhs, "%s", p.nhs_number);

    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_put(s, &p, 1);
    assert_int_equal(store_state_set(s, "cursor", "17"), CMC_OK);
    /* Open: data is in the WAL (and -shm exists). */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(plat_exists(wal), 1);
    assert_false(tst_dir_contains(f->dir, MARKER));
    assert_false(tst_dir_contains(f->dir, nhs));
    /* ... and it is really there, readable through the key. */
    plan_init(&got);
    assert_int_equal(store_plan_get(s, nhs, &got), CMC_OK);
    assert_non_null(strstr(got.what_matters_to_me, MARKER));
    plan_free(&got);
    assert_int_equal(store_checkpoint(s), CMC_OK);
    assert_false(tst_dir_contains(f->dir, MARKER));
    assert_false(tst_dir_contains(f->dir, nhs));
    store_close(s);
    assert_false(tst_dir_contains(f->dir, MARKER));
    assert_false(tst_dir_contains(f->dir, nhs));

    /* The scan finds what is there (so "not found" above means something). */
    char control[160];
    snprintf(control, sizeof control, "%s/control", f->dir);
    assert_int_equal(plat_write_atomic(control, nhs, strlen(nhs)), CMC_OK);
    assert_true(tst_dir_contains(f->dir, nhs));
    assert_int_equal(plat_remove(control), CMC_OK);
    plan_free(&p);
}

static void test_wrong_key_is_tampered(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p;
    tst_plan_make(&p, 1, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_put(s, &p, 1);
    store_close(s);

    struct cry_secret *other = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &other), CMC_OK);
    cry_random(other->buf, other->len);
    struct store_session sess = { .user = "crew", .role = STORE_ROLE_URGENT_CARE };
    s = (store *)1;
    assert_int_equal(store_open(f->path, other, &sess, &s), CMC_ERR_TAMPERED);
    assert_null(s);
    cry_secret_free(other);
    plan_free(&p);
}

/* A flipped byte anywhere in the file (after close) is found by store_open, store_verify or
 * a read: never silently returned. */
static void test_flipped_byte_is_detected(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    for (unsigned i = 0; i < 12; i++) {
        struct plan p;
        tst_plan_make(&p, 100 + i, PLAN_STATUS_PUBLISHED, 1);
        tst_store_put(s, &p, i + 1);
        plan_free(&p);
    }
    store_close(s);

    uint8_t *orig = NULL, *copy = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(f->path, 64u << 20, &orig, &len), CMC_OK);
    assert_int_equal(len % DB_PAGE_SIZE, 0);
    copy = cmc_malloc(len);
    assert_non_null(copy);
    size_t pages = len / DB_PAGE_SIZE;
    assert_true(pages > 3);
    char first_id[PLAN_ID_LEN + 1];
    tst_make_plan_id(100, first_id);
    for (size_t pg = 0; pg < pages; pg++) {
        memcpy(copy, orig, len);
        copy[pg * DB_PAGE_SIZE + 1500] ^= 0x04;
        assert_int_equal(plat_write_atomic(f->path, copy, len), CMC_OK);
        struct store_session sess = { .user = "nurse", .role = STORE_ROLE_CLINICIAN };
        store *t = NULL;
        int rc = store_open(f->path, f->key, &sess, &t);
        if (rc == CMC_OK) {
            rc = store_verify(t);
            store_close(t);
        }
        if (rc != CMC_ERR_TAMPERED)
            fail_msg("page %zu: expected tampered, got %s", pg, cmc_errname(rc));
    }

    /* A damaged data page also fails an ordinary read with TAMPERED (not a wrong plan).
     * From the last page down: a page the list does not read (an index) leaves it whole;
     * the first page it reads fails it. */
    struct store_hit *hits = NULL;
    size_t n = 0;
    int failed_read = 0;
    for (size_t pg = pages - 1; pg > 0 && !failed_read; pg--) {
        memcpy(copy, orig, len);
        copy[pg * DB_PAGE_SIZE + 2000] ^= 0x40;
        assert_int_equal(plat_write_atomic(f->path, copy, len), CMC_OK);
        struct store_session sess = { .user = "nurse", .role = STORE_ROLE_CLINICIAN };
        s = NULL;
        hits = NULL;
        n = 0;
        int rc = store_open(f->path, f->key, &sess, &s);
        if (rc == CMC_OK)
            rc = store_list(s, &hits, &n);
        if (rc == CMC_ERR_TAMPERED) {
            assert_null(hits);
            failed_read = 1;
        } else {
            assert_int_equal(rc, CMC_OK);
            assert_int_equal(n, 12);
            store_hits_free(hits, n);
        }
        store_close(s);
    }
    assert_true(failed_read);

    /* The original passes everything. */
    assert_int_equal(plat_write_atomic(f->path, orig, len), CMC_OK);
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_verify(s), CMC_OK);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 12);
    store_hits_free(hits, n);
    store_close(s);
    cmc_free(copy);
    cmc_free(orig);
}

static void test_migrations(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p, got;
    int64_t v = 0;
    tst_plan_make(&p, 70, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    static const char *const tables[] = {"plan_versions", "plan_identity", "tombstones",
                                         "sync_state",    "pending_edits", "merges",
                                         "audit"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND name = ?",
                                 tables[i]),
                         1);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"
                                " AND name = 'urgent_care_plans'",
                             NULL),
                     1);
    /* Step 4 dropped the conflicts table nothing used. */
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sqlite_master WHERE name = 'conflicts'", NULL),
                     0);
    tst_store_put(s, &p, 1);
    assert_int_equal(store_state_set(s, "hub", "https://hub.example"), CMC_OK);
    store_close(s);

    /* Reopening runs nothing again (re-running would fail on existing tables). */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, p.plan_id, &got), CMC_OK);
    plan_free(&got);

    /* A replica left at version 1 gets exactly step 2 on the next open. */
    tst_store_exec(s, "DROP TABLE pending_edits; DROP TABLE merges;"
                   "DROP TABLE audit;"
                   "DROP TABLE plan_seals;"
                   "PRAGMA user_version = 1;", NULL);
    store_close(s);
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    assert_int_equal(store_pending_add(s, p.plan_id, 1, (const uint8_t *)"\x90", 1, NULL), CMC_OK);
    assert_int_equal(store_plan_get(s, p.plan_id, &got), CMC_OK);
    plan_free(&got);
    char *hub = NULL;
    assert_int_equal(store_state_get(s, "hub", &hub), CMC_OK);
    assert_string_equal(hub, "https://hub.example");
    cmc_free(hub);

    /* A replica at version 3 still has its conflicts table: step 4 drops it (and the
     * store gives pending edits their signature column). */
    tst_store_exec(s, "CREATE TABLE conflicts (id INTEGER PRIMARY KEY);"
                   "DROP TABLE plan_seals;"
                   "ALTER TABLE audit DROP COLUMN seal;"
                   "ALTER TABLE pending_edits DROP COLUMN user_sig;"
                   "PRAGMA user_version = 3;", NULL);
    store_close(s);
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sqlite_master WHERE name = 'conflicts'", NULL),
                     0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM pragma_table_info('pending_edits')"
                                          " WHERE name = 'user_sig'", NULL),
                     1);

    /* A replica from a newer program is refused, not misread. */
    tst_store_exec(s, "PRAGMA user_version = 99", NULL);
    store_close(s);
    struct store_session sess = { .user = "nurse", .role = STORE_ROLE_CLINICIAN };
    s = (store *)1;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_STATE);
    assert_null(s);
    plan_free(&p);
}

static void test_bad_keys_and_lookups(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p, got;
    tst_plan_make(&p, 96, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_put(s, &p, 1);
    plan_init(&got);
    char spaced[16];
    snprintf(spaced, sizeof spaced, "%.3s %.3s %.4s", p.nhs_number, p.nhs_number + 3,
             p.nhs_number + 6);
    assert_int_equal(store_plan_get(s, spaced, &got), CMC_OK);
    assert_string_equal(got.plan_id, p.plan_id);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, "1234567890", &got), CMC_ERR_INVALID); /* check digit */
    assert_int_equal(store_plan_get(s, "0000000000-0000-4000-8000-0000000000", &got),
                     CMC_ERR_INVALID);
    assert_int_equal(store_plan_get(s, NULL, &got), CMC_ERR_USAGE);
    char upper[PLAN_ID_LEN + 1];
    tst_make_plan_id(12, upper);
    assert_int_equal(store_plan_get(s, upper, &got), CMC_ERR_NOT_FOUND);
    store_close(s);
    plan_free(&p);
}

/* Out of memory at any allocation: an error, nothing half-written, nothing leaked. */
static void test_out_of_memory(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p, got;
    tst_plan_make(&p, 97, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    int done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        cmc_alloc_fail_after(n, 1);
        int rc = store_put_version(s, &p, 1);
        cmc_alloc_fail_after(-1, 0);
        int64_t rows = tst_store_sql_int(s, "SELECT count(*) FROM plan_versions", NULL);
        int64_t idx = tst_store_sql_int(s, "SELECT count(*) FROM plan_identity", NULL);
        if (rc == CMC_OK) {
            done = 1;
            assert_int_equal(rows, 1);
            assert_int_equal(idx, 1);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_int_equal(rows, 0);
            assert_int_equal(idx, 0);
        }
    }
    assert_true(done);
    done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        plan_init(&got);
        cmc_alloc_fail_after(n, 1);
        int rc = store_plan_get(s, p.plan_id, &got);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            assert_true(plan_equal(&got, &p));
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(got.plan_id);
        }
        plan_free(&got);
    }
    assert_true(done);
    done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        struct store_hit *h = NULL;
        size_t cnt = 0;
        cmc_alloc_fail_after(n, 1);
        int rc = store_list(s, &h, &cnt);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            assert_int_equal(cnt, 1);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(h);
        }
        store_hits_free(h, cnt);
    }
    assert_true(done);
    store_close(s);

    done = 0;
    for (long n = 0; n < 200 && !done; n++) {
        struct store_session sess = { .user = "crew", .role = STORE_ROLE_URGENT_CARE };
        store *t = (store *)1;
        cmc_alloc_fail_after(n, 1);
        int rc = store_open(f->path, f->key, &sess, &t);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            store_close(t);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(t);
        }
    }
    assert_true(done);
    plan_free(&p);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_open_rules, test_no_plaintext_at_rest,
         test_wrong_key_is_tampered, test_flipped_byte_is_detected, test_migrations,
         test_bad_keys_and_lookups, test_out_of_memory)
