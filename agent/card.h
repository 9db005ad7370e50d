/*
 * card.h - the crew's summary card as one model: what a paramedic needs first, in clinical
 * order, with its words already chosen. The terminal printer (card_print), the --json output
 * (card_to_json) and the crew's page (agent/web_card.c) only format this model, so every
 * output says the same thing in the same order.
 *
 * Order (shared/DOMAIN.md): a banner (plan status, approved by and when, review due with an
 * overdue flag, how old this device's copy is and whether it is stale, pending local edits)
 * then 1 identity, 2 CPR decision, 3 ceiling of treatment and admission wishes, 4 ADRT,
 * 5 preferred places of care and death, 6 key contacts with phone numbers (in the order a crew
 * rings them), 7 primary diagnosis and prognosis, 8 anticipatory medicines and where they are
 * kept, 9 allergies, 10 anticipated problems with their guidance; the full view adds "more".
 *
 * The banner comes first, compact (status, approver, review, age of copy, the sections with
 * local changes), because a crew must judge how far to trust the card before reading it; the
 * CPR decision follows the identity at once and every longer notice (stale copy, lease, rules,
 * conflicts) comes after it, so the decision is on the first screen in every state. The CPR
 * decision is always spelt out in words ("DNACPR - do NOT attempt CPR", "FOR CPR - attempt
 * CPR", "CPR NOT YET DISCUSSED"), never a code or a colour alone.
 *
 * Every shown value is a struct card_value: its words, the plan field it comes from and its
 * state on the way to approval. The plan's values are those of the version held (published
 * ones carry the banner's approver and date). A clinician's local change is never shown as the
 * plan's value: the model keeps it in a second body (the proposal) and every output shows it
 * inside its section, beside the plan's value, as "PROPOSED on this device, not approved", then
 * "sent - awaiting approval" once pushed. Urgent care never has a proposal (agent/view.h).
 * A value the plan does not record has text NULL; each output shows that absence its own way
 * ("-" on the terminal, a muted "not recorded" on the page) but never hides it.
 *
 * Times are shown in London time with the zone's name (GMT or BST).
 *
 * Memory: a card_model borrows the plans' strings, the context's arrays and conflicts; they
 * must outlive it. It owns nothing else (its lists are bounded by PLAN_MAX_ITEMS), so there is
 * nothing to free; some values point into the model itself, so it is built in place and never
 * copied. card_build never fails and never logs. Thread-safety: pure functions.
 */
#ifndef CMC_CARD_H
#define CMC_CARD_H

#include "agent/engine.h"
#include "agent/store.h"
#include "sync/plan.h"
#include "sync/rules.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* A copy older than this is flagged as stale on the card. */
#define CARD_STALE_AFTER_SECONDS (24 * 3600)
/* Pending-change paths named per section (more are counted, not named). */
#define CARD_MAX_SECTION_PATHS 16
/* "943 476 5919" and its NUL. */
#define CARD_NHS_SPACED 16

struct card_context {
    int64_t now;                 /* wall clock, Unix seconds */
    int64_t last_sync;           /* last successful sync, Unix seconds; -1 = never synced */
    int pending_edits;           /* >0: the clinician's view includes unapproved local changes */
    int show_full;               /* every field (`show`, the full plan) rather than the summary */
    const json_t *changed_paths; /* dotted paths of those changes (array of strings), or NULL */
    int lease_days_left;         /* -1 = no warning; >= 0: "this copy locks in N days without a sync",
                                    shown below the CPR decision */
    int break_glass;             /* 1: a locked copy opened for one patient with a reason: a red
                                    banner "copy is N days old - may be out of date" */
    int64_t copy_age_days;       /* the copy's age in days, for that banner */
    /* Provenance of a clinician's view (agent/card_source.h fills these; all may be NULL/0).
     * With `published` set, the card shows that version's values as the plan's and each
     * local change beside them, inside its section, as a proposal. */
    const struct plan *published; /* the version held without this device's local changes */
    const json_t *sent_paths;     /* paths of changes sent to the hub, awaiting its answer, and
                                     not changed again since */
    const struct engine_conflict *conflicts; /* this plan's open conflicts */
    size_t n_conflicts;
    const char *proposed_by;      /* who made the newest local change on this device */
    int64_t proposed_at;          /* when (Unix seconds); 0 = not known */
};

