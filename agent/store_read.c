/*
 * store_read.c - session-filtered reads and search, counts, and the checks every row passes
 * before anything from it leaves the store (see store.h, store_int.h).
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
#include "agent/store_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- role-fixed statements ------------------------------------------------------------- */

/* Index 0 answers for urgent care (and for "the newest published version" for anyone);
 * index 1 for a clinician. Both texts are constants: the role picks one, nothing else. */
enum { Q_PUBLISHED = 0, Q_CLINICIAN = 1 };

/* The seal column is named, so a compound statement's ORDER BY can name columns. */
#define PLAN_COLS_WITH(seal) "v.plan_id, v.version, v.status, v.nhs_number, v.body, " seal " AS seal"
#define PLAN_COLS PLAN_COLS_WITH("(SELECT s.seal FROM plan_seals s WHERE s.version_id = v.id)")
#define DRAFT_COLS PLAN_COLS_WITH("v.seal")
#define ID_FIRST 6 /* the first of ID_COLS after PLAN_COLS */
#define ID_COLS "i.family_name, i.given_name, i.date_of_birth, i.postcode"
#define FROM_PUBLISHED "urgent_care_plans v"
/* unary +: let the planner use the NHS or id index */
#define WHERE_PUBLISHED "+v.status = 'published'"
#define FROM_CLINICIAN "clinician_plans v"

/* A clinician sees the newest version held: the replica's newest unless the clinical file's
 * table drafts holds a newer one (store_drafts.c), and then that draft. The two branches of
 * each clinician statement exclude each other, so each plan yields one row. Sessions without
 * the clinical file read an empty stand-in drafts table. */
#define WHERE_CLINICIAN                                                                      \
    "NOT EXISTS (SELECT 1 FROM drafts n WHERE n.plan_id = v.plan_id AND n.version > v.version)"
#define FROM_DRAFTS "drafts v CROSS JOIN drafts i ON i.id = v.id"
#define WHERE_DRAFTS                                                                         \
    "v.version = (SELECT max(n.version) FROM drafts n WHERE n.plan_id = v.plan_id)"          \
    " AND v.version > coalesce((SELECT max(q.version) FROM plan_versions q"                  \
    "                           WHERE q.plan_id = v.plan_id), 0)"

#define SQL_GET_BY_ID(from, where) \
    "SELECT " PLAN_COLS " FROM " from " WHERE " where " AND v.plan_id = ?1"
/* Through the identity index to the version row (its rowid); the row's own NHS number must
 * agree too. */
#define SQL_GET_BY_NHS_ROWS(from, where)                                              \
    "SELECT " PLAN_COLS ", v.received_at AS received FROM plan_identity i CROSS JOIN " from \
    " ON v.id = i.version_id WHERE " where " AND i.nhs_number = ?1 AND v.nhs_number = ?1"
#define BY_RECEIVED " ORDER BY received DESC, plan_id LIMIT 1"
#define BY_RECEIVED_V " ORDER BY v.received_at DESC, v.plan_id LIMIT 1"
/* ?1 date of birth, ?2 normalised postcode, ?3 the whole normalised name, ?4 its first
 * word and ?5 the rest (for "given family" or "family given"). */
#define SEARCH_TERMS                                                                      \
    " AND (?1 IS NULL OR i.date_of_birth = ?1)"                                          \
    " AND (?2 IS NULL OR i.postcode = ?2 OR (length(?2) >= length(i.postcode_outward)"  \
    "      AND substr(i.postcode, 1, length(?2)) = ?2))"                                 \
    " AND (?3 IS NULL OR instr(i.family_name, ?3) = 1 OR instr(i.given_name, ?3) = 1"   \
    "      OR (?4 IS NOT NULL AND ((instr(i.given_name, ?4) = 1"                         \
    "                               AND instr(i.family_name, ?5) = 1)"                   \
    "                           OR (instr(i.family_name, ?4) = 1"                        \
    "                               AND instr(i.given_name, ?5) = 1))))"
#define SEARCH_EXACT "(?3 IS NOT NULL AND (i.family_name = ?3 OR i.given_name = ?3))"
#define SQL_SEARCH_ROWS(cols, from, where)                                                \
    "SELECT " cols ", " ID_COLS ", " SEARCH_EXACT " AS exact FROM " from " WHERE " where SEARCH_TERMS
