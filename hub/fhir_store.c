/*
 * fhir_store.c - FHIR client systems and the audit of their reads (fhir_api.h).
 */
#include "hub/fhir_api.h"
#include "hub/internal.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"

#include <stdio.h>
#include <string.h>

static const char fhir_schema[] =
    "CREATE TABLE IF NOT EXISTS fhir_clients(client_id TEXT PRIMARY KEY, name TEXT NOT NULL"
    " UNIQUE, scope TEXT NOT NULL, created INTEGER NOT NULL, revoked INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS fhir_audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
    " client_id TEXT NOT NULL, who TEXT NOT NULL, plan_id TEXT NOT NULL, nhs TEXT NOT NULL,"
    " action TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS fhir_audit_plan ON fhir_audit(plan_id);"
    "CREATE INDEX IF NOT EXISTS fhir_audit_nhs ON fhir_audit(nhs);";

static int fhir_tables(hub *h)
{
    return hub_db_exec(h, fhir_schema);
}

/* What the hub signs for a client: the token proves the hub issued it. */
static void token_message(const char *client_id, char *out, size_t cap)
{
    snprintf(out, cap, "cmc-fhir-client:%s", client_id);
}

int hub_fhir_client_add(hub *h, const char *name, const char *scope, struct hub_fhir_client *out,
                        char **token)
{
    char kind[16], msg[64], hex[CRY_SIG_BYTES * 2 + 1];
    const char *value = NULL;
    uint8_t sig[CRY_SIG_BYTES];
    sqlite3_stmt *st = NULL;
    size_t cap;
    int rc, src;

    *token = NULL;
    memset(out, 0, sizeof *out);
    if (name == NULL || name[0] == '\0' || strlen(name) > HUB_NAME_MAX)
        return cmc_fail(CMC_ERR_USAGE, "client name: 1 to %d bytes", HUB_NAME_MAX);
    if (scope == NULL || strlen(scope) > HUB_SCOPE_MAX ||
        (strcmp(scope, HUB_FHIR_SCOPE_AUDIT) != 0 && hub_scope_parse(scope, kind, &value) != CMC_OK))
        return cmc_fail(CMC_ERR_USAGE, "--scope: all, region:R, team:T, care_home:H or audit");
    if ((rc = fhir_tables(h)) != CMC_OK)
        return rc;
    plan_uuid_new(out->client_id);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->scope, sizeof out->scope, "%s", scope);
    out->created = plat_wall_now();
    if ((rc = hub_db_prepare(h, "INSERT INTO fhir_clients(client_id, name, scope, created)"
                                " VALUES(?1, ?2, ?3, ?4)", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, out->client_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, out->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, out->scope, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, out->created);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (db_map_code(src) == CMC_ERR_EXISTS)
        return cmc_fail(CMC_ERR_EXISTS, "a client named %s is already registered", name);
    if (src != SQLITE_DONE)
        return hub_db_fail(h, src, "client add");
    token_message(out->client_id, msg, sizeof msg);
    if ((rc = cry_sign(h->sk, msg, strlen(msg), sig)) != CMC_OK)
        return rc;
    cry_hex(hex, sig, sizeof sig);
    cap = strlen(HUB_FHIR_TOKEN_PREFIX) + PLAN_ID_LEN + 1 + sizeof hex;
    if ((*token = cmc_malloc(cap)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "client add: out of memory");
    snprintf(*token, cap, "%s%s.%s", HUB_FHIR_TOKEN_PREFIX, out->client_id, hex);
    return CMC_OK;
}

/* The query client_from_row reads: clients, `rest` appended. */
#define CLIENT_SQL(rest) "SELECT client_id, name, scope, created, revoked FROM fhir_clients " rest

static void client_from_row(sqlite3_stmt *st, struct hub_fhir_client *c)
{
    hub_col_copy(st, 0, c->client_id, sizeof c->client_id);
    hub_col_copy(st, 1, c->name, sizeof c->name);
    hub_col_copy(st, 2, c->scope, sizeof c->scope);
    c->created = sqlite3_column_int64(st, 3);
    c->revoked = sqlite3_column_type(st, 4) != SQLITE_NULL;
}

int hub_fhir_client_list(hub *h, int (*cb)(const struct hub_fhir_client *, void *), void *ctx)
{
    struct hub_fhir_client c;
    struct hub_rows r;
    int rc = fhir_tables(h);
    if (rc != CMC_OK)
        return rc;
    hub_rows_open(h, &r, "client list", CLIENT_SQL("ORDER BY name"), NULL, 0);
    while (hub_rows_next(&r)) {
        client_from_row(r.st, &c);
        r.rc = cb(&c, ctx);
    }
    return hub_rows_end(&r);
}

int hub_fhir_client_revoke(hub *h, const char *name)
{
    int rc = fhir_tables(h);
    if (rc == CMC_OK)
        rc = hub_db_run(h, "client revoke",
                        "UPDATE fhir_clients SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                        HUB_ARGS(HUB_TEXT(name), HUB_INT(plat_wall_now())));
    if (rc == CMC_OK && sqlite3_changes(h->db) == 0)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no registered client of that name");
    return rc;
}

int hub_fhir_auth(hub *h, const char *authorization, struct hub_fhir_client *out)
{
    const size_t plen = strlen(HUB_FHIR_TOKEN_PREFIX);
    char id[PLAN_ID_LEN + 1], msg[64];
    uint8_t sig[CRY_SIG_BYTES];
    const char *tok;
    sqlite3_stmt *st = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (authorization == NULL || strncmp(authorization, "Bearer ", 7) != 0)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "a bearer token is required");
    tok = authorization + 7;
    if (strlen(tok) != plen + PLAN_ID_LEN + 1 + CRY_SIG_BYTES * 2 ||
        strncmp(tok, HUB_FHIR_TOKEN_PREFIX, plen) != 0 || tok[plen + PLAN_ID_LEN] != '.' ||
        !plan_uuid_valid_n(tok + plen, PLAN_ID_LEN) ||
        cry_unhex(sig, sizeof sig, tok + plen + PLAN_ID_LEN + 1) != CMC_OK)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "the token is not valid");
    memcpy(id, tok + plen, PLAN_ID_LEN);
    id[PLAN_ID_LEN] = '\0';
    token_message(id, msg, sizeof msg);
    if (cry_verify(h->pk, msg, strlen(msg), sig) != CMC_OK)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "the token is not valid");
    if ((rc = fhir_tables(h)) != CMC_OK ||
        (rc = hub_db_row(h, "client auth", &st, CLIENT_SQL("WHERE client_id = ?1"),
                         HUB_ARGS(HUB_TEXT(id)))) != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "the token is not valid");
    client_from_row(st, out);
    sqlite3_finalize(st);
    if (out->revoked)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "the token is not valid");
    return CMC_OK;
}

