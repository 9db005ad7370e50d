/*
 * server.h - the hub's HTTP(S) server: libmicrohttpd in front of hub_api_handle.
 *
 * HTTPS (GnuTLS through libmicrohttpd's MHD_USE_TLS) when a certificate and key are given,
 * plain HTTP otherwise (for tests behind a TLS-terminating proxy only). The server bounds
 * what a client can make it hold: request bodies over HUB_MAX_REQUEST are answered 413
 * (from Content-Length before reading, or while reading a chunked body), idle connections
 * are closed after a timeout, and the number of connections is capped.
 *
 * Threads: a small pool of libmicrohttpd threads; requests are served one at a time on the
 * one hub handle (a mutex), which keeps SQLite's one-connection-per-thread rule simple.
 * SQLite's WAL lets the command-line tool write while the server runs.
 *
 * Logs name the method, endpoint, status and device id, never a body or a query value
 * beyond the cursor. hub_server_stop(NULL) is a no-op; *out is NULL on failure.
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
    unsigned timeout_s;        /* idle connection timeout; 0 = 30 */
    unsigned threads;          /* 0 = 4 */
};

typedef struct hub_server hub_server;

/* Starts serving `h` (which must outlive the server). */
int hub_server_start(hub *h, const struct hub_server_opts *opts, hub_server **out);
/* The port actually bound. */
uint16_t hub_server_port(const hub_server *s);
/* Stops accepting, finishes requests under way, frees. */
void hub_server_stop(hub_server *s);

/* Splits "HOST:PORT" ("[::1]:8443" for IPv6) into host (cap bytes) and port. */
int hub_parse_listen(const char *listen, char *host, size_t cap, uint16_t *port);

#endif
