/*
 * config.c - the hub's "key = value" settings file.
 */
#include "hub/config.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_CONFIG_MAX_BYTES (64 * 1024)

struct hub_config_key {
    const char *key;
    size_t str_off; /* offset of a char array, or of an unsigned when str_cap is 0 */
    size_t str_cap;
};

#define CFG_STR(k, f) { k, offsetof(struct hub_config, f), sizeof(((struct hub_config *)0)->f) }
#define CFG_NUM(k, f) { k, offsetof(struct hub_config, f), 0 }

static const struct hub_config_key hub_config_keys[] = {
    CFG_STR("dir", dir),
    CFG_STR("listen", listen),
    CFG_STR("tls_cert", tls_cert),
    CFG_STR("tls_key", tls_key),
    CFG_STR("tls_next_key", tls_next_key),
    CFG_STR("metrics_listen", metrics_listen),
    CFG_STR("log", log),
    CFG_NUM("max_connections", max_connections),
    CFG_NUM("per_ip_connections", per_ip_connections),
    CFG_NUM("idle_timeout", idle_timeout),
    CFG_NUM("request_deadline", request_deadline),
    CFG_NUM("enroll_per_minute", enroll_per_minute),
    CFG_NUM("threads", threads),
};

static int hub_config_set(struct hub_config *cfg, const char *name, int line, const char *key,
                          size_t klen, const char *val, size_t vlen)
{
    for (size_t i = 0; i < sizeof hub_config_keys / sizeof hub_config_keys[0]; i++) {
        const struct hub_config_key *k = &hub_config_keys[i];
        if (strlen(k->key) != klen || strncmp(k->key, key, klen) != 0)
            continue;
        if (k->str_cap > 0) {
            if (vlen + 1 > k->str_cap)
                return cmc_fail(CMC_ERR_USAGE, "%s line %d: %s is too long", name, line, k->key);
            memcpy((char *)cfg + k->str_off, val, vlen);
            ((char *)cfg + k->str_off)[vlen] = '\0';
        } else {
            char num[16], *end = NULL;
            unsigned long v;
            if (vlen == 0 || vlen >= sizeof num)
                return cmc_fail(CMC_ERR_USAGE, "%s line %d: %s must be a number", name, line,
                                k->key);
            memcpy(num, val, vlen);
            num[vlen] = '\0';
            v = strtoul(num, &end, 10);
            if (*end != '\0' || num[0] == '-' || v > 1000000)
                return cmc_fail(CMC_ERR_USAGE, "%s line %d: %s must be a number up to 1000000",
                                name, line, k->key);
            *(unsigned *)(void *)((char *)cfg + k->str_off) = (unsigned)v;
        }
        return CMC_OK;
    }
    return cmc_fail(CMC_ERR_USAGE, "%s line %d: unknown setting '%.*s'", name, line, (int)klen,
                    key);
}

static int hub_config_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

int hub_config_parse(const char *text, size_t len, const char *name, struct hub_config *out)
{
    size_t pos = 0;
    int line = 0, rc = CMC_OK;
    while (pos < len && rc == CMC_OK) {
        size_t end = pos, ks, ke, vs, ve;
        const char *eq;
        line++;
        while (end < len && text[end] != '\n')
            end++;
        ks = pos;
        ve = end;
        pos = end + 1;
        while (ks < ve && hub_config_blank(text[ks]))
            ks++;
        if (ks == ve || text[ks] == '#')
            continue;
        eq = memchr(text + ks, '=', ve - ks);
        if (eq == NULL)
            return cmc_fail(CMC_ERR_USAGE, "%s line %d: expected key = value", name, line);
        ke = (size_t)(eq - text);
        vs = ke + 1;
        while (ke > ks && hub_config_blank(text[ke - 1]))
            ke--;
        while (vs < ve && hub_config_blank(text[vs]))
            vs++;
        while (ve > vs && hub_config_blank(text[ve - 1]))
            ve--;
        rc = hub_config_set(out, name, line, text + ks, ke - ks, text + vs, ve - vs);
    }
    return rc;
}

int hub_config_load(const char *path, struct hub_config *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    int optional = 0;

    memset(out, 0, sizeof *out);
    if (path == NULL) {
        path = getenv("CMC_HUB_CONFIG");
        if (path == NULL || path[0] == '\0') {
            path = HUB_CONFIG_DEFAULT_PATH;
            optional = 1;
        }
    }
    if (strlen(path) >= sizeof out->path)
        return cmc_fail(CMC_ERR_USAGE, "settings file: path too long");
    rc = plat_read_file(path, HUB_CONFIG_MAX_BYTES, &buf, &len);
    if (rc == CMC_ERR_NOT_FOUND && optional)
        return CMC_OK;
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_USAGE, "settings file %s: no such file", path);
    if (rc != CMC_OK)
        return rc;
    snprintf(out->path, sizeof out->path, "%s", path);
    rc = hub_config_parse((const char *)buf, len, path, out);
    cmc_free(buf);
    return rc;
}
