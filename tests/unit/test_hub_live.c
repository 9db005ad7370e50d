/*
 * test_hub_live.c - the change feed (hub/live.h) without sockets: GET /v1/wait answers at
 * once when the device is behind and 204 when it is current; a held wait stays held while
 * nothing concerns its device (a plan in another region), runs out after its hold, and is
 * answered when a plan in its view is approved, when its plan's consent is withdrawn (a
 * purge), when a wipe is ordered or its lease changes - the last three committed through a
 * second handle, as `cmc-hub` does from another process (on PostgreSQL: as another hub node
 * does, heard through LISTEN/NOTIFY). A second wait of the same device answers the first;
 * stopping the feed answers every wait.
 *
 * The wait query codec is checked byte for byte. The feed's thread runs for real (100 ms
 * ticks); holds run out on the fake monotonic clock.
 * Waiting for the thread is bounded (WAKE_MS) and never asserted as a latency.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "hub/live.h"
#include "hub/metrics.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/pg_fixture.h"

#define WAKE_MS 5000 /* the most the tests wait for the feed's thread */
#define QUIET_MS 600 /* ticks a wait must stay held through to count as not woken */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* the hub handle, as the server's */

struct waiter {
    struct hub_live_wait w;
    atomic_int resumed;
};

static void on_resume(void *arg)
{
    struct waiter *x = arg;
    atomic_fetch_add(&x->resumed, 1);
}

/* A wait of device d from its cursor, held for hold_s (fake) seconds. */
static void hold(hub_live *l, struct waiter *x, const struct tst_device *d, unsigned hold_s)
{
    memset(x, 0, sizeof *x);
    snprintf(x->w.device_id, sizeof x->w.device_id, "%s", d->id);
    x->w.cursor = d->cursor;
    x->w.scanned = d->cursor;
    x->w.lease_days = d->lease_days;
    x->w.deadline_ns = plat_mono_now_ns() + (uint64_t)hold_s * 1000000000ull;
    x->w.resume = on_resume;
    x->w.arg = x;
    pthread_mutex_lock(&mu);
    assert_int_equal(hub_live_hold(l, &x->w), CMC_OK);
    pthread_mutex_unlock(&mu);
}

/* 1 once x was resumed, within ms of real time (plat_sleep_ms would move the fake clock). */
static int resumed_within(struct waiter *x, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 20) {
        struct timespec ts = { 0, 20 * 1000 * 1000L };
        if (atomic_load(&x->resumed) > 0)
            return 1;
        nanosleep(&ts, NULL);
    }
    return atomic_load(&x->resumed) > 0;
}

static void sync_locked(struct tst_hub *e, struct tst_device *d)
{
    pthread_mutex_lock(&mu);
    tst_device_sync(e, d, 0);
    pthread_mutex_unlock(&mu);
}

/* GET /v1/wait through the API handler: its status. */
static int wait_status(struct tst_hub *e, struct tst_device *d, uint64_t cursor, int64_t lease)
{
    struct wire_wait_query q = { .cursor = cursor, .lease = lease, .hold = 1 };
    struct reqsig_headers hdrs;
    struct hub_response resp;
    char path[128];
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(wire_wait_path(&q, path, sizeof path), CMC_OK);
    tst_device_call(e, d, "GET", path, NULL, 0, &hdrs, &resp);
    int status = resp.status;
    if (status == 200)
        assert_true(tst_body_has(&resp, "changed"));
    hub_response_free(&resp);
    return status;
}

