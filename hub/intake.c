/*
 * intake.c - what devices send the hub: edits (push), audit entries and acknowledgements.
 *
 * A pushed edit never publishes anything: it becomes a new version that a gp must approve.
 * It may not touch record metadata (status, version, approval, review date): those ops are
 * refused outright, so a device cannot mark its own edit published.
 */
#include "hub/intake_seal.h"
#include "hub/internal.h"
#include "hub/feed_group.h"

#include "hub/device_users.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/change.h"
#include "sync/wire.h"

#include <stdio.h>
#include <string.h>

#define HUB_IDEM_MAX 64

static int hub_push_lookup(hub *h, const char *device_id, const char *idem, int64_t *version,
                           int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "push", &st,
                        "SELECT version FROM pushes WHERE device_id = ?1 AND idem = ?2",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(idem)));
    if ((*found = st != NULL))
        *version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* The edit must be signed by a clinician user the device registered. */
static int hub_push_check_author(hub *h, const char *device_id, const struct hub_push_author *by,
                                 const char *idempotency_id, const char *plan_id, int64_t base_version,
                                 const uint8_t *change, size_t change_len)
{
    char role[CRY_ROLE_MAX + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES], digest[CRY_HASH_BYTES];
    if (by == NULL || by->user == NULL || by->sig == NULL)
        return cmc_fail(CMC_ERR_DENIED, "this edit names no user: the device's agent is too old to "
                                        "push edits and must be updated");
    int rc = hub_device_user_key(h, device_id, by->user, role, pk);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_DENIED, "the user who made this edit is not a registered user of this "
                                        "device (the device registers its users when it syncs)");
    if (rc != CMC_OK)
        return rc;
    if (strcmp(role, "clinician") != 0)
        return cmc_fail(CMC_ERR_DENIED, "only a clinician user may send edits; this edit was signed by "
                                        "a %s user", role);
    wire_push_digest(plan_id, base_version, idempotency_id, change, change_len, digest);
    if (cry_verify(pk, digest, sizeof digest, by->sig) != CMC_OK)
        return cmc_fail(CMC_ERR_DENIED, "the edit's user signature does not verify");
    return CMC_OK;
}

