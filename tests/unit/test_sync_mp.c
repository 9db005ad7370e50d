/* msgpack reader and writer: every int encoding, hostile counts and lengths, depth, OOM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "sync/mp.h"
#include "tests/support/run.h"

#include <stdint.h>
#include <string.h>

static uint8_t *pack_ints(size_t *len)
{
    struct mp_writer w;
    uint8_t *out = NULL;
    mp_writer_init(&w);
    mp_write_array(&w, 10);
    mp_write_uint(&w, 5);
    mp_write_uint(&w, 200);
    mp_write_uint(&w, 70000);
    mp_write_uint(&w, UINT64_MAX);
    mp_write_int(&w, -1);
    mp_write_int(&w, -200);
    mp_write_int(&w, INT64_MIN);
    mp_write_bool(&w, 1);
    mp_write_nil(&w);
    mp_write_cstr(&w, "hello");
    assert_int_equal(mp_writer_finish(&w, &out, len), CMC_OK);
    return out;
}

static void test_round_trip_values(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *buf = pack_ints(&len);
    struct mp_reader r;
    uint32_t n = 0, slen = 0;
    uint64_t u = 0;
    int64_t i = 0;
    int b = 0;
    const char *s = NULL;
    mp_reader_init(&r, buf, len, 4);
    assert_int_equal(mp_peek(&r), MP_T_ARRAY);
    assert_int_equal(mp_read_array(&r, 10, &n), CMC_OK);
    assert_int_equal(n, 10);
    assert_int_equal(mp_read_uint(&r, &u), CMC_OK);
    assert_int_equal(u, 5);
    assert_int_equal(mp_read_int(&r, &i), CMC_OK); /* uint16 read as signed */
    assert_int_equal(i, 200);
    assert_int_equal(mp_read_uint(&r, &u), CMC_OK);
    assert_int_equal(u, 70000);
    assert_int_equal(mp_read_int(&r, &i), CMC_ERR_CORRUPT); /* does not fit, not consumed */
    assert_int_equal(mp_read_uint(&r, &u), CMC_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(mp_read_uint(&r, &u), CMC_ERR_CORRUPT); /* negative, not consumed */
    assert_int_equal(mp_read_int(&r, &i), CMC_OK);
    assert_int_equal(i, -1);
    assert_int_equal(mp_read_int(&r, &i), CMC_OK);
    assert_int_equal(i, -200);
    assert_int_equal(mp_read_int(&r, &i), CMC_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(mp_read_nil(&r), 0);
    assert_int_equal(mp_read_bool(&r, &b), CMC_OK);
    assert_int_equal(b, 1);
    assert_int_equal(mp_read_nil(&r), 1);
    assert_int_equal(mp_read_str(&r, 4, &s, &slen), CMC_ERR_TOO_LARGE);
    assert_int_equal(mp_read_str(&r, 5, &s, &slen), CMC_OK);
    assert_int_equal(slen, 5);
    assert_memory_equal(s, "hello", 5);
    mp_leave(&r);
    assert_int_equal(r.depth, 0);
    assert_int_equal(mp_expect_end(&r), CMC_OK);
    cmc_free(buf);
}

/* Signed encodings of non-negative values are accepted where an unsigned one is expected. */
static void test_every_int_encoding(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[9];
        size_t len;
        int negative;
        uint64_t mag;
    } cases[] = {
        {{0x07}, 1, 0, 7},
        {{0xff}, 1, 1, 1},
        {{0xe0}, 1, 1, 32},
        {{0xcc, 0xff}, 2, 0, 255},
        {{0xcd, 0x01, 0x00}, 3, 0, 256},
        {{0xce, 0x00, 0x01, 0x00, 0x00}, 5, 0, 65536},
        {{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 9, 0, 4294967296ull},
        {{0xd0, 0x7f}, 2, 0, 127},
        {{0xd0, 0x80}, 2, 1, 128},
        {{0xd1, 0xff, 0xfe}, 3, 1, 2},
        {{0xd2, 0x00, 0x00, 0x00, 0x05}, 5, 0, 5},
        {{0xd2, 0x80, 0x00, 0x00, 0x00}, 5, 1, 2147483648ull},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, 1, 9223372036854775808ull},
        {{0xd3, 0, 0, 0, 0, 0, 0, 0, 9}, 9, 0, 9},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct mp_reader r;
        uint64_t u = 0;
        int64_t i = 0;
        mp_reader_init(&r, cases[c].bytes, cases[c].len, 1);
        if (cases[c].negative) {
            assert_int_equal(mp_read_uint(&r, &u), CMC_ERR_CORRUPT);
            assert_int_equal(mp_read_int(&r, &i), CMC_OK);
            assert_true((uint64_t)0 - (uint64_t)i == cases[c].mag);
        } else {
            assert_int_equal(mp_read_uint(&r, &u), CMC_OK);
            assert_true(u == cases[c].mag);
        }
        assert_int_equal(mp_expect_end(&r), CMC_OK);
        /* Every truncation of the encoding is refused. */
        for (size_t cut = 0; cut < cases[c].len; cut++) {
            mp_reader_init(&r, cases[c].bytes, cut, 1);
            assert_int_not_equal(mp_read_int(&r, &i), CMC_OK);
            mp_reader_init(&r, cases[c].bytes, cut, 1);
            assert_int_not_equal(mp_skip(&r), CMC_OK);
        }
    }
}

