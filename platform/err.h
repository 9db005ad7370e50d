/*
 * err.h - the one error convention of the code base.
 *
 * Every function that can fail returns an int that is a `enum cmc_err` (CMC_OK is 0) and
 * hands results back through out-parameters. A failing function records a one-line detail
 * with cmc_fail(); the detail is kept per thread and read with cmc_errmsg() until the next
 * cmc_fail() on that thread. Library errors (SQLite, curl, zlib, msgpack, jansson) are
 * translated to a cmc_err where they are called, with the library's own text kept in the
 * detail.
 *
 * Details never carry patient data: name the field or the file, never the value.
 *
 * Each entry is X(code, name, description): the name is the stable lower-case word of
 * cmc_errname (--json output), the description cmc_strerror's text. New codes go at the end
 * of the list only (codes and names are stable: they appear in --json output).
 */
#ifndef CMC_ERR_H
#define CMC_ERR_H

#include <stdarg.h>

#define CMC_ERROR_LIST(X)                                                              \
    X(CMC_OK, "ok", "success")                                                         \
    X(CMC_ERR_NOMEM, "nomem", "out of memory")                                         \
    X(CMC_ERR_IO, "io", "file or device input/output failed")                          \
    X(CMC_ERR_DISK_FULL, "disk_full", "the disk is full")                              \
    X(CMC_ERR_USAGE, "usage", "bad usage")                                             \
    X(CMC_ERR_INVALID, "invalid", "invalid input")                                     \
    X(CMC_ERR_NOT_FOUND, "not_found", "not found")                                     \
    X(CMC_ERR_EXISTS, "exists", "already exists")                                      \
    X(CMC_ERR_AUTH, "auth", "wrong user or PIN")                                       \
    X(CMC_ERR_THROTTLED, "throttled", "too many failed attempts; wait before trying again") \
    X(CMC_ERR_LOCKED, "locked", "locked")                                              \
    X(CMC_ERR_DENIED, "denied", "not permitted for this role")                         \
    X(CMC_ERR_TAMPERED, "tampered", "integrity check failed: data was altered or damaged") \
    X(CMC_ERR_CORRUPT, "corrupt", "malformed data")                                    \
    X(CMC_ERR_TOO_LARGE, "too_large", "too large")                                     \
    X(CMC_ERR_DB, "db", "database error")                                              \
    X(CMC_ERR_BUSY, "busy", "in use by another process")                               \
    X(CMC_ERR_CRYPTO, "crypto", "cryptographic operation failed")                      \
    X(CMC_ERR_NET, "network", "network error")                                         \
    X(CMC_ERR_TLS, "tls", "secure connection failed")                                  \
    X(CMC_ERR_CLOCK, "clock", "the device clock is wrong")                             \
    X(CMC_ERR_PROTOCOL, "protocol", "the hub sent something unexpected")               \
    X(CMC_ERR_CONFLICT, "conflict", "conflicting change")                              \
    X(CMC_ERR_WIPED, "wiped", "this device has been wiped")                            \
    X(CMC_ERR_REFUSED, "refused", "the hub refused the request")                       \
    X(CMC_ERR_UNAUTHORIZED, "unauthorized", "the hub does not recognise this device")  \
    X(CMC_ERR_STATE, "state", "not allowed in the current state")

enum cmc_err {
#define CMC_ERR_ENUM(name, errname, text) name,
    CMC_ERROR_LIST(CMC_ERR_ENUM)
#undef CMC_ERR_ENUM
};

/* Short fixed description of a code. Never NULL. */
const char *cmc_strerror(int code);

/* Stable lower-case name of a code, e.g. "not_found", for --json output. */
const char *cmc_errname(int code);

/* Records a detail for the current thread and returns `code`, so callers can write
 * `return cmc_fail(CMC_ERR_INVALID, "nhs_number: wrong check digit");` */
int cmc_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail recorded by the last cmc_fail() on this thread, or the code's description
 * when none was recorded since cmc_err_clear(). Never NULL. */
const char *cmc_errmsg(void);
void cmc_err_clear(void);

/* Process exit status for the command-line programs (see CLI.md):
 * 0 success, 1 runtime error, 2 bad usage or invalid input, 3 not found, 4 locked. */
int cmc_exit_code(int code);

#endif
