/*
 * powerloss - power cuts and full disks under SQLCipher, for the replica (docs/TESTING.md).
 *
 *   powerloss [--bundles N] [--plans-per-bundle P] [--max-points M] [--stride S]
 *
 * A SQLite VFS shim, registered as the default VFS underneath SQLCipher (so it sees encrypted
 * pages), counts mutating I/O (writes, truncates, syncs). In "power" mode, at the Nth of them
 * it does what a power cut does to a disk: every byte written since that file's last sync is
 * put back as it was (the shim saved the old bytes before each write) and files grown since
 * their last sync shrink back; then the process dies on the spot. kill -9 alone cannot test
 * this: the OS keeps unsynced writes of a killed process, so SQLite survives any process
 * crash whatever its sync setting. In "full" mode the Nth write fails with SQLITE_FULL
 * instead (a full disk), and the process goes on.
 *
 * The workload applies N signed bundles of P plans each through engine_apply_bundle (the
 * agent's own apply path) to a real replica. For N = 1, S+1, 2S+1, ... (every I/O point when
 * S is 1) until the workload runs through without reaching N:
 *   power: a child process runs the workload and is cut at N; the parent then opens the
 *          replica, which must pass store_verify, stand at a bundle boundary (cursor and plan
 *          count of a whole number of bundles, the last plan of that bundle present, the first
 *          of the next absent) and accept the remaining bundles.
 *   full:  the workload in a child stops at the first refused bundle, which must fail with
 *          CMC_ERR_DISK_FULL or CMC_ERR_IO (a clear error); the replica must verify at a
 *          bundle boundary, and once space is back (no more faults) the rest must apply.
 * Prints "powerloss: K cuts, F full-disk points, all consistent" and exits 0, or names the
 * first inconsistency and exits 1.
 *
 * What the shim does not model: directory entries (a file created and synced is taken as
 * durable) and torn sectors (a write is lost whole or kept whole).
 */
#include "agent/engine.h"
#include "agent/store.h"
#include "agent/store_sync.h"
#include "agent/store_test.h"
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/db.h"
#include "tests/fault/fault_args.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_CUT 77

/* ---- the shim --------------------------------------------------------------------------- */

struct undo {
    sqlite3_int64 off;
    int len;
    unsigned char *old;
};

struct track {
    char path[512];
    sqlite3_int64 synced_size; /* -1: nothing unsynced */
    struct undo *undo;
    size_t n_undo, cap_undo;
};

static struct track tracks[16];
static size_t n_tracks;
static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static long io_count, fault_at = -1;
static int fault_full; /* 0: power cut at fault_at; 1: SQLITE_FULL at fault_at */

