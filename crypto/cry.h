/*
 * cry.h - the only module that includes sodium.h.
 *
 * Secure memory, key slots that wrap the replica key under a user's PIN (XChaCha20-Poly1305),
 * Ed25519 signatures and BLAKE2b hashes.
 *
 * Secrets live in `struct cry_secret` buffers allocated with sodium_malloc (guard pages,
 * mlock'd, never swapped when the OS allows) and are zeroed and freed by cry_secret_free()
 * on every path. Callers never copy a secret into ordinary memory except to hand it to a
 * library that needs it (SQLCipher's key pragma), and zero that copy at once.
 *
 * Checks that guard a security decision are warn_unused_result. All functions return a
 * cmc_err; details never contain a PIN or key material. cry_init() must be called once
 * before anything else (it is idempotent and thread-safe).
 */
#ifndef CMC_CRY_H
#define CMC_CRY_H

#include <stddef.h>
#include <stdint.h>

#define CRY_MUST_CHECK __attribute__((warn_unused_result))

#define CRY_KEY_BYTES 32          /* replica key, sealing keys */
#define CRY_SIGN_PK_BYTES 32      /* Ed25519 public key */
#define CRY_SIGN_SK_BYTES 64      /* Ed25519 secret key (seed + public key) */
#define CRY_SIG_BYTES 64          /* Ed25519 signature */
#define CRY_HASH_BYTES 32         /* BLAKE2b-256 */
#define CRY_SEAL_NONCE_BYTES 24   /* XChaCha20-Poly1305 nonce */
#define CRY_SEAL_TAG_BYTES 16     /* Poly1305 tag */
#define CRY_SEAL_OVERHEAD (CRY_SEAL_NONCE_BYTES + CRY_SEAL_TAG_BYTES)
#define CRY_USER_MAX 64           /* user name bytes (without NUL) */
#define CRY_ROLE_MAX 32           /* role name bytes (without NUL) */
#define CRY_PIN_MIN 8             /* shortest PIN accepted when a slot is made (docs/STORAGE.md) */
#define CRY_PIN_MAX 128
#define CRY_SLOTS_MAX 32          /* users per key-slot file */

CRY_MUST_CHECK int cry_init(void);

/* ---- secure memory --------------------------------------------------------------------- */

struct cry_secret {
    uint8_t *buf; /* sodium_malloc'd */
    size_t len;
};

/* A new zero-filled secret of `len` bytes. */
int cry_secret_new(size_t len, struct cry_secret **out);
/* Zeroes and frees; NULL is a no-op. */
void cry_secret_free(struct cry_secret *s);
void cry_memzero(void *p, size_t n);
/* Constant-time comparison: 1 if equal. */
CRY_MUST_CHECK int cry_memeq(const void *a, const void *b, size_t n);
/* Random bytes (libsodium's generator). */
void cry_random(void *buf, size_t n);

/* ---- key slots ------------------------------------------------------------------------- */

/* The key-slot file (docs/STORAGE.md has the byte layout): per user, the replica key (and,
 * for the slots given it, the role key; and always the user's own signing key) wrapped with
 * XChaCha20-Poly1305 under Argon2id(PIN, salt), with the user's name, role and public key
 * (and the file's id, the slot's KDF limits) as authenticated data, so editing the file
 * cannot change a role.
 *
 * Failed unlocks are counted, never timed: in a companion file "<path>.throttle" and in the
 * slot of the user tried (with a hash chain that the next successful unlock checks, so a
 * count wound back is reported). After a few free attempts each attempt first runs extra
 * Argon2id derivations growing with the count (cry_slots_next_work). An exclusive lock on
 * "<path>.lock" is held across each attempt and each change of the file, so parallel
 * attempts serialise and each one counts. */
typedef struct cry_slots cry_slots;

/* What a successful unlock (or creating a file) hands back. Secrets are the caller's:
 * cry_unlocked_clear frees them. */
struct cry_unlocked {
    struct cry_secret *key;       /* the replica key: published data */
    struct cry_secret *role_key;  /* the role key (drafts, edits, push authority); NULL when
                                     the slot does not wrap one */
    struct cry_secret *user_sk;   /* the user's Ed25519 secret key */
    uint8_t user_pk[CRY_SIGN_PK_BYTES];
    char role[CRY_ROLE_MAX + 1];  /* the authenticated role */
    uint32_t failures_before;     /* failed attempts recorded before this unlock */
    int record_altered;           /* 1: the slot's failure record did not match its chain */
};
void cry_unlocked_clear(struct cry_unlocked *u);

