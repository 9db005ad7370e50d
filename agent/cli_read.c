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

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static json_t *hit_json(const struct store_hit *h)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:I}", "plan_id", h->plan_id,
                     "nhs_number", h->nhs_number, "given_name", h->given_name, "family_name", h->family_name,
                     "date_of_birth", h->date_of_birth, "postcode", h->postcode, "address", h->address,
                     "status", plan_status_name(h->status), "version", (json_int_t)h->version);
}

static void print_hits_text(const struct store_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_hit *h = &hits[i];
        char name[160];
        snprintf(name, sizeof name, "%s, %s", h->family_name ? h->family_name : "-",
                 h->given_name ? h->given_name : "-");
        printf("%.3s %.3s %.4s  %-32s born %-10s  %-9s %s\n", h->nhs_number, h->nhs_number + 3,
               h->nhs_number + 6, name, h->date_of_birth ? h->date_of_birth : "-",
               h->postcode ? h->postcode : "-",
               plan_status_name(h->status) ? plan_status_name(h->status) : "?");
    }
}

static int show_plan(struct cli_opts *o, const char *key, int full)
{
    struct cli_session s;
    struct plan p;
    plan_init(&p);
    json_t *changed = json_array();
    int pending = 0;
    struct card_source src;
    memset(&src, 0, sizeof src);
    int rc = cli_unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        goto out;
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
    audit_record(s.store, full ? AUDIT_SHOW : AUDIT_LOOKUP, p.plan_id, NULL);
    struct card_context ctx;
    card_context_init(&ctx, s.store, plat_wall_now());
    ctx.pending_edits = pending;
    ctx.show_full = full;
    ctx.changed_paths = changed;
    if ((rc = card_source_load(s.store, &p, pending, &src)) != CMC_OK)
        goto out;
    card_source_apply(&src, &ctx);
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
        card_print(stdout, &model); /* local changes are shown in their sections */
    }
    cry_memzero(&model, sizeof model); /* it holds a copy of the NHS number */
out:
    card_source_free(&src);
    json_decref(changed);
    plan_free(&p);
    cli_session_close(&s);
    return rc;
}

int cli_cmd_lookup(struct cli_opts *o)
{
    int rc = cli_need_positional(o, 1, "lookup NHS_NUMBER");
    if (rc != CMC_OK)
        return rc;
    char nhs[PLAN_NHS_LEN + 1];
    if ((rc = plan_nhs_normalise(o->positional[0], nhs)) != CMC_OK)
        return rc;
    return show_plan(o, nhs, 0);
}

int cli_cmd_show(struct cli_opts *o)
{
    int rc = cli_need_positional(o, 1, "show PLAN (a plan id or an NHS number)");
    if (rc != CMC_OK)
        return rc;
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = NULL;
    if ((rc = cli_plan_key(o->positional[0], nhs, &key)) != CMC_OK)
        return rc;
    return show_plan(o, key, 1);
}

static int print_hits(const struct cli_opts *o, const struct store_hit *hits, size_t n, const char *none)
{
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(&hits[i]));
        return cli_print_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "plans", arr));
    }
    if (n == 0)
        return cmc_fail(CMC_ERR_NOT_FOUND, "%s", none);
    if (isatty(STDOUT_FILENO))
        print_hits_text(hits, n);
    else
        for (size_t i = 0; i < n; i++)
            printf("%s\t%s\t%s\t%s\t%s\t%s\n", hits[i].nhs_number, hits[i].family_name ? hits[i].family_name : "",
                   hits[i].given_name ? hits[i].given_name : "", hits[i].date_of_birth ? hits[i].date_of_birth : "",
                   hits[i].postcode ? hits[i].postcode : "", plan_status_name(hits[i].status));
    return CMC_OK;
}

int cli_cmd_search(struct cli_opts *o)
{
    if (o->name == NULL && o->dob == NULL && o->postcode == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent search [--name N] [--dob YYYY-MM-DD] [--postcode P]");
    int64_t t;
    if (o->dob != NULL && (strlen(o->dob) != 10 || plat_parse_time(o->dob, &t) != CMC_OK))
        return cmc_fail(CMC_ERR_INVALID, "--dob must be a date as YYYY-MM-DD");
    struct cli_session s;
    int rc = cli_unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        return rc;
    char criteria[200];
    snprintf(criteria, sizeof criteria, "name=%s;dob=%s;postcode=%s", o->name ? o->name : "", o->dob ? o->dob : "",
             o->postcode ? o->postcode : "");
    audit_record(s.store, AUDIT_SEARCH, NULL, criteria);
    struct store_query q = { .name = o->name, .date_of_birth = o->dob, .postcode = o->postcode };
    struct store_hit *hits = NULL;
    size_t n = 0;
    rc = store_search(s.store, &q, 20, &hits, &n);
    if (rc == CMC_OK)
        rc = print_hits(o, hits, n, "no matching plan on this device");
    if (rc == CMC_OK && n == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no matching plan on this device");
    store_hits_free(hits, n);
    cli_session_close(&s);
    return rc;
}

int cli_cmd_list(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        return rc;
    audit_record(s.store, AUDIT_LIST, NULL, NULL);
    struct store_hit *hits = NULL;
    size_t n = 0;
    rc = store_list(s.store, &hits, &n);
    if (rc == CMC_OK)
        rc = n == 0 && !o->json ? (printf("No plans on this device visible to you.\n"), CMC_OK)
                                : print_hits(o, hits, n, "");
    store_hits_free(hits, n);
    cli_session_close(&s);
    return rc;
}

int cli_cmd_status(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    struct store_counts c;
    char *hub = NULL;
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
    char policy[160];
    if (li.lease_days <= 0)
        snprintf(policy, sizeof policy, "no offline lease");
    else
        snprintf(policy, sizeof policy, "locks after %lld days without a sync%s", (long long)li.lease_days,
                 li.locked ? " - LOCKED now: sync to unlock" : "");
    if (o->json) {
        rc = cli_print_json(json_pack("{s:s, s:s, s:s?, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "user",
                                  s.who.user, "role", store_role_name(s.who.role), "hub", hub, "last_sync",
                                  ctx.last_sync < 0 ? json_null() : json_integer(ctx.last_sync), "copy_age", age,
                                  "cursor", (json_int_t)cursor, "plans_visible", (json_int_t)c.visible,
                                  "plans_published", (json_int_t)c.published, "plans_draft", (json_int_t)c.drafts,
                                  "pending_edits", (json_int_t)c.pending, "conflicts", (json_int_t)c.conflicts,
                                  "tombstones", (json_int_t)c.tombstones, "lease_days",
                                  (json_int_t)li.lease_days, "locked", li.locked));
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
    }
out:
    cmc_free(hub);
    cli_session_close(&s);
    return rc;
}

int cli_cmd_verify(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    rc = store_verify(s.store);
    if (rc == CMC_OK) {
        if (o->json)
            rc = cli_print_json(json_pack("{s:b}", "ok", 1));
        else
            printf("Replica verified: every page authenticates and every plan decodes.\n");
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
            printf("%6lld  %s  %-16s %-12s %-12s %s%s\n", (long long)e->seq, when, e->user, e->role, e->action,
                   e->plan_id, e->identifier);
    }
    if (rc == CMC_OK && arr != NULL)
        rc = cli_print_json(json_pack("{s:o}", "entries", arr));
    else
        json_decref(arr);
    cmc_free(v);
    cli_session_close(&s);
    return rc;
}
