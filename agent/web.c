/*
 * web.c - the crew's page: libmicrohttpd glue, the unlocked session and the routes.
 *
 * Routes (docs/WEB.md): GET / (unlock page, or find-a-patient once unlocked), GET /style.css,
 * POST /unlock, /lock, /lookup (NHS number), /search (name, date of birth, postcode),
 * /plan (a plan id: card, full plan or print view), /theme (day or night colours),
 * /break-glass (a lease-locked copy: one card by NHS number with the PIN and a reason).
 */
#include "agent/web.h"

#include "agent/audit.h"
#include "agent/card.h"
#include "agent/card_source.h"
#include "agent/engine.h"
#include "agent/lease.h"
#include "agent/store.h"
#include "agent/view.h"
#include "agent/web_fhir.h"
#include "agent/web_html.h"
#include "agent/web_req.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/fhir.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define WEB_TOKEN_BYTES 32
#define WEB_TOKEN_HEX (2 * WEB_TOKEN_BYTES)
#define WEB_MAX_BODY 8192 /* our forms are a few hundred bytes */
#define WEB_PIN_BUF 160

#define COOKIE_SESSION "cmc_session"
#define COOKIE_PRE "cmc_pre"
#define COOKIE_THEME "cmc_theme"

struct web_session {
    int active;
    char id[WEB_TOKEN_HEX + 1];   /* the cookie's value */
    char csrf[WEB_TOKEN_HEX + 1]; /* the forms' hidden token */
    struct cry_secret *key;
    struct cry_secret *role_key;  /* a clinician's: opens the clinical file (pending edits) */
    store *st;
    struct store_session who;
    uint64_t last_ns;             /* monotonic time of the last request */
};

struct web_server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    struct web_config cfg;
    uint16_t port;
    struct web_session sess;
};

/* Per-request state, made when the request line arrives. */
struct web_conn {
    char *body;
    size_t len;
    int started;
    int too_large;
    struct web_buf reply; /* the page sent: MHD reads it in place; zeroed when the request ends */
};

#define WEB_MAX_COOKIES 3

/* What a route answers. */
struct web_reply {
    int status;
    const char *content_type;
    struct web_buf body;
    const char *static_body; /* instead of body (the stylesheet) */
    const char *location;    /* a 303 redirect */
    char cookies[WEB_MAX_COOKIES][WEB_TOKEN_HEX + 128];
    int n_cookies;
    int clear_site_data;
    int cacheable;           /* the stylesheet only */
};

/* ---- the session ------------------------------------------------------------------------ */

/* Locking: the store closes (SQLCipher wipes its page cache), the keys are zeroed and freed,
 * freed heap goes back to the system (web_mem.c). */
static void session_close(struct web_session *ss)
{
    int was_active = ss->active;
    store_close(ss->st);
    cry_secret_free(ss->key);
    cry_secret_free(ss->role_key);
    cry_memzero(ss, sizeof *ss);
    if (was_active)
        web_mem_locked();
}

static void new_token(char out[WEB_TOKEN_HEX + 1])
{
    uint8_t raw[WEB_TOKEN_BYTES];
    cry_random(raw, sizeof raw);
    cry_hex(out, raw, sizeof raw);
    cry_memzero(raw, sizeof raw);
}

/* Constant-time check of a token from the browser against ours. */
static int token_matches(const char *given, const char *ours)
{
    if (given == NULL || ours == NULL || strlen(given) != WEB_TOKEN_HEX || strlen(ours) != WEB_TOKEN_HEX)
        return 0;
    return cry_memeq(given, ours, WEB_TOKEN_HEX);
}

static void expire_if_idle(web_server *s)
{
    if (!s->sess.active)
        return;
    uint64_t idle_ns = (uint64_t)s->cfg.idle_seconds * 1000000000ull;
    if (plat_mono_now_ns() - s->sess.last_ns >= idle_ns) {
        session_close(&s->sess);
        plat_log(PLAT_LOG_INFO, "web: the session locked itself after %d s idle", s->cfg.idle_seconds);
    }
}

/* ---- replies ---------------------------------------------------------------------------- */

static void reply_init(struct web_reply *r)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
    r->content_type = "text/html; charset=utf-8";
    web_buf_init(&r->body);
}

