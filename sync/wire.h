/*
 * wire.h - every message between agent and hub, encoded and decoded in one place, and the
 * one audit-entry chain hash (docs/PROTOCOL.md, "Endpoints"). The signed bundle itself is
 * sync/bundle.h's.
 *
 * Encoders take a struct and hand back a cmc_malloc'd buffer (cmc_free it); the bytes are
 * exactly those documented, so a device and a hub of the same release agree byte for byte.
 * Decoders fill a struct from untrusted bytes with sync/mp.h's strict reader: every count
 * and length is checked against its cap and the bytes left before it is used, a missing
 * required field is refused, and nothing is allocated for what a header merely claims.
 * Pointers a decoder leaves in its struct (a push's `change`, an answer's `current`) point
 * into the caller's buffer and live as long as it does.
 *
 * Errors: decoders of requests (the hub's side) fail with CMC_ERR_INVALID and a detail that
 * names the field, never its value; decoders of answers (the device's side) fail with
 * CMC_ERR_PROTOCOL. Encoders fail only with CMC_ERR_NOMEM. No function keeps state; all are
 * safe from any thread.
 */
#ifndef CMC_WIRE_H
#define CMC_WIRE_H

#include "crypto/cry.h"
#include "sync/mp.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

#define WIRE_CODE_MAX 64         /* enrollment code, bytes */
#define WIRE_NAME_MAX 64         /* device name, bytes (= HUB_NAME_MAX) */
#define WIRE_IDEM_MAX 64         /* idempotency id, bytes */
#define WIRE_ACK_MAX 10000       /* plan ids in one purge acknowledgement */
#define WIRE_AUDIT_MAX_ENTRIES 10000
#define WIRE_AUDIT_STR_MAX 200   /* every string of an audit entry, bytes, on decoding */
#define WIRE_AUDIT_BUF 256       /* room for a device's own entry strings, which it hashes whole */
#define WIRE_AUDIT_BATCH 1000    /* entries a device sends per upload while it has more */

/* ---- POST /v1/enroll ------------------------------------------------------------------- */

struct wire_enroll_req {
    const char *code;              /* the one-time code (a secret) */
    uint8_t device_pk[CRY_SIGN_PK_BYTES];
    const char *name;              /* "" when the request carried none */
    char code_buf[WIRE_CODE_MAX + 1]; /* a decoder's storage: code and name point here */
    char name_buf[WIRE_NAME_MAX + 1];
};
int wire_enroll_req_encode(const struct wire_enroll_req *m, uint8_t **out, size_t *len);
/* On failure, and once the code is used, wipe code_buf (cry_memzero). */
int wire_enroll_req_decode(const uint8_t *buf, size_t len, struct wire_enroll_req *m);

struct wire_enroll_ans {
    char device_id[PLAN_ID_LEN + 1];
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    uint8_t audit_seed[CRY_HASH_BYTES]; /* the first audit sealing key (crypto/fss.h), a secret */
    int has_audit_seed;                 /* written, and found, only when set */
    char scope[128];
    char role[32];
    int64_t lease_days;
    int64_t hub_time;
};
int wire_enroll_ans_encode(const struct wire_enroll_ans *m, uint8_t **out, size_t *len);
/* device_id must be a plan-style UUID and hub_pk present; other keys are skipped. */
int wire_enroll_ans_decode(const uint8_t *buf, size_t len, struct wire_enroll_ans *m);

/* ---- GET /v1/pull ---------------------------------------------------------------------- */

struct wire_pull_query {
    uint64_t cursor;
    uint64_t applied; /* the committed cursor; written only when it differs from cursor */
    uint64_t budget;  /* bytes per page; 0 = the hub's default (not written) */
    uint64_t schema;  /* the newest plan edition the device can show (docs/PROTOCOL.md, "Mixed
                       * versions"); a device sends PLAN_EDITION_CURRENT; 0 = not written */
    uint64_t codecs;  /* body codecs the device takes besides zlib (WIRE_CODEC_*, docs/PROTOCOL.md
                       * "Body codecs"); 0 = not written, zlib only; unknown bits are ignored */
    uint64_t seal;    /* 1: the device keeps the hub's plan seals (a SEAL op ends each page
                       * that carries a plan); 0 = not written, and no SEAL op is sent */
};
#define WIRE_CODEC_BROTLI 0x1u
/* The request target "/v1/pull?cursor=N[&applied=A][&budget=B][&schema=E][&z=C][&seal=1]"
 * into out (cap bytes). */
