/*
 * rules.c - the clinical consistency rules (rules.h, docs/CLINICAL-RULES.md).
 *
 * One static function per rule, each adding violations to a report; rules_check runs them
 * all in the order of docs/CLINICAL-RULES.md so a plan's first violation is stable.
 */
#include "sync/rules.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct rule_ctx {
    const struct plan *p;
    const char *today; /* may be NULL: date rules are then skipped */
    struct rules_report *r;
    int edition; /* plan_edition(p): rules needing second-edition fields apply to edition 2 */
};

__attribute__((format(printf, 3, 4))) static void add(struct rule_ctx *c, const char *rule,
                                                      const char *fmt, ...)
{
    va_list ap;
    if (c->r->n < RULES_MAX) {
        struct rules_violation *v = &c->r->v[c->r->n];
        v->rule = rule;
        va_start(ap, fmt);
        vsnprintf(v->detail, sizeof v->detail, fmt, ap);
        va_end(ap);
    }
    c->r->n++;
}

static int has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Case-insensitive substring search for ASCII phrases. */
/* ASCII case folding: the phrases are ASCII, and other bytes only ever match themselves (as
 * tolower() does in the C locale), without a locale lookup per byte. */
static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* 1 when `phrase` (non-empty) appears in `text`, ignoring ASCII case. Runs on every plan a
 * device receives, so it skips ahead to the phrase's first letter before comparing. */
static int mentions(const char *text, const char *phrase)
{
    if (text == NULL)
        return 0;
    const unsigned char *ph = (const unsigned char *)phrase;
    unsigned char first = fold(ph[0]);
    for (const unsigned char *t = (const unsigned char *)text; *t != '\0'; t++) {
        if (fold(*t) != first)
            continue;
        size_t k = 1;
        while (ph[k] != '\0' && t[k] != '\0' && fold(t[k]) == fold(ph[k]))
            k++;
        if (ph[k] == '\0')
            return 1;
    }
    return 0;
}

static const struct plan_contact *contact_by_id(const struct plan *p, const char *id)
{
    for (size_t i = 0; id != NULL && i < p->n_contacts; i++)
        if (p->contacts[i].id != NULL && strcmp(p->contacts[i].id, id) == 0)
            return &p->contacts[i];
    return NULL;
}

static int has_role(const struct plan *p, int role)
{
    for (size_t i = 0; i < p->n_contacts; i++)
        if (p->contacts[i].role == role)
            return 1;
    return 0;
}

/* ---- CPR ------------------------------------------------------------------------------- */

/* DNACPR <=> CPR not recommended; "not yet discussed" carries no recommendation either way. */
static void rule_cpr_recommendation(struct rule_ctx *c)
{
    int d = c->p->resuscitation.decision, rec = c->p->recommendations.cpr.value;
    const char *f = "resuscitation.decision, recommendations.cpr";
    if (rec == PLAN_REC_NONE || d == PLAN_CPR_NONE)
        return;
    if (d == PLAN_CPR_DNACPR && rec != PLAN_REC_NOT_RECOMMENDED)
        add(c, "cpr-recommendation", "%s: a DNACPR decision needs CPR \"not_recommended\"", f);
    else if (d == PLAN_CPR_FOR_CPR && rec == PLAN_REC_NOT_RECOMMENDED)
        add(c, "cpr-recommendation", "%s: FOR CPR contradicts CPR \"not_recommended\"", f);
    else if (d == PLAN_CPR_NOT_DISCUSSED && rec != PLAN_REC_DISCUSS)
        add(c, "cpr-recommendation",
            "%s: CPR not yet discussed, so the recommendation can only be \"discuss\"", f);
}

static void rule_dnacpr_recorded(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    if (p->resuscitation.decision != PLAN_CPR_DNACPR)
        return;
    if (!has(p->resuscitation.decided_by))
        add(c, "dnacpr-recorded", "resuscitation.decided_by: a DNACPR records who decided");
    if (!has(p->resuscitation.decided_at))
        add(c, "dnacpr-recorded", "resuscitation.decided_at: a DNACPR records when");
    if (!has(p->resuscitation.form_location))
        add(c, "dnacpr-recorded", "resuscitation.form_location: a DNACPR says where the form is"
                                  " (or \"no paper form\")");
}

static void rule_not_discussed(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    if (p->resuscitation.decision != PLAN_CPR_NOT_DISCUSSED)
        return;
    if (has(p->resuscitation.decided_by) || has(p->resuscitation.decided_at))
        add(c, "not-discussed-no-decider",
            "resuscitation.decision, resuscitation.decided_by, resuscitation.decided_at:"
            " CPR not yet discussed records no decider and no decision date");
}

