/*
 * cmd_clinical.c - the `cmc-hub` commands for clinical governance (clinical.h): plan review,
 * approve --next, withdraw-consent --reason, reinstate-consent, list --review-due-before,
 * patient accounts (user add --role patient --nhs) and what a patient account may see.
 *
 * main.c hands every command here first; a command this file does not own is left to main
 * untouched (return 0).
 */
#include "hub/cli.h"
#include "hub/clinical.h"

#include "platform/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIN_MAX_ARGS 32

const char hub_clinical_usage[] =
    "  plan approve PLAN --as GP [--next YYYY-MM-DD]\n"
    "                                          publish; review date --next or 12 months ahead\n"
    "  plan review PLAN --as GP [--next YYYY-MM-DD]\n"
    "                                          \"reviewed, no changes\": a new published version\n"
    "                                          with a new review date (at most 12 months ahead)\n"
    "  plan withdraw-consent PLAN --as USER --reason TEXT\n"
    "                                          clinician, gp or the patient's own account; the\n"
    "                                          reason is kept with who asked\n"
    "  plan reinstate-consent PLAN --as USER --reason TEXT\n"
    "                                          renewed consent: a new draft a gp must approve\n"
    "  plan list --review-due-before YYYY-MM-DD published plans due for review\n"
    "  user add NAME --role patient --nhs NHS  a patient account bound to one NHS number\n";

struct clin_args {
    int argc;
    const char *argv[CLIN_MAX_ARGS];
    int json;
};

/* Removes "--name VALUE"; NULL when absent. */
static const char *clin_opt(struct clin_args *a, const char *name, int *rc)
{
    for (int i = 0; i < a->argc; i++) {
        if (strcmp(a->argv[i], name) != 0)
            continue;
        if (i + 1 >= a->argc) {
            *rc = cmc_fail(CMC_ERR_USAGE, "%s needs a value", name);
            return NULL;
        }
        const char *v = a->argv[i + 1];
        memmove(&a->argv[i], &a->argv[i + 2], (size_t)(a->argc - i - 2) * sizeof a->argv[0]);
        a->argc -= 2;
        return v;
    }
    return NULL;
}

static int clin_has(const struct clin_args *a, const char *name)
{
    for (int i = 0; i < a->argc; i++)
        if (strcmp(a->argv[i], name) == 0)
            return 1;
    return 0;
}

/* Exactly n positional arguments and no unknown options. */
static int clin_want(const struct clin_args *a, int n, const char *usage)
{
    for (int i = 0; i < a->argc; i++)
        if (strncmp(a->argv[i], "--", 2) == 0)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %s (usage: cmc-hub %s)", a->argv[i], usage);
    if (a->argc != n)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub %s", usage);
    return CMC_OK;
}

static void clin_print_json(json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s); /* jansson's allocation */
    }
    json_decref(j);
}

/* The plan's state after a step, as main prints it. */
static int clin_report(hub *h, const struct clin_args *a, const char *plan_ref)
{
    struct hub_plan_info info;
    struct plan p;
    int rc = hub_plan_info(h, plan_ref, &info);
    if (rc != CMC_OK)
        return rc;
    plan_init(&p);
    if ((rc = hub_plan_get(h, info.plan_id, info.version, &p)) != CMC_OK)
        return rc;
    if (a->json)
        clin_print_json(json_pack("{s:s, s:s, s:I, s:b, s:s?}", "plan_id", info.plan_id, "status",
                                  plan_status_name(info.status), "version", (json_int_t)info.version,
                                  "consent_withdrawn", info.consent_withdrawn, "review_due",
                                  p.review_due));
    else if (info.consent_withdrawn)
        printf("plan %s: consent withdrawn; it will be purged from every device\n", info.plan_id);
    else if (info.status == PLAN_STATUS_PUBLISHED && p.review_due != NULL)
        printf("plan %s is now published (version %lld), review due %s\n", info.plan_id,
               (long long)info.version, p.review_due);
    else
        printf("plan %s is now %s (version %lld)\n", info.plan_id, plan_status_name(info.status),
               (long long)info.version);
    plan_free(&p);
    return CMC_OK;
}

static int due_cb(const struct hub_plan_info *info, const char *review_due, void *ctx)
{
    json_t *arr = ctx;
    if (arr != NULL)
        return json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s}", "plan_id", info->plan_id,
                                                    "nhs_number", info->nhs_number, "version",
                                                    (json_int_t)info->published_version,
                                                    "review_due", review_due)) != 0;
    printf("%s  %s  v%lld  review due %s\n", info->plan_id, info->nhs_number,
           (long long)info->published_version, review_due);
    return 0;
}

static int clin_list_due(hub *h, struct clin_args *a, const char *before)
{
    json_t *arr = a->json ? json_array() : NULL;
    int rc = clin_want(a, 1, "plan list --review-due-before YYYY-MM-DD");
    if (rc == CMC_OK)
        rc = hub_plan_list_review_due(h, before, due_cb, arr);
    return hub_cli_print_list(rc, arr);
}

