/*
 * test_hub_rollback.c - a device restored from a backup (its cursor behind what it committed) is detected and
 * repaired, flagged on the answer, proven by acknowledgement, and a pull that runs out of
 * memory leaves no trace.
 *
 * The hub store, plans and simulated devices come from tests/support (hub_fixture.h,
 * hub_device.h); the clock is fake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "platform/plat_test.h"
#include "platform/alloc_test.h"
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

/* A deep copy of a device's replica (what a backup of the tablet would hold). */
static void device_snapshot(const struct tst_device *from, struct tst_device *to)
{
    *to = *from;
    to->held = calloc(TST_MAX_HELD, sizeof *to->held);
    to->page_purged = calloc(TST_MAX_HELD, sizeof *to->page_purged);
    assert_non_null(to->held);
    assert_non_null(to->page_purged);
    for (size_t i = 0; i < from->n_held; i++)
        assert_int_equal(plan_copy(&to->held[i], &from->held[i]), CMC_OK);
    to->sk = NULL; /* the key stays with the original */
}

static void snapshot_free(struct tst_device *d)
{
    for (size_t i = 0; i < d->n_held; i++)
        plan_free(&d->held[i]);
    free(d->held);
    free(d->page_purged);
}

static void test_rollback_detected_and_repaired(void **state)
{
    struct tst_hub *e = *state;
    char kept[PLAN_ID_LEN + 1], withdrawn[PLAN_ID_LEN + 1], edited[PLAN_ID_LEN + 1];
    char added[PLAN_ID_LEN + 1], moved[PLAN_ID_LEN + 1];
    struct tst_device amb, backup, fresh;
    struct hub_device_info info;
    struct tst_holders l;
    uint64_t c1, c2;
    int64_t edited_v1;

    tst_hub_import_published(e, 0, "9434765919", kept);
    tst_hub_import(e, 1, "4010232137", TST_REGION, NULL, "nurse1", withdrawn);
    tst_hub_publish(e, withdrawn);
    tst_hub_import(e, 2, "9990001111", TST_REGION, NULL, "nurse1", edited);
    tst_hub_publish(e, edited);
    tst_hub_import_published(e, 3, "9990002223", moved);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &amb, 0);
    c1 = amb.cursor;
    assert_int_equal(amb.n_held, 4);
    edited_v1 = tst_device_held(&amb, edited)->version;
    device_snapshot(&amb, &backup); /* the tablet is backed up at C1 */

    /* between C1 and C2: a withdrawal, an approved edit, a new plan, a plan leaving */
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", withdrawn), CMC_OK);
    {
        const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", edited, change, strlen(change), NULL),
                         CMC_OK);
        tst_hub_publish(e, edited);
    }
    tst_hub_import(e, 4, "9990003335", TST_REGION, NULL, "nurse1", added);
    tst_hub_publish(e, added);
    {
        const char *change = "{\"set\": {\"region\": \"north-central-london\"}}";
        assert_int_equal(hub_plan_edit(e->h, "nurse1", moved, change, strlen(change), NULL),
                         CMC_OK);
        tst_hub_publish(e, moved);
    }
    tst_device_sync(e, &amb, 0);
    c2 = amb.cursor;
    assert_true(c2 > c1);
    assert_int_equal(amb.rollback_pages, 0);
    assert_int_equal(amb.purges, 2); /* withdrawn and moved, both acknowledged */
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    /* a poll from C2 proves C2 */
    tst_device_sync(e, &amb, 0);
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.cursor, c2);
    assert_int_equal(info.last_rollback, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(hub_plan_holders(e->h, withdrawn, tst_holders_cb, &l), CMC_OK);
    assert_int_equal(l.n, 0);

    /* the old copy is restored onto the tablet: it pulls from C1 again */
    snapshot_free(&amb);
    amb.held = backup.held;
    amb.n_held = backup.n_held;
    amb.page_purged = backup.page_purged;
    amb.cursor = backup.cursor;
    assert_non_null(tst_device_held(&amb, withdrawn)); /* the withdrawn plan is back on the tablet */
    plat_fake_clock_advance(60ull * 1000000000ull);
    tst_device_sync(e, &amb, 0);
    /* caught: the answer is flagged, and it repairs the replica */
    assert_int_equal(amb.rollback_pages, 1);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 1);
    assert_int_equal(info.last_rollback, TST_T0 + 60);
    assert_null(tst_device_held(&amb, withdrawn));
    assert_null(tst_device_held(&amb, moved));
    assert_non_null(tst_device_held(&amb, added));
    assert_non_null(tst_device_held(&amb, kept));
    assert_true(tst_device_held(&amb, edited)->version > edited_v1);
    assert_string_equal(tst_device_held(&amb, edited)->prognosis, "days");
    assert_int_equal(amb.cursor, c2);
    /* the restored tablet now holds exactly what a new device of its scope holds */
    tst_device_new(e, &fresh, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &fresh, 0);
    assert_int_equal(fresh.n_held, amb.n_held);
    for (size_t i = 0; i < fresh.n_held; i++) {
        struct plan *p = tst_device_held(&amb, fresh.held[i].plan_id);
        assert_non_null(p);
        assert_true(plan_equal(p, &fresh.held[i]));
    }
    /* the next sync is ordinary again */
    tst_device_sync(e, &amb, 0);
    assert_false(amb.last_flags & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(amb.purges + amb.puts + amb.deltas, 0);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 1);
    tst_device_free_all(&amb, &fresh, NULL);
}

