/*
 * test_agent_store_clinical.c - keys per role in the store: pending edits and merges live in
 * the clinical file under the role key (agent/store_clinical.c), signed by their user; an
 * urgent-care session neither sees nor keeps them; a replica from before the split moves
 * them there at the first clinician open; memory security is asked of SQLCipher.
 */
#include "agent/store.h"
#include "agent/store_sync.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"
#include "sync/wire.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"
#include "tests/support/run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t change[] = {0x90};

static void test_pending_edits_live_in_the_clinical_file(void **state)
{
    struct tst_store_env *f = *state;
    struct cry_secret *role_key = NULL, *sk = NULL;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &role_key), CMC_OK);
    cry_random(role_key->buf, CRY_KEY_BYTES);
    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    struct plan p;
    tst_plan_make(&p, 31, PLAN_STATUS_PUBLISHED, 3);

    store *s = tst_store_open_keyed(f, STORE_ROLE_CLINICIAN, role_key, sk);
    tst_store_put(s, &p, 1);
    struct store_pending meta;
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change, sizeof change, &meta), CMC_OK);
    /* signed by the session's user, over the edit itself */
    assert_int_equal(meta.has_sig, 1);
    uint8_t digest[CRY_HASH_BYTES];
    wire_push_digest(p.plan_id, 3, meta.idempotency_id, change, sizeof change, digest);
    assert_int_equal(cry_verify(pk, digest, sizeof digest, meta.user_sig), CMC_OK);
    /* the replica itself has no such table: the rows are in clinical.db */
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM main.sqlite_master WHERE name = 'pending_edits'",
                                       NULL),
                     0);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM clin.pending_edits", NULL), 1);
    store_close(s);

    /* an urgent-care session: nothing to see, nothing to keep, and the sync engine's list is
     * empty; the clinician's row is untouched */
    s = tst_store_open_keyed(f, STORE_ROLE_URGENT_CARE, NULL, NULL);
    struct store_pending *list = NULL;
    size_t n = 9;
    assert_int_equal(store_sync_pending_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 0);
    store_pending_free(list, n);
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_ERR_DENIED);
    store_close(s);

    /* a clinician without the role key is told why */
    s = tst_store_open_keyed(f, STORE_ROLE_CLINICIAN, NULL, sk);
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_ERR_DENIED);
    assert_non_null(strstr(cmc_errmsg(), "clinical key"));
    store_close(s);

    /* with the wrong role key the clinical file does not open */
    struct cry_secret *wrong = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &wrong), CMC_OK);
    cry_random(wrong->buf, CRY_KEY_BYTES);
    struct store_session who = { .user = "nurse-jones", .role = STORE_ROLE_CLINICIAN, .role_key = wrong };
    s = NULL;
    assert_int_not_equal(store_open(f->path, f->key, &who, &s), CMC_OK);
    assert_null(s);
    cry_secret_free(wrong);

    s = tst_store_open_keyed(f, STORE_ROLE_CLINICIAN, role_key, sk);
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].has_sig, 1);
    store_pending_free(list, n);
    store_close(s);
    plan_free(&p);
    cry_secret_free(sk);
    cry_secret_free(role_key);
}

/* A replica from before the split: its rows move to the clinical file at the first open by a
 * clinician who holds the role key, and leave the replica. */
static void test_old_replica_moves_its_edits(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p;
    tst_plan_make(&p, 32, PLAN_STATUS_PUBLISHED, 2);
    store *s = tst_store_open_keyed(f, STORE_ROLE_CLINICIAN, NULL, NULL); /* as before the split */
    tst_store_put(s, &p, 1);
    assert_int_equal(store_pending_add(s, p.plan_id, 2, change, sizeof change, NULL), CMC_OK);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM main.pending_edits", NULL), 1);
    store_close(s);

    struct cry_secret *role_key = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &role_key), CMC_OK);
    cry_random(role_key->buf, CRY_KEY_BYTES);
    s = tst_store_open_keyed(f, STORE_ROLE_CLINICIAN, role_key, NULL);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM main.sqlite_master WHERE name IN "
                                          "('pending_edits', 'merges')", NULL),
                     0);
    struct store_pending *list = NULL;
    size_t n = 0;
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].has_sig, 0); /* made before users signed: signed at push time */
    store_pending_free(list, n);
    store_close(s);
    plan_free(&p);
    cry_secret_free(role_key);
}

static void test_memory_security_is_asked_for(void **state)
{
    struct tst_store_env *f = *state;
    store_memory_security(1);
    store *s = tst_store_open_keyed(f, STORE_ROLE_URGENT_CARE, NULL, NULL);
    assert_int_equal(tst_store_sql_int(s, "PRAGMA cipher_memory_security", NULL), 1);
    store_close(s);
    store_memory_security(0);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_pending_edits_live_in_the_clinical_file,
         test_old_replica_moves_its_edits, test_memory_security_is_asked_for)
