/*
 * cli_app.c - `cmc-agent app add NAME | list | remove NAME` (cli_app.h, docs/FHIR.md).
 *
 * Only a user of this device may add an app: they unlock with their PIN first, and the app
 * file records who added it. The token is printed once, on the last line, and never again.
 */
#include "agent/cli_app.h"

#include "agent/audit.h"
#include "agent/web_fhir.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int list_cb(const char *name, const char *added_by, int64_t added_at, void *ctx)
{
    json_t *arr = ctx;
    char when[21];
    plat_format_time(added_at, when);
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "app", name, "added_by", added_by,
                                             "added_at", when));
    else
        printf("%-24s added by %s at %s\n", name, added_by, when);
    return 0;
}

static int app_list(struct cli_opts *o)
{
    json_t *arr = o->json ? json_array() : NULL;
    int rc = web_fhir_app_list(o->dir, list_cb, arr);
    if (rc == CMC_OK && arr != NULL) {
        char *text = json_dumps(arr, JSON_INDENT(2));
        if (text != NULL)
            printf("%s\n", text);
        cmc_free(text);
    }
    json_decref(arr);
    return rc;
}

int cli_app(struct cli_opts *o)
{
    struct cli_session s;
    char *token = NULL;
    int rc;

    if (o->n_positional == 1 && strcmp(o->positional[0], "list") == 0)
        return app_list(o);
    if (o->n_positional != 2 ||
        (strcmp(o->positional[0], "add") != 0 && strcmp(o->positional[0], "remove") != 0))
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent app add NAME | app list | app remove NAME");
    if ((rc = cli_unlock(o, &s)) != CMC_OK)
        return rc;
    if (strcmp(o->positional[0], "remove") == 0) {
        if ((rc = web_fhir_app_remove(o->dir, o->positional[1])) == CMC_OK) {
            audit_record(s.store, "app_remove", NULL, o->positional[1]);
            printf("app %s removed: its token is refused from now on\n", o->positional[1]);
        }
        cli_session_close(&s);
        return rc;
    }
    rc = web_fhir_app_add(o->dir, o->positional[1], s.who.user, &token);
    if (rc == CMC_OK) {
        /* who let an app read plans on this device is part of the device's record */
        audit_record(s.store, "app_add", NULL, o->positional[1]);
        if (o->json) {
            json_t *j = json_pack("{s:s, s:s, s:s}", "app", o->positional[1], "added_by", s.who.user,
                                  "token", token);
            char *text = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
            if (text != NULL)
                printf("%s\n", text);
            cmc_free(text);
            json_decref(j);
        } else
            printf("app %s may now read this device's FHIR endpoint while it is unlocked\n"
                   "its token, shown once: put it in the app's settings\n%s\n",
                   o->positional[1], token);
    }
    cmc_free(token);
    cli_session_close(&s);
    return rc;
}
