/*
 * seed.c - storing synthetic plans (seed_plan.c makes them): one transaction with prepared
 * statements reused for every plan, and for some published plans a newer draft.
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"

#include <string.h>

/* The newer draft of a published plan: a changed prognosis and one more medicine. */
static int seed_make_draft(const struct plan *pub, struct plan *draft)
{
    struct plan_medication *meds, *m;
    int rc = plan_copy(draft, pub);
    if (rc != CMC_OK)
        return rc;
    draft->version = pub->version + 1;
    draft->status = PLAN_STATUS_DRAFT;
    cmc_free(draft->approved_by);
    cmc_free(draft->approved_at);
    draft->approved_by = draft->approved_at = NULL;
    cmc_free(draft->prognosis);
    if ((draft->prognosis = cmc_strdup("weeks")) == NULL)
        goto nomem;
    if (draft->n_medications >= PLAN_MAX_ITEMS)
        return CMC_OK;
    meds = cmc_realloc(draft->medications, (draft->n_medications + 1) * sizeof *meds);
    if (meds == NULL)
        goto nomem;
    draft->medications = meds;
    m = &meds[draft->n_medications++];
    memset(m, 0, sizeof *m);
    m->id = cmc_strdup("m90");
    m->name = cmc_strdup("Levomepromazine injection");
    m->dose = cmc_strdup("6.25 mg s/c as needed for nausea or agitation");
    m->anticipatory = 1;
    if (m->id != NULL && m->name != NULL && m->dose != NULL)
        return CMC_OK;
nomem:
    plan_free(draft);
    return cmc_fail(CMC_ERR_NOMEM, "seed");
}

/* ---- storing --------------------------------------------------------------------------- */

enum { ST_VERSION, ST_PLAN, ST_EVENT, ST_CHANGE, ST_SEQ, ST_CASELOAD, ST_N };

static const char *const seed_sql[ST_N] = {
    "INSERT INTO versions(plan_id, version, status, body, actor, action, at)"
    " VALUES(?1, ?2, ?3, ?4, 'seed', 'seed', ?5)",
    "INSERT INTO plans(plan_id, nhs, latest, latest_status, published, region, team, care_home,"
    " seq, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
    "INSERT INTO events(plan_id, version, actor, action, at) VALUES(?1, ?2, 'seed', 'seed', ?3)",
    "INSERT INTO changes(plan_id, what, at) VALUES(?1, 'seed', ?2)",
    "UPDATE plans SET seq = ?2 WHERE plan_id = ?1",
    "INSERT OR IGNORE INTO caseload(team, nhs) VALUES(?1, ?2)",
};

static int seed_step(hub *h, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        if (db_map_code(src) == CMC_ERR_EXISTS)
            return cmc_fail(CMC_ERR_EXISTS, "seed: a seeded plan is already on the hub (%s);"
                                            " use another --seed", what);
        return hub_db_fail(h, src, what);
    }
    return CMC_OK;
}

static int seed_store(hub *h, sqlite3_stmt **st, const struct plan *p, int64_t now)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = plan_pack(p, &body, &len);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st[ST_VERSION], 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_VERSION], 2, p->version);
    sqlite3_bind_int(st[ST_VERSION], 3, p->status);
    sqlite3_bind_blob(st[ST_VERSION], 4, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_VERSION], 5, now);
    rc = seed_step(h, st[ST_VERSION], "version");
    sqlite3_clear_bindings(st[ST_VERSION]);
    cmc_free(body);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st[ST_EVENT], 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_EVENT], 2, p->version);
    sqlite3_bind_int64(st[ST_EVENT], 3, now);
    return seed_step(h, st[ST_EVENT], "event");
}

int hub_seed(hub *h, long n, uint64_t seed, void (*progress)(long done, long total, void *ctx),
             void *ctx)
{
    sqlite3_stmt *st[ST_N] = {0};
    struct plan p, draft;
    int64_t now = plat_wall_now();
    int status, extra, rc = CMC_OK;

    plan_init(&p);
    plan_init(&draft);
    if (n < 0 || n > 10000000)
        return cmc_fail(CMC_ERR_USAGE, "--plans: 0 to 10000000");
    /* A large page cache for the bulk insert: the key indexes take random inserts. */
    if ((rc = hub_db_exec(h, "PRAGMA cache_size = -262144")) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    for (int k = 0; k < ST_N; k++)
        if ((rc = hub_db_prepare(h, seed_sql[k], &st[k])) != CMC_OK)
            goto out;
    for (long i = 0; i < n; i++) {
        if ((rc = hub_seed_plan(seed, i, &p, &status, &extra)) != CMC_OK)
            goto out;
        if ((rc = seed_store(h, st, &p, now)) != CMC_OK)
            goto out;
        int64_t latest = 1;
        int latest_status = p.status;
        if (extra) {
            if ((rc = seed_make_draft(&p, &draft)) != CMC_OK)
                goto out;
            if ((rc = seed_store(h, st, &draft, now)) != CMC_OK)
                goto out;
            latest = draft.version;
            latest_status = draft.status;
            plan_free(&draft);
        }
        sqlite3_bind_text(st[ST_PLAN], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 2, p.nhs_number, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_PLAN], 3, latest);
        sqlite3_bind_int(st[ST_PLAN], 4, latest_status);
        sqlite3_bind_int64(st[ST_PLAN], 5, status == PLAN_STATUS_PUBLISHED ? 1 : 0);
        sqlite3_bind_text(st[ST_PLAN], 6, p.region, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 7, p.team, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 8, p.care_home, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_PLAN], 9, now);
        if ((rc = seed_step(h, st[ST_PLAN], "plan")) != CMC_OK)
            goto out;
        sqlite3_clear_bindings(st[ST_PLAN]);
        sqlite3_bind_text(st[ST_CHANGE], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_CHANGE], 2, now);
        if ((rc = seed_step(h, st[ST_CHANGE], "change log")) != CMC_OK)
            goto out;
        sqlite3_bind_text(st[ST_SEQ], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_SEQ], 2, sqlite3_last_insert_rowid(h->db));
        if ((rc = seed_step(h, st[ST_SEQ], "change log")) != CMC_OK)
            goto out;
        sqlite3_bind_text(st[ST_CASELOAD], 1, p.team, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_CASELOAD], 2, p.nhs_number, -1, SQLITE_STATIC);
        if ((rc = seed_step(h, st[ST_CASELOAD], "caseload")) != CMC_OK)
            goto out;
        plan_free(&p);
        if (progress != NULL && ((i + 1) % 1000 == 0 || i + 1 == n))
            progress(i + 1, n, ctx);
    }
    for (int k = 0; k < ST_N; k++) {
        sqlite3_finalize(st[k]);
        st[k] = NULL;
    }
    rc = hub_tx_commit(h);
out:
    for (int k = 0; k < ST_N; k++)
        sqlite3_finalize(st[k]);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    plan_free(&p);
    plan_free(&draft);
    return rc;
}
