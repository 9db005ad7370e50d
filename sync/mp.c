#include "sync/mp.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <string.h>

/* ---- reader ---------------------------------------------------------------------------- */

void mp_reader_init(struct mp_reader *r, const uint8_t *buf, size_t len, unsigned max_depth)
{
    r->p = buf;
    r->left = buf != NULL ? len : 0;
    r->depth = 0;
    r->max_depth = max_depth;
    r->canonical = 0;
}

void mp_reader_canonical(struct mp_reader *r)
{
    r->canonical = 1;
}

/* Header bytes msgpack-c uses for a length or count n: fix form (limit), then 1/2/4-byte forms. */
static size_t shortest_header(uint64_t n, uint64_t fix_limit, int has_8bit)
{
    if (n <= fix_limit)
        return 1;
    if (has_8bit && n <= 0xff)
        return 2;
    if (n <= 0xffff)
        return 3;
    return 5;
}

static int not_canonical(void)
{
    return cmc_fail(CMC_ERR_CORRUPT, "msgpack: a value is not in its shortest form");
}

enum mp_type mp_peek(const struct mp_reader *r)
{
    if (r->left == 0)
        return MP_T_END;
    uint8_t b = r->p[0];
    if (b <= 0x7f)
        return MP_T_UINT;
    if (b <= 0x8f)
        return MP_T_MAP;
    if (b <= 0x9f)
        return MP_T_ARRAY;
    if (b <= 0xbf)
        return MP_T_STR;
    if (b >= 0xe0)
        return MP_T_INT;
    switch (b) {
    case 0xc0: return MP_T_NIL;
    case 0xc1: return MP_T_INVALID;
    case 0xc2: case 0xc3: return MP_T_BOOL;
    case 0xc4: case 0xc5: case 0xc6: return MP_T_BIN;
    case 0xc7: case 0xc8: case 0xc9: return MP_T_EXT;
    case 0xca: case 0xcb: return MP_T_FLOAT;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: return MP_T_UINT;
    /* Signed encodings: the sign of the value decides, so a writer that used int8 for 5
     * still reads as an unsigned value where one is expected. */
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return MP_T_INT;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return MP_T_EXT;
    case 0xd9: case 0xda: case 0xdb: return MP_T_STR;
    case 0xdc: case 0xdd: return MP_T_ARRAY;
    case 0xde: case 0xdf: return MP_T_MAP;
    default: return MP_T_INVALID;
    }
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads a length field of `n` bytes after the type byte; `hdr` gets the header size. */
static int read_len(const struct mp_reader *r, unsigned n, uint64_t *v, size_t *hdr)
{
    if (r->left < 1 + (size_t)n)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated header");
    *v = be(r->p + 1, n);
    *hdr = 1 + n;
    return CMC_OK;
}

static void advance(struct mp_reader *r, size_t n)
{
    r->p += n;
    r->left -= n;
}

static int read_container(struct mp_reader *r, int is_map, uint32_t cap, uint32_t *n)
{
    uint64_t count = 0;
    size_t hdr = 1;
    int rc;
    if (r->left == 0)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated");
    uint8_t b = r->p[0];
    if (!is_map && b >= 0x90 && b <= 0x9f)
        count = b & 0x0f;
    else if (is_map && b >= 0x80 && b <= 0x8f)
        count = b & 0x0f;
    else if (b == (is_map ? 0xde : 0xdc)) {
        if ((rc = read_len(r, 2, &count, &hdr)) != CMC_OK)
            return rc;
    } else if (b == (is_map ? 0xdf : 0xdd)) {
        if ((rc = read_len(r, 4, &count, &hdr)) != CMC_OK)
            return rc;
    } else
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: expected %s", is_map ? "a map" : "an array");
    if (r->depth >= r->max_depth)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: nested deeper than %u", r->max_depth);
    /* Every element takes at least one byte, so a count larger than what is left is a lie;
     * refusing it here keeps callers from allocating for it. */
    if ((is_map ? 2 * count : count) > r->left - hdr)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: %s count exceeds the bytes left",
                        is_map ? "map" : "array");
    if (count > cap)
        return cmc_fail(CMC_ERR_TOO_LARGE, "msgpack: %s of %llu elements (at most %u)",
                        is_map ? "map" : "array", (unsigned long long)count, cap);
    if (r->canonical && hdr != shortest_header(count, 15, 0))
        return not_canonical();
    advance(r, hdr);
    r->depth++;
    *n = (uint32_t)count;
    return CMC_OK;
}

int mp_read_array(struct mp_reader *r, uint32_t cap, uint32_t *n)
{
    return read_container(r, 0, cap, n);
}

