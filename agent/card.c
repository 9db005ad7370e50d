/* card.c - the card model: the words chosen once, and the plan laid out in clinical order. */
#include "agent/card.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- words ------------------------------------------------------------------------------ */

static const char *card_cpr_words(int decision)
{
    switch ((enum plan_cpr)decision) {
    case PLAN_CPR_DNACPR: return "DNACPR - do NOT attempt CPR";
    case PLAN_CPR_FOR_CPR: return "FOR CPR - attempt CPR";
    case PLAN_CPR_NOT_DISCUSSED: return "CPR NOT YET DISCUSSED - no decision recorded";
    case PLAN_CPR_NONE: break;
    }
    return "CPR DECISION NOT RECORDED";
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

static int review_overdue(const char *review_due, int64_t now)
{
    int64_t due;
    if (review_due == NULL || plat_parse_time(review_due, &due) != CMC_OK)
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
        snprintf(out, cap, "%lld days", (long long)(secs / 86400));
}

void card_copy_age(const struct card_context *ctx, char *out, size_t cap)
{
    if (ctx->last_sync < 0) {
        snprintf(out, cap, "never synced");
        return;
    }
    char when[21], dur[48];
    plat_format_time(ctx->last_sync, when);
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

/* ---- sections and pending changes ------------------------------------------------------- */

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
    if (starts_with(path, "patient.") || strcmp(path, "nhs_number") == 0)
        return CARD_SEC_IDENTITY;
    if (starts_with(path, "resuscitation."))
        return CARD_SEC_CPR;
    if (strcmp(path, "ceiling_of_treatment") == 0 || strcmp(path, "hospital_admission_wanted") == 0)
        return CARD_SEC_CEILING;
    if (starts_with(path, "adrt."))
        return CARD_SEC_ADRT;
    if (starts_with(path, "preferred_place_"))
        return CARD_SEC_PLACES;
    if (strcmp(path, "contacts") == 0)
        return CARD_SEC_CONTACTS;
    if (strcmp(path, "diagnoses") == 0 || strcmp(path, "prognosis") == 0)
        return CARD_SEC_DIAGNOSIS;
    if (strcmp(path, "medications") == 0 || strcmp(path, "anticipatory_medicines_location") == 0)
        return CARD_SEC_MEDICINES;
    if (strcmp(path, "allergies") == 0)
        return CARD_SEC_ALLERGIES;
    if (strcmp(path, "anticipated_problems") == 0)
        return CARD_SEC_PROBLEMS;
    return CARD_SEC_MORE;
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
        int seen = 0; /* each path once, though several edits may touch it */
        for (size_t k = 0; k < s->n_pending_paths && !seen; k++)
            seen = strcmp(s->pending_paths[k], path) == 0;
        if (!seen && s->n_pending_paths < CARD_MAX_SECTION_PATHS)
            s->pending_paths[s->n_pending_paths++] = path;
    }
}

/* A value with its state: pending when a local change touches its field (or the list or
 * object holding it). */
static struct card_value val(const struct card_context *ctx, const char *text, const char *path)
{
    struct card_value v = { .text = text != NULL && text[0] != '\0' ? text : NULL, .path = path,
                            .state = CARD_VALUE_APPROVED };
    if (ctx->changed_paths == NULL || path == NULL)
        return v;
    size_t i;
    json_t *c;
    json_array_foreach(ctx->changed_paths, i, c)
    {
        const char *cp = json_string_value(c);
        size_t n = cp != NULL ? strlen(cp) : 0;
        if (n > 0 && strncmp(path, cp, n) == 0 && (path[n] == '\0' || path[n] == '.'))
            v.state = CARD_VALUE_PENDING;
    }
    return v;
}

/* ---- the model -------------------------------------------------------------------------- */

