/* card_print.c - the card model as terminal text and as the --json document. */
#include "agent/card.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "crypto/cry.h"
#include "sync/text.h"

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

/* The top of the card: short, so the CPR decision stays on the first screen; the longer
 * notices come after the decision (print_notices). */
static void print_banner(FILE *f, const struct card_banner *b)
{
    fputs("==============================================================================\n", f);
    if (b->break_glass)
        fprintf(f, " !! BREAK-GLASS VIEW: this copy is %lld day%s old - may be out of date !!\n",
                (long long)b->copy_age_days, b->copy_age_days == 1 ? "" : "s");
    if (b->published)
        fprintf(f, " PLAN STATUS: %s v%lld", b->status_words, (long long)b->version);
    else
        fprintf(f, " PLAN STATUS: %s (v%lld)", b->status_words, (long long)b->version);
    if (b->changed_sections[0] != '\0')
        fprintf(f, " + your unapproved changes to: %s", b->changed_sections);
    fputc('\n', f);
    if (b->published)
        fprintf(f, " approved by %s on %s; ", text_of(&b->approved_by), or_dash(b->approved_on));
    else
        fputs(" not approved; ", f);
    if (b->review_due.text != NULL)
        fprintf(f, "REVIEW DUE: %s%s\n", b->review_due.text, b->review_overdue ? "  ** REVIEW OVERDUE **" : "");
    else
        fputs("REVIEW DUE: not recorded\n", f);
    fprintf(f, " COPY ON THIS DEVICE: %s%s\n", b->copy_age, b->stale ? "  ** STALE COPY **" : "");
    fputs("==============================================================================\n", f);
}

struct proposal_print {
    FILE *f;
    const struct card_model *m;
};

static void print_proposed_field(void *arg, enum card_value_state state, const struct card_field *fd, int first)
{
    struct proposal_print *pp = arg;
    if (fd == NULL)
        return;
    if (first) {
        fprintf(pp->f, "                >> %s", card_state_words(state));
        if (pp->m->proposed_by != NULL)
            fprintf(pp->f, " (%s%s%s)", pp->m->proposed_by, pp->m->proposed_at[0] ? ", " : "",
                    pp->m->proposed_at);
        fputs(":\n", pp->f);
    }
    fprintf(pp->f, "                   %s", fd->label);
    if (fd->item > 0)
        fprintf(pp->f, " %d", fd->item);
    fprintf(pp->f, ": %s", text_of(fd->v));
    if (pp->m->has_proposal) {
        const struct card_value *was = card_published_of(pp->m, fd);
        fprintf(pp->f, "   [plan: %s]", was != NULL ? text_of(was) : "-");
    }
    fputc('\n', pp->f);
}

/* A section's local changes, inside the section, after the plan's values: never in their
 * place, never under the plan's approver. */
static void print_proposals(FILE *f, const struct card_model *m, enum card_section_id id)
{
    struct proposal_print pp = { f, m };
    card_each_proposal(m, id, print_proposed_field, &pp);
}

static void print_identity_and_cpr(FILE *f, const struct card_model *m)
{
    const struct card_identity *id = &m->identity;
    print_heading(f, m, CARD_SEC_IDENTITY, 1);
    fprintf(f, "%s %s", text_of(&id->given_name), text_of(&id->family_name));
    if (id->preferred_name.text != NULL)
        fprintf(f, " (known as %s)", id->preferred_name.text);
    fprintf(f, "\n                born %s", text_of(&id->date_of_birth));
    if (id->age >= 0)
        fprintf(f, " (age %d)", id->age);
    fprintf(f, "   NHS %s\n", text_of(&id->nhs_number));
    fprintf(f, "                %s %s\n", text_of(&id->address), text_of(&id->postcode));
    fprintf(f, "                language: %s; %s\n", id->language.text ? id->language.text : "not recorded",
            id->interpreter_needed.text ? id->interpreter_needed.text : "interpreter need not recorded");
    if (id->care_home.text != NULL || id->care_home_address.text != NULL)
        fprintf(f, "                care home resident: %s%s%s\n", text_of(&id->care_home),
                id->home_is_address ? " (at the address above)" : id->care_home_address.text != NULL ? ", " : "",
                id->care_home_address.text != NULL && !id->home_is_address ? id->care_home_address.text : "");
    print_proposals(f, m, CARD_SEC_IDENTITY);

    print_heading(f, m, CARD_SEC_CPR, 1);
    fprintf(f, "%s\n", m->cpr.words);
    fprintf(f, "                decided %s by %s; review %s%s\n", text_of(&m->cpr.decided_at),
            text_of(&m->cpr.decided_by), text_of(&m->cpr.review_date),
            m->cpr.review_lapsed ? "  ** CPR DECISION REVIEW LAPSED **" : "");
    fprintf(f, "                paper form: %s\n", text_of(&m->cpr.form_location));
    fprintf(f, "                patient aware: %s; family aware: %s\n", or_dash(m->cpr.patient_aware.text),
            or_dash(m->cpr.family_aware.text));
    print_proposals(f, m, CARD_SEC_CPR);
}

