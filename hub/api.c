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

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/mp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define CT_MSGPACK "application/msgpack"
#define CT_BUNDLE "application/vnd.cmc.bundle"
#define HUB_ACK_MAX 10000

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

static void hub_respond_mp(struct hub_response *resp, struct mp_writer *w)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = mp_writer_finish(w, &buf, &len);
    if (rc != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    resp->status = 200;
    resp->content_type = CT_MSGPACK;
    resp->body = buf;
    resp->body_len = len;
}

/* A str value copied into a NUL-terminated buffer, refusing embedded NULs. */
static int hub_mp_cstr(struct mp_reader *r, const char *key, char *out, size_t cap)
{
    const char *s;
    uint32_t n;
    if (mp_read_str(r, (uint32_t)(cap - 1), &s, &n) != CMC_OK || memchr(s, '\0', n) != NULL)
        return cmc_fail(CMC_ERR_INVALID, "%s: must be a string of at most %zu bytes", key, cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return CMC_OK;
}

static int hub_key_is(const char *key, uint32_t len, const char *want)
{
    return strlen(want) == len && memcmp(key, want, len) == 0;
}

/* ---- POST /v1/enroll ------------------------------------------------------------------- */

static void hub_api_enroll(hub *h, const struct hub_request *req, struct hub_response *resp)
{
    struct mp_reader r;
    struct mp_writer w;
    struct hub_enrollment en;
    char code[65] = "", name[HUB_NAME_MAX + 1] = "";
    const uint8_t *pk = NULL;
    const char *key;
    uint32_t n, klen, pklen = 0;
    unsigned seen = 0;
    int rc;

    mp_reader_init(&r, req->body, req->body_len, 4);
    if (mp_read_map(&r, 8, &n) != CMC_OK) {
        hub_respond_error(resp, 400, "invalid", "enroll: body must be a msgpack map");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK) {
            hub_respond_error(resp, 400, "invalid", "enroll: keys must be strings");
            return;
        }
        if (hub_key_is(key, klen, "code")) {
            rc = hub_mp_cstr(&r, "code", code, sizeof code);
            seen |= 1;
        } else if (hub_key_is(key, klen, "device_pk")) {
            rc = mp_read_bin(&r, CRY_SIGN_PK_BYTES, &pk, &pklen);
            if (rc != CMC_OK || pklen != CRY_SIGN_PK_BYTES)
                rc = cmc_fail(CMC_ERR_INVALID, "device_pk: must be 32 bytes (bin)");
            seen |= 2;
        } else if (hub_key_is(key, klen, "name")) {
            rc = hub_mp_cstr(&r, "name", name, sizeof name);
            seen |= 4;
        } else {
            rc = cmc_fail(CMC_ERR_INVALID, "enroll: unknown key");
        }
        if (rc != CMC_OK) {
            hub_respond_code(resp, rc);
            return;
        }
    }
    mp_leave(&r);
    if (mp_expect_end(&r) != CMC_OK || (seen & 3) != 3) {
        hub_respond_error(resp, 400, "invalid", "enroll: code and device_pk are required");
        return;
    }
    if ((rc = hub_enroll(h, code, pk, name, &en)) != CMC_OK) {
        cry_memzero(code, sizeof code);
        hub_respond_code(resp, rc);
        return;
    }
    cry_memzero(code, sizeof code);
    mp_writer_init(&w);
    mp_write_map(&w, 6);
    mp_write_cstr(&w, "device_id");
    mp_write_cstr(&w, en.device_id);
    mp_write_cstr(&w, "hub_pk");
    mp_write_bin(&w, en.hub_pk, CRY_SIGN_PK_BYTES);
    mp_write_cstr(&w, "scope");
    mp_write_cstr(&w, en.scope);
    mp_write_cstr(&w, "role");
    mp_write_cstr(&w, en.role);
    mp_write_cstr(&w, "lease_days");
    mp_write_int(&w, en.lease_days);
    mp_write_cstr(&w, "hub_time");
    mp_write_int(&w, en.hub_time);
    hub_respond_mp(resp, &w);
}

/* ---- GET /v1/pull ---------------------------------------------------------------------- */

/* Parses a decimal query value; CMC_ERR_INVALID for anything else. */
static int hub_query_u64(const char *v, size_t len, const char *name, uint64_t *out)
{
    uint64_t x = 0;
    if (len == 0 || len > 19)
        return cmc_fail(CMC_ERR_INVALID, "%s: must be a decimal number", name);
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return cmc_fail(CMC_ERR_INVALID, "%s: must be a decimal number", name);
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return CMC_OK;
}

