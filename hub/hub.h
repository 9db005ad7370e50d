/*
 * hub.h - the central service's core: the hub store, the plan lifecycle, devices and
 * scopes, the change log, bundle pages, edit intake and audit intake.
 *
 * The store is a SQLCipher database DIR/hub.db keyed with the raw 256-bit key kept in
 * DIR/hub.key (0600, 64 lower-case hex digits and a newline); the hub's Ed25519 signing key
 * lives inside the encrypted store (docs/STORAGE.md "## Hub store"). The database runs in
 * WAL mode with a busy timeout, so the CLI and a running server work on it at once.
 *
 * Lifecycle (DOMAIN.md): every state change of a plan makes a new numbered version, so
 * version numbers alone tell a device whether its copy is current; every version is kept
 * with who made it, how and when. Published versions stay what devices see until a newer
 * version is approved. Only the gp role approves.
 *
 * Change log: every change that can alter what some device should hold takes the next
 * sequence number (seq) and stamps the plan with it. A pull from cursor C walks the plans
 * stamped after C, in seq order, and decides per device what to send (hub_pull).
 *
 * Lost devices and accountability: every bundle opens with the device's lease policy; a purge
 * is repeated in a device's bundles until the device acknowledges it; a pull from a cursor
 * older than one the device already proved means its replica was restored from an older copy,
 * and the answer (flag ROLLBACK) repairs it; a wipe order stays until the device confirms it.
 *
 * Device-facing requests are handled as pure functions (hub_api_handle: request in, status
 * and body out) so they can be tested and fuzzed without a socket; hub/server.h serves them
 * over HTTP(S).
 *
 * Errors: every function returns a cmc_err with a one-line detail (cmc_errmsg) naming the
 * field, file or id involved, never patient data. Library errors are translated here.
 * Memory: buffers handed out are cmc_malloc'd and freed by the caller with cmc_free.
 * Thread-safety: a hub handle is used by one thread at a time (the server serialises its
 * threads on one handle); several processes may open the same directory at once.
 */
#ifndef CMC_HUB_H
#define CMC_HUB_H

#include "crypto/cry.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hub hub;

#define HUB_NAME_MAX 64          /* user and device names, bytes */
#define HUB_SCOPE_MAX 96         /* "region:R", "team:T", "care_home:H", "all" */
#define HUB_CODE_LEN 19          /* enrollment code "XXXX-XXXX-XXXX-XXXX" */
#define HUB_CODE_TTL (24 * 3600) /* seconds an enrollment code stays valid */
#define HUB_LEASE_DAYS 14        /* default days a replica may go without a successful sync */
#define HUB_LEASE_MAX 3650       /* the most a lease setting may say (BUNDLE_MAX_LEASE_DAYS) */
#define HUB_NAG_MAX 1000         /* unacknowledged purges repeated per bundle, oldest first */
#define HUB_CLOCK_SKEW 300       /* seconds a request's time may differ from the hub's */
#define HUB_NONCE_KEEP 600       /* seconds a request nonce is remembered */
#define HUB_BUDGET_DEFAULT (1024u * 1024u)
#define HUB_BUDGET_MAX (8u * 1024u * 1024u)
#define HUB_BUDGET_MIN 1024u
#define HUB_MAX_REQUEST (1024u * 1024u) /* request bodies above this are refused (413) */

/* Hub-side user roles. A patient may start a plan; only a gp approves. */
enum hub_role {
    HUB_ROLE_NONE = 0,
    HUB_ROLE_GP,        /* "gp" */
    HUB_ROLE_CLINICIAN, /* "clinician" */
    HUB_ROLE_ADMIN,     /* "admin" */
    HUB_ROLE_PATIENT,   /* "patient" */
};
const char *hub_role_name(int role);

/* ---- the store ------------------------------------------------------------------------- */

/* Which store hub_init and hub_open use: NULL or "" the SQLCipher file in DIR (the default),
 * postgresql://user@host:port/db a PostgreSQL database (DIR then keeps the key file that
 * seals the hub's secrets in it, and TLS material). Until it is called, $CMC_HUB_DB decides.
 * The text is not copied: it must outlive the hub's use of it. */
void hub_use_db(const char *url);
/* The store URL in force (NULL: the SQLCipher file). */
const char *hub_db_url(void);
/* 1 when the open hub runs on PostgreSQL (several hub nodes may share it). */
int hub_store_shared(const hub *h);

