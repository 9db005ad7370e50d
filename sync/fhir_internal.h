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

#endif
