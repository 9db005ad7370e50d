/* cli_read.c - reading plans and the device: lookup, show, search, list, status, verify,
 * audit. Every card comes from the card model (agent/card.h). */
#include "agent/cli.h"

#include "agent/audit.h"
#include "agent/card.h"
#include "agent/card_source.h"
#include "agent/lease.h"
#include "agent/view.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"
#include "sync/text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *hit_json(const struct store_hit *h)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:I}", "plan_id", h->plan_id,
                     "nhs_number", h->nhs_number, "given_name", h->given_name, "family_name", h->family_name,
                     "date_of_birth", h->date_of_birth, "postcode", h->postcode, "address", h->address,
                     "status", plan_status_name(h->status), "version", (json_int_t)h->version);
}

/* printf to `f` through text_put_terminal: plan text reaches the terminal only escaped
 * (sync/text.h), whatever an earlier version let into the replica. */
void cli_term_printf(FILE *f, const char *fmt, ...)
{
    char small[512], *big = NULL, *out = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap); /* the length first: a long line goes to the heap */
    va_end(ap);
    if (n < 0 || ((size_t)n >= sizeof small && (out = big = cmc_malloc((size_t)n + 1)) == NULL))
        return;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    text_put_terminal(f, out, (size_t)n);
    if (big != NULL) {
        cry_memzero(big, (size_t)n);
        cmc_free(big);
    }
    cry_memzero(small, sizeof small);
}

static void print_hits_text(const struct store_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_hit *h = &hits[i];
        char name[160];
        snprintf(name, sizeof name, "%s, %s", h->family_name ? h->family_name : "-",
                 h->given_name ? h->given_name : "-");
        cli_term_printf(stdout, "%.3s %.3s %.4s  %-32s born %-10s  %-9s %s\n", h->nhs_number, h->nhs_number + 3,
                    h->nhs_number + 6, name, h->date_of_birth ? h->date_of_birth : "-",
                    h->postcode ? h->postcode : "-",
                    plan_status_name(h->status) ? plan_status_name(h->status) : "?");
    }
}


/* The lease warning threshold; a bad CMC_LEASE_WARN_DAYS is said once and the default used:
 * a crew's lookup is never refused for a misconfigured warning. */
static int warn_days(void)
{
    int days;
    if (lease_warn_days(&days) != CMC_OK)
        fprintf(stderr, "cmc-agent: warning: %s; using %d\n", cmc_errmsg(), days);
    cmc_err_clear();
    return days;
}

/* Unlocks for reading. With `glass` (a break-glass reason was given) a copy whose lease has
 * run out still opens, and *broken says so; the user's PIN is checked either way. */
static int unlock_reading(const struct cli_opts *o, struct cli_session *s, int glass, int *broken)
{
    *broken = 0;
    int rc = cli_unlock(o, s);
    if (rc != CMC_OK)
        return rc;
    rc = lease_check(s->store);
    if (rc == CMC_ERR_LOCKED && glass) {
        cmc_err_clear();
        *broken = 1;
        return CMC_OK;
    }
    if (rc == CMC_OK && glass)
        fprintf(stderr, "cmc-agent: this copy is not locked: shown as an ordinary lookup (no break glass)\n");
    if (rc == CMC_ERR_LOCKED) {
        char why[320];
        snprintf(why, sizeof why, "%s", cmc_errmsg());
        rc = cmc_fail(CMC_ERR_LOCKED, "%s; in an emergency 'cmc-agent lookup NHS_NUMBER --break-glass REASON' "
                                      "opens one card (audited)", why);
    }
    if (rc != CMC_OK)
        cli_session_close(s);
    return rc;
}

