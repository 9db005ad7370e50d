/*
 * fhir.c - writes a plan as FHIR R4 resources (fhir.h; the mapping is docs/FHIR.md).
 *
 * Resources are built with jansson from the plan's JSON form. Building uses a sticky error
 * (struct fx.nomem): every put/append records an allocation failure and the function checks
 * it once at the end, so each resource reads as the list of its elements.
 */
#include "sync/fhir.h"
#include "sync/fhir_internal.h"
#include "sync/plan_internal.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

#define UKCORE_PATIENT "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
#define UKCORE_NHS_VERIFICATION \
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
#define UKCORE_NHS_VERIFICATION_CS \
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
#define HL7_INTERPRETER "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"
#define HL7_CS "http://terminology.hl7.org/CodeSystem/"

struct fx {
    json_t *pj; /* the plan's JSON form */
    const char *base;
    const char *plan_id;
    json_t *entries;
    char pat_ref[FHIR_ID_MAX + 64];
    char plan_ref[FHIR_ID_MAX + 64];
    int nomem;
    int rc; /* first error other than out-of-memory */
};

/* "Type/id" with a base, else "urn:uuid:" and a UUID derived from the id. */
static void make_ref(const struct fx *x, const char *type, const char *id, char *out, size_t cap)
{
    uint8_t h[CRY_HASH_BYTES];
    char hex[33];
    if (x->base != NULL) {
        snprintf(out, cap, "%s/%s", type, id);
        return;
    }
    cry_hash(h, id, strlen(id));
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* RFC 9562 version 8: name-based, own hash */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    cry_hex(hex, h, 16);
    snprintf(out, cap, "urn:uuid:%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

static void put(struct fx *x, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || obj == NULL) {
        json_decref(v);
        x->nomem = 1;
        return;
    }
    if (json_object_set_new(obj, key, v) != 0)
        x->nomem = 1;
}

static void put_str(struct fx *x, json_t *obj, const char *key, const char *s)
{
    if (s != NULL)
        put(x, obj, key, json_string(s));
}

static void add(struct fx *x, json_t *arr, json_t *v)
{
    if (v == NULL || arr == NULL) {
        json_decref(v);
        x->nomem = 1;
        return;
    }
    if (json_array_append_new(arr, v) != 0)
        x->nomem = 1;
}

static const char *pj_str(json_t *pj, const char *path)
{
    return json_string_value(fhir_pj_get(pj, path));
}

static json_t *cc_text(const char *text)
{
    return text != NULL ? json_pack("{s:s}", "text", text) : json_object();
}

static json_t *cc_field(const char *path, const char *text)
{
    return json_pack("{s:[{s:s, s:s}], s:s*}", "coding", "system", FHIR_FIELD_SYSTEM, "code", path,
                     "text", text);
}

/* A CodeableConcept: the table's coding (if any) and the plan's own text. */
static json_t *cc_coded(const struct fhir_code *c, const char *text)
{
    if (c == NULL)
        return cc_text(text);
    return json_pack("{s:[{s:s, s:s, s:s}], s:s*}", "coding", "system", c->system, "code", c->code,
                     "display", c->display, "text", text);
}

/* A CodeableConcept with the plan's text and, when the plan holds a well-formed code, its
 * coding in `system` (SNOMED CT or dm+d). Text always: it is what the clinician entered. */
static json_t *cc_sct(const char *system, const char *code, const char *text)
{
    if (!fhir_sctid_form(code))
        return cc_text(text);
    return json_pack("{s:[{s:s, s:s}], s:s*}", "coding", "system", system, "code", code, "text", text);
}

/* Extensions carrying a field's value (none when absent; one per place for places). */
static void ext_add(struct fx *x, json_t *exts, const char *path, const struct plan_field *f,
                    json_t *v)
{
    char url[PLAN_MAX_SHORT];
    const char *key = fhir_value_key(f);
    if (v == NULL || json_is_null(v) || key == NULL)
        return;
    snprintf(url, sizeof url, "%s%s", FHIR_EXT_BASE, path);
    if (json_is_array(v)) {
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el)
            add(x, exts, json_pack("{s:s, s:O}", "url", url, key, el));
        return;
    }
    add(x, exts, json_pack("{s:s, s:O}", "url", url, key, v));
}

/* Extensions of every top-level field whose destination is `dest`. */
static void exts_for(struct fx *x, json_t *res, enum fhir_dest dest)
{
    json_t *exts = json_object_get(res, "extension");
    int fresh = exts == NULL;
    if (fresh && (exts = json_array()) == NULL) {
        x->nomem = 1;
        return;
    }
    for (size_t i = 0; i < plan_n_fields; i++)
        if (fhir_field_dest(&plan_fields[i]) == dest)
            ext_add(x, exts, plan_fields[i].path, &plan_fields[i],
                    fhir_pj_get(x->pj, plan_fields[i].path));
    if (fresh) {
        if (json_array_size(exts) > 0)
            put(x, res, "extension", exts);
        else
            json_decref(exts);
    }
}

