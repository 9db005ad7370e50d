/*
 * server.c - libmicrohttpd glue: collects a request (raw target, X-CMC-* headers, a
 * bounded body), hands it to hub_api_handle under the hub mutex, and sends the answer.
 *
 * The Ed25519 check of a request's signature is the costliest step of an idle poll, and it
 * needs no store: it runs before the hub mutex is taken, against the device's key as this
 * server last read it from the store (a small table keyed by device id). The hub compares
 * that key with the stored one under the mutex and checks the signature itself when they
 * differ or nothing was checked, so the table is only ever a hint: the device's state
 * (revoked, wiped), the clock window and the nonce are still decided under the mutex on
 * every request.
 */
#include "hub/server.h"
#include "hub/fhir_api.h"
#include "hub/feed_group.h"

#include "hub/guard.h"
#include "hub/live.h"
#include "hub/poll_idle.h"
#include "hub/metrics.h"
#include "hub/tls.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/reqsig.h"
#include "sync/wire.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Device keys by device id, direct-mapped: a device whose slot another device took is
 * checked under the mutex until it takes the slot back. A key never changes once a device
 * is enrolled, so an entry stays right for as long as the device id exists. */
#define HUB_KEY_SLOTS 16384 /* power of two; 69 bytes each */

struct hub_key_slot {
    char device_id[REQSIG_DEVICE_ID_LEN + 1]; /* "" = empty */
    uint8_t pk[CRY_SIGN_PK_BYTES];
};

struct hub_server {
    struct MHD_Daemon *daemon;
    struct MHD_Daemon *metrics_daemon; /* NULL: /metrics on the API listener */
    hub_metrics *metrics;
    hub_guard *guard;
    hub_live *live; /* held waits (GET /v1/wait) */
    hub_idle *idle; /* idle pulls outside the mutex, on a shared store (hub/poll_idle.h) */
    hub *h;
    pthread_mutex_t mu; /* the hub handle: one request at a time */
    pthread_mutex_t keys_mu;
    struct hub_key_slot *keys; /* HUB_KEY_SLOTS, under keys_mu */
    uint8_t *cert, *key;
    size_t key_len;
    uint16_t port, metrics_port;
    unsigned idle_timeout_s; /* restored on a held wait's connection when it is answered */
};

static size_t hub_key_slot_of(const char *device_id)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < REQSIG_DEVICE_ID_LEN; i++)
        x = (x ^ (uint8_t)device_id[i]) * 16777619u;
    return x & (HUB_KEY_SLOTS - 1);
}

static int hub_key_get(hub_server *s, const char *device_id, uint8_t pk[CRY_SIGN_PK_BYTES])
{
    struct hub_key_slot *k = &s->keys[hub_key_slot_of(device_id)];
    int found;
    pthread_mutex_lock(&s->keys_mu);
    found = strcmp(k->device_id, device_id) == 0;
    if (found)
        memcpy(pk, k->pk, CRY_SIGN_PK_BYTES);
    pthread_mutex_unlock(&s->keys_mu);
    return found;
}

static void hub_key_put(hub_server *s, const char *device_id, const uint8_t pk[CRY_SIGN_PK_BYTES])
{
    struct hub_key_slot *k = &s->keys[hub_key_slot_of(device_id)];
    pthread_mutex_lock(&s->keys_mu);
    memcpy(k->device_id, device_id, REQSIG_DEVICE_ID_LEN + 1);
    memcpy(k->pk, pk, CRY_SIGN_PK_BYTES);
    pthread_mutex_unlock(&s->keys_mu);
}

/* Checks the request's signature against the device's known key, without the hub mutex.
 * 1 with *ok set when it could (a well-formed request from a device whose key is known),
 * 0 when the hub must check it itself. */
static int hub_precheck(hub_server *s, const struct hub_request *req,
                        uint8_t pk[CRY_SIGN_PK_BYTES], int *ok)
{
    struct reqsig_request parsed;
    int rc;
    if (reqsig_parse(req->device, req->time, req->nonce, req->signature, &parsed) != CMC_OK)
        return 0;
    if (!hub_key_get(s, parsed.device_id, pk))
        return 0;
    rc = reqsig_verify(&parsed, pk, req->method, req->path, req->body, req->body_len);
    if (rc == CMC_ERR_NOMEM)
        return 0;
    *ok = rc == CMC_OK;
    return 1;
}