/* Pulls d's page from `cursor` (committed up to there too) and verifies it with the hub's
 * key; returns its flags. The bundle stays in *buf when buf is not NULL (cmc_free it). */
static uint16_t pull_flags(struct tst_hub *e, const struct tst_device *d, uint64_t cursor,
                           struct bundle_header *hdr, uint8_t **buf, size_t *len)
{
    uint8_t *own = NULL;
    size_t own_len = 0;
    assert_int_equal(hub_pull(e->h, d->id, cursor, cursor, 0, &own, &own_len), CMC_OK);
    assert_int_equal(bundle_verify(own, own_len, e->hub_pk, hdr), CMC_OK);
    if (buf != NULL) {
        *buf = own;
        *len = own_len;
    } else {
        cmc_free(own);
    }
    return hdr->flags;
}

/* The flag itself, page by page: set on the answer to the older cursor only. */
static void test_rollback_flag_on_the_answer(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb;
    struct bundle_header hdr;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t c1;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &amb, 0);
    c1 = amb.cursor;
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    tst_device_sync(e, &amb, 0);
    assert_true(amb.cursor > c1);
    /* a pull repeated from the same cursor (a lost answer) is not a rollback */
    assert_false(pull_flags(e, &amb, amb.cursor, &hdr, NULL, NULL) & BUNDLE_FLAG_ROLLBACK);
    assert_false(pull_flags(e, &amb, amb.cursor, &hdr, NULL, NULL) & BUNDLE_FLAG_ROLLBACK);
    /* from C1, after C2 was proven: flagged, with the purge again */
    amb.cursor = c1;
    assert_true(pull_flags(e, &amb, c1, &hdr, &buf, &len) & BUNDLE_FLAG_ROLLBACK);
    assert_int_equal(hdr.from_cursor, c1);
    amb.purges = 0;
    tst_device_apply(e, &amb, buf, len, 1);
    assert_int_equal(amb.purges, 1);
    assert_string_equal(amb.purged[0], id);
    cmc_free(buf);
    tst_device_free(&amb);
}

/* A device that pulled the page with a purge, committed it and acknowledged the purge has
 * proven that page even before its next pull: a copy restored from before it is caught. */
static void test_rollback_proven_by_acknowledgement(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb, quiet;
    struct hub_device_info info;
    struct bundle_header hdr;
    uint64_t c1, q1;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &quiet, "region:" TST_REGION, "urgent_care");
    quiet.no_ack = 1;
    tst_device_sync(e, &amb, 0);
    tst_device_sync(e, &quiet, 0);
    tst_device_sync(e, &amb, 0); /* proves C1 */
    tst_device_sync(e, &quiet, 0);
    c1 = amb.cursor;
    q1 = quiet.cursor;
    assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", id), CMC_OK);
    tst_device_sync(e, &amb, 0);   /* one pull: the purge page, committed and acknowledged */
    tst_device_sync(e, &quiet, 0); /* the same, never acknowledged */
    assert_int_equal(amb.purges, 1);
    assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
    assert_int_equal(info.proven, amb.cursor);
    assert_true(info.proven > c1);
    /* the copy from C1 comes back: caught although no pull ever came from the newer cursor */
    assert_true(pull_flags(e, &amb, c1, &hdr, NULL, NULL) & BUNDLE_FLAG_ROLLBACK);
    /* without an acknowledgement nothing proves the newer page: an ordinary repeat */
    assert_false(pull_flags(e, &quiet, q1, &hdr, NULL, NULL) & BUNDLE_FLAG_ROLLBACK);
    tst_device_free_all(&amb, &quiet, NULL);
}