/* plan approve --next, review, withdraw-consent, reinstate-consent, list --review-due-before,
 * show --as; 0 when main should handle the command. */
static int clin_plan(hub *h, struct clin_args *a, int *rc)
{
    const char *sub = a->argc > 0 ? a->argv[0] : "";
    const char *as, *next, *reason, *before;
    int64_t v = 0;

    if (strcmp(sub, "show") == 0 && clin_has(a, "--as") && a->argc >= 2) {
        struct clin_args copy = *a;
        as = clin_opt(&copy, "--as", rc);
        if (*rc == CMC_OK && (*rc = hub_plan_may_see(h, as, a->argv[1])) == CMC_OK) {
            return 0; /* allowed: main shows it */
        }
        return 1;
    }
    if (strcmp(sub, "list") == 0) {
        if ((before = clin_opt(a, "--review-due-before", rc)) == NULL)
            return *rc != CMC_OK;
        *rc = clin_list_due(h, a, before);
        return 1;
    }
    if (strcmp(sub, "approve") == 0 && !clin_has(a, "--next"))
        return 0;
    if (strcmp(sub, "approve") != 0 && strcmp(sub, "review") != 0 &&
        strcmp(sub, "withdraw-consent") != 0 && strcmp(sub, "reinstate-consent") != 0)
        return 0;
    as = clin_opt(a, "--as", rc);
    next = *rc == CMC_OK ? clin_opt(a, "--next", rc) : NULL;
    reason = *rc == CMC_OK ? clin_opt(a, "--reason", rc) : NULL;
    if (*rc != CMC_OK)
        return 1;
    if ((*rc = clin_want(a, 2, "plan approve|review|withdraw-consent|reinstate-consent PLAN"
                               " --as USER ...")) != CMC_OK)
        return 1;
    if (strcmp(sub, "approve") == 0)
        *rc = hub_plan_approve_next(h, as, a->argv[1], next);
    else if (strcmp(sub, "review") == 0)
        *rc = hub_plan_review(h, as, a->argv[1], next);
    else if (next != NULL)
        *rc = cmc_fail(CMC_ERR_USAGE, "--next belongs to approve and review");
    else if (strcmp(sub, "withdraw-consent") == 0)
        *rc = hub_plan_withdraw_consent_reason(h, as, a->argv[1], reason);
    else
        *rc = hub_plan_reinstate_consent(h, as, a->argv[1], reason, &v);
    if (*rc == CMC_OK)
        *rc = clin_report(h, a, a->argv[1]);
    return 1;
}

/* user add NAME --role patient --nhs NHS; other roles are main's. */
static int clin_user(hub *h, struct clin_args *a, int *rc)
{
    struct clin_args copy = *a;
    const char *role = clin_opt(&copy, "--role", rc), *nhs;
    char bound[PLAN_NHS_LEN + 1];
    if (*rc != CMC_OK)
        return 1;
    if (copy.argc < 1 || strcmp(copy.argv[0], "add") != 0 || role == NULL ||
        strcmp(role, "patient") != 0) {
        if (clin_has(a, "--nhs"))
            *rc = cmc_fail(CMC_ERR_USAGE, "--nhs binds a patient account (--role patient)");
        return clin_has(a, "--nhs");
    }
    if ((nhs = clin_opt(&copy, "--nhs", rc)) == NULL) {
        if (*rc == CMC_OK)
            *rc = cmc_fail(CMC_ERR_USAGE, "a patient account is bound to one NHS number:"
                                          " user add NAME --role patient --nhs NHS");
        return 1;
    }
    if ((*rc = clin_want(&copy, 2, "user add NAME --role patient --nhs NHS")) != CMC_OK)
        return 1;
    if ((*rc = hub_user_add_patient(h, copy.argv[1], nhs)) != CMC_OK)
        return 1;
    if ((*rc = hub_user_nhs(h, copy.argv[1], bound)) != CMC_OK)
        return 1;
    if (a->json)
        clin_print_json(json_pack("{s:s, s:s, s:s}", "user", copy.argv[1], "role", "patient",
                                  "nhs_number", bound));
    else
        printf("user %s added (patient, NHS number %s)\n", copy.argv[1], bound);
    return 1;
}

int hub_clinical_dispatch(hub *h, const char *cmd, int argc, const char **argv, int json, int *rc)
{
    struct clin_args a;
    *rc = CMC_OK;
    if (argc < 0 || argc > CLIN_MAX_ARGS)
        return 0;
    a.argc = argc;
    a.json = json;
    for (int i = 0; i < argc; i++)
        a.argv[i] = argv[i];
    if (strcmp(cmd, "plan") == 0)
        return clin_plan(h, &a, rc);
    if (strcmp(cmd, "user") == 0)
        return clin_user(h, &a, rc);
    return 0;
}