/* Per-request state, made when the request line arrives. */
struct hub_conn {
    char *target; /* path with query, exactly as sent */
    uint8_t *body;
    size_t len, cap;
    int started;
    int too_large;
    uint64_t start_ns;
    int waiting; /* wait is held, or was and has been resumed */
    struct hub_live_wait wait;
};

static void *hub_conn_begin(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct hub_conn *st;
    (void)cls;
    (void)c;
    st = cmc_calloc(1, sizeof *st);
    if (st != NULL && uri != NULL && strlen(uri) <= 4096)
        st->target = cmc_strdup(uri);
    if (st != NULL)
        st->start_ns = plat_mono_now_ns();
    return st;
}

static struct hub_guard_conn *hub_tracked(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void hub_conn_end(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    hub_server *s = cls;
    struct hub_conn *st = *con_cls;
    (void)toe;
    if (s->guard != NULL)
        hub_guard_mark(s->guard, hub_tracked(c), HUB_GUARD_ANSWERED);
    if (st == NULL)
        return;
    if (st->waiting)
        hub_live_release(s->live, &st->wait);
    cmc_free(st->target);
    cmc_free(st->body);
    cmc_free(st);
    *con_cls = NULL;
}

static enum MHD_Result hub_send(struct MHD_Connection *conn, int status, const char *ctype,
                                const void *body, size_t len, int retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;
    char ra[16];
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (retry_after > 0) {
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Connections opening and closing: the guard tracks them for the request deadline. */
static void hub_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe)
{
    hub_server *s = cls;
    if (s->guard == NULL)
        return;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = fd != NULL ? hub_guard_open(s->guard, fd->connect_fd,
                                                      addr != NULL ? addr->client_addr : NULL)
                                     : NULL;
    } else {
        hub_guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result hub_send_error(struct MHD_Connection *conn, int status, const char *error,
                                      const char *message)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"error\":\"%s\",\"message\":\"%s\"}", error, message);
    return hub_send(conn, status, "application/json", buf, (size_t)n, 0);
}

/* One log line per answered request, for journald: endpoint, status, bytes, milliseconds and
 * the device by name and id (when authenticated); never a query value or a body. Counts it. */
static enum MHD_Result hub_answered(hub_server *s, struct MHD_Connection *conn,
                                    const struct hub_conn *st, const char *device,
                                    const char *method, int status, enum MHD_Result ret,
                                    size_t bytes)
{
    uint64_t us = (plat_mono_now_ns() - st->start_ns) / 1000;
    const char *endpoint = hub_metrics_endpoint(st->target);
    (void)conn;
    hub_metrics_observe(s->metrics, endpoint, status, us);
    plat_log(PLAT_LOG_INFO, "request %s %s status %d bytes %zu ms %llu%s%s", method, endpoint,
             status, bytes, (unsigned long long)(us / 1000), device != NULL ? " device " : "",
             device != NULL ? device : "");
    return ret;
}

static int hub_is_local(const char *target)
{
    const char *e = hub_metrics_endpoint(target);
    return strcmp(e, "healthz") == 0 || strcmp(e, "metrics") == 0 || strcmp(e, "tls-pins") == 0;
}

/* The headers of a signed request (docs/PROTOCOL.md), NULL where absent. */
static void hub_read_signature(struct MHD_Connection *conn, const char **device,
                               const char **time, const char **nonce, const char **signature)
{
    *device = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CMC-Device");
    *time = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CMC-Time");
    *nonce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CMC-Nonce");
    *signature = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CMC-Signature");
}

/* A signed fetch of the TLS pin set: the device now pins every key in it (hub/tls.h). An
 * unsigned or failing fetch is still answered (the set is public), just not noted. Under
 * the hub mutex. */
static void hub_tls_note_device(hub_server *s, struct MHD_Connection *conn,
                                const struct hub_conn *st, const char *method)
{
    struct hub_signed_request req;
    char id[PLAN_ID_LEN + 1];
    int replay = 0;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = st->target;
    hub_read_signature(conn, &req.device, &req.time, &req.nonce, &req.signature);
    req.body = (const uint8_t *)"";
    if (req.device != NULL && hub_auth_request(s->h, &req, id, &replay) == CMC_OK)
        (void)hub_tls_note_fetch(s->h, id);
}

/* GET /healthz, GET /metrics and GET /v1/tls-pins (signed by the hub, hub/tls.h): no
 * authentication, no patient or device data. */
static enum MHD_Result hub_answer_local(hub_server *s, struct MHD_Connection *conn,
                                        const struct hub_conn *st, const char *method,
                                        int via_metrics)
{
    const char *e = hub_metrics_endpoint(st->target);
    char *text = NULL;
    size_t len = 0;
    uint64_t head = 0;
    int ok;
    enum MHD_Result ret;
    if (strcmp(method, "GET") != 0)
        return hub_answered(s, conn, st, NULL, method, 405,
                            hub_send_error(conn, 405, "usage", "method not allowed"), 0);
    if (strcmp(e, "metrics") == 0 && s->metrics_daemon != NULL && !via_metrics)
        return hub_answered(s, conn, st, NULL, method, 404,
                            hub_send_error(conn, 404, "not_found", "no such endpoint"), 0);
    if (strcmp(e, "tls-pins") == 0 && (via_metrics || s->cert == NULL))
        return hub_answered(s, conn, st, NULL, method, 404,
                            hub_send_error(conn, 404, "not_found", "no such endpoint"), 0);
    pthread_mutex_lock(&s->mu);
    if (strcmp(e, "healthz") == 0)
        ok = hub_head_seq(s->h, &head) == CMC_OK;
    else if (strcmp(e, "tls-pins") == 0 && (ok = hub_tls_pins_doc(s->h, &text, &len) == CMC_OK))
        hub_tls_note_device(s, conn, st, method);
    else {
        hub_metrics_set_waits(s->metrics, s->live != NULL ? hub_live_held(s->live) : 0);
        ok = hub_metrics_render(s->metrics, s->h, &text, &len) == CMC_OK;
    }
    pthread_mutex_unlock(&s->mu);
    if (strcmp(e, "tls-pins") == 0 && ok)
        ret = hub_answered(s, conn, st, NULL, method, 200,
                           hub_send(conn, 200, "application/json", text, len, 0), len);
    else if (strcmp(e, "healthz") == 0)
        ret = hub_answered(s, conn, st, NULL, method, ok ? 200 : 503,
                           hub_send(conn, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "unavailable\n",
                                    ok ? 3 : 12, 0),
                           ok ? 3 : 12);
    else if (!ok)
        ret = hub_answered(s, conn, st, NULL, method, 500,
                           hub_send_error(conn, 500, "nomem", "out of memory"), 0);
    else
        ret = hub_answered(s, conn, st, NULL, method, 200,
                           hub_send(conn, 200, "text/plain; version=0.0.4", text, len, 0), len);
    cmc_free(text);
    return ret;
}

/* /fhir/R4/...: the FHIR read API (hub/fhir_api.h), under the same hub mutex. Links in its
 * answers use the Host the client sent, when it is a plain host[:port]. */
static enum MHD_Result hub_fhir_serve(hub_server *s, struct MHD_Connection *conn,
                                      const struct hub_conn *st, const char *method)
{
    const char *target = st->target;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    struct hub_fhir_request fr = {method, target,
                                  MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
                                  NULL};
    struct hub_response resp;
    char base[300];
    enum MHD_Result ret;
    if (host == NULL || strlen(host) > 200 || strspn(host, "abcdefghijklmnopqrstuvwxyz"
                                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != strlen(host))
        host = "localhost";
    snprintf(base, sizeof base, "%s://%s/fhir/R4", s->cert != NULL ? "https" : "http", host);
    fr.base = base;
    pthread_mutex_lock(&s->mu);
    hub_fhir_handle(s->h, &fr, &resp);
    pthread_mutex_unlock(&s->mu);
    ret = hub_answered(s, conn, st, NULL, method, resp.status,
                       hub_send(conn, resp.status, resp.content_type,
                                resp.body != NULL ? resp.body : (const uint8_t *)"", resp.body_len, 0),
                       resp.body_len);
    hub_response_free(&resp);
    return ret;
}

/* ---- held waits (hub/live.h) ---------------------------------------------------------- */

static void hub_wait_resume(void *arg)
{
    MHD_resume_connection(arg);
}

/* Under the hub mutex, for a wait the hub just authenticated and found nothing for: parks
 * the connection until the feed resumes it. 0 when it cannot be held (answer it now). */
static int hub_wait_hold(hub_server *s, struct MHD_Connection *conn, struct hub_conn *st,
                         const char *device_id)
{
    struct wire_wait_query q;
    const char *query = strchr(st->target, '?');
    if (s->live == NULL || device_id == NULL || strlen(device_id) != REQSIG_DEVICE_ID_LEN ||
        wire_wait_query_decode(query != NULL ? query + 1 : "", &q) != CMC_OK)
        return 0;
    memset(&st->wait, 0, sizeof st->wait);
    memcpy(st->wait.device_id, device_id, REQSIG_DEVICE_ID_LEN + 1);
    st->wait.cursor = q.cursor;
    st->wait.lease_days = q.lease;
    st->wait.scanned = q.cursor;
    st->wait.deadline_ns = plat_mono_now_ns() + q.hold * 1000000000ull;
    st->wait.resume = hub_wait_resume;
    st->wait.arg = conn;
    /* Suspended before the feed can resume it. No idle timeout while held: libmicrohttpd
     * would otherwise count the hold as idle time and close the kept-alive connection just
     * as the device sends its next wait; restoring it when answered restarts the clock. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_suspend_connection(conn);
    st->waiting = 1;
    if (hub_live_hold(s->live, &st->wait) != CMC_OK) {
        st->wait.result = HUB_LIVE_TIMEOUT; /* the feed is stopping: answered 204 at once */
        MHD_resume_connection(conn);
    }
    return 1;
}

/* A held wait, resumed: 200 "changed" (the device pulls now) or 204 (nothing; wait again). */
static enum MHD_Result hub_wait_answer(hub_server *s, struct MHD_Connection *conn,
                                       struct hub_conn *st, const char *method)
{
    static const char changed[] = "changed\n";
    int ok = st->wait.result == HUB_LIVE_CHANGED;
    hub_live_release(s->live, &st->wait);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->idle_timeout_s);
    return hub_answered(s, conn, st, st->wait.device_id, method, ok ? 200 : 204,
                        hub_send(conn, ok ? 200 : 204, "text/plain", ok ? changed : "",
                                 ok ? sizeof changed - 1 : 0, 0),
                        ok ? sizeof changed - 1 : 0);
}