/* Extensions for an item's fields that have no element of their own, and its identifier. */
static void item_common(struct fx *x, json_t *res, const char *list_path, json_t *item,
                        int with_identifier)
{
    const struct plan_field *lf = plan_field_by_path(list_path);
    json_t *exts = json_array();
    char path[PLAN_MAX_SHORT];
    for (size_t k = 0; lf != NULL && k < lf->list->n_fields; k++) {
        const struct plan_field *f = &lf->list->fields[k];
        if (fhir_item_key_explicit(list_path, f->path))
            continue;
        snprintf(path, sizeof path, "%s.%s", list_path, f->path);
        ext_add(x, exts, path, f, json_object_get(item, f->path));
    }
    if (json_array_size(exts) > 0)
        put(x, res, "extension", exts);
    else
        json_decref(exts);
    if (with_identifier)
        put(x, res, "identifier",
            json_pack("[{s:s, s:s?}]", "system", FHIR_ITEM_SYSTEM, "value",
                      json_string_value(json_object_get(item, "id"))));
}

static json_t *res_new(struct fx *x, const char *type, const char *kind, const char *item_id,
                       char id[FHIR_ID_MAX + 1])
{
    json_t *r;
    int rc = fhir_resource_id(x->plan_id, kind, item_id, id);
    if (rc != CMC_OK) {
        if (x->rc == CMC_OK)
            x->rc = rc;
        return NULL;
    }
    if ((r = json_pack("{s:s, s:s}", "resourceType", type, "id", id)) == NULL)
        x->nomem = 1;
    return r;
}

static void entry_add(struct fx *x, json_t *res)
{
    char url[512], ref[FHIR_ID_MAX + 64];
    const char *type, *id;
    if (res == NULL)
        return;
    type = json_string_value(json_object_get(res, "resourceType"));
    id = json_string_value(json_object_get(res, "id"));
    make_ref(x, type, id, ref, sizeof ref);
    if (x->base != NULL)
        snprintf(url, sizeof url, "%s/%s", x->base, ref);
    else
        snprintf(url, sizeof url, "%s", ref);
    add(x, x->entries, json_pack("{s:s, s:o}", "fullUrl", url, "resource", res));
}

static json_t *subject(const struct fx *x)
{
    return json_pack("{s:s}", "reference", x->pat_ref);
}

/* ---- the resources --------------------------------------------------------------------- */