static void test_hostile_counts_refused_in_constant_time(void **state)
{
    (void)state;
    static const uint8_t arr32[10] = {0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5};
    static const uint8_t map32[10] = {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5};
    static const uint8_t map16[6] = {0xde, 0x00, 0x03, 1, 2, 3}; /* 3 pairs need 6 bytes */
    static const uint8_t str32[8] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const uint8_t bin8[4] = {0xc4, 0x05, 1, 2};
    static const uint8_t ext32[6] = {0xc9, 0xff, 0xff, 0xff, 0xf0, 1};
    struct mp_reader r;
    uint32_t n = 99, len = 0;
    const char *s;
    const uint8_t *b;
    mp_reader_init(&r, arr32, sizeof arr32, 8);
    assert_int_equal(mp_read_array(&r, UINT32_MAX, &n), CMC_ERR_CORRUPT);
    assert_int_equal(n, 99);
    assert_int_equal(r.depth, 0);
    assert_int_equal(mp_skip(&r), CMC_ERR_CORRUPT);
    mp_reader_init(&r, map32, sizeof map32, 8);
    assert_int_equal(mp_read_map(&r, UINT32_MAX, &n), CMC_ERR_CORRUPT);
    mp_reader_init(&r, map16, sizeof map16, 8);
    assert_int_equal(mp_read_map(&r, UINT32_MAX, &n), CMC_ERR_CORRUPT);
    mp_reader_init(&r, str32, sizeof str32, 8);
    assert_int_equal(mp_read_str(&r, UINT32_MAX, &s, &len), CMC_ERR_CORRUPT);
    assert_int_equal(mp_skip(&r), CMC_ERR_CORRUPT);
    mp_reader_init(&r, bin8, sizeof bin8, 8);
    assert_int_equal(mp_read_bin(&r, UINT32_MAX, &b, &len), CMC_ERR_CORRUPT);
    mp_reader_init(&r, ext32, sizeof ext32, 8);
    assert_int_equal(mp_skip(&r), CMC_ERR_CORRUPT);
    /* Honest counts over the caller's cap are TOO_LARGE. */
    static const uint8_t arr3[4] = {0x93, 1, 2, 3};
    mp_reader_init(&r, arr3, sizeof arr3, 8);
    assert_int_equal(mp_read_array(&r, 2, &n), CMC_ERR_TOO_LARGE);
    assert_int_equal(mp_read_array(&r, 3, &n), CMC_OK);
    assert_int_equal(n, 3);
}

static void test_deep_nesting_refused(void **state)
{
    (void)state;
    enum { DEEP = 10000 };
    static uint8_t buf[DEEP + 1];
    struct mp_reader r;
    uint32_t n;
    memset(buf, 0x91, DEEP); /* [[[[...]]]] */
    buf[DEEP] = 0xc0;
    mp_reader_init(&r, buf, sizeof buf, 32);
    assert_int_equal(mp_skip(&r), CMC_ERR_CORRUPT);
    mp_reader_init(&r, buf, sizeof buf, 2);
    assert_int_equal(mp_read_array(&r, 1, &n), CMC_OK);
    assert_int_equal(mp_read_array(&r, 1, &n), CMC_OK);
    assert_int_equal(mp_read_array(&r, 1, &n), CMC_ERR_CORRUPT);
    /* Exactly max_depth levels are fine. */
    mp_reader_init(&r, buf + DEEP - 3, 4, 3);
    assert_int_equal(mp_skip(&r), CMC_OK);
    assert_int_equal(mp_expect_end(&r), CMC_OK);
    assert_int_equal(r.depth, 0);
}

static void test_skip_every_type(void **state)
{
    (void)state;
    static const uint8_t buf[] = {
        0x82,                                     /* map of 2 */
        0xa1, 'k', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,  /* "k": float64 */
        0xd6, 0x01, 1, 2, 3, 4,                   /* fixext4 key */
        0x93, 0xc4, 0x01, 0xaa, 0xc7, 0x01, 0x05, 0xbb, 0xca, 0, 0, 0, 0,
        0x05, /* a trailing value after the map */
    };
    struct mp_reader r;
    uint64_t u = 0;
    mp_reader_init(&r, buf, sizeof buf, 4);
    assert_int_equal(mp_peek(&r), MP_T_MAP);
    assert_int_equal(mp_skip(&r), CMC_OK);
    assert_int_equal(mp_expect_end(&r), CMC_ERR_CORRUPT);
    assert_int_equal(mp_read_uint(&r, &u), CMC_OK);
    assert_int_equal(u, 5);
    assert_int_equal(mp_expect_end(&r), CMC_OK);
    assert_int_equal(mp_peek(&r), MP_T_END);
    static const uint8_t reserved[] = {0xc1};
    mp_reader_init(&r, reserved, 1, 4);
    assert_int_equal(mp_peek(&r), MP_T_INVALID);
    assert_int_equal(mp_skip(&r), CMC_ERR_CORRUPT);
    /* A float is never an integer. */
    static const uint8_t f32[] = {0xca, 0x3f, 0x80, 0, 0};
    mp_reader_init(&r, f32, sizeof f32, 4);
    assert_int_equal(mp_read_uint(&r, &u), CMC_ERR_CORRUPT);
}

