/*
 * bundle.c - building, verifying and decoding signed bundles (contract in bundle.h). Packing
 * ops from structs (bundle_writer_add, bundle_build) lives in bundle_build.c.
 *
 * The header is written and read field by field in big-endian order, never by copying a
 * struct, so the wire form does not depend on the compiler's layout. zlib allocates through
 * cmc_calloc/cmc_free so out-of-memory tests reach it too.
 */
#include "sync/bundle.h"

#include "crypto/merkle.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/mp.h"
#include "sync/zbody.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

static const uint8_t bundle_magic[4] = { 'C', 'M', 'C', 'B' };

/* Room kept in front of a writer's packed ops for the msgpack array header (at most 5
 * bytes: 0xdd + u32), so finishing can deflate one contiguous buffer without a copy. */
#define ARRAY_HEADER_ROOM 5

/* The body is a msgpack array of arrays of plans: op array, plan map, list array, item map
 * and places array sit well inside this. */
#define BUNDLE_MP_DEPTH 16

#define BUNDLE_KNOWN_FLAGS                                                                 \
    (BUNDLE_FLAG_MORE | BUNDLE_FLAG_SNAPSHOT | BUNDLE_FLAG_ROLLBACK | BUNDLE_FLAG_EDITION2 | \
     BUNDLE_FLAG_BROTLI)

int bundle_edition(const struct bundle_header *h)
{
    return (h->flags & BUNDLE_FLAG_EDITION2) ? 2 : 1;
}

static const char *const purge_reasons[] = { "consent_withdrawn", "left_scope", "not_shared" };

/* ---- big-endian fields ----------------------------------------------------------------- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* The big-endian number in p[0..bytes). */
static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)get_be(p, 4);
}

static uint64_t get_be64(const uint8_t *p)
{
    return get_be(p, 8);
}

/* Writes bytes 0..91 (everything the signature covers). */
static void header_pack(const struct bundle_header *h, uint8_t *p)
{
    memcpy(p, bundle_magic, 4);
    put_be16(p + 4, h->protocol);
    put_be16(p + 6, h->flags);
    memcpy(p + 8, h->device_id, BUNDLE_DEVICE_ID_BYTES);
    put_be64(p + 24, h->from_cursor);
    put_be64(p + 32, h->to_cursor);
    put_be32(p + 40, h->op_count);
    put_be32(p + 44, h->body_len);
    put_be32(p + 48, h->raw_len);
    memcpy(p + 52, h->body_hash, CRY_HASH_BYTES);
    put_be64(p + 84, (uint64_t)h->hub_time);
}

static void header_unpack(const uint8_t *p, struct bundle_header *h)
{
    h->protocol = get_be16(p + 4);
    h->flags = get_be16(p + 6);
    memcpy(h->device_id, p + 8, BUNDLE_DEVICE_ID_BYTES);
    h->from_cursor = get_be64(p + 24);
    h->to_cursor = get_be64(p + 32);
    h->op_count = get_be32(p + 40);
    h->body_len = get_be32(p + 44);
    h->raw_len = get_be32(p + 48);
    memcpy(h->body_hash, p + 52, CRY_HASH_BYTES);
    h->hub_time = (int64_t)get_be64(p + 84);
}

static int check_caps(uint32_t op_count, uint64_t body_len, uint64_t raw_len)
{
    if (op_count > BUNDLE_MAX_OPS)
        return cmc_fail(CMC_ERR_TOO_LARGE, "bundle: op count %u over the cap of %u",
                        (unsigned)op_count, BUNDLE_MAX_OPS);
    if (body_len > BUNDLE_MAX_BODY)
        return cmc_fail(CMC_ERR_TOO_LARGE, "bundle: body length %llu over the cap of %u bytes",
                        (unsigned long long)body_len, BUNDLE_MAX_BODY);
    if (raw_len > BUNDLE_MAX_RAW)
        return cmc_fail(CMC_ERR_TOO_LARGE, "bundle: raw length %llu over the cap of %u bytes",
                        (unsigned long long)raw_len, BUNDLE_MAX_RAW);
    return CMC_OK;
}