/* The answer to a request whose state could not be made (out of memory) or whose target
 * was too long to keep: it is not read any further. */
static enum MHD_Result hub_send_unread(struct MHD_Connection *conn, const struct hub_conn *st)
{
    if (st == NULL)
        return hub_send_error(conn, 500, "nomem", "out of memory");
    return hub_send_error(conn, 414, "too_large", "request target too long");
}

/* Sends an API answer, logs it (with the device's name when it was authenticated) and frees it. */
static enum MHD_Result hub_reply(hub_server *s, struct MHD_Connection *conn,
                                 const struct hub_conn *st, const char *method, const char *name,
                                 struct hub_response *resp)
{
    enum MHD_Result ret =
        hub_send(conn, resp->status, resp->content_type != NULL ? resp->content_type : "application/json",
                 resp->body != NULL ? resp->body : (const uint8_t *)"", resp->body_len,
                 resp->retry_after);
    ret = hub_answered(s, conn, st, name[0] != '\0' ? name : NULL, method, resp->status, ret,
                       resp->body_len);
    hub_response_free(resp);
    return ret;
}

static enum MHD_Result hub_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    hub_server *s = cls;
    struct hub_conn *st = *con_cls;
    struct hub_request req;
    struct hub_response resp;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct hub_device_info dev;
    char name[HUB_NAME_MAX + PLAN_ID_LEN + 8];
    int checked_ok = 0;
    (void)url;
    (void)version;

    if (st == NULL || st->target == NULL)
        return hub_send_unread(conn, st);
    if (!st->started) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        st->started = 1;
        if (cl != NULL && strtoull(cl, NULL, 10) > HUB_MAX_REQUEST)
            return hub_send_error(conn, 413, "too_large", "request body is too large");
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->too_large || st->len + n > HUB_MAX_REQUEST) {
            st->too_large = 1; /* keep reading, drop the bytes, answer 413 at the end */
            return MHD_YES;
        }
        if (st->len + n > st->cap) {
            size_t ncap = st->cap ? st->cap : 4096;
            while (ncap < st->len + n)
                ncap *= 2;
            uint8_t *nb = cmc_realloc(st->body, ncap);
            if (nb == NULL)
                return MHD_NO;
            st->body = nb;
            st->cap = ncap;
        }
        memcpy(st->body + st->len, upload_data, n);
        st->len += n;
        return MHD_YES;
    }
    if (s->guard != NULL)
        hub_guard_mark(s->guard, hub_tracked(conn), HUB_GUARD_ANSWERING);
    if (st->too_large)
        return hub_answered(s, conn, st, NULL, method, 413, hub_send_error(conn, 413, "too_large",
                                                                      "request body is too large"),
                            0);
    if (st->waiting)
        return hub_wait_answer(s, conn, st, method);
    if (hub_is_local(st->target))
        return hub_answer_local(s, conn, st, method, 0);
    if (strcmp(hub_metrics_endpoint(st->target), "enroll") == 0 && s->guard != NULL) {
        int wait = hub_guard_enroll_wait(s->guard, hub_tracked(conn));
        if (wait > 0) {
            static const char busy[] = "{\"error\":\"throttled\",\"message\":\"too many enrollment"
                                       " attempts from this address; try again later\"}";
            return hub_answered(s, conn, st, NULL, method, 429,
                                hub_send(conn, 429, "application/json", busy, sizeof busy - 1,
                                         wait),
                                sizeof busy - 1);
        }
    }
    if (strncmp(st->target, HUB_FHIR_PREFIX, strlen(HUB_FHIR_PREFIX)) == 0)
        return hub_fhir_serve(s, conn, st, method);

    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = st->target;
    hub_read_signature(conn, &req.device, &req.time, &req.nonce, &req.signature);
    req.body = st->body;
    req.body_len = st->len;
    if (hub_precheck(s, &req, pk, &checked_ok)) {
        req.checked_pk = pk;
        req.checked_ok = checked_ok;
    }
    name[0] = '\0';
    if (hub_api_pull_idle(s->h, s->idle, &req, &resp, name, sizeof name)) {
        if (s->guard != NULL && resp.status >= 200 && resp.status < 300)
            hub_guard_mark(s->guard, hub_tracked(conn), HUB_GUARD_DEVICE);
        return hub_reply(s, conn, st, method, name, &resp);
    }
    hub_group_lock(s->h, &s->mu); /* counted, so a group commit waits for it (feed_group.h) */
    hub_api_handle(s->h, &req, &resp);
    /* Authenticated (a 2xx answers only a device the hub checked, or an enrollment): the
     * connection no longer counts against its address (hub/guard.h). */
    if (s->guard != NULL && resp.status >= 200 && resp.status < 300)
        hub_guard_mark(s->guard, hub_tracked(conn), HUB_GUARD_DEVICE);
    /* The hub just checked the signature itself and it held: learn (or, if the key known
     * here was refused, relearn) the device's key, so its next request is checked before
     * the mutex. A forged request never gets here, so it cannot fill the table. */
    if ((req.checked_pk == NULL || !req.checked_ok) && (resp.status == 200 || resp.status == 204) &&
        req.device != NULL &&
        strlen(req.device) == REQSIG_DEVICE_ID_LEN && hub_device_key(s->h, req.device, pk) == CMC_OK)
        hub_key_put(s, req.device, pk);
    /* Nothing for the device yet: its wait is held (hub/live.h) and answered when resumed. */
    if (resp.status == 204 && strcmp(hub_metrics_endpoint(st->target), "wait") == 0 &&
        hub_wait_hold(s, conn, st, req.device)) {
        hub_group_unlock(s->h, &s->mu);
        hub_response_free(&resp);
        return MHD_YES;
    }
    /* The device's name for the log, only once the hub has authenticated it. */
    name[0] = '\0';
    if (resp.status == 200 && req.device != NULL && strlen(req.device) == REQSIG_DEVICE_ID_LEN &&
        hub_device_get(s->h, req.device, &dev) == CMC_OK)
        snprintf(name, sizeof name, "%s (%s)", dev.name, dev.device_id);
    hub_group_unlock(s->h, &s->mu);
    return hub_reply(s, conn, st, method, name, &resp);
}

