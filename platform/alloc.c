/*
 * alloc.c - the allocation wrappers (alloc.h). They call through a table of functions,
 * libc's unless a test installed counting ones (alloc_test.h): the product pays one
 * indirect call per allocation and no test bookkeeping.
 */
#include "platform/alloc.h"

#include "platform/alloc_test.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const struct cmc_alloc_methods libc_methods = {malloc, calloc, realloc};
static const struct cmc_alloc_methods *_Atomic methods = &libc_methods;

void cmc_alloc_set_methods(const struct cmc_alloc_methods *m)
{
    atomic_store(&methods, m != NULL ? m : &libc_methods);
}

/* Relaxed: the table is swapped only by tests, between the allocations they care about. */
static const struct cmc_alloc_methods *alloc_methods(void)
{
    return atomic_load_explicit(&methods, memory_order_relaxed);
}

void *cmc_malloc(size_t n)
{
    return alloc_methods()->malloc(n ? n : 1);
}

void *cmc_calloc(size_t count, size_t size)
{
    return alloc_methods()->calloc(count ? count : 1, size ? size : 1);
}

static atomic_int wipe_on_free;

void cmc_alloc_wipe_on_free(int on)
{
    atomic_store(&wipe_on_free, on != 0);
}

/* Zeros a block (all of it, as malloc sized it) in a way the compiler keeps. */
static void wipe_block(void *p)
{
    size_t n = malloc_usable_size(p);
    volatile unsigned char *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = 0;
}

void *cmc_realloc(void *p, size_t n)
{
    if (p == NULL || !atomic_load_explicit(&wipe_on_free, memory_order_relaxed))
        return alloc_methods()->realloc(p, n ? n : 1);
    /* by hand, so the old block is zeroed before it goes back */
    size_t old = malloc_usable_size(p);
    void *np = alloc_methods()->malloc(n ? n : 1);
    if (np == NULL)
        return NULL;
    memcpy(np, p, old < n ? old : n);
    cmc_free(p);
    return np;
}

char *cmc_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cmc_malloc(len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cmc_strdup(const char *s)
{
    return cmc_strndup(s, strlen(s));
}

void cmc_free(void *p)
{
    if (p != NULL && atomic_load_explicit(&wipe_on_free, memory_order_relaxed))
        wipe_block(p);
    free(p);
}
