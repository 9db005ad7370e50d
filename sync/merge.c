#include "sync/merge.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

struct conflicts {
    struct merge_conflict *v;
    size_t n;
    size_t cap;
};

static int add_conflict(struct conflicts *cs, const struct plan_field *f, const char *item_id,
                        const struct plan_field *item_field)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 8;
        struct merge_conflict *v = cmc_realloc(cs->v, cap * sizeof *v);
        if (v == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "out of memory merging");
        cs->v = v;
        cs->cap = cap;
    }
    struct merge_conflict *c = &cs->v[cs->n++];
    memset(c, 0, sizeof *c);
    c->field = f;
    c->item_field = item_field;
    if (f == NULL)
        snprintf(c->path, sizeof c->path, "plan");
    else if (item_id == NULL)
        snprintf(c->path, sizeof c->path, "%s", f->path);
    else if (item_field == NULL)
        snprintf(c->path, sizeof c->path, "%s[%s]", f->path, item_id);
    else
        snprintf(c->path, sizeof c->path, "%s[%s].%s", f->path, item_id, item_field->path);
    if (item_id != NULL)
        snprintf(c->item_id, sizeof c->item_id, "%s", item_id);
    return CMC_OK;
}

static void **list_ptr(const struct plan_field *f, struct plan *p)
{
    return (void **)((char *)p + f->offset);
}

static size_t *list_count(const struct plan_field *f, struct plan *p)
{
    return (size_t *)((char *)p + f->list->count_offset);
}

static const void *item_at(const struct plan_field *f, const struct plan *p, const char *id)
{
    size_t idx, n;
    if (id == NULL || !plan_list_find(f, p, id, &idx))
        return NULL;
    const char *items = plan_list_items(f, p, &n);
    return items + idx * f->list->item_size;
}

/* Three-way merge of one value: writes into `dst` (already holding the remote value). */
static int merge_value(const struct plan_field *f, const void *base, const void *local, const void *remote,
                       void *dst, int *conflict)
{
    *conflict = 0;
    if (plan_field_equal(f, local, remote))
        return CMC_OK;
    if (plan_field_equal(f, base, remote))
        return plan_field_copy(f, dst, local);
    if (plan_field_equal(f, base, local))
        return CMC_OK;
    *conflict = 1;
    return CMC_OK;
}