/* The header in `buf` is rewritten from `h` (with body_len and body_hash taken from the
 * body at buf + BUNDLE_HEADER_BYTES) and signed. */
static int seal_in_place(struct bundle_header *h, uint8_t *buf, size_t body_len,
                         const struct cry_secret *hub_sk)
{
    int rc;
    if (hub_sk == NULL)
        return cmc_fail(CMC_ERR_INVALID, "bundle: no signing key");
    if (h->protocol == 0)
        h->protocol = BUNDLE_PROTOCOL;
    if ((h->flags & ~BUNDLE_KNOWN_FLAGS) != 0)
        return cmc_fail(CMC_ERR_INVALID, "bundle: unknown flag bits 0x%x", (unsigned)h->flags);
    if ((rc = check_caps(h->op_count, body_len, h->raw_len)) != CMC_OK)
        return rc;
    h->body_len = (uint32_t)body_len;
    cry_hash(h->body_hash, buf + BUNDLE_HEADER_BYTES, body_len);
    header_pack(h, buf);
    return cry_sign(hub_sk, buf, BUNDLE_SIGNED_BYTES, buf + BUNDLE_SIGNED_BYTES);
}

int bundle_seal(const struct bundle_header *hdr, const uint8_t *body, size_t body_len,
                const struct cry_secret *hub_sk, uint8_t **out, size_t *len)
{
    int rc;
    uint8_t *buf = NULL;
    struct bundle_header h = *hdr;

    *out = NULL;
    *len = 0;
    if ((rc = check_caps(h.op_count, body_len, h.raw_len)) != CMC_OK)
        return rc;
    buf = cmc_malloc(BUNDLE_HEADER_BYTES + body_len);
    if (buf == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
    if (body_len > 0)
        memcpy(buf + BUNDLE_HEADER_BYTES, body, body_len);
    if ((rc = seal_in_place(&h, buf, body_len, hub_sk)) != CMC_OK)
        goto out;
    *out = buf;
    *len = BUNDLE_HEADER_BYTES + body_len;
    buf = NULL;
out:
    cmc_free(buf);
    return rc;
}

/* ---- plan seals ------------------------------------------------------------------------ */

int bundle_seal_sign(const uint8_t *leaves, size_t n, const struct cry_secret *hub_sk,
                     uint8_t sig[CRY_SIG_BYTES])
{
    uint8_t root[CRY_HASH_BYTES], msg[CRY_MERKLE_SIGNED_BYTES];
    int rc = cry_merkle_root(leaves, n, root);
    if (rc != CMC_OK)
        return rc;
    cry_merkle_signed(root, msg);
    return cry_sign(hub_sk, msg, sizeof msg, sig);
}

int bundle_seal_verify(const uint8_t *leaves, size_t n, const uint8_t sig[CRY_SIG_BYTES],
                       const uint8_t hub_pk[CRY_SIGN_PK_BYTES], uint8_t root[CRY_HASH_BYTES])
{
    uint8_t msg[CRY_MERKLE_SIGNED_BYTES];
    int rc = cry_merkle_root(leaves, n, root);
    if (rc != CMC_OK)
        return rc;
    cry_merkle_signed(root, msg);
    if (cry_verify(hub_pk, msg, sizeof msg, sig) != CMC_OK)
        return cmc_fail(CMC_ERR_TAMPERED, "bundle: the page's plans do not match the hub's seal");
    return CMC_OK;
}

/* ---- ops ------------------------------------------------------------------------------- */

void bundle_op_init(struct bundle_op *op)
{
    memset(op, 0, sizeof *op);
    plan_init(&op->plan);
    plan_change_init(&op->change);
}

void bundle_op_clear(struct bundle_op *op)
{
    if (op == NULL)
        return;
    plan_free(&op->plan);
    plan_change_free(&op->change);
    cmc_free(op->packed);
    bundle_op_init(op);
}

void bundle_ops_free(struct bundle_op *ops, size_t n)
{
    if (ops == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        plan_free(&ops[i].plan);
        plan_change_free(&ops[i].change);
        cmc_free(ops[i].packed);
    }
    cmc_free(ops);
}


int bundle_reason_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof purge_reasons / sizeof purge_reasons[0]; i++)
        if (strlen(purge_reasons[i]) == len && memcmp(purge_reasons[i], s, len) == 0)
            return 1;
    return 0;
}

