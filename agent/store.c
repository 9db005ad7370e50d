/*
 * store.c - the device's encrypted replica (see store.h; schema in docs/STORAGE.md).
 *
 * Published-only is enforced twice. First in SQL: every read for the urgent-care role selects
 * from the view urgent_care_plans (newest *published* version per plan) and repeats
 * "status = 'published'" in its own WHERE clause; the statement texts are fixed at compile
 * time per role, so no caller can ask for another. Second in C: every body is decoded and
 * compared with its row (plan id, NHS number, version, status) before anything from it
 * leaves the store, and for urgent care the decoded status must be published. A row whose
 * columns and body disagree was written by something other than this code: it is never
 * shown (a single read is CMC_ERR_TAMPERED; lists and counts skip it and log the plan id).
 */
#include "agent/store.h"
#include "agent/store_sync.h"
#include "agent/store_test.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statements prepared once per handle: a lookup then costs a reset and a bind instead of
 * a parse and plan. Slots are keyed by the statement's SQL text and filled in order. */
#define STORE_STMT_CACHE 48

struct store {
    sqlite3 *db;
    struct store_session session;
    int in_batch;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STORE_STMT_CACHE];
};

/* ---- schema ------------------------------------------------------------------------------ */

/* Numbered migrations: step i takes user_version i to i + 1. Never edit a released step;
 * add a new one (and document it in docs/STORAGE.md). */
static const char *const schema_steps[] = {
    /* 1: plan versions, the identity index, tombstones, sync state, the role views. */
    "CREATE TABLE plan_versions ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  version INTEGER NOT NULL CHECK (version > 0),"
    "  status TEXT NOT NULL CHECK (status IN ('draft', 'needs_finalisation',"
    "                                         'awaiting_approval', 'published')),"
    "  nhs_number TEXT NOT NULL CHECK (length(nhs_number) = 10),"
    "  change_seq INTEGER NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  UNIQUE (plan_id, version)"
    ");"
    "CREATE INDEX plan_versions_nhs ON plan_versions (nhs_number);"
    "CREATE INDEX plan_versions_status ON plan_versions (status, plan_id, version);"
    "CREATE TABLE plan_identity ("
    "  version_id INTEGER PRIMARY KEY REFERENCES plan_versions (id) ON DELETE CASCADE,"
    "  plan_id TEXT NOT NULL,"
    "  nhs_number TEXT NOT NULL,"
    "  family_name TEXT NOT NULL,"
    "  given_name TEXT NOT NULL,"
    "  date_of_birth TEXT,"
    "  postcode TEXT,"
    "  postcode_outward TEXT"
    ");"
    "CREATE INDEX plan_identity_plan ON plan_identity (plan_id);"
    "CREATE INDEX plan_identity_nhs ON plan_identity (nhs_number);"
    "CREATE INDEX plan_identity_family ON plan_identity (family_name);"
    "CREATE INDEX plan_identity_given ON plan_identity (given_name);"
    "CREATE INDEX plan_identity_dob ON plan_identity (date_of_birth);"
    "CREATE INDEX plan_identity_postcode ON plan_identity (postcode);"
    "CREATE TABLE tombstones ("
    "  plan_id TEXT PRIMARY KEY,"
    "  nhs_hash BLOB CHECK (nhs_hash IS NULL OR length(nhs_hash) = 32),"
    "  reason TEXT NOT NULL,"
    "  change_seq INTEGER NOT NULL,"
    "  purged_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE sync_state ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE VIEW published_versions AS"
    "  SELECT * FROM plan_versions WHERE status = 'published';"
    "CREATE VIEW urgent_care_plans AS"
    "  SELECT * FROM published_versions p"
    "  WHERE p.version = (SELECT max(q.version) FROM published_versions q"
    "                     WHERE q.plan_id = p.plan_id);"
    "CREATE VIEW clinician_plans AS"
    "  SELECT * FROM plan_versions p"
    "  WHERE p.version = (SELECT max(q.version) FROM plan_versions q"
    "                     WHERE q.plan_id = p.plan_id);",

    /* 2: pending local edits (with the plan each was made on), conflicts, three-way merge
     * state, the audit log. */
    "CREATE TABLE pending_edits ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  base_version INTEGER NOT NULL CHECK (base_version > 0),"
    "  idempotency_id TEXT NOT NULL UNIQUE,"
    "  user TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  change BLOB NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
    "  base BLOB,"
    "  hub_version INTEGER"
    ");"
    "CREATE INDEX pending_edits_plan ON pending_edits (plan_id);"
    "CREATE TABLE merges ("
    "  plan_id TEXT PRIMARY KEY CHECK (length(plan_id) = 36),"
    "  base BLOB NOT NULL,"
    "  local BLOB NOT NULL,"
    "  remote BLOB NOT NULL,"
    "  choices TEXT NOT NULL DEFAULT '{}',"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE conflicts ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  field_path TEXT NOT NULL,"
    "  pending_id INTEGER,"
    "  base_value BLOB,"
    "  local_value BLOB,"
    "  remote_value BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (plan_id, field_path)"
    ");"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  device TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  plan_id TEXT,"
    "  identifier TEXT,"
    "  action TEXT NOT NULL,"
    "  wall_time INTEGER NOT NULL,"
    "  mono INTEGER NOT NULL"
    ");",

    /* 3: fewer indexes, each of them used. None on plan_versions itself: a lookup by NHS
     * number goes through plan_identity's index to the version's row, a search scans
     * plan_identity's small rows and reads the versions it matches, and "the newest
     * version" uses the (plan_id, version) key. (Building an index over plan_versions
     * reads and decrypts every plan body; every index costs each stored version a random
     * insert.) The name, date-of-birth and postcode indexes served no query: a search
     * matches name prefixes and optional terms, which no such index answers. */
    "DROP INDEX IF EXISTS plan_versions_nhs;"
    "DROP INDEX IF EXISTS plan_versions_status;"
    "DROP INDEX IF EXISTS plan_identity_family;"
    "DROP INDEX IF EXISTS plan_identity_given;"
    "DROP INDEX IF EXISTS plan_identity_dob;"
    "DROP INDEX IF EXISTS plan_identity_postcode;",
};