/* Merges the fields of one item present on both sides into `dst` (a copy of remote's). */
static int merge_item_fields(const struct plan_field *f, const void *base_item, const void *local_item,
                             const void *remote_item, void *dst, const char *id, struct conflicts *cs)
{
    const struct plan_list_desc *list = f->list;
    for (size_t k = 1; k < list->n_fields; k++) { /* fields[0] is the id */
        const struct plan_field *itf = &list->fields[k];
        int conflict;
        int rc = merge_value(itf, base_item, local_item, remote_item, dst, &conflict);
        if (rc == CMC_OK && conflict)
            rc = add_conflict(cs, f, id, itf);
        if (rc != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

static int merge_list(const struct plan_field *f, const struct plan *base, const struct plan *local,
                      const struct plan *remote, struct plan *merged, struct conflicts *cs)
{
    const struct plan_list_desc *list = f->list;
    size_t n_local, n_remote;
    const char *local_items = plan_list_items(f, local, &n_local);
    const char *remote_items = plan_list_items(f, remote, &n_remote);
    size_t cap = n_local + n_remote;
    char *out = cmc_calloc(cap ? cap : 1, list->item_size);
    char *empty = cmc_calloc(1, list->item_size);
    size_t n_out = 0;
    int rc = CMC_OK;
    if (out == NULL || empty == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory merging");
        goto out;
    }
    plan_item_init(list, empty);

    /* Remote's items, in remote order. */
    for (size_t i = 0; i < n_remote && rc == CMC_OK; i++) {
        const void *r_it = remote_items + i * list->item_size;
        const char *id = plan_item_id(list, r_it);
        const void *b_it = item_at(f, base, id);
        const void *l_it = item_at(f, local, id);
        void *dst = out + n_out * list->item_size;
        if (l_it == NULL && b_it != NULL) {
            /* removed locally */
            if (plan_item_equal(list, b_it, r_it))
                continue;
            rc = add_conflict(cs, f, id, NULL);
            if (rc == CMC_OK && (rc = plan_item_copy(list, dst, r_it)) == CMC_OK)
                n_out++;
            continue;
        }
        if ((rc = plan_item_copy(list, dst, r_it)) != CMC_OK)
            break;
        n_out++;
        if (l_it != NULL)
            rc = merge_item_fields(f, b_it != NULL ? b_it : empty, l_it, r_it, dst, id, cs);
    }
    /* Local items the remote does not have. */
    for (size_t i = 0; i < n_local && rc == CMC_OK; i++) {
        const void *l_it = local_items + i * list->item_size;
        const char *id = plan_item_id(list, l_it);
        if (item_at(f, remote, id) != NULL)
            continue;
        const void *b_it = item_at(f, base, id);
        if (b_it != NULL) {
            /* removed remotely: fine if unchanged locally, else a conflict (remote wins
             * in the merged plan until the clinician decides) */
            if (!plan_item_equal(list, b_it, l_it))
                rc = add_conflict(cs, f, id, NULL);
            continue;
        }
        if ((rc = plan_item_copy(list, out + n_out * list->item_size, l_it)) == CMC_OK)
            n_out++;
    }
    if (rc != CMC_OK)
        goto out;
    /* Swap the merged list in. */
    {
        void **ptr = list_ptr(f, merged);
        size_t *count = list_count(f, merged);
        for (size_t i = 0; i < *count; i++)
            plan_item_free(list, (char *)*ptr + i * list->item_size);
        cmc_free(*ptr);
        *ptr = out;
        *count = n_out;
        out = NULL;
        n_out = 0;
    }
out:
    if (out != NULL) {
        for (size_t i = 0; i < n_out; i++)
            plan_item_free(list, out + i * list->item_size);
        cmc_free(out);
    }
    cmc_free(empty);
    return rc;
}

int plan_merge3(const struct plan *base, const struct plan *local, const struct plan *remote,
                struct plan *merged, struct merge_conflict **conflicts, size_t *n_conflicts)
{
    struct conflicts cs = { 0 };
    *conflicts = NULL;
    *n_conflicts = 0;
    plan_init(merged);
    int rc = plan_copy(merged, remote);
    for (size_t i = 0; rc == CMC_OK && i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        if (f->flags & (PLAN_FF_META | PLAN_FF_KEY))
            continue;
        if (f->type == PLAN_F_LIST) {
            rc = merge_list(f, base, local, remote, merged, &cs);
            continue;
        }
        int conflict;
        rc = merge_value(f, base, local, remote, merged, &conflict);
        if (rc == CMC_OK && conflict)
            rc = add_conflict(&cs, f, NULL, NULL);
    }
    if (rc == CMC_OK && plan_validate(merged, PLAN_CHECK_DRAFT) != CMC_OK) {
        /* The parts merge but the whole does not hold together: let the clinician choose. */
        plan_free(merged);
        cs.n = 0;
        if ((rc = plan_copy(merged, remote)) == CMC_OK)
            rc = add_conflict(&cs, NULL, NULL, NULL);
    }
    if (rc != CMC_OK) {
        plan_free(merged);
        cmc_free(cs.v);
        return rc;
    }
    *conflicts = cs.v;
    *n_conflicts = cs.n;
    return CMC_OK;
}

const struct merge_conflict *plan_merge_find(const struct merge_conflict *c, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].path, path) == 0)
            return &c[i];
    return NULL;
}

