/*
 * engine_int.h - what the sync engine's stages share, private to agent/engine*.c: the keys of
 * the replica's sync state, the loaded enrollment, and each stage's entry point. engine_sync
 * (engine.c) runs the stages in order; each stage leaves the replica consistent on its own.
 *
 * Same rules as engine.h: one engine call at a time per data directory; errors are cmc codes
 * with a detail (cmc_errmsg) that never holds patient data. Functions that write several
 * rows say whether they open their own batch or expect the caller's.
 */
#ifndef CMC_ENGINE_INT_H
#define CMC_ENGINE_INT_H

#include "agent/engine.h"
#include "agent/store.h"
#include "agent/store_sync.h"
#include "crypto/cry.h"
#include "sync/bundle.h"
#include "sync/http.h"

#include <stddef.h>
#include <stdint.h>

#define ST_HUB_URL "hub_url"
#define ST_DEVICE_ID "device_id"
#define ST_DEVICE_SK "device_sk"
#define ST_HUB_PK "hub_pk"
#define ST_TLS_PIN "tls_pin"
#define ST_CA_FILE "ca_file"
#define ST_SCOPE "scope"
#define ST_DEVICE_ROLE "device_role"
#define ST_LEASE_DAYS "lease_days"
#define ST_CURSOR "cursor"
#define ST_LAST_SYNC "last_sync_at"
#define ST_HUB_TIME "hub_time"
#define ST_BULK_LOAD "bulk_load"   /* 1 while a multi-page snapshot loads without indexes */
#define ST_PURGE_ACKS "purge_acks" /* JSON array of plan ids purged here, not yet acknowledged */

/* What a sync needs from the enrollment, loaded from the replica's sync state. */
struct enrollment {
    char *hub_url;
    char device_id[PLAN_ID_LEN + 1];
    uint8_t device_uuid[BUNDLE_DEVICE_ID_BYTES];
    struct cry_secret *device_sk;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    char *tls_pin;
    char *ca_file;
};

/* The enrollment from the replica's sync state (CMC_ERR_STATE: not enrolled; CMC_ERR_TAMPERED:
 * damaged); engine_enrollment_free releases it (the device key is wiped). */
int engine_load_enrollment(store *s, struct enrollment *e);
void engine_enrollment_free(struct enrollment *e);

/* The transfer counters of the client so far, into the report. */
void engine_add_stats(struct engine_report *r, http_client *c);

/* ---- pull and apply (engine_pull.c, engine_apply.c) ---------------------------------- */

/* Pulls pages until the hub has no more (at most max_pages when nonzero), through the
 * download/decode pipeline, applying each. A verified wipe order sets rep->wiped. */
int engine_pull_pages(store *s, const struct engine_config *cfg, const struct enrollment *e,
                      http_client *client, unsigned max_pages, engine_progress_fn progress,
                      void *ctx, struct engine_report *rep);
/* The replica's committed cursor: 0 before its first bundle. */
int engine_stored_cursor(store *s, int64_t *cursor);
/* The hub's signature and this device's id, checked before anything is inflated or decoded. */
int engine_check_bundle(const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const uint8_t device_uuid[16],
                        const uint8_t *buf, size_t len, struct bundle_header *hdr);
/* Applies one verified, decoded page that continues from the replica's cursor (see
 * engine_apply.c for how pages share a batch through *in_batch); hub_pk, the key that
 * verified it, checks its plans' seal. */
int engine_apply_page(store *s, const struct engine_config *cfg,
                      const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const struct bundle_header *hdr,
                      const struct bundle_op *ops, size_t n_ops, int keep_open, int *in_batch,
                      struct engine_report *rep);

/* *wanted = 1 when a refused page or a failed seal marked the replica for the repair
 * (STORE_STATE_SEAL_REPAIR). */
int engine_repair_wanted(store *s, int *wanted);
/* When it is marked: drops every version that fails its seal and moves the cursor back to 0,
 * so this sync fetches every plan again. */
int engine_seal_repair(store *s, struct engine_report *rep);

/* ---- pending edits (engine_conflicts.c) ------------------------------------------------ */

/* The plan with every pending edit applied, and the base they were made on. */
int engine_local_view(store *s, const struct store_pending *pend, size_t n, struct plan *base,
                      struct plan *local);
/* Rebases the edits in `merged` (relative to `remote`) as one pending edit on `remote`. */
int engine_rebase_pending(store *s, const char *plan_id, const struct plan *remote,
                          const struct plan *merged);
/* A newer version `remote` met the unpushed edits of its plan: merge three ways. Call inside
 * a batch. */
int engine_merge_pending(store *s, const struct plan *remote, struct engine_report *rep);

/* ---- what the device sends (engine_push.c) --------------------------------------------- */

/* Registers the device's users (from the key-slot file at slots_path) with the hub, then
 * pushes every pending edit, each naming and signed by the user who made it. */
int engine_push_all(store *s, http_client *client, const char *slots_path, struct engine_report *rep);
/* Notes a purge for acknowledgement, in the purge's own transaction. */
int engine_note_purge(store *s, const char *plan_id);
int engine_send_purge_acks(store *s, http_client *client);
int engine_upload_audit(store *s, http_client *client);

#endif