static void build_banner(const struct plan *p, const struct card_context *ctx, struct card_banner *b)
{
    b->status = p->status;
    b->status_words = card_status_words(p->status);
    b->published = p->status == PLAN_STATUS_PUBLISHED;
    b->approved_by = val(ctx, p->approved_by, "approved_by");
    b->approved_on[0] = '\0';
    if (p->approved_at != NULL)
        snprintf(b->approved_on, sizeof b->approved_on, "%.10s", p->approved_at);
    b->version = p->version;
    b->review_due = val(ctx, p->review_due, "review_due");
    b->review_overdue = review_overdue(p->review_due, ctx->now);
    card_copy_age(ctx, b->copy_age, sizeof b->copy_age);
    b->last_sync = ctx->last_sync;
    b->stale = card_copy_stale(ctx);
    b->pending_edits = ctx->pending_edits;
}

static void build_identity(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    m->identity.given_name = val(ctx, p->patient.given_name, "patient.given_name");
    m->identity.family_name = val(ctx, p->patient.family_name, "patient.family_name");
    m->identity.preferred_name = val(ctx, p->patient.preferred_name, "patient.preferred_name");
    m->identity.date_of_birth = val(ctx, p->patient.date_of_birth, "patient.date_of_birth");
    m->identity.age = card_age_years(p->patient.date_of_birth, ctx->now);
    m->identity.address = val(ctx, p->patient.address, "patient.address");
    m->identity.postcode = val(ctx, p->patient.postcode, "patient.postcode");
    m->identity.gender = val(ctx, gender_words(p->patient.gender), "patient.gender");
    card_nhs_spaced(p->nhs_number, m->identity.nhs_spaced);
    m->identity.nhs_number = val(ctx, m->identity.nhs_spaced, "nhs_number");
}

static void build_decisions(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    int d = p->resuscitation.decision;
    m->cpr.decision = d;
    m->cpr.headline = cpr_headline(d);
    m->cpr.words = card_cpr_words(d);
    m->cpr.decided_at = val(ctx, p->resuscitation.decided_at, "resuscitation.decided_at");
    m->cpr.decided_by = val(ctx, p->resuscitation.decided_by, "resuscitation.decided_by");
    m->cpr.review_date = val(ctx, p->resuscitation.review_date, "resuscitation.review_date");
    m->cpr.form_location = val(ctx, p->resuscitation.form_location, "resuscitation.form_location");
    m->cpr.patient_aware = val(ctx, yes_no(p->resuscitation.patient_aware), "resuscitation.patient_aware");
    m->cpr.family_aware = val(ctx, yes_no(p->resuscitation.family_aware), "resuscitation.family_aware");
    m->ceiling.ceiling = val(ctx, p->ceiling_of_treatment, "ceiling_of_treatment");
    m->ceiling.admission_wanted = val(ctx, yes_no(p->hospital_admission_wanted), "hospital_admission_wanted");
    m->adrt.exists = p->adrt.exists;
    m->adrt.words = adrt_words(p->adrt.exists);
    m->adrt.location = val(ctx, p->adrt.location, "adrt.location");
    m->place_of_care.n = p->preferred_place_of_care.n;
    for (size_t i = 0; i < m->place_of_care.n && i < PLAN_MAX_PLACES; i++)
        m->place_of_care.words[i] = place_words(p->preferred_place_of_care.v[i]);
    m->place_of_death.n = p->preferred_place_of_death.n;
    for (size_t i = 0; i < m->place_of_death.n && i < PLAN_MAX_PLACES; i++)
        m->place_of_death.words[i] = place_words(p->preferred_place_of_death.v[i]);
}

static void build_contacts(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    m->n_contacts = 0;
    for (int rank = 0; rank <= 7; rank++)
        for (size_t i = 0; i < p->n_contacts && m->n_contacts < PLAN_MAX_ITEMS; i++) {
            const struct plan_contact *c = &p->contacts[i];
            if (contact_rank(c->role) != rank)
                continue;
            struct card_contact *o = &m->contacts[m->n_contacts++];
            o->role = val(ctx, contact_role_words(c->role), "contacts");
            o->name = val(ctx, c->name, "contacts");
            o->phone = val(ctx, c->phone, "contacts");
            o->available = val(ctx, c->available, "contacts");
        }
}

