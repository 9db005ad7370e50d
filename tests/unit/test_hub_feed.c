/*
 * test_hub_feed.c - the hub's holdings as bundle pages record and settle them: a page the
 * device never applied (its rows go back to what they replaced), a restored replica (the rows
 * beyond its cursor go), idle polls that write nothing, deltas shared by devices on the same
 * base, and a store from before migration 3 carrying its holdings over.
 *
 * A device here verifies each bundle with the hub's key and applies it to an in-memory set of
 * plans, like the agent; `commit` 0 models a device that received a page and lost it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/hub_fixture.h"
#include "tests/support/pg_fixture.h"

#define REGION "south-east-london"
#define MAX_PLANS 64
#define MAX_OPS 64

/* The hub store in a temporary directory, with its users: tests/support/hub_fixture.h. */
#define env tst_hub

struct op_seen {
    char plan_id[PLAN_ID_LEN + 1];
    int kind;
    int64_t base; /* DELTA */
};

struct device {
    char id[PLAN_ID_LEN + 1];
    uint64_t cursor;
    struct plan held[MAX_PLANS];
    size_t n_held;
    struct op_seen ops[MAX_OPS]; /* the plan ops of the last page */
    size_t n_ops;
};

static int setup(void **state)
{
    return tst_hub_setup(state);
}

static int teardown(void **state)
{
    return tst_hub_teardown(state);
}

static void import_published(struct env *e, long i, const char *nhs, char id[PLAN_ID_LEN + 1])
{
    struct plan p;
    int status, extra;
    char *json = NULL;
    size_t len;
    for (long k = i;; k++) {
        assert_int_equal(hub_seed_plan(99, k, &p, &status, &extra), CMC_OK);
        if (plan_validate(&p, PLAN_CHECK_COMPLETE) == CMC_OK)
            break;
        plan_free(&p);
    }
    cmc_free(p.nhs_number);
    p.nhs_number = cmc_strdup(nhs);
    cmc_free(p.region);
    p.region = cmc_strdup(REGION);
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    plan_free(&p);
    assert_int_equal(hub_plan_import(e->h, "nurse1", json, strlen(json), id), CMC_OK);
    cmc_free(json);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

/* A new published version with the given prognosis. */
static void republish(struct env *e, const char *id, const char *prognosis)
{
    char change[128];
    snprintf(change, sizeof change, "{\"set\": {\"prognosis\": \"%s\"}}", prognosis);
    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

static void new_device(struct env *e, struct device *d)
{
    char code[HUB_CODE_LEN + 1];
    memset(d, 0, sizeof *d);
    assert_int_equal(hub_device_add(e->h, "dev", "region:" REGION, "urgent_care", d->id, code),
                     CMC_OK);
}

static void device_free(struct device *d)
{
    for (size_t i = 0; i < d->n_held; i++)
        plan_free(&d->held[i]);
    d->n_held = 0;
}

static struct plan *held_plan(struct device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++)
        if (strcmp(d->held[i].plan_id, id) == 0)
            return &d->held[i];
    return NULL;
}

static void drop_plan(struct device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++) {
        if (strcmp(d->held[i].plan_id, id) == 0) {
            plan_free(&d->held[i]);
            d->held[i] = d->held[--d->n_held];
            return;
        }
    }
}

static const struct op_seen *op_for(const struct device *d, const char *id)
{
    for (size_t i = 0; i < d->n_ops; i++)
        if (strcmp(d->ops[i].plan_id, id) == 0)
            return &d->ops[i];
    return NULL;
}

/* One pull from `from` by a device that has committed `applied`, with a page budget (0:
 * the default); the ops are noted, and applied when `commit` (the device's cursor then moves
 * to the page's to_cursor). */
