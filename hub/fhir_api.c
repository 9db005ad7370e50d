/*
 * fhir_api.c - the hub's FHIR R4 read API under /fhir/R4/ (fhir_api.h, docs/FHIR.md).
 *
 * Only what receiving systems read: the CapabilityStatement, searches for a patient's
 * Patient, CarePlan (with _include) and Flag by NHS number, a page at a time, and reads by
 * id. A plan is served only when it has a published version, its consent stands and it is
 * inside the client's scope; what is served is always the published version. Every answer
 * that carries a patient's data is recorded (hub_fhir_audit_add) before it is sent.
 */
#include "hub/fhir_api.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/fhir.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct call {
    hub *h;
    const struct hub_fhir_request *req;
    struct hub_fhir_client client;
    struct hub_response *resp;
};

/* ---- answers ----------------------------------------------------------------------------- */

static void respond_json(struct hub_response *resp, int status, json_t *j)
{
    char *text = NULL;
    size_t len = 0;
    resp->status = status;
    resp->content_type = FHIR_CONTENT_TYPE;
    if (j == NULL || fhir_dump(j, 0, &text, &len) != CMC_OK) {
        static const char oom[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                                  "\"error\",\"code\":\"exception\",\"diagnostics\":\"out of memory\"}]}";
        resp->status = 500;
        if ((text = cmc_strdup(oom)) != NULL)
            len = strlen(oom);
    }
    resp->body = (uint8_t *)text;
    resp->body_len = len;
    json_decref(j);
}

static void respond_outcome(struct hub_response *resp, int status, const char *code,
                            const char *diagnostics)
{
    respond_json(resp, status, fhir_outcome(code, diagnostics, NULL));
}

/* An error from the hub's core as an OperationOutcome. */
static void respond_code(struct hub_response *resp, int rc)
{
    switch ((enum cmc_err)rc) {
    case CMC_ERR_NOT_FOUND:
        respond_outcome(resp, 404, "not-found", "no such resource");
        return;
    case CMC_ERR_UNAUTHORIZED:
        respond_outcome(resp, 401, "login", cmc_errmsg());
        return;
    case CMC_ERR_DENIED:
        respond_outcome(resp, 403, "forbidden", cmc_errmsg());
        return;
    case CMC_ERR_BUSY:
        respond_outcome(resp, 503, "transient", "the hub is busy; try again");
        return;
    case CMC_ERR_INVALID:
    case CMC_ERR_USAGE:
        respond_outcome(resp, 400, "invalid", cmc_errmsg());
        return;
    case CMC_OK:
    case CMC_ERR_NOMEM:
    case CMC_ERR_IO:
    case CMC_ERR_DISK_FULL:
    case CMC_ERR_EXISTS:
    case CMC_ERR_AUTH:
    case CMC_ERR_THROTTLED:
    case CMC_ERR_LOCKED:
    case CMC_ERR_TAMPERED:
    case CMC_ERR_CORRUPT:
    case CMC_ERR_TOO_LARGE:
    case CMC_ERR_DB:
    case CMC_ERR_CRYPTO:
    case CMC_ERR_NET:
    case CMC_ERR_TLS:
    case CMC_ERR_CLOCK:
    case CMC_ERR_PROTOCOL:
    case CMC_ERR_CONFLICT:
    case CMC_ERR_WIPED:
    case CMC_ERR_REFUSED:
    case CMC_ERR_STATE:
        break;
    }
    respond_outcome(resp, 500, "exception", "the hub could not answer");
}

static int count_param(const struct fhir_query *q, long *count, long *offset)
{
    const char *c = fhir_query_get(q, "_count"), *o = fhir_query_get(q, "_offset");
    char *end = NULL;
    *count = HUB_FHIR_PAGE_DEFAULT;
    *offset = 0;
    if (c != NULL && ((*count = strtol(c, &end, 10)) < 1 || *end != '\0'))
        return cmc_fail(CMC_ERR_INVALID, "_count: a positive number");
    if (o != NULL && ((*offset = strtol(o, &end, 10)) < 0 || *end != '\0' || *offset > 10000000))
        return cmc_fail(CMC_ERR_INVALID, "_offset: a number");
    if (*count > HUB_FHIR_PAGE_MAX)
        *count = HUB_FHIR_PAGE_MAX;
    return CMC_OK;
}

/* ---- which plans a client may see -------------------------------------------------------- */

/* The published version of a plan when the client may see it: 1 and *p filled; 0 when not
 * served (never published, consent withdrawn, no consent recorded, outside scope). */
static int servable(struct call *c, const char *plan_ref, struct plan *p, int *rc)
{
    struct hub_plan_info info;
    plan_init(p);
    *rc = hub_plan_info(c->h, plan_ref, &info);
    if (*rc == CMC_ERR_NOT_FOUND) {
        *rc = CMC_OK;
        return 0;
    }
    if (*rc != CMC_OK || info.published_version == 0 || info.consent_withdrawn)
        return 0;
    if ((*rc = hub_plan_get(c->h, info.plan_id, info.published_version, p)) != CMC_OK)
        return 0;
    if (p->consent.basis == PLAN_CONSENT_NONE || !hub_fhir_in_scope(&c->client, p)) {
        plan_free(p);
        return 0;
    }
    return 1;
}

struct ids {
    char (*v)[PLAN_ID_LEN + 1];
    size_t n, cap;
};

static int collect_cb(const struct hub_plan_info *info, void *ctx)
{
    struct ids *ids = ctx;
    if (info->published_version == 0 || info->consent_withdrawn)
        return 0;
    if (ids->n == ids->cap) {
        size_t ncap = ids->cap ? ids->cap * 2 : 256;
        void *nv = cmc_realloc(ids->v, ncap * sizeof *ids->v);
        if (nv == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "FHIR search: out of memory");
        ids->v = nv;
        ids->cap = ncap;
    }
    memcpy(ids->v[ids->n++], info->plan_id, PLAN_ID_LEN + 1);
    return 0;
}

/* ---- bundles ----------------------------------------------------------------------------- */

static json_t *searchset(void)
{
    return json_pack("{s:s, s:s, s:[], s:[]}", "resourceType", "Bundle", "type", "searchset",
                     "link", "entry");
}

static void add_link(struct call *c, json_t *b, const char *rel, const char *type,
                     const char *query, long offset)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/%s?%s%s_offset=%ld", c->req->base, type, query,
             query[0] != '\0' ? "&" : "", offset);
    json_array_append_new(json_object_get(b, "link"),
                          json_pack("{s:s, s:s}", "relation", rel, "url", url));
}

