/*
 * test_hub_audit_seal.c - the hub's check of forward-secure audit seals on upload
 * (hub/intake_seal.h): a simulated device seals entries as the agent does (crypto/fss.h)
 * and uploads them; the hub must stay quiet for an honest log and raise the device's audit
 * alarm for a deleted tail, a rewritten entry (chain recomputed, resealed with the only key a
 * thief has), a log that starts again from an older copy, and an upload without its state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "crypto/fss.h"
#include "hub/hub.h"
#include "hub/metrics.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/wire.h"
#include "tests/support/hub_fixture.h"

#include <stdio.h>
#include <string.h>

#define SIM_MAX 16

/* The device's side: its hub, its chain, its current key and its sealing counters; and the
 * audit alarm the hub last showed for it. */
struct sim {
    struct tst_hub *e;
    char id[PLAN_ID_LEN + 1];
    uint8_t key[CRY_FSS_KEY_BYTES];
    uint64_t sealed, newest;
    struct wire_audit_entry log[SIM_MAX];
    size_t n;
    char alarm[200];
};

static void sim_enroll(struct tst_hub *e, struct sim *d, const char *name)
{
    char code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct cry_secret *sk = NULL;
    struct hub_enrollment en;
    memset(d, 0, sizeof *d);
    d->e = e;
    assert_int_equal(hub_device_add(e->h, name, "all", "urgent_care", d->id, code), CMC_OK);
    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    assert_int_equal(hub_enroll(e->h, code, pk, name, &en), CMC_OK);
    memcpy(d->key, en.audit_seed, sizeof d->key);
    cry_secret_free(sk);
}

/* Hashes (and seals, with `key` when not NULL) entry i on the chain from entry i - 1. */
static void sim_hash(struct sim *d, size_t i, uint8_t *key)
{
    struct wire_audit_entry *w = &d->log[i];
    if (i == 0)
        memset(w->prev, 0, sizeof w->prev);
    else
        memcpy(w->prev, d->log[i - 1].hash, sizeof w->prev);
    assert_int_equal(wire_audit_entry_hash(w, w->hash), CMC_OK);
    if (key != NULL) {
        cry_fss_seal(key, w->seq, w->hash, w->seal);
        w->sealed = 1;
    }
}

/* A lookup of `plan` recorded and sealed as the agent does. */
static void sim_record(struct sim *d, const char *plan)
{
    assert_true(d->n < SIM_MAX);
    struct wire_audit_entry *w = &d->log[d->n];
    memset(w, 0, sizeof *w);
    w->seq = d->n + 1;
    snprintf(w->user, sizeof w->user, "crew1");
    snprintf(w->role, sizeof w->role, "urgent_care");
    snprintf(w->plan_id, sizeof w->plan_id, "%s", plan);
    snprintf(w->action, sizeof w->action, "lookup");
    w->wall = TST_T0 + (int64_t)d->n;
    w->mono = 1000 + (int64_t)d->n;
    sim_hash(d, d->n, d->key);
    cry_fss_evolve(d->key);
    d->sealed++;
    d->newest = w->seq;
    d->n++;
}

/* Uploads entries [from, to) with the device's state (none when !with_state). */
static void sim_upload(struct sim *d, size_t from, size_t to, int with_state)
{
    struct wire_audit_state st;
    uint8_t *body = NULL;
    size_t len = 0;
    uint64_t acked = 0;
    memset(&st, 0, sizeof st);
    if (with_state) {
        st.present = 1;
        st.sealed = d->sealed;
        st.newest = d->newest;
        cry_fss_state(d->key, st.sealed, st.newest, st.tag);
    }
    assert_int_equal(wire_audit_upload_encode(d->log + from, to - from, &st, &body, &len),
                     CMC_OK);
    assert_int_equal(hub_audit_intake(d->e->h, d->id, body, len, &acked), CMC_OK);
    cmc_free(body);
}

/* A device enrolled under `name` that has recorded n lookups of "plan-a" and uploaded the
 * first `uploaded` of them with its state. */
