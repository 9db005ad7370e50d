/*
 * feed_edition.c - a plan as a device of an older edition can hold it (docs/PROTOCOL.md,
 * "Mixed versions").
 *
 * A first-edition agent refuses a plan carrying field ids it does not know, so the hub sends
 * such a device the plan's first-edition projection: every second-edition field and item
 * field left out, and any later-edition fields too. Leaving content out silently would tell
 * a crew less than the plan says, so a projection that lost anything carries a visible note
 * in a field every edition shows on its first screen: the ceiling of treatment (section 3,
 * where the second edition's treatment recommendations belong). When the ceiling text and
 * the note do not fit that field's cap, the note becomes an anticipated problem instead.
 */
#include "hub/feed.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

/* Clears every field (and list item field) flagged PLAN_FF_ED2, and any later-edition ones. */
static void hub_edition_clear(struct plan *p)
{
    for (size_t i = 0; i < plan_n_fields; i++) {
        const struct plan_field *f = &plan_fields[i];
        if (f->flags & PLAN_FF_ED2) {
            plan_field_clear(f, p);
            continue;
        }
        if (f->type != PLAN_F_LIST)
            continue;
        size_t n = 0;
        char *items = plan_list_items(f, p, &n);
        for (size_t j = 0; j < n; j++)
            for (size_t k = 0; k < f->list->n_fields; k++)
                if (f->list->fields[k].flags & PLAN_FF_ED2)
                    plan_field_clear(&f->list->fields[k], items + j * f->list->item_size);
    }
    cmc_free(p->unknown.bytes);
    memset(&p->unknown, 0, sizeof p->unknown);
}

/* The note as an anticipated problem, when the ceiling cannot hold it. */
static int hub_edition_note_problem(struct plan *p)
{
    const struct plan_field *f = plan_field_by_path("anticipated_problems");
    size_t at;
    if (p->n_anticipated_problems >= f->list->max_items ||
        plan_list_find(f, p, HUB_EDITION_NOTE_ID, &at))
        return cmc_fail(CMC_ERR_TOO_LARGE, "plan %s: no room for the note that content is left "
                        "out for an older agent", p->plan_id);
    struct plan_problem *items =
        cmc_realloc(p->anticipated_problems, (p->n_anticipated_problems + 1) * sizeof *items);
    if (items == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "edition note");
    p->anticipated_problems = items;
    struct plan_problem *it = &items[p->n_anticipated_problems];
    memset(it, 0, sizeof *it);
    it->id = cmc_strdup(HUB_EDITION_NOTE_ID);
    it->problem = cmc_strdup("Plan content not shown on this device");
    it->guidance = cmc_strdup(HUB_EDITION_NOTE);
    if (it->id == NULL || it->problem == NULL || it->guidance == NULL) {
        cmc_free(it->id);
        cmc_free(it->problem);
        cmc_free(it->guidance);
        return cmc_fail(CMC_ERR_NOMEM, "edition note");
    }
    p->n_anticipated_problems++;
    return CMC_OK;
}

int hub_edition_project(struct plan *p, int edition, int *reduced)
{
    const struct plan_field *ceiling = plan_field_by_path("ceiling_of_treatment");
    *reduced = 0;
    if (plan_edition(p) <= edition)
        return CMC_OK;
    hub_edition_clear(p);
    *reduced = 1;
    /* The note goes first, so it is read before the ceiling it qualifies. */
    size_t have = p->ceiling_of_treatment != NULL ? strlen(p->ceiling_of_treatment) : 0;
    size_t note = strlen(HUB_EDITION_NOTE);
    if (have + note + 1 > ceiling->max_len)
        return hub_edition_note_problem(p);
    char *text = cmc_malloc(note + 1 + have + 1);
    if (text == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "edition note");
    memcpy(text, HUB_EDITION_NOTE, note);
    if (have > 0) {
        text[note] = ' ';
        memcpy(text + note + 1, p->ceiling_of_treatment, have + 1);
    } else {
        text[note] = '\0';
    }
    cmc_free(p->ceiling_of_treatment);
    p->ceiling_of_treatment = text;
    return CMC_OK;
}
