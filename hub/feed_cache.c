/*
 * feed_cache.c - the feed's per-handle state: its kept statements and the deltas it has
 * computed (feed.h).
 *
 * The state is made on the feed's first use of a handle and registered as the handle's
 * HUB_PART_FEED part, so hub_stmt_reset_all resets its statements and hub_close frees it.
 *
 * Deltas: computed once per (plan, base version, target version) and then served to every
 * device on that base; stored versions never change, so a cached delta never goes stale.
 * Direct-mapped: a new delta takes its slot from whatever was there. Bounded in entries and
 * bytes; when the bytes would pass the cap the whole cache is emptied (a burst of changes
 * refills it with what devices ask for now).
 *
 * Bodies: the compressed body of every large page (a snapshot page), kept by the digest of its
 * packed ops, so devices of one scope that enroll together share the compression: each gets
 * the same body under its own signed header. A body is keyed by what it contains, so it never
 * goes stale either.
 */
#include "hub/feed.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

#define HUB_DELTA_SLOTS 4096
#define HUB_DELTA_ENTRY_MAX (64u * 1024u)
#define HUB_DELTA_BYTES_MAX (8u * 1024u * 1024u)

struct hub_delta_cache {
    struct hub_delta_entry slot[HUB_DELTA_SLOTS];
    size_t bytes;
};

/* Compressed page bodies: direct-mapped by digest, bounded in bytes (emptied when full, like
 * the deltas). 32 MiB holds the Brotli snapshot of 100k plans twice over. */
#define HUB_BODY_SLOTS 512
#define HUB_BODY_BYTES_MAX (32u * 1024u * 1024u)

struct hub_body_cache {
    struct hub_body_entry slot[HUB_BODY_SLOTS];
    size_t bytes;
};

struct hub_feed {
    sqlite3_stmt *stmt[HUB_FEED_STMT_COUNT]; /* NULL until first used */
    struct hub_delta_cache *deltas;           /* NULL until the first delta */
    struct hub_body_cache *bodies;            /* NULL until the first kept body */
};

/* Both NULL-safe. */
static void hub_delta_empty(void *cache);
static void hub_body_empty(void *cache);

/* Frees the bytes a cache slot owns and empties the slot. */
static void hub_slot_clear(void *slot, size_t size, uint8_t *bytes)
{
    cmc_free(bytes);
    memset(slot, 0, size);
}

/* The copy of len bytes a cache (holding *bytes, at most max) is about to keep, after emptying
 * the whole cache (empty) when they would pass the cap; NULL when there is no memory for it
 * (the caller then simply does not keep it). */
static uint8_t *hub_cache_copy(void *cache, size_t *bytes, size_t max, void (*empty)(void *),
                               const uint8_t *data, size_t len)
{
    uint8_t *copy;
    if (*bytes + len > max) {
        empty(cache);
        *bytes = 0;
    }
    if ((copy = cmc_malloc(len > 0 ? len : 1)) == NULL)
        return NULL;
    memcpy(copy, data, len);
    return copy;
}

static void hub_feed_reset(void *state)
{
    struct hub_feed *f = state;
    for (size_t i = 0; i < HUB_FEED_STMT_COUNT; i++)
        if (f->stmt[i] != NULL)
            sqlite3_reset(f->stmt[i]);
}

static void hub_feed_close(void *state)
{
    struct hub_feed *f = state;
    if (f == NULL)
        return;
    for (size_t i = 0; i < HUB_FEED_STMT_COUNT; i++)
        sqlite3_finalize(f->stmt[i]);
    hub_delta_empty(f->deltas);
    hub_body_empty(f->bodies);
    cmc_free(f->deltas);
    cmc_free(f->bodies);
    cmc_free(f);
}

/* The feed's state on the handle, made and registered on first use. */
static int hub_feed_get(hub *h, struct hub_feed **out)
{
    struct hub_part *part = &h->part[HUB_PART_FEED];
    if (part->state == NULL) {
        struct hub_feed *f = cmc_calloc(1, sizeof *f);
        if (f == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "hub feed");
        part->state = f;
        part->reset = hub_feed_reset;
        part->close = hub_feed_close;
    }
    *out = part->state;
    return CMC_OK;
}

int hub_feed_stmt(hub *h, enum hub_feed_stmt_slot slot, const char *sql, sqlite3_stmt **out)
{
    struct hub_feed *f = NULL;
    int rc;
    *out = NULL;
    if ((rc = hub_feed_get(h, &f)) != CMC_OK)
        return rc;
    return hub_stmt_keep(h, &f->stmt[slot], sql, out);
}

/* ---- the delta cache ------------------------------------------------------------------- */

