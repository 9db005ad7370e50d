/*
 * scopes.c - device names and the scopes the hub knows (hub/admin.h).
 */
#include "hub/admin.h"
#include "hub/internal.h"

#include "platform/err.h"

#include <stdio.h>
#include <string.h>

int hub_device_resolve(hub *h, const char *ref, char device_id[PLAN_ID_LEN + 1])
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (ref == NULL || ref[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "DEVICE: a device name or id");
    /* An id first, then a name: in service before out of it, newest first. */
    rc = hub_db_row(h, "device", &st,
                    "SELECT device_id FROM devices WHERE device_id = ?1"
                    " UNION ALL SELECT device_id FROM (SELECT device_id FROM devices"
                    " WHERE name = ?1 ORDER BY state IN ('pending', 'active') DESC,"
                    " created DESC, rowid DESC) LIMIT 1",
                    HUB_ARGS(HUB_TEXT(ref)));
    if (rc != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no device %.64s (see cmc-hub device list)", ref);
    hub_col_copy(st, 0, device_id, PLAN_ID_LEN + 1);
    sqlite3_finalize(st);
    return rc;
}

int hub_device_name_free(hub *h, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "device name", &st,
                        "SELECT device_id FROM devices WHERE name = ?1 AND state IN"
                        " ('pending', 'active') LIMIT 1",
                        HUB_ARGS(HUB_TEXT(name)));
    if (st != NULL)
        rc = cmc_fail(CMC_ERR_EXISTS, "a device named %s is already in service (%s): revoke it or"
                                      " choose another name", name, hub_col_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

/* kind, name, plans, devices: one row per scope the hub knows. */
static const char hub_scope_sql[] =
    "WITH live AS (SELECT * FROM plans WHERE withdrawn = 0),"
    " names(kind, ord, name) AS ("
    "  SELECT DISTINCT 'region', 1, region FROM plans WHERE region IS NOT NULL AND region <> ''"
    "  UNION SELECT DISTINCT 'team', 2, team FROM plans WHERE team IS NOT NULL AND team <> ''"
    "  UNION SELECT DISTINCT 'team', 2, team FROM caseload"
    "  UNION SELECT DISTINCT 'care_home', 3, care_home FROM plans"
    "   WHERE care_home IS NOT NULL AND care_home <> '')"
    " SELECT n.kind || ':' || n.name,"
    "  CASE n.kind WHEN 'region' THEN (SELECT COUNT(*) FROM live p WHERE p.region = n.name)"
    "   WHEN 'care_home' THEN (SELECT COUNT(*) FROM live p WHERE p.care_home = n.name)"
    "   ELSE (SELECT COUNT(*) FROM live p WHERE p.team = n.name OR p.nhs IN"
    "    (SELECT c.nhs FROM caseload c WHERE c.team = n.name)) END,"
    "  (SELECT COUNT(*) FROM devices d WHERE d.scope = n.kind || ':' || n.name"
    "   AND d.state IN ('pending', 'active'))"
    " FROM names n";

int hub_scope_list(hub *h, int (*cb)(const struct hub_scope_info *, void *), void *ctx)
{
    char sql[sizeof hub_scope_sql + 64];
    struct hub_scope_info si;
    struct hub_rows r;
    snprintf(sql, sizeof sql, "%s ORDER BY n.ord, n.name", hub_scope_sql);
    hub_rows_open(h, &r, "scope list", sql, NULL, 0);
    while (hub_rows_next(&r)) {
        si.scope = hub_col_text(r.st, 0);
        si.plans = sqlite3_column_int64(r.st, 1);
        si.devices = sqlite3_column_int64(r.st, 2);
        r.rc = cb(&si, ctx);
    }
    return hub_rows_end(&r);
}

int hub_scope_known(hub *h, const char *scope, int *known)
{
    char kind[16];
    const char *value;
    sqlite3_stmt *st = NULL;
    int rc;
    *known = 0;
    if ((rc = hub_scope_parse(scope, kind, &value)) != CMC_OK)
        return rc;
    if (strcmp(kind, "all") == 0) {
        *known = 1;
        return CMC_OK;
    }
    rc = hub_db_row(h, "scope", &st,
                    strcmp(kind, "region") == 0 ? "SELECT 1 FROM plans WHERE region = ?1 LIMIT 1"
                    : strcmp(kind, "care_home") == 0
                        ? "SELECT 1 FROM plans WHERE care_home = ?1 LIMIT 1"
                        : "SELECT 1 FROM plans WHERE team = ?1"
                          " UNION ALL SELECT 1 FROM caseload WHERE team = ?1 LIMIT 1",
                    HUB_ARGS(HUB_TEXT(value)));
    *known = st != NULL;
    sqlite3_finalize(st);
    return rc;
}
