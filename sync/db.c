/*
 * db.c - SQLCipher open, pragmas, migrations and error translation (see db.h).
 */
/* sqlite3_key_v2() is declared only for codec builds. We key through it rather than through
 * "PRAGMA key" because the pragma's text would be copied by SQLite's parser into ordinary
 * heap memory that is freed without being zeroed; the function hands the key text straight
 * to SQLCipher, which keeps it in its own wiped memory. */
#define SQLITE_HAS_CODEC 1

#include "sync/db.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

int db_map_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return CMC_OK;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return CMC_ERR_TAMPERED;
    case SQLITE_FULL:
        return CMC_ERR_DISK_FULL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CMC_ERR_BUSY;
    case SQLITE_NOMEM:
        return CMC_ERR_NOMEM;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return CMC_ERR_IO;
    case SQLITE_CONSTRAINT:
        /* Only a key that is already taken means "exists"; a CHECK, NOT NULL or foreign-key
         * failure is the program's mistake, not the caller's. */
        return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY
                   ? CMC_ERR_EXISTS
                   : CMC_ERR_DB;
    default:
        return CMC_ERR_DB;
    }
}

int db_error(sqlite3 *db, int rc, const char *what)
{
    /* Statements report primary codes; the handle knows which constraint failed. */
    if (rc == SQLITE_CONSTRAINT && db != NULL)
        rc = sqlite3_extended_errcode(db);
    int code = db_map_code(rc);
    if (code == CMC_OK)
        return CMC_OK;
    /* sqlite3_errmsg names tables, columns and SQL we wrote, never a bound value. */
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (code == CMC_ERR_TAMPERED)
        return cmc_fail(code, "%s: %s (wrong key, or the file was altered or damaged)", what, msg);
    return cmc_fail(code, "%s: %s", what, msg);
}

int db_exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return db_error(db, rc, "database statement");
}

int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    *out = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*out);
        *out = NULL;
        return db_error(db, rc, "preparing a statement");
    }
    return CMC_OK;
}

int db_step(sqlite3 *db, sqlite3_stmt *st, int *has_row)
{
    int rc = sqlite3_step(st);
    *has_row = 0;
    if (rc == SQLITE_ROW) {
        *has_row = 1;
        return CMC_OK;
    }
    if (rc == SQLITE_DONE)
        return CMC_OK;
    return db_error(db, rc, "reading the database");
}

int db_begin(sqlite3 *db)
{
    return db_error(db, sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin transaction");
}

int db_commit(sqlite3 *db)
{
    int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = db_error(db, rc, "commit");
        /* A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); end it so the
         * handle is usable and the caller's "nothing happened" holds. */
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return code;
    }
    return CMC_OK;
}

