/*
 * test_crypto_seal.c - the plan-seal Merkle tree (crypto/merkle.h) and forward-secure audit
 * sealing (crypto/fss.h): known answers computed independently (Python's hashlib BLAKE2b over
 * the byte layouts of docs/PROTOCOL.md), every path of trees of 1 to 33 leaves, and the
 * refusals a device relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/cry.h"
#include "crypto/fss.h"
#include "crypto/merkle.h"
#include "platform/err.h"

static int setup(void **state)
{
    (void)state;
    return cry_init() == CMC_OK ? 0 : -1;
}

static void unhex_ok(uint8_t *out, size_t len, const char *hex)
{
    assert_int_equal(cry_unhex(out, len, hex), CMC_OK);
}

static void make_leaves(uint8_t (*leaves)[CRY_HASH_BYTES], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char id[40], body[32];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012zu", i);
        snprintf(body, sizeof body, "body %zu", i);
        cry_merkle_leaf(leaves[i], id, (int64_t)i + 1, (const uint8_t *)body, strlen(body));
    }
}

static void test_merkle_known_answers(void **state)
{
    (void)state;
    uint8_t leaves[5][CRY_HASH_BYTES], root[CRY_HASH_BYTES], want[CRY_HASH_BYTES];
    make_leaves(leaves, 5);
    unhex_ok(want, sizeof want, "a1a36b6ba351fdbcd93fb33b91865723e6f948b8e606a955aef683d6eef70103");
    assert_memory_equal(leaves[0], want, sizeof want);
    assert_int_equal(cry_merkle_root(leaves[0], 1, root), CMC_OK);
    assert_memory_equal(root, want, sizeof want); /* one leaf is its own root */
    unhex_ok(want, sizeof want, "089619c56ce730ad9c949b8f431baa6c33bdb4c42095f108c328e3491e296239");
    assert_int_equal(cry_merkle_root(leaves[0], 2, root), CMC_OK);
    assert_memory_equal(root, want, sizeof want);
    unhex_ok(want, sizeof want, "8f218bbc8a039a0fce8b909d63991b08daa9d1981bec2f83a7c0901f3d21e590");
    assert_int_equal(cry_merkle_root(leaves[0], 5, root), CMC_OK);
    assert_memory_equal(root, want, sizeof want);
}

static void test_merkle_every_path_climbs_to_the_root(void **state)
{
    (void)state;
    uint8_t leaves[33][CRY_HASH_BYTES], root[CRY_HASH_BYTES], got[CRY_HASH_BYTES];
    uint8_t path[CRY_MERKLE_MAX_PATH][CRY_HASH_BYTES];
    make_leaves(leaves, 33);
    for (size_t n = 1; n <= 33; n++) {
        assert_int_equal(cry_merkle_root(leaves[0], n, root), CMC_OK);
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            assert_int_equal(cry_merkle_path(leaves[0], n, i, path[0], &len), CMC_OK);
            assert_int_equal(cry_merkle_climb(leaves[i], i, n, path[0], len, got), CMC_OK);
            assert_memory_equal(got, root, sizeof root);
            /* another leaf's bytes at this place do not reach the root */
            assert_int_equal(cry_merkle_climb(leaves[(i + 1) % 33], i, n, path[0], len, got),
                             CMC_OK);
            assert_memory_not_equal(got, root, sizeof root);
            if (len > 0) /* a path of the wrong length is refused, not climbed */
                assert_int_equal(cry_merkle_climb(leaves[i], i, n, path[0], len - 1, got),
                                 CMC_ERR_INVALID);
            assert_int_equal(cry_merkle_climb(leaves[i], i, n, path[0], len + 1, got),
                             CMC_ERR_INVALID);
            /* the kept tree gives the same path */
            struct cry_merkle_tree t;
            uint8_t tpath[CRY_MERKLE_MAX_PATH][CRY_HASH_BYTES], troot[CRY_HASH_BYTES];
            size_t tlen = 0;
            assert_int_equal(cry_merkle_tree_build(leaves[0], n, &t), CMC_OK);
            cry_merkle_tree_root(&t, troot);
            assert_memory_equal(troot, root, sizeof root);
            cry_merkle_tree_path(&t, i, tpath[0], &tlen);
            assert_int_equal(tlen, len);
            assert_memory_equal(tpath, path, len * CRY_HASH_BYTES);
            cry_merkle_tree_free(&t);
        }
    }
}

