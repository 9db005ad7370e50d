/*
 * test_sync_bundle.c - signed bundles: what the hub builds the agent can verify and decode
 * exactly; anything altered, cut, padded, oversized or hostile is refused before it is
 * trusted (DESIGN promise 4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/plan.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "tests/support/bundle_fixture.h"
#include "tests/support/example_plan_model.h"

static const char change_json[] =
    "{\"set\": {\"prognosis\": \"months\"},"
    " \"add\": {\"allergies\": [{\"id\": \"a9\", \"substance\": \"Latex\", \"severity\": \"mild\"}]}}";

static const char *plan_a = "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11";
static const char *plan_b = "11111111-2222-4333-8444-555555555555";

static int setup(void **state)
{
    static struct tst_bundle_fixture f;
    tst_bundle_fixture_init(&f, 0xa0, BUNDLE_FLAG_MORE | BUNDLE_FLAG_SNAPSHOT, 5, 0x0102030405060708ull);
    *state = &f;
    return 0;
}

/* Four ops, one of each kind; the caller clears them. */
static void make_ops(struct bundle_op ops[4])
{
    for (int i = 0; i < 4; i++)
        bundle_op_init(&ops[i]);
    ops[0].kind = BUNDLE_OP_PUT;
    strcpy(ops[0].plan_id, plan_a);
    ops[0].seq = 6;
    tst_example_plan_parse(&ops[0].plan);
    ops[1].kind = BUNDLE_OP_DELTA;
    strcpy(ops[1].plan_id, plan_a);
    ops[1].seq = 7;
    ops[1].base_version = 3;
    assert_int_equal(plan_change_from_json(change_json, sizeof change_json - 1, &ops[1].change),
                     CMC_OK);
    ops[2].kind = BUNDLE_OP_PURGE;
    strcpy(ops[2].plan_id, plan_b);
    ops[2].seq = 8;
    strcpy(ops[2].reason, "consent_withdrawn");
    ops[3].kind = BUNDLE_OP_WIPE;
    ops[3].seq = 9;
}

static void clear_ops(struct bundle_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bundle_op_clear(&ops[i]);
}

