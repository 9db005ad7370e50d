/*
 * test_hub_pull.c - bundle pages from the hub core without sockets: signatures, deltas that reproduce the
 * hub's version, tiny idle polls, paging that resumes, and the lease policy in every bundle.
 *
 * The hub store, plans and simulated devices come from tests/support (hub_fixture.h,
 * hub_device.h); the clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/reqsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

static void test_bundle_verifies_and_flipped_byte_fails(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb;
    struct bundle_header hdr;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t other_pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *other_sk = NULL;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    assert_int_equal(hub_pull(e->h, amb.id, 0, 0, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.op_count, 3); /* the policy, the plan and its seal */
    assert_true(hdr.flags & BUNDLE_FLAG_SNAPSHOT);
    /* every single flipped byte, header or body, fails verification */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x01;
        assert_int_not_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
        buf[i] ^= 0x01;
    }
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    /* another key does not verify it */
    assert_int_equal(cry_sign_keypair(other_pk, &other_sk), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, other_pk, &hdr), CMC_ERR_TAMPERED);
    cry_secret_free(other_sk);
    cmc_free(buf);
    tst_device_free(&amb);
}

static void test_delta_reproduces_hub_version(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb, nurse;
    struct plan hub_copy;
    const char *change =
        "{\"set\": {\"prognosis\": \"days\", \"resuscitation.decision\": \"for_cpr\","
        " \"recommendations.cpr\": \"recommended\", \"ceiling_of_treatment\": \"Full treatment\"},"
        " \"add\": {\"medications\": [{\"id\": \"m99\", \"name\": \"Haloperidol\","
        " \"dose\": \"0.5 mg\", \"anticipatory\": true}]},"
        " \"update\": {\"contacts\": [{\"id\": \"c1\", \"phone\": \"020 7946 0555\"}]},"
        " \"remove\": {\"anticipated_problems\": [\"p1\"]}}";

    tst_hub_import_published(e, 3, "9434765919", id);
    assert_int_equal(hub_caseload_add(e->h, TST_TEAM, "9434765919"), CMC_OK);
    tst_device_new_amb_and_nurse(e, &amb, &nurse);
    assert_int_equal(amb.puts, 1);

    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    /* the clinician device gets the draft as a delta, equal to the hub's draft */
    tst_device_sync(e, &nurse, 0);
    assert_int_equal(nurse.deltas, 1);
    assert_int_equal(nurse.puts, 0);
    plan_init(&hub_copy);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_true(plan_equal(&nurse.held[0], &hub_copy));
    plan_free(&hub_copy);

    tst_hub_publish(e, id);
    tst_device_sync(e, &amb, 0);
    assert_int_equal(amb.deltas, 1);
    assert_int_equal(amb.puts, 0);
    plan_init(&hub_copy);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_int_equal(hub_copy.status, PLAN_STATUS_PUBLISHED);
    assert_true(plan_equal(&amb.held[0], &hub_copy));
    plan_free(&hub_copy);
    tst_device_free_all(&amb, &nurse, NULL);
}