/* The query without _offset, for paging links. */
static void query_without_offset(const struct fhir_query *q, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < q->n; i++) {
        int n;
        if (strcmp(q->p[i].key, "_offset") == 0)
            continue;
        n = snprintf(out + used, cap - used, "%s%s=", used > 0 ? "&" : "", q->p[i].key);
        if (n < 0 || (size_t)n >= cap - used)
            return;
        used += (size_t)n;
        for (const char *s = q->p[i].value; *s != '\0' && used + 4 < cap; s++) {
            unsigned char ch = (unsigned char)*s;
            if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                strchr("-._~:/", ch) != NULL)
                out[used++] = (char)ch;
            else
                used += (size_t)snprintf(out + used, cap - used, "%%%02X", ch);
        }
        out[used] = '\0';
    }
}

/* Does an _include value ask for a resource of `type` referenced from the CarePlan? */
static int wants_include(const struct fhir_query *q, const char *type)
{
    for (size_t i = 0; i < q->n; i++) {
        const char *v = q->p[i].value;
        if (strcmp(q->p[i].key, "_include") != 0)
            continue;
        if (strcmp(v, "*") == 0 || strcmp(v, "CarePlan:*") == 0)
            return 1;
        if (strcmp(type, "Patient") == 0 &&
            (strcmp(v, "CarePlan:subject") == 0 || strcmp(v, "CarePlan:patient") == 0))
            return 1;
        if (strcmp(type, "Condition") == 0 && strcmp(v, "CarePlan:condition") == 0)
            return 1;
    }
    return 0;
}

static int include_known(const struct fhir_query *q)
{
    static const char *const ok[] = {"*", "CarePlan:*", "CarePlan:subject", "CarePlan:patient",
                                     "CarePlan:condition", NULL};
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        if (strcmp(q->p[i].key, "_include") != 0)
            continue;
        while (ok[k] != NULL && strcmp(ok[k], q->p[i].value) != 0)
            k++;
        if (ok[k] == NULL)
            return cmc_fail(CMC_ERR_INVALID, "_include: *, CarePlan:subject or CarePlan:condition");
    }
    return CMC_OK;
}

/* Adds a plan's resources of `type` (search.mode match) and, for a CarePlan search, what
 * _include asks for (mode include) to a searchset; records the read. */
