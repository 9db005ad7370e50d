/*
 * slot_keys - test tool: unwraps one user's key slot with their PIN, as that user could with
 * the file and their own PIN, and prints what it holds, one "NAME HEX" a line:
 *   replica_key, then role_key when the slot holds it.
 * The user is CMC_USER (or the only slot), the PIN CMC_PIN.
 *
 *   slot_keys DIR       exit 0 when the slot opened, 2 otherwise
 */
#include "tests/tools/tool_slots.h"

int main(int argc, char **argv)
{
    struct tool_slots t;
    int rc = tool_start(argc, argv, 2, "slot_keys DIR", 0, &t);
    if (rc == CMC_OK) {
        char hex[2 * CRY_KEY_BYTES + 1];
        cry_hex(hex, t.u.key->buf, CRY_KEY_BYTES);
        printf("replica_key %s\n", hex);
        if (t.u.role_key != NULL) {
            cry_hex(hex, t.u.role_key->buf, CRY_KEY_BYTES);
            printf("role_key %s\n", hex);
        }
        cry_memzero(hex, sizeof hex);
    } else {
        fprintf(stderr, "slot_keys: %s\n", cmc_errmsg());
    }
    tool_slots_free(&t);
    return rc == CMC_OK ? 0 : 2;
}
