/* Plan model: examples/plan.json round trips (JSON and msgpack), the golden encoding,
 * validation details, NHS numbers, hostile msgpack, out-of-memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"
#include "sync/merge.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/example_plan.h"
#include "tests/support/example_plan_model.h"

/* shared/examples/plan.json, read once before the tests run (tests/support/example_plan.h). */
static char *example_json;

static int load_example_file(void **state)
{
    (void)state;
    return tst_example_plan(&example_json, NULL);
}

static int free_example_file(void **state)
{
    (void)state;
    free(example_json);
    return 0;
}

static void load_example(struct plan *p)
{
    int rc = plan_from_json(example_json, strlen(example_json), p);
    if (rc != CMC_OK)
        fail_msg("example: %s", cmc_errmsg());
}

/* The example plan in *p, and packed (cmc_free the bytes). */
static uint8_t *pack_example(struct plan *p, size_t *len)
{
    uint8_t *b = NULL;
    load_example(p);
    assert_int_equal(plan_pack(p, &b, len), CMC_OK);
    return b;
}

static void test_example_parses_and_is_complete(void **state)
{
    (void)state;
    struct plan p;
    load_example(&p);
    assert_int_equal(plan_validate(&p, PLAN_CHECK_COMPLETE), CMC_OK);
    assert_string_equal(p.plan_id, "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11");
    assert_string_equal(p.nhs_number, "9434765919");
    assert_string_equal(p.patient.date_of_birth, "1938-04-17");
    assert_int_equal(p.patient.gender, PLAN_GENDER_FEMALE);
    assert_int_equal(p.patient.interpreter_needed, 0);
    assert_null(p.care_home);
    assert_int_equal(p.consent.basis, PLAN_CONSENT_PATIENT);
    assert_int_equal(p.resuscitation.decision, PLAN_CPR_DNACPR);
    assert_int_equal(p.resuscitation.patient_aware, 1);
    assert_int_equal(p.adrt.exists, 1);
    assert_int_equal(p.preferred_place_of_death.n, 2);
    assert_int_equal(p.preferred_place_of_death.v[0], PLAN_PLACE_HOME);
    assert_int_equal(p.preferred_place_of_death.v[1], PLAN_PLACE_HOSPICE);
    assert_int_equal(p.n_diagnoses, 2);
    assert_int_equal(p.diagnoses[0].primary, 1);
    assert_int_equal(p.n_medications, 2);
    assert_string_equal(p.medications[1].id, "m2");
    assert_int_equal(p.medications[1].anticipatory, 1);
    assert_int_equal(p.n_allergies, 1);
    assert_int_equal(p.allergies[0].severity, PLAN_SEVERITY_SEVERE);
    assert_int_equal(p.n_contacts, 3);
    assert_int_equal(p.contacts[1].role, PLAN_CONTACT_PALLIATIVE_TEAM);
    assert_int_equal(p.n_anticipated_problems, 2);
    assert_int_equal(p.status, PLAN_STATUS_PUBLISHED);
    assert_int_equal(p.version, 4);
    assert_string_equal(p.updated_at, "2026-02-11T15:02:00Z");
    plan_free(&p);
}

