/* libversions.c - see libversions.h. */
#include "sync/libversions.h"

#include <curl/curl.h>
#include <sodium.h>
#include <sqlite3.h>

/* SQLCipher answers its version only on an open connection. */
static void libversions_sqlcipher(char *out, size_t cap)
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

void libversions_print(FILE *f, const char *program, const char *version)
{
    char cipher[64];
    libversions_sqlcipher(cipher, sizeof cipher);
    fprintf(f, "%s %s\n", program, version);
    fprintf(f, "SQLCipher %s (SQLite %s)\n", cipher, sqlite3_libversion());
    fprintf(f, "libsodium %s\n", sodium_version_string());
    fprintf(f, "libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
}
