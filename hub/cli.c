/*
 * cli.c - option helpers, JSON output, "did you mean" and --version for `cmc-hub`.
 */
#include "hub/cli.h"

#include "platform/err.h"

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <sodium.h>
#include <sqlite3.h>
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
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s); /* jansson's allocation */
    }
    json_decref(j);
}

/* Levenshtein distance, capped: words longer than 63 bytes are never close. */
static size_t hub_cli_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la > 63 || lb > 63)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *hub_cli_closest(const char *word, const char *const *candidates, size_t n)
{
    size_t best = (size_t)-1, limit = strlen(word) / 3;
    const char *pick = NULL;
    if (limit < 2)
        limit = 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = hub_cli_distance(word, candidates[i]);
        if (d < best) {
            best = d;
            pick = candidates[i];
        }
    }
    return best <= limit ? pick : NULL;
}

int hub_cli_unknown(const char *what, const char *word, const char *const *candidates, size_t n)
{
    const char *near = hub_cli_closest(word, candidates, n);
    if (near != NULL)
        return cmc_fail(CMC_ERR_USAGE, "unknown %s '%s' \xe2\x80\x94 did you mean '%s'?", what,
                        word, near);
    return cmc_fail(CMC_ERR_USAGE, "unknown %s '%s' (see cmc-hub --help)", what, word);
}

/* SQLCipher answers its version only on an open connection. */
static void hub_cli_sqlcipher_version(char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(out, cap, "unknown");
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA cipher_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

void hub_cli_print_version(FILE *f)
{
    char cipher[64];
    hub_cli_sqlcipher_version(cipher, sizeof cipher);
    fprintf(f, "cmc-hub %s\n", CMC_VERSION);
    fprintf(f, "SQLCipher %s (SQLite %s)\n", cipher, sqlite3_libversion());
    fprintf(f, "libsodium %s\n", sodium_version_string());
    fprintf(f, "libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
    fprintf(f, "libmicrohttpd %s\n", MHD_get_version());
    fprintf(f, "GnuTLS %s\n", gnutls_check_version(NULL));
}
