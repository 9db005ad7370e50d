/*
 * web.h - the crew's page: a local web view served by the agent on the device itself.
 *
 * `cmc-agent serve --listen 127.0.0.1:PORT` (loopback only) serves server-rendered HTML
 * (libmicrohttpd, plain HTTP on the loopback interface): unlock with user and PIN (the same
 * key slots and throttling as the CLI), find a patient by NHS number or by name, date of
 * birth and postcode, and the summary card in clinical order, the full plan and a print
 * view. Works with no network at all. docs/WEB.md describes the pages and their rules.
 *
 * Sessions: one unlocked session at a time (a new unlock locks the previous one). Unlocking
 * loads the key slots, waits out the slot file's throttle, unwraps the replica key and opens
 * the store for that (user, role); the key and the store handle live only in memory and are
 * closed and zeroed on "Lock", after CMC_WEB_IDLE_SECONDS without a request (default 180),
 * and when the server stops. The session id (cookie, HttpOnly, SameSite=Strict) and the
 * form token (hidden field, checked on every POST with Origin and Sec-Fetch-Site) are 32
 * random bytes each, compared in constant time.
 *
 * Patient data never goes into a URL (every search and view is a POST), a log line, a cookie
 * or browser storage; every page is sent with Cache-Control: no-store and a strict
 * Content-Security-Policy (no scripts at all). Every card, plan view, miss and search is
 * recorded in the audit log (agent/audit.h) before it is shown.
 *
 * Threads: libmicrohttpd's one internal thread serves requests; a mutex serialises them
 * with web_server_tick(), so the store handle is used by one thread at a time.
 * web_server_stop(NULL) is a no-op; web_server_start leaves *out NULL on failure.
 */
#ifndef CMC_WEB_H
#define CMC_WEB_H

#include <stdint.h>

/* Default idle time before an unlocked session locks itself (CMC_WEB_IDLE_SECONDS). */
#define WEB_IDLE_SECONDS_DEFAULT 180

struct web_config {
    const char *dir;          /* the agent's data directory (its WIPED marker is honoured) */
    const char *slots_path;   /* DIR/keyslots */
    const char *replica_path; /* DIR/replica.db */
    const char *host;         /* a loopback literal: "127.0.0.1" or "::1" */
    uint16_t port;            /* 0: any free port (see web_server_port) */
    int idle_seconds;         /* > 0 */
};

typedef struct web_server web_server;

/* Starts serving (the config's strings must outlive the server). */
int web_server_start(const struct web_config *cfg, web_server **out);
/* The port actually bound. */
uint16_t web_server_port(const web_server *s);
/* 1 while a session is unlocked. */
int web_server_unlocked(web_server *s);
/* Memory hygiene (web_mem.c, docs/WEB.md). web_mem_start: from now on freed blocks are
 * zeroed (cmc_alloc_wipe_on_free) and SQLCipher wipes what it frees (store_memory_security).
 * web_mem_locked: after a session is locked, freed heap goes back to the system. How many
 * unlocked sessions have been locked (the Lock button, idle, a new unlock, stop): for tests. */
void web_mem_start(void);
void web_mem_locked(void);
unsigned long web_lock_count(void);
/* Locks the session if it has been idle for idle_seconds (by the monotonic clock). */
void web_server_tick(web_server *s);
/* Stops serving, locks the session (closing the store, zeroing the key) and frees. */
void web_server_stop(web_server *s);

/* What `cmc-agent serve` needs from the command line. */
struct web_serve_opts {
    const char *listen;       /* "HOST:PORT", a loopback address */
    const char *dir;          /* the agent's data directory */
    const char *slots_path;   /* DIR/keyslots */
    const char *replica_path; /* DIR/replica.db */
};

/* `cmc-agent serve`: parses o->listen (loopback only), reads CMC_WEB_IDLE_SECONDS, prints
 * the page's address on stdout and serves until SIGINT/SIGTERM. Returns a cmc_err. */
int web_serve(const struct web_serve_opts *o);

#endif
