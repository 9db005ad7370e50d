#include "agent/cli.h"
#include "agent/cli_app.h"

#include "agent/audit.h"
#include "agent/card.h"
#include "agent/engine.h"
#include "agent/lease.h"
#include "agent/view.h"
#include "agent/web.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"
#include "sync/plan.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PIN_BUF 160

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
    OPT_STR("--listen", listen),     OPT_FLAG("--json", json),      OPT_FLAG("--watch", watch),
    OPT_FLAG("--verify", verify),    OPT_FLAG("--help", help),      OPT_FLAG("-h", help),
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

/* ---- secrets --------------------------------------------------------------------------- */

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
    char again[PIN_BUF];
    rc = prompt_tty("Repeat the PIN: ", again, sizeof again);
    if (rc == CMC_OK && strcmp(again, out) != 0)
        rc = cmc_fail(CMC_ERR_USAGE, "the two PINs differ; nothing was changed");
    cry_memzero(again, sizeof again);
    if (rc != CMC_OK)
        cry_memzero(out, cap);
    return rc;
}

/* ---- unlocking ------------------------------------------------------------------------- */

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

int cli_unlock(const struct cli_opts *o, struct cli_session *s)
{
    memset(s, 0, sizeof *s);
    int rc = check_not_wiped(o);
    if (rc != CMC_OK)
        return rc;
    cry_slots *slots = NULL;
    char pin[PIN_BUF];
    char role[CRY_ROLE_MAX + 1] = "";
    const char *user = NULL;
    rc = cry_slots_load(o->slots_path, &slots);
    if (rc == CMC_ERR_NOT_FOUND) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no replica in %s: run 'cmc-agent init' first", o->dir);
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    if ((rc = pick_user(o, slots, &user)) != CMC_OK)
        goto out;
    int64_t wait = cry_slots_throttle_wait(slots);
    if (wait > 0) {
        rc = cmc_fail(CMC_ERR_THROTTLED, "too many wrong PINs: wait %lld seconds before trying again",
                      (long long)wait);
        goto out;
    }
    if ((rc = cli_read_secret(o->pin_file, "CMC_PIN", "PIN: ", 0, pin, sizeof pin)) != CMC_OK)
        goto out;
    rc = cry_slots_unlock(slots, user, pin, &s->key, role);
    if (rc == CMC_ERR_AUTH) {
        rc = cmc_fail(CMC_ERR_AUTH, "wrong user or PIN; nothing was changed");
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    snprintf(s->who.user, sizeof s->who.user, "%s", user);
    s->who.role = store_role_from_name(role);
    if (s->who.role == STORE_ROLE_NONE) {
        rc = cmc_fail(CMC_ERR_TAMPERED, "the key slot names an unknown role");
        goto out;
    }
    rc = store_open(o->replica_path, s->key, &s->who, &s->store);
out:
    cry_memzero(pin, sizeof pin);
    cry_slots_free(slots);
    if (rc != CMC_OK)
        cli_session_close(s);
    return rc;
}

/* Unlock for reading plans: the offline lease must not have run out. */
static int unlock_for_reading(const struct cli_opts *o, struct cli_session *s)
{
    int rc = cli_unlock(o, s);
    if (rc == CMC_OK && (rc = lease_check(s->store)) != CMC_OK)
        cli_session_close(s);
    return rc;
}

void cli_session_close(struct cli_session *s)
{
    store_close(s->store);
    s->store = NULL;
    cry_secret_free(s->key);
    s->key = NULL;
}

/* ---- output helpers -------------------------------------------------------------------- */

static int print_json(json_t *doc)
{
    if (doc == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory building the JSON output");
    int rc = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? CMC_OK : CMC_ERR_IO;
    fputc('\n', stdout);
    json_decref(doc);
    return rc;
}

static int64_t last_sync_of(store *st)
{
    int64_t t;
    if (store_state_get_int(st, "last_sync_at", &t) != CMC_OK)
        return -1;
    return t;
}

static json_t *hit_json(const struct store_hit *h)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:I}", "plan_id", h->plan_id,
                     "nhs_number", h->nhs_number, "given_name", h->given_name, "family_name", h->family_name,
                     "date_of_birth", h->date_of_birth, "postcode", h->postcode, "address", h->address,
                     "status", plan_status_name(h->status), "version", (json_int_t)h->version);
}

