/*
 * http.h - the device's HTTP client for talking to the hub (libcurl).
 *
 * One client holds one libcurl easy handle for its whole life, so consecutive requests reuse
 * one kept-alive connection (a sync is a handful of requests). A client is not thread-safe;
 * use one per thread. libcurl's global initialisation happens once, on first use.
 *
 * Transport rules:
 *   - https:// always; plain http:// only when the host is a loopback address (127.0.0.0/8,
 *     ::1, localhost), refused at http_client_new before anything connects. URLs with user
 *     information are refused. Redirects are never followed.
 *   - TLS: the server certificate is verified against opt->ca_file (the --ca FILE given at
 *     enrollment; NULL means the system store) and the host name is checked. With
 *     opt->pinned_pubkey ("sha256//<base64>") the server's public key must also match the
 *     pin. At enrollment set opt->capture_pin: after a request on a new connection,
 *     http_client_peer_pin() gives the pin of the hub's certificate, to be stored with the
 *     enrollment and passed as pinned_pubkey from then on.
 *   - Connect timeout and a low-speed abort (less than low_speed_limit bytes/s for
 *     low_speed_time seconds) instead of one overall deadline, so a slow but moving pull of a
 *     large snapshot completes. Responses larger than max_response are aborted as they
 *     arrive (CMC_ERR_TOO_LARGE), as is a Content-Length over it.
 *   - Retries: connection failures, cut-short responses and 429/500/502/503/504 are retried
 *     up to max_attempts with capped exponential backoff and full jitter (a random delay in
 *     [0, min(backoff_max, backoff_base * 2^attempt)]); a Retry-After (seconds or HTTP date)
 *     on 429/503 is honoured instead, up to retry_after_max seconds. Sleeps use
 *     plat_sleep_ms (the fake clock in tests). Each attempt is signed afresh (new time and
 *     nonce), so a retry is never a replay.
 *   - Signing: after http_client_set_device, every request without HTTP_NO_SIGN carries the
 *     four X-CMC-* headers of sync/reqsig.h over the path as sent (including any path prefix
 *     of base_url) and the body.
 *
 * Results: CMC_OK means a 2xx status; the body is in resp. Otherwise:
 *   401                    CMC_ERR_UNAUTHORIZED (not retried, except a "replay" 401: the
 *                          request was re-sent by libcurl on a dying connection, so it is
 *                          sent again, signed afresh); a 401 whose hub error is "clock" is
 *                          CMC_ERR_CLOCK. resp->hub_error / hub_message keep what
 *                          the hub said ({"error": ..., "message": ...}), also in the detail.
 *   400 INVALID, 403 DENIED, 404 NOT_FOUND, 409 CONFLICT, 413 TOO_LARGE, other statuses
 *                          (after retries for the retryable ones) CMC_ERR_REFUSED.
 *   certificate not yet valid or expired  CMC_ERR_CLOCK "the device clock looks wrong (it
 *                          says <date>); set the date and time and sync again"
 *   other TLS failures (including a pin mismatch)  CMC_ERR_TLS
 *   connection failures, timeouts, cut-short bodies  CMC_ERR_NET with curl's text
 *   response over the cap  CMC_ERR_TOO_LARGE;  cancelled by the progress callback  CMC_ERR_NET
 * resp is filled (status, body, hub_error, ...) whenever a response arrived, success or not;
 * release it with http_response_free. Details name the URL path, never a body.
 */
#ifndef CMC_HTTP_H
#define CMC_HTTP_H

#include "crypto/cry.h"

#include <stddef.h>
#include <stdint.h>

#define HTTP_PIN_MAX 64                     /* "sha256//" + 44 base64 chars + NUL fits */
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_LOW_SPEED_LIMIT 64     /* bytes per second */
#define HTTP_DEFAULT_LOW_SPEED_TIME 30      /* seconds */
#define HTTP_DEFAULT_MAX_RESPONSE (9u * 1024 * 1024) /* a whole bundle fits */
#define HTTP_DEFAULT_MAX_ATTEMPTS 4
#define HTTP_DEFAULT_BACKOFF_BASE_MS 500
#define HTTP_DEFAULT_BACKOFF_MAX_MS 30000
#define HTTP_DEFAULT_RETRY_AFTER_MAX_S 300

