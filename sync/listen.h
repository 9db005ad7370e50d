/*
 * listen.h - a server's --listen option (HOST:PORT, or [IPv6]:PORT) split into its host and
 * port, for both programs' servers (the agent's crew page, the hub).
 *
 * No allocation, no state; safe from any thread. Errors are CMC_ERR_USAGE with one line
 * naming what is wrong, in the caller's words for the form it wants.
 */
#ifndef CMC_SYNC_LISTEN_H
#define CMC_SYNC_LISTEN_H

#include <stddef.h>
#include <stdint.h>

/* How a caller words the two forms in its usage errors, e.g. "give 127.0.0.1:PORT" and
 * "give [::1]:PORT for IPv6". */
struct listen_words {
    const char *v4;
    const char *v6;
};

/* Splits `spec`: the host (without brackets; `*bracketed` set when it had them) into host[cap]
 * and the port (0 to 65535, decimal digits only) into *port. */
int listen_split(const char *spec, const struct listen_words *words, char *host, size_t cap,
                 int *bracketed, uint16_t *port);

#endif
