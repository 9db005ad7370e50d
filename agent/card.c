#include "agent/card.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdlib.h>
#include <string.h>

const char *card_cpr_words(int decision)
{
    switch ((enum plan_cpr)decision) {
    case PLAN_CPR_DNACPR:
        return "DNACPR - do NOT attempt CPR";
    case PLAN_CPR_FOR_CPR:
        return "FOR CPR - attempt CPR";
    case PLAN_CPR_NOT_DISCUSSED:
        return "CPR NOT YET DISCUSSED - no decision recorded";
    case PLAN_CPR_NONE:
        break;
    }
    return "CPR DECISION NOT RECORDED";
}

const char *card_place_words(int place)
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

const char *card_contact_role_words(int role)
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

int card_contact_rank(int role)
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

const char *card_severity_words(int s)
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

int card_review_overdue(const char *review_due, int64_t now)
{
    int64_t due;
    if (review_due == NULL || plat_parse_time(review_due, &due) != CMC_OK)
        return 0;
    return now >= due + 86400;
}



static const char *status_words(int status)
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




static const char *yes_no(int tri)
{
    return tri == PLAN_UNSET ? "not recorded" : tri ? "yes" : "no";
}

static const char *or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
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

static int copy_is_stale(const struct card_context *ctx)
{
    return ctx->last_sync < 0 || ctx->now - ctx->last_sync > CARD_STALE_AFTER_SECONDS;
}



static void print_nhs(FILE *f, const char *nhs)
{
    if (nhs != NULL && strlen(nhs) == 10)
        fprintf(f, "%.3s %.3s %.4s", nhs, nhs + 3, nhs + 6);
    else
        fprintf(f, "%s", or_dash(nhs));
}

static void print_places(FILE *f, const struct plan_places *pl)
{
    if (pl->n == 0) {
        fputs("not recorded", f);
        return;
    }
    for (size_t i = 0; i < pl->n; i++)
        fprintf(f, "%s%s", i == 0 ? "" : ", then ", card_place_words(pl->v[i]));
}

static void print_banner(FILE *f, const struct plan *p, const struct card_context *ctx)
{
    char age[96];
    card_copy_age(ctx, age, sizeof age);
    fputs("==============================================================================\n", f);
    fprintf(f, " PLAN STATUS: %s", status_words(p->status));
    if (p->status == PLAN_STATUS_PUBLISHED)
        fprintf(f, " - approved by %s on %.10s", or_dash(p->approved_by), or_dash(p->approved_at));
    fprintf(f, " (version %lld)\n", (long long)p->version);
    if (p->review_due != NULL)
        fprintf(f, " REVIEW DUE: %s%s\n", p->review_due,
                card_review_overdue(p->review_due, ctx->now) ? "  ** REVIEW OVERDUE **" : "");
    else
        fprintf(f, " REVIEW DUE: not recorded\n");
    fprintf(f, " COPY ON THIS DEVICE: %s%s\n", age,
            copy_is_stale(ctx) ? "  ** STALE COPY - check for a newer plan if you can **" : "");
    if (ctx->pending_edits > 0)
        fprintf(f, " LOCAL CHANGES NOT YET APPROVED: %d pending edit(s) are shown, marked\n",
                ctx->pending_edits);
    fputs("==============================================================================\n", f);
}

static void print_contacts(FILE *f, const struct plan *p)
{
    if (p->n_contacts == 0) {
        fputs("    none recorded\n", f);
        return;
    }
    for (int rank = 0; rank <= 7; rank++) {
        for (size_t i = 0; i < p->n_contacts; i++) {
            const struct plan_contact *c = &p->contacts[i];
            if (card_contact_rank(c->role) != rank)
                continue;
            fprintf(f, "    %-24s %s  tel %s", card_contact_role_words(c->role), or_dash(c->name),
                    or_dash(c->phone));
            if (c->available != NULL)
                fprintf(f, "  (%s)", c->available);
            fputc('\n', f);
        }
    }
}