int hub_fhir_in_scope(const struct hub_fhir_client *c, const struct plan *p)
{
    char kind[16];
    const char *value = NULL, *have;
    if (hub_scope_parse(c->scope, kind, &value) != CMC_OK)
        return 0;
    if (strcmp(kind, "all") == 0)
        return 1;
    have = strcmp(kind, "region") == 0 ? p->region : strcmp(kind, "team") == 0 ? p->team : p->care_home;
    return have != NULL && value != NULL && strcmp(have, value) == 0;
}

int hub_fhir_audit_add(hub *h, const char *client_id, const char *who, const char *plan_id,
                       const char *nhs, const char *action)
{
    int rc = fhir_tables(h);
    if (rc != CMC_OK)
        return rc;
    return hub_db_run(h, "FHIR audit",
                      "INSERT INTO fhir_audit(at, client_id, who, plan_id, nhs, action)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                      HUB_ARGS(HUB_INT(plat_wall_now()), HUB_TEXT(client_id), HUB_TEXT(who),
                               HUB_TEXT(plan_id != NULL ? plan_id : ""),
                               HUB_TEXT(nhs != NULL ? nhs : ""), HUB_TEXT(action)));
}

/* A FHIR read as an audit entry: the client (or hub user) in place of the device. */
static void fhir_entry_from_row(sqlite3_stmt *st, struct hub_audit_entry *e)
{
    e->device_id = hub_col_text(st, 0);
    e->device_name = hub_col_text(st, 1);
    e->seq = (uint64_t)sqlite3_column_int64(st, 2);
    e->user = hub_col_text(st, 1);
    e->role = sqlite3_column_int(st, 7) ? "fhir_client" : "hub_user";
    e->plan_id = hub_col_text(st, 3);
    e->identifier = hub_col_text(st, 4);
    e->action = hub_col_text(st, 5);
    e->wall = e->received = sqlite3_column_int64(st, 6);
}

int hub_fhir_audit_list(hub *h, const char *plan_ref,
                        int (*cb)(const struct hub_audit_entry *, void *), void *ctx)
{
    struct hub_plan_info info;
    struct hub_audit_entry e;
    char plan_id[PLAN_ID_LEN + 1] = "", nhs[PLAN_NHS_LEN + 1] = "";
    struct hub_rows r;
    int rc;

    if (hub_plan_info(h, plan_ref, &info) == CMC_OK) {
        snprintf(plan_id, sizeof plan_id, "%s", info.plan_id);
        snprintf(nhs, sizeof nhs, "%s", info.nhs_number);
    } else if (plan_uuid_valid(plan_ref))
        snprintf(plan_id, sizeof plan_id, "%s", plan_ref);
    else if (plan_nhs_normalise(plan_ref, nhs) != CMC_OK)
        return CMC_OK; /* hub_audit_list has said what is wrong with the reference */
    cmc_err_clear();
    if ((rc = fhir_tables(h)) != CMC_OK)
        return rc;
    hub_rows_open(h, &r, "FHIR audit list",
                  "SELECT a.client_id, a.who, a.id, a.plan_id, a.nhs, a.action, a.at,"
                  " c.name IS NOT NULL FROM fhir_audit a LEFT JOIN fhir_clients c"
                  " ON c.client_id = a.client_id WHERE (?1 <> '' AND a.plan_id = ?1)"
                  " OR (?2 <> '' AND a.nhs = ?2) ORDER BY a.at, a.id",
                  HUB_ARGS(HUB_TEXT(plan_id), HUB_TEXT(nhs)));
    while (hub_rows_next(&r)) {
        fhir_entry_from_row(r.st, &e);
        r.rc = cb(&e, ctx);
    }
    return hub_rows_end(&r);
}
