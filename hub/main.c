/*
 * main.c - the `cmc-hub` command line (shared/CLI.md): parses arguments, opens the hub,
 * calls the core, prints human or --json output and maps errors to exit codes.
 */
#include "hub/fhir_api.h"
#include "hub/hub.h"
#include "hub/server.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 64

static const char usage_text[] =
    "usage: cmc-hub [--dir DIR] [--json] COMMAND ...\n"
    "\n"
    "  init                                    create the hub store and its signing key\n"
    "  serve --listen HOST:PORT [--tls-cert F --tls-key F]\n"
    "                                          serve the sync API (HTTPS with a certificate)\n"
    "  seed --plans N [--seed S]               add N synthetic London plans (same seed, same plans)\n"
    "  user add NAME --role gp|clinician|admin|patient\n"
    "  plan import FILE --as USER              import a plan (JSON) as a draft; prints its id\n"
    "  plan edit PLAN --as USER --file CHANGES.json\n"
    "  plan submit PLAN --as USER              draft -> awaiting approval\n"
    "  plan approve PLAN --as USER             awaiting approval -> published (gp only)\n"
    "  plan withdraw-consent PLAN --as USER    stop all sharing; devices purge the plan\n"
    "  plan list [--status S]                  S: draft, needs_finalisation,\n"
    "                                          awaiting_approval, published\n"
    "  plan show PLAN [--version N]            a version of a plan (default the newest); for a\n"
    "                                          withdrawn plan, the devices not yet purged\n"
    "  plan history PLAN                       every version: who did what, when\n"
    "  caseload add TEAM NHS_NUMBER / caseload remove TEAM NHS_NUMBER\n"
    "  device add NAME --scope all|region:R|team:T|care_home:H --role urgent_care|clinician\n"
    "                                          prints a one-time enrollment code on its last line\n"
    "  device list                             state, last seen, cursor, lease, last rollback\n"
    "  device revoke DEVICE / device wipe DEVICE\n"
    "  device lease DEVICE DAYS|default        most days DEVICE may go without a sync\n"
    "  device lease --scope SCOPE DAYS|default the same for every device of a scope\n"
    "                                          (device wins over scope; default 14; 0 = none)\n"
    "  audit PLAN                              who viewed that patient's plan, where, when\n"
    "  plan export PLAN --format fhir --as USER / plan import FILE --format fhir --as USER\n"
    "  client add NAME --scope S / client list / client revoke NAME   FHIR client systems\n"
    "  key                                     the hub's public signing key (hex)\n"
    "\n"
    "PLAN is a plan id or an NHS number. The state directory is --dir, else $CMC_HUB_DIR,\n"
    "else $XDG_DATA_HOME/cmc-hub (~/.local/share/cmc-hub).\n"
    "Exit codes: 0 ok, 1 runtime error, 2 bad usage or input, 3 not found, 4 locked.\n";

struct cli {
    const char *dir;
    int json;
    int argc;
    const char *argv[MAX_ARGS];
};

/* Removes "--name VALUE" from the arguments; NULL when absent. */
static const char *take_opt(struct cli *c, const char *name, int *err)
{
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], name) == 0) {
            const char *v;
            if (i + 1 >= c->argc) {
                *err = cmc_fail(CMC_ERR_USAGE, "%s needs a value", name);
                return NULL;
            }
            v = c->argv[i + 1];
            memmove(&c->argv[i], &c->argv[i + 2], (size_t)(c->argc - i - 2) * sizeof c->argv[0]);
            c->argc -= 2;
            return v;
        }
    }
    return NULL;
}

/* Exactly n positional arguments after the command words, and no unknown options. */
static int want_args(const struct cli *c, int n, const char *what)
{
    for (int i = 0; i < c->argc; i++)
        if (strncmp(c->argv[i], "--", 2) == 0)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %s (see cmc-hub --help)", c->argv[i]);
    if (c->argc != n)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub %s", what);
    return CMC_OK;
}

static void print_json(json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s); /* jansson's allocation */
    }
    json_decref(j);
}

