/*
 * store_drafts.c - plan versions that are not published (draft, needs_finalisation,
 * awaiting_approval) kept under the role key (docs/STORAGE.md, "Keys per role").
 *
 * A clinician session that holds the role key stores them in the clinical file's table
 * `drafts` (the row, its seal and its identity columns in one). Any other session that syncs
 * (an urgent-care user on a shared laptop) cannot open that file: it seals each such version
 * (libsodium's crypto_box_seal) to the public half of a box pair that only the role key
 * derives, kept in sync_state, into the replica's table `sealed_drafts`. The next clinician
 * session with the role key opens those rows into `drafts` and deletes them, in one
 * transaction. Rows that were in `plan_versions` before (a replica from before this split)
 * leave it the same way the first time a session that can place them opens the replica.
 *
 * A sealed row holds the plan id in clear (so a purge deletes it at once) and, sealed: the
 * change sequence, the time received, the exact body bytes and the hub's seal of them, so the
 * version still proves its origin once opened (store_seal_check on every read).
 */
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_sync.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <inttypes.h>
#include <string.h>

#define SEALED_FORMAT 1
#define SEALED_HEAD (1 + 8 + 8 + 4) /* format, change_seq, received_at, body length */

/* ---- the box pair ------------------------------------------------------------------------ */

static int box_pk_load(store *s)
{
    if (s->box_loaded)
        return CMC_OK;
    int rc = store_state_get_hex(s, STORE_STATE_DRAFT_BOX, s->box_pk, sizeof s->box_pk, &s->have_box_pk);
    s->box_loaded = rc == CMC_OK;
    return rc;
}

/* Records the public half the role key derives, when the replica holds another or none. */
static int box_pk_store(store *s, const uint8_t pk[CRY_BOX_PK_BYTES])
{
    char hex[2 * CRY_BOX_PK_BYTES + 1];
    int rc = box_pk_load(s);
    if (rc == CMC_ERR_TAMPERED)
        cmc_err_clear(); /* a damaged value is written again from the role key */
    else if (rc != CMC_OK)
        return rc;
    if (s->have_box_pk && memcmp(s->box_pk, pk, CRY_BOX_PK_BYTES) == 0)
        return CMC_OK;
    cry_hex(hex, pk, CRY_BOX_PK_BYTES);
    if ((rc = store_state_set(s, STORE_STATE_DRAFT_BOX, hex)) != CMC_OK)
        return rc;
    memcpy(s->box_pk, pk, CRY_BOX_PK_BYTES);
    s->have_box_pk = s->box_loaded = 1;
    return CMC_OK;
}

/* ---- rows -------------------------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The row in the clinical file (replacing the same plan id and version). */
static int clinical_insert(store *s, const struct plan *p, const uint8_t *body, size_t len,
                           const uint8_t *seal, size_t seal_len, int64_t change_seq,
                           int64_t received_at)
{
    struct store_identity id;
    int rc = store_identity_of(p, &id);
    if (rc != CMC_OK)
        return rc;
    rc = store_exec_bound(s,
                          "INSERT OR REPLACE INTO drafts (plan_id, version, status, nhs_number,"
                          " change_seq, received_at, body, seal, family_name, given_name,"
                          " date_of_birth, postcode, postcode_outward)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                          "tittiibbttttt", p->plan_id, p->version, plan_status_name(p->status),
                          p->nhs_number, change_seq, received_at, body, len, seal, seal_len,
                          id.family, id.given, p->patient.date_of_birth, id.postcode, id.outward);
    store_identity_free(&id);
    return rc;
}

