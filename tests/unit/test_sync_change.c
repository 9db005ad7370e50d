/* Change documents: parse, apply (all or nothing), diff, JSON and msgpack forms, OOM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "sync/change.h"
#include "sync/plan.h"

#include <stdio.h>
#include <string.h>

#include "tests/support/example_plan_model.h"


/* The example of CLI.md. */
static const char cli_change[] =
    "{ \"set\":    { \"resuscitation.decision\": \"for_cpr\", \"prognosis\": \"months\" },\n"
    "  \"add\":    { \"medications\": [ { \"id\": \"m9\", \"name\": \"Haloperidol\", \"dose\": \"0.5 mg\", \"anticipatory\": true } ] },\n"
    "  \"update\": { \"allergies\": [ { \"id\": \"a1\", \"reaction\": \"Rash\" } ] },\n"
    "  \"remove\": { \"contacts\": [\"c3\"] } }";

static void load_base(struct plan *p)
{
    tst_example_plan_parse(p);
}

static void test_cli_example_applies(void **state)
{
    (void)state;
    struct plan p;
    struct plan_change c;
    load_base(&p);
    assert_int_equal(plan_change_from_json(cli_change, strlen(cli_change), &c), CMC_OK);
    assert_int_equal(c.n_ops, 5);
    assert_int_equal(plan_change_apply(&p, &c), CMC_OK);
    assert_int_equal(p.resuscitation.decision, PLAN_CPR_FOR_CPR);
    assert_string_equal(p.prognosis, "months");
    assert_int_equal(p.n_medications, 3);
    assert_string_equal(p.medications[2].id, "m9");
    assert_string_equal(p.medications[2].name, "Haloperidol");
    assert_string_equal(p.medications[2].dose, "0.5 mg");
    assert_int_equal(p.medications[2].anticipatory, 1);
    assert_string_equal(p.allergies[0].reaction, "Rash");
    assert_string_equal(p.allergies[0].substance, "Penicillin"); /* untouched */
    assert_int_equal(p.allergies[0].severity, PLAN_SEVERITY_SEVERE);
    assert_int_equal(p.n_contacts, 2);
    assert_string_equal(p.contacts[0].id, "c1");
    assert_string_equal(p.contacts[1].id, "c2");
    /* Fields the change does not name are unchanged, metadata included. */
    assert_int_equal(p.status, PLAN_STATUS_PUBLISHED);
    assert_int_equal(p.version, 4);
    assert_string_equal(p.patient.given_name, "Margaret");
    plan_change_free(&c);
    plan_free(&p);
    plan_change_free(NULL);
}

static void test_set_null_clears_and_update_null_clears(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"set\":{\"prognosis\":null,\"preferred_place_of_death\":[\"hospital\"],"
        "\"resuscitation.patient_aware\":null},"
        "\"update\":{\"medications\":[{\"id\":\"m1\",\"dose\":null,\"anticipatory\":true}]}}";
    struct plan p;
    struct plan_change c;
    load_base(&p);
    assert_int_equal(plan_change_from_json(doc, strlen(doc), &c), CMC_OK);
    assert_int_equal(plan_change_apply(&p, &c), CMC_OK);
    assert_null(p.prognosis);
    assert_int_equal(p.preferred_place_of_death.n, 1);
    assert_int_equal(p.preferred_place_of_death.v[0], PLAN_PLACE_HOSPITAL);
    assert_int_equal(p.resuscitation.patient_aware, PLAN_UNSET);
    assert_null(p.medications[0].dose);
    assert_int_equal(p.medications[0].anticipatory, 1);
    assert_string_equal(p.medications[0].name, "Morphine sulfate oral solution");
    plan_change_free(&c);
    plan_free(&p);
}

