/*
 * test_sync_http.c - the device's HTTP client against a tiny canned-response server on
 * 127.0.0.1 (plain HTTP, which the client allows only to loopback): success and keep-alive,
 * request signing, Retry-After, 401 not retried, cut-short and oversized responses, plain
 * http to another host refused, and the TLS pin computation. TLS itself is exercised by
 * the end-to-end tests against the real hub.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/http.h"
#include "sync/reqsig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the canned server ----------------------------------------------------------------- */

struct canned {
    const char *text; /* the whole response, status line to body */
    size_t len;       /* 0: strlen(text) */
    int close;        /* close the connection after writing it */
};

struct server {
    int fd;
    int port;
    pthread_t thread;
    const struct canned *script;
    size_t n_script; /* the last entry repeats */
    atomic_int requests;
    atomic_int connections;
    atomic_int stop;
    pthread_mutex_t mu;
    char last[16384]; /* the last request: request line, headers, body */
    size_t last_len;
};

static int read_request(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        if (n + 1 >= cap)
            return -1;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = (size_t)(end - buf) + 4;
    size_t body = 0;
    for (char *p = buf; p < end; p++) {
        if (strncasecmp(p, "\r\nContent-Length:", 17) == 0) {
            body = (size_t)strtoul(p + 17, NULL, 10);
            break;
        }
    }
    while (n < head + body) {
        if (n + 1 >= cap)
            return -1;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    static char buf[16384];
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        atomic_fetch_add(&s->connections, 1);
        for (;;) {
            size_t len = 0;
            if (read_request(c, buf, sizeof buf, &len) != 0)
                break;
            int i = atomic_fetch_add(&s->requests, 1);
            pthread_mutex_lock(&s->mu);
            memcpy(s->last, buf, len + 1);
            s->last_len = len;
            pthread_mutex_unlock(&s->mu);
            const struct canned *r =
                &s->script[(size_t)i < s->n_script ? (size_t)i : s->n_script - 1];
            size_t rlen = r->len ? r->len : strlen(r->text);
            size_t off = 0;
            while (off < rlen) {
                ssize_t w = send(c, r->text + off, rlen - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            if (r->close)
                break;
        }
        close(c);
    }
    return NULL;
}

static void server_start(struct server *s, const struct canned *script, size_t n)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    memset(s, 0, sizeof *s);
    s->script = script;
    s->n_script = n;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
}

/* Ends a test's exchange: the client, then the server. */
static void client_and_server_stop(http_client *c, struct server *s)
{
    http_client_free(c);
    server_stop(s);
}

/* Formats a response with a Content-Length that matches its body. */
static const char *reply(char *buf, size_t cap, const char *status, const char *headers,
                         const char *body)
{
    int n = snprintf(buf, cap, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status, headers,
                     strlen(body), body);
    assert_true(n > 0 && (size_t)n < cap);
    return buf;
}

/* A client for the server; retries are fast (fake clock) unless a test says otherwise. */
static http_client *client_for(struct server *s, const char *prefix, size_t max_response,
                               unsigned attempts)
{
    char url[128];
    struct http_options o;
    http_client *c = NULL;
    memset(&o, 0, sizeof o);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, prefix);
    o.base_url = url;
    o.max_response = max_response;
    o.max_attempts = attempts;
    o.connect_timeout_ms = 2000;
    o.low_speed_time = 5;
    assert_int_equal(http_client_new(&o, &c), CMC_OK);
    return c;
}

/* Starts a server on `script` and a client for it that makes up to `attempts` attempts. */
static http_client *start_exchange(struct server *s, const struct canned *script, size_t n,
                                   unsigned attempts)
{
    server_start(s, script, n);
    return client_for(s, "", 0, attempts);
}

/* A GET of `path` on the fake clock (a fixed wall time; the monotonic clock from mono_ns, moved
 * only by the client's own waits); how long those waits were in *waited_ms. */
