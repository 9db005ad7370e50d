/*
 * store_sync.h - the replica as the sync engine sees it.
 *
 * These calls serve agent/engine.c only: reading a stored version whatever its status (to
 * apply a delta or merge an edit), the base snapshot of pending edits, pushed-edit
 * bookkeeping and three-way merge state. Nothing read here is ever shown to a user: every
 * display path goes through the session-filtered reads of store.h, which keep the
 * published-only rule for urgent care.
 */
#ifndef CMC_STORE_SYNC_H
#define CMC_STORE_SYNC_H

#include "agent/store.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

/* A stored version of any status. CMC_ERR_NOT_FOUND if the replica does not hold it. */
int store_sync_version_get(store *s, const char *plan_id, int64_t version, struct plan *out);
/* Drops versions of a plan older than both its newest version and its newest published
 * one: nothing reads them (a pending edit keeps its own base). */
int store_sync_prune(store *s, const char *plan_id);

/* The seal of leaf i of a page's tree whose root the hub signed with `sig`, in the stored
 * form (docs/STORAGE.md); *out for cmc_free. */
struct cry_merkle_tree;
int store_seal_blob(const struct cry_merkle_tree *t, size_t i, const uint8_t sig[CRY_SIG_BYTES],
                    uint8_t **out, size_t *len);
/* As store_put_packed, with the version's seal (docs/STORAGE.md, "Plan seals"). */
int store_put_sealed(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                     const uint8_t *seal, size_t seal_len, int64_t change_seq);

/* Pending edits whatever the session's role: a shared clinician laptop may sync under an
 * urgent-care user, and the engine must still push and merge the clinicians' edits. */
int store_sync_pending_list(store *s, const char *plan_id, struct store_pending **out, size_t *n);

/* 1 in *yes when a version of the plan may be held under the role key out of this session's
 * reach (sealed, or in a clinical file it cannot open): a change against it cannot be
 * applied here, and the plan must come whole. */
int store_sync_base_withheld(store *s, const char *plan_id, int *yes);

/* 1 in *yes when the replica holds any pending edit (most bundles then skip merging). */
int store_sync_has_pending(store *s, int *yes);

/* The plan a pending edit was made on (kept with the edit, so a newer version arriving
 * cannot take it away). */
int store_pending_base(store *s, int64_t pending_id, struct plan *out);
/* The hub accepted the edit as draft `hub_version`: it stays shown (marked not yet
 * approved) until this device holds that version or a newer one. */
int store_pending_mark_pushed(store *s, int64_t id, int64_t hub_version);
/* Drops pushed edits of a plan that the hub's version `held_version` now includes. */
int store_pending_settle(store *s, const char *plan_id, int64_t held_version, int *settled);
/* Replaces every pending edit of a plan with one edit on `base` (state pending, a fresh
 * idempotency id). An empty change just removes them. Any session: the engine rebases. */
int store_pending_replace(store *s, const char *plan_id, const struct plan *base, const uint8_t *change,
                          size_t change_len);

/* Three-way merge state of a plan whose edits are held by conflicts. */
int store_merge_put(store *s, const char *plan_id, const struct plan *base, const struct plan *local,
                    const struct plan *remote);
int store_merge_get(store *s, const char *plan_id, struct plan *base, struct plan *local, struct plan *remote);
/* Plan ids with merge state, oldest first. Free with cmc_free on each and the array. */
int store_merge_list(store *s, char ***plan_ids, size_t *n);
/* The clinician's choice for one conflicting path: "local" or "remote". */
int store_merge_choose(store *s, const char *plan_id, const char *path, const char *keep);
/* The choice recorded for a path: "local", "remote" or "" (none yet). out has 8 bytes. */
int store_merge_choice(store *s, const char *plan_id, const char *path, char out[8]);
int store_merge_delete(store *s, const char *plan_id);

#endif