int mp_read_map(struct mp_reader *r, uint32_t cap, uint32_t *n)
{
    return read_container(r, 1, cap, n);
}

void mp_leave(struct mp_reader *r)
{
    if (r->depth > 0)
        r->depth--;
}

static int read_blob(struct mp_reader *r, int is_str, uint32_t cap, const uint8_t **b, uint32_t *len)
{
    uint64_t n = 0;
    size_t hdr = 1;
    int rc = CMC_OK;
    if (r->left == 0)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated");
    uint8_t t = r->p[0];
    if (is_str && t >= 0xa0 && t <= 0xbf)
        n = t & 0x1f;
    else if (t == (is_str ? 0xd9 : 0xc4))
        rc = read_len(r, 1, &n, &hdr);
    else if (t == (is_str ? 0xda : 0xc5))
        rc = read_len(r, 2, &n, &hdr);
    else if (t == (is_str ? 0xdb : 0xc6))
        rc = read_len(r, 4, &n, &hdr);
    else
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: expected %s", is_str ? "a string" : "bytes");
    if (rc != CMC_OK)
        return rc;
    if (n > r->left - hdr)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: %s longer than the bytes left",
                        is_str ? "string" : "bytes");
    if (n > cap)
        return cmc_fail(CMC_ERR_TOO_LARGE, "msgpack: %s of %llu bytes (at most %u)",
                        is_str ? "string" : "bytes", (unsigned long long)n, cap);
    /* bin has no fix form: bin8 up to 255 bytes (empty included), then bin16, bin32 */
    size_t want = is_str ? shortest_header(n, 31, 1) : (n <= 0xff ? 2 : n <= 0xffff ? 3 : 5);
    if (r->canonical && hdr != want)
        return not_canonical();
    *b = r->p + hdr;
    *len = (uint32_t)n;
    advance(r, hdr + (size_t)n);
    return CMC_OK;
}

int mp_read_str(struct mp_reader *r, uint32_t cap, const char **s, uint32_t *len)
{
    const uint8_t *b = NULL;
    int rc = read_blob(r, 1, cap, &b, len);
    if (rc == CMC_OK)
        *s = (const char *)b;
    return rc;
}

int mp_read_bin(struct mp_reader *r, uint32_t cap, const uint8_t **b, uint32_t *len)
{
    return read_blob(r, 0, cap, b, len);
}

/* Decodes any integer encoding into sign + magnitude without consuming. */
static int peek_int(const struct mp_reader *r, int *negative, uint64_t *mag, size_t *size)
{
    if (r->left == 0)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated");
    uint8_t b = r->p[0];
    unsigned n;
    int is_signed;
    if (b <= 0x7f) {
        *negative = 0;
        *mag = b;
        *size = 1;
        return CMC_OK;
    }
    if (b >= 0xe0) {
        *negative = 1;
        *mag = (uint64_t)(256 - b); /* -32..-1 */
        *size = 1;
        return CMC_OK;
    }
    switch (b) {
    case 0xcc: n = 1; is_signed = 0; break;
    case 0xcd: n = 2; is_signed = 0; break;
    case 0xce: n = 4; is_signed = 0; break;
    case 0xcf: n = 8; is_signed = 0; break;
    case 0xd0: n = 1; is_signed = 1; break;
    case 0xd1: n = 2; is_signed = 1; break;
    case 0xd2: n = 4; is_signed = 1; break;
    case 0xd3: n = 8; is_signed = 1; break;
    default:
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: expected an integer");
    }
    if (r->left < 1 + (size_t)n)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated integer");
    uint64_t v = be(r->p + 1, n);
    *size = 1 + n;
    if (is_signed && (v >> (8 * n - 1)) & 1) {
        /* two's complement of an n-byte value: magnitude = 2^(8n) - v */
        uint64_t m = n == 8 ? ~v + 1 : (((uint64_t)1 << (8 * n)) - v);
        *negative = 1;
        *mag = m;
    } else {
        *negative = 0;
        *mag = v;
    }
    return CMC_OK;
}

/* Bytes msgpack-c's packer uses for an integer: fixints, then the smallest of the unsigned
 * forms for non-negative values and of the signed forms for negative ones. */
static size_t shortest_int(int negative, uint64_t mag)
{
    if (!negative)
        return mag <= 0x7f ? 1 : mag <= 0xff ? 2 : mag <= 0xffff ? 3 : mag <= 0xffffffffu ? 5 : 9;
    return mag <= 32 ? 1 : mag <= 0x80 ? 2 : mag <= 0x8000 ? 3 : mag <= 0x80000000u ? 5 : 9;
}

