/*
 * fhir_api.h - the hub's FHIR R4 face (docs/FHIR.md): registered client systems, the audit
 * of what they read, the read API under /fhir/R4/ and the `plan export|import --format fhir`
 * and `client` commands.
 *
 * Clients: an operator registers a system (`cmc-hub client add NAME --scope S`); it gets a
 * bearer token, shown once: "cmcfhir." + client id + "." + the hub's Ed25519 signature of
 * the client id (hex). The hub stores no secret: a request's token must carry a valid
 * signature by the hub's key and name a registered, unrevoked client. Scope is that of
 * devices: "all", "region:R", "team:T" or "care_home:H"; or "audit": a client that reads
 * who viewed a patient's plan (AuditEvent) and no plan.
 *
 * Tables (fhir_clients, fhir_audit) are made on first use with CREATE TABLE IF NOT EXISTS,
 * so the FHIR face needs no step in the hub store's migration list (docs/STORAGE.md).
 *
 * Audit: every read through the API (and every export by a hub user) is a row naming the
 * client, the plan and NHS number, the resource and the time; `cmc-hub audit PLAN` lists
 * them after the devices' entries. Rows carry no clinical content.
 *
 * Errors and memory follow hub.h. Thread-safety: as the hub handle.
 */
#ifndef CMC_HUB_FHIR_API_H
#define CMC_HUB_FHIR_API_H

#include "hub/hub.h"

#include <jansson.h>

#define HUB_FHIR_PREFIX "/fhir/R4/"
#define HUB_FHIR_TOKEN_PREFIX "cmcfhir."
#define HUB_FHIR_PAGE_DEFAULT 20
#define HUB_FHIR_PAGE_MAX 100
#define HUB_FHIR_SCOPE_AUDIT "audit" /* a client that reads AuditEvents, and no plan */

struct hub_fhir_client {
    char client_id[PLAN_ID_LEN + 1];
    char name[HUB_NAME_MAX + 1];
    char scope[HUB_SCOPE_MAX + 1];
    int64_t created;
    int revoked;
};

/* Registers a client; *token (cmc_free; shown once) is its bearer credential.
 * CMC_ERR_EXISTS for a name already registered, CMC_ERR_USAGE for a bad scope. */
int hub_fhir_client_add(hub *h, const char *name, const char *scope, struct hub_fhir_client *out,
                        char **token);
int hub_fhir_client_list(hub *h, int (*cb)(const struct hub_fhir_client *, void *), void *ctx);
int hub_fhir_client_revoke(hub *h, const char *name);
/* Checks an Authorization header value ("Bearer <token>"): CMC_ERR_UNAUTHORIZED (without
 * saying why) unless it names a registered, unrevoked client and its signature holds. */
int hub_fhir_auth(hub *h, const char *authorization, struct hub_fhir_client *out);
/* 1 if a plan is inside a client's scope. */
int hub_fhir_in_scope(const struct hub_fhir_client *c, const struct plan *p);

/* Records one read: who (client id and name, or "hub" and the user), which plan (plan_id may
 * be "" for a look-up that found nothing), what ("read Patient", "search CarePlan", ...). */
int hub_fhir_audit_add(hub *h, const char *client_id, const char *who, const char *plan_id,
                       const char *nhs, const char *action);
/* The reads of a patient, oldest first, as hub_audit_entry rows (device_id: the client id,
 * device_name and user: the client's name, role "fhir_client" or "hub_user"). */
int hub_fhir_audit_list(hub *h, const char *plan_ref,
                        int (*cb)(const struct hub_audit_entry *, void *), void *ctx);

/* AuditEvents (hub/fhir_audit.c) for a client of scope "audit": who viewed the patient with
 * NHS number `nhs` (the devices' view logs, then the hub's record of FHIR reads and exports),
 * entries [offset, offset + count) appended to the searchset `bundle` (its "total" set,
 * *more when there are further entries); or one by id ("dev-DEVICE-SEQ", "hub-ROW";
 * CMC_ERR_NOT_FOUND). Each call is itself recorded against the patient. */
int hub_fhir_audit_search(hub *h, const struct hub_fhir_client *c, const char *nhs, long count,
                          long offset, json_t *bundle, int *more);
int hub_fhir_audit_read(hub *h, const struct hub_fhir_client *c, const char *id, json_t **out);

/* One request to /fhir/R4/...: answers FHIR JSON (application/fhir+json), an
 * OperationOutcome for every error. `base` is the absolute URL of /fhir/R4 as the client
 * reached it (for fullUrl and paging links). Never fails. */
struct hub_fhir_request {
    const char *method;
    const char *target; /* path with query */
    const char *authorization;
    const char *base;
};
void hub_fhir_handle(hub *h, const struct hub_fhir_request *req, struct hub_response *resp);

/* The command line: `plan export PLAN|import FILE --format fhir --as USER` (argv from the
 * word after "plan") and `client add NAME --scope S | list | revoke NAME` (argv after
 * "client"). Print to stdout; return a cmc_err for main's exit code. */
int hub_fhir_cmd_plan(hub *h, int json, const char *format, int argc, const char *const *argv,
                      const char *as);
int hub_fhir_cmd_client(hub *h, int json, int argc, const char *const *argv);

#endif
