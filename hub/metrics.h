/*
 * metrics.h - the hub's counters for GET /metrics (Prometheus text format 0.0.4) and the
 * one-line-per-request log.
 *
 * Requests are counted by endpoint (a fixed list: anything else is "other", so a client
 * cannot grow the table) and status code, with a latency histogram per endpoint. Gauges
 * (devices active, pending purges, audit alarms) are read from the store when scraped.
 * Nothing here names a device, a plan or a patient.
 *
 * Thread-safety: hub_metrics_observe may be called from any thread (a mutex inside);
 * hub_metrics_render takes the hub handle, so the caller holds whatever serialises it.
 * Memory: hub_metrics_render hands out a cmc_malloc'd buffer the caller frees.
 */
#ifndef CMC_HUB_METRICS_H
#define CMC_HUB_METRICS_H

#include "hub/hub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hub_metrics hub_metrics;

int hub_metrics_new(hub_metrics **out);
void hub_metrics_free(hub_metrics *m); /* NULL is a no-op */

/* The endpoint label of a request target ("/v1/pull?cursor=3" -> "pull"). */
const char *hub_metrics_endpoint(const char *target);
/* Counts one answered request. */
void hub_metrics_observe(hub_metrics *m, const char *endpoint, int status, uint64_t micros);
/* Counts one connection refused or closed by a limit ("per_ip", "deadline", "enroll_rate"). */
void hub_metrics_limit(hub_metrics *m, const char *which);
/* How many GET /v1/wait requests are held open now (the cmc_hub_waits_held gauge). */
void hub_metrics_set_waits(hub_metrics *m, size_t held);

struct hub_gauges {
    int64_t devices_active;
    int64_t devices_pending;
    int64_t pending_purges;
    int64_t audit_alarms; /* view-log forks (a device restored from an older copy), and devices
                           * whose log failed its seals otherwise (hub/intake_seal.h) */
    int64_t plans;
};
/* Reads the gauges from the store. */
int hub_metrics_gauges(hub *h, struct hub_gauges *out);
/* The whole exposition; h may be NULL (gauges left out) when the store cannot be read. */
int hub_metrics_render(hub_metrics *m, hub *h, char **out, size_t *len);

#endif
