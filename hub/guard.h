/*
 * guard.h - the hub server's defences against clients that hold resources: a deadline for
 * each request (headers and body) that trickling cannot extend, and a per-address rate
 * limit on enrollment attempts.
 *
 * Every open connection is tracked from libmicrohttpd's connection notifications. A timer
 * thread shuts down (shutdown(2), never close: libmicrohttpd still owns the descriptor) any
 * connection that has not delivered a whole request within the deadline counted from its
 * opening or its previous answer; time spent answering does not count.
 *
 * One address may hold only so many connections (hub_guard_per_ip); a connection over the
 * limit is shut down as it opens. A connection that has carried an authenticated device's
 * request no longer counts: a fleet behind one address (a carrier's NAT) keeps one connection
 * a device open, most of them holding a wait (hub/live.h), and must still be able to open new
 * ones; the limit is for connections that have not shown who they are, and the total stays
 * bounded by the server's connection limit.
 *
 * Thread-safety: every function may be called from any thread (one mutex inside).
 * hub_guard_stop(NULL) is a no-op; *out is NULL on failure.
 */
#ifndef CMC_HUB_GUARD_H
#define CMC_HUB_GUARD_H

#include "hub/metrics.h"

#include <sys/socket.h>

typedef struct hub_guard hub_guard;
struct hub_guard_conn; /* one per open connection */

int hub_guard_start(unsigned deadline_s, unsigned enroll_per_minute, hub_metrics *m,
                    hub_guard **out);
void hub_guard_stop(hub_guard *g);

/* A connection opened (fd its socket) / closed. */
struct hub_guard_conn *hub_guard_open(hub_guard *g, int fd, const struct sockaddr *addr);
void hub_guard_close(hub_guard *g, struct hub_guard_conn *c);
/* What happened on a connection (hub_guard_mark). */
enum hub_guard_event {
    HUB_GUARD_ANSWERING, /* the request is whole and being answered: the deadline stops */
    HUB_GUARD_ANSWERED,  /* it was answered: a new deadline starts for the next request */
    HUB_GUARD_DEVICE     /* it carried an authenticated device's request */
};
/* Records an event on a connection. c may be NULL. */
void hub_guard_mark(hub_guard *g, struct hub_guard_conn *c, enum hub_guard_event ev);
/* The connections one address may hold, held waits aside (0: no limit, the default). */
void hub_guard_per_ip(hub_guard *g, unsigned per_ip);
/* 0 when an enrollment attempt from this connection's address may go ahead; otherwise the
 * seconds until it may (for Retry-After). */
int hub_guard_enroll_wait(hub_guard *g, const struct hub_guard_conn *c);

#endif