static void build_clinical(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    m->n_diagnoses = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->n_diagnoses && m->n_diagnoses < PLAN_MAX_ITEMS; i++) {
            int primary = p->diagnoses[i].primary == 1;
            if (primary != (pass == 0))
                continue;
            m->diagnoses[m->n_diagnoses].text = val(ctx, p->diagnoses[i].text, "diagnoses");
            m->diagnoses[m->n_diagnoses++].primary = primary;
        }
    m->prognosis = val(ctx, p->prognosis, "prognosis");
    m->n_medicines = 0;
    for (int pass = 0; pass < (m->full ? 2 : 1); pass++)
        for (size_t i = 0; i < p->n_medications && m->n_medicines < PLAN_MAX_ITEMS; i++) {
            const struct plan_medication *md = &p->medications[i];
            if ((md->anticipatory == 1) != (pass == 0))
                continue;
            struct card_medicine *o = &m->medicines[m->n_medicines++];
            o->name = val(ctx, md->name, "medications");
            o->dose = val(ctx, md->dose, "medications");
            o->anticipatory = md->anticipatory == 1;
        }
    m->medicines_kept = val(ctx, p->anticipatory_medicines_location, "anticipatory_medicines_location");
    m->n_allergies = 0;
    for (size_t i = 0; i < p->n_allergies && i < PLAN_MAX_ITEMS; i++) {
        const struct plan_allergy *a = &p->allergies[i];
        struct card_allergy *o = &m->allergies[m->n_allergies++];
        o->substance = val(ctx, a->substance, "allergies");
        o->reaction = val(ctx, a->reaction, "allergies");
        o->severity = val(ctx, severity_words(a->severity), "allergies");
        o->severe = a->severity == PLAN_SEVERITY_SEVERE;
    }
    m->n_problems = 0;
    for (size_t i = 0; i < p->n_anticipated_problems && i < PLAN_MAX_ITEMS; i++) {
        m->problems[m->n_problems].problem = val(ctx, p->anticipated_problems[i].problem, "anticipated_problems");
        m->problems[m->n_problems++].guidance = val(ctx, p->anticipated_problems[i].guidance, "anticipated_problems");
    }
}

static void build_more(const struct plan *p, const struct card_context *ctx, struct card_model *m)
{
    m->more.consent = val(ctx, consent_words(p->consent.basis), "consent.basis");
    m->more.consent_recorded_at = val(ctx, p->consent.recorded_at, "consent.recorded_at");
    m->more.consent_recorded_by = val(ctx, p->consent.recorded_by, "consent.recorded_by");
    m->more.language = val(ctx, p->patient.language, "patient.language");
    m->more.interpreter_needed = val(ctx, yes_no(p->patient.interpreter_needed), "patient.interpreter_needed");
    m->more.phone = val(ctx, p->patient.phone, "patient.phone");
    m->more.what_matters = val(ctx, p->what_matters_to_me, "what_matters_to_me");
    m->more.social_support = val(ctx, p->social_support, "social_support");
    m->more.organ_donation = val(ctx, p->organ_donation, "organ_donation");
    m->more.region = val(ctx, p->region, "region");
    m->more.team = val(ctx, p->team, "team");
    m->more.care_home = val(ctx, p->care_home, "care_home");
    m->more.plan_id = val(ctx, p->plan_id, "plan_id");
    m->more.updated_at = val(ctx, p->updated_at, "updated_at");
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
    build_sections(ctx, out);
    build_banner(p, ctx, &out->banner);
    build_notices(p, ctx, &out->banner);
    build_identity(p, ctx, out);
    build_decisions(p, ctx, out);
    build_contacts(p, ctx, out);
    build_clinical(p, ctx, out);
    build_more(p, ctx, out);
}