/* ---- writer ---------------------------------------------------------------------------- */

struct bundle_writer {
    uint8_t *buf; /* ARRAY_HEADER_ROOM reserved bytes, then the packed ops */
    size_t len;
    size_t cap;
    uint32_t count;
};

void bundle_writer_free(bundle_writer *w)
{
    if (w == NULL)
        return;
    cmc_free(w->buf);
    cmc_free(w);
}

int bundle_writer_new(bundle_writer **out)
{
    bundle_writer *w = cmc_calloc(1, sizeof *w);
    *out = NULL;
    if (w == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "bundle writer: out of memory");
    w->cap = 4096;
    w->buf = cmc_malloc(w->cap);
    if (w->buf == NULL) {
        cmc_free(w);
        return cmc_fail(CMC_ERR_NOMEM, "bundle writer: out of memory");
    }
    w->len = ARRAY_HEADER_ROOM;
    *out = w;
    return CMC_OK;
}

static size_t array_header_size(uint32_t n)
{
    if (n < 16)
        return 1;
    if (n <= 0xffff)
        return 3;
    return 5;
}

size_t bundle_writer_raw_size(const bundle_writer *w)
{
    return array_header_size(w->count) + (w->len - ARRAY_HEADER_ROOM);
}

void bundle_writer_digest(const bundle_writer *w, uint8_t out[CRY_HASH_BYTES])
{
    cry_hash(out, w->buf + ARRAY_HEADER_ROOM, w->len - ARRAY_HEADER_ROOM);
}

uint32_t bundle_writer_count(const bundle_writer *w)
{
    return w->count;
}

/* Room for `more` bytes after the ops so far: at least doubled, so appends stay amortised
 * O(1). */
static int writer_reserve(bundle_writer *w, size_t more)
{
    size_t need = w->len + more;
    if (need <= w->cap)
        return CMC_OK;
    size_t cap = need > 2 * w->cap ? need : 2 * w->cap;
    uint8_t *nb = cmc_realloc(w->buf, cap);
    if (nb == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "bundle writer: out of memory");
    w->buf = nb;
    w->cap = cap;
    return CMC_OK;
}

/* Appends one packed op; the writer is unchanged on failure. */
static int writer_append(bundle_writer *w, const uint8_t *op, size_t len)
{
    if (w->count >= BUNDLE_MAX_OPS)
        return cmc_fail(CMC_ERR_TOO_LARGE, "bundle: more than %u ops", BUNDLE_MAX_OPS);
    if (len > BUNDLE_MAX_RAW || bundle_writer_raw_size(w) + len + 4 > BUNDLE_MAX_RAW)
        return cmc_fail(CMC_ERR_TOO_LARGE, "bundle: body over the cap of %u bytes",
                        BUNDLE_MAX_RAW);
    int rc = writer_reserve(w, len);
    if (rc != CMC_OK)
        return rc;
    memcpy(w->buf + w->len, op, len);
    w->len += len;
    w->count++;
    return CMC_OK;
}

int bundle_writer_add_raw(bundle_writer *w, const uint8_t *op_msgpack, size_t len)
{
    struct mp_reader r;
    int rc;

    mp_reader_init(&r, op_msgpack, len, BUNDLE_MP_DEPTH);
    if (mp_peek(&r) != MP_T_ARRAY)
        return cmc_fail(CMC_ERR_INVALID, "bundle op: packed op is not a msgpack array");
    if ((rc = mp_skip(&r)) != CMC_OK || (rc = mp_expect_end(&r)) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "bundle op: packed op is not one msgpack value");
    return writer_append(w, op_msgpack, len);
}

