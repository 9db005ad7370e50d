/*
 * oom_loop - allocation and file-layer failures at every Nth call (docs/TESTING.md).
 *
 *   oom_loop [--max N]
 *
 * Like curl's torture tests and SQLite's OOM loop: for n = 0, 1, 2, ... the allocation
 * wrapper (platform/alloc.h, cmc_alloc_fail_after) fails the nth allocation and every one
 * after it (sticky), then only the nth (one-shot), through
 *   1. engine_apply_bundle: a signed bundle of plans onto a real replica;
 *   2. key-slot load and unlock (cry_slots_load, cry_slots_unlock);
 *   3. hub request handling (hub_api_handle): an enrollment, then a signed pull;
 * and the platform file layer (plat_fault_write_after, plat_fault_fsync_after) fails the nth
 * write or fsync of
 *   4. adding a user's key slot (cry_slots_add, an atomic file replace).
 * Every failure must come back as a clean error (CMC_ERR_NOMEM, or for the hub a 5xx
 * answer; CMC_ERR_DISK_FULL / CMC_ERR_IO for the file layer), leave the state as it was (the
 * replica's cursor and plans, the slot file, the hub answering the next request), and leak
 * nothing: run under LeakSanitizer or valgrind (scripts/check-hardened.sh) for that part.
 * Each loop ends at the first n that fails nothing. Prints one line per family and exits 0,
 * or names the first broken n and exits 1.
 */
#include "agent/engine.h"
#include "agent/store.h"
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/alloc_test.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/bundle.h"
#include "sync/reqsig.h"
#include "sync/wire.h"
#include "tests/fault/fault_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long max_n = 20000;
static char dir[64];
static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "oom_loop: " __VA_ARGS__);                                             \
            fprintf(stderr, " (%s)\n", cmc_errmsg());                                              \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* A key-slot file "<dir>/<name>.slots" for one clinician with this PIN (its path in `path`);
 * returns the replica key it guards, or NULL (a failure counted) when it cannot be made. */
static struct cry_secret *make_slots(char *path, size_t cap, const char *name, const char *user, const char *pin)
{
    struct cry_secret *key = NULL;
    snprintf(path, cap, "%s/%s.slots", dir, name);
    if (cry_slots_create(path, user, "clinician", pin, &key) != CMC_OK) {
        fprintf(stderr, "oom_loop: slots (%s)\n", cmc_errmsg());
        failures++;
        return NULL;
    }
    return key;
}

/* Runs a loop on a key-slot file of its own (make_slots), then drops the key. */
static void with_slots(const char *name, const char *user, const char *pin,
                       void (*loop)(const char *slots, const struct cry_secret *key))
{
    char slots[128];
    struct cry_secret *key = make_slots(slots, sizeof slots, name, user, pin);
    if (key == NULL)
        return;
    loop(slots, key);
    cry_secret_free(key);
}

static void arm(long n, int sticky)
{
    cmc_alloc_fail_after(n, sticky);
}
static void disarm(void)
{
    cmc_alloc_fail_after(-1, 0);
}

/* ---- 1. bundle apply -------------------------------------------------------------------- */