static void sim_start(struct tst_hub *e, struct sim *d, const char *name, int n, size_t uploaded)
{
    sim_enroll(e, d, name);
    for (int i = 0; i < n; i++)
        sim_record(d, "plan-a");
    if (uploaded > 0)
        sim_upload(d, 0, uploaded, 1);
}

/* The hub's audit alarm for the device now (into d->alarm). */
static const char *alarm_of(struct sim *d)
{
    struct hub_device_info info;
    assert_int_equal(hub_device_get(d->e->h, d->id, &info), CMC_OK);
    snprintf(d->alarm, sizeof d->alarm, "%s", info.audit_alarm);
    return d->alarm;
}

static void test_honest_uploads_raise_nothing(void **state)
{
    struct sim d;
    sim_start(*state, &d, "honest", 3, 3);
    sim_record(&d, "plan-b");
    sim_record(&d, "plan-c");
    sim_upload(&d, 0, 5, 1); /* the first three again, after a lost answer */
    sim_upload(&d, 5, 5, 1); /* nothing new: the state alone */
    assert_string_equal(alarm_of(&d), "");
}

static void test_deleted_tail_is_a_gap(void **state)
{
    struct tst_hub *e = *state;
    struct sim d;
    struct hub_gauges g;
    sim_start(e, &d, "trimmed", 4, 0);
    assert_int_equal(hub_metrics_gauges(e->h, &g), CMC_OK);
    assert_int_equal(g.audit_alarms, 0);
    sim_upload(&d, 0, 2, 1); /* entries 3 and 4 deleted on the device */
    assert_memory_equal(alarm_of(&d), "gap:", 4);
    /* the alarm reaches /metrics (cmc_hub_audit_alarms), where operations alert on it */
    assert_int_equal(hub_metrics_gauges(e->h, &g), CMC_OK);
    assert_int_equal(g.audit_alarms, 1);
}

static void test_rewritten_entry_is_caught(void **state)
{
    struct sim d;
    sim_start(*state, &d, "rewritten", 3, 0);
    /* entry 2 becomes a list of nothing; the chain after it recomputed and resealed with the
     * device's current key, the only one left */
    snprintf(d.log[1].plan_id, sizeof d.log[1].plan_id, "%s", "");
    snprintf(d.log[1].action, sizeof d.log[1].action, "list");
    sim_hash(&d, 1, d.key);
    sim_hash(&d, 2, d.key);
    sim_upload(&d, 0, 3, 1);
    assert_memory_equal(alarm_of(&d), "rewrite:", 8);
}

static void test_restored_copy_is_a_rewind(void **state)
{
    struct sim d, older;
    sim_start(*state, &d, "restored", 1, 0);
    older = d; /* a copy of the replica taken now */
    sim_record(&d, "plan-a");
    sim_record(&d, "plan-a");
    sim_upload(&d, 0, 3, 1);
    assert_string_equal(alarm_of(&d), "");
    sim_record(&older, "plan-b"); /* the copy goes on from entry 1 */
    sim_upload(&older, 0, 2, 1);
    assert_memory_equal(alarm_of(&d), "rewind:", 7);
}

static void test_upload_without_state_after_seals(void **state)
{
    struct sim d;
    char first[sizeof d.alarm];
    sim_start(*state, &d, "stateless", 1, 1);
    sim_record(&d, "plan-a");
    sim_upload(&d, 1, 2, 0);
    snprintf(first, sizeof first, "%s", alarm_of(&d));
    assert_memory_equal(first, "rewrite:", 8);
    /* the first alarm stays, whatever follows */
    sim_record(&d, "plan-a");
    d.sealed += 5;
    sim_upload(&d, 2, 3, 1);
    assert_string_equal(alarm_of(&d), first);
}

TST_HUB_MAIN(test_honest_uploads_raise_nothing, test_deleted_tail_is_a_gap,
             test_rewritten_entry_is_caught, test_restored_copy_is_a_rewind,
             test_upload_without_state_after_seals)
