/*
 * test_hub_edition.c - the hub serves a fleet on mixed versions (docs/PROTOCOL.md, "Mixed
 * versions"): a device of the first edition gets each plan as it can hold it, with a visible
 * note where content was left out, in whole plans and in deltas alike; a device of the
 * current edition gets the plan whole, in a bundle that says its edition.
 *
 * The hub store, its seeded plans (second edition: they carry recommendations) and the
 * enrolled devices come from tests/support; the clock is fake.
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
#include "sync/change.h"
#include "sync/plan.h"

#include <stdio.h>
#include <string.h>

#include "tests/support/example_plan_model.h"
#include "tests/support/hub_device.h"
#include "tests/support/hub_fixture.h"

#define NHS "9434765919"

static int starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every first-edition field of `a` and `b` is equal, the ceiling apart. */
static void assert_first_edition_equal(const struct plan *a, const struct plan *b)
{
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        if ((f->flags & PLAN_FF_ED2) || strcmp(f->path, "ceiling_of_treatment") == 0)
            continue;
        if (f->type != PLAN_F_LIST) {
            if (!plan_field_equal(f, a, b))
                fail_msg("%s differs", f->path);
            continue;
        }
        size_t na = 0, nb = 0;
        const char *ia = plan_list_items(f, a, &na), *ib = plan_list_items(f, b, &nb);
        assert_int_equal(na, nb);
        for (size_t j = 0; j < na; j++)
            for (size_t k = 0; k < f->list->n_fields; k++)
                if (!(f->list->fields[k].flags & PLAN_FF_ED2) &&
                    !plan_field_equal(&f->list->fields[k], ia + j * f->list->item_size,
                                      ib + j * f->list->item_size))
                    fail_msg("%s[%zu].%s differs", f->path, j, f->list->fields[k].path);
    }
}

static void test_projection_keeps_the_first_edition_and_says_what_is_missing(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct plan full, p;
    int reduced = -1;

    tst_hub_import_published(e, 0, NHS, id);
    plan_init(&full);
    plan_init(&p);
    assert_int_equal(hub_plan_get(e->h, id, 0, &full), CMC_OK);
    assert_int_equal(plan_edition(&full), 2);
    /* a current device: nothing changes */
    assert_int_equal(plan_copy(&p, &full), CMC_OK);
    assert_int_equal(hub_edition_project(&p, PLAN_EDITION_CURRENT, &reduced), CMC_OK);
    assert_int_equal(reduced, 0);
    assert_true(plan_equal(&p, &full));
    /* a first-edition device: every first-edition field as it was, nothing of the second
     * edition, and the note first in the ceiling, above the ceiling itself */
    assert_int_equal(hub_edition_project(&p, 1, &reduced), CMC_OK);
    assert_int_equal(reduced, 1);
    assert_int_equal(plan_edition(&p), 1);
    assert_first_edition_equal(&p, &full);
    assert_true(starts_with(p.ceiling_of_treatment, HUB_EDITION_NOTE));
    assert_non_null(strstr(p.ceiling_of_treatment, "CONTENT THIS DEVICE CANNOT SHOW"));
    if (full.ceiling_of_treatment != NULL)
        assert_string_equal(p.ceiling_of_treatment + strlen(HUB_EDITION_NOTE) + 1,
                            full.ceiling_of_treatment);
    assert_int_equal(plan_validate(&p, PLAN_CHECK_COMPLETE), CMC_OK);
    plan_free(&p);
    plan_free(&full);

    /* a first-edition plan reaches a first-edition device untouched, with no note */
    tst_example_plan_parse(&full);
    assert_int_equal(plan_edition(&full), 1);
    assert_int_equal(plan_copy(&p, &full), CMC_OK);
    assert_int_equal(hub_edition_project(&p, 1, &reduced), CMC_OK);
    assert_int_equal(reduced, 0);
    assert_true(plan_equal(&p, &full));
    plan_free(&p);
    plan_free(&full);
}

static void test_note_as_a_problem_when_the_ceiling_is_full(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct plan p;
    int reduced = 0;
    size_t cap = plan_field_by_path("ceiling_of_treatment")->max_len;

    tst_hub_import_published(e, 0, NHS, id);
    plan_init(&p);
    assert_int_equal(hub_plan_get(e->h, id, 0, &p), CMC_OK);
    size_t n_problems = p.n_anticipated_problems;
    cmc_free(p.ceiling_of_treatment);
    p.ceiling_of_treatment = cmc_malloc(cap + 1);
    assert_non_null(p.ceiling_of_treatment);
    memset(p.ceiling_of_treatment, 'c', cap);
    p.ceiling_of_treatment[cap] = '\0';
    assert_int_equal(hub_edition_project(&p, 1, &reduced), CMC_OK);
    assert_int_equal(reduced, 1);
    assert_int_equal(strlen(p.ceiling_of_treatment), cap); /* never cut */
    assert_int_equal(p.n_anticipated_problems, n_problems + 1);
    assert_string_equal(p.anticipated_problems[n_problems].id, HUB_EDITION_NOTE_ID);
    assert_string_equal(p.anticipated_problems[n_problems].guidance, HUB_EDITION_NOTE);
    assert_int_equal(plan_validate(&p, PLAN_CHECK_COMPLETE), CMC_OK);
    plan_free(&p);
}

/* Pulls one page for device `d` at `edition` from its cursor, applies it to *held (puts
 * replace it, deltas apply to it) and returns the page's header. */
