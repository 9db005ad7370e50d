/*
 * test_hub_store.c - one hub store, two handles on it, as two hub nodes share one PostgreSQL
 * database: a request nonce one node has accepted is refused by the other; the change log is
 * one sequence whichever node writes; a device pulling from either node gets what the other
 * wrote, at once; the signing key never reaches PostgreSQL in the clear, and a key file from
 * another hub does not open it. Runs on both stores (tests/support/pg_run.sh); what only a
 * shared store promises is skipped on SQLCipher, where one process serves the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/internal.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/reqsig.h"
#include "sync/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/tmpdir.h"

#define PULL "/v1/pull?cursor=0"
/* The most round trips an idle poll may cost on PostgreSQL. */
#define HUB_IDLE_POLL_TRIPS_MAX 20

static int auth_on(hub *h, const struct reqsig_headers *hdrs, int *replay)
{
    char who[PLAN_ID_LEN + 1];
    return tst_auth_get(h, PULL, hdrs, NULL, 0, who, replay);
}

static void test_replay_refused_by_the_other_node(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES], nonce[REQSIG_NONCE_BYTES];
    struct cry_secret *sk = NULL;
    struct hub_enrollment en;
    struct reqsig_headers hdrs, fresh;
    hub *b = NULL;
    int replay = 0;

    if (!tst_hub_store_pg()) {
        skip(); /* one SQLCipher file is served by one process: its nonces are in memory */
        return;
    }
    assert_int_equal(hub_open(e->dir, &b), CMC_OK);
    assert_int_equal(hub_device_add(e->h, "amb", "all", "urgent_care", id, code), CMC_OK);
    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    assert_int_equal(hub_enroll(b, code, pk, "amb", &en), CMC_OK); /* enrolled through B */
    cry_random(nonce, sizeof nonce);
    assert_int_equal(reqsig_sign_at(sk, id, "GET", PULL, NULL, 0, plat_wall_now(), nonce, &hdrs),
                     CMC_OK);
    assert_int_equal(auth_on(e->h, &hdrs, &replay), CMC_OK); /* A accepts it */
    assert_int_equal(replay, 0);
    assert_int_equal(auth_on(b, &hdrs, &replay), CMC_ERR_UNAUTHORIZED); /* B refuses the replay */
    assert_int_equal(replay, 1);
    assert_int_equal(auth_on(e->h, &hdrs, &replay), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(replay, 1);
    cry_random(nonce, sizeof nonce); /* a new request is served by either */
    assert_int_equal(reqsig_sign_at(sk, id, "GET", PULL, NULL, 0, plat_wall_now(), nonce, &fresh),
                     CMC_OK);
    assert_int_equal(auth_on(b, &fresh, &replay), CMC_OK);
    cry_secret_free(sk);
    hub_close(b);
}

static void test_change_log_is_one_sequence(void **state)
{
    struct tst_hub *e = *state;
    struct tst_hub nb = *e;
    char x[PLAN_ID_LEN + 1], y[PLAN_ID_LEN + 1];
    uint64_t a0, a1, b1, a2, b2;
    hub *b = NULL;

    assert_int_equal(hub_open(e->dir, &b), CMC_OK);
    nb.h = b;
    assert_int_equal(hub_head_seq(e->h, &a0), CMC_OK);
    tst_hub_import_published(e, 0, "9434765919", x); /* written through A */
    assert_int_equal(hub_head_seq(e->h, &a1), CMC_OK);
    assert_int_equal(hub_head_seq(b, &b1), CMC_OK);
    assert_true(a1 > a0);
    assert_int_equal(b1, a1); /* B sees A's head at once */
    tst_hub_import_published(&nb, 1, "9434765870", y); /* and B's writes follow A's */
    assert_int_equal(hub_head_seq(b, &b2), CMC_OK);
    assert_int_equal(hub_head_seq(e->h, &a2), CMC_OK);
    assert_true(b2 > a1);
    assert_int_equal(a2, b2);
    hub_close(b);
}

static void test_device_pulls_from_either_node(void **state)
{
    struct tst_hub *e = *state;
    struct tst_hub nb = *e;
    char x[PLAN_ID_LEN + 1];
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    struct tst_device amb;
    hub *b = NULL;

    assert_int_equal(hub_open(e->dir, &b), CMC_OK);
    nb.h = b;
    tst_hub_import_published(e, 0, "9434765919", x);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(&nb, &amb, 0); /* through B: the plan A published */
    assert_non_null(tst_device_held(&amb, x));
    assert_int_equal(tst_device_held(&amb, x)->version, 3);
    /* a new version through A; B's next answer (its caches included) has it */
    assert_int_equal(hub_plan_edit(e->h, "nurse1", x, change, strlen(change), NULL), CMC_OK);
    tst_hub_publish(e, x);
    tst_device_sync(&nb, &amb, 0);
    assert_int_equal(tst_device_held(&amb, x)->version, 6);
    /* and back through A: nothing new, nothing lost */
    tst_device_sync(e, &amb, 0);
    assert_int_equal(tst_device_held(&amb, x)->version, 6);
    tst_device_free(&amb);
    hub_close(b);
}

