/* The hub's FHIR face without a socket: client tokens (issued, forged, revoked), the read API
 * as a pure function (what is served, to whom, with which status), the audit of every read,
 * and the round trip over seeded plans (hub_seed_plan) through the FHIR mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/fhir_api.h"
#include "hub/hub.h"
#include "platform/plat_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/hub_fixture.h"
#include "sync/fhir.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1767225600 /* 2026-01-01 */
#define BASE "https://hub.test/fhir/R4"
#define NHS_Q "https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C"

struct env {
    struct tst_hub hub; /* first: tst_hub_teardown() frees the whole env */
    char token[256];
    char published[PLAN_ID_LEN + 1], published_nhs[PLAN_NHS_LEN + 1];
    char draft_nhs[PLAN_NHS_LEN + 1];
};

static int list_cb(const struct hub_plan_info *info, void *ctx)
{
    struct env *e = ctx;
    if (info->published_version > 0 && e->published[0] == '\0') {
        memcpy(e->published, info->plan_id, sizeof e->published);
        memcpy(e->published_nhs, info->nhs_number, sizeof e->published_nhs);
    }
    /* awaiting approval: complete, consent recorded, and still not to be served */
    if (info->published_version == 0 && info->status == PLAN_STATUS_AWAITING_APPROVAL &&
        e->draft_nhs[0] == '\0')
        memcpy(e->draft_nhs, info->nhs_number, sizeof e->draft_nhs);
    return 0;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    struct hub_fhir_client c;
    char *token = NULL;
    assert_non_null(e);
    tst_hub_open(&e->hub, T0);
    assert_int_equal(hub_seed(e->hub.h, 30, 11, NULL, NULL), CMC_OK);
    assert_int_equal(hub_user_add(e->hub.h, "gp1", "gp"), CMC_OK);
    assert_int_equal(hub_plan_list(e->hub.h, 0, list_cb, e), CMC_OK);
    assert_true(e->published[0] != '\0' && e->draft_nhs[0] != '\0');
    assert_int_equal(hub_fhir_client_add(e->hub.h, "epr", "all", &c, &token), CMC_OK);
    snprintf(e->token, sizeof e->token, "Bearer %s", token);
    cmc_free(token);
    *state = e;
    return 0;
}

/* GET target with an Authorization value; returns the status, *out the parsed body. */
static int get(struct env *e, const char *target, const char *auth, json_t **out)
{
    struct hub_fhir_request req = {"GET", target, auth, BASE};
    struct hub_response resp;
    int status;
    hub_fhir_handle(e->hub.h, &req, &resp);
    assert_string_equal(resp.content_type, FHIR_CONTENT_TYPE);
    *out = json_loadb((const char *)resp.body, resp.body_len, 0, NULL);
    assert_non_null(*out);
    status = resp.status;
    hub_response_free(&resp);
    if (status >= 400)
        assert_string_equal(json_string_value(json_object_get(*out, "resourceType")), "OperationOutcome");
    return status;
}

static int audit_count_cb(const struct hub_audit_entry *a, void *ctx)
{
    if (strcmp(a->role, "fhir_client") == 0)
        ++*(int *)ctx;
    return 0;
}

