/*
 * test_agent_store_read.c - what the replica shows each session: lookups through the indexes,
 * published-only against drafts slipped into the file, rows whose body and columns disagree,
 * published v1 beside draft v2, identity search and name normalisation.
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

/* ---- helpers --------------------------------------------------------------------------- */

/* Writes a version straight into the replica, as an attacker with the key (or a bug) could,
 * with `status_column` in the status column whatever the body says, and its index row. */
static void insert_raw(store *s, const struct plan *p, const char *status_column)
{
    sqlite3 *db = store_test_db(s);
    uint8_t *body = NULL;
    size_t len = 0;
    sqlite3_stmt *st = NULL;
    assert_int_equal(plan_pack(p, &body, &len), CMC_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO plan_versions (plan_id, version, status,"
                                        " nhs_number, change_seq, received_at, body)"
                                        " VALUES (?, ?, ?, ?, 1, 0, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->version);
    sqlite3_bind_text(st, 3, status_column, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->nhs_number, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, body, (int)len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    int64_t vid = sqlite3_last_insert_rowid(db);
    char family[256], given[256], postcode[64];
    store_name_normalise(p->patient.family_name, family);
    store_name_normalise(p->patient.given_name, given);
    store_postcode_normalise(p->patient.postcode, postcode);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO plan_identity (version_id, plan_id,"
                                        " nhs_number, family_name, given_name, date_of_birth,"
                                        " postcode, postcode_outward)"
                                        " VALUES (?, ?, ?, ?, ?, ?, ?, substr(?7, 1, length(?7) - 3))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, vid);
    sqlite3_bind_text(st, 2, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->nhs_number, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, family, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, given, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->patient.date_of_birth, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, postcode, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    cmc_free(body);
}

/* Log lines captured during a test, to check they never carry patient data. */
static char captured_log[8192];

static void capture_log(enum plat_log_level level, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    size_t used = strlen(captured_log);
    snprintf(captured_log + used, sizeof captured_log - used, "%s\n", line);
}

static int hits_have(const struct store_hit *h, size_t n, const char *plan_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].plan_id, plan_id) == 0)
            return 1;
    return 0;
}

/* A search that finds `want` plans, the first of them `first` (when not NULL). */
static void expect_hits(store *s, const char *name, const char *dob, const char *postcode,
                        size_t want, const char *first)
{
    struct store_hit *h = NULL;
    size_t n = tst_store_search_n(s, name, dob, postcode, &h);
    assert_int_equal(n, want);
    if (first != NULL)
        assert_string_equal(h[0].plan_id, first);
    store_hits_free(h, n);
}

/* ---- tests ----------------------------------------------------------------------------- */

/* A lookup by NHS number, a lookup by plan id and a search never scan a whole table of
 * plans: each statement the store ran reports no full-scan steps but a search's pass over
 * the small identity rows. Once, the planner chose an index that made every lookup read
 * (and decrypt) every plan. */
static void test_lookups_use_indexes(void **state)
{
    struct tst_store_env *f = *state;
    for (int role = STORE_ROLE_URGENT_CARE; role <= STORE_ROLE_CLINICIAN; role++) {
        store *s = tst_store_open_as(f, role);
        if (role == STORE_ROLE_URGENT_CARE) {
            for (unsigned i = 0; i < 40; i++) {
                struct plan p;
                tst_plan_make(&p, 300 + i, PLAN_STATUS_PUBLISHED, 1);
                tst_store_put(s, &p, i + 1);
                plan_free(&p);
            }
        }
        for (unsigned i = 0; i < 40; i += 7) {
            char nhs[PLAN_NHS_LEN + 1], id[PLAN_ID_LEN + 1];
            struct plan out;
            tst_make_nhs(300 + i, nhs);
            tst_make_plan_id(300 + i, id);
            assert_int_equal(store_plan_get(s, nhs, &out), CMC_OK);
            plan_free(&out);
            assert_int_equal(store_plan_get(s, id, &out), CMC_OK);
            plan_free(&out);
        }
        int seen_nhs = 0, seen_id = 0;
        for (sqlite3_stmt *st = sqlite3_next_stmt(store_test_db(s), NULL); st != NULL;
             st = sqlite3_next_stmt(store_test_db(s), st)) {
            const char *sql = sqlite3_sql(st);
            if (strstr(sql, "nhs_number = ?1") == NULL && strstr(sql, "v.plan_id = ?1") == NULL)
                continue;
            seen_nhs |= strstr(sql, "nhs_number = ?1") != NULL;
            seen_id |= strstr(sql, "v.plan_id = ?1") != NULL;
            assert_int_equal(sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0), 0);
        }
        assert_true(seen_nhs && seen_id);
        store_close(s);
    }
}

static void test_published_only_against_slipped_drafts(void **state)
{
    struct tst_store_env *f = *state;
    struct plan pub, honest, liar, got;
    tst_plan_make(&pub, 1, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_make(&honest, 2, PLAN_STATUS_DRAFT, 1);
    tst_plan_make(&liar, 3, PLAN_STATUS_DRAFT, 1);
    /* All three are "Okafor" so one search could return all of them. */
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_put(s, &pub, 1);
    insert_raw(s, &honest, "draft");
    insert_raw(s, &liar, "published");
    store_close(s);

    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    captured_log[0] = '\0';
    plat_log_set_sink(capture_log, NULL);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, pub.nhs_number, &got), CMC_OK);
    assert_string_equal(got.plan_id, pub.plan_id);
    plan_free(&got);
    /* The honest draft: not there for urgent care, by NHS number or by plan id. */
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    assert_int_equal(store_plan_get(s, honest.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    /* The lying row: never shown. */
    int rc = store_plan_get(s, liar.nhs_number, &got);
    assert_true(rc == CMC_ERR_TAMPERED || rc == CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    rc = store_plan_get(s, liar.plan_id, &got);
    assert_int_equal(rc, CMC_ERR_TAMPERED);
    assert_null(got.plan_id);
    assert_null(strstr(cmc_errmsg(), liar.nhs_number));

    struct store_hit *hits = NULL;
    size_t n = tst_store_search_n(s, "okafor", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, pub.plan_id);
    assert_int_equal(hits[0].status, PLAN_STATUS_PUBLISHED);
    store_hits_free(hits, n);
    n = tst_store_search_n(s, NULL, "1938-04-17", "SE15 4QT", &hits);
    assert_int_equal(n, 1);
    store_hits_free(hits, n);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, pub.plan_id);
    store_hits_free(hits, n);

    /* The decoding count skips the lying row; the kept count follows the columns (it reads
     * no body) and store_verify below names the row. */
    struct store_counts c;
    assert_int_equal(store_counts_scan(s, &c), CMC_OK);
    assert_int_equal(c.visible, 1);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 0);
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.visible, 2);
    assert_int_equal(c.drafts, 0);
    /* The full check names the problem. */
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    assert_non_null(strstr(cmc_errmsg(), liar.plan_id));
    assert_null(strstr(cmc_errmsg(), liar.nhs_number));
    store_close(s);
    /* Skipped rows were logged by plan id, never by NHS number or name. */
    plat_log_set_sink(NULL, NULL);
    assert_non_null(strstr(captured_log, liar.plan_id));
    assert_null(strstr(captured_log, liar.nhs_number));
    assert_null(strstr(captured_log, "Okafor"));

    /* A clinician sees the honest draft, still never the lying row. */
    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_OK);
    assert_int_equal(got.status, PLAN_STATUS_DRAFT);
    assert_string_equal(got.plan_id, honest.plan_id);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, liar.plan_id, &got), CMC_ERR_TAMPERED);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_true(hits_have(hits, n, honest.plan_id));
    assert_true(hits_have(hits, n, pub.plan_id));
    assert_false(hits_have(hits, n, liar.plan_id));
    store_hits_free(hits, n);
    assert_int_equal(store_counts_scan(s, &c), CMC_OK);
    assert_int_equal(c.visible, 2);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 1);
    store_close(s);

    /* Even a redefined view does not let a draft through: each urgent-care statement
     * repeats the status condition itself. */
    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_exec(s, "DROP VIEW urgent_care_plans;"
                   "CREATE VIEW urgent_care_plans AS SELECT * FROM plan_versions;", NULL);
    assert_int_equal(store_plan_get(s, honest.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_false(hits_have(hits, n, honest.plan_id));
    store_hits_free(hits, n);
    store_close(s);
    plan_free(&pub);
    plan_free(&honest);
    plan_free(&liar);
}

/* A body that says "published" under a row that also says "published" but for another
 * patient (plan id, NHS number or version swapped) is refused too. */
static void test_row_body_mismatch_is_tampered(void **state)
{
    struct tst_store_env *f = *state;
    struct plan a, b, got;
    tst_plan_make(&a, 11, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_make(&b, 12, PLAN_STATUS_PUBLISHED, 1);
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_put(s, &a, 1);
    tst_store_put(s, &b, 2);
    /* Swap the bodies: a's row now holds b's plan. */
    tst_store_exec(s, "UPDATE plan_versions SET body = (SELECT body FROM plan_versions"
                   " WHERE id = 2) WHERE id = 1", NULL);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, a.nhs_number, &got), CMC_ERR_TAMPERED);
    assert_null(got.plan_id);
    assert_int_equal(store_plan_get(s, b.nhs_number, &got), CMC_OK);
    plan_free(&got);
    /* A search for a's name no longer offers the wrong patient's plan under a's row. */
    struct store_hit *hits = NULL;
    size_t n = 0;
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, b.plan_id);
    store_hits_free(hits, n);
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    /* Garbage in a body: tampered, not a crash. */
    tst_store_exec(s, "UPDATE plan_versions SET body = x'8501020304' WHERE id = 2", NULL);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_TAMPERED);
    store_close(s);
    plan_free(&a);
    plan_free(&b);
}

