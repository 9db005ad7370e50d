#include "agent/lease.h"

#include "agent/card.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_DAYS "lease_days"
#define K_REF_HUB "lease_ref_hub_time"
#define K_REF_BOOT "lease_ref_boot"
#define K_REF_BOOT_ID "lease_ref_boot_id"
#define K_HIGH_WATER "wall_high_water"

/* A lease value: `dflt` when it was never set. Any other failure (a read error, a value that
 * is not a number) is returned: the lease fails closed, so a replica whose lease cannot be
 * read is locked, never left open. */
static int state_int(store *s, const char *key, int64_t dflt, int64_t *out)
{
    int rc = store_state_get_int(s, key, out);
    if (rc != CMC_OK)
        *out = dflt;
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        rc = CMC_OK;
    }
    return rc;
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

/* The time since the last sync by the rules of lease.h, from the stored references. */
static int lease_elapsed(store *s, int64_t since, int64_t *elapsed)
{
    int64_t now = plat_wall_now(), high = 0, ref_boot = 0;
    int rc = state_int(s, K_HIGH_WATER, 0, &high);
    if (rc != CMC_OK)
        return rc;
    *elapsed = (now > high ? now : high) - since;
    char boot_id[37], *ref_boot_id = NULL;
    plat_boot_id(boot_id);
    rc = store_state_get(s, K_REF_BOOT_ID, &ref_boot_id);
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        return CMC_OK;
    }
    if (rc == CMC_OK && boot_id[0] != '\0' && strcmp(boot_id, ref_boot_id) == 0 &&
        (rc = state_int(s, K_REF_BOOT, 0, &ref_boot)) == CMC_OK) {
        int64_t boot = plat_boot_now() - ref_boot;
        if (boot > *elapsed)
            *elapsed = boot;
    }
    cmc_free(ref_boot_id);
    return rc;
}

int lease_info_get(store *s, struct lease_info *out)
{
    int64_t elapsed = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = state_int(s, K_DAYS, 0, &out->lease_days)) != CMC_OK ||
        (rc = state_int(s, K_REF_HUB, 0, &out->since)) != CMC_OK)
        goto fail;
    if (out->lease_days <= 0 || out->since <= 0)
        return CMC_OK;
    if ((rc = lease_elapsed(s, out->since, &elapsed)) != CMC_OK)
        goto fail;
    out->elapsed = elapsed < 0 ? 0 : elapsed;
    out->locked = out->elapsed > out->lease_days * 86400;
    return CMC_OK;
fail:
    out->locked = 1;
    return rc;
}

int lease_check(store *s)
{
    struct lease_info li;
    int64_t high = 0;
    int rc = lease_info_get(s, &li);
    if (rc != CMC_OK) {
        char why[160]; /* the failure names a state key, never patient data */
        snprintf(why, sizeof why, "%s", cmc_errmsg());
        return cmc_fail(CMC_ERR_LOCKED, "this replica is locked: its offline lease could not be read (%s)", why);
    }
    int64_t now = plat_wall_now();
    if (state_int(s, K_HIGH_WATER, 0, &high) != CMC_OK || now > high)
        store_state_set_int(s, K_HIGH_WATER, now); /* best effort: a read must not fail on it */
    cmc_err_clear();
    if (!li.locked)
        return CMC_OK;
    char when[21];
    plat_format_time(li.since, when);
    return cmc_fail(CMC_ERR_LOCKED,
                    "this replica is locked: it has not synced with the hub since %.10s (the hub allows %lld days "
                    "offline); run 'cmc-agent sync' to unlock it",
                    when, (long long)li.lease_days);
}

int lease_warn_days(int *out)
{
    const char *v = getenv("CMC_LEASE_WARN_DAYS");
    *out = LEASE_WARN_DAYS_DEFAULT;
    if (v == NULL || v[0] == '\0')
        return CMC_OK;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > LEASE_WARN_DAYS_MAX)
        return cmc_fail(CMC_ERR_USAGE, "CMC_LEASE_WARN_DAYS must be 0 to %d days", LEASE_WARN_DAYS_MAX);
    *out = (int)n;
    return CMC_OK;
}

int lease_days_left(const struct lease_info *li, int warn_days)
{
    if (li->lease_days <= 0 || li->since <= 0 || li->locked || warn_days <= 0)
        return -1;
    int64_t left = li->lease_days * 86400 - li->elapsed;
    if (left <= 0)
        return -1;
    int64_t days = (left + 86399) / 86400;
    return days <= warn_days ? (int)days : -1;
}

int64_t lease_age_days(const struct lease_info *li)
{
    return li->since > 0 ? li->elapsed / 86400 : -1;
}

int lease_reason_check(const char *reason, char *out)
{
    uint32_t cp;
    out[0] = '\0';
    if (reason == NULL)
        return cmc_fail(CMC_ERR_USAGE, "break glass needs a reason: why this plan must be read from a locked copy");
    while (*reason == ' ')
        reason++;
    size_t n = strlen(reason);
    while (n > 0 && reason[n - 1] == ' ')
        n--;
    if (n < LEASE_REASON_MIN)
        return cmc_fail(CMC_ERR_USAGE, "break glass needs a reason of at least %d characters", LEASE_REASON_MIN);
    if (n > LEASE_REASON_MAX)
        return cmc_fail(CMC_ERR_USAGE, "the break-glass reason is longer than %d bytes", LEASE_REASON_MAX);
    enum text_class cls = text_check(reason, n, TEXT_ONE_LINE, &cp);
    if (cls != TEXT_OK)
        return cmc_fail(CMC_ERR_USAGE, "the break-glass reason contains %s", text_class_words(cls));
    memcpy(out, reason, n);
    out[n] = '\0';
    return CMC_OK;
}

void lease_card_context(store *s, int broken, struct card_context *ctx)
{
    struct lease_info li;
    int warn = LEASE_WARN_DAYS_DEFAULT;
    if (lease_info_get(s, &li) != CMC_OK) /* li.locked is 1: no warning; the age from the last sync */
        cmc_err_clear();
    if (lease_warn_days(&warn) != CMC_OK)
        cmc_err_clear(); /* a misconfigured warning never keeps a card from a crew */
    ctx->lease_days_left = lease_days_left(&li, warn);
    ctx->break_glass = broken;
    ctx->copy_age_days = lease_age_days(&li);
    if (ctx->copy_age_days < 0 && ctx->last_sync >= 0)
        ctx->copy_age_days = (ctx->now - ctx->last_sync) / 86400;
}
