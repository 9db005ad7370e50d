/*
 * store.c - the hub store: the key file, opening SQLCipher, the schema, the change log,
 * plan versions, users and small shared helpers.
 */
#include "hub/intake_seal.h"
#include "hub/internal.h"
#include "hub/feed_group.h"
#include "hub/device_users.h"
#include "hub/clinical.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/db.h"
#include "sync/plan.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_DB_FILE "hub.db"
#define HUB_KEY_FILE "hub.key"

static const char hub_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, role TEXT NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS plans(plan_id TEXT PRIMARY KEY, nhs TEXT NOT NULL UNIQUE,"
    " latest INTEGER NOT NULL, latest_status INTEGER NOT NULL,"
    " published INTEGER NOT NULL DEFAULT 0, region TEXT, team TEXT, care_home TEXT,"
    " withdrawn INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS plans_seq ON plans(seq);"
    "CREATE INDEX IF NOT EXISTS plans_region ON plans(region, seq);"
    "CREATE INDEX IF NOT EXISTS plans_home ON plans(care_home, seq);"
    /* a rowid table: bodies are appended in insertion order, the key index stays small */
    "CREATE TABLE IF NOT EXISTS versions(plan_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " status INTEGER NOT NULL, body BLOB NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    " at INTEGER NOT NULL, UNIQUE(plan_id, version));"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, plan_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_plan ON events(plan_id, id);"
    "CREATE TABLE IF NOT EXISTS changes(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " plan_id TEXT NOT NULL, what TEXT NOT NULL, at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS caseload(team TEXT NOT NULL, nhs TEXT NOT NULL,"
    " PRIMARY KEY(team, nhs)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS caseload_nhs ON caseload(nhs);"
    "CREATE TABLE IF NOT EXISTS devices(device_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " scope TEXT NOT NULL, role TEXT NOT NULL, pk BLOB, state TEXT NOT NULL,"
    " wipe INTEGER NOT NULL DEFAULT 0, cursor INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL, enrolled INTEGER, last_seen INTEGER);"
    "CREATE TABLE IF NOT EXISTS enroll_codes(code_hash BLOB PRIMARY KEY,"
    " device_id TEXT NOT NULL, expires INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS held(device_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " to_cursor INTEGER NOT NULL, version INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, plan_id, to_cursor)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS held_cursor ON held(device_id, to_cursor);"
    "CREATE TABLE IF NOT EXISTS nonces(device_id TEXT NOT NULL, nonce TEXT NOT NULL,"
    " at INTEGER NOT NULL, PRIMARY KEY(device_id, nonce)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS nonces_at ON nonces(at);"
    "CREATE TABLE IF NOT EXISTS pushes(device_id TEXT NOT NULL, idem TEXT NOT NULL,"
    " plan_id TEXT NOT NULL, version INTEGER NOT NULL, at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, idem)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS audit(device_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " prev BLOB NOT NULL, hash BLOB NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL,"
    " plan_id TEXT NOT NULL, identifier TEXT NOT NULL, action TEXT NOT NULL,"
    " wall INTEGER NOT NULL, mono INTEGER NOT NULL, received INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS audit_plan ON audit(plan_id);"
    "CREATE TABLE IF NOT EXISTS acks(device_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " at INTEGER NOT NULL, PRIMARY KEY(device_id, plan_id)) WITHOUT ROWID;"
    "";

/* Migration 2: accountability and lost devices. A device's own lease setting (NULL: its
 * scope's, else the default) and its rollbacks; per-scope lease settings; every purge a
 * device was sent, kept until the device acknowledges it (and reopened when the device turns
 * out to have been restored from an older copy); and view-log forks. */
