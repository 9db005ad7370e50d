/*
 * slot_keys - test tool: unwraps one user's key slot with their PIN, as that user could with
 * the file and their own PIN, and prints what it holds, one "NAME HEX" a line:
 *   replica_key, then role_key when the slot holds it.
 * The user is CMC_USER (or the only slot), the PIN CMC_PIN.
 *
 *   slot_keys DIR       exit 0 when the slot opened, 2 otherwise
 */
#include "crypto/cry.h"
#include "platform/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: slot_keys DIR\n");
        return 2;
    }
    const char *pin = getenv("CMC_PIN"), *user = getenv("CMC_USER"), *r;
    if (pin == NULL || cry_init() != CMC_OK)
        return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/keyslots", argv[1]);
    cry_slots *slots = NULL;
    struct cry_unlocked u;
    memset(&u, 0, sizeof u);
    int rc = cry_slots_load(path, &slots);
    if (rc == CMC_OK && user == NULL)
        rc = cry_slots_user(slots, 0, &user, &r);
    if (rc == CMC_OK)
        rc = cry_slots_unlock_ex(slots, user, pin, &u);
    if (rc == CMC_OK) {
        char hex[2 * CRY_KEY_BYTES + 1];
        cry_hex(hex, u.key->buf, CRY_KEY_BYTES);
        printf("replica_key %s\n", hex);
        if (u.role_key != NULL) {
            cry_hex(hex, u.role_key->buf, CRY_KEY_BYTES);
            printf("role_key %s\n", hex);
        }
        cry_memzero(hex, sizeof hex);
    } else {
        fprintf(stderr, "slot_keys: %s\n", cmc_errmsg());
    }
    cry_unlocked_clear(&u);
    cry_slots_free(slots);
    return rc == CMC_OK ? 0 : 2;
}
