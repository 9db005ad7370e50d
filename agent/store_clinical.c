/*
 * store_clinical.c - the clinical file: pending edits and merge state live in a second
 * SQLCipher database, `clinical.db` beside the replica, under the role key that only
 * clinicians' key slots wrap (docs/STORAGE.md, "Keys per role").
 *
 * A clinician session that holds the role key ATTACHes it as schema `clin`; the replica
 * itself (`main`) then has no pending_edits or merges table, so the store's unqualified SQL
 * finds them there. Every other session gets empty TEMP tables of the same shape instead:
 * the engine's and the readers' statements run, see nothing and keep nothing. A replica from
 * before the split keeps its tables in `main` until the first clinician with the role key
 * opens it, which moves the rows into the clinical file and drops them from the replica.
 * Plan versions that are not published live there too, in table drafts (store_drafts.c).
 */
#include "agent/store_int.h"

#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"

#include <stdio.h>
#include <string.h>

#define CLINICAL_FILE "clinical.db"

/* The tables as the replica's migrations left them (step 2), with user_sig (added below). */
#define PENDING_COLS                                                                               \
    "  id INTEGER PRIMARY KEY,"                                                                    \
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"                                        \
    "  base_version INTEGER NOT NULL CHECK (base_version > 0),"                                    \
    "  idempotency_id TEXT NOT NULL UNIQUE,"                                                       \
    "  user TEXT NOT NULL,"                                                                        \
    "  created_at INTEGER NOT NULL,"                                                               \
    "  change BLOB NOT NULL,"                                                                      \
    "  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"                               \
    "  base BLOB,"                                                                                 \
    "  hub_version INTEGER,"                                                                       \
    "  user_sig BLOB"
#define MERGES_COLS                                                                                \
    "  plan_id TEXT PRIMARY KEY CHECK (length(plan_id) = 36),"                                     \
    "  base BLOB NOT NULL,"                                                                        \
    "  local BLOB NOT NULL,"                                                                       \
    "  remote BLOB NOT NULL,"                                                                      \
    "  choices TEXT NOT NULL DEFAULT '{}',"                                                        \
    "  created_at INTEGER NOT NULL"

/* Plan versions the hub sent that are not published (store_drafts.c): the row, its seal and
 * its identity index columns in one. */
#define DRAFTS_COLS                                                                                \
    "  id INTEGER PRIMARY KEY,"                                                                    \
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"                                        \
    "  version INTEGER NOT NULL CHECK (version > 0),"                                              \
    "  status TEXT NOT NULL CHECK (status IN ('draft', 'needs_finalisation', 'awaiting_approval')),"\
    "  nhs_number TEXT NOT NULL CHECK (length(nhs_number) = 10),"                                  \
    "  change_seq INTEGER NOT NULL,"                                                               \
    "  received_at INTEGER NOT NULL,"                                                              \
    "  body BLOB NOT NULL,"                                                                        \
    "  seal BLOB,"                                                                                 \
    "  family_name TEXT NOT NULL,"                                                                 \
    "  given_name TEXT NOT NULL,"                                                                  \
    "  date_of_birth TEXT,"                                                                        \
    "  postcode TEXT,"                                                                             \
    "  postcode_outward TEXT,"                                                                     \
    "  UNIQUE (plan_id, version)"

static const char clinical_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS clin.pending_edits (" PENDING_COLS ");"
    "CREATE INDEX IF NOT EXISTS clin.pending_edits_plan ON pending_edits (plan_id);"
    "CREATE TABLE IF NOT EXISTS clin.merges (" MERGES_COLS ");"
    "CREATE TABLE IF NOT EXISTS clin.drafts (" DRAFTS_COLS ");"
    "CREATE INDEX IF NOT EXISTS clin.drafts_nhs ON drafts (nhs_number);";

static const char shadow_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS pending_edits (" PENDING_COLS ");"
    "CREATE TEMP TABLE IF NOT EXISTS merges (" MERGES_COLS ");";

/* Every session without the clinical file reads an empty stand-in: drafts reach it sealed. */
static const char shadow_drafts_sql[] = "CREATE TEMP TABLE IF NOT EXISTS drafts (" DRAFTS_COLS ");";

/* Rows of the replica from before the split move over once, in one transaction; edits of a
 * plan purged meanwhile (by a session that could not reach this file) go. */
static const char move_sql[] =
    "BEGIN IMMEDIATE;"
    "INSERT INTO clin.pending_edits SELECT * FROM main.pending_edits;"
    "INSERT INTO clin.merges SELECT * FROM main.merges;"
    "DROP TABLE main.pending_edits;"
    "DROP TABLE main.merges;"
    "COMMIT;";

static const char purged_sql[] =
    "DELETE FROM clin.pending_edits WHERE plan_id IN (SELECT plan_id FROM main.tombstones);"
    "DELETE FROM clin.merges WHERE plan_id IN (SELECT plan_id FROM main.tombstones);";