static const char hub_schema_2[] =
    "ALTER TABLE devices ADD COLUMN lease_days INTEGER;"
    "ALTER TABLE devices ADD COLUMN last_rollback INTEGER;"
    "ALTER TABLE devices ADD COLUMN rollbacks INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN wiped_at INTEGER;"
    "ALTER TABLE devices ADD COLUMN proven INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE scope_leases(scope TEXT PRIMARY KEY, days INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE purges(device_id TEXT NOT NULL, plan_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " reason TEXT NOT NULL, cursor INTEGER NOT NULL, sent INTEGER NOT NULL, acked INTEGER,"
    " PRIMARY KEY(device_id, plan_id)) WITHOUT ROWID;"
    "CREATE INDEX purges_plan ON purges(plan_id);"
    "CREATE INDEX purges_open ON purges(device_id, acked, seq);"
    /* A device restored from an older copy continues its view log from an earlier entry:
     * the new line is kept as a fork beside the old one, so both are evidence. */
    "CREATE TABLE audit_forked(device_id TEXT NOT NULL, fork INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " prev BLOB NOT NULL, hash BLOB NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL,"
    " plan_id TEXT NOT NULL, identifier TEXT NOT NULL, action TEXT NOT NULL,"
    " wall INTEGER NOT NULL, mono INTEGER NOT NULL, received INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, fork, seq)) WITHOUT ROWID;"
    "INSERT INTO audit_forked SELECT device_id, 0, seq, prev, hash, user, role, plan_id,"
    " identifier, action, wall, mono, received FROM audit;"
    "DROP TABLE audit;"
    "ALTER TABLE audit_forked RENAME TO audit;"
    "CREATE INDEX audit_plan ON audit(plan_id);"
    "CREATE INDEX audit_identifier ON audit(identifier);"
    "CREATE INDEX audit_seq ON audit(device_id, seq);";

/* Migration 3: holdings keyed by small integers. Plans get a stable number (`num`, the rowid
 * made explicit, so VACUUM cannot renumber it); devices get one in `holders` when first sent
 * something. `holdings` keeps one row per device and plan: the version the newest page gave
 * it and that page's to_cursor; while that page is unproven, the holding it replaced
 * (prev_version, prev_cursor; NULL: none), which is always a proven one (a page never
 * carries a plan an unproven page carries). `unproven` names each page the device has not
 * yet proven by its to_cursor, with the plan numbers it carried (a JSON array), so a pull
 * that shows a page was not applied restores exactly its rows (docs/STORAGE.md, "Hub
 * store"). The old `held` rows carry over: each device's newest row per plan, and the rows
 * beyond its cursor as its unproven pages with the row they replaced. */
static const char hub_schema_3[] =
    "CREATE TABLE plans_numbered(num INTEGER PRIMARY KEY AUTOINCREMENT,"
    " plan_id TEXT NOT NULL UNIQUE, nhs TEXT NOT NULL UNIQUE,"
    " latest INTEGER NOT NULL, latest_status INTEGER NOT NULL,"
    " published INTEGER NOT NULL DEFAULT 0, region TEXT, team TEXT, care_home TEXT,"
    " withdrawn INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, created INTEGER NOT NULL);"
    "INSERT INTO plans_numbered(num, plan_id, nhs, latest, latest_status, published, region,"
    " team, care_home, withdrawn, seq, created) SELECT rowid, plan_id, nhs, latest,"
    " latest_status, published, region, team, care_home, withdrawn, seq, created FROM plans"
    " ORDER BY rowid;"
    "DROP TABLE plans;"
    "ALTER TABLE plans_numbered RENAME TO plans;"
    "CREATE INDEX plans_seq ON plans(seq);"
    "CREATE INDEX plans_region ON plans(region, seq);"
    "CREATE INDEX plans_home ON plans(care_home, seq);"
    "CREATE TABLE holders(num INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL UNIQUE);"
    "CREATE TABLE unproven(dev INTEGER NOT NULL, to_cursor INTEGER NOT NULL, plans TEXT NOT NULL,"
    " PRIMARY KEY(dev, to_cursor)) WITHOUT ROWID;"
    "CREATE TABLE holdings(dev INTEGER NOT NULL, plan INTEGER NOT NULL, version INTEGER NOT NULL,"
    " to_cursor INTEGER NOT NULL, prev_version INTEGER, prev_cursor INTEGER,"
    " PRIMARY KEY(dev, plan)) WITHOUT ROWID;"
    "INSERT INTO holders(device_id) SELECT device_id FROM devices"
    " WHERE device_id IN (SELECT device_id FROM held) ORDER BY created, device_id;"
    "INSERT INTO holdings(dev, plan, version, to_cursor, prev_version, prev_cursor)"
    " SELECT hd.num, p.num, n.version, n.to_cursor, pr.version, pr.to_cursor FROM held n"
    " JOIN holders hd ON hd.device_id = n.device_id"
    " JOIN devices d ON d.device_id = n.device_id"
    " JOIN plans p ON p.plan_id = n.plan_id"
    " LEFT JOIN held pr ON n.to_cursor > d.cursor AND pr.device_id = n.device_id"
    "  AND pr.plan_id = n.plan_id AND pr.to_cursor = (SELECT max(x.to_cursor) FROM held x"
    "  WHERE x.device_id = n.device_id AND x.plan_id = n.plan_id AND x.to_cursor <= d.cursor)"
    " WHERE n.to_cursor = (SELECT max(y.to_cursor) FROM held y"
    "  WHERE y.device_id = n.device_id AND y.plan_id = n.plan_id);"
    "INSERT INTO unproven(dev, to_cursor, plans)"
    " SELECT h.dev, h.to_cursor, json_group_array(h.plan) FROM holdings h"
    " JOIN holders hd ON hd.num = h.dev JOIN devices d ON d.device_id = hd.device_id"
    " WHERE h.to_cursor > d.cursor GROUP BY h.dev, h.to_cursor;"
    "DROP TABLE held;"
    /* seen request nonces are kept in memory (hub/devices.c) */
    "DROP TABLE nonces;";

