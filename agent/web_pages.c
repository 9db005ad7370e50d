/* web_pages.c - the page frame and the pages around the card: unlock, find a patient (with
 * its candidates) and messages. */
#include "agent/web_html.h"

#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

static void nhs_text(struct web_buf *b, const char *nhs)
{
    char spaced[CARD_NHS_SPACED];
    card_nhs_spaced(nhs, spaced);
    web_buf_text(b, spaced);
}

/* "not recorded" in a muted style for an absent value: absence must look like absence. */
void web_text_or_unrecorded(struct web_buf *b, const char *s)
{
    if (s == NULL || s[0] == '\0')
        web_buf_raw(b, "<span class=\"none\">not recorded</span>");
    else
        web_buf_text(b, s);
}

/* ---- the frame -------------------------------------------------------------------------- */

/* The idle lock without a timed reload (a page must not refresh itself, WCAG 2.2.1): the
 * server ends the session after idle_seconds without a request, and the page says when, in
 * London time, so a crew knows the next tap will ask for the PIN again. */
static void idle_notice(struct web_buf *b, const struct web_chrome *c)
{
    if (c->idle_seconds <= 0)
        return;
    char at[40];
    card_local_time(plat_wall_now() + c->idle_seconds, at, sizeof at);
    web_buf_rawf(b, " <span class=\"locks\">- locks at %.5s if unused</span>", at + 11);
}

void web_page_begin(struct web_buf *b, const struct web_chrome *c)
{
    web_buf_raw(b, "<!DOCTYPE html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                   "<meta name=\"referrer\" content=\"same-origin\">");
    web_buf_raw(b, "<title>");
    web_buf_attr(b, c->title);
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
            web_buf_raw(b, ")");
            idle_notice(b, c);
            web_buf_raw(b, "</span><nav aria-label=\"Session\"><a class=\"button secondary\" href=\"/\">"
                           "New search</a><form method=\"post\" action=\"/lock\" class=\"inline\">"
                           "<input type=\"hidden\" name=\"csrf\" value=\"");
            web_buf_attr(b, c->csrf);
            web_buf_raw(b, "\"><button type=\"submit\" class=\"lock\">Lock</button></form></nav>");
        } else {
            web_buf_raw(b, "<span class=\"who\">Locked</span>");
        }
        web_buf_raw(b, "</header>\n");
    }
    web_buf_raw(b, "<main id=\"main\">\n");
}

void web_page_end(struct web_buf *b)
{
    web_buf_raw(b, "</main>\n</body></html>\n");
}

/* An alert paragraph (nothing when message is NULL). */
static void alert(struct web_buf *b, const char *message)
{
    if (message == NULL)
        return;
    web_buf_raw(b, "<p class=\"alert\" role=\"alert\">");
    web_buf_text(b, message);
    web_buf_raw(b, "</p>\n");
}

void web_hidden(struct web_buf *b, const char *name, const char *value)
{
    web_buf_raw(b, "<input type=\"hidden\" name=\"");
    web_buf_raw(b, name);
    web_buf_raw(b, "\" value=\"");
    web_buf_attr(b, value);
    web_buf_raw(b, "\">");
}

static void input_value(struct web_buf *b, const char *v)
{
    if (v != NULL && v[0] != '\0') {
        web_buf_raw(b, " value=\"");
        web_buf_attr(b, v);
        web_buf_raw(b, "\"");
    }
}

/* ---- unlock ----------------------------------------------------------------------------- */

void web_render_unlock(struct web_buf *b, const struct web_chrome *c, const char *pre,
                       const char *message, const char *user_value)
{
    web_page_begin(b, c);
    web_buf_raw(b, "<h1>Unlock</h1>\n<p>Care plans on this device are encrypted. Unlock with your user name "
                   "and PIN.</p>\n");
    alert(b, message);
    web_buf_raw(b, "<form method=\"post\" action=\"/unlock\" class=\"panel\" autocomplete=\"off\">");
    web_hidden(b, "pre", pre);
    web_buf_raw(b, "<p><label for=\"user\">User</label><input id=\"user\" name=\"user\" type=\"text\" required "
                   "autocapitalize=\"none\" spellcheck=\"false\" autocomplete=\"username\"");
    input_value(b, user_value);
    web_buf_raw(b, "></p><p><label for=\"pin\">PIN</label><input id=\"pin\" name=\"pin\" type=\"password\" "
                   "required inputmode=\"numeric\" autocomplete=\"current-password\"></p>"
                   "<p><button type=\"submit\">Unlock</button></p></form>\n"
                   "<p class=\"small\">This page is served by the device itself and works with no network. "
                   "It locks after a few minutes without use.</p>\n");
    web_page_end(b);
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
        web_buf_text(b, card_status_words(h->status));
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
    web_hidden(b, "csrf", c->csrf);
    web_hidden(b, "plan_id", h->plan_id);
    web_hidden(b, "view", "card");
    web_buf_raw(b, "<button type=\"submit\">Open plan<span class=\"sr\"> of ");
    web_buf_text(b, h->given_name);
    web_buf_raw(b, " ");
    web_buf_text(b, h->family_name);
    web_buf_raw(b, "</span></button></form></li>\n");
}

