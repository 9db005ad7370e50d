/*
 * slots_codec.c - the key-slot file's bytes: encoding, strict parsing, the authenticated
 * data of a slot, and reading or atomically replacing the file (layout in slots.c and
 * docs/STORAGE.md; private to crypto/, through slots_int.h).
 */
#include "crypto/slots_int.h"

#include "crypto/cry_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

static const uint8_t slot_magic[SLOT_MAGIC_BYTES] = { 'C', 'M', 'C', 'S', 'L', 'O', 'T', 'S' };

/* Outside tests a slot weaker than the interactive limits is not accepted from disk either:
 * it would be a slot someone made cheap to brute-force. */
int slots_kdf_acceptable(uint64_t ops, uint64_t mem)
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

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
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

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
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
int slots_name_ok(const char *s, size_t len, size_t max)
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
    if (slot_is_current(sl)) {
        memcpy(p + n, sl->user_pk, CRY_SIGN_PK_BYTES);
        n += CRY_SIGN_PK_BYTES;
        p[n++] = sl->payload_len;
    }
    if (sl->wrap == WRAP_TPM) {
        put_u16(p + n, sl->tpm_pub_len);
        memcpy(p + n + 2, sl->tpm_pub, sl->tpm_pub_len);
        n += 2 + (size_t)sl->tpm_pub_len;
        put_u16(p + n, sl->tpm_priv_len);
        memcpy(p + n + 2, sl->tpm_priv, sl->tpm_priv_len);
        n += 2 + (size_t)sl->tpm_priv_len;
        memcpy(p + n, sl->tpm_parent, CRY_TPM_NAME_BYTES);
        n += CRY_TPM_NAME_BYTES;
    }
    return n;
}

/* The authenticated data binding a slot to this file, its user, role, KDF limits, (wrap
 * 2 and 3) public key and payload length, and (wrap 3) its TPM object and the TPM's storage
 * key name. A wrap 1 slot keeps the version 1 data, so it still opens in a version 2 file. */
size_t slots_ad(const uint8_t file_id[FILE_ID_BYTES], const struct slot *sl,
                      uint8_t ad[AD_MAX_BYTES])
{
    size_t n = 0;
    memcpy(ad, slot_magic, SLOT_MAGIC_BYTES);
    n += SLOT_MAGIC_BYTES;
    put_u16(ad + n, sl->wrap == WRAP_LEGACY ? SLOT_VERSION_1 : SLOT_VERSION);
    n += 2;
    memcpy(ad + n, file_id, FILE_ID_BYTES);
    n += FILE_ID_BYTES;
    if (slot_is_current(sl))
        ad[n++] = sl->wrap;
    n += slot_head_write(sl, ad + n);
    return n;
}

static size_t slot_encoded_len(const struct slot *sl)
{
    size_t n = 1 + HEAD_FIXED_BYTES + strlen(sl->user) + strlen(sl->role) + 4 + CHAIN_BYTES +
               CRY_SEAL_NONCE_BYTES + sl->payload_len + CRY_SEAL_TAG_BYTES;
    if (slot_is_current(sl))
        n += CRY_SIGN_PK_BYTES + 1;
    if (sl->wrap == WRAP_TPM)
        n += 4 + (size_t)sl->tpm_pub_len + sl->tpm_priv_len + CRY_TPM_NAME_BYTES;
    return n;
}

static size_t slot_encode(const struct slot *sl, uint8_t *p)
{
    size_t n = 0;
    p[n++] = sl->wrap;
    n += slot_head_write(sl, p + n);
    put_u32(p + n, sl->failures);
    n += 4;
    memcpy(p + n, sl->chain, CHAIN_BYTES);
    n += CHAIN_BYTES;
    memcpy(p + n, sl->nonce, CRY_SEAL_NONCE_BYTES);
    n += CRY_SEAL_NONCE_BYTES;
    memcpy(p + n, sl->wrapped, (size_t)sl->payload_len + CRY_SEAL_TAG_BYTES);
    n += (size_t)sl->payload_len + CRY_SEAL_TAG_BYTES;
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
        len += slot_encoded_len(&s->slot[i]);
    }
    if (extra != NULL) {
        count++;
        len += slot_encoded_len(extra);
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
        n += slot_encode(sl, buf + n);
    }
    assert(n == len);
    *out = buf;
    *out_len = n;
    return CMC_OK;
}

int slots_save(const cry_slots *s, long skip, const struct slot *extra)
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
    if (p == NULL || !slots_name_ok((const char *)p, *lenp, max))
        return 0;
    memcpy(out, p, *lenp);
    out[*lenp] = '\0';
    return 1;
}

/* A TPM blob: 2-byte length (1..CRY_TPM_BLOB_MAX), then the bytes. 0 when malformed. */
static int take_blob(struct reader *r, uint8_t *out, uint16_t *out_len)
{
    const uint8_t *lenp = take(r, 2);
    if (lenp == NULL)
        return 0;
    uint16_t len = get_u16(lenp);
    const uint8_t *p = len == 0 || len > CRY_TPM_BLOB_MAX ? NULL : take(r, len);
    if (p == NULL)
        return 0;
    memcpy(out, p, len);
    *out_len = len;
    return 1;
}

