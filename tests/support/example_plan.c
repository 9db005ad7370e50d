/* example_plan.c - see example_plan.h. */
#include "tests/support/example_plan.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_REL "examples/plan.json"

static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = -1;
    if (f == NULL)
        return -1;
    for (;;) {
        if (cap - n < 4096) {
            char *b = realloc(buf, cap + 65536);
            if (b == NULL)
                goto out;
            buf = b;
            cap += 65536;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f))
        goto out;
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    if (len != NULL)
        *len = n;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

int tst_example_plan(char **json, size_t *len)
{
    char path[4096];
    const char *env = getenv("CMC_SHARED");
    *json = NULL;
    if (env != NULL && env[0] != '\0') {
        snprintf(path, sizeof path, "%s/%s", env, EXAMPLE_REL);
        return read_all(path, json, len);
    }
    /* shared/ beside the working directory, then beside each parent */
    strcpy(path, "");
    for (int up = 0; up <= 5; up++) {
        char cand[4200];
        snprintf(cand, sizeof cand, "%sshared/%s", path, EXAMPLE_REL);
        if (read_all(cand, json, len) == 0)
            return 0;
        strcat(path, "../");
    }
    return -1;
}

char *tst_example_plan_or_fail(void)
{
    char *json = NULL;
    if (tst_example_plan(&json, NULL) != 0)
        fail_msg("shared/examples/plan.json not found (set CMC_SHARED to the shared folder)");
    return json;
}
