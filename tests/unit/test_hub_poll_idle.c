/*
 * test_hub_poll_idle.c - idle polls answered on a shared store in one batched statement
 * outside the hub mutex (hub/poll_idle.h): the answer is the one the ordinary pull gives,
 * byte for byte but for the header's time and signature; a replay is refused by this path and
 * by another node; every state that is not idle goes the ordinary way with nothing recorded
 * (the same signed request then succeeds there); last seen is noted; a connection the
 * server cut fails one poll and is made again; polls from many threads at once are each
 * answered once. PostgreSQL only: on SQLCipher the handle answers idle
 * polls itself and this path is never opened, so the program exits 77 (skipped) there; it
 * runs in unit-pg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/internal.h"
#include "hub/poll_idle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/reqsig.h"
#include "sync/wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/pg_fixture.h"

/* A device at the head with its last pull settled, and the idle path on the store. */
struct idle_env {
    struct tst_device d;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    char path[160];
    hub_idle *ip;
};

static void pull_path(const struct tst_device *d, uint64_t codecs, char *path, size_t cap)
{
    struct wire_pull_query q = {0};
    q.cursor = q.applied = d->cursor;
    q.schema = PLAN_EDITION_CURRENT;
    q.codecs = codecs;
    q.seal = 1;
    assert_int_equal(wire_pull_path(&q, path, cap), CMC_OK);
}

static void idle_setup(struct tst_hub *e, struct idle_env *v, const char *scope)
{
    char id[PLAN_ID_LEN + 1];
    memset(v, 0, sizeof *v);
    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &v->d, scope, "urgent_care");
    tst_device_sync(e, &v->d, 0);
    pull_path(&v->d, 0, v->path, sizeof v->path);
    /* the ordinary pull from the synced cursor proves the last page: the device is settled */
    assert_int_equal(tst_device_send(e, &v->d, "GET", v->path, NULL, 0, NULL), 200);
    assert_int_equal(hub_device_key(e->h, v->d.id, v->pk), CMC_OK);
    assert_int_equal(hub_idle_open(hub_db_url(), HUB_IDLE_CONNS, &v->ip), CMC_OK);
}

static void idle_teardown(struct idle_env *v)
{
    hub_idle_close(v->ip);
    tst_device_free(&v->d);
}

/* The idle path on a request signed afresh (hdrs->signature empty) or replayed; returns
 * whether it answered. checked_pk is the key the server verified the signature with. */
static int idle_call(struct tst_hub *e, struct idle_env *v, const char *path,
                     struct reqsig_headers *hdrs, const uint8_t *checked_pk,
                     struct hub_response *resp)
{
    char name[HUB_NAME_MAX + PLAN_ID_LEN + 8];
    struct hub_request req;
    if (hdrs->signature[0] == '\0')
        assert_int_equal(reqsig_sign(v->d.sk, v->d.id, "GET", path, NULL, 0, hdrs), CMC_OK);
    req = tst_request("GET", path, hdrs, NULL, 0);
    req.checked_pk = checked_pk;
    req.checked_ok = 1;
    name[0] = '\0';
    int answered = hub_api_pull_idle(e->h, v->ip, &req, resp, name, sizeof name);
    if (answered && resp->status == 200)
        assert_non_null(strstr(name, v->d.id)); /* the device by name for the log */
    return answered;
}

/* The ordinary answer and the idle path's, for one state: the same page. */
static void same_answer(struct tst_hub *e, struct idle_env *v, uint64_t codecs)
{
    struct reqsig_headers h1, h2;
    struct hub_response a, b;
    char path[160];

    pull_path(&v->d, codecs, path, sizeof path);
    memset(&h1, 0, sizeof h1);
    memset(&h2, 0, sizeof h2);
    tst_device_call(e, &v->d, "GET", path, NULL, 0, &h1, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(idle_call(e, v, path, &h2, v->pk, &b), 1);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.content_type, a.content_type);
    struct bundle_header ha = tst_device_apply(e, &v->d, a.body, a.body_len, 1);
    int64_t lease_a = v->d.lease_days;
    v->d.lease_days = -1;
    struct bundle_header hb = tst_device_apply(e, &v->d, b.body, b.body_len, 1);
    assert_int_equal(hb.from_cursor, ha.from_cursor);
    assert_int_equal(hb.to_cursor, ha.to_cursor);
    assert_int_equal(hb.flags, ha.flags);
    assert_int_equal(hb.op_count, ha.op_count);
    assert_int_equal(v->d.lease_days, lease_a);
    /* past the header (its time and signature), the bytes are the same */
    assert_int_equal(b.body_len, a.body_len);
    assert_memory_equal(b.body + BUNDLE_HEADER_BYTES, a.body + BUNDLE_HEADER_BYTES,
                        a.body_len - BUNDLE_HEADER_BYTES);
    hub_response_free(&a);
    hub_response_free(&b);
}

