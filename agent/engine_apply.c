/*
 * engine_apply.c - one verified, decoded page applied to the replica with its new cursor, in
 * one transaction (or a group of pages in one), and the signed wipe order carried out.
 */
#include "agent/engine_int.h"

#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/trace.h"
#include "sync/change.h"
#include "sync/rules.h"

#include <stdio.h>
#include <string.h>

/* One plan version a page gives: the bytes the device stores (a put's as received, a delta's
 * rebuilt on the version held), the plan, and its seal once the page's root checks. */
struct page_version {
    const struct plan *plan; /* the op's plan, or `rebuilt` */
    struct plan rebuilt;     /* a delta's result */
    const uint8_t *body;
    uint8_t *owned;          /* a delta's bytes */
    size_t len;
    uint8_t *seal;
    size_t seal_len;
};

/* What applying one bundle needs to know once, not per op. */
struct apply_ctx {
    int has_pending; /* the replica holds pending edits: puts may need a merge */
    int snapshot;    /* a snapshot page: the plans are new here, nothing older to prune */
};

static void versions_free(struct page_version *pv, size_t n)
{
    if (pv == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        plan_free(&pv[i].rebuilt);
        cmc_free(pv[i].owned);
        cmc_free(pv[i].seal);
    }
    cmc_free(pv);
}

/* A delta's version: the change applied to the version held, checked and encoded. */
static int rebuild_delta(store *s, const struct bundle_op *op, struct page_version *v)
{
    int rc = store_sync_version_get(s, op->plan_id, op->base_version, &v->rebuilt);
    int withheld = 0;
    if (rc == CMC_ERR_NOT_FOUND && store_sync_base_withheld(s, op->plan_id, &withheld) == CMC_OK &&
        withheld)
        /* the base is a draft kept under the clinicians' key: the next sync fetches every plan
         * whole (engine_seal_repair), which needs no base */
        return cmc_fail(CMC_ERR_TAMPERED, "a change arrived against a draft this user cannot open; "
                                          "every plan is fetched again whole");
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a change against a version this device does not hold");
    if (rc != CMC_OK)
        return rc;
    rc = plan_change_apply(&v->rebuilt, &op->change);
    if (rc == CMC_OK && strcmp(v->rebuilt.plan_id, op->plan_id) != 0)
        rc = cmc_fail(CMC_ERR_PROTOCOL, "a change names another plan");
    if (rc == CMC_OK)
        rc = plan_validate(&v->rebuilt, PLAN_CHECK_DRAFT);
    if (rc == CMC_OK)
        rc = plan_pack(&v->rebuilt, &v->owned, &v->len);
    v->plan = &v->rebuilt;
    v->body = v->owned;
    return rc;
}

/* The page's plan versions before anything is stored (one op per plan in a page, so a delta's
 * base is not one of this page's own puts). *out holds one entry per op. */
static int prepare_versions(store *s, const struct bundle_op *ops, size_t n_ops,
                            struct page_version **out)
{
    int rc = CMC_OK;
    struct page_version *pv = cmc_calloc(n_ops ? n_ops : 1, sizeof *pv);
    *out = pv;
    if (pv == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "sync: out of memory");
    for (size_t i = 0; i < n_ops; i++)
        plan_init(&pv[i].rebuilt);
    for (size_t i = 0; rc == CMC_OK && i < n_ops; i++) {
        if (ops[i].kind == BUNDLE_OP_PUT) {
            pv[i].plan = &ops[i].plan;
            pv[i].body = ops[i].packed;
            pv[i].len = ops[i].packed_len;
        } else if (ops[i].kind == BUNDLE_OP_DELTA) {
            rc = rebuild_delta(s, &ops[i], &pv[i]);
        }
    }
    return rc;
}

/* The page's plan versions against its SEAL op: the root of their leaves (crypto/merkle.h,
 * over the exact bytes to be stored) must carry the hub's signature, with the key that
 * verified the bundle (the one this device pinned at enrollment); then each version gets its
 * proof. A page of plans without a seal
 * is refused: every version must prove its origin. */