int hub_push(hub *h, const char *device_id, const struct hub_push_author *by,
             const char *idempotency_id, const char *plan_id, int64_t base_version,
             const uint8_t *change, size_t change_len, struct hub_push_reply *out)
{
    struct hub_device_info dev;
    struct hub_plan_info info;
    struct plan_change c;
    struct plan p;
    char actor[CRY_USER_MAX + HUB_NAME_MAX + 8];
    char now[21];
    const char *reason = NULL;
    int64_t target = 0;
    int rc, found = 0;

    memset(out, 0, sizeof *out);
    plan_init(&p);
    plan_change_init(&c);
    if (idempotency_id == NULL || idempotency_id[0] == '\0' ||
        strlen(idempotency_id) > HUB_IDEM_MAX)
        return cmc_fail(CMC_ERR_INVALID, "idempotency_id: 1 to %d bytes", HUB_IDEM_MAX);
    if (!plan_uuid_valid(plan_id))
        return cmc_fail(CMC_ERR_INVALID, "plan_id: not a plan id");
    if ((rc = hub_device_get(h, device_id, &dev)) != CMC_OK)
        return rc;
    if (strcmp(dev.role, "clinician") != 0)
        return cmc_fail(CMC_ERR_DENIED, "only clinician devices may send edits");
    if ((rc = hub_push_check_author(h, device_id, by, idempotency_id, plan_id, base_version, change,
                                    change_len)) != CMC_OK)
        return rc;
    if ((rc = plan_change_unpack(change, change_len, &c)) != CMC_OK)
        return rc;
    for (size_t i = 0; i < c.n_ops; i++) {
        if (c.ops[i].field == NULL || (c.ops[i].field->flags & PLAN_FF_META)) {
            rc = cmc_fail(CMC_ERR_INVALID, "change: record metadata (%s) is the hub's to set",
                          c.ops[i].field != NULL ? c.ops[i].field->path : "?");
            goto out;
        }
    }

    if ((rc = hub_tx_begin(h)) != CMC_OK)
        goto out;
    if ((rc = hub_push_lookup(h, device_id, idempotency_id, &out->version, &found)) != CMC_OK)
        goto out;
    if (found) {
        out->result = HUB_PUSH_DUPLICATE;
        rc = hub_tx_commit(h);
        goto out;
    }
    if ((rc = hub_plan_info(h, plan_id, &info)) != CMC_OK)
        goto out;
    if ((rc = hub_device_target(h, &dev, plan_id, &target, &reason)) != CMC_OK)
        goto out;
    if (info.consent_withdrawn) {
        rc = cmc_fail(CMC_ERR_STATE, "plan %s: consent was withdrawn; the edit is discarded",
                      plan_id);
        goto out;
    }
    if (target == 0) {
        rc = cmc_fail(CMC_ERR_DENIED, "plan %s is not shared with this device", plan_id);
        goto out;
    }
    if (base_version != info.version) {
        out->result = HUB_PUSH_CONFLICT;
        out->version = target;
        if ((rc = hub_load_version_raw(h, plan_id, target, &out->current, &out->current_len)) !=
            CMC_OK)
            goto out;
        rc = hub_tx_commit(h);
        goto out;
    }
    if ((rc = hub_load_version(h, plan_id, info.version, &p)) != CMC_OK)
        goto out;
    if ((rc = plan_change_apply(&p, &c)) != CMC_OK)
        goto out;
    plat_format_time(plat_wall_now(), now);
    if ((rc = hub_set_text(&p.approved_by, NULL)) != CMC_OK ||
        (rc = hub_set_text(&p.approved_at, NULL)) != CMC_OK ||
        (rc = hub_set_text(&p.updated_at, now)) != CMC_OK)
        goto out;
    p.version = info.version + 1;
    p.status = PLAN_STATUS_AWAITING_APPROVAL;
    if (plan_validate(&p, PLAN_CHECK_COMPLETE) != CMC_OK)
        p.status = PLAN_STATUS_DRAFT; /* a clinician completes it at the hub first */
    cmc_err_clear();
    snprintf(actor, sizeof actor, "%s on %s", by->user, dev.name);
    if ((rc = hub_store_version(h, &p, actor, "push")) != CMC_OK)
        goto out;
    if ((rc = hub_db_run(h, "push",
                         "INSERT INTO pushes(device_id, idem, plan_id, version, at)"
                         " VALUES(?1, ?2, ?3, ?4, ?5)",
                         HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(idempotency_id),
                                  HUB_TEXT(plan_id), HUB_INT(p.version),
                                  HUB_INT(plat_wall_now())))) != CMC_OK)
        goto out;
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        goto out;
    out->result = HUB_PUSH_ACCEPTED;
    out->version = p.version;
    plat_log(PLAT_LOG_INFO, "plan %s: edit from device %s (a registered user) stored as version %lld",
             plan_id, device_id, (long long)p.version);
out:
    if (rc != CMC_OK) {
        hub_tx_rollback(h);
        cmc_free(out->current);
        memset(out, 0, sizeof *out);
    }
    plan_change_free(&c);
    plan_free(&p);
    return rc;
}

/* ---- audit intake ---------------------------------------------------------------------- */