static int check_int_form(const struct mp_reader *r, int negative, uint64_t mag, size_t size)
{
    if (!r->canonical)
        return CMC_OK;
    uint8_t b = r->p[0];
    int signed_form = b >= 0xd0 && b <= 0xd3;
    if (size != shortest_int(negative, mag) || (!negative && signed_form))
        return not_canonical();
    return CMC_OK;
}

int mp_read_uint(struct mp_reader *r, uint64_t *v)
{
    int neg = 0, rc;
    uint64_t mag = 0;
    size_t size = 0;
    if ((rc = peek_int(r, &neg, &mag, &size)) != CMC_OK)
        return rc;
    if ((rc = check_int_form(r, neg, mag, size)) != CMC_OK)
        return rc;
    if (neg)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: negative where an unsigned integer is expected");
    *v = mag;
    advance(r, size);
    return CMC_OK;
}

int mp_read_int(struct mp_reader *r, int64_t *v)
{
    int neg = 0, rc;
    uint64_t mag = 0;
    size_t size = 0;
    if ((rc = peek_int(r, &neg, &mag, &size)) != CMC_OK)
        return rc;
    if ((rc = check_int_form(r, neg, mag, size)) != CMC_OK)
        return rc;
    if (!neg && mag > (uint64_t)INT64_MAX)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: integer out of range");
    if (neg && mag > (uint64_t)INT64_MAX + 1)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: integer out of range");
    if (neg)
        *v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *v = (int64_t)mag;
    advance(r, size);
    return CMC_OK;
}

int mp_read_bool(struct mp_reader *r, int *v)
{
    if (r->left == 0)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated");
    if (r->p[0] != 0xc2 && r->p[0] != 0xc3)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: expected a boolean");
    *v = r->p[0] == 0xc3;
    advance(r, 1);
    return CMC_OK;
}

int mp_read_nil(struct mp_reader *r)
{
    if (r->left > 0 && r->p[0] == 0xc0) {
        advance(r, 1);
        return 1;
    }
    return 0;
}

/* Size of a value with no children: header plus payload; fails if truncated. */
static int scalar_size(const struct mp_reader *r, size_t *size)
{
    uint8_t b = r->p[0];
    uint64_t n = 0;
    size_t hdr = 1;
    int rc = CMC_OK;
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: *size = 1; return CMC_OK;
    case 0xc1: return cmc_fail(CMC_ERR_CORRUPT, "msgpack: reserved byte 0xc1");
    case 0xca: n = 4; break;
    case 0xcb: n = 8; break;
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xce: case 0xd2: n = 4; break;
    case 0xcf: case 0xd3: n = 8; break;
    case 0xd4: n = 2; break;
    case 0xd5: n = 3; break;
    case 0xd6: n = 5; break;
    case 0xd7: n = 9; break;
    case 0xd8: n = 17; break;
    case 0xc4: case 0xd9: rc = read_len(r, 1, &n, &hdr); break;
    case 0xc5: case 0xda: rc = read_len(r, 2, &n, &hdr); break;
    case 0xc6: case 0xdb: rc = read_len(r, 4, &n, &hdr); break;
    case 0xc7: rc = read_len(r, 1, &n, &hdr); n += 1; break; /* + ext type byte */
    case 0xc8: rc = read_len(r, 2, &n, &hdr); n += 1; break;
    case 0xc9: rc = read_len(r, 4, &n, &hdr); n += 1; break;
    default:
        if (b <= 0x7f || b >= 0xe0) {
            *size = 1;
            return CMC_OK;
        }
        if (b >= 0xa0 && b <= 0xbf) {
            n = b & 0x1f;
            break;
        }
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: unexpected byte");
    }
    if (rc != CMC_OK)
        return rc;
    if (n > r->left - hdr)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: value longer than the bytes left");
    *size = hdr + (size_t)n;
    return CMC_OK;
}

int mp_skip(struct mp_reader *r)
{
    uint32_t n = 0;
    int rc;
    switch (mp_peek(r)) {
    case MP_T_END:
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: truncated");
    case MP_T_ARRAY:
    case MP_T_MAP: {
        int is_map = mp_peek(r) == MP_T_MAP;
        if ((rc = read_container(r, is_map, UINT32_MAX, &n)) != CMC_OK)
            return rc;
        uint64_t total = is_map ? 2 * (uint64_t)n : n;
        /* Recursion is bounded by max_depth, checked in read_container. */
        for (uint64_t i = 0; i < total; i++)
            if ((rc = mp_skip(r)) != CMC_OK)
                return rc;
        mp_leave(r);
        return CMC_OK;
    }
    case MP_T_NIL:
    case MP_T_BOOL:
    case MP_T_UINT:
    case MP_T_INT:
    case MP_T_FLOAT:
    case MP_T_STR:
    case MP_T_BIN:
    case MP_T_EXT:
    case MP_T_INVALID: {
        size_t size = 0;
        if ((rc = scalar_size(r, &size)) != CMC_OK)
            return rc;
        advance(r, size);
        return CMC_OK;
    }
    }
    return cmc_fail(CMC_ERR_CORRUPT, "msgpack: unexpected byte");
}

