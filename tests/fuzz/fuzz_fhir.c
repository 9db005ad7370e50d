/*
 * fuzz_fhir - FHIR Bundle import (fhir_bundle_to_plan: `cmc-hub plan import --format fhir`),
 * which reads bundles written by other systems. Properties: a refusal leaves nothing
 * allocated and names the FHIR path at fault; an accepted bundle gives a plan whose own
 * export imports back to an equal plan.
 */
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/fhir.h"
#include "sync/plan.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plan p, q;
    const char *where = NULL;
    int rc = fhir_bundle_to_plan((const char *)data, size, &p, &where);
    if (rc != CMC_OK) {
        if (p.plan_id != NULL || p.n_diagnoses != 0 || p.n_contacts != 0)
            abort(); /* nothing half-read */
        if (rc == CMC_ERR_INVALID && (where == NULL || where[0] == '\0'))
            abort(); /* a refusal names where */
        plan_free(&p);
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (fhir_plan_to_bundle(&p, 0, &text, &len) != CMC_OK)
        abort();
    if (fhir_bundle_to_plan(text, len, &q, NULL) != CMC_OK || !plan_equal(&p, &q))
        abort();
    cmc_free(text);
    plan_free(&q);
    plan_free(&p);
    return 0;
}

static int encode_fhir(const struct plan *p, long i, void **out, size_t *len)
{
    char *text = NULL;
    int rc = fhir_plan_to_bundle(p, (int)(i % 2), &text, len);
    *out = text;
    return rc;
}

int fuzz_make_seeds(const char *dir)
{
    return fuzz_seed_plans(dir, 5, 8, "seeded-%02ld.fhir.json", encode_fhir);
}
