/*
 * live.h - the change feed: devices' held waits (GET /v1/wait) and the one thread that
 * answers them when something they hold may have changed.
 *
 * A device asks "anything for me after cursor C?". When hub_pending already says yes the
 * server answers at once; otherwise it parks the request here (libmicrohttpd suspends the
 * connection, so a held wait costs a socket and this record, not a thread) until one of:
 *   - a change is committed that concerns the device: hub_pending says so again (a plan in
 *     or leaving its view, a purge, a wipe order, a new lease); -> HUB_LIVE_CHANGED
 *   - the hold runs out (at most WIRE_WAIT_HOLD_MAX seconds); -> HUB_LIVE_TIMEOUT
 *   - the same device parks another wait, or the feed stops. -> HUB_LIVE_TIMEOUT
 * The waits are never checked by polling the devices' views on a timer: every
 * HUB_LIVE_TICK_MS the thread compares three cheap signals and only when one moved does it
 * ask hub_pending for each held wait (which rereads only plans stamped since its last look):
 *   - SQLite's PRAGMA data_version on the hub's connection: a commit by another connection,
 *     which is how `cmc-hub plan approve`, `device wipe`, `device lease` reach a server;
 *   - the change log's head: the server's own commits (a pushed edit, a FHIR write);
 *   - hub_live_kick(): anything else that knows the store changed;
 *   - on PostgreSQL (several nodes), a NOTIFY sent with every commit that may concern a held
 *     wait, on any node or by a `cmc-hub` command, heard on the feed's own LISTEN connection
 *     (hub/hstore.h, hst_listen_*); while that connection is down, a full look every second.
 * A resumed wait is answered by the server; the device then pulls as it always did, so
 * signatures, cursors and proofs are those of the pull.
 *
 * Memory: a struct hub_live_wait belongs to the caller (the server keeps it with the
 * request); between hub_live_hold and its resume the feed links it, and hub_live_release
 * unlinks it if it is still linked. resume(arg) is called exactly once per held wait: from
 * the feed's thread, or from hub_live_hold (a same device's older wait, with the caller's hub
 * mutex held) and hub_live_stop on the caller's thread. It must only schedule the answer
 * (libmicrohttpd's resume does) and never block or take the hub mutex.
 * Locks: the feed takes the hub handle's mutex (given at start) to ask hub_pending, and its
 * own mutex inside it; callers hold the hub mutex around hub_live_hold (the request was just
 * checked under it) and nothing around the rest.
 * hub_live_stop(NULL) is a no-op; *out is NULL on failure.
 */
#ifndef CMC_HUB_LIVE_H
#define CMC_HUB_LIVE_H

#include "hub/hub.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_LIVE_TICK_MS 100

typedef struct hub_live hub_live;

enum hub_live_result { HUB_LIVE_HELD = 0, HUB_LIVE_CHANGED, HUB_LIVE_TIMEOUT };

struct hub_live_wait {
    char device_id[PLAN_ID_LEN + 1];
    uint64_t cursor;     /* the device's committed cursor */
    int64_t lease_days;  /* as the device last received it; -1: not compared */
    uint64_t scanned;    /* hub_pending's place (start it at cursor) */
    uint64_t deadline_ns; /* plat_mono_now_ns() + the hold */
    int result;          /* enum hub_live_result, set before resume is called */
    void (*resume)(void *arg);
    void *arg;
    /* the feed's */
    struct hub_live_wait *prev, *next;
    int linked;
};

/* Starts the feed's thread for handle h, whose users serialise on *hub_mu. */
int hub_live_start(hub *h, pthread_mutex_t *hub_mu, hub_live **out);
/* Answers every held wait (HUB_LIVE_TIMEOUT) and stops the thread. */
void hub_live_stop(hub_live *l);
/* Parks w. Another wait of the same device is answered HUB_LIVE_TIMEOUT first (a device
 * watches once; a new wait means the old connection is gone). CMC_ERR_STATE when the feed
 * is stopping (answer the request at once). */
int hub_live_hold(hub_live *l, struct hub_live_wait *w);
/* Unlinks w if the feed still holds it (its connection ended without a resume). */
void hub_live_release(hub_live *l, struct hub_live_wait *w);
/* How many times this feed heard another commit on a shared store's LISTEN connection
 * (0 on SQLite, or when it could not LISTEN). */
uint64_t hub_live_notified(hub_live *l);
/* How many waits are held now. */
size_t hub_live_held(hub_live *l);

/* Something may have changed in the store: every feed in this process looks at its waits
 * on its next tick. Safe from any thread and from a signal handler. */
void hub_live_kick(void);

#endif
