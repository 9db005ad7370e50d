/* card.c - the card model: the words chosen once, and the plan laid out in clinical order. */
#include "agent/card.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- words ------------------------------------------------------------------------------ */

/* A CPR decision in words: its headline (read across a room), its sentence, and the style
 * printers show it in. */
struct cpr_words {
    const char *headline, *words, *style;
};

static struct cpr_words cpr_words_of(int decision)
{
    switch ((enum plan_cpr)decision) {
    case PLAN_CPR_DNACPR: return (struct cpr_words){ "DNACPR", "DNACPR - do NOT attempt CPR", "dnacpr" };
    case PLAN_CPR_FOR_CPR: return (struct cpr_words){ "FOR CPR", "FOR CPR - attempt CPR", "for" };
    case PLAN_CPR_NOT_DISCUSSED:
        return (struct cpr_words){ "CPR NOT YET DISCUSSED", "CPR NOT YET DISCUSSED - no decision recorded",
                                   "undiscussed" };
    case PLAN_CPR_NONE: break;
    }
    return (struct cpr_words){ "NO CPR DECISION RECORDED", "CPR DECISION NOT RECORDED", "none" };
}

const char *card_status_words(int status)
{
    switch ((enum plan_status)status) {
    case PLAN_STATUS_PUBLISHED: return "PUBLISHED";
    case PLAN_STATUS_DRAFT: return "DRAFT - not approved";
    case PLAN_STATUS_NEEDS_FINALISATION: return "DRAFT (needs finalisation) - not approved";
    case PLAN_STATUS_AWAITING_APPROVAL: return "AWAITING APPROVAL - not approved";
    case PLAN_STATUS_NONE: break;
    }
    return "UNKNOWN STATUS";
}

static const char *place_words(int place)
{
    switch ((enum plan_place)place) {
    case PLAN_PLACE_HOME: return "Home";
    case PLAN_PLACE_HOSPICE: return "Hospice";
    case PLAN_PLACE_HOSPITAL: return "Hospital";
    case PLAN_PLACE_CARE_HOME: return "Care home";
    case PLAN_PLACE_OTHER: return "Other";
    case PLAN_PLACE_NONE: break;
    }
    return "not recorded";
}

static const char *contact_role_words(int role)
{
    switch ((enum plan_contact_role)role) {
    case PLAN_CONTACT_GP: return "GP";
    case PLAN_CONTACT_PALLIATIVE_TEAM: return "Palliative care 24/7";
    case PLAN_CONTACT_LPA: return "LPA (health and welfare)";
    case PLAN_CONTACT_NEXT_OF_KIN: return "Next of kin";
    case PLAN_CONTACT_MAIN_CARER: return "Main carer";
    case PLAN_CONTACT_KEY_WORKER: return "Key worker";
    case PLAN_CONTACT_OTHER: return "Other professional";
    case PLAN_CONTACT_NONE: break;
    }
    return "Contact";
}

/* The order a crew rings contacts in. */
static int contact_rank(int role)
{
    switch ((enum plan_contact_role)role) {
    case PLAN_CONTACT_GP: return 0;
    case PLAN_CONTACT_PALLIATIVE_TEAM: return 1;
    case PLAN_CONTACT_LPA: return 2;
    case PLAN_CONTACT_NEXT_OF_KIN: return 3;
    case PLAN_CONTACT_MAIN_CARER: return 4;
    case PLAN_CONTACT_KEY_WORKER: return 5;
    case PLAN_CONTACT_OTHER: return 6;
    case PLAN_CONTACT_NONE: break;
    }
    return 7;
}

static const char *severity_words(int s)
{
    switch ((enum plan_severity)s) {
    case PLAN_SEVERITY_MILD: return "mild";
    case PLAN_SEVERITY_MODERATE: return "moderate";
    case PLAN_SEVERITY_SEVERE: return "SEVERE";
    case PLAN_SEVERITY_UNKNOWN: return "severity unknown";
    case PLAN_SEVERITY_NONE: break;
    }
    return "severity not recorded";
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
    return NULL;
}

static const char *consent_words(int basis)
{
    switch ((enum plan_consent_basis)basis) {
    case PLAN_CONSENT_PATIENT: return "the patient";
    case PLAN_CONSENT_LPA: return "health and welfare LPA";
    case PLAN_CONSENT_BEST_INTEREST: return "clinical team, best interest";
    case PLAN_CONSENT_NONE: break;
    }
    return NULL;
}

static const char *yes_no(int tri)
{
    return tri == PLAN_UNSET ? NULL : tri ? "Yes" : "No";
}

