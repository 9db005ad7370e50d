/*
 * wire_list.c - the messages whose body is one list of small maps (sync/wire.h): a device's
 * users (POST /v1/users) and its evidence of the plans a restored hub lost (POST
 * /v1/evidence). One encoder and one envelope reader serve both.
 */
#include "sync/wire.h"
#include "sync/wire_int.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

/* Fills an element's pairs for encode_list. */
typedef void (*entry_pairs_fn)(const void *v, size_t i, struct pair *out);
#define ENTRY_PAIRS_MAX 4

/* {key: [n maps]}, the i-th of `per` pairs from fill(v, i). */
static int encode_list(const char *key, const void *v, size_t n, size_t per, entry_pairs_fn fill,
                       uint8_t **out, size_t *len)
{
    struct mp_writer w;
    struct pair e[ENTRY_PAIRS_MAX];
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, key);
    mp_write_array(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        fill(v, i, e);
        mp_write_map(&w, (uint32_t)per);
        write_pairs(&w, e, per);
    }
    return mp_writer_finish(&w, out, len);
}

/* Reads one entry of a list into e (the caller's element). */
typedef int (*entry_read_fn)(struct mp_reader *r, void *e);

/* A request {key: [at most cap maps]}: each map read by entry() into the next of v's
 * elements (elem bytes each, zeroed first); *n set only when the whole body is sound. A body
 * of another shape is refused in one detail that names the message, `what`. */
static int decode_list(const uint8_t *buf, size_t len, const char *what, const char *key,
                       uint32_t cap, void *v, size_t elem, entry_read_fn entry, size_t *n)
{
    struct mp_reader r;
    uint32_t nk, klen, count;
    const char *k;
    int rc = CMC_OK;
    *n = 0;
    mp_reader_init(&r, buf, len, 4);
    if (mp_read_map(&r, 1, &nk) != CMC_OK || nk != 1 || mp_read_str(&r, 32, &k, &klen) != CMC_OK ||
        !key_is(k, klen, key) || mp_read_array(&r, cap, &count) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "%s: body must be {%s: [at most %u entries]}", what, key,
                        (unsigned)cap);
    for (uint32_t i = 0; i < count && rc == CMC_OK; i++) {
        void *e = (uint8_t *)v + (size_t)i * elem;
        memset(e, 0, elem);
        rc = entry(&r, e);
    }
    if (rc != CMC_OK)
        return rc;
    mp_leave(&r);
    mp_leave(&r);
    if (mp_expect_end(&r) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "%s: trailing bytes", what);
    *n = count;
    return CMC_OK;
}

/* ---- POST /v1/users -------------------------------------------------------------------- */

static void user_pairs(const void *v, size_t i, struct pair *out)
{
    const struct wire_user *u = (const struct wire_user *)v + i;
    out[0] = (struct pair)P_STR("user", u->user);
    out[1] = (struct pair)P_STR("role", u->role);
    out[2] = (struct pair)P_BIN("pk", u->pk, sizeof u->pk);
}

int wire_users_encode(const struct wire_user *v, size_t n, uint8_t **out, size_t *len)
{
    return encode_list("users", v, n, 3, user_pairs, out, len);
}

static int user_entry(struct mp_reader *r, void *entry)
{
    struct wire_user *u = entry;
    uint32_t n;
    unsigned seen = 0;
    if (mp_read_map(r, 3, &n) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "users: each entry must be a map");
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t klen;
        int rc;
        if (mp_read_str(r, 32, &key, &klen) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "users: keys must be strings");
        if (key_is(key, klen, "user")) {
            seen |= 1;
            rc = req_cstr(r, "user", u->user, sizeof u->user);
        } else if (key_is(key, klen, "role")) {
            seen |= 2;
            rc = req_cstr(r, "role", u->role, sizeof u->role);
        } else if (key_is(key, klen, "pk")) {
            const uint8_t *pk = NULL;
            uint32_t pk_len = 0;
            seen |= 4;
            rc = mp_read_bin(r, CRY_SIGN_PK_BYTES, &pk, &pk_len) == CMC_OK && pk_len == CRY_SIGN_PK_BYTES
                     ? CMC_OK
                     : cmc_fail(CMC_ERR_INVALID, "users: pk must be %d bytes", CRY_SIGN_PK_BYTES);
            if (rc == CMC_OK)
                memcpy(u->pk, pk, CRY_SIGN_PK_BYTES);
        } else {
            rc = cmc_fail(CMC_ERR_INVALID, "users: unknown key");
        }
        if (rc != CMC_OK)
            return rc;
    }
    mp_leave(r);
    if (seen != 7 || u->user[0] == '\0' || u->role[0] == '\0')
        return cmc_fail(CMC_ERR_INVALID, "users: user, role and pk are required");
    return CMC_OK;
}

int wire_users_decode(const uint8_t *buf, size_t len, struct wire_user *v, size_t *n)
{
    return decode_list(buf, len, "users", "users", WIRE_USERS_MAX, v, sizeof *v, user_entry, n);
}

/* ---- POST /v1/evidence ----------------------------------------------------------------- */

static void evidence_pairs(const void *v, size_t i, struct pair *out)
{
    const struct wire_evidence *e = (const struct wire_evidence *)v + i;
    out[0] = (struct pair)P_STR("plan_id", e->plan_id);
    out[1] = (struct pair)P_INT("version", e->version);
    out[2] = (struct pair)P_UINT("seq", e->seq);
}

int wire_evidence_encode(const struct wire_evidence *v, size_t n, uint8_t **out, size_t *len)
{
    return encode_list("plans", v, n, 3, evidence_pairs, out, len);
}

/* One entry: exactly the three keys, each once. */
static int evidence_entry(struct mp_reader *r, void *entry)
{
    struct wire_evidence *e = entry;
    static const char *const keys[] = {"plan_id", "version", "seq"};
    uint32_t n;
    unsigned seen = 0;
    if (mp_read_map(r, 3, &n) != CMC_OK || n != 3)
        return cmc_fail(CMC_ERR_INVALID, "evidence: each entry must be a map of plan_id, version, seq");
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t klen;
        unsigned k = 0;
        int ok;
        if (mp_read_str(r, 32, &key, &klen) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "evidence: keys must be strings");
        while (k < 3 && !key_is(key, klen, keys[k]))
            k++;
        if (k == 3 || (seen & (1u << k)))
            return cmc_fail(CMC_ERR_INVALID, "evidence: unknown or repeated key");
        seen |= 1u << k;
        if (k == 0)
            ok = req_cstr(r, "plan_id", e->plan_id, sizeof e->plan_id) == CMC_OK &&
                 plan_uuid_valid(e->plan_id);
        else if (k == 1)
            ok = mp_read_int(r, &e->version) == CMC_OK && e->version >= 1;
        else
            ok = mp_read_uint(r, &e->seq) == CMC_OK && e->seq >= 1;
        if (!ok)
            return cmc_fail(CMC_ERR_INVALID, "evidence: %s must be %s", keys[k],
                            k == 0 ? "a plan id" : "a positive integer");
    }
    mp_leave(r);
    return CMC_OK;
}

int wire_evidence_decode(const uint8_t *buf, size_t len, struct wire_evidence *v, size_t *n)
{
    return decode_list(buf, len, "evidence", "plans", WIRE_EVIDENCE_MAX, v, sizeof *v,
                       evidence_entry, n);
}
