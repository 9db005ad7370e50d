/*
 * test_agent_store_drafts.c - plan versions that are not published live under the role key
 * (agent/store_drafts.c): a clinician session keeps them in the clinical file; an urgent-care
 * session's sync seals them to the box key, and the next clinician session opens them; their
 * seals, counts, purges, verify and search keep working; drafts left in an old replica move.
 */
#include "agent/store.h"
#include "agent/store_sync.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/plan.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MARKER "SECRETDRAFTMARKER"

/* The replica's fixture, a role key, and plan n's published version 3 and draft version 4
 * (which holds MARKER). */
struct drafts_env {
    struct tst_store_env *f;
    struct cry_secret *role_key;
    struct plan pub, draft;
};

static store *open_as(const struct drafts_env *e, int role, const struct cry_secret *role_key)
{
    return tst_store_open_keyed(e->f, role, role_key, NULL);
}

static int setup(void **state)
{
    struct drafts_env *e = calloc(1, sizeof *e);
    if (e == NULL || tst_store_setup(state) != 0)
        return -1;
    e->f = *state;
    if (cry_secret_new(CRY_KEY_BYTES, &e->role_key) != CMC_OK)
        return -1;
    cry_random(e->role_key->buf, CRY_KEY_BYTES);
    tst_plan_make(&e->pub, 41, PLAN_STATUS_PUBLISHED, 3);
    tst_plan_set_identity(&e->pub, "Ada", "Lovelace", "1950-01-02", "SE1 4QT");
    if (plan_copy(&e->draft, &e->pub) != CMC_OK)
        return -1;
    e->draft.status = PLAN_STATUS_AWAITING_APPROVAL;
    e->draft.version = 4;
    tst_set_str(&e->draft.patient.preferred_name, MARKER);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct drafts_env *e = *state;
    plan_free(&e->pub);
    plan_free(&e->draft);
    cry_secret_free(e->role_key);
    *state = e->f;
    free(e);
    return tst_store_teardown(state);
}

static int64_t not_published_in_replica(store *s)
{
    return tst_store_sql_int(s, "SELECT count(*) FROM main.plan_versions WHERE status <> 'published'", NULL);
}

/* 1 when some sealed row holds the marker's bytes as they are. */
static int sealed_rows_show_marker(store *s)
{
    return (int)tst_store_sql_int(s, "SELECT count(*) FROM sealed_drafts WHERE instr(box, ?1) > 0", MARKER);
}

static void expect_version(store *s, const char *key, int64_t version)
{
    struct plan got;
    int rc = store_plan_get(s, key, &got);
    if (rc != CMC_OK)
        fail_msg("store_plan_get: %s", cmc_errmsg());
    assert_int_equal(got.version, version);
    plan_free(&got);
}

static void test_clinician_keeps_drafts_in_the_clinical_file(void **state)
{
    struct drafts_env *e = *state;

    store *s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    tst_store_put(s, &e->pub, 1);
    tst_store_put(s, &e->draft, 2);
    assert_int_equal(not_published_in_replica(s), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 1);
    /* the newest version held, by plan id, NHS number, search and list */
    expect_version(s, e->pub.plan_id, 4);
    expect_version(s, e->pub.nhs_number, 4);
    struct store_hit *hits = NULL;
    assert_int_equal(tst_store_search_n(s, "lovelace", NULL, NULL, &hits), 1);
    assert_int_equal(hits[0].version, 4);
    store_hits_free(hits, 1);
    size_t n = 0;
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 4);
    store_hits_free(hits, n);
    /* counts: one plan, its newest version a draft; kept and scanned agree */
    struct store_counts kept, scanned;
    assert_int_equal(store_counts_get(s, &kept), CMC_OK);
    assert_int_equal(store_counts_scan(s, &scanned), CMC_OK);
    assert_int_equal(kept.visible, 1);
    assert_int_equal(kept.drafts, 1);
    assert_int_equal(kept.published, 1);
    assert_memory_equal(&kept, &scanned, sizeof kept);
    assert_int_equal(store_verify(s), CMC_OK);
    /* a delta's base may be the draft */
    struct plan base;
    assert_int_equal(store_sync_version_get(s, e->pub.plan_id, 4, &base), CMC_OK);
    assert_string_equal(base.patient.preferred_name, MARKER);
    plan_free(&base);
    store_close(s);

    /* urgent care: the published version, no draft counted */
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    expect_version(s, e->pub.nhs_number, 3);
    assert_int_equal(store_counts_get(s, &kept), CMC_OK);
    assert_int_equal(kept.drafts, 0);
    assert_int_equal(kept.visible, 1);
    store_close(s);

    /* a newer published version replaces the draft: it goes from the clinical file */
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    e->pub.version = 5;
    tst_store_put(s, &e->pub, 3);
    assert_int_equal(store_sync_prune(s, e->pub.plan_id), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    expect_version(s, e->pub.plan_id, 5);
    store_close(s);
}

