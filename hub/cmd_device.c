/*
 * cmd_device.c - `cmc-hub device` and `cmc-hub scope`: devices by name or id, their leases,
 * and the scopes the hub knows (hub/admin.h).
 */
#include "hub/admin.h"
#include "hub/cli.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            json_object_set_new(o, "audit_alarm",
                                d->audit_alarm[0] ? json_string(d->audit_alarm) : json_null());
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
        if (d->audit_alarm[0] != '\0') {
            char when[21];
            plat_format_time(d->audit_alarm_at, when);
            printf("%s  AUDIT ALARM since %s: %s\n", d->device_id, when, d->audit_alarm);
        }
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

static int cmd_device_lease(struct hub_cli *c, hub *h, const char *scope)
{
    int64_t days = 0;
    int rc;
    if (scope != NULL) {
        if ((rc = hub_cli_want_args(c, 2, "device lease --scope SCOPE DAYS|default")) != CMC_OK)
            return rc;
        if ((rc = parse_lease_days(c->argv[1], &days)) != CMC_OK)
            return rc;
        if ((rc = hub_scope_lease_set(h, scope, days)) != CMC_OK)
            return rc;
    } else {
        char id[PLAN_ID_LEN + 1];
        if ((rc = hub_cli_want_args(c, 3, "device lease DEVICE DAYS|default")) != CMC_OK)
            return rc;
        if ((rc = parse_lease_days(c->argv[2], &days)) != CMC_OK)
            return rc;
        if ((rc = hub_device_resolve(h, c->argv[1], id)) != CMC_OK)
            return rc;
        if ((rc = hub_device_lease_set(h, id, days)) != CMC_OK)
            return rc;
    }
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s}", scope != NULL ? "scope" : "device_id",
                              scope != NULL ? scope : c->argv[1], "change", "lease");
        if (o != NULL)
            json_object_set_new(o, "lease_days", days < 0 ? json_null() : json_integer(days));
        hub_cli_print_json(o);
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

/* CMC_ERR_USAGE naming the closest known scopes when `scope` names nothing the hub holds
 * (on a hub that holds no plans at all there is nothing to check against: a note only). */
struct scope_near {
    const char *want;
    const char *names[512];
    char store[512][HUB_SCOPE_MAX + 1];
    size_t n;
};

static int scope_collect(const struct hub_scope_info *si, void *ctx)
{
    struct scope_near *sn = ctx;
    if (sn->n < sizeof sn->names / sizeof sn->names[0]) {
        snprintf(sn->store[sn->n], sizeof sn->store[0], "%s", si->scope);
        sn->names[sn->n] = sn->store[sn->n];
        sn->n++;
    }
    return 0;
}

static int check_scope(hub *h, const char *scope)
{
    static struct scope_near sn;
    const char *near;
    int known = 0, rc = hub_scope_known(h, scope, &known);
    if (rc != CMC_OK || known)
        return rc;
    memset(&sn, 0, sizeof sn);
    if ((rc = hub_scope_list(h, scope_collect, &sn)) != CMC_OK)
        return rc;
    if (sn.n == 0) {
        /* A new hub holds nothing to check against: devices may be registered first. */
        fprintf(stderr, "cmc-hub: note: this hub holds no plans yet; scope %s not checked\n",
                scope);
        return CMC_OK;
    }
    near = hub_cli_closest(scope, sn.names, sn.n);
    if (near != NULL)
        return cmc_fail(CMC_ERR_USAGE, "--scope %s names nothing this hub holds: did you mean"
                                       " '%s'? (cmc-hub scope list; --allow-empty-scope to add it"
                                       " anyway)", scope, near);
    return cmc_fail(CMC_ERR_USAGE, "--scope %s names nothing this hub holds (cmc-hub scope list;"
                                   " --allow-empty-scope to add it anyway)", scope);
}

static int device_add(struct hub_cli *c, hub *h, const char *scope, const char *role,
                      int allow_empty)
{
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    int rc;
    if ((rc = hub_cli_want_args(c, 2, "device add NAME --scope S --role R")) != CMC_OK)
        return rc;
    if (scope == NULL || role == NULL)
        return cmc_fail(CMC_ERR_USAGE, "device add: --scope all|region:R|team:T|care_home:H"
                                       " and --role urgent_care|clinician are required");
    if (!allow_empty && (rc = check_scope(h, scope)) != CMC_OK)
        return rc;
    if ((rc = hub_device_name_free(h, c->argv[1])) != CMC_OK)
        return rc;
    if ((rc = hub_device_add(h, c->argv[1], scope, role, id, code)) != CMC_OK)
        return rc;
    if (c->json) {
        hub_cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s}", "device_id", id, "name",
                                     c->argv[1], "scope", scope, "role", role, "code", code));
    } else {
        printf("device %s (%s) registered: scope %s, role %s\n", c->argv[1], id, scope, role);
        printf("enrollment code (works once, within 24 hours):\n");
        printf("%s\n", code);
    }
    cry_memzero(code, sizeof code);
    return CMC_OK;
}

