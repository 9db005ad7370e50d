/*
 * plat_test.h - test hooks of the platform layer (unit, fault and fuzz programs only).
 *
 * Tests swap the clock for a fake one, make the file layer fail the N-th write or fsync (as
 * SQLite's VFS lets its own tests do), and capture or silence log lines. The functions live
 * in plat_test.c, which nothing in the product calls, so the programs that ship do not link
 * them; the product only reads the state they set (plat_test_state), at the cost of a load
 * and a predictable branch. Set the hooks before starting threads.
 *
 * (plat_crash_point and plat_test_delay stay in plat.h: end-to-end tests drive them in the
 * shipped programs through the environment.)
 */
#ifndef CMC_PLAT_TEST_H
#define CMC_PLAT_TEST_H

#include "platform/plat.h"

#include <stdatomic.h>

/* Fake clock: when enabled, plat_wall_now() returns `wall` and plat_mono_now_ns()/boot
 * return `mono_ns`; plat_fake_clock_advance() moves both forward (wall may be set back
 * independently with plat_fake_clock_set_wall to model a user winding the clock). */
void plat_fake_clock_enable(int64_t wall, uint64_t mono_ns);
void plat_fake_clock_disable(void);
void plat_fake_clock_advance(uint64_t ns);
void plat_fake_clock_set_wall(int64_t wall);

/* Fault injection in the file layer: the n-th write (or fsync) from now fails with `err`
 * (an errno value, e.g. ENOSPC or EIO); n < 0 disables. */
void plat_fault_write_after(long n, int err);
void plat_fault_fsync_after(long n, int err);

/* Log threshold regardless of CMC_LOG. */
void plat_log_set_level(enum plat_log_level level);
/* Captures log lines instead of printing them; NULL restores stderr. */
void plat_log_set_sink(void (*sink)(enum plat_log_level, const char *line, void *ctx), void *ctx);

/* Size of a file in bytes (CMC_ERR_NOT_FOUND when absent). */
int plat_file_size(const char *path, uint64_t *out);

/* What the hooks set and plat.c reads. Defined in plat.c; written only through the hooks. */
struct plat_test_state {
    int clock_fake;
    int64_t clock_wall;
    uint64_t clock_mono_ns;
    atomic_long write_at, write_count; /* write_at < 0: no fault */
    atomic_long fsync_at, fsync_count;
    int write_errno, fsync_errno;
    int log_level; /* < 0: from CMC_LOG */
    void (*log_sink)(enum plat_log_level, const char *, void *);
    void *log_sink_ctx;
};
extern struct plat_test_state plat_test_state;

#endif
