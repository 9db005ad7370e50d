/* web_card.c - the card model (agent/card.h) as the crew's page: the summary card, the full
 * plan and the print view. Words come from the model; this file adds markup and style only. */
#include "agent/web_html.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

static void value(struct web_buf *b, const struct card_value *v)
{
    web_text_or_unrecorded(b, v->text);
}

/* Sentence case by style: the first letter as written, the rest lowered by CSS. */
static void sentence_case(struct web_buf *b, const char *words)
{
    char first[2] = { words[0], '\0' };
    web_buf_text(b, first);
    web_buf_raw(b, "<span class=\"lc\">");
    web_buf_text(b, words + 1);
    web_buf_raw(b, "</span>");
}

static void section_open(struct web_buf *b, const struct card_model *m, enum card_section_id id,
                         const char *extra_class)
{
    const struct card_section *s = &m->sections[id];
    web_buf_rawf(b, "<section class=\"card-section%s%s\" id=\"%s\" aria-labelledby=\"h-%s\"><h2 id=\"h-%s\">",
                 extra_class ? " " : "", extra_class ? extra_class : "", s->anchor, s->anchor, s->anchor);
    if (s->number > 0)
        web_buf_rawf(b, "<span class=\"n\">%d</span> ", s->number);
    web_buf_text(b, s->title);
    web_buf_raw(b, "</h2>");
}

/* ---- local changes, inside their sections ------------------------------------------------- */

static const char *state_class(enum card_value_state st)
{
    switch (st) {
    case CARD_VALUE_APPROVED: return "approved";
    case CARD_VALUE_PROPOSED: return "proposed";
    case CARD_VALUE_SENT: return "sent";
    case CARD_VALUE_CONFLICT: return "conflict";
    }
    return "proposed";
}

struct proposal_html {
    struct web_buf *b;
    const struct card_model *m;
};

static void proposed_field(void *arg, enum card_value_state state, const struct card_field *fd, int first)
{
    struct proposal_html *ph = arg;
    struct web_buf *b = ph->b;
    if (fd == NULL) {
        web_buf_raw(b, "</dl></div>");
        return;
    }
    if (first) {
        web_buf_rawf(b, "<div class=\"proposal %s\" role=\"note\"><p class=\"proposal-head\"><strong>",
                     state_class(state));
        web_buf_text(b, card_state_words(state));
        web_buf_raw(b, "</strong>");
        if (ph->m->proposed_by != NULL) {
            web_buf_raw(b, " (");
            web_buf_text(b, ph->m->proposed_by);
            if (ph->m->proposed_at[0]) {
                web_buf_raw(b, ", ");
                web_buf_text(b, ph->m->proposed_at);
            }
            web_buf_raw(b, ")");
        }
        web_buf_raw(b, "</p><dl class=\"facts\">");
    }
    web_buf_raw(b, "<dt>");
    web_buf_text(b, fd->label);
    if (fd->item > 0)
        web_buf_rawf(b, " %d", fd->item);
    web_buf_raw(b, "</dt><dd><strong>");
    web_text_or_unrecorded(b, fd->v->text);
    web_buf_raw(b, "</strong>");
    if (ph->m->has_proposal) {
        const struct card_value *was = card_published_of(ph->m, fd);
        web_buf_raw(b, " <span class=\"was\">(the plan: ");
        web_text_or_unrecorded(b, was != NULL ? was->text : NULL);
        web_buf_raw(b, ")</span>");
    }
    web_buf_raw(b, "</dd>");
}

/* A section's local changes, after the plan's values: never in their place, never under the
 * plan's approver or decider. */
static void proposals(struct web_buf *b, const struct card_model *m, enum card_section_id id)
{
    struct proposal_html ph = { b, m };
    card_each_proposal(m, id, proposed_field, &ph);
}

static void section_close(struct web_buf *b, const struct card_model *m, enum card_section_id id)
{
    proposals(b, m, id);
    web_buf_raw(b, "</section>\n");
}

