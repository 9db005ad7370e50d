/* Three-way merge: one-sided changes merge, two-sided differing changes become conflicts, and
 * a property test over random pairs of edits shows no change from either side is ever lost
 * without a conflict being recorded (CPR decision, ADRT and allergies among the fields). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "sync/change.h"
#include "sync/merge.h"
#include "sync/plan.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"

static void apply_doc(struct plan *p, const char *doc)
{
    struct plan_change c;
    plan_change_init(&c);
    int rc = plan_change_from_json(doc, strlen(doc), &c);
    if (rc != CMC_OK)
        fail_msg("change document refused: %s (%s)", cmc_errmsg(), doc);
    rc = plan_change_apply(p, &c);
    if (rc != CMC_OK)
        fail_msg("change not applied: %s (%s)", cmc_errmsg(), doc);
    plan_change_free(&c);
}

/* The example plan with a second allergy, so that two sides can touch different items. */
static void load_base(struct plan *p)
{
    tst_example_plan_parse(p);
    apply_doc(p, "{\"add\":{\"allergies\":[{\"id\":\"a2\",\"substance\":\"Latex\","
                 "\"reaction\":\"Rash\",\"severity\":\"mild\"}]}}");
}

static void bump_remote(struct plan *remote)
{
    remote->version = 5;
}

/* The three sides of a merge, each the base plan (load_base) with its side's changes, and what
 * merging them gave: the merged plan and its conflicts. */
struct sides {
    struct plan base, local, remote, merged;
    struct merge_conflict *c;
    size_t n;
};

static void sides_load(struct sides *s)
{
    load_base(&s->base);
    load_base(&s->local);
    load_base(&s->remote);
    plan_init(&s->merged);
    s->c = NULL;
    s->n = 0;
}

/* Merges the sides, which must succeed. */
static void sides_merge(struct sides *s)
{
    assert_int_equal(plan_merge3(&s->base, &s->local, &s->remote, &s->merged, &s->c, &s->n), CMC_OK);
}

/* Applies each side's change document, makes the remote side a newer version from the hub when
 * `remote_newer`, and merges them. */
static void merge_with(struct sides *s, const char *local_doc, const char *remote_doc, int remote_newer)
{
    apply_doc(&s->local, local_doc);
    apply_doc(&s->remote, remote_doc);
    if (remote_newer)
        bump_remote(&s->remote);
    sides_merge(s);
}

/* Forgets the merge's result, keeping the sides. */
static void sides_unmerge(struct sides *s)
{
    cmc_free(s->c);
    s->c = NULL;
    s->n = 0;
    plan_free(&s->merged);
    plan_init(&s->merged);
}

static void sides_free(struct sides *s)
{
    sides_unmerge(s);
    plan_free(&s->base);
    plan_free(&s->local);
    plan_free(&s->remote);
}

/* Each test's sides, freshly loaded. */
static int sides_setup(void **state)
{
    static struct sides s;
    sides_load(&s);
    *state = &s;
    return 0;
}

static int sides_teardown(void **state)
{
    sides_free(*state);
    return 0;
}

static int has_conflict(const struct merge_conflict *c, size_t n, const char *path)
{
    return plan_merge_find(c, n, path) != NULL;
}

static void test_different_fields_merge_without_conflict(void **state)
{
    struct sides *t = *state;
    merge_with(t, "{\"set\":{\"prognosis\":\"days\"},\"update\":{\"allergies\":[{\"id\":\"a2\",\"reaction\":\"Hives\"}]}}",
               "{\"set\":{\"adrt.location\":\"In the purple folder\"},"
               "\"update\":{\"allergies\":[{\"id\":\"a1\",\"severity\":\"moderate\"}]}}", 1);
    assert_int_equal(t->n, 0);
    assert_string_equal(t->merged.prognosis, "days");
    assert_string_equal(t->merged.adrt.location, "In the purple folder");
    assert_string_equal(t->merged.allergies[1].reaction, "Hives");
    assert_int_equal(t->merged.allergies[0].severity, PLAN_SEVERITY_MODERATE);
    assert_int_equal(t->merged.version, 5); /* metadata is the hub's */
}

