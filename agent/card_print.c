/* card_print.c - the card model as terminal text and as the --json document. */
#include "agent/card.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

/* ---- the terminal ----------------------------------------------------------------------- */

static const char *or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

static const char *text_of(const struct card_value *v)
{
    return or_dash(v->text);
}

static void print_places(FILE *f, const struct card_place_list *pl)
{
    if (pl->n == 0) {
        fputs("not recorded", f);
        return;
    }
    for (size_t i = 0; i < pl->n; i++)
        fprintf(f, "%s%s", i == 0 ? "" : ", then ", pl->words[i]);
}

static void print_heading(FILE *f, const struct card_model *m, enum card_section_id id, int inline_value)
{
    const struct card_section *s = &m->sections[id];
    if (id != CARD_SEC_IDENTITY) /* the first section sits right under the banner */
        fputc('\n', f);
    if (inline_value)
        fprintf(f, "%2d %-13s", s->number, s->label);
    else
        fprintf(f, "%2d %s\n", s->number, s->label);
}

static void print_banner(FILE *f, const struct card_banner *b)
{
    fputs("==============================================================================\n", f);
    fprintf(f, " PLAN STATUS: %s", b->status_words);
    if (b->published)
        fprintf(f, " - approved by %s on %s", text_of(&b->approved_by), or_dash(b->approved_on));
    fprintf(f, " (version %lld)\n", (long long)b->version);
    if (b->review_due.text != NULL)
        fprintf(f, " REVIEW DUE: %s%s\n", b->review_due.text, b->review_overdue ? "  ** REVIEW OVERDUE **" : "");
    else
        fprintf(f, " REVIEW DUE: not recorded\n");
    fprintf(f, " COPY ON THIS DEVICE: %s%s\n", b->copy_age,
            b->stale ? "  ** STALE COPY - check for a newer plan if you can **" : "");
    if (b->pending_edits > 0)
        fprintf(f, " LOCAL CHANGES NOT YET APPROVED: %d pending edit(s) are shown, marked\n", b->pending_edits);
    if (b->newer_content)
        fputs(" ** THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW - update the agent **\n", f);
    if (b->rule != NULL)
        fprintf(f, " ** CHECK THIS PLAN: it breaks clinical rule %s (%s)%s **\n", b->rule, b->rule_detail,
                b->n_rules > 1 ? "; and others" : "");
    fputs("==============================================================================\n", f);
}

static void print_identity_and_cpr(FILE *f, const struct card_model *m)
{
    print_heading(f, m, CARD_SEC_IDENTITY, 1);
    fprintf(f, "%s %s", text_of(&m->identity.given_name), text_of(&m->identity.family_name));
    if (m->identity.preferred_name.text != NULL)
        fprintf(f, " (known as %s)", m->identity.preferred_name.text);
    fprintf(f, "\n                born %s", text_of(&m->identity.date_of_birth));
    if (m->identity.age >= 0)
        fprintf(f, " (age %d)", m->identity.age);
    fprintf(f, "   NHS %s\n", text_of(&m->identity.nhs_number));
    fprintf(f, "                %s %s\n", text_of(&m->identity.address), text_of(&m->identity.postcode));

    print_heading(f, m, CARD_SEC_CPR, 1);
    fprintf(f, "%s\n", m->cpr.words);
    fprintf(f, "                decided %s by %s; review %s\n", text_of(&m->cpr.decided_at),
            text_of(&m->cpr.decided_by), text_of(&m->cpr.review_date));
    fprintf(f, "                paper form: %s\n", text_of(&m->cpr.form_location));
    fprintf(f, "                patient aware: %s; family aware: %s\n", or_dash(m->cpr.patient_aware.text),
            or_dash(m->cpr.family_aware.text));
}

static void print_decisions(FILE *f, const struct card_model *m)
{
    print_heading(f, m, CARD_SEC_CEILING, 1);
    fprintf(f, "%s\n", text_of(&m->ceiling.ceiling));
    fprintf(f, "                hospital admission wanted: %s\n",
            m->ceiling.admission_wanted.text ? m->ceiling.admission_wanted.text : "not recorded");
    print_heading(f, m, CARD_SEC_ADRT, 1);
    fputs(m->adrt.words != NULL ? m->adrt.words : "not recorded", f);
    if (m->adrt.exists == 1)
        fprintf(f, "\n                kept: %s", text_of(&m->adrt.location));
    fputc('\n', f);
    print_heading(f, m, CARD_SEC_PLACES, 1);
    fputs("place of care: ", f);
    print_places(f, &m->place_of_care);
    fputs("\n                place of death: ", f);
    print_places(f, &m->place_of_death);
    fputc('\n', f);
    print_heading(f, m, CARD_SEC_CONTACTS, 0);
    if (m->n_contacts == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < m->n_contacts; i++) {
        const struct card_contact *c = &m->contacts[i];
        fprintf(f, "    %-24s %s  tel %s", c->role.text, text_of(&c->name), text_of(&c->phone));
        if (c->available.text != NULL)
            fprintf(f, "  (%s)", c->available.text);
        fputc('\n', f);
    }
}

