/*
 * metrics.c - request counters, latency histograms and store gauges (hub/metrics.h).
 */
#include "hub/metrics.h"
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const hub_endpoints[] = {"enroll", "pull",    "push",    "ack",  "audit", "wait",
                                            "tls-pins", "healthz", "metrics", "other"};
#define N_ENDPOINTS (sizeof hub_endpoints / sizeof hub_endpoints[0])
static const int hub_statuses[] = {200, 204, 400, 401, 403, 404, 405, 409, 410, 413, 414, 429,
                                   500, 503, 0 /* any other */};
#define N_STATUSES (sizeof hub_statuses / sizeof hub_statuses[0])
/* Upper bounds in seconds (Prometheus "le"), then +Inf. */
static const double hub_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof hub_buckets / sizeof hub_buckets[0])
static const char *const hub_limits[] = {"per_ip", "deadline", "enroll_rate"};
#define N_LIMITS (sizeof hub_limits / sizeof hub_limits[0])

struct hub_metrics {
    pthread_mutex_t mu;
    uint64_t requests[N_ENDPOINTS][N_STATUSES];
    uint64_t bucket[N_ENDPOINTS][N_BUCKETS + 1];
    double seconds[N_ENDPOINTS];
    uint64_t count[N_ENDPOINTS];
    uint64_t store_errors;
    uint64_t limited[N_LIMITS];
    uint64_t waits_held; /* GET /v1/wait requests held open now (hub_metrics_set_waits) */
};

int hub_metrics_new(hub_metrics **out)
{
    hub_metrics *m = cmc_calloc(1, sizeof *m);
    *out = NULL;
    if (m == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "metrics");
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return CMC_OK;
}

void hub_metrics_free(hub_metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    cmc_free(m);
}

const char *hub_metrics_endpoint(const char *target)
{
    size_t n = target != NULL ? strcspn(target, "?") : 0;
    if (n > 4 && strncmp(target, "/v1/", 4) == 0) {
        for (size_t i = 0; i < 7; i++) /* the /v1/ endpoints */
            if (strlen(hub_endpoints[i]) == n - 4 && strncmp(target + 4, hub_endpoints[i], n - 4) == 0)
                return hub_endpoints[i];
    }
    if (n == 8 && strncmp(target, "/healthz", 8) == 0)
        return "healthz";
    if (n == 8 && strncmp(target, "/metrics", 8) == 0)
        return "metrics";
    return "other";
}

static size_t hub_endpoint_index(const char *endpoint)
{
    for (size_t i = 0; i < N_ENDPOINTS; i++)
        if (strcmp(hub_endpoints[i], endpoint) == 0)
            return i;
    return N_ENDPOINTS - 1;
}

void hub_metrics_observe(hub_metrics *m, const char *endpoint, int status, uint64_t micros)
{
    size_t e = hub_endpoint_index(endpoint), s = N_STATUSES - 1, b = 0;
    double secs = (double)micros / 1e6;
    if (m == NULL)
        return;
    for (size_t i = 0; i + 1 < N_STATUSES; i++)
        if (hub_statuses[i] == status)
            s = i;
    while (b < N_BUCKETS && secs > hub_buckets[b])
        b++;
    pthread_mutex_lock(&m->mu);
    m->requests[e][s]++;
    m->bucket[e][b]++;
    m->seconds[e] += secs;
    m->count[e]++;
    if (status >= 500)
        m->store_errors++;
    pthread_mutex_unlock(&m->mu);
}

void hub_metrics_limit(hub_metrics *m, const char *which)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < N_LIMITS; i++) {
        if (strcmp(hub_limits[i], which) == 0) {
            pthread_mutex_lock(&m->mu);
            m->limited[i]++;
            pthread_mutex_unlock(&m->mu);
        }
    }
}

void hub_metrics_set_waits(hub_metrics *m, size_t held)
{
    pthread_mutex_lock(&m->mu);
    m->waits_held = held;
    pthread_mutex_unlock(&m->mu);
}

