/*
 * cmd_backup.c - `cmc-hub backup FILE`, `cmc-hub restore [FILE]` and `cmc-hub restore report`
 * (hub.h: backup, restore, devices that found the hub behind them).
 */
#include "hub/cli.h"

#include "platform/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int run_backup(struct hub_cli *c, hub *h)
{
    int rc = hub_cli_want_args(c, 1, "usage: cmc-hub backup FILE");
    if (rc == CMC_OK)
        rc = hub_backup(h, c->argv[0]);
    if (rc != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:b}", "backup", c->argv[0], "ok", 1));
    else
        printf("backup written to %s (encrypted under this hub's key file: keep both)\n", c->argv[0]);
    return CMC_OK;
}

static void when(int64_t at, char out[32])
{
    time_t t = (time_t)at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int report_row(const struct hub_rewind *r, void *ctx)
{
    json_t *arr = ctx;
    char at[32];
    when(r->at, at);
    if (arr != NULL)
        return json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "device_id",
                                                    r->device_id, "name", r->name, "cursor",
                                                    (json_int_t)r->cursor, "restored_head",
                                                    (json_int_t)r->head, "lost_changes",
                                                    (json_int_t)(r->cursor - r->head), "at", at)) == 0
                   ? CMC_OK
                   : cmc_fail(CMC_ERR_NOMEM, "report");
    printf("%s  %-20s %s had seen %llu changes the restored hub lost (its cursor %llu, the restored"
           " log ends at %llu)\n", at, r->name, r->device_id,
           (unsigned long long)(r->cursor - r->head), (unsigned long long)r->cursor,
           (unsigned long long)r->head);
    return CMC_OK;
}

/* The lost plans, one line (or JSON object) a plan, with the devices that hold it. */
struct lost_report {
    json_t *arr;     /* JSON: the plans */
    json_t *devices; /* JSON: the current plan's devices */
    char plan_id[PLAN_ID_LEN + 1];
    int n;
};

/* How the hub knows a device has the plan: it said so, or the store before the restore had
 * sent it. */
static const char *lost_how(const struct hub_lost_plan *lp)
{
    return lp->reported > 0 ? "reported by the device" : "sent before the restore, not yet reported";
}

static int lost_row(const struct hub_lost_plan *lp, void *ctx)
{
    struct lost_report *r = ctx;
    if (strcmp(r->plan_id, lp->plan_id) != 0) {
        snprintf(r->plan_id, sizeof r->plan_id, "%s", lp->plan_id);
        r->n++;
        if (r->arr != NULL) {
            r->devices = json_array();
            if (json_array_append_new(r->arr, json_pack("{s:s, s:I, s:o}", "plan_id", lp->plan_id,
                                                        "version", (json_int_t)lp->version,
                                                        "devices", r->devices)) != 0)
                return cmc_fail(CMC_ERR_NOMEM, "report");
        } else {
            printf("%slost plan %s (version %lld): this hub no longer has that version; held by:",
                   r->n > 1 ? "\n" : "", lp->plan_id, (long long)lp->version);
        }
    }
    if (lp->device_id[0] == '\0') {
        if (r->arr == NULL)
            printf(" no device");
        return CMC_OK;
    }
    if (r->arr != NULL)
        return json_array_append_new(r->devices,
                                     json_pack("{s:s, s:s, s:s, s:b}", "device_id", lp->device_id,
                                               "name", lp->name, "source", lp->source,
                                               "reported", lp->reported > 0)) == 0
                   ? CMC_OK
                   : cmc_fail(CMC_ERR_NOMEM, "report");
    printf(" %s (%s, %s)", lp->name[0] != '\0' ? lp->name : "?", lp->device_id, lost_how(lp));
    return CMC_OK;
}