_Static_assert(sizeof schema_steps / sizeof schema_steps[0] == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION must be the number of migration steps");

/* ---- bulk loading ---------------------------------------------------------------------- */

/* The secondary indexes (those migration 1 makes that migration 3 keeps). A snapshot of tens of thousands of
 * plans inserts rows in rowid order, but every secondary index receives them in random key
 * order: once the indexes outgrow the page cache, each insert reads and decrypts pages again.
 * Setting the indexes aside for a multi-page snapshot and building them once at its end
 * (a sort) makes the load linear. */
static const char secondary_indexes_sql[] =
    "CREATE INDEX IF NOT EXISTS plan_identity_plan ON plan_identity (plan_id);"
    "CREATE INDEX IF NOT EXISTS plan_identity_nhs ON plan_identity (nhs_number);";

static const char drop_secondary_indexes_sql[] =
    "DROP INDEX IF EXISTS plan_identity_plan;"
    "DROP INDEX IF EXISTS plan_identity_nhs;";

static void stmt_cache_clear(store *s);

int store_bulk_begin(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: bulk loading needs a batch");
    stmt_cache_clear(s); /* statements that name the indexes are prepared again */
    return db_exec(s->db, drop_secondary_indexes_sql);
}

int store_bulk_end(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: bulk loading needs a batch");
    return db_exec(s->db, secondary_indexes_sql);
}

/* ---- role-fixed statements ------------------------------------------------------------- */

/* Index 0 answers for urgent care (and for "the newest published version" for anyone);
 * index 1 for a clinician. Both texts are constants: the role picks one, nothing else. */
enum { Q_PUBLISHED = 0, Q_CLINICIAN = 1 };

#define PLAN_COLS "v.plan_id, v.version, v.status, v.nhs_number, v.body"
#define ID_COLS "i.family_name, i.given_name, i.date_of_birth, i.postcode"
#define FROM_PUBLISHED "urgent_care_plans v"
#define WHERE_PUBLISHED "+v.status = 'published'" /* unary +: let the planner use the NHS or id index */
#define FROM_CLINICIAN "clinician_plans v"
#define WHERE_CLINICIAN "1"

#define SQL_GET_BY_ID(from, where) \
    "SELECT " PLAN_COLS " FROM " from " WHERE " where " AND v.plan_id = ?1"
/* Through the identity index to the version row (its rowid); the row's own NHS number must
 * agree too. */
#define SQL_GET_BY_NHS(from, where)                                                   \
    "SELECT " PLAN_COLS " FROM plan_identity i CROSS JOIN " from                      \
    " ON v.id = i.version_id WHERE " where " AND i.nhs_number = ?1 AND v.nhs_number = ?1" \
    " ORDER BY v.received_at DESC, v.plan_id LIMIT 1"
/* ?1 date of birth, ?2 normalised postcode, ?3 the whole normalised name, ?4 its first
 * word and ?5 the rest (for "given family" or "family given"). */
#define SQL_SEARCH(from, where)                                                           \
    "SELECT " PLAN_COLS ", " ID_COLS " FROM plan_identity i CROSS JOIN " from           \
    " ON v.id = i.version_id WHERE " where                                              \
    " AND (?1 IS NULL OR i.date_of_birth = ?1)"                                          \
    " AND (?2 IS NULL OR i.postcode = ?2 OR (length(?2) >= length(i.postcode_outward)"  \
    "      AND substr(i.postcode, 1, length(?2)) = ?2))"                                 \
    " AND (?3 IS NULL OR instr(i.family_name, ?3) = 1 OR instr(i.given_name, ?3) = 1"   \
    "      OR (?4 IS NOT NULL AND ((instr(i.given_name, ?4) = 1"                         \
    "                               AND instr(i.family_name, ?5) = 1)"                   \
    "                           OR (instr(i.family_name, ?4) = 1"                        \
    "                               AND instr(i.given_name, ?5) = 1))))"                 \
    " ORDER BY (?3 IS NOT NULL AND (i.family_name = ?3 OR i.given_name = ?3)) DESC,"     \
    " i.family_name, i.given_name, v.plan_id"
#define SQL_LIST(from, where)                                                \
    "SELECT " PLAN_COLS ", " ID_COLS " FROM " from                         \
    " LEFT JOIN plan_identity i ON i.version_id = v.id WHERE " where       \
    " ORDER BY i.family_name, i.given_name, v.plan_id"

static const char *const sql_get_by_id[2] = {
    SQL_GET_BY_ID(FROM_PUBLISHED, WHERE_PUBLISHED),
    SQL_GET_BY_ID(FROM_CLINICIAN, WHERE_CLINICIAN),
};
static const char *const sql_get_by_nhs[2] = {
    SQL_GET_BY_NHS(FROM_PUBLISHED, WHERE_PUBLISHED),
    SQL_GET_BY_NHS(FROM_CLINICIAN, WHERE_CLINICIAN),
};
static const char *const sql_search[2] = {
    SQL_SEARCH(FROM_PUBLISHED, WHERE_PUBLISHED),
    SQL_SEARCH(FROM_CLINICIAN, WHERE_CLINICIAN),
};
static const char *const sql_list[2] = {
    SQL_LIST(FROM_PUBLISHED, WHERE_PUBLISHED),
    SQL_LIST(FROM_CLINICIAN, WHERE_CLINICIAN),
};

static int query_index(const store *s)
{
    return s->session.role == STORE_ROLE_CLINICIAN ? Q_CLINICIAN : Q_PUBLISHED;
}

/* ---- small helpers --------------------------------------------------------------------- */

int store_role_from_name(const char *name)
{
    if (name == NULL)
        return STORE_ROLE_NONE;
    if (strcmp(name, "urgent_care") == 0)
        return STORE_ROLE_URGENT_CARE;
    if (strcmp(name, "clinician") == 0)
        return STORE_ROLE_CLINICIAN;
    return STORE_ROLE_NONE;
}

const char *store_role_name(int role)
{
    switch (role) {
    case STORE_ROLE_URGENT_CARE:
        return "urgent_care";
    case STORE_ROLE_CLINICIAN:
        return "clinician";
    default:
        return NULL;
    }
}

/* A canonical lower-case UUID. Used before putting an id from the replica into a detail or
 * a log line: a tampered row could hold anything there, patient data included. */

static const char *safe_id(const char *id)
{
    return plan_uuid_valid(id) ? id : "(malformed id)";
}

/* A ready statement for `sql` (a static string): from the handle's cache, reset, or newly
 * prepared. Give it back with stmt_put. */
static int stmt_get(store *s, const char *sql, sqlite3_stmt **out)
{
    *out = NULL;
    for (size_t i = 0; i < STORE_STMT_CACHE && s->stmts[i].sql != NULL; i++) {
        if (s->stmts[i].st != NULL && strcmp(s->stmts[i].sql, sql) == 0) {
            *out = s->stmts[i].st;
            s->stmts[i].st = NULL; /* in use: a nested use prepares its own */
            return CMC_OK;
        }
    }
    return db_prepare(s->db, sql, out);
}

/* Resets a statement and keeps it for the next stmt_get of the same SQL. */
static void stmt_put(store *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    const char *sql = sqlite3_sql(st);
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        if (s->stmts[i].sql == NULL) {
            s->stmts[i].sql = sql;
            s->stmts[i].st = st;
            return;
        }
        if (s->stmts[i].st == NULL && strcmp(s->stmts[i].sql, sql) == 0) {
            s->stmts[i].sql = sql; /* the text now lives in this statement */
            s->stmts[i].st = st;
            return;
        }
    }
    sqlite3_finalize(st);
}

static void stmt_cache_clear(store *s)
{
    for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
        sqlite3_finalize(s->stmts[i].st);
        s->stmts[i].st = NULL;
        s->stmts[i].sql = NULL;
    }
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* Binds text (NULL binds SQL NULL). Values must outlive the step (SQLITE_STATIC). */
static int bind_text(store *s, sqlite3_stmt *st, int i, const char *v)
{
    int rc = v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    return db_error(s->db, rc, "binding a value");
}

static int bind_blob(store *s, sqlite3_stmt *st, int i, const void *b, size_t len)
{
    int rc;
    if (b == NULL)
        rc = sqlite3_bind_null(st, i);
    else if (len > (size_t)PLAN_MAX_ENCODED * 4)
        return cmc_fail(CMC_ERR_TOO_LARGE, "replica: value of %zu bytes is too large", len);
    else
        rc = sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC);
    return db_error(s->db, rc, "binding a value");
}

static int bind_int(store *s, sqlite3_stmt *st, int i, int64_t v)
{
    return db_error(s->db, sqlite3_bind_int64(st, i, v), "binding a value");
}

/* Runs a statement that returns no rows. */
static int step_done(store *s, sqlite3_stmt *st)
{
    int has_row = 0;
    return db_step(s->db, st, &has_row);
}

/* One integer from `sql` with an optional text parameter; *found 0 when no row. */
static int query_int(store *s, const char *sql, const char *param, int64_t *out, int *found)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = stmt_get(s, sql, &st);
    *out = 0;
    if (found != NULL)
        *found = 0;
    if (rc != CMC_OK)
        goto out;
    if (param != NULL && (rc = bind_text(s, st, 1, param)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row) {
        *out = sqlite3_column_int64(st, 0);
        if (found != NULL)
            *found = 1;
    }
out:
    stmt_put(s, st);
    return rc;
}

static int dup_opt(const char *src, char **out)
{
    *out = NULL;
    if (src == NULL)
        return CMC_OK;
    *out = cmc_strdup(src);
    return *out != NULL ? CMC_OK : cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
}