struct shim_file {
    sqlite3_file base;
    struct track *t;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

static struct track *track_of(const char *path)
{
    for (size_t i = 0; i < n_tracks; i++)
        if (strcmp(tracks[i].path, path) == 0)
            return &tracks[i];
    if (n_tracks == sizeof tracks / sizeof tracks[0])
        abort();
    struct track *t = &tracks[n_tracks++];
    snprintf(t->path, sizeof t->path, "%s", path);
    t->synced_size = -1;
    return t;
}

static void track_clear(struct track *t)
{
    for (size_t i = 0; i < t->n_undo; i++)
        free(t->undo[i].old);
    t->n_undo = 0;
    t->synced_size = -1;
}

/* The power cut: every file goes back to what its last sync made durable; then death. */
static void power_cut(void)
{
    for (size_t i = 0; i < n_tracks; i++) {
        struct track *t = &tracks[i];
        if (t->synced_size < 0)
            continue;
        int fd = open(t->path, O_RDWR);
        if (fd < 0)
            continue;
        for (size_t k = t->n_undo; k-- > 0;)
            if (pwrite(fd, t->undo[k].old, (size_t)t->undo[k].len, t->undo[k].off) < 0)
                _exit(3);
        if (ftruncate(fd, t->synced_size) != 0)
            _exit(3);
        close(fd);
    }
    _exit(EXIT_CUT);
}

/* Counts one mutating I/O; returns 1 when this one must fail with SQLITE_FULL. */
static int io_point(void)
{
    if (++io_count != fault_at)
        return 0;
    if (!fault_full)
        power_cut();
    return 1;
}

static sqlite3_int64 real_size(sqlite3_file *f)
{
    sqlite3_int64 sz = 0;
    if (f->pMethods->xFileSize(f, &sz) != SQLITE_OK)
        return 0;
    return sz;
}

static void remember(struct shim_file *sf, sqlite3_int64 off, int len)
{
    struct track *t = sf->t;
    sqlite3_int64 size = real_size(sf->real);
    if (t->synced_size < 0)
        t->synced_size = size;
    if (off >= size)
        return; /* new bytes: the truncate back to synced_size removes them */
    if (off + len > size)
        len = (int)(size - off);
    if (t->n_undo == t->cap_undo) {
        t->cap_undo = t->cap_undo ? t->cap_undo * 2 : 64;
        t->undo = realloc(t->undo, t->cap_undo * sizeof *t->undo);
        if (t->undo == NULL)
            abort();
    }
    struct undo *u = &t->undo[t->n_undo++];
    u->off = off;
    u->len = len;
    u->old = malloc((size_t)len);
    if (u->old == NULL || sf->real->pMethods->xRead(sf->real, u->old, len, off) != SQLITE_OK)
        abort();
}

static int x_close(sqlite3_file *f)
{
    struct shim_file *sf = (struct shim_file *)f;
    return sf->real->pMethods->xClose(sf->real);
}
static int x_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *sf = (struct shim_file *)f;
    return sf->real->pMethods->xRead(sf->real, buf, amt, off);
}
static int x_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    struct shim_file *sf = (struct shim_file *)f;
    if (io_point())
        return SQLITE_FULL;
    if (sf->t != NULL)
        remember(sf, off, amt);
    return sf->real->pMethods->xWrite(sf->real, buf, amt, off);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct shim_file *sf = (struct shim_file *)f;
    if (io_point())
        return SQLITE_IOERR_TRUNCATE;
    if (sf->t != NULL) {
        sqlite3_int64 cur = real_size(sf->real);
        if (size < cur)
            remember(sf, size, (int)(cur - size));
        else if (sf->t->synced_size < 0)
            sf->t->synced_size = cur;
    }
    return sf->real->pMethods->xTruncate(sf->real, size);
}
static int x_sync(sqlite3_file *f, int flags)
{
    struct shim_file *sf = (struct shim_file *)f;
    if (io_point())
        return SQLITE_IOERR_FSYNC;
    int rc = sf->real->pMethods->xSync(sf->real, flags);
    if (rc == SQLITE_OK && sf->t != NULL)
        track_clear(sf->t);
    return rc;
}
static int x_size(sqlite3_file *f, sqlite3_int64 *out)
{
    struct shim_file *sf = (struct shim_file *)f;
    return sf->real->pMethods->xFileSize(sf->real, out);
}
static int x_lock(sqlite3_file *f, int l)
{
    return ((struct shim_file *)f)->real->pMethods->xLock(((struct shim_file *)f)->real, l);
}
static int x_unlock(sqlite3_file *f, int l)
{
    return ((struct shim_file *)f)->real->pMethods->xUnlock(((struct shim_file *)f)->real, l);
}
static int x_check_lock(sqlite3_file *f, int *out)
{
    return ((struct shim_file *)f)->real->pMethods->xCheckReservedLock(((struct shim_file *)f)->real, out);
}
static int x_fcntl(sqlite3_file *f, int op, void *arg)
{
    return ((struct shim_file *)f)->real->pMethods->xFileControl(((struct shim_file *)f)->real, op, arg);
}
static int x_sector(sqlite3_file *f)
{
    return ((struct shim_file *)f)->real->pMethods->xSectorSize(((struct shim_file *)f)->real);
}
static int x_devchar(sqlite3_file *f)
{
    return ((struct shim_file *)f)->real->pMethods->xDeviceCharacteristics(((struct shim_file *)f)->real);
}
static int x_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return ((struct shim_file *)f)->real->pMethods->xShmMap(((struct shim_file *)f)->real, pg, pgsz, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return ((struct shim_file *)f)->real->pMethods->xShmLock(((struct shim_file *)f)->real, off, n, flags);
}
static void x_shm_barrier(sqlite3_file *f)
{
    ((struct shim_file *)f)->real->pMethods->xShmBarrier(((struct shim_file *)f)->real);
}
static int x_shm_unmap(sqlite3_file *f, int del)
{
    return ((struct shim_file *)f)->real->pMethods->xShmUnmap(((struct shim_file *)f)->real, del);
}

