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
#include "tests/tools/tool_slots.h"

int main(int argc, char **argv)
{
    struct tool_slots t;
    int rc = tool_start(argc, argv, 2, "replica_key DIR", 0, &t);
    if (rc == CMC_OK) {
        char hex[2 * CRY_KEY_BYTES + 1];
        cry_hex(hex, t.u.key->buf, t.u.key->len);
        /* the framing the agent uses (sync/db.c): raw key, 4096-byte pages, HMAC-SHA256 */
        printf(".bail on\nPRAGMA key = \"x'%s'\";\nPRAGMA cipher_page_size = 4096;\n"
               "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;\n",
               hex);
        cry_memzero(hex, sizeof hex);
    } else {
        fprintf(stderr, "replica_key: %s\n", cmc_errmsg());
    }
    tool_slots_free(&t);
    return rc == CMC_OK ? 0 : 2;
}