static int dup_blob(const void *src, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (src == NULL)
        return CMC_OK;
    *out = cmc_malloc(len > 0 ? len : 1);
    if (*out == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    if (len > 0)
        memcpy(*out, src, len);
    *out_len = len;
    return CMC_OK;
}

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

/* A random (version 4) UUID, for idempotency ids. */

/* ---- identity normalisation ------------------------------------------------------------ */

/* U+00C0..U+00FF folded (lower case); "" drops the character (x and division signs). */
static const char *const fold_latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};
/* U+0100..U+017F (Latin Extended-A), one letter each. */
static const char fold_ext_a[] = "aaaaaaccccccccdd"
                                 "ddeeeeeeeeeegggg"
                                 "gggghhhhiiiiiiii"
                                 "iiiijjkkklllllll"
                                 "lllnnnnnnnnnoooo"
                                 "oooorrrrrrssssss"
                                 "ssttttttuuuuuuuu"
                                 "uuuuwwyyyzzzzzzs";
_Static_assert(sizeof fold_ext_a == 129, "one letter per code point U+0100..U+017F");

static int is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

void store_name_normalise(const char *in, char *out)
{
    const unsigned char *p = (const unsigned char *)(in != NULL ? in : "");
    size_t o = 0;
    while (*p != '\0') {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z')
                out[o++] = (char)(c - 'A' + 'a');
            else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                out[o++] = (char)c;
            p++;
        } else if (c >= 0xc2 && c <= 0xdf && is_cont(p[1])) {
            unsigned cp = ((unsigned)(c & 0x1f) << 6) | (unsigned)(p[1] & 0x3f);
            const char *f = NULL;
            char one[2] = {0, 0};
            if (cp >= 0xc0 && cp <= 0xff) {
                f = fold_latin1[cp - 0xc0];
            } else if (cp == 0x132 || cp == 0x133) {
                f = "ij";
            } else if (cp == 0x152 || cp == 0x153) {
                f = "oe";
            } else if (cp >= 0x100 && cp <= 0x17f) {
                one[0] = fold_ext_a[cp - 0x100];
                f = one;
            } else if (cp >= 0x180) {
                /* Other scripts: kept as written (no case folding we could do simply). */
                out[o++] = (char)p[0];
                out[o++] = (char)p[1];
            }
            /* U+0080..U+00BF are punctuation and symbols: dropped like ASCII ones. Every
             * folding is at most two bytes, the length of what it replaces. */
            for (; f != NULL && *f != '\0'; f++)
                out[o++] = *f;
            p += 2;
        } else if (c >= 0xe0 && c <= 0xef && is_cont(p[1]) && is_cont(p[2])) {
            memcpy(out + o, p, 3);
            o += 3;
            p += 3;
        } else if (c >= 0xf0 && c <= 0xf4 && is_cont(p[1]) && is_cont(p[2]) && is_cont(p[3])) {
            memcpy(out + o, p, 4);
            o += 4;
            p += 4;
        } else {
            p++; /* not UTF-8: dropped */
        }
    }
    out[o] = '\0';
}

void store_postcode_normalise(const char *in, char *out)
{
    size_t o = 0;
    for (const char *p = in != NULL ? in : ""; *p != '\0'; p++) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-')
            continue;
        out[o++] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    out[o] = '\0';
}

/* The outward code of a normalised postcode: all but the three-character inward code. */
static size_t postcode_outward_len(const char *norm)
{
    size_t n = strlen(norm);
    return n > 4 ? n - 3 : n;
}

/* The identity index row of a plan, normalised. */
struct identity {
    char *family;
    char *given;
    char *postcode; /* NULL when the plan has none */
    char *outward;
};

static void identity_free(struct identity *id)
{
    cmc_free(id->family);
    cmc_free(id->given);
    cmc_free(id->postcode);
    cmc_free(id->outward);
    memset(id, 0, sizeof *id);
}

static char *normalised_name(const char *in)
{
    char *out = cmc_malloc(strlen(in != NULL ? in : "") + 1);
    if (out != NULL)
        store_name_normalise(in, out);
    return out;
}

static int identity_of(const struct plan *p, struct identity *id)
{
    memset(id, 0, sizeof *id);
    id->family = normalised_name(p->patient.family_name);
    id->given = normalised_name(p->patient.given_name);
    if (id->family == NULL || id->given == NULL)
        goto nomem;
    if (p->patient.postcode != NULL) {
        id->postcode = cmc_malloc(strlen(p->patient.postcode) + 1);
        if (id->postcode == NULL)
            goto nomem;
        store_postcode_normalise(p->patient.postcode, id->postcode);
        id->outward = cmc_strndup(id->postcode, postcode_outward_len(id->postcode));
        if (id->outward == NULL)
            goto nomem;
    }
    return CMC_OK;
nomem:
    identity_free(id);
    return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
}

static int text_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Does the index row (columns first.. first+3: family, given, dob, postcode) describe the
 * decoded plan? A mismatch means a search could put the wrong patient's plan in front of a
 * crew, so it counts as tampering. */
static int identity_matches(sqlite3_stmt *st, int first, const struct plan *p, int *match)
{
    struct identity id;
    int rc = identity_of(p, &id);
    *match = 0;
    if (rc != CMC_OK)
        return rc;
    *match = sqlite3_column_type(st, first) != SQLITE_NULL &&
             text_eq(col_text(st, first), id.family) &&
             text_eq(col_text(st, first + 1), id.given) &&
             text_eq(col_text(st, first + 2), p->patient.date_of_birth) &&
             text_eq(col_text(st, first + 3), id.postcode);
    identity_free(&id);
    return CMC_OK;
}

/* ---- the decode-and-check of every plan row -------------------------------------------- */

/* Decodes the body of a row whose first columns are PLAN_COLS and checks it against the
 * row. `require_published`: the decoded plan must be published too. CMC_ERR_TAMPERED (the
 * detail names the plan id and what disagreed) when anything does not match. */
static int row_plan(sqlite3_stmt *st, int require_published, struct plan *out)
{
    const char *plan_id = col_text(st, 0);
    int64_t version = sqlite3_column_int64(st, 1);
    const char *status = col_text(st, 2);
    const char *nhs = col_text(st, 3);
    const void *body = sqlite3_column_blob(st, 4);
    int body_len = sqlite3_column_bytes(st, 4);
    const char *what = NULL;

    plan_init(out);
    if (body == NULL || body_len <= 0)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: plan %s version %" PRId64 " has no body",
                        safe_id(plan_id), version);
    int rc = plan_unpack(body, (size_t)body_len, out);
    if (rc == CMC_ERR_NOMEM)
        return rc;
    if (rc != CMC_OK) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", cmc_errmsg());
        return cmc_fail(CMC_ERR_TAMPERED,
                        "replica: plan %s version %" PRId64 ": stored body does not decode (%s)",
                        safe_id(plan_id), version, detail);
    }
    if (!text_eq(out->plan_id, plan_id) || plan_id == NULL)
        what = "plan id";
    else if (!text_eq(out->nhs_number, nhs) || nhs == NULL)
        what = "NHS number";
    else if (out->version != version)
        what = "version";
    else if (status == NULL || !text_eq(plan_status_name(out->status), status))
        what = "status";
    else if (require_published && out->status != PLAN_STATUS_PUBLISHED)
        what = "status (not published)";
    if (what != NULL) {
        plan_free(out);
        return cmc_fail(CMC_ERR_TAMPERED,
                        "replica: plan %s version %" PRId64 ": body and row disagree on %s",
                        safe_id(plan_id), version, what);
    }
    return CMC_OK;
}

/* Lists and counts leave out a row that fails its check, so one altered row does not blind
 * a crew to every other plan; it is logged (by plan id) and store_verify reports it. */
static void log_skipped(void)
{
    plat_log(PLAT_LOG_WARN, "replica: a row was left out: %s", cmc_errmsg());
}

/* ---- open / close ---------------------------------------------------------------------- */