static voidpf zalloc_cmc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return cmc_calloc(items, size);
}

static void zfree_cmc(voidpf opaque, voidpf p)
{
    (void)opaque;
    cmc_free(p);
}

int bundle_writer_finish(bundle_writer *w, const struct bundle_header *hdr,
                         const struct cry_secret *hub_sk, uint8_t **out, size_t *len)
{
    int rc = CMC_OK;
    int zinit = 0;
    uint8_t *buf = NULL;
    z_stream zs;
    struct bundle_header h = *hdr;
    size_t hsize = array_header_size(w->count);
    uint8_t *raw = w->buf + ARRAY_HEADER_ROOM - hsize;
    size_t raw_len = hsize + (w->len - ARRAY_HEADER_ROOM);

    *out = NULL;
    *len = 0;
    if (hub_sk == NULL)
        return cmc_fail(CMC_ERR_INVALID, "bundle: no signing key");
    if ((rc = check_caps(w->count, 0, raw_len)) != CMC_OK)
        return rc;
    /* The msgpack array header, right-aligned in the reserved room. */
    if (hsize == 1) {
        raw[0] = (uint8_t)(0x90 | w->count);
    } else if (hsize == 3) {
        raw[0] = 0xdc;
        put_be16(raw + 1, (uint16_t)w->count);
    } else {
        raw[0] = 0xdd;
        put_be32(raw + 1, w->count);
    }
    if (h.flags & BUNDLE_FLAG_BROTLI) { /* the codec the device offered (sync/zbody.h) */
        size_t body_len = 0;
        if ((rc = zbody_pack(raw, raw_len, BUNDLE_HEADER_BYTES, &buf, &body_len)) != CMC_OK)
            return rc;
        h.op_count = w->count;
        h.raw_len = (uint32_t)raw_len;
        if ((rc = seal_in_place(&h, buf, body_len, hub_sk)) != CMC_OK) {
            cmc_free(buf);
            return rc;
        }
        *len = BUNDLE_HEADER_BYTES + body_len;
        uint8_t *fit = cmc_realloc(buf, *len);
        *out = fit != NULL ? fit : buf;
        return CMC_OK;
    }

    memset(&zs, 0, sizeof zs);
    zs.zalloc = zalloc_cmc;
    zs.zfree = zfree_cmc;
    /* A small body (an idle poll, a few deltas) gets a small window: zlib then allocates a
     * few KiB instead of a quarter of a MiB per bundle. Any zlib stream inflates the same.
     * A larger body (snapshot pages) is deflated at level 4 with the hash-chain search cut
     * from 16 candidates to 4 (deflateTune). Measured on the 100k-plan snapshot (130 MB of
     * msgpack in 126 pages of 1 MiB), bytes and CPU to deflate it: level 6 17.8 MB 1.33 s,
     * level 5 18.3 MB 1.14 s, level 4 19.1 MB 0.93 s, this setting 19.7 MB 0.83 s, levels
     * 3/2/1 23.4/23.7/24.4 MB 0.72/0.66/0.63 s. It is the least CPU that keeps the snapshot
     * well under the 25 MB target (levels 1-3 leave no margin). The full 32 KiB window
     * matters: plans repeat each other's keys and texts at long distances (a 16 KiB window
     * gives 23.8 MB at level 4). */
    int small = raw_len <= 4096;
    int zrc = deflateInit2(&zs, small ? 6 : 4, Z_DEFLATED, small ? 12 : 15, small ? 4 : 8,
                           Z_DEFAULT_STRATEGY);
    if (zrc == Z_OK) {
        zinit = 1;
        if (!small)
            zrc = deflateTune(&zs, 4, 4, 32, 4);
    }
    if (zrc != Z_OK) {
        rc = zrc == Z_MEM_ERROR ? cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (zlib)")
                                : cmc_fail(CMC_ERR_INVALID, "bundle: zlib: %s",
                                           zs.msg ? zs.msg : "deflateInit failed");
        goto out;
    }
    uLong bound = deflateBound(&zs, (uLong)raw_len);
    buf = cmc_malloc(BUNDLE_HEADER_BYTES + (size_t)bound);
    if (buf == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
        goto out;
    }
    zs.next_in = raw;
    zs.avail_in = (uInt)raw_len;
    zs.next_out = buf + BUNDLE_HEADER_BYTES;
    zs.avail_out = (uInt)bound;
    zrc = deflate(&zs, Z_FINISH);
    if (zrc != Z_STREAM_END) {
        rc = zrc == Z_MEM_ERROR ? cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (zlib)")
                                : cmc_fail(CMC_ERR_INVALID, "bundle: zlib deflate failed (%d)",
                                           zrc);
        goto out;
    }
    h.op_count = w->count;
    h.raw_len = (uint32_t)raw_len;
    if ((rc = seal_in_place(&h, buf, zs.total_out, hub_sk)) != CMC_OK)
        goto out;
    *len = BUNDLE_HEADER_BYTES + zs.total_out;
    /* Give back the slack deflateBound asked for; keeping it is harmless if this fails. */
    uint8_t *shrunk = cmc_realloc(buf, *len);
    *out = shrunk != NULL ? shrunk : buf;
    buf = NULL;
out:
    if (zinit)
        deflateEnd(&zs);
    cmc_free(buf);
    return rc;
}