static void print_hits_text(const struct store_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_hit *h = &hits[i];
        char name[160];
        snprintf(name, sizeof name, "%s, %s", h->family_name ? h->family_name : "-",
                 h->given_name ? h->given_name : "-");
        printf("%.3s %.3s %.4s  %-32s born %-10s  %-9s %s\n", h->nhs_number, h->nhs_number + 3,
               h->nhs_number + 6, name, h->date_of_birth ? h->date_of_birth : "-",
               h->postcode ? h->postcode : "-",
               plan_status_name(h->status) ? plan_status_name(h->status) : "?");
    }
}

/* ---- the plan a session sees, with a clinician's pending edits applied ---------------------- */

/* Loads the plan visible to this session; for clinicians applies pending local edits in
 * order and reports how many were applied and which fields they touch. */
static int load_view(struct cli_session *s, const char *key, struct plan *out, int *n_pending,
                     json_t *changed_paths)
{
    return view_load(s->store, key, out, n_pending, changed_paths);
}

/* ---- commands -------------------------------------------------------------------------- */

static int need_positional(const struct cli_opts *o, size_t n, const char *usage)
{
    if (o->n_positional != n)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent %s", usage);
    return CMC_OK;
}

static int cmd_init(struct cli_opts *o)
{
    if (o->user == NULL || o->role == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent init --user NAME --role urgent_care|clinician");
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
    struct cry_secret *key = NULL;
    store *st = NULL;
    char pin[PIN_BUF];
    if ((rc = plat_lock_acquire(o->lock_path, 0, &lock)) != CMC_OK)
        goto out;
    if ((rc = cli_read_secret(o->pin_file, "CMC_PIN", "Choose a PIN: ", 1, pin, sizeof pin)) != CMC_OK)
        goto out;
    if (strlen(pin) < CRY_PIN_MIN) {
        rc = cmc_fail(CMC_ERR_USAGE, "the PIN must have at least %d characters", CRY_PIN_MIN);
        goto out;
    }
    if ((rc = cry_slots_create(o->slots_path, o->user, store_role_name(who.role), pin, &key)) != CMC_OK)
        goto out;
    rc = store_open(o->replica_path, key, &who, &st);
    if (rc != CMC_OK) {
        /* leave nothing half-made: without the slot file the replica is unreadable anyway */
        cry_slots_destroy(o->slots_path);
        plat_remove(o->replica_path);
        goto out;
    }
    if (o->json)
        rc = print_json(json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "dir", o->dir, "user", o->user, "role",
                                  store_role_name(who.role)));
    else
        printf("Created an encrypted replica in %s for %s (%s).\n", o->dir, o->user, store_role_name(who.role));
out:
    cry_memzero(pin, sizeof pin);
    store_close(st);
    cry_secret_free(key);
    plat_lock_release(lock);
    return rc;
}

static int cmd_user(struct cli_opts *o)
{
    const char *sub = o->n_positional > 0 ? o->positional[0] : NULL;
    if (sub == NULL || (strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0 && strcmp(sub, "list") != 0))
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent user add NAME --role R | user remove NAME | user list");
    if (strcmp(sub, "list") != 0 && o->n_positional != 2)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent user %s NAME", sub);
    struct cli_session s;
    plat_lock *lock = NULL;
    cry_slots *slots = NULL;
    char pin[PIN_BUF];
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
            if (o->json)
                json_array_append_new(arr, json_pack("{s:s, s:s}", "user", u, "role", r));
            else
                printf("%-24s %s\n", u, r);
        }
        rc = o->json ? print_json(json_pack("{s:o}", "users", arr)) : (json_decref(arr), CMC_OK);
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
        if (strlen(pin) < CRY_PIN_MIN) {
            rc = cmc_fail(CMC_ERR_USAGE, "the PIN must have at least %d characters", CRY_PIN_MIN);
            goto out;
        }
        rc = cry_slots_add(slots, s.key, name, store_role_name(role), pin);
        if (rc == CMC_OK && !o->json)
            printf("Added %s (%s).\n", name, store_role_name(role));
    } else {
        rc = cry_slots_remove(slots, name);
        if (rc == CMC_OK && !o->json)
            printf("Removed %s: their PIN no longer opens this replica.\n", name);
    }
    if (rc == CMC_OK && o->json)
        rc = print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "action", sub, "user", name));
