/*
 * test_hub_server.c - the real hub server, in-process, on 127.0.0.1 over HTTPS with a
 * certificate made at test time by the `openssl` command, driven with libcurl: enrollment,
 * a signed pull whose bundle verifies with the key learnt at enrollment, a push, and the
 * refusals (replay, revoked device, bad input, oversized body).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"
#include "hub/server.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/pg_fixture.h"
#include "sync/bundle.h"
#include "sync/change.h"
#include "sync/mp.h"
#include "sync/reqsig.h"
#include "sync/wire.h"

#include <curl/curl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/hub_device.h"
#include "tests/support/tmpdir.h"

extern char **environ;

struct env {
    char tmp[64];
    char dir[96], cert[96], key[96];
    hub *h;
    hub_server *srv;
    char base[64];
    char code[HUB_CODE_LEN + 1];
    char device_id[PLAN_ID_LEN + 1];
    char plan_id[PLAN_ID_LEN + 1];
};

struct reply {
    long status;
    uint8_t *body;
    size_t len;
};

static int run(char *const argv[])
{
    pid_t pid;
    int status = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1 /* O_WRONLY */, 0);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
        return -1;
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    size_t add = size * n;
    uint8_t *nb = realloc(r->body, r->len + add + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = 0;
    return add;
}

/* One HTTPS request; `sig` (may be NULL) adds the X-CMC-* headers. CURLcode returned. */
static int request(struct env *e, const char *method, const char *path, const void *body,
                   size_t len, const struct reqsig_headers *sig, struct reply *r)
{
    char url[256], hdr[4][200];
    struct curl_slist *list = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    memset(r, 0, sizeof *r);
    assert_non_null(c);
    snprintf(url, sizeof url, "%s%s", e->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, e->cert);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    list = curl_slist_append(list, "Content-Type: application/msgpack");
    if (sig != NULL) {
        snprintf(hdr[0], sizeof hdr[0], "X-CMC-Device: %s", sig->device);
        snprintf(hdr[1], sizeof hdr[1], "X-CMC-Time: %s", sig->time);
        snprintf(hdr[2], sizeof hdr[2], "X-CMC-Nonce: %s", sig->nonce);
        snprintf(hdr[3], sizeof hdr[3], "X-CMC-Signature: %s", sig->signature);
        for (int i = 0; i < 4; i++)
            list = curl_slist_append(list, hdr[i]);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return (int)rc;
}

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    char subj[] = "/CN=127.0.0.1";
    char ext[] = "subjectAltName=IP:127.0.0.1";
    struct hub_server_opts o;
    char *json = NULL;
    size_t len;
    struct plan p;
    int status, extra;
    char dev_id[PLAN_ID_LEN + 1];

    assert_non_null(e);
    assert_int_equal(tst_tmpdir_make("hubsrv", e->tmp, sizeof e->tmp), 0);
    snprintf(e->dir, sizeof e->dir, "%s/hub", e->tmp);
    snprintf(e->cert, sizeof e->cert, "%s/cert.pem", e->tmp);
    snprintf(e->key, sizeof e->key, "%s/key.pem", e->tmp);
    {
        char *argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", subj,
                        "-addext", ext, "-keyout", e->key, "-out", e->cert, NULL};
        assert_int_equal(run(argv), 0);
    }
    tst_hub_store_fresh();
    assert_int_equal(hub_init(e->dir), CMC_OK);
    assert_int_equal(hub_open(e->dir, &e->h), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "gp1", "gp"), CMC_OK);
    assert_int_equal(hub_user_add(e->h, "nurse1", "clinician"), CMC_OK);
    for (long k = 0;; k++) {
        assert_int_equal(hub_seed_plan(7, k, &p, &status, &extra), CMC_OK);
        if (plan_validate(&p, PLAN_CHECK_COMPLETE) == CMC_OK)
            break;
        plan_free(&p);
    }
    assert_int_equal(plan_to_json(&p, 0, &json, &len), CMC_OK);
    assert_int_equal(hub_plan_import(e->h, "nurse1", json, len, e->plan_id), CMC_OK);
    assert_int_equal(hub_caseload_add(e->h, p.team, p.nhs_number), CMC_OK);
    {
        char scope[128];
        snprintf(scope, sizeof scope, "team:%s", p.team);
        assert_int_equal(hub_device_add(e->h, "laptop", scope, "clinician", dev_id, e->code), CMC_OK);
    }
    plan_free(&p);
    cmc_free(json);
    assert_int_equal(hub_plan_submit(e->h, "nurse1", e->plan_id), CMC_OK);
    assert_int_equal(hub_plan_approve(e->h, "gp1", e->plan_id), CMC_OK);

    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.tls_cert_path = e->cert;
    o.tls_key_path = e->key;
    o.timeout_s = 10;
    assert_int_equal(hub_server_start(e->h, &o, &e->srv), CMC_OK);
    assert_true(hub_server_port(e->srv) > 0);
    snprintf(e->base, sizeof e->base, "https://127.0.0.1:%u", (unsigned)hub_server_port(e->srv));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    hub_server_stop(e->srv);
    hub_close(e->h);
    assert_int_equal(tst_tmpdir_remove(e->tmp), 0);
    free(e);
    return 0;
}

