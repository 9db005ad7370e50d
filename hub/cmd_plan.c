/*
 * cmd_plan.c - `cmc-hub user`, `plan`, `caseload` and `audit`: the clinical records side of
 * the command line (shared/CLI.md).
 */
#include "hub/cli.h"
#include "hub/fhir_api.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"
#include "sync/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_input_file(const char *path, uint8_t **buf, size_t *len)
{
    int rc = plat_read_file(path, PLAN_MAX_ENCODED, buf, len);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_USAGE, "%s: no such file", path);
    return rc;
}

static int cmd_user(struct hub_cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *role = hub_cli_take_opt(c, "--role", &rc);
    if (rc != CMC_OK)
        return rc;
    if (c->argc < 1 || strcmp(c->argv[0], "add") != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub user add NAME --role gp|clinician|admin|patient");
    if ((rc = hub_cli_want_args(c, 2, "user add NAME --role ROLE")) != CMC_OK)
        return rc;
    if (role == NULL)
        return cmc_fail(CMC_ERR_USAGE, "user add: --role gp|clinician|admin|patient is required");
    if ((rc = hub_user_add(h, c->argv[1], role)) != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:s}", "user", c->argv[1], "role", role));
    else
        printf("user %s added (%s)\n", c->argv[1], role);
    return CMC_OK;
}

static int list_plan_cb(const struct hub_plan_info *info, void *ctx)
{
    json_t *arr = ctx;
    if (arr != NULL) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "plan_id",
                                             info->plan_id, "nhs_number", info->nhs_number,
                                             "status", plan_status_name(info->status), "version",
                                             (json_int_t)info->version, "published_version",
                                             (json_int_t)info->published_version,
                                             "consent_withdrawn", info->consent_withdrawn));
    } else {
        printf("%s  %s  v%-3lld %-19s%s%s\n", info->plan_id, info->nhs_number,
               (long long)info->version, plan_status_name(info->status),
               info->published_version > 0 && info->status != PLAN_STATUS_PUBLISHED
                   ? "  (a published version is shared)"
                   : "",
               info->consent_withdrawn ? "  CONSENT WITHDRAWN" : "");
    }
    return 0;
}

static int history_cb(const struct hub_plan_event *ev, void *ctx)
{
    json_t *arr = ctx;
    char when[21];
    plat_format_time(ev->at, when);
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "version",
                                             (json_int_t)ev->version, "actor", ev->actor,
                                             "action", ev->action, "at", when));
    else if (strcmp(ev->action, "push") == 0)
        printf("%s  v%-3lld push by %s\n", when, (long long)ev->version, ev->actor);
    else
        printf("%s  v%-3lld %-17s %s\n", when, (long long)ev->version, ev->action, ev->actor);
    return 0;
}

struct holders {
    json_t *arr; /* --json: one object per device; else printed as found */
    int n;
};

static int holder_cb(const struct hub_plan_holder *ph, void *ctx)
{
    struct holders *hs = ctx;
    char sent[21] = "", seen[21] = "never";
    if (ph->purge_sent_at > 0)
        plat_format_time(ph->purge_sent_at, sent);
    if (ph->last_seen > 0)
        plat_format_time(ph->last_seen, seen);
    if (hs->arr != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "device_id", ph->device_id, "name",
                              ph->device_name, "state",
                              strcmp(ph->state, "wipe ordered") == 0 ? "wipe_ordered" : ph->state,
                              "purge", ph->purge_sent ? "sent_not_acknowledged" : "not_fetched",
                              "last_seen", seen);
        if (o == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "plan show");
        json_object_set_new(o, "purge_sent", ph->purge_sent ? json_string(sent) : json_null());
        json_array_append_new(hs->arr, o);
    } else {
        if (hs->n == 0)
            printf("# not yet purged from these devices (they are asked again at every sync):\n");
        if (ph->purge_sent)
            printf("#   %s (%s, %s): purge sent %s, not yet acknowledged; last seen %s\n",
                   ph->device_name, ph->device_id, ph->state, sent, seen);
        else
            printf("#   %s (%s, %s): holds version %lld, has not fetched the purge; last seen"
                   " %s\n", ph->device_name, ph->device_id, ph->state, (long long)ph->version,
                   seen);
    }
    hs->n++;
    return 0;
}

/* A withdrawn plan: the plan, and the devices where it has not yet been destroyed (they keep
 * being sent its purge until they acknowledge it). --json adds "consent_withdrawn" and
 * "devices_not_purged" to the plan object. Takes `text`. */
