/*
 * admin.h - what the hub's operator names things by: devices by name or id, and the scopes
 * (regions, teams, care homes) the hub holds plans for.
 *
 * Device names are unique among devices still in service (pending or active): `device add`
 * checks hub_device_name_free first; a name is free again once its device is revoked or has
 * confirmed its wipe. hub_device_resolve takes
 * what an operator types (a name or a device id) and gives the device id every other hub_
 * function takes.
 *
 * A scope is "known" when it is "all", or names a region or care home of some plan, or a
 * team of some plan or caseload: a device given any other scope would hold nothing.
 *
 * Errors: CMC_ERR_NOT_FOUND "no device NAME" for an unknown device; SQLite errors translated
 * as in hub.h. Thread-safety as for the hub handle.
 */
#ifndef CMC_HUB_ADMIN_H
#define CMC_HUB_ADMIN_H

#include "hub/hub.h"

#include <stdint.h>

/* The device id for a device id or name. A name in service wins; otherwise the newest
 * device of that name (so a revoked device can still be found, e.g. to read its state). */
int hub_device_resolve(hub *h, const char *ref, char device_id[PLAN_ID_LEN + 1]);
/* CMC_ERR_EXISTS when a pending or active device already has this name. */
int hub_device_name_free(hub *h, const char *name);

struct hub_scope_info {
    const char *scope; /* "region:R", "team:T", "care_home:H" */
    int64_t plans;     /* plans (consent not withdrawn) this scope covers */
    int64_t devices;   /* devices in service with this scope */
};
/* Every scope the hub knows, regions then teams then care homes, each sorted by name. */
int hub_scope_list(hub *h, int (*cb)(const struct hub_scope_info *, void *), void *ctx);
/* *known = 1 when the scope is "all" or one hub_scope_list would list. CMC_ERR_USAGE for a
 * scope that does not parse. */
int hub_scope_known(hub *h, const char *scope, int *known);

#endif
