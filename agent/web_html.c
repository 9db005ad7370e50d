#include "agent/web_html.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the buffer ------------------------------------------------------------------------- */

void web_buf_init(struct web_buf *b)
{
    memset(b, 0, sizeof *b);
}

void web_buf_free(struct web_buf *b)
{
    if (b->p != NULL) {
        cry_memzero(b->p, b->cap);
        cmc_free(b->p);
    }
    web_buf_init(b);
}

/* Grows by hand rather than with realloc, so the old block (patient data) is zeroed. */
static int buf_reserve(struct web_buf *b, size_t more)
{
    if (b->nomem)
        return 0;
    if (b->len + more + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *np = cmc_malloc(cap);
    if (np == NULL) {
        b->nomem = 1;
        return 0;
    }
    if (b->p != NULL) {
        memcpy(np, b->p, b->len);
        cry_memzero(b->p, b->cap);
        cmc_free(b->p);
    }
    b->p = np;
    b->cap = cap;
    b->p[b->len] = '\0';
    return 1;
}

static void buf_add(struct web_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void web_buf_raw(struct web_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void web_buf_rawf(struct web_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void web_buf_text(struct web_buf *b, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        web_buf_raw(b, "-");
        return;
    }
    const char *run = s;
    for (const char *q = s;; q++) {
        const char *rep = NULL;
        switch (*q) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep == NULL && *q != '\0')
            continue;
        buf_add(b, run, (size_t)(q - run));
        if (*q == '\0')
            break;
        web_buf_raw(b, rep);
        run = q + 1;
    }
}

int web_buf_status(const struct web_buf *b)
{
    return b->nomem ? cmc_fail(CMC_ERR_NOMEM, "out of memory building the page") : CMC_OK;
}

/* ---- words ------------------------------------------------------------------------------ */

const char *web_cpr_class(int decision)
{
    switch ((enum plan_cpr)decision) {
    case PLAN_CPR_DNACPR: return "cpr-dnacpr";
    case PLAN_CPR_FOR_CPR: return "cpr-for";
    case PLAN_CPR_NOT_DISCUSSED: return "cpr-undiscussed";
    case PLAN_CPR_NONE: break;
    }
    return "cpr-none";
}

/* The headline of the CPR block: the few words a crew reads across a room. */
static const char *cpr_headline(int decision)
{
    switch ((enum plan_cpr)decision) {
    case PLAN_CPR_DNACPR: return "DNACPR";
    case PLAN_CPR_FOR_CPR: return "FOR CPR";
    case PLAN_CPR_NOT_DISCUSSED: return "CPR NOT YET DISCUSSED";
    case PLAN_CPR_NONE: break;
    }
    return "NO CPR DECISION RECORDED";
}

static const char *status_words(int status)
{
    switch ((enum plan_status)status) {
    case PLAN_STATUS_PUBLISHED: return "Published";
    case PLAN_STATUS_DRAFT: return "DRAFT - not approved";
    case PLAN_STATUS_NEEDS_FINALISATION: return "DRAFT (needs finalisation) - not approved";
    case PLAN_STATUS_AWAITING_APPROVAL: return "AWAITING APPROVAL - not approved";
    case PLAN_STATUS_NONE: break;
    }
    return "Unknown status";
}





static const char *gender_words(int g)
{
    switch ((enum plan_gender)g) {
    case PLAN_GENDER_FEMALE: return "Female";
    case PLAN_GENDER_MALE: return "Male";
    case PLAN_GENDER_OTHER: return "Other";
    case PLAN_GENDER_UNKNOWN: return "Unknown";
    case PLAN_GENDER_NONE: break;
    }
    return "not recorded";
}

static const char *consent_words(int basis)
{
    switch ((enum plan_consent_basis)basis) {
    case PLAN_CONSENT_PATIENT: return "the patient";
    case PLAN_CONSENT_LPA: return "health and welfare LPA";
    case PLAN_CONSENT_BEST_INTEREST: return "clinical team, best interest";
    case PLAN_CONSENT_NONE: break;
    }
    return "not recorded";
}

static const char *yes_no(int tri)
{
    return tri == PLAN_UNSET ? "not recorded" : tri ? "Yes" : "No";
}



static void nhs_text(struct web_buf *b, const char *nhs)
{
    if (nhs != NULL && strlen(nhs) == PLAN_NHS_LEN) {
        char f[16];
        snprintf(f, sizeof f, "%.3s %.3s %.4s", nhs, nhs + 3, nhs + 6);
        web_buf_text(b, f);
    } else {
        web_buf_text(b, nhs);
    }
}

/* "not recorded" in a muted style for an absent value: absence must look like absence. */
static void text_or_unrecorded(struct web_buf *b, const char *s)
{
    if (s == NULL || s[0] == '\0')
        web_buf_raw(b, "<span class=\"none\">not recorded</span>");
    else
        web_buf_text(b, s);
}

/* ---- the frame -------------------------------------------------------------------------- */

static void page_begin(struct web_buf *b, const struct web_chrome *c)
{
    web_buf_raw(b, "<!DOCTYPE html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                   "<meta name=\"referrer\" content=\"same-origin\">");
    if (c->idle_seconds > 0)
        /* No script needed: once the server has locked the idle session, this reload lands
         * on the unlock page and the patient's details leave the screen. */
        web_buf_rawf(b, "<meta http-equiv=\"refresh\" content=\"%d;url=/\">", c->idle_seconds + 2);
    web_buf_raw(b, "<title>");
    web_buf_text(b, c->title);
    web_buf_raw(b, " - Care plan</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body class=\"");
    web_buf_raw(b, c->night > 0 ? "night" : c->night == 0 ? "day" : "auto");
    web_buf_raw(b, c->print ? " print" : "");
    web_buf_raw(b, "\">\n");
    if (!c->print) {
        web_buf_raw(b, "<a class=\"skip\" href=\"#main\">Skip to content</a>\n<header class=\"top\">"
                       "<span class=\"app\">Urgent care plans</span>");
        if (c->user != NULL && c->csrf != NULL) {
            web_buf_raw(b, "<span class=\"who\">Unlocked for ");
            web_buf_text(b, c->user);
            web_buf_raw(b, " (");
            web_buf_text(b, c->role);
            web_buf_raw(b, ")</span><nav aria-label=\"Session\"><a class=\"button secondary\" href=\"/\">"
                           "New search</a><form method=\"post\" action=\"/lock\" class=\"inline\">"
                           "<input type=\"hidden\" name=\"csrf\" value=\"");
            web_buf_text(b, c->csrf);
            web_buf_raw(b, "\"><button type=\"submit\" class=\"lock\">Lock</button></form></nav>");
        } else {
            web_buf_raw(b, "<span class=\"who\">Locked</span>");
        }
        web_buf_raw(b, "</header>\n");
    }
    web_buf_raw(b, "<main id=\"main\">\n");
}

static void page_end(struct web_buf *b)
{
    web_buf_raw(b, "</main>\n</body></html>\n");
}

static void alert(struct web_buf *b, const char *message)
{
    if (message == NULL)
        return;
    web_buf_raw(b, "<p class=\"alert\" role=\"alert\">");
    web_buf_text(b, message);
    web_buf_raw(b, "</p>\n");
}

static void hidden(struct web_buf *b, const char *name, const char *value)
{
    web_buf_raw(b, "<input type=\"hidden\" name=\"");
    web_buf_raw(b, name);
    web_buf_raw(b, "\" value=\"");
    web_buf_text(b, value);
    web_buf_raw(b, "\">");
}

static void input_value(struct web_buf *b, const char *v)
{
    if (v != NULL && v[0] != '\0') {
        web_buf_raw(b, " value=\"");
        web_buf_text(b, v);
        web_buf_raw(b, "\"");
    }
}

/* ---- unlock ----------------------------------------------------------------------------- */

void web_render_unlock(struct web_buf *b, const struct web_chrome *c, const char *pre,
                       const char *message, const char *user_value)
{
    page_begin(b, c);
    web_buf_raw(b, "<h1>Unlock</h1>\n<p>Care plans on this device are encrypted. Unlock with your user name "
                   "and PIN.</p>\n");
    alert(b, message);
    web_buf_raw(b, "<form method=\"post\" action=\"/unlock\" class=\"panel\" autocomplete=\"off\">");
    hidden(b, "pre", pre);
    web_buf_raw(b, "<p><label for=\"user\">User</label><input id=\"user\" name=\"user\" type=\"text\" required "
                   "autocapitalize=\"none\" spellcheck=\"false\" autocomplete=\"username\"");
    input_value(b, user_value);
    web_buf_raw(b, "></p><p><label for=\"pin\">PIN</label><input id=\"pin\" name=\"pin\" type=\"password\" "
                   "required inputmode=\"numeric\" autocomplete=\"current-password\"></p>"
                   "<p><button type=\"submit\">Unlock</button></p></form>\n"
                   "<p class=\"small\">This page is served by the device itself and works with no network. "
                   "It locks after a few minutes without use.</p>\n");
    page_end(b);
}

/* ---- find a patient --------------------------------------------------------------------- */

static void hit_row(struct web_buf *b, const struct web_chrome *c, const struct store_hit *h, int64_t now)
{
    web_buf_raw(b, "<li class=\"hit\"><p class=\"hit-name\"><strong>");
    web_buf_text(b, h->family_name);
    web_buf_raw(b, "</strong>, ");
    web_buf_text(b, h->given_name);
    if (h->status != PLAN_STATUS_PUBLISHED) {
        web_buf_raw(b, " <span class=\"tag draft\">");
        web_buf_text(b, status_words(h->status));
        web_buf_raw(b, "</span>");
    }
    web_buf_raw(b, "</p><dl class=\"facts\"><dt>Born</dt><dd>");
    web_buf_text(b, h->date_of_birth);
    int age = card_age_years(h->date_of_birth, now);
    if (age >= 0)
        web_buf_rawf(b, " (age %d)", age);
    web_buf_raw(b, "</dd><dt>NHS number</dt><dd>");
    nhs_text(b, h->nhs_number);
    web_buf_raw(b, "</dd><dt>Address</dt><dd>");
    web_buf_text(b, h->address);
    web_buf_raw(b, ", ");
    web_buf_text(b, h->postcode);
    web_buf_raw(b, "</dd></dl><form method=\"post\" action=\"/plan\">");
    hidden(b, "csrf", c->csrf);
    hidden(b, "plan_id", h->plan_id);
    hidden(b, "view", "card");
    web_buf_raw(b, "<button type=\"submit\">Open plan<span class=\"sr\"> of ");
    web_buf_text(b, h->given_name);
    web_buf_raw(b, " ");
    web_buf_text(b, h->family_name);
    web_buf_raw(b, "</span></button></form></li>\n");
}

void web_render_home(struct web_buf *b, const struct web_chrome *c, const struct web_home *h)
{
    page_begin(b, c);
    web_buf_raw(b, "<h1>Find a patient</h1>\n");
    web_buf_raw(b, h->stale ? "<p class=\"flag stale\" role=\"status\"><strong>STALE COPY:</strong> this device's "
                              "copy was "
                            : "<p class=\"copy\">This device's copy was ");
    web_buf_text(b, h->copy_age);
    web_buf_raw(b, h->stale ? ". A newer plan may exist: check with the service if you can.</p>\n" : ".</p>\n");
    if (h->clinician && (h->pending > 0 || h->conflicts > 0))
        web_buf_rawf(b, "<p class=\"pending\">%lld pending edit(s) not yet approved; %lld open conflict(s).</p>\n",
                     (long long)h->pending, (long long)h->conflicts);
    alert(b, h->message);

    web_buf_raw(b, "<section aria-labelledby=\"h-nhs\" class=\"panel\"><h2 id=\"h-nhs\">By NHS number</h2>"
                   "<form method=\"post\" action=\"/lookup\" autocomplete=\"off\">");
    hidden(b, "csrf", c->csrf);
    web_buf_raw(b, "<p><label for=\"nhs\">NHS number (10 digits)</label><input id=\"nhs\" name=\"nhs\" "
                   "type=\"text\" inputmode=\"numeric\" required maxlength=\"20\" autocomplete=\"off\"");
    input_value(b, h->nhs_value);
    web_buf_raw(b, "></p><p><button type=\"submit\">Show plan</button></p></form></section>\n");

    web_buf_raw(b, "<section aria-labelledby=\"h-id\" class=\"panel\"><h2 id=\"h-id\">By name, date of birth "
                   "and postcode</h2><form method=\"post\" action=\"/search\" autocomplete=\"off\">");
    hidden(b, "csrf", c->csrf);
    web_buf_raw(b, "<p><label for=\"name\">Name</label><input id=\"name\" name=\"name\" type=\"text\" "
                   "maxlength=\"100\" autocomplete=\"off\"");
    input_value(b, h->name_value);
    web_buf_raw(b, "></p><p><label for=\"dob\">Date of birth</label><input id=\"dob\" name=\"dob\" type=\"date\" "
                   "autocomplete=\"off\"");
    input_value(b, h->dob_value);
    web_buf_raw(b, "></p><p><label for=\"postcode\">Postcode</label><input id=\"postcode\" name=\"postcode\" "
                   "type=\"text\" maxlength=\"10\" autocapitalize=\"characters\" autocomplete=\"off\"");
    input_value(b, h->postcode_value);
    web_buf_raw(b, "></p><p><button type=\"submit\">Search</button></p></form></section>\n");

    if (h->searched) {
        web_buf_raw(b, "<section aria-labelledby=\"h-hits\" id=\"results\"><h2 id=\"h-hits\">");
        if (h->n_hits == 0)
            web_buf_raw(b, "No matching plan on this device</h2>");
        else
            web_buf_rawf(b, "%zu candidate%s: check the identity against the person in front of you</h2>",
                         h->n_hits, h->n_hits == 1 ? "" : "s");
        web_buf_raw(b, "<ol class=\"hits\">");
        int64_t now = plat_wall_now();
        for (size_t i = 0; i < h->n_hits; i++)
            hit_row(b, c, &h->hits[i], now);
        web_buf_raw(b, "</ol></section>\n");
    }
    web_buf_raw(b, "<form method=\"post\" action=\"/theme\" class=\"theme\">");
    hidden(b, "csrf", c->csrf);
    web_buf_raw(b, c->night > 0 ? "<input type=\"hidden\" name=\"theme\" value=\"day\"><button type=\"submit\" "
                                  "class=\"secondary\">Day colours</button>"
                                : "<input type=\"hidden\" name=\"theme\" value=\"night\"><button type=\"submit\" "
                                  "class=\"secondary\">Night colours</button>");
    web_buf_raw(b, "</form>\n");
    page_end(b);
}

void web_render_message(struct web_buf *b, const struct web_chrome *c, const char *heading,
                        const char *message)
{
    page_begin(b, c);
    web_buf_raw(b, "<h1>");
    web_buf_text(b, heading);
    web_buf_raw(b, "</h1>\n");
    alert(b, message);
    web_buf_raw(b, "<p><a class=\"button\" href=\"/\">Back</a></p>\n");
    page_end(b);
}

/* ---- the card --------------------------------------------------------------------------- */

enum card_section {
    SEC_IDENTITY,
    SEC_CPR,
    SEC_CEILING,
    SEC_ADRT,
    SEC_PLACES,
    SEC_CONTACTS,
    SEC_DIAGNOSIS,
    SEC_MEDICINES,
    SEC_ALLERGIES,
    SEC_PROBLEMS,
    SEC_MORE,
};

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Which section of the card shows a field (by its dotted path). */
static enum card_section section_of(const char *path)
{
    if (starts_with(path, "patient.") || strcmp(path, "nhs_number") == 0)
        return SEC_IDENTITY;
    if (starts_with(path, "resuscitation."))
        return SEC_CPR;
    if (strcmp(path, "ceiling_of_treatment") == 0 || strcmp(path, "hospital_admission_wanted") == 0)
        return SEC_CEILING;
    if (starts_with(path, "adrt."))
        return SEC_ADRT;
    if (starts_with(path, "preferred_place_"))
        return SEC_PLACES;
    if (strcmp(path, "contacts") == 0)
        return SEC_CONTACTS;
    if (strcmp(path, "diagnoses") == 0 || strcmp(path, "prognosis") == 0)
        return SEC_DIAGNOSIS;
    if (strcmp(path, "medications") == 0 || strcmp(path, "anticipatory_medicines_location") == 0)
        return SEC_MEDICINES;
    if (strcmp(path, "allergies") == 0)
        return SEC_ALLERGIES;
    if (strcmp(path, "anticipated_problems") == 0)
        return SEC_PROBLEMS;
    return SEC_MORE;
}

/* Marks a section that shows a clinician's pending (unapproved) local change. */
static void pending_mark(struct web_buf *b, const struct web_card *card, enum card_section sec)
{
    if (card->changed == NULL)
        return;
    size_t i;
    json_t *v;
    int any = 0;
    json_array_foreach(card->changed, i, v)
    {
        const char *path = json_string_value(v);
        if (path == NULL || section_of(path) != sec)
            continue;
        /* each path once, though several edits may touch it */
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) {
            const char *earlier = json_string_value(json_array_get(card->changed, k));
            seen = earlier != NULL && strcmp(earlier, path) == 0;
        }
        if (seen)
            continue;
        web_buf_raw(b, any ? ", " : "<p class=\"pending\"><strong>NOT YET APPROVED:</strong> local change to ");
        web_buf_text(b, path);
        any = 1;
    }
    if (any)
        web_buf_raw(b, " (shown here; waiting to sync for approval)</p>");
}

static void section_open(struct web_buf *b, const char *id, int n, const char *title, const char *extra_class)
{
    web_buf_rawf(b, "<section class=\"card-section%s%s\" id=\"%s\" aria-labelledby=\"h-%s\"><h2 id=\"h-%s\">"
                    "<span class=\"n\">%d</span> ",
                 extra_class ? " " : "", extra_class ? extra_class : "", id, id, id, n);
    web_buf_raw(b, title);
    web_buf_raw(b, "</h2>");
}

static void dt(struct web_buf *b, const char *label)
{
    web_buf_raw(b, "<dt>");
    web_buf_raw(b, label);
    web_buf_raw(b, "</dt><dd>");
}

static void places(struct web_buf *b, const struct plan_places *pl)
{
    if (pl->n == 0) {
        web_buf_raw(b, "<span class=\"none\">not recorded</span>");
        return;
    }
    for (size_t i = 0; i < pl->n; i++) {
        web_buf_rawf(b, "%s%s choice: ", i == 0 ? "" : "; ", i == 0 ? "1st" : i == 1 ? "2nd" : "3rd");
        web_buf_raw(b, "<strong>");
        web_buf_text(b, card_place_words(pl->v[i]));
        web_buf_raw(b, "</strong>");
    }
}

/* A tel: link: digits and a leading + only, whatever the plan's spacing. */
static void tel_link(struct web_buf *b, const char *phone)
{
    char dial[40];
    size_t o = 0;
    for (const char *q = phone; q != NULL && *q != '\0' && o + 1 < sizeof dial; q++)
        if ((*q >= '0' && *q <= '9') || (*q == '+' && o == 0))
            dial[o++] = *q;
    dial[o] = '\0';
    if (o < 3) {
        text_or_unrecorded(b, phone);
        return;
    }
    web_buf_raw(b, "<a class=\"tel\" href=\"tel:");
    web_buf_text(b, dial);
    web_buf_raw(b, "\">");
    web_buf_text(b, phone);
    web_buf_raw(b, "</a>");
}

static void banner(struct web_buf *b, const struct web_card *card)
{
    const struct plan *p = card->p;
    const struct card_context *ctx = card->ctx;
    char age[96];
    card_copy_age(ctx, age, sizeof age);
    int stale = ctx->last_sync < 0 || ctx->now - ctx->last_sync > CARD_STALE_AFTER_SECONDS;
    int overdue = card_review_overdue(p->review_due, ctx->now);
    int published = p->status == PLAN_STATUS_PUBLISHED;

    web_buf_raw(b, "<section class=\"banner\" id=\"banner\" aria-labelledby=\"h-banner\">"
                   "<h2 id=\"h-banner\" class=\"sr\">Plan status</h2>");
    if (stale) {
        web_buf_raw(b, "<p class=\"flag stale\" role=\"alert\"><strong>STALE COPY</strong> - this device ");
        web_buf_text(b, ctx->last_sync < 0 ? "has never synced" : "last synced");
        if (ctx->last_sync >= 0) {
            web_buf_raw(b, " ");
            web_buf_text(b, age + strlen("synced "));
        }
        web_buf_raw(b, ". A newer version of this plan may exist: check with the service if you can.</p>");
    }
    if (!published) {
        web_buf_raw(b, "<p class=\"flag draft\"><strong>NOT APPROVED</strong> - this version is ");
        web_buf_text(b, status_words(p->status));
        web_buf_raw(b, ". Urgent care sees the published version only.</p>");
    }
    if (ctx->pending_edits > 0)
        web_buf_rawf(b, "<p class=\"flag pending\"><strong>LOCAL CHANGES NOT YET APPROVED</strong> - %d pending "
                        "edit(s) from this device are shown, marked in their sections.</p>",
                     ctx->pending_edits);
    web_buf_raw(b, "<dl class=\"facts\">");
    dt(b, "Status");
    web_buf_raw(b, published ? "<strong>" : "<strong class=\"warn\">");
    web_buf_text(b, status_words(p->status));
    web_buf_rawf(b, "</strong> (version %lld)</dd>", (long long)p->version);
    dt(b, "Approved by");
    if (published) {
        text_or_unrecorded(b, p->approved_by);
        web_buf_raw(b, " on ");
        char day[11] = "";
        if (p->approved_at != NULL)
            snprintf(day, sizeof day, "%.10s", p->approved_at);
        text_or_unrecorded(b, day);
    } else {
        web_buf_raw(b, "<strong class=\"warn\">not approved</strong>");
    }
    web_buf_raw(b, "</dd>");
    dt(b, "Review due");
    if (overdue) {
        web_buf_raw(b, "<span class=\"flag overdue\"><strong>REVIEW OVERDUE</strong> - was due ");
        web_buf_text(b, p->review_due);
        web_buf_raw(b, "</span>");
    } else {
        text_or_unrecorded(b, p->review_due);
    }
    web_buf_raw(b, "</dd>");
    dt(b, "Copy on this device");
    web_buf_raw(b, stale ? "<strong class=\"warn\">" : "<span>");
    web_buf_text(b, age);
    web_buf_raw(b, stale ? "</strong>" : "</span>");
    web_buf_raw(b, "</dd></dl></section>\n");
}

static void conflicts_block(struct web_buf *b, const struct web_card *card)
{
    if (card->n_conflicts == 0)
        return;
    web_buf_raw(b, "<section class=\"conflicts\" aria-labelledby=\"h-conflicts\"><h2 id=\"h-conflicts\">");
    web_buf_rawf(b, "Open conflicts (%zu): your edit and the service both changed these</h2>", card->n_conflicts);
    web_buf_raw(b, "<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Yours (not approved)</th>"
                   "<th scope=\"col\">The service's</th></tr></thead><tbody>");
    for (size_t i = 0; i < card->n_conflicts; i++) {
        const struct engine_conflict *c = &card->conflicts[i];
        web_buf_raw(b, "<tr><th scope=\"row\">");
        web_buf_text(b, c->path);
        web_buf_raw(b, "</th><td>");
        web_buf_text(b, c->local);
        web_buf_raw(b, "</td><td>");
        web_buf_text(b, c->remote);
        web_buf_rawf(b, " (version %lld)</td></tr>", (long long)c->remote_version);
    }
    web_buf_raw(b, "</tbody></table><p class=\"small\">Settle each on this device with "
                   "<code>cmc-agent resolve</code>; until then the card shows your edit.</p></section>\n");
}

static void identity(struct web_buf *b, const struct web_card *card)
{
    const struct plan *p = card->p;
    section_open(b, "identity", 1, "Patient", NULL);
    pending_mark(b, card, SEC_IDENTITY);
    web_buf_raw(b, "<p class=\"patient-name\"><strong>");
    web_buf_text(b, p->patient.given_name);
    web_buf_raw(b, " ");
    web_buf_text(b, p->patient.family_name);
    web_buf_raw(b, "</strong>");
    if (p->patient.preferred_name != NULL) {
        web_buf_raw(b, " (known as ");
        web_buf_text(b, p->patient.preferred_name);
        web_buf_raw(b, ")");
    }
    web_buf_raw(b, "</p><dl class=\"facts\">");
    dt(b, "Born");
    text_or_unrecorded(b, p->patient.date_of_birth);
    int age = card_age_years(p->patient.date_of_birth, card->ctx->now);
    if (age >= 0)
        web_buf_rawf(b, " (age %d)", age);
    web_buf_raw(b, "</dd>");
    dt(b, "NHS number");
    nhs_text(b, p->nhs_number);
    web_buf_raw(b, "</dd>");
    dt(b, "Address");
    text_or_unrecorded(b, p->patient.address);
    web_buf_raw(b, ", ");
    text_or_unrecorded(b, p->patient.postcode);
    web_buf_raw(b, "</dd>");
    dt(b, "Gender");
    web_buf_text(b, gender_words(p->patient.gender));
    web_buf_raw(b, "</dd></dl></section>\n");
}

static void cpr(struct web_buf *b, const struct web_card *card)
{
    const struct plan *p = card->p;
    int d = p->resuscitation.decision;
    section_open(b, "cpr", 2, "CPR decision", "cpr-section");
    pending_mark(b, card, SEC_CPR);
    web_buf_raw(b, "<div class=\"cpr ");
    web_buf_raw(b, web_cpr_class(d));
    web_buf_raw(b, "\"><p class=\"cpr-headline\">");
    web_buf_text(b, cpr_headline(d));
    web_buf_raw(b, "</p><p class=\"cpr-words\">");
    web_buf_text(b, card_cpr_words(d));
    web_buf_raw(b, "</p></div><dl class=\"facts\">");
    dt(b, "Decided");
    text_or_unrecorded(b, p->resuscitation.decided_at);
    web_buf_raw(b, " by ");
    text_or_unrecorded(b, p->resuscitation.decided_by);
    web_buf_raw(b, "</dd>");
    dt(b, "Review");
    text_or_unrecorded(b, p->resuscitation.review_date);
    web_buf_raw(b, "</dd>");
    dt(b, "Paper form");
    text_or_unrecorded(b, p->resuscitation.form_location);
    web_buf_raw(b, "</dd>");
    dt(b, "Patient aware");
    web_buf_text(b, yes_no(p->resuscitation.patient_aware));
    web_buf_raw(b, "; family aware: ");
    web_buf_text(b, yes_no(p->resuscitation.family_aware));
    web_buf_raw(b, "</dd></dl></section>\n");
}

static void diagnoses(struct web_buf *b, const struct plan *p)
{
    int any = 0;
    web_buf_raw(b, "<ul>");
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->n_diagnoses; i++) {
            int primary = p->diagnoses[i].primary == 1;
            if (primary != (pass == 0))
                continue;
            web_buf_raw(b, "<li>");
            web_buf_raw(b, primary ? "<strong>" : "");
            web_buf_text(b, p->diagnoses[i].text);
            web_buf_raw(b, primary ? "</strong> (primary)" : "");
            web_buf_raw(b, "</li>");
            any = 1;
        }
    if (!any)
        web_buf_raw(b, "<li><span class=\"none\">none recorded</span></li>");
    web_buf_raw(b, "</ul>");
}

