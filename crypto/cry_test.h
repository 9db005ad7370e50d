/*
 * cry_test.h - test hooks of the crypto module (unit, fault and fuzz programs only).
 *
 * Argon2id at libsodium's interactive limits costs a tenth of a second per key slot, too
 * slow for tests that make hundreds. cry_kdf_set_test_limits(1) (in cry_test.c, linked only
 * into programs that call it) makes new slots use libsodium's minimum limits and lets slots
 * with them load; the programs that ship never contain it, so they can never weaken a slot.
 */
#ifndef CMC_CRY_TEST_H
#define CMC_CRY_TEST_H

#include <stdatomic.h>

/* 1: test limits for new slots and as the floor for loaded ones; 0: production limits. */
void cry_kdf_set_test_limits(int enable);

/* The switch itself, defined in slots.c and read there; only cry_test.c writes it. */
extern atomic_int cry_kdf_test_limits;

#endif
