/*
 * plat_test.c - the platform layer's test hooks (plat_test.h). Nothing in the product calls
 * into this file, so the programs that ship do not link it.
 */
#include "platform/plat_test.h"

#include "platform/err.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void plat_fake_clock_enable(int64_t wall, uint64_t mono_ns)
{
    plat_test_state.clock_fake = 1;
    plat_test_state.clock_wall = wall;
    plat_test_state.clock_mono_ns = mono_ns;
}

void plat_fake_clock_disable(void)
{
    plat_test_state.clock_fake = 0;
}

void plat_fake_clock_advance(uint64_t ns)
{
    plat_test_state.clock_mono_ns += ns;
    plat_test_state.clock_wall += (int64_t)(ns / 1000000000u);
}

void plat_fake_clock_set_wall(int64_t wall)
{
    plat_test_state.clock_wall = wall;
}

void plat_fault_write_after(long n, int err)
{
    atomic_store(&plat_test_state.write_count, 0);
    plat_test_state.write_errno = err;
    atomic_store(&plat_test_state.write_at, n);
}

void plat_fault_fsync_after(long n, int err)
{
    atomic_store(&plat_test_state.fsync_count, 0);
    plat_test_state.fsync_errno = err;
    atomic_store(&plat_test_state.fsync_at, n);
}

void plat_log_set_level(enum plat_log_level level)
{
    plat_test_state.log_level = (int)level;
}

void plat_log_set_sink(void (*sink)(enum plat_log_level, const char *, void *), void *ctx)
{
    plat_test_state.log_sink = sink;
    plat_test_state.log_sink_ctx = ctx;
}

int plat_file_size(const char *path, uint64_t *out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return cmc_fail(CMC_ERR_NOT_FOUND, "%s does not exist", path);
        return cmc_fail(CMC_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    *out = (uint64_t)st.st_size;
    return CMC_OK;
}