static struct bundle_header pull_at(struct env *e, struct device *d, uint64_t from,
                                    uint64_t applied, size_t budget, int commit)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    size_t n = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(hub_pull(e->h, d->id, from, applied, budget, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.from_cursor, from);
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    cmc_free(buf);
    d->n_ops = 0;
    for (size_t i = 0; i < n; i++) {
        struct bundle_op *op = &ops[i];
        struct plan *p;
        if (op->kind == BUNDLE_OP_POLICY || op->kind == BUNDLE_OP_SEAL)
            continue;
        assert_true(d->n_ops < MAX_OPS);
        snprintf(d->ops[d->n_ops].plan_id, PLAN_ID_LEN + 1, "%s", op->plan_id);
        d->ops[d->n_ops].kind = op->kind;
        d->ops[d->n_ops].base = op->base_version;
        d->n_ops++;
        if (!commit)
            continue;
        switch (op->kind) {
        case BUNDLE_OP_PUT:
            drop_plan(d, op->plan_id);
            assert_true(d->n_held < MAX_PLANS);
            assert_int_equal(plan_copy(&d->held[d->n_held++], &op->plan), CMC_OK);
            break;
        case BUNDLE_OP_DELTA:
            p = held_plan(d, op->plan_id);
            assert_non_null(p);
            assert_int_equal(p->version, op->base_version);
            assert_int_equal(plan_change_apply(p, &op->change), CMC_OK);
            break;
        case BUNDLE_OP_PURGE:
            drop_plan(d, op->plan_id);
            break;
        case BUNDLE_OP_WIPE:
        case BUNDLE_OP_POLICY:
        case BUNDLE_OP_SEAL:
            fail_msg("unexpected op %d", (int)op->kind);
        }
    }
    if (commit)
        d->cursor = hdr.to_cursor;
    bundle_ops_free(ops, n);
    return hdr;
}

/* One pull from the device's cursor, which it has committed. */
static struct bundle_header pull_page(struct env *e, struct device *d, int commit)
{
    return pull_at(e, d, d->cursor, d->cursor, 0, commit);
}

/* Pulls and applies until the page says nothing more, then one confirming pull. */
static void sync_device(struct env *e, struct device *d)
{
    while (pull_page(e, d, 1).flags & BUNDLE_FLAG_MORE)
        ;
    pull_page(e, d, 1);
}

static int64_t published_version(struct env *e, const char *id)
{
    struct hub_plan_info info;
    assert_int_equal(hub_plan_info(e->h, id, &info), CMC_OK);
    return info.published_version;
}

struct holder_list {
    int n;
    char ids[8][PLAN_ID_LEN + 1];
    int64_t version[8];
};

static int holder_cb(const struct hub_plan_holder *ph, void *ctx)
{
    struct holder_list *l = ctx;
    if (l->n < 8) {
        snprintf(l->ids[l->n], PLAN_ID_LEN + 1, "%s", ph->device_id);
        l->version[l->n] = ph->version;
    }
    l->n++;
    return 0;
}

static int64_t holding_of(struct env *e, const char *plan_id, const char *device_id)
{
    struct holder_list l;
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, plan_id, holder_cb, &l), CMC_OK);
    for (int i = 0; i < l.n && i < 8; i++)
        if (strcmp(l.ids[i], device_id) == 0)
            return l.version[i];
    return -1;
}

/* ---- lost pages ------------------------------------------------------------------------ */

/* A page the device never applied: asked again, it brings the same ops against the version
 * the device really holds, and a plan it never got is neither purged nor listed as held. */
static void test_lost_page_restores_previous_holding(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1], y[PLAN_ID_LEN + 1], z[PLAN_ID_LEN + 1];
    struct device d;
    const struct op_seen *op;
    int64_t v1;

    import_published(e, 0, "9434765919", x);
    import_published(e, 1, "4010232137", y);
    new_device(e, &d);
    sync_device(e, &d);
    v1 = held_plan(&d, x)->version;
    assert_int_equal(holding_of(e, x, d.id), v1);

    republish(e, x, "days");
    import_published(e, 2, "9990001111", z);
    /* the page with the delta and the new plan is lost, twice */
    for (int attempt = 0; attempt < 2; attempt++) {
        pull_page(e, &d, 0);
        op = op_for(&d, x);
        assert_non_null(op);
        assert_int_equal(op->kind, BUNDLE_OP_DELTA);
        assert_int_equal(op->base, v1);
        assert_non_null(op_for(&d, z));
        assert_int_equal(op_for(&d, z)->kind, BUNDLE_OP_PUT);
        /* `plan show` counts the page the device may have applied */
        assert_int_equal(holding_of(e, z, d.id), published_version(e, z));
    }
    /* z was withdrawn before the device applied anything: nothing to purge from it */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", z), CMC_OK);
    pull_page(e, &d, 1);
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_DELTA);
    assert_int_equal(op_for(&d, x)->base, v1);
    assert_null(op_for(&d, z));
    assert_int_equal(holding_of(e, z, d.id), -1);
    assert_string_equal(held_plan(&d, x)->prognosis, "days");
    assert_int_equal(held_plan(&d, x)->version, published_version(e, x));
    /* proven by the next pull; the next change is a delta against the new version */
    pull_page(e, &d, 1);
    assert_int_equal(d.n_ops, 0);
    republish(e, x, "weeks");
    pull_page(e, &d, 0);
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_DELTA);
    assert_int_equal(op_for(&d, x)->base, held_plan(&d, x)->version);
    pull_page(e, &d, 1);
    assert_string_equal(held_plan(&d, x)->prognosis, "weeks");
    assert_non_null(held_plan(&d, y));
    device_free(&d);
}