static void hub_api_pull(hub *h, const char *device_id, const char *query,
                         struct hub_response *resp)
{
    uint64_t cursor = 0, applied = 0, budget = 0;
    int have_cursor = 0, have_applied = 0, rc;
    const char *p = query;
    uint8_t *bundle = NULL;
    size_t len = 0;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - p), vlen = plen - klen - 1;
            if (klen == 6 && memcmp(p, "cursor", 6) == 0) {
                if ((rc = hub_query_u64(eq + 1, vlen, "cursor", &cursor)) != CMC_OK) {
                    hub_respond_code(resp, rc);
                    return;
                }
                have_cursor = 1;
            } else if (klen == 6 && memcmp(p, "budget", 6) == 0) {
                if ((rc = hub_query_u64(eq + 1, vlen, "budget", &budget)) != CMC_OK) {
                    hub_respond_code(resp, rc);
                    return;
                }
            } else if (klen == 7 && memcmp(p, "applied", 7) == 0) {
                if ((rc = hub_query_u64(eq + 1, vlen, "applied", &applied)) != CMC_OK) {
                    hub_respond_code(resp, rc);
                    return;
                }
                have_applied = 1;
            }
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    if (!have_cursor) {
        hub_respond_error(resp, 400, "invalid", "pull: the cursor query parameter is required");
        return;
    }
    if (budget > HUB_BUDGET_MAX)
        budget = HUB_BUDGET_MAX;
    if (!have_applied)
        applied = cursor; /* the device has committed what it continues from */
    if ((rc = hub_pull(h, device_id, cursor, applied, (size_t)budget, &bundle, &len)) != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    resp->status = 200;
    resp->content_type = CT_BUNDLE;
    resp->body = bundle;
    resp->body_len = len;
}

/* ---- POST /v1/push --------------------------------------------------------------------- */

static void hub_api_push(hub *h, const char *device_id, const struct hub_request *req,
                         struct hub_response *resp)
{
    struct mp_reader r;
    struct mp_writer w;
    struct hub_push_reply reply;
    char idem[65] = "", plan_id[PLAN_ID_LEN + 2] = "";
    const uint8_t *change = NULL;
    uint32_t n, klen, change_len = 0;
    int64_t base = -1;
    const char *key;
    unsigned seen = 0;
    int rc;

    mp_reader_init(&r, req->body, req->body_len, 4);
    if (mp_read_map(&r, 8, &n) != CMC_OK) {
        hub_respond_error(resp, 400, "invalid", "push: body must be a msgpack map");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK) {
            hub_respond_error(resp, 400, "invalid", "push: keys must be strings");
            return;
        }
        if (hub_key_is(key, klen, "idempotency_id")) {
            rc = hub_mp_cstr(&r, "idempotency_id", idem, sizeof idem);
            seen |= 1;
        } else if (hub_key_is(key, klen, "plan_id")) {
            rc = hub_mp_cstr(&r, "plan_id", plan_id, sizeof plan_id);
            seen |= 2;
        } else if (hub_key_is(key, klen, "base_version")) {
            rc = mp_read_int(&r, &base);
            if (rc != CMC_OK || base < 1)
                rc = cmc_fail(CMC_ERR_INVALID, "base_version: must be a positive integer");
            seen |= 4;
        } else if (hub_key_is(key, klen, "change")) {
            rc = mp_read_bin(&r, PLAN_MAX_ENCODED, &change, &change_len);
            if (rc != CMC_OK)
                rc = cmc_fail(CMC_ERR_INVALID, "change: must be bin of at most %d bytes",
                              PLAN_MAX_ENCODED);
            seen |= 8;
        } else {
            rc = cmc_fail(CMC_ERR_INVALID, "push: unknown key");
        }
        if (rc != CMC_OK) {
            hub_respond_code(resp, rc);
            return;
        }
    }
    mp_leave(&r);
    if (mp_expect_end(&r) != CMC_OK || seen != 15) {
        hub_respond_error(resp, 400, "invalid",
                          "push: idempotency_id, plan_id, base_version and change are required");
        return;
    }
    if ((rc = hub_push(h, device_id, idem, plan_id, base, change, change_len, &reply)) != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    mp_writer_init(&w);
    mp_write_map(&w, reply.result == HUB_PUSH_CONFLICT ? 3 : 2);
    mp_write_cstr(&w, "result");
    mp_write_cstr(&w, reply.result == HUB_PUSH_ACCEPTED    ? "accepted"
                      : reply.result == HUB_PUSH_DUPLICATE ? "duplicate"
                                                           : "conflict");
    mp_write_cstr(&w, "version");
    mp_write_int(&w, reply.version);
    if (reply.result == HUB_PUSH_CONFLICT) {
        mp_write_cstr(&w, "current");
        mp_write_bin(&w, reply.current, reply.current_len);
    }
    cmc_free(reply.current);
    hub_respond_mp(resp, &w);
}

/* ---- POST /v1/audit, POST /v1/ack ------------------------------------------------------ */

static void hub_api_audit(hub *h, const char *device_id, const struct hub_request *req,
                          struct hub_response *resp)
{
    struct mp_writer w;
    uint64_t acked = 0;
    int rc = hub_audit_intake(h, device_id, req->body, req->body_len, &acked);
    if (rc != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "acked_seq");
    mp_write_uint(&w, acked);
    hub_respond_mp(resp, &w);
}