static void print_clinical(FILE *f, const struct card_model *m)
{
    print_heading(f, m, CARD_SEC_DIAGNOSIS, 1);
    for (size_t i = 0; i < m->n_diagnoses; i++)
        fprintf(f, "%s%s%s", i == 0 ? "" : "; ", text_of(&m->diagnoses[i].text),
                m->diagnoses[i].primary ? " (primary)" : "");
    if (m->n_diagnoses == 0)
        fputs("none recorded", f);
    fprintf(f, "\n                prognosis: %s\n", text_of(&m->prognosis));
    print_heading(f, m, CARD_SEC_MEDICINES, 0);
    for (size_t i = 0; i < m->n_medicines; i++)
        fprintf(f, "    %s %s%s\n", text_of(&m->medicines[i].name), text_of(&m->medicines[i].dose),
                m->medicines[i].anticipatory ? "" : "  [regular]");
    if (m->n_medicines == 0)
        fputs("    none recorded\n", f);
    fprintf(f, "    kept: %s\n", text_of(&m->medicines_kept));
    print_heading(f, m, CARD_SEC_ALLERGIES, 0);
    if (m->n_allergies == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < m->n_allergies; i++)
        fprintf(f, "    %s - %s (%s)\n", text_of(&m->allergies[i].substance), text_of(&m->allergies[i].reaction),
                m->allergies[i].severity.text);
    print_heading(f, m, CARD_SEC_PROBLEMS, 0);
    if (m->n_problems == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < m->n_problems; i++)
        fprintf(f, "    %s: %s\n", text_of(&m->problems[i].problem), text_of(&m->problems[i].guidance));
}

static void print_more(FILE *f, const struct card_model *m)
{
    fprintf(f, "\n   %s\n", m->sections[CARD_SEC_MORE].label);
    fprintf(f, "    consent: %s, recorded %s by %s\n", text_of(&m->more.consent),
            text_of(&m->more.consent_recorded_at), text_of(&m->more.consent_recorded_by));
    fprintf(f, "    language: %s; interpreter needed: %s; phone %s\n", text_of(&m->more.language),
            m->more.interpreter_needed.text ? m->more.interpreter_needed.text : "not recorded",
            text_of(&m->more.phone));
    fprintf(f, "    social support: %s\n", text_of(&m->more.social_support));
    fprintf(f, "    what matters to me: %s\n", text_of(&m->more.what_matters));
    fprintf(f, "    organ donation: %s\n", text_of(&m->more.organ_donation));
    fprintf(f, "    region %s, team %s, care home %s\n", text_of(&m->more.region), text_of(&m->more.team),
            text_of(&m->more.care_home));
    fprintf(f, "    plan id %s, updated %s\n", text_of(&m->more.plan_id), text_of(&m->more.updated_at));
}

void card_print(FILE *f, const struct card_model *m)
{
    print_banner(f, &m->banner);
    print_identity_and_cpr(f, m);
    print_decisions(f, m);
    print_clinical(f, m);
    if (m->full)
        print_more(f, m);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static json_t *jstr(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *sections_json(const struct card_model *m)
{
    json_t *arr = json_array();
    for (int i = 0; arr != NULL && i < CARD_N_SECTIONS; i++) {
        const struct card_section *s = &m->sections[i];
        if (i == CARD_SEC_MORE && !m->full)
            continue;
        json_t *paths = json_array();
        for (size_t k = 0; paths != NULL && k < s->n_pending_paths; k++)
            json_array_append_new(paths, json_string(s->pending_paths[k]));
        json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:o}", "n", s->number, "section", s->key, "title",
                                             s->title, "not_yet_approved", paths ? paths : json_array()));
    }
    return arr;
}

/* The ten sections' keys in clinical order (the full view's "more" is not part of it). */
static json_t *order_json(const struct card_model *m)
{
    json_t *arr = json_array();
    for (int i = 0; arr != NULL && i < CARD_N_SECTIONS; i++)
        if (i != CARD_SEC_MORE)
            json_array_append_new(arr, json_string(m->sections[i].key));
    return arr;
}

json_t *card_to_json(const struct plan *p, const struct card_model *m)
{
    const struct card_banner *b = &m->banner;
    char *plan_text = NULL;
    size_t plan_len = 0;
    json_t *plan_json = NULL;
    if (plan_to_json(p, 0, &plan_text, &plan_len) == CMC_OK) {
        plan_json = json_loadb(plan_text, plan_len, 0, NULL);
        cmc_free(plan_text);
    }
    if (plan_json == NULL)
        return NULL;
    json_t *banner = json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:I, s:b, s:o, s:s, s:b, s:i}", "status",
                               plan_status_name(b->status) ? plan_status_name(b->status) : "unknown",
                               "status_words", b->status_words, "approved_by", jstr(p->approved_by),
                               "approved_at", jstr(p->approved_at), "review_due", jstr(b->review_due.text),
                               "review_overdue", b->review_overdue, "version", (json_int_t)b->version,
                               "never_synced", b->last_sync < 0, "last_sync",
                               b->last_sync < 0 ? json_null() : json_integer(b->last_sync), "copy_age",
                               b->copy_age, "stale", b->stale, "pending_edits", b->pending_edits);
    if (banner != NULL) { /* the notices */
        json_object_set_new(banner, "newer_content", json_boolean(b->newer_content));
        json_object_set_new(banner, "rules_broken", json_integer((json_int_t)b->n_rules));
        json_object_set_new(banner, "rule", b->rule != NULL ? json_string(b->rule) : json_null());
        json_object_set_new(banner, "rule_detail", b->rule != NULL ? json_string(b->rule_detail) : json_null());
    }
    json_t *cpr = json_pack("{s:s, s:o, s:s, s:s, s:o, s:o, s:o}", "section", "cpr", "decision",
                            jstr(plan_cpr_name(m->cpr.decision)), "headline", m->cpr.headline, "words",
                            m->cpr.words, "decided_at", jstr(m->cpr.decided_at.text), "review_date",
                            jstr(m->cpr.review_date.text), "form_location", jstr(m->cpr.form_location.text));
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "banner", banner, "cpr", cpr, "order", order_json(m),
                     "sections", sections_json(m), "plan", plan_json);
}
