/*
 * tls_pins.c - taking a hub-signed set of TLS pins (agent/tls_pins.h).
 */
#include "agent/tls_pins.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define ST_TLS_PIN "tls_pin" /* the key engine.c reads the pin set from */
#define ST_TLS_PINS_AT "tls_pins_at"
#define TLS_PINS_DOMAIN "cmc-tls-pins-v1\n" /* hub/tls.h HUB_TLS_PINS_DOMAIN */
#define TLS_PINS_MAX 256

struct pin_set {
    char pins[TLS_PINS_MAX];
    int64_t at;
};

/* Parses and checks the signed document; CMC_ERR_TLS when it does not verify. */
static int pins_verify(const struct http_response *resp, const uint8_t hub_pk[CRY_SIGN_PK_BYTES],
                       struct pin_set *out)
{
    json_t *doc = json_loadb((const char *)resp->body, resp->body_len, 0, NULL);
    const char *pins = NULL, *sig_hex = NULL;
    json_int_t at = 0;
    uint8_t sig[CRY_SIG_BYTES];
    char msg[TLS_PINS_MAX + 64];
    int rc = CMC_OK, n;

    if (doc == NULL || json_unpack(doc, "{s:s, s:I, s:s}", "pins", &pins, "at", &at, "sig",
                                   &sig_hex) != 0 ||
        strlen(pins) >= TLS_PINS_MAX || strncmp(pins, "sha256//", 8) != 0 ||
        cry_unhex(sig, sizeof sig, sig_hex) != CMC_OK) {
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub's TLS key list is malformed");
        goto out;
    }
    n = snprintf(msg, sizeof msg, "%s%s\n%lld", TLS_PINS_DOMAIN, pins, (long long)at);
    if (cry_verify(hub_pk, msg, (size_t)n, sig) != CMC_OK) {
        rc = cmc_fail(CMC_ERR_TLS, "the hub's TLS key list is not signed by the hub key pinned"
                                   " at enrollment");
        goto out;
    }
    snprintf(out->pins, sizeof out->pins, "%s", pins);
    out->at = at;
out:
    json_decref(doc);
    return rc;
}

/* Keeps `set` unless the replica already holds one as new. *taken says whether it did. */
static int pins_store(store *s, const struct pin_set *set, int *taken)
{
    int64_t have = 0;
    int rc;
    *taken = 0;
    if (store_state_get_int(s, ST_TLS_PINS_AT, &have) != CMC_OK)
        have = 0;
    if (set->at <= have)
        return CMC_OK;
    if ((rc = store_batch_begin(s)) != CMC_OK)
        return rc;
    if ((rc = store_state_set(s, ST_TLS_PIN, set->pins)) != CMC_OK ||
        (rc = store_state_set_int(s, ST_TLS_PINS_AT, set->at)) != CMC_OK) {
        store_batch_rollback(s);
        return rc;
    }
    if ((rc = store_batch_commit(s)) == CMC_OK)
        *taken = 1;
    return rc;
}

int tls_pins_refresh(store *s, http_client *client, const uint8_t hub_pk[CRY_SIGN_PK_BYTES])
{
    struct http_response resp;
    struct pin_set set;
    int rc, taken = 0;
    http_response_init(&resp);
    /* Signed: the hub counts which devices hold the set before it switches keys. */
    rc = http_request(client, "GET", "/v1/tls-pins", NULL, NULL, 0, 0, &resp);
    if (rc != CMC_OK) {
        rc = resp.status == 404 ? CMC_OK : rc; /* a hub without rotation */
        goto out;
    }
    if ((rc = pins_verify(&resp, hub_pk, &set)) == CMC_OK)
        rc = pins_store(s, &set, &taken);
    if (rc == CMC_OK && taken)
        plat_log(PLAT_LOG_INFO, "hub TLS keys pinned: %s", set.pins);
out:
    http_response_free(&resp);
    return rc;
}

int tls_pins_recover(store *s, const char *hub_url, const char *ca_file,
                     const uint8_t hub_pk[CRY_SIGN_PK_BYTES], char **pins)
{
    struct http_options opt = {
        .base_url = hub_url,
        .ca_file = ca_file != NULL && ca_file[0] != '\0' ? ca_file : NULL,
        .capture_pin = 1,
        .max_attempts = 1,
    };
    struct http_response resp;
    struct pin_set set;
    http_client *client = NULL;
    char peer[HTTP_PIN_MAX], *copy;
    int rc, taken = 0;

    http_response_init(&resp);
    if ((rc = http_client_new(&opt, &client)) != CMC_OK)
        return rc;
    if ((rc = http_request(client, "GET", "/v1/tls-pins", NULL, NULL, 0,
                           HTTP_NO_SIGN | HTTP_NO_RETRY, &resp)) != CMC_OK)
        goto out;
    if ((rc = http_client_peer_pin(client, peer)) != CMC_OK ||
        (rc = pins_verify(&resp, hub_pk, &set)) != CMC_OK)
        goto out;
    if (strstr(set.pins, peer) == NULL) {
        rc = cmc_fail(CMC_ERR_TLS, "the hub's TLS key is not one its signed key list names");
        goto out;
    }
    if ((rc = pins_store(s, &set, &taken)) != CMC_OK)
        goto out;
    if ((copy = cmc_strdup(set.pins)) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "TLS pins");
        goto out;
    }
    cmc_free(*pins);
    *pins = copy;
    plat_log(PLAT_LOG_WARN, "the hub's TLS key changed; the hub's signing key vouches for the"
                            " new one, which is now pinned (the replica is kept)");
out:
    if (rc != CMC_OK && rc != CMC_ERR_NOMEM) {
        char why[160];
        snprintf(why, sizeof why, "%s", cmc_errmsg());
        rc = cmc_fail(CMC_ERR_TLS, "the hub's TLS key is not the one pinned here, and the hub"
                                   " could not prove a new one (%s). This may not be your hub;"
                                   " if it is, see docs/OPERATIONS.md \"A device that missed a"
                                   " key rotation\"", why);
    }
    http_response_free(&resp);
    http_client_free(client);
    return rc;
}
