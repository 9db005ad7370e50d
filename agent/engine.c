#include "agent/engine.h"

#include "agent/audit.h"
#include "agent/lease.h"
#include "agent/tls_pins.h"
#include "agent/store_sync.h"
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/http.h"
#include "sync/merge.h"
#include "sync/mp.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_HUB_URL "hub_url"
#define ST_DEVICE_ID "device_id"
#define ST_DEVICE_SK "device_sk"
#define ST_HUB_PK "hub_pk"
#define ST_TLS_PIN "tls_pin"
#define ST_CA_FILE "ca_file"
#define ST_SCOPE "scope"
#define ST_DEVICE_ROLE "device_role"
#define ST_LEASE_DAYS "lease_days"
#define ST_CURSOR "cursor"
#define ST_LAST_SYNC "last_sync_at"
#define ST_HUB_TIME "hub_time"
#define ST_BULK_LOAD "bulk_load"   /* 1 while a multi-page snapshot loads without indexes */
#define ST_PURGE_ACKS "purge_acks" /* JSON array of plan ids purged here, not yet acknowledged */

/* What a sync needs from the enrollment, loaded from the replica's sync state. */
struct enrollment {
    char *hub_url;
    char device_id[PLAN_ID_LEN + 1];
    uint8_t device_uuid[BUNDLE_DEVICE_ID_BYTES];
    struct cry_secret *device_sk;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    char *tls_pin;
    char *ca_file;
};

static void enrollment_free(struct enrollment *e)
{
    cmc_free(e->hub_url);
    cmc_free(e->tls_pin);
    cmc_free(e->ca_file);
    cry_secret_free(e->device_sk);
    memset(e, 0, sizeof *e);
}


static int state_hex(store *s, const char *key, uint8_t *out, size_t len)
{
    char *v = NULL;
    int rc = store_state_get(s, key, &v);
    if (rc == CMC_OK)
        rc = cry_unhex(out, len, v);
    if (v != NULL) {
        cry_memzero(v, strlen(v));
        cmc_free(v);
    }
    return rc;
}

static int load_enrollment(store *s, struct enrollment *e)
{
    memset(e, 0, sizeof *e);
    char *id = NULL;
    int rc = store_state_get(s, ST_HUB_URL, &e->hub_url);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_STATE, "this device is not enrolled: run 'cmc-agent enroll --hub URL --code CODE'");
    if (rc != CMC_OK)
        goto out;
    if ((rc = store_state_get(s, ST_DEVICE_ID, &id)) != CMC_OK)
        goto out;
    snprintf(e->device_id, sizeof e->device_id, "%s", id);
    if ((rc = plan_uuid_bytes(e->device_id, e->device_uuid)) != CMC_OK)
        goto out;
    if ((rc = cry_secret_new(CRY_SIGN_SK_BYTES, &e->device_sk)) != CMC_OK)
        goto out;
    if ((rc = state_hex(s, ST_DEVICE_SK, e->device_sk->buf, CRY_SIGN_SK_BYTES)) != CMC_OK)
        goto out;
    if ((rc = state_hex(s, ST_HUB_PK, e->hub_pk, CRY_SIGN_PK_BYTES)) != CMC_OK)
        goto out;
    if (store_state_get(s, ST_TLS_PIN, &e->tls_pin) != CMC_OK)
        e->tls_pin = NULL;
    if (store_state_get(s, ST_CA_FILE, &e->ca_file) != CMC_OK)
        e->ca_file = NULL;
out:
    cmc_free(id);
    if (rc != CMC_OK) {
        if (rc == CMC_ERR_INVALID || rc == CMC_ERR_NOT_FOUND)
            rc = cmc_fail(CMC_ERR_TAMPERED, "the enrollment kept in the replica is damaged");
        enrollment_free(e);
    }
    return rc;
}

int engine_enrolled(store *s)
{
    char *v = NULL;
    int rc = store_state_get(s, ST_DEVICE_ID, &v);
    cmc_free(v);
    return rc == CMC_OK;
}

static int client_for(const struct enrollment *e, const struct engine_config *cfg, http_client **out)
{
    struct http_options opt = {
        .base_url = e->hub_url,
        .ca_file = e->ca_file != NULL && e->ca_file[0] != '\0' ? e->ca_file : NULL,
        .pinned_pubkey = e->tls_pin != NULL && e->tls_pin[0] != '\0' ? e->tls_pin : NULL,
        .max_attempts = cfg->max_attempts,
        .user_agent = "cmc-agent",
    };
    int rc = http_client_new(&opt, out);
    if (rc == CMC_OK && (rc = http_client_set_device(*out, e->device_id, e->device_sk)) != CMC_OK) {
        http_client_free(*out);
        *out = NULL;
    }
    return rc;
}

static void add_stats(struct engine_report *r, http_client *c)
{
    struct http_stats st;
    http_client_stats(c, &st);
    r->bytes_received = st.bytes_received;
    r->bytes_sent = st.bytes_sent;
    r->requests = st.requests;
    r->connections = st.connections;
}

/* ---- msgpack maps from the hub ---------------------------------------------------------- */

struct kv_reader {
    struct mp_reader r;
    uint32_t n;
};

static int read_key(struct mp_reader *r, char *key, size_t cap)
{
    const char *k;
    uint32_t klen;
    int rc = mp_read_str(r, 64, &k, &klen);
    if (rc != CMC_OK)
        return rc;
    if (klen >= cap)
        return cmc_fail(CMC_ERR_PROTOCOL, "hub answer has an over-long key");
    memcpy(key, k, klen);
    key[klen] = '\0';
    return CMC_OK;
}

static int read_str_into(struct mp_reader *r, char *out, size_t cap)
{
    const char *v;
    uint32_t len;
    int rc = mp_read_str(r, (uint32_t)cap - 1, &v, &len);
    if (rc != CMC_OK)
        return rc;
    memcpy(out, v, len);
    out[len] = '\0';
    return CMC_OK;
}

/* ---- enrollment ------------------------------------------------------------------------- */

static int copy_ca(const struct engine_config *cfg, const char *ca_file, char *dst, size_t cap)
{
    uint8_t *pem = NULL;
    size_t len = 0;
    int rc = plat_read_file(ca_file, 1u << 20, &pem, &len);
    if (rc != CMC_OK)
        return cmc_fail(rc == CMC_ERR_NOT_FOUND ? CMC_ERR_USAGE : rc, "cannot read the CA file %s", ca_file);
    if ((rc = plat_path_join(dst, cap, cfg->dir, "hub-ca.pem")) == CMC_OK)
        rc = plat_write_atomic(dst, pem, len);
    cmc_free(pem);
    return rc;
}