static void more(struct web_buf *b, const struct web_card *card)
{
    const struct plan *p = card->p;
    web_buf_raw(b, "<section class=\"card-section\" id=\"more\" aria-labelledby=\"h-more\"><h2 id=\"h-more\">"
                   "More from the plan</h2>");
    pending_mark(b, card, SEC_MORE);
    web_buf_raw(b, "<dl class=\"facts\">");
    dt(b, "Consent");
    web_buf_text(b, consent_words(p->consent.basis));
    web_buf_raw(b, ", recorded ");
    text_or_unrecorded(b, p->consent.recorded_at);
    web_buf_raw(b, " by ");
    text_or_unrecorded(b, p->consent.recorded_by);
    web_buf_raw(b, "</dd>");
    dt(b, "Language");
    text_or_unrecorded(b, p->patient.language);
    web_buf_raw(b, "; interpreter needed: ");
    web_buf_text(b, yes_no(p->patient.interpreter_needed));
    web_buf_raw(b, "</dd>");
    dt(b, "Patient's phone");
    tel_link(b, p->patient.phone);
    web_buf_raw(b, "</dd>");
    dt(b, "What matters to me");
    text_or_unrecorded(b, p->what_matters_to_me);
    web_buf_raw(b, "</dd>");
    dt(b, "Social support");
    text_or_unrecorded(b, p->social_support);
    web_buf_raw(b, "</dd>");
    dt(b, "Organ donation");
    text_or_unrecorded(b, p->organ_donation);
    web_buf_raw(b, "</dd>");
    dt(b, "Region, team, care home");
    text_or_unrecorded(b, p->region);
    web_buf_raw(b, "; ");
    text_or_unrecorded(b, p->team);
    web_buf_raw(b, "; ");
    text_or_unrecorded(b, p->care_home);
    web_buf_raw(b, "</dd>");
    dt(b, "Plan");
    web_buf_text(b, p->plan_id);
    web_buf_rawf(b, ", version %lld, updated ", (long long)p->version);
    text_or_unrecorded(b, p->updated_at);
    web_buf_raw(b, "</dd></dl></section>\n");
}

