/* The crew's page without a browser: the loopback-only listen address, form and cookie
 * parsing, HTML escaping, the card's order and flags as HTML, out-of-memory rendering, and
 * the real server in-process over HTTP (libcurl): unlock, wrong PIN, the form tokens, the
 * Origin and Host checks, security headers, the card, the audit entries, Lock and the idle
 * lock. The browser tests proper are tests/e2e/test_web_page.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/audit.h"
#include "agent/store.h"
#include "agent/web.h"
#include "agent/web_html.h"
#include "agent/web_req.h"
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/plan.h"
#include "tests/support/card_page.h"
#include "tests/support/example_plan_model.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PUB_ID "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11"
#define PUB_NHS "9434765919"
#define USER "medic"
#define PIN "2468-test"

static void set_text(char **field, const char *value)
{
    cmc_free(*field);
    *field = value != NULL ? cmc_strdup(value) : NULL;
}

/* The example plan (shared/examples/plan.json: every section of the card present) with this
 * CPR decision and review date, a name with markup in it, a plainly named non-anticipatory
 * medicine, and the LPA listed before the GP. */
static void make_plan(struct plan *p, const char *cpr, const char *review_due)
{
    struct plan_contact first;
    tst_example_plan_parse(p);
    assert_string_equal(p->plan_id, PUB_ID);
    assert_string_equal(p->nhs_number, PUB_NHS);
    set_text(&p->patient.family_name, "Okafor <b>");
    p->resuscitation.decision = PLAN_CPR_NONE;
    for (int v = PLAN_CPR_FOR_CPR; v <= PLAN_CPR_NOT_DISCUSSED; v++)
        if (strcmp(plan_cpr_name(v), cpr) == 0)
            p->resuscitation.decision = v;
    assert_int_not_equal(p->resuscitation.decision, PLAN_CPR_NONE);
    set_text(&p->review_due, review_due);
    assert_true(p->n_medications > 1 && !p->medications[0].anticipatory && p->n_contacts > 1);
    set_text(&p->medications[0].name, "Morphine oral");
    first = p->contacts[0];
    p->contacts[0] = p->contacts[p->n_contacts - 1];
    p->contacts[p->n_contacts - 1] = first;
    assert_int_equal(p->contacts[0].role, PLAN_CONTACT_LPA);
}

/* ---- parsers ---------------------------------------------------------------------------- */