/* ---- roles ----------------------------------------------------------------------------- */

static const char *const hub_role_names[] = {"", "gp", "clinician", "admin", "patient"};

/* HUB_ROLE_NONE if unknown. */
static int hub_role_from_name(const char *name)
{
    if (name == NULL)
        return HUB_ROLE_NONE;
    for (int i = 1; i < (int)(sizeof hub_role_names / sizeof hub_role_names[0]); i++)
        if (strcmp(name, hub_role_names[i]) == 0)
            return i;
    return HUB_ROLE_NONE;
}

const char *hub_role_name(int role)
{
    if (role <= 0 || role >= (int)(sizeof hub_role_names / sizeof hub_role_names[0]))
        return NULL;
    return hub_role_names[role];
}

/* ---- SQL helpers ----------------------------------------------------------------------- */

int hub_db_fail(hub *h, int rc, const char *what)
{
    char where[128];
    snprintf(where, sizeof where, "hub store (%s)", what);
    /* Callers pass what a step answered when it was not what they expected: a row or
     * "done" in the wrong place is still a failure. */
    if (db_map_code(rc) == CMC_OK)
        return cmc_fail(CMC_ERR_DB, "%s: unexpected result", where);
    return hst_error(h != NULL ? h->db : NULL, rc, where);
}

int hub_db_exec(hub *h, const char *sql)
{
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return hub_db_fail(h, rc, "statement");
    return CMC_OK;
}

int hub_db_prepare(hub *h, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(h->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return hub_db_fail(h, rc, "prepare");
    }
    return CMC_OK;
}

int hub_stmt_keep(hub *h, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out)
{
    sqlite3_stmt *st = *slot;
    int rc;
    *out = NULL;
    if (st == NULL) {
        if ((rc = hub_db_prepare(h, sql, &st)) != CMC_OK)
            return rc;
        *slot = st;
    } else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    *out = st;
    return CMC_OK;
}

int hub_stmt(hub *h, enum hub_stmt_slot slot, const char *sql, sqlite3_stmt **out)
{
    return hub_stmt_keep(h, &h->stmt[slot], sql, out);
}

void hub_stmt_reset_all(hub *h)
{
    for (size_t i = 0; i < HUB_STMT_COUNT; i++)
        if (h->stmt[i] != NULL)
            sqlite3_reset(h->stmt[i]);
    for (size_t i = 0; i < HUB_PART_COUNT; i++)
        if (h->part[i].state != NULL)
            h->part[i].reset(h->part[i].state);
}

/* Runs a kept statement that returns no rows (transaction control). */
static int hub_stmt_run(hub *h, enum hub_stmt_slot slot, const char *sql, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_stmt(h, slot, sql, &st);
    if (rc != CMC_OK)
        return rc;
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, what);
}

int hub_tx_begin(hub *h)
{
    hub_group_flush(h); /* a transaction of its own ends an open group commit first */
    return hub_stmt_run(h, HUB_STMT_BEGIN, "BEGIN IMMEDIATE", "begin");
}

int hub_tx_commit(hub *h)
{
    /* No kept statement may still be stepping when the transaction ends. */
    hub_stmt_reset_all(h);
    return hub_stmt_run(h, HUB_STMT_COMMIT, "COMMIT", "commit");
}

void hub_tx_rollback(hub *h)
{
    /* An error path: the caller's detail stays, so nothing here may record another. */
    hub_stmt_reset_all(h);
    if (!sqlite3_get_autocommit(h->db))
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
}

int hub_tx_end(hub *h, int rc)
{
    if (rc == CMC_OK)
        rc = hub_tx_commit(h);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    return rc;
}

int hub_fail_wrap(int code, const char *prefix)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", cmc_errmsg());
    return cmc_fail(code, "%s: %s", prefix, detail);
}

const char *hub_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t != NULL ? (const char *)t : "";
}

void hub_col_copy(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", hub_col_text(st, col));
}