/* The end of the device's current line (its newest fork): seq, hash and fork number. */
static int hub_audit_last(hub *h, const char *device_id, uint64_t *seq,
                          uint8_t hash[CRY_HASH_BYTES], int64_t *fork, int *have)
{
    sqlite3_stmt *st = NULL;
    *have = 0;
    *seq = 0;
    *fork = 0;
    int rc = hub_db_row(h, "audit", &st, "SELECT seq, hash, fork FROM audit WHERE device_id = ?1"
                                         " ORDER BY fork DESC, seq DESC LIMIT 1",
                        HUB_ARGS(HUB_TEXT(device_id)));
    if (st != NULL && sqlite3_column_bytes(st, 1) == CRY_HASH_BYTES) {
        *have = 1;
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
        memcpy(hash, sqlite3_column_blob(st, 1), CRY_HASH_BYTES);
        *fork = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc;
}

/* 1 if the device has an entry at `seq` with exactly this hash, in any of its lines. */
static int hub_audit_has(hub *h, const char *device_id, uint64_t seq,
                         const uint8_t hash[CRY_HASH_BYTES], int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_row(h, "audit", &st,
                        "SELECT 1 FROM audit WHERE device_id = ?1 AND seq = ?2 AND hash = ?3",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_INT(seq),
                                 HUB_BLOB(hash, CRY_HASH_BYTES)));
    *found = st != NULL;
    sqlite3_finalize(st);
    return rc;
}

/* A restored device: its view log goes on from an entry the hub already has, so the new
 * line is kept as a fork and the device's rollback is recorded. Logged by device id only. */
static int hub_audit_fork(hub *h, const char *device_id, uint64_t at_seq)
{
    int rc = hub_db_run(h, "audit fork",
                        "UPDATE devices SET last_rollback = ?2, rollbacks = rollbacks + 1"
                        " WHERE device_id = ?1",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_INT(plat_wall_now())));
    if (rc == CMC_OK)
        plat_log(PLAT_LOG_WARN, "device %s: its view log starts again at entry %llu: the device"
                 " was restored from an older copy; both lines are kept", device_id,
                 (unsigned long long)at_seq);
    return rc;
}

