/*
 * engine_evidence.h - a device's evidence of the plans a restored hub lost.
 *
 * A hub restored from an earlier backup answers a device that had synced past it with 409
 * "hub_rewound: ... (its change log ends at R, this device had seen C) ...". Before the
 * device starts its change log again, it tells the hub (POST /v1/evidence, signed like every
 * request) which published plans it holds that came with a change after R: plan id,
 * version, change number, at most WIRE_EVIDENCE_MAX a request. The hub lists the ones it no
 * longer has in `cmc-hub restore report`, naming this device, so the operator can re-enter
 * them from a device's copy. Nothing here is patient data.
 *
 * Errors: the caller re-syncs whatever this returns (a failed report is logged, never a
 * reason to stop); the report is made once, when the hub answers hub_rewound.
 */
#ifndef CMC_ENGINE_EVIDENCE_H
#define CMC_ENGINE_EVIDENCE_H

#include "agent/store.h"
#include "sync/http.h"

#include <stddef.h>
#include <stdint.h>

/* R from a hub_rewound message; 0 when the message does not name it. */
int engine_rewound_head(const char *hub_message, uint64_t *head);
/* Sends the evidence for a hub whose change log ends at `head`; the plans reported in *sent. */
int engine_evidence_report(store *s, http_client *client, uint64_t head, size_t *sent);
/* engine_evidence_report for the head of a hub_rewound answer (NULL: the answer did not name
 * it, nothing is sent), with its outcome logged: a failure is a warning, and the error
 * detail is cleared for the re-sync that follows. */
void engine_evidence_send(store *s, http_client *client, const uint64_t *head);

#endif
