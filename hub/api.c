/*
 * api.c - the device-facing HTTP API as pure functions: a request (method, path with
 * query, X-CMC-* headers, body) in, a status and body out. No sockets here, so the whole
 * API can be unit-tested and fuzzed; hub/server.c only moves bytes.
 *
 * Every error answer is JSON {"error": "<cmc_errname>", "message": "<one line>"} with the
 * status of docs/PROTOCOL.md. The message is the cmc_errmsg detail, which by convention
 * names fields and ids, never patient data. Bodies are parsed strictly (sync/mp.h): a
 * request can make the hub refuse, never crash.
 */
#include "hub/internal.h"
#include "hub/device_users.h"
#include "hub/poll_idle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/reqsig.h"
#include "sync/wire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define CT_MSGPACK "application/msgpack"
#define CT_BUNDLE "application/vnd.cmc.bundle"

static int hub_status_for(int code)
{
    switch ((enum cmc_err)code) {
    case CMC_OK:
        return 200;
    case CMC_ERR_USAGE:
    case CMC_ERR_INVALID:
    case CMC_ERR_CORRUPT:
        return 400;
    case CMC_ERR_AUTH:
    case CMC_ERR_UNAUTHORIZED:
    case CMC_ERR_CLOCK:
    case CMC_ERR_TAMPERED:
    case CMC_ERR_WIPED:
        return 401;
    case CMC_ERR_DENIED:
    case CMC_ERR_REFUSED:
        return 403;
    case CMC_ERR_NOT_FOUND:
        return 404;
    case CMC_ERR_EXISTS:
    case CMC_ERR_CONFLICT:
    case CMC_ERR_STATE:
        return 409;
    case CMC_ERR_TOO_LARGE:
        return 413;
    case CMC_ERR_THROTTLED:
        return 429;
    case CMC_ERR_BUSY:
    case CMC_ERR_LOCKED:
        return 503;
    case CMC_ERR_NOMEM:
    case CMC_ERR_IO:
    case CMC_ERR_DISK_FULL:
    case CMC_ERR_DB:
    case CMC_ERR_CRYPTO:
    case CMC_ERR_NET:
    case CMC_ERR_TLS:
    case CMC_ERR_PROTOCOL:
        return 500;
    }
    return 500;
}

static void hub_respond_error(struct hub_response *resp, int status, const char *error,
                              const char *message)
{
    json_t *obj = json_pack("{s:s, s:s}", "error", error, "message", message);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    resp->status = status;
    resp->content_type = CT_JSON;
    resp->body = NULL;
    resp->body_len = 0;
    resp->retry_after = status == 503 || status == 429 ? 1 : 0;
    if (text != NULL) {
        size_t n = strlen(text);
        resp->body = cmc_malloc(n + 1);
        if (resp->body != NULL) {
            memcpy(resp->body, text, n + 1);
            resp->body_len = n;
        }
        free(text); /* jansson's own allocation */
    }
}

/* Error answer for a failed cmc call, with the detail it recorded. */
static void hub_respond_code(struct hub_response *resp, int code)
{
    int status = hub_status_for(code);
    if (status == 500)
        plat_log(PLAT_LOG_ERROR, "request failed: %s: %s", cmc_errname(code), cmc_errmsg());
    hub_respond_error(resp, status, cmc_errname(code),
                      status == 500 ? cmc_strerror(code) : cmc_errmsg());
}