/* Everything a crew should know that is not the plan's content, right after the CPR decision. */
static void print_notices(FILE *f, const struct card_model *m)
{
    const struct card_banner *b = &m->banner;
    int any = b->lease_days_left >= 0 || b->stale || b->newer_content || b->rule != NULL || m->n_conflicts > 0;
    if (!any)
        return;
    fputs("\n   NOTICES\n", f);
    if (b->lease_days_left >= 0) {
        if (b->lease_days_left == 0)
            fputs(" ** THIS COPY LOCKS TODAY WITHOUT A SYNC - sync as soon as you can **\n", f);
        else
            fprintf(f, " ** this copy locks in %d day%s without a sync **\n", b->lease_days_left,
                    b->lease_days_left == 1 ? "" : "s");
    }
    if (b->stale)
        fprintf(f, " ** STALE COPY - %s: check for a newer plan if you can **\n",
                b->last_sync < 0 ? "this device has never synced" : b->copy_age);
    if (m->n_conflicts > 0) {
        fprintf(f, " ** OPEN CONFLICT%s (%zu): your change and a newer version both changed %s - "
                   "settle with cmc-agent resolve **\n",
                m->n_conflicts == 1 ? "" : "S", m->n_conflicts, m->n_conflicts == 1 ? "this" : "these");
        for (size_t i = 0; i < m->n_conflicts; i++)
            fprintf(f, "    %s: yours (not approved) %s | the service's %s (version %lld)\n", m->conflicts[i].path,
                    m->conflicts[i].local, m->conflicts[i].remote, (long long)m->conflicts[i].remote_version);
    }
    if (b->newer_content)
        fputs(" ** THIS PLAN HAS CONTENT THIS DEVICE CANNOT SHOW - update the agent **\n", f);
    if (b->rule != NULL)
        fprintf(f, " ** CHECK THIS PLAN: it breaks clinical rule %s (%s)%s **\n", b->rule, b->rule_detail,
                b->n_rules > 1 ? "; and others" : "");
}

static void print_decisions(FILE *f, const struct card_model *m)
{
    print_heading(f, m, CARD_SEC_CEILING, 1);
    fprintf(f, "%s\n", text_of(&m->ceiling.ceiling));
    fprintf(f, "                hospital admission wanted: %s\n",
            m->ceiling.admission_wanted.text ? m->ceiling.admission_wanted.text : "not recorded");
    print_proposals(f, m, CARD_SEC_CEILING);
    print_heading(f, m, CARD_SEC_ADRT, 1);
    fputs(m->adrt.words != NULL ? m->adrt.words : "not recorded", f);
    if (m->adrt.exists == 1)
        fprintf(f, "\n                kept: %s", text_of(&m->adrt.location));
    fputc('\n', f);
    print_proposals(f, m, CARD_SEC_ADRT);
    print_heading(f, m, CARD_SEC_PLACES, 1);
    fputs("place of care: ", f);
    print_places(f, &m->place_of_care);
    fputs("\n                place of death: ", f);
    print_places(f, &m->place_of_death);
    fputc('\n', f);
    print_proposals(f, m, CARD_SEC_PLACES);
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
    print_proposals(f, m, CARD_SEC_CONTACTS);
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
    print_proposals(f, m, CARD_SEC_DIAGNOSIS);
    print_heading(f, m, CARD_SEC_MEDICINES, 0);
    for (size_t i = 0; i < m->n_medicines; i++)
        fprintf(f, "    %s %s%s\n", text_of(&m->medicines[i].name), text_of(&m->medicines[i].dose),
                m->medicines[i].anticipatory ? "" : "  [regular]");
    if (m->n_medicines == 0)
        fputs("    none recorded\n", f);
    fprintf(f, "    kept: %s\n", text_of(&m->medicines_kept));
    print_proposals(f, m, CARD_SEC_MEDICINES);
    print_heading(f, m, CARD_SEC_ALLERGIES, 0);
    if (m->allergies_status.text != NULL)
        fprintf(f, "    %s\n", m->allergies_status.text);
    for (size_t i = 0; i < m->n_allergies; i++)
        fprintf(f, "    %s - %s (%s)\n", text_of(&m->allergies[i].substance), text_of(&m->allergies[i].reaction),
                m->allergies[i].severity.text);
    print_proposals(f, m, CARD_SEC_ALLERGIES);
    print_heading(f, m, CARD_SEC_PROBLEMS, 0);
    if (m->n_problems == 0)
        fputs("    none recorded\n", f);
    for (size_t i = 0; i < m->n_problems; i++)
        fprintf(f, "    %s: %s\n", text_of(&m->problems[i].problem), text_of(&m->problems[i].guidance));
    print_proposals(f, m, CARD_SEC_PROBLEMS);
}