/* A lost page that purged a plan: the device still holds it, so the purge comes again. */
static void test_lost_purge_is_sent_again(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1];
    struct device d;

    import_published(e, 0, "9434765919", x);
    new_device(e, &d);
    sync_device(e, &d);
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", x), CMC_OK);
    pull_page(e, &d, 0);
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_PURGE);
    pull_page(e, &d, 1);
    assert_non_null(op_for(&d, x));
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_PURGE);
    assert_null(held_plan(&d, x));
    device_free(&d);
}

/* A replica restored to a cursor older than the holding a lost page replaced: that holding
 * was proven only after the restored copy was made, so the plan comes again as a whole put. */
static void test_rollback_below_replaced_holding_sends_put(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1];
    struct device d;
    struct plan backup;
    uint64_t c1;

    import_published(e, 0, "9434765919", x);
    new_device(e, &d);
    sync_device(e, &d);
    c1 = d.cursor;
    assert_int_equal(plan_copy(&backup, held_plan(&d, x)), CMC_OK);
    republish(e, x, "days");
    sync_device(e, &d); /* v2 proven */
    republish(e, x, "weeks");
    pull_page(e, &d, 0); /* v3 sent, never applied */
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_DELTA);
    /* the tablet is restored to its copy from C1, which holds v1 */
    device_free(&d);
    assert_int_equal(plan_copy(&d.held[0], &backup), CMC_OK);
    d.n_held = 1;
    d.cursor = c1;
    struct bundle_header hdr = pull_page(e, &d, 1);
    assert_true(hdr.flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_PUT);
    assert_string_equal(held_plan(&d, x)->prognosis, "weeks");
    assert_int_equal(held_plan(&d, x)->version, published_version(e, x));
    pull_page(e, &d, 1);
    assert_int_equal(d.n_ops, 0);
    plan_free(&backup);
    device_free(&d);
}

/* ---- idle polls ------------------------------------------------------------------------ */

static long wal_size(struct env *e)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/hub.db-wal", e->dir);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Nothing new: the poll answers without writing to the store. */
static void test_idle_poll_writes_nothing(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1];
    struct device d;

    import_published(e, 0, "9434765919", x);
    new_device(e, &d);
    sync_device(e, &d);
    long before = wal_size(e);
    for (int i = 0; i < 50; i++) {
        pull_page(e, &d, 1);
        assert_int_equal(d.n_ops, 0);
    }
    assert_int_equal(wal_size(e), before);
    /* and a device that was never sent anything polls just as quietly */
    {
        struct device empty;
        char code[HUB_CODE_LEN + 1];
        memset(&empty, 0, sizeof empty);
        assert_int_equal(hub_device_add(e->h, "far", "region:elsewhere", "urgent_care", empty.id,
                                        code),
                         CMC_OK);
        sync_device(e, &empty);
        before = wal_size(e);
        for (int i = 0; i < 20; i++)
            pull_page(e, &empty, 1);
        assert_int_equal(wal_size(e), before);
    }
    device_free(&d);
}

/* ---- shared deltas --------------------------------------------------------------------- */

/* Devices on the same base get the same delta; the second is served without decoding the
 * plans again. */
