/* Coherent synthetic plans: every plan `cmc-hub seed` makes keeps every consistency rule
 * (10,000 of them, at two different dates), and the caseload looks real: about one
 * published plan in ten overdue for review, CPR decisions following the recommendations,
 * guidance naming only prescribed drugs, relatives' names that fit, care-home residents at
 * their home's address (and that address as the care home's), a positive "no known allergies"
 * on about a third of the plans listing none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/plat_test.h"
#include "hub/hub.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"
#include "sync/rules.h"

#include <stdio.h>
#include <string.h>

#define N_PLANS 10000
#define DAY 86400

struct tally {
    long plans, published, overdue, dnacpr, for_cpr, not_discussed, in_home, lpa, best_interest,
        edition2, no_allergies, nka;
};

static void today_text(char out[11])
{
    char now[21];
    plat_format_time(plat_wall_now(), now);
    snprintf(out, 11, "%.10s", now);
}

/* The address every resident of one care home shares. */
struct home_address {
    char home[64];
    char address[200];
};

static void check_home(struct home_address *homes, size_t *n, const struct plan *p)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(homes[i].home, p->care_home) == 0) {
            if (strcmp(homes[i].address, p->patient.address) != 0)
                fail_msg("residents of one care home at different addresses");
            break;
        }
    /* the care home's address is where the resident lives */
    if (p->care_home_address == NULL || strncmp(p->care_home_address, p->patient.address,
                                                strlen(p->patient.address)) != 0 ||
        strstr(p->care_home_address, p->patient.postcode) == NULL)
        fail_msg("a resident without the care home's address");
    for (size_t i = 0; i < *n; i++)
        if (strcmp(homes[i].home, p->care_home) == 0)
            return;
    assert_true(*n < 64);
    snprintf(homes[*n].home, sizeof homes[*n].home, "%s", p->care_home);
    snprintf(homes[*n].address, sizeof homes[*n].address, "%s", p->patient.address);
    (*n)++;
}

static void count(struct tally *t, const struct plan *p, int status, const char *today)
{
    t->plans++;
    t->edition2 += plan_edition(p) == 2;
    t->no_allergies += p->n_allergies == 0;
    t->nka += p->allergies_status == PLAN_ALLERGIES_NKA;
    if (p->care_home == NULL && p->care_home_address != NULL)
        fail_msg("a care home address for a patient not in a care home");
    if (status != PLAN_STATUS_PUBLISHED)
        return;
    t->published++;
    t->overdue += (rules_review_state(p, today) & RULES_REVIEW_OVERDUE) != 0;
    t->dnacpr += p->resuscitation.decision == PLAN_CPR_DNACPR;
    t->for_cpr += p->resuscitation.decision == PLAN_CPR_FOR_CPR;
    t->not_discussed += p->resuscitation.decision == PLAN_CPR_NOT_DISCUSSED;
    t->in_home += p->care_home != NULL;
    t->lpa += p->consent.basis == PLAN_CONSENT_LPA;
    t->best_interest += p->consent.basis == PLAN_CONSENT_BEST_INTEREST;
}

static void seed_run(int64_t wall, struct tally *t)
{
    struct home_address homes[64];
    size_t n_homes = 0;
    char today[11];
    plat_fake_clock_enable(wall, 1000000000ull);
    today_text(today);
    memset(t, 0, sizeof *t);
    for (long i = 0; i < N_PLANS; i++) {
        struct plan p;
        struct rules_report r;
        int status, extra;
        assert_int_equal(hub_seed_plan(7, i, &p, &status, &extra), CMC_OK);
        if (rules_check(&p, today, &r) != CMC_OK)
            fail_msg("seed 7 plan %ld on %s: %s", i, today, cmc_errmsg());
        if (plan_validate(&p, PLAN_CHECK_DRAFT) != CMC_OK)
            fail_msg("seed 7 plan %ld: %s", i, cmc_errmsg());
        if (status != PLAN_STATUS_DRAFT && status != PLAN_STATUS_NEEDS_FINALISATION &&
            plan_validate(&p, PLAN_CHECK_COMPLETE) != CMC_OK)
            fail_msg("seed 7 plan %ld incomplete: %s", i, cmc_errmsg());
        for (size_t k = 0; k < p.n_contacts; k++)
            if (strchr(p.contacts[k].name, '(') != NULL)
                fail_msg("a relationship written into a contact's name");
        if (p.care_home != NULL)
            check_home(homes, &n_homes, &p);
        count(t, &p, status, today);
        plan_free(&p);
    }
    plat_fake_clock_disable();
}

static void test_ten_thousand_plans_keep_every_rule(void **state)
{
    (void)state;
    static const int64_t days[] = {1796202000 /* 2026-12-02 */, 1796202000 + 900 * DAY};
    for (size_t d = 0; d < sizeof days / sizeof days[0]; d++) {
        struct tally t;
        seed_run(days[d], &t);
        double overdue = (double)t.overdue / (double)t.published;
        double dnacpr = (double)t.dnacpr / (double)t.published;
        printf("published %ld of %ld; overdue %.1f%%; DNACPR %.1f%%, FOR CPR %ld, not discussed %ld;"
               " care homes %ld; LPA consent %ld, best interest %ld\n",
               t.published, t.plans, 100 * overdue, 100 * dnacpr, t.for_cpr, t.not_discussed,
               t.in_home, t.lpa, t.best_interest);
        assert_true(overdue >= 0.05 && overdue <= 0.15);
        assert_true(dnacpr >= 0.65 && dnacpr <= 0.90);
        assert_true(t.for_cpr > 0 && t.not_discussed > 0 && t.lpa > 0 && t.best_interest > 0);
        assert_true(t.in_home > t.published / 20 && t.in_home < t.published / 4);
        assert_int_equal(t.edition2, t.plans);
        printf("no allergy listed %ld; of them \"no known allergies\" %ld\n", t.no_allergies, t.nka);
        assert_true(t.nka >= t.no_allergies / 5 && t.nka <= t.no_allergies / 2);
    }
}

/* Same seed, same day, same plans. */
static void test_seed_is_deterministic_for_a_day(void **state)
{
    (void)state;
    struct plan a, b;
    int sa, sb, xa, xb;
    plat_fake_clock_enable(1796202000, 1000000000ull);
    for (long i = 0; i < 50; i++) {
        assert_int_equal(hub_seed_plan(3, i, &a, &sa, &xa), CMC_OK);
        plat_fake_clock_set_wall(1796202000 + 3600 * (i % 10)); /* later the same day */
        assert_int_equal(hub_seed_plan(3, i, &b, &sb, &xb), CMC_OK);
        assert_true(plan_equal(&a, &b));
        plan_free(&a);
        plan_free(&b);
    }
    plat_fake_clock_disable();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_thousand_plans_keep_every_rule),
        cmocka_unit_test(test_seed_is_deterministic_for_a_day),
    };
    plan_json_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
