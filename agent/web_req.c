#include "agent/web_req.h"

#include "platform/err.h"
#include "sync/listen.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int web_parse_listen(const char *listen, char *host, size_t cap, uint16_t *port)
{
    static const struct listen_words words = { "give 127.0.0.1:PORT", "give [::1]:PORT for IPv6" };
    char h[64];
    int bracketed = 0;
    uint16_t p = 0;
    int rc = listen_split(listen, &words, h, sizeof h, &bracketed, &p);
    if (rc != CMC_OK)
        return rc;

    const char *canon = NULL;
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(h, "localhost") == 0) {
        canon = "127.0.0.1";
    } else if (!bracketed && inet_pton(AF_INET, h, &a4) == 1) {
        /* 127.0.0.0/8 is loopback; inet_pton takes dotted quads only */
        if ((ntohl(a4.s_addr) >> 24) == 127)
            canon = h;
    } else if (bracketed && inet_pton(AF_INET6, h, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            canon = "::1";
    }
    if (canon == NULL)
        return cmc_fail(CMC_ERR_USAGE,
                        "--listen: %s is not a loopback address; the crew's page serves this device only "
                        "(use 127.0.0.1:PORT)",
                        h);
    if (strlen(canon) + 1 > cap)
        return cmc_fail(CMC_ERR_USAGE, "--listen: bad host");
    memmove(host, canon, strlen(canon) + 1);
    *port = p;
    return CMC_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out; trims spaces at both ends. */
static int form_decode(const char *s, size_t n, const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return cmc_fail(CMC_ERR_INVALID, "form field %s: bad %%-escape", name);
            int h1 = hex_digit(s[i + 1]), h2 = hex_digit(s[i + 2]);
            if (h1 < 0 || h2 < 0)
                return cmc_fail(CMC_ERR_INVALID, "form field %s: bad %%-escape", name);
            c = h1 * 16 + h2;
            i += 2;
        }
        if (c == 0)
            return cmc_fail(CMC_ERR_INVALID, "form field %s: holds a NUL byte", name);
        if (o + 1 >= cap)
            return cmc_fail(CMC_ERR_TOO_LARGE, "form field %s is too long", name);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    size_t start = 0;
    while (out[start] == ' ' || out[start] == '\t')
        start++;
    while (o > start && (out[o - 1] == ' ' || out[o - 1] == '\t' || out[o - 1] == '\r' || out[o - 1] == '\n'))
        out[--o] = '\0';
    if (start > 0)
        memmove(out, out + start, o - start + 1);
    return CMC_OK;
}

int web_form_value(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    size_t i = 0;
    if (cap > 0)
        out[0] = '\0';
    if (cap == 0)
        return cmc_fail(CMC_ERR_TOO_LARGE, "form field %s is too long", name);
    while (body != NULL && i < len) {
        size_t j = i;
        while (j < len && body[j] != '&')
            j++;
        /* the pair is body[i..j) */
        const char *eq = memchr(body + i, '=', j - i);
        size_t kl = eq != NULL ? (size_t)(eq - (body + i)) : j - i;
        if (kl == nl && memcmp(body + i, name, nl) == 0) {
            if (eq == NULL)
                return form_decode("", 0, name, out, cap);
            return form_decode(eq + 1, (size_t)(body + j - (eq + 1)), name, out, cap);
        }
        i = j + 1;
    }
    return cmc_fail(CMC_ERR_NOT_FOUND, "form field %s is missing", name);
}

int web_cookie_value(const char *header, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = header;
    if (cap > 0)
        out[0] = '\0';
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t pl = end != NULL ? (size_t)(end - p) : strlen(p);
        if (pl > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
            size_t vl = pl - nl - 1;
            while (vl > 0 && p[nl + vl] == ' ')
                vl--;
            if (vl + 1 > cap)
                return cmc_fail(CMC_ERR_TOO_LARGE, "cookie %s is too long", name);
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return CMC_OK;
        }
        p = end;
    }
    return cmc_fail(CMC_ERR_NOT_FOUND, "cookie %s is missing", name);
}
