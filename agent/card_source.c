/* card_source.c - a clinician's card provenance from the store: the version held, the state of
 * each local change, the open conflicts (card_source.h). */
#include "agent/card_source.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/change.h"

#include <stdio.h>
#include <string.h>

static int overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
    return n > 0 && strncmp(a, b, n) == 0 && (na == n || a[n] == '.') && (nb == n || b[n] == '.');
}

/* Appends the paths an edit changes to `into`. */
static int edit_paths(const struct store_pending *e, json_t *into)
{
    struct plan_change c;
    plan_change_init(&c);
    int rc = plan_change_unpack(e->change, e->change_len, &c);
    for (size_t k = 0; rc == CMC_OK && k < c.n_ops; k++)
        if (json_array_append_new(into, json_string(c.ops[k].field->path)) != 0)
            rc = cmc_fail(CMC_ERR_NOMEM, "out of memory listing the changed fields");
    plan_change_free(&c);
    return rc;
}

/* The paths of sent edits that no edit still on this device touches again. */
static int load_states(store *st, const char *plan_id, struct card_source *out)
{
    struct store_pending *pend = NULL;
    size_t n = 0;
    json_t *sent = json_array(), *here = json_array();
    int rc = sent != NULL && here != NULL ? store_pending_list(st, plan_id, &pend, &n)
                                          : cmc_fail(CMC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == CMC_OK && i < n; i++) {
        rc = edit_paths(&pend[i], pend[i].state == 1 ? sent : here);
        snprintf(out->proposed_by, sizeof out->proposed_by, "%s", pend[i].user);
        out->proposed_at = pend[i].created_at;
    }
    out->sent_paths = json_array();
    if (rc == CMC_OK && out->sent_paths == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(rc == CMC_OK ? sent : NULL, i, v)
    {
        int again = 0;
        json_array_foreach(here, k, w) again |= overlap(json_string_value(v), json_string_value(w));
        if (!again)
            json_array_append(out->sent_paths, v);
    }
    store_pending_free(pend, n);
    json_decref(sent);
    json_decref(here);
    return rc;
}

static int load_conflicts(store *st, const char *plan_id, struct card_source *out)
{
    struct engine_conflict *all = NULL;
    size_t n_all = 0;
    int rc = engine_conflicts(st, &all, &n_all);
    if (rc == CMC_OK && n_all > 0) {
        out->conflicts = cmc_calloc(n_all, sizeof *out->conflicts);
        if (out->conflicts == NULL)
            rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
        for (size_t i = 0; rc == CMC_OK && i < n_all; i++)
            if (strcmp(all[i].plan_id, plan_id) == 0)
                out->conflicts[out->n_conflicts++] = all[i];
    }
    if (all != NULL)
        cry_memzero(all, n_all * sizeof *all);
    cmc_free(all);
    return rc;
}

int card_source_load(store *st, const struct plan *shown, int n_pending, struct card_source *out)
{
    memset(out, 0, sizeof *out);
    plan_init(&out->published);
    if (store_session_of(st)->role != STORE_ROLE_CLINICIAN || shown->plan_id == NULL)
        return CMC_OK; /* urgent care: the published version only, no local changes */
    int rc = load_conflicts(st, shown->plan_id, out);
    if (rc == CMC_OK && n_pending > 0)
        rc = load_states(st, shown->plan_id, out);
    if (rc == CMC_OK && n_pending > 0) {
        rc = store_plan_get(st, shown->plan_id, &out->published);
        out->have_published = rc == CMC_OK;
    }
    if (rc != CMC_OK)
        card_source_free(out);
    return rc;
}

void card_source_apply(const struct card_source *src, struct card_context *ctx)
{
    ctx->published = src->have_published ? &src->published : NULL;
    ctx->sent_paths = src->sent_paths;
    ctx->conflicts = src->conflicts;
    ctx->n_conflicts = src->n_conflicts;
    ctx->proposed_by = src->proposed_by[0] ? src->proposed_by : NULL;
    ctx->proposed_at = src->proposed_at;
}

void card_source_free(struct card_source *src)
{
    plan_free(&src->published);
    json_decref(src->sent_paths);
    if (src->conflicts != NULL)
        cry_memzero(src->conflicts, src->n_conflicts * sizeof *src->conflicts);
    cmc_free(src->conflicts);
    memset(src, 0, sizeof *src);
    plan_init(&src->published);
}