/* The separate metrics listener: /metrics and /healthz only, plain HTTP, bodies ignored. */
static enum MHD_Result hub_handle_metrics(void *cls, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **con_cls)
{
    hub_server *s = cls;
    struct hub_conn *st = *con_cls;
    (void)url;
    (void)version;
    (void)upload_data;
    if (st == NULL || st->target == NULL)
        return hub_send_unread(conn, st);
    if (!st->started) {
        st->started = 1;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!hub_is_local(st->target))
        return hub_send_error(conn, 404, "not_found", "no such endpoint");
    return hub_answer_local(s, conn, st, method, 1);
}

int hub_parse_listen(const char *listen, char *host, size_t cap, uint16_t *port)
{
    const char *colon;
    const char *hs = listen, *he;
    char *end = NULL;
    unsigned long p;

    if (listen == NULL || listen[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "--listen: HOST:PORT");
    if (listen[0] == '[') {
        he = strchr(listen, ']');
        if (he == NULL || he[1] != ':')
            return cmc_fail(CMC_ERR_USAGE, "--listen: [IPv6]:PORT");
        hs = listen + 1;
        colon = he + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL)
            return cmc_fail(CMC_ERR_USAGE, "--listen: HOST:PORT");
        he = colon;
    }
    if ((size_t)(he - hs) + 1 > cap || he == hs)
        return cmc_fail(CMC_ERR_USAGE, "--listen: bad host");
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    p = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p > 65535)
        return cmc_fail(CMC_ERR_USAGE, "--listen: port must be 0 to 65535");
    *port = (uint16_t)p;
    return CMC_OK;
}

