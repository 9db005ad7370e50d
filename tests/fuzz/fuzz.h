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
 * 0..n-1 of one set of the hub's synthetic seed generator, each encoded by the plan codec's
 * own encoder under a file name made from `name_fmt` and i.
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

/* A plan encoder for fuzz_seed_plans: plan_to_json and fhir_plan_to_bundle write text (given
 * pretty = i % 2, so seeds come both ways), plan_pack writes bytes. */
typedef int (*fuzz_plan_text)(const struct plan *p, int pretty, char **out, size_t *len);
typedef int (*fuzz_plan_bytes)(const struct plan *p, uint8_t **out, size_t *len);

/* Exactly one of to_text and to_bytes is given. */
static inline int fuzz_seed_plans(const char *dir, int set, long n, const char *name_fmt,
                                  fuzz_plan_text to_text, fuzz_plan_bytes to_bytes)
{
    int rc = 0;
    for (long i = 0; i < n; i++) {
        struct plan p;
        int status = 0, extra = 0;
        char *text = NULL;
        uint8_t *bytes = NULL;
        size_t len = 0;
        char name[32];
        plan_init(&p);
        if (hub_seed_plan(set, i, &p, &status, &extra) != CMC_OK ||
            (to_text != NULL ? to_text(&p, (int)(i % 2), &text, &len)
                             : to_bytes(&p, &bytes, &len)) != CMC_OK) {
            plan_free(&p);
            return -1;
        }
        snprintf(name, sizeof name, name_fmt, i);
        rc |= fuzz_write_seed(dir, name, text != NULL ? (const void *)text : bytes, len);
        cmc_free(text);
        cmc_free(bytes);
        plan_free(&p);
    }
    return rc;
}

#endif
