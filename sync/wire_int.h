/*
 * wire_int.h - what the files of sync/wire.h share, private to them: a message's pairs as a
 * list in wire order (struct pair, write_pairs) and the strict readers of a request's keys
 * and strings. Not for any other module: the messages themselves are wire.h's.
 */
#ifndef CMC_WIRE_INT_H
#define CMC_WIRE_INT_H

#include "platform/err.h"
#include "sync/mp.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One key and its value, so a message's encoder is a list of its pairs in wire order. */
enum pair_type { PAIR_STR, PAIR_INT, PAIR_UINT, PAIR_BIN, PAIR_TRUE };
struct pair {
    const char *key;
    enum pair_type type;
    const void *p; /* PAIR_STR: the string (NULL writes nil); PAIR_BIN: the bytes */
    size_t n;      /* PAIR_BIN: the byte count */
    int64_t i;     /* PAIR_INT, PAIR_UINT (as unsigned) */
};
#define P_STR(k, s) { (k), PAIR_STR, (s), 0, 0 }
#define P_INT(k, v) { (k), PAIR_INT, NULL, 0, (int64_t)(v) }
#define P_UINT(k, v) { (k), PAIR_UINT, NULL, 0, (int64_t)(v) }
#define P_BIN(k, b, len) { (k), PAIR_BIN, (b), (len), 0 }
#define P_TRUE(k) { (k), PAIR_TRUE, NULL, 0, 0 }

/* The first n of v as map pairs, without a map header. */
static inline void write_pairs(struct mp_writer *w, const struct pair *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mp_write_cstr(w, v[i].key);
        switch (v[i].type) {
        case PAIR_STR:
            mp_write_cstr(w, v[i].p);
            break;
        case PAIR_INT:
            mp_write_int(w, v[i].i);
            break;
        case PAIR_UINT:
            mp_write_uint(w, (uint64_t)v[i].i);
            break;
        case PAIR_BIN:
            mp_write_bin(w, v[i].p, v[i].n);
            break;
        case PAIR_TRUE:
            mp_write_bool(w, 1);
            break;
        }
    }
}

static inline int key_is(const char *key, uint32_t len, const char *want)
{
    return strlen(want) == len && memcmp(key, want, len) == 0;
}

/* A str of at most `max` bytes copied NUL-terminated into out (cap bytes), its length in
 * *len when len is not NULL; CMC_ERR_TOO_LARGE (no message) when it does not fit in cap. */
static inline int str_copy(struct mp_reader *r, uint32_t max, char *out, size_t cap, uint32_t *len)
{
    const char *s;
    uint32_t n;
    int rc = mp_read_str(r, max, &s, &n);
    if (rc == CMC_OK && n >= cap)
        rc = CMC_ERR_TOO_LARGE;
    if (rc != CMC_OK)
        return rc;
    memcpy(out, s, n);
    out[n] = '\0';
    if (len != NULL)
        *len = n;
    return CMC_OK;
}

/* A request's str value copied NUL-terminated, refusing embedded NULs. */
static inline int req_cstr(struct mp_reader *r, const char *key, char *out, size_t cap)
{
    uint32_t n;
    if (str_copy(r, (uint32_t)(cap - 1), out, cap, &n) != CMC_OK || memchr(out, '\0', n) != NULL)
        return cmc_fail(CMC_ERR_INVALID, "%s: must be a string of at most %zu bytes", key, cap - 1);
    return CMC_OK;
}

#endif