static int seal_versions(const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const struct bundle_op *ops,
                         size_t n_ops, struct page_version *pv)
{
    uint8_t root[CRY_HASH_BYTES];
    struct cry_merkle_tree t;
    uint8_t *leaves = NULL;
    size_t n = 0, k = 0;
    int rc;

    for (size_t i = 0; i < n_ops; i++)
        n += pv[i].plan != NULL;
    if (n == 0)
        return CMC_OK;
    if (ops[n_ops - 1].kind != BUNDLE_OP_SEAL)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent plans without its seal; the page was "
                                          "refused (update the hub)");
    if ((leaves = cmc_malloc(n * CRY_HASH_BYTES)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "sync: out of memory");
    for (size_t i = 0; i < n_ops; i++)
        if (pv[i].plan != NULL)
            cry_merkle_leaf(leaves + CRY_HASH_BYTES * k++, pv[i].plan->plan_id,
                            pv[i].plan->version, pv[i].body, pv[i].len);
    rc = bundle_seal_verify(leaves, n, ops[n_ops - 1].seal_sig, hub_pk, root);
    if (rc == CMC_OK && (rc = cry_merkle_tree_build(leaves, n, &t)) == CMC_OK) {
        k = 0;
        for (size_t i = 0; rc == CMC_OK && i < n_ops; i++)
            if (pv[i].plan != NULL)
                rc = store_seal_blob(&t, k++, ops[n_ops - 1].seal_sig, &pv[i].seal,
                                     &pv[i].seal_len);
        cry_merkle_tree_free(&t);
    }
    cmc_free(leaves);
    return rc;
}

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

/* Stores one version with its seal (the bytes its seal covers), then the follow-ups. */
static int apply_put(store *s, const struct apply_ctx *ax, const struct page_version *v,
                     uint64_t seq, struct engine_report *rep)
{
    const struct plan *p = v->plan;
    int rc = store_put_sealed(s, p, v->body, v->len, v->seal, v->seal_len, (int64_t)seq);
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
int engine_apply_page(store *s, const struct engine_config *cfg,
                      const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const struct bundle_header *hdr,
                      const struct bundle_op *ops, size_t n_ops, int keep_open, int *in_batch,
                      struct engine_report *rep)
{
    int64_t cursor = 0;
    int purged = 0;
    struct page_version *pv = NULL;
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
    if ((rc = prepare_versions(s, ops, n_ops, &pv)) == CMC_OK)
        rc = seal_versions(hub_pk, ops, n_ops, pv);
    for (size_t i = 0; rc == CMC_OK && i < n_ops; i++) {
        const struct bundle_op *op = &ops[i];
        if (i == n_ops / 2)
            plat_crash_point("apply:mid-ops");
        switch (op->kind) {
        case BUNDLE_OP_PUT:
            rc = apply_put(s, &ax, &pv[i], op->seq, rep);
            rep->puts++;
            break;
        case BUNDLE_OP_DELTA:
            rc = apply_put(s, &ax, &pv[i], op->seq, rep);
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
        case BUNDLE_OP_SEAL:
            break;
        }
    }
    versions_free(pv, n_ops);
    pv = NULL;
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
    versions_free(pv, n_ops);
    if (rc != CMC_OK && *in_batch) {
        store_batch_rollback(s);
        *in_batch = 0;
    }
    if (rc == CMC_ERR_TAMPERED && store_state_set(s, STORE_STATE_SEAL_REPAIR, "1") != CMC_OK)
        cmc_err_clear(); /* the refusal stands; the next verify asks again */
    return rc;
}

static void note_bad(const char *plan_id, int64_t version, void *ctx)
{
    (void)ctx;
    plat_log(PLAT_LOG_WARN, "sync: plan %s version %lld failed its integrity check; dropped and "
             "fetched again", plan_id, (long long)version);
}

int engine_repair_wanted(store *s, int *wanted)
{
    char *flag = NULL;
    int rc = store_state_find(s, STORE_STATE_SEAL_REPAIR, &flag);
    *wanted = rc == CMC_OK && flag != NULL && strcmp(flag, "1") == 0;
    cmc_free(flag);
    return rc;
}

int engine_seal_repair(store *s, struct engine_report *rep)
{
    int64_t bad = 0;
    int wanted = 0;
    int rc = engine_repair_wanted(s, &wanted);
    if (rc != CMC_OK || !wanted)
        return rc;
    /* Versions that fail their seal go; the cursor goes back to the start, so the hub sends
     * every plan of this device's view again as a whole put (it treats the pull as a restored
     * replica), and the flag clears with them in one transaction. */
    if ((rc = store_batch_begin(s)) != CMC_OK)
        return rc;
    rc = store_seal_scan(s, 1, note_bad, NULL, &bad);
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_CURSOR, 0);
    if (rc == CMC_OK)
        rc = store_state_set(s, STORE_STATE_SEAL_REPAIR, "0");
    if (rc == CMC_OK)
        rc = store_batch_commit(s);
    else
        store_batch_rollback(s);
    if (rc == CMC_OK) {
        rep->repaired = bad;
        plat_log(PLAT_LOG_WARN, "sync: repairing the replica: %lld version(s) failed their "
                 "integrity check; every plan is fetched again", (long long)bad);
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
        rc = engine_apply_page(s, cfg, hub_pk, &hdr, ops, n_ops, 0, &in_batch, rep);
    plat_phase_end(PLAT_PHASE_APPLY, t_apply);
    if (rc == CMC_OK)
        *more = (hdr.flags & BUNDLE_FLAG_MORE) != 0;
    bundle_ops_free(ops, n_ops);
    return rc;
}

