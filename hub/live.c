/*
 * live.c - held waits and the thread that answers them (hub/live.h).
 */
#include "hub/live.h"

#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct hub_live {
    hub *h;
    pthread_mutex_t *hub_mu;
    pthread_mutex_t mu; /* the list, stopping; taken inside hub_mu when both are */
    pthread_cond_t cv;
    pthread_t thread;
    int started, stopping;
    struct hub_live_wait *waits;
    size_t n_waits;
    /* the signals as last seen (the thread's own, read under hub_mu) */
    sqlite3_stmt *data_version;
    int64_t last_version;
    uint64_t last_head, last_kick;
    int seen; /* the signals were read at least once */
    unsigned ticks; /* looks since start, for a shared store's slower full look */
    hst_listen *listen; /* a shared store: the other nodes' commits (NULL when none) */
    int heard;          /* the listener said look, not yet looked */
    atomic_uint_fast64_t notified; /* times the listener said look */
};

/* On a shared store whose listener is down: a full look every this many ticks (1 s at
 * 100 ms a tick). */
#define HUB_LIVE_SHARED_LOOK 10

static atomic_uint_fast64_t hub_live_kicks;

void hub_live_kick(void)
{
    atomic_fetch_add(&hub_live_kicks, 1);
}

/* Under l->mu. */
static void hub_live_unlink(hub_live *l, struct hub_live_wait *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        l->waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
    l->n_waits--;
}

/* Answers the waits on a list made of their `next` links (already unlinked), outside l->mu. */
static void hub_live_resume_list(struct hub_live_wait *list)
{
    while (list != NULL) {
        struct hub_live_wait *w = list;
        list = w->next;
        w->next = NULL;
        w->resume(w->arg);
    }
}

/* Under l->mu: moves every wait past its deadline (all of them when `all`) onto *out. */
static void hub_live_take_expired(hub_live *l, int all, struct hub_live_wait **out)
{
    uint64_t now = plat_mono_now_ns();
    struct hub_live_wait *w = l->waits;
    while (w != NULL) {
        struct hub_live_wait *next = w->next;
        if (all || now >= w->deadline_ns) {
            hub_live_unlink(l, w);
            w->result = HUB_LIVE_TIMEOUT;
            w->next = *out;
            *out = w;
        }
        w = next;
    }
}

/* Under hub_mu: whether anything moved since the last look. */
static int hub_live_signals(hub_live *l)
{
    int64_t version = l->last_version;
    uint64_t head = l->last_head, kicks = atomic_load(&hub_live_kicks);
    int moved;
    /* A shared store (PostgreSQL, several nodes) has no data_version: every commit that may
     * concern a held wait, on any node, NOTIFYs the listener (hst_listen_poll), and another
     * node's new changes also show in the change log's head. While the listener is down,
     * purges, wipe orders and lease changes (outside the log) are caught by a full look
     * every HUB_LIVE_SHARED_LOOK ticks. */
    int shared = hub_store_shared(l->h);
    int heard = l->heard;
    l->heard = 0;
    if (!shared && l->data_version == NULL &&
        sqlite3_prepare_v2(l->h->db, "PRAGMA data_version", -1, &l->data_version, NULL) != SQLITE_OK) {
        sqlite3_finalize(l->data_version);
        l->data_version = NULL;
    }
    if (l->data_version != NULL) {
        if (sqlite3_step(l->data_version) == SQLITE_ROW)
            version = sqlite3_column_int64(l->data_version, 0);
        sqlite3_reset(l->data_version);
    }
    if (hub_head_seq(l->h, &head) != CMC_OK)
        head = l->last_head + 1; /* cannot tell: look */
    /* No data_version on an embedded store (cannot tell): every tick looks. */
    moved = !l->seen || head != l->last_head || kicks != l->last_kick || heard ||
            (shared ? l->listen == NULL && ++l->ticks % HUB_LIVE_SHARED_LOOK == 0
                    : l->data_version == NULL || version != l->last_version);
    l->last_version = version;
    l->last_head = head;
    l->last_kick = kicks;
    l->seen = 1;
    return moved;
}

/* Under hub_mu and l->mu: moves every wait hub_pending now says yes to onto *out. */
static void hub_live_take_changed(hub_live *l, struct hub_live_wait **out)
{
    struct hub_live_wait *w = l->waits;
    while (w != NULL) {
        struct hub_live_wait *next = w->next;
        int pending = 1;
        (void)hub_pending(l->h, w->device_id, w->cursor, w->lease_days, &w->scanned, &pending);
        if (pending) {
            hub_live_unlink(l, w);
            w->result = HUB_LIVE_CHANGED;
            w->next = *out;
            *out = w;
        }
        w = next;
    }
}