static void dt(struct web_buf *b, const char *label)
{
    web_buf_raw(b, "<dt>");
    web_buf_raw(b, label);
    web_buf_raw(b, "</dt><dd>");
}

static void none_item(struct web_buf *b, const char *tag)
{
    web_buf_rawf(b, "<%s><span class=\"none\">none recorded</span></%s>", tag, tag);
}

static void places(struct web_buf *b, const struct card_place_list *pl)
{
    if (pl->n == 0) {
        web_buf_raw(b, "<span class=\"none\">not recorded</span>");
        return;
    }
    for (size_t i = 0; i < pl->n; i++) {
        web_buf_rawf(b, "%s%s choice: ", i == 0 ? "" : "; ", i == 0 ? "1st" : i == 1 ? "2nd" : "3rd");
        web_buf_raw(b, "<strong>");
        web_buf_text(b, pl->words[i]);
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
        web_text_or_unrecorded(b, phone);
        return;
    }
    web_buf_raw(b, "<a class=\"tel\" href=\"tel:");
    web_buf_text(b, dial);
    web_buf_raw(b, "\">");
    web_buf_text(b, phone);
    web_buf_raw(b, "</a>");
}

/* ---- the banner: short, so the CPR decision stays on the first screen ------------------- */

static void banner(struct web_buf *b, const struct card_banner *bn)
{
    if (bn->break_glass)
        web_buf_rawf(b, "<p class=\"breakglass\" role=\"alert\"><strong>BREAK-GLASS VIEW: copy is %lld day%s old - "
                        "may be out of date.</strong></p>\n",
                     (long long)bn->copy_age_days, bn->copy_age_days == 1 ? "" : "s");
    web_buf_raw(b, "<section class=\"banner\" id=\"banner\" aria-labelledby=\"h-banner\">"
                   "<h2 id=\"h-banner\" class=\"sr\">Plan status</h2><p class=\"status-line\">");
    if (bn->published) {
        web_buf_raw(b, "<strong>");
        sentence_case(b, bn->status_words);
        web_buf_rawf(b, " v%lld</strong> - approved by ", (long long)bn->version);
        value(b, &bn->approved_by);
        web_buf_raw(b, " on ");
        web_text_or_unrecorded(b, bn->approved_on);
    } else {
        web_buf_raw(b, "<strong class=\"warn\">");
        web_buf_text(b, bn->status_words);
        web_buf_rawf(b, " (v%lld)</strong>", (long long)bn->version);
    }
    web_buf_raw(b, ". <span>Review due ");
    if (bn->review_overdue) {
        web_buf_raw(b, "<span class=\"flag overdue\"><strong>REVIEW OVERDUE</strong> - was due ");
        web_buf_text(b, bn->review_due.text);
        web_buf_raw(b, "</span>");
    } else {
        value(b, &bn->review_due);
    }
    web_buf_raw(b, "</span></p>");
    if (bn->changed_sections[0] != '\0') {
        web_buf_raw(b, "<p class=\"status-changes\"><strong>+ your unapproved changes to:</strong> ");
        web_buf_text(b, bn->changed_sections);
        web_buf_raw(b, "</p>");
    }
    web_buf_raw(b, "<p class=\"status-copy\">Copy on this device: ");
    web_buf_raw(b, bn->stale ? "<strong class=\"warn\">" : "<span>");
    web_buf_text(b, bn->copy_age);
    web_buf_raw(b, bn->stale ? "</strong> <span class=\"tag stale-tag\">STALE COPY</span>" : "</span>");
    web_buf_raw(b, "</p></section>\n");
}

/* ---- the notices: after the CPR decision ------------------------------------------------ */