/* What a value is, beside its words: where it stands on the way to approval. */
enum card_value_state {
    CARD_VALUE_APPROVED, /* as in the version held: published (approved by the banner's approver)
                            or, for a draft, that draft's own status */
    CARD_VALUE_PROPOSED, /* a clinician's change on this device, not approved */
    CARD_VALUE_SENT,     /* that change sent to the hub, awaiting approval */
    CARD_VALUE_CONFLICT, /* that change held by a conflict with a newer version */
};

struct card_value {
    const char *text;            /* the words to show; NULL when the plan records nothing */
    const char *path;            /* the plan field it comes from, e.g. "patient.date_of_birth" */
    enum card_value_state state;
};

enum card_section_id {
    CARD_SEC_IDENTITY,
    CARD_SEC_CPR,
    CARD_SEC_CEILING,
    CARD_SEC_ADRT,
    CARD_SEC_PLACES,
    CARD_SEC_CONTACTS,
    CARD_SEC_DIAGNOSIS,
    CARD_SEC_MEDICINES,
    CARD_SEC_ALLERGIES,
    CARD_SEC_PROBLEMS,
    CARD_SEC_MORE,
    CARD_N_SECTIONS
};

struct card_section {
    int number;           /* 1..10 in clinical order; 0 for "more" */
    const char *anchor;   /* a short stable id: "identity", "cpr", ... (the page's HTML ids) */
    const char *key;      /* its name in the --json "order": "identity", "ceiling_of_treatment", ... */
    const char *title;    /* the heading: "Patient", "CPR decision", ... */
    const char *label;    /* the terminal's short column label: "PATIENT", "CPR", ... */
    /* the distinct paths of local changes shown in this section */
    const char *pending_paths[CARD_MAX_SECTION_PATHS];
    size_t n_pending_paths;
    enum card_value_state state; /* the most pressing state of its values (conflict, proposed,
                                    sent, approved) */
};

struct card_banner {
    int status;                  /* enum plan_status */
    const char *status_words;    /* "PUBLISHED", "DRAFT - not approved", ... */
    int published;
    struct card_value approved_by;
    char approved_on[11];        /* YYYY-MM-DD, "" when not recorded */
    const char *approved_at;     /* as the plan records it (UTC), or NULL */
    int64_t version;
    struct card_value review_due;
    int review_overdue;
    char copy_age[96];           /* "synced 3 h 10 min ago (14:02 GMT)", "never synced" */
    int64_t last_sync;           /* -1 = never synced */
    int stale;                   /* older than CARD_STALE_AFTER_SECONDS, or never synced */
    int pending_edits;
    /* "CPR decision, Diagnosis and prognosis": the sections a local change touches, for the
     * banner's "+ your unapproved changes to: ..." ("" when none) */
    char changed_sections[160];
    int lease_days_left;         /* -1, or days before this copy locks without a sync */
    int break_glass;             /* opened on a locked copy: the copy may be out of date */
    int64_t copy_age_days;
    /* Notices (one self-contained block): content this agent cannot show, and the first
     * clinical rule (sync/rules.h) the plan breaks, checked at read time on this device. */
    int newer_content;           /* the plan holds a later edition's fields: update the agent */
    const char *rule;            /* a broken rule's stable id, or NULL */
    size_t n_rules;              /* rules broken, in all */
    char rule_detail[RULES_DETAIL_MAX]; /* its fields and what is wrong (never a value) */
};

struct card_place_list {
    const char *words[PLAN_MAX_PLACES]; /* first choice first */
    size_t n;
    struct card_value value;            /* the list in words ("Home, then Hospice"), text in `joined` */
    char joined[64];
};

struct card_contact {
    struct card_value role, name, phone, available;
};

struct card_diagnosis {
    struct card_value text;
    int primary;
};

