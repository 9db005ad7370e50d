/*
 * web_fhir.c - the device's loopback FHIR endpoint and its app tokens (web_fhir.h).
 */
#include "agent/web_fhir.h"

#include "agent/audit.h"
#include "agent/lease.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/fhir.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#define APPS_MAX_BYTES (64 * 1024)

static int apps_path(const char *dir, char *out, size_t cap)
{
    return plat_path_join(out, cap, dir, WEB_FHIR_APPS_FILE);
}

static int name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    return n > 0 && n <= WEB_FHIR_APP_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The apps file's text ("" when there is none yet); cmc_free. */
static int apps_load(const char *dir, char **text)
{
    char path[4200];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    *text = NULL;
    if ((rc = apps_path(dir, path, sizeof path)) != CMC_OK)
        return rc;
    rc = plat_read_file(path, APPS_MAX_BYTES, &buf, &len);
    if (rc == CMC_ERR_NOT_FOUND) {
        *text = cmc_strdup("");
        return *text != NULL ? CMC_OK : cmc_fail(CMC_ERR_NOMEM, "out of memory");
    }
    if (rc != CMC_OK)
        return rc;
    if ((*text = cmc_malloc(len + 1)) == NULL) {
        cmc_free(buf);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory");
    }
    memcpy(*text, buf, len);
    (*text)[len] = '\0';
    cmc_free(buf);
    return CMC_OK;
}