static void test_devices_on_one_base_share_the_delta(void **state)
{
    struct env *e = *state;
    static const char *const nhs[] = {"9434765919", "4010232137", "9990001111", "9990002223",
                                      "9990003335"};
    char ids[5][PLAN_ID_LEN + 1];
    struct device a, b;
    long first, second;

    for (int i = 0; i < 5; i++)
        import_published(e, i, nhs[i], ids[i]);
    new_device(e, &a);
    new_device(e, &b);
    sync_device(e, &a);
    sync_device(e, &b);
    for (int i = 0; i < 5; i++)
        republish(e, ids[i], "days");
    cmc_alloc_fail_after(-1, 0);
    pull_page(e, &a, 1);
    first = cmc_alloc_count();
    cmc_alloc_fail_after(-1, 0);
    pull_page(e, &b, 1);
    second = cmc_alloc_count();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(op_for(&a, ids[i])->kind, BUNDLE_OP_DELTA);
        assert_int_equal(op_for(&b, ids[i])->kind, BUNDLE_OP_DELTA);
        assert_true(plan_equal(held_plan(&a, ids[i]), held_plan(&b, ids[i])));
        assert_string_equal(held_plan(&b, ids[i])->prognosis, "days");
    }
    /* decoding two versions of a plan takes dozens of allocations; a cached delta none */
    assert_true(second + 5 * 20 < first);
    device_free(&a);
    device_free(&b);
}

/* ---- pages fetched ahead of the device's commits ---------------------------------------- */

static int64_t rollbacks_of(struct env *e, const struct device *d)
{
    struct hub_device_info info;
    assert_int_equal(hub_device_get(e->h, d->id, &info), CMC_OK);
    return info.rollbacks;
}

/* A device fetches page 2 while it applies page 1 (applied stays 0), then crashes before
 * committing either: its next pull from 0 gets every plan again, whole, and is no rollback. */
static void test_pages_fetched_ahead_and_lost_come_again(void **state)
{
    struct env *e = *state;
    char ids[4][PLAN_ID_LEN + 1];
    static const char *const nhs[4] = {"9434765919", "4010232137", "9990001111", "9990000018"};
    struct device d;
    for (int i = 0; i < 4; i++)
        import_published(e, i, nhs[i], ids[i]);
    new_device(e, &d);

    struct bundle_header p1 = pull_at(e, &d, 0, 0, 1024, 0);
    assert_true(p1.flags & BUNDLE_FLAG_MORE);
    struct bundle_header p2 = pull_at(e, &d, p1.to_cursor, 0, 1024, 0);
    assert_true(p2.to_cursor > p1.to_cursor);
    assert_int_equal(d.n_ops, 1);

    /* the crash: nothing committed, the device pulls from 0 again */
    struct bundle_header again = pull_at(e, &d, 0, 0, 0, 1);
    assert_false(again.flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(d.n_ops, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(op_for(&d, ids[i])->kind, BUNDLE_OP_PUT);
    assert_int_equal(rollbacks_of(e, &d), 0);
    device_free(&d);
}

/* Page 1 committed, page 2 (fetched ahead) lost: page 2's plan comes again; page 1's does
 * not. */
static void test_page_fetched_ahead_lost_after_commit(void **state)
{
    struct env *e = *state;
    char ids[3][PLAN_ID_LEN + 1];
    static const char *const nhs[3] = {"9434765919", "4010232137", "9990001111"};
    struct device d;
    for (int i = 0; i < 3; i++)
        import_published(e, i, nhs[i], ids[i]);
    new_device(e, &d);

    struct bundle_header p1 = pull_at(e, &d, 0, 0, 1024, 1);
    assert_non_null(held_plan(&d, ids[0]));
    pull_at(e, &d, p1.to_cursor, 0, 1024, 0); /* carries ids[1]: lost */
    assert_non_null(op_for(&d, ids[1]));

    struct bundle_header p = pull_at(e, &d, d.cursor, d.cursor, 0, 1);
    assert_false(p.flags & BUNDLE_FLAG_ROLLBACK);
    assert_null(op_for(&d, ids[0]));
    assert_int_equal(op_for(&d, ids[1])->kind, BUNDLE_OP_PUT);
    assert_int_equal(op_for(&d, ids[2])->kind, BUNDLE_OP_PUT);
    assert_int_equal(rollbacks_of(e, &d), 0);
    device_free(&d);
}

/* A plan changed while the page that carried it is unproven: the next page ends before it
 * (with nothing in it, when it is the first), and once the device has proven that page the
 * plan comes as a delta against the version the page gave. */
static void test_plan_in_unproven_page_waits_for_proof(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1], y[PLAN_ID_LEN + 1];
    struct device d;
    import_published(e, 0, "9434765919", x);
    import_published(e, 1, "4010232137", y);
    new_device(e, &d);

    struct bundle_header p1 = pull_at(e, &d, 0, 0, 1024, 1); /* x, not yet proven */
    int64_t v1 = held_plan(&d, x)->version;
    struct bundle_header p2 = pull_at(e, &d, p1.to_cursor, 0, 1024, 1); /* y */
    assert_non_null(held_plan(&d, y));
    republish(e, x, "days");

    /* from p2 with nothing proven: x's holding is p1's, so the page stops before it */
    struct bundle_header p3 = pull_at(e, &d, p2.to_cursor, 0, 0, 1);
    assert_true(p3.flags & BUNDLE_FLAG_MORE);
    assert_int_equal(p3.to_cursor, p2.to_cursor);
    assert_null(op_for(&d, x));

    /* proven now: x comes as a delta on what p1 gave */
    pull_at(e, &d, d.cursor, d.cursor, 0, 1);
    assert_int_equal(op_for(&d, x)->kind, BUNDLE_OP_DELTA);
    assert_int_equal(op_for(&d, x)->base, v1);
    assert_int_equal(held_plan(&d, x)->version, published_version(e, x));
    assert_string_equal(held_plan(&d, x)->prognosis, "days");

    /* an applied cursor beyond the cursor is refused */
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(hub_pull(e->h, d.id, p1.to_cursor, d.cursor, 0, &buf, &len),
                     CMC_ERR_INVALID);
    assert_null(buf);
    device_free(&d);
}

/* ---- migration 3 ----------------------------------------------------------------------- */

static sqlite3 *open_store(struct env *e)
{
    char path[128], hex[80];
    struct cry_secret *key = NULL;
    sqlite3 *db = NULL;
    FILE *f;
    snprintf(path, sizeof path, "%s/hub.key", e->dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(hex, sizeof hex, f));
    fclose(f);
    hex[2 * CRY_KEY_BYTES] = '\0';
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &key), CMC_OK);
    assert_int_equal(cry_unhex(key->buf, CRY_KEY_BYTES, hex), CMC_OK);
    snprintf(path, sizeof path, "%s/hub.db", e->dir);
    assert_int_equal(db_open(path, key, &db), CMC_OK);
    cry_secret_free(key);
    return db;
}

