/*
 * http.c - the device's HTTP client on libcurl (contract in http.h).
 *
 * libcurl's own result codes are translated here, at the boundary, into cmc_err codes with
 * curl's text kept in the detail. Certificates are parsed with GnuTLS (already linked for
 * the hub) only to compute a public-key pin; the TLS connection itself is libcurl's.
 */
#include "sync/http.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/trace.h"
#include "sync/reqsig.h"

#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* OpenSSL's verify results (x509_vfy.h) as reported by CURLINFO_SSL_VERIFYRESULT; named
 * here so this file needs no OpenSSL header. */
#define X509_CERT_NOT_YET_VALID 9
#define X509_CERT_HAS_EXPIRED 10

struct rx_buf {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t max;
    int over_cap;
    int nomem;
};

struct http_client {
    CURL *curl;
    char *base_url;    /* without a trailing '/' */
    char *path_prefix; /* path part of base_url without a trailing '/', often "" */
    char *ca_file;
    char *pinned;
    char *user_agent;
    int capture_pin;
    long connect_timeout_ms;
    long low_speed_limit;
    long low_speed_time;
    size_t max_response;
    unsigned max_attempts;
    uint32_t backoff_base_ms;
    uint32_t backoff_max_ms;
    uint32_t retry_after_max_s;
    char device_id[REQSIG_DEVICE_ID_LEN + 1];
    struct cry_secret *device_sk;
    http_progress_fn progress;
    void *progress_ctx;
    struct http_stats stats;
    char peer_pin[HTTP_PIN_MAX];
    char errbuf[CURL_ERROR_SIZE];
    struct rx_buf rx;
};

/* ---- libcurl global state -------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- URL checks ------------------------------------------------------------------------ */

static int ipv4_loopback(const char *h)
{
    unsigned parts[4];
    int n = 0;
    const char *p = h;
    while (n < 4) {
        unsigned v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(*p - '0');
            p++;
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return 0;
        parts[n++] = v;
        if (n < 4) {
            if (*p != '.')
                return 0;
            p++;
        }
    }
    return *p == '\0' && parts[0] == 127;
}

static int host_is_loopback(const char *host)
{
    return strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
           strcmp(host, "::1") == 0 || ipv4_loopback(host);
}

