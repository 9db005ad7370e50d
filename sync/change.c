/*
 * change.c - change documents, field-level deltas and their JSON and msgpack forms.
 *
 * Applying works on a copy of the plan and swaps it in only when every op applied and the
 * result validates, so a failure at any op (or out of memory) leaves the plan as it was.
 */
#include "sync/change.h"
#include "sync/plan_internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

static const char *const group_names[] = {"set", "remove", "update", "add"};
static const enum plan_op_kind group_kinds[] = {PLAN_OP_SET, PLAN_OP_REMOVE, PLAN_OP_UPDATE,
                                                PLAN_OP_ADD};

void plan_change_init(struct plan_change *c)
{
    plan_init(&c->values);
    c->ops = NULL;
    c->n_ops = 0;
}

static void op_free(struct plan_op *op)
{
    if (op->item != NULL) {
        plan_item_free(op->field->list, op->item);
        cmc_free(op->item);
    }
    cmc_free(op->item_id);
    op->item = NULL;
    op->item_id = NULL;
}

void plan_change_free(struct plan_change *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_ops; i++)
        op_free(&c->ops[i]);
    cmc_free(c->ops);
    plan_free(&c->values);
    plan_change_init(c);
}

/* Appends an op; takes ownership of item and id, freeing them if it fails. */
static int add_op(struct plan_change *c, enum plan_op_kind kind, const struct plan_field *f,
                  void *item, uint32_t mask, char *id)
{
    struct plan_op op = {kind, f, item, mask, id};
    if (c->n_ops >= PLAN_CHANGE_MAX_OPS) {
        op_free(&op);
        return cmc_fail(CMC_ERR_TOO_LARGE, "change: more than %d operations", PLAN_CHANGE_MAX_OPS);
    }
    struct plan_op *grown = cmc_realloc(c->ops, (c->n_ops + 1) * sizeof *grown);
    if (grown == NULL) {
        op_free(&op);
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    }
    c->ops = grown;
    c->ops[c->n_ops++] = op;
    return CMC_OK;
}

static void *new_item(const struct plan_field *f)
{
    void *item = cmc_malloc(f->list->item_size);
    if (item != NULL)
        plan_item_init(f->list, item);
    return item;
}

static void drop_item(const struct plan_field *f, void *item)
{
    if (item != NULL) {
        plan_item_free(f->list, item);
        cmc_free(item);
    }
}