/* A listening address from a host literal ("localhost" is 127.0.0.1). */
static int hub_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                        unsigned *flags)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
    memset(ss, 0, sizeof *ss);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *flags |= MHD_USE_IPv6;
    } else {
        return cmc_fail(CMC_ERR_USAGE, "--listen: %s is not an IP address", host);
    }
    return CMC_OK;
}

/* Records the pin of the key served with; completes a rotation to it (hub/tls.h). */
static int hub_server_note_key(hub_server *s)
{
    char pin[HUB_TLS_PIN_MAX];
    int completed = 0;
    int rc = hub_tls_pin_of_pem((const char *)s->key, s->key_len, pin);
    if (rc == CMC_OK)
        rc = hub_tls_started(s->h, pin, &completed);
    if (rc == CMC_OK && completed)
        plat_log(PLAT_LOG_WARN, "TLS key rotation complete: serving with the announced key");
    return rc;
}

static uint16_t hub_bound_port(struct MHD_Daemon *d, uint16_t fallback)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? info->port : fallback;
}

static struct MHD_Daemon *hub_start_api(hub_server *s, const struct hub_server_opts *o,
                                        unsigned flags, struct sockaddr *sa)
{
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)HUB_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (!(flags & MHD_USE_TLS))
        tls[0].option = MHD_OPTION_END;
    return MHD_start_daemon(
        flags, o->port, NULL, NULL, hub_handle, s, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_URI_LOG_CALLBACK, hub_conn_begin, (void *)s,
        MHD_OPTION_NOTIFY_COMPLETED, hub_conn_end, (void *)s,
        MHD_OPTION_NOTIFY_CONNECTION, hub_conn_notify, (void *)s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(o->timeout_s ? o->timeout_s : HUB_IDLE_TIMEOUT),
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(o->max_connections ? o->max_connections : HUB_MAX_CONNECTIONS),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(o->threads ? o->threads : HUB_THREADS),
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

static int hub_start_metrics(hub_server *s, const struct hub_server_opts *o)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    int rc = hub_sockaddr(o->metrics_host, o->metrics_port, &ss, &flags);
    if (rc != CMC_OK)
        return rc;
    s->metrics_daemon = MHD_start_daemon(
        flags, o->metrics_port, NULL, NULL, hub_handle_metrics, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, hub_conn_begin, (void *)s,
        MHD_OPTION_NOTIFY_COMPLETED, hub_conn_end, (void *)s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024), MHD_OPTION_END);
    if (s->metrics_daemon == NULL)
        return cmc_fail(CMC_ERR_NET, "cannot listen for metrics on %s port %u (in use or not"
                                     " permitted)", o->metrics_host, (unsigned)o->metrics_port);
    s->metrics_port = hub_bound_port(s->metrics_daemon, o->metrics_port);
    return CMC_OK;
}

