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
    int rc, src;
    if (ref == NULL || ref[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "DEVICE: a device name or id");
    /* An id first, then a name: in service before out of it, newest first. */
    rc = hub_db_prepare(h, "SELECT device_id FROM devices WHERE device_id = ?1"
                           " UNION ALL SELECT device_id FROM (SELECT device_id FROM devices"
                           " WHERE name = ?1 ORDER BY state IN ('pending', 'active') DESC,"
                           " created DESC, rowid DESC) LIMIT 1",
                        &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        hub_col_copy(st, 0, device_id, PLAN_ID_LEN + 1);
    rc = src == SQLITE_ROW    ? CMC_OK
         : src == SQLITE_DONE ? cmc_fail(CMC_ERR_NOT_FOUND, "no device %.64s (see cmc-hub device"
                                                            " list)", ref)
                              : hub_db_fail(h, src, "device");
    sqlite3_finalize(st);
    return rc;
}

int hub_device_name_free(hub *h, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, "SELECT device_id FROM devices WHERE name = ?1 AND state IN"
                               " ('pending', 'active') LIMIT 1", &st);
    int src;
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_DONE  ? CMC_OK
         : src == SQLITE_ROW ? cmc_fail(CMC_ERR_EXISTS, "a device named %s is already in service"
                                                        " (%s): revoke it or choose another name",
                                        name, hub_col_text(st, 0))
                             : hub_db_fail(h, src, "device name");
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
    sqlite3_stmt *st = NULL;
    struct hub_scope_info si;
    int rc, src;
    char sql[sizeof hub_scope_sql + 64];
    snprintf(sql, sizeof sql, "%s ORDER BY n.ord, n.name", hub_scope_sql);
    if ((rc = hub_db_prepare(h, sql, &st)) != CMC_OK)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        si.scope = hub_col_text(st, 0);
        si.plans = sqlite3_column_int64(st, 1);
        si.devices = sqlite3_column_int64(st, 2);
        if ((rc = cb(&si, ctx)) != 0)
            goto out;
    }
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "scope list");
out:
    sqlite3_finalize(st);
    return rc;
}

int hub_scope_known(hub *h, const char *scope, int *known)
{
    char kind[16];
    const char *value;
    sqlite3_stmt *st = NULL;
    int rc, src;
    *known = 0;
    if ((rc = hub_scope_parse(scope, kind, &value)) != CMC_OK)
        return rc;
    if (strcmp(kind, "all") == 0) {
        *known = 1;
        return CMC_OK;
    }
    rc = hub_db_prepare(h, strcmp(kind, "region") == 0
                               ? "SELECT 1 FROM plans WHERE region = ?1 LIMIT 1"
                           : strcmp(kind, "care_home") == 0
                               ? "SELECT 1 FROM plans WHERE care_home = ?1 LIMIT 1"
                               : "SELECT 1 FROM plans WHERE team = ?1"
                                 " UNION ALL SELECT 1 FROM caseload WHERE team = ?1 LIMIT 1",
                        &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    *known = src == SQLITE_ROW;
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "scope");
    sqlite3_finalize(st);
    return rc;
}
