/*
 * view.h - the plan a session sees: what the CLI's lookup/show and the crew's web page show.
 *
 * For an urgent-care session this is exactly store_plan_get() (the store's own rule: the
 * newest published version, nothing else). For a clinician it is the newest version held
 * with the clinician's pending local edits applied on top, in the order they were made, so
 * the clinician sees what they changed; the caller marks those fields "not yet approved".
 *
 * Memory: *out is owned by the caller (plan_free); on failure it is left empty. The paths of
 * the changed fields are appended to `changed_paths` (a jansson array, may be NULL) as
 * strings, one per operation, possibly repeated.
 * Errors: CMC_ERR_NOT_FOUND when this session may see no version of that plan, or the
 * store's and codecs' errors. Thread-safety: as the store handle (one thread at a time).
 */
#ifndef CMC_VIEW_H
#define CMC_VIEW_H

#include "agent/store.h"
#include "sync/plan.h"

#include <jansson.h>

/* `key` is an NHS number (10 digits) or a plan id. *n_pending counts the edits applied. */
int view_load(store *st, const char *key, struct plan *out, int *n_pending, json_t *changed_paths);

#endif