static int show_withdrawn(struct hub_cli *c, hub *h, const struct hub_plan_info *info, char *text,
                          size_t tlen)
{
    struct holders hs = {NULL, 0};
    json_t *obj = NULL;
    int rc;

    if (c->json) {
        if ((hs.arr = json_array()) == NULL) {
            cmc_free(text);
            return cmc_fail(CMC_ERR_NOMEM, "plan show");
        }
        rc = hub_plan_holders(h, info->plan_id, holder_cb, &hs);
        if (rc == CMC_OK && (obj = json_loadb(text, tlen, 0, NULL)) == NULL)
            rc = cmc_fail(CMC_ERR_NOMEM, "plan show");
        if (rc == CMC_OK) {
            json_object_set_new(obj, "consent_withdrawn", json_true());
            json_object_set_new(obj, "devices_not_purged", hs.arr);
            hs.arr = NULL;
            hub_cli_print_json(obj);
        }
        json_decref(hs.arr);
    } else {
        printf("# plan %s: newest version %lld (%s), published version %lld, CONSENT WITHDRAWN"
               " (not shared)\n", info->plan_id, (long long)info->version,
               plan_status_name(info->status), (long long)info->published_version);
        rc = hub_plan_holders(h, info->plan_id, holder_cb, &hs);
        if (rc == CMC_OK && hs.n == 0)
            printf("# purged from every device that held it\n");
        if (rc == CMC_OK) {
            fwrite(text, 1, tlen, stdout);
            fputc('\n', stdout);
        }
    }
    cmc_free(text);
    return rc;
}

/* `plan show PLAN [--version N]`. */
static int plan_show(struct hub_cli *c, hub *h, const char *version)
{
    int rc;
    struct plan p;
    struct hub_plan_info info;
    char *text = NULL;
    size_t tlen = 0;
    long long v = 0;
    if ((rc = hub_cli_want_args(c, 2, "plan show PLAN [--version N]")) != CMC_OK)
        return rc;
    if (version != NULL && ((v = atoll(version)) <= 0))
        return cmc_fail(CMC_ERR_USAGE, "--version: a positive number");
    if ((rc = hub_plan_info(h, c->argv[1], &info)) != CMC_OK)
        return rc;
    plan_init(&p);
    if ((rc = hub_plan_get(h, info.plan_id, v, &p)) != CMC_OK)
        return rc;
    rc = plan_to_json(&p, 1, &text, &tlen);
    plan_free(&p);
    if (rc != CMC_OK)
        return rc;
    if (info.consent_withdrawn)
        return show_withdrawn(c, h, &info, text, tlen);
    if (!c->json)
        printf("# plan %s: newest version %lld (%s), published version %lld\n", info.plan_id,
               (long long)info.version, plan_status_name(info.status),
               (long long)info.published_version);
    fwrite(text, 1, tlen, stdout);
    fputc('\n', stdout);
    cmc_free(text);
    return CMC_OK;
}

