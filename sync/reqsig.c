/*
 * reqsig.c - request signatures (contract in reqsig.h).
 *
 * The verifier rebuilds the canonical string from the parsed values rather than from the
 * raw header text; the parser only accepts the one canonical spelling of each value, so the
 * two are the same bytes and there is no second way to write a signed request.
 */
#include "sync/reqsig.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

static int uuid_valid(const char *s)
{
    if (strlen(s) != REQSIG_DEVICE_ID_LEN)
        return 0;
    for (size_t i = 0; i < REQSIG_DEVICE_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_lower_hex(s + i, 1)) {
            return 0;
        }
    }
    return 1;
}

static int method_valid(const char *m)
{
    size_t n = m ? strlen(m) : 0;
    return n > 0 && n <= REQSIG_MAX_METHOD && strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

/* The canonical string separates fields with '\n', so a path with control characters or
 * spaces could make two different requests sign the same bytes. */
static int path_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > REQSIG_MAX_PATH || p[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

int reqsig_canonical(const char *method, const char *path_query, int64_t time,
                     const char *nonce_hex, const uint8_t *body, size_t body_len, char **out,
                     size_t *len)
{
    uint8_t hash[CRY_HASH_BYTES];
    char hash_hex[2 * CRY_HASH_BYTES + 1];

    *out = NULL;
    *len = 0;
    if (!method_valid(method))
        return cmc_fail(CMC_ERR_INVALID, "request signature: method is not an upper-case token");
    if (!path_valid(path_query))
        return cmc_fail(CMC_ERR_INVALID,
                        "request signature: path must start with '/' and have no spaces or "
                        "control characters");
    if (time < 0)
        return cmc_fail(CMC_ERR_INVALID, "request signature: negative time");
    if (nonce_hex == NULL || strlen(nonce_hex) != REQSIG_NONCE_HEX_LEN ||
        !is_lower_hex(nonce_hex, REQSIG_NONCE_HEX_LEN))
        return cmc_fail(CMC_ERR_INVALID, "request signature: nonce must be 32 lower-case hex");
    cry_hash(hash, body_len ? body : (const uint8_t *)"", body_len);
    cry_hex(hash_hex, hash, sizeof hash);

    size_t cap = strlen(REQSIG_VERSION) + strlen(method) + strlen(path_query) +
                 REQSIG_TIME_MAX_LEN + REQSIG_NONCE_HEX_LEN + sizeof hash_hex + 8;
    char *s = cmc_malloc(cap);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "request signature: out of memory");
    int n = snprintf(s, cap, "%s\n%s\n%s\n%" PRId64 "\n%s\n%s", REQSIG_VERSION, method,
                     path_query, time, nonce_hex, hash_hex);
    if (n < 0 || (size_t)n >= cap) {
        cmc_free(s);
        return cmc_fail(CMC_ERR_INVALID, "request signature: canonical string does not fit");
    }
    *out = s;
    *len = (size_t)n;
    return CMC_OK;
}

int reqsig_sign_at(const struct cry_secret *device_sk, const char *device_id, const char *method,
                   const char *path_query, const uint8_t *body, size_t body_len, int64_t time,
                   const uint8_t nonce[REQSIG_NONCE_BYTES], struct reqsig_headers *out)
{
    int rc;
    char *canon = NULL;
    size_t canon_len = 0;
    uint8_t sig[CRY_SIG_BYTES];

    memset(out, 0, sizeof *out);
    if (device_sk == NULL)
        return cmc_fail(CMC_ERR_INVALID, "request signature: no device key");
    if (device_id == NULL || !uuid_valid(device_id))
        return cmc_fail(CMC_ERR_INVALID, "request signature: device id is not a canonical UUID");
    cry_hex(out->nonce, nonce, REQSIG_NONCE_BYTES);
    if ((rc = reqsig_canonical(method, path_query, time, out->nonce, body, body_len, &canon,
                               &canon_len)) != CMC_OK)
        goto out;
    if ((rc = cry_sign(device_sk, canon, canon_len, sig)) != CMC_OK)
        goto out;
    memcpy(out->device, device_id, REQSIG_DEVICE_ID_LEN + 1);
    snprintf(out->time, sizeof out->time, "%" PRId64, time);
    cry_hex(out->signature, sig, sizeof sig);
out:
    if (rc != CMC_OK)
        memset(out, 0, sizeof *out);
    cmc_free(canon);
    return rc;
}

int reqsig_sign(const struct cry_secret *device_sk, const char *device_id, const char *method,
                const char *path_query, const uint8_t *body, size_t body_len,
                struct reqsig_headers *out)
{
    uint8_t nonce[REQSIG_NONCE_BYTES];
    cry_random(nonce, sizeof nonce);
    return reqsig_sign_at(device_sk, device_id, method, path_query, body, body_len,
                          plat_wall_now(), nonce, out);
}

/* Canonical non-negative decimal: digits only, no leading zero unless it is "0". */
static int parse_time(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t v = 0;
    if (n == 0 || n > REQSIG_TIME_MAX_LEN || (n > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int reqsig_parse(const char *device, const char *time, const char *nonce, const char *signature,
                 struct reqsig_request *out)
{
    memset(out, 0, sizeof *out);
    if (device == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: missing %s", REQSIG_HDR_DEVICE);
    if (time == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: missing %s", REQSIG_HDR_TIME);
    if (nonce == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: missing %s", REQSIG_HDR_NONCE);
    if (signature == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: missing %s",
                        REQSIG_HDR_SIGNATURE);
    if (!uuid_valid(device))
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: %s is not a lower-case UUID",
                        REQSIG_HDR_DEVICE);
    if (!parse_time(time, &out->time))
        return cmc_fail(CMC_ERR_UNAUTHORIZED,
                        "request signature: %s is not Unix seconds in decimal", REQSIG_HDR_TIME);
    if (strlen(nonce) != REQSIG_NONCE_HEX_LEN || !is_lower_hex(nonce, REQSIG_NONCE_HEX_LEN))
        return cmc_fail(CMC_ERR_UNAUTHORIZED,
                        "request signature: %s must be 32 lower-case hex digits",
                        REQSIG_HDR_NONCE);
    if (strlen(signature) != REQSIG_SIG_HEX_LEN ||
        !is_lower_hex(signature, REQSIG_SIG_HEX_LEN) ||
        cry_unhex(out->signature, CRY_SIG_BYTES, signature) != CMC_OK) {
        memset(out, 0, sizeof *out);
        return cmc_fail(CMC_ERR_UNAUTHORIZED,
                        "request signature: %s must be 128 lower-case hex digits",
                        REQSIG_HDR_SIGNATURE);
    }
    memcpy(out->device_id, device, REQSIG_DEVICE_ID_LEN + 1);
    memcpy(out->nonce, nonce, REQSIG_NONCE_HEX_LEN + 1);
    return CMC_OK;
}

int reqsig_verify(const struct reqsig_request *req, const uint8_t device_pk[CRY_SIGN_PK_BYTES],
                  const char *method, const char *path_query, const uint8_t *body,
                  size_t body_len)
{
    int rc;
    char *canon = NULL;
    size_t canon_len = 0;

    if ((rc = reqsig_canonical(method, path_query, req->time, req->nonce, body, body_len, &canon,
                               &canon_len)) != CMC_OK) {
        if (rc != CMC_ERR_NOMEM)
            rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: malformed request line");
        return rc;
    }
    /* Ed25519 verification in libsodium runs in time independent of where a forged
     * signature differs. */
    if (cry_verify(device_pk, canon, canon_len, req->signature) != CMC_OK)
        rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature: %s does not verify",
                      REQSIG_HDR_SIGNATURE);
    cmc_free(canon);
    return rc;
}

int reqsig_check_time(const struct reqsig_request *req, int64_t hub_now, int64_t *skew_out)
{
    /* req->time was parsed into [0, INT64_MAX], so the difference can only overflow for a
     * negative hub_now; clamp it there. The reported size is clamped so negating is safe. */
    int64_t skew;
    if (hub_now < 0 && req->time > INT64_MAX + hub_now)
        skew = INT64_MAX;
    else
        skew = req->time - hub_now;
    if (skew == INT64_MIN)
        skew = -INT64_MAX;
    if (skew_out != NULL)
        *skew_out = skew;
    if (skew > REQSIG_MAX_SKEW || skew < -REQSIG_MAX_SKEW)
        return cmc_fail(CMC_ERR_CLOCK, "the device clock is wrong by %" PRId64 " seconds",
                        skew < 0 ? -skew : skew);
    return CMC_OK;
}