static void conflicts_block(struct web_buf *b, const struct card_model *m)
{
    if (m->n_conflicts == 0)
        return;
    web_buf_raw(b, "<section class=\"conflicts\" aria-labelledby=\"h-conflicts\"><h2 id=\"h-conflicts\">");
    web_buf_rawf(b, "Open conflict%s (%zu): your change and a newer version both changed %s</h2>",
                 m->n_conflicts == 1 ? "" : "s", m->n_conflicts, m->n_conflicts == 1 ? "this" : "these");
    web_buf_raw(b, "<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Yours (not approved)</th>"
                   "<th scope=\"col\">The service's</th></tr></thead><tbody>");
    for (size_t i = 0; i < m->n_conflicts; i++) {
        const struct engine_conflict *c = &m->conflicts[i];
        web_buf_raw(b, "<tr><th scope=\"row\">");
        web_buf_text(b, c->path);
        web_buf_raw(b, "</th><td>");
        web_buf_text(b, c->local);
        web_buf_raw(b, "</td><td>");
        web_buf_text(b, c->remote);
        web_buf_rawf(b, " (version %lld)</td></tr>", (long long)c->remote_version);
    }
    web_buf_raw(b, "</tbody></table><p class=\"small\">Settle each on this device with "
                   "<code>cmc-agent resolve</code>. The card shows the plan's values; yours are marked in their "
                   "sections.</p></section>\n");
}

static void notices(struct web_buf *b, const struct card_model *m)
{
    const struct card_banner *bn = &m->banner;
    int any = bn->break_glass || bn->lease_days_left >= 0 || bn->stale || !bn->published || bn->newer_content ||
              bn->rule != NULL || m->n_conflicts > 0;
    if (!any)
        return;
    web_buf_raw(b, "<section class=\"notices\" id=\"notices\" aria-labelledby=\"h-notices\">"
                   "<h2 id=\"h-notices\" class=\"sr\">Notices</h2>");
    if (bn->break_glass)
        web_buf_raw(b, "<p class=\"flag breakglass-note\"><strong>Opened on a locked copy</strong> with a reason: "
                       "this view is audited and reported to the service at the next sync. Sync as soon as you "
                       "can.</p>");
    if (bn->lease_days_left >= 0) {
        web_buf_raw(b, "<p class=\"flag lease\" role=\"status\"><strong>");
        if (bn->lease_days_left == 0)
            web_buf_raw(b, "This copy locks today without a sync.");
        else
            web_buf_rawf(b, "This copy locks in %d day%s without a sync.", bn->lease_days_left,
                         bn->lease_days_left == 1 ? "" : "s");
        web_buf_raw(b, "</strong> Sync as soon as you have a signal.</p>");
    }
    if (bn->stale) {
        web_buf_raw(b, "<p class=\"flag stale\" role=\"alert\"><strong>STALE COPY</strong> - this device ");
        if (bn->last_sync < 0) {
            web_buf_raw(b, "has never synced");
        } else {
            web_buf_raw(b, "last synced ");
            web_buf_text(b, strncmp(bn->copy_age, "synced ", 7) == 0 ? bn->copy_age + 7 : bn->copy_age);
        }
        web_buf_raw(b, ". A newer version of this plan may exist: check with the service if you can.</p>");
    }
    if (!bn->published) {
        web_buf_raw(b, "<p class=\"flag draft\"><strong>NOT APPROVED</strong> - this version is ");
        web_buf_text(b, bn->status_words);
        web_buf_raw(b, ". Urgent care sees the published version only.</p>");
    }
    conflicts_block(b, m);
    if (bn->newer_content)
        web_buf_raw(b, "<p class=\"flag update\" role=\"alert\"><strong>THIS PLAN HAS CONTENT THIS DEVICE "
                       "CANNOT SHOW</strong> - update the agent. What this device can show is on this page.</p>");
    if (bn->rule != NULL) {
        web_buf_raw(b, "<p class=\"flag rule\" role=\"alert\"><strong>CHECK THIS PLAN</strong> - it breaks "
                       "clinical rule ");
        web_buf_text(b, bn->rule);
        web_buf_raw(b, ": ");
        web_buf_text(b, bn->rule_detail);
        web_buf_raw(b, bn->n_rules > 1 ? " (and others).</p>" : ".</p>");
    }
    web_buf_raw(b, "</section>\n");
}

