/* store_plans.c - see store_plans.h. */
#include "tests/support/store_plans.h"

#include "agent/store_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "tests/support/example_plan.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void tst_set_str(char **field, const char *v)
{
    cmc_free(*field);
    *field = v != NULL ? cmc_strdup(v) : NULL;
    if (v != NULL)
        assert_non_null(*field);
}

void tst_make_nhs(unsigned seed, char out[PLAN_NHS_LEN + 1])
{
    for (unsigned k = seed;; k++) {
        unsigned prefix = 400000000u + (k * 7919u) % 500000000u;
        char d[10];
        snprintf(d, sizeof d, "%09u", prefix);
        int sum = 0;
        for (int i = 0; i < 9; i++)
            sum += (d[i] - '0') * (10 - i);
        int check = 11 - sum % 11;
        if (check == 11)
            check = 0;
        if (check == 10)
            continue;
        memcpy(out, d, 9);
        out[9] = (char)('0' + check);
        out[10] = '\0';
        assert_true(plan_nhs_valid(out));
        return;
    }
}

void tst_make_plan_id(unsigned n, char out[PLAN_ID_LEN + 1])
{
    snprintf(out, PLAN_ID_LEN + 1, "00000000-0000-4000-8000-%012u", n);
}

void tst_plan_make(struct plan *p, unsigned n, int status, int64_t version)
{
    char id[PLAN_ID_LEN + 1], nhs[PLAN_NHS_LEN + 1];
    char *json = tst_example_plan_or_fail();
    plan_init(p);
    assert_int_equal(plan_from_json(json, strlen(json), p), CMC_OK);
    free(json);
    tst_make_plan_id(n, id);
    tst_make_nhs(n, nhs);
    tst_set_str(&p->plan_id, id);
    tst_set_str(&p->nhs_number, nhs);
    p->status = status;
    p->version = version;
}

void tst_plan_set_identity(struct plan *p, const char *given, const char *family,
                           const char *dob, const char *postcode)
{
    tst_set_str(&p->patient.given_name, given);
    tst_set_str(&p->patient.family_name, family);
    tst_set_str(&p->patient.date_of_birth, dob);
    tst_set_str(&p->patient.postcode, postcode);
}

store *tst_store_open_as(const struct tst_store_env *f, int role)
{
    return tst_store_open_keyed(f, role, NULL, NULL);
}

store *tst_store_open_keyed(const struct tst_store_env *f, int role, const struct cry_secret *role_key,
                            const struct cry_secret *sign_key)
{
    struct store_session sess;
    memset(&sess, 0, sizeof sess);
    snprintf(sess.user, sizeof sess.user, "%s", role == STORE_ROLE_CLINICIAN ? "nurse" : "crew");
    sess.role = role;
    sess.role_key = role_key;
    sess.sign_key = sign_key;
    store *s = NULL;
    int rc = store_open(f->path, f->key, &sess, &s);
    if (rc != CMC_OK)
        fail_msg("store_open: %s", cmc_errmsg());
    return s;
}

void tst_store_put(store *s, const struct plan *p, int64_t seq)
{
    int rc = store_put_version(s, p, seq);
    if (rc != CMC_OK)
        fail_msg("store_put_version: %s (%s)", cmc_errname(rc), cmc_errmsg());
}

size_t tst_store_search_n(store *s, const char *name, const char *dob, const char *postcode,
                          struct store_hit **hits)
{
    struct store_query q = {name, dob, postcode};
    size_t n = 0;
    int rc = store_search(s, &q, 50, hits, &n);
    if (rc != CMC_OK)
        fail_msg("store_search: %s", cmc_errmsg());
    return n;
}

/* The statement prepared on the replica, with ?1 bound to `param` when there is one. */
static sqlite3_stmt *prepare(store *s, const char *sql, const char *param)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_test_db(s), sql, -1, &st, NULL), SQLITE_OK);
    if (param != NULL)
        assert_int_equal(sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT), SQLITE_OK);
    return st;
}

sqlite3_stmt *tst_store_row(store *s, const char *sql, const char *param)
{
    sqlite3_stmt *st = prepare(s, sql, param);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    return st;
}

int64_t tst_store_sql_int(store *s, const char *sql, const char *param)
{
    sqlite3_stmt *st = tst_store_row(s, sql, param);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void tst_store_exec(store *s, const char *sql, const char *param)
{
    if (param == NULL) {
        char *msg = NULL, why[256];
        if (sqlite3_exec(store_test_db(s), sql, NULL, NULL, &msg) == SQLITE_OK)
            return;
        snprintf(why, sizeof why, "%s", msg != NULL ? msg : "?");
        sqlite3_free(msg);
        fail_msg("%s: %s", sql, why);
    }
    sqlite3_stmt *st = prepare(s, sql, param);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

int tst_dir_contains(const char *dir, const char *needle)
{
    int found = 0;
    size_t nlen = strlen(needle);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        char p[512];
        uint8_t *buf = NULL;
        size_t len = 0;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        assert_int_equal(plat_read_file(p, 64u << 20, &buf, &len), CMC_OK);
        files++;
        for (size_t i = 0; len >= nlen && i <= len - nlen; i++)
            if (memcmp(buf + i, needle, nlen) == 0)
                found = 1;
        cmc_free(buf);
    }
    closedir(d);
    assert_true(files > 0);
    return found;
}