/* ---- small helpers --------------------------------------------------------------------- */

int hub_scope_parse(const char *scope, char kind[16], const char **value)
{
    static const char *const kinds[] = {"region", "team", "care_home"};
    if (scope == NULL)
        return cmc_fail(CMC_ERR_USAGE, "scope: missing (all, region:R, team:T or care_home:H)");
    if (strcmp(scope, "all") == 0) {
        snprintf(kind, 16, "all");
        *value = "";
        return CMC_OK;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(scope, kinds[i], n) == 0 && scope[n] == ':' && scope[n + 1] != '\0' &&
            strlen(scope) <= HUB_SCOPE_MAX) {
            snprintf(kind, 16, "%s", kinds[i]);
            *value = scope + n + 1;
            return CMC_OK;
        }
    }
    return cmc_fail(CMC_ERR_USAGE, "scope: must be all, region:R, team:T or care_home:H");
}

/* ---- opening --------------------------------------------------------------------------- */

static int hub_read_key(const char *dir, struct cry_secret **key_out)
{
    char path[4096];
    uint8_t *buf = NULL;
    size_t len = 0;
    struct cry_secret *key = NULL;
    int rc;

    *key_out = NULL;
    if ((rc = plat_path_join(path, sizeof path, dir, HUB_KEY_FILE)) != CMC_OK)
        return rc;
    if ((rc = plat_read_file(path, 256, &buf, &len)) != CMC_OK)
        goto out;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if ((rc = cry_secret_new(CRY_KEY_BYTES, &key)) != CMC_OK)
        goto out;
    if (len == 2 * CRY_KEY_BYTES) {
        if (cry_unhex(key->buf, CRY_KEY_BYTES, (const char *)buf) != CMC_OK) {
            rc = cmc_fail(CMC_ERR_CORRUPT, "%s: not 64 hex digits", path);
            goto out;
        }
    } else if (len == CRY_KEY_BYTES) {
        memcpy(key->buf, buf, CRY_KEY_BYTES); /* raw 32 bytes are accepted too */
    } else {
        rc = cmc_fail(CMC_ERR_CORRUPT, "%s: not a hub key (64 hex digits)", path);
        goto out;
    }
    *key_out = key;
    key = NULL;
    rc = CMC_OK;
out:
    if (buf != NULL) {
        cry_memzero(buf, len);
        cmc_free(buf);
    }
    cry_secret_free(key);
    return rc;
}

/* The store URL set by hub_use_db (NULL until then: $CMC_HUB_DB decides). */
static const char *hub_url;
static int hub_url_set;

void hub_use_db(const char *url)
{
    hub_url = url;
    hub_url_set = 1;
}

