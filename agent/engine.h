/*
 * engine.h - the device's sync engine: enrollment, pull and apply, push, merge.
 *
 * Enrollment makes the device's Ed25519 key, registers it with the hub's one-time code and
 * pins what the hub answers: its bundle-signing key and the public key of its TLS
 * certificate (plus the CA file given, copied into the data directory). All of it is kept in
 * the replica's sync state, which is encrypted at rest like the plans.
 *
 * A sync is: pull every page from the committed cursor (each bundle verified - length, hash,
 * signature with the pinned key, device id, cursor continuity - before it is inflated or
 * decoded, then applied in one transaction with its new cursor), then push pending edits,
 * then record the time of this successful sync. An interruption anywhere leaves the replica
 * at the last committed bundle; the next sync resumes from there. A 401 stops the sync and
 * leaves the data alone; nothing but a verified, signed wipe order ever wipes.
 *
 * Offline edits: a newer version arriving for a plan with pending edits (on a pull, or as a
 * push's "conflict" answer) is merged three ways (sync/merge.h). Without conflicts the
 * pending edits are rebased onto the new version and pushed; with conflicts they are held
 * (nothing is pushed for that plan) until the clinician settles each one with
 * engine_resolve(). A purge discards pending edits for that plan and says so in the report.
 *
 * Threading: one engine call at a time per data directory (the caller holds the process
 * lock). Progress (pages, ops) is reported through an optional callback.
 */
#ifndef CMC_ENGINE_H
#define CMC_ENGINE_H

#include "agent/store.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* The page size a device asks for: a snapshot commits in fewer, larger transactions while
 * a page's decoded plans stay well inside the memory budget. */
#define ENGINE_PAGE_BUDGET (2u * 1024u * 1024u)

struct engine_config {
    const char *dir;             /* data directory (for the CA copy and the wipe) */
    const char *slots_path;      /* key-slot file, destroyed by a wipe */
    const char *replica_path;
    uint32_t page_budget;        /* requested bytes per page; 0 = hub default */
    uint32_t group_bytes;        /* pages share a transaction up to this many decoded bytes;
                                    0 = 16 MiB */
    uint32_t group_ms;           /* ... and this long; 0 = 1000 ms, UINT32_MAX = no limit */
    unsigned max_attempts;       /* HTTP attempts per request; 0 = default */
};

struct engine_report {
    uint64_t pages;
    uint64_t puts;
    uint64_t deltas;
    uint64_t purges;
    uint64_t pushed;             /* edits the hub accepted (drafts awaiting approval) */
    uint64_t conflicts;          /* plans whose edits are now held by a conflict */
    uint64_t rebased;            /* pending edits merged onto a newer version cleanly */
    uint64_t discarded_edits;    /* pending edits dropped because their plan was purged */
    uint64_t skipped_replays;    /* ops refused by a tombstone */
    int64_t cursor;
    int64_t hub_time;
    int wiped;                   /* the hub ordered a wipe and it was carried out */
    int rollback;                /* the hub saw this replica restored from an older copy and
                                    sent what repairs it (purges again, newer versions) */
    int hub_rewound;             /* the hub was restored from an earlier backup: re-synced from
                                  * the start, this replica and its pending edits kept */
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t requests;
    uint64_t connections;
    int64_t repaired;            /* stored versions that failed their integrity check, dropped
                                    and fetched again */
};

typedef void (*engine_progress_fn)(void *ctx, const struct engine_report *so_far, int more);

/* Sets the paging of a sync: ENGINE_PAGE_BUDGET, and the test overrides from the
 * environment: CMC_PAGE_BUDGET (bytes per page; tests use tiny pages), CMC_GROUP_BYTES and
 * CMC_GROUP_MS (how pages share a transaction; "none" for no time limit, so every run
 * commits at the same cursors). */
void engine_config_paging(struct engine_config *cfg);

int engine_enroll(store *s, const struct engine_config *cfg, const char *hub_url, const char *code,
                  const char *ca_file, const char *device_name);

/* One full sync round. A verified wipe order closes the store (*sp becomes NULL), destroys
 * the key slots and the replica's files, tells the hub, and returns CMC_ERR_WIPED. */
int engine_sync(store **sp, const struct engine_config *cfg, engine_progress_fn progress, void *ctx,
                struct engine_report *report);

/* Verifies one bundle (length, hash, signature with hub_pk, device id, cursor continuity)
 * and applies its ops with the new cursor in one transaction. *more is the bundle's "more"
 * flag. engine_sync calls it for each page; tests and the fault tools call it directly. */
int engine_apply_bundle(store *s, const struct engine_config *cfg, const uint8_t hub_pk[32],
                        const uint8_t device_uuid[16], const uint8_t *buf, size_t len, int *more,
                        struct engine_report *rep);

/* ---- the change feed (engine_watch.c) ------------------------------------------------- */

/* A device's held wait at the hub (GET /v1/wait, docs/PROTOCOL.md "Live"): the hub answers
 * when something for this device may have changed after the replica's committed cursor, or
 * after the hold with nothing. The watch keeps its own client, so consecutive waits share
 * one kept-alive connection; it reads the cursor and the lease before each wait and holds no
 * transaction (and no write lock) while it waits. One thread at a time, like the engine. */
typedef struct engine_watch engine_watch;

enum engine_wait_result {
    ENGINE_WAIT_CHANGED = 1,  /* sync now */
    ENGINE_WAIT_NOTHING,      /* the hold ran out: wait again */
    ENGINE_WAIT_UNSUPPORTED,  /* the hub has no change feed (an older hub: 404/405): poll */
};

/* stop (may be NULL): a flag a signal handler sets; a held wait then ends within about a
 * second (CMC_ERR_NET). */
int engine_watch_open(store *s, const volatile sig_atomic_t *stop, engine_watch **out);
void engine_watch_close(engine_watch *w); /* NULL is a no-op */
/* One wait of at most hold_s seconds (the hub caps it). CMC_ERR_NET when the connection
 * failed or was cut mid-wait (reconnect with backoff); other errors as a pull's. */
int engine_wait(engine_watch *w, store *s, unsigned hold_s, int *result);
/* HTTP bytes sent and received by the watch's waits so far. */
void engine_watch_bytes(const engine_watch *w, uint64_t *sent, uint64_t *received);

/* ---- conflicts ------------------------------------------------------------------------- */

struct engine_conflict {
    char plan_id[PLAN_ID_LEN + 1];
    char nhs_number[PLAN_NHS_LEN + 1];
    char path[160];
    char local[256];   /* the clinician's value, rendered */
    char remote[256];  /* the hub's value, rendered */
    char base[256];
    int64_t remote_version;
    char chosen[8];    /* "", "local" or "remote" */
};

int engine_conflicts(store *s, struct engine_conflict **out, size_t *n);
/* Settles one conflict; when the plan has none left, its edits are rebased onto the hub's
 * version as one pending edit and pushed at the next sync. */
int engine_resolve(store *s, const char *plan_key, const char *path, const char *keep);

#endif
