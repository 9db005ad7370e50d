/*
 * test_crypto_slots.c - the key-slot file and its unlock throttle (crypto/cry.h).
 *
 * Runs with the lowered test KDF limits and the fake clock, so each unlock is fast and each
 * throttle delay is passed by moving the clock rather than by sleeping. Layout offsets used
 * to tamper with files are those of docs/STORAGE.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "crypto/throttle.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"

#include <sodium.h>

#define NS 1000000000ull
#define HEADER_BYTES 28
#define WRAPPED_BYTES 112

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    if (cry_init() != CMC_OK)
        return -1;
    cry_kdf_set_test_limits(1);
    plat_fake_clock_enable(1700000000, 5000 * NS);
    strcpy(dir, "/tmp/cmc-test-slots-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    plat_fake_clock_disable();
    return 0;
}

/* A fresh slot-file path per test (and no leftover throttle file). */
static void path_for(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s.slots", dir, name);
    assert_int_equal(cry_slots_destroy(out), CMC_OK);
}

static void throttle_path(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "%s.throttle", path);
}

static void read_all(const char *path, uint8_t **buf, size_t *len)
{
    assert_int_equal(plat_read_file(path, 1 << 20, buf, len), CMC_OK);
}

static void write_all(const char *path, const void *buf, size_t len)
{
    assert_int_equal(plat_write_atomic(path, buf, len), CMC_OK);
}

static size_t find_bytes(const uint8_t *hay, size_t len, const void *needle, size_t n)
{
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return i;
    return (size_t)-1;
}

/* Creates a slot file for "alice" (urgent_care, PIN 1234) and returns its key. */
static struct cry_secret *make_file(const char *path)
{
    struct cry_secret *key = NULL;
    assert_int_equal(cry_slots_create(path, "alice", "urgent_care", "1234-pin", &key), CMC_OK);
    assert_non_null(key);
    assert_int_equal(key->len, CRY_KEY_BYTES);
    return key;
}

static int try_unlock(cry_slots *s, const char *user, const char *pin, struct cry_secret *want)
{
    struct cry_secret *key = (struct cry_secret *)(uintptr_t)1;
    char role[CRY_ROLE_MAX + 1] = "x";
    int rc = cry_slots_unlock(s, user, pin, &key, role);
    if (rc == CMC_OK) {
        assert_non_null(key);
        if (want != NULL)
            assert_true(cry_memeq(key->buf, want->buf, CRY_KEY_BYTES));
        cry_secret_free(key);
    } else {
        assert_null(key);
        assert_string_equal(role, "");
    }
    return rc;
}

static int load_and_unlock(const char *path, const char *user, const char *pin)
{
    cry_slots *s = NULL;
    int rc = cry_slots_load(path, &s);
    if (rc != CMC_OK) {
        assert_null(s);
        return rc;
    }
    rc = try_unlock(s, user, pin, NULL);
    cry_slots_free(s);
    return rc;
}

/* A test's slot file: a fresh path (and its throttle file's) holding alice's slot, whose key
 * is `key`. The teardown frees the key and destroys both files. */
struct slot_file {
    char path[256];
    char tpath[300];
    struct cry_secret *key;
};

static int file_setup(void **state)
{
    static struct slot_file f;
    path_for(f.path, sizeof f.path, "case");
    throttle_path(f.tpath, sizeof f.tpath, f.path);
    f.key = make_file(f.path);
    *state = &f;
    return 0;
}

/* The same with no file yet: the test makes its own at `path`. */
static int path_setup(void **state)
{
    static struct slot_file f;
    path_for(f.path, sizeof f.path, "case");
    throttle_path(f.tpath, sizeof f.tpath, f.path);
    f.key = NULL;
    *state = &f;
    return 0;
}

static int file_teardown(void **state)
{
    struct slot_file *f = *state;
    cry_secret_free(f->key);
    f->key = NULL;
    return cry_slots_destroy(f->path) == CMC_OK ? 0 : -1;
}

/* ---- round trip, users ----------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    struct slot_file *f = *state;

    /* Refuses to overwrite an existing file (that would lose the replica key). */
    struct cry_secret *again = NULL;
    assert_int_equal(cry_slots_create(f->path, "bob", "clinician", "9999-bad", &again), CMC_ERR_EXISTS);
    assert_null(again);

    /* The file is private and does not hold the key in clear. */
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    assert_int_equal(find_bytes(buf, len, f->key->buf, 8), (size_t)-1);
    cmc_free(buf);

    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_count(s), 1);
    const char *user = NULL, *role = NULL;
    assert_int_equal(cry_slots_user(s, 0, &user, &role), CMC_OK);
    assert_string_equal(user, "alice");
    assert_string_equal(role, "urgent_care");
    assert_int_equal(cry_slots_user(s, 1, &user, &role), CMC_ERR_NOT_FOUND);

    struct cry_secret *got = NULL;
    char got_role[CRY_ROLE_MAX + 1];
    assert_int_equal(cry_slots_unlock(s, "alice", "1234-pin", &got, got_role), CMC_OK);
    assert_true(cry_memeq(got->buf, f->key->buf, CRY_KEY_BYTES));
    assert_string_equal(got_role, "urgent_care");
    assert_int_equal(cry_slots_failures(s, "alice"), 0);
    cry_secret_free(got);
    cry_slots_free(s);
    cry_slots_free(NULL);

    /* A second file gets a different random key. */
    char path2[256];
    path_for(path2, sizeof path2, "roundtrip2");
    struct cry_secret *key2 = make_file(path2);
    assert_false(cry_memeq(f->key->buf, key2->buf, CRY_KEY_BYTES));
    cry_secret_free(key2);
    assert_int_equal(cry_slots_destroy(path2), CMC_OK);
}