struct card_medicine {
    struct card_value name, dose;
    int anticipatory;
};

struct card_allergy {
    struct card_value substance, reaction, severity;
    int severe;
};

/* What an empty allergy list says: a positive record of none, or nothing recorded. */
#define CARD_NKA_WORDS "No known allergies (recorded)"
#define CARD_UNRECORDED_WORDS "None recorded - ask"

struct card_problem {
    struct card_value problem, guidance;
};

struct card_identity {
    struct card_value given_name, family_name, preferred_name, date_of_birth, nhs_number, address, postcode,
        gender, language, interpreter_needed, care_home, care_home_address;
    int age;                             /* years; -1 when unknown */
    int interpreter;                     /* 1 an interpreter is needed, 0 not, PLAN_UNSET unknown */
    int home_is_address;                 /* the care home's address is the patient's (shown once) */
    char nhs_spaced[CARD_NHS_SPACED];    /* "943 476 5919" (the number as written when not 10 digits) */
};

struct card_cpr {
    int decision;                /* enum plan_cpr */
    const char *headline;        /* "DNACPR", "FOR CPR", ...: read across a room */
    const char *words;           /* "DNACPR - do NOT attempt CPR", ... */
    const char *style;           /* "dnacpr", "for", "undiscussed", "none": how printers mark it */
    struct card_value decision_words; /* the words as a value (its state and field) */
    struct card_value decided_at, decided_by, review_date, form_location, patient_aware, family_aware;
    int review_lapsed;           /* the decision's own review date has passed */
};

/* The plan's content, as the sections show it. A model holds two: the plan's (published, or
 * the version held) and, on a clinician's device with local changes, the proposal. */
#define CARD_BODY_MEMBERS                                                                                   \
    struct card_identity identity;                                                                         \
    struct card_cpr cpr;                                                                                   \
    struct {                                                                                               \
        struct card_value ceiling, admission_wanted;                                                       \
    } ceiling;                                                                                             \
    struct {                                                                                               \
        int exists;              /* 1, 0, or PLAN_UNSET */                                                 \
        const char *words;       /* "YES - an ADRT exists (legally binding)", ... */                       \
        struct card_value exists_words, location;                                                          \
    } adrt;                                                                                                \
    struct card_place_list place_of_care, place_of_death;                                                  \
    struct card_contact contacts[PLAN_MAX_ITEMS];      /* in the order a crew rings them */                \
    size_t n_contacts;                                                                                     \
    struct card_diagnosis diagnoses[PLAN_MAX_ITEMS];   /* primary first */                                 \
    size_t n_diagnoses;                                                                                    \
    struct card_value prognosis;                                                                           \
    struct card_medicine medicines[PLAN_MAX_ITEMS];    /* anticipatory first; regular ones when full */    \
    size_t n_medicines;                                                                                    \
    struct card_value medicines_kept;                                                                      \
    struct card_allergy allergies[PLAN_MAX_ITEMS];                                                         \
    size_t n_allergies;                                                                                    \
    struct card_value allergies_status; /* with no allergy listed: CARD_NKA_WORDS or CARD_UNRECORDED_WORDS */ \
    struct card_problem problems[PLAN_MAX_ITEMS];                                                          \
    size_t n_problems;                                                                                     \
    struct {                                                                                               \
        struct card_value consent, consent_recorded_at, consent_recorded_by, phone, what_matters,           \
            social_support, organ_donation, region, team, plan_id, updated_at;                             \
        char consent_local[40], updated_local[40]; /* those times in London time */                        \
    } more;

struct card_body {
    CARD_BODY_MEMBERS
};

struct card_model {
    int full;                    /* the full plan rather than the summary card */
    struct card_banner banner;
    struct card_section sections[CARD_N_SECTIONS];
    /* the plan's values (m->cpr, m->identity, ... or the same as m->body) */
    union {
        struct card_body body;
        struct {
            CARD_BODY_MEMBERS
        };
    };
    /* A clinician's local changes: the plan as they would make it. Only the values whose
     * state is not CARD_VALUE_APPROVED are shown, each beside the plan's value. */
    int has_proposal;
    struct card_body proposal;
    char proposed_at[40];        /* "3 Dec 2026 14:02 GMT", "" when not known */
    const char *proposed_by;
    const struct engine_conflict *conflicts; /* from the context */
    size_t n_conflicts;
};

