/*
 * hub_device.h - a simulated device for the hub's unit tests: it enrolls with a fresh Ed25519
 * key, pulls bundle pages straight from the hub core (no sockets), verifies every bundle with
 * the hub's key and applies its ops to an in-memory set of plans, the way the agent does.
 *
 * tst_device_new() adds and enrolls a device with the given scope and role; tst_device_free()
 * releases what it holds. tst_device_apply() verifies and decodes one bundle and, when
 * `commit` is set, applies it and moves the cursor (`commit` 0 models a device that received
 * a page but crashed before committing it). tst_device_sync() pulls pages until "more" is
 * clear, acknowledging each committed page's purges unless `no_ack` is set, and returns the
 * number of pages. Every helper fails the running test (cmocka assertion) on any error.
 * Archived into the test-support library, linked only into tests that call it.
 */
#ifndef CMC_TEST_SUPPORT_HUB_DEVICE_H
#define CMC_TEST_SUPPORT_HUB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "sync/bundle.h"
#include "sync/plan.h"
#include "sync/mp.h"
#include "sync/reqsig.h"
#include "tests/support/hub_fixture.h"

#define TST_MAX_HELD 4096


struct tst_device {
    char id[PLAN_ID_LEN + 1];
    struct cry_secret *sk;
    uint64_t cursor;
    struct plan *held; /* TST_MAX_HELD */
    size_t n_held;
    /* what the last pull brought */
    size_t puts, deltas, purges, wipes;
    size_t seals;  /* SEAL ops checked */
    int no_seals;  /* pulled without seals (hub_pull_edition): pages carry none */

    char last_reason[32];
    char purged[8][PLAN_ID_LEN + 1];
    /* the policy and flags of the last bundle, and acknowledgements */
    int64_t lease_days;
    uint16_t last_flags;
    int rollback_pages; /* pages of the last sync flagged ROLLBACK */
    int no_ack; /* models a device that never acknowledges its purges */
    char (*page_purged)[PLAN_ID_LEN + 1]; /* TST_MAX_HELD: purges of the last committed page */
    size_t n_page_purged;
};

/* Every simulated device has one registered clinician user, TST_USER, with one signing key
 * per test program: tst_user_key hands it out (and its public half into pk unless NULL),
 * tst_user_sign signs an edit with it (wire_push_digest). */
#define TST_USER "tst-clinician"
const struct cry_secret *tst_user_key(uint8_t pk[CRY_SIGN_PK_BYTES]);
void tst_user_sign(const char *idem, const char *plan_id, int64_t base, const uint8_t *change,
                   size_t change_len, uint8_t sig[CRY_SIG_BYTES]);

void tst_device_new(struct tst_hub *e, struct tst_device *d, const char *scope, const char *role);
void tst_device_free(struct tst_device *d);
/* The two usual devices, enrolled and synced once: `amb` an urgent-care device for the whole
 * TST_REGION, `nurse` a clinician's device for TST_TEAM. */
void tst_device_new_amb_and_nurse(struct tst_hub *e, struct tst_device *amb,
                                  struct tst_device *nurse);
/* tst_device_free() on each device given, up to a NULL. */
void tst_device_free_all(struct tst_device *d, ...);
/* The held copy of a plan, or NULL. */
struct plan *tst_device_held(struct tst_device *d, const char *id);
void tst_device_drop(struct tst_device *d, const char *id);
struct bundle_header tst_device_apply(struct tst_hub *e, struct tst_device *d, const uint8_t *buf,
                                      size_t len, int commit);
int tst_device_sync(struct tst_hub *e, struct tst_device *d, size_t budget);
/* A request through the hub's API handler, signed by the device unless hdrs->signature is
 * already set (a replay); the answer in *resp (release it with hub_response_free()). */
void tst_device_call(struct tst_hub *e, struct tst_device *d, const char *method, const char *path,
                     const uint8_t *body, size_t len, struct reqsig_headers *hdrs,
                     struct hub_response *resp);
/* A request to the hub's API handler carrying the signed headers hdrs (body may be NULL). */
struct hub_request tst_request(const char *method, const char *path,
                               const struct reqsig_headers *hdrs, const uint8_t *body, size_t len);
/* hub_auth_request() on a GET of `path` carrying the signed headers, with the caller's
 * pre-check (checked_pk NULL: none; see struct hub_signed_request); the device it names into
 * who. Returns hub_auth_request's result. */
int tst_auth_get(hub *h, const char *path, const struct reqsig_headers *hdrs,
                 const uint8_t *checked_pk, int checked_ok, char who[PLAN_ID_LEN + 1], int *replay);
/* A request signed afresh by the device through tst_device_call(); returns the answer's HTTP
 * status and hands the answer over in *resp, or releases it when resp is NULL. */
int tst_device_send(struct tst_hub *e, struct tst_device *d, const char *method, const char *path,
                    const uint8_t *body, size_t len, struct hub_response *resp);
/* Finishes the msgpack body in *w and POSTs it to `path` through tst_device_call(), signed
 * afresh; returns the answer's HTTP status. */
int tst_device_post(struct tst_hub *e, struct tst_device *d, const char *path, struct mp_writer *w);
/* The body of a push (docs/PROTOCOL.md): the change given as JSON, against base version
 * `base` of the plan, under an idempotency id; cmc_free() it. */
uint8_t *tst_push_body(const char *idem, const char *plan_id, int64_t base, const char *json,
                       size_t *len);
/* 1 when the answer's body contains s. */
int tst_body_has(const struct hub_response *r, const char *s);

/* The devices holding a plan, gathered by hub_plan_holders(..., tst_holders_cb, &list): the
 * first eight are kept, n counts them all. tst_holders_index() finds one, or returns -1. */
struct tst_holders {
    int n;
    char ids[8][PLAN_ID_LEN + 1];
    int purge_sent[8];
    int64_t version[8];
};
int tst_holders_cb(const struct hub_plan_holder *ph, void *ctx);
int tst_holders_index(const struct tst_holders *l, const char *device_id);

#endif