/* The request target, byte for byte, and its strict decoder (sync/wire.h). */
static void test_wait_query_codec(void **state)
{
    struct wire_wait_query q = { .cursor = 42, .lease = 14, .hold = 50 }, d;
    char path[128];
    (void)state;
    assert_int_equal(wire_wait_path(&q, path, sizeof path), CMC_OK);
    assert_string_equal(path, "/v1/wait?cursor=42&lease=14&hold=50");
    q.lease = -1;
    q.hold = 0;
    assert_int_equal(wire_wait_path(&q, path, sizeof path), CMC_OK);
    assert_string_equal(path, "/v1/wait?cursor=42");
    assert_int_equal(wire_wait_path(&q, path, 12), CMC_ERR_INVALID);
    assert_int_equal(wire_wait_query_decode("cursor=7&lease=3&hold=20&x=1", &d), CMC_OK);
    assert_true(d.cursor == 7 && d.lease == 3 && d.hold == 20);
    assert_int_equal(wire_wait_query_decode("cursor=7", &d), CMC_OK);
    assert_true(d.lease == -1 && d.hold == WIRE_WAIT_HOLD_MAX);
    assert_int_equal(wire_wait_query_decode("cursor=7&hold=3600", &d), CMC_OK);
    assert_int_equal(d.hold, WIRE_WAIT_HOLD_MAX); /* capped: under a proxy's idle cut */
    assert_int_equal(wire_wait_query_decode("lease=3", &d), CMC_ERR_INVALID);
    assert_int_equal(wire_wait_query_decode("cursor=-1", &d), CMC_ERR_INVALID);
    assert_int_equal(wire_wait_query_decode("cursor=1&lease=99999999999", &d), CMC_ERR_INVALID);
}

static void test_wait_answers_at_once_when_behind(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    char id[PLAN_ID_LEN + 1];
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_hub_import_published(e, 0, "9434765919", id);
    assert_int_equal(wait_status(e, &d, 0, -1), 200); /* behind: pull now */
    tst_device_sync(e, &d, 0);
    assert_non_null(tst_device_held(&d, id));
    assert_int_equal(wait_status(e, &d, d.cursor, d.lease_days), 204); /* current */
    assert_int_equal(wait_status(e, &d, d.cursor, d.lease_days + 1), 200); /* lease differs */
    /* a plan outside its region changes the log's head, not the device's view */
    tst_hub_import(e, 1, "4010232137", "north-central-london", NULL, "nurse1", id);
    tst_hub_publish(e, id);
    assert_int_equal(wait_status(e, &d, d.cursor, d.lease_days), 204);
    tst_device_free(&d);
}

static void test_wait_refuses_bad_requests(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct reqsig_headers hdrs;
    struct hub_response resp;
    /* the server holds what its metrics name "wait" (hub/server.c routes on it) */
    assert_string_equal(hub_metrics_endpoint("/v1/wait?cursor=1&hold=50"), "wait");
    assert_string_equal(hub_metrics_endpoint("/v1/tls-pins"), "tls-pins");
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    memset(&hdrs, 0, sizeof hdrs);
    tst_device_call(e, &d, "GET", "/v1/wait?lease=3", NULL, 0, &hdrs, &resp);
    assert_int_equal(resp.status, 400); /* no cursor */
    hub_response_free(&resp);
    memset(&hdrs, 0, sizeof hdrs);
    tst_device_call(e, &d, "POST", "/v1/wait?cursor=0", NULL, 0, &hdrs, &resp);
    assert_int_equal(resp.status, 405);
    hub_response_free(&resp);
    /* unsigned: refused before anything is looked at */
    struct hub_request req = { .method = "GET", .path = "/v1/wait?cursor=0" };
    hub_api_handle(e->h, &req, &resp);
    assert_int_equal(resp.status, 401);
    hub_response_free(&resp);
    tst_device_free(&d);
}

static void test_wait_holds_then_runs_out(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct waiter x;
    char id[PLAN_ID_LEN + 1];
    hub_live *l = NULL;
    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &d, 0);
    assert_int_equal(hub_live_start(e->h, &mu, &l), CMC_OK);
    hold(l, &x, &d, WIRE_WAIT_HOLD_MAX);
    assert_false(resumed_within(&x, QUIET_MS));
    assert_int_equal(hub_live_held(l), 1);
    plat_fake_clock_advance((uint64_t)(WIRE_WAIT_HOLD_MAX + 1) * 1000000000ull);
    assert_true(resumed_within(&x, WAKE_MS));
    assert_int_equal(x.w.result, HUB_LIVE_TIMEOUT);
    assert_int_equal(atomic_load(&x.resumed), 1);
    assert_int_equal(hub_live_held(l), 0);
    hub_live_stop(l);
    tst_device_free(&d);
}