/* A small bundle of a purge and a wipe (no plan codec involved). */
static void small_bundle(struct tst_bundle_fixture *f, uint8_t **buf, size_t *len)
{
    struct bundle_op ops[2];
    bundle_op_init(&ops[0]);
    bundle_op_init(&ops[1]);
    ops[0].kind = BUNDLE_OP_PURGE;
    strcpy(ops[0].plan_id, plan_b);
    ops[0].seq = 6;
    strcpy(ops[0].reason, "left_scope");
    ops[1].kind = BUNDLE_OP_WIPE;
    ops[1].seq = 7;
    assert_int_equal(bundle_build(&f->hdr, ops, 2, f->sk, buf, len), CMC_OK);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* Writes a header by the documented byte layout (independently of bundle.c) and signs it,
 * so tests can make bundles the builder would refuse to make. Caller frees *out. */
static void craft(struct tst_bundle_fixture *f, uint32_t op_count, uint32_t raw_len, const uint8_t *body,
                  size_t body_len, uint8_t **out, size_t *out_len)
{
    uint8_t *b = cmc_malloc(BUNDLE_HEADER_BYTES + body_len);
    assert_non_null(b);
    memcpy(b, "CMCB", 4);
    put_be(b + 4, BUNDLE_PROTOCOL, 2);
    put_be(b + 6, 0, 2);
    memcpy(b + 8, f->hdr.device_id, 16);
    put_be(b + 24, 0, 8);
    put_be(b + 32, 1, 8);
    put_be(b + 40, op_count, 4);
    put_be(b + 44, body_len, 4);
    put_be(b + 48, raw_len, 4);
    cry_hash(b + 52, body, body_len);
    put_be(b + 84, 1800000000, 8);
    assert_int_equal(cry_sign(f->sk, b, 92, b + 92), CMC_OK);
    memcpy(b + BUNDLE_HEADER_BYTES, body, body_len);
    *out = b;
    *out_len = BUNDLE_HEADER_BYTES + body_len;
}

/* Crafts a signed bundle around `body`, checks that its signature verifies, and decodes it. */
static int decode_crafted(struct tst_bundle_fixture *f, uint32_t op_count, uint32_t raw_len, const uint8_t *body,
                          size_t body_len, struct bundle_op **got, size_t *n)
{
    struct bundle_header h;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    craft(f, op_count, raw_len, body, body_len, &buf, &len);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    rc = bundle_decode(buf, len, &h, got, n);
    cmc_free(buf);
    return rc;
}

static size_t zip(const uint8_t *raw, size_t raw_len, uint8_t *out, size_t cap)
{
    uLongf n = cap;
    assert_int_equal(compress2(out, &n, raw, raw_len, 6), Z_OK);
    return n;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_round_trip_every_op_kind(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_op ops[4];
    struct bundle_header h;
    struct bundle_op *got = NULL;
    size_t n = 0, len = 0;
    uint8_t *buf = NULL;

    make_ops(ops);
    assert_int_equal(bundle_build(&f->hdr, ops, 4, f->sk, &buf, &len), CMC_OK);

    /* the documented layout, big-endian */
    assert_memory_equal(buf, "CMCB", 4);
    assert_int_equal(buf[4], 0);
    assert_int_equal(buf[5], BUNDLE_PROTOCOL);
    assert_int_equal(buf[7], BUNDLE_FLAG_MORE | BUNDLE_FLAG_SNAPSHOT);
    assert_memory_equal(buf + 8, f->hdr.device_id, 16);
    assert_int_equal(be64(buf + 24), 5);
    assert_int_equal(be64(buf + 32), 0x0102030405060708ull);
    assert_int_equal(be32(buf + 40), 4);
    assert_int_equal(be32(buf + 44), len - BUNDLE_HEADER_BYTES);
    assert_int_equal(be64(buf + 84), 1800000000);
    /* an RFC 1950 zlib stream header: deflate, a window of at most 32 KiB, a valid check */
    assert_int_equal(buf[BUNDLE_HEADER_BYTES] & 0x0f, 8);
    assert_true((buf[BUNDLE_HEADER_BYTES] >> 4) <= 7);
    assert_int_equal((buf[BUNDLE_HEADER_BYTES] * 256 + buf[BUNDLE_HEADER_BYTES + 1]) % 31, 0);

    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    assert_int_equal(h.protocol, BUNDLE_PROTOCOL);
    assert_int_equal(h.flags, BUNDLE_FLAG_MORE | BUNDLE_FLAG_SNAPSHOT);
    assert_memory_equal(h.device_id, f->hdr.device_id, 16);
    assert_int_equal(h.from_cursor, 5);
    assert_int_equal(h.to_cursor, 0x0102030405060708ull);
    assert_int_equal(h.op_count, 4);
    assert_int_equal(h.body_len, len - BUNDLE_HEADER_BYTES);
    assert_int_equal(h.hub_time, 1800000000);

    assert_int_equal(bundle_decode(buf, len, &h, &got, &n), CMC_OK);
    assert_int_equal(n, 4);
    assert_int_equal(got[0].kind, BUNDLE_OP_PUT);
    assert_string_equal(got[0].plan_id, plan_a);
    assert_int_equal(got[0].seq, 6);
    assert_true(plan_equal(&got[0].plan, &ops[0].plan));

    assert_int_equal(got[1].kind, BUNDLE_OP_DELTA);
    assert_string_equal(got[1].plan_id, plan_a);
    assert_int_equal(got[1].seq, 7);
    assert_int_equal(got[1].base_version, 3);
    uint8_t *p1 = NULL, *p2 = NULL;
    size_t l1 = 0, l2 = 0;
    assert_int_equal(plan_change_pack(&ops[1].change, &p1, &l1), CMC_OK);
    assert_int_equal(plan_change_pack(&got[1].change, &p2, &l2), CMC_OK);
    assert_int_equal(l1, l2);
    assert_memory_equal(p1, p2, l1);
    cmc_free(p1);
    cmc_free(p2);
    /* the decoded delta does what the original does */
    struct plan a, b;
    plan_init(&a);
    plan_init(&b);
    assert_int_equal(plan_copy(&a, &ops[0].plan), CMC_OK);
    assert_int_equal(plan_copy(&b, &ops[0].plan), CMC_OK);
    assert_int_equal(plan_change_apply(&a, &ops[1].change), CMC_OK);
    assert_int_equal(plan_change_apply(&b, &got[1].change), CMC_OK);
    assert_true(plan_equal(&a, &b));
    assert_string_equal(b.prognosis, "months");
    plan_free(&a);
    plan_free(&b);

    assert_int_equal(got[2].kind, BUNDLE_OP_PURGE);
    assert_string_equal(got[2].plan_id, plan_b);
    assert_int_equal(got[2].seq, 8);
    assert_string_equal(got[2].reason, "consent_withdrawn");

    assert_int_equal(got[3].kind, BUNDLE_OP_WIPE);
    assert_int_equal(got[3].seq, 9);
    assert_string_equal(got[3].plan_id, "");

    bundle_ops_free(got, n);
    clear_ops(ops, 4);
    cmc_free(buf);
}

static void test_empty_poll_bundle(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h, in = f->hdr;
    struct bundle_op *got = NULL;
    size_t n = 99, len = 0;
    uint8_t *buf = NULL;

    in.flags = 0;
    in.from_cursor = in.to_cursor = 42;
    assert_int_equal(bundle_build(&in, NULL, 0, f->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    assert_int_equal(h.op_count, 0);
    assert_int_equal(h.raw_len, 1);
    assert_int_equal(bundle_decode(buf, len, &h, &got, &n), CMC_OK);
    assert_int_equal(n, 0);
    bundle_ops_free(got, n);
    cmc_free(buf);
}

static void test_every_flipped_byte_fails(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h;
    uint8_t *buf = NULL;
    size_t len = 0;

    small_bundle(f, &buf, &len);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    for (size_t i = 0; i < len; i++) {
        static const uint8_t masks[] = { 0x01, 0x80, 0xff };
        for (size_t m = 0; m < sizeof masks; m++) {
            buf[i] ^= masks[m];
            int rc = bundle_verify(buf, len, f->pk, &h);
            if (rc == CMC_OK)
                fail_msg("flipping byte %zu with 0x%02x was not detected", i, masks[m]);
            assert_true(rc == CMC_ERR_TAMPERED || rc == CMC_ERR_CORRUPT ||
                        rc == CMC_ERR_PROTOCOL || rc == CMC_ERR_TOO_LARGE);
            buf[i] ^= masks[m];
        }
    }
    /* the header layout fixes which check catches what */
    buf[0] ^= 1;
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_CORRUPT);
    buf[0] ^= 1;
    buf[5] ^= 1;
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_PROTOCOL);
    buf[5] ^= 1;
    buf[43] ^= 1;
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_TAMPERED);
    buf[43] ^= 1;
    buf[len - 1] ^= 1;
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_TAMPERED);
    buf[len - 1] ^= 1;
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    cmc_free(buf);
}