static void add_patient(struct fx *x)
{
    char id[FHIR_ID_MAX + 1];
    json_t *r = res_new(x, "Patient", "pat", NULL, id), *name, *v;
    const char *s;
    if (r == NULL)
        return;
    put(x, r, "meta", json_pack("{s:[s]}", "profile", UKCORE_PATIENT));
    /* Verification status 02: the hub checks the Modulus 11 digit; it does not trace PDS. */
    put(x, r, "identifier",
        json_pack("[{s:[{s:s, s:{s:[{s:s, s:s, s:s}]}}], s:s, s:s?}]", "extension", "url",
                  UKCORE_NHS_VERIFICATION, "valueCodeableConcept", "coding", "system",
                  UKCORE_NHS_VERIFICATION_CS, "code", "02", "display",
                  "Number present but not traced", "system", FHIR_NHS_SYSTEM, "value",
                  pj_str(x->pj, "nhs_number")));
    if ((name = json_array()) == NULL)
        x->nomem = 1;
    add(x, name, json_pack("{s:s, s:s?, s:[s?]}", "use", "official", "family",
                           pj_str(x->pj, "patient.family_name"), "given",
                           pj_str(x->pj, "patient.given_name")));
    if ((s = pj_str(x->pj, "patient.preferred_name")) != NULL)
        add(x, name, json_pack("{s:s, s:[s]}", "use", "usual", "given", s));
    put(x, r, "name", name);
    if ((s = pj_str(x->pj, "patient.phone")) != NULL)
        put(x, r, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", s));
    put_str(x, r, "gender", pj_str(x->pj, "patient.gender"));
    put_str(x, r, "birthDate", pj_str(x->pj, "patient.date_of_birth"));
    if (pj_str(x->pj, "patient.address") != NULL || pj_str(x->pj, "patient.postcode") != NULL)
        put(x, r, "address",
            json_pack("[{s:s?, s:s?}]", "text", pj_str(x->pj, "patient.address"), "postalCode",
                      pj_str(x->pj, "patient.postcode")));
    if ((s = pj_str(x->pj, "patient.language")) != NULL)
        put(x, r, "communication",
            json_pack("[{s:o, s:b}]", "language", cc_coded(fhir_language_code(s), s), "preferred", 1));
    v = fhir_pj_get(x->pj, "patient.interpreter_needed");
    if (json_is_boolean(v))
        put(x, r, "extension",
            json_pack("[{s:s, s:O}]", "url", HL7_INTERPRETER, "valueBoolean", v));
    exts_for(x, r, FHIR_DEST_PATIENT);
    entry_add(x, r);
}

static const struct {
    const char *path, *title;
} section_titles[] = {
    {"ceiling_of_treatment", "Ceiling of treatment"},
    {"hospital_admission_wanted", "Wants admission to hospital"},
    {"adrt.exists", "Has an advance decision to refuse treatment (ADRT)"},
    {"adrt.location", "Where the ADRT is kept"},
    {"preferred_place_of_care", "Preferred place of care"},
    {"preferred_place_of_death", "Preferred place of death"},
    {"prognosis", "Prognosis"},
    {"anticipatory_medicines_location", "Where anticipatory medicines are kept"},
    {"social_support", "Social support"},
    {"what_matters_to_me", "What matters to me"},
    {"organ_donation", "Organ and tissue donation"},
    {"preferences.scale", "What matters most: sustaining life or comfort"},
    {"preferences.note", "Preferences in the patient's words"},
    {"recommendations.other", "Other ReSPECT recommendations"},
    {"recommendations.recommended_by", "ReSPECT recommendations made by"},
    {"recommendations.recommended_at", "ReSPECT recommendations made on"},
    {"capacity.has_capacity", "Has capacity for these decisions"},
    {"communication.needs", "Communication needs"},
    {"communication.adjustments", "Reasonable adjustments"},
    {"safety.risk_to_staff", "Risks to staff"},
    {"safety.access", "Access to the home"},
};

/* A section's human title: from the table, else its path in words. */
static void section_title(const char *path, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof section_titles / sizeof section_titles[0]; i++)
        if (strcmp(section_titles[i].path, path) == 0) {
            snprintf(out, cap, "%s", section_titles[i].title);
            return;
        }
    snprintf(out, cap, "%s", path);
    for (char *c = out; *c != '\0'; c++)
        if (*c == '_' || *c == '.')
            *c = ' ';
    if (out[0] >= 'a' && out[0] <= 'z')
        out[0] = (char)(out[0] - 'a' + 'A');
}

/* A field's value in words for Activity.detail.description. */
static void value_words(json_t *v, char *out, size_t cap)
{
    size_t i, used = 0;
    json_t *el;
    out[0] = '\0';
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(out, cap, "%s", json_is_true(v) ? "Yes" : "No");
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_array(v))
        json_array_foreach(v, i, el) {
            int n = snprintf(out + used, cap - used, "%s%s", i > 0 ? ", then " : "",
                             json_string_value(el) != NULL ? json_string_value(el) : "");
            if (n < 0 || (size_t)n >= cap - used)
                break;
            used += (size_t)n;
        }
    for (char *c = out; !json_is_string(v) && *c != '\0'; c++)
        if (*c == '_')
            *c = ' ';
}

static void add_sections(struct fx *x, json_t *acts)
{
    char title[PLAN_MAX_SHORT], words[PLAN_MAX_TEXT + 1];
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        json_t *v = fhir_pj_get(x->pj, f->path), *detail, *exts;
        if (fhir_field_dest(f) != FHIR_DEST_ACTIVITY || v == NULL || json_is_null(v) ||
            (json_is_array(v) && json_array_size(v) == 0))
            continue;
        section_title(f->path, title, sizeof title);
        value_words(v, words, sizeof words);
        detail = json_pack("{s:o, s:s, s:s}", "code", cc_field(f->path, title), "status",
                           "not-started", "description", words);
        if (f->type != PLAN_F_STRING && (exts = json_array()) != NULL) {
            ext_add(x, exts, f->path, f, v);
            put(x, detail, "extension", exts);
        }
        add(x, acts, json_pack("{s:o}", "detail", detail));
    }
}

/* Each ReSPECT recommendation is an activity: coded with its plan field and the SNOMED CT
 * procedure it is about, described in words (with the clinician's note), and marked
 * doNotPerform when the treatment is not recommended, so a receiving system shows "do not"
 * the way FHIR says it. The value and the note also travel as extensions on the detail. */
