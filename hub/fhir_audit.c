/*
 * fhir_audit.c - who viewed a patient's plan, as FHIR AuditEvent resources (fhir_api.h,
 * docs/FHIR.md "AuditEvent").
 *
 * The entries are those `cmc-hub audit PLAN` lists: the devices' view logs (each view by a
 * user on a device, including the reads of apps on a tablet) and the hub's own record of
 * FHIR reads and exports. Only a client registered with scope "audit" reads them, by the
 * patient's NHS number; such a client reads no plan. Reading the audit is itself recorded.
 */
#include "hub/fhir_api.h"
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/fhir.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HL7_CS "http://terminology.hl7.org/CodeSystem/"
#define DCM "http://dicom.nema.org/resources/ontology/DCM"

struct audit_list {
    json_t *events; /* AuditEvent resources, devices' first, then the hub's */
    const char *nhs;
    int from_hub;   /* the entries being listed are the hub's fhir_audit rows */
    int nomem;
};

/* The id of an entry: "dev-" + device id + "-" + sequence number for a device's view, "hub-"
 * + row id for the hub's record. Both fit FHIR's 64 characters (a device id is a UUID). */
static void event_id(const struct hub_audit_entry *e, int from_hub, char out[FHIR_ID_MAX + 1])
{
    if (from_hub)
        snprintf(out, FHIR_ID_MAX + 1, "hub-%llu", (unsigned long long)e->seq);
    else
        snprintf(out, FHIR_ID_MAX + 1, "dev-%.36s-%llu", e->device_id, (unsigned long long)e->seq);
}

/* type and subtype: a read through the FHIR API is a RESTful operation (read or search);
 * an export is DICOM "Export"; a view on a device is DICOM "Patient Record". The product's
 * own words for the action travel as a second subtype. */
static json_t *event_type(const struct hub_audit_entry *e, int from_hub, json_t **subtype)
{
    const char *interaction = NULL;
    json_t *type;
    if (from_hub && strncmp(e->action, "FHIR ", 5) == 0) {
        interaction = strncmp(e->action, "FHIR read", 9) == 0 ? "read" : "search-type";
        type = json_pack("{s:s, s:s, s:s}", "system", HL7_CS "audit-event-type", "code", "rest",
                         "display", "RESTful Operation");
    } else if (from_hub)
        type = json_pack("{s:s, s:s, s:s}", "system", DCM, "code", "110106", "display", "Export");
    else
        type = json_pack("{s:s, s:s, s:s}", "system", DCM, "code", "110110", "display",
                         "Patient Record");
    *subtype = json_pack("[{s:s, s:s}]", "system", FHIR_CMC "audit-action", "code", e->action);
    if (interaction != NULL && *subtype != NULL)
        json_array_insert_new(*subtype, 0,
                              json_pack("{s:s, s:s}", "system", "http://hl7.org/fhir/restful-interaction",
                                        "code", interaction));
    return type;
}

static json_t *event_agents(const struct hub_audit_entry *e, int from_hub)
{
    const char *sys = !from_hub ? FHIR_CMC "device-user"
                      : strcmp(e->role, "fhir_client") == 0 ? FHIR_CMC "fhir-client"
                                                            : FHIR_CMC "hub-user";
    json_t *agents = json_pack("[{s:{s:s}, s:{s:{s:s, s:s}, s:s}, s:b}]", "type", "text", e->role,
                               "who", "identifier", "system", sys, "value",
                               from_hub && strcmp(e->role, "fhir_client") == 0 ? e->device_id : e->user,
                               "display", e->user, "requestor", 1);
    if (!from_hub && agents != NULL)
        json_array_append_new(agents,
                              json_pack("{s:{s:s}, s:{s:{s:s, s:s}, s:s}, s:b}", "type", "text",
                                        "device", "who", "identifier", "system",
                                        FHIR_CMC "device-id", "value", e->device_id, "display",
                                        e->device_name[0] != '\0' ? e->device_name : e->device_id,
                                        "requestor", 0));
    return agents;
}

static json_t *event_entities(const struct hub_audit_entry *e, const char *nhs)
{
    json_t *ent = json_pack("[{s:{s:{s:s, s:s}}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}]",
                            "what", "identifier", "system", FHIR_NHS_SYSTEM, "value", nhs, "type",
                            "system", HL7_CS "audit-entity-type", "code", "1", "display", "Person",
                            "role", "system", HL7_CS "object-role", "code", "1", "display",
                            "Patient");
    char ref[PLAN_ID_LEN + 16];
    if (ent != NULL && e->plan_id[0] != '\0' && plan_uuid_valid(e->plan_id)) {
        snprintf(ref, sizeof ref, "CarePlan/%s", e->plan_id);
        json_array_append_new(ent, json_pack("{s:{s:s}, s:{s:s, s:s, s:s}}", "what", "reference",
                                             ref, "type", "system", HL7_CS "audit-entity-type",
                                             "code", "2", "display", "System Object"));
    }
    return ent;
}