static void add_cookie(struct web_reply *r, const char *name, const char *value, int max_age)
{
    if (r->n_cookies >= WEB_MAX_COOKIES)
        return;
    char *c = r->cookies[r->n_cookies++];
    size_t cap = sizeof r->cookies[0];
    if (max_age < 0) /* a session cookie: gone when the browser closes */
        snprintf(c, cap, "%s=%s; Path=/; HttpOnly; SameSite=Strict", name, value);
    else
        snprintf(c, cap, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d", name, value, max_age);
}

static void redirect_home(struct web_reply *r)
{
    r->status = 303;
    r->location = "/";
}

/* The page goes to MHD in place (MHD frees its own copies unzeroed): the buffer moves into
 * the connection's state, zeroed and freed when the request ends (web_conn_end). */
static enum MHD_Result send_reply(struct MHD_Connection *conn, struct web_conn *wc, struct web_reply *r)
{
    const char *body = r->static_body;
    size_t len = body != NULL ? strlen(body) : 0;
    if (body == NULL) {
        web_buf_free(&wc->reply);
        wc->reply = r->body;
        web_buf_init(&r->body);
        body = wc->reply.p != NULL ? wc->reply.p : "";
        len = wc->reply.len;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->cacheable) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "max-age=3600");
    } else {
        /* patient pages must not outlive the session in a cache or the back button */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_PRAGMA, "no-cache");
    }
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    /* same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form
     * posts, and the Origin check below needs the real one; URLs carry no patient data */
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()");
    if (r->clear_site_data)
        MHD_add_response_header(resp, "Clear-Site-Data", "\"cache\", \"storage\"");
    if (r->location != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    for (int i = 0; i < r->n_cookies; i++)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->cookies[i]);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- pages ------------------------------------------------------------------------------ */

struct web_request {
    web_server *s;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    int night;           /* the theme cookie: 1 night, 0 day, -1 the device's setting */
    int authed;          /* the cookie names the unlocked session */
};

static void chrome_for(const struct web_request *q, const char *title, struct web_chrome *c)
{
    memset(c, 0, sizeof *c);
    c->title = title;
    c->night = q->night;
    if (q->authed) {
        c->user = q->s->sess.who.user;
        c->role = q->s->sess.who.role == STORE_ROLE_CLINICIAN ? "clinician" : "urgent care";
        c->csrf = q->s->sess.csrf;
        c->idle_seconds = q->s->cfg.idle_seconds;
    }
}

/* A page before any session (unlock, or a locked copy's break glass) with a fresh
 * pre-session form token. */
static void page_pre(const struct web_request *q, struct web_reply *r, int status, const char *message,
                     const char *user_value, int glass)
{
    char pre[WEB_TOKEN_HEX + 1];
    struct web_chrome c;
    chrome_for(q, glass ? "Locked copy" : "Unlock", &c);
    c.user = NULL;
    c.csrf = NULL;
    c.idle_seconds = 0;
    new_token(pre);
    /* double submit: a cross-site form cannot carry this SameSite=Strict cookie */
    add_cookie(r, COOKIE_PRE, pre, -1);
    r->status = status;
    if (glass)
        web_render_glass(&r->body, &c, pre, message, user_value);
    else
        web_render_unlock(&r->body, &c, pre, message, user_value);
    cry_memzero(pre, sizeof pre);
}

static void page_unlock(const struct web_request *q, struct web_reply *r, int status, const char *message,
                        const char *user_value)
{
    page_pre(q, r, status, message, user_value, 0);
}

/* The locked copy's page, with the break-glass form. */
static void page_glass(const struct web_request *q, struct web_reply *r, int status, const char *message,
                       const char *user_value)
{
    page_pre(q, r, status, message, user_value, 1);
}

static void page_message(const struct web_request *q, struct web_reply *r, int status, const char *heading,
                         const char *message)
{
    struct web_chrome c;
    chrome_for(q, heading, &c);
    r->status = status;
    web_render_message(&r->body, &c, heading, message);
}

/* The find-a-patient page, with the device's copy age and (clinicians) pending work. */
static void page_home(const struct web_request *q, struct web_reply *r, int status, struct web_home *h)
{
    struct web_session *ss = &q->s->sess;
    struct card_context ctx;
    card_context_init(&ctx, ss->st, plat_wall_now());
    char age[96];
    card_copy_age(&ctx, age, sizeof age);
    h->copy_age = age;
    h->stale = card_copy_stale(&ctx);
    lease_card_context(ss->st, 0, &ctx);
    h->lease_days_left = ctx.lease_days_left > 0 ? ctx.lease_days_left : 0;
    h->clinician = ss->who.role == STORE_ROLE_CLINICIAN;
    struct store_counts counts;
    if (h->clinician && store_counts_get(ss->st, &counts) == CMC_OK) {
        h->pending = counts.pending;
        h->conflicts = counts.conflicts;
    }
    struct web_chrome c;
    chrome_for(q, "Find a patient", &c);
    r->status = status;
    web_render_home(&r->body, &c, h);
}