/* Documents refused at parse time, naming the path. */
static void test_parse_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        const char *detail;
    } cases[] = {
        {"{\"set\":{\"resuscitation.colour\":\"red\"}}", "set: unknown path resuscitation.colour"},
        {"{\"set\":{\"status\":\"published\"}}", "set: status: set by the hub"},
        {"{\"set\":{\"version\":9}}", "set: version: set by the hub"},
        {"{\"set\":{\"plan_id\":\"7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a12\"}}", "set: plan_id: cannot be changed"},
        {"{\"set\":{\"medications\":[]}}", "set: medications: a list is changed with add"},
        {"{\"set\":{\"resuscitation.decision\":\"maybe\"}}", "resuscitation.decision: not one of"},
        {"{\"set\":{\"resuscitation.review_date\":\"2026-02-30\"}}", "resuscitation.review_date: not a calendar date"},
        {"{\"set\":{\"nhs_number\":\"9434765918\"}}", "nhs_number: NHS number check digit is wrong"},
        {"{\"add\":{\"prognosis\":[]}}", "add: prognosis is not a list"},
        {"{\"add\":{\"medicines\":[]}}", "add: unknown path medicines"},
        {"{\"add\":{\"medications\":[{\"name\":\"x\"}]}}", "medications[0].id: required"},
        {"{\"add\":{\"medications\":[{\"id\":\"m 9\"}]}}", "medications[0].id: not a valid item id"},
        {"{\"add\":{\"medications\":[{\"id\":\"m9\",\"colour\":1}]}}", "medications[m9]: unknown key colour"},
        {"{\"update\":{\"allergies\":[{\"id\":\"a1\",\"severity\":\"fatal\"}]}}", "allergies[a1].severity: not one of"},
        {"{\"remove\":{\"contacts\":[3]}}", "remove: contacts[0]: not a valid item id"},
        {"{\"delete\":{}}", "change: unknown key delete"},
        {"[1]", "change: expected a JSON object"},
        {"{\"set\":", "change: not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan_change c;
        int rc = plan_change_from_json(cases[i].doc, strlen(cases[i].doc), &c);
        if (rc != CMC_ERR_INVALID || strncmp(cmc_errmsg(), cases[i].detail, strlen(cases[i].detail)) != 0)
            fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc, cmc_errmsg(), cases[i].detail);
        assert_int_equal(c.n_ops, 0);
        assert_null(c.ops);
    }
}

/* Documents that parse but cannot apply: the plan is left exactly as it was. */
static void test_apply_refusals_leave_plan_unchanged(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        const char *detail;
    } cases[] = {
        {"{\"update\":{\"allergies\":[{\"id\":\"a9\",\"reaction\":\"Rash\"}]}}", "allergies[a9]: no item with this id"},
        {"{\"remove\":{\"contacts\":[\"c9\"]}}", "contacts[c9]: no item with this id"},
        {"{\"add\":{\"medications\":[{\"id\":\"m1\",\"name\":\"Again\"}]}}", "medications[m1]: an item with this id already exists"},
        {"{\"set\":{\"prognosis\":\"days\"},\"remove\":{\"contacts\":[\"c1\",\"c1\"]}}", "contacts[c1]: no item with this id"},
        {"{\"set\":{\"patient.given_name\":null}}", "patient.given_name: required"},
        {"{\"add\":{\"diagnoses\":[{\"id\":\"d3\",\"text\":\"x\",\"primary\":true}]}}", "diagnoses[d3].primary: more than one primary"},
        {"{\"add\":{\"medications\":[{\"id\":\"m9\"},{\"id\":\"m9\"}]}}", "medications[m9]: an item with this id already exists"},
    };
    struct plan p, orig;
    load_base(&p);
    assert_int_equal(plan_copy(&orig, &p), CMC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan_change c;
        if (plan_change_from_json(cases[i].doc, strlen(cases[i].doc), &c) != CMC_OK)
            fail_msg("case %zu: %s", i, cmc_errmsg());
        int rc = plan_change_apply(&p, &c);
        if (rc != CMC_ERR_INVALID || strncmp(cmc_errmsg(), cases[i].detail, strlen(cases[i].detail)) != 0)
            fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc, cmc_errmsg(), cases[i].detail);
        assert_true(plan_equal(&p, &orig));
        plan_change_free(&c);
    }
    plan_free(&p);
    plan_free(&orig);
}

static void test_list_cap_enforced(void **state)
{
    (void)state;
    char doc[8192];
    size_t used = (size_t)snprintf(doc, sizeof doc, "{\"add\":{\"allergies\":[");
    for (int i = 0; i < PLAN_MAX_ITEMS; i++)
        used += (size_t)snprintf(doc + used, sizeof doc - used, "%s{\"id\":\"x%d\",\"substance\":\"s\"}",
                                 i ? "," : "", i);
    snprintf(doc + used, sizeof doc - used, "]}}");
    struct plan p, orig;
    struct plan_change c;
    load_base(&p);
    assert_int_equal(plan_copy(&orig, &p), CMC_OK);
    assert_int_equal(plan_change_from_json(doc, strlen(doc), &c), CMC_OK);
    assert_int_equal(plan_change_apply(&p, &c), CMC_ERR_INVALID); /* 1 + 64 items */
    assert_string_equal(cmc_errmsg(), "allergies: more than 64 items");
    assert_true(plan_equal(&p, &orig));
    plan_change_free(&c);
    plan_free(&p);
    plan_free(&orig);
}