void db_rollback(sqlite3 *db)
{
    if (db != NULL && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs a pragma that answers with one text row and copies the answer into out. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = db_prepare(db, sql, &st);
    if (rc != CMC_OK)
        goto out;
    if ((rc = db_step(db, st, &has_row)) != CMC_OK)
        goto out;
    out[0] = '\0';
    if (has_row) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t != NULL)
            snprintf(out, cap, "%s", (const char *)t);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Hands the key to SQLCipher as x'<hex>' (a raw key: no PBKDF2). The text lives in
 * sodium-protected memory and is wiped when freed. */
static int apply_key(sqlite3 *db, const struct cry_secret *key)
{
    static const char prefix[] = "x'";
    const size_t hex_len = 2 * CRY_KEY_BYTES;
    const size_t text_len = (sizeof prefix - 1) + hex_len + 1; /* x' hex ' */
    struct cry_secret *text = NULL;
    int rc = cry_secret_new(text_len + 1, &text);
    if (rc != CMC_OK)
        goto out;
    char *t = (char *)text->buf;
    memcpy(t, prefix, sizeof prefix - 1);
    cry_hex(t + sizeof prefix - 1, key->buf, CRY_KEY_BYTES);
    t[sizeof prefix - 1 + hex_len] = '\'';
    t[text_len] = '\0';
    rc = db_error(db, sqlite3_key_v2(db, "main", t, (int)text_len), "setting the database key");
out:
    cry_secret_free(text);
    return rc;
}

/* Page authentication: HMAC-SHA256 for files made now (twice the speed of SHA-512 on CPUs
 * with SHA extensions, and every page written or read is authenticated); files made before
 * carry SQLCipher 4's default, HMAC-SHA512, and are opened with it. */
static const char *const hmac_algorithms[] = { "HMAC_SHA256", "HMAC_SHA512" };

/* The end of an open: on success the connection goes to *out, else it is closed. */
static int open_done(sqlite3 *db, int rc, sqlite3 **out)
{
    if (rc == CMC_OK)
        *out = db;
    else if (db != NULL)
        sqlite3_close_v2(db);
    return rc;
}

/* Opens `path` with the key and one page-authentication algorithm, and reads page 1, which
 * checks its HMAC: this is where a wrong key, a damaged file or another algorithm shows
 * (CMC_ERR_TAMPERED). */
static int open_keyed(const char *path, const struct cry_secret *key, const char *hmac,
                      sqlite3 **out)
{
    sqlite3 *db = NULL;
    char sql[64];
    int rc;

    *out = NULL;
    int orc = sqlite3_open_v2(path, &db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                  SQLITE_OPEN_EXRESCODE,
                              NULL);
    if (orc != SQLITE_OK) {
        rc = db == NULL ? cmc_fail(CMC_ERR_NOMEM, "database open: %s", path)
                        : db_error(db, orc, "database open");
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    /* SQLCipher's own log goes to stderr by default; the CLI promises one clear error line
     * there, and the failure is already in our detail (db_error keeps SQLite's text). */
    if ((rc = db_exec(db, "PRAGMA cipher_log_level = NONE")) != CMC_OK)
        goto out;
    if ((rc = apply_key(db, key)) != CMC_OK)
        goto out;
    /* again: keying the first connection initialises SQLCipher, which resets its log level */
    if ((rc = db_exec(db, "PRAGMA cipher_log_level = NONE")) != CMC_OK)
        goto out;
    /* Page size and HMAC must be set before the first read: they decide how the file is
     * framed. AES-256-CBC with a random IV per page write stays. */
    snprintf(sql, sizeof sql, "PRAGMA cipher_hmac_algorithm = %s", hmac);
    if ((rc = db_exec(db, "PRAGMA cipher_page_size = 4096")) != CMC_OK ||
        (rc = db_exec(db, sql)) != CMC_OK)
        goto out;
    int irc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (irc != SQLITE_OK) {
        int code = db_map_code(irc);
        if (code == CMC_ERR_TAMPERED || code == CMC_ERR_DB)
            rc = cmc_fail(CMC_ERR_TAMPERED,
                          "%s: cannot be read with this key (wrong key, or the file was "
                          "altered or damaged): %s",
                          path, sqlite3_errmsg(db));
        else
            rc = db_error(db, irc, "database open");
        goto out;
    }
out:
    return open_done(db, rc, out);
}

int db_open(const char *path, const struct cry_secret *key, sqlite3 **out)
{
    sqlite3 *db = NULL;
    char answer[32];
    int rc = CMC_OK;

    *out = NULL;
    if (path == NULL || key == NULL || key->buf == NULL || key->len != CRY_KEY_BYTES)
        return cmc_fail(CMC_ERR_USAGE, "database open: the key must be %d bytes", CRY_KEY_BYTES);

    /* SQLite creates a new file 0644 and gives the -wal and -shm files the main file's mode;
     * creating it empty with 0600 ourselves makes all three private. */
    if (!plat_exists(path) && (rc = plat_write_atomic(path, "", 0)) != CMC_OK)
        goto out;
    rc = open_keyed(path, key, hmac_algorithms[0], &db);
    if (rc == CMC_ERR_TAMPERED) {
        /* Perhaps a file made with the older algorithm; if that fails too, the first error
         * stands. */
        char first[512];
        snprintf(first, sizeof first, "%s", cmc_errmsg());
        rc = open_keyed(path, key, hmac_algorithms[1], &db);
        if (rc == CMC_ERR_TAMPERED)
            rc = cmc_fail(CMC_ERR_TAMPERED, "%s", first);
    }
    if (rc != CMC_OK)
        goto out;
    if ((rc = pragma_text(db, "PRAGMA journal_mode = WAL", answer, sizeof answer)) != CMC_OK)
        goto out;
    if (strcmp(answer, "wal") != 0) {
        rc = cmc_fail(CMC_ERR_DB, "%s: the database refused WAL mode (%s)", path, answer);
        goto out;
    }
    /* FULL: a commit is on disk (WAL fsynced) before it is acknowledged, so a purge reported
     * to the hub cannot come back after a power cut. secure_delete: freed pages are zeroed.
     * temp_store: no temporary file ever holds sorted patient data. cache_size: 16 MiB of
     * decrypted pages, so a snapshot's index updates stop re-reading (and re-decrypting)
     * the same pages; SQLite's 2 MiB default thrashes on a region's worth of plans. */
    if ((rc = db_exec(db, "PRAGMA synchronous = FULL;"
                          "PRAGMA secure_delete = ON;"
                          "PRAGMA temp_store = MEMORY;"
                          "PRAGMA cache_size = -16384;"
                          "PRAGMA wal_autocheckpoint = 8192;"
                          "PRAGMA foreign_keys = ON;")) != CMC_OK)
        goto out;
    if ((rc = db_error(db, sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS), "busy timeout")) != CMC_OK)
        goto out;
out:
    return open_done(db, rc, out);
}

void db_close(sqlite3 *db)
{
    if (db == NULL)
        return;
    db_rollback(db);
    sqlite3_close_v2(db);
}

int db_user_version(sqlite3 *db, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = db_prepare(db, "PRAGMA user_version", &st);
    *out = 0;
    if (rc != CMC_OK)
        goto out;
    if ((rc = db_step(db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row)
        *out = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

int db_migrate(sqlite3 *db, const char *const *steps, size_t n_steps, size_t *applied)
{
    int64_t version = 0;
    size_t done = 0;
    int rc = db_user_version(db, &version);
    if (applied != NULL)
        *applied = 0;
    if (rc != CMC_OK)
        return rc;
    if (version < 0 || (uint64_t)version > n_steps)
        return cmc_fail(CMC_ERR_STATE,
                        "database schema version %lld is newer than this program knows (%zu)",
                        (long long)version, n_steps);
    while ((size_t)version < n_steps) {
        char set_version[64];
        if ((rc = db_begin(db)) != CMC_OK)
            break;
        /* Read again under the write lock: another process opening the same file may have
         * run steps since the last read, and a step must not run twice. */
        int64_t locked = 0;
        if ((rc = db_user_version(db, &locked)) != CMC_OK) {
            db_rollback(db);
            break;
        }
        if (locked != version) {
            db_rollback(db);
            if (locked < version || (uint64_t)locked > n_steps) {
                rc = cmc_fail(CMC_ERR_STATE, "database schema version changed from %lld to %lld"
                              " while it was being migrated", (long long)version, (long long)locked);
                break;
            }
            version = locked;
            continue;
        }
        size_t i = (size_t)version;
        snprintf(set_version, sizeof set_version, "PRAGMA user_version = %zu", i + 1);
        rc = db_exec(db, steps[i]);
        if (rc != CMC_OK) {
            /* Keep SQLite's text but say which step failed. */
            char detail[400];
            snprintf(detail, sizeof detail, "%s", cmc_errmsg());
            db_rollback(db);
            rc = cmc_fail(rc, "schema migration %zu: %s", i + 1, detail);
            break;
        }
        if ((rc = db_exec(db, set_version)) != CMC_OK) {
            db_rollback(db);
            break;
        }
        if ((rc = db_commit(db)) != CMC_OK)
            break;
        version++;
        done++;
    }
    if (applied != NULL)
        *applied = done;
    return rc;
}

int db_checkpoint_truncate(sqlite3 *db)
{
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
                                       &done_frames);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "WAL checkpoint");
    /* TRUNCATE reports success only once every frame is in the database and the WAL is
     * reset; a reader holding an old snapshot surfaces as SQLITE_BUSY above. Still check. */
    if (log_frames != done_frames)
        return cmc_fail(CMC_ERR_BUSY, "WAL checkpoint: %d of %d frames copied", done_frames,
                        log_frames);
    return CMC_OK;
}

/* Runs an integrity pragma; `ok_text` NULL means "no rows is success" (cipher check). */
static int integrity_pragma(sqlite3 *db, const char *sql, const char *ok_text, const char *what)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = db_prepare(db, sql, &st);
    if (rc != CMC_OK)
        goto out;
    rc = db_step(db, st, &has_row);
    if (rc == CMC_ERR_TAMPERED) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "%s: %s", what, sqlite3_errmsg(db));
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    if (ok_text == NULL) {
        if (has_row) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            rc = cmc_fail(CMC_ERR_TAMPERED, "%s: %s", what, t != NULL ? (const char *)t : "failed");
        }
    } else {
        const unsigned char *t = has_row ? sqlite3_column_text(st, 0) : NULL;
        if (t == NULL || strcmp((const char *)t, ok_text) != 0)
            rc = cmc_fail(CMC_ERR_TAMPERED, "%s: %s", what,
                          t != NULL ? (const char *)t : "no answer");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int db_cipher_integrity_check(sqlite3 *db)
{
    int rc = integrity_pragma(db, "PRAGMA cipher_integrity_check", NULL,
                              "page authentication check");
    if (rc != CMC_OK)
        return rc;
    return integrity_pragma(db, "PRAGMA integrity_check", "ok", "database structure check");
}
