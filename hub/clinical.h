/*
 * clinical.h - the hub's clinical governance (docs/CLINICAL-RULES.md): review that renews,
 * governed consent withdrawal and reinstatement, patient accounts bound to an NHS number.
 *
 * Every step that publishes (approve, review) or submits checks the consistency rules of
 * sync/rules.h against the hub's date and refuses a plan that breaks one (CMC_ERR_INVALID,
 * exit 2, naming the fields). Approval always sets the review date: the GP's choice (--next)
 * or 12 months ahead, never later than 12 months ahead.
 *
 * Consent: only a clinician or GP, or a patient account bound to the plan's NHS number, may
 * withdraw consent or reinstate it; a reason is required and kept with the requester and
 * role (consent_log). Reinstated consent is a new draft: devices get nothing until a GP
 * approves it. Patient accounts start and see only the plan for their own NHS number, and
 * never submit or approve.
 *
 * Errors: CMC_ERR_DENIED (role), CMC_ERR_USAGE (missing reason, bad --next), CMC_ERR_STATE
 * (wrong lifecycle state), CMC_ERR_INVALID (rules), CMC_ERR_NOT_FOUND. Details never quote
 * plan content or the reason text.
 *
 * Thread-safety: as hub.h (one hub handle per thread).
 */
#ifndef CMC_HUB_CLINICAL_H
#define CMC_HUB_CLINICAL_H

#include "hub/hub.h"

#include <stdint.h>

#define HUB_REASON_MAX 500 /* bytes of a withdrawal or reinstatement reason */

/* Store migration 4: the patient binding (patient_accounts) and the consent log. */
extern const char hub_schema_clinical[];

/* Today at the hub, "YYYY-MM-DD" (UTC). */
void hub_today(char out[11]);

/* Approves like hub_plan_approve and sets review_due to `next` ("YYYY-MM-DD", after today and
 * at most 12 months ahead) or, when NULL, to 12 months ahead. */
int hub_plan_approve_next(hub *h, const char *as_user, const char *plan_ref, const char *next);
/* "Reviewed, no changes": a GP publishes the current published plan again as a new version
 * with a new approval and review date (as hub_plan_approve_next). The newest version must be
 * the published one (a pending draft is approved instead). */
int hub_plan_review(hub *h, const char *as_user, const char *plan_ref, const char *next);

/* Governed withdrawal: stops sharing as hub_plan_withdraw_consent, recording who asked,
 * their role and why. */
int hub_plan_withdraw_consent_reason(hub *h, const char *as_user, const char *plan_ref,
                                     const char *reason);
/* Renewed consent after a withdrawal: a new draft of the last version (status draft) that a
 * GP must approve before any device sees the plan again. *version_out gets its version. */
int hub_plan_reinstate_consent(hub *h, const char *as_user, const char *plan_ref,
                               const char *reason, int64_t *version_out);

/* A patient account bound to one NHS number. */
int hub_user_add_patient(hub *h, const char *name, const char *nhs);
/* The NHS number a patient account is bound to (empty string when none). */
int hub_user_nhs(hub *h, const char *name, char nhs[PLAN_NHS_LEN + 1]);
/* CMC_OK if `as_user` may see the plan: any staff role; a patient only their own. */
int hub_plan_may_see(hub *h, const char *as_user, const char *plan_ref);

/* Published plans, not withdrawn, whose review_due is before `before` (YYYY-MM-DD), in
 * review date order; `cb` gets each with its review date. */
int hub_plan_list_review_due(hub *h, const char *before,
                             int (*cb)(const struct hub_plan_info *, const char *review_due,
                                       void *),
                             void *ctx);

/* The `cmc-hub` commands of this module: plan review, plan reinstate-consent, plan
 * withdraw-consent (with --reason), plan list --review-due-before, plan show/import/edit as a
 * patient, user add --role patient --nhs. Returns 1 and sets *rc when it handled `cmd`,
 * else 0 (main's own dispatch goes on). */
/* Usage lines for these commands, printed after main's. */
extern const char hub_clinical_usage[];

int hub_clinical_dispatch(hub *h, const char *cmd, int argc, const char **argv, int json, int *rc);

#endif
