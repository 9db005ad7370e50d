/*
 * replay - runs a fuzz target over files without libFuzzer (see fuzz.h).
 *
 *   replay_fuzz_<name> PATH...          every file of every directory (or file) given
 *   replay_fuzz_<name> --make-seeds DIR writes the target's seed corpus into DIR
 *
 * Prints "<n> inputs" and exits 0 when no input crashed (a crash ends the process, with the
 * sanitizer's report when built with one).
 */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL)
                abort();
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 1;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    if (argc == 3 && strcmp(argv[1], "--make-seeds") == 0)
        return fuzz_make_seeds(argv[2]) == 0 ? 0 : 1;
    long n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: not found\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            n += run_file(argv[i]);
            continue;
        }
        struct dirent **names = NULL;
        int k = scandir(argv[i], &names, NULL, alphasort);
        for (int j = 0; j < k; j++) {
            char path[2048];
            if (names[j]->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
                n += run_file(path);
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%ld inputs\n", n);
    return 0;
}
