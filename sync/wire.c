/*
 * wire.c - the messages between agent and hub (sync/wire.h). Each message has its encoder
 * and its decoder side by side, so a change to one is seen next to the other.
 */
#include "sync/wire.h"
#include "sync/wire_int.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <stdio.h>
#include <string.h>

/* ---- shared writer --------------------------------------------------------------------- */

/* A whole message: a map of the first n of v. */
static int encode_map(const struct pair *v, size_t n, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, (uint32_t)n);
    write_pairs(&w, v, n);
    return mp_writer_finish(&w, out, len);
}

/* ---- shared readers ------------------------------------------------------------------- */

/* An answer's key, at most cap - 1 bytes. */
static int ans_key(struct mp_reader *r, char *key, size_t cap)
{
    int rc = str_copy(r, 64, key, cap, NULL);
    if (rc == CMC_ERR_TOO_LARGE)
        return cmc_fail(CMC_ERR_PROTOCOL, "hub answer has an over-long key");
    return rc;
}

static int ans_str(struct mp_reader *r, char *out, size_t cap)
{
    return str_copy(r, (uint32_t)cap - 1, out, cap, NULL);
}

/* A bin of exactly n bytes copied to out; out untouched and CMC_ERR_INVALID (no message)
 * when it has another length. */
static int bin_exact(struct mp_reader *r, uint8_t *out, uint32_t n)
{
    const uint8_t *b;
    uint32_t blen;
    int rc = mp_read_bin(r, n, &b, &blen);
    if (rc == CMC_OK && blen != n)
        rc = CMC_ERR_INVALID;
    if (rc == CMC_OK)
        memcpy(out, b, n);
    return rc;
}

/* Reads one pair's value for the key `key` (skipping what it does not know). */
typedef int (*ans_pair_fn)(struct mp_reader *r, const char *key, void *ctx);

/* A hub answer: r set on buf, then each pair of its map (at most max) handed to pair(). */
static int ans_pairs(struct mp_reader *r, const uint8_t *buf, size_t len, uint32_t max,
                     ans_pair_fn pair, void *ctx)
{
    uint32_t n;
    mp_reader_init(r, buf, len, 4);
    int rc = mp_read_map(r, max, &n);
    for (uint32_t i = 0; rc == CMC_OK && i < n; i++) {
        char key[32];
        if ((rc = ans_key(r, key, sizeof key)) == CMC_OK)
            rc = pair(r, key, ctx);
    }
    return rc;
}

/* ---- POST /v1/enroll ------------------------------------------------------------------- */

int wire_enroll_req_encode(const struct wire_enroll_req *m, uint8_t **out, size_t *len)
{
    const struct pair v[] = {
        P_STR("code", m->code),
        P_BIN("device_pk", m->device_pk, sizeof m->device_pk),
        P_STR("name", m->name),
    };
    return encode_map(v, 3, out, len);
}

int wire_enroll_req_decode(const uint8_t *buf, size_t len, struct wire_enroll_req *m)
{
    struct mp_reader r;
    const char *key;
    const uint8_t *pk;
    uint32_t n, klen, pklen = 0;
    unsigned seen = 0;
    int rc = CMC_OK;

    memset(m, 0, sizeof *m);
    m->code = m->code_buf;
    m->name = m->name_buf;
    mp_reader_init(&r, buf, len, 4);
    if (mp_read_map(&r, 8, &n) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "enroll: body must be a msgpack map");
    for (uint32_t i = 0; i < n && rc == CMC_OK; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "enroll: keys must be strings");
        if (key_is(key, klen, "code")) {
            rc = req_cstr(&r, "code", m->code_buf, sizeof m->code_buf);
            seen |= 1;
        } else if (key_is(key, klen, "device_pk")) {
            rc = mp_read_bin(&r, CRY_SIGN_PK_BYTES, &pk, &pklen);
            if (rc != CMC_OK || pklen != CRY_SIGN_PK_BYTES)
                rc = cmc_fail(CMC_ERR_INVALID, "device_pk: must be 32 bytes (bin)");
            else
                memcpy(m->device_pk, pk, CRY_SIGN_PK_BYTES);
            seen |= 2;
        } else if (key_is(key, klen, "name")) {
            rc = req_cstr(&r, "name", m->name_buf, sizeof m->name_buf);
            seen |= 4;
        } else {
            rc = cmc_fail(CMC_ERR_INVALID, "enroll: unknown key");
        }
    }
    if (rc == CMC_OK) {
        mp_leave(&r);
        if (mp_expect_end(&r) != CMC_OK || (seen & 3) != 3)
            rc = cmc_fail(CMC_ERR_INVALID, "enroll: code and device_pk are required");
    }
    if (rc != CMC_OK)
        cry_memzero(m->code_buf, sizeof m->code_buf);
    return rc;
}

