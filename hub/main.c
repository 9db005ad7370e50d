/*
 * main.c - the `cmc-hub` command line (shared/CLI.md): global options, the table of
 * commands, per-command help, and error-to-exit-code mapping. The commands themselves live
 * in hub/cmd_*.c (one row each in `commands` below; see hub/cli.h).
 */
#include "hub/cli.h"
#include "hub/clinical.h"
#include "hub/config.h"
#include "hub/hstore.h"

#include "platform/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: cmc-hub [--dir DIR] [--db URL] [--config FILE] [--json] COMMAND ...\n"
    "       cmc-hub COMMAND --help     options and environment of one command\n"
    "       cmc-hub --version          version, and the versions of its libraries\n"
    "\n"
    "  init                                    create the hub store and its signing key\n"
    "  serve [--listen HOST:PORT] [--tls-cert F --tls-key F] [--metrics-listen HOST:PORT]\n"
    "                                          serve the sync API (HTTPS with a certificate)\n"
    "  seed --plans N [--seed S]               add N synthetic London plans (same seed, same plans)\n"
    "  user add NAME --role gp|clinician|admin|patient\n"
    "  plan import|edit|submit|approve|withdraw-consent|list|show|history ...\n"
    "  caseload add TEAM NHS_NUMBER / caseload remove TEAM NHS_NUMBER\n"
    "  device add NAME --scope all|region:R|team:T|care_home:H --role urgent_care|clinician\n"
    "                                          prints a one-time enrollment code on its last line\n"
    "  device list                             name, id, state, last seen, cursor, lease\n"
    "  device revoke DEVICE / device wipe DEVICE / device lease DEVICE DAYS|default\n"
    "  scope list                              regions, teams and care homes, with plan counts\n"
    "  tls rotate --next-key FILE / tls status change the TLS key without re-enrolling devices\n"
    "  audit PLAN                              who viewed that patient's plan, where, when\n"
    "  audit --break-glass                     every view of a lease-locked copy, and why\n"
    "  plan export PLAN --format fhir --as USER / plan import FILE --format fhir --as USER\n"
    "  client add NAME --scope S / client list / client revoke NAME   FHIR client systems\n"
    "  key                                     the hub's public signing key (hex)\n"
    "  backup FILE / restore FILE / restore report   copy the store, put a copy back, and\n"
    "                                          list devices that had seen changes it lost\n"
    "\n"
    "PLAN is a plan id or an NHS number; DEVICE is a device name or id. The state directory\n"
    "is --dir, else $CMC_HUB_DIR, else `dir` in the settings file (--config, else\n"
    "$CMC_HUB_CONFIG, else /etc/cmc/hub.conf when present), else $XDG_DATA_HOME/cmc-hub\n"
    "(~/.local/share/cmc-hub). $CMC_LOG (error, warn, info, debug) sets what is logged.\n"
    "The store is the SQLCipher file in DIR unless --db (else $CMC_HUB_DB) names a\n"
    "PostgreSQL database, postgresql://USER@HOST:PORT/DB; DIR then keeps the key file that\n"
    "seals the hub's secrets there. A password goes in ~/.pgpass or $PGPASSWORD, never\n"
    "on the command line. Global options may come before or after the command.\n"
    "Exit codes: 0 ok, 1 runtime error, 2 bad usage or input, 3 not found, 4 locked.\n"
    "See cmc-hub(8).\n";

static const struct hub_cli_cmd *const commands[] = {
    &hub_cmd_init, &hub_cmd_serve, &hub_cmd_seed,  &hub_cmd_user, &hub_cmd_plan,
    &hub_cmd_caseload, &hub_cmd_device, &hub_cmd_scope, &hub_cmd_tls, &hub_cmd_audit,
    &hub_cmd_key, &hub_cmd_client, &hub_cmd_backup, &hub_cmd_restore,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct hub_cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = commands[i]->name;
    return hub_cli_unknown("command", name, names, N_COMMANDS);
}

/* A command with sub-commands: the first argument must be one of them. */
static int check_sub(const struct hub_cli_cmd *cmd, const struct hub_cli *c)
{
    size_t n = 0;
    if (cmd->subs == NULL || c->argc < 1 || strncmp(c->argv[0], "--", 2) == 0)
        return CMC_OK;
    for (; cmd->subs[n] != NULL; n++)
        if (strcmp(cmd->subs[n], c->argv[0]) == 0)
            return CMC_OK;
    return hub_cli_unknown("command", c->argv[0], cmd->subs, n);
}

static const char *default_dir(const struct hub_config *cfg, char *buf, size_t cap)
{
    const char *env = getenv("CMC_HUB_DIR");
    if (env != NULL && env[0] != '\0')
        return env;
    if (cfg->dir[0] != '\0')
        return cfg->dir;
    env = getenv("XDG_DATA_HOME");
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, cap, "%s/cmc-hub", env);
        return buf;
    }
    env = getenv("HOME");
    snprintf(buf, cap, "%s/.local/share/cmc-hub", env != NULL ? env : ".");
    return buf;
}