#define SEARCH_ORDER " ORDER BY exact DESC, family_name, given_name, plan_id"
#define SEARCH_ORDER_V " ORDER BY exact DESC, i.family_name, i.given_name, v.plan_id"
#define SQL_LIST_ROWS(from, where)                                           \
    "SELECT " PLAN_COLS ", " ID_COLS " FROM " from                         \
    " LEFT JOIN plan_identity i ON i.version_id = v.id WHERE " where
#define LIST_ORDER " ORDER BY family_name, given_name, plan_id"
#define LIST_ORDER_V " ORDER BY i.family_name, i.given_name, v.plan_id"
#define DRAFT_ROWS(cols) "SELECT " cols " FROM " FROM_DRAFTS " WHERE " WHERE_DRAFTS

static const char *const sql_get_by_id[2] = {
    SQL_GET_BY_ID(FROM_PUBLISHED, WHERE_PUBLISHED),
    "SELECT * FROM (" SQL_GET_BY_ID(FROM_CLINICIAN, WHERE_CLINICIAN) " UNION ALL "
    DRAFT_ROWS(DRAFT_COLS) " AND v.plan_id = ?1)",
};
static const char *const sql_get_by_nhs[2] = {
    SQL_GET_BY_NHS_ROWS(FROM_PUBLISHED, WHERE_PUBLISHED) BY_RECEIVED_V,
    "SELECT * FROM (" SQL_GET_BY_NHS_ROWS(FROM_CLINICIAN, WHERE_CLINICIAN) " UNION ALL "
    DRAFT_ROWS(DRAFT_COLS ", v.received_at") " AND v.nhs_number = ?1)" BY_RECEIVED,
};
static const char *const sql_search[2] = {
    SQL_SEARCH_ROWS(PLAN_COLS, "plan_identity i CROSS JOIN " FROM_PUBLISHED " ON v.id = i.version_id",
                    WHERE_PUBLISHED) SEARCH_ORDER_V,
    "SELECT * FROM ("
    SQL_SEARCH_ROWS(PLAN_COLS, "plan_identity i CROSS JOIN " FROM_CLINICIAN " ON v.id = i.version_id",
                    WHERE_CLINICIAN) " UNION ALL "
    SQL_SEARCH_ROWS(DRAFT_COLS, FROM_DRAFTS, WHERE_DRAFTS) ")" SEARCH_ORDER,
};
static const char *const sql_list[2] = {
    SQL_LIST_ROWS(FROM_PUBLISHED, WHERE_PUBLISHED) LIST_ORDER_V,
    "SELECT * FROM (" SQL_LIST_ROWS(FROM_CLINICIAN, WHERE_CLINICIAN) " UNION ALL "
    DRAFT_ROWS(DRAFT_COLS ", " ID_COLS) ")" LIST_ORDER,
};

static int query_index(const store *s)
{
    return s->session.role == STORE_ROLE_CLINICIAN ? Q_CLINICIAN : Q_PUBLISHED;
}

/* ---- the decode-and-check of every plan row -------------------------------------------- */

/* Decodes the body of a row whose first columns are PLAN_COLS and checks it against the
 * row and the hub's seal. `require_published`: the decoded plan must be published too.
 * CMC_ERR_TAMPERED (the detail names the plan id and what disagreed, or is
 * STORE_INTEGRITY_MSG) when anything does not match. */
static int row_plan(store *s, sqlite3_stmt *st, int require_published, struct plan *out)
{
    const char *plan_id = store_col_text(st, 0);
    int64_t version = sqlite3_column_int64(st, 1);
    const char *status = store_col_text(st, 2);
    const char *nhs = store_col_text(st, 3);
    const void *body = sqlite3_column_blob(st, 4);
    int body_len = sqlite3_column_bytes(st, 4);
    const char *what = NULL;

    plan_init(out);
    if (body == NULL || body_len <= 0)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: plan %s version %" PRId64 " has no body",
                        store_safe_id(plan_id), version);
    int rc = store_seal_check(s, plan_id, version, body, (size_t)body_len,
                              sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5));
    if (rc != CMC_OK)
        return rc;
    /* a later edition's fields kept; text an earlier version let in shown escaped */
    rc = plan_unpack_stored(body, (size_t)body_len, out);
    if (rc == CMC_ERR_NOMEM)
        return rc;
    if (rc != CMC_OK) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", cmc_errmsg());
        return cmc_fail(CMC_ERR_TAMPERED,
                        "replica: plan %s version %" PRId64 ": stored body does not decode (%s)",
                        store_safe_id(plan_id), version, detail);
    }
    if (!store_text_eq(out->plan_id, plan_id) || plan_id == NULL)
        what = "plan id";
    else if (!store_text_eq(out->nhs_number, nhs) || nhs == NULL)
        what = "NHS number";
    else if (out->version != version)
        what = "version";
    else if (status == NULL || !store_text_eq(plan_status_name(out->status), status))
        what = "status";
    else if (require_published && out->status != PLAN_STATUS_PUBLISHED)
        what = "status (not published)";
    if (what != NULL) {
        plan_free(out);
        return cmc_fail(CMC_ERR_TAMPERED,
                        "replica: plan %s version %" PRId64 ": body and row disagree on %s",
                        store_safe_id(plan_id), version, what);
    }
    return CMC_OK;
}