static uint8_t *enroll_body(const char *code, const uint8_t pk[32], size_t *len)
{
    struct mp_writer w;
    uint8_t *out = NULL;
    mp_writer_init(&w);
    mp_write_map(&w, 3);
    mp_write_cstr(&w, "code");
    mp_write_cstr(&w, code);
    mp_write_cstr(&w, "device_pk");
    mp_write_bin(&w, pk, 32);
    mp_write_cstr(&w, "name");
    mp_write_cstr(&w, "laptop");
    assert_int_equal(mp_writer_finish(&w, &out, len), CMC_OK);
    return out;
}

/* Reads "device_id" and "hub_pk" from an enrollment answer. */
static void parse_enrollment(const struct reply *r, char id[PLAN_ID_LEN + 1], uint8_t pk[32])
{
    struct mp_reader rd;
    uint32_t n, kl, vl;
    const char *k, *s;
    const uint8_t *b;
    int got = 0;
    mp_reader_init(&rd, r->body, r->len, 4);
    assert_int_equal(mp_read_map(&rd, 16, &n), CMC_OK);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(mp_read_str(&rd, 64, &k, &kl), CMC_OK);
        if (kl == 9 && memcmp(k, "device_id", 9) == 0) {
            assert_int_equal(mp_read_str(&rd, 64, &s, &vl), CMC_OK);
            assert_int_equal(vl, PLAN_ID_LEN);
            memcpy(id, s, vl);
            id[vl] = '\0';
            got |= 1;
        } else if (kl == 6 && memcmp(k, "hub_pk", 6) == 0) {
            assert_int_equal(mp_read_bin(&rd, 32, &b, &vl), CMC_OK);
            assert_int_equal(vl, 32);
            memcpy(pk, b, 32);
            got |= 2;
        } else {
            assert_int_equal(mp_skip(&rd), CMC_OK);
        }
    }
    assert_int_equal(got, 3);
}

