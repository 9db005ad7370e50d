/*
 * guard.c - request deadlines and enrollment rate limits (hub/guard.h).
 */
#include "hub/guard.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define HUB_RATE_SLOTS 1024 /* addresses remembered for the enrollment limit */

struct hub_guard_conn {
    struct hub_guard_conn *next;
    struct hub_guard_conn **pprev; /* what points at this one: the list's head or a next */
    int fd;
    uint64_t since_ns; /* opened, or last answered */
    int answering;
    int cut;           /* shut down by the deadline or the per-address limit */
    int device;        /* carried an authenticated device's request: not counted per address */
    uint8_t addr[16];  /* IPv4 in the first 4 bytes, or IPv6 */
};

struct hub_rate_slot {
    uint8_t addr[16];
    int used;
    uint64_t window_ns; /* start of the current minute */
    unsigned count;
};

struct hub_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int timer_started, stopping;
    uint64_t deadline_ns;
    unsigned enroll_per_minute;
    unsigned per_ip;
    hub_metrics *metrics;
    struct hub_guard_conn *conns;
    struct hub_rate_slot *rate; /* HUB_RATE_SLOTS */
};

static void hub_guard_sweep(hub_guard *g)
{
    uint64_t now = plat_mono_now_ns();
    for (struct hub_guard_conn *c = g->conns; c != NULL; c = c->next) {
        if (c->answering || c->cut || now - c->since_ns < g->deadline_ns)
            continue;
        /* libmicrohttpd sees the connection end and closes it itself. */
        shutdown(c->fd, SHUT_RDWR);
        c->cut = 1;
        hub_metrics_limit(g->metrics, "deadline");
    }
}

static void *hub_guard_timer(void *arg)
{
    hub_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        plat_cond_wait_ms(&g->cv, &g->mu, 250);
        if (!g->stopping)
            hub_guard_sweep(g);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int hub_guard_start(unsigned deadline_s, unsigned enroll_per_minute, hub_metrics *m,
                    hub_guard **out)
{
    hub_guard *g = cmc_calloc(1, sizeof *g);
    *out = NULL;
    if (g == NULL || (g->rate = cmc_calloc(HUB_RATE_SLOTS, sizeof *g->rate)) == NULL) {
        cmc_free(g);
        return cmc_fail(CMC_ERR_NOMEM, "server");
    }
    g->deadline_ns = (uint64_t)deadline_s * 1000000000ull;
    g->enroll_per_minute = enroll_per_minute;
    g->metrics = m;
    pthread_mutex_init(&g->mu, NULL);
    plat_cond_init_mono(&g->cv);
    g->timer_started = pthread_create(&g->timer, NULL, hub_guard_timer, g) == 0;
    if (!g->timer_started) {
        hub_guard_stop(g);
        return cmc_fail(CMC_ERR_IO, "server: cannot start the deadline timer");
    }
    *out = g;
    return CMC_OK;
}

void hub_guard_stop(hub_guard *g)
{
    if (g == NULL)
        return;
    if (g->timer_started) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->timer, NULL);
    }
    while (g->conns != NULL) {
        struct hub_guard_conn *c = g->conns;
        g->conns = c->next;
        cmc_free(c);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    cmc_free(g->rate);
    cmc_free(g);
}

struct hub_guard_conn *hub_guard_open(hub_guard *g, int fd, const struct sockaddr *addr)
{
    struct hub_guard_conn *c = cmc_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->since_ns = plat_mono_now_ns();
    if (addr != NULL && addr->sa_family == AF_INET)
        memcpy(c->addr, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
    else if (addr != NULL && addr->sa_family == AF_INET6)
        memcpy(c->addr, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
    pthread_mutex_lock(&g->mu);
    if (g->per_ip > 0) {
        unsigned same = 0;
        for (struct hub_guard_conn *o = g->conns; o != NULL; o = o->next)
            same += !o->device && !o->cut && memcmp(o->addr, c->addr, sizeof c->addr) == 0;
        if (same >= g->per_ip) {
            /* libmicrohttpd sees the connection end and closes it itself. */
            shutdown(fd, SHUT_RDWR);
            c->cut = 1;
            hub_metrics_limit(g->metrics, "per_ip");
        }
    }
    c->next = g->conns;
    if (g->conns != NULL)
        g->conns->pprev = &c->next;
    c->pprev = &g->conns;
    g->conns = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void hub_guard_per_ip(hub_guard *g, unsigned per_ip)
{
    pthread_mutex_lock(&g->mu);
    g->per_ip = per_ip;
    pthread_mutex_unlock(&g->mu);
}

void hub_guard_close(hub_guard *g, struct hub_guard_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    *c->pprev = c->next;
    if (c->next != NULL)
        c->next->pprev = c->pprev;
    pthread_mutex_unlock(&g->mu);
    cmc_free(c);
}

void hub_guard_mark(hub_guard *g, struct hub_guard_conn *c, enum hub_guard_event ev)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    switch (ev) {
    case HUB_GUARD_ANSWERING:
        c->answering = 1;
        break;
    case HUB_GUARD_ANSWERED:
        c->answering = 0;
        c->since_ns = plat_mono_now_ns();
        break;
    case HUB_GUARD_DEVICE:
        c->device = 1;
        break;
    }
    pthread_mutex_unlock(&g->mu);
}

int hub_guard_enroll_wait(hub_guard *g, const struct hub_guard_conn *c)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    struct hub_rate_slot *r;
    uint64_t now = plat_mono_now_ns(), minute = 60ull * 1000000000ull;
    int wait = 0;
    if (c == NULL || g->enroll_per_minute == 0)
        return 0;
    for (size_t i = 0; i < sizeof c->addr; i++)
        x = (x ^ c->addr[i]) * 16777619u;
    pthread_mutex_lock(&g->mu);
    r = &g->rate[x % HUB_RATE_SLOTS];
    /* A slot another address took starts afresh: at worst an address gets a new minute. */
    if (!r->used || memcmp(r->addr, c->addr, sizeof r->addr) != 0 || now - r->window_ns >= minute) {
        memcpy(r->addr, c->addr, sizeof r->addr);
        r->used = 1;
        r->window_ns = now;
        r->count = 0;
    }
    if (r->count >= g->enroll_per_minute)
        wait = (int)((minute - (now - r->window_ns)) / 1000000000ull) + 1;
    else
        r->count++;
    pthread_mutex_unlock(&g->mu);
    if (wait > 0)
        hub_metrics_limit(g->metrics, "enroll_rate");
    return wait;
}