const char *hub_db_url(void)
{
    const char *url = hub_url_set ? hub_url : getenv("CMC_HUB_DB");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

int hub_store_shared(const hub *h)
{
    return h != NULL && hst_kind(h->db) == HST_PG;
}

/* Opens the store (the SQLCipher file keyed with `key`, or the PostgreSQL database) and
 * migrates it. */
static int hub_db_open(hub *h, const char *dir, const struct cry_secret *key)
{
    static const char *const steps[] = {hub_schema, hub_schema_2, hub_schema_3,
                                        hub_schema_clinical /* clinical.h */,
                                        hub_schema_audit_seal /* intake_seal.h */,
                                        hub_schema_device_users /* device_users.h */,
                                        hub_schema_rewinds /* store_backup.c */,
                                        hub_schema_lost_plans /* store_backup.c */,
                                        hub_schema_lost_plans_2 /* store_backup.c */};
    enum { N_STEPS = sizeof steps / sizeof steps[0], N_PG_BASE = 3 };
    const char *pg_steps[N_STEPS];
    const char *url = hub_db_url();
    char path[4096];
    int rc;

    if (url != NULL) {
        if (!hst_is_pg_url(url))
            return cmc_fail(CMC_ERR_USAGE, "--db: not a postgresql:// URL");
        if ((rc = hst_open_pg(url, &h->db)) != CMC_OK)
            return rc;
        for (size_t i = 0; i < N_STEPS; i++)
            pg_steps[i] = i == 0 ? hub_schema_pg : i < N_PG_BASE ? "" : steps[i];
        return hst_migrate(h->db, pg_steps, N_STEPS);
    }
    if ((rc = plat_path_join(path, sizeof path, dir, HUB_DB_FILE)) != CMC_OK)
        return rc;
    if ((rc = hst_open_sqlite(path, key, &h->db)) != CMC_OK)
        return rc;
    return hst_migrate(h->db, steps, N_STEPS);
}

int hub_meta_put(hub *h, const char *k, const void *v, size_t len)
{
    return hub_db_run(h, "meta", "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)",
                      HUB_ARGS(HUB_TEXT(k), HUB_BLOB(v, len)));
}

/* On PostgreSQL the signing key is kept sealed under the key file in DIR (XChaCha20-
 * Poly1305, the key name as associated data): the database and its backups never hold it
 * in the clear. On SQLCipher the whole file is encrypted under that key already. */
#define HUB_SEAL_AD "cmc-hub sign_sk"
#define HUB_SEALED_BYTES                                                                     \
    (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + CRY_SIGN_SK_BYTES +                      \
     crypto_aead_xchacha20poly1305_ietf_ABYTES)

static int hub_put_signing_key(hub *h, const struct cry_secret *key, const struct cry_secret *sk)
{
    uint8_t sealed[HUB_SEALED_BYTES];
    unsigned long long clen = 0;
    if (hst_kind(h->db) == HST_SQLITE)
        return hub_meta_put(h, "sign_sk", sk->buf, CRY_SIGN_SK_BYTES);
    cry_random(sealed, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, sk->buf, CRY_SIGN_SK_BYTES,
        (const uint8_t *)HUB_SEAL_AD, sizeof HUB_SEAL_AD - 1, NULL, sealed, key->buf);
    return hub_meta_put(h, "sign_sk_sealed", sealed, sizeof sealed);
}

/* Puts the signing key into secure memory from its row's bytes (`want` of them): as
 * stored on SQLCipher, opened with the key file's key on PostgreSQL (`sealed`). */
static int hub_set_signing_key(hub *h, const struct cry_secret *key, int sealed,
                               const uint8_t *v, size_t want)
{
    unsigned long long mlen = 0;
    int rc = cry_secret_new(CRY_SIGN_SK_BYTES, &h->sk);
    if (rc != CMC_OK)
        return rc;
    if (!sealed)
        memcpy(h->sk->buf, v, CRY_SIGN_SK_BYTES);
    else if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                 h->sk->buf, &mlen, NULL, v + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                 want - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                 (const uint8_t *)HUB_SEAL_AD, sizeof HUB_SEAL_AD - 1, v, key->buf) != 0)
        return cmc_fail(CMC_ERR_TAMPERED, "hub store: the key file does not open this"
                        " database's signing key (another hub's key, or an altered row)");
    cry_sign_public(h->sk, h->pk);
    return CMC_OK;
}

/* Loads the signing key from the store into secure memory. */
static int hub_load_signing_key(hub *h, const struct cry_secret *key)
{
    int sealed = hst_kind(h->db) == HST_PG;
    size_t want = sealed ? HUB_SEALED_BYTES : CRY_SIGN_SK_BYTES;
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "signing key", &st,
                        sealed ? "SELECT v FROM meta WHERE k = 'sign_sk_sealed'"
                               : "SELECT v FROM meta WHERE k = 'sign_sk'",
                        NULL, 0);
    if (rc == CMC_OK && st == NULL)
        rc = cmc_fail(CMC_ERR_CORRUPT, "hub store: no signing key");
    else if (rc == CMC_OK && (size_t)sqlite3_column_bytes(st, 0) != want)
        rc = cmc_fail(CMC_ERR_CORRUPT, "hub store: signing key has the wrong size");
    else if (rc == CMC_OK)
        rc = hub_set_signing_key(h, key, sealed, sqlite3_column_blob(st, 0), want);
    sqlite3_finalize(st);
    return rc;
}

void hub_close(hub *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < HUB_STMT_COUNT; i++)
        sqlite3_finalize(h->stmt[i]);
    for (size_t i = 0; i < HUB_PART_COUNT; i++)
        if (h->part[i].state != NULL)
            h->part[i].close(h->part[i].state);
    hst_close(h->db);
    cry_secret_free(h->sk);
    cry_secret_free(h->key);
    cmc_free(h);
}

/* The key file in DIR: read when it is there (a PostgreSQL hub's second node, or an init
 * over a kept directory), else made (0600). */