/* ---- random edits, diff and apply ------------------------------------------------------ */

static uint64_t next(uint64_t *s)
{
    /* xorshift64*: small, deterministic, good enough to pick edits */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(next(s) % n);
}

static size_t count_names(const char *const *names)
{
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    return n;
}

/* A new valid value for one scalar field (or absent, where that is allowed). */
static void random_value(const struct plan_field *f, void *base, uint64_t *s)
{
    char text[64];
    char *cbase = base;
    int may_clear = !(f->flags & (PLAN_FF_DRAFT | PLAN_FF_KEY));
    switch (f->type) {
    case PLAN_F_STRING:
    case PLAN_F_DATE:
    case PLAN_F_DATETIME:
    case PLAN_F_NHS:
    case PLAN_F_UUID: {
        static const char *const nhs[] = {"9434765919", "9876543210", "4010232137"};
        char **slot = (char **)(cbase + f->offset);
        if (f->type == PLAN_F_UUID)
            return;
        if (may_clear && pick(s, 4) == 0) {
            cmc_free(*slot);
            *slot = NULL;
            return;
        }
        if (f->type == PLAN_F_DATE)
            snprintf(text, sizeof text, "20%02u-%02u-%02u", pick(s, 40), 1 + pick(s, 12), 1 + pick(s, 28));
        else if (f->type == PLAN_F_DATETIME)
            snprintf(text, sizeof text, "20%02u-%02u-%02uT%02u:%02u:00Z", pick(s, 40), 1 + pick(s, 12),
                     1 + pick(s, 28), pick(s, 24), pick(s, 60));
        else if (f->type == PLAN_F_NHS)
            snprintf(text, sizeof text, "%s", nhs[pick(s, 3)]);
        else
            snprintf(text, sizeof text, "text %u", pick(s, 1000));
        cmc_free(*slot);
        *slot = cmc_strdup(text);
        return;
    }
    case PLAN_F_BOOL:
        /* A second primary diagnosis would be invalid; keep `primary` off. */
        *(int *)(cbase + f->offset) = strcmp(f->path, "primary") == 0 ? (int)pick(s, 2) - 1
                                                                      : (int)pick(s, 3) - 1;
        return;
    case PLAN_F_ENUM:
        *(int *)(cbase + f->offset) = (int)pick(s, (unsigned)count_names(f->enum_names) + 1);
        return;
    case PLAN_F_PLACES: {
        struct plan_places *pl = (struct plan_places *)(cbase + f->offset);
        int used[8] = {0};
        pl->n = pick(s, PLAN_MAX_PLACES + 1);
        for (size_t i = 0; i < pl->n; i++) {
            int v;
            do
                v = 1 + (int)pick(s, (unsigned)count_names(f->enum_names));
            while (used[v]);
            used[v] = 1;
            pl->v[i] = v;
        }
        return;
    }
    case PLAN_F_INT:
        *(int64_t *)(cbase + f->offset) = pick(s, 100);
        return;
    case PLAN_F_LIST:
        return;
    }
}

static void set_list(const struct plan_field *f, struct plan *p, void *items, size_t n)
{
    memcpy((char *)p + f->offset, &items, sizeof items);
    memcpy((char *)p + f->list->count_offset, &n, sizeof n);
}

