/*
 * card_source.h - where a clinician's card gets its provenance: the version held without this
 * device's local changes (the plan's values), where each local change stands (proposed here,
 * sent and awaiting the hub, held by a conflict), who made the newest one and when, and the
 * plan's open conflicts. card_source_apply() puts them in a card context (agent/card.h), so the
 * terminal card, --json and the page show a proposal beside the plan's value and never in its
 * place.
 *
 * An urgent-care session has no local changes and is never told of any: card_source_load
 * leaves everything empty for it.
 *
 * Memory: a card_source owns what it holds; card_source_free() releases it (and is a no-op on
 * a zeroed one). The context borrows from it: free it after the card is built.
 * Errors: the store's (CMC_ERR_NOMEM, a damaged row); on failure *out is left empty.
 * Thread-safety: as the store handle.
 */
#ifndef CMC_CARD_SOURCE_H
#define CMC_CARD_SOURCE_H

#include "agent/card.h"
#include "agent/engine.h"
#include "agent/store.h"
#include "sync/plan.h"

#include <jansson.h>

struct card_source {
    int have_published;             /* `published` holds the version held */
    struct plan published;
    json_t *sent_paths;             /* paths of changes sent, awaiting the hub, not changed since */
    struct engine_conflict *conflicts; /* this plan's open conflicts */
    size_t n_conflicts;
    char proposed_by[CRY_USER_MAX + 1];
    int64_t proposed_at;
};

/* For the plan `shown` (as view_load gave it, with `n_pending` local changes applied). */
int card_source_load(store *st, const struct plan *shown, int n_pending, struct card_source *out);
/* Points the context's provenance fields at `src`. */
void card_source_apply(const struct card_source *src, struct card_context *ctx);
void card_source_free(struct card_source *src);

#endif
