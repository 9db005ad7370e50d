/*
 * feed.h - what the feed's own files share (feed.c builds pages, holdings.c records what
 * each device holds, feed_cache.c keeps the feed's per-handle state). Not for use outside
 * these files; the rest of the hub sees only hub_pull, hub_device_target and
 * hub_plan_holders (hub.h).
 *
 * The feed owns its per-handle state: the statements every device poll runs, kept prepared,
 * and the deltas it has computed. It is created on first use and registered on the handle
 * as a part (internal.h), so the handle resets it before a transaction ends and frees it in
 * hub_close without knowing what is inside. Like the handle, it is used by one thread at a
 * time. Every function returns a cmc_err unless it says otherwise.
 */
#ifndef CMC_HUB_FEED_H
#define CMC_HUB_FEED_H

#include "hub/internal.h"

/* The feed's kept statements, one slot each (hub_feed_stmt). */
enum hub_feed_stmt_slot {
    HUB_FEED_HOLDER,
    HUB_FEED_HOLDER_ADD,
    HUB_FEED_PAGES,
    HUB_FEED_PAGE_ADD,
    HUB_FEED_PAGE_FORGET,
    HUB_FEED_PAGE_RESTORE,
    HUB_FEED_PAGE_DROP,
    HUB_FEED_ROLLBACK_DROP,
    HUB_FEED_CURSOR,
    HUB_FEED_CASELOAD,
    HUB_FEED_VERSION,
    HUB_FEED_VERSION_PAIR,
    HUB_FEED_NAGS,
    HUB_FEED_SCAN,
    HUB_FEED_HOLDING_PUT,
    HUB_FEED_HAS_PURGES,
    HUB_FEED_PURGE_OPEN,
    HUB_FEED_PURGE_CLOSE,
    HUB_FEED_PURGE_CARRIED,
    HUB_FEED_STMT_COUNT
};

/* The statement kept in `slot` (hub_stmt's contract), creating the feed's state on the
 * handle on first use. */
int hub_feed_stmt(hub *h, enum hub_feed_stmt_slot slot, const char *sql, sqlite3_stmt **out);

/* ---- the delta cache (feed_cache.c) ---------------------------------------------------- */

struct hub_delta_entry {
    char plan_id[PLAN_ID_LEN + 1]; /* "" = empty slot */
    int64_t base, target;
    uint8_t *delta; /* plan_change_pack of base -> target */
    size_t len;
    size_t put_len; /* the whole target version's packed length */
    uint8_t leaf[CRY_HASH_BYTES]; /* the target's seal leaf (cry_merkle_leaf) */
};

/* The cached delta of plan_id from base to target, or NULL. Valid until the next keep. */
const struct hub_delta_entry *hub_delta_find(hub *h, const char *plan_id, int64_t base,
                                             int64_t target);
/* Best effort: a delta that cannot be kept (no memory, too large) is simply not cached. */
void hub_delta_keep(hub *h, const char *plan_id, int64_t base, int64_t target,
                    const uint8_t *delta, size_t len, size_t put_len,
                    const uint8_t leaf[CRY_HASH_BYTES]);

/* ---- the compressed body cache (feed_cache.c) ------------------------------------------ */

/* Pages of at least HUB_BODY_MIN raw bytes (snapshot pages) are compressed once: a page
 * whose ops, count and codec equal an earlier page's (devices of one scope enrolling from the
 * same head) reuses its compressed body under its own signed header (bundle_seal). The
 * holdings, the header and its signature stay per device. */
#define HUB_BODY_MIN (64u * 1024u)
struct hub_body_entry {
    uint8_t digest[CRY_HASH_BYTES]; /* bundle_writer_digest */
    uint32_t count, raw_len;
    uint16_t codec_flags;           /* BUNDLE_FLAG_BROTLI or 0 */
    uint8_t *body;                  /* NULL = empty slot */
    size_t len;
};
/* The kept body, or NULL. Valid until the next keep. */
const struct hub_body_entry *hub_body_find(hub *h, const uint8_t digest[CRY_HASH_BYTES],
                                           uint32_t count, uint16_t codec_flags);
/* Best effort, like hub_delta_keep. */
void hub_body_keep(hub *h, const uint8_t digest[CRY_HASH_BYTES], uint32_t count,
                   uint16_t codec_flags, uint32_t raw_len, const uint8_t *body, size_t len);

/* ---- older editions (feed_edition.c) --------------------------------------------------- */

/* The note a projection that left content out carries, and the id of the anticipated
 * problem that carries it when the ceiling of treatment has no room for it. */
#define HUB_EDITION_NOTE                                                                   \
    "[THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW - update the agent to see all of it]"
#define HUB_EDITION_NOTE_ID "update-the-agent"

/* Reduces p in place to what a device of plan edition `edition` can hold: every field of a
 * later edition cleared and, when that lost anything (*reduced = 1), the note added.
 * CMC_ERR_TOO_LARGE when neither the ceiling nor the problem list has room for the note
 * (the plan is then not sent rather than sent without it), CMC_ERR_NOMEM. */
int hub_edition_project(struct plan *p, int edition, int *reduced);

/* ---- holdings (holdings.c) ------------------------------------------------------------- */

/* The device's holder number: 0 until it is first sent something. */
struct hub_holder {
    int64_t num;
};

/* One plan a page carries, as the holdings record it. */
struct hub_sent {
    int64_t plan;       /* plans.num */
    char plan_id[PLAN_ID_LEN + 1];
    int64_t version;    /* 0: a purge */
    uint64_t seq;       /* purge: the change it reflects */
    const char *reason; /* purge: a static reason name */
};

/* The plans whose unacknowledged purges a page repeats, sorted for bsearch, so the scan
 * does not purge the same plan twice in one page. */
struct hub_nags {
    char (*ids)[PLAN_ID_LEN + 1];
    size_t n, cap;
};

int hub_holder_get(hub *h, const char *device_id, struct hub_holder *out);
/* Settles the device's unproven pages and its cursor before a page is built from `cursor`
 * (prev: the device's recorded cursor; applied: what it has committed). */
int hub_holdings_commit_point(hub *h, const char *device_id, struct hub_holder *hd,
                              uint64_t prev, uint64_t cursor, uint64_t applied);
/* Records what a page ending at to_cursor gave the device. */
int hub_record_sent(hub *h, const char *device_id, struct hub_holder *hd,
                    const struct hub_sent *sent, size_t n, uint64_t to_cursor);
/* A restored replica (a pull from `cursor` below the proven one): reopens its purges. */
int hub_note_rollback(hub *h, const char *device_id, uint64_t proven, uint64_t cursor);
/* Lowers the cursor of the purge records a page ending at to_cursor repeated. */
int hub_nags_carried(hub *h, const char *device_id, const struct hub_nags *nags,
                     uint64_t to_cursor);

#endif