int store_open(const char *path, const struct cry_secret *key, const struct store_session *session,
               store **out)
{
    store *s = NULL;
    int rc = CMC_OK;

    if (out == NULL)
        return cmc_fail(CMC_ERR_USAGE, "store_open: no output handle");
    *out = NULL;
    if (path == NULL || key == NULL || session == NULL)
        return cmc_fail(CMC_ERR_USAGE, "store_open: missing argument");
    if (session->role != STORE_ROLE_URGENT_CARE && session->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "replica: the session has no known role");
    size_t ulen = strnlen(session->user, sizeof session->user);
    if (ulen == 0 || ulen > CRY_USER_MAX)
        return cmc_fail(CMC_ERR_USAGE, "replica: the session has no valid user name");

    s = cmc_calloc(1, sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    memcpy(s->session.user, session->user, ulen);
    s->session.user[ulen] = '\0';
    s->session.role = session->role;
    if ((rc = db_open(path, key, &s->db)) != CMC_OK)
        goto out;
    if ((rc = db_migrate(s->db, schema_steps, STORE_SCHEMA_VERSION, NULL)) != CMC_OK)
        goto out;
    /* A snapshot interrupted while its indexes were set aside leaves them missing: lookups
     * must never wait for the next sync to be fast again. */
    if ((rc = db_exec(s->db, secondary_indexes_sql)) != CMC_OK)
        goto out;
    *out = s;
    s = NULL;
out:
    store_close(s);
    return rc;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->in_batch)
        db_rollback(s->db);
    stmt_cache_clear(s);
    db_close(s->db);
    cmc_free(s);
}

const struct store_session *store_session_of(const store *s)
{
    return &s->session;
}

int store_stmt_get(store *s, const char *sql, sqlite3_stmt **out)
{
    return stmt_get(s, sql, out);
}

void store_stmt_put(store *s, sqlite3_stmt *st)
{
    stmt_put(s, st);
}

sqlite3 *store_test_db(store *s)
{
    return s->db;
}

/* For agent/store_sync.c, the sync engine's bookkeeping on the same connection. */
sqlite3 *store_db(store *s)
{
    return s->db;
}

/* ---- transactions ---------------------------------------------------------------------- */

/* Every multi-statement write is one unit: its own transaction outside a batch, a savepoint
 * inside one (so a refused op leaves the batch as it was). */
/* A statement without bindings or rows, prepared once per handle (savepoints are run for
 * every op of a bundle). */
static int exec_cached(store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, sql, &st);
    if (rc == CMC_OK)
        rc = step_done(s, st);
    stmt_put(s, st);
    return rc;
}

static int op_begin(store *s)
{
    if (s->in_batch)
        return exec_cached(s, "SAVEPOINT store_op");
    return db_begin(s->db);
}

static int op_end(store *s, int rc)
{
    if (rc == CMC_OK) {
        if (s->in_batch)
            return exec_cached(s, "RELEASE store_op");
        return db_commit(s->db);
    }
    /* Keep the op's error detail, not the cleanup's. */
    if (s->in_batch) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK TO store_op; RELEASE store_op", NULL, NULL, NULL);
    } else {
        db_rollback(s->db);
    }
    return rc;
}

