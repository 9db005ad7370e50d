/*
 * alloc.h - the allocation wrapper every module uses instead of malloc.
 *
 * Allocation failure is a tested path: a test calls cmc_alloc_fail_after(n) and the n-th
 * allocation from then on (0 = the next one) returns NULL, as do all later ones while
 * `sticky` is set. Code must turn that NULL into CMC_ERR_NOMEM and leak nothing.
 * cmc_free(NULL) is a no-op. Thread-safe (the counter is atomic).
 */
#ifndef CMC_ALLOC_H
#define CMC_ALLOC_H

#include <stddef.h>

void *cmc_malloc(size_t n);
void *cmc_calloc(size_t count, size_t size);
void *cmc_realloc(void *p, size_t n);
char *cmc_strdup(const char *s);
char *cmc_strndup(const char *s, size_t n);
void cmc_free(void *p);

/* Test hook: fail the n-th allocation from now on (n >= 0); n < 0 disables failures. */
void cmc_alloc_fail_after(long n, int sticky);
/* Allocations made since the counter was last armed (for OOM loops). */
long cmc_alloc_count(void);

#endif
