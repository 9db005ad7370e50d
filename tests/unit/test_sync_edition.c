/*
 * test_sync_edition.c - a fleet on mixed versions, on the wire (docs/PROTOCOL.md, "Mixed
 * versions"): a device states the plan edition it can show in its pull and a device of the
 * first edition, which never sends it, is taken as one; a bundle says the edition of its
 * plans; and a plan carrying fields of a later edition than this build knows is kept whole
 * from a bundle, never refused or shortened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/wire.h"

#include <string.h>

#include "tests/support/example_plan_model.h"
#include "tests/support/bundle_fixture.h"

static const char *plan_a = "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11";

static void test_pull_states_its_edition(void **state)
{
    (void)state;
    char path[128];
    struct wire_pull_query q = { .cursor = 5, .applied = 5, .schema = PLAN_EDITION_CURRENT }, back;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    assert_string_equal(path, "/v1/pull?cursor=5&schema=2");
    assert_int_equal(wire_pull_query_decode(path + strlen("/v1/pull?"), &back), CMC_OK);
    assert_true(back.cursor == 5 && back.schema == PLAN_EDITION_CURRENT);
    /* the previous release's request, exactly as it sends it: a first-edition device */
    assert_int_equal(wire_pull_query_decode("cursor=7&applied=4&budget=99", &back), CMC_OK);
    assert_true(back.cursor == 7 && back.applied == 4 && back.budget == 99);
    assert_int_equal(back.schema, 1);
    assert_int_equal(wire_pull_query_decode("cursor=7", &back), CMC_OK);
    assert_int_equal(back.schema, 1);
    /* a later edition is stated as such (the hub serves what it knows) */
    assert_int_equal(wire_pull_query_decode("schema=3&cursor=1", &back), CMC_OK);
    assert_int_equal(back.schema, 3);
    /* edition 0 does not exist; a value that is not a number is refused */
    assert_int_equal(wire_pull_query_decode("cursor=7&schema=0", &back), CMC_ERR_INVALID);
    assert_int_equal(wire_pull_query_decode("cursor=7&schema=two", &back), CMC_ERR_INVALID);
    assert_int_equal(wire_pull_query_decode("cursor=7&schema=", &back), CMC_ERR_INVALID);
}

static void header(struct bundle_header *h, uint16_t flags)
{
    memset(h, 0, sizeof *h);
    h->flags = flags;
    h->from_cursor = 1;
    h->to_cursor = 2;
    h->hub_time = 1800000000;
}

static void test_bundle_says_its_edition(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct bundle_header h, got;
    uint8_t *buf = NULL;
    size_t len = 0;

    header(&h, BUNDLE_FLAG_EDITION2);
    assert_int_equal(bundle_build(&h, NULL, 0, k->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, k->pk, &got), CMC_OK);
    assert_int_equal(bundle_edition(&got), 2);
    cmc_free(buf);
    header(&h, BUNDLE_FLAG_MORE);
    assert_int_equal(bundle_build(&h, NULL, 0, k->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, k->pk, &got), CMC_OK);
    assert_int_equal(bundle_edition(&got), 1);
    cmc_free(buf);
    /* bits beyond the known ones are still refused */
    header(&h, 0x20);
    assert_int_equal(bundle_build(&h, NULL, 0, k->sk, &buf, &len), CMC_ERR_INVALID);
}

/* The example plan packed with two fields of a later edition (ids 100 and 101) after its
 * own; cmc_free() it. */
static uint8_t *later_edition_plan(size_t *len)
{
    struct plan p;
    uint8_t *mp = NULL, *later;
    size_t mlen = 0;
    tst_example_plan_parse(&p);
    assert_int_equal(plan_pack(&p, &mp, &mlen), CMC_OK);
    plan_free(&p);
    later = tst_plan_with_fields(mp, mlen, 2, "\x64\xa1x\x65\x91\xc3", 6); /* 100: "x", 101: [true] */
    cmc_free(mp);
    *len = mlen + 6;
    return later;
}

static void test_bundle_keeps_a_later_editions_fields(void **state)
{
    struct tst_bundle_fixture *k = *state;
    struct bundle_header h, got;
    struct bundle_op *ops = NULL;
    size_t n = 0, plen = 0, len = 0;
    uint8_t *buf = NULL, *packed = later_edition_plan(&plen), *again = NULL;
    size_t alen = 0;
    struct mp_writer op;
    bundle_writer *w = NULL;

    mp_writer_init(&op);
    mp_write_array(&op, 4);
    mp_write_uint(&op, BUNDLE_OP_PUT);
    mp_write_cstr(&op, plan_a);
    mp_write_uint(&op, 2);
    mp_write_raw(&op, packed, plen);
    assert_int_equal(op.err, CMC_OK);
    assert_int_equal(bundle_writer_new(&w), CMC_OK);
    assert_int_equal(bundle_writer_add_raw(w, op.buf, op.len), CMC_OK);
    header(&h, BUNDLE_FLAG_EDITION2);
    assert_int_equal(bundle_writer_finish(w, &h, k->sk, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, k->pk, &got), CMC_OK);
    assert_int_equal(bundle_decode(buf, len, &got, &ops, &n), CMC_OK);
    assert_int_equal(n, 1);
    /* kept, not refused; the plan says a newer agent is needed; stored as received */
    assert_int_equal(ops[0].plan.unknown.count, 2);
    assert_int_equal(plan_edition(&ops[0].plan), PLAN_EDITION_CURRENT + 1);
    assert_int_equal(ops[0].packed_len, plen);
    assert_memory_equal(ops[0].packed, packed, plen);
    assert_int_equal(plan_pack(&ops[0].plan, &again, &alen), CMC_OK);
    assert_int_equal(alen, plen);
    assert_memory_equal(again, packed, plen);
    bundle_ops_free(ops, n);
    bundle_writer_free(w);
    mp_writer_discard(&op);
    cmc_free(again);
    cmc_free(buf);
    cmc_free(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_states_its_edition),
        cmocka_unit_test_setup_teardown(test_bundle_says_its_edition, tst_sign_keys_setup,
                                        tst_bundle_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bundle_keeps_a_later_editions_fields, tst_sign_keys_setup,
                                        tst_bundle_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
