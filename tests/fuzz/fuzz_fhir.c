/*
 * fuzz_fhir - FHIR Bundle import (fhir_bundle_to_plan: `cmc-hub plan import --format fhir`),
 * which reads bundles written by other systems. Properties: a refusal leaves nothing
 * allocated and names the FHIR path at fault; an accepted bundle gives a plan whose own
 * export imports back to an equal plan.
 */
#include "sync/fhir.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

FUZZ_INITIALIZE_PLAIN()

static int from_fhir(const char *text, size_t len, struct plan *p)
{
    return fhir_bundle_to_plan(text, len, p, NULL);
}

static const struct fuzz_plan_codec fhir = {.to_text = fhir_plan_to_bundle, .from_text = from_fhir};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plan p;
    const char *where = NULL;
    int rc = fhir_bundle_to_plan((const char *)data, size, &p, &where);
    if (rc != CMC_OK) {
        if (p.plan_id != NULL || p.n_diagnoses != 0 || p.n_contacts != 0)
            abort(); /* nothing half-read */
        if (rc == CMC_ERR_INVALID && (where == NULL || where[0] == '\0'))
            abort(); /* a refusal names where */
    } else {
        fuzz_plan_round_trip(&fhir, &p, NULL, 0);
    }
    plan_free(&p);
    return 0;
}

int fuzz_make_seeds(const char *dir)
{
    return fuzz_seed_plans(dir, 5, 8, "seeded-%02ld.fhir.json", &fhir);
}
