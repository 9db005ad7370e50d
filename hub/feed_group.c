/*
 * feed_group.c - group commit of pulls and purge acknowledgements (hub/feed_group.h).
 *
 * State, all under the hub mutex except `coming`: whether the shared transaction is open,
 * whether a member is inside its savepoint now (one at a time: the mutex), and the members
 * that have finished their work and wait for the commit, each with its own result slot on its
 * own stack, so a member that wakes late reads its own commit's result and not a later one's.
 */
#include "hub/feed_group.h"
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A member waits at most this long between looks, so it never depends on a wake-up alone. */
#define HUB_GROUP_LOOK_MS 20

struct hub_group_member {
    int done, rc;
    char detail[256];
    struct hub_group_member *next;
};

struct hub_group {
    pthread_mutex_t *mu;
    pthread_cond_t ended;    /* a commit ended: members look at their slot */
    atomic_uint coming;      /* requests waiting for the mutex (hub_group_lock) */
    int open;                /* the shared transaction is open */
    int active;              /* a member is inside its savepoint */
    struct hub_group_member *waiting;
    uint64_t commits;
};

int hub_group_attach(hub *h, pthread_mutex_t *mu)
{
    struct hub_group *g;
    pthread_condattr_t ca;

    if (h->group != NULL || hst_kind(h->db) != HST_SQLITE)
        return CMC_OK;
    if ((g = cmc_calloc(1, sizeof *g)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "group commit");
    g->mu = mu;
    atomic_init(&g->coming, 0);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->ended, &ca);
    pthread_condattr_destroy(&ca);
    h->group = g;
    return CMC_OK;
}

void hub_group_detach(hub *h)
{
    struct hub_group *g = h != NULL ? h->group : NULL;
    if (g == NULL)
        return;
    pthread_mutex_lock(g->mu);
    hub_group_flush(h);
    h->group = NULL;
    pthread_mutex_unlock(g->mu);
    pthread_cond_destroy(&g->ended);
    cmc_free(g);
}

void hub_group_lock(hub *h, pthread_mutex_t *mu)
{
    struct hub_group *g = h->group;
    if (g != NULL)
        atomic_fetch_add(&g->coming, 1);
    pthread_mutex_lock(mu);
    if (g != NULL)
        atomic_fetch_sub(&g->coming, 1);
}

void hub_group_unlock(hub *h, pthread_mutex_t *mu)
{
    struct hub_group *g = h->group;
    if (g != NULL && g->open && atomic_load(&g->coming) == 0)
        hub_group_flush(h);
    pthread_mutex_unlock(mu);
}

/* Ends the group: every waiting member gets rc and detail. */
static void hub_group_answer(struct hub_group *g, int rc, const char *detail)
{
    for (struct hub_group_member *m = g->waiting; m != NULL; m = m->next) {
        m->rc = rc;
        snprintf(m->detail, sizeof m->detail, "%s", detail);
        m->done = 1;
    }
    g->waiting = NULL;
    g->open = 0;
    pthread_cond_broadcast(&g->ended);
}

void hub_group_flush(hub *h)
{
    struct hub_group *g = h->group;
    int rc;
    if (g == NULL || !g->open || g->active)
        return;
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        hub_tx_rollback(h);
    else
        g->commits++;
    hub_group_answer(g, rc, rc != CMC_OK ? cmc_errmsg() : "");
}

int hub_group_begin(hub *h)
{
    struct hub_group *g = h->group;
    int rc;
    if (g == NULL)
        return hub_tx_begin(h);
    if (!g->open) {
        if ((rc = hub_tx_begin(h)) != CMC_OK)
            return rc;
        g->open = 1;
    }
    if ((rc = hub_db_exec(h, "SAVEPOINT hub_member")) != CMC_OK) {
        if (g->waiting == NULL) { /* nobody else's work in it: close it */
            hub_tx_rollback(h);
            g->open = 0;
        }
        return rc;
    }
    g->active = 1;
    return CMC_OK;
}

/* Waits, the mutex released, until the member's commit has ended or nobody else is coming
 * to join it (then commits it itself). */
static void hub_group_wait(hub *h, struct hub_group *g, struct hub_group_member *me)
{
    while (!me->done) {
        if (atomic_load(&g->coming) == 0) {
            hub_group_flush(h);
            /* A waiting member means an open group nobody is inside, so the flush answered
             * it; should that ever not hold, the members are refused, never told "durable". */
            if (!me->done)
                hub_group_answer(g, CMC_ERR_STATE, "group commit: no transaction to commit");
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HUB_GROUP_LOOK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->ended, g->mu, &ts);
    }
}

int hub_group_commit(hub *h)
{
    struct hub_group *g = h->group;
    struct hub_group_member me;
    int rc;
    if (g == NULL)
        return hub_tx_commit(h);
    hub_stmt_reset_all(h);
    if ((rc = hub_db_exec(h, "RELEASE hub_member")) != CMC_OK)
        return rc; /* still active: the caller's hub_group_rollback undoes it */
    g->active = 0;
    memset(&me, 0, sizeof me);
    me.next = g->waiting;
    g->waiting = &me;
    hub_group_wait(h, g, &me);
    if (me.rc != CMC_OK)
        return cmc_fail(me.rc, "%s", me.detail);
    return CMC_OK;
}

void hub_group_rollback(hub *h)
{
    struct hub_group *g = h->group;
    if (g == NULL) {
        hub_tx_rollback(h);
        return;
    }
    if (!g->active)
        return; /* its commit failed and was rolled back already, or it never began */
    g->active = 0;
    hub_stmt_reset_all(h);
    if (sqlite3_exec(h->db, "ROLLBACK TO hub_member; RELEASE hub_member", NULL, NULL, NULL) !=
            SQLITE_OK ||
        g->waiting == NULL) {
        /* Nobody else's work is open, or the savepoint could not be undone alone: the whole
         * transaction goes, and every member waiting for it is refused. The caller's detail
         * stays its own. */
        hub_tx_rollback(h);
        hub_group_answer(g, CMC_ERR_DB, "group commit: another request's failure undid it");
    }
}

int hub_group_finish(hub *h, int rc)
{
    /* A member that failed undoes its savepoint; one whose commit failed finds it undone. */
    if (rc != CMC_OK || (rc = hub_group_commit(h)) != CMC_OK)
        hub_group_rollback(h);
    return rc;
}

uint64_t hub_group_commits(hub *h)
{
    return h->group != NULL ? h->group->commits : 0;
}

unsigned hub_group_coming(hub *h)
{
    return h->group != NULL ? atomic_load(&h->group->coming) : 0;
}
