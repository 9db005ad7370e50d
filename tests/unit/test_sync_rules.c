/* Consistency rules: the second-edition example keeps every rule; each contradiction found
 * in practice is refused with the rule's id and the fields involved, never their values; a
 * first-edition plan is held to what it can express; review state and date arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"
#include "sync/rules.h"
#include "tests/support/example_plan_model.h"

#include <stdio.h>
#include <string.h>

#define TODAY "2026-12-02"
#define ED2_EXAMPLE "docs/examples/plan-second-edition.json"
#define ED1_EXAMPLE "../shared/examples/plan.json"

static void set(char **member, const char *s)
{
    cmc_free(*member);
    *member = s != NULL ? cmc_strdup(s) : NULL;
}

/* ---- one mutation per rule ------------------------------------------------------------- */

static void m_dnacpr_recommended(struct plan *p) { p->recommendations.cpr.value = PLAN_REC_RECOMMENDED; }
static void m_for_cpr_not_recommended(struct plan *p) { p->resuscitation.decision = PLAN_CPR_FOR_CPR; }
static void m_dnacpr_no_decider(struct plan *p) { set(&p->resuscitation.decided_by, NULL); }
static void m_dnacpr_no_date(struct plan *p) { set(&p->resuscitation.decided_at, NULL); }
static void m_dnacpr_no_form(struct plan *p) { set(&p->resuscitation.form_location, NULL); }
static void m_not_discussed_decider(struct plan *p)
{
    p->resuscitation.decision = PLAN_CPR_NOT_DISCUSSED;
    p->recommendations.cpr.value = PLAN_REC_DISCUSS;
}
static void m_for_cpr_except_cpr(struct plan *p)
{
    p->resuscitation.decision = PLAN_CPR_FOR_CPR;
    p->recommendations.cpr.value = PLAN_REC_RECOMMENDED;
    set(&p->ceiling_of_treatment, "Full active treatment except CPR; for admission if needed.");
}
static void m_for_cpr_comfort_only(struct plan *p)
{
    p->resuscitation.decision = PLAN_CPR_FOR_CPR;
    p->recommendations.cpr.value = PLAN_REC_RECOMMENDED;
    set(&p->ceiling_of_treatment, "Comfort care only at home; not for hospital transfer.");
}
static void m_admission_vs_ceiling(struct plan *p) { p->hospital_admission_wanted = 1; }
static void m_admission_not_recommended(struct plan *p)
{
    set(&p->ceiling_of_treatment, "Ward-based care");
    p->hospital_admission_wanted = 1;
    p->recommendations.hospital_admission.value = PLAN_REC_NOT_RECOMMENDED;
}
static void m_admission_vs_guidance(struct plan *p)
{
    set(&p->ceiling_of_treatment, "Ward-based care");
    p->hospital_admission_wanted = 1;
    set(&p->anticipated_problems[1].guidance, "Oral antibiotics. Not for hospital admission.");
}
static void m_lpa_unregistered(struct plan *p)
{
    p->consent.basis = PLAN_CONSENT_LPA;
    p->capacity.lpa_registered = 0;
}
static void m_lpa_no_attorney(struct plan *p)
{
    p->consent.basis = PLAN_CONSENT_LPA;
    set(&p->capacity.lpa_contact, "c2"); /* the palliative line, not an attorney */
}
static void m_best_interest_with_lpa(struct plan *p)
{
    p->consent.basis = PLAN_CONSENT_BEST_INTEREST;
    p->capacity.has_capacity = PLAN_CAPACITY_NO;
}
static void m_best_interest_with_capacity(struct plan *p)
{
    p->consent.basis = PLAN_CONSENT_BEST_INTEREST;
    p->capacity.lpa_health_welfare = 0;
    set(&p->capacity.lpa_contact, NULL);
    p->contacts[2].role = PLAN_CONTACT_NEXT_OF_KIN;
}
static void m_patient_without_capacity(struct plan *p) { p->capacity.has_capacity = PLAN_CAPACITY_NO; }
static void m_dangling_contact(struct plan *p) { set(&p->capacity.lpa_contact, "c9"); }
static void m_child_no_parent(struct plan *p) { set(&p->patient.date_of_birth, "2015-06-01"); }
static void m_adrt_no_refusal(struct plan *p) { set(&p->adrt.refuses, NULL); }
static void m_adrt_unwitnessed(struct plan *p) { p->adrt.signed_witnessed = 0; }
static void m_no_gp(struct plan *p) { p->contacts[0].role = PLAN_CONTACT_OTHER; }
static void m_future_consent(struct plan *p) { set(&p->consent.recorded_at, "2027-01-01T10:00:00Z"); }
static void m_future_decision(struct plan *p) { set(&p->resuscitation.decided_at, "2026-12-03"); }
static void m_review_too_far(struct plan *p) { set(&p->review_due, "2027-02-13"); }
static void m_no_review(struct plan *p) { set(&p->review_due, NULL); }
static void m_bad_code(struct plan *p) { set(&p->diagnoses[0].snomed, "breast ca"); }
static void m_drug_not_prescribed(struct plan *p)
{
    set(&p->anticipated_problems[0].guidance, "Give haloperidol s/c as prescribed.");
}
static void m_key_code(struct plan *p) { set(&p->safety.access, "Key safe code 4471 by the door"); }
static void m_nka_with_allergy(struct plan *p) { p->allergies_status = PLAN_ALLERGIES_NKA; }