static const char *form(const struct web_request *q, const char *name, char *out, size_t cap)
{
    int rc = web_form_value(q->body, q->body_len, name, out, cap);
    if (rc == CMC_OK)
        return out;
    out[0] = '\0';
    return NULL;
}

/* ---- routes ----------------------------------------------------------------------------- */

typedef void (*web_page_fn)(const struct web_request *q, struct web_reply *r, int status, const char *message,
                            const char *user_value);

/* Checks the pre-session token, the user and the PIN, and opens the replica: CMC_OK with *key,
 * *role_key (a clinician's, else NULL: it opens the clinical file), *st and *who, or a page
 * already rendered by `page` saying what went wrong (user is the form's user name, WEB user
 * buffer). The lease is not checked here. */
static int open_with_pin(const struct web_request *q, struct web_reply *r, web_page_fn page, char *user,
                         struct cry_secret **key, struct cry_secret **role_key, store **st,
                         struct store_session *who)
{
    struct cry_unlocked u;
    memset(&u, 0, sizeof u);
    web_server *s = q->s;
    char pre_field[WEB_TOKEN_HEX + 2], pre_cookie[WEB_TOKEN_HEX + 2];
    char pin[WEB_PIN_BUF];
    char role[CRY_ROLE_MAX + 1] = "";
    char marker[4200];
    cry_slots *slots = NULL;
    const char *cookies = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    int rc = CMC_ERR_LOCKED;
    pin[0] = '\0';
    user[0] = '\0';

    if (form(q, "pre", pre_field, sizeof pre_field) == NULL ||
        web_cookie_value(cookies, COOKIE_PRE, pre_cookie, sizeof pre_cookie) != CMC_OK ||
        !token_matches(pre_field, pre_cookie)) {
        page(q, r, 403, "This form is out of date. Enter your user name and PIN again.", NULL);
        goto out;
    }
    if (form(q, "user", user, CRY_USER_MAX + 2) == NULL || user[0] == '\0' || strlen(user) > CRY_USER_MAX) {
        page(q, r, 400, "Enter your user name.", NULL);
        goto out;
    }
    if (form(q, "pin", pin, sizeof pin) == NULL || pin[0] == '\0') {
        page(q, r, 400, "Enter your PIN.", user);
        goto out;
    }
    if (plat_path_join(marker, sizeof marker, s->cfg.dir, "WIPED") == CMC_OK && plat_exists(marker)) {
        page(q, r, 423, "This device has been wiped by order of the hub; it holds no plans.", NULL);
        goto out;
    }
    rc = cry_slots_load(s->cfg.slots_path, &slots);
    if (rc != CMC_OK) {
        page(q, r, 500,
             rc == CMC_ERR_NOT_FOUND ? "No replica on this device: run 'cmc-agent init' first."
                                     : "The key-slot file cannot be read; see 'cmc-agent verify'.",
             NULL);
        goto out;
    }
    /* wrong PINs before make this attempt run more key derivations first (the throttle) */
    rc = cry_slots_unlock_ex(slots, user, pin, &u);
    if (rc == CMC_OK) {
        *key = u.key;
        *role_key = u.role_key;
        u.key = u.role_key = NULL;
        memcpy(role, u.role, sizeof role);
    }
    cry_unlocked_clear(&u);
    if (rc == CMC_ERR_THROTTLED || rc == CMC_ERR_LOCKED || rc == CMC_ERR_IO) { /* or the TPM's */
        page(q, r, rc == CMC_ERR_THROTTLED ? 429 : 503, cmc_errmsg(), user);
        goto out;
    }
    if (rc != CMC_OK) {
        plat_log(PLAT_LOG_INFO, "web: a wrong user or PIN was refused");
        page(q, r, 401, "Wrong user or PIN. Nothing was unlocked.", user);
        goto out;
    }
    memset(who, 0, sizeof *who);
    snprintf(who->user, sizeof who->user, "%s", user);
    who->role_key = *role_key; /* the page never edits, so no signing key */
    who->role = store_role_from_name(role);
    if (who->role == STORE_ROLE_NONE) {
        page(q, r, 500, "The key slot names an unknown role.", NULL);
        rc = CMC_ERR_TAMPERED;
        goto out;
    }
    if ((rc = store_open(s->cfg.replica_path, *key, who, st)) != CMC_OK)
        page(q, r, 500, cmc_errmsg(), NULL);
out:
    if (rc != CMC_OK) {
        cry_secret_free(*key);
        *key = NULL;
        cry_secret_free(*role_key);
        *role_key = NULL;
    }
    cry_memzero(pin, sizeof pin);
    cry_memzero(pre_field, sizeof pre_field);
    cry_memzero(pre_cookie, sizeof pre_cookie);
    cry_slots_free(slots);
    return rc;
}

