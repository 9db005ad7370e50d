/*
 * store_plans.h - plans and replica steps shared by the agent store's unit tests.
 *
 * tst_plan_make() fills *p with the example plan (shared/examples/plan.json) under a new id,
 * a valid NHS number derived from `n`, and the given status and version; the caller frees it
 * with plan_free(). tst_store_open_as() opens the fixture's replica (store_fixture.h) for a
 * session of the given role; tst_store_put() stores one version. tst_store_sql_int() runs a
 * one-row, one-column query (with an optional text parameter) straight against the replica
 * through the store's test hook; tst_store_row() prepares such a query and steps to its row,
 * leaving the columns to the caller (who finalizes the statement); tst_store_exec() runs
 * statements that return nothing, the same way (with `param`, one statement).
 * tst_dir_contains() says whether any file of a directory holds the bytes of `needle`. Every helper fails the running cmocka test instead of returning an
 * error. Archived into the test-support library, linked only into tests that call it (those
 * link the agent library). The plans are synthetic.
 */
#ifndef CMC_TEST_SUPPORT_STORE_PLANS_H
#define CMC_TEST_SUPPORT_STORE_PLANS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "agent/store.h"
#include "sync/plan.h"
#include "tests/support/store_fixture.h"

/* Replaces a string field of a plan with a copy of v (NULL clears it). */
void tst_set_str(char **field, const char *v);
/* A valid NHS number (Modulus 11) derived from `seed`. */
void tst_make_nhs(unsigned seed, char out[PLAN_NHS_LEN + 1]);
void tst_make_plan_id(unsigned n, char out[PLAN_ID_LEN + 1]);
void tst_plan_make(struct plan *p, unsigned n, int status, int64_t version);
void tst_plan_set_identity(struct plan *p, const char *given, const char *family,
                           const char *dob, const char *postcode);

store *tst_store_open_as(const struct tst_store_env *f, int role);
/* The same with the session's role key and signing key (either may be NULL). */
store *tst_store_open_keyed(const struct tst_store_env *f, int role, const struct cry_secret *role_key,
                            const struct cry_secret *sign_key);
void tst_store_put(store *s, const struct plan *p, int64_t seq);
/* store_search() for up to 50 hits by name, date of birth and postcode (any may be NULL). */
size_t tst_store_search_n(store *s, const char *name, const char *dob, const char *postcode,
                          struct store_hit **hits);
int64_t tst_store_sql_int(store *s, const char *sql, const char *param);
sqlite3_stmt *tst_store_row(store *s, const char *sql, const char *param);
void tst_store_exec(store *s, const char *sql, const char *param);
int tst_dir_contains(const char *dir, const char *needle);

#endif
