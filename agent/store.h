/*
 * store.h - the device's encrypted replica (SQLCipher).
 *
 * The replica holds plan versions with their status, an identity index (NHS number;
 * normalised family and given names, date of birth, postcode), pending local edits,
 * tombstones of purged plans, sync state (key/value) and the audit log. docs/STORAGE.md
 * documents the schema and its numbered migrations.
 *
 * Opening: the database is keyed with the raw 256-bit replica key (no PBKDF2 on open),
 * 4096-byte pages, WAL, synchronous=FULL, secure_delete=ON, and migrated to the newest
 * schema. A replica whose pages do not authenticate (a flipped byte) fails with
 * CMC_ERR_TAMPERED, on open and on any later read.
 *
 * Sessions: a store handle is opened for one session (user, role), the role taken from the
 * user's key slot. Every read answers for that session: for the urgent-care role the store's
 * own SQL selects published versions only, and every decoded plan is checked again for
 * status "published" before it is returned (a row whose status column and body disagree is
 * CMC_ERR_TAMPERED). Callers cannot ask for anything else.
 *
 * Writes: the sync engine applies one bundle as store_batch_begin(), any number of
 * store_put_version()/store_purge()/store_state_set(), store_batch_commit() - one
 * transaction, so the new cursor commits with the ops or not at all. Single writes outside
 * a batch run in their own transaction.
 *
 * Memory: results are owned by the caller (plan_free, store_hits_free, store_pending_free,
 * cmc_free for audit rows). store_close(NULL) is a no-op; on failure store_open leaves *out
 * NULL and leaks nothing. store_close rolls back a batch left open.
 * Thread-safety: one handle per thread. Two processes are kept apart by the caller's
 * process lock (platform/plat.h).
 *
 * Ownership: the store is the only owner of the replica's schema and connection; no other
 * file sees SQL (agent/store*.c share agent/store_int.h among themselves).
 */
#ifndef CMC_STORE_H
#define CMC_STORE_H

#include "crypto/cry.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

/* The newest schema version (PRAGMA user_version after store_open). */
#define STORE_SCHEMA_VERSION 8

/* Sync-state key holding the role the hub enrolled this device with ("urgent_care" or
 * "clinician"); an urgent-care device refuses drafts (store_put_version). */
#define STORE_STATE_DEVICE_ROLE "device_role"

/* Sync-state key of the hub's signing key (hex), set at enrollment: a replica that holds it
 * shows only plan versions that carry the hub's seal. */
#define STORE_STATE_HUB_PK "hub_pk"
/* Sync-state key set to "1" when a stored version failed its seal: the next sync drops the
 * failing versions and pulls every plan again. */
#define STORE_STATE_SEAL_REPAIR "seal_repair"
/* What a read says instead of a plan whose bytes do not carry the hub's seal. */
#define STORE_INTEGRITY_MSG                                                                \
    "this plan failed its integrity check - do not rely on it; ask the hub"

enum store_role {
    STORE_ROLE_NONE = 0,
    STORE_ROLE_URGENT_CARE = 1, /* "urgent_care": published plans only */
    STORE_ROLE_CLINICIAN = 2,   /* "clinician": also drafts of its caseload, pending edits */
};

struct store_session {
    char user[CRY_USER_MAX + 1];
    int role; /* enum store_role */
    /* The user's signing key (borrowed: it must outlive the store), or NULL. Pending edits
     * the session makes are signed with it (wire_push_digest), so the hub can tell who made
     * them. */
    const struct cry_secret *sign_key;
    /* The role key (borrowed), or NULL: with it a clinician session opens the clinical file
     * (pending edits, merges: docs/STORAGE.md, "Keys per role"). */
    const struct cry_secret *role_key;
};

/* "urgent_care" / "clinician" <-> enum; 0 / NULL when unknown. */
int store_role_from_name(const char *name);
const char *store_role_name(int role);

typedef struct store store;

/* Opens (creating when absent) the replica file at `path` and migrates it. A wrong key or a
 * damaged file is CMC_ERR_TAMPERED; a session without a known role is CMC_ERR_DENIED. */
int store_open(const char *path, const struct cry_secret *key, const struct store_session *session,
               store **out);
void store_close(store *s);
const struct store_session *store_session_of(const store *s);

/* Full integrity check: SQLCipher's page HMACs (cipher_integrity_check), SQLite's
 * integrity_check, and every stored plan body decodes and agrees with its row.
 * CMC_ERR_TAMPERED with a detail saying what failed. */
int store_verify(store *s);

/* Checks every stored version against its seal (whatever the session's role) and calls cb
 * (may be NULL) with the plan id and version of each that fails; *bad counts them. `drop`:
 * those versions are deleted as well (the sync engine's repair). */
typedef void (*store_seal_cb)(const char *plan_id, int64_t version, void *ctx);
int store_seal_scan(store *s, int drop, store_seal_cb cb, void *ctx, int64_t *bad);

/* ---- reads (session-filtered) ---------------------------------------------------------- */