int engine_enroll(store *s, const struct engine_config *cfg, const char *hub_url, const char *code,
                  const char *ca_file, const char *device_name)
{
    if (engine_enrolled(s))
        return cmc_fail(CMC_ERR_EXISTS, "this device is already enrolled; a wiped or new replica is needed to enroll again");
    char ca_copy[4200] = "";
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk = NULL;
    http_client *client = NULL;
    struct http_response resp;
    http_response_init(&resp);
    uint8_t *body = NULL;
    size_t body_len = 0;
    char sk_hex[CRY_SIGN_SK_BYTES * 2 + 1];
    int rc;
    if (ca_file != NULL && (rc = copy_ca(cfg, ca_file, ca_copy, sizeof ca_copy)) != CMC_OK)
        return rc;
    if ((rc = cry_sign_keypair(pk, &sk)) != CMC_OK)
        goto out;
    struct http_options opt = {
        .base_url = hub_url,
        .ca_file = ca_copy[0] ? ca_copy : NULL,
        .capture_pin = 1,
        .max_attempts = cfg->max_attempts,
    };
    if ((rc = http_client_new(&opt, &client)) != CMC_OK)
        goto out;
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 3);
    mp_write_cstr(&w, "code");
    mp_write_cstr(&w, code);
    mp_write_cstr(&w, "device_pk");
    mp_write_bin(&w, pk, sizeof pk);
    mp_write_cstr(&w, "name");
    mp_write_cstr(&w, device_name);
    if ((rc = mp_writer_finish(&w, &body, &body_len)) != CMC_OK)
        goto out;
    rc = http_request(client, "POST", "/v1/enroll", NULL, body, body_len, HTTP_NO_SIGN | HTTP_NO_RETRY, &resp);
    if (rc != CMC_OK) {
        if (resp.hub_message[0] != '\0')
            rc = cmc_fail(rc, "the hub refused enrollment: %s", resp.hub_message);
        goto out;
    }
    /* {"device_id", "hub_pk", "scope", "role", "lease_days", "hub_time"} */
    char device_id[PLAN_ID_LEN + 1] = "", scope[128] = "", role[32] = "";
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    int have_pk = 0;
    int64_t lease_days = 0, hub_time = 0;
    struct mp_reader r;
    uint32_t n;
    mp_reader_init(&r, resp.body, resp.body_len, 4);
    if ((rc = mp_read_map(&r, 32, &n)) != CMC_OK)
        goto bad_answer;
    for (uint32_t i = 0; i < n; i++) {
        char key[32];
        if ((rc = read_key(&r, key, sizeof key)) != CMC_OK)
            goto bad_answer;
        if (strcmp(key, "device_id") == 0)
            rc = read_str_into(&r, device_id, sizeof device_id);
        else if (strcmp(key, "scope") == 0)
            rc = read_str_into(&r, scope, sizeof scope);
        else if (strcmp(key, "role") == 0)
            rc = read_str_into(&r, role, sizeof role);
        else if (strcmp(key, "lease_days") == 0)
            rc = mp_read_int(&r, &lease_days);
        else if (strcmp(key, "hub_time") == 0)
            rc = mp_read_int(&r, &hub_time);
        else if (strcmp(key, "hub_pk") == 0) {
            const uint8_t *b;
            uint32_t blen;
            rc = mp_read_bin(&r, CRY_SIGN_PK_BYTES, &b, &blen);
            if (rc == CMC_OK && blen != CRY_SIGN_PK_BYTES)
                rc = cmc_fail(CMC_ERR_PROTOCOL, "hub key has the wrong length");
            if (rc == CMC_OK) {
                memcpy(hub_pk, b, sizeof hub_pk);
                have_pk = 1;
            }
        } else
            rc = mp_skip(&r);
        if (rc != CMC_OK)
            goto bad_answer;
    }
    mp_leave(&r);
    uint8_t check[16];
    if (!have_pk || plan_uuid_bytes(device_id, check) != CMC_OK)
        goto bad_answer;

    char pin[HTTP_PIN_MAX] = "";
    if (strncmp(hub_url, "https://", 8) == 0 && (rc = http_client_peer_pin(client, pin)) != CMC_OK)
        goto out;
    char pk_hex[CRY_SIGN_PK_BYTES * 2 + 1];
    cry_hex(pk_hex, hub_pk, sizeof hub_pk);
    cry_hex(sk_hex, sk->buf, CRY_SIGN_SK_BYTES);
    if ((rc = store_batch_begin(s)) != CMC_OK)
        goto out;
    if ((rc = store_state_set(s, ST_HUB_URL, hub_url)) != CMC_OK || (rc = store_state_set(s, ST_DEVICE_ID, device_id)) != CMC_OK ||
        (rc = store_state_set(s, ST_DEVICE_SK, sk_hex)) != CMC_OK || (rc = store_state_set(s, ST_HUB_PK, pk_hex)) != CMC_OK ||
        (rc = store_state_set(s, ST_TLS_PIN, pin)) != CMC_OK || (rc = store_state_set(s, ST_CA_FILE, ca_copy)) != CMC_OK ||
        (rc = store_state_set(s, ST_SCOPE, scope)) != CMC_OK || (rc = store_state_set(s, ST_DEVICE_ROLE, role)) != CMC_OK ||
        (rc = store_state_set_int(s, ST_LEASE_DAYS, lease_days)) != CMC_OK ||
        (rc = store_state_set_int(s, ST_HUB_TIME, hub_time)) != CMC_OK || (rc = store_state_set_int(s, ST_CURSOR, 0)) != CMC_OK ||
        (rc = lease_note_sync(s, hub_time > 0 ? hub_time : plat_wall_now())) != CMC_OK) {
        store_batch_rollback(s);
        goto out;
    }
    rc = store_batch_commit(s);
    goto out;
bad_answer:
    rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub's enrollment answer is malformed");
out:
    cry_memzero(sk_hex, sizeof sk_hex);
    cmc_free(body);
    http_response_free(&resp);
    http_client_free(client);
    cry_secret_free(sk);
    return rc;
}

/* ---- pending edits meeting a newer version ------------------------------------------------ */

/* Removes metadata ops (status, version, approval...) from a diff: an edit never carries them. */
static void strip_meta(struct plan_change *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n_ops; i++) {
        if (c->ops[i].field->flags & PLAN_FF_META) {
            const struct plan_field *f = c->ops[i].field;
            if (c->ops[i].item != NULL) {
                plan_item_free(f->list, c->ops[i].item);
                cmc_free(c->ops[i].item);
            }
            cmc_free(c->ops[i].item_id);
            continue;
        }
        c->ops[k++] = c->ops[i];
    }
    c->n_ops = k;
}

/* The plan with every pending edit applied, and the base they were made on. */
static int local_view(store *s, const struct store_pending *pend, size_t n, struct plan *base, struct plan *local)
{
    plan_init(base);
    plan_init(local);
    int rc = store_pending_base(s, pend[0].id, base);
    if (rc == CMC_OK)
        rc = plan_copy(local, base);
    for (size_t i = 0; rc == CMC_OK && i < n; i++) {
        struct plan_change c;
        plan_change_init(&c);
        rc = plan_change_unpack(pend[i].change, pend[i].change_len, &c);
        if (rc == CMC_OK)
            rc = plan_change_apply(local, &c);
        plan_change_free(&c);
    }
    if (rc != CMC_OK) {
        plan_free(base);
        plan_free(local);
    }
    return rc;
}