/* Why a change document may not SET this field, or NULL if it may. */
static const char *set_refusal(const struct plan_field *f)
{
    if (f->type == PLAN_F_LIST)
        return "a list is changed with add, update and remove";
    if (f->flags & PLAN_FF_META)
        return "set by the hub, not by a change";
    if (f->flags & PLAN_FF_KEY)
        return "cannot be changed";
    return NULL;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static int list_field(const char *group, const char *key, const struct plan_field **out)
{
    const struct plan_field *f = plan_field_by_path(key);
    if (f == NULL)
        return cmc_fail(CMC_ERR_INVALID, "%s: unknown path %.80s", group, key);
    if (f->type != PLAN_F_LIST)
        return cmc_fail(CMC_ERR_INVALID, "%s: %s is not a list", group, f->path);
    *out = f;
    return CMC_OK;
}

static int parse_set(struct plan_change *c, json_t *obj)
{
    const char *key;
    json_t *v;
    int rc;
    json_object_foreach(obj, key, v) {
        const struct plan_field *f = plan_field_by_path(key);
        const char *why;
        if (f == NULL)
            return cmc_fail(CMC_ERR_INVALID, "set: unknown path %.80s", key);
        if ((why = set_refusal(f)) != NULL)
            return cmc_fail(CMC_ERR_INVALID, "set: %s: %s", f->path, why);
        if ((rc = plan_json_decode(f, v, &c->values, f->path)) != CMC_OK)
            return rc;
        if ((rc = add_op(c, PLAN_OP_SET, f, NULL, 0, NULL)) != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* One id of a "remove" list. */
static int remove_one(struct plan_change *c, const struct plan_field *f, json_t *id, size_t i)
{
    char *copy;
    if (!json_is_string(id) || !plan_item_id_valid(json_string_value(id)))
        return cmc_fail(CMC_ERR_INVALID, "remove: %s[%zu]: not a valid item id", f->path, i);
    if ((copy = cmc_strdup(json_string_value(id))) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    return add_op(c, PLAN_OP_REMOVE, f, NULL, 0, copy);
}

/* One item of an "add" or "update" list. */
static int item_one(struct plan_change *c, const struct plan_field *f, json_t *v, size_t i,
                    enum plan_op_kind kind)
{
    uint32_t mask = 0;
    char *id = NULL;
    void *item = new_item(f);
    if (item == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    int rc = plan_json_decode_item(f, v, i, item, &mask);
    if (rc != CMC_OK) {
        drop_item(f, item);
        return rc;
    }
    if (kind == PLAN_OP_UPDATE && (id = cmc_strdup(plan_item_id(f->list, item))) == NULL) {
        drop_item(f, item);
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    }
    mask = kind == PLAN_OP_ADD ? PLAN_ITEM_ALL : mask & ~1u;
    return add_op(c, kind, f, item, mask, id);
}

/* The "add", "update" or "remove" group (`group`): lists by path, each an array of items
 * (of ids for remove). */
static int parse_lists(struct plan_change *c, json_t *obj, const char *group, enum plan_op_kind kind)
{
    const char *key;
    json_t *arr;
    int rc;
    json_object_foreach(obj, key, arr) {
        const struct plan_field *f = NULL;
        if ((rc = list_field(group, key, &f)) != CMC_OK)
            return rc;
        if (!json_is_array(arr))
            return cmc_fail(CMC_ERR_INVALID, "%s: %s: expected an array of %s", group, f->path,
                            kind == PLAN_OP_REMOVE ? "ids" : "items");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *v = json_array_get(arr, i);
            rc = kind == PLAN_OP_REMOVE ? remove_one(c, f, v, i) : item_one(c, f, v, i, kind);
            if (rc != CMC_OK)
                return rc;
        }
    }
    return CMC_OK;
}

int plan_change_from_json(const char *json, size_t len, struct plan_change *out)
{
    json_t *root = NULL, *v;
    const char *key;
    int rc = CMC_OK;
    plan_change_init(out);
    if (len > PLAN_CHANGE_MAX_ENCODED)
        return cmc_fail(CMC_ERR_TOO_LARGE, "change: more than %d bytes", PLAN_CHANGE_MAX_ENCODED);
    if ((rc = plan_json_load(json, len, "change", &root)) != CMC_OK)
        return rc;
    json_object_foreach(root, key, v) {
        size_t g;
        for (g = 0; g < 4 && strcmp(key, group_names[g]) != 0; g++)
            ;
        if (g == 4) {
            rc = cmc_fail(CMC_ERR_INVALID, "change: unknown key %.64s (expected set, add, update, remove)", key);
            goto out;
        }
        if (!json_is_object(v) && !json_is_null(v)) {
            rc = cmc_fail(CMC_ERR_INVALID, "change: %s: expected an object", key);
            goto out;
        }
    }
    for (size_t g = 0; g < 4 && rc == CMC_OK; g++) {
        v = json_object_get(root, group_names[g]);
        if (v == NULL || json_is_null(v))
            continue;
        switch (group_kinds[g]) {
        case PLAN_OP_SET: rc = parse_set(out, v); break;
        case PLAN_OP_REMOVE:
        case PLAN_OP_UPDATE:
        case PLAN_OP_ADD: rc = parse_lists(out, v, group_names[g], group_kinds[g]); break;
        }
    }
out:
    json_decref(root);
    if (rc != CMC_OK)
        plan_change_free(out);
    return rc;
}

/* Appends `v` (stolen) to the array under `key` in `group`, creating it. */
static int append_to(json_t *group, const char *key, json_t *v)
{
    json_t *arr = json_object_get(group, key);
    if (arr == NULL) {
        if ((arr = json_array()) == NULL || json_object_set_new(group, key, arr) != 0) {
            json_decref(v);
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        }
    }
    if (json_array_append_new(arr, v) != 0)
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    return CMC_OK;
}

static int op_json(const struct plan_change *c, const struct plan_op *op, json_t *group)
{
    json_t *v = NULL;
    int rc;
    switch (op->kind) {
    case PLAN_OP_SET:
        if ((rc = plan_json_value(op->field, &c->values, &v)) != CMC_OK)
            return rc;
        if (json_object_set_new(group, op->field->path, v) != 0)
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        return CMC_OK;
    case PLAN_OP_REMOVE:
        if ((v = json_string(op->item_id != NULL ? op->item_id : "")) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        return append_to(group, op->field->path, v);
    case PLAN_OP_UPDATE:
    case PLAN_OP_ADD:
        if ((rc = plan_json_item(op->field->list, op->item, op->item_mask, &v)) != CMC_OK)
            return rc;
        return append_to(group, op->field->path, v);
    }
    return cmc_fail(CMC_ERR_INVALID, "change: unknown operation");
}

int plan_change_to_json(const struct plan_change *c, char **out, size_t *len)
{
    json_t *root;
    int rc = CMC_OK;
    *out = NULL;
    *len = 0;
    plan_json_init();
    if ((root = json_object()) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
    for (size_t g = 0; g < 4 && rc == CMC_OK; g++) {
        json_t *group = NULL;
        for (size_t i = 0; i < c->n_ops && rc == CMC_OK; i++) {
            if (c->ops[i].kind != group_kinds[g])
                continue;
            if (group == NULL &&
                ((group = json_object()) == NULL || json_object_set_new(root, group_names[g], group) != 0)) {
                rc = cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
                break;
            }
            rc = op_json(c, &c->ops[i], group);
        }
    }
    if (rc == CMC_OK)
        rc = plan_json_dump(root, 1, out, len);
    json_decref(root);
    return rc;
}

/* ---- apply ----------------------------------------------------------------------------- */

static int list_full(const struct plan_field *f)
{
    return cmc_fail(CMC_ERR_INVALID, "%s: more than %zu items", f->path, f->list->max_items);
}

static int apply_op(struct plan *p, const struct plan_change *c, const struct plan_op *op)
{
    const struct plan_field *f = op->field;
    size_t idx = 0, n = 0;
    int rc;
    if (f == NULL)
        return cmc_fail(CMC_ERR_INVALID, "change: operation without a field");
    if (op->kind != PLAN_OP_SET && f->type != PLAN_F_LIST)
        return cmc_fail(CMC_ERR_INVALID, "%s: not a list", f->path);
    switch (op->kind) {
    case PLAN_OP_SET:
        if (f->type == PLAN_F_LIST)
            return cmc_fail(CMC_ERR_INVALID, "%s: a list cannot be set", f->path);
        if ((f->flags & PLAN_FF_KEY) && !plan_field_equal(f, p, &c->values))
            return cmc_fail(CMC_ERR_INVALID, "%s: cannot be changed", f->path);
        return plan_field_copy(f, p, &c->values);
    case PLAN_OP_ADD: {
        const char *id = op->item != NULL ? plan_item_id(f->list, op->item) : NULL;
        if (!plan_item_id_valid(id))
            return cmc_fail(CMC_ERR_INVALID, "%s: item without a valid id", f->path);
        if (plan_list_find(f, p, id, NULL))
            return cmc_fail(CMC_ERR_INVALID, "%s[%s]: an item with this id already exists",
                            f->path, id);
        char *items = plan_list_items(f, p, &n);
        if (n >= f->list->max_items)
            return list_full(f);
        size_t size = f->list->item_size;
        char *grown = cmc_realloc(items, (n + 1) * size);
        if (grown == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
        /* The grown array is the plan's now, whatever happens next. */
        memcpy((char *)p + f->offset, &grown, sizeof grown);
        if ((rc = plan_item_copy(f->list, grown + n * size, op->item)) != CMC_OK)
            return rc;
        n++;
        memcpy((char *)p + f->list->count_offset, &n, sizeof n);
        return CMC_OK;
    }
    case PLAN_OP_UPDATE: {
        const char *id = op->item_id != NULL ? op->item_id
                         : op->item != NULL  ? plan_item_id(f->list, op->item)
                                             : NULL;
        if (!plan_item_id_valid(id))
            return cmc_fail(CMC_ERR_INVALID, "%s: update without a valid id", f->path);
        if (!plan_list_find(f, p, id, &idx))
            return cmc_fail(CMC_ERR_INVALID, "%s[%s]: no item with this id", f->path, id);
        char *items = plan_list_items(f, p, &n);
        void *dst = items + idx * f->list->item_size;
        for (size_t k = 1; k < f->list->n_fields; k++)
            if ((op->item_mask & (1u << k)) &&
                (rc = plan_field_copy(&f->list->fields[k], dst, op->item)) != CMC_OK)
                return rc;
        return CMC_OK;
    }
    case PLAN_OP_REMOVE: {
        if (!plan_item_id_valid(op->item_id))
            return cmc_fail(CMC_ERR_INVALID, "%s: remove without a valid id", f->path);
        if (!plan_list_find(f, p, op->item_id, &idx))
            return cmc_fail(CMC_ERR_INVALID, "%s[%s]: no item with this id", f->path, op->item_id);
        char *items = plan_list_items(f, p, &n);
        size_t size = f->list->item_size;
        plan_item_free(f->list, items + idx * size);
        memmove(items + idx * size, items + (idx + 1) * size, (n - idx - 1) * size);
        n--;
        memcpy((char *)p + f->list->count_offset, &n, sizeof n);
        if (n == 0) {
            cmc_free(items);
            items = NULL;
            memcpy((char *)p + f->offset, &items, sizeof items);
        }
        return CMC_OK;
    }
    }
    return cmc_fail(CMC_ERR_INVALID, "%s: unknown operation", f->path);
}

int plan_change_apply(struct plan *p, const struct plan_change *c)
{
    struct plan work;
    int rc;
    if ((rc = plan_copy(&work, p)) != CMC_OK)
        return rc;
    for (size_t i = 0; i < c->n_ops; i++)
        if ((rc = apply_op(&work, c, &c->ops[i])) != CMC_OK)
            goto out;
    if ((rc = plan_validate(&work, PLAN_CHECK_DRAFT)) != CMC_OK)
        goto out;
    plan_free(p);
    *p = work;
    return CMC_OK;
out:
    plan_free(&work);
    return rc;
}

/* ---- diff ------------------------------------------------------------------------------ */

static int in_list(const struct plan_field *f, const struct plan *p, const char *id)
{
    return plan_list_find(f, p, id, NULL);
}

/* Appends the REMOVE, UPDATE or ADD ops of one list to `c` (see change.h for the order). */
static int diff_list(const struct plan_field *f, const struct plan *from, const struct plan *to,
                     enum plan_op_kind kind, struct plan_change *c)
{
    const struct plan_list_desc *list = f->list;
    size_t nf = 0, nt = 0, j = 0;
    const char *fi = plan_list_items(f, from, &nf);
    const char *ti = plan_list_items(f, to, &nt);
    int rc;
    /* j: the length of the common prefix of `to` and `from` without the items `to` lacks. */
    for (size_t i = 0; i < nf && j < nt; i++) {
        const char *id = plan_item_id(list, fi + i * list->item_size);
        if (!in_list(f, to, id))
            continue;
        if (strcmp(id, plan_item_id(list, ti + j * list->item_size)) != 0)
            break;
        j++;
    }
    for (size_t i = 0; i < nf; i++) {
        const void *old = fi + i * list->item_size;
        const char *id = plan_item_id(list, old);
        size_t ti_idx = 0;
        int keep = plan_list_find(f, to, id, &ti_idx) && ti_idx < j;
        if (!keep) {
            char *copy;
            if (kind != PLAN_OP_REMOVE)
                continue;
            if ((copy = cmc_strdup(id)) == NULL)
                return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
            if ((rc = add_op(c, PLAN_OP_REMOVE, f, NULL, 0, copy)) != CMC_OK)
                return rc;
            continue;
        }
        const void *target = ti + ti_idx * list->item_size;
        if (kind != PLAN_OP_UPDATE || plan_item_equal(list, old, target))
            continue;
        uint32_t mask = 0;
        for (size_t k = 1; k < list->n_fields; k++)
            if (!plan_field_equal(&list->fields[k], old, target))
                mask |= 1u << k;
        void *item = new_item(f);
        char *copy = cmc_strdup(id);
        if (item == NULL || copy == NULL || plan_item_copy(list, item, target) != CMC_OK) {
            cmc_free(item);
            cmc_free(copy);
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        }
        if ((rc = add_op(c, PLAN_OP_UPDATE, f, item, mask, copy)) != CMC_OK)
            return rc;
    }
    for (size_t i = j; kind == PLAN_OP_ADD && i < nt; i++) {
        void *item = new_item(f);
        if (item == NULL || plan_item_copy(list, item, ti + i * list->item_size) != CMC_OK) {
            cmc_free(item);
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        }
        if ((rc = add_op(c, PLAN_OP_ADD, f, item, PLAN_ITEM_ALL, NULL)) != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

int plan_change_diff(const struct plan *from, const struct plan *to, struct plan_change *out)
{
    int rc = CMC_OK;
    plan_change_init(out);
    if (!plan_field_equal(&plan_fields[0], from, to))
        return cmc_fail(CMC_ERR_INVALID, "plan_id: a diff needs two versions of one plan");
    for (size_t i = 0; i < plan_n_fields && rc == CMC_OK; i++) {
        const struct plan_field *f = &plan_fields[i];
        if (f->type == PLAN_F_LIST || (f->flags & PLAN_FF_KEY) || plan_field_equal(f, from, to))
            continue;
        if ((rc = plan_field_copy(f, &out->values, to)) == CMC_OK)
            rc = add_op(out, PLAN_OP_SET, f, NULL, 0, NULL);
    }
    /* The JSON group order: every list's removes, then updates, then adds. */
    for (size_t g = 1; g < 4 && rc == CMC_OK; g++)
        for (size_t i = 0; i < plan_n_fields && rc == CMC_OK; i++)
            if (plan_fields[i].type == PLAN_F_LIST)
                rc = diff_list(&plan_fields[i], from, to, group_kinds[g], out);
    if (rc != CMC_OK)
        plan_change_free(out);
    return rc;
}

/* ---- msgpack --------------------------------------------------------------------------- */

int plan_change_pack(const struct plan_change *c, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_array(&w, (uint32_t)c->n_ops);
    for (size_t i = 0; i < c->n_ops; i++) {
        const struct plan_op *op = &c->ops[i];
        mp_write_array(&w, 3);
        mp_write_uint(&w, (uint64_t)op->kind);
        mp_write_uint(&w, op->field->wire_id);
        switch (op->kind) {
        case PLAN_OP_SET:
            plan_mp_write_value(&w, op->field, &c->values);
            break;
        case PLAN_OP_ADD:
            plan_mp_write_item(&w, op->field->list, op->item, PLAN_ITEM_ALL, 0);
            break;
        case PLAN_OP_UPDATE:
            plan_mp_write_item(&w, op->field->list, op->item, op->item_mask, 1);
            break;
        case PLAN_OP_REMOVE:
            mp_write_cstr(&w, op->item_id);
            break;
        }
    }
    return mp_writer_finish(&w, out, len);
}

static int unpack_op(struct mp_reader *r, struct plan_change *c, uint8_t *seen)
{
    uint32_t n = 0;
    uint64_t kind = 0, wire = 0;
    const struct plan_field *f;
    int rc;
    if ((rc = mp_read_array(r, 3, &n)) != CMC_OK)
        return plan_fail_at(rc, "change: operation");
    if (n != 3)
        return cmc_fail(CMC_ERR_CORRUPT, "change: an operation has 3 elements");
    if ((rc = mp_read_uint(r, &kind)) != CMC_OK || (rc = mp_read_uint(r, &wire)) != CMC_OK)
        return plan_fail_at(rc, "change: operation");
    if (kind < PLAN_OP_SET || kind > PLAN_OP_REMOVE)
        return cmc_fail(CMC_ERR_CORRUPT, "change: unknown operation %llu", (unsigned long long)kind);
    if (wire > UINT8_MAX || (f = plan_field_by_wire_id((uint8_t)wire)) == NULL)
        return cmc_fail(CMC_ERR_CORRUPT, "change: unknown field id %llu", (unsigned long long)wire);
    if ((kind == PLAN_OP_SET) != (f->type != PLAN_F_LIST))
        return cmc_fail(CMC_ERR_CORRUPT, "change: %s: operation does not fit the field", f->path);
    switch ((enum plan_op_kind)kind) {
    case PLAN_OP_SET:
        /* One value per field: a second SET would silently overwrite the first. */
        if (seen[f->wire_id]++)
            return cmc_fail(CMC_ERR_CORRUPT, "change: %s set twice", f->path);
        if (f->flags & PLAN_FF_KEY)
            return cmc_fail(CMC_ERR_CORRUPT, "change: %s cannot be changed", f->path);
        if ((rc = plan_mp_read_value(r, f, &c->values, 1)) != CMC_OK ||
            (rc = plan_field_check(f, &c->values, f->path)) != CMC_OK)
            return rc;
        rc = add_op(c, PLAN_OP_SET, f, NULL, 0, NULL);
        break;
    case PLAN_OP_ADD:
    case PLAN_OP_UPDATE: {
        uint32_t mask = 0;
        char *id = NULL;
        void *item = new_item(f);
        if (item == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        if ((rc = plan_mp_read_item(r, f, item, &mask, kind == PLAN_OP_UPDATE)) != CMC_OK) {
            drop_item(f, item);
            return rc;
        }
        if (kind == PLAN_OP_UPDATE && (id = cmc_strdup(plan_item_id(f->list, item))) == NULL) {
            drop_item(f, item);
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        }
        rc = add_op(c, (enum plan_op_kind)kind, f, item,
                    kind == PLAN_OP_ADD ? PLAN_ITEM_ALL : mask & ~1u, id);
        break;
    }
    case PLAN_OP_REMOVE: {
        const char *s = NULL;
        uint32_t len = 0;
        char *id;
        if ((rc = mp_read_str(r, PLAN_ITEM_ID_MAX, &s, &len)) != CMC_OK)
            return plan_fail_at(rc, f->path);
        if ((id = cmc_strndup(s, len)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "change: out of memory");
        if (strlen(id) != len || !plan_item_id_valid(id)) {
            cmc_free(id);
            return cmc_fail(CMC_ERR_CORRUPT, "change: %s: not a valid item id", f->path);
        }
        rc = add_op(c, PLAN_OP_REMOVE, f, NULL, 0, id);
        break;
    }
    }
    mp_leave(r);
    return rc;
}

int plan_change_unpack(const uint8_t *buf, size_t len, struct plan_change *out)
{
    struct mp_reader r;
    uint8_t seen[256] = {0};
    uint32_t n = 0;
    plan_change_init(out);
    int rc = plan_mp_reader_open(&r, buf, len, PLAN_CHANGE_MAX_ENCODED, "change");
    if (rc != CMC_OK)
        return rc;
    if ((rc = mp_read_array(&r, PLAN_CHANGE_MAX_OPS, &n)) != CMC_OK)
        return plan_fail_at(rc, "change");
    for (uint32_t i = 0; i < n && rc == CMC_OK; i++)
        rc = unpack_op(&r, out, seen);
    if (rc == CMC_OK) {
        mp_leave(&r);
        if ((rc = mp_expect_end(&r)) != CMC_OK)
            rc = plan_fail_at(rc, "change");
    }
    if (rc != CMC_OK)
        plan_change_free(out);
    return rc;
}
