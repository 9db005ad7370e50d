/*
 * engine_conflicts.c - pending edits meeting a newer version: the three-way merge that rebases
 * them or holds them as conflicts, and the clinician settling each conflict (engine.h).
 */
#include "agent/engine_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"
#include "sync/merge.h"

#include <stdio.h>
#include <string.h>

/* ---- pending edits meeting a newer version ------------------------------------------------ */

/* Removes metadata ops (status, version, approval...) from a diff: an edit never carries them. */
static void strip_meta(struct plan_change *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n_ops; i++) {
        if (c->ops[i].field->flags & PLAN_FF_META) {
            const struct plan_field *f = c->ops[i].field;
            if (c->ops[i].item != NULL) {
                plan_item_free(f->list, c->ops[i].item);
                cmc_free(c->ops[i].item);
            }
            cmc_free(c->ops[i].item_id);
            continue;
        }
        c->ops[k++] = c->ops[i];
    }
    c->n_ops = k;
}

/* The plan with every pending edit applied, and the base they were made on. */
int engine_local_view(store *s, const struct store_pending *pend, size_t n, struct plan *base, struct plan *local)
{
    plan_init(base);
    plan_init(local);
    int rc = store_pending_base(s, pend[0].id, base);
    if (rc == CMC_OK)
        rc = plan_copy(local, base);
    for (size_t i = 0; rc == CMC_OK && i < n; i++) {
        struct plan_change c;
        plan_change_init(&c);
        rc = plan_change_unpack(pend[i].change, pend[i].change_len, &c);
        if (rc == CMC_OK)
            rc = plan_change_apply(local, &c);
        plan_change_free(&c);
    }
    if (rc != CMC_OK) {
        plan_free(base);
        plan_free(local);
    }
    return rc;
}

/* Rebases the edits in `merged` (relative to `remote`) as one pending edit on `remote`. */
int engine_rebase_pending(store *s, const char *plan_id, const struct plan *remote, const struct plan *merged)
{
    struct plan_change diff;
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = plan_change_diff(remote, merged, &diff);
    if (rc != CMC_OK)
        return rc;
    strip_meta(&diff);
    if (diff.n_ops > 0)
        rc = plan_change_pack(&diff, &packed, &len);
    if (rc == CMC_OK)
        rc = store_pending_replace(s, plan_id, remote, packed, diff.n_ops > 0 ? len : 0);
    plan_change_free(&diff);
    cmc_free(packed);
    return rc;
}

/* A newer version `remote` met the unpushed edits of its plan: merge three ways. */
int engine_merge_pending(store *s, const struct plan *remote, struct engine_report *rep)
{
    struct store_pending *pend = NULL;
    size_t n = 0;
    int rc = store_pending_settle(s, remote->plan_id, remote->version, NULL);
    if (rc == CMC_OK)
        rc = store_sync_pending_list(s, remote->plan_id, &pend, &n);
    if (rc != CMC_OK || n == 0)
        goto out;
    /* edits already with the hub, or already held by a conflict, wait for the hub's answer
     * or the clinician */
    for (size_t i = 0; i < n; i++)
        if (pend[i].state != 0 || pend[i].base_version >= remote->version)
            goto out;
    struct plan base, local, merged;
    if ((rc = engine_local_view(s, pend, n, &base, &local)) != CMC_OK)
        goto out;
    struct merge_conflict *conflicts = NULL;
    size_t n_conflicts = 0;
    rc = plan_merge3(&base, &local, remote, &merged, &conflicts, &n_conflicts);
    int merged_ok = rc == CMC_OK;
    if (rc == CMC_OK && n_conflicts == 0) {
        rc = engine_rebase_pending(s, remote->plan_id, remote, &merged);
        rep->rebased++;
    } else if (rc == CMC_OK) {
        rc = store_merge_put(s, remote->plan_id, &base, &local, remote);
        for (size_t i = 0; rc == CMC_OK && i < n; i++)
            rc = store_pending_set_state(s, pend[i].id, 2);
        rep->conflicts++;
    }
    if (merged_ok)
        plan_free(&merged);
    cmc_free(conflicts);
    plan_free(&base);
    plan_free(&local);
out:
    store_pending_free(pend, n);
    return rc;
}

/* ---- conflicts -------------------------------------------------------------------------------- */

static int resolve_key(store *s, const char *key, char plan_id[PLAN_ID_LEN + 1])
{
    if (strlen(key) == PLAN_ID_LEN) {
        snprintf(plan_id, PLAN_ID_LEN + 1, "%s", key);
        return CMC_OK;
    }
    struct plan p;
    int rc = store_plan_get(s, key, &p);
    if (rc == CMC_OK) {
        snprintf(plan_id, PLAN_ID_LEN + 1, "%s", p.plan_id);
        plan_free(&p);
    }
    return rc;
}

