/*
 * engine_push.c - what a device sends the hub: pending edits (push), acknowledgements of
 * purges it has made durable, and its view log (the audit upload).
 */
#include "agent/engine_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "agent/audit.h"
#include "sync/wire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if ((rc = engine_local_view(s, pend, n, &base, &local)) != CMC_OK)
        goto out;
    rc = engine_rebase_pending(s, plan_id, &base, &local);
    plan_free(&base);
    plan_free(&local);
out:
    store_pending_free(pend, n);
    return rc;
}

/* The hub's answer to a pushed edit, with a conflict's current version decoded. */
static int parse_push_answer(const struct http_response *resp, struct wire_push_ans *a, struct plan *current,
                             int *have_current)
{
    int rc = wire_push_ans_decode(resp->body, resp->body_len, a);
    *have_current = 0;
    if (rc != CMC_OK || a->current == NULL)
        return rc;
    if (plan_unpack(a->current, a->current_len, current) != CMC_OK) {
        plan_free(current);
        plan_init(current);
        return cmc_fail(CMC_ERR_PROTOCOL, "the hub's answer to a pushed edit is malformed");
    }
    *have_current = 1;
    return CMC_OK;
}

/* The person the push names: whoever signed the edit when it was made, else the clinician
 * whose session is syncing now (an edit kept from before users signed). CMC_ERR_DENIED when
 * neither can. */
static int push_author(store *s, const struct store_pending *p, struct wire_push_req *req)
{
    req->has_user = 1;
    if (p->has_sig) {
        snprintf(req->user, sizeof req->user, "%s", p->user);
        memcpy(req->user_sig, p->user_sig, sizeof req->user_sig);
        return CMC_OK;
    }
    uint8_t digest[CRY_HASH_BYTES];
    wire_push_digest(p->plan_id, p->base_version, p->idempotency_id, p->change, p->change_len, digest);
    snprintf(req->user, sizeof req->user, "%s", store_session_of(s)->user);
    return store_session_sign(s, digest, req->user_sig);
}

static int push_one(store *s, http_client *client, const struct store_pending *p, struct engine_report *rep)
{
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    struct wire_push_ans ans;
    struct plan current;
    int have_current = 0;
    plan_init(&current);
    struct wire_push_req req = { .base_version = p->base_version, .change = p->change, .change_len = p->change_len };
    snprintf(req.idempotency_id, sizeof req.idempotency_id, "%s", p->idempotency_id);
    snprintf(req.plan_id, sizeof req.plan_id, "%s", p->plan_id);
    int rc = push_author(s, p, &req);
    if (rc == CMC_ERR_DENIED) {
        /* Nobody who can sign for it is here: it waits for a clinician's sync. */
        plat_log(PLAT_LOG_INFO, "plan %s: an unsigned pending edit waits for a clinician's sync", p->plan_id);
        cmc_err_clear();
        rc = CMC_OK;
        goto out;
    }
    if (rc == CMC_OK)
        rc = wire_push_req_encode(&req, &body, &len);
    if (rc != CMC_OK)
        goto out;
    /* the idempotency id makes a retried push harmless */
    rc = http_request(client, "POST", "/v1/push", NULL, body, len, 0, &resp);
    plat_crash_point("push:after-send");
    if (rc == CMC_ERR_CONFLICT && resp.status == 409)
        rc = CMC_OK; /* a conflict is an answer, carried in the body */
    if (rc != CMC_OK && resp.status == 403) {
        /* Refused for who signed it (a user since removed, say): the edit stays pending and
         * the rest of the sync goes on. */
        plat_log(PLAT_LOG_WARN, "plan %s: the hub refused a pending edit: %s", p->plan_id,
                 resp.hub_message[0] != '\0' ? resp.hub_message : cmc_errmsg());
        rc = CMC_OK;
        goto out;
    }
    if (rc != CMC_OK)
        goto out;
    if ((rc = parse_push_answer(&resp, &ans, &current, &have_current)) != CMC_OK)
        goto out;
    if (strcmp(ans.result, "accepted") == 0 || strcmp(ans.result, "duplicate") == 0) {
        rc = store_pending_mark_pushed(s, p->id, ans.version);
        rep->pushed++;
    } else if (strcmp(ans.result, "conflict") == 0 && have_current) {
        if ((rc = store_batch_begin(s)) != CMC_OK)
            goto out;
        rc = engine_merge_pending(s, &current, rep);
        if (rc == CMC_OK)
            rc = store_batch_commit(s);
        else
            store_batch_rollback(s);
    } else {
        rc = cmc_fail(CMC_ERR_PROTOCOL, "the hub answered a pushed edit with '%s'", ans.result);
    }
out:
    plan_free(&current);
    cmc_free(body);
    http_response_free(&resp);
    return rc;
}

/* Tells the hub who this device's users are and their public signing keys (the request is
 * signed with the device's key), so it can check who signed each pushed edit. */
