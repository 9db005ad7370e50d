/*
 * test_agent_store_pending.c - a clinician's pending local edits: who may make and list them,
 * the base version kept with each, idempotency ids and states.
 */
#include "platform/plat_test.h"
#include "platform/alloc_test.h"
#include "agent/store.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    char path[128];
    struct cry_secret *key;
};

/* ---- helpers --------------------------------------------------------------------------- */

/* The example plan (shared/examples/plan.json), read once from the shared folder beside the
 * repository ($CMC_SHARED overrides it; tests run from the repository root). */
static const char *example_plan(void)
{
    static char *json;
    static const char *const dirs[] = {"shared", "../shared", "../../shared"};
    const char *env = getenv("CMC_SHARED");
    for (size_t i = 0; json == NULL && i <= sizeof dirs / sizeof dirs[0]; i++) {
        char path[512];
        uint8_t *buf = NULL;
        size_t len = 0;
        const char *dir = i == 0 ? env : dirs[i - 1];
        if (dir == NULL)
            continue;
        snprintf(path, sizeof path, "%s/examples/plan.json", dir);
        if (plat_read_file(path, 1u << 20, &buf, &len) != CMC_OK) {
            cmc_err_clear();
            continue;
        }
        json = malloc(len + 1);
        assert_non_null(json);
        memcpy(json, buf, len);
        json[len] = '\0';
        cmc_free(buf);
    }
    if (json == NULL)
        fail_msg("the example plan shared/examples/plan.json was not found");
    return json;
}

static void set_str(char **field, const char *v)
{
    cmc_free(*field);
    *field = v != NULL ? cmc_strdup(v) : NULL;
    if (v != NULL)
        assert_non_null(*field);
}

/* A valid NHS number (Modulus 11) derived from `seed`. */
static void make_nhs(unsigned seed, char out[PLAN_NHS_LEN + 1])
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

static void make_plan_id(unsigned n, char out[PLAN_ID_LEN + 1])
{
    snprintf(out, PLAN_ID_LEN + 1, "00000000-0000-4000-8000-%012u", n);
}

/* The example plan with a new id, NHS number, status and version. */
static void make_plan(struct plan *p, unsigned n, int status, int64_t version)
{
    char id[PLAN_ID_LEN + 1], nhs[PLAN_NHS_LEN + 1];
    plan_init(p);
    const char *json = example_plan();
    assert_int_equal(plan_from_json(json, strlen(json), p), CMC_OK);
    make_plan_id(n, id);
    make_nhs(n, nhs);
    set_str(&p->plan_id, id);
    set_str(&p->nhs_number, nhs);
    p->status = status;
    p->version = version;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL || cry_init() != CMC_OK)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cmc-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/replica.db", f->dir);
    if (cry_secret_new(CRY_KEY_BYTES, &f->key) != CMC_OK)
        return -1;
    cry_random(f->key->buf, f->key->len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[512];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    remove(f->dir);
    cry_secret_free(f->key);
    free(f);
    cmc_alloc_fail_after(-1, 0);
    plat_fake_clock_disable();
    return 0;
}

static store *open_as(struct fixture *f, int role)
{
    struct store_session sess;
    memset(&sess, 0, sizeof sess);
    snprintf(sess.user, sizeof sess.user, "%s", role == STORE_ROLE_CLINICIAN ? "nurse" : "crew");
    sess.role = role;
    store *s = NULL;
    int rc = store_open(f->path, f->key, &sess, &s);
    if (rc != CMC_OK)
        fail_msg("store_open: %s", cmc_errmsg());
    return s;
}

static void put(store *s, const struct plan *p, int64_t seq)
{
    int rc = store_put_version(s, p, seq);
    if (rc != CMC_OK)
        fail_msg("store_put_version: %s (%s)", cmc_errname(rc), cmc_errmsg());
}

static int64_t sql_int(store *s, const char *sql, const char *param)
{
    sqlite3 *db = store_test_db(s);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (param != NULL)
        sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_pending_edits(void **state)
{
    struct fixture *f = *state;
    struct plan p;
    static const uint8_t change1[] = {0x91, 0x93, 0x01, 0x05, 0xa3, 'a', 'b', 'c'};
    static const uint8_t change2[] = {0x90};
    make_plan(&p, 80, PLAN_STATUS_PUBLISHED, 3);
    struct store_pending meta, *list = NULL;
    size_t n = 0;

    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    put(s, &p, 1);
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change1, sizeof change1, &meta),
                     CMC_ERR_DENIED);
    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_ERR_DENIED);
    assert_null(list);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM pending_edits", NULL), 0);
    store_close(s);

    s = open_as(f, STORE_ROLE_CLINICIAN);
    char absent[PLAN_ID_LEN + 1];
    make_plan_id(12345, absent);
    assert_int_equal(store_pending_add(s, absent, 1, change1, sizeof change1, NULL),
                     CMC_ERR_NOT_FOUND);
    assert_int_equal(store_pending_add(s, p.plan_id, 2, change1, sizeof change1, NULL),
                     CMC_ERR_NOT_FOUND); /* base version not held */
    assert_int_equal(store_pending_add(s, p.plan_id, 3, NULL, 0, NULL), CMC_ERR_INVALID);
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change1, sizeof change1, &meta), CMC_OK);
    assert_true(meta.id > 0);
    assert_string_equal(meta.plan_id, p.plan_id);
    assert_int_equal(meta.base_version, 3);
    assert_string_equal(meta.user, "nurse");
    assert_int_equal(strlen(meta.idempotency_id), PLAN_ID_LEN);
    assert_null(meta.change);
    /* The edit keeps the plan it was made on. */
    assert_int_equal(sql_int(s, "SELECT count(*) FROM pending_edits p JOIN plan_versions v"
                                " ON v.plan_id = p.plan_id AND v.version = 3"
                                " WHERE p.base = v.body AND p.plan_id = ?",
                             p.plan_id),
                     1);
    struct store_pending meta2;
    assert_int_equal(store_pending_add(s, p.plan_id, 3, change2, sizeof change2, &meta2), CMC_OK);
    assert_string_not_equal(meta.idempotency_id, meta2.idempotency_id);

    assert_int_equal(store_pending_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, meta.id);
    assert_int_equal(list[0].change_len, sizeof change1);
    assert_memory_equal(list[0].change, change1, sizeof change1);
    assert_string_equal(list[0].idempotency_id, meta.idempotency_id);
    assert_string_equal(list[0].user, "nurse");
    assert_int_equal(list[0].state, 0);
    assert_int_equal(list[1].change_len, sizeof change2);
    store_pending_free(list, n);
    assert_int_equal(store_pending_list(s, absent, &list, &n), CMC_OK);
    assert_int_equal(n, 0);
    store_pending_free(list, n);

    assert_int_equal(store_pending_set_state(s, meta2.id, 1), CMC_OK);
    assert_int_equal(store_pending_set_state(s, meta2.id, 5), CMC_ERR_INVALID);
    assert_int_equal(store_pending_set_state(s, meta.id + meta2.id, 1), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_pending_list(s, p.plan_id, &list, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, meta.id);
    assert_int_equal(list[0].state, 0);
    assert_int_equal(list[1].id, meta2.id);
    assert_int_equal(list[1].state, 1);
    store_pending_free(list, n);
    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.pending, 2);
    store_close(s);
    plan_free(&p);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pending_edits),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
