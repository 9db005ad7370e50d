/*
 * tls.h - rotating the hub's TLS key without re-enrolling devices (docs/THREAT-MODEL.md,
 * "TLS key rotation"; docs/OPERATIONS.md, "Certificate renewal").
 *
 * Devices pin a set of TLS public keys. The hub publishes that set at GET /v1/tls-pins,
 * signed with its Ed25519 signing key (which every device pinned at enrollment): the key it
 * serves with now, and the next key once `cmc-hub tls rotate --next-key FILE` has announced
 * it. Devices fetch the set after every sync; a device that meets a key it has not pinned
 * fetches the set over a connection checked against its CA only, and pins the new key only
 * if the hub's signing key vouches for it.
 *
 * The document (JSON): {"pins": "sha256//A[;sha256//B]", "at": UNIX_SECONDS, "sig": HEX},
 * sig = Ed25519 over "cmc-tls-pins-v1\n" + pins + "\n" + decimal(at). Devices keep the set
 * with the newest `at` they have seen.
 *
 * State in the store's meta table: tls_current_pin (set by the server at start),
 * tls_next_pin and tls_next_at (the announcement; cleared when the server starts with the
 * announced key, which completes the rotation), and tls_seen:DEVICE_ID (when that device
 * last fetched the set with a signed request): a device is "behind" until it has fetched
 * the set in a later second than the announcement.
 * Errors: cmc_err with a one-line detail. Thread-safety as for the hub handle.
 */
#ifndef CMC_HUB_TLS_H
#define CMC_HUB_TLS_H

#include "hub/hub.h"

#include <stddef.h>
#include <stdint.h>

#define HUB_TLS_PIN_MAX 64
#define HUB_TLS_PINS_DOMAIN "cmc-tls-pins-v1\n"

/* The pin of a PEM private key or certificate (either is accepted). */
int hub_tls_pin_of_pem(const char *pem, size_t len, char out[HUB_TLS_PIN_MAX]);
/* Announces the next key's pin. */
int hub_tls_announce(hub *h, const char *next_pin);
/* The server starts serving with `current_pin`: records it, and completes a rotation whose
 * announced key it is (*completed set to 1). */
int hub_tls_started(hub *h, const char *current_pin, int *completed);

struct hub_tls_state {
    char current_pin[HUB_TLS_PIN_MAX]; /* "" until a server has started */
    char next_pin[HUB_TLS_PIN_MAX];    /* "" when nothing is announced */
    int64_t next_at;                   /* when it was announced */
    int64_t active;                    /* active devices */
    int64_t behind;                    /* of which not seen since the announcement */
};
/* The rotation state; cb (may be NULL) is called with each active device not seen since the
 * announcement (name, id). */
int hub_tls_state(hub *h, struct hub_tls_state *out,
                  int (*cb)(const char *name, const char *id, void *), void *ctx);
/* An authenticated device fetched the pin set: it holds every key the set names. */
int hub_tls_note_fetch(hub *h, const char *device_id);
/* The signed pin set document (cmc_malloc'd; the caller frees). */
int hub_tls_pins_doc(hub *h, char **out, size_t *len);

#endif
