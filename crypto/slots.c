/*
 * slots.c - the key-slot file: the random replica keys wrapped once per user under
 * Argon2id(PIN), like LUKS key slots (contract in cry.h, byte layout in docs/STORAGE.md).
 *
 * The replica keys never change when users come and go, so adding or removing a user or
 * changing a PIN only rewrites this small file and never re-encrypts the replica; destroying
 * this file (and its throttle file) is the crypto-erase of the device.
 *
 * Layout (integers little-endian), version 2:
 *   header  0  8  magic "CMCSLOTS"
 *           8  2  version (2; version 1 files are read)
 *          10  2  slot count (1..CRY_SLOTS_MAX)
 *          12 16  file id (random)
 *   slot       1  wrap format (1 = as in version 1 files, 2 = current, 3 = current and
 *                 sealed to a TPM)
 *              1  user name length (1..CRY_USER_MAX), then the name
 *              1  role length (1..CRY_ROLE_MAX), then the role
 *              1  KDF algorithm (2 = Argon2id v1.3)
 *              8  Argon2id opslimit
 *              8  Argon2id memlimit (bytes)
 *             16  salt
 *        wrap 2: 32  the user's Ed25519 public key
 *        wrap 2:  1  P, payload length (96 or 128)
 *        wrap 3:     as wrap 2, then 2 + n  the TPM object's public blob (length, bytes),
 *                    2 + n  its private blob, 34  the TPM name of its parent (the
 *                    storage primary key)
 *              4  failed attempts recorded against this slot
 *             32  the failure chain: BLAKE2b^(1 + failures)(chain seed)
 *             24  nonce
 *         P + 16  wrapped payload and Poly1305 tag (wrap 1: P = 32)
 * Payload (wrap 2): replica key, chain seed, the user's signing seed, then for a slot that
 * holds it the role key. Authenticated data of a slot: magic, version (1 for wrap 1), file
 * id, (wrap 2: the wrap byte,) the slot's bytes from the user name length up to and
 * including the salt, (wrap 2: the public key and P). The failure count and chain are not
 * in it: they change without the PIN; the chain lets the next successful unlock tell
 * whether the count was wound back.
 */
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "crypto/slots_int.h"
#include "crypto/throttle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#include <sodium.h>


/* Set only by tests (cry_test.h). */
atomic_int cry_kdf_test_limits;

/* Limits for new slots (and for the dummy derivation of an unknown user). */
static void kdf_limits(uint64_t *ops, uint64_t *mem)
{
    if (atomic_load(&cry_kdf_test_limits)) {
        *ops = crypto_pwhash_OPSLIMIT_MIN;
        *mem = crypto_pwhash_MEMLIMIT_MIN;
    } else {
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    }
}

static int check_user_role(const char *user, const char *role)
{
    if (user == NULL || !slots_name_ok(user, strnlen(user, CRY_USER_MAX + 1), CRY_USER_MAX))
        return cmc_fail(CMC_ERR_INVALID, "user: must be 1 to %d printable bytes", CRY_USER_MAX);
    if (role == NULL || !slots_name_ok(role, strnlen(role, CRY_ROLE_MAX + 1), CRY_ROLE_MAX))
        return cmc_fail(CMC_ERR_INVALID, "role: must be 1 to %d printable bytes", CRY_ROLE_MAX);
    return CMC_OK;
}

int cry_pin_acceptable(const char *pin)
{
    if (pin == NULL)
        return cmc_fail(CMC_ERR_INVALID, "PIN missing");
    size_t len = strnlen(pin, CRY_PIN_MAX + 1);
    if (len < CRY_PIN_MIN)
        return cmc_fail(CMC_ERR_INVALID, "the PIN must have at least %d characters", CRY_PIN_MIN);
    if (len > CRY_PIN_MAX)
        return cmc_fail(CMC_ERR_INVALID, "the PIN must have at most %d characters", CRY_PIN_MAX);
    return CMC_OK;
}

static long find_user(const cry_slots *s, const char *user)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->slot[i].user, user) == 0)
            return (long)i;
    return -1;
}

/* ---- the failure chain ----------------------------------------------------------------- */

/* chain(0) = H(seed), chain(n + 1) = H(chain(n)): anyone can move it forward, nobody
 * without the seed can move it back. */
static void chain_step(uint8_t chain[CHAIN_BYTES])
{
    crypto_generichash(chain, CHAIN_BYTES, chain, CHAIN_BYTES, NULL, 0);
}

