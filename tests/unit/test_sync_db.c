/*
 * test_sync_db.c - the SQLCipher helper: keying, pragmas, tamper and wrong-key detection,
 * nothing readable at rest, migrations, transactions, checkpoints, error translation.
 */
#define SQLITE_HAS_CODEC 1 /* declares sqlite3_key_v2 (SQLCipher) */
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/db.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define MARKER "ZEBRA-MARKER-7731-PLAINTEXT"
#include "tests/support/run.h"

struct fixture {
    char dir[64];
    char path[128];
    struct cry_secret *key;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL || cry_init() != CMC_OK)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cmc-db-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/test.db", f->dir);
    if (cry_secret_new(CRY_KEY_BYTES, &f->key) != CMC_OK)
        return -1;
    cry_random(f->key->buf, f->key->len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[512];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    remove(f->dir);
    cry_secret_free(f->key);
    free(f);
    cmc_alloc_fail_after(-1, 0);
    return 0;
}

/* 1 if `needle` occurs in any file of `dir`. */
static int dir_contains(const char *dir, const char *needle)
{
    int found = 0;
    size_t nlen = strlen(needle);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[512];
        uint8_t *buf = NULL;
        size_t len = 0;
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        assert_int_equal(plat_read_file(p, 64u << 20, &buf, &len), CMC_OK);
        for (size_t i = 0; len >= nlen && i <= len - nlen; i++)
            if (memcmp(buf + i, needle, nlen) == 0)
                found = 1;
        cmc_free(buf);
    }
    closedir(d);
    return found;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    assert_int_equal(db_prepare(db, sql, &st), CMC_OK);
    assert_int_equal(db_step(db, st, &has_row), CMC_OK);
    assert_true(has_row);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t count_rows(sqlite3 *db)
{
    return pragma_int(db, "SELECT count(*) FROM t");
}

static void make_db_with_rows(struct fixture *f, int rows)
{
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT)"), CMC_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(db_prepare(db, "INSERT INTO t (txt) VALUES (?)", &st), CMC_OK);
    assert_int_equal(db_begin(db), CMC_OK);
    for (int i = 0; i < rows; i++) {
        char txt[128];
        int has_row = 0;
        snprintf(txt, sizeof txt, "%s row %d with some filler text to fill pages", MARKER, i);
        sqlite3_bind_text(st, 1, txt, -1, SQLITE_TRANSIENT);
        assert_int_equal(db_step(db, st, &has_row), CMC_OK);
        sqlite3_reset(st);
    }
    assert_int_equal(db_commit(db), CMC_OK);
    sqlite3_finalize(st);
    db_close(db);
}

static void test_open_applies_pragmas(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_non_null(db);
    assert_int_equal(db_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT)"), CMC_OK);
    assert_int_equal(pragma_int(db, "PRAGMA cipher_page_size"), DB_PAGE_SIZE);
    assert_int_equal(pragma_int(db, "PRAGMA synchronous"), 2 /* FULL */);
    assert_int_equal(pragma_int(db, "PRAGMA secure_delete"), 1);
    assert_int_equal(pragma_int(db, "PRAGMA temp_store"), 2 /* MEMORY */);
    assert_int_equal(pragma_int(db, "PRAGMA foreign_keys"), 1);
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    assert_int_equal(db_prepare(db, "PRAGMA journal_mode", &st), CMC_OK);
    assert_int_equal(db_step(db, st, &has_row), CMC_OK);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    db_close(db);
    db_close(NULL);

    /* The database and its WAL are private to the user. */
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* The file really uses 4096-byte pages: its size is a multiple of the page size. */
    uint64_t size = 0;
    assert_int_equal(plat_file_size(f->path, &size), CMC_OK);
    assert_true(size > 0);
    assert_int_equal(size % DB_PAGE_SIZE, 0);
}

static void test_reopen_same_key_reads_data(void **state)
{
    struct fixture *f = *state;
    make_db_with_rows(f, 10);
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(count_rows(db), 10);
    db_close(db);
}

