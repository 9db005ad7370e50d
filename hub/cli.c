/*
 * cli.c - option helpers, JSON output, "did you mean" and --version for `cmc-hub`.
 */
#include "hub/cli.h"

#include "platform/err.h"
#include "sync/libversions.h"
#include "sync/text.h"
#include "sync/words.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#ifndef CMC_VERSION
#define CMC_VERSION "unknown"
#endif

const char *hub_cli_take_opt(struct hub_cli *c, const char *name, int *err)
{
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], name) == 0) {
            const char *v;
            if (i + 1 >= c->argc) {
                *err = cmc_fail(CMC_ERR_USAGE, "%s needs a value", name);
                return NULL;
            }
            v = c->argv[i + 1];
            memmove(&c->argv[i], &c->argv[i + 2], (size_t)(c->argc - i - 2) * sizeof c->argv[0]);
            c->argc -= 2;
            return v;
        }
    }
    return NULL;
}

int hub_cli_take_flag(struct hub_cli *c, const char *name)
{
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], name) == 0) {
            memmove(&c->argv[i], &c->argv[i + 1], (size_t)(c->argc - i - 1) * sizeof c->argv[0]);
            c->argc--;
            return 1;
        }
    }
    return 0;
}

int hub_cli_want_args(const struct hub_cli *c, int n, const char *usage)
{
    for (int i = 0; i < c->argc; i++)
        if (strncmp(c->argv[i], "--", 2) == 0)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %s (see cmc-hub %s --help)",
                            c->argv[i], usage);
    if (c->argc != n)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub %s", usage);
    return CMC_OK;
}

void hub_cli_print_json(json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (s != NULL) {
        text_put_json(stdout, s, strlen(s)); /* bidi and invisible characters as \u escapes */
        fputc('\n', stdout);
        free(s); /* jansson's allocation */
    }
    json_decref(j);
}

int hub_cli_print_list(int rc, json_t *arr)
{
    if (rc == CMC_OK)
        hub_cli_print_json(arr);
    else
        json_decref(arr);
    return rc;
}

const char *hub_cli_closest(const char *word, const char *const *candidates, size_t n)
{
    return words_closest(word, candidates, n);
}

int hub_cli_unknown(const char *what, const char *word, const char *const *candidates, size_t n)
{
    const char *near = hub_cli_closest(word, candidates, n);
    if (near != NULL)
        return cmc_fail(CMC_ERR_USAGE, "unknown %s '%s' \xe2\x80\x94 did you mean '%s'?", what,
                        word, near);
    return cmc_fail(CMC_ERR_USAGE, "unknown %s '%s' (see cmc-hub --help)", what, word);
}

void hub_cli_print_version(FILE *f)
{
    libversions_print(f, "cmc-hub", CMC_VERSION);
    fprintf(f, "libmicrohttpd %s\n", MHD_get_version());
    fprintf(f, "GnuTLS %s\n", gnutls_check_version(NULL));
}
