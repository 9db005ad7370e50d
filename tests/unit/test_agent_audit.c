/* The device's view log: a hash chain that verifies, says where it breaks when an entry is
 * altered or removed, and still verifies after acknowledged entries are pruned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/audit.h"
#include "agent/store.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/run.h"
#include "tests/support/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];
static struct cry_secret *key;
static store *st;

static int setup(void **state)
{
    (void)state;
    if (tst_tmpdir_make("audit", dir, sizeof dir) != 0 || cry_secret_new(CRY_KEY_BYTES, &key) != CMC_OK)
        return -1;
    cry_random(key->buf, key->len);
    char path[128];
    snprintf(path, sizeof path, "%s/replica.db", dir);
    struct store_session who = { .user = "crew1", .role = STORE_ROLE_URGENT_CARE };
    return store_open(path, key, &who, &st) == CMC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    cry_secret_free(key);
    return tst_tmpdir_remove(dir);
}

static void record_some(int n)
{
    for (int i = 0; i < n; i++)
        audit_record(st, i % 2 ? AUDIT_LOOKUP_MISS : AUDIT_LOOKUP,
                     i % 2 ? NULL : "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11", i % 2 ? "9434765919" : NULL);
}

static void test_chain_records_and_verifies(void **state)
{
    (void)state;
    record_some(5);
    int64_t broken = -1;
    assert_int_equal(audit_verify(st, &broken), CMC_OK);
    struct audit_entry *v;
    size_t n;
    assert_int_equal(audit_list(st, 0, &v, &n), CMC_OK);
    assert_int_equal(n, 5);
    assert_int_equal(v[0].seq, 1);
    assert_string_equal(v[0].user, "crew1");
    assert_string_equal(v[0].role, "urgent_care");
    assert_string_equal(v[1].action, AUDIT_LOOKUP_MISS);
    assert_string_equal(v[1].identifier, "9434765919");
    for (size_t i = 1; i < n; i++)
        assert_memory_equal(v[i].prev, v[i - 1].hash, 32);
    uint8_t zero[32] = { 0 };
    assert_memory_equal(v[0].prev, zero, 32);
    cmc_free(v);
}

/* Five entries, then `sql` straight against the file: verification finds the chain broken
 * at entry `broken_at`. */
static void tamper_and_verify(const char *sql, int64_t broken_at)
{
    record_some(5);
    sqlite3 *db = store_test_db(st);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    int64_t broken = 0;
    assert_int_equal(audit_verify(st, &broken), CMC_ERR_TAMPERED);
    assert_int_equal(broken, broken_at);
}

static void test_altered_entry_is_found(void **state)
{
    (void)state;
    tamper_and_verify("UPDATE audit SET user = 'someone-else' WHERE seq = 3", 3);
    assert_non_null(strstr(cmc_errmsg(), "entry 3"));
}

static void test_removed_entry_is_found(void **state)
{
    (void)state;
    tamper_and_verify("DELETE FROM audit WHERE seq = 2", 3);
}

static void test_prune_keeps_the_rest_verifiable(void **state)
{
    (void)state;
    record_some(6);
    assert_int_equal(store_batch_begin(st), CMC_OK);
    assert_int_equal(audit_prune(st, 4), CMC_OK);
    assert_int_equal(store_batch_commit(st), CMC_OK);
    struct audit_entry *v;
    size_t n;
    assert_int_equal(audit_list(st, 0, &v, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].seq, 5);
    cmc_free(v);
    int64_t broken;
    assert_int_equal(audit_verify(st, &broken), CMC_OK);
    /* the chain goes on from the remaining tail */
    record_some(1);
    assert_int_equal(audit_verify(st, &broken), CMC_OK);
    assert_int_equal(audit_unsent(st, 0, &v, &n), CMC_OK);
    assert_int_equal(n, 3);
    cmc_free(v);
    /* pruning everything leaves the anchor for the next entry */
    assert_int_equal(store_batch_begin(st), CMC_OK);
    assert_int_equal(audit_prune(st, 7), CMC_OK);
    assert_int_equal(store_batch_commit(st), CMC_OK);
    record_some(1);
    assert_int_equal(audit_verify(st, &broken), CMC_OK);
    assert_int_equal(audit_list(st, 0, &v, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].seq, 8);
    cmc_free(v);
}

static void test_upload_form_is_the_hashed_map_plus_hash(void **state)
{
    (void)state;
    record_some(1);
    struct audit_entry *v;
    size_t n;
    assert_int_equal(audit_list(st, 0, &v, &n), CMC_OK);
    uint8_t *b;
    size_t len;
    assert_int_equal(audit_entry_pack(&v[0], &b, &len), CMC_OK);
    assert_int_equal(b[0], 0x8a); /* fixmap of ten */
    /* BLAKE2b(prev || the same bytes under a fixmap of nine, without the final hash pair) */
    size_t core = len - (1 + 4) - (2 + 32);
    uint8_t *m = cmc_malloc(core);
    memcpy(m, b, core);
    m[0] = 0x89;
    struct cry_hash_state hs;
    uint8_t h[32];
    cry_hash_init(&hs);
    cry_hash_update(&hs, v[0].prev, 32);
    cry_hash_update(&hs, m, core);
    cry_hash_final(&hs, h);
    assert_memory_equal(h, v[0].hash, 32);
    assert_memory_equal(b + len - 32, v[0].hash, 32);
    cmc_free(m);
    cmc_free(b);
    cmc_free(v);
}

static int init(void)
{
    return cry_init() == CMC_OK ? 0 : -1;
}

TST_MAIN(init, setup, teardown,
         test_chain_records_and_verifies, test_altered_entry_is_found, test_removed_entry_is_found,
         test_prune_keeps_the_rest_verifiable, test_upload_form_is_the_hashed_map_plus_hash)