/* Lists and counts leave out a row that fails its check, so one altered row does not blind
 * a crew to every other plan; it is logged (by plan id) and store_verify reports it. */
static void log_skipped(void)
{
    plat_log(PLAT_LOG_WARN, "replica: a row was left out: %s", cmc_errmsg());
}

/* Decodes a plan body column and checks it belongs to `plan_id`. */
int store_column_plan(sqlite3_stmt *st, int col, const char *plan_id, struct plan *out)
{
    const void *b = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (b == NULL || len <= 0)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body is missing");
    int rc = plan_unpack_stored(b, (size_t)len, out);
    if (rc != CMC_OK)
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body does not decode");
    if (plan_id != NULL && (out->plan_id == NULL || strcmp(out->plan_id, plan_id) != 0)) {
        plan_free(out);
        return cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan body names another plan");
    }
    return CMC_OK;
}

/* ---- integrity ------------------------------------------------------------------------- */

/* Every row of `sql` (PLAN_COLS then ID_COLS) decodes, carries its seal and matches its
 * identity index; *rows counts them. */
static int verify_rows(store *s, const char *sql, int64_t *rows)
{
    sqlite3_stmt *st = NULL;
    struct plan p;
    int rc, has_row = 0;
    plan_init(&p);
    if ((rc = store_stmt_get(s, sql, &st)) != CMC_OK)
        return rc;
    for (;;) {
        int match = 0;
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        if ((rc = row_plan(s, st, 0, &p)) != CMC_OK)
            break;
        rc = store_identity_matches(st, ID_FIRST, &p, &match);
        plan_free(&p);
        if (rc != CMC_OK)
            break;
        if (!match) {
            rc = cmc_fail(CMC_ERR_TAMPERED,
                          "replica: plan %s: identity index does not match the plan",
                          store_safe_id(store_col_text(st, 0)));
            break;
        }
        (*rows)++;
    }
    store_stmt_put(s, st);
    return rc;
}

int store_verify(store *s)
{
    sqlite3_stmt *st = NULL;
    struct plan p;
    int rc, has_row = 0;
    int64_t rows = 0;

    plan_init(&p);
    if ((rc = db_cipher_integrity_check(s->db)) != CMC_OK)
        goto out;
    if ((rc = store_stmt_get(s, "PRAGMA foreign_key_check", &st)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (has_row) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: table %s has a row without its parent",
                      store_col_text(st, 0) != NULL ? store_col_text(st, 0) : "?");
        goto out;
    }
    store_stmt_put(s, st);
    st = NULL;
    if ((rc = verify_rows(s, "SELECT " PLAN_COLS ", " ID_COLS " FROM plan_versions v"
                             " LEFT JOIN plan_identity i ON i.version_id = v.id ORDER BY v.id",
                          &rows)) != CMC_OK ||
        (rc = verify_rows(s, "SELECT " DRAFT_COLS ", " ID_COLS " FROM " FROM_DRAFTS " ORDER BY v.id",
                          &rows)) != CMC_OK)
        goto out;
    /* Index rows must each belong to a version of the same plan. */
    int64_t orphans = 0;
    rc = store_query_int(s,
                   "SELECT count(*) FROM plan_identity i LEFT JOIN plan_versions v"
                   " ON v.id = i.version_id"
                   " WHERE v.id IS NULL OR v.plan_id <> i.plan_id OR v.nhs_number <> i.nhs_number",
                   NULL, &orphans, NULL);
    if (rc == CMC_OK && orphans > 0)
        rc = cmc_fail(CMC_ERR_TAMPERED, "replica: %" PRId64 " identity index rows match no plan",
                      orphans);
    if (rc == CMC_OK)
        rc = store_counts_check(s);
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_DEBUG, "replica verified: %" PRId64 " plan versions", rows);
out:
    store_stmt_put(s, st);
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
    if ((rc = store_stmt_get(s, is_plan_id ? sql_get_by_id[q] : sql_get_by_nhs[q], &st)) != CMC_OK)
        goto out;
    if ((rc = store_bind_text(s, st, 1, is_plan_id ? key : nhs)) != CMC_OK)
        goto out;
    if ((rc = db_step(s->db, st, &has_row)) != CMC_OK)
        goto out;
    if (!has_row) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan on this device for that %s",
                      is_plan_id ? "plan id" : "NHS number");
        goto out;
    }
    rc = row_plan(s, st, q == Q_PUBLISHED, out);