int mp_expect_end(const struct mp_reader *r)
{
    if (r->left != 0)
        return cmc_fail(CMC_ERR_CORRUPT, "msgpack: %zu trailing bytes", r->left);
    return CMC_OK;
}

/* ---- writer ---------------------------------------------------------------------------- */

static int writer_append(void *data, const char *buf, size_t len)
{
    struct mp_writer *w = data;
    if (w->err != CMC_OK)
        return -1;
    if (len > SIZE_MAX / 2 - w->len) {
        w->err = CMC_ERR_TOO_LARGE;
        return -1;
    }
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + len)
            cap *= 2;
        uint8_t *nb = cmc_realloc(w->buf, cap);
        if (nb == NULL) {
            w->err = CMC_ERR_NOMEM;
            return -1;
        }
        w->buf = nb;
        w->cap = cap;
    }
    if (len > 0)
        memcpy(w->buf + w->len, buf, len);
    w->len += len;
    return 0;
}

void mp_writer_init(struct mp_writer *w)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = CMC_OK;
    msgpack_packer_init(&w->pk, w, writer_append);
}

void mp_write_array(struct mp_writer *w, uint32_t n)
{
    if (w->err == CMC_OK)
        msgpack_pack_array(&w->pk, n);
}

void mp_write_map(struct mp_writer *w, uint32_t n)
{
    if (w->err == CMC_OK)
        msgpack_pack_map(&w->pk, n);
}

void mp_write_str(struct mp_writer *w, const char *s, size_t len)
{
    if (w->err != CMC_OK)
        return;
    if (len > UINT32_MAX) {
        w->err = CMC_ERR_TOO_LARGE;
        return;
    }
    if (msgpack_pack_str(&w->pk, len) == 0 && len > 0)
        msgpack_pack_str_body(&w->pk, s, len);
}

void mp_write_cstr(struct mp_writer *w, const char *s)
{
    if (s == NULL)
        mp_write_nil(w);
    else
        mp_write_str(w, s, strlen(s));
}

void mp_write_bin(struct mp_writer *w, const void *b, size_t len)
{
    if (w->err != CMC_OK)
        return;
    if (len > UINT32_MAX) {
        w->err = CMC_ERR_TOO_LARGE;
        return;
    }
    if (msgpack_pack_bin(&w->pk, len) == 0 && len > 0)
        msgpack_pack_bin_body(&w->pk, b, len);
}

void mp_write_uint(struct mp_writer *w, uint64_t v)
{
    if (w->err == CMC_OK)
        msgpack_pack_uint64(&w->pk, v);
}

void mp_write_int(struct mp_writer *w, int64_t v)
{
    if (w->err == CMC_OK)
        msgpack_pack_int64(&w->pk, v);
}

void mp_write_bool(struct mp_writer *w, int v)
{
    if (w->err != CMC_OK)
        return;
    if (v)
        msgpack_pack_true(&w->pk);
    else
        msgpack_pack_false(&w->pk);
}

void mp_write_nil(struct mp_writer *w)
{
    if (w->err == CMC_OK)
        msgpack_pack_nil(&w->pk);
}

void mp_write_raw(struct mp_writer *w, const void *b, size_t len)
{
    if (w->err == CMC_OK)
        writer_append(w, b, len);
}

int mp_writer_finish(struct mp_writer *w, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (w->err == CMC_OK && w->buf == NULL) {
        /* An empty encoding still hands back a buffer the caller may free. */
        w->buf = cmc_malloc(1);
        if (w->buf == NULL)
            w->err = CMC_ERR_NOMEM;
    }
    if (w->err != CMC_OK) {
        int err = w->err;
        mp_writer_discard(w);
        return cmc_fail(err, "msgpack: %s while encoding",
                        err == CMC_ERR_NOMEM ? "out of memory" : "value too large");
    }
    *out = w->buf;
    *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return CMC_OK;
}

void mp_writer_discard(struct mp_writer *w)
{
    cmc_free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}