out:
    cry_memzero(pin, sizeof pin);
    cry_slots_free(slots);
    cli_session_close(&s);
out_nosession:
    plat_lock_release(lock);
    return rc;
}

static int card_context_for(struct cli_session *s, int pending, int full, struct card_context *ctx)
{
    ctx->now = plat_wall_now();
    ctx->last_sync = last_sync_of(s->store);
    ctx->pending_edits = pending;
    ctx->show_full = full;
    return CMC_OK;
}

static int show_plan(struct cli_opts *o, const char *key, int full)
{
    struct cli_session s;
    struct plan p;
    plan_init(&p);
    json_t *changed = json_array();
    int pending = 0;
    int rc = unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        goto out;
    rc = load_view(&s, key, &p, &pending, changed);
    if (rc == CMC_ERR_NOT_FOUND) {
        /* a miss is audited too: someone looked for this patient here */
        audit_record(s.store, AUDIT_LOOKUP_MISS, NULL, key);
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan on this device for that %s", full ? "plan" : "NHS number");
        if (o->json)
            print_json(json_pack("{s:b, s:s}", "found", 0, "message", cmc_errmsg()));
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    audit_record(s.store, full ? AUDIT_SHOW : AUDIT_LOOKUP, p.plan_id, NULL);
    struct card_context ctx;
    card_context_for(&s, pending, full, &ctx);
    if (o->json) {
        json_t *card = card_to_json(&p, &ctx);
        if (card != NULL) {
            json_object_set_new(card, "found", json_true());
            json_object_set(card, "not_yet_approved_fields", changed);
        }
        rc = print_json(card);
    } else {
        card_print(stdout, &p, &ctx);
        if (pending > 0) {
            printf("\n NOT YET APPROVED (local edits waiting to sync):");
            size_t i;
            json_t *v;
            json_array_foreach(changed, i, v) printf(" %s", json_string_value(v));
            printf("\n");
        }
    }
out:
    json_decref(changed);
    plan_free(&p);
    cli_session_close(&s);
    return rc;
}

static int cmd_lookup(struct cli_opts *o)
{
    int rc = need_positional(o, 1, "lookup NHS_NUMBER");
    if (rc != CMC_OK)
        return rc;
    char nhs[PLAN_NHS_LEN + 1];
    if ((rc = plan_nhs_normalise(o->positional[0], nhs)) != CMC_OK)
        return rc;
    return show_plan(o, nhs, 0);
}

static int cmd_show(struct cli_opts *o)
{
    int rc = need_positional(o, 1, "show PLAN (a plan id or an NHS number)");
    if (rc != CMC_OK)
        return rc;
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = o->positional[0];
    if (strlen(key) != PLAN_ID_LEN) {
        if ((rc = plan_nhs_normalise(key, nhs)) != CMC_OK)
            return rc;
        key = nhs;
    }
    return show_plan(o, key, 1);
}

static int print_hits(const struct cli_opts *o, const struct store_hit *hits, size_t n, const char *none)
{
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(&hits[i]));
        return print_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "plans", arr));
    }
    if (n == 0)
        return cmc_fail(CMC_ERR_NOT_FOUND, "%s", none);
    if (isatty(STDOUT_FILENO))
        print_hits_text(hits, n);
    else
        for (size_t i = 0; i < n; i++)
            printf("%s\t%s\t%s\t%s\t%s\t%s\n", hits[i].nhs_number, hits[i].family_name ? hits[i].family_name : "",
                   hits[i].given_name ? hits[i].given_name : "", hits[i].date_of_birth ? hits[i].date_of_birth : "",
                   hits[i].postcode ? hits[i].postcode : "", plan_status_name(hits[i].status));
    return CMC_OK;
}

