/*
 * server.h - the hub's HTTP(S) server: libmicrohttpd in front of hub_api_handle.
 *
 * HTTPS (GnuTLS through libmicrohttpd's MHD_USE_TLS) when a certificate and key are given,
 * plain HTTP otherwise (for tests behind a TLS-terminating proxy only). TLS is 1.2 or 1.3
 * with AEAD suites only (HUB_TLS_PRIORITIES). The server bounds what a client can make it
 * hold: request bodies over HUB_MAX_REQUEST are answered 413 (from Content-Length before
 * reading, or while reading a chunked body); each request must arrive whole (headers and
 * body) within a deadline counted from the connection's opening or its previous answer, so
 * trickling a byte at a time does not keep a connection; idle keep-alive connections are
 * closed after a timeout; one address may hold only so many connections; enrollment
 * attempts are rate-limited per address (429 with Retry-After).
 *
 * Unauthenticated endpoints besides the API: GET /healthz ("ok" when the store answers, 503
 * otherwise; no data) and GET /metrics (Prometheus text, hub/metrics.h), the latter on a
 * separate plain-HTTP listener instead when metrics_host is set.
 *
 * Threads: a small pool of libmicrohttpd threads; requests are served one at a time on the
 * one hub handle (a mutex), which keeps SQLite's one-connection-per-thread rule simple.
 * SQLite's WAL lets the command-line tool write while the server runs.
 *
 * One info log line per answered request: method, endpoint, status, bytes, milliseconds
 * and, once authenticated, the device by name and id; never a body or a query value.
 * A response being sent is bounded by the idle timeout, not the request deadline.
 * hub_server_stop(NULL) is a no-op; *out is NULL on failure.
 */
#ifndef CMC_HUB_SERVER_H
#define CMC_HUB_SERVER_H

#include "hub/hub.h"

#include <stdint.h>

struct hub_server_opts {
    const char *host;          /* IPv4 or IPv6 literal, or "localhost" */
    uint16_t port;             /* 0: any free port (see hub_server_port) */
    const char *tls_cert_path; /* PEM; both or neither */
    const char *tls_key_path;
    unsigned timeout_s;        /* idle connection timeout; 0 = HUB_IDLE_TIMEOUT */
    unsigned threads;          /* 0 = HUB_THREADS */
    unsigned max_connections;  /* 0 = HUB_MAX_CONNECTIONS */
    unsigned per_ip;           /* connections one address may hold; 0 = HUB_PER_IP */
    unsigned deadline_s;       /* a request's headers and body; 0 = HUB_REQUEST_DEADLINE */
    unsigned enroll_per_minute; /* per address; 0 = HUB_ENROLL_PER_MINUTE */
    const char *metrics_host;  /* NULL: /metrics on the API listener */
    uint16_t metrics_port;
};

#define HUB_IDLE_TIMEOUT 15
#define HUB_THREADS 8
#define HUB_MAX_CONNECTIONS 1024
#define HUB_PER_IP 32
#define HUB_REQUEST_DEADLINE 20
#define HUB_ENROLL_PER_MINUTE 10
/* GnuTLS priority string: TLS 1.3 and 1.2 only, AEAD ciphers only, forward-secret key
 * exchange only (no CBC, no RSA key transport, no SHA-1 MACs). */
#define HUB_TLS_PRIORITIES                                                                  \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"     \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

typedef struct hub_server hub_server;

/* Starts serving `h` (which must outlive the server). */
int hub_server_start(hub *h, const struct hub_server_opts *opts, hub_server **out);
/* The port actually bound (the metrics port: hub_server_metrics_port, 0 when none). */
uint16_t hub_server_port(const hub_server *s);
uint16_t hub_server_metrics_port(const hub_server *s);
/* Stops accepting, finishes requests under way, frees. */
void hub_server_stop(hub_server *s);

/* Splits "HOST:PORT" ("[::1]:8443" for IPv6) into host (cap bytes) and port. */
int hub_parse_listen(const char *listen, char *host, size_t cap, uint16_t *port);

#endif
