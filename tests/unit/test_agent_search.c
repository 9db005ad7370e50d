/*
 * test_agent_search.c - honest search: a crew is told how many plans matched when it is not
 * shown them all ("showing 20 of 551 - add date of birth or postcode"), and names match
 * whatever their case, accents, hyphens and apostrophes (O'Brien = OBrien = o'brien, Nunez =
 * Nuñez, Smith-Jones = Smith Jones).
 */
#include "agent/store.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/db.h"
#include "sync/plan.h"
#include "tests/support/store_fixture.h"
#include "tests/support/store_plans.h"
#include "tests/support/run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void put_named(store *s, unsigned n, const char *given, const char *family, const char *dob,
                      const char *postcode)
{
    struct plan p;
    tst_plan_make(&p, n, PLAN_STATUS_PUBLISHED, 1);
    tst_plan_set_identity(&p, given, family, dob, postcode);
    tst_store_put(s, &p, n);
    plan_free(&p);
}

static size_t search(store *s, const char *name, const char *dob, const char *postcode, size_t *total)
{
    struct store_query q = { .name = name, .date_of_birth = dob, .postcode = postcode };
    struct store_hit *h = NULL;
    size_t n = 0;
    assert_int_equal(store_search_counted(s, &q, STORE_SEARCH_SHOWN, &h, &n, total), CMC_OK);
    store_hits_free(h, n);
    return n;
}

static void test_total_beyond_shown(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    for (unsigned i = 0; i < 55; i++) {
        char dob[11];
        snprintf(dob, sizeof dob, "19%02u-03-14", 20 + i);
        put_named(s, 500 + i, i % 2 ? "Ada" : "Bola", "Adeyemi", dob, i < 5 ? "SE15 4QT" : "N1 9GU");
    }
    put_named(s, 600, "Ada", "Brown", "1950-01-01", "SE15 4QT");
    size_t total = 0;
    assert_int_equal(search(s, "Adeyemi", NULL, NULL, &total), STORE_SEARCH_SHOWN);
    assert_int_equal(total, 55);
    char words[160];
    struct store_query q = { .name = "Adeyemi" };
    store_search_words(&q, STORE_SEARCH_SHOWN, total, words, sizeof words);
    assert_string_equal(words, "showing 20 of 55 - add date of birth or postcode");
    /* narrowed: every match shown, and no notice */
    assert_int_equal(search(s, "Adeyemi", NULL, "SE15 4QT", &total), 5);
    assert_int_equal(total, 5);
    struct store_query q2 = { .name = "Adeyemi", .postcode = "SE15 4QT" };
    store_search_words(&q2, 5, 5, words, sizeof words);
    assert_string_equal(words, "");
    /* a postcode only: the notice asks for what is missing */
    assert_int_equal(search(s, NULL, NULL, "N1 9GU", &total), STORE_SEARCH_SHOWN);
    assert_int_equal(total, 50);
    struct store_query q3 = { .postcode = "N1 9GU" };
    store_search_words(&q3, STORE_SEARCH_SHOWN, total, words, sizeof words);
    assert_string_equal(words, "showing 20 of 50 - add date of birth or name");
    struct store_query q4 = { .name = "a", .date_of_birth = "1950-01-01", .postcode = "SE1" };
    store_search_words(&q4, 20, 21, words, sizeof words);
    assert_string_equal(words, "showing 20 of 21 - add more of the name");
    /* the old entry point still answers at most its limit */
    struct store_hit *h = NULL;
    size_t n = 0;
    assert_int_equal(store_search(s, &(struct store_query){ .name = "adeyemi" }, 7, &h, &n), CMC_OK);
    assert_int_equal(n, 7);
    store_hits_free(h, n);
    store_close(s);
}

static void test_folded_names(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    put_named(s, 700, "Siobhan", "O'Brien", "1940-01-01", "SE15 4QT");
    put_named(s, 701, "Jos\xc3\xa9", "Nu\xc3\xb1" "ez", "1941-01-01", "SE15 4QT");
    put_named(s, 702, "Ann", "Smith-Jones", "1942-01-01", "SE15 4QT");
    put_named(s, 703, "Zo\xc3\xab", "\xc3\x98stergaard", "1943-01-01", "SE15 4QT");
    static const struct {
        const char *typed;
        size_t want;
    } cases[] = {
        { "O'Brien", 1 }, { "OBrien", 1 }, { "o'brien", 1 }, { "O\xe2\x80\x99" "Brien", 1 }, { "obr", 1 },
        { "Nunez", 1 }, { "NU\xc3\x91" "EZ", 1 }, { "nu\xc3\xb1" "ez", 1 },
        { "Smith-Jones", 1 }, { "Smith Jones", 1 }, { "smithjones", 1 }, { "SMITH", 1 },
        { "Ann Smith-Jones", 1 }, { "Smith-Jones Ann", 1 }, { "jose nunez", 1 },
        { "ostergaard", 1 }, { "Zoe", 1 }, { "Brown", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t total = 0;
        size_t n = search(s, cases[i].typed, NULL, NULL, &total);
        if (n != cases[i].want || total != cases[i].want)
            fail_msg("'%s': %zu shown, %zu in all; want %zu", cases[i].typed, n, total, cases[i].want);
    }
    store_close(s);
}

/* A replica indexed before names folded typographic apostrophes keeps "o\u2019brien" in its
 * index row: migration 5 folds it, so the plan is found and its row still matches it. */
static void test_migration_folds_old_rows(void **state)
{
    struct tst_store_env *f = *state;
    store *s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    put_named(s, 800, "Siobh\xc3\xa1n", "O\xe2\x80\x99" "Brien\xe2\x80\x93" "Hart", "1944-01-01", "SE15 4QT");
    tst_store_exec(s, "UPDATE plan_identity SET family_name = 'o' || char(8217) || 'brien' ||"
                   " char(8211) || 'hart'; DROP TABLE plan_seals;"
                   " ALTER TABLE audit DROP COLUMN seal; PRAGMA user_version = 4;", NULL);
    store_close(s);
    s = tst_store_open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(tst_store_sql_int(s, "SELECT count(*) FROM plan_identity WHERE family_name = ?1",
                                       "obrienhart"),
                     1);
    size_t total = 0;
    assert_int_equal(search(s, "OBrien-Hart", NULL, NULL, &total), 1);
    assert_int_equal(search(s, "O\xe2\x80\x99" "Brien", NULL, NULL, &total), 1);
    assert_int_equal(store_verify(s), CMC_OK);
    store_close(s);
}

TST_MAIN(NULL, tst_store_setup, tst_store_teardown, test_total_beyond_shown, test_folded_names,
         test_migration_folds_old_rows)