static void test_wrong_key_is_tampered(void **state)
{
    struct fixture *f = *state;
    make_db_with_rows(f, 3);
    struct cry_secret *other = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &other), CMC_OK);
    cry_random(other->buf, other->len);
    sqlite3 *db = (sqlite3 *)1;
    assert_int_equal(db_open(f->path, other, &db), CMC_ERR_TAMPERED);
    assert_null(db);
    assert_non_null(strstr(cmc_errmsg(), "wrong key"));
    cry_secret_free(other);

    /* The right key still works: a failed open changed nothing. */
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(count_rows(db), 3);
    db_close(db);
}

/* A raw sqlite3 connection keyed like db_open, with SQLCipher's default page HMAC or the one
 * named; returns the result of reading page 1. */
static int raw_open(struct fixture *f, const char *hmac, sqlite3 **out)
{
    char text[2 + 2 * CRY_KEY_BYTES + 2];
    text[0] = 'x';
    text[1] = '\'';
    cry_hex(text + 2, f->key->buf, CRY_KEY_BYTES);
    text[2 + 2 * CRY_KEY_BYTES] = '\'';
    text[sizeof text - 1] = '\0';
    assert_int_equal(sqlite3_open(f->path, out), SQLITE_OK);
    assert_int_equal(sqlite3_key_v2(*out, "main", text, (int)strlen(text)), SQLITE_OK);
    assert_int_equal(sqlite3_exec(*out, "PRAGMA cipher_log_level = NONE; PRAGMA cipher_page_size = 4096",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    if (hmac != NULL) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA cipher_hmac_algorithm = %s", hmac);
        assert_int_equal(sqlite3_exec(*out, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    return sqlite3_exec(*out, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
}

/* New files authenticate pages with HMAC-SHA256 (cheaper per page written or read); files
 * made with SQLCipher's default HMAC-SHA512 still open, read and write. */
static void test_page_hmac_new_and_legacy(void **state)
{
    struct fixture *f = *state;
    sqlite3 *raw = NULL;
    make_db_with_rows(f, 50);
    assert_int_equal(raw_open(f, "HMAC_SHA256", &raw), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_not_equal(raw_open(f, NULL, &raw), SQLITE_OK); /* not the SHA-512 default */
    sqlite3_close(raw);

    /* A file made with the default (SHA-512) */
    remove(f->path);
    assert_int_equal(raw_open(f, NULL, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT);"
                                       "INSERT INTO t (txt) VALUES ('a'), ('b')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(count_rows(db), 2);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('c')"), CMC_OK);
    db_close(db);
    assert_int_equal(raw_open(f, NULL, &raw), SQLITE_OK); /* still SHA-512 */
    sqlite3_close(raw);
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(count_rows(db), 3);
    db_close(db);

    /* A wrong key fails under both, with the usual message. */
    struct cry_secret *other = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &other), CMC_OK);
    cry_random(other->buf, other->len);
    assert_int_equal(db_open(f->path, other, &db), CMC_ERR_TAMPERED);
    assert_non_null(strstr(cmc_errmsg(), "wrong key"));
    cry_secret_free(other);
}

static void test_bad_key_size_refused(void **state)
{
    struct fixture *f = *state;
    struct cry_secret *shortkey = NULL;
    assert_int_equal(cry_secret_new(16, &shortkey), CMC_OK);
    sqlite3 *db = (sqlite3 *)1;
    assert_int_equal(db_open(f->path, shortkey, &db), CMC_ERR_USAGE);
    assert_null(db);
    assert_int_equal(plat_exists(f->path), 0);
    cry_secret_free(shortkey);
}

static void test_no_plaintext_at_rest(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT)"), CMC_OK);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('" MARKER "')"), CMC_OK);
    /* Open: the row is in the WAL and -shm exists. */
    assert_int_equal(plat_exists(f->path), 1);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(plat_exists(wal), 1);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_false(dir_contains(f->dir, MARKER));
    db_close(db);
    assert_false(dir_contains(f->dir, MARKER));

    /* The scan itself finds a marker that is there. */
    char plain[160];
    snprintf(plain, sizeof plain, "%s/control", f->dir);
    assert_int_equal(plat_write_atomic(plain, "xx" MARKER "yy", strlen(MARKER) + 4), CMC_OK);
    assert_true(dir_contains(f->dir, MARKER));
    assert_int_equal(plat_remove(plain), CMC_OK);
}