/* ---- the sections ----------------------------------------------------------------------- */

static void identity(struct web_buf *b, const struct card_model *m)
{
    const struct card_identity *id = &m->identity;
    section_open(b, m, CARD_SEC_IDENTITY, NULL);
    web_buf_raw(b, "<p class=\"patient-name\"><strong>");
    web_buf_text(b, id->given_name.text);
    web_buf_raw(b, " ");
    web_buf_text(b, id->family_name.text);
    web_buf_raw(b, "</strong>");
    if (id->preferred_name.text != NULL) {
        web_buf_raw(b, " (known as ");
        web_buf_text(b, id->preferred_name.text);
        web_buf_raw(b, ")");
    }
    web_buf_raw(b, "</p><p class=\"id-line\"><span class=\"nowrap\">Born <strong>");
    value(b, &id->date_of_birth);
    web_buf_raw(b, "</strong>");
    if (id->age >= 0)
        web_buf_rawf(b, " (age %d)", id->age);
    web_buf_raw(b, "</span> <span class=\"nowrap\">NHS <strong>");
    web_buf_text(b, id->nhs_number.text);
    web_buf_raw(b, "</strong></span> <span class=\"nowrap\">");
    value(b, &id->gender);
    web_buf_raw(b, "</span></p><p class=\"id-line\">");
    value(b, &id->address);
    web_buf_raw(b, ", ");
    value(b, &id->postcode);
    web_buf_raw(b, "</p><p class=\"id-line comm\">Language: ");
    value(b, &id->language);
    web_buf_raw(b, "; ");
    if (id->interpreter == 1)
        web_buf_raw(b, "<strong class=\"tag\">INTERPRETER NEEDED</strong>");
    else if (id->interpreter == 0)
        web_buf_raw(b, "no interpreter needed");
    else
        web_buf_raw(b, "interpreter: <span class=\"none\">not recorded</span>");
    web_buf_raw(b, "</p>");
    if (id->care_home.text != NULL || id->care_home_address.text != NULL) {
        web_buf_raw(b, "<p class=\"id-line\">Care home resident: <strong>");
        web_buf_text(b, id->care_home.text != NULL ? id->care_home.text : "name not recorded");
        web_buf_raw(b, "</strong>");
        if (id->home_is_address) {
            web_buf_raw(b, " (at the address above)");
        } else if (id->care_home_address.text != NULL) {
            web_buf_raw(b, ", ");
            web_buf_text(b, id->care_home_address.text);
        }
        web_buf_raw(b, "</p>");
    }
    section_close(b, m, CARD_SEC_IDENTITY);
}

static void cpr(struct web_buf *b, const struct card_model *m)
{
    section_open(b, m, CARD_SEC_CPR, "cpr-section");
    web_buf_raw(b, "<div class=\"cpr cpr-"); /* fill and border differ as well as the words */
    web_buf_raw(b, m->cpr.style);
    web_buf_raw(b, "\"><p class=\"cpr-headline\">");
    web_buf_text(b, m->cpr.headline);
    web_buf_raw(b, "</p><p class=\"cpr-words\">");
    web_buf_text(b, m->cpr.words);
    web_buf_raw(b, "</p></div><p class=\"cpr-facts\">Decided <strong>");
    value(b, &m->cpr.decided_at);
    web_buf_raw(b, "</strong> by <strong>");
    value(b, &m->cpr.decided_by);
    web_buf_raw(b, "</strong>. Review ");
    if (m->cpr.review_lapsed) {
        web_buf_raw(b, "<span class=\"flag overdue\"><strong>CPR DECISION REVIEW LAPSED</strong> - was due ");
        web_buf_text(b, m->cpr.review_date.text);
        web_buf_raw(b, "</span>");
    } else {
        value(b, &m->cpr.review_date);
    }
    web_buf_raw(b, ".</p><p class=\"cpr-facts\">Paper form: ");
    value(b, &m->cpr.form_location);
    web_buf_raw(b, ". Patient aware: ");
    value(b, &m->cpr.patient_aware);
    web_buf_raw(b, "; family aware: ");
    value(b, &m->cpr.family_aware);
    web_buf_raw(b, ".</p>");
    section_close(b, m, CARD_SEC_CPR);
}

