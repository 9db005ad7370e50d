/* cli_user.c - `init` (a new encrypted replica) and `user add|remove|list`. */
#include "agent/cli.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The clinical file of a half-made replica (and SQLite's files beside it). */
static void cli_remove_clinical(const char *dir)
{
    static const char *const names[] = { "clinical.db", "clinical.db-wal", "clinical.db-shm" };
    char path[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (plat_path_join(path, sizeof path, dir, names[i]) == CMC_OK)
            plat_remove(path);
}

/* What a new slot holds: the role key for a clinician; a secret sealed to the TPM with --tpm. */
static int slot_flags(const struct cli_opts *o, int role)
{
    return (role == STORE_ROLE_CLINICIAN ? CRY_SLOT_ROLE_KEY : 0) | (o->tpm ? CRY_SLOT_TPM : 0);
}

int cli_cmd_init(struct cli_opts *o)
{
    if (o->user == NULL || o->role == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent init --user NAME --role urgent_care|clinician [--tpm]");
    struct store_session who = { .role = store_role_from_name(o->role) };
    if (who.role == STORE_ROLE_NONE)
        return cmc_fail(CMC_ERR_USAGE, "--role must be urgent_care or clinician");
    if (strlen(o->user) == 0 || strlen(o->user) > CRY_USER_MAX)
        return cmc_fail(CMC_ERR_USAGE, "--user must be 1 to %d characters", CRY_USER_MAX);
    snprintf(who.user, sizeof who.user, "%s", o->user);
    int rc = plat_mkdir_private(o->dir);
    if (rc != CMC_OK)
        return rc;
    if (plat_exists(o->slots_path) || plat_exists(o->replica_path))
        return cmc_fail(CMC_ERR_EXISTS, "%s already holds a replica; nothing was changed", o->dir);
    plat_lock *lock = NULL;
    struct cry_unlocked made;
    memset(&made, 0, sizeof made);
    store *st = NULL;
    char pin[CLI_PIN_BUF];
    if ((rc = plat_lock_acquire(o->lock_path, 0, &lock)) != CMC_OK)
        goto out;
    if ((rc = cli_read_secret(o->pin_file, "CMC_PIN", "Choose a PIN: ", 1, pin, sizeof pin)) != CMC_OK)
        goto out;
    if (cry_pin_acceptable(pin) != CMC_OK) {
        rc = cmc_fail(CMC_ERR_USAGE, "%s; nothing was changed", cmc_errmsg());
        goto out;
    }
    /* A clinician's slot also holds the role key, under which the clinical file is made. */
    if ((rc = cry_slots_create_ex(o->slots_path, o->user, store_role_name(who.role), pin, slot_flags(o, who.role),
                                  &made)) != CMC_OK) {
        if (o->tpm)
            rc = cmc_fail(rc, "%s; nothing was changed", cmc_errmsg());
        goto out;
    }
    who.sign_key = made.user_sk;
    who.role_key = made.role_key;
    rc = store_open(o->replica_path, made.key, &who, &st);
    if (rc != CMC_OK) {
        /* leave nothing half-made: without the slot file the replica is unreadable anyway */
        cry_slots_destroy(o->slots_path);
        plat_remove(o->replica_path);
        cli_remove_clinical(o->dir);
        goto out;
    }
    if (o->json)
        rc = cli_print_json(json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "dir", o->dir, "user", o->user, "role",
                                  store_role_name(who.role)));
    else
        printf("Created an encrypted replica in %s for %s (%s).\n", o->dir, o->user, store_role_name(who.role));
out:
    cry_memzero(pin, sizeof pin);
    store_close(st);
    cry_unlocked_clear(&made);
    plat_lock_release(lock);
    return rc;
}

int cli_cmd_user(struct cli_opts *o)
{
    const char *sub = o->n_positional > 0 ? o->positional[0] : NULL;
    if (sub == NULL || (strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0 && strcmp(sub, "list") != 0))
        return cmc_fail(CMC_ERR_USAGE,
                        "usage: cmc-agent user add NAME --role R [--tpm] | user remove NAME | user list");
    if (strcmp(sub, "list") != 0 && o->n_positional != 2)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent user %s NAME", sub);
    struct cli_session s;
    plat_lock *lock = NULL;
    cry_slots *slots = NULL;
    char pin[CLI_PIN_BUF];
    pin[0] = '\0';
    int rc = plat_lock_acquire(o->lock_path, 0, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) != CMC_OK)
        goto out_nosession;
    if ((rc = cry_slots_load(o->slots_path, &slots)) != CMC_OK)
        goto out;
    if (strcmp(sub, "list") == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < cry_slots_count(slots); i++) {
            const char *u, *r;
            if (cry_slots_user(slots, i, &u, &r) != CMC_OK)
                continue;
            /* a clinician without the role key (a device set up before role keys) cannot
             * reach pending edits until a holder adds them again */
            int rk = cry_slots_has_role_key(slots, i), tpm = cry_slots_tpm_bound(slots, i);
            if (o->json)
                json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b}", "user", u, "role", r, "role_key", rk,
                                                     "tpm", tpm));
            else
                printf("%-24s %s%s%s\n", u, r, tpm ? " (TPM)" : "",
                       strcmp(r, "clinician") == 0 && !rk ? " (no clinical key: add again)" : "");
        }
        rc = o->json ? cli_print_json(json_pack("{s:o}", "users", arr)) : (json_decref(arr), CMC_OK);
        goto out;
    }
    const char *name = o->positional[1];
    if (strcmp(sub, "add") == 0) {
        int role = o->role ? store_role_from_name(o->role) : STORE_ROLE_NONE;
        if (role == STORE_ROLE_NONE) {
            rc = cmc_fail(CMC_ERR_USAGE, "--role must be urgent_care or clinician");
            goto out;
        }
        /* Nobody can hand out more than they have: an urgent-care user cannot add a clinician. */
        if (role > s.who.role) {
            rc = cmc_fail(CMC_ERR_DENIED, "an %s user cannot add a %s user", store_role_name(s.who.role),
                          store_role_name(role));
            goto out;
        }
        if (strlen(name) == 0 || strlen(name) > CRY_USER_MAX) {
            rc = cmc_fail(CMC_ERR_USAGE, "user names are 1 to %d characters", CRY_USER_MAX);
            goto out;
        }
        if ((rc = cli_read_secret(o->new_pin_file, "CMC_NEW_PIN", "PIN for the new user: ", 1, pin,
                                  sizeof pin)) != CMC_OK)
            goto out;
        if (cry_pin_acceptable(pin) != CMC_OK) {
            rc = cmc_fail(CMC_ERR_USAGE, "%s; nothing was changed", cmc_errmsg());
            goto out;
        }
        /* A clinician gets the role key too, from the clinician adding them. */
        struct cry_unlocked by;
        memset(&by, 0, sizeof by);
        by.key = s.key;
        by.role_key = s.role_key;
        if ((rc = cry_slots_add_ex(slots, &by, name, store_role_name(role), pin, slot_flags(o, role))) != CMC_OK &&
            o->tpm)
            rc = cmc_fail(rc, "%s; nothing was changed", cmc_errmsg());
        if (rc == CMC_OK && !o->json)
            printf("Added %s (%s%s).\n", name, store_role_name(role), o->tpm ? ", sealed to this machine's TPM" : "");
    } else {
        rc = cry_slots_remove(slots, name);
        if (rc == CMC_OK && !o->json)
            printf("Removed %s: their PIN no longer opens this replica.\n", name);
    }
    if (rc == CMC_OK && o->json)
        rc = cli_print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "action", sub, "user", name));
out:
    cry_memzero(pin, sizeof pin);
    cry_slots_free(slots);
    cli_session_close(&s);
out_nosession:
    plat_lock_release(lock);
    return rc;
}
