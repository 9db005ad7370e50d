/*
 * engine_apply.c - one verified, decoded page applied to the replica with its new cursor, in
 * one transaction (or a group of pages in one), and the signed wipe order carried out.
 */
#include "agent/engine_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/trace.h"
#include "sync/change.h"
#include "sync/rules.h"

#include <stdio.h>
#include <string.h>

/* What applying one bundle needs to know once, not per op. */
struct apply_ctx {
    int has_pending; /* the replica holds pending edits: puts may need a merge */
    int snapshot;    /* a snapshot page: the plans are new here, nothing older to prune */
};

/* The clinical rules checked again on the device (sync/rules.h): a plan that breaks one is
 * kept and its card says which rule (agent/card.c reads the plan again at lookup time), so
 * here it is only logged, by rule id, never by content. So is a plan holding fields of a
 * later edition than this agent's. */
static void apply_check(const struct plan *p)
{
    struct rules_report rep;
    char today[21];
    plat_format_time(plat_wall_now(), today);
    today[10] = '\0';
    if (rules_check(p, today, &rep) != CMC_OK) {
        cmc_err_clear();
        if (rep.n > 0)
            plat_log(PLAT_LOG_WARN, "sync: a plan breaks clinical rule %s (%zu rule(s) in all);"
                     " it is kept and its card warns", rep.v[0].rule, rep.n);
    }
    if (plan_edition(p) > PLAN_EDITION_CURRENT)
        plat_log(PLAT_LOG_WARN, "sync: a plan holds content this agent cannot show; its card "
                                "says so - update the agent");
}

/* `packed`: the plan's bytes as received (a put op), or NULL (a plan rebuilt from a delta). */
static int apply_put(store *s, const struct apply_ctx *ax, const struct plan *p,
                     const uint8_t *packed, size_t packed_len, uint64_t seq,
                     struct engine_report *rep)
{
    int rc = packed != NULL ? store_put_packed(s, p, packed, packed_len, (int64_t)seq)
                            : store_put_version(s, p, (int64_t)seq);
    if (rc == CMC_ERR_DENIED)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a plan that is not approved to a device that holds "
                                          "published plans only; the bundle was refused");
    if (rc == CMC_ERR_STATE) {
        /* a tombstone: this plan was purged here after that change; an old bundle replayed */
        rep->skipped_replays++;
        return CMC_OK;
    }
    if (rc == CMC_OK)
        apply_check(p);
    if (rc == CMC_OK && ax->has_pending)
        rc = engine_merge_pending(s, p, rep);
    if (rc == CMC_OK && !ax->snapshot)
        rc = store_sync_prune(s, p->plan_id);
    return rc;
}

static int apply_delta(store *s, const struct apply_ctx *ax, const struct bundle_op *op,
                       struct engine_report *rep)
{
    struct plan p;
    int rc = store_sync_version_get(s, op->plan_id, op->base_version, &p);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a change against a version this device does not hold");
    if (rc != CMC_OK)
        return rc;
    rc = plan_change_apply(&p, &op->change);
    if (rc == CMC_OK && strcmp(p.plan_id, op->plan_id) != 0)
        rc = cmc_fail(CMC_ERR_PROTOCOL, "a change names another plan");
    if (rc == CMC_OK)
        rc = apply_put(s, ax, &p, NULL, 0, op->seq, rep);
    plan_free(&p);
    return rc;
}

/* Carries out a signed wipe order: crypto-erase first (the replica is unreadable from that
 * moment), then a marker so every later command says the device was wiped. */
static int wipe_now(const struct engine_config *cfg)
{
    int rc = cry_slots_destroy(cfg->slots_path);
    char marker[4200];
    if (plat_path_join(marker, sizeof marker, cfg->dir, "WIPED") == CMC_OK) {
        char when[21];
        plat_format_time(plat_wall_now(), when);
        plat_write_atomic(marker, when, strlen(when));
    }
    return rc;
}

/* The replica's committed cursor: 0 before its first bundle. */
int engine_stored_cursor(store *s, int64_t *cursor)
{
    int rc = store_state_get_int(s, ST_CURSOR, cursor);
    if (rc == CMC_ERR_NOT_FOUND) {
        *cursor = 0;
        cmc_err_clear();
        rc = CMC_OK;
    }
    return rc;
}

/* Applies one verified, decoded page that continues from the replica's cursor. The page's
 * ops and the new cursor go into the open batch (begun here when *in_batch is 0); the batch
 * is committed unless `keep_open` and the page carried no purge, in which case it stays open
 * for the next page (*in_batch 1). On an error the batch is rolled back. */