static void loop_apply(void)
{
    char replica[128], slots[128];
    struct cry_secret *key = NULL, *hub_sk = NULL;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES], *bundle = NULL;
    size_t bundle_len = 0;
    const uint8_t dev[16] = { 1, 1, 2, 3, 5, 8, 0x43, 1, 0x81, 2, 3, 4, 5, 6, 7, 8 };
    snprintf(replica, sizeof replica, "%s/replica.db", dir);
    key = make_slots(slots, sizeof slots, "apply", "crew", "1234-pin");
    if (key == NULL)
        return;
    CHECK(cry_sign_keypair(hub_pk, &hub_sk) == CMC_OK, "keypair");
    struct bundle_op ops[3];
    long got = 0;
    for (long i = 0; got < 3; i++) {
        int status = 0, extra = 0;
        bundle_op_init(&ops[got]);
        CHECK(hub_seed_plan(77, i, &ops[got].plan, &status, &extra) == CMC_OK, "seed plan");
        if (status != PLAN_STATUS_PUBLISHED) {
            bundle_op_clear(&ops[got]);
            continue;
        }
        ops[got].kind = BUNDLE_OP_PUT;
        ops[got].seq = (uint64_t)got + 1;
        snprintf(ops[got].plan_id, sizeof ops[got].plan_id, "%s", ops[got].plan.plan_id);
        got++;
    }
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.device_id, dev, 16);
    h.to_cursor = 3;
    h.hub_time = 1790000000;
    CHECK(bundle_build(&h, ops, 3, hub_sk, &bundle, &bundle_len) == CMC_OK, "bundle");
    for (int i = 0; i < 3; i++)
        bundle_op_clear(&ops[i]);

    struct store_session who = { .user = "crew", .role = STORE_ROLE_CLINICIAN };
    struct engine_config cfg = { .dir = dir, .slots_path = slots, .replica_path = replica };
    store *st = NULL;
    CHECK(store_open(replica, key, &who, &st) == CMC_OK, "replica");
    CHECK(store_state_set(st, "device_role", "clinician") == CMC_OK && store_state_set_int(st, "cursor", 0) == CMC_OK,
          "state");
    long n, nomem = 0;
    for (int sticky = 1; sticky >= 0; sticky--) {
        for (n = 0; n < max_n; n++) {
            struct engine_report rep;
            int more = 0;
            memset(&rep, 0, sizeof rep);
            arm(n, sticky);
            int rc = engine_apply_bundle(st, &cfg, hub_pk, dev, bundle, bundle_len, &more, &rep);
            disarm();
            int64_t cursor = -1;
            struct store_counts c;
            CHECK(store_state_get_int(st, "cursor", &cursor) == CMC_OK && store_counts_get(st, &c) == CMC_OK,
                  "apply n=%ld: reading the replica after", n);
            if (rc == CMC_OK) {
                CHECK(cursor == 3 && c.visible == 3, "apply n=%ld: success but cursor %lld, %lld plans", n,
                      (long long)cursor, (long long)c.visible);
                break;
            }
            nomem++;
            CHECK(rc == CMC_ERR_NOMEM || !sticky, "apply n=%ld: %s instead of nomem", n, cmc_errname(rc));
            CHECK(cursor == 0 && c.visible == 0, "apply n=%ld: a failed apply left cursor %lld, %lld plans", n,
                  (long long)cursor, (long long)c.visible);
        }
        CHECK(n < max_n, "apply never succeeded");
        CHECK(store_verify(st) == CMC_OK, "apply: verify after the loop");
        /* start again from an empty replica for the one-shot pass */
        store_close(st);
        st = NULL;
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -f %s %s-wal %s-shm", replica, replica, replica);
        CHECK(system(cmd) == 0, "rm");
        CHECK(store_open(replica, key, &who, &st) == CMC_OK, "replica again");
        CHECK(store_state_set(st, "device_role", "clinician") == CMC_OK &&
                  store_state_set_int(st, "cursor", 0) == CMC_OK,
              "state again");
    }
    store_close(st);
    printf("oom_loop: bundle apply: %ld allocation failures, each a clean error with the replica unchanged\n",
           nomem);
    cmc_free(bundle);
    cry_secret_free(key);
    cry_secret_free(hub_sk);
}

/* ---- 2. key-slot unlock ----------------------------------------------------------------- */

