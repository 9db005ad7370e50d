/*
 * plan.c - the field table, lifetime, single-field helpers and validation of the plan model.
 *
 * Wire ids are stable: they are the msgpack keys of every stored replica and every bundle
 * in flight. A retired field keeps its id forever; a new field takes the next free id.
 * docs/PROTOCOL.md lists them.
 */
#include "sync/plan.h"

#include "crypto/cry.h"
#include "sync/plan_internal.h"
#include "sync/text.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

/* ---- enumerated value names (index + 1 is the stored value) ---------------------------- */

static const char *const status_names[] = {"draft", "needs_finalisation", "awaiting_approval",
                                           "published", NULL};
static const char *const cpr_names[] = {"for_cpr", "dnacpr", "not_yet_discussed", NULL};
static const char *const consent_names[] = {"patient", "lpa", "best_interest", NULL};
static const char *const gender_names[] = {"female", "male", "other", "unknown", NULL};
static const char *const place_names[] = {"home", "hospice", "hospital", "care_home", "other",
                                          NULL};
static const char *const allergies_status_names[] = {"no_known_allergies", "not_recorded", NULL};
static const char *const severity_names[] = {"mild", "moderate", "severe", "unknown", NULL};
static const char *const role_names[] = {"gp",          "palliative_team", "lpa",   "next_of_kin",
                                         "main_carer",  "key_worker",      "other", NULL};
static const char *const preference_names[] = {"prioritise_sustaining_life", "lean_sustaining_life",
                                               "balanced", "lean_comfort", "prioritise_comfort",
                                               NULL};
static const char *const rec_names[] = {"recommended", "not_recommended", "discuss", NULL};
static const char *const capacity_names[] = {"yes", "no", "fluctuating", NULL};
static const char *const relationship_names[] = {
    "spouse",  "partner",      "son",    "daughter",  "parent",   "sibling", "grandchild",
    "other_family", "friend", "neighbour", "guardian", "other",    NULL};

/* ---- the table ------------------------------------------------------------------------- */

#define PLAN_CODE_MAX 18 /* SNOMED CT ids are 6 to 18 digits; dm+d ids are SNOMED-form */
#define FF_CODE (PLAN_FF_ED2 | PLAN_FF_CODE)

#define F(id, path, type, st, member, flags, max, names, list)                                \
    { id, path, type, offsetof(struct st, member), flags, max, names, list }
#define P(id, path, type, member, flags, max) F(id, path, type, plan, member, flags, max, NULL, NULL)
#define PE(id, path, type, member, flags, names) F(id, path, type, plan, member, flags, 0, names, NULL)

