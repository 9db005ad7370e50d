/*
 * fhir_codes.c - the tables of the FHIR mapping (fhir_internal.h, docs/FHIR.md): where each
 * plan field goes, the resource ids, the ReSPECT recommendations and the SNOMED CT procedure
 * each is about, the relationship codes of the people around the patient, and the UK Core
 * human language codes.
 *
 * Only codes the mapping is sure of are listed; where no single concept fits, the mapping
 * sends text alone (a receiving system always gets the text).
 */
#include "sync/fhir_internal.h"
#include "sync/plan_internal.h"

#include "crypto/cry.h"
#include "platform/err.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- where fields go ------------------------------------------------------------------- */

static const char *const element_paths[] = {
    "plan_id", "nhs_number", "patient.given_name", "patient.family_name",
    "patient.preferred_name", "patient.date_of_birth", "patient.gender", "patient.address",
    "patient.postcode", "patient.phone", "patient.language", "patient.interpreter_needed",
    "consent.recorded_at", "resuscitation.decision", "resuscitation.decided_at",
    "resuscitation.decided_by", "resuscitation.patient_aware", "resuscitation.family_aware",
    "version", "updated_at", "review_due", "approved_by", "approved_at",
    "diagnoses", "medications", "allergies", "contacts", "anticipated_problems", NULL,
};

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum fhir_dest fhir_field_dest(const struct plan_field *f)
{
    for (size_t i = 0; element_paths[i] != NULL; i++)
        if (strcmp(f->path, element_paths[i]) == 0)
            return FHIR_DEST_ELEMENT;
    if (f->type == PLAN_F_LIST)
        return FHIR_DEST_NONE;
    if (starts_with(f->path, "patient."))
        return FHIR_DEST_PATIENT;
    if (starts_with(f->path, "consent."))
        return FHIR_DEST_CONSENT;
    if (starts_with(f->path, "resuscitation."))
        return FHIR_DEST_CPR;
    if (fhir_rec_by_path(f->path) != NULL)
        return FHIR_DEST_REC;
    if (starts_with(f->path, "recommendations.") && fhir_rec_note_of(f->path) != NULL)
        return FHIR_DEST_ELEMENT; /* on its recommendation's activity */
    if (strcmp(f->path, "adrt.refuses") == 0 || strcmp(f->path, "adrt.circumstances") == 0 ||
        strcmp(f->path, "adrt.life_sustaining") == 0 || strcmp(f->path, "adrt.signed_witnessed") == 0)
        return FHIR_DEST_ADRT;
    if ((f->flags & PLAN_FF_META) || strcmp(f->path, "region") == 0 ||
        strcmp(f->path, "team") == 0 || strcmp(f->path, "care_home") == 0)
        return FHIR_DEST_CAREPLAN;
    return FHIR_DEST_ACTIVITY;
}

static const char *const item_elements[][4] = {
    {"diagnoses", "text", NULL, NULL},
    {"medications", "name", "dose", NULL},
    {"allergies", "substance", "reaction", NULL},
    {"contacts", "name", "phone", NULL},
    {"anticipated_problems", "problem", "guidance", NULL},
};

int fhir_item_key_explicit(const char *list_path, const char *key)
{
    if (strcmp(key, "id") == 0)
        return 1;
    for (size_t i = 0; i < sizeof item_elements / sizeof item_elements[0]; i++)
        if (strcmp(item_elements[i][0], list_path) == 0)
            for (size_t k = 1; k < 4 && item_elements[i][k] != NULL; k++)
                if (strcmp(item_elements[i][k], key) == 0)
                    return 1;
    return 0;
}

const char *fhir_value_key(const struct plan_field *f)
{
    switch (f->type) {
    case PLAN_F_STRING:
    case PLAN_F_UUID:
    case PLAN_F_NHS:
        return "valueString";
    case PLAN_F_DATE:
        return "valueDate";
    case PLAN_F_DATETIME:
        return "valueDateTime";
    case PLAN_F_BOOL:
        return "valueBoolean";
    case PLAN_F_ENUM:
    case PLAN_F_PLACES:
        return "valueCode";
    case PLAN_F_INT:
        return "valueInteger";
    case PLAN_F_LIST:
        return NULL;
    }
    return NULL;
}