static int timed_get(http_client *c, const char *path, uint64_t mono_ns, struct http_response *r,
                     uint64_t *waited_ms)
{
    plat_fake_clock_enable(1800000000, mono_ns);
    uint64_t before = plat_mono_now_ns();
    int rc = http_request(c, "GET", path, NULL, NULL, 0, 0, r);
    *waited_ms = (plat_mono_now_ns() - before) / 1000000u;
    plat_fake_clock_disable();
    return rc;
}

/* One GET of /v1/pull?cursor=0 (on the fake clock) from a fresh client, answering at most
 * `max_response` bytes (0: the default) in up to `attempts` attempts, to a server on `script`;
 * both are stopped again. The response is the caller's to free; *requests says how many
 * requests the server saw. */
static int get_once(const struct canned *script, size_t n, size_t max_response, unsigned attempts,
                    struct http_response *r, int *requests)
{
    struct server s;
    uint64_t waited_ms;
    server_start(&s, script, n);
    http_client *c = client_for(&s, "", max_response, attempts);
    int rc = timed_get(c, "/v1/pull?cursor=0", 0, r, &waited_ms);
    client_and_server_stop(c, &s);
    *requests = atomic_load(&s.requests);
    return rc;
}

/* The value of a header in the server's last request, or NULL. */
static const char *header_value(struct server *s, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(s->last, key);
    if (p == NULL)
        return NULL;
    p += strlen(key);
    size_t n = strcspn(p, "\r");
    if (n >= cap)
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(cry_init(), CMC_OK);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_success_and_keep_alive(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.cmc.bundle\r\n"
          "Content-Length: 5\r\n\r\nhello", 0, 0 },
    };
    struct server s;
    struct http_response r;
    struct http_stats st;
    http_client *c = start_exchange(&s, script, 1, 0);

    assert_int_equal(http_request(c, "GET", "/v1/pull?cursor=0", NULL, NULL, 0, 0, &r), CMC_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_string_equal(r.content_type, "application/vnd.cmc.bundle");
    assert_true(strncmp(s.last, "GET /v1/pull?cursor=0 HTTP/1.1\r\n", 32) == 0);
    http_response_free(&r);

    const uint8_t body[] = { 0x81, 0xa1, 'k', 0x01 };
    assert_int_equal(http_request(c, "POST", "/v1/ack", NULL, body, sizeof body, 0, &r), CMC_OK);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    assert_true(strncmp(s.last, "POST /v1/ack HTTP/1.1\r\n", 23) == 0);
    char v[64];
    assert_non_null(header_value(&s, "Content-Type", v, sizeof v));
    assert_string_equal(v, "application/msgpack");
    assert_memory_equal(s.last + s.last_len - sizeof body, body, sizeof body);
    /* unsigned without a device key */
    assert_null(header_value(&s, "X-CMC-Signature", v, sizeof v));

    http_client_stats(c, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.connections, 1); /* the second request reused the connection */
    assert_int_equal(atomic_load(&s.connections), 1);
    assert_true(st.bytes_received >= 10);
    assert_true(st.bytes_sent >= sizeof body);
    assert_int_equal(st.retries, 0);
    client_and_server_stop(c, &s);
}