/* The row sealed to the box key, in the replica. */
static int sealed_insert(store *s, const char *plan_id, const uint8_t *body, size_t len,
                         const uint8_t *seal, size_t seal_len, int64_t change_seq,
                         int64_t received_at)
{
    size_t plain_len = SEALED_HEAD + len + 4 + seal_len;
    uint8_t *plain = cmc_malloc(plain_len);
    uint8_t *box = cmc_malloc(plain_len + CRY_BOX_SEAL_BYTES);
    int rc = CMC_OK;
    if (plain == NULL || box == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
        goto out;
    }
    plain[0] = SEALED_FORMAT;
    put_be(plain + 1, (uint64_t)change_seq, 8);
    put_be(plain + 9, (uint64_t)received_at, 8);
    put_be(plain + 17, (uint64_t)len, 4);
    memcpy(plain + SEALED_HEAD, body, len);
    put_be(plain + SEALED_HEAD + len, (uint64_t)seal_len, 4);
    if (seal_len > 0)
        memcpy(plain + SEALED_HEAD + len + 4, seal, seal_len);
    if ((rc = cry_box_seal(box, plain, plain_len, s->box_pk)) != CMC_OK)
        goto out;
    rc = store_exec_bound(s, "INSERT INTO sealed_drafts (plan_id, box) VALUES (?1, ?2)", "tb", plan_id,
                          box, plain_len + CRY_BOX_SEAL_BYTES);
out:
    if (plain != NULL)
        cry_memzero(plain, plain_len);
    cmc_free(plain);
    cmc_free(box);
    return rc;
}

/* Wherever this session can put a draft: the clinical file, or sealed; *placed 0 when neither
 * (no box key known yet). */
static int place(store *s, const struct plan *p, const uint8_t *body, size_t len,
                 const uint8_t *seal, size_t seal_len, int64_t change_seq, int64_t received_at,
                 int *placed)
{
    *placed = 0;
    if (s->drafts_clinical) {
        *placed = 1;
        return clinical_insert(s, p, body, len, seal, seal_len, change_seq, received_at);
    }
    int rc = box_pk_load(s);
    if (rc != CMC_OK || !s->have_box_pk)
        return rc;
    *placed = 1;
    return sealed_insert(s, p->plan_id, body, len, seal, seal_len, change_seq, received_at);
}

int store_draft_put(store *s, const struct plan *p, const uint8_t *body, size_t len,
                    const uint8_t *seal, size_t seal_len, int64_t change_seq, int *stored)
{
    if (p->status == PLAN_STATUS_PUBLISHED)
        return cmc_fail(CMC_ERR_USAGE, "replica: a published version is not a draft");
    return place(s, p, body, len, seal, seal_len, change_seq, plat_wall_now(), stored);
}

/* ---- opening ----------------------------------------------------------------------------- */

/* Versions that are not published still in the replica's plan_versions (a replica from
 * before the split, or drafts kept while no box key was known): placed, then deleted. */
static int move_from_replica(store *s, int64_t *moved)
{
    sqlite3_stmt *st = NULL;
    int rc = store_stmt_get(s,
                            "SELECT v.id, v.body, (SELECT s.seal FROM plan_seals s"
                            " WHERE s.version_id = v.id), v.change_seq, v.received_at"
                            " FROM plan_versions v WHERE v.status <> 'published' ORDER BY v.id",
                            &st);
    while (rc == CMC_OK) {
        struct plan p;
        int row = 0, placed = 0;
        plan_init(&p);
        if ((rc = db_step(s->db, st, &row)) != CMC_OK || !row)
            break;
        /* a row whose body does not decode as a draft stays: verify reports it */
        if ((rc = store_column_plan(st, 1, NULL, &p)) == CMC_OK && p.status == PLAN_STATUS_PUBLISHED)
            rc = cmc_fail(CMC_ERR_TAMPERED, "replica: a stored plan's status disagrees with its row");
        if (rc == CMC_OK)
            rc = place(s, &p, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                       sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                       sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4), &placed);
        plan_free(&p);
        if (rc == CMC_ERR_TAMPERED) {
            cmc_err_clear();
            rc = CMC_OK;
            continue;
        }
        if (rc != CMC_OK || !placed)
            break;
        if ((rc = store_exec_bound(s, "DELETE FROM plan_versions WHERE id = ?1", "i",
                                   (int64_t)sqlite3_column_int64(st, 0))) == CMC_OK)
            (*moved)++;
    }
    store_stmt_put(s, st);
    return rc;
}

/* One sealed row opened into the clinical file. A row that does not open, or does not hold a
 * draft of the plan it names, is dropped (logged by plan id): only the role key's holders can
 * read it and only the hub's seal makes it shown, so nothing is lost that could be trusted. */