static void test_idle_answer_is_the_ordinary_one(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    uint64_t asked, idle;
    idle_setup(e, &v, "region:" TST_REGION);
    same_answer(e, &v, 0);
    same_answer(e, &v, WIRE_CODEC_BROTLI);
    /* the lease in force: the scope's, then the device's own */
    assert_int_equal(hub_scope_lease_set(e->h, "region:" TST_REGION, 5), CMC_OK);
    same_answer(e, &v, 0);
    assert_int_equal(v.d.lease_days, 5);
    assert_int_equal(hub_device_lease_set(e->h, v.d.id, 3), CMC_OK);
    same_answer(e, &v, 0);
    assert_int_equal(v.d.lease_days, 3);
    hub_idle_counts(v.ip, &asked, &idle);
    assert_int_equal(asked, 4);
    assert_int_equal(idle, 4);
    idle_teardown(&v);
}

static void test_replay_refused_here_and_at_another_node(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    struct reqsig_headers hdrs;
    struct hub_response resp;
    struct hub_request req;
    hub *b = NULL;
    idle_setup(e, &v, "all");
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    /* the same signed request again: here, and at another node the ordinary way */
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_int_equal(resp.status, 401);
    assert_true(tst_body_has(&resp, "replay"));
    hub_response_free(&resp);
    assert_int_equal(hub_open(e->dir, &b), CMC_OK);
    req = tst_request("GET", v.path, &hdrs, NULL, 0);
    hub_api_handle(b, &req, &resp);
    assert_int_equal(resp.status, 401);
    assert_true(tst_body_has(&resp, "replay"));
    hub_response_free(&resp);
    hub_close(b);
    idle_teardown(&v);
}

/* The idle path declines (nothing recorded), and the same signed request then succeeds the
 * ordinary way with `status`; its answer is left in *resp. */
static void declined(struct tst_hub *e, struct idle_env *v, const char *path,
                     const uint8_t *checked_pk, int status, struct hub_response *resp)
{
    struct reqsig_headers hdrs;
    struct hub_request req;
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, v, path, &hdrs, checked_pk, resp), 0);
    req = tst_request("GET", path, &hdrs, NULL, 0);
    hub_api_handle(e->h, &req, resp);
    assert_int_equal(resp->status, status);
}

static void test_not_idle_goes_the_ordinary_way(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    struct hub_response resp;
    uint8_t other[CRY_SIGN_PK_BYTES];
    char path[160], y[PLAN_ID_LEN + 1];
    struct wire_pull_query q = {0};
    idle_setup(e, &v, "region:" TST_REGION);

    /* a key other than the stored one: the signature is checked again under the mutex */
    memcpy(other, v.pk, sizeof other);
    other[0] ^= 1;
    declined(e, &v, v.path, other, 200, &resp);
    hub_response_free(&resp);
    /* a cursor not yet committed (applied behind it) */
    q.cursor = v.d.cursor;
    q.applied = v.d.cursor - 1;
    q.schema = PLAN_EDITION_CURRENT;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    memset(&resp, 0, sizeof resp);
    {
        struct reqsig_headers hdrs;
        memset(&hdrs, 0, sizeof hdrs);
        assert_int_equal(idle_call(e, &v, path, &hdrs, v.pk, &resp), 0);
    }
    /* a plan published after the device's cursor: the ordinary pull brings it */
    tst_hub_import_published(e, 1, "9434765870", y);
    declined(e, &v, v.path, v.pk, 200, &resp);
    tst_device_apply(e, &v.d, resp.body, resp.body_len, 1);
    hub_response_free(&resp);
    assert_non_null(tst_device_held(&v.d, y));
    pull_path(&v.d, 0, v.path, sizeof v.path);
    declined(e, &v, v.path, v.pk, 200, &resp); /* proves that page */
    hub_response_free(&resp);
    /* a purge the device has not acknowledged: repeated the ordinary way until it is */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", y), CMC_OK);
    v.d.no_ack = 1;
    tst_device_sync(e, &v.d, 0);
    assert_null(tst_device_held(&v.d, y));
    pull_path(&v.d, 0, v.path, sizeof v.path);
    /* settled at the head (that pull proves the page), the purge still unacknowledged */
    assert_int_equal(tst_device_send(e, &v.d, "GET", v.path, NULL, 0, NULL), 200);
    declined(e, &v, v.path, v.pk, 200, &resp);
    v.d.purges = 0;
    tst_device_apply(e, &v.d, resp.body, resp.body_len, 1);
    assert_int_equal(v.d.purges, 1); /* the purge again */
    hub_response_free(&resp);
    v.d.no_ack = 0;
    tst_device_sync(e, &v.d, 0); /* acknowledged */
    pull_path(&v.d, 0, v.path, sizeof v.path);
    assert_int_equal(tst_device_send(e, &v.d, "GET", v.path, NULL, 0, NULL), 200);
    {
        struct reqsig_headers hdrs;
        memset(&hdrs, 0, sizeof hdrs);
        assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1); /* idle again */
        assert_int_equal(resp.status, 200);
        hub_response_free(&resp);
    }
    /* a wipe order: the ordinary pull carries it */
    assert_int_equal(hub_device_wipe(e->h, v.d.id), CMC_OK);
    declined(e, &v, v.path, v.pk, 200, &resp);
    v.d.wipes = 0;
    tst_device_apply(e, &v.d, resp.body, resp.body_len, 1);
    assert_int_equal(v.d.wipes, 1);
    hub_response_free(&resp);
    /* revoked: refused the ordinary way */
    assert_int_equal(hub_device_revoke(e->h, v.d.id), CMC_OK);
    declined(e, &v, v.path, v.pk, 401, &resp);
    hub_response_free(&resp);
    idle_teardown(&v);
}