static void test_tokens(void **state)
{
    struct env *e = *state;
    struct hub_fhir_client c, c2;
    char forged[256], *token = NULL;
    json_t *j;

    assert_int_equal(hub_fhir_auth(e->hub.h, e->token, &c), CMC_OK);
    assert_string_equal(c.name, "epr");
    assert_int_equal(hub_fhir_auth(e->hub.h, NULL, &c), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(hub_fhir_auth(e->hub.h, "Bearer nonsense", &c), CMC_ERR_UNAUTHORIZED);
    /* a token for a client id the hub never signed */
    snprintf(forged, sizeof forged, "%s", e->token);
    forged[strlen("Bearer cmcfhir.")] = forged[strlen("Bearer cmcfhir.")] == 'a' ? 'b' : 'a';
    assert_int_equal(hub_fhir_auth(e->hub.h, forged, &c), CMC_ERR_UNAUTHORIZED);
    /* a flipped signature digit */
    snprintf(forged, sizeof forged, "%s", e->token);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
    assert_int_equal(hub_fhir_auth(e->hub.h, forged, &c), CMC_ERR_UNAUTHORIZED);
    /* names are unique; scope must parse */
    assert_int_equal(hub_fhir_client_add(e->hub.h, "epr", "all", &c2, &token), CMC_ERR_EXISTS);
    assert_non_null(strstr(cmc_errmsg(), "a client named epr is already registered"));
    assert_null(token);
    assert_int_equal(hub_fhir_client_add(e->hub.h, "x", "planet:mars", &c2, &token), CMC_ERR_USAGE);
    /* revoked: refused from then on */
    assert_int_equal(hub_fhir_client_revoke(e->hub.h, "epr"), CMC_OK);
    assert_int_equal(get(e, "/fhir/R4/CarePlan/" "00000000-0000-4000-8000-000000000000", e->token, &j), 401);
    json_decref(j);
    assert_int_equal(hub_fhir_client_revoke(e->hub.h, "epr"), CMC_ERR_NOT_FOUND);
}

static void test_served_and_audited(void **state)
{
    struct env *e = *state;
    char target[512];
    json_t *j;
    int reads = 0;

    assert_int_equal(get(e, "/fhir/R4/metadata", NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "fhirVersion")), "4.0.1");
    json_decref(j);

    snprintf(target, sizeof target, "/fhir/R4/CarePlan?patient.identifier=%s%s&_include=CarePlan:subject",
             NHS_Q, e->published_nhs);
    assert_int_equal(get(e, target, e->token, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "entry")), 2);
    json_decref(j);

    /* a newer draft of a published plan: the published version is what is served */
    {
        int64_t v = 0;
        static const char change[] = "{\"set\": {\"prognosis\": \"days\"}}";
        assert_int_equal(hub_plan_edit(e->hub.h, "gp1", e->published, change, strlen(change), &v), CMC_OK);
    }
    snprintf(target, sizeof target, "/fhir/R4/CarePlan/%s", e->published);
    assert_int_equal(get(e, target, e->token, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "meta"), "versionId")), "1");
    json_decref(j);
    snprintf(target, sizeof target, "/fhir/R4/Observation/%s-cpr", e->published);
    assert_int_equal(get(e, target, e->token, &j), 200);
    json_decref(j);
    snprintf(target, sizeof target, "/fhir/R4/Observation/%s-nope", e->published);
    assert_int_equal(get(e, target, e->token, &j), 404);
    json_decref(j);

    /* never a draft */
    snprintf(target, sizeof target, "/fhir/R4/Patient?identifier=%s%s", NHS_Q, e->draft_nhs);
    assert_int_equal(get(e, target, e->token, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 0);
    json_decref(j);

    assert_int_equal(hub_fhir_audit_list(e->hub.h, e->published, audit_count_cb, &reads), CMC_OK);
    assert_int_equal(reads, 3); /* the search and two reads; the 404 served nothing */
    reads = 0;
    assert_int_equal(hub_fhir_audit_list(e->hub.h, e->draft_nhs, audit_count_cb, &reads), CMC_OK);
    assert_int_equal(reads, 1); /* the look-up that found nothing */

    /* consent withdrawn: nothing more */
    assert_int_equal(hub_plan_withdraw_consent(e->hub.h, "gp1", e->published), CMC_OK);
    snprintf(target, sizeof target, "/fhir/R4/CarePlan/%s", e->published);
    assert_int_equal(get(e, target, e->token, &j), 404);
    json_decref(j);
}

