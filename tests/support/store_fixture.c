/* store_fixture.c - see store_fixture.h. */
#include "tests/support/store_fixture.h"

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "tests/support/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>

int tst_store_setup(void **state)
{
    struct tst_store_env *f = calloc(1, sizeof *f);
    if (f == NULL || cry_init() != CMC_OK)
        goto fail;
    if (tst_tmpdir_make("store", f->dir, sizeof f->dir) != 0)
        goto fail;
    snprintf(f->path, sizeof f->path, "%s/replica.db", f->dir);
    if (cry_secret_new(CRY_KEY_BYTES, &f->key) != CMC_OK)
        goto fail;
    cry_random(f->key->buf, f->key->len);
    *state = f;
    return 0;
fail:
    if (f != NULL && f->dir[0] != '\0')
        tst_tmpdir_remove(f->dir);
    free(f);
    return -1;
}

int tst_store_teardown(void **state)
{
    struct tst_store_env *f = *state;
    int rc = tst_tmpdir_remove(f->dir);
    cry_secret_free(f->key);
    free(f);
    cmc_alloc_fail_after(-1, 0);
    plat_fake_clock_disable();
    return rc == 0 ? 0 : -1;
}