static void test_truncation_and_trailing_bytes_fail(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h;
    uint8_t *buf = NULL;
    size_t len = 0;

    small_bundle(f, &buf, &len);
    for (size_t l = 0; l < len; l++)
        assert_int_not_equal(bundle_verify(buf, l, f->pk, &h), CMC_OK);
    assert_int_equal(bundle_verify(buf, BUNDLE_HEADER_BYTES - 1, f->pk, &h), CMC_ERR_CORRUPT);
    assert_int_equal(bundle_verify(buf, len - 1, f->pk, &h), CMC_ERR_CORRUPT);
    assert_int_equal(bundle_verify(NULL, 0, f->pk, &h), CMC_ERR_CORRUPT);

    uint8_t *longer = cmc_malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_int_equal(bundle_verify(longer, len + 1, f->pk, &h), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "body_len"));
    cmc_free(longer);
    cmc_free(buf);
}

static void test_wrong_key_fails(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h;
    uint8_t other_pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *other_sk = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    small_bundle(f, &buf, &len);
    assert_int_equal(cry_sign_keypair(other_pk, &other_sk), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, other_pk, &h), CMC_ERR_TAMPERED);
    assert_non_null(strstr(cmc_errmsg(), "signature"));
    /* a bundle re-signed by another key, with a consistent hash, still fails */
    struct bundle_header rh;
    assert_int_equal(bundle_verify(buf, len, f->pk, &rh), CMC_OK);
    uint8_t *resigned = NULL;
    size_t rlen = 0;
    assert_int_equal(bundle_seal(&rh, buf + BUNDLE_HEADER_BYTES, rh.body_len, other_sk,
                                 &resigned, &rlen),
                     CMC_OK);
    assert_int_equal(bundle_verify(resigned, rlen, f->pk, &h), CMC_ERR_TAMPERED);
    assert_int_equal(bundle_verify(resigned, rlen, other_pk, &h), CMC_OK);
    cmc_free(resigned);
    cry_secret_free(other_sk);
    cmc_free(buf);
}

