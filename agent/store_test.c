/*
 * store_test.c - test-only access to a store's replica (contract in store_test.h).
 *
 * Its own object file, so that a program that never calls it (cmc-agent) does not link it.
 */
#include "agent/store_int.h"
#include "agent/store_test.h"

sqlite3 *store_test_db(store *s)
{
    return s->db;
}