static void test_create_refuses_bad_input(void **state)
{
    struct slot_file *f = *state;
    struct cry_secret *key = NULL;
    assert_int_equal(cry_slots_create(f->path, "alice", "urgent_care", "1234567", &key), CMC_ERR_INVALID);
    assert_int_equal(cry_slots_create(f->path, "", "urgent_care", "1234-pin", &key), CMC_ERR_INVALID);
    assert_int_equal(cry_slots_create(f->path, "al\nice", "urgent_care", "1234-pin", &key), CMC_ERR_INVALID);
    assert_int_equal(cry_slots_create(f->path, "alice", "", "1234-pin", &key), CMC_ERR_INVALID);
    char long_name[CRY_USER_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(cry_slots_create(f->path, long_name, "urgent_care", "1234-pin", &key), CMC_ERR_INVALID);
    long_name[CRY_USER_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(cry_slots_create(f->path, long_name, "urgent_care", "1234-pin", &key), CMC_OK);
    cry_secret_free(key);
    assert_int_equal(load_and_unlock(f->path, long_name, "1234-pin"), CMC_OK);
}

static void test_add_and_remove_users(void **state)
{
    struct slot_file *f = *state;

    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    struct cry_secret *unlocked = NULL;
    char role[CRY_ROLE_MAX + 1];
    assert_int_equal(cry_slots_unlock(s, "alice", "1234-pin", &unlocked, role), CMC_OK);
    assert_int_equal(cry_slots_add(s, unlocked, "bob", "clinician", "5678-pin"), CMC_OK);
    assert_int_equal(cry_slots_add(s, unlocked, "bob", "clinician", "0000-bad"), CMC_ERR_EXISTS);
    assert_int_equal(cry_slots_add(s, unlocked, "carol", "clinician", "12"), CMC_ERR_INVALID);
    assert_int_equal(cry_slots_count(s), 2);
    cry_secret_free(unlocked);
    cry_slots_free(s);

    /* Both users unlock the same key from the file on disk, each with their own role. */
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_count(s), 2);
    assert_int_equal(cry_slots_unlock(s, "bob", "5678-pin", &unlocked, role), CMC_OK);
    assert_true(cry_memeq(unlocked->buf, f->key->buf, CRY_KEY_BYTES));
    assert_string_equal(role, "clinician");
    cry_secret_free(unlocked);
    assert_int_equal(cry_slots_unlock(s, "alice", "1234-pin", &unlocked, role), CMC_OK);
    assert_true(cry_memeq(unlocked->buf, f->key->buf, CRY_KEY_BYTES));
    assert_string_equal(role, "urgent_care");
    cry_secret_free(unlocked);
    /* One user's PIN does not open another's slot. */
    assert_int_equal(try_unlock(s, "bob", "1234-pin", NULL), CMC_ERR_AUTH);
    assert_int_equal(try_unlock(s, "alice", "1234-pin", f->key), CMC_OK);

    /* Remove bob: his PIN opens nothing afterwards, in this handle or from disk. */
    assert_int_equal(cry_slots_remove(s, "nobody"), CMC_ERR_NOT_FOUND);
    assert_int_equal(cry_slots_remove(s, "bob"), CMC_OK);
    assert_int_equal(cry_slots_count(s), 1);
    assert_int_equal(try_unlock(s, "bob", "5678-pin", NULL), CMC_ERR_AUTH);
    /* The last user cannot be removed: the replica would become unreadable. */
    assert_int_equal(cry_slots_remove(s, "alice"), CMC_ERR_STATE);
    assert_int_equal(cry_slots_count(s), 1);
    cry_slots_free(s);

    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_count(s), 1);
    const char *user = NULL;
    assert_int_equal(cry_slots_user(s, 0, &user, NULL), CMC_OK);
    assert_string_equal(user, "alice");
    assert_int_equal(try_unlock(s, "bob", "5678-pin", NULL), CMC_ERR_AUTH);
    assert_int_equal(try_unlock(s, "alice", "1234-pin", f->key), CMC_OK);
    /* bob's bytes are gone from the file. */
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    assert_int_equal(find_bytes(buf, len, "bob", 3), (size_t)-1);
    cmc_free(buf);
    cry_slots_free(s);
}

static void test_remove_middle_slot_keeps_others(void **state)
{
    struct slot_file *f = *state;
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_add(s, f->key, "bob", "clinician", "5678-pin"), CMC_OK);
    assert_int_equal(cry_slots_add(s, f->key, "carol", "urgent_care", "2468-pin"), CMC_OK);
    assert_int_equal(cry_slots_remove(s, "bob"), CMC_OK);
    cry_slots_free(s);
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_count(s), 2);
    assert_int_equal(try_unlock(s, "carol", "2468-pin", f->key), CMC_OK);
    assert_int_equal(try_unlock(s, "alice", "1234-pin", f->key), CMC_OK);
    cry_slots_free(s);
}

static void test_slot_file_is_capped(void **state)
{
    struct slot_file *f = *state;
    char name[16];
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    for (int i = 1; i < CRY_SLOTS_MAX; i++) {
        snprintf(name, sizeof name, "user%d", i);
        assert_int_equal(cry_slots_add(s, f->key, name, "clinician", "1111-pin"), CMC_OK);
    }
    assert_int_equal(cry_slots_add(s, f->key, "onemore", "clinician", "1111-pin"), CMC_ERR_TOO_LARGE);
    cry_slots_free(s);
    /* A full file loads, and the last user added unlocks. */
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_count(s), CRY_SLOTS_MAX);
    snprintf(name, sizeof name, "user%d", CRY_SLOTS_MAX - 1);
    assert_int_equal(try_unlock(s, name, "1111-pin", f->key), CMC_OK);
    cry_slots_free(s);
}

/* ---- throttle -------------------------------------------------------------------------- */

static uint32_t failures_on_disk(const char *path, const char *user)
{
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(path, &s), CMC_OK);
    uint32_t n = cry_slots_failures(s, user);
    cry_slots_free(s);
    return n;
}

/* Each wrong PIN is counted and makes the next attempt run more derivations; no attempt is
 * ever refused for time, and no clock moves the cost. */
