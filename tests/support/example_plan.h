/*
 * example_plan.h - the product's example plan (shared/examples/plan.json), read at run time
 * so that no test carries its own pasted copy.
 *
 * The file is looked for at $CMC_SHARED/examples/plan.json when CMC_SHARED is set, otherwise
 * in a shared/ folder inside the working directory or inside any of its five nearest parents
 * (tests run from the repository root, which sits beside shared/).
 *
 * tst_example_plan() returns 0 and a NUL-terminated malloc'd copy (free() it), with its
 * length in *len when len is not NULL; -1 when no copy can be read. The plan is synthetic.
 */
#ifndef CMC_TEST_SUPPORT_EXAMPLE_PLAN_H
#define CMC_TEST_SUPPORT_EXAMPLE_PLAN_H

#include <stddef.h>

int tst_example_plan(char **json, size_t *len);

/* The same, for tests that cannot go on without it: fails the running cmocka test. */
char *tst_example_plan_or_fail(void);

#endif
