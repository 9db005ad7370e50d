/*
 * db.h - SQLCipher databases: opening with a raw key, the pragmas every store relies on,
 * numbered migrations, and the translation of SQLite errors at the boundary.
 *
 * Used by the device replica (agent/store.c) and the hub's store. A database is a plain
 * `sqlite3 *` handle (SQLCipher 4.6, <sqlite3.h>): callers prepare their own statements and
 * use the helpers below for the common steps, so each store's SQL stays in its own file.
 *
 * Opening (db_open): a new database file is first created empty with mode 0600 (SQLite
 * gives its -wal and -shm files the same mode). It is keyed with the raw 256-bit key, given
 * to SQLCipher as the blob literal x'<64 hex digits>' so no PBKDF2 runs on open (the key is
 * random, not a passphrase; a user's PIN is stretched once, in the key slot). The hex text
 * is built in sodium-protected memory and zeroed at once. Then, in order: 4096-byte pages (a new
 * file takes them from its first write), a read of sqlite_master to prove the key (a wrong
 * key and a damaged first page look the same: CMC_ERR_TAMPERED), WAL journal,
 * synchronous=FULL, secure_delete=ON, temp_store=MEMORY, foreign_keys=ON and a busy timeout.
 * docs/STORAGE.md explains each choice.
 *
 * Errors: every helper returns a cmc_err and records a detail naming what it was doing and
 * SQLite's own text (sqlite3_errmsg), never a bound value. The mapping (db_error):
 *   SQLITE_NOTADB, SQLITE_CORRUPT  -> CMC_ERR_TAMPERED (SQLCipher reports a page whose HMAC
 *                                     does not verify as one of these)
 *   SQLITE_FULL                    -> CMC_ERR_DISK_FULL
 *   SQLITE_BUSY, SQLITE_LOCKED     -> CMC_ERR_BUSY
 *   SQLITE_NOMEM                   -> CMC_ERR_NOMEM
 *   SQLITE_IOERR, SQLITE_CANTOPEN,
 *   SQLITE_READONLY                -> CMC_ERR_IO (the file, not the SQL)
 *   SQLITE_CONSTRAINT_UNIQUE,
 *   SQLITE_CONSTRAINT_PRIMARYKEY   -> CMC_ERR_EXISTS (the key is taken)
 *   anything else                  -> CMC_ERR_DB (other constraints included: a program
 *                                     defect, not the caller's input)
 * This is the one map: the device replica and the hub store both use it.
 *
 * Memory: db_open leaves *out NULL on failure and leaks nothing; db_close(NULL) is a no-op.
 * Thread-safety: one handle per thread (the library is used in multi-thread mode).
 */
#ifndef CMC_DB_H
#define CMC_DB_H

#include "crypto/cry.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define DB_PAGE_SIZE 4096
#define DB_BUSY_TIMEOUT_MS 5000

/* Opens (creating when absent) the database at `path` with `key` (CRY_KEY_BYTES bytes).
 * CMC_ERR_TAMPERED when the key is wrong or the file is damaged, CMC_ERR_USAGE for a key of
 * the wrong size. */
int db_open(const char *path, const struct cry_secret *key, sqlite3 **out);
/* Closes the handle (finalising nothing: callers finalise their statements first). */
void db_close(sqlite3 *db);

/* Translates SQLite result code `rc` (plain or extended) into a cmc_err, recording
 * "<what>: <sqlite3_errmsg>" as the detail. Returns CMC_OK for SQLITE_OK/ROW/DONE. A plain
 * SQLITE_CONSTRAINT is refined with the handle's extended code (which constraint failed). */
int db_error(sqlite3 *db, int rc, const char *what);
/* The cmc_err for a SQLite result code, without recording anything. */
int db_map_code(int rc);

/* Runs one or more statements that return no rows the caller needs. */
int db_exec(sqlite3 *db, const char *sql);
/* Prepares one statement; *out is NULL on failure. */
int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);
/* Steps `st`: CMC_OK with *has_row 1 (a row is ready) or 0 (done); errors translated. */
int db_step(sqlite3 *db, sqlite3_stmt *st, int *has_row);

/* Transactions. db_begin takes the write lock at once (BEGIN IMMEDIATE), so a writer waits
 * for another writer at the start (busy timeout) rather than failing half-way. db_rollback
 * is best effort and safe to call when no transaction is open. */
int db_begin(sqlite3 *db);
int db_commit(sqlite3 *db);
void db_rollback(sqlite3 *db);

/* PRAGMA user_version. */
int db_user_version(sqlite3 *db, int64_t *out);

/* Migration runner. steps[i] is the SQL that takes the schema from version i to i + 1;
 * a database at user_version v runs steps v .. n_steps-1, each in its own transaction
 * together with its new user_version, so an interruption leaves the last whole step.
 * A database newer than n_steps is refused (CMC_ERR_STATE: a newer program wrote it).
 * *applied (may be NULL) is the number of steps run now. */
int db_migrate(sqlite3 *db, const char *const *steps, size_t n_steps, size_t *applied);

/* Checkpoints the WAL into the database and truncates the WAL file to zero bytes, so
 * deleted data no longer lies in it. CMC_ERR_BUSY when a reader kept it from completing. */
int db_checkpoint_truncate(sqlite3 *db);

/* Integrity: SQLCipher's check of every page's HMAC (PRAGMA cipher_integrity_check, which
 * returns one row per failure) and SQLite's structural check (PRAGMA integrity_check, "ok").
 * CMC_ERR_TAMPERED with the first failure in the detail. */
int db_cipher_integrity_check(sqlite3 *db);

#endif
