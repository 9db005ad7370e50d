/*
 * plan_json.c - the JSON form of a plan (examples/plan.json) with jansson.
 *
 * Top-level paths with a dot ("patient.given_name") live in a nested object ("patient");
 * the field table's order is the order of examples/plan.json, so walking it writes the
 * same key order. jansson allocates through cmc_malloc (plan_json_init) so out-of-memory
 * tests reach it, and its error texts are not copied into details because they may quote
 * the input.
 */
#include "sync/plan.h"
#include "sync/plan_internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t json_once = PTHREAD_ONCE_INIT;
/* jansson's parser reports a failed allocation as a syntax error; this flag tells them
 * apart. */
static _Thread_local int json_alloc_failed;

static void *json_alloc(size_t n)
{
    void *p = cmc_malloc(n);
    if (p == NULL)
        json_alloc_failed = 1;
    return p;
}

static void json_setup(void)
{
    json_set_alloc_funcs(json_alloc, cmc_free);
}

void plan_json_init(void)
{
    pthread_once(&json_once, json_setup);
}

int plan_json_load(const char *json, size_t len, const char *what, json_t **out)
{
    json_error_t err;
    *out = NULL;
    plan_json_init();
    if (json == NULL)
        return cmc_fail(CMC_ERR_INVALID, "%s: no input", what);
    if (len > PLAN_MAX_ENCODED)
        return cmc_fail(CMC_ERR_TOO_LARGE, "%s: more than %d bytes", what, PLAN_MAX_ENCODED);
    json_alloc_failed = 0;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        if (json_alloc_failed || json_error_code(&err) == json_error_out_of_memory)
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", what);
        if (json_error_code(&err) == json_error_duplicate_key)
            return cmc_fail(CMC_ERR_INVALID, "%s: duplicate key (line %d, column %d)", what,
                            err.line, err.column);
        return cmc_fail(CMC_ERR_INVALID, "%s: not valid JSON (line %d, column %d)", what,
                        err.line, err.column);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return cmc_fail(CMC_ERR_INVALID, "%s: expected a JSON object", what);
    }
    *out = root;
    return CMC_OK;
}

int plan_json_dump(json_t *root, int pretty, char **out, size_t *len)
{
    size_t flags = JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    *out = NULL;
    *len = 0;
    size_t need = json_dumpb(root, NULL, 0, flags);
    if (need == 0)
        return cmc_fail(CMC_ERR_NOMEM, "JSON: out of memory while encoding");
    char *buf = cmc_malloc(need + 1);
    if (buf == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "JSON: out of memory while encoding");
    if (json_dumpb(root, buf, need, flags) != need) {
        cmc_free(buf);
        return cmc_fail(CMC_ERR_NOMEM, "JSON: out of memory while encoding");
    }
    buf[need] = '\0';
    *out = buf;
    *len = need;
    return CMC_OK;
}

/* ---- values out ------------------------------------------------------------------------ */

static int nomem(void)
{
    return cmc_fail(CMC_ERR_NOMEM, "JSON: out of memory");
}

int plan_json_value(const struct plan_field *f, const void *base, json_t **out)
{
    const char *cbase = base;
    json_t *v = NULL;
    int rc;
    *out = NULL;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = *(char *const *)(cbase + f->offset);
        if (s == NULL) {
            v = json_null();
            break;
        }
        /* jansson refuses bad UTF-8 with the same NULL as out-of-memory; check first. Text
         * hygiene is left to the decoders: writing out a plan a replica already holds must
         * not fail (its readers escape). */
        if ((rc = plan_field_check_stored(f, base, f->path)) != CMC_OK)
            return rc;
        v = json_stringn(s, strlen(s));
        break;
    }
    case PLAN_K_BOOL: {
        int b = *(const int *)(cbase + f->offset);
        v = b == PLAN_UNSET ? json_null() : json_boolean(b);
        break;
    }
    case PLAN_K_ENUM: {
        int e = *(const int *)(cbase + f->offset);
        const char *name = plan_enum_name(f, e);
        if (e == 0) {
            v = json_null();
            break;
        }
        if (name == NULL)
            return cmc_fail(CMC_ERR_INVALID, "%s: value out of range", f->path);
        v = json_string(name);
        break;
    }
    case PLAN_K_PLACES: {
        const struct plan_places *pl = (const struct plan_places *)(cbase + f->offset);
        if ((rc = plan_field_check(f, base, f->path)) != CMC_OK)
            return rc;
        if ((v = json_array()) == NULL)
            return nomem();
        for (size_t i = 0; i < pl->n; i++)
            if (json_array_append_new(v, json_string(plan_enum_name(f, pl->v[i]))) != 0) {
                json_decref(v);
                return nomem();
            }
        break;
    }
    case PLAN_K_INT:
        v = json_integer((json_int_t) * (const int64_t *)(cbase + f->offset));
        break;
    case PLAN_K_LIST: {
        size_t n = 0;
        const char *items = plan_list_items(f, base, &n);
        if ((v = json_array()) == NULL)
            return nomem();
        for (size_t i = 0; i < n; i++) {
            json_t *item = NULL;
            if ((rc = plan_json_item(f->list, items + i * f->list->item_size, PLAN_ITEM_ALL,
                                     &item)) != CMC_OK ||
                json_array_append_new(v, item) != 0) {
                json_decref(v);
                return rc != CMC_OK ? rc : nomem();
            }
        }
        break;
    }
    }
    if (v == NULL)
        return nomem();
    *out = v;
    return CMC_OK;
}

