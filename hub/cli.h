/*
 * cli.h - what the `cmc-hub` command files share (hub/main.c and hub/cmd_*.c): the parsed
 * command line, option helpers, JSON output, per-command help and the "did you mean" check.
 *
 * A command is one row of a table (struct hub_cli_cmd): its name, its sub-commands (checked
 * before the hub is opened, so `plan lst` is answered "unknown command 'lst' — did you mean
 * 'list'?" with exit 2), its help text (`cmc-hub COMMAND --help`) and the function that runs
 * it. Command files add rows to hub/main.c's table; nothing else needs to change.
 *
 * Memory: argv strings belong to the process; nothing here allocates what the caller frees.
 * Errors: cmc_err with a one-line detail (cmc_fail); no patient data in any message.
 */
#ifndef CMC_HUB_CLI_H
#define CMC_HUB_CLI_H

#include "hub/hub.h"

#include <jansson.h>
#include <stdio.h>

#define HUB_CLI_MAX_ARGS 64

struct hub_cli {
    const char *dir;
    int json;
    int argc;
    const char *argv[HUB_CLI_MAX_ARGS];
    const struct hub_config *config; /* the settings file (never NULL once main has run) */
};

struct hub_cli_cmd {
    const char *name;
    const char *const *subs; /* NULL-terminated sub-command names, or NULL */
    const char *help;        /* `cmc-hub NAME --help` */
    int needs_hub;           /* 0: run without opening the store (h is NULL) */
    int (*run)(struct hub_cli *c, hub *h);
};

/* Removes "--name VALUE" from the arguments; NULL when absent (*err set if it has no value). */
const char *hub_cli_take_opt(struct hub_cli *c, const char *name, int *err);
/* Removes a "--name" flag; 1 when it was there. */
int hub_cli_take_flag(struct hub_cli *c, const char *name);
/* Exactly n positional arguments after the command words, and no unknown options. */
int hub_cli_want_args(const struct hub_cli *c, int n, const char *usage);
/* Prints j (2-space indent) and releases it; NULL prints nothing. */
void hub_cli_print_json(json_t *j);
/* Ends a command that fills a --json array (NULL without --json): prints it when the
 * command succeeded (rc CMC_OK), releases it either way, and returns rc. */
int hub_cli_print_list(int rc, json_t *arr);

/* The candidate closest to `word` by edit distance, or NULL when none is close enough to be
 * what was meant (at most 2 edits, or a third of the word for longer words). */
const char *hub_cli_closest(const char *word, const char *const *candidates, size_t n);
/* CMC_ERR_USAGE "unknown command 'WORD' — did you mean 'X'?" (or "(see cmc-hub --help)"). */
int hub_cli_unknown(const char *what, const char *word, const char *const *candidates, size_t n);

/* The program's version and those of the libraries it runs on, one per line. */
void hub_cli_print_version(FILE *f);

/* Command rows defined in hub/cmd_*.c. */
extern const struct hub_cli_cmd hub_cmd_device, hub_cmd_scope, hub_cmd_serve, hub_cmd_tls,
    hub_cmd_plan, hub_cmd_user, hub_cmd_caseload, hub_cmd_audit, hub_cmd_key, hub_cmd_init,
    hub_cmd_seed, hub_cmd_client, hub_cmd_backup, hub_cmd_restore;

#endif
