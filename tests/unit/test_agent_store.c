/*
 * test_agent_store.c - the device replica: nothing readable at rest, tamper and wrong-key
 * detection, published-only against drafts slipped into the file, identity search, purge
 * and replay protection, batches, migrations, pending edits, conflicts, sync state.
 */
#include "agent/store.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
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

/* A copy of shared/examples/plan.json. */
static const char example_plan[] =
    "{\n"
    "  \"plan_id\": \"7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11\",\n"
    "  \"nhs_number\": \"9434765919\",\n"
    "  \"patient\": {\n"
    "    \"given_name\": \"Margaret\",\n"
    "    \"family_name\": \"Okafor\",\n"
    "    \"preferred_name\": \"Maggie\",\n"
    "    \"date_of_birth\": \"1938-04-17\",\n"
    "    \"gender\": \"female\",\n"
    "    \"address\": \"Flat 3, 12 Larkspur Road, London\",\n"
    "    \"postcode\": \"SE15 4QT\",\n"
    "    \"phone\": \"020 7946 0321\",\n"
    "    \"language\": \"English\",\n"
    "    \"interpreter_needed\": false\n"
    "  },\n"
    "  \"region\": \"south-east-london\",\n"
    "  \"team\": \"peckham-district-nursing\",\n"
    "  \"care_home\": null,\n"
    "  \"consent\": {\n"
    "    \"basis\": \"patient\",\n"
    "    \"recorded_at\": \"2026-02-11T10:20:00Z\",\n"
    "    \"recorded_by\": \"Dr Amira Shah\"\n"
    "  },\n"
    "  \"resuscitation\": {\n"
    "    \"decision\": \"dnacpr\",\n"
    "    \"decided_at\": \"2026-02-11\",\n"
    "    \"decided_by\": \"Dr Amira Shah\",\n"
    "    \"form_location\": \"Purple folder on the kitchen table\",\n"
    "    \"review_date\": \"2027-02-11\",\n"
    "    \"patient_aware\": true,\n"
    "    \"family_aware\": true\n"
    "  },\n"
    "  \"ceiling_of_treatment\": \"Prioritise comfort. Treat reversible causes at home; avoid "
    "admission unless symptoms cannot be controlled.\",\n"
    "  \"hospital_admission_wanted\": false,\n"
    "  \"adrt\": { \"exists\": true, \"location\": \"Copy with GP and in the purple folder\" },\n"
    "  \"preferred_place_of_care\": [\"home\", \"hospice\"],\n"
    "  \"preferred_place_of_death\": [\"home\", \"hospice\"],\n"
    "  \"prognosis\": \"weeks to months\",\n"
    "  \"diagnoses\": [\n"
    "    { \"id\": \"d1\", \"text\": \"Metastatic breast cancer\", \"primary\": true },\n"
    "    { \"id\": \"d2\", \"text\": \"Type 2 diabetes\", \"primary\": false }\n"
    "  ],\n"
    "  \"medications\": [\n"
    "    { \"id\": \"m1\", \"name\": \"Morphine sulfate oral solution\", \"dose\": \"2.5-5 mg "
    "every 4 hours as needed\", \"anticipatory\": false },\n"
    "    { \"id\": \"m2\", \"name\": \"Midazolam injection\", \"dose\": \"2.5-5 mg s/c as needed "
    "for agitation\", \"anticipatory\": true }\n"
    "  ],\n"
    "  \"anticipatory_medicines_location\": \"Just-in-case box in the bedroom wardrobe\",\n"
    "  \"allergies\": [\n"
    "    { \"id\": \"a1\", \"substance\": \"Penicillin\", \"reaction\": \"Anaphylaxis\", "
    "\"severity\": \"severe\" }\n"
    "  ],\n"
    "  \"contacts\": [\n"
    "    { \"id\": \"c1\", \"role\": \"gp\", \"name\": \"Dr Amira Shah, Rye Lane Surgery\", "
    "\"phone\": \"020 7946 0100\", \"available\": \"08:00-18:30 weekdays\" },\n"
    "    { \"id\": \"c2\", \"role\": \"palliative_team\", \"name\": \"St Christopher's 24/7 "
    "advice line\", \"phone\": \"020 7946 0999\", \"available\": \"24/7\" },\n"
    "    { \"id\": \"c3\", \"role\": \"lpa\", \"name\": \"Chidi Okafor (son)\", \"phone\": "
    "\"07700 900123\", \"available\": \"any time\" }\n"
    "  ],\n"
    "  \"social_support\": \"Lives alone; son visits daily; carers twice a day.\",\n"
    "  \"what_matters_to_me\": \"Staying at home with my cat, Biscuit.\",\n"
    "  \"anticipated_problems\": [\n"
    "    { \"id\": \"p1\", \"problem\": \"Breathlessness\", \"guidance\": \"Sit upright, fan, "
    "oral morphine as prescribed; call palliative line.\" },\n"
    "    { \"id\": \"p2\", \"problem\": \"Hypoglycaemia\", \"guidance\": \"Check glucose; give "
    "oral glucose if able to swallow.\" }\n"
    "  ],\n"
    "  \"organ_donation\": \"Wishes to donate corneas\",\n"
    "  \"status\": \"published\",\n"
    "  \"version\": 4,\n"
    "  \"approved_by\": \"Dr Amira Shah\",\n"
    "  \"approved_at\": \"2026-02-11T15:02:00Z\",\n"
    "  \"review_due\": \"2027-02-11\",\n"
    "  \"updated_at\": \"2026-02-11T15:02:00Z\"\n"
    "}\n";

#define MARKER "QUOKKA-TEST-MARKER-55821"

struct fixture {
    char dir[64];
    char path[128];
    struct cry_secret *key;
};

/* ---- helpers --------------------------------------------------------------------------- */

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
    assert_int_equal(plan_from_json(example_plan, strlen(example_plan), p), CMC_OK);
    make_plan_id(n, id);
    make_nhs(n, nhs);
    set_str(&p->plan_id, id);
    set_str(&p->nhs_number, nhs);
    p->status = status;
    p->version = version;
}

static void set_identity(struct plan *p, const char *given, const char *family, const char *dob,
                         const char *postcode)
{
    set_str(&p->patient.given_name, given);
    set_str(&p->patient.family_name, family);
    set_str(&p->patient.date_of_birth, dob);
    set_str(&p->patient.postcode, postcode);
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

/* 1 if `needle` occurs in any file of `dir`. */
static int dir_contains(const char *dir, const char *needle)
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

/* Rows (in any table of the replica, any column) whose value contains `needle`. */
static int64_t logical_occurrences(sqlite3 *db, const char *needle)
{
    sqlite3_stmt *tables = NULL;
    int64_t hits = 0;
    size_t nlen = strlen(needle);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type = 'table'",
                                        -1, &tables, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char sql[256];
        sqlite3_stmt *rows = NULL;
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tables, 0));
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &rows, NULL), SQLITE_OK);
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(rows); c++) {
                const uint8_t *b = sqlite3_column_blob(rows, c);
                size_t len = (size_t)sqlite3_column_bytes(rows, c);
                for (size_t i = 0; b != NULL && len >= nlen && i <= len - nlen; i++)
                    if (memcmp(b + i, needle, nlen) == 0) {
                        hits++;
                        break;
                    }
            }
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    return hits;
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

