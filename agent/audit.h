/*
 * audit.h - the device's view log: every lookup (hit and miss), search, show, list and page
 * view appends one entry to a BLAKE2b hash chain kept in the replica (table `audit`).
 *
 * An entry holds identifiers only, never clinical content: the device id, the user and role
 * of the session, the plan id viewed (hits), the identifier searched for (an NHS number for a
 * lookup miss; the search criteria for a search), the action, the wall time and the monotonic
 * clock, its sequence number, the previous entry's hash and its own. The hash is
 * BLAKE2b-256(prev || M), M the msgpack map of the entry without its hash, keys in the order
 * seq, prev, user, role, plan_id, identifier, action, wall, mono (docs/PROTOCOL.md, POST
 * /v1/audit), so the hub can check the chain entry by entry.
 *
 * `sync` uploads entries not yet acknowledged; the device prunes only entries the hub has
 * acknowledged, keeping the last pruned hash as the anchor of what remains.
 *
 * A view is shown even when its entry cannot be written (a full disk, a damaged log): a
 * crew must never be kept from a CPR decision by the audit trail. The gap is logged as a
 * warning (no patient data) and audit --verify reports any break in the chain.
 */
#ifndef CMC_AUDIT_H
#define CMC_AUDIT_H

#include "agent/store.h"

#include <stddef.h>
#include <stdint.h>

/* Actions, as written in entries. */
#define AUDIT_LOOKUP "lookup"          /* a lookup that found a plan (plan_id set) */
#define AUDIT_LOOKUP_MISS "lookup_miss" /* a lookup that found nothing (identifier = NHS number) */
#define AUDIT_SEARCH "search"          /* identifier = the criteria, e.g. "name=smi;dob=;postcode=SE15" */
#define AUDIT_SHOW "show"              /* the whole plan */
#define AUDIT_LIST "list"              /* the list of visible plans */
#define AUDIT_PAGE_VIEW "page_view"    /* the crew's web page showed a plan */
#define AUDIT_EDIT "edit"              /* a pending edit was made */
#define AUDIT_BREAK_GLASS "break_glass" /* a locked copy opened for one plan (plan_id set;
                                           identifier = the reason the user typed) */

/* Appends one entry for the store's session. plan_id and identifier may be NULL. A failure
 * to record is logged, never allowed to block the view. */
void audit_record(store *s, const char *action, const char *plan_id, const char *identifier);

struct audit_entry {
    int64_t seq;
    uint8_t prev[32];
    uint8_t hash[32];
    char device[40];
    char user[72];
    char role[32];
    char plan_id[40];
    char identifier[208];
    char action[32];
    int64_t wall;
    int64_t mono;
};

/* Entries in order, at most `max` (0 = all). Free with cmc_free. */
int audit_list(store *s, size_t max, struct audit_entry **out, size_t *n);

/* Recomputes the chain. CMC_OK, or CMC_ERR_TAMPERED with *broken_seq the first entry whose
 * hash or link does not hold (cmc_errmsg says which). */
int audit_verify(store *s, int64_t *broken_seq);

/* Entries not yet acknowledged by the hub, oldest first, at most `max`. */
int audit_unsent(store *s, size_t max, struct audit_entry **out, size_t *n);
/* The upload form of an entry: the ten-key map of docs/PROTOCOL.md (hash last). */
int audit_entry_pack(const struct audit_entry *e, uint8_t **out, size_t *len);
/* The hub acknowledged every entry up to acked_seq: drop them, keeping the last one's hash as
 * the anchor the rest of the chain hangs from. Call inside a batch. */
int audit_prune(store *s, int64_t acked_seq);

#endif
