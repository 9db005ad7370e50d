/*
 * merkle.c - the plan-seal Merkle tree (contract in merkle.h).
 *
 * A root or a single path is computed over a copy of one level at a time; the paths of a
 * whole page come from one kept tree (cry_merkle_tree_build), so they cost O(n log n), not
 * a tree per leaf.
 */
#include "crypto/merkle.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

static const char merkle_domain[16] = "cmc-plan-seal-1"; /* 15 bytes and a NUL */

void cry_merkle_leaf(uint8_t out[CRY_HASH_BYTES], const char *plan_id, int64_t version,
                     const uint8_t *body, size_t body_len)
{
    struct cry_hash_state st;
    uint8_t tag = 0x00, ver[8], body_hash[CRY_HASH_BYTES];
    char id[36];

    memset(id, 0, sizeof id);
    memcpy(id, plan_id, strnlen(plan_id, sizeof id));
    for (int i = 0; i < 8; i++)
        ver[i] = (uint8_t)((uint64_t)version >> (56 - 8 * i));
    cry_hash(body_hash, body, body_len);
    cry_hash_init(&st);
    cry_hash_update(&st, &tag, 1);
    cry_hash_update(&st, id, sizeof id);
    cry_hash_update(&st, ver, sizeof ver);
    cry_hash_update(&st, body_hash, sizeof body_hash);
    cry_hash_final(&st, out);
}

static void merkle_node(uint8_t out[CRY_HASH_BYTES], const uint8_t left[CRY_HASH_BYTES],
                        const uint8_t right[CRY_HASH_BYTES])
{
    uint8_t buf[1 + 2 * CRY_HASH_BYTES];
    buf[0] = 0x01;
    memcpy(buf + 1, left, CRY_HASH_BYTES);
    memcpy(buf + 1 + CRY_HASH_BYTES, right, CRY_HASH_BYTES);
    cry_hash(out, buf, sizeof buf);
}

static int merkle_check(size_t n, size_t i)
{
    if (n == 0 || n > CRY_MERKLE_MAX_LEAVES)
        return cmc_fail(CMC_ERR_INVALID, "seal: %zu leaves (1 to %u)", n, CRY_MERKLE_MAX_LEAVES);
    if (i >= n)
        return cmc_fail(CMC_ERR_INVALID, "seal: leaf %zu of %zu", i, n);
    return CMC_OK;
}

/* Walks the tree once; with want != SIZE_MAX also collects leaf want's path. */
static int merkle_walk(const uint8_t *leaves, size_t n, size_t want,
                       uint8_t root[CRY_HASH_BYTES], uint8_t *path,
                       size_t *path_len)
{
    uint8_t(*level)[CRY_HASH_BYTES] = cmc_malloc(n * CRY_HASH_BYTES);
    size_t m = n, at = want, len = 0;

    if (level == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "seal: out of memory");
    memcpy(level, leaves, n * CRY_HASH_BYTES);
    while (m > 1) {
        if (path != NULL && (at ^ 1u) < m)
            memcpy(path + CRY_HASH_BYTES * len++, level[at ^ 1u], CRY_HASH_BYTES);
        size_t up = 0;
        for (size_t k = 0; k + 1 < m; k += 2)
            merkle_node(level[up++], level[k], level[k + 1]);
        if (m % 2 == 1)
            memmove(level[up++], level[m - 1], CRY_HASH_BYTES);
        m = up;
        at >>= 1;
    }
    memcpy(root, level[0], CRY_HASH_BYTES);
    if (path_len != NULL)
        *path_len = len;
    cmc_free(level);
    return CMC_OK;
}

int cry_merkle_root(const uint8_t *leaves, size_t n,
                    uint8_t root[CRY_HASH_BYTES])
{
    int rc = merkle_check(n, 0);
    return rc != CMC_OK ? rc : merkle_walk(leaves, n, 0, root, NULL, NULL);
}

int cry_merkle_path(const uint8_t *leaves, size_t n, size_t i,
                    uint8_t *path, size_t *len)
{
    uint8_t root[CRY_HASH_BYTES];
    int rc = merkle_check(n, i);
    *len = 0;
    return rc != CMC_OK ? rc : merkle_walk(leaves, n, i, root, path, len);
}

