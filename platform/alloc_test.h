/*
 * alloc_test.h - allocation-failure hooks for tests (unit, fault and fuzz programs only).
 *
 * The product's allocation wrappers (alloc.h) call through a table of functions, libc's by
 * default, so they pay one indirect call and nothing else. cmc_alloc_fail_after() (in
 * alloc_test.c, linked only into programs that call it) swaps in counting functions for the
 * rest of the process: from then on the n-th allocation after the call (0 = the next one)
 * returns NULL, as do all later ones while `sticky` is set. Code must turn that NULL into
 * CMC_ERR_NOMEM and leak nothing. Thread-safe (the table pointer and counters are atomic).
 */
#ifndef CMC_ALLOC_TEST_H
#define CMC_ALLOC_TEST_H

#include <stddef.h>

/* Fails the n-th allocation from now on (n >= 0); n < 0 disables failures. Either way it
 * restarts the count. */
void cmc_alloc_fail_after(long n, int sticky);
/* Allocations made since cmc_alloc_fail_after was last called (for OOM loops). */
long cmc_alloc_count(void);

/* The functions cmc_malloc, cmc_calloc and cmc_realloc call (sizes already made non-zero). */
struct cmc_alloc_methods {
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t count, size_t size);
    void *(*realloc)(void *p, size_t n);
};
/* Installs `m` (NULL: libc's again). `m` must outlive every allocation made through it. */
void cmc_alloc_set_methods(const struct cmc_alloc_methods *m);

#endif
