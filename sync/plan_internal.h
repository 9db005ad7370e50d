/*
 * plan_internal.h - value codecs shared by the plan codecs (plan_json.c, plan_mp.c) and the
 * change documents (change.c). Not part of the sync/ interface: other modules use plan.h
 * and change.h.
 *
 * `base` is the struct a field lives in (struct plan or an item struct), as in plan.h.
 * Decoders clear the field first and leave it absent on failure; details name `path`.
 */
#ifndef CMC_PLAN_INTERNAL_H
#define CMC_PLAN_INTERNAL_H

#include "sync/mp.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_ITEM_ALL UINT32_MAX /* item mask: every field */
#define PLAN_MP_DEPTH 4          /* change op array > op > item map > places array */

/* "a, b, c": the names of an enumeration, for details. */
void plan_enum_list(const struct plan_field *f, char *buf, size_t cap);
/* plan_field_check without the text hygiene of sync/text.h (PLAN_CHECK_STORED). */
int plan_field_check_stored(const struct plan_field *f, const void *base, const char *path);
/* Re-records the current detail prefixed with `path` and returns rc (NOMEM untouched). */
int plan_fail_at(int rc, const char *path);

/* JSON: *out is a new reference (json null for an absent value). */
int plan_json_value(const struct plan_field *f, const void *base, json_t **out);
/* An item as an object with "id" and the fields in `mask` (absent ones as null). */
int plan_json_item(const struct plan_list_desc *list, const void *item, uint32_t mask, json_t **out);
/* JSON null clears the field. */
int plan_json_decode(const struct plan_field *f, json_t *v, void *base, const char *path);
/* Decodes an item object into an initialised `item`; "id" is required and valid; *mask gets
 * the bits of the fields present. `lf` is the list field, `index` names the item in details
 * until its id is known. */
int plan_json_decode_item(const struct plan_field *lf, json_t *obj, size_t index, void *item,
                          uint32_t *mask);
/* Parses with the shared caps and flags; detail names `what`, never the content. */
int plan_json_load(const char *json, size_t len, const char *what, json_t **out);
/* Serialises to a cmc_malloc'd NUL-terminated buffer. */
int plan_json_dump(json_t *root, int pretty, char **out, size_t *len);

/* msgpack: writes a present value (callers skip absent ones, or write nil). */
void plan_mp_write_value(struct mp_writer *w, const struct plan_field *f, const void *base);
/* r set on buf[0..len) at PLAN_MP_DEPTH; CMC_ERR_TOO_LARGE ("WHAT: encoding of N bytes (at
 * most MAX)") when len is over max, before anything is read. */
int plan_mp_reader_open(struct mp_reader *r, const uint8_t *buf, size_t len, size_t max, const char *what);
/* An item map with the id and the fields in `mask`: absent ones are omitted, or written as
 * nil when `nil_absent` (an UPDATE clearing a field). */
void plan_mp_write_item(struct mp_writer *w, const struct plan_list_desc *list, const void *item,
                        uint32_t mask, int nil_absent);
/* 1 if the field holds a value (the msgpack form omits absent ones). */
int plan_value_present(const struct plan_field *f, const void *base);
/* Reads one value; nil clears when `allow_nil`, else it is refused. */
int plan_mp_read_value(struct mp_reader *r, const struct plan_field *f, void *base, int allow_nil);
/* Reads an item map (ascending ids, "id" required) into an initialised item. */
int plan_mp_read_item(struct mp_reader *r, const struct plan_field *lf, void *item, uint32_t *mask,
                      int allow_nil);

#endif
