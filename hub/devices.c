/*
 * devices.c - devices, their scopes and roles, enrollment codes, and the check of every
 * signed request (docs/PROTOCOL.md "Request signatures").
 *
 * Enrollment codes are 16 characters of the RFC 4648 base32 alphabet (80 random bits),
 * shown as four groups of four; the hub keeps only their BLAKE2b-256 hash, so a copy of
 * the store does not let anyone enroll. A code is accepted once and until it expires.
 */
#include "hub/intake_seal.h"
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/reqsig.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define HUB_CODE_CHARS 16
static const char hub_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int hub_device_role_ok(const char *role)
{
    return role != NULL && (strcmp(role, "urgent_care") == 0 || strcmp(role, "clinician") == 0);
}

/* Upper-cases and strips separators; CMC_ERR_UNAUTHORIZED for anything not a code, so a
 * malformed code is refused the same way as a wrong one. */
static int hub_code_normalise(const char *in, char out[HUB_CODE_CHARS + 1])
{
    size_t n = 0;
    if (in == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired");
    for (; *in != '\0'; in++) {
        char c = (char)toupper((unsigned char)*in);
        if (c == '-' || c == ' ')
            continue;
        if (n == HUB_CODE_CHARS || strchr(hub_b32, c) == NULL || c == '\0')
            return cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired");
        out[n++] = c;
    }
    if (n != HUB_CODE_CHARS)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired");
    out[n] = '\0';
    return CMC_OK;
}

int hub_device_add(hub *h, const char *name, const char *scope, const char *role,
                   char device_id[PLAN_ID_LEN + 1], char code[HUB_CODE_LEN + 1])
{
    char kind[16];
    const char *value;
    uint8_t rnd[HUB_CODE_CHARS];
    char norm[HUB_CODE_CHARS + 1];
    uint8_t hash[CRY_HASH_BYTES];
    int rc;
    int64_t now = plat_wall_now();

    if (name == NULL || name[0] == '\0' || strlen(name) > HUB_NAME_MAX)
        return cmc_fail(CMC_ERR_USAGE, "device name: must be 1 to %d bytes", HUB_NAME_MAX);
    if ((rc = hub_scope_parse(scope, kind, &value)) != CMC_OK)
        return rc;
    if (!hub_device_role_ok(role))
        return cmc_fail(CMC_ERR_USAGE, "--role: must be urgent_care or clinician");
    plan_uuid_new(device_id);
    cry_random(rnd, sizeof rnd);
    for (size_t i = 0; i < HUB_CODE_CHARS; i++)
        norm[i] = hub_b32[rnd[i] & 31];
    norm[HUB_CODE_CHARS] = '\0';
    cry_hash(hash, norm, HUB_CODE_CHARS);
    snprintf(code, HUB_CODE_LEN + 1, "%.4s-%.4s-%.4s-%.4s", norm, norm + 4, norm + 8, norm + 12);
    cry_memzero(norm, sizeof norm);
    cry_memzero(rnd, sizeof rnd);

    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_run(h, "device add",
                         "INSERT INTO devices(device_id, name, scope, role, state, created)"
                         " VALUES(?1, ?2, ?3, ?4, 'pending', ?5)",
                         HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(name), HUB_TEXT(scope),
                                  HUB_TEXT(role), HUB_INT(now)))) != CMC_OK)
        goto out;
    if ((rc = hub_db_run(h, "enrollment code",
                         "INSERT INTO enroll_codes(code_hash, device_id, expires)"
                         " VALUES(?1, ?2, ?3)",
                         HUB_ARGS(HUB_BLOB(hash, sizeof hash), HUB_TEXT(device_id),
                                  HUB_INT(now + HUB_CODE_TTL)))) != CMC_OK)
        goto out;
    rc = hub_tx_commit(h);
out:
    if (rc != CMC_OK) {
        hub_tx_rollback(h);
        cry_memzero(code, HUB_CODE_LEN + 1);
    }
    return rc;
}

#define HUB_DEVICE_COLS                                                                  \
    "d.device_id, d.name, d.scope, d.role, d.state, d.wipe, d.cursor, d.created,"         \
    " d.last_seen, d.lease_days, (SELECT days FROM scope_leases s WHERE s.scope = d.scope)," \
    " d.last_rollback, d.rollbacks, d.wiped_at, d.proven, d.audit_alarm, d.audit_alarm_at"