static const struct plan_field diagnosis_fields[] = {
    F(1, "id", PLAN_F_STRING, plan_diagnosis, id, PLAN_FF_KEY | PLAN_FF_DRAFT, PLAN_ITEM_ID_MAX, NULL, NULL),
    F(2, "text", PLAN_F_STRING, plan_diagnosis, text, PLAN_FF_REQUIRED, PLAN_MAX_SHORT, NULL, NULL),
    F(3, "primary", PLAN_F_BOOL, plan_diagnosis, primary, 0, 0, NULL, NULL),
    F(4, "snomed", PLAN_F_STRING, plan_diagnosis, snomed, FF_CODE, PLAN_CODE_MAX, NULL, NULL),
};
static const struct plan_field medication_fields[] = {
    F(1, "id", PLAN_F_STRING, plan_medication, id, PLAN_FF_KEY | PLAN_FF_DRAFT, PLAN_ITEM_ID_MAX, NULL, NULL),
    F(2, "name", PLAN_F_STRING, plan_medication, name, PLAN_FF_REQUIRED, PLAN_MAX_SHORT, NULL, NULL),
    F(3, "dose", PLAN_F_STRING, plan_medication, dose, 0, PLAN_MAX_SHORT, NULL, NULL),
    F(4, "anticipatory", PLAN_F_BOOL, plan_medication, anticipatory, 0, 0, NULL, NULL),
    F(5, "dmd", PLAN_F_STRING, plan_medication, dmd, FF_CODE, PLAN_CODE_MAX, NULL, NULL),
};
static const struct plan_field allergy_fields[] = {
    F(1, "id", PLAN_F_STRING, plan_allergy, id, PLAN_FF_KEY | PLAN_FF_DRAFT, PLAN_ITEM_ID_MAX, NULL, NULL),
    F(2, "substance", PLAN_F_STRING, plan_allergy, substance, PLAN_FF_REQUIRED, PLAN_MAX_SHORT, NULL, NULL),
    F(3, "reaction", PLAN_F_STRING, plan_allergy, reaction, 0, PLAN_MAX_SHORT, NULL, NULL),
    F(4, "severity", PLAN_F_ENUM, plan_allergy, severity, 0, 0, severity_names, NULL),
    F(5, "snomed", PLAN_F_STRING, plan_allergy, snomed, FF_CODE, PLAN_CODE_MAX, NULL, NULL),
};
static const struct plan_field contact_fields[] = {
    F(1, "id", PLAN_F_STRING, plan_contact, id, PLAN_FF_KEY | PLAN_FF_DRAFT, PLAN_ITEM_ID_MAX, NULL, NULL),
    F(2, "role", PLAN_F_ENUM, plan_contact, role, PLAN_FF_REQUIRED, 0, role_names, NULL),
    F(3, "name", PLAN_F_STRING, plan_contact, name, PLAN_FF_REQUIRED, PLAN_MAX_SHORT, NULL, NULL),
    F(4, "phone", PLAN_F_STRING, plan_contact, phone, 0, PLAN_MAX_SHORT, NULL, NULL),
    F(5, "available", PLAN_F_STRING, plan_contact, available, 0, PLAN_MAX_SHORT, NULL, NULL),
    F(6, "relationship", PLAN_F_ENUM, plan_contact, relationship, PLAN_FF_ED2, 0, relationship_names, NULL),
};
static const struct plan_field problem_fields[] = {
    F(1, "id", PLAN_F_STRING, plan_problem, id, PLAN_FF_KEY | PLAN_FF_DRAFT, PLAN_ITEM_ID_MAX, NULL, NULL),
    F(2, "problem", PLAN_F_STRING, plan_problem, problem, PLAN_FF_REQUIRED, PLAN_MAX_SHORT, NULL, NULL),
    F(3, "guidance", PLAN_F_STRING, plan_problem, guidance, 0, PLAN_MAX_TEXT, NULL, NULL),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define LIST(st, count, fields)                                                            \
    { sizeof(struct st), offsetof(struct plan, count), fields, NELEM(fields), PLAN_MAX_ITEMS }

static const struct plan_list_desc diagnoses_list = LIST(plan_diagnosis, n_diagnoses, diagnosis_fields);
static const struct plan_list_desc medications_list = LIST(plan_medication, n_medications, medication_fields);
static const struct plan_list_desc allergies_list = LIST(plan_allergy, n_allergies, allergy_fields);
static const struct plan_list_desc contacts_list = LIST(plan_contact, n_contacts, contact_fields);
static const struct plan_list_desc problems_list = LIST(plan_problem, n_anticipated_problems, problem_fields);

#define L(id, path, member, list) F(id, path, PLAN_F_LIST, plan, member, 0, 0, NULL, list)

enum {
    FF_ID = PLAN_FF_IDENTITY | PLAN_FF_DRAFT | PLAN_FF_REQUIRED,
    FF_REQ = PLAN_FF_REQUIRED,
    FF_META = PLAN_FF_META,
    FF_ED2 = PLAN_FF_ED2,
};

/* A recommendation and its note take two consecutive ids. */
#define REC(id, name, member)                                                              \
    PE(id, "recommendations." name, PLAN_F_ENUM, recommendations.member.value, FF_ED2, rec_names), \
    P(id + 1, "recommendations." name "_note", PLAN_F_STRING, recommendations.member.note,   \
      FF_ED2, PLAN_MAX_TEXT)

/* In the order of examples/plan.json, which is also ascending wire id order (the msgpack
 * writer walks the table and the reader insists on ascending ids). */
const struct plan_field plan_fields[] = {
    P(1, "plan_id", PLAN_F_UUID, plan_id, PLAN_FF_KEY | PLAN_FF_DRAFT | PLAN_FF_REQUIRED, PLAN_ID_LEN),
    P(2, "nhs_number", PLAN_F_NHS, nhs_number, FF_ID, PLAN_NHS_LEN),
    P(3, "patient.given_name", PLAN_F_STRING, patient.given_name, FF_ID, PLAN_MAX_SHORT),
    P(4, "patient.family_name", PLAN_F_STRING, patient.family_name, FF_ID, PLAN_MAX_SHORT),
    P(5, "patient.preferred_name", PLAN_F_STRING, patient.preferred_name, 0, PLAN_MAX_SHORT),
    P(6, "patient.date_of_birth", PLAN_F_DATE, patient.date_of_birth, FF_ID, 10),
    PE(7, "patient.gender", PLAN_F_ENUM, patient.gender, 0, gender_names),
    P(8, "patient.address", PLAN_F_STRING, patient.address, 0, PLAN_MAX_SHORT),
    P(9, "patient.postcode", PLAN_F_STRING, patient.postcode, PLAN_FF_IDENTITY, PLAN_MAX_SHORT),
    P(10, "patient.phone", PLAN_F_STRING, patient.phone, 0, PLAN_MAX_SHORT),
    P(11, "patient.language", PLAN_F_STRING, patient.language, 0, PLAN_MAX_SHORT),
    P(12, "patient.interpreter_needed", PLAN_F_BOOL, patient.interpreter_needed, 0, 0),
    P(13, "region", PLAN_F_STRING, region, 0, PLAN_MAX_SHORT),
    P(14, "team", PLAN_F_STRING, team, 0, PLAN_MAX_SHORT),
    P(15, "care_home", PLAN_F_STRING, care_home, 0, PLAN_MAX_SHORT),
    PE(16, "consent.basis", PLAN_F_ENUM, consent.basis, FF_REQ, consent_names),
    P(17, "consent.recorded_at", PLAN_F_DATETIME, consent.recorded_at, FF_REQ, 20),
    P(18, "consent.recorded_by", PLAN_F_STRING, consent.recorded_by, FF_REQ, PLAN_MAX_SHORT),
    PE(19, "resuscitation.decision", PLAN_F_ENUM, resuscitation.decision, FF_REQ, cpr_names),
    P(20, "resuscitation.decided_at", PLAN_F_DATE, resuscitation.decided_at, 0, 10),
    P(21, "resuscitation.decided_by", PLAN_F_STRING, resuscitation.decided_by, 0, PLAN_MAX_SHORT),
    P(22, "resuscitation.form_location", PLAN_F_STRING, resuscitation.form_location, 0, PLAN_MAX_SHORT),
    P(23, "resuscitation.review_date", PLAN_F_DATE, resuscitation.review_date, 0, 10),
    P(24, "resuscitation.patient_aware", PLAN_F_BOOL, resuscitation.patient_aware, 0, 0),
    P(25, "resuscitation.family_aware", PLAN_F_BOOL, resuscitation.family_aware, 0, 0),
    P(26, "ceiling_of_treatment", PLAN_F_STRING, ceiling_of_treatment, 0, PLAN_MAX_TEXT),
    P(27, "hospital_admission_wanted", PLAN_F_BOOL, hospital_admission_wanted, 0, 0),
    P(28, "adrt.exists", PLAN_F_BOOL, adrt.exists, 0, 0),
    P(29, "adrt.location", PLAN_F_STRING, adrt.location, 0, PLAN_MAX_SHORT),
    PE(30, "preferred_place_of_care", PLAN_F_PLACES, preferred_place_of_care, 0, place_names),
    PE(31, "preferred_place_of_death", PLAN_F_PLACES, preferred_place_of_death, 0, place_names),
    P(32, "prognosis", PLAN_F_STRING, prognosis, 0, PLAN_MAX_SHORT),
    L(33, "diagnoses", diagnoses, &diagnoses_list),
    L(34, "medications", medications, &medications_list),
    P(35, "anticipatory_medicines_location", PLAN_F_STRING, anticipatory_medicines_location, 0, PLAN_MAX_SHORT),
    L(36, "allergies", allergies, &allergies_list),
    L(37, "contacts", contacts, &contacts_list),
    P(38, "social_support", PLAN_F_STRING, social_support, 0, PLAN_MAX_TEXT),
    P(39, "what_matters_to_me", PLAN_F_STRING, what_matters_to_me, 0, PLAN_MAX_TEXT),
    L(40, "anticipated_problems", anticipated_problems, &problems_list),
    P(41, "organ_donation", PLAN_F_STRING, organ_donation, 0, PLAN_MAX_SHORT),
    PE(42, "status", PLAN_F_ENUM, status, FF_META | FF_REQ, status_names),
    P(43, "version", PLAN_F_INT, version, FF_META | FF_REQ, 0),
    P(44, "approved_by", PLAN_F_STRING, approved_by, FF_META, PLAN_MAX_SHORT),
    P(45, "approved_at", PLAN_F_DATETIME, approved_at, FF_META, 20),
    P(46, "review_due", PLAN_F_DATE, review_due, FF_META, 10),
    P(47, "updated_at", PLAN_F_DATETIME, updated_at, FF_META | FF_REQ, 20),
    /* second edition: ids 48 onwards; the JSON form leaves them out when absent */
    PE(48, "preferences.scale", PLAN_F_ENUM, preferences.scale, FF_ED2, preference_names),
    P(49, "preferences.note", PLAN_F_STRING, preferences.note, FF_ED2, PLAN_MAX_TEXT),
    REC(50, "cpr", cpr),
    REC(52, "hospital_admission", hospital_admission),
    REC(54, "critical_care", critical_care),
    REC(56, "noninvasive_ventilation", noninvasive_ventilation),
    REC(58, "intubation", intubation),
    REC(60, "iv_antibiotics", iv_antibiotics),
    REC(62, "nutrition_hydration", nutrition_hydration),
    P(64, "recommendations.other", PLAN_F_STRING, recommendations.other, FF_ED2, PLAN_MAX_TEXT),
    P(65, "recommendations.recommended_by", PLAN_F_STRING, recommendations.recommended_by, FF_ED2, PLAN_MAX_SHORT),
    P(66, "recommendations.recommended_at", PLAN_F_DATE, recommendations.recommended_at, FF_ED2, 10),
    PE(67, "capacity.has_capacity", PLAN_F_ENUM, capacity.has_capacity, FF_ED2, capacity_names),
    P(68, "capacity.assessed_at", PLAN_F_DATE, capacity.assessed_at, FF_ED2, 10),
    P(69, "capacity.assessed_by", PLAN_F_STRING, capacity.assessed_by, FF_ED2, PLAN_MAX_SHORT),
    P(70, "capacity.lpa_health_welfare", PLAN_F_BOOL, capacity.lpa_health_welfare, FF_ED2, 0),
    P(71, "capacity.lpa_registered", PLAN_F_BOOL, capacity.lpa_registered, FF_ED2, 0),
    P(72, "capacity.lpa_contact", PLAN_F_STRING, capacity.lpa_contact, FF_ED2 | PLAN_FF_REF, PLAN_ITEM_ID_MAX),
    P(73, "capacity.deputy", PLAN_F_STRING, capacity.deputy, FF_ED2, PLAN_MAX_SHORT),
    P(74, "capacity.parental_responsibility_contact", PLAN_F_STRING,
      capacity.parental_responsibility_contact, FF_ED2 | PLAN_FF_REF, PLAN_ITEM_ID_MAX),
    P(75, "capacity.gillick_competent", PLAN_F_BOOL, capacity.gillick_competent, FF_ED2, 0),
    P(76, "capacity.imca_involved", PLAN_F_BOOL, capacity.imca_involved, FF_ED2, 0),
    P(77, "adrt.refuses", PLAN_F_STRING, adrt.refuses, FF_ED2, PLAN_MAX_TEXT),
    P(78, "adrt.circumstances", PLAN_F_STRING, adrt.circumstances, FF_ED2, PLAN_MAX_TEXT),
    P(79, "adrt.life_sustaining", PLAN_F_BOOL, adrt.life_sustaining, FF_ED2, 0),
    P(80, "adrt.signed_witnessed", PLAN_F_BOOL, adrt.signed_witnessed, FF_ED2, 0),
    P(81, "communication.needs", PLAN_F_STRING, communication.needs, FF_ED2, PLAN_MAX_TEXT),
    P(82, "communication.adjustments", PLAN_F_STRING, communication.adjustments, FF_ED2, PLAN_MAX_TEXT),
    P(83, "safety.risk_to_staff", PLAN_F_STRING, safety.risk_to_staff, FF_ED2, PLAN_MAX_TEXT),
    P(84, "safety.access", PLAN_F_STRING, safety.access, FF_ED2, PLAN_MAX_TEXT),
    P(85, "safety.pets", PLAN_F_STRING, safety.pets, FF_ED2, PLAN_MAX_SHORT),
    P(86, "devices.icd", PLAN_F_BOOL, devices.icd, FF_ED2, 0),
    P(87, "devices.icd_shocks_deactivated", PLAN_F_BOOL, devices.icd_shocks_deactivated, FF_ED2, 0),
    P(88, "devices.syringe_driver", PLAN_F_BOOL, devices.syringe_driver, FF_ED2, 0),
    P(89, "devices.home_oxygen", PLAN_F_BOOL, devices.home_oxygen, FF_ED2, 0),
    P(90, "devices.other", PLAN_F_STRING, devices.other, FF_ED2, PLAN_MAX_SHORT),
    P(91, "care_home_address", PLAN_F_STRING, care_home_address, FF_ED2, PLAN_MAX_SHORT),
    PE(92, "allergies_status", PLAN_F_ENUM, allergies_status, FF_ED2, allergies_status_names),
};
const size_t plan_n_fields = NELEM(plan_fields);

/* The field of v[0..n) whose path is `path`, or NULL (also for a NULL path). */
static const struct plan_field *field_named(const struct plan_field *v, size_t n, const char *path)
{
    for (size_t i = 0; path != NULL && i < n; i++)
        if (strcmp(v[i].path, path) == 0)
            return &v[i];
    return NULL;
}

const struct plan_field *plan_field_by_path(const char *path)
{
    return field_named(plan_fields, plan_n_fields, path);
}

const struct plan_field *plan_field_by_wire_id(uint8_t wire_id)
{
    for (size_t i = 0; i < plan_n_fields; i++)
        if (plan_fields[i].wire_id == wire_id)
            return &plan_fields[i];
    return NULL;
}

const struct plan_field *plan_item_field_by_name(const struct plan_list_desc *list, const char *name)
{
    return list != NULL ? field_named(list->fields, list->n_fields, name) : NULL;
}

static size_t enum_count(const char *const *names)
{
    size_t n = 0;
    while (names != NULL && names[n] != NULL)
        n++;
    return n;
}

const char *plan_enum_name(const struct plan_field *f, int value)
{
    if (f == NULL || f->enum_names == NULL || value < 1 || (size_t)value > enum_count(f->enum_names))
        return NULL;
    return f->enum_names[value - 1];
}

static const char *name_of(const char *const *names, int value)
{
    if (value < 1 || (size_t)value > enum_count(names))
        return NULL;
    return names[value - 1];
}

const char *plan_status_name(int status) { return name_of(status_names, status); }
const char *plan_cpr_name(int decision) { return name_of(cpr_names, decision); }
const char *plan_place_name(int place) { return name_of(place_names, place); }

int plan_status_from_name(const char *name)
{
    for (size_t i = 0; name != NULL && status_names[i] != NULL; i++)
        if (strcmp(status_names[i], name) == 0)
            return (int)i + 1;
    return 0;
}

/* ---- member access --------------------------------------------------------------------- */

static char **str_at(const struct plan_field *f, const void *base)
{
    return (char **)((char *)(uintptr_t)base + f->offset);
}
static int *int_at(const struct plan_field *f, const void *base)
{
    return (int *)((char *)(uintptr_t)base + f->offset);
}
static int64_t *i64_at(const struct plan_field *f, const void *base)
{
    return (int64_t *)((char *)(uintptr_t)base + f->offset);
}
static struct plan_places *places_at(const struct plan_field *f, const void *base)
{
    return (struct plan_places *)((char *)(uintptr_t)base + f->offset);
}
/* Lists are typed pointers in struct plan; reading them through memcpy keeps the generic
 * code free of pointer-type punning. */
static void *list_get(const struct plan_field *f, const void *p, size_t *n)
{
    void *items;
    memcpy(&items, (const char *)p + f->offset, sizeof items);
    memcpy(n, (const char *)p + f->list->count_offset, sizeof *n);
    return items;
}
static void list_set(const struct plan_field *f, void *p, void *items, size_t n)
{
    memcpy((char *)p + f->offset, &items, sizeof items);
    memcpy((char *)p + f->list->count_offset, &n, sizeof n);
}

enum plan_fkind plan_field_kind(const struct plan_field *f)
{
    switch (f->type) {
    case PLAN_F_STRING:
    case PLAN_F_DATE:
    case PLAN_F_DATETIME:
    case PLAN_F_UUID:
    case PLAN_F_NHS:
        return PLAN_K_TEXT;
    case PLAN_F_BOOL:
        return PLAN_K_BOOL;
    case PLAN_F_ENUM:
        return PLAN_K_ENUM;
    case PLAN_F_PLACES:
        return PLAN_K_PLACES;
    case PLAN_F_INT:
        return PLAN_K_INT;
    case PLAN_F_LIST:
        return PLAN_K_LIST;
    }
    return PLAN_K_LIST;
}

void *plan_list_items(const struct plan_field *f, const struct plan *p, size_t *n)
{
    *n = 0;
    if (f == NULL || f->type != PLAN_F_LIST)
        return NULL;
    return list_get(f, p, n);
}

const char *plan_item_id(const struct plan_list_desc *list, const void *item)
{
    return *str_at(&list->fields[0], item);
}

int plan_list_find(const struct plan_field *f, const struct plan *p, const char *id, size_t *index)
{
    size_t n = 0;
    char *items = plan_list_items(f, p, &n);
    for (size_t i = 0; id != NULL && i < n; i++) {
        const char *iid = plan_item_id(f->list, items + i * f->list->item_size);
        if (iid != NULL && strcmp(iid, id) == 0) {
            if (index != NULL)
                *index = i;
            return 1;
        }
    }
    return 0;
}

/* ---- items ----------------------------------------------------------------------------- */

static void clear_value(const struct plan_field *f, void *base);

static void init_value(const struct plan_field *f, void *base)
{
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT:
        *str_at(f, base) = NULL;
        break;
    case PLAN_K_BOOL:
        *int_at(f, base) = PLAN_UNSET;
        break;
    case PLAN_K_ENUM:
        *int_at(f, base) = 0;
        break;
    case PLAN_K_PLACES:
        memset(places_at(f, base), 0, sizeof(struct plan_places));
        break;
    case PLAN_K_INT:
        *i64_at(f, base) = 0;
        break;
    case PLAN_K_LIST:
        list_set(f, base, NULL, 0);
        break;
    }
}

