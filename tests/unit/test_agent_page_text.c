/* The page's side of text hygiene, honest search and break glass, without a browser: escaping
 * neutralises controls, bidirectional and invisible characters and isolates text beyond ASCII
 * in <bdi> (never inside an attribute); a cut search list says so; a lease-locked copy's page
 * offers the break-glass form. Server-level break glass is tests/e2e/test_break_glass.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/lease.h"
#include "agent/web_html.h"
#include "platform/err.h"
#include "tests/support/run.h"

#include <string.h>

static char *render_text(const char *s, int attr, struct web_buf *b)
{
    web_buf_init(b);
    if (attr)
        web_buf_attr(b, s);
    else
        web_buf_text(b, s);
    assert_int_equal(web_buf_status(b), CMC_OK);
    return b->p;
}

static void test_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int attr;
        const char *want;
    } cases[] = {
        { "Okafor <b>", 0, "Okafor &lt;b&gt;" },
        /* controls: replaced, never passed */
        { "a\x1b[2Jb\r\x07", 0, "a\xef\xbf\xbd[2Jb\xef\xbf\xbd\xef\xbf\xbd" },
        /* a right-to-left override: replaced, and the text isolated */
        { "Mag\xe2\x80\xaegie", 0, "<bdi>Mag\xef\xbf\xbdgie</bdi>" },
        /* Arabic, kept and isolated; ZWJ kept */
        { "\xd9\x81\xd8\xa7 12", 0, "<bdi>\xd9\x81\xd8\xa7 12</bdi>" },
        { "\xe0\xa4\x95\xe2\x80\x8d", 0, "<bdi>\xe0\xa4\x95\xe2\x80\x8d</bdi>" },
        /* ill-formed UTF-8 and a zero width space */
        { "x\xff\xe2\x80\x8by", 0, "<bdi>x\xef\xbf\xbd\xef\xbf\xbdy</bdi>" },
        /* attributes: the same escaping, never markup */
        { "N\xc3\xba\xc3\xb1" "ez\"\xe2\x80\xae", 1, "N\xc3\xba\xc3\xb1" "ez&quot;\xef\xbf\xbd" },
        /* no value at all */
        { NULL, 1, "-" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct web_buf b;
        const char *got = render_text(cases[i].in, cases[i].attr, &b);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
        web_buf_free(&b);
    }
}

static void test_cut_list_says_so(void **state)
{
    (void)state;
    struct store_hit hits[2];
    memset(hits, 0, sizeof hits);
    strcpy(hits[0].plan_id, "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11");
    strcpy(hits[0].nhs_number, "9434765919");
    hits[0].status = PLAN_STATUS_PUBLISHED;
    hits[1] = hits[0];
    struct web_chrome c = { .title = "Find a patient", .user = "medic", .role = "urgent care", .csrf = "00", .night = -1 };
    struct web_home h;
    memset(&h, 0, sizeof h);
    h.copy_age = "synced 1 h ago";
    h.hits = hits;
    h.n_hits = 2;
    h.total = 551;
    h.shown_words = "showing 2 of 551 - add date of birth or postcode";
    h.searched = 1;
    struct web_buf b;
    web_buf_init(&b);
    web_render_home(&b, &c, &h);
    assert_int_equal(web_buf_status(&b), CMC_OK);
    assert_non_null(strstr(b.p, "Only 2 of 551 matching plans shown"));
    assert_non_null(strstr(b.p, "showing 2 of 551 - add date of birth or postcode"));
    assert_null(strstr(b.p, "2 candidates"));
    assert_null(strstr(b.p, "locks in"));
    web_buf_free(&b);
    /* the lease warning on the find-a-patient page */
    h.lease_days_left = 1;
    web_buf_init(&b);
    web_render_home(&b, &c, &h);
    assert_non_null(strstr(b.p, "This copy locks in 1 day without a sync."));
    h.lease_days_left = 0;
    web_buf_free(&b);
    /* all shown: the ordinary heading */
    h.total = 2;
    web_buf_init(&b);
    web_render_home(&b, &c, &h);
    assert_non_null(strstr(b.p, "2 candidates"));
    assert_null(strstr(b.p, "Only 2"));
    web_buf_free(&b);
}

static void test_glass_form(void **state)
{
    (void)state;
    struct web_chrome c = { .title = "Locked copy", .night = -1 };
    struct web_buf b;
    web_buf_init(&b);
    web_render_glass(&b, &c, "abcd", "this replica is locked: it has not synced", "crew\xe2\x80\xae");
    assert_int_equal(web_buf_status(&b), CMC_OK);
    assert_non_null(strstr(b.p, "action=\"/break-glass\""));
    assert_non_null(strstr(b.p, "name=\"pre\" value=\"abcd\""));
    assert_non_null(strstr(b.p, "name=\"reason\""));
    assert_non_null(strstr(b.p, "minlength=\"8\""));
    assert_non_null(strstr(b.p, "name=\"nhs\""));
    assert_non_null(strstr(b.p, "type=\"password\""));
    assert_non_null(strstr(b.p, "value=\"crew\xef\xbf\xbd\"")); /* no <bdi> inside the attribute */
    web_buf_free(&b);
}

static void test_reason_rules(void **state)
{
    (void)state;
    char out[LEASE_REASON_MAX + 1];
    assert_int_equal(lease_reason_check(NULL, out), CMC_ERR_USAGE);
    assert_int_equal(lease_reason_check("  short  ", out), CMC_ERR_USAGE);
    assert_int_equal(lease_reason_check("arrest\x1b[2J now", out), CMC_ERR_USAGE);
    assert_int_equal(lease_reason_check("two\nlines here", out), CMC_ERR_USAGE);
    char longer[LEASE_REASON_MAX + 8];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(lease_reason_check(longer, out), CMC_ERR_USAGE);
    assert_int_equal(lease_reason_check("  cardiac arrest, no network  ", out), CMC_OK);
    assert_string_equal(out, "cardiac arrest, no network");
}

static void test_days_left(void **state)
{
    (void)state;
    struct lease_info li = { .lease_days = 14, .since = 1000, .elapsed = 0, .locked = 0 };
    assert_int_equal(lease_days_left(&li, 2), -1);
    li.elapsed = 12 * 86400;
    assert_int_equal(lease_days_left(&li, 2), 2);
    li.elapsed = 12 * 86400 + 1;
    assert_int_equal(lease_days_left(&li, 2), 2);
    li.elapsed = 13 * 86400 + 100;
    assert_int_equal(lease_days_left(&li, 2), 1);
    assert_int_equal(lease_days_left(&li, 0), -1); /* warning off */
    li.elapsed = 15 * 86400;
    li.locked = 1;
    assert_int_equal(lease_days_left(&li, 2), -1);
    assert_int_equal(lease_age_days(&li), 15);
    li.lease_days = 0;
    li.locked = 0;
    assert_int_equal(lease_days_left(&li, 2), -1); /* no lease */
}

TST_MAIN(NULL, NULL, NULL, test_escaping, test_cut_list_says_so, test_glass_form, test_reason_rules,
         test_days_left)
