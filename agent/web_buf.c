/* web_buf.c - the page's growable output buffer, with HTML escaping. */
#include "agent/web_html.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void web_buf_init(struct web_buf *b)
{
    memset(b, 0, sizeof *b);
}

void web_buf_free(struct web_buf *b)
{
    if (b->p != NULL) {
        cry_memzero(b->p, b->cap);
        cmc_free(b->p);
    }
    web_buf_init(b);
}

/* Grows by hand rather than with realloc, so the old block (patient data) is zeroed. */
static int buf_reserve(struct web_buf *b, size_t more)
{
    if (b->nomem)
        return 0;
    if (b->len + more + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *np = cmc_malloc(cap);
    if (np == NULL) {
        b->nomem = 1;
        return 0;
    }
    if (b->p != NULL) {
        memcpy(np, b->p, b->len);
        cry_memzero(b->p, b->cap);
        cmc_free(b->p);
    }
    b->p = np;
    b->cap = cap;
    b->p[b->len] = '\0';
    return 1;
}

static void buf_add(struct web_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void web_buf_raw(struct web_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void web_buf_rawf(struct web_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Escapes s: & < > " ' as entities, and every character sync/text.h refuses (controls,
 * bidirectional overrides, invisible characters; ill-formed UTF-8) as U+FFFD, so text an
 * earlier version let into the replica cannot reorder or hide what the page says. */
static void buf_escaped(struct web_buf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0, n = strlen(s);
    while (i < n) {
        const char *rep = NULL;
        size_t k = 1;
        uint32_t cp = 0;
        switch (u[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if (u[i] >= 0x20 && u[i] < 0x7f)
                break;
            k = text_decode(u + i, n - i, &cp);
            if (k == 0) {
                k = 1;
                rep = "\xef\xbf\xbd";
            } else if (text_classify(cp) != TEXT_OK) {
                rep = "\xef\xbf\xbd";
            }
            break;
        }
        if (rep == NULL) {
            i += k;
            continue;
        }
        buf_add(b, s + run, i - run);
        web_buf_raw(b, rep);
        i += k;
        run = i;
    }
    buf_add(b, s + run, i - run);
}

void web_buf_attr(struct web_buf *b, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        web_buf_raw(b, "-");
        return;
    }
    buf_escaped(b, s);
}

void web_buf_text(struct web_buf *b, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        web_buf_raw(b, "-");
        return;
    }
    /* Text beyond ASCII may be right-to-left: isolated, so it cannot reorder the words
     * around it ("known as", a date, a phone number). */
    int isolate = 0;
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0' && !isolate; q++)
        isolate = *q >= 0x80;
    if (isolate)
        web_buf_raw(b, "<bdi>");
    buf_escaped(b, s);
    if (isolate)
        web_buf_raw(b, "</bdi>");
}

int web_buf_status(const struct web_buf *b)
{
    return b->nomem ? cmc_fail(CMC_ERR_NOMEM, "out of memory building the page") : CMC_OK;
}

void web_buf_nomem(struct web_buf *b)
{
    b->nomem = 1;
}