static void random_list_edit(const struct plan_field *f, struct plan *p, uint64_t *s, unsigned *serial)
{
    size_t n = 0, size = f->list->item_size;
    char *items = plan_list_items(f, p, &n);
    switch (pick(s, 4)) {
    case 0: { /* add a new item at a random position */
        if (n >= 10)
            return;
        items = cmc_realloc(items, (n + 1) * size);
        assert_non_null(items);
        size_t at = pick(s, (unsigned)n + 1);
        memmove(items + (at + 1) * size, items + at * size, (n - at) * size);
        plan_item_init(f->list, items + at * size);
        char id[16];
        snprintf(id, sizeof id, "n%u", (*serial)++);
        *(char **)(items + at * size + f->list->fields[0].offset) = cmc_strdup(id);
        for (size_t k = 1; k < f->list->n_fields; k++)
            random_value(&f->list->fields[k], items + at * size, s);
        set_list(f, p, items, n + 1);
        return;
    }
    case 1: { /* remove */
        if (n == 0)
            return;
        size_t at = pick(s, (unsigned)n);
        plan_item_free(f->list, items + at * size);
        memmove(items + at * size, items + (at + 1) * size, (n - at - 1) * size);
        set_list(f, p, items, n - 1);
        return;
    }
    case 2: /* update a field of an item */
        if (n == 0)
            return;
        random_value(&f->list->fields[1 + pick(s, (unsigned)f->list->n_fields - 1)],
                     items + pick(s, (unsigned)n) * size, s);
        return;
    default: { /* swap two items */
        char tmp[256];
        if (n < 2)
            return;
        size_t a = pick(s, (unsigned)n), b = pick(s, (unsigned)n);
        assert_true(size <= sizeof tmp);
        memcpy(tmp, items + a * size, size);
        memcpy(items + a * size, items + b * size, size);
        memcpy(items + b * size, tmp, size);
        return;
    }
    }
}

static void random_edits(struct plan *p, uint64_t *s, int meta, unsigned *serial)
{
    unsigned edits = 1 + pick(s, 8);
    for (unsigned e = 0; e < edits; e++) {
        const struct plan_field *f = &plan_fields[1 + pick(s, (unsigned)plan_n_fields - 1)];
        /* Lists are a few rows of the table but most of the interest: favour them. */
        if (pick(s, 2) == 0)
            while (f->type != PLAN_F_LIST)
                f = &plan_fields[1 + pick(s, (unsigned)plan_n_fields - 1)];
        if ((f->flags & PLAN_FF_META) && !meta)
            continue;
        if (f->type == PLAN_F_LIST)
            random_list_edit(f, p, s, serial);
        else
            random_value(f, p, s);
    }
}

static void test_diff_then_apply_reproduces_target(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned serial = 0;
    size_t kinds[5] = {0};
    struct plan base;
    load_base(&base);
    for (int round = 0; round < 400; round++) {
        struct plan from, to, got;
        struct plan_change d, back;
        uint8_t *bytes = NULL;
        size_t len = 0;
        int meta = round % 2;
        assert_int_equal(plan_copy(&from, &base), CMC_OK);
        random_edits(&from, &seed, meta, &serial);
        assert_int_equal(plan_copy(&to, &from), CMC_OK);
        random_edits(&to, &seed, meta, &serial);
        if (plan_validate(&from, PLAN_CHECK_DRAFT) != CMC_OK || plan_validate(&to, PLAN_CHECK_DRAFT) != CMC_OK)
            fail_msg("round %d: generator made an invalid plan: %s", round, cmc_errmsg());

        assert_int_equal(plan_change_diff(&from, &to, &d), CMC_OK);
        assert_int_equal(d.n_ops == 0, plan_equal(&from, &to));
        for (size_t i = 0; i < d.n_ops; i++)
            kinds[d.ops[i].kind]++;
        assert_int_equal(plan_copy(&got, &from), CMC_OK);
        if (plan_change_apply(&got, &d) != CMC_OK)
            fail_msg("round %d: %s", round, cmc_errmsg());
        assert_true(plan_equal(&got, &to));
        plan_free(&got);

        /* The same through msgpack. */
        assert_int_equal(plan_change_pack(&d, &bytes, &len), CMC_OK);
        assert_int_equal(plan_change_unpack(bytes, len, &back), CMC_OK);
        assert_int_equal(back.n_ops, d.n_ops);
        assert_int_equal(plan_copy(&got, &from), CMC_OK);
        assert_int_equal(plan_change_apply(&got, &back), CMC_OK);
        assert_true(plan_equal(&got, &to));
        plan_free(&got);
        plan_change_free(&back);
        cmc_free(bytes);

        /* And through JSON when no metadata moved (a document may not set metadata). */
        if (!meta) {
            char *json = NULL;
            size_t jlen = 0;
            assert_int_equal(plan_change_to_json(&d, &json, &jlen), CMC_OK);
            if (plan_change_from_json(json, jlen, &back) != CMC_OK)
                fail_msg("round %d: %s", round, cmc_errmsg());
            assert_int_equal(plan_copy(&got, &from), CMC_OK);
            assert_int_equal(plan_change_apply(&got, &back), CMC_OK);
            assert_true(plan_equal(&got, &to));
            plan_free(&got);
            plan_change_free(&back);
            cmc_free(json);
        }
        plan_change_free(&d);
        plan_free(&from);
        plan_free(&to);
    }
    /* The generator exercised every kind of op. */
    for (int k = PLAN_OP_SET; k <= PLAN_OP_REMOVE; k++)
        if (kinds[k] < 100)
            fail_msg("only %zu ops of kind %d", kinds[k], k);
    plan_free(&base);
}