static void test_wait_wakes_on_approve_in_scope_only(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct waiter x;
    char id[PLAN_ID_LEN + 1];
    hub_live *l = NULL;
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &d, 0);
    assert_int_equal(hub_live_start(e->h, &mu, &l), CMC_OK);
    hold(l, &x, &d, WIRE_WAIT_HOLD_MAX);
    /* another region's plan: the device's wait stays held */
    pthread_mutex_lock(&mu);
    tst_hub_import(e, 1, "4010232137", "north-central-london", NULL, "nurse1", id);
    tst_hub_publish(e, id);
    pthread_mutex_unlock(&mu);
    assert_false(resumed_within(&x, QUIET_MS));
    /* a plan in its region: answered "changed" */
    pthread_mutex_lock(&mu);
    tst_hub_import_published(e, 0, "9434765919", id);
    pthread_mutex_unlock(&mu);
    assert_true(resumed_within(&x, WAKE_MS));
    assert_int_equal(x.w.result, HUB_LIVE_CHANGED);
    sync_locked(e, &d);
    assert_non_null(tst_device_held(&d, id));
    hub_live_stop(l);
    tst_device_free(&d);
}

/* Commits through a second handle (another process, to the server's connection). */
static hub *other_handle(struct tst_hub *e)
{
    hub *h2 = NULL;
    assert_int_equal(hub_open(e->dir, &h2), CMC_OK);
    return h2;
}

static void test_wait_wakes_on_purge(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct waiter x;
    char id[PLAN_ID_LEN + 1];
    hub_live *l = NULL;
    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &d, 0);
    assert_non_null(tst_device_held(&d, id));
    assert_int_equal(hub_live_start(e->h, &mu, &l), CMC_OK);
    hold(l, &x, &d, WIRE_WAIT_HOLD_MAX);
    hub *h2 = other_handle(e);
    assert_int_equal(hub_plan_withdraw_consent(h2, "admin1", id), CMC_OK);
    hub_close(h2);
    assert_true(resumed_within(&x, WAKE_MS));
    assert_int_equal(x.w.result, HUB_LIVE_CHANGED);
    sync_locked(e, &d);
    assert_int_equal(d.purges, 1);
    assert_null(tst_device_held(&d, id));
    hub_live_stop(l);
    tst_device_free(&d);
}

/* Two synced urgent-care devices in the region, each with a wait held on a started feed. */
static hub_live *two_held(struct tst_hub *e, struct tst_device *d, struct tst_device *other,
                          struct waiter *x, struct waiter *y)
{
    hub_live *l = NULL;
    tst_device_new(e, d, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, other, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, d, 0);
    tst_device_sync(e, other, 0);
    assert_int_equal(hub_live_start(e->h, &mu, &l), CMC_OK);
    hold(l, x, d, WIRE_WAIT_HOLD_MAX);
    hold(l, y, other, WIRE_WAIT_HOLD_MAX);
    return l;
}