static void test_urgent_care_sync_seals_drafts_for_the_next_clinician(void **state)
{
    struct drafts_env *e = *state;
    struct plan only;
    tst_plan_make(&only, 43, PLAN_STATUS_DRAFT, 1); /* a plan only a draft holds */

    store *s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key); /* records the box key */
    tst_store_put(s, &e->pub, 1);
    store_close(s);

    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    tst_store_put(s, &e->draft, 2);
    tst_store_put(s, &only, 3);
    assert_int_equal(not_published_in_replica(s), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sealed_drafts", NULL), 2);
    assert_int_equal(sealed_rows_show_marker(s), 0);
    expect_version(s, e->pub.plan_id, 3);
    store_close(s);

    /* the next clinician session opens them into the clinical file, in one go */
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sealed_drafts", NULL), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 2);
    struct plan got;
    assert_int_equal(store_plan_get(s, e->pub.plan_id, &got), CMC_OK);
    assert_int_equal(got.version, 4);
    assert_string_equal(got.patient.preferred_name, MARKER);
    plan_free(&got);
    expect_version(s, only.plan_id, 1);
    struct store_counts kept;
    assert_int_equal(store_counts_get(s, &kept), CMC_OK);
    assert_int_equal(kept.visible, 2);
    assert_int_equal(kept.drafts, 2);
    assert_int_equal(store_verify(s), CMC_OK);
    store_close(s);

    /* a clinician without the role key sees neither draft: the clinical file holds them */
    s = open_as(e, STORE_ROLE_CLINICIAN, NULL);
    expect_version(s, e->pub.plan_id, 3);
    assert_int_equal(store_plan_get(s, only.plan_id, &got), CMC_ERR_NOT_FOUND);
    store_close(s);
    plan_free(&only);
}