static void hub_device_from_row(sqlite3_stmt *st, struct hub_device_info *d)
{
    memset(d, 0, sizeof *d);
    hub_col_copy(st, 0, d->device_id, sizeof d->device_id);
    hub_col_copy(st, 1, d->name, sizeof d->name);
    hub_col_copy(st, 2, d->scope, sizeof d->scope);
    hub_col_copy(st, 3, d->role, sizeof d->role);
    hub_col_copy(st, 4, d->state, sizeof d->state);
    d->wipe = sqlite3_column_int(st, 5);
    d->cursor = (uint64_t)sqlite3_column_int64(st, 6);
    d->created = sqlite3_column_int64(st, 7);
    d->last_seen = sqlite3_column_int64(st, 8);
    /* The device's own setting wins over its scope's, which wins over the default. */
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
        d->lease_days = sqlite3_column_int64(st, 9);
        snprintf(d->lease_from, sizeof d->lease_from, "device");
    } else if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
        d->lease_days = sqlite3_column_int64(st, 10);
        snprintf(d->lease_from, sizeof d->lease_from, "scope");
    } else {
        d->lease_days = HUB_LEASE_DAYS;
        snprintf(d->lease_from, sizeof d->lease_from, "default");
    }
    d->last_rollback = sqlite3_column_int64(st, 11);
    d->rollbacks = sqlite3_column_int64(st, 12);
    d->wiped_at = sqlite3_column_int64(st, 13);
    d->proven = (uint64_t)sqlite3_column_int64(st, 14);
    hub_col_copy(st, 15, d->audit_alarm, sizeof d->audit_alarm);
    d->audit_alarm_at = sqlite3_column_int64(st, 16);
    if (d->proven < d->cursor)
        d->proven = d->cursor;
}

const char *hub_device_state_label(const struct hub_device_info *d)
{
    if (d->wipe && strcmp(d->state, "active") == 0)
        return "wipe ordered";
    return d->state;
}

int hub_device_list(hub *h, int (*cb)(const struct hub_device_info *, void *), void *ctx)
{
    struct hub_device_info d;
    struct hub_rows r;
    hub_rows_open(h, &r, "device list",
                  "SELECT " HUB_DEVICE_COLS " FROM devices d ORDER BY d.created, d.name", NULL, 0);
    while (hub_rows_next(&r)) {
        hub_device_from_row(r.st, &d);
        r.rc = cb(&d, ctx);
    }
    return hub_rows_end(&r);
}

int hub_device_get(hub *h, const char *device_id, struct hub_device_info *out)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_stmt(h, HUB_STMT_DEVICE,
                      "SELECT " HUB_DEVICE_COLS " FROM devices d WHERE d.device_id = ?1", &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        hub_device_from_row(st, out);
        rc = CMC_OK;
    } else {
        rc = src == SQLITE_DONE ? cmc_fail(CMC_ERR_NOT_FOUND, "no device %s", device_id)
                                : hub_db_fail(h, src, "device");
    }
    sqlite3_reset(st); /* kept by the handle */
    return rc;
}

/* Runs an UPDATE of one device (args[0], ?1: its id); CMC_ERR_NOT_FOUND when there is none. */
static int hub_device_update(hub *h, const char *what, const char *sql,
                             const struct hub_arg *args, size_t n)
{
    int rc = hub_db_run(h, what, sql, args, n);
    if (rc == CMC_OK && sqlite3_changes(h->db) == 0)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no device %s", (const char *)args[0].p);
    return rc;
}

/* Revokes a device, or orders its wipe (`wipe`) while it can still fetch the order. */
static int hub_device_order(hub *h, const char *device_id, int wipe)
{
    struct hub_device_info d;
    int rc = hub_device_get(h, device_id, &d);
    if (rc != CMC_OK)
        return rc;
    if (wipe && strcmp(d.state, "revoked") == 0)
        return cmc_fail(CMC_ERR_STATE, "device %s is revoked: it can no longer fetch a wipe order",
                        device_id);
    if (wipe && strcmp(d.state, "wiped") == 0)
        return cmc_fail(CMC_ERR_STATE, "device %s has already confirmed its wipe", device_id);
    rc = hub_device_update(h, wipe ? "device wipe" : "device revoke",
                           wipe ? "UPDATE devices SET wipe = 1 WHERE device_id = ?1"
                                : "UPDATE devices SET state = 'revoked' WHERE device_id = ?1",
                           HUB_ARGS(HUB_TEXT(device_id)));
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_INFO, "device %s (%s) %s", d.name, device_id,
                 wipe ? "marked for wiping" : "revoked");
    return rc;
}