static int main_has(store *s, const char *table, int *has)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(s->db, "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1", &st);
    if (rc == CMC_OK && (rc = store_bind_text(s, st, 1, table)) == CMC_OK)
        rc = db_step(s->db, st, has);
    sqlite3_finalize(st);
    return rc;
}

static int attach(store *s, const char *replica_path, const struct cry_secret *role_key)
{
    char path[4200];
    const char *slash = strrchr(replica_path, '/');
    int dir_len = slash != NULL ? (int)(slash - replica_path) : 1;
    if (snprintf(path, sizeof path, "%.*s/%s", dir_len, slash != NULL ? replica_path : ".", CLINICAL_FILE) >=
        (int)sizeof path)
        return cmc_fail(CMC_ERR_TOO_LARGE, "replica: the data directory's path is too long");
    /* SQLite would make a new file 0644 (and its -wal and -shm alike): make it 0600 first. */
    if (!plat_exists(path) && plat_write_atomic(path, "", 0) != CMC_OK)
        return cmc_fail(CMC_ERR_IO, "replica: cannot create the clinical file: %s", cmc_errmsg());
    /* The raw key as x'<hex>', from protected memory, as a bound value of the ATTACH. */
    struct cry_secret *text = NULL;
    const size_t len = 2 + 2 * CRY_KEY_BYTES + 1;
    int rc = cry_secret_new(len + 1, &text);
    if (rc != CMC_OK)
        return rc;
    char *t = (char *)text->buf;
    t[0] = 'x';
    t[1] = '\'';
    cry_hex(t + 2, role_key->buf, CRY_KEY_BYTES);
    t[len - 1] = '\'';
    sqlite3_stmt *st = NULL;
    int row = 0;
    rc = db_prepare(s->db, "ATTACH DATABASE ?1 AS clin KEY ?2", &st);
    if (rc == CMC_OK && (rc = store_bind_text(s, st, 1, path)) == CMC_OK)
        rc = db_error(s->db, sqlite3_bind_text(st, 2, t, (int)len, SQLITE_STATIC), "binding the key");
    if (rc == CMC_OK)
        rc = db_step(s->db, st, &row);
    sqlite3_finalize(st);
    cry_secret_free(text);
    if (rc == CMC_OK && (rc = db_exec(s->db, "PRAGMA clin.journal_mode = WAL;"
                                             "PRAGMA clin.synchronous = FULL;"
                                             "PRAGMA clin.secure_delete = ON")) != CMC_OK)
        rc = cmc_fail(CMC_ERR_TAMPERED, "the clinical file cannot be read with this user's role key (%s)",
                      cmc_errmsg());
    return rc;
}

/* A replica's own pending_edits (from before the split) gets the signature column each edit
 * now carries: the signature of the user who made it (or of the clinician whose sync rebased
 * it), checked by the hub. Done here rather than as a migration step, since the table may
 * already have gone to the clinical file. */
static int add_signature_column(store *s)
{
    sqlite3_stmt *st = NULL;
    int has = 0;
    int rc = db_prepare(s->db, "SELECT 1 FROM pragma_table_info('pending_edits', 'main') WHERE name = 'user_sig'",
                        &st);
    if (rc == CMC_OK)
        rc = db_step(s->db, st, &has);
    sqlite3_finalize(st);
    if (rc == CMC_OK && !has)
        rc = db_exec(s->db, "ALTER TABLE main.pending_edits ADD COLUMN user_sig BLOB");
    return rc;
}

int store_clinical_open(store *s, const char *replica_path, const struct cry_secret *role_key)
{
    int has_pending = 0, has_merges = 0;
    int rc = main_has(s, "pending_edits", &has_pending);
    if (rc == CMC_OK)
        rc = main_has(s, "merges", &has_merges);
    if (rc == CMC_OK && has_pending)
        rc = add_signature_column(s);
    if (rc != CMC_OK)
        return rc;
    if (role_key == NULL || s->session.role != STORE_ROLE_CLINICIAN) {
        /* A clinician without the role key still uses a replica from before the split. */
        s->clinical = s->session.role == STORE_ROLE_CLINICIAN && has_pending && has_merges;
        if (!s->clinical && (rc = db_exec(s->db, shadow_sql)) != CMC_OK)
            return rc;
        if ((rc = db_exec(s->db, shadow_drafts_sql)) != CMC_OK)
            return rc;
        return store_drafts_open(s, NULL);
    }
    if ((rc = attach(s, replica_path, role_key)) != CMC_OK)
        return rc;
    if ((rc = db_exec(s->db, clinical_schema_sql)) != CMC_OK)
        return rc;
    if (has_pending && has_merges && (rc = db_exec(s->db, move_sql)) != CMC_OK) {
        db_exec(s->db, "ROLLBACK");
        return rc;
    }
    if ((rc = db_exec(s->db, purged_sql)) != CMC_OK)
        return rc;
    s->clinical = s->drafts_clinical = 1;
    plat_log(PLAT_LOG_DEBUG, "replica: the clinical file is open");
    return store_drafts_open(s, role_key);
}
