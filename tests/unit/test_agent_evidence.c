/*
 * test_agent_evidence.c - what a device tells a hub restored from an earlier backup: the
 * published plans it holds from after the restored head (store_evidence_list), found from
 * the hub's own "hub_rewound" answer (engine_rewound_head). The end-to-end half, the report
 * reaching the hub's restore report, is tests/e2e/test_hub_pg_restore.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/engine_evidence.h"
#include "agent/store.h"
#include "agent/store_evidence.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/plan.h"
#include "tests/support/run.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"

#include <string.h>

static void test_evidence_lists_plans_held_from_after_the_head(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    struct store_evidence *v = NULL;
    size_t n = 0;
    char b[PLAN_ID_LEN + 1], c[PLAN_ID_LEN + 1];
    tst_make_plan_id(2, b);
    tst_make_plan_id(3, c);
    /* plan 1 came before the head (the restored hub has it); plan 2's newer version and
     * plan 3 came after it */
    static const struct { unsigned n; int64_t version, seq; } held[] = {
        {1, 1, 3}, {2, 1, 4}, {2, 2, 7}, {3, 1, 8},
    };
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
        struct plan p;
        tst_plan_make(&p, held[i].n, PLAN_STATUS_PUBLISHED, held[i].version);
        tst_store_put(s, &p, held[i].seq);
        plan_free(&p);
    }

    assert_int_equal(store_evidence_list(s, 5, &v, &n), CMC_OK);
    assert_int_equal(n, 2);
    int b_first = strcmp(b, c) < 0;
    const struct store_evidence *eb = &v[b_first ? 0 : 1], *ec = &v[b_first ? 1 : 0];
    assert_string_equal(eb->plan_id, b);
    assert_int_equal(eb->version, 2);
    assert_int_equal(eb->change_seq, 7);
    assert_string_equal(ec->plan_id, c);
    assert_int_equal(ec->version, 1);
    assert_int_equal(ec->change_seq, 8);
    cmc_free(v);

    assert_int_equal(store_evidence_list(s, 8, &v, &n), CMC_OK);
    assert_int_equal(n, 0);
    assert_null(v);
    store_close(s);
}

static void test_rewound_head_from_the_hubs_answer(void **state)
{
    (void)state;
    uint64_t head = 99;
    /* as hub_rewind_check words it */
    assert_int_equal(engine_rewound_head("hub_rewound: the hub was restored from an earlier backup"
                                         " (its change log ends at 4, this device had seen 7);"
                                         " re-sync from the start", &head), 1);
    assert_int_equal(head, 4);
    assert_int_equal(engine_rewound_head("hub_rewound: restored (its change log ends at"
                                         " 1099511627779)", &head), 1);
    assert_int_equal(head, 1099511627779ull);
    /* a hub that does not say: nothing to report against */
    assert_int_equal(engine_rewound_head("hub_rewound: the hub was restored", &head), 0);
    assert_int_equal(head, 0);
    assert_int_equal(engine_rewound_head("hub_rewound: its change log ends at x", &head), 0);
    assert_int_equal(engine_rewound_head("hub_rewound: its change log ends at 12abc", &head), 0);
    assert_int_equal(engine_rewound_head(NULL, &head), 0);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_evidence_lists_plans_held_from_after_the_head,
         test_rewound_head_from_the_hubs_answer)