/* Free text that contradicts the CPR decision. */
static void rule_cpr_text(struct rule_ctx *c)
{
    const char *ceiling = c->p->ceiling_of_treatment;
    if (c->p->resuscitation.decision != PLAN_CPR_FOR_CPR || ceiling == NULL)
        return;
    if (mentions(ceiling, "except CPR") || mentions(ceiling, "not for CPR") ||
        mentions(ceiling, "DNACPR") || mentions(ceiling, "not for resuscitation"))
        add(c, "cpr-text", "resuscitation.decision, ceiling_of_treatment: FOR CPR, but the"
                           " ceiling of treatment excludes CPR");
    if (mentions(ceiling, "comfort care only") || mentions(ceiling, "comfort only"))
        add(c, "cpr-text", "resuscitation.decision, ceiling_of_treatment: FOR CPR, but the"
                           " ceiling of treatment is comfort care only");
}

/* ---- admission ------------------------------------------------------------------------- */

static int says_no_admission(const char *text)
{
    return mentions(text, "avoid admission") || mentions(text, "not for hospital admission") ||
           mentions(text, "not for admission") || mentions(text, "not for hospital transfer") ||
           mentions(text, "not for transfer") || mentions(text, "do not admit");
}

static void rule_admission(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    if (p->hospital_admission_wanted != 1)
        return;
    if (p->recommendations.hospital_admission.value == PLAN_REC_NOT_RECOMMENDED)
        add(c, "admission", "hospital_admission_wanted, recommendations.hospital_admission:"
                            " admission wanted but not recommended");
    if (says_no_admission(p->ceiling_of_treatment))
        add(c, "admission", "hospital_admission_wanted, ceiling_of_treatment: admission wanted,"
                            " but the ceiling of treatment avoids admission");
    for (size_t i = 0; i < p->n_anticipated_problems; i++)
        if (says_no_admission(p->anticipated_problems[i].guidance)) {
            add(c, "admission", "hospital_admission_wanted, anticipated_problems[%s].guidance:"
                                " admission wanted, but the guidance says not to admit",
                p->anticipated_problems[i].id);
            break;
        }
}

/* ---- consent, capacity and representation --------------------------------------------- */

static void rule_consent(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    int cap = p->capacity.has_capacity;
    switch ((enum plan_consent_basis)p->consent.basis) {
    case PLAN_CONSENT_LPA: {
        const struct plan_contact *a = contact_by_id(p, p->capacity.lpa_contact);
        if (c->edition < 2) { /* the first edition can only name the attorney */
            if (!has_role(p, PLAN_CONTACT_LPA))
                add(c, "lpa-consent", "consent.basis, contacts: consent by LPA needs the attorney"
                                      " among the contacts (role lpa)");
            break;
        }
        if (p->capacity.lpa_health_welfare != 1 || p->capacity.lpa_registered != 1)
            add(c, "lpa-consent", "consent.basis, capacity.lpa_health_welfare,"
                                  " capacity.lpa_registered: consent by LPA needs a registered"
                                  " health-and-welfare LPA");
        if (a == NULL || a->role != PLAN_CONTACT_LPA)
            add(c, "lpa-consent", "consent.basis, capacity.lpa_contact: consent by LPA needs the"
                                  " attorney among the contacts (role lpa)");
        break;
    }
    case PLAN_CONSENT_BEST_INTEREST:
        if (cap != PLAN_CAPACITY_NO && c->edition >= 2)
            add(c, "best-interest-consent", "consent.basis, capacity.has_capacity: best-interest"
                                            " consent needs capacity \"no\"");
        if (p->capacity.lpa_health_welfare == 1 || has_role(p, PLAN_CONTACT_LPA))
            add(c, "best-interest-consent", "consent.basis, capacity.lpa_health_welfare, contacts:"
                                            " best-interest consent while an LPA exists (the"
                                            " attorney decides)");
        break;
    case PLAN_CONSENT_PATIENT:
        if (cap == PLAN_CAPACITY_NO)
            add(c, "patient-consent", "consent.basis, capacity.has_capacity: the patient consented"
                                      " but lacks capacity for these decisions");
        break;
    case PLAN_CONSENT_NONE:
        break;
    }
    if (has(p->capacity.lpa_contact) && contact_by_id(p, p->capacity.lpa_contact) == NULL)
        add(c, "contact-reference", "capacity.lpa_contact: names no contact of this plan");
    if (has(p->capacity.parental_responsibility_contact) &&
        contact_by_id(p, p->capacity.parental_responsibility_contact) == NULL)
        add(c, "contact-reference",
            "capacity.parental_responsibility_contact: names no contact of this plan");
}

/* 1 if the patient is under 18 on `today`. */
static int under_18(const struct plan *p, const char *today)
{
    const char *dob = p->patient.date_of_birth;
    char adult[11];
    int year;
    if (today == NULL || dob == NULL || strlen(dob) != 10 || sscanf(dob, "%4d", &year) != 1)
        return 0;
    snprintf(adult, sizeof adult, "%04d%s", (year + 18) % 10000, dob + 4);
    return strcmp(today, adult) < 0;
}