static void test_same_field_changed_differently_is_a_conflict(void **state)
{
    struct sides *t = *state;
    merge_with(t, "{\"set\":{\"resuscitation.decision\":\"for_cpr\"}}",
               "{\"set\":{\"resuscitation.decision\":\"not_yet_discussed\"}}", 1);
    assert_int_equal(t->n, 1);
    assert_string_equal(t->c[0].path, "resuscitation.decision");
    /* the merged plan holds the hub's value until the clinician decides */
    assert_int_equal(t->merged.resuscitation.decision, PLAN_CPR_NOT_DISCUSSED);
    char text[64];
    plan_merge_value_text(&t->local, &t->c[0], text, sizeof text);
    assert_string_equal(text, "for_cpr");
    assert_int_equal(plan_merge_take(&t->merged, &t->local, &t->c[0]), CMC_OK);
    assert_int_equal(t->merged.resuscitation.decision, PLAN_CPR_FOR_CPR);
    sides_unmerge(t);
    /* the same change on both sides is no conflict */
    apply_doc(&t->remote, "{\"set\":{\"resuscitation.decision\":\"for_cpr\"}}");
    sides_merge(t);
    assert_int_equal(t->n, 0);
}

static void test_item_removed_one_side_changed_other_is_a_conflict(void **state)
{
    struct sides *t = *state;
    merge_with(t, "{\"remove\":{\"allergies\":[\"a2\"]},\"update\":{\"medications\":[{\"id\":\"m2\",\"dose\":\"5 mg s/c\"}]}}",
               "{\"update\":{\"allergies\":[{\"id\":\"a2\",\"severity\":\"severe\"}]},"
               "\"remove\":{\"medications\":[\"m2\"]}}", 1);
    assert_int_equal(t->n, 2);
    assert_true(has_conflict(t->c, t->n, "allergies[a2]"));
    assert_true(has_conflict(t->c, t->n, "medications[m2]"));
    /* keep local for the allergy: removed; keep local for the medicine: restored with the new dose */
    assert_int_equal(plan_merge_take(&t->merged, &t->local, plan_merge_find(t->c, t->n, "allergies[a2]")), CMC_OK);
    assert_int_equal(plan_merge_take(&t->merged, &t->local, plan_merge_find(t->c, t->n, "medications[m2]")), CMC_OK);
    assert_int_equal(t->merged.n_allergies, 1);
    assert_int_equal(t->merged.n_medications, 2);
    assert_string_equal(t->merged.medications[1].dose, "5 mg s/c");
}

static void test_items_added_on_both_sides_are_kept(void **state)
{
    struct sides *t = *state;
    merge_with(t, "{\"add\":{\"allergies\":[{\"id\":\"a9\",\"substance\":\"Codeine\",\"reaction\":\"Vomiting\",\"severity\":\"moderate\"}]}}",
               "{\"add\":{\"allergies\":[{\"id\":\"a8\",\"substance\":\"Aspirin\",\"reaction\":\"Wheeze\",\"severity\":\"severe\"}]}}", 0);
    assert_int_equal(t->n, 0);
    assert_int_equal(t->merged.n_allergies, 4);
    assert_string_equal(t->merged.allergies[2].id, "a8");
    assert_string_equal(t->merged.allergies[3].id, "a9");
}

/* ---- property test ---------------------------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const char *cprs[] = { "for_cpr", "dnacpr", "not_yet_discussed" };
static const char *texts[] = { "days", "weeks", "months", "A", "B" };
static const char *sev[] = { "mild", "moderate", "severe" };

/* A random edit applied as a change document. Small value sets make both sides often touch the
 * same field, sometimes with the same value. */