static void chain_start(uint8_t chain[CHAIN_BYTES], const uint8_t seed[CRY_KEY_BYTES])
{
    crypto_generichash(chain, CHAIN_BYTES, seed, CRY_KEY_BYTES, NULL, 0);
}

/* Counts `n` more failures against a slot. */
static void slot_count_failures(struct slot *sl, uint32_t n)
{
    for (uint32_t i = 0; i < n && sl->failures < FAILURES_MAX; i++) {
        sl->failures++;
        chain_step(sl->chain);
    }
}

/* 1 when the slot's recorded chain is what `failures` steps from the seed give. */
static int chain_matches(const struct slot *sl, const uint8_t seed[CRY_KEY_BYTES])
{
    uint8_t c[CHAIN_BYTES];
    chain_start(c, seed);
    for (uint32_t i = 0; i < sl->failures && i < FAILURES_MAX; i++)
        chain_step(c);
    int ok = sodium_memcmp(c, sl->chain, CHAIN_BYTES) == 0;
    sodium_memzero(c, sizeof c);
    return ok;
}

/* ---- handle ---------------------------------------------------------------------------- */

void cry_slots_free(cry_slots *s)
{
    if (s == NULL)
        return;
    cmc_free(s->path);
    cmc_free(s->throttle_path);
    cmc_free(s->lock_path);
    cry_memzero(s, sizeof *s);
    cmc_free(s);
}

static char *path_with(const char *path, const char *suffix)
{
    size_t len = strlen(path), slen = strlen(suffix);
    char *t = cmc_malloc(len + slen + 1);
    if (t == NULL)
        return NULL;
    memcpy(t, path, len);
    memcpy(t + len, suffix, slen + 1);
    return t;
}