/* --db URL: a PostgreSQL URL without a password (command lines are visible to every user
 * of the machine). 0: taken (hub_use_db); 1: refused, *exit_code set. */
static int check_db_url(const char *url, int *exit_code)
{
    const char *at = strchr(url, '@'), *colon = strchr(url, ':');
    const char *creds = colon != NULL ? strstr(url, "://") : NULL;
    if (!hst_is_pg_url(url)) {
        fprintf(stderr, "cmc-hub: --db: not a postgresql://USER@HOST:PORT/DB URL\n");
        *exit_code = 2;
        return 1;
    }
    if (creds != NULL && at != NULL && memchr(creds + 3, ':', (size_t)(at - creds - 3)) != NULL) {
        fprintf(stderr, "cmc-hub: --db: put the password in ~/.pgpass or $PGPASSWORD, not on"
                        " the command line\n");
        *exit_code = 2;
        return 1;
    }
    if (strstr(url, "password=") != NULL) {
        fprintf(stderr, "cmc-hub: --db: put the password in ~/.pgpass or $PGPASSWORD, not on"
                        " the command line\n");
        *exit_code = 2;
        return 1;
    }
    hub_use_db(url);
    return 0;
}

/* 0: go on; 1: done, *exit_code set (help, version, or a usage error). */
static int parse_global(int argc, char **argv, struct hub_cli *c, const char **cmd,
                        const char **config, int *help, int *exit_code)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            c->json = 1;
        } else if ((strcmp(a, "--dir") == 0 || strcmp(a, "--config") == 0 ||
                    strcmp(a, "--db") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cmc-hub: %s needs a value\n", a);
                *exit_code = 2;
                return 1;
            }
            if (strcmp(a, "--dir") == 0)
                c->dir = argv[++i];
            else if (strcmp(a, "--db") == 0 && check_db_url(argv[++i], exit_code))
                return 1;
            else if (strcmp(a, "--config") == 0)
                *config = argv[++i];
        } else if (*cmd == NULL && strcmp(a, "--version") == 0) {
            hub_cli_print_version(stdout);
            *exit_code = 0;
            return 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
        } else if (*cmd == NULL) {
            *cmd = a;
        } else if (c->argc < HUB_CLI_MAX_ARGS) {
            c->argv[c->argc++] = a;
        } else {
            fprintf(stderr, "cmc-hub: too many arguments\n");
            *exit_code = 2;
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct hub_config cfg;
    struct hub_cli c;
    char dirbuf[4096];
    const char *cmd_name = NULL, *config = NULL;
    const struct hub_cli_cmd *cmd;
    hub *h = NULL;
    int help = 0, exit_code = 0, rc = CMC_OK;

    memset(&c, 0, sizeof c);
    if (parse_global(argc, argv, &c, &cmd_name, &config, &help, &exit_code))
        return exit_code;
    if (cmd_name != NULL && strcmp(cmd_name, "help") == 0) {
        cmd_name = c.argc > 0 ? c.argv[0] : NULL;
        help = 1;
    }
    if (cmd_name == NULL) {
        fputs(usage_text, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if ((cmd = find_command(cmd_name)) == NULL) {
        rc = unknown_command(cmd_name);
        goto out;
    }
    if (help) {
        fputs(cmd->help, stdout);
        if (strcmp(cmd->name, "plan") == 0 || strcmp(cmd->name, "user") == 0)
            fputs(hub_clinical_usage, stdout);
        return 0;
    }
    if ((rc = check_sub(cmd, &c)) != CMC_OK)
        goto out;
    if ((rc = hub_config_load(config, &cfg)) != CMC_OK)
        goto out;
    c.config = &cfg;
    if (cfg.log[0] != '\0' && getenv("CMC_LOG") == NULL)
        setenv("CMC_LOG", cfg.log, 1);
    if (c.dir == NULL)
        c.dir = default_dir(&cfg, dirbuf, sizeof dirbuf);
    if (cmd->needs_hub && (rc = hub_open(c.dir, &h)) != CMC_OK)
        goto out;
    if (h != NULL && hub_clinical_dispatch(h, cmd->name, c.argc, c.argv, c.json, &rc))
        goto out; /* plan review, reinstate-consent, governed withdrawal, patient accounts */
    rc = cmd->run(&c, h);
out:
    hub_close(h);
    if (rc != CMC_OK) {
        if (c.json)
            hub_cli_print_json(
                json_pack("{s:s, s:s}", "error", cmc_errname(rc), "message", cmc_errmsg()));
        fprintf(stderr, "cmc-hub: %s\n", cmc_errmsg());
    }
    fflush(stdout);
    return cmc_exit_code(rc);
}
