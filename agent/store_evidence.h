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

#include <stdint.h>

/* Calls cb once a plan, in plan id order, for each plan with a published version that came
 * with a change after `head`: its newest such version and that version's change number.
 * Stops at the first nonzero cb result and returns it. */
typedef int (*store_evidence_fn)(const char *plan_id, int64_t version, int64_t change_seq,
                                 void *ctx);
int store_evidence_each(store *s, int64_t head, store_evidence_fn cb, void *ctx);

#endif