static void decisions(struct web_buf *b, const struct card_model *m)
{
    section_open(b, m, CARD_SEC_CEILING, NULL);
    web_buf_raw(b, "<p class=\"big\">");
    value(b, &m->ceiling.ceiling);
    web_buf_raw(b, "</p><dl class=\"facts\">");
    dt(b, "Hospital admission wanted");
    web_buf_raw(b, "<strong>");
    value(b, &m->ceiling.admission_wanted);
    web_buf_raw(b, "</strong></dd></dl>");
    section_close(b, m, CARD_SEC_CEILING);

    section_open(b, m, CARD_SEC_ADRT, NULL);
    web_buf_raw(b, "<p class=\"big\">");
    if (m->adrt.exists == 1) {
        web_buf_raw(b, "<strong>");
        web_buf_text(b, m->adrt.words);
        web_buf_raw(b, "</strong>. Kept: ");
        value(b, &m->adrt.location);
    } else {
        web_text_or_unrecorded(b, m->adrt.words);
    }
    web_buf_raw(b, "</p>");
    section_close(b, m, CARD_SEC_ADRT);

    section_open(b, m, CARD_SEC_PLACES, NULL);
    web_buf_raw(b, "<dl class=\"facts\">");
    dt(b, "Place of care");
    places(b, &m->place_of_care);
    web_buf_raw(b, "</dd>");
    dt(b, "Place of death");
    places(b, &m->place_of_death);
    web_buf_raw(b, "</dd></dl>");
    section_close(b, m, CARD_SEC_PLACES);
}

static void contacts(struct web_buf *b, const struct card_model *m)
{
    section_open(b, m, CARD_SEC_CONTACTS, NULL);
    web_buf_raw(b, "<ul class=\"contacts\">");
    if (m->n_contacts == 0)
        none_item(b, "li");
    for (size_t i = 0; i < m->n_contacts; i++) {
        const struct card_contact *ct = &m->contacts[i];
        web_buf_raw(b, "<li><span class=\"role\">");
        web_buf_text(b, ct->role.text);
        web_buf_raw(b, "</span> <span class=\"cname\">");
        web_buf_text(b, ct->name.text);
        web_buf_raw(b, "</span> ");
        tel_link(b, ct->phone.text);
        if (ct->available.text != NULL) {
            web_buf_raw(b, " <span class=\"avail\">(");
            web_buf_text(b, ct->available.text);
            web_buf_raw(b, ")</span>");
        }
        web_buf_raw(b, "</li>");
    }
    web_buf_raw(b, "</ul>");
    section_close(b, m, CARD_SEC_CONTACTS);
}