/* One shown value with its label, for the outputs that list values generically (the
 * proposals beside the plan's values, the --json provenance). */
struct card_field {
    enum card_section_id section;
    const char *label;           /* "CPR decision", "Contact name", ... */
    int item;                    /* 1-based index in a list section; 0 for a single value */
    const struct card_value *v;
};
/* Calls fn for every value of `b` in card order (the "more" values only when `full`). */
void card_each_field(const struct card_body *b, int full, void (*fn)(void *arg, const struct card_field *f),
                     void *arg);
/* A section's local changes, for the printers to show after the plan's values (never in their
 * place): grouped by state (conflict, then proposed, then sent), fn(arg, state, fd, first) for
 * each field of the group, `first` 1 for its first; then fn(arg, state, NULL, 0) once to close
 * each group that had any. Nothing when the section has no local changes. */
void card_each_proposal(const struct card_model *m, enum card_section_id id,
                        void (*fn)(void *arg, enum card_value_state state, const struct card_field *fd, int first),
                        void *arg);
/* The plan's value beside a proposed one: the field of m->body with the same section, label and
 * item, or NULL. */
const struct card_value *card_published_of(const struct card_model *m, const struct card_field *proposed);
/* "PROPOSED on this device, not approved", "sent - awaiting approval", ... */
const char *card_state_words(enum card_value_state state);
/* "published", "proposed", "sent", "conflict": the --json names. */
const char *card_state_name(enum card_value_state state);

/* Unix seconds as London wall time: "2026-12-03 14:02 GMT" / "2026-06-03 15:02 BST" (the
 * offset is in the zone's name; BST = UTC+1, from 01:00 UTC on the last Sunday of March to
 * 01:00 UTC on the last Sunday of October). */
void card_local_time(int64_t t, char *out, size_t cap);
/* The same for a plan's "YYYY-MM-DDTHH:MM:SSZ" text; a bare date or an unparsable text is
 * copied as it is. */
void card_local_text(const char *utc, char *out, size_t cap);

/* Fills *out from the plan and the context (see the memory rule above). */
void card_build(const struct plan *p, const struct card_context *ctx, struct card_model *out);

/* The plan's status in words ("PUBLISHED", "DRAFT - not approved", ...). */
const char *card_status_words(int status);
/* An NHS number spaced 3-3-4 as a crew reads it aloud ("" for NULL; as given when not 10
 * characters). */
void card_nhs_spaced(const char *nhs, char out[CARD_NHS_SPACED]);
/* Age in whole years on `now`'s date; -1 when unknown. */
int card_age_years(const char *dob, int64_t now);
/* A context for `now` with this replica's last successful sync (-1 when it never synced;
 * the one place that reads it), no lease warning (lease_days_left -1), the rest zero. */
void card_context_init(struct card_context *ctx, store *st, int64_t now);
/* Age of this device's copy in words, e.g. "never synced", "synced 3 h 10 min ago (...)". */
void card_copy_age(const struct card_context *ctx, char *out, size_t cap);
/* 1 when the copy is older than CARD_STALE_AFTER_SECONDS or never synced. */
int card_copy_stale(const struct card_context *ctx);

/* The terminal card. */
void card_print(FILE *f, const struct card_model *m);
/* card_print for a terminal: the whole card passed through text_put_terminal (sync/text.h),
 * so whatever text an earlier version let into the replica reaches the screen as visible
 * markers, never as a sequence that moves the cursor over the CPR line. CMC_ERR_NOMEM. */
int card_print_terminal(FILE *f, const struct card_model *m);

/* {"banner": {...}, "cpr": {...}, "order": [...], "sections": [...], "plan": {...}}.
 * Returns a new reference or NULL on allocation failure. */
json_t *card_to_json(const struct plan *p, const struct card_model *m);

#endif