/* Writes a version straight into the replica, as an attacker with the key (or a bug) could,
 * with `status_column` in the status column whatever the body says, and its index row. */
static void insert_raw(store *s, const struct plan *p, const char *status_column)
{
    sqlite3 *db = store_test_db(s);
    uint8_t *body = NULL;
    size_t len = 0;
    sqlite3_stmt *st = NULL;
    assert_int_equal(plan_pack(p, &body, &len), CMC_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO plan_versions (plan_id, version, status,"
                                        " nhs_number, change_seq, received_at, body)"
                                        " VALUES (?, ?, ?, ?, 1, 0, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->version);
    sqlite3_bind_text(st, 3, status_column, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->nhs_number, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, body, (int)len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    int64_t vid = sqlite3_last_insert_rowid(db);
    char family[256], given[256], postcode[64];
    store_name_normalise(p->patient.family_name, family);
    store_name_normalise(p->patient.given_name, given);
    store_postcode_normalise(p->patient.postcode, postcode);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO plan_identity (version_id, plan_id,"
                                        " nhs_number, family_name, given_name, date_of_birth,"
                                        " postcode, postcode_outward)"
                                        " VALUES (?, ?, ?, ?, ?, ?, ?, substr(?7, 1, length(?7) - 3))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, vid);
    sqlite3_bind_text(st, 2, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->nhs_number, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, family, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, given, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->patient.date_of_birth, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, postcode, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    cmc_free(body);
}

/* Log lines captured during a test, to check they never carry patient data. */
static char captured_log[8192];

static void capture_log(enum plat_log_level level, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    size_t used = strlen(captured_log);
    snprintf(captured_log + used, sizeof captured_log - used, "%s\n", line);
}

static int hits_have(const struct store_hit *h, size_t n, const char *plan_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].plan_id, plan_id) == 0)
            return 1;
    return 0;
}

static size_t search_n(store *s, const char *name, const char *dob, const char *postcode,
                       struct store_hit **hits)
{
    struct store_query q = {name, dob, postcode};
    size_t n = 0;
    int rc = store_search(s, &q, 50, hits, &n);
    if (rc != CMC_OK)
        fail_msg("store_search: %s", cmc_errmsg());
    return n;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_open_rules(void **state)
{
    struct fixture *f = *state;
    struct store_session sess = {"crew", STORE_ROLE_NONE};
    store *s = (store *)1;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_DENIED);
    assert_null(s);
    sess.role = 7;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_DENIED);
    sess.role = STORE_ROLE_URGENT_CARE;
    sess.user[0] = '\0';
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_USAGE);
    assert_null(s);
    store_close(NULL);

    s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_string_equal(store_session_of(s)->user, "crew");
    assert_int_equal(store_session_of(s)->role, STORE_ROLE_URGENT_CARE);
    store_close(s);

    assert_int_equal(store_role_from_name("urgent_care"), STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_role_from_name("clinician"), STORE_ROLE_CLINICIAN);
    assert_int_equal(store_role_from_name("admin"), STORE_ROLE_NONE);
    assert_int_equal(store_role_from_name(NULL), STORE_ROLE_NONE);
    assert_string_equal(store_role_name(STORE_ROLE_URGENT_CARE), "urgent_care");
    assert_null(store_role_name(STORE_ROLE_NONE));
}

static void test_no_plaintext_at_rest(void **state)
{
    struct fixture *f = *state;
    struct plan p, got;
    make_plan(&p, 4242, PLAN_STATUS_PUBLISHED, 1);
    set_str(&p.what_matters_to_me, "Being at home. " MARKER);
    char nhs[PLAN_NHS_LEN + 1];
    snprintf(nhs, sizeof nhs, "%s", p.nhs_number);

    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    put(s, &p, 1);
    assert_int_equal(store_state_set(s, "cursor", "17"), CMC_OK);
    /* Open: data is in the WAL (and -shm exists). */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(plat_exists(wal), 1);
    assert_false(dir_contains(f->dir, MARKER));
    assert_false(dir_contains(f->dir, nhs));
    /* ... and it is really there, readable through the key. */
    plan_init(&got);
    assert_int_equal(store_plan_get(s, nhs, &got), CMC_OK);
    assert_non_null(strstr(got.what_matters_to_me, MARKER));
    plan_free(&got);
    assert_int_equal(store_checkpoint(s), CMC_OK);
    assert_false(dir_contains(f->dir, MARKER));
    assert_false(dir_contains(f->dir, nhs));
    store_close(s);
    assert_false(dir_contains(f->dir, MARKER));
    assert_false(dir_contains(f->dir, nhs));

    /* The scan finds what is there (so "not found" above means something). */
    char control[160];
    snprintf(control, sizeof control, "%s/control", f->dir);
    assert_int_equal(plat_write_atomic(control, nhs, strlen(nhs)), CMC_OK);
    assert_true(dir_contains(f->dir, nhs));
    assert_int_equal(plat_remove(control), CMC_OK);
    plan_free(&p);
}

