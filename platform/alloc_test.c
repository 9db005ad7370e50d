/*
 * alloc_test.c - the counting allocator behind cmc_alloc_fail_after (alloc_test.h). Nothing
 * in the product calls into this file, so the programs that ship do not link it.
 */
#include "platform/alloc_test.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_long fail_at = -1; /* allocation index that fails; -1 = never */
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

static void *counting_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *counting_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count, size);
}

static void *counting_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static const struct cmc_alloc_methods counting = {counting_malloc, counting_calloc,
                                                  counting_realloc};

void cmc_alloc_fail_after(long n, int sticky)
{
    atomic_store(&counter, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
    cmc_alloc_set_methods(&counting);
}

long cmc_alloc_count(void)
{
    return atomic_load(&counter);
}