static void test_published_v1_draft_v2(void **state)
{
    struct tst_store_env *f = *state;
    struct plan v1, v2, got;
    tst_plan_make(&v1, 20, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_make(&v2, 20, PLAN_STATUS_DRAFT, 2);
    tst_set_str(&v2.prognosis, "days");

    store *s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    tst_store_put(s, &v1, 1);
    tst_store_put(s, &v2, 2);
    assert_int_equal(store_verify(s), CMC_OK);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, v1.plan_id, &got), CMC_OK);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.status, PLAN_STATUS_DRAFT);
    assert_true(plan_equal(&got, &v2));
    plan_free(&got);
    struct store_hit *hits = NULL;
    size_t n = tst_store_search_n(s, "margaret", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 2);
    assert_int_equal(hits[0].status, PLAN_STATUS_DRAFT);
    store_hits_free(hits, n);
    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.visible, 1);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 1);
    store_close(s);

    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_plan_get(s, v1.nhs_number, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    assert_int_equal(got.status, PLAN_STATUS_PUBLISHED);
    assert_string_equal(got.prognosis, "weeks to months");
    assert_true(plan_equal(&got, &v1));
    plan_free(&got);
    assert_int_equal(store_plan_get(s, v1.plan_id, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    plan_free(&got);
    n = tst_store_search_n(s, "margaret", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 1);
    assert_int_equal(hits[0].status, PLAN_STATUS_PUBLISHED);
    store_hits_free(hits, n);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 1);
    store_hits_free(hits, n);
    store_close(s);
    plan_free(&v1);
    plan_free(&v2);
}

static void test_identity_search(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p[5];
    const char *ids[5];
    tst_plan_make(&p[0], 40, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p[0], "Margaret", "Okafor", "1938-04-17", "SE15 4QT");
    tst_plan_make(&p[1], 41, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p[1], "Mark", "Okafor", "1938-04-17", "SE1 7PB");
    tst_plan_make(&p[2], 42, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p[2], "Zo\xc3\xab", "O'Brien-Smith", "1950-01-01", "N1 9GU");
    tst_plan_make(&p[3], 43, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p[3], "Anna", "Smith", "1944-12-01", "se15 5ab");
    tst_plan_make(&p[4], 44, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p[4], "J\xc3\xb3zef", "Wi\xc5\x9bniewski", "1932-06-30", "W1A 1AA");
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    for (int i = 0; i < 5; i++) {
        tst_store_put(s, &p[i], i + 1);
        ids[i] = p[i].plan_id;
    }
    struct store_hit *h = NULL;
    size_t n;

    n = tst_store_search_n(s, "oka", NULL, NULL, &h);
    assert_int_equal(n, 2);
    /* Best first, then by name: Margaret before Mark. */
    assert_string_equal(h[0].plan_id, ids[0]);
    assert_string_equal(h[1].plan_id, ids[1]);
    assert_string_equal(h[0].given_name, "Margaret");
    assert_string_equal(h[0].postcode, "SE15 4QT");
    assert_string_equal(h[0].date_of_birth, "1938-04-17");
    assert_non_null(h[0].address);
    assert_string_equal(h[0].nhs_number, p[0].nhs_number);
    store_hits_free(h, n);

    expect_hits(s, "MARG", NULL, NULL, 1, ids[0]);
    expect_hits(s, "margaret okafor", NULL, NULL, 1, ids[0]);
    expect_hits(s, "Okafor  Mark", NULL, NULL, 1, ids[1]);
    expect_hits(s, "ma oka", NULL, NULL, 2, NULL);
    /* Accents and punctuation: typed without them, or with. */
    expect_hits(s, "zoe", NULL, NULL, 1, ids[2]);
    expect_hits(s, "O'BRIEN", NULL, NULL, 1, ids[2]);
    expect_hits(s, "obrien-sm", NULL, NULL, 1, NULL);
    expect_hits(s, "jozef wisniewski", NULL, NULL, 1, ids[4]);
    expect_hits(s, "smith", NULL, NULL, 1, ids[3]);
    expect_hits(s, "nobody", NULL, NULL, 0, NULL);

    /* Date of birth, exact. */
    n = tst_store_search_n(s, NULL, "1938-04-17", NULL, &h);
    assert_int_equal(n, 2);
    assert_true(hits_have(h, n, ids[0]) && hits_have(h, n, ids[1]));
    store_hits_free(h, n);
    expect_hits(s, NULL, "1938-04-18", NULL, 0, NULL);

    /* Postcode: spaces and case ignored; a full code or an outward code. */
    expect_hits(s, NULL, NULL, "se154qt", 1, ids[0]);
    expect_hits(s, NULL, NULL, " SE15  4QT ", 1, NULL);
    n = tst_store_search_n(s, NULL, NULL, "SE15", &h);
    assert_int_equal(n, 2);
    assert_true(hits_have(h, n, ids[0]) && hits_have(h, n, ids[3]));
    store_hits_free(h, n);
    n = tst_store_search_n(s, NULL, NULL, "se1", &h); /* SE1 is not SE15 */
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[1]);
    store_hits_free(h, n);
    n = tst_store_search_n(s, NULL, NULL, "SE15 4", &h); /* sector */
    assert_int_equal(n, 1);
    store_hits_free(h, n);

    /* Criteria combine. */
    expect_hits(s, "okafor", "1938-04-17", "SE1", 1, ids[1]);
    expect_hits(s, "okafor", "1950-01-01", NULL, 0, NULL);

    /* Limit and bad queries. */
    struct store_query q = {"oka", NULL, NULL};
    assert_int_equal(store_search(s, &q, 1, &h, &n), CMC_OK);
    assert_int_equal(n, 1);
    store_hits_free(h, n);
    struct store_query none = {NULL, NULL, NULL};
    assert_int_equal(store_search(s, &none, 10, &h, &n), CMC_ERR_USAGE);
    struct store_query bad_dob = {NULL, "17/04/1938", NULL};
    assert_int_equal(store_search(s, &bad_dob, 10, &h, &n), CMC_ERR_INVALID);
    struct store_query punct = {"'-", NULL, NULL};
    assert_int_equal(store_search(s, &punct, 10, &h, &n), CMC_ERR_INVALID);

    /* store_list: ordered by family, given. */
    assert_int_equal(store_list(s, &h, &n), CMC_OK);
    assert_int_equal(n, 5);
    assert_string_equal(h[0].plan_id, ids[2]); /* obriensmith */
    assert_string_equal(h[1].plan_id, ids[0]); /* okafor margaret */
    assert_string_equal(h[2].plan_id, ids[1]); /* okafor mark */
    assert_string_equal(h[3].plan_id, ids[3]); /* smith */
    assert_string_equal(h[4].plan_id, ids[4]); /* wisniewski */
    store_hits_free(h, n);
    store_close(s);
    for (int i = 0; i < 5; i++)
        plan_free(&p[i]);
}

static void test_normalisation(void **state)
{
    (void)state;
    char out[64];
    store_name_normalise("O'Brien-Smith", out);
    assert_string_equal(out, "obriensmith");
    store_name_normalise("Zo\xc3\xab \xc3\x89lise", out);
    assert_string_equal(out, "zoeelise");
    store_name_normalise("Stra\xc3\x9f" "e \xc5\x92uvre \xc3\x86thel", out);
    assert_string_equal(out, "strasseoeuvreaethel");
    store_name_normalise("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd", out); /* Cyrillic kept as typed */
    assert_string_equal(out, "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd");
    store_name_normalise("bad\xff\xc3", out); /* broken UTF-8 is dropped, not copied */
    assert_string_equal(out, "bad");
    store_name_normalise(NULL, out);
    assert_string_equal(out, "");
    store_postcode_normalise(" se15 4qt\t", out);
    assert_string_equal(out, "SE154QT");
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_lookups_use_indexes,
         test_published_only_against_slipped_drafts, test_row_body_mismatch_is_tampered,
         test_published_v1_draft_v2, test_identity_search, test_normalisation)