static void add_recommendations(struct fx *x, json_t *acts)
{
    char path[PLAN_MAX_SHORT], words[PLAN_MAX_TEXT + 128];
    const struct fhir_rec *rec;
    for (size_t i = 0; (rec = fhir_rec_at(i)) != NULL; i++) {
        json_t *detail, *code, *exts, *v, *note;
        const char *value;
        snprintf(path, sizeof path, "recommendations.%s", rec->name);
        v = fhir_pj_get(x->pj, path);
        snprintf(words, sizeof words, "recommendations.%s_note", rec->name);
        note = fhir_pj_get(x->pj, words);
        if ((v == NULL || json_is_null(v)) && (note == NULL || json_is_null(note)))
            continue;
        value = json_string_value(v);
        code = cc_field(path, rec->title);
        if (rec->sct != NULL && code != NULL)
            add(x, json_object_get(code, "coding"),
                json_pack("{s:s, s:s, s:s}", "system", FHIR_SNOMED, "code", rec->sct, "display",
                          rec->sct_display));
        snprintf(words, sizeof words, "%s%s%s", fhir_rec_words(value),
                 json_is_string(note) ? ". " : "", json_is_string(note) ? json_string_value(note) : "");
        detail = json_pack("{s:o, s:s, s:b, s:s}", "code", code, "status", "not-started",
                           "doNotPerform", value != NULL && strcmp(value, "not_recommended") == 0,
                           "description", words);
        if ((exts = json_array()) != NULL) {
            ext_add(x, exts, path, plan_field_by_path(path), v);
            snprintf(path, sizeof path, "recommendations.%s_note", rec->name);
            ext_add(x, exts, path, plan_field_by_path(path), note);
        }
        put(x, detail, "extension", exts);
        add(x, acts, json_pack("{s:o}", "detail", detail));
    }
}

static void add_problems(struct fx *x, json_t *acts)
{
    size_t i;
    json_t *item;
    json_array_foreach(fhir_pj_get(x->pj, "anticipated_problems"), i, item) {
        json_t *code = cc_field("anticipated_problems",
                                json_string_value(json_object_get(item, "problem"))),
               *detail;
        detail = json_pack("{s:o, s:s, s:s?}", "code", code, "status", "not-started",
                           "description", json_string_value(json_object_get(item, "guidance")));
        /* An activity is no resource: its item id is the element id. */
        item_common(x, detail, "anticipated_problems", item, 0);
        add(x, acts, json_pack("{s:s?, s:o}", "id",
                               json_string_value(json_object_get(item, "id")), "detail", detail));
    }
}

static const char *careplan_status(const char *plan_status, unsigned flags)
{
    if (flags & 1u)
        return "revoked";
    return plan_status != NULL && strcmp(plan_status, "published") == 0 ? "active" : "draft";
}

static void add_careplan(struct fx *x, unsigned flags)
{
    char id[FHIR_ID_MAX + 1], ver[32];
    json_t *r = res_new(x, "CarePlan", NULL, NULL, id), *meta, *acts, *v;
    if (r == NULL)
        return;
    meta = json_object();
    if (json_is_integer(v = fhir_pj_get(x->pj, "version")) && json_integer_value(v) > 0) {
        snprintf(ver, sizeof ver, "%lld", (long long)json_integer_value(v));
        put(x, meta, "versionId", json_string(ver));
    }
    put_str(x, meta, "lastUpdated", pj_str(x->pj, "updated_at"));
    put(x, r, "meta", meta);
    exts_for(x, r, FHIR_DEST_CAREPLAN);
    put(x, r, "identifier", json_pack("[{s:s, s:s}]", "system", FHIR_PLAN_SYSTEM, "value", id));
    put(x, r, "status", json_string(careplan_status(pj_str(x->pj, "status"), flags)));
    put(x, r, "intent", json_string("plan"));
    put(x, r, "category", json_pack("[{s:s}]", "text", "Urgent care plan"));
    put(x, r, "title", json_string("Urgent care plan"));
    put(x, r, "subject", subject(x));
    if (pj_str(x->pj, "review_due") != NULL)
        put(x, r, "period", json_pack("{s:s}", "end", pj_str(x->pj, "review_due")));
    if ((acts = json_array()) == NULL)
        x->nomem = 1;
    add_sections(x, acts);
    add_recommendations(x, acts);
    add_problems(x, acts);
    if (json_array_size(acts) > 0)
        put(x, r, "activity", acts);
    else
        json_decref(acts);
    entry_add(x, r);
}

static int any_prefixed(json_t *pj, const char *group)
{
    json_t *obj = json_object_get(pj, group), *v;
    const char *k;
    json_object_foreach(obj, k, v)
        if (!json_is_null(v))
            return 1;
    return 0;
}