static void view_button(struct web_buf *b, const struct web_chrome *c, const struct plan *p, const char *view,
                        const char *label)
{
    web_buf_raw(b, "<form method=\"post\" action=\"/plan\" class=\"inline\">");
    hidden(b, "csrf", c->csrf);
    hidden(b, "plan_id", p->plan_id);
    hidden(b, "view", view);
    web_buf_raw(b, "<button type=\"submit\" class=\"secondary\">");
    web_buf_raw(b, label);
    web_buf_raw(b, "</button></form>");
}

void web_render_card(struct web_buf *b, const struct web_chrome *c, const struct web_card *card)
{
    const struct plan *p = card->p;
    int full = card->view != WEB_VIEW_CARD;
    page_begin(b, c);
    web_buf_raw(b, "<h1 class=\"card-title\">");
    web_buf_raw(b, card->view == WEB_VIEW_CARD ? "Summary card: " : "Care plan: ");
    web_buf_text(b, p->patient.given_name);
    web_buf_raw(b, " ");
    web_buf_text(b, p->patient.family_name);
    web_buf_raw(b, "</h1>\n");
    if (card->view == WEB_VIEW_PRINT) {
        char when[21];
        plat_format_time(card->ctx->now, when);
        web_buf_raw(b, "<p class=\"small\">Printed ");
        web_buf_text(b, when);
        web_buf_raw(b, " by ");
        web_buf_text(b, c->user);
        web_buf_raw(b, " from this device's copy. Use the browser's Print command. A printed plan is a "
                       "snapshot: it does not change when the plan does. <a href=\"/\" class=\"noprint\">Back to "
                       "search</a></p>\n");
    }
    banner(b, card);
    conflicts_block(b, card);
    identity(b, card);
    cpr(b, card);

    section_open(b, "ceiling", 3, "Ceiling of treatment", NULL);
    pending_mark(b, card, SEC_CEILING);
    web_buf_raw(b, "<p class=\"big\">");
    text_or_unrecorded(b, p->ceiling_of_treatment);
    web_buf_raw(b, "</p><dl class=\"facts\">");
    dt(b, "Hospital admission wanted");
    web_buf_raw(b, "<strong>");
    web_buf_text(b, yes_no(p->hospital_admission_wanted));
    web_buf_raw(b, "</strong></dd></dl></section>\n");

    section_open(b, "adrt", 4, "Advance decision to refuse treatment (ADRT)", NULL);
    pending_mark(b, card, SEC_ADRT);
    web_buf_raw(b, "<p class=\"big\">");
    if (p->adrt.exists == 1) {
        web_buf_raw(b, "<strong>YES - an ADRT exists</strong> (legally binding). Kept: ");
        text_or_unrecorded(b, p->adrt.location);
    } else {
        web_buf_raw(b, p->adrt.exists == 0 ? "No ADRT" : "<span class=\"none\">not recorded</span>");
    }
    web_buf_raw(b, "</p></section>\n");

    section_open(b, "places", 5, "Preferred places", NULL);
    pending_mark(b, card, SEC_PLACES);
    web_buf_raw(b, "<dl class=\"facts\">");
    dt(b, "Place of care");
    places(b, &p->preferred_place_of_care);
    web_buf_raw(b, "</dd>");
    dt(b, "Place of death");
    places(b, &p->preferred_place_of_death);
    web_buf_raw(b, "</dd></dl></section>\n");

    section_open(b, "contacts", 6, "Key contacts", NULL);
    pending_mark(b, card, SEC_CONTACTS);
    web_buf_raw(b, "<ul class=\"contacts\">");
    if (p->n_contacts == 0)
        web_buf_raw(b, "<li><span class=\"none\">none recorded</span></li>");
    for (int rank = 0; rank <= 7; rank++)
        for (size_t i = 0; i < p->n_contacts; i++) {
            const struct plan_contact *ct = &p->contacts[i];
            if (card_contact_rank(ct->role) != rank)
                continue;
            web_buf_raw(b, "<li><span class=\"role\">");
            web_buf_text(b, card_contact_role_words(ct->role));
            web_buf_raw(b, "</span> <span class=\"cname\">");
            web_buf_text(b, ct->name);
            web_buf_raw(b, "</span> ");
            tel_link(b, ct->phone);
            if (ct->available != NULL) {
                web_buf_raw(b, " <span class=\"avail\">(");
                web_buf_text(b, ct->available);
                web_buf_raw(b, ")</span>");
            }
            web_buf_raw(b, "</li>");
        }
    web_buf_raw(b, "</ul></section>\n");

    section_open(b, "diagnosis", 7, "Diagnosis and prognosis", NULL);
    pending_mark(b, card, SEC_DIAGNOSIS);
    diagnoses(b, p);
    web_buf_raw(b, "<dl class=\"facts\">");
    dt(b, "Prognosis");
    text_or_unrecorded(b, p->prognosis);
    web_buf_raw(b, "</dd></dl></section>\n");

    section_open(b, "medicines", 8, full ? "Medicines (anticipatory first)" : "Anticipatory medicines", NULL);
    pending_mark(b, card, SEC_MEDICINES);
    web_buf_raw(b, "<p class=\"big\"><strong>Kept:</strong> ");
    text_or_unrecorded(b, p->anticipatory_medicines_location);
    web_buf_raw(b, "</p><ul>");
    int any = 0;
    for (int pass = 0; pass < (full ? 2 : 1); pass++)
        for (size_t i = 0; i < p->n_medications; i++) {
            const struct plan_medication *m = &p->medications[i];
            if ((m->anticipatory == 1) != (pass == 0))
                continue;
            web_buf_raw(b, "<li><strong>");
            web_buf_text(b, m->name);
            web_buf_raw(b, "</strong> ");
            web_buf_text(b, m->dose);
            if (m->anticipatory != 1)
                web_buf_raw(b, " <span class=\"tag\">regular</span>");
            web_buf_raw(b, "</li>");
            any = 1;
        }
    if (!any)
        web_buf_raw(b, "<li><span class=\"none\">none recorded</span></li>");
    web_buf_raw(b, "</ul></section>\n");

    section_open(b, "allergies", 9, "Allergies", NULL);
    pending_mark(b, card, SEC_ALLERGIES);
    web_buf_raw(b, "<ul>");
    if (p->n_allergies == 0)
        web_buf_raw(b, "<li><span class=\"none\">none recorded</span></li>");
    for (size_t i = 0; i < p->n_allergies; i++) {
        const struct plan_allergy *a = &p->allergies[i];
        web_buf_raw(b, "<li><strong>");
        web_buf_text(b, a->substance);
        web_buf_raw(b, "</strong> - ");
        web_buf_text(b, a->reaction);
        web_buf_raw(b, a->severity == PLAN_SEVERITY_SEVERE ? " (<strong>" : " (");
        web_buf_text(b, card_severity_words(a->severity));
        web_buf_raw(b, a->severity == PLAN_SEVERITY_SEVERE ? "</strong>)</li>" : ")</li>");
    }
    web_buf_raw(b, "</ul></section>\n");

    section_open(b, "problems", 10, "Anticipated problems and what to do", NULL);
    pending_mark(b, card, SEC_PROBLEMS);
    web_buf_raw(b, "<dl class=\"problems\">");
    if (p->n_anticipated_problems == 0)
        web_buf_raw(b, "<dt><span class=\"none\">none recorded</span></dt>");
    for (size_t i = 0; i < p->n_anticipated_problems; i++) {
        web_buf_raw(b, "<dt>");
        web_buf_text(b, p->anticipated_problems[i].problem);
        web_buf_raw(b, "</dt><dd>");
        web_buf_text(b, p->anticipated_problems[i].guidance);
        web_buf_raw(b, "</dd>");
    }
    web_buf_raw(b, "</dl></section>\n");

    if (full)
        more(b, card);
    if (card->view != WEB_VIEW_PRINT) {
        web_buf_raw(b, "<nav class=\"actions\" aria-label=\"This plan\">");
        if (card->view == WEB_VIEW_CARD)
            view_button(b, c, p, "full", "Full plan");
        else
            view_button(b, c, p, "card", "Summary card");
        view_button(b, c, p, "print", "Print view");
        web_buf_raw(b, "<a class=\"button secondary\" href=\"/\">New search</a></nav>\n");
    }
    page_end(b);
}