static void random_edit(struct plan *p, int side)
{
    char doc[512];
    switch (rnd(9)) {
    case 0:
        snprintf(doc, sizeof doc, "{\"set\":{\"resuscitation.decision\":\"%s\"}}", cprs[rnd(3)]);
        break;
    case 1:
        snprintf(doc, sizeof doc, "{\"set\":{\"adrt.exists\":%s}}", rnd(2) ? "true" : "false");
        break;
    case 2:
        snprintf(doc, sizeof doc, "{\"set\":{\"prognosis\":\"%s\"}}", texts[rnd(5)]);
        break;
    case 3:
        snprintf(doc, sizeof doc, "{\"set\":{\"adrt.location\":\"%s\"}}", texts[rnd(5)]);
        break;
    case 4: {
        size_t idx;
        const char *id = rnd(2) ? "a1" : "a2";
        if (!plan_list_find(plan_field_by_path("allergies"), p, id, &idx))
            return;
        snprintf(doc, sizeof doc, "{\"update\":{\"allergies\":[{\"id\":\"%s\",\"%s\":\"%s\"}]}}", id,
                 rnd(2) ? "reaction" : "severity", rnd(2) ? sev[rnd(3)] : "moderate");
        if (strstr(doc, "\"reaction\"") != NULL)
            snprintf(doc, sizeof doc, "{\"update\":{\"allergies\":[{\"id\":\"%s\",\"reaction\":\"%s\"}]}}", id,
                     texts[rnd(5)]);
        break;
    }
    case 5: {
        size_t idx;
        const char *id = rnd(2) ? "a1" : "a2";
        if (!plan_list_find(plan_field_by_path("allergies"), p, id, &idx))
            return;
        snprintf(doc, sizeof doc, "{\"remove\":{\"allergies\":[\"%s\"]}}", id);
        break;
    }
    case 6: {
        char id[8];
        snprintf(id, sizeof id, "x%d%u", side, rnd(3));
        size_t idx;
        if (plan_list_find(plan_field_by_path("allergies"), p, id, &idx))
            return;
        snprintf(doc, sizeof doc,
                 "{\"add\":{\"allergies\":[{\"id\":\"%s\",\"substance\":\"%s\",\"reaction\":\"R\",\"severity\":\"%s\"}]}}",
                 id, texts[rnd(5)], sev[rnd(3)]);
        break;
    }
    case 7: {
        size_t idx;
        if (!plan_list_find(plan_field_by_path("medications"), p, "m2", &idx))
            return;
        if (rnd(3) == 0)
            snprintf(doc, sizeof doc, "{\"remove\":{\"medications\":[\"m2\"]}}");
        else
            snprintf(doc, sizeof doc, "{\"update\":{\"medications\":[{\"id\":\"m2\",\"dose\":\"%s\"}]}}", texts[rnd(5)]);
        break;
    }
    default:
        snprintf(doc, sizeof doc, "{\"set\":{\"preferred_place_of_death\":[\"%s\"]}}", rnd(2) ? "home" : "hospice");
        break;
    }
    apply_doc(p, doc);
}

/* A change on `side` (vs base) that the merged plan does not carry must be covered by a
 * conflict at that path, at the whole item, or at "plan". */
static void check_side_kept(const struct plan *base, const struct plan *side, const struct plan *merged,
                            const struct merge_conflict *c, size_t n, const char *who)
{
    if (has_conflict(c, n, "plan"))
        return;
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        if (f->flags & (PLAN_FF_META | PLAN_FF_KEY))
            continue;
        if (f->type != PLAN_F_LIST) {
            if (!plan_field_equal(f, base, side) && !plan_field_equal(f, side, merged) &&
                !has_conflict(c, n, f->path))
                fail_msg("%s change to %s lost without a conflict", who, f->path);
            continue;
        }
        const struct plan_list_desc *list = f->list;
        /* every item id on either the base or this side */
        const struct plan *owners[2] = { base, side };
        for (int o = 0; o < 2; o++) {
            size_t cnt;
            const char *items = plan_list_items(f, owners[o], &cnt);
            for (size_t k = 0; k < cnt; k++) {
                const char *id = plan_item_id(list, items + k * list->item_size);
                size_t bi, si, mi;
                int in_b = plan_list_find(f, base, id, &bi);
                int in_s = plan_list_find(f, side, id, &si);
                int in_m = plan_list_find(f, merged, id, &mi);
                char whole[MERGE_PATH_MAX];
                snprintf(whole, sizeof whole, "%s[%s]", f->path, id);
                size_t nb, ns, nm;
                const char *bi_items = plan_list_items(f, base, &nb);
                const char *si_items = plan_list_items(f, side, &ns);
                const char *mi_items = plan_list_items(f, merged, &nm);
                if (in_b != in_s || in_s != in_m) {
                    /* presence changed on this side but merged differs from it */
                    if (in_b != in_s && in_s != in_m && !has_conflict(c, n, whole))
                        fail_msg("%s %s of %s lost without a conflict", who, in_s ? "addition" : "removal", whole);
                    continue;
                }
                if (!in_s)
                    continue;
                for (size_t q = 1; q < list->n_fields; q++) {
                    const struct plan_field *itf = &list->fields[q];
                    const void *bv = bi_items + bi * list->item_size;
                    const void *sv = si_items + si * list->item_size;
                    const void *mv = mi_items + mi * list->item_size;
                    char p[MERGE_PATH_MAX];
                    snprintf(p, sizeof p, "%s[%s].%s", f->path, id, itf->path);
                    if (in_b && !plan_field_equal(itf, bv, sv) && !plan_field_equal(itf, sv, mv) &&
                        !has_conflict(c, n, p) && !has_conflict(c, n, whole))
                        fail_msg("%s change to %s lost without a conflict", who, p);
                }
            }
        }
    }
}

