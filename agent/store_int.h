/*
 * store_int.h - private to agent/store*.c: the replica's connection and the helpers its files
 * share. Nothing outside agent/store*.c includes this header; every other file asks the store
 * (store.h, store_sync.h), so the schema has one owner.
 *
 * The files, by concept:
 *   store.c          open/close, the statement cache, bindings, transactions, roles
 *   store_schema.c   numbered migrations, the secondary indexes, bulk loading
 *   store_identity.c identity normalisation and the identity index row of a plan
 *   store_read.c     session-filtered reads and search, counts, the decode-and-check of rows,
 *                    the integrity check
 *   store_pending.c  pending local edits and three-way merge state
 *   store_sync.c     sync state, storing versions, purges, the engine's version reads
 *   store_audit.c    rows of the audit table (agent/audit.c keeps the chain logic)
 *   store_clinical.c the clinical file under the role key (pending edits, merges, drafts)
 *   store_drafts.c   versions that are not published: in the clinical file, or sealed
 *   store_counts.c   the kept plan counts
 *   store_seal.c     each version's seal, checked on every read
 *
 * Conventions: statements come from the handle's cache (store_stmt_get, given back with
 * store_stmt_put, which resets it); helpers return a cmc_err and record the detail; values
 * bound with the bind helpers must outlive the step (SQLITE_STATIC).
 */
#ifndef CMC_STORE_INT_H
#define CMC_STORE_INT_H

#include "agent/store.h"
#include "sync/plan.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Statements prepared once per handle: a lookup then costs a reset and a bind instead of
 * a parse and plan. Slots are keyed by the statement's SQL text and filled in order. */
#define STORE_STMT_CACHE 48

struct store {
    sqlite3 *db;
    struct store_session session;
    int in_batch;
    struct store_seals *seals; /* store_seal.c: the hub key and the roots checked */
    int clinical; /* pending edits and merges are this session's to read (store_clinical.c) */
    int drafts_clinical; /* the clinical file is attached: drafts are stored and read there */
    int box_loaded;      /* box_pk was looked for in sync_state (store_drafts.c) */
    int have_box_pk;     /* ...and found: drafts are sealed to it when the file is not here */
    uint8_t box_pk[CRY_BOX_PK_BYTES];
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STORE_STMT_CACHE];
};

/* ---- store_clinical.c ---------------------------------------------------------------------- */

/* Opens the clinical file under `role_key` for a clinician session that has it, moving a
 * replica's pending edits and merges there the first time; gives any other session empty
 * stand-ins. Sets s->clinical. */
int store_clinical_open(store *s, const char *replica_path, const struct cry_secret *role_key);

/* A sync-state value of exactly `len` bytes in hex; *found 0 (CMC_OK) when unset,
 * CMC_ERR_TAMPERED when malformed (store_sync.c). */
int store_state_get_hex(store *s, const char *key, uint8_t *out, size_t len, int *found);

/* ---- store_drafts.c ------------------------------------------------------------------------ */

/* Every version held whatever its status, as a table: the replica's and the drafts this
 * session can read (plan_id, version, body). */
#define STORE_HELD_VERSIONS                                                                  \
    "(SELECT plan_id, version, body FROM plan_versions"                                      \
    " UNION ALL SELECT plan_id, version, body FROM drafts)"

/* Sync-state key of the public half of the box pair the role key derives (hex). */
#define STORE_STATE_DRAFT_BOX "draft_box_pk"

/* After the clinical file is attached (role_key not NULL) or its stand-ins made (NULL): moves
 * plan versions that are not published out of the replica (into the clinical file, or sealed
 * when only the public half is known), and with the role key opens the sealed ones into the
 * clinical file, in one transaction. */
int store_drafts_open(store *s, const struct cry_secret *role_key);
/* Stores a version that is not published, inside the caller's op: in the clinical file when
 * it is attached, else sealed in the replica; *stored 0 when neither is possible (no clinician
 * has opened this replica with a role key yet) and the caller keeps it as before. */
int store_draft_put(store *s, const struct plan *p, const uint8_t *body, size_t len,
                    const uint8_t *seal, size_t seal_len, int64_t change_seq, int *stored);
/* Deletes every draft and sealed draft of a plan (a purge). */
int store_drafts_purge(store *s, const char *plan_id);
/* Drops drafts of a plan older than its newest published version. */
int store_drafts_prune(store *s, const char *plan_id);
/* Plans only drafts hold, and plans whose newest draft is newer than the replica's newest. */
int store_drafts_counts(store *s, int64_t *only, int64_t *newer);

/* ---- store.c: statements, bindings, small helpers ---------------------------------------- */

/* A ready statement for `sql` (a static string): from the handle's cache, or newly prepared.
 * Give it back with store_stmt_put (NULL is a no-op). */
int store_stmt_get(store *s, const char *sql, sqlite3_stmt **out);
void store_stmt_put(store *s, sqlite3_stmt *st);
void store_stmt_cache_clear(store *s);

