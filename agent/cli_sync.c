/* cli_sync.c - the hub: enroll, and sync once or with --watch.
 *
 * --watch is live when the hub offers a change feed (engine.h, "the change feed"): the device
 * holds a wait at the hub and syncs as soon as the hub answers that something for it changed,
 * so a plan approved at the hub is readable here in seconds, not at the next poll. It falls
 * back to polling every CMC_SYNC_INTERVAL seconds when the hub has no feed (an older hub) or
 * its waits keep being cut (a proxy that cuts long requests), and tries live again later. The
 * replica is never locked while a wait is held; the mode and the time the last change arrived
 * are kept in the replica's sync state for `status`. */
#include "agent/cli.h"

#include "agent/engine.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/wire.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void engine_config_for(const struct cli_opts *o, struct engine_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = o->dir;
    cfg->slots_path = o->slots_path;
    cfg->replica_path = o->replica_path;
    engine_config_paging(cfg);
}

static int enroll_in(struct cli_opts *o, struct cli_session *s)
{
    struct engine_config cfg;
    engine_config_for(o, &cfg);
    int rc = engine_enroll(s->store, &cfg, o->hub, o->code, o->ca, o->name ? o->name : "cmc-agent device");
    if (rc == CMC_OK && o->json)
        rc = cli_print_json(json_pack("{s:b, s:s}", "ok", 1, "hub", o->hub));
    else if (rc == CMC_OK)
        printf("Enrolled with %s; the hub's signing key and certificate are pinned. Run 'cmc-agent sync'.\n",
               o->hub);
    return rc;
}

