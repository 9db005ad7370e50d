/*
 * plat.h - the only code that touches the operating system.
 *
 * Clocks, random bytes, files, the process lock and logging. Nothing outside platform/ calls
 * time(), clock_gettime(), open(), rename() or getrandom() directly (SQLCipher does its own
 * I/O through its VFS). Tests swap the clock for a fake one and make the file layer fail
 * the N-th write or fsync, as SQLite's VFS lets its own tests do (plat_test.h).
 *
 * All functions return a cmc_err and record a detail with cmc_fail() on failure. Paths may
 * appear in details; file contents never do. Thread-safe except the test hooks, which a
 * test sets before starting threads.
 */
#ifndef CMC_PLAT_H
#define CMC_PLAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- clocks ---------------------------------------------------------------------------- */

/* Wall-clock time in seconds since the Unix epoch (UTC). May jump; never order by it. */
int64_t plat_wall_now(void);
/* Monotonic time in nanoseconds since an arbitrary point; never goes back within a boot. */
uint64_t plat_mono_now_ns(void);
/* Initialises a condition variable whose timed waits run on CLOCK_MONOTONIC, so a step of
 * the wall clock neither cuts a wait short nor stretches it (deadlines from the real
 * monotonic clock, not the fake one of plat_test.h). */
void plat_cond_init_mono(pthread_cond_t *cv);
/* Waits on such a condition variable (mu held) for a signal or at most `ms` milliseconds. */
void plat_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint32_t ms);
/* Seconds since boot including suspend (CLOCK_BOOTTIME), for evidence that time has
 * passed which survives a wall-clock change but not a reboot. */
int64_t plat_boot_now(void);
/* An identifier of the current boot (from /proc/sys/kernel/random/boot_id), 36 chars + NUL;
 * empty when unavailable. */
void plat_boot_id(char out[37]);
/* Sleeps for `ms` milliseconds (fake clock: advances it instead). */
void plat_sleep_ms(uint32_t ms);

/* Formats `t` (Unix seconds, UTC) as "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with NUL). */
void plat_format_time(int64_t t, char out[21]);
/* Parses "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DD" (midnight UTC). CMC_ERR_INVALID if not. */
int plat_parse_time(const char *s, int64_t *out);

/* ---- random ---------------------------------------------------------------------------- */

/* Fills `buf` with `n` cryptographically secure random bytes (getrandom). */
int plat_random(void *buf, size_t n);

/* ---- files ----------------------------------------------------------------------------- */

/* Creates `path` and any missing parents with mode 0700; an existing directory is fine
 * (its mode is tightened to 0700 when it is ours). */
int plat_mkdir_private(const char *path);
/* Reads a whole file of at most `max` bytes into a new buffer (NUL-terminated for
 * convenience; *len excludes the NUL). CMC_ERR_NOT_FOUND if absent, CMC_ERR_TOO_LARGE if
 * bigger than `max`. Free with cmc_free (use plat_free_secret for secrets). */
int plat_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Replaces `path` atomically with `data`: writes a 0600 temporary in the same directory,
 * fsyncs it, renames it over `path`, fsyncs the directory. On any failure the old file is
 * untouched and the temporary is removed. ENOSPC maps to CMC_ERR_DISK_FULL. */
int plat_write_atomic(const char *path, const void *data, size_t len);
/* Removes a file; absent is not an error. */
int plat_remove(const char *path);
/* Overwrites a file's bytes with zeros, fsyncs and removes it (best effort on flash, where
 * the crypto-erase of keys is what really protects). Absent is not an error. */
int plat_shred(const char *path);
/* 1 if `path` exists, 0 if not. */
int plat_exists(const char *path);
/* Joins dir and name into out (size cap); CMC_ERR_TOO_LARGE if it does not fit. */
int plat_path_join(char *out, size_t cap, const char *dir, const char *name);

/* ---- process lock ---------------------------------------------------------------------- */

typedef struct plat_lock plat_lock;
/* Takes an exclusive advisory lock on `path` (created 0600). With `wait` 0 it fails at once
 * with CMC_ERR_BUSY when another process holds it. *out is NULL on failure. */
int plat_lock_acquire(const char *path, int wait, plat_lock **out);
/* Releases and frees; NULL is a no-op. */
void plat_lock_release(plat_lock *lock);

/* ---- process hardening ----------------------------------------------------------------- */

/* Disables core dumps and ptrace attachment by other same-user processes, so secrets in
 * memory do not reach disk through a crash. */
int plat_harden_process(void);

/* ---- logging --------------------------------------------------------------------------- */

enum plat_log_level { PLAT_LOG_DEBUG, PLAT_LOG_INFO, PLAT_LOG_WARN, PLAT_LOG_ERROR };

/* Writes one line to stderr (or the sink a test installed, plat_test.h) when `level` is at
 * least the threshold (CMC_LOG=debug|info|warn|error, default warn). Messages name events,
 * counts, plan ids and device ids only: never an NHS number, a name or any clinical text. */
void plat_log(enum plat_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- test hooks ------------------------------------------------------------------------ */

/* Named crash points for the kill -9 loops (docs/TESTING.md): when the environment variable
 * CMC_TEST_CRASH_POINT equals `name`, the process kills itself with SIGKILL right there, as
 * a power cut or an OOM kill would. Costs one getenv when unset. */
void plat_crash_point(const char *name);
/* Test hook: sleeps CMC_TEST_PAGE_DELAY_MS milliseconds when that variable is set, so a test
 * can cut the hub off between two pages of a sync. A no-op otherwise. */
void plat_test_delay(void);

#endif