/* CMC_OK when `pin` may protect a new slot (CRY_PIN_MIN..CRY_PIN_MAX bytes); otherwise
 * CMC_ERR_INVALID with a message saying the rule. */
int cry_pin_acceptable(const char *pin);

/* Argon2id limits: libsodium's interactive ones. Tests may lower them (cry_test.h); the
 * programs that ship cannot. */

/* What a new slot holds besides the replica key (flags of cry_slots_create_ex and
 * cry_slots_add_ex): the role key; a secret sealed to this machine's TPM 2.0 (reached
 * through CMC_TPM_TCTI, default "device:/dev/tpmrm0"), without which the slot cannot be
 * opened, so a copied file is useless elsewhere and the TPM's lockout limits PIN guesses.
 * Unlocking a TPM-bound slot may also fail with CMC_ERR_THROTTLED (the TPM is locked out),
 * CMC_ERR_LOCKED (another TPM, or this one was cleared) or CMC_ERR_IO (no TPM). */
#define CRY_SLOT_ROLE_KEY 1
#define CRY_SLOT_TPM 2

/* Creates a new slot file at `path` (refuses an existing file: CMC_ERR_EXISTS) with a fresh
 * random replica key (and role key with CRY_SLOT_ROLE_KEY) and one slot for `user` with
 * `role`; hands back what the slot holds. User names are 1..CRY_USER_MAX bytes, roles
 * 1..CRY_ROLE_MAX bytes, neither with control characters; PINs cry_pin_acceptable
 * (CMC_ERR_INVALID otherwise; the same rules for cry_slots_add). A handle is used by one
 * thread at a time. */
int cry_slots_create_ex(const char *path, const char *user, const char *role, const char *pin,
                        int flags, struct cry_unlocked *out);
/* The same without a role key, handing back only the replica key. */
int cry_slots_create(const char *path, const char *user, const char *role, const char *pin,
                     struct cry_secret **key_out);
/* Loads and parses the slot file (CMC_ERR_NOT_FOUND, CMC_ERR_CORRUPT for any malformation,
 * including KDF limits below the production floor unless test limits are enabled). Version
 * 1 files are read; their slots are rewritten in the current format at their next unlock. */
int cry_slots_load(const char *path, cry_slots **out);
void cry_slots_free(cry_slots *s);

/* Unwraps `user`'s slot. Re-reads the file under the lock, counts the attempt, runs the
 * throttle's extra derivations, then tries the PIN. Wrong PIN or unknown user: CMC_ERR_AUTH
 * (the failure stays counted). A slot whose authenticated data was edited (a role raised)
 * fails like a wrong PIN. On success the failure record is reset (the slot is re-wrapped
 * with a fresh nonce and chain). */
CRY_MUST_CHECK int cry_slots_unlock_ex(cry_slots *s, const char *user, const char *pin,
                                       struct cry_unlocked *out);
/* The same handing back only the replica key and the role (role_out has CRY_ROLE_MAX + 1
 * bytes). */
CRY_MUST_CHECK int cry_slots_unlock(cry_slots *s, const char *user, const char *pin,
                                    struct cry_secret **key_out, char *role_out);

/* Adds a slot for a new user wrapping what `by` unlocked (the replica key, and the role key
 * with CRY_SLOT_ROLE_KEY: CMC_ERR_DENIED if `by` has none; sealed to the TPM with
 * CRY_SLOT_TPM) and saves the file atomically.
 * CMC_ERR_EXISTS if the user has a slot, CMC_ERR_TOO_LARGE when the file already holds
 * CRY_SLOTS_MAX slots. On failure the file is unchanged. */
int cry_slots_add_ex(cry_slots *s, const struct cry_unlocked *by, const char *user, const char *role,
                     const char *pin, int flags);
int cry_slots_add(cry_slots *s, const struct cry_secret *key, const char *user, const char *role,
                  const char *pin);
/* 1 when some slot of the file holds the role key; 1 when slot i does. */
int cry_slots_any_role_key(const cry_slots *s);
int cry_slots_has_role_key(const cry_slots *s, size_t i);
/* 1 when slot i is sealed to a TPM. */
int cry_slots_tpm_bound(const cry_slots *s, size_t i);
/* For a file from before role keys: gives `user`'s slot (just unlocked into `u`, with the
 * same PIN) a new role key, and hands it back in u->role_key. Refused when any slot already
 * holds one (CMC_ERR_EXISTS): then only a holder can give it on (cry_slots_add_ex). */