static void add_cpr(struct fx *x)
{
    char id[FHIR_ID_MAX + 1];
    const char *d = pj_str(x->pj, "resuscitation.decision"), *s;
    static const char *const aware[] = {"resuscitation.patient_aware", "Patient is aware of the decision",
                                        "resuscitation.family_aware", "Family are aware of the decision"};
    json_t *r, *value, *comps;
    if (!any_prefixed(x->pj, "resuscitation") || (r = res_new(x, "Observation", "cpr", NULL, id)) == NULL)
        return;
    exts_for(x, r, FHIR_DEST_CPR);
    put(x, r, "status", json_string("final"));
    put(x, r, "code", cc_field("resuscitation.decision", "Resuscitation status (CPR decision)"));
    put(x, r, "subject", subject(x));
    put_str(x, r, "effectiveDateTime", pj_str(x->pj, "resuscitation.decided_at"));
    if ((s = pj_str(x->pj, "resuscitation.decided_by")) != NULL)
        put(x, r, "performer", json_pack("[{s:s}]", "display", s));
    if (d != NULL) {
        const char *sct = strcmp(d, "dnacpr") == 0 ? "450476008" : strcmp(d, "for_cpr") == 0 ? "304252001" : NULL;
        const char *text = strcmp(d, "dnacpr") == 0   ? "Not for attempted cardiopulmonary resuscitation"
                           : strcmp(d, "for_cpr") == 0 ? "For attempted cardiopulmonary resuscitation"
                                                       : "Resuscitation not yet discussed";
        value = json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system", FHIR_CPR_SYSTEM, "code", d,
                          "text", text);
        if (sct != NULL && value != NULL)
            add(x, json_object_get(value, "coding"),
                json_pack("{s:s, s:s, s:s}", "system", FHIR_SNOMED, "code", sct, "display",
                          strcmp(d, "dnacpr") == 0 ? "Not for attempted cardiopulmonary resuscitation"
                                                   : "For resuscitation"));
        put(x, r, "valueCodeableConcept", value);
    }
    if ((comps = json_array()) == NULL)
        x->nomem = 1;
    for (size_t i = 0; i < 4; i += 2) {
        json_t *v = fhir_pj_get(x->pj, aware[i]);
        if (json_is_boolean(v))
            add(x, comps, json_pack("{s:o, s:O}", "code", cc_field(aware[i], aware[i + 1]),
                                    "valueBoolean", v));
    }
    if (json_array_size(comps) > 0)
        put(x, r, "component", comps);
    else
        json_decref(comps);
    entry_add(x, r);
}

static void add_consent(struct fx *x, unsigned flags)
{
    char id[FHIR_ID_MAX + 1];
    const char *basis = pj_str(x->pj, "consent.basis");
    json_t *r, *performer;
    if (!any_prefixed(x->pj, "consent") || (r = res_new(x, "Consent", "consent", NULL, id)) == NULL)
        return;
    exts_for(x, r, FHIR_DEST_CONSENT);
    put(x, r, "status", json_string(flags & 1u ? "inactive" : "active"));
    put(x, r, "scope",
        json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system", HL7_CS "consentscope", "code",
                  "patient-privacy", "display", "Privacy Consent"));
    put(x, r, "category",
        json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system", "http://loinc.org", "code",
                  "59284-0", "display", "Patient Consent"));
    put(x, r, "patient", subject(x));
    put_str(x, r, "dateTime", pj_str(x->pj, "consent.recorded_at"));
    if (basis != NULL) {
        if (strcmp(basis, "patient") == 0)
            performer = json_pack("[{s:s}]", "reference", x->pat_ref);
        else
            performer = json_pack("[{s:s}]", "display",
                                  strcmp(basis, "lpa") == 0
                                      ? "Health and welfare lasting power of attorney"
                                      : "Clinical team, best interests decision");
        put(x, r, "performer", performer);
    }
    put(x, r, "policyRule",
        json_pack("{s:s}", "text", "Shared with urgent and emergency care services"));
    put(x, r, "provision",
        json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "type", "permit", "purpose", "system",
                  "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code", "ETREAT",
                  "display", "Emergency Treatment"));
    entry_add(x, r);
}

/* An advance decision to refuse treatment is the patient's own refusal, made with capacity
 * (Mental Capacity Act 2005, ss. 24-26): a Consent of scope "adr" whose provision denies
 * the refused treatment. Sent when the plan says an ADRT exists or holds its details;
 * "exists" and where it is kept stay CarePlan activities (first edition), the details
 * travel as extensions too so that they come back exactly. */