int cli_cmd_enroll(struct cli_opts *o)
{
    if (o->hub == NULL || o->code == NULL || o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent enroll --hub URL --code CODE [--ca FILE] [--name DEVICE]");
    return cli_run(o, CLI_RUN_LOCKED, enroll_in);
}

struct progress_ctx {
    int tty;
    uint64_t start_ns;
};

static void show_progress(void *ctx, const struct engine_report *r, int more)
{
    struct progress_ctx *p = ctx;
    if (!p->tty)
        return;
    double secs = (double)(plat_mono_now_ns() - p->start_ns) / 1e9;
    uint64_t done = r->puts + r->deltas + r->purges;
    fprintf(stderr, "\rsyncing: %llu plans received in %llu pages, %.0f plans/s%s", (unsigned long long)done,
            (unsigned long long)r->pages, secs > 0 ? (double)done / secs : 0.0, more ? "..." : "   \n");
    fflush(stderr);
}

static int sync_round(struct cli_opts *o, struct cli_session *s, int quiet, uint64_t *changes)
{
    struct engine_config cfg;
    engine_config_for(o, &cfg);
    struct engine_report rep;
    if (changes != NULL)
        *changes = 0;
    struct progress_ctx pc = { .tty = !o->json && !quiet && isatty(STDERR_FILENO), .start_ns = plat_mono_now_ns() };
    int rc = engine_sync(&s->store, &cfg, show_progress, &pc, &rep);
    if (rep.wiped)
        return rc;
    if (rc != CMC_OK)
        return rc;
    if (changes != NULL)
        *changes = rep.puts + rep.deltas + rep.purges;
    if (o->json) {
        return cli_print_json(json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1,
                                    "rollback", rep.rollback,
                                    "cursor", (json_int_t)rep.cursor, "pages", (json_int_t)rep.pages, "puts",
                                    (json_int_t)rep.puts, "deltas", (json_int_t)rep.deltas, "purges",
                                    (json_int_t)rep.purges, "pushed", (json_int_t)rep.pushed, "conflicts",
                                    (json_int_t)rep.conflicts, "rebased", (json_int_t)rep.rebased,
                                    "discarded_edits", (json_int_t)rep.discarded_edits, "bytes_received",
                                    (json_int_t)rep.bytes_received, "requests", (json_int_t)rep.requests,
                                    "connections", (json_int_t)rep.connections));
    }
    if (!quiet || rep.puts + rep.deltas + rep.purges + rep.pushed + rep.conflicts > 0)
        printf("Synced: %llu plan%s updated, %llu removed, %llu edit%s pushed, %llu conflict%s; cursor %lld.\n",
               (unsigned long long)(rep.puts + rep.deltas), rep.puts + rep.deltas == 1 ? "" : "s",
               (unsigned long long)rep.purges, (unsigned long long)rep.pushed, rep.pushed == 1 ? "" : "s",
               (unsigned long long)rep.conflicts, rep.conflicts == 1 ? "" : "s", (long long)rep.cursor);
    if (rep.discarded_edits > 0)
        printf("Note: %llu pending edit%s discarded because %s plan was withdrawn from this device "
               "(consent withdrawn or left scope).\n",
               (unsigned long long)rep.discarded_edits, rep.discarded_edits == 1 ? " was" : "s were",
               rep.discarded_edits == 1 ? "its" : "their");
    if (rep.rollback)
        printf("Warning: this replica had been restored from an older copy. The hub noticed and sent what "
               "repairs it (withdrawn plans removed again, newer versions).\n");
    if (rep.conflicts > 0)
        printf("Some edits conflict with newer versions from the hub: see 'cmc-agent conflicts'.\n");
    fflush(stdout);
    return CMC_OK;
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleeps in small steps so a signal ends the wait promptly. */
static void sleep_interruptible(uint32_t ms)
{
    while (ms > 0 && !stop_requested) {
        uint32_t step = ms > 200 ? 200 : ms;
        plat_sleep_ms(step);
        ms -= step;
    }
}

/* ---- --watch ---------------------------------------------------------------------------- */

#define WATCH_HOLD_MIN 10          /* seconds: below this a cut wait is not worth holding */
#define WATCH_ROUND_S 3600         /* live: a full round at least this often (audit, lease) */
#define WATCH_LIVE_RETRY_S 3600    /* polling for want of a feed: ask the hub again after */
#define WATCH_CUT_RETRY_S 600      /* polling because waits kept being cut: try again after */
#define WATCH_CUTS_MAX 3           /* cut waits in a row at the shortest hold before polling */
#define WATCH_BACKOFF_MAX_S 60     /* live: the longest pause before reconnecting */

struct watch {
    uint32_t interval;    /* CMC_SYNC_INTERVAL */
    unsigned hold;        /* seconds a wait may be held */
    unsigned hold_max;
    int live_ok;          /* 0: polling until live_retry_at */
    uint64_t live_retry_at;
    unsigned cuts;        /* waits cut in a row */
    unsigned backoff;     /* seconds, after a failure */
    uint64_t last_round;  /* monotonic ns of the last successful round */
    int woken;            /* the hub answered the last wait "changed" */
    unsigned empty_wakes; /* rounds in a row after "changed" that brought nothing */
    char mode[32];        /* as last written for `status` */
};

static uint64_t now_s(void)
{
    return plat_mono_now_ns() / 1000000000ull;
}

static uint32_t jitter_ms(uint32_t base_ms)
{
    uint32_t r;
    cry_random(&r, sizeof r);
    return base_ms - base_ms / 10 + r % (base_ms / 5 + 1); /* +-10 %: devices spread out */
}

/* What `status` shows: "live" or "polling every N s" (since when), best effort. */
static void watch_mode(struct cli_session *s, struct watch *w, const char *mode)
{
    if (strcmp(w->mode, mode) == 0)
        return;
    snprintf(w->mode, sizeof w->mode, "%s", mode);
    if (store_state_set(s->store, "watch_mode", mode) != CMC_OK ||
        store_state_set_int(s->store, "watch_mode_at", plat_wall_now()) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "could not note the watch mode: %s", cmc_errmsg());
}

static void watch_polling(struct cli_session *s, struct watch *w)
{
    char mode[32];
    snprintf(mode, sizeof mode, "polling every %u s", (unsigned)w->interval);
    watch_mode(s, w, mode);
}

/* After a failure: 1, 2, 4 ... s (capped), jittered, so a fleet does not reconnect at once. */
static uint32_t watch_backoff_ms(struct watch *w, int live)
{
    uint32_t cap = live ? (w->interval < WATCH_BACKOFF_MAX_S ? w->interval : WATCH_BACKOFF_MAX_S) : 1800;
    uint32_t base = live ? 1 : w->interval;
    uint32_t r;
    if (w->backoff == 0)
        w->backoff = base;
    uint32_t b = w->backoff;
    w->backoff = w->backoff * 2 > cap ? cap : w->backoff * 2;
    cry_random(&r, sizeof r);
    return (b * 1000u) / 2 + r % ((b * 1000u) / 2 + 1);
}

/* One held wait; sets *need_round when a round should follow (a change, or a failure the
 * round will name). */
static void watch_wait(struct cli_session *s, struct watch *w, engine_watch **ew, int *need_round)
{
    int res = 0, rc;
    uint64_t t0 = plat_mono_now_ns();
    if (*ew == NULL && (rc = engine_watch_open(s->store, &stop_requested, ew)) != CMC_OK) {
        *need_round = 1;
        return;
    }
    /* Live from the moment the wait is sent: a hub without the feed says so at once. */
    watch_mode(s, w, "live");
    rc = engine_wait(*ew, s->store, w->hold, &res);
    unsigned held = (unsigned)((plat_mono_now_ns() - t0) / 1000000000ull);
    if (rc == CMC_OK && res == ENGINE_WAIT_UNSUPPORTED) {
        fprintf(stderr, "cmc-agent: the hub offers no change feed; polling every %u s\n", (unsigned)w->interval);
        w->live_ok = 0;
        w->live_retry_at = now_s() + WATCH_LIVE_RETRY_S;
        watch_polling(s, w);
        return;
    }
    if (rc == CMC_OK) {
        w->cuts = 0;
        w->backoff = 0;
        if (res == ENGINE_WAIT_CHANGED)
            *need_round = w->woken = 1;
        return;
    }
    /* Cut or failed. Nothing is missed: the next wait or round continues from the cursor. */
    engine_watch_close(*ew);
    *ew = NULL;
    *need_round = 1;
    watch_mode(s, w, "reconnecting");
    if (held >= 2 && held < w->hold) {
        /* Held, then cut before its time: something on the way cuts idle connections. Hold
         * for less than that from now on; poll when even the shortest hold is cut. */
        unsigned shorter = held * 3 / 4;
        if (w->hold <= WATCH_HOLD_MIN && ++w->cuts >= WATCH_CUTS_MAX) {
            fprintf(stderr, "cmc-agent: waits at the hub keep being cut; polling every %u s\n",
                    (unsigned)w->interval);
            w->live_ok = 0;
            w->live_retry_at = now_s() + WATCH_CUT_RETRY_S;
            w->hold = w->hold_max;
            w->cuts = 0;
            watch_polling(s, w);
        } else {
            w->hold = shorter < WATCH_HOLD_MIN ? WATCH_HOLD_MIN : shorter;
        }
    }
    sleep_interruptible(watch_backoff_ms(w, 1));
}

static int watch_fatal(int rc)
{
    return rc == CMC_ERR_WIPED || rc == CMC_ERR_UNAUTHORIZED || rc == CMC_ERR_TAMPERED || rc == CMC_ERR_STATE;
}

static int watch_loop(struct cli_opts *o, struct cli_session *s)
{
    const char *iv = getenv("CMC_SYNC_INTERVAL");
    const char *hv = getenv("CMC_WATCH_HOLD"); /* seconds; tests and sites with short proxy cuts */
    struct watch w;
    memset(&w, 0, sizeof w);
    w.interval = iv != NULL ? (uint32_t)strtoul(iv, NULL, 10) : 300;
    if (w.interval == 0)
        w.interval = 1;
    w.hold_max = hv != NULL ? (unsigned)strtoul(hv, NULL, 10) : WIRE_WAIT_HOLD_MAX;
    if (w.hold_max == 0 || w.hold_max > WIRE_WAIT_HOLD_MAX)
        w.hold_max = WIRE_WAIT_HOLD_MAX;
    w.hold = w.hold_max;
    w.live_ok = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    engine_watch *ew = NULL;
    int offline = 0, need_round = 1, rc = CMC_OK;
    while (!stop_requested) {
        if (need_round) {
            uint64_t changes = 0;
            rc = sync_round(o, s, 1, &changes);
            if (watch_fatal(rc))
                break; /* nothing a retry can mend */
            if (rc != CMC_OK) {
                if (!offline)
                    fprintf(stderr, "cmc-agent: cannot sync (%s); retrying with backoff\n", cmc_errmsg());
                offline = 1;
                watch_mode(s, &w, "reconnecting");
                engine_watch_close(ew);
                ew = NULL;
                sleep_interruptible(watch_backoff_ms(&w, w.live_ok));
                continue;
            }
            if (offline)
                fprintf(stderr, "cmc-agent: the hub answers again; in sync\n");
            offline = 0;
            w.backoff = 0;
            need_round = 0;
            w.last_round = plat_mono_now_ns();
            if (changes > 0 && store_state_set_int(s->store, "last_change_at", plat_wall_now()) != CMC_OK)
                plat_log(PLAT_LOG_WARN, "could not note the change: %s", cmc_errmsg());
            /* Woken for nothing again and again (a change this device cannot be sent, a hub
             * answering "changed" to everything): wait longer each time before asking again,
             * up to the poll interval, instead of syncing in a loop. */
            w.empty_wakes = w.woken && changes == 0 ? w.empty_wakes + 1 : 0;
            w.woken = 0;
            if (w.empty_wakes > 1) {
                uint32_t pause = 1u << (w.empty_wakes > 12 ? 11 : w.empty_wakes - 2);
                sleep_interruptible(jitter_ms((pause < w.interval ? pause : w.interval) * 1000u));
            }
        }
        if (!w.live_ok && now_s() >= w.live_retry_at)
            w.live_ok = 1;
        if (!w.live_ok) {
            watch_polling(s, &w);
            sleep_interruptible(jitter_ms(w.interval * 1000u));
            need_round = 1;
            continue;
        }
        watch_wait(s, &w, &ew, &need_round);
        if (!need_round) {
            /* Live and quiet: still a full round now and then (the audit upload, the lease),
             * and soon for edits made here. */
            struct store_counts c;
            uint64_t since = (plat_mono_now_ns() - w.last_round) / 1000000000ull;
            if (since >= (WATCH_ROUND_S > w.interval ? WATCH_ROUND_S : w.interval) ||
                (since >= w.interval && store_counts_get(s->store, &c) == CMC_OK && c.pending > 0))
                need_round = 1;
        }
    }
    engine_watch_close(ew);
    if (rc != CMC_ERR_WIPED && s->store != NULL)
        (void)store_state_set(s->store, "watch_mode", "");
    return watch_fatal(rc) ? rc : CMC_OK;
}

static int sync_in(struct cli_opts *o, struct cli_session *s)
{
    return o->watch ? watch_loop(o, s) : sync_round(o, s, 0, NULL);
}

int cli_cmd_sync(struct cli_opts *o)
{
    if (o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent sync [--watch]");
    return cli_run(o, CLI_RUN_LOCKED, sync_in);
}
