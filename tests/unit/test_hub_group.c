/*
 * test_hub_group.c - group commit (hub/feed_group.h): pulls and purge acknowledgements that
 * reach the hub together share one transaction and one commit, and each is answered only
 * once that commit has ended.
 *
 * The threads stand for the server's: each takes the hub mutex through hub_group_lock, as
 * hub/server.c does. The test holds the mutex until every thread is counted as coming, so
 * all of them join one group whatever the scheduler does; nothing here depends on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/feed_group.h"
#include "hub/hstore_int.h"
#include "hub/internal.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/plan.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/pg_fixture.h"

#define N_DEV 6

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* the hub handle, as the server's */

struct request {
    struct tst_hub *e;
    const char *device_id;
    uint64_t cursor;        /* pull from here (beyond the head: a pull that fails alone) */
    const char *ack;        /* acknowledge this purge instead of pulling */
    const char *add;        /* add a device of this name instead: a write in its own
                             * transaction */
    char added[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    int rc;
    uint8_t *buf;
    size_t len;
};

static void *request_run(void *arg)
{
    struct request *r = arg;
    hub_group_lock(r->e->h, &mu);
    if (r->add != NULL)
        r->rc = hub_device_add(r->e->h, r->add, "region:" TST_REGION, "urgent_care", r->added,
                               r->code);
    else if (r->ack != NULL)
        r->rc = hub_ack(r->e->h, r->device_id, &r->ack, 1, 0);
    else
        r->rc = hub_pull(r->e->h, r->device_id, r->cursor, r->cursor, 0, &r->buf, &r->len);
    hub_group_unlock(r->e->h, &mu);
    return NULL;
}

/* n region devices, one published plan, and a request for each device; grouping on. */
struct fleet {
    size_t n;
    struct tst_device d[N_DEV];
    struct request r[N_DEV];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];
};

static void fleet_setup(struct tst_hub *e, struct fleet *f, size_t n)
{
    if (tst_hub_store_pg())
        skip(); /* grouping is SQLCipher's: PostgreSQL nodes commit each request themselves */
    memset(f, 0, sizeof *f);
    f->n = n;
    tst_hub_import_published(e, 0, "9434765919", f->id);
    for (size_t i = 0; i < n; i++) {
        tst_device_new(e, &f->d[i], "region:" TST_REGION, "urgent_care");
        f->r[i].e = e;
        f->r[i].device_id = f->d[i].id;
    }
    assert_int_equal(hub_group_attach(e->h, &mu), CMC_OK);
}

static void fleet_free(struct tst_hub *e, struct fleet *f)
{
    hub_group_detach(e->h);
    for (size_t i = 0; i < f->n; i++) {
        cmc_free(f->r[i].buf);
        tst_device_free(&f->d[i]);
    }
}

/* Runs the fleet's requests together (all of them are waiting for the mutex before any gets
 * it); the number of commits they made. */
static uint64_t run_together(struct tst_hub *e, struct fleet *f)
{
    pthread_t t[N_DEV];
    uint64_t before = hub_group_commits(e->h);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < f->n; i++)
        assert_int_equal(pthread_create(&t[i], NULL, request_run, &f->r[i]), 0);
    for (int spins = 0; hub_group_coming(e->h) < f->n; spins++) {
        assert_true(spins < 100000); /* 100 s: the threads never started */
        usleep(1000);
    }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < f->n; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    return hub_group_commits(e->h) - before;
}

/* A device's sync as a request of its own, under the mutex like every use of the handle. */
static void sync_locked(struct tst_hub *e, struct tst_device *d)
{
    hub_group_lock(e->h, &mu);
    tst_device_sync(e, d, 0);
    hub_group_unlock(e->h, &mu);
}

/* The devices the hub records as holding the plan (a withdrawal purges each of them). */
static int holders(struct tst_hub *e, struct fleet *f)
{
    memset(&f->l, 0, sizeof f->l);
    assert_int_equal(hub_plan_holders(e->h, f->id, tst_holders_cb, &f->l), CMC_OK);
    return f->l.n;
}

/* Every request but `failed` answered with a page the device applies, holding the plan. */
static void apply_all(struct tst_hub *e, struct fleet *f, size_t failed)
{
    for (size_t i = 0; i < f->n; i++) {
        if (i == failed)
            continue;
        assert_int_equal(f->r[i].rc, CMC_OK);
        assert_non_null(f->r[i].buf);
        tst_device_apply(e, &f->d[i], f->r[i].buf, f->r[i].len, 1);
        assert_non_null(tst_device_held(&f->d[i], f->id));
    }
}

