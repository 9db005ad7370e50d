/*
 * store_evidence.h - what the replica holds from a hub's lost timeline.
 *
 * When a hub restored from an earlier backup answers "hub_rewound", the plans this device
 * received after the restored head are the only record of the versions the hub lost. The
 * engine reads them here (ids, versions and change numbers, never patient data) and
 * reports them to the hub before it re-syncs (agent/engine_evidence.h). Serves the sync
 * engine only; reads the replica's columns, never a plan's body.
 */
#ifndef CMC_STORE_EVIDENCE_H
#define CMC_STORE_EVIDENCE_H

#include "agent/store.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

/* A plan held from after the head: its newest published version that came with a change
 * after it, and that version's change number. */
struct store_evidence {
    char plan_id[PLAN_ID_LEN + 1];
    int64_t version;
    int64_t change_seq;
};
/* Every such plan, in plan id order, into *out (cmc_free it; NULL when none) and *n. */
int store_evidence_list(store *s, int64_t head, struct store_evidence **out, size_t *n);

#endif
