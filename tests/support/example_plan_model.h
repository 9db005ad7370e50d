/*
 * example_plan_model.h - the example plan (example_plan.h) parsed into a struct plan, for the
 * tests of modules that link the plan model (sync and above).
 *
 * tst_example_plan_parse() initialises *p and fills it from shared/examples/plan.json; it
 * fails the running cmocka test when the file cannot be read or parsed. The caller frees the
 * plan with plan_free(). Archived into the test-support library, linked only where called.
 */
#ifndef CMC_TEST_SUPPORT_EXAMPLE_PLAN_MODEL_H
#define CMC_TEST_SUPPORT_EXAMPLE_PLAN_MODEL_H

#include "sync/plan.h"

void tst_example_plan_parse(struct plan *p);

#endif
