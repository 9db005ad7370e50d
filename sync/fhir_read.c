/*
 * fhir_read.c - reads a plan back from a FHIR Bundle (fhir.h, docs/FHIR.md).
 *
 * The reader rebuilds the plan's JSON form from the resources and hands it to
 * plan_from_json, so one set of rules (types, lengths, enumerations, required identity)
 * judges a plan however it arrives. Structural problems are reported with the FHIR path at
 * fault; value problems with the plan field's path.
 */
#include "sync/fhir.h"
#include "sync/fhir_internal.h"
#include "sync/plan_internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char fault_path[256];

struct rx {
    json_t *pj; /* the plan's JSON form, being built */
    char at[160]; /* FHIR path of the resource being read */
};

static int fail_at(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(const char *path, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(fault_path, sizeof fault_path, "%s", path);
    return cmc_fail(CMC_ERR_INVALID, "%s: %s", path, msg);
}

static int nomem(void)
{
    return cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
}

/* Sets a dotted path in the plan JSON (objects made on the way); refuses a second value. */
static int pj_set(struct rx *r, const char *path, json_t *v, const char *fpath)
{
    char key[PLAN_MAX_SHORT];
    const char *dot, *p = path;
    json_t *obj = r->pj, *old;
    if (v == NULL)
        return nomem();
    while ((dot = strchr(p, '.')) != NULL) {
        size_t n = (size_t)(dot - p);
        json_t *next;
        if (n >= sizeof key) {
            json_decref(v);
            return fail_at(fpath, "path too long");
        }
        memcpy(key, p, n);
        key[n] = '\0';
        if ((next = json_object_get(obj, key)) == NULL) {
            if ((next = json_object()) == NULL || json_object_set_new(obj, key, next) != 0) {
                json_decref(v);
                return nomem();
            }
        }
        obj = next;
        p = dot + 1;
    }
    if ((old = json_object_get(obj, p)) != NULL && !json_is_null(old)) {
        json_decref(v);
        return fail_at(fpath, "%s given twice", path);
    }
    return json_object_set_new(obj, p, v) == 0 ? CMC_OK : nomem();
}

static int set_str(struct rx *r, const char *path, const char *s, const char *fpath)
{
    return s == NULL ? CMC_OK : pj_set(r, path, json_string(s), fpath);
}

static const char *str_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The text of a CodeableConcept: its text, else its first coding's display. */
static const char *cc_text(json_t *cc)
{
    const char *t = str_at(cc, "text");
    return t != NULL ? t : str_at(json_array_get(json_object_get(cc, "coding"), 0), "display");
}

/* The code of the first coding of `system` in a CodeableConcept, or NULL. */
/* The `field` of the first element of obj's array `list` whose "system" is `system`. */
static const char *in_system(json_t *obj, const char *list, const char *system, const char *field)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(obj, list), i, c) {
        const char *s = str_at(c, "system");
        if (s != NULL && strcmp(s, system) == 0)
            return str_at(c, field);
    }
    return NULL;
}

static const char *cc_code(json_t *cc, const char *system)
{
    return in_system(cc, "coding", system, "code");
}

/* One value of the product's extension into `target[key]` (places accumulate). */
static int ext_value(const struct plan_field *f, json_t *ext, json_t *target, const char *key,
                     const char *fpath)
{
    json_t *v = json_object_get(ext, fhir_value_key(f)), *cur = json_object_get(target, key);
    if (v == NULL)
        return fail_at(fpath, "needs %s", fhir_value_key(f));
    if (f->type == PLAN_F_PLACES) {
        if (cur == NULL || json_is_null(cur)) {
            if ((cur = json_array()) == NULL || json_object_set_new(target, key, cur) != 0)
                return nomem();
        }
        return json_array_append(cur, v) == 0 ? CMC_OK : nomem();
    }
    if (cur != NULL && !json_is_null(cur))
        return fail_at(fpath, "%s given twice", f->path);
    return json_object_set(target, key, v) == 0 ? CMC_OK : nomem();
}

/* The product's extensions (url FHIR_EXT_BASE + path) of a resource or element: top-level
 * fields into the plan (item == NULL) or item fields of `list_path` into `item`. Other
 * extensions are left alone. */
