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
    uint8_t seal[32]; /* forward-secure seal (crypto/fss.h); sealed 0: made before enrollment */
    int sealed;
};

/* Entries in order, at most `max` (0 = all). Free with cmc_free. */
int audit_list(store *s, size_t max, struct audit_entry **out, size_t *n);

/* Recomputes the chain and checks it against the sealing state: the newest entry the device
 * sealed must still be there (or pruned after the hub acknowledged it), and no entry after
 * the first sealed one may lack its seal. The seals themselves only the hub can check (the
 * keys that made them are gone). CMC_OK, or CMC_ERR_TAMPERED with *broken_seq the first
 * entry whose hash, link or seal does not hold (cmc_errmsg says which). */
int audit_verify(store *s, int64_t *broken_seq);

/* Forward-secure sealing (crypto/fss.h; docs/PROTOCOL.md, "Audit seals"). audit_seal_begin
 * keeps the seed the hub gave at enrollment as the first key: every entry recorded from then
 * on is sealed and the key moves on, the old one overwritten. audit_seal_state fills the
 * state an upload carries (st->present 0 when this device has no key). */
int audit_seal_begin(store *s, const uint8_t seed[32]);
struct wire_audit_state;
int audit_seal_state(store *s, struct wire_audit_state *st);

/* Entries not yet acknowledged by the hub, oldest first, at most `max`. */
int audit_unsent(store *s, size_t max, struct audit_entry **out, size_t *n);
/* The entry in the wire's form (sync/wire.h), which the chain hash and the upload are
 * defined on; strings longer than the wire's buffers are cut. */
struct wire_audit_entry;
void audit_to_wire(const struct audit_entry *e, struct wire_audit_entry *w);
/* The upload form of an entry: the ten-key map of docs/PROTOCOL.md (hash last). */
int audit_entry_pack(const struct audit_entry *e, uint8_t **out, size_t *len);
/* The hub acknowledged every entry up to acked_seq: drop them, keeping the last one's hash as
 * the anchor the rest of the chain hangs from. Call inside a batch. */
int audit_prune(store *s, int64_t acked_seq);

#endif