/* Zero fields take the defaults above. Strings are copied. */
struct http_options {
    const char *base_url;      /* "https://hub.example.org:8443" (optionally with a path) */
    const char *ca_file;       /* PEM file of trusted CA certificates, or NULL */
    const char *pinned_pubkey; /* "sha256//<base64>" (several joined with ';'), or NULL */
    int capture_pin;           /* record the server's pin for http_client_peer_pin */
    long connect_timeout_ms;
    long low_speed_limit;
    long low_speed_time;
    size_t max_response;
    unsigned max_attempts;     /* 1 = no retries */
    uint32_t backoff_base_ms;
    uint32_t backoff_max_ms;
    uint32_t retry_after_max_s;
    const char *user_agent;    /* NULL: "cmc-agent" */
};

struct http_response {
    long status;               /* 0 when nothing was received */
    uint8_t *body;             /* cmc_malloc'd, NUL-terminated for convenience */
    size_t body_len;
    char content_type[128];
    int64_t retry_after;       /* seconds, -1 when absent */
    char hub_error[64];        /* from a JSON error body, "" if none */
    char hub_message[256];     /* one line, control characters replaced */
};

/* Counters since the client was made (benchmarks, the sync summary). */
struct http_stats {
    uint64_t requests;         /* attempts, retries included */
    uint64_t connections;      /* new connections made (CURLINFO_NUM_CONNECTS summed) */
    uint64_t bytes_sent;       /* request lines, headers and bodies */
    uint64_t bytes_received;   /* response headers and bodies */
    uint64_t retries;
};

/* Request flags. */
#define HTTP_NO_SIGN 0x1u      /* enrollment: the device has no key yet */
#define HTTP_NO_RETRY 0x2u     /* a request that must not be sent twice */

/* Progress of a transfer: return nonzero to abort it (CMC_ERR_NET "cancelled"). Totals
 * are 0 while unknown. */
typedef int (*http_progress_fn)(void *ctx, uint64_t received, uint64_t expected);

typedef struct http_client http_client;

int http_client_new(const struct http_options *opt, http_client **out);
void http_client_free(http_client *c);

/* Signs later requests as this device. The key is copied into secure memory. */
int http_client_set_device(http_client *c, const char *device_id,
                           const struct cry_secret *device_sk);
void http_client_set_progress(http_client *c, http_progress_fn fn, void *ctx);
void http_client_stats(const http_client *c, struct http_stats *out);

/* Sends `method` to base_url + path_query (which starts with '/'). body may be NULL for
 * none; content_type may be NULL (then "application/msgpack" when there is a body). */
int http_request(http_client *c, const char *method, const char *path_query,
                 const char *content_type, const uint8_t *body, size_t body_len,
                 unsigned flags, struct http_response *resp);
void http_response_init(struct http_response *r);
void http_response_free(struct http_response *r); /* frees the body, re-inits; NULL no-op */

/* The pin of the certificate the server presented on the last new TLS connection (needs
 * opt->capture_pin). CMC_ERR_STATE when none was captured. */
int http_client_peer_pin(const http_client *c, char out[HTTP_PIN_MAX]);

/* The pin ("sha256//" + base64 of the SHA-256 of the SubjectPublicKeyInfo) of the first
 * certificate in a PEM text. CMC_ERR_INVALID if it holds no parsable certificate. */
int http_pin_from_pem(const char *pem, size_t len, char out[HTTP_PIN_MAX]);
/* The pin of a DER SubjectPublicKeyInfo (`len` bytes): "sha256//" + base64 of its SHA-256.
 * CMC_ERR_CRYPTO if the hash fails. */
int http_pin_of_spki(const uint8_t *der, size_t len, char out[HTTP_PIN_MAX]);

#endif
