/*
 * test_agent_edition.c - what the crew is told on the device about a plan it cannot show
 * whole or that breaks a clinical rule: the card model's notices, in all three outputs
 * (terminal, --json, page). A plan with fields of a later edition says "update the agent"
 * and shows the rest; a plan breaking a rule is shown with the rule named, never hidden; a
 * plan that keeps every rule and holds nothing unknown carries neither notice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/card.h"
#include "agent/web_html.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/card_page.h"
#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"

#define NOW 1780000000 /* 2026-05-28, after every date in the example plan */

/* The three outputs of the model of p, in one string each; free() the terminal, cmc_free() the page,
 * json_decref the JSON. */
struct outputs {
    char *term;
    json_t *json;
    char *page;
};

static void render(const struct plan *p, struct card_model *m, struct outputs *o)
{
    struct card_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.now = NOW;
    ctx.last_sync = NOW - 60;
    ctx.lease_days_left = -1;
    card_build(p, &ctx, m);
    o->term = tst_card_text(m);
    o->json = card_to_json(p, m);
    assert_non_null(o->json);
    struct web_chrome chrome = { .title = "Plan", .user = "u", .role = "urgent care", .csrf = "t" };
    struct web_card card = { .p = p, .ctx = &ctx, .view = WEB_VIEW_CARD };
    o->page = tst_card_page(&chrome, &card);
}

static void outputs_free(struct outputs *o)
{
    free(o->term);
    cmc_free(o->page);
    json_decref(o->json);
}

static void test_a_plan_that_keeps_the_rules_has_no_notice(void **state)
{
    (void)state;
    struct plan p;
    struct card_model m;
    struct outputs o;
    tst_example_plan_parse(&p);
    render(&p, &m, &o);
    assert_false(m.banner.newer_content);
    assert_null(m.banner.rule);
    assert_null(strstr(o.term, "CANNOT SHOW"));
    assert_null(strstr(o.term, "CHECK THIS PLAN"));
    assert_false(json_is_true(json_object_get(json_object_get(o.json, "banner"), "newer_content")));
    assert_true(json_is_null(json_object_get(json_object_get(o.json, "banner"), "rule")));
    assert_null(strstr(o.page, "CANNOT SHOW"));
    assert_null(strstr(o.page, "CHECK THIS PLAN"));
    outputs_free(&o);
    plan_free(&p);
}

static void test_later_edition_content_says_update_the_agent(void **state)
{
    (void)state;
    struct plan p, kept;
    struct card_model m;
    struct outputs o;
    uint8_t *mp = NULL, *later;
    size_t mlen = 0;
    tst_example_plan_parse(&p);
    assert_int_equal(plan_pack(&p, &mp, &mlen), CMC_OK);
    later = tst_plan_with_fields(mp, mlen, 1, "\x64\xa1x", 3); /* field 100, unknown here */
    assert_int_equal(plan_unpack_keep(later, mlen + 3, &kept), CMC_OK);
    render(&kept, &m, &o);
    assert_true(m.banner.newer_content);
    assert_non_null(strstr(o.term, "THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW - update the agent"));
    assert_true(json_is_true(json_object_get(json_object_get(o.json, "banner"), "newer_content")));
    assert_non_null(strstr(o.page, "THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW"));
    /* and what it can show is all there */
    assert_non_null(strstr(o.term, "DNACPR - do NOT attempt CPR"));
    assert_non_null(strstr(o.term, p.patient.family_name));
    outputs_free(&o);
    plan_free(&kept);
    plan_free(&p);
    cmc_free(mp);
    cmc_free(later);
}

static void test_a_plan_breaking_a_rule_is_shown_with_the_rule_named(void **state)
{
    (void)state;
    struct plan p;
    struct card_model m;
    struct outputs o;
    tst_example_plan_parse(&p);
    assert_int_equal(p.resuscitation.decision, PLAN_CPR_DNACPR);
    cmc_free(p.resuscitation.decided_by); /* a DNACPR nobody decided */
    p.resuscitation.decided_by = NULL;
    render(&p, &m, &o);
    assert_non_null(m.banner.rule);
    assert_string_equal(m.banner.rule, "dnacpr-recorded");
    assert_non_null(strstr(m.banner.rule_detail, "resuscitation.decided_by"));
    assert_non_null(strstr(o.term, "CHECK THIS PLAN: it breaks clinical rule dnacpr-recorded"));
    json_t *b = json_object_get(o.json, "banner");
    assert_string_equal(json_string_value(json_object_get(b, "rule")), "dnacpr-recorded");
    assert_int_equal(json_integer_value(json_object_get(b, "rules_broken")), 1);
    assert_non_null(strstr(o.page, "CHECK THIS PLAN"));
    assert_non_null(strstr(o.page, "dnacpr-recorded"));
    /* the plan itself is still all there */
    assert_non_null(strstr(o.term, "DNACPR - do NOT attempt CPR"));
    outputs_free(&o);
    plan_free(&p);
}

TST_MAIN(NULL, NULL, NULL, test_a_plan_that_keeps_the_rules_has_no_notice,
         test_later_edition_content_says_update_the_agent,
         test_a_plan_breaking_a_rule_is_shown_with_the_rule_named)
