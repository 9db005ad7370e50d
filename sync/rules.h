/*
 * rules.h - the clinical consistency rules a shared plan keeps (docs/CLINICAL-RULES.md).
 *
 * A plan can pass every type check of plan_validate() and still tell a crew two things at
 * once: "FOR CPR" above "comfort care only", a DNACPR with nobody who decided it, consent
 * by an attorney nobody recorded. These rules read across fields. The hub refuses to submit
 * or approve a plan that breaks one (exit 2, the error naming the fields); a device calls
 * rules_check() when a bundle is applied and shows a plan that breaks one with a warning,
 * never dropping it (a crew is better served by a flagged plan than by none).
 *
 * A first-edition plan cannot say whether an LPA is registered or what an ADRT refuses; the
 * rules that need those second-edition fields apply to second-edition plans, and a
 * first-edition plan is held to what it can express (docs/CLINICAL-RULES.md says which).
 *
 * Every violation names the fields involved by their dotted paths and the rule by a stable
 * id ("cpr-recommendation"); it never quotes a field's value, so details are safe to log.
 * Rules that read free text (ceiling, guidance) look for a few fixed phrases and drug
 * names; they catch the contradictions seen in practice, not every possible one.
 *
 * `today` is "YYYY-MM-DD" (UTC): the rules that compare dates (nothing recorded in the
 * future, under-18s, review due) use it, so callers with a fake clock get fixed results.
 *
 * Thread-safety: functions touch only their arguments.
 */
#ifndef CMC_RULES_H
#define CMC_RULES_H

#include "sync/plan.h"

#include <stddef.h>

#define RULES_MAX 32         /* violations kept in one report; further ones are counted */
#define RULES_DETAIL_MAX 240 /* one violation's text */
#define RULES_REVIEW_MAX_DAYS 366 /* a review date at most 12 months after approval */

struct rules_violation {
    const char *rule; /* stable id, listed in docs/CLINICAL-RULES.md */
    char detail[RULES_DETAIL_MAX]; /* "resuscitation.decision, recommendations.cpr: ..." */
};

struct rules_report {
    size_t n;     /* violations found (may exceed RULES_MAX) */
    struct rules_violation v[RULES_MAX]; /* the first min(n, RULES_MAX) */
};

/* Checks every rule. CMC_OK with report->n == 0 when the plan keeps them all; otherwise
 * CMC_ERR_INVALID with the first violation (and how many there are) as the error detail and
 * every violation in `report` (which may be NULL). A draft that lacks clinical fields is not
 * a violation here (plan_validate says what is missing); a field that is present must agree
 * with the others. */
int rules_check(const struct plan *p, const char *today, struct rules_report *report);

/* The name of a rule's hazard for docs and tests ("contradictory CPR content", ...); NULL for
 * an unknown id. */
const char *rules_hazard(const char *rule);

/* Review state for practices and crews: bit flags. */
enum rules_review {
    RULES_REVIEW_OVERDUE = 1u << 0,     /* review_due is before today */
    RULES_CPR_REVIEW_LAPSED = 1u << 1,  /* resuscitation.review_date is before today */
};
unsigned rules_review_state(const struct plan *p, const char *today);

/* "YYYY-MM-DD" `days` after `date` (negative: before); CMC_ERR_INVALID if `date` is not a
 * calendar date. */
int rules_date_add(const char *date, int days, char out[11]);

#endif
