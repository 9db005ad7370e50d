/*
 * slots.c - the key-slot file: the random replica key wrapped once per user under
 * Argon2id(PIN), like LUKS key slots (contract in cry.h, byte layout in docs/STORAGE.md).
 *
 * The replica key never changes when users come and go, so adding or removing a user or
 * changing a PIN only rewrites this small file and never re-encrypts the replica; destroying
 * this file (and its throttle file) is the crypto-erase of the device.
 *
 * Layout (integers little-endian):
 *   header  0  8  magic "CMCSLOTS"
 *           8  2  version (1)
 *          10  2  slot count (1..CRY_SLOTS_MAX)
 *          12 16  file id (random)
 *   slot       1  user name length (1..CRY_USER_MAX), then the name
 *              1  role length (1..CRY_ROLE_MAX), then the role
 *              1  KDF algorithm (2 = Argon2id v1.3)
 *              8  Argon2id opslimit
 *              8  Argon2id memlimit (bytes)
 *             16  salt
 *             24  nonce
 *             48  wrapped key (32) and Poly1305 tag (16)
 * Authenticated data of a slot: magic, version, file id, then the slot's bytes from the user
 * name length up to and including the salt.
 */
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "crypto/throttle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

#define SLOT_MAGIC_BYTES 8
#define SLOT_VERSION 1u
#define FILE_ID_BYTES 16
#define HEADER_BYTES (SLOT_MAGIC_BYTES + 2 + 2 + FILE_ID_BYTES)
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define WRAPPED_BYTES (CRY_KEY_BYTES + CRY_SEAL_TAG_BYTES)
#define KDF_ALG_ARGON2ID13 2u
/* Fixed part of a slot besides the two names. */
#define SLOT_FIXED_BYTES (1 + 1 + 1 + 8 + 8 + SALT_BYTES + CRY_SEAL_NONCE_BYTES + WRAPPED_BYTES)
#define SLOT_MAX_BYTES (SLOT_FIXED_BYTES + CRY_USER_MAX + CRY_ROLE_MAX)
#define FILE_MAX_BYTES (HEADER_BYTES + CRY_SLOTS_MAX * SLOT_MAX_BYTES)
/* magic, version, file id, then the slot up to the salt. */
#define AD_MAX_BYTES (SLOT_MAGIC_BYTES + 2 + FILE_ID_BYTES + SLOT_MAX_BYTES - CRY_SEAL_NONCE_BYTES - WRAPPED_BYTES)
/* A hostile file must not be able to make one unlock take minutes or gigabytes. */
#define KDF_OPS_CAP 16u
#define KDF_MEM_CAP ((uint64_t)crypto_pwhash_MEMLIMIT_SENSITIVE)

static_assert(SALT_BYTES == 16, "salt size is part of the file format");
static_assert(KDF_ALG_ARGON2ID13 == crypto_pwhash_ALG_ARGON2ID13, "algorithm id");

static const uint8_t slot_magic[SLOT_MAGIC_BYTES] = { 'C', 'M', 'C', 'S', 'L', 'O', 'T', 'S' };

struct slot {
    char user[CRY_USER_MAX + 1];
    char role[CRY_ROLE_MAX + 1];
    uint8_t kdf_alg;
    uint64_t opslimit;
    uint64_t memlimit;
    uint8_t salt[SALT_BYTES];
    uint8_t nonce[CRY_SEAL_NONCE_BYTES];
    uint8_t wrapped[WRAPPED_BYTES];
};

struct cry_slots {
    char *path;
    char *throttle_path;
    uint8_t file_id[FILE_ID_BYTES];
    size_t count;
    struct slot slot[CRY_SLOTS_MAX];
};

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

/* Outside tests a slot weaker than the interactive limits is not accepted from disk either:
 * it would be a slot someone made cheap to brute-force. */
