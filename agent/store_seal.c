/*
 * store_seal.c - the hub's seal on every stored plan version (store.h, store_sync.h;
 * docs/STORAGE.md, "Plan seals").
 *
 * Each row of plan_versions has, in table plan_seals (its own small rows, so a version's row
 * still shares its page with another), its inclusion proof in the page the hub sent it in: the leaf's index and the page's leaf count, the hub's signature of the page's
 * Merkle root, and the path (crypto/merkle.h). A read recomputes the leaf from the row's
 * exact bytes, climbs to a root and accepts the row only if that root carries the hub's
 * signature, checked with the hub key the device was enrolled with.
 *
 * Cost: a page's root is the same for every version it carried, so a handle remembers the
 * roots whose signature it has checked (STORE_SEAL_ROOTS in a hash table, forgotten all at
 * once past that);
 * a read then costs two BLAKE2b passes over the body and about log2(page) node hashes.
 *
 * A replica without a hub key (not enrolled: a fresh install, test fixtures) has nothing to
 * check against and checks nothing; an enrolled one accepts no row without its seal.
 */
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_sync.h"

#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define STORE_SEAL_ROOTS 4096     /* roots remembered per handle */
#define STORE_SEAL_SLOTS (2 * STORE_SEAL_ROOTS) /* open addressing, at most half full */
#define SEAL_HEAD (1 + 4 + 4 + CRY_SIG_BYTES)
#define SEAL_FORMAT 1

struct store_seals {
    int loaded;  /* the hub key was looked for */
    int have_pk; /* ...and found */
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    uint8_t (*roots)[CRY_HASH_BYTES]; /* STORE_SEAL_SLOTS slots of roots whose signature
                                       * verified; an all-zero slot is empty */
    size_t n;
    int repair_noted; /* this handle has asked for a repair already */
};