static const char *adrt_words(int exists)
{
    return exists == 1 ? "YES - an ADRT exists (legally binding)"
                       : exists == 0 ? "No ADRT" : NULL;
}

void card_nhs_spaced(const char *nhs, char out[CARD_NHS_SPACED])
{
    if (nhs != NULL && strlen(nhs) == PLAN_NHS_LEN)
        snprintf(out, CARD_NHS_SPACED, "%.3s %.3s %.4s", nhs, nhs + 3, nhs + 6);
    else
        snprintf(out, CARD_NHS_SPACED, "%.15s", nhs != NULL ? nhs : "");
}

/* ---- time ------------------------------------------------------------------------------- */

int card_age_years(const char *dob, int64_t now)
{
    int64_t born;
    if (dob == NULL || plat_parse_time(dob, &born) != CMC_OK)
        return -1;
    char today[21];
    plat_format_time(now, today);
    int y = atoi(today), m = atoi(today + 5), d = atoi(today + 8);
    int by = atoi(dob), bm = atoi(dob + 5), bd = atoi(dob + 8);
    int age = y - by;
    if (m < bm || (m == bm && d < bd))
        age--;
    return age;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 01:00 UTC on the last Sunday of a 31-day month: when London's clocks change. */
static int64_t clock_change(int64_t year, int month)
{
    int64_t last = days_from_civil(year, month, 31);
    int64_t weekday = ((last % 7) + 7 + 4) % 7; /* 0 = Sunday; 1970-01-01 was a Thursday */
    return (last - weekday) * 86400 + 3600;
}

void card_local_time(int64_t t, char *out, size_t cap)
{
    char utc[21], local[21];
    plat_format_time(t, utc);
    int64_t year = atoi(utc);
    int bst = t >= clock_change(year, 3) && t < clock_change(year, 10);
    plat_format_time(t + (bst ? 3600 : 0), local);
    snprintf(out, cap, "%.10s %.5s %s", local, local + 11, bst ? "BST" : "GMT");
}

void card_local_text(const char *utc, char *out, size_t cap)
{
    int64_t t;
    if (utc != NULL && strlen(utc) > 10 && plat_parse_time(utc, &t) == CMC_OK)
        card_local_time(t, out, cap);
    else
        snprintf(out, cap, "%s", utc != NULL ? utc : "");
}

/* A date (YYYY-MM-DD) that has passed: the day after it has begun. */
static int date_passed(const char *date, int64_t now)
{
    int64_t due;
    if (date == NULL || plat_parse_time(date, &due) != CMC_OK)
        return 0;
    return now >= due + 86400;
}

static int64_t card_last_sync(store *st)
{
    int64_t t;
    if (st == NULL || store_state_get_int(st, "last_sync_at", &t) != CMC_OK)
        return -1;
    return t;
}

void card_context_init(struct card_context *ctx, store *st, int64_t now)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->now = now;
    ctx->last_sync = card_last_sync(st);
    ctx->lease_days_left = -1;
    ctx->break_glass = 0;
    ctx->copy_age_days = 0;
}

static void format_duration(int64_t secs, char *out, size_t cap)
{
    if (secs < 60)
        snprintf(out, cap, "less than a minute");
    else if (secs < 3600)
        snprintf(out, cap, "%lld min", (long long)(secs / 60));
    else if (secs < 48 * 3600)
        snprintf(out, cap, "%lld h %lld min", (long long)(secs / 3600), (long long)(secs % 3600 / 60));
    else
        snprintf(out, cap, "%lld days", (long long)(secs / 86400)); /* at least 2 */
}

void card_copy_age(const struct card_context *ctx, char *out, size_t cap)
{
    if (ctx->last_sync < 0) {
        snprintf(out, cap, "never synced");
        return;
    }
    char when[40], dur[48];
    card_local_time(ctx->last_sync, when, sizeof when);
    if (ctx->now < ctx->last_sync) {
        snprintf(out, cap, "synced %s (this device's clock is behind that time)", when);
        return;
    }
    format_duration(ctx->now - ctx->last_sync, dur, sizeof dur);
    snprintf(out, cap, "synced %s ago (%s)", dur, when);
}

int card_copy_stale(const struct card_context *ctx)
{
    return ctx->last_sync < 0 || ctx->now - ctx->last_sync > CARD_STALE_AFTER_SECONDS;
}

/* ---- states ----------------------------------------------------------------------------- */