static void test_wrong_pin_costs_more_work(void **state)
{
    struct slot_file *f = *state;
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    for (uint32_t n = 0; n < 8; n++) {
        assert_int_equal(cry_slots_failures(s, "alice"), n);
        assert_int_equal(cry_slots_next_work(s, "alice"), n < 3 ? 0 : n - 2);
        /* wall clock a day later each time: nothing changes */
        plat_fake_clock_set_wall(plat_wall_now() + 86400);
        plat_fake_clock_advance(86400 * NS);
        assert_int_equal(try_unlock(s, "alice", "9999-bad", NULL), CMC_ERR_AUTH);
    }
    assert_int_equal(failures_on_disk(f->path, "alice"), 8);
    /* The right PIN still works (after its extra work) and reports what happened. */
    struct cry_unlocked u;
    assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &u), CMC_OK);
    assert_int_equal(u.failures_before, 8);
    assert_int_equal(u.record_altered, 0);
    assert_true(cry_memeq(u.key->buf, f->key->buf, CRY_KEY_BYTES));
    cry_unlocked_clear(&u);
    assert_int_equal(cry_slots_failures(s, "alice"), 0);
    assert_int_equal(failures_on_disk(f->path, "alice"), 0);
    /* The cost stops growing at the cap. */
    for (uint32_t n = 0; n < 3; n++)
        assert_int_equal(cry_throttle_work(n), 0);
    assert_int_equal(cry_throttle_work(3), 1);
    assert_int_equal(cry_throttle_work(1000000), 100);
    cry_slots_free(s);
}

/* The count lives in the slot too: deleting the throttle file does not reset it. */
static void test_deleting_throttle_file_does_not_reset(void **state)
{
    struct slot_file *f = *state;
    for (int i = 0; i < 5; i++)
        assert_int_equal(load_and_unlock(f->path, "alice", "9999-bad"), CMC_ERR_AUTH);
    assert_int_equal(plat_remove(f->tpath), CMC_OK);
    assert_int_equal(failures_on_disk(f->path, "alice"), 5);
    assert_int_equal(load_and_unlock(f->path, "alice", "9999-bad"), CMC_ERR_AUTH);
    assert_int_equal(failures_on_disk(f->path, "alice"), 6);
    assert_int_equal(failures_on_disk(f->path, NULL), 6);
}

/* Attempts from parallel processes serialise on the lock, and every one counts. */
static void test_parallel_attempts_each_count(void **state)
{
    struct slot_file *f = *state;
    enum { KIDS = 8 };
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            _exit(load_and_unlock(f->path, "alice", "9999-bad") == CMC_ERR_AUTH ? 0 : 1);
    }
    for (int i = 0; i < KIDS; i++) {
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(failures_on_disk(f->path, "alice"), KIDS);
    assert_int_equal(failures_on_disk(f->path, NULL), KIDS);
}

/* Winding the slot's count back (restoring its bytes from before the failures would need
 * the old file; forging a lower count) is told at the next successful unlock. */
static void test_wound_back_count_is_reported(void **state)
{
    struct slot_file *f = *state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(load_and_unlock(f->path, "alice", "9999-bad"), CMC_ERR_AUTH);
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    /* failures (4 bytes) then the chain (32), the nonce (24), the payload (96 + 16) */
    size_t at = len - 112 - 24 - 32 - 4;
    assert_int_equal(buf[at], 4);
    buf[at] = 0;
    write_all(f->path, buf, len);
    assert_int_equal(plat_remove(f->tpath), CMC_OK);
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    struct cry_unlocked u;
    assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &u), CMC_OK);
    assert_int_equal(u.record_altered, 1);
    cry_unlocked_clear(&u);
    /* and the next unlock starts clean */
    assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &u), CMC_OK);
    assert_int_equal(u.record_altered, 0);
    assert_int_equal(u.failures_before, 0);
    cry_unlocked_clear(&u);
    cry_slots_free(s);
    cmc_free(buf);
}

static void count_warnings(enum plat_log_level level, const char *line, void *ctx)
{
    (void)line;
    if (level == PLAT_LOG_WARN)
        (*(int *)ctx)++;
}

/* A damaged throttle file locks nobody out, is logged, and counts as the free attempts
 * used up; the clock-based file of earlier versions keeps its count. */
static void test_damaged_and_old_throttle_files(void **state)
{
    struct slot_file *f = *state;
    write_all(f->tpath, "garbage", 7);
    int warnings = 0;
    plat_log_set_sink(count_warnings, &warnings);
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_failures(s, "alice"), 3);
    assert_true(warnings >= 1);
    assert_int_equal(try_unlock(s, "alice", "1234-pin", f->key), CMC_OK);
    plat_log_set_sink(NULL, NULL);
    uint8_t rec[68] = { 'C', 'M', 'C', 'T', 'H', 'R', 'O', 'T', 1, 0, 0, 0, 6, 0, 0, 0 };
    write_all(f->tpath, rec, sizeof rec);
    assert_int_equal(cry_slots_failures(s, "alice"), 6);
    cry_slots_free(s);
}

static void test_unknown_user_counts_as_failure(void **state)
{
    struct slot_file *f = *state;
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(try_unlock(s, "mallory", "1234-pin", NULL), CMC_ERR_AUTH);
    assert_int_equal(cry_slots_failures(s, "alice"), 3);
    assert_int_equal(cry_slots_next_work(s, "alice"), 1);
    assert_int_equal(try_unlock(s, "alice", "1234-pin", f->key), CMC_OK);
    assert_int_equal(cry_slots_failures(s, "alice"), 0);
    cry_slots_free(s);
}

/* A version 1 file (one slot, as devices made it before signing keys and role keys), made
 * byte by byte as docs/STORAGE.md describes it. */