out:
    store_stmt_put(s, st);
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
    store_copy_text(h->plan_id, sizeof h->plan_id, p->plan_id);
    store_copy_text(h->nhs_number, sizeof h->nhs_number, p->nhs_number);
    h->status = p->status;
    h->version = p->version;
    if ((rc = store_dup_text(p->patient.given_name, &h->given_name)) != CMC_OK ||
        (rc = store_dup_text(p->patient.family_name, &h->family_name)) != CMC_OK ||
        (rc = store_dup_text(p->patient.date_of_birth, &h->date_of_birth)) != CMC_OK ||
        (rc = store_dup_text(p->patient.postcode, &h->postcode)) != CMC_OK ||
        (rc = store_dup_text(p->patient.address, &h->address)) != CMC_OK)
        hit_free(h);
    return rc;
}

/* Steps a prepared search/list statement (PLAN_COLS then ID_COLS) and collects up to
 * `limit` checked hits. `total` (may be NULL): every matching row, shown or not, so a crew
 * is told how many it was not shown; rows past the limit are counted without decoding. */
static int collect_hits(store *s, sqlite3_stmt *st, int q, size_t limit, struct store_hit **out,
                        size_t *n, size_t *total)
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
        rc = row_plan(s, st, q == Q_PUBLISHED, &p);
        if (rc == CMC_OK && (rc = store_identity_matches(st, ID_FIRST, &p, &match)) == CMC_OK && !match)
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: plan %s: identity index does not match",
                          store_safe_id(p.plan_id));
        if (rc == CMC_ERR_TAMPERED) {
            log_skipped();
            plan_free(&p);
            rc = CMC_OK;
            continue;
        }
        if (rc != CMC_OK)
            break;
        if ((rc = store_grow(&hits, count, &cap, sizeof *hits, 16)) != CMC_OK)
            break;
        if ((rc = hit_from_plan(&p, &hits[count])) != CMC_OK)
            break;
        count++;
        plan_free(&p);
    }
    plan_free(&p);
    size_t more = 0;
    while (rc == CMC_OK && total != NULL && count == limit &&
           (rc = db_step(s->db, st, &has_row)) == CMC_OK && has_row)
        more++;
    if (rc != CMC_OK) {
        store_hits_free(hits, count);
        return rc;
    }
    *out = hits;
    *n = count;
    if (total != NULL)
        *total = count + more;
    return CMC_OK;
}

int store_search(store *s, const struct store_query *q, size_t limit, struct store_hit **out,
                 size_t *n)
{
    return store_search_counted(s, q, limit, out, n, NULL);
}

/* A search term normalised into *out (cmc_free); CMC_ERR_INVALID "search: <empty>" when
 * nothing of it is left. */
