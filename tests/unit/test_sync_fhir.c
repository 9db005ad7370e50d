/* FHIR mapping: plan -> Bundle -> plan is exact over generated plans (a property test
 * walking the field table), the elements receiving systems rely on (NHS number system, CPR
 * codes, statuses), refusal of bad bundles naming the path, out-of-memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/fhir.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a plan generator walking the field table ------------------------------------------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return n == 0 ? 0 : (uint32_t)((rng_state >> 33) % n);
}

static const char *const words[] = {
    "Comfort first", "Call the palliative line", "Café au lait", "Ünïcode ✓ text",
    "Lives with daughter; stairs to front door", "Key safe 4711", "Zoë O'Neill-Smith", "x",
};

static size_t name_count(const char *const *names)
{
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    return n;
}

static void gen_nhs(char out[PLAN_NHS_LEN + 1])
{
    for (;;) {
        int sum = 0, check;
        for (int i = 0; i < 9; i++) {
            out[i] = (char)('0' + rnd(10));
            sum += (out[i] - '0') * (10 - i);
        }
        check = 11 - sum % 11;
        if (check == 10)
            continue;
        out[9] = (char)('0' + (check == 11 ? 0 : check));
        out[10] = '\0';
        return;
    }
}

static void gen_value(const struct plan_field *f, void *base, int required, const char *item_id)
{
    char *at = (char *)base + f->offset;
    char buf[64];
    if (!required && f->type != PLAN_F_LIST && rnd(4) == 0)
        return; /* absent */
    switch (f->type) {
    case PLAN_F_STRING:
        *(char **)at = cmc_strdup(item_id != NULL && strcmp(f->path, "id") == 0
                                      ? item_id
                                      : words[rnd(sizeof words / sizeof words[0])]);
        if (f->max_len > 0 && strlen(*(char **)at) > f->max_len)
            (*(char **)at)[f->max_len] = '\0'; /* short coded fields (SNOMED, dm+d ids) */
        break;
    case PLAN_F_DATE:
        snprintf(buf, sizeof buf, "19%02u-%02u-%02u", 20 + rnd(80), 1 + rnd(12), 1 + rnd(28));
        *(char **)at = cmc_strdup(buf);
        break;
    case PLAN_F_DATETIME:
        snprintf(buf, sizeof buf, "2026-%02u-%02uT%02u:%02u:%02uZ", 1 + rnd(12), 1 + rnd(28),
                 rnd(24), rnd(60), rnd(60));
        *(char **)at = cmc_strdup(buf);
        break;
    case PLAN_F_UUID:
        plan_uuid_new(buf);
        *(char **)at = cmc_strdup(buf);
        break;
    case PLAN_F_NHS:
        gen_nhs(buf);
        *(char **)at = cmc_strdup(buf);
        break;
    case PLAN_F_BOOL:
        *(int *)at = (int)rnd(2);
        break;
    case PLAN_F_ENUM:
        *(int *)at = 1 + (int)rnd((uint32_t)name_count(f->enum_names));
        break;
    case PLAN_F_PLACES: {
        struct plan_places *pl = (struct plan_places *)at;
        size_t n = name_count(f->enum_names);
        pl->n = 0;
        for (size_t want = rnd(PLAN_MAX_PLACES + 1), k = 0; pl->n < want && k < 20; k++) {
            int v = 1 + (int)rnd((uint32_t)n), dup = 0;
            for (size_t j = 0; j < pl->n; j++)
                dup |= pl->v[j] == v;
            if (!dup)
                pl->v[pl->n++] = v;
        }
        break;
    }
    case PLAN_F_INT:
        *(int64_t *)at = 1 + rnd(1000);
        break;
    case PLAN_F_LIST: {
        const struct plan_list_desc *l = f->list;
        size_t n = rnd(4);
        char *items = n > 0 ? cmc_calloc(n, l->item_size) : NULL;
        for (size_t i = 0; i < n; i++) {
            char id[16];
            snprintf(id, sizeof id, "%c%zu", f->path[0], i + 1);
            plan_item_init(l, items + i * l->item_size);
            for (size_t k = 0; k < l->n_fields; k++)
                gen_value(&l->fields[k], items + i * l->item_size, k == 0, id);
        }
        *(void **)at = items;
        *(size_t *)((char *)base + l->count_offset) = n;
        break;
    }
    }
}

