/*
 * engine_enroll.c - enrollment: a new device key registered with the hub's one-time code, and
 * what the hub answers pinned in the replica's sync state (engine.h).
 */
#include "agent/audit.h"
#include "agent/engine_int.h"

#include "agent/lease.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/wire.h"

#include <stdio.h>
#include <string.h>

/* 1 if the replica holds an enrollment. */
static int engine_enrolled(store *s)
{
    char *v = NULL;
    int rc = store_state_get(s, ST_DEVICE_ID, &v);
    cmc_free(v);
    return rc == CMC_OK;
}

static int copy_ca(const struct engine_config *cfg, const char *ca_file, char *dst, size_t cap)
{
    uint8_t *pem = NULL;
    size_t len = 0;
    int rc = plat_read_file(ca_file, 1u << 20, &pem, &len);
    if (rc != CMC_OK)
        return cmc_fail(rc == CMC_ERR_NOT_FOUND ? CMC_ERR_USAGE : rc, "cannot read the CA file %s", ca_file);
    if ((rc = plat_path_join(dst, cap, cfg->dir, "hub-ca.pem")) == CMC_OK)
        rc = plat_write_atomic(dst, pem, len);
    cmc_free(pem);
    return rc;
}

int engine_enroll(store *s, const struct engine_config *cfg, const char *hub_url, const char *code,
                  const char *ca_file, const char *device_name)
{
    if (engine_enrolled(s))
        return cmc_fail(CMC_ERR_EXISTS, "this device is already enrolled; a wiped or new replica is needed to enroll again");
    char ca_copy[4200] = "";
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk = NULL;
    http_client *client = NULL;
    struct http_response resp;
    http_response_init(&resp);
    uint8_t *body = NULL;
    size_t body_len = 0;
    char sk_hex[CRY_SIGN_SK_BYTES * 2 + 1];
    struct wire_enroll_ans ans;
    int rc;
    if (ca_file != NULL && (rc = copy_ca(cfg, ca_file, ca_copy, sizeof ca_copy)) != CMC_OK)
        return rc;
    if ((rc = cry_sign_keypair(pk, &sk)) != CMC_OK)
        goto out;
    struct http_options opt = {
        .base_url = hub_url,
        .ca_file = ca_copy[0] ? ca_copy : NULL,
        .capture_pin = 1,
        .max_attempts = cfg->max_attempts,
    };
    if ((rc = http_client_new(&opt, &client)) != CMC_OK)
        goto out;
    struct wire_enroll_req req = { .code = code, .name = device_name };
    memcpy(req.device_pk, pk, sizeof pk);
    if ((rc = wire_enroll_req_encode(&req, &body, &body_len)) != CMC_OK)
        goto out;
    rc = http_request(client, "POST", "/v1/enroll", NULL, body, body_len, HTTP_NO_SIGN | HTTP_NO_RETRY, &resp);
    if (rc != CMC_OK) {
        if (resp.hub_message[0] != '\0')
            rc = cmc_fail(rc, "the hub refused enrollment: %s", resp.hub_message);
        goto out;
    }
    if ((rc = wire_enroll_ans_decode(resp.body, resp.body_len, &ans)) != CMC_OK)
        goto out;

    char pin[HTTP_PIN_MAX] = "";
    if (strncmp(hub_url, "https://", 8) == 0 && (rc = http_client_peer_pin(client, pin)) != CMC_OK)
        goto out;
    char pk_hex[CRY_SIGN_PK_BYTES * 2 + 1];
    cry_hex(pk_hex, ans.hub_pk, sizeof ans.hub_pk);
    cry_hex(sk_hex, sk->buf, CRY_SIGN_SK_BYTES);
    if ((rc = store_batch_begin(s)) != CMC_OK)
        goto out;
    if ((rc = store_state_set(s, ST_HUB_URL, hub_url)) != CMC_OK || (rc = store_state_set(s, ST_DEVICE_ID, ans.device_id)) != CMC_OK ||
        (rc = store_state_set(s, ST_DEVICE_SK, sk_hex)) != CMC_OK || (rc = store_state_set(s, ST_HUB_PK, pk_hex)) != CMC_OK ||
        (rc = store_state_set(s, ST_TLS_PIN, pin)) != CMC_OK || (rc = store_state_set(s, ST_CA_FILE, ca_copy)) != CMC_OK ||
        (rc = store_state_set(s, ST_SCOPE, ans.scope)) != CMC_OK || (rc = store_state_set(s, ST_DEVICE_ROLE, ans.role)) != CMC_OK ||
        (rc = store_state_set_int(s, ST_LEASE_DAYS, ans.lease_days)) != CMC_OK ||
        (rc = store_state_set_int(s, ST_HUB_TIME, ans.hub_time)) != CMC_OK || (rc = store_state_set_int(s, ST_CURSOR, 0)) != CMC_OK ||
        (rc = lease_note_sync(s, ans.hub_time > 0 ? ans.hub_time : plat_wall_now())) != CMC_OK ||
        (ans.has_audit_seed && (rc = audit_seal_begin(s, ans.audit_seed)) != CMC_OK)) {
        store_batch_rollback(s);
        goto out;
    }
    rc = store_batch_commit(s);
out:
    cry_memzero(&ans, sizeof ans);
    cry_memzero(sk_hex, sizeof sk_hex);
    cmc_free(body);
    http_response_free(&resp);
    http_client_free(client);
    cry_secret_free(sk);
    return rc;
}

