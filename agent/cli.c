/* cli.c - the command line's options, its command table and cli_main. The commands live
 * by concept in cli_user.c, cli_read.c, cli_edit.c and cli_sync.c; unlocking in
 * cli_unlock.c. */
#include "agent/cli.h"
#include "agent/cli_app.h"

#include "agent/cli_help.h"
#include "agent/web.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/plan.h"
#include "sync/text.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options --------------------------------------------------------------------------- */

struct opt_spec {
    const char *name;
    size_t offset; /* of the const char * in cli_opts, or of the int flag */
    int is_flag;
};

#define OPT_STR(n, field) { n, offsetof(struct cli_opts, field), 0 }
#define OPT_FLAG(n, field) { n, offsetof(struct cli_opts, field), 1 }

static const struct opt_spec opt_specs[] = {
    OPT_STR("--dir", dir),           OPT_STR("--user", user),       OPT_STR("--pin-file", pin_file),
    OPT_STR("--new-pin-file", new_pin_file),
    OPT_STR("--role", role),         OPT_STR("--name", name),       OPT_STR("--dob", dob),
    OPT_STR("--postcode", postcode), OPT_STR("--hub", hub),         OPT_STR("--code", code),
    OPT_STR("--ca", ca),             OPT_STR("--file", file),       OPT_STR("--keep", keep),
    OPT_STR("--break-glass", break_glass),
    OPT_STR("--listen", listen),     OPT_FLAG("--json", json),      OPT_FLAG("--watch", watch),
    OPT_FLAG("--verify", verify),    OPT_FLAG("--help", help),      OPT_FLAG("-h", help),
    OPT_FLAG("--tpm", tpm),
};

static int parse_args(int argc, char **argv, struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (o->command == NULL)
                o->command = a;
            else if (o->n_positional < CLI_MAX_POSITIONAL)
                o->positional[o->n_positional++] = a;
            else
                return cmc_fail(CMC_ERR_USAGE, "too many arguments");
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const struct opt_spec *spec = NULL;
        for (size_t k = 0; k < sizeof opt_specs / sizeof opt_specs[0]; k++)
            if (strlen(opt_specs[k].name) == name_len && strncmp(opt_specs[k].name, a, name_len) == 0)
                spec = &opt_specs[k];
        if (spec == NULL)
            return cmc_fail(CMC_ERR_USAGE, "unknown option %.*s (see cmc-agent --help)", (int)name_len, a);
        if (spec->is_flag) {
            if (eq != NULL)
                return cmc_fail(CMC_ERR_USAGE, "%s takes no value", spec->name);
            *(int *)((char *)o + spec->offset) = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL)
            return cmc_fail(CMC_ERR_USAGE, "%s needs a value", spec->name);
        *(const char **)((char *)o + spec->offset) = value;
    }
    return CMC_OK;
}

static int resolve_paths(struct cli_opts *o)
{
    const char *dir = o->dir ? o->dir : getenv("CMC_AGENT_DIR");
    if (dir == NULL || dir[0] == '\0') {
        const char *xdg = getenv("XDG_DATA_HOME");
        const char *home = getenv("HOME");
        int n;
        if (xdg != NULL && xdg[0] != '\0')
            n = snprintf(o->dir_buf, sizeof o->dir_buf, "%s/cmc-agent", xdg);
        else if (home != NULL && home[0] != '\0')
            n = snprintf(o->dir_buf, sizeof o->dir_buf, "%s/.local/share/cmc-agent", home);
        else
            return cmc_fail(CMC_ERR_USAGE, "no data directory: give --dir or set CMC_AGENT_DIR");
        if (n < 0 || (size_t)n >= sizeof o->dir_buf)
            return cmc_fail(CMC_ERR_USAGE, "data directory path too long");
        dir = o->dir_buf;
    }
    o->dir = dir;
    if (o->user == NULL)
        o->user = getenv("CMC_USER");
    int rc;
    if ((rc = plat_path_join(o->slots_path, sizeof o->slots_path, dir, "keyslots")) != CMC_OK ||
        (rc = plat_path_join(o->replica_path, sizeof o->replica_path, dir, "replica.db")) != CMC_OK ||
        (rc = plat_path_join(o->lock_path, sizeof o->lock_path, dir, "lock")) != CMC_OK)
        return rc;
    return CMC_OK;
}