/* Rebases the edits in `merged` (relative to `remote`) as one pending edit on `remote`. */
static int rebase_pending(store *s, const char *plan_id, const struct plan *remote, const struct plan *merged)
{
    struct plan_change diff;
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = plan_change_diff(remote, merged, &diff);
    if (rc != CMC_OK)
        return rc;
    strip_meta(&diff);
    if (diff.n_ops > 0)
        rc = plan_change_pack(&diff, &packed, &len);
    if (rc == CMC_OK)
        rc = store_pending_replace(s, plan_id, remote, packed, diff.n_ops > 0 ? len : 0);
    plan_change_free(&diff);
    cmc_free(packed);
    return rc;
}

/* A newer version `remote` met the unpushed edits of its plan: merge three ways. */
static int merge_pending(store *s, const struct plan *remote, struct engine_report *rep)
{
    struct store_pending *pend = NULL;
    size_t n = 0;
    int rc = store_pending_settle(s, remote->plan_id, remote->version, NULL);
    if (rc == CMC_OK)
        rc = store_sync_pending_list(s, remote->plan_id, &pend, &n);
    if (rc != CMC_OK || n == 0)
        goto out;
    /* edits already with the hub, or already held by a conflict, wait for the hub's answer
     * or the clinician */
    for (size_t i = 0; i < n; i++)
        if (pend[i].state != 0 || pend[i].base_version >= remote->version)
            goto out;
    struct plan base, local, merged;
    if ((rc = local_view(s, pend, n, &base, &local)) != CMC_OK)
        goto out;
    struct merge_conflict *conflicts = NULL;
    size_t n_conflicts = 0;
    rc = plan_merge3(&base, &local, remote, &merged, &conflicts, &n_conflicts);
    int merged_ok = rc == CMC_OK;
    if (rc == CMC_OK && n_conflicts == 0) {
        rc = rebase_pending(s, remote->plan_id, remote, &merged);
        rep->rebased++;
    } else if (rc == CMC_OK) {
        rc = store_merge_put(s, remote->plan_id, &base, &local, remote);
        for (size_t i = 0; rc == CMC_OK && i < n; i++)
            rc = store_pending_set_state(s, pend[i].id, 2);
        rep->conflicts++;
    }
    if (merged_ok)
        plan_free(&merged);
    cmc_free(conflicts);
    plan_free(&base);
    plan_free(&local);
out:
    store_pending_free(pend, n);
    return rc;
}

/* ---- purge acknowledgements ------------------------------------------------------------ */

/* Notes a purge for acknowledgement, in the purge's own transaction: the hub hears of it
 * only once it is durable. */
static int note_purge(store *s, const char *plan_id)
{
    char *text = NULL;
    json_t *arr = NULL;
    if (store_state_get(s, ST_PURGE_ACKS, &text) == CMC_OK)
        arr = json_loads(text, 0, NULL);
    cmc_err_clear();
    cmc_free(text);
    if (!json_is_array(arr)) {
        json_decref(arr);
        arr = json_array();
    }
    int rc = CMC_OK;
    char *out = NULL;
    if (arr == NULL || json_array_append_new(arr, json_string(plan_id)) != 0 || (out = json_dumps(arr, JSON_COMPACT)) == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
    if (rc == CMC_OK)
        rc = store_state_set(s, ST_PURGE_ACKS, out);
    free(out);
    json_decref(arr);
    return rc;
}

static int send_purge_acks(store *s, http_client *client)
{
    char *text = NULL;
    if (store_state_get(s, ST_PURGE_ACKS, &text) != CMC_OK) {
        cmc_err_clear();
        return CMC_OK;
    }
    json_t *arr = json_loads(text, 0, NULL);
    cmc_free(text);
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (n == 0) {
        json_decref(arr);
        return CMC_OK;
    }
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "purges");
    mp_write_array(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        mp_write_cstr(&w, json_string_value(json_array_get(arr, i)));
    json_decref(arr);
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = mp_writer_finish(&w, &body, &len);
    if (rc == CMC_OK)
        rc = http_request(client, "POST", "/v1/ack", NULL, body, len, 0, &resp);
    if (rc == CMC_OK)
        rc = store_state_set(s, ST_PURGE_ACKS, "[]");
    cmc_free(body);
    http_response_free(&resp);
    return rc;
}

/* ---- audit upload -------------------------------------------------------------------------- */

static int upload_audit(store *s, http_client *client)
{
    for (int round = 0; round < 100; round++) {
        struct audit_entry *v = NULL;
        size_t n = 0;
        int rc = audit_unsent(s, 1000, &v, &n);
        if (rc != CMC_OK || n == 0) {
            cmc_free(v);
            return rc;
        }
        struct mp_writer w;
        mp_writer_init(&w);
        mp_write_map(&w, 1);
        mp_write_cstr(&w, "entries");
        mp_write_array(&w, (uint32_t)n);
        for (size_t i = 0; i < n && rc == CMC_OK; i++) {
            uint8_t *e = NULL;
            size_t elen = 0;
            if ((rc = audit_entry_pack(&v[i], &e, &elen)) == CMC_OK)
                mp_write_raw(&w, e, elen);
            cmc_free(e);
        }
        cmc_free(v);
        uint8_t *body = NULL;
        size_t len = 0;
        struct http_response resp;
        http_response_init(&resp);
        if (rc == CMC_OK)
            rc = mp_writer_finish(&w, &body, &len);
        else
            mp_writer_discard(&w);
        if (rc == CMC_OK)
            rc = http_request(client, "POST", "/v1/audit", NULL, body, len, 0, &resp);
        if (rc != CMC_OK && resp.status == 400)
            rc = cmc_fail(CMC_ERR_REFUSED, "the hub refused this device's audit log: %s", resp.hub_message);
        int64_t acked = -1;
        if (rc == CMC_OK) {
            struct mp_reader r;
            uint32_t nk;
            mp_reader_init(&r, resp.body, resp.body_len, 4);
            rc = mp_read_map(&r, 8, &nk);
            for (uint32_t i = 0; rc == CMC_OK && i < nk; i++) {
                char key[32];
                if ((rc = read_key(&r, key, sizeof key)) != CMC_OK)
                    break;
                if (strcmp(key, "acked_seq") == 0)
                    rc = mp_read_int(&r, &acked);
                else
                    rc = mp_skip(&r);
            }
            if (rc != CMC_OK || acked < 0)
                rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub's answer to the audit upload is malformed");
        }
        cmc_free(body);
        http_response_free(&resp);
        if (rc == CMC_OK && (rc = store_batch_begin(s)) == CMC_OK) {
            rc = audit_prune(s, acked);
            if (rc == CMC_OK)
                rc = store_batch_commit(s);
            else
                store_batch_rollback(s);
        }
        if (rc != CMC_OK)
            return rc;
    }
    return CMC_OK;
}

/* ---- pull ---------------------------------------------------------------------------------- */

/* What applying one bundle needs to know once, not per op. */
struct apply_ctx {
    int has_pending; /* the replica holds pending edits: puts may need a merge */
    int snapshot;    /* a snapshot page: the plans are new here, nothing older to prune */
};

/* `packed`: the plan's bytes as received (a put op), or NULL (a plan rebuilt from a delta). */
static int apply_put(store *s, const struct apply_ctx *ax, const struct plan *p,
                     const uint8_t *packed, size_t packed_len, uint64_t seq,
                     struct engine_report *rep)
{
    int rc = packed != NULL ? store_put_packed(s, p, packed, packed_len, (int64_t)seq)
                            : store_put_version(s, p, (int64_t)seq);
    if (rc == CMC_ERR_DENIED)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a plan that is not approved to a device that holds "
                                          "published plans only; the bundle was refused");
    if (rc == CMC_ERR_STATE) {
        /* a tombstone: this plan was purged here after that change; an old bundle replayed */
        rep->skipped_replays++;
        return CMC_OK;
    }
    if (rc == CMC_OK && ax->has_pending)
        rc = merge_pending(s, p, rep);
    if (rc == CMC_OK && !ax->snapshot)
        rc = store_sync_prune(s, p->plan_id);
    return rc;
}