/* Rewrites the store's holdings the way migrations 1 and 2 kept them - table `held`, a row
 * per device, plan and page, the row a device's unproven page replaced kept beside it - and
 * the plans table without numbers, at schema version 2. */
static const char to_schema_2[] =
    "CREATE TABLE held(device_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " to_cursor INTEGER NOT NULL, version INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, plan_id, to_cursor)) WITHOUT ROWID;"
    "CREATE INDEX held_cursor ON held(device_id, to_cursor);"
    "INSERT INTO held SELECT hd.device_id, p.plan_id, h.to_cursor, h.version FROM holdings h"
    " JOIN holders hd ON hd.num = h.dev JOIN plans p ON p.num = h.plan;"
    "INSERT INTO held SELECT hd.device_id, p.plan_id, h.prev_cursor, h.prev_version"
    " FROM holdings h JOIN holders hd ON hd.num = h.dev JOIN plans p ON p.num = h.plan"
    " JOIN devices d ON d.device_id = hd.device_id"
    " WHERE h.to_cursor > d.cursor AND h.prev_version IS NOT NULL;"
    "DROP TABLE holdings;"
    "DROP TABLE holders;"
    "DROP TABLE unproven;"
    "CREATE TABLE nonces(device_id TEXT NOT NULL, nonce TEXT NOT NULL, at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, nonce)) WITHOUT ROWID;"
    "CREATE TABLE plans_old(plan_id TEXT PRIMARY KEY, nhs TEXT NOT NULL UNIQUE,"
    " latest INTEGER NOT NULL, latest_status INTEGER NOT NULL,"
    " published INTEGER NOT NULL DEFAULT 0, region TEXT, team TEXT, care_home TEXT,"
    " withdrawn INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, created INTEGER NOT NULL);"
    "INSERT INTO plans_old SELECT plan_id, nhs, latest, latest_status, published, region, team,"
    " care_home, withdrawn, seq, created FROM plans ORDER BY num;"
    "DROP TABLE plans;"
    "ALTER TABLE plans_old RENAME TO plans;"
    "CREATE INDEX plans_seq ON plans(seq);"
    "CREATE INDEX plans_region ON plans(region, seq);"
    "CREATE INDEX plans_home ON plans(care_home, seq);"
    "ALTER TABLE devices DROP COLUMN audit_key;"
    "ALTER TABLE devices DROP COLUMN audit_sealed;"
    "ALTER TABLE devices DROP COLUMN audit_alarm;"
    "ALTER TABLE devices DROP COLUMN audit_alarm_at;"
    "DROP TABLE lost_plans;"
    "PRAGMA user_version = 2;";

