/*
 * test_hub_body_cache.c - devices of one scope enrolling together share the compression of
 * their snapshot pages (hub/feed_cache.c, docs/BENCHMARKS.md): each gets the same compressed
 * body under its own header, signed for it and naming it, so each verifies its own page and
 * not another's; a page whose content differs (the hub moved on, another codec) is not
 * served from the cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/feed.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/plan.h"
#include "sync/wire.h"

#include <string.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

#define BUDGET (256u * 1024u)

/* The first snapshot page for d, verified with the hub's key; its header in *h. */
static uint8_t *first_page(struct tst_hub *e, struct tst_device *d, uint64_t codecs, size_t *len,
                           struct bundle_header *h)
{
    uint8_t *buf = NULL;
    assert_int_equal(hub_pull_opts(e->h, d->id, 0, 0, BUDGET, PLAN_EDITION_CURRENT, codecs, &buf, len),
                     CMC_OK);
    assert_int_equal(bundle_verify(buf, *len, e->hub_pk, h), CMC_OK);
    assert_true(h->raw_len >= HUB_BODY_MIN);
    return buf;
}

static void test_devices_enrolling_together_share_page_bodies(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device a, b, c, z;
    struct bundle_header ha, hb, hc, hz;
    size_t la = 0, lb = 0, lc = 0, lz = 0;

    assert_int_equal(hub_seed(e->h, 400, 42, NULL, NULL), CMC_OK);
    tst_device_new(e, &a, "all", "urgent_care");
    tst_device_new(e, &b, "all", "urgent_care");
    uint8_t *pa = first_page(e, &a, WIRE_CODEC_BROTLI, &la, &ha);
    uint8_t *pb = first_page(e, &b, WIRE_CODEC_BROTLI, &lb, &hb);

    /* one body, two headers: each names its own device and is signed for it */
    assert_int_equal(la, lb);
    assert_memory_equal(pa + BUNDLE_HEADER_BYTES, pb + BUNDLE_HEADER_BYTES, la - BUNDLE_HEADER_BYTES);
    assert_int_equal(ha.raw_len, hb.raw_len);
    assert_int_equal(ha.op_count, hb.op_count);
    assert_int_equal(ha.to_cursor, hb.to_cursor);
    assert_true(ha.flags & BUNDLE_FLAG_BROTLI);
    assert_memory_not_equal(ha.device_id, hb.device_id, BUNDLE_DEVICE_ID_BYTES);
    assert_memory_not_equal(pa, pb, BUNDLE_HEADER_BYTES);
    /* b's page applies on b (its device id is checked) and decodes to the same plans */
    tst_device_apply(e, &b, pb, lb, 1);
    tst_device_apply(e, &a, pa, la, 1);
    assert_int_equal(a.n_held, b.n_held);
    assert_true(a.n_held > 0);
    /* a's header on b's body is still a's: a header moved onto another device's page keeps
     * naming the device it was signed for */
    memcpy(pb, pa, BUNDLE_HEADER_BYTES);
    assert_int_equal(bundle_verify(pb, lb, e->hub_pk, &hb), CMC_OK);
    assert_memory_equal(hb.device_id, ha.device_id, BUNDLE_DEVICE_ID_BYTES);

    /* a device that offered no codec gets zlib, not the kept Brotli body */
    tst_device_new(e, &z, "all", "urgent_care");
    uint8_t *pz = first_page(e, &z, 0, &lz, &hz);
    assert_false(hz.flags & BUNDLE_FLAG_BROTLI);
    assert_int_equal(pz[BUNDLE_HEADER_BYTES] & 0x0f, 8); /* a zlib stream */
    tst_device_apply(e, &z, pz, lz, 1);

    /* the hub moves on (a new plan): the next device's first page is built afresh */
    char id[PLAN_ID_LEN + 1];
    tst_hub_import_published(e, 7, "9434765919", id);
    tst_device_new(e, &c, "all", "urgent_care");
    uint8_t *pc = first_page(e, &c, WIRE_CODEC_BROTLI, &lc, &hc);
    assert_true(hc.to_cursor != ha.to_cursor || lc != la ||
                memcmp(pc + BUNDLE_HEADER_BYTES, pa + BUNDLE_HEADER_BYTES, la - BUNDLE_HEADER_BYTES) != 0);
    tst_device_apply(e, &c, pc, lc, 1);

    cmc_free(pa);
    cmc_free(pb);
    cmc_free(pc);
    cmc_free(pz);
    tst_device_free_all(&a, &b, &c, &z, NULL);
}

TST_HUB_MAIN(test_devices_enrolling_together_share_page_bodies)