static void test_merkle_refuses_bad_shapes(void **state)
{
    (void)state;
    uint8_t leaves[2][CRY_HASH_BYTES], root[CRY_HASH_BYTES];
    uint8_t path[CRY_MERKLE_MAX_PATH][CRY_HASH_BYTES];
    size_t len;
    make_leaves(leaves, 2);
    assert_int_equal(cry_merkle_root(leaves[0], 0, root), CMC_ERR_INVALID);
    assert_int_equal(cry_merkle_path(leaves[0], 2, 2, path[0], &len), CMC_ERR_INVALID);
    assert_int_equal(cry_merkle_climb(leaves[0], 3, 2, path[0], 1, root), CMC_ERR_INVALID);
    uint8_t msg[CRY_MERKLE_SIGNED_BYTES];
    cry_merkle_signed(leaves[0], msg);
    assert_memory_equal(msg, "cmc-plan-seal-1", 16);
    assert_memory_equal(msg + 16, leaves[0], CRY_HASH_BYTES);
}

static void test_fss_known_answers(void **state)
{
    (void)state;
    uint8_t k[CRY_FSS_KEY_BYTES], want[CRY_HASH_BYTES], seal[CRY_FSS_SEAL_BYTES];
    uint8_t eh[CRY_HASH_BYTES];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)i;
    cry_hash(eh, "entry", 5);
    unhex_ok(want, sizeof want, "3fb230b209b228d493ac99337b8ad3237a732b80d176beadd93235269d3dc387");
    cry_fss_seal(k, 7, eh, seal);
    assert_memory_equal(seal, want, sizeof want);
    cry_fss_evolve(k);
    unhex_ok(want, sizeof want, "b4d48a5161823dfaf327512c25297f43856a596b8a5dcb84cf472674ab0f6882");
    assert_memory_equal(k, want, sizeof want);
    cry_fss_evolve(k);
    unhex_ok(want, sizeof want, "5958f871600e50b7f1b9d51c3a797db0687c92067748c2dba1548b47fa9dfd80");
    assert_memory_equal(k, want, sizeof want);
    unhex_ok(want, sizeof want, "1c3ae2fffe3293729094e6f8d3d5cb396f922288b086cef9b29c4507e1840766");
    cry_fss_state(k, 2, 9, seal);
    assert_memory_equal(seal, want, sizeof want);
}

static void test_fss_advance_matches_evolve_and_is_capped(void **state)
{
    (void)state;
    uint8_t a[CRY_FSS_KEY_BYTES], b[CRY_FSS_KEY_BYTES], s1[32], s2[32];
    cry_random(a, sizeof a);
    memcpy(b, a, sizeof b);
    for (int i = 0; i < 10; i++)
        cry_fss_evolve(a);
    assert_int_equal(cry_fss_advance(b, 10), CMC_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(cry_fss_advance(b, (uint64_t)CRY_FSS_MAX_STEPS + 1), CMC_ERR_TOO_LARGE);
    assert_memory_equal(a, b, sizeof a);
    /* a seal made with the next key (all a thief holds) is not the entry's seal */
    uint8_t eh[CRY_HASH_BYTES] = { 1 };
    cry_fss_seal(a, 1, eh, s1);
    cry_fss_evolve(b);
    cry_fss_seal(b, 1, eh, s2);
    assert_int_equal(cry_fss_check(s1, s2), CMC_ERR_TAMPERED);
    assert_int_equal(cry_fss_check(s1, s1), CMC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merkle_known_answers),
        cmocka_unit_test(test_merkle_every_path_climbs_to_the_root),
        cmocka_unit_test(test_merkle_refuses_bad_shapes),
        cmocka_unit_test(test_fss_known_answers),
        cmocka_unit_test(test_fss_advance_matches_evolve_and_is_capped),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