static void test_last_seen_noted(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    struct reqsig_headers hdrs;
    struct hub_response resp;
    struct hub_device_info dev;
    char sql[160];
    idle_setup(e, &v, "all");
    snprintf(sql, sizeof sql, "UPDATE devices SET last_seen = %lld WHERE device_id = '%s'",
             (long long)(plat_wall_now() - 3600), v.d.id);
    assert_int_equal(hub_db_exec(e->h, sql), CMC_OK);
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    assert_int_equal(hub_device_get(e->h, v.d.id, &dev), CMC_OK);
    assert_true(dev.last_seen >= plat_wall_now() - 1);
    idle_teardown(&v);
}

/* The idle polls' connection is cut by the server (a failover, a DBA): the poll that finds
 * it gone is answered with a server error (the device tries again, with a new nonce), and
 * the next one is answered on a connection made again. */
static void test_connection_lost_and_made_again(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    struct reqsig_headers hdrs;
    struct hub_response resp;
    idle_setup(e, &v, "all");
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    tst_pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'WITH r AS%' AND pid <> pg_backend_pid()");
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_true(resp.status >= 500);
    hub_response_free(&resp);
    memset(&hdrs, 0, sizeof hdrs);
    assert_int_equal(idle_call(e, &v, v.path, &hdrs, v.pk, &resp), 1);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    idle_teardown(&v);
}

/* Polls from many threads at once: every one answered 200 once, its replay refused. */
#define POLLERS 8
#define POLLS 25
struct poller {
    struct tst_hub *e;
    struct idle_env *v;
    int ok, refused, other;
};

static void *poller_run(void *arg)
{
    struct poller *p = arg;
    for (int i = 0; i < POLLS; i++) {
        struct reqsig_headers hdrs;
        struct hub_response resp;
        char name[HUB_NAME_MAX + PLAN_ID_LEN + 8];
        struct hub_request req;
        memset(&hdrs, 0, sizeof hdrs);
        if (reqsig_sign(p->v->d.sk, p->v->d.id, "GET", p->v->path, NULL, 0, &hdrs) != CMC_OK) {
            p->other++;
            continue;
        }
        req = tst_request("GET", p->v->path, &hdrs, NULL, 0);
        req.checked_pk = p->v->pk;
        req.checked_ok = 1;
        for (int twice = 0; twice < 2; twice++) {
            int answered = hub_api_pull_idle(p->e->h, p->v->ip, &req, &resp, name, sizeof name);
            if (answered && resp.status == 200 && twice == 0)
                p->ok++;
            else if (answered && resp.status == 401 && twice == 1)
                p->refused++;
            else
                p->other++;
            if (answered)
                hub_response_free(&resp);
        }
    }
    return NULL;
}

static void test_many_threads_at_once(void **state)
{
    struct tst_hub *e = *state;
    struct idle_env v;
    struct poller p[POLLERS];
    pthread_t t[POLLERS];
    uint64_t asked, idle;
    idle_setup(e, &v, "all");
    for (int i = 0; i < POLLERS; i++) {
        p[i] = (struct poller){.e = e, .v = &v};
        assert_int_equal(pthread_create(&t[i], NULL, poller_run, &p[i]), 0);
    }
    for (int i = 0; i < POLLERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(p[i].ok, POLLS);
        assert_int_equal(p[i].refused, POLLS);
        assert_int_equal(p[i].other, 0);
    }
    hub_idle_counts(v.ip, &asked, &idle);
    assert_int_equal(asked, 2 * POLLERS * POLLS);
    assert_int_equal(idle, POLLERS * POLLS);
    idle_teardown(&v);
}

#define IDLE_TESTS                                                                          \
    test_idle_answer_is_the_ordinary_one, test_replay_refused_here_and_at_another_node,      \
        test_not_idle_goes_the_ordinary_way, test_last_seen_noted,                          \
        test_connection_lost_and_made_again, test_many_threads_at_once
#define NAMES_(...) #__VA_ARGS__
#define NAMES(...) NAMES_(__VA_ARGS__)

int main(void)
{
    static const CMUnitTestFunction tests[] = {IDLE_TESTS};
    if (!tst_hub_store_pg()) {
        printf("skip: idle polls are answered this way on PostgreSQL only (run in unit-pg)\n");
        return 77;
    }
    return tst_hub_run(NAMES(IDLE_TESTS), tests, sizeof tests / sizeof tests[0], tst_hub_setup);
}
