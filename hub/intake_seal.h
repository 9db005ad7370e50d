/*
 * intake_seal.h - the hub's check of a device's forward-secure audit seals (crypto/fss.h;
 * docs/PROTOCOL.md, "Audit seals").
 *
 * At enrollment the hub draws the device's seed and keeps, per device, the key of the next
 * entry it expects sealed and how many it has verified (devices.audit_key, audit_sealed).
 * Each upload is checked as it is taken in (hub/intake.c): every new sealed entry against the
 * next key, then the device's sealing state (how many entries it sealed, its newest seq, a
 * tag under its current key) against what arrived. A seal that does not verify (an entry
 * rewritten, even with its hash chain recomputed), fewer sealed entries than the device says
 * it made (entries deleted before upload), a count that went back (a replica put back to an
 * older copy) or an unsealed entry after sealed ones raises the device's audit alarm
 * (devices.audit_alarm: the first reason and when), which `cmc-hub device list` shows. The
 * entries are kept either way: they are evidence.
 *
 * A device enrolled before sealing has no key on the hub: its uploads are taken as before.
 * Called inside the intake's transaction; errors are cmc_errs from the store.
 */
#ifndef CMC_HUB_INTAKE_SEAL_H
#define CMC_HUB_INTAKE_SEAL_H

#include "hub/internal.h"
#include "sync/wire.h"

#include <stdint.h>

/* Migration: the devices' sealing state and alarm (appended to the hub's steps). */
extern const char hub_schema_audit_seal[];

struct hub_audit_seal {
    int keyed;                    /* the device was enrolled with a seed */
    uint8_t key[CRY_HASH_BYTES];  /* the key of entry number sealed + 1 */
    uint64_t sealed;              /* sealed entries verified so far */
    char alarm[200];              /* this upload's first alarm, "" none */
};

/* A new device's seed (at enrollment), kept as its first key. */
int hub_audit_seal_enroll(hub *h, const char *device_id, uint8_t seed[CRY_HASH_BYTES]);
/* The device's sealing state before an upload. */
int hub_audit_seal_load(hub *h, const char *device_id, struct hub_audit_seal *hs);
/* One new entry (not one received before). */
void hub_audit_seal_entry(struct hub_audit_seal *hs, const struct wire_audit_entry *e);
/* The device's log went on from an older entry (a restored copy). */
void hub_audit_seal_rewind(struct hub_audit_seal *hs, uint64_t seq);
/* After the entries: the device's state against them; `newest` is the newest seq the hub
 * now holds for the device, n_entries how many the upload carried (sent again or new). */
void hub_audit_seal_state(struct hub_audit_seal *hs, const struct wire_audit_state *st,
                          uint64_t newest, uint32_t n_entries);
/* Stores the key and count, and raises the alarm if this upload set one (logged by device
 * id, never content). Zeroes hs->key. */
int hub_audit_seal_save(hub *h, const char *device_id, struct hub_audit_seal *hs);

#endif
