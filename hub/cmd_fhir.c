/*
 * cmd_fhir.c - `cmc-hub plan export|import --format fhir` and `cmc-hub client ...`
 * (fhir_api.h, shared/CLI.md).
 */
#include "hub/fhir_api.h"
#include "hub/cli.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/fhir.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void print_json(json_t *j)
{
    char *s = NULL;
    size_t len = 0;
    if (j != NULL && fhir_dump(j, 1, &s, &len) == CMC_OK) {
        fwrite(s, 1, len, stdout);
        fputc('\n', stdout);
    }
    cmc_free(s);
    json_decref(j);
}

static int want_user(hub *h, const char *as)
{
    int role = 0;
    if (as == NULL)
        return cmc_fail(CMC_ERR_USAGE, "--as USER (the hub user acting) is required");
    return hub_user_role(h, as, &role);
}

static int fhir_export(hub *h, const char *ref, const char *as)
{
    struct hub_plan_info info;
    struct plan p;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = want_user(h, as)) != CMC_OK || (rc = hub_plan_info(h, ref, &info)) != CMC_OK)
        return rc;
    /* Export is sharing; a patient who withdrew consent is shared with no one. */
    if (info.consent_withdrawn)
        return cmc_fail(CMC_ERR_STATE, "plan %s: consent withdrawn; it is not shared", info.plan_id);
    plan_init(&p);
    if ((rc = hub_plan_get(h, info.plan_id, 0, &p)) == CMC_OK &&
        (rc = fhir_plan_to_bundle(&p, 1, &text, &len)) == CMC_OK &&
        (rc = hub_fhir_audit_add(h, "hub", as, info.plan_id, info.nhs_number, "export FHIR")) == CMC_OK) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    }
    cmc_free(text);
    plan_free(&p);
    return rc;
}

static int fhir_import(hub *h, int json, const char *file, const char *as)
{
    uint8_t *buf = NULL;
    size_t len = 0, tlen = 0;
    char *text = NULL;
    char id[PLAN_ID_LEN + 1];
    const char *where = NULL;
    struct plan p;
    int rc;

    if ((rc = want_user(h, as)) != CMC_OK)
        return rc;
    if ((rc = plat_read_file(file, PLAN_MAX_ENCODED, &buf, &len)) != CMC_OK)
        return rc == CMC_ERR_NOT_FOUND ? cmc_fail(CMC_ERR_USAGE, "%s: no such file", file) : rc;
    rc = fhir_bundle_to_plan((const char *)buf, len, &p, &where);
    cmc_free(buf);
    if (rc == CMC_ERR_INVALID) {
        /* The answer a FHIR system understands, naming the path at fault. */
        print_json(fhir_outcome("invalid", cmc_errmsg(), where != NULL && where[0] ? where : NULL));
        return rc;
    }
    if (rc != CMC_OK)
        return rc;
    if ((rc = plan_to_json(&p, 0, &text, &tlen)) == CMC_OK)
        rc = hub_plan_import(h, as, text, tlen, id);
    cmc_free(text);
    plan_free(&p);
    if (rc != CMC_OK)
        return rc;
    if (json)
        print_json(json_pack("{s:s}", "plan_id", id));
    else
        printf("%s\n", id);
    return CMC_OK;
}

int hub_fhir_cmd_plan(hub *h, int json, const char *format, int argc, const char *const *argv,
                      const char *as)
{
    if (strcmp(format, "fhir") != 0 && strcmp(format, "json") != 0)
        return cmc_fail(CMC_ERR_USAGE, "--format: fhir");
    if (strcmp(format, "json") == 0)
        return cmc_fail(CMC_ERR_USAGE, "--format json is the default: leave --format out");
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %s (see cmc-hub --help)", argv[i]);
    if (argc == 2 && strcmp(argv[0], "export") == 0)
        return fhir_export(h, argv[1], as);
    if (argc == 2 && strcmp(argv[0], "import") == 0)
        return fhir_import(h, json, argv[1], as);
    return cmc_fail(CMC_ERR_USAGE, "usage: cmc-hub plan export PLAN --format fhir --as USER |"
                                   " plan import FILE --format fhir --as USER");
}

