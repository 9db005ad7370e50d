/*
 * reqsig.h - request signatures: how a device proves a request is its own and fresh.
 *
 * Every device request except enrollment carries four headers (docs/PROTOCOL.md):
 *   X-CMC-Device:    the device id, a canonical lower-case UUID
 *   X-CMC-Time:      the device's wall time, Unix seconds in decimal (no sign, no leading 0)
 *   X-CMC-Nonce:     32 lower-case hex digits (16 random bytes), never reused
 *   X-CMC-Signature: 128 lower-case hex digits, the Ed25519 signature of the canonical string
 *     "CMC-REQ-1\n" METHOD "\n" PATH-WITH-QUERY "\n" TIME "\n" NONCE "\n" hex(BLAKE2b-256(body))
 * where PATH-WITH-QUERY is the request target exactly as sent on the request line, and the
 * hash of an empty body is the hash of zero bytes.
 *
 * Device side: reqsig_sign() fills the four header values (time from plat_wall_now(), a
 * fresh random nonce). Hub side: reqsig_parse() checks the header syntax and hands back the
 * device id, time and nonce; the caller looks up the device's key and then calls
 * reqsig_verify(); reqsig_check_time() applies the +-REQSIG_MAX_SKEW window; keeping seen
 * nonces for REQSIG_NONCE_TTL seconds (replay refusal) is the caller's.
 *
 * Errors: CMC_ERR_UNAUTHORIZED for anything wrong with a received signature (the hub answers
 * 401), with a detail naming the header; CMC_ERR_CLOCK from reqsig_check_time; CMC_ERR_INVALID
 * for a caller's malformed method or path when signing; CMC_ERR_NOMEM. The secret key is
 * never copied out of secure memory. Thread-safe.
 */
#ifndef CMC_REQSIG_H
#define CMC_REQSIG_H

#include "crypto/cry.h"

#include <stddef.h>
#include <stdint.h>

#define REQSIG_VERSION "CMC-REQ-1"
#define REQSIG_DEVICE_ID_LEN 36   /* canonical UUID text */
#define REQSIG_NONCE_BYTES 16
#define REQSIG_NONCE_HEX_LEN 32
#define REQSIG_SIG_HEX_LEN 128
#define REQSIG_TIME_MAX_LEN 19    /* decimal digits of a non-negative int64 */
#define REQSIG_MAX_SKEW 300       /* seconds either side of the hub's clock */
#define REQSIG_NONCE_TTL 600      /* seconds a hub remembers a nonce */
#define REQSIG_MAX_METHOD 16
#define REQSIG_MAX_PATH 4096

#define REQSIG_HDR_DEVICE "X-CMC-Device"
#define REQSIG_HDR_TIME "X-CMC-Time"
#define REQSIG_HDR_NONCE "X-CMC-Nonce"
#define REQSIG_HDR_SIGNATURE "X-CMC-Signature"

/* The four header values a device sends, NUL-terminated. */
struct reqsig_headers {
    char device[REQSIG_DEVICE_ID_LEN + 1];
    char time[REQSIG_TIME_MAX_LEN + 1];
    char nonce[REQSIG_NONCE_HEX_LEN + 1];
    char signature[REQSIG_SIG_HEX_LEN + 1];
};

/* What the hub learns from the headers before it knows the device's key. */
struct reqsig_request {
    char device_id[REQSIG_DEVICE_ID_LEN + 1];
    int64_t time;
    char nonce[REQSIG_NONCE_HEX_LEN + 1];
    uint8_t signature[CRY_SIG_BYTES];
};

/* The canonical string for a request (NUL-terminated; *len excludes the NUL). Caller frees
 * *out with cmc_free. Method must be an upper-case token, path start with '/' and hold no
 * control characters or spaces. */
int reqsig_canonical(const char *method, const char *path_query, int64_t time,
                     const char *nonce_hex, const uint8_t *body, size_t body_len, char **out,
                     size_t *len);

/* Signs a request now, with a fresh nonce. */
int reqsig_sign(const struct cry_secret *device_sk, const char *device_id, const char *method,
                const char *path_query, const uint8_t *body, size_t body_len,
                struct reqsig_headers *out);
/* The same with the time and nonce given (tests, known answers). */
int reqsig_sign_at(const struct cry_secret *device_sk, const char *device_id, const char *method,
                   const char *path_query, const uint8_t *body, size_t body_len, int64_t time,
                   const uint8_t nonce[REQSIG_NONCE_BYTES], struct reqsig_headers *out);

/* Parses the four header values as received (a NULL value is a missing header). */
CRY_MUST_CHECK int reqsig_parse(const char *device, const char *time, const char *nonce,
                                const char *signature, struct reqsig_request *out);

/* CMC_OK if req's signature is the device key's over this method, path and body. */
CRY_MUST_CHECK int reqsig_verify(const struct reqsig_request *req,
                                 const uint8_t device_pk[CRY_SIGN_PK_BYTES], const char *method,
                                 const char *path_query, const uint8_t *body, size_t body_len);

/* CMC_OK if |req->time - hub_now| <= REQSIG_MAX_SKEW; otherwise CMC_ERR_CLOCK with the detail
 * "the device clock is wrong by N seconds" and the signed difference (device minus hub) in
 * *skew_out (may be NULL). */
CRY_MUST_CHECK int reqsig_check_time(const struct reqsig_request *req, int64_t hub_now,
                                     int64_t *skew_out);

#endif
