/*
 * cli.h - the cmc-agent command line (shared/CLI.md).
 *
 * cli_main() parses options, picks the data directory, unlocks the replica for the acting
 * user and runs one command from its table (cli.c). The commands live by concept:
 * cli_user.c (init, user), cli_read.c (lookup, show, search, list, status, verify, audit),
 * cli_edit.c (edit, conflicts, resolve), cli_sync.c (enroll, sync); unlocking and secrets
 * in cli_unlock.c; `serve` hands over to agent/web.h. It returns the process exit status (0 success, 1 runtime
 * error, 2 bad usage or invalid input, 3 not found, 4 locked) and prints at most one error
 * line on stderr, which never carries patient data or a PIN.
 *
 * Secrets never come from the command line: a PIN comes from a no-echo prompt on the
 * terminal, from --pin-file FILE, or from the CMC_PIN environment variable (weaker: other
 * processes of the same user can read a process's environment).
 *
 * Data directory layout (docs/STORAGE.md): DIR/keyslots (+ .throttle), DIR/replica.db
 * (+ -wal, -shm), DIR/lock.
 */
#ifndef CMC_CLI_H
#define CMC_CLI_H

#include "agent/store.h"
#include "crypto/cry.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_MAX_POSITIONAL 8
#define CLI_PIN_BUF 160

struct cli_opts {
    const char *command;
    const char *positional[CLI_MAX_POSITIONAL];
    size_t n_positional;
    const char *dir;
    const char *user;
    const char *pin_file;
    const char *new_pin_file;
    const char *role;
    const char *name;
    const char *dob;
    const char *postcode;
    const char *hub;
    const char *code;
    const char *ca;
    const char *file;
    const char *keep;
    const char *listen;
    const char *break_glass; /* lookup on a locked copy: the reason typed */
    int json;
    int watch;
    int verify;
    int help;
    int tpm;   /* init, user add: seal the new key slot to this machine's TPM */
    char dir_buf[4096];
    char slots_path[4200];
    char replica_path[4200];
    char lock_path[4200];
};

/* An unlocked replica for one session. */
struct cli_session {
    struct cry_secret *key;       /* the replica key */
    struct cry_secret *role_key;  /* the role key, when the user's slot holds one */
    struct cry_secret *user_sk;   /* the acting user's signing key */
    uint8_t user_pk[CRY_SIGN_PK_BYTES];
    store *store;
    struct store_session who;
};

int cli_main(int argc, char **argv);

/* Reads a secret (a PIN): from `file` if given, else from the environment variable `env`,
 * else from a no-echo prompt on the terminal; CMC_ERR_USAGE when there is none of these.
 * `out` has cap bytes; the caller zeroes it with cry_memzero. */
int cli_read_secret(const char *file, const char *env, const char *prompt, int confirm, char *out,
                    size_t cap);

/* Unlocks the replica in opts' directory for the acting user. */
int cli_unlock(const struct cli_opts *o, struct cli_session *s);
/* As cli_unlock, for reading plans: also refuses when the offline lease has run out. */
int cli_unlock_for_reading(const struct cli_opts *o, struct cli_session *s);
void cli_session_close(struct cli_session *s);
/* How cli_run opens the session a command runs in. */
enum cli_run_how {
    CLI_RUN_LOCKED = 1u << 0,  /* the directory's lock held around the command */
    CLI_RUN_READING = 1u << 1, /* cli_unlock_for_reading (the lease checked), else cli_unlock */
};
/* Runs run(o, s) on the replica unlocked for the acting user as `how` (enum cli_run_how)
 * says; the session is closed, and the lock released, after it. Returns the first failure. */
int cli_run(struct cli_opts *o, unsigned how, int (*run)(struct cli_opts *o, struct cli_session *s));

/* ---- shared by the command files (cli_*.c) ------------------------------------------------ */

/* Prints doc (stolen) on stdout, indented; CMC_ERR_NOMEM when doc is NULL. */
int cli_print_json(json_t *doc);
/* CMC_ERR_USAGE ("usage: cmc-agent USAGE") unless there are exactly n positional arguments
 * and the command's required options are given (options_given non-zero). */
int cli_need_args(const struct cli_opts *o, size_t n, int options_given, const char *usage);
/* cli_need_args, then the plan the first positional argument names (cli_plan_key). */
int cli_need_plan(const struct cli_opts *o, size_t n, int options_given, const char *usage, char *nhs,
                  const char **key);
/* A PLAN argument: a plan id as given, or an NHS number normalised into nhs (11 bytes). */
int cli_plan_key(const char *arg, char *nhs, const char **key);
/* printf for text that may hold plan or user text: through text_put_terminal (sync/text.h),
 * so a control sequence in it reaches the terminal only as a visible marker. */
void cli_term_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The commands: each returns a cmc_err (cli_main turns it into the exit status). */
int cli_cmd_init(struct cli_opts *o);     /* cli_user.c */
int cli_cmd_user(struct cli_opts *o);
int cli_cmd_lookup(struct cli_opts *o);   /* cli_read.c */
int cli_cmd_show(struct cli_opts *o);
int cli_cmd_search(struct cli_opts *o);
int cli_cmd_list(struct cli_opts *o);
int cli_cmd_status(struct cli_opts *o);
int cli_cmd_verify(struct cli_opts *o);
int cli_cmd_audit(struct cli_opts *o);
int cli_cmd_edit(struct cli_opts *o);     /* cli_edit.c */
int cli_cmd_conflicts(struct cli_opts *o);
int cli_cmd_resolve(struct cli_opts *o);
int cli_cmd_enroll(struct cli_opts *o);   /* cli_sync.c */
int cli_cmd_sync(struct cli_opts *o);

#endif
