/*
 * mp.h - msgpack for storage and the wire: msgpack-c's packer for writing, and a strict
 * reader of our own.
 *
 * Why our own reader: msgpack-c's unpacker allocates for whatever element count a 5-byte
 * header claims before looking at the bytes behind it. This reader allocates nothing: it
 * hands out pointers into the caller's buffer, and every array or map count is checked
 * against the bytes remaining (each element takes at least one byte) before the caller can
 * act on it, so a hostile count is refused in O(1). Nesting is bounded by `max_depth`
 * (mp_skip and mp_enter/mp_leave keep the count). All failures are CMC_ERR_CORRUPT with a
 * detail, except counts or lengths over a caller's cap (CMC_ERR_TOO_LARGE).
 *
 * Writer: an mp_writer owns a growing buffer (cmc_realloc); a failed allocation sticks in
 * w->err and every later call is a no-op, so callers check once at mp_writer_finish.
 */
#ifndef CMC_MP_H
#define CMC_MP_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* ---- reader ---------------------------------------------------------------------------- */

enum mp_type {
    MP_T_NIL,
    MP_T_BOOL,
    MP_T_UINT,
    MP_T_INT, /* negative */
    MP_T_FLOAT,
    MP_T_STR,
    MP_T_BIN,
    MP_T_ARRAY,
    MP_T_MAP,
    MP_T_EXT,
    MP_T_END,     /* no bytes left */
    MP_T_INVALID, /* 0xc1 */
};

struct mp_reader {
    const uint8_t *p;
    size_t left;
    unsigned depth;
    unsigned max_depth;
    int canonical; /* refuse non-minimal headers (mp_reader_canonical) */
};

void mp_reader_init(struct mp_reader *r, const uint8_t *buf, size_t len, unsigned max_depth);
/* From now on refuse any value not in its shortest form (an integer, string, bin, array or
 * map header longer than needed), as msgpack-c's packer writes them: a plan then has exactly
 * one encoding, so equal plans are equal bytes. */
void mp_reader_canonical(struct mp_reader *r);
enum mp_type mp_peek(const struct mp_reader *r);
/* Array/map headers: *n is checked against the bytes left (n <= left; 2n <= left for maps)
 * and against `cap` (CMC_ERR_TOO_LARGE). They increase depth (CMC_ERR_CORRUPT past
 * max_depth); call mp_leave() after reading the elements. */
int mp_read_array(struct mp_reader *r, uint32_t cap, uint32_t *n);
int mp_read_map(struct mp_reader *r, uint32_t cap, uint32_t *n);
void mp_leave(struct mp_reader *r);
/* Strings and bin: a pointer into the buffer (not NUL-terminated) and a length <= cap. */
int mp_read_str(struct mp_reader *r, uint32_t cap, const char **s, uint32_t *len);
int mp_read_bin(struct mp_reader *r, uint32_t cap, const uint8_t **b, uint32_t *len);
/* Integers: any msgpack int encoding whose value fits. */
int mp_read_uint(struct mp_reader *r, uint64_t *v);
int mp_read_int(struct mp_reader *r, int64_t *v);
int mp_read_bool(struct mp_reader *r, int *v);
/* Consumes a nil and returns 1 if the next value is nil; 0 (consuming nothing) otherwise. */
int mp_read_nil(struct mp_reader *r);
/* Skips one whole value, bounded by max_depth. */
int mp_skip(struct mp_reader *r);
/* CMC_ERR_CORRUPT if any bytes remain. */
int mp_expect_end(const struct mp_reader *r);

/* ---- writer ---------------------------------------------------------------------------- */

struct mp_writer {
    msgpack_packer pk;
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err; /* first cmc_err, sticky */
};

void mp_writer_init(struct mp_writer *w);
void mp_write_array(struct mp_writer *w, uint32_t n);
void mp_write_map(struct mp_writer *w, uint32_t n);
void mp_write_str(struct mp_writer *w, const char *s, size_t len);
void mp_write_cstr(struct mp_writer *w, const char *s); /* NULL writes nil */
void mp_write_bin(struct mp_writer *w, const void *b, size_t len);
void mp_write_uint(struct mp_writer *w, uint64_t v);
void mp_write_int(struct mp_writer *w, int64_t v);
void mp_write_bool(struct mp_writer *w, int v);
void mp_write_nil(struct mp_writer *w);
/* Appends bytes that are already msgpack. */
void mp_write_raw(struct mp_writer *w, const void *b, size_t len);
/* Hands the buffer to the caller (cmc_free) or returns the sticky error (buffer freed). */
int mp_writer_finish(struct mp_writer *w, uint8_t **out, size_t *len);
void mp_writer_discard(struct mp_writer *w);

#endif
