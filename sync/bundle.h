/*
 * bundle.h - the signed, compressed unit the hub sends a device (DESIGN promise 4).
 *
 * Wire form (docs/PROTOCOL.md has every byte): a fixed 156-byte header, then the body.
 *
 *   off len  field
 *     0   4  magic "CMCB"
 *     4   2  protocol version (big-endian, = BUNDLE_PROTOCOL)
 *     6   2  flags: bit 0 "more" (another page follows), bit 1 "snapshot page",
 *               bit 2 "rollback" (the device pulled from a cursor older than one it had
 *               proven; this answer repairs the restored replica), bit 3 "edition 2"
 *               (the schema edition of the plans the page carries: they may hold
 *               second-edition fields; set only for a device whose pull said it shows them
 *               and a page that carries a plan; clear = edition 1),
 *               bit 4 "brotli" (the body is Brotli, RFC 7932, not zlib; set only for a
 *               device whose pull offered the codec: sync/zbody.h)
 *     8  16  device id (the UUID's 16 bytes)
 *    24   8  from cursor (big-endian u64): the device's cursor this answers
 *    32   8  to cursor: the device's cursor once this bundle is applied
 *    40   4  op count
 *    44   4  body length (compressed bytes that follow the header)
 *    48   4  raw length (body bytes after inflating)
 *    52  32  BLAKE2b-256 of the compressed body
 *    84   8  hub wall time, Unix seconds (evidence for the lease and clock checks)
 *    92  64  Ed25519 signature by the hub's key over bytes 0..91
 *
 * Body: zlib (RFC 1950), or Brotli with the "brotli" flag, of a msgpack array of `op count`
 * ops:
 *   [1, plan_id, seq, plan]                      put, whole plan (plan_pack map)
 *   [2, plan_id, seq, base_version, change]      put, delta against base_version
 *                                                (plan_change_pack array)
 *   [3, plan_id, seq, reason]                    purge; reason "consent_withdrawn",
 *                                                "left_scope" or "not_shared"
 *   [4, seq]                                     wipe this device
 *   [5, seq, lease_days]                         policy: the most days the replica may go
 *                                                without a successful sync (0 = no lease,
 *                                                at most BUNDLE_MAX_LEASE_DAYS)
 *
 * Verification order (agent): total length >= header; magic, version; body length equals
 * the bytes that follow (HTTP framing is not trusted); raw length and op count under the
 * caps; BLAKE2b of the body; signature with the pinned hub key; no unknown flag bits;
 * device id is ours; from cursor equals our committed cursor (these two by the caller).
 * Only then inflate (stopping at raw length + 1 bytes: a zlib bomb is refused) and decode,
 * strictly.
 *
 * Caps on the decoded body: every op is one msgpack array of the shape above, plan ids are
 * canonical UUIDs, purge reasons one of the three names, base_version >= 1, lease_days
 * 0..BUNDLE_MAX_LEASE_DAYS; the array's
 * length must equal the header's op count and no byte may follow it. Plans and deltas are
 * decoded by plan_unpack / plan_change_unpack (their own caps apply); a PUT's plan must carry
 * the op's plan id; a PUT's plan keeps fields of a later edition (plan_unpack_keep), so a
 * device shows that it holds content it cannot show rather than refusing the plan.
 *
 * Errors: CMC_ERR_INVALID for a caller's bad arguments when building (unknown flag bits, a
 * malformed op), CMC_ERR_TOO_LARGE past a cap, CMC_ERR_NOMEM, and the verification and
 * decoding codes below. Details name the header field or the op's index, never plan data.
 *
 * Memory: bundle_build hands back one cmc_malloc'd buffer; decoded ops own their plans and
 * changes, and bundle_ops_free releases them and the array bundle_decode made (ops built by
 * a caller are released one at a time with bundle_op_clear). Thread-safe.
 */
#ifndef CMC_BUNDLE_H
#define CMC_BUNDLE_H

#include "crypto/cry.h"
#include "sync/change.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>

#define BUNDLE_PROTOCOL 1
#define BUNDLE_HEADER_BYTES 156
#define BUNDLE_SIGNED_BYTES 92
#define BUNDLE_FLAG_MORE 0x1u
#define BUNDLE_FLAG_SNAPSHOT 0x2u
#define BUNDLE_FLAG_ROLLBACK 0x4u
#define BUNDLE_FLAG_EDITION2 0x8u
#define BUNDLE_FLAG_BROTLI 0x10u
#define BUNDLE_MAX_BODY (8u * 1024 * 1024)  /* compressed */
#define BUNDLE_MAX_RAW (32u * 1024 * 1024)  /* inflated */
#define BUNDLE_MAX_OPS 100000u
#define BUNDLE_DEVICE_ID_BYTES 16
#define BUNDLE_MAX_LEASE_DAYS 3650 /* ten years; a POLICY op past it is refused */

