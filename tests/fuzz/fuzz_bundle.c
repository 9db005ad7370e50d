/*
 * fuzz_bundle - the bundle verifier and decoder (sync/bundle.h), the agent's first contact
 * with anything a hub (or whoever stands in the network) sends.
 *
 * The first input byte picks the path:
 *   0: the whole input is a bundle, verified with a fixed hub key (header parsing, caps,
 *      framing, hash and signature checks; random bytes stop at the hash or signature);
 *   1: the rest is a compressed body, framed under a header signed with that key, so every
 *      input reaches the inflater and the decoder (bombs, truncation, trailing bytes);
 *   2: the rest is a raw msgpack body, deflated and framed, so the msgpack and plan decoders
 *      see the fuzzer's bytes directly.
 * For 1 and 2 the op count and raw length come from the next bytes. Property: bundle_decode
 * either fails leaving nothing allocated, or yields exactly op_count ops.
 */
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/bundle.h"
#include "sync/plan.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static struct cry_secret *hub_sk;
static uint8_t hub_pk[CRY_SIGN_PK_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    if (cry_sign_keypair(hub_pk, &hub_sk) != CMC_OK)
        abort();
    return 0;
}

static void decode_signed(const uint8_t *body, size_t body_len, uint32_t op_count, uint32_t raw_len)
{
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    h.from_cursor = 1;
    h.to_cursor = 2;
    h.op_count = op_count;
    h.raw_len = raw_len;
    uint8_t *b = NULL;
    size_t len = 0;
    if (bundle_seal(&h, body, body_len, hub_sk, &b, &len) != CMC_OK)
        return;
    struct bundle_header got;
    if (bundle_verify(b, len, hub_pk, &got) == CMC_OK) {
        struct bundle_op *ops = NULL;
        size_t n = 0;
        int rc = bundle_decode(b, len, &got, &ops, &n);
        if (rc == CMC_OK && n != got.op_count)
            abort();
        if (rc != CMC_OK && (ops != NULL || n != 0))
            abort();
        bundle_ops_free(ops, n);
    }
    cmc_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        struct bundle_header h;
        if (bundle_verify(data, size, hub_pk, &h) == CMC_OK) {
            struct bundle_op *ops = NULL;
            size_t n = 0;
            if (bundle_decode(data, size, &h, &ops, &n) == CMC_OK)
                bundle_ops_free(ops, n);
        }
        return 0;
    }
    if (size < 4)
        return 0;
    uint32_t op_count = (uint32_t)data[0] << 8 | data[1];
    uint32_t raw_len = (uint32_t)data[2] << 8 | data[3];
    data += 4;
    size -= 4;
    if (mode == 1) {
        decode_signed(data, size, op_count, raw_len);
        return 0;
    }
    uLongf clen = compressBound((uLong)size);
    uint8_t *z = malloc(clen);
    if (z != NULL && compress2(z, &clen, data, (uLong)size, 6) == Z_OK)
        decode_signed(z, clen, op_count, (uint32_t)size);
    free(z);
    return 0;
}

/* Seeds: real bundles (a snapshot page of seeded plans, a delta, a purge, a wipe), in all
 * three forms. */
#include "hub/hub.h"
#include "sync/change.h"

static int seed_three(const char *dir, const char *name, const struct bundle_op *ops, size_t n)
{
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    h.from_cursor = 1;
    h.to_cursor = 2;
    uint8_t *b = NULL;
    size_t len = 0;
    if (bundle_build(&h, ops, n, hub_sk, &b, &len) != CMC_OK)
        return -1;
    int rc = 0;
    char file[128];
    uint8_t *buf = malloc(len + 5);
    struct bundle_header got;
    if (buf == NULL || bundle_verify(b, len, hub_pk, &got) != CMC_OK)
        rc = -1;
    if (rc == 0) {
        buf[0] = 0;
        memcpy(buf + 1, b, len);
        snprintf(file, sizeof file, "%s-whole", name);
        rc |= fuzz_write_seed(dir, file, buf, len + 1);
        buf[0] = 1;
        buf[1] = (uint8_t)(got.op_count >> 8);
        buf[2] = (uint8_t)got.op_count;
        buf[3] = (uint8_t)(got.raw_len >> 8);
        buf[4] = (uint8_t)got.raw_len;
        memcpy(buf + 5, b + BUNDLE_HEADER_BYTES, len - BUNDLE_HEADER_BYTES);
        snprintf(file, sizeof file, "%s-body", name);
        rc |= fuzz_write_seed(dir, file, buf, 5 + len - BUNDLE_HEADER_BYTES);
        /* the raw msgpack: inflate the body */
        uLongf raw = got.raw_len;
        uint8_t *m = malloc(raw + 5);
        if (m != NULL && uncompress(m + 5, &raw, b + BUNDLE_HEADER_BYTES, got.body_len) == Z_OK) {
            m[0] = 2;
            m[1] = buf[1];
            m[2] = buf[2];
            m[3] = buf[3];
            m[4] = buf[4];
            snprintf(file, sizeof file, "%s-raw", name);
            rc |= fuzz_write_seed(dir, file, m, raw + 5);
        }
        free(m);
    }
    free(buf);
    cmc_free(b);
    return rc;
}

int fuzz_make_seeds(const char *dir)
{
    struct bundle_op ops[4];
    int rc = 0;
    for (int i = 0; i < 4; i++)
        bundle_op_init(&ops[i]);
    int status = 0, extra = 0;
    for (int i = 0; i < 3; i++) {
        ops[i].kind = BUNDLE_OP_PUT;
        ops[i].seq = (uint64_t)i + 1;
        if (hub_seed_plan(1, i, &ops[i].plan, &status, &extra) != CMC_OK)
            return -1;
        snprintf(ops[i].plan_id, sizeof ops[i].plan_id, "%s", ops[i].plan.plan_id);
    }
    rc |= seed_three(dir, "puts", ops, 3);
    /* a delta: the third plan with a new prognosis */
    struct plan to;
    plan_init(&to);
    if (plan_copy(&to, &ops[2].plan) != CMC_OK)
        return -1;
    cmc_free(to.prognosis);
    to.prognosis = cmc_strdup("days");
    to.version = ops[2].plan.version + 1;
    ops[3].kind = BUNDLE_OP_DELTA;
    ops[3].seq = 9;
    ops[3].base_version = ops[2].plan.version;
    snprintf(ops[3].plan_id, sizeof ops[3].plan_id, "%s", to.plan_id);
    if (plan_change_diff(&ops[2].plan, &to, &ops[3].change) != CMC_OK)
        return -1;
    plan_free(&to);
    rc |= seed_three(dir, "delta", &ops[3], 1);
    struct bundle_op purge, wipe;
    bundle_op_init(&purge);
    purge.kind = BUNDLE_OP_PURGE;
    purge.seq = 10;
    snprintf(purge.plan_id, sizeof purge.plan_id, "%s", ops[0].plan_id);
    snprintf(purge.reason, sizeof purge.reason, "consent_withdrawn");
    rc |= seed_three(dir, "purge", &purge, 1);
    bundle_op_init(&wipe);
    wipe.kind = BUNDLE_OP_WIPE;
    wipe.seq = 11;
    rc |= seed_three(dir, "wipe", &wipe, 1);
    rc |= seed_three(dir, "empty", NULL, 0);
    for (int i = 0; i < 4; i++)
        bundle_op_clear(&ops[i]);
    return rc;
}