static void print_more(FILE *f, const struct card_model *m)
{
    fprintf(f, "\n   %s\n", m->sections[CARD_SEC_MORE].label);
    fprintf(f, "    consent: %s, recorded %s by %s\n", text_of(&m->more.consent),
            text_of(&m->more.consent_recorded_at), text_of(&m->more.consent_recorded_by));
    fprintf(f, "    patient's phone %s\n", text_of(&m->more.phone));
    fprintf(f, "    social support: %s\n", text_of(&m->more.social_support));
    fprintf(f, "    what matters to me: %s\n", text_of(&m->more.what_matters));
    fprintf(f, "    organ donation: %s\n", text_of(&m->more.organ_donation));
    fprintf(f, "    region %s, team %s\n", text_of(&m->more.region), text_of(&m->more.team));
    fprintf(f, "    plan id %s, updated %s\n", text_of(&m->more.plan_id), text_of(&m->more.updated_at));
    print_proposals(f, m, CARD_SEC_MORE);
}

void card_print(FILE *f, const struct card_model *m)
{
    print_banner(f, &m->banner);
    print_identity_and_cpr(f, m);
    print_notices(f, m);
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
        json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:o, s:s}", "n", s->number, "section", s->key,
                                             "title", s->title, "not_yet_approved", paths ? paths : json_array(),
                                             "state", card_state_name(s->state)));
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

/* ---- provenance: every shown value with its state --------------------------------------- */

struct values_json {
    const struct card_model *m;
    json_t *arr;
    int proposals; /* 1: only values a local change touches, with the plan's value beside */
};

static void value_json(void *arg, const struct card_field *fd)
{
    struct values_json *vj = arg;
    if (vj->arr == NULL || (vj->proposals && fd->v->state == CARD_VALUE_APPROVED))
        return;
    const struct card_banner *b = &vj->m->banner;
    json_t *o = json_pack("{s:s, s:s, s:s?, s:o, s:s}", "section", vj->m->sections[fd->section].key, "label",
                          fd->label, "path", fd->v->path, "text", jstr(fd->v->text), "state",
                          vj->proposals || !b->published ? card_state_name(fd->v->state) : "published");
    if (o == NULL)
        return;
    if (fd->item > 0)
        json_object_set_new(o, "item", json_integer(fd->item));
    if (vj->proposals) {
        const struct card_value *was = vj->m->has_proposal ? card_published_of(vj->m, fd) : NULL;
        json_object_set_new(o, "plan_text", was != NULL ? jstr(was->text) : json_null());
        json_object_set_new(o, "proposed_by", jstr(vj->m->proposed_by));
        json_object_set_new(o, "proposed_at", vj->m->proposed_at[0] ? json_string(vj->m->proposed_at) : json_null());
    } else if (fd->v->state == CARD_VALUE_APPROVED) {
        if (!b->published)
            json_object_set_new(o, "state", json_string("draft"));
        json_object_set_new(o, "approved_by", b->published ? jstr(b->approved_by.text) : json_null());
        json_object_set_new(o, "approved_on", b->published && b->approved_on[0] ? json_string(b->approved_on)
                                                                                 : json_null());
        json_object_set_new(o, "version", json_integer((json_int_t)b->version));
    }
    json_array_append_new(vj->arr, o);
}

static json_t *values_json(const struct card_model *m, const struct card_body *body, int proposals)
{
    struct values_json vj = { .m = m, .arr = json_array(), .proposals = proposals };
    card_each_field(body, m->full, value_json, &vj);
    return vj.arr;
}