static int list_cb(const struct hub_fhir_client *c, void *ctx)
{
    json_t *arr = ctx;
    char when[21];
    plat_format_time(c->created, when);
    if (arr != NULL)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b}", "client_id", c->client_id,
                                             "name", c->name, "scope", c->scope, "created", when,
                                             "revoked", c->revoked));
    else
        printf("%-24s %-20s %s  %s%s\n", c->name, c->scope, c->client_id, when,
               c->revoked ? "  revoked" : "");
    return 0;
}

int hub_fhir_cmd_client(hub *h, int json, int argc, const char *const *argv)
{
    const char *scope = NULL, *pos[2] = {NULL, NULL};
    int npos = 0, rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
            scope = argv[++i];
        else if (strncmp(argv[i], "--", 2) == 0)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %s (see cmc-hub --help)", argv[i]);
        else if (npos < 2)
            pos[npos++] = argv[i];
        else
            return cmc_fail(CMC_ERR_USAGE, "client: too many arguments");
    }
    if (npos == 2 && strcmp(pos[0], "add") == 0) {
        struct hub_fhir_client c;
        char *token = NULL;
        if (scope == NULL)
            return cmc_fail(CMC_ERR_USAGE, "client add: --scope all|region:R|team:T|care_home:H|audit");
        if ((rc = hub_fhir_client_add(h, pos[1], scope, &c, &token)) != CMC_OK)
            return rc;
        if (json)
            print_json(json_pack("{s:s, s:s, s:s, s:s}", "client_id", c.client_id, "name", c.name,
                                 "scope", c.scope, "token", token));
        else
            printf("client %s registered (scope %s)\n"
                   "its bearer token, shown once: give it to the system's operator\n%s\n",
                   c.name, c.scope, token);
        cmc_free(token);
        return CMC_OK;
    }
    if (npos == 1 && strcmp(pos[0], "list") == 0) {
        json_t *arr = json ? json_array() : NULL;
        rc = hub_fhir_client_list(h, list_cb, arr);
        if (rc == CMC_OK && arr != NULL)
            print_json(arr);
        else
            json_decref(arr);
        return rc;
    }
    if (npos == 2 && strcmp(pos[0], "revoke") == 0) {
        if ((rc = hub_fhir_client_revoke(h, pos[1])) != CMC_OK)
            return rc;
        if (json)
            print_json(json_pack("{s:s, s:b}", "name", pos[1], "revoked", 1));
        else
            printf("client %s revoked\n", pos[1]);
        return CMC_OK;
    }
    return cmc_fail(CMC_ERR_USAGE,
                    "usage: cmc-hub client add NAME --scope S | client list | client revoke NAME");
}

static int cmd_client(struct hub_cli *c, hub *h)
{
    return hub_fhir_cmd_client(h, c->json, c->argc, c->argv);
}

static const char *const client_subs[] = {"add", "list", "revoke", NULL};
const struct hub_cli_cmd hub_cmd_client = {
    "client", client_subs,
    "usage: cmc-hub client add NAME --scope SCOPE | client list | client revoke NAME\n"
    "\n"
    "Systems (111, ambulance ePR, hospital EPR) that read the FHIR API under /fhir/R4/.\n"
    "`add` prints the client's bearer token once; the hub keeps no copy of it\n"
    "(docs/FHIR.md). SCOPE as for devices: all, region:R, team:T, care_home:H; or\n"
    "audit: the client reads who viewed a patient's plan (GET /fhir/R4/AuditEvent?\n"
    "patient.identifier=https://fhir.nhs.uk/Id/nhs-number|N) and no plan.\n"
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file).\n",
    1, cmd_client};
