/*
 * fuzz_plan_mp - the plan msgpack decoder (plan_unpack), which every PUT of every bundle goes
 * through. Property: a plan that decodes re-encodes to exactly the input bytes (each plan has
 * exactly one encoding, docs/PROTOCOL.md) and decodes again to an equal plan.
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
    int rc = 0;
    for (long i = 0; i < 12; i++) {
        struct plan p;
        int status = 0, extra = 0;
        uint8_t *out = NULL;
        size_t len = 0;
        char name[32];
        plan_init(&p);
        if (hub_seed_plan(2, i, &p, &status, &extra) != CMC_OK || plan_pack(&p, &out, &len) != CMC_OK)
            return -1;
        snprintf(name, sizeof name, "seeded-%02ld", i);
        rc |= fuzz_write_seed(dir, name, out, len);
        cmc_free(out);
        plan_free(&p);
    }
    return rc;
}