int engine_apply_page(store *s, const struct engine_config *cfg, const struct bundle_header *hdr,
                      const struct bundle_op *ops, size_t n_ops, int keep_open, int *in_batch,
                      struct engine_report *rep)
{
    int64_t cursor = 0;
    int purged = 0;
    int rc = engine_stored_cursor(s, &cursor);
    if (rc != CMC_OK)
        goto out;
    if (hdr->from_cursor != (uint64_t)cursor || hdr->to_cursor < hdr->from_cursor) {
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the bundle does not continue from this device's cursor (%lld)",
                      (long long)cursor);
        goto out;
    }
    if (hdr->flags & BUNDLE_FLAG_ROLLBACK) {
        rep->rollback = 1;
        plat_log(PLAT_LOG_WARN, "sync: the hub reports this replica was restored from an older copy; repairing");
    }
    for (size_t i = 0; i < n_ops; i++)
        if (ops[i].kind == BUNDLE_OP_WIPE) {
            rc = wipe_now(cfg);
            rep->wiped = 1;
            if (rc == CMC_OK)
                rc = cmc_fail(CMC_ERR_WIPED, "the hub ordered this device wiped: its keys are destroyed");
            goto out;
        }
    if (!*in_batch) {
        if ((rc = store_batch_begin(s)) != CMC_OK)
            goto out;
        *in_batch = 1;
    }
    /* A snapshot (the hub marks its first page) that spans pages loads without secondary
     * indexes until its last page, which builds them again. The state survives an
     * interruption; store_open rebuilds the indexes meanwhile. */
    int64_t bulk = 0;
    if (store_state_get_int(s, ST_BULK_LOAD, &bulk) != CMC_OK) {
        bulk = 0;
        cmc_err_clear();
    }
    struct apply_ctx ax = { .snapshot = (hdr->flags & BUNDLE_FLAG_SNAPSHOT) != 0 || bulk };
    int bulk_continues = ax.snapshot && (hdr->flags & BUNDLE_FLAG_MORE);
    if ((rc = store_sync_has_pending(s, &ax.has_pending)) != CMC_OK)
        goto out;
    if (bulk_continues && (rc = store_bulk_begin(s)) == CMC_OK)
        rc = store_state_set_int(s, ST_BULK_LOAD, 1);
    if (rc != CMC_OK)
        goto out;
    plat_crash_point("apply:begin");
    for (size_t i = 0; rc == CMC_OK && i < n_ops; i++) {
        const struct bundle_op *op = &ops[i];
        if (i == n_ops / 2)
            plat_crash_point("apply:mid-ops");
        switch (op->kind) {
        case BUNDLE_OP_PUT:
            rc = apply_put(s, &ax, &op->plan, op->packed, op->packed_len, op->seq, rep);
            rep->puts++;
            break;
        case BUNDLE_OP_DELTA:
            rc = apply_delta(s, &ax, op, rep);
            rep->deltas++;
            break;
        case BUNDLE_OP_PURGE: {
            int discarded = 0;
            rc = store_purge(s, op->plan_id, op->reason, (int64_t)op->seq, &discarded);
            if (rc == CMC_OK)
                rc = store_merge_delete(s, op->plan_id);
            if (rc == CMC_OK)
                rc = engine_note_purge(s, op->plan_id);
            rep->purges++;
            rep->discarded_edits += (uint64_t)discarded;
            purged = 1;
            break;
        }
        case BUNDLE_OP_POLICY:
            /* the hub's current offline lease, signed like everything else in the bundle */
            rc = store_state_set_int(s, "lease_days", op->lease_days);
            break;
        case BUNDLE_OP_WIPE:
            break;
        }
    }
    if (rc == CMC_OK && !bulk_continues && bulk) {
        rc = store_bulk_end(s);
        if (rc == CMC_OK)
            rc = store_state_set_int(s, ST_BULK_LOAD, 0);
    }
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_CURSOR, (int64_t)hdr->to_cursor);
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_HUB_TIME, hdr->hub_time);
    if (rc == CMC_OK && keep_open && !purged)
        goto done;
    plat_crash_point("apply:before-commit");
    if (rc == CMC_OK) {
        rc = store_batch_commit(s);
        *in_batch = 0;
    }
    plat_crash_point("apply:after-commit");
    if (rc == CMC_OK && purged)
        rc = store_checkpoint(s); /* purged pages leave the WAL too (promise 3) */
done:
    if (rc == CMC_OK) {
        rep->pages++;
        rep->cursor = (int64_t)hdr->to_cursor;
        rep->hub_time = hdr->hub_time;
    }
out:
    if (rc != CMC_OK && *in_batch) {
        store_batch_rollback(s);
        *in_batch = 0;
    }
    return rc;
}

/* The hub's signature and this device's id, checked before anything is inflated or
 * decoded (promise 4). */
int engine_check_bundle(const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const uint8_t device_uuid[16],
                        const uint8_t *buf, size_t len, struct bundle_header *hdr)
{
    int rc = bundle_verify(buf, len, hub_pk, hdr);
    if (rc == CMC_OK && memcmp(hdr->device_id, device_uuid, BUNDLE_DEVICE_ID_BYTES) != 0)
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a bundle addressed to another device");
    return rc;
}

int engine_apply_bundle(store *s, const struct engine_config *cfg, const uint8_t hub_pk[CRY_SIGN_PK_BYTES],
                        const uint8_t device_uuid[16], const uint8_t *buf, size_t len, int *more,
                        struct engine_report *rep)
{
    struct bundle_op *ops = NULL;
    size_t n_ops = 0;
    struct bundle_header hdr;
    int in_batch = 0;
    *more = 0;
    int rc = engine_check_bundle(hub_pk, device_uuid, buf, len, &hdr);
    if (rc == CMC_OK)
        rc = bundle_decode(buf, len, &hdr, &ops, &n_ops);
    uint64_t t_apply = plat_phase_begin();
    if (rc == CMC_OK)
        rc = engine_apply_page(s, cfg, &hdr, ops, n_ops, 0, &in_batch, rep);
    plat_phase_end(PLAT_PHASE_APPLY, t_apply);
    if (rc == CMC_OK)
        *more = (hdr.flags & BUNDLE_FLAG_MORE) != 0;
    bundle_ops_free(ops, n_ops);
    return rc;
}