static int read_exts(struct rx *r, json_t *obj, const char *opath, const char *list_path,
                     json_t *item)
{
    const size_t blen = strlen(FHIR_EXT_BASE);
    char fpath[256];
    size_t i;
    json_t *ext;
    int rc;
    json_array_foreach(json_object_get(obj, "extension"), i, ext) {
        const char *url = str_at(ext, "url"), *fp;
        const struct plan_field *f;
        snprintf(fpath, sizeof fpath, "%s.extension[%zu]", opath, i);
        if (url == NULL)
            return fail_at(fpath, "url is required");
        if (strncmp(url, FHIR_EXT_BASE, blen) != 0)
            continue;
        fp = url + blen;
        if (item == NULL) {
            if ((f = plan_field_by_path(fp)) == NULL || f->type == PLAN_F_LIST)
                return fail_at(fpath, "no plan field %s", fp);
            json_t *parent = r->pj;
            const char *dot = strrchr(fp, '.');
            if (dot != NULL) {
                char group[PLAN_MAX_SHORT];
                snprintf(group, sizeof group, "%.*s", (int)(dot - fp), fp);
                if ((parent = json_object_get(r->pj, group)) == NULL) {
                    if ((parent = json_object()) == NULL ||
                        json_object_set_new(r->pj, group, parent) != 0)
                        return nomem();
                }
            }
            rc = ext_value(f, ext, parent, dot != NULL ? dot + 1 : fp, fpath);
        } else {
            const struct plan_field *lf = plan_field_by_path(list_path);
            size_t llen = strlen(list_path);
            if (strncmp(fp, list_path, llen) != 0 || fp[llen] != '.' ||
                (f = plan_item_field_by_name(lf->list, fp + llen + 1)) == NULL)
                return fail_at(fpath, "no %s field %s", list_path, fp);
            rc = ext_value(f, ext, item, f->path, fpath);
        }
        if (rc != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* ---- resources ------------------------------------------------------------------------- */

static int read_patient(struct rx *r, json_t *res)
{
    char p[256];
    const char *nhs = NULL;
    size_t i;
    json_t *v;
    int rc;
    json_array_foreach(json_object_get(res, "identifier"), i, v) {
        const char *sys = str_at(v, "system");
        if (sys != NULL && strcmp(sys, FHIR_NHS_SYSTEM) == 0) {
            snprintf(p, sizeof p, "%s.identifier[%zu].value", r->at, i);
            if ((nhs = str_at(v, "value")) == NULL || !plan_nhs_valid(nhs))
                return fail_at(p, "not a valid NHS number (10 digits, Modulus 11 check digit)");
            break;
        }
    }
    snprintf(p, sizeof p, "%s.identifier", r->at);
    if (nhs == NULL)
        return fail_at(p, "no NHS number (system " FHIR_NHS_SYSTEM ")");
    if ((rc = set_str(r, "nhs_number", nhs, p)) != CMC_OK)
        return rc;
    json_array_foreach(json_object_get(res, "name"), i, v) {
        const char *use = str_at(v, "use");
        const char *given = json_string_value(json_array_get(json_object_get(v, "given"), 0));
        snprintf(p, sizeof p, "%s.name[%zu]", r->at, i);
        if (use != NULL && strcmp(use, "usual") == 0)
            rc = set_str(r, "patient.preferred_name", given, p);
        else if (use == NULL || strcmp(use, "official") == 0) {
            if ((rc = set_str(r, "patient.family_name", str_at(v, "family"), p)) == CMC_OK)
                rc = set_str(r, "patient.given_name", given, p);
        }
        if (rc != CMC_OK)
            return rc;
    }
    snprintf(p, sizeof p, "%s.name", r->at);
    if (fhir_pj_get(r->pj, "patient.family_name") == NULL ||
        fhir_pj_get(r->pj, "patient.given_name") == NULL)
        return fail_at(p, "an official name with family and given is required");
    snprintf(p, sizeof p, "%s.birthDate", r->at);
    if (str_at(res, "birthDate") == NULL)
        return fail_at(p, "required");
    if ((rc = set_str(r, "patient.date_of_birth", str_at(res, "birthDate"), p)) != CMC_OK ||
        (rc = set_str(r, "patient.gender", str_at(res, "gender"), p)) != CMC_OK)
        return rc;
    json_array_foreach(json_object_get(res, "telecom"), i, v) {
        const char *sys = str_at(v, "system");
        snprintf(p, sizeof p, "%s.telecom[%zu]", r->at, i);
        if (sys != NULL && strcmp(sys, "phone") == 0 &&
            (rc = set_str(r, "patient.phone", str_at(v, "value"), p)) != CMC_OK)
            return rc;
    }
    v = json_array_get(json_object_get(res, "address"), 0);
    snprintf(p, sizeof p, "%s.address[0]", r->at);
    if ((rc = set_str(r, "patient.address", str_at(v, "text"), p)) != CMC_OK ||
        (rc = set_str(r, "patient.postcode", str_at(v, "postalCode"), p)) != CMC_OK)
        return rc;
    v = json_array_get(json_object_get(res, "communication"), 0);
    snprintf(p, sizeof p, "%s.communication[0]", r->at);
    if ((rc = set_str(r, "patient.language", cc_text(json_object_get(v, "language")), p)) != CMC_OK)
        return rc;
    json_array_foreach(json_object_get(res, "extension"), i, v) {
        const char *url = str_at(v, "url");
        json_t *b = json_object_get(v, "valueBoolean");
        snprintf(p, sizeof p, "%s.extension[%zu]", r->at, i);
        if (url != NULL && strcmp(url, "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired") == 0) {
            if (!json_is_boolean(b))
                return fail_at(p, "needs valueBoolean");
            if ((rc = pj_set(r, "patient.interpreter_needed", json_copy(b), p)) != CMC_OK)
                return rc;
        }
    }
    return read_exts(r, res, r->at, NULL, NULL);
}

/* An item object in list `list_path` with its id from `id` (NULL: made from the index). */
static int item_new(struct rx *r, const char *list_path, const char *id, const char *p,
                    json_t **out)
{
    char made[32];
    json_t *list = json_object_get(r->pj, list_path), *item;
    *out = NULL;
    if (list == NULL) {
        if ((list = json_array()) == NULL || json_object_set_new(r->pj, list_path, list) != 0)
            return nomem();
    }
    if (id == NULL) {
        snprintf(made, sizeof made, "%c%zu", list_path[0], json_array_size(list) + 1);
        id = made;
    } else if (!plan_item_id_valid(id))
        return fail_at(p, "not a valid item id (1 to 64 of A-Z a-z 0-9 . _ -)");
    if ((item = json_pack("{s:s}", "id", id)) == NULL || json_array_append_new(list, item) != 0)
        return nomem();
    *out = item;
    return CMC_OK;
}

/* The item id a resource carries in identifier (system FHIR_ITEM_SYSTEM), or NULL. */
static const char *item_id_of(json_t *res)
{
    return in_system(res, "identifier", FHIR_ITEM_SYSTEM, "value");
}

static int item_put(json_t *item, const char *key, const char *s)
{
    if (s == NULL)
        return CMC_OK;
    return json_object_set_new(item, key, json_string(s)) == 0 ? CMC_OK : nomem();
}

/* A ReSPECT recommendation's activity: value and note from the extensions; another system's
 * activity without them still says "not recommended" through doNotPerform. */
static int read_recommendation(struct rx *r, json_t *detail, const struct plan_field *f,
                               const char *p)
{
    json_t *dnp = json_object_get(detail, "doNotPerform");
    int rc = read_exts(r, detail, p, NULL, NULL);
    if (rc == CMC_OK && json_is_true(dnp) && fhir_pj_get(r->pj, f->path) == NULL)
        rc = set_str(r, f->path, "not_recommended", p);
    return rc;
}

static int read_activity(struct rx *r, json_t *act, size_t i)
{
    char p[256];
    json_t *detail = json_object_get(act, "detail"), *item;
    const char *code = cc_code(json_object_get(detail, "code"), FHIR_FIELD_SYSTEM);
    const struct plan_field *f;
    int rc;
    snprintf(p, sizeof p, "%s.activity[%zu].detail", r->at, i);
    if (code == NULL)
        return CMC_OK; /* another system's activity: not part of the plan's fields */
    if (strcmp(code, "anticipated_problems") == 0) {
        if ((rc = item_new(r, code, str_at(act, "id"), p, &item)) != CMC_OK ||
            (rc = item_put(item, "problem", str_at(json_object_get(detail, "code"), "text"))) != CMC_OK ||
            (rc = item_put(item, "guidance", str_at(detail, "description"))) != CMC_OK)
            return rc;
        return read_exts(r, detail, p, code, item);
    }
    if ((f = plan_field_by_path(code)) != NULL && fhir_field_dest(f) == FHIR_DEST_REC)
        return read_recommendation(r, detail, f, p);
    if (f == NULL || fhir_field_dest(f) != FHIR_DEST_ACTIVITY)
        return fail_at(p, "code %s is not a plan section", code);
    if (f->type == PLAN_F_STRING)
        return set_str(r, f->path, str_at(detail, "description"), p);
    return read_exts(r, detail, p, NULL, NULL);
}

static int read_careplan(struct rx *r, json_t *res)
{
    char p[256];
    const char *id = str_at(res, "id"), *ver;
    json_t *meta = json_object_get(res, "meta"), *act;
    size_t i;
    int rc;
    snprintf(p, sizeof p, "%s.id", r->at);
    if (id != NULL && plan_uuid_valid(id) && (rc = set_str(r, "plan_id", id, p)) != CMC_OK)
        return rc;
    snprintf(p, sizeof p, "%s.meta.versionId", r->at);
    if ((ver = str_at(meta, "versionId")) != NULL) {
        char *end = NULL;
        long long v = strtoll(ver, &end, 10);
        if (end == ver || *end != '\0' || v <= 0)
            return fail_at(p, "not a version number");
        if ((rc = pj_set(r, "version", json_integer(v), p)) != CMC_OK)
            return rc;
    }
    snprintf(p, sizeof p, "%s.meta.lastUpdated", r->at);
    if ((rc = set_str(r, "updated_at", str_at(meta, "lastUpdated"), p)) != CMC_OK)
        return rc;
    snprintf(p, sizeof p, "%s.period.end", r->at);
    if ((rc = set_str(r, "review_due", str_at(json_object_get(res, "period"), "end"), p)) != CMC_OK)
        return rc;
    json_array_foreach(json_object_get(res, "activity"), i, act)
        if ((rc = read_activity(r, act, i)) != CMC_OK)
            return rc;
    return read_exts(r, res, r->at, NULL, NULL);
}

static int read_cpr(struct rx *r, json_t *res)
{
    char p[256];
    json_t *value = json_object_get(res, "valueCodeableConcept"), *c;
    const char *d = cc_code(value, FHIR_CPR_SYSTEM), *sct = cc_code(value, FHIR_SNOMED), *when;
    size_t i;
    int rc;
    if (d == NULL && sct != NULL)
        d = strcmp(sct, "450476008") == 0 ? "dnacpr" : strcmp(sct, "304252001") == 0 ? "for_cpr" : NULL;
    snprintf(p, sizeof p, "%s.valueCodeableConcept", r->at);
    if (value != NULL && d == NULL)
        return fail_at(p, "not a known CPR decision");
    if ((rc = set_str(r, "resuscitation.decision", d, p)) != CMC_OK)
        return rc;
    snprintf(p, sizeof p, "%s.effectiveDateTime", r->at);
    if ((when = str_at(res, "effectiveDateTime")) != NULL) {
        char date[11];
        snprintf(date, sizeof date, "%s", when); /* the plan keeps the day */
        if ((rc = set_str(r, "resuscitation.decided_at", date, p)) != CMC_OK)
            return rc;
    }
    snprintf(p, sizeof p, "%s.performer[0]", r->at);
    if ((rc = set_str(r, "resuscitation.decided_by",
                      str_at(json_array_get(json_object_get(res, "performer"), 0), "display"), p)) != CMC_OK)
        return rc;
    json_array_foreach(json_object_get(res, "component"), i, c) {
        const char *code = cc_code(json_object_get(c, "code"), FHIR_FIELD_SYSTEM);
        json_t *b = json_object_get(c, "valueBoolean");
        snprintf(p, sizeof p, "%s.component[%zu]", r->at, i);
        if (code == NULL)
            continue;
        if ((strcmp(code, "resuscitation.patient_aware") != 0 &&
             strcmp(code, "resuscitation.family_aware") != 0) || !json_is_boolean(b))
            return fail_at(p, "not a known component with valueBoolean");
        if ((rc = pj_set(r, code, json_copy(b), p)) != CMC_OK)
            return rc;
    }
    return read_exts(r, res, r->at, NULL, NULL);
}

static int read_consent(struct rx *r, json_t *res)
{
    char p[256];
    int rc;
    snprintf(p, sizeof p, "%s.dateTime", r->at);
    if ((rc = set_str(r, "consent.recorded_at", str_at(res, "dateTime"), p)) != CMC_OK)
        return rc;
    return read_exts(r, res, r->at, NULL, NULL);
}

/* 1 if a resource carries any of the product's extensions (it was written by this mapping). */
static int has_own_ext(json_t *res)
{
    size_t i;
    json_t *ext;
    json_array_foreach(json_object_get(res, "extension"), i, ext) {
        const char *url = str_at(ext, "url");
        if (url != NULL && strncmp(url, FHIR_EXT_BASE, strlen(FHIR_EXT_BASE)) == 0)
            return 1;
    }
    return 0;
}

/* The ADRT Consent: its details from the extensions; another system's ADRT gives at least
 * what it refuses (provision.code text) and that it exists. */
static int read_adrt(struct rx *r, json_t *res)
{
    char p[256];
    json_t *code = json_array_get(json_object_get(json_object_get(res, "provision"), "code"), 0);
    const char *status = str_at(res, "status");
    int rc = read_exts(r, res, r->at, NULL, NULL);
    snprintf(p, sizeof p, "%s.provision.code[0]", r->at);
    if (rc == CMC_OK && fhir_pj_get(r->pj, "adrt.refuses") == NULL)
        rc = set_str(r, "adrt.refuses", cc_text(code), p);
    snprintf(p, sizeof p, "%s.status", r->at);
    if (rc == CMC_OK && !has_own_ext(res) && fhir_pj_get(r->pj, "adrt.exists") == NULL &&
        status != NULL && strcmp(status, "active") == 0)
        rc = pj_set(r, "adrt.exists", json_true(), p);
    return rc;
}

/* A list item resource: its id, its elements, its extensions. */
static int read_item(struct rx *r, json_t *res, const char *type)
{
    const char *list = strcmp(type, "Condition") == 0             ? "diagnoses"
                       : strcmp(type, "MedicationStatement") == 0 ? "medications"
                       : strcmp(type, "AllergyIntolerance") == 0  ? "allergies"
                                                                  : "contacts";
    char p[256];
    json_t *item, *reaction = json_array_get(json_object_get(res, "reaction"), 0);
    int rc;
    snprintf(p, sizeof p, "%s.identifier", r->at);
    if ((rc = item_new(r, list, item_id_of(res), p, &item)) != CMC_OK)
        return rc;
    if (strcmp(list, "diagnoses") == 0)
        rc = item_put(item, "text", cc_text(json_object_get(res, "code")));
    else if (strcmp(list, "medications") == 0) {
        if ((rc = item_put(item, "name", cc_text(json_object_get(res, "medicationCodeableConcept")))) == CMC_OK)
            rc = item_put(item, "dose", str_at(json_array_get(json_object_get(res, "dosage"), 0), "text"));
    } else if (strcmp(list, "allergies") == 0) {
        if ((rc = item_put(item, "substance", cc_text(json_object_get(res, "code")))) == CMC_OK)
            rc = item_put(item, "reaction",
                          cc_text(json_array_get(json_object_get(reaction, "manifestation"), 0)));
    } else {
        const char *name = strcmp(type, "RelatedPerson") == 0
                               ? str_at(json_array_get(json_object_get(res, "name"), 0), "text")
                               : str_at(json_object_get(res, "practitioner"), "display");
        size_t i;
        json_t *t;
        if ((rc = item_put(item, "name", name)) == CMC_OK)
            json_array_foreach(json_object_get(res, "telecom"), i, t) {
                const char *sys = str_at(t, "system");
                if (sys != NULL && strcmp(sys, "phone") == 0) {
                    rc = item_put(item, "phone", str_at(t, "value"));
                    break;
                }
            }
    }
    if (rc != CMC_OK)
        return rc;
    if ((rc = read_exts(r, res, r->at, list, item)) != CMC_OK)
        return rc;
    /* Another system's bundle may carry these as elements only. */
    if (strcmp(list, "allergies") == 0 && json_object_get(item, "severity") == NULL)
        rc = item_put(item, "severity", str_at(reaction, "severity"));
    else if (strcmp(type, "PractitionerRole") == 0 && json_object_get(item, "available") == NULL)
        rc = item_put(item, "available", str_at(res, "availabilityExceptions"));
    return rc;
}

static int read_provenance(struct rx *r, json_t *res)
{
    char p[256];
    int rc;
    snprintf(p, sizeof p, "%s.recorded", r->at);
    if (str_at(res, "recorded") == NULL)
        return CMC_OK; /* an approval is who and when: without when, nothing of it is kept */
    if ((rc = set_str(r, "approved_at", str_at(res, "recorded"), p)) != CMC_OK)
        return rc;
    snprintf(p, sizeof p, "%s.agent[0].who", r->at);
    return set_str(r, "approved_by",
                   str_at(json_object_get(json_array_get(json_object_get(res, "agent"), 0), "who"),
                          "display"), p);
}

static int read_entry(struct rx *r, json_t *res, const char *type, int *patients, int *careplans)
{
    if (strcmp(type, "Patient") == 0) {
        if (++*patients > 1)
            return fail_at(r->at, "a second Patient: a bundle holds one patient's plan");
        return read_patient(r, res);
    }
    if (strcmp(type, "CarePlan") == 0) {
        if (++*careplans > 1)
            return fail_at(r->at, "a second CarePlan: a bundle holds one plan");
        return read_careplan(r, res);
    }
    if (strcmp(type, "Observation") == 0) {
        const char *code = cc_code(json_object_get(res, "code"), FHIR_FIELD_SYSTEM);
        return code != NULL && strcmp(code, "resuscitation.decision") == 0 ? read_cpr(r, res) : CMC_OK;
    }
    if (strcmp(type, "Consent") == 0)
        return cc_code(json_object_get(res, "scope"), FHIR_CONSENT_SCOPE) != NULL &&
                       strcmp(cc_code(json_object_get(res, "scope"), FHIR_CONSENT_SCOPE), "adr") == 0
                   ? read_adrt(r, res)
                   : read_consent(r, res);
    if (strcmp(type, "Condition") == 0 || strcmp(type, "MedicationStatement") == 0 ||
        strcmp(type, "AllergyIntolerance") == 0 || strcmp(type, "PractitionerRole") == 0 ||
        strcmp(type, "RelatedPerson") == 0)
        return read_item(r, res, type);
    if (strcmp(type, "Provenance") == 0)
        return read_provenance(r, res);
    return CMC_OK; /* Flag, and anything else: nothing of the plan's */
}

static int read_bundle(struct rx *r, json_t *root)
{
    const char *rt = str_at(root, "resourceType");
    json_t *entries = json_object_get(root, "entry"), *e;
    int patients = 0, careplans = 0, rc;
    size_t i;
    if (rt == NULL || strcmp(rt, "Bundle") != 0)
        return fail_at("Bundle.resourceType", "must be Bundle");
    if (!json_is_array(entries))
        return fail_at("Bundle.entry", "required (an array)");
    json_array_foreach(entries, i, e) {
        json_t *res = json_object_get(e, "resource");
        const char *type = str_at(res, "resourceType");
        snprintf(r->at, sizeof r->at, "Bundle.entry[%zu].resource", i);
        if (!json_is_object(res) || type == NULL)
            return fail_at(r->at, "a resource with a resourceType is required");
        if ((rc = read_entry(r, res, type, &patients, &careplans)) != CMC_OK)
            return rc;
    }
    if (patients == 0)
        return fail_at("Bundle.entry", "no Patient");
    if (careplans == 0)
        return fail_at("Bundle.entry", "no CarePlan");
    if (fhir_pj_get(r->pj, "plan_id") == NULL) {
        char id[PLAN_ID_LEN + 1];
        plan_uuid_new(id); /* another system's plan: it gets an id here */
        return set_str(r, "plan_id", id, "Bundle");
    }
    return CMC_OK;
}

int fhir_bundle_to_plan(const char *json, size_t len, struct plan *out, const char **where)
{
    struct rx r;
    json_t *root = NULL;
    char *text = NULL;
    size_t tlen = 0;
    int rc;

    plan_init(out);
    fault_path[0] = '\0';
    if (where != NULL)
        *where = fault_path;
    memset(&r, 0, sizeof r);
    if ((rc = plan_json_load(json, len, "Bundle", &root)) != CMC_OK) {
        snprintf(fault_path, sizeof fault_path, "Bundle");
        return rc;
    }
    if ((r.pj = json_object()) == NULL)
        rc = nomem();
    else if ((rc = read_bundle(&r, root)) == CMC_OK &&
             (rc = plan_json_dump(r.pj, 0, &text, &tlen)) == CMC_OK) {
        rc = plan_from_json(text, tlen, out);
        if (rc == CMC_ERR_INVALID)
            snprintf(fault_path, sizeof fault_path, "Bundle");
    }
    cmc_free(text);
    json_decref(r.pj);
    json_decref(root);
    return rc;
}