int store_batch_begin(store *s)
{
    if (s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: a batch is already open");
    int rc = db_begin(s->db);
    if (rc == CMC_OK)
        s->in_batch = 1;
    return rc;
}

int store_batch_commit(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: no batch is open");
    s->in_batch = 0;
    /* SQLite rolls a transaction back by itself after some errors (disk full, I/O); the
     * batch is then gone and must not be reported as committed. */
    if (sqlite3_get_autocommit(s->db))
        return cmc_fail(CMC_ERR_DB, "replica: the batch was rolled back after an error");
    return db_commit(s->db);
}

void store_batch_rollback(store *s)
{
    if (s == NULL || !s->in_batch)
        return;
    db_rollback(s->db);
    s->in_batch = 0;
}

int store_checkpoint(store *s)
{
    if (s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: checkpoint inside an open batch");
    return db_checkpoint_truncate(s->db);
}

/* ---- integrity ------------------------------------------------------------------------- */

int store_verify(store *s)
{
    sqlite3_stmt *st = NULL;
    struct plan p;
    int rc, has_row = 0;
    int64_t rows = 0;

    plan_init(&p);
    if ((rc = db_cipher_integrity_check(s->db)) != CMC_OK)
        goto out;
    if ((rc = stmt_get(s, "PRAGMA foreign_key_check", &st)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: table %s has a row without its parent",
                      col_text(st, 0) != NULL ? col_text(st, 0) : "?");
        goto out;
    }
    stmt_put(s, st);
    st = NULL;
    if ((rc = stmt_get(s,
                       "SELECT " PLAN_COLS ", " ID_COLS " FROM plan_versions v"
                       " LEFT JOIN plan_identity i ON i.version_id = v.id ORDER BY v.id",
                       &st)) != CMC_OK)
        goto out;
    for (;;) {
        int match = 0;
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        if ((rc = row_plan(st, 0, &p)) != CMC_OK)
            break;
        rc = identity_matches(st, 5, &p, &match);
        plan_free(&p);
        if (rc != CMC_OK)
            break;
        if (!match) {
            rc = cmc_fail(CMC_ERR_TAMPERED,
                          "replica: plan %s: identity index does not match the plan",
                          safe_id(col_text(st, 0)));
            break;
        }
        rows++;
    }
    if (rc != CMC_OK)
        goto out;
    stmt_put(s, st);
    st = NULL;
    /* Index rows must each belong to a version of the same plan. */
    int64_t orphans = 0;
    rc = query_int(s,
                   "SELECT count(*) FROM plan_identity i LEFT JOIN plan_versions v"
                   " ON v.id = i.version_id"
                   " WHERE v.id IS NULL OR v.plan_id <> i.plan_id OR v.nhs_number <> i.nhs_number",
                   NULL, &orphans, NULL);
    if (rc == CMC_OK && orphans > 0)
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: %" PRId64 " identity index rows match no plan",
                      orphans);
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_DEBUG, "replica verified: %" PRId64 " plan versions", rows);
out:
    stmt_put(s, st);
    plan_free(&p);
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------- */

/* A key is a plan id (36 characters) or an NHS number (spaces allowed). */
static int parse_key(const char *key, int *is_plan_id, char nhs[PLAN_NHS_LEN + 1])
{
    if (key == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: no plan id or NHS number given");
    if (strlen(key) == PLAN_ID_LEN) {
        if (!plan_uuid_valid(key))
            return cmc_fail(CMC_ERR_INVALID, "plan id: not a lower-case UUID");
        *is_plan_id = 1;
        return CMC_OK;
    }
    *is_plan_id = 0;
    return plan_nhs_normalise(key, nhs);
}

static int get_with(store *s, int q, const char *key, struct plan *out)
{
    sqlite3_stmt *st = NULL;
    char nhs[PLAN_NHS_LEN + 1] = {0};
    int is_plan_id = 0, has_row = 0;
    int rc;

    plan_init(out);
    if ((rc = parse_key(key, &is_plan_id, nhs)) != CMC_OK)
        return rc;
    if ((rc = stmt_get(s, is_plan_id ? sql_get_by_id[q] : sql_get_by_nhs[q], &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, is_plan_id ? key : nhs)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (!has_row) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan on this device for that %s",
                      is_plan_id ? "plan id" : "NHS number");
        goto out;
    }
    rc = row_plan(st, q == Q_PUBLISHED, out);
out:
    stmt_put(s, st);
    return rc;
}

int store_plan_get(store *s, const char *key, struct plan *out)
{
    return get_with(s, query_index(s), key, out);
}

int store_plan_get_published(store *s, const char *key, struct plan *out)
{
    return get_with(s, Q_PUBLISHED, key, out);
}

static void hit_free(struct store_hit *h)
{
    cmc_free(h->given_name);
    cmc_free(h->family_name);
    cmc_free(h->date_of_birth);
    cmc_free(h->postcode);
    cmc_free(h->address);
    memset(h, 0, sizeof *h);
}

void store_hits_free(struct store_hit *hits, size_t n)
{
    if (hits == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        hit_free(&hits[i]);
    cmc_free(hits);
}

static int hit_from_plan(const struct plan *p, struct store_hit *h)
{
    int rc;
    memset(h, 0, sizeof *h);
    copy_bounded(h->plan_id, sizeof h->plan_id, p->plan_id);
    copy_bounded(h->nhs_number, sizeof h->nhs_number, p->nhs_number);
    h->status = p->status;
    h->version = p->version;
    if ((rc = dup_opt(p->patient.given_name, &h->given_name)) != CMC_OK ||
        (rc = dup_opt(p->patient.family_name, &h->family_name)) != CMC_OK ||
        (rc = dup_opt(p->patient.date_of_birth, &h->date_of_birth)) != CMC_OK ||
        (rc = dup_opt(p->patient.postcode, &h->postcode)) != CMC_OK ||
        (rc = dup_opt(p->patient.address, &h->address)) != CMC_OK)
        hit_free(h);
    return rc;
}

/* Steps a prepared search/list statement (PLAN_COLS then ID_COLS) and collects up to
 * `limit` checked hits. */
static int collect_hits(store *s, sqlite3_stmt *st, int q, size_t limit, struct store_hit **out,
                        size_t *n)
{
    struct store_hit *hits = NULL;
    size_t count = 0, cap = 0;
    struct plan p;
    int rc = CMC_OK, has_row = 0;

    plan_init(&p);
    while (count < limit) {
        int match = 0;
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        rc = row_plan(st, q == Q_PUBLISHED, &p);
        if (rc == CMC_OK && (rc = identity_matches(st, 5, &p, &match)) == CMC_OK && !match)
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: plan %s: identity index does not match",
                          safe_id(p.plan_id));
        if (rc == CMC_ERR_TAMPERED) {
            log_skipped();
            plan_free(&p);
            rc = CMC_OK;
            continue;
        }
        if (rc != CMC_OK)
            break;
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            struct store_hit *nh = cmc_realloc(hits, ncap * sizeof *nh);
            if (nh == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
                break;
            }
            hits = nh;
            cap = ncap;
        }
        if ((rc = hit_from_plan(&p, &hits[count])) != CMC_OK)
            break;
        count++;
        plan_free(&p);
    }
    plan_free(&p);
    if (rc != CMC_OK) {
        store_hits_free(hits, count);
        return rc;
    }
    *out = hits;
    *n = count;
    return CMC_OK;
}

int store_search(store *s, const struct store_query *q, size_t limit, struct store_hit **out,
                 size_t *n)
{
    sqlite3_stmt *st = NULL;
    char *whole = NULL, *first = NULL, *rest = NULL, *postcode = NULL;
    int rc = CMC_OK;
    int qi = query_index(s);

    *out = NULL;
    *n = 0;
    if (q == NULL || (q->name == NULL && q->date_of_birth == NULL && q->postcode == NULL))
        return cmc_fail(CMC_ERR_USAGE, "search: give a name, a date of birth or a postcode");
    if (q->date_of_birth != NULL) {
        int64_t t;
        if (strlen(q->date_of_birth) != 10 || plat_parse_time(q->date_of_birth, &t) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "search: date of birth must be YYYY-MM-DD");
    }
    if (q->name != NULL) {
        size_t len = strlen(q->name);
        whole = cmc_malloc(len + 1);
        first = cmc_malloc(len + 1);
        rest = cmc_malloc(len + 1);
        if (whole == NULL || first == NULL || rest == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
            goto out;
        }
        store_name_normalise(q->name, whole);
        if (whole[0] == '\0') {
            rc = cmc_fail(CMC_ERR_INVALID, "search: the name has no letters");
            goto out;
        }
        /* First word (as typed, up to a space) and the rest: "given family". */
        const char *sp = strchr(q->name, ' ');
        while (sp != NULL && sp[1] == ' ')
            sp++;
        if (sp != NULL) {
            char *word = cmc_strndup(q->name, (size_t)(sp - q->name));
            if (word == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
                goto out;
            }
            store_name_normalise(word, first);
            cmc_free(word);
            store_name_normalise(sp + 1, rest);
        } else {
            first[0] = rest[0] = '\0';
        }
    }
    if (q->postcode != NULL) {
        postcode = cmc_malloc(strlen(q->postcode) + 1);
        if (postcode == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
            goto out;
        }
        store_postcode_normalise(q->postcode, postcode);
        if (postcode[0] == '\0') {
            rc = cmc_fail(CMC_ERR_INVALID, "search: the postcode is empty");
            goto out;
        }
    }
    if ((rc = stmt_get(s, sql_search[qi], &st)) != CMC_OK)
        goto out;
    int two_words = first != NULL && first[0] != '\0' && rest[0] != '\0';
    if ((rc = bind_text(s, st, 1, q->date_of_birth)) != CMC_OK ||
        (rc = bind_text(s, st, 2, postcode)) != CMC_OK ||
        (rc = bind_text(s, st, 3, whole)) != CMC_OK ||
        (rc = bind_text(s, st, 4, two_words ? first : NULL)) != CMC_OK ||
        (rc = bind_text(s, st, 5, two_words ? rest : NULL)) != CMC_OK)
        goto out;
    rc = collect_hits(s, st, qi, limit, out, n);
out:
    stmt_put(s, st);
    cmc_free(whole);
    cmc_free(first);
    cmc_free(rest);
    cmc_free(postcode);
    return rc;
}

int store_list(store *s, struct store_hit **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int qi = query_index(s);
    *out = NULL;
    *n = 0;
    int rc = stmt_get(s, sql_list[qi], &st);
    if (rc == CMC_OK)
        rc = collect_hits(s, st, qi, SIZE_MAX, out, n);
    stmt_put(s, st);
    return rc;
}

/* Counts the plans a fixed statement yields whose rows pass their check; *not_published
 * (may be NULL) counts those among them whose version is not published. */
static int count_checked(store *s, const char *sql, int require_published, int64_t *ok,
                         int64_t *not_published)
{
    sqlite3_stmt *st = NULL;
    struct plan p;
    int rc, has_row = 0;

    plan_init(&p);
    *ok = 0;
    if (not_published != NULL)
        *not_published = 0;
    if ((rc = stmt_get(s, sql, &st)) != CMC_OK)
        goto out;
    for (;;) {
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        rc = row_plan(st, require_published, &p);
        if (rc == CMC_ERR_TAMPERED) {
            log_skipped();
            rc = CMC_OK;
            continue;
        }
        if (rc != CMC_OK)
            break;
        (*ok)++;
        if (not_published != NULL && p.status != PLAN_STATUS_PUBLISHED)
            (*not_published)++;
        plan_free(&p);
    }
out:
    plan_free(&p);
    stmt_put(s, st);
    return rc;
}

int store_counts_get(store *s, struct store_counts *out)
{
    static const char *const visible_sql[2] = {
        "SELECT " PLAN_COLS " FROM " FROM_PUBLISHED " WHERE " WHERE_PUBLISHED,
        "SELECT " PLAN_COLS " FROM " FROM_CLINICIAN " WHERE " WHERE_CLINICIAN,
    };
    int qi = query_index(s);
    int rc;

    memset(out, 0, sizeof *out);
    if (qi == Q_CLINICIAN) {
        if ((rc = count_checked(s, visible_sql[Q_CLINICIAN], 0, &out->visible, &out->drafts)) !=
            CMC_OK)
            return rc;
        if ((rc = count_checked(s, visible_sql[Q_PUBLISHED], 1, &out->published, NULL)) != CMC_OK)
            return rc;
    } else {
        /* Urgent care is not told that drafts exist: drafts stays 0. */
        if ((rc = count_checked(s, visible_sql[Q_PUBLISHED], 1, &out->visible, NULL)) != CMC_OK)
            return rc;
        out->published = out->visible;
    }
    if ((rc = query_int(s, "SELECT count(*) FROM pending_edits", NULL, &out->pending, NULL)) !=
            CMC_OK ||
        /* plans whose edits the sync engine holds for a three-way merge decision, plus
         * field conflicts recorded through store_conflict_add */
        (rc = query_int(s, "SELECT (SELECT count(*) FROM merges) + (SELECT count(*) FROM conflicts)", NULL,
                        &out->conflicts, NULL)) !=
            CMC_OK ||
        (rc = query_int(s, "SELECT count(*) FROM tombstones", NULL, &out->tombstones, NULL)) !=
            CMC_OK)
        return rc;
    return CMC_OK;
}

int store_plan_received_at(store *s, const char *plan_id, int64_t version, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc = stmt_get(s,
                      "SELECT received_at FROM plan_versions WHERE plan_id = ?1 AND version = ?2",
                      &st);
    *out = 0;
    if (rc != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK || (rc = bind_int(s, st, 2, version)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (!has_row) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: plan %s version %" PRId64 " is not held",
                      safe_id(plan_id), version);
        goto out;
    }
    int64_t age = plat_wall_now() - sqlite3_column_int64(st, 0);
    *out = age > 0 ? age : 0; /* a clock set back must not show a copy from the future */
out:
    stmt_put(s, st);
    return rc;
}

/* ---- sync state ------------------------------------------------------------------------ */

int store_state_get(store *s, const char *key, char **out)
{
    sqlite3_stmt *st = NULL;
    int has_row = 0;
    int rc;
    *out = NULL;
    if (key == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: no state key");
    if ((rc = stmt_get(s, "SELECT value FROM sync_state WHERE key = ?1", &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, key)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (!has_row) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "replica: sync state %s is not set", key);
        goto out;
    }
    const char *v = col_text(st, 0);
    rc = dup_opt(v != NULL ? v : "", out);
out:
    stmt_put(s, st);
    return rc;
}

int store_state_get_int(store *s, const char *key, int64_t *out)
{
    char *v = NULL, *end = NULL;
    *out = 0;
    int rc = store_state_get(s, key, &v);
    if (rc != CMC_OK)
        return rc;
    long long x = strtoll(v, &end, 10);
    if (v[0] == '\0' || end == NULL || *end != '\0')
        rc = cmc_fail(CMC_ERR_CORRUPT, "replica: sync state %s is not a number", key);
    else
        *out = (int64_t)x;
    cmc_free(v);
    return rc;
}

int store_state_set(store *s, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (key == NULL || key[0] == '\0' || value == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: state key and value are required");
    if ((rc = stmt_get(s,
                       "INSERT INTO sync_state (key, value) VALUES (?1, ?2)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, key)) != CMC_OK || (rc = bind_text(s, st, 2, value)) != CMC_OK)
        goto out;
    rc = step_done(s, st);
out:
    stmt_put(s, st);
    return rc;
}

int store_state_set_int(store *s, const char *key, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return store_state_set(s, key, buf);
}

/* ---- writes ---------------------------------------------------------------------------- */

/* May this store hold drafts? Not on a device the hub enrolled for urgent care: the hub
 * never sends it one, so a draft arriving there is refused rather than kept. Elsewhere
 * (clinician devices, a replica not yet enrolled) they are stored, and the published-only
 * rule still holds at read time for every urgent-care session. */
static int drafts_allowed(store *s, int *allowed)
{
    char *role = NULL;
    *allowed = 1;
    int rc = store_state_get(s, STORE_STATE_DEVICE_ROLE, &role);
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        return CMC_OK;
    }
    if (rc != CMC_OK)
        return rc;
    *allowed = store_role_from_name(role) != STORE_ROLE_URGENT_CARE;
    cmc_free(role);
    return CMC_OK;
}

/* CMC_ERR_STATE when a tombstone at or after change_seq forbids bringing the plan back. */
static int check_tombstone(store *s, const char *plan_id, int64_t change_seq)
{
    int64_t purged_seq = 0;
    int found = 0;
    int rc = query_int(s, "SELECT change_seq FROM tombstones WHERE plan_id = ?1", plan_id,
                       &purged_seq, &found);
    if (rc != CMC_OK)
        return rc;
    if (found && purged_seq >= change_seq)
        return cmc_fail(CMC_ERR_STATE,
                        "replica: plan %s was purged at change %" PRId64
                        "; refusing change %" PRId64 " (a replayed old update)",
                        safe_id(plan_id), purged_seq, change_seq);
    return CMC_OK;
}

/* `packed`: the plan's encoding when the caller has it (and plan_unpack validated the plan
 * from it); NULL: validate the plan and encode it here. */
static int put_version(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                       int64_t change_seq)
{
    sqlite3_stmt *st = NULL;
    uint8_t *body = NULL;
    size_t body_len = 0;
    struct identity id;
    int rc, allowed = 0, in_op = 0;
    const char *status;

    memset(&id, 0, sizeof id);
    if (p == NULL)
        return cmc_fail(CMC_ERR_USAGE, "replica: no plan to store");
    if (packed == NULL && (rc = plan_validate(p, PLAN_CHECK_DRAFT)) != CMC_OK)
        return rc;
    status = plan_status_name(p->status);
    if (status == NULL || p->version <= 0 || !plan_uuid_valid(p->plan_id))
        return cmc_fail(CMC_ERR_INVALID,
                        "replica: a stored plan needs a plan id, a status and a version");
    if (p->status != PLAN_STATUS_PUBLISHED) {
        if ((rc = drafts_allowed(s, &allowed)) != CMC_OK)
            return rc;
        if (!allowed)
            return cmc_fail(CMC_ERR_DENIED,
                            "replica: plan %s: this urgent-care device holds published "
                            "plans only",
                            p->plan_id);
    }
    if (packed == NULL && (rc = plan_pack(p, &body, &body_len)) != CMC_OK)
        goto out;
    if ((rc = identity_of(p, &id)) != CMC_OK)
        goto out;
    if ((rc = op_begin(s)) != CMC_OK)
        goto out;
    in_op = 1;
    if ((rc = check_tombstone(s, p->plan_id, change_seq)) != CMC_OK)
        goto out;
    /* Replacing a version: the cascade removes its index row with it. */
    if ((rc = stmt_get(s, "DELETE FROM plan_versions WHERE plan_id = ?1 AND version = ?2",
                         &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, p->plan_id)) != CMC_OK ||
        (rc = bind_int(s, st, 2, p->version)) != CMC_OK || (rc = step_done(s, st)) != CMC_OK)
        goto out;
    stmt_put(s, st);
    st = NULL;
    if ((rc = stmt_get(s,
                       "INSERT INTO plan_versions (plan_id, version, status, nhs_number,"
                       " change_seq, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, p->plan_id)) != CMC_OK ||
        (rc = bind_int(s, st, 2, p->version)) != CMC_OK ||
        (rc = bind_text(s, st, 3, status)) != CMC_OK ||
        (rc = bind_text(s, st, 4, p->nhs_number)) != CMC_OK ||
        (rc = bind_int(s, st, 5, change_seq)) != CMC_OK ||
        (rc = bind_int(s, st, 6, plat_wall_now())) != CMC_OK ||
        (rc = bind_blob(s, st, 7, packed != NULL ? packed : body,
                        packed != NULL ? packed_len : body_len)) != CMC_OK ||
        (rc = step_done(s, st)) != CMC_OK)
        goto out;
    int64_t version_id = sqlite3_last_insert_rowid(s->db);
    stmt_put(s, st);
    st = NULL;
    if ((rc = stmt_get(s,
                       "INSERT INTO plan_identity (version_id, plan_id, nhs_number, family_name,"
                       " given_name, date_of_birth, postcode, postcode_outward)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_int(s, st, 1, version_id)) != CMC_OK ||
        (rc = bind_text(s, st, 2, p->plan_id)) != CMC_OK ||
        (rc = bind_text(s, st, 3, p->nhs_number)) != CMC_OK ||
        (rc = bind_text(s, st, 4, id.family)) != CMC_OK ||
        (rc = bind_text(s, st, 5, id.given)) != CMC_OK ||
        (rc = bind_text(s, st, 6, p->patient.date_of_birth)) != CMC_OK ||
        (rc = bind_text(s, st, 7, id.postcode)) != CMC_OK ||
        (rc = bind_text(s, st, 8, id.outward)) != CMC_OK || (rc = step_done(s, st)) != CMC_OK)
        goto out;
out:
    stmt_put(s, st);
    if (in_op)
        rc = op_end(s, rc);
    identity_free(&id);
    cmc_free(body);
    return rc;
}

int store_put_version(store *s, const struct plan *p, int64_t change_seq)
{
    return put_version(s, p, NULL, 0, change_seq);
}

int store_put_packed(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                     int64_t change_seq)
{
    if (packed == NULL || packed_len == 0)
        return cmc_fail(CMC_ERR_USAGE, "replica: no encoding to store");
    return put_version(s, p, packed, packed_len, change_seq);
}

/* Runs `sql` with the plan id as ?1. */
static int exec_for_plan(store *s, const char *sql, const char *plan_id)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, sql, &st);
    if (rc == CMC_OK && (rc = bind_text(s, st, 1, plan_id)) == CMC_OK)
        rc = step_done(s, st);
    stmt_put(s, st);
    return rc;
}

int store_purge(store *s, const char *plan_id, const char *reason, int64_t change_seq,
                int *discarded)
{
    sqlite3_stmt *st = NULL;
    uint8_t nhs_hash[CRY_HASH_BYTES];
    int have_hash = 0, in_op = 0, has_row = 0;
    int64_t pending = 0;
    int rc;

    if (discarded != NULL)
        *discarded = 0;
    if (!plan_uuid_valid(plan_id))
        return cmc_fail(CMC_ERR_INVALID, "purge: plan id is not a lower-case UUID");
    if (reason == NULL || reason[0] == '\0' || strlen(reason) > 64)
        return cmc_fail(CMC_ERR_INVALID, "purge: a reason of 1 to 64 bytes is required");
    if ((rc = op_begin(s)) != CMC_OK)
        return rc;
    in_op = 1;
    /* The tombstone keeps a hash of the NHS number, never the number. */
    if ((rc = stmt_get(s, "SELECT nhs_number FROM plan_versions WHERE plan_id = ?1 LIMIT 1",
                         &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK ||
        (rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row && col_text(st, 0) != NULL) {
        const char *nhs = col_text(st, 0);
        cry_hash(nhs_hash, nhs, strlen(nhs));
        have_hash = 1;
    }
    stmt_put(s, st);
    st = NULL;
    if ((rc = query_int(s, "SELECT count(*) FROM pending_edits WHERE plan_id = ?1", plan_id,
                        &pending, NULL)) != CMC_OK)
        goto out;
    if ((rc = exec_for_plan(s, "DELETE FROM pending_edits WHERE plan_id = ?1", plan_id)) != CMC_OK ||
        (rc = exec_for_plan(s, "DELETE FROM conflicts WHERE plan_id = ?1", plan_id)) != CMC_OK ||
        (rc = exec_for_plan(s, "DELETE FROM merges WHERE plan_id = ?1", plan_id)) != CMC_OK ||
        (rc = exec_for_plan(s, "DELETE FROM plan_identity WHERE plan_id = ?1", plan_id)) != CMC_OK ||
        (rc = exec_for_plan(s, "DELETE FROM plan_versions WHERE plan_id = ?1", plan_id)) != CMC_OK)
        goto out;
    /* A later purge of the same plan moves the tombstone forward; an older one leaves it. */
    if ((rc = stmt_get(s,
                       "INSERT INTO tombstones (plan_id, nhs_hash, reason, change_seq, purged_at)"
                       " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (plan_id) DO UPDATE SET"
                       " nhs_hash = coalesce(excluded.nhs_hash, nhs_hash),"
                       " reason = CASE WHEN excluded.change_seq >= change_seq"
                       "   THEN excluded.reason ELSE reason END,"
                       " purged_at = CASE WHEN excluded.change_seq >= change_seq"
                       "   THEN excluded.purged_at ELSE purged_at END,"
                       " change_seq = max(change_seq, excluded.change_seq)",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK ||
        (rc = bind_blob(s, st, 2, have_hash ? nhs_hash : NULL, sizeof nhs_hash)) != CMC_OK ||
        (rc = bind_text(s, st, 3, reason)) != CMC_OK ||
        (rc = bind_int(s, st, 4, change_seq)) != CMC_OK ||
        (rc = bind_int(s, st, 5, plat_wall_now())) != CMC_OK || (rc = step_done(s, st)) != CMC_OK)
        goto out;
out:
    stmt_put(s, st);
    if (in_op)
        rc = op_end(s, rc);
    if (rc == CMC_OK) {
        if (discarded != NULL)
            *discarded = (int)pending;
        plat_log(PLAT_LOG_INFO, "replica: purged plan %s (%s), %" PRId64 " pending edits discarded",
                 plan_id, reason, pending);
    }
    return rc;
}

/* ---- pending local edits --------------------------------------------------------------- */

static int require_clinician(const store *s, const char *what)
{
    if (s->session.role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "%s: only a clinician may do this", what);
    return CMC_OK;
}

int store_pending_add(store *s, const char *plan_id, int64_t base_version, const uint8_t *change,
                      size_t change_len, struct store_pending *out_meta)
{
    sqlite3_stmt *st = NULL;
    struct store_pending meta;
    int found = 0;
    int rc;

    memset(&meta, 0, sizeof meta);
    if ((rc = require_clinician(s, "pending edit")) != CMC_OK)
        return rc;
    if (!plan_uuid_valid(plan_id))
        return cmc_fail(CMC_ERR_INVALID, "pending edit: plan id is not a lower-case UUID");
    if (change == NULL || change_len == 0)
        return cmc_fail(CMC_ERR_INVALID, "pending edit: the change is empty");
    if (change_len > PLAN_MAX_ENCODED)
        return cmc_fail(CMC_ERR_TOO_LARGE, "pending edit: the change is larger than %d bytes",
                        PLAN_MAX_ENCODED);
    if ((rc = stmt_get(s, "SELECT 1 FROM plan_versions WHERE plan_id = ?1 AND version = ?2",
                         &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK ||
        (rc = bind_int(s, st, 2, base_version)) != CMC_OK ||
        (rc = db_step(s->db, st, &found)) != CMC_OK)
        goto out;
    if (!found) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "pending edit: plan %s version %" PRId64 " is not held",
                      plan_id, base_version);
        goto out;
    }
    stmt_put(s, st);
    st = NULL;
    plan_uuid_new(meta.idempotency_id);
    copy_bounded(meta.plan_id, sizeof meta.plan_id, plan_id);
    copy_bounded(meta.user, sizeof meta.user, s->session.user);
    meta.base_version = base_version;
    meta.created_at = plat_wall_now();
    meta.state = 0;
    if ((rc = stmt_get(s,
                       "INSERT INTO pending_edits (plan_id, base_version, idempotency_id, user,"
                       " created_at, change, state, base)"
                       " SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, body FROM plan_versions"
                       " WHERE plan_id = ?1 AND version = ?2",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, meta.plan_id)) != CMC_OK ||
        (rc = bind_int(s, st, 2, base_version)) != CMC_OK ||
        (rc = bind_text(s, st, 3, meta.idempotency_id)) != CMC_OK ||
        (rc = bind_text(s, st, 4, meta.user)) != CMC_OK ||
        (rc = bind_int(s, st, 5, meta.created_at)) != CMC_OK ||
        (rc = bind_blob(s, st, 6, change, change_len)) != CMC_OK || (rc = step_done(s, st)) != CMC_OK)
        goto out;
    meta.id = sqlite3_last_insert_rowid(s->db);
    if (out_meta != NULL)
        *out_meta = meta;
out:
    stmt_put(s, st);
    return rc;
}

void store_pending_free(struct store_pending *p, size_t n)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cmc_free(p[i].change);
    cmc_free(p);
}

int store_pending_list(store *s, const char *plan_id, struct store_pending **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = require_clinician(s, "pending edits");
    if (rc != CMC_OK)
        return rc;
    return store_sync_pending_list(s, plan_id, out, n);
}

int store_sync_pending_list(store *s, const char *plan_id, struct store_pending **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct store_pending *items = NULL;
    size_t count = 0, cap = 0;
    int rc, has_row = 0;

    *out = NULL;
    *n = 0;
    if ((rc = stmt_get(s,
                       "SELECT id, plan_id, base_version, idempotency_id, user, created_at,"
                       " change, state FROM pending_edits"
                       " WHERE ?1 IS NULL OR plan_id = ?1 ORDER BY id",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK)
        goto out;
    for (;;) {
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        if (count == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            struct store_pending *ni = cmc_realloc(items, ncap * sizeof *ni);
            if (ni == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
                break;
            }
            items = ni;
            cap = ncap;
        }
        struct store_pending *e = &items[count];
        memset(e, 0, sizeof *e);
        e->id = sqlite3_column_int64(st, 0);
        copy_bounded(e->plan_id, sizeof e->plan_id, col_text(st, 1));
        e->base_version = sqlite3_column_int64(st, 2);
        copy_bounded(e->idempotency_id, sizeof e->idempotency_id, col_text(st, 3));
        copy_bounded(e->user, sizeof e->user, col_text(st, 4));
        e->created_at = sqlite3_column_int64(st, 5);
        e->state = sqlite3_column_int(st, 7);
        const void *b = sqlite3_column_blob(st, 6);
        size_t blen = (size_t)sqlite3_column_bytes(st, 6);
        count++;
        if ((rc = dup_blob(b, blen, &e->change, &e->change_len)) != CMC_OK)
            break;
    }
out:
    stmt_put(s, st);
    if (rc != CMC_OK) {
        store_pending_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return CMC_OK;
}

/* Runs a one-row change by id; CMC_ERR_NOT_FOUND when it touched nothing. */
static int change_by_id(store *s, const char *sql, int64_t id, int has_second, int64_t second,
                        const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_get(s, sql, &st);
    if (rc != CMC_OK)
        goto out;
    if ((rc = bind_int(s, st, 1, id)) != CMC_OK)
        goto out;
    if (has_second && (rc = bind_int(s, st, 2, second)) != CMC_OK)
        goto out;
    if ((rc = step_done(s, st)) != CMC_OK)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "%s %" PRId64 " does not exist", what, id);
out:
    stmt_put(s, st);
    return rc;
}

int store_pending_delete(store *s, int64_t id)
{
    int rc = require_clinician(s, "pending edit");
    if (rc != CMC_OK)
        return rc;
    return change_by_id(s, "DELETE FROM pending_edits WHERE id = ?1", id, 0, 0, "pending edit");
}

int store_pending_set_state(store *s, int64_t id, int state)
{
    if (state < 0 || state > 2)
        return cmc_fail(CMC_ERR_INVALID, "pending edit: state must be 0, 1 or 2");
    return change_by_id(s, "UPDATE pending_edits SET state = ?2 WHERE id = ?1", id, 1, state,
                        "pending edit");
}

/* ---- conflicts ------------------------------------------------------------------------- */

int store_conflict_add(store *s, const struct store_conflict *c, int64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (id_out != NULL)
        *id_out = 0;
    if (c == NULL || !plan_uuid_valid(c->plan_id) || c->field_path == NULL || c->field_path[0] == '\0' ||
        strlen(c->field_path) > PLAN_MAX_SHORT)
        return cmc_fail(CMC_ERR_INVALID, "conflict: a plan id and a field path are required");
    if ((rc = stmt_get(s,
                       "INSERT INTO conflicts (plan_id, field_path, pending_id, base_value,"
                       " local_value, remote_value, created_at)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (plan_id, field_path)"
                       " DO UPDATE SET pending_id = excluded.pending_id,"
                       " base_value = excluded.base_value, local_value = excluded.local_value,"
                       " remote_value = excluded.remote_value, created_at = excluded.created_at",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, c->plan_id)) != CMC_OK ||
        (rc = bind_text(s, st, 2, c->field_path)) != CMC_OK ||
        (rc = c->pending_id > 0 ? bind_int(s, st, 3, c->pending_id)
                                : db_error(s->db, sqlite3_bind_null(st, 3), "binding")) != CMC_OK ||
        (rc = bind_blob(s, st, 4, c->base, c->base_len)) != CMC_OK ||
        (rc = bind_blob(s, st, 5, c->local, c->local_len)) != CMC_OK ||
        (rc = bind_blob(s, st, 6, c->remote, c->remote_len)) != CMC_OK ||
        (rc = bind_int(s, st, 7, c->created_at > 0 ? c->created_at : plat_wall_now())) != CMC_OK ||
        (rc = step_done(s, st)) != CMC_OK)
        goto out;
    stmt_put(s, st);
    st = NULL;
    if (id_out != NULL) {
        /* An upsert that updated reports no new rowid: look the row up. */
        sqlite3_stmt *q = NULL;
        int has_row = 0;
        if ((rc = stmt_get(s,
                           "SELECT id FROM conflicts WHERE plan_id = ?1 AND field_path = ?2",
                           &q)) == CMC_OK &&
            (rc = bind_text(s, q, 1, c->plan_id)) == CMC_OK &&
            (rc = bind_text(s, q, 2, c->field_path)) == CMC_OK &&
            (rc = db_step(s->db, q, &has_row)) == CMC_OK && has_row)
            *id_out = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
out:
    stmt_put(s, st);
    return rc;
}

void store_conflicts_free(struct store_conflict *c, size_t n)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        cmc_free(c[i].field_path);
        cmc_free(c[i].base);
        cmc_free(c[i].local);
        cmc_free(c[i].remote);
    }
    cmc_free(c);
}

int store_conflict_list(store *s, const char *plan_id, struct store_conflict **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct store_conflict *items = NULL;
    size_t count = 0, cap = 0;
    int rc, has_row = 0;

    *out = NULL;
    *n = 0;
    if ((rc = require_clinician(s, "conflicts")) != CMC_OK)
        return rc;
    if ((rc = stmt_get(s,
                       "SELECT id, plan_id, field_path, coalesce(pending_id, 0), base_value,"
                       " local_value, remote_value, created_at FROM conflicts"
                       " WHERE ?1 IS NULL OR plan_id = ?1 ORDER BY id",
                       &st)) != CMC_OK)
        goto out;
    if ((rc = bind_text(s, st, 1, plan_id)) != CMC_OK)
        goto out;
    for (;;) {
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        if (count == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            struct store_conflict *ni = cmc_realloc(items, ncap * sizeof *ni);
            if (ni == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
                break;
            }
            items = ni;
            cap = ncap;
        }
        struct store_conflict *e = &items[count++];
        memset(e, 0, sizeof *e);
        e->id = sqlite3_column_int64(st, 0);
        copy_bounded(e->plan_id, sizeof e->plan_id, col_text(st, 1));
        e->pending_id = sqlite3_column_int64(st, 3);
        e->created_at = sqlite3_column_int64(st, 7);
        const void *b;
        if ((rc = dup_opt(col_text(st, 2), &e->field_path)) != CMC_OK)
            break;
        b = sqlite3_column_blob(st, 4);
        if ((rc = dup_blob(b, (size_t)sqlite3_column_bytes(st, 4), &e->base, &e->base_len)) != CMC_OK)
            break;
        b = sqlite3_column_blob(st, 5);
        if ((rc = dup_blob(b, (size_t)sqlite3_column_bytes(st, 5), &e->local, &e->local_len)) !=
            CMC_OK)
            break;
        b = sqlite3_column_blob(st, 6);
        if ((rc = dup_blob(b, (size_t)sqlite3_column_bytes(st, 6), &e->remote, &e->remote_len)) !=
            CMC_OK)
            break;
    }
out:
    stmt_put(s, st);
    if (rc != CMC_OK) {
        store_conflicts_free(items, count);
        return rc;
    }
    *out = items;
    *n = count;
    return CMC_OK;
}

int store_conflict_delete(store *s, int64_t id)
{
    int rc = require_clinician(s, "conflict");
    if (rc != CMC_OK)
        return rc;
    return change_by_id(s, "DELETE FROM conflicts WHERE id = ?1", id, 0, 0, "conflict");
}