static void test_wait_wakes_on_wipe_and_lease(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d, other;
    struct waiter x, y;
    hub_live *l = two_held(e, &d, &other, &x, &y);
    hub *h2 = other_handle(e);
    uint64_t heard = hub_live_notified(l);
    assert_int_equal(hub_device_wipe(h2, d.id), CMC_OK); /* the change log does not move */
    assert_true(resumed_within(&x, WAKE_MS));
    assert_int_equal(x.w.result, HUB_LIVE_CHANGED);
    /* On PostgreSQL the other handle is another node: its commit NOTIFYs, and the feed heard
     * it on its LISTEN connection (with a listener there is no timed full look, and a wipe
     * order leaves the change log's head where it was: nothing else could have woken it). */
    if (hub_store_shared(e->h))
        assert_true(hub_live_notified(l) > heard);
    assert_false(resumed_within(&y, QUIET_MS)); /* the other device's wait stays held */
    heard = hub_live_notified(l);
    assert_int_equal(hub_device_lease_set(h2, other.id, 3), CMC_OK);
    assert_true(resumed_within(&y, WAKE_MS));
    assert_int_equal(y.w.result, HUB_LIVE_CHANGED);
    if (hub_store_shared(e->h))
        assert_true(hub_live_notified(l) > heard);
    else
        assert_int_equal(hub_live_notified(l), 0);
    hub_close(h2);
    hub_live_stop(l);
    tst_device_free_all(&d, &other, NULL);
}

/* On PostgreSQL the feed's listening connection is cut (a database restart, a failover, an
 * idle-session reaper): a wipe ordered through another node meanwhile still wakes the wait,
 * and the feed makes its connection again: a lease change after it is heard there (the
 * once-a-second look of a feed without a listener would wake the wait but hear nothing). */
static void test_wait_wakes_after_the_listener_is_cut(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d, other;
    struct waiter x, y;
    hub_live *l = NULL;
    if (!tst_hub_store_pg()) {
        skip(); /* one SQLCipher file: no listening connection */
        return;
    }
    l = two_held(e, &d, &other, &x, &y);
    tst_pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN cmc_hub%' AND pid <> pg_backend_pid()");
    hub *h2 = other_handle(e);
    assert_int_equal(hub_device_wipe(h2, d.id), CMC_OK);
    assert_true(resumed_within(&x, WAKE_MS));
    assert_int_equal(x.w.result, HUB_LIVE_CHANGED);
    uint64_t heard = hub_live_notified(l);
    assert_int_equal(hub_device_lease_set(h2, other.id, 3), CMC_OK);
    assert_true(resumed_within(&y, WAKE_MS));
    assert_int_equal(y.w.result, HUB_LIVE_CHANGED);
    assert_true(hub_live_notified(l) > heard);
    hub_close(h2);
    hub_live_stop(l);
    tst_device_free_all(&d, &other, NULL);
}

static void test_second_wait_and_stop_answer_held_waits(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d, other;
    struct waiter x, x2, y;
    hub_live *l = NULL;
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &other, "all", "urgent_care");
    tst_device_sync(e, &d, 0);
    tst_device_sync(e, &other, 0);
    assert_int_equal(hub_live_start(e->h, &mu, &l), CMC_OK);
    hold(l, &x, &d, WIRE_WAIT_HOLD_MAX);
    hold(l, &y, &other, WIRE_WAIT_HOLD_MAX);
    hold(l, &x2, &d, WIRE_WAIT_HOLD_MAX); /* the device's old connection is gone */
    assert_int_equal(atomic_load(&x.resumed), 1);
    assert_int_equal(x.w.result, HUB_LIVE_TIMEOUT);
    assert_int_equal(hub_live_held(l), 2);
    hub_live_release(l, &x.w); /* no longer linked: a no-op */
    assert_int_equal(hub_live_held(l), 2);
    hub_live_stop(l);
    assert_int_equal(atomic_load(&x2.resumed), 1);
    assert_int_equal(atomic_load(&y.resumed), 1);
    assert_int_equal(x2.w.result, HUB_LIVE_TIMEOUT);
    assert_int_equal(atomic_load(&x.resumed), 1); /* never twice */
    tst_device_free_all(&d, &other, NULL);
}

TST_HUB_MAIN(test_wait_query_codec, test_wait_answers_at_once_when_behind, test_wait_refuses_bad_requests,
             test_wait_holds_then_runs_out, test_wait_wakes_on_approve_in_scope_only,
             test_wait_wakes_on_purge, test_wait_wakes_on_wipe_and_lease,
             test_wait_wakes_after_the_listener_is_cut,
             test_second_wait_and_stop_answer_held_waits)