static int register_users(http_client *client, const char *slots_path)
{
    cry_slots *slots = NULL;
    struct wire_user v[WIRE_USERS_MAX];
    size_t n = 0;
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = cry_slots_load(slots_path, &slots);
    if (rc != CMC_OK)
        return rc;
    for (size_t i = 0; i < cry_slots_count(slots) && n < WIRE_USERS_MAX; i++) {
        const char *user, *role;
        memset(&v[n], 0, sizeof v[n]);
        if (cry_slots_user(slots, i, &user, &role) != CMC_OK || cry_slots_user_pk(slots, i, v[n].pk) != CMC_OK)
            continue; /* a slot from an older file has no signing key until its next unlock */
        snprintf(v[n].user, sizeof v[n].user, "%s", user);
        snprintf(v[n].role, sizeof v[n].role, "%s", role);
        n++;
    }
    cmc_err_clear();
    cry_slots_free(slots);
    if ((rc = wire_users_encode(v, n, &body, &len)) == CMC_OK)
        rc = http_request(client, "POST", "/v1/users", NULL, body, len, 0, &resp);
    cmc_free(body);
    http_response_free(&resp);
    return rc;
}

int engine_push_all(store *s, http_client *client, const char *slots_path, struct engine_report *rep)
{
    struct store_pending *waiting = NULL;
    size_t n_waiting = 0;
    int rc = store_sync_pending_list(s, NULL, &waiting, &n_waiting);
    if (rc != CMC_OK)
        return rc;
    size_t unsent = 0;
    for (size_t i = 0; i < n_waiting; i++)
        unsent += waiting[i].state == 0;
    store_pending_free(waiting, n_waiting);
    if (unsent == 0)
        return CMC_OK;
    if (slots_path != NULL && (rc = register_users(client, slots_path)) != CMC_OK)
        return rc;
    /* A rebase after a conflict answer makes a new pending edit: go round a few times. */
    for (int round = 0; round < 3; round++) {
        struct store_pending *pend = NULL;
        size_t n = 0;
        rc = store_sync_pending_list(s, NULL, &pend, &n);
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

/* ---- purge acknowledgements ------------------------------------------------------------ */

/* Notes a purge for acknowledgement, in the purge's own transaction: the hub hears of it
 * only once it is durable. */
int engine_note_purge(store *s, const char *plan_id)
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

int engine_send_purge_acks(store *s, http_client *client)
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
    const char **ids = cmc_calloc(n, sizeof *ids);
    for (size_t i = 0; ids != NULL && i < n; i++)
        ids[i] = json_string_value(json_array_get(arr, i));
    struct wire_ack ack = { .purges = ids, .n_purges = n };
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = ids != NULL ? wire_ack_encode(&ack, &body, &len) : cmc_fail(CMC_ERR_NOMEM, "out of memory");
    cmc_free((void *)ids);
    json_decref(arr);
    if (rc == CMC_OK)
        rc = http_request(client, "POST", "/v1/ack", NULL, body, len, 0, &resp);
    if (rc == CMC_OK)
        rc = store_state_set(s, ST_PURGE_ACKS, "[]");
    cmc_free(body);
    http_response_free(&resp);
    return rc;
}

/* ---- audit upload -------------------------------------------------------------------------- */

int engine_upload_audit(store *s, http_client *client)
{
    for (int round = 0; round < 100; round++) {
        struct audit_entry *v = NULL;
        size_t n = 0;
        struct wire_audit_state seal;
        int64_t acked_before = 0;
        memset(&seal, 0, sizeof seal);
        /* the entries and the sealing state from one snapshot: a view recorded by another
         * process in between would make them disagree, which the hub reads as a gap */
        int rc = store_batch_begin(s);
        if (rc == CMC_OK) {
            rc = audit_unsent(s, WIRE_AUDIT_BATCH, &v, &n);
            if (rc == CMC_OK)
                rc = audit_seal_state(s, &seal);
            if (rc == CMC_OK && store_state_get_int(s, "audit_acked_seq", &acked_before) != CMC_OK)
                cmc_err_clear();
            store_batch_rollback(s);
        }
        /* Sealed entries that are neither acknowledged nor here were deleted: the state goes
         * up alone, so the hub sees the gap. */
        int state_only = rc == CMC_OK && n == 0 && round == 0 && seal.present &&
                         (int64_t)seal.newest > acked_before;
        if (rc != CMC_OK || (n == 0 && !state_only)) {
            cmc_free(v);
            /* the older sealing keys go from the WAL file too (forward security) */
            if (rc == CMC_OK && round > 0)
                rc = store_checkpoint(s);
            return rc;
        }
        struct wire_audit_entry *wv = cmc_calloc(n ? n : 1, sizeof *wv);
        for (size_t i = 0; wv != NULL && i < n; i++)
            audit_to_wire(&v[i], &wv[i]);
        cmc_free(v);
        uint8_t *body = NULL;
        size_t len = 0;
        struct http_response resp;
        http_response_init(&resp);
        rc = wv != NULL ? wire_audit_upload_encode(wv, n, &seal, &body, &len)
                        : cmc_fail(CMC_ERR_NOMEM, "out of memory");
        cry_memzero(&seal, sizeof seal);
        cmc_free(wv);
        if (rc == CMC_OK)
            rc = http_request(client, "POST", "/v1/audit", NULL, body, len, 0, &resp);
        if (rc != CMC_OK && resp.status == 400)
            rc = cmc_fail(CMC_ERR_REFUSED, "the hub refused this device's audit log: %s", resp.hub_message);
        int64_t acked = -1;
        if (rc == CMC_OK)
            rc = wire_audit_ans_decode(resp.body, resp.body_len, &acked);
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