void plan_item_init(const struct plan_list_desc *list, void *item)
{
    memset(item, 0, list->item_size);
    for (size_t i = 0; i < list->n_fields; i++)
        init_value(&list->fields[i], item);
}

void plan_item_free(const struct plan_list_desc *list, void *item)
{
    if (item == NULL)
        return;
    for (size_t i = 0; i < list->n_fields; i++)
        clear_value(&list->fields[i], item);
}

int plan_item_equal(const struct plan_list_desc *list, const void *a, const void *b)
{
    for (size_t i = 0; i < list->n_fields; i++)
        if (!plan_field_equal(&list->fields[i], a, b))
            return 0;
    return 1;
}

int plan_item_copy(const struct plan_list_desc *list, void *dst, const void *src)
{
    int rc = CMC_OK;
    plan_item_init(list, dst);
    for (size_t i = 0; i < list->n_fields; i++)
        if ((rc = plan_field_copy(&list->fields[i], dst, src)) != CMC_OK) {
            plan_item_free(list, dst);
            return rc;
        }
    return CMC_OK;
}

static void free_list(const struct plan_field *f, void *base)
{
    size_t n = 0;
    char *items = list_get(f, base, &n);
    for (size_t i = 0; i < n; i++)
        plan_item_free(f->list, items + i * f->list->item_size);
    cmc_free(items);
    list_set(f, base, NULL, 0);
}