static const char *default_dir(char *buf, size_t cap)
{
    const char *env = getenv("CMC_HUB_DIR");
    if (env != NULL && env[0] != '\0')
        return env;
    env = getenv("XDG_DATA_HOME");
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, cap, "%s/cmc-hub", env);
        return buf;
    }
    env = getenv("HOME");
    snprintf(buf, cap, "%s/.local/share/cmc-hub", env != NULL ? env : ".");
    return buf;
}

static int read_input_file(const char *path, uint8_t **buf, size_t *len)
{
    int rc = plat_read_file(path, PLAN_MAX_ENCODED, buf, len);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_USAGE, "%s: no such file", path);
    return rc;
}

/* ---- commands -------------------------------------------------------------------------- */

static int cmd_init(struct cli *c)
{
    int rc;
    if ((rc = want_args(c, 0, "init")) != CMC_OK)
        return rc;
    if ((rc = hub_init(c->dir)) != CMC_OK)
        return rc;
    if (c->json) {
        print_json(json_pack("{s:s, s:b}", "dir", c->dir, "ok", 1));
    } else {
        printf("hub created in %s\n", c->dir);
    }
    return CMC_OK;
}

static int cmd_key(struct cli *c, hub *h)
{
    uint8_t pk[CRY_SIGN_PK_BYTES];
    char hex[2 * CRY_SIGN_PK_BYTES + 1];
    int rc;
    if ((rc = want_args(c, 0, "key")) != CMC_OK)
        return rc;
    hub_public_key(h, pk);
    cry_hex(hex, pk, sizeof pk);
    if (c->json)
        print_json(json_pack("{s:s}", "hub_pk", hex));
    else
        printf("%s\n", hex);
    return CMC_OK;
}