/* A 200 answer of `body` (cmc_malloc'd, now the response's), or rc's error. */
static void hub_respond_ok(struct hub_response *resp, int rc, const char *content_type,
                           uint8_t *body, size_t len)
{
    if (rc != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    resp->status = 200;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = len;
}

/* ---- POST /v1/enroll ------------------------------------------------------------------- */

/* The msgpack endpoints: each decodes its body, acts for the device and encodes its answer
 * into *buf; hub_api_handle sends it, or the error. */

/* The enrollment's answer, zeroed again once encoded (it carries the audit seed). */
static int hub_enroll_answer(struct hub_enrollment *en, uint8_t **buf, size_t *len)
{
    struct wire_enroll_ans ans;
    memset(&ans, 0, sizeof ans);
    snprintf(ans.device_id, sizeof ans.device_id, "%s", en->device_id);
    memcpy(ans.hub_pk, en->hub_pk, sizeof ans.hub_pk);
    snprintf(ans.scope, sizeof ans.scope, "%s", en->scope);
    snprintf(ans.role, sizeof ans.role, "%s", en->role);
    ans.lease_days = en->lease_days;
    ans.hub_time = en->hub_time;
    memcpy(ans.audit_seed, en->audit_seed, sizeof ans.audit_seed);
    ans.has_audit_seed = 1;
    int rc = wire_enroll_ans_encode(&ans, buf, len);
    cry_memzero(en, sizeof *en);
    cry_memzero(&ans, sizeof ans);
    return rc;
}

/* Unsigned: the enrollment code stands in for a device (device_id is NULL). */
static int hub_api_enroll(hub *h, const char *device_id, const struct hub_request *req,
                          uint8_t **buf, size_t *len)
{
    struct wire_enroll_req in;
    struct hub_enrollment en;
    int rc = wire_enroll_req_decode(req->body, req->body_len, &in);
    (void)device_id;
    if (rc != CMC_OK)
        return rc;
    rc = hub_enroll(h, in.code, in.device_pk, in.name, &en);
    cry_memzero(in.code_buf, sizeof in.code_buf);
    return rc != CMC_OK ? rc : hub_enroll_answer(&en, buf, len);
}

/* ---- GET /v1/pull ---------------------------------------------------------------------- */

static void hub_api_pull(hub *h, const char *device_id, const char *query,
                         struct hub_response *resp)
{
    struct wire_pull_query q;
    uint8_t *bundle = NULL;
    size_t len = 0;
    int rc;

    if ((rc = wire_pull_query_decode(query, &q)) != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    if (q.budget > HUB_BUDGET_MAX)
        q.budget = HUB_BUDGET_MAX;
    rc = hub_pull_sealed(h, device_id, q.cursor, q.applied, (size_t)q.budget, q.schema, q.codecs,
                         q.seal != 0, &bundle, &len);
    hub_respond_ok(resp, rc, CT_BUNDLE, bundle, len);
}

/* ---- POST /v1/push --------------------------------------------------------------------- */

static int hub_api_push(hub *h, const char *device_id, const struct hub_request *req,
                        uint8_t **buf, size_t *len)
{
    struct wire_push_req in;
    struct wire_push_ans ans;
    struct hub_push_reply reply;
    int rc;

    if ((rc = wire_push_req_decode(req->body, req->body_len, &in)) != CMC_OK)
        return rc;
    struct hub_push_author by = { .user = in.user, .sig = in.user_sig };
    if ((rc = hub_push(h, device_id, in.has_user ? &by : NULL, in.idempotency_id, in.plan_id,
                       in.base_version, in.change, in.change_len, &reply)) != CMC_OK)
        return rc;
    memset(&ans, 0, sizeof ans);
    snprintf(ans.result, sizeof ans.result, "%s",
             reply.result == HUB_PUSH_ACCEPTED    ? "accepted"
             : reply.result == HUB_PUSH_DUPLICATE ? "duplicate"
                                                  : "conflict");
    ans.version = reply.version;
    if (reply.result == HUB_PUSH_CONFLICT) {
        ans.current = reply.current;
        ans.current_len = reply.current_len;
    }
    rc = wire_push_ans_encode(&ans, buf, len);
    cmc_free(reply.current);
    return rc;
}

/* ---- POST /v1/users -------------------------------------------------------------------- */

static int hub_api_users(hub *h, const char *device_id, const struct hub_request *req,
                         uint8_t **buf, size_t *len)
{
    struct wire_user v[WIRE_USERS_MAX];
    size_t n = 0;
    int rc = wire_users_decode(req->body, req->body_len, v, &n);
    if (rc == CMC_OK)
        rc = hub_device_users_set(h, device_id, v, n);
    if (rc != CMC_OK)
        return rc;
    plat_log(PLAT_LOG_INFO, "device %s registered %zu users", device_id, n);
    return wire_ack_ans_encode(buf, len);
}

/* ---- POST /v1/audit, POST /v1/ack ------------------------------------------------------ */

static int hub_api_audit(hub *h, const char *device_id, const struct hub_request *req,
                         uint8_t **buf, size_t *len)
{
    uint64_t acked = 0;
    int rc = hub_audit_intake(h, device_id, req->body, req->body_len, &acked);
    return rc != CMC_OK ? rc : wire_audit_ans_encode(acked, buf, len);
}

static int hub_api_ack(hub *h, const char *device_id, const struct hub_request *req,
                       uint8_t **buf, size_t *len)
{
    struct wire_ack in;
    int rc = wire_ack_decode(req->body, req->body_len, &in);
    if (rc == CMC_OK)
        rc = hub_ack(h, device_id, in.purges, in.n_purges, in.wipe);
    wire_ack_free(&in);
    return rc != CMC_OK ? rc : wire_ack_ans_encode(buf, len);
}

/* ---- POST /v1/evidence ----------------------------------------------------------------- */

/* A rewound device's plans from the lost timeline (hub_evidence_record). */
static int hub_api_evidence(hub *h, const char *device_id, const struct hub_request *req,
                            uint8_t **buf, size_t *len)
{
    struct wire_evidence *v = cmc_calloc(WIRE_EVIDENCE_MAX, sizeof *v);
    size_t n = 0;
    int rc = v != NULL ? wire_evidence_decode(req->body, req->body_len, v, &n)
                       : cmc_fail(CMC_ERR_NOMEM, "evidence");
    if (rc == CMC_OK)
        rc = hub_evidence_record(h, device_id, v, n);
    cmc_free(v);
    return rc != CMC_OK ? rc : wire_ack_ans_encode(buf, len);
}

/* ---- GET /v1/wait ---------------------------------------------------------------------- */

/* 200 "changed" when a pull would bring the device anything now, else 204: the server holds
 * a 204 (hub/live.h) and answers when that changes or the hold runs out. */
static void hub_api_wait(hub *h, const char *device_id, const char *query,
                         struct hub_response *resp)
{
    static const char changed[] = "changed\n";
    struct wire_wait_query q;
    uint64_t scanned = 0;
    int pending = 1, rc;

    if ((rc = wire_wait_query_decode(query, &q)) == CMC_OK)
        rc = hub_pending(h, device_id, q.cursor, q.lease, &scanned, &pending);
    if (rc != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    resp->content_type = "text/plain";
    if (!pending) {
        resp->status = 204;
        return;
    }
    if ((resp->body = cmc_malloc(sizeof changed)) == NULL) {
        hub_respond_code(resp, cmc_fail(CMC_ERR_NOMEM, "wait"));
        return;
    }
    memcpy(resp->body, changed, sizeof changed);
    resp->body_len = sizeof changed - 1;
    resp->status = 200;
}

/* ---- dispatch -------------------------------------------------------------------------- */

enum hub_method { HUB_GET, HUB_POST };
static const char *const hub_method_names[] = {"GET", "POST"};

/* The endpoints: path, method, and the msgpack answer (NULL: pull and wait, which answer
 * from the query). */
static const struct hub_route {
    const char *path;
    enum hub_method method;
    int (*answer)(hub *h, const char *device_id, const struct hub_request *req, uint8_t **buf,
                  size_t *len);
} hub_routes[] = {
    {"/v1/pull", HUB_GET, NULL},
    {"/v1/wait", HUB_GET, NULL},
    {"/v1/enroll", HUB_POST, hub_api_enroll},
    {"/v1/push", HUB_POST, hub_api_push},
    {"/v1/audit", HUB_POST, hub_api_audit},
    {"/v1/ack", HUB_POST, hub_api_ack},
    {"/v1/users", HUB_POST, hub_api_users},
    {"/v1/evidence", HUB_POST, hub_api_evidence},
};

/* The route for a path (up to its query), NULL for none. */
static const struct hub_route *hub_route_find(const char *path, size_t rlen)
{
    for (size_t i = 0; i < sizeof hub_routes / sizeof hub_routes[0]; i++)
        if (strlen(hub_routes[i].path) == rlen && memcmp(hub_routes[i].path, path, rlen) == 0)
            return &hub_routes[i];
    return NULL;
}

/* An idle pull on a shared store, outside the hub mutex (hub/poll_idle.h). */
int hub_api_pull_idle(const hub *h, hub_idle *ip, const struct hub_request *req,
                      struct hub_response *resp, char *name, size_t name_cap)
{
    const char *path = req->path != NULL ? req->path : "";
    const char *q = strchr(path, '?');
    struct reqsig_request parsed;
    struct wire_pull_query pq;
    struct hub_idle_row row;
    uint8_t *bundle = NULL;
    size_t len = 0;
    int64_t now = plat_wall_now();
    int rc;

    const struct hub_route *r = q != NULL ? hub_route_find(path, (size_t)(q - path)) : NULL;

    memset(resp, 0, sizeof *resp);
    if (ip == NULL || req->checked_pk == NULL || !req->checked_ok || r == NULL ||
        strcmp(r->path, "/v1/pull") != 0 || req->method == NULL ||
        strcmp(req->method, hub_method_names[r->method]) != 0)
        return 0;
    cmc_err_clear();
    if (reqsig_parse(req->device, req->time, req->nonce, req->signature, &parsed) != CMC_OK ||
        reqsig_check_time(&parsed, now, NULL) != CMC_OK || wire_pull_query_decode(q + 1, &pq) != CMC_OK)
        return 0; /* the ordinary way words the refusal */
    /* a cursor from a timeline a restore lost, or not yet committed: the ordinary way */
    if (pq.applied != pq.cursor || pq.cursor == 0 || hub_cursor_lost(h, pq.cursor))
        return 0;
    if ((rc = hub_idle_check(ip, parsed.device_id, parsed.nonce, now, req->checked_pk, pq.cursor,
                             &row)) != CMC_OK) {
        hub_respond_code(resp, rc);
        return 1;
    }
    if (row.state == HUB_IDLE_NOT)
        return 0;
    if (row.state == HUB_IDLE_REPLAY) {
        hub_respond_error(resp, 401, "replay", "request replayed (nonce already used)");
        return 1;
    }
    rc = hub_pull_idle_page(h, parsed.device_id, pq.cursor, row.lease_days, pq.codecs, &bundle,
                            &len);
    hub_respond_ok(resp, rc, CT_BUNDLE, bundle, len);
    if (rc == CMC_OK)
        snprintf(name, name_cap, "%s (%s)", row.name, parsed.device_id);
    return 1;
}

/* A msgpack endpoint's answer (device_id NULL for the unsigned enrollment). */
static void hub_api_answer(hub *h, const struct hub_route *r, const char *device_id,
                           const struct hub_request *req, struct hub_response *resp)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = r->answer(h, device_id, req, &buf, &len);
    hub_respond_ok(resp, rc, CT_MSGPACK, buf, len);
}

void hub_api_handle(hub *h, const struct hub_request *req, struct hub_response *resp)
{
    const char *path = req->path != NULL ? req->path : "";
    const char *q = strchr(path, '?');
    size_t rlen = q != NULL ? (size_t)(q - path) : strlen(path);
    const char *method = req->method != NULL ? req->method : "";
    const struct hub_route *r = hub_route_find(path, rlen);
    char device_id[PLAN_ID_LEN + 1];
    int replay = 0, rc;

    memset(resp, 0, sizeof *resp);
    cmc_err_clear();
    if (r == NULL) {
        hub_respond_error(resp, 404, "not_found", "no such endpoint");
        return;
    }
    if (strcmp(method, hub_method_names[r->method]) != 0) {
        hub_respond_error(resp, 405, "usage", "method not allowed for this endpoint");
        return;
    }
    if (req->body_len > HUB_MAX_REQUEST) {
        hub_respond_error(resp, 413, "too_large", "request body is too large");
        return;
    }
    if (r->answer == hub_api_enroll) {
        hub_api_answer(h, r, NULL, req, resp);
        return;
    }

    struct hub_signed_request sreq = {
        .method = method,
        .path = path,
        .device = req->device,
        .time = req->time,
        .nonce = req->nonce,
        .signature = req->signature,
        .body = req->body,
        .body_len = req->body_len,
        .checked_pk = req->checked_pk,
        .checked_ok = req->checked_ok,
    };
    if ((rc = hub_auth_request(h, &sreq, device_id, &replay)) != CMC_OK) {
        if (replay)
            hub_respond_error(resp, 401, "replay", cmc_errmsg());
        else
            hub_respond_code(resp, rc);
        return;
    }
    if (r->answer != NULL)
        hub_api_answer(h, r, device_id, req, resp);
    else if (strcmp(r->path, "/v1/pull") == 0)
        hub_api_pull(h, device_id, q != NULL ? q + 1 : "", resp);
    else
        hub_api_wait(h, device_id, q != NULL ? q + 1 : "", resp);
}

void hub_response_free(struct hub_response *resp)
{
    if (resp == NULL)
        return;
    cmc_free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