static json_t *conflicts_json(const struct card_model *m)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < m->n_conflicts; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I}", "path", m->conflicts[i].path, "yours",
                                             m->conflicts[i].local, "theirs", m->conflicts[i].remote,
                                             "their_version", (json_int_t)m->conflicts[i].remote_version));
    return arr;
}

static json_t *cpr_json(const struct card_model *m)
{
    const struct card_banner *b = &m->banner;
    json_t *cpr = json_pack("{s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:s}", "section", "cpr", "decision",
                            jstr(plan_cpr_name(m->cpr.decision)), "headline", m->cpr.headline, "words",
                            m->cpr.words, "decided_at", jstr(m->cpr.decided_at.text), "decided_by",
                            jstr(m->cpr.decided_by.text), "review_date", jstr(m->cpr.review_date.text),
                            "form_location", jstr(m->cpr.form_location.text), "review_lapsed",
                            m->cpr.review_lapsed, "state",
                            m->has_proposal || m->cpr.decision_words.state == CARD_VALUE_APPROVED
                                ? (b->published ? "published" : "draft")
                                : card_state_name(m->cpr.decision_words.state));
    if (cpr == NULL)
        return NULL;
    if (b->published && (m->has_proposal || m->cpr.decision_words.state == CARD_VALUE_APPROVED)) {
        json_object_set_new(cpr, "approved_by", jstr(b->approved_by.text));
        json_object_set_new(cpr, "approved_on", b->approved_on[0] ? json_string(b->approved_on) : json_null());
    }
    const struct card_cpr *pc = &m->proposal.cpr;
    if (m->has_proposal && m->sections[CARD_SEC_CPR].n_pending_paths > 0)
        json_object_set_new(cpr, "proposal",
                            json_pack("{s:o, s:s, s:s, s:o, s:o, s:o}", "decision", jstr(plan_cpr_name(pc->decision)),
                                      "words", pc->words, "state", card_state_name(m->sections[CARD_SEC_CPR].state),
                                      "decided_by", jstr(pc->decided_by.text), "proposed_by",
                                      jstr(m->proposed_by), "proposed_at",
                                      m->proposed_at[0] ? json_string(m->proposed_at) : json_null()));
    return cpr;
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
                               "status_words", b->status_words, "approved_by", jstr(b->approved_by.text),
                               "approved_at", jstr(b->approved_at),
                               "review_due", jstr(b->review_due.text), "review_overdue", b->review_overdue,
                               "version", (json_int_t)b->version, "never_synced", b->last_sync < 0, "last_sync",
                               b->last_sync < 0 ? json_null() : json_integer(b->last_sync), "copy_age",
                               b->copy_age, "stale", b->stale, "pending_edits", b->pending_edits);
    if (banner != NULL) { /* the notices */
        json_object_set_new(banner, "unapproved_changes_to",
                            b->changed_sections[0] ? json_string(b->changed_sections) : json_null());
        json_object_set_new(banner, "lease_days_left",
                            b->lease_days_left >= 0 ? json_integer(b->lease_days_left) : json_null());
        json_object_set_new(banner, "break_glass", json_boolean(b->break_glass));
        if (b->break_glass)
            json_object_set_new(banner, "copy_age_days", json_integer((json_int_t)b->copy_age_days));
        json_object_set_new(banner, "newer_content", json_boolean(b->newer_content));
        json_object_set_new(banner, "rules_broken", json_integer((json_int_t)b->n_rules));
        json_object_set_new(banner, "rule", b->rule != NULL ? json_string(b->rule) : json_null());
        json_object_set_new(banner, "rule_detail", b->rule != NULL ? json_string(b->rule_detail) : json_null());
    }
    /* "plan" is the plan as this session sees it (a clinician's local changes applied);
     * "values" and "cpr" are the plan's own values, "proposals" the changes beside them */
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "banner", banner, "cpr", cpr_json(m), "order",
                     order_json(m), "sections", sections_json(m), "values", values_json(m, &m->body, 0),
                     "proposals", values_json(m, m->has_proposal ? &m->proposal : &m->body, 1), "conflicts",
                     conflicts_json(m), "plan", plan_json);
}

int card_print_terminal(FILE *f, const struct card_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (mem == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory printing the card");
    card_print(mem, m);
    int rc = fclose(mem) == 0 ? CMC_OK : cmc_fail(CMC_ERR_NOMEM, "out of memory printing the card");
    if (rc == CMC_OK)
        text_put_terminal(f, buf, len);
    if (buf != NULL) {
        cry_memzero(buf, len);
        free(buf); /* open_memstream's buffer is the C library's */
    }
    return rc;
}