static int kdf_limits_acceptable(uint64_t ops, uint64_t mem)
{
    uint64_t min_ops = crypto_pwhash_OPSLIMIT_INTERACTIVE, min_mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (atomic_load(&cry_kdf_test_limits)) {
        min_ops = crypto_pwhash_OPSLIMIT_MIN;
        min_mem = crypto_pwhash_MEMLIMIT_MIN;
    }
    return ops >= min_ops && ops <= KDF_OPS_CAP && mem >= min_mem && mem <= KDF_MEM_CAP;
}

/* ---- little-endian helpers ------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- names ----------------------------------------------------------------------------- */

/* 1..max bytes, no control characters (they would garble `user list` and logs). UTF-8 is
 * allowed as opaque bytes. */
static int name_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int check_user_role(const char *user, const char *role)
{
    if (user == NULL || !name_ok(user, strnlen(user, CRY_USER_MAX + 1), CRY_USER_MAX))
        return cmc_fail(CMC_ERR_INVALID, "user: must be 1 to %d printable bytes", CRY_USER_MAX);
    if (role == NULL || !name_ok(role, strnlen(role, CRY_ROLE_MAX + 1), CRY_ROLE_MAX))
        return cmc_fail(CMC_ERR_INVALID, "role: must be 1 to %d printable bytes", CRY_ROLE_MAX);
    return CMC_OK;
}

static int check_new_pin(const char *pin)
{
    if (pin == NULL)
        return cmc_fail(CMC_ERR_INVALID, "PIN missing");
    size_t len = strnlen(pin, CRY_PIN_MAX + 1);
    if (len < CRY_PIN_MIN || len > CRY_PIN_MAX)
        return cmc_fail(CMC_ERR_INVALID, "PIN: must be %d to %d characters", CRY_PIN_MIN, CRY_PIN_MAX);
    return CMC_OK;
}

static long find_user(const cry_slots *s, const char *user)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->slot[i].user, user) == 0)
            return (long)i;
    return -1;
}

/* ---- encoding -------------------------------------------------------------------------- */

/* Writes the slot's bytes from the user name length through the salt; returns the length. */
static size_t slot_head_write(const struct slot *sl, uint8_t *p)
{
    size_t n = 0, ulen = strlen(sl->user), rlen = strlen(sl->role);
    p[n++] = (uint8_t)ulen;
    memcpy(p + n, sl->user, ulen);
    n += ulen;
    p[n++] = (uint8_t)rlen;
    memcpy(p + n, sl->role, rlen);
    n += rlen;
    p[n++] = sl->kdf_alg;
    put_u64(p + n, sl->opslimit);
    n += 8;
    put_u64(p + n, sl->memlimit);
    n += 8;
    memcpy(p + n, sl->salt, SALT_BYTES);
    n += SALT_BYTES;
    return n;
}

/* The authenticated data binding a slot to this file, its user, role and KDF limits. */
static size_t slot_ad(const uint8_t file_id[FILE_ID_BYTES], const struct slot *sl,
                      uint8_t ad[AD_MAX_BYTES])
{
    size_t n = 0;
    memcpy(ad, slot_magic, SLOT_MAGIC_BYTES);
    n += SLOT_MAGIC_BYTES;
    put_u16(ad + n, SLOT_VERSION);
    n += 2;
    memcpy(ad + n, file_id, FILE_ID_BYTES);
    n += FILE_ID_BYTES;
    n += slot_head_write(sl, ad + n);
    return n;
}

