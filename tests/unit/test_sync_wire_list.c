/* sync/wire_list.c: the evidence a device sends a restored hub (POST /v1/evidence), byte for
 * byte as docs/PROTOCOL.md describes it, its round trip, and the refusal of truncated or
 * hostile lists (the users list shares the same envelope: test_sync_wire.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/wire.h"
#include "tests/support/run.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LOST_ID "33333333-4444-4555-8666-777777777771"

/* {"plans": [{"plan_id": LOST_ID, "version": 2, "seq": 7}]}, written by hand from the
 * protocol: fixmap 1, fixstr "plans", fixarray 1, fixmap 3, str8 of 36, fixints. */
static const char KAT_EVIDENCE[] =
    "81a5706c616e739183a7706c616e5f6964d924"
    "3333333333333333" "2d" "34343434" "2d" "34353535" "2d" "38363636" "2d" "373737373737373737373731"
    "a776657273696f6e02a373657107";

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

#define LOST_ENTRY { .plan_id = LOST_ID, .version = 2, .seq = 7 }

static void test_evidence_bytes_and_round_trip(void **state)
{
    (void)state;
    struct wire_evidence v[2] = { LOST_ENTRY,
                                  { .plan_id = "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11", .version = 9, .seq = 1u << 20 } };
    struct wire_evidence *back = cmc_calloc(WIRE_EVIDENCE_MAX, sizeof *back);
    uint8_t *b = NULL;
    size_t len = 0, n = 0;
    char text[512];
    assert_non_null(back);
    assert_int_equal(wire_evidence_encode(v, 1, &b, &len), CMC_OK);
    assert_true(2 * len < sizeof text);
    hex(b, len, text);
    assert_string_equal(text, KAT_EVIDENCE);
    cmc_free(b);

    assert_int_equal(wire_evidence_encode(v, 2, &b, &len), CMC_OK);
    assert_int_equal(wire_evidence_decode(b, len, back, &n), CMC_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(back[i].plan_id, v[i].plan_id);
        assert_int_equal(back[i].version, v[i].version);
        assert_int_equal(back[i].seq, v[i].seq);
    }
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(wire_evidence_decode(b, cut, back, &n), CMC_ERR_INVALID);
        assert_int_equal(n, 0);
    }
    cmc_free(b);
    cmc_free(back);
}

static void test_evidence_refuses_what_it_cannot_trust(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        int64_t version;
        uint64_t seq;
        const char *says;
    } bad[] = {
        { "not-a-plan-id", 2, 7, "plan_id must be a plan id" },
        { LOST_ID "0", 2, 7, "plan_id must be a plan id" }, /* one byte too long: not cut */
        { LOST_ID, 0, 7, "version must be a positive integer" },
        { LOST_ID, -3, 7, "version must be a positive integer" },
        { LOST_ID, 2, 0, "seq must be a positive integer" },
    };
    struct wire_evidence *back = cmc_calloc(WIRE_EVIDENCE_MAX + 1, sizeof *back);
    uint8_t *b = NULL;
    size_t len = 0, n = 0;
    assert_non_null(back);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wire_evidence e = { .version = bad[i].version, .seq = bad[i].seq };
        memcpy(e.plan_id, bad[i].id, strlen(bad[i].id) + 1);
        assert_int_equal(wire_evidence_encode(&e, 1, &b, &len), CMC_OK);
        assert_int_equal(wire_evidence_decode(b, len, back, &n), CMC_ERR_INVALID);
        assert_non_null(strstr(cmc_errmsg(), bad[i].says));
        assert_int_equal(n, 0);
        cmc_free(b);
    }
    /* one entry over the limit */
    for (size_t i = 0; i <= WIRE_EVIDENCE_MAX; i++)
        back[i] = (struct wire_evidence)LOST_ENTRY;
    assert_int_equal(wire_evidence_encode(back, WIRE_EVIDENCE_MAX + 1, &b, &len), CMC_OK);
    assert_int_equal(wire_evidence_decode(b, len, back, &n), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "at most 256 entries"));
    cmc_free(b);
    cmc_free(back);
}

TST_MAIN(NULL, NULL, NULL, test_evidence_bytes_and_round_trip,
         test_evidence_refuses_what_it_cannot_trust)