static void write_v1_file(const char *path, const char *user, const char *role, const char *pin,
                          uint8_t key[CRY_KEY_BYTES])
{
    uint8_t buf[512], kek[32];
    size_t n = 0, ulen = strlen(user), rlen = strlen(role);
    memcpy(buf, "CMCSLOTS", 8);
    n = 8;
    buf[n++] = 1, buf[n++] = 0; /* version 1 */
    buf[n++] = 1, buf[n++] = 0; /* one slot */
    randombytes_buf(buf + n, 16); /* file id */
    n += 16;
    size_t slot = n;
    buf[n++] = (uint8_t)ulen;
    memcpy(buf + n, user, ulen);
    n += ulen;
    buf[n++] = (uint8_t)rlen;
    memcpy(buf + n, role, rlen);
    n += rlen;
    buf[n++] = 2; /* Argon2id */
    uint64_t ops = crypto_pwhash_OPSLIMIT_MIN, mem = crypto_pwhash_MEMLIMIT_MIN;
    for (int i = 0; i < 8; i++)
        buf[n + i] = (uint8_t)(ops >> (8 * i)), buf[n + 8 + i] = (uint8_t)(mem >> (8 * i));
    n += 16;
    uint8_t *salt = buf + n;
    randombytes_buf(salt, 16);
    n += 16;
    size_t head_end = n;
    uint8_t *nonce = buf + n;
    randombytes_buf(nonce, 24);
    n += 24;
    uint8_t ad[256];
    memcpy(ad, buf, 10);                       /* magic, version */
    memcpy(ad + 10, buf + 12, 16);             /* file id */
    memcpy(ad + 26, buf + slot, head_end - slot);
    assert_int_equal(crypto_pwhash(kek, sizeof kek, pin, strlen(pin), salt, ops, (size_t)mem,
                                   crypto_pwhash_ALG_ARGON2ID13), 0);
    randombytes_buf(key, CRY_KEY_BYTES);
    unsigned long long clen = 0;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(buf + n, &clen, key, CRY_KEY_BYTES, ad,
                                                                26 + head_end - slot, NULL, nonce, kek), 0);
    n += (size_t)clen;
    write_all(path, buf, n);
}

/* Devices keep their version 1 files: the slot opens, becomes current at its first unlock
 * (a signing key of its own), counts failures in the new layout, and a clinician of such a
 * device can make the role key once. */
static void test_version_1_file_is_upgraded(void **state)
{
    struct slot_file *f = *state;
    uint8_t key[CRY_KEY_BYTES], pk[CRY_SIGN_PK_BYTES];
    write_v1_file(f->path, "alice", "clinician", "1234-pin", key);
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_user_pk(s, 0, pk), CMC_ERR_NOT_FOUND);
    assert_int_equal(try_unlock(s, "alice", "9999-bad", NULL), CMC_ERR_AUTH);
    assert_int_equal(failures_on_disk(f->path, "alice"), 1);
    struct cry_unlocked u;
    assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &u), CMC_OK);
    assert_memory_equal(u.key->buf, key, CRY_KEY_BYTES);
    assert_non_null(u.user_sk);
    assert_null(u.role_key);
    assert_int_equal(u.failures_before, 1);
    cry_slots_free(s);
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    assert_int_equal(cry_slots_user_pk(s, 0, pk), CMC_OK);
    assert_memory_equal(pk, u.user_pk, sizeof pk);
    /* the role key, once */
    assert_int_equal(cry_slots_any_role_key(s), 0);
    assert_int_equal(cry_slots_mint_role_key(s, "alice", "1234-pin", &u), CMC_OK);
    assert_non_null(u.role_key);
    assert_int_equal(cry_slots_any_role_key(s), 1);
    struct cry_unlocked again;
    assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &again), CMC_OK);
    assert_true(cry_memeq(again.role_key->buf, u.role_key->buf, CRY_KEY_BYTES));
    assert_memory_equal(again.user_pk, u.user_pk, sizeof pk); /* the same signing key */
    assert_int_equal(cry_slots_mint_role_key(s, "alice", "1234-pin", &again), CMC_OK); /* has one */
    cry_unlocked_clear(&again);
    again = u;
    memset(&u, 0, sizeof u);
    cry_secret_free(again.role_key);
    again.role_key = NULL;
    assert_int_equal(cry_slots_mint_role_key(s, "alice", "1234-pin", &again), CMC_ERR_EXISTS);
    cry_unlocked_clear(&again);
    cry_slots_free(s);
}

/* Each user gets a signing key with their slot; it survives unlocks, and the public half is
 * readable without a PIN. */
static void test_user_signing_keys(void **state)
{
    struct slot_file *f = *state;
    struct cry_unlocked made, u;
    assert_int_equal(cry_slots_create_ex(f->path, "alice", "clinician", "1234-pin", 1, &made), CMC_OK);
    assert_non_null(made.role_key);
    assert_non_null(made.user_sk);
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    uint8_t pk[CRY_SIGN_PK_BYTES];
    assert_int_equal(cry_slots_user_pk(s, 0, pk), CMC_OK);
    assert_memory_equal(pk, made.user_pk, sizeof pk);
    assert_int_equal(cry_slots_add_ex(s, &made, "bob", "clinician", "5678-pin", 1), CMC_OK);
    assert_int_equal(cry_slots_add_ex(s, &made, "carol", "urgent_care", "2468-pin", 0), CMC_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cry_slots_unlock_ex(s, "alice", "1234-pin", &u), CMC_OK);
        assert_memory_equal(u.user_pk, made.user_pk, sizeof pk);
        assert_true(cry_memeq(u.role_key->buf, made.role_key->buf, CRY_KEY_BYTES));
        uint8_t sig[CRY_SIG_BYTES];
        assert_int_equal(cry_sign(u.user_sk, "m", 1, sig), CMC_OK);
        assert_int_equal(cry_verify(pk, "m", 1, sig), CMC_OK);
        cry_unlocked_clear(&u);
    }
    assert_int_equal(cry_slots_unlock_ex(s, "bob", "5678-pin", &u), CMC_OK);
    assert_true(cry_memeq(u.role_key->buf, made.role_key->buf, CRY_KEY_BYTES));
    assert_false(memcmp(u.user_pk, made.user_pk, sizeof pk) == 0);
    cry_unlocked_clear(&u);
    /* An urgent-care slot holds no role key and cannot hand one on. */
    assert_int_equal(cry_slots_unlock_ex(s, "carol", "2468-pin", &u), CMC_OK);
    assert_null(u.role_key);
    assert_int_equal(cry_slots_add_ex(s, &u, "dave", "clinician", "1357-pin", 1), CMC_ERR_DENIED);
    cry_unlocked_clear(&u);
    cry_unlocked_clear(&made);
    cry_slots_free(s);
}

/* ---- tampering and malformed files ----------------------------------------------------- */