int hub_device_revoke(hub *h, const char *device_id)
{
    return hub_device_order(h, device_id, 0);
}

int hub_device_wipe(hub *h, const char *device_id)
{
    return hub_device_order(h, device_id, 1);
}

static int hub_lease_days_ok(int64_t days)
{
    if (days > HUB_LEASE_MAX)
        return cmc_fail(CMC_ERR_USAGE, "lease: at most %d days (0 = no lease)", HUB_LEASE_MAX);
    return CMC_OK;
}

int hub_device_lease_set(hub *h, const char *device_id, int64_t days)
{
    int rc;
    if ((rc = hub_lease_days_ok(days)) != CMC_OK)
        return rc;
    rc = hub_device_update(h, "device lease",
                           "UPDATE devices SET lease_days = ?2 WHERE device_id = ?1",
                           HUB_ARGS(HUB_TEXT(device_id), days < 0 ? HUB_NULL : HUB_INT(days)));
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_INFO, "device %s: lease %s", device_id,
                 days < 0 ? "setting removed" : "set");
    return rc;
}

int hub_scope_lease_set(hub *h, const char *scope, int64_t days)
{
    char kind[16];
    const char *value;
    int rc;
    if ((rc = hub_scope_parse(scope, kind, &value)) != CMC_OK)
        return rc;
    if ((rc = hub_lease_days_ok(days)) != CMC_OK)
        return rc;
    const struct hub_arg args[] = {HUB_TEXT(scope), HUB_INT(days)};
    /* the DELETE takes the scope alone */
    return hub_db_run(h, "scope lease",
                      days < 0 ? "DELETE FROM scope_leases WHERE scope = ?1"
                               : "INSERT OR REPLACE INTO scope_leases(scope, days) VALUES(?1, ?2)",
                      args, days < 0 ? 1 : 2);
}

int hub_lease_days(hub *h, const char *device_id, int64_t *days, const char **from)
{
    struct hub_device_info d;
    int rc = hub_device_get(h, device_id, &d);
    if (rc != CMC_OK)
        return rc;
    *days = d.lease_days;
    if (from != NULL)
        *from = strcmp(d.lease_from, "device") == 0  ? "device"
                : strcmp(d.lease_from, "scope") == 0 ? "scope"
                                                     : "default";
    return CMC_OK;
}

int hub_enroll(hub *h, const char *code, const uint8_t device_pk[CRY_SIGN_PK_BYTES],
               const char *name, struct hub_enrollment *out)
{
    char norm[HUB_CODE_CHARS + 1];
    uint8_t hash[CRY_HASH_BYTES];
    struct hub_device_info d;
    sqlite3_stmt *st = NULL;
    int rc, src, repeat = 0;
    int64_t now = plat_wall_now();

    memset(out, 0, sizeof *out);
    if (name != NULL && strlen(name) > HUB_NAME_MAX)
        return cmc_fail(CMC_ERR_INVALID, "name: longer than %d bytes", HUB_NAME_MAX);
    if ((rc = hub_code_normalise(code, norm)) != CMC_OK)
        return rc;
    cry_hash(hash, norm, HUB_CODE_CHARS);
    cry_memzero(norm, sizeof norm);
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_db_prepare(h, "SELECT e.device_id, e.used, d.pk FROM enroll_codes e"
                                " JOIN devices d ON d.device_id = e.device_id"
                                " WHERE e.code_hash = ?1 AND e.expires > ?2", &st)) != CMC_OK)
        goto out;
    sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE
                 ? cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired")
                 : hub_db_fail(h, src, "enrollment");
        goto out;
    }
    hub_col_copy(st, 0, out->device_id, sizeof out->device_id);
    /* The same device key presenting its own, already redeemed code again within the code's
     * life: its answer was lost (network, hub out of memory), so it gets the answer again
     * rather than a code it can never use. Nothing changes; any other key is refused. */
    repeat = sqlite3_column_int(st, 1) != 0;
    if (repeat && !(sqlite3_column_bytes(st, 2) == CRY_SIGN_PK_BYTES &&
                    cry_memeq(sqlite3_column_blob(st, 2), device_pk, CRY_SIGN_PK_BYTES))) {
        rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = hub_device_get(h, out->device_id, &d)) != CMC_OK)
        goto out;
    if (strcmp(d.state, repeat ? "active" : "pending") != 0) {
        rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "enrollment code is unknown, used or expired");
        goto out;
    }
    /* the seed of its forward-secure audit seals (hub/intake_seal.h) */
    if ((rc = hub_audit_seal_enroll(h, out->device_id, out->audit_seed)) != CMC_OK)
        goto out;
    if (repeat) {
        if ((rc = hub_tx_commit(h)) != CMC_OK)
            goto out;
        goto answer;
    }
    if ((rc = hub_db_run(h, "enrollment", "UPDATE enroll_codes SET used = 1 WHERE code_hash = ?1",
                         HUB_ARGS(HUB_BLOB(hash, sizeof hash)))) != CMC_OK)
        goto out;
    if ((rc = hub_db_run(h, "enrollment",
                         "UPDATE devices SET pk = ?2, state = 'active', enrolled = ?3,"
                         " last_seen = ?3 WHERE device_id = ?1",
                         HUB_ARGS(HUB_TEXT(out->device_id), HUB_BLOB(device_pk, CRY_SIGN_PK_BYTES),
                                  HUB_INT(now)))) != CMC_OK)
        goto out;
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        goto out;
    plat_log(PLAT_LOG_INFO, "device %s enrolled", out->device_id);