static int hub_key_file(const char *dir, int may_exist, struct cry_secret **key_out)
{
    char path[4096];
    char hex[2 * CRY_KEY_BYTES + 2];
    struct cry_secret *key = NULL;
    int rc;

    *key_out = NULL;
    if ((rc = plat_path_join(path, sizeof path, dir, HUB_KEY_FILE)) != CMC_OK)
        return rc;
    if (plat_exists(path)) {
        if (!may_exist)
            return cmc_fail(CMC_ERR_EXISTS, "%s: a hub key already exists", path);
        return hub_read_key(dir, key_out);
    }
    if ((rc = cry_secret_new(CRY_KEY_BYTES, &key)) != CMC_OK)
        return rc;
    cry_random(key->buf, CRY_KEY_BYTES);
    cry_hex(hex, key->buf, CRY_KEY_BYTES);
    hex[2 * CRY_KEY_BYTES] = '\n';
    hex[2 * CRY_KEY_BYTES + 1] = '\0';
    rc = plat_write_atomic(path, hex, 2 * CRY_KEY_BYTES + 1);
    cry_memzero(hex, sizeof hex);
    if (rc != CMC_OK) {
        cry_secret_free(key);
        return rc;
    }
    *key_out = key;
    return CMC_OK;
}

/* 1 when the open store already holds a hub (its signing key). */
static int hub_has_key(hub *h)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (hub_db_prepare(h, "SELECT 1 FROM meta WHERE k IN ('sign_sk', 'sign_sk_sealed')", &st) ==
        CMC_OK)
        found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* A handle on the store in DIR, opened and migrated with `key`. A PostgreSQL store is
 * shared by every node, so there it must already hold a hub (`want_hub`, to open one) or
 * not (to make one); a SQLCipher file was checked by its path. */
static int hub_handle_open(const char *dir, const struct cry_secret *key, int want_hub,
                           hub **out)
{
    hub *h;
    int rc;
    *out = NULL;
    if ((h = cmc_calloc(1, sizeof *h)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "hub handle");
    if ((rc = hub_db_open(h, dir, key)) == CMC_OK && hub_db_url() != NULL &&
        hub_has_key(h) != want_hub)
        rc = want_hub ? cmc_fail(CMC_ERR_NOT_FOUND, "that PostgreSQL database holds no hub store"
                                                    " (run cmc-hub init)")
                      : cmc_fail(CMC_ERR_EXISTS, "that PostgreSQL database already holds a hub"
                                                 " store");
    if (rc != CMC_OK) {
        hub_close(h);
        return rc;
    }
    *out = h;
    return CMC_OK;
}

int hub_init(const char *dir)
{
    char path[4096];
    struct cry_secret *key = NULL, *sk = NULL;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    int shared = hub_db_url() != NULL;
    hub *h = NULL;
    int rc;

    if ((rc = cry_init()) != CMC_OK)
        return rc;
    if ((rc = plat_mkdir_private(dir)) != CMC_OK)
        return rc;
    if ((rc = plat_path_join(path, sizeof path, dir, HUB_DB_FILE)) != CMC_OK)
        return rc;
    if (!shared && plat_exists(path))
        return cmc_fail(CMC_ERR_EXISTS, "%s: a hub store already exists", path);
    if ((rc = hub_key_file(dir, shared, &key)) != CMC_OK)
        goto out;
    if ((rc = hub_handle_open(dir, key, 0, &h)) != CMC_OK)
        goto out;
    if ((rc = cry_sign_keypair(pk, &sk)) != CMC_OK)
        goto out;
    if ((rc = hub_put_signing_key(h, key, sk)) != CMC_OK)
        goto out;
    if ((rc = hub_meta_put(h, "sign_pk", pk, CRY_SIGN_PK_BYTES)) != CMC_OK)
        goto out;
    rc = hub_new_generation(h);
out:
    cry_secret_free(key);
    cry_secret_free(sk);
    hub_close(h);
    return rc;
}

int hub_open(const char *dir, hub **out)
{
    char path[4096];
    struct cry_secret *key = NULL;
    int shared = hub_db_url() != NULL;
    hub *h = NULL;
    int rc;

    *out = NULL;
    if ((rc = cry_init()) != CMC_OK)
        return rc;
    if ((rc = plat_path_join(path, sizeof path, dir, shared ? HUB_KEY_FILE : HUB_DB_FILE)) != CMC_OK)
        return rc;
    if (!plat_exists(path))
        return cmc_fail(CMC_ERR_NOT_FOUND, shared ? "%s: no hub key file here (run cmc-hub init,"
                                                    " or copy the first node's hub.key)"
                                                  : "%s: no hub store here (run cmc-hub init)",
                        dir);
    if ((rc = hub_read_key(dir, &key)) != CMC_OK)
        goto out;
    if ((rc = hub_handle_open(dir, key, 1, &h)) != CMC_OK)
        goto out;
    if ((rc = hub_load_signing_key(h, key)) != CMC_OK)
        goto out;
    if ((rc = hub_restore_point(h)) != CMC_OK)
        goto out;
    h->key = key;
    key = NULL;
    *out = h;
    h = NULL;
    rc = CMC_OK;
out:
    cry_secret_free(key);
    hub_close(h);
    return rc;
}

void hub_public_key(const hub *h, uint8_t pk[CRY_SIGN_PK_BYTES])
{
    memcpy(pk, h->pk, CRY_SIGN_PK_BYTES);
}

int hub_head_seq(hub *h, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_stmt(h, HUB_STMT_HEAD, "SELECT coalesce(max(seq), 0) FROM changes", &st);
    if (rc != CMC_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(st, 0);
        rc = CMC_OK;
    } else {
        rc = hub_db_fail(h, src, "head");
    }
    sqlite3_reset(st);
    return rc;
}

int hub_store_nonce(hub *h, const char *device_id, const char *nonce, int64_t now, int64_t keep,
                    int *seen)
{
    static unsigned calls;
    sqlite3_stmt *st = NULL;
    int rc, src;

    *seen = 0;
    if ((calls++ & 1023) == 0) {
        if ((rc = hub_db_prepare(h, "DELETE FROM seen_nonces WHERE at < ?1", &st)) != CMC_OK)
            return rc;
        sqlite3_bind_int64(st, 1, now - keep);
        src = sqlite3_step(st);
        sqlite3_finalize(st);
        if (src != SQLITE_DONE)
            return hub_db_fail(h, src, "request nonces");
    }
    if ((rc = hub_db_prepare(h, "INSERT OR IGNORE INTO seen_nonces(device_id, nonce, at)"
                                " VALUES(?1, ?2, ?3)", &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, nonce, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return hub_db_fail(h, src, "request nonces");
    *seen = sqlite3_changes(h->db) == 0;
    return CMC_OK;
}

/* ---- users ----------------------------------------------------------------------------- */

static int hub_name_ok(const char *name, const char *what)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > HUB_NAME_MAX)
        return cmc_fail(CMC_ERR_USAGE, "%s: must be 1 to %d bytes", what, HUB_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20)
            return cmc_fail(CMC_ERR_USAGE, "%s: control characters are not allowed", what);
    return CMC_OK;
}

int hub_user_add(hub *h, const char *name, const char *role)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = hub_name_ok(name, "user name")) != CMC_OK)
        return rc;
    if (hub_role_from_name(role) == HUB_ROLE_NONE)
        return cmc_fail(CMC_ERR_USAGE, "role: must be gp, clinician, admin or patient");
    if ((rc = hub_db_prepare(h, "INSERT INTO users(name, role, created) VALUES(?1, ?2, ?3)",
                             &st)) != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, plat_wall_now());
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = CMC_OK;
    else if (db_map_code(src) == CMC_ERR_EXISTS)
        rc = cmc_fail(CMC_ERR_EXISTS, "user %s already exists", name);
    else
        rc = hub_db_fail(h, src, "user add");
    sqlite3_finalize(st);
    return rc;
}