int web_fhir_app_add(const char *dir, const char *name, const char *added_by, char **token)
{
    uint8_t raw[WEB_FHIR_TOKEN_BYTES], h[CRY_HASH_BYTES];
    char hex[CRY_HASH_BYTES * 2 + 1], path[4200], line[256], *text = NULL, *all = NULL;
    size_t tlen;
    int rc;

    *token = NULL;
    if (!name_valid(name))
        return cmc_fail(CMC_ERR_USAGE, "app name: 1 to %d of A-Z a-z 0-9 . _ -", WEB_FHIR_APP_NAME_MAX);
    if ((rc = apps_load(dir, &text)) != CMC_OK)
        return rc;
    for (const char *l = text; *l != '\0'; l = strchr(l, '\n') != NULL ? strchr(l, '\n') + 1 : l + strlen(l))
        if (strncmp(l, name, strlen(name)) == 0 && l[strlen(name)] == ' ') {
            cmc_free(text);
            return cmc_fail(CMC_ERR_EXISTS, "an app named %s is already registered", name);
        }
    cry_random(raw, sizeof raw);
    cry_hash(h, raw, sizeof raw);
    cry_hex(hex, h, sizeof h);
    snprintf(line, sizeof line, "%s %s %s %lld\n", name, hex, added_by, (long long)plat_wall_now());
    tlen = strlen(text);
    if ((all = cmc_malloc(tlen + strlen(line) + 1)) == NULL ||
        (*token = cmc_malloc(WEB_FHIR_TOKEN_BYTES * 2 + 1)) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(all, text, tlen);
    memcpy(all + tlen, line, strlen(line) + 1);
    if ((rc = apps_path(dir, path, sizeof path)) == CMC_OK &&
        (rc = plat_write_atomic(path, all, strlen(all))) == CMC_OK)
        cry_hex(*token, raw, sizeof raw);
out:
    cry_memzero(raw, sizeof raw);
    if (rc != CMC_OK) {
        cmc_free(*token);
        *token = NULL;
    }
    cmc_free(all);
    cmc_free(text);
    return rc;
}

int web_fhir_app_remove(const char *dir, const char *name)
{
    char path[4200], *text = NULL, *out = NULL;
    size_t used = 0;
    int rc, found = 0;
    if (!name_valid(name))
        return cmc_fail(CMC_ERR_USAGE, "app name: 1 to %d of A-Z a-z 0-9 . _ -", WEB_FHIR_APP_NAME_MAX);
    if ((rc = apps_load(dir, &text)) != CMC_OK)
        return rc;
    if ((out = cmc_malloc(strlen(text) + 1)) == NULL) {
        cmc_free(text);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory");
    }
    for (char *l = strtok(text, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        if (strncmp(l, name, strlen(name)) == 0 && l[strlen(name)] == ' ') {
            found = 1;
            continue;
        }
        used += (size_t)sprintf(out + used, "%s\n", l);
    }
    if (!found)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no app of that name on this device");
    else if ((rc = apps_path(dir, path, sizeof path)) == CMC_OK)
        rc = plat_write_atomic(path, out, used);
    cmc_free(out);
    cmc_free(text);
    return rc;
}

int web_fhir_app_list(const char *dir, int (*cb)(const char *name, const char *added_by, int64_t added_at, void *ctx),
                      void *ctx)
{
    char *text = NULL;
    int rc = apps_load(dir, &text);
    for (char *l = rc == CMC_OK ? strtok(text, "\n") : NULL; l != NULL; l = strtok(NULL, "\n")) {
        char n[WEB_FHIR_APP_NAME_MAX + 2], hex[CRY_HASH_BYTES * 2 + 2], by[80];
        long long at = 0;
        if (sscanf(l, "%25s %65s %79s %lld", n, hex, by, &at) == 4 && (rc = cb(n, by, at, ctx)) != 0)
            break;
    }
    cmc_free(text);
    return rc;
}

int web_fhir_app_check(const char *dir, const char *authorization, char name[WEB_FHIR_APP_NAME_MAX + 1])
{
    uint8_t raw[WEB_FHIR_TOKEN_BYTES], h[CRY_HASH_BYTES], want[CRY_HASH_BYTES];
    char *text = NULL;
    int rc, found = 0;

    name[0] = '\0';
    if (authorization == NULL || strncmp(authorization, "Bearer ", 7) != 0 ||
        strlen(authorization + 7) != WEB_FHIR_TOKEN_BYTES * 2 ||
        cry_unhex(raw, sizeof raw, authorization + 7) != CMC_OK)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "an app token is required");
    cry_hash(h, raw, sizeof raw);
    cry_memzero(raw, sizeof raw);
    if ((rc = apps_load(dir, &text)) != CMC_OK)
        return rc;
    for (char *l = strtok(text, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        char n[WEB_FHIR_APP_NAME_MAX + 2], hex[CRY_HASH_BYTES * 2 + 2];
        if (sscanf(l, "%25s %65s", n, hex) != 2 || strlen(hex) != CRY_HASH_BYTES * 2 ||
            cry_unhex(want, sizeof want, hex) != CMC_OK)
            continue;
        if (strlen(n) > WEB_FHIR_APP_NAME_MAX)
            continue;
        if (cry_memeq(want, h, sizeof h) && !found) {
            memcpy(name, n, strlen(n) + 1);
            found = 1;
        }
    }
    cmc_free(text);
    return found ? CMC_OK : cmc_fail(CMC_ERR_UNAUTHORIZED, "the app token is not valid");
}

/* ---- answers ----------------------------------------------------------------------------- */

static void answer(int *status, struct web_buf *body, int code, json_t *j)
{
    char *text = NULL;
    size_t len = 0;
    *status = code;
    if (j != NULL && fhir_dump(j, 0, &text, &len) == CMC_OK)
        web_buf_raw(body, text);
    else {
        *status = 500;
        web_buf_raw(body, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                          "\"code\":\"exception\",\"diagnostics\":\"out of memory\"}]}");
    }
    cmc_free(text);
    json_decref(j);
}

static void refuse(int *status, struct web_buf *body, int code, const char *type, const char *why)
{
    answer(status, body, code, fhir_outcome(type, why, NULL));
}

struct dev_call {
    store *st;
    const char *base;
    char action[40];
    int *status;
    struct web_buf *body;
};

/* The plan's resources (every one, with search.mode set for a searchset) or NULL. */
static json_t *plan_resources(struct dev_call *c, const struct plan *p)
{
    json_t *all = json_array();
    if (all != NULL && fhir_plan_entries(p, c->base, all) != CMC_OK) {
        json_decref(all);
        return NULL;
    }
    return all;
}

static int wants(const struct fhir_query *q, const char *search_type, const char *rt)
{
    if (strcmp(search_type, rt) == 0)
        return 1;
    if (strcmp(search_type, "CarePlan") != 0)
        return 0;
    for (size_t i = 0; i < q->n; i++) {
        const char *v = q->p[i].value;
        if (strcmp(q->p[i].key, "_include") != 0)
            continue;
        if (strcmp(v, "*") == 0 || strcmp(v, "CarePlan:*") == 0 ||
            (strcmp(rt, "Patient") == 0 && (strcmp(v, "CarePlan:subject") == 0 || strcmp(v, "CarePlan:patient") == 0)) ||
            (strcmp(rt, "Condition") == 0 && strcmp(v, "CarePlan:condition") == 0))
            return 1;
    }
    return 0;
}

static void search(struct dev_call *c, const char *type, const struct fhir_query *qp)
{
    static const char *const known_patient[] = {"identifier", "_count", NULL};
    static const char *const known_other[] = {"patient.identifier", "status", "_include", "_count", NULL};
    struct fhir_query q = *qp;
    struct plan p;
    char nhs[PLAN_NHS_LEN + 1];
    const char *ident, *status;
    json_t *b, *all = NULL, *e;
    size_t i;
    int patient = strcmp(type, "Patient") == 0, rc, matched = 0;

    if (q.n > FHIR_QUERY_MAX)
        rc = cmc_fail(CMC_ERR_INVALID, "too many search parameters");
    else if ((rc = fhir_query_known(&q, patient ? known_patient : known_other)) != CMC_OK ||
        (ident = fhir_query_get(&q, patient ? "identifier" : "patient.identifier")) == NULL ||
        (rc = fhir_query_nhs(ident, nhs)) != CMC_OK)
        rc = rc != CMC_OK ? rc : CMC_ERR_INVALID;
    if (rc != CMC_OK) {
        refuse(c->status, c->body, 400, "invalid",
               rc != CMC_OK ? cmc_errmsg() : "search by NHS number: identifier=" FHIR_NHS_SYSTEM "|N");
        return;
    }
    status = fhir_query_get(&q, "status");
    b = json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle", "type", "searchset", "entry");
    plan_init(&p);
    rc = status != NULL && strcmp(status, "active") != 0 ? CMC_ERR_NOT_FOUND
                                                        : store_plan_get_published(c->st, nhs, &p);
    if (rc == CMC_OK && (all = plan_resources(c, &p)) != NULL) {
        json_array_foreach(all, i, e) {
            const char *rt = json_string_value(json_object_get(json_object_get(e, "resource"), "resourceType"));
            if (!wants(&q, type, rt))
                continue;
            json_object_set_new(e, "search", json_pack("{s:s}", "mode", strcmp(rt, type) == 0 ? "match" : "include"));
            json_array_append(json_object_get(b, "entry"), e);
        }
        matched = 1;
        audit_record(c->st, c->action, p.plan_id, NULL); /* recorded before it is sent */
    } else if (rc == CMC_ERR_NOT_FOUND) {
        audit_record(c->st, c->action, NULL, nhs);
        rc = CMC_OK;
    } else if (rc == CMC_OK)
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    json_decref(all);
    plan_free(&p);
    if (rc != CMC_OK || b == NULL) {
        json_decref(b);
        refuse(c->status, c->body, 500, "exception", "the device could not answer");
        return;
    }
    json_object_set_new(b, "total", json_integer(matched));
    answer(c->status, c->body, 200, b);
}

static void read_by_id(struct dev_call *c, const char *type, const char *id)
{
    char plan_id[PLAN_ID_LEN + 1];
    struct plan p;
    json_t *all = NULL, *e, *found = NULL;
    size_t i;
    plan_init(&p);
    if (fhir_resource_plan(id, plan_id) && store_plan_get_published(c->st, plan_id, &p) == CMC_OK &&
        (all = plan_resources(c, &p)) != NULL)
        json_array_foreach(all, i, e) {
            json_t *r = json_object_get(e, "resource");
            if (found == NULL && strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 &&
                strcmp(json_string_value(json_object_get(r, "id")), id) == 0)
                found = json_incref(r);
        }
    if (found != NULL)
        audit_record(c->st, c->action, p.plan_id, NULL);
    json_decref(all);
    plan_free(&p);
    if (found == NULL)
        refuse(c->status, c->body, 404, "not-found", "no such resource on this device");
    else
        answer(c->status, c->body, 200, found);
}

static json_t *capability_statement(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[s], s:[{s:s, s:[{s:s, s:[{s:s}, {s:s}]},"
                     " {s:s, s:[{s:s}, {s:s}], s:[s, s, s]}, {s:s, s:[{s:s}, {s:s}]}]}]}",
                     "resourceType", "CapabilityStatement", "status", "active", "date", "2026-12-01",
                     "kind", "instance", "fhirVersion", "4.0.1", "software", "name", "cmc-agent",
                     "format", "application/fhir+json", "rest", "mode", "server", "resource",
                     "type", "Patient", "interaction", "code", "read", "code", "search-type",
                     "type", "CarePlan", "interaction", "code", "read", "code", "search-type",
                     "searchInclude", "CarePlan:subject", "CarePlan:condition", "*",
                     "type", "Flag", "interaction", "code", "read", "code", "search-type");
}

void web_fhir_route(store *st, const char *dir, const char *method, const char *url,
                    const struct fhir_query *query, const char *authorization, const char *base,
                    int *status, struct web_buf *body)
{
    struct dev_call c;
    char app[WEB_FHIR_APP_NAME_MAX + 1], type[32], id[FHIR_ID_MAX + 1];
    const char *path = url + strlen(WEB_FHIR_PREFIX), *q = strchr(path, '?');
    int has_query = q != NULL || query->n > 0;
    size_t plen = q != NULL ? (size_t)(q - path) : strlen(path);
    const char *slash = memchr(path, '/', plen);
    size_t tlen = slash != NULL ? (size_t)(slash - path) : plen;

    memset(&c, 0, sizeof c);
    c.st = st;
    c.base = base;
    c.status = status;
    c.body = body;
    if (strcmp(method, "GET") != 0) {
        refuse(status, body, 405, "not-supported", "this endpoint only reads");
        return;
    }
    if (plen == 8 && strncmp(path, "metadata", 8) == 0) {
        answer(status, body, 200, capability_statement());
        return;
    }
    if (web_fhir_app_check(dir, authorization, app) != CMC_OK) {
        refuse(status, body, 401, "login", "an app token from 'cmc-agent app add' is required");
        return;
    }
    /* Nothing at all while the device is locked: no session, or its lease has run out. */
    if (st == NULL || lease_check(st) != CMC_OK) {
        refuse(status, body, 423, "security", "the device is locked: a user must unlock it");
        return;
    }
    snprintf(c.action, sizeof c.action, "fhir:%s", app);
    if (tlen == 0 || tlen >= sizeof type) {
        refuse(status, body, 404, "not-supported", "no such resource type");
        return;
    }
    memcpy(type, path, tlen);
    type[tlen] = '\0';
    if (slash == NULL) {
        if (strcmp(type, "Patient") != 0 && strcmp(type, "CarePlan") != 0 && strcmp(type, "Flag") != 0)
            refuse(status, body, 400, "not-supported", "search is for Patient, CarePlan and Flag");
        else
            search(&c, type, query);
        return;
    }
    if (plen - tlen - 1 == 0 || plen - tlen - 1 > FHIR_ID_MAX || has_query) {
        refuse(status, body, 404, "not-found", "no such resource");
        return;
    }
    memcpy(id, slash + 1, plen - tlen - 1);
    id[plen - tlen - 1] = '\0';
    read_by_id(&c, type, id);
}

/* libmicrohttpd hands the query over decoded, one argument at a time; one too many marks
 * the query as over-long (n = FHIR_QUERY_MAX + 1) so the search refuses it. */
static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct fhir_query *q = cls;
    (void)kind;
    if (q->n >= FHIR_QUERY_MAX || strlen(key) >= sizeof q->p[0].key ||
        strlen(value != NULL ? value : "") >= sizeof q->p[0].value) {
        q->n = FHIR_QUERY_MAX + 1;
        return MHD_NO;
    }
    memcpy(q->p[q->n].key, key, strlen(key) + 1);
    snprintf(q->p[q->n].value, sizeof q->p[q->n].value, "%s", value != NULL ? value : "");
    q->n++;
    return MHD_YES;
}

void web_fhir_serve(struct MHD_Connection *conn, store *st, const char *dir, const char *method,
                    const char *url, const char *host, int *status, struct web_buf *body)
{
    char base[128];
    struct fhir_query q;
    q.n = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    snprintf(base, sizeof base, "http://%s/fhir/R4", host);
    web_fhir_route(st, dir, method, url, &q,
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), base, status, body);
}
