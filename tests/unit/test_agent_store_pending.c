/*
 * test_agent_store_pending.c - a clinician's pending local edits: who may make and list them,
 * the base version kept with each, idempotency ids and states.
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

/* ---- tests ----------------------------------------------------------------------------- */

static void test_pending_edits(void **state)
{
    struct tst_store_env *f = *state;
    struct plan p;
    static const uint8_t change1[] = {0x91, 0x93, 0x01, 0x05, 0xa3, 'a', 'b', 'c'};
    static const uint8_t change2[] = {0x90};
    tst_plan_make(&p, 80, PLAN_STATUS_PUBLISHED, 3);
    struct store_pending meta, *list = NULL;
    size_t n = 0;

    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    tst_store_put(s, &p, 1);
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change1, sizeof change1, &meta),
                     CMC_ERR_DENIED);
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_ERR_DENIED);
    assert_null(list);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM pending_edits", NULL), 0);
    store_close(s);

    s = tst_store_open_as(f, STORE_ROLE_CLINICIAN);
    char absent[PLAN_ID_LEN + 1];
    tst_make_plan_id(12345, absent);
    assert_int_equal(store_pending_add(s, absent, 1, change1, sizeof change1, NULL),
                     CMC_ERR_NOT_FOUND);
    assert_int_equal(store_pending_add(s, p.plan_id, 2, change1, sizeof change1, NULL),
                     CMC_ERR_NOT_FOUND); /* base version not held */
    assert_int_equal(store_pending_add(s, p.plan_id, 3, NULL, 0, NULL), CMC_ERR_INVALID);
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change1, sizeof change1, &meta), CMC_OK);
    assert_true(meta.id > 0);
    assert_string_equal(meta.plan_id, p.plan_id);
    assert_int_equal(meta.base_version, 3);
    assert_string_equal(meta.user, "nurse");
    assert_int_equal(strlen(meta.idempotency_id), PLAN_ID_LEN);
    assert_null(meta.change);
    /* The edit keeps the plan it was made on. */
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM pending_edits p JOIN plan_versions v"
                                " ON v.plan_id = p.plan_id AND v.version = 3"
                                " WHERE p.base = v.body AND p.plan_id = ?",
                             p.plan_id),
                     1);
    struct store_pending meta2;
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change2, sizeof change2, &meta2), CMC_OK);
    assert_string_not_equal(meta.idempotency_id, meta2.idempotency_id);

    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, meta.id);
    assert_int_equal(list[0].change_len, sizeof change1);
    assert_memory_equal(list[0].change, change1, sizeof change1);
    assert_string_equal(list[0].idempotency_id, meta.idempotency_id);
    assert_string_equal(list[0].user, "nurse");
    assert_int_equal(list[0].state, 0);
    assert_int_equal(list[1].change_len, sizeof change2);
    store_pending_free(list, n);
    assert_int_equal(store_pending_list(s, absent, &list, &n), CMC_OK);
    assert_int_equal(n, 0);
    store_pending_free(list, n);

    assert_int_equal(store_pending_set_state(s, meta2.id, 1), CMC_OK);
    assert_int_equal(store_pending_set_state(s, meta2.id, 5), CMC_ERR_INVALID);
    assert_int_equal(store_pending_set_state(s, meta.id + meta2.id, 1), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_pending_list(s, p.plan_id, &list, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, meta.id);
    assert_int_equal(list[0].state, 0);
    assert_int_equal(list[1].id, meta2.id);
    assert_int_equal(list[1].state, 1);
    store_pending_free(list, n);
    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.pending, 2);
    store_close(s);
    plan_free(&p);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_pending_edits)
