/*
 * test_sync_zbody.c - Brotli bundle bodies (sync/zbody.h, BUNDLE_FLAG_BROTLI): a bundle the hub
 * builds for a device that offered the codec verifies and decodes to the same ops as its zlib
 * twin, and is smaller for repetitive plans; a body that is cut, padded, garbled or that
 * decompresses to more or fewer bytes than its header says is refused; the flag is covered by
 * the signature; the pull query carries the offer and a device that makes none gets zlib.
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
#include "sync/plan.h"
#include "sync/wire.h"
#include "sync/zbody.h"

#include <stdio.h>
#include <string.h>

#include "tests/support/bundle_fixture.h"
#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"

static int setup(void **state)
{
    static struct tst_bundle_fixture f;
    tst_bundle_fixture_init(&f, 0x30, BUNDLE_FLAG_SNAPSHOT, 0, 40);
    *state = &f;
    return 0;
}

/* `n` puts of the example plan under different ids (as a snapshot page carries them). */
static struct bundle_op *put_ops(size_t n)
{
    struct bundle_op *ops = cmc_calloc(n, sizeof *ops);
    assert_non_null(ops);
    for (size_t i = 0; i < n; i++) {
        bundle_op_init(&ops[i]);
        ops[i].kind = BUNDLE_OP_PUT;
        ops[i].seq = i + 1;
        tst_example_plan_parse(&ops[i].plan);
        snprintf(ops[i].plan_id, sizeof ops[i].plan_id, "7c1f4e0a-3a51-4c55-9f3b-%012zx", i);
        cmc_free(ops[i].plan.plan_id);
        ops[i].plan.plan_id = cmc_strdup(ops[i].plan_id);
        assert_non_null(ops[i].plan.plan_id);
    }
    return ops;
}

static void free_ops(struct bundle_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bundle_op_clear(&ops[i]);
    cmc_free(ops);
}

static void test_brotli_bundle_round_trip(void **state)
{
    struct tst_bundle_fixture *f = *state;
    enum { N = 40 };
    struct bundle_op *ops = put_ops(N);
    struct bundle_header in = f->hdr, h;
    uint8_t *zbuf = NULL, *bbuf = NULL;
    size_t zlen = 0, blen = 0, n = 0;
    struct bundle_op *got = NULL;

    assert_int_equal(bundle_build(&in, ops, N, f->sk, &zbuf, &zlen), CMC_OK);
    in.flags |= BUNDLE_FLAG_BROTLI | BUNDLE_FLAG_EDITION2;
    assert_int_equal(bundle_build(&in, ops, N, f->sk, &bbuf, &blen), CMC_OK);
    /* Brotli carries the same ops in fewer bytes than zlib */
    assert_true(blen < zlen);
    assert_int_equal(bundle_verify(bbuf, blen, f->pk, &h), CMC_OK);
    assert_int_equal(h.flags, BUNDLE_FLAG_SNAPSHOT | BUNDLE_FLAG_BROTLI | BUNDLE_FLAG_EDITION2);
    assert_int_equal(bundle_edition(&h), 2);
    assert_int_equal(bundle_decode(bbuf, blen, &h, &got, &n), CMC_OK);
    assert_int_equal(n, N + 1); /* bundle_build ends a page of plans with their seal */
    assert_int_equal(got[N].kind, BUNDLE_OP_SEAL);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(got[i].kind, BUNDLE_OP_PUT);
        assert_string_equal(got[i].plan_id, ops[i].plan_id);
        assert_true(plan_equal(&got[i].plan, &ops[i].plan));
    }
    bundle_ops_free(got, n);

    /* the flag is signed: a zlib bundle relabelled as Brotli (or back) fails its signature */
    bbuf[7] ^= BUNDLE_FLAG_BROTLI;
    assert_int_equal(bundle_verify(bbuf, blen, f->pk, &h), CMC_ERR_TAMPERED);
    zbuf[7] ^= BUNDLE_FLAG_BROTLI;
    assert_int_equal(bundle_verify(zbuf, zlen, f->pk, &h), CMC_ERR_TAMPERED);
    cmc_free(zbuf);
    cmc_free(bbuf);
    free_ops(ops, N);
}

