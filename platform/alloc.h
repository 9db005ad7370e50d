/*
 * alloc.h - the allocation wrapper every module uses instead of malloc.
 *
 * Allocation failure is a tested path: tests make allocations fail with the hooks of
 * alloc_test.h, so code must turn a NULL from these into CMC_ERR_NOMEM and leak nothing.
 * A zero size is allocated as one byte. cmc_free(NULL) is a no-op. Thread-safe.
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
/* From now on (1) cmc_free and cmc_realloc overwrite every block they give back with zeros
 * first, so plan text freed by a long-running process (the crew's page) does not linger in
 * the heap. Off by default: the cost is a memset per free. */
void cmc_alloc_wipe_on_free(int on);

#endif