/* Creates DIR (0700), the store key file, the store and the hub's signing key.
 * CMC_ERR_EXISTS when DIR (or the PostgreSQL database) already holds a hub. */
int hub_init(const char *dir);
/* Opens an initialised hub. CMC_ERR_NOT_FOUND when there is none (run `cmc-hub init`),
 * CMC_ERR_TAMPERED when the key does not open the store. *out is NULL on failure. */
int hub_open(const char *dir, hub **out);
void hub_close(hub *h); /* NULL is a no-op */
/* ---- backup, restore, and devices that find the hub behind them (store_backup.c) ------- */

struct hub_generation {
    char id[33];            /* 32 hex digits, new at init and at every restore */
    uint64_t epoch;         /* 0 until the first restore, then one more at each */
    uint64_t restored_head; /* the change log's head when the store was last restored */
    uint64_t epoch_base;    /* the first change seq after that restore */
};
int hub_generation_get(hub *h, struct hub_generation *out);
/* Copies the open SQLCipher store to FILE (the online backup API: the hub may be serving),
 * encrypted under the same key file. CMC_ERR_USAGE on PostgreSQL (use pg_dump or
 * pg_basebackup with WAL archiving: docs/OPERATIONS.md). */
int hub_backup(hub *h, const char *file);
/* SQLCipher: copies FILE (a hub_backup of this hub) over the open store, then marks it
 * restored. PostgreSQL (file NULL): marks a database the operator restored (pg_restore,
 * point-in-time recovery) as restored. Marking takes a new generation id, the next epoch,
 * and moves the change log's sequence to a new base, so no cursor a device took from the
 * lost timeline can name a change of the new one. Every hub node must be stopped first. */
int hub_restore(hub *h, const char *file);
/* A device whose cursor is beyond the restored change log (it saw changes lost with the
 * restore): its evidence is recorded, its sync state on the hub is reset so that it
 * re-syncs from the start, and CMC_ERR_STATE "hub_rewound: ..." is returned (409). CMC_OK
 * for every other cursor. */
int hub_rewind_check(hub *h, const char *device_id, uint64_t cursor);
struct hub_rewind {
    char device_id[PLAN_ID_LEN + 1];
    char name[HUB_NAME_MAX + 1];
    uint64_t cursor;  /* the device had seen the change log up to here */
    uint64_t head;    /* the restored log ended here: cursor - head changes were lost */
    int64_t at;
    char generation[33];
};
/* Every device that found the hub behind it, newest first. */
int hub_rewinds_list(hub *h, int (*cb)(const struct hub_rewind *r, void *ctx), void *ctx);
/* A plan changed after the backup and lost with it, and one device that had received it
 * (device_id "" when none had), as the store before the restore recorded it. */
struct hub_lost_plan {
    char plan_id[PLAN_ID_LEN + 1];
    char device_id[PLAN_ID_LEN + 1];
    char name[HUB_NAME_MAX + 1];
    int64_t version; /* the published version the store before the restore had, or the
                      * version the device reported holding */
    char source[8];  /* "store": the store before the restore; "device": its own evidence */
    int64_t reported; /* when the device itself reported holding it; 0: never */
};
/* The lost plans of the last restore, by plan id then device. A restore from a SQLCipher
 * copy finds them itself; on PostgreSQL hub_restore_lost_from marks the restore as
 * hub_restore(h, NULL) does and reads them from the database as it was before the restore
 * (the old primary, or the database renamed aside; a URL without a password). */
int hub_lost_plans_list(hub *h, int (*cb)(const struct hub_lost_plan *lp, void *ctx), void *ctx);
int hub_restore_lost_from(hub *h, const char *url);
/* A device answered "hub_rewound" reports the published plans it holds from the lost
 * timeline (POST /v1/evidence): each one the store has no version that high of is kept in
 * the lost plans with this device (source "device"), and this device's rows are marked as
 * reported by it. Refused whole, nothing kept: CMC_ERR_DENIED for a device this restore did
 * not rewind, CMC_ERR_INVALID for a seq outside the changes it saw after the restored head,
 * CMC_ERR_TOO_LARGE when its reported plans would outnumber those changes. */
struct wire_evidence;
int hub_evidence_record(hub *h, const char *device_id, const struct wire_evidence *v, size_t n);