int cry_slots_mint_role_key(cry_slots *s, const char *user, const char *pin, struct cry_unlocked *u);

/* Removes a user's slot and saves the file atomically; once saved, the slot (and its wrapped
 * key) is overwritten in memory. Refuses to remove the last slot (CMC_ERR_STATE); an unknown
 * user is CMC_ERR_NOT_FOUND. On failure the file is unchanged. */
int cry_slots_remove(cry_slots *s, const char *user);
/* Number of slots, and the name/role of slot i (for `user list`). */
size_t cry_slots_count(const cry_slots *s);
int cry_slots_user(const cry_slots *s, size_t i, const char **user, const char **role);
/* The public signing key of slot i's user; CMC_ERR_NOT_FOUND for a slot from a version 1
 * file not yet unlocked since. */
int cry_slots_user_pk(const cry_slots *s, size_t i, uint8_t pk[CRY_SIGN_PK_BYTES]);

/* Crypto-erase: overwrites the slot file and its throttle file and removes them (and the
 * lock file). Without them the replica's keys cannot be recovered. */
int cry_slots_destroy(const char *path);

/* Failed attempts on record for `user` (NULL: the file's count), as of the handle's last
 * reading of the slot file; and the extra derivations the next attempt would run. */
uint32_t cry_slots_failures(const cry_slots *s, const char *user);
uint32_t cry_slots_next_work(const cry_slots *s, const char *user);

/* ---- signatures and hashes ------------------------------------------------------------- */

int cry_sign_keypair(uint8_t pk[CRY_SIGN_PK_BYTES], struct cry_secret **sk_out);
/* The public key of a secret key. */
void cry_sign_public(const struct cry_secret *sk, uint8_t pk[CRY_SIGN_PK_BYTES]);
int cry_sign(const struct cry_secret *sk, const void *msg, size_t len, uint8_t sig[CRY_SIG_BYTES]);
/* CMC_OK when `sig` is a valid signature of msg by pk; CMC_ERR_TAMPERED otherwise. */
CRY_MUST_CHECK int cry_verify(const uint8_t pk[CRY_SIGN_PK_BYTES], const void *msg, size_t len,
                              const uint8_t sig[CRY_SIG_BYTES]);

/* BLAKE2b-256, one-shot and incremental. */
void cry_hash(uint8_t out[CRY_HASH_BYTES], const void *msg, size_t len);
struct cry_hash_state {
    _Alignas(64) uint8_t opaque[384]; /* crypto_generichash_state */
};
void cry_hash_init(struct cry_hash_state *st);
void cry_hash_update(struct cry_hash_state *st, const void *msg, size_t len);
void cry_hash_final(struct cry_hash_state *st, uint8_t out[CRY_HASH_BYTES]);

/* ---- sealed boxes (anonymous public-key encryption) ------------------------------------ */

#define CRY_BOX_PK_BYTES 32    /* X25519 public key */
#define CRY_BOX_SEAL_BYTES 48  /* what crypto_box_seal adds to a message */

/* The box key pair that `key` (a 32-byte secret) derives, always the same for one key: the
 * secret half (CRY_KEY_BYTES) is derived again by whoever holds `key`, and is never stored. */
int cry_box_keypair_from(uint8_t pk[CRY_BOX_PK_BYTES], struct cry_secret **sk_out,
                         const struct cry_secret *key);
/* Seals `len` bytes to `pk` (libsodium's crypto_box_seal): out needs len + CRY_BOX_SEAL_BYTES.
 * Anyone may seal; only the secret half opens. */
int cry_box_seal(uint8_t *out, const void *msg, size_t len, const uint8_t pk[CRY_BOX_PK_BYTES]);
/* Opens a sealed box into out (clen - CRY_BOX_SEAL_BYTES bytes). CMC_ERR_TAMPERED when it was
 * not sealed to this pair or was altered. */
CRY_MUST_CHECK int cry_box_open(uint8_t *out, const uint8_t *box, size_t clen,
                                const uint8_t pk[CRY_BOX_PK_BYTES], const struct cry_secret *sk);

/* Lower-case hex of `len` bytes into out (2*len+1 bytes). */
void cry_hex(char *out, const uint8_t *in, size_t len);
/* Parses exactly 2*len hex digits. CMC_ERR_INVALID otherwise. */
int cry_unhex(uint8_t *out, size_t len, const char *hex);

#endif
