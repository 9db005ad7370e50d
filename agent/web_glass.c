/* web_glass.c - the page of a lease-locked copy: why it is locked, the break-glass form that
 * opens one patient's card with the user's PIN and a typed reason (agent/lease.h), and that
 * card, audited as break_glass. */
#include "agent/web_html.h"

#include "agent/audit.h"
#include "agent/card_source.h"
#include "agent/lease.h"
#include "agent/view.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <string.h>

void web_render_glass(struct web_buf *b, const struct web_chrome *c, const char *pre, const char *message,
                      const char *user_value)
{
    web_page_begin(b, c);
    web_buf_raw(b, "<h1>This copy is locked</h1>\n<p class=\"alert\" role=\"alert\">");
    web_buf_text(b, message != NULL ? message : "This device has not synced for too long.");
    web_buf_raw(b, "</p>\n<p>Sync the device to unlock it. In an emergency, when a decision cannot wait, you "
                   "can open <strong>one patient's card</strong> by NHS number. The copy may be out of date: "
                   "check with the patient's team as soon as you can. Your name, the patient and your reason are "
                   "recorded and reported to the care plan service.</p>\n"
                   "<form method=\"post\" action=\"/break-glass\" class=\"panel glass\" autocomplete=\"off\">");
    web_hidden(b, "pre", pre);
    web_buf_raw(b, "<p><label for=\"g-user\">User</label><input id=\"g-user\" name=\"user\" type=\"text\" required "
                   "autocapitalize=\"none\" spellcheck=\"false\" autocomplete=\"username\"");
    if (user_value != NULL && user_value[0] != '\0') {
        web_buf_raw(b, " value=\"");
        web_buf_attr(b, user_value);
        web_buf_raw(b, "\"");
    }
    web_buf_rawf(b, "></p><p><label for=\"g-pin\">PIN</label><input id=\"g-pin\" name=\"pin\" type=\"password\" "
                    "required inputmode=\"numeric\" autocomplete=\"current-password\"></p>"
                    "<p><label for=\"g-nhs\">NHS number (10 digits)</label><input id=\"g-nhs\" name=\"nhs\" "
                    "type=\"text\" inputmode=\"numeric\" required maxlength=\"20\" autocomplete=\"off\"></p>"
                    "<p><label for=\"g-reason\">Reason (at least %d characters)</label><input id=\"g-reason\" "
                    "name=\"reason\" type=\"text\" required minlength=\"%d\" maxlength=\"%d\" "
                    "autocomplete=\"off\"></p>"
                    "<p><button type=\"submit\" class=\"danger\">Break glass: open this card</button></p></form>\n",
                 LEASE_REASON_MIN, LEASE_REASON_MIN, LEASE_REASON_MAX);
    web_page_end(b);
}

int web_glass_card(struct web_buf *b, const struct web_chrome *c, store *st, const char *nhs, const char *reason)
{
    struct plan p;
    struct card_source src;
    int pending = 0;
    json_t *changed = json_array();
    memset(&src, 0, sizeof src);
    plan_init(&p);
    int rc = changed == NULL ? cmc_fail(CMC_ERR_NOMEM, "out of memory") : view_load(st, nhs, &p, &pending, changed);
    if (rc == CMC_ERR_NOT_FOUND) /* a miss is audited too: someone looked for this patient here */
        audit_record(st, AUDIT_LOOKUP_MISS, NULL, nhs);
    if (rc != CMC_OK)
        goto out;
    /* the reason goes into the device's audit chain, and so to the hub; no patient data */
    audit_record(st, AUDIT_BREAK_GLASS, p.plan_id, reason);
    struct card_context ctx;
    card_context_init(&ctx, st, plat_wall_now());
    ctx.pending_edits = pending;
    ctx.changed_paths = changed;
    if ((rc = card_source_load(st, &p, pending, &src)) != CMC_OK)
        goto out;
    card_source_apply(&src, &ctx);
    lease_card_context(st, 1, &ctx);
    struct web_card card = { .p = &p, .ctx = &ctx, .view = WEB_VIEW_CARD };
    web_render_card(b, c, &card);
out:
    card_source_free(&src);
    json_decref(changed);
    plan_free(&p);
    return rc;
}