static void test_listen_is_loopback_only(void **state)
{
    (void)state;
    char host[64];
    uint16_t port = 1;
    assert_int_equal(web_parse_listen("127.0.0.1:8080", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(web_parse_listen("127.3.2.1:0", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "127.3.2.1");
    assert_int_equal(port, 0);
    assert_int_equal(web_parse_listen("localhost:9000", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(web_parse_listen("[::1]:9001", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9001);
    static const char *const refused[] = { "0.0.0.0:8080", "192.168.1.10:80", "10.0.0.1:80", "[::]:80",
                                           "[2001:db8::1]:80", "example.org:80", "127.0.0.1", "127.0.0.1:",
                                           "127.0.0.1:65536", "127.0.0.1:80x", ":80", "", "[::1]80" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(web_parse_listen(refused[i], host, sizeof host, &port), CMC_ERR_USAGE);
    }
    assert_int_equal(web_parse_listen("0.0.0.0:8080", host, sizeof host, &port), CMC_ERR_USAGE);
    assert_non_null(strstr(cmc_errmsg(), "not a loopback address"));
}

static void test_form_values(void **state)
{
    (void)state;
    const char *body = "csrf=ab12&nhsx=1&nhs=+943+476%205919+&empty=&flag&name=O%27Brien%2DSmith&nhs=999";
    char out[32];
    assert_int_equal(web_form_value(body, strlen(body), "nhs", out, sizeof out), CMC_OK);
    assert_string_equal(out, "943 476 5919"); /* decoded, trimmed, first occurrence */
    assert_int_equal(web_form_value(body, strlen(body), "name", out, sizeof out), CMC_OK);
    assert_string_equal(out, "O'Brien-Smith");
    assert_int_equal(web_form_value(body, strlen(body), "empty", out, sizeof out), CMC_OK);
    assert_string_equal(out, "");
    assert_int_equal(web_form_value(body, strlen(body), "flag", out, sizeof out), CMC_OK);
    assert_string_equal(out, "");
    assert_int_equal(web_form_value(body, strlen(body), "csr", out, sizeof out), CMC_ERR_NOT_FOUND);
    assert_int_equal(web_form_value(NULL, 0, "nhs", out, sizeof out), CMC_ERR_NOT_FOUND);
    /* only `len` bytes are read */
    assert_int_equal(web_form_value("a=1&b=2", 3, "b", out, sizeof out), CMC_ERR_NOT_FOUND);

    assert_int_equal(web_form_value("nhs=%G1", 7, "nhs", out, sizeof out), CMC_ERR_INVALID);
    assert_int_equal(web_form_value("nhs=12%4", 8, "nhs", out, sizeof out), CMC_ERR_INVALID);
    assert_int_equal(web_form_value("nhs=1%00", 8, "nhs", out, sizeof out), CMC_ERR_INVALID);
    /* the detail names the field, never the value */
    assert_int_equal(web_form_value("pin=9%zz9", 9, "pin", out, sizeof out), CMC_ERR_INVALID);
    assert_null(strstr(cmc_errmsg(), "9%zz9"));
    assert_non_null(strstr(cmc_errmsg(), "pin"));
    char tiny[4];
    assert_int_equal(web_form_value("nhs=12345", 9, "nhs", tiny, sizeof tiny), CMC_ERR_TOO_LARGE);
    assert_int_equal(web_form_value("nhs=123", 7, "nhs", tiny, sizeof tiny), CMC_OK);
    assert_string_equal(tiny, "123");
}

static void test_cookie_values(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(web_cookie_value("a=1; cmc_session=abc;b=2", "cmc_session", out, sizeof out), CMC_OK);
    assert_string_equal(out, "abc");
    assert_int_equal(web_cookie_value("cmc_session_old=1; x=2", "cmc_session", out, sizeof out), CMC_ERR_NOT_FOUND);
    assert_int_equal(web_cookie_value("b=2; a=", "a", out, sizeof out), CMC_OK); /* a cleared cookie */
    assert_string_equal(out, "");
    assert_int_equal(web_cookie_value(NULL, "a", out, sizeof out), CMC_ERR_NOT_FOUND);
    assert_int_equal(web_cookie_value("a=0123456789abcdefXYZ", "a", out, sizeof out), CMC_ERR_TOO_LARGE);
}

/* ---- rendering -------------------------------------------------------------------------- */

static void test_text_is_escaped(void **state)
{
    (void)state;
    struct web_buf b;
    web_buf_init(&b);
    web_buf_text(&b, "<script>alert(\"x\")</script> & 'q'");
    web_buf_raw(&b, "|");
    web_buf_text(&b, NULL);
    web_buf_raw(&b, "|");
    web_buf_text(&b, "");
    assert_int_equal(web_buf_status(&b), CMC_OK);
    assert_string_equal(b.p, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;|-|-");
    web_buf_free(&b);
    assert_null(b.p);
}

/* Renders the card of `p` with the copy synced `age` seconds ago. */
static char *render_card(const struct plan *p, int64_t age, const json_t *changed, enum web_view view)
{
    struct card_context ctx = { .now = 1800000000, .last_sync = age < 0 ? -1 : 1800000000 - age,
                                .pending_edits = changed ? (int)json_array_size(changed) : 0,
                                .changed_paths = changed, .lease_days_left = -1 };
    struct web_chrome c = { .title = "Summary card", .user = USER, .role = "urgent care", .csrf = "tok",
                            .idle_seconds = 180, .night = -1, .print = view == WEB_VIEW_PRINT };
    struct web_card card = { .p = p, .ctx = &ctx, .view = view };
    return tst_card_page(&c, &card);
}

static void test_card_order_and_content(void **state)
{
    (void)state;
    struct plan p;
    make_plan(&p, "dnacpr", "2027-02-11");
    char *html = render_card(&p, 600, NULL, WEB_VIEW_CARD);
    /* the banner, then the ten sections in the order of DOMAIN.md */
    static const char *const order[] = { "id=\"banner\"", "id=\"identity\"", "id=\"cpr\"", "id=\"ceiling\"",
                                         "id=\"adrt\"", "id=\"places\"", "id=\"contacts\"", "id=\"diagnosis\"",
                                         "id=\"medicines\"", "id=\"allergies\"", "id=\"problems\"" };
    const char *prev = html;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *at = strstr(html, order[i]);
        assert_non_null(at);
        assert_true(at > prev || (i == 0 && at >= prev));
        prev = at;
    }
    assert_non_null(strstr(html, "class=\"cpr cpr-dnacpr\""));
    assert_non_null(strstr(html, "DNACPR - do NOT attempt CPR"));
    /* the GP before the LPA though the plan lists the LPA first; tel: links dial digits */
    const char *gp = strstr(html, "href=\"tel:02079460100\"");
    const char *lpa = strstr(html, "href=\"tel:07700900123\"");
    assert_non_null(gp);
    assert_non_null(lpa);
    assert_true(gp < lpa);
    assert_non_null(strstr(html, "Midazolam injection"));
    assert_null(strstr(html, "Morphine oral")); /* the card shows anticipatory medicines only */
    assert_non_null(strstr(html, "Okafor &lt;b&gt;"));
    assert_null(strstr(html, "Okafor <b>"));
    assert_null(strstr(html, "STALE COPY"));
    assert_null(strstr(html, "REVIEW OVERDUE"));
    assert_null(strstr(html, "NOT APPROVED"));
    assert_null(strstr(html, "<script"));
    /* no timed reload (WCAG 2.2.1): the server locks the idle session, the header says when */
    assert_null(strstr(html, "http-equiv"));
    assert_non_null(strstr(html, "<span class=\"locks\">- locks at "));
    assert_non_null(strstr(html, "action=\"/lock\""));
    cmc_free(html);

    html = render_card(&p, 0, NULL, WEB_VIEW_FULL);
    assert_non_null(strstr(html, "Morphine oral"));
    assert_non_null(strstr(html, "id=\"more\""));
    cmc_free(html);
    html = render_card(&p, 0, NULL, WEB_VIEW_PRINT);
    assert_null(strstr(html, "action=\"/lock\""));
    assert_non_null(strstr(html, "Printed "));
    cmc_free(html);
    plan_free(&p);
}

static void test_card_flags(void **state)
{
    (void)state;
    struct plan p;
    make_plan(&p, "for_cpr", "2020-01-01");
    char *html = render_card(&p, CARD_STALE_AFTER_SECONDS + 3600, NULL, WEB_VIEW_CARD);
    /* a short tag in the banner; the full warning right after the CPR decision */
    const char *stale = strstr(html, "STALE COPY");
    const char *warning = strstr(html, "<strong>STALE COPY</strong> - this device last synced");
    assert_non_null(stale);
    assert_non_null(warning);
    assert_true(stale < strstr(html, "id=\"cpr\""));
    assert_true(warning > strstr(html, "id=\"cpr\"") && warning < strstr(html, "id=\"ceiling\""));
    assert_non_null(strstr(html, "REVIEW OVERDUE</strong> - was due 2020-01-01"));
    assert_non_null(strstr(html, "class=\"cpr cpr-for\""));
    assert_non_null(strstr(html, "FOR CPR - attempt CPR"));
    cmc_free(html);
    html = render_card(&p, -1, NULL, WEB_VIEW_CARD);
    assert_non_null(strstr(html, "STALE COPY</strong> - this device has never synced"));
    cmc_free(html);
    plan_free(&p);

    make_plan(&p, "not_yet_discussed", "2030-01-01");
    json_t *changed = json_pack("[s,s]", "prognosis", "prognosis");
    html = render_card(&p, 60, changed, WEB_VIEW_CARD);
    assert_non_null(strstr(html, "class=\"cpr cpr-undiscussed\""));
    assert_non_null(strstr(html, "CPR NOT YET DISCUSSED"));
    assert_non_null(strstr(html, "+ your unapproved changes to:</strong> Diagnosis and prognosis"));
    /* the change is marked in the diagnosis section, once */
    const char *mark = strstr(html, "PROPOSED on this device, not approved");
    assert_non_null(mark);
    assert_true(mark > strstr(html, "id=\"diagnosis\"") && mark < strstr(html, "id=\"medicines\""));
    assert_null(strstr(mark + 1, "PROPOSED on this device"));
    assert_non_null(strstr(mark, "<dt>Prognosis</dt>"));
    assert_null(strstr(html, "STALE COPY"));
    cmc_free(html);
    json_decref(changed);
    p.status = PLAN_STATUS_DRAFT;
    html = render_card(&p, 60, NULL, WEB_VIEW_CARD);
    assert_non_null(strstr(html, "NOT APPROVED</strong> - this version is DRAFT - not approved"));
    cmc_free(html);
    plan_free(&p);
}

/* One model for every output: per-value pending state, section marks once per path, the
 * contact order, and the terminal card saying the model's words. */
static void test_card_model(void **state)
{
    (void)state;
    struct plan p;
    make_plan(&p, "dnacpr", "2027-02-11");
    p.status = PLAN_STATUS_AWAITING_APPROVAL;
    json_t *changed = json_pack("[s,s,s]", "prognosis", "resuscitation", "prognosis");
    struct card_context ctx = { .now = 1800000000, .last_sync = -1, .pending_edits = 2, .changed_paths = changed,
                                .lease_days_left = -1 };
    static struct card_model m;
    card_build(&p, &ctx, &m);
    assert_int_equal(m.prognosis.state, CARD_VALUE_PROPOSED);
    assert_int_equal(m.cpr.form_location.state, CARD_VALUE_PROPOSED); /* inside a changed object */
    assert_int_equal(m.identity.given_name.state, CARD_VALUE_APPROVED);
    assert_int_equal(m.sections[CARD_SEC_DIAGNOSIS].n_pending_paths, 1);
    assert_int_equal(m.sections[CARD_SEC_IDENTITY].n_pending_paths, 0);
    assert_string_equal(m.contacts[0].role.text, "GP");
    assert_int_equal(m.n_medicines, 1); /* the summary: anticipatory only */
    assert_true(m.banner.stale);
    assert_string_equal(m.banner.status_words, "AWAITING APPROVAL - not approved");

    char *text = tst_card_text(&m);
    assert_non_null(strstr(text, "PLAN STATUS: AWAITING APPROVAL - not approved"));
    assert_non_null(strstr(text, m.cpr.words));
    assert_non_null(strstr(text, "never synced  ** STALE COPY"));
    free(text);
    json_t *j = card_to_json(&p, &m);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "banner"), "status_words")),
                        m.banner.status_words);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cpr"), "words")), m.cpr.words);
    json_t *order = json_object_get(j, "order");
    assert_int_equal(json_array_size(order), 10);
    assert_string_equal(json_string_value(json_array_get(order, 1)), "cpr");
    assert_string_equal(json_string_value(json_array_get(order, 9)), "anticipated_problems");
    json_t *diag = json_array_get(json_object_get(j, "sections"), CARD_SEC_DIAGNOSIS);
    assert_string_equal(json_string_value(json_array_get(json_object_get(diag, "not_yet_approved"), 0)), "prognosis");
    json_decref(j);

    char *html = render_card(&p, -1, changed, WEB_VIEW_CARD);
    assert_non_null(strstr(html, m.banner.status_words));
    assert_non_null(strstr(html, m.cpr.words));
    cmc_free(html);
    json_decref(changed);
    plan_free(&p);
}

static void test_render_out_of_memory(void **state)
{
    (void)state;
    struct plan p;
    make_plan(&p, "dnacpr", "2027-02-11");
    struct card_context ctx = { .now = 1800000000, .last_sync = 1800000000, .lease_days_left = -1 };
    struct web_chrome c = { .title = "t", .night = -1 };
    struct web_card card = { .p = &p, .ctx = &ctx, .view = WEB_VIEW_FULL };
    /* every failure point ends in CMC_ERR_NOMEM (no crash, no leak), until there is none */
    long n = 0;
    for (;; n++) {
        struct web_buf b;
        web_buf_init(&b);
        cmc_alloc_fail_after(n, 1);
        web_render_card(&b, &c, &card);
        cmc_alloc_fail_after(-1, 0);
        int rc = web_buf_status(&b);
        if (rc == CMC_OK)
            assert_non_null(strstr(b.p, "</html>"));
        web_buf_free(&b);
        if (rc == CMC_OK)
            break;
        assert_int_equal(rc, CMC_ERR_NOMEM);
        assert_true(n < 20);
    }
    assert_true(n >= 1);
    plan_free(&p);
}

/* ---- the server, over HTTP -------------------------------------------------------------- */

static char dir[64], slots_path[128], replica_path[128];

struct http_result {
    long status;
    char headers[8192];
    size_t hlen;
    char *body;
    size_t blen;
};

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct http_result *r = ctx;
    size_t len = size * n;
    if (r->hlen + len < sizeof r->headers) {
        memcpy(r->headers + r->hlen, data, len);
        r->hlen += len;
        r->headers[r->hlen] = '\0';
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct http_result *r = ctx;
    size_t len = size * n;
    char *nb = cmc_realloc(r->body, r->blen + len + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->blen, data, len);
    r->body = nb;
    r->blen += len;
    r->body[r->blen] = '\0';
    return len;
}

/* One request; `extra` is a NULL-terminated list of header lines. */
static void http(uint16_t port, const char *method, const char *path, const char *body, const char *cookie,
                 const char *const *extra, struct http_result *r)
{
    memset(r, 0, sizeof *r);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = NULL;
    char origin[64];
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%u", (unsigned)port);
    int has_origin = 0;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        h = curl_slist_append(h, extra[i]);
        has_origin |= strncmp(extra[i], "Origin:", 7) == 0;
    }
    if (strcmp(method, "POST") == 0 && !has_origin)
        h = curl_slist_append(h, origin);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (cookie != NULL)
        curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r->body == NULL)
        r->body = cmc_strdup("");
}