const char *card_state_words(enum card_value_state state)
{
    switch (state) {
    case CARD_VALUE_APPROVED: return "as approved";
    case CARD_VALUE_PROPOSED: return "PROPOSED on this device, not approved";
    case CARD_VALUE_SENT: return "sent - awaiting approval";
    case CARD_VALUE_CONFLICT: return "IN CONFLICT with a newer version, not approved";
    }
    return "unknown";
}

const char *card_state_name(enum card_value_state state)
{
    switch (state) {
    case CARD_VALUE_APPROVED: return "published";
    case CARD_VALUE_PROPOSED: return "proposed";
    case CARD_VALUE_SENT: return "sent";
    case CARD_VALUE_CONFLICT: return "conflict";
    }
    return "unknown";
}

/* How pressing a state is: a conflict before a proposal before a sent change. */
static int state_rank(enum card_value_state s)
{
    switch (s) {
    case CARD_VALUE_APPROVED: return 0;
    case CARD_VALUE_SENT: return 1;
    case CARD_VALUE_PROPOSED: return 2;
    case CARD_VALUE_CONFLICT: return 3;
    }
    return 0;
}

/* ---- sections and local changes -------------------------------------------------------- */

static const struct {
    int number;
    const char *anchor, *key, *title, *label;
} section_table[CARD_N_SECTIONS] = {
    [CARD_SEC_IDENTITY] = { 1, "identity", "identity", "Patient", "PATIENT" },
    [CARD_SEC_CPR] = { 2, "cpr", "cpr", "CPR decision", "CPR" },
    [CARD_SEC_CEILING] = { 3, "ceiling", "ceiling_of_treatment", "Ceiling of treatment", "CEILING" },
    [CARD_SEC_ADRT] = { 4, "adrt", "adrt", "Advance decision to refuse treatment (ADRT)", "ADRT" },
    [CARD_SEC_PLACES] = { 5, "places", "preferred_places", "Preferred places", "PREFERRED" },
    [CARD_SEC_CONTACTS] = { 6, "contacts", "contacts", "Key contacts", "CONTACTS" },
    [CARD_SEC_DIAGNOSIS] = { 7, "diagnosis", "diagnosis_prognosis", "Diagnosis and prognosis", "DIAGNOSIS" },
    [CARD_SEC_MEDICINES] = { 8, "medicines", "anticipatory_medicines", "Anticipatory medicines",
                             "ANTICIPATORY MEDICINES (just in case)" },
    [CARD_SEC_ALLERGIES] = { 9, "allergies", "allergies", "Allergies", "ALLERGIES" },
    [CARD_SEC_PROBLEMS] = { 10, "problems", "anticipated_problems", "Anticipated problems and what to do",
                            "ANTICIPATED PROBLEMS" },
    [CARD_SEC_MORE] = { 0, "more", "more", "More from the plan", "MORE" },
};

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Which section shows a field (by its dotted path). */
static enum card_section_id section_of(const char *path)
{
    if (starts_with(path, "patient.") || strcmp(path, "nhs_number") == 0 ||
        starts_with(path, "care_home"))
        return strcmp(path, "patient.phone") == 0 ? CARD_SEC_MORE : CARD_SEC_IDENTITY;
    if (starts_with(path, "resuscitation"))
        return CARD_SEC_CPR;
    if (strcmp(path, "ceiling_of_treatment") == 0 || strcmp(path, "hospital_admission_wanted") == 0)
        return CARD_SEC_CEILING;
    if (starts_with(path, "adrt"))
        return CARD_SEC_ADRT;
    if (starts_with(path, "preferred_place_"))
        return CARD_SEC_PLACES;
    if (starts_with(path, "contacts"))
        return CARD_SEC_CONTACTS;
    if (starts_with(path, "diagnoses") || strcmp(path, "prognosis") == 0)
        return CARD_SEC_DIAGNOSIS;
    if (starts_with(path, "medications") || strcmp(path, "anticipatory_medicines_location") == 0)
        return CARD_SEC_MEDICINES;
    if (starts_with(path, "allergies"))
        return CARD_SEC_ALLERGIES;
    if (starts_with(path, "anticipated_problems"))
        return CARD_SEC_PROBLEMS;
    return CARD_SEC_MORE;
}

/* One path names the other or a field inside it ("resuscitation" and
 * "resuscitation.decision"; "contacts" and "contacts.c1.phone"). */
static int paths_overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    size_t n = na < nb ? na : nb;
    if (n == 0 || strncmp(a, b, n) != 0)
        return 0;
    return (na == n || a[n] == '.') && (nb == n || b[n] == '.');
}