static void test_idle_poll_is_tiny_and_paging_resumes(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device amb;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct bundle_header hdr;
    uint64_t head = 0;

    assert_int_equal(hub_seed(e->h, 120, 11, NULL, NULL), CMC_OK);
    tst_device_new(e, &amb, "all", "urgent_care");
    int pages = tst_device_sync(e, &amb, 4096);
    assert_true(pages > 2);
    assert_int_equal(hub_head_seq(e->h, &head), CMC_OK);
    assert_int_equal(amb.cursor, head);
    size_t n = amb.n_held;
    assert_true(n > 0);
    /* nothing new: a header and the policy op alone */
    assert_int_equal(hub_pull(e->h, amb.id, amb.cursor, amb.cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.op_count, 1);
    assert_int_equal(hdr.to_cursor, head);
    assert_int_equal(hdr.flags, 0);
    assert_true(len < BUNDLE_HEADER_BYTES + 32);
    cmc_free(buf);
    /* a cursor past the head is refused */
    assert_int_equal(hub_pull(e->h, amb.id, head + 5, head + 5, 0, &buf, &len), CMC_ERR_INVALID);
    /* a fresh snapshot in one page gives the same set */
    {
        struct tst_device again;
        tst_device_new(e, &again, "all", "urgent_care");
        assert_int_equal(tst_device_sync(e, &again, HUB_BUDGET_MAX), 1);
        assert_int_equal(again.n_held, n);
        tst_device_free(&again);
    }
    tst_device_free(&amb);
}

/* The lease in the POLICY op (the first op) of a pull for the device; nothing applied. */
static int64_t pulled_lease(struct tst_hub *e, struct tst_device *d)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    int64_t days;
    assert_int_equal(hub_pull(e->h, d->id, d->cursor, d->cursor, 0, &buf, &len), CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    assert_true(n >= 1);
    assert_int_equal(ops[0].kind, BUNDLE_OP_POLICY);
    days = ops[0].lease_days;
    bundle_ops_free(ops, n);
    cmc_free(buf);
    return days;
}

static void test_policy_in_every_bundle_and_lease_precedence(void **state)
{
    struct tst_hub *e = *state;
    struct tst_device amb, amb2, other;
    struct hub_device_info info;
    struct hub_enrollment en;
    char id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES] = {7};
    int64_t days = 0;
    const char *from = NULL;

    assert_int_equal(hub_seed(e->h, 60, 4, NULL, NULL), CMC_OK);
    tst_device_new(e, &amb, "all", "urgent_care");
    tst_device_new(e, &amb2, "all", "urgent_care");
    tst_device_new(e, &other, "region:" TST_REGION, "urgent_care");
    /* paged snapshot: every page opens with the policy (tst_device_apply checks it) */
    assert_true(tst_device_sync(e, &amb, 2048) > 2);
    assert_int_equal(amb.lease_days, HUB_LEASE_DAYS);
    assert_int_equal(hub_lease_days(e->h, amb.id, &days, &from), CMC_OK);
    assert_int_equal(days, HUB_LEASE_DAYS);
    assert_string_equal(from, "default");
    /* idle poll: the policy alone */
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_DAYS);

    /* a scope setting reaches every device of that scope, and only those */
    assert_int_equal(hub_scope_lease_set(e->h, "all", 30), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 30);
    assert_int_equal(pulled_lease(e, &amb2), 30);
    assert_int_equal(pulled_lease(e, &other), HUB_LEASE_DAYS);
    /* the device's own setting wins over its scope's */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, 7), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 7);
    assert_int_equal(pulled_lease(e, &amb2), 30);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.lease_days, 7);
    assert_string_equal(info.lease_from, "device");
    /* 0 = no lease, and it still wins over the scope */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, 0), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 0);
    /* removing the device's setting falls back to the scope, then to the default */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, -1), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), 30);
    assert_int_equal(hub_scope_lease_set(e->h, "all", -1), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_DAYS);
    /* refused settings change nothing */
    assert_int_equal(hub_device_lease_set(e->h, amb.id, HUB_LEASE_MAX + 1), CMC_ERR_USAGE);
    assert_int_equal(hub_scope_lease_set(e->h, "planet:mars", 3), CMC_ERR_USAGE);
    assert_int_equal(hub_device_lease_set(e->h, "00000000-0000-4000-8000-000000000000", 3),
                     CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_device_lease_set(e->h, amb.id, HUB_LEASE_MAX), CMC_OK);
    assert_int_equal(pulled_lease(e, &amb), HUB_LEASE_MAX);

    /* the enrollment answer carries the lease in force */
    assert_int_equal(hub_scope_lease_set(e->h, "region:" TST_REGION, 3), CMC_OK);
    assert_int_equal(hub_device_add(e->h, "amb-9", "region:" TST_REGION, "urgent_care", id, code),
                     CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, pk, "amb-9", &en), CMC_OK);
    assert_int_equal(en.lease_days, 3);
    assert_int_equal(pulled_lease(e, &other), 3);

    /* a wipe order carries the policy too, first */
    assert_int_equal(hub_device_wipe(e->h, amb2.id), CMC_OK);
    tst_device_sync(e, &amb2, 0);
    assert_int_equal(amb2.wipes, 1);
    assert_int_equal(amb2.lease_days, HUB_LEASE_DAYS);
    tst_device_free_all(&amb, &amb2, &other, NULL);
}

TST_HUB_MAIN(test_bundle_verifies_and_flipped_byte_fails, test_delta_reproduces_hub_version,
             test_idle_poll_is_tiny_and_paging_resumes,
             test_policy_in_every_bundle_and_lease_precedence)