static int take_item(struct plan *merged, const struct plan *src, const struct merge_conflict *c)
{
    const struct plan_field *f = c->field;
    const struct plan_list_desc *list = f->list;
    const void *s_it = item_at(f, src, c->item_id);
    size_t idx;
    int in_merged = plan_list_find(f, merged, c->item_id, &idx);
    void **ptr = list_ptr(f, merged);
    size_t *count = list_count(f, merged);
    if (c->item_field != NULL) {
        if (s_it == NULL || !in_merged)
            return cmc_fail(CMC_ERR_STATE, "%s: item not present on both sides", c->path);
        return plan_field_copy(c->item_field, (char *)*ptr + idx * list->item_size, s_it);
    }
    if (s_it == NULL) {
        if (!in_merged)
            return CMC_OK;
        char *items = *ptr;
        plan_item_free(list, items + idx * list->item_size);
        memmove(items + idx * list->item_size, items + (idx + 1) * list->item_size,
                (*count - idx - 1) * list->item_size);
        (*count)--;
        return CMC_OK;
    }
    if (in_merged) {
        char *tmp = cmc_calloc(1, list->item_size);
        if (tmp == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "out of memory");
        int rc = plan_item_copy(list, tmp, s_it);
        if (rc == CMC_OK) {
            plan_item_free(list, (char *)*ptr + idx * list->item_size);
            memcpy((char *)*ptr + idx * list->item_size, tmp, list->item_size);
        }
        cmc_free(tmp);
        return rc;
    }
    char *grown = cmc_realloc(*ptr, (*count + 1) * list->item_size);
    if (grown == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory");
    *ptr = grown;
    memset(grown + *count * list->item_size, 0, list->item_size);
    int rc = plan_item_copy(list, grown + *count * list->item_size, s_it);
    if (rc == CMC_OK)
        (*count)++;
    return rc;
}

int plan_merge_take(struct plan *merged, const struct plan *src, const struct merge_conflict *c)
{
    if (c->field == NULL) {
        for (size_t i = 0; i < plan_n_fields; i++) {
            const struct plan_field *f = &plan_fields[i];
            if (f->flags & (PLAN_FF_META | PLAN_FF_KEY))
                continue;
            int rc = plan_field_copy(f, merged, src);
            if (rc != CMC_OK)
                return rc;
        }
        return CMC_OK;
    }
    if (c->item_id[0] == '\0')
        return plan_field_copy(c->field, merged, src);
    return take_item(merged, src, c);
}

static void value_text(const struct plan_field *f, const void *base, char *out, size_t cap)
{
    const char *at = (const char *)base + f->offset;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = *(const char *const *)at;
        snprintf(out, cap, "%s", s ? s : "(absent)");
        return;
    }
    case PLAN_K_BOOL: {
        int v = *(const int *)at;
        snprintf(out, cap, "%s", v == PLAN_UNSET ? "(absent)" : v ? "yes" : "no");
        return;
    }
    case PLAN_K_ENUM: {
        const char *name = plan_enum_name(f, *(const int *)at);
        snprintf(out, cap, "%s", name ? name : "(absent)");
        return;
    }
    case PLAN_K_PLACES: {
        const struct plan_places *pl = (const struct plan_places *)at;
        size_t used = 0;
        out[0] = '\0';
        for (size_t i = 0; i < pl->n && used < cap; i++) {
            int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", plan_place_name(pl->v[i]));
            if (n < 0)
                break;
            used += (size_t)n;
        }
        if (pl->n == 0)
            snprintf(out, cap, "(none)");
        return;
    }
    case PLAN_K_INT:
        snprintf(out, cap, "%lld", (long long)*(const int64_t *)at);
        return;
    case PLAN_K_LIST:
        snprintf(out, cap, "(list)");
        return;
    }
    snprintf(out, cap, "?");
}

void plan_merge_value_text(const struct plan *p, const struct merge_conflict *c, char *out, size_t cap)
{
    if (c->field == NULL) {
        snprintf(out, cap, "version %lld as a whole", (long long)p->version);
        return;
    }
    if (c->item_id[0] == '\0') {
        value_text(c->field, p, out, cap);
        return;
    }
    const void *it = item_at(c->field, p, c->item_id);
    if (it == NULL) {
        snprintf(out, cap, "(removed)");
        return;
    }
    if (c->item_field != NULL) {
        value_text(c->item_field, it, out, cap);
        return;
    }
    /* a whole item: its fields after the id, joined */
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 1; k < c->field->list->n_fields && used + 4 < cap; k++) {
        char v[256];
        value_text(&c->field->list->fields[k], it, v, sizeof v);
        int n = snprintf(out + used, cap - used, "%s%s=%s", k > 1 ? "; " : "", c->field->list->fields[k].path, v);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}