static int in_paths(const json_t *paths, const char *path)
{
    size_t i;
    json_t *v;
    if (paths == NULL)
        return 0;
    json_array_foreach(paths, i, v)
    {
        const char *cp = json_string_value(v);
        if (cp != NULL && paths_overlap(cp, path))
            return 1;
    }
    return 0;
}

/* Where a local change to `path` stands (approved when no change touches it). */
static enum card_value_state path_state(const struct card_context *ctx, const char *path)
{
    if (path == NULL || !in_paths(ctx->changed_paths, path))
        return CARD_VALUE_APPROVED;
    for (size_t i = 0; i < ctx->n_conflicts; i++)
        if (paths_overlap(ctx->conflicts[i].path, path))
            return CARD_VALUE_CONFLICT;
    return in_paths(ctx->sent_paths, path) ? CARD_VALUE_SENT : CARD_VALUE_PROPOSED;
}

static void build_sections(const struct card_context *ctx, struct card_model *m)
{
    for (int i = 0; i < CARD_N_SECTIONS; i++) {
        struct card_section *s = &m->sections[i];
        memset(s, 0, sizeof *s);
        s->number = section_table[i].number;
        s->anchor = section_table[i].anchor;
        s->key = section_table[i].key;
        s->title = section_table[i].title;
        s->label = section_table[i].label;
    }
    if (m->full)
        m->sections[CARD_SEC_MEDICINES].title = "Medicines (anticipatory first)";
    if (ctx->changed_paths == NULL)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(ctx->changed_paths, i, v)
    {
        const char *path = json_string_value(v);
        if (path == NULL)
            continue;
        struct card_section *s = &m->sections[section_of(path)];
        enum card_value_state st = path_state(ctx, path);
        if (state_rank(st) > state_rank(s->state))
            s->state = st;
        int seen = 0; /* each path once, though several edits may touch it */
        for (size_t k = 0; k < s->n_pending_paths && !seen; k++)
            seen = strcmp(s->pending_paths[k], path) == 0;
        if (!seen && s->n_pending_paths < CARD_MAX_SECTION_PATHS)
            s->pending_paths[s->n_pending_paths++] = path;
    }
}

/* ---- the bodies ------------------------------------------------------------------------- */

/* Building one body: the plan's values are approved; the proposal's carry their change's
 * state. Without the version held beside it (no provenance loaded), a body built from a plan
 * with local changes marks them in place. */
struct builder {
    const struct card_context *ctx;
    int marks;   /* 1: values take the state of the local change touching them */
    int full;
};

static struct card_value val(const struct builder *bd, const char *text, const char *path)
{
    struct card_value v = { .text = text != NULL && text[0] != '\0' ? text : NULL, .path = path,
                            .state = CARD_VALUE_APPROVED };
    if (bd->marks)
        v.state = path_state(bd->ctx, path);
    return v;
}

/* A resident usually lives at the home: its address is then the patient's address (with or
 * without the postcode), and the card shows it once. */
static int home_is_address(const struct plan *p)
{
    const char *a = p->patient.address, *h = p->care_home_address, *pc = p->patient.postcode;
    if (a == NULL || h == NULL || a[0] == '\0' || strncmp(h, a, strlen(a)) != 0)
        return 0;
    h += strlen(a);
    if (*h == ',')
        h++;
    while (*h == ' ')
        h++;
    return *h == '\0' || (pc != NULL && strcmp(h, pc) == 0);
}

static void build_identity(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    struct card_identity *id = &b->identity;
    id->given_name = val(bd, p->patient.given_name, "patient.given_name");
    id->family_name = val(bd, p->patient.family_name, "patient.family_name");
    id->preferred_name = val(bd, p->patient.preferred_name, "patient.preferred_name");
    id->date_of_birth = val(bd, p->patient.date_of_birth, "patient.date_of_birth");
    id->age = card_age_years(p->patient.date_of_birth, bd->ctx->now);
    id->address = val(bd, p->patient.address, "patient.address");
    id->postcode = val(bd, p->patient.postcode, "patient.postcode");
    id->gender = val(bd, gender_words(p->patient.gender), "patient.gender");
    card_nhs_spaced(p->nhs_number, id->nhs_spaced);
    id->nhs_number = val(bd, id->nhs_spaced, "nhs_number");
    id->language = val(bd, p->patient.language, "patient.language");
    id->interpreter = p->patient.interpreter_needed;
    id->interpreter_needed = val(bd,
                                 p->patient.interpreter_needed == PLAN_UNSET ? NULL
                                 : p->patient.interpreter_needed           ? "INTERPRETER NEEDED"
                                                                           : "no interpreter needed",
                                 "patient.interpreter_needed");
    id->care_home = val(bd, p->care_home, "care_home");
    id->care_home_address = val(bd, p->care_home_address, "care_home_address");
    id->home_is_address = home_is_address(p);
}

