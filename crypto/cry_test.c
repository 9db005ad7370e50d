/*
 * cry_test.c - the crypto module's test hooks (cry_test.h). Nothing in the product calls into
 * this file, so the programs that ship do not link it.
 */
#include "crypto/cry_test.h"

void cry_kdf_set_test_limits(int enable)
{
    atomic_store(&cry_kdf_test_limits, enable != 0);
}
