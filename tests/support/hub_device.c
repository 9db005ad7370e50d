/* hub_device.c - see hub_device.h. */
#include "tests/support/hub_device.h"

#include "crypto/merkle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/wire.h"
#include "hub/device_users.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one clinician user every simulated device has, made once per test program. */
static struct cry_secret *tst_user_sk;
static uint8_t tst_user_pk[CRY_SIGN_PK_BYTES];

const struct cry_secret *tst_user_key(uint8_t pk[CRY_SIGN_PK_BYTES])
{
    if (tst_user_sk == NULL)
        assert_int_equal(cry_sign_keypair(tst_user_pk, &tst_user_sk), CMC_OK);
    if (pk != NULL)
        memcpy(pk, tst_user_pk, CRY_SIGN_PK_BYTES);
    return tst_user_sk;
}

void tst_user_sign(const char *idem, const char *plan_id, int64_t base, const uint8_t *change,
                   size_t change_len, uint8_t sig[CRY_SIG_BYTES])
{
    uint8_t digest[CRY_HASH_BYTES];
    wire_push_digest(plan_id, base, idem, change, change_len, digest);
    assert_int_equal(cry_sign(tst_user_key(NULL), digest, sizeof digest, sig), CMC_OK);
}

void tst_device_new(struct tst_hub *e, struct tst_device *d, const char *scope, const char *role)
{
    char code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct hub_enrollment en;
    memset(d, 0, sizeof *d);
    d->held = calloc(TST_MAX_HELD, sizeof *d->held);
    assert_non_null(d->held);
    d->page_purged = calloc(TST_MAX_HELD, sizeof *d->page_purged);
    assert_non_null(d->page_purged);
    d->lease_days = -1;
    assert_int_equal(hub_device_add(e->h, "dev", scope, role, d->id, code), CMC_OK);
    assert_int_equal(cry_sign_keypair(pk, &d->sk), CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, pk, "dev", &en), CMC_OK);
    assert_string_equal(en.device_id, d->id);
    assert_memory_equal(en.hub_pk, e->hub_pk, CRY_SIGN_PK_BYTES);
    struct wire_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.user, sizeof u.user, "%s", TST_USER);
    snprintf(u.role, sizeof u.role, "%s", "clinician");
    tst_user_key(u.pk);
    assert_int_equal(hub_device_users_set(e->h, d->id, &u, 1), CMC_OK);
}

void tst_device_free(struct tst_device *d)
{
    for (size_t i = 0; i < d->n_held; i++)
        plan_free(&d->held[i]);
    free(d->held);
    free(d->page_purged);
    cry_secret_free(d->sk);
}

void tst_device_new_amb_and_nurse(struct tst_hub *e, struct tst_device *amb,
                                  struct tst_device *nurse)
{
    tst_device_new(e, amb, "region:" TST_REGION, "urgent_care");
    tst_device_new(e, nurse, "team:" TST_TEAM, "clinician");
    tst_device_sync(e, amb, 0);
    tst_device_sync(e, nurse, 0);
}

void tst_device_free_all(struct tst_device *d, ...)
{
    va_list ap;
    va_start(ap, d);
    for (; d != NULL; d = va_arg(ap, struct tst_device *))
        tst_device_free(d);
    va_end(ap);
}

struct plan *tst_device_held(struct tst_device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++)
        if (strcmp(d->held[i].plan_id, id) == 0)
            return &d->held[i];
    return NULL;
}

void tst_device_drop(struct tst_device *d, const char *id)
{
    for (size_t i = 0; i < d->n_held; i++) {
        if (strcmp(d->held[i].plan_id, id) == 0) {
            plan_free(&d->held[i]);
            d->held[i] = d->held[--d->n_held];
            return;
        }
    }
}

/* Verifies and applies one bundle; returns its header. `commit` 0 models a device that
 * received the bundle but crashed before committing it. */
