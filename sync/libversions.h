/*
 * libversions.h - the `--version` lines both programs share: the program's own version, then
 * the versions of the libraries both link (SQLCipher with its SQLite, libsodium, libcurl), as
 * the running process sees them, for a support ticket or an audit of what is deployed.
 *
 * libversions_print() writes "<program> <version>" and one line a library to f. SQLCipher
 * answers its version only on an open connection, so it opens (and closes) an in-memory
 * database; "unknown" stands in when that fails. Nothing is returned: a --version that cannot
 * name a library still names the rest. Thread-safe as far as the libraries' own calls are.
 */
#ifndef CMC_SYNC_LIBVERSIONS_H
#define CMC_SYNC_LIBVERSIONS_H

#include <stdio.h>

void libversions_print(FILE *f, const char *program, const char *version);

#endif