static void gen_plan(struct plan *p)
{
    plan_init(p);
    for (size_t i = 0; i < plan_n_fields; i++)
        gen_value(&plan_fields[i], p, (plan_fields[i].flags & PLAN_FF_DRAFT) != 0, NULL);
    /* Rules across fields: one primary diagnosis; approval is who and when together. */
    for (size_t i = 1; i < p->n_diagnoses; i++)
        if (p->diagnoses[i].primary == 1)
            p->diagnoses[i].primary = 0;
    if ((p->approved_by == NULL) != (p->approved_at == NULL)) {
        cmc_free(p->approved_by);
        cmc_free(p->approved_at);
        p->approved_by = p->approved_at = NULL;
    }
}

static void load_example(struct plan *p)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = plat_read_file("../shared/examples/plan.json", 1 << 20, &buf, &len);
    if (rc == CMC_ERR_NOT_FOUND)
        skip();
    assert_int_equal(rc, CMC_OK);
    assert_int_equal(plan_from_json((const char *)buf, len, p), CMC_OK);
    cmc_free(buf);
}

static json_t *export_json(const struct plan *p)
{
    char *text = NULL;
    size_t len = 0;
    json_t *j;
    assert_int_equal(fhir_plan_to_bundle(p, 0, &text, &len), CMC_OK);
    j = json_loadb(text, len, 0, NULL);
    assert_non_null(j);
    cmc_free(text);
    return j;
}

