/*
 * bundle_fixture.h - a hub signing key pair and a bundle header, for the tests that build,
 * sign and read bundles.
 *
 * tst_bundle_fixture_init() starts libsodium, makes a fresh Ed25519 key pair and fills a
 * header for a device whose id bytes count up from `id0`, with these flags and cursors and a
 * fixed hub time. tst_bundle_fixture_teardown() is a cmocka teardown for a fixture handed
 * over in *state; it frees the secret key. tst_sign_keys_setup() is a cmocka setup for the
 * tests that need only the key pair: a fixture with a zeroed header, in *state.
 */
#ifndef CMC_TEST_SUPPORT_BUNDLE_FIXTURE_H
#define CMC_TEST_SUPPORT_BUNDLE_FIXTURE_H

#include "crypto/cry.h"
#include "sync/bundle.h"

#include <stdint.h>

#define TST_BUNDLE_HUB_TIME 1800000000

struct tst_bundle_fixture {
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk;
    struct bundle_header hdr;
};

void tst_bundle_fixture_init(struct tst_bundle_fixture *f, uint8_t id0, uint32_t flags, uint64_t from_cursor,
                             uint64_t to_cursor);
int tst_sign_keys_setup(void **state);
int tst_bundle_fixture_teardown(void **state);

#endif
