/* Text hygiene: every class of character that can rewrite a screen is refused at every
 * boundary (plan JSON, msgpack, change documents) naming the field; newline and tab stay in
 * free text; legitimate non-Latin text stays; a plan read back from a replica an earlier
 * version wrote is still readable; the terminal and JSON printers neutralise what is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/change.h"
#include "sync/plan.h"
#include "sync/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"

/* The example plan with one string field replaced by `value` (raw bytes, JSON-escaped by
 * jansson when the plan is written back out). */
static int example_with(const char *path, const char *value, struct plan *out)
{
    struct plan p;
    tst_example_plan_parse(&p);
    const struct plan_field *f = plan_field_by_path(path);
    assert_non_null(f);
    char **slot = (char **)((char *)&p + f->offset);
    cmc_free(*slot);
    *slot = cmc_strdup(value);
    /* Through JSON: the codec a hub's intake and the CLI use. */
    char *json = NULL;
    size_t len = 0;
    plan_init(out);
    int rc = plan_to_json(&p, 0, &json, &len);
    if (rc == CMC_OK)
        rc = plan_from_json(json, len, out);
    cmc_free(json);
    plan_free(&p);
    return rc;
}

static void assert_refused(const char *path, const char *value, const char *words)
{
    struct plan p;
    int rc = example_with(path, value, &p);
    if (rc != CMC_ERR_INVALID)
        fail_msg("%s with a hostile value: rc %d, want INVALID", path, rc);
    const char *msg = cmc_errmsg();
    if (strncmp(msg, path, strlen(path)) != 0 || strstr(msg, words) == NULL)
        fail_msg("detail does not name %s and '%s': %s", path, words, msg);
    /* never the value itself */
    assert_null(strstr(msg, "FOR CPR"));
    plan_free(&p);
}

static void test_each_class_refused_naming_the_field(void **state)
{
    (void)state;
    assert_refused("ceiling_of_treatment", "Comfort\x1b[1A\r 2 CPR  FOR CPR - attempt CPR", "control character");
    assert_refused("ceiling_of_treatment", "erase\x1b[2J", "U+001B");
    assert_refused("prognosis", "weeks\r", "U+000D");
    assert_refused("prognosis", "bell\x07", "control character");
    assert_refused("prognosis", "del\x7f", "U+007F");
    assert_refused("prognosis", "csi\xc2\x9b" "2J", "U+009B");
    assert_refused("patient.preferred_name", "Maggie\xe2\x80\xae" "RPC ROF", "bidirectional");
    assert_refused("patient.family_name", "Ok\xe2\x81\xa6" "afor", "U+2066");
    assert_refused("patient.given_name", "Marg\xe2\x80\x8f" "aret", "U+200F");
    assert_refused("patient.given_name", "Mar\xd8\x9cgaret", "U+061C");
    assert_refused("patient.family_name", "Oka\xe2\x80\x8b" "for", "invisible");
    assert_refused("patient.family_name", "\xef\xbb\xbfOkafor", "U+FEFF");
    assert_refused("what_matters_to_me", "tag\xf3\xa0\x80\x81", "U+E0001");
    assert_refused("what_matters_to_me", "line\xe2\x80\xa8" "sep", "U+2028");
    /* one-line fields: no line break, no tab */
    assert_refused("patient.family_name", "Okafor\n 2 CPR  FOR CPR", "line break");
    assert_refused("resuscitation.decided_by", "Dr Eze\tX", "U+0009");
}