static void test_requests_are_signed(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0 },
    };
    const char *device = "0f8fad5b-d9cb-469f-a165-70867728950e";
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk = NULL;
    struct server s;
    struct http_response r;
    char dev[64], tm[32], nonce[64], sig[160], first_nonce[64];
    struct reqsig_request req;
    const uint8_t body[] = "push body";

    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    server_start(&s, script, 1);
    http_client *c = client_for(&s, "/hub/", 0, 0);
    assert_int_equal(http_client_set_device(c, device, sk), CMC_OK);
    cry_secret_free(sk); /* the client keeps its own copy */

    assert_int_equal(http_request(c, "POST", "/v1/push", NULL, body, sizeof body - 1, 0, &r),
                     CMC_OK);
    http_response_free(&r);
    assert_true(strncmp(s.last, "POST /hub/v1/push HTTP/1.1\r\n", 28) == 0);
    assert_non_null(header_value(&s, "X-CMC-Device", dev, sizeof dev));
    assert_non_null(header_value(&s, "X-CMC-Time", tm, sizeof tm));
    assert_non_null(header_value(&s, "X-CMC-Nonce", nonce, sizeof nonce));
    assert_non_null(header_value(&s, "X-CMC-Signature", sig, sizeof sig));
    assert_string_equal(dev, device);
    assert_int_equal(reqsig_parse(dev, tm, nonce, sig, &req), CMC_OK);
    /* the signature covers the path as sent, prefix included, and the body */
    assert_int_equal(reqsig_verify(&req, pk, "POST", "/hub/v1/push", body, sizeof body - 1),
                     CMC_OK);
    assert_int_equal(reqsig_verify(&req, pk, "POST", "/v1/push", body, sizeof body - 1),
                     CMC_ERR_UNAUTHORIZED);
    int64_t skew;
    assert_int_equal(reqsig_check_time(&req, plat_wall_now(), &skew), CMC_OK);
    strcpy(first_nonce, nonce);

    /* a GET is signed over the query too, with a fresh nonce; enroll-style requests are not */
    assert_int_equal(http_request(c, "GET", "/v1/pull?cursor=12&budget=1000", NULL, NULL, 0, 0,
                                  &r),
                     CMC_OK);
    http_response_free(&r);
    assert_non_null(header_value(&s, "X-CMC-Nonce", nonce, sizeof nonce));
    assert_non_null(header_value(&s, "X-CMC-Signature", sig, sizeof sig));
    assert_non_null(header_value(&s, "X-CMC-Time", tm, sizeof tm));
    assert_string_not_equal(nonce, first_nonce);
    assert_int_equal(reqsig_parse(dev, tm, nonce, sig, &req), CMC_OK);
    assert_int_equal(reqsig_verify(&req, pk, "GET", "/hub/v1/pull?cursor=12&budget=1000", NULL, 0),
                     CMC_OK);
    assert_int_equal(http_request(c, "POST", "/v1/enroll", NULL, body, sizeof body - 1,
                                  HTTP_NO_SIGN, &r),
                     CMC_OK);
    http_response_free(&r);
    assert_null(header_value(&s, "X-CMC-Signature", sig, sizeof sig));
    client_and_server_stop(c, &s);
}

static void test_503_retry_after_is_honoured(void **state)
{
    (void)state;
    static char busy[256];
    reply(busy, sizeof busy, "503 Service Unavailable",
          "Retry-After: 7\r\nContent-Type: application/json\r\n",
          "{\"error\":\"busy\",\"message\":\"try later\"}");
    const struct canned script[] = {
        { busy, 0, 0 },
        { "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone", 0, 0 },
    };
    struct server s;
    struct http_response r;
    struct http_stats st;
    http_client *c = start_exchange(&s, script, 2, 3);

    uint64_t waited_ms;
    int rc = timed_get(c, "/v1/pull?cursor=3", 1000000000ull, &r, &waited_ms);

    assert_int_equal(rc, CMC_OK);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "done", 4);
    assert_int_equal(atomic_load(&s.requests), 2);
    assert_int_equal(waited_ms, 7000); /* exactly the Retry-After, not a jittered backoff */
    http_client_stats(c, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.requests, 2);
    http_response_free(&r);
    client_and_server_stop(c, &s);
}

