/*
 * change.h - changes to a plan: the change document of CLI.md, and field-level deltas.
 *
 * One structure serves three uses:
 *   - the change document a clinician writes (`cmc-agent edit`, `cmc-hub plan edit`), JSON:
 *       { "set":    { "resuscitation.decision": "for_cpr", "prognosis": "months" },
 *         "add":    { "medications": [ { "id": "m9", "name": "...", ... } ] },
 *         "update": { "allergies": [ { "id": "a1", "reaction": "Rash" } ] },
 *         "remove": { "contacts": ["c3"] } }
 *   - the field-level delta the hub sends instead of a whole plan (plan_change_diff of the
 *     version a device holds and the current one), packed as msgpack;
 *   - the pending edit a device keeps until it is pushed.
 *
 * Ops: SET a top-level field (any non-list, non-META field; null clears an optional
 * field; a whole list may not be SET from a change document, but a diff may SET a list's
 * order implicitly through ADD/REMOVE only); ADD a list item (a full item with a new id);
 * UPDATE some fields of an existing item (by id); REMOVE an item (by id).
 * Paths are the dotted paths of plan.h's table; unknown paths and fields are refused with
 * a detail naming them. Applying checks that ADD ids are new, UPDATE/REMOVE ids exist, and
 * that the result still validates (PLAN_CHECK_DRAFT); on failure the target is unchanged.
 *
 * Order: ops apply in array order. A JSON document is applied as all its "set" ops, then
 * "remove", then "update", then "add" (whatever the key order in the file), and
 * plan_change_to_json writes the groups in that order, so a change whose ops are already
 * in that order (every parsed document and every diff) survives a JSON round trip. ADD
 * appends at the end of the list; UPDATE keeps an item's position.
 *
 * List order in a diff: items that stay in the same relative position at the front of the
 * list are kept (and UPDATEd where they differ); once the orders diverge, the remaining
 * old items are REMOVEd and the target's remaining items ADDed in order. So appending is
 * a pure ADD, editing an item a pure UPDATE, and a reordering a REMOVE + ADD of the moved
 * tail. The three-way merge compares plans field by field and items by id with
 * plan_field_equal / plan_item_equal (plan.h) rather than through ops.
 *
 * Memory: a plan_change owns its values. plan_change_free(NULL) is a no-op. Outputs are
 * initialised by the callee (they must own nothing on entry) and are empty on failure.
 */
#ifndef CMC_CHANGE_H
#define CMC_CHANGE_H

#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

#define PLAN_CHANGE_MAX_OPS 2048                        /* ops in one change */
#define PLAN_CHANGE_MAX_ENCODED (2 * PLAN_MAX_ENCODED)  /* largest JSON or msgpack change */

enum plan_op_kind {
    PLAN_OP_SET = 1,
    PLAN_OP_ADD = 2,
    PLAN_OP_UPDATE = 3,
    PLAN_OP_REMOVE = 4,
};

struct plan_op {
    enum plan_op_kind kind;
    const struct plan_field *field; /* top-level field (a list field for ADD/UPDATE/REMOVE) */
    /* ADD / UPDATE: an item struct of field->list->item_size bytes, owned; for UPDATE only
     * the item fields whose bit (index in field->list->fields) is set in item_mask count. */
    void *item;
    uint32_t item_mask;
    /* REMOVE (and UPDATE, a copy of the item's id): the item id, owned. */
    char *item_id;
};

struct plan_change {
    /* Values of SET ops live in this plan, at the field's own offset. */
    struct plan values;
    struct plan_op *ops;
    size_t n_ops;
};

void plan_change_init(struct plan_change *c);
void plan_change_free(struct plan_change *c);

/* Parses a change document. CMC_ERR_INVALID names the offending path or key. */
int plan_change_from_json(const char *json, size_t len, struct plan_change *out);
int plan_change_to_json(const struct plan_change *c, char **out, size_t *len);

/* Applies `c` to `p` in place; all or nothing. */
int plan_change_apply(struct plan *p, const struct plan_change *c);

/* Computes the ops that turn `from` into `to` (same plan_id); metadata fields (status,
 * version, approved_*, review_due, updated_at) are included as SETs so applying the diff to
 * `from` gives a plan equal to `to` (plan_equal). Empty change when they are equal. */
int plan_change_diff(const struct plan *from, const struct plan *to, struct plan_change *out);

/* msgpack form for the wire and pending edits (docs/PROTOCOL.md): an array of ops, each
 * [kind, field wire_id, value-or-item-or-id]; decoded strictly like plan_unpack. The
 * encoding applies to META fields too (deltas carry them); plan_change_from_json never
 * accepts META paths. */
int plan_change_pack(const struct plan_change *c, uint8_t **out, size_t *len);
int plan_change_unpack(const uint8_t *buf, size_t len, struct plan_change *out);

#endif