static void test_wrong_key_is_tampered(void **state)
{
    struct fixture *f = *state;
    struct plan p;
    make_plan(&p, 1, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    put(s, &p, 1);
    store_close(s);

    struct cry_secret *other = NULL;
    assert_int_equal(cry_secret_new(CRY_KEY_BYTES, &other), CMC_OK);
    cry_random(other->buf, other->len);
    struct store_session sess = {"crew", STORE_ROLE_URGENT_CARE};
    s = (store *)1;
    assert_int_equal(store_open(f->path, other, &sess, &s), CMC_ERR_TAMPERED);
    assert_null(s);
    cry_secret_free(other);
    plan_free(&p);
}

/* A lookup by NHS number, a lookup by plan id and a search never scan a whole table of
 * plans: each statement the store ran reports no full-scan steps but a search's pass over
 * the small identity rows. Once, the planner chose an index that made every lookup read
 * (and decrypt) every plan. */
static void test_lookups_use_indexes(void **state)
{
    struct fixture *f = *state;
    for (int role = STORE_ROLE_URGENT_CARE; role <= STORE_ROLE_CLINICIAN; role++) {
        store *s = open_as(f, role);
        if (role == STORE_ROLE_URGENT_CARE) {
            for (unsigned i = 0; i < 40; i++) {
                struct plan p;
                make_plan(&p, 300 + i, PLAN_STATUS_PUBLISHED, 1);
                put(s, &p, i + 1);
                plan_free(&p);
            }
        }
        for (unsigned i = 0; i < 40; i += 7) {
            char nhs[PLAN_NHS_LEN + 1], id[PLAN_ID_LEN + 1];
            struct plan out;
            make_nhs(300 + i, nhs);
            make_plan_id(300 + i, id);
            assert_int_equal(store_plan_get(s, nhs, &out), CMC_OK);
            plan_free(&out);
            assert_int_equal(store_plan_get(s, id, &out), CMC_OK);
            plan_free(&out);
        }
        int seen_nhs = 0, seen_id = 0;
        for (sqlite3_stmt *st = sqlite3_next_stmt(store_test_db(s), NULL); st != NULL;
             st = sqlite3_next_stmt(store_test_db(s), st)) {
            const char *sql = sqlite3_sql(st);
            if (strstr(sql, "nhs_number = ?1") == NULL && strstr(sql, "v.plan_id = ?1") == NULL)
                continue;
            seen_nhs |= strstr(sql, "nhs_number = ?1") != NULL;
            seen_id |= strstr(sql, "v.plan_id = ?1") != NULL;
            assert_int_equal(sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0), 0);
        }
        assert_true(seen_nhs && seen_id);
        store_close(s);
    }
}

/* A flipped byte anywhere in the file (after close) is found by store_open, store_verify or
 * a read: never silently returned. */
static void test_flipped_byte_is_detected(void **state)
{
    struct fixture *f = *state;
    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    for (unsigned i = 0; i < 12; i++) {
        struct plan p;
        make_plan(&p, 100 + i, PLAN_STATUS_PUBLISHED, 1);
        put(s, &p, i + 1);
        plan_free(&p);
    }
    store_close(s);

    uint8_t *orig = NULL, *copy = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(f->path, 64u << 20, &orig, &len), CMC_OK);
    assert_int_equal(len % DB_PAGE_SIZE, 0);
    copy = cmc_malloc(len);
    assert_non_null(copy);
    size_t pages = len / DB_PAGE_SIZE;
    assert_true(pages > 3);
    char first_id[PLAN_ID_LEN + 1];
    make_plan_id(100, first_id);
    for (size_t pg = 0; pg < pages; pg++) {
        memcpy(copy, orig, len);
        copy[pg * DB_PAGE_SIZE + 1500] ^= 0x04;
        assert_int_equal(plat_write_atomic(f->path, copy, len), CMC_OK);
        struct store_session sess = {"nurse", STORE_ROLE_CLINICIAN};
        store *t = NULL;
        int rc = store_open(f->path, f->key, &sess, &t);
        if (rc == CMC_OK) {
            rc = store_verify(t);
            store_close(t);
        }
        if (rc != CMC_ERR_TAMPERED)
            fail_msg("page %zu: expected tampered, got %s", pg, cmc_errname(rc));
    }

    /* A damaged data page also fails an ordinary read with TAMPERED (not a wrong plan).
     * From the last page down: a page the list does not read (an index) leaves it whole;
     * the first page it reads fails it. */
    struct store_hit *hits = NULL;
    size_t n = 0;
    int failed_read = 0;
    for (size_t pg = pages - 1; pg > 0 && !failed_read; pg--) {
        memcpy(copy, orig, len);
        copy[pg * DB_PAGE_SIZE + 2000] ^= 0x40;
        assert_int_equal(plat_write_atomic(f->path, copy, len), CMC_OK);
        struct store_session sess = {"nurse", STORE_ROLE_CLINICIAN};
        s = NULL;
        hits = NULL;
        n = 0;
        int rc = store_open(f->path, f->key, &sess, &s);
        if (rc == CMC_OK)
            rc = store_list(s, &hits, &n);
        if (rc == CMC_ERR_TAMPERED) {
            assert_null(hits);
            failed_read = 1;
        } else {
            assert_int_equal(rc, CMC_OK);
            assert_int_equal(n, 12);
            store_hits_free(hits, n);
        }
        store_close(s);
    }
    assert_true(failed_read);

    /* The original passes everything. */
    assert_int_equal(plat_write_atomic(f->path, orig, len), CMC_OK);
    s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_verify(s), CMC_OK);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 12);
    store_hits_free(hits, n);
    store_close(s);
    cmc_free(copy);
    cmc_free(orig);
}