static void test_migration_keeps_holdings(void **state)
{
    struct env *e = *state;
    char x[PLAN_ID_LEN + 1], y[PLAN_ID_LEN + 1], z[PLAN_ID_LEN + 1];
    struct device settled, lost;
    int64_t v1;
    sqlite3 *db;

    if (tst_hub_store_pg()) {
        skip(); /* SQLCipher's own migration; a PostgreSQL store starts at the newest schema */
        return;
    }

    import_published(e, 0, "9434765919", x);
    import_published(e, 1, "4010232137", y);
    new_device(e, &settled);
    new_device(e, &lost);
    sync_device(e, &settled);
    sync_device(e, &lost);
    v1 = held_plan(&lost, x)->version;
    republish(e, x, "days");
    import_published(e, 2, "9990001111", z);
    pull_page(e, &lost, 0); /* an unproven page: delta for x, put of z */
    assert_int_equal(op_for(&lost, x)->kind, BUNDLE_OP_DELTA);

    hub_close(e->h);
    e->h = NULL;
    db = open_store(e);
    assert_int_equal(db_exec(db, to_schema_2), CMC_OK);
    {
        sqlite3_stmt *st = NULL;
        int has_row = 0;
        assert_int_equal(db_prepare(db, "SELECT count(*) FROM held", &st), CMC_OK);
        assert_int_equal(db_step(db, st, &has_row), CMC_OK);
        assert_true(has_row);
        assert_int_equal(sqlite3_column_int(st, 0), 2 + 2 + 2); /* x, y each; x's prev, z */
        sqlite3_finalize(st);
    }
    db_close(db);
    assert_int_equal(hub_open(e->dir, &e->h), CMC_OK);

    /* what the hub recorded carries over: the unproven page is still counted by `plan show`,
     * and the settled device still holds v1 */
    assert_int_equal(holding_of(e, z, lost.id), published_version(e, z));
    assert_int_equal(holding_of(e, z, settled.id), -1);
    assert_int_equal(holding_of(e, x, settled.id), v1);
    /* the lost page comes again against what the device really holds */
    pull_page(e, &lost, 1);
    assert_int_equal(op_for(&lost, x)->kind, BUNDLE_OP_DELTA);
    assert_int_equal(op_for(&lost, x)->base, v1);
    assert_int_equal(op_for(&lost, z)->kind, BUNDLE_OP_PUT);
    assert_null(op_for(&lost, y));
    pull_page(e, &lost, 1);
    assert_int_equal(lost.n_ops, 0);
    /* the other device: a delta and a put, nothing else */
    pull_page(e, &settled, 1);
    assert_int_equal(settled.n_ops, 2);
    assert_int_equal(op_for(&settled, x)->kind, BUNDLE_OP_DELTA);
    assert_int_equal(op_for(&settled, x)->base, v1);
    pull_page(e, &settled, 1);
    assert_int_equal(settled.n_ops, 0);
    for (size_t i = 0; i < settled.n_held; i++)
        assert_true(plan_equal(&settled.held[i], held_plan(&lost, settled.held[i].plan_id)));
    /* new plans get numbers after the old ones, and the feed carries on */
    {
        char w[PLAN_ID_LEN + 1];
        import_published(e, 3, "9990002223", w);
        pull_page(e, &settled, 1);
        assert_int_equal(settled.n_ops, 1);
        assert_int_equal(op_for(&settled, w)->kind, BUNDLE_OP_PUT);
    }
    device_free(&settled);
    device_free(&lost);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lost_page_restores_previous_holding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_purge_is_sent_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_below_replaced_holding_sends_put, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_poll_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_on_one_base_share_the_delta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_keeps_holdings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages_fetched_ahead_and_lost_come_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_page_fetched_ahead_lost_after_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plan_in_unproven_page_waits_for_proof, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
