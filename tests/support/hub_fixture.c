/* hub_fixture.c - see hub_fixture.h. */
#include "tests/support/hub_fixture.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/run.h"
#include "tests/support/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tst_hub_open(struct tst_hub *e, int64_t t0)
{
    if (t0 != 0)
        plat_fake_clock_enable(t0, 1000000000ull);
    assert_int_equal(tst_tmpdir_make("hubtest", e->tmp, sizeof e->tmp), 0);
    snprintf(e->dir, sizeof e->dir, "%s/hub", e->tmp);
    tst_hub_store_fresh();
    assert_int_equal(hub_init(e->dir), CMC_OK);
    assert_int_equal(hub_open(e->dir, &e->h), CMC_OK);
    hub_public_key(e->h, e->hub_pk);
}

void tst_hub_add_staff(struct tst_hub *e)
{
    assert_int_equal(hub_user_add(e->h, "gp1", "gp"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "nurse1", "clinician"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "admin1", "admin"), CMC_OK);
}

int tst_hub_setup_bare(void **state)
{
    struct tst_hub *e = calloc(1, sizeof *e);
    assert_non_null(e);
    tst_hub_open(e, TST_T0);
    *state = e;
    return 0;
}

int tst_hub_setup(void **state)
{
    struct tst_hub *e;
    tst_hub_setup_bare(state);
    e = *state;
    tst_hub_add_staff(e);
    assert_int_equal(hub_user_add(e->h, "pat1", "patient"), CMC_OK);
    return 0;
}

int tst_hub_teardown(void **state)
{
    struct tst_hub *e = *state;
    hub_close(e->h);
    assert_int_equal(tst_tmpdir_remove(e->tmp), 0);
    free(e);
    plat_fake_clock_disable();
    return 0;
}

char *tst_plan_json(long i, const char *nhs, const char *region, const char *team,
                    const char *care_home)
{
    struct plan p;
    int status, extra;
    char *json = NULL;
    size_t len;
    for (long k = i;; k++) {
        assert_int_equal(hub_seed_plan(99, k, &p, &status, &extra), CMC_OK);
        if (plan_validate(&p, PLAN_CHECK_COMPLETE) == CMC_OK)
            break;
        plan_free(&p);
    }
    if (nhs != NULL) {
        cmc_free(p.nhs_number);
        p.nhs_number = cmc_strdup(nhs);
    }
    cmc_free(p.region);
    p.region = region ? cmc_strdup(region) : NULL;
    cmc_free(p.team);
    p.team = team ? cmc_strdup(team) : NULL;
    cmc_free(p.care_home);
    p.care_home = care_home ? cmc_strdup(care_home) : NULL;
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    plan_free(&p);
    return json;
}

void tst_hub_import(struct tst_hub *e, long i, const char *nhs, const char *region,
                    const char *team, const char *as, char id[PLAN_ID_LEN + 1])
{
    char *json = tst_plan_json(i, nhs, region, team, NULL);
    assert_int_equal(hub_plan_import(e->h, as, json, strlen(json), id), CMC_OK);
    cmc_free(json);
}

void tst_hub_publish(struct tst_hub *e, const char *id)
{
    assert_int_equal(hub_plan_submit(e->h, "nurse1", id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", id), CMC_OK);
}

void tst_hub_import_published(struct tst_hub *e, long i, const char *nhs,
                              char id[PLAN_ID_LEN + 1])
{
    tst_hub_import(e, i, nhs, TST_REGION, TST_TEAM, "nurse1", id);
    tst_hub_publish(e, id);
}

static int tst_hub_init(void)
{
    return cry_init() == CMC_OK ? 0 : -1;
}

int tst_hub_run(const char *names, const CMUnitTestFunction *fns, size_t n,
                CMFixtureFunction setup)
{
    return tst_run(names, fns, n, tst_hub_init, setup, tst_hub_teardown);
}
