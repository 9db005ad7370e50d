/* cli_edit.c - a clinician's offline edits and their conflicts: edit, conflicts, resolve. */
#include "agent/cli.h"

#include "agent/audit.h"
#include "agent/engine.h"
#include "agent/view.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int cli_cmd_edit(struct cli_opts *o)
{
    int rc = cli_need_args(o, 1, o->file != NULL, "edit PLAN --file CHANGES.json");
    if (rc != CMC_OK)
        return rc;
    uint8_t *json = NULL, *packed = NULL;
    size_t json_len = 0, packed_len = 0;
    struct plan_change change;
    struct plan view;
    plan_change_init(&change);
    plan_init(&view);
    struct cli_session s;
    memset(&s, 0, sizeof s);
    plat_lock *lock = NULL;
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = NULL;
    if ((rc = cli_plan_key(o->positional[0], nhs, &key)) != CMC_OK)
        goto out;
    if ((rc = plat_read_file(o->file, PLAN_MAX_ENCODED, &json, &json_len)) != CMC_OK)
        goto out;
    if ((rc = plan_change_from_json((const char *)json, json_len, &change)) != CMC_OK)
        goto out;
    if ((rc = plat_lock_acquire(o->lock_path, 0, &lock)) != CMC_OK)
        goto out;
    if ((rc = cli_unlock_for_reading(o, &s)) != CMC_OK)
        goto out;
    if (s.who.role != STORE_ROLE_CLINICIAN) {
        rc = cmc_fail(CMC_ERR_DENIED, "only a clinician can edit a plan; urgent-care users can read published plans");
        goto out;
    }
    int pending = 0;
    if ((rc = view_load(s.store, key, &view, &pending, NULL)) != CMC_OK)
        goto out;
    /* The base is the version held; the change must apply on top of what is pending. */
    if ((rc = plan_change_apply(&view, &change)) != CMC_OK)
        goto out;
    if ((rc = plan_change_pack(&change, &packed, &packed_len)) != CMC_OK)
        goto out;
    struct store_pending meta;
    if ((rc = store_pending_add(s.store, view.plan_id, view.version, packed, packed_len, &meta)) != CMC_OK)
        goto out;
    audit_record(s.store, AUDIT_EDIT, view.plan_id, NULL);
    if (o->json)
        rc = cli_print_json(json_pack("{s:b, s:s, s:I, s:s, s:s}", "ok", 1, "plan_id", view.plan_id, "base_version",
                                  (json_int_t)view.version, "idempotency_id", meta.idempotency_id, "state",
                                  "pending"));
    else
        printf("Saved as a pending edit (not yet approved). It is pushed to the hub at the next sync "
               "and becomes a draft for approval.\n");
out:
    cmc_free(json);
    cmc_free(packed);
    plan_change_free(&change);
    plan_free(&view);
    cli_session_close(&s);
    plat_lock_release(lock);
    return rc;
}

static int conflicts_in(struct cli_opts *o, struct cli_session *s)
{
    struct engine_conflict *c = NULL;
    size_t n = 0;
    int rc = engine_conflicts(s->store, &c, &n);
    if (rc == CMC_OK && o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "plan_id", c[i].plan_id,
                                                 "nhs_number", c[i].nhs_number, "field", c[i].path, "local",
                                                 c[i].local, "remote", c[i].remote, "base", c[i].base,
                                                 "remote_version", (json_int_t)c[i].remote_version, "chosen",
                                                 c[i].chosen));
        rc = cli_print_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "conflicts", arr));
    } else if (rc == CMC_OK) {
        if (n == 0)
            printf("No open conflicts.\n");
        for (size_t i = 0; i < n; i++)
            cli_term_printf(stdout, "%s  %s\n    yours (local): %s\n    hub v%lld (remote): %s\n    before: %s%s%s\n",
                            c[i].nhs_number, c[i].path, c[i].local, (long long)c[i].remote_version, c[i].remote,
                            c[i].base, c[i].chosen[0] ? "\n    chosen: " : "", c[i].chosen);
        if (n > 0)
            printf("Settle each with: cmc-agent resolve PLAN FIELD --keep local|remote\n");
    }
    cmc_free(c);
    return rc;
}

int cli_cmd_conflicts(struct cli_opts *o)
{
    return cli_run(o, 0, conflicts_in);
}

static int resolve_in(struct cli_opts *o, struct cli_session *s)
{
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = NULL;
    int rc = cli_plan_key(o->positional[0], nhs, &key);
    if (rc == CMC_OK)
        rc = engine_resolve(s->store, key, o->positional[1], o->keep);
    if (rc == CMC_OK && o->json)
        rc = cli_print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "field", o->positional[1], "kept", o->keep));
    else if (rc == CMC_OK)
        printf("Kept the %s value of %s. Once every conflict of the plan is settled, the edit is pushed at the "
               "next sync as a draft for approval.\n",
               o->keep, o->positional[1]);
    return rc;
}

int cli_cmd_resolve(struct cli_opts *o)
{
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = NULL;
    int rc = cli_need_plan(o, 2, o->keep != NULL, "resolve PLAN FIELD --keep local|remote", nhs, &key);
    return rc != CMC_OK ? rc : cli_run(o, CLI_RUN_LOCKED, resolve_in);
}