json_t *fhir_pj_get(json_t *root, const char *path)
{
    char key[PLAN_MAX_SHORT];
    const char *dot;
    while (root != NULL && (dot = strchr(path, '.')) != NULL) {
        size_t n = (size_t)(dot - path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        root = json_object_get(root, key);
        path = dot + 1;
    }
    return root != NULL ? json_object_get(root, path) : NULL;
}

int fhir_contact_is_related(const char *role)
{
    return role != NULL && (strcmp(role, "lpa") == 0 || strcmp(role, "next_of_kin") == 0 ||
                            strcmp(role, "main_carer") == 0);
}

/* ---- ids and references ---------------------------------------------------------------- */

int fhir_resource_id(const char *plan_id, const char *kind, const char *item_id,
                     char out[FHIR_ID_MAX + 1])
{
    uint8_t h[CRY_HASH_BYTES];
    char hex[17];
    int n;
    if (kind == NULL)
        n = snprintf(out, FHIR_ID_MAX + 1, "%s", plan_id);
    else if (item_id == NULL)
        n = snprintf(out, FHIR_ID_MAX + 1, "%s-%s", plan_id, kind);
    else {
        cry_hash(h, item_id, strlen(item_id));
        cry_hex(hex, h, 8);
        n = snprintf(out, FHIR_ID_MAX + 1, "%s-%s-%s", plan_id, kind, hex);
    }
    if (n < 0 || n > FHIR_ID_MAX)
        return cmc_fail(CMC_ERR_INVALID, "resource id: too long");
    return CMC_OK;
}

int fhir_resource_plan(const char *id, char plan_id[PLAN_ID_LEN + 1])
{
    if (id == NULL || strlen(id) < PLAN_ID_LEN || !plan_uuid_valid_n(id, PLAN_ID_LEN) ||
        (id[PLAN_ID_LEN] != '\0' && id[PLAN_ID_LEN] != '-'))
        return 0;
    memcpy(plan_id, id, PLAN_ID_LEN);
    plan_id[PLAN_ID_LEN] = '\0';
    return 1;
}

static const struct fhir_rec recs[] = {
    {"cpr", "Cardiopulmonary resuscitation (CPR)", "89666000", "Cardiopulmonary resuscitation"},
    {"hospital_admission", "Admission to hospital", "32485007", "Hospital admission"},
    {"critical_care", "Critical care (intensive care unit)", "305351004",
     "Admission to intensive care unit"},
    {"noninvasive_ventilation", "Non-invasive ventilation", "428311008", "Noninvasive ventilation"},
    {"intubation", "Intubation and mechanical ventilation", "112798008",
     "Insertion of endotracheal tube"},
    {"iv_antibiotics", "Intravenous antibiotics", "281790008", "Intravenous antibiotic therapy"},
    {"nutrition_hydration", "Clinically assisted nutrition and hydration", NULL, NULL},
};

const struct fhir_rec *fhir_rec_at(size_t i)
{
    return i < sizeof recs / sizeof recs[0] ? &recs[i] : NULL;
}

const struct fhir_rec *fhir_rec_by_path(const char *path)
{
    static const char prefix[] = "recommendations.";
    if (path == NULL || strncmp(path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        if (strcmp(path + sizeof prefix - 1, recs[i].name) == 0)
            return &recs[i];
    return NULL;
}

const struct fhir_rec *fhir_rec_note_of(const char *path)
{
    static const char prefix[] = "recommendations.", suffix[] = "_note";
    size_t n = path != NULL ? strlen(path) : 0, p = sizeof prefix - 1, sfx = sizeof suffix - 1;
    if (n <= p + sfx || strncmp(path, prefix, p) != 0 || strcmp(path + n - sfx, suffix) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        if (strlen(recs[i].name) == n - p - sfx && strncmp(path + p, recs[i].name, n - p - sfx) == 0)
            return &recs[i];
    return NULL;
}

const char *fhir_rec_words(const char *value)
{
    if (value == NULL)
        return "No recommendation recorded";
    if (strcmp(value, "recommended") == 0)
        return "Recommended";
    if (strcmp(value, "not_recommended") == 0)
        return "Not recommended: do not attempt";
    if (strcmp(value, "discuss") == 0)
        return "Discuss: the decision depends on the circumstances";
    return value;
}

/* Contact roles: HL7 v3 RoleCode, HL7 v2 table 0131 (contact role) and the UK Core
 * additional person relationship roles, the three code systems of the UK Core
 * RelatedPerson.relationship binding. */
static const struct fhir_code roles[] = {
    {"lpa", FHIR_V3_ROLE, "HPOWATT", "healthcare power of attorney"},
    {"next_of_kin", "http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin"},
    {"main_carer", "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdditionalPersonRelationshipRole",
     "Carer", "Carer of patient"},
};

/* A contact's relationship to the patient (second edition): HL7 v3 RoleCode. "other" has no
 * code and travels as text. */
static const struct fhir_code relationships[] = {
    {"spouse", FHIR_V3_ROLE, "SPS", "spouse"},
    {"partner", FHIR_V3_ROLE, "DOMPART", "domestic partner"},
    {"son", FHIR_V3_ROLE, "SONC", "son"},
    {"daughter", FHIR_V3_ROLE, "DAUC", "daughter"},
    {"parent", FHIR_V3_ROLE, "PRN", "parent"},
    {"sibling", FHIR_V3_ROLE, "SIB", "sibling"},
    {"grandchild", FHIR_V3_ROLE, "GRNDCHILD", "grandchild"},
    {"other_family", FHIR_V3_ROLE, "FAMMEMB", "family member"},
    {"friend", FHIR_V3_ROLE, "FRND", "unrelated friend"},
    {"neighbour", FHIR_V3_ROLE, "NBOR", "neighbor"},
    {"guardian", FHIR_V3_ROLE, "GUARD", "guardian"},
};

static const struct fhir_code *find(const struct fhir_code *t, size_t n, const char *key)
{
    if (key == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].key, key) == 0)
            return &t[i];
    return NULL;
}

const char *fhir_role_words(const char *role)
{
    static const char *const words[][2] = {
        {"gp", "GP"}, {"palliative_team", "Palliative care team"},
        {"lpa", "Lasting power of attorney for health and welfare"}, {"next_of_kin", "Next of kin"},
        {"main_carer", "Main carer"}, {"key_worker", "Key worker"}, {"other", "Other contact"},
    };
    if (role == NULL)
        return "Contact";
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i][0], role) == 0)
            return words[i][1];
    return role;
}

