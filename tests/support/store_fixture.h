/*
 * store_fixture.h - a place for an agent replica in the agent's unit tests: a temporary
 * directory, the replica's path in it, and a fresh random database key.
 *
 * tst_store_setup() (cmocka setup) initialises the crypto layer, makes the directory, names
 * the replica "<dir>/replica.db" and fills a new key with random bytes; it returns -1 when any
 * step fails. tst_store_teardown() removes the directory tree without a shell, frees the key
 * and the fixture, clears any allocation-failure plan and turns the fake clock off. The
 * replica itself is the test's to open and close. Archived into the test-support library,
 * linked only into tests that call it.
 */
#ifndef CMC_TEST_SUPPORT_STORE_FIXTURE_H
#define CMC_TEST_SUPPORT_STORE_FIXTURE_H

#include "crypto/cry.h"

struct tst_store_env {
    char dir[64];
    char path[128];
    struct cry_secret *key;
};

int tst_store_setup(void **state);
int tst_store_teardown(void **state);

#endif