static int device_change(struct hub_cli *c, hub *h)
{
    struct hub_device_info d;
    char id[PLAN_ID_LEN + 1];
    int revoke = strcmp(c->argv[0], "revoke") == 0;
    int rc = hub_cli_want_args(c, 2, revoke ? "device revoke DEVICE" : "device wipe DEVICE");
    if (rc != CMC_OK)
        return rc;
    if ((rc = hub_device_resolve(h, c->argv[1], id)) != CMC_OK)
        return rc;
    if ((rc = revoke ? hub_device_revoke(h, id) : hub_device_wipe(h, id)) != CMC_OK)
        return rc;
    if ((rc = hub_device_get(h, id, &d)) != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:b}", "device_id", id, "name", d.name,
                                     "change", c->argv[0], "state",
                                     d.wipe && strcmp(d.state, "active") == 0 ? "wipe_ordered"
                                                                              : d.state,
                                     "ok", 1));
    else
        printf("device %s (%s): %s\n", d.name, id,
               revoke ? "revoked" : "wipe ordered at its next sync");
    return CMC_OK;
}

static int cmd_device(struct hub_cli *c, hub *h)
{
    int rc = CMC_OK;
    int allow_empty = hub_cli_take_flag(c, "--allow-empty-scope");
    const char *scope = hub_cli_take_opt(c, "--scope", &rc);
    const char *role = rc == CMC_OK ? hub_cli_take_opt(c, "--role", &rc) : NULL;

    if (rc != CMC_OK)
        return rc;
    if (c->argc < 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub device add|list|revoke|wipe|lease ...");
    if (strcmp(c->argv[0], "list") == 0) {
        json_t *arr = c->json ? json_array() : NULL;
        if ((rc = hub_cli_want_args(c, 1, "device list")) != CMC_OK)
            return rc;
        rc = hub_device_list(h, list_device_cb, arr);
        return hub_cli_print_list(rc, arr);
    }
    if (strcmp(c->argv[0], "lease") == 0) {
        if (role != NULL)
            return cmc_fail(CMC_ERR_USAGE, "device lease: --role does not apply");
        return cmd_device_lease(c, h, scope);
    }
    if (strcmp(c->argv[0], "add") == 0)
        return device_add(c, h, scope, role, allow_empty);
    return device_change(c, h);
}

static int scope_cb(const struct hub_scope_info *si, void *ctx)
{
    json_t *arr = ctx;
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "scope", si->scope, "plans",
                                             (json_int_t)si->plans, "devices",
                                             (json_int_t)si->devices));
    else
        printf("%-50s %7lld plans  %4lld devices\n", si->scope, (long long)si->plans,
               (long long)si->devices);
    return 0;
}

static int cmd_scope(struct hub_cli *c, hub *h)
{
    json_t *arr = c->json ? json_array() : NULL;
    int rc = hub_cli_want_args(c, 1, "scope list");
    if (rc == CMC_OK && strcmp(c->argv[0], "list") != 0)
        rc = cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub scope list");
    if (rc == CMC_OK && !c->json)
        printf("%-50s %7s plans  %4s devices\n", "all", "every", "");
    if (rc == CMC_OK)
        rc = hub_scope_list(h, scope_cb, arr);
    return hub_cli_print_list(rc, arr);
}

/* ---- command rows ------------------------------------------------------------------------ */

static const char *const device_subs[] = {"add", "list", "revoke", "wipe", "lease", NULL};
const struct hub_cli_cmd hub_cmd_device = {
    "device", device_subs,
    "usage: cmc-hub device COMMAND ...\n"
    "\n"
    "  device add NAME --scope SCOPE --role urgent_care|clinician [--allow-empty-scope]\n"
    "        registers a device; its one-time enrollment code (24 hours) is the last line.\n"
    "        SCOPE: all, region:R, team:T or care_home:H; one naming nothing the hub holds is\n"
    "        refused with the closest names (see `cmc-hub scope list`) unless\n"
    "        --allow-empty-scope (not checked while the hub holds no plans at all).\n"
    "        NAME must be unique among devices in service.\n"
    "  device list                     name, id, scope, role, state, cursor, last seen, lease\n"
    "  device revoke DEVICE            refused on every request from now on\n"
    "  device wipe DEVICE              its next sync destroys its replica, then it is refused\n"
    "  device lease DEVICE DAYS|default\n"
    "  device lease --scope SCOPE DAYS|default\n"
    "        most days a device may go without a sync before it locks (default 14; 0 = none)\n"
    "\n"
    "DEVICE is a device name or id. --json prints one JSON document.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_device};

static const char *const scope_subs[] = {"list", NULL};
const struct hub_cli_cmd hub_cmd_scope = {
    "scope", scope_subs,
    "usage: cmc-hub scope list\n"
    "\n"
    "The regions, teams and care homes this hub holds plans for (a team also by its caseload),\n"
    "with the plans each covers (consent not withdrawn) and the devices in service with it.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_scope};