static void clear_value(const struct plan_field *f, void *base)
{
    if (plan_field_kind(f) == PLAN_K_TEXT) {
        cmc_free(*str_at(f, base));
    } else if (f->type == PLAN_F_LIST) {
        free_list(f, base);
        return;
    }
    init_value(f, base);
}

void plan_field_clear(const struct plan_field *f, void *base)
{
    clear_value(f, base);
}

/* ---- single fields --------------------------------------------------------------------- */

int plan_field_equal(const struct plan_field *f, const void *a, const void *b)
{
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *x = *str_at(f, a), *y = *str_at(f, b);
        if (x == NULL || y == NULL)
            return x == y;
        return strcmp(x, y) == 0;
    }
    case PLAN_K_BOOL:
    case PLAN_K_ENUM:
        return *int_at(f, a) == *int_at(f, b);
    case PLAN_K_PLACES: {
        const struct plan_places *x = places_at(f, a), *y = places_at(f, b);
        if (x->n != y->n)
            return 0;
        for (size_t i = 0; i < x->n && i < PLAN_MAX_PLACES; i++)
            if (x->v[i] != y->v[i])
                return 0;
        return 1;
    }
    case PLAN_K_INT:
        return *i64_at(f, a) == *i64_at(f, b);
    case PLAN_K_LIST: {
        size_t na = 0, nb = 0;
        const char *ia = list_get(f, a, &na), *ib = list_get(f, b, &nb);
        if (na != nb)
            return 0;
        for (size_t i = 0; i < na; i++)
            if (!plan_item_equal(f->list, ia + i * f->list->item_size, ib + i * f->list->item_size))
                return 0;
        return 1;
    }
    }
    return 0;
}

