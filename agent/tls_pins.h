/*
 * tls_pins.h - the device's side of hub TLS key rotation (hub/tls.h, docs/THREAT-MODEL.md
 * "TLS key rotation").
 *
 * The replica keeps the set of hub TLS keys it pins (sync state "tls_pin", the form
 * libcurl's CURLOPT_PINNEDPUBLICKEY takes: "sha256//A;sha256//B") and the `at` of the
 * signed set it came from ("tls_pins_at"). A set is taken only when its Ed25519 signature
 * verifies under the hub key pinned at enrollment and it is newer than the one kept.
 *
 * tls_pins_refresh runs after a sync, on the sync's own (pinned) connection: it picks up a
 * key the hub has announced. tls_pins_recover is the way back for a device that missed the
 * announcement: it connects checking the hub's certificate against the enrolled CA only,
 * fetches the signed set, and pins it only if the key the hub presented is in it. Either
 * way the replica is kept.
 *
 * Errors: CMC_ERR_TLS with a message saying what to do when the hub could not prove a new
 * key; network errors as sync/http.h. A hub without the endpoint (404) is not an error for
 * tls_pins_refresh.
 */
#ifndef CMC_AGENT_TLS_PINS_H
#define CMC_AGENT_TLS_PINS_H

#include "agent/store.h"
#include "crypto/cry.h"
#include "sync/http.h"

int tls_pins_refresh(store *s, http_client *client, const uint8_t hub_pk[CRY_SIGN_PK_BYTES]);
/* On success *pins (cmc_malloc'd, replacing and freeing the old value) is the new set. */
int tls_pins_recover(store *s, const char *hub_url, const char *ca_file,
                     const uint8_t hub_pk[CRY_SIGN_PK_BYTES], char **pins);

#endif