int wire_enroll_ans_encode(const struct wire_enroll_ans *m, uint8_t **out, size_t *len)
{
    const struct pair v[] = {
        P_STR("device_id", m->device_id),
        P_BIN("hub_pk", m->hub_pk, CRY_SIGN_PK_BYTES),
        P_STR("scope", m->scope),
        P_STR("role", m->role),
        P_INT("lease_days", m->lease_days),
        P_INT("hub_time", m->hub_time),
        P_BIN("audit_seed", m->audit_seed, sizeof m->audit_seed), /* only with a seed */
    };
    return encode_map(v, m->has_audit_seed ? 7 : 6, out, len);
}

struct enroll_ans_read {
    struct wire_enroll_ans *m;
    int have_pk;
};

static int enroll_ans_pair(struct mp_reader *r, const char *key, void *ctx)
{
    struct enroll_ans_read *er = ctx;
    struct wire_enroll_ans *m = er->m;
    if (strcmp(key, "device_id") == 0)
        return ans_str(r, m->device_id, sizeof m->device_id);
    if (strcmp(key, "scope") == 0)
        return ans_str(r, m->scope, sizeof m->scope);
    if (strcmp(key, "role") == 0)
        return ans_str(r, m->role, sizeof m->role);
    if (strcmp(key, "lease_days") == 0)
        return mp_read_int(r, &m->lease_days);
    if (strcmp(key, "hub_time") == 0)
        return mp_read_int(r, &m->hub_time);
    if (strcmp(key, "audit_seed") == 0) {
        if (bin_exact(r, m->audit_seed, CRY_HASH_BYTES) != CMC_OK)
            return cmc_fail(CMC_ERR_PROTOCOL, "audit seed has the wrong length");
        m->has_audit_seed = 1;
        return CMC_OK;
    }
    if (strcmp(key, "hub_pk") != 0)
        return mp_skip(r);
    if (bin_exact(r, m->hub_pk, CRY_SIGN_PK_BYTES) != CMC_OK)
        return cmc_fail(CMC_ERR_PROTOCOL, "hub key has the wrong length");
    er->have_pk = 1;
    return CMC_OK;
}

int wire_enroll_ans_decode(const uint8_t *buf, size_t len, struct wire_enroll_ans *m)
{
    struct mp_reader r;
    uint8_t check[16];
    struct enroll_ans_read er = { m, 0 };

    memset(m, 0, sizeof *m);
    int rc = ans_pairs(&r, buf, len, 32, enroll_ans_pair, &er);
    if (rc == CMC_OK) {
        mp_leave(&r);
        if (!er.have_pk || plan_uuid_bytes(m->device_id, check) != CMC_OK)
            rc = CMC_ERR_PROTOCOL;
    }
    if (rc != CMC_OK)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub's enrollment answer is malformed");
    return CMC_OK;
}

/* ---- GET /v1/pull ---------------------------------------------------------------------- */