static void build_places(struct card_place_list *pl, const struct plan_places *src, const struct builder *bd,
                         const char *path)
{
    pl->n = src->n;
    pl->joined[0] = '\0';
    for (size_t i = 0; i < pl->n && i < PLAN_MAX_PLACES; i++) {
        pl->words[i] = place_words(src->v[i]);
        size_t used = strlen(pl->joined);
        snprintf(pl->joined + used, sizeof pl->joined - used, "%s%s", i == 0 ? "" : ", then ", pl->words[i]);
    }
    pl->value = val(bd, pl->joined, path);
}

static void build_decisions(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    int d = p->resuscitation.decision;
    b->cpr.decision = d;
    struct cpr_words w = cpr_words_of(d);
    b->cpr.headline = w.headline;
    b->cpr.words = w.words;
    b->cpr.style = w.style;
    b->cpr.decision_words = val(bd, b->cpr.words, "resuscitation.decision");
    b->cpr.decided_at = val(bd, p->resuscitation.decided_at, "resuscitation.decided_at");
    b->cpr.decided_by = val(bd, p->resuscitation.decided_by, "resuscitation.decided_by");
    b->cpr.review_date = val(bd, p->resuscitation.review_date, "resuscitation.review_date");
    b->cpr.review_lapsed = date_passed(p->resuscitation.review_date, bd->ctx->now);
    b->cpr.form_location = val(bd, p->resuscitation.form_location, "resuscitation.form_location");
    b->cpr.patient_aware = val(bd, yes_no(p->resuscitation.patient_aware), "resuscitation.patient_aware");
    b->cpr.family_aware = val(bd, yes_no(p->resuscitation.family_aware), "resuscitation.family_aware");
    b->ceiling.ceiling = val(bd, p->ceiling_of_treatment, "ceiling_of_treatment");
    b->ceiling.admission_wanted = val(bd, yes_no(p->hospital_admission_wanted), "hospital_admission_wanted");
    b->adrt.exists = p->adrt.exists;
    b->adrt.words = adrt_words(p->adrt.exists);
    b->adrt.exists_words = val(bd, b->adrt.words, "adrt.exists");
    b->adrt.location = val(bd, p->adrt.location, "adrt.location");
    build_places(&b->place_of_care, &p->preferred_place_of_care, bd, "preferred_place_of_care");
    build_places(&b->place_of_death, &p->preferred_place_of_death, bd, "preferred_place_of_death");
}

static void build_contacts(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    b->n_contacts = 0;
    for (int rank = 0; rank <= 7; rank++)
        for (size_t i = 0; i < p->n_contacts && b->n_contacts < PLAN_MAX_ITEMS; i++) {
            const struct plan_contact *c = &p->contacts[i];
            if (contact_rank(c->role) != rank)
                continue;
            struct card_contact *o = &b->contacts[b->n_contacts++];
            o->role = val(bd, contact_role_words(c->role), "contacts");
            o->name = val(bd, c->name, "contacts");
            o->phone = val(bd, c->phone, "contacts");
            o->available = val(bd, c->available, "contacts");
        }
}