static void diagnosis_and_medicines(struct web_buf *b, const struct card_model *m)
{
    section_open(b, m, CARD_SEC_DIAGNOSIS, NULL);
    web_buf_raw(b, "<ul>");
    for (size_t i = 0; i < m->n_diagnoses; i++) {
        int primary = m->diagnoses[i].primary;
        web_buf_raw(b, primary ? "<li><strong>" : "<li>");
        web_buf_text(b, m->diagnoses[i].text.text);
        web_buf_raw(b, primary ? "</strong> (primary)</li>" : "</li>");
    }
    if (m->n_diagnoses == 0)
        none_item(b, "li");
    web_buf_raw(b, "</ul><dl class=\"facts\">");
    dt(b, "Prognosis");
    value(b, &m->prognosis);
    web_buf_raw(b, "</dd></dl>");
    section_close(b, m, CARD_SEC_DIAGNOSIS);

    section_open(b, m, CARD_SEC_MEDICINES, NULL);
    web_buf_raw(b, "<p class=\"big\"><strong>Kept:</strong> ");
    value(b, &m->medicines_kept);
    web_buf_raw(b, "</p><ul>");
    for (size_t i = 0; i < m->n_medicines; i++) {
        web_buf_raw(b, "<li><strong>");
        web_buf_text(b, m->medicines[i].name.text);
        web_buf_raw(b, "</strong> ");
        web_buf_text(b, m->medicines[i].dose.text);
        if (!m->medicines[i].anticipatory)
            web_buf_raw(b, " <span class=\"tag\">regular</span>");
        web_buf_raw(b, "</li>");
    }
    if (m->n_medicines == 0)
        none_item(b, "li");
    web_buf_raw(b, "</ul>");
    section_close(b, m, CARD_SEC_MEDICINES);
}

static void allergies_and_problems(struct web_buf *b, const struct card_model *m)
{
    section_open(b, m, CARD_SEC_ALLERGIES, NULL);
    web_buf_raw(b, "<ul>");
    if (m->allergies_status.text != NULL) {
        int nka = strcmp(m->allergies_status.text, CARD_NKA_WORDS) == 0;
        web_buf_raw(b, nka ? "<li><strong>" : "<li><span class=\"none\">");
        web_buf_text(b, m->allergies_status.text);
        web_buf_raw(b, nka ? "</strong></li>" : "</span></li>");
    }
    for (size_t i = 0; i < m->n_allergies; i++) {
        const struct card_allergy *a = &m->allergies[i];
        web_buf_raw(b, "<li><strong>");
        web_buf_text(b, a->substance.text);
        web_buf_raw(b, "</strong> - ");
        web_buf_text(b, a->reaction.text);
        web_buf_raw(b, a->severe ? " (<strong>" : " (");
        web_buf_text(b, a->severity.text);
        web_buf_raw(b, a->severe ? "</strong>)</li>" : ")</li>");
    }
    web_buf_raw(b, "</ul>");
    section_close(b, m, CARD_SEC_ALLERGIES);

    section_open(b, m, CARD_SEC_PROBLEMS, NULL);
    web_buf_raw(b, "<dl class=\"problems\">");
    if (m->n_problems == 0)
        none_item(b, "dt");
    for (size_t i = 0; i < m->n_problems; i++) {
        web_buf_raw(b, "<dt>");
        web_buf_text(b, m->problems[i].problem.text);
        web_buf_raw(b, "</dt><dd>");
        web_buf_text(b, m->problems[i].guidance.text);
        web_buf_raw(b, "</dd>");
    }
    web_buf_raw(b, "</dl>");
    section_close(b, m, CARD_SEC_PROBLEMS);
}

static void fact(struct web_buf *b, const char *label, const struct card_value *v)
{
    dt(b, label);
    value(b, v);
    web_buf_raw(b, "</dd>");
}

static void more(struct web_buf *b, const struct card_model *m)
{
    const struct card_section *s = &m->sections[CARD_SEC_MORE];
    web_buf_raw(b, "<section class=\"card-section\" id=\"more\" aria-labelledby=\"h-more\"><h2 id=\"h-more\">");
    web_buf_text(b, s->title);
    web_buf_raw(b, "</h2><dl class=\"facts\">");
    dt(b, "Consent");
    value(b, &m->more.consent);
    web_buf_raw(b, ", recorded ");
    value(b, &m->more.consent_recorded_at);
    web_buf_raw(b, " by ");
    value(b, &m->more.consent_recorded_by);
    web_buf_raw(b, "</dd>");
    dt(b, "Patient's phone");
    tel_link(b, m->more.phone.text);
    web_buf_raw(b, "</dd>");
    fact(b, "What matters to me", &m->more.what_matters);
    fact(b, "Social support", &m->more.social_support);
    fact(b, "Organ donation", &m->more.organ_donation);
    dt(b, "Region, team");
    value(b, &m->more.region);
    web_buf_raw(b, "; ");
    value(b, &m->more.team);
    web_buf_raw(b, "</dd>");
    dt(b, "Plan");
    web_buf_text(b, m->more.plan_id.text);
    web_buf_rawf(b, ", version %lld, updated ", (long long)m->banner.version);
    value(b, &m->more.updated_at);
    web_buf_raw(b, "</dd></dl>");
    section_close(b, m, CARD_SEC_MORE);
}