int cry_merkle_climb(const uint8_t leaf[CRY_HASH_BYTES], size_t i, size_t n,
                     const uint8_t *path, size_t len,
                     uint8_t root[CRY_HASH_BYTES])
{
    uint8_t cur[CRY_HASH_BYTES];
    size_t used = 0, m = n, at = i;
    int rc = merkle_check(n, i);
    if (rc != CMC_OK)
        return rc;
    memcpy(cur, leaf, CRY_HASH_BYTES);
    while (m > 1) {
        if ((at ^ 1u) < m) {
            if (used >= len)
                return cmc_fail(CMC_ERR_INVALID, "seal: the path is too short");
            if (at & 1u)
                merkle_node(cur, path + CRY_HASH_BYTES * used, cur);
            else
                merkle_node(cur, cur, path + CRY_HASH_BYTES * used);
            used++;
        }
        m = (m + 1) / 2;
        at >>= 1;
    }
    if (used != len)
        return cmc_fail(CMC_ERR_INVALID, "seal: the path is too long");
    memcpy(root, cur, CRY_HASH_BYTES);
    return CMC_OK;
}

int cry_merkle_tree_build(const uint8_t *leaves, size_t n, struct cry_merkle_tree *t)
{
    size_t total = 0, m = n, levels = 0;
    int rc = merkle_check(n, 0);
    memset(t, 0, sizeof *t);
    if (rc != CMC_OK)
        return rc;
    for (;;) {
        t->off[levels] = total;
        t->size[levels] = m;
        total += m;
        levels++;
        if (m == 1)
            break;
        m = (m + 1) / 2;
    }
    if ((t->nodes = cmc_malloc(total * CRY_HASH_BYTES)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "seal: out of memory");
    t->n_levels = levels;
    memcpy(t->nodes, leaves, n * CRY_HASH_BYTES);
    for (size_t l = 1; l < levels; l++) {
        const uint8_t *below = t->nodes + t->off[l - 1] * CRY_HASH_BYTES;
        uint8_t *here = t->nodes + t->off[l] * CRY_HASH_BYTES;
        size_t mb = t->size[l - 1], k;
        for (k = 0; k + 1 < mb; k += 2)
            merkle_node(here + (k / 2) * CRY_HASH_BYTES, below + k * CRY_HASH_BYTES,
                        below + (k + 1) * CRY_HASH_BYTES);
        if (mb % 2 == 1)
            memcpy(here + (mb / 2) * CRY_HASH_BYTES, below + (mb - 1) * CRY_HASH_BYTES,
                   CRY_HASH_BYTES);
    }
    return CMC_OK;
}

void cry_merkle_tree_root(const struct cry_merkle_tree *t, uint8_t root[CRY_HASH_BYTES])
{
    memcpy(root, t->nodes + t->off[t->n_levels - 1] * CRY_HASH_BYTES, CRY_HASH_BYTES);
}

void cry_merkle_tree_path(const struct cry_merkle_tree *t, size_t i, uint8_t *path, size_t *len)
{
    size_t at = i, used = 0;
    for (size_t l = 0; l + 1 < t->n_levels; l++) {
        if ((at ^ 1u) < t->size[l])
            memcpy(path + CRY_HASH_BYTES * used++,
                   t->nodes + (t->off[l] + (at ^ 1u)) * CRY_HASH_BYTES, CRY_HASH_BYTES);
        at >>= 1;
    }
    *len = used;
}

void cry_merkle_tree_free(struct cry_merkle_tree *t)
{
    cmc_free(t->nodes);
    memset(t, 0, sizeof *t);
}

void cry_merkle_signed(const uint8_t root[CRY_HASH_BYTES], uint8_t out[CRY_MERKLE_SIGNED_BYTES])
{
    memcpy(out, merkle_domain, sizeof merkle_domain);
    memcpy(out + sizeof merkle_domain, root, CRY_HASH_BYTES);
}