int plan_field_copy(const struct plan_field *f, void *dst, const void *src)
{
    if (dst == src)
        return CMC_OK;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = *str_at(f, src);
        char *copy = NULL;
        if (s != NULL && (copy = cmc_strdup(s)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
        cmc_free(*str_at(f, dst));
        *str_at(f, dst) = copy;
        return CMC_OK;
    }
    case PLAN_K_BOOL:
    case PLAN_K_ENUM:
        *int_at(f, dst) = *int_at(f, src);
        return CMC_OK;
    case PLAN_K_PLACES:
        *places_at(f, dst) = *places_at(f, src);
        return CMC_OK;
    case PLAN_K_INT:
        *i64_at(f, dst) = *i64_at(f, src);
        return CMC_OK;
    case PLAN_K_LIST: {
        size_t n = 0, done;
        const char *from = list_get(f, src, &n);
        char *items = NULL;
        size_t size = f->list->item_size;
        if (n > 0 && (items = cmc_calloc(n, size)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
        for (done = 0; done < n; done++)
            if (plan_item_copy(f->list, items + done * size, from + done * size) != CMC_OK)
                break;
        if (done < n) {
            for (size_t i = 0; i < done; i++)
                plan_item_free(f->list, items + i * size);
            cmc_free(items);
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
        }
        free_list(f, dst);
        list_set(f, dst, items, n);
        return CMC_OK;
    }
    }
    return cmc_fail(CMC_ERR_INVALID, "%s: unknown field type", f->path);
}

/* ---- lifetime -------------------------------------------------------------------------- */

void plan_init(struct plan *p)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < plan_n_fields; i++)
        init_value(&plan_fields[i], p);
}