static void route_unlock(const struct web_request *q, struct web_reply *r)
{
    web_server *s = q->s;
    char user[CRY_USER_MAX + 2];
    struct cry_secret *key = NULL, *role_key = NULL;
    store *st = NULL;
    struct store_session who;
    int rc;
    if (open_with_pin(q, r, page_unlock, user, &key, &role_key, &st, &who) != CMC_OK)
        goto out;
    if ((rc = lease_check(st)) != CMC_OK) {
        /* locked: say why, and offer break glass for one patient */
        page_glass(q, r, 423, cmc_errmsg(), user);
        goto out;
    }
    /* one unlocked session at a time: this one replaces any other */
    session_close(&s->sess);
    s->sess.active = 1;
    s->sess.key = key;
    s->sess.role_key = role_key;
    s->sess.st = st;
    s->sess.who = who;
    s->sess.last_ns = plat_mono_now_ns();
    new_token(s->sess.id);
    new_token(s->sess.csrf);
    key = role_key = NULL;
    st = NULL;
    add_cookie(r, COOKIE_SESSION, s->sess.id, -1);
    add_cookie(r, COOKIE_PRE, "", 0);
    redirect_home(r);
    plat_log(PLAT_LOG_INFO, "web: unlocked a session (%s)", store_role_name(who.role));
out:
    store_close(st);
    cry_secret_free(key);
    cry_secret_free(role_key);
}

/* POST /break-glass: a lease-locked copy opens one patient's card for a user who gives their
 * PIN, the NHS number and a reason. No session is kept: the next request is locked again.
 * The view is audited as break_glass with the reason (agent/lease.h). */
static void route_break_glass(const struct web_request *q, struct web_reply *r)
{
    char user[CRY_USER_MAX + 2], raw[64], nhs[PLAN_NHS_LEN + 1], reason_raw[LEASE_REASON_MAX * 2 + 2];
    char reason[LEASE_REASON_MAX + 1];
    struct cry_secret *key = NULL, *role_key = NULL;
    store *st = NULL;
    struct store_session who;
    if (open_with_pin(q, r, page_glass, user, &key, &role_key, &st, &who) != CMC_OK)
        goto out;
    if (lease_check(st) == CMC_OK) {
        page_unlock(q, r, 409, "This copy is not locked: unlock it to open plans.", user);
        goto out;
    }
    cmc_err_clear();
    if (form(q, "nhs", raw, sizeof raw) == NULL || plan_nhs_normalise(raw, nhs) != CMC_OK) {
        page_glass(q, r, 422, "Enter the patient's NHS number (10 digits, check digit right).", user);
        goto out;
    }
    if (form(q, "reason", reason_raw, sizeof reason_raw) == NULL || lease_reason_check(reason_raw, reason) != CMC_OK) {
        page_glass(q, r, 422, "Give the reason this plan must be opened from a locked copy: one line, at least 8 "
                              "characters.", user);
        goto out;
    }
    struct web_chrome c;
    chrome_for(q, "Break glass: summary card", &c);
    c.user = NULL; /* no session: nothing else opens from this page */
    c.csrf = NULL;
    c.idle_seconds = 0;
    int rc = web_glass_card(&r->body, &c, st, nhs, reason);
    if (rc == CMC_ERR_NOT_FOUND)
        page_glass(q, r, 404, "No plan on this device for that NHS number.", user);
    else if (rc != CMC_OK)
        page_message(q, r, 500, "Cannot show the plan", cmc_errmsg());
    else
        plat_log(PLAT_LOG_INFO, "web: a locked copy was opened for one plan (break glass)");
out:
    cry_memzero(reason_raw, sizeof reason_raw);
    cry_memzero(reason, sizeof reason);
    store_close(st);
    cry_secret_free(key);
    cry_secret_free(role_key);
}

static void route_lock(web_server *s, struct web_reply *r)
{
    session_close(&s->sess);
    add_cookie(r, COOKIE_SESSION, "", 0);
    r->clear_site_data = 1;
    redirect_home(r);
    plat_log(PLAT_LOG_INFO, "web: locked on request");
}