void card_print(FILE *f, const struct plan *p, const struct card_context *ctx)
{
    print_banner(f, p, ctx);

    fprintf(f, " 1 PATIENT      %s %s", or_dash(p->patient.given_name), or_dash(p->patient.family_name));
    if (p->patient.preferred_name != NULL)
        fprintf(f, " (known as %s)", p->patient.preferred_name);
    fputc('\n', f);
    int age = card_age_years(p->patient.date_of_birth, ctx->now);
    fprintf(f, "                born %s", or_dash(p->patient.date_of_birth));
    if (age >= 0)
        fprintf(f, " (age %d)", age);
    fputs("   NHS ", f);
    print_nhs(f, p->nhs_number);
    fputc('\n', f);
    fprintf(f, "                %s %s\n", or_dash(p->patient.address), or_dash(p->patient.postcode));

    fprintf(f, "\n 2 CPR          %s\n", card_cpr_words(p->resuscitation.decision));
    fprintf(f, "                decided %s by %s; review %s\n", or_dash(p->resuscitation.decided_at),
            or_dash(p->resuscitation.decided_by), or_dash(p->resuscitation.review_date));
    fprintf(f, "                paper form: %s\n", or_dash(p->resuscitation.form_location));
    fprintf(f, "                patient aware: %s; family aware: %s\n", yes_no(p->resuscitation.patient_aware),
            yes_no(p->resuscitation.family_aware));

    fprintf(f, "\n 3 CEILING      %s\n", or_dash(p->ceiling_of_treatment));
    fprintf(f, "                hospital admission wanted: %s\n", yes_no(p->hospital_admission_wanted));

    fprintf(f, "\n 4 ADRT         %s", p->adrt.exists == 1 ? "YES - an advance decision to refuse treatment exists"
                                       : p->adrt.exists == 0 ? "no ADRT" : "not recorded");
    if (p->adrt.exists == 1)
        fprintf(f, "\n                kept: %s", or_dash(p->adrt.location));
    fputc('\n', f);

    fputs("\n 5 PREFERRED    place of care: ", f);
    print_places(f, &p->preferred_place_of_care);
    fputs("\n                place of death: ", f);
    print_places(f, &p->preferred_place_of_death);
    fputc('\n', f);

    fputs("\n 6 CONTACTS\n", f);
    print_contacts(f, p);

    fputs("\n 7 DIAGNOSIS    ", f);
    int any = 0;
    for (size_t i = 0; i < p->n_diagnoses; i++)
        if (p->diagnoses[i].primary == 1) {
            fprintf(f, "%s (primary)", or_dash(p->diagnoses[i].text));
            any = 1;
        }
    for (size_t i = 0; i < p->n_diagnoses; i++)
        if (p->diagnoses[i].primary != 1) {
            fprintf(f, "%s%s", any ? "; " : "", or_dash(p->diagnoses[i].text));
            any = 1;
        }
    if (!any)
        fputs("none recorded", f);
    fprintf(f, "\n                prognosis: %s\n", or_dash(p->prognosis));

    fputs("\n 8 ANTICIPATORY MEDICINES (just in case)\n", f);
    any = 0;
    for (size_t i = 0; i < p->n_medications; i++) {
        const struct plan_medication *m = &p->medications[i];
        if (m->anticipatory != 1 && !ctx->show_full)
            continue;
        fprintf(f, "    %s %s%s\n", or_dash(m->name), or_dash(m->dose),
                m->anticipatory == 1 ? "" : "  [regular]");
        any = 1;
    }
    if (!any)
        fputs("    none recorded\n", f);
    fprintf(f, "    kept: %s\n", or_dash(p->anticipatory_medicines_location));

    fputs("\n 9 ALLERGIES\n", f);
    if (p->n_allergies == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < p->n_allergies; i++) {
        const struct plan_allergy *a = &p->allergies[i];
        fprintf(f, "    %s - %s (%s)\n", or_dash(a->substance), or_dash(a->reaction), card_severity_words(a->severity));
    }

    fputs("\n10 ANTICIPATED PROBLEMS\n", f);
    if (p->n_anticipated_problems == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < p->n_anticipated_problems; i++)
        fprintf(f, "    %s: %s\n", or_dash(p->anticipated_problems[i].problem),
                or_dash(p->anticipated_problems[i].guidance));

    if (ctx->show_full) {
        fputs("\n   MORE\n", f);
        fprintf(f, "    consent: %s, recorded %s by %s\n",
                or_dash(plan_enum_name(plan_field_by_path("consent.basis"), p->consent.basis)),
                or_dash(p->consent.recorded_at), or_dash(p->consent.recorded_by));
        fprintf(f, "    language: %s; interpreter needed: %s; phone %s\n", or_dash(p->patient.language),
                yes_no(p->patient.interpreter_needed), or_dash(p->patient.phone));
        fprintf(f, "    social support: %s\n", or_dash(p->social_support));
        fprintf(f, "    what matters to me: %s\n", or_dash(p->what_matters_to_me));
        fprintf(f, "    organ donation: %s\n", or_dash(p->organ_donation));
        fprintf(f, "    region %s, team %s, care home %s\n", or_dash(p->region), or_dash(p->team),
                or_dash(p->care_home));
        fprintf(f, "    plan id %s, updated %s\n", or_dash(p->plan_id), or_dash(p->updated_at));
    }
}

static json_t *jstr(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *card_to_json(const struct plan *p, const struct card_context *ctx)
{
    char age[96];
    card_copy_age(ctx, age, sizeof age);
    char *plan_text = NULL;
    size_t plan_len = 0;
    json_t *plan_json = NULL;
    if (plan_to_json(p, 0, &plan_text, &plan_len) == CMC_OK) {
        plan_json = json_loadb(plan_text, plan_len, 0, NULL);
        cmc_free(plan_text);
    }
    if (plan_json == NULL)
        return NULL;
    json_t *banner = json_pack("{s:s, s:o, s:o, s:o, s:b, s:I, s:b, s:o, s:s, s:b, s:i}",
                               "status", plan_status_name(p->status) ? plan_status_name(p->status) : "unknown",
                               "approved_by", jstr(p->approved_by), "approved_at", jstr(p->approved_at),
                               "review_due", jstr(p->review_due), "review_overdue",
                               card_review_overdue(p->review_due, ctx->now), "version", (json_int_t)p->version,
                               "never_synced", ctx->last_sync < 0, "last_sync",
                               ctx->last_sync < 0 ? json_null() : json_integer(ctx->last_sync),
                               "copy_age", age, "stale", copy_is_stale(ctx), "pending_edits",
                               ctx->pending_edits);
    json_t *cpr = json_pack("{s:s, s:o, s:s, s:o, s:o, s:o}", "section", "cpr", "decision",
                            jstr(plan_cpr_name(p->resuscitation.decision)), "words",
                            card_cpr_words(p->resuscitation.decision), "decided_at",
                            jstr(p->resuscitation.decided_at), "review_date",
                            jstr(p->resuscitation.review_date), "form_location",
                            jstr(p->resuscitation.form_location));
    json_t *order = json_pack("[s,s,s,s,s,s,s,s,s,s]", "identity", "cpr", "ceiling_of_treatment", "adrt",
                              "preferred_places", "contacts", "diagnosis_prognosis",
                              "anticipatory_medicines", "allergies", "anticipated_problems");
    json_t *out = json_pack("{s:o, s:o, s:o, s:o}", "banner", banner, "cpr", cpr, "order", order,
                            "plan", plan_json);
    return out;
}