void web_render_home(struct web_buf *b, const struct web_chrome *c, const struct web_home *h)
{
    web_page_begin(b, c);
    web_buf_raw(b, "<h1>Find a patient</h1>\n");
    web_buf_raw(b, h->stale ? "<p class=\"flag stale\" role=\"status\"><strong>STALE COPY:</strong> this device's "
                              "copy was "
                            : "<p class=\"copy\">This device's copy was ");
    web_buf_text(b, h->copy_age);
    web_buf_raw(b, h->stale ? ". A newer plan may exist: check with the service if you can.</p>\n" : ".</p>\n");
    if (h->lease_days_left > 0)
        web_buf_rawf(b, "<p class=\"flag lease\" role=\"status\"><strong>This copy locks in %d day%s without a "
                        "sync.</strong> Sync the device before then.</p>\n",
                     h->lease_days_left, h->lease_days_left == 1 ? "" : "s");
    if (h->clinician && (h->pending > 0 || h->conflicts > 0))
        web_buf_rawf(b, "<p class=\"pending\">%lld local change%s not yet approved; %lld open conflict%s.</p>\n",
                     (long long)h->pending, h->pending == 1 ? "" : "s", (long long)h->conflicts,
                     h->conflicts == 1 ? "" : "s");
    alert(b, h->message);

    web_buf_raw(b, "<section aria-labelledby=\"h-nhs\" class=\"panel\"><h2 id=\"h-nhs\">By NHS number</h2>"
                   "<form method=\"post\" action=\"/lookup\" autocomplete=\"off\">");
    web_hidden(b, "csrf", c->csrf);
    web_buf_raw(b, "<p><label for=\"nhs\">NHS number (10 digits)</label><input id=\"nhs\" name=\"nhs\" "
                   "type=\"text\" inputmode=\"numeric\" required maxlength=\"20\" autocomplete=\"off\"");
    input_value(b, h->nhs_value);
    web_buf_raw(b, "></p><p><button type=\"submit\">Show plan</button></p></form></section>\n");

    web_buf_raw(b, "<section aria-labelledby=\"h-id\" class=\"panel\"><h2 id=\"h-id\">By name, date of birth "
                   "and postcode</h2><form method=\"post\" action=\"/search\" autocomplete=\"off\">");
    web_hidden(b, "csrf", c->csrf);
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
        else if (h->total > h->n_hits) /* never a cut list taken for the whole */
            web_buf_rawf(b, "Only %zu of %zu matching plans shown</h2><p class=\"flag stale\" role=\"status\">"
                            "<strong>Not every match is listed:</strong> %s.</p>",
                         h->n_hits, h->total, h->shown_words != NULL ? h->shown_words : "");
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
    web_hidden(b, "csrf", c->csrf);
    web_buf_raw(b, c->night > 0 ? "<input type=\"hidden\" name=\"theme\" value=\"day\"><button type=\"submit\" "
                                  "class=\"secondary\">Day colours</button>"
                                : "<input type=\"hidden\" name=\"theme\" value=\"night\"><button type=\"submit\" "
                                  "class=\"secondary\">Night colours</button>");
    web_buf_raw(b, "</form>\n");
    web_page_end(b);
}

void web_render_message(struct web_buf *b, const struct web_chrome *c, const char *heading,
                        const char *message)
{
    web_page_begin(b, c);
    web_buf_raw(b, "<h1>");
    web_buf_text(b, heading);
    web_buf_raw(b, "</h1>\n");
    alert(b, message);
    web_buf_raw(b, "<p><a class=\"button\" href=\"/\">Back</a></p>\n");
    web_page_end(b);
}
