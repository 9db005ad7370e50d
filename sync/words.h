/*
 * words.h - "did you mean": the closest of a few known words to one a user mistyped, shared
 * by both command lines (cmc-agent's commands, cmc-hub's commands, subcommands and scopes).
 *
 * words_distance() is the Levenshtein distance between two NUL-terminated words, in bytes;
 * a word longer than WORDS_MAX_LEN is never close ((size_t)-1). words_near() says whether a
 * distance is small enough to suggest for that word: at most a third of its length, and
 * never less than 2. words_closest() returns the candidate at the smallest distance (the
 * first on a tie) when it is near, otherwise NULL. No allocation, no global state: safe from
 * any thread.
 */
#ifndef CMC_SYNC_WORDS_H
#define CMC_SYNC_WORDS_H

#include <stddef.h>

#define WORDS_MAX_LEN 63

size_t words_distance(const char *a, const char *b);
int words_near(const char *word, size_t distance);
const char *words_closest(const char *word, const char *const *candidates, size_t n);

#endif