static int apply_delta(store *s, const struct apply_ctx *ax, const struct bundle_op *op,
                       struct engine_report *rep)
{
    struct plan p;
    int rc = store_sync_version_get(s, op->plan_id, op->base_version, &p);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a change against a version this device does not hold");
    if (rc != CMC_OK)
        return rc;
    rc = plan_change_apply(&p, &op->change);
    if (rc == CMC_OK && strcmp(p.plan_id, op->plan_id) != 0)
        rc = cmc_fail(CMC_ERR_PROTOCOL, "a change names another plan");
    if (rc == CMC_OK)
        rc = apply_put(s, ax, &p, NULL, 0, op->seq, rep);
    plan_free(&p);
    return rc;
}

/* Carries out a signed wipe order: crypto-erase first (the replica is unreadable from that
 * moment), then a marker so every later command says the device was wiped. */
static int wipe_now(const struct engine_config *cfg)
{
    int rc = cry_slots_destroy(cfg->slots_path);
    char marker[4200];
    if (plat_path_join(marker, sizeof marker, cfg->dir, "WIPED") == CMC_OK) {
        char when[21];
        plat_format_time(plat_wall_now(), when);
        plat_write_atomic(marker, when, strlen(when));
    }
    return rc;
}

/* The replica's committed cursor: 0 before its first bundle. */
static int stored_cursor(store *s, int64_t *cursor)
{
    int rc = store_state_get_int(s, ST_CURSOR, cursor);
    if (rc == CMC_ERR_NOT_FOUND) {
        *cursor = 0;
        cmc_err_clear();
        rc = CMC_OK;
    }
    return rc;
}

/* Applies one verified, decoded page that continues from the replica's cursor. The page's
 * ops and the new cursor go into the open batch (begun here when *in_batch is 0); the batch
 * is committed unless `keep_open` and the page carried no purge, in which case it stays open
 * for the next page (*in_batch 1). On an error the batch is rolled back. */
static int apply_page(store *s, const struct engine_config *cfg, const struct bundle_header *hdr,
                      const struct bundle_op *ops, size_t n_ops, int keep_open, int *in_batch,
                      struct engine_report *rep)
{
    int64_t cursor = 0;
    int purged = 0;
    int rc = stored_cursor(s, &cursor);
    if (rc != CMC_OK)
        goto out;
    if (hdr->from_cursor != (uint64_t)cursor || hdr->to_cursor < hdr->from_cursor) {
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the bundle does not continue from this device's cursor (%lld)",
                      (long long)cursor);
        goto out;
    }
    if (hdr->flags & BUNDLE_FLAG_ROLLBACK) {
        rep->rollback = 1;
        plat_log(PLAT_LOG_WARN, "sync: the hub reports this replica was restored from an older copy; repairing");
    }
    for (size_t i = 0; i < n_ops; i++)
        if (ops[i].kind == BUNDLE_OP_WIPE) {
            rc = wipe_now(cfg);
            rep->wiped = 1;
            if (rc == CMC_OK)
                rc = cmc_fail(CMC_ERR_WIPED, "the hub ordered this device wiped: its keys are destroyed");
            goto out;
        }
    if (!*in_batch) {
        if ((rc = store_batch_begin(s)) != CMC_OK)
            goto out;
        *in_batch = 1;
    }
    /* A snapshot (the hub marks its first page) that spans pages loads without secondary
     * indexes until its last page, which builds them again. The state survives an
     * interruption; store_open rebuilds the indexes meanwhile. */
    int64_t bulk = 0;
    if (store_state_get_int(s, ST_BULK_LOAD, &bulk) != CMC_OK) {
        bulk = 0;
        cmc_err_clear();
    }
    struct apply_ctx ax = { .snapshot = (hdr->flags & BUNDLE_FLAG_SNAPSHOT) != 0 || bulk };
    int bulk_continues = ax.snapshot && (hdr->flags & BUNDLE_FLAG_MORE);
    if ((rc = store_sync_has_pending(s, &ax.has_pending)) != CMC_OK)
        goto out;
    if (bulk_continues && (rc = store_bulk_begin(s)) == CMC_OK)
        rc = store_state_set_int(s, ST_BULK_LOAD, 1);
    if (rc != CMC_OK)
        goto out;
    plat_crash_point("apply:begin");
    for (size_t i = 0; rc == CMC_OK && i < n_ops; i++) {
        const struct bundle_op *op = &ops[i];
        if (i == n_ops / 2)
            plat_crash_point("apply:mid-ops");
        switch (op->kind) {
        case BUNDLE_OP_PUT:
            rc = apply_put(s, &ax, &op->plan, op->packed, op->packed_len, op->seq, rep);
            rep->puts++;
            break;
        case BUNDLE_OP_DELTA:
            rc = apply_delta(s, &ax, op, rep);
            rep->deltas++;
            break;
        case BUNDLE_OP_PURGE: {
            int discarded = 0;
            rc = store_purge(s, op->plan_id, op->reason, (int64_t)op->seq, &discarded);
            if (rc == CMC_OK)
                rc = store_merge_delete(s, op->plan_id);
            if (rc == CMC_OK)
                rc = note_purge(s, op->plan_id);
            rep->purges++;
            rep->discarded_edits += (uint64_t)discarded;
            purged = 1;
            break;
        }
        case BUNDLE_OP_POLICY:
            /* the hub's current offline lease, signed like everything else in the bundle */
            rc = store_state_set_int(s, "lease_days", op->lease_days);
            break;
        case BUNDLE_OP_WIPE:
            break;
        }
    }
    if (rc == CMC_OK && !bulk_continues && bulk) {
        rc = store_bulk_end(s);
        if (rc == CMC_OK)
            rc = store_state_set_int(s, ST_BULK_LOAD, 0);
    }
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_CURSOR, (int64_t)hdr->to_cursor);
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_HUB_TIME, hdr->hub_time);
    if (rc == CMC_OK && keep_open && !purged)
        goto done;
    plat_crash_point("apply:before-commit");
    if (rc == CMC_OK) {
        rc = store_batch_commit(s);
        *in_batch = 0;
    }
    plat_crash_point("apply:after-commit");
    if (rc == CMC_OK && purged)
        rc = store_checkpoint(s); /* purged pages leave the WAL too (promise 3) */