/* Fills a card context and this plan's open conflicts (clinicians), then renders. */
static void show_plan(const struct web_request *q, struct web_reply *r, struct plan *p, int pending,
                      json_t *changed, enum web_view view)
{
    struct web_session *ss = &q->s->sess;
    struct card_context ctx;
    card_context_init(&ctx, ss->st, plat_wall_now());
    ctx.pending_edits = pending;
    ctx.changed_paths = changed;
    struct card_source src;
    if (card_source_load(ss->st, p, pending, &src) != CMC_OK) {
        page_message(q, r, 500, "Cannot show the plan", cmc_errmsg());
        return;
    }
    card_source_apply(&src, &ctx);
    lease_card_context(ss->st, 0, &ctx);
    struct web_card card = { .p = p, .ctx = &ctx, .view = view };
    struct web_chrome c;
    chrome_for(q, view == WEB_VIEW_CARD ? "Summary card" : view == WEB_VIEW_FULL ? "Full plan" : "Print view", &c);
    c.print = view == WEB_VIEW_PRINT;
    web_render_card(&r->body, &c, &card);
    card_source_free(&src);
}

/* Loads the plan this session sees by NHS number or plan id, audits, shows it. */
static void view_plan(const struct web_request *q, struct web_reply *r, const char *key, enum web_view view,
                      int by_nhs)
{
    store *st = q->s->sess.st;
    struct plan p;
    plan_init(&p);
    json_t *changed = json_array();
    int pending = 0;
    int rc = changed == NULL ? cmc_fail(CMC_ERR_NOMEM, "out of memory") : lease_check(st);
    if (rc == CMC_OK)
        rc = view_load(st, key, &p, &pending, changed);
    if (rc == CMC_ERR_NOT_FOUND) {
        /* a miss is audited too: someone looked for this patient here */
        audit_record(st, AUDIT_LOOKUP_MISS, NULL, by_nhs ? key : NULL);
        struct web_home h;
        memset(&h, 0, sizeof h);
        char msg[200];
        if (by_nhs)
            snprintf(msg, sizeof msg, "No plan on this device for NHS number %.3s %.3s %.4s. Check the number, "
                                      "or search by name, date of birth and postcode.",
                     key, key + 3, key + 6);
        else
            snprintf(msg, sizeof msg, "That plan is no longer on this device.");
        h.message = msg;
        h.nhs_value = by_nhs ? key : NULL;
        page_home(q, r, 404, &h);
        goto out;
    }
    if (rc != CMC_OK)
        goto failed;
    /* recording is part of showing: no entry, no card */
    audit_record(st, AUDIT_PAGE_VIEW, p.plan_id, NULL);
    show_plan(q, r, &p, pending, changed, view);
    goto out;
failed:
    page_message(q, r, rc == CMC_ERR_LOCKED ? 423 : 500, "Cannot show the plan", cmc_errmsg());
out:
    json_decref(changed);
    plan_free(&p);
}

static void route_lookup(const struct web_request *q, struct web_reply *r)
{
    char raw[64], nhs[PLAN_NHS_LEN + 1];
    struct web_home h;
    memset(&h, 0, sizeof h);
    if (form(q, "nhs", raw, sizeof raw) == NULL || raw[0] == '\0') {
        h.message = "Enter the patient's NHS number (10 digits).";
        page_home(q, r, 422, &h);
        return;
    }
    if (plan_nhs_normalise(raw, nhs) != CMC_OK) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s. Check the number with the patient's documents and type it again.",
                 cmc_errmsg());
        /* plan_nhs_normalise's details read "NHS number ...": start with a capital */
        if (msg[0] >= 'a' && msg[0] <= 'z')
            msg[0] = (char)(msg[0] - 'a' + 'A');
        h.message = msg;
        h.nhs_value = raw;
        page_home(q, r, 422, &h);
        return;
    }
    view_plan(q, r, nhs, WEB_VIEW_CARD, 1);
}

static void route_plan(const struct web_request *q, struct web_reply *r)
{
    char id[PLAN_ID_LEN + 2], view[16];
    if (form(q, "plan_id", id, sizeof id) == NULL || strlen(id) != PLAN_ID_LEN) {
        page_message(q, r, 400, "Cannot show the plan", "The request did not name a plan.");
        return;
    }
    enum web_view v = WEB_VIEW_CARD;
    if (form(q, "view", view, sizeof view) != NULL) {
        if (strcmp(view, "full") == 0)
            v = WEB_VIEW_FULL;
        else if (strcmp(view, "print") == 0)
            v = WEB_VIEW_PRINT;
    }
    view_plan(q, r, id, v, 0);
}