/* Checks the hub URL and splits off its path prefix. */
static int parse_base_url(http_client *c, const char *base)
{
    int rc = CMC_OK;
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *user = NULL, *path = NULL, *query = NULL;

    if (base == NULL || base[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "hub URL: missing");
    u = curl_url();
    if (u == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub URL: out of memory");
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: not a valid URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: must not contain user information");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: must not contain a query");
        goto out;
    }
    if (strcmp(scheme, "https") == 0) {
        /* fine anywhere */
    } else if (strcmp(scheme, "http") == 0) {
        if (!host_is_loopback(host)) {
            rc = cmc_fail(CMC_ERR_INVALID,
                          "hub URL: plain http:// is only allowed to a loopback address; "
                          "use https://");
            goto out;
        }
    } else {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: scheme must be https");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: not a valid URL");
        goto out;
    }
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    c->path_prefix = cmc_strndup(path, plen);
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    c->base_url = cmc_strndup(base, blen);
    if (c->path_prefix == NULL || c->base_url == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "hub URL: out of memory");
        goto out;
    }
    if (strstr(c->base_url, "#") != NULL) {
        rc = cmc_fail(CMC_ERR_INVALID, "hub URL: must not contain a fragment");
        goto out;
    }
    const char *protos = strcmp(scheme, "https") == 0 ? "https" : "http";
    if (curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, protos) != CURLE_OK ||
        curl_easy_setopt(c->curl, CURLOPT_REDIR_PROTOCOLS_STR, protos) != CURLE_OK) {
        rc = cmc_fail(CMC_ERR_NET, "libcurl refused the protocol list");
        goto out;
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return rc;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct rx_buf *rx = ctx;
    size_t n = size * nmemb;
    if (n > rx->max || rx->len > rx->max - n) {
        rx->over_cap = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (rx->len + n + 1 > rx->cap) {
        size_t cap = rx->cap ? rx->cap : 4096;
        while (cap < rx->len + n + 1)
            cap *= 2;
        uint8_t *nb = cmc_realloc(rx->buf, cap);
        if (nb == NULL) {
            rx->nomem = 1;
            return 0;
        }
        rx->buf = nb;
        rx->cap = cap;
    }
    memcpy(rx->buf + rx->len, data, n);
    rx->len += n;
    return n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    http_client *c = ctx;
    (void)ultotal;
    (void)ulnow;
    if (c->progress == NULL)
        return 0;
    return c->progress(c->progress_ctx, dlnow > 0 ? (uint64_t)dlnow : 0,
                       dltotal > 0 ? (uint64_t)dltotal : 0);
}

/* ---- client ---------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *d = cmc_strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

static int setopt_all(http_client *c)
{
    CURL *h = c->curl;
    CURLcode e = CURLE_OK;
#define SET(opt, val)                                  \
    do {                                               \
        if (e == CURLE_OK)                             \
            e = curl_easy_setopt(h, opt, val);         \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
    SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, &c->rx);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, c);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file != NULL)
        SET(CURLOPT_CAINFO, c->ca_file);
    if (c->pinned != NULL)
        SET(CURLOPT_PINNEDPUBLICKEY, c->pinned);
    if (c->capture_pin)
        SET(CURLOPT_CERTINFO, 1L);
#undef SET
    if (e != CURLE_OK)
        return cmc_fail(e == CURLE_OUT_OF_MEMORY ? CMC_ERR_NOMEM : CMC_ERR_NET,
                        "libcurl option refused: %s", curl_easy_strerror(e));
    return CMC_OK;
}

void http_client_free(http_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    cmc_free(c->base_url);
    cmc_free(c->path_prefix);
    cmc_free(c->ca_file);
    cmc_free(c->pinned);
    cmc_free(c->user_agent);
    cmc_free(c->rx.buf);
    cry_secret_free(c->device_sk);
    cmc_free(c);
}

int http_client_new(const struct http_options *opt, http_client **out)
{
    int rc;
    int failed = 0;
    http_client *c = NULL;

    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return cmc_fail(CMC_ERR_NET, "libcurl initialisation failed: %s",
                        curl_easy_strerror(curl_init_result));
    c = cmc_calloc(1, sizeof *c);
    if (c == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "http client: out of memory");
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "http client: libcurl handle");
        goto out;
    }
    if ((rc = parse_base_url(c, opt->base_url)) != CMC_OK)
        goto out;
    if (opt->pinned_pubkey != NULL && strncmp(opt->pinned_pubkey, "sha256//", 8) != 0) {
        rc = cmc_fail(CMC_ERR_INVALID, "TLS pin: must start with sha256//");
        goto out;
    }
    c->ca_file = dup_or_null(opt->ca_file, &failed);
    c->pinned = dup_or_null(opt->pinned_pubkey, &failed);
    c->user_agent = dup_or_null(opt->user_agent ? opt->user_agent : "cmc-agent", &failed);
    if (failed) {
        rc = cmc_fail(CMC_ERR_NOMEM, "http client: out of memory");
        goto out;
    }
    c->capture_pin = opt->capture_pin;
    c->connect_timeout_ms =
        opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    c->low_speed_limit =
        opt->low_speed_limit > 0 ? opt->low_speed_limit : HTTP_DEFAULT_LOW_SPEED_LIMIT;
    c->low_speed_time = opt->low_speed_time > 0 ? opt->low_speed_time : HTTP_DEFAULT_LOW_SPEED_TIME;
    c->max_response = opt->max_response > 0 ? opt->max_response : HTTP_DEFAULT_MAX_RESPONSE;
    c->max_attempts = opt->max_attempts > 0 ? opt->max_attempts : HTTP_DEFAULT_MAX_ATTEMPTS;
    c->backoff_base_ms =
        opt->backoff_base_ms > 0 ? opt->backoff_base_ms : HTTP_DEFAULT_BACKOFF_BASE_MS;
    c->backoff_max_ms = opt->backoff_max_ms > 0 ? opt->backoff_max_ms : HTTP_DEFAULT_BACKOFF_MAX_MS;
    c->retry_after_max_s =
        opt->retry_after_max_s > 0 ? opt->retry_after_max_s : HTTP_DEFAULT_RETRY_AFTER_MAX_S;
    c->rx.max = c->max_response;
    if ((rc = setopt_all(c)) != CMC_OK)
        goto out;
    *out = c;
    return CMC_OK;
out:
    http_client_free(c);
    return rc;
}

int http_client_set_device(http_client *c, const char *device_id,
                           const struct cry_secret *device_sk)
{
    int rc;
    struct cry_secret *copy = NULL;

    if (device_id == NULL || strlen(device_id) != REQSIG_DEVICE_ID_LEN || device_sk == NULL ||
        device_sk->len != CRY_SIGN_SK_BYTES)
        return cmc_fail(CMC_ERR_INVALID, "http client: device id or key malformed");
    if ((rc = cry_secret_new(device_sk->len, &copy)) != CMC_OK)
        return rc;
    memcpy(copy->buf, device_sk->buf, device_sk->len);
    cry_secret_free(c->device_sk);
    c->device_sk = copy;
    memcpy(c->device_id, device_id, REQSIG_DEVICE_ID_LEN + 1);
    return CMC_OK;
}

void http_client_set_progress(http_client *c, http_progress_fn fn, void *ctx)
{
    c->progress = fn;
    c->progress_ctx = ctx;
}

void http_client_stats(const http_client *c, struct http_stats *out)
{
    *out = c->stats;
}

int http_client_peer_pin(const http_client *c, char out[HTTP_PIN_MAX])
{
    if (c->peer_pin[0] == '\0')
        return cmc_fail(CMC_ERR_STATE, "no TLS certificate was captured from the hub");
    memcpy(out, c->peer_pin, HTTP_PIN_MAX);
    return CMC_OK;
}

/* ---- responses ------------------------------------------------------------------------- */

void http_response_init(struct http_response *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
}

void http_response_free(struct http_response *r)
{
    if (r == NULL)
        return;
    cmc_free(r->body);
    http_response_init(r);
}

/* Copies a hub-supplied string as one printable line. */
static void copy_line(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    dst[i] = '\0';
}

/* Reads {"error": ..., "message": ...} from an error body, if it is one. */
static void parse_hub_error(struct http_response *r)
{
    json_error_t jerr;
    if (r->body_len == 0)
        return;
    json_t *root = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return;
    if (json_is_object(root)) {
        const char *e = json_string_value(json_object_get(root, "error"));
        const char *m = json_string_value(json_object_get(root, "message"));
        if (e != NULL)
            copy_line(r->hub_error, sizeof r->hub_error, e);
        if (m != NULL)
            copy_line(r->hub_message, sizeof r->hub_message, m);
    }
    json_decref(root);
}

/* ---- one attempt ----------------------------------------------------------------------- */

static int retryable_status(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static int status_error(long status, const char *method, const char *path,
                        const struct http_response *r)
{
    int code;
    if (status == 401)
        code = strcmp(r->hub_error, "clock") == 0 ? CMC_ERR_CLOCK : CMC_ERR_UNAUTHORIZED;
    else if (status == 400)
        code = CMC_ERR_INVALID;
    else if (status == 403)
        code = CMC_ERR_DENIED;
    else if (status == 404)
        code = CMC_ERR_NOT_FOUND;
    else if (status == 409)
        code = CMC_ERR_CONFLICT;
    else if (status == 413)
        code = CMC_ERR_TOO_LARGE;
    else
        code = CMC_ERR_REFUSED;
    if (r->hub_error[0] != '\0')
        return cmc_fail(code, "hub answered %ld to %s %s: %s: %s", status, method, path,
                        r->hub_error, r->hub_message[0] ? r->hub_message : "(no message)");
    return cmc_fail(code, "hub answered %ld to %s %s", status, method, path);
}

static int tls_verify_error(http_client *c, CURLcode res)
{
    long verify = 0;
    if (curl_easy_getinfo(c->curl, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK &&
        (verify == X509_CERT_NOT_YET_VALID || verify == X509_CERT_HAS_EXPIRED)) {
        char date[21];
        plat_format_time(plat_wall_now(), date);
        return cmc_fail(CMC_ERR_CLOCK,
                        "the device clock looks wrong (it says %s); set the date and time and "
                        "sync again",
                        date);
    }
    return cmc_fail(CMC_ERR_TLS, "secure connection to the hub failed: %s",
                    c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
}

/* Translates a transport failure; *retry says whether another attempt may help. */
static int transport_error(http_client *c, CURLcode res, int *retry)
{
    const char *text = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
    *retry = 0;
    switch ((int)res) {
    case CURLE_WRITE_ERROR:
        if (c->rx.over_cap)
            return cmc_fail(CMC_ERR_TOO_LARGE, "hub response larger than %zu bytes; refused",
                            c->max_response);
        if (c->rx.nomem)
            return cmc_fail(CMC_ERR_NOMEM, "out of memory receiving the hub's response");
        return cmc_fail(CMC_ERR_NET, "receiving from the hub failed: %s", text);
    case CURLE_FILESIZE_EXCEEDED:
        return cmc_fail(CMC_ERR_TOO_LARGE, "hub response larger than %zu bytes; refused",
                        c->max_response);
    case CURLE_ABORTED_BY_CALLBACK:
        return cmc_fail(CMC_ERR_NET, "transfer cancelled");
    case CURLE_OUT_OF_MEMORY:
        return cmc_fail(CMC_ERR_NOMEM, "libcurl: out of memory");
    case CURLE_PEER_FAILED_VERIFICATION:
        return tls_verify_error(c, res);
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return cmc_fail(CMC_ERR_TLS,
                        "the hub's certificate key does not match the one pinned at "
                        "enrollment");
    case CURLE_SSL_CONNECT_ERROR: {
        /* A cut during the handshake looks like this too; worth another attempt, unless
         * the clock is the cause. */
        int rc = tls_verify_error(c, res);
        *retry = rc == CMC_ERR_TLS;
        return rc;
    }
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return cmc_fail(CMC_ERR_TLS, "secure connection to the hub failed: %s", text);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return cmc_fail(CMC_ERR_INVALID, "hub URL refused: %s", text);
    case CURLE_PARTIAL_FILE:
        *retry = 1;
        return cmc_fail(CMC_ERR_NET, "the hub's response was cut short: %s", text);
    default:
        *retry = 1;
        return cmc_fail(CMC_ERR_NET, "cannot reach the hub: %s", text);
    }
}

static void capture_pin(http_client *c)
{
    struct curl_certinfo *ci = NULL;
    if (curl_easy_getinfo(c->curl, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == NULL ||
        ci->num_of_certs < 1)
        return; /* a reused connection has no handshake to report */
    for (struct curl_slist *s = ci->certinfo[0]; s != NULL; s = s->next) {
        if (strncmp(s->data, "Cert:", 5) == 0) {
            char pin[HTTP_PIN_MAX];
            if (http_pin_from_pem(s->data + 5, strlen(s->data + 5), pin) == CMC_OK)
                memcpy(c->peer_pin, pin, sizeof pin);
            return;
        }
    }
}

static void count_transfer(http_client *c)
{
    long conns = 0, req_size = 0, hdr_size = 0;
    curl_off_t up = 0, down = 0;
    curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &conns);
    curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &req_size);
    curl_easy_getinfo(c->curl, CURLINFO_HEADER_SIZE, &hdr_size);
    curl_easy_getinfo(c->curl, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(c->curl, CURLINFO_SIZE_DOWNLOAD_T, &down);
    c->stats.requests++;
    c->stats.connections += conns > 0 ? (uint64_t)conns : 0;
    c->stats.bytes_sent += (req_size > 0 ? (uint64_t)req_size : 0) + (up > 0 ? (uint64_t)up : 0);
    c->stats.bytes_received +=
        (hdr_size > 0 ? (uint64_t)hdr_size : 0) + (down > 0 ? (uint64_t)down : 0);
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof line)
        return cmc_fail(CMC_ERR_INVALID, "request header %s too long", name);
    struct curl_slist *nl = curl_slist_append(*list, line);
    if (nl == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory building request headers");
    *list = nl;
    return CMC_OK;
}

static int attempt(http_client *c, const char *method, const char *url, const char *signed_path,
                   const char *log_path, const char *content_type, const uint8_t *body,
                   size_t body_len, unsigned flags, struct http_response *resp, int *retry)
{
    int rc = CMC_OK;
    struct curl_slist *headers = NULL;
    struct reqsig_headers sig;
    CURLcode res;
    CURL *h = c->curl;

    *retry = 0;
    c->rx.len = 0;
    c->rx.over_cap = 0;
    c->rx.nomem = 0;
    c->errbuf[0] = '\0';

    /* An empty "Expect:" stops libcurl waiting for 100-continue before large bodies. */
    struct curl_slist *nl = curl_slist_append(NULL, "Expect:");
    if (nl == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory building request headers");
        goto out;
    }
    headers = nl;
    if (body != NULL &&
        (rc = add_header(&headers, "Content-Type",
                         content_type ? content_type : "application/msgpack")) != CMC_OK)
        goto out;
    if (c->device_sk != NULL && !(flags & HTTP_NO_SIGN)) {
        if ((rc = reqsig_sign(c->device_sk, c->device_id, method, signed_path, body, body_len,
                              &sig)) != CMC_OK)
            goto out;
        if ((rc = add_header(&headers, REQSIG_HDR_DEVICE, sig.device)) != CMC_OK ||
            (rc = add_header(&headers, REQSIG_HDR_TIME, sig.time)) != CMC_OK ||
            (rc = add_header(&headers, REQSIG_HDR_NONCE, sig.nonce)) != CMC_OK ||
            (rc = add_header(&headers, REQSIG_HDR_SIGNATURE, sig.signature)) != CMC_OK)
            goto out;
    }

    CURLcode e = curl_easy_setopt(h, CURLOPT_URL, url);
    if (e == CURLE_OK)
        e = curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (e == CURLE_OK)
        e = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (e == CURLE_OK && strcmp(method, "GET") == 0) {
        e = curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (e == CURLE_OK) {
        e = curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (e == CURLE_OK)
            e = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (e == CURLE_OK)
            e = curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? (const char *)body : "");
        if (e == CURLE_OK && strcmp(method, "POST") != 0)
            e = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (e != CURLE_OK) {
        rc = cmc_fail(CMC_ERR_NET, "libcurl option refused: %s", curl_easy_strerror(e));
        goto out;
    }

    res = curl_easy_perform(h);
    count_transfer(c);
    if (res != CURLE_OK) {
        rc = transport_error(c, res, retry);
        goto out;
    }

    long status = 0;
    curl_off_t retry_after = 0;
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    resp->status = status;
    resp->retry_after = retry_after > 0 ? (int64_t)retry_after : -1;
    if (ct != NULL)
        copy_line(resp->content_type, sizeof resp->content_type, ct);
    /* Hand the received bytes over; the client starts a fresh buffer next time. */
    if (c->rx.buf == NULL) {
        c->rx.buf = cmc_malloc(1);
        if (c->rx.buf == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "out of memory receiving the hub's response");
            goto out;
        }
        c->rx.cap = 1;
    }
    c->rx.buf[c->rx.len] = '\0';
    resp->body = c->rx.buf;
    resp->body_len = c->rx.len;
    c->rx.buf = NULL;
    c->rx.len = 0;
    c->rx.cap = 0;

    if (c->capture_pin)
        capture_pin(c);
    if (status >= 200 && status < 300)
        goto out;
    parse_hub_error(resp);
    /* A "replay" 401 answers a nonce this client made fresh for this attempt: the hub saw the
     * same request twice, which only happens when libcurl re-sent it on a connection that
     * died under it (a reset mid-sync). Another attempt, signed afresh, is safe. */
    *retry = retryable_status(status) || (status == 401 && strcmp(resp->hub_error, "replay") == 0);
    rc = status_error(status, method, log_path, resp);
out:
    curl_slist_free_all(headers);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    cry_memzero(&sig, sizeof sig);
    return rc;
}

/* Full jitter: uniform in [0, min(max, base * 2^n)]. */
static uint32_t backoff_ms(const http_client *c, unsigned n)
{
    uint64_t ceiling = c->backoff_base_ms;
    for (unsigned i = 0; i < n && ceiling < c->backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > c->backoff_max_ms)
        ceiling = c->backoff_max_ms;
    uint32_t r = 0;
    if (plat_random(&r, sizeof r) != CMC_OK)
        return (uint32_t)(ceiling / 2);
    return (uint32_t)(r % (ceiling + 1));
}

int http_request(http_client *c, const char *method, const char *path_query,
                 const char *content_type, const uint8_t *body, size_t body_len,
                 unsigned flags, struct http_response *resp)
{
    int rc;
    char *url = NULL;
    char *signed_path = NULL;
    int retry = 0;

    http_response_init(resp);
    if (method == NULL || path_query == NULL || path_query[0] != '/')
        return cmc_fail(CMC_ERR_INVALID, "http request: path must start with '/'");
    if (strcmp(method, "GET") == 0 && body != NULL)
        return cmc_fail(CMC_ERR_INVALID, "http request: GET cannot carry a body");
    size_t ulen = strlen(c->base_url) + strlen(path_query) + 1;
    size_t slen = strlen(c->path_prefix) + strlen(path_query) + 1;
    url = cmc_malloc(ulen);
    signed_path = cmc_malloc(slen);
    if (url == NULL || signed_path == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "http request: out of memory");
        goto out;
    }
    snprintf(url, ulen, "%s%s", c->base_url, path_query);
    snprintf(signed_path, slen, "%s%s", c->path_prefix, path_query);
    /* Details and logs name the endpoint, not its query (which may carry cursors). */
    char log_path[128];
    snprintf(log_path, sizeof log_path, "%.*s", (int)strcspn(path_query, "?"), path_query);

    uint64_t t_net = plat_phase_begin();
    for (unsigned n = 0;; n++) {
        rc = attempt(c, method, url, signed_path, log_path, content_type, body, body_len, flags,
                     resp, &retry);
        if (rc == CMC_OK || !retry || (flags & HTTP_NO_RETRY) || n + 1 >= c->max_attempts)
            break;
        uint32_t delay;
        if (resp->retry_after >= 0 && (resp->status == 429 || resp->status == 503)) {
            int64_t s = resp->retry_after;
            if (s > (int64_t)c->retry_after_max_s)
                s = c->retry_after_max_s;
            delay = (uint32_t)(s * 1000);
        } else {
            delay = backoff_ms(c, n);
        }
        plat_log(PLAT_LOG_INFO, "hub request %s %s failed (%s); retrying in %u ms", method,
                 log_path, cmc_errname(rc), (unsigned)delay);
        http_response_free(resp);
        plat_sleep_ms(delay);
        c->stats.retries++;
    }
    plat_phase_end(PLAT_PHASE_NETWORK, t_net);
out:
    cmc_free(url);
    cmc_free(signed_path);
    return rc;
}

/* ---- pins ------------------------------------------------------------------------------ */

static void base64(char *out, const uint8_t *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

int http_pin_of_spki(const uint8_t *der, size_t len, char out[HTTP_PIN_MAX])
{
    uint8_t digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, digest) < 0)
        return cmc_fail(CMC_ERR_CRYPTO, "TLS pin: SHA-256 failed");
    memcpy(out, "sha256//", 8);
    base64(out + 8, digest, sizeof digest);
    return CMC_OK;
}

int http_pin_from_pem(const char *pem, size_t len, char out[HTTP_PIN_MAX])
{
    int rc = CMC_OK;
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t spki = { NULL, 0 };

    out[0] = '\0';
    if (pem == NULL || len == 0 || len > 64 * 1024)
        return cmc_fail(CMC_ERR_INVALID, "certificate: empty or too large");
    gnutls_datum_t in = { (unsigned char *)(uintptr_t)pem, (unsigned)len };
    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_pubkey_init(&pub) < 0) {
        rc = cmc_fail(CMC_ERR_NOMEM, "certificate: out of memory");
        goto out;
    }
    if (gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0) {
        rc = cmc_fail(CMC_ERR_INVALID, "certificate: not a PEM X.509 certificate");
        goto out;
    }
    rc = http_pin_of_spki(spki.data, spki.size, out);
out:
    if (spki.data != NULL)
        gnutls_free(spki.data);
    if (pub != NULL)
        gnutls_pubkey_deinit(pub);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return rc;
}