static const struct {
    const char *name;
    void (*mutate)(struct plan *);
    const char *rule;
    const char *field; /* a field the detail must name */
} cases[] = {
    {"DNACPR with CPR recommended", m_dnacpr_recommended, "cpr-recommendation", "recommendations.cpr"},
    {"FOR CPR, CPR not recommended", m_for_cpr_not_recommended, "cpr-recommendation", "resuscitation.decision"},
    {"DNACPR without decider", m_dnacpr_no_decider, "dnacpr-recorded", "resuscitation.decided_by"},
    {"DNACPR without date", m_dnacpr_no_date, "dnacpr-recorded", "resuscitation.decided_at"},
    {"DNACPR without form location", m_dnacpr_no_form, "dnacpr-recorded", "resuscitation.form_location"},
    {"not discussed, with decider", m_not_discussed_decider, "not-discussed-no-decider", "resuscitation.decided_by"},
    {"FOR CPR above 'except CPR'", m_for_cpr_except_cpr, "cpr-text", "ceiling_of_treatment"},
    {"FOR CPR with comfort only", m_for_cpr_comfort_only, "cpr-text", "ceiling_of_treatment"},
    {"admission wanted, ceiling avoids it", m_admission_vs_ceiling, "admission", "ceiling_of_treatment"},
    {"admission wanted, not recommended", m_admission_not_recommended, "admission", "recommendations.hospital_admission"},
    {"admission wanted, guidance refuses it", m_admission_vs_guidance, "admission", "anticipated_problems[p2].guidance"},
    {"LPA consent, LPA unregistered", m_lpa_unregistered, "lpa-consent", "capacity.lpa_registered"},
    {"LPA consent, no attorney contact", m_lpa_no_attorney, "lpa-consent", "capacity.lpa_contact"},
    {"best interest while an LPA exists", m_best_interest_with_lpa, "best-interest-consent", "capacity.lpa_health_welfare"},
    {"best interest with capacity", m_best_interest_with_capacity, "best-interest-consent", "capacity.has_capacity"},
    {"patient consent without capacity", m_patient_without_capacity, "patient-consent", "capacity.has_capacity"},
    {"attorney id names no contact", m_dangling_contact, "contact-reference", "capacity.lpa_contact"},
    {"under 18, no parental responsibility", m_child_no_parent, "child-consent", "capacity.parental_responsibility_contact"},
    {"ADRT refusing nothing", m_adrt_no_refusal, "adrt", "adrt.refuses"},
    {"life-sustaining ADRT not witnessed", m_adrt_unwitnessed, "adrt", "adrt.signed_witnessed"},
    {"no GP", m_no_gp, "gp-contact", "contacts"},
    {"consent recorded in the future", m_future_consent, "no-future-dates", "consent.recorded_at"},
    {"CPR decided in the future", m_future_decision, "no-future-dates", "resuscitation.decided_at"},
    {"review more than 12 months on", m_review_too_far, "review-date", "review_due"},
    {"published without review date", m_no_review, "review-date", "review_due"},
    {"malformed SNOMED CT id", m_bad_code, "codes", "diagnoses[d1].snomed"},
    {"guidance names an unprescribed drug", m_drug_not_prescribed, "guidance-drugs", "anticipated_problems[p1].guidance"},
    {"key-safe code written down", m_key_code, "no-key-code", "safety.access"},
    {"no known allergies, allergy listed", m_nka_with_allergy, "allergies-status", "allergies_status"},
};

/* The plan keeps every rule: rules_check says so, and `r` (when not NULL) lists no breach. */
static void expect_kept(const struct plan *p, struct rules_report *r)
{
    if (rules_check(p, TODAY, r) != CMC_OK)
        fail_msg("%s", cmc_errmsg());
    if (r != NULL)
        assert_int_equal(r->n, 0);
}

static void test_example_keeps_every_rule(void **state)
{
    (void)state;
    struct plan p;
    struct rules_report r;
    tst_plan_load_file(ED2_EXAMPLE, &p);
    expect_kept(&p, &r);
    plan_free(&p);
    tst_plan_load_file(ED1_EXAMPLE, &p); /* a first-edition plan keeps what it can express */
    expect_kept(&p, NULL);
    plan_free(&p);
}

/* "No known allergies" with an empty list is a consistent plan, and so is an empty list
 * with no status at all ("none recorded"). */
static void test_no_known_allergies_alone_is_kept(void **state)
{
    (void)state;
    struct plan p;
    tst_plan_load_file(ED2_EXAMPLE, &p);
    plan_field_clear(plan_field_by_path("allergies"), &p);
    assert_int_equal(p.n_allergies, 0);
    expect_kept(&p, NULL);
    p.allergies_status = PLAN_ALLERGIES_NKA;
    expect_kept(&p, NULL);
    plan_free(&p);
}