static void hub_live_tick(hub_live *l)
{
    struct hub_live_wait *answer = NULL;
    int any;
    pthread_mutex_lock(&l->mu);
    hub_live_take_expired(l, 0, &answer);
    any = l->waits != NULL;
    pthread_mutex_unlock(&l->mu);
    hub_live_resume_list(answer);
    answer = NULL;
    if (l->listen != NULL) {
        int got = hst_listen_poll(l->listen);
        if (got != 0)
            l->heard = 1; /* heard, or lost and made again: look */
        if (got > 0)
            atomic_fetch_add(&l->notified, 1);
        if (got < 0 && ++l->ticks % HUB_LIVE_SHARED_LOOK == 0)
            l->heard = 1; /* down: look now and then */
    }
    if (!any) {
        l->seen = 0; /* the next wait is looked at on the first tick after it */
        return;
    }
    pthread_mutex_lock(l->hub_mu);
    if (hub_live_signals(l)) {
        pthread_mutex_lock(&l->mu);
        hub_live_take_changed(l, &answer);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(l->hub_mu);
    hub_live_resume_list(answer);
}

static void *hub_live_main(void *arg)
{
    hub_live *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HUB_LIVE_TICK_MS * 1000L * 1000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (l->stopping)
            break;
        pthread_mutex_unlock(&l->mu);
        hub_live_tick(l);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int hub_live_start(hub *h, pthread_mutex_t *hub_mu, hub_live **out)
{
    hub_live *l = cmc_calloc(1, sizeof *l);
    pthread_condattr_t ca;
    *out = NULL;
    if (l == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "change feed");
    l->h = h;
    l->hub_mu = hub_mu;
    /* Without a listener the waits still answer, from the slower full look. */
    if (hub_store_shared(h) && hub_db_url() != NULL &&
        hst_listen_open(hub_db_url(), &l->listen) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "change feed: cannot LISTEN for other nodes' commits (%s);"
                 " held waits look every second instead", cmc_errmsg());
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, hub_live_main, l) != 0) {
        hub_live_stop(l);
        return cmc_fail(CMC_ERR_IO, "change feed: cannot start its thread");
    }
    l->started = 1;
    *out = l;
    return CMC_OK;
}

void hub_live_stop(hub_live *l)
{
    struct hub_live_wait *answer = NULL;
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->started)
        pthread_join(l->thread, NULL);
    pthread_mutex_lock(&l->mu);
    hub_live_take_expired(l, 1, &answer);
    pthread_mutex_unlock(&l->mu);
    hub_live_resume_list(answer);
    if (l->data_version != NULL) {
        pthread_mutex_lock(l->hub_mu);
        sqlite3_finalize(l->data_version);
        pthread_mutex_unlock(l->hub_mu);
    }
    hst_listen_close(l->listen);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    cmc_free(l);
}

int hub_live_hold(hub_live *l, struct hub_live_wait *w)
{
    struct hub_live_wait *old = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        return cmc_fail(CMC_ERR_STATE, "the change feed is stopping");
    }
    for (struct hub_live_wait *o = l->waits; o != NULL; o = o->next) {
        if (strcmp(o->device_id, w->device_id) == 0) {
            hub_live_unlink(l, o);
            o->result = HUB_LIVE_TIMEOUT;
            old = o;
            break;
        }
    }
    w->result = HUB_LIVE_HELD;
    w->prev = NULL;
    w->next = l->waits;
    if (l->waits != NULL)
        l->waits->prev = w;
    l->waits = w;
    w->linked = 1;
    l->n_waits++;
    pthread_mutex_unlock(&l->mu);
    if (old != NULL)
        old->resume(old->arg);
    return CMC_OK;
}

void hub_live_release(hub_live *l, struct hub_live_wait *w)
{
    if (l == NULL || w == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    if (w->linked)
        hub_live_unlink(l, w);
    pthread_mutex_unlock(&l->mu);
}

uint64_t hub_live_notified(hub_live *l)
{
    return l->listen != NULL ? atomic_load(&l->notified) : 0;
}

size_t hub_live_held(hub_live *l)
{
    size_t n;
    pthread_mutex_lock(&l->mu);
    n = l->n_waits;
    pthread_mutex_unlock(&l->mu);
    return n;
}