static void test_edited_role_is_refused(void **state)
{
    struct slot_file *f = *state;
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    size_t at = find_bytes(buf, len, "urgent_care", 11);
    assert_true(at != (size_t)-1 && at > 0);
    assert_int_equal(buf[at - 1], 11);
    /* Swap the role for "clinician" (two bytes shorter), fixing the length byte. */
    uint8_t *edited = cmc_malloc(len);
    assert_non_null(edited);
    memcpy(edited, buf, at - 1);
    edited[at - 1] = 9;
    memcpy(edited + at, "clinician", 9);
    memcpy(edited + at + 9, buf + at + 11, len - at - 11);
    write_all(f->path, edited, len - 2);

    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    const char *role = NULL;
    assert_int_equal(cry_slots_user(s, 0, NULL, &role), CMC_OK);
    assert_string_equal(role, "clinician"); /* what the file claims... */
    assert_int_equal(try_unlock(s, "alice", "1234-pin", NULL), CMC_ERR_AUTH); /* ...is not honoured */
    cry_slots_free(s);

    /* The original bytes still work. */
    write_all(f->path, buf, len);
    assert_int_equal(load_and_unlock(f->path, "alice", "1234-pin"), CMC_OK);
    cmc_free(edited);
    cmc_free(buf);
}

/* Flips each byte in [from, to) of the file; each must make the unlock fail. */
static void flip_each(const char *path, const uint8_t *orig, size_t len, size_t from, size_t to,
                      int want)
{
    char tpath[300];
    throttle_path(tpath, sizeof tpath, path);
    uint8_t *copy = cmc_malloc(len);
    assert_non_null(copy);
    for (size_t i = from; i < to; i++) {
        memcpy(copy, orig, len);
        copy[i] ^= 0x20;
        write_all(path, copy, len);
        int rc = load_and_unlock(path, "alice", "1234-pin");
        if (rc != want)
            fail_msg("byte %zu flipped: got %d, want %d", i, rc, want);
        assert_int_equal(plat_remove(tpath), CMC_OK); /* keep the throttle out of the way */
    }
    cmc_free(copy);
    write_all(path, orig, len);
}

static void test_flipped_bytes_are_refused(void **state)
{
    struct slot_file *f = *state;
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    /* One slot: the wrapped payload and tag are the last 112 bytes, the nonce the 24
     * before; then (not authenticated) the chain and count; before them the payload
     * length, the public key and the salt. */
    flip_each(f->path, buf, len, len - WRAPPED_BYTES, len, CMC_ERR_AUTH);
    flip_each(f->path, buf, len, len - WRAPPED_BYTES - 24, len - WRAPPED_BYTES, CMC_ERR_AUTH);
    size_t pk_end = len - WRAPPED_BYTES - 24 - 36 - 1;
    flip_each(f->path, buf, len, pk_end - 32 - 16, pk_end, CMC_ERR_AUTH);
    /* The file id is bound into every slot. */
    flip_each(f->path, buf, len, 12, HEADER_BYTES, CMC_ERR_AUTH);
    /* The untouched file still opens. */
    assert_int_equal(load_and_unlock(f->path, "alice", "1234-pin"), CMC_OK);
    cmc_free(buf);
}

static void test_slot_from_another_file_is_refused(void **state)
{
    (void)state;
    /* Splicing a slot into another file (same user, same PIN) fails: the file id differs. */
    char a[256], b[256];
    path_for(a, sizeof a, "splice-a");
    path_for(b, sizeof b, "splice-b");
    struct cry_secret *ka = make_file(a), *kb = make_file(b);
    uint8_t *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    read_all(a, &ba, &la);
    read_all(b, &bb, &lb);
    assert_int_equal(la, lb);
    memcpy(bb + HEADER_BYTES, ba + HEADER_BYTES, la - HEADER_BYTES);
    write_all(b, bb, lb);
    assert_int_equal(load_and_unlock(b, "alice", "1234-pin"), CMC_ERR_AUTH);
    cmc_free(ba);
    cmc_free(bb);
    cry_secret_free(ka);
    cry_secret_free(kb);
    assert_int_equal(cry_slots_destroy(a), CMC_OK);
    assert_int_equal(cry_slots_destroy(b), CMC_OK);
}

static int load_bytes(const char *path, const uint8_t *buf, size_t len)
{
    write_all(path, buf, len);
    cry_slots *s = (cry_slots *)(uintptr_t)1;
    int rc = cry_slots_load(path, &s);
    if (rc != CMC_OK)
        assert_null(s);
    cry_slots_free(rc == CMC_OK ? s : NULL);
    return rc;
}