static int cmd_search(struct cli_opts *o)
{
    if (o->name == NULL && o->dob == NULL && o->postcode == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent search [--name N] [--dob YYYY-MM-DD] [--postcode P]");
    int64_t t;
    if (o->dob != NULL && (strlen(o->dob) != 10 || plat_parse_time(o->dob, &t) != CMC_OK))
        return cmc_fail(CMC_ERR_INVALID, "--dob must be a date as YYYY-MM-DD");
    struct cli_session s;
    int rc = unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        return rc;
    char criteria[200];
    snprintf(criteria, sizeof criteria, "name=%s;dob=%s;postcode=%s", o->name ? o->name : "", o->dob ? o->dob : "",
             o->postcode ? o->postcode : "");
    audit_record(s.store, AUDIT_SEARCH, NULL, criteria);
    struct store_query q = { .name = o->name, .date_of_birth = o->dob, .postcode = o->postcode };
    struct store_hit *hits = NULL;
    size_t n = 0;
    rc = store_search(s.store, &q, 20, &hits, &n);
    if (rc == CMC_OK)
        rc = print_hits(o, hits, n, "no matching plan on this device");
    if (rc == CMC_OK && n == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no matching plan on this device");
    store_hits_free(hits, n);
    cli_session_close(&s);
    return rc;
}

static int cmd_list(struct cli_opts *o)
{
    struct cli_session s;
    int rc = unlock_for_reading(o, &s);
    if (rc != CMC_OK)
        return rc;
    audit_record(s.store, AUDIT_LIST, NULL, NULL);
    struct store_hit *hits = NULL;
    size_t n = 0;
    rc = store_list(s.store, &hits, &n);
    if (rc == CMC_OK)
        rc = n == 0 && !o->json ? (printf("No plans on this device visible to you.\n"), CMC_OK)
                                : print_hits(o, hits, n, "");
    store_hits_free(hits, n);
    cli_session_close(&s);
    return rc;
}

static int cmd_status(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    struct store_counts c;
    char *hub = NULL;
    int64_t cursor = 0;
    if ((rc = store_counts_get(s.store, &c)) != CMC_OK)
        goto out;
    if (store_state_get(s.store, "hub_url", &hub) != CMC_OK)
        hub = NULL;
    if (store_state_get_int(s.store, "cursor", &cursor) != CMC_OK)
        cursor = 0;
    struct card_context ctx;
    card_context_for(&s, 0, 0, &ctx);
    char age[96];
    card_copy_age(&ctx, age, sizeof age);
    struct lease_info li;
    if ((rc = lease_info_get(s.store, &li)) != CMC_OK)
        goto out;
    char policy[160];
    if (li.lease_days <= 0)
        snprintf(policy, sizeof policy, "no offline lease");
    else
        snprintf(policy, sizeof policy, "locks after %lld days without a sync%s", (long long)li.lease_days,
                 li.locked ? " - LOCKED now: sync to unlock" : "");
    if (o->json) {
        rc = print_json(json_pack("{s:s, s:s, s:s?, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "user",
                                  s.who.user, "role", store_role_name(s.who.role), "hub", hub, "last_sync",
                                  ctx.last_sync < 0 ? json_null() : json_integer(ctx.last_sync), "copy_age", age,
                                  "cursor", (json_int_t)cursor, "plans_visible", (json_int_t)c.visible,
                                  "plans_published", (json_int_t)c.published, "plans_draft", (json_int_t)c.drafts,
                                  "pending_edits", (json_int_t)c.pending, "conflicts", (json_int_t)c.conflicts,
                                  "tombstones", (json_int_t)c.tombstones, "lease_days",
                                  (json_int_t)li.lease_days, "locked", li.locked));
    } else {
        printf("user:          %s (%s)\n", s.who.user, store_role_name(s.who.role));
        printf("hub:           %s\n", hub ? hub : "not enrolled");
        printf("last sync:     %s\n", age);
        printf("cursor:        %lld\n", (long long)cursor);
        printf("plans:         %lld visible to you (%lld published, %lld drafts)\n", (long long)c.visible,
               (long long)c.published, (long long)c.drafts);
        printf("pending edits: %lld\n", (long long)c.pending);
        printf("conflicts:     %lld\n", (long long)c.conflicts);
        printf("policy:        %s\n", policy);
    }
out:
    cmc_free(hub);
    cli_session_close(&s);
    return rc;
}

static int cmd_verify(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    rc = store_verify(s.store);
    if (rc == CMC_OK) {
        if (o->json)
            rc = print_json(json_pack("{s:b}", "ok", 1));
        else
            printf("Replica verified: every page authenticates and every plan decodes.\n");
    }
    cli_session_close(&s);
    return rc;
}

static int cmd_edit(struct cli_opts *o)
{
    int rc = need_positional(o, 1, "edit PLAN --file CHANGES.json");
    if (rc != CMC_OK)
        return rc;
    if (o->file == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent edit PLAN --file CHANGES.json");
    uint8_t *json = NULL, *packed = NULL;
    size_t json_len = 0, packed_len = 0;
    struct plan_change change;
    struct plan view;
    plan_change_init(&change);
    plan_init(&view);
    struct cli_session s;
    memset(&s, 0, sizeof s);
    plat_lock *lock = NULL;
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = o->positional[0];
    if (strlen(key) != PLAN_ID_LEN) {
        if ((rc = plan_nhs_normalise(key, nhs)) != CMC_OK)
            goto out;
        key = nhs;
    }
    if ((rc = plat_read_file(o->file, PLAN_MAX_ENCODED, &json, &json_len)) != CMC_OK)
        goto out;
    if ((rc = plan_change_from_json((const char *)json, json_len, &change)) != CMC_OK)
        goto out;
    if ((rc = plat_lock_acquire(o->lock_path, 0, &lock)) != CMC_OK)
        goto out;
    if ((rc = unlock_for_reading(o, &s)) != CMC_OK)
        goto out;
    if (s.who.role != STORE_ROLE_CLINICIAN) {
        rc = cmc_fail(CMC_ERR_DENIED, "only a clinician can edit a plan; urgent-care users can read published plans");
        goto out;
    }
    int pending = 0;
    if ((rc = load_view(&s, key, &view, &pending, NULL)) != CMC_OK)
        goto out;
    /* The base is the version held; the change must apply on top of what is pending. */
    if ((rc = plan_change_apply(&view, &change)) != CMC_OK)
        goto out;
    if ((rc = plan_change_pack(&change, &packed, &packed_len)) != CMC_OK)
        goto out;
    struct store_pending meta;
    if ((rc = store_pending_add(s.store, view.plan_id, view.version, packed, packed_len, &meta)) != CMC_OK)
        goto out;
    audit_record(s.store, AUDIT_EDIT, view.plan_id, NULL);
    if (o->json)
        rc = print_json(json_pack("{s:b, s:s, s:I, s:s, s:s}", "ok", 1, "plan_id", view.plan_id, "base_version",
                                  (json_int_t)view.version, "idempotency_id", meta.idempotency_id, "state",
                                  "pending"));
    else
        printf("Saved as a pending edit (not yet approved). It is pushed to the hub at the next sync "
               "and becomes a draft for approval.\n");
out:
    cmc_free(json);
    cmc_free(packed);
    plan_change_free(&change);
    plan_free(&view);
    cli_session_close(&s);
    plat_lock_release(lock);
    return rc;
}

/* ---- hub commands ----------------------------------------------------------------------- */

static void engine_config_for(const struct cli_opts *o, struct engine_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = o->dir;
    cfg->slots_path = o->slots_path;
    cfg->replica_path = o->replica_path;
    engine_config_paging(cfg);
}

static int cmd_enroll(struct cli_opts *o)
{
    if (o->hub == NULL || o->code == NULL || o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent enroll --hub URL --code CODE [--ca FILE] [--name DEVICE]");
    plat_lock *lock = NULL;
    struct cli_session s;
    int rc = plat_lock_acquire(o->lock_path, 0, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) == CMC_OK) {
        struct engine_config cfg;
        engine_config_for(o, &cfg);
        rc = engine_enroll(s.store, &cfg, o->hub, o->code, o->ca, o->name ? o->name : "cmc-agent device");
        if (rc == CMC_OK && o->json)
            rc = print_json(json_pack("{s:b, s:s}", "ok", 1, "hub", o->hub));
        else if (rc == CMC_OK)
            printf("Enrolled with %s; the hub's signing key and certificate are pinned. Run 'cmc-agent sync'.\n",
                   o->hub);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}

struct progress_ctx {
    int tty;
    uint64_t start_ns;
};

static void show_progress(void *ctx, const struct engine_report *r, int more)
{
    struct progress_ctx *p = ctx;
    if (!p->tty)
        return;
    double secs = (double)(plat_mono_now_ns() - p->start_ns) / 1e9;
    uint64_t done = r->puts + r->deltas + r->purges;
    fprintf(stderr, "\rsyncing: %llu plans received in %llu pages, %.0f plans/s%s", (unsigned long long)done,
            (unsigned long long)r->pages, secs > 0 ? (double)done / secs : 0.0, more ? "..." : "   \n");
    fflush(stderr);
}

static int sync_round(struct cli_opts *o, struct cli_session *s, int quiet)
{
    struct engine_config cfg;
    engine_config_for(o, &cfg);
    struct engine_report rep;
    struct progress_ctx pc = { .tty = !o->json && !quiet && isatty(STDERR_FILENO), .start_ns = plat_mono_now_ns() };
    int rc = engine_sync(&s->store, &cfg, show_progress, &pc, &rep);
    if (rep.wiped)
        return rc;
    if (rc != CMC_OK)
        return rc;
    if (o->json) {
        return print_json(json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1,
                                    "rollback", rep.rollback,
                                    "cursor", (json_int_t)rep.cursor, "pages", (json_int_t)rep.pages, "puts",
                                    (json_int_t)rep.puts, "deltas", (json_int_t)rep.deltas, "purges",
                                    (json_int_t)rep.purges, "pushed", (json_int_t)rep.pushed, "conflicts",
                                    (json_int_t)rep.conflicts, "rebased", (json_int_t)rep.rebased,
                                    "discarded_edits", (json_int_t)rep.discarded_edits, "bytes_received",
                                    (json_int_t)rep.bytes_received, "requests", (json_int_t)rep.requests,
                                    "connections", (json_int_t)rep.connections));
    }
    if (!quiet || rep.puts + rep.deltas + rep.purges + rep.pushed + rep.conflicts > 0)
        printf("Synced: %llu plans updated, %llu removed, %llu edits pushed, %llu conflicts; cursor %lld.\n",
               (unsigned long long)(rep.puts + rep.deltas), (unsigned long long)rep.purges,
               (unsigned long long)rep.pushed, (unsigned long long)rep.conflicts, (long long)rep.cursor);
    if (rep.discarded_edits > 0)
        printf("Note: %llu pending edit(s) were discarded because their plan was withdrawn from this device "
               "(consent withdrawn or left scope).\n",
               (unsigned long long)rep.discarded_edits);
    if (rep.rollback)
        printf("Warning: this replica had been restored from an older copy. The hub noticed and sent what "
               "repairs it (withdrawn plans removed again, newer versions).\n");
    if (rep.conflicts > 0)
        printf("Some edits conflict with newer versions from the hub: see 'cmc-agent conflicts'.\n");
    fflush(stdout);
    return CMC_OK;
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleeps in small steps so a signal ends the wait promptly. */
static void sleep_interruptible(uint32_t ms)
{
    while (ms > 0 && !stop_requested) {
        uint32_t step = ms > 200 ? 200 : ms;
        plat_sleep_ms(step);
        ms -= step;
    }
}

static int watch_loop(struct cli_opts *o, struct cli_session *s)
{
    const char *iv = getenv("CMC_SYNC_INTERVAL");
    uint32_t interval = iv != NULL ? (uint32_t)strtoul(iv, NULL, 10) : 300;
    if (interval == 0)
        interval = 1;
    uint32_t backoff = interval;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int offline = 0;
    while (!stop_requested) {
        int rc = sync_round(o, s, 1);
        if (rc == CMC_ERR_WIPED || rc == CMC_ERR_UNAUTHORIZED || rc == CMC_ERR_TAMPERED || rc == CMC_ERR_STATE)
            return rc; /* nothing a retry can mend */
        uint32_t jitter;
        cry_random(&jitter, sizeof jitter);
        uint32_t wait;
        if (rc == CMC_OK) {
            if (offline)
                fprintf(stderr, "cmc-agent: the hub answers again; in sync\n");
            offline = 0;
            backoff = interval;
            wait = interval * 1000u;
            wait = wait - wait / 10 + jitter % (wait / 5 + 1); /* +-10 %: devices spread out */
        } else {
            if (!offline)
                fprintf(stderr, "cmc-agent: cannot sync (%s); retrying with backoff\n", cmc_errmsg());
            offline = 1;
            wait = (backoff / 2 + jitter % (backoff / 2 + 1)) * 1000u;
            backoff = backoff * 2 > 1800 ? 1800 : backoff * 2;
        }
        sleep_interruptible(wait);
    }
    return CMC_OK;
}

static int cmd_sync(struct cli_opts *o)
{
    if (o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent sync [--watch]");
    plat_lock *lock = NULL;
    struct cli_session s;
    int rc = plat_lock_acquire(o->lock_path, 0, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) == CMC_OK) {
        rc = o->watch ? watch_loop(o, &s) : sync_round(o, &s, 0);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}

static int cmd_conflicts(struct cli_opts *o)
{
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    struct engine_conflict *c = NULL;
    size_t n = 0;
    rc = engine_conflicts(s.store, &c, &n);
    if (rc == CMC_OK && o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "plan_id", c[i].plan_id,
                                                 "nhs_number", c[i].nhs_number, "field", c[i].path, "local",
                                                 c[i].local, "remote", c[i].remote, "base", c[i].base,
                                                 "remote_version", (json_int_t)c[i].remote_version, "chosen",
                                                 c[i].chosen));
        rc = print_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "conflicts", arr));
    } else if (rc == CMC_OK) {
        if (n == 0)
            printf("No open conflicts.\n");
        for (size_t i = 0; i < n; i++)
            printf("%s  %s\n    yours (local): %s\n    hub v%lld (remote): %s\n    before: %s%s%s\n", c[i].nhs_number,
                   c[i].path, c[i].local, (long long)c[i].remote_version, c[i].remote, c[i].base,
                   c[i].chosen[0] ? "\n    chosen: " : "", c[i].chosen);
        if (n > 0)
            printf("Settle each with: cmc-agent resolve PLAN FIELD --keep local|remote\n");
    }
    cmc_free(c);
    cli_session_close(&s);
    return rc;
}

static int cmd_resolve(struct cli_opts *o)
{
    int rc = need_positional(o, 2, "resolve PLAN FIELD --keep local|remote");
    if (rc != CMC_OK)
        return rc;
    if (o->keep == NULL)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent resolve PLAN FIELD --keep local|remote");
    char nhs[PLAN_NHS_LEN + 1];
    const char *key = o->positional[0];
    if (strlen(key) != PLAN_ID_LEN) {
        if ((rc = plan_nhs_normalise(key, nhs)) != CMC_OK)
            return rc;
        key = nhs;
    }
    plat_lock *lock = NULL;
    struct cli_session s;
    if ((rc = plat_lock_acquire(o->lock_path, 0, &lock)) != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) == CMC_OK) {
        rc = engine_resolve(s.store, key, o->positional[1], o->keep);
        if (rc == CMC_OK && o->json)
            rc = print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "field", o->positional[1], "kept", o->keep));
        else if (rc == CMC_OK)
            printf("Kept the %s value of %s. Once every conflict of the plan is settled, the edit is pushed at the "
                   "next sync as a draft for approval.\n",
                   o->keep, o->positional[1]);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}