static int show_plan(struct cli_opts *o, const char *key, int full)
{
    struct cli_session s;
    struct plan p;
    char reason[LEASE_REASON_MAX + 1];
    int broken = 0, pending = 0;
    struct card_source src;
    memset(&src, 0, sizeof src);
    plan_init(&p);
    json_t *changed = json_array();
    int rc = o->break_glass != NULL ? lease_reason_check(o->break_glass, reason) : CMC_OK;
    if (rc != CMC_OK || (rc = unlock_reading(o, &s, o->break_glass != NULL, &broken)) != CMC_OK) {
        json_decref(changed);
        return rc;
    }
    rc = view_load(s.store, key, &p, &pending, changed);
    if (rc == CMC_ERR_NOT_FOUND) {
        /* a miss is audited too: someone looked for this patient here */
        audit_record(s.store, AUDIT_LOOKUP_MISS, NULL, key);
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan on this device for that %s", full ? "plan" : "NHS number");
        if (o->json)
            cli_print_json(json_pack("{s:b, s:s}", "found", 0, "message", cmc_errmsg()));
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    /* a break-glass view keeps its reason in the chain the hub receives; no patient data */
    if (broken)
        audit_record(s.store, AUDIT_BREAK_GLASS, p.plan_id, reason);
    else
        audit_record(s.store, full ? AUDIT_SHOW : AUDIT_LOOKUP, p.plan_id, NULL);
    struct card_context ctx;
    card_context_init(&ctx, s.store, plat_wall_now());
    ctx.pending_edits = pending;
    ctx.show_full = full;
    ctx.changed_paths = changed;
    if ((rc = card_source_load(s.store, &p, pending, &src)) != CMC_OK)
        goto out;
    card_source_apply(&src, &ctx);
    (void)warn_days(); /* says once on stderr when CMC_LEASE_WARN_DAYS is bad */
    lease_card_context(s.store, broken, &ctx);
    struct card_model model;
    card_build(&p, &ctx, &model);
    if (o->json) {
        json_t *card = card_to_json(&p, &model);
        if (card != NULL) {
            json_object_set_new(card, "found", json_true());
            json_object_set(card, "not_yet_approved_fields", changed);
        }
        rc = cli_print_json(card);
    } else {
        rc = card_print_terminal(stdout, &model); /* local changes are shown in their sections */
    }
    cry_memzero(&model, sizeof model); /* it holds a copy of the NHS number */
out:
    cry_memzero(reason, sizeof reason);
    card_source_free(&src);
    json_decref(changed);
    plan_free(&p);
    cli_session_close(&s);
    return rc;
}

int cli_cmd_lookup(struct cli_opts *o)
{
    int rc = cli_need_args(o, 1, 1, "lookup NHS_NUMBER");
    if (rc != CMC_OK)
        return rc;
    char nhs[PLAN_NHS_LEN + 1];
    if ((rc = plan_nhs_normalise(o->positional[0], nhs)) != CMC_OK)
        return rc;
    return show_plan(o, nhs, 0);
}

int cli_cmd_show(struct cli_opts *o)
{
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = NULL;
    int rc = cli_need_plan(o, 1, 1, "show PLAN (a plan id or an NHS number)", nhs, &key);
    if (rc != CMC_OK)
        return rc;
    if (o->break_glass != NULL) /* one patient's card, by NHS number: never the whole plan */
        return cmc_fail(CMC_ERR_USAGE, "--break-glass opens one summary card: use 'cmc-agent lookup NHS_NUMBER "
                                       "--break-glass REASON'");
    return show_plan(o, key, 1);
}

/* `total`: every match, shown or not; `shown_words` the notice when some were not shown. */
static int print_hits(const struct cli_opts *o, const struct store_hit *hits, size_t n, size_t total,
                      const char *shown_words, const char *none)
{
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(&hits[i]));
        return cli_print_json(json_pack("{s:I, s:I, s:I, s:s?, s:o}", "count", (json_int_t)n, "shown", (json_int_t)n,
                                        "total", (json_int_t)total, "message",
                                        shown_words[0] != '\0' ? shown_words : NULL, "plans", arr));
    }
    if (n == 0)
        return cmc_fail(CMC_ERR_NOT_FOUND, "%s", none);
    int tty = isatty(STDOUT_FILENO);
    if (tty)
        print_hits_text(hits, n);
    else
        for (size_t i = 0; i < n; i++)
            cli_term_printf(stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", hits[i].nhs_number,
                        hits[i].family_name ? hits[i].family_name : "", hits[i].given_name ? hits[i].given_name : "",
                        hits[i].date_of_birth ? hits[i].date_of_birth : "", hits[i].postcode ? hits[i].postcode : "",
                        plan_status_name(hits[i].status));
    /* on a terminal under the list; in a pipe on stderr, so the rows stay machine-readable */
    if (shown_words[0] != '\0')
        fprintf(tty ? stdout : stderr, "%s%s\n", tty ? "\n" : "cmc-agent: ", shown_words);
    return CMC_OK;
}