static void test_published_only_against_slipped_drafts(void **state)
{
    struct fixture *f = *state;
    struct plan pub, honest, liar, got;
    make_plan(&pub, 1, PLAN_STATUS_PUBLISHED, 1);
    make_plan(&honest, 2, PLAN_STATUS_DRAFT, 1);
    make_plan(&liar, 3, PLAN_STATUS_DRAFT, 1);
    /* All three are "Okafor" so one search could return all of them. */
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    put(s, &pub, 1);
    insert_raw(s, &honest, "draft");
    insert_raw(s, &liar, "published");
    store_close(s);

    s = open_as(f, STORE_ROLE_URGENT_CARE);
    captured_log[0] = '\0';
    plat_log_set_sink(capture_log, NULL);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, pub.nhs_number, &got), CMC_OK);
    assert_string_equal(got.plan_id, pub.plan_id);
    plan_free(&got);
    /* The honest draft: not there for urgent care, by NHS number or by plan id. */
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    assert_int_equal(store_plan_get(s, honest.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    assert_int_equal(store_plan_get_published(s, honest.plan_id, &got), CMC_ERR_NOT_FOUND);
    /* The lying row: never shown. */
    int rc = store_plan_get(s, liar.nhs_number, &got);
    assert_true(rc == CMC_ERR_TAMPERED || rc == CMC_ERR_NOT_FOUND);
    assert_null(got.plan_id);
    rc = store_plan_get(s, liar.plan_id, &got);
    assert_int_equal(rc, CMC_ERR_TAMPERED);
    assert_null(got.plan_id);
    assert_null(strstr(cmc_errmsg(), liar.nhs_number));

    struct store_hit *hits = NULL;
    size_t n = search_n(s, "okafor", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, pub.plan_id);
    assert_int_equal(hits[0].status, PLAN_STATUS_PUBLISHED);
    store_hits_free(hits, n);
    n = search_n(s, NULL, "1938-04-17", "SE15 4QT", &hits);
    assert_int_equal(n, 1);
    store_hits_free(hits, n);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, pub.plan_id);
    store_hits_free(hits, n);

    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.visible, 1);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 0);
    /* The full check names the problem. */
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    assert_non_null(strstr(cmc_errmsg(), liar.plan_id));
    assert_null(strstr(cmc_errmsg(), liar.nhs_number));
    store_close(s);
    /* Skipped rows were logged by plan id, never by NHS number or name. */
    plat_log_set_sink(NULL, NULL);
    assert_non_null(strstr(captured_log, liar.plan_id));
    assert_null(strstr(captured_log, liar.nhs_number));
    assert_null(strstr(captured_log, "Okafor"));

    /* A clinician sees the honest draft, still never the lying row. */
    s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_OK);
    assert_int_equal(got.status, PLAN_STATUS_DRAFT);
    assert_string_equal(got.plan_id, honest.plan_id);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, liar.plan_id, &got), CMC_ERR_TAMPERED);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_true(hits_have(hits, n, honest.plan_id));
    assert_true(hits_have(hits, n, pub.plan_id));
    assert_false(hits_have(hits, n, liar.plan_id));
    store_hits_free(hits, n);
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.visible, 2);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 1);
    store_close(s);

    /* Even a redefined view does not let a draft through: each urgent-care statement
     * repeats the status condition itself. */
    s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(sqlite3_exec(store_test_db(s),
                                  "DROP VIEW urgent_care_plans;"
                                  "CREATE VIEW urgent_care_plans AS SELECT * FROM plan_versions;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_plan_get(s, honest.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_plan_get(s, honest.nhs_number, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_false(hits_have(hits, n, honest.plan_id));
    store_hits_free(hits, n);
    store_close(s);
    plan_free(&pub);
    plan_free(&honest);
    plan_free(&liar);
}

/* A body that says "published" under a row that also says "published" but for another
 * patient (plan id, NHS number or version swapped) is refused too. */
static void test_row_body_mismatch_is_tampered(void **state)
{
    struct fixture *f = *state;
    struct plan a, b, got;
    make_plan(&a, 11, PLAN_STATUS_PUBLISHED, 1);
    make_plan(&b, 12, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    put(s, &a, 1);
    put(s, &b, 2);
    /* Swap the bodies: a's row now holds b's plan. */
    assert_int_equal(sqlite3_exec(store_test_db(s),
                                  "UPDATE plan_versions SET body = (SELECT body FROM plan_versions"
                                  " WHERE id = 2) WHERE id = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, a.nhs_number, &got), CMC_ERR_TAMPERED);
    assert_null(got.plan_id);
    assert_int_equal(store_plan_get(s, b.nhs_number, &got), CMC_OK);
    plan_free(&got);
    /* A search for a's name no longer offers the wrong patient's plan under a's row. */
    struct store_hit *hits = NULL;
    size_t n = 0;
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].plan_id, b.plan_id);
    store_hits_free(hits, n);
    assert_int_equal(store_verify(s), CMC_ERR_TAMPERED);
    /* Garbage in a body: tampered, not a crash. */
    assert_int_equal(sqlite3_exec(store_test_db(s),
                                  "UPDATE plan_versions SET body = x'8501020304' WHERE id = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_TAMPERED);
    store_close(s);
    plan_free(&a);
    plan_free(&b);
}

static void test_published_v1_draft_v2(void **state)
{
    struct fixture *f = *state;
    struct plan v1, v2, got;
    make_plan(&v1, 20, PLAN_STATUS_PUBLISHED, 1);
    make_plan(&v2, 20, PLAN_STATUS_DRAFT, 2);
    set_str(&v2.prognosis, "days");

    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    put(s, &v1, 1);
    put(s, &v2, 2);
    assert_int_equal(store_verify(s), CMC_OK);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, v1.plan_id, &got), CMC_OK);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.status, PLAN_STATUS_DRAFT);
    assert_true(plan_equal(&got, &v2));
    plan_free(&got);
    assert_int_equal(store_plan_get_published(s, v1.nhs_number, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    assert_true(plan_equal(&got, &v1));
    plan_free(&got);
    struct store_hit *hits = NULL;
    size_t n = search_n(s, "margaret", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 2);
    assert_int_equal(hits[0].status, PLAN_STATUS_DRAFT);
    store_hits_free(hits, n);
    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.visible, 1);
    assert_int_equal(c.published, 1);
    assert_int_equal(c.drafts, 1);
    store_close(s);

    s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_plan_get(s, v1.nhs_number, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    assert_int_equal(got.status, PLAN_STATUS_PUBLISHED);
    assert_string_equal(got.prognosis, "weeks to months");
    plan_free(&got);
    assert_int_equal(store_plan_get(s, v1.plan_id, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    plan_free(&got);
    n = search_n(s, "margaret", NULL, NULL, &hits);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 1);
    assert_int_equal(hits[0].status, PLAN_STATUS_PUBLISHED);
    store_hits_free(hits, n);
    assert_int_equal(store_list(s, &hits, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].version, 1);
    store_hits_free(hits, n);
    store_close(s);
    plan_free(&v1);
    plan_free(&v2);
}

static void test_drafts_stored_only_where_allowed(void **state)
{
    struct fixture *f = *state;
    struct plan d, got;
    make_plan(&d, 30, PLAN_STATUS_AWAITING_APPROVAL, 1);
    plan_init(&got);
    /* A device enrolled for urgent care refuses drafts, whoever the session is. */
    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(store_state_set(s, STORE_STATE_DEVICE_ROLE, "urgent_care"), CMC_OK);
    assert_int_equal(store_put_version(s, &d, 1), CMC_ERR_DENIED);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_identity", NULL), 0);
    store_close(s);

    /* A clinician device holds them, even when an urgent-care user syncs... */
    s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_set(s, STORE_STATE_DEVICE_ROLE, "clinician"), CMC_OK);
    put(s, &d, 1);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 1);
    /* ... and urgent care still cannot read them. */
    assert_int_equal(store_plan_get(s, d.plan_id, &got), CMC_ERR_NOT_FOUND);
    /* An invalid plan is refused before anything is written. */
    d.version = 0;
    d.status = PLAN_STATUS_PUBLISHED;
    assert_int_equal(store_put_version(s, &d, 2), CMC_ERR_INVALID);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_versions", NULL), 1);
    store_close(s);
    plan_free(&d);
}

static void test_identity_search(void **state)
{
    struct fixture *f = *state;
    struct plan p[5];
    const char *ids[5];
    make_plan(&p[0], 40, PLAN_STATUS_PUBLISHED, 1);
    set_identity(&p[0], "Margaret", "Okafor", "1938-04-17", "SE15 4QT");
    make_plan(&p[1], 41, PLAN_STATUS_PUBLISHED, 1);
    set_identity(&p[1], "Mark", "Okafor", "1938-04-17", "SE1 7PB");
    make_plan(&p[2], 42, PLAN_STATUS_PUBLISHED, 1);
    set_identity(&p[2], "Zo\xc3\xab", "O'Brien-Smith", "1950-01-01", "N1 9GU");
    make_plan(&p[3], 43, PLAN_STATUS_PUBLISHED, 1);
    set_identity(&p[3], "Anna", "Smith", "1944-12-01", "se15 5ab");
    make_plan(&p[4], 44, PLAN_STATUS_PUBLISHED, 1);
    set_identity(&p[4], "J\xc3\xb3zef", "Wi\xc5\x9bniewski", "1932-06-30", "W1A 1AA");
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    for (int i = 0; i < 5; i++) {
        put(s, &p[i], i + 1);
        ids[i] = p[i].plan_id;
    }
    struct store_hit *h = NULL;
    size_t n;

    n = search_n(s, "oka", NULL, NULL, &h);
    assert_int_equal(n, 2);
    /* Best first, then by name: Margaret before Mark. */
    assert_string_equal(h[0].plan_id, ids[0]);
    assert_string_equal(h[1].plan_id, ids[1]);
    assert_string_equal(h[0].given_name, "Margaret");
    assert_string_equal(h[0].postcode, "SE15 4QT");
    assert_string_equal(h[0].date_of_birth, "1938-04-17");
    assert_non_null(h[0].address);
    assert_string_equal(h[0].nhs_number, p[0].nhs_number);
    store_hits_free(h, n);

    n = search_n(s, "MARG", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[0]);
    store_hits_free(h, n);
    n = search_n(s, "margaret okafor", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[0]);
    store_hits_free(h, n);
    n = search_n(s, "Okafor  Mark", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[1]);
    store_hits_free(h, n);
    n = search_n(s, "ma oka", NULL, NULL, &h);
    assert_int_equal(n, 2);
    store_hits_free(h, n);
    /* Accents and punctuation: typed without them, or with. */
    n = search_n(s, "zoe", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[2]);
    store_hits_free(h, n);
    n = search_n(s, "O'BRIEN", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[2]);
    store_hits_free(h, n);
    n = search_n(s, "obrien-sm", NULL, NULL, &h);
    assert_int_equal(n, 1);
    store_hits_free(h, n);
    n = search_n(s, "jozef wisniewski", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[4]);
    store_hits_free(h, n);
    n = search_n(s, "smith", NULL, NULL, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[3]);
    store_hits_free(h, n);
    n = search_n(s, "nobody", NULL, NULL, &h);
    assert_int_equal(n, 0);
    store_hits_free(h, n);

    /* Date of birth, exact. */
    n = search_n(s, NULL, "1938-04-17", NULL, &h);
    assert_int_equal(n, 2);
    assert_true(hits_have(h, n, ids[0]) && hits_have(h, n, ids[1]));
    store_hits_free(h, n);
    n = search_n(s, NULL, "1938-04-18", NULL, &h);
    assert_int_equal(n, 0);
    store_hits_free(h, n);

    /* Postcode: spaces and case ignored; a full code or an outward code. */
    n = search_n(s, NULL, NULL, "se154qt", &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[0]);
    store_hits_free(h, n);
    n = search_n(s, NULL, NULL, " SE15  4QT ", &h);
    assert_int_equal(n, 1);
    store_hits_free(h, n);
    n = search_n(s, NULL, NULL, "SE15", &h);
    assert_int_equal(n, 2);
    assert_true(hits_have(h, n, ids[0]) && hits_have(h, n, ids[3]));
    store_hits_free(h, n);
    n = search_n(s, NULL, NULL, "se1", &h); /* SE1 is not SE15 */
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[1]);
    store_hits_free(h, n);
    n = search_n(s, NULL, NULL, "SE15 4", &h); /* sector */
    assert_int_equal(n, 1);
    store_hits_free(h, n);

    /* Criteria combine. */
    n = search_n(s, "okafor", "1938-04-17", "SE1", &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].plan_id, ids[1]);
    store_hits_free(h, n);
    n = search_n(s, "okafor", "1950-01-01", NULL, &h);
    assert_int_equal(n, 0);
    store_hits_free(h, n);

    /* Limit and bad queries. */
    struct store_query q = {"oka", NULL, NULL};
    assert_int_equal(store_search(s, &q, 1, &h, &n), CMC_OK);
    assert_int_equal(n, 1);
    store_hits_free(h, n);
    struct store_query none = {NULL, NULL, NULL};
    assert_int_equal(store_search(s, &none, 10, &h, &n), CMC_ERR_USAGE);
    struct store_query bad_dob = {NULL, "17/04/1938", NULL};
    assert_int_equal(store_search(s, &bad_dob, 10, &h, &n), CMC_ERR_INVALID);
    struct store_query punct = {"'-", NULL, NULL};
    assert_int_equal(store_search(s, &punct, 10, &h, &n), CMC_ERR_INVALID);

    /* store_list: ordered by family, given. */
    assert_int_equal(store_list(s, &h, &n), CMC_OK);
    assert_int_equal(n, 5);
    assert_string_equal(h[0].plan_id, ids[2]); /* obriensmith */
    assert_string_equal(h[1].plan_id, ids[0]); /* okafor margaret */
    assert_string_equal(h[2].plan_id, ids[1]); /* okafor mark */
    assert_string_equal(h[3].plan_id, ids[3]); /* smith */
    assert_string_equal(h[4].plan_id, ids[4]); /* wisniewski */
    store_hits_free(h, n);
    store_close(s);
    for (int i = 0; i < 5; i++)
        plan_free(&p[i]);
}