static void test_https_enroll_pull_push_refusals(void **state)
{
    struct env *e = *state;
    uint8_t dev_pk[32], hub_pk[32], expect_pk[32];
    struct cry_secret *sk = NULL;
    struct reply r;
    struct reqsig_headers sig;
    struct bundle_header hdr;
    struct bundle_op *ops = NULL;
    size_t n_ops = 0, len = 0;
    uint8_t *body;
    char id[PLAN_ID_LEN + 1];

    assert_int_equal(cry_sign_keypair(dev_pk, &sk), CMC_OK);

    /* a wrong code: a JSON 401 */
    body = enroll_body("AAAA-BBBB-CCCC-DDDD", dev_pk, &len);
    assert_int_equal(request(e, "POST", "/v1/enroll", body, len, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr((char *)r.body, "\"error\":\"unauthorized\""));
    reply_free(&r);
    cmc_free(body);

    /* the right code, once */
    body = enroll_body(e->code, dev_pk, &len);
    assert_int_equal(request(e, "POST", "/v1/enroll", body, len, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    parse_enrollment(&r, id, hub_pk);
    hub_public_key(e->h, expect_pk);
    assert_memory_equal(hub_pk, expect_pk, 32);
    reply_free(&r);
    /* the same key again (its answer lost): the same answer; another key: refused */
    assert_int_equal(request(e, "POST", "/v1/enroll", body, len, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    {
        char again[PLAN_ID_LEN + 1];
        uint8_t again_pk[32];
        parse_enrollment(&r, again, again_pk);
        assert_string_equal(again, id);
    }
    reply_free(&r);
    cmc_free(body);
    {
        uint8_t other_pk[32];
        memcpy(other_pk, dev_pk, 32);
        other_pk[0] ^= 1;
        body = enroll_body(e->code, other_pk, &len);
        assert_int_equal(request(e, "POST", "/v1/enroll", body, len, NULL, &r), CURLE_OK);
        assert_int_equal(r.status, 401);
        reply_free(&r);
        cmc_free(body);
    }

    /* an unsigned pull */
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    reply_free(&r);

    /* a signed pull: a bundle that verifies with the pinned key */
    assert_int_equal(reqsig_sign(sk, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(bundle_verify(r.body, r.len, hub_pk, &hdr), CMC_OK);
    assert_int_equal(hdr.op_count, 2);
    assert_int_equal(bundle_decode(r.body, r.len, &hdr, &ops, &n_ops), CMC_OK);
    assert_int_equal(ops[0].kind, BUNDLE_OP_POLICY);
    assert_int_equal(ops[0].lease_days, HUB_LEASE_DAYS);
    assert_int_equal(ops[1].kind, BUNDLE_OP_PUT);
    assert_string_equal(ops[1].plan_id, e->plan_id);
    int64_t version = ops[1].plan.version;
    bundle_ops_free(ops, n_ops);
    uint64_t cursor = hdr.to_cursor;
    r.body[r.len / 2] ^= 0x40;
    assert_int_not_equal(bundle_verify(r.body, r.len, hub_pk, &hdr), CMC_OK);
    reply_free(&r);

    /* the same signed request again: a replay */
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr((char *)r.body, "replay"));
    reply_free(&r);

    /* the device registers its users (a request it signs), then a push: a new version
     * awaiting approval */
    {
        struct wire_user u;
        memset(&u, 0, sizeof u);
        snprintf(u.user, sizeof u.user, "%s", TST_USER);
        snprintf(u.role, sizeof u.role, "clinician");
        tst_user_key(u.pk);
        assert_int_equal(wire_users_encode(&u, 1, &body, &len), CMC_OK);
        assert_int_equal(reqsig_sign(sk, id, "POST", "/v1/users", body, len, &sig), CMC_OK);
        assert_int_equal(request(e, "POST", "/v1/users", body, len, &sig, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        reply_free(&r);
        cmc_free(body);
    }
    {
        body = tst_push_body("edit-1", e->plan_id, version, "{\"set\": {\"prognosis\": \"days\"}}", &len);
        assert_int_equal(reqsig_sign(sk, id, "POST", "/v1/push", body, len, &sig), CMC_OK);
        assert_int_equal(request(e, "POST", "/v1/push", body, len, &sig, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_true(r.len > 8 && strstr((char *)r.body + 1, "accepted") != NULL);
        reply_free(&r);
        cmc_free(body);
        struct hub_plan_info info;
        assert_int_equal(hub_plan_info(e->h, e->plan_id, &info), CMC_OK);
        assert_int_equal(info.status, PLAN_STATUS_AWAITING_APPROVAL);
        assert_int_equal(info.published_version, version);
    }

    /* malformed body: 400 */
    assert_int_equal(reqsig_sign(sk, id, "POST", "/v1/push", (const uint8_t *)"\xc1", 1, &sig), CMC_OK);
    assert_int_equal(request(e, "POST", "/v1/push", "\xc1", 1, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 400);
    reply_free(&r);

    /* oversized body: 413, and the server is still there */
    {
        size_t big = HUB_MAX_REQUEST + 4096;
        uint8_t *huge = calloc(1, big);
        assert_non_null(huge);
        assert_int_equal(request(e, "POST", "/v1/push", huge, big, NULL, &r), CURLE_OK);
        assert_int_equal(r.status, 413);
        reply_free(&r);
        free(huge);
    }

    /* the next page from the committed cursor; then revoked: refused */
    {
        char path[64];
        snprintf(path, sizeof path, "/v1/pull?cursor=%llu", (unsigned long long)cursor);
        assert_int_equal(reqsig_sign(sk, id, "GET", path, NULL, 0, &sig), CMC_OK);
        assert_int_equal(request(e, "GET", path, NULL, 0, &sig, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(bundle_verify(r.body, r.len, hub_pk, &hdr), CMC_OK);
        assert_int_equal(hdr.from_cursor, cursor);
        assert_int_equal(hdr.op_count, 2); /* the policy; the pushed draft for this clinician */
        reply_free(&r);
        assert_int_equal(hub_device_revoke(e->h, id), CMC_OK);
        assert_int_equal(reqsig_sign(sk, id, "GET", path, NULL, 0, &sig), CMC_OK);
        assert_int_equal(request(e, "GET", path, NULL, 0, &sig, &r), CURLE_OK);
        assert_int_equal(r.status, 401);
        assert_non_null(strstr((char *)r.body, "revoked"));
        reply_free(&r);
    }
    cry_secret_free(sk);
}

/* The server checks a known device's signature before it takes the hub's lock; what it
 * concluded never lets through a request the hub itself would refuse. */
struct poller {
    struct env *e;
    const struct cry_secret *sk;
    const char *id;
    int ok;
};

static void *poll_ten(void *arg)
{
    struct poller *p = arg;
    for (int i = 0; i < 10; i++) {
        struct reqsig_headers sig;
        struct reply r;
        if (reqsig_sign(p->sk, p->id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig) != CMC_OK)
            return NULL;
        if (request(p->e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r) == CURLE_OK &&
            r.status == 200)
            p->ok++;
        reply_free(&r);
    }
    return NULL;
}

static void test_signature_checked_before_the_lock(void **state)
{
    struct env *e = *state;
    uint8_t pk[32], other_pk[32];
    struct cry_secret *sk = NULL, *other = NULL;
    struct hub_enrollment en;
    struct reqsig_headers sig;
    struct reply r;
    uint8_t *body = NULL;
    size_t len = 0;
    const char *id;

    assert_int_equal(cry_sign_keypair(pk, &sk), CMC_OK);
    assert_int_equal(cry_sign_keypair(other_pk, &other), CMC_OK);
    assert_int_equal(hub_enroll(e->h, e->code, pk, "laptop", &en), CMC_OK);
    id = en.device_id;

    /* the first request: the hub checks it, and the server learns the device's key */
    assert_int_equal(reqsig_sign(sk, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    reply_free(&r);

    /* a damaged signature, another key's signature, a body changed after signing */
    assert_int_equal(reqsig_sign(sk, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    sig.signature[10] = sig.signature[10] == '0' ? '1' : '0';
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr((char *)r.body, "\"error\":\"unauthorized\""));
    reply_free(&r);
    assert_int_equal(reqsig_sign(other, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    reply_free(&r);
    {
        struct mp_writer w;
        mp_writer_init(&w);
        mp_write_map(&w, 1);
        mp_write_cstr(&w, "wipe");
        mp_write_bool(&w, 1);
        assert_int_equal(mp_writer_finish(&w, &body, &len), CMC_OK);
    }
    assert_int_equal(reqsig_sign(sk, id, "POST", "/v1/ack", body, len, &sig), CMC_OK);
    body[len - 1] ^= 1; /* true -> false */
    assert_int_equal(request(e, "POST", "/v1/ack", body, len, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    reply_free(&r);
    body[len - 1] ^= 1;

    /* several connections at once, all served */
    {
        pthread_t t[4];
        struct poller p[4];
        for (int i = 0; i < 4; i++) {
            p[i] = (struct poller){e, sk, id, 0};
            assert_int_equal(pthread_create(&t[i], NULL, poll_ten, &p[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(p[i].ok, 10);
        }
    }

    /* a wipe order is served; once the wipe is confirmed the device is refused */
    assert_int_equal(hub_device_wipe(e->h, id), CMC_OK);
    assert_int_equal(reqsig_sign(sk, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    assert_int_equal(reqsig_sign(sk, id, "POST", "/v1/ack", body, len, &sig), CMC_OK);
    assert_int_equal(request(e, "POST", "/v1/ack", body, len, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    assert_int_equal(reqsig_sign(sk, id, "GET", "/v1/pull?cursor=0", NULL, 0, &sig), CMC_OK);
    assert_int_equal(request(e, "GET", "/v1/pull?cursor=0", NULL, 0, &sig, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr((char *)r.body, "not enrolled"));
    reply_free(&r);
    cmc_free(body);
    cry_secret_free(sk);
    cry_secret_free(other);
}

static void test_plain_http_to_tls_port_fails(void **state)
{
    struct env *e = *state;
    struct reply r;
    char saved[64];
    memcpy(saved, e->base, sizeof saved);
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%u", (unsigned)hub_server_port(e->srv));
    int rc = request(e, "GET", "/v1/pull?cursor=0", NULL, 0, NULL, &r);
    /* either the connection fails or nothing HTTP comes back: never a served answer */
    assert_true(rc != CURLE_OK || r.status == 0 || r.status >= 400);
    reply_free(&r);
    memcpy(e->base, saved, sizeof saved);
    /* and the HTTPS side still works */
    assert_int_equal(request(e, "GET", "/nothing", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    reply_free(&r);
}

static void test_parse_listen(void **state)
{
    char host[64];
    uint16_t port = 0;
    (void)state;
    assert_int_equal(hub_parse_listen("127.0.0.1:8443", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8443);
    assert_int_equal(hub_parse_listen("[::1]:443", host, sizeof host, &port), CMC_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 443);
    assert_int_equal(hub_parse_listen("localhost", host, sizeof host, &port), CMC_ERR_USAGE);
    assert_int_equal(hub_parse_listen(":80", host, sizeof host, &port), CMC_ERR_USAGE);
    assert_int_equal(hub_parse_listen("h:99999", host, sizeof host, &port), CMC_ERR_USAGE);
    assert_int_equal(hub_parse_listen("h:", host, sizeof host, &port), CMC_ERR_USAGE);
    assert_int_equal(hub_parse_listen("[::1]443", host, sizeof host, &port), CMC_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_https_enroll_pull_push_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_checked_before_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_to_tls_port_fails, setup, teardown),
        cmocka_unit_test(test_parse_listen),
    };
    assert_int_equal(cry_init(), CMC_OK);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