static void test_malformed_files_are_corrupt(void **state)
{
    struct slot_file *f = *state;
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_ERR_NOT_FOUND);
    assert_null(s);

    struct cry_secret *key = make_file(f->path);
    cry_slots *h = NULL;
    assert_int_equal(cry_slots_load(f->path, &h), CMC_OK);
    assert_int_equal(cry_slots_add(h, key, "bob", "clinician", "5678-pin"), CMC_OK);
    cry_slots_free(h);
    uint8_t *buf = NULL;
    size_t len = 0;
    read_all(f->path, &buf, &len);
    uint8_t *copy = cmc_malloc(len + 1);
    assert_non_null(copy);

    /* Every truncation. */
    for (size_t n = 0; n < len; n++)
        if (load_bytes(f->path, buf, n) != CMC_ERR_CORRUPT)
            fail_msg("truncated to %zu bytes: not corrupt", n);
    /* A trailing byte. */
    memcpy(copy, buf, len);
    copy[len] = 0;
    assert_int_equal(load_bytes(f->path, copy, len + 1), CMC_ERR_CORRUPT);
    /* Hostile slot counts: none, more than the cap, more than present, fewer than present. */
    static const uint16_t counts[] = { 0, 33, 0xffff, 3, 1 };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        memcpy(copy, buf, len);
        copy[10] = (uint8_t)counts[i];
        copy[11] = (uint8_t)(counts[i] >> 8);
        assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    }
    /* Wrong magic, unknown version. */
    memcpy(copy, buf, len);
    copy[0] = 'X';
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[8] = 3;
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    /* First slot: empty user name; a user name length running past the end; a control
     * character in the name; an unknown KDF; limits beyond the caps. */
    memcpy(copy, buf, len);
    copy[HEADER_BYTES] = 4; /* unknown wrap format */
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[HEADER_BYTES + 1] = 0;
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[HEADER_BYTES + 1] = 0xff;
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[HEADER_BYTES + 2] = '\n';
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    size_t alg = HEADER_BYTES + 1 + 1 + 5 + 1 + 11; /* after the wrap byte, "alice", "urgent_care" */
    assert_int_equal(buf[alg], 2);
    memcpy(copy, buf, len);
    copy[alg] = 1;
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[alg + 1 + 7] = 0x01; /* opslimit 2^56 */
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    memcpy(copy, buf, len);
    copy[alg + 9 + 7] = 0x01; /* memlimit 2^56 bytes */
    assert_int_equal(load_bytes(f->path, copy, len), CMC_ERR_CORRUPT);
    /* Two slots for the same user: the header (count 2) followed by slot 0 twice. Slot 0
     * runs from the end of the header to bob's name length byte. */
    size_t bob = find_bytes(buf, len, "bob", 3);
    assert_true(bob != (size_t)-1);
    size_t slot0 = bob - 2 - HEADER_BYTES; /* bob's slot starts at its wrap byte */
    uint8_t *dup = cmc_malloc(HEADER_BYTES + 2 * slot0);
    assert_non_null(dup);
    memcpy(dup, buf, HEADER_BYTES + slot0);
    memcpy(dup + HEADER_BYTES + slot0, buf + HEADER_BYTES, slot0);
    assert_int_equal(load_bytes(f->path, dup, HEADER_BYTES + 2 * slot0), CMC_ERR_CORRUPT);
    cmc_free(dup);

    /* The intact file still loads. */
    assert_int_equal(load_bytes(f->path, buf, len), CMC_OK);
    /* Something far too large for a slot file is refused without being parsed. */
    uint8_t *big = cmc_calloc(1, 64 * 1024);
    assert_non_null(big);
    assert_int_equal(load_bytes(f->path, big, 64 * 1024), CMC_ERR_CORRUPT);
    cmc_free(big);

    cmc_free(copy);
    cmc_free(buf);
    cry_secret_free(key);
}

static void test_production_refuses_weak_slots(void **state)
{
    struct slot_file *f = *state;
    cry_kdf_set_test_limits(0);
    cry_slots *s = NULL;
    int rc = cry_slots_load(f->path, &s);
    cry_kdf_set_test_limits(1);
    assert_int_equal(rc, CMC_ERR_CORRUPT);
    assert_null(s);
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    cry_slots_free(s);
}

/* ---- crypto-erase ---------------------------------------------------------------------- */

static void test_destroy_erases_slots_and_throttle(void **state)
{
    struct slot_file *f = *state;
    assert_int_equal(load_and_unlock(f->path, "alice", "0000-bad"), CMC_ERR_AUTH);
    assert_int_equal(plat_exists(f->tpath), 1);
    assert_int_equal(cry_slots_destroy(f->path), CMC_OK);
    assert_int_equal(plat_exists(f->path), 0);
    assert_int_equal(plat_exists(f->tpath), 0);
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_ERR_NOT_FOUND);
    /* Destroying what is not there is fine (a wipe may be repeated). */
    assert_int_equal(cry_slots_destroy(f->path), CMC_OK);
    /* A new file at the same path starts with a clean throttle. */
    struct cry_secret *key2 = make_file(f->path);
    assert_false(cry_memeq(f->key->buf, key2->buf, CRY_KEY_BYTES));
    cry_secret_free(key2);
}

/* ---- out of memory --------------------------------------------------------------------- */

/* cry_slots_create for alice at `path` with the n-th allocation failing. */
static int create_failing_at(long n, const char *path, struct cry_secret **key)
{
    *key = (struct cry_secret *)(uintptr_t)1;
    cmc_alloc_fail_after(n, 1);
    int rc = cry_slots_create(path, "alice", "urgent_care", "1234-pin", key);
    cmc_alloc_fail_after(-1, 0);
    return rc;
}

static void test_out_of_memory_create(void **state)
{
    struct slot_file *f = *state;
    long n = 0;
    int rc;
    while ((rc = create_failing_at(n, f->path, &f->key)) != CMC_OK) {
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(f->key);
        assert_int_equal(plat_exists(f->path), 0);
        assert_true(++n < 100);
    }
    assert_true(n > 0);
    assert_int_equal(load_and_unlock(f->path, "alice", "1234-pin"), CMC_OK);
}

/* Adds `user` (with `key`) or, when key is NULL, removes them, with the n-th allocation
 * failing for n = 0, 1, ... until it works: each failure is CMC_ERR_NOMEM and leaves the
 * handle's slots as they were. */
static void add_or_remove_short_of_memory(cry_slots *s, struct cry_secret *key, const char *user)
{
    size_t before = cry_slots_count(s);
    long n;
    for (n = 0; n < 100; n++) {
        cmc_alloc_fail_after(n, 1);
        int rc = key != NULL ? cry_slots_add(s, key, user, "clinician", "5678-pin") : cry_slots_remove(s, user);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_int_equal(cry_slots_count(s), before);
    }
    assert_true(n > 0 && n < 100);
}

static void test_out_of_memory_load_unlock_add_remove(void **state)
{
    struct slot_file *f = *state;
    long n;

    cry_slots *s = NULL;
    for (n = 0; n < 100; n++) {
        cmc_alloc_fail_after(n, 1);
        int rc = cry_slots_load(f->path, &s);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(s);
    }
    assert_true(n > 0 && n < 100);

    /* Running out of memory never costs the user an attempt. */
    for (n = 0; n < 100; n++) {
        struct cry_secret *got = (struct cry_secret *)(uintptr_t)1;
        char role[CRY_ROLE_MAX + 1];
        cmc_alloc_fail_after(n, 1);
        int rc = cry_slots_unlock(s, "alice", "1234-pin", &got, role);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            assert_true(cry_memeq(got->buf, f->key->buf, CRY_KEY_BYTES));
            assert_string_equal(role, "urgent_care");
            cry_secret_free(got);
            break;
        }
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(got);
        assert_int_equal(cry_slots_failures(s, "alice"), 0);
        assert_int_equal(plat_exists(f->tpath), 0);
    }
    assert_true(n > 0 && n < 100);
    assert_int_equal(plat_exists(f->tpath), 0);

    add_or_remove_short_of_memory(s, f->key, "bob");
    add_or_remove_short_of_memory(s, NULL, "alice");
    cry_slots_free(s);
    assert_int_equal(load_and_unlock(f->path, "bob", "5678-pin"), CMC_OK);
    assert_int_equal(load_and_unlock(f->path, "alice", "1234-pin"), CMC_ERR_AUTH);
}

