#include "platform/plat.h"

#include "platform/plat_test.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks ---------------------------------------------------------------------------- */

/* The state the test hooks set (plat_test.h): no fake clock, no faults, log level from
 * CMC_LOG. */
struct plat_test_state plat_test_state = {.write_at = -1, .fsync_at = -1, .log_level = -1};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t plat_wall_now(void)
{
    if (plat_test_state.clock_fake)
        return plat_test_state.clock_wall;
    return clock_ns(CLOCK_REALTIME) / 1000000000;
}

uint64_t plat_mono_now_ns(void)
{
    if (plat_test_state.clock_fake)
        return plat_test_state.clock_mono_ns;
    return (uint64_t)clock_ns(CLOCK_MONOTONIC);
}

void plat_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

void plat_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

int64_t plat_boot_now(void)
{
    if (plat_test_state.clock_fake)
        return (int64_t)(plat_test_state.clock_mono_ns / 1000000000u);
    return clock_ns(CLOCK_BOOTTIME) / 1000000000;
}

void plat_boot_id(char out[37])
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL)
        return;
    if (fgets(out, 37, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

void plat_sleep_ms(uint32_t ms)
{
    if (plat_test_state.clock_fake) {
        uint64_t ns = (uint64_t)ms * 1000000u;
        plat_test_state.clock_mono_ns += ns;
        plat_test_state.clock_wall += (int64_t)(ns / 1000000000u);
        return;
    }
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void plat_format_time(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int days_in_month(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), after Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int plat_parse_time(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    size_t len = strlen(s);
    if (len != 10 && len != 20)
        return cmc_fail(CMC_ERR_INVALID, "not a date or UTC time");
    if (!parse_digits(s, 4, &y) || s[4] != '-' || !parse_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !parse_digits(s + 8, 2, &d))
        return cmc_fail(CMC_ERR_INVALID, "not a date (YYYY-MM-DD)");
    if (y < 1850 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return cmc_fail(CMC_ERR_INVALID, "date out of range");
    if (len == 20) {
        if (s[10] != 'T' || !parse_digits(s + 11, 2, &h) || s[13] != ':' ||
            !parse_digits(s + 14, 2, &mi) || s[16] != ':' || !parse_digits(s + 17, 2, &se) ||
            s[19] != 'Z')
            return cmc_fail(CMC_ERR_INVALID, "not a UTC time (YYYY-MM-DDTHH:MM:SSZ)");
        if (h > 23 || mi > 59 || se > 60)
            return cmc_fail(CMC_ERR_INVALID, "time out of range");
    }
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return CMC_OK;
}

/* ---- random ---------------------------------------------------------------------------- */

int plat_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return cmc_fail(CMC_ERR_IO, "random source failed: %s", strerror(errno));
        }
        p += got;
        n -= (size_t)got;
    }
    return CMC_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

static int io_errno_to_cmc(int e)
{
    return e == ENOSPC || e == EDQUOT ? CMC_ERR_DISK_FULL : CMC_ERR_IO;
}

static ssize_t layer_write(int fd, const void *buf, size_t n)
{
    struct plat_test_state *t = &plat_test_state;
    long at = atomic_load_explicit(&t->write_at, memory_order_relaxed);
    if (at >= 0 && atomic_fetch_add(&t->write_count, 1) == at) {
        errno = t->write_errno ? t->write_errno : EIO;
        return -1;
    }
    return write(fd, buf, n);
}

static int layer_fsync(int fd)
{
    struct plat_test_state *t = &plat_test_state;
    long at = atomic_load_explicit(&t->fsync_at, memory_order_relaxed);
    if (at >= 0 && atomic_fetch_add(&t->fsync_count, 1) == at) {
        errno = t->fsync_errno ? t->fsync_errno : EIO;
        return -1;
    }
    return fsync(fd);
}

int plat_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return cmc_fail(CMC_ERR_TOO_LARGE, "path too long");
    return CMC_OK;
}

int plat_mkdir_private(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return cmc_fail(CMC_ERR_INVALID, "bad directory path");
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return cmc_fail(io_errno_to_cmc(errno), "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return cmc_fail(io_errno_to_cmc(errno), "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return cmc_fail(CMC_ERR_IO, "%s is not a directory", buf);
    if (st.st_uid == geteuid() && (st.st_mode & 077) != 0)
        chmod(buf, 0700);
    return CMC_OK;
}

int plat_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return cmc_fail(CMC_ERR_NOT_FOUND, "%s does not exist", path);
        return cmc_fail(CMC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return cmc_fail(CMC_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return cmc_fail(CMC_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = cmc_malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        cmc_free(buf);
        return cmc_fail(CMC_ERR_IO, "short read from %s", path);
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return CMC_OK;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return cmc_fail(CMC_ERR_TOO_LARGE, "path too long");
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cmc_fail(CMC_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = layer_fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return cmc_fail(io_errno_to_cmc(e), "cannot sync directory %s: %s", dir, strerror(e));
    return CMC_OK;
}

int plat_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    uint8_t rnd[6];
    int rc = plat_random(rnd, sizeof rnd);
    if (rc != CMC_OK)
        return rc;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1], rnd[2],
                     rnd[3], rnd[4], rnd[5]);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return cmc_fail(CMC_ERR_TOO_LARGE, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return cmc_fail(io_errno_to_cmc(errno), "cannot create %s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = layer_write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return cmc_fail(io_errno_to_cmc(e), "cannot write %s: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (layer_fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return cmc_fail(io_errno_to_cmc(e), "cannot sync %s: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return cmc_fail(io_errno_to_cmc(e), "cannot close %s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cmc_fail(io_errno_to_cmc(e), "cannot replace %s: %s", path, strerror(e));
    }
    /* The new file is in place, whole and synced: failing now would tell the caller the old
     * file is untouched when it is not. A failed directory sync leaves only the rename's
     * durability in doubt (after a crash, the old or the new file, each whole): logged. */
    if (fsync_dir_of(path) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "%s", cmc_errmsg());
    return CMC_OK;
}

int plat_remove(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return cmc_fail(CMC_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return CMC_OK;
}

int plat_shred(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return CMC_OK;
        return cmc_fail(CMC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        static const uint8_t zeros[4096];
        off_t left = st.st_size;
        while (left > 0) {
            size_t chunk = left > (off_t)sizeof zeros ? sizeof zeros : (size_t)left;
            ssize_t w = layer_write(fd, zeros, chunk);
            if (w <= 0)
                break;
            left -= w;
        }
        layer_fsync(fd);
    }
    close(fd);
    return plat_remove(path);
}

int plat_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- process lock ---------------------------------------------------------------------- */

struct plat_lock {
    int fd;
};

int plat_lock_acquire(const char *path, int wait, plat_lock **out)
{
    *out = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return cmc_fail(io_errno_to_cmc(errno), "cannot open lock %s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return cmc_fail(CMC_ERR_BUSY, "another cmc process is using this data directory");
        return cmc_fail(CMC_ERR_IO, "cannot lock %s: %s", path, strerror(e));
    }
    plat_lock *lock = cmc_malloc(sizeof *lock);
    if (lock == NULL) {
        close(fd);
        return cmc_fail(CMC_ERR_NOMEM, "out of memory");
    }
    lock->fd = fd;
    *out = lock;
    return CMC_OK;
}

void plat_lock_release(plat_lock *lock)
{
    if (lock == NULL)
        return;
    flock(lock->fd, LOCK_UN);
    close(lock->fd);
    cmc_free(lock);
}

/* ---- hardening ------------------------------------------------------------------------- */

int plat_harden_process(void)
{
    struct rlimit rl = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        return cmc_fail(CMC_ERR_IO, "cannot disable core dumps: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return cmc_fail(CMC_ERR_IO, "cannot mark process undumpable: %s", strerror(errno));
    return CMC_OK;
}

/* ---- crash points ---------------------------------------------------------------------- */

void plat_crash_point(const char *name)
{
    const char *want = getenv("CMC_TEST_CRASH_POINT");
    if (want != NULL && strcmp(want, name) == 0)
        kill(getpid(), SIGKILL);
}

void plat_test_delay(void)
{
    const char *ms = getenv("CMC_TEST_PAGE_DELAY_MS");
    if (ms != NULL)
        plat_sleep_ms((uint32_t)strtoul(ms, NULL, 10));
}

/* ---- logging --------------------------------------------------------------------------- */

/* The levels' names, indexed by level: CMC_LOG's values and each line's tag. */
static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int current_level(void)
{
    if (plat_test_state.log_level >= 0)
        return plat_test_state.log_level;
    const char *env = getenv("CMC_LOG");
    for (int i = 0; env != NULL && i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcmp(env, level_names[i]) == 0)
            return i;
    return PLAT_LOG_WARN;
}

void plat_log(enum plat_log_level level, const char *fmt, ...)
{
    if ((int)level < current_level())
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (plat_test_state.log_sink != NULL) {
        plat_test_state.log_sink(level, line, plat_test_state.log_sink_ctx);
        return;
    }
    char ts[21];
    plat_format_time(plat_wall_now(), ts);
    fprintf(stderr, "%s %s %s\n", ts, level_names[level], line);
}