done:
    if (rc == CMC_OK) {
        rep->pages++;
        rep->cursor = (int64_t)hdr->to_cursor;
        rep->hub_time = hdr->hub_time;
    }
out:
    if (rc != CMC_OK && *in_batch) {
        store_batch_rollback(s);
        *in_batch = 0;
    }
    return rc;
}

/* The hub's signature and this device's id, checked before anything is inflated or
 * decoded (promise 4). */
static int check_bundle(const uint8_t hub_pk[CRY_SIGN_PK_BYTES], const uint8_t device_uuid[16],
                        const uint8_t *buf, size_t len, struct bundle_header *hdr)
{
    int rc = bundle_verify(buf, len, hub_pk, hdr);
    if (rc == CMC_OK && memcmp(hdr->device_id, device_uuid, BUNDLE_DEVICE_ID_BYTES) != 0)
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub sent a bundle addressed to another device");
    return rc;
}

int engine_apply_bundle(store *s, const struct engine_config *cfg, const uint8_t hub_pk[CRY_SIGN_PK_BYTES],
                        const uint8_t device_uuid[16], const uint8_t *buf, size_t len, int *more,
                        struct engine_report *rep)
{
    struct bundle_op *ops = NULL;
    size_t n_ops = 0;
    struct bundle_header hdr;
    int in_batch = 0;
    *more = 0;
    int rc = check_bundle(hub_pk, device_uuid, buf, len, &hdr);
    if (rc == CMC_OK)
        rc = bundle_decode(buf, len, &hdr, &ops, &n_ops);
    if (rc == CMC_OK)
        rc = apply_page(s, cfg, &hdr, ops, n_ops, 0, &in_batch, rep);
    if (rc == CMC_OK)
        *more = (hdr.flags & BUNDLE_FLAG_MORE) != 0;
    bundle_ops_free(ops, n_ops);
    return rc;
}

/* ---- the pull pipeline ------------------------------------------------------------------ */

/* A page on its way through the pipeline: downloaded and verified (body), then decoded
 * (ops). Errors travel with it; the detail is copied because it is kept per thread. */
struct page {
    int rc;
    char err[512];
    struct bundle_header hdr;
    uint8_t *body;
    size_t len;
    struct bundle_op *ops;
    size_t n_ops;
};

static void page_free(struct page *pg)
{
    cmc_free(pg->body);
    bundle_ops_free(pg->ops, pg->n_ops);
    memset(pg, 0, sizeof *pg);
}

static void page_fail(struct page *pg, int rc)
{
    pg->rc = rc;
    snprintf(pg->err, sizeof pg->err, "%s", cmc_errmsg());
}

/* Three stages, each on its own thread, with room for one page between them: the download
 * (the hub builds the next page while this device decodes one and writes another), the
 * decode, and the apply on the calling thread. The hub takes only `applied`, the cursor this
 * replica has committed, as proof of what it holds; pages fetched ahead are unproven until
 * a later request names them (docs/PROTOCOL.md). */
struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_client *client;
    const struct enrollment *e;
    const struct engine_config *cfg;
    int64_t cursor;      /* where the download starts */
    unsigned max_pages;  /* 0: until the hub has no more */
    int64_t applied;     /* the committed cursor, named in each request */
    struct page raw, dec, spent;
    int has_raw, has_dec, has_spent;
    int stop, dl_done, dec_done;
};

/* GET /v1/pull from `cursor` for a replica that has committed `applied`. */
static void pull_path(char *out, size_t cap, const struct engine_config *cfg, int64_t cursor,
                      int64_t applied)
{
    int n = snprintf(out, cap, "/v1/pull?cursor=%lld", (long long)cursor);
    if (applied != cursor && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "&applied=%lld", (long long)applied);
    if (cfg->page_budget > 0 && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "&budget=%u", cfg->page_budget);
}

/* Waits until the slot is free (or the pipeline stops), then fills it. 0: stopped, the page
 * was not taken. */