static int cmd_plan(struct hub_cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *as = hub_cli_take_opt(c, "--as", &rc);
    const char *file = rc == CMC_OK ? hub_cli_take_opt(c, "--file", &rc) : NULL;
    const char *status = rc == CMC_OK ? hub_cli_take_opt(c, "--status", &rc) : NULL;
    const char *version = rc == CMC_OK ? hub_cli_take_opt(c, "--version", &rc) : NULL;
    const char *format = rc == CMC_OK ? hub_cli_take_opt(c, "--format", &rc) : NULL;
    const char *sub;
    uint8_t *buf = NULL;
    size_t len = 0;
    char id[PLAN_ID_LEN + 1];

    if (rc != CMC_OK)
        return rc;
    if (format != NULL) /* plan export|import --format fhir (hub/fhir_api.h) */
        return hub_fhir_cmd_plan(h, c->json, format, c->argc, c->argv, as);
    if (c->argc < 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub plan import|edit|submit|approve|"
                                       "withdraw-consent|list|show|history ...");
    sub = c->argv[0];
    if (strcmp(sub, "list") == 0) {
        int st = 0;
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = hub_cli_want_args(c, 1, "plan list [--status S]")) != CMC_OK)
            return rc;
        if (status != NULL && (st = plan_status_from_name(status)) == 0)
            return cmc_fail(CMC_ERR_USAGE, "--status: draft, needs_finalisation, awaiting_approval"
                                           " or published");
        rc = hub_plan_list(h, st, list_plan_cb, arr);
        return hub_cli_print_list(rc, arr);
    }
    if (c->argc < 2)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub plan %s %s", sub,
                        strcmp(sub, "import") == 0 ? "FILE --as USER" : "PLAN ...");
    if (strcmp(sub, "show") == 0)
        return plan_show(c, h, version);
    if (strcmp(sub, "history") == 0) {
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = hub_cli_want_args(c, 2, "plan history PLAN")) != CMC_OK)
            return rc;
        rc = hub_plan_history(h, c->argv[1], history_cb, arr);
        return hub_cli_print_list(rc, arr);
    }
    if (as == NULL)
        return cmc_fail(CMC_ERR_USAGE, "plan %s: --as USER (the hub user acting) is required", sub);
    if (strcmp(sub, "import") == 0) {
        if ((rc = hub_cli_want_args(c, 2, "plan import FILE --as USER")) != CMC_OK)
            return rc;
        if ((rc = read_input_file(c->argv[1], &buf, &len)) != CMC_OK)
            return rc;
        rc = hub_plan_import(h, as, (const char *)buf, len, id);
        cmc_free(buf);
        if (rc != CMC_OK)
            return rc;
        if (c->json)
            hub_cli_print_json(json_pack("{s:s}", "plan_id", id));
        else
            printf("%s\n", id);
        return CMC_OK;
    }
    if ((rc = hub_cli_want_args(c, 2, "plan edit|submit|approve|withdraw-consent PLAN --as USER")) != CMC_OK)
        return rc;
    if (strcmp(sub, "edit") == 0) {
        int64_t v = 0;
        if (file == NULL)
            return cmc_fail(CMC_ERR_USAGE, "plan edit: --file CHANGES.json is required");
        if ((rc = read_input_file(file, &buf, &len)) != CMC_OK)
            return rc;
        rc = hub_plan_edit(h, as, c->argv[1], (const char *)buf, len, &v);
        cmc_free(buf);
        if (rc != CMC_OK)
            return rc;
        if (c->json)
            hub_cli_print_json(json_pack("{s:I}", "version", (json_int_t)v));
        else
            printf("new draft version %lld\n", (long long)v);
        return CMC_OK;
    }
    if (strcmp(sub, "submit") == 0)
        rc = hub_plan_submit(h, as, c->argv[1]);
    else if (strcmp(sub, "approve") == 0)
        rc = hub_plan_approve(h, as, c->argv[1]);
    else if (strcmp(sub, "withdraw-consent") == 0)
        rc = hub_plan_withdraw_consent(h, as, c->argv[1]);
    else
        return cmc_fail(CMC_ERR_USAGE, "unknown plan command %s (see cmc-hub --help)", sub);
    if (rc != CMC_OK)
        return rc;
    {
        struct hub_plan_info info;
        if ((rc = hub_plan_info(h, c->argv[1], &info)) != CMC_OK)
            return rc;
        if (c->json)
            hub_cli_print_json(json_pack("{s:s, s:s, s:I, s:b}", "plan_id", info.plan_id, "status",
                                 plan_status_name(info.status), "version",
                                 (json_int_t)info.version, "consent_withdrawn",
                                 info.consent_withdrawn));
        else if (info.consent_withdrawn)
            printf("plan %s: consent withdrawn; it will be purged from every device\n", info.plan_id);
        else
            printf("plan %s is now %s (version %lld)\n", info.plan_id,
                   plan_status_name(info.status), (long long)info.version);
    }
    return CMC_OK;
}

static int cmd_caseload(struct hub_cli *c, hub *h)
{
    int rc;
    if ((rc = hub_cli_want_args(c, 3, "caseload add|remove TEAM NHS_NUMBER")) != CMC_OK)
        return rc;
    if (strcmp(c->argv[0], "add") == 0)
        rc = hub_caseload_add(h, c->argv[1], c->argv[2]);
    else if (strcmp(c->argv[0], "remove") == 0)
        rc = hub_caseload_remove(h, c->argv[1], c->argv[2]);
    else
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub caseload add|remove TEAM NHS_NUMBER");
    if (rc != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:s, s:b}", "team", c->argv[1], "change", c->argv[0], "ok", 1));
    else
        printf("caseload of %s updated\n", c->argv[1]);
    return CMC_OK;
}