static void test_newline_tab_and_scripts_kept(void **state)
{
    (void)state;
    struct plan p;
    assert_int_equal(example_with("ceiling_of_treatment", "Line one\nline two\tindented", &p), CMC_OK);
    assert_string_equal(p.ceiling_of_treatment, "Line one\nline two\tindented");
    plan_free(&p);
    /* Arabic, Hebrew, Devanagari with ZWJ, Persian with ZWNJ, accents, CJK, emoji with ZWJ */
    static const char *names[] = {
        "\xd9\x81\xd8\xa7\xd8\xb7\xd9\x85\xd8\xa9",                 /* فاطمة */
        "\xd7\xa9\xd7\xa8\xd7\x94",                                 /* שרה */
        "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7",         /* क्‍ष */
        "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87", /* می‌خواه */
        "Nu\xc3\xb1" "ez O'Brien-S\xc3\xb8rensen",
        "\xe7\x8e\x8b\xe8\x8a\xb3",
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xe2\x9a\x95\xef\xb8\x8f",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (example_with("patient.family_name", names[i], &p) != CMC_OK)
            fail_msg("name %zu refused: %s", i, cmc_errmsg());
        assert_string_equal(p.patient.family_name, names[i]);
        plan_free(&p);
    }
}

static void test_msgpack_and_stored_reads(void **state)
{
    (void)state;
    struct plan p, q;
    tst_example_plan_parse(&p);
    cmc_free(p.ceiling_of_treatment);
    p.ceiling_of_treatment = cmc_strdup("x\x1b]0;owned\x07");
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(plan_pack(&p, &buf, &len), CMC_OK); /* packing does not validate */
    /* a bundle from a hub: refused */
    assert_int_equal(plan_unpack(buf, len, &q), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "ceiling_of_treatment"));
    assert_int_equal(plan_unpack_keep(buf, len, &q), CMC_ERR_INVALID);
    /* the device's own replica, written by an earlier version: still shown (escaped) */
    assert_int_equal(plan_unpack_stored(buf, len, &q), CMC_OK);
    assert_string_equal(q.ceiling_of_treatment, p.ceiling_of_treatment);
    plan_free(&q);
    cmc_free(buf);
    plan_free(&p);
}

static void test_change_documents(void **state)
{
    (void)state;
    struct plan_change c;
    static const char bad[] = "{\"set\": {\"ceiling_of_treatment\": \"ok\\u001b[2J\"}}";
    assert_int_equal(plan_change_from_json(bad, strlen(bad), &c), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "ceiling_of_treatment"));
    static const char bidi[] =
        "{\"add\": {\"contacts\": [{\"id\": \"c9\", \"role\": \"gp\", \"name\": \"Dr \\u202eX\"}]}}";
    assert_int_equal(plan_change_from_json(bidi, strlen(bidi), &c), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "contacts"));
    assert_non_null(strstr(cmc_errmsg(), "name"));
    static const char good[] = "{\"set\": {\"ceiling_of_treatment\": \"Ward-based care\\nno ICU\"}}";
    assert_int_equal(plan_change_from_json(good, strlen(good), &c), CMC_OK);
    plan_change_free(&c);
}

static char *terminal(const char *s)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    text_put_terminal(f, s, strlen(s));
    fclose(f);
    return out;
}

static void test_terminal_printer(void **state)
{
    (void)state;
    char *o = terminal("a\x1b[2Jb\rc\x07\x7f\n\td\xc2\x9b" "e\xe2\x80\xae" "f\xff" "g\xe2\x80\x8dh");
    assert_string_equal(o, "a^[[2Jb^Mc^G^?\n\td<U+009B>e<U+202E>f\xef\xbf\xbdg\xe2\x80\x8dh");
    for (const char *q = o; *q != '\0'; q++)
        assert_true((unsigned char)*q >= 0x20 || *q == '\n' || *q == '\t');
    free(o);
    o = terminal("Nu\xc3\xb1" "ez");
    assert_string_equal(o, "Nu\xc3\xb1" "ez");
    free(o);
}

static void test_json_printer(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    static const char doc[] = "{\"a\": \"x\xe2\x80\xae" "y\x7f\xf3\xa0\x80\x81\xc3\xb1\"}";
    text_put_json(f, doc, strlen(doc));
    fclose(f);
    assert_string_equal(out, "{\"a\": \"x\\u202ey\\u007f\\udb40\\udc01\xc3\xb1\"}");
    free(out);
}

TST_MAIN(NULL, NULL, NULL, test_each_class_refused_naming_the_field, test_newline_tab_and_scripts_kept,
         test_msgpack_and_stored_reads, test_change_documents, test_terminal_printer, test_json_printer)