const char *store_col_text(sqlite3_stmt *st, int i);
/* Binds text (NULL binds SQL NULL). */
int store_bind_text(store *s, sqlite3_stmt *st, int i, const char *v);
/* Binds a blob (NULL binds SQL NULL); CMC_ERR_TOO_LARGE beyond 4 * PLAN_MAX_ENCODED. */
int store_bind_blob(store *s, sqlite3_stmt *st, int i, const void *b, size_t len);
int store_bind_int(store *s, sqlite3_stmt *st, int i, int64_t v);
/* Runs a statement that returns no rows. */
int store_step_done(store *s, sqlite3_stmt *st);
/* Runs `sql` (its rows ignored) with ?1, ?2, ... bound from the arguments as `types` says, one
 * letter each: 't' a text (const char *; NULL binds NULL), 'i' an int64_t, 'b' a blob (const
 * void *, then size_t; NULL binds NULL). */
int store_exec_bound(store *s, const char *sql, const char *types, ...);
/* The first row of `sql`, bound as for store_exec_bound, left in *st for the caller to read
 * and give back (store_stmt_put, also on failure); CMC_ERR_NOT_FOUND with `missing` as the
 * detail when there is none. */
int store_query_row(store *s, sqlite3_stmt **st, const char *missing, const char *sql,
                    const char *types, ...);
/* Runs `sql` with the plan id as ?1. */
#define store_exec_for_plan(s, sql, plan_id) store_exec_bound((s), (sql), "t", (const char *)(plan_id))
/* One integer from `sql` with an optional text parameter; *found (may be NULL) 0 when no row. */
int store_query_int(store *s, const char *sql, const char *param, int64_t *out, int *found);
/* The kept plan counts (agent/store_counts.c) against a recount from the rows' columns:
 * CMC_ERR_TAMPERED when they disagree. Reads every row's columns, never a body. */
int store_counts_check(store *s);
/* Pending edits, held merges and tombstones: the counts the device itself keeps (store_read.c). */
int store_counts_local(store *s, struct store_counts *out);

/* Room for element `count` (of `elem` bytes) in the array whose pointer `arr_ptr` points to
 * (a T **): unchanged while count < *cap, else grown to twice *cap (`first` elements the first
 * time) and *cap updated. CMC_ERR_NOMEM leaves the array as it was, still the caller's. */
int store_grow(void *arr_ptr, size_t count, size_t *cap, size_t elem, size_t first);
int store_dup_text(const char *src, char **out);
int store_dup_blob(const void *src, size_t len, uint8_t **out, size_t *out_len);
void store_copy_text(char *dst, size_t cap, const char *src);
/* The id itself when it is a canonical lower-case UUID, else a placeholder: a tampered row
 * could hold anything there, patient data included, and ids go into details and logs. */
const char *store_safe_id(const char *id);
/* CMC_ERR_DENIED unless the session is a clinician's. */
int store_require_clinician(const store *s, const char *what);

/* Every multi-statement write is one unit: its own transaction outside a batch, a savepoint
 * inside one (so a refused op leaves the batch as it was). store_op_end commits on rc ==
 * CMC_OK, else rolls back and returns rc (keeping the op's error detail). */
int store_op_begin(store *s);
int store_op_end(store *s, int rc);

/* ---- store_schema.c ---------------------------------------------------------------------- */

/* Migrates a freshly opened connection to STORE_SCHEMA_VERSION and builds any secondary
 * index a crash during bulk loading left missing. */
int store_schema_open(sqlite3 *db);

/* ---- store_identity.c -------------------------------------------------------------------- */

/* The identity index row of a plan, normalised. */
struct store_identity {
    char *family;
    char *given;
    char *postcode; /* NULL when the plan has none */
    char *outward;
};

int store_identity_of(const struct plan *p, struct store_identity *id);
void store_identity_free(struct store_identity *id);
/* Does the index row (columns first.. first+3: family, given, dob, postcode) describe the
 * decoded plan? */
int store_identity_matches(sqlite3_stmt *st, int first, const struct plan *p, int *match);
/* Equal strings, or both NULL. */
int store_text_eq(const char *a, const char *b);

/* ---- store_seal.c ------------------------------------------------------------------------ */
/* CMC_OK when the row's exact bytes carry the hub's seal (or, on a replica without a hub key,
 * the row has none); CMC_ERR_TAMPERED with STORE_INTEGRITY_MSG otherwise, and the replica is
 * marked for repair by the next sync. */
int store_seal_check(store *s, const char *plan_id, int64_t version, const void *body,
                     size_t body_len, const void *seal, size_t seal_len);
void store_seals_free(store *s);
/* The seal row of a version just inserted (plan_seals; the version's delete cascades). */
int store_seal_insert(store *s, int64_t version_id, const uint8_t *seal, size_t len);

/* ---- store_read.c ------------------------------------------------------------------------ */

/* Decodes a plan body column and checks it belongs to `plan_id` (when not NULL). */
int store_column_plan(sqlite3_stmt *st, int col, const char *plan_id, struct plan *out);

#endif
