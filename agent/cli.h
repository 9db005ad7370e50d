/*
 * cli.h - the cmc-agent command line (shared/CLI.md).
 *
 * cli_main() parses options, picks the data directory, unlocks the replica for the acting
 * user and runs one command. It returns the process exit status (0 success, 1 runtime
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

#include <stddef.h>

#define CLI_MAX_POSITIONAL 8

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
    int json;
    int watch;
    int verify;
    int help;
    char dir_buf[4096];
    char slots_path[4200];
    char replica_path[4200];
    char lock_path[4200];
};

/* An unlocked replica for one session. */
struct cli_session {
    struct cry_secret *key;
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
void cli_session_close(struct cli_session *s);

#endif
