/*
 * replica_sql - test tool: runs one SQL statement inside a device's replica, as an attacker
 * who has the key would (the PIN from CMC_PIN, the user from CMC_USER or the only slot).
 * Tests use it to alter an audit entry or slip a row past the store's own code; rows a
 * statement returns are printed one a line, columns separated by '|'.
 *
 *   replica_sql DIR "SQL"     exit 0 if the statement ran, 2 otherwise
 */
#include "tests/tools/tool_slots.h"

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
    struct tool_slots t;
    int rc = tool_start(argc, argv, 3, "replica_sql DIR SQL", 1, &t);
    char *err = NULL;
    if (rc == CMC_OK && sqlite3_exec(t.db, argv[2], print_row, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "replica_sql: %s\n", err ? err : "error");
        rc = CMC_ERR_DB;
    }
    sqlite3_free(err);
    if (rc != CMC_OK)
        fprintf(stderr, "replica_sql: %s\n", cmc_errmsg());
    tool_slots_free(&t);
    return rc == CMC_OK ? 0 : 2;
}