static const sqlite3_io_methods shim_io = {
    2, x_close, x_read, x_write, x_truncate, x_sync, x_size, x_lock, x_unlock, x_check_lock,
    x_fcntl, x_sector, x_devchar, x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, NULL, NULL,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct shim_file *sf = (struct shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->t = name != NULL ? track_of(name) : NULL;
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    sf->base.pMethods = rc == SQLITE_OK ? &shim_io : NULL;
    return rc;
}
static int x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    struct track *t = track_of(name);
    track_clear(t);
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static void shim_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *real_vfs;
    shim_vfs.zName = "powerloss";
    shim_vfs.szOsFile = (int)sizeof(struct shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = x_open;
    shim_vfs.xDelete = x_delete;
    if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK)
        abort();
}

/* ---- the workload ----------------------------------------------------------------------- */

static long n_bundles = 6, per_bundle = 8;
static char dir[64], replica[128], slots[128], template_db[128];
static struct cry_secret *key, *hub_sk;
static uint8_t hub_pk[CRY_SIGN_PK_BYTES];
static const uint8_t device_uuid[16] = { 9, 8, 7, 6, 5, 4, 0x43, 2, 0x81, 0, 1, 2, 3, 4, 5, 6 };
static uint8_t **bundles;
static size_t *bundle_len;
static char (*plan_ids)[PLAN_ID_LEN + 1];
/* Bundles the child saw committed (shared with the parent): a cut may not take them back. */
static volatile long *committed;

static void die(const char *what)
{
    fprintf(stderr, "powerloss: %s: %s\n", what, cmc_errmsg());
    exit(1);
}

static void build_bundles(void)
{
    bundles = cmc_calloc((size_t)n_bundles, sizeof *bundles);
    bundle_len = cmc_calloc((size_t)n_bundles, sizeof *bundle_len);
    plan_ids = cmc_calloc((size_t)(n_bundles * per_bundle), sizeof *plan_ids);
    long seed_i = 0;
    for (long b = 0; b < n_bundles; b++) {
        struct bundle_op *ops = cmc_calloc((size_t)per_bundle, sizeof *ops);
        for (long k = 0; k < per_bundle; k++) {
            int status = 0, extra = 0;
            bundle_op_init(&ops[k]);
            do {
                plan_free(&ops[k].plan);
                if (hub_seed_plan(4242, seed_i++, &ops[k].plan, &status, &extra) != CMC_OK)
                    die("seed plan");
            } while (status != PLAN_STATUS_PUBLISHED);
            ops[k].kind = BUNDLE_OP_PUT;
            ops[k].seq = (uint64_t)(b * per_bundle + k + 1);
            snprintf(ops[k].plan_id, sizeof ops[k].plan_id, "%s", ops[k].plan.plan_id);
            snprintf(plan_ids[b * per_bundle + k], sizeof plan_ids[0], "%s", ops[k].plan.plan_id);
        }
        struct bundle_header h;
        memset(&h, 0, sizeof h);
        memcpy(h.device_id, device_uuid, 16);
        h.from_cursor = (uint64_t)(b * per_bundle);
        h.to_cursor = (uint64_t)((b + 1) * per_bundle);
        h.hub_time = 1790000000;
        if (bundle_build(&h, ops, (size_t)per_bundle, hub_sk, &bundles[b], &bundle_len[b]) != CMC_OK)
            die("bundle_build");
        for (long k = 0; k < per_bundle; k++)
            bundle_op_clear(&ops[k]);
        cmc_free(ops);
    }
}