static void rule_child(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    if (!under_18(p, c->today))
        return;
    if (p->capacity.gillick_competent == 1 && p->consent.basis == PLAN_CONSENT_PATIENT)
        return;
    if (!has(p->capacity.parental_responsibility_contact))
        add(c, "child-consent", "patient.date_of_birth, capacity.parental_responsibility_contact,"
                                " capacity.gillick_competent: a patient under 18 needs who holds"
                                " parental responsibility, or Gillick competence");
}

/* ---- ADRT, GP, dates, codes, drugs ---------------------------------------------------- */

static void rule_adrt(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    if (p->adrt.exists != 1) {
        if (has(p->adrt.refuses) || p->adrt.life_sustaining == 1)
            add(c, "adrt", "adrt.exists, adrt.refuses: refusals recorded but no ADRT");
        return;
    }
    if (!has(p->adrt.refuses) && c->edition >= 2)
        add(c, "adrt", "adrt.refuses: an ADRT says what treatment it refuses");
    if (p->adrt.life_sustaining == 1 && p->adrt.signed_witnessed != 1)
        add(c, "adrt", "adrt.life_sustaining, adrt.signed_witnessed: refusing life-sustaining"
                       " treatment needs an ADRT written, signed and witnessed");
}

static void rule_gp(struct rule_ctx *c)
{
    if (!has_role(c->p, PLAN_CONTACT_GP))
        add(c, "gp-contact", "contacts: a plan names a GP (a contact with role gp)");
}

static void rule_dates(struct rule_ctx *c)
{
    static const char *const paths[] = {"patient.date_of_birth", "consent.recorded_at",
                                        "resuscitation.decided_at", "capacity.assessed_at",
                                        "recommendations.recommended_at", "approved_at"};
    if (c->today == NULL)
        return;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const struct plan_field *f = plan_field_by_path(paths[i]);
        const char *s = *(char *const *)((const char *)c->p + f->offset);
        if (s != NULL && strlen(s) >= 10 && strncmp(s, c->today, 10) > 0)
            add(c, "no-future-dates", "%s: in the future", f->path);
    }
}

static void rule_review(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    char latest[11];
    if (p->status != PLAN_STATUS_PUBLISHED || p->approved_at == NULL)
        return;
    if (!has(p->review_due)) {
        add(c, "review-date", "review_due: a published plan has a review date");
        return;
    }
    char approved[11];
    snprintf(approved, sizeof approved, "%.10s", p->approved_at);
    if (rules_date_add(approved, RULES_REVIEW_MAX_DAYS, latest) == CMC_OK &&
        strcmp(p->review_due, latest) > 0)
        add(c, "review-date", "review_due, approved_at: the review is at most 12 months after"
                              " approval");
    if (strcmp(p->review_due, approved) < 0)
        add(c, "review-date", "review_due, approved_at: the review date is before the approval");
}

static int code_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 6 || n > 18 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static void rule_codes(struct rule_ctx *c)
{
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *lf = &plan_fields[i];
        size_t n = 0;
        if (lf->type != PLAN_F_LIST)
            continue;
        const char *items = plan_list_items(lf, c->p, &n);
        for (size_t k = 1; k < lf->list->n_fields; k++) {
            const struct plan_field *f = &lf->list->fields[k];
            if (!(f->flags & PLAN_FF_CODE))
                continue;
            for (size_t j = 0; j < n; j++) {
                const void *item = items + j * lf->list->item_size;
                const char *s = *(char *const *)((const char *)item + f->offset);
                if (s != NULL && !code_ok(s))
                    add(c, "codes", "%s[%s].%s: not a SNOMED CT or dm+d id (6 to 18 digits)",
                        lf->path, plan_item_id(lf->list, item), f->path);
            }
        }
    }
}

/* Drugs that anticipatory guidance names; guidance may name one only if it is prescribed. */
static const char *const guidance_drugs[] = {
    "midazolam", "morphine", "oxycodone", "diamorphine", "alfentanil", "haloperidol",
    "levomepromazine", "hyoscine", "glycopyrronium", "lorazepam", "metoclopramide",
    "cyclizine", "glucagon", "buccolam", NULL};

static int prescribed(const struct plan *p, const char *drug)
{
    for (size_t i = 0; i < p->n_medications; i++)
        if (mentions(p->medications[i].name, drug))
            return 1;
    return 0;
}

