/* cli_unlock.c - secrets from a file, the environment or a no-echo prompt, and unlocking the
 * replica for the acting user. */
#include "agent/cli.h"

#include "agent/lease.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

static int prompt_tty(const char *prompt, char *out, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL)
        return cmc_fail(CMC_ERR_USAGE, "no PIN given: run on a terminal, or use --pin-file FILE or CMC_PIN");
    struct termios old, quiet;
    int fd = fileno(tty);
    int have_termios = tcgetattr(fd, &old) == 0;
    if (have_termios) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fprintf(tty, "%s", prompt);
    fflush(tty);
    char *got = fgets(out, (int)cap, tty);
    if (have_termios)
        tcsetattr(fd, TCSAFLUSH, &old);
    fprintf(tty, "\n");
    fclose(tty);
    if (got == NULL)
        return cmc_fail(CMC_ERR_USAGE, "no PIN entered");
    out[strcspn(out, "\r\n")] = '\0';
    return CMC_OK;
}

int cli_read_secret(const char *file, const char *env, const char *prompt, int confirm, char *out,
                    size_t cap)
{
    out[0] = '\0';
    if (file != NULL) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = plat_read_file(file, cap - 1, &buf, &len);
        if (rc != CMC_OK)
            return cmc_fail(rc == CMC_ERR_NOT_FOUND ? CMC_ERR_USAGE : rc, "cannot read the PIN file %s",
                            file);
        memcpy(out, buf, len);
        out[len] = '\0';
        cry_memzero(buf, len);
        cmc_free(buf);
        out[strcspn(out, "\r\n")] = '\0';
        return CMC_OK;
    }
    const char *v = env != NULL ? getenv(env) : NULL;
    if (v != NULL) {
        if (strlen(v) >= cap)
            return cmc_fail(CMC_ERR_USAGE, "%s is too long", env);
        strcpy(out, v);
        return CMC_OK;
    }
    int rc = prompt_tty(prompt, out, cap);
    if (rc != CMC_OK || !confirm)
        return rc;
    char again[CLI_PIN_BUF];
    rc = prompt_tty("Repeat the PIN: ", again, sizeof again);
    if (rc == CMC_OK && strcmp(again, out) != 0)
        rc = cmc_fail(CMC_ERR_USAGE, "the two PINs differ; nothing was changed");
    cry_memzero(again, sizeof again);
    if (rc != CMC_OK)
        cry_memzero(out, cap);
    return rc;
}

static int check_not_wiped(const struct cli_opts *o)
{
    char marker[4200];
    int rc = plat_path_join(marker, sizeof marker, o->dir, "WIPED");
    if (rc != CMC_OK)
        return rc;
    if (plat_exists(marker))
        return cmc_fail(CMC_ERR_WIPED, "this device has been wiped by order of the hub; it holds no plans");
    return CMC_OK;
}

/* The acting user: --user / CMC_USER, or the only user when there is exactly one. */
static int pick_user(const struct cli_opts *o, const cry_slots *slots, const char **user)
{
    if (o->user != NULL) {
        *user = o->user;
        return CMC_OK;
    }
    if (cry_slots_count(slots) == 1) {
        const char *role;
        return cry_slots_user(slots, 0, user, &role);
    }
    return cmc_fail(CMC_ERR_USAGE, "this device has several users: say which with --user NAME or CMC_USER");
}

/* Like a login's "failed attempts since last login": wrong PINs on this device are news to
 * the user whose slot they were tried against. */
static void report_failures(const struct cry_unlocked *u)
{
    if (u->failures_before > 0)
        fprintf(stderr, "Note: %u wrong PIN attempt%s since your last unlock.\n", (unsigned)u->failures_before,
                u->failures_before == 1 ? "" : "s");
    if (u->record_altered)
        fprintf(stderr, "Warning: the record of wrong PIN attempts on this device was altered; tell your IT "
                        "team.\n");
}