int cli_print_json(json_t *doc)
{
    if (doc == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory building the JSON output");
    /* Through text_put_json: bidirectional and invisible characters a replica may hold reach
     * a terminal as \u escapes (sync/text.h). */
    const size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER;
    size_t len = json_dumpb(doc, NULL, 0, flags);
    char *out = len > 0 ? cmc_malloc(len) : NULL;
    if (out == NULL || json_dumpb(doc, out, len, flags) != len) {
        json_decref(doc);
        cmc_free(out);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory writing the JSON output");
    }
    json_decref(doc);
    int rc = text_put_json(stdout, out, len) >= len ? CMC_OK : CMC_ERR_IO; /* escapes only add bytes */
    fputc('\n', stdout);
    cry_memzero(out, len);
    cmc_free(out);
    return rc;
}

int cli_need_args(const struct cli_opts *o, size_t n, int options_given, const char *usage)
{
    if (o->n_positional != n || !options_given)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent %s", usage);
    return CMC_OK;
}

int cli_need_plan(const struct cli_opts *o, size_t n, int options_given, const char *usage, char *nhs,
                  const char **key)
{
    int rc = cli_need_args(o, n, options_given, usage);
    return rc != CMC_OK ? rc : cli_plan_key(o->positional[0], nhs, key);
}

int cli_plan_key(const char *arg, char *nhs, const char **key)
{
    *key = arg;
    if (strlen(arg) == PLAN_ID_LEN)
        return CMC_OK;
    int rc = plan_nhs_normalise(arg, nhs);
    if (rc == CMC_OK)
        *key = nhs;
    return rc;
}

static int cmd_serve(struct cli_opts *o)
{
    if (o->listen == NULL || o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent serve --listen 127.0.0.1:PORT");
    struct web_serve_opts w = { .listen = o->listen, .dir = o->dir, .slots_path = o->slots_path,
                                .replica_path = o->replica_path };
    return web_serve(&w);
}

static void usage(FILE *f)
{
    fputs("usage: cmc-agent COMMAND [options]\n"
          "\n"
          "Commands:\n"
          "  init --user NAME --role urgent_care|clinician   create the encrypted replica\n"
          "  user add NAME --role R | user remove NAME | user list\n"
          "  lookup NHS_NUMBER [--break-glass REASON]   the summary card, or \"no plan on this device\";\n"
          "                             on a locked copy, one card with a typed reason (audited)\n"
          "  search [--name N] [--dob YYYY-MM-DD] [--postcode P]   identity candidates\n"
          "  show PLAN                  the whole plan visible to you (plan id or NHS number)\n"
          "  list                       plans visible to you\n"
          "  status                     hub, last sync and its age, cursor, counts\n"
          "  edit PLAN --file CHANGES.json   an offline edit (clinicians), kept until pushed\n"
          "  verify                     full integrity check of the replica\n"
          "  enroll --hub URL --code CODE [--ca FILE] [--name DEVICE]   register with the hub, pin its keys\n"
          "  sync [--watch]             pull, apply, push pending edits; --watch keeps going\n"
          "  conflicts                  edits held because the hub's version changed the same field\n"
          "  resolve PLAN FIELD --keep local|remote   settle one conflict\n"
          "  serve --listen 127.0.0.1:PORT   the crew's web page on this device (loopback only)\n"
          "  audit [--verify]           this device's view log; --verify checks its hash chain\n"
          "  app add NAME | list | remove NAME   apps on this device that read serve's FHIR endpoint\n"
          "\n"
          "Options:\n"
          "  --dir DIR        data directory (default $CMC_AGENT_DIR, else ~/.local/share/cmc-agent)\n"
          "  --user NAME      who is acting (or CMC_USER); not needed when the device has one user\n"
          "  --pin-file FILE  read the PIN from FILE (else CMC_PIN, else a no-echo prompt);\n"
          "                   CMC_PIN is weaker: other processes of yours can read it\n"
          "  --new-pin-file FILE   the new user's PIN for 'user add' (else CMC_NEW_PIN or a prompt)\n"
          "  --json           one JSON document on stdout\n"
          "\n"
          "Exit status: 0 ok, 1 runtime error, 2 bad usage or input, 3 not found, 4 locked\n"
          "(wrong PIN, unknown user, too many attempts, wiped).\n",
          f);
}

struct command {
    const char *name;
    int (*run)(struct cli_opts *o);
};

/* The dispatcher: one row per command, looked up by name. */
static const struct command commands[] = {
    { "init", cli_cmd_init },
    { "user", cli_cmd_user },
    { "lookup", cli_cmd_lookup },
    { "search", cli_cmd_search },
    { "show", cli_cmd_show },
    { "list", cli_cmd_list },
    { "status", cli_cmd_status },
    { "verify", cli_cmd_verify },
    { "edit", cli_cmd_edit },
    { "enroll", cli_cmd_enroll },
    { "sync", cli_cmd_sync },
    { "conflicts", cli_cmd_conflicts },
    { "resolve", cli_cmd_resolve },
    { "serve", cmd_serve },
    { "audit", cli_cmd_audit },
    { "app", cli_app },
};

int cli_main(int argc, char **argv)
{
    struct cli_opts o;
    int rc, help_exit;
    if (cli_help_intercept(argc, argv, &help_exit))
        return help_exit;
    rc = parse_args(argc, argv, &o);
    if (rc == CMC_OK && (o.help || o.command == NULL || strcmp(o.command, "help") == 0)) {
        usage(o.command == NULL && !o.help ? stderr : stdout);
        return o.command == NULL && !o.help ? 2 : 0;
    }
    if (rc == CMC_OK)
        rc = cry_init();
    if (rc == CMC_OK)
        rc = plat_harden_process();
    if (rc == CMC_OK)
        rc = resolve_paths(&o);
    if (rc == CMC_OK) {
        const struct command *cmd = NULL;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(commands[i].name, o.command) == 0)
                cmd = &commands[i];
        if (cmd == NULL)
            rc = cmc_fail(CMC_ERR_USAGE, "unknown command '%s' (see cmc-agent --help)", o.command);
        else
            rc = cmd->run(&o);
    }
    fflush(stdout);
    if (rc != CMC_OK && !(rc == CMC_ERR_NOT_FOUND && o.json))
        fprintf(stderr, "cmc-agent: %s\n", cmc_errmsg());
    return cmc_exit_code(rc);
}