static void route_search(const struct web_request *q, struct web_reply *r)
{
    store *st = q->s->sess.st;
    char name[128], dob[32], postcode[32];
    const char *n = form(q, "name", name, sizeof name);
    const char *d = form(q, "dob", dob, sizeof dob);
    const char *pc = form(q, "postcode", postcode, sizeof postcode);
    struct web_home h;
    memset(&h, 0, sizeof h);
    h.name_value = n;
    h.dob_value = d;
    h.postcode_value = pc;
    n = n != NULL && n[0] != '\0' ? n : NULL;
    d = d != NULL && d[0] != '\0' ? d : NULL;
    pc = pc != NULL && pc[0] != '\0' ? pc : NULL;
    int64_t t;
    if (n == NULL && d == NULL && pc == NULL) {
        h.message = "Enter a name, a date of birth or a postcode (better: all three).";
        page_home(q, r, 422, &h);
        return;
    }
    if (d != NULL && (strlen(d) != 10 || plat_parse_time(d, &t) != CMC_OK)) {
        h.message = "The date of birth must be a date (YYYY-MM-DD).";
        page_home(q, r, 422, &h);
        return;
    }
    int rc = lease_check(st);
    char criteria[200];
    snprintf(criteria, sizeof criteria, "name=%s;dob=%s;postcode=%s", n ? n : "", d ? d : "", pc ? pc : "");
    if (rc == CMC_OK)
        audit_record(st, AUDIT_SEARCH, NULL, criteria);
    cry_memzero(criteria, sizeof criteria);
    struct store_query sq = { .name = n, .date_of_birth = d, .postcode = pc };
    struct store_hit *hits = NULL;
    size_t nh = 0, total = 0;
    char shown[160] = "";
    if (rc == CMC_OK)
        rc = store_search_counted(st, &sq, STORE_SEARCH_SHOWN, &hits, &nh, &total);
    store_search_words(&sq, nh, total, shown, sizeof shown);
    if (rc != CMC_OK) {
        page_message(q, r, rc == CMC_ERR_LOCKED ? 423 : 500, "Cannot search", cmc_errmsg());
        return;
    }
    h.hits = hits;
    h.n_hits = nh;
    h.total = total;
    h.shown_words = shown;
    h.searched = 1;
    page_home(q, r, 200, &h);
    store_hits_free(hits, nh);
}

static void route_theme(const struct web_request *q, struct web_reply *r)
{
    char theme[16];
    if (form(q, "theme", theme, sizeof theme) != NULL && (strcmp(theme, "night") == 0 || strcmp(theme, "day") == 0))
        add_cookie(r, COOKIE_THEME, theme, 365 * 86400);
    redirect_home(r);
}

/* The Host header must name this server: a page of another site resolving to 127.0.0.1
 * (DNS rebinding) is refused. */
static int host_allowed(const web_server *s, const char *host)
{
    char want[96];
    if (host == NULL)
        return 0;
    static const char *const names[] = { "127.0.0.1", "localhost", "[::1]" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "%s:%u", names[i], (unsigned)s->port);
        if (strcmp(host, want) == 0)
            return 1;
    }
    snprintf(want, sizeof want, strchr(s->cfg.host, ':') ? "[%s]:%u" : "%s:%u", s->cfg.host, (unsigned)s->port);
    return strcmp(host, want) == 0;
}

/* A POST must come from this page itself: the browser's own Origin and Sec-Fetch-Site say so. */
static int same_origin(struct MHD_Connection *conn, const char *host)
{
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return 0;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin != NULL) {
        char want[128];
        snprintf(want, sizeof want, "http://%s", host);
        if (strcmp(origin, want) != 0)
            return 0;
    }
    return 1;
}