answer:
    memcpy(out->hub_pk, h->pk, CRY_SIGN_PK_BYTES);
    snprintf(out->scope, sizeof out->scope, "%s", d.scope);
    snprintf(out->role, sizeof out->role, "%s", d.role);
    out->lease_days = (int)d.lease_days;
    out->hub_time = now;
out:
    sqlite3_finalize(st);
    if (rc != CMC_OK) {
        hub_tx_rollback(h);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* ---- signed requests ------------------------------------------------------------------- */

/* Seen nonces, in memory and per store connection: remembering one must not cost a store
 * write, and a restart forgets them (the +-HUB_CLOCK_SKEW time check still bounds any
 * replay, and device requests are idempotent). Two generations: a nonce goes into the
 * current one, which becomes the previous one once it is HUB_NONCE_KEEP seconds old and is
 * dropped, whole, at the next turn; so every nonce is remembered for at least
 * HUB_NONCE_KEEP seconds, and at most about twice that.
 *
 * An entry is the first HUB_NONCE_DIGEST bytes of BLAKE2b-256(salt || device id || nonce),
 * with a random salt per connection: fixed-size entries, and a device cannot choose nonces
 * that pile up on one slot of the table, since it does not know the salt. Two different
 * (device, nonce) pairs share an entry with probability about n^2 / 2^129 for n entries.
 * Open addressing, linear probing, at most half full; an all-zero entry is an empty slot. */
#define HUB_NONCE_DIGEST 16
#define HUB_NONCE_MIN_SLOTS 1024 /* power of two */
#define HUB_NONCES_NAME "cmc-hub-nonces" /* the connection's client data */

struct hub_nonce_gen {
    uint8_t (*slots)[HUB_NONCE_DIGEST];
    size_t cap, used;
};

struct hub_nonces {
    uint8_t salt[CRY_HASH_BYTES];
    struct hub_nonce_gen cur, prev;
    int64_t cur_started;
};

static void hub_nonce_gen_free(struct hub_nonce_gen *g)
{
    cmc_free(g->slots);
    memset(g, 0, sizeof *g);
}

static void hub_nonces_free(void *p)
{
    struct hub_nonces *n = p;
    if (n == NULL)
        return;
    hub_nonce_gen_free(&n->cur);
    hub_nonce_gen_free(&n->prev);
    cry_memzero(n->salt, sizeof n->salt);
    cmc_free(n);
}

static size_t hub_nonce_slot(const struct hub_nonce_gen *g, const uint8_t d[HUB_NONCE_DIGEST])
{
    uint64_t x;
    memcpy(&x, d, sizeof x);
    return (size_t)x & (g->cap - 1);
}

static int hub_nonce_empty(const uint8_t d[HUB_NONCE_DIGEST])
{
    static const uint8_t zero[HUB_NONCE_DIGEST];
    return memcmp(d, zero, HUB_NONCE_DIGEST) == 0;
}

static int hub_nonce_gen_has(const struct hub_nonce_gen *g, const uint8_t d[HUB_NONCE_DIGEST])
{
    if (g->cap == 0)
        return 0;
    for (size_t i = hub_nonce_slot(g, d); !hub_nonce_empty(g->slots[i]); i = (i + 1) & (g->cap - 1))
        if (memcmp(g->slots[i], d, HUB_NONCE_DIGEST) == 0)
            return 1;
    return 0;
}

/* Adds d, which is not there yet, to a generation with room for it. */
static void hub_nonce_gen_put(struct hub_nonce_gen *g, const uint8_t d[HUB_NONCE_DIGEST])
{
    size_t i = hub_nonce_slot(g, d);
    while (!hub_nonce_empty(g->slots[i]))
        i = (i + 1) & (g->cap - 1);
    memcpy(g->slots[i], d, HUB_NONCE_DIGEST);
    g->used++;
}

/* Makes room for one more entry, keeping the table at most half full. */
static int hub_nonce_gen_reserve(struct hub_nonce_gen *g)
{
    struct hub_nonce_gen bigger;
    if ((g->used + 1) * 2 <= g->cap)
        return CMC_OK;
    bigger.cap = g->cap != 0 ? g->cap * 2 : HUB_NONCE_MIN_SLOTS;
    bigger.used = 0;
    if (bigger.cap < g->cap || (bigger.slots = cmc_calloc(bigger.cap, HUB_NONCE_DIGEST)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "request nonces");
    for (size_t i = 0; i < g->cap; i++)
        if (!hub_nonce_empty(g->slots[i]))
            hub_nonce_gen_put(&bigger, g->slots[i]);
    cmc_free(g->slots);
    *g = bigger;
    return CMC_OK;
}

/* Records a device's nonce as seen at `now`; *seen is set (and nothing recorded) when it
 * was seen already. */
static int hub_nonce_record(hub *h, const char *device_id, const char *nonce, int64_t now,
                            int *seen)
{
    struct hub_nonces *n = sqlite3_get_clientdata(h->db, HUB_NONCES_NAME);
    uint8_t in[CRY_HASH_BYTES + REQSIG_DEVICE_ID_LEN + REQSIG_NONCE_HEX_LEN];
    uint8_t digest[CRY_HASH_BYTES];
    int rc;

    if (hub_store_shared(h)) /* every node must refuse it: kept in the database */
        return hub_store_nonce(h, device_id, nonce, now, 2 * HUB_NONCE_KEEP, seen);
    *seen = 0;
    if (n == NULL) {
        if ((n = cmc_calloc(1, sizeof *n)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "request nonces");
        cry_random(n->salt, sizeof n->salt);
        n->cur_started = now;
        /* on failure SQLite has already called the destructor */
        if (sqlite3_set_clientdata(h->db, HUB_NONCES_NAME, n, hub_nonces_free) != SQLITE_OK)
            return cmc_fail(CMC_ERR_NOMEM, "request nonces");
    }
    /* A clock set back leaves the generations alone; nonces are then kept longer. */
    if (now - n->cur_started >= HUB_NONCE_KEEP) {
        hub_nonce_gen_free(&n->prev);
        if (now - n->cur_started >= 2 * HUB_NONCE_KEEP)
            hub_nonce_gen_free(&n->cur); /* idle for two windows: all of it is older */
        n->prev = n->cur;
        memset(&n->cur, 0, sizeof n->cur);
        n->cur_started = now;
    }
    memcpy(in, n->salt, CRY_HASH_BYTES);
    memcpy(in + CRY_HASH_BYTES, device_id, REQSIG_DEVICE_ID_LEN);
    memcpy(in + CRY_HASH_BYTES + REQSIG_DEVICE_ID_LEN, nonce, REQSIG_NONCE_HEX_LEN);
    cry_hash(digest, in, sizeof in);
    cry_memzero(in, CRY_HASH_BYTES);
    if (hub_nonce_empty(digest))
        digest[0] = 1;
    if (hub_nonce_gen_has(&n->cur, digest) || hub_nonce_gen_has(&n->prev, digest)) {
        *seen = 1;
        return CMC_OK;
    }
    if ((rc = hub_nonce_gen_reserve(&n->cur)) != CMC_OK)
        return rc;
    hub_nonce_gen_put(&n->cur, digest);
    return CMC_OK;
}

int hub_device_key(hub *h, const char *device_id, uint8_t pk[CRY_SIGN_PK_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, "SELECT pk FROM devices WHERE device_id = ?1", &st);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW && sqlite3_column_bytes(st, 0) == CRY_SIGN_PK_BYTES)
        memcpy(pk, sqlite3_column_blob(st, 0), CRY_SIGN_PK_BYTES);
    else if (src == SQLITE_ROW || src == SQLITE_DONE)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no enrolled device %s", device_id);
    else
        rc = hub_db_fail(h, src, "device key");
    sqlite3_finalize(st);
    return rc;
}

int hub_auth_request(hub *h, const struct hub_signed_request *req,
                     char device_id[PLAN_ID_LEN + 1], int *replay)
{
    struct reqsig_request parsed;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    sqlite3_stmt *dev = NULL, *st = NULL;
    int64_t now = plat_wall_now(), last_seen = INT64_MIN;
    int rc, src, seen;

    *replay = 0;
    device_id[0] = '\0';
    if (req->device == NULL && req->time == NULL && req->nonce == NULL && req->signature == NULL)
        return cmc_fail(CMC_ERR_UNAUTHORIZED, "request is not signed (X-CMC-Device, X-CMC-Time,"
                                              " X-CMC-Nonce and X-CMC-Signature are required)");
    if ((rc = reqsig_parse(req->device, req->time, req->nonce, req->signature, &parsed)) != CMC_OK)
        return rc == CMC_ERR_NOMEM ? rc : hub_fail_wrap(CMC_ERR_UNAUTHORIZED, "request signature headers");

    if ((rc = hub_stmt(h, HUB_STMT_DEVICE_AUTH,
                       "SELECT pk, state, last_seen FROM devices WHERE device_id = ?1", &dev)) !=
        CMC_OK)
        return rc;
    sqlite3_bind_text(dev, 1, parsed.device_id, -1, SQLITE_STATIC);
    src = sqlite3_step(dev);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? cmc_fail(CMC_ERR_UNAUTHORIZED, "unknown device")
                                : hub_db_fail(h, src, "device");
    } else if (strcmp(hub_col_text(dev, 1), "active") != 0 ||
               sqlite3_column_bytes(dev, 0) != CRY_SIGN_PK_BYTES) {
        rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "device %s is %s", parsed.device_id,
                      strcmp(hub_col_text(dev, 1), "revoked") == 0 ? "revoked" : "not enrolled");
    } else {
        memcpy(pk, sqlite3_column_blob(dev, 0), CRY_SIGN_PK_BYTES);
        last_seen = sqlite3_column_type(dev, 2) == SQLITE_NULL ? INT64_MIN
                                                               : sqlite3_column_int64(dev, 2);
    }
    sqlite3_reset(dev); /* kept by the handle */
    if (rc != CMC_OK)
        return rc;

    if (req->checked_pk != NULL && cry_memeq(req->checked_pk, pk, CRY_SIGN_PK_BYTES)) {
        /* checked by the caller against this very key, outside the hub's lock */
        if (!req->checked_ok) {
            rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature does not verify");
            goto out;
        }
    } else if ((rc = reqsig_verify(&parsed, pk, req->method, req->path, req->body,
                                   req->body_len)) != CMC_OK) {
        /* Out of memory is the hub's trouble (5xx, the device retries); a 401 would stop
         * the device for good. */
        if (rc != CMC_ERR_NOMEM)
            rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "request signature does not verify");
        goto out;
    }
    /* The time is checked only once the signature holds, so nobody learns the hub's
     * clock without a device key. */
    if ((rc = reqsig_check_time(&parsed, now, NULL)) != CMC_OK)
        goto out;
    if ((rc = hub_nonce_record(h, parsed.device_id, parsed.nonce, now, &seen)) != CMC_OK)
        goto out;
    if (seen) {
        *replay = 1;
        rc = cmc_fail(CMC_ERR_UNAUTHORIZED, "request replayed (nonce already used)");
        goto out;
    }
    /* last seen to the minute: a poll every few seconds need not write the store */
    if (last_seen == INT64_MIN || last_seen < now - 60) {
        if ((rc = hub_db_prepare(h, "UPDATE devices SET last_seen = ?2 WHERE device_id = ?1"
                                    " AND (last_seen IS NULL OR last_seen < ?2 - 60)", &st)) !=
            CMC_OK)
            goto out;
        sqlite3_bind_text(st, 1, parsed.device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        src = sqlite3_step(st);
        if (src != SQLITE_DONE) {
            rc = hub_db_fail(h, src, "device");
            goto out;
        }
    }
    snprintf(device_id, PLAN_ID_LEN + 1, "%s", parsed.device_id);
    rc = CMC_OK;
out:
    sqlite3_finalize(st);
    return rc;
}
