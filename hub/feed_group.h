/*
 * feed_group.h - group commit: the durable writes of concurrent pulls and purge
 * acknowledgements share one transaction and one commit (one fsync) instead of one each.
 *
 * Why: every pull records what it gave the device (holdings) and every acknowledgement closes
 * purge records, and both must be durable before the device is answered: a withdrawal must
 * find every device that holds the plan. One fsync each serialises a wake-up of a thousand
 * devices on the disk. With the group, the server's threads that arrive together each do
 * their work under the hub mutex inside one open transaction (each in its own savepoint, so
 * one request's failure undoes only its own rows), then wait, with the mutex released, until
 * the last of them commits the transaction for all. A request is answered only after the
 * commit that holds its rows: the durability a device relies on is unchanged, only shared.
 *
 * Who commits: the server counts the requests that are waiting for the mutex (hub_group_lock).
 * A member that finds none coming commits at once; one that finds some waits for them, and
 * each of them either joins (a pull or an acknowledgement) or, being any other request, ends
 * the group: hub_tx_begin and hub_group_unlock commit an open group first. So a group never
 * waits for a request that is not already at the mutex, and a lone pull commits as before.
 *
 * A failed commit is rolled back whole and fails every member with the same error (nothing
 * was answered yet, so no device acts on what was lost); a member that fails before the commit
 * rolls back its savepoint only. Reads under the mutex while a group is open (a held wait's
 * check, metrics) see the group's rows; should the commit fail, they describe pulls whose
 * devices were all refused, which pull again.
 *
 * Off until hub_group_attach (the command line and most tests run without it: each write
 * then commits alone, exactly as hub_tx_begin/hub_tx_commit), and always off on a
 * PostgreSQL store, whose nodes commit each request themselves. Threads: hub_group_attach
 * before the server's threads start and hub_group_detach after they stop; hub_group_lock and
 * hub_group_coming from any thread; hub_group_commits with the mutex held or nothing running;
 * every other function with the mutex held (hub_group_commit releases it while it waits).
 */
#ifndef CMC_HUB_FEED_GROUP_H
#define CMC_HUB_FEED_GROUP_H

#include "hub/hub.h"

#include <pthread.h>
#include <stdint.h>

/* Turns grouping on for h, whose every use is under `mu` (which must outlive it). A no-op on
 * a PostgreSQL store. CMC_ERR_NOMEM. */
int hub_group_attach(hub *h, pthread_mutex_t *mu);
/* Commits any open group and turns grouping off; after the server stops. NULL-safe. */
void hub_group_detach(hub *h);

/* Takes mu for a request, counted as coming while it waits for it (so members wait for it). */
void hub_group_lock(hub *h, pthread_mutex_t *mu);
/* Commits an open group nobody else is coming to join, then releases mu. */
void hub_group_unlock(hub *h, pthread_mutex_t *mu);

/* A write that may share the group's commit: opens the group's transaction (or joins it) in
 * a savepoint of its own. Without grouping: hub_tx_begin. */
int hub_group_begin(hub *h);
/* Ends the member's work and returns once a commit holding it has ended: CMC_OK when it is
 * durable, else that commit's error (every member gets it). Without grouping: hub_tx_commit. */
int hub_group_commit(hub *h);
/* Undoes the member's own work (or nothing, when its commit already failed and rolled back).
 * Without grouping: hub_tx_rollback. */
void hub_group_rollback(hub *h);

/* hub_group_commit when rc is CMC_OK, then hub_group_rollback if either failed; the result
 * (hub_tx_end's contract). */
int hub_group_finish(hub *h, int rc);

/* Commits an open group (hub_tx_begin calls it before a transaction of its own). */
void hub_group_flush(hub *h);

/* Commits the group has made so far, and the requests waiting for the mutex now (for
 * tests and metrics). */
uint64_t hub_group_commits(hub *h);
unsigned hub_group_coming(hub *h);

#endif