/* ---- the page --------------------------------------------------------------------------- */

static void title_and_print_note(struct web_buf *b, const struct web_chrome *c, const struct web_card *card,
                                 const struct card_model *m)
{
    web_buf_raw(b, "<h1 class=\"card-title\">");
    web_buf_raw(b, card->view == WEB_VIEW_CARD ? "Summary card: " : "Care plan: ");
    web_buf_text(b, m->identity.given_name.text);
    web_buf_raw(b, " ");
    web_buf_text(b, m->identity.family_name.text);
    web_buf_raw(b, "</h1>\n");
    if (card->view != WEB_VIEW_PRINT)
        return;
    char when[40];
    card_local_time(card->ctx->now, when, sizeof when);
    web_buf_raw(b, "<p class=\"small\">Printed ");
    web_buf_text(b, when);
    web_buf_raw(b, " by ");
    web_buf_text(b, c->user);
    web_buf_raw(b, " from this device's copy. Use the browser's Print command. A printed plan is a "
                   "snapshot: it does not change when the plan does. <a href=\"/\" class=\"noprint\">Back to "
                   "search</a></p>\n");
}

static void view_button(struct web_buf *b, const struct web_chrome *c, const struct plan *p, const char *view,
                        const char *label)
{
    web_buf_raw(b, "<form method=\"post\" action=\"/plan\" class=\"inline\">");
    web_hidden(b, "csrf", c->csrf);
    web_hidden(b, "plan_id", p->plan_id);
    web_hidden(b, "view", view);
    web_buf_raw(b, "<button type=\"submit\" class=\"secondary\">");
    web_buf_raw(b, label);
    web_buf_raw(b, "</button></form>");
}

static void actions(struct web_buf *b, const struct web_chrome *c, const struct web_card *card)
{
    if (card->view == WEB_VIEW_PRINT)
        return;
    web_buf_raw(b, "<nav class=\"actions\" aria-label=\"This plan\">");
    if (card->view == WEB_VIEW_CARD)
        view_button(b, c, card->p, "full", "Full plan");
    else
        view_button(b, c, card->p, "card", "Summary card");
    view_button(b, c, card->p, "print", "Print view");
    web_buf_raw(b, "<a class=\"button secondary\" href=\"/\">New search</a></nav>\n");
}

void web_render_card(struct web_buf *b, const struct web_chrome *c, const struct web_card *card)
{
    struct card_context ctx = *card->ctx;
    ctx.show_full = card->view != WEB_VIEW_CARD;
    struct card_model *m = cmc_malloc(sizeof *m);
    if (m == NULL) {
        web_buf_nomem(b);
        return;
    }
    card_build(card->p, &ctx, m);
    web_page_begin(b, c);
    title_and_print_note(b, c, card, m);
    banner(b, &m->banner);
    identity(b, m);
    cpr(b, m);
    notices(b, m);
    decisions(b, m);
    contacts(b, m);
    diagnosis_and_medicines(b, m);
    allergies_and_problems(b, m);
    if (m->full)
        more(b, m);
    actions(b, c, card);
    web_page_end(b);
    cry_memzero(m, sizeof *m); /* it holds an NHS number */
    cmc_free(m);
}
