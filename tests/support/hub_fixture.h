/*
 * hub_fixture.h - a hub store in a temporary directory, for the hub's unit tests, and the
 * few steps most of them take: import a complete synthetic plan, publish it.
 *
 * tst_hub_setup() and tst_hub_teardown() are cmocka setup/teardown functions: setup turns
 * the fake clock on at TST_T0, makes a temporary directory, creates and opens a hub store in
 * its "hub" subfolder (struct tst_hub.dir) and adds the users gp1 (gp), nurse1 (clinician),
 * admin1 (admin) and pat1 (patient); tst_hub_setup_bare() adds no users. Teardown closes the
 * hub, removes the whole directory without a shell and turns the fake clock off.
 *
 * TST_HUB_MAIN(test_a, test_b, ...) writes a test program's main(): it initialises the crypto
 * layer and runs each test, in order, with a fresh hub from tst_hub_setup()
 * (TST_HUB_MAIN_BARE: from tst_hub_setup_bare()).
 *
 * Every helper fails the running test (cmocka assertion) instead of returning an error. The
 * plans come from the hub's seed generator, so they are synthetic. This file is archived into
 * the test-support library: it is linked only into tests that call it (those link libhub).
 */
#ifndef CMC_TEST_SUPPORT_HUB_FIXTURE_H
#define CMC_TEST_SUPPORT_HUB_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "hub/hub.h"
#include "sync/plan.h"

#define TST_T0 1767225600 /* 2026-01-01 */
#define TST_REGION "south-east-london"
#define TST_TEAM "peckham-district-nursing"

struct tst_hub {
    char tmp[64];  /* the temporary directory, removed by teardown */
    char dir[80];  /* the hub store: tmp + "/hub" */
    hub *h;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
};

int tst_hub_setup(void **state);
int tst_hub_setup_bare(void **state);
/* Also for a test's own state that holds a struct tst_hub as its first member, allocated with
 * calloc(): the whole allocation is freed. */
int tst_hub_teardown(void **state);

/* The steps of tst_hub_setup_bare() for a struct tst_hub the caller allocated (zeroed): the
 * fake clock on at t0 (0 leaves the real clock), the temporary directory, the store opened. */
void tst_hub_open(struct tst_hub *e, int64_t t0);
/* Adds the staff users of tst_hub_setup(): gp1 (gp), nurse1 (clinician), admin1 (admin). */
void tst_hub_add_staff(struct tst_hub *e);

/* The first complete seed plan at or after index i, with the given NHS number (NULL keeps the
 * seed's), region, team and care home (NULL clears each), as JSON; cmc_free() it. */
char *tst_plan_json(long i, const char *nhs, const char *region, const char *team,
                    const char *care_home);
/* Imports tst_plan_json(i, nhs, region, team, NULL) as user `as`; the plan's id into id. */
void tst_hub_import(struct tst_hub *e, long i, const char *nhs, const char *region,
                    const char *team, const char *as, char id[PLAN_ID_LEN + 1]);
/* Submits (nurse1) and approves (gp1) the plan. */
void tst_hub_publish(struct tst_hub *e, const char *id);
/* tst_hub_import() by nurse1 into TST_REGION and TST_TEAM, then tst_hub_publish(). */
void tst_hub_import_published(struct tst_hub *e, long i, const char *nhs,
                              char id[PLAN_ID_LEN + 1]);

/* The runner behind TST_HUB_MAIN: `names` is the comma-separated list of the n tests' names
 * (the macro's arguments as written). Returns the number of tests that failed. */
int tst_hub_run(const char *names, const CMUnitTestFunction *fns, size_t n,
                CMFixtureFunction setup);

#define TST_HUB_MAIN_WITH(setup, ...)                                                       \
    int main(void)                                                                          \
    {                                                                                       \
        static const CMUnitTestFunction tests[] = {__VA_ARGS__};                            \
        return tst_hub_run(#__VA_ARGS__, tests, sizeof tests / sizeof tests[0], setup);     \
    }
#define TST_HUB_MAIN(...) TST_HUB_MAIN_WITH(tst_hub_setup, __VA_ARGS__)
#define TST_HUB_MAIN_BARE(...) TST_HUB_MAIN_WITH(tst_hub_setup_bare, __VA_ARGS__)

#endif
