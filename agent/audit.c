#include "agent/audit.h"

#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/mp.h"
#include "sync/wire.h"

#include <stdio.h>
#include <string.h>

#define ANCHOR_KEY "audit_anchor"         /* hex hash of the last pruned entry */
#define ANCHOR_SEQ_KEY "audit_anchor_seq" /* its seq */

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

/* M: the entry without its hash, keys in the documented order. */
static int entry_core(const struct audit_entry *e, uint8_t **out, size_t *len)
{
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 9);
    mp_write_cstr(&w, "seq");
    mp_write_uint(&w, (uint64_t)e->seq);
    mp_write_cstr(&w, "prev");
    mp_write_bin(&w, e->prev, sizeof e->prev);
    mp_write_cstr(&w, "user");
    mp_write_cstr(&w, e->user);
    mp_write_cstr(&w, "role");
    mp_write_cstr(&w, e->role);
    mp_write_cstr(&w, "plan_id");
    mp_write_cstr(&w, e->plan_id);
    mp_write_cstr(&w, "identifier");
    mp_write_cstr(&w, e->identifier);
    mp_write_cstr(&w, "action");
    mp_write_cstr(&w, e->action);
    mp_write_cstr(&w, "wall");
    mp_write_int(&w, e->wall);
    mp_write_cstr(&w, "mono");
    mp_write_int(&w, e->mono);
    return mp_writer_finish(&w, out, len);
}

static int entry_hash(const struct audit_entry *e, uint8_t out[32])
{
    struct wire_audit_entry w;
    memset(&w, 0, sizeof w);
    w.seq = (uint64_t)e->seq;
    memcpy(w.prev, e->prev, sizeof w.prev);
    copy_text(w.user, sizeof w.user, e->user);
    copy_text(w.role, sizeof w.role, e->role);
    copy_text(w.plan_id, sizeof w.plan_id, e->plan_id);
    copy_text(w.identifier, sizeof w.identifier, e->identifier);
    copy_text(w.action, sizeof w.action, e->action);
    w.wall = e->wall;
    w.mono = e->mono;
    return wire_audit_entry_hash(&w, out);
}

int audit_entry_pack(const struct audit_entry *e, uint8_t **out, size_t *len)
{
    uint8_t *m = NULL;
    size_t mlen = 0;
    int rc = entry_core(e, &m, &mlen);
    if (rc != CMC_OK)
        return rc;
    /* the same pairs under a fixmap of ten, then "hash" */
    struct mp_writer w;
    mp_writer_init(&w);
    mp_write_map(&w, 10);
    mp_write_raw(&w, m + 1, mlen - 1);
    mp_write_cstr(&w, "hash");
    mp_write_bin(&w, e->hash, sizeof e->hash);
    cmc_free(m);
    return mp_writer_finish(&w, out, len);
}

/* The hash the chain continues from: the newest entry's, else the anchor, else zeros. */
static int chain_tail(store *s, int64_t *seq, uint8_t hash[32])
{
    int row = 0;
    int rc = store_audit_last(s, seq, hash, &row);
    if (rc != CMC_OK || row)
        return rc;
    char *anchor = NULL;
    if (store_state_get(s, ANCHOR_KEY, &anchor) == CMC_OK) {
        rc = cry_unhex(hash, 32, anchor);
        if (rc == CMC_OK)
            rc = store_state_get_int(s, ANCHOR_SEQ_KEY, seq);
        if (rc != CMC_OK)
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log: the anchor of the pruned log is damaged");
    }
    cmc_free(anchor);
    cmc_err_clear();
    return rc;
}

