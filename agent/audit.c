#include "agent/audit.h"

#include "crypto/cry.h"
#include "crypto/fss.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/mp.h"
#include "sync/wire.h"

#include <stdio.h>
#include <string.h>

#define ANCHOR_KEY "audit_anchor"         /* hex hash of the last pruned entry */
#define ANCHOR_SEQ_KEY "audit_anchor_seq" /* its seq */
#define SEAL_KEY "audit_seal_key"         /* hex: the key of the next entry sealed */
#define SEAL_COUNT_KEY "audit_sealed"     /* entries sealed so far */
#define SEAL_NEWEST_KEY "audit_sealed_newest" /* seq of the newest entry sealed (or the tail
                                               * when sealing began) */

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

void audit_to_wire(const struct audit_entry *e, struct wire_audit_entry *w)
{
    memset(w, 0, sizeof *w);
    w->seq = (uint64_t)e->seq;
    memcpy(w->prev, e->prev, sizeof w->prev);
    memcpy(w->hash, e->hash, sizeof w->hash);
    copy_text(w->user, sizeof w->user, e->user);
    copy_text(w->role, sizeof w->role, e->role);
    copy_text(w->plan_id, sizeof w->plan_id, e->plan_id);
    copy_text(w->identifier, sizeof w->identifier, e->identifier);
    copy_text(w->action, sizeof w->action, e->action);
    w->wall = e->wall;
    w->mono = e->mono;
    memcpy(w->seal, e->seal, sizeof w->seal);
    w->sealed = e->sealed;
}

static int entry_hash(const struct audit_entry *e, uint8_t out[32])
{
    struct wire_audit_entry w;
    audit_to_wire(e, &w);
    return wire_audit_entry_hash(&w, out);
}

int audit_entry_pack(const struct audit_entry *e, uint8_t **out, size_t *len)
{
    struct wire_audit_entry w;
    audit_to_wire(e, &w);
    return wire_audit_entry_pack(&w, out, len);
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

/* The sealing key and counters; *keyed 0 when this device has none (not enrolled, or
 * enrolled by a hub without seals). */
static int seal_load(store *s, uint8_t key[CRY_FSS_KEY_BYTES], int64_t *count, int64_t *newest,
                     int *keyed)
{
    char *hex = NULL;
    *keyed = 0;
    int rc = store_state_get(s, SEAL_KEY, &hex);
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        return CMC_OK;
    }
    if (rc == CMC_OK && cry_unhex(key, CRY_FSS_KEY_BYTES, hex) != CMC_OK)
        rc = cmc_fail(CMC_ERR_TAMPERED, "audit log: the sealing key is damaged");
    if (hex != NULL)
        cry_memzero(hex, strlen(hex));
    cmc_free(hex);
    if (rc == CMC_OK && ((rc = store_state_get_int(s, SEAL_COUNT_KEY, count)) != CMC_OK ||
                         (rc = store_state_get_int(s, SEAL_NEWEST_KEY, newest)) != CMC_OK))
        rc = cmc_fail(CMC_ERR_TAMPERED, "audit log: the sealing state is damaged");
    *keyed = rc == CMC_OK;
    return rc;
}

/* Stores the next key over the current one (the row is rewritten; secure_delete zeroes the
 * freed page, and a sync's truncating checkpoint clears the WAL of older ones). */
static int seal_store(store *s, const uint8_t key[CRY_FSS_KEY_BYTES], int64_t count,
                      int64_t newest)
{
    char hex[2 * CRY_FSS_KEY_BYTES + 1];
    cry_hex(hex, key, CRY_FSS_KEY_BYTES);
    int rc = store_state_set(s, SEAL_KEY, hex);
    cry_memzero(hex, sizeof hex);
    if (rc == CMC_OK)
        rc = store_state_set_int(s, SEAL_COUNT_KEY, count);
    if (rc == CMC_OK)
        rc = store_state_set_int(s, SEAL_NEWEST_KEY, newest);
    return rc;
}

/* Seals a new entry with the current key and moves the key on, in the entry's transaction. */
static int seal_entry(store *s, struct audit_entry *e)
{
    uint8_t key[CRY_FSS_KEY_BYTES];
    int64_t count = 0, newest = 0;
    int keyed = 0;
    int rc = seal_load(s, key, &count, &newest, &keyed);
    if (rc == CMC_OK && keyed) {
        cry_fss_seal(key, (uint64_t)e->seq, e->hash, e->seal);
        e->sealed = 1;
        cry_fss_evolve(key);
        rc = seal_store(s, key, count + 1, e->seq);
    }
    cry_memzero(key, sizeof key);
    return rc;
}

int audit_seal_begin(store *s, const uint8_t seed[32])
{
    int64_t last = 0;
    uint8_t tail[32];
    int rc = chain_tail(s, &last, tail);
    if (rc == CMC_OK)
        rc = seal_store(s, seed, 0, last);
    return rc;
}

int audit_seal_state(store *s, struct wire_audit_state *st)
{
    uint8_t key[CRY_FSS_KEY_BYTES];
    int64_t count = 0, newest = 0;
    int keyed = 0;
    memset(st, 0, sizeof *st);
    int rc = seal_load(s, key, &count, &newest, &keyed);
    if (rc == CMC_OK && keyed) {
        st->present = 1;
        st->sealed = (uint64_t)count;
        st->newest = (uint64_t)newest;
        cry_fss_state(key, st->sealed, st->newest, st->tag);
    }
    cry_memzero(key, sizeof key);
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
    if ((rc = seal_entry(s, &e)) != CMC_OK)
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
    uint8_t key[CRY_FSS_KEY_BYTES];
    int64_t sealed_count = 0, sealed_newest = 0;
    int keyed = 0, seen_seal = 0;
    if ((rc = seal_load(s, key, &sealed_count, &sealed_newest, &keyed)) != CMC_OK) {
        cmc_free(v);
        return rc;
    }
    cry_memzero(key, sizeof key);
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
        if (keyed && seen_seal && !e->sealed) {
            *broken_seq = e->seq;
            rc = cmc_fail(CMC_ERR_TAMPERED, "audit log broken at entry %lld: its seal is missing",
                          (long long)e->seq);
            break;
        }
        seen_seal |= e->sealed;
        memcpy(expect_prev, e->hash, 32);
        expect_seq++;
    }
    /* The sealing state names the newest entry sealed: a log that ends before it lost its
     * tail (entries deleted before upload). */
    if (rc == CMC_OK && keyed && sealed_count > 0 && expect_seq - 1 < sealed_newest) {
        *broken_seq = expect_seq;
        rc = cmc_fail(CMC_ERR_TAMPERED, "audit log broken after entry %lld: entries up to %lld "
                      "were recorded and sealed but are missing",
                      (long long)(expect_seq - 1), (long long)sealed_newest);
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