static void route(web_server *s, struct MHD_Connection *conn, const char *method, const char *url,
                  const struct web_conn *wc, struct web_reply *r)
{
    struct web_request q = { .s = s, .conn = conn, .method = method, .path = url, .body = wc->body,
                             .body_len = wc->len, .night = -1 };
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *cookies = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    char value[WEB_TOKEN_HEX + 2];
    int is_post = strcmp(method, "POST") == 0;

    if (!host_allowed(s, host)) {
        page_message(&q, r, 421, "Wrong address", "Open this page as http://127.0.0.1:PORT/ on this device.");
        return;
    }
    if (web_cookie_value(cookies, COOKIE_THEME, value, sizeof value) == CMC_OK)
        q.night = strcmp(value, "night") == 0 ? 1 : strcmp(value, "day") == 0 ? 0 : -1;
    expire_if_idle(s);
    if (strncmp(url, WEB_FHIR_PREFIX, strlen(WEB_FHIR_PREFIX)) == 0) {
        /* an ePR app on this device; its reads do not keep the session from locking */
        web_fhir_serve(conn, s->sess.active ? s->sess.st : NULL, s->cfg.dir, method, url, host,
                       &r->status, &r->body);
        r->content_type = FHIR_CONTENT_TYPE;
        return;
    }
    if (s->sess.active && web_cookie_value(cookies, COOKIE_SESSION, value, sizeof value) == CMC_OK &&
        token_matches(value, s->sess.id))
        q.authed = 1;
    cry_memzero(value, sizeof value);

    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        if (strcmp(url, "/style.css") == 0) {
            r->content_type = "text/css; charset=utf-8";
            web_render_css(&r->body);
            r->cacheable = 1;
        } else if (strcmp(url, "/") == 0) {
            if (q.authed) {
                s->sess.last_ns = plat_mono_now_ns();
                struct web_home h;
                memset(&h, 0, sizeof h);
                page_home(&q, r, 200, &h);
            } else {
                page_unlock(&q, r, 200, NULL, NULL);
            }
        } else {
            page_message(&q, r, 404, "Not found", "There is no such page here.");
        }
        return;
    }
    if (!is_post) {
        page_message(&q, r, 405, "Not allowed", "This page takes GET and POST only.");
        return;
    }
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!same_origin(conn, host) || ctype == NULL ||
        strncmp(ctype, "application/x-www-form-urlencoded", strlen("application/x-www-form-urlencoded")) != 0) {
        page_message(&q, r, 403, "Refused", "This form did not come from this page.");
        return;
    }
    if (strcmp(url, "/unlock") == 0) {
        route_unlock(&q, r);
        return;
    }
    if (strcmp(url, "/break-glass") == 0) {
        route_break_glass(&q, r);
        return;
    }
    if (!q.authed) {
        page_unlock(&q, r, 401, "Locked. Unlock to continue.", NULL);
        return;
    }
    char csrf[WEB_TOKEN_HEX + 2];
    int ok = form(&q, "csrf", csrf, sizeof csrf) != NULL && token_matches(csrf, s->sess.csrf);
    cry_memzero(csrf, sizeof csrf);
    if (!ok) {
        page_message(&q, r, 403, "Refused", "This form is out of date: go back to the search and try again.");
        return;
    }
    s->sess.last_ns = plat_mono_now_ns();
    if (strcmp(url, "/lock") == 0)
        route_lock(s, r);
    else if (strcmp(url, "/lookup") == 0)
        route_lookup(&q, r);
    else if (strcmp(url, "/search") == 0)
        route_search(&q, r);
    else if (strcmp(url, "/plan") == 0)
        route_plan(&q, r);
    else if (strcmp(url, "/theme") == 0)
        route_theme(&q, r);
    else
        page_message(&q, r, 404, "Not found", "There is no such page here.");
}

/* ---- libmicrohttpd ---------------------------------------------------------------------- */

static void web_conn_end(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct web_conn *wc = *con_cls;
    if (wc == NULL)
        return;
    if (wc->body != NULL) {
        cry_memzero(wc->body, WEB_MAX_BODY + 1); /* a PIN may have passed through */
        cmc_free(wc->body);
    }
    web_buf_free(&wc->reply); /* zeroes the page */
    cmc_free(wc);
    *con_cls = NULL;
}