/* plan_to_json writes exactly the example back: same keys, same values, same order. */
static void test_json_round_trip_is_exact(void **state)
{
    (void)state;
    struct plan p, q;
    char *out = NULL;
    size_t len = 0;
    load_example(&p);
    for (int pretty = 0; pretty < 2; pretty++) {
        assert_int_equal(plan_to_json(&p, pretty, &out, &len), CMC_OK);
        assert_int_equal(strlen(out), len);
        json_t *orig = json_loads(example_json, 0, NULL);
        json_t *back = json_loads(out, 0, NULL);
        assert_non_null(orig);
        assert_non_null(back);
        assert_true(json_equal(orig, back));
        char *a = json_dumps(orig, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *b = json_dumps(back, JSON_COMPACT | JSON_PRESERVE_ORDER);
        assert_string_equal(a, b); /* key order too */
        cmc_free(a);
        cmc_free(b);
        json_decref(orig);
        json_decref(back);
        assert_int_equal(plan_from_json(out, len, &q), CMC_OK);
        assert_true(plan_equal(&p, &q));
        plan_free(&q);
        cmc_free(out);
    }
    plan_free(&p);
}

static void test_msgpack_round_trip_and_determinism(void **state)
{
    (void)state;
    struct plan p, q, c;
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    load_example(&p);
    assert_int_equal(plan_pack(&p, &a, &alen), CMC_OK);
    assert_true(alen > 100 && alen < 4096);
    assert_int_equal(plan_unpack(a, alen, &q), CMC_OK);
    assert_true(plan_equal(&p, &q));
    assert_int_equal(plan_copy(&c, &q), CMC_OK);
    assert_int_equal(plan_pack(&c, &b, &blen), CMC_OK);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    /* A changed field changes the bytes and the comparison. */
    c.medications[0].anticipatory = 1;
    assert_false(plan_equal(&p, &c));
    cmc_free(b);
    assert_int_equal(plan_pack(&c, &b, &blen), CMC_OK);
    assert_true(alen != blen || memcmp(a, b, alen) != 0);
    plan_free(&p);
    plan_free(&q);
    plan_free(&c);
    cmc_free(a);
    cmc_free(b);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

static void small_plan(struct plan *p)
{
    static const char json[] =
        "{\"plan_id\":\"00000000-0000-4000-8000-000000000001\",\"nhs_number\":\"9434765919\","
        "\"patient\":{\"given_name\":\"A\",\"family_name\":\"B\",\"date_of_birth\":\"1950-01-01\","
        "\"gender\":\"male\",\"interpreter_needed\":true},"
        "\"preferred_place_of_care\":[\"home\",\"hospice\"],"
        "\"medications\":[{\"id\":\"m1\",\"name\":\"X\",\"anticipatory\":false}],"
        "\"status\":\"draft\",\"version\":300}";
    assert_int_equal(plan_from_json(json, strlen(json), p), CMC_OK);
}

/* Known answer: the bytes of a small plan. A change here breaks every replica and bundle:
 * see docs/PROTOCOL.md before touching it. */
static void test_golden_encoding(void **state)
{
    (void)state;
    static const char expect[] =
        "8b"                                                   /* map of 11 */
        "01d924" "30303030303030302d303030302d343030302d383030302d303030303030303030303031"
        "02aa" "39343334373635393139"                          /* 2: nhs_number */
        "03a141" "04a142"                                      /* 3, 4: names */
        "06aa" "313935302d30312d3031"                          /* 6: date_of_birth */
        "0702"                                                 /* 7: gender male */
        "0cc3"                                                 /* 12: interpreter true */
        "1e920102"                                             /* 30: [home, hospice] */
        "2291" "83" "01a26d31" "02a158" "04c2"                 /* 34: [{1:"m1",2:"X",4:false}] */
        "2a01"                                                 /* 42: status draft */
        "2bcd012c";                                            /* 43: version 300 */
    struct plan p;
    uint8_t *b = NULL;
    size_t len = 0;
    char got[512];
    small_plan(&p);
    assert_int_equal(plan_pack(&p, &b, &len), CMC_OK);
    assert_true(len < 250);
    hex(b, len, got);
    assert_string_equal(got, expect);
    plan_free(&p);
    cmc_free(b);
}

/* ---- validation details ---------------------------------------------------------------- */

/* Loads the example, lets `edit` change it, and parses the result. */
static int parse_edited(void (*edit)(json_t *), struct plan *out)
{
    json_t *root = json_loads(example_json, 0, NULL);
    char *text;
    int rc;
    assert_non_null(root);
    edit(root);
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    assert_non_null(text);
    rc = plan_from_json(text, strlen(text), out);
    cmc_free(text);
    return rc;
}

static json_t *item(json_t *root, const char *list, size_t i)
{
    return json_array_get(json_object_get(root, list), i);
}

static void e_bad_enum(json_t *r) { json_object_set_new(json_object_get(r, "resuscitation"), "decision", json_string("maybe")); }
static void e_bad_date(json_t *r) { json_object_set_new(json_object_get(r, "patient"), "date_of_birth", json_string("2026-02-30")); }
static void e_no_family(json_t *r) { json_object_del(json_object_get(r, "patient"), "family_name"); }
static void e_null_dob(json_t *r) { json_object_set_new(json_object_get(r, "patient"), "date_of_birth", json_null()); }
static void e_bad_nhs(json_t *r) { json_object_set_new(r, "nhs_number", json_string("9434765918")); }
static void e_short_nhs(json_t *r) { json_object_set_new(r, "nhs_number", json_string("943476591")); }
static void e_long_dose(json_t *r)
{
    char dose[202];
    memset(dose, 'x', 201);
    dose[201] = '\0';
    json_object_set_new(item(r, "medications", 1), "dose", json_string(dose));
}
static void e_dup_id(json_t *r) { json_object_set_new(item(r, "diagnoses", 1), "id", json_string("d1")); }
static void e_unknown_key(json_t *r) { json_object_set_new(r, "colour", json_string("blue")); }
static void e_unknown_nested(json_t *r) { json_object_set_new(json_object_get(r, "resuscitation"), "colour", json_true()); }
static void e_unknown_item_key(json_t *r) { json_object_set_new(item(r, "allergies", 0), "colour", json_true()); }
static void e_dotted_key(json_t *r) { json_object_set_new(r, "patient.given_name", json_string("Ann")); }
static void e_wrong_type(json_t *r) { json_object_set_new(r, "hospital_admission_wanted", json_string("no")); }
static void e_bad_datetime(json_t *r) { json_object_set_new(r, "updated_at", json_string("2026-02-11 15:02")); }
static void e_bad_uuid(json_t *r) { json_object_set_new(r, "plan_id", json_string("7C1F4E0A-3A51-4C55-9F3B-2D1E8F0B6A11")); }
static void e_bad_place(json_t *r) { json_array_append_new(json_object_get(r, "preferred_place_of_care"), json_string("beach")); }
static void e_dup_place(json_t *r) { json_array_append_new(json_object_get(r, "preferred_place_of_death"), json_string("home")); }
static void e_two_primary(json_t *r) { json_object_set_new(item(r, "diagnoses", 1), "primary", json_true()); }
static void e_bad_item_id(json_t *r) { json_object_set_new(item(r, "contacts", 2), "id", json_string("Chidi Okafor")); }
static void e_no_item_id(json_t *r) { json_object_del(item(r, "contacts", 2), "id"); }
static void e_negative_version(json_t *r) { json_object_set_new(r, "version", json_integer(-1)); }
static void e_text_version(json_t *r) { json_object_set_new(r, "version", json_real(4.0)); }
static void e_too_many(json_t *r)
{
    json_t *meds = json_object_get(r, "medications");
    for (int i = 0; i < PLAN_MAX_ITEMS; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%d", i);
        json_array_append_new(meds, json_pack("{s:s,s:s}", "id", id, "name", "n"));
    }
}

static void test_validation_details_name_the_field(void **state)
{
    (void)state;
    static const struct {
        void (*edit)(json_t *);
        const char *detail; /* prefix */
    } cases[] = {
        {e_bad_enum, "resuscitation.decision: not one of for_cpr, dnacpr, not_yet_discussed"},
        {e_bad_date, "patient.date_of_birth: not a calendar date"},
        {e_no_family, "patient.family_name: required"},
        {e_null_dob, "patient.date_of_birth: required"},
        {e_bad_nhs, "nhs_number: NHS number check digit is wrong"},
        {e_short_nhs, "nhs_number: NHS number must be 10 digits"},
        {e_long_dose, "medications[m2].dose: longer than 200 bytes"},
        {e_dup_id, "diagnoses[d1].id: duplicate id"},
        {e_unknown_key, "unknown key: colour"},
        {e_unknown_nested, "unknown key: resuscitation.colour"},
        {e_unknown_item_key, "allergies[a1]: unknown key colour"},
        {e_dotted_key, "unknown key: patient.given_name"},
        {e_wrong_type, "hospital_admission_wanted: expected true, false or null"},
        {e_bad_datetime, "updated_at: not a UTC time"},
        {e_bad_uuid, "plan_id: not a lower-case UUID"},
        {e_bad_place, "preferred_place_of_care: not one of home, hospice"},
        {e_dup_place, "preferred_place_of_death: a place is listed twice"},
        {e_two_primary, "diagnoses[d2].primary: more than one primary diagnosis"},
        {e_bad_item_id, "contacts[2].id: not a valid item id"},
        {e_no_item_id, "contacts[2].id: required"},
        {e_negative_version, "version: expected a whole number"},
        {e_text_version, "version: expected a whole number"},
        {e_too_many, "medications: more than 64 items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan p;
        p.plan_id = (char *)"not touched";
        int rc = parse_edited(cases[i].edit, &p);
        if (rc != CMC_ERR_INVALID || strncmp(cmc_errmsg(), cases[i].detail, strlen(cases[i].detail)) != 0)
            fail_msg("case %zu: rc %d detail \"%s\", want \"%s\"", i, rc, cmc_errmsg(), cases[i].detail);
        /* Never the value. */
        assert_null(strstr(cmc_errmsg(), "9434765918"));
        assert_null(strstr(cmc_errmsg(), "Okafor"));
        assert_null(strstr(cmc_errmsg(), "xxxx"));
        assert_null(strstr(cmc_errmsg(), "maybe"));
        /* The output is empty on failure. */
        assert_null(p.plan_id);
        assert_int_equal(p.n_medications, 0);
    }
}

static void e_no_consent(json_t *r) { json_object_set_new(json_object_get(r, "consent"), "basis", json_null()); }
static void e_no_decision(json_t *r) { json_object_del(json_object_get(r, "resuscitation"), "decision"); }
static void e_no_approver(json_t *r) { json_object_set_new(r, "approved_by", json_null()); }
static void e_no_version(json_t *r) { json_object_set_new(r, "version", json_integer(0)); }
static void e_no_med_name(json_t *r) { json_object_set_new(item(r, "medications", 0), "name", json_null()); }
static void e_draft_no_approver(json_t *r)
{
    json_object_set_new(r, "approved_by", json_null());
    json_object_set_new(r, "approved_at", json_null());
    json_object_set_new(r, "status", json_string("awaiting_approval"));
}

/* A draft may lack clinical fields; a complete plan may not. */
static void test_complete_requires_clinical_fields(void **state)
{
    (void)state;
    static const struct {
        void (*edit)(json_t *);
        const char *detail;
    } cases[] = {
        {e_no_consent, "consent.basis: required"},
        {e_no_decision, "resuscitation.decision: required"},
        {e_no_approver, "approved_by: required for a published plan"},
        {e_no_version, "version: required"},
        {e_no_med_name, "medications[m1].name: required"},
        {e_draft_no_approver, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan p;
        assert_int_equal(parse_edited(cases[i].edit, &p), CMC_OK);
        assert_int_equal(plan_validate(&p, PLAN_CHECK_DRAFT), CMC_OK);
        int rc = plan_validate(&p, PLAN_CHECK_COMPLETE);
        if (cases[i].detail == NULL)
            assert_int_equal(rc, CMC_OK);
        else {
            assert_int_equal(rc, CMC_ERR_INVALID);
            assert_string_equal(cmc_errmsg(), cases[i].detail);
        }
        plan_free(&p);
    }
}

static void test_nhs_numbers(void **state)
{
    (void)state;
    static const char *const valid[] = {"9434765919", "9876543210", "4010232137", "0000000000"};
    static const char *const invalid[] = {"9434765918", "9434765910", "943476591", "94347659190",
                                          "943476591a", " 434765919", "", "94347 5919"};
    char out[PLAN_NHS_LEN + 1];
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_true(plan_nhs_valid(valid[i]));
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_false(plan_nhs_valid(invalid[i]));
    assert_false(plan_nhs_valid(NULL));
    /* Exactly one final digit is right for a prefix whose check digit is not 10, and none
     * for one whose check digit would be 10. */
    int impossible_seen = 0;
    for (unsigned prefix = 123456780; prefix < 123456880; prefix++) {
        char s[11];
        int sum = 0, ok = 0;
        snprintf(s, sizeof s, "%09u0", prefix);
        for (int i = 0; i < 9; i++)
            sum += (s[i] - '0') * (10 - i);
        for (char d = '0'; d <= '9'; d++) {
            s[9] = d;
            ok += plan_nhs_valid(s);
        }
        if (11 - sum % 11 == 10) {
            impossible_seen++;
            assert_int_equal(ok, 0);
        } else
            assert_int_equal(ok, 1);
    }
    assert_true(impossible_seen > 0);
    assert_int_equal(plan_nhs_normalise("943 476 5919", out), CMC_OK);
    assert_string_equal(out, "9434765919");
    assert_int_equal(plan_nhs_normalise("943-476-5919", out), CMC_OK);
    assert_int_equal(plan_nhs_normalise("943 476 5918", out), CMC_ERR_INVALID);
    assert_string_equal(cmc_errmsg(), "NHS number check digit is wrong");
    assert_int_equal(plan_nhs_normalise("943 476 591", out), CMC_ERR_INVALID);
    assert_string_equal(cmc_errmsg(), "NHS number must be 10 digits");
    assert_int_equal(plan_nhs_normalise("9434765919x", out), CMC_ERR_INVALID);
}

static void test_calendar_dates(void **state)
{
    (void)state;
    static const struct {
        const char *date;
        int ok;
    } cases[] = {
        {"2024-02-29", 1}, {"2023-02-29", 0}, {"2026-02-30", 0}, {"2026-04-31", 0},
        {"2026-12-31", 1}, {"2026-13-01", 0}, {"2026-1-01", 0},  {"2026-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan p;
        load_example(&p);
        cmc_free(p.resuscitation.review_date);
        p.resuscitation.review_date = cmc_strdup(cases[i].date);
        int rc = plan_validate(&p, PLAN_CHECK_DRAFT);
        assert_int_equal(rc, cases[i].ok ? CMC_OK : CMC_ERR_INVALID);
        if (!cases[i].ok)
            assert_int_equal(strncmp(cmc_errmsg(), "resuscitation.review_date: ", 27), 0);
        plan_free(&p);
    }
}

static void test_table_lookups(void **state)
{
    (void)state;
    const struct plan_field *f = plan_field_by_path("resuscitation.decision");
    assert_non_null(f);
    assert_int_equal(f->type, PLAN_F_ENUM);
    assert_ptr_equal(plan_field_by_wire_id(f->wire_id), f);
    assert_string_equal(plan_enum_name(f, PLAN_CPR_FOR_CPR), "for_cpr");
    assert_null(plan_enum_name(f, 0));
    assert_null(plan_enum_name(f, 4));
    assert_null(plan_field_by_path("resuscitation.colour"));
    assert_null(plan_field_by_path("resuscitation"));
    f = plan_field_by_path("medications");
    assert_non_null(f);
    assert_non_null(plan_item_field_by_name(f->list, "dose"));
    assert_null(plan_item_field_by_name(f->list, "colour"));
    assert_string_equal(f->list->fields[0].path, "id");
    assert_string_equal(plan_status_name(PLAN_STATUS_NEEDS_FINALISATION), "needs_finalisation");
    assert_int_equal(plan_status_from_name("published"), PLAN_STATUS_PUBLISHED);
    assert_int_equal(plan_status_from_name("gone"), 0);
    assert_string_equal(plan_cpr_name(PLAN_CPR_NOT_DISCUSSED), "not_yet_discussed");
    assert_string_equal(plan_place_name(PLAN_PLACE_CARE_HOME), "care_home");
    /* Wire ids ascend in table order, are unique, and fit a positive fixint. */
    for (size_t i = 0; i < plan_n_fields; i++) {
        assert_true(plan_fields[i].wire_id > 0 && plan_fields[i].wire_id < 128);
        if (i > 0)
            assert_true(plan_fields[i].wire_id > plan_fields[i - 1].wire_id);
    }
}

static void test_field_and_item_helpers(void **state)
{
    (void)state;
    struct plan a, b;
    const struct plan_field *meds = plan_field_by_path("medications");
    const struct plan_field *dose = plan_item_field_by_name(meds->list, "dose");
    const struct plan_field *prog = plan_field_by_path("prognosis");
    size_t idx = 99, n = 0;
    load_example(&a);
    plan_init(&b);
    assert_false(plan_field_equal(prog, &a, &b));
    assert_int_equal(plan_field_copy(prog, &b, &a), CMC_OK);
    assert_true(plan_field_equal(prog, &a, &b));
    assert_ptr_not_equal(a.prognosis, b.prognosis);
    assert_int_equal(plan_field_copy(meds, &b, &a), CMC_OK);
    assert_true(plan_field_equal(meds, &a, &b));
    assert_int_equal(plan_list_find(meds, &b, "m2", &idx), 1);
    assert_int_equal(idx, 1);
    assert_int_equal(plan_list_find(meds, &b, "m9", &idx), 0);
    struct plan_medication *items = plan_list_items(meds, &b, &n);
    assert_int_equal(n, 2);
    assert_string_equal(plan_item_id(meds->list, &items[1]), "m2");
    assert_true(plan_item_equal(meds->list, &items[1], &a.medications[1]));
    plan_field_clear(dose, &items[1]);
    assert_null(items[1].dose);
    assert_false(plan_item_equal(meds->list, &items[1], &a.medications[1]));
    assert_false(plan_field_equal(meds, &a, &b));
    struct plan_medication copy;
    assert_int_equal(plan_item_copy(meds->list, &copy, &a.medications[0]), CMC_OK);
    assert_true(plan_item_equal(meds->list, &copy, &a.medications[0]));
    plan_item_free(meds->list, &copy);
    assert_null(copy.name);
    assert_int_equal(copy.anticipatory, PLAN_UNSET);
    assert_true(plan_item_id_valid("m-1_a.b"));
    assert_false(plan_item_id_valid("m 1"));
    assert_false(plan_item_id_valid(""));
    plan_free(&a);
    plan_free(&b);
    plan_free(NULL);
}

/* ---- hostile msgpack ------------------------------------------------------------------- */

static void test_hostile_counts_allocate_nothing(void **state)
{
    (void)state;
    static const uint8_t map32[10] = {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5};
    static const uint8_t list32[10] = {0x81, 34, 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    static const uint8_t str32[10] = {0x81, 3, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const uint8_t list16[10] = {0x81, 34, 0xdc, 0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80};
    const uint8_t *cases[] = {map32, list32, str32, list16};
    for (size_t i = 0; i < 4; i++) {
        struct plan p;
        cmc_alloc_fail_after(-1, 0); /* resets the counter */
        int rc = plan_unpack(cases[i], 10, &p);
        assert_true(rc == CMC_ERR_CORRUPT || rc == CMC_ERR_TOO_LARGE);
        assert_true(cmc_alloc_count() < 3);
        assert_null(p.plan_id);
    }
}

static void test_deep_nesting_refused(void **state)
{
    (void)state;
    enum { DEEP = 10000 };
    static uint8_t buf[DEEP + 3];
    struct plan p;
    buf[0] = 0x81;
    buf[1] = 34; /* medications: [[[[...]]]] */
    memset(buf + 2, 0x91, DEEP);
    buf[DEEP + 2] = 0xc0;
    assert_int_equal(plan_unpack(buf, sizeof buf, &p), CMC_ERR_CORRUPT);
    memset(buf, 0x91, sizeof buf);
    assert_int_equal(plan_unpack(buf, sizeof buf, &p), CMC_ERR_CORRUPT);
}

static void test_every_truncation_refused(void **state)
{
    (void)state;
    struct plan p, q;
    size_t len = 0;
    uint8_t *b = pack_example(&p, &len);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = plan_unpack(b, cut, &q);
        if (rc == CMC_OK)
            fail_msg("prefix of %zu bytes accepted", cut);
        assert_null(q.plan_id);
    }
    plan_free(&p);
    cmc_free(b);
}

static void test_every_byte_flip_refused_or_valid(void **state)
{
    (void)state;
    static const uint8_t flips[] = {0x01, 0x10, 0x80, 0xff};
    struct plan p, q;
    size_t len = 0;
    uint8_t *b = pack_example(&p, &len);
    int accepted = 0;
    for (size_t i = 0; i < len; i++)
        for (size_t f = 0; f < sizeof flips; f++) {
            b[i] ^= flips[f];
            if (plan_unpack(b, len, &q) == CMC_OK) {
                accepted++;
                assert_int_equal(plan_validate(&q, PLAN_CHECK_DRAFT), CMC_OK);
                plan_free(&q);
            } else
                assert_null(q.plan_id);
            b[i] ^= flips[f];
        }
    /* Flips inside free text still decode (to a different, valid plan). */
    assert_true(accepted > 0);
    plan_free(&p);
    cmc_free(b);
}

static void test_strict_decoding(void **state)
{
    (void)state;
    struct plan p, q;
    uint8_t *b = NULL, *t = NULL;
    size_t len = 0;
    small_plan(&p);
    assert_int_equal(plan_pack(&p, &b, &len), CMC_OK);
    t = cmc_malloc(len + 1);
    /* trailing byte */
    memcpy(t, b, len);
    t[len] = 0xc0;
    assert_int_equal(plan_unpack(t, len + 1, &q), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "trailing"));
    /* unknown field id: gender's id 7 -> 5 is preferred_name (a string), 9 -> 100 unknown */
    static const uint8_t unknown[] = {0x81, 100, 0x01};
    assert_int_equal(plan_unpack(unknown, sizeof unknown, &q), CMC_ERR_CORRUPT);
    assert_string_equal(cmc_errmsg(), "plan: unknown field id 100");
    /* wrong type: a string where gender (an enum) is expected */
    memcpy(t, b, len);
    size_t at = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (b[i] == 0x07 && b[i + 1] == 0x02)
            at = i;
    assert_true(at > 0);
    t[at + 1] = 0xa0; /* "" */
    assert_int_equal(plan_unpack(t, len, &q), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "patient.gender"));
    /* out-of-range enum */
    t[at + 1] = 0x09;
    assert_int_equal(plan_unpack(t, len, &q), CMC_ERR_CORRUPT);
    /* nil is never a value in a plan */
    t[at + 1] = 0xc0;
    assert_int_equal(plan_unpack(t, len, &q), CMC_ERR_CORRUPT);
    /* a float where an enum is expected */
    static const uint8_t flt[] = {0x81, 7, 0xca, 0x3f, 0x80, 0, 0};
    assert_int_equal(plan_unpack(flt, sizeof flt, &q), CMC_ERR_CORRUPT);
    /* keys out of order or repeated */
    static const uint8_t dup[] = {0x82, 7, 0x01, 7, 0x02};
    assert_int_equal(plan_unpack(dup, sizeof dup, &q), CMC_ERR_CORRUPT);
    /* the validation rules apply after decoding */
    static const uint8_t empty[] = {0x80};
    assert_int_equal(plan_unpack(empty, sizeof empty, &q), CMC_ERR_INVALID);
    assert_string_equal(cmc_errmsg(), "plan_id: required");
    /* too large */
    assert_int_equal(plan_unpack(b, PLAN_MAX_ENCODED + 1, &q), CMC_ERR_TOO_LARGE);
    plan_free(&p);
    cmc_free(b);
    cmc_free(t);
}

/* ---- out of memory --------------------------------------------------------------------- */

static void test_out_of_memory(void **state)
{
    (void)state;
    struct plan p, q;
    size_t len = 0;
    uint8_t *b = pack_example(&p, &len);
    char *json = NULL;
    size_t jlen = 0;
    for (int which = 0; which < 5; which++) {
        long n;
        int rc = CMC_ERR_NOMEM;
        for (n = 0; n < 100000; n++) {
            uint8_t *ob = NULL;
            char *oj = NULL;
            size_t ol = 0;
            cmc_alloc_fail_after(n, 1);
            switch (which) {
            case 0: rc = plan_from_json(example_json, strlen(example_json), &q); break;
            case 1: rc = plan_unpack(b, len, &q); break;
            case 2: rc = plan_to_json(&p, 1, &oj, &ol); break;
            case 3: rc = plan_pack(&p, &ob, &ol); break;
            default: rc = plan_copy(&q, &p); break;
            }
            cmc_alloc_fail_after(-1, 0);
            if (rc == CMC_OK) {
                if (which == 0 || which == 1 || which == 4) {
                    assert_true(plan_equal(&p, &q));
                    plan_free(&q);
                }
                cmc_free(ob);
                cmc_free(oj);
                break;
            }
            if (rc != CMC_ERR_NOMEM)
                fail_msg("case %d at %ld: %d %s", which, n, rc, cmc_errmsg());
            if (which != 2 && which != 3)
                assert_null(q.plan_id);
            assert_null(ob);
            assert_null(oj);
        }
        assert_int_equal(rc, CMC_OK);
        assert_true(n > 0);
    }
    (void)json;
    (void)jlen;
    plan_free(&p);
    cmc_free(b);
}

/* ---- second edition -------------------------------------------------------------------- */

#define ED2_EXAMPLE "docs/examples/plan-second-edition.json"

static void test_second_edition_round_trips(void **state)
{
    (void)state;
    struct plan a, b, c;
    char *json = NULL;
    uint8_t *mp = NULL;
    size_t jlen = 0, mlen = 0;
    tst_plan_load_file(ED2_EXAMPLE, &a);
    assert_int_equal(plan_validate(&a, PLAN_CHECK_COMPLETE), CMC_OK);
    assert_int_equal(plan_edition(&a), 2);
    assert_int_equal(a.recommendations.cpr.value, PLAN_REC_NOT_RECOMMENDED);
    assert_int_equal(a.capacity.has_capacity, PLAN_CAPACITY_YES);
    assert_string_equal(a.capacity.lpa_contact, "c3");
    assert_int_equal(a.contacts[2].relationship, PLAN_REL_SON);
    assert_string_equal(a.adrt.refuses, "Intubation and mechanical ventilation");
    assert_string_equal(a.diagnoses[1].snomed, "44054006");
    /* JSON and msgpack both carry every second-edition field */
    assert_int_equal(plan_to_json(&a, 1, &json, &jlen), CMC_OK);
    assert_int_equal(plan_from_json(json, jlen, &b), CMC_OK);
    assert_true(plan_equal(&a, &b));
    assert_non_null(strstr(json, "\"relationship\": \"son\""));
    assert_int_equal(plan_pack(&a, &mp, &mlen), CMC_OK);
    assert_int_equal(plan_unpack(mp, mlen, &c), CMC_OK);
    assert_true(plan_equal(&a, &c));
    /* a second-edition value changes the plan: equality sees it */
    c.devices.icd = 1;
    assert_false(plan_equal(&a, &c));
    plan_free(&a);
    plan_free(&b);
    plan_free(&c);
    cmc_free(json);
    cmc_free(mp);
}

/* A resident's care home address and a positive "no known allergies" travel like every other
 * second-edition field: JSON, msgpack, change documents (JSON and msgpack), and a first-edition
 * plan gains neither. */
static void test_residence_and_allergies_status_travel(void **state)
{
    (void)state;
    static const char edit[] = "{\"set\": {\"care_home_address\": \"12 Elm Road, London\","
                               " \"allergies_status\": \"no_known_allergies\"}}";
    struct plan a, b, c;
    struct plan_change ch, back, diff;
    char *json = NULL;
    uint8_t *mp = NULL;
    size_t jlen = 0, mlen = 0;
    load_example(&a);
    assert_int_equal(plan_edition(&a), 1);
    assert_int_equal(plan_change_from_json(edit, strlen(edit), &ch), CMC_OK);
    /* the change document survives its own wire forms */
    assert_int_equal(plan_change_pack(&ch, &mp, &mlen), CMC_OK);
    assert_int_equal(plan_change_unpack(mp, mlen, &back), CMC_OK);
    cmc_free(mp);
    mp = NULL;
    assert_int_equal(plan_change_to_json(&back, &json, &jlen), CMC_OK);
    assert_non_null(strstr(json, "\"allergies_status\": \"no_known_allergies\""));
    assert_non_null(strstr(json, "12 Elm Road, London"));
    cmc_free(json);
    json = NULL;
    assert_int_equal(plan_change_apply(&a, &back), CMC_OK);
    plan_change_free(&ch);
    plan_change_free(&back);
    assert_int_equal(a.allergies_status, PLAN_ALLERGIES_NKA);
    assert_string_equal(a.care_home_address, "12 Elm Road, London");
    assert_int_equal(plan_edition(&a), 2);
    /* plan JSON and msgpack */
    assert_int_equal(plan_to_json(&a, 1, &json, &jlen), CMC_OK);
    assert_non_null(strstr(json, "\"care_home_address\": \"12 Elm Road, London\""));
    assert_int_equal(plan_from_json(json, jlen, &b), CMC_OK);
    assert_true(plan_equal(&a, &b));
    assert_int_equal(plan_pack(&a, &mp, &mlen), CMC_OK);
    assert_int_equal(plan_unpack(mp, mlen, &c), CMC_OK);
    assert_true(plan_equal(&a, &c));
    assert_int_equal(c.allergies_status, PLAN_ALLERGIES_NKA);
    /* equality and diff see the status alone */
    c.allergies_status = PLAN_ALLERGIES_NOT_RECORDED;
    assert_false(plan_equal(&a, &c));
    assert_int_equal(plan_change_diff(&a, &c, &diff), CMC_OK);
    cmc_free(json);
    assert_int_equal(plan_change_to_json(&diff, &json, &jlen), CMC_OK);
    assert_non_null(strstr(json, "\"allergies_status\": \"not_recorded\""));
    plan_change_free(&diff);
    /* an unknown status is refused, naming the field */
    static const char bad[] = "{\"set\": {\"allergies_status\": \"none\"}}";
    assert_int_not_equal(plan_change_from_json(bad, strlen(bad), &ch), CMC_OK);
    assert_non_null(strstr(cmc_errmsg(), "allergies_status"));
    plan_free(&a);
    plan_free(&b);
    plan_free(&c);
    cmc_free(json);
    cmc_free(mp);
}

/* A first-edition plan keeps its exact JSON form: no second-edition key appears, not even as
 * null, so a first-edition reader of our JSON sees what it always saw. (Its msgpack form is
 * pinned by test_golden_encoding.) */
static void test_first_edition_form_unchanged(void **state)
{
    (void)state;
    static const char *const ed2_keys[] = {"preferences", "recommendations", "capacity",
                                           "communication", "safety", "devices", "relationship",
                                           "snomed", "\"dmd\"", "refuses", "circumstances",
                                           "care_home_address", "allergies_status", NULL};
    struct plan p;
    char *json = NULL;
    size_t len = 0;
    load_example(&p);
    assert_int_equal(plan_edition(&p), 1);
    assert_int_equal(plan_to_json(&p, 1, &json, &len), CMC_OK);
    for (size_t i = 0; ed2_keys[i] != NULL; i++)
        if (strstr(json, ed2_keys[i]) != NULL)
            fail_msg("first-edition JSON gained %s", ed2_keys[i]);
    cmc_free(json);
    /* one second-edition value makes it a second-edition plan, and its group appears */
    p.devices.home_oxygen = 1;
    assert_int_equal(plan_edition(&p), 2);
    assert_int_equal(plan_to_json(&p, 1, &json, &len), CMC_OK);
    assert_non_null(strstr(json, "\"devices\""));
    assert_null(strstr(json, "\"capacity\""));
    cmc_free(json);
    plan_free(&p);
}

static void test_second_edition_in_changes_and_merge(void **state)
{
    (void)state;
    static const char local_edit[] =
        "{\"set\": {\"capacity.has_capacity\": \"fluctuating\", \"preferences.scale\": \"balanced\"},"
        " \"update\": {\"contacts\": [{\"id\": \"c3\", \"relationship\": \"partner\"}]}}";
    static const char remote_edit[] =
        "{\"set\": {\"recommendations.iv_antibiotics\": \"recommended\","
        " \"preferences.scale\": \"lean_comfort\"}}";
    struct plan base, local, remote, merged, back;
    struct plan_change c;
    struct merge_conflict *conf = NULL;
    size_t n = 0;
    tst_plan_load_file(ED2_EXAMPLE, &base);
    assert_int_equal(plan_copy(&local, &base), CMC_OK);
    assert_int_equal(plan_copy(&remote, &base), CMC_OK);
    assert_int_equal(plan_change_from_json(local_edit, strlen(local_edit), &c), CMC_OK);
    assert_int_equal(plan_change_apply(&local, &c), CMC_OK);
    plan_change_free(&c);
    assert_int_equal(plan_change_from_json(remote_edit, strlen(remote_edit), &c), CMC_OK);
    assert_int_equal(plan_change_apply(&remote, &c), CMC_OK);
    plan_change_free(&c);
    assert_int_equal(local.capacity.has_capacity, PLAN_CAPACITY_FLUCTUATING);
    assert_int_equal(local.contacts[2].relationship, PLAN_REL_PARTNER);
    /* a delta carries second-edition fields: diff then apply reproduces the target */
    assert_int_equal(plan_change_diff(&base, &local, &c), CMC_OK);
    assert_int_equal(plan_copy(&back, &base), CMC_OK);
    assert_int_equal(plan_change_apply(&back, &c), CMC_OK);
    assert_true(plan_equal(&back, &local));
    plan_change_free(&c);
    /* the merge takes each side's own change and reports the one field both changed */
    assert_int_equal(plan_merge3(&base, &local, &remote, &merged, &conf, &n), CMC_OK);
    assert_int_equal(merged.capacity.has_capacity, PLAN_CAPACITY_FLUCTUATING);
    assert_int_equal(merged.recommendations.iv_antibiotics.value, PLAN_REC_RECOMMENDED);
    assert_int_equal(merged.contacts[2].relationship, PLAN_REL_PARTNER);
    assert_int_equal(n, 1);
    assert_string_equal(conf[0].path, "preferences.scale");
    cmc_free(conf);
    plan_free(&base);
    plan_free(&local);
    plan_free(&remote);
    plan_free(&merged);
    plan_free(&back);
}

/* A later edition's fields survive an agent that does not know them: kept by
 * plan_unpack_keep, written back byte for byte, and the plan says it needs a newer agent. The
 * strict decoder (the hub's) still refuses them. */
static void test_unknown_fields_are_kept(void **state)
{
    (void)state;
    struct plan a, b, c;
    uint8_t *mp = NULL, *again = NULL, *later;
    size_t mlen = 0, alen = 0;
    tst_plan_load_file(ED2_EXAMPLE, &a);
    assert_int_equal(plan_pack(&a, &mp, &mlen), CMC_OK);
    /* field 100: "x"; field 101: [true] */
    later = tst_plan_with_fields(mp, mlen, 2, "\x64\xa1x\x65\x91\xc3", 6);
    assert_int_equal(plan_unpack(later, mlen + 6, &b), CMC_ERR_CORRUPT);
    assert_int_equal(plan_unpack_keep(later, mlen + 6, &b), CMC_OK);
    assert_int_equal(b.unknown.count, 2);
    assert_int_equal(plan_edition(&b), PLAN_EDITION_CURRENT + 1);
    assert_int_equal(plan_pack(&b, &again, &alen), CMC_OK);
    assert_int_equal(alen, mlen + 6);
    assert_memory_equal(again, later, alen);
    assert_int_equal(plan_copy(&c, &b), CMC_OK);
    assert_true(plan_equal(&c, &b));
    assert_false(plan_equal(&a, &b));
    plan_free(&c);
    /* a truncated unknown value is refused, not kept */
    assert_int_equal(plan_unpack_keep(later, mlen + 5, &c), CMC_ERR_CORRUPT);
    assert_int_equal(c.unknown.count, 0);
    /* kept fields keep the one-encoding rule: ids must still ascend */
    later[mlen] = 0x66; /* 102 before 101 */
    assert_int_equal(plan_unpack_keep(later, mlen + 6, &c), CMC_ERR_CORRUPT);
    plan_free(&a);
    plan_free(&b);
    cmc_free(mp);
    cmc_free(again);
    cmc_free(later);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_parses_and_is_complete),
        cmocka_unit_test(test_json_round_trip_is_exact),
        cmocka_unit_test(test_msgpack_round_trip_and_determinism),
        cmocka_unit_test(test_golden_encoding),
        cmocka_unit_test(test_validation_details_name_the_field),
        cmocka_unit_test(test_complete_requires_clinical_fields),
        cmocka_unit_test(test_nhs_numbers),
        cmocka_unit_test(test_calendar_dates),
        cmocka_unit_test(test_table_lookups),
        cmocka_unit_test(test_field_and_item_helpers),
        cmocka_unit_test(test_hostile_counts_allocate_nothing),
        cmocka_unit_test(test_deep_nesting_refused),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_every_byte_flip_refused_or_valid),
        cmocka_unit_test(test_strict_decoding),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_second_edition_round_trips),
        cmocka_unit_test(test_residence_and_allergies_status_travel),
        cmocka_unit_test(test_first_edition_form_unchanged),
        cmocka_unit_test(test_second_edition_in_changes_and_merge),
        cmocka_unit_test(test_unknown_fields_are_kept),
    };
    plan_json_init(); /* the test's own jansson calls allocate like the library's */
    return cmocka_run_group_tests(tests, load_example_file, free_example_file);
}
