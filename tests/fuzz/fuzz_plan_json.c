/*
 * fuzz_plan_json - JSON plan import (plan_from_json: `cmc-hub plan import`, the agent's
 * examples). Property: an imported plan exports to JSON that imports to an equal plan.
 */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

FUZZ_INITIALIZE_PLAIN()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plan p, q;
    plan_init(&p);
    plan_init(&q);
    if (plan_from_json((const char *)data, size, &p) == CMC_OK) {
        char *json = NULL;
        size_t len = 0;
        if (plan_to_json(&p, 0, &json, &len) != CMC_OK)
            abort();
        if (plan_from_json(json, len, &q) != CMC_OK || !plan_equal(&p, &q))
            abort();
        cmc_free(json);
    }
    plan_free(&p);
    plan_free(&q);
    return 0;
}

int fuzz_make_seeds(const char *dir)
{
    return fuzz_seed_plans(dir, 3, 8, "seeded-%02ld.json", plan_to_json, NULL);
}