static int search_term(const char *in, void (*normalise)(const char *, char *), const char *empty,
                       char **out)
{
    *out = cmc_malloc(strlen(in) + 1);
    if (*out == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    normalise(in, *out);
    return (*out)[0] != '\0' ? CMC_OK : cmc_fail(CMC_ERR_INVALID, "search: %s", empty);
}

int store_search_counted(store *s, const struct store_query *q, size_t limit, struct store_hit **out,
                         size_t *n, size_t *total)
{
    sqlite3_stmt *st = NULL;
    char *whole = NULL, *first = NULL, *rest = NULL, *postcode = NULL;
    int rc = CMC_OK;
    int qi = query_index(s);

    *out = NULL;
    *n = 0;
    if (total != NULL)
        *total = 0;
    if (q == NULL || (q->name == NULL && q->date_of_birth == NULL && q->postcode == NULL))
        return cmc_fail(CMC_ERR_USAGE, "search: give a name, a date of birth or a postcode");
    if (q->date_of_birth != NULL) {
        int64_t t;
        if (strlen(q->date_of_birth) != 10 || plat_parse_time(q->date_of_birth, &t) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "search: date of birth must be YYYY-MM-DD");
    }
    if (q->name != NULL) {
        size_t len = strlen(q->name);
        first = cmc_malloc(len + 1);
        rest = cmc_malloc(len + 1);
        if (first == NULL || rest == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
            goto out;
        }
        if ((rc = search_term(q->name, store_name_normalise, "the name has no letters", &whole)) !=
            CMC_OK)
            goto out;
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
    if (q->postcode != NULL && (rc = search_term(q->postcode, store_postcode_normalise,
                                                 "the postcode is empty", &postcode)) != CMC_OK)
        goto out;
    if ((rc = store_stmt_get(s, sql_search[qi], &st)) != CMC_OK)
        goto out;
    int two_words = first != NULL && first[0] != '\0' && rest[0] != '\0';
    if ((rc = store_bind_text(s, st, 1, q->date_of_birth)) != CMC_OK ||
        (rc = store_bind_text(s, st, 2, postcode)) != CMC_OK ||
        (rc = store_bind_text(s, st, 3, whole)) != CMC_OK ||
        (rc = store_bind_text(s, st, 4, two_words ? first : NULL)) != CMC_OK ||
        (rc = store_bind_text(s, st, 5, two_words ? rest : NULL)) != CMC_OK)
        goto out;
    rc = collect_hits(s, st, qi, limit, out, n, total);
out:
    store_stmt_put(s, st);
    cmc_free(whole);
    cmc_free(first);
    cmc_free(rest);
    cmc_free(postcode);
    return rc;
}

/* "showing 20 of 551 - add date of birth or postcode": a crew must never take a cut list
 * for the whole (docs/HAZARDS.md, H-28). "" when every match is shown. */
void store_search_words(const struct store_query *q, size_t shown, size_t total, char *out, size_t cap)
{
    const char *add[3];
    size_t na = 0;
    out[0] = '\0';
    if (shown >= total)
        return;
    if (q->date_of_birth == NULL)
        add[na++] = "date of birth";
    if (q->postcode == NULL)
        add[na++] = "postcode";
    if (q->name == NULL)
        add[na++] = "name";
    if (na == 0)
        add[na++] = "more of the name";
    snprintf(out, cap, "showing %zu of %zu - add %s%s%s%s%s", shown, total, add[0], na > 1 ? (na > 2 ? ", " : " or ") : "",
             na > 1 ? add[1] : "", na > 2 ? " or " : "", na > 2 ? add[2] : "");
}

int store_list(store *s, struct store_hit **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int qi = query_index(s);
    *out = NULL;
    *n = 0;
    int rc = store_stmt_get(s, sql_list[qi], &st);
    if (rc == CMC_OK)
        rc = collect_hits(s, st, qi, SIZE_MAX, out, n, NULL);
    store_stmt_put(s, st);
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
    if ((rc = store_stmt_get(s, sql, &st)) != CMC_OK)
        goto out;
    for (;;) {
        if ((rc = db_step(s->db, st, &has_row)) != CMC_OK || !has_row)
            break;
        rc = row_plan(s, st, require_published, &p);
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
    store_stmt_put(s, st);
    return rc;
}

int store_counts_scan(store *s, struct store_counts *out)
{
    static const char *const visible_sql[2] = {
        "SELECT " PLAN_COLS " FROM " FROM_PUBLISHED " WHERE " WHERE_PUBLISHED,
        SQL_LIST_ROWS(FROM_CLINICIAN, WHERE_CLINICIAN) " UNION ALL " DRAFT_ROWS(DRAFT_COLS ", " ID_COLS),
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
    return store_counts_local(s, out);
}

int store_counts_local(store *s, struct store_counts *out)
{
    int rc;
    if ((rc = store_query_int(s, "SELECT count(*) FROM pending_edits", NULL, &out->pending,
                              NULL)) != CMC_OK ||
        /* plans whose edits the sync engine holds for a three-way merge decision */
        (rc = store_query_int(s, "SELECT count(*) FROM merges", NULL, &out->conflicts, NULL)) !=
            CMC_OK ||
        (rc = store_query_int(s, "SELECT count(*) FROM tombstones", NULL, &out->tombstones,
                              NULL)) != CMC_OK)
        return rc;
    return CMC_OK;
}