static int search_in(struct cli_opts *o, struct cli_session *s)
{
    char criteria[200];
    snprintf(criteria, sizeof criteria, "name=%s;dob=%s;postcode=%s", o->name ? o->name : "", o->dob ? o->dob : "",
             o->postcode ? o->postcode : "");
    audit_record(s->store, AUDIT_SEARCH, NULL, criteria);
    struct store_query q = { .name = o->name, .date_of_birth = o->dob, .postcode = o->postcode };
    struct store_hit *hits = NULL;
    size_t n = 0, total = 0;
    char shown[160];
    int rc = store_search_counted(s->store, &q, STORE_SEARCH_SHOWN, &hits, &n, &total);
    store_search_words(&q, n, total, shown, sizeof shown);
    if (rc == CMC_OK)
        rc = print_hits(o, hits, n, total, shown, "no matching plan on this device");
    if (rc == CMC_OK && n == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no matching plan on this device");
    store_hits_free(hits, n);
    return rc;
}

int cli_cmd_search(struct cli_opts *o)
{
    if (o->name == NULL && o->dob == NULL && o->postcode == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent search [--name N] [--dob YYYY-MM-DD] [--postcode P]");
    int64_t t;
    if (o->dob != NULL && (strlen(o->dob) != 10 || plat_parse_time(o->dob, &t) != CMC_OK))
        return cmc_fail(CMC_ERR_INVALID, "--dob must be a date as YYYY-MM-DD");
    return cli_run(o, CLI_RUN_READING, search_in);
}

static int list_in(struct cli_opts *o, struct cli_session *s)
{
    audit_record(s->store, AUDIT_LIST, NULL, NULL);
    struct store_hit *hits = NULL;
    size_t n = 0;
    int rc = store_list(s->store, &hits, &n);
    if (rc == CMC_OK)
        rc = n == 0 && !o->json ? (printf("No plans on this device visible to you.\n"), CMC_OK)
                                : print_hits(o, hits, n, n, "", "");
    store_hits_free(hits, n);
    return rc;
}

int cli_cmd_list(struct cli_opts *o)
{
    return cli_run(o, CLI_RUN_READING, list_in);
}

int cli_cmd_status(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    struct store_counts c;
    char *hub = NULL;
    char *watch = NULL;
    int64_t cursor = 0;
    if ((rc = store_counts_get(s.store, &c)) != CMC_OK)
        goto out;
    if (store_state_get(s.store, "hub_url", &hub) != CMC_OK)
        hub = NULL;
    if (store_state_get_int(s.store, "cursor", &cursor) != CMC_OK)
        cursor = 0;
    struct card_context ctx;
    card_context_init(&ctx, s.store, plat_wall_now());
    char age[96];
    card_copy_age(&ctx, age, sizeof age);
    struct lease_info li;
    if ((rc = lease_info_get(s.store, &li)) != CMC_OK)
        goto out;
    /* What `sync --watch` last noted: "live", "polling every N s", or "" once it stopped. */
    int64_t watch_at = 0, change_at = 0;
    char live[96], change[24] = "none yet";
    if (store_state_get(s.store, "watch_mode", &watch) != CMC_OK) {
        cmc_free(watch);
        watch = NULL;
    }
    (void)store_state_get_int(s.store, "watch_mode_at", &watch_at);
    if (store_state_get_int(s.store, "last_change_at", &change_at) == CMC_OK && change_at > 0)
        plat_format_time(change_at, change);
    if (watch != NULL && watch[0] != '\0') {
        char since[21];
        plat_format_time(watch_at, since);
        snprintf(live, sizeof live, "%s (since %s)", watch, since);
    } else {
        snprintf(live, sizeof live, "not watching (no 'sync --watch' running)");
    }
    char policy[200], warning[96] = "";
    int left = lease_days_left(&li, warn_days());
    if (li.lease_days <= 0)
        snprintf(policy, sizeof policy, "no offline lease");
    else
        snprintf(policy, sizeof policy, "locks after %lld days without a sync%s", (long long)li.lease_days,
                 li.locked ? " - LOCKED now: sync to unlock (in an emergency: lookup NHS --break-glass REASON)"
                           : "");
    if (left >= 0)
        snprintf(warning, sizeof warning, "this copy locks in %d day%s without a sync", left, left == 1 ? "" : "s");
    if (o->json) {
        json_t *doc = json_pack("{s:s, s:s, s:s?, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "user",
                                  s.who.user, "role", store_role_name(s.who.role), "hub", hub, "last_sync",
                                  ctx.last_sync < 0 ? json_null() : json_integer(ctx.last_sync), "copy_age", age,
                                  "cursor", (json_int_t)cursor, "plans_visible", (json_int_t)c.visible,
                                  "plans_published", (json_int_t)c.published, "plans_draft", (json_int_t)c.drafts,
                                  "pending_edits", (json_int_t)c.pending, "conflicts", (json_int_t)c.conflicts,
                                  "tombstones", (json_int_t)c.tombstones, "lease_days",
                                  (json_int_t)li.lease_days, "locked", li.locked);
        if (doc != NULL) {
            json_object_set_new(doc, "lease_days_left", left < 0 ? json_null() : json_integer(left));
            if (warning[0] != '\0')
                json_object_set_new(doc, "lease_warning", json_string(warning));
            json_object_set_new(doc, "watch", json_string(watch != NULL ? watch : ""));
            json_object_set_new(doc, "last_change", change_at > 0 ? json_integer(change_at) : json_null());
        }
        rc = cli_print_json(doc);
    } else {
        printf("user:          %s (%s)\n", s.who.user, store_role_name(s.who.role));
        printf("hub:           %s\n", hub ? hub : "not enrolled");
        printf("last sync:     %s\n", age);
        printf("cursor:        %lld\n", (long long)cursor);
        printf("plans:         %lld visible to you (%lld published, %lld drafts)\n", (long long)c.visible,
               (long long)c.published, (long long)c.drafts);
        printf("pending edits: %lld\n", (long long)c.pending);
        printf("conflicts:     %lld\n", (long long)c.conflicts);
        printf("policy:        %s\n", policy);
        printf("watch:         %s\n", live);
        printf("last change:   %s\n", change);
        if (warning[0] != '\0')
            printf("WARNING:       %s\n", warning);
    }
out:
    cmc_free(hub);
    cmc_free(watch);
    cli_session_close(&s);
    return rc;
}

/* One plan version whose bytes do not carry the hub's seal: named (by id, never content). */
static void verify_report(const char *plan_id, int64_t version, void *ctx)
{
    json_t *arr = ctx;
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:s, s:I}", "plan_id", plan_id, "version",
                                             (json_int_t)version));
    else
        printf("plan %s version %lld failed its integrity check - do not rely on it; ask the "
               "hub\n", plan_id, (long long)version);
}