static int cmd_user(struct cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *role = take_opt(c, "--role", &rc);
    if (rc != CMC_OK)
        return rc;
    if (c->argc < 1 || strcmp(c->argv[0], "add") != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub user add NAME --role gp|clinician|admin|patient");
    if ((rc = want_args(c, 2, "user add NAME --role ROLE")) != CMC_OK)
        return rc;
    if (role == NULL)
        return cmc_fail(CMC_ERR_USAGE, "user add: --role gp|clinician|admin|patient is required");
    if ((rc = hub_user_add(h, c->argv[1], role)) != CMC_OK)
        return rc;
    if (c->json)
        print_json(json_pack("{s:s, s:s}", "user", c->argv[1], "role", role));
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
static int show_withdrawn(struct cli *c, hub *h, const struct hub_plan_info *info, char *text,
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
            print_json(obj);
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

static int cmd_plan(struct cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *as = take_opt(c, "--as", &rc);
    const char *file = rc == CMC_OK ? take_opt(c, "--file", &rc) : NULL;
    const char *status = rc == CMC_OK ? take_opt(c, "--status", &rc) : NULL;
    const char *version = rc == CMC_OK ? take_opt(c, "--version", &rc) : NULL;
    const char *format = rc == CMC_OK ? take_opt(c, "--format", &rc) : NULL;
    const char *sub;
    uint8_t *buf = NULL;
    size_t len = 0;
    char id[PLAN_ID_LEN + 1];

    if (rc != CMC_OK)
        return rc;
    if (format != NULL)
        return hub_fhir_cmd_plan(h, c->json, format, c->argc, c->argv, as);
    if (c->argc < 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub plan import|edit|submit|approve|"
                                       "withdraw-consent|list|show|history ...");
    sub = c->argv[0];
    if (strcmp(sub, "list") == 0) {
        int st = 0;
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = want_args(c, 1, "plan list [--status S]")) != CMC_OK)
            return rc;
        if (status != NULL && (st = plan_status_from_name(status)) == 0)
            return cmc_fail(CMC_ERR_USAGE, "--status: draft, needs_finalisation, awaiting_approval"
                                           " or published");
        rc = hub_plan_list(h, st, list_plan_cb, arr);
        if (rc == CMC_OK && arr != NULL) {
            print_json(arr);
            arr = NULL;
        }
        json_decref(arr);
        return rc;
    }
    if (c->argc < 2)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub plan %s %s", sub,
                        strcmp(sub, "import") == 0 ? "FILE --as USER" : "PLAN ...");
    if (strcmp(sub, "show") == 0) {
        struct plan p;
        struct hub_plan_info info;
        char *text = NULL;
        size_t tlen = 0;
        long long v = 0;
        if ((rc = want_args(c, 2, "plan show PLAN [--version N]")) != CMC_OK)
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
    if (strcmp(sub, "history") == 0) {
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = want_args(c, 2, "plan history PLAN")) != CMC_OK)
            return rc;
        rc = hub_plan_history(h, c->argv[1], history_cb, arr);
        if (rc == CMC_OK && arr != NULL) {
            print_json(arr);
            arr = NULL;
        }
        json_decref(arr);
        return rc;
    }
    if (as == NULL)
        return cmc_fail(CMC_ERR_USAGE, "plan %s: --as USER (the hub user acting) is required", sub);
    if (strcmp(sub, "import") == 0) {
        if ((rc = want_args(c, 2, "plan import FILE --as USER")) != CMC_OK)
            return rc;
        if ((rc = read_input_file(c->argv[1], &buf, &len)) != CMC_OK)
            return rc;
        rc = hub_plan_import(h, as, (const char *)buf, len, id);
        cmc_free(buf);
        if (rc != CMC_OK)
            return rc;
        if (c->json)
            print_json(json_pack("{s:s}", "plan_id", id));
        else
            printf("%s\n", id);
        return CMC_OK;
    }
    if ((rc = want_args(c, 2, "plan edit|submit|approve|withdraw-consent PLAN --as USER")) != CMC_OK)
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
            print_json(json_pack("{s:I}", "version", (json_int_t)v));
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
            print_json(json_pack("{s:s, s:s, s:I, s:b}", "plan_id", info.plan_id, "status",
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

static int cmd_caseload(struct cli *c, hub *h)
{
    int rc;
    if ((rc = want_args(c, 3, "caseload add|remove TEAM NHS_NUMBER")) != CMC_OK)
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
        print_json(json_pack("{s:s, s:s, s:b}", "team", c->argv[1], "change", c->argv[0], "ok", 1));
    else
        printf("caseload of %s updated\n", c->argv[1]);
    return CMC_OK;
}

static int list_device_cb(const struct hub_device_info *d, void *ctx)
{
    json_t *arr = ctx;
    char created[21], seen[21] = "never", rolled[21] = "never";
    const char *state = hub_device_state_label(d);
    plat_format_time(d->created, created);
    if (d->last_seen > 0)
        plat_format_time(d->last_seen, seen);
    if (d->last_rollback > 0)
        plat_format_time(d->last_rollback, rolled);
    if (arr != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:s, s:s, s:I, s:s, s:I}",
                              "device_id", d->device_id, "name", d->name, "scope", d->scope,
                              "role", d->role, "state",
                              strcmp(state, "wipe ordered") == 0 ? "wipe_ordered" : state,
                              "wipe_pending", d->wipe, "cursor", (json_int_t)d->proven,
                              "created", created, "last_seen", seen, "lease_days",
                              (json_int_t)d->lease_days, "lease_from", d->lease_from,
                              "rollbacks", (json_int_t)d->rollbacks);
        if (o != NULL) {
            json_object_set_new(o, "last_rollback",
                                d->last_rollback > 0 ? json_string(rolled) : json_null());
            json_array_append_new(arr, o);
        }
    } else {
        char lease[32];
        if (d->lease_days > 0)
            snprintf(lease, sizeof lease, "%lld days", (long long)d->lease_days);
        else
            snprintf(lease, sizeof lease, "none");
        printf("%s  %-20s %-30s %-12s %-13s cursor %llu, last seen %s, lease %s (%s),"
               " last rollback %s\n",
               d->device_id, d->name, d->scope, d->role, state, (unsigned long long)d->proven,
               seen, lease, d->lease_from, rolled);
    }
    return 0;
}