static void test_retries_give_up_with_backoff(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 0, 0 },
    };
    struct server s;
    struct http_response r;
    http_client *c = start_exchange(&s, script, 1, 4);

    uint64_t waited_ms;
    int rc = timed_get(c, "/v1/pull?cursor=3", 0, &r, &waited_ms);

    assert_int_equal(rc, CMC_ERR_REFUSED);
    assert_int_equal(r.status, 503);
    assert_int_equal(atomic_load(&s.requests), 4);
    /* full jitter: each wait is at most base * 2^n (500, 1000, 2000 ms) */
    assert_true(waited_ms <= 3500);
    assert_non_null(strstr(cmc_errmsg(), "503"));
    http_response_free(&r);

    /* a request that must not be repeated is sent once */
    atomic_store(&s.requests, 0);
    assert_int_equal(http_request(c, "POST", "/v1/enroll", NULL, (const uint8_t *)"x", 1,
                                  HTTP_NO_RETRY | HTTP_NO_SIGN, &r),
                     CMC_ERR_REFUSED);
    assert_int_equal(atomic_load(&s.requests), 1);
    http_response_free(&r);
    client_and_server_stop(c, &s);
}

static void test_401_is_not_retried_and_keeps_the_hub_error(void **state)
{
    (void)state;
    static char revoked[256], clock[256];
    reply(revoked, sizeof revoked, "401 Unauthorized", "Content-Type: application/json\r\n",
          "{\"error\":\"unauthorized\",\"message\":\"device revoked\"}\n");
    reply(clock, sizeof clock, "401 Unauthorized", "Content-Type: application/json\r\n",
          "{\"error\":\"clock\",\"message\":\"the device clock is wrong by 4000 seconds\"}");
    const struct canned script1[] = { { revoked, 0, 0 } };
    const struct canned script2[] = { { clock, 0, 0 } };
    struct http_response r;
    int requests = 0;

    assert_int_equal(get_once(script1, 1, 0, 4, &r, &requests), CMC_ERR_UNAUTHORIZED);
    assert_int_equal(requests, 1);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.hub_error, "unauthorized");
    assert_string_equal(r.hub_message, "device revoked");
    assert_non_null(strstr(cmc_errmsg(), "device revoked"));
    http_response_free(&r);

    assert_int_equal(get_once(script2, 1, 0, 4, &r, &requests), CMC_ERR_CLOCK);
    assert_int_equal(requests, 1);
    assert_string_equal(r.hub_error, "clock");
    assert_non_null(strstr(cmc_errmsg(), "wrong by 4000 seconds"));
    http_response_free(&r);
}

static void test_other_statuses_map_to_codes(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n", 0, 0 },
        { "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n", 0, 0 },
        { "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 0, 0 },
        { "HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\n\r\nnot json here", 0, 0 },
    };
    struct server s;
    struct http_response r;
    http_client *c = start_exchange(&s, script, 4, 4);
    assert_int_equal(http_request(c, "POST", "/v1/push", NULL, NULL, 0, 0, &r), CMC_ERR_CONFLICT);
    http_response_free(&r);
    assert_int_equal(http_request(c, "POST", "/v1/push", NULL, NULL, 0, 0, &r),
                     CMC_ERR_TOO_LARGE);
    http_response_free(&r);
    assert_int_equal(http_request(c, "POST", "/v1/push", NULL, NULL, 0, 0, &r), CMC_ERR_DENIED);
    http_response_free(&r);
    assert_int_equal(http_request(c, "POST", "/v1/push", NULL, NULL, 0, 0, &r), CMC_ERR_INVALID);
    assert_string_equal(r.hub_error, "");
    assert_int_equal(r.body_len, 13);
    http_response_free(&r);
    assert_int_equal(atomic_load(&s.requests), 4);
    client_and_server_stop(c, &s);
}

static void test_cut_short_body_is_an_error(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly twenty bytes...", 0, 1 },
    };
    struct http_response r;
    int requests = 0;
    assert_int_equal(get_once(script, 1, 0, 2, &r, &requests), CMC_ERR_NET);
    assert_non_null(strstr(cmc_errmsg(), "cut short"));
    assert_int_equal(requests, 2); /* retried once, then given up */
    assert_null(r.body);
    http_response_free(&r);
}