/* The resource of `type` in a bundle (the n-th of its kind). */
static json_t *resource(json_t *bundle, const char *type, size_t n)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e) {
        json_t *r = json_object_get(e, "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 && n-- == 0)
            return r;
    }
    return NULL;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_round_trip_generated_plans(void **state)
{
    (void)state;
    rng_state = 20260211;
    for (int iter = 0; iter < 400; iter++) {
        struct plan a, b;
        char *text = NULL;
        size_t len = 0;
        const char *where = NULL;
        gen_plan(&a);
        if (plan_validate(&a, PLAN_CHECK_DRAFT) != CMC_OK)
            fail_msg("generated plan %d invalid: %s", iter, cmc_errmsg());
        assert_int_equal(fhir_plan_to_bundle(&a, iter % 2, &text, &len), CMC_OK);
        if (fhir_bundle_to_plan(text, len, &b, &where) != CMC_OK)
            fail_msg("plan %d: %s (at %s)", iter, cmc_errmsg(), where);
        if (!plan_equal(&a, &b)) {
            char *ja = NULL, *jb = NULL;
            size_t la, lb;
            plan_to_json(&a, 1, &ja, &la);
            plan_to_json(&b, 1, &jb, &lb);
            fail_msg("plan %d differs after the round trip:\n%s\n---\n%s", iter, ja, jb);
        }
        cmc_free(text);
        plan_free(&a);
        plan_free(&b);
    }
}

static void test_example_mapping(void **state)
{
    (void)state;
    struct plan p;
    json_t *b, *pat, *cp, *obs, *id;
    load_example(&p);
    b = export_json(&p);
    assert_string_equal(json_string_value(json_object_get(b, "resourceType")), "Bundle");
    assert_string_equal(json_string_value(json_object_get(b, "type")), "collection");
    pat = resource(b, "Patient", 0);
    assert_non_null(pat);
    id = json_array_get(json_object_get(pat, "identifier"), 0);
    assert_string_equal(json_string_value(json_object_get(id, "system")), FHIR_NHS_SYSTEM);
    assert_string_equal(json_string_value(json_object_get(id, "value")), "9434765919");
    assert_string_equal(json_string_value(json_object_get(pat, "birthDate")), "1938-04-17");
    cp = resource(b, "CarePlan", 0);
    assert_string_equal(json_string_value(json_object_get(cp, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(cp, "intent")), "plan");
    assert_string_equal(json_string_value(json_object_get(cp, "id")), p.plan_id);
    obs = resource(b, "Observation", 0);
    assert_non_null(obs);
    {
        char *cpr = json_dumps(json_object_get(obs, "valueCodeableConcept"), 0);
        assert_non_null(strstr(cpr, "450476008"));
        cmc_free(cpr);
    }
    assert_non_null(resource(b, "Flag", 0));            /* published: "has an urgent care plan" */
    assert_non_null(resource(b, "Provenance", 0));      /* approved: who and when */
    assert_non_null(resource(b, "Consent", 0));
    assert_non_null(resource(b, "Condition", 1));
    assert_non_null(resource(b, "MedicationStatement", 1));
    assert_non_null(resource(b, "AllergyIntolerance", 0));
    assert_non_null(resource(b, "PractitionerRole", 1)); /* gp, palliative team */
    assert_non_null(resource(b, "RelatedPerson", 0));    /* the LPA */
    assert_null(resource(b, "RelatedPerson", 1));
    json_decref(b);

    /* A draft is a draft CarePlan and raises no flag. */
    p.status = PLAN_STATUS_AWAITING_APPROVAL;
    b = export_json(&p);
    assert_string_equal(json_string_value(json_object_get(resource(b, "CarePlan", 0), "status")), "draft");
    assert_null(resource(b, "Flag", 0));
    json_decref(b);
    plan_free(&p);
}

static void test_same_plan_same_bytes(void **state)
{
    (void)state;
    struct plan p;
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    load_example(&p);
    assert_int_equal(fhir_plan_to_bundle(&p, 0, &a, &la), CMC_OK);
    assert_int_equal(fhir_plan_to_bundle(&p, 0, &b, &lb), CMC_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    cmc_free(a);
    cmc_free(b);
    plan_free(&p);
}

/* Edits the example's bundle with `edit`, then expects refusal naming `want_path`. */
static void expect_refused(void (*edit)(json_t *), const char *want_path)
{
    struct plan p, q;
    json_t *b;
    char *text;
    const char *where = NULL;
    int rc;
    load_example(&p);
    b = export_json(&p);
    edit(b);
    text = json_dumps(b, 0);
    rc = fhir_bundle_to_plan(text, strlen(text), &q, &where);
    if (rc != CMC_ERR_INVALID)
        fail_msg("accepted (rc %d), expected refusal at %s", rc, want_path);
    assert_non_null(where);
    if (strcmp(where, want_path) != 0)
        fail_msg("refused at %s (%s), expected %s", where, cmc_errmsg(), want_path);
    assert_null(q.plan_id); /* nothing half-read */
    free(text);
    json_decref(b);
    plan_free(&p);
}

static json_t *entry_res(json_t *b, size_t i)
{
    return json_object_get(json_array_get(json_object_get(b, "entry"), i), "resource");
}

static void edit_nhs_system(json_t *b)
{
    json_object_set_new(json_array_get(json_object_get(entry_res(b, 0), "identifier"), 0),
                        "system", json_string("https://example.org/mrn"));
}
static void edit_nhs_check_digit(json_t *b)
{
    json_object_set_new(json_array_get(json_object_get(entry_res(b, 0), "identifier"), 0),
                        "value", json_string("9434765910"));
}
static void edit_no_birth_date(json_t *b)
{
    json_object_del(entry_res(b, 0), "birthDate");
}
static void edit_no_careplan(json_t *b)
{
    json_array_remove(json_object_get(b, "entry"), 1);
}
static void edit_not_bundle(json_t *b)
{
    json_object_set_new(b, "resourceType", json_string("Patient"));
}
static void edit_bad_item_id(json_t *b)
{
    json_t *cond = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *r = json_object_get(e, "resource");
        if (cond == NULL && strcmp(json_string_value(json_object_get(r, "resourceType")), "Condition") == 0)
            cond = r;
    }
    json_object_set_new(json_array_get(json_object_get(cond, "identifier"), 0), "value",
                        json_string("has spaces"));
}

static void test_bad_bundles_refused_with_path(void **state)
{
    (void)state;
    expect_refused(edit_nhs_system, "Bundle.entry[0].resource.identifier");
    expect_refused(edit_nhs_check_digit, "Bundle.entry[0].resource.identifier[0].value");
    expect_refused(edit_no_birth_date, "Bundle.entry[0].resource.birthDate");
    expect_refused(edit_no_careplan, "Bundle.entry");
    expect_refused(edit_not_bundle, "Bundle.resourceType");
    /* Patient, CarePlan, CPR Observation, sharing Consent, ADRT Consent, then the Conditions */
    expect_refused(edit_bad_item_id, "Bundle.entry[5].resource.identifier");
}

/* The example plan with second-edition content merged in (a JSON object in text). */
static void load_example_with(struct plan *p, const char *patch)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    json_t *base, *add;
    char *text;
    int rc = plat_read_file("../shared/examples/plan.json", 1 << 20, &buf, &len);
    if (rc == CMC_ERR_NOT_FOUND)
        skip();
    assert_int_equal(rc, CMC_OK);
    base = json_loadb((const char *)buf, len, 0, NULL);
    add = json_loads(patch, 0, NULL);
    assert_non_null(base);
    assert_non_null(add);
    assert_int_equal(json_object_update_recursive(base, add), 0);
    text = json_dumps(base, 0);
    if (plan_from_json(text, strlen(text), p) != CMC_OK)
        fail_msg("patched example invalid: %s", cmc_errmsg());
    free(text);
    json_decref(add);
    json_decref(base);
    cmc_free(buf);
}

/* The first coding of `system` in a CodeableConcept, or NULL. */
static json_t *coding_of(json_t *cc, const char *system)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cc, "coding"), i, c)
        if (strcmp(json_string_value(json_object_get(c, "system")), system) == 0)
            return c;
    return NULL;
}