static void rule_guidance_drugs(struct rule_ctx *c)
{
    const struct plan *p = c->p;
    for (size_t i = 0; i < p->n_anticipated_problems; i++)
        for (size_t d = 0; guidance_drugs[d] != NULL; d++)
            if (mentions(p->anticipated_problems[i].guidance, guidance_drugs[d]) &&
                !prescribed(p, guidance_drugs[d])) {
                add(c, "guidance-drugs", "anticipated_problems[%s].guidance, medications: the"
                                         " guidance names a drug that is not prescribed",
                    p->anticipated_problems[i].id);
                break;
            }
}

static void rule_safety(struct rule_ctx *c)
{
    const char *s = c->p->safety.access;
    size_t run = 0;
    if (s == NULL || !(mentions(s, "code") || mentions(s, "key safe") || mentions(s, "keysafe")))
        return;
    for (; *s != '\0'; s++) {
        run = (*s >= '0' && *s <= '9') ? run + 1 : 0;
        if (run >= 3) {
            add(c, "no-key-code", "safety.access: looks like a key-safe code; say who holds it"
                                  " instead");
            return;
        }
    }
}

/* "No known allergies" is a positive record that there are none: a listed allergy
 * contradicts it, and a crew must not have to guess which one is true. */
static void rule_allergies(struct rule_ctx *c)
{
    if (c->p->allergies_status == PLAN_ALLERGIES_NKA && c->p->n_allergies > 0)
        add(c, "allergies-status", "allergies_status, allergies: \"no_known_allergies\" while"
                                   " %zu allerg%s listed",
            c->p->n_allergies, c->p->n_allergies == 1 ? "y is" : "ies are");
}

/* ---- entry points ---------------------------------------------------------------------- */

static const struct {
    const char *rule;
    const char *hazard;
} hazards[] = {
    {"cpr-recommendation", "contradictory CPR content"},
    {"dnacpr-recorded", "invalid DNACPR"},
    {"not-discussed-no-decider", "contradictory CPR content"},
    {"cpr-text", "contradictory CPR content"},
    {"admission", "contradictory admission content"},
    {"lpa-consent", "consent without authority"},
    {"best-interest-consent", "consent without authority"},
    {"patient-consent", "consent without authority"},
    {"contact-reference", "consent without authority"},
    {"child-consent", "consent without authority"},
    {"adrt", "unusable ADRT"},
    {"gp-contact", "no clinician to call"},
    {"no-future-dates", "implausible record"},
    {"review-date", "review that never renews"},
    {"codes", "implausible record"},
    {"guidance-drugs", "guidance a crew cannot follow"},
    {"no-key-code", "secret in the plan"},
    {"allergies-status", "contradictory allergy content"},
};

const char *rules_hazard(const char *rule)
{
    for (size_t i = 0; rule != NULL && i < sizeof hazards / sizeof hazards[0]; i++)
        if (strcmp(hazards[i].rule, rule) == 0)
            return hazards[i].hazard;
    return NULL;
}

int rules_check(const struct plan *p, const char *today, struct rules_report *report)
{
    struct rules_report local;
    struct rule_ctx c = {p, today, report != NULL ? report : &local, plan_edition(p)};
    c.r->n = 0;
    if (today != NULL && strlen(today) < 10)
        c.today = NULL;
    rule_cpr_recommendation(&c);
    rule_dnacpr_recorded(&c);
    rule_not_discussed(&c);
    rule_cpr_text(&c);
    rule_admission(&c);
    rule_consent(&c);
    rule_child(&c);
    rule_adrt(&c);
    rule_gp(&c);
    rule_dates(&c);
    rule_review(&c);
    rule_codes(&c);
    rule_guidance_drugs(&c);
    rule_safety(&c);
    rule_allergies(&c);
    if (c.r->n == 0)
        return CMC_OK;
    if (c.r->n == 1)
        return cmc_fail(CMC_ERR_INVALID, "%s (rule %s)", c.r->v[0].detail, c.r->v[0].rule);
    return cmc_fail(CMC_ERR_INVALID, "%s (rule %s; %zu rules broken in all)", c.r->v[0].detail,
                    c.r->v[0].rule, c.r->n);
}

unsigned rules_review_state(const struct plan *p, const char *today)
{
    unsigned s = 0;
    if (today == NULL)
        return 0;
    if (has(p->review_due) && strncmp(p->review_due, today, 10) < 0)
        s |= RULES_REVIEW_OVERDUE;
    if (has(p->resuscitation.review_date) && strncmp(p->resuscitation.review_date, today, 10) < 0)
        s |= RULES_CPR_REVIEW_LAPSED;
    return s;
}

int rules_date_add(const char *date, int days, char out[11])
{
    char buf[21];
    int64_t t;
    if (date == NULL || strlen(date) != 10 || plat_parse_time(date, &t) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "not a calendar date (YYYY-MM-DD)");
    plat_format_time(t + (int64_t)days * 86400, buf);
    snprintf(out, 11, "%.10s", buf);
    return CMC_OK;
}
