/*
 * cli_help.c - per-command help, --version and "did you mean" for `cmc-agent`.
 */
#include "agent/cli_help.h"

#include "sync/libversions.h"
#include "sync/words.h"

#include <string.h>

#ifndef CMC_VERSION
#define CMC_VERSION "unknown"
#endif

#define ENV_COMMON                                                                          \
    "Environment: CMC_AGENT_DIR (data directory, default ~/.local/share/cmc-agent),\n"      \
    "CMC_USER (who is acting), CMC_PIN (the PIN; weaker than --pin-file), CMC_LOG.\n"

#define TPM_HELP                                                                            \
    "--tpm: seal the new user's key slot to this machine's TPM 2.0 as well as the PIN: a\n"  \
    "copy of the slot file opens nowhere else, and the TPM's lockout limits wrong PINs.\n"  \
    "CMC_TPM_TCTI names the TPM (default device:/dev/tpmrm0).\n"

struct help_entry {
    const char *name;
    const char *text;
};

static const struct help_entry help_entries[] = {
    {"init", "usage: cmc-agent init --user NAME --role urgent_care|clinician [--pin-file FILE] [--tpm]\n\n"
             "Creates the encrypted replica and its first user.\n" TPM_HELP ENV_COMMON},
    {"user", "usage: cmc-agent user add NAME --role R [--new-pin-file FILE] [--tpm] | user remove NAME |"
             " user list\n\nThe people who may unlock this device. CMC_NEW_PIN: the new user's"
             " PIN.\n" TPM_HELP ENV_COMMON},
    {"lookup", "usage: cmc-agent lookup NHS_NUMBER [--break-glass REASON] [--json]\n\nThe summary"
               " card, or \"no plan on this device\" (exit 3). Every view is written to the\naudit"
               " log. Within CMC_LEASE_WARN_DAYS (default 2) of the offline lease running out, the"
               "\ncard says \"this copy locks in N days without a sync\".\n\n--break-glass REASON: on"
               " a copy whose lease has run out (exit 4), opens this one\npatient's card with your"
               " PIN and a typed reason (at least 8 characters, one line).\nThe card says how old"
               " the copy is; the view is audited as break_glass with the\nreason and reported to"
               " the hub at the next sync (cmc-hub audit --break-glass).\n" ENV_COMMON},
    {"search", "usage: cmc-agent search [--name N] [--dob YYYY-MM-DD] [--postcode P] [--json]\n\n"
               "Identity candidates, to confirm before a lookup: at most 20. When more match, it"
               " says\nso (\"showing 20 of 551 - add date of birth or postcode\"; --json: shown,"
               " total).\nNames match whatever their case, accents, hyphens and apostrophes"
               " (O'Brien = OBrien).\n" ENV_COMMON},
    {"show", "usage: cmc-agent show PLAN [--json]\n\nThe whole plan visible to you (plan id or"
             " NHS number).\n" ENV_COMMON},
    {"list", "usage: cmc-agent list [--json]\n\nPlans visible to you.\n" ENV_COMMON},
    {"status", "usage: cmc-agent status [--json]\n\nThe hub, the last sync and its age, the"
               " cursor, counts and the lease, with a warning\n\"this copy locks in N days without"
               " a sync\" within CMC_LEASE_WARN_DAYS days (default 2;\n0 turns it off) of the lock"
               " (--json: lease_days_left, lease_warning). What 'sync --watch' is doing (live,\n"
               "polling every N s, reconnecting, or not watching) and when the last change arrived\n"
               "(--json: watch, last_change).\n" ENV_COMMON},
    {"edit", "usage: cmc-agent edit PLAN --file CHANGES.json\n\nAn offline edit (clinicians),"
             " kept until pushed by sync.\n" ENV_COMMON},
    {"verify", "usage: cmc-agent verify\n\nA full integrity check of the replica: every page, and every plan version\n"
              "against the hub's seal (each failure is named; the next sync fetches it again).\n" ENV_COMMON},
    {"enroll", "usage: cmc-agent enroll --hub URL --code CODE [--ca FILE] [--name DEVICE]\n\n"
               "Registers this device with the hub using the one-time code from `cmc-hub device"
               " add`,\nand pins the hub's signing key and TLS key.\n" ENV_COMMON},
    {"sync", "usage: cmc-agent sync [--watch] [--json]\n\nPulls from the hub, applies, pushes"
             " pending edits and the audit log. --watch keeps\ngoing (the cmc-agent-sync user"
             " service runs this): live when the hub offers a change\nfeed (it answers a held wait"
             " as soon as something for this device changes), else\npolling. CMC_SYNC_INTERVAL:"
             " seconds between polls, and between rounds for pending\nedits when live."
             " CMC_WATCH_HOLD: seconds a wait may be held (at most 50).\n"
             "CMC_PAGE_BUDGET, CMC_GROUP_BYTES, CMC_GROUP_MS: tuning.\n" ENV_COMMON},
    {"conflicts", "usage: cmc-agent conflicts [--json]\n\nEdits held because the hub's version"
                  " changed the same field.\n" ENV_COMMON},
    {"resolve", "usage: cmc-agent resolve PLAN FIELD --keep local|remote\n\nSettles one"
                " conflict.\n" ENV_COMMON},
    {"serve", "usage: cmc-agent serve --listen 127.0.0.1:PORT\n\nThe crew's web page on this"
              " device (loopback only). CMC_WEB_IDLE_SECONDS: idle lock.\n" ENV_COMMON},
    {"audit", "usage: cmc-agent audit [--verify] [--json]\n\nThis device's view log; --verify"
              " checks its hash chain.\n" ENV_COMMON},
    {"app", "usage: cmc-agent app add NAME | app list | app remove NAME\n\nApps on this device"
            " (an ePR) that read serve's FHIR endpoint on loopback; `add`\nprints the app's token"
            " once. Needs a user's PIN.\n" ENV_COMMON},
};
#define N_HELP (sizeof help_entries / sizeof help_entries[0])