static int handle_new(const char *path, cry_slots **out)
{
    *out = NULL;
    cry_slots *s = cmc_calloc(1, sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory for key slots");
    s->path = cmc_strdup(path);
    s->throttle_path = path_with(path, ".throttle");
    s->lock_path = path_with(path, ".lock");
    if (s->path == NULL || s->throttle_path == NULL || s->lock_path == NULL) {
        cry_slots_free(s);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory for key slots");
    }
    *out = s;
    return CMC_OK;
}

/* ---- key derivation and wrapping ------------------------------------------------------- */

static int derive(struct cry_secret *kek, const char *pin, const uint8_t salt[SALT_BYTES],
                  uint64_t ops, uint64_t mem)
{
    /* Argon2id allocates `mem` bytes itself; failing that is the only way it fails. */
    if (crypto_pwhash(kek->buf, kek->len, pin, strlen(pin), salt, (unsigned long long)ops,
                      (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return cmc_fail(CMC_ERR_NOMEM, "not enough memory to derive the key from the PIN");
    return CMC_OK;
}

/* Seals `payload` (the slot's payload_len bytes) into the slot under `kek` with a fresh
 * nonce; the slot's head must be final. */
static int slot_seal(struct slot *sl, const uint8_t file_id[FILE_ID_BYTES],
                     const struct cry_secret *kek, const uint8_t *payload)
{
    randombytes_buf(sl->nonce, CRY_SEAL_NONCE_BYTES);
    uint8_t ad[AD_MAX_BYTES];
    size_t ad_len = slots_ad(file_id, sl, ad);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(sl->wrapped, &clen, payload, sl->payload_len, ad,
                                                   ad_len, NULL, sl->nonce, kek->buf) != 0)
        return cmc_fail(CMC_ERR_CRYPTO, "wrapping the key failed");
    return CMC_OK;
}

/* A current-format payload in `p` (PAYLOAD_MAX bytes): the replica key, a new chain seed,
 * the signing seed (new when `sign_seed` is NULL), the role key when given. Sets the slot's
 * payload length, public key and a clean failure record. */
static void payload_fill(struct slot *sl, uint8_t *p, const struct cry_secret *key,
                         const uint8_t *sign_seed, const struct cry_secret *role_key)
{
    memcpy(p, key->buf, CRY_KEY_BYTES);
    randombytes_buf(p + CRY_KEY_BYTES, CRY_KEY_BYTES);
    if (sign_seed != NULL)
        memmove(p + 2 * CRY_KEY_BYTES, sign_seed, CRY_KEY_BYTES);
    else
        randombytes_buf(p + 2 * CRY_KEY_BYTES, CRY_KEY_BYTES);
    sl->payload_len = PAYLOAD_BASE;
    if (role_key != NULL) {
        memcpy(p + PAYLOAD_BASE, role_key->buf, CRY_KEY_BYTES);
        sl->payload_len = PAYLOAD_MAX;
    }
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(sl->user_pk, sk, p + 2 * CRY_KEY_BYTES);
    sodium_memzero(sk, sizeof sk);
    if (sl->wrap != WRAP_TPM)
        sl->wrap = WRAP_CURRENT;
    sl->failures = 0;
    chain_start(sl->chain, p + CRY_KEY_BYTES);
}

/* ---- TPM-bound slots ------------------------------------------------------------------- */

/* A TPM-bound slot's wrapping key is BLAKE2b keyed with the Argon2id output over a label and
 * the secret only the TPM can unseal; the TPM object's auth value is another BLAKE2b of the
 * Argon2id output. Without the TPM the Argon2id output opens nothing, so a copied file
 * cannot be guessed at offline; with it, each wrong PIN is a wrong auth value that the TPM
 * counts towards its dictionary-attack lockout. */
static void tpm_auth(const struct cry_secret *kek, uint8_t auth[CRY_TPM_AUTH_BYTES])
{
    static const char label[] = "cmc key slot: TPM auth v1";
    crypto_generichash(auth, CRY_TPM_AUTH_BYTES, (const uint8_t *)label, sizeof label - 1, kek->buf, kek->len);
}

/* Turns the Argon2id output in `kek` into the wrapping key, in place. */
static void tpm_mix(struct cry_secret *kek, const struct cry_secret *secret)
{
    static const char label[] = "cmc key slot: TPM wrap v1";
    crypto_generichash_state st;
    uint8_t out[CRY_KEY_BYTES];
    crypto_generichash_init(&st, kek->buf, kek->len, sizeof out);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
    crypto_generichash_update(&st, secret->buf, secret->len);
    crypto_generichash_final(&st, out, sizeof out);
    memcpy(kek->buf, out, sizeof out);
    sodium_memzero(out, sizeof out);
    sodium_memzero(&st, sizeof st);
}

/* Seals a new secret to the TPM for slot `sl` (making it WRAP_TPM) and mixes it into `kek`,
 * which holds the Argon2id output of the PIN. */
static int tpm_bind(struct slot *sl, struct cry_secret *kek)
{
    struct cry_secret *secret = NULL;
    uint8_t auth[CRY_TPM_AUTH_BYTES];
    size_t pub_len = 0, priv_len = 0;
    int rc = cry_secret_new(CRY_TPM_SECRET_BYTES, &secret);
    if (rc != CMC_OK)
        return rc;
    tpm_auth(kek, auth);
    rc = cry_tpm_seal(auth, secret->buf, sl->tpm_pub, &pub_len, sl->tpm_priv, &priv_len, sl->tpm_parent);
    sodium_memzero(auth, sizeof auth);
    if (rc == CMC_OK) {
        sl->wrap = WRAP_TPM;
        sl->tpm_pub_len = (uint16_t)pub_len;
        sl->tpm_priv_len = (uint16_t)priv_len;
        tpm_mix(kek, secret);
    }
    cry_secret_free(secret);
    return rc;
}

/* The wrapping key of slot `sl` for `pin`: Argon2id, then for a TPM-bound slot the TPM's
 * secret. CMC_ERR_AUTH when the TPM refused the PIN (and counted it). */
static int slot_kek(const struct slot *sl, const char *pin, struct cry_secret *kek)
{
    int rc = derive(kek, pin, sl->salt, sl->opslimit, sl->memlimit);
    if (rc != CMC_OK || sl->wrap != WRAP_TPM)
        return rc;
    struct cry_secret *secret = NULL;
    uint8_t auth[CRY_TPM_AUTH_BYTES];
    if ((rc = cry_secret_new(CRY_TPM_SECRET_BYTES, &secret)) != CMC_OK)
        return rc;
    tpm_auth(kek, auth);
    rc = cry_tpm_unseal(auth, sl->tpm_pub, sl->tpm_pub_len, sl->tpm_priv, sl->tpm_priv_len, sl->tpm_parent,
                        secret->buf);
    sodium_memzero(auth, sizeof auth);
    if (rc == CMC_OK)
        tpm_mix(kek, secret);
    cry_secret_free(secret);
    return rc;
}

/* Fills a new slot for user/role wrapping `key` (and `role_key` unless NULL) under `pin`
 * (and, when `tpm`, a secret sealed to the TPM), with fresh salt, nonce, signing key and
 * chain; hands what it wrapped to `give` unless NULL (the caller clears it on failure). */
static int unlocked_fill(struct cry_unlocked *u, const struct slot *sl, const uint8_t *p);

static int slot_wrap(struct slot *sl, const uint8_t file_id[FILE_ID_BYTES],
                     const struct cry_secret *key, const struct cry_secret *role_key,
                     const char *user, const char *role, const char *pin, int tpm, struct cry_unlocked *give)
{
    struct cry_secret *kek = NULL, *payload = NULL;
    int rc = cry_secret_new(CRY_KEY_BYTES, &kek);
    if (rc == CMC_OK)
        rc = cry_secret_new(PAYLOAD_MAX, &payload);
    if (rc != CMC_OK)
        goto out;
    memset(sl, 0, sizeof *sl);
    memcpy(sl->user, user, strlen(user) + 1);
    memcpy(sl->role, role, strlen(role) + 1);
    sl->kdf_alg = KDF_ALG_ARGON2ID13;
    kdf_limits(&sl->opslimit, &sl->memlimit);
    randombytes_buf(sl->salt, SALT_BYTES);
    payload_fill(sl, payload->buf, key, NULL, role_key);
    if ((rc = derive(kek, pin, sl->salt, sl->opslimit, sl->memlimit)) != CMC_OK)
        goto out;
    if (tpm && (rc = tpm_bind(sl, kek)) != CMC_OK)
        goto out;
    if ((rc = slot_seal(sl, file_id, kek, payload->buf)) != CMC_OK)
        goto out;
    if (give != NULL)
        rc = unlocked_fill(give, sl, payload->buf);
out:
    cry_secret_free(kek);
    cry_secret_free(payload);
    if (rc != CMC_OK)
        sodium_memzero(sl, sizeof *sl);
    return rc;
}

/* ---- unlocked results ------------------------------------------------------------------ */

void cry_unlocked_clear(struct cry_unlocked *u)
{
    if (u == NULL)
        return;
    cry_secret_free(u->key);
    cry_secret_free(u->role_key);
    cry_secret_free(u->user_sk);
    sodium_memzero(u, sizeof *u);
}

/* Copies the secrets of a current-format payload into `u`, into the buffers already there
 * (an unlock allocates them before it counts the attempt) or new ones. */
static int unlocked_fill(struct cry_unlocked *u, const struct slot *sl, const uint8_t *p)
{
    int rc = CMC_OK;
    if (u->key == NULL)
        rc = cry_secret_new(CRY_KEY_BYTES, &u->key);
    if (rc == CMC_OK && u->user_sk == NULL)
        rc = cry_secret_new(CRY_SIGN_SK_BYTES, &u->user_sk);
    if (rc == CMC_OK && sl->payload_len == PAYLOAD_MAX && u->role_key == NULL)
        rc = cry_secret_new(CRY_KEY_BYTES, &u->role_key);
    if (rc != CMC_OK)
        return rc;
    memcpy(u->key->buf, p, CRY_KEY_BYTES);
    crypto_sign_seed_keypair(u->user_pk, u->user_sk->buf, p + 2 * CRY_KEY_BYTES);
    if (sl->payload_len == PAYLOAD_MAX) {
        memcpy(u->role_key->buf, p + PAYLOAD_BASE, CRY_KEY_BYTES);
    } else {
        cry_secret_free(u->role_key);
        u->role_key = NULL;
    }
    memcpy(u->role, sl->role, strlen(sl->role) + 1);
    return CMC_OK;
}

/* ---- public API ------------------------------------------------------------------------ */

int cry_slots_create_ex(const char *path, const char *user, const char *role, const char *pin,
                        int flags, struct cry_unlocked *out)
{
    cry_slots *s = NULL;
    struct cry_secret *key = NULL, *role_key = NULL;
    memset(out, 0, sizeof *out);
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    int rc = check_user_role(user, role);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cry_pin_acceptable(pin)) != CMC_OK)
        return rc;
    if (plat_exists(path))
        return cmc_fail(CMC_ERR_EXISTS, "%s already exists", path);
    if ((rc = handle_new(path, &s)) != CMC_OK)
        goto out;
    if ((rc = cry_secret_new(CRY_KEY_BYTES, &key)) != CMC_OK)
        goto out;
    if ((flags & CRY_SLOT_ROLE_KEY) && (rc = cry_secret_new(CRY_KEY_BYTES, &role_key)) != CMC_OK)
        goto out;
    randombytes_buf(key->buf, CRY_KEY_BYTES);
    if (role_key != NULL)
        randombytes_buf(role_key->buf, CRY_KEY_BYTES);
    randombytes_buf(s->file_id, FILE_ID_BYTES);
    if ((rc = slot_wrap(&s->slot[0], s->file_id, key, role_key, user, role, pin, (flags & CRY_SLOT_TPM) != 0,
                        out)) != CMC_OK)
        goto out;
    s->count = 1;
    /* A throttle record left behind by an earlier file must not count against this one. */
    if ((rc = cry_throttle_clear(s->throttle_path)) != CMC_OK)
        goto out;
    rc = slots_save(s, -1, NULL);
out:
    cry_secret_free(key);
    cry_secret_free(role_key);
    cry_slots_free(s);
    if (rc != CMC_OK)
        cry_unlocked_clear(out);
    return rc;
}

int cry_slots_create(const char *path, const char *user, const char *role, const char *pin,
                     struct cry_secret **key_out)
{
    struct cry_unlocked u;
    *key_out = NULL;
    int rc = cry_slots_create_ex(path, user, role, pin, 0, &u);
    if (rc == CMC_OK) {
        *key_out = u.key;
        u.key = NULL;
    }
    cry_unlocked_clear(&u);
    return rc;
}

int cry_slots_load(const char *path, cry_slots **out)
{
    cry_slots *s = NULL;
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    int rc = handle_new(path, &s);
    if (rc != CMC_OK)
        return rc;
    if ((rc = slots_reload(s)) != CMC_OK) {
        cry_slots_free(s);
        return rc;
    }
    *out = s;
    return CMC_OK;
}

/* Records one more failed attempt (counted before the PIN is tried, forgotten only on
 * success, so killing the process mid-attempt cannot dodge it) in the throttle file and the
 * user's slot; returns the failures on record before it. A device that cannot write (disk
 * full) still unlocks: refusing a crew access to care plans is the greater harm, and the
 * work per attempt still grows within this process. */
static int count_attempt(cry_slots *s, long idx, uint32_t *before_out)
{
    struct cry_throttle th;
    int rc = cry_throttle_load(s->throttle_path, &th);
    if (rc != CMC_OK)
        return rc;
    uint32_t before = th.failures;
    if (idx >= 0 && s->slot[idx].failures > before)
        before = s->slot[idx].failures;
    uint32_t after = before < FAILURES_MAX ? before + 1 : before;
    if (cry_throttle_store(s->throttle_path, after) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "cannot record an unlock attempt: %s", cmc_errmsg());
    if (idx >= 0) {
        struct slot *sl = &s->slot[idx];
        slot_count_failures(sl, after > sl->failures ? after - sl->failures : 0);
        if (slots_save(s, -1, NULL) != CMC_OK)
            plat_log(PLAT_LOG_WARN, "cannot record an unlock attempt in the key slot: %s", cmc_errmsg());
    }
    *before_out = before;
    return CMC_OK;
}

/* The throttle's work: `n` derivations nobody needs, with the slot's own limits, so each
 * costs what a guess costs. */
static int throttle_work(struct cry_secret *kek, const char *pin, uint32_t n, uint64_t ops, uint64_t mem)
{
    uint8_t salt[SALT_BYTES];
    for (uint32_t i = 0; i < n; i++) {
        randombytes_buf(salt, sizeof salt);
        int rc = derive(kek, pin, salt, ops, mem);
        if (rc != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* After the right PIN: checks the failure chain, then re-wraps the slot with a clean record
 * and a new chain seed (a wrap 1 slot becomes wrap 2, with a new signing key). */
static int settle_success(cry_slots *s, long idx, const struct cry_secret *kek, uint8_t *payload,
                          struct cry_unlocked *u)
{
    struct slot *sl = &s->slot[idx];
    struct slot fresh = *sl;
    int rc;
    if (slot_is_current(sl)) {
        u->record_altered = !chain_matches(sl, payload + CRY_KEY_BYTES);
        if ((rc = unlocked_fill(u, sl, payload)) != CMC_OK)
            return rc;
        payload_fill(&fresh, payload, u->key, payload + 2 * CRY_KEY_BYTES, u->role_key);
    } else {
        memcpy(u->key->buf, payload, CRY_KEY_BYTES);
        payload_fill(&fresh, payload, u->key, NULL, NULL);
        if ((rc = unlocked_fill(u, &fresh, payload)) != CMC_OK)
            return rc;
    }
    /* One atomic replace swaps the old slot for the new one: a crash leaves either. */
    if (slot_seal(&fresh, s->file_id, kek, payload) == CMC_OK) {
        struct slot old = *sl;
        *sl = fresh;
        if (slots_save(s, -1, NULL) != CMC_OK) {
            plat_log(PLAT_LOG_WARN, "cannot reset the key slot's failure record: %s", cmc_errmsg());
            *sl = old;
        }
        sodium_memzero(&old, sizeof old);
    }
    sodium_memzero(&fresh, sizeof fresh);
    if (cry_throttle_clear(s->throttle_path) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "cannot reset the unlock throttle: %s", cmc_errmsg());
    return CMC_OK;
}

/* Tries the PIN against slot `idx` (-1: an unknown user, who pays for a derivation too, so
 * timing does not tell which user names exist). 1 when the payload opened. */
static int try_pin(const cry_slots *s, long idx, const char *pin, struct cry_secret *kek,
                   uint8_t *payload, int *ok)
{
    *ok = 0;
    if (idx < 0) {
        uint8_t salt[SALT_BYTES];
        uint64_t ops, mem;
        randombytes_buf(salt, sizeof salt);
        kdf_limits(&ops, &mem);
        return derive(kek, pin, salt, ops, mem);
    }
    const struct slot *sl = &s->slot[idx];
    int rc = slot_kek(sl, pin, kek);
    if (rc == CMC_ERR_AUTH) {
        cmc_err_clear();
        return CMC_OK;
    }
    if (rc != CMC_OK)
        return rc;
    uint8_t ad[AD_MAX_BYTES];
    size_t ad_len = slots_ad(s->file_id, sl, ad);
    unsigned long long mlen = 0;
    *ok = crypto_aead_xchacha20poly1305_ietf_decrypt(payload, &mlen, NULL, sl->wrapped,
                                                     (size_t)sl->payload_len + CRY_SEAL_TAG_BYTES, ad,
                                                     ad_len, sl->nonce, kek->buf) == 0 &&
          mlen == sl->payload_len;
    return CMC_OK;
}

int cry_slots_unlock_ex(cry_slots *s, const char *user, const char *pin, struct cry_unlocked *out)
{
    struct cry_secret *kek = NULL, *payload = NULL;
    plat_lock *lock = NULL;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (s == NULL || user == NULL || pin == NULL || out == NULL)
        return cmc_fail(CMC_ERR_INVALID, "unlock: missing argument");
    if (strnlen(pin, CRY_PIN_MAX + 1) > CRY_PIN_MAX)
        return cmc_fail(CMC_ERR_INVALID, "PIN: longer than %d characters", CRY_PIN_MAX);
    /* Everything that can fail for want of memory happens before the attempt is counted, so
     * running out of memory never costs the user an attempt. */
    int rc = cry_secret_new(CRY_KEY_BYTES, &kek);
    if (rc == CMC_OK)
        rc = cry_secret_new(PAYLOAD_MAX, &payload);
    if (rc == CMC_OK)
        rc = cry_secret_new(CRY_KEY_BYTES, &out->key);
    if (rc == CMC_OK)
        rc = cry_secret_new(CRY_KEY_BYTES, &out->role_key);
    if (rc == CMC_OK)
        rc = cry_secret_new(CRY_SIGN_SK_BYTES, &out->user_sk);
    if (rc != CMC_OK)
        goto out;
    /* Held across the whole attempt: parallel guesses wait their turn, and each one reads
     * the count the one before it left. */
    if ((rc = plat_lock_acquire(s->lock_path, 1, &lock)) != CMC_OK)
        goto out;
    if ((rc = slots_reload(s)) != CMC_OK)
        goto out;
    long idx = find_user(s, user);
    uint32_t before = 0;
    if ((rc = count_attempt(s, idx, &before)) != CMC_OK)
        goto out;
    uint32_t work = cry_throttle_work(before);
    uint64_t ops, mem;
    kdf_limits(&ops, &mem);
    if (idx >= 0) {
        ops = s->slot[idx].opslimit;
        mem = s->slot[idx].memlimit;
    }
    plat_log(PLAT_LOG_DEBUG, "unlock: %u failed attempts on record; %u extra key derivations",
             (unsigned)before, (unsigned)work);
    if ((rc = throttle_work(kek, pin, work, ops, mem)) != CMC_OK)
        goto out;
    int ok = 0;
    if ((rc = try_pin(s, idx, pin, kek, payload->buf, &ok)) != CMC_OK)
        goto out;
    if (!ok) {
        rc = cmc_fail(CMC_ERR_AUTH, "wrong user or PIN");
        goto out;
    }
    if ((rc = settle_success(s, idx, kek, payload->buf, out)) != CMC_OK)
        goto out;
    out->failures_before = before;
    if (out->record_altered)
        plat_log(PLAT_LOG_WARN, "the record of failed unlock attempts was altered since the last unlock");
out:
    plat_lock_release(lock);
    cry_secret_free(kek);
    cry_secret_free(payload);
    if (rc != CMC_OK && out != NULL)
        cry_unlocked_clear(out);
    return rc;
}

int cry_slots_unlock(cry_slots *s, const char *user, const char *pin, struct cry_secret **key_out,
                     char *role_out)
{
    struct cry_unlocked u;
    *key_out = NULL;
    if (role_out != NULL)
        role_out[0] = '\0';
    if (role_out == NULL)
        return cmc_fail(CMC_ERR_INVALID, "unlock: missing argument");
    int rc = cry_slots_unlock_ex(s, user, pin, &u);
    if (rc == CMC_OK) {
        *key_out = u.key;
        u.key = NULL;
        memcpy(role_out, u.role, strlen(u.role) + 1);
    }
    cry_unlocked_clear(&u);
    return rc;
}

int cry_slots_any_role_key(const cry_slots *s)
{
    for (size_t i = 0; s != NULL && i < s->count; i++)
        if (s->slot[i].payload_len == PAYLOAD_MAX)
            return 1;
    return 0;
}

int cry_slots_has_role_key(const cry_slots *s, size_t i)
{
    return s != NULL && i < s->count && s->slot[i].payload_len == PAYLOAD_MAX;
}

int cry_slots_tpm_bound(const cry_slots *s, size_t i)
{
    return s != NULL && i < s->count && s->slot[i].wrap == WRAP_TPM;
}

int cry_slots_mint_role_key(cry_slots *s, const char *user, const char *pin, struct cry_unlocked *u)
{
    struct cry_secret *kek = NULL, *payload = NULL, *role_key = NULL;
    plat_lock *lock = NULL;
    if (s == NULL || user == NULL || pin == NULL || u == NULL || u->key == NULL || u->user_sk == NULL)
        return cmc_fail(CMC_ERR_INVALID, "role key: missing argument");
    if (u->role_key != NULL)
        return CMC_OK;
    int rc = cry_secret_new(CRY_KEY_BYTES, &kek);
    if (rc == CMC_OK)
        rc = cry_secret_new(PAYLOAD_MAX, &payload);
    if (rc == CMC_OK)
        rc = cry_secret_new(CRY_KEY_BYTES, &role_key);
    if (rc == CMC_OK)
        rc = plat_lock_acquire(s->lock_path, 1, &lock);
    if (rc == CMC_OK)
        rc = slots_reload(s);
    if (rc != CMC_OK)
        goto out;
    long idx = find_user(s, user);
    if (idx < 0) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no key slot for that user");
        goto out;
    }
    if (cry_slots_any_role_key(s)) {
        rc = cmc_fail(CMC_ERR_EXISTS, "another user already holds this device's role key");
        goto out;
    }
    struct slot fresh = s->slot[idx];
    if ((rc = slot_kek(&fresh, pin, kek)) != CMC_OK)
        goto out;
    randombytes_buf(role_key->buf, CRY_KEY_BYTES);
    /* libsodium's Ed25519 secret key starts with its seed: the user keeps their signing key */
    payload_fill(&fresh, payload->buf, u->key, u->user_sk->buf, role_key);
    if ((rc = slot_seal(&fresh, s->file_id, kek, payload->buf)) != CMC_OK)
        goto out;
    struct slot old = s->slot[idx];
    s->slot[idx] = fresh;
    if ((rc = slots_save(s, -1, NULL)) != CMC_OK)
        s->slot[idx] = old;
    sodium_memzero(&old, sizeof old);
    sodium_memzero(&fresh, sizeof fresh);
    if (rc == CMC_OK) {
        u->role_key = role_key;
        role_key = NULL;
    }
out:
    plat_lock_release(lock);
    cry_secret_free(kek);
    cry_secret_free(payload);
    cry_secret_free(role_key);
    return rc;
}

int cry_slots_add_ex(cry_slots *s, const struct cry_unlocked *by, const char *user, const char *role,
                     const char *pin, int flags)
{
    struct slot fresh;
    plat_lock *lock = NULL;
    if (s == NULL || by == NULL || by->key == NULL || by->key->len != CRY_KEY_BYTES)
        return cmc_fail(CMC_ERR_INVALID, "add user: missing slots or replica key");
    int rc = check_user_role(user, role);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cry_pin_acceptable(pin)) != CMC_OK)
        return rc;
    if ((flags & CRY_SLOT_ROLE_KEY) && by->role_key == NULL)
        return cmc_fail(CMC_ERR_DENIED, "only a user who holds the role key can give it to another");
    if ((rc = plat_lock_acquire(s->lock_path, 1, &lock)) != CMC_OK)
        return rc;
    if ((rc = slots_reload(s)) != CMC_OK)
        goto out;
    if (find_user(s, user) >= 0) {
        rc = cmc_fail(CMC_ERR_EXISTS, "that user already has a key slot");
        goto out;
    }
    if (s->count >= CRY_SLOTS_MAX) {
        rc = cmc_fail(CMC_ERR_TOO_LARGE, "key-slot file is full (%d users)", CRY_SLOTS_MAX);
        goto out;
    }
    if ((rc = slot_wrap(&fresh, s->file_id, by->key, (flags & CRY_SLOT_ROLE_KEY) ? by->role_key : NULL, user,
                        role, pin, (flags & CRY_SLOT_TPM) != 0, NULL)) != CMC_OK)
        goto out;
    /* The handle changes only once the file on disk holds the new slot. */
    if ((rc = slots_save(s, -1, &fresh)) == CMC_OK) {
        s->slot[s->count] = fresh;
        s->count++;
    }
    sodium_memzero(&fresh, sizeof fresh);
out:
    plat_lock_release(lock);
    return rc;
}

int cry_slots_add(cry_slots *s, const struct cry_secret *key, const char *user, const char *role,
                  const char *pin)
{
    struct cry_unlocked by;
    memset(&by, 0, sizeof by);
    by.key = (struct cry_secret *)(uintptr_t)key; /* borrowed, never freed here */
    return cry_slots_add_ex(s, &by, user, role, pin, 0);
}

int cry_slots_remove(cry_slots *s, const char *user)
{
    plat_lock *lock = NULL;
    if (s == NULL || user == NULL)
        return cmc_fail(CMC_ERR_INVALID, "remove user: missing argument");
    int rc = plat_lock_acquire(s->lock_path, 1, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = slots_reload(s)) != CMC_OK)
        goto out;
    long idx = find_user(s, user);
    if (idx < 0) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no key slot for that user");
        goto out;
    }
    if (s->count == 1) {
        rc = cmc_fail(CMC_ERR_STATE, "cannot remove the last user: the replica would be lost");
        goto out;
    }
    if ((rc = slots_save(s, idx, NULL)) != CMC_OK)
        goto out;
    sodium_memzero(&s->slot[idx], sizeof s->slot[idx]);
    memmove(&s->slot[idx], &s->slot[idx + 1], (s->count - (size_t)idx - 1) * sizeof s->slot[0]);
    s->count--;
    sodium_memzero(&s->slot[s->count], sizeof s->slot[0]);