int cli_unlock(const struct cli_opts *o, struct cli_session *s)
{
    memset(s, 0, sizeof *s);
    int rc = check_not_wiped(o);
    if (rc != CMC_OK)
        return rc;
    cry_slots *slots = NULL;
    char pin[CLI_PIN_BUF];
    char role[CRY_ROLE_MAX + 1] = "";
    const char *user = NULL;
    struct cry_unlocked u;
    memset(&u, 0, sizeof u);
    rc = cry_slots_load(o->slots_path, &slots);
    if (rc == CMC_ERR_NOT_FOUND) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no replica in %s: run 'cmc-agent init' first", o->dir);
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    if ((rc = pick_user(o, slots, &user)) != CMC_OK)
        goto out;
    if ((rc = cli_read_secret(o->pin_file, "CMC_PIN", "PIN: ", 0, pin, sizeof pin)) != CMC_OK)
        goto out;
    if (cry_slots_next_work(slots, user) > 0)
        fprintf(stderr, "Several wrong PINs were entered before: this unlock takes longer.\n");
    uint64_t t_unlock = plat_phase_begin();
    rc = cry_slots_unlock_ex(slots, user, pin, &u);
    plat_phase_end(PLAT_PHASE_UNLOCK, t_unlock);
    if (rc == CMC_ERR_AUTH) {
        rc = cmc_fail(CMC_ERR_AUTH, "wrong user or PIN; nothing was changed (%u failed attempts on record)",
                      (unsigned)cry_slots_failures(slots, user));
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    report_failures(&u);
    /* A device set up before role keys: its first clinician to unlock makes the role key,
     * and their session moves the pending edits into the clinical file. */
    if (store_role_from_name(u.role) == STORE_ROLE_CLINICIAN && u.role_key == NULL &&
        !cry_slots_any_role_key(slots) && cry_slots_mint_role_key(slots, user, pin, &u) != CMC_OK) {
        plat_log(PLAT_LOG_WARN, "could not make this device's role key: %s", cmc_errmsg());
        cmc_err_clear();
    }
    s->key = u.key;
    s->role_key = u.role_key;
    s->user_sk = u.user_sk;
    memcpy(s->user_pk, u.user_pk, sizeof s->user_pk);
    memcpy(role, u.role, sizeof role);
    u.key = u.role_key = u.user_sk = NULL;
    snprintf(s->who.user, sizeof s->who.user, "%s", user);
    s->who.role = store_role_from_name(role);
    if (s->who.role == STORE_ROLE_NONE) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "the key slot names an unknown role");
        goto out;
    }
    s->who.sign_key = s->user_sk;
    s->who.role_key = s->role_key;
    uint64_t t_open = plat_phase_begin();
    rc = store_open(o->replica_path, s->key, &s->who, &s->store);
    plat_phase_end(PLAT_PHASE_OPEN, t_open);
out:
    cry_memzero(pin, sizeof pin);
    cry_unlocked_clear(&u);
    cry_slots_free(slots);
    if (rc != CMC_OK)
        cli_session_close(s);
    return rc;
}

/* Unlock for reading plans: the offline lease must not have run out. */
int cli_unlock_for_reading(const struct cli_opts *o, struct cli_session *s)
{
    int rc = cli_unlock(o, s);
    if (rc == CMC_OK && (rc = lease_check(s->store)) != CMC_OK)
        cli_session_close(s);
    return rc;
}

int cli_run(struct cli_opts *o, unsigned how, int (*run)(struct cli_opts *o, struct cli_session *s))
{
    plat_lock *lock = NULL;
    struct cli_session s;
    int rc = how & CLI_RUN_LOCKED ? plat_lock_acquire(o->lock_path, 0, &lock) : CMC_OK;
    if (rc != CMC_OK)
        return rc;
    rc = how & CLI_RUN_READING ? cli_unlock_for_reading(o, &s) : cli_unlock(o, &s);
    if (rc == CMC_OK) {
        rc = run(o, &s);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}

void cli_session_close(struct cli_session *s)
{
    store_close(s->store);
    s->store = NULL;
    cry_secret_free(s->key);
    s->key = NULL;
    cry_secret_free(s->role_key);
    s->role_key = NULL;
    cry_secret_free(s->user_sk);
    s->user_sk = NULL;
    cry_memzero(s->user_pk, sizeof s->user_pk);
}
