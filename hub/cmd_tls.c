/*
 * cmd_tls.c - `cmc-hub tls rotate --next-key FILE` and `cmc-hub tls status`: changing the
 * hub's TLS key without re-enrolling devices (hub/tls.h).
 */
#include "hub/cli.h"
#include "hub/tls.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

static int tls_rotate(struct hub_cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *file = hub_cli_take_opt(c, "--next-key", &rc);
    char pin[HUB_TLS_PIN_MAX];
    uint8_t *pem = NULL;
    size_t len = 0;
    if (rc != CMC_OK)
        return rc;
    if ((rc = hub_cli_want_args(c, 1, "tls rotate --next-key FILE")) != CMC_OK)
        return rc;
    if (file == NULL)
        return cmc_fail(CMC_ERR_USAGE, "tls rotate: --next-key FILE (the new PEM key or its"
                                       " certificate) is required");
    rc = plat_read_file(file, 64 * 1024, &pem, &len);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_USAGE, "%s: no such file", file);
    if (rc != CMC_OK)
        return rc;
    rc = hub_tls_pin_of_pem((const char *)pem, len, pin);
    cry_memzero(pem, len);
    cmc_free(pem);
    if (rc == CMC_OK)
        rc = hub_tls_announce(h, pin);
    if (rc != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:b}", "next_pin", pin, "announced", 1));
    else
        printf("next TLS key announced (%s).\nDevices pin it at their next sync; `cmc-hub tls"
               " status` says when every active\ndevice has. Then serve with the new key and its"
               " certificate and restart.\n", pin);
    return CMC_OK;
}

static int behind_cb(const char *name, const char *id, void *ctx)
{
    json_t *arr = ctx;
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "name", name, "device_id", id));
    else
        printf("  not synced since: %s (%s)\n", name, id);
    return 0;
}

static int tls_status(struct hub_cli *c, hub *h)
{
    struct hub_tls_state ts;
    json_t *arr = c->json ? json_array() : NULL;
    int rc = hub_cli_want_args(c, 1, "tls status");
    if (rc == CMC_OK && !c->json)
        printf("rotation:\n");
    if (rc == CMC_OK)
        rc = hub_tls_state(h, &ts, behind_cb, arr);
    if (rc != CMC_OK) {
        json_decref(arr);
        return rc;
    }
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:b}", "current_pin", ts.current_pin,
                              "next_pin", ts.next_pin, "active", (json_int_t)ts.active,
                              "behind", (json_int_t)ts.behind, "ready",
                              ts.next_pin[0] != '\0' && ts.behind == 0);
        if (o != NULL)
            json_object_set_new(o, "devices_behind", arr);
        else
            json_decref(arr);
        hub_cli_print_json(o);
    } else if (ts.next_pin[0] == '\0') {
        printf("  nothing announced; serving with %s\n",
               ts.current_pin[0] != '\0' ? ts.current_pin : "(no TLS server started yet)");
    } else {
        printf("  current %s\n  next    %s\n  %lld of %lld active devices have synced since the"
               " announcement\n  %s\n", ts.current_pin[0] != '\0' ? ts.current_pin : "-",
               ts.next_pin, (long long)(ts.active - ts.behind), (long long)ts.active,
               ts.behind == 0 ? "ready: serve with the new key and restart"
                              : "not ready: devices above would need the way back"
                                " (docs/OPERATIONS.md)");
    }
    return CMC_OK;
}

static int cmd_tls(struct hub_cli *c, hub *h)
{
    if (c->argc < 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub tls rotate --next-key FILE | tls status");
    if (strcmp(c->argv[0], "rotate") == 0)
        return tls_rotate(c, h);
    return tls_status(c, h);
}

static const char *const tls_subs[] = {"rotate", "status", NULL};
const struct hub_cli_cmd hub_cmd_tls = {
    "tls", tls_subs,
    "usage: cmc-hub tls rotate --next-key FILE | tls status\n"
    "\n"
    "Changes the hub's TLS key without re-enrolling devices. Devices pin a set of keys that\n"
    "the hub signs with its signing key (GET /v1/tls-pins).\n"
    "  tls rotate --next-key FILE   announce the next key (PEM private key or certificate);\n"
    "                               devices pin it at their next sync\n"
    "  tls status                   the keys, and the active devices not synced since the\n"
    "                               announcement; when none are left, serve with the new key\n"
    "                               and restart: the rotation completes at start\n"
    "A device that missed the window re-pins at its next sync, keeping its replica, if the\n"
    "hub's signing key vouches for the new key (docs/OPERATIONS.md).\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_tls};