/* DAYS for `device lease`: 0..HUB_LEASE_MAX, or "default" to remove the setting (-1). */
static int parse_lease_days(const char *text, int64_t *days)
{
    char *end = NULL;
    long long v;
    if (strcmp(text, "default") == 0) {
        *days = -1;
        return CMC_OK;
    }
    v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0 || v > HUB_LEASE_MAX)
        return cmc_fail(CMC_ERR_USAGE, "DAYS: 0 to %d (0 = no lease), or default", HUB_LEASE_MAX);
    *days = v;
    return CMC_OK;
}

static int cmd_device_lease(struct cli *c, hub *h, const char *scope)
{
    int64_t days = 0;
    int rc;
    if (scope != NULL) {
        if ((rc = want_args(c, 2, "device lease --scope SCOPE DAYS|default")) != CMC_OK)
            return rc;
        if ((rc = parse_lease_days(c->argv[1], &days)) != CMC_OK)
            return rc;
        if ((rc = hub_scope_lease_set(h, scope, days)) != CMC_OK)
            return rc;
    } else {
        if ((rc = want_args(c, 3, "device lease DEVICE DAYS|default")) != CMC_OK)
            return rc;
        if ((rc = parse_lease_days(c->argv[2], &days)) != CMC_OK)
            return rc;
        if ((rc = hub_device_lease_set(h, c->argv[1], days)) != CMC_OK)
            return rc;
    }
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s}", scope != NULL ? "scope" : "device_id",
                              scope != NULL ? scope : c->argv[1], "change", "lease");
        if (o != NULL)
            json_object_set_new(o, "lease_days", days < 0 ? json_null() : json_integer(days));
        print_json(o);
    } else if (days < 0) {
        printf("%s %s: lease setting removed\n", scope != NULL ? "scope" : "device",
               scope != NULL ? scope : c->argv[1]);
    } else {
        printf("%s %s: lease %lld days%s (reaches devices at their next sync)\n",
               scope != NULL ? "scope" : "device", scope != NULL ? scope : c->argv[1],
               (long long)days, days == 0 ? " (no lease)" : "");
    }
    return CMC_OK;
}

static int cmd_device(struct cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *scope = take_opt(c, "--scope", &rc);
    const char *role = rc == CMC_OK ? take_opt(c, "--role", &rc) : NULL;
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];

    if (rc != CMC_OK)
        return rc;
    if (c->argc < 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub device add|list|revoke|wipe|lease ...");
    if (strcmp(c->argv[0], "list") == 0) {
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = want_args(c, 1, "device list")) != CMC_OK)
            return rc;
        rc = hub_device_list(h, list_device_cb, arr);
        if (rc == CMC_OK && arr != NULL) {
            print_json(arr);
            arr = NULL;
        }
        json_decref(arr);
        return rc;
    }
    if (strcmp(c->argv[0], "lease") == 0) {
        if (role != NULL)
            return cmc_fail(CMC_ERR_USAGE, "device lease: --role does not apply");
        return cmd_device_lease(c, h, scope);
    }
    if (strcmp(c->argv[0], "add") == 0) {
        if ((rc = want_args(c, 2, "device add NAME --scope S --role R")) != CMC_OK)
            return rc;
        if (scope == NULL || role == NULL)
            return cmc_fail(CMC_ERR_USAGE, "device add: --scope all|region:R|team:T|care_home:H"
                                           " and --role urgent_care|clinician are required");
        if ((rc = hub_device_add(h, c->argv[1], scope, role, id, code)) != CMC_OK)
            return rc;
        if (c->json) {
            print_json(json_pack("{s:s, s:s, s:s, s:s, s:s}", "device_id", id, "name", c->argv[1],
                                 "scope", scope, "role", role, "code", code));
        } else {
            printf("device %s (%s) registered: scope %s, role %s\n", id, c->argv[1], scope, role);
            printf("enrollment code (works once, within 24 hours):\n");
            printf("%s\n", code);
        }
        cry_memzero(code, sizeof code);
        return CMC_OK;
    }
    if ((rc = want_args(c, 2, "device revoke|wipe DEVICE")) != CMC_OK)
        return rc;
    if (strcmp(c->argv[0], "revoke") == 0)
        rc = hub_device_revoke(h, c->argv[1]);
    else if (strcmp(c->argv[0], "wipe") == 0)
        rc = hub_device_wipe(h, c->argv[1]);
    else
        return cmc_fail(CMC_ERR_USAGE, "unknown device command %s", c->argv[0]);
    if (rc != CMC_OK)
        return rc;
    if (c->json)
        print_json(json_pack("{s:s, s:s, s:b}", "device_id", c->argv[1], "change", c->argv[0],
                             "ok", 1));
    else
        printf("device %s: %s\n", c->argv[1],
               strcmp(c->argv[0], "revoke") == 0 ? "revoked" : "wipe ordered at its next sync");
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
    else
        printf("%s  %-12s by %s (%s) on device %s (%s), received %s\n", when, e->action, e->user,
               e->role, e->device_name[0] != '\0' ? e->device_name : "?", e->device_id, received);
    return 0;
}

