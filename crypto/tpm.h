/*
 * tpm.h - sealing a key slot's secret to a TPM 2.0 (internal to crypto/, used by slots.c).
 *
 * A TPM-bound slot holds, besides its Argon2id salt, the public and private blobs of a TPM
 * sealed-data object: a 32-byte random secret that only the TPM that made the object can
 * unseal, and only with the object's auth value. The auth value is derived from the PIN
 * (slots.c), and the object is subject to the TPM's dictionary-attack protection, so every
 * wrong PIN counts against the TPM's lockout, which no file on the device can wind back.
 *
 * The TPM is reached through the TCTI named by the environment variable CMC_TPM_TCTI (for
 * example "swtpm:host=127.0.0.1,port=2321"), or the kernel's resource manager
 * "device:/dev/tpmrm0" when it is unset. The object is created under the owner hierarchy's
 * storage primary key (an ECC P-256 key made from the TPM's owner seed each time, never
 * persisted), so a cleared TPM or another machine's TPM cannot load it.
 *
 * Errors: CMC_ERR_AUTH the auth value is wrong (the TPM counted it); CMC_ERR_THROTTLED the
 * TPM is in dictionary-attack lockout; CMC_ERR_LOCKED the object belongs to another TPM (or
 * this one was cleared); CMC_ERR_IO no TPM could be reached or it failed. Each comes with
 * one clear message (cmc_errmsg). Secrets handed back are written into caller memory; the
 * library's own copies are zeroed before they are freed. Not thread-safe: one call at a
 * time per process (slots.c calls it under the slot file's lock).
 */
#ifndef CMC_CRY_TPM_H
#define CMC_CRY_TPM_H

#include <stddef.h>
#include <stdint.h>

#define CRY_TPM_AUTH_BYTES 32   /* the object's auth value: a SHA-256 sized digest */
#define CRY_TPM_SECRET_BYTES 32 /* the sealed secret */
#define CRY_TPM_BLOB_MAX 512    /* most bytes a marshalled public or private blob may have */
#define CRY_TPM_NAME_BYTES 34   /* the storage primary key's TPM name: SHA-256 id, digest */
#define CRY_TPM_TCTI_DEFAULT "device:/dev/tpmrm0"

/* Makes a new random secret, seals it to the TPM under `auth`, and hands back the secret,
 * the object's marshalled public and private blobs (each at most CRY_TPM_BLOB_MAX) and the
 * name of the storage primary key it was sealed under. */
int cry_tpm_seal(const uint8_t auth[CRY_TPM_AUTH_BYTES], uint8_t secret[CRY_TPM_SECRET_BYTES],
                 uint8_t pub[CRY_TPM_BLOB_MAX], size_t *pub_len, uint8_t priv[CRY_TPM_BLOB_MAX],
                 size_t *priv_len, uint8_t parent[CRY_TPM_NAME_BYTES]);

/* Loads the object from its blobs and unseals its secret with `auth`. The storage primary
 * key the TPM reports must have the name `parent` recorded at sealing (CMC_ERR_LOCKED
 * otherwise): the encrypted session's salt then goes to the TPM that sealed the slot and
 * to nothing standing in for it. */
int cry_tpm_unseal(const uint8_t auth[CRY_TPM_AUTH_BYTES], const uint8_t *pub, size_t pub_len,
                   const uint8_t *priv, size_t priv_len, const uint8_t parent[CRY_TPM_NAME_BYTES],
                   uint8_t secret[CRY_TPM_SECRET_BYTES]);

#endif