struct bundle_header tst_device_apply(struct tst_hub *e, struct tst_device *d, const uint8_t *buf,
                                         size_t len, int commit)
{
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    size_t n = 0;
    uint8_t dev_bytes[16];
    assert_int_equal(bundle_verify(buf, len, e->hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.from_cursor, d->cursor);
    /* the header names this device */
    {
        char hex[33];
        size_t k = 0;
        for (size_t i = 0; d->id[i]; i++)
            if (d->id[i] != '-')
                hex[k++] = d->id[i];
        hex[k] = '\0';
        assert_int_equal(cry_unhex(dev_bytes, 16, hex), CMC_OK);
        assert_memory_equal(hdr.device_id, dev_bytes, 16);
    }
    assert_int_equal(bundle_decode(buf, len, &hdr, &ops, &n), CMC_OK);
    assert_int_equal(n, hdr.op_count);
    /* every bundle opens with exactly one policy op */
    assert_true(n >= 1);
    assert_int_equal(ops[0].kind, BUNDLE_OP_POLICY);
    for (size_t i = 1; i < n; i++)
        assert_int_not_equal(ops[i].kind, BUNDLE_OP_POLICY);
    /* Every plan version the page gives must reach the root the hub signed in its SEAL op
     * (hub_pull seals): the leaves over the exact bytes a device stores. */
    uint8_t *leaves = calloc(n ? n : 1, CRY_HASH_BYTES);
    size_t n_leaves = 0;
    assert_non_null(leaves);
    if (commit) {
        d->n_page_purged = 0;
        d->last_flags = hdr.flags;
        if (hdr.flags & BUNDLE_FLAG_ROLLBACK)
            d->rollback_pages++;
        for (size_t i = 0; i < n; i++) {
            struct bundle_op *op = &ops[i];
            struct plan *p;
            switch (op->kind) {
            case BUNDLE_OP_PUT:
                d->puts++;
                tst_device_drop(d, op->plan_id);
                assert_true(d->n_held < TST_MAX_HELD);
                assert_int_equal(plan_copy(&d->held[d->n_held], &op->plan), CMC_OK);
                d->n_held++;
                cry_merkle_leaf(leaves + CRY_HASH_BYTES * n_leaves++, op->plan_id,
                                op->plan.version, op->packed, op->packed_len);
                break;
            case BUNDLE_OP_DELTA:
                d->deltas++;
                p = tst_device_held(d, op->plan_id);
                assert_non_null(p);
                assert_int_equal(p->version, op->base_version);
                assert_int_equal(plan_change_apply(p, &op->change), CMC_OK);
                {
                    uint8_t *body = NULL;
                    size_t body_len = 0;
                    assert_int_equal(plan_pack(p, &body, &body_len), CMC_OK);
                    cry_merkle_leaf(leaves + CRY_HASH_BYTES * n_leaves++, op->plan_id,
                                    p->version, body, body_len);
                    cmc_free(body);
                }
                break;
            case BUNDLE_OP_PURGE:
                if (d->purges < 8)
                    snprintf(d->purged[d->purges], PLAN_ID_LEN + 1, "%s", op->plan_id);
                d->purges++;
                snprintf(d->last_reason, sizeof d->last_reason, "%s", op->reason);
                tst_device_drop(d, op->plan_id);
                assert_true(d->n_page_purged < TST_MAX_HELD);
                snprintf(d->page_purged[d->n_page_purged++], PLAN_ID_LEN + 1, "%s", op->plan_id);
                break;
            case BUNDLE_OP_WIPE:
                d->wipes++;
                break;
            case BUNDLE_OP_POLICY:
                d->lease_days = op->lease_days;
                break;
            case BUNDLE_OP_SEAL: {
                uint8_t root[CRY_HASH_BYTES];
                assert_int_equal(i, n - 1);
                assert_int_equal(bundle_seal_verify(leaves, n_leaves, op->seal_sig, e->hub_pk,
                                                    root),
                                 CMC_OK);
                d->seals++;
                n_leaves = 0;
                break;
            }
            }
        }
        if (!d->no_seals)
            assert_int_equal(n_leaves, 0); /* a page of plans ends with their seal */
        d->cursor = hdr.to_cursor;
    }
    free(leaves);
    bundle_ops_free(ops, n);
    return hdr;
}

/* Pulls pages until "more" is clear; returns the number of pages. */
int tst_device_sync(struct tst_hub *e, struct tst_device *d, size_t budget)
{
    int pages = 0;
    d->puts = d->deltas = d->purges = d->wipes = 0;
    d->rollback_pages = 0;
    d->last_reason[0] = '\0';
    for (;;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(hub_pull(e->h, d->id, d->cursor, d->cursor, budget, &buf, &len), CMC_OK);
        struct bundle_header hdr = tst_device_apply(e, d, buf, len, 1);
        cmc_free(buf);
        /* like the agent: purges made durable are acknowledged */
        if (!d->no_ack && d->n_page_purged > 0) {
            const char *ids[TST_MAX_HELD];
            for (size_t i = 0; i < d->n_page_purged; i++)
                ids[i] = d->page_purged[i];
            assert_int_equal(hub_ack(e->h, d->id, ids, d->n_page_purged, 0), CMC_OK);
        }
        pages++;
        assert_true(pages < 10000);
        if (!(hdr.flags & BUNDLE_FLAG_MORE))
            break;
    }
    return pages;
}

/* A signed request through the pure API handler. */
/* The X-CMC-* fields of struct hub_request and struct hub_signed_request, from signed headers. */
#define SIGNED_HEADERS(hdrs)                                                                  \
    .device = (hdrs)->device, .time = (hdrs)->time, .nonce = (hdrs)->nonce,                   \
    .signature = (hdrs)->signature

struct hub_request tst_request(const char *method, const char *path,
                               const struct reqsig_headers *hdrs, const uint8_t *body, size_t len)
{
    struct hub_request req = {
        .method = method, .path = path, SIGNED_HEADERS(hdrs), .body = body, .body_len = len,
    };
    return req;
}

int tst_auth_get(hub *h, const char *path, const struct reqsig_headers *hdrs,
                 const uint8_t *checked_pk, int checked_ok, char who[PLAN_ID_LEN + 1], int *replay)
{
    struct hub_signed_request req = {
        .method = "GET", .path = path, SIGNED_HEADERS(hdrs),
        .checked_pk = checked_pk, .checked_ok = checked_ok,
    };
    return hub_auth_request(h, &req, who, replay);
}

void tst_device_call(struct tst_hub *e, struct tst_device *d, const char *method, const char *path,
                        const uint8_t *body, size_t len, struct reqsig_headers *hdrs,
                        struct hub_response *resp)
{
    struct hub_request req;
    if (hdrs->signature[0] == '\0')
        assert_int_equal(reqsig_sign(d->sk, d->id, method, path, body, len, hdrs), CMC_OK);
    req = tst_request(method, path, hdrs, body, len);
    hub_api_handle(e->h, &req, resp);
}

int tst_body_has(const struct hub_response *r, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; r->body != NULL && i + n <= r->body_len; i++)
        if (memcmp(r->body + i, s, n) == 0)
            return 1;
    return 0;
}

