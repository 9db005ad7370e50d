/* words.c - see words.h. */
#include "sync/words.h"

#include <string.h>

size_t words_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[WORDS_MAX_LEN + 1];
    if (la > WORDS_MAX_LEN || lb > WORDS_MAX_LEN)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int words_near(const char *word, size_t distance)
{
    size_t limit = strlen(word) / 3;
    return distance <= (limit < 2 ? 2 : limit);
}

const char *words_closest(const char *word, const char *const *candidates, size_t n)
{
    size_t best = (size_t)-1;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t d = words_distance(word, candidates[i]);
        if (d < best) {
            best = d;
            pick = candidates[i];
        }
    }
    return pick != NULL && words_near(word, best) ? pick : NULL;
}