static void add_adrt(struct fx *x)
{
    char id[FHIR_ID_MAX + 1], title[PLAN_MAX_SHORT + 64];
    json_t *r, *exists = fhir_pj_get(x->pj, "adrt.exists"), *provision;
    const char *refuses = pj_str(x->pj, "adrt.refuses"), *where = pj_str(x->pj, "adrt.location");
    int details = 0;
    for (size_t i = 0; i < plan_n_fields; i++)
        if (fhir_field_dest(&plan_fields[i]) == FHIR_DEST_ADRT) {
            json_t *v = fhir_pj_get(x->pj, plan_fields[i].path);
            details |= v != NULL && !json_is_null(v);
        }
    if ((!json_is_true(exists) && !details) || (r = res_new(x, "Consent", "adrt", NULL, id)) == NULL)
        return;
    exts_for(x, r, FHIR_DEST_ADRT);
    put(x, r, "status", json_string(json_is_false(exists) ? "inactive" : "active"));
    put(x, r, "scope",
        json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system", HL7_CS "consentscope", "code", "adr",
                  "display", "Advanced Care Directive"));
    put(x, r, "category",
        json_pack("[{s:[{s:s, s:s, s:s}], s:s}]", "coding", "system", HL7_CS "consentcategorycodes",
                  "code", "acd", "display", "Advance Directive", "text",
                  "Advance decision to refuse treatment (ADRT)"));
    put(x, r, "patient", subject(x));
    put(x, r, "performer", json_pack("[{s:s}]", "reference", x->pat_ref));
    snprintf(title, sizeof title, "Advance decision to refuse treatment%s%s",
             where != NULL ? ", kept: " : "", where != NULL ? where : "");
    put(x, r, "sourceAttachment", json_pack("{s:s}", "title", title));
    put(x, r, "policyRule",
        json_pack("{s:s}", "text", "Mental Capacity Act 2005, sections 24 to 26 (England and Wales)"));
    provision = json_pack("{s:s}", "type", "deny");
    if (refuses != NULL)
        put(x, provision, "code", json_pack("[{s:s}]", "text", refuses));
    put(x, r, "provision", provision);
    entry_add(x, r);
}

static void add_conditions(struct fx *x)
{
    char id[FHIR_ID_MAX + 1];
    size_t i;
    json_t *item, *r;
    json_array_foreach(fhir_pj_get(x->pj, "diagnoses"), i, item) {
        if ((r = res_new(x, "Condition", "dx", json_string_value(json_object_get(item, "id")), id)) == NULL)
            return;
        item_common(x, r, "diagnoses", item, 1);
        put(x, r, "clinicalStatus",
            json_pack("{s:[{s:s, s:s}]}", "coding", "system", HL7_CS "condition-clinical", "code",
                      "active"));
        put(x, r, "category",
            json_pack("[{s:[{s:s, s:s}]}]", "coding", "system", HL7_CS "condition-category",
                      "code", "problem-list-item"));
        put(x, r, "code", cc_sct(FHIR_SNOMED, json_string_value(json_object_get(item, "snomed")),
                                 json_string_value(json_object_get(item, "text"))));
        put(x, r, "subject", subject(x));
        entry_add(x, r);
    }
}

static void add_medications(struct fx *x)
{
    char id[FHIR_ID_MAX + 1];
    const char *where = pj_str(x->pj, "anticipatory_medicines_location"), *dose;
    size_t i;
    json_t *item, *r;
    json_array_foreach(fhir_pj_get(x->pj, "medications"), i, item) {
        if ((r = res_new(x, "MedicationStatement", "med",
                         json_string_value(json_object_get(item, "id")), id)) == NULL)
            return;
        item_common(x, r, "medications", item, 1);
        put(x, r, "status", json_string("active"));
        put(x, r, "medicationCodeableConcept",
            cc_sct(FHIR_DMD, json_string_value(json_object_get(item, "dmd")),
                   json_string_value(json_object_get(item, "name"))));
        put(x, r, "subject", subject(x));
        if ((dose = json_string_value(json_object_get(item, "dose"))) != NULL)
            put(x, r, "dosage", json_pack("[{s:s}]", "text", dose));
        if (json_is_true(json_object_get(item, "anticipatory")) && where != NULL) {
            char note[PLAN_MAX_SHORT + 32];
            snprintf(note, sizeof note, "Anticipatory medicine, kept: %s", where);
            put(x, r, "note", json_pack("[{s:s}]", "text", note));
        }
        entry_add(x, r);
    }
}