/* The hub's Ed25519 public key (devices pin it at enrollment). */
void hub_public_key(const hub *h, uint8_t pk[CRY_SIGN_PK_BYTES]);
/* The change log's head (the highest seq handed out; 0 when empty). */
int hub_head_seq(hub *h, uint64_t *out);

/* ---- users ----------------------------------------------------------------------------- */

int hub_user_add(hub *h, const char *name, const char *role);
/* The role of a user; CMC_ERR_NOT_FOUND when unknown. */
int hub_user_role(hub *h, const char *name, int *role);

/* ---- plans ----------------------------------------------------------------------------- */

/* Imports a plan in the JSON form of examples/plan.json as a new plan (status, version and
 * approval fields in the file are ignored). A plan imported by an admin is
 * "needs_finalisation", by anyone else "draft". CMC_ERR_EXISTS when the plan id or NHS
 * number is already on the hub. */
int hub_plan_import(hub *h, const char *as_user, const char *json, size_t len,
                    char plan_id[PLAN_ID_LEN + 1]);
/* Applies a change document (CHANGES.json) to the newest version, as a new version
 * ("needs_finalisation" when an admin edits, else "draft"). */
int hub_plan_edit(hub *h, const char *as_user, const char *plan_ref, const char *json,
                  size_t len, int64_t *version_out);
/* draft / needs_finalisation -> awaiting_approval: a clinician or gp, a complete plan. */
int hub_plan_submit(hub *h, const char *as_user, const char *plan_ref);
/* awaiting_approval -> published: gp only (CMC_ERR_DENIED for anyone else). Sets approved_by
 * and approved_at, keeps review_due (one year after approval when absent). */
int hub_plan_approve(hub *h, const char *as_user, const char *plan_ref);
/* Stops all sharing: every device that holds the plan is sent a purge. */
int hub_plan_withdraw_consent(hub *h, const char *as_user, const char *plan_ref);

/* A plan id from a plan id or an NHS number (spaces allowed). */
int hub_plan_resolve(hub *h, const char *plan_ref, char plan_id[PLAN_ID_LEN + 1]);
/* A version of a plan (0 = the newest). */
int hub_plan_get(hub *h, const char *plan_ref, int64_t version, struct plan *out);

struct hub_plan_info {
    char plan_id[PLAN_ID_LEN + 1];
    char nhs_number[PLAN_NHS_LEN + 1];
    int status;                /* of the newest version */
    int64_t version;           /* newest version */
    int64_t published_version; /* 0 when never published */
    int consent_withdrawn;
    uint64_t seq;
};
/* Calls cb for every plan whose newest version has `status` (0: every plan), in plan id
 * order; a non-zero return from cb stops the walk and is returned. */
int hub_plan_list(hub *h, int status, int (*cb)(const struct hub_plan_info *, void *), void *ctx);
int hub_plan_info(hub *h, const char *plan_ref, struct hub_plan_info *out);

struct hub_plan_event {
    int64_t version;
    const char *actor;
    const char *action; /* "import", "edit", "submit", "approve", "withdraw_consent", "push" */
    int64_t at;
};
int hub_plan_history(hub *h, const char *plan_ref,
                     int (*cb)(const struct hub_plan_event *, void *), void *ctx);

/* ---- caseloads ------------------------------------------------------------------------- */

/* Team caseload membership by NHS number; the caseload decides what team:T devices hold. */
int hub_caseload_add(hub *h, const char *team, const char *nhs);
int hub_caseload_remove(hub *h, const char *team, const char *nhs);

/* ---- devices --------------------------------------------------------------------------- */

enum hub_device_role {
    HUB_DEVICE_NONE = 0,
    HUB_DEVICE_URGENT_CARE, /* "urgent_care": published versions only */
    HUB_DEVICE_CLINICIAN,   /* "clinician": team scope also gets drafts of its caseload */
};

/* Registers a device and makes its one-time enrollment code (valid HUB_CODE_TTL seconds;
 * only its hash is stored). scope: "all", "region:R", "team:T" or "care_home:H". */
int hub_device_add(hub *h, const char *name, const char *scope, const char *role,
                   char device_id[PLAN_ID_LEN + 1], char code[HUB_CODE_LEN + 1]);