static void test_normalisation(void **state)
{
    (void)state;
    char out[64];
    store_name_normalise("O'Brien-Smith", out);
    assert_string_equal(out, "obriensmith");
    store_name_normalise("Zo\xc3\xab \xc3\x89lise", out);
    assert_string_equal(out, "zoeelise");
    store_name_normalise("Stra\xc3\x9f" "e \xc5\x92uvre \xc3\x86thel", out);
    assert_string_equal(out, "strasseoeuvreaethel");
    store_name_normalise("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd", out); /* Cyrillic kept as typed */
    assert_string_equal(out, "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd");
    store_name_normalise("bad\xff\xc3", out); /* broken UTF-8 is dropped, not copied */
    assert_string_equal(out, "bad");
    store_name_normalise(NULL, out);
    assert_string_equal(out, "");
    store_postcode_normalise(" se15 4qt\t", out);
    assert_string_equal(out, "SE154QT");
}

static void test_purge_leaves_no_copy(void **state)
{
    struct fixture *f = *state;
    struct plan v1, v2, other, got;
    make_plan(&v1, 50, PLAN_STATUS_PUBLISHED, 1);
    set_str(&v1.social_support, "Neighbour " MARKER " checks in.");
    make_plan(&v2, 50, PLAN_STATUS_DRAFT, 2);
    set_str(&v2.social_support, "Neighbour " MARKER " checks in daily.");
    make_plan(&other, 51, PLAN_STATUS_PUBLISHED, 1);
    char nhs[PLAN_NHS_LEN + 1], id[PLAN_ID_LEN + 1];
    snprintf(nhs, sizeof nhs, "%s", v1.nhs_number);
    snprintf(id, sizeof id, "%s", v1.plan_id);

    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    put(s, &v1, 3);
    put(s, &v2, 4);
    put(s, &other, 5);
    static const uint8_t change[] = {0x91, 0x93, 0x01, 0x05, 0xa1, 'x'};
    assert_int_equal(store_pending_add(s, id, 2, change, sizeof change, NULL), CMC_OK);
    assert_int_equal(store_pending_add(s, id, 1, change, sizeof change, NULL), CMC_OK);
    assert_int_equal(store_pending_add(s, other.plan_id, 1, change, sizeof change, NULL), CMC_OK);
    struct store_conflict c;
    memset(&c, 0, sizeof c);
    snprintf(c.plan_id, sizeof c.plan_id, "%s", id);
    c.field_path = "prognosis";
    c.local = (uint8_t *)"\xa4" "days";
    c.local_len = 5;
    assert_int_equal(store_conflict_add(s, &c, NULL), CMC_OK);
    /* Merge state holds whole plans: it must go too. */
    sqlite3_stmt *ins = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_test_db(s),
                                        "INSERT INTO merges (plan_id, base, local, remote,"
                                        " created_at) SELECT plan_id, body, body, body, 0"
                                        " FROM plan_versions WHERE plan_id = ? AND version = 1",
                                        -1, &ins, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_finalize(ins);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM merges WHERE plan_id = ?", id), 1);
    assert_int_equal(store_checkpoint(s), CMC_OK);
    assert_true(logical_occurrences(store_test_db(s), nhs) > 0); /* the scan sees it first */

    int discarded = -1;
    assert_int_equal(store_purge(s, id, "consent_withdrawn", 10, &discarded), CMC_OK);
    assert_int_equal(discarded, 2);

    /* Gone from every table and index, for every role. */
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_versions WHERE plan_id = ?", id), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_identity WHERE plan_id = ?", id), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_identity WHERE nhs_number = ?", nhs), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM pending_edits WHERE plan_id = ?", id), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM conflicts WHERE plan_id = ?", id), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM merges WHERE plan_id = ?", id), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM pending_edits", NULL), 1); /* other's */
    plan_init(&got);
    assert_int_equal(store_plan_get(s, nhs, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_plan_get(s, id, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_plan_get_published(s, id, &got), CMC_ERR_NOT_FOUND);
    struct store_hit *h = NULL;
    size_t n = search_n(s, NULL, "1938-04-17", NULL, &h);
    assert_int_equal(n, 1); /* only the other plan */
    assert_string_equal(h[0].plan_id, other.plan_id);
    store_hits_free(h, n);
    struct store_counts counts;
    assert_int_equal(store_counts_get(s, &counts), CMC_OK);
    assert_int_equal(counts.visible, 1);
    assert_int_equal(counts.pending, 1);
    assert_int_equal(counts.conflicts, 0);
    assert_int_equal(counts.tombstones, 1);

    /* The tombstone: a hash of the NHS number, never the number. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_test_db(s),
                                        "SELECT nhs_hash, reason, change_seq FROM tombstones"
                                        " WHERE plan_id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    uint8_t want[CRY_HASH_BYTES];
    cry_hash(want, nhs, strlen(nhs));
    assert_int_equal(sqlite3_column_bytes(st, 0), CRY_HASH_BYTES);
    assert_memory_equal(sqlite3_column_blob(st, 0), want, CRY_HASH_BYTES);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "consent_withdrawn");
    assert_int_equal(sqlite3_column_int64(st, 2), 10);
    sqlite3_finalize(st);

    /* A replayed older bundle cannot bring it back. */
    assert_int_equal(store_put_version(s, &v1, 3), CMC_ERR_STATE);
    assert_int_equal(store_put_version(s, &v1, 10), CMC_ERR_STATE);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_versions WHERE plan_id = ?", id), 0);

    /* After the checkpoint the WAL is empty and nothing holds the data. */
    assert_int_equal(store_checkpoint(s), CMC_OK);
    char wal[160];
    uint64_t wal_size = 1;
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(plat_file_size(wal, &wal_size), CMC_OK);
    assert_int_equal(wal_size, 0);
    assert_int_equal(logical_occurrences(store_test_db(s), nhs), 0);
    assert_int_equal(logical_occurrences(store_test_db(s), MARKER), 0);
    /* Control: the other plan is still found (row column, body, index, its pending edit's
     * copy of the base version). */
    assert_int_equal(logical_occurrences(store_test_db(s), other.nhs_number), 4);
    assert_false(dir_contains(f->dir, nhs));
    assert_false(dir_contains(f->dir, MARKER));
    assert_int_equal(store_verify(s), CMC_OK);
    store_close(s);
    assert_false(dir_contains(f->dir, nhs));
    assert_false(dir_contains(f->dir, MARKER));

    /* A later change (the plan shared again) is accepted. */
    s = open_as(f, STORE_ROLE_CLINICIAN);
    put(s, &v1, 11);
    assert_int_equal(store_plan_get(s, id, &got), CMC_OK);
    plan_free(&got);
    /* Purging twice is harmless; an older purge does not move the tombstone back. */
    assert_int_equal(store_purge(s, id, "left_scope", 12, NULL), CMC_OK);
    assert_int_equal(store_purge(s, id, "not_shared", 7, &discarded), CMC_OK);
    assert_int_equal(discarded, 0);
    assert_int_equal(sql_int(s, "SELECT change_seq FROM tombstones WHERE plan_id = ?", id), 12);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM tombstones WHERE reason = 'left_scope'", NULL),
                     1);
    /* Purging a plan never held still leaves a tombstone (without a hash). */
    char never[PLAN_ID_LEN + 1];
    make_plan_id(999, never);
    assert_int_equal(store_purge(s, never, "left_scope", 13, NULL), CMC_OK);
    assert_int_equal(
        sql_int(s, "SELECT count(*) FROM tombstones WHERE plan_id = ? AND nhs_hash IS NULL", never),
        1);
    assert_int_equal(store_purge(s, "not-a-uuid", "left_scope", 14, NULL), CMC_ERR_INVALID);
    store_close(s);
    plan_free(&v1);
    plan_free(&v2);
    plan_free(&other);
}

