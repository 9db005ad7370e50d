/*
 * intake_seal.c - checking a device's forward-secure audit seals on upload (contract in
 * intake_seal.h).
 */
#include "hub/intake_seal.h"

#include "crypto/fss.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char hub_schema_audit_seal[] =
    "ALTER TABLE devices ADD COLUMN audit_key BLOB;"
    "ALTER TABLE devices ADD COLUMN audit_sealed INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN audit_alarm TEXT;"
    "ALTER TABLE devices ADD COLUMN audit_alarm_at INTEGER;";

/* The first alarm of an upload is the one kept: what follows a gap fails too. */
__attribute__((format(printf, 2, 3))) static void seal_alarm(struct hub_audit_seal *hs,
                                                             const char *fmt, ...)
{
    va_list ap;
    if (hs->alarm[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(hs->alarm, sizeof hs->alarm, fmt, ap);
    va_end(ap);
}

int hub_audit_seal_load(hub *h, const char *device_id, struct hub_audit_seal *hs)
{
    sqlite3_stmt *st = NULL;
    memset(hs, 0, sizeof *hs);
    int rc = hub_db_row(h, "audit seal", &st,
                        "SELECT audit_key, audit_sealed FROM devices WHERE device_id = ?1",
                        HUB_ARGS(HUB_TEXT(device_id)));
    if (st != NULL && sqlite3_column_bytes(st, 0) == CRY_HASH_BYTES) {
        hs->keyed = 1;
        memcpy(hs->key, sqlite3_column_blob(st, 0), CRY_HASH_BYTES);
        hs->sealed = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

int hub_audit_seal_enroll(hub *h, const char *device_id, uint8_t seed[CRY_HASH_BYTES])
{
    struct hub_audit_seal hs;
    int rc = hub_audit_seal_load(h, device_id, &hs);
    if (rc != CMC_OK)
        return rc;
    /* The same enrollment answered again (its first answer was lost): the same seed, as long
     * as nothing was sealed with it yet. */
    if (hs.keyed && hs.sealed == 0) {
        memcpy(seed, hs.key, CRY_HASH_BYTES);
        cry_memzero(&hs, sizeof hs);
        return CMC_OK;
    }
    cry_memzero(&hs, sizeof hs);
    cry_random(seed, CRY_HASH_BYTES);
    return hub_db_run(h, "audit seal",
                      "UPDATE devices SET audit_key = ?2, audit_sealed = 0, audit_alarm = NULL,"
                      " audit_alarm_at = NULL WHERE device_id = ?1",
                      HUB_ARGS(HUB_TEXT(device_id), HUB_BLOB(seed, CRY_HASH_BYTES)));
}

void hub_audit_seal_entry(struct hub_audit_seal *hs, const struct wire_audit_entry *e)
{
    uint8_t want[CRY_FSS_SEAL_BYTES];
    if (!hs->keyed)
        return;
    if (!e->sealed) {
        /* entries made before the device was enrolled carry none; none may follow one */
        if (hs->sealed > 0)
            seal_alarm(hs, "rewrite: entry %llu arrived without its seal",
                       (unsigned long long)e->seq);
        return;
    }
    cry_fss_seal(hs->key, e->seq, e->hash, want);
    if (cry_fss_check(want, e->seal) != CMC_OK)
        seal_alarm(hs, "rewrite: the seal of entry %llu does not verify (the entry was changed,"
                       " or entries before it are missing)",
                   (unsigned long long)e->seq);
    /* the position is used either way, so the entries after a bad one are still checked */
    cry_fss_evolve(hs->key);
    hs->sealed++;
}

void hub_audit_seal_rewind(struct hub_audit_seal *hs, uint64_t seq)
{
    if (hs->keyed)
        seal_alarm(hs, "rewind: the log starts again at entry %llu", (unsigned long long)seq);
}

void hub_audit_seal_state(struct hub_audit_seal *hs, const struct wire_audit_state *st,
                          uint64_t newest, uint32_t n_entries)
{
    uint8_t key[CRY_FSS_KEY_BYTES], tag[CRY_FSS_SEAL_BYTES];
    if (!hs->keyed)
        return;
    if (!st->present) {
        if (hs->sealed > 0)
            seal_alarm(hs, "rewrite: the upload carries no sealing state");
        return;
    }
    if (st->sealed < hs->sealed) {
        seal_alarm(hs, "rewind: the device says it sealed %llu entries, %llu were received",
                   (unsigned long long)st->sealed, (unsigned long long)hs->sealed);
        return;
    }
    memcpy(key, hs->key, sizeof key);
    if (cry_fss_advance(key, st->sealed - hs->sealed) != CMC_OK) {
        cmc_err_clear();
        seal_alarm(hs, "gap: the device says it sealed %llu entries, %llu were received",
                   (unsigned long long)st->sealed, (unsigned long long)hs->sealed);
        return;
    }
    cry_fss_state(key, st->sealed, st->newest, tag);
    cry_memzero(key, sizeof key);
    if (cry_fss_check(tag, st->tag) != CMC_OK) {
        seal_alarm(hs, "rewrite: the device's sealing state does not verify");
        return;
    }
    /* Entries the device sealed and has not sent: fine while it sends whole batches (more
     * follow); an upload that stops short of its newest entry means they were deleted. */
    if (st->sealed > hs->sealed && (newest >= st->newest || n_entries < WIRE_AUDIT_BATCH))
        seal_alarm(hs, "gap: the device sealed %llu entries up to entry %llu; the log it sent "
                       "ends at entry %llu with %llu",
                   (unsigned long long)st->sealed, (unsigned long long)st->newest,
                   (unsigned long long)newest, (unsigned long long)hs->sealed);
}

int hub_audit_seal_save(hub *h, const char *device_id, struct hub_audit_seal *hs)
{
    int alarm = hs->alarm[0] != '\0';
    if (!hs->keyed)
        return CMC_OK;
    /* no alarm: ?4 and ?5 are NULL, so the ones recorded before stay */
    int rc = hub_db_run(h, "audit seal",
                        "UPDATE devices SET audit_key = ?2, audit_sealed = ?3,"
                        " audit_alarm = coalesce(audit_alarm, ?4),"
                        " audit_alarm_at = coalesce(audit_alarm_at, ?5) WHERE device_id = ?1",
                        HUB_ARGS(HUB_TEXT(device_id), HUB_BLOB(hs->key, CRY_HASH_BYTES),
                                 HUB_INT(hs->sealed), alarm ? HUB_TEXT(hs->alarm) : HUB_NULL,
                                 alarm ? HUB_INT(plat_wall_now()) : HUB_NULL));
    if (rc == CMC_OK && alarm)
        plat_log(PLAT_LOG_WARN, "device %s: AUDIT ALARM: %s", device_id, hs->alarm);
    cry_memzero(hs->key, sizeof hs->key);
    return rc;
}