static int cmd_audit(struct cli *c, hub *h)
{
    json_t *arr = c->json ? json_array() : NULL;
    int rc = want_args(c, 1, "audit PLAN");
    if (rc == CMC_OK)
        rc = hub_audit_list(h, c->argv[0], audit_cb, arr);
    if (rc == CMC_OK)
        rc = hub_fhir_audit_list(h, c->argv[0], audit_cb, arr);
    if (rc == CMC_OK && arr != NULL) {
        print_json(arr);
        arr = NULL;
    }
    json_decref(arr);
    return rc;
}

struct seed_progress {
    uint64_t start_ns;
    int tty;
};

static void seed_progress_cb(long done, long total, void *ctx)
{
    struct seed_progress *sp = ctx;
    double secs = (double)(plat_mono_now_ns() - sp->start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;
    if (!sp->tty)
        return;
    fprintf(stderr, "\r  %ld/%ld plans  %.0f/s  %.0fs left   ", done, total, rate,
            rate > 0 ? (double)(total - done) / rate : 0.0);
    if (done == total)
        fputc('\n', stderr);
}

static int cmd_seed(struct cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *plans = take_opt(c, "--plans", &rc);
    const char *seed = rc == CMC_OK ? take_opt(c, "--seed", &rc) : NULL;
    struct seed_progress sp;
    char *end = NULL;
    long n;
    unsigned long long s = 1;

    if (rc != CMC_OK)
        return rc;
    if ((rc = want_args(c, 0, "seed --plans N [--seed S]")) != CMC_OK)
        return rc;
    if (plans == NULL)
        return cmc_fail(CMC_ERR_USAGE, "seed: --plans N is required");
    n = strtol(plans, &end, 10);
    if (end == plans || *end != '\0' || n < 0)
        return cmc_fail(CMC_ERR_USAGE, "--plans: a number of plans");
    if (seed != NULL) {
        s = strtoull(seed, &end, 10);
        if (end == seed || *end != '\0')
            return cmc_fail(CMC_ERR_USAGE, "--seed: a number");
    }
    sp.start_ns = plat_mono_now_ns();
    sp.tty = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    if ((rc = hub_seed(h, n, s, seed_progress_cb, &sp)) != CMC_OK)
        return rc;
    double secs = (double)(plat_mono_now_ns() - sp.start_ns) / 1e9;
    if (c->json)
        print_json(json_pack("{s:I, s:I, s:f}", "plans", (json_int_t)n, "seed", (json_int_t)s,
                             "seconds", secs));
    else
        printf("seeded %ld plans (seed %llu) in %.1f s\n", n, s, secs);
    return CMC_OK;
}

static int cmd_serve(struct cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *listen = take_opt(c, "--listen", &rc);
    const char *cert = rc == CMC_OK ? take_opt(c, "--tls-cert", &rc) : NULL;
    const char *key = rc == CMC_OK ? take_opt(c, "--tls-key", &rc) : NULL;
    struct hub_server_opts opts;
    hub_server *srv = NULL;
    char host[128];
    sigset_t set;
    int sig = 0;

    if (rc != CMC_OK)
        return rc;
    if ((rc = want_args(c, 0, "serve --listen HOST:PORT [--tls-cert F --tls-key F]")) != CMC_OK)
        return rc;
    if (listen == NULL)
        return cmc_fail(CMC_ERR_USAGE, "serve: --listen HOST:PORT is required");
    memset(&opts, 0, sizeof opts);
    if ((rc = hub_parse_listen(listen, host, sizeof host, &opts.port)) != CMC_OK)
        return rc;
    opts.host = host;
    opts.tls_cert_path = cert;
    opts.tls_key_path = key;
    plat_harden_process();
    /* Block the stop signals in every thread; this one waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = hub_server_start(h, &opts, &srv)) != CMC_OK)
        return rc;
    if (c->json)
        print_json(json_pack("{s:s, s:i, s:b}", "host", host, "port", (int)hub_server_port(srv),
                             "tls", cert != NULL));
    else
        printf("cmc-hub serving %s on %s:%u\n", cert != NULL ? "https" : "http (no TLS)", host,
               (unsigned)hub_server_port(srv));
    fflush(stdout);
    sigwait(&set, &sig);
    hub_server_stop(srv);
    if (!c->json)
        printf("cmc-hub stopped\n");
    return CMC_OK;
}

int main(int argc, char **argv)
{
    struct cli c;
    char dirbuf[4096];
    const char *cmd = NULL;
    hub *h = NULL;
    int rc = CMC_OK;

    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else if (strcmp(argv[i], "--dir") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cmc-hub: --dir needs a directory\n");
                return 2;
            }
            c.dir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cmd == NULL) {
            cmd = argv[i];
        } else if (c.argc < MAX_ARGS) {
            c.argv[c.argc++] = argv[i];
        } else {
            fprintf(stderr, "cmc-hub: too many arguments\n");
            return 2;
        }
    }
    if (cmd == NULL || strcmp(cmd, "help") == 0) {
        fputs(usage_text, cmd == NULL ? stderr : stdout);
        return cmd == NULL ? 2 : 0;
    }
    if (c.dir == NULL)
        c.dir = default_dir(dirbuf, sizeof dirbuf);

    if (strcmp(cmd, "init") == 0) {
        rc = cmd_init(&c);
        goto out;
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "seed") != 0 && strcmp(cmd, "user") != 0 &&
        strcmp(cmd, "plan") != 0 && strcmp(cmd, "caseload") != 0 && strcmp(cmd, "device") != 0 &&
        strcmp(cmd, "audit") != 0 && strcmp(cmd, "key") != 0 && strcmp(cmd, "client") != 0) {
        rc = cmc_fail(CMC_ERR_USAGE, "unknown command %s (see cmc-hub --help)", cmd);
        goto out;
    }
    if ((rc = hub_open(c.dir, &h)) != CMC_OK)
        goto out;
    if (strcmp(cmd, "serve") == 0)
        rc = cmd_serve(&c, h);
    else if (strcmp(cmd, "seed") == 0)
        rc = cmd_seed(&c, h);
    else if (strcmp(cmd, "user") == 0)
        rc = cmd_user(&c, h);
    else if (strcmp(cmd, "plan") == 0)
        rc = cmd_plan(&c, h);
    else if (strcmp(cmd, "caseload") == 0)
        rc = cmd_caseload(&c, h);
    else if (strcmp(cmd, "device") == 0)
        rc = cmd_device(&c, h);
    else if (strcmp(cmd, "audit") == 0)
        rc = cmd_audit(&c, h);
    else if (strcmp(cmd, "client") == 0)
        rc = hub_fhir_cmd_client(h, c.json, c.argc, c.argv);
    else
        rc = cmd_key(&c, h);
out:
    hub_close(h);
    if (rc != CMC_OK) {
        if (c.json)
            print_json(json_pack("{s:s, s:s}", "error", cmc_errname(rc), "message", cmc_errmsg()));
        fprintf(stderr, "cmc-hub: %s\n", cmc_errmsg());
    }
    fflush(stdout);
    return cmc_exit_code(rc);
}