static struct bundle_header pull_apply(struct tst_hub *e, struct tst_device *d, uint64_t edition,
                                       struct plan *held)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    assert_int_equal(hub_pull_edition(e->h, d->id, d->cursor, d->cursor, 0, edition, &buf, &len),
                     CMC_OK);
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == BUNDLE_OP_PUT) {
            /* what a first-edition agent's strict decoder would say of it */
            struct plan strict;
            assert_int_equal(plan_unpack(ops[i].packed, ops[i].packed_len, &strict), CMC_OK);
            plan_free(&strict);
            plan_free(held);
            assert_int_equal(plan_copy(held, &ops[i].plan), CMC_OK);
        } else if (ops[i].kind == BUNDLE_OP_DELTA) {
            assert_int_equal(ops[i].base_version, held->version);
            assert_int_equal(plan_change_apply(held, &ops[i].change), CMC_OK);
        }
    }
    d->cursor = hdr.to_cursor;
    bundle_ops_free(ops, n);
    cmc_free(buf);
    return hdr;
}

static void test_first_edition_device_is_served_the_first_edition(void **state)
{
    struct tst_hub *e = *state;
    char id[PLAN_ID_LEN + 1];
    struct tst_device old, cur;
    struct plan held_old, held_cur, hub_copy, want;
    int reduced = 0;
    const char *change = "{\"set\": {\"prognosis\": \"days to weeks\","
                         " \"communication.needs\": \"Hard of hearing: face her when speaking\"}}";

    tst_hub_import_published(e, 0, NHS, id);
    tst_device_new(e, &old, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, &cur, "region:" TST_REGION, "urgent_care");
    plan_init(&held_old);
    plan_init(&held_cur);
    plan_init(&hub_copy);
    plan_init(&want);

    struct bundle_header h1 = pull_apply(e, &old, 1, &held_old);
    assert_false(h1.flags & BUNDLE_FLAG_EDITION2);
    assert_int_equal(bundle_edition(&h1), 1);
    assert_int_equal(plan_edition(&held_old), 1);
    assert_true(starts_with(held_old.ceiling_of_treatment, HUB_EDITION_NOTE));
    struct bundle_header h2 = pull_apply(e, &cur, PLAN_EDITION_CURRENT, &held_cur);
    assert_int_equal(bundle_edition(&h2), 2);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_true(plan_equal(&held_cur, &hub_copy));
    plan_free(&hub_copy);

    /* a new version: the old device's copy becomes the new version's projection (by delta
     * or whole), the current device's the new version itself */
    assert_int_equal(hub_plan_edit(e->h, "nurse1", id, change, strlen(change), NULL), CMC_OK);
    tst_hub_publish(e, id);
    pull_apply(e, &old, 1, &held_old);
    pull_apply(e, &cur, PLAN_EDITION_CURRENT, &held_cur);
    assert_int_equal(hub_plan_get(e->h, id, 0, &hub_copy), CMC_OK);
    assert_true(plan_equal(&held_cur, &hub_copy));
    assert_string_equal(held_old.prognosis, "days to weeks");
    assert_int_equal(plan_copy(&want, &hub_copy), CMC_OK);
    assert_int_equal(hub_edition_project(&want, 1, &reduced), CMC_OK);
    assert_true(plan_equal(&held_old, &want));

    plan_free(&held_old);
    plan_free(&held_cur);
    plan_free(&hub_copy);
    plan_free(&want);
    tst_device_free_all(&old, &cur, NULL);
}

/* A care home's address or "no known allergies" alone makes a plan second-edition: a
 * first-edition device gets the home's name and the empty list, and the note. */
static void test_care_home_address_and_allergies_status_are_second_edition(void **state)
{
    (void)state;
    struct plan p;
    int reduced = 0;
    tst_example_plan_parse(&p);
    assert_int_equal(plan_edition(&p), 1);
    cmc_free(p.care_home);
    p.care_home = cmc_strdup("Rosewood Court Care Home");
    assert_int_equal(plan_edition(&p), 1);
    p.care_home_address = cmc_strdup("14 Lordship Lane, London SE22 8HN");
    assert_int_equal(plan_edition(&p), 2);
    assert_int_equal(hub_edition_project(&p, 1, &reduced), CMC_OK);
    assert_int_equal(reduced, 1);
    assert_null(p.care_home_address);
    assert_string_equal(p.care_home, "Rosewood Court Care Home");
    assert_true(starts_with(p.ceiling_of_treatment, HUB_EDITION_NOTE));
    assert_int_equal(plan_edition(&p), 1);
    plan_free(&p);

    tst_example_plan_parse(&p);
    plan_field_clear(plan_field_by_path("allergies"), &p);
    p.allergies_status = PLAN_ALLERGIES_NKA;
    assert_int_equal(plan_edition(&p), 2);
    assert_int_equal(hub_edition_project(&p, 1, &reduced), CMC_OK);
    assert_int_equal(reduced, 1);
    assert_int_equal(p.allergies_status, PLAN_ALLERGIES_NONE);
    assert_true(starts_with(p.ceiling_of_treatment, HUB_EDITION_NOTE));
    plan_free(&p);
}

TST_HUB_MAIN(test_projection_keeps_the_first_edition_and_says_what_is_missing,
             test_care_home_address_and_allergies_status_are_second_edition,
             test_note_as_a_problem_when_the_ceiling_is_full,
             test_first_edition_device_is_served_the_first_edition)