static int pipe_put(struct pipeline *pp, struct page *slot, int *full, struct page *pg)
{
    pthread_mutex_lock(&pp->mu);
    while (*full && !pp->stop)
        pthread_cond_wait(&pp->cv, &pp->mu);
    int taken = !pp->stop;
    if (taken) {
        *slot = *pg;
        *full = 1;
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    return taken;
}

/* Waits for a page in the slot. 0: none will come (the stage before is done, or stopped). */
static int pipe_take(struct pipeline *pp, struct page *slot, int *full, const int *before_done,
                     struct page *out)
{
    pthread_mutex_lock(&pp->mu);
    while (!*full && !*before_done && !pp->stop)
        pthread_cond_wait(&pp->cv, &pp->mu);
    int got = *full && !pp->stop;
    if (got) {
        *out = *slot;
        memset(slot, 0, sizeof *slot);
        *full = 0;
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    return got;
}

static void pipe_done(struct pipeline *pp, int *flag)
{
    pthread_mutex_lock(&pp->mu);
    *flag = 1;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

static void *download_thread(void *arg)
{
    struct pipeline *pp = arg;
    int64_t cursor = pp->cursor;
    for (unsigned pages = 1;; pages++) {
        struct http_response resp;
        struct page pg;
        char path[128];
        memset(&pg, 0, sizeof pg);
        http_response_init(&resp);
        pthread_mutex_lock(&pp->mu);
        int64_t applied = pp->applied;
        int stop = pp->stop;
        pthread_mutex_unlock(&pp->mu);
        if (stop)
            break;
        pull_path(path, sizeof path, pp->cfg, cursor, applied);
        int rc = http_request(pp->client, "GET", path, NULL, NULL, 0, 0, &resp);
        if (rc == CMC_OK)
            rc = check_bundle(pp->e->hub_pk, pp->e->device_uuid, resp.body, resp.body_len,
                              &pg.hdr);
        if (rc == CMC_OK) {
            pg.body = resp.body;
            pg.len = resp.body_len;
            resp.body = NULL;
        } else {
            page_fail(&pg, rc);
        }
        http_response_free(&resp);
        int more = rc == CMC_OK && (pg.hdr.flags & BUNDLE_FLAG_MORE) &&
                   (pp->max_pages == 0 || pages < pp->max_pages);
        cursor = (int64_t)pg.hdr.to_cursor;
        if (!pipe_put(pp, &pp->raw, &pp->has_raw, &pg)) {
            page_free(&pg);
            break;
        }
        if (!more)
            break;
    }
    pipe_done(pp, &pp->dl_done);
    return NULL;
}

static void *decode_thread(void *arg)
{
    struct pipeline *pp = arg;
    struct page pg;
    while (pipe_take(pp, &pp->raw, &pp->has_raw, &pp->dl_done, &pg)) {
        if (pg.rc == CMC_OK) {
            int rc = bundle_decode(pg.body, pg.len, &pg.hdr, &pg.ops, &pg.n_ops);
            if (rc != CMC_OK)
                page_fail(&pg, rc);
        }
        cmc_free(pg.body);
        pg.body = NULL;
        int failed = pg.rc != CMC_OK;
        /* the page the applier is done with is freed here, off its thread */
        struct page spent;
        memset(&spent, 0, sizeof spent);
        pthread_mutex_lock(&pp->mu);
        if (pp->has_spent) {
            spent = pp->spent;
            memset(&pp->spent, 0, sizeof pp->spent);
            pp->has_spent = 0;
        }
        pthread_mutex_unlock(&pp->mu);
        page_free(&spent);
        if (!pipe_put(pp, &pp->dec, &pp->has_dec, &pg)) {
            page_free(&pg);
            break;
        }
        if (failed)
            break;
    }
    pipe_done(pp, &pp->dec_done);
    return NULL;
}

/* Several pages may share one transaction (fewer commits, and each index page is written
 * once per transaction instead of once per page), up to this many decoded bytes or this
 * long, so an interrupted sync still keeps most of what it fetched. A page with a purge
 * always commits at once, and so does the last page. (engine_config can set both.) */
#define GROUP_RAW_BYTES (16u * 1024u * 1024u)
#define GROUP_MS 1000u

void engine_config_paging(struct engine_config *cfg)
{
    const char *budget = getenv("CMC_PAGE_BUDGET");
    const char *group = getenv("CMC_GROUP_BYTES");
    const char *group_ms = getenv("CMC_GROUP_MS");
    cfg->page_budget = budget != NULL ? (uint32_t)strtoul(budget, NULL, 10) : ENGINE_PAGE_BUDGET;
    if (group != NULL)
        cfg->group_bytes = (uint32_t)strtoul(group, NULL, 10);
    if (group_ms != NULL)
        cfg->group_ms =
            strcmp(group_ms, "none") == 0 ? UINT32_MAX : (uint32_t)strtoul(group_ms, NULL, 10);
}

/* Pulls pages until the hub has no more (at most max_pages when nonzero), through the
 * pipeline. */
static int pull_pages(store *s, const struct engine_config *cfg, const struct enrollment *e,
                      http_client *client, unsigned max_pages, engine_progress_fn progress,
                      void *ctx, struct engine_report *rep)
{
    struct pipeline pp;
    pthread_t dl, dec;
    int in_batch = 0, started = 0;
    size_t group = 0;
    size_t group_max = cfg->group_bytes ? cfg->group_bytes : GROUP_RAW_BYTES;
    uint64_t group_ns = (uint64_t)(cfg->group_ms ? cfg->group_ms : GROUP_MS) * 1000000u;
    uint64_t group_start = plat_mono_now_ns();
    unsigned pages = 0;
    struct page cur;

    memset(&pp, 0, sizeof pp);
    memset(&cur, 0, sizeof cur);
    int rc = stored_cursor(s, &pp.cursor);
    if (rc != CMC_OK)
        return rc;
    pp.applied = pp.cursor;
    pp.client = client;
    pp.e = e;
    pp.cfg = cfg;
    pp.max_pages = max_pages;
    pthread_mutex_init(&pp.mu, NULL);
    pthread_cond_init(&pp.cv, NULL);
    if (pthread_create(&dl, NULL, download_thread, &pp) != 0) {
        rc = cmc_fail(CMC_ERR_NOMEM, "sync: cannot start the download thread");
        goto out;
    }
    started = 1;
    if (pthread_create(&dec, NULL, decode_thread, &pp) != 0) {
        rc = cmc_fail(CMC_ERR_NOMEM, "sync: cannot start the decoding thread");
        goto out;
    }
    started = 2;
    while (pipe_take(&pp, &pp.dec, &pp.has_dec, &pp.dec_done, &cur)) {
        if (cur.rc != CMC_OK) {
            rc = cmc_fail(cur.rc, "%s", cur.err);
            break;
        }
        pages++;
        int more = (cur.hdr.flags & BUNDLE_FLAG_MORE) && (max_pages == 0 || pages < max_pages);
        group += cur.hdr.raw_len;
        /* A page that moved nothing waits for this device to prove an earlier one (the hub
         * sends a plan again only after the page that last carried it is proven): commit. */
        int keep_open = more && cur.hdr.to_cursor > cur.hdr.from_cursor && group < group_max &&
                        (cfg->group_ms == UINT32_MAX ||
                         plat_mono_now_ns() - group_start < group_ns);
        rc = apply_page(s, cfg, &cur.hdr, cur.ops, cur.n_ops, keep_open, &in_batch, rep);
        if (rc == CMC_OK && !in_batch) {
            group = 0;
            group_start = plat_mono_now_ns();
            pthread_mutex_lock(&pp.mu);
            pp.applied = (int64_t)cur.hdr.to_cursor;
            pthread_mutex_unlock(&pp.mu);
        }
        /* freed by the decoding thread, unless it already has one to free */
        pthread_mutex_lock(&pp.mu);
        if (!pp.has_spent) {
            pp.spent = cur;
            pp.has_spent = 1;
            memset(&cur, 0, sizeof cur);
        }
        pthread_mutex_unlock(&pp.mu);
        page_free(&cur);
        if (rc == CMC_OK && progress != NULL)
            progress(ctx, rep, more);
        if (rc != CMC_OK || !more)
            break;
        plat_test_delay();
    }
out:
    pthread_mutex_lock(&pp.mu);
    pp.stop = 1;
    pthread_cond_broadcast(&pp.cv);
    pthread_mutex_unlock(&pp.mu);
    if (started >= 1)
        pthread_join(dl, NULL);
    if (started >= 2)
        pthread_join(dec, NULL);
    page_free(&cur);
    page_free(&pp.raw);
    page_free(&pp.dec);
    page_free(&pp.spent);
    pthread_cond_destroy(&pp.cv);
    pthread_mutex_destroy(&pp.mu);
    add_stats(rep, client);
    if (in_batch)
        store_batch_rollback(s);
    return rc;
}

/* ---- push ------------------------------------------------------------------------------------ */

/* Several unpushed edits of one plan go to the hub as one draft: squash them. */
static int squash_pending(store *s, const char *plan_id)
{
    struct store_pending *pend = NULL;
    size_t n = 0;
    int rc = store_sync_pending_list(s, plan_id, &pend, &n);
    if (rc != CMC_OK || n < 2)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (pend[i].state != 0)
            goto out;
    struct plan base, local;
    if ((rc = local_view(s, pend, n, &base, &local)) != CMC_OK)
        goto out;
    rc = rebase_pending(s, plan_id, &base, &local);
    plan_free(&base);
    plan_free(&local);
out:
    store_pending_free(pend, n);
    return rc;
}

struct push_answer {
    char result[16];
    int64_t version;
    struct plan current;
    int have_current;
};

static int parse_push_answer(const struct http_response *resp, struct push_answer *a)
{
    memset(a, 0, sizeof *a);
    plan_init(&a->current);
    struct mp_reader r;
    uint32_t n;
    mp_reader_init(&r, resp->body, resp->body_len, 4);
    int rc = mp_read_map(&r, 16, &n);
    for (uint32_t i = 0; rc == CMC_OK && i < n; i++) {
        char key[32];
        if ((rc = read_key(&r, key, sizeof key)) != CMC_OK)
            break;
        if (strcmp(key, "result") == 0)
            rc = read_str_into(&r, a->result, sizeof a->result);
        else if (strcmp(key, "version") == 0)
            rc = mp_read_int(&r, &a->version);
        else if (strcmp(key, "current") == 0 && mp_peek(&r) == MP_T_BIN) {
            const uint8_t *b;
            uint32_t blen;
            rc = mp_read_bin(&r, PLAN_MAX_ENCODED, &b, &blen);
            if (rc == CMC_OK && (rc = plan_unpack(b, blen, &a->current)) == CMC_OK)
                a->have_current = 1;
        } else
            rc = mp_skip(&r);
    }
    if (rc != CMC_OK) {
        plan_free(&a->current);
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub's answer to a pushed edit is malformed");
    }
    return CMC_OK;
}

static int push_one(store *s, http_client *client, const struct store_pending *p, struct engine_report *rep)
{
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    struct push_answer ans;
    memset(&ans, 0, sizeof ans);
    plan_init(&ans.current);
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 4);
    mp_write_cstr(&w, "idempotency_id");
    mp_write_cstr(&w, p->idempotency_id);
    mp_write_cstr(&w, "plan_id");
    mp_write_cstr(&w, p->plan_id);
    mp_write_cstr(&w, "base_version");
    mp_write_int(&w, p->base_version);
    mp_write_cstr(&w, "change");
    mp_write_bin(&w, p->change, p->change_len);
    int rc = mp_writer_finish(&w, &body, &len);
    if (rc != CMC_OK)
        goto out;
    /* the idempotency id makes a retried push harmless */
    rc = http_request(client, "POST", "/v1/push", NULL, body, len, 0, &resp);
    plat_crash_point("push:after-send");
    if (rc == CMC_ERR_CONFLICT && resp.status == 409)
        rc = CMC_OK; /* a conflict is an answer, carried in the body */
    if (rc != CMC_OK)
        goto out;
    if ((rc = parse_push_answer(&resp, &ans)) != CMC_OK)
        goto out;
    if (strcmp(ans.result, "accepted") == 0 || strcmp(ans.result, "duplicate") == 0) {
        rc = store_pending_mark_pushed(s, p->id, ans.version);
        rep->pushed++;
    } else if (strcmp(ans.result, "conflict") == 0 && ans.have_current) {
        if ((rc = store_batch_begin(s)) != CMC_OK)
            goto out;
        rc = merge_pending(s, &ans.current, rep);
        if (rc == CMC_OK)
            rc = store_batch_commit(s);
        else
            store_batch_rollback(s);
    } else {
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub answered a pushed edit with '%s'", ans.result);
    }
out:
    plan_free(&ans.current);
    cmc_free(body);
    http_response_free(&resp);
    return rc;
}

static int push_all(store *s, http_client *client, struct engine_report *rep)
{
    /* A rebase after a conflict answer makes a new pending edit: go round a few times. */
    for (int round = 0; round < 3; round++) {
        struct store_pending *pend = NULL;
        size_t n = 0;
        int rc = store_sync_pending_list(s, NULL, &pend, &n);
        if (rc != CMC_OK)
            return rc;
        for (size_t i = 0; rc == CMC_OK && i < n; i++)
            if (pend[i].state == 0 && (i == 0 || strcmp(pend[i].plan_id, pend[i - 1].plan_id) != 0))
                rc = squash_pending(s, pend[i].plan_id);
        store_pending_free(pend, n);
        if (rc != CMC_OK)
            return rc;
        if ((rc = store_sync_pending_list(s, NULL, &pend, &n)) != CMC_OK)
            return rc;
        int sent = 0;
        for (size_t i = 0; rc == CMC_OK && i < n; i++) {
            if (pend[i].state != 0)
                continue;
            rc = push_one(s, client, &pend[i], rep);
            sent++;
        }
        store_pending_free(pend, n);
        if (rc != CMC_OK)
            return rc;
        if (sent == 0)
            return CMC_OK;
    }
    return CMC_OK;
}

/* After a verified wipe order: the key slots are already destroyed (crypto-erase); now the
 * replica's files go, then the hub hears that the order was carried out. */
static int finish_wipe(store **sp, const struct engine_config *cfg, http_client *client)
{
    static const char *const suffixes[] = { "", "-wal", "-shm" };
    store_close(*sp);
    *sp = NULL;
    for (size_t i = 0; i < 3; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", cfg->replica_path, suffixes[i]);
        plat_shred(p);
    }
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, "wipe");
    mp_write_bool(&w, 1);
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = mp_writer_finish(&w, &body, &len);
    if (rc == CMC_OK)
        rc = http_request(client, "POST", "/v1/ack", NULL, body, len, 0, &resp);
    if (rc != CMC_OK)
        plat_log(PLAT_LOG_WARN, "wipe: done, but the hub could not be told (%s)", cmc_errmsg());
    cmc_free(body);
    http_response_free(&resp);
    char ca[4300];
    if (plat_path_join(ca, sizeof ca, cfg->dir, "hub-ca.pem") == CMC_OK)
        plat_remove(ca);
    return cmc_fail(CMC_ERR_WIPED, "the hub ordered this device wiped: its keys and plans are destroyed");
}

int engine_sync(store **sp, const struct engine_config *cfg, engine_progress_fn progress, void *ctx,
                struct engine_report *rep)
{
    store *s = *sp;
    memset(rep, 0, sizeof *rep);
    struct enrollment e;
    http_client *client = NULL;
    int rc = load_enrollment(s, &e);
    if (rc != CMC_OK)
        return rc;
    if ((rc = client_for(&e, cfg, &client)) != CMC_OK)
        goto out;
    rc = pull_pages(s, cfg, &e, client, 0, progress, ctx, rep);
    if (rc == CMC_ERR_TLS && e.tls_pin != NULL && (rc = tls_pins_recover(s, e.hub_url, e.ca_file,
                                                                         e.hub_pk, &e.tls_pin)) == CMC_OK) {
        http_client_free(client); /* the hub's key changed and its signing key vouched for it */
        client = NULL;
        if ((rc = client_for(&e, cfg, &client)) == CMC_OK)
            rc = pull_pages(s, cfg, &e, client, 0, progress, ctx, rep);
    }
    if (rep->wiped) {
        rc = finish_wipe(sp, cfg, client);
        goto out;
    }
    if (rc == CMC_OK)
        rc = push_all(s, client, rep);
    if (rc == CMC_OK)
        rc = send_purge_acks(s, client);
    /* One more pull after a sync that changed anything: it proves to the hub that this
     * device committed everything up to its cursor (what lets the hub catch a replica
     * restored from an older copy later), and picks up the drafts our pushes made. */
    if (rc == CMC_OK && !rep->wiped && rep->puts + rep->deltas + rep->purges + rep->pushed > 0) {
        rc = pull_pages(s, cfg, &e, client, 64, NULL, NULL, rep);
        if (rep->wiped) {
            rc = finish_wipe(sp, cfg, client);
            goto out;
        }
    }
    /* The plans are now as fresh as the hub's: that is what the copy's age and the lease
     * measure, whatever happens to the audit upload below. */
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_LAST_SYNC, plat_wall_now());
    if (rc == CMC_OK)
        rc = lease_note_sync(s, rep->hub_time);
    if (rc == CMC_OK)
        rc = upload_audit(s, client);
    if (rc == CMC_OK && tls_pins_refresh(s, client, e.hub_pk) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "could not refresh the hub's TLS keys: %s", cmc_errmsg());
    add_stats(rep, client);
out:
    http_client_free(client);
    enrollment_free(&e);
    return rc;
}