/* ---- the stylesheet --------------------------------------------------------------------- */

/* High contrast by day (black on white), light on black by night (the device's setting, or
 * the page's own switch); system fonts only; large targets for gloved fingers; the CPR
 * decisions differ by fill, border style and words, so colour is never the only cue. */
/* In two parts: C compilers need not accept string literals past 4095 bytes. */
static const char css[] =
    ":root{--bg:#fff;--fg:#000;--muted:#333;--panel:#f2f2f2;--line:#000;--link:#0033a0;"
    "--warn-bg:#ffd500;--warn-fg:#000;--red:#a00000;--focus:#ffbf47}\n"
    "body.night{--bg:#000;--fg:#fff;--muted:#ddd;--panel:#1a1a1a;--line:#fff;--link:#9cf;--red:#ff6b6b}\n"
    "@media (prefers-color-scheme:dark){body.auto{--bg:#000;--fg:#fff;--muted:#ddd;--panel:#1a1a1a;"
    "--line:#fff;--link:#9cf;--red:#ff6b6b}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:1.125rem/1.45 system-ui,-apple-system,"
    "\"Segoe UI\",Roboto,\"DejaVu Sans\",Arial,sans-serif}\n"
    "main{max-width:60rem;margin:0 auto;padding:.75rem 1rem 3rem}\n"
    "a{color:var(--link)}\n"
    ":focus-visible{outline:.25rem solid var(--focus);outline-offset:.125rem}\n"
    ".skip{position:absolute;left:-999rem}.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.5rem}\n"
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\n"
    "header.top{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.5rem 1rem;"
    "border-bottom:.25rem solid var(--line)}\n"
    "header .app{font-weight:800}header .who{flex:1}\n"
    "header nav{display:flex;gap:.5rem}\n"
    "h1{font-size:1.6rem;margin:.5rem 0}\n"
    "h2{font-size:1.3rem;margin:0 0 .5rem}\n"
    "h2 .n{display:inline-block;min-width:1.8rem;border:2px solid var(--fg);border-radius:50%;"
    "text-align:center;margin-right:.4rem}\n"
    "label{display:block;font-weight:700;margin-bottom:.25rem}\n"
    "input{font:inherit;width:100%;max-width:24rem;padding:.6rem;border:.15rem solid var(--fg);"
    "background:var(--bg);color:var(--fg);min-height:3rem}\n"
    "button,.button{font:inherit;font-weight:700;display:inline-block;min-height:3rem;padding:.6rem 1.2rem;"
    "background:var(--fg);color:var(--bg);border:.15rem solid var(--fg);cursor:pointer;text-decoration:none}\n"
    "button.secondary,.button.secondary{background:var(--bg);color:var(--fg)}\n"
    "button.lock{background:var(--red);border-color:var(--red);color:#fff}\n"
    "form.inline{display:inline}\n"
    ".panel{background:var(--panel);padding:.75rem 1rem;margin:1rem 0;border:1px solid var(--line)}\n"
    ".alert{border:.25rem solid var(--red);padding:.75rem;font-weight:700}\n"
    ".flag{background:var(--warn-bg);color:var(--warn-fg);border:.3rem solid #000;padding:.6rem .8rem;"
    "font-weight:600}\n"
    ".flag.stale{font-size:1.3rem;border-style:double;border-width:.5rem}\n"
    "span.flag{display:inline-block;padding:.1rem .4rem}\n"
    ".pending{border:.2rem dashed var(--fg);padding:.4rem .6rem;font-style:italic}\n"
    ".flag.pending{font-style:normal}\n"
    ".warn{color:var(--red)}\n"
    ".none{color:var(--muted);font-style:italic}\n"
    ".tag{border:2px solid var(--fg);padding:0 .3rem;font-size:.9rem;font-weight:700}\n"
    ".small{font-size:.95rem;color:var(--muted)}\n"
    ".banner{border:.2rem solid var(--line);padding:.5rem .8rem;margin:.5rem 0 1rem}\n"
    "dl.facts{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.2rem 1rem;margin:.4rem 0}\n"
    "dl.facts dt{font-weight:700}dl.facts dd{margin:0}\n"
    ".card-section{border-top:.2rem solid var(--line);padding:.6rem 0}\n"
    ".patient-name{font-size:1.5rem;margin:.2rem 0}\n"
    ".big{font-size:1.2rem}\n"
        ;