/* A failed save (disk full) leaves both the file and the handle as they were. */
static void test_failed_save_changes_nothing(void **state)
{
    struct slot_file *f = *state;
    cry_slots *s = NULL;
    assert_int_equal(cry_slots_load(f->path, &s), CMC_OK);
    plat_fault_write_after(0, ENOSPC);
    int rc = cry_slots_add(s, f->key, "bob", "clinician", "5678-pin");
    plat_fault_write_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_DISK_FULL);
    assert_int_equal(cry_slots_count(s), 1);
    assert_int_equal(load_and_unlock(f->path, "bob", "5678-pin"), CMC_ERR_AUTH);
    assert_int_equal(cry_slots_add(s, f->key, "bob", "clinician", "5678-pin"), CMC_OK);
    plat_fault_write_after(0, ENOSPC);
    rc = cry_slots_remove(s, "bob");
    plat_fault_write_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_DISK_FULL);
    assert_int_equal(cry_slots_count(s), 2);
    cry_slots_free(s);
    assert_int_equal(load_and_unlock(f->path, "bob", "5678-pin"), CMC_OK);
}

/* ---- TPM-bound slots (wrap 3), without a TPM: the codec's fields ------------------------ */

/* Offset of P (the payload length byte) in slot 0 of a file made by make_file: after the
 * wrap byte, "alice", "urgent_care", the KDF fields, the salt and the public key. */
#define ALICE_P (HEADER_BYTES + 1 + 1 + 5 + 1 + 11 + 1 + 8 + 8 + 16 + 32)

/* Rewrites slot 0 of `buf` (a file from make_file) as a TPM-bound slot: wrap 3, and after P
 * a public blob of `pub_len` bytes and a private blob of `priv_len` bytes (the length fields
 * as given, the bytes present only up to `present` of each), then the parent's name (34
 * bytes). Returns the new length. */
static size_t craft_tpm(const uint8_t *buf, size_t len, uint8_t *out, uint16_t pub_len, uint16_t priv_len,
                        size_t present)
{
    size_t n = ALICE_P + 1, pub_n = pub_len < present ? pub_len : present;
    size_t priv_n = priv_len < present ? priv_len : present;
    memcpy(out, buf, n);
    out[HEADER_BYTES] = 3;
    out[n++] = (uint8_t)pub_len;
    out[n++] = (uint8_t)(pub_len >> 8);
    memset(out + n, 0xA5, pub_n);
    n += pub_n;
    out[n++] = (uint8_t)priv_len;
    out[n++] = (uint8_t)(priv_len >> 8);
    memset(out + n, 0x5A, priv_n);
    n += priv_n;
    memset(out + n, 0x3C, 34);
    n += 34;
    memcpy(out + n, buf + ALICE_P + 1, len - ALICE_P - 1);
    return n + len - ALICE_P - 1;
}

/* A file from make_file (and a software slot for "bob" when `with_bob`) and its bytes; on
 * disk, its copy with alice's slot made TPM-bound (blobs of 58 and 126 bytes, as a TPM's
 * are), `crafted`, `clen` bytes long. */
struct tpm_fixture {
    char path[256];
    struct cry_secret *key;
    uint8_t *buf;
    size_t len;
    uint8_t *crafted;
    size_t clen;
};

static void tpm_fixture_open(struct tpm_fixture *f, const char *name, int with_bob)
{
    path_for(f->path, sizeof f->path, name);
    f->key = make_file(f->path);
    if (with_bob) {
        cry_slots *h = NULL;
        assert_int_equal(cry_slots_load(f->path, &h), CMC_OK);
        assert_int_equal(cry_slots_add(h, f->key, "bob", "urgent_care", "5678-pin"), CMC_OK);
        cry_slots_free(h);
    }
    read_all(f->path, &f->buf, &f->len);
    assert_int_equal(f->buf[ALICE_P], 96);
    f->crafted = cmc_malloc(f->len + 2048);
    assert_non_null(f->crafted);
    f->clen = craft_tpm(f->buf, f->len, f->crafted, 58, 126, 512);
    assert_int_equal(load_bytes(f->path, f->crafted, f->clen), CMC_OK);
}

static void tpm_fixture_close(struct tpm_fixture *f)
{
    cmc_free(f->crafted);
    cmc_free(f->buf);
    cry_secret_free(f->key);
    assert_int_equal(cry_slots_destroy(f->path), CMC_OK);
}

/* A TPM-bound slot's blobs survive the file being rewritten (another user removed), byte
 * for byte, and a software slot beside it still opens. */
static void test_tpm_slot_fields_round_trip(void **state)
{
    (void)state;
    struct tpm_fixture f;
    tpm_fixture_open(&f, "tpm-round-trip", 1);
    size_t clen = f.clen;

    cry_slots *h = NULL;
    assert_int_equal(cry_slots_load(f.path, &h), CMC_OK);
    assert_int_equal(cry_slots_count(h), 2);
    assert_true(cry_slots_tpm_bound(h, 0));
    assert_false(cry_slots_tpm_bound(h, 1));
    assert_false(cry_slots_tpm_bound(h, 2));
    uint8_t pk[CRY_SIGN_PK_BYTES];
    assert_int_equal(cry_slots_user_pk(h, 0, pk), CMC_OK); /* a current-format slot */
    assert_int_equal(try_unlock(h, "bob", "5678-pin", f.key), CMC_OK);
    assert_int_equal(cry_slots_remove(h, "bob"), CMC_OK);
    cry_slots_free(h);

    /* Alice's slot, from its wrap byte to its tag, is what was crafted. */
    uint8_t *after = NULL;
    size_t after_len = 0;
    read_all(f.path, &after, &after_len);
    size_t bob = find_bytes(f.crafted, clen, "bob", 3);
    assert_true(bob != (size_t)-1);
    size_t alice_len = bob - 2 - HEADER_BYTES;
    assert_int_equal(after_len, HEADER_BYTES + alice_len);
    assert_memory_equal(after + HEADER_BYTES, f.crafted + HEADER_BYTES, alice_len);
    assert_int_equal(after[10], 1);
    cmc_free(after);
    tpm_fixture_close(&f);
}

