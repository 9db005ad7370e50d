/*
 * replica_key - test tool: what an attacker who knows one user's PIN can do with the key
 * slots: unwrap the replica key and print the statements that open the replica in the
 * `sqlcipher` shell. The PIN comes from CMC_PIN (never the command line), the user from
 * CMC_USER or the first slot; the key goes to stdout only, for the test to pipe straight into
 * `sqlcipher` on its stdin (no file, no argument holds it).
 *
 *   replica_key DIR | cat - statements.sql | sqlcipher DIR/replica.db
 *
 * exit 0 with the statements printed, 2 otherwise.
 */
#include "crypto/cry.h"
#include "platform/err.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: replica_key DIR\n");
        return 2;
    }
    const char *pin = getenv("CMC_PIN");
    if (pin == NULL || cry_init() != CMC_OK)
        return 2;
    char slots_path[4096];
    snprintf(slots_path, sizeof slots_path, "%s/keyslots", argv[1]);
    cry_slots *slots = NULL;
    struct cry_secret *key = NULL;
    char role[CRY_ROLE_MAX + 1];
    const char *user = getenv("CMC_USER"), *r;
    int rc = cry_slots_load(slots_path, &slots);
    if (rc == CMC_OK && user == NULL)
        rc = cry_slots_user(slots, 0, &user, &r);
    if (rc == CMC_OK)
        rc = cry_slots_unlock(slots, user, pin, &key, role);
    if (rc == CMC_OK) {
        char hex[2 * CRY_KEY_BYTES + 1];
        cry_hex(hex, key->buf, key->len);
        /* the framing the agent uses (sync/db.c): raw key, 4096-byte pages, HMAC-SHA256 */
        printf(".bail on\nPRAGMA key = \"x'%s'\";\nPRAGMA cipher_page_size = 4096;\n"
               "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;\n",
               hex);
        cry_memzero(hex, sizeof hex);
    } else {
        fprintf(stderr, "replica_key: %s\n", cmc_errmsg());
    }
    cry_secret_free(key);
    cry_slots_free(slots);
    return rc == CMC_OK ? 0 : 2;
}
