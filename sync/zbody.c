/*
 * zbody.c - Brotli bodies for bundles (contract in zbody.h).
 */
#include "sync/zbody.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <string.h>

/* Quality and window: quality 5 with a window of up to 4 MiB (22 bits) for large bodies
 * (snapshot pages): long-range repeats across plans are most of the gain, and quality 5 costs
 * the hub about 1.6 times zlib level 4's CPU. Small bodies (a poll, a few changed plans) take
 * quality 9: on a few KiB it is cheap. */
#define ZBODY_SMALL 65536u
#define ZBODY_QUALITY_LARGE 5
#define ZBODY_QUALITY_SMALL 9
#define ZBODY_LGWIN_MAX 22

static void *zbody_alloc(void *opaque, size_t size)
{
    (void)opaque;
    return cmc_malloc(size);
}

static void zbody_free(void *opaque, void *p)
{
    (void)opaque;
    cmc_free(p);
}

static uint32_t lgwin_for(size_t raw_len)
{
    uint32_t w = BROTLI_MIN_WINDOW_BITS;
    while (w < ZBODY_LGWIN_MAX && ((size_t)1 << w) - 16 < raw_len)
        w++;
    return w;
}

int zbody_pack(const uint8_t *raw, size_t raw_len, size_t room, uint8_t **out, size_t *body_len)
{
    int rc = CMC_OK;
    *out = NULL;
    *body_len = 0;
    size_t bound = BrotliEncoderMaxCompressedSize(raw_len);
    if (bound == 0)
        bound = raw_len + 1024; /* the bound overflowed: never for bundle-sized bodies */
    /* libc's allocator, not cmc_malloc: Brotli 1.0's encoder exits the process when an
     * allocation fails, so it must never see the failures the OOM tests inject. Its memory
     * is bounded by the quality and window above (a few MiB per body being compressed). */
    BrotliEncoderState *st = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    uint8_t *buf = cmc_malloc(room + bound);
    if (st == NULL || buf == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (brotli)");
        goto out;
    }
    BrotliEncoderSetParameter(st, BROTLI_PARAM_QUALITY,
                              raw_len <= ZBODY_SMALL ? ZBODY_QUALITY_SMALL : ZBODY_QUALITY_LARGE);
    BrotliEncoderSetParameter(st, BROTLI_PARAM_LGWIN, lgwin_for(raw_len));
    BrotliEncoderSetParameter(st, BROTLI_PARAM_SIZE_HINT, (uint32_t)(raw_len > UINT32_MAX ? UINT32_MAX : raw_len));
    size_t avail_in = raw_len, avail_out = bound;
    const uint8_t *next_in = raw;
    uint8_t *next_out = buf + room;
    if (!BrotliEncoderCompressStream(st, BROTLI_OPERATION_FINISH, &avail_in, &next_in, &avail_out,
                                     &next_out, NULL) ||
        !BrotliEncoderIsFinished(st)) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: brotli could not compress the body");
        goto out;
    }
    *body_len = bound - avail_out;
    *out = buf;
    buf = NULL;
out:
    if (st != NULL)
        BrotliEncoderDestroyInstance(st);
    cmc_free(buf);
    return rc;
}

int zbody_unpack(const uint8_t *body, uint32_t body_len, uint32_t raw_len, uint8_t **out)
{
    int rc = CMC_OK;
    *out = NULL;
    uint8_t *raw = cmc_malloc((size_t)raw_len + 1);
    BrotliDecoderState *st = BrotliDecoderCreateInstance(zbody_alloc, zbody_free, NULL);
    if (raw == NULL || st == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (brotli)");
        goto out;
    }
    size_t avail_in = body_len, avail_out = (size_t)raw_len + 1, total = 0;
    const uint8_t *next_in = body;
    uint8_t *next_out = raw;
    BrotliDecoderResult r =
        BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, &total);
    switch (r) {
    case BROTLI_DECODER_RESULT_SUCCESS:
        if (total != raw_len)
            rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: body decompresses to %s raw_len (%u bytes)",
                          total > raw_len ? "more than" : "less than", (unsigned)raw_len);
        else if (avail_in != 0)
            rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: bytes follow the compressed body");
        break;
    case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: body decompresses past raw_len (%u bytes); refused",
                      (unsigned)raw_len);
        break;
    case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
        rc = cmc_fail(CMC_ERR_CORRUPT, "bundle: compressed body is truncated");
        break;
    case BROTLI_DECODER_RESULT_ERROR:
    default: {
        int ec = (int)BrotliDecoderGetErrorCode(st);
        rc = ec <= BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MODES && ec >= BROTLI_DECODER_ERROR_ALLOC_BLOCK_TYPE_TREES
                 ? cmc_fail(CMC_ERR_NOMEM, "bundle: out of memory (brotli)")
                 : cmc_fail(CMC_ERR_CORRUPT, "bundle: body is not valid brotli data (%s)",
                            BrotliDecoderErrorString((BrotliDecoderErrorCode)ec));
        break;
    }
    }
out:
    if (st != NULL)
        BrotliDecoderDestroyInstance(st);
    if (rc == CMC_OK)
        *out = raw;
    else
        cmc_free(raw);
    return rc;
}
