/* The sync engine's apply side, without a network: signed bundles built here are applied to a
 * real replica. All-or-nothing per bundle, cursor continuity, replays, tombstones, deltas,
 * purges that discard pending edits, merges that rebase or hold conflicts, and wipe orders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/engine.h"
#include "agent/store.h"
#include "agent/store_sync.h"
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"
#include "tests/support/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_A "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11"
#define NHS_A "9434765919"
#define ID_B "11111111-2222-4333-8444-555555555555"
#define NHS_B "4010232137"

static char dir[64], slots_path[128], replica_path[128];
static struct cry_secret *hub_sk, *key;
static uint8_t hub_pk[CRY_SIGN_PK_BYTES];
static const uint8_t device_uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static store *st;
static struct engine_config cfg;

static void set_text(char **field, const char *value)
{
    cmc_free(*field);
    *field = value != NULL ? cmc_strdup(value) : NULL;
}

/* The example plan (shared/examples/plan.json) with this id, NHS number, prognosis, status
 * and version; approved only when published. */
static void make_plan(struct plan *p, const char *id, const char *nhs, const char *prognosis, const char *status,
                      int version)
{
    int pub = strcmp(status, "published") == 0;
    tst_example_plan_parse(p);
    set_text(&p->plan_id, id);
    set_text(&p->nhs_number, nhs);
    set_text(&p->prognosis, prognosis);
    p->status = plan_status_from_name(status);
    p->version = version;
    set_text(&p->approved_by, pub ? "Dr Shah" : NULL);
    set_text(&p->approved_at, pub ? "2026-02-11T15:02:00Z" : NULL);
}

static void op_put(struct bundle_op *op, const char *id, const char *nhs, const char *prognosis, const char *status,
                   int version, uint64_t seq)
{
    bundle_op_init(op);
    op->kind = BUNDLE_OP_PUT;
    snprintf(op->plan_id, sizeof op->plan_id, "%s", id);
    op->seq = seq;
    make_plan(&op->plan, id, nhs, prognosis, status, version);
}

static void op_purge(struct bundle_op *op, const char *id, uint64_t seq)
{
    bundle_op_init(op);
    op->kind = BUNDLE_OP_PURGE;
    snprintf(op->plan_id, sizeof op->plan_id, "%s", id);
    snprintf(op->reason, sizeof op->reason, "consent_withdrawn");
    op->seq = seq;
}

/* Builds and signs a bundle from `from` to `to` carrying the ops (which it then frees). */
static void build(uint64_t from, uint64_t to, struct bundle_op *ops, size_t n, uint8_t **out, size_t *len)
{
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.device_id, device_uuid, sizeof device_uuid);
    h.from_cursor = from;
    h.to_cursor = to;
    h.hub_time = 1790000000;
    assert_int_equal(bundle_build(&h, ops, n, hub_sk, out, len), CMC_OK);
    for (size_t i = 0; i < n; i++)
        bundle_op_clear(&ops[i]);
}

static int apply(const uint8_t *b, size_t len, struct engine_report *rep)
{
    int more = 0;
    memset(rep, 0, sizeof *rep);
    return engine_apply_bundle(st, &cfg, hub_pk, device_uuid, b, len, &more, rep);
}

static int64_t cursor(void)
{
    int64_t c = -1;
    assert_int_equal(store_state_get_int(st, "cursor", &c), CMC_OK);
    return c;
}

/* The replica is as setup left it: cursor 0 and no plan A. */
static void expect_nothing_applied(void)
{
    struct plan p;
    assert_int_equal(cursor(), 0);
    assert_int_equal(store_plan_get(st, NHS_A, &p), CMC_ERR_NOT_FOUND);
}

/* Builds the bundle from `from` to `to` with the ops (freeing them), applies it and expects `want`. */
static void apply_ops(uint64_t from, uint64_t to, struct bundle_op *ops, size_t n, int want,
                      struct engine_report *rep)
{
    uint8_t *b;
    size_t len;
    build(from, to, ops, n, &b, &len);
    assert_int_equal(apply(b, len, rep), want);
    cmc_free(b);
}

