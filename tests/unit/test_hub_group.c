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
    int rc;
    uint8_t *buf;
    size_t len;
};

static void *request_run(void *arg)
{
    struct request *r = arg;
    hub_group_lock(r->e->h, &mu);
    if (r->ack != NULL)
        r->rc = hub_ack(r->e->h, r->device_id, &r->ack, 1, 0);
    else
        r->rc = hub_pull(r->e->h, r->device_id, r->cursor, r->cursor, 0, &r->buf, &r->len);
    hub_group_unlock(r->e->h, &mu);
    return NULL;
}

/* Runs the n requests together: all of them are waiting for the mutex before any gets it. */
static void run_together(struct tst_hub *e, struct request *r, size_t n)
{
    pthread_t t[N_DEV];
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n; i++) {
        r[i].e = e;
        assert_int_equal(pthread_create(&t[i], NULL, request_run, &r[i]), 0);
    }
    for (int spins = 0; hub_group_coming(e->h) < n; spins++) {
        assert_true(spins < 100000); /* 100 s: the threads never started */
        usleep(1000);
    }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
}

static int holders(struct tst_hub *e, const char *id, struct tst_holders *l)
{
    memset(l, 0, sizeof *l);
    assert_int_equal(hub_plan_holders(e->h, id, tst_holders_cb, l), CMC_OK);
    return l->n;
}

/* n region devices and one published plan; grouping on. */
static void setup_fleet(struct tst_hub *e, struct tst_device *d, size_t n, struct request *r,
                        char id[PLAN_ID_LEN + 1])
{
    if (tst_hub_store_pg())
        skip(); /* grouping is SQLCipher's: PostgreSQL nodes commit each request themselves */
    tst_hub_import_published(e, 0, "9434765919", id);
    for (size_t i = 0; i < n; i++) {
        tst_device_new(e, &d[i], "region:" TST_REGION, "urgent_care");
        memset(&r[i], 0, sizeof r[i]);
        r[i].device_id = d[i].id;
    }
    assert_int_equal(hub_group_attach(e->h, &mu), CMC_OK);
}

static void free_fleet(struct tst_hub *e, struct tst_device *d, size_t n, struct request *r)
{
    hub_group_detach(e->h);
    for (size_t i = 0; i < n; i++) {
        cmc_free(r[i].buf);
        tst_device_free(&d[i]);
    }
}

static void test_concurrent_pulls_share_one_commit(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d[N_DEV];
    struct request r[N_DEV];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];

    setup_fleet(e, d, N_DEV, r, id);
    uint64_t before = hub_group_commits(e->h);
    run_together(e, r, N_DEV);
    /* every pull answered with its own signed page, after one shared commit */
    assert_int_equal(hub_group_commits(e->h), before + 1);
    for (size_t i = 0; i < N_DEV; i++) {
        assert_int_equal(r[i].rc, CMC_OK);
        assert_non_null(r[i].buf);
        tst_device_apply(e, &d[i], r[i].buf, r[i].len, 1);
        assert_non_null(tst_device_held(&d[i], id));
    }
    /* the holdings of all of them are durable: a withdrawal knows every holder */
    assert_int_equal(holders(e, id, &l), N_DEV);
    for (size_t i = 0; i < N_DEV; i++)
        assert_true(tst_holders_index(&l, d[i].id) >= 0 || i >= 8);
    free_fleet(e, d, N_DEV, r);
}