static void add_allergies(struct fx *x)
{
    char id[FHIR_ID_MAX + 1];
    size_t i;
    json_t *item, *r;
    json_array_foreach(fhir_pj_get(x->pj, "allergies"), i, item) {
        const char *reaction = json_string_value(json_object_get(item, "reaction"));
        const char *sev = json_string_value(json_object_get(item, "severity"));
        if ((r = res_new(x, "AllergyIntolerance", "alg",
                         json_string_value(json_object_get(item, "id")), id)) == NULL)
            return;
        item_common(x, r, "allergies", item, 1);
        put(x, r, "clinicalStatus",
            json_pack("{s:[{s:s, s:s}]}", "coding", "system",
                      HL7_CS "allergyintolerance-clinical", "code", "active"));
        put(x, r, "code", cc_sct(FHIR_SNOMED, json_string_value(json_object_get(item, "snomed")),
                                 json_string_value(json_object_get(item, "substance"))));
        put(x, r, "patient", subject(x));
        if (reaction != NULL)
            put(x, r, "reaction",
                json_pack("[{s:[{s:s}], s:s?}]", "manifestation", "text", reaction, "severity",
                          sev != NULL && strcmp(sev, "unknown") != 0 ? sev : NULL));
        entry_add(x, r);
    }
}

/* RelatedPerson.relationship: the contact's role (HL7 v3 RoleCode "healthcare power of
 * attorney", v2 "Next-of-Kin", UK Core "Carer") and, from the second edition, how they are
 * related to the patient (v3 RoleCode: spouse, son, friend...). Text always. */
static json_t *relationships(struct fx *x, json_t *item, const char *role_words)
{
    const char *role = json_string_value(json_object_get(item, "role"));
    const char *rel = json_string_value(json_object_get(item, "relationship"));
    char words[64];
    json_t *out = json_array();
    if (role != NULL)
        add(x, out, cc_coded(fhir_role_code(role), role_words));
    if (rel != NULL) {
        snprintf(words, sizeof words, "%s", rel);
        for (char *c = words; *c != '\0'; c++)
            if (*c == '_')
                *c = ' ';
        add(x, out, cc_coded(fhir_relationship_code(rel), words));
    }
    return out;
}