static void test_signing_key_sealed_in_postgresql(void **state)
{
    struct tst_hub *e = *state;
    sqlite3_stmt *st = NULL;
    int plain = 0, sealed = 0;

    if (!tst_hub_store_pg()) {
        skip(); /* SQLCipher encrypts the whole file under the key file */
        return;
    }
    assert_int_equal(hub_db_prepare(e->h, "SELECT k, v FROM meta", &st), CMC_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (strcmp(hub_col_text(st, 0), "sign_sk") == 0)
            plain++;
        if (strcmp(hub_col_text(st, 0), "sign_sk_sealed") == 0) {
            sealed++;
            /* the secret half of the key is nowhere in the row */
            for (int i = 0; i + 32 <= n; i++)
                assert_false(memcmp(v + i, e->h->sk->buf, 32) == 0);
        }
    }
    sqlite3_finalize(st);
    assert_int_equal(plain, 0);
    assert_int_equal(sealed, 1);
}

static void test_other_hubs_key_file_refused(void **state)
{
    struct tst_hub *e = *state;
    char other[96], path[128];
    hub *b = NULL;

    if (!tst_hub_store_pg()) {
        skip(); /* on SQLCipher the key file and the store are one directory */
        return;
    }
    snprintf(other, sizeof other, "%s/other", e->tmp);
    assert_int_equal(plat_mkdir_private(other), CMC_OK);
    snprintf(path, sizeof path, "%s/hub.key", other);
    assert_int_equal(plat_write_atomic(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 65),
                     CMC_OK);
    assert_int_equal(hub_open(other, &b), CMC_ERR_TAMPERED);
    assert_null(b);
    /* and a directory with no key file at all is told what to do */
    snprintf(other, sizeof other, "%s/none", e->tmp);
    assert_int_equal(hub_open(other, &b), CMC_ERR_NOT_FOUND);
    /* nor is a second hub made over the first */
    assert_int_equal(hub_init(e->dir), CMC_ERR_EXISTS);
}

/* The server drops a node's connection (a restart, a failover): the request in flight fails,
 * the next one is served on a new connection, and a transaction is never split across two. */
static void test_node_reconnects_after_the_server_drops_it(void **state)
{
    struct tst_hub *e = *state;
    char x[PLAN_ID_LEN + 1], sql[96];
    sqlite3_stmt *st = NULL;
    uint64_t head = 0, want = 0;
    long pid;
    hub *b = NULL;
    int rc = CMC_OK;

    if (!tst_hub_store_pg()) {
        skip(); /* an embedded file has no connection to lose */
        return;
    }
    assert_int_equal(hub_open(e->dir, &b), CMC_OK);
    assert_int_equal(hub_db_prepare(b, "SELECT pg_backend_pid()", &st), CMC_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    pid = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)", pid);
    assert_int_equal(hub_db_exec(e->h, sql), CMC_OK);
    tst_hub_import_published(e, 0, "9434765919", x);
    assert_int_equal(hub_head_seq(e->h, &want), CMC_OK);
    for (int i = 0; i < 2; i++) /* the first may find the connection gone */
        if ((rc = hub_head_seq(b, &head)) == CMC_OK)
            break;
    assert_int_equal(rc, CMC_OK);
    assert_int_equal(head, want);
    /* and it writes again, in a whole transaction */
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    assert_int_equal(hub_plan_edit(b, "nurse1", x, change, strlen(change), NULL), CMC_OK);
    assert_int_equal(hub_head_seq(b, &head), CMC_OK);
    assert_true(head > want);
    hub_close(b);
}

/* An idle poll (a device at the head pulling, the request signed with a fresh nonce) is
 * what thousands of devices send all day: on PostgreSQL each request to the server is a
 * round trip, and the figure below is what bounds idle polls per second on a node
 * (docs/BENCHMARKS.md). Replay protection still holds: the same request again is refused. */
static void test_idle_poll_round_trips(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device d;
    struct reqsig_headers hdrs;
    struct hub_response resp;
    struct wire_pull_query q = { 0 };
    char id[PLAN_ID_LEN + 1], path[160];
    uint64_t before;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &d, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &d, 0);
    q.cursor = q.applied = d.cursor;
    q.schema = PLAN_EDITION_CURRENT;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    for (int i = 0; i < 3; i++) { /* the first polls prepare their statements */
        memset(&hdrs, 0, sizeof hdrs);
        tst_device_call(e, &d, "GET", path, NULL, 0, &hdrs, &resp);
        assert_int_equal(resp.status, 200);
        hub_response_free(&resp);
    }
    memset(&hdrs, 0, sizeof hdrs);
    before = hst_round_trips(e->h->db);
    tst_device_call(e, &d, "GET", path, NULL, 0, &hdrs, &resp);
    assert_int_equal(resp.status, 200);
    hub_response_free(&resp);
    uint64_t trips = hst_round_trips(e->h->db) - before;
    print_message("idle poll: %llu round trips to the store\n", (unsigned long long)trips);
    if (tst_hub_store_pg())
        assert_true(trips > 0 && trips <= HUB_IDLE_POLL_TRIPS_MAX);
    else
        assert_int_equal(trips, 0);
    tst_device_call(e, &d, "GET", path, NULL, 0, &hdrs, &resp); /* the same nonce again */
    assert_int_equal(resp.status, 401);
    hub_response_free(&resp);
    tst_device_free(&d);
}

TST_HUB_MAIN(test_idle_poll_round_trips, test_replay_refused_by_the_other_node, test_change_log_is_one_sequence,
             test_device_pulls_from_either_node, test_signing_key_sealed_in_postgresql,
             test_other_hubs_key_file_refused, test_node_reconnects_after_the_server_drops_it)