static void test_bad_brotli_refused(void **state)
{
    (void)state;
    static uint8_t raw[20000];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)("care plan text "[i % 15] + (i / 4000));
    uint8_t *body = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(zbody_pack(raw, sizeof raw, 7, &body, &len), CMC_OK);
    assert_true(len > 8 && len < sizeof raw / 4);
    const uint8_t *b = body + 7;

    assert_int_equal(zbody_unpack(b, (uint32_t)len, sizeof raw, &out), CMC_OK);
    assert_memory_equal(out, raw, sizeof raw);
    cmc_free(out);
    out = NULL;
    /* cut short */
    assert_int_equal(zbody_unpack(b, (uint32_t)len - 3, sizeof raw, &out), CMC_ERR_CORRUPT);
    assert_null(out);
    /* more than the header's raw_len: refused without producing more than raw_len + 1 */
    assert_int_equal(zbody_unpack(b, (uint32_t)len, sizeof raw - 1, &out), CMC_ERR_CORRUPT);
    assert_int_equal(zbody_unpack(b, (uint32_t)len, 100, &out), CMC_ERR_CORRUPT);
    assert_non_null(strstr(cmc_errmsg(), "past raw_len"));
    assert_null(out);
    /* fewer */
    assert_int_equal(zbody_unpack(b, (uint32_t)len, sizeof raw + 1, &out), CMC_ERR_CORRUPT);
    /* bytes after the stream */
    uint8_t *padded = cmc_malloc(len + 1);
    assert_non_null(padded);
    memcpy(padded, b, len);
    padded[len] = 0;
    assert_int_equal(zbody_unpack(padded, (uint32_t)len + 1, sizeof raw, &out), CMC_ERR_CORRUPT);
    /* garbage */
    memset(padded, 0xff, len);
    assert_int_equal(zbody_unpack(padded, (uint32_t)len, sizeof raw, &out), CMC_ERR_CORRUPT);
    assert_null(out);
    cmc_free(padded);
    cmc_free(body);
}

/* Every allocation the codec makes through cmc_malloc can fail (the compressor's state is
 * libc's: zbody.h): each failure is CMC_ERR_NOMEM with nothing handed back (the hardened pass
 * runs this under valgrind and LeakSanitizer for leaks). */
static void test_out_of_memory(void **state)
{
    (void)state;
    static uint8_t raw[70000];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)("end of life care "[i % 17] ^ (i / 9000));
    uint8_t *body = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(zbody_pack(raw, sizeof raw, 0, &body, &len), CMC_OK);
    int packed = 0, unpacked = 0;
    for (long n = 0; n < 200 && !(packed && unpacked); n++) {
        uint8_t *b = NULL;
        size_t bl = 0;
        cmc_alloc_fail_after(n, 1);
        int rc = zbody_pack(raw, sizeof raw, 0, &b, &bl);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            packed = 1;
            assert_int_equal(bl, len);
            cmc_free(b);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(b);
        }
        cmc_alloc_fail_after(n, 1);
        rc = zbody_unpack(body, (uint32_t)len, sizeof raw, &out);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            unpacked = 1;
            assert_memory_equal(out, raw, sizeof raw);
            cmc_free(out);
            out = NULL;
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(out);
        }
    }
    assert_true(packed && unpacked);
    cmc_free(body);
}

static void test_pull_query_offers_the_codec(void **state)
{
    (void)state;
    char path[200];
    struct wire_pull_query q = { .cursor = 9, .applied = 9, .schema = 2, .codecs = WIRE_CODEC_BROTLI };
    struct wire_pull_query back;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    assert_non_null(strstr(path, "&z=1"));
    assert_int_equal(wire_pull_query_decode(strchr(path, '?') + 1, &back), CMC_OK);
    assert_int_equal(back.codecs, WIRE_CODEC_BROTLI);
    assert_int_equal(back.schema, 2);
    /* a device that offers nothing (every earlier one) asks for zlib */
    assert_int_equal(wire_pull_query_decode("cursor=4&schema=2", &back), CMC_OK);
    assert_int_equal(back.codecs, 0);
    q.codecs = 0;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    assert_null(strstr(path, "z="));
}

TST_MAIN(NULL, setup, tst_bundle_fixture_teardown, test_brotli_bundle_round_trip, test_bad_brotli_refused,
         test_out_of_memory, test_pull_query_offers_the_codec)
