/*
 * example_plan_model.h - the example plan (example_plan.h) parsed into a struct plan, for the
 * tests of modules that link the plan model (sync and above).
 *
 * tst_example_plan_parse() initialises *p and fills it from shared/examples/plan.json; it
 * fails the running cmocka test when the file cannot be read or parsed. The caller frees the
 * plan with plan_free(). Archived into the test-support library, linked only where called.
 *
 * tst_plan_load_file() is tst_example_plan_parse() for the plan in the JSON file at `path`.
 *
 * tst_plan_with_fields() stands for a plan written by a later edition: the packed plan `mp`
 * (a map16, as every full plan is) with `n` more fields after its own, whose ids and values
 * are the `len` bytes of `extra` (ids above the plan's, ascending). It returns a new buffer of
 * mlen + len bytes; cmc_free() it.
 */
#ifndef CMC_TEST_SUPPORT_EXAMPLE_PLAN_MODEL_H
#define CMC_TEST_SUPPORT_EXAMPLE_PLAN_MODEL_H

#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

void tst_example_plan_parse(struct plan *p);
void tst_plan_load_file(const char *path, struct plan *p);
uint8_t *tst_plan_with_fields(const uint8_t *mp, size_t mlen, unsigned n, const void *extra, size_t len);

#endif
