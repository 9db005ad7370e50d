/*
 * engine_pull.c - the pull: pages downloaded, verified and decoded on two threads while the
 * calling thread applies them (engine_apply.c).
 */
#include "agent/engine_int.h"
#include "agent/engine_evidence.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/trace.h"
#include "sync/wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A page on its way through the pipeline: downloaded and verified (body), then decoded
 * (ops). Errors travel with it; the detail is copied because it is kept per thread. */
struct page {
    int rc;
    char err[512];
    struct bundle_header hdr;
    uint8_t *body;
    size_t len;
    struct bundle_op *ops;
    size_t n_ops;
};

static void page_free(struct page *pg)
{
    cmc_free(pg->body);
    bundle_ops_free(pg->ops, pg->n_ops);
    memset(pg, 0, sizeof *pg);
}

static void page_fail(struct page *pg, int rc)
{
    pg->rc = rc;
    snprintf(pg->err, sizeof pg->err, "%s", cmc_errmsg());
}

/* Three stages, each on its own thread, with room for one page between them: the download
 * (the hub builds the next page while this device decodes one and writes another), the
 * decode, and the apply on the calling thread. The hub takes only `applied`, the cursor this
 * replica has committed, as proof of what it holds; pages fetched ahead are unproven until
 * a later request names them (docs/PROTOCOL.md). */
struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_client *client;
    const struct enrollment *e;
    const struct engine_config *cfg;
    int64_t cursor;      /* where the download starts */
    unsigned max_pages;  /* 0: until the hub has no more */
    int64_t applied;     /* the committed cursor, named in each request */
    struct page raw, dec, spent;
    int has_raw, has_dec, has_spent;
    int stop, dl_done, dec_done;
    int rewound;         /* the hub answered "hub_rewound": it was restored from a backup */
    int rewound_has_head; /* and named where its restored change log ends: rewound_head */
    uint64_t rewound_head;
};

/* Waits until the slot is free (or the pipeline stops), then fills it. 0: stopped, the page
 * was not taken. */
