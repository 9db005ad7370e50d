/*
 * fhir.h - a care plan as FHIR R4 resources shaped to the NHS UK Core rules, and back.
 *
 * Used by the hub (plan export/import --format fhir, the /fhir/R4/ read API) and by the
 * agent (the device's loopback endpoint). docs/FHIR.md documents the mapping field by field.
 *
 * The mapping works on the plan's JSON form (plan_to_json / plan_from_json), walking the
 * plan field table, so every field reaches FHIR: fields with a natural FHIR element go there
 * (Patient.identifier, CarePlan.activity, Observation.value...), the rest travel as
 * extensions named FHIR_EXT_BASE + the field's dotted path, or as CarePlan activities coded
 * with their path in FHIR_FIELD_SYSTEM. That keeps the round trip plan -> FHIR -> plan exact
 * and lets new plan fields slot in without a change here.
 *
 * Resource ids are derived from the plan id (see fhir_resource_plan), so the same plan always
 * gives the same ids and a read by id finds its plan without an index.
 *
 * Memory: json_t results are new references owned by the caller (json_decref); text buffers
 * are cmc_malloc'd (cmc_free). Errors: CMC_ERR_INVALID with a detail naming the FHIR path
 * ("Bundle.entry[2].resource.identifier: ...") or the plan field, never a value;
 * CMC_ERR_NOMEM. On failure outputs are NULL / empty. Thread-safety: functions touch only
 * their arguments.
 */
#ifndef CMC_FHIR_H
#define CMC_FHIR_H

#include "sync/plan.h"

#include <jansson.h>
#include <stddef.h>

#define FHIR_NHS_SYSTEM "https://fhir.nhs.uk/Id/nhs-number"
#define FHIR_SNOMED "http://snomed.info/sct"
#define FHIR_CMC "urn:cmc:fhir:"                 /* the product's namespace */
#define FHIR_EXT_BASE FHIR_CMC "ext:"            /* + dotted plan field path */
#define FHIR_FIELD_SYSTEM FHIR_CMC "plan-field"  /* codes: dotted plan field paths */
#define FHIR_ITEM_SYSTEM FHIR_CMC "item-id"      /* identifier of a plan list item */
#define FHIR_PLAN_SYSTEM FHIR_CMC "plan-id"      /* identifier of a plan */
#define FHIR_CPR_SYSTEM FHIR_CMC "cpr-decision"  /* codes: for_cpr, dnacpr, not_yet_discussed */
#define FHIR_CONTENT_TYPE "application/fhir+json"
#define FHIR_ID_MAX 64

/* Resources of one plan, appended to `entries` as Bundle.entry objects ({fullUrl, resource})
 * in this order: Patient, CarePlan, Observation (CPR decision), Consent (sharing), Condition,
 * MedicationStatement, AllergyIntolerance, PractitionerRole / RelatedPerson (contacts), Flag
 * (published plans only), Provenance (approved plans only). References are "Type/id" and
 * fullUrls base + "/Type/id" when `base` is given (the read API), else "urn:uuid:..." (a
 * self-contained bundle). */
int fhir_plan_entries(const struct plan *p, const char *base, json_t *entries);

/* A Bundle of type "collection" holding fhir_plan_entries(p, NULL). Caller frees *out. */
int fhir_plan_to_bundle(const struct plan *p, int pretty, char **out, size_t *len);

/* Reads a Bundle made by fhir_plan_to_bundle (or by another system following docs/FHIR.md):
 * exactly one Patient with an NHS number (system FHIR_NHS_SYSTEM), one CarePlan, and any of
 * the resources above; other resource types are ignored. The result passes
 * plan_validate(PLAN_CHECK_DRAFT). On CMC_ERR_INVALID *where (may be NULL) gets the FHIR
 * path at fault (a static or thread-local string, valid until the next call). */
int fhir_bundle_to_plan(const char *json, size_t len, struct plan *out, const char **where);

/* An OperationOutcome with one issue (severity "error"): code is a FHIR issue type
 * ("invalid", "not-found", "security", "forbidden", "processing", ...), expression the
 * path at fault (may be NULL). */
json_t *fhir_outcome(const char *code, const char *diagnostics, const char *expression);

/* The id of a plan's resource: the plan id for the CarePlan, plan id + "-" + kind for the
 * others ("pat", "cpr", "consent", "flag", "prov"), and plan id + "-" + kind + "-" + 16 hex
 * digits of the item id's hash for list items. */
int fhir_resource_id(const char *plan_id, const char *kind, const char *item_id,
                     char out[FHIR_ID_MAX + 1]);
/* The plan id a resource id belongs to: 1 and plan_id filled, else 0. */
int fhir_resource_plan(const char *id, char plan_id[PLAN_ID_LEN + 1]);

/* ---- search parameters ----------------------------------------------------------------- */

#define FHIR_QUERY_MAX 16
struct fhir_param {
    char key[32];
    char value[160];
};
struct fhir_query {
    struct fhir_param p[FHIR_QUERY_MAX];
    size_t n;
};
/* Splits and percent-decodes "a=b&c=d" (NULL or "" is no parameters). CMC_ERR_INVALID for a
 * malformed one, too many, or a key or value too long. */
int fhir_query_parse(const char *qs, struct fhir_query *out);
/* The first value of `key`, or NULL. */
const char *fhir_query_get(const struct fhir_query *q, const char *key);
/* CMC_ERR_INVALID naming the first parameter not in `known` (NULL-terminated): a search
 * must not silently ignore a condition it was given. */
int fhir_query_known(const struct fhir_query *q, const char *const *known);
/* "https://fhir.nhs.uk/Id/nhs-number|N" -> N, checked (spaces allowed in N). */
int fhir_query_nhs(const char *v, char nhs[PLAN_NHS_LEN + 1]);

/* Serialises (compact or indented) to a cmc_malloc'd NUL-terminated buffer. */
int fhir_dump(json_t *j, int pretty, char **out, size_t *len);

#endif