void cli_help_version(FILE *f)
{
    libversions_print(f, "cmc-agent", CMC_VERSION);
}

/* The first word that is not an option or an option's value. */
static const char *command_word(int argc, char **argv)
{
    static const char *const with_value[] = {"--dir", "--user", "--pin-file", "--new-pin-file",
                                             "--role", "--name", "--dob", "--postcode", "--hub",
                                             "--code", "--ca", "--file", "--keep", "--listen"};
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            return argv[i];
        if (strchr(argv[i], '=') != NULL)
            continue;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (strcmp(argv[i], with_value[k]) == 0)
                i++;
    }
    return NULL;
}

int cli_help_intercept(int argc, char **argv, int *exit_code)
{
    const char *cmd = command_word(argc, argv), *near = NULL;
    size_t best = (size_t)-1;
    int help = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            cli_help_version(stdout);
            *exit_code = 0;
            return 1;
        }
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    }
    if (cmd == NULL || strcmp(cmd, "help") == 0)
        return 0;
    for (size_t i = 0; i < N_HELP; i++) {
        size_t d = words_distance(cmd, help_entries[i].name);
        if (d == 0) {
            if (!help)
                return 0;
            fputs(help_entries[i].text, stdout);
            *exit_code = 0;
            return 1;
        }
        if (d < best) {
            best = d;
            near = help_entries[i].name;
        }
    }
    if (near != NULL && words_near(cmd, best))
        fprintf(stderr, "cmc-agent: unknown command '%s' \xe2\x80\x94 did you mean '%s'?\n", cmd,
                near);
    else
        fprintf(stderr, "cmc-agent: unknown command '%s' (see cmc-agent --help)\n", cmd);
    *exit_code = 2;
    return 1;
}