static int64_t hub_count(hub *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int hub_metrics_gauges(hub *h, struct hub_gauges *out)
{
    memset(out, 0, sizeof *out);
    out->devices_active = hub_count(h, "SELECT COUNT(*) FROM devices WHERE state = 'active'");
    out->devices_pending = hub_count(h, "SELECT COUNT(*) FROM devices WHERE state = 'pending'");
    out->pending_purges = hub_count(h, "SELECT COUNT(*) FROM purges WHERE acked IS NULL");
    out->audit_alarms =
        hub_count(h, "SELECT (SELECT COUNT(*) FROM (SELECT DISTINCT device_id, fork FROM audit"
                     " WHERE fork > 0)) + (SELECT COUNT(*) FROM devices WHERE audit_alarm IS NOT"
                     " NULL AND device_id NOT IN (SELECT device_id FROM audit WHERE fork > 0))");
    out->plans = hub_count(h, "SELECT COUNT(*) FROM plans WHERE withdrawn = 0");
    if (out->devices_active < 0 || out->pending_purges < 0 || out->plans < 0)
        return cmc_fail(CMC_ERR_DB, "metrics: the store could not be read");
    return CMC_OK;
}

struct hub_buf {
    char *p;
    size_t len, cap;
    int failed;
};

/* Room for `more` bytes after the text, growing the buffer when needed; 0 when there is
 * no memory for it. */
static int hub_buf_room(struct hub_buf *b, size_t more)
{
    char *np;
    size_t ncap = b->cap * 2 + more;
    if (b->cap - b->len >= more)
        return 1;
    if ((np = cmc_realloc(b->p, ncap)) == NULL)
        return 0;
    b->p = np;
    b->cap = ncap;
    return 1;
}

/* Appends formatted text: measured first, then written once there is room for it. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void hub_put(struct hub_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !hub_buf_room(b, (size_t)n + 1)) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void hub_render_requests(hub_metrics *m, struct hub_buf *b)
{
    hub_put(b, "# HELP cmc_hub_requests_total Requests answered, by endpoint and status.\n"
               "# TYPE cmc_hub_requests_total counter\n");
    for (size_t e = 0; e < N_ENDPOINTS; e++)
        for (size_t s = 0; s < N_STATUSES; s++)
            if (m->requests[e][s] > 0) {
                if (hub_statuses[s] != 0)
                    hub_put(b, "cmc_hub_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                            hub_endpoints[e], hub_statuses[s],
                            (unsigned long long)m->requests[e][s]);
                else
                    hub_put(b, "cmc_hub_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n",
                            hub_endpoints[e], (unsigned long long)m->requests[e][s]);
            }
    hub_put(b, "# HELP cmc_hub_request_duration_seconds Time to answer a request, by endpoint.\n"
               "# TYPE cmc_hub_request_duration_seconds histogram\n");
    for (size_t e = 0; e < N_ENDPOINTS; e++) {
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            cum += m->bucket[e][k];
            if (k < N_BUCKETS)
                hub_put(b, "cmc_hub_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"}"
                           " %llu\n", hub_endpoints[e], hub_buckets[k], (unsigned long long)cum);
            else
                hub_put(b, "cmc_hub_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"}"
                           " %llu\n", hub_endpoints[e], (unsigned long long)cum);
        }
        hub_put(b, "cmc_hub_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n",
                hub_endpoints[e], m->seconds[e]);
        hub_put(b, "cmc_hub_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                hub_endpoints[e], (unsigned long long)m->count[e]);
    }
    hub_put(b, "# HELP cmc_hub_store_errors_total Requests answered 5xx (store or server error).\n"
               "# TYPE cmc_hub_store_errors_total counter\ncmc_hub_store_errors_total %llu\n",
            (unsigned long long)m->store_errors);
    hub_put(b, "# HELP cmc_hub_limited_total Connections or requests refused by a limit.\n"
               "# TYPE cmc_hub_limited_total counter\n");
    for (size_t i = 0; i < N_LIMITS; i++)
        hub_put(b, "cmc_hub_limited_total{limit=\"%s\"} %llu\n", hub_limits[i],
                (unsigned long long)m->limited[i]);
}

int hub_metrics_render(hub_metrics *m, hub *h, char **out, size_t *len)
{
    struct hub_buf b = {NULL, 0, 0, 0};
    struct hub_gauges g;
    *out = NULL;
    *len = 0;
    if ((b.p = cmc_malloc(8192)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "metrics");
    b.cap = 8192;
    b.p[0] = '\0';
    pthread_mutex_lock(&m->mu);
    hub_render_requests(m, &b);
    hub_put(&b, "# HELP cmc_hub_waits_held Devices' waits for a change held open now.\n"
                "# TYPE cmc_hub_waits_held gauge\ncmc_hub_waits_held %llu\n",
            (unsigned long long)m->waits_held);
    pthread_mutex_unlock(&m->mu);
    if (h != NULL && hub_metrics_gauges(h, &g) == CMC_OK) {
        hub_put(&b, "# HELP cmc_hub_up The store answered this scrape.\n"
                    "# TYPE cmc_hub_up gauge\ncmc_hub_up 1\n");
        hub_put(&b, "# HELP cmc_hub_devices Devices by state.\n# TYPE cmc_hub_devices gauge\n"
                    "cmc_hub_devices{state=\"active\"} %lld\ncmc_hub_devices{state=\"pending\"}"
                    " %lld\n", (long long)g.devices_active, (long long)g.devices_pending);
        hub_put(&b, "# HELP cmc_hub_pending_purges Purges sent and not yet acknowledged.\n"
                    "# TYPE cmc_hub_pending_purges gauge\ncmc_hub_pending_purges %lld\n",
                (long long)g.pending_purges);
        hub_put(&b, "# HELP cmc_hub_audit_alarms View logs that forked (a device restored from"
                    " an older copy) or failed their seals.\n# TYPE cmc_hub_audit_alarms gauge\ncmc_hub_audit_alarms"
                    " %lld\n", (long long)(g.audit_alarms < 0 ? 0 : g.audit_alarms));
        hub_put(&b, "# HELP cmc_hub_plans Plans shared (consent not withdrawn).\n"
                    "# TYPE cmc_hub_plans gauge\ncmc_hub_plans %lld\n", (long long)g.plans);
    } else {
        hub_put(&b, "# TYPE cmc_hub_up gauge\ncmc_hub_up 0\n");
    }
    if (b.failed) {
        cmc_free(b.p);
        return cmc_fail(CMC_ERR_NOMEM, "metrics");
    }
    *out = b.p;
    *len = b.len;
    return CMC_OK;
}
