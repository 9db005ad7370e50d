/*
 * throttle.c - the persistent unlock throttle's file (contract in throttle.h).
 *
 * File layout (little-endian, 16 bytes, docs/STORAGE.md):
 *   0  8  magic "CMCTHROT"
 *   8  4  version (2)
 *  12  4  failures
 * A version 1 file (68 bytes, with clock readings after the count) is read for its count.
 */
#include "crypto/throttle.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <string.h>

static const uint8_t throttle_magic[8] = { 'C', 'M', 'C', 'T', 'H', 'R', 'O', 'T' };
#define THROTTLE_VERSION 2u

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int parse(const uint8_t *buf, size_t len, struct cry_throttle *t)
{
    if (len < 16 || memcmp(buf, throttle_magic, sizeof throttle_magic) != 0)
        return 0;
    uint32_t version = get_u32(buf + 8);
    if (!(version == THROTTLE_VERSION && len == CRY_THROTTLE_FILE_BYTES) &&
        !(version == 1 && len == CRY_THROTTLE_V1_BYTES))
        return 0;
    t->failures = get_u32(buf + 12);
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
        /* Damaged: assume the free attempts are used up; the next failure costs extra work,
         * but nobody is locked out by a bad file. */
        memset(t, 0, sizeof *t);
        t->failures = CRY_THROTTLE_FREE;
        plat_log(PLAT_LOG_WARN, "unlock throttle file is malformed; treating it as used up");
    }
    cmc_free(buf);
    return CMC_OK;
}

uint32_t cry_throttle_work(uint32_t failures)
{
    if (failures < CRY_THROTTLE_FREE)
        return 0;
    uint32_t extra = failures - CRY_THROTTLE_FREE + 1;
    return extra > CRY_THROTTLE_WORK_CAP ? CRY_THROTTLE_WORK_CAP : extra;
}

int cry_throttle_store(const char *path, uint32_t failures)
{
    uint8_t buf[CRY_THROTTLE_FILE_BYTES];
    memcpy(buf, throttle_magic, sizeof throttle_magic);
    put_u32(buf + 8, THROTTLE_VERSION);
    put_u32(buf + 12, failures);
    return plat_write_atomic(path, buf, sizeof buf);
}

int cry_throttle_clear(const char *path)
{
    return plat_remove(path);
}