/* Encodes the file, leaving out slot `skip` (-1: none) and including `extra` (NULL: none). */
static int encode(const cry_slots *s, long skip, const struct slot *extra, uint8_t **out,
                  size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t count = 0, len = HEADER_BYTES;
    for (size_t i = 0; i < s->count; i++) {
        if ((long)i == skip)
            continue;
        count++;
        len += SLOT_FIXED_BYTES + strlen(s->slot[i].user) + strlen(s->slot[i].role);
    }
    if (extra != NULL) {
        count++;
        len += SLOT_FIXED_BYTES + strlen(extra->user) + strlen(extra->role);
    }
    uint8_t *buf = cmc_malloc(len);
    if (buf == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory encoding the key-slot file");
    size_t n = 0;
    memcpy(buf, slot_magic, SLOT_MAGIC_BYTES);
    n += SLOT_MAGIC_BYTES;
    put_u16(buf + n, SLOT_VERSION);
    n += 2;
    put_u16(buf + n, (uint16_t)count);
    n += 2;
    memcpy(buf + n, s->file_id, FILE_ID_BYTES);
    n += FILE_ID_BYTES;
    for (size_t i = 0; i <= s->count; i++) {
        const struct slot *sl = i < s->count ? &s->slot[i] : extra;
        if (sl == NULL || (long)i == skip)
            continue;
        n += slot_head_write(sl, buf + n);
        memcpy(buf + n, sl->nonce, CRY_SEAL_NONCE_BYTES);
        n += CRY_SEAL_NONCE_BYTES;
        memcpy(buf + n, sl->wrapped, WRAPPED_BYTES);
        n += WRAPPED_BYTES;
    }
    *out = buf;
    *out_len = n;
    return CMC_OK;
}

static int save(const cry_slots *s, long skip, const struct slot *extra)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = encode(s, skip, extra, &buf, &len);
    if (rc != CMC_OK)
        return rc;
    rc = plat_write_atomic(s->path, buf, len);
    cry_memzero(buf, len);
    cmc_free(buf);
    return rc;
}

/* ---- decoding -------------------------------------------------------------------------- */