static void test_concurrent_pulls_share_one_commit(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;

    fleet_setup(e, &f, N_DEV);
    /* every pull answered with its own signed page, after one shared commit */
    assert_int_equal(run_together(e, &f), 1);
    apply_all(e, &f, N_DEV);
    /* the holdings of all of them are durable: a withdrawal knows every holder */
    assert_int_equal(holders(e, &f), N_DEV);
    for (size_t i = 0; i < N_DEV; i++)
        assert_true(tst_holders_index(&f.l, f.d[i].id) >= 0);
    fleet_free(e, &f);
}

static void test_concurrent_acks_share_one_commit(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;

    fleet_setup(e, &f, N_DEV);
    for (size_t i = 0; i < N_DEV; i++) {
        f.d[i].no_ack = 1;
        sync_locked(e, &f.d[i]);
    }
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", f.id), CMC_OK);
    for (size_t i = 0; i < N_DEV; i++) {
        sync_locked(e, &f.d[i]);
        assert_null(tst_device_held(&f.d[i], f.id));
        f.r[i].ack = f.id;
    }
    assert_int_equal(holders(e, &f), N_DEV); /* purged, not yet acknowledged */
    assert_int_equal(run_together(e, &f), 1);
    for (size_t i = 0; i < N_DEV; i++)
        assert_int_equal(f.r[i].rc, CMC_OK);
    assert_int_equal(holders(e, &f), 0); /* every acknowledgement recorded */
    fleet_free(e, &f);
}

static int refuse_commit(void *arg)
{
    (void)arg;
    return 1; /* SQLite turns the COMMIT into a ROLLBACK and fails it */
}

static void test_failed_commit_fails_every_member_and_loses_nothing(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;

    fleet_setup(e, &f, N_DEV);
    sqlite3_commit_hook(e->h->db->lite, refuse_commit, NULL);
    assert_int_equal(run_together(e, &f), 0);
    sqlite3_commit_hook(e->h->db->lite, NULL, NULL);
    /* nobody was handed a page whose holdings were not recorded */
    for (size_t i = 0; i < N_DEV; i++) {
        assert_int_not_equal(f.r[i].rc, CMC_OK);
        assert_null(f.r[i].buf);
    }
    assert_int_equal(holders(e, &f), 0);
    /* and nothing is lost: each device pulls again and gets the plan, now recorded */
    for (size_t i = 0; i < N_DEV; i++) {
        sync_locked(e, &f.d[i]);
        assert_non_null(tst_device_held(&f.d[i], f.id));
    }
    assert_int_equal(holders(e, &f), N_DEV);
    fleet_free(e, &f);
}

static void test_failing_member_fails_alone(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;

    fleet_setup(e, &f, N_DEV);
    f.r[2].cursor = 1000000; /* beyond the change log: refused after its savepoint opened */
    assert_int_equal(run_together(e, &f), 1);
    assert_int_equal(f.r[2].rc, CMC_ERR_INVALID);
    assert_null(f.r[2].buf);
    apply_all(e, &f, 2);
    assert_int_equal(holders(e, &f), N_DEV - 1);
    assert_int_equal(tst_holders_index(&f.l, f.d[2].id), -1);
    fleet_free(e, &f);
}

static void test_other_write_among_pulls_commits_everything(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;
    struct hub_device_info dev;

    fleet_setup(e, &f, N_DEV);
    f.r[3].add = "spare tablet"; /* its own transaction: an open group is committed first */
    uint64_t commits = run_together(e, &f);
    assert_true(commits >= 1 && commits <= 2);
    assert_int_equal(f.r[3].rc, CMC_OK);
    assert_int_equal(hub_device_get(e->h, f.r[3].added, &dev), CMC_OK);
    apply_all(e, &f, 3);
    assert_int_equal(holders(e, &f), N_DEV - 1);
    fleet_free(e, &f);
}

static void test_lone_pull_and_other_writes_commit_at_once(void **state)
{
    struct tst_hub *e = *state;
    struct fleet f;

    fleet_setup(e, &f, 1);
    assert_int_equal(run_together(e, &f), 1);
    apply_all(e, &f, 1);
    assert_int_equal(holders(e, &f), 1);
    /* a write of another kind runs in its own transaction, grouping on */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", f.id), CMC_OK);
    sync_locked(e, &f.d[0]);
    assert_null(tst_device_held(&f.d[0], f.id));
    fleet_free(e, &f);
}

TST_HUB_MAIN(test_concurrent_pulls_share_one_commit, test_concurrent_acks_share_one_commit,
             test_failed_commit_fails_every_member_and_loses_nothing,
             test_failing_member_fails_alone, test_other_write_among_pulls_commits_everything,
             test_lone_pull_and_other_writes_commit_at_once)