static void test_purge_removes_sealed_and_clinical_drafts(void **state)
{
    struct drafts_env *e = *state;
    struct plan other;
    tst_plan_make(&other, 45, PLAN_STATUS_DRAFT, 2);

    store *s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    tst_store_put(s, &e->pub, 1);
    tst_store_put(s, &other, 2); /* in the clinical file */
    store_close(s);
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    tst_store_put(s, &e->draft, 3); /* sealed */
    /* an urgent-care sync purges both plans: the sealed row goes at once */
    assert_int_equal(store_purge(s, e->pub.plan_id, "withdrawn", 4, NULL), CMC_OK);
    assert_int_equal(store_purge(s, other.plan_id, "withdrawn", 5, NULL), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sealed_drafts", NULL), 0);
    store_close(s);
    /* the clinical file's draft of the purged plan goes when it is next attached */
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    struct plan got;
    assert_int_equal(store_plan_get(s, other.plan_id, &got), CMC_ERR_NOT_FOUND);
    /* and a purge in a clinician session removes its drafts directly */
    other.version = 3;
    tst_store_put(s, &other, 6);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 1);
    assert_int_equal(store_purge(s, other.plan_id, "withdrawn", 7, NULL), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    store_close(s);
    plan_free(&other);
}

/* Drafts a replica kept in plan_versions (before this split, or while no clinician had a role
 * key) leave it: sealed once the box key is known, into the clinical file with the role key. */
static void test_drafts_left_in_the_replica_move(void **state)
{
    struct drafts_env *e = *state;

    store *s = open_as(e, STORE_ROLE_CLINICIAN, NULL); /* no box key known: kept as before */
    tst_store_put(s, &e->pub, 1);
    tst_store_put(s, &e->draft, 2);
    assert_int_equal(not_published_in_replica(s), 1);
    store_close(s);

    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    assert_int_equal(not_published_in_replica(s), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 1);
    expect_version(s, e->pub.plan_id, 4);
    assert_int_equal(store_verify(s), CMC_OK);
    store_close(s);

    /* an urgent-care session never reaches the clinical file */
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    assert_int_not_equal(sqlite3_exec(store_test_db(s), "SELECT count(*) FROM clin.drafts", NULL, NULL, NULL),
                         SQLITE_OK);
    store_close(s);
}

/* A sealed row that does not open with the role key's pair (altered, or sealed to another
 * key someone wrote into the replica) is dropped when a clinician opens the replica, and the
 * role key's public half is put back. */
static void test_sealed_row_that_does_not_open_is_dropped(void **state)
{
    struct drafts_env *e = *state;
    store *s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    tst_store_put(s, &e->pub, 1);
    store_close(s);
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    tst_store_put(s, &e->draft, 2);
    assert_int_equal(sqlite3_exec(store_test_db(s),
                                  "UPDATE sealed_drafts SET box = substr(box, 1, 40) || CASE"
                                  " substr(box, 41, 1) WHEN x'00' THEN x'01' ELSE x'00' END ||"
                                  " substr(box, 42)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    store_close(s);
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM sealed_drafts", NULL), 0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    expect_version(s, e->pub.plan_id, 3);
    char *kept = NULL;
    assert_int_equal(store_state_get(s, "draft_box_pk", &kept), CMC_OK);
    store_close(s);

    /* another public key written into the replica: the clinician's next session puts the
     * role key's back, and what was sealed to the other one does not reach the file */
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    assert_int_equal(store_state_set(s, "draft_box_pk", "00112233445566778899aabbccddeeff"
                                                        "00112233445566778899aabbccddeeff"),
                     CMC_OK);
    store_close(s);
    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    tst_store_put(s, &e->draft, 3);
    store_close(s);
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    char *now = NULL;
    assert_int_equal(store_state_get(s, "draft_box_pk", &now), CMC_OK);
    assert_string_equal(now, kept);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    store_close(s);
    cmc_free(kept);
    cmc_free(now);
}

/* A sealed draft keeps the hub's seal over its exact bytes: shown once opened, refused once
 * its bytes change. */
static void test_opened_draft_still_checks_its_seal(void **state)
{
    struct drafts_env *e = *state;
    struct cry_secret *hub_sk = NULL;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES], leaf[CRY_HASH_BYTES], msg[CRY_MERKLE_SIGNED_BYTES];
    uint8_t sig[CRY_SIG_BYTES], root[CRY_HASH_BYTES];
    char pk_hex[2 * CRY_SIGN_PK_BYTES + 1];
    assert_int_equal(cry_sign_keypair(hub_pk, &hub_sk), CMC_OK);
    cry_hex(pk_hex, hub_pk, sizeof hub_pk);

    store *s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    assert_int_equal(store_state_set(s, STORE_STATE_HUB_PK, pk_hex), CMC_OK);
    store_close(s);

    /* the hub's seal of a one-plan page */
    uint8_t *body = NULL, *seal = NULL;
    size_t len = 0, seal_len = 0;
    struct cry_merkle_tree t;
    assert_int_equal(plan_pack(&e->draft, &body, &len), CMC_OK);
    cry_merkle_leaf(leaf, e->draft.plan_id, e->draft.version, body, len);
    assert_int_equal(cry_merkle_tree_build(leaf, 1, &t), CMC_OK);
    cry_merkle_tree_root(&t, root);
    cry_merkle_signed(root, msg);
    assert_int_equal(cry_sign(hub_sk, msg, sizeof msg, sig), CMC_OK);
    assert_int_equal(store_seal_blob(&t, 0, sig, &seal, &seal_len), CMC_OK);
    cry_merkle_tree_free(&t);

    s = open_as(e, STORE_ROLE_URGENT_CARE, NULL);
    assert_int_equal(store_put_sealed(s, &e->draft, body, len, seal, seal_len, 2), CMC_OK);
    store_close(s);
    s = open_as(e, STORE_ROLE_CLINICIAN, e->role_key);
    expect_version(s, e->draft.plan_id, 4);
    int64_t bad = -1;
    assert_int_equal(store_seal_scan(s, 0, NULL, NULL, &bad), CMC_OK);
    assert_int_equal(bad, 0);
    /* its bytes altered inside the clinical file: refused with the integrity message */
    assert_int_equal(sqlite3_exec(store_test_db(s), "UPDATE clin.drafts SET body = body || x'00'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    struct plan got;
    assert_int_equal(store_plan_get(s, e->draft.plan_id, &got), CMC_ERR_TAMPERED);
    assert_string_equal(cmc_errmsg(), STORE_INTEGRITY_MSG);
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    /* verify's scan names it, and the repair drops it */
    assert_int_equal(store_seal_scan(s, 0, NULL, NULL, &bad), CMC_OK);
    assert_int_equal(bad, 1);
    assert_int_equal(store_seal_scan(s, 1, NULL, NULL, &bad), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.drafts", NULL), 0);
    store_close(s);
    cmc_free(body);
    cmc_free(seal);
    cry_secret_free(hub_sk);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_clinician_keeps_drafts_in_the_clinical_file),
        T(test_urgent_care_sync_seals_drafts_for_the_next_clinician),
        T(test_purge_removes_sealed_and_clinical_drafts),
        T(test_drafts_left_in_the_replica_move),
        T(test_sealed_row_that_does_not_open_is_dropped),
        T(test_opened_draft_still_checks_its_seal),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
