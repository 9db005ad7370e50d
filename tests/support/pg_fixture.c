/* pg_fixture.c - see pg_fixture.h. */
#include "tests/support/pg_fixture.h"

#include "hub/hub.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tst_hub_store_pg(void)
{
    const char *url = getenv("CMC_TEST_HUB_DB");
    return url != NULL && url[0] != '\0';
}

void tst_hub_store_fresh(void)
{
    static char url[1024];
    static unsigned n;
    const char *base = getenv("CMC_TEST_HUB_DB");
    char schema[64], sql[128];
    PGconn *c;
    PGresult *res;

    if (!tst_hub_store_pg()) {
        hub_use_db(NULL);
        return;
    }
    snprintf(schema, sizeof schema, "t%ld_%u", (long)getpid(), n++);
    c = PQconnectdb(base);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("CMC_TEST_HUB_DB: cannot connect: %s", PQerrorMessage(c));
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("CMC_TEST_HUB_DB: %s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    snprintf(url, sizeof url, "%s%coptions=-csearch_path%%3D%s", base,
             strchr(base, '?') != NULL ? '&' : '?', schema);
    hub_use_db(url);
}

void tst_pg_exec(const char *sql)
{
    PGconn *c = PQconnectdb(getenv("CMC_TEST_HUB_DB"));
    PGresult *res;
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("CMC_TEST_HUB_DB: cannot connect: %s", PQerrorMessage(c));
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("CMC_TEST_HUB_DB: %s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}