static int audit_cb(const struct hub_audit_entry *e, void *ctx)
{
    json_t *arr = ctx;
    char when[21], received[21];
    plat_format_time(e->wall, when);
    plat_format_time(e->received, received);
    if (arr != NULL)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "when", when,
                           "received", received, "device_id", e->device_id, "device",
                           e->device_name, "seq", (json_int_t)e->seq, "user", e->user, "role",
                           e->role, "action", e->action, "plan_id", e->plan_id, "identifier",
                           e->identifier));
    else {
        /* device-supplied text (user, reason) reaches the terminal escaped (sync/text.h) */
        char line[1024];
        int n = snprintf(line, sizeof line, "%s  %-12s by %s (%s) on device %s (%s), received %s%s%s%s%s%s\n", when,
                         e->action, e->user, e->role, e->device_name[0] != '\0' ? e->device_name : "?",
                         e->device_id, received, e->plan_id[0] != '\0' ? ", plan " : "", e->plan_id,
                         strcmp(e->action, "break_glass") == 0 ? ", reason: \"" : "",
                         strcmp(e->action, "break_glass") == 0 ? e->identifier : "",
                         strcmp(e->action, "break_glass") == 0 ? "\"" : "");
        if (n > 0)
            text_put_terminal(stdout, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    return 0;
}

static int cmd_audit(struct hub_cli *c, hub *h)
{
    json_t *arr = c->json ? json_array() : NULL;
    if (hub_cli_take_flag(c, "--break-glass")) {
        /* every break-glass view from every device: who opened a locked copy, and why */
        int rc = hub_cli_want_args(c, 0, "audit --break-glass");
        if (rc == CMC_OK)
            rc = hub_audit_list_action(h, "break_glass", audit_cb, arr);
        return hub_cli_print_list(rc, arr);
    }
    int rc = hub_cli_want_args(c, 1, "audit PLAN");
    if (rc == CMC_OK)
        rc = hub_audit_list(h, c->argv[0], audit_cb, arr);
    if (rc == CMC_OK)
        rc = hub_fhir_audit_list(h, c->argv[0], audit_cb, arr);
    return hub_cli_print_list(rc, arr);
}

/* ---- command rows ------------------------------------------------------------------------ */

static const char *const user_subs[] = {"add", NULL};
const struct hub_cli_cmd hub_cmd_user = {
    "user", user_subs,
    "usage: cmc-hub user add NAME --role gp|clinician|admin|patient\n"
    "\n"
    "Adds a hub user: the name given to --as in plan commands. Only a gp approves plans; an\n"
    "admin's import or edit needs finalising by a clinician.\n"
    "\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_user};

static const char *const plan_subs[] = {"import", "edit", "submit", "approve", "withdraw-consent", "review",
                                        "reinstate-consent", "list", "show", "history", "export", NULL};
const struct hub_cli_cmd hub_cmd_plan = {
    "plan", plan_subs,
    "usage: cmc-hub plan COMMAND ...\n"
    "\n"
    "  plan import FILE --as USER              import a plan (JSON) as a draft; prints its id\n"
    "  plan edit PLAN --as USER --file CHANGES.json\n"
    "                                          a new draft version from a change document\n"
    "  plan submit PLAN --as USER              draft -> awaiting approval\n"
    "  plan approve PLAN --as USER             awaiting approval -> published (gp only)\n"
    "  plan withdraw-consent PLAN --as USER    stop all sharing; devices purge the plan\n"
    "  plan list [--status S]                  S: draft, needs_finalisation,\n"
    "                                          awaiting_approval, published\n"
    "  plan show PLAN [--version N]            a version of a plan (default the newest); for a\n"
    "                                          withdrawn plan, the devices not yet purged\n"
    "  plan history PLAN                       every version: who did what, when\n"
    "  plan export PLAN --format fhir --as USER   the plan as a FHIR R4 Bundle (docs/FHIR.md)\n"
    "  plan import FILE --format fhir --as USER   a FHIR Bundle imported as a draft\n"
    "\n"
    "PLAN is a plan id or an NHS number (spaces allowed). --json prints one JSON document.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_plan};

static const char *const caseload_subs[] = {"add", "remove", NULL};
const struct hub_cli_cmd hub_cmd_caseload = {
    "caseload", caseload_subs,
    "usage: cmc-hub caseload add|remove TEAM NHS_NUMBER\n"
    "\n"
    "A team's caseload decides which plans its team:TEAM devices hold.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_caseload};

const struct hub_cli_cmd hub_cmd_audit = {
    "audit", NULL,
    "usage: cmc-hub audit PLAN | cmc-hub audit --break-glass\n"
    "\n"
    "Who viewed that patient's plan, on which device (name and id), when it happened and when\n"
    "the hub received it. PLAN is a plan id or an NHS number. --break-glass lists every view of\n"
    "a lease-locked copy, from every device, with the reason the user typed.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_audit};
