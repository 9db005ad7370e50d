/*
 * fuzz_plan_mp - the plan msgpack decoder (plan_unpack), which every PUT of every bundle goes
 * through. Property: a plan that decodes re-encodes to exactly the input bytes (each plan has
 * exactly one encoding, docs/PROTOCOL.md) and decodes again to an equal plan.
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
    if (plan_unpack(data, size, &p) == CMC_OK) {
        uint8_t *out = NULL;
        size_t len = 0;
        if (plan_pack(&p, &out, &len) != CMC_OK)
            abort();
        if (len != size || memcmp(out, data, size) != 0)
            abort(); /* two encodings of one plan */
        if (plan_unpack(out, len, &q) != CMC_OK || !plan_equal(&p, &q))
            abort();
        cmc_free(out);
    }
    plan_free(&p);
    plan_free(&q);
    return 0;
}

int fuzz_make_seeds(const char *dir)
{
    return fuzz_seed_plans(dir, 2, 12, "seeded-%02ld", NULL, plan_pack);
}