/* One slot of a file of `version`; 0 when malformed (truncated or a bad field). */
static int parse_slot(struct reader *r, unsigned version, struct slot *sl)
{
    memset(sl, 0, sizeof *sl);
    sl->wrap = WRAP_LEGACY;
    if (version == SLOT_VERSION) {
        const uint8_t *w = take(r, 1);
        if (w == NULL || (*w != WRAP_LEGACY && *w != WRAP_CURRENT && *w != WRAP_TPM))
            return 0;
        sl->wrap = *w;
    }
    if (!take_name(r, CRY_USER_MAX, sl->user) || !take_name(r, CRY_ROLE_MAX, sl->role))
        return 0;
    const uint8_t *f = take(r, 1 + 8 + 8 + SALT_BYTES);
    if (f == NULL)
        return 0;
    sl->kdf_alg = f[0];
    sl->opslimit = get_u64(f + 1);
    sl->memlimit = get_u64(f + 9);
    memcpy(sl->salt, f + 17, SALT_BYTES);
    sl->payload_len = CRY_KEY_BYTES;
    if (slot_is_current(sl)) {
        const uint8_t *k = take(r, CRY_SIGN_PK_BYTES + 1);
        if (k == NULL || (k[CRY_SIGN_PK_BYTES] != PAYLOAD_BASE && k[CRY_SIGN_PK_BYTES] != PAYLOAD_MAX))
            return 0;
        memcpy(sl->user_pk, k, CRY_SIGN_PK_BYTES);
        sl->payload_len = k[CRY_SIGN_PK_BYTES];
    }
    if (sl->wrap == WRAP_TPM) {
        const uint8_t *parent = NULL;
        if (!take_blob(r, sl->tpm_pub, &sl->tpm_pub_len) || !take_blob(r, sl->tpm_priv, &sl->tpm_priv_len) ||
            (parent = take(r, CRY_TPM_NAME_BYTES)) == NULL)
            return 0;
        memcpy(sl->tpm_parent, parent, CRY_TPM_NAME_BYTES);
    }
    if (version == SLOT_VERSION) {
        const uint8_t *c = take(r, 4 + CHAIN_BYTES);
        if (c == NULL)
            return 0;
        sl->failures = get_u32(c);
        memcpy(sl->chain, c + 4, CHAIN_BYTES);
    }
    const uint8_t *n = take(r, CRY_SEAL_NONCE_BYTES + (size_t)sl->payload_len + CRY_SEAL_TAG_BYTES);
    if (n == NULL)
        return 0;
    memcpy(sl->nonce, n, CRY_SEAL_NONCE_BYTES);
    memcpy(sl->wrapped, n + CRY_SEAL_NONCE_BYTES, (size_t)sl->payload_len + CRY_SEAL_TAG_BYTES);
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
    unsigned version = get_u16(h + 8);
    if (version != SLOT_VERSION && version != SLOT_VERSION_1)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: unsupported key-slot version %u", path, version);
    unsigned count = get_u16(h + 10);
    if (count == 0 || count > CRY_SLOTS_MAX)
        return cmc_fail(CMC_ERR_CORRUPT, "%s: slot count %u out of range", path, count);
    memcpy(s->file_id, h + 12, FILE_ID_BYTES);
    s->count = 0;
    for (unsigned i = 0; i < count; i++) {
        struct slot *sl = &s->slot[i];
        if (!parse_slot(&r, version, sl))
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: malformed or truncated", path, i);
        if (sl->kdf_alg != KDF_ALG_ARGON2ID13)
            return cmc_fail(CMC_ERR_CORRUPT, "%s: slot %u: unknown KDF %u", path, i, sl->kdf_alg);
        if (!slots_kdf_acceptable(sl->opslimit, sl->memlimit))
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

/* Reads the file on disk into the handle (its slots, counts and file id); called under the
 * lock, because another process may have counted failures or re-wrapped a slot since. On
 * failure the handle is unchanged. */
int slots_reload(cry_slots *s)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cry_slots *fresh = NULL;
    int rc = plat_read_file(s->path, FILE_MAX_BYTES, &buf, &len);
    if (rc == CMC_ERR_TOO_LARGE)
        rc = cmc_fail(CMC_ERR_CORRUPT, "%s: too large for a key-slot file", s->path);
    if (rc != CMC_OK)
        goto out;
    if ((fresh = cmc_calloc(1, sizeof *fresh)) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory for key slots");
        goto out;
    }
    if ((rc = parse(s->path, buf, len, fresh)) != CMC_OK)
        goto out;
    memcpy(s->file_id, fresh->file_id, FILE_ID_BYTES);
    memcpy(s->slot, fresh->slot, sizeof s->slot);
    s->count = fresh->count;
out:
    if (buf != NULL)
        cry_memzero(buf, len);
    cmc_free(buf);
    if (fresh != NULL) {
        cry_memzero(fresh, sizeof *fresh);
        cmc_free(fresh);
    }
    return rc;
}
