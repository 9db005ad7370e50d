/*
 * engine_watch.c - the device's side of the change feed (engine.h, "the change feed"):
 * signed GET /v1/wait on a kept-alive connection.
 */
#include "agent/engine_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/wire.h"

#include <string.h>

/* Seconds of silence past the hold before a wait counts as cut (a link that died without a
 * reset sends nothing at all). */
#define ENGINE_WAIT_GRACE_S 15

struct engine_watch {
    struct enrollment e;
    http_client *client;
    unsigned client_hold; /* the hold the client's silence limit was set for */
    const volatile sig_atomic_t *stop;
};

static int watch_stopped(void *ctx, uint64_t received, uint64_t expected)
{
    const engine_watch *w = ctx;
    (void)received;
    (void)expected;
    return w->stop != NULL && *w->stop != 0;
}

void engine_watch_close(engine_watch *w)
{
    if (w == NULL)
        return;
    http_client_free(w->client);
    engine_enrollment_free(&w->e);
    cmc_free(w);
}

int engine_watch_open(store *s, const volatile sig_atomic_t *stop, engine_watch **out)
{
    engine_watch *w = cmc_calloc(1, sizeof *w);
    int rc;
    *out = NULL;
    if (w == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "watch");
    if ((rc = engine_load_enrollment(s, &w->e)) != CMC_OK) {
        cmc_free(w);
        return rc;
    }
    w->stop = stop;
    *out = w;
    return CMC_OK;
}

/* The client, made again when the hold changes: libcurl's silence limit is per handle. */
static int watch_client(engine_watch *w, unsigned hold_s)
{
    if (w->client != NULL && w->client_hold == hold_s)
        return CMC_OK;
    http_client_free(w->client);
    w->client = NULL;
    struct http_options opt = {
        .base_url = w->e.hub_url,
        .ca_file = w->e.ca_file != NULL && w->e.ca_file[0] != '\0' ? w->e.ca_file : NULL,
        .pinned_pubkey = w->e.tls_pin != NULL && w->e.tls_pin[0] != '\0' ? w->e.tls_pin : NULL,
        .max_attempts = 1, /* the watch loop reconnects, with its own backoff */
        .low_speed_limit = 1,
        .low_speed_time = (long)hold_s + ENGINE_WAIT_GRACE_S,
        .user_agent = "cmc-agent",
    };
    int rc = http_client_new(&opt, &w->client);
    if (rc == CMC_OK && (rc = http_client_set_device(w->client, w->e.device_id, w->e.device_sk)) != CMC_OK) {
        http_client_free(w->client);
        w->client = NULL;
    }
    if (rc == CMC_OK) {
        w->client_hold = hold_s;
        http_client_set_progress(w->client, watch_stopped, w);
    }
    return rc;
}

int engine_wait(engine_watch *w, store *s, unsigned hold_s, int *result)
{
    struct wire_wait_query q = { .lease = -1 };
    struct http_response resp;
    char path[128];
    int64_t cursor = 0, lease = -1;
    int rc;

    *result = ENGINE_WAIT_CHANGED;
    if (hold_s == 0 || hold_s > WIRE_WAIT_HOLD_MAX)
        hold_s = WIRE_WAIT_HOLD_MAX;
    /* Read before the wait; nothing stays open while it is held. */
    if ((rc = engine_stored_cursor(s, &cursor)) != CMC_OK)
        return rc;
    if (store_state_get_int(s, ST_LEASE_DAYS, &lease) != CMC_OK || lease < 0)
        lease = -1;
    q.cursor = (uint64_t)cursor;
    q.lease = lease;
    q.hold = hold_s;
    if ((rc = wire_wait_path(&q, path, sizeof path)) != CMC_OK)
        return rc;
    if ((rc = watch_client(w, hold_s)) != CMC_OK)
        return rc;
    http_response_init(&resp);
    rc = http_request(w->client, "GET", path, NULL, NULL, 0, HTTP_NO_RETRY, &resp);
    if (rc == CMC_OK)
        *result = resp.status == 204 ? ENGINE_WAIT_NOTHING : ENGINE_WAIT_CHANGED;
    else if (resp.status == 404 || resp.status == 405) {
        *result = ENGINE_WAIT_UNSUPPORTED;
        rc = CMC_OK;
    }
    if (rc != CMC_OK) {
        /* A failed connection is not reused: the next wait connects afresh. */
        http_client_free(w->client);
        w->client = NULL;
    }
    http_response_free(&resp);
    return rc;
}

void engine_watch_bytes(const engine_watch *w, uint64_t *sent, uint64_t *received)
{
    struct http_stats st;
    memset(&st, 0, sizeof st);
    if (w->client != NULL)
        http_client_stats(w->client, &st);
    *sent = st.bytes_sent;
    *received = st.bytes_received;
}
