/*
 * web_html.h - the crew's page as HTML: a growable output buffer with escaping (web_buf.c),
 * the page frame and the pages around the card (web_pages.c: unlock, find a patient,
 * candidates, messages), the card itself (web_card.c: the summary card, the full plan, the
 * print view, formatted from the card model of agent/card.h) and the one stylesheet
 * (web_css.c).
 *
 * The pages are server-rendered and need no JavaScript: forms POST to the device's own
 * server, so nothing about a patient ever goes into a URL. The card follows the order of
 * shared/DOMAIN.md (agent/card.h): a banner (status, approver, review due, the age of this
 * device's copy, each flagged in words when it needs attention), then 1 identity, 2 the CPR
 * decision (large; DNACPR, FOR CPR and NOT YET DISCUSSED differ in words, fill and border,
 * never by colour alone), 3 ceiling of treatment, 4 ADRT, 5 preferred places, 6 key
 * contacts with tel: links, 7 diagnosis and prognosis, 8 anticipatory medicines and where
 * they are kept, 9 allergies, 10 anticipated problems with their guidance. Headings are
 * numbered h2s in that order, so a screen reader reads the card in clinical order.
 *
 * Every string that comes from a plan, a form or a user name is HTML-escaped by
 * web_buf_text(); web_buf_raw() is for the renderer's own markup only.
 *
 * Memory: a web_buf owns its bytes; web_buf_free() zeroes them (a page holds patient data
 * and form tokens) and frees. Allocation failure is sticky: later appends do nothing and
 * web_buf_status() returns CMC_ERR_NOMEM. Thread-safety: renderers touch their arguments only.
 */
#ifndef CMC_WEB_HTML_H
#define CMC_WEB_HTML_H

#include "agent/card.h"
#include "agent/engine.h"
#include "agent/store.h"
#include "sync/plan.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct web_buf {
    char *p;
    size_t len, cap;
    int nomem;
};

void web_buf_init(struct web_buf *b);
void web_buf_free(struct web_buf *b);
/* Appends markup as it is. */
void web_buf_raw(struct web_buf *b, const char *s);
void web_buf_rawf(struct web_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends text HTML-escaped (& < > " '), with every character sync/text.h refuses
 * (controls, bidirectional overrides, invisible characters) shown as U+FFFD; NULL or ""
 * appends "-" so an absent value is visibly absent. Text beyond ASCII is isolated in <bdi>
 * so right-to-left text cannot reorder what surrounds it: element content only. */
void web_buf_text(struct web_buf *b, const char *s);
/* The same escaping without <bdi>: for quoted attribute values and the <title>. */
void web_buf_attr(struct web_buf *b, const char *s);
/* CMC_OK, or CMC_ERR_NOMEM if any append failed. */
int web_buf_status(const struct web_buf *b);
/* Records an allocation failure outside the buffer (the page cannot be complete). */
void web_buf_nomem(struct web_buf *b);

/* What every page's frame needs. */
struct web_chrome {
    const char *title;    /* the <title> and the page's h1 */
    const char *user;     /* NULL when locked */
    const char *role;     /* "urgent care" / "clinician" */
    const char *csrf;     /* the session's form token; NULL when locked */
    int idle_seconds;     /* > 0 on unlocked pages: the header says when the session locks
                             itself if unused ("locks at 14:32"); nothing reloads the page */
    int night;            /* 1 night colours, 0 day colours, -1 follow the device setting */
    int print;            /* the print view: no controls */
};

/* The frame shared by every page: the head, the header with the session's controls, and
 * the closing tags. */
void web_page_begin(struct web_buf *b, const struct web_chrome *c);
void web_page_end(struct web_buf *b);
/* A hidden form field; the value is escaped. */
void web_hidden(struct web_buf *b, const char *name, const char *value);
/* Escaped text, or a muted "not recorded" when s is NULL or "": absence must look like it. */
void web_text_or_unrecorded(struct web_buf *b, const char *s);

/* The unlock page. `pre` is the pre-session form token (also sent as a cookie); message
 * (may be NULL) is shown as an alert; user_value refills the user field. */
void web_render_unlock(struct web_buf *b, const struct web_chrome *c, const char *pre,
                       const char *message, const char *user_value);

/* The page of a lease-locked copy (web_glass.c): the lock's message and the break-glass
 * form (user, PIN, NHS number, reason) posting to /break-glass with the pre-session token. */
void web_render_glass(struct web_buf *b, const struct web_chrome *c, const char *pre, const char *message,
                      const char *user_value);
/* The break-glass card: the plan of NHS number `nhs` this session's role may see, audited as
 * break_glass with `reason` (a miss as lookup_miss), rendered under the card's break-glass
 * banner with the copy's age. CMC_ERR_NOT_FOUND when there is no such plan (nothing
 * rendered), or another error from the replica. */
int web_glass_card(struct web_buf *b, const struct web_chrome *c, store *st, const char *nhs, const char *reason);

/* The find-a-patient page, shown after unlocking; with the search results when hits is
 * non-NULL (n may be 0: "no matching plan"). */
struct web_home {
    const char *message;      /* an alert (e.g. "NHS number check digit is wrong"), or NULL */
    const char *nhs_value;    /* refills of the forms, or NULL */
    const char *name_value;
    const char *dob_value;
    const char *postcode_value;
    const char *copy_age;     /* card_copy_age() of the device */
    int stale;                /* the device's copy is older than CARD_STALE_AFTER_SECONDS */
    int lease_days_left;      /* > 0: "this copy locks in N days without a sync"; 0: no warning */
    int clinician;
    int64_t pending;          /* clinician: pending local edits */
    int64_t conflicts;        /* clinician: open conflicts */
    const struct store_hit *hits;
    size_t n_hits;
    size_t total;             /* every match, shown or not (more than n_hits: the list is cut) */
    const char *shown_words;  /* store_search_words(): "showing 20 of 551 - add ...", or "" */
    int searched;             /* show the results block (hits may be empty) */
};
void web_render_home(struct web_buf *b, const struct web_chrome *c, const struct web_home *h);

enum web_view {
    WEB_VIEW_CARD,  /* the summary card */
    WEB_VIEW_FULL,  /* every field */
    WEB_VIEW_PRINT, /* every field, laid out for paper, no controls */
};

struct web_card {
    const struct plan *p;
    const struct card_context *ctx;           /* with a clinician's local changes and conflicts
                                                 (agent/card_source.h) */
    enum web_view view;
};
/* The card of card->p in clinical order; an allocation failure leaves the buffer failed. */
void web_render_card(struct web_buf *b, const struct web_chrome *c, const struct web_card *card);

/* A page with one heading and one message (errors, "no plan on this device"). */
void web_render_message(struct web_buf *b, const struct web_chrome *c, const char *heading,
                        const char *message);

/* The stylesheet (served as /style.css). */
void web_render_css(struct web_buf *b);

#endif
