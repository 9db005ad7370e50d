/*
 * merkle.h - the hub's seal over a page of plan versions: a BLAKE2b-256 Merkle tree whose
 * root the hub signs, and the inclusion path that lets a device prove, long after the page,
 * that one version's exact bytes are what the hub sent (docs/PROTOCOL.md, "Plan seals").
 *
 *   leaf  = BLAKE2b-256(0x00 || plan_id (36 bytes) || version (big-endian u64)
 *                       || BLAKE2b-256(the version's canonical bytes))
 *   node  = BLAKE2b-256(0x01 || left || right)
 *   signed message = "cmc-plan-seal-1" || 0x00 || root   (48 bytes, Ed25519 by the hub key)
 *
 * The tree is built level by level: leaves pair off in order (0,1), (2,3), ...; a level of odd
 * length carries its last node up unchanged. A path lists the siblings met on the way up,
 * lowest first; a level where the node had no sibling adds nothing, so a path's length is
 * fixed by (index, count) and cry_merkle_climb refuses any other length.
 *
 * Pure functions, thread-safe, no allocation. Errors: CMC_ERR_INVALID for an index out of
 * range, a count of 0 or past CRY_MERKLE_MAX_LEAVES, a path of the wrong length.
 */
#ifndef CMC_MERKLE_H
#define CMC_MERKLE_H

#include "crypto/cry.h"

#include <stddef.h>
#include <stdint.h>

#define CRY_MERKLE_MAX_LEAVES (1u << 20)
#define CRY_MERKLE_MAX_PATH 20 /* ceil(log2(CRY_MERKLE_MAX_LEAVES)) */
#define CRY_MERKLE_SIGNED_BYTES 48

/* The leaf of one plan version (plan_id is its 36-character id). */
void cry_merkle_leaf(uint8_t out[CRY_HASH_BYTES], const char *plan_id, int64_t version,
                     const uint8_t *body, size_t body_len);
/* `leaves`: n hashes of CRY_HASH_BYTES laid one after another; a path likewise.
 * The root over n leaves (1 <= n <= CRY_MERKLE_MAX_LEAVES). Overwrites nothing in leaves. */
int cry_merkle_root(const uint8_t *leaves, size_t n,
                    uint8_t root[CRY_HASH_BYTES]);
/* The path of leaf i into path (room for CRY_MERKLE_MAX_PATH), its length in *len. */
int cry_merkle_path(const uint8_t *leaves, size_t n, size_t i,
                    uint8_t *path, size_t *len);
/* The root a leaf at index i of n reaches with `path`. */
int cry_merkle_climb(const uint8_t leaf[CRY_HASH_BYTES], size_t i, size_t n,
                     const uint8_t *path, size_t len,
                     uint8_t root[CRY_HASH_BYTES]);
/* Every level of a tree kept, so the paths of all its leaves cost one build (a device stores
 * a proof per version of a page). nodes: n + ceil(n/2) + ... hashes; cry_merkle_tree_free. */
struct cry_merkle_tree {
    uint8_t *nodes;
    size_t n_levels;
    size_t off[CRY_MERKLE_MAX_PATH + 1];  /* first node of each level, in hashes */
    size_t size[CRY_MERKLE_MAX_PATH + 1]; /* nodes in each level */
};
int cry_merkle_tree_build(const uint8_t *leaves, size_t n, struct cry_merkle_tree *t);
/* The root, and the path of leaf i (i below the leaf count). */
void cry_merkle_tree_root(const struct cry_merkle_tree *t, uint8_t root[CRY_HASH_BYTES]);
void cry_merkle_tree_path(const struct cry_merkle_tree *t, size_t i, uint8_t *path, size_t *len);
void cry_merkle_tree_free(struct cry_merkle_tree *t);

/* The bytes the hub signs for a root. */
void cry_merkle_signed(const uint8_t root[CRY_HASH_BYTES], uint8_t out[CRY_MERKLE_SIGNED_BYTES]);

#endif