static void test_writer_out_of_memory_is_sticky(void **state)
{
    (void)state;
    struct mp_writer w;
    uint8_t *out = (uint8_t *)1;
    size_t len = 7;
    char big[1000];
    memset(big, 'x', sizeof big);
    mp_writer_init(&w);
    mp_write_str(&w, big, 100); /* first buffer */
    cmc_alloc_fail_after(0, 1);
    mp_write_str(&w, big, sizeof big); /* needs to grow: fails */
    mp_write_uint(&w, 1);
    cmc_alloc_fail_after(-1, 0);
    mp_write_uint(&w, 2); /* still refused: the error sticks */
    assert_int_equal(w.err, CMC_ERR_NOMEM);
    assert_int_equal(mp_writer_finish(&w, &out, &len), CMC_ERR_NOMEM);
    assert_null(out);
    assert_int_equal(len, 0);
    /* An empty encoding is a valid (freeable) buffer. */
    mp_writer_init(&w);
    assert_int_equal(mp_writer_finish(&w, &out, &len), CMC_OK);
    assert_non_null(out);
    assert_int_equal(len, 0);
    cmc_free(out);
    mp_writer_init(&w);
    mp_write_raw(&w, "\x91\x01", 2);
    mp_writer_discard(&w);
    assert_null(w.buf);
}

/* Canonical mode: every value in its shortest form, as msgpack-c writes it, so one plan has
 * one encoding. Each longer form of a value the packer writes shorter is refused; the
 * packer's own forms are accepted. (Found by fuzzing: int8 0x01 for an enum value.) */
static void test_canonical_mode_refuses_longer_forms(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[8];
        size_t len;
        int ok;
    } cases[] = {
        { { 0x01 }, 1, 1 },                   /* positive fixint */
        { { 0xd0, 0x01 }, 2, 0 },             /* int8 for 1 */
        { { 0xcc, 0x01 }, 2, 0 },             /* uint8 for 1 */
        { { 0xcc, 0x80 }, 2, 1 },             /* uint8 for 128 */
        { { 0xcd, 0x00, 0x80 }, 3, 0 },       /* uint16 for 128 */
        { { 0xd0, 0x7f }, 2, 0 },             /* int8 for a positive value */
        { { 0xff }, 1, 1 },                   /* -1 */
        { { 0xd0, 0xff }, 2, 0 },             /* int8 for -1 */
        { { 0xd0, 0x80 }, 2, 1 },             /* -128 */
        { { 0xa1, 'x' }, 2, 1 },              /* fixstr */
        { { 0xd9, 0x01, 'x' }, 3, 0 },        /* str8 for one byte */
        { { 0x91, 0x01 }, 2, 1 },             /* fixarray */
        { { 0xdc, 0x00, 0x01, 0x01 }, 4, 0 }, /* array16 for one element */
        { { 0xc4, 0x00 }, 2, 1 },             /* bin8, empty */
        { { 0xc5, 0x00, 0x00 }, 3, 0 },       /* bin16, empty */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mp_reader r;
        int rc;
        mp_reader_init(&r, cases[i].bytes, cases[i].len, 4);
        mp_reader_canonical(&r);
        uint64_t u;
        int64_t v;
        uint32_t n;
        const char *str;
        const uint8_t *bin;
        switch (cases[i].bytes[0]) {
        case 0xa1: case 0xd9: rc = mp_read_str(&r, 16, &str, &n); break;
        case 0x91: case 0xdc: rc = mp_read_array(&r, 16, &n); break;
        case 0xc4: case 0xc5: rc = mp_read_bin(&r, 16, &bin, &n); break;
        case 0xff: case 0xd0: rc = mp_read_int(&r, &v); break;
        default: rc = mp_read_uint(&r, &u); break;
        }
        if (cases[i].ok && rc != CMC_OK)
            fail_msg("case %zu: the shortest form was refused", i);
        if (!cases[i].ok && rc != CMC_ERR_CORRUPT)
            fail_msg("case %zu: a longer form was accepted", i);
    }
}

TST_MAIN(NULL, NULL, NULL, test_round_trip_values, test_every_int_encoding,
         test_hostile_counts_refused_in_constant_time, test_deep_nesting_refused, test_skip_every_type,
         test_writer_out_of_memory_is_sticky, test_canonical_mode_refuses_longer_forms)
