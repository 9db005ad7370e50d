/*
 * bundle_build.c - packing bundle ops from structs: bundle_writer_add and bundle_build
 * (bundle.h). The hub packs its ops itself and adds them raw, so only tools and tests (the
 * hostile hub, fault harnesses, fuzzers) link this file.
 */
#include "sync/bundle.h"

#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/mp.h"

#include <string.h>

/* An op's array header (n elements in all) and its leading elements: kind, plan_id (put,
 * delta and purge), seq. */
static void op_head(struct mp_writer *w, uint32_t n, const struct bundle_op *op, size_t id_len)
{
    mp_write_array(w, n);
    mp_write_uint(w, (uint64_t)op->kind);
    if (op->kind == BUNDLE_OP_PUT || op->kind == BUNDLE_OP_DELTA || op->kind == BUNDLE_OP_PURGE)
        mp_write_str(w, op->plan_id, id_len);
    mp_write_uint(w, op->seq);
}

/* Packs one op as the msgpack array of bundle.h, refusing an op the agent would refuse. */
static int pack_op(const struct bundle_op *op, uint8_t **out, size_t *len)
{
    int rc = CMC_OK;
    int written = 0;
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    struct mp_writer w;
    size_t id_len = strnlen(op->plan_id, sizeof op->plan_id);

    *out = NULL;
    *len = 0;
    mp_writer_init(&w);
    switch (op->kind) {
    case BUNDLE_OP_PUT:
    case BUNDLE_OP_DELTA:
    case BUNDLE_OP_PURGE:
        if (!plan_uuid_valid_n(op->plan_id, id_len)) {
            rc = cmc_fail(CMC_ERR_INVALID, "bundle op: plan_id is not a canonical UUID");
            goto out;
        }
        break;
    case BUNDLE_OP_WIPE:
    case BUNDLE_OP_SEAL:
        break;
    case BUNDLE_OP_POLICY:
        if (op->lease_days < 0 || op->lease_days > BUNDLE_MAX_LEASE_DAYS) {
            rc = cmc_fail(CMC_ERR_INVALID, "bundle op: lease_days must be 0 to %d",
                          BUNDLE_MAX_LEASE_DAYS);
            goto out;
        }
        break;
    default:
        rc = cmc_fail(CMC_ERR_INVALID, "bundle op: unknown kind %d", (int)op->kind);
        goto out;
    }

    switch (op->kind) {
    case BUNDLE_OP_PUT:
        if (op->plan.plan_id == NULL || strcmp(op->plan.plan_id, op->plan_id) != 0) {
            rc = cmc_fail(CMC_ERR_INVALID, "bundle op: plan's plan_id differs from the op's");
            goto out;
        }
        if ((rc = plan_pack(&op->plan, &inner, &inner_len)) != CMC_OK)
            goto out;
        op_head(&w, 4, op, id_len);
        mp_write_raw(&w, inner, inner_len);
        break;
    case BUNDLE_OP_DELTA:
        if (op->base_version < 1) {
            rc = cmc_fail(CMC_ERR_INVALID, "bundle op: base_version must be at least 1");
            goto out;
        }
        if ((rc = plan_change_pack(&op->change, &inner, &inner_len)) != CMC_OK)
            goto out;
        op_head(&w, 5, op, id_len);
        mp_write_int(&w, op->base_version);
        mp_write_raw(&w, inner, inner_len);
        break;
    case BUNDLE_OP_PURGE: {
        size_t reason_len = strnlen(op->reason, sizeof op->reason);
        if (!bundle_reason_valid(op->reason, reason_len)) {
            rc = cmc_fail(CMC_ERR_INVALID, "bundle op: unknown purge reason");
            goto out;
        }
        op_head(&w, 4, op, id_len);
        mp_write_str(&w, op->reason, reason_len);
        break;
    }
    case BUNDLE_OP_WIPE:
        op_head(&w, 2, op, id_len);
        break;
    case BUNDLE_OP_SEAL:
        op_head(&w, 3, op, id_len);
        mp_write_bin(&w, op->seal_sig, CRY_SIG_BYTES);
        break;
    case BUNDLE_OP_POLICY:
        op_head(&w, 3, op, id_len);
        mp_write_int(&w, op->lease_days);
        break;
    }
    written = 1;
    if ((rc = mp_writer_finish(&w, out, len)) != CMC_OK)
        cmc_fail(rc, "bundle op: packing failed");
out:
    if (!written)
        mp_writer_discard(&w);
    cmc_free(inner);
    return rc;
}

int bundle_writer_add(bundle_writer *w, const struct bundle_op *op)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = pack_op(op, &packed, &len);
    if (rc == CMC_OK)
        rc = bundle_writer_add_raw(w, packed, len);
    cmc_free(packed);
    return rc;
}

/* The SEAL op of a page's plan ops (*sealed 0 when it has none, a seal of its own, or a delta
 * whose `plan` does not hold the version it makes): one leaf per op over plan_pack of its
 * plan - what a put carries, and what a device stores once it applies the delta. */
static int seal_puts(const struct bundle_op *ops, size_t n_ops, const struct cry_secret *hub_sk,
                     struct bundle_op *seal, int *sealed)
{
    size_t n = 0;
    int rc = CMC_OK;
    uint8_t *leaves = NULL;

    *sealed = 0;
    for (size_t i = 0; i < n_ops; i++) {
        if (ops[i].kind == BUNDLE_OP_SEAL ||
            (ops[i].kind == BUNDLE_OP_DELTA && ops[i].plan.plan_id == NULL))
            return CMC_OK;
        n += ops[i].kind == BUNDLE_OP_PUT || ops[i].kind == BUNDLE_OP_DELTA;
    }
    if (n == 0 || hub_sk == NULL)
        return CMC_OK;
    if ((leaves = cmc_malloc(n * CRY_HASH_BYTES)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
    n = 0;
    for (size_t i = 0; rc == CMC_OK && i < n_ops; i++) {
        uint8_t *body = NULL;
        size_t body_len = 0;
        if (ops[i].kind != BUNDLE_OP_PUT && ops[i].kind != BUNDLE_OP_DELTA)
            continue;
        if ((rc = plan_pack(&ops[i].plan, &body, &body_len)) == CMC_OK)
            cry_merkle_leaf(leaves + CRY_HASH_BYTES * n++, ops[i].plan_id, ops[i].plan.version,
                            body, body_len);
        cmc_free(body);
    }
    bundle_op_init(seal);
    seal->kind = BUNDLE_OP_SEAL;
    if (rc == CMC_OK)
        rc = bundle_seal_sign(leaves, n, hub_sk, seal->seal_sig);
    *sealed = rc == CMC_OK;
    cmc_free(leaves);
    return rc;
}

int bundle_build(const struct bundle_header *hdr, const struct bundle_op *ops, size_t n_ops,
                 const struct cry_secret *hub_sk, uint8_t **out, size_t *len)
{
    int rc, sealed = 0;
    bundle_writer *w = NULL;
    struct bundle_op seal;

    *out = NULL;
    *len = 0;
    if ((rc = seal_puts(ops, n_ops, hub_sk, &seal, &sealed)) != CMC_OK)
        return rc;
    if ((rc = bundle_writer_new(&w)) != CMC_OK)
        return rc;
    for (size_t i = 0; i < n_ops; i++)
        if ((rc = bundle_writer_add(w, &ops[i])) != CMC_OK)
            goto out;
    if (sealed && (rc = bundle_writer_add(w, &seal)) != CMC_OK)
        goto out;
    rc = bundle_writer_finish(w, hdr, hub_sk, out, len);
out:
    bundle_writer_free(w);
    return rc;
}