static void test_response_over_the_cap_is_refused(void **state)
{
    (void)state;
    static char big_declared[256], big_close[6000];
    snprintf(big_declared, sizeof big_declared,
             "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    int n = snprintf(big_close, sizeof big_close, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    memset(big_close + n, 'x', 5000);
    const struct canned script1[] = { { big_declared, 0, 1 } };
    const struct canned script2[] = { { big_close, (size_t)n + 5000, 1 } };
    struct http_response r;
    int requests = 0;

    /* a Content-Length over the cap: refused before the body is read */
    assert_int_equal(get_once(script1, 1, 1000, 3, &r, &requests), CMC_ERR_TOO_LARGE);
    assert_int_equal(requests, 1); /* not retried */
    http_response_free(&r);

    /* no length given: aborted once the bytes pass the cap */
    assert_int_equal(get_once(script2, 1, 1000, 3, &r, &requests), CMC_ERR_TOO_LARGE);
    assert_int_equal(requests, 1);
    assert_null(r.body);
    http_response_free(&r);
}

static int cancel_progress(void *ctx, uint64_t received, uint64_t expected)
{
    (void)received;
    (void)expected;
    int *calls = ctx;
    (*calls)++;
    return 1;
}

static void test_progress_callback_can_cancel(void **state)
{
    (void)state;
    static const struct canned script[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", 0, 0 },
    };
    struct server s;
    struct http_response r;
    int calls = 0;
    http_client *c = start_exchange(&s, script, 1, 3);
    http_client_set_progress(c, cancel_progress, &calls);
    assert_int_equal(http_request(c, "GET", "/v1/pull?cursor=0", NULL, NULL, 0, 0, &r),
                     CMC_ERR_NET);
    assert_true(calls >= 1);
    assert_non_null(strstr(cmc_errmsg(), "cancelled"));
    http_response_free(&r);
    http_client_set_progress(c, NULL, NULL);
    assert_int_equal(http_request(c, "GET", "/v1/pull?cursor=0", NULL, NULL, 0, 0, &r), CMC_OK);
    http_response_free(&r);
    client_and_server_stop(c, &s);
}

static void test_connection_refused_is_a_network_error(void **state)
{
    (void)state;
    /* a port nobody listens on: bind, learn it, close */
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);

    char url[64];
    struct http_options o;
    http_client *c = NULL;
    struct http_response r;
    struct http_stats st;
    memset(&o, 0, sizeof o);
    snprintf(url, sizeof url, "http://localhost:%d", ntohs(a.sin_port));
    o.base_url = url;
    o.max_attempts = 3;
    assert_int_equal(http_client_new(&o, &c), CMC_OK);
    plat_fake_clock_enable(1800000000, 0);
    assert_int_equal(http_request(c, "GET", "/v1/pull?cursor=0", NULL, NULL, 0, 0, &r),
                     CMC_ERR_NET);
    plat_fake_clock_disable();
    assert_int_equal(r.status, 0);
    http_client_stats(c, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.retries, 2);
    http_response_free(&r);
    http_client_free(c);
}

static void test_plain_http_only_to_loopback(void **state)
{
    (void)state;
    static const char *refused[] = {
        "http://192.0.2.10:8080",     "http://hub.example.org",
        "http://127.0.0.1.evil.test", "http://user@127.0.0.1:80",
        "ftp://127.0.0.1/",           "http://128.0.0.1",
        "http://127.0.0.256",         "https://127.0.0.1/?x=1",
        "not a url",                  "",
    };
    static const char *allowed[] = {
        "http://127.0.0.1:1",   "http://127.9.8.7:1/", "http://localhost:1",
        "http://[::1]:1",       "https://192.0.2.10",  "https://hub.example.org:8443/cmc/",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct http_options o;
        http_client *c = (http_client *)1;
        memset(&o, 0, sizeof o);
        o.base_url = refused[i];
        if (http_client_new(&o, &c) == CMC_OK)
            fail_msg("URL accepted: %s", refused[i]);
        assert_null(c);
    }
    struct http_options o;
    memset(&o, 0, sizeof o);
    o.base_url = "http://192.0.2.10";
    http_client *c = NULL;
    assert_int_equal(http_client_new(&o, &c), CMC_ERR_INVALID);
    assert_non_null(strstr(cmc_errmsg(), "loopback"));
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        memset(&o, 0, sizeof o);
        o.base_url = allowed[i];
        if (http_client_new(&o, &c) != CMC_OK)
            fail_msg("URL refused: %s (%s)", allowed[i], cmc_errmsg());
        http_client_free(c);
    }
    memset(&o, 0, sizeof o);
    o.base_url = "https://hub.example.org";
    o.pinned_pubkey = "md5//abc";
    assert_int_equal(http_client_new(&o, &c), CMC_ERR_INVALID);
    http_client_free(NULL);
}

