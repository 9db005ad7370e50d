/* text.c - the one classifier of characters a plan may not hold, and the printers' escapes. */
#include "sync/text.h"

#include <stdio.h>
#include <string.h>

enum text_class text_classify(uint32_t cp)
{
    if (cp == '\t' || cp == '\n')
        return TEXT_OK;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
        return TEXT_CONTROL;
    if (cp < 0xad)
        return TEXT_OK;
    if (cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return TEXT_BIDI;
    if (cp == 0x00ad || cp == 0x180e || cp == 0x200b || cp == 0x2028 || cp == 0x2029 ||
        (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x206a && cp <= 0x206f) || cp == 0xfeff ||
        (cp >= 0xfff9 && cp <= 0xfffb) || cp == 0xfffe || cp == 0xffff ||
        (cp >= 0x1bca0 && cp <= 0x1bca3) || (cp >= 0xe0000 && cp <= 0xe007f))
        return TEXT_INVISIBLE;
    return TEXT_OK;
}

size_t text_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t k;
    uint32_t min, v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        k = 1; min = 0x80; v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        k = 2; min = 0x800; v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        k = 3; min = 0x10000; v = c & 0x07;
    } else
        return 0;
    if (n <= k)
        return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[j] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return k + 1;
}

enum text_class text_check(const char *s, size_t n, unsigned flags, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    *cp = 0;
    while (i < n) {
        uint32_t c;
        if (u[i] >= 0x20 && u[i] < 0x7f) { /* the common case, one byte at a time */
            i++;
            continue;
        }
        size_t k = text_decode(u + i, n - i, &c);
        if (k == 0)
            return TEXT_ILL_FORMED;
        enum text_class cls = text_classify(c);
        if (cls == TEXT_OK && (flags & TEXT_ONE_LINE) && (c == '\t' || c == '\n'))
            cls = TEXT_LINE;
        if (cls != TEXT_OK) {
            *cp = c;
            return cls;
        }
        i += k;
    }
    return TEXT_OK;
}

const char *text_class_words(enum text_class c)
{
    switch (c) {
    case TEXT_OK:
        return "allowed text";
    case TEXT_CONTROL:
        return "a control character";
    case TEXT_LINE:
        return "a line break or tab in a one-line field";
    case TEXT_BIDI:
        return "a bidirectional override or mark";
    case TEXT_INVISIBLE:
        return "an invisible format character";
    case TEXT_ILL_FORMED:
        return "ill-formed UTF-8";
    }
    return "a character not allowed";
}

void text_marker(uint32_t cp, char *buf, size_t cap)
{
    if (cp < 0x20)
        snprintf(buf, cap, "^%c", (char)(cp + 0x40));
    else if (cp == 0x7f)
        snprintf(buf, cap, "^?");
    else
        snprintf(buf, cap, "<U+%04X>", (unsigned)cp);
}

/* Writes s with every refused character replaced by what `escape` writes for it. */
static size_t put_escaped(FILE *out, const char *s, size_t n, void (*escape)(uint32_t, char *, size_t),
                          int ill_formed_too)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0, put = 0;
    char mark[16];
    while (i < n) {
        uint32_t c = 0;
        if (u[i] >= 0x20 && u[i] < 0x7f) {
            i++;
            continue;
        }
        size_t k = text_decode(u + i, n - i, &c);
        if (k != 0 && text_classify(c) == TEXT_OK) {
            i += k;
            continue;
        }
        if (k == 0 && !ill_formed_too) {
            i++;
            continue;
        }
        put += fwrite(s + run, 1, i - run, out);
        if (k == 0) {
            put += fwrite("\xef\xbf\xbd", 1, 3, out); /* U+FFFD */
            i++;
        } else {
            escape(c, mark, sizeof mark);
            put += fwrite(mark, 1, strlen(mark), out);
            i += k;
        }
        run = i;
    }
    put += fwrite(s + run, 1, n - run, out);
    return put;
}

size_t text_put_terminal(FILE *out, const char *s, size_t n)
{
    return put_escaped(out, s, n, text_marker, 1);
}

static void json_escape(uint32_t cp, char *buf, size_t cap)
{
    if (cp > 0xffff) {
        uint32_t v = cp - 0x10000;
        snprintf(buf, cap, "\\u%04x\\u%04x", (unsigned)(0xd800 + (v >> 10)), (unsigned)(0xdc00 + (v & 0x3ff)));
    } else
        snprintf(buf, cap, "\\u%04x", (unsigned)cp);
}

size_t text_put_json(FILE *out, const char *s, size_t n)
{
    return put_escaped(out, s, n, json_escape, 0);
}