static int run_report(struct hub_cli *c, hub *h)
{
    struct lost_report lost = { .arr = c->json ? json_array() : NULL };
    struct hub_generation g;
    json_t *arr = c->json ? json_array() : NULL;
    int rc = hub_generation_get(h, &g);
    if (rc == CMC_OK && !c->json)
        printf("# generation %s, epoch %llu%s\n", g.id, (unsigned long long)g.epoch,
               g.epoch == 0 ? " (never restored)" : "");
    if (rc == CMC_OK)
        rc = hub_rewinds_list(h, report_row, arr);
    if (rc == CMC_OK)
        rc = hub_lost_plans_list(h, lost_row, &lost);
    if (rc == CMC_OK && !c->json && lost.n > 0)
        printf("\n");
    if (rc == CMC_OK && c->json) {
        hub_cli_print_json(json_pack("{s:s, s:I, s:I, s:o, s:o}", "generation", g.id, "epoch",
                                     (json_int_t)g.epoch, "restored_head",
                                     (json_int_t)g.restored_head, "devices", arr, "lost_plans",
                                     lost.arr));
    } else {
        json_decref(arr);
        json_decref(lost.arr);
    }
    if (rc == CMC_OK && !c->json)
        printf("# each lost plan's version is only on the devices named: re-enter it from a"
               " device's copy (cmc-agent show) and have it approved again\n");
    return rc;
}

static int run_restore(struct hub_cli *c, hub *h)
{
    int rc;
    if (c->argc >= 1 && strcmp(c->argv[0], "report") == 0) {
        c->argc--;
        memmove(c->argv, c->argv + 1, (size_t)c->argc * sizeof c->argv[0]);
        if ((rc = hub_cli_want_args(c, 0, "usage: cmc-hub restore report")) != CMC_OK)
            return rc;
        return run_report(c, h);
    }
    rc = CMC_OK;
    const char *lost_from = hub_cli_take_opt(c, "--lost-from", &rc);
    if (rc != CMC_OK)
        return rc;
    if (c->argc > 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub restore FILE (SQLCipher) or cmc-hub"
                        " restore [--lost-from URL] (PostgreSQL, after pg_restore)");
    if (lost_from != NULL && !hub_store_shared(h))
        return cmc_fail(CMC_ERR_USAGE, "--lost-from: only on PostgreSQL (a SQLCipher restore finds"
                        " the lost plans in the file it replaces)");
    rc = lost_from != NULL ? hub_restore_lost_from(h, lost_from)
                           : hub_restore(h, c->argc == 1 ? c->argv[0] : NULL);
    if (rc != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:b}", "restored", 1));
    else
        printf("hub restored: a new generation; devices that had seen later changes re-sync and"
               " are listed by `cmc-hub restore report`\n");
    return CMC_OK;
}

#define BACKUP_ENV_HELP                                                                     \
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_DB (PostgreSQL URL), CMC_LOG.\n"

const struct hub_cli_cmd hub_cmd_backup = {
    "backup", NULL,
    "usage: cmc-hub [--dir DIR] backup FILE\n"
    "\n"
    "Copies the SQLCipher store to FILE while the hub keeps serving (SQLite's online backup),\n"
    "encrypted under the hub's key file: keep the key file with it. A PostgreSQL store is\n"
    "backed up with pg_dump, or pg_basebackup and WAL archiving (docs/OPERATIONS.md).\n"
    BACKUP_ENV_HELP,
    1, run_backup};

const struct hub_cli_cmd hub_cmd_restore = {
    "restore", NULL,
    "usage: cmc-hub [--dir DIR] restore FILE     (SQLCipher: every hub node stopped)\n"
    "       cmc-hub --db URL restore [--lost-from OLD_URL]   (PostgreSQL, after pg_restore\n"
    "                                           or PITR; OLD_URL: the database before it)\n"
    "       cmc-hub restore report              devices that had seen changes lost with it\n"
    "\n"
    "Puts the copy back and marks the store restored: a new generation id, the next epoch,\n"
    "and a change sequence that never reuses the lost changes' numbers. A device that had\n"
    "synced past the copy is told \"the hub was restored from an earlier backup; re-syncing\",\n"
    "keeps its copy and pending edits, re-syncs from the start and pushes its edits again;\n"
    "`restore report` lists those devices and how many changes each had seen that were lost,\n"
    "and each plan published after the copy and lost with it, with the devices that hold\n"
    "it: each such device reports them itself when it finds the hub behind it; they are\n"
    "also found in the store the copy replaces (SQLCipher), or in the database named by\n"
    "--lost-from (PostgreSQL: the old primary, or the database renamed aside).\n"
    BACKUP_ENV_HELP,
    1, run_restore};