int engine_conflicts(store *s, struct engine_conflict **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (store_session_of(s)->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "conflicts hold unapproved changes: clinicians only");
    char **ids = NULL;
    size_t n_ids = 0;
    struct engine_conflict *list = NULL;
    size_t n = 0;
    int rc = store_merge_list(s, &ids, &n_ids);
    for (size_t i = 0; rc == CMC_OK && i < n_ids; i++) {
        struct plan base, local, remote, merged;
        struct merge_conflict *c = NULL;
        size_t nc = 0;
        if ((rc = store_merge_get(s, ids[i], &base, &local, &remote)) != CMC_OK)
            break;
        rc = plan_merge3(&base, &local, &remote, &merged, &c, &nc);
        if (rc == CMC_OK) {
            struct engine_conflict *grown = cmc_realloc(list, (n + nc + 1) * sizeof *list);
            if (grown == NULL)
                rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
            else
                list = grown;
            for (size_t k = 0; rc == CMC_OK && k < nc; k++) {
                struct engine_conflict *ec = &list[n++];
                memset(ec, 0, sizeof *ec);
                snprintf(ec->plan_id, sizeof ec->plan_id, "%s", remote.plan_id);
                snprintf(ec->nhs_number, sizeof ec->nhs_number, "%s", remote.nhs_number);
                snprintf(ec->path, sizeof ec->path, "%s", c[k].path);
                plan_merge_value_text(&local, &c[k], ec->local, sizeof ec->local);
                plan_merge_value_text(&remote, &c[k], ec->remote, sizeof ec->remote);
                plan_merge_value_text(&base, &c[k], ec->base, sizeof ec->base);
                ec->remote_version = remote.version;
                rc = store_merge_choice(s, ec->plan_id, ec->path, ec->chosen);
            }
            plan_free(&merged);
        }
        cmc_free(c);
        plan_free(&base);
        plan_free(&local);
        plan_free(&remote);
    }
    for (size_t i = 0; i < n_ids; i++)
        cmc_free(ids[i]);
    cmc_free(ids);
    if (rc != CMC_OK) {
        cmc_free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return CMC_OK;
}

int engine_resolve(store *s, const char *plan_key, const char *path, const char *keep)
{
    if (store_session_of(s)->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "only a clinician can settle a conflict");
    if (strcmp(keep, "local") != 0 && strcmp(keep, "remote") != 0)
        return cmc_fail(CMC_ERR_USAGE, "--keep must be local or remote");
    char plan_id[PLAN_ID_LEN + 1];
    int rc = resolve_key(s, plan_key, plan_id);
    if (rc != CMC_OK)
        return rc;
    struct plan base, local, remote, merged;
    struct merge_conflict *c = NULL;
    size_t nc = 0;
    if ((rc = store_merge_get(s, plan_id, &base, &local, &remote)) != CMC_OK) {
        if (rc == CMC_ERR_NOT_FOUND)
            rc = cmc_fail(CMC_ERR_NOT_FOUND, "that plan has no open conflict");
        return rc;
    }
    if ((rc = plan_merge3(&base, &local, &remote, &merged, &c, &nc)) != CMC_OK)
        goto out_plans;
    if (plan_merge_find(c, nc, path) == NULL) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no open conflict at %s for that plan (see cmc-agent conflicts)", path);
        goto out;
    }
    if ((rc = store_batch_begin(s)) != CMC_OK)
        goto out;
    rc = store_merge_choose(s, plan_id, path, keep);
    /* Settled when every conflict has a choice: apply them and rebase the edit. */
    size_t decided = 0;
    for (size_t i = 0; rc == CMC_OK && i < nc; i++) {
        char choice[8];
        rc = store_merge_choice(s, plan_id, c[i].path, choice);
        if (rc != CMC_OK || choice[0] == '\0')
            continue;
        decided++;
        rc = plan_merge_take(&merged, strcmp(choice, "local") == 0 ? &local : &remote, &c[i]);
    }
    if (rc == CMC_OK && decided == nc) {
        rc = engine_rebase_pending(s, plan_id, &remote, &merged);
        if (rc == CMC_OK)
            rc = store_merge_delete(s, plan_id);
    }
    if (rc == CMC_OK)
        rc = store_batch_commit(s);
    else
        store_batch_rollback(s);
out:
    plan_free(&merged);
    cmc_free(c);
out_plans:
    plan_free(&base);
    plan_free(&local);
    plan_free(&remote);
    return rc;
}