/* The version of the plan this session may see: urgent care, the newest published version;
 * clinician, the newest version held (a draft may be newer than the published one).
 * `key` is an NHS number (10 digits) or a plan id. CMC_ERR_NOT_FOUND when this session may
 * see no version. */
int store_plan_get(store *s, const char *key, struct plan *out);

/* The newest published version, for any role: what another system on the device (the FHIR
 * endpoint) may read, never a draft or a pending edit. */
int store_plan_get_published(store *s, const char *key, struct plan *out);

struct store_hit {
    char plan_id[PLAN_ID_LEN + 1];
    char nhs_number[PLAN_NHS_LEN + 1];
    char *given_name;
    char *family_name;
    char *date_of_birth;
    char *postcode;
    char *address;
    int status;      /* of the version this session sees */
    int64_t version;
};

struct store_query {
    const char *name;          /* matches family or given name, case- and accent-blind prefix
                                  that ignores hyphens, apostrophes and spaces (O'Brien =
                                  OBrien, Smith-Jones = Smith Jones); "given family" matches
                                  both */
    const char *date_of_birth; /* YYYY-MM-DD, exact */
    const char *postcode;      /* spaces and case ignored, exact or outward-code prefix */
};

/* Candidates for identity matching, best first, at most `limit`. At least one criterion. */
int store_search(store *s, const struct store_query *q, size_t limit, struct store_hit **out,
                 size_t *n);
/* As store_search, and *total is every plan that matches, shown or not (a crew must know
 * when the list is not complete: "showing 20 of 551"). */
int store_search_counted(store *s, const struct store_query *q, size_t limit, struct store_hit **out,
                         size_t *n, size_t *total);
/* How many candidates a crew is shown at once, on the command line and the page. */
#define STORE_SEARCH_SHOWN 20
/* The notice under a cut list, naming the criteria not yet given: "showing 20 of 551 - add
 * date of birth or postcode"; "" when every match is shown. */
void store_search_words(const struct store_query *q, size_t shown, size_t total, char *out, size_t cap);
/* Every plan this session may see, ordered by family name, given name. */
int store_list(store *s, struct store_hit **out, size_t *n);
void store_hits_free(struct store_hit *hits, size_t n);

struct store_counts {
    int64_t visible;      /* plans this session can see */
    int64_t published;    /* plans with a published version */
    int64_t drafts;       /* plans whose newest version is not published (clinician sessions;
                             always 0 for urgent care, which is not told drafts exist) */
    int64_t pending;      /* pending local edits */
    int64_t conflicts;    /* plans whose edits are held by a conflict (three-way merge state) */
    int64_t tombstones;
};
/* Plan counts as the replica keeps them (agent/store_counts.c: triggers maintain them on
 * every insert, prune, purge and wipe), read in constant time, without decoding any plan.
 * They follow the rows' columns: a row whose body disagrees with its columns (written by
 * something other than this code) is counted as its columns say, never shown, and found by
 * store_verify, which also compares these counts with store_counts_scan. */
int store_counts_get(store *s, struct store_counts *out);
/* The same counts by decoding and checking every row like the reads do: a row that fails its
 * check is not counted. Reads every plan: for store_verify and tests, not for `status`. */
int store_counts_scan(store *s, struct store_counts *out);

/* ---- sync state (key/value, in the same transaction as a batch) ------------------------ */

/* CMC_ERR_NOT_FOUND when unset. *out owned by caller. */
int store_state_get(store *s, const char *key, char **out);
int store_state_get_int(store *s, const char *key, int64_t *out);
/* As store_state_get, with *out NULL (and CMC_OK) when the key is unset. */
int store_state_find(store *s, const char *key, char **out);
int store_state_set(store *s, const char *key, const char *value);
int store_state_set_int(store *s, const char *key, int64_t value);

/* ---- writes ---------------------------------------------------------------------------- */

int store_batch_begin(store *s);
int store_batch_commit(store *s);
void store_batch_rollback(store *s);

/* Stores a version (replacing the same plan_id+version) and updates the identity index.
 * Refuses (CMC_ERR_STATE) a plan that has a tombstone newer than or equal to `change_seq`
 * (a replayed old bundle cannot bring a purged plan back). Drafts are stored only when the
 * device's role allows it: a device enrolled for urgent care (STORE_STATE_DEVICE_ROLE
 * "urgent_care") refuses them with CMC_ERR_DENIED, whoever the session is; the
 * published-only rule is enforced at read time regardless.
 * The plan must pass plan_validate(PLAN_CHECK_DRAFT) and carry a version (CMC_ERR_INVALID).
 * Inside a batch each write is all or nothing on its own (a savepoint), so the caller may
 * skip a refused op and go on. */
int store_put_version(store *s, const struct plan *p, int64_t change_seq);

/* The same for a plan just decoded by plan_unpack() from `packed` (which validated it):
 * stores those bytes as the body instead of encoding the plan again. */