int hub_server_start(hub *h, const struct hub_server_opts *opts, hub_server **out)
{
    hub_server *s = NULL;
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    const char *host = opts->host != NULL ? opts->host : "127.0.0.1";
    size_t len;
    int rc;

    *out = NULL;
    if ((opts->tls_cert_path == NULL) != (opts->tls_key_path == NULL))
        return cmc_fail(CMC_ERR_USAGE, "--tls-cert and --tls-key go together");
    if ((s = cmc_calloc(1, sizeof *s)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "server");
    s->h = h;
    s->idle_timeout_s = opts->timeout_s ? opts->timeout_s : HUB_IDLE_TIMEOUT;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->keys_mu, NULL);
    if ((s->keys = cmc_calloc(HUB_KEY_SLOTS, sizeof *s->keys)) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "server");
        goto out;
    }
    if ((rc = hub_metrics_new(&s->metrics)) != CMC_OK)
        goto out;
    if ((rc = hub_guard_start(opts->deadline_s ? opts->deadline_s : HUB_REQUEST_DEADLINE,
                              opts->enroll_per_minute ? opts->enroll_per_minute
                                                      : HUB_ENROLL_PER_MINUTE,
                              s->metrics, &s->guard)) != CMC_OK)
        goto out;
    /* Per address, held waits aside (hub/guard.h): libmicrohttpd's own limit would count them. */
    hub_guard_per_ip(s->guard, opts->per_ip ? opts->per_ip : HUB_PER_IP);
    if ((rc = hub_live_start(h, &s->mu, &s->live)) != CMC_OK)
        goto out;
    if ((rc = hub_group_attach(h, &s->mu)) != CMC_OK)
        goto out;
    /* idle pulls on a shared store: batched on connections of their own, not the mutex */
    if (hub_store_shared(h) && hub_db_url() != NULL &&
        (rc = hub_idle_open(hub_db_url(), HUB_IDLE_CONNS, &s->idle)) != CMC_OK)
        goto out;
    if ((rc = hub_sockaddr(host, opts->port, &ss, &flags)) != CMC_OK)
        goto out;
    if (opts->tls_cert_path != NULL) {
        if ((rc = plat_read_file(opts->tls_cert_path, 1024 * 1024, &s->cert, &len)) != CMC_OK)
            goto out;
        if ((rc = plat_read_file(opts->tls_key_path, 1024 * 1024, &s->key, &s->key_len)) != CMC_OK)
            goto out;
        flags |= MHD_USE_TLS;
        if ((rc = hub_server_note_key(s)) != CMC_OK)
            goto out;
    }
    if (opts->metrics_host != NULL && (rc = hub_start_metrics(s, opts)) != CMC_OK)
        goto out;
    if ((s->daemon = hub_start_api(s, opts, flags, (struct sockaddr *)&ss)) == NULL) {
        rc = cmc_fail(CMC_ERR_NET, "cannot listen on %s port %u (in use, not permitted, or a bad"
                                   " certificate or key)", host, (unsigned)opts->port);
        goto out;
    }
    s->port = hub_bound_port(s->daemon, opts->port);
    plat_log(PLAT_LOG_INFO, "serving on %s port %u (%s)", host, (unsigned)s->port,
             (flags & MHD_USE_TLS) ? "https" : "http");
    *out = s;
    s = NULL;
    rc = CMC_OK;
out:
    hub_server_stop(s);
    return rc;
}

uint16_t hub_server_port(const hub_server *s)
{
    return s->port;
}

uint16_t hub_server_metrics_port(const hub_server *s)
{
    return s->metrics_port;
}

void hub_server_stop(hub_server *s)
{
    if (s == NULL)
        return;
    /* Every held wait is answered first: libmicrohttpd must not stop with one suspended. */
    hub_live_stop(s->live);
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    if (s->metrics_daemon != NULL)
        MHD_stop_daemon(s->metrics_daemon);
    hub_guard_stop(s->guard);
    hub_metrics_free(s->metrics);
    hub_group_detach(s->h); /* no request is left to join it */
    hub_idle_close(s->idle);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->keys_mu);
    cmc_free(s->keys);
    cmc_free(s->cert);
    if (s->key != NULL) {
        cry_memzero(s->key, s->key_len);
        cmc_free(s->key);
    }
    cmc_free(s);
}