static enum MHD_Result web_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    web_server *s = cls;
    struct web_conn *wc = *con_cls;
    (void)version;
    if (wc == NULL) {
        if ((wc = cmc_calloc(1, sizeof *wc)) == NULL)
            return MHD_NO;
        *con_cls = wc;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > WEB_MAX_BODY)
            wc->too_large = 1;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (wc->too_large || wc->len + n > WEB_MAX_BODY) {
            wc->too_large = 1; /* read and drop the rest; answer 413 at the end */
            return MHD_YES;
        }
        if (wc->body == NULL && (wc->body = cmc_malloc(WEB_MAX_BODY + 1)) == NULL)
            return MHD_NO;
        memcpy(wc->body + wc->len, upload_data, n);
        wc->len += n;
        wc->body[wc->len] = '\0';
        return MHD_YES;
    }
    struct web_reply r;
    reply_init(&r);
    pthread_mutex_lock(&s->mu);
    if (wc->too_large) {
        struct web_request q = { .s = s, .conn = conn, .night = -1 };
        page_message(&q, &r, 413, "Too large", "That request is too large.");
    } else {
        route(s, conn, method, url, wc, &r);
    }
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ret;
    if (web_buf_status(&r.body) != CMC_OK) {
        web_buf_free(&r.body);
        r.status = 500;
        r.static_body = "<!DOCTYPE html><title>Error</title><p>Out of memory.</p>";
    }
    /* the path only: a route never carries patient data, and unknown paths are not echoed */
    plat_log(PLAT_LOG_DEBUG, "web: %s -> %d", method, r.status);
    ret = send_reply(conn, wc, &r);
    web_buf_free(&r.body);
    return ret;
}

int web_server_start(const struct web_config *cfg, web_server **out)
{
    *out = NULL;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (cfg->idle_seconds <= 0)
        return cmc_fail(CMC_ERR_USAGE, "the idle time must be at least one second");
    web_mem_start(); /* runs for hours: what it frees must not keep plan text */
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, cfg->host, &sin.sin_addr) == 1 && (ntohl(sin.sin_addr.s_addr) >> 24) == 127) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(cfg->port);
        sa = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, cfg->host, &sin6.sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr)) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(cfg->port);
        sa = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        return cmc_fail(CMC_ERR_USAGE, "the crew's page serves loopback addresses only");
    }
    web_server *s = cmc_calloc(1, sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory starting the page");
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    s->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, web_handle, s, MHD_OPTION_SOCK_ADDR, sa,
                                 MHD_OPTION_NOTIFY_COMPLETED, web_conn_end, (void *)s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (s->daemon == NULL) {
        int rc = cmc_fail(CMC_ERR_NET, "cannot listen on %s port %u (in use or not permitted)", cfg->host,
                          (unsigned)cfg->port);
        web_server_stop(s);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL && info->port != 0 ? info->port : cfg->port;
    *out = s;
    return CMC_OK;
}

uint16_t web_server_port(const web_server *s)
{
    return s->port;
}

int web_server_unlocked(web_server *s)
{
    pthread_mutex_lock(&s->mu);
    int active = s->sess.active;
    pthread_mutex_unlock(&s->mu);
    return active;
}

void web_server_tick(web_server *s)
{
    pthread_mutex_lock(&s->mu);
    expire_if_idle(s);
    pthread_mutex_unlock(&s->mu);
}

void web_server_stop(web_server *s)
{
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    session_close(&s->sess);
    pthread_mutex_destroy(&s->mu);
    cmc_free(s);
}

/* ---- cmc-agent serve -------------------------------------------------------------------- */

static volatile sig_atomic_t web_stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    web_stop_requested = 1;
}

static int idle_seconds_from_env(int *out)
{
    const char *v = getenv("CMC_WEB_IDLE_SECONDS");
    *out = WEB_IDLE_SECONDS_DEFAULT;
    if (v == NULL || v[0] == '\0')
        return CMC_OK;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 86400)
        return cmc_fail(CMC_ERR_USAGE, "CMC_WEB_IDLE_SECONDS must be 1 to 86400 seconds");
    *out = (int)n;
    return CMC_OK;
}

int web_serve(const struct web_serve_opts *o)
{
    char host[64];
    struct web_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = web_parse_listen(o->listen, host, sizeof host, &cfg.port);
    if (rc != CMC_OK)
        return rc;
    if ((rc = idle_seconds_from_env(&cfg.idle_seconds)) != CMC_OK)
        return rc;
    if (!plat_exists(o->slots_path))
        return cmc_fail(CMC_ERR_NOT_FOUND, "no replica in %s: run 'cmc-agent init' first", o->dir);
    cfg.host = host;
    cfg.dir = o->dir;
    cfg.slots_path = o->slots_path;
    cfg.replica_path = o->replica_path;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    web_server *s = NULL;
    if ((rc = web_server_start(&cfg, &s)) != CMC_OK)
        return rc;
    printf("Serving the crew's page on http://%s%s%s:%u/ (this device only; locks after %d s idle). "
           "Stop with Ctrl-C.\n",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", (unsigned)web_server_port(s),
           cfg.idle_seconds);
    fflush(stdout);
    while (!web_stop_requested) {
        plat_sleep_ms(250);
        web_server_tick(s);
    }
    web_server_stop(s);
    return CMC_OK;
}
