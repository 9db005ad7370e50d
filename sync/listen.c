/* listen.c - a --listen option split into host and port (sync/listen.h). */
#include "sync/listen.h"

#include "platform/err.h"

#include <stdlib.h>
#include <string.h>

int listen_split(const char *spec, const struct listen_words *words, char *host, size_t cap,
                 int *bracketed, uint16_t *port)
{
    const char *hs = spec, *he, *colon;
    if (spec == NULL || spec[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "--listen: %s", words->v4);
    *bracketed = spec[0] == '[';
    if (*bracketed) {
        he = strchr(spec, ']');
        if (he == NULL || he[1] != ':')
            return cmc_fail(CMC_ERR_USAGE, "--listen: %s", words->v6);
        hs = spec + 1;
        colon = he + 1;
    } else if ((colon = strrchr(spec, ':')) == NULL) {
        return cmc_fail(CMC_ERR_USAGE, "--listen: %s", words->v4);
    } else {
        he = colon;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= cap)
        return cmc_fail(CMC_ERR_USAGE, "--listen: bad host");
    memcpy(host, hs, hl);
    host[hl] = '\0';
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || p > 65535)
        return cmc_fail(CMC_ERR_USAGE, "--listen: the port must be 0 to 65535");
    *port = (uint16_t)p;
    return CMC_OK;
}
