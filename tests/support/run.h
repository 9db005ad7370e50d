/*
 * run.h - a test program's main() in one line: every test runs, in the order written, with
 * the same setup and teardown, each named after its function.
 *
 * TST_MAIN(init, setup, teardown, test_a, test_b, ...) writes main(): it calls init() first
 * when init is not NULL (a non-zero return fails the program before any test runs), then runs
 * the tests through cmocka with the given setup and teardown (either may be NULL), and returns
 * the number of tests that failed. tst_run() is the runner behind it: `names` is the
 * comma-separated list of the tests' names as the macro's arguments were written. Single
 * threaded, like cmocka. Archived into the test-support library.
 */
#ifndef CMC_TEST_SUPPORT_RUN_H
#define CMC_TEST_SUPPORT_RUN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* How many rounds a randomised test runs: n, or n / 8 (at least 1) when CMC_TEST_MEMCHECK is
 * set. The hardened pass sets it for its valgrind runs, which look for memory errors on the
 * code paths, not for the rare input; the full count runs in the normal and sanitized
 * passes. */
int tst_rounds(int n);

int tst_run(const char *names, const CMUnitTestFunction *fns, size_t n, int (*init)(void),
            CMFixtureFunction setup, CMFixtureFunction teardown);

#define TST_MAIN(init, setup, teardown, ...)                                                \
    int main(void)                                                                          \
    {                                                                                       \
        static const CMUnitTestFunction tests[] = {__VA_ARGS__};                            \
        return tst_run(#__VA_ARGS__, tests, sizeof tests / sizeof tests[0], init, setup,    \
                       teardown);                                                           \
    }

#endif