static void http_free(struct http_result *r)
{
    cmc_free(r->body);
    r->body = NULL;
}

/* The value after `marker` up to the next quote or ';' (a token in a page or a header). */
static void grab(const char *text, const char *marker, char *out, size_t cap)
{
    const char *at = strstr(text, marker);
    assert_non_null(at);
    at += strlen(marker);
    size_t n = strcspn(at, "\";\r\n");
    assert_true(n < cap);
    memcpy(out, at, n);
    out[n] = '\0';
}

static int server_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cmc-web-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(slots_path, sizeof slots_path, "%s/keyslots", dir);
    snprintf(replica_path, sizeof replica_path, "%s/replica.db", dir);
    cry_kdf_set_test_limits(1);
    struct cry_secret *key = NULL;
    store *st = NULL;
    struct store_session who = { .user = USER, .role = STORE_ROLE_URGENT_CARE };
    struct plan p;
    make_plan(&p, "dnacpr", "2027-02-11");
    if (cry_slots_create(slots_path, USER, "urgent_care", PIN, &key) != CMC_OK ||
        store_open(replica_path, key, &who, &st) != CMC_OK || store_put_version(st, &p, 1) != CMC_OK ||
        store_state_set_int(st, "last_sync_at", plat_wall_now() - 60) != CMC_OK)
        return -1;
    store_close(st);
    cry_secret_free(key);
    plan_free(&p);
    return 0;
}