struct reader {
    const uint8_t *p;
    size_t left;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    if (r->left < n)
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* Reads a length-prefixed name into out (max+1 bytes). 0 when malformed. */
static int take_name(struct reader *r, size_t max, char *out)
{
    const uint8_t *lenp = take(r, 1);
    if (lenp == NULL)
        return 0;
    const uint8_t *p = take(r, *lenp);
    if (p == NULL || !name_ok((const char *)p, *lenp, max))
        return 0;
    memcpy(out, p, *lenp);
    out[*lenp] = '\0';
    return 1;
}

static int parse(const char *path, const uint8_t *buf, size_t len, cry_slots *s)
{
    struct reader r = { buf, len };
    const uint8_t *h = take(&r, HEADER_BYTES);
    if (h == NULL)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: too short for a key-slot file", path);
    if (memcmp(h, slot_magic, SLOT_MAGIC_BYTES) != 0)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: not a key-slot file", path);
    if (get_u16(h + 8) != SLOT_VERSION)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: unsupported key-slot version %u", path, get_u16(h + 8));
    unsigned count = get_u16(h + 10);
    if (count == 0 || count > CRY_SLOTS_MAX)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: slot count %u out of range", path, count);
    memcpy(s->file_id, h + 12, FILE_ID_BYTES);
    for (unsigned i = 0; i < count; i++) {
        struct slot *sl = &s->slot[i];
        if (!take_name(&r, CRY_USER_MAX, sl->user))
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: bad user name", path, i);
        if (!take_name(&r, CRY_ROLE_MAX, sl->role))
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: bad role", path, i);
        const uint8_t *f = take(&r, 1 + 8 + 8 + SALT_BYTES + CRY_SEAL_NONCE_BYTES + WRAPPED_BYTES);
        if (f == NULL)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: truncated", path, i);
        sl->kdf_alg = f[0];
        sl->opslimit = get_u64(f + 1);
        sl->memlimit = get_u64(f + 9);
        memcpy(sl->salt, f + 17, SALT_BYTES);
        memcpy(sl->nonce, f + 17 + SALT_BYTES, CRY_SEAL_NONCE_BYTES);
        memcpy(sl->wrapped, f + 17 + SALT_BYTES + CRY_SEAL_NONCE_BYTES, WRAPPED_BYTES);
        if (sl->kdf_alg != KDF_ALG_ARGON2ID13)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: unknown KDF %u", path, i, sl->kdf_alg);
        if (!kdf_limits_acceptable(sl->opslimit, sl->memlimit))
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: KDF limits out of range", path, i);
        /* Duplicate names would make the slot a user unlocks ambiguous. */
        for (unsigned j = 0; j < i; j++)
            if (strcmp(s->slot[j].user, sl->user) == 0)
                return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: duplicate user", path, i);
        s->count = i + 1;
    }
    if (r.left != 0)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: %zu trailing bytes", path, r.left);
    return CMC_OK;
}

/* ---- handle ---------------------------------------------------------------------------- */

void cry_slots_free(cry_slots *s)
{
    if (s == NULL)
        return;
    cmc_free(s->path);
    cmc_free(s->throttle_path);
    cry_memzero(s, sizeof *s);
    cmc_free(s);
}

static char *throttle_path_of(const char *path)
{
    static const char suffix[] = ".throttle";
    size_t len = strlen(path);
    char *t = cmc_malloc(len + sizeof suffix);
    if (t == NULL)
        return NULL;
    memcpy(t, path, len);
    memcpy(t + len, suffix, sizeof suffix);
    return t;
}

static int handle_new(const char *path, cry_slots **out)
{
    *out = NULL;
    cry_slots *s = cmc_calloc(1, sizeof *s);
    if (s == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "out of memory for key slots");
    s->path = cmc_strdup(path);
    s->throttle_path = throttle_path_of(path);
    if (s->path == NULL || s->throttle_path == NULL) {
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

/* Fills a new slot for user/role wrapping `key` under `pin` with fresh salt and nonce. */
static int slot_wrap(struct slot *sl, const uint8_t file_id[FILE_ID_BYTES],
                     const struct cry_secret *key, const char *user, const char *role,
                     const char *pin)
{
    struct cry_secret *kek = NULL;
    int rc = cry_secret_new(CRY_KEY_BYTES, &kek);
    if (rc != CMC_OK)
        return rc;
    memset(sl, 0, sizeof *sl);
    memcpy(sl->user, user, strlen(user) + 1);
    memcpy(sl->role, role, strlen(role) + 1);
    sl->kdf_alg = KDF_ALG_ARGON2ID13;
    kdf_limits(&sl->opslimit, &sl->memlimit);
    randombytes_buf(sl->salt, SALT_BYTES);
    randombytes_buf(sl->nonce, CRY_SEAL_NONCE_BYTES);
    rc = derive(kek, pin, sl->salt, sl->opslimit, sl->memlimit);
    if (rc != CMC_OK)
        goto out;
    uint8_t ad[AD_MAX_BYTES];
    size_t ad_len = slot_ad(file_id, sl, ad);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(sl->wrapped, &clen, key->buf, CRY_KEY_BYTES, ad,
                                                   ad_len, NULL, sl->nonce, kek->buf) != 0) {
        rc = cmc_fail(CMC_ERR_CRYPTO, "wrapping the key failed");
        goto out;
    }
out:
    cry_secret_free(kek);
    if (rc != CMC_OK)
        sodium_memzero(sl, sizeof *sl);
    return rc;
}

/* ---- public API ------------------------------------------------------------------------ */

int cry_slots_create(const char *path, const char *user, const char *role, const char *pin,
                     struct cry_secret **key_out)
{
    cry_slots *s = NULL;
    struct cry_secret *key = NULL;
    *key_out = NULL;
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    int rc = check_user_role(user, role);
    if (rc != CMC_OK)
        return rc;
    if ((rc = check_new_pin(pin)) != CMC_OK)
        return rc;
    if (plat_exists(path))
        return cmc_fail(CMC_ERR_EXISTS, "%s already exists", path);
    if ((rc = handle_new(path, &s)) != CMC_OK)
        goto out;
    if ((rc = cry_secret_new(CRY_KEY_BYTES, &key)) != CMC_OK)
        goto out;
    randombytes_buf(key->buf, CRY_KEY_BYTES);
    randombytes_buf(s->file_id, FILE_ID_BYTES);
    if ((rc = slot_wrap(&s->slot[0], s->file_id, key, user, role, pin)) != CMC_OK)
        goto out;
    s->count = 1;
    /* A throttle record left behind by an earlier file must not count against this one. */
    if ((rc = cry_throttle_clear(s->throttle_path)) != CMC_OK)
        goto out;
    if ((rc = save(s, -1, NULL)) != CMC_OK)
        goto out;
    *key_out = key;
    key = NULL;
out:
    cry_secret_free(key);
    cry_slots_free(s);
    return rc;
}

int cry_slots_load(const char *path, cry_slots **out)
{
    cry_slots *s = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    int rc = plat_read_file(path, FILE_MAX_BYTES, &buf, &len);
    if (rc == CMC_ERR_TOO_LARGE)
        rc = cmc_fail(CMC_ERR_CORRUPT, "%s: too large for a key-slot file", path);
    if (rc != CMC_OK)
        goto out;
    if ((rc = handle_new(path, &s)) != CMC_OK)
        goto out;
    if ((rc = parse(path, buf, len, s)) != CMC_OK)
        goto out;
    *out = s;
    s = NULL;
out:
    if (buf != NULL)
        cry_memzero(buf, len);
    cmc_free(buf);
    cry_slots_free(s);
    return rc;
}

int cry_slots_unlock(cry_slots *s, const char *user, const char *pin, struct cry_secret **key_out,
                     char *role_out)
{
    struct cry_secret *kek = NULL, *key = NULL;
    struct cry_throttle th;
    *key_out = NULL;
    if (role_out != NULL)
        role_out[0] = '\0';
    if (s == NULL || user == NULL || pin == NULL || role_out == NULL)
        return cmc_fail(CMC_ERR_INVALID, "unlock: missing argument");
    if (strnlen(pin, CRY_PIN_MAX + 1) > CRY_PIN_MAX)
        return cmc_fail(CMC_ERR_INVALID, "PIN: longer than %d characters", CRY_PIN_MAX);
    /* Everything that can fail for want of memory happens before the attempt is counted, so
     * running out of memory never costs the user an attempt. */
    int rc = cry_secret_new(CRY_KEY_BYTES, &kek);
    if (rc != CMC_OK)
        goto out;
    if ((rc = cry_secret_new(CRY_KEY_BYTES, &key)) != CMC_OK)
        goto out;
    if ((rc = cry_throttle_load(s->throttle_path, &th)) != CMC_OK)
        goto out;
    int64_t wait = cry_throttle_wait(&th);
    if (wait > 0) {
        rc = cmc_fail(CMC_ERR_THROTTLED, "too many failed attempts: try again in %lld seconds",
                      (long long)wait);
        goto out;
    }
    /* The attempt is recorded as a failure before the PIN is tried and forgotten only on
     * success, so killing the process (or pulling the power) mid-attempt cannot dodge the
     * count. A device that cannot write (disk full) still unlocks: refusing a crew access
     * to care plans is the greater harm, and Argon2id still bounds the guessing rate. */
    if (cry_throttle_count_failure(s->throttle_path, &th) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "cannot record an unlock attempt: %s", cmc_errmsg());

    long idx = find_user(s, user);
    int ok = 0;
    if (idx >= 0) {
        const struct slot *sl = &s->slot[idx];
        if ((rc = derive(kek, pin, sl->salt, sl->opslimit, sl->memlimit)) != CMC_OK)
            goto out;
        uint8_t ad[AD_MAX_BYTES];
        size_t ad_len = slot_ad(s->file_id, sl, ad);
        unsigned long long mlen = 0;
        ok = crypto_aead_xchacha20poly1305_ietf_decrypt(key->buf, &mlen, NULL, sl->wrapped,
                                                        WRAPPED_BYTES, ad, ad_len, sl->nonce,
                                                        kek->buf) == 0 &&
             mlen == CRY_KEY_BYTES;
    } else {
        /* An unknown user pays for a derivation too, so timing does not tell which user
         * names exist on the device. */
        uint8_t salt[SALT_BYTES];
        uint64_t ops, mem;
        randombytes_buf(salt, sizeof salt);
        kdf_limits(&ops, &mem);
        if ((rc = derive(kek, pin, salt, ops, mem)) != CMC_OK)
            goto out;
    }
    if (!ok) {
        rc = cmc_fail(CMC_ERR_AUTH, "wrong user or PIN");
        goto out;
    }
    if (cry_throttle_clear(s->throttle_path) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "cannot reset the unlock throttle: %s", cmc_errmsg());
    memcpy(role_out, s->slot[idx].role, strlen(s->slot[idx].role) + 1);
    *key_out = key;
    key = NULL;
    rc = CMC_OK;
out:
    cry_secret_free(kek);
    cry_secret_free(key);
    return rc;
}

int cry_slots_add(cry_slots *s, const struct cry_secret *key, const char *user, const char *role,
                  const char *pin)
{
    struct slot fresh;
    if (s == NULL || key == NULL || key->len != CRY_KEY_BYTES)
        return cmc_fail(CMC_ERR_INVALID, "add user: missing slots or replica key");
    int rc = check_user_role(user, role);
    if (rc != CMC_OK)
        return rc;
    if ((rc = check_new_pin(pin)) != CMC_OK)
        return rc;
    if (find_user(s, user) >= 0)
        return cmc_fail(CMC_ERR_EXISTS, "that user already has a key slot");
    if (s->count >= CRY_SLOTS_MAX)
        return cmc_fail(CMC_ERR_TOO_LARGE, "key-slot file is full (%d users)", CRY_SLOTS_MAX);
    if ((rc = slot_wrap(&fresh, s->file_id, key, user, role, pin)) != CMC_OK)
        return rc;
    /* The handle changes only once the file on disk holds the new slot. */
    if ((rc = save(s, -1, &fresh)) == CMC_OK) {
        s->slot[s->count] = fresh;
        s->count++;
    }
    sodium_memzero(&fresh, sizeof fresh);
    return rc;
}

int cry_slots_remove(cry_slots *s, const char *user)
{
    if (s == NULL || user == NULL)
        return cmc_fail(CMC_ERR_INVALID, "remove user: missing argument");
    long idx = find_user(s, user);
    if (idx < 0)
        return cmc_fail(CMC_ERR_NOT_FOUND, "no key slot for that user");
    if (s->count == 1)
        return cmc_fail(CMC_ERR_STATE, "cannot remove the last user: the replica would be lost");
    int rc = save(s, idx, NULL);
    if (rc != CMC_OK)
        return rc;
    sodium_memzero(&s->slot[idx], sizeof s->slot[idx]);
    memmove(&s->slot[idx], &s->slot[idx + 1], (s->count - (size_t)idx - 1) * sizeof s->slot[0]);
    s->count--;
    sodium_memzero(&s->slot[s->count], sizeof s->slot[0]);
    return CMC_OK;
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

int cry_slots_destroy(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "key-slot file path missing");
    /* The slot file first: without it the replica key is gone whatever happens next. */
    int rc = plat_shred(path);
    char *tpath = throttle_path_of(path);
    if (tpath == NULL)
        return rc != CMC_OK ? rc : cmc_fail(CMC_ERR_NOMEM, "out of memory");
    int trc = plat_shred(tpath);
    cmc_free(tpath);
    return rc != CMC_OK ? rc : trc;
}

int64_t cry_slots_throttle_wait(const cry_slots *s)
{
    struct cry_throttle th;
    if (s == NULL || cry_throttle_load(s->throttle_path, &th) != CMC_OK)
        return 0;
    return cry_throttle_wait(&th);
}