void audit_record(store *s, const char *action, const char *plan_id, const char *identifier)
{
    const struct store_session *who = store_session_of(s);
    struct audit_entry e;
    memset(&e, 0, sizeof e);
    char *device = NULL;
    if (store_state_get(s, "device_id", &device) == CMC_OK)
        copy_text(e.device, sizeof e.device, device);
    cmc_free(device);
    cmc_err_clear();
    copy_text(e.user, sizeof e.user, who->user);
    copy_text(e.role, sizeof e.role, store_role_name(who->role));
    copy_text(e.plan_id, sizeof e.plan_id, plan_id);
    copy_text(e.identifier, sizeof e.identifier, identifier);
    copy_text(e.action, sizeof e.action, action);
    e.wall = plat_wall_now();
    e.mono = (int64_t)(plat_mono_now_ns() / 1000000u);

    int rc = store_batch_begin(s);
    int begun = rc == CMC_OK;
    if (rc != CMC_OK)
        goto out;
    int64_t last = 0;
    if ((rc = chain_tail(s, &last, e.prev)) != CMC_OK)
        goto out;
    e.seq = last + 1;
    if ((rc = entry_hash(&e, e.hash)) != CMC_OK)
        goto out;
    rc = store_audit_append(s, &e);
out:
    if (rc == CMC_OK && (rc = store_batch_commit(s)) != CMC_OK)
        store_batch_rollback(s); /* a no-op unless the commit left the batch open */
    else if (rc != CMC_OK && begun)
        store_batch_rollback(s);
    if (rc != CMC_OK) {
        /* A full disk or a damaged log must never hide a plan from a crew: the view goes
         * ahead, and the gap is said out loud (H-03 outweighs H-12; docs/HAZARDS.md). */
        plat_log(PLAT_LOG_WARN, "audit: this %s could not be recorded in the audit log (%s)", action,
                 cmc_strerror(rc));
        cmc_err_clear();
    }
}

int audit_list(store *s, size_t max, struct audit_entry **out, size_t *n)
{
    return store_audit_range(s, 0, max, out, n);
}

int audit_unsent(store *s, size_t max, struct audit_entry **out, size_t *n)
{
    int64_t acked = 0;
    if (store_state_get_int(s, "audit_acked_seq", &acked) != CMC_OK) {
        acked = 0;
        cmc_err_clear();
    }
    return store_audit_range(s, acked, max, out, n);
}

int audit_verify(store *s, int64_t *broken_seq)
{
    *broken_seq = 0;
    struct audit_entry *v = NULL;
    size_t n = 0;
    uint8_t expect_prev[32];
    int64_t anchor_seq = 0;
    memset(expect_prev, 0, sizeof expect_prev);
    char *anchor = NULL;
    int rc = CMC_OK;
    if (store_state_get(s, ANCHOR_KEY, &anchor) == CMC_OK) {
        if (cry_unhex(expect_prev, 32, anchor) != CMC_OK || store_state_get_int(s, ANCHOR_SEQ_KEY, &anchor_seq) != CMC_OK)
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log: the anchor of the pruned log is damaged");
    }
    cmc_free(anchor);
    if (rc != CMC_OK)
        return rc;
    cmc_err_clear();
    if ((rc = audit_list(s, 0, &v, &n)) != CMC_OK)
        return rc;
    int64_t expect_seq = anchor_seq + 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t h[32];
        const struct audit_entry *e = &v[i];
        if (e->seq != expect_seq) {
            *broken_seq = e->seq;
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log broken at entry %lld: entry %lld is missing",
                          (long long)e->seq, (long long)expect_seq);
            break;
        }
        if (!cry_memeq(e->prev, expect_prev, 32)) {
            *broken_seq = e->seq;
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log broken at entry %lld: it does not follow the entry before",
                          (long long)e->seq);
            break;
        }
        if ((rc = entry_hash(e, h)) != CMC_OK)
            break;
        if (!cry_memeq(h, e->hash, 32)) {
            *broken_seq = e->seq;
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log broken at entry %lld: its contents were altered",
                          (long long)e->seq);
            break;
        }
        memcpy(expect_prev, e->hash, 32);
        expect_seq++;
    }
    cmc_free(v);
    return rc;
}

int audit_prune(store *s, int64_t acked_seq)
{
    /* Keep the acknowledged tail's hash as the anchor, so what remains still verifies. */
    uint8_t hash[32];
    int row = 0, intact = 0;
    int rc = store_audit_hash_at(s, acked_seq, hash, &row, &intact);
    if (rc != CMC_OK)
        return rc;
    if (!row)
        return store_state_set_int(s, "audit_acked_seq", acked_seq);
    char hex[65] = "";
    if (intact)
        cry_hex(hex, hash, sizeof hash);
    if ((rc = store_state_set(s, ANCHOR_KEY, hex)) != CMC_OK || (rc = store_state_set_int(s, ANCHOR_SEQ_KEY, acked_seq)) != CMC_OK ||
        (rc = store_state_set_int(s, "audit_acked_seq", acked_seq)) != CMC_OK)
        return rc;
    return store_audit_prune(s, acked_seq);
}
