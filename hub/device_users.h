/*
 * device_users.h - the people of each device: the users its key-slot file holds, with their
 * roles and public signing keys, as the device last registered them (POST /v1/users, signed
 * by the device's key). A pushed edit must be signed by one of the device's clinician users
 * (hub_push checks it through hub_device_user_key); the list a device sends replaces the one
 * before, so a user removed from the device can no longer sign its edits.
 *
 * Functions take the hub handle (one thread at a time, as every hub_* function) and return a
 * cmc_err.
 */
#ifndef CMC_HUB_DEVICE_USERS_H
#define CMC_HUB_DEVICE_USERS_H

#include "hub/hub.h"
#include "sync/wire.h"

/* The migration step that makes the table (appended to the hub's migrations). */
extern const char hub_schema_device_users[];

/* Replaces the device's users with v[0..n). Names must be 1..CRY_USER_MAX printable bytes,
 * roles "urgent_care" or "clinician", no name twice (CMC_ERR_INVALID, nothing changed). */
int hub_device_users_set(hub *h, const char *device_id, const struct wire_user *v, size_t n);
/* The role and public key of `user` on the device; CMC_ERR_NOT_FOUND if not registered. */
int hub_device_user_key(hub *h, const char *device_id, const char *user,
                        char role[CRY_ROLE_MAX + 1], uint8_t pk[CRY_SIGN_PK_BYTES]);

#endif
