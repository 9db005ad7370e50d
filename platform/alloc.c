#include "platform/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_at = -1;   /* allocation index that fails; -1 = never */
static atomic_long counter;
static atomic_int fail_sticky;

static int should_fail(void)
{
    long at = atomic_load(&fail_at);
    long n = atomic_fetch_add(&counter, 1);
    if (at < 0)
        return 0;
    if (n == at)
        return 1;
    return n > at && atomic_load(&fail_sticky);
}

void cmc_alloc_fail_after(long n, int sticky)
{
    atomic_store(&counter, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
}

long cmc_alloc_count(void)
{
    return atomic_load(&counter);
}

void *cmc_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *cmc_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *cmc_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
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
    free(p);
}