static void build_clinical(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    b->n_diagnoses = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->n_diagnoses && b->n_diagnoses < PLAN_MAX_ITEMS; i++) {
            int primary = p->diagnoses[i].primary == 1;
            if (primary != (pass == 0))
                continue;
            b->diagnoses[b->n_diagnoses].text = val(bd, p->diagnoses[i].text, "diagnoses");
            b->diagnoses[b->n_diagnoses++].primary = primary;
        }
    b->prognosis = val(bd, p->prognosis, "prognosis");
    b->n_medicines = 0;
    for (int pass = 0; pass < (bd->full ? 2 : 1); pass++)
        for (size_t i = 0; i < p->n_medications && b->n_medicines < PLAN_MAX_ITEMS; i++) {
            const struct plan_medication *md = &p->medications[i];
            if ((md->anticipatory == 1) != (pass == 0))
                continue;
            struct card_medicine *o = &b->medicines[b->n_medicines++];
            o->name = val(bd, md->name, "medications");
            o->dose = val(bd, md->dose, "medications");
            o->anticipatory = md->anticipatory == 1;
        }
    b->medicines_kept = val(bd, p->anticipatory_medicines_location, "anticipatory_medicines_location");
    b->n_allergies = 0;
    for (size_t i = 0; i < p->n_allergies && i < PLAN_MAX_ITEMS; i++) {
        const struct plan_allergy *a = &p->allergies[i];
        struct card_allergy *o = &b->allergies[b->n_allergies++];
        o->substance = val(bd, a->substance, "allergies");
        o->reaction = val(bd, a->reaction, "allergies");
        o->severity = val(bd, severity_words(a->severity), "allergies");
        o->severe = a->severity == PLAN_SEVERITY_SEVERE;
    }
    b->allergies_status = val(bd,
                              p->n_allergies > 0                              ? NULL
                              : p->allergies_status == PLAN_ALLERGIES_NKA ? CARD_NKA_WORDS
                                                                          : CARD_UNRECORDED_WORDS,
                              "allergies_status");
    b->n_problems = 0;
    for (size_t i = 0; i < p->n_anticipated_problems && i < PLAN_MAX_ITEMS; i++) {
        b->problems[b->n_problems].problem = val(bd, p->anticipated_problems[i].problem, "anticipated_problems");
        b->problems[b->n_problems++].guidance = val(bd, p->anticipated_problems[i].guidance, "anticipated_problems");
    }
}

static void build_more(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    card_local_text(p->consent.recorded_at, b->more.consent_local, sizeof b->more.consent_local);
    card_local_text(p->updated_at, b->more.updated_local, sizeof b->more.updated_local);
    b->more.consent = val(bd, consent_words(p->consent.basis), "consent.basis");
    b->more.consent_recorded_at = val(bd, b->more.consent_local, "consent.recorded_at");
    b->more.consent_recorded_by = val(bd, p->consent.recorded_by, "consent.recorded_by");
    b->more.phone = val(bd, p->patient.phone, "patient.phone");
    b->more.what_matters = val(bd, p->what_matters_to_me, "what_matters_to_me");
    b->more.social_support = val(bd, p->social_support, "social_support");
    b->more.organ_donation = val(bd, p->organ_donation, "organ_donation");
    b->more.region = val(bd, p->region, "region");
    b->more.team = val(bd, p->team, "team");
    b->more.plan_id = val(bd, p->plan_id, "plan_id");
    b->more.updated_at = val(bd, b->more.updated_local, "updated_at");
}

static void build_body(const struct plan *p, const struct builder *bd, struct card_body *b)
{
    build_identity(p, bd, b);
    build_decisions(p, bd, b);
    build_contacts(p, bd, b);
    build_clinical(p, bd, b);
    build_more(p, bd, b);
}

/* ---- the banner ------------------------------------------------------------------------- */

static void build_banner(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    struct card_banner *b = &m->banner;
    const struct builder plain = { .ctx = ctx, .marks = 0 };
    b->status = p->status;
    b->status_words = card_status_words(p->status);
    b->published = p->status == PLAN_STATUS_PUBLISHED;
    b->approved_by = val(&plain, p->approved_by, "approved_by");
    b->approved_on[0] = '\0';
    b->approved_at = p->approved_at;
    if (p->approved_at != NULL)
        snprintf(b->approved_on, sizeof b->approved_on, "%.10s", p->approved_at);
    b->version = p->version;
    b->review_due = val(&plain, p->review_due, "review_due");
    b->review_overdue = date_passed(p->review_due, ctx->now);
    card_copy_age(ctx, b->copy_age, sizeof b->copy_age);
    b->last_sync = ctx->last_sync;
    b->stale = card_copy_stale(ctx);
    b->pending_edits = ctx->pending_edits;
    b->lease_days_left = ctx->lease_days_left;
    b->break_glass = ctx->break_glass;
    b->copy_age_days = ctx->copy_age_days;
    b->changed_sections[0] = '\0';
    for (int i = 0; i < CARD_N_SECTIONS; i++) {
        if (m->sections[i].n_pending_paths == 0)
            continue;
        size_t used = strlen(b->changed_sections);
        snprintf(b->changed_sections + used, sizeof b->changed_sections - used, "%s%s", used ? ", " : "",
                 m->sections[i].title);
    }
}

/* The notices: content of a later edition, and the clinical rules checked again here with
 * this device's date (a plan breaking one is shown, with the rule named, never hidden). */