void store_seals_free(store *s)
{
    if (s->seals == NULL)
        return;
    cmc_free(s->seals->roots);
    cmc_free(s->seals);
    s->seals = NULL;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int seals_load(store *s)
{
    struct store_seals *c = s->seals;
    if (c == NULL) {
        if ((c = cmc_calloc(1, sizeof *c)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
        s->seals = c;
    }
    if (c->loaded)
        return CMC_OK;
    int rc = store_state_get_hex(s, STORE_STATE_HUB_PK, c->hub_pk, sizeof c->hub_pk, &c->have_pk);
    c->loaded = rc == CMC_OK;
    return rc;
}

/* A root is a hash: its first bytes pick the slot. */
static size_t root_slot(const uint8_t root[CRY_HASH_BYTES])
{
    return ((size_t)root[0] << 16 | (size_t)root[1] << 8 | root[2]) % STORE_SEAL_SLOTS;
}

static int root_known(const struct store_seals *c, const uint8_t root[CRY_HASH_BYTES])
{
    static const uint8_t empty[CRY_HASH_BYTES];
    /* never "known" by matching an empty slot: an all-zero root goes to its signature */
    if (c->roots == NULL || memcmp(root, empty, CRY_HASH_BYTES) == 0)
        return 0;
    for (size_t i = root_slot(root);; i = (i + 1) % STORE_SEAL_SLOTS) {
        if (memcmp(c->roots[i], root, CRY_HASH_BYTES) == 0)
            return 1;
        if (memcmp(c->roots[i], empty, CRY_HASH_BYTES) == 0)
            return 0;
    }
}

static void root_remember(struct store_seals *c, const uint8_t root[CRY_HASH_BYTES])
{
    static const uint8_t empty[CRY_HASH_BYTES];
    if (c->roots == NULL && (c->roots = cmc_calloc(STORE_SEAL_SLOTS, CRY_HASH_BYTES)) == NULL)
        return; /* only slower: every read verifies its signature */
    if (c->n >= STORE_SEAL_ROOTS) { /* full: start again (the roots are verified again) */
        memset(c->roots, 0, (size_t)STORE_SEAL_SLOTS * CRY_HASH_BYTES);
        c->n = 0;
    }
    size_t i = root_slot(root);
    while (memcmp(c->roots[i], empty, CRY_HASH_BYTES) != 0)
        i = (i + 1) % STORE_SEAL_SLOTS;
    memcpy(c->roots[i], root, CRY_HASH_BYTES);
    c->n++;
}

/* Marks the replica for repair by the next sync (once per handle, best effort: the read has
 * already refused the row). */
static void note_repair(store *s)
{
    if (s->seals == NULL || s->seals->repair_noted || s->in_batch)
        return;
    s->seals->repair_noted = 1;
    if (store_state_set(s, STORE_STATE_SEAL_REPAIR, "1") != CMC_OK)
        cmc_err_clear();
}

static int seal_fail(store *s)
{
    note_repair(s);
    return cmc_fail(CMC_ERR_TAMPERED, STORE_INTEGRITY_MSG);
}

int store_seal_check(store *s, const char *plan_id, int64_t version, const void *body,
                     size_t body_len, const void *seal, size_t seal_len)
{
    uint8_t leaf[CRY_HASH_BYTES], root[CRY_HASH_BYTES], msg[CRY_MERKLE_SIGNED_BYTES];
    const uint8_t *b = seal;
    int rc = seals_load(s);
    if (rc != CMC_OK)
        return rc;
    struct store_seals *c = s->seals;
    if (!c->have_pk)
        return CMC_OK; /* not enrolled: nothing to check against (and nothing synced) */
    if (seal == NULL || seal_len == 0)
        return seal_fail(s);
    if (seal_len < SEAL_HEAD || b[0] != SEAL_FORMAT ||
        (seal_len - SEAL_HEAD) % CRY_HASH_BYTES != 0 || plan_id == NULL || body == NULL)
        return seal_fail(s);
    cry_merkle_leaf(leaf, plan_id, version, body, body_len);
    if (cry_merkle_climb(leaf, get_be32(b + 1), get_be32(b + 5), b + SEAL_HEAD,
                         (seal_len - SEAL_HEAD) / CRY_HASH_BYTES, root) != CMC_OK) {
        cmc_err_clear();
        return seal_fail(s);
    }
    if (root_known(c, root))
        return CMC_OK;
    cry_merkle_signed(root, msg);
    if (cry_verify(c->hub_pk, msg, sizeof msg, b + 9) != CMC_OK)
        return seal_fail(s);
    root_remember(c, root);
    return CMC_OK;
}

int store_seal_blob(const struct cry_merkle_tree *t, size_t i, const uint8_t sig[CRY_SIG_BYTES],
                    uint8_t **out, size_t *len)
{
    uint8_t path[CRY_MERKLE_MAX_PATH * CRY_HASH_BYTES];
    size_t path_len = 0, n = t->size[0];
    *out = NULL;
    *len = 0;
    if (i >= n)
        return cmc_fail(CMC_ERR_INVALID, "seal: leaf %zu of %zu", i, n);
    cry_merkle_tree_path(t, i, path, &path_len);
    uint8_t *b = cmc_malloc(SEAL_HEAD + path_len * CRY_HASH_BYTES);
    if (b == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    b[0] = SEAL_FORMAT;
    put_be32(b + 1, (uint32_t)i);
    put_be32(b + 5, (uint32_t)n);
    memcpy(b + 9, sig, CRY_SIG_BYTES);
    memcpy(b + SEAL_HEAD, path, path_len * CRY_HASH_BYTES);
    *out = b;
    *len = SEAL_HEAD + path_len * CRY_HASH_BYTES;
    return CMC_OK;
}

int store_seal_insert(store *s, int64_t version_id, const uint8_t *seal, size_t len)
{
    return store_exec_bound(s, "INSERT INTO plan_seals (version_id, seal) VALUES (?1, ?2)", "ib",
                            version_id, seal, len);
}

/* Where versions are kept: the replica's rows with their seals, and the drafts this session
 * can read (store_drafts.c: the seal in the row). Each: the scan, and the delete of one row. */
static const struct {
    const char *scan;
    const char *drop;
} held_tables[] = {
    { "SELECT v.plan_id, v.version, v.body, s.seal, v.id FROM plan_versions v"
      " LEFT JOIN plan_seals s ON s.version_id = v.id ORDER BY v.id",
      "DELETE FROM plan_versions WHERE id = ?1" }, /* the cascade takes identity and seal */
    { "SELECT plan_id, version, body, seal, id FROM drafts ORDER BY id",
      "DELETE FROM drafts WHERE id = ?1" },
};

/* The rows of one table that fail their seal: counted, reported, their ids collected. */
static int scan_table(store *s, const char *sql, store_seal_cb cb, void *ctx, int64_t *bad,
                      int64_t **ids, size_t *n, size_t *cap)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = store_stmt_get(s, sql, &st);
    while (rc == CMC_OK && (rc = db_step(s->db, st, &row)) == CMC_OK && row) {
        const char *plan_id = store_col_text(st, 0);
        int64_t version = sqlite3_column_int64(st, 1);
        rc = store_seal_check(s, plan_id, version, sqlite3_column_blob(st, 2),
                              (size_t)sqlite3_column_bytes(st, 2), sqlite3_column_blob(st, 3),
                              (size_t)sqlite3_column_bytes(st, 3));
        if (rc != CMC_ERR_TAMPERED)
            continue; /* CMC_OK goes on; another error ends the loop */
        cmc_err_clear();
        (*bad)++;
        if (cb != NULL)
            cb(store_safe_id(plan_id), version, ctx);
        if ((rc = store_grow(ids, *n, cap, sizeof **ids, 16)) == CMC_OK)
            (*ids)[(*n)++] = sqlite3_column_int64(st, 4);
    }
    store_stmt_put(s, st);
    return rc;
}

int store_seal_scan(store *s, int drop, store_seal_cb cb, void *ctx, int64_t *bad)
{
    int rc = CMC_OK;
    *bad = 0;
    for (size_t t = 0; rc == CMC_OK && t < sizeof held_tables / sizeof held_tables[0]; t++) {
        int64_t *ids = NULL;
        size_t n = 0, cap = 0;
        rc = scan_table(s, held_tables[t].scan, cb, ctx, bad, &ids, &n, &cap);
        for (size_t i = 0; rc == CMC_OK && drop && i < n; i++)
            rc = store_exec_bound(s, held_tables[t].drop, "i", ids[i]);
        cmc_free(ids);
    }
    return rc;
}