/* Every page of the file is authenticated: a flipped byte anywhere is detected on open,
 * by the integrity check, or by a read - never silently returned. */
static void test_flipped_byte_is_detected_on_every_page(void **state)
{
    struct fixture *f = *state;
    make_db_with_rows(f, 300);
    uint8_t *orig = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(f->path, 64u << 20, &orig, &len), CMC_OK);
    assert_true(len >= 3 * DB_PAGE_SIZE);
    assert_int_equal(len % DB_PAGE_SIZE, 0);
    size_t pages = len / DB_PAGE_SIZE;
    uint8_t *copy = cmc_malloc(len);
    assert_non_null(copy);
    /* Byte offsets within a page: salt/start, the middle (data), near the end (IV/HMAC). */
    static const size_t offsets[] = {5, 2000, DB_PAGE_SIZE - 10};
    for (size_t pg = 0; pg < pages; pg++) {
        for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
            memcpy(copy, orig, len);
            copy[pg * DB_PAGE_SIZE + offsets[k]] ^= 0x01;
            assert_int_equal(plat_write_atomic(f->path, copy, len), CMC_OK);
            sqlite3 *db = NULL;
            int rc = db_open(f->path, f->key, &db);
            if (rc == CMC_OK) {
                rc = db_cipher_integrity_check(db);
                db_close(db);
            } else {
                assert_null(db);
            }
            if (rc != CMC_ERR_TAMPERED)
                fail_msg("page %zu offset %zu: expected tampered, got %s", pg, offsets[k],
                         cmc_errname(rc));
        }
    }
    /* And the untouched file passes. */
    assert_int_equal(plat_write_atomic(f->path, orig, len), CMC_OK);
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_cipher_integrity_check(db), CMC_OK);
    assert_int_equal(count_rows(db), 300);
    db_close(db);
    cmc_free(copy);
    cmc_free(orig);
}

static void test_read_of_damaged_page_is_tampered(void **state)
{
    struct fixture *f = *state;
    make_db_with_rows(f, 300);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(f->path, 64u << 20, &buf, &len), CMC_OK);
    /* The last page holds table rows (page 1 is the schema). */
    buf[len - DB_PAGE_SIZE + 1000] ^= 0x80;
    assert_int_equal(plat_write_atomic(f->path, buf, len), CMC_OK);
    cmc_free(buf);
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(db_prepare(db, "SELECT txt FROM t ORDER BY id", &st), CMC_OK);
    int rc = CMC_OK, has_row = 1;
    while (rc == CMC_OK && has_row)
        rc = db_step(db, st, &has_row);
    assert_int_equal(rc, CMC_ERR_TAMPERED);
    sqlite3_finalize(st);
    db_close(db);
}

static const char *const steps_v3[] = {
    "CREATE TABLE a (x INTEGER);",
    "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1);",
    "CREATE TABLE c (z INTEGER); INSERT INTO a VALUES (2);",
};