/* ---- verify ---------------------------------------------------------------------------- */

int bundle_verify(const uint8_t *buf, size_t len, const uint8_t hub_pk[CRY_SIGN_PK_BYTES],
                  struct bundle_header *hdr_out)
{
    struct bundle_header h;
    uint8_t hash[CRY_HASH_BYTES];
    int rc;

    memset(hdr_out, 0, sizeof *hdr_out);
    if (buf == NULL || len < BUNDLE_HEADER_BYTES)
        return cmc_fail(CMC_ERR_CORRUPT, "bundle: %zu bytes, shorter than the %d-byte header",
                        buf == NULL ? (size_t)0 : len, BUNDLE_HEADER_BYTES);
    if (memcmp(buf, bundle_magic, sizeof bundle_magic) != 0)
        return cmc_fail(CMC_ERR_CORRUPT, "bundle: bad magic (not a bundle)");
    header_unpack(buf, &h);
    if (h.protocol != BUNDLE_PROTOCOL)
        return cmc_fail(CMC_ERR_PROTOCOL, "bundle: protocol version %u, expected %d",
                        (unsigned)h.protocol, BUNDLE_PROTOCOL);
    /* HTTP framing is not trusted: the header says how long the body is, and exactly that
     * many bytes must follow. */
    if (len - BUNDLE_HEADER_BYTES != h.body_len)
        return cmc_fail(CMC_ERR_CORRUPT,
                        "bundle: body_len says %u bytes but %zu follow the header",
                        (unsigned)h.body_len, len - BUNDLE_HEADER_BYTES);
    if ((rc = check_caps(h.op_count, h.body_len, h.raw_len)) != CMC_OK)
        return rc;
    cry_hash(hash, buf + BUNDLE_HEADER_BYTES, h.body_len);
    if (!cry_memeq(hash, h.body_hash, CRY_HASH_BYTES))
        return cmc_fail(CMC_ERR_TAMPERED, "bundle: body hash does not match the header");
    if (cry_verify(hub_pk, buf, BUNDLE_SIGNED_BYTES, buf + BUNDLE_SIGNED_BYTES) != CMC_OK)
        return cmc_fail(CMC_ERR_TAMPERED, "bundle: signature does not verify with the hub key");
    /* Flags are covered by the signature; unknown bits mean a newer hub. */
    if ((h.flags & ~BUNDLE_KNOWN_FLAGS) != 0)
        return cmc_fail(CMC_ERR_PROTOCOL, "bundle: unknown flag bits 0x%x", (unsigned)h.flags);
    *hdr_out = h;
    return CMC_OK;
}

/* ---- decode ---------------------------------------------------------------------------- */

