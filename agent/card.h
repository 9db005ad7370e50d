/*
 * card.h - the crew's summary card: what a paramedic needs first, in clinical order.
 *
 * Order (shared/DOMAIN.md): a banner (plan status, approved by and when, review due with an
 * overdue flag, and how old this device's copy is) then 1 identity, 2 CPR decision, 3 ceiling
 * of treatment and admission wishes, 4 ADRT, 5 preferred places of care and death, 6 key
 * contacts with phone numbers, 7 primary diagnosis and prognosis, 8 anticipatory medicines and
 * where they are kept, 9 allergies, 10 anticipated problems with their guidance.
 *
 * The banner comes first on screen because a crew must judge how far to trust the card
 * (status, review, age of copy) before reading it. The CPR decision is always spelt out in
 * words ("DNACPR - do NOT attempt CPR", "FOR CPR - attempt CPR", "CPR NOT YET DISCUSSED"),
 * never a code or a colour alone.
 *
 * Rendering writes to a FILE* (text) or builds a jansson object (--json); it never logs.
 */
#ifndef CMC_CARD_H
#define CMC_CARD_H

#include "sync/plan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* A copy older than this is flagged as stale on the card. */
#define CARD_STALE_AFTER_SECONDS (24 * 3600)

struct card_context {
    int64_t now;          /* wall clock, Unix seconds */
    int64_t last_sync;    /* last successful sync, Unix seconds; -1 = never synced */
    int pending_edits;    /* >0: the clinician's view includes unapproved local changes */
    int show_full;        /* print every field (`show`) rather than the summary card */
};

/* Age of this device's copy in words, e.g. "never synced", "synced 3 h 10 min ago". */
void card_copy_age(const struct card_context *ctx, char *out, size_t cap);

/* The CPR decision in words for the card ("DNACPR - do NOT attempt CPR", ...). */
const char *card_cpr_words(int decision);

/* Words shared by the terminal card and the crew's page, so both say the same thing. */
const char *card_place_words(int place);         /* "Home", "Hospice", ... */
const char *card_contact_role_words(int role);   /* "GP", "Palliative care 24/7", ... */
int card_contact_rank(int role);                 /* the order a crew rings contacts in */
const char *card_severity_words(int severity);   /* "mild", "SEVERE", ... */
int card_age_years(const char *dob, int64_t now); /* -1 when unknown */
int card_review_overdue(const char *review_due, int64_t now);

void card_print(FILE *f, const struct plan *p, const struct card_context *ctx);

/* {"banner": {...}, "sections": [{"n": 1, "title": "...", ...}, ...], "plan": {...}}.
 * Returns a new reference or NULL on allocation failure. */
json_t *card_to_json(const struct plan *p, const struct card_context *ctx);

#endif