/* A TPM blob that is empty, larger than CRY_TPM_BLOB_MAX, or runs past the end of the file
 * makes the file corrupt. */
static void test_tpm_slot_malformed_blobs(void **state)
{
    (void)state;
    struct tpm_fixture f;
    tpm_fixture_open(&f, "tpm-malformed", 0);
    static const struct { uint16_t pub, priv; size_t present; } bad[] = {
        { 0, 100, 512 },   /* empty public blob */
        { 100, 0, 512 },   /* empty private blob */
        { 513, 100, 513 }, /* public blob over the cap */
        { 100, 513, 513 }, /* private blob over the cap */
        { 0xffff, 100, 100 }, /* a length running past the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t clen = craft_tpm(f.buf, f.len, f.crafted, bad[i].pub, bad[i].priv, bad[i].present);
        if (load_bytes(f.path, f.crafted, clen) != CMC_ERR_CORRUPT)
            fail_msg("TPM blobs %u/%u: not corrupt", bad[i].pub, bad[i].priv);
    }
    /* Truncations of a well-formed TPM-bound file. */
    size_t clen = craft_tpm(f.buf, f.len, f.crafted, 512, 512, 512);
    assert_int_equal(load_bytes(f.path, f.crafted, clen), CMC_OK);
    for (size_t n = HEADER_BYTES; n < clen; n += 7)
        if (load_bytes(f.path, f.crafted, n) != CMC_ERR_CORRUPT)
            fail_msg("TPM-bound file truncated to %zu bytes: not corrupt", n);
    tpm_fixture_close(&f);
}

/* A TPM-bound slot with no TPM to reach: the right PIN gets one clear error (not "wrong
 * PIN"); nothing of the slot changes but its failure record, and it still loads. */
static void test_tpm_slot_without_tpm(void **state)
{
    (void)state;
    struct tpm_fixture f;
    tpm_fixture_open(&f, "tpm-absent", 0);
    size_t clen = f.clen;

    assert_int_equal(setenv("CMC_TPM_TCTI", "swtpm:host=127.0.0.1,port=1", 1), 0);
    cry_slots *h = NULL;
    assert_int_equal(cry_slots_load(f.path, &h), CMC_OK);
    assert_int_equal(try_unlock(h, "alice", "1234-pin", NULL), CMC_ERR_IO);
    assert_non_null(strstr(cmc_errmsg(), "no TPM could be reached"));
    cry_slots_free(h);
    assert_int_equal(unsetenv("CMC_TPM_TCTI"), 0);
    uint8_t *after = NULL;
    size_t after_len = 0;
    read_all(f.path, &after, &after_len);
    assert_int_equal(after_len, clen);
    size_t fail_at = ALICE_P + 1 + 2 + 58 + 2 + 126 + 34; /* the failure count, then the chain */
    assert_memory_equal(after, f.crafted, fail_at);
    assert_int_equal(after[fail_at], 1);
    assert_memory_equal(after + fail_at + 4 + 32, f.crafted + fail_at + 4 + 32, clen - fail_at - 4 - 32);
    cmc_free(after);
    assert_int_equal(load_bytes(f.path, f.crafted, clen), CMC_OK);

    /* The software slot it was made from still opens: nothing was lost. */
    assert_int_equal(load_bytes(f.path, f.buf, f.len), CMC_OK);
    assert_int_equal(load_and_unlock(f.path, "alice", "1234-pin"), CMC_OK);
    tpm_fixture_close(&f);
}

/* A test run with its own slot file (file_setup, file_teardown). */
#define WITH_FILE(test) cmocka_unit_test_setup_teardown(test, file_setup, file_teardown)
/* A test run with its own slot-file path and no file yet (path_setup, file_teardown). */
#define WITH_PATH(test) cmocka_unit_test_setup_teardown(test, path_setup, file_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_FILE(test_round_trip),
        WITH_PATH(test_create_refuses_bad_input),
        WITH_FILE(test_add_and_remove_users),
        WITH_FILE(test_remove_middle_slot_keeps_others),
        WITH_FILE(test_slot_file_is_capped),
        WITH_FILE(test_wrong_pin_costs_more_work),
        WITH_FILE(test_deleting_throttle_file_does_not_reset),
        WITH_FILE(test_parallel_attempts_each_count),
        WITH_FILE(test_wound_back_count_is_reported),
        WITH_FILE(test_damaged_and_old_throttle_files),
        WITH_PATH(test_user_signing_keys),
        WITH_PATH(test_version_1_file_is_upgraded),
        WITH_FILE(test_unknown_user_counts_as_failure),
        WITH_FILE(test_edited_role_is_refused),
        WITH_FILE(test_flipped_bytes_are_refused),
        cmocka_unit_test(test_slot_from_another_file_is_refused),
        WITH_PATH(test_malformed_files_are_corrupt),
        WITH_FILE(test_production_refuses_weak_slots),
        WITH_FILE(test_destroy_erases_slots_and_throttle),
        WITH_PATH(test_out_of_memory_create),
        WITH_FILE(test_out_of_memory_load_unlock_add_remove),
        WITH_FILE(test_failed_save_changes_nothing),
        cmocka_unit_test(test_tpm_slot_fields_round_trip),
        cmocka_unit_test(test_tpm_slot_malformed_blobs),
        cmocka_unit_test(test_tpm_slot_without_tpm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