struct hub_device_info {
    char device_id[PLAN_ID_LEN + 1];
    char name[HUB_NAME_MAX + 1];
    char scope[HUB_SCOPE_MAX + 1];
    char role[16];
    char state[16]; /* "pending", "active", "revoked", "wiped" */
    int wipe;       /* a wipe order is pending */
    uint64_t cursor; /* the cursor of its last pull */
    uint64_t proven; /* the highest cursor it has proven it committed: a pull from C proves C,
                      * an acknowledged purge proves the page that carried it */
    int64_t created;
    int64_t last_seen; /* 0 = never */
    int64_t lease_days;   /* the lease in force: device setting, else scope's, else default */
    char lease_from[16];  /* "device", "scope" or "default" */
    int64_t last_rollback; /* 0 = never caught pulling from an older cursor */
    int64_t rollbacks;     /* how many times */
    int64_t wiped_at;      /* when the device confirmed its wipe; 0 = not wiped */
    char audit_alarm[200]; /* the first audit alarm (hub/intake_seal.h); "" = none */
    int64_t audit_alarm_at;
};
int hub_device_list(hub *h, int (*cb)(const struct hub_device_info *, void *), void *ctx);
int hub_device_get(hub *h, const char *device_id, struct hub_device_info *out);
/* What `device list` shows: "pending", "active", "revoked", "wipe ordered" or "wiped". */
const char *hub_device_state_label(const struct hub_device_info *d);
/* A revoked device is refused on every request. */
int hub_device_revoke(hub *h, const char *device_id);
/* The device's next pull answers with a signed wipe order; its acknowledgement (POST /v1/ack
 * {"wipe": true}) is still accepted while the order stands, then the device is "wiped" and
 * refused from then on. */
int hub_device_wipe(hub *h, const char *device_id);

/* Lease policy: the most days a replica may go without a successful sync before it locks
 * (0 = no lease; at most HUB_LEASE_MAX). A device's own setting wins over its scope's, which
 * wins over HUB_LEASE_DAYS. days < 0 removes the setting. The policy reaches the device in
 * every bundle (op POLICY). CMC_ERR_USAGE for days past HUB_LEASE_MAX or a bad scope,
 * CMC_ERR_NOT_FOUND for an unknown device. */
int hub_device_lease_set(hub *h, const char *device_id, int64_t days);
int hub_scope_lease_set(hub *h, const char *scope, int64_t days);
/* The lease in force for a device and where it comes from (from may be NULL). */
int hub_lease_days(hub *h, const char *device_id, int64_t *days, const char **from);

/* Devices that still hold a plan, or were sent its purge and have not acknowledged it
 * (wiped devices excluded): for a withdrawn plan, where it has not yet been destroyed. */
struct hub_plan_holder {
    const char *device_id;
    const char *device_name;
    const char *state;   /* hub_device_state_label */
    int64_t version;     /* the version the hub last sent it (0 = a purge) */
    int purge_sent;      /* a purge was sent and is not yet acknowledged */
    int64_t purge_sent_at; /* when first sent (0 if not sent) */
    int64_t last_seen;
};
int hub_plan_holders(hub *h, const char *plan_ref,
                     int (*cb)(const struct hub_plan_holder *, void *), void *ctx);

struct hub_enrollment {
    char device_id[PLAN_ID_LEN + 1];
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    char scope[HUB_SCOPE_MAX + 1];
    char role[16];
    int lease_days;
    int64_t hub_time;
    uint8_t audit_seed[CRY_HASH_BYTES]; /* the device's first audit sealing key (a secret) */
};
/* Redeems an enrollment code: registers the device's public key. A code enrolls one device
 * key, only until it expires (CMC_ERR_UNAUTHORIZED otherwise, without saying which); the same
 * key presenting it again before then gets the same answer (its first answer was lost), and
 * nothing changes. */
int hub_enroll(hub *h, const char *code, const uint8_t device_pk[CRY_SIGN_PK_BYTES],
               const char *name, struct hub_enrollment *out);

/* Checks a signed request (headers of docs/PROTOCOL.md): a known, enrolled, unrevoked
 * device, a valid signature, a time within HUB_CLOCK_SKEW and a nonce not seen within
 * HUB_NONCE_KEEP. Errors: CMC_ERR_UNAUTHORIZED (unknown, revoked, bad signature, replay:
 * *replay is set to 1 for the latter), CMC_ERR_CLOCK (the detail says by how much).
 * device_id is the authenticated device. */
