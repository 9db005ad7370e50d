/*
 * replica_sql - test tool: runs one SQL statement inside a device's replica, as an attacker
 * who has the key would (the PIN from CMC_PIN, the user from CMC_USER or the only slot).
 * Tests use it to alter an audit entry or slip a row past the store's own code; rows a
 * statement returns are printed one a line, columns separated by '|'.
 *
 *   replica_sql DIR "SQL"     exit 0 if the statement ran, 2 otherwise
 */
#include "crypto/cry.h"
#include "platform/err.h"
#include "sync/db.h"

#include <stdio.h>
#include <stdlib.h>

static int print_row(void *ctx, int n, char **values, char **names)
{
    (void)ctx;
    (void)names;
    for (int i = 0; i < n; i++)
        printf("%s%s", i ? "|" : "", values[i] ? values[i] : "");
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: replica_sql DIR SQL\n");
        return 2;
    }
    const char *pin = getenv("CMC_PIN");
    if (pin == NULL || cry_init() != CMC_OK)
        return 2;
    char slots_path[4096], db_path[4096];
    snprintf(slots_path, sizeof slots_path, "%s/keyslots", argv[1]);
    snprintf(db_path, sizeof db_path, "%s/replica.db", argv[1]);
    cry_slots *slots = NULL;
    struct cry_secret *key = NULL;
    char role[CRY_ROLE_MAX + 1];
    const char *user = getenv("CMC_USER"), *r;
    sqlite3 *db = NULL;
    int rc = cry_slots_load(slots_path, &slots);
    if (rc == CMC_OK && user == NULL)
        rc = cry_slots_user(slots, 0, &user, &r);
    if (rc == CMC_OK)
        rc = cry_slots_unlock(slots, user, pin, &key, role);
    if (rc == CMC_OK)
        rc = db_open(db_path, key, &db);
    char *err = NULL;
    if (rc == CMC_OK && sqlite3_exec(db, argv[2], print_row, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "replica_sql: %s\n", err ? err : "error");
        rc = CMC_ERR_DB;
    }
    sqlite3_free(err);
    if (rc != CMC_OK)
        fprintf(stderr, "replica_sql: %s\n", cmc_errmsg());
    db_close(db);
    cry_secret_free(key);
    cry_slots_free(slots);
    return rc == CMC_OK ? 0 : 2;
}