out:
    plat_lock_release(lock);
    return rc;
}

size_t cry_slots_count(const cry_slots *s)
{
    return s == NULL ? 0 : s->count;
}

int cry_slots_user(const cry_slots *s, size_t i, const char **user, const char **role)
{
    if (s == NULL || i >= s->count)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no key slot %zu", i);
    if (user != NULL)
        *user = s->slot[i].user;
    if (role != NULL)
        *role = s->slot[i].role;
    return CMC_OK;
}

int cry_slots_user_pk(const cry_slots *s, size_t i, uint8_t pk[CRY_SIGN_PK_BYTES])
{
    if (s == NULL || i >= s->count)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no key slot %zu", i);
    if (!slot_is_current(&s->slot[i]))
        return cmc_fail(CMC_ERR_NOT_FOUND, "%s has no signing key until their next unlock", s->slot[i].user);
    memcpy(pk, s->slot[i].user_pk, CRY_SIGN_PK_BYTES);
    return CMC_OK;
}

int cry_slots_destroy(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    /* The slot file first: without it the replica key is gone whatever happens next. */
    int rc = plat_shred(path);
    char *tpath = path_with(path, ".throttle");
    char *lpath = path_with(path, ".lock");
    int trc = CMC_OK;
    if (tpath == NULL || lpath == NULL)
        trc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    else if ((trc = plat_shred(tpath)) == CMC_OK)
        trc = plat_remove(lpath);
    cmc_free(tpath);
    cmc_free(lpath);
    return rc != CMC_OK ? rc : trc;
}

uint32_t cry_slots_failures(const cry_slots *s, const char *user)
{
    struct cry_throttle th;
    if (s == NULL || cry_throttle_load(s->throttle_path, &th) != CMC_OK)
        return 0;
    long idx = user != NULL ? find_user(s, user) : -1;
    if (idx >= 0 && s->slot[idx].failures > th.failures)
        return s->slot[idx].failures;
    return th.failures;
}

uint32_t cry_slots_next_work(const cry_slots *s, const char *user)
{
    return cry_throttle_work(cry_slots_failures(s, user));
}