static void test_batch_is_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct plan a, b, got;
    char *v = NULL;
    make_plan(&a, 60, PLAN_STATUS_PUBLISHED, 1);
    make_plan(&b, 61, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    plan_init(&got);

    /* Rolled back: nothing. */
    assert_int_equal(store_batch_begin(s), CMC_OK);
    assert_int_equal(store_batch_begin(s), CMC_ERR_STATE);
    put(s, &a, 1);
    assert_int_equal(store_state_set_int(s, "cursor", 1), CMC_OK);
    assert_int_equal(store_purge(s, b.plan_id, "left_scope", 1, NULL), CMC_OK);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_OK); /* visible inside */
    plan_free(&got);
    store_batch_rollback(s);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_get(s, "cursor", &v), CMC_ERR_NOT_FOUND);
    assert_null(v);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM tombstones", NULL), 0);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM plan_identity", NULL), 0);
    assert_int_equal(store_batch_commit(s), CMC_ERR_STATE);
    store_batch_rollback(s); /* nothing open: harmless */

    /* Committed: all of it, the cursor included. A refused op inside the batch leaves the
     * rest intact (each op is its own savepoint). */
    assert_int_equal(store_purge(s, b.plan_id, "left_scope", 5, NULL), CMC_OK);
    assert_int_equal(store_batch_begin(s), CMC_OK);
    put(s, &a, 6);
    assert_int_equal(store_put_version(s, &b, 4), CMC_ERR_STATE);
    assert_int_equal(store_state_set_int(s, "cursor", 6), CMC_OK);
    assert_int_equal(store_checkpoint(s), CMC_ERR_STATE);
    assert_int_equal(store_batch_commit(s), CMC_OK);
    assert_int_equal(store_plan_get(s, a.plan_id, &got), CMC_OK);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_NOT_FOUND);
    int64_t cursor = 0;
    assert_int_equal(store_state_get_int(s, "cursor", &cursor), CMC_OK);
    assert_int_equal(cursor, 6);

    /* A batch left open is rolled back by close (as by a crash). */
    assert_int_equal(store_batch_begin(s), CMC_OK);
    assert_int_equal(store_state_set_int(s, "cursor", 99), CMC_OK);
    put(s, &b, 7);
    store_close(s);
    s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_get_int(s, "cursor", &cursor), CMC_OK);
    assert_int_equal(cursor, 6);
    assert_int_equal(store_plan_get(s, b.plan_id, &got), CMC_ERR_NOT_FOUND);
    store_close(s);
    plan_free(&a);
    plan_free(&b);
}

