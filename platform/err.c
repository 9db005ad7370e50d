#include "platform/err.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char err_detail[512];
static _Thread_local int err_code;

/* Each code's name and text, indexed by code: the X-macro's rows, so none can be missing. */
static const struct cmc_err_row {
    const char *name, *text;
} cmc_err_rows[] = {
#define CMC_ERR_ROW(code, errname, text) [code] = {errname, text},
    CMC_ERROR_LIST(CMC_ERR_ROW)
#undef CMC_ERR_ROW
};

static const struct cmc_err_row *cmc_err_row(int code)
{
    if (code < 0 || (size_t)code >= sizeof cmc_err_rows / sizeof cmc_err_rows[0])
        return NULL;
    return &cmc_err_rows[code];
}

const char *cmc_strerror(int code)
{
    const struct cmc_err_row *row = cmc_err_row(code);
    return row != NULL ? row->text : "unknown error";
}

const char *cmc_errname(int code)
{
    const struct cmc_err_row *row = cmc_err_row(code);
    return row != NULL ? row->name : "unknown";
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
    /* The codes with an exit status of their own; every other failure is a runtime error. */
    static const struct {
        enum cmc_err code;
        int status;
    } statuses[] = {
        {CMC_OK, 0},            {CMC_ERR_USAGE, 2},     {CMC_ERR_INVALID, 2},
        {CMC_ERR_DENIED, 2},    {CMC_ERR_NOT_FOUND, 3}, {CMC_ERR_AUTH, 4},
        {CMC_ERR_THROTTLED, 4}, {CMC_ERR_LOCKED, 4},    {CMC_ERR_WIPED, 4},
    };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if ((int)statuses[i].code == code)
            return statuses[i].status;
    return 1;
}