static void test_pin_from_pem_known_answer(void **state)
{
    (void)state;
    /* A self-signed test certificate; the pin was computed independently with
     * openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 | base64 */
    static const char pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIBfDCCASGgAwIBAgIUZypEV4IgzuctyibQr6seht6dAiIwCgYIKoZIzj0EAwIw\n"
        "EzERMA8GA1UEAwwIaHViLnRlc3QwHhcNMjYxMTIxMDQ0MDExWhcNMzYxMTE4MDQ0\n"
        "MDExWjATMREwDwYDVQQDDAhodWIudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
        "A0IABDzo4v89gcdSQ2j1BMS/qNzD/gfg+vnlHxP3v5CrZ5B6k/CHgpYR5IIOpL/q\n"
        "kngY8pcyPTID3IfMaWDTlyG27yajUzBRMB0GA1UdDgQWBBThOQ8Dgi2luKDDHYsj\n"
        "JpEB9RrVqTAfBgNVHSMEGDAWgBThOQ8Dgi2luKDDHYsjJpEB9RrVqTAPBgNVHRMB\n"
        "Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCnXNC9aNV68XxHc0gE6l0AokYR\n"
        "h4u9aMyO7om0RnsDuQIhAKj0S97MGG57IaC3GSt/2bRn2i5iZ2ophOTnk76zikqi\n"
        "-----END CERTIFICATE-----\n";
    char pin[HTTP_PIN_MAX];
    assert_int_equal(http_pin_from_pem(pem, sizeof pem - 1, pin), CMC_OK);
    assert_string_equal(pin, "sha256//Kb5+2u3cD7P1ms7kU0MD7sB6F73cOe1OJHuExRA/OGo=");
    assert_int_equal(http_pin_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                       "-----END CERTIFICATE-----\n", 57, pin),
                     CMC_ERR_INVALID);
    assert_int_equal(http_pin_from_pem("", 0, pin), CMC_ERR_INVALID);

    /* no certificate captured on a plain connection */
    struct http_options o;
    http_client *c = NULL;
    memset(&o, 0, sizeof o);
    o.base_url = "http://127.0.0.1:1";
    o.capture_pin = 1;
    assert_int_equal(http_client_new(&o, &c), CMC_OK);
    assert_int_equal(http_client_peer_pin(c, pin), CMC_ERR_STATE);
    http_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_and_keep_alive),
        cmocka_unit_test(test_requests_are_signed),
        cmocka_unit_test(test_503_retry_after_is_honoured),
        cmocka_unit_test(test_retries_give_up_with_backoff),
        cmocka_unit_test(test_401_is_not_retried_and_keeps_the_hub_error),
        cmocka_unit_test(test_other_statuses_map_to_codes),
        cmocka_unit_test(test_cut_short_body_is_an_error),
        cmocka_unit_test(test_response_over_the_cap_is_refused),
        cmocka_unit_test(test_progress_callback_can_cancel),
        cmocka_unit_test(test_connection_refused_is_a_network_error),
        cmocka_unit_test(test_plain_http_only_to_loopback),
        cmocka_unit_test(test_pin_from_pem_known_answer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
