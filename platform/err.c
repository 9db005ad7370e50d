#include "platform/err.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char err_detail[512];
static _Thread_local int err_code;

const char *cmc_strerror(int code)
{
    switch ((enum cmc_err)code) {
#define CMC_ERR_CASE(name, errname, text) \
    case name:                   \
        return text;
        CMC_ERROR_LIST(CMC_ERR_CASE)
#undef CMC_ERR_CASE
    }
    return "unknown error";
}

const char *cmc_errname(int code)
{
    switch ((enum cmc_err)code) {
#define CMC_ERR_NAME(name, errname, text) \
    case name:                            \
        return errname;
        CMC_ERROR_LIST(CMC_ERR_NAME)
#undef CMC_ERR_NAME
    }
    return "unknown";
}

static int cmc_failv(int code, const char *fmt, va_list ap)
{
    err_code = code;
    if (fmt == NULL) {
        err_detail[0] = '\0';
        return code;
    }
    /* Format aside first: callers may pass cmc_errmsg() (this very buffer) as an argument. */
    char buf[sizeof err_detail];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(err_detail, buf, sizeof err_detail);
    return code;
}

int cmc_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cmc_failv(code, fmt, ap);
    va_end(ap);
    return code;
}

const char *cmc_errmsg(void)
{
    if (err_detail[0] != '\0')
        return err_detail;
    return cmc_strerror(err_code);
}

void cmc_err_clear(void)
{
    err_code = CMC_OK;
    err_detail[0] = '\0';
}

int cmc_exit_code(int code)
{
    switch ((enum cmc_err)code) {
    case CMC_OK:
        return 0;
    case CMC_ERR_USAGE:
    case CMC_ERR_INVALID:
    case CMC_ERR_DENIED:
        return 2;
    case CMC_ERR_NOT_FOUND:
        return 3;
    case CMC_ERR_AUTH:
    case CMC_ERR_THROTTLED:
    case CMC_ERR_LOCKED:
    case CMC_ERR_WIPED:
        return 4;
    case CMC_ERR_NOMEM:
    case CMC_ERR_IO:
    case CMC_ERR_DISK_FULL:
    case CMC_ERR_EXISTS:
    case CMC_ERR_TAMPERED:
    case CMC_ERR_CORRUPT:
    case CMC_ERR_TOO_LARGE:
    case CMC_ERR_DB:
    case CMC_ERR_BUSY:
    case CMC_ERR_CRYPTO:
    case CMC_ERR_NET:
    case CMC_ERR_TLS:
    case CMC_ERR_CLOCK:
    case CMC_ERR_PROTOCOL:
    case CMC_ERR_CONFLICT:
    case CMC_ERR_REFUSED:
    case CMC_ERR_UNAUTHORIZED:
    case CMC_ERR_STATE:
        return 1;
    }
    return 1;
}