/* Applies a page (cursor `from` to `to`) holding plan A, published, at this prognosis and version. */
static void put_a(const char *prognosis, int version, uint64_t from, uint64_t to, struct engine_report *rep)
{
    struct bundle_op op;
    op_put(&op, ID_A, NHS_A, prognosis, "published", version, to);
    apply_ops(from, to, &op, 1, CMC_OK, rep);
}

/* Applies plan A v1 ("weeks", cursor 0 to 5), then a delta (seq 9, cursor 5 to 9) taking it to
 * v2 ("days", left in *v2) under the hub's seal of plan A v2 with prognosis `sealed`; expects `want`. */
static void apply_delta_a(const char *sealed, int want, struct plan *v2, struct engine_report *rep)
{
    put_a("weeks", 1, 0, 5, rep);
    struct plan v1;
    struct bundle_op op;
    make_plan(&v1, ID_A, NHS_A, "weeks", "published", 1);
    make_plan(v2, ID_A, NHS_A, "days", "published", 2);
    bundle_op_init(&op);
    op.kind = BUNDLE_OP_DELTA;
    snprintf(op.plan_id, sizeof op.plan_id, "%s", ID_A);
    op.seq = 9;
    op.base_version = 1;
    assert_int_equal(plan_change_diff(&v1, v2, &op.change), CMC_OK);
    make_plan(&op.plan, ID_A, NHS_A, sealed, "published", 2);
    apply_ops(5, 9, &op, 1, want, rep);
    plan_free(&v1);
}

static void add_pending(const char *doc, int64_t base_version)
{
    struct plan_change c;
    assert_int_equal(plan_change_from_json(doc, strlen(doc), &c), CMC_OK);
    uint8_t *packed;
    size_t plen;
    assert_int_equal(plan_change_pack(&c, &packed, &plen), CMC_OK);
    assert_int_equal(store_pending_add(st, ID_A, base_version, packed, plen, NULL), CMC_OK);
    plan_change_free(&c);
    cmc_free(packed);
}

static int setup(void **state)
{
    (void)state;
    if (tst_tmpdir_make("engine", dir, sizeof dir) != 0)
        return -1;
    snprintf(slots_path, sizeof slots_path, "%s/keyslots", dir);
    snprintf(replica_path, sizeof replica_path, "%s/replica.db", dir);
    cry_kdf_set_test_limits(1);
    if (cry_slots_create(slots_path, "nurse1", "clinician", "1234-pin", &key) != CMC_OK)
        return -1;
    struct store_session who = { .user = "nurse1", .role = STORE_ROLE_CLINICIAN };
    if (store_open(replica_path, key, &who, &st) != CMC_OK)
        return -1;
    store_state_set(st, "device_role", "clinician");
    store_state_set_int(st, "cursor", 0);
    if (cry_sign_keypair(hub_pk, &hub_sk) != CMC_OK)
        return -1;
    char pk_hex[2 * CRY_SIGN_PK_BYTES + 1];
    cry_hex(pk_hex, hub_pk, sizeof hub_pk);
    store_state_set(st, STORE_STATE_HUB_PK, pk_hex); /* enrolled: plans must carry seals */
    memset(&cfg, 0, sizeof cfg);
    cfg.dir = dir;
    cfg.slots_path = slots_path;
    cfg.replica_path = replica_path;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    st = NULL;
    cry_secret_free(key);
    cry_secret_free(hub_sk);
    key = hub_sk = NULL;
    return tst_tmpdir_remove(dir);
}

