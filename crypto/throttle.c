/*
 * throttle.c - the persistent unlock throttle (contract in throttle.h).
 *
 * File layout (little-endian, 68 bytes, docs/STORAGE.md):
 *   0  8  magic "CMCTHROT"
 *   8  4  version (1)
 *  12  4  failures
 *  16  8  wall-clock seconds of the last failure (signed)
 *  24  8  boot-clock seconds of the last failure (signed)
 *  32 36  boot id of the last failure, ASCII, NUL-padded
 */
#include "crypto/throttle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <string.h>

static const uint8_t throttle_magic[8] = { 'C', 'M', 'C', 'T', 'H', 'R', 'O', 'T' };
#define THROTTLE_VERSION 1u
#define BOOT_ID_BYTES 36

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int parse(const uint8_t *buf, size_t len, struct cry_throttle *t)
{
    if (len != CRY_THROTTLE_FILE_BYTES || memcmp(buf, throttle_magic, sizeof throttle_magic) != 0 ||
        get_u32(buf + 8) != THROTTLE_VERSION)
        return 0;
    t->failures = get_u32(buf + 12);
    t->wall_at = (int64_t)get_u64(buf + 16);
    t->boot_at = (int64_t)get_u64(buf + 24);
    memcpy(t->boot_id, buf + 32, BOOT_ID_BYTES);
    t->boot_id[BOOT_ID_BYTES] = '\0';
    return 1;
}

int cry_throttle_load(const char *path, struct cry_throttle *t)
{
    memset(t, 0, sizeof *t);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = plat_read_file(path, 4096, &buf, &len);
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        return CMC_OK;
    }
    if (rc == CMC_ERR_TOO_LARGE)
        len = 0; /* treated as malformed below */
    else if (rc != CMC_OK)
        return rc;
    if (buf == NULL || !parse(buf, len, t)) {
        /* Damaged: assume the free attempts are used up, but with no wait pending, so the
         * next failure is delayed and nobody is locked out by a bad file. */
        memset(t, 0, sizeof *t);
        t->failures = CRY_THROTTLE_FREE;
        plat_log(PLAT_LOG_WARN, "unlock throttle file is malformed; treating it as used up");
    }
    cmc_free(buf);
    return CMC_OK;
}

static int64_t delay_for(uint32_t failures)
{
    if (failures < CRY_THROTTLE_FREE)
        return 0;
    uint32_t exp = failures - CRY_THROTTLE_FREE;
    if (exp >= 30)
        return CRY_THROTTLE_CAP_S;
    int64_t d = (int64_t)1 << exp;
    return d > CRY_THROTTLE_CAP_S ? CRY_THROTTLE_CAP_S : d;
}

int64_t cry_throttle_wait(const struct cry_throttle *t)
{
    int64_t delay = delay_for(t->failures);
    if (delay == 0)
        return 0;
    char boot_id[37];
    plat_boot_id(boot_id);
    int64_t boot_now = plat_boot_now();
    int64_t elapsed;
    if (boot_id[0] != '\0' && strcmp(boot_id, t->boot_id) == 0) {
        /* Same boot: the boot clock never goes back and nobody can set it, so it is the
         * only evidence used. A record from the future (edited file) counts as no time. */
        elapsed = boot_now >= t->boot_at ? boot_now - t->boot_at : 0;
    } else {
        /* Rebooted (or boot unknown): the failure happened before this boot, so the
         * uptime is a lower bound on the time since; the wall clock may add to it, but a
         * clock wound back cannot take anything away. */
        int64_t wall_now = plat_wall_now();
        int64_t wall_elapsed = 0;
        if (t->wall_at < 0)
            wall_elapsed = delay; /* nonsense record: do not trap the user */
        else if (wall_now > t->wall_at)
            wall_elapsed = wall_now - t->wall_at;
        elapsed = boot_now > wall_elapsed ? boot_now : wall_elapsed;
    }
    return elapsed >= delay ? 0 : delay - elapsed;
}

int cry_throttle_count_failure(const char *path, struct cry_throttle *t)
{
    if (t->failures < UINT32_MAX)
        t->failures++;
    t->wall_at = plat_wall_now();
    t->boot_at = plat_boot_now();
    plat_boot_id(t->boot_id);
    uint8_t buf[CRY_THROTTLE_FILE_BYTES];
    memset(buf, 0, sizeof buf);
    memcpy(buf, throttle_magic, sizeof throttle_magic);
    put_u32(buf + 8, THROTTLE_VERSION);
    put_u32(buf + 12, t->failures);
    put_u64(buf + 16, (uint64_t)t->wall_at);
    put_u64(buf + 24, (uint64_t)t->boot_at);
    memcpy(buf + 32, t->boot_id, strnlen(t->boot_id, BOOT_ID_BYTES));
    return plat_write_atomic(path, buf, sizeof buf);
}

int cry_throttle_clear(const char *path)
{
    return plat_remove(path);
}