static const char *code_of(json_t *cc, const char *system)
{
    return json_string_value(json_object_get(coding_of(cc, system), "code"));
}

/* The CarePlan activity coded with plan field `path`. */
static json_t *activity(json_t *bundle, const char *path)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(resource(bundle, "CarePlan", 0), "activity"), i, a) {
        const char *c = code_of(json_object_get(json_object_get(a, "detail"), "code"), "urn:cmc:fhir:plan-field");
        if (c != NULL && strcmp(c, path) == 0)
            return json_object_get(a, "detail");
    }
    return NULL;
}

static const char second_edition[] =
    "{\"patient\": {\"language\": \"polish\", \"interpreter_needed\": true},"
    " \"recommendations\": {\"cpr\": \"not_recommended\", \"cpr_note\": \"Would not succeed\","
    "   \"intubation\": \"recommended\", \"nutrition_hydration\": \"discuss\","
    "   \"recommended_by\": \"Dr Amira Shah\"},"
    " \"adrt\": {\"refuses\": \"Mechanical ventilation\", \"circumstances\": \"If unconscious\","
    "   \"life_sustaining\": true, \"signed_witnessed\": true},"
    " \"diagnoses\": [{\"id\": \"d1\", \"text\": \"Metastatic breast cancer\", \"primary\": true,"
    "   \"snomed\": \"254837009\"}, {\"id\": \"d2\", \"text\": \"Type 2 diabetes\", \"snomed\": \"44054007\"}],"
    " \"medications\": [{\"id\": \"m1\", \"name\": \"Morphine sulfate oral solution\", \"dmd\": \"36128211000001109\"},"
    "   {\"id\": \"m2\", \"name\": \"Midazolam injection\", \"anticipatory\": true}],"
    " \"allergies\": [{\"id\": \"a1\", \"substance\": \"Penicillin\", \"snomed\": \"91936005\"}],"
    " \"contacts\": [{\"id\": \"c3\", \"role\": \"lpa\", \"name\": \"Chidi Okafor\", \"relationship\": \"son\"},"
    "   {\"id\": \"c4\", \"role\": \"main_carer\", \"name\": \"Ada Bello\", \"relationship\": \"friend\"}]}";