static void test_zlib_bomb_refused(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_op *got = NULL;
    size_t n = 0;

    /* A valid op followed by 16 MiB of padding: the header claims only the op's bytes. */
    size_t raw_len = 16u * 1024 * 1024;
    uint8_t *raw = cmc_calloc(1, raw_len);
    assert_non_null(raw);
    raw[0] = 0x91; /* [ [4, 9] ] */
    raw[1] = 0x92;
    raw[2] = 0x04;
    raw[3] = 0x09;
    size_t cap = compressBound(raw_len);
    uint8_t *z = cmc_malloc(cap);
    assert_non_null(z);
    size_t zlen = zip(raw, raw_len, z, cap);
    assert_true(zlen < 64 * 1024);

    assert_int_equal(decode_crafted(f, 1, 4, z, zlen, &got, &n), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "past raw_len"));
    assert_null(got);
    assert_int_equal(n, 0);

    /* The same body declared at its real size decodes up to the msgpack check: the padding
     * is trailing bytes. */
    assert_int_equal(decode_crafted(f, 1, (uint32_t)raw_len, z, zlen, &got, &n), CMC_ERR_CORRUPT);
    assert_null(got);

    /* And a body that inflates to less than raw_len. */
    zlen = zip(raw, 4, z, cap);
    assert_int_equal(decode_crafted(f, 1, 5, z, zlen, &got, &n), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "less than"));
    /* Exactly right decodes. */
    assert_int_equal(decode_crafted(f, 1, 4, z, zlen, &got, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].kind, BUNDLE_OP_WIPE);
    assert_int_equal(got[0].seq, 9);
    bundle_ops_free(got, n);
    cmc_free(z);
    cmc_free(raw);
}

