/*
 * fuzz.h - the contract of a fuzz target (docs/TESTING.md "Fuzzing").
 *
 * Each tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput (libFuzzer's entry point: one
 * input, any bytes; it must never crash, leak or trip a sanitizer, and aborts on a broken
 * property such as a decode-encode round trip) and fuzz_make_seeds (writes a seed corpus of
 * valid inputs into a directory, so the fuzzer starts from the real formats). The same file
 * is linked two ways: with libFuzzer (`make fuzz`, clang) and with replay.c, a plain main()
 * that feeds it every file of the corpus directories given, run by `make check`: every
 * crash once found is kept in tests/fuzz/corpus/<name>/ and so replayed for ever.
 *
 * fuzz_init() is the start every target shares: the crypto layer and the plan model ready,
 * logs quiet below errors; it aborts when either cannot start. fuzz_seed_plans() writes plans
 * 0..n-1 of one set of the hub's synthetic seed generator, each encoded by one of the plan's
 * codecs (struct fuzz_plan_codec) under a file name made from `name_fmt` and i;
 * fuzz_plan_round_trip() checks the property the codec targets share.
 * FUZZ_INITIALIZE_PLAIN() defines LLVMFuzzerInitialize for a target that needs nothing beyond
 * fuzz_init().
 */
#ifndef CMC_FUZZ_H
#define CMC_FUZZ_H

#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/plan.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
/* Writes seed files into `dir` (which exists). Returns 0 on success. */
int fuzz_make_seeds(const char *dir);
/* Helper for fuzz_make_seeds: writes one file dir/name. Returns 0 on success. */
static inline int fuzz_write_seed(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static inline void fuzz_init(void)
{
    if (cry_init() != CMC_OK)
        abort();
    plan_json_init();
    plat_log_set_level(PLAT_LOG_ERROR);
}

#define FUZZ_INITIALIZE_PLAIN()                                                              \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                        \
    {                                                                                        \
        (void)argc;                                                                          \
        (void)argv;                                                                          \
        fuzz_init();                                                                         \
        return 0;                                                                            \
    }

/* One of the plan's codecs: a text one (JSON, FHIR: to_text and from_text) or the binary one
 * (msgpack: to_bytes and from_bytes); the other pair is NULL. */
struct fuzz_plan_codec {
    int (*to_text)(const struct plan *p, int pretty, char **out, size_t *len);
    int (*from_text)(const char *text, size_t len, struct plan *p);
    int (*to_bytes)(const struct plan *p, uint8_t **out, size_t *len);
    int (*from_bytes)(const uint8_t *buf, size_t len, struct plan *p);
};

/* Encodes p (a cmc_alloc'd buffer into *out); `pretty` only matters to a text codec. */
static inline int fuzz_plan_encode(const struct fuzz_plan_codec *c, const struct plan *p, int pretty,
                                   uint8_t **out, size_t *len)
{
    char *text = NULL;
    int rc;
    if (c->to_text == NULL)
        return c->to_bytes(p, out, len);
    rc = c->to_text(p, pretty, &text, len);
    *out = (uint8_t *)text;
    return rc;
}

static inline int fuzz_plan_decode(const struct fuzz_plan_codec *c, const uint8_t *buf, size_t len,
                                   struct plan *p)
{
    return c->from_text != NULL ? c->from_text((const char *)buf, len, p)
                                : c->from_bytes(buf, len, p);
}

/* The round-trip property: p encodes, and its encoding decodes to an equal plan; when `input`
 * is given (the bytes p was decoded from) the encoding must be exactly those bytes, the codec
 * having one encoding per plan. Aborts when it does not hold. */
static inline void fuzz_plan_round_trip(const struct fuzz_plan_codec *c, const struct plan *p,
                                        const uint8_t *input, size_t input_len)
{
    struct plan q;
    uint8_t *out = NULL;
    size_t len = 0;
    plan_init(&q);
    if (fuzz_plan_encode(c, p, 0, &out, &len) != CMC_OK)
        abort();
    if (input != NULL && (len != input_len || memcmp(out, input, len) != 0))
        abort(); /* two encodings of one plan */
    if (fuzz_plan_decode(c, out, len, &q) != CMC_OK || !plan_equal(p, &q))
        abort();
    cmc_free(out);
    plan_free(&q);
}

/* Decodes the input and, when it is a plan, checks its round trip; `exact`: the input must
 * be the plan's one encoding. */
static inline void fuzz_plan_check(const struct fuzz_plan_codec *c, const uint8_t *data, size_t size,
                                   int exact)
{
    struct plan p;
    plan_init(&p);
    if (fuzz_plan_decode(c, data, size, &p) == CMC_OK)
        fuzz_plan_round_trip(c, &p, exact ? data : NULL, size);
    plan_free(&p);
}

/* Seeds of valid plans, encoded by the codec, half of them pretty. */
static inline int fuzz_seed_plans(const char *dir, int set, long n, const char *name_fmt,
                                  const struct fuzz_plan_codec *c)
{
    int rc = 0;
    for (long i = 0; i < n; i++) {
        struct plan p;
        int status = 0, extra = 0;
        uint8_t *out = NULL;
        size_t len = 0;
        char name[32];
        plan_init(&p);
        if (hub_seed_plan(set, i, &p, &status, &extra) != CMC_OK ||
            fuzz_plan_encode(c, &p, (int)(i % 2), &out, &len) != CMC_OK) {
            plan_free(&p);
            return -1;
        }
        snprintf(name, sizeof name, name_fmt, i);
        rc |= fuzz_write_seed(dir, name, out, len);
        cmc_free(out);
        plan_free(&p);
    }
    return rc;
}

/* A whole target for a codec whose only property is the round trip (fuzz_plan_check), seeded
 * with n plans of seed set `set`. */
#define FUZZ_PLAN_CODEC_TARGET(codec, exact, set, n, name_fmt)                               \
    FUZZ_INITIALIZE_PLAIN()                                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                             \
    {                                                                                        \
        fuzz_plan_check(&(codec), data, size, exact);                                        \
        return 0;                                                                            \
    }                                                                                        \
    int fuzz_make_seeds(const char *dir)                                                     \
    {                                                                                        \
        return fuzz_seed_plans(dir, set, n, name_fmt, &(codec));                             \
    }

#endif
