/*
 * replica_scan - test tool: decrypts every page of a device's replica (the database file and
 * every frame of its WAL) and says whether any of the given strings appears in the plaintext.
 *
 * Grepping the encrypted files proves only that they are encrypted. A purge must also leave
 * nothing in free pages or old WAL frames, which only shows once the pages are decrypted:
 * this tool unwraps the replica key from the key slots (the PIN from CMC_PIN, the user from
 * CMC_USER or the only slot) and decrypts SQLCipher 4 pages itself (AES-256-CBC with the raw
 * key; the per-page IV first in the reserved bytes at the end of each page, which also hold
 * the page's HMAC: 48 bytes with HMAC-SHA256, 80 with SQLCipher's default HMAC-SHA512).
 *
 *   replica_scan DIR STRING...     exit 0: none found; 1: found (names file and page);
 *                                  2: usage or cannot read
 */
#include "crypto/cry.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/tools/tool_slots.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096
#define SALT 16

/* 16-byte IV + the HMAC: 32 bytes (HMAC-SHA256) or 64 (HMAC-SHA512); found from page 1. */
static int reserve = 80;

static int decrypt_page(const uint8_t *key, const uint8_t *page, int first, uint8_t *out)
{
    const uint8_t *iv = page + PAGE - reserve;
    int off = first ? SALT : 0;
    int len = PAGE - reserve - off, n1 = 0, n2 = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) == 1 &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 && EVP_DecryptUpdate(ctx, out, &n1, page + off, len) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + n1, &n2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? n1 + n2 : -1;
}

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k > 0 && i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Scans `len` bytes of pages starting at `start`, every `stride` bytes (WAL frames carry a
 * 24-byte header before each page). Returns 1 if any needle was found. */
static int scan(const char *what, const uint8_t *key, const uint8_t *buf, size_t len, size_t start, size_t stride,
                size_t header, int first_is_page1, char **needles, int n_needles, long *pages)
{
    int found = 0;
    uint8_t plain[PAGE];
    for (size_t at = start; at + header + PAGE <= len; at += stride) {
        const uint8_t *page = buf + at + header;
        int page1 = first_is_page1 && at == start;
        int n = decrypt_page(key, page, page1, plain);
        if (n < 0)
            continue;
        (*pages)++;
        for (int i = 0; i < n_needles; i++)
            if (contains(plain, (size_t)n, needles[i])) {
                printf("found '%s' in %s at offset %zu\n", needles[i], what, at);
                found = 1;
            }
    }
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: replica_scan DIR STRING...\n");
        return 2;
    }
    const char *dir = argv[1];
    char db_path[4096], wal_path[4200];
    snprintf(db_path, sizeof db_path, "%s/replica.db", dir);
    snprintf(wal_path, sizeof wal_path, "%s/replica.db-wal", dir);
    struct tool_slots t;
    if (tool_unlock(dir, &t) != CMC_OK) {
        fprintf(stderr, "replica_scan: %s\n", cmc_errmsg());
        tool_slots_free(&t);
        return 2;
    }
    const struct cry_secret *key = t.u.key;
    int found = 0;
    long pages = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (plat_read_file(db_path, (size_t)1 << 31, &buf, &len) == CMC_OK) {
        /* Page 1's header, decrypted, names the reserve it was written with (byte 20 of the
         * file; 4 of the decrypted bytes after the salt), followed by the constant 64. */
        static const int reserves[] = { 48, 80 };
        uint8_t plain[PAGE];
        for (size_t i = 0; len >= PAGE && i < sizeof reserves / sizeof reserves[0]; i++) {
            reserve = reserves[i];
            if (decrypt_page(key->buf, buf, 1, plain) > 5 && plain[4] == reserve && plain[5] == 64)
                break;
        }
        found |= scan("replica.db", key->buf, buf, len, 0, PAGE, 0, 1, argv + 2, argc - 2, &pages);
        cmc_free(buf);
    }
    if (plat_read_file(wal_path, (size_t)1 << 31, &buf, &len) == CMC_OK) {
        /* 32-byte WAL header, then frames of a 24-byte header and one page */
        found |= scan("replica.db-wal", key->buf, buf, len, 32, 24 + PAGE, 24, 0, argv + 2, argc - 2, &pages);
        cmc_free(buf);
    }
    tool_slots_free(&t);
    if (pages == 0) {
        fprintf(stderr, "replica_scan: no page could be decrypted\n");
        return 2;
    }
    if (!found)
        printf("none of the strings is in the %ld decrypted pages\n", pages);
    return found ? 1 : 0;
}
