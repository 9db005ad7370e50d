/*
 * test_agent_store_lease.c - the offline lease kept in the replica's sync state: a replica
 * inside its lease opens, one past it locks, and one whose lease cannot be read locks too
 * (fails closed) instead of being taken for a replica without a lease.
 */
#include "agent/lease.h"
#include "agent/store.h"
#include "crypto/cry.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "tests/support/store_fixture.h"
#include "tests/support/run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW INT64_C(1790000000)
#define DAY INT64_C(86400)

struct lease_fixture {
    struct tst_store_env *env;
    store *s;
};

static int setup(void **state)
{
    struct lease_fixture *f = calloc(1, sizeof *f);
    struct store_session sess = { .user = "crew", .role = STORE_ROLE_URGENT_CARE };
    void *env = NULL;
    if (f == NULL)
        return -1;
    if (tst_store_setup(&env) != 0) {
        free(f);
        return -1;
    }
    f->env = env;
    *state = f;
    plat_fake_clock_enable(NOW, 1000);
    if (store_open(f->env->path, f->env->key, &sess, &f->s) != CMC_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct lease_fixture *f = *state;
    void *env = f->env;
    store_close(f->s);
    free(f);
    return tst_store_teardown(&env);
}

static void lease_set(store *s, int64_t days, int64_t ago)
{
    plat_fake_clock_set_wall(NOW - ago);
    assert_int_equal(lease_note_sync(s, NOW - ago), CMC_OK);
    plat_fake_clock_set_wall(NOW);
    assert_int_equal(store_state_set_int(s, "lease_days", days), CMC_OK);
}

static void test_no_lease_is_open(void **state)
{
    struct lease_fixture *f = *state;
    struct lease_info li;
    assert_int_equal(lease_info_get(f->s, &li), CMC_OK);
    assert_int_equal(li.lease_days, 0);
    assert_false(li.locked);
    assert_int_equal(lease_check(f->s), CMC_OK);
}

static void test_inside_and_past_the_lease(void **state)
{
    struct lease_fixture *f = *state;
    struct lease_info li;
    lease_set(f->s, 7, 2 * DAY);
    assert_int_equal(lease_check(f->s), CMC_OK);
    assert_int_equal(lease_info_get(f->s, &li), CMC_OK);
    assert_false(li.locked);
    assert_int_equal(li.since, NOW - 2 * DAY);

    lease_set(f->s, 7, 8 * DAY);
    assert_int_equal(lease_check(f->s), CMC_ERR_LOCKED);
    assert_int_equal(lease_info_get(f->s, &li), CMC_OK);
    assert_true(li.locked);
}

/* A lease value that cannot be read: the replica locks, with an error saying why. */
static void expect_locked_by_unreadable(store *s)
{
    struct lease_info li;
    memset(&li, 0, sizeof li);
    assert_int_not_equal(lease_info_get(s, &li), CMC_OK);
    assert_true(li.locked);
    assert_int_equal(lease_check(s), CMC_ERR_LOCKED);
    assert_non_null(strstr(cmc_errmsg(), "lease could not be read"));
}

static void test_unreadable_lease_days_lock(void **state)
{
    struct lease_fixture *f = *state;
    lease_set(f->s, 7, 8 * DAY);
    assert_int_equal(store_state_set(f->s, "lease_days", "seven"), CMC_OK);
    expect_locked_by_unreadable(f->s);
}

static void test_unreadable_sync_time_locks(void **state)
{
    struct lease_fixture *f = *state;
    lease_set(f->s, 7, DAY);
    assert_int_equal(lease_check(f->s), CMC_OK);
    assert_int_equal(store_state_set(f->s, "lease_ref_hub_time", "garbled"), CMC_OK);
    expect_locked_by_unreadable(f->s);
}

static void test_unreadable_high_water_locks(void **state)
{
    struct lease_fixture *f = *state;
    lease_set(f->s, 7, DAY);
    assert_int_equal(store_state_set(f->s, "wall_high_water", "x"), CMC_OK);
    expect_locked_by_unreadable(f->s);
}

TST_MAIN(NULL, setup, teardown, test_no_lease_is_open, test_inside_and_past_the_lease,
         test_unreadable_lease_days_lock, test_unreadable_sync_time_locks, test_unreadable_high_water_locks)