int store_put_packed(store *s, const struct plan *p, const uint8_t *packed, size_t packed_len,
                     int64_t change_seq);

/* Bulk loading, inside a batch: store_bulk_begin sets the secondary indexes aside (a large
 * snapshot then inserts in linear time), store_bulk_end builds them again (a no-op when they
 * exist). Reads stay correct in between, only slower; store_open rebuilds any that a crash
 * left missing. */
int store_bulk_begin(store *s);
int store_bulk_end(store *s);

/* Removes every version, index row, pending edit and merge state of the plan, writes a
 * tombstone (plan_id, NHS number hash, reason, change_seq), and counts the discarded pending
 * edits in *discarded (may be NULL). secure_delete overwrites the freed pages; the caller
 * checkpoints the WAL after the commit (store_checkpoint). */
int store_purge(store *s, const char *plan_id, const char *reason, int64_t change_seq,
                int *discarded);
/* Truncating WAL checkpoint, so purged data leaves the WAL file. */
int store_checkpoint(store *s);

/* ---- pending local edits --------------------------------------------------------------- */

struct store_pending {
    int64_t id;
    char plan_id[PLAN_ID_LEN + 1];
    int64_t base_version;
    char idempotency_id[PLAN_ID_LEN + 1];
    char user[CRY_USER_MAX + 1];
    int64_t created_at;
    uint8_t *change; /* plan_change_pack() bytes */
    size_t change_len;
    int state;       /* 0 pending, 1 pushed (awaiting hub), 2 held by conflict */
    int has_sig;     /* user_sig holds `user`'s signature of the edit (wire_push_digest) */
    uint8_t user_sig[CRY_SIG_BYTES];
};

/* From now on (1) every replica opened asks SQLCipher to wipe the memory it frees (its page
 * cache of decrypted pages, result rows): `PRAGMA cipher_memory_security`, process-wide. The
 * crew's page turns it on so a locked session leaves no plan text in SQLite's memory. */
void store_memory_security(int on);

/* Signs `digest` as the session's user: CMC_ERR_DENIED when the session has no signing key
 * or is not a clinician's (only clinicians' edits are accepted by the hub). */
int store_session_sign(store *s, const uint8_t digest[CRY_HASH_BYTES], uint8_t sig[CRY_SIG_BYTES]);

/* Clinician sessions only (CMC_ERR_DENIED otherwise): pending edits hold draft content.
 * store_pending_add needs the base version to be held (CMC_ERR_NOT_FOUND otherwise); it
 * keeps a copy of that base version with the edit (a newer version arriving cannot take it
 * away), stamps a fresh random idempotency id, the session's user and the wall time, and fills
 * *out_meta (may be NULL) without copying the change (out_meta->change is NULL). */
int store_pending_add(store *s, const char *plan_id, int64_t base_version, const uint8_t *change,
                      size_t change_len, struct store_pending *out_meta);
int store_pending_list(store *s, const char *plan_id /* NULL = all */, struct store_pending **out,
                       size_t *n);
void store_pending_free(struct store_pending *p, size_t n);
/* Moves an edit to state 0 pending, 1 pushed, 2 held by conflict (any session: the sync
 * engine pushes). CMC_ERR_NOT_FOUND when there is no such edit. */
int store_pending_set_state(store *s, int64_t id, int state);

/* ---- audit rows (agent/audit.c keeps the hash chain; audit.h defines the entry) -------- */

struct audit_entry;

/* The newest entry's seq and hash; *found 0 (seq 0, hash zeros) when the table is empty.
 * CMC_ERR_TAMPERED when the stored hash is not 32 bytes. */
int store_audit_last(store *s, int64_t *seq, uint8_t hash[32], int *found);
/* Inserts one entry as given (seq, prev, hash and all). Any session. */
int store_audit_append(store *s, const struct audit_entry *e);
/* Entries with seq > after_seq in order, at most `max` (0 = all). Free with cmc_free. */
int store_audit_range(store *s, int64_t after_seq, size_t max, struct audit_entry **out, size_t *n);
/* The hash of entry `seq`: *found 0 when there is no such entry; *intact 0 when its stored
 * hash is not 32 bytes (hash then zeros). */
int store_audit_hash_at(store *s, int64_t seq, uint8_t hash[32], int *found, int *intact);
/* Deletes every entry with seq <= through_seq. */
int store_audit_prune(store *s, int64_t through_seq);

/* ---- identity normalisation (as stored in the index and applied to queries) ----------- */

/* Lower-case; Latin letters with accents folded to ASCII ("Zoë" -> "zoe", "ß" -> "ss");
 * spaces, hyphens, apostrophes and punctuation dropped ("O'Brien-Smith" -> "obriensmith");
 * other characters kept as they are. `out` needs strlen(in) + 1 bytes. */
void store_name_normalise(const char *in, char *out);
/* Upper-case ASCII without spaces ("se15 4qt" -> "SE154QT"). `out` needs strlen(in) + 1. */
void store_postcode_normalise(const char *in, char *out);

#endif