int hub_user_role(hub *h, const char *name, int *role)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (name == NULL || name[0] == '\0')
        return cmc_fail(CMC_ERR_USAGE, "--as USER: which hub user is acting");
    if ((rc = hub_db_row(h, "user", &st, "SELECT role FROM users WHERE name = ?1",
                         HUB_ARGS(HUB_TEXT(name)))) != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no hub user named %s (add one with cmc-hub user add)",
                        name);
    *role = hub_role_from_name(hub_col_text(st, 0));
    sqlite3_finalize(st);
    return CMC_OK;
}

/* ---- change log and versions ----------------------------------------------------------- */

int hub_log_change(hub *h, const char *plan_id, const char *what, uint64_t *seq_out)
{
    uint64_t seq;
    int rc = hub_db_run(h, "change log",
                        "INSERT INTO changes(plan_id, what, at) VALUES(?1, ?2, ?3)",
                        HUB_ARGS(HUB_TEXT(plan_id), HUB_TEXT(what), HUB_INT(plat_wall_now())));
    if (rc != CMC_OK)
        return rc;
    seq = (uint64_t)sqlite3_last_insert_rowid(h->db);
    if ((rc = hub_db_run(h, "change log", "UPDATE plans SET seq = ?2 WHERE plan_id = ?1",
                         HUB_ARGS(HUB_TEXT(plan_id), HUB_INT(seq)))) != CMC_OK)
        return rc;
    if (seq_out != NULL)
        *seq_out = seq;
    return CMC_OK;
}

