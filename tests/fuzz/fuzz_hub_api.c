/*
 * fuzz_hub_api - the hub's request handling (hub_api_handle in hub/hub.h: request in,
 * response out, no socket). A hub is made once in a temporary directory, seeded with plans,
 * with one clinician device enrolled.
 *
 * Input: byte 0 picks the method (bits 1-2: GET, POST, PUT, DELETE) and whether the request
 * is signed with the enrolled device's key (bit 0), so inputs get past the signature check and
 * reach every endpoint's body parsing; then the request target up to the first newline; the
 * rest is the body. Properties: every request gets an answer with a status in 200..599, a
 * JSON body on every error, and the hub keeps answering a plain signed poll with 200.
 */
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/reqsig.h"
#include "sync/wire.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

static hub *h;
static char hub_dir[64], device_id[PLAN_ID_LEN + 1], a_plan[PLAN_ID_LEN + 1];
static struct cry_secret *dev_sk;
static long inputs;

static void remove_hub(void)
{
    char cmd[128];
    hub_close(h);
    h = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s", hub_dir);
    if (system(cmd) != 0)
        return;
}

static void handle(const char *method, const char *path, const uint8_t *body, size_t len, int sign,
                   struct hub_response *rs)
{
    struct reqsig_headers sig;
    struct hub_request rq = { .method = method, .path = path, .body = body, .body_len = len };
    if (sign && reqsig_sign(dev_sk, device_id, method, path, body, len, &sig) == CMC_OK) {
        rq.device = sig.device;
        rq.time = sig.time;
        rq.nonce = sig.nonce;
        rq.signature = sig.signature;
    }
    memset(rs, 0, sizeof *rs);
    hub_api_handle(h, &rq, rs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char code[HUB_CODE_LEN + 1], id[PLAN_ID_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES], *body = NULL;
    size_t len = 0;
    fuzz_init();
    strcpy(hub_dir, "/tmp/cmc-fuzz-hub-XXXXXX");
    if (mkdtemp(hub_dir) == NULL)
        abort();
    strcat(hub_dir, "/hub");
    if (hub_init(hub_dir) != CMC_OK || hub_open(hub_dir, &h) != CMC_OK || hub_seed(h, 40, 9, NULL, NULL) != CMC_OK ||
        hub_device_add(h, "fuzz", "all", "clinician", id, code) != CMC_OK || cry_sign_keypair(pk, &dev_sk) != CMC_OK)
        abort();
    hub_dir[strlen(hub_dir) - 4] = '\0';
    atexit(remove_hub);
    struct wire_enroll_req enroll = {.code = code, .name = "fuzz"};
    memcpy(enroll.device_pk, pk, sizeof enroll.device_pk);
    if (wire_enroll_req_encode(&enroll, &body, &len) != CMC_OK)
        abort();
    struct hub_response rs;
    handle("POST", "/v1/enroll", body, len, 0, &rs);
    cmc_free(body);
    if (rs.status != 200)
        abort();
    hub_response_free(&rs);
    snprintf(device_id, sizeof device_id, "%s", id);
    /* a plan id for the seeds */
    struct plan p;
    int status = 0, extra = 0;
    plan_init(&p);
    if (hub_seed_plan(9, 0, &p, &status, &extra) != CMC_OK)
        abort();
    snprintf(a_plan, sizeof a_plan, "%s", p.plan_id);
    plan_free(&p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *methods[] = { "GET", "POST", "PUT", "DELETE" };
    if (size < 1)
        return 0;
    int sign = data[0] & 1;
    const char *method = methods[(data[0] >> 1) & 3];
    data++;
    size--;
    size_t plen = 0;
    while (plen < size && plen < 4096 && data[plen] != '\n')
        plen++;
    char *path = cmc_malloc(plen + 1);
    if (path == NULL)
        abort();
    memcpy(path, data, plen);
    path[plen] = '\0';
    const uint8_t *body = plen < size ? data + plen + 1 : NULL;
    size_t blen = plen < size ? size - plen - 1 : 0;
    struct hub_response rs;
    handle(method, path, body, blen, sign, &rs);
    if (rs.status < 200 || rs.status > 599)
        abort();
    if (rs.status >= 400 && (rs.content_type == NULL || strstr(rs.content_type, "json") == NULL))
        abort();
    hub_response_free(&rs);
    cmc_free(path);
    /* now and then: the hub still serves a plain poll */
    if (++inputs % 64 == 0) {
        handle("GET", "/v1/pull?cursor=0&budget=1024", NULL, 0, 1, &rs);
        if (rs.status != 200)
            abort();
        hub_response_free(&rs);
    }
    return 0;
}

static int seed(const char *dir, const char *name, uint8_t flags, const char *path, const uint8_t *body,
                size_t len)
{
    size_t plen = strlen(path);
    uint8_t *buf = malloc(plen + len + 2);
    if (buf == NULL)
        return -1;
    buf[0] = flags;
    memcpy(buf + 1, path, plen);
    buf[1 + plen] = '\n';
    if (len > 0)
        memcpy(buf + 2 + plen, body, len);
    int rc = fuzz_write_seed(dir, name, buf, plen + len + 2);
    free(buf);
    return rc;
}

int fuzz_make_seeds(const char *dir)
{
    enum { GET_SIGNED = 1, POST = 2, POST_SIGNED = 3 };
    int rc = 0;
    uint8_t *b = NULL;
    size_t len = 0;
    struct mp_writer w;
    rc |= seed(dir, "pull", GET_SIGNED, "/v1/pull?cursor=0", NULL, 0);
    rc |= seed(dir, "pull-budget", GET_SIGNED, "/v1/pull?cursor=3&budget=2048", NULL, 0);
    rc |= seed(dir, "pull-unsigned", 0, "/v1/pull?cursor=0", NULL, 0);
    struct wire_enroll_req enroll = {.code = "ABCD-EFGH-IJKL-MNOP", .name = "tablet"};
    memcpy(enroll.device_pk, "0123456789abcdef0123456789abcdef", sizeof enroll.device_pk);
    if (wire_enroll_req_encode(&enroll, &b, &len) == CMC_OK)
        rc |= seed(dir, "enroll", POST, "/v1/enroll", b, len);
    cmc_free(b);
    struct wire_push_req push = {.idempotency_id = "edit-1", .base_version = 1,
                                 .change = (const uint8_t *)"\x91\x93\x01\x20\xa4\x64\x61\x79\x73",
                                 .change_len = 9}; /* [[SET, prognosis, "days"]] */
    snprintf(push.plan_id, sizeof push.plan_id, "%s", a_plan);
    if (wire_push_req_encode(&push, &b, &len) == CMC_OK)
        rc |= seed(dir, "push", POST_SIGNED, "/v1/push", b, len);
    cmc_free(b);
    mp_writer_init(&w);
    mp_write_map(&w, 2);
    mp_write_cstr(&w, "purges");
    mp_write_array(&w, 1);
    mp_write_cstr(&w, a_plan);
    mp_write_cstr(&w, "wipe");
    mp_write_bool(&w, 0);
    if (mp_writer_finish(&w, &b, &len) == CMC_OK)
        rc |= seed(dir, "ack", POST_SIGNED, "/v1/ack", b, len);
    cmc_free(b);
    struct wire_audit_entry entry = {.seq = 1, .user = "crew", .role = "clinician",
                                     .identifier = "9434765919", .action = "lookup",
                                     .wall = 1790000000, .mono = 12345}; /* prev, hash: zeros */
    snprintf(entry.plan_id, sizeof entry.plan_id, "%s", a_plan);
    if (wire_audit_upload_encode(&entry, 1, NULL, &b, &len) == CMC_OK)
        rc |= seed(dir, "audit", POST_SIGNED, "/v1/audit", b, len);
    cmc_free(b);
    return rc;
}