static int open_one(store *s, const char *plan_id, const uint8_t *box, size_t box_len,
                    const struct cry_secret *sk)
{
    struct plan p;
    size_t plain_len = box_len >= CRY_BOX_SEAL_BYTES ? box_len - CRY_BOX_SEAL_BYTES : 0;
    uint8_t *plain = cmc_malloc(plain_len > 0 ? plain_len : 1);
    int rc;
    plan_init(&p);
    if (plain == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
    rc = cry_box_open(plain, box, box_len, s->box_pk, sk);
    size_t body_len = rc == CMC_OK && plain_len >= SEALED_HEAD ? get_be(plain + 17, 4) : 0;
    if (rc == CMC_OK && (plain_len < SEALED_HEAD + 4 || plain[0] != SEALED_FORMAT ||
                         body_len > plain_len - SEALED_HEAD - 4 ||
                         get_be(plain + SEALED_HEAD + body_len, 4) != plain_len - SEALED_HEAD - 4 - body_len))
        rc = cmc_fail(CMC_ERR_TAMPERED, "sealed draft: malformed");
    if (rc == CMC_OK && (plan_unpack_stored(plain + SEALED_HEAD, body_len, &p) != CMC_OK ||
                         p.plan_id == NULL || strcmp(p.plan_id, plan_id) != 0 ||
                         p.status == PLAN_STATUS_PUBLISHED))
        rc = cmc_fail(CMC_ERR_TAMPERED, "sealed draft: not a draft of its plan");
    if (rc == CMC_OK) {
        size_t seal_len = plain_len - SEALED_HEAD - 4 - body_len;
        rc = clinical_insert(s, &p, plain + SEALED_HEAD, body_len,
                             seal_len > 0 ? plain + SEALED_HEAD + body_len + 4 : NULL, seal_len,
                             (int64_t)get_be(plain + 1, 8), (int64_t)get_be(plain + 9, 8));
    }
    if (rc == CMC_ERR_TAMPERED) {
        plat_log(PLAT_LOG_WARN, "replica: a sealed draft of plan %s was dropped: %s",
                 store_safe_id(plan_id), cmc_errmsg());
        cmc_err_clear();
        rc = CMC_OK;
    }
    plan_free(&p);
    cry_memzero(plain, plain_len > 0 ? plain_len : 1);
    cmc_free(plain);
    return rc;
}

static int open_sealed(store *s, const struct cry_secret *sk, int64_t *opened)
{
    sqlite3_stmt *st = NULL;
    int rc = store_stmt_get(s, "SELECT plan_id, box FROM sealed_drafts ORDER BY id", &st);
    for (int row = 0; rc == CMC_OK;) {
        if ((rc = db_step(s->db, st, &row)) != CMC_OK || !row)
            break;
        const char *plan_id = store_col_text(st, 0);
        rc = open_one(s, plan_id != NULL ? plan_id : "", sqlite3_column_blob(st, 1),
                      (size_t)sqlite3_column_bytes(st, 1), sk);
        (*opened)++;
    }
    store_stmt_put(s, st);
    return rc == CMC_OK && *opened > 0 ? db_exec(s->db, "DELETE FROM sealed_drafts") : rc;
}

/* Drafts of plans purged meanwhile (by a session that could not reach this file) and drafts
 * a newer published version has replaced go. */
static const char clinical_tidy_sql[] =
    "DELETE FROM clin.drafts WHERE EXISTS (SELECT 1 FROM main.tombstones t"
    "  WHERE t.plan_id = drafts.plan_id AND t.change_seq >= drafts.change_seq);"
    "DELETE FROM clin.drafts WHERE version < (SELECT max(p.version) FROM main.plan_versions p"
    "  WHERE p.plan_id = drafts.plan_id AND p.status = 'published');";

int store_drafts_open(store *s, const struct cry_secret *role_key)
{
    struct cry_secret *sk = NULL;
    uint8_t pk[CRY_BOX_PK_BYTES];
    int64_t waiting = 0, sealed = 0, moved = 0, opened = 0;
    int rc = CMC_OK;
    if (role_key != NULL && s->drafts_clinical &&
        (rc = cry_box_keypair_from(pk, &sk, role_key)) != CMC_OK)
        return rc;
    if ((rc = box_pk_load(s)) == CMC_ERR_TAMPERED && sk != NULL) {
        cmc_err_clear(); /* written again from the role key below */
        rc = CMC_OK;
    }
    int new_pk = sk != NULL && (!s->have_box_pk || memcmp(s->box_pk, pk, sizeof pk) != 0);
    if (new_pk && s->have_box_pk)
        /* someone who can write the replica put another key there: what was sealed to it
         * does not open below and is dropped; the next sync's drafts are sealed right */
        plat_log(PLAT_LOG_WARN, "replica: the draft key kept in the replica was not the role key's; "
                                "it is replaced");
    /* the kept counts say whether the replica holds such versions without reading a plan */
    if (rc == CMC_OK)
        rc = store_query_int(s, "SELECT plans - newest_published FROM plan_counts WHERE id = 1",
                             NULL, &waiting, NULL);
    if (rc == CMC_OK && sk != NULL)
        rc = store_query_int(s, "SELECT EXISTS (SELECT 1 FROM sealed_drafts)", NULL, &sealed, NULL);
    if (rc != CMC_OK)
        goto out;
    if (!s->drafts_clinical && !s->have_box_pk)
        waiting = 0; /* nowhere to put them yet: they stay until a clinician opens the replica */
    /* a write transaction only when there is something to write */
    if (waiting > 0 || sealed > 0 || new_pk) {
        if ((rc = db_begin(s->db)) != CMC_OK)
            goto out;
        if (new_pk)
            rc = box_pk_store(s, pk);
        if (rc == CMC_OK && waiting > 0)
            rc = move_from_replica(s, &moved);
        if (rc == CMC_OK && sealed > 0)
            rc = open_sealed(s, sk, &opened);
        if (rc == CMC_OK)
            rc = db_commit(s->db);
        else
            db_rollback(s->db);
    }
    if (rc == CMC_OK && sk != NULL)
        rc = db_exec(s->db, clinical_tidy_sql);
    /* the clear rows leave the WAL too (as after a purge); a reader holding it only delays that */
    if (rc == CMC_OK && moved + opened > 0 && db_checkpoint_truncate(s->db) != CMC_OK)
        cmc_err_clear();
    if (rc == CMC_OK && moved + opened > 0)
        plat_log(PLAT_LOG_INFO, "replica: %" PRId64 " draft version(s) moved, %" PRId64
                 " sealed draft(s) opened under the role key", moved, opened);
out:
    cry_secret_free(sk);
    cry_memzero(pk, sizeof pk);
    return rc;
}

/* ---- what the engine and the counts ask ---------------------------------------------------- */

int store_drafts_purge(store *s, const char *plan_id)
{
    int rc = store_exec_for_plan(s, "DELETE FROM drafts WHERE plan_id = ?1", plan_id);
    if (rc == CMC_OK)
        rc = store_exec_for_plan(s, "DELETE FROM sealed_drafts WHERE plan_id = ?1", plan_id);
    return rc;
}

int store_drafts_prune(store *s, const char *plan_id)
{
    return store_exec_for_plan(s,
                     "DELETE FROM drafts WHERE plan_id = ?1 AND version <"
                     " (SELECT max(version) FROM plan_versions WHERE plan_id = ?1"
                     "  AND status = 'published')",
                     plan_id);
}

int store_sync_base_withheld(store *s, const char *plan_id, int *yes)
{
    int64_t n = 0;
    *yes = 0;
    int rc = box_pk_load(s);
    if (rc == CMC_OK && !s->drafts_clinical && s->have_box_pk) {
        *yes = 1; /* drafts live in a clinical file this session cannot open */
        return CMC_OK;
    }
    if (rc == CMC_OK)
        rc = store_query_int(s, "SELECT EXISTS (SELECT 1 FROM sealed_drafts WHERE plan_id = ?1)",
                             plan_id, &n, NULL);
    *yes = rc == CMC_OK && n != 0;
    return rc;
}

int store_drafts_counts(store *s, int64_t *only, int64_t *newer)
{
    int rc = store_query_int(s,
                             "SELECT count(DISTINCT d.plan_id) FROM drafts d WHERE NOT EXISTS"
                             " (SELECT 1 FROM plan_heads h WHERE h.plan_id = d.plan_id)",
                             NULL, only, NULL);
    if (rc == CMC_OK)
        rc = store_query_int(s,
                             "SELECT count(*) FROM (SELECT plan_id, max(version) AS mv FROM drafts"
                             " GROUP BY plan_id) d JOIN plan_heads h ON h.plan_id = d.plan_id"
                             " WHERE d.mv > h.newest_version",
                             NULL, newer, NULL);
    return rc;
}