static void build_notices(const struct plan *p, const struct card_context *ctx, struct card_banner *b)
{
    struct rules_report rep;
    char today[21];
    b->newer_content = plan_edition(p) > PLAN_EDITION_CURRENT;
    plat_format_time(ctx->now, today);
    today[10] = '\0';
    if (rules_check(p, today, &rep) != CMC_OK && rep.n > 0) {
        b->rule = rep.v[0].rule;
        b->n_rules = rep.n;
        snprintf(b->rule_detail, sizeof b->rule_detail, "%s", rep.v[0].detail);
    }
    cmc_err_clear();
}

void card_build(const struct plan *p, const struct card_context *ctx, struct card_model *out)
{
    memset(out, 0, sizeof *out);
    out->full = ctx->show_full;
    int changes = ctx->changed_paths != NULL && json_array_size(ctx->changed_paths) > 0;
    /* the plan's values: the version held when a proposal sits beside it */
    const struct plan *shown = changes && ctx->published != NULL ? ctx->published : p;
    build_sections(ctx, out);
    build_banner(shown, ctx, out);
    build_notices(shown, ctx, &out->banner);
    const struct builder plan_values = { .ctx = ctx, .marks = shown == p, .full = out->full };
    build_body(shown, &plan_values, &out->body);
    if (shown != p) {
        const struct builder proposed = { .ctx = ctx, .marks = 1, .full = out->full };
        build_body(p, &proposed, &out->proposal);
        out->has_proposal = 1;
        out->proposed_by = ctx->proposed_by;
        if (ctx->proposed_at > 0)
            card_local_time(ctx->proposed_at, out->proposed_at, sizeof out->proposed_at);
    }
    out->conflicts = ctx->conflicts;
    out->n_conflicts = ctx->n_conflicts;
}

/* ---- every value, generically ------------------------------------------------------------ */

static void emit(void (*fn)(void *, const struct card_field *), void *arg, enum card_section_id sec,
                 const char *label, int item, const struct card_value *v)
{
    const struct card_field f = { .section = sec, .label = label, .item = item, .v = v };
    fn(arg, &f);
}

struct proposal_walk {
    enum card_section_id section;
    enum card_value_state state;
    int n;
    void (*fn)(void *arg, enum card_value_state state, const struct card_field *fd, int first);
    void *arg;
};

static void proposal_field(void *arg, const struct card_field *fd)
{
    struct proposal_walk *w = arg;
    if (fd->section == w->section && fd->v->state == w->state)
        w->fn(w->arg, w->state, fd, w->n++ == 0);
}

void card_each_proposal(const struct card_model *m, enum card_section_id id,
                        void (*fn)(void *arg, enum card_value_state state, const struct card_field *fd, int first),
                        void *arg)
{
    static const enum card_value_state states[] = { CARD_VALUE_CONFLICT, CARD_VALUE_PROPOSED, CARD_VALUE_SENT };
    if (m->sections[id].n_pending_paths == 0)
        return;
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        struct proposal_walk w = { id, states[i], 0, fn, arg };
        card_each_field(m->has_proposal ? &m->proposal : &m->body, m->full, proposal_field, &w);
        if (w.n > 0)
            fn(arg, states[i], NULL, 0);
    }
}