/* Second-edition content reaches the elements and codes UK systems read, and comes back. */
static void test_second_edition_mapping(void **state)
{
    (void)state;
    struct plan p, q;
    json_t *b, *d, *adrt, *pat, *c;
    char *text = NULL;
    size_t len = 0;
    load_example_with(&p, second_edition);
    b = export_json(&p);

    /* ReSPECT: activities with the procedure's SNOMED CT code; "not recommended" is doNotPerform */
    d = activity(b, "recommendations.cpr");
    assert_non_null(d);
    assert_true(json_is_true(json_object_get(d, "doNotPerform")));
    assert_string_equal(code_of(json_object_get(d, "code"), FHIR_SNOMED), "89666000");
    assert_non_null(strstr(json_string_value(json_object_get(d, "description")), "Would not succeed"));
    d = activity(b, "recommendations.intubation");
    assert_true(json_is_false(json_object_get(d, "doNotPerform")));
    assert_string_equal(code_of(json_object_get(d, "code"), FHIR_SNOMED), "112798008");
    d = activity(b, "recommendations.nutrition_hydration"); /* no single concept: text only */
    assert_null(code_of(json_object_get(d, "code"), FHIR_SNOMED));
    assert_non_null(json_string_value(json_object_get(json_object_get(d, "code"), "text")));
    assert_null(activity(b, "recommendations.cpr_note")); /* the note is on its recommendation */

    /* ADRT: a Consent of scope adr denying the refused treatment */
    adrt = resource(b, "Consent", 1);
    assert_non_null(adrt);
    assert_string_equal(code_of(json_object_get(adrt, "scope"), "http://terminology.hl7.org/CodeSystem/consentscope"), "adr");
    assert_string_equal(json_string_value(json_object_get(adrt, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(json_object_get(adrt, "provision"), "type")), "deny");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
                            json_object_get(adrt, "provision"), "code"), 0), "text")),
                        "Mechanical ventilation");

    /* SNOMED CT and dm+d codes beside the text */
    c = json_object_get(resource(b, "Condition", 0), "code");
    assert_string_equal(code_of(c, FHIR_SNOMED), "254837009");
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Metastatic breast cancer");
    /* a code whose check digit is wrong is not sent as a coding; the text is */
    c = json_object_get(resource(b, "Condition", 1), "code");
    assert_null(json_object_get(c, "coding"));
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Type 2 diabetes");
    c = json_object_get(resource(b, "MedicationStatement", 0), "medicationCodeableConcept");
    assert_string_equal(code_of(c, "https://dmd.nhs.uk"), "36128211000001109");
    assert_null(json_object_get(json_object_get(resource(b, "MedicationStatement", 1), "medicationCodeableConcept"), "coding"));
    assert_string_equal(code_of(json_object_get(resource(b, "AllergyIntolerance", 0), "code"), FHIR_SNOMED), "91936005");

    /* RelatedPerson: role and relationship coded (v3 RoleCode, UK Core) */
    c = json_object_get(resource(b, "RelatedPerson", 0), "relationship");
    assert_string_equal(code_of(json_array_get(c, 0), "http://terminology.hl7.org/CodeSystem/v3-RoleCode"), "HPOWATT");
    assert_string_equal(code_of(json_array_get(c, 1), "http://terminology.hl7.org/CodeSystem/v3-RoleCode"), "SONC");
    c = json_object_get(resource(b, "RelatedPerson", 1), "relationship");
    assert_string_equal(code_of(json_array_get(c, 0), "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdditionalPersonRelationshipRole"), "Carer");
    assert_string_equal(code_of(json_array_get(c, 1), "http://terminology.hl7.org/CodeSystem/v3-RoleCode"), "FRND");

    /* Patient: the language coded (UK Core HumanLanguage) with the plan's text; interpreter */
    pat = resource(b, "Patient", 0);
    c = json_object_get(json_array_get(json_object_get(pat, "communication"), 0), "language");
    assert_string_equal(code_of(c, "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage"), "pl");
    assert_string_equal(json_string_value(json_object_get(c, "text")), "polish");
    text = json_dumps(json_object_get(pat, "extension"), 0);
    assert_non_null(strstr(text, "patient-interpreterRequired\", \"valueBoolean\": true"));
    free(text);
    json_decref(b);

    /* and back, exactly */
    assert_int_equal(fhir_plan_to_bundle(&p, 0, &text, &len), CMC_OK);
    assert_int_equal(fhir_bundle_to_plan(text, len, &q, NULL), CMC_OK);
    assert_true(plan_equal(&p, &q));
    cmc_free(text);
    plan_free(&q);
    plan_free(&p);
}

/* Another system's bundle without the product's extensions: an ADRT Consent and a
 * recommendation's doNotPerform still reach the plan. */
static void strip_own_extensions(json_t *node)
{
    size_t i;
    const char *k;
    json_t *v, *exts = json_object_get(node, "extension");
    if (json_is_array(exts))
        for (i = json_array_size(exts); i-- > 0;) {
            const char *url = json_string_value(json_object_get(json_array_get(exts, i), "url"));
            if (url != NULL && strncmp(url, "urn:cmc:fhir:ext:recommendations", 32) == 0)
                json_array_remove(exts, i);
            else if (url != NULL && strncmp(url, "urn:cmc:fhir:ext:adrt", 21) == 0)
                json_array_remove(exts, i);
        }
    if (json_is_array(node))
        json_array_foreach(node, i, v) strip_own_extensions(v);
    else if (json_is_object(node))
        json_object_foreach(node, k, v) strip_own_extensions(v);
}

