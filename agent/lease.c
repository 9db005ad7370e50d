#include "agent/lease.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdio.h>
#include <string.h>

#define K_DAYS "lease_days"
#define K_REF_HUB "lease_ref_hub_time"
#define K_REF_BOOT "lease_ref_boot"
#define K_REF_BOOT_ID "lease_ref_boot_id"
#define K_HIGH_WATER "wall_high_water"

static int64_t state_int(store *s, const char *key, int64_t dflt)
{
    int64_t v;
    if (store_state_get_int(s, key, &v) != CMC_OK) {
        cmc_err_clear();
        return dflt;
    }
    return v;
}

int lease_note_sync(store *s, int64_t hub_time)
{
    char boot_id[37];
    plat_boot_id(boot_id);
    int rc;
    if ((rc = store_state_set_int(s, K_REF_HUB, hub_time)) != CMC_OK ||
        (rc = store_state_set_int(s, K_REF_BOOT, plat_boot_now())) != CMC_OK ||
        (rc = store_state_set(s, K_REF_BOOT_ID, boot_id)) != CMC_OK)
        return rc;
    /* The hub's time is the authority now: a high-water mark left by a clock that was set
     * forward must not keep the lease running out. */
    int64_t now = plat_wall_now();
    return store_state_set_int(s, K_HIGH_WATER, now > hub_time ? now : hub_time);
}

int lease_info_get(store *s, struct lease_info *out)
{
    memset(out, 0, sizeof *out);
    out->lease_days = state_int(s, K_DAYS, 0);
    out->since = state_int(s, K_REF_HUB, 0);
    if (out->lease_days <= 0 || out->since <= 0)
        return CMC_OK;
    int64_t now = plat_wall_now();
    int64_t high = state_int(s, K_HIGH_WATER, 0);
    int64_t wall = (now > high ? now : high) - out->since;
    int64_t elapsed = wall;
    char boot_id[37], *ref_boot_id = NULL;
    plat_boot_id(boot_id);
    if (store_state_get(s, K_REF_BOOT_ID, &ref_boot_id) == CMC_OK && boot_id[0] != '\0' &&
        strcmp(boot_id, ref_boot_id) == 0) {
        int64_t boot = plat_boot_now() - state_int(s, K_REF_BOOT, 0);
        if (boot > elapsed)
            elapsed = boot;
    }
    cmc_err_clear();
    cmc_free(ref_boot_id);
    out->elapsed = elapsed < 0 ? 0 : elapsed;
    out->locked = out->elapsed > out->lease_days * 86400;
    return CMC_OK;
}

int lease_check(store *s)
{
    struct lease_info li;
    int rc = lease_info_get(s, &li);
    if (rc != CMC_OK)
        return rc;
    int64_t now = plat_wall_now();
    if (now > state_int(s, K_HIGH_WATER, 0))
        store_state_set_int(s, K_HIGH_WATER, now); /* best effort: a read must not fail on it */
    if (!li.locked)
        return CMC_OK;
    char when[21];
    plat_format_time(li.since, when);
    return cmc_fail(CMC_ERR_LOCKED,
                    "this replica is locked: it has not synced with the hub since %.10s (the hub allows %lld days "
                    "offline); run 'cmc-agent sync' to unlock it",
                    when, (long long)li.lease_days);
}
