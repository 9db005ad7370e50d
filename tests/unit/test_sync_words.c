/* Words: the edit distance and the "did you mean" rule both command lines use. */
#include "sync/words.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_distance_known_answers(void **state)
{
    (void)state;
    assert_int_equal(words_distance("", ""), 0);
    assert_int_equal(words_distance("lookup", "lookup"), 0);
    assert_int_equal(words_distance("lokup", "lookup"), 1);
    assert_int_equal(words_distance("kitten", "sitting"), 3);
    assert_int_equal(words_distance("", "sync"), 4);
    assert_int_equal(words_distance("revoke", ""), 6);
    char longer[WORDS_MAX_LEN + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_true(words_distance(longer, "a") == (size_t)-1);
}
#include "tests/support/run.h"

static void test_closest_suggests_only_near_words(void **state)
{
    (void)state;
    static const char *const subs[] = {"add", "list", "revoke", "rename", "wipe"};
    assert_string_equal(words_closest("lst", subs, 5), "list");
    assert_string_equal(words_closest("revok", subs, 5), "revoke");
    assert_null(words_closest("frobnicate", subs, 5));
    assert_null(words_closest("x", subs, 0));
    /* a third of the word's length, and at least 2 */
    assert_true(words_near("ab", 2));
    assert_false(words_near("ab", 3));
    assert_true(words_near("conflicts", 3));
    assert_false(words_near("conflicts", 4));
}

TST_MAIN(NULL, NULL, NULL, test_distance_known_answers, test_closest_suggests_only_near_words)
