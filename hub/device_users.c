/*
 * device_users.c - the users of each device and their signing keys (contract in
 * device_users.h).
 */
#include "hub/device_users.h"

#include "hub/internal.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <string.h>

const char hub_schema_device_users[] =
    "CREATE TABLE IF NOT EXISTS device_users(device_id TEXT NOT NULL, user TEXT NOT NULL,"
    " role TEXT NOT NULL, pk BLOB NOT NULL, registered_at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, user));";

static int user_ok(const struct wire_user *u)
{
    size_t len = strnlen(u->user, CRY_USER_MAX + 1);
    if (len == 0 || len > CRY_USER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u->user[i] < 0x20 || u->user[i] == 0x7f)
            return 0;
    return strcmp(u->role, "urgent_care") == 0 || strcmp(u->role, "clinician") == 0;
}

int hub_device_users_set(hub *h, const char *device_id, const struct wire_user *v, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (n > WIRE_USERS_MAX)
        return cmc_fail(CMC_ERR_INVALID, "users: at most %d", WIRE_USERS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!user_ok(&v[i]))
            return cmc_fail(CMC_ERR_INVALID, "users: entry %zu: a name of 1 to %d printable bytes and "
                                             "the role urgent_care or clinician", i, CRY_USER_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i].user, v[j].user) == 0)
                return cmc_fail(CMC_ERR_INVALID, "users: entry %zu names a user twice", i);
    }
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_run(h, "device users", "DELETE FROM device_users WHERE device_id = ?1",
                         HUB_ARGS(HUB_TEXT(device_id)))) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, "INSERT INTO device_users(device_id, user, role, pk, registered_at)"
                                " VALUES(?1, ?2, ?3, ?4, ?5)", &st)) != CMC_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = hub_db_again(h, st, "device users",
                               HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(v[i].user),
                                        HUB_TEXT(v[i].role), HUB_BLOB(v[i].pk, CRY_SIGN_PK_BYTES),
                                        HUB_INT(plat_wall_now())))) != CMC_OK)
            goto out;
out:
    sqlite3_finalize(st);
    return hub_tx_end(h, rc);
}

int hub_device_user_key(hub *h, const char *device_id, const char *user,
                        char role[CRY_ROLE_MAX + 1], uint8_t pk[CRY_SIGN_PK_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "device users", &st,
                        "SELECT role, pk FROM device_users WHERE device_id = ?1 AND user = ?2",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(user)));
    if (rc == CMC_OK && st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "that user is not registered for this device");
    if (st != NULL) {
        const unsigned char *r = sqlite3_column_text(st, 0);
        const void *k = sqlite3_column_blob(st, 1);
        if (r == NULL || k == NULL || sqlite3_column_bytes(st, 1) != CRY_SIGN_PK_BYTES ||
            strlen((const char *)r) > CRY_ROLE_MAX) {
            rc = cmc_fail(CMC_ERR_CORRUPT, "device users: a malformed row");
        } else {
            memcpy(role, r, strlen((const char *)r) + 1);
            memcpy(pk, k, CRY_SIGN_PK_BYTES);
        }
    }
    sqlite3_finalize(st);
    return rc;
}
