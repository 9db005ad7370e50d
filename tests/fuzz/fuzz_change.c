/*
 * fuzz_change - the change document: JSON (`edit --file`, `plan edit --file`) when the first
 * byte is even, msgpack (a bundle's DELTA, a pushed edit) when odd. A change that decodes is
 * applied to a fixed valid plan: all or nothing (on failure the plan is unchanged), and on
 * success the result still validates. Round trips: JSON -> change -> JSON -> change, and
 * msgpack -> change -> msgpack -> change, give equal encodings.
 */
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/change.h"
#include "sync/plan.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

static struct plan base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int status = 0, extra = 0;
    fuzz_init();
    plan_init(&base);
    if (hub_seed_plan(4, 0, &base, &status, &extra) != CMC_OK)
        abort();
    return 0;
}

static void apply_checked(const struct plan_change *c)
{
    struct plan p;
    plan_init(&p);
    if (plan_copy(&p, &base) != CMC_OK)
        abort();
    if (plan_change_apply(&p, c) == CMC_OK) {
        if (plan_validate(&p, PLAN_CHECK_DRAFT) != CMC_OK)
            abort();
    } else if (!plan_equal(&p, &base)) {
        abort(); /* a refused change touched the plan */
    }
    plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int json = (data[0] & 1) == 0;
    data++;
    size--;
    struct plan_change c, d;
    plan_change_init(&c);
    plan_change_init(&d);
    int rc = json ? plan_change_from_json((const char *)data, size, &c) : plan_change_unpack(data, size, &c);
    if (rc == CMC_OK) {
        apply_checked(&c);
        uint8_t *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (json) {
            if (plan_change_to_json(&c, (char **)&a, &alen) != CMC_OK ||
                plan_change_from_json((const char *)a, alen, &d) != CMC_OK ||
                plan_change_to_json(&d, (char **)&b, &blen) != CMC_OK)
                abort();
        } else {
            if (plan_change_pack(&c, &a, &alen) != CMC_OK || plan_change_unpack(a, alen, &d) != CMC_OK ||
                plan_change_pack(&d, &b, &blen) != CMC_OK)
                abort();
        }
        if (alen != blen || memcmp(a, b, alen) != 0)
            abort();
        cmc_free(a);
        cmc_free(b);
    }
    plan_change_free(&c);
    plan_change_free(&d);
    return 0;
}

int fuzz_make_seeds(const char *dir)
{
    static const char *docs[] = {
        "{\"set\": {\"resuscitation.decision\": \"for_cpr\", \"prognosis\": \"months\"}}",
        "{\"add\": {\"medications\": [{\"id\": \"m9\", \"name\": \"Haloperidol\", \"dose\": \"0.5 mg\", "
        "\"anticipatory\": true}]}}",
        "{\"update\": {\"allergies\": [{\"id\": \"a1\", \"reaction\": \"Rash\"}]}, \"remove\": {\"contacts\": "
        "[\"c3\"]}}",
        "{\"set\": {\"patient.phone\": null, \"preferred_place_of_death\": [\"home\", \"hospice\"]}}",
    };
    int rc = 0;
    char name[32];
    uint8_t buf[1024];
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        buf[0] = 0;
        memcpy(buf + 1, docs[i], strlen(docs[i]));
        snprintf(name, sizeof name, "json-%zu", i);
        rc |= fuzz_write_seed(dir, name, buf, strlen(docs[i]) + 1);
    }
    /* msgpack: diffs between seeded plans and edited copies */
    for (long i = 0; i < 4; i++) {
        struct plan a, b;
        struct plan_change c;
        int status = 0, extra = 0;
        uint8_t *out = NULL;
        size_t len = 0;
        plan_init(&a);
        plan_init(&b);
        plan_change_init(&c);
        if (hub_seed_plan(5, i, &a, &status, &extra) != CMC_OK || hub_seed_plan(5, i + 10, &b, &status, &extra) != CMC_OK)
            return -1;
        cmc_free(b.plan_id);
        cmc_free(b.nhs_number);
        b.plan_id = cmc_strdup(a.plan_id);
        b.nhs_number = cmc_strdup(a.nhs_number);
        if (plan_change_diff(&a, &b, &c) != CMC_OK || plan_change_pack(&c, &out, &len) != CMC_OK)
            return -1;
        uint8_t *m = malloc(len + 1);
        if (m == NULL)
            return -1;
        m[0] = 1;
        memcpy(m + 1, out, len);
        snprintf(name, sizeof name, "mp-%ld", i);
        rc |= fuzz_write_seed(dir, name, m, len + 1);
        free(m);
        cmc_free(out);
        plan_change_free(&c);
        plan_free(&a);
        plan_free(&b);
    }
    return rc;
}