/* Inflates exactly hdr->raw_len bytes into a new buffer, never producing more than
 * raw_len + 1 (the one extra byte is how a body that inflates further is detected). */
static int inflate_bounded(const uint8_t *body, uint32_t body_len, uint32_t raw_len,
                           uint8_t **out)
{
    int rc = CMC_OK;
    z_stream zs;
    uint8_t *raw = cmc_malloc((size_t)raw_len + 1);

    *out = NULL;
    if (raw == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
    memset(&zs, 0, sizeof zs);
    zs.zalloc = zalloc_cmc;
    zs.zfree = zfree_cmc;
    int zrc = inflateInit(&zs);
    if (zrc != Z_OK) {
        cmc_free(raw);
        return zrc == Z_MEM_ERROR ? cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (zlib)")
                                  : cmc_fail(CMC_ERR_CORRUPT, "bundle: zlib inflateInit failed");
    }
    zs.next_in = (Bytef *)(uintptr_t)body;
    zs.avail_in = body_len;
    zs.next_out = raw;
    zs.avail_out = raw_len + 1;
    zrc = inflate(&zs, Z_FINISH);
    switch (zrc) {
    case Z_STREAM_END:
        if (zs.total_out != raw_len)
            rc = cmc_fail(CMC_ERR_CORRUPT,
                          "bundle: body inflates to %s raw_len (%u bytes)",
                          zs.total_out > raw_len ? "more than" : "less than", (unsigned)raw_len);
        else if (zs.avail_in != 0)
            rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: bytes follow the compressed body");
        break;
    case Z_OK:
    case Z_BUF_ERROR:
        if (zs.avail_out == 0)
            rc = cmc_fail(CMC_ERR_CORRUPT,
                          "bundle: body inflates past raw_len (%u bytes); refused",
                          (unsigned)raw_len);
        else
            rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: compressed body is truncated");
        break;
    case Z_MEM_ERROR:
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (zlib)");
        break;
    default:
        rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: body is not valid zlib data (%s)",
                      zs.msg ? zs.msg : "error");
        break;
    }
    inflateEnd(&zs);
    if (rc != CMC_OK) {
        cmc_free(raw);
        return rc;
    }
    *out = raw;
    return CMC_OK;
}

/* Prefixes the current detail with the op's index, so a refusal says which op. */
static int op_fail(int rc, uint32_t i)
{
    char detail[384];
    snprintf(detail, sizeof detail, "%s", cmc_errmsg());
    return cmc_fail(rc, "bundle op %u: %s", (unsigned)i, detail);
}

static int read_plan_id(struct mp_reader *r, struct bundle_op *op)
{
    const char *s;
    uint32_t n;
    int rc = mp_read_str(r, 64, &s, &n);
    if (rc != CMC_OK)
        return rc;
    if (!plan_uuid_valid_n(s, n))
        return cmc_fail(CMC_ERR_CORRUPT, "plan_id is not a canonical UUID");
    memcpy(op->plan_id, s, n);
    op->plan_id[n] = '\0';
    return CMC_OK;
}

/* One value's bytes, for the plan and change codecs that decode a buffer of their own. */
static int read_value_span(struct mp_reader *r, enum mp_type want, const char *what,
                           const uint8_t **start, size_t *len)
{
    int rc;
    if (mp_peek(r) != want)
        return cmc_fail(CMC_ERR_CORRUPT, "%s has the wrong msgpack type", what);
    *start = r->p;
    if ((rc = mp_skip(r)) != CMC_OK)
        return rc;
    *len = (size_t)(r->p - *start);
    return CMC_OK;
}