int plan_json_item(const struct plan_list_desc *list, const void *item, uint32_t mask, json_t **out)
{
    json_t *obj = json_object();
    int rc;
    *out = NULL;
    if (obj == NULL)
        return nomem();
    for (size_t k = 0; k < list->n_fields; k++) {
        json_t *v = NULL;
        if (k > 0 && !(mask & (1u << k)))
            continue;
        /* The plan form leaves out an absent second-edition field (a change keeps its
         * nulls: there they clear the field). */
        if (mask == PLAN_ITEM_ALL && (list->fields[k].flags & PLAN_FF_ED2) &&
            !plan_value_present(&list->fields[k], item))
            continue;
        if ((rc = plan_json_value(&list->fields[k], item, &v)) != CMC_OK) {
            json_decref(obj);
            return rc;
        }
        if (json_object_set_new(obj, list->fields[k].path, v) != 0) {
            json_decref(obj);
            return nomem();
        }
    }
    *out = obj;
    return CMC_OK;
}

/* ---- values in ------------------------------------------------------------------------- */

static int expected(const char *path, const char *what)
{
    return cmc_fail(CMC_ERR_INVALID, "%s: expected %s", path, what);
}

static int enum_value(const struct plan_field *f, json_t *v, const char *path, int *out)
{
    char names[160];
    if (!json_is_string(v))
        return expected(path, "a string");
    for (size_t i = 0; f->enum_names[i] != NULL; i++)
        if (strcmp(f->enum_names[i], json_string_value(v)) == 0) {
            *out = (int)i + 1;
            return CMC_OK;
        }
    plan_enum_list(f, names, sizeof names);
    return cmc_fail(CMC_ERR_INVALID, "%s: not one of %s", path, names);
}

int plan_json_decode(const struct plan_field *f, json_t *v, void *base, const char *path)
{
    char *cbase = base;
    int rc;
    plan_field_clear(f, base);
    if (v == NULL || json_is_null(v))
        return CMC_OK;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        if (!json_is_string(v))
            return expected(path, "a string");
        size_t len = json_string_length(v);
        const char *s = json_string_value(v);
        if (f->max_len > 0 && len > f->max_len)
            return cmc_fail(CMC_ERR_INVALID, "%s: longer than %zu bytes", path, f->max_len);
        if (memchr(s, '\0', len) != NULL)
            return cmc_fail(CMC_ERR_INVALID, "%s: contains a NUL character", path);
        char *copy = cmc_strndup(s, len);
        if (copy == NULL)
            return nomem();
        *(char **)(cbase + f->offset) = copy;
        if ((rc = plan_field_check(f, base, path)) != CMC_OK) {
            plan_field_clear(f, base);
            return rc;
        }
        return CMC_OK;
    }
    case PLAN_K_BOOL:
        if (!json_is_boolean(v))
            return expected(path, "true, false or null");
        *(int *)(cbase + f->offset) = json_is_true(v);
        return CMC_OK;
    case PLAN_K_ENUM:
        return enum_value(f, v, path, (int *)(cbase + f->offset));
    case PLAN_K_PLACES: {
        struct plan_places pl = {0};
        if (!json_is_array(v))
            return expected(path, "an array");
        if (json_array_size(v) > PLAN_MAX_PLACES)
            return cmc_fail(CMC_ERR_INVALID, "%s: more than %d places", path, PLAN_MAX_PLACES);
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((rc = enum_value(f, json_array_get(v, i), path, &pl.v[i])) != CMC_OK)
                return rc;
        pl.n = json_array_size(v);
        *(struct plan_places *)(cbase + f->offset) = pl;
        if ((rc = plan_field_check(f, base, path)) != CMC_OK) {
            plan_field_clear(f, base);
            return rc;
        }
        return CMC_OK;
    }
    case PLAN_K_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return expected(path, "a whole number, 0 or more");
        *(int64_t *)(cbase + f->offset) = (int64_t)json_integer_value(v);
        return CMC_OK;
    case PLAN_K_LIST: {
        if (!json_is_array(v))
            return expected(path, "an array");
        size_t n = json_array_size(v), size = f->list->item_size, done = 0;
        if (n > f->list->max_items)
            return cmc_fail(CMC_ERR_INVALID, "%s: more than %zu items", path, f->list->max_items);
        if (n == 0)
            return CMC_OK;
        char *items = cmc_calloc(n, size);
        if (items == NULL)
            return nomem();
        for (size_t i = 0; i < n; i++)
            plan_item_init(f->list, items + i * size);
        /* Owned by the plan from here, so every failure below is cleaned by the clear. */
        memcpy(cbase + f->offset, &items, sizeof items);
        memcpy(cbase + f->list->count_offset, &n, sizeof n);
        for (done = 0; done < n; done++) {
            uint32_t mask = 0;
            if ((rc = plan_json_decode_item(f, json_array_get(v, done), done, items + done * size,
                                            &mask)) != CMC_OK) {
                plan_field_clear(f, base);
                return rc;
            }
        }
        return CMC_OK;
    }
    }
    return cmc_fail(CMC_ERR_INVALID, "%s: unknown field type", path);
}