static void test_caps_refused_before_inflating(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h;
    struct bundle_op *got = NULL;
    size_t n = 0, len = 0;
    uint8_t *buf = NULL;
    const uint8_t raw[] = { 0x91, 0x92, 0x04, 0x09 };
    uint8_t z[64];
    size_t zlen = zip(raw, sizeof raw, z, sizeof z);

    craft(f, 1, BUNDLE_MAX_RAW + 1, z, zlen, &buf, &len);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_TOO_LARGE);
    assert_non_null(strstr(cmc_errmsg(), "raw length"));
    cmc_free(buf);
    craft(f, BUNDLE_MAX_OPS + 1, 4, z, zlen, &buf, &len);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_ERR_TOO_LARGE);
    assert_non_null(strstr(cmc_errmsg(), "op count"));

    /* bundle_decode re-checks the caps of the header it is handed, before allocating */
    cmc_free(buf);
    craft(f, 1, 4, z, zlen, &buf, &len);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    struct bundle_header huge = h;
    huge.raw_len = UINT32_MAX;
    cmc_alloc_fail_after(0, 1);
    int rc = bundle_decode(buf, len, &huge, &got, &n);
    cmc_alloc_fail_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_TOO_LARGE);
    huge = h;
    huge.op_count = UINT32_MAX;
    assert_int_equal(bundle_decode(buf, len, &huge, &got, &n), CMC_ERR_TOO_LARGE);
    /* an op count the raw length cannot hold is refused without inflating too */
    huge = h;
    huge.op_count = 2;
    cmc_alloc_fail_after(0, 1);
    rc = bundle_decode(buf, len, &huge, &got, &n);
    cmc_alloc_fail_after(-1, 0);
    assert_int_equal(rc, CMC_ERR_CORRUPT);
    assert_null(got);
    cmc_free(buf);

    /* the builder refuses to make what the agent would refuse */
    struct bundle_header in = f->hdr;
    in.flags = 0x80;
    assert_int_equal(bundle_build(&in, NULL, 0, f->sk, &buf, &len), CMC_ERR_INVALID);
    assert_null(buf);
}

struct hostile {
    const char *why;
    uint32_t op_count;
    size_t len;
    const uint8_t *raw;
};

#define H(why, n, ...)                                                                   \
    {                                                                                    \
        why, n, sizeof((const uint8_t[]){ __VA_ARGS__ }), (const uint8_t[]){ __VA_ARGS__ } \
    }

/* plan_b as msgpack: 36 bytes is past fixstr's 31, so str8. */
#define UUID_B 0xd9, 0x24, '1', '1', '1', '1', '1', '1', '1', '1', '-', '2', '2', '2', '2', '-', \
               '4', '3', '3', '3', '-', '8', '4', '4', '4', '-', '5', '5', '5', '5', '5', '5',  \
               '5', '5', '5', '5', '5', '5'

static void test_hostile_msgpack_refused(void **state)
{
    struct tst_bundle_fixture *f = *state;
    const struct hostile cases[] = {
        H("not an array", 1, 0x82, 0x01, 0x02, 0x03, 0x04),
        H("array32 claiming 4 billion ops", 1, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x92, 0x04, 0x09),
        H("op count differs from the header", 2, 0x91, 0x92, 0x04, 0x09, 0x00, 0x00, 0x00, 0x00),
        H("trailing bytes after the ops", 1, 0x91, 0x92, 0x04, 0x09, 0xc0),
        H("unknown op kind", 1, 0x91, 0x92, 0x09, 0x09),
        H("op kind of the wrong type", 1, 0x91, 0x92, 0xa1, 'x', 0x09),
        H("wipe with an extra element", 1, 0x91, 0x93, 0x04, 0x09, 0x09),
        H("negative seq", 1, 0x91, 0x92, 0x04, 0xff),
        H("op not an array", 1, 0x91, 0x04, 0x09, 0x09),
        H("reserved byte 0xc1", 1, 0x91, 0x92, 0x04, 0xc1),
        H("purge with an unknown reason", 1, 0x91, 0x94, 0x03, UUID_B, 0x01, 0xa3, 'b', 'a', 'd'),
        H("purge with a short plan id", 1, 0x91, 0x94, 0x03, 0xa3, 'a', 'b', 'c', 0x01, 0xaa,
          'l', 'e', 'f', 't', '_', 's', 'c', 'o', 'p', 'e'),
        H("put whose plan claims a huge map", 1, 0x91, 0x94, 0x01, UUID_B, 0x01, 0xdf, 0xff,
          0xff, 0xff, 0xff, 0x01),
        H("put whose plan is a string", 1, 0x91, 0x94, 0x01, UUID_B, 0x01, 0xa1, 'x'),
        H("put whose plan is an empty map", 1, 0x91, 0x94, 0x01, UUID_B, 0x01, 0x80),
        H("delta with base version 0", 1, 0x91, 0x95, 0x02, UUID_B, 0x01, 0x00, 0x90),
        H("delta whose change is a map", 1, 0x91, 0x95, 0x02, UUID_B, 0x01, 0x01, 0x80),
        H("delta whose change claims a huge array", 1, 0x91, 0x95, 0x02, UUID_B, 0x01, 0x01,
          0xdd, 0x7f, 0xff, 0xff, 0xff),
        H("deep nesting", 1, 0x91, 0x94, 0x01, UUID_B, 0x01, 0x81, 0x01, 0x91, 0x91, 0x91, 0x91,
          0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
          0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
          0x90),
        H("truncated inside an op", 1, 0x91, 0x94, 0x03, UUID_B, 0x01),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bundle_header h;
        struct bundle_op *got = (struct bundle_op *)1;
        size_t n = 7, len = 0;
        uint8_t *buf = NULL;
        uint8_t z[512];
        size_t zlen = zip(cases[i].raw, cases[i].len, z, sizeof z);
        craft(f, cases[i].op_count, (uint32_t)cases[i].len, z, zlen, &buf, &len);
        assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
        int rc = bundle_decode(buf, len, &h, &got, &n);
        if (rc == CMC_OK)
            fail_msg("hostile body accepted: %s", cases[i].why);
        assert_true(rc == CMC_ERR_CORRUPT || rc == CMC_ERR_TOO_LARGE || rc == CMC_ERR_INVALID);
        assert_null(got);
        assert_int_equal(n, 0);
        cmc_free(buf);
    }
}