static void test_bundle_applies_with_cursor_and_twice_changes_nothing(void **state)
{
    (void)state;
    struct bundle_op ops[2];
    uint8_t *b;
    size_t len;
    op_put(&ops[0], ID_A, NHS_A, "weeks", "published", 1, 5);
    op_put(&ops[1], ID_B, NHS_B, "months", "published", 1, 7);
    build(0, 7, ops, 2, &b, &len);
    struct engine_report rep;
    assert_int_equal(apply(b, len, &rep), CMC_OK);
    assert_int_equal(rep.puts, 2);
    assert_int_equal(cursor(), 7);
    /* the same bundle again does not continue from cursor 7: refused, nothing changes */
    assert_int_equal(apply(b, len, &rep), CMC_ERR_PROTOCOL);
    assert_int_equal(cursor(), 7);
    struct store_counts c;
    assert_int_equal(store_counts_get(st, &c), CMC_OK);
    assert_int_equal(c.visible, 2);
    cmc_free(b);
}

static void test_tampered_or_misaddressed_bundle_changes_nothing(void **state)
{
    (void)state;
    struct bundle_op op;
    uint8_t *b;
    size_t len;
    op_put(&op, ID_A, NHS_A, "weeks", "published", 1, 5);
    build(0, 5, &op, 1, &b, &len);
    struct engine_report rep;
    b[len - 3] ^= 0x10; /* a flipped body byte */
    assert_int_equal(apply(b, len, &rep), CMC_ERR_TAMPERED);
    b[len - 3] ^= 0x10;
    assert_int_equal(apply(b, len - 1, &rep), CMC_ERR_CORRUPT); /* truncated */
    uint8_t other[16];
    memcpy(other, device_uuid, 16);
    other[0] ^= 1;
    int more;
    assert_int_not_equal(engine_apply_bundle(st, &cfg, hub_pk, other, b, len, &more, &rep), CMC_OK);
    uint8_t wrong_pk[CRY_SIGN_PK_BYTES];
    memcpy(wrong_pk, hub_pk, sizeof wrong_pk);
    wrong_pk[5] ^= 1;
    assert_int_not_equal(engine_apply_bundle(st, &cfg, wrong_pk, device_uuid, b, len, &more, &rep), CMC_OK);
    expect_nothing_applied();
    cmc_free(b);
}

/* A bundle that fails part-way leaves nothing of itself: not its first ops, not its cursor. */
static void test_failure_mid_bundle_rolls_back_whole_bundle(void **state)
{
    (void)state;
    struct bundle_op ops[2];
    op_put(&ops[0], ID_A, NHS_A, "weeks", "published", 1, 5);
    bundle_op_init(&ops[1]);
    ops[1].kind = BUNDLE_OP_DELTA; /* against a version this device does not hold */
    snprintf(ops[1].plan_id, sizeof ops[1].plan_id, "%s", ID_B);
    ops[1].seq = 6;
    ops[1].base_version = 3;
    const char *doc = "{\"set\":{\"prognosis\":\"days\"}}";
    assert_int_equal(plan_change_from_json(doc, strlen(doc), &ops[1].change), CMC_OK);
    uint8_t *b;
    size_t len;
    build(0, 6, ops, 2, &b, &len);
    struct engine_report rep;
    assert_int_equal(apply(b, len, &rep), CMC_ERR_PROTOCOL);
    expect_nothing_applied();
    cmc_free(b);
}

static void test_delta_reproduces_version(void **state)
{
    (void)state;
    struct engine_report rep;
    struct plan v2, got;
    apply_delta_a("days", CMC_OK, &v2, &rep); /* the hub sealed v2 */
    assert_int_equal(rep.deltas, 1);
    assert_int_equal(store_plan_get(st, NHS_A, &got), CMC_OK);
    assert_true(plan_equal(&got, &v2));
    plan_free(&got);
    plan_free(&v2);
}

