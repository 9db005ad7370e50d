/*
 * pg_fixture.h - the hub's unit tests on either store. When $CMC_TEST_HUB_DB names a
 * PostgreSQL database (tests/support/pg_run.sh starts a throwaway server and sets it), each
 * tst_hub_store_fresh() makes a new, empty schema there and points the hub at it
 * (hub_use_db), so every test starts from an empty store as it does with a new SQLCipher
 * file; without the variable the hub keeps its SQLCipher file in the test's directory.
 *
 * Failures fail the running test (cmocka). Linked only into tests that call it.
 */
#ifndef CMC_TEST_SUPPORT_PG_FIXTURE_H
#define CMC_TEST_SUPPORT_PG_FIXTURE_H

/* Call before hub_init: the next hub_init/hub_open use a fresh store. */
void tst_hub_store_fresh(void);
/* 1 when the tests run on PostgreSQL. */
int tst_hub_store_pg(void);
/* Runs sql on its own connection to $CMC_TEST_HUB_DB (as a DBA would), rows ignored. */
void tst_pg_exec(const char *sql);

#endif