int plan_json_decode_item(const struct plan_field *lf, json_t *obj, size_t index, void *item,
                          uint32_t *mask)
{
    char label[PLAN_ITEM_ID_MAX + 1], path[PLAN_ITEM_ID_MAX + 160];
    const char *key;
    json_t *v;
    int rc;
    *mask = 0;
    if (!json_is_object(obj)) {
        snprintf(path, sizeof path, "%s[%zu]", lf->path, index);
        return expected(path, "an object");
    }
    json_t *id = json_object_get(obj, "id");
    if (json_is_string(id) && plan_item_id_valid(json_string_value(id)))
        snprintf(label, sizeof label, "%s", json_string_value(id));
    else
        snprintf(label, sizeof label, "%zu", index);
    json_object_foreach(obj, key, v) {
        const struct plan_field *itf = plan_item_field_by_name(lf->list, key);
        if (itf == NULL)
            return cmc_fail(CMC_ERR_INVALID, "%s[%s]: unknown key %.64s", lf->path, label, key);
        snprintf(path, sizeof path, "%s[%s].%s", lf->path, label, itf->path);
        if ((rc = plan_json_decode(itf, v, item, path)) != CMC_OK)
            return rc;
        *mask |= 1u << (size_t)(itf - lf->list->fields);
    }
    if (plan_item_id(lf->list, item) == NULL)
        return cmc_fail(CMC_ERR_INVALID, "%s[%s].id: required", lf->path, label);
    return CMC_OK;
}

/* ---- whole plans ----------------------------------------------------------------------- */

/* 1 if `key` names a nested object of the JSON form ("patient", "consent", ...). */
static int is_group(const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < plan_n_fields; i++)
        if (strncmp(plan_fields[i].path, key, n) == 0 && plan_fields[i].path[n] == '.')
            return 1;
    return 0;
}

static int decode_key(struct plan *p, const char *path, json_t *v)
{
    const struct plan_field *f = plan_field_by_path(path);
    if (f == NULL)
        return cmc_fail(CMC_ERR_INVALID, "unknown key: %.80s", path);
    return plan_json_decode(f, v, p, f->path);
}

int plan_from_json(const char *json, size_t len, struct plan *out)
{
    json_t *root = NULL, *v, *sv;
    const char *key, *skey;
    char path[160];
    int rc;
    plan_init(out);
    if ((rc = plan_json_load(json, len, "plan", &root)) != CMC_OK)
        return rc;
    json_object_foreach(root, key, v) {
        if (strchr(key, '.') != NULL) {
            rc = cmc_fail(CMC_ERR_INVALID, "unknown key: %.80s", key);
            goto out;
        }
        if (!is_group(key)) {
            if ((rc = decode_key(out, key, v)) != CMC_OK)
                goto out;
            continue;
        }
        if (json_is_null(v))
            continue;
        if (!json_is_object(v)) {
            rc = expected(key, "an object");
            goto out;
        }
        json_object_foreach(v, skey, sv) {
            if (strchr(skey, '.') != NULL ||
                (size_t)snprintf(path, sizeof path, "%s.%s", key, skey) >= sizeof path) {
                rc = cmc_fail(CMC_ERR_INVALID, "unknown key: %s.%.64s", key, skey);
                goto out;
            }
            if ((rc = decode_key(out, path, sv)) != CMC_OK)
                goto out;
        }
    }
    rc = plan_validate(out, PLAN_CHECK_DRAFT);
out:
    json_decref(root);
    if (rc != CMC_OK)
        plan_free(out);
    return rc;
}

int plan_to_json(const struct plan *p, int pretty, char **out, size_t *len)
{
    json_t *root;
    int rc = CMC_OK;
    *out = NULL;
    *len = 0;
    plan_json_init();
    if ((root = json_object()) == NULL)
        return nomem();
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        const char *dot = strchr(f->path, '.');
        json_t *obj = root, *v = NULL;
        if ((f->flags & PLAN_FF_ED2) && !plan_value_present(f, p))
            continue; /* a first-edition plan keeps its first-edition form */
        if (dot != NULL) {
            char group[64];
            snprintf(group, sizeof group, "%.*s", (int)(dot - f->path), f->path);
            obj = json_object_get(root, group);
            if (obj == NULL) {
                if ((obj = json_object()) == NULL || json_object_set_new(root, group, obj) != 0) {
                    rc = nomem();
                    goto out;
                }
            }
        }
        if ((rc = plan_json_value(f, p, &v)) != CMC_OK)
            goto out;
        if (json_object_set_new(obj, dot != NULL ? dot + 1 : f->path, v) != 0) {
            rc = nomem();
            goto out;
        }
    }
    rc = plan_json_dump(root, pretty, out, len);
out:
    json_decref(root);
    return rc;
}