static void test_property_no_change_lost_without_conflict(void **state)
{
    (void)state;
    rng_state = 0x9e3779b97f4a7c15ull;
    int conflicts_seen = 0, clean_merges = 0, rounds = tst_rounds(3000);
    for (int iter = 0; iter < rounds; iter++) {
        struct sides t;
        struct plan merged2;
        sides_load(&t);
        int nl = 1 + (int)rnd(3), nr = 1 + (int)rnd(3);
        for (int i = 0; i < nl; i++)
            random_edit(&t.local, 1);
        for (int i = 0; i < nr; i++)
            random_edit(&t.remote, 2);
        bump_remote(&t.remote);
        struct merge_conflict *c2;
        size_t n2;
        sides_merge(&t);
        check_side_kept(&t.base, &t.local, &t.merged, t.c, t.n, "local");
        check_side_kept(&t.base, &t.remote, &t.merged, t.c, t.n, "remote");
        /* deterministic */
        assert_int_equal(plan_merge3(&t.base, &t.local, &t.remote, &merged2, &c2, &n2), CMC_OK);
        assert_true(plan_equal(&t.merged, &merged2));
        assert_int_equal(t.n, n2);
        for (size_t i = 0; i < t.n; i++)
            assert_string_equal(t.c[i].path, c2[i].path);
        /* settling every conflict with "local" yields a valid plan that keeps local's values */
        for (size_t i = 0; i < t.n; i++)
            assert_int_equal(plan_merge_take(&merged2, &t.local, &t.c[i]), CMC_OK);
        if (t.n > 0)
            conflicts_seen++;
        else
            clean_merges++;
        cmc_free(c2);
        plan_free(&merged2);
        sides_free(&t);
    }
    /* the generator must exercise both outcomes, or the property says nothing (at the full
     * count each is well over 100 of the 3,000) */
    assert_true(conflicts_seen > rounds / 30);
    assert_true(clean_merges > rounds / 30);
}

static void test_merge_out_of_memory_is_clean(void **state)
{
    struct sides *t = *state;
    apply_doc(&t->local, "{\"remove\":{\"allergies\":[\"a2\"]},\"set\":{\"prognosis\":\"days\"}}");
    apply_doc(&t->remote, "{\"update\":{\"allergies\":[{\"id\":\"a2\",\"severity\":\"severe\"}]}}");
    for (long i = 0;; i++) {
        cmc_alloc_fail_after(i, 1);
        int rc = plan_merge3(&t->base, &t->local, &t->remote, &t->merged, &t->c, &t->n);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            assert_int_equal(t->n, 1);
            break;
        }
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_null(t->c);
        assert_true(i < 10000);
    }
}

TST_MAIN(NULL, sides_setup, sides_teardown, test_different_fields_merge_without_conflict,
         test_same_field_changed_differently_is_a_conflict,
         test_item_removed_one_side_changed_other_is_a_conflict, test_items_added_on_both_sides_are_kept,
         test_property_no_change_lost_without_conflict, test_merge_out_of_memory_is_clean)
