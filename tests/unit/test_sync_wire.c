/* sync/wire: the exact bytes of every message between agent and hub (known answers, as the
 * release before this codec wrote them), round trips, and refusal of truncated or hostile
 * input. The audit chain hash is checked against an independent BLAKE2b computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/wire.h"
#include "tests/support/run.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ID_A "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11"
#define ID_B "11111111-2222-4333-8444-555555555555"
#define DEVICE "01020304-0506-4708-890a-0b0c0d0e0f10"

/* Known answers, captured from the encoders the agent and hub used before sync/wire. */
static const char KAT_ENROLL_REQ[] =
    "83a4636f6465a9414243442d45464748a96465766963655f706bc42000010203"
    "0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa46e616d"
    "65ad776172642037207461626c6574";
static const char KAT_ENROLL_ANS[] =
    "86a96465766963655f6964d92430313032303330342d303530362d343730382d"
    "383930612d306230633064306530663130a66875625f706bc420000102030405"
    "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa573636f7065"
    "ad726567696f6e3a6c6f6e646f6ea4726f6c65a9636c696e696369616eaa6c65"
    "6173655f646179731ea86875625f74696d65ce6a18a500";
static const char KAT_PUSH_REQ[] =
    "84ae6964656d706f74656e63795f6964d92461616161616161612d626262622d"
    "346363632d386464642d656565656565656565656565a7706c616e5f6964d924"
    "37633166346530612d336135312d346335352d396633622d3264316538663062"
    "36613131ac626173655f76657273696f6e03a66368616e6765c4059193010203";
static const char KAT_PUSH_ANS_ACCEPTED[] =
    "82a6726573756c74a86163636570746564a776657273696f6e04";
static const char KAT_PUSH_ANS_CONFLICT[] =
    "83a6726573756c74a8636f6e666c696374a776657273696f6e05a76375727265"
    "6e74c4059193010203";
static const char KAT_ACK_PURGES[] =
    "81a670757267657392d92437633166346530612d336135312d346335352d3966"
    "33622d326431653866306236613131d92431313131313131312d323232322d34"
    "3333332d383434342d353535353535353535353535";
static const char KAT_ACK_WIPE[] =
    "81a477697065c3";
static const char KAT_ACK_ANS[] =
    "81a26f6bc3";
static const char KAT_AUDIT_ANS[] =
    "81a961636b65645f73657102";
static const char KAT_AUDIT_UPLOAD[] =
    "81a7656e7472696573918aa373657107a470726576c420a0a1a2a3a4a5a6a7a8"
    "a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfa475736572a764722e"
    "73686168a4726f6c65a9636c696e696369616ea7706c616e5f6964d924376331"
    "66346530612d336135312d346335352d396633622d3264316538663062366131"
    "31aa6964656e746966696572a0a6616374696f6ea66c6f6f6b7570a477616c6c"
    "ce6a18a57ba46d6f6e6ffba468617368c420347dc6b75c24996dd878125fd493"
    "f0a8b0fb2748f2b5dab84798179c616caa62";
static const char KAT_AUDIT_HASH[] =
    "347dc6b75c24996dd878125fd493f0a8b0fb2748f2b5dab84798179c616caa62";

static const uint8_t change5[5] = { 0x91, 0x93, 0x01, 0x02, 0x03 };

/* Decodes hex into a cmc_malloc'd buffer. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = cmc_malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

static void assert_bytes(const uint8_t *got, size_t got_len, const char *want_hex)
{
    size_t want_len;
    uint8_t *want = unhex(want_hex, &want_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    cmc_free(want);
}

static void seq32(uint8_t *b, uint8_t from)
{
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(from + i);
}

/* Every prefix of a valid message, and the message with a byte appended, is refused. */
typedef int (*decode_fn)(const uint8_t *buf, size_t len, void *out);

