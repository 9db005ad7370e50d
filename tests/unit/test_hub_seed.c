/*
 * test_hub_seed.c - the synthetic seed generator: deterministic plans, and the store holding the same plans
 * the generator makes.
 *
 * The hub store, plans and simulated devices come from tests/support (hub_fixture.h,
 * hub_device.h); the clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/reqsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

static void test_seed_determinism(void **state)
{
    struct tst_hub *e = *state;
    int counts[5] = {0};
    int extras = 0;
    static char nhs_seen[2000][PLAN_NHS_LEN + 1];
    long n = 2000;
    (void)e;
    for (long i = 0; i < n; i++) {
        struct plan a, b, c;
        int sa, sb, sc, xa, xb, xc;
        assert_int_equal(hub_seed_plan(42, i, &a, &sa, &xa), CMC_OK);
        assert_int_equal(hub_seed_plan(42, i, &b, &sb, &xb), CMC_OK);
        assert_int_equal(hub_seed_plan(43, i, &c, &sc, &xc), CMC_OK);
        assert_true(plan_equal(&a, &b));
        assert_false(plan_equal(&a, &c));
        assert_true(plan_nhs_valid(a.nhs_number));
        assert_int_equal(plan_validate(&a, PLAN_CHECK_DRAFT), CMC_OK);
        if (sa == PLAN_STATUS_PUBLISHED || sa == PLAN_STATUS_AWAITING_APPROVAL)
            assert_int_equal(plan_validate(&a, PLAN_CHECK_COMPLETE), CMC_OK);
        assert_true(sa > 0 && sa < 5);
        counts[sa]++;
        extras += xa;
        strcpy(nhs_seen[i], a.nhs_number);
        plan_free(&a);
        plan_free(&b);
        plan_free(&c);
    }
    for (int s = 1; s <= 4; s++)
        assert_true(counts[s] > 0);
    assert_true(extras > 0);
    assert_true(counts[PLAN_STATUS_PUBLISHED] > n / 2);
    for (long i = 0; i < n; i++)
        for (long j = i + 1; j < n; j++)
            assert_string_not_equal(nhs_seen[i], nhs_seen[j]);
}

static void test_seed_store_same_plans(void **state)
{
    struct tst_hub *e = *state;
    struct hub_plan_info info;
    struct plan stored, fresh;
    int status, extra;
    uint64_t head = 0;

    assert_int_equal(hub_seed(e->h, 500, 8, NULL, NULL), CMC_OK);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(head, 500);
    /* the same seed again collides: nothing half-added */
    assert_int_equal(hub_seed(e->h, 10, 8, NULL, NULL), CMC_ERR_EXISTS);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(head, 500);
    for (long i = 0; i < 500; i += 37) {
        assert_int_equal(hub_seed_plan(8, i, &fresh, &status, &extra), CMC_OK);
        assert_int_equal(hub_plan_info(e->h, fresh.nhs_number, &info), CMC_OK);
        assert_string_equal(info.plan_id, fresh.plan_id);
        plan_init(&stored);
        assert_int_equal(hub_plan_get(e->h, info.plan_id, 1, &stored), CMC_OK);
        assert_true(plan_equal(&stored, &fresh));
        assert_int_equal(info.status, extra ? PLAN_STATUS_DRAFT : status);
        plan_free(&stored);
        plan_free(&fresh);
    }
}

TST_HUB_MAIN(test_seed_determinism, test_seed_store_same_plans)
