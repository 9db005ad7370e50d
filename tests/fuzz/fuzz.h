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
 */
#ifndef CMC_FUZZ_H
#define CMC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

#endif