static void test_foreign_adrt_and_recommendation(void **state)
{
    (void)state;
    struct plan p, q;
    json_t *b;
    char *text;
    load_example_with(&p, second_edition);
    b = export_json(&p);
    strip_own_extensions(b);
    text = json_dumps(b, 0);
    if (fhir_bundle_to_plan(text, strlen(text), &q, NULL) != CMC_OK)
        fail_msg("refused: %s", cmc_errmsg());
    assert_int_equal(q.recommendations.cpr.value, PLAN_REC_NOT_RECOMMENDED);
    assert_string_equal(q.adrt.refuses, "Mechanical ventilation");
    assert_int_equal(q.adrt.exists, 1);
    free(text);
    json_decref(b);
    plan_free(&q);
    plan_free(&p);
}

static void test_outcome_names_path(void **state)
{
    (void)state;
    json_t *o = fhir_outcome("invalid", "no NHS number", "Bundle.entry[0].resource.identifier");
    json_t *issue = json_array_get(json_object_get(o, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(o, "resourceType")), "OperationOutcome");
    assert_string_equal(json_string_value(json_object_get(issue, "severity")), "error");
    assert_string_equal(json_string_value(json_array_get(json_object_get(issue, "expression"), 0)),
                        "Bundle.entry[0].resource.identifier");
    json_decref(o);
    o = fhir_outcome("not-found", "no such resource", NULL);
    assert_null(json_object_get(json_array_get(json_object_get(o, "issue"), 0), "expression"));
    json_decref(o);
}

static void test_resource_ids(void **state)
{
    (void)state;
    char id[FHIR_ID_MAX + 1], plan_id[PLAN_ID_LEN + 1];
    const char *pid = "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11";
    assert_int_equal(fhir_resource_id(pid, "dx", "a-very-long-item-id-that-is-still-valid", id), CMC_OK);
    assert_true(strlen(id) <= FHIR_ID_MAX);
    assert_true(fhir_resource_plan(id, plan_id));
    assert_string_equal(plan_id, pid);
    assert_int_equal(fhir_resource_id(pid, NULL, NULL, id), CMC_OK);
    assert_string_equal(id, pid);
    assert_false(fhir_resource_plan("not-a-plan", plan_id));
    assert_false(fhir_resource_plan("7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11x", plan_id));
}

/* Every allocation failure while exporting the plan or importing its bundle is reported as
 * such and leaves nothing half made; once allocation succeeds, both give what they give
 * unhindered. Frees the plan. */
static void check_out_of_memory(struct plan *p)
{
    struct plan q;
    char *text = NULL, *good = NULL;
    size_t len = 0, glen = 0;
    int rc;
    assert_int_equal(fhir_plan_to_bundle(p, 0, &good, &glen), CMC_OK);
    for (long n = 0;; n++) {
        cmc_alloc_fail_after(n, 1);
        rc = fhir_plan_to_bundle(p, 0, &text, &len);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(text);
    }
    assert_int_equal(len, glen);
    assert_memory_equal(text, good, len);
    cmc_free(text);
    for (long n = 0;; n++) {
        cmc_alloc_fail_after(n, 1);
        rc = fhir_bundle_to_plan(good, glen, &q, NULL);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(q.plan_id);
    }
    assert_true(plan_equal(p, &q));
    plan_free(&q);
    cmc_free(good);
    plan_free(p);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    struct plan p;
    load_example(&p);
    check_out_of_memory(&p);
}

/* The same for a plan using the second edition's mapping (recommendations, ADRT, codes). */
static void test_out_of_memory_second_edition(void **state)
{
    (void)state;
    struct plan p;
    load_example_with(&p, second_edition);
    check_out_of_memory(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_generated_plans),
        cmocka_unit_test(test_example_mapping),
        cmocka_unit_test(test_same_plan_same_bytes),
        cmocka_unit_test(test_second_edition_mapping),
        cmocka_unit_test(test_foreign_adrt_and_recommendation),
        cmocka_unit_test(test_bad_bundles_refused_with_path),
        cmocka_unit_test(test_outcome_names_path),
        cmocka_unit_test(test_resource_ids),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_out_of_memory_second_edition),
    };
    plan_json_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