int wire_pull_path(const struct wire_pull_query *q, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/v1/pull?cursor=%llu", (unsigned long long)q->cursor);
    if (q->applied != q->cursor && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&applied=%llu", (unsigned long long)q->applied);
    if (q->budget > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&budget=%llu", (unsigned long long)q->budget);
    if (q->schema > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&schema=%llu", (unsigned long long)q->schema);
    if (q->codecs > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&z=%llu", (unsigned long long)q->codecs);
    if (q->seal > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&seal=1");
    if (n < 0 || (size_t)n >= cap)
        return cmc_fail(CMC_ERR_INVALID, "pull: the request target does not fit");
    return CMC_OK;
}

/* Parses a decimal query value; CMC_ERR_INVALID for anything else. */
static int query_u64(const char *v, size_t len, const char *name, uint64_t *out)
{
    uint64_t x = 0;
    if (len == 0 || len > 19)
        return cmc_fail(CMC_ERR_INVALID, "%s: must be a decimal number", name);
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return cmc_fail(CMC_ERR_INVALID, "%s: must be a decimal number", name);
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return CMC_OK;
}

/* The n known parameters `names` of a query string as decimal numbers into *slots[k],
 * have[k] set for each one present; unknown parameters are ignored. The first, the cursor,
 * is required (`what` names the request in the error). */
static int query_params(const char *query, const char *what, const char *const *names,
                        uint64_t *const *slots, int *have, size_t n)
{
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        for (size_t k = 0; eq != NULL && k < n; k++) {
            size_t klen = (size_t)(eq - p);
            if (klen != strlen(names[k]) || memcmp(p, names[k], klen) != 0)
                continue;
            int rc = query_u64(eq + 1, plen - klen - 1, names[k], slots[k]);
            if (rc != CMC_OK)
                return rc;
            have[k] = 1;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    if (!have[0])
        return cmc_fail(CMC_ERR_INVALID, "%s: the cursor query parameter is required", what);
    return CMC_OK;
}

int wire_pull_query_decode(const char *query, struct wire_pull_query *q)
{
    static const char *const names[] = { "cursor", "applied", "budget", "schema", "z", "seal" };
    uint64_t *slots[] = { &q->cursor, &q->applied, &q->budget, &q->schema, &q->codecs,
                          &q->seal };
    int have[6] = { 0, 0, 0, 0, 0, 0 };

    memset(q, 0, sizeof *q);
    int rc = query_params(query, "pull", names, slots, have, 6);
    if (rc != CMC_OK)
        return rc;
    if (!have[1])
        q->applied = q->cursor; /* the device has committed what it continues from */
    if (!have[3])
        q->schema = 1; /* a first-edition device: it predates the parameter */
    else if (q->schema == 0)
        return cmc_fail(CMC_ERR_INVALID, "schema: must be a plan edition, 1 or more");
    return CMC_OK;
}

/* ---- POST /v1/push --------------------------------------------------------------------- */

int wire_push_req_encode(const struct wire_push_req *m, uint8_t **out, size_t *len)
{
    const struct pair v[] = {
        P_STR("idempotency_id", m->idempotency_id),
        P_STR("plan_id", m->plan_id),
        P_INT("base_version", m->base_version),
        P_BIN("change", m->change, m->change_len),
        P_STR("user", m->user), /* these two only with a user */
        P_BIN("user_sig", m->user_sig, sizeof m->user_sig),
    };
    return encode_map(v, m->has_user ? 6 : 4, out, len);
}

void wire_push_digest(const char *plan_id, int64_t base_version, const char *idempotency_id,
                      const uint8_t *change, size_t change_len, uint8_t out[CRY_HASH_BYTES])
{
    static const char tag[] = "cmc-push-v1";
    uint8_t base[8];
    for (int i = 0; i < 8; i++)
        base[i] = (uint8_t)((uint64_t)base_version >> (8 * i));
    struct cry_hash_state st;
    cry_hash_init(&st);
    cry_hash_update(&st, tag, sizeof tag); /* with its NUL */
    cry_hash_update(&st, plan_id, strlen(plan_id) + 1);
    cry_hash_update(&st, base, sizeof base);
    cry_hash_update(&st, idempotency_id, strlen(idempotency_id) + 1);
    cry_hash_update(&st, change, change_len);
    cry_hash_final(&st, out);
}

static int push_req_pair(struct mp_reader *r, const char *key, uint32_t klen,
                         struct wire_push_req *m, unsigned *seen)
{
    uint32_t change_len = 0;
    int rc;
    if (key_is(key, klen, "idempotency_id")) {
        *seen |= 1;
        return req_cstr(r, "idempotency_id", m->idempotency_id, sizeof m->idempotency_id);
    }
    if (key_is(key, klen, "plan_id")) {
        *seen |= 2;
        return req_cstr(r, "plan_id", m->plan_id, sizeof m->plan_id);
    }
    if (key_is(key, klen, "base_version")) {
        *seen |= 4;
        rc = mp_read_int(r, &m->base_version);
        if (rc != CMC_OK || m->base_version < 1)
            return cmc_fail(CMC_ERR_INVALID, "base_version: must be a positive integer");
        return CMC_OK;
    }
    if (key_is(key, klen, "change")) {
        *seen |= 8;
        rc = mp_read_bin(r, PLAN_MAX_ENCODED, &m->change, &change_len);
        m->change_len = change_len;
        if (rc != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "change: must be bin of at most %d bytes",
                            PLAN_MAX_ENCODED);
        return CMC_OK;
    }
    if (key_is(key, klen, "user")) {
        *seen |= 16;
        return req_cstr(r, "user", m->user, sizeof m->user);
    }
    if (key_is(key, klen, "user_sig")) {
        const uint8_t *sig = NULL;
        uint32_t sig_len = 0;
        *seen |= 32;
        if (mp_read_bin(r, CRY_SIG_BYTES, &sig, &sig_len) != CMC_OK || sig_len != CRY_SIG_BYTES)
            return cmc_fail(CMC_ERR_INVALID, "user_sig: must be bin of %d bytes", CRY_SIG_BYTES);
        memcpy(m->user_sig, sig, CRY_SIG_BYTES);
        return CMC_OK;
    }
    return cmc_fail(CMC_ERR_INVALID, "push: unknown key");
}

int wire_push_req_decode(const uint8_t *buf, size_t len, struct wire_push_req *m)
{
    struct mp_reader r;
    const char *key;
    uint32_t n, klen;
    unsigned seen = 0;
    int rc;

    memset(m, 0, sizeof *m);
    m->base_version = -1;
    mp_reader_init(&r, buf, len, 4);
    if (mp_read_map(&r, 8, &n) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "push: body must be a msgpack map");
    if (n > 6)
        return cmc_fail(CMC_ERR_INVALID, "push: too many keys");
    for (uint32_t i = 0; i < n; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "push: keys must be strings");
        if ((rc = push_req_pair(&r, key, klen, m, &seen)) != CMC_OK)
            return rc;
    }
    mp_leave(&r);
    if (mp_expect_end(&r) != CMC_OK || (seen & 15) != 15)
        return cmc_fail(CMC_ERR_INVALID,
                        "push: idempotency_id, plan_id, base_version and change are required");
    if ((seen & 48) != 0 && (seen & 48) != 48)
        return cmc_fail(CMC_ERR_INVALID, "push: user and user_sig come together");
    m->has_user = (seen & 48) == 48;
    return CMC_OK;
}

int wire_push_ans_encode(const struct wire_push_ans *m, uint8_t **out, size_t *len)
{
    const struct pair v[] = {
        P_STR("result", m->result),
        P_INT("version", m->version),
        P_BIN("current", m->current, m->current_len), /* only with the hub's current plan */
    };
    return encode_map(v, m->current != NULL ? 3 : 2, out, len);
}

static int push_ans_pair(struct mp_reader *r, const char *key, void *ctx)
{
    struct wire_push_ans *m = ctx;
    if (strcmp(key, "result") == 0)
        return ans_str(r, m->result, sizeof m->result);
    if (strcmp(key, "version") == 0)
        return mp_read_int(r, &m->version);
    if (strcmp(key, "current") != 0 || mp_peek(r) != MP_T_BIN)
        return mp_skip(r);
    uint32_t blen = 0;
    int rc = mp_read_bin(r, PLAN_MAX_ENCODED, &m->current, &blen);
    m->current_len = blen;
    return rc;
}

int wire_push_ans_decode(const uint8_t *buf, size_t len, struct wire_push_ans *m)
{
    struct mp_reader r;

    memset(m, 0, sizeof *m);
    int rc = ans_pairs(&r, buf, len, 16, push_ans_pair, m);
    if (rc != CMC_OK) {
        memset(m, 0, sizeof *m);
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub's answer to a pushed edit is malformed");
    }
    return CMC_OK;
}

/* ---- POST /v1/ack ---------------------------------------------------------------------- */

int wire_ack_encode(const struct wire_ack *m, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, (uint32_t)(m->purges != NULL) + (uint32_t)(m->wipe != 0));
    if (m->purges != NULL) {
        mp_write_cstr(&w, "purges");
        mp_write_array(&w, (uint32_t)m->n_purges);
        for (size_t i = 0; i < m->n_purges; i++)
            mp_write_cstr(&w, m->purges[i]);
    }
    if (m->wipe) {
        mp_write_cstr(&w, "wipe");
        mp_write_bool(&w, 1);
    }
    return mp_writer_finish(&w, out, len);
}

static int ack_purges(struct mp_reader *r, struct wire_ack *m)
{
    uint32_t n;
    int rc = CMC_OK;
    if (mp_read_array(r, WIRE_ACK_MAX, &n) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "purges: an array of at most %d plan ids", WIRE_ACK_MAX);
    m->ids = cmc_calloc(n ? n : 1, sizeof *m->ids);
    m->purges = cmc_calloc(n ? n : 1, sizeof *m->purges);
    if (m->ids == NULL || m->purges == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "ack");
    m->n_purges = n;
    for (uint32_t j = 0; j < n && rc == CMC_OK; j++) {
        rc = req_cstr(r, "purges[]", m->ids[j], sizeof m->ids[j]);
        if (rc == CMC_OK && !plan_uuid_valid(m->ids[j]))
            rc = cmc_fail(CMC_ERR_INVALID, "purges[]: not a plan id");
        m->purges[j] = m->ids[j];
    }
    mp_leave(r);
    return rc;
}

int wire_ack_decode(const uint8_t *buf, size_t len, struct wire_ack *m)
{
    struct mp_reader r;
    const char *key;
    uint32_t n, klen;
    int rc = CMC_OK;

    memset(m, 0, sizeof *m);
    mp_reader_init(&r, buf, len, 4);
    if (mp_read_map(&r, 4, &n) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "ack: body must be a msgpack map");
    for (uint32_t i = 0; i < n && rc == CMC_OK; i++) {
        if (mp_read_str(&r, 32, &key, &klen) != CMC_OK)
            rc = cmc_fail(CMC_ERR_INVALID, "ack: keys must be strings");
        else if (key_is(key, klen, "purges") && m->ids == NULL)
            rc = ack_purges(&r, m);
        else if (key_is(key, klen, "wipe")) {
            if (mp_read_bool(&r, &m->wipe) != CMC_OK)
                rc = cmc_fail(CMC_ERR_INVALID, "wipe: must be a boolean");
        } else
            rc = cmc_fail(CMC_ERR_INVALID, "ack: unknown or repeated key");
    }
    if (rc == CMC_OK) {
        mp_leave(&r);
        if (mp_expect_end(&r) != CMC_OK)
            rc = cmc_fail(CMC_ERR_INVALID, "ack: trailing bytes after the body");
    }
    if (rc != CMC_OK)
        wire_ack_free(m);
    return rc;
}

void wire_ack_free(struct wire_ack *m)
{
    if (m == NULL)
        return;
    cmc_free(m->ids);
    cmc_free((void *)m->purges);
    memset(m, 0, sizeof *m);
}

int wire_ack_ans_encode(uint8_t **out, size_t *len)
{
    const struct pair v[] = { P_TRUE("ok") };
    return encode_map(v, 1, out, len);
}

/* ---- POST /v1/audit -------------------------------------------------------------------- */

/* The nine pairs of M (everything but the hash), without their map header. */
static void audit_core_pairs(struct mp_writer *w, const struct wire_audit_entry *e)
{
    const struct pair v[] = {
        P_UINT("seq", e->seq),
        P_BIN("prev", e->prev, sizeof e->prev),
        P_STR("user", e->user),
        P_STR("role", e->role),
        P_STR("plan_id", e->plan_id),
        P_STR("identifier", e->identifier),
        P_STR("action", e->action),
        P_INT("wall", e->wall),
        P_INT("mono", e->mono),
    };
    write_pairs(w, v, 9);
}

/* The one chain hash: BLAKE2b-256(prev || M), M the map of n_pairs pairs (the hash pair
 * left out by the caller), given as a fixmap header and the pairs' bytes in n_spans runs. */
static void audit_chain_hash(const uint8_t prev[CRY_HASH_BYTES], uint32_t n_pairs,
                             const uint8_t *const *span, const size_t *span_len, uint32_t n_spans,
                             uint8_t out[CRY_HASH_BYTES])
{
    struct cry_hash_state hs;
    uint8_t map_hdr = (uint8_t)(0x80u | n_pairs);
    cry_hash_init(&hs);
    cry_hash_update(&hs, prev, CRY_HASH_BYTES);
    cry_hash_update(&hs, &map_hdr, 1);
    for (uint32_t i = 0; i < n_spans; i++)
        cry_hash_update(&hs, span[i], span_len[i]);
    cry_hash_final(&hs, out);
}

int wire_audit_entry_hash(const struct wire_audit_entry *e, uint8_t out[CRY_HASH_BYTES])
{
    struct mp_writer w;
    uint8_t *m = NULL;
    size_t len = 0;
    mp_writer_init(&w);
    audit_core_pairs(&w, e);
    int rc = mp_writer_finish(&w, &m, &len);
    if (rc != CMC_OK)
        return rc;
    const uint8_t *pairs[1] = { m };
    audit_chain_hash(e->prev, 9, pairs, &len, 1, out);
    cmc_free(m);
    return CMC_OK;
}

/* An entry's upload map: M's pairs under a fixmap of ten, then "hash" (and "seal" when
 * `with_seal` and the entry is sealed). */
static void audit_entry_write(struct mp_writer *w, const struct wire_audit_entry *e, int with_seal)
{
    const struct pair v[] = {
        P_BIN("hash", e->hash, sizeof e->hash),
        P_BIN("seal", e->seal, sizeof e->seal),
    };
    int seal = with_seal && e->sealed;
    mp_write_map(w, seal ? 11 : 10);
    audit_core_pairs(w, e);
    write_pairs(w, v, seal ? 2 : 1);
}

int wire_audit_entry_pack(const struct wire_audit_entry *e, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    audit_entry_write(&w, e, 0);
    return mp_writer_finish(&w, out, len);
}

int wire_audit_upload_encode(const struct wire_audit_entry *v, size_t n,
                             const struct wire_audit_state *st, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    int with_state = st != NULL && st->present;
    mp_writer_init(&w);
    mp_write_map(&w, with_state ? 2 : 1);
    if (with_state) {
        mp_write_cstr(&w, "state");
        mp_write_array(&w, 3);
        mp_write_uint(&w, st->sealed);
        mp_write_uint(&w, st->newest);
        mp_write_bin(&w, st->tag, sizeof st->tag);
    }
    mp_write_cstr(&w, "entries");
    mp_write_array(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        audit_entry_write(&w, &v[i], 1);
    return mp_writer_finish(&w, out, len);
}

static int audit_hash32(struct mp_reader *r, uint8_t out[CRY_HASH_BYTES]);

static int audit_state_read(struct mp_reader *r, struct wire_audit_state *st)
{
    uint32_t n;
    if (mp_read_array(r, 4, &n) != CMC_OK || n != 3 || mp_read_uint(r, &st->sealed) != CMC_OK ||
        mp_read_uint(r, &st->newest) != CMC_OK || audit_hash32(r, st->tag) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "audit: state must be [sealed, newest, tag]");
    mp_leave(r);
    st->present = 1;
    return CMC_OK;
}

int wire_audit_upload_open(struct mp_reader *r, const uint8_t *buf, size_t len, uint32_t *n,
                           struct wire_audit_state *st)
{
    const char *key;
    uint32_t n_keys, klen;
    int rc;
    *n = 0;
    memset(st, 0, sizeof *st);
    mp_reader_init(r, buf, len, 8);
    if (mp_read_map(r, 4, &n_keys) != CMC_OK || n_keys < 1 || n_keys > 2 ||
        mp_read_str(r, 16, &key, &klen) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "audit: body must be a map {\"entries\": [...]}");
    if (n_keys == 2) {
        if (!key_is(key, klen, "state"))
            return cmc_fail(CMC_ERR_INVALID, "audit: \"state\" must come before \"entries\"");
        if ((rc = audit_state_read(r, st)) != CMC_OK)
            return rc;
        if (mp_read_str(r, 16, &key, &klen) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "audit: body must be a map {\"entries\": [...]}");
    }
    if (!key_is(key, klen, "entries"))
        return cmc_fail(CMC_ERR_INVALID, "audit: body must be a map {\"entries\": [...]}");
    if ((rc = mp_read_array(r, WIRE_AUDIT_MAX_ENTRIES, n)) != CMC_OK)
        return cmc_fail(rc == CMC_ERR_TOO_LARGE ? CMC_ERR_TOO_LARGE : CMC_ERR_INVALID,
                        "audit: entries must be an array of at most %d", WIRE_AUDIT_MAX_ENTRIES);
    return CMC_OK;
}

static int audit_cstr(struct mp_reader *r, const char *key, char *out)
{
    const char *s;
    uint32_t n;
    int rc = mp_read_str(r, WIRE_AUDIT_STR_MAX, &s, &n);
    if (rc != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "audit entry: %s must be a string of at most %d bytes",
                        key, WIRE_AUDIT_STR_MAX);
    if (memchr(s, '\0', n) != NULL)
        return cmc_fail(CMC_ERR_INVALID, "audit entry: %s holds a NUL byte", key);
    memcpy(out, s, n);
    out[n] = '\0';
    return CMC_OK;
}

static int audit_hash32(struct mp_reader *r, uint8_t out[CRY_HASH_BYTES])
{
    return bin_exact(r, out, CRY_HASH_BYTES);
}

/* One pair's value by its key; *bit says which key it was (0: unknown). */
static int audit_pair(struct mp_reader *r, const char *key, uint32_t klen,
                      struct wire_audit_entry *e, unsigned *bit)
{
    static const char *const names[] = { "seq", "prev", "hash", "user", "role", "plan_id",
                                         "identifier", "action", "wall", "mono", "seal" };
    char *const strs[] = { e->user, e->role, e->plan_id, e->identifier, e->action };
    unsigned k = 0;
    while (k < 11 && !key_is(key, klen, names[k]))
        k++;
    *bit = k < 11 ? 1u << k : 0;
    switch (k) {
    case 0:
        return mp_read_uint(r, &e->seq);
    case 1:
        return audit_hash32(r, e->prev);
    case 2:
        return audit_hash32(r, e->hash);
    case 8:
        return mp_read_int(r, &e->wall);
    case 9:
        return mp_read_int(r, &e->mono);
    case 10:
        e->sealed = 1;
        return audit_hash32(r, e->seal);
    case 11:
        return cmc_fail(CMC_ERR_INVALID, "audit entry: unknown key");
    default:
        return audit_cstr(r, names[k], strs[k - 3]);
    }
}

int wire_audit_upload_next(struct mp_reader *r, struct wire_audit_entry *e,
                           uint8_t computed[CRY_HASH_BYTES])
{
    const uint8_t *span[16];
    size_t span_len[16];
    uint32_t n, n_spans = 0, klen;
    const char *key;
    unsigned seen = 0, bit;
    int rc;

    memset(e, 0, sizeof *e);
    if ((rc = mp_read_map(r, 16, &n)) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "audit entry: not a map of at most 16 pairs");
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *start = r->p;
        if ((rc = mp_read_str(r, 16, &key, &klen)) != CMC_OK)
            return cmc_fail(CMC_ERR_INVALID, "audit entry: keys must be short strings");
        rc = audit_pair(r, key, klen, e, &bit);
        if (bit == 0)
            return rc;
        if (rc != CMC_OK || (seen & bit))
            return cmc_fail(CMC_ERR_INVALID, "audit entry: a key is repeated or has the wrong type");
        seen |= bit;
        if (bit != 1u << 2 && bit != 1u << 10) { /* M leaves the hash and seal pairs out */
            span[n_spans] = start;
            span_len[n_spans++] = (size_t)(r->p - start);
        }
    }
    mp_leave(r);
    if ((seen & 0x3ffu) != 0x3ffu)
        return cmc_fail(CMC_ERR_INVALID, "audit entry: seq, prev, hash, user, role, plan_id,"
                                         " identifier, action, wall and mono are all required");
    audit_chain_hash(e->prev, n - 1 - (uint32_t)e->sealed, span, span_len, n_spans, computed);
    return CMC_OK;
}

int wire_audit_upload_close(struct mp_reader *r)
{
    mp_leave(r);
    mp_leave(r);
    if (mp_expect_end(r) != CMC_OK)
        return cmc_fail(CMC_ERR_INVALID, "audit: trailing bytes after the body");
    return CMC_OK;
}

int wire_audit_ans_encode(uint64_t acked_seq, uint8_t **out, size_t *len)
{
    const struct pair v[] = { P_UINT("acked_seq", acked_seq) };
    return encode_map(v, 1, out, len);
}

static int audit_ans_pair(struct mp_reader *r, const char *key, void *ctx)
{
    return strcmp(key, "acked_seq") == 0 ? mp_read_int(r, ctx) : mp_skip(r);
}

int wire_audit_ans_decode(const uint8_t *buf, size_t len, int64_t *acked_seq)
{
    struct mp_reader r;
    int64_t acked = -1;

    *acked_seq = -1;
    int rc = ans_pairs(&r, buf, len, 8, audit_ans_pair, &acked);
    if (rc != CMC_OK || acked < 0)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub's answer to the audit upload is malformed");
    *acked_seq = acked;
    return CMC_OK;
}

/* ---- GET /v1/wait ---------------------------------------------------------------------- */

int wire_wait_path(const struct wire_wait_query *q, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/v1/wait?cursor=%llu", (unsigned long long)q->cursor);
    if (q->lease >= 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&lease=%lld", (long long)q->lease);
    if (q->hold > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&hold=%llu", (unsigned long long)q->hold);
    if (n < 0 || (size_t)n >= cap)
        return cmc_fail(CMC_ERR_INVALID, "wait: the request target does not fit");
    return CMC_OK;
}

int wire_wait_query_decode(const char *query, struct wire_wait_query *q)
{
    static const char *const names[] = { "cursor", "lease", "hold" };
    uint64_t v[3] = { 0, 0, 0 };
    uint64_t *const slots[] = { &v[0], &v[1], &v[2] };
    int have[3] = { 0, 0, 0 };

    memset(q, 0, sizeof *q);
    int rc = query_params(query, "wait", names, slots, have, 3);
    if (rc != CMC_OK)
        return rc;
    if (have[1] && v[1] > INT32_MAX)
        return cmc_fail(CMC_ERR_INVALID, "lease: out of range");
    q->cursor = v[0];
    q->lease = have[1] ? (int64_t)v[1] : -1;
    q->hold = v[2] == 0 || v[2] > WIRE_WAIT_HOLD_MAX ? WIRE_WAIT_HOLD_MAX : v[2];
    return CMC_OK;
}