int hub_log_event(hub *h, const char *plan_id, int64_t version, const char *actor,
                  const char *action)
{
    return hub_db_run(h, "event",
                      "INSERT INTO events(plan_id, version, actor, action, at)"
                      " VALUES(?1, ?2, ?3, ?4, ?5)",
                      HUB_ARGS(HUB_TEXT(plan_id), HUB_INT(version), HUB_TEXT(actor),
                               HUB_TEXT(action), HUB_INT(plat_wall_now())));
}

int hub_store_version(hub *h, const struct plan *p, const char *actor, const char *action)
{
    sqlite3_stmt *st = NULL;
    uint8_t *body = NULL;
    size_t len = 0;
    int rc, src;
    int64_t now = plat_wall_now();

    if ((rc = plan_pack(p, &body, &len)) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, "INSERT INTO versions(plan_id, version, status, body, actor,"
                                " action, at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                             &st)) != CMC_OK)
        goto out;
    sqlite3_bind_text(st, 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->version);
    sqlite3_bind_int(st, 3, p->status);
    sqlite3_bind_blob(st, 4, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (src != SQLITE_DONE) {
        rc = db_map_code(src) == CMC_ERR_EXISTS
                 ? cmc_fail(CMC_ERR_EXISTS, "plan %s version %lld already exists", p->plan_id,
                            (long long)p->version)
                 : hub_db_fail(h, src, "version");
        goto out;
    }
    if (p->version == 1) {
        rc = hub_db_prepare(h, "INSERT INTO plans(plan_id, nhs, latest, latest_status, published,"
                               " region, team, care_home, seq, created)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                            &st);
    } else {
        /* Scope columns follow the published version: an unapproved draft that moves a
         * patient does not move what urgent care sees. */
        rc = hub_db_prepare(h, "UPDATE plans SET latest = ?3, latest_status = ?4,"
                               " published = CASE WHEN ?4 = 4 THEN ?3 ELSE published END,"
                               " region = CASE WHEN ?4 = 4 OR published = 0 THEN ?6 ELSE region END,"
                               " team = CASE WHEN ?4 = 4 OR published = 0 THEN ?7 ELSE team END,"
                               " care_home = CASE WHEN ?4 = 4 OR published = 0 THEN ?8 ELSE care_home END"
                               " WHERE plan_id = ?1",
                            &st);
    }
    if (rc != CMC_OK)
        goto out;
    sqlite3_bind_text(st, 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->nhs_number, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, p->version);
    sqlite3_bind_int(st, 4, p->status);
    sqlite3_bind_int64(st, 5, p->status == PLAN_STATUS_PUBLISHED ? p->version : 0);
    sqlite3_bind_text(st, 6, p->region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, p->team, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, p->care_home, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, now);
    src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = db_map_code(src) == CMC_ERR_EXISTS
                 ? cmc_fail(CMC_ERR_EXISTS, "a plan for that NHS number or plan id already exists")
                 : hub_db_fail(h, src, "plan");
        goto out;
    }
    if ((rc = hub_log_event(h, p->plan_id, p->version, actor, action)) != CMC_OK)
        goto out;
    rc = hub_log_change(h, p->plan_id, action, NULL);
out:
    sqlite3_finalize(st);
    cmc_free(body);
    return rc;
}

int hub_load_version_raw(hub *h, const char *plan_id, int64_t version, uint8_t **body,
                         size_t *len)
{
    sqlite3_stmt *st = NULL;
    *body = NULL;
    *len = 0;
    int rc = hub_db_row(h, "plan version", &st,
                        "SELECT body FROM versions WHERE plan_id = ?1 AND version = ?2",
                        HUB_ARGS(HUB_TEXT(plan_id), HUB_INT(version)));
    if (rc != CMC_OK)
        return rc;
    if (st == NULL)
        return cmc_fail(CMC_ERR_NOT_FOUND, "plan %s has no version %lld", plan_id,
                        (long long)version);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    uint8_t *b = cmc_malloc(n > 0 ? n : 1);
    if (b == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "plan version");
    } else {
        if (n > 0)
            memcpy(b, sqlite3_column_blob(st, 0), n);
        *body = b;
        *len = n;
    }
    sqlite3_finalize(st);
    return rc;
}

int hub_load_version(hub *h, const char *plan_id, int64_t version, struct plan *out)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = hub_load_version_raw(h, plan_id, version, &body, &len);
    /* a version stored before plan text was checked (sync/text.h) still loads, so it can be
     * shown and edited clean; a new version and the feed's bundles are checked in full */
    if (rc == CMC_OK)
        rc = plan_unpack_stored(body, len, out);
    cmc_free(body);
    return rc;
}