static void add_contacts(struct fx *x)
{
    char id[FHIR_ID_MAX + 1], label[64];
    size_t i;
    json_t *item, *r;
    json_array_foreach(fhir_pj_get(x->pj, "contacts"), i, item) {
        const char *role = json_string_value(json_object_get(item, "role"));
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *phone = json_string_value(json_object_get(item, "phone"));
        int related = fhir_contact_is_related(role);
        if ((r = res_new(x, related ? "RelatedPerson" : "PractitionerRole", "con",
                         json_string_value(json_object_get(item, "id")), id)) == NULL)
            return;
        item_common(x, r, "contacts", item, 1);
        snprintf(label, sizeof label, "%s", fhir_role_words(role));
        if (related) {
            put(x, r, "patient", subject(x));
            json_t *rels = relationships(x, item, label);
            if (json_array_size(rels) > 0)
                put(x, r, "relationship", rels);
            else
                json_decref(rels);
            if (name != NULL)
                put(x, r, "name", json_pack("[{s:s}]", "text", name));
        } else {
            if (role != NULL)
                put(x, r, "code", json_pack("[{s:s}]", "text", label));
            if (name != NULL)
                put(x, r, "practitioner", json_pack("{s:s}", "display", name));
            put_str(x, r, "availabilityExceptions",
                    json_string_value(json_object_get(item, "available")));
        }
        if (phone != NULL)
            put(x, r, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", phone));
        entry_add(x, r);
    }
}

static void add_flag_provenance(struct fx *x, unsigned flags)
{
    char id[FHIR_ID_MAX + 1];
    const char *at = pj_str(x->pj, "approved_at"), *by = pj_str(x->pj, "approved_by");
    json_t *r;
    const char *st = pj_str(x->pj, "status");
    if (st != NULL && strcmp(st, "published") == 0 && !(flags & 1u) &&
        (r = res_new(x, "Flag", "flag", NULL, id)) != NULL) {
        put(x, r, "status", json_string("active"));
        put(x, r, "category",
            json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system", HL7_CS "flag-category",
                      "code", "clinical", "display", "Clinical"));
        put(x, r, "code", json_pack("{s:s}", "text", "Has an urgent care plan"));
        put(x, r, "subject", subject(x));
        if (at != NULL)
            put(x, r, "period", json_pack("{s:s}", "start", at));
        entry_add(x, r);
    }
    if (at != NULL && (r = res_new(x, "Provenance", "prov", NULL, id)) != NULL) {
        put(x, r, "target", json_pack("[{s:s}]", "reference", x->plan_ref));
        put(x, r, "recorded", json_string(at));
        /* Provenance.agent.who is required; who approved may be unknown in a plan that came
         * from another system: then the data-absent-reason extension says so, rather than
         * words that would come back as a name. */
        put(x, r, "agent",
            json_pack("[{s:{s:[{s:s, s:s}]}, s:o}]", "type", "coding", "system",
                      HL7_CS "provenance-participant-type", "code", "verifier", "who",
                      by != NULL ? json_pack("{s:s}", "display", by)
                                 : json_pack("{s:[{s:s, s:s}]}", "extension", "url",
                                             "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                             "valueCode", "unknown")));
        entry_add(x, r);
    }
}

/* CarePlan.addresses (the Conditions) and CarePlan.supportingInfo (the rest of the plan's
 * clinical resources), so `_include` can follow references from the CarePlan. */
static void link_careplan(struct fx *x, size_t from)
{
    json_t *cp = NULL, *addresses = json_array(), *support = json_array(), *e;
    size_t i;
    json_array_foreach(x->entries, i, e) {
        json_t *r = json_object_get(e, "resource");
        const char *type = json_string_value(json_object_get(r, "resourceType"));
        char ref[FHIR_ID_MAX + 64];
        if (i < from || type == NULL)
            continue;
        if (strcmp(type, "CarePlan") == 0) {
            cp = r;
            continue;
        }
        if (strcmp(type, "Patient") == 0 || strcmp(type, "Flag") == 0 || strcmp(type, "Provenance") == 0)
            continue;
        make_ref(x, type, json_string_value(json_object_get(r, "id")), ref, sizeof ref);
        add(x, strcmp(type, "Condition") == 0 ? addresses : support,
            json_pack("{s:s}", "reference", ref));
    }
    if (cp != NULL && json_array_size(addresses) > 0)
        put(x, cp, "addresses", json_incref(addresses));
    if (cp != NULL && json_array_size(support) > 0)
        put(x, cp, "supportingInfo", json_incref(support));
    json_decref(addresses);
    json_decref(support);
}

static int plan_entries(const struct plan *p, const char *base, unsigned flags, json_t *entries)
{
    struct fx x;
    char *text = NULL;
    size_t len = 0;
    char id[FHIR_ID_MAX + 1];
    size_t first = json_array_size(entries);
    int rc;

    memset(&x, 0, sizeof x);
    if ((rc = plan_to_json(p, 0, &text, &len)) != CMC_OK)
        return rc;
    rc = plan_json_load(text, len, "plan", &x.pj);
    cmc_free(text);
    if (rc != CMC_OK)
        return rc;
    x.base = base;
    x.plan_id = p->plan_id;
    x.entries = entries;
    if (x.plan_id == NULL) {
        json_decref(x.pj);
        return cmc_fail(CMC_ERR_INVALID, "plan_id: required");
    }
    if ((rc = fhir_resource_id(x.plan_id, "pat", NULL, id)) == CMC_OK) {
        make_ref(&x, "Patient", id, x.pat_ref, sizeof x.pat_ref);
        make_ref(&x, "CarePlan", x.plan_id, x.plan_ref, sizeof x.plan_ref);
        add_patient(&x);
        add_careplan(&x, flags);
        add_cpr(&x);
        add_consent(&x, flags);
        add_adrt(&x);
        add_conditions(&x);
        add_medications(&x);
        add_allergies(&x);
        add_contacts(&x);
        add_flag_provenance(&x, flags);
        link_careplan(&x, first);
        rc = x.rc != CMC_OK ? x.rc : x.nomem ? cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory") : CMC_OK;
    }
    json_decref(x.pj);
    return rc;
}

int fhir_plan_entries(const struct plan *p, const char *base, json_t *entries)
{
    return plan_entries(p, base, 0, entries);
}

int fhir_plan_to_bundle(const struct plan *p, int pretty, char **out, size_t *len)
{
    json_t *entries, *bundle;
    int rc;
    *out = NULL;
    *len = 0;
    plan_json_init();
    if ((entries = json_array()) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    if ((rc = plan_entries(p, NULL, 0, entries)) != CMC_OK) {
        json_decref(entries);
        return rc;
    }
    bundle = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "collection",
                       "entry", entries);
    if (bundle == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    rc = fhir_dump(bundle, pretty, out, len);
    json_decref(bundle);
    return rc;
}

json_t *fhir_outcome(const char *code, const char *diagnostics, const char *expression)
{
    json_t *issue, *out;
    plan_json_init();
    issue = json_pack("{s:s, s:s, s:s?}", "severity", "error", "code", code, "diagnostics",
                      diagnostics);
    if (issue != NULL && expression != NULL &&
        json_object_set_new(issue, "expression", json_pack("[s]", expression)) != 0) {
        json_decref(issue);
        return NULL;
    }
    out = json_pack("{s:s, s:[o]}", "resourceType", "OperationOutcome", "issue", issue);
    return out;
}

int fhir_dump(json_t *j, int pretty, char **out, size_t *len)
{
    return plan_json_dump(j, pretty, out, len);
}
