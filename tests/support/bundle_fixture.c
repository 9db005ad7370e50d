/* bundle_fixture.c - see bundle_fixture.h. */
#include "tests/support/bundle_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/err.h"

#include <string.h>

void tst_bundle_fixture_init(struct tst_bundle_fixture *f, uint8_t id0, uint32_t flags, uint64_t from_cursor,
                             uint64_t to_cursor)
{
    assert_int_equal(cry_init(), CMC_OK);
    assert_int_equal(cry_sign_keypair(f->pk, &f->sk), CMC_OK);
    memset(&f->hdr, 0, sizeof f->hdr);
    for (int i = 0; i < BUNDLE_DEVICE_ID_BYTES; i++)
        f->hdr.device_id[i] = (uint8_t)(id0 + i);
    f->hdr.flags = (uint16_t)flags;
    f->hdr.from_cursor = from_cursor;
    f->hdr.to_cursor = to_cursor;
    f->hdr.hub_time = TST_BUNDLE_HUB_TIME;
}

int tst_sign_keys_setup(void **state)
{
    static struct tst_bundle_fixture f;
    tst_bundle_fixture_init(&f, 0, 0, 0, 0);
    memset(&f.hdr, 0, sizeof f.hdr);
    *state = &f;
    return 0;
}

int tst_bundle_fixture_teardown(void **state)
{
    struct tst_bundle_fixture *f = *state;
    cry_secret_free(f->sk);
    f->sk = NULL;
    return 0;
}