int tst_holders_cb(const struct hub_plan_holder *ph, void *ctx)
{
    struct tst_holders *l = ctx;
    if (l->n < 8) {
        snprintf(l->ids[l->n], PLAN_ID_LEN + 1, "%s", ph->device_id);
        l->purge_sent[l->n] = ph->purge_sent;
        l->version[l->n] = ph->version;
    }
    l->n++;
    return 0;
}

int tst_holders_index(const struct tst_holders *l, const char *device_id)
{
    for (int i = 0; i < l->n && i < 8; i++)
        if (strcmp(l->ids[i], device_id) == 0)
            return i;
    return -1;
}

uint8_t *tst_push_body(const char *idem, const char *plan_id, int64_t base, const char *json,
                       size_t *len)
{
    struct plan_change c;
    struct mp_writer w;
    uint8_t *packed = NULL, *out = NULL;
    size_t plen = 0;
    plan_change_init(&c);
    assert_int_equal(plan_change_from_json(json, strlen(json), &c), CMC_OK);
    assert_int_equal(plan_change_pack(&c, &packed, &plen), CMC_OK);
    plan_change_free(&c);
    uint8_t sig[CRY_SIG_BYTES];
    tst_user_sign(idem, plan_id, base, packed, plen, sig);
    mp_writer_init(&w);
    mp_write_map(&w, 6);
    mp_write_cstr(&w, "idempotency_id");
    mp_write_cstr(&w, idem);
    mp_write_cstr(&w, "plan_id");
    mp_write_cstr(&w, plan_id);
    mp_write_cstr(&w, "base_version");
    mp_write_int(&w, base);
    mp_write_cstr(&w, "change");
    mp_write_bin(&w, packed, plen);
    mp_write_cstr(&w, "user");
    mp_write_cstr(&w, TST_USER);
    mp_write_cstr(&w, "user_sig");
    mp_write_bin(&w, sig, sizeof sig);
    cmc_free(packed);
    assert_int_equal(mp_writer_finish(&w, &out, len), CMC_OK);
    return out;
}

int tst_device_send(struct tst_hub *e, struct tst_device *d, const char *method, const char *path,
                    const uint8_t *body, size_t len, struct hub_response *resp)
{
    struct reqsig_headers h;
    struct hub_response own;
    struct hub_response *r = resp != NULL ? resp : &own;
    int status;
    memset(&h, 0, sizeof h);
    tst_device_call(e, d, method, path, body, len, &h, r);
    status = r->status;
    if (resp == NULL)
        hub_response_free(&own);
    return status;
}

int tst_device_post(struct tst_hub *e, struct tst_device *d, const char *path, struct mp_writer *w)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int status;
    assert_int_equal(mp_writer_finish(w, &body, &len), CMC_OK);
    status = tst_device_send(e, d, "POST", path, body, len, NULL);
    cmc_free(body);
    return status;
}