static void test_concurrent_acks_share_one_commit(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d[N_DEV];
    struct request r[N_DEV];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];

    setup_fleet(e, d, N_DEV, r, id);
    for (size_t i = 0; i < N_DEV; i++) {
        d[i].no_ack = 1;
        tst_device_sync(e, &d[i], 0);
    }
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    for (size_t i = 0; i < N_DEV; i++) {
        tst_device_sync(e, &d[i], 0);
        assert_null(tst_device_held(&d[i], id));
    }
    assert_int_equal(holders(e, id, &l), N_DEV); /* purged, not yet acknowledged */
    uint64_t before = hub_group_commits(e->h);
    for (size_t i = 0; i < N_DEV; i++)
        r[i].ack = id;
    run_together(e, r, N_DEV);
    assert_int_equal(hub_group_commits(e->h), before + 1);
    for (size_t i = 0; i < N_DEV; i++)
        assert_int_equal(r[i].rc, CMC_OK);
    assert_int_equal(holders(e, id, &l), 0); /* every acknowledgement recorded */
    free_fleet(e, d, N_DEV, r);
}

static int refuse_commit(void *arg)
{
    (void)arg;
    return 1; /* SQLite turns the COMMIT into a ROLLBACK and fails it */
}

static void test_failed_commit_fails_every_member_and_loses_nothing(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d[N_DEV];
    struct request r[N_DEV];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];

    setup_fleet(e, d, N_DEV, r, id);
    uint64_t before = hub_group_commits(e->h);
    sqlite3_commit_hook(e->h->db->lite, refuse_commit, NULL);
    run_together(e, r, N_DEV);
    sqlite3_commit_hook(e->h->db->lite, NULL, NULL);
    /* nobody was handed a page whose holdings were not recorded */
    assert_int_equal(hub_group_commits(e->h), before);
    for (size_t i = 0; i < N_DEV; i++) {
        assert_int_not_equal(r[i].rc, CMC_OK);
        assert_null(r[i].buf);
    }
    assert_int_equal(holders(e, id, &l), 0);
    /* and nothing is lost: each device pulls again and gets the plan, now recorded */
    for (size_t i = 0; i < N_DEV; i++) {
        tst_device_sync(e, &d[i], 0);
        assert_non_null(tst_device_held(&d[i], id));
    }
    assert_int_equal(holders(e, id, &l), N_DEV);
    free_fleet(e, d, N_DEV, r);
}

static void test_failing_member_fails_alone(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d[N_DEV];
    struct request r[N_DEV];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];

    setup_fleet(e, d, N_DEV, r, id);
    r[2].cursor = 1000000; /* beyond the change log: refused after its savepoint opened */
    uint64_t before = hub_group_commits(e->h);
    run_together(e, r, N_DEV);
    assert_int_equal(hub_group_commits(e->h), before + 1);
    for (size_t i = 0; i < N_DEV; i++) {
        if (i == 2) {
            assert_int_equal(r[i].rc, CMC_ERR_INVALID);
            assert_null(r[i].buf);
            continue;
        }
        assert_int_equal(r[i].rc, CMC_OK);
        tst_device_apply(e, &d[i], r[i].buf, r[i].len, 1);
    }
    assert_int_equal(holders(e, id, &l), N_DEV - 1);
    assert_int_equal(tst_holders_index(&l, d[2].id), -1);
    free_fleet(e, d, N_DEV, r);
}

static void test_lone_pull_and_other_writes_commit_at_once(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d[1];
    struct request r[1];
    struct tst_holders l;
    char id[PLAN_ID_LEN + 1];

    setup_fleet(e, d, 1, r, id);
    uint64_t before = hub_group_commits(e->h);
    run_together(e, r, 1);
    assert_int_equal(r[0].rc, CMC_OK);
    assert_int_equal(hub_group_commits(e->h), before + 1);
    assert_int_equal(holders(e, id, &l), 1);
    /* a write of another kind runs in its own transaction, grouping on */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    tst_device_sync(e, &d[0], 0);
    assert_null(tst_device_held(&d[0], id));
    free_fleet(e, d, 1, r);
}

TST_HUB_MAIN(test_concurrent_pulls_share_one_commit, test_concurrent_acks_share_one_commit,
             test_failed_commit_fails_every_member_and_loses_nothing,
             test_failing_member_fails_alone, test_lone_pull_and_other_writes_commit_at_once)