static int open_replica(store **st)
{
    struct store_session who = { .user = "crew", .role = STORE_ROLE_URGENT_CARE };
    return store_open(replica, key, &who, st);
}

/* Applies bundles from the replica's cursor on; returns the first failure. */
static int apply_rest(store *st, long *applied)
{
    struct engine_config cfg = { .dir = dir, .slots_path = slots, .replica_path = replica };
    int64_t cursor = 0;
    *applied = 0;
    if (store_state_get_int(st, "cursor", &cursor) != CMC_OK)
        return cmc_fail(CMC_ERR_STATE, "no cursor");
    for (long b = cursor / per_bundle; b < n_bundles; b++) {
        struct engine_report rep;
        int more = 0;
        memset(&rep, 0, sizeof rep);
        int rc = engine_apply_bundle(st, &cfg, hub_pk, device_uuid, bundles[b], bundle_len[b], &more, &rep);
        if (rc != CMC_OK)
            return rc;
        (*applied)++;
        *committed = b + 1;
    }
    return CMC_OK;
}

static int copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -f '%s' '%s' 2>/dev/null", from, to);
    return system(cmd);
}

static void reset_replica(void)
{
    char p[160];
    snprintf(p, sizeof p, "%s-wal", replica);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", replica);
    unlink(p);
    if (copy_file(template_db, replica) != 0)
        die("restore template");
}

/* The replica must verify and stand at a bundle boundary; returns the bundle count. */
static long check_boundary(const char *label, long point)
{
    store *st = NULL;
    int64_t cursor = -1;
    struct store_counts counts;
    int rc = open_replica(&st);
    if (rc != CMC_OK) {
        fprintf(stderr, "powerloss: %s %ld: the replica does not open: %s\n", label, point, cmc_errmsg());
        exit(1);
    }
    if ((rc = store_verify(st)) != CMC_OK) {
        fprintf(stderr, "powerloss: %s %ld: integrity check failed: %s\n", label, point, cmc_errmsg());
        exit(1);
    }
    if (store_state_get_int(st, "cursor", &cursor) != CMC_OK || store_counts_get(st, &counts) != CMC_OK)
        die("read state");
    long b = (long)(cursor / per_bundle);
    if (b < *committed) {
        fprintf(stderr, "powerloss: %s %ld: %ld bundles were committed but only %ld survived\n", label, point,
                *committed, b);
        exit(1);
    }
    if (cursor % per_bundle != 0 || b > n_bundles || counts.visible != b * per_bundle) {
        fprintf(stderr, "powerloss: %s %ld: cursor %lld with %lld plans is not a bundle boundary\n", label, point,
                (long long)cursor, (long long)counts.visible);
        exit(1);
    }
    struct plan p;
    plan_init(&p);
    if (b > 0 && store_plan_get(st, plan_ids[b * per_bundle - 1], &p) != CMC_OK) {
        fprintf(stderr, "powerloss: %s %ld: the last plan of bundle %ld is missing\n", label, point, b);
        exit(1);
    }
    plan_free(&p);
    if (b < n_bundles && store_plan_get(st, plan_ids[b * per_bundle], &p) != CMC_ERR_NOT_FOUND) {
        fprintf(stderr, "powerloss: %s %ld: a plan of bundle %ld is there before its cursor\n", label, point, b + 1);
        exit(1);
    }
    plan_free(&p);
    long applied = 0;
    if ((rc = apply_rest(st, &applied)) != CMC_OK || applied != n_bundles - b) {
        fprintf(stderr, "powerloss: %s %ld: the remaining bundles do not apply: %s\n", label, point, cmc_errmsg());
        exit(1);
    }
    store_close(st);
    return b;
}

