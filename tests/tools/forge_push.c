/*
 * forge_push - test tool: a hand-made POST /v1/push, as a user of a device who has opened
 * the replica with their own PIN would send it: the device's signing key is read from the
 * replica's sync_state, the edit is made by hand, and the request is signed as the device.
 *
 *   forge_push DIR PLAN_ID BASE_VERSION JSON_CHANGE MODE
 *
 * The user is CMC_USER (or the only slot), the PIN CMC_PIN. MODE says whom the edit names:
 *   none      nobody (as an agent from before users signed)
 *   self      the user whose PIN opened the replica, signed with their own key
 *   as:NAME   another user of the device, signed with the opener's own key
 * Prints the hub's HTTP status and message; exit 0 when the hub accepted the edit, 1 when
 * it refused it, 2 on a local error.
 */
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/change.h"
#include "sync/http.h"
#include "sync/wire.h"
#include "tests/tools/tool_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *state(sqlite3 *db, const char *key)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM sync_state WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        out = cmc_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static int send_push(sqlite3 *db, const struct wire_push_req *req)
{
    char *url = state(db, "hub_url"), *id = state(db, "device_id"), *skhex = state(db, "device_sk");
    char *ca = state(db, "ca_file"), *pin = state(db, "tls_pin");
    struct cry_secret *sk = NULL;
    http_client *c = NULL;
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = url && id && skhex ? cry_secret_new(CRY_SIGN_SK_BYTES, &sk) : cmc_fail(CMC_ERR_STATE, "not enrolled");
    if (rc == CMC_OK)
        rc = cry_unhex(sk->buf, CRY_SIGN_SK_BYTES, skhex);
    struct http_options opt = { .base_url = url, .ca_file = ca, .pinned_pubkey = pin && pin[0] ? pin : NULL,
                                .max_attempts = 1 };
    if (rc == CMC_OK)
        rc = http_client_new(&opt, &c);
    if (rc == CMC_OK)
        rc = http_client_set_device(c, id, sk);
    if (rc == CMC_OK)
        rc = wire_push_req_encode(req, &body, &len);
    int out = 2;
    if (rc == CMC_OK) {
        rc = http_request(c, "POST", "/v1/push", NULL, body, len, 0, &resp);
        printf("%ld %s\n", resp.status, resp.hub_message);
        out = resp.status == 200 ? 0 : resp.status > 0 ? 1 : 2;
    } else {
        fprintf(stderr, "forge_push: %s\n", cmc_errmsg());
    }
    http_response_free(&resp);
    http_client_free(c);
    cry_secret_free(sk);
    cmc_free(body);
    cmc_free(url);
    cmc_free(id);
    cmc_free(skhex);
    cmc_free(ca);
    cmc_free(pin);
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: forge_push DIR PLAN_ID BASE_VERSION JSON_CHANGE none|self|as:NAME\n");
        return 2;
    }
    struct tool_slots t;
    struct plan_change ch;
    plan_change_init(&ch);
    uint8_t *packed = NULL;
    size_t plen = 0;
    int rc = tool_open_replica(argv[1], &t);
    if (rc == CMC_OK)
        rc = plan_change_from_json(argv[4], strlen(argv[4]), &ch);
    if (rc == CMC_OK)
        rc = plan_change_pack(&ch, &packed, &plen);
    int out = 2;
    if (rc == CMC_OK) {
        struct wire_push_req req = { .base_version = atoll(argv[3]), .change = packed, .change_len = plen };
        snprintf(req.plan_id, sizeof req.plan_id, "%s", argv[2]);
        cry_random(req.user_sig, 8);
        cry_hex(req.idempotency_id, req.user_sig, 8); /* a fresh id */
        if (strcmp(argv[5], "none") != 0) {
            uint8_t digest[CRY_HASH_BYTES];
            req.has_user = 1;
            snprintf(req.user, sizeof req.user, "%s", strncmp(argv[5], "as:", 3) == 0 ? argv[5] + 3 : t.user);
            wire_push_digest(req.plan_id, req.base_version, req.idempotency_id, packed, plen, digest);
            rc = cry_sign(t.u.user_sk, digest, sizeof digest, req.user_sig);
        }
        if (rc == CMC_OK)
            out = send_push(t.db, &req);
    }
    if (rc != CMC_OK)
        fprintf(stderr, "forge_push: %s\n", cmc_errmsg());
    plan_change_free(&ch);
    cmc_free(packed);
    tool_slots_free(&t);
    return out;
}