static int collect_cb(const struct hub_audit_entry *e, void *ctx)
{
    struct audit_list *l = ctx;
    char id[FHIR_ID_MAX + 1], when[21];
    json_t *subtype = NULL, *type, *ev;
    event_id(e, l->from_hub, id);
    plat_format_time(e->wall, when);
    type = event_type(e, l->from_hub, &subtype);
    ev = json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:{s:s, s:{s:s}}, s:o}",
                   "resourceType", "AuditEvent", "id", id, "type", type, "subtype", subtype,
                   "action", "R", "recorded", when, "outcome", "0", "agent",
                   event_agents(e, l->from_hub), "source", "site",
                   l->from_hub ? "cmc-hub" : (e->device_name[0] != '\0' ? e->device_name : e->device_id),
                   "observer", "display", l->from_hub ? "cmc-hub" : "cmc-agent", "entity",
                   event_entities(e, l->nhs));
    if (ev == NULL || json_array_append_new(l->events, ev) != 0)
        l->nomem = 1;
    return 0;
}

/* Every entry about the patient with NHS number `nhs` (devices' views, then the hub's). */
static int list_events(hub *h, const char *nhs, json_t **out)
{
    struct audit_list l = {json_array(), nhs, 0, 0};
    int rc;
    *out = NULL;
    if (l.events == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    rc = hub_audit_list(h, nhs, collect_cb, &l);
    if (rc == CMC_ERR_NOT_FOUND) { /* nothing from devices; the hub may still have some */
        cmc_err_clear();
        rc = CMC_OK;
    }
    l.from_hub = 1;
    if (rc == CMC_OK)
        rc = hub_fhir_audit_list(h, nhs, collect_cb, &l);
    if (rc == CMC_OK && l.nomem)
        rc = cmc_fail(CMC_ERR_NOMEM, "FHIR: out of memory");
    if (rc != CMC_OK) {
        json_decref(l.events);
        return rc;
    }
    *out = l.events;
    return CMC_OK;
}

/* The NHS number an event id's entry is about ("" when none). */
static int event_patient(hub *h, const char *id, char nhs[PLAN_NHS_LEN + 1])
{
    char dev[PLAN_ID_LEN + 1], *end = NULL;
    const char *ref = NULL;
    struct hub_plan_info info;
    sqlite3_stmt *st = NULL;
    unsigned long long seq;
    int rc, src;
    nhs[0] = '\0';
    if (strncmp(id, "hub-", 4) == 0) {
        seq = strtoull(id + 4, &end, 10);
        if (end == id + 4 || *end != '\0')
            return CMC_OK;
        rc = hub_db_prepare(h, "SELECT plan_id, nhs FROM fhir_audit WHERE id = ?1", &st);
    } else if (strncmp(id, "dev-", 4) == 0 && strlen(id) > 4 + PLAN_ID_LEN + 1 &&
               id[4 + PLAN_ID_LEN] == '-') {
        memcpy(dev, id + 4, PLAN_ID_LEN);
        dev[PLAN_ID_LEN] = '\0';
        seq = strtoull(id + 5 + PLAN_ID_LEN, &end, 10);
        if (*end != '\0')
            return CMC_OK;
        rc = hub_db_prepare(h, "SELECT plan_id, identifier FROM audit WHERE seq = ?1 AND device_id = ?2",
                            &st);
        if (rc == CMC_OK)
            sqlite3_bind_text(st, 2, dev, -1, SQLITE_TRANSIENT);
    } else
        return CMC_OK;
    if (rc != CMC_OK) /* fhir_audit exists: the client's token was checked against its tables */
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *plan = hub_col_text(st, 0), *ident = hub_col_text(st, 1);
        ref = plan[0] != '\0' ? plan : ident;
        if (hub_plan_info(h, ref, &info) == CMC_OK)
            snprintf(nhs, PLAN_NHS_LEN + 1, "%s", info.nhs_number);
        else if (plan_nhs_normalise(ident, nhs) != CMC_OK)
            nhs[0] = '\0';
        cmc_err_clear();
    }
    sqlite3_finalize(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "audit read");
}

int hub_fhir_audit_search(hub *h, const struct hub_fhir_client *c, const char *nhs, long count,
                          long offset, json_t *bundle, int *more)
{
    json_t *events = NULL, *ev;
    size_t i;
    int rc;
    *more = 0;
    if ((rc = list_events(h, nhs, &events)) != CMC_OK)
        return rc;
    json_array_foreach(events, i, ev) {
        if ((long)i < offset)
            continue;
        if ((long)i >= offset + count) {
            *more = 1;
            break;
        }
        json_array_append_new(json_object_get(bundle, "entry"),
                              json_pack("{s:O, s:{s:s}}", "resource", ev, "search", "mode", "match"));
    }
    json_object_set_new(bundle, "total", json_integer((json_int_t)json_array_size(events)));
    json_decref(events);
    /* reading who looked is itself a look at the patient's record */
    return hub_fhir_audit_add(h, c->client_id, c->name, "", nhs, "FHIR search AuditEvent");
}

int hub_fhir_audit_read(hub *h, const struct hub_fhir_client *c, const char *id, json_t **out)
{
    char nhs[PLAN_NHS_LEN + 1];
    json_t *events = NULL, *ev;
    size_t i;
    int rc;
    *out = NULL;
    if ((rc = event_patient(h, id, nhs)) != CMC_OK)
        return rc;
    if (nhs[0] == '\0')
        return cmc_fail(CMC_ERR_NOT_FOUND, "no such resource");
    if ((rc = list_events(h, nhs, &events)) != CMC_OK)
        return rc;
    json_array_foreach(events, i, ev)
        if (strcmp(json_string_value(json_object_get(ev, "id")), id) == 0) {
            *out = json_incref(ev);
            break;
        }
    json_decref(events);
    if (*out == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no such resource");
    if ((rc = hub_fhir_audit_add(h, c->client_id, c->name, "", nhs, "FHIR read AuditEvent")) != CMC_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