static int pipe_put(struct pipeline *pp, struct page *slot, int *full, struct page *pg)
{
    pthread_mutex_lock(&pp->mu);
    while (*full && !pp->stop)
        pthread_cond_wait(&pp->cv, &pp->mu);
    int taken = !pp->stop;
    if (taken) {
        *slot = *pg;
        *full = 1;
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    return taken;
}

/* Waits for a page in the slot. 0: none will come (the stage before is done, or stopped). */
static int pipe_take(struct pipeline *pp, struct page *slot, int *full, const int *before_done,
                     struct page *out)
{
    pthread_mutex_lock(&pp->mu);
    while (!*full && !*before_done && !pp->stop)
        pthread_cond_wait(&pp->cv, &pp->mu);
    int got = *full && !pp->stop;
    if (got) {
        *out = *slot;
        memset(slot, 0, sizeof *slot);
        *full = 0;
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    return got;
}

static void pipe_done(struct pipeline *pp, int *flag)
{
    pthread_mutex_lock(&pp->mu);
    *flag = 1;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

static void *download_thread(void *arg)
{
    struct pipeline *pp = arg;
    int64_t cursor = pp->cursor;
    for (unsigned pages = 1;; pages++) {
        struct http_response resp;
        struct page pg;
        char path[128];
        memset(&pg, 0, sizeof pg);
        http_response_init(&resp);
        pthread_mutex_lock(&pp->mu);
        int64_t applied = pp->applied;
        int stop = pp->stop;
        pthread_mutex_unlock(&pp->mu);
        if (stop)
            break;
        /* GET /v1/pull from `cursor` for a replica that has committed `applied` */
        struct wire_pull_query q = { .cursor = (uint64_t)cursor, .applied = (uint64_t)applied,
                                     .budget = pp->cfg->page_budget, .schema = PLAN_EDITION_CURRENT,
                                     .codecs = WIRE_CODEC_BROTLI, .seal = 1 };
        int rc = wire_pull_path(&q, path, sizeof path);
        if (rc == CMC_OK)
            rc = http_request(pp->client, "GET", path, NULL, NULL, 0, 0, &resp);
        if (rc == CMC_ERR_CONFLICT && strncmp(resp.hub_message, "hub_rewound:", 12) == 0) {
            pp->rewound = 1; /* read by the caller once this thread is joined */
            pp->rewound_has_head = engine_rewound_head(resp.hub_message, &pp->rewound_head);
        }
        if (rc == CMC_OK)
            rc = engine_check_bundle(pp->e->hub_pk, pp->e->device_uuid, resp.body, resp.body_len,
                              &pg.hdr);
        if (rc == CMC_OK) {
            pg.body = resp.body;
            pg.len = resp.body_len;
            resp.body = NULL;
        } else {
            page_fail(&pg, rc);
        }
        http_response_free(&resp);
        int more = rc == CMC_OK && (pg.hdr.flags & BUNDLE_FLAG_MORE) &&
                   (pp->max_pages == 0 || pages < pp->max_pages);
        cursor = (int64_t)pg.hdr.to_cursor;
        if (!pipe_put(pp, &pp->raw, &pp->has_raw, &pg)) {
            page_free(&pg);
            break;
        }
        if (!more)
            break;
    }
    pipe_done(pp, &pp->dl_done);
    return NULL;
}

static void *decode_thread(void *arg)
{
    struct pipeline *pp = arg;
    struct page pg;
    while (pipe_take(pp, &pp->raw, &pp->has_raw, &pp->dl_done, &pg)) {
        if (pg.rc == CMC_OK) {
            int rc = bundle_decode(pg.body, pg.len, &pg.hdr, &pg.ops, &pg.n_ops);
            if (rc != CMC_OK)
                page_fail(&pg, rc);
        }
        cmc_free(pg.body);
        pg.body = NULL;
        int failed = pg.rc != CMC_OK;
        /* the page the applier is done with is freed here, off its thread */
        struct page spent;
        memset(&spent, 0, sizeof spent);
        pthread_mutex_lock(&pp->mu);
        if (pp->has_spent) {
            spent = pp->spent;
            memset(&pp->spent, 0, sizeof pp->spent);
            pp->has_spent = 0;
        }
        pthread_mutex_unlock(&pp->mu);
        page_free(&spent);
        if (!pipe_put(pp, &pp->dec, &pp->has_dec, &pg)) {
            page_free(&pg);
            break;
        }
        if (failed)
            break;
    }
    pipe_done(pp, &pp->dec_done);
    return NULL;
}

/* Several pages may share one transaction (fewer commits, and each index page is written
 * once per transaction instead of once per page), up to this many decoded bytes or this
 * long, so an interrupted sync still keeps most of what it fetched. A page with a purge
 * always commits at once, and so does the last page. (engine_config can set both.) */
#define GROUP_RAW_BYTES (16u * 1024u * 1024u)
#define GROUP_MS 1000u

void engine_config_paging(struct engine_config *cfg)
{
    const char *budget = getenv("CMC_PAGE_BUDGET");
    const char *group = getenv("CMC_GROUP_BYTES");
    const char *group_ms = getenv("CMC_GROUP_MS");
    cfg->page_budget = budget != NULL ? (uint32_t)strtoul(budget, NULL, 10) : ENGINE_PAGE_BUDGET;
    if (group != NULL)
        cfg->group_bytes = (uint32_t)strtoul(group, NULL, 10);
    if (group_ms != NULL)
        cfg->group_ms =
            strcmp(group_ms, "none") == 0 ? UINT32_MAX : (uint32_t)strtoul(group_ms, NULL, 10);
}

/* Pulls pages until the hub has no more (at most max_pages when nonzero), through the
 * pipeline. */
int engine_pull_pages(store *s, const struct engine_config *cfg, const struct enrollment *e,
                      http_client *client, unsigned max_pages, engine_progress_fn progress,
                      void *ctx, struct engine_report *rep)
{
    struct pipeline pp;
    pthread_t dl, dec;
    int in_batch = 0, started = 0;
    size_t group = 0;
    size_t group_max = cfg->group_bytes ? cfg->group_bytes : GROUP_RAW_BYTES;
    uint64_t group_ns = (uint64_t)(cfg->group_ms ? cfg->group_ms : GROUP_MS) * 1000000u;
    uint64_t group_start = plat_mono_now_ns();
    unsigned pages = 0;
    struct page cur;

    memset(&pp, 0, sizeof pp);
    memset(&cur, 0, sizeof cur);
    int rc = engine_stored_cursor(s, &pp.cursor);
    if (rc != CMC_OK)
        return rc;
    pp.applied = pp.cursor;
    pp.client = client;
    pp.e = e;
    pp.cfg = cfg;
    pp.max_pages = max_pages;
    pthread_mutex_init(&pp.mu, NULL);
    pthread_cond_init(&pp.cv, NULL);
    if (pthread_create(&dl, NULL, download_thread, &pp) != 0) {
        rc = cmc_fail(CMC_ERR_NOMEM, "sync: cannot start the download thread");
        goto out;
    }
    started = 1;
    if (pthread_create(&dec, NULL, decode_thread, &pp) != 0) {
        rc = cmc_fail(CMC_ERR_NOMEM, "sync: cannot start the decoding thread");
        goto out;
    }
    started = 2;
    while (pipe_take(&pp, &pp.dec, &pp.has_dec, &pp.dec_done, &cur)) {
        if (cur.rc != CMC_OK) {
            rc = cmc_fail(cur.rc, "%s", cur.err);
            break;
        }
        pages++;
        int more = (cur.hdr.flags & BUNDLE_FLAG_MORE) && (max_pages == 0 || pages < max_pages);
        group += cur.hdr.raw_len;
        /* A page that moved nothing waits for this device to prove an earlier one (the hub
         * sends a plan again only after the page that last carried it is proven): commit. */
        int keep_open = more && cur.hdr.to_cursor > cur.hdr.from_cursor && group < group_max &&
                        (cfg->group_ms == UINT32_MAX ||
                         plat_mono_now_ns() - group_start < group_ns);
        uint64_t t_apply = plat_phase_begin();
        rc = engine_apply_page(s, cfg, e->hub_pk, &cur.hdr, cur.ops, cur.n_ops, keep_open, &in_batch, rep);
        plat_phase_end(PLAT_PHASE_APPLY, t_apply);
        if (rc == CMC_OK && !in_batch) {
            group = 0;
            group_start = plat_mono_now_ns();
            pthread_mutex_lock(&pp.mu);
            pp.applied = (int64_t)cur.hdr.to_cursor;
            pthread_mutex_unlock(&pp.mu);
        }
        /* freed by the decoding thread, unless it already has one to free */
        pthread_mutex_lock(&pp.mu);
        if (!pp.has_spent) {
            pp.spent = cur;
            pp.has_spent = 1;
            memset(&cur, 0, sizeof cur);
        }
        pthread_mutex_unlock(&pp.mu);
        page_free(&cur);
        if (rc == CMC_OK && progress != NULL)
            progress(ctx, rep, more);
        if (rc != CMC_OK || !more)
            break;
        plat_test_delay();
    }
out:
    pthread_mutex_lock(&pp.mu);
    pp.stop = 1;
    pthread_cond_broadcast(&pp.cv);
    pthread_mutex_unlock(&pp.mu);
    if (started >= 1)
        pthread_join(dl, NULL);
    if (started >= 2)
        pthread_join(dec, NULL);
    page_free(&cur);
    page_free(&pp.raw);
    page_free(&pp.dec);
    page_free(&pp.spent);
    pthread_cond_destroy(&pp.cv);
    pthread_mutex_destroy(&pp.mu);
    engine_add_stats(rep, client);
    if (in_batch)
        store_batch_rollback(s);
    if (rc != CMC_OK && pp.rewound && pp.cursor > 0) {
        /* The hub went back in time: it has reset what it knows of this device. Keep every
         * plan and pending edit here, start the change log again from the beginning (what
         * the hub sends now is what it holds; newer versions kept here stay the newest), and
         * push the pending edits again in this same sync. First tell the hub which plans
         * this device holds from the timeline it lost: the operator re-enters them. */
        plat_log(PLAT_LOG_WARN, "sync: the hub was restored from an earlier backup; re-syncing");
        rep->hub_rewound = 1;
        engine_evidence_send(s, client, pp.rewound_has_head ? &pp.rewound_head : NULL);
        if ((rc = store_state_set_int(s, ST_CURSOR, 0)) == CMC_OK)
            rc = engine_pull_pages(s, cfg, e, client, max_pages, progress, ctx, rep);
    }
    return rc;
}

