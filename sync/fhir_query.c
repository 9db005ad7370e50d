/*
 * fhir_query.c - FHIR search parameters from a query string (fhir.h), shared by the hub's
 * read API and the device's loopback endpoint.
 */
#include "sync/fhir.h"

#include "platform/err.h"

#include <string.h>


static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s[0..len) into out (cap bytes); 0 on a bad escape or overflow. */
static int url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return 0;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+')
            c = ' ';
        if (c == 0 || o + 1 >= cap)
            return 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 1;
}

int fhir_query_parse(const char *q, struct fhir_query *out)
{
    out->n = 0;
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&'), *eq;
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        if (len > 0) {
            struct fhir_param *p = &out->p[out->n];
            if (out->n >= FHIR_QUERY_MAX)
                return cmc_fail(CMC_ERR_INVALID, "too many search parameters");
            eq = memchr(q, '=', len);
            if (eq == NULL || !url_decode(q, (size_t)(eq - q), p->key, sizeof p->key) ||
                !url_decode(eq + 1, len - (size_t)(eq - q) - 1, p->value, sizeof p->value))
                return cmc_fail(CMC_ERR_INVALID, "a search parameter is malformed");
            out->n++;
        }
        q = amp != NULL ? amp + 1 : NULL;
    }
    return CMC_OK;
}

const char *fhir_query_get(const struct fhir_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value;
    return NULL;
}

/* Every parameter is one this search understands (an unknown one would silently widen it). */
int fhir_query_known(const struct fhir_query *q, const char *const *known)
{
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        while (known[k] != NULL && strcmp(known[k], q->p[i].key) != 0)
            k++;
        if (known[k] == NULL)
            return cmc_fail(CMC_ERR_INVALID, "search parameter %s is not supported here", q->p[i].key);
    }
    return CMC_OK;
}

/* "https://fhir.nhs.uk/Id/nhs-number|N" -> N (checked). */
int fhir_query_nhs(const char *v, char nhs[PLAN_NHS_LEN + 1])
{
    if (strncmp(v, FHIR_NHS_SYSTEM "|", strlen(FHIR_NHS_SYSTEM "|")) != 0)
        return cmc_fail(CMC_ERR_INVALID, "identifier: system|value with system " FHIR_NHS_SYSTEM);
    if (plan_nhs_normalise(v + strlen(FHIR_NHS_SYSTEM "|"), nhs) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "identifier: not a valid NHS number");
    return CMC_OK;
}

