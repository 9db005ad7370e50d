/*
 * plan_mp.c - the msgpack form of a plan (docs/PROTOCOL.md, "Plan encoding").
 *
 * A map from wire id to value in ascending id order, absent fields omitted, so equal plans
 * give equal bytes. Decoding is strict: keys must ascend (no duplicates, one canonical
 * form), a value that means absent (0, an empty list, nil) is refused rather than read as
 * absent, unknown ids and wrong types are refused, counts are checked against the bytes
 * left and the table's caps before anything is allocated.
 */
#include "sync/plan.h"
#include "sync/plan_internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

int plan_mp_reader_open(struct mp_reader *r, const uint8_t *buf, size_t len, size_t max, const char *what)
{
    if (len > max)
        return cmc_fail(CMC_ERR_TOO_LARGE, "%s: encoding of %zu bytes (at most %zu)", what, len, max);
    mp_reader_init(r, buf, len, PLAN_MP_DEPTH);
    return CMC_OK;
}

/* ---- writing --------------------------------------------------------------------------- */

void plan_mp_write_value(struct mp_writer *w, const struct plan_field *f, const void *base)
{
    const char *cbase = base;
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT:
        mp_write_cstr(w, *(char *const *)(cbase + f->offset));
        return;
    case PLAN_K_BOOL: {
        int b = *(const int *)(cbase + f->offset);
        if (b == PLAN_UNSET)
            mp_write_nil(w);
        else
            mp_write_bool(w, b);
        return;
    }
    case PLAN_K_ENUM: {
        int e = *(const int *)(cbase + f->offset);
        if (e == 0)
            mp_write_nil(w);
        else
            mp_write_int(w, e);
        return;
    }
    case PLAN_K_PLACES: {
        const struct plan_places *pl = (const struct plan_places *)(cbase + f->offset);
        size_t n = pl->n < PLAN_MAX_PLACES ? pl->n : PLAN_MAX_PLACES;
        mp_write_array(w, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            mp_write_int(w, pl->v[i]);
        return;
    }
    case PLAN_K_INT:
        mp_write_int(w, *(const int64_t *)(cbase + f->offset));
        return;
    case PLAN_K_LIST: {
        size_t n = 0;
        const char *items = plan_list_items(f, base, &n);
        mp_write_array(w, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            plan_mp_write_item(w, f->list, items + i * f->list->item_size, PLAN_ITEM_ALL, 0);
        return;
    }
    }
}

void plan_mp_write_item(struct mp_writer *w, const struct plan_list_desc *list, const void *item,
                        uint32_t mask, int nil_absent)
{
    uint32_t count = 0;
    for (size_t k = 0; k < list->n_fields; k++)
        if ((k == 0 || (mask & (1u << k))) &&
            (nil_absent || plan_value_present(&list->fields[k], item)))
            count++;
    mp_write_map(w, count);
    for (size_t k = 0; k < list->n_fields; k++)
        if ((k == 0 || (mask & (1u << k))) &&
            (nil_absent || plan_value_present(&list->fields[k], item))) {
            mp_write_uint(w, list->fields[k].wire_id);
            plan_mp_write_value(w, &list->fields[k], item);
        }
}

int plan_pack(const struct plan *p, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    uint32_t count = 0;
    mp_writer_init(&w);
    for (size_t i = 0; i < plan_n_fields; i++)
        if (plan_value_present(&plan_fields[i], p))
            count++;
    mp_write_map(&w, count + p->unknown.count);
    for (size_t i = 0; i < plan_n_fields; i++)
        if (plan_value_present(&plan_fields[i], p)) {
            mp_write_uint(&w, plan_fields[i].wire_id);
            plan_mp_write_value(&w, &plan_fields[i], p);
        }
    /* later-edition fields kept by plan_unpack_keep: their ids are above every known one */
    if (p->unknown.len > 0)
        mp_write_raw(&w, p->unknown.bytes, p->unknown.len);
    return mp_writer_finish(&w, out, len);
}

/* ---- reading --------------------------------------------------------------------------- */

static int read_enum(struct mp_reader *r, const struct plan_field *f, int *out)
{
    uint64_t v = 0;
    int rc = mp_read_uint(r, &v);
    if (rc != CMC_OK)
        return plan_fail_at(rc, f->path);
    if (plan_enum_name(f, v > 1000 ? 0 : (int)v) == NULL)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: enumerated value out of range", f->path);
    *out = (int)v;
    return CMC_OK;
}

int plan_mp_read_value(struct mp_reader *r, const struct plan_field *f, void *base, int allow_nil)
{
    char *cbase = base;
    int rc;
    plan_field_clear(f, base);
    if (mp_peek(r) == MP_T_NIL) {
        if (!allow_nil)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: nil where a value is expected", f->path);
        (void)mp_read_nil(r);
        return CMC_OK;
    }
    switch (plan_field_kind(f)) {
    case PLAN_K_TEXT: {
        const char *s = NULL;
        uint32_t len = 0;
        if ((rc = mp_read_str(r, (uint32_t)f->max_len, &s, &len)) != CMC_OK)
            return plan_fail_at(rc, f->path);
        if (memchr(s, '\0', len) != NULL)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: contains a NUL character", f->path);
        char *copy = cmc_strndup(s, len);
        if (copy == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
        *(char **)(cbase + f->offset) = copy;
        return CMC_OK;
    }
    case PLAN_K_BOOL:
        if ((rc = mp_read_bool(r, (int *)(cbase + f->offset))) != CMC_OK)
            return plan_fail_at(rc, f->path);
        return CMC_OK;
    case PLAN_K_ENUM:
        return read_enum(r, f, (int *)(cbase + f->offset));
    case PLAN_K_PLACES: {
        struct plan_places pl = {0};
        uint32_t n = 0;
        if ((rc = mp_read_array(r, PLAN_MAX_PLACES, &n)) != CMC_OK)
            return plan_fail_at(rc, f->path);
        for (uint32_t i = 0; i < n; i++)
            if ((rc = read_enum(r, f, &pl.v[i])) != CMC_OK)
                return rc;
        mp_leave(r);
        pl.n = n;
        *(struct plan_places *)(cbase + f->offset) = pl;
        return CMC_OK;
    }
    case PLAN_K_INT: {
        int64_t v = 0;
        if ((rc = mp_read_int(r, &v)) != CMC_OK)
            return plan_fail_at(rc, f->path);
        if (v < 0)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: negative", f->path);
        *(int64_t *)(cbase + f->offset) = v;
        return CMC_OK;
    }
    case PLAN_K_LIST: {
        uint32_t n = 0;
        size_t size = f->list->item_size;
        if ((rc = mp_read_array(r, (uint32_t)f->list->max_items, &n)) != CMC_OK)
            return plan_fail_at(rc, f->path);
        if (n > 0) {
            char *items = cmc_calloc(n, size);
            size_t count = n;
            if (items == NULL)
                return cmc_fail(CMC_ERR_NOMEM, "%s: out of memory", f->path);
            for (uint32_t i = 0; i < n; i++)
                plan_item_init(f->list, items + i * size);
            /* Owned by the plan from here, so a failure below is cleaned by the caller. */
            memcpy(cbase + f->offset, &items, sizeof items);
            memcpy(cbase + f->list->count_offset, &count, sizeof count);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t mask = 0;
                if ((rc = plan_mp_read_item(r, f, items + i * size, &mask, 0)) != CMC_OK) {
                    plan_field_clear(f, base);
                    return rc;
                }
            }
        }
        mp_leave(r);
        return CMC_OK;
    }
    }
    return cmc_fail(CMC_ERR_CORRUPT, "%s: unknown field type", f->path);
}

int plan_mp_read_item(struct mp_reader *r, const struct plan_field *lf, void *item, uint32_t *mask,
                      int allow_nil)
{
    const struct plan_list_desc *list = lf->list;
    uint32_t n = 0;
    uint64_t prev = 0;
    int rc;
    *mask = 0;
    if ((rc = mp_read_map(r, (uint32_t)list->n_fields, &n)) != CMC_OK)
        return plan_fail_at(rc, lf->path);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t key = 0;
        const struct plan_field *itf = NULL;
        if ((rc = mp_read_uint(r, &key)) != CMC_OK)
            return plan_fail_at(rc, lf->path);
        if (key <= prev)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: item field ids not ascending", lf->path);
        prev = key;
        for (size_t k = 0; k < list->n_fields; k++)
            if (list->fields[k].wire_id == key)
                itf = &list->fields[k];
        if (itf == NULL)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: unknown item field id %llu", lf->path,
                            (unsigned long long)key);
        /* An id may never be nil: it is how the item is found. */
        if ((rc = plan_mp_read_value(r, itf, item, allow_nil && itf != &list->fields[0])) != CMC_OK)
            return plan_fail_at(rc, lf->path);
        /* one plan, one encoding: an absent value is left out, never written */
        if (!allow_nil && !plan_value_present(itf, item))
            return cmc_fail(CMC_ERR_CORRUPT, "%s: an absent value written out", lf->path);
        *mask |= 1u << (size_t)(itf - list->fields);
    }
    mp_leave(r);
    if (plan_item_id(list, item) == NULL)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: item without an id", lf->path);
    return CMC_OK;
}