/* The policy op carries the lease to the device in every bundle, and the rollback flag marks
 * an answer that repairs a restored replica: both survive a round trip exactly, the lease
 * range 0..3650 is enforced on both sides, and a flag bit beyond the known three is still
 * refused. */
static void test_policy_op_and_rollback_flag(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_header h, in = f->hdr;
    struct bundle_op ops[3], bad;
    struct bundle_op *got = NULL;
    size_t n = 0, len = 0;
    uint8_t *buf = NULL;
    const int64_t days[] = {0, 14, BUNDLE_MAX_LEASE_DAYS};

    for (size_t i = 0; i < 3; i++) {
        bundle_op_init(&ops[i]);
        ops[i].kind = BUNDLE_OP_POLICY;
        ops[i].seq = 40 + i;
        ops[i].lease_days = days[i];
    }
    in.flags = BUNDLE_FLAG_ROLLBACK | BUNDLE_FLAG_MORE;
    assert_int_equal(bundle_build(&in, ops, 3, f->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    assert_int_equal(h.flags, BUNDLE_FLAG_ROLLBACK | BUNDLE_FLAG_MORE);
    assert_int_equal(bundle_decode(buf, len, &h, &got, &n), CMC_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(got[i].kind, BUNDLE_OP_POLICY);
        assert_int_equal(got[i].seq, 40 + i);
        assert_int_equal(got[i].lease_days, days[i]);
        assert_string_equal(got[i].plan_id, "");
    }
    bundle_ops_free(got, n);
    cmc_free(buf);
    clear_ops(ops, 3);

    /* the builder refuses what the decoder would refuse */
    bundle_op_init(&bad);
    bad.kind = BUNDLE_OP_POLICY;
    bad.lease_days = BUNDLE_MAX_LEASE_DAYS + 1;
    buf = NULL;
    assert_int_equal(bundle_build(&f->hdr, &bad, 1, f->sk, &buf, &len), CMC_ERR_INVALID);
    assert_null(buf);
    bad.lease_days = -1;
    assert_int_equal(bundle_build(&f->hdr, &bad, 1, f->sk, &buf, &len), CMC_ERR_INVALID);
    assert_null(buf);

    /* hostile policy ops, crafted by hand */
    static const struct {
        const char *why;
        uint8_t raw[8];
        size_t len;
    } cases[] = {
        {"lease past ten years", {0x91, 0x93, 0x05, 0x01, 0xcd, 0x0e, 0x43}, 7},
        {"negative lease", {0x91, 0x93, 0x05, 0x01, 0xff}, 5},
        {"policy without its lease", {0x91, 0x92, 0x05, 0x01}, 4},
        {"policy with an extra element", {0x91, 0x94, 0x05, 0x01, 0x0e, 0x00}, 6},
        {"lease as a string", {0x91, 0x93, 0x05, 0x01, 0xa2, '1', '4'}, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t z[128];
        size_t zlen = zip(cases[i].raw, cases[i].len, z, sizeof z);
        craft(f, 1, (uint32_t)cases[i].len, z, zlen, &buf, &len);
        assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
        got = (struct bundle_op *)1;
        n = 7;
        if (bundle_decode(buf, len, &h, &got, &n) == CMC_OK)
            fail_msg("hostile policy op accepted: %s", cases[i].why);
        assert_null(got);
        assert_int_equal(n, 0);
        cmc_free(buf);
    }
    /* the exact upper bound crafted by hand decodes */
    {
        const uint8_t raw[] = {0x91, 0x93, 0x05, 0x01, 0xcd, 0x0e, 0x42};
        uint8_t z[128];
        size_t zlen = zip(raw, sizeof raw, z, sizeof z);
        assert_int_equal(decode_crafted(f, 1, sizeof raw, z, zlen, &got, &n), CMC_OK);
        assert_int_equal(got[0].lease_days, 3650);
        bundle_ops_free(got, n);
    }

    /* a flag bit beyond MORE, SNAPSHOT, ROLLBACK, EDITION2 and BROTLI is still a newer hub's */
    in = f->hdr;
    in.flags = 0x20;
    buf = NULL;
    assert_int_equal(bundle_build(&in, NULL, 0, f->sk, &buf, &len), CMC_ERR_INVALID);
    assert_null(buf);
}

static void test_bad_zlib_refused(void **state)
{
    struct tst_bundle_fixture *f = *state;
    const uint8_t raw[] = { 0x91, 0x92, 0x04, 0x09 };
    uint8_t z[64];
    size_t zlen = zip(raw, sizeof raw, z, sizeof z);
    struct bundle_op *got = NULL;
    size_t n = 0;

    /* cut short */
    assert_int_equal(decode_crafted(f, 1, sizeof raw, z, zlen - 3, &got, &n), CMC_ERR_CORRUPT);
    /* bytes after the stream */
    z[zlen] = 0x00;
    assert_int_equal(decode_crafted(f, 1, sizeof raw, z, zlen + 1, &got, &n), CMC_ERR_CORRUPT);
    /* not zlib at all (raw msgpack) */
    assert_int_equal(decode_crafted(f, 1, sizeof raw, raw, sizeof raw, &got, &n), CMC_ERR_CORRUPT);
    assert_null(got);
}

static void test_writer_tracks_size_for_paging(void **state)
{
    struct tst_bundle_fixture *f = *state;
    bundle_writer *w = NULL;
    struct bundle_op op;
    struct bundle_header h;
    uint8_t *buf = NULL;
    size_t len = 0;

    assert_int_equal(bundle_writer_new(&w), CMC_OK);
    assert_int_equal(bundle_writer_count(w), 0);
    assert_int_equal(bundle_writer_raw_size(w), 1);
    bundle_op_init(&op);
    op.kind = BUNDLE_OP_PURGE;
    strcpy(op.plan_id, plan_b);
    strcpy(op.reason, "not_shared");
    /* cut a page at a 1000-byte budget, as the hub does */
    while (bundle_writer_raw_size(w) < 1000) {
        op.seq++;
        assert_int_equal(bundle_writer_add(w, &op), CMC_OK);
    }
    uint32_t count = bundle_writer_count(w);
    size_t raw = bundle_writer_raw_size(w);
    assert_true(count > 16); /* array header grew from one byte to three */
    /* a pre-packed op: [3, plan_b, 1000, "left_scope"] */
    const uint8_t packed[] = { 0x94, 0x03, UUID_B, 0xcd, 0x03, 0xe8, 0xaa, 'l', 'e', 'f', 't',
                               '_', 's', 'c', 'o', 'p', 'e' };
    assert_int_equal(bundle_writer_add_raw(w, packed, sizeof packed), CMC_OK);
    assert_int_equal(bundle_writer_raw_size(w), raw + sizeof packed);
    assert_int_equal(bundle_writer_add_raw(w, packed, sizeof packed - 1), CMC_ERR_INVALID);
    assert_int_equal(bundle_writer_add_raw(w, packed + 1, sizeof packed - 1), CMC_ERR_INVALID);
    assert_int_equal(bundle_writer_count(w), count + 1);
    /* a malformed op is refused and leaves the writer as it was */
    op.kind = BUNDLE_OP_PURGE;
    strcpy(op.reason, "because");
    assert_int_equal(bundle_writer_add(w, &op), CMC_ERR_INVALID);
    strcpy(op.reason, "not_shared");
    strcpy(op.plan_id, "not-a-uuid");
    assert_int_equal(bundle_writer_add(w, &op), CMC_ERR_INVALID);
    assert_int_equal(bundle_writer_count(w), count + 1);

    assert_int_equal(bundle_writer_finish(w, &f->hdr, f->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    assert_int_equal(h.raw_len, raw + sizeof packed);
    assert_int_equal(h.op_count, count + 1);
    struct bundle_op *got = NULL;
    size_t n = 0;
    assert_int_equal(bundle_decode(buf, len, &h, &got, &n), CMC_OK);
    assert_int_equal(n, count + 1);
    assert_int_equal(got[n - 1].seq, 1000);
    assert_string_equal(got[n - 1].reason, "left_scope");
    assert_int_equal(got[0].seq, 1);
    bundle_ops_free(got, n);
    bundle_writer_free(w);
    cmc_free(buf);
}

static void test_out_of_memory_build_and_decode(void **state)
{
    struct tst_bundle_fixture *f = *state;
    struct bundle_op ops[4];
    uint8_t *buf = NULL;
    size_t len = 0;
    struct bundle_header h;
    int rc;
    long i;

    make_ops(ops);
    for (i = 0;; i++) {
        cmc_alloc_fail_after(i, 1);
        rc = bundle_build(&f->hdr, ops, 4, f->sk, &buf, &len);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(buf);
        assert_true(i < 10000);
    }
    assert_true(i > 2);
    assert_int_equal(bundle_verify(buf, len, f->pk, &h), CMC_OK);
    for (i = 0;; i++) {
        struct bundle_op *got = NULL;
        size_t n = 0;
        cmc_alloc_fail_after(i, 1);
        rc = bundle_decode(buf, len, &h, &got, &n);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            assert_int_equal(n, 4);
            bundle_ops_free(got, n);
            break;
        }
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(got);
        assert_true(i < 10000);
    }
    assert_true(i > 2);
    clear_ops(ops, 4);
    cmc_free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_op_kind),
        cmocka_unit_test(test_empty_poll_bundle),
        cmocka_unit_test(test_every_flipped_byte_fails),
        cmocka_unit_test(test_truncation_and_trailing_bytes_fail),
        cmocka_unit_test(test_wrong_key_fails),
        cmocka_unit_test(test_zlib_bomb_refused),
        cmocka_unit_test(test_caps_refused_before_inflating),
        cmocka_unit_test(test_hostile_msgpack_refused),
        cmocka_unit_test(test_bad_zlib_refused),
        cmocka_unit_test(test_policy_op_and_rollback_flag),
        cmocka_unit_test(test_writer_tracks_size_for_paging),
        cmocka_unit_test(test_out_of_memory_build_and_decode),
    };
    return cmocka_run_group_tests(tests, setup, tst_bundle_fixture_teardown);
}