static int add_plan(struct call *c, json_t *b, const struct plan *p, const char *type,
                    const struct fhir_query *q)
{
    json_t *all = json_array(), *e;
    char action[64];
    size_t i;
    int rc;
    if (all == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    if ((rc = fhir_plan_entries(p, c->req->base, all)) != CMC_OK) {
        json_decref(all);
        return rc;
    }
    json_array_foreach(all, i, e) {
        const char *rt = json_string_value(json_object_get(json_object_get(e, "resource"), "resourceType"));
        const char *mode = strcmp(rt, type) == 0 ? "match"
                           : strcmp(type, "CarePlan") == 0 && wants_include(q, rt) ? "include"
                                                                                  : NULL;
        if (mode == NULL)
            continue;
        json_object_set_new(e, "search", json_pack("{s:s}", "mode", mode));
        json_array_append(json_object_get(b, "entry"), e);
    }
    json_decref(all);
    snprintf(action, sizeof action, "FHIR search %s", type);
    return hub_fhir_audit_add(c->h, c->client.client_id, c->client.name, p->plan_id, p->nhs_number,
                              action);
}

/* Patient, CarePlan or Flag: by NHS number, or every served plan a page at a time. */
static void search(struct call *c, const char *type, const char *qs)
{
    static const char *const known_patient[] = {"identifier", "_count", "_offset", NULL};
    static const char *const known_other[] = {"patient.identifier", "status", "_include",
                                              "_count", "_offset", NULL};
    struct fhir_query q;
    struct plan p;
    struct ids ids = {NULL, 0, 0};
    char nhs[PLAN_NHS_LEN + 1], self[1024];
    const char *ident, *status;
    long count, offset, matched = 0;
    int patient = strcmp(type, "Patient") == 0, rc;
    json_t *b = NULL;

    if ((rc = fhir_query_parse(qs, &q)) != CMC_OK ||
        (rc = fhir_query_known(&q, patient ? known_patient : known_other)) != CMC_OK ||
        (rc = count_param(&q, &count, &offset)) != CMC_OK ||
        (rc = strcmp(type, "CarePlan") == 0 ? include_known(&q) : CMC_OK) != CMC_OK)
        goto out;
    ident = fhir_query_get(&q, patient ? "identifier" : "patient.identifier");
    status = fhir_query_get(&q, "status");
    if (patient && ident == NULL) {
        rc = cmc_fail(CMC_ERR_INVALID, "Patient search needs identifier=" FHIR_NHS_SYSTEM "|N");
        goto out;
    }
    if (ident != NULL && (rc = fhir_query_nhs(ident, nhs)) != CMC_OK)
        goto out;
    if ((b = searchset()) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
        goto out;
    }
    query_without_offset(&q, self, sizeof self);
    add_link(c, b, "self", type, self, offset);
    /* Served CarePlans are all active; a search for any other status matches nothing. */
    if (status != NULL && strcmp(status, "active") != 0)
        goto done;
    if (ident != NULL) {
        if (servable(c, nhs, &p, &rc)) {
            if (offset == 0)
                rc = add_plan(c, b, &p, type, &q);
            matched = 1;
            plan_free(&p);
        } else if (rc == CMC_OK) /* a look-up that found nothing is the patient's record too */
            rc = hub_fhir_audit_add(c->h, c->client.client_id, c->client.name, "", nhs,
                                    "FHIR search, nothing shared");
        if (rc == CMC_OK)
            json_object_set_new(b, "total", json_integer(matched));
        goto done;
    }
    if ((rc = hub_plan_list(c->h, 0, collect_cb, &ids)) != CMC_OK)
        goto out;
    for (size_t i = 0; i < ids.n && rc == CMC_OK; i++) {
        if (!servable(c, ids.v[i], &p, &rc))
            continue;
        if (matched >= offset && matched < offset + count)
            rc = add_plan(c, b, &p, type, &q);
        plan_free(&p);
        if (++matched > offset + count)
            break;
    }
    if (rc == CMC_OK && matched > offset + count)
        add_link(c, b, "next", type, self, offset + count);
done:
    if (rc == CMC_OK) {
        respond_json(c->resp, 200, b);
        b = NULL;
    }
out:
    cmc_free(ids.v);
    json_decref(b);
    if (rc != CMC_OK)
        respond_code(c->resp, rc);
}

static void read_by_id(struct call *c, const char *type, const char *id)
{
    char plan_id[PLAN_ID_LEN + 1], action[64];
    struct plan p;
    json_t *all = NULL, *e, *found = NULL;
    size_t i;
    int rc = CMC_OK;

    if (!fhir_resource_plan(id, plan_id) || !servable(c, plan_id, &p, &rc)) {
        respond_code(c->resp, rc != CMC_OK ? rc : CMC_ERR_NOT_FOUND);
        return;
    }
    if ((all = json_array()) == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    else
        rc = fhir_plan_entries(&p, c->req->base, all);
    json_array_foreach(all, i, e) {
        json_t *r = json_object_get(e, "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 &&
            strcmp(json_string_value(json_object_get(r, "id")), id) == 0)
            found = json_incref(r);
    }
    snprintf(action, sizeof action, "FHIR read %s", type);
    if (rc == CMC_OK && found != NULL)
        rc = hub_fhir_audit_add(c->h, c->client.client_id, c->client.name, p.plan_id,
                                p.nhs_number, action);
    json_decref(all);
    plan_free(&p);
    if (rc != CMC_OK) {
        json_decref(found);
        respond_code(c->resp, rc);
    } else if (found == NULL)
        respond_code(c->resp, CMC_ERR_NOT_FOUND);
    else
        respond_json(c->resp, 200, found);
}

/* ---- AuditEvent (hub/fhir_audit.c) ---------------------------------------------------- */

static void audit_search(struct call *c, const char *qs)
{
    static const char *const known[] = {"patient.identifier", "_count", "_offset", NULL};
    struct fhir_query q;
    char nhs[PLAN_NHS_LEN + 1], self[1024];
    const char *ident;
    long count, offset;
    int more = 0, rc;
    json_t *b = NULL;

    if ((rc = fhir_query_parse(qs, &q)) != CMC_OK || (rc = fhir_query_known(&q, known)) != CMC_OK ||
        (rc = count_param(&q, &count, &offset)) != CMC_OK)
        goto out;
    if ((ident = fhir_query_get(&q, "patient.identifier")) == NULL) {
        rc = cmc_fail(CMC_ERR_INVALID, "AuditEvent search needs patient.identifier=" FHIR_NHS_SYSTEM "|N");
        goto out;
    }
    if ((rc = fhir_query_nhs(ident, nhs)) != CMC_OK)
        goto out;
    if ((b = searchset()) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
        goto out;
    }
    query_without_offset(&q, self, sizeof self);
    add_link(c, b, "self", "AuditEvent", self, offset);
    if ((rc = hub_fhir_audit_search(c->h, &c->client, nhs, count, offset, b, &more)) == CMC_OK) {
        if (more)
            add_link(c, b, "next", "AuditEvent", self, offset + count);
        respond_json(c->resp, 200, b);
        return;
    }
out:
    json_decref(b);
    respond_code(c->resp, rc);
}

/* An audit client reads AuditEvents only; other clients never read them. */
static int audit_allowed(const struct call *c, const char *type)
{
    int auditor = strcmp(c->client.scope, HUB_FHIR_SCOPE_AUDIT) == 0;
    if (auditor == (strcmp(type, "AuditEvent") == 0))
        return CMC_OK;
    return cmc_fail(CMC_ERR_DENIED, auditor ? "this client's scope is audit: it reads AuditEvent only"
                                            : "AuditEvent is read by clients registered with --scope audit");
}

/* ---- metadata and dispatch --------------------------------------------------------------- */

static json_t *capability_statement(void)
{
    static const char *const readable[] = {"Observation", "Consent", "Condition",
                                           "MedicationStatement", "AllergyIntolerance",
                                           "PractitionerRole", "RelatedPerson", "Provenance", NULL};
    json_t *res = json_pack(
        "[{s:s, s:[{s:s}, {s:s}], s:[{s:s, s:s}, {s:s, s:s}]},"
        " {s:s, s:[{s:s}, {s:s}], s:[{s:s, s:s}, {s:s, s:s}], s:[s, s, s]},"
        " {s:s, s:[{s:s}, {s:s}], s:[{s:s, s:s}]}]",
        "type", "Patient", "interaction", "code", "read", "code", "search-type", "searchParam",
        "name", "identifier", "type", "token", "name", "_count", "type", "number",
        "type", "CarePlan", "interaction", "code", "read", "code", "search-type", "searchParam",
        "name", "patient.identifier", "type", "token", "name", "status", "type", "token",
        "searchInclude", "CarePlan:subject", "CarePlan:condition", "*",
        "type", "Flag", "interaction", "code", "read", "code", "search-type", "searchParam",
        "name", "patient.identifier", "type", "token");
    for (size_t i = 0; res != NULL && readable[i] != NULL; i++)
        json_array_append_new(res, json_pack("{s:s, s:[{s:s}]}", "type", readable[i],
                                             "interaction", "code", "read"));
    if (res != NULL) /* for clients registered with --scope audit */
        json_array_append_new(res, json_pack("{s:s, s:[{s:s}, {s:s}], s:[{s:s, s:s}]}", "type",
                                             "AuditEvent", "interaction", "code", "read", "code",
                                             "search-type", "searchParam", "name",
                                             "patient.identifier", "type", "token"));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[s], s:[{s:s, s:{s:b, s:s}, s:o}]}",
                     "resourceType", "CapabilityStatement", "status", "active", "date",
                     "2026-12-01", "kind", "instance", "fhirVersion", "4.0.1", "publisher", "cmc",
                     "software", "name", "cmc-hub", "format", "application/fhir+json", "rest",
                     "mode", "server", "security", "cors", 0, "description",
                     "HTTPS with a bearer token issued by the hub's operator (cmc-hub client add);"
                     " only published plans whose consent stands, inside the client's scope",
                     "resource", res);
}

