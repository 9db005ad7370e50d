/*
 * slots_int.h - private to crypto/slots.c and crypto/slots_codec.c: the key-slot file's
 * constants, the in-memory slot and handle, and the codec between them and the bytes on
 * disk (layout in slots.c and docs/STORAGE.md).
 */
#ifndef CMC_CRY_SLOTS_INT_H
#define CMC_CRY_SLOTS_INT_H

#include "crypto/cry.h"
#include "crypto/tpm.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define SLOT_MAGIC_BYTES 8
#define SLOT_VERSION 2u
#define SLOT_VERSION_1 1u
#define FILE_ID_BYTES 16
#define HEADER_BYTES (SLOT_MAGIC_BYTES + 2 + 2 + FILE_ID_BYTES)
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define KDF_ALG_ARGON2ID13 2u
#define WRAP_LEGACY 1u
#define WRAP_CURRENT 2u
#define WRAP_TPM 3u /* a wrap 2 slot whose key also needs a secret sealed to a TPM */
#define CHAIN_BYTES CRY_HASH_BYTES
#define PAYLOAD_BASE (3 * CRY_KEY_BYTES) /* replica key, chain seed, signing seed */
#define PAYLOAD_MAX (4 * CRY_KEY_BYTES)  /* and the role key */
#define WRAPPED_MAX (PAYLOAD_MAX + CRY_SEAL_TAG_BYTES)
/* U..salt without the names. */
#define HEAD_FIXED_BYTES (1 + 1 + 1 + 8 + 8 + SALT_BYTES)
/* Everything of a slot besides the names and the ciphertext, at most. */
/* A TPM-bound slot's object: two lengths and the public and private blobs. */
#define TPM_FIELDS_MAX (2 + CRY_TPM_BLOB_MAX + 2 + CRY_TPM_BLOB_MAX + CRY_TPM_NAME_BYTES)
#define SLOT_FIXED_MAX (1 + HEAD_FIXED_BYTES + CRY_SIGN_PK_BYTES + 1 + TPM_FIELDS_MAX + 4 + CHAIN_BYTES + \
                        CRY_SEAL_NONCE_BYTES)
#define SLOT_MAX_BYTES (SLOT_FIXED_MAX + CRY_USER_MAX + CRY_ROLE_MAX + WRAPPED_MAX)
#define FILE_MAX_BYTES (HEADER_BYTES + CRY_SLOTS_MAX * SLOT_MAX_BYTES)
#define AD_MAX_BYTES (SLOT_MAGIC_BYTES + 2 + FILE_ID_BYTES + 1 + HEAD_FIXED_BYTES + CRY_USER_MAX + CRY_ROLE_MAX + \
                      CRY_SIGN_PK_BYTES + 1 + TPM_FIELDS_MAX)
/* A hostile file must not be able to make one unlock take minutes or gigabytes. */
#define KDF_OPS_CAP 16u
#define KDF_MEM_CAP ((uint64_t)crypto_pwhash_MEMLIMIT_SENSITIVE)
/* The failure count stops here, so checking the chain is bounded (about a second). */
#define FAILURES_MAX (1u << 20)

static_assert(SALT_BYTES == 16, "salt size is part of the file format");
static_assert(KDF_ALG_ARGON2ID13 == crypto_pwhash_ALG_ARGON2ID13, "algorithm id");
static_assert(crypto_sign_SEEDBYTES == CRY_KEY_BYTES, "signing seed size");


struct slot {
    uint8_t wrap;
    char user[CRY_USER_MAX + 1];
    char role[CRY_ROLE_MAX + 1];
    uint8_t kdf_alg;
    uint64_t opslimit;
    uint64_t memlimit;
    uint8_t salt[SALT_BYTES];
    uint8_t user_pk[CRY_SIGN_PK_BYTES]; /* wrap 2 */
    uint8_t payload_len;
    uint16_t tpm_pub_len;               /* WRAP_TPM: the sealed object's marshalled blobs */
    uint16_t tpm_priv_len;
    uint8_t tpm_pub[CRY_TPM_BLOB_MAX];
    uint8_t tpm_priv[CRY_TPM_BLOB_MAX];
    uint8_t tpm_parent[CRY_TPM_NAME_BYTES]; /* the storage primary key's name at sealing */
    uint32_t failures;
    uint8_t chain[CHAIN_BYTES];
    uint8_t nonce[CRY_SEAL_NONCE_BYTES];
    uint8_t wrapped[WRAPPED_MAX];
};

struct cry_slots {
    char *path;
    char *throttle_path;
    char *lock_path;
    uint8_t file_id[FILE_ID_BYTES];
    size_t count;
    struct slot slot[CRY_SLOTS_MAX];
};

/* 1 for a slot in the current format (with or without a TPM): it has a public key, a
 * payload of P bytes and a failure chain. */
static inline int slot_is_current(const struct slot *sl)
{
    return sl->wrap == WRAP_CURRENT || sl->wrap == WRAP_TPM;
}

/* 1 when ops/mem lie between the floor (interactive limits, or the test limits when they
 * are on) and the caps. */
int slots_kdf_acceptable(uint64_t ops, uint64_t mem);
/* 1..max bytes, no control characters. */
int slots_name_ok(const char *s, size_t len, size_t max);
/* The authenticated data of a slot in a file with `file_id`; returns its length. */
size_t slots_ad(const uint8_t file_id[FILE_ID_BYTES], const struct slot *sl, uint8_t ad[AD_MAX_BYTES]);
/* Writes the file (atomic replace) from the handle, leaving out slot `skip` (-1: none) and
 * adding `extra` (NULL: none). */
int slots_save(const cry_slots *s, long skip, const struct slot *extra);
/* Reads the file on disk into the handle (slots, counts and file id); called under the
 * lock. On failure the handle is unchanged. */
int slots_reload(cry_slots *s);

#endif