/* ---- conflicts -------------------------------------------------------------------------------- */

static int resolve_key(store *s, const char *key, char plan_id[PLAN_ID_LEN + 1])
{
    if (strlen(key) == PLAN_ID_LEN) {
        snprintf(plan_id, PLAN_ID_LEN + 1, "%s", key);
        return CMC_OK;
    }
    struct plan p;
    int rc = store_plan_get(s, key, &p);
    if (rc == CMC_OK) {
        snprintf(plan_id, PLAN_ID_LEN + 1, "%s", p.plan_id);
        plan_free(&p);
    }
    return rc;
}

int engine_conflicts(store *s, struct engine_conflict **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (store_session_of(s)->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "conflicts hold unapproved changes: clinicians only");
    char **ids = NULL;
    size_t n_ids = 0;
    struct engine_conflict *list = NULL;
    size_t n = 0;
    int rc = store_merge_list(s, &ids, &n_ids);
    for (size_t i = 0; rc == CMC_OK && i < n_ids; i++) {
        struct plan base, local, remote, merged;
        struct merge_conflict *c = NULL;
        size_t nc = 0;
        if ((rc = store_merge_get(s, ids[i], &base, &local, &remote)) != CMC_OK)
            break;
        rc = plan_merge3(&base, &local, &remote, &merged, &c, &nc);
        if (rc == CMC_OK) {
            struct engine_conflict *grown = cmc_realloc(list, (n + nc + 1) * sizeof *list);
            if (grown == NULL)
                rc = cmc_fail(CMC_ERR_NOMEM, "out of memory");
            else
                list = grown;
            for (size_t k = 0; rc == CMC_OK && k < nc; k++) {
                struct engine_conflict *ec = &list[n++];
                memset(ec, 0, sizeof *ec);
                snprintf(ec->plan_id, sizeof ec->plan_id, "%s", remote.plan_id);
                snprintf(ec->nhs_number, sizeof ec->nhs_number, "%s", remote.nhs_number);
                snprintf(ec->path, sizeof ec->path, "%s", c[k].path);
                plan_merge_value_text(&local, &c[k], ec->local, sizeof ec->local);
                plan_merge_value_text(&remote, &c[k], ec->remote, sizeof ec->remote);
                plan_merge_value_text(&base, &c[k], ec->base, sizeof ec->base);
                ec->remote_version = remote.version;
                rc = store_merge_choice(s, ec->plan_id, ec->path, ec->chosen);
            }
            plan_free(&merged);
        }
        cmc_free(c);
        plan_free(&base);
        plan_free(&local);
        plan_free(&remote);
    }
    for (size_t i = 0; i < n_ids; i++)
        cmc_free(ids[i]);
    cmc_free(ids);
    if (rc != CMC_OK) {
        cmc_free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return CMC_OK;
}

int engine_resolve(store *s, const char *plan_key, const char *path, const char *keep)
{
    if (store_session_of(s)->role != STORE_ROLE_CLINICIAN)
        return cmc_fail(CMC_ERR_DENIED, "only a clinician can settle a conflict");
    if (strcmp(keep, "local") != 0 && strcmp(keep, "remote") != 0)
        return cmc_fail(CMC_ERR_USAGE, "--keep must be local or remote");
    char plan_id[PLAN_ID_LEN + 1];
    int rc = resolve_key(s, plan_key, plan_id);
    if (rc != CMC_OK)
        return rc;
    struct plan base, local, remote, merged;
    struct merge_conflict *c = NULL;
    size_t nc = 0;
    if ((rc = store_merge_get(s, plan_id, &base, &local, &remote)) != CMC_OK) {
        if (rc == CMC_ERR_NOT_FOUND)
            rc = cmc_fail(CMC_ERR_NOT_FOUND, "that plan has no open conflict");
        return rc;
    }
    if ((rc = plan_merge3(&base, &local, &remote, &merged, &c, &nc)) != CMC_OK)
        goto out_plans;
    if (plan_merge_find(c, nc, path) == NULL) {
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no open conflict at %s for that plan (see cmc-agent conflicts)", path);
        goto out;
    }
    if ((rc = store_batch_begin(s)) != CMC_OK)
        goto out;
    rc = store_merge_choose(s, plan_id, path, keep);
    /* Settled when every conflict has a choice: apply them and rebase the edit. */
    size_t decided = 0;
    for (size_t i = 0; rc == CMC_OK && i < nc; i++) {
        char choice[8];
        rc = store_merge_choice(s, plan_id, c[i].path, choice);
        if (rc != CMC_OK || choice[0] == '\0')
            continue;
        decided++;
        rc = plan_merge_take(&merged, strcmp(choice, "local") == 0 ? &local : &remote, &c[i]);
    }
    if (rc == CMC_OK && decided == nc) {
        rc = rebase_pending(s, plan_id, &remote, &merged);
        if (rc == CMC_OK)
            rc = store_merge_delete(s, plan_id);
    }
    if (rc == CMC_OK)
        rc = store_batch_commit(s);
    else
        store_batch_rollback(s);
out:
    plan_free(&merged);
    cmc_free(c);
out_plans:
    plan_free(&base);
    plan_free(&local);
    plan_free(&remote);
    return rc;
}