int cli_cmd_verify(struct cli_opts *o)
{
    struct cli_session s;
    int64_t bad = 0;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    /* Every mismatch first, then the full check (which stops at the first problem). */
    json_t *arr = o->json ? json_array() : NULL;
    rc = store_seal_scan(s.store, 0, verify_report, arr, &bad);
    if (rc == CMC_OK && bad > 0) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "%lld plan version(s) failed their integrity check; the "
                      "next sync fetches them again", (long long)bad);
        if (arr != NULL)
            cli_print_json(json_pack("{s:b, s:O, s:s}", "ok", 0, "failed", arr, "message",
                                     cmc_errmsg()));
    }
    json_decref(arr);
    if (rc == CMC_OK)
        rc = store_verify(s.store);
    if (rc == CMC_OK) {
        if (o->json)
            rc = cli_print_json(json_pack("{s:b}", "ok", 1));
        else
            printf("Replica verified: every page authenticates, every plan decodes and carries "
                   "the hub's seal.\n");
    }
    cli_session_close(&s);
    return rc;
}

int cli_cmd_audit(struct cli_opts *o)
{
    if (o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent audit [--verify]");
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    if (o->verify) {
        int64_t broken = 0;
        struct audit_entry *v = NULL;
        size_t n = 0;
        rc = audit_verify(s.store, &broken);
        if (rc == CMC_OK)
            rc = audit_list(s.store, 0, &v, &n);
        if (rc == CMC_OK && o->json)
            rc = cli_print_json(json_pack("{s:b, s:I}", "ok", 1, "entries", (json_int_t)n));
        else if (rc == CMC_OK)
            printf("Audit chain intact: %zu entries on this device verify.\n", n);
        else if (o->json && broken > 0)
            cli_print_json(json_pack("{s:b, s:I, s:s}", "ok", 0, "broken_at", (json_int_t)broken, "message", cmc_errmsg()));
        cmc_free(v);
        cli_session_close(&s);
        return rc;
    }
    struct audit_entry *v = NULL;
    size_t n = 0;
    rc = audit_list(s.store, 0, &v, &n);
    /* A clinician sees the whole device's log; an urgent-care user their own entries. */
    int all = s.who.role == STORE_ROLE_CLINICIAN;
    json_t *arr = o->json ? json_array() : NULL;
    for (size_t i = 0; rc == CMC_OK && i < n; i++) {
        const struct audit_entry *e = &v[i];
        if (!all && strcmp(e->user, s.who.user) != 0)
            continue;
        char when[21];
        plat_format_time(e->wall, when);
        if (arr != NULL)
            json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
                                                 "time", when, "user", e->user, "role", e->role, "action", e->action,
                                                 "plan_id", e->plan_id, "identifier", e->identifier));
        else
            cli_term_printf(stdout, "%6lld  %s  %-16s %-12s %-12s %s%s%s\n", (long long)e->seq, when, e->user, e->role,
                        e->action, e->plan_id, e->plan_id[0] != '\0' && e->identifier[0] != '\0' ? "  " : "",
                        e->identifier);
    }
    if (rc == CMC_OK && arr != NULL)
        rc = cli_print_json(json_pack("{s:o}", "entries", arr));
    else
        json_decref(arr);
    cmc_free(v);
    cli_session_close(&s);
    return rc;
}