static int known_type(const char *type)
{
    static const char *const types[] = {"Patient", "CarePlan", "Flag", "Observation", "Consent",
                                        "Condition", "MedicationStatement", "AllergyIntolerance",
                                        "PractitionerRole", "RelatedPerson", "Provenance",
                                        "AuditEvent", NULL};
    for (size_t i = 0; types[i] != NULL; i++)
        if (strcmp(types[i], type) == 0)
            return 1;
    return 0;
}

void hub_fhir_handle(hub *h, const struct hub_fhir_request *req, struct hub_response *resp)
{
    struct call c;
    char type[32], id[FHIR_ID_MAX + 1];
    const char *path = req->target + strlen(HUB_FHIR_PREFIX), *q = strchr(path, '?');
    size_t plen = q != NULL ? (size_t)(q - path) : strlen(path);
    const char *slash = memchr(path, '/', plen);
    size_t tlen = slash != NULL ? (size_t)(slash - path) : plen;
    int rc;

    memset(&c, 0, sizeof c);
    c.h = h;
    c.req = req;
    c.resp = resp;
    memset(resp, 0, sizeof *resp);
    cmc_err_clear();
    if (strcmp(req->method, "GET") != 0) {
        respond_outcome(resp, 405, "not-supported", "this server only reads");
        return;
    }
    if (plen == strlen("metadata") && strncmp(path, "metadata", plen) == 0) {
        respond_json(resp, 200, capability_statement());
        return;
    }
    if ((rc = hub_fhir_auth(h, req->authorization, &c.client)) != CMC_OK) {
        respond_code(resp, rc);
        return;
    }
    if (tlen == 0 || tlen >= sizeof type) {
        respond_outcome(resp, 404, "not-supported", "no such resource type");
        return;
    }
    memcpy(type, path, tlen);
    type[tlen] = '\0';
    if (!known_type(type)) {
        respond_outcome(resp, 404, "not-supported", "no such resource type on this server");
        return;
    }
    if ((rc = audit_allowed(&c, type)) != CMC_OK) {
        respond_code(resp, rc);
        return;
    }
    if (slash == NULL && strcmp(type, "AuditEvent") == 0) {
        audit_search(&c, q != NULL ? q + 1 : "");
        return;
    }
    if (slash == NULL) {
        if (strcmp(type, "Patient") != 0 && strcmp(type, "CarePlan") != 0 && strcmp(type, "Flag") != 0)
            respond_outcome(resp, 400, "not-supported", "search is for Patient, CarePlan and Flag");
        else
            search(&c, type, q != NULL ? q + 1 : "");
        return;
    }
    if (plen - tlen - 1 == 0 || plen - tlen - 1 > FHIR_ID_MAX || q != NULL) {
        respond_outcome(resp, 404, "not-found", "no such resource");
        return;
    }
    memcpy(id, slash + 1, plen - tlen - 1);
    id[plen - tlen - 1] = '\0';
    if (strcmp(type, "AuditEvent") == 0) {
        json_t *ev = NULL;
        if ((rc = hub_fhir_audit_read(h, &c.client, id, &ev)) != CMC_OK)
            respond_code(resp, rc);
        else
            respond_json(resp, 200, ev);
        return;
    }
    read_by_id(&c, type, id);
}