struct bundle_header {
    uint16_t protocol;
    uint16_t flags;
    uint8_t device_id[BUNDLE_DEVICE_ID_BYTES];
    uint64_t from_cursor;
    uint64_t to_cursor;
    uint32_t op_count;
    uint32_t body_len;
    uint32_t raw_len;
    uint8_t body_hash[CRY_HASH_BYTES];
    int64_t hub_time;
};

enum bundle_op_kind {
    BUNDLE_OP_PUT = 1,
    BUNDLE_OP_DELTA = 2,
    BUNDLE_OP_PURGE = 3,
    BUNDLE_OP_WIPE = 4,
    BUNDLE_OP_POLICY = 5,
};

struct bundle_op {
    enum bundle_op_kind kind;
    char plan_id[PLAN_ID_LEN + 1]; /* empty for WIPE and POLICY */
    uint64_t seq;                  /* change-log sequence of this op */
    struct plan plan;              /* PUT */
    uint8_t *packed;               /* PUT, decoded ops only: the plan's bytes as received, which
                                    * the strict decoder proved are plan_pack(&plan) */
    size_t packed_len;
    int64_t base_version;          /* DELTA */
    struct plan_change change;     /* DELTA */
    char reason[32];               /* PURGE */
    int64_t lease_days;            /* POLICY: 0..BUNDLE_MAX_LEASE_DAYS, 0 = no lease */
};

/* The schema edition of a bundle's plans: 2 with BUNDLE_FLAG_EDITION2, else 1. */
int bundle_edition(const struct bundle_header *h);

void bundle_op_init(struct bundle_op *op);
/* Frees one op's plan and change and re-inits it. NULL is a no-op. */
void bundle_op_clear(struct bundle_op *op);
/* Clears `n` ops and frees the array (as returned by bundle_decode). NULL is a no-op. */
void bundle_ops_free(struct bundle_op *ops, size_t n);
/* 1 if the `len` bytes at `s` are a purge reason name (consent_withdrawn, left_scope,
 * not_shared). */
int bundle_reason_valid(const char *s, size_t len);

/* Builds a whole bundle: packs and deflates the ops, fills body_len, raw_len, op_count and
 * body_hash in a copy of `hdr`, signs. hdr->protocol 0 means BUNDLE_PROTOCOL. Caller frees
 * *out. */
int bundle_build(const struct bundle_header *hdr, const struct bundle_op *ops, size_t n_ops,
                 const struct cry_secret *hub_sk, uint8_t **out, size_t *len);

/* Incremental building for the hub: append ops one at a time to an encoder that tracks the
 * packed size, so pages can be cut at a byte budget. */
typedef struct bundle_writer bundle_writer;
int bundle_writer_new(bundle_writer **out);
int bundle_writer_add(bundle_writer *w, const struct bundle_op *op);
/* Adds an op already packed as one msgpack array (hub caches of packed plans). */
int bundle_writer_add_raw(bundle_writer *w, const uint8_t *op_msgpack, size_t len);
size_t bundle_writer_raw_size(const bundle_writer *w);
uint32_t bundle_writer_count(const bundle_writer *w);
/* BLAKE2b-256 of the ops packed so far (not the array header: pair it with the count). Two
 * writers with the same digest and count finish to the same raw body, so a hub may keep the
 * compressed body and re-sign it for another device (bundle_seal). */
void bundle_writer_digest(const bundle_writer *w, uint8_t out[CRY_HASH_BYTES]);
int bundle_writer_finish(bundle_writer *w, const struct bundle_header *hdr,
                         const struct cry_secret *hub_sk, uint8_t **out, size_t *len);
void bundle_writer_free(bundle_writer *w);

/* Frames an already compressed body: fills body_len and body_hash in a copy of `hdr` (which
 * supplies op_count and raw_len, as recorded when the body was built) and signs. For a hub
 * that caches compressed bodies shared by many devices and re-signs only the header. */
int bundle_seal(const struct bundle_header *hdr, const uint8_t *body, size_t body_len,
                const struct cry_secret *hub_sk, uint8_t **out, size_t *len);

/* Parses and checks the header against the buffer, the caps, the hash and the signature.
 * CMC_ERR_TAMPERED (hash/signature), CMC_ERR_CORRUPT (framing, truncation, magic),
 * CMC_ERR_TOO_LARGE (caps), CMC_ERR_PROTOCOL (version). Does not look at cursors or device
 * (the caller knows those). */
CRY_MUST_CHECK int bundle_verify(const uint8_t *buf, size_t len,
                                 const uint8_t hub_pk[CRY_SIGN_PK_BYTES],
                                 struct bundle_header *hdr_out);

/* Inflates (bounded by raw_len) and decodes the body of a verified bundle. Refuses, with
 * CMC_ERR_CORRUPT, a body that inflates past raw_len (without inflating further) or to
 * fewer bytes, trailing bytes after the zlib stream, and any msgpack that breaks the shape
 * above; CMC_ERR_TOO_LARGE if hdr's caps are exceeded (checked before inflating). On
 * failure *ops_out is NULL and *n_out 0. */
int bundle_decode(const uint8_t *buf, size_t len, const struct bundle_header *hdr,
                  struct bundle_op **ops_out, size_t *n_out);

#endif
