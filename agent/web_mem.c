/*
 * web_mem.c - memory hygiene of the crew's page (contract in web.h, docs/WEB.md): a page
 * server runs for hours, so what it frees must not keep plan text, and a locked session
 * leaves no heap it used behind.
 */
#include "agent/web.h"

#include "agent/store.h"
#include "platform/alloc.h"

#include <malloc.h>
#include <stdatomic.h>

static atomic_ulong web_locks;

void web_mem_start(void)
{
    cmc_alloc_wipe_on_free(1);
    store_memory_security(1);
}

void web_mem_locked(void)
{
    malloc_trim(0);
    atomic_fetch_add(&web_locks, 1);
}

unsigned long web_lock_count(void)
{
    return atomic_load(&web_locks);
}