const struct fhir_code *fhir_role_code(const char *role)
{
    return find(roles, sizeof roles / sizeof roles[0], role);
}

const struct fhir_code *fhir_relationship_code(const char *relationship)
{
    return find(relationships, sizeof relationships / sizeof relationships[0], relationship);
}

/* Languages as they are written in plans, with their UK Core HumanLanguage codes (ISO 639-1,
 * and q1 to q5 for Braille and sign languages). The plan keeps the language as entered; a
 * name not in this table travels as text only. */
static const struct fhir_code languages[] = {
    {"Albanian", FHIR_UKCORE_LANGUAGE, "sq", "Albanian"},
    {"Amharic", FHIR_UKCORE_LANGUAGE, "am", "Amharic"},
    {"Arabic", FHIR_UKCORE_LANGUAGE, "ar", "Arabic"},
    {"Bengali", FHIR_UKCORE_LANGUAGE, "bn", "Bengali"},
    {"Braille", FHIR_UKCORE_LANGUAGE, "q1", "Braille"},
    {"British Sign Language", FHIR_UKCORE_LANGUAGE, "q4", "British Sign Language"},
    {"BSL", FHIR_UKCORE_LANGUAGE, "q4", "British Sign Language"},
    {"Bulgarian", FHIR_UKCORE_LANGUAGE, "bg", "Bulgarian"},
    {"Chinese", FHIR_UKCORE_LANGUAGE, "zh", "Chinese"},
    {"Czech", FHIR_UKCORE_LANGUAGE, "cs", "Czech"},
    {"English", FHIR_UKCORE_LANGUAGE, "en", "English"},
    {"Farsi", FHIR_UKCORE_LANGUAGE, "fa", "Persian"},
    {"French", FHIR_UKCORE_LANGUAGE, "fr", "French"},
    {"German", FHIR_UKCORE_LANGUAGE, "de", "German"},
    {"Greek", FHIR_UKCORE_LANGUAGE, "el", "Greek, Modern (1453-)"},
    {"Gujarati", FHIR_UKCORE_LANGUAGE, "gu", "Gujarati"},
    {"Hindi", FHIR_UKCORE_LANGUAGE, "hi", "Hindi"},
    {"Hungarian", FHIR_UKCORE_LANGUAGE, "hu", "Hungarian"},
    {"Irish", FHIR_UKCORE_LANGUAGE, "ga", "Irish"},
    {"Italian", FHIR_UKCORE_LANGUAGE, "it", "Italian"},
    {"Kurdish", FHIR_UKCORE_LANGUAGE, "ku", "Kurdish"},
    {"Latvian", FHIR_UKCORE_LANGUAGE, "lv", "Latvian"},
    {"Lithuanian", FHIR_UKCORE_LANGUAGE, "lt", "Lithuanian"},
    {"Makaton", FHIR_UKCORE_LANGUAGE, "q5", "Makaton"},
    {"Nepali", FHIR_UKCORE_LANGUAGE, "ne", "Nepali"},
    {"Pashto", FHIR_UKCORE_LANGUAGE, "ps", "Pushto"},
    {"Persian", FHIR_UKCORE_LANGUAGE, "fa", "Persian"},
    {"Polish", FHIR_UKCORE_LANGUAGE, "pl", "Polish"},
    {"Portuguese", FHIR_UKCORE_LANGUAGE, "pt", "Portuguese"},
    {"Punjabi", FHIR_UKCORE_LANGUAGE, "pa", "Panjabi; Punjabi"},
    {"Romanian", FHIR_UKCORE_LANGUAGE, "ro", "Romanian"},
    {"Russian", FHIR_UKCORE_LANGUAGE, "ru", "Russian"},
    {"Scottish Gaelic", FHIR_UKCORE_LANGUAGE, "gd", "Gaelic; Scottish Gaelic"},
    {"Slovak", FHIR_UKCORE_LANGUAGE, "sk", "Slovak"},
    {"Somali", FHIR_UKCORE_LANGUAGE, "so", "Somali"},
    {"Spanish", FHIR_UKCORE_LANGUAGE, "es", "Spanish; Castilian"},
    {"Swahili", FHIR_UKCORE_LANGUAGE, "sw", "Swahili"},
    {"Tamil", FHIR_UKCORE_LANGUAGE, "ta", "Tamil"},
    {"Tigrinya", FHIR_UKCORE_LANGUAGE, "ti", "Tigrinya"},
    {"Turkish", FHIR_UKCORE_LANGUAGE, "tr", "Turkish"},
    {"Ukrainian", FHIR_UKCORE_LANGUAGE, "uk", "Ukrainian"},
    {"Urdu", FHIR_UKCORE_LANGUAGE, "ur", "Urdu"},
    {"Vietnamese", FHIR_UKCORE_LANGUAGE, "vi", "Vietnamese"},
    {"Welsh", FHIR_UKCORE_LANGUAGE, "cy", "Welsh"},
    {"Yoruba", FHIR_UKCORE_LANGUAGE, "yo", "Yoruba"},
};

const struct fhir_code *fhir_language_code(const char *text)
{
    if (text == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof languages / sizeof languages[0]; i++)
        if (strcasecmp(languages[i].key, text) == 0)
            return &languages[i];
    return NULL;
}

/* Verhoeff's dihedral-group check, the check digit of every SNOMED CT identifier (and so of
 * dm+d ids, which are SNOMED CT identifiers). */
static int verhoeff_ok(const char *digits, size_t n)
{
    static const uint8_t d[10][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
        {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
        {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
        {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
        {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
    static const uint8_t perm[8][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
        {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
        {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
        {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};
    uint8_t c = 0;
    for (size_t i = 0; i < n; i++)
        c = d[c][perm[i % 8][digits[n - 1 - i] - '0']];
    return c == 0;
}

int fhir_sctid_form(const char *code)
{
    size_t n = 0;
    if (code == NULL || code[0] == '0')
        return 0;
    for (; code[n] != '\0'; n++)
        if (code[n] < '0' || code[n] > '9')
            return 0;
    return n >= 6 && n <= 18 && verhoeff_ok(code, n);
}
