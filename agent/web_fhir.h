/*
 * web_fhir.h - the device's FHIR endpoint: `cmc-agent serve` also answers /fhir/R4/ on
 * loopback, for an ePR app on the same tablet (docs/FHIR.md, "On the device").
 *
 * Apps: a user of the device registers an app (`cmc-agent app add NAME`, after unlocking
 * with their PIN) and gets a bearer token, shown once: 32 random bytes in hex. The device
 * keeps only its BLAKE2b hash, with the app's name and who added it, in DIR/fhir-apps (0600,
 * one line per app: NAME HASH ADDED_BY ADDED_AT), and compares hashes in constant time.
 *
 * Serving: only while the crew's page has an unlocked session (its store handle is passed
 * in; NULL when locked: the answer is 423 and holds nothing) and its offline lease holds.
 * What is served is the newest published version the device holds (store_plan_get_published),
 * never a draft or a pending local edit, whatever the device's role. Every read is a view-log entry (agent/audit.h) of the unlocked user,
 * action "fhir:" + the app's name: the plan id for a hit, the NHS number for a miss.
 * Searches are by NHS number only (Patient, CarePlan with _include, Flag); reads by id.
 *
 * Errors: an OperationOutcome for every refusal. Thread-safety: as the store handle.
 */
#ifndef CMC_WEB_FHIR_H
#define CMC_WEB_FHIR_H

#include "agent/store.h"
#include "agent/web_html.h"

#include <stdint.h>

#define WEB_FHIR_PREFIX "/fhir/R4/"
#define WEB_FHIR_APPS_FILE "fhir-apps"
#define WEB_FHIR_APP_NAME_MAX 24 /* the audit action "fhir:NAME" fits its 31 bytes */
#define WEB_FHIR_TOKEN_BYTES 32

/* Registers an app in DIR; *token (cmc_free, shown once) is its bearer credential.
 * CMC_ERR_EXISTS when the name is taken, CMC_ERR_USAGE for a bad name
 * (1..WEB_FHIR_APP_NAME_MAX of [A-Za-z0-9._-]). */
int web_fhir_app_add(const char *dir, const char *name, const char *added_by, char **token);
/* Removes an app: its token is refused from the next request on. CMC_ERR_NOT_FOUND if none. */
int web_fhir_app_remove(const char *dir, const char *name);
/* Calls cb for every app (name, who added it, when); a non-zero return stops and is returned. */
int web_fhir_app_list(const char *dir,
                      int (*cb)(const char *name, const char *added_by, int64_t added_at, void *ctx),
                      void *ctx);
/* The app an Authorization header ("Bearer <token>") belongs to, or CMC_ERR_UNAUTHORIZED. */
int web_fhir_app_check(const char *dir, const char *authorization,
                       char name[WEB_FHIR_APP_NAME_MAX + 1]);

#include "sync/fhir.h"

struct MHD_Connection;

/* One request under /fhir/R4/. `st` is the unlocked session's store or NULL; `url` the
 * path, `query` its decoded search parameters (n > FHIR_QUERY_MAX: too many); `base` is
 * "http://127.0.0.1:PORT/fhir/R4". Sets *status and appends FHIR JSON to `body`. */
void web_fhir_route(store *st, const char *dir, const char *method, const char *url,
                    const struct fhir_query *query, const char *authorization, const char *base,
                    int *status, struct web_buf *body);
/* The same for a libmicrohttpd request (`host`: its checked Host header). */
void web_fhir_serve(struct MHD_Connection *conn, store *st, const char *dir, const char *method,
                    const char *url, const char *host, int *status, struct web_buf *body);

#endif
