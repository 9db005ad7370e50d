/*
 * tool_slots.h - the first step every replica-opening test tool takes: unwrap one user's key
 * slot in DIR/keyslots with their PIN, as that user (or someone who knows their PIN) could.
 * The PIN comes from CMC_PIN (never the command line), the user from CMC_USER or else the
 * first slot.
 *
 * tool_unlock() fills a struct tool_slots (the loaded slot file, the user's name, which points
 * into it, and what the slot holds); tool_open_replica() does the same and opens
 * DIR/replica.db with the replica key. Both return CMC_OK, or an error code with
 * cmc_errmsg() saying why ("set CMC_PIN" when it is missing); tool_slots_free() releases
 * whatever was reached, on either path. tool_start() first checks the tool's argument count
 * (argc_want; usage is the line to show otherwise), then unlocks (and, with open_replica,
 * opens the replica) for the directory in argv[1]. Header-only: each tool is one C file.
 */
#ifndef CMC_TEST_TOOLS_TOOL_SLOTS_H
#define CMC_TEST_TOOLS_TOOL_SLOTS_H

#include "crypto/cry.h"
#include "platform/err.h"
#include "sync/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tool_slots {
    cry_slots *slots;
    const char *user;     /* CMC_USER, or the first slot's user (points into slots) */
    struct cry_unlocked u;
    sqlite3 *db;          /* tool_open_replica() only */
};

static inline int tool_unlock(const char *dir, struct tool_slots *t)
{
    const char *pin = getenv("CMC_PIN"), *role;
    char path[4096];
    int rc;
    memset(t, 0, sizeof *t);
    t->user = getenv("CMC_USER");
    if (pin == NULL)
        return cmc_fail(CMC_ERR_INVALID, "set CMC_PIN");
    if ((rc = cry_init()) != CMC_OK)
        return rc;
    snprintf(path, sizeof path, "%s/keyslots", dir);
    rc = cry_slots_load(path, &t->slots);
    if (rc == CMC_OK && t->user == NULL)
        rc = cry_slots_user(t->slots, 0, &t->user, &role);
    if (rc == CMC_OK)
        rc = cry_slots_unlock_ex(t->slots, t->user, pin, &t->u);
    return rc;
}

static inline int tool_open_replica(const char *dir, struct tool_slots *t)
{
    char path[4096];
    int rc = tool_unlock(dir, t);
    snprintf(path, sizeof path, "%s/replica.db", dir);
    return rc == CMC_OK ? db_open(path, t->u.key, &t->db) : rc;
}

static inline int tool_start(int argc, char **argv, int argc_want, const char *usage,
                             int open_replica, struct tool_slots *t)
{
    memset(t, 0, sizeof *t);
    if (argc != argc_want)
        return cmc_fail(CMC_ERR_USAGE, "usage: %s", usage);
    return open_replica ? tool_open_replica(argv[1], t) : tool_unlock(argv[1], t);
}

static inline void tool_slots_free(struct tool_slots *t)
{
    db_close(t->db);
    cry_unlocked_clear(&t->u);
    cry_slots_free(t->slots);
    memset(t, 0, sizeof *t);
}

#endif