static void test_diff_shapes(void **state)
{
    (void)state;
    struct plan a, b;
    struct plan_change d;
    load_base(&a);
    assert_int_equal(plan_copy(&b, &a), CMC_OK);
    assert_int_equal(plan_change_diff(&a, &b, &d), CMC_OK);
    assert_int_equal(d.n_ops, 0);
    plan_change_free(&d);
    /* One changed item field: a single UPDATE naming only that field. */
    cmc_free(b.medications[1].dose);
    b.medications[1].dose = cmc_strdup("5 mg");
    b.version = 5;
    assert_int_equal(plan_change_diff(&a, &b, &d), CMC_OK);
    assert_int_equal(d.n_ops, 2);
    assert_int_equal(d.ops[0].kind, PLAN_OP_SET);
    assert_string_equal(d.ops[0].field->path, "version");
    assert_int_equal(d.values.version, 5);
    assert_int_equal(d.ops[1].kind, PLAN_OP_UPDATE);
    assert_string_equal(d.ops[1].item_id, "m2");
    assert_int_equal(d.ops[1].item_mask, 1u << 2); /* fields[2] is dose */
    plan_change_free(&d);
    /* Swapping two contacts: the moved tail is removed and re-added in order. */
    struct plan_contact t = b.contacts[0];
    b.contacts[0] = b.contacts[1];
    b.contacts[1] = t;
    assert_int_equal(plan_change_diff(&a, &b, &d), CMC_OK);
    assert_int_equal(plan_change_apply(&a, &d), CMC_OK);
    assert_true(plan_equal(&a, &b));
    plan_change_free(&d);
    /* Different plans cannot be diffed. */
    b.plan_id[0] = '0';
    assert_int_equal(plan_change_diff(&a, &b, &d), CMC_ERR_INVALID);
    plan_free(&a);
    plan_free(&b);
}

/* ---- msgpack form ---------------------------------------------------------------------- */