void card_each_field(const struct card_body *b, int full, void (*fn)(void *arg, const struct card_field *f),
                     void *arg)
{
    const struct card_identity *id = &b->identity;
    const struct { const char *label; const struct card_value *v; } ident[] = {
        { "Given name", &id->given_name }, { "Family name", &id->family_name },
        { "Known as", &id->preferred_name }, { "Date of birth", &id->date_of_birth },
        { "NHS number", &id->nhs_number }, { "Address", &id->address }, { "Postcode", &id->postcode },
        { "Gender", &id->gender }, { "Language", &id->language },
        { "Interpreter", &id->interpreter_needed }, { "Care home", &id->care_home },
        { "Care home address", &id->care_home_address },
    };
    for (size_t i = 0; i < sizeof ident / sizeof ident[0]; i++)
        emit(fn, arg, CARD_SEC_IDENTITY, ident[i].label, 0, ident[i].v);
    emit(fn, arg, CARD_SEC_CPR, "CPR decision", 0, &b->cpr.decision_words);
    emit(fn, arg, CARD_SEC_CPR, "Decided on", 0, &b->cpr.decided_at);
    emit(fn, arg, CARD_SEC_CPR, "Decided by", 0, &b->cpr.decided_by);
    emit(fn, arg, CARD_SEC_CPR, "CPR review date", 0, &b->cpr.review_date);
    emit(fn, arg, CARD_SEC_CPR, "Paper form", 0, &b->cpr.form_location);
    emit(fn, arg, CARD_SEC_CPR, "Patient aware", 0, &b->cpr.patient_aware);
    emit(fn, arg, CARD_SEC_CPR, "Family aware", 0, &b->cpr.family_aware);
    emit(fn, arg, CARD_SEC_CEILING, "Ceiling of treatment", 0, &b->ceiling.ceiling);
    emit(fn, arg, CARD_SEC_CEILING, "Hospital admission wanted", 0, &b->ceiling.admission_wanted);
    emit(fn, arg, CARD_SEC_ADRT, "ADRT", 0, &b->adrt.exists_words);
    emit(fn, arg, CARD_SEC_ADRT, "ADRT kept", 0, &b->adrt.location);
    emit(fn, arg, CARD_SEC_PLACES, "Place of care", 0, &b->place_of_care.value);
    emit(fn, arg, CARD_SEC_PLACES, "Place of death", 0, &b->place_of_death.value);
    for (size_t i = 0; i < b->n_contacts; i++) {
        int n = (int)i + 1;
        emit(fn, arg, CARD_SEC_CONTACTS, "Contact", n, &b->contacts[i].role);
        emit(fn, arg, CARD_SEC_CONTACTS, "Name", n, &b->contacts[i].name);
        emit(fn, arg, CARD_SEC_CONTACTS, "Phone", n, &b->contacts[i].phone);
        emit(fn, arg, CARD_SEC_CONTACTS, "Available", n, &b->contacts[i].available);
    }
    for (size_t i = 0; i < b->n_diagnoses; i++)
        emit(fn, arg, CARD_SEC_DIAGNOSIS, "Diagnosis", (int)i + 1, &b->diagnoses[i].text);
    emit(fn, arg, CARD_SEC_DIAGNOSIS, "Prognosis", 0, &b->prognosis);
    for (size_t i = 0; i < b->n_medicines; i++) {
        emit(fn, arg, CARD_SEC_MEDICINES, "Medicine", (int)i + 1, &b->medicines[i].name);
        emit(fn, arg, CARD_SEC_MEDICINES, "Dose", (int)i + 1, &b->medicines[i].dose);
    }
    emit(fn, arg, CARD_SEC_MEDICINES, "Kept", 0, &b->medicines_kept);
    for (size_t i = 0; i < b->n_allergies; i++) {
        emit(fn, arg, CARD_SEC_ALLERGIES, "Allergy", (int)i + 1, &b->allergies[i].substance);
        emit(fn, arg, CARD_SEC_ALLERGIES, "Reaction", (int)i + 1, &b->allergies[i].reaction);
        emit(fn, arg, CARD_SEC_ALLERGIES, "Severity", (int)i + 1, &b->allergies[i].severity);
    }
    emit(fn, arg, CARD_SEC_ALLERGIES, "Allergy status", 0, &b->allergies_status);
    for (size_t i = 0; i < b->n_problems; i++) {
        emit(fn, arg, CARD_SEC_PROBLEMS, "Problem", (int)i + 1, &b->problems[i].problem);
        emit(fn, arg, CARD_SEC_PROBLEMS, "Guidance", (int)i + 1, &b->problems[i].guidance);
    }
    if (!full)
        return;
    const struct { const char *label; const struct card_value *v; } more[] = {
        { "Consent", &b->more.consent }, { "Consent recorded", &b->more.consent_recorded_at },
        { "Consent recorded by", &b->more.consent_recorded_by }, { "Patient's phone", &b->more.phone },
        { "What matters to me", &b->more.what_matters }, { "Social support", &b->more.social_support },
        { "Organ donation", &b->more.organ_donation }, { "Region", &b->more.region }, { "Team", &b->more.team },
        { "Plan id", &b->more.plan_id }, { "Updated", &b->more.updated_at },
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        emit(fn, arg, CARD_SEC_MORE, more[i].label, 0, more[i].v);
}

struct published_find {
    const struct card_field *want;
    const struct card_value *found;
};

static void find_field(void *arg, const struct card_field *f)
{
    struct published_find *pf = arg;
    if (pf->found == NULL && f->section == pf->want->section && f->item == pf->want->item &&
        strcmp(f->label, pf->want->label) == 0)
        pf->found = f->v;
}

const struct card_value *card_published_of(const struct card_model *m, const struct card_field *proposed)
{
    struct published_find pf = { .want = proposed, .found = NULL };
    card_each_field(&m->body, 1, find_field, &pf);
    return pf.found;
}