static void test_migrations(void **state)
{
    struct fixture *f = *state;
    struct plan p, got;
    int64_t v = 0;
    make_plan(&p, 70, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    static const char *const tables[] = {"plan_versions", "plan_identity", "tombstones",
                                         "sync_state",    "pending_edits", "conflicts",
                                         "merges",        "audit"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        assert_int_equal(sql_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND name = ?",
                                 tables[i]),
                         1);
    assert_int_equal(sql_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"
                                " AND name = 'urgent_care_plans'",
                             NULL),
                     1);
    put(s, &p, 1);
    assert_int_equal(store_state_set(s, "hub", "https://hub.example"), CMC_OK);
    store_close(s);

    /* Reopening runs nothing again (re-running would fail on existing tables). */
    s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    plan_init(&got);
    assert_int_equal(store_plan_get(s, p.plan_id, &got), CMC_OK);
    plan_free(&got);

    /* A replica left at version 1 gets exactly step 2 on the next open. */
    assert_int_equal(sqlite3_exec(store_test_db(s),
                                  "DROP TABLE pending_edits; DROP TABLE conflicts; DROP TABLE merges;"
                                  "DROP TABLE audit;"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    store_close(s);
    s = open_as(f, STORE_ROLE_CLINICIAN);
    assert_int_equal(db_user_version(store_test_db(s), &v), CMC_OK);
    assert_int_equal(v, STORE_SCHEMA_VERSION);
    assert_int_equal(store_pending_add(s, p.plan_id, 1, (const uint8_t *)"\x90", 1, NULL), CMC_OK);
    assert_int_equal(store_plan_get(s, p.plan_id, &got), CMC_OK);
    plan_free(&got);
    char *hub = NULL;
    assert_int_equal(store_state_get(s, "hub", &hub), CMC_OK);
    assert_string_equal(hub, "https://hub.example");
    cmc_free(hub);

    /* A replica from a newer program is refused, not misread. */
    assert_int_equal(sqlite3_exec(store_test_db(s), "PRAGMA user_version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    store_close(s);
    struct store_session sess = {"nurse", STORE_ROLE_CLINICIAN};
    s = (store *)1;
    assert_int_equal(store_open(f->path, f->key, &sess, &s), CMC_ERR_STATE);
    assert_null(s);
    plan_free(&p);
}

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
    assert_int_equal(store_pending_delete(s, 1), CMC_ERR_DENIED);
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
    assert_int_equal(store_pending_delete(s, meta.id), CMC_OK);
    assert_int_equal(store_pending_delete(s, meta.id), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_pending_list(s, p.plan_id, &list, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, meta2.id);
    assert_int_equal(list[0].state, 1);
    store_pending_free(list, n);
    struct store_counts c;
    assert_int_equal(store_counts_get(s, &c), CMC_OK);
    assert_int_equal(c.pending, 1);
    store_close(s);
    plan_free(&p);
}

static void test_conflicts(void **state)
{
    struct fixture *f = *state;
    struct store_conflict c, *list = NULL;
    size_t n = 0;
    int64_t id1 = 0, id2 = 0;
    char plan_id[PLAN_ID_LEN + 1];
    make_plan_id(90, plan_id);
    memset(&c, 0, sizeof c);
    snprintf(c.plan_id, sizeof c.plan_id, "%s", plan_id);
    c.field_path = "resuscitation.decision";
    c.base = (uint8_t *)"\x02";
    c.base_len = 1;
    c.local = (uint8_t *)"\x01";
    c.local_len = 1;
    c.remote = (uint8_t *)"\x03";
    c.remote_len = 1;
    c.pending_id = 4;

    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_conflict_add(s, &c, &id1), CMC_OK); /* the sync engine records */
    assert_true(id1 > 0);
    assert_int_equal(store_conflict_list(s, NULL, &list, &n), CMC_ERR_DENIED);
    assert_int_equal(store_conflict_delete(s, id1), CMC_ERR_DENIED);
    store_close(s);

    s = open_as(f, STORE_ROLE_CLINICIAN);
    c.remote = NULL; /* removed on the hub */
    c.remote_len = 0;
    assert_int_equal(store_conflict_add(s, &c, &id2), CMC_OK); /* same field: replaced */
    assert_int_equal(id2, id1);
    c.field_path = "prognosis";
    assert_int_equal(store_conflict_add(s, &c, NULL), CMC_OK);
    assert_int_equal(store_conflict_list(s, plan_id, &list, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].field_path, "resuscitation.decision");
    assert_int_equal(list[0].pending_id, 4);
    assert_int_equal(list[0].base_len, 1);
    assert_memory_equal(list[0].local, "\x01", 1);
    assert_null(list[0].remote);
    assert_true(list[0].created_at > 0);
    store_conflicts_free(list, n);
    struct store_counts counts;
    assert_int_equal(store_counts_get(s, &counts), CMC_OK);
    assert_int_equal(counts.conflicts, 2);
    assert_int_equal(store_conflict_delete(s, id1), CMC_OK);
    assert_int_equal(store_conflict_delete(s, id1), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_conflict_list(s, NULL, &list, &n), CMC_OK);
    assert_int_equal(n, 1);
    store_conflicts_free(list, n);
    c.field_path = "";
    assert_int_equal(store_conflict_add(s, &c, NULL), CMC_ERR_INVALID);
    store_close(s);
}

static void test_state_and_copy_age(void **state)
{
    struct fixture *f = *state;
    char *v = NULL;
    int64_t x = 0;
    plat_fake_clock_enable(1790000000, 1000);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    assert_int_equal(store_state_get(s, "cursor", &v), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_get_int(s, "cursor", &x), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_state_set(s, "hub_key", "abc"), CMC_OK);
    assert_int_equal(store_state_set(s, "hub_key", "def"), CMC_OK);
    assert_int_equal(store_state_get(s, "hub_key", &v), CMC_OK);
    assert_string_equal(v, "def");
    cmc_free(v);
    assert_int_equal(store_state_get_int(s, "hub_key", &x), CMC_ERR_CORRUPT);
    assert_int_equal(store_state_set_int(s, "cursor", INT64_C(9007199254740993)), CMC_OK);
    assert_int_equal(store_state_get_int(s, "cursor", &x), CMC_OK);
    assert_int_equal(x, INT64_C(9007199254740993));
    assert_int_equal(store_state_set(s, "", "x"), CMC_ERR_USAGE);

    struct plan p;
    make_plan(&p, 95, PLAN_STATUS_PUBLISHED, 2);
    put(s, &p, 1);
    plat_fake_clock_advance(90ull * 1000000000ull);
    int64_t age = -1;
    assert_int_equal(store_plan_received_at(s, p.plan_id, 2, &age), CMC_OK);
    assert_int_equal(age, 90);
    assert_int_equal(store_plan_received_at(s, p.plan_id, 1, &age), CMC_ERR_NOT_FOUND);
    plat_fake_clock_set_wall(1780000000); /* clock wound back: never negative */
    assert_int_equal(store_plan_received_at(s, p.plan_id, 2, &age), CMC_OK);
    assert_int_equal(age, 0);
    store_close(s);
    plan_free(&p);
}

static void test_bad_keys_and_lookups(void **state)
{
    struct fixture *f = *state;
    struct plan p, got;
    make_plan(&p, 96, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    put(s, &p, 1);
    plan_init(&got);
    char spaced[16];
    snprintf(spaced, sizeof spaced, "%.3s %.3s %.4s", p.nhs_number, p.nhs_number + 3,
             p.nhs_number + 6);
    assert_int_equal(store_plan_get(s, spaced, &got), CMC_OK);
    assert_string_equal(got.plan_id, p.plan_id);
    plan_free(&got);
    assert_int_equal(store_plan_get(s, "1234567890", &got), CMC_ERR_INVALID); /* check digit */
    assert_int_equal(store_plan_get(s, "0000000000-0000-4000-8000-0000000000", &got),
                     CMC_ERR_INVALID);
    assert_int_equal(store_plan_get(s, NULL, &got), CMC_ERR_USAGE);
    char upper[PLAN_ID_LEN + 1];
    make_plan_id(12, upper);
    assert_int_equal(store_plan_get(s, upper, &got), CMC_ERR_NOT_FOUND);
    store_close(s);
    plan_free(&p);
}

/* Out of memory at any allocation: an error, nothing half-written, nothing leaked. */
static void test_out_of_memory(void **state)
{
    struct fixture *f = *state;
    struct plan p, got;
    make_plan(&p, 97, PLAN_STATUS_PUBLISHED, 1);
    store *s = open_as(f, STORE_ROLE_URGENT_CARE);
    int done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        cmc_alloc_fail_after(n, 1);
        int rc = store_put_version(s, &p, 1);
        cmc_alloc_fail_after(-1, 0);
        int64_t rows = sql_int(s, "SELECT count(*) FROM plan_versions", NULL);
        int64_t idx = sql_int(s, "SELECT count(*) FROM plan_identity", NULL);
        if (rc == CMC_OK) {
            done = 1;
            assert_int_equal(rows, 1);
            assert_int_equal(idx, 1);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_int_equal(rows, 0);
            assert_int_equal(idx, 0);
        }
    }
    assert_true(done);
    done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        plan_init(&got);
        cmc_alloc_fail_after(n, 1);
        int rc = store_plan_get(s, p.plan_id, &got);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            assert_true(plan_equal(&got, &p));
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(got.plan_id);
        }
        plan_free(&got);
    }
    assert_true(done);
    done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        struct store_hit *h = NULL;
        size_t cnt = 0;
        cmc_alloc_fail_after(n, 1);
        int rc = store_list(s, &h, &cnt);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            assert_int_equal(cnt, 1);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(h);
        }
        store_hits_free(h, cnt);
    }
    assert_true(done);
    store_close(s);

    done = 0;
    for (long n = 0; n < 200 && !done; n++) {
        struct store_session sess = {"crew", STORE_ROLE_URGENT_CARE};
        store *t = (store *)1;
        cmc_alloc_fail_after(n, 1);
        int rc = store_open(f->path, f->key, &sess, &t);
        cmc_alloc_fail_after(-1, 0);
        if (rc == CMC_OK) {
            done = 1;
            store_close(t);
        } else {
            assert_int_equal(rc, CMC_ERR_NOMEM);
            assert_null(t);
        }
    }
    assert_true(done);
    plan_free(&p);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_rules),
        T(test_no_plaintext_at_rest),
        T(test_wrong_key_is_tampered),
        T(test_flipped_byte_is_detected),
    T(test_lookups_use_indexes),
        T(test_published_only_against_slipped_drafts),
        T(test_row_body_mismatch_is_tampered),
        T(test_published_v1_draft_v2),
        T(test_drafts_stored_only_where_allowed),
        T(test_identity_search),
        T(test_normalisation),
        T(test_purge_leaves_no_copy),
        T(test_batch_is_all_or_nothing),
        T(test_migrations),
        T(test_pending_edits),
        T(test_conflicts),
        T(test_state_and_copy_age),
        T(test_bad_keys_and_lookups),
        T(test_out_of_memory),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