static void assert_refuses_damage(const char *hex, decode_fn decode, void *out, int code)
{
    size_t len;
    uint8_t *b = unhex(hex, &len);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(decode(b, cut, out), code);
    uint8_t *longer = cmc_malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, b, len);
    longer[len] = 0xc0;
    (void)decode(longer, len + 1, out); /* answers may carry more; requests may not (below) */
    cmc_free(longer);
    cmc_free(b);
}

static int dec_enroll_req(const uint8_t *b, size_t n, void *o) { return wire_enroll_req_decode(b, n, o); }
static int dec_enroll_ans(const uint8_t *b, size_t n, void *o) { return wire_enroll_ans_decode(b, n, o); }
static int dec_push_req(const uint8_t *b, size_t n, void *o) { return wire_push_req_decode(b, n, o); }
static int dec_push_ans(const uint8_t *b, size_t n, void *o) { return wire_push_ans_decode(b, n, o); }
static int dec_audit_ans(const uint8_t *b, size_t n, void *o) { return wire_audit_ans_decode(b, n, o); }
static int dec_ack(const uint8_t *b, size_t n, void *o)
{
    int rc = wire_ack_decode(b, n, o);
    wire_ack_free(o);
    return rc;
}

/* ---- enroll ---------------------------------------------------------------------------- */