void plan_free(struct plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < plan_n_fields; i++)
        clear_value(&plan_fields[i], p);
    cmc_free(p->unknown.bytes);
    plan_init(p);
}

int plan_copy(struct plan *dst, const struct plan *src)
{
    int rc;
    plan_init(dst);
    for (size_t i = 0; i < plan_n_fields; i++)
        if ((rc = plan_field_copy(&plan_fields[i], dst, src)) != CMC_OK) {
            plan_free(dst);
            return rc;
        }
    if (src->unknown.len > 0) {
        if ((dst->unknown.bytes = cmc_malloc(src->unknown.len)) == NULL) {
            plan_free(dst);
            return cmc_fail(CMC_ERR_NOMEM, "plan: out of memory");
        }
        memcpy(dst->unknown.bytes, src->unknown.bytes, src->unknown.len);
        dst->unknown.len = src->unknown.len;
        dst->unknown.count = src->unknown.count;
    }
    return CMC_OK;
}

int plan_equal(const struct plan *a, const struct plan *b)
{
    for (size_t i = 0; i < plan_n_fields; i++)
        if (!plan_field_equal(&plan_fields[i], a, b))
            return 0;
    return a->unknown.count == b->unknown.count && a->unknown.len == b->unknown.len &&
           (a->unknown.len == 0 || memcmp(a->unknown.bytes, b->unknown.bytes, a->unknown.len) == 0);
}

/* ---- validation ------------------------------------------------------------------------ */

int plan_nhs_check_digit(const char *nine)
{
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (nine[i] - '0') * (10 - i);
    int check = (11 - sum % 11) % 11; /* a remainder of 0 gives 0, not 11 */
    return check == 10 ? -1 : check;  /* no valid number has 10 for its check digit */
}

int plan_nhs_valid(const char *s)
{
    if (s == NULL || strlen(s) != PLAN_NHS_LEN)
        return 0;
    for (int i = 0; i < PLAN_NHS_LEN; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    int check = plan_nhs_check_digit(s);
    return check >= 0 && s[9] - '0' == check;
}

int plan_nhs_normalise(const char *in, char out[PLAN_NHS_LEN + 1])
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *c = in; c != NULL && *c != '\0'; c++) {
        if (*c == ' ' || *c == '-')
            continue;
        if (*c < '0' || *c > '9' || n == PLAN_NHS_LEN) {
            out[0] = '\0';
            return cmc_fail(CMC_ERR_INVALID, "NHS number must be 10 digits");
        }
        out[n++] = *c;
    }
    out[n] = '\0';
    if (n != PLAN_NHS_LEN) {
        out[0] = '\0';
        return cmc_fail(CMC_ERR_INVALID, "NHS number must be 10 digits");
    }
    if (!plan_nhs_valid(out)) {
        out[0] = '\0';
        return cmc_fail(CMC_ERR_INVALID, "NHS number check digit is wrong");
    }
    return CMC_OK;
}

int plan_item_id_valid(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= PLAN_ITEM_ID_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* Well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        if (s[i] < 0x80)
            k = 1;
        else if ((k = text_decode(s + i, n - i, &cp)) == 0)
            return 0;
    }
    return 1;
}