static void loop_unlock(const char *slots, const struct cry_secret *key)
{
    long n, nomem = 0;
    for (n = 0; n < max_n; n++) {
        cry_slots *s = NULL;
        struct cry_secret *k2 = NULL;
        char role[CRY_ROLE_MAX + 1] = "";
        arm(n, 1);
        int rc = cry_slots_load(slots, &s);
        if (rc == CMC_OK)
            rc = cry_slots_unlock(s, "nurse", "5678-pin", &k2, role);
        disarm();
        if (rc == CMC_OK) {
            CHECK(k2 != NULL && k2->len == key->len && memcmp(k2->buf, key->buf, key->len) == 0 &&
                      strcmp(role, "clinician") == 0,
                  "unlock n=%ld: wrong key or role", n);
            cry_secret_free(k2);
            cry_slots_free(s);
            break;
        }
        CHECK(s == NULL || k2 == NULL, "unlock n=%ld: a key handed out on failure", n);
        CHECK(rc == CMC_ERR_NOMEM, "unlock n=%ld: %s instead of nomem", n, cmc_errname(rc));
        cry_slots_free(s);
        nomem++;
    }
    CHECK(n < max_n, "unlock never succeeded");
    /* out of memory is not a wrong PIN: no throttle delay may have built up */
    cry_slots *s = NULL;
    CHECK(cry_slots_load(slots, &s) == CMC_OK, "reload");
    CHECK(cry_slots_failures(s, "nurse") == 0, "unlock: %ld out-of-memory failures left a counted attempt", nomem);
    cry_slots_free(s);
    printf("oom_loop: key-slot unlock: %ld allocation failures, each a clean error, no throttle\n", nomem);
}

/* ---- 3. hub requests -------------------------------------------------------------------- */

static int enroll_body(const char *code, const uint8_t pk[32], uint8_t **out, size_t *len)
{
    struct wire_enroll_req m = {.code = code, .name = "oom-tablet"};
    memcpy(m.device_pk, pk, sizeof m.device_pk);
    return wire_enroll_req_encode(&m, out, len);
}

static void loop_hub(void)
{
    char hub_dir[128], device_id[PLAN_ID_LEN + 1], code[HUB_CODE_LEN + 1];
    hub *h = NULL;
    snprintf(hub_dir, sizeof hub_dir, "%s/hub", dir);
    CHECK(hub_init(hub_dir) == CMC_OK && hub_open(hub_dir, &h) == CMC_OK, "hub");
    CHECK(hub_seed(h, 60, 5, NULL, NULL) == CMC_OK, "seed");
    CHECK(hub_device_add(h, "tablet", "all", "urgent_care", device_id, code) == CMC_OK, "device add");
    uint8_t pk[CRY_SIGN_PK_BYTES], *body = NULL;
    size_t body_len = 0;
    struct cry_secret *sk = NULL;
    CHECK(cry_sign_keypair(pk, &sk) == CMC_OK, "device key");
    CHECK(enroll_body(code, pk, &body, &body_len) == CMC_OK, "enroll body");
    long n, fails = 0;
    int burned = 0;
    char enrolled_id[PLAN_ID_LEN + 1] = "";
    for (n = 0; n < max_n; n++) {
        struct hub_request rq = { .method = "POST", .path = "/v1/enroll", .body = body, .body_len = body_len };
        struct hub_response rs;
        memset(&rs, 0, sizeof rs);
        arm(n, 1);
        hub_api_handle(h, &rq, &rs);
        disarm();
        if (rs.status == 200) {
            struct wire_enroll_ans ans;
            CHECK(wire_enroll_ans_decode(rs.body, rs.body_len, &ans) == CMC_OK, "enroll answer");
            snprintf(enrolled_id, sizeof enrolled_id, "%s", ans.device_id);
            hub_response_free(&rs);
            break;
        }
        if (rs.status == 401 && !burned) {
            /* a failure after the code was spent: the device could never enroll with it */
            fprintf(stderr, "oom_loop: enroll n=%ld: an allocation failure spent the one-time code (401 on the "
                            "next try)\n", n);
            failures++;
            burned = 1;
            hub_response_free(&rs);
            char id2[PLAN_ID_LEN + 1];
            cmc_free(body);
            body = NULL;
            CHECK(hub_device_add(h, "tablet2", "all", "urgent_care", id2, code) == CMC_OK, "device add 2");
            CHECK(enroll_body(code, pk, &body, &body_len) == CMC_OK, "enroll body 2");
            continue;
        }
        CHECK(rs.status >= 500, "enroll n=%ld: status %d under out-of-memory", n, rs.status);
        hub_response_free(&rs);
        fails++;
    }
    CHECK(n < max_n && enrolled_id[0] != '\0', "enroll never succeeded");
    long pulls = 0;
    for (n = 0; n < max_n; n++) {
        struct reqsig_headers sig;
        const char *path = "/v1/pull?cursor=0";
        CHECK(reqsig_sign(sk, enrolled_id, "GET", path, NULL, 0, &sig) == CMC_OK, "sign");
        struct hub_request rq = { .method = "GET", .path = path, .device = sig.device, .time = sig.time,
                                  .nonce = sig.nonce, .signature = sig.signature };
        struct hub_response rs;
        memset(&rs, 0, sizeof rs);
        arm(n, 1);
        hub_api_handle(h, &rq, &rs);
        disarm();
        int status = rs.status;
        size_t blen = rs.body_len;
        hub_response_free(&rs);
        if (status == 200) {
            CHECK(blen > BUNDLE_HEADER_BYTES, "pull: a bundle expected");
            break;
        }
        if (status < 500) {
            /* a 4xx tells the device it is at fault: a 401 stops it syncing for good */
            fprintf(stderr, "oom_loop: pull n=%ld: status %d under out-of-memory\n", n, status);
            failures++;
        }
        pulls++;
    }
    CHECK(n < max_n, "pull never succeeded");
    cmc_free(body);
    cry_secret_free(sk);
    hub_close(h);
    printf("oom_loop: hub requests: %ld enroll and %ld pull allocation failures, each a 5xx, then served\n", fails,
           pulls);
}

