/*
 * poll_idle.h - idle polls answered in one statement, beside the hub handle (PostgreSQL).
 *
 * Most of what thousands of devices send all day is a pull that finds nothing: the device is
 * at the head of the change log and nothing waits for it. On SQLCipher the hub handle answers
 * that at memory speed. On PostgreSQL the ordinary pull is eight requests to the server made
 * one after another under the node's one hub mutex, so a node serves one idle poll at a time
 * and most of that time waits on the socket. Here the question is one statement, on a
 * connection of its own, outside the hub mutex, for every poll that is waiting at that
 * moment (a batch of up to HUB_IDLE_BATCH): for each poll,
 *
 *   the device is active, its stored key is the one the server verified the signature with,
 *   no wipe order waits, its last pull was from this very cursor and nothing past it is
 *   unproven, the cursor is the head of the change log, no plan is stamped after it, no
 *   purge waits for its acknowledgement
 *     -> the nonce is recorded (refused if any node recorded it: replay), the lease in
 *        force is read, and last seen is noted to the minute (a second statement, at most
 *        once a minute per device);
 *   anything else -> nothing is recorded and the request goes the ordinary way, under the
 *     mutex, from the start (signature, nonce and all).
 *
 * The statement reads one snapshot. It takes no write lock (docs/HAZARDS.md H-35): writers
 * hold the lock from BEGIN to COMMIT, so any snapshot sees a prefix of the change log and a
 * head read in it is a head every earlier change is committed under. A change committed just
 * after the snapshot is the next poll's, as it would be for a pull that ran a moment sooner.
 * The nonce rows are committed without waiting for the WAL flush (synchronous_commit off on
 * these connections only; H-41).
 *
 * Threads: hub_idle_check is called from any number of threads at once. A caller queues its
 * poll; whichever caller finds a connection free takes every queued poll (its own or
 * others') to the store and wakes their callers with their rows, so polls that arrive while
 * a batch is at the store go together in the next one and nobody waits longer than one
 * statement behind. hub_idle_close(NULL) is a no-op; it must not race a check. Every
 * function returns a cmc_err unless it says otherwise.
 */
#ifndef CMC_HUB_POLL_IDLE_H
#define CMC_HUB_POLL_IDLE_H

#include "crypto/cry.h"
#include "hub/hub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hub_idle hub_idle;

/* Connections a server keeps for idle polls. One: polls that arrive while a batch is at the
 * store go together in the next, and fewer, larger statements cost the store less than
 * more, smaller ones (docs/BENCHMARKS.md, "PostgreSQL": 5,803 polls/s on one node with one
 * connection, 4,409 with two). */
#define HUB_IDLE_CONNS 1

/* Up to `conns` connections to the store at `url` (hub_db_url()), each opened on first use
 * (and again after a failure). */
int hub_idle_open(const char *url, unsigned conns, hub_idle **out);
void hub_idle_close(hub_idle *ip);

enum hub_idle_state {
    HUB_IDLE_NOT = 0, /* not idle, or not known: nothing recorded */
    HUB_IDLE_YES,     /* idle: the nonce is recorded */
    HUB_IDLE_REPLAY,  /* idle, but the nonce was recorded before */
};

struct hub_idle_row {
    enum hub_idle_state state;
    int64_t lease_days; /* in force (device, else scope, else HUB_LEASE_DAYS) */
    char name[HUB_NAME_MAX + 1]; /* the device's name, for the log */
};

/* Asks the store whether a pull from `cursor` (with applied == cursor) by `device_id`,
 * signed with the key `pk` and nonce `nonce` at `now`, finds nothing, and records the nonce
 * when it does. device_id and nonce are as reqsig_parse checked them. A store failure is
 * returned with nothing known (out->state HUB_IDLE_NOT); the nonce may then be recorded or
 * not, as for any request the store lost the answer to. */
int hub_idle_check(hub_idle *ip, const char *device_id, const char *nonce, int64_t now,
                   const uint8_t pk[CRY_SIGN_PK_BYTES], uint64_t cursor,
                   struct hub_idle_row *out);

/* Polls asked about and found idle, for tests (the server logs them with the statements
 * at close). */
void hub_idle_counts(hub_idle *ip, uint64_t *checked, uint64_t *idle);

#endif