int plan_uuid_valid_n(const char *s, size_t len)
{
    if (s == NULL || len != PLAN_ID_LEN)
        return 0;
    for (size_t i = 0; i < PLAN_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

int plan_uuid_valid(const char *s)
{
    return s != NULL && plan_uuid_valid_n(s, strlen(s));
}

void plan_uuid_new(char out[PLAN_ID_LEN + 1])
{
    uint8_t b[16];
    char hex[33];
    cry_random(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    cry_hex(hex, b, sizeof b);
    snprintf(out, PLAN_ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int plan_uuid_bytes(const char *s, uint8_t out[16])
{
    char hex[33];
    size_t n = 0;
    if (!plan_uuid_valid(s))
        return cmc_fail(CMC_ERR_INVALID, "not a UUID");
    for (size_t i = 0; s[i] != '\0'; i++)
        if (s[i] != '-')
            hex[n++] = s[i];
    hex[n] = '\0';
    return cry_unhex(out, 16, hex);
}

void plan_enum_list(const struct plan_field *f, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; f->enum_names[i] != NULL; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", f->enum_names[i]);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
}

static int is_present(const struct plan_field *f, const void *base)
{
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = *str_at(f, base);
        return s != NULL && s[0] != '\0';
    }
    case PLAN_K_BOOL:
        return *int_at(f, base) != PLAN_UNSET;
    case PLAN_K_ENUM:
        return *int_at(f, base) != 0;
    case PLAN_K_PLACES:
        return places_at(f, base)->n > 0;
    case PLAN_K_INT:
        return *i64_at(f, base) != 0;
    case PLAN_K_LIST: {
        size_t n = 0;
        (void)list_get(f, base, &n);
        return n > 0;
    }
    }
    return 0;
}

static int check_items(const struct plan_field *f, const void *p, enum plan_check level);

int plan_value_present(const struct plan_field *f, const void *base)
{
    if (plan_field_kind(f) == PLAN_K_TEXT)
        return *str_at(f, base) != NULL;
    return is_present(f, base);
}

int plan_fail_at(int rc, const char *path)
{
    char detail[200];
    if (rc == CMC_ERR_NOMEM)
        return rc;
    snprintf(detail, sizeof detail, "%s", cmc_errmsg());
    return cmc_fail(rc, "%s: %s", path, detail);
}

/* Text a plan may hold (sync/text.h): names, phone numbers and dates are one line; free
 * text keeps newlines and tabs. The detail names the field and the code point, never the
 * text around it. */
static int check_text(const struct plan_field *f, const char *s, size_t len, const char *path)
{
    uint32_t cp;
    enum text_class cls = text_check(s, len, f->max_len <= PLAN_MAX_SHORT ? TEXT_ONE_LINE : 0, &cp);
    if (cls == TEXT_OK)
        return CMC_OK;
    if (cls == TEXT_ILL_FORMED)
        return cmc_fail(CMC_ERR_INVALID, "%s: not valid UTF-8", path);
    return cmc_fail(CMC_ERR_INVALID, "%s: contains %s (U+%04X), which could change what a screen shows", path,
                    text_class_words(cls), (unsigned)cp);
}

/* `text_strict` 0 skips check_text: a plan read back from the device's own replica, which an
 * earlier version may have written, is still shown (its printers escape what check_text
 * would refuse) rather than hidden from a crew. */
static int field_check(const struct plan_field *f, const void *base, const char *path, int text_strict)
{
    char names[160];
    int64_t t;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = *str_at(f, base);
        if (s == NULL)
            return CMC_OK;
        size_t len = strlen(s);
        if (f->max_len > 0 && len > f->max_len)
            return cmc_fail(CMC_ERR_INVALID, "%s: longer than %zu bytes", path, f->max_len);
        if (!utf8_valid((const unsigned char *)s, len))
            return cmc_fail(CMC_ERR_INVALID, "%s: not valid UTF-8", path);
        if (text_strict && (f->type == PLAN_F_STRING) && check_text(f, s, len, path) != CMC_OK)
            return CMC_ERR_INVALID;
        if (f->type == PLAN_F_DATE && (len != 10 || plat_parse_time(s, &t) != CMC_OK))
            return cmc_fail(CMC_ERR_INVALID, "%s: not a calendar date (YYYY-MM-DD)", path);
        if (f->type == PLAN_F_DATETIME && (len != 20 || plat_parse_time(s, &t) != CMC_OK))
            return cmc_fail(CMC_ERR_INVALID, "%s: not a UTC time (YYYY-MM-DDTHH:MM:SSZ)", path);
        if (f->type == PLAN_F_UUID && !plan_uuid_valid(s))
            return cmc_fail(CMC_ERR_INVALID, "%s: not a lower-case UUID", path);
        if (f->type == PLAN_F_NHS) {
            int digits = len == PLAN_NHS_LEN;
            for (size_t i = 0; digits && i < len; i++)
                digits = s[i] >= '0' && s[i] <= '9';
            if (!digits)
                return cmc_fail(CMC_ERR_INVALID, "%s: NHS number must be 10 digits", path);
            if (!plan_nhs_valid(s))
                return cmc_fail(CMC_ERR_INVALID, "%s: NHS number check digit is wrong", path);
        }
        if (f->flags & PLAN_FF_KEY && f->list == NULL && f->type == PLAN_F_STRING &&
            !plan_item_id_valid(s))
            return cmc_fail(CMC_ERR_INVALID, "%s: not a valid item id", path);
        return CMC_OK;
    }
    case PLAN_K_BOOL: {
        int v = *int_at(f, base);
        if (v != PLAN_UNSET && v != 0 && v != 1)
            return cmc_fail(CMC_ERR_INVALID, "%s: not a boolean", path);
        return CMC_OK;
    }
    case PLAN_K_ENUM: {
        int v = *int_at(f, base);
        if (v < 0 || (size_t)v > enum_count(f->enum_names)) {
            plan_enum_list(f, names, sizeof names);
            return cmc_fail(CMC_ERR_INVALID, "%s: not one of %s", path, names);
        }
        return CMC_OK;
    }
    case PLAN_K_PLACES: {
        const struct plan_places *pl = places_at(f, base);
        if (pl->n > PLAN_MAX_PLACES)
            return cmc_fail(CMC_ERR_INVALID, "%s: more than %d places", path, PLAN_MAX_PLACES);
        for (size_t i = 0; i < pl->n; i++) {
            if (pl->v[i] < 1 || (size_t)pl->v[i] > enum_count(f->enum_names)) {
                plan_enum_list(f, names, sizeof names);
                return cmc_fail(CMC_ERR_INVALID, "%s: not one of %s", path, names);
            }
            for (size_t j = 0; j < i; j++)
                if (pl->v[j] == pl->v[i])
                    return cmc_fail(CMC_ERR_INVALID, "%s: a place is listed twice", path);
        }
        return CMC_OK;
    }
    case PLAN_K_INT:
        if (*i64_at(f, base) < 0)
            return cmc_fail(CMC_ERR_INVALID, "%s: negative", path);
        return CMC_OK;
    case PLAN_K_LIST:
        return check_items(f, base, PLAN_CHECK_DRAFT);
    }
    return cmc_fail(CMC_ERR_INVALID, "%s: unknown field type", path);
}

int plan_field_check(const struct plan_field *f, const void *base, const char *path)
{
    return field_check(f, base, path, 1);
}

int plan_field_check_stored(const struct plan_field *f, const void *base, const char *path)
{
    return field_check(f, base, path, 0);
}

/* Checks one item's fields. The item is named in details by its id once the id is known to
 * be safe to print, else by its index; the name is built only when a check fails (a valid
 * plan, the common case, formats nothing). */
static int check_item(const struct plan_field *lf, const void *item, size_t index, enum plan_check level)
{
    char path[PLAN_ITEM_ID_MAX + 96], label[PLAN_ITEM_ID_MAX + 1];
    int rc;
    for (size_t k = 0; k < lf->list->n_fields; k++) {
        const struct plan_field *itf = &lf->list->fields[k];
        int required = (itf->flags & PLAN_FF_DRAFT) ||
                       (level == PLAN_CHECK_COMPLETE && (itf->flags & PLAN_FF_REQUIRED));
        int missing = required && !is_present(itf, item);
        int strict = level != PLAN_CHECK_STORED;
        if (!missing && (rc = field_check(itf, item, "", strict)) == CMC_OK)
            continue;
        if (!missing && rc == CMC_ERR_NOMEM)
            return rc;
        const char *id = plan_item_id(lf->list, item);
        if (plan_item_id_valid(id))
            snprintf(label, sizeof label, "%s", id);
        else
            snprintf(label, sizeof label, "%zu", index);
        snprintf(path, sizeof path, "%s[%s].%s", lf->path, label, itf->path);
        if (missing)
            return cmc_fail(CMC_ERR_INVALID, "%s: required", path);
        return field_check(itf, item, path, strict);
    }
    return CMC_OK;
}

static int check_items(const struct plan_field *f, const void *p, enum plan_check level)
{
    size_t n = 0, size = f->list->item_size;
    const char *items = list_get(f, p, &n);
    int rc, primaries = 0;
    if (n > f->list->max_items)
        return cmc_fail(CMC_ERR_INVALID, "%s: more than %zu items", f->path, f->list->max_items);
    for (size_t i = 0; i < n; i++) {
        const void *item = items + i * size;
        const char *id = plan_item_id(f->list, item);
        if ((rc = check_item(f, item, i, level)) != CMC_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(plan_item_id(f->list, items + j * size), id) == 0)
                return cmc_fail(CMC_ERR_INVALID, "%s[%s].id: duplicate id", f->path, id);
        if (f->list == &diagnoses_list && ((const struct plan_diagnosis *)item)->primary == 1 &&
            ++primaries > 1)
            return cmc_fail(CMC_ERR_INVALID, "%s[%s].primary: more than one primary diagnosis",
                            f->path, id); /* checked by check_item: safe to print */
    }
    return CMC_OK;
}

int plan_edition(const struct plan *p)
{
    if (p->unknown.count > 0)
        return PLAN_EDITION_CURRENT + 1;
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        if ((f->flags & PLAN_FF_ED2) && plan_value_present(f, p))
            return 2;
        if (f->type != PLAN_F_LIST)
            continue;
        size_t n = 0;
        const char *items = list_get(f, p, &n);
        for (size_t j = 0; j < n; j++)
            for (size_t k = 0; k < f->list->n_fields; k++)
                if ((f->list->fields[k].flags & PLAN_FF_ED2) &&
                    plan_value_present(&f->list->fields[k], items + j * f->list->item_size))
                    return 2;
    }
    return 1;
}

int plan_validate(const struct plan *p, enum plan_check level)
{
    int rc;
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        int required = (f->flags & PLAN_FF_DRAFT) ||
                       (level == PLAN_CHECK_COMPLETE && (f->flags & PLAN_FF_REQUIRED));
        if (required && !is_present(f, p))
            return cmc_fail(CMC_ERR_INVALID, "%s: required", f->path);
        if (f->type == PLAN_F_LIST)
            rc = check_items(f, p, level);
        else
            rc = field_check(f, p, f->path, level != PLAN_CHECK_STORED);
        if (rc != CMC_OK)
            return rc;
    }
    /* A published plan says who approved it and when. */
    if (level == PLAN_CHECK_COMPLETE && p->status == PLAN_STATUS_PUBLISHED) {
        if (p->approved_by == NULL || p->approved_by[0] == '\0')
            return cmc_fail(CMC_ERR_INVALID, "approved_by: required for a published plan");
        if (p->approved_at == NULL)
            return cmc_fail(CMC_ERR_INVALID, "approved_at: required for a published plan");
    }
    return CMC_OK;
}
