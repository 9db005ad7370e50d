/* run.c - see run.h. */
#include "tests/support/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tst_run(const char *names, const CMUnitTestFunction *fns, size_t n, int (*init)(void),
            CMFixtureFunction setup, CMFixtureFunction teardown)
{
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    char *list = strdup(names), *save = NULL, *tok;
    size_t i = 0;
    int failed;
    if (tests == NULL || list == NULL || (init != NULL && init() != 0)) {
        fprintf(stderr, "test setup failed\n");
        free(tests);
        free(list);
        return 1;
    }
    for (tok = strtok_r(list, ", \t\n", &save); tok != NULL && i < n;
         tok = strtok_r(NULL, ", \t\n", &save), i++) {
        tests[i].name = tok;
        tests[i].test_func = fns[i];
        tests[i].setup_func = setup;
        tests[i].teardown_func = teardown;
    }
    if (i != n) {
        fprintf(stderr, "test list and names disagree\n");
        free(tests);
        free(list);
        return 1;
    }
    failed = _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
    free(tests);
    free(list);
    return failed;
}

int tst_rounds(int n)
{
    const char *m = getenv("CMC_TEST_MEMCHECK");
    if (m == NULL || m[0] == '\0')
        return n;
    return n / 8 > 0 ? n / 8 : 1;
}