static void test_enroll_request(void **state)
{
    (void)state;
    struct wire_enroll_req m = { .code = "ABCD-EFGH", .name = "ward 7 tablet" }, back;
    uint8_t *b = NULL;
    size_t len = 0;
    seq32(m.device_pk, 0);
    assert_int_equal(wire_enroll_req_encode(&m, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_ENROLL_REQ);
    assert_int_equal(wire_enroll_req_decode(b, len, &back), CMC_OK);
    assert_string_equal(back.code, "ABCD-EFGH");
    assert_string_equal(back.name, "ward 7 tablet");
    assert_memory_equal(back.device_pk, m.device_pk, 32);
    cmc_free(b);
    assert_refuses_damage(KAT_ENROLL_REQ, dec_enroll_req, &back, CMC_ERR_INVALID);

    /* the name is optional; code and device_pk are not; unknown keys and trailing bytes are refused */
    struct wire_enroll_req no_name = { .code = "X", .name = NULL };
    seq32(no_name.device_pk, 1);
    assert_int_equal(wire_enroll_req_encode(&no_name, &b, &len), CMC_OK);
    assert_int_equal(wire_enroll_req_decode(b, len, &back), CMC_ERR_INVALID); /* name: nil */
    cmc_free(b);
    static const uint8_t only_code[] = { 0x81, 0xa4, 'c', 'o', 'd', 'e', 0xa1, 'X' };
    assert_int_equal(wire_enroll_req_decode(only_code, sizeof only_code, &back), CMC_ERR_INVALID);
    assert_string_equal(back.code, ""); /* the code read is wiped on failure */
    static const uint8_t unknown[] = { 0x81, 0xa1, 'z', 0x01 };
    assert_int_equal(wire_enroll_req_decode(unknown, sizeof unknown, &back), CMC_ERR_INVALID);
    size_t klen;
    uint8_t *k = unhex(KAT_ENROLL_REQ, &klen);
    uint8_t *trail = cmc_malloc(klen + 1);
    memcpy(trail, k, klen);
    trail[klen] = 0xc0;
    assert_int_equal(wire_enroll_req_decode(trail, klen + 1, &back), CMC_ERR_INVALID);
    k[0] = 0xdf; /* a map32 header claiming four billion pairs: refused before any read */
    assert_int_equal(wire_enroll_req_decode(k, klen, &back), CMC_ERR_INVALID);
    cmc_free(trail);
    cmc_free(k);
}

static void test_enroll_answer(void **state)
{
    (void)state;
    struct wire_enroll_ans m, back;
    uint8_t *b = NULL;
    size_t len = 0;
    memset(&m, 0, sizeof m);
    snprintf(m.device_id, sizeof m.device_id, "%s", DEVICE);
    seq32(m.hub_pk, 0);
    snprintf(m.scope, sizeof m.scope, "region:london");
    snprintf(m.role, sizeof m.role, "clinician");
    m.lease_days = 30;
    m.hub_time = 1780000000;
    assert_int_equal(wire_enroll_ans_encode(&m, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_ENROLL_ANS);
    assert_int_equal(wire_enroll_ans_decode(b, len, &back), CMC_OK);
    assert_memory_equal(&back, &m, sizeof m);
    cmc_free(b);
    assert_refuses_damage(KAT_ENROLL_ANS, dec_enroll_ans, &back, CMC_ERR_PROTOCOL);
    /* a device id that is not a UUID, or no hub key, is refused */
    snprintf(m.device_id, sizeof m.device_id, "not-a-uuid");
    assert_int_equal(wire_enroll_ans_encode(&m, &b, &len), CMC_OK);
    assert_int_equal(wire_enroll_ans_decode(b, len, &back), CMC_ERR_PROTOCOL);
    cmc_free(b);
    static const uint8_t no_pk[] = { 0x81, 0xa9, 'd', 'e', 'v', 'i', 'c', 'e', '_', 'i', 'd', 0xa0 };
    assert_int_equal(wire_enroll_ans_decode(no_pk, sizeof no_pk, &back), CMC_ERR_PROTOCOL);
}

/* ---- pull ------------------------------------------------------------------------------ */

static void test_pull_query(void **state)
{
    (void)state;
    char path[128];
    struct wire_pull_query q = { .cursor = 5, .applied = 3, .budget = 2097152 }, back;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    assert_string_equal(path, "/v1/pull?cursor=5&applied=3&budget=2097152");
    q.applied = 5;
    q.budget = 0;
    assert_int_equal(wire_pull_path(&q, path, sizeof path), CMC_OK);
    assert_string_equal(path, "/v1/pull?cursor=5");
    assert_int_equal(wire_pull_path(&q, path, 10), CMC_ERR_INVALID);

    assert_int_equal(wire_pull_query_decode("cursor=7&applied=4&budget=99&x=1", &back), CMC_OK);
    assert_true(back.cursor == 7 && back.applied == 4 && back.budget == 99);
    assert_int_equal(wire_pull_query_decode("cursor=7", &back), CMC_OK);
    assert_true(back.cursor == 7 && back.applied == 7 && back.budget == 0);
    /* no cursor, a negative, empty or out-of-range one, or nothing at all */
    static const char *const refused[] = { "applied=4", "cursor=-1", "cursor=", "cursor=12345678901234567890", "" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (wire_pull_query_decode(refused[i], &back) != CMC_ERR_INVALID)
            fail_msg("query accepted: \"%s\"", refused[i]);
}

/* ---- push ------------------------------------------------------------------------------ */

static void test_push_request(void **state)
{
    (void)state;
    struct wire_push_req m = { .base_version = 3, .change = change5, .change_len = 5 }, back;
    uint8_t *b = NULL;
    size_t len = 0;
    snprintf(m.idempotency_id, sizeof m.idempotency_id, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    snprintf(m.plan_id, sizeof m.plan_id, ID_A);
    assert_int_equal(wire_push_req_encode(&m, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_PUSH_REQ);
    assert_int_equal(wire_push_req_decode(b, len, &back), CMC_OK);
    assert_string_equal(back.idempotency_id, m.idempotency_id);
    assert_string_equal(back.plan_id, ID_A);
    assert_int_equal(back.base_version, 3);
    assert_int_equal(back.change_len, 5);
    assert_memory_equal(back.change, change5, 5);
    assert_ptr_equal(back.change, b + len - 5); /* points into the caller's buffer */
    cmc_free(b);
    assert_refuses_damage(KAT_PUSH_REQ, dec_push_req, &back, CMC_ERR_INVALID);
    assert_int_equal(back.has_user, 0); /* an agent from before users signed */
    m.base_version = 0; /* versions start at 1 */
    assert_int_equal(wire_push_req_encode(&m, &b, &len), CMC_OK);
    assert_int_equal(wire_push_req_decode(b, len, &back), CMC_ERR_INVALID);
    cmc_free(b);

    /* the person who made the edit and their signature travel together */
    m.base_version = 3;
    m.has_user = 1;
    snprintf(m.user, sizeof m.user, "nurse-jones");
    memset(m.user_sig, 0xa5, sizeof m.user_sig);
    assert_int_equal(wire_push_req_encode(&m, &b, &len), CMC_OK);
    assert_int_equal(wire_push_req_decode(b, len, &back), CMC_OK);
    assert_int_equal(back.has_user, 1);
    assert_string_equal(back.user, "nurse-jones");
    assert_memory_equal(back.user_sig, m.user_sig, sizeof m.user_sig);
    cmc_free(b);

    /* the digest a user signs covers every field of the edit */
    uint8_t d1[CRY_HASH_BYTES], d2[CRY_HASH_BYTES];
    wire_push_digest(ID_A, 3, "idem", change5, 5, d1);
    wire_push_digest(ID_A, 4, "idem", change5, 5, d2);
    assert_memory_not_equal(d1, d2, sizeof d1);
    wire_push_digest(ID_A, 3, "idem2", change5, 5, d2);
    assert_memory_not_equal(d1, d2, sizeof d1);
    wire_push_digest(ID_A, 3, "idem", change5, 4, d2);
    assert_memory_not_equal(d1, d2, sizeof d1);
}

static void test_users_registration(void **state)
{
    (void)state;
    struct wire_user v[2], back[WIRE_USERS_MAX];
    size_t n = 0, len = 0;
    uint8_t *b = NULL;
    memset(v, 0, sizeof v);
    snprintf(v[0].user, sizeof v[0].user, "nurse-jones");
    snprintf(v[0].role, sizeof v[0].role, "clinician");
    memset(v[0].pk, 1, sizeof v[0].pk);
    snprintf(v[1].user, sizeof v[1].user, "crew");
    snprintf(v[1].role, sizeof v[1].role, "urgent_care");
    memset(v[1].pk, 2, sizeof v[1].pk);
    assert_int_equal(wire_users_encode(v, 2, &b, &len), CMC_OK);
    assert_int_equal(wire_users_decode(b, len, back, &n), CMC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(back[0].user, "nurse-jones");
    assert_string_equal(back[1].role, "urgent_care");
    assert_memory_equal(back[1].pk, v[1].pk, sizeof v[1].pk);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(wire_users_decode(b, cut, back, &n), CMC_ERR_INVALID);
    cmc_free(b);
}

static void test_push_answer(void **state)
{
    (void)state;
    struct wire_push_ans m = { .result = "accepted", .version = 4 }, back;
    uint8_t *b = NULL;
    size_t len = 0;
    assert_int_equal(wire_push_ans_encode(&m, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_PUSH_ANS_ACCEPTED);
    assert_int_equal(wire_push_ans_decode(b, len, &back), CMC_OK);
    assert_string_equal(back.result, "accepted");
    assert_int_equal(back.version, 4);
    assert_null(back.current);
    cmc_free(b);
    struct wire_push_ans c = { .result = "conflict", .version = 5, .current = change5, .current_len = 5 };
    assert_int_equal(wire_push_ans_encode(&c, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_PUSH_ANS_CONFLICT);
    assert_int_equal(wire_push_ans_decode(b, len, &back), CMC_OK);
    assert_string_equal(back.result, "conflict");
    assert_int_equal(back.current_len, 5);
    assert_memory_equal(back.current, change5, 5);
    cmc_free(b);
    assert_refuses_damage(KAT_PUSH_ANS_CONFLICT, dec_push_ans, &back, CMC_ERR_PROTOCOL);
    /* a result too long for any known answer */
    static const uint8_t long_result[] = { 0x81, 0xa6, 'r', 'e', 's', 'u', 'l', 't', 0xb0,
                                           'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x',
                                           'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x' };
    assert_int_equal(wire_push_ans_decode(long_result, sizeof long_result, &back), CMC_ERR_PROTOCOL);
}

/* ---- ack ------------------------------------------------------------------------------- */

static void test_ack(void **state)
{
    (void)state;
    const char *ids[] = { ID_A, ID_B };
    struct wire_ack m = { .purges = ids, .n_purges = 2 }, back;
    uint8_t *b = NULL;
    size_t len = 0;
    assert_int_equal(wire_ack_encode(&m, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_ACK_PURGES);
    assert_int_equal(wire_ack_decode(b, len, &back), CMC_OK);
    assert_int_equal(back.n_purges, 2);
    assert_string_equal(back.purges[0], ID_A);
    assert_string_equal(back.purges[1], ID_B);
    assert_false(back.wipe);
    wire_ack_free(&back);
    cmc_free(b);
    assert_refuses_damage(KAT_ACK_PURGES, dec_ack, &back, CMC_ERR_INVALID);

    struct wire_ack w = { .wipe = 1 };
    assert_int_equal(wire_ack_encode(&w, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_ACK_WIPE);
    assert_int_equal(wire_ack_decode(b, len, &back), CMC_OK);
    assert_true(back.wipe);
    assert_int_equal(back.n_purges, 0);
    wire_ack_free(&back);
    cmc_free(b);

    assert_int_equal(wire_ack_ans_encode(&b, &len), CMC_OK);
    assert_bytes(b, len, KAT_ACK_ANS);
    cmc_free(b);

    /* a purged id that is not a plan id; an array claiming more ids than bytes; a repeat */
    const char *bad[] = { "not-a-plan" };
    struct wire_ack m2 = { .purges = bad, .n_purges = 1 };
    assert_int_equal(wire_ack_encode(&m2, &b, &len), CMC_OK);
    assert_int_equal(wire_ack_decode(b, len, &back), CMC_ERR_INVALID);
    cmc_free(b);
    static const uint8_t hostile[] = { 0x81, 0xa6, 'p', 'u', 'r', 'g', 'e', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff };
    assert_int_equal(wire_ack_decode(hostile, sizeof hostile, &back), CMC_ERR_INVALID);
    static const uint8_t twice[] = { 0x82, 0xa6, 'p', 'u', 'r', 'g', 'e', 's', 0x90,
                                     0xa6, 'p', 'u', 'r', 'g', 'e', 's', 0x90 };
    assert_int_equal(wire_ack_decode(twice, sizeof twice, &back), CMC_ERR_INVALID);
}

/* ---- audit ----------------------------------------------------------------------------- */

static void audit_sample(struct wire_audit_entry *e)
{
    memset(e, 0, sizeof *e);
    e->seq = 7;
    seq32(e->prev, 0xa0);
    snprintf(e->user, sizeof e->user, "dr.shah");
    snprintf(e->role, sizeof e->role, "clinician");
    snprintf(e->plan_id, sizeof e->plan_id, ID_A);
    snprintf(e->action, sizeof e->action, "lookup");
    e->wall = 1780000123;
    e->mono = -5;
}

static void test_audit_hash(void **state)
{
    (void)state;
    struct wire_audit_entry e;
    uint8_t h[32];
    size_t len;
    audit_sample(&e);
    assert_int_equal(wire_audit_entry_hash(&e, h), CMC_OK);
    uint8_t *want = unhex(KAT_AUDIT_HASH, &len);
    assert_memory_equal(h, want, 32);
    /* every field is covered: change one and the hash changes */
    e.mono = -4;
    assert_int_equal(wire_audit_entry_hash(&e, h), CMC_OK);
    assert_memory_not_equal(h, want, 32);
    audit_sample(&e);
    e.prev[31] ^= 1;
    assert_int_equal(wire_audit_entry_hash(&e, h), CMC_OK);
    assert_memory_not_equal(h, want, 32);
    cmc_free(want);
}

static void test_audit_upload(void **state)
{
    (void)state;
    struct wire_audit_entry e, back;
    struct mp_reader r;
    uint8_t *b = NULL, computed[32];
    size_t len = 0;
    uint32_t n;
    audit_sample(&e);
    assert_int_equal(wire_audit_entry_hash(&e, e.hash), CMC_OK);
    assert_int_equal(wire_audit_upload_encode(&e, 1, NULL, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_AUDIT_UPLOAD);
    assert_int_equal(wire_audit_upload_open(&r, b, len, &n, &(struct wire_audit_state){0}), CMC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(wire_audit_upload_next(&r, &back, computed), CMC_OK);
    assert_memory_equal(&back, &e, sizeof e);
    assert_memory_equal(computed, e.hash, 32); /* the hub computes what the device did */
    assert_int_equal(wire_audit_upload_close(&r), CMC_OK);
    /* every truncation is refused somewhere along the way */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = wire_audit_upload_open(&r, b, cut, &n, &(struct wire_audit_state){0});
        if (rc == CMC_OK && n == 1)
            rc = wire_audit_upload_next(&r, &back, computed);
        if (rc == CMC_OK)
            rc = wire_audit_upload_close(&r);
        assert_int_not_equal(rc, CMC_OK);
    }
    cmc_free(b);

    /* a changed string no longer matches its hash */
    snprintf(e.identifier, sizeof e.identifier, "9434765919");
    assert_int_equal(wire_audit_upload_encode(&e, 1, NULL, &b, &len), CMC_OK);
    assert_int_equal(wire_audit_upload_open(&r, b, len, &n, &(struct wire_audit_state){0}), CMC_OK);
    assert_int_equal(wire_audit_upload_next(&r, &back, computed), CMC_OK);
    assert_memory_not_equal(computed, e.hash, 32);
    cmc_free(b);

    /* strings over 200 bytes are refused; a hostile entry count is refused at once */
    memset(e.user, 'u', 201);
    e.user[201] = '\0';
    assert_int_equal(wire_audit_upload_encode(&e, 1, NULL, &b, &len), CMC_OK);
    assert_int_equal(wire_audit_upload_open(&r, b, len, &n, &(struct wire_audit_state){0}), CMC_OK);
    assert_int_equal(wire_audit_upload_next(&r, &back, computed), CMC_ERR_INVALID);
    cmc_free(b);
    static const uint8_t hostile[] = { 0x81, 0xa7, 'e', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0x00, 0x00, 0x27, 0x11 };
    assert_int_not_equal(wire_audit_upload_open(&r, hostile, sizeof hostile, &n, &(struct wire_audit_state){0}), CMC_OK);
}

static void test_audit_answer(void **state)
{
    (void)state;
    uint8_t *b = NULL;
    size_t len = 0;
    int64_t acked = 0;
    assert_int_equal(wire_audit_ans_encode(2, &b, &len), CMC_OK);
    assert_bytes(b, len, KAT_AUDIT_ANS);
    assert_int_equal(wire_audit_ans_decode(b, len, &acked), CMC_OK);
    assert_int_equal(acked, 2);
    cmc_free(b);
    assert_refuses_damage(KAT_AUDIT_ANS, dec_audit_ans, &acked, CMC_ERR_PROTOCOL);
    static const uint8_t negative[] = { 0x81, 0xa9, 'a', 'c', 'k', 'e', 'd', '_', 's', 'e', 'q', 0xff };
    assert_int_equal(wire_audit_ans_decode(negative, sizeof negative, &acked), CMC_ERR_PROTOCOL);
}

TST_MAIN(NULL, NULL, NULL, test_enroll_request, test_enroll_answer, test_pull_query, test_push_request,
         test_users_registration, test_push_answer, test_ack, test_audit_hash, test_audit_upload,
         test_audit_answer)