static void test_migrations_run_once_in_order(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    size_t applied = 99;
    int64_t v = -1;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_migrate(db, steps_v3, 2, &applied), CMC_OK);
    assert_int_equal(applied, 2);
    assert_int_equal(db_user_version(db, &v), CMC_OK);
    assert_int_equal(v, 2);
    db_close(db);

    /* A newer program adds step 3: only it runs. */
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_migrate(db, steps_v3, 3, &applied), CMC_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(db_user_version(db, &v), CMC_OK);
    assert_int_equal(v, 3);
    /* Step 2's insert ran once, step 3's once. */
    assert_int_equal(pragma_int(db, "SELECT count(*) FROM a"), 2);
    /* Nothing more to do on the next open. */
    assert_int_equal(db_migrate(db, steps_v3, 3, &applied), CMC_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(pragma_int(db, "SELECT count(*) FROM a"), 2);
    /* An older program refuses the newer schema instead of misreading it. */
    assert_int_equal(db_migrate(db, steps_v3, 2, &applied), CMC_ERR_STATE);
    db_close(db);
}

static void test_failed_migration_step_rolls_back(void **state)
{
    struct fixture *f = *state;
    static const char *const steps[] = {
        "CREATE TABLE a (x INTEGER);",
        "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1); INSERT INTO nosuch VALUES (1);",
    };
    sqlite3 *db = NULL;
    size_t applied = 0;
    int64_t v = -1;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_migrate(db, steps, 2, &applied), CMC_ERR_DB);
    assert_non_null(strstr(cmc_errmsg(), "migration 2"));
    assert_int_equal(applied, 1);
    assert_int_equal(db_user_version(db, &v), CMC_OK);
    assert_int_equal(v, 1);
    /* Step 2 left nothing behind: no table b, no row in a. */
    assert_int_equal(pragma_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
    assert_int_equal(pragma_int(db, "SELECT count(*) FROM a"), 0);
    db_close(db);
}

static void test_transactions(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT)"), CMC_OK);
    assert_int_equal(db_begin(db), CMC_OK);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('a')"), CMC_OK);
    db_rollback(db);
    assert_int_equal(count_rows(db), 0);
    db_rollback(db); /* no transaction open: harmless */
    assert_int_equal(db_begin(db), CMC_OK);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('b')"), CMC_OK);
    assert_int_equal(db_commit(db), CMC_OK);
    assert_int_equal(count_rows(db), 1);
    /* A second writer waits for the busy timeout and then reports busy, not "database error". */
    sqlite3 *db2 = NULL;
    assert_int_equal(db_open(f->path, f->key, &db2), CMC_OK);
    sqlite3_busy_timeout(db2, 50);
    assert_int_equal(db_begin(db), CMC_OK);
    assert_int_equal(db_begin(db2), CMC_ERR_BUSY);
    db_rollback(db);
    assert_int_equal(db_begin(db2), CMC_OK);
    db_rollback(db2);
    db_close(db2);
    db_close(db);
}

static void test_checkpoint_truncates_wal(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    char wal[160];
    uint64_t size = 0;
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT);"
                                 "INSERT INTO t (txt) VALUES ('" MARKER "');"
                                 "DELETE FROM t;"),
                     CMC_OK);
    assert_int_equal(plat_file_size(wal, &size), CMC_OK);
    assert_true(size > 0);
    assert_int_equal(db_checkpoint_truncate(db), CMC_OK);
    assert_int_equal(plat_file_size(wal, &size), CMC_OK);
    assert_int_equal(size, 0);
    /* A reader holding a snapshot keeps the WAL from being reset: busy, reported. */
    sqlite3 *reader = NULL;
    assert_int_equal(db_open(f->path, f->key, &reader), CMC_OK);
    sqlite3_busy_timeout(db, 50);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('x')"), CMC_OK);
    assert_int_equal(db_exec(reader, "BEGIN; SELECT count(*) FROM t;"), CMC_OK);
    assert_int_equal(db_exec(db, "INSERT INTO t (txt) VALUES ('y')"), CMC_OK);
    assert_int_equal(db_checkpoint_truncate(db), CMC_ERR_BUSY);
    db_rollback(reader);
    db_close(reader);
    assert_int_equal(db_checkpoint_truncate(db), CMC_OK);
    db_close(db);
}