static void test_change_msgpack_round_trip_and_strictness(void **state)
{
    (void)state;
    struct plan_change c, back;
    uint8_t *b = NULL, *b2 = NULL;
    size_t len = 0, len2 = 0;
    char *j1 = NULL, *j2 = NULL;
    size_t l1 = 0, l2 = 0;
    assert_int_equal(plan_change_from_json(cli_change, strlen(cli_change), &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &b, &len), CMC_OK);
    assert_int_equal(plan_change_unpack(b, len, &back), CMC_OK);
    assert_int_equal(plan_change_pack(&back, &b2, &len2), CMC_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(b, b2, len);
    assert_int_equal(plan_change_to_json(&c, &j1, &l1), CMC_OK);
    assert_int_equal(plan_change_to_json(&back, &j2, &l2), CMC_OK);
    assert_string_equal(j1, j2);
    /* Every truncation is refused, as are trailing bytes. */
    for (size_t cut = 0; cut < len; cut++) {
        struct plan_change t;
        assert_int_not_equal(plan_change_unpack(b, cut, &t), CMC_OK);
        assert_int_equal(t.n_ops, 0);
    }
    uint8_t *longer = cmc_malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0x00;
    {
        struct plan_change t;
        assert_int_equal(plan_change_unpack(longer, len + 1, &t), CMC_ERR_CORRUPT);
        assert_int_equal(t.n_ops, 0);
    }
    cmc_free(longer);
    /* Structural refusals. */
    static const struct {
        uint8_t bytes[16];
        size_t len;
    } bad[] = {
        {{0x91, 0x93, 0x05, 32, 0xa1, 'x'}, 6},                 /* unknown op kind */
        {{0x91, 0x93, 0x01, 99, 0xa1, 'x'}, 6},                 /* unknown field */
        {{0x91, 0x93, 0x01, 34, 0x90}, 5},                      /* SET of a list */
        {{0x91, 0x93, 0x04, 32, 0xa2, 'm', '1'}, 7},            /* REMOVE on a non-list */
        {{0x91, 0x93, 0x01, 1, 0xc0}, 5},                       /* SET of plan_id */
        {{0x92, 0x93, 0x01, 32, 0xc0, 0x93, 0x01, 32, 0xc0}, 9}, /* same field set twice */
        {{0x91, 0x92, 0x01, 32}, 4},                            /* op of 2 elements */
        {{0x91, 0x93, 0x04, 34, 0xa3, 'm', ' ', '1'}, 8},       /* bad item id */
        {{0x91, 0x93, 0x02, 34, 0x81, 0x02, 0xa1, 'x'}, 8},     /* ADD without an id */
        {{0x91, 0x93, 0x02, 34, 0x81, 0x01, 0xc0}, 7},          /* nil id */
        {{0xdd, 0xff, 0xff, 0xff, 0xff, 0x90}, 6},               /* hostile count */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct plan_change t;
        int rc = plan_change_unpack(bad[i].bytes, bad[i].len, &t);
        if (rc != CMC_ERR_CORRUPT && rc != CMC_ERR_TOO_LARGE)
            fail_msg("case %zu: rc %d", i, rc);
        assert_int_equal(t.n_ops, 0);
    }
    plan_change_free(&c);
    plan_change_free(&back);
    cmc_free(b);
    cmc_free(b2);
    cmc_free(j1);
    cmc_free(j2);
}

/* ---- out of memory --------------------------------------------------------------------- */

static void test_out_of_memory(void **state)
{
    (void)state;
    struct plan p, orig, target;
    struct plan_change c, d;
    uint8_t *b = NULL;
    size_t len = 0;
    load_base(&p);
    assert_int_equal(plan_copy(&orig, &p), CMC_OK);
    assert_int_equal(plan_change_from_json(cli_change, strlen(cli_change), &c), CMC_OK);
    assert_int_equal(plan_copy(&target, &p), CMC_OK);
    assert_int_equal(plan_change_apply(&target, &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &b, &len), CMC_OK);
    for (int which = 0; which < 5; which++) {
        int rc = CMC_ERR_NOMEM;
        long n;
        for (n = 0; n < 100000; n++) {
            char *json = NULL;
            size_t jl = 0;
            cmc_alloc_fail_after(n, 1);
            switch (which) {
            case 0: rc = plan_change_apply(&p, &c); break;
            case 1: rc = plan_change_from_json(cli_change, strlen(cli_change), &d); break;
            case 2: rc = plan_change_unpack(b, len, &d); break;
            case 3: rc = plan_change_diff(&orig, &target, &d); break;
            default: rc = plan_change_to_json(&c, &json, &jl); break;
            }
            cmc_alloc_fail_after(-1, 0);
            if (rc == CMC_OK) {
                if (which == 0)
                    assert_true(plan_equal(&p, &target));
                if (which >= 1 && which <= 3)
                    plan_change_free(&d);
                cmc_free(json);
                break;
            }
            if (rc != CMC_ERR_NOMEM)
                fail_msg("case %d at %ld: %d %s", which, n, rc, cmc_errmsg());
            if (which == 0)
                assert_true(plan_equal(&p, &orig)); /* all or nothing */
            else if (which != 4)
                assert_int_equal(d.n_ops, 0);
            assert_null(json);
        }
        assert_int_equal(rc, CMC_OK);
        assert_true(n > 0);
    }
    plan_change_free(&c);
    plan_free(&p);
    plan_free(&orig);
    plan_free(&target);
    cmc_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_example_applies),
        cmocka_unit_test(test_set_null_clears_and_update_null_clears),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_apply_refusals_leave_plan_unchanged),
        cmocka_unit_test(test_list_cap_enforced),
        cmocka_unit_test(test_diff_then_apply_reproduces_target),
        cmocka_unit_test(test_diff_shapes),
        cmocka_unit_test(test_change_msgpack_round_trip_and_strictness),
        cmocka_unit_test(test_out_of_memory),
    };
    plan_json_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
