/*
 * fhir_internal.h - what the two halves of the FHIR mapping share (fhir.c writes resources,
 * fhir_read.c reads them back): where each plan field goes. Not part of the sync/ interface;
 * other modules use fhir.h.
 */
#ifndef CMC_FHIR_INTERNAL_H
#define CMC_FHIR_INTERNAL_H

#include "sync/fhir.h"

/* Where a top-level plan field travels when it has no FHIR element of its own. */
enum fhir_dest {
    FHIR_DEST_ELEMENT,  /* a FHIR element of its own (fhir.c writes it explicitly) */
    FHIR_DEST_PATIENT,  /* an extension on the Patient */
    FHIR_DEST_CAREPLAN, /* an extension on the CarePlan (routing and record metadata) */
    FHIR_DEST_ACTIVITY, /* a CarePlan.activity coded with its path */
    FHIR_DEST_CPR,      /* an extension on the CPR decision Observation */
    FHIR_DEST_CONSENT,  /* an extension on the Consent */
    FHIR_DEST_REC,      /* a ReSPECT recommendation: a CarePlan.activity of its own */
    FHIR_DEST_ADRT,     /* an extension on the ADRT Consent (scope adr) */
    FHIR_DEST_NONE,     /* a list with no mapping yet: not exported */
};
enum fhir_dest fhir_field_dest(const struct plan_field *f);
/* 1 if item field `key` of list `list_path` has a FHIR element of its own. */
int fhir_item_key_explicit(const char *list_path, const char *key);

/* The value[x] key an extension uses for a field's JSON value ("valueString", ...). */
const char *fhir_value_key(const struct plan_field *f);

/* The plan JSON value at a dotted path (borrowed; NULL when missing). */
json_t *fhir_pj_get(json_t *root, const char *path);

/* Contact roles that are people around the patient (RelatedPerson) rather than
 * professionals (PractitionerRole). */
int fhir_contact_is_related(const char *role);

/* ---- code tables (fhir_codes.c) ------------------------------------------------------- */

#define FHIR_V3_ROLE "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#define FHIR_UKCORE_LANGUAGE "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage"
#define FHIR_DMD "https://dmd.nhs.uk"
#define FHIR_CONSENT_SCOPE "http://terminology.hl7.org/CodeSystem/consentscope"

/* A ReSPECT recommendation: the plan's name for it (recommendations.NAME and NAME_note),
 * its title in words, and the SNOMED CT procedure it is about (NULL: text only). */
struct fhir_rec {
    const char *name, *title, *sct, *sct_display;
};
/* The i-th recommendation, NULL past the end. */
const struct fhir_rec *fhir_rec_at(size_t i);
/* The recommendation whose value field is `path` ("recommendations.cpr"), or NULL. */
const struct fhir_rec *fhir_rec_by_path(const char *path);
/* The recommendation whose note field is `path` ("recommendations.cpr_note"), or NULL. */
const struct fhir_rec *fhir_rec_note_of(const char *path);
/* A recommendation's value ("recommended", ...) in words for a receiving system. */
const char *fhir_rec_words(const char *value);

/* A plan value and the coding that stands for it. */
struct fhir_code {
    const char *key, *system, *code, *display;
};
/* RelatedPerson.relationship codings: a contact's role (lpa, next_of_kin, main_carer) and
 * its relationship to the patient (second edition). NULL when no code fits. */
/* A contact's role in words ("Next of kin"), for the text beside the code. */
const char *fhir_role_words(const char *role);
const struct fhir_code *fhir_role_code(const char *role);
const struct fhir_code *fhir_relationship_code(const char *relationship);
/* The UK Core HumanLanguage coding of a language as written in a plan ("Polish"), matched
 * without regard to case; NULL when not known. */
const struct fhir_code *fhir_language_code(const char *text);
/* 1 if `code` is a well-formed SNOMED CT (or dm+d) identifier: 6 to 18 digits, no leading
 * zero, a valid Verhoeff check digit. A plan's code that is not is sent as text only (it
 * still travels in the item's extension, so it comes back on import). */
int fhir_sctid_form(const char *code);

#endif