struct hub_signed_request {
    const char *method;
    const char *path; /* with query */
    const char *device;
    const char *time;
    const char *nonce;
    const char *signature;
    const uint8_t *body;
    size_t body_len;
    /* Optional, for a server that checks signatures before taking the hub's lock: the key
     * the signature was checked against with reqsig_verify (NULL: not checked) and whether
     * it verified. The outcome stands in for the check only when that key is the device's
     * stored key; the device's state, the time and the nonce are checked here as always. */
    const uint8_t *checked_pk;
    int checked_ok;
};
int hub_auth_request(hub *h, const struct hub_signed_request *req,
                     char device_id[PLAN_ID_LEN + 1], int *replay);
/* The stored public key of an enrolled device (whatever its state now); CMC_ERR_NOT_FOUND
 * for an unknown or never enrolled device. */
int hub_device_key(hub *h, const char *device_id, uint8_t pk[CRY_SIGN_PK_BYTES]);

/* ---- sync ------------------------------------------------------------------------------ */

/* The next bundle page from `cursor` for a device that has committed `applied` (<= cursor;
 * the same unless the device fetches ahead of its commits; docs/PROTOCOL.md cursor
 * semantics). budget 0 = HUB_BUDGET_DEFAULT; capped at HUB_BUDGET_MAX. Every page opens with
 * a POLICY op, carries the device's unacknowledged purges again, and is flagged ROLLBACK
 * (and repairs the replica) when `applied` is older than the device's proven cursor. */
int hub_pull(hub *h, const char *device_id, uint64_t cursor, uint64_t applied, size_t budget,
             uint8_t **out, size_t *len);
/* As hub_pull, for a device that can show plans up to `edition` (the pull's schema): an
 * older device gets each plan as it can hold it, with a note where content was left out
 * (docs/PROTOCOL.md, "Mixed versions"). hub_pull is this at PLAN_EDITION_CURRENT. */
int hub_pull_edition(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                     size_t budget, uint64_t edition, uint8_t **out, size_t *len);
/* As hub_pull_edition, with the body codecs the device's pull offered (WIRE_CODEC_*,
 * sync/wire.h): WIRE_CODEC_BROTLI gets Brotli bodies (BUNDLE_FLAG_BROTLI); 0 = zlib, as for
 * a device that offered none. */
int hub_pull_opts(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                  size_t budget, uint64_t edition, uint64_t codecs, uint8_t **out, size_t *len);
/* As hub_pull_opts; `seal` 1 (the pull asked for seals): a page that carries plans ends with
 * their SEAL op (docs/PROTOCOL.md, "Plan seals"). hub_pull and hub_pull_opts seal (as for
 * this agent); hub_pull_edition does not (as for an older one). */
int hub_pull_sealed(hub *h, const char *device_id, uint64_t cursor, uint64_t applied,
                    size_t budget, uint64_t edition, uint64_t codecs, int seal, uint8_t **out,
                    size_t *len);

/* Whether a pull from `cursor` would bring the device anything: a put, a delta or a purge in
 * its view, a page it was sent and has not committed, a wipe order, a lease other than
 * `lease_days` (the one it last received; -1: not compared), or a state that refuses it.
 * Reads only. Plans stamped after max(cursor, *scanned) are looked at and *scanned becomes
 * the head looked up to, so a held wait (hub/live.h) rereads only what changed since. */
int hub_pending(hub *h, const char *device_id, uint64_t cursor, int64_t lease_days,
                uint64_t *scanned, int *pending);

enum hub_push_result { HUB_PUSH_ACCEPTED = 1, HUB_PUSH_DUPLICATE, HUB_PUSH_CONFLICT };
struct hub_push_reply {
    int result;      /* enum hub_push_result */
    int64_t version; /* the new draft's, or the current one on conflict */
    uint8_t *current; /* conflict: plan_pack of the version the device may see (cmc_free) */
    size_t current_len;
};
/* The person who made a pushed edit: a user the device registered (hub/device_users.h) and
 * their Ed25519 signature of wire_push_digest. */
struct hub_push_author {
    const char *user;
    const uint8_t *sig; /* CRY_SIG_BYTES */
};

/* A device's edit: becomes a new version (awaiting approval when complete, else draft),
 * never a published one, when base_version is the newest; else a conflict. The same
 * idempotency id from the same device makes one version. Clinician devices only, and only
 * an edit signed by one of the device's clinician users: `by` NULL (an agent from before
 * users signed), an unknown user, a user of another role or a signature that does not
 * verify is CMC_ERR_DENIED, nothing stored. The version is recorded as made by "USER on
 * DEVICE-NAME". */
