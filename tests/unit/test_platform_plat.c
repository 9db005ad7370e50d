/* Platform layer: atomic replace, fault injection, lock, clocks, time parsing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "tests/support/run.h"
#include "tests/support/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    return tst_tmpdir_make("plat", tmpdir, sizeof tmpdir);
}

static int teardown(void **state)
{
    (void)state;
    return tst_tmpdir_remove(tmpdir);
}

/* The number of entries in a directory, besides "." and "..". */
static int entries_in(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* The file at p holds exactly the `len` bytes of `want`. */
static void expect_file(const char *p, const char *want, size_t len)
{
    uint8_t *buf;
    size_t got;
    assert_int_equal(plat_read_file(p, 100, &buf, &got), CMC_OK);
    assert_int_equal(got, len);
    assert_memory_equal(buf, want, len);
    cmc_free(buf);
}

static void path_in(char *out, const char *name)
{
    assert_int_equal(plat_path_join(out, 256, tmpdir, name), CMC_OK);
}

static void test_atomic_write_replaces_with_0600(void **state)
{
    (void)state;
    char p[256];
    path_in(p, "f");
    assert_int_equal(plat_write_atomic(p, "first", 5), CMC_OK);
    assert_int_equal(plat_write_atomic(p, "second!", 7), CMC_OK);
    expect_file(p, "second!", 7);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* A failed write (a full disk) must leave the old file exactly as it was and no temporary. */
static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
    char p[256];
    path_in(p, "keep");
    assert_int_equal(plat_write_atomic(p, "original", 8), CMC_OK);
    plat_fault_write_after(0, ENOSPC);
    assert_int_equal(plat_write_atomic(p, "replacement", 11), CMC_ERR_DISK_FULL);
    plat_fault_write_after(-1, 0);
    plat_fault_fsync_after(0, EIO);
    assert_int_equal(plat_write_atomic(p, "replacement", 11), CMC_ERR_IO);
    plat_fault_fsync_after(-1, 0);
    expect_file(p, "original", 8);
    /* only "keep" remains: no stray temporaries */
    assert_int_equal(entries_in(tmpdir), 1);
}

static void test_read_file_limits(void **state)
{
    (void)state;
    char p[256];
    path_in(p, "big");
    assert_int_equal(plat_write_atomic(p, "0123456789", 10), CMC_OK);
    uint8_t *buf = (uint8_t *)"x";
    size_t len = 99;
    assert_int_equal(plat_read_file(p, 9, &buf, &len), CMC_ERR_TOO_LARGE);
    assert_null(buf);
    char missing[256];
    path_in(missing, "missing");
    assert_int_equal(plat_read_file(missing, 9, &buf, &len), CMC_ERR_NOT_FOUND);
}

static void test_mkdir_private(void **state)
{
    (void)state;
    char p[256];
    path_in(p, "a/b/c");
    assert_int_equal(plat_mkdir_private(p), CMC_OK);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(plat_mkdir_private(p), CMC_OK);
}

/* Two writers must never touch one replica: a second process cannot take the lock. */
static void test_process_lock_excludes_other_process(void **state)
{
    (void)state;
    char p[256];
    path_in(p, "lock");
    plat_lock *lock;
    assert_int_equal(plat_lock_acquire(p, 0, &lock), CMC_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        plat_lock *other;
        int rc = plat_lock_acquire(p, 0, &other);
        _exit(rc == CMC_ERR_BUSY && other == NULL ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    plat_lock_release(lock);
    assert_int_equal(plat_lock_acquire(p, 0, &lock), CMC_OK);
    plat_lock_release(lock);
    plat_lock_release(NULL);
}

static void test_fake_clock(void **state)
{
    (void)state;
    plat_fake_clock_enable(1700000000, 5000000000u);
    assert_int_equal(plat_wall_now(), 1700000000);
    plat_fake_clock_advance(3000000000u);
    assert_int_equal(plat_wall_now(), 1700000003);
    assert_int_equal(plat_mono_now_ns(), 8000000000u);
    plat_fake_clock_set_wall(1600000000);
    assert_int_equal(plat_wall_now(), 1600000000);
    assert_int_equal(plat_mono_now_ns(), 8000000000u); /* winding the wall clock leaves mono */
    plat_sleep_ms(1500);
    assert_int_equal(plat_mono_now_ns(), 9500000000u);
    plat_fake_clock_disable();
    assert_true(plat_wall_now() > 1700000000);
}

static void test_time_parse_and_format(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(plat_parse_time("2026-02-11T15:02:00Z", &t), CMC_OK);
    char out[21];
    plat_format_time(t, out);
    assert_string_equal(out, "2026-02-11T15:02:00Z");
    assert_int_equal(plat_parse_time("1970-01-01", &t), CMC_OK);
    assert_int_equal(t, 0);
    assert_int_equal(plat_parse_time("2024-02-29", &t), CMC_OK);
    /* no such day, month or hour; not zero-padded; not UTC */
    static const char *const refused[] = {
        "2026-02-29", "2026-02-30", "2026-13-01", "2026-1-01", "2026-02-11T25:00:00Z", "2026-02-11T10:00:00+01",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (plat_parse_time(refused[i], &t) != CMC_ERR_INVALID)
            fail_msg("time accepted: %s", refused[i]);
}

static void test_error_convention(void **state)
{
    (void)state;
    assert_int_equal(cmc_fail(CMC_ERR_INVALID, "nhs_number: check digit is wrong"), CMC_ERR_INVALID);
    assert_string_equal(cmc_errmsg(), "nhs_number: check digit is wrong");
    cmc_err_clear();
    assert_string_equal(cmc_errmsg(), "success");
    assert_int_equal(cmc_exit_code(CMC_OK), 0);
    assert_int_equal(cmc_exit_code(CMC_ERR_NET), 1);
    assert_int_equal(cmc_exit_code(CMC_ERR_INVALID), 2);
    assert_int_equal(cmc_exit_code(CMC_ERR_NOT_FOUND), 3);
    assert_int_equal(cmc_exit_code(CMC_ERR_AUTH), 4);
    assert_int_equal(cmc_exit_code(CMC_ERR_WIPED), 4);
    for (int c = CMC_OK; c <= CMC_ERR_STATE; c++) {
        assert_string_not_equal(cmc_strerror(c), "unknown error");
        assert_string_not_equal(cmc_errname(c), "unknown");
    }
    /* Names are part of the --json contract: a few fixed ones. */
    assert_string_equal(cmc_errname(CMC_OK), "ok");
    assert_string_equal(cmc_errname(CMC_ERR_NOT_FOUND), "not_found");
    assert_string_equal(cmc_errname(CMC_ERR_NET), "network");
    assert_string_equal(cmc_errname(CMC_ERR_STATE), "state");
    assert_string_equal(cmc_errname(CMC_ERR_STATE + 1), "unknown");
}

static void test_alloc_failure_hook(void **state)
{
    (void)state;
    cmc_alloc_fail_after(1, 0);
    void *a = cmc_malloc(8);
    void *b = cmc_malloc(8);
    void *c = cmc_malloc(8);
    cmc_alloc_fail_after(-1, 0);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c); /* not sticky */
    cmc_free(a);
    cmc_free(c);
    cmc_alloc_fail_after(0, 1);
    assert_null(cmc_strdup("x"));
    assert_null(cmc_calloc(1, 1));
    cmc_alloc_fail_after(-1, 0);
}

static int log_lines;
static void count_sink(enum plat_log_level level, const char *line, void *ctx)
{
    (void)level;
    (void)line;
    (void)ctx;
    log_lines++;
}

static void test_log_threshold(void **state)
{
    (void)state;
    plat_log_set_sink(count_sink, NULL);
    plat_log_set_level(PLAT_LOG_WARN);
    plat_log(PLAT_LOG_INFO, "sync: %d plans", 3);
    plat_log(PLAT_LOG_WARN, "sync: hub unreachable");
    plat_log_set_sink(NULL, NULL);
    assert_int_equal(log_lines, 1);
}

TST_MAIN(NULL, setup, teardown,
         test_atomic_write_replaces_with_0600, test_failed_write_keeps_old_file,
         test_read_file_limits, test_mkdir_private, test_process_lock_excludes_other_process,
         test_fake_clock, test_time_parse_and_format, test_error_convention,
         test_alloc_failure_hook, test_log_threshold)