/* ---- 4. file layer ---------------------------------------------------------------------- */

static void loop_files(const char *slots, const struct cry_secret *key)
{
    long n, fails = 0;
    for (int fsync_fault = 0; fsync_fault <= 1; fsync_fault++) {
        for (n = 0; n < max_n; n++) {
            cry_slots *s = NULL;
            CHECK(cry_slots_load(slots, &s) == CMC_OK, "load");
            if (fsync_fault)
                plat_fault_fsync_after(n, EIO);
            else
                plat_fault_write_after(n, ENOSPC);
            int rc = cry_slots_add(s, key, "temp", "urgent_care", "2222-pin");
            plat_fault_write_after(-1, 0);
            plat_fault_fsync_after(-1, 0);
            cry_slots_free(s);
            CHECK(cry_slots_load(slots, &s) == CMC_OK, "files n=%ld: the slot file no longer loads", n);
            size_t count = cry_slots_count(s);
            if (rc == CMC_OK) {
                CHECK(count == 2, "files n=%ld: added but %zu slots", n, count);
                CHECK(cry_slots_remove(s, "temp") == CMC_OK, "remove");
                cry_slots_free(s);
                break;
            }
            cry_slots_free(s);
            CHECK(rc == (fsync_fault ? CMC_ERR_IO : CMC_ERR_DISK_FULL), "files n=%ld: %s", n, cmc_errname(rc));
            CHECK(count == 1, "files n=%ld: a failed add left %zu slots", n, count);
            fails++;
        }
        CHECK(n < max_n, "slot add never succeeded");
    }
    printf("oom_loop: key-slot file writes: %ld write/fsync failures, each a clean error, file intact\n", fails);
}

int main(int argc, char **argv)
{
    const struct fault_arg args[] = { { "--max", NULL, &max_n } };
    fault_args(argc, argv, args, 1);
    if (cry_init() != CMC_OK)
        return 1;
    cry_kdf_set_test_limits(1);
    plat_log_set_level(PLAT_LOG_ERROR);
    strcpy(dir, "/tmp/cmc-oom-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    loop_apply();
    with_slots("unlock", "nurse", "5678-pin", loop_unlock);
    loop_hub();
    with_slots("files", "lead", "9999-pin", loop_files);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures > 0)
        return 1;
    printf("oom_loop: all clean\n");
    return 0;
}