int wire_pull_path(const struct wire_pull_query *q, char *out, size_t cap);
/* Parses the query part (after '?'). cursor is required; applied defaults to cursor; schema
 * defaults to 1 (a device of the first edition never sends it) and must be at least 1;
 * unknown parameters are ignored. */
int wire_pull_query_decode(const char *query, struct wire_pull_query *q);

/* ---- POST /v1/push --------------------------------------------------------------------- */

struct wire_push_req {
    char idempotency_id[WIRE_IDEM_MAX + 1];
    char plan_id[PLAN_ID_LEN + 2]; /* one spare byte: an over-long id reaches the hub's check */
    int64_t base_version;          /* >= 1 */
    const uint8_t *change;         /* plan_change_pack() bytes */
    size_t change_len;
    /* The person who made the edit: a user of the device, and their signature of
     * wire_push_digest. Both or neither on the wire; has_user is 0 for a push of an agent
     * from before users signed (the hub refuses it). */
    int has_user;
    char user[CRY_USER_MAX + 1];
    uint8_t user_sig[CRY_SIG_BYTES];
};
int wire_push_req_encode(const struct wire_push_req *m, uint8_t **out, size_t *len);
int wire_push_req_decode(const uint8_t *buf, size_t len, struct wire_push_req *m);
/* What a user signs for an edit: BLAKE2b-256 of "cmc-push-v1" NUL, the plan id NUL, the base
 * version (8 bytes little-endian), the idempotency id NUL, then the change bytes. */
void wire_push_digest(const char *plan_id, int64_t base_version, const char *idempotency_id,
                      const uint8_t *change, size_t change_len, uint8_t out[CRY_HASH_BYTES]);

/* ---- POST /v1/users -------------------------------------------------------------------- */

/* The device's users as its key-slot file names them, sent by the device (the request is
 * signed with the device's key) so the hub knows whose signatures to accept on pushes. The
 * list replaces the hub's previous one for that device. Answered with wire_ack_ans. */