static void test_purge_tombstone_stops_replayed_put_and_discards_edits(void **state)
{
    (void)state;
    struct bundle_op op;
    struct engine_report rep;
    put_a("weeks", 1, 0, 5, &rep);
    add_pending("{\"set\":{\"prognosis\":\"days\"}}", 1); /* a clinician's pending edit on that plan */
    op_purge(&op, ID_A, 8);
    apply_ops(5, 8, &op, 1, CMC_OK, &rep);
    assert_int_equal(rep.purges, 1);
    assert_int_equal(rep.discarded_edits, 1);
    struct plan p;
    assert_int_equal(store_plan_get(st, NHS_A, &p), CMC_ERR_NOT_FOUND);
    /* an old put, replayed inside a correctly signed bundle from the current cursor */
    op_put(&op, ID_A, NHS_A, "weeks", "published", 1, 5);
    apply_ops(8, 9, &op, 1, CMC_OK, &rep);
    assert_int_equal(rep.skipped_replays, 1);
    assert_int_equal(store_plan_get(st, NHS_A, &p), CMC_ERR_NOT_FOUND);
    assert_int_equal(cursor(), 9);
}

static void test_newer_version_rebases_or_holds_conflict(void **state)
{
    (void)state;
    struct engine_report rep;
    put_a("weeks", 1, 0, 5, &rep);
    /* a local edit to another field than the hub's next version changes: rebased */
    add_pending("{\"update\":{\"allergies\":[{\"id\":\"a1\",\"reaction\":\"Rash\"}]}}", 1);
    put_a("months", 2, 5, 6, &rep);
    assert_int_equal(rep.rebased, 1);
    assert_int_equal(rep.conflicts, 0);
    struct store_pending *pend;
    size_t n;
    assert_int_equal(store_pending_list(st, ID_A, &pend, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pend[0].base_version, 2);
    assert_int_equal(pend[0].state, 0);
    store_pending_free(pend, n);
    /* now the same field on both sides: held as a conflict, visible, then settled */
    add_pending("{\"set\":{\"prognosis\":\"days\"}}", 2);
    put_a("hours", 3, 6, 7, &rep);
    assert_int_equal(rep.conflicts, 1);
    struct engine_conflict *ec;
    assert_int_equal(engine_conflicts(st, &ec, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ec[0].path, "prognosis");
    assert_string_equal(ec[0].local, "days");
    assert_string_equal(ec[0].remote, "hours");
    cmc_free(ec);
    struct store_counts counts;
    assert_int_equal(store_counts_get(st, &counts), CMC_OK);
    assert_int_equal(counts.conflicts, 1); /* `status` and the page show the held conflict */
    assert_int_equal(store_pending_list(st, ID_A, &pend, &n), CMC_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pend[i].state, 2); /* held: nothing is pushed */
    store_pending_free(pend, n);
    assert_int_equal(engine_resolve(st, ID_A, "prognosis", "sideways"), CMC_ERR_USAGE);
    assert_int_equal(engine_resolve(st, ID_A, "allergies[a1].reaction", "local"), CMC_ERR_NOT_FOUND);
    if (engine_resolve(st, NHS_A, "prognosis", "local") != CMC_OK)
        fail_msg("resolve: %s", cmc_errmsg());
    assert_int_equal(engine_conflicts(st, &ec, &n), CMC_OK);
    assert_int_equal(n, 0);
    cmc_free(ec);
    /* one pending edit on version 3 carrying both local changes */
    assert_int_equal(store_pending_list(st, ID_A, &pend, &n), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pend[0].base_version, 3);
    assert_int_equal(pend[0].state, 0);
    struct plan_change c;
    assert_int_equal(plan_change_unpack(pend[0].change, pend[0].change_len, &c), CMC_OK);
    struct plan v3;
    make_plan(&v3, ID_A, NHS_A, "hours", "published", 3);
    assert_int_equal(plan_change_apply(&v3, &c), CMC_OK);
    assert_string_equal(v3.prognosis, "days");
    assert_string_equal(v3.allergies[0].reaction, "Rash");
    plan_free(&v3);
    plan_change_free(&c);
    store_pending_free(pend, n);
}

static void test_wipe_order_erases_keys(void **state)
{
    (void)state;
    struct bundle_op op;
    uint8_t *b;
    size_t len;
    struct engine_report rep;
    bundle_op_init(&op);
    op.kind = BUNDLE_OP_WIPE;
    op.seq = 3;
    build(0, 3, &op, 1, &b, &len);
    /* a forged order (signed by another key) is ignored */
    struct cry_secret *real = hub_sk;
    uint8_t forged_pk[CRY_SIGN_PK_BYTES];
    assert_int_equal(cry_sign_keypair(forged_pk, &hub_sk), CMC_OK);
    uint8_t *fb;
    size_t flen;
    bundle_op_init(&op);
    op.kind = BUNDLE_OP_WIPE;
    op.seq = 3;
    build(0, 3, &op, 1, &fb, &flen);
    cry_secret_free(hub_sk);
    hub_sk = real;
    assert_int_equal(apply(fb, flen, &rep), CMC_ERR_TAMPERED);
    assert_int_equal(rep.wiped, 0);
    assert_true(plat_exists(slots_path));
    cmc_free(fb);
    assert_int_equal(apply(b, len, &rep), CMC_ERR_WIPED);
    assert_int_equal(rep.wiped, 1);
    assert_false(plat_exists(slots_path));
    char marker[160];
    snprintf(marker, sizeof marker, "%s/WIPED", dir);
    assert_true(plat_exists(marker));
    cmc_free(b);
}

static char *state_text(const char *name)
{
    char *v = NULL;
    return store_state_get(st, name, &v) == CMC_OK ? v : NULL;
}

/* A delta that does not rebuild the version the hub sealed (a wrong delta application, or a
 * base altered in the replica) is refused with its page, and the replica asks for repair. */
static void test_delta_that_misses_its_seal_is_refused(void **state)
{
    (void)state;
    struct engine_report rep;
    struct plan v2;
    apply_delta_a("hours", CMC_ERR_TAMPERED, &v2, &rep); /* the hub sealed other bytes */
    plan_free(&v2);
    assert_int_equal(cursor(), 5);
    struct plan got;
    assert_int_equal(store_plan_get(st, NHS_A, &got), CMC_OK);
    assert_int_equal(got.version, 1);
    plan_free(&got);
    char *flag = state_text(STORE_STATE_SEAL_REPAIR);
    assert_non_null(flag);
    assert_string_equal(flag, "1");
    cmc_free(flag);
}

/* An enrolled device refuses a page of plans that the hub did not seal. */
static void test_unsealed_page_is_refused(void **state)
{
    (void)state;
    struct bundle_op ops[2];
    uint8_t *b;
    size_t len;
    struct engine_report rep;
    op_put(&ops[0], ID_A, NHS_A, "weeks", "published", 1, 5);
    bundle_op_init(&ops[1]);
    ops[1].kind = BUNDLE_OP_SEAL; /* a seal of its own: bundle_build adds none */
    cry_random(ops[1].seal_sig, sizeof ops[1].seal_sig);
    build(0, 5, ops, 2, &b, &len);
    assert_int_equal(apply(b, len, &rep), CMC_ERR_TAMPERED); /* a forged seal */
    expect_nothing_applied();
    cmc_free(b);
    op_put(&ops[0], ID_A, NHS_A, "weeks", "published", 1, 5);
    bundle_op_init(&ops[1]);
    ops[1].kind = BUNDLE_OP_PURGE; /* no seal at all: build it by hand */
    snprintf(ops[1].plan_id, sizeof ops[1].plan_id, "%s", ID_B);
    snprintf(ops[1].reason, sizeof ops[1].reason, "left_scope");
    bundle_writer *w = NULL;
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.device_id, device_uuid, sizeof device_uuid);
    h.to_cursor = 5;
    assert_int_equal(bundle_writer_new(&w), CMC_OK);
    assert_int_equal(bundle_writer_add(w, &ops[0]), CMC_OK);
    assert_int_equal(bundle_writer_finish(w, &h, hub_sk, &b, &len), CMC_OK);
    bundle_writer_free(w);
    bundle_op_clear(&ops[0]);
    bundle_op_clear(&ops[1]);
    assert_int_equal(apply(b, len, &rep), CMC_ERR_PROTOCOL);
    expect_nothing_applied();
    cmc_free(b);
}

static void seal_count(const char *plan_id, int64_t version, void *ctx)
{
    (void)plan_id;
    (void)version;
    (*(int *)ctx)++;
}

/* A body changed inside the replica (an attacker with the key) is never shown: the read
 * says the plan failed its integrity check, verify's scan names it, and the next sync is
 * asked to repair it. */
static void test_body_altered_at_rest_fails_its_seal(void **state)
{
    (void)state;
    struct bundle_op ops[2];
    struct engine_report rep;
    op_put(&ops[0], ID_A, NHS_A, "weeks", "published", 1, 5);
    op_put(&ops[1], ID_B, NHS_B, "months", "published", 1, 7);
    apply_ops(0, 7, ops, 2, CMC_OK, &rep);
    struct plan p, got;
    int64_t bad = -1;
    int seen = 0;
    assert_int_equal(store_seal_scan(st, 0, seal_count, &seen, &bad), CMC_OK);
    assert_int_equal(bad, 0);
    /* the bytes of another valid plan, re-encoded: everything but the seal agrees */
    make_plan(&p, ID_A, NHS_A, "hours", "published", 1);
    assert_int_equal(store_put_version(st, &p, 5), CMC_OK); /* drops the seal with the row */
    plan_free(&p);
    assert_int_equal(store_plan_get(st, NHS_A, &got), CMC_ERR_TAMPERED);
    assert_string_equal(cmc_errmsg(), STORE_INTEGRITY_MSG);
    assert_int_equal(store_plan_get(st, NHS_B, &got), CMC_OK); /* the other plan stands */
    plan_free(&got);
    struct store_hit *hits = NULL;
    size_t n = 0;
    assert_int_equal(store_list(st, &hits, &n), CMC_OK);
    assert_int_equal(n, 1); /* the list leaves it out */
    store_hits_free(hits, n);
    assert_int_equal(store_seal_scan(st, 0, seal_count, &seen, &bad), CMC_OK);
    assert_int_equal(bad, 1);
    assert_int_equal(seen, 1);
    char *flag = state_text(STORE_STATE_SEAL_REPAIR);
    assert_non_null(flag);
    assert_string_equal(flag, "1");
    cmc_free(flag);
    /* the repair's scan drops it */
    assert_int_equal(store_seal_scan(st, 1, NULL, NULL, &bad), CMC_OK);
    assert_int_equal(bad, 1);
    assert_int_equal(store_plan_get(st, NHS_A, &got), CMC_ERR_NOT_FOUND);
    assert_int_equal(store_seal_scan(st, 0, NULL, NULL, &bad), CMC_OK);
    assert_int_equal(bad, 0);
}

static int init(void)
{
    plat_log_set_level(PLAT_LOG_ERROR);
    return cry_init() == CMC_OK ? 0 : -1;
}

TST_MAIN(init, setup, teardown,
         test_bundle_applies_with_cursor_and_twice_changes_nothing,
         test_tampered_or_misaddressed_bundle_changes_nothing,
         test_failure_mid_bundle_rolls_back_whole_bundle, test_delta_reproduces_version,
         test_purge_tombstone_stops_replayed_put_and_discards_edits,
         test_newer_version_rebases_or_holds_conflict, test_wipe_order_erases_keys,
         test_delta_that_misses_its_seal_is_refused, test_unsealed_page_is_refused,
         test_body_altered_at_rest_fails_its_seal)