static void hub_api_ack(hub *h, const char *device_id, const struct hub_request *req,
                        struct hub_response *resp)
{
    struct mp_reader r;
    struct mp_writer w;
    char (*ids)[PLAN_ID_LEN + 1] = NULL;
    const char **ptrs = NULL;
    uint32_t n, klen, n_ids = 0;
    const char *key;
    int wipe = 0, rc = CMC_OK;

    mp_reader_init(&r, req->body, req->body_len, 4);
    if (mp_read_map(&r, 4, &n) != CMC_OK) {
        hub_respond_error(resp, 400, "invalid", "ack: body must be a msgpack map");
        return;
    }
    for (uint32_t i = 0; i < n && rc == CMC_OK; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK) {
            rc = cmc_fail(CMC_ERR_INVALID, "ack: keys must be strings");
        } else if (hub_key_is(key, klen, "purges") && ids == NULL) {
            if (mp_read_array(&r, HUB_ACK_MAX, &n_ids) != CMC_OK) {
                rc = cmc_fail(CMC_ERR_INVALID, "purges: an array of at most %d plan ids", HUB_ACK_MAX);
                break;
            }
            ids = cmc_calloc(n_ids ? n_ids : 1, sizeof *ids);
            ptrs = cmc_calloc(n_ids ? n_ids : 1, sizeof *ptrs);
            if (ids == NULL || ptrs == NULL) {
                rc = cmc_fail(CMC_ERR_NOMEM, "ack");
                break;
            }
            for (uint32_t j = 0; j < n_ids && rc == CMC_OK; j++) {
                rc = hub_mp_cstr(&r, "purges[]", ids[j], sizeof ids[j]);
                if (rc == CMC_OK && !plan_uuid_valid(ids[j]))
                    rc = cmc_fail(CMC_ERR_INVALID, "purges[]: not a plan id");
                ptrs[j] = ids[j];
            }
            mp_leave(&r);
        } else if (hub_key_is(key, klen, "wipe")) {
            if (mp_read_bool(&r, &wipe) != CMC_OK)
                rc = cmc_fail(CMC_ERR_INVALID, "wipe: must be a boolean");
        } else {
            rc = cmc_fail(CMC_ERR_INVALID, "ack: unknown or repeated key");
        }
    }
    if (rc == CMC_OK) {
        mp_leave(&r);
        if (mp_expect_end(&r) != CMC_OK)
            rc = cmc_fail(CMC_ERR_INVALID, "ack: trailing bytes after the body");
    }
    if (rc == CMC_OK)
        rc = hub_ack(h, device_id, ptrs, n_ids, wipe);
    cmc_free(ids);
    cmc_free(ptrs);
    if (rc != CMC_OK) {
        hub_respond_code(resp, rc);
        return;
    }
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "ok");
    mp_write_bool(&w, 1);
    hub_respond_mp(resp, &w);
}

/* ---- dispatch -------------------------------------------------------------------------- */

void hub_api_handle(hub *h, const struct hub_request *req, struct hub_response *resp)
{
    char route[32];
    const char *path = req->path != NULL ? req->path : "";
    const char *q = strchr(path, '?');
    size_t rlen = q != NULL ? (size_t)(q - path) : strlen(path);
    const char *method = req->method != NULL ? req->method : "";
    const char *want_method;
    char device_id[PLAN_ID_LEN + 1];
    int replay = 0, rc;

    memset(resp, 0, sizeof *resp);
    cmc_err_clear();
    if (rlen >= sizeof route) {
        hub_respond_error(resp, 404, "not_found", "no such endpoint");
        return;
    }
    memcpy(route, path, rlen);
    route[rlen] = '\0';
    if (strcmp(route, "/v1/pull") == 0)
        want_method = "GET";
    else if (strcmp(route, "/v1/enroll") == 0 || strcmp(route, "/v1/push") == 0 ||
             strcmp(route, "/v1/audit") == 0 || strcmp(route, "/v1/ack") == 0)
        want_method = "POST";
    else {
        hub_respond_error(resp, 404, "not_found", "no such endpoint");
        return;
    }
    if (strcmp(method, want_method) != 0) {
        hub_respond_error(resp, 405, "usage", "method not allowed for this endpoint");
        return;
    }
    if (req->body_len > HUB_MAX_REQUEST) {
        hub_respond_error(resp, 413, "too_large", "request body is too large");
        return;
    }
    if (strcmp(route, "/v1/enroll") == 0) {
        hub_api_enroll(h, req, resp);
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
    if (strcmp(route, "/v1/pull") == 0)
        hub_api_pull(h, device_id, q != NULL ? q + 1 : "", resp);
    else if (strcmp(route, "/v1/push") == 0)
        hub_api_push(h, device_id, req, resp);
    else if (strcmp(route, "/v1/audit") == 0)
        hub_api_audit(h, device_id, req, resp);
    else
        hub_api_ack(h, device_id, req, resp);
}

void hub_response_free(struct hub_response *resp)
{
    if (resp == NULL)
        return;
    cmc_free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