#define WIRE_USERS_MAX 32
struct wire_user {
    char user[CRY_USER_MAX + 1];
    char role[CRY_ROLE_MAX + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
};
int wire_users_encode(const struct wire_user *v, size_t n, uint8_t **out, size_t *len);
/* Fills v (WIRE_USERS_MAX entries) and *n. */
int wire_users_decode(const uint8_t *buf, size_t len, struct wire_user *v, size_t *n);

struct wire_push_ans {
    char result[16];        /* "accepted", "duplicate" or "conflict" */
    int64_t version;
    const uint8_t *current; /* a conflict's current version (plan msgpack), else NULL */
    size_t current_len;
};
/* Writes "current" when m->current is not NULL. */
int wire_push_ans_encode(const struct wire_push_ans *m, uint8_t **out, size_t *len);
int wire_push_ans_decode(const uint8_t *buf, size_t len, struct wire_push_ans *m);

/* ---- POST /v1/ack ---------------------------------------------------------------------- */

struct wire_ack {
    const char **purges; /* plan ids whose purge is durable here */
    size_t n_purges;
    int wipe;            /* the wipe order was carried out */
    char (*ids)[PLAN_ID_LEN + 1]; /* a decoder's storage for purges; wire_ack_free */
};
/* Writes "purges" when purges is not NULL and "wipe" when wipe is set. */
int wire_ack_encode(const struct wire_ack *m, uint8_t **out, size_t *len);
int wire_ack_decode(const uint8_t *buf, size_t len, struct wire_ack *m);
void wire_ack_free(struct wire_ack *m);
/* The hub's answer, {"ok": true}; a device only needs its status. */
int wire_ack_ans_encode(uint8_t **out, size_t *len);

/* ---- POST /v1/audit -------------------------------------------------------------------- */

struct wire_audit_entry {
    uint64_t seq;
    uint8_t prev[CRY_HASH_BYTES];
    uint8_t hash[CRY_HASH_BYTES];
    char user[WIRE_AUDIT_BUF];
    char role[WIRE_AUDIT_BUF];
    char plan_id[WIRE_AUDIT_BUF];
    char identifier[WIRE_AUDIT_BUF];
    char action[WIRE_AUDIT_BUF];
    int64_t wall;
    int64_t mono;
    uint8_t seal[CRY_HASH_BYTES]; /* the entry's forward-secure seal (crypto/fss.h) */
    int sealed;                   /* "seal" written / found; like "hash", not part of M */
};
/* The device's sealing state at upload (crypto/fss.h): entries sealed so far, the newest
 * one's seq, and the tag over both made with its current key. */
struct wire_audit_state {
    int present;
    uint64_t sealed;
    uint64_t newest;
    uint8_t tag[CRY_HASH_BYTES];
};
/* The chain hash: BLAKE2b-256(prev || M), M the entry's map without its hash pair, keys in
 * the order seq, prev, user, role, plan_id, identifier, action, wall, mono. */
int wire_audit_entry_hash(const struct wire_audit_entry *e, uint8_t out[CRY_HASH_BYTES]);
/* One entry's upload form on its own: M's pairs under a fixmap of ten, then "hash" (never
 * "seal"). */
int wire_audit_entry_pack(const struct wire_audit_entry *e, uint8_t **out, size_t *len);
/* {"state": [sealed, newest, tag], "entries": [the ten-key map of each entry, hash last, then
 * "seal" when sealed]}; "state" only when st is not NULL and present. */
int wire_audit_upload_encode(const struct wire_audit_entry *v, size_t n,
                             const struct wire_audit_state *st, uint8_t **out, size_t *len);
/* An upload is decoded one entry at a time (st: the state, present 0 when the upload had
 * none) (the hub checks each against its chain as it
 * goes): open reads the envelope and the entry count, next reads one entry and computes
 * `computed`, the chain hash of the entry as sent (its pairs' bytes in the order sent), and
 * close refuses trailing bytes. The reader points into the caller's buffer. */
int wire_audit_upload_open(struct mp_reader *r, const uint8_t *buf, size_t len, uint32_t *n,
                           struct wire_audit_state *st);
int wire_audit_upload_next(struct mp_reader *r, struct wire_audit_entry *e,
                           uint8_t computed[CRY_HASH_BYTES]);
int wire_audit_upload_close(struct mp_reader *r);

int wire_audit_ans_encode(uint64_t acked_seq, uint8_t **out, size_t *len);
int wire_audit_ans_decode(const uint8_t *buf, size_t len, int64_t *acked_seq);

/* ---- GET /v1/wait (the change feed, docs/PROTOCOL.md "Live") ----------------------------- */

#define WIRE_WAIT_HOLD_MAX 50 /* seconds a hub holds a wait at most: under a 60 s proxy idle cut */

struct wire_wait_query {
    uint64_t cursor; /* the device's committed cursor */
    int64_t lease;   /* the lease days the device last received; -1 = not written */
    uint64_t hold;   /* seconds the device lets the hub hold the wait; 0 = WIRE_WAIT_HOLD_MAX */
};
/* The request target "/v1/wait?cursor=N[&lease=L][&hold=H]" into out (cap bytes). */
int wire_wait_path(const struct wire_wait_query *q, char *out, size_t cap);
/* Parses the query part (after '?'): cursor is required; hold is capped at
 * WIRE_WAIT_HOLD_MAX; unknown parameters are ignored. */
int wire_wait_query_decode(const char *query, struct wire_wait_query *q);

/* ---- POST /v1/evidence (docs/PROTOCOL.md "Evidence") ------------------------------------ */

/* A device answered "hub_rewound" tells the hub which published plans it holds from the lost
 * timeline (their copy came with a change after the restored head): ids, versions and change
 * numbers, never patient data. At most WIRE_EVIDENCE_MAX a request; a device with more sends
 * several. Answered with wire_ack_ans. */
#define WIRE_EVIDENCE_MAX 256
struct wire_evidence {
    char plan_id[PLAN_ID_LEN + 2]; /* one spare byte: an over-long id is refused, not cut */
    int64_t version;               /* >= 1: the newest published version the device holds */
    uint64_t seq;                  /* >= 1: the change its copy came with */
};
/* {"plans": [{"plan_id": S, "version": I, "seq": U}, ...]} */
int wire_evidence_encode(const struct wire_evidence *v, size_t n, uint8_t **out, size_t *len);
/* Fills v (WIRE_EVIDENCE_MAX entries) and *n: every plan_id a UUID, version and seq positive,
 * the three keys in each entry, nothing else; *n is 0 on failure. */
int wire_evidence_decode(const uint8_t *buf, size_t len, struct wire_evidence *v, size_t *n);

#endif