static const char css_card[] =
    ".cpr{padding:1rem 1.2rem;margin:.5rem 0;border:.6rem solid #000}\n"
    ".cpr p{margin:0}.cpr-headline{font-size:2.6rem;font-weight:900;line-height:1.1;letter-spacing:.02em}\n"
    ".cpr-words{font-size:1.4rem;font-weight:700}\n"
    ".cpr-dnacpr{background:#7a0000;color:#fff;border-style:double;border-width:1rem;border-color:#000}\n"
    ".cpr-dnacpr .cpr-headline::before{content:\"\\2715  \"}\n"
    ".cpr-for{background:#fff;color:#000;border-style:solid;border-color:#0a5c0a;"
    "box-shadow:inset 1.2rem 0 0 #0a5c0a;padding-left:2.4rem}\n"
    ".cpr-for .cpr-headline::before{content:\"\\2713  \"}\n"
    ".cpr-undiscussed,.cpr-none{background:#ffd500;color:#000;border-style:dashed;border-color:#000}\n"
    ".cpr-undiscussed .cpr-headline::before,.cpr-none .cpr-headline::before{content:\"?  \"}\n"
    "ul.contacts{list-style:none;padding:0;margin:0}\n"
    "ul.contacts li{padding:.4rem 0;border-bottom:1px solid var(--muted)}\n"
    "ul.contacts .role{font-weight:800;display:inline-block;min-width:12rem}\n"
    "a.tel{font-weight:800;font-size:1.25rem;display:inline-block;padding:.3rem .2rem;min-height:2.5rem}\n"
    "dl.problems dt{font-weight:800;margin-top:.4rem}dl.problems dd{margin:0 0 .4rem 1rem}\n"
    ".conflicts{border:.3rem dashed var(--red);padding:.5rem .8rem;margin:1rem 0}\n"
    ".conflicts table{border-collapse:collapse;width:100%}\n"
    ".conflicts th,.conflicts td{border:1px solid var(--line);padding:.3rem;text-align:left}\n"
    "ol.hits{padding-left:1.5rem}li.hit{margin:.8rem 0;padding:.5rem;border:.15rem solid var(--line)}\n"
    ".hit-name{font-size:1.3rem;margin:0}\n"
    "nav.actions{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:1rem}\n"
    "form.theme{margin-top:2rem}\n"
    "@media print{header.top,nav.actions,.noprint,form.theme{display:none}"
    "body{font-size:11pt}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".card-section{break-inside:avoid}}\n";

void web_render_css(struct web_buf *b)
{
    web_buf_raw(b, css);
    web_buf_raw(b, css_card);
}
