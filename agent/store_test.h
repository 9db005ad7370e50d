/*
 * store_test.h - test-only access to the replica behind a store handle.
 *
 * Tests use the raw SQLite handle to play the attacker (a draft slipped into the replica,
 * a row whose status column lies) and to look at what the store wrote. Product code never
 * includes this header. The handle stays owned by the store; do not close it.
 */
#ifndef CMC_STORE_TEST_H
#define CMC_STORE_TEST_H

#include "agent/store.h"

#include <sqlite3.h>

sqlite3 *store_test_db(store *s);

#endif
