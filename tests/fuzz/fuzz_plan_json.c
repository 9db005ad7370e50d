/*
 * fuzz_plan_json - JSON plan import (plan_from_json: `cmc-hub plan import`, the agent's
 * examples). Property: an imported plan exports to JSON that imports to an equal plan.
 */
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/plan.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (cry_init() != CMC_OK)
        abort();
    plan_json_init();
    plat_log_set_level(PLAT_LOG_ERROR);
    return 0;
}

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
    int rc = 0;
    for (long i = 0; i < 8; i++) {
        struct plan p;
        int status = 0, extra = 0;
        char *json = NULL, name[32];
        size_t len = 0;
        plan_init(&p);
        if (hub_seed_plan(3, i, &p, &status, &extra) != CMC_OK || plan_to_json(&p, i % 2, &json, &len) != CMC_OK)
            return -1;
        snprintf(name, sizeof name, "seeded-%02ld.json", i);
        rc |= fuzz_write_seed(dir, name, json, len);
        cmc_free(json);
        plan_free(&p);
    }
    return rc;
}
