/* example_plan_model.c - see example_plan_model.h. */
#include "tests/support/example_plan_model.h"

#include "platform/err.h"
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