int hub_push(hub *h, const char *device_id, const struct hub_push_author *by,
             const char *idempotency_id, const char *plan_id, int64_t base_version,
             const uint8_t *change, size_t change_len, struct hub_push_reply *out);

/* Audit intake: `body` is the request body, a msgpack map {"entries": [...]}
 * (docs/PROTOCOL.md); each entry must hash correctly and continue the device's chain.
 * Entries already stored are accepted again unchanged. A different entry that continues an
 * entry the hub holds (a device restored from an older copy) starts a new line kept beside
 * the old one, and is recorded as a rollback; any other break is CMC_ERR_CONFLICT (an entry
 * already stored differs) or CMC_ERR_INVALID. All or nothing. *acked_seq is the highest seq
 * of the device's current line. */
int hub_audit_intake(hub *h, const char *device_id, const uint8_t *body, size_t len,
                     uint64_t *acked_seq);

struct hub_audit_entry {
    const char *device_id;
    const char *device_name;
    uint64_t seq;
    const char *user;
    const char *role;
    const char *plan_id;    /* "" for a look-up that found nothing */
    const char *identifier;
    const char *action;
    int64_t wall;     /* the device's wall clock when it happened */
    int64_t received; /* the hub's clock when the entry arrived */
};
/* Entries for a patient, oldest first: those naming the plan's id or its NHS number. PLAN is
 * a plan id or an NHS number; an NHS number with no plan on the hub still finds the look-ups
 * that missed. CMC_ERR_NOT_FOUND when the hub knows neither a plan nor an entry for it. */
int hub_audit_list(hub *h, const char *plan_ref,
                   int (*cb)(const struct hub_audit_entry *, void *), void *ctx);
/* Every entry with `action` (e.g. "break_glass": a locked copy opened with a reason), from
 * every device, oldest first. */
int hub_audit_list_action(hub *h, const char *action, int (*cb)(const struct hub_audit_entry *, void *),
                          void *ctx);

/* A device's acknowledgement of purges (plan ids; each stops that purge being repeated in
 * the device's bundles) and of a wipe (accepted only while a wipe order stands). */
int hub_ack(hub *h, const char *device_id, const char *const *purged, size_t n_purged,
            int wiped);

/* ---- device-facing requests ------------------------------------------------------------ */

struct hub_request {
    const char *method;
    const char *path; /* with query, as sent */
    const char *device, *time, *nonce, *signature; /* X-CMC-* headers, NULL if absent */
    const uint8_t *body;
    size_t body_len;
    const uint8_t *checked_pk; /* optional: see struct hub_signed_request */
    int checked_ok;
};
struct hub_response {
    int status;
    const char *content_type; /* static string */
    uint8_t *body;            /* cmc_malloc'd */
    size_t body_len;
    int retry_after; /* seconds, 0 = none */
};
/* Handles one request; never fails: every error becomes a JSON error response. */
void hub_api_handle(hub *h, const struct hub_request *req, struct hub_response *resp);
void hub_response_free(struct hub_response *resp);
/* A pull that finds nothing for the device, answered on a shared store from one statement
 * without the handle's thread (hub/poll_idle.h): 1 with *resp set (and `name` the device's
 * "name (id)" for the log when it is a 200), 0 when the request must go to hub_api_handle
 * (not a pull, not idle, or a signature the caller has not verified against the stored
 * key); then nothing was recorded. Reads only the handle's key and restore point, which
 * never change while it serves. */
typedef struct hub_idle hub_idle;
int hub_api_pull_idle(const hub *h, hub_idle *ip, const struct hub_request *req,
                      struct hub_response *resp, char *name, size_t name_cap);

/* ---- synthetic data -------------------------------------------------------------------- */

/* Adds n synthetic London plans generated from `seed` (same seed, same plans), in one
 * transaction; caseloads of their teams follow. progress (may be NULL) is called now and
 * then with the count done. */
int hub_seed(hub *h, long n, uint64_t seed, void (*progress)(long done, long total, void *ctx),
             void *ctx);

/* Test hook: generate plan i of a seeded set without storing it. */
int hub_seed_plan(uint64_t seed, long i, struct plan *out, int *status, int *extra_draft);

#endif
