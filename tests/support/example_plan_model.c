/* example_plan_model.c - see example_plan_model.h. */
#include "tests/support/example_plan_model.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/example_plan.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

void tst_example_plan_parse(struct plan *p)
{
    char *json = tst_example_plan_or_fail();
    int rc;
    plan_init(p);
    rc = plan_from_json(json, strlen(json), p);
    free(json);
    if (rc != CMC_OK)
        fail_msg("example plan: %s", cmc_errmsg());
}

uint8_t *tst_plan_with_fields(const uint8_t *mp, size_t mlen, unsigned n, const void *extra, size_t len)
{
    assert_true(mlen >= 3);
    assert_int_equal(mp[0], 0xde); /* map16 */
    unsigned count = ((unsigned)mp[1] << 8 | mp[2]) + n;
    uint8_t *later = cmc_malloc(mlen + len);
    assert_non_null(later);
    memcpy(later, mp, mlen);
    later[1] = (uint8_t)(count >> 8);
    later[2] = (uint8_t)count;
    memcpy(later + mlen, extra, len);
    return later;
}

void tst_plan_load_file(const char *path, struct plan *p)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(path, 1 << 20, &buf, &len), CMC_OK);
    if (plan_from_json((const char *)buf, len, p) != CMC_OK)
        fail_msg("%s: %s", path, cmc_errmsg());
    cmc_free(buf);
}