/* AuditEvent: the hub's record of every read, as FHIR, for an audit client only. */
static void test_audit_events(void **state)
{
    struct env *e = *state;
    struct hub_fhir_client c;
    char target[512], auditor[256], *token = NULL, id[FHIR_ID_MAX + 1];
    json_t *j, *ev;
    int before = 0, after = 0;

    assert_int_equal(hub_fhir_client_add(e->hub.h, "privacy", HUB_FHIR_SCOPE_AUDIT, &c, &token), CMC_OK);
    snprintf(auditor, sizeof auditor, "Bearer %s", token);
    cmc_free(token);
    snprintf(target, sizeof target, "/fhir/R4/CarePlan?patient.identifier=%s%s", NHS_Q, e->published_nhs);
    assert_int_equal(get(e, target, e->token, &j), 200);
    json_decref(j);
    snprintf(target, sizeof target, "/fhir/R4/Patient/%s-pat", e->published);
    assert_int_equal(get(e, target, e->token, &j), 200);
    json_decref(j);

    /* each client reads its own kind only */
    assert_int_equal(get(e, target, auditor, &j), 403);
    json_decref(j);
    snprintf(target, sizeof target, "/fhir/R4/AuditEvent?patient.identifier=%s%s", NHS_Q, e->published_nhs);
    assert_int_equal(get(e, target, e->token, &j), 403);
    json_decref(j);

    assert_int_equal(hub_fhir_audit_list(e->hub.h, e->published, audit_count_cb, &before), CMC_OK);
    assert_int_equal(get(e, target, auditor, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 2);
    ev = json_object_get(json_array_get(json_object_get(j, "entry"), 0), "resource");
    assert_string_equal(json_string_value(json_object_get(ev, "resourceType")), "AuditEvent");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "type"), "code")), "rest");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(ev, "subtype"), 0), "code")),
                        "search-type");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
                            json_object_get(ev, "agent"), 0), "who"), "display")), "epr");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_array_get(
                            json_object_get(ev, "entity"), 0), "what"), "identifier"), "value")),
                        e->published_nhs);
    ev = json_object_get(json_array_get(json_object_get(j, "entry"), 1), "resource");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(ev, "subtype"), 0), "code")),
                        "read");
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(ev, "id")));
    json_decref(j);
    /* reading the audit is recorded too */
    assert_int_equal(hub_fhir_audit_list(e->hub.h, e->published, audit_count_cb, &after), CMC_OK);
    assert_int_equal(after, before + 1);

    snprintf(target, sizeof target, "/fhir/R4/AuditEvent/%s", id);
    assert_int_equal(get(e, target, auditor, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    assert_int_equal(get(e, "/fhir/R4/AuditEvent/hub-99999", auditor, &j), 404);
    json_decref(j);
    assert_int_equal(get(e, "/fhir/R4/AuditEvent/dev-x", auditor, &j), 404);
    json_decref(j);
    assert_int_equal(get(e, "/fhir/R4/AuditEvent", auditor, &j), 400);
    json_decref(j);
    assert_int_equal(hub_fhir_client_add(e->hub.h, "y", "audits", &c, &token), CMC_ERR_USAGE);
}

static void test_errors(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *target;
        int status;
    } cases[] = {
        {"/fhir/R4/Patient", 400},
        {"/fhir/R4/Patient?identifier=" NHS_Q "9434765910", 400},
        {"/fhir/R4/Patient?identifier=urn%3Ax%7C9434765919", 400},
        {"/fhir/R4/CarePlan?family=Okafor", 400},
        {"/fhir/R4/CarePlan?_include=CarePlan%3Aauthor", 400},
        {"/fhir/R4/CarePlan?_count=0", 400},
        {"/fhir/R4/CarePlan?patient.identifier=%zz", 400},
        {"/fhir/R4/Observation?code=x", 400},
        {"/fhir/R4/Encounter/1", 404},
        {"/fhir/R4/", 404},
        {"/fhir/R4/CarePlan/not-a-plan", 404},
    };
    json_t *j;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = get(e, cases[i].target, e->token, &j);
        if (got != cases[i].status)
            fail_msg("%s: %d, expected %d", cases[i].target, got, cases[i].status);
        json_decref(j);
    }
    {
        struct hub_fhir_request req = {"DELETE", "/fhir/R4/CarePlan/x", e->token, BASE};
        struct hub_response resp;
        hub_fhir_handle(e->hub.h, &req, &resp);
        assert_int_equal(resp.status, 405);
        hub_response_free(&resp);
    }
}

static void test_paging(void **state)
{
    struct env *e = *state;
    json_t *j;
    size_t total = 0, pages = 0;
    char target[1024];
    snprintf(target, sizeof target, "/fhir/R4/CarePlan?status=active&_count=4");
    for (;;) {
        json_t *link, *next = NULL;
        size_t i;
        assert_int_equal(get(e, target, e->token, &j), 200);
        total += json_array_size(json_object_get(j, "entry"));
        pages++;
        json_array_foreach(json_object_get(j, "link"), i, link)
            if (strcmp(json_string_value(json_object_get(link, "relation")), "next") == 0)
                next = json_object_get(link, "url");
        if (next == NULL) {
            json_decref(j);
            break;
        }
        assert_true(strncmp(json_string_value(next), BASE, strlen(BASE)) == 0);
        snprintf(target, sizeof target, "/fhir/R4%s", json_string_value(next) + strlen(BASE));
        json_decref(j);
        assert_true(pages < 50);
    }
    assert_true(pages >= 2);
    assert_true(total >= 5);
}

/* Seeded plans (the hub's generator) survive plan -> FHIR -> plan exactly. */
static void test_round_trip_seeded(void **state)
{
    (void)state;
    for (long i = 0; i < 200; i++) {
        struct plan a, b;
        int status, extra;
        char *text = NULL;
        size_t len = 0;
        const char *where = NULL;
        assert_int_equal(hub_seed_plan(42, i, &a, &status, &extra), CMC_OK);
        a.status = status;
        assert_int_equal(fhir_plan_to_bundle(&a, 0, &text, &len), CMC_OK);
        if (fhir_bundle_to_plan(text, len, &b, &where) != CMC_OK)
            fail_msg("seeded plan %ld: %s at %s", i, cmc_errmsg(), where);
        assert_true(plan_equal(&a, &b));
        cmc_free(text);
        plan_free(&a);
        plan_free(&b);
    }
}

TST_HUB_MAIN_WITH(setup, test_tokens, test_served_and_audited, test_audit_events, test_errors,
                  test_paging, test_round_trip_seeded)