int hub_audit_intake(hub *h, const char *device_id, const uint8_t *body, size_t len,
                     uint64_t *acked_seq)
{
    static const uint8_t zero[CRY_HASH_BYTES] = {0};
    struct mp_reader r;
    struct wire_audit_entry e;
    struct wire_audit_state seal_state;
    struct hub_audit_seal hs;
    sqlite3_stmt *ins = NULL;
    uint8_t last_hash[CRY_HASH_BYTES], computed[CRY_HASH_BYTES];
    uint64_t last_seq = 0;
    uint32_t n_entries;
    int64_t fork = 0;
    int have = 0, found, rc;

    *acked_seq = 0;
    memset(&hs, 0, sizeof hs);
    if ((rc = wire_audit_upload_open(&r, body, len, &n_entries, &seal_state)) != CMC_OK)
        return rc;

    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_audit_last(h, device_id, &last_seq, last_hash, &fork, &have)) != CMC_OK)
        goto out;
    if ((rc = hub_audit_seal_load(h, device_id, &hs)) != CMC_OK)
        goto out;
    if ((rc = hub_db_prepare(h, "INSERT INTO audit(device_id, fork, seq, prev, hash, user, role,"
                                " plan_id, identifier, action, wall, mono, received)"
                                " VALUES(?1, ?13, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                             &ins)) != CMC_OK)
        goto out;
    for (uint32_t i = 0; i < n_entries; i++) {
        if ((rc = wire_audit_upload_next(&r, &e, computed)) != CMC_OK)
            goto out;
        if (!cry_memeq(computed, e.hash, CRY_HASH_BYTES)) {
            rc = cmc_fail(CMC_ERR_INVALID, "audit entry %llu: hash does not match its contents",
                          (unsigned long long)e.seq);
            goto out;
        }
        if (have && e.seq <= last_seq) {
            /* Sent again after a lost acknowledgement: the very same entry is skipped. */
            if ((rc = hub_audit_has(h, device_id, e.seq, e.hash, &found)) != CMC_OK)
                goto out;
            if (found)
                continue;
            /* A different entry that continues an entry the hub holds (or starts the log):
             * the device was restored and its log goes on from there. Kept as a new line.
             * Anything else is a log the device never had. */
            if (e.seq == 1)
                found = cry_memeq(e.prev, zero, CRY_HASH_BYTES);
            else if ((rc = hub_audit_has(h, device_id, e.seq - 1, e.prev, &found)) != CMC_OK)
                goto out;
            if (!found) {
                rc = cmc_fail(CMC_ERR_CONFLICT, "audit entry %llu differs from the one received"
                              " before", (unsigned long long)e.seq);
                goto out;
            }
            if ((rc = hub_audit_fork(h, device_id, e.seq)) != CMC_OK)
                goto out;
            hub_audit_seal_rewind(&hs, e.seq);
            fork++;
        } else if (have && (e.seq != last_seq + 1 || !cry_memeq(e.prev, last_hash, CRY_HASH_BYTES))) {
            rc = cmc_fail(CMC_ERR_INVALID, "audit entry %llu does not continue the chain at %llu",
                          (unsigned long long)e.seq, (unsigned long long)last_seq);
            goto out;
        }
        hub_audit_seal_entry(&hs, &e);
        if ((rc = hub_db_again(h, ins, "audit",
                               HUB_ARGS(HUB_TEXT(device_id), HUB_INT(e.seq),
                                        HUB_BLOB(e.prev, CRY_HASH_BYTES),
                                        HUB_BLOB(e.hash, CRY_HASH_BYTES), HUB_TEXT(e.user),
                                        HUB_TEXT(e.role), HUB_TEXT(e.plan_id),
                                        HUB_TEXT(e.identifier), HUB_TEXT(e.action),
                                        HUB_INT(e.wall), HUB_INT(e.mono),
                                        HUB_INT(plat_wall_now()), HUB_INT(fork)))) != CMC_OK)
            goto out;
        have = 1;
        last_seq = e.seq;
        memcpy(last_hash, e.hash, CRY_HASH_BYTES);
    }
    if ((rc = wire_audit_upload_close(&r)) != CMC_OK)
        goto out;
    hub_audit_seal_state(&hs, &seal_state, last_seq, n_entries);
    if ((rc = hub_audit_seal_save(h, device_id, &hs)) != CMC_OK)
        goto out;
    if ((rc = hub_tx_commit(h)) != CMC_OK)
        goto out;
    *acked_seq = last_seq;
out:
    cry_memzero(&hs, sizeof hs);
    sqlite3_finalize(ins);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    return rc;
}

/* The query audit_rows reads, its columns in their order: entries matching `where`. */
#define AUDIT_ROWS_SQL(where)                                                              \
    "SELECT a.device_id, coalesce(d.name, ''), a.seq, a.user, a.role, a.plan_id,"          \
    " a.identifier, a.action, a.wall, a.received"                                          \
    " FROM audit a LEFT JOIN devices d ON d.device_id = a.device_id WHERE " where          \
    " ORDER BY a.wall, a.device_id, a.seq"

/* One entry from a row of AUDIT_ROWS_SQL (its text valid until the next step). */
static void audit_entry_from_row(sqlite3_stmt *st, struct hub_audit_entry *e)
{
    e->device_id = hub_col_text(st, 0);
    e->device_name = hub_col_text(st, 1);
    e->seq = (uint64_t)sqlite3_column_int64(st, 2);
    e->user = hub_col_text(st, 3);
    e->role = hub_col_text(st, 4);
    e->plan_id = hub_col_text(st, 5);
    e->identifier = hub_col_text(st, 6);
    e->action = hub_col_text(st, 7);
    e->wall = sqlite3_column_int64(st, 8);
    e->received = sqlite3_column_int64(st, 9);
}

/* Runs an AUDIT_ROWS_SQL query, handing each entry to cb (a non-zero return stops and is
 * returned); *found says whether there was one. */
static int audit_rows(hub *h, const char *sql, const struct hub_arg *args, size_t n,
                      int (*cb)(const struct hub_audit_entry *, void *), void *ctx, int *found)
{
    struct hub_audit_entry e;
    struct hub_rows r;
    hub_rows_open(h, &r, "audit list", sql, args, n);
    while (hub_rows_next(&r)) {
        audit_entry_from_row(r.st, &e);
        *found = 1;
        r.rc = cb(&e, ctx);
    }
    return hub_rows_end(&r);
}

int hub_audit_list(hub *h, const char *plan_ref,
                   int (*cb)(const struct hub_audit_entry *, void *), void *ctx)
{
    struct hub_plan_info info;
    char plan_id[PLAN_ID_LEN + 1] = "", nhs[PLAN_NHS_LEN + 1] = "";
    int rc, have_plan = 1, found = 0;

    if ((rc = hub_plan_info(h, plan_ref, &info)) == CMC_OK) {
        snprintf(plan_id, sizeof plan_id, "%s", info.plan_id);
        snprintf(nhs, sizeof nhs, "%s", info.nhs_number);
    } else if (rc == CMC_ERR_NOT_FOUND) {
        /* No plan on the hub: a device may still have looked the patient up and missed. */
        have_plan = 0;
        if (plan_uuid_valid(plan_ref))
            snprintf(plan_id, sizeof plan_id, "%s", plan_ref);
        else if (plan_nhs_normalise(plan_ref, nhs) != CMC_OK)
            return rc;
        cmc_err_clear();
    } else {
        return rc;
    }
    /* Look-ups by NHS number that found nothing on the device are the patient's too. */
    rc = audit_rows(h, AUDIT_ROWS_SQL("(?1 <> '' AND a.plan_id = ?1) OR (?2 <> '' AND"
                                      " a.identifier = ?2)"),
                    HUB_ARGS(HUB_TEXT(plan_id), HUB_TEXT(nhs)), cb, ctx, &found);
    if (rc == CMC_OK && !have_plan && !found)
        rc = cmc_fail(CMC_ERR_NOT_FOUND, "no plan and no audit entries on the hub for that plan"
                                         " id or NHS number");
    return rc;
}

int hub_audit_list_action(hub *h, const char *action, int (*cb)(const struct hub_audit_entry *, void *),
                          void *ctx)
{
    int found = 0;
    return audit_rows(h, AUDIT_ROWS_SQL("a.action = ?1"), HUB_ARGS(HUB_TEXT(action)), cb, ctx,
                      &found);
}

int hub_ack(hub *h, const char *device_id, const char *const *purged, size_t n_purged, int wiped)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = hub_group_begin(h)) != CMC_OK)
        return rc;
    /* The acknowledgement log; the page that carried the purge is now proven committed
     * (the device acknowledges only what it has made durable); and the open purge record
     * stops being repeated. */
    static const char *const ack_sql[] = {
        "INSERT OR REPLACE INTO acks(device_id, plan_id, at) VALUES(?1, ?2, ?3)",
        "UPDATE devices SET proven = max(proven, coalesce((SELECT cursor FROM purges"
        " WHERE device_id = ?1 AND plan_id = ?2), 0)) WHERE device_id = ?1",
        "UPDATE purges SET acked = ?3 WHERE device_id = ?1 AND plan_id = ?2 AND acked IS NULL",
    };
    for (size_t k = 0; k < sizeof ack_sql / sizeof ack_sql[0]; k++) {
        if ((rc = hub_db_prepare(h, ack_sql[k], &st)) != CMC_OK)
            goto out;
        for (size_t i = 0; i < n_purged; i++)
            if ((rc = hub_db_again(h, st, "ack",
                                   HUB_ARGS(HUB_TEXT(device_id), HUB_TEXT(purged[i]),
                                            HUB_INT(plat_wall_now())))) != CMC_OK)
                goto out;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (wiped) {
        /* Only while a wipe order stands: a device cannot declare itself wiped to slip out
         * of view. */
        if ((rc = hub_db_run(h, "ack",
                             "UPDATE devices SET state = 'wiped', wipe = 0, wiped_at = ?2"
                             " WHERE device_id = ?1 AND wipe = 1",
                             HUB_ARGS(HUB_TEXT(device_id), HUB_INT(plat_wall_now())))) != CMC_OK)
            goto out;
        if (sqlite3_changes(h->db) > 0)
            plat_log(PLAT_LOG_INFO, "device %s confirmed its wipe", device_id);
    }
out:
    sqlite3_finalize(st);
    /* committed with concurrent pulls and acknowledgements (feed_group.h) */
    return hub_group_finish(h, rc);
}