static void no_rollback_counted(struct tst_hub *e, const struct tst_device *d)
{
    struct hub_device_info info;
    assert_int_equal(hub_device_get(e->h, d->id, &info), CMC_OK);
    assert_int_equal(info.rollbacks, 0);
}

/* Pulls d's page from `cursor` with the n-th allocation failing, n = 0, 1, ... until a pull
 * gets through: each failed pull is an out-of-memory error that hands back nothing, after
 * which `after_failure` (unless NULL) checks what must not have changed. The page that got
 * through is verified (its header into *hdr); returns the number of failed pulls. */
static int pull_with_failing_allocations(struct tst_hub *e, const struct tst_device *d,
                                         uint64_t cursor, struct bundle_header *hdr,
                                         void (*after_failure)(struct tst_hub *,
                                                               const struct tst_device *))
{
    int failures = 0;
    for (long n = 0; n < 10000; n++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        cmc_alloc_fail_after(n, 1);
        int rc = hub_pull(e->h, d->id, cursor, cursor, 0, &buf, &len);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            assert_int_equal(bundle_verify(buf, len, e->hub_pk, hdr), CMC_OK);
            cmc_free(buf);
            return failures;
        }
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(buf);
        if (after_failure != NULL)
            after_failure(e, d);
        failures++;
    }
    fail_msg("no pull got through");
    return failures;
}

static void test_allocation_failure_is_clean(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device amb;
    struct bundle_header hdr;
    const char *change = "{\"set\": {\"prognosis\": \"days\"}}";
    int failures = 0;

    tst_hub_import_published(e, 0, "9434765919", id);
    tst_device_new(e, &amb, "region:" TST_REGION, "urgent_care");
    tst_device_sync(e, &amb, 0);
    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    tst_hub_publish(e, id);
    /* the n-th allocation of a pull (a delta page) fails: an error, nothing leaked, and
     * nothing recorded, so the device can simply ask again */
    assert_true(pull_with_failing_allocations(e, &amb, amb.cursor, &hdr, NULL) > 3);
    tst_device_sync(e, &amb, 0);
    assert_int_equal(amb.deltas, 1);
    /* the same for an edit: the plan stays as it was */
    failures = 0;
    for (long n = 0; n < 10000; n++) {
        struct hub_plan_info before, after;
        assert_int_equal(hub_plan_info(e->h, id, &before), CMC_OK);
        cmc_alloc_fail_after(n, 1);
        int rc = hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL);
        cmc_alloc_fail_after(-1, 0);
        assert_int_equal(hub_plan_info(e->h, id, &after), CMC_OK);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_int_equal(after.version, before.version);
        failures++;
    }
    assert_true(failures > 3);

    /* a rollback answer carrying a repeated purge: a failed attempt records nothing, so the
     * rollback is counted once, by the answer that got through */
    {
        char gone[PLAN_ID_LEN + 1];
        struct hub_device_info info;
        uint64_t old_cursor;
        tst_hub_import(e, 1, "4010232137", TST_REGION, NULL, "nurse1", gone);
        tst_hub_publish(e, gone);
        amb.no_ack = 1;
        tst_device_sync(e, &amb, 0);
        old_cursor = amb.cursor;
        assert_int_equal(hub_plan_withdraw_consent(e->h, "admin1", gone), CMC_OK);
        tst_device_sync(e, &amb, 0);
        tst_device_sync(e, &amb, 0); /* proves the newer cursor */
        assert_int_equal(amb.purges, 1); /* repeated: never acknowledged */
        failures = pull_with_failing_allocations(e, &amb, old_cursor, &hdr, no_rollback_counted);
        assert_true(hdr.flags & BUNDLE_FLAG_ROLLBACK);
        assert_true(failures > 3);
        assert_int_equal(hub_device_get(e->h, amb.id, &info), CMC_OK);
        assert_int_equal(info.rollbacks, 1);
    }
    tst_device_free(&amb);
}

TST_HUB_MAIN(test_rollback_detected_and_repaired, test_rollback_flag_on_the_answer,
             test_rollback_proven_by_acknowledgement, test_allocation_failure_is_clean)
