/*
 * merge.h - the three-way merge of a clinician's offline edits with a newer hub version.
 *
 * Inputs: `base` (the version the local edits were made on), `local` (base with the pending
 * edits applied) and `remote` (the newer version from the hub). The merge walks the plan's
 * field table:
 *   - a field changed on one side only takes that side's value;
 *   - a field changed on both sides to the same value takes it;
 *   - a field changed on both sides differently is a CONFLICT;
 *   - list items are matched by id: an item changed on one side merges field by field like
 *     the plan; added on one side is added; removed on one side and unchanged on the other
 *     is removed; removed on one side and changed on the other is a CONFLICT on the whole
 *     item; added on both sides with the same id merges field by field against an empty item;
 *   - record metadata (status, version, approval, review due, timestamps) is the remote's.
 * Where there is a conflict the merged plan holds the remote value (what the hub approved)
 * and the conflict is reported: the merge never picks a winner for the clinician. If the
 * merged plan would break a validation rule (say, two primary diagnoses), the whole plan is
 * reported as one conflict with path "plan".
 *
 * The merge is deterministic: the same three inputs give the same merged plan and the same
 * conflicts in the same order (table order, then remote item order, then local additions).
 *
 * plan_merge_take() settles one conflict by copying the value at its path from `src`
 * (local or remote) into the merged plan.
 *
 * Memory: the merged plan and the conflict array are the caller's (plan_free, cmc_free).
 */
#ifndef CMC_MERGE_H
#define CMC_MERGE_H

#include "sync/plan.h"

#include <stddef.h>

#define MERGE_PATH_MAX 160

struct merge_conflict {
    /* "resuscitation.decision", "allergies[a1].reaction", "allergies[a1]" (a whole item),
     * or "plan" (the whole plan) */
    char path[MERGE_PATH_MAX];
    const struct plan_field *field;      /* top-level field; NULL for "plan" */
    char item_id[PLAN_ITEM_ID_MAX + 1];  /* list item, or "" */
    const struct plan_field *item_field; /* field within the item, or NULL for the whole item */
};

int plan_merge3(const struct plan *base, const struct plan *local, const struct plan *remote,
                struct plan *merged, struct merge_conflict **conflicts, size_t *n_conflicts);

/* Finds the conflict of `path` among `n` conflicts recomputed by plan_merge3. */
const struct merge_conflict *plan_merge_find(const struct merge_conflict *c, size_t n, const char *path);

/* Copies the value at c's path from src into merged (for a whole item: puts src's item in
 * place, or removes it when src has none; for "plan": all of src's non-metadata fields). */
int plan_merge_take(struct plan *merged, const struct plan *src, const struct merge_conflict *c);

/* A short human rendering of the value at c's path in p ("dnacpr", "removed", "(absent)"),
 * for `cmc-agent conflicts`. Never logged. */
void plan_merge_value_text(const struct plan *p, const struct merge_conflict *c, char *out, size_t cap);

#endif