static void test_each_contradiction_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan p;
        struct rules_report r;
        int found = 0;
        tst_plan_load_file(ED2_EXAMPLE, &p);
        cases[i].mutate(&p);
        int rc = rules_check(&p, TODAY, &r);
        if (rc != CMC_ERR_INVALID)
            fail_msg("%s: not refused", cases[i].name);
        for (size_t k = 0; k < r.n && k < RULES_MAX; k++)
            if (strcmp(r.v[k].rule, cases[i].rule) == 0 && strstr(r.v[k].detail, cases[i].field) != NULL)
                found = 1;
        if (!found)
            fail_msg("%s: expected rule %s naming %s; got %s", cases[i].name, cases[i].rule,
                     cases[i].field, cmc_errmsg());
        /* the error detail names the rule and never quotes a value */
        assert_non_null(strstr(cmc_errmsg(), "(rule "));
        assert_null(strstr(cmc_errmsg(), "Okafor"));
        assert_null(strstr(cmc_errmsg(), "4471"));
        assert_non_null(rules_hazard(cases[i].rule));
        plan_free(&p);
    }
}

/* What a first-edition plan cannot say is not held against it; what it can say is. */
static void test_first_edition_held_to_what_it_expresses(void **state)
{
    (void)state;
    struct plan p;
    struct rules_report r;
    tst_plan_load_file(ED1_EXAMPLE, &p);
    assert_int_equal(plan_edition(&p), 1);
    /* its ADRT says no refusal (the first edition has no field for one): accepted */
    assert_int_equal(rules_check(&p, TODAY, &r), CMC_OK);
    /* LPA consent with no attorney among its contacts: refused */
    p.consent.basis = PLAN_CONSENT_LPA;
    p.contacts[2].role = PLAN_CONTACT_NEXT_OF_KIN;
    assert_int_equal(rules_check(&p, TODAY, &r), CMC_ERR_INVALID);
    assert_string_equal(r.v[0].rule, "lpa-consent");
    /* best interest while an LPA is among the contacts: refused */
    p.contacts[2].role = PLAN_CONTACT_LPA;
    p.consent.basis = PLAN_CONSENT_BEST_INTEREST;
    assert_int_equal(rules_check(&p, TODAY, &r), CMC_ERR_INVALID);
    assert_string_equal(r.v[0].rule, "best-interest-consent");
    plan_free(&p);
}

static void test_child_with_parental_responsibility_or_gillick(void **state)
{
    (void)state;
    struct plan p;
    tst_plan_load_file(ED2_EXAMPLE, &p);
    set(&p.patient.date_of_birth, "2012-12-03"); /* 17 on TODAY, 18 tomorrow */
    assert_int_equal(rules_check(&p, TODAY, NULL), CMC_ERR_INVALID);
    set(&p.capacity.parental_responsibility_contact, "c3");
    assert_int_equal(rules_check(&p, TODAY, NULL), CMC_OK);
    set(&p.capacity.parental_responsibility_contact, NULL);
    p.capacity.gillick_competent = 1; /* consent basis is the patient's own */
    assert_int_equal(rules_check(&p, TODAY, NULL), CMC_OK);
    set(&p.patient.date_of_birth, "2008-12-02"); /* 18 today */
    p.capacity.gillick_competent = PLAN_UNSET;
    assert_int_equal(rules_check(&p, TODAY, NULL), CMC_OK);
    plan_free(&p);
}

static void test_review_state_and_dates(void **state)
{
    (void)state;
    struct plan p;
    char out[11];
    tst_plan_load_file(ED2_EXAMPLE, &p);
    /* the example is due 2027-02-11, its CPR decision too */
    assert_int_equal(rules_review_state(&p, "2027-02-11"), 0);
    assert_int_equal(rules_review_state(&p, "2027-02-12"),
                     RULES_REVIEW_OVERDUE | RULES_CPR_REVIEW_LAPSED);
    set(&p.resuscitation.review_date, "2026-08-11");
    assert_int_equal(rules_review_state(&p, TODAY), RULES_CPR_REVIEW_LAPSED);
    assert_int_equal(rules_date_add("2026-02-11", 365, out), CMC_OK);
    assert_string_equal(out, "2027-02-11");
    assert_int_equal(rules_date_add("2028-02-28", 1, out), CMC_OK);
    assert_string_equal(out, "2028-02-29");
    assert_int_equal(rules_date_add("2026-02-30", 1, out), CMC_ERR_INVALID);
    /* a review exactly 12 months (a leap year's 366 days) after approval is accepted */
    set(&p.review_due, "2027-02-12");
    assert_int_equal(rules_check(&p, TODAY, NULL), CMC_OK);
    plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_keeps_every_rule),
        cmocka_unit_test(test_each_contradiction_is_refused),
        cmocka_unit_test(test_no_known_allergies_alone_is_kept),
        cmocka_unit_test(test_first_edition_held_to_what_it_expresses),
        cmocka_unit_test(test_child_with_parental_responsibility_or_gillick),
        cmocka_unit_test(test_review_state_and_dates),
    };
    plan_json_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