/* Keeps one unknown field (its key already read, starting at `key_at`) in out->unknown. */
static int keep_unknown(struct mp_reader *r, const uint8_t *key_at, struct plan *out)
{
    int rc = mp_skip(r);
    if (rc != CMC_OK)
        return plan_fail_at(rc, "plan: unknown field");
    size_t n = (size_t)(r->p - key_at);
    uint8_t *grown = cmc_realloc(out->unknown.bytes, out->unknown.len + n);
    if (grown == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "plan: out of memory");
    memcpy(grown + out->unknown.len, key_at, n);
    out->unknown.bytes = grown;
    out->unknown.len += n;
    out->unknown.count++;
    return CMC_OK;
}

/* `keep`: 0 refuses unknown ids; 1 keeps them; UNPACK_STORED keeps them and validates with
 * PLAN_CHECK_STORED. */
#define UNPACK_STORED 2
static int unpack(const uint8_t *buf, size_t len, struct plan *out, int keep)
{
    struct mp_reader r;
    uint32_t n = 0;
    uint64_t prev = 0, highest = plan_fields[plan_n_fields - 1].wire_id;
    plan_init(out);
    int rc = plan_mp_reader_open(&r, buf, len, PLAN_MAX_ENCODED, "plan");
    if (rc != CMC_OK)
        return rc;
    mp_reader_canonical(&r); /* one plan, one encoding (docs/PROTOCOL.md) */
    if ((rc = mp_read_map(&r, keep ? UINT8_MAX : (uint32_t)plan_n_fields, &n)) != CMC_OK)
        return plan_fail_at(rc, "plan");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t key = 0;
        const struct plan_field *f;
        const uint8_t *key_at = r.p;
        if ((rc = mp_read_uint(&r, &key)) != CMC_OK) {
            rc = plan_fail_at(rc, "plan: field id");
            goto out;
        }
        if (key <= prev) {
            rc = cmc_fail(CMC_ERR_CORRUPT, "plan: field ids not ascending");
            goto out;
        }
        prev = key;
        if (keep && key > highest && key <= UINT8_MAX) {
            if ((rc = keep_unknown(&r, key_at, out)) != CMC_OK)
                goto out;
            continue;
        }
        if (key > UINT8_MAX || (f = plan_field_by_wire_id((uint8_t)key)) == NULL) {
            rc = cmc_fail(CMC_ERR_CORRUPT, "plan: unknown field id %llu", (unsigned long long)key);
            goto out;
        }
        if ((rc = plan_mp_read_value(&r, f, out, 0)) != CMC_OK)
            goto out;
        if (!plan_value_present(f, out)) {
            rc = cmc_fail(CMC_ERR_CORRUPT, "%s: an absent value written out", f->path);
            goto out;
        }
    }
    mp_leave(&r);
    if ((rc = mp_expect_end(&r)) != CMC_OK) {
        rc = plan_fail_at(rc, "plan");
        goto out;
    }
    rc = plan_validate(out, keep == UNPACK_STORED ? PLAN_CHECK_STORED : PLAN_CHECK_DRAFT);
out:
    if (rc != CMC_OK)
        plan_free(out);
    return rc;
}

int plan_unpack(const uint8_t *buf, size_t len, struct plan *out)
{
    return unpack(buf, len, out, 0);
}

int plan_unpack_keep(const uint8_t *buf, size_t len, struct plan *out)
{
    return unpack(buf, len, out, 1);
}

int plan_unpack_stored(const uint8_t *buf, size_t len, struct plan *out)
{
    return unpack(buf, len, out, UNPACK_STORED);
}