static int cmd_audit(struct cli_opts *o)
{
    if (o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent audit [--verify]");
    struct cli_session s;
    int rc = cli_unlock(o, &s);
    if (rc != CMC_OK)
        return rc;
    if (o->verify) {
        int64_t broken = 0;
        struct audit_entry *v = NULL;
        size_t n = 0;
        rc = audit_verify(s.store, &broken);
        if (rc == CMC_OK)
            rc = audit_list(s.store, 0, &v, &n);
        if (rc == CMC_OK && o->json)
            rc = print_json(json_pack("{s:b, s:I}", "ok", 1, "entries", (json_int_t)n));
        else if (rc == CMC_OK)
            printf("Audit chain intact: %zu entries on this device verify.\n", n);
        else if (o->json && broken > 0)
            print_json(json_pack("{s:b, s:I, s:s}", "ok", 0, "broken_at", (json_int_t)broken, "message", cmc_errmsg()));
        cmc_free(v);
        cli_session_close(&s);
        return rc;
    }
    struct audit_entry *v = NULL;
    size_t n = 0;
    rc = audit_list(s.store, 0, &v, &n);
    /* A clinician sees the whole device's log; an urgent-care user their own entries. */
    int all = s.who.role == STORE_ROLE_CLINICIAN;
    json_t *arr = o->json ? json_array() : NULL;
    for (size_t i = 0; rc == CMC_OK && i < n; i++) {
        const struct audit_entry *e = &v[i];
        if (!all && strcmp(e->user, s.who.user) != 0)
            continue;
        char when[21];
        plat_format_time(e->wall, when);
        if (arr != NULL)
            json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
                                                 "time", when, "user", e->user, "role", e->role, "action", e->action,
                                                 "plan_id", e->plan_id, "identifier", e->identifier));
        else
            printf("%6lld  %s  %-16s %-12s %-12s %s%s\n", (long long)e->seq, when, e->user, e->role, e->action,
                   e->plan_id, e->identifier);
    }
    if (rc == CMC_OK && arr != NULL)
        rc = print_json(json_pack("{s:o}", "entries", arr));
    else
        json_decref(arr);
    cmc_free(v);
    cli_session_close(&s);
    return rc;
}

static int cmd_serve(struct cli_opts *o)
{
    if (o->listen == NULL || o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent serve --listen 127.0.0.1:PORT");
    return web_serve(o);
}

static void usage(FILE *f)
{
    fputs("usage: cmc-agent COMMAND [options]\n"
          "\n"
          "Commands:\n"
          "  init --user NAME --role urgent_care|clinician   create the encrypted replica\n"
          "  user add NAME --role R | user remove NAME | user list\n"
          "  lookup NHS_NUMBER          the summary card, or \"no plan on this device\"\n"
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

static const struct command commands[] = {
    { "init", cmd_init },     { "user", cmd_user },     { "lookup", cmd_lookup }, { "search", cmd_search },
    { "show", cmd_show },     { "list", cmd_list },     { "status", cmd_status }, { "verify", cmd_verify },
    { "edit", cmd_edit },     { "enroll", cmd_enroll }, { "sync", cmd_sync },   { "conflicts", cmd_conflicts },
    { "resolve", cmd_resolve }, { "serve", cmd_serve },     { "audit", cmd_audit },
    { "app", cli_app },
};

int cli_main(int argc, char **argv)
{
    struct cli_opts o;
    int rc = parse_args(argc, argv, &o);
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