static int server_teardown(void **state)
{
    (void)state;
    static const char *const names[] = { "keyslots", "keyslots.throttle", "replica.db", "replica.db-wal",
                                         "replica.db-shm" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        plat_remove(p);
    }
    rmdir(dir);
    return 0;
}

/* GET / (the unlock page) then POST /unlock; returns the status and fills the session cookie. */
static long do_unlock(uint16_t port, const char *pin, char *session_cookie, size_t cap)
{
    struct http_result r;
    char pre[80], cookie[128], body[256];
    http(port, "GET", "/", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    grab(r.headers, "Set-Cookie: cmc_pre=", pre, sizeof pre);
    assert_non_null(strstr(r.body, pre)); /* the same token in the form */
    http_free(&r);
    snprintf(cookie, sizeof cookie, "cmc_pre=%s", pre);
    snprintf(body, sizeof body, "pre=%s&user=%s&pin=%s", pre, USER, pin);
    http(port, "POST", "/unlock", body, cookie, NULL, &r);
    long status = r.status;
    if (status == 303 && session_cookie != NULL) {
        char id[80];
        grab(r.headers, "Set-Cookie: cmc_session=", id, sizeof id);
        snprintf(session_cookie, cap, "cmc_session=%s", id);
        assert_non_null(strstr(r.headers, "HttpOnly; SameSite=Strict"));
    }
    http_free(&r);
    return status;
}

static void test_server_session(void **state)
{
    (void)state;
    struct web_config cfg = { .dir = dir, .slots_path = slots_path, .replica_path = replica_path,
                              .host = "127.0.0.1", .port = 0, .idle_seconds = 60 };
    web_server *s = NULL;
    assert_int_equal(web_server_start(&cfg, &s), CMC_OK);
    uint16_t port = web_server_port(s);
    assert_true(port != 0);
    struct http_result r;

    http(port, "GET", "/", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Cache-Control: no-store"));
    assert_non_null(strstr(r.headers, "Content-Security-Policy: default-src 'none'"));
    assert_non_null(strstr(r.headers, "X-Frame-Options: DENY"));
    assert_non_null(strstr(r.body, "name=\"pin\" type=\"password\""));
    http_free(&r);

    /* a wrong PIN unlocks nothing */
    assert_int_equal(do_unlock(port, "0000-wrong", NULL, 0), 401);
    assert_int_equal(web_server_unlocked(s), 0);
    /* an unlock form without its cookie (a cross-site post) is refused before the PIN is tried */
    http(port, "POST", "/unlock", "pre=00&user=" USER "&pin=" PIN, NULL, NULL, &r);
    assert_int_equal(r.status, 403);
    http_free(&r);
    assert_int_equal(web_server_unlocked(s), 0);

    char session[128];
    assert_int_equal(do_unlock(port, PIN, session, sizeof session), 303);
    assert_int_equal(web_server_unlocked(s), 1);
    http(port, "GET", "/", NULL, session, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Find a patient"));
    char csrf[80], body[256];
    grab(r.body, "name=\"csrf\" value=\"", csrf, sizeof csrf);
    assert_int_equal(strlen(csrf), 64);
    http_free(&r);

    /* without the form token, from another origin, or for another host: refused */
    http(port, "POST", "/lookup", "nhs=" PUB_NHS, session, NULL, &r);
    assert_int_equal(r.status, 403);
    assert_null(strstr(r.body, "Okafor"));
    http_free(&r);
    snprintf(body, sizeof body, "csrf=%s&nhs=%s", csrf, PUB_NHS);
    static const char *const evil[] = { "Origin: http://attacker.example", NULL };
    http(port, "POST", "/lookup", body, session, evil, &r);
    assert_int_equal(r.status, 403);
    http_free(&r);
    static const char *const cross[] = { "Sec-Fetch-Site: cross-site", NULL };
    http(port, "POST", "/lookup", body, session, cross, &r);
    assert_int_equal(r.status, 403);
    http_free(&r);
    static const char *const rebind[] = { "Host: attacker.example", NULL };
    http(port, "GET", "/", NULL, session, rebind, &r);
    assert_int_equal(r.status, 421);
    assert_null(strstr(r.body, "csrf"));
    http_free(&r);

    /* the card */
    http(port, "POST", "/lookup", body, session, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Cache-Control: no-store"));
    assert_non_null(strstr(r.body, "DNACPR - do NOT attempt CPR"));
    assert_non_null(strstr(r.body, "943 476 5919"));
    http_free(&r);
    /* a wrong check digit: a clear message, no lookup */
    snprintf(body, sizeof body, "csrf=%s&nhs=9434765910", csrf);
    http(port, "POST", "/lookup", body, session, NULL, &r);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "check digit"));
    http_free(&r);
    /* a miss, and a search */
    snprintf(body, sizeof body, "csrf=%s&nhs=4010232137", csrf);
    http(port, "POST", "/lookup", body, session, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "No plan on this device"));
    http_free(&r);
    snprintf(body, sizeof body, "csrf=%s&name=okafor&dob=1938-04-17&postcode=se15+4qt", csrf);
    http(port, "POST", "/search", body, session, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "1 candidate"));
    assert_non_null(strstr(r.body, "value=\"" PUB_ID "\""));
    http_free(&r);
    snprintf(body, sizeof body, "csrf=%s&dob=1938-02-30", csrf);
    http(port, "POST", "/search", body, session, NULL, &r);
    assert_int_equal(r.status, 422);
    http_free(&r);
    snprintf(body, sizeof body, "csrf=%s&plan_id=%s&view=full", csrf, PUB_ID);
    http(port, "POST", "/plan", body, session, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Morphine oral"));
    http_free(&r);

    /* Lock: at once; the old cookie and token open nothing; the session's store and key
     * were closed and zeroed (the lock path ran) */
    unsigned long locks = web_lock_count();
    snprintf(body, sizeof body, "csrf=%s", csrf);
    http(port, "POST", "/lock", body, session, NULL, &r);
    assert_int_equal(r.status, 303);
    http_free(&r);
    assert_int_equal(web_server_unlocked(s), 0);
    assert_int_equal(web_lock_count(), locks + 1);
    snprintf(body, sizeof body, "csrf=%s&nhs=%s", csrf, PUB_NHS);
    http(port, "POST", "/lookup", body, session, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_null(strstr(r.body, "Okafor"));
    http_free(&r);
    web_server_stop(s);

    /* every view, miss and search went into the audit log */
    struct cry_secret *key = NULL;
    char role[CRY_ROLE_MAX + 1];
    cry_slots *slots = NULL;
    store *st = NULL;
    struct store_session who = { .user = USER, .role = STORE_ROLE_URGENT_CARE };
    assert_int_equal(cry_slots_load(slots_path, &slots), CMC_OK);
    assert_int_equal(cry_slots_unlock(slots, USER, PIN, &key, role), CMC_OK);
    assert_int_equal(store_open(replica_path, key, &who, &st), CMC_OK);
    struct audit_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(audit_list(st, 0, &e, &n), CMC_OK);
    int views = 0, misses = 0, searches = 0;
    for (size_t i = 0; i < n; i++) {
        views += strcmp(e[i].action, AUDIT_PAGE_VIEW) == 0 && strcmp(e[i].plan_id, PUB_ID) == 0;
        misses += strcmp(e[i].action, AUDIT_LOOKUP_MISS) == 0 && strcmp(e[i].identifier, "4010232137") == 0;
        searches += strcmp(e[i].action, AUDIT_SEARCH) == 0;
    }
    assert_int_equal(views, 2);
    assert_int_equal(misses, 1);
    assert_int_equal(searches, 1);
    cmc_free(e);
    store_close(st);
    cry_secret_free(key);
    cry_slots_free(slots);
}

static void test_server_idle_lock(void **state)
{
    (void)state;
    plat_fake_clock_enable(plat_wall_now(), 1000000000ull);
    struct web_config cfg = { .dir = dir, .slots_path = slots_path, .replica_path = replica_path,
                              .host = "127.0.0.1", .port = 0, .idle_seconds = 30 };
    web_server *s = NULL;
    assert_int_equal(web_server_start(&cfg, &s), CMC_OK);
    uint16_t port = web_server_port(s);
    char session[128];
    struct http_result r;
    assert_int_equal(do_unlock(port, PIN, session, sizeof session), 303);
    plat_fake_clock_advance(29ull * 1000000000ull);
    web_server_tick(s);
    assert_int_equal(web_server_unlocked(s), 1);
    http(port, "GET", "/", NULL, session, NULL, &r); /* activity restarts the idle time */
    assert_int_equal(r.status, 200);
    http_free(&r);
    plat_fake_clock_advance(29ull * 1000000000ull);
    web_server_tick(s);
    assert_int_equal(web_server_unlocked(s), 1);
    plat_fake_clock_advance(2ull * 1000000000ull);
    web_server_tick(s);
    assert_int_equal(web_server_unlocked(s), 0);
    http(port, "GET", "/", NULL, session, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<h1>Unlock</h1>"));
    http_free(&r);
    web_server_stop(s);
    plat_fake_clock_disable();

    /* a non-loopback address is refused by the server itself too */
    cfg.host = "0.0.0.0";
    assert_int_equal(web_server_start(&cfg, &s), CMC_ERR_USAGE);
    assert_null(s);
    web_server_stop(NULL);
}

int main(void)
{
    if (cry_init() != CMC_OK)
        return 1;
    plan_json_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_is_loopback_only),
        cmocka_unit_test(test_form_values),
        cmocka_unit_test(test_cookie_values),
        cmocka_unit_test(test_text_is_escaped),
        cmocka_unit_test(test_card_order_and_content),
        cmocka_unit_test(test_card_flags),
        cmocka_unit_test(test_card_model),
        cmocka_unit_test(test_render_out_of_memory),
        cmocka_unit_test_setup_teardown(test_server_session, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_idle_lock, server_setup, server_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