static void test_error_mapping(void **state)
{
    (void)state;
    assert_int_equal(db_map_code(SQLITE_OK), CMC_OK);
    assert_int_equal(db_map_code(SQLITE_DONE), CMC_OK);
    assert_int_equal(db_map_code(SQLITE_NOTADB), CMC_ERR_TAMPERED);
    assert_int_equal(db_map_code(SQLITE_CORRUPT), CMC_ERR_TAMPERED);
    assert_int_equal(db_map_code(SQLITE_CORRUPT_VTAB), CMC_ERR_TAMPERED);
    assert_int_equal(db_map_code(SQLITE_FULL), CMC_ERR_DISK_FULL);
    assert_int_equal(db_map_code(SQLITE_BUSY), CMC_ERR_BUSY);
    assert_int_equal(db_map_code(SQLITE_BUSY_SNAPSHOT), CMC_ERR_BUSY);
    assert_int_equal(db_map_code(SQLITE_LOCKED), CMC_ERR_BUSY);
    assert_int_equal(db_map_code(SQLITE_NOMEM), CMC_ERR_NOMEM);
    assert_int_equal(db_map_code(SQLITE_IOERR_FSYNC), CMC_ERR_IO);
    assert_int_equal(db_map_code(SQLITE_CANTOPEN), CMC_ERR_IO);
    assert_int_equal(db_map_code(SQLITE_READONLY), CMC_ERR_IO);
    assert_int_equal(db_map_code(SQLITE_CONSTRAINT_UNIQUE), CMC_ERR_EXISTS);
    assert_int_equal(db_map_code(SQLITE_CONSTRAINT_PRIMARYKEY), CMC_ERR_EXISTS);
    assert_int_equal(db_map_code(SQLITE_CONSTRAINT_CHECK), CMC_ERR_DB);
    assert_int_equal(db_map_code(SQLITE_CONSTRAINT_NOTNULL), CMC_ERR_DB);
    assert_int_equal(db_map_code(SQLITE_ERROR), CMC_ERR_DB);

    /* The library's text is kept in the detail. */
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(db_open(f->path, f->key, &db), CMC_OK);
    assert_int_equal(db_exec(db, "CREATE TABLE u (x INTEGER UNIQUE); INSERT INTO u VALUES (1)"),
                     CMC_OK);
    /* A statement reports a plain SQLITE_CONSTRAINT; the handle says which one failed. */
    assert_int_equal(db_exec(db, "INSERT INTO u VALUES (1)"), CMC_ERR_EXISTS);
    assert_non_null(strstr(cmc_errmsg(), "UNIQUE constraint failed"));
    assert_int_equal(db_exec(db, "CREATE TABLE c (x INTEGER CHECK (x > 0))"), CMC_OK);
    assert_int_equal(db_exec(db, "INSERT INTO c VALUES (0)"), CMC_ERR_DB);
    assert_non_null(strstr(cmc_errmsg(), "CHECK constraint failed"));
    db_close(db);
}

static void test_open_out_of_memory_leaks_nothing(void **state)
{
    struct fixture *f = *state;
    make_db_with_rows(f, 1);
    int ok = 0;
    for (long n = 0; n < 50 && !ok; n++) {
        sqlite3 *db = (sqlite3 *)1;
        cmc_alloc_fail_after(n, 1);
        int rc = db_open(f->path, f->key, &db);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            ok = 1;
            assert_int_equal(count_rows(db), 1);
            db_close(db);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(db);
        }
    }
    assert_true(ok);
}

TST_MAIN(NULL, setup, teardown, test_open_applies_pragmas, test_reopen_same_key_reads_data,
         test_wrong_key_is_tampered, test_bad_key_size_refused, test_page_hmac_new_and_legacy,
         test_no_plaintext_at_rest, test_flipped_byte_is_detected_on_every_page,
         test_read_of_damaged_page_is_tampered, test_migrations_run_once_in_order,
         test_failed_migration_step_rolls_back, test_transactions, test_checkpoint_truncates_wal,
         test_error_mapping, test_open_out_of_memory_leaks_nothing)