/* Runs the workload in a child with a fault at I/O `n`; returns the child's exit status. */
static int run_child(long n, int full)
{
    pid_t pid = fork();
    *committed = 0;
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        shim_register();
        *committed = 0;
        fault_at = n;
        fault_full = full;
        store *st = NULL;
        long applied = 0;
        int rc = open_replica(&st);
        /* self-test: without syncs a cut must lose committed bundles, and the check must see it */
        if (rc == CMC_OK && getenv("CMC_POWERLOSS_UNSAFE") != NULL)
            rc = db_exec(store_test_db(st), "PRAGMA synchronous=OFF");
        if (rc == CMC_OK)
            rc = apply_rest(st, &applied);
        store_close(st);
        if (rc == CMC_OK)
            _exit(0);
        /* a full disk must be a clear error, never something else */
        if (full && (rc == CMC_ERR_DISK_FULL || rc == CMC_ERR_IO))
            _exit(10);
        fprintf(stderr, "powerloss: fault at %ld: apply failed with %s: %s\n", n, cmc_errname(rc), cmc_errmsg());
        _exit(2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    long max_points = 100000, stride = 1;
    const struct fault_arg args[] = {
        { "--bundles", NULL, &n_bundles },
        { "--plans-per-bundle", NULL, &per_bundle },
        { "--max-points", NULL, &max_points },
        { "--stride", NULL, &stride },
    };
    fault_args(argc, argv, args, sizeof args / sizeof args[0]);
    if (n_bundles < 1 || per_bundle < 1 || stride < 1 || cry_init() != CMC_OK)
        return 2;
    cry_kdf_set_test_limits(1);
    strcpy(dir, "/tmp/cmc-powerloss-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(replica, sizeof replica, "%s/replica.db", dir);
    snprintf(slots, sizeof slots, "%s/keyslots", dir);
    snprintf(template_db, sizeof template_db, "%s/template.db", dir);
    if (cry_slots_create(slots, "crew", "urgent_care", "1234-pin", &key) != CMC_OK ||
        cry_sign_keypair(hub_pk, &hub_sk) != CMC_OK)
        die("keys");
    store *st = NULL;
    if (open_replica(&st) != CMC_OK || store_state_set(st, "device_role", "urgent_care") != CMC_OK ||
        store_state_set_int(st, "cursor", 0) != CMC_OK || store_checkpoint(st) != CMC_OK)
        die("replica");
    store_close(st);
    if (copy_file(replica, template_db) != 0)
        die("template");
    build_bundles();
    committed = mmap(NULL, sizeof *committed, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (committed == MAP_FAILED)
        die("mmap");

    long cuts = 0, fulls = 0, n;
    int rc = 0;
    for (n = 1; n <= max_points; n += stride) {
        reset_replica();
        rc = run_child(n, 0);
        if (rc == 0)
            break; /* the workload ran through: every I/O point is covered */
        if (rc != EXIT_CUT) {
            fprintf(stderr, "powerloss: cut at %ld: the child ended with %d\n", n, rc);
            return 1;
        }
        check_boundary("power cut at I/O", n);
        cuts++;
    }
    long total_io = n;
    for (n = 1; n <= max_points; n += stride) {
        reset_replica();
        rc = run_child(n, 1);
        if (rc == 0 && n >= total_io)
            break;
        if (rc != 0 && rc != 10) {
            fprintf(stderr, "powerloss: disk full at write %ld: the child ended with %d\n", n, rc);
            return 1;
        }
        check_boundary("disk full at I/O", n);
        fulls++;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    printf("powerloss: %ld cuts, %ld full-disk points over %ld I/O points (%ld bundles of %ld plans), all "
           "consistent\n",
           cuts, fulls, total_io, n_bundles, per_bundle);
    cry_secret_free(key);
    cry_secret_free(hub_sk);
    for (long b = 0; b < n_bundles; b++)
        cmc_free(bundles[b]);
    cmc_free(bundles);
    cmc_free(bundle_len);
    cmc_free(plan_ids);
    return 0;
}