static int decode_op(struct mp_reader *r, struct bundle_op *op)
{
    uint32_t n;
    uint64_t kind;
    const uint8_t *span = NULL;
    size_t span_len = 0;
    int rc;

    if (mp_peek(r) != MP_T_ARRAY)
        return cmc_fail(CMC_ERR_CORRUPT, "not an array");
    if ((rc = mp_read_array(r, 16, &n)) != CMC_OK)
        return rc;
    if (n < 2)
        return cmc_fail(CMC_ERR_CORRUPT, "too few elements");
    if ((rc = mp_read_uint(r, &kind)) != CMC_OK)
        return rc;
    /* each kind's name and element count, checked before its fields are read */
    static const struct {
        const char *name;
        uint32_t n;
    } kinds[] = {
        [BUNDLE_OP_PUT] = { "put", 4 },       [BUNDLE_OP_DELTA] = { "delta", 5 },
        [BUNDLE_OP_PURGE] = { "purge", 4 },   [BUNDLE_OP_WIPE] = { "wipe", 2 },
        [BUNDLE_OP_POLICY] = { "policy", 3 }, [BUNDLE_OP_SEAL] = { "seal", 3 },
    };
    if (kind >= sizeof kinds / sizeof kinds[0] || kinds[kind].name == NULL)
        return cmc_fail(CMC_ERR_CORRUPT, "unknown op kind %llu", (unsigned long long)kind);
    if (n != kinds[kind].n)
        return cmc_fail(CMC_ERR_CORRUPT, "%s has %u elements, expected %u", kinds[kind].name, (unsigned)n,
                        (unsigned)kinds[kind].n);
    op->kind = (enum bundle_op_kind)kind;
    switch (kind) {
    case BUNDLE_OP_PUT:
        if ((rc = read_plan_id(r, op)) != CMC_OK || (rc = mp_read_uint(r, &op->seq)) != CMC_OK)
            return rc;
        if ((rc = read_value_span(r, MP_T_MAP, "plan", &span, &span_len)) != CMC_OK)
            return rc;
        /* a later edition's fields are kept, not refused: the card says they exist */
        if ((rc = plan_unpack_keep(span, span_len, &op->plan)) != CMC_OK)
            return rc;
        if (op->plan.plan_id == NULL || strcmp(op->plan.plan_id, op->plan_id) != 0)
            return cmc_fail(CMC_ERR_CORRUPT, "plan's plan_id differs from the op's");
        /* kept so the replica stores what was received, not a re-encoding of it */
        if ((op->packed = cmc_malloc(span_len)) == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
        memcpy(op->packed, span, span_len);
        op->packed_len = span_len;
        break;
    case BUNDLE_OP_DELTA:
        if ((rc = read_plan_id(r, op)) != CMC_OK || (rc = mp_read_uint(r, &op->seq)) != CMC_OK)
            return rc;
        if ((rc = mp_read_int(r, &op->base_version)) != CMC_OK)
            return rc;
        if (op->base_version < 1)
            return cmc_fail(CMC_ERR_CORRUPT, "base_version must be at least 1");
        if ((rc = read_value_span(r, MP_T_ARRAY, "change", &span, &span_len)) != CMC_OK)
            return rc;
        if ((rc = plan_change_unpack(span, span_len, &op->change)) != CMC_OK)
            return rc;
        break;
    case BUNDLE_OP_PURGE: {
        const char *s;
        uint32_t len;
        if ((rc = read_plan_id(r, op)) != CMC_OK || (rc = mp_read_uint(r, &op->seq)) != CMC_OK)
            return rc;
        if ((rc = mp_read_str(r, sizeof op->reason - 1, &s, &len)) != CMC_OK)
            return rc;
        if (!bundle_reason_valid(s, len))
            return cmc_fail(CMC_ERR_CORRUPT, "unknown purge reason");
        memcpy(op->reason, s, len);
        op->reason[len] = '\0';
        break;
    }
    case BUNDLE_OP_WIPE:
        if ((rc = mp_read_uint(r, &op->seq)) != CMC_OK)
            return rc;
        break;
    case BUNDLE_OP_SEAL: {
        const uint8_t *sig;
        uint32_t sig_len;
        if ((rc = mp_read_uint(r, &op->seq)) != CMC_OK ||
            (rc = mp_read_bin(r, CRY_SIG_BYTES, &sig, &sig_len)) != CMC_OK)
            return rc;
        if (sig_len != CRY_SIG_BYTES)
            return cmc_fail(CMC_ERR_CORRUPT, "seal signature is not %d bytes", CRY_SIG_BYTES);
        memcpy(op->seal_sig, sig, CRY_SIG_BYTES);
        break;
    }
    case BUNDLE_OP_POLICY:
        if ((rc = mp_read_uint(r, &op->seq)) != CMC_OK ||
            (rc = mp_read_int(r, &op->lease_days)) != CMC_OK)
            return rc;
        if (op->lease_days < 0 || op->lease_days > BUNDLE_MAX_LEASE_DAYS)
            return cmc_fail(CMC_ERR_CORRUPT, "policy lease_days out of range 0..%d",
                            BUNDLE_MAX_LEASE_DAYS);
        break;
    default:
        return cmc_fail(CMC_ERR_CORRUPT, "unknown op kind %llu", (unsigned long long)kind);
    }
    mp_leave(r);
    return CMC_OK;
}

int bundle_decode(const uint8_t *buf, size_t len, const struct bundle_header *hdr,
                  struct bundle_op **ops_out, size_t *n_out)
{
    int rc;
    uint8_t *raw = NULL;
    struct bundle_op *ops = NULL;
    uint32_t n = 0;
    struct mp_reader r;

    *ops_out = NULL;
    *n_out = 0;
    /* Caps first: nothing is allocated or inflated for a header over them. */
    if ((rc = check_caps(hdr->op_count, hdr->body_len, hdr->raw_len)) != CMC_OK)
        return rc;
    if (buf == NULL || len < BUNDLE_HEADER_BYTES || len - BUNDLE_HEADER_BYTES != hdr->body_len)
        return cmc_fail(CMC_ERR_CORRUPT, "bundle: length does not match the header");
    /* Each op is an array of at least [kind, seq]: three bytes or more; the outer array
     * header takes at least one. */
    if (hdr->raw_len == 0 || (uint64_t)hdr->op_count * 3 + 1 > hdr->raw_len)
        return cmc_fail(CMC_ERR_CORRUPT, "bundle: raw_len %u cannot hold %u ops",
                        (unsigned)hdr->raw_len, (unsigned)hdr->op_count);
    if ((rc = (hdr->flags & BUNDLE_FLAG_BROTLI)
                  ? zbody_unpack(buf + BUNDLE_HEADER_BYTES, hdr->body_len, hdr->raw_len, &raw)
                  : inflate_bounded(buf + BUNDLE_HEADER_BYTES, hdr->body_len, hdr->raw_len, &raw)) !=
        CMC_OK)
        return rc;

    mp_reader_init(&r, raw, hdr->raw_len, BUNDLE_MP_DEPTH);
    if (mp_peek(&r) != MP_T_ARRAY) {
        rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: body is not a msgpack array");
        goto out;
    }
    if ((rc = mp_read_array(&r, BUNDLE_MAX_OPS, &n)) != CMC_OK)
        goto out;
    if (n != hdr->op_count) {
        rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: body holds %u ops, header says %u",
                      (unsigned)n, (unsigned)hdr->op_count);
        n = 0;
        goto out;
    }
    ops = cmc_calloc(n ? n : 1, sizeof *ops);
    if (ops == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory");
        n = 0;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        bundle_op_init(&ops[i]);
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = decode_op(&r, &ops[i])) != CMC_OK) {
            rc = op_fail(rc, i);
            goto out;
        }
        if (ops[i].kind == BUNDLE_OP_SEAL && i + 1 != n) {
            rc = op_fail(cmc_fail(CMC_ERR_CORRUPT, "a seal must be the last op"), i);
            goto out;
        }
    }
    mp_leave(&r);
    if ((rc = mp_expect_end(&r)) != CMC_OK) {
        rc = cmc_fail(rc, "bundle: bytes follow the last op");
        goto out;
    }
    *ops_out = ops;
    *n_out = n;
    ops = NULL;
out:
    bundle_ops_free(ops, n);
    cmc_free(raw);
    return rc;
}