static struct hub_delta_entry *hub_delta_slot(struct hub_delta_cache *c, const char *plan_id,
                                              int64_t base, int64_t target)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a over the key */
    for (const char *p = plan_id; *p != '\0'; p++)
        x = (x ^ (uint8_t)*p) * 1099511628211ull;
    x = (x ^ (uint64_t)base) * 1099511628211ull;
    x = (x ^ (uint64_t)target) * 1099511628211ull;
    return &c->slot[(x >> 20) % HUB_DELTA_SLOTS];
}

const struct hub_delta_entry *hub_delta_find(hub *h, const char *plan_id, int64_t base,
                                             int64_t target)
{
    const struct hub_feed *f = h->part[HUB_PART_FEED].state;
    if (f == NULL || f->deltas == NULL)
        return NULL;
    const struct hub_delta_entry *e = hub_delta_slot(f->deltas, plan_id, base, target);
    if (e->delta == NULL || e->base != base || e->target != target ||
        strcmp(e->plan_id, plan_id) != 0)
        return NULL;
    return e;
}

static void hub_delta_empty(void *cache)
{
    struct hub_delta_cache *c = cache;
    for (size_t i = 0; c != NULL && i < HUB_DELTA_SLOTS; i++)
        hub_slot_clear(&c->slot[i], sizeof c->slot[i], c->slot[i].delta);
}

void hub_delta_keep(hub *h, const char *plan_id, int64_t base, int64_t target,
                    const uint8_t *delta, size_t len, size_t put_len,
                    const uint8_t leaf[CRY_HASH_BYTES])
{
    struct hub_feed *f = NULL;
    struct hub_delta_cache *c;
    struct hub_delta_entry *e;
    uint8_t *copy;
    if (len > HUB_DELTA_ENTRY_MAX || hub_feed_get(h, &f) != CMC_OK)
        return;
    if (f->deltas == NULL && (f->deltas = cmc_calloc(1, sizeof *f->deltas)) == NULL)
        return;
    c = f->deltas;
    if ((copy = hub_cache_copy(c, &c->bytes, HUB_DELTA_BYTES_MAX, hub_delta_empty, delta, len)) ==
        NULL)
        return;
    e = hub_delta_slot(c, plan_id, base, target);
    c->bytes -= e->len;
    hub_slot_clear(e, sizeof *e, e->delta);
    snprintf(e->plan_id, sizeof e->plan_id, "%s", plan_id);
    e->base = base;
    e->target = target;
    e->delta = copy;
    e->len = len;
    e->put_len = put_len;
    memcpy(e->leaf, leaf, CRY_HASH_BYTES);
    c->bytes += len;
}

/* ---- the compressed body cache --------------------------------------------------------- */

static struct hub_body_entry *hub_body_slot(struct hub_body_cache *c,
                                            const uint8_t digest[CRY_HASH_BYTES])
{
    uint32_t x = (uint32_t)digest[0] | (uint32_t)digest[1] << 8 | (uint32_t)digest[2] << 16;
    return &c->slot[x % HUB_BODY_SLOTS];
}

const struct hub_body_entry *hub_body_find(hub *h, const uint8_t digest[CRY_HASH_BYTES],
                                           uint32_t count, uint16_t codec_flags)
{
    const struct hub_feed *f = h->part[HUB_PART_FEED].state;
    if (f == NULL || f->bodies == NULL)
        return NULL;
    const struct hub_body_entry *e = hub_body_slot(f->bodies, digest);
    if (e->body == NULL || e->count != count || e->codec_flags != codec_flags ||
        memcmp(e->digest, digest, CRY_HASH_BYTES) != 0)
        return NULL;
    return e;
}

static void hub_body_empty(void *cache)
{
    struct hub_body_cache *c = cache;
    for (size_t i = 0; c != NULL && i < HUB_BODY_SLOTS; i++)
        hub_slot_clear(&c->slot[i], sizeof c->slot[i], c->slot[i].body);
}

void hub_body_keep(hub *h, const uint8_t digest[CRY_HASH_BYTES], uint32_t count,
                   uint16_t codec_flags, uint32_t raw_len, const uint8_t *body, size_t len)
{
    struct hub_feed *f = NULL;
    struct hub_body_cache *c;
    struct hub_body_entry *e;
    uint8_t *copy;
    if (len == 0 || len > HUB_BODY_BYTES_MAX / 4 || hub_feed_get(h, &f) != CMC_OK)
        return;
    if (f->bodies == NULL && (f->bodies = cmc_calloc(1, sizeof *f->bodies)) == NULL)
        return;
    c = f->bodies;
    if ((copy = hub_cache_copy(c, &c->bytes, HUB_BODY_BYTES_MAX, hub_body_empty, body, len)) ==
        NULL)
        return;
    e = hub_body_slot(c, digest);
    c->bytes -= e->len;
    hub_slot_clear(e, sizeof *e, e->body);
    memcpy(e->digest, digest, CRY_HASH_BYTES);
    e->count = count;
    e->raw_len = raw_len;
    e->codec_flags = codec_flags;
    e->body = copy;
    e->len = len;
    c->bytes += len;
}
