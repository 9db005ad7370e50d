/*
 * hostile_hub - a hub that lies, for the attack tests (docs/TESTING.md, test_fault_hostile.sh).
 *
 *   hostile_hub --mode-file FILE --port-file FILE [--plans N]
 *
 * Serves plain HTTP on 127.0.0.1 (the agent allows plain http to loopback only). Enrollment
 * answers with this server's own signing key, so every bundle it signs verifies; then each
 * pull answers as the first line of the mode file says (read again for every request):
 *
 *   good            a correct bundle: from cursor 0, N published plans to cursor 100; after
 *                   that, empty polls
 *   forged          a correct bundle signed with another key
 *   replay          the cursor-0 snapshot bundle again, whatever cursor was asked
 *   older           a bundle going backwards (to cursor < from cursor)
 *   cursor          a bundle starting at another cursor than the one asked
 *   wrongdev        a bundle addressed to another device
 *   draft           a correctly signed bundle holding a draft (the device is urgent care)
 *   toomany         a signed header claiming more ops than the cap
 *   bigbody         a 10 MiB response (more than any bundle may be)
 *   bomb            a signed zlib bomb: 64 MiB of zeros declared as 1 KiB
 *   badzlib         a signed body that is not zlib at all
 *   truncate        a correct bundle cut short, no Content-Length, connection closed
 *                   (libcurl reports success: only the bundle's own length catches it)
 *   retry N         503 with Retry-After: 1 for the next N pulls, then as "good"
 *   e500            500 with Retry-After: 1, always
 *   stall           headers and half the body, then nothing, for ever
 *
 * Every pull served is counted in the log line on stderr. Test-only code: it uses the OS
 * directly and does not check request signatures.
 */
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/bundle.h"
#include "sync/mp.h"
#include "sync/plan.h"
#include "sync/wire.h"
#include "tests/fault/fault_args.h"
#include "tests/fault/fault_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define SNAPSHOT_TO 100
static const uint8_t device_uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 0x43, 4, 0x85, 6, 7, 8, 9, 10, 11, 12 };
static const char *device_id_text = "deadbeef-0102-4304-8506-0708090a0b0c";

static struct cry_secret *hub_sk, *forger_sk;
static uint8_t hub_pk[CRY_SIGN_PK_BYTES];
static struct plan *plans;
static long n_plans = 20;

static void die(const char *what)
{
    fprintf(stderr, "hostile_hub: %s: %s\n", what, cmc_errmsg());
    exit(1);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* A header signed by `sk` over whatever fields the attack needs, framing `body`. */
static void frame_raw(uint16_t flags, const uint8_t dev[16], uint64_t from, uint64_t to, uint32_t ops,
                      uint32_t raw_len, const uint8_t *body, size_t body_len, const struct cry_secret *sk,
                      uint8_t **out, size_t *len)
{
    uint8_t *b = cmc_malloc(BUNDLE_HEADER_BYTES + body_len);
    if (b == NULL)
        die("alloc");
    memcpy(b, "CMCB", 4);
    put_be(b + 4, BUNDLE_PROTOCOL, 2);
    put_be(b + 6, flags, 2);
    memcpy(b + 8, dev, 16);
    put_be(b + 24, from, 8);
    put_be(b + 32, to, 8);
    put_be(b + 40, ops, 4);
    put_be(b + 44, (uint32_t)body_len, 4);
    put_be(b + 48, raw_len, 4);
    cry_hash(b + 52, body, body_len);
    put_be(b + 84, (uint64_t)time(NULL), 8);
    if (cry_sign(sk, b, BUNDLE_SIGNED_BYTES, b + BUNDLE_SIGNED_BYTES) != CMC_OK)
        die("sign");
    memcpy(b + BUNDLE_HEADER_BYTES, body, body_len);
    *out = b;
    *len = BUNDLE_HEADER_BYTES + body_len;
}

/* A correct bundle from `from` to `to` with puts of plans [first, first + n). */
static void build_puts(uint64_t from, uint64_t to, long first, long n, const uint8_t dev[16],
                       const struct cry_secret *sk, uint8_t **out, size_t *len)
{
    struct bundle_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.device_id, dev, 16);
    h.from_cursor = from;
    h.to_cursor = to;
    h.flags = from == 0 ? BUNDLE_FLAG_SNAPSHOT : 0;
    h.hub_time = (int64_t)time(NULL);
    struct bundle_op *ops = n > 0 ? cmc_calloc((size_t)n, sizeof *ops) : NULL;
    for (long i = 0; i < n; i++) {
        bundle_op_init(&ops[i]);
        ops[i].kind = BUNDLE_OP_PUT;
        snprintf(ops[i].plan_id, sizeof ops[i].plan_id, "%s", plans[first + i].plan_id);
        ops[i].seq = (uint64_t)(first + i + 1);
        if (plan_copy(&ops[i].plan, &plans[first + i]) != CMC_OK)
            die("plan copy");
    }
    if (bundle_build(&h, ops, (size_t)n, sk, out, len) != CMC_OK)
        die("bundle_build");
    for (long i = 0; i < n; i++)
        bundle_op_clear(&ops[i]);
    cmc_free(ops);
}

static void make_plans(void)
{
    plans = cmc_calloc((size_t)n_plans + 1, sizeof *plans);
    long got = 0;
    for (long i = 0; got < n_plans + 1; i++) {
        int status = 0, extra = 0;
        plan_init(&plans[got]);
        if (hub_seed_plan(991, i, &plans[got], &status, &extra) != CMC_OK)
            die("seed plan");
        if (status != PLAN_STATUS_PUBLISHED) {
            plan_free(&plans[got]);
            continue;
        }
        got++;
    }
    /* the extra plan, as a draft, for the "draft" attack */
    struct plan *d = &plans[n_plans];
    d->status = PLAN_STATUS_DRAFT;
    cmc_free(d->approved_by);
    cmc_free(d->approved_at);
    d->approved_by = d->approved_at = NULL;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static void respond(int fd, int status, const char *ctype, const void *body, size_t len, const char *extra)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status, ctype,
                     len, extra != NULL ? extra : "");
    if (fault_write_all(fd, head, (size_t)n) == 0 && len > 0)
        fault_write_all(fd, body, len);
}

static void respond_error(int fd, int status, const char *extra)
{
    static const char body[] = "{\"error\":\"busy\",\"message\":\"hostile hub says wait\"}";
    respond(fd, status, "application/json", body, sizeof body - 1, extra);
}

static void read_mode(const char *path, char word[32], long *arg)
{
    char line[128] = "";
    strcpy(word, "good");
    *arg = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof line, f) != NULL)
        sscanf(line, "%31s %ld", word, arg);
    fclose(f);
}

static void answer_enroll(int fd)
{
    struct wire_enroll_ans a;
    uint8_t *body = NULL;
    size_t len = 0;
    memset(&a, 0, sizeof a);
    snprintf(a.device_id, sizeof a.device_id, "%s", device_id_text);
    memcpy(a.hub_pk, hub_pk, sizeof a.hub_pk);
    snprintf(a.scope, sizeof a.scope, "all");
    snprintf(a.role, sizeof a.role, "urgent_care");
    a.lease_days = 14;
    a.hub_time = (int64_t)time(NULL);
    if (wire_enroll_ans_encode(&a, &body, &len) != CMC_OK)
        die("enroll answer");
    respond(fd, 200, "application/msgpack", body, len, NULL);
    cmc_free(body);
}

static void answer_mp_ok(int fd, const char *key, int64_t value)
{
    struct mp_writer w;
    uint8_t *body = NULL;
    size_t len = 0;
    mp_writer_init(&w);
    mp_write_map(&w, 1);
    mp_write_cstr(&w, key);
    if (strcmp(key, "ok") == 0)
        mp_write_bool(&w, 1);
    else
        mp_write_int(&w, value);
    if (mp_writer_finish(&w, &body, &len) != CMC_OK)
        die("answer");
    respond(fd, 200, "application/msgpack", body, len, NULL);
    cmc_free(body);
}

/* Returns 1 when the connection must be closed after this answer. */
static int answer_pull(int fd, uint64_t cursor, const char *mode_file)
{
    static char last_mode[64] = "";
    static long retries_served;
    char mode[32], full[64];
    long arg;
    uint8_t *b = NULL, *body = NULL;
    size_t len = 0;
    read_mode(mode_file, mode, &arg);
    snprintf(full, sizeof full, "%s %ld", mode, arg);
    if (strcmp(full, last_mode) != 0) {
        snprintf(last_mode, sizeof last_mode, "%s", full);
        retries_served = 0;
    }
    fprintf(stderr, "hostile_hub: pull cursor=%llu mode=%s\n", (unsigned long long)cursor, full);
    uint64_t to = cursor == 0 ? SNAPSHOT_TO : cursor;
    long first = 0, n = cursor == 0 ? n_plans : 0;
    int close_after = 0;
    if (strcmp(mode, "retry") == 0 && retries_served < arg) {
        retries_served++;
        respond_error(fd, 503, "Retry-After: 1\r\n");
        return 0;
    }
    if (strcmp(mode, "e500") == 0) {
        respond_error(fd, 500, "Retry-After: 1\r\n");
        return 0;
    }
    if (strcmp(mode, "forged") == 0)
        build_puts(cursor, to, first, n, device_uuid, forger_sk, &b, &len);
    else if (strcmp(mode, "replay") == 0)
        build_puts(0, SNAPSHOT_TO, 0, n_plans, device_uuid, hub_sk, &b, &len);
    else if (strcmp(mode, "older") == 0)
        build_puts(cursor, cursor > 0 ? cursor - 1 : 0, 0, cursor > 0 ? 1 : 0, device_uuid, hub_sk, &b, &len);
    else if (strcmp(mode, "cursor") == 0)
        build_puts(cursor + 7, cursor + 8, 0, 1, device_uuid, hub_sk, &b, &len);
    else if (strcmp(mode, "wrongdev") == 0) {
        uint8_t other[16];
        memcpy(other, device_uuid, 16);
        other[15] ^= 0xff;
        build_puts(cursor, cursor + 1, 0, 1, other, hub_sk, &b, &len);
    } else if (strcmp(mode, "draft") == 0)
        build_puts(cursor, cursor + 1, n_plans, 1, device_uuid, hub_sk, &b, &len);
    else if (strcmp(mode, "toomany") == 0) {
        static const uint8_t tiny[] = { 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 };
        frame_raw(0, device_uuid, cursor, cursor + 1, BUNDLE_MAX_OPS + 1, 1024 * 1024, tiny, sizeof tiny, hub_sk, &b,
                  &len);
    } else if (strcmp(mode, "bigbody") == 0) {
        len = 10u * 1024 * 1024;
        b = cmc_calloc(1, len);
    } else if (strcmp(mode, "bomb") == 0 || strcmp(mode, "badzlib") == 0) {
        size_t raw = 64u * 1024 * 1024;
        uLongf clen = compressBound((uLong)raw);
        uint8_t *zeros = cmc_calloc(1, raw);
        body = cmc_malloc(clen);
        if (zeros == NULL || body == NULL || compress2(body, &clen, zeros, (uLong)raw, 9) != Z_OK)
            die("bomb");
        cmc_free(zeros);
        if (strcmp(mode, "badzlib") == 0)
            memset(body, 0xa5, clen);
        frame_raw(0, device_uuid, cursor, cursor + 1, 1, 1024, body, clen, hub_sk, &b, &len);
    } else if (strcmp(mode, "truncate") == 0 || strcmp(mode, "stall") == 0)
        /* a body worth cutting: one put (the first plan again, harmless if it arrived) */
        build_puts(cursor, cursor + 1, 0, 1, device_uuid, hub_sk, &b, &len);
    else
        build_puts(cursor, to, first, n, device_uuid, hub_sk, &b, &len);

    if (strcmp(mode, "truncate") == 0) {
        const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.cmc.bundle\r\nConnection: close\r\n\r\n";
        if (fault_write_all(fd, head, sizeof head - 1) == 0)
            fault_write_all(fd, b, len > 200 ? len - 100 : len / 2);
        close_after = 1;
    } else if (strcmp(mode, "stall") == 0) {
        char head[256];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.cmc.bundle\r\nContent-Length: %zu\r\n\r\n",
                          len);
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (fault_write_all(fd, head, (size_t)hn) == 0)
                fault_write_all(fd, b, len / 2);
            for (;;)
                pause();
        }
        close_after = 1;
    } else {
        respond(fd, 200, "application/vnd.cmc.bundle", b, len, NULL);
    }
    cmc_free(b);
    cmc_free(body);
    return close_after;
}

static char *find_crlf2(char *buf, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    return NULL;
}

/* Serves one connection (keep-alive) until the client closes it. */
static void serve_conn(int fd, const char *mode_file)
{
    char buf[65536];
    size_t have = 0;
    for (;;) {
        char *end = NULL;
        while ((end = find_crlf2(buf, have)) == NULL) {
            if (have == sizeof buf)
                return;
            ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
            if (n <= 0)
                return;
            have += (size_t)n;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        size_t body_len = 0;
        char *cl = NULL;
        for (char *p = buf; p < end; p++)
            if (strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
                cl = p + 17;
                break;
            }
        if (cl != NULL)
            body_len = strtoul(cl, NULL, 10);
        /* skip the body: it is read and thrown away (at most 1 MiB) */
        size_t need = head_len + body_len;
        if (body_len > 1024 * 1024)
            return;
        char *all = cmc_malloc(need + 1);
        memcpy(all, buf, have < need ? have : need);
        size_t got = have < need ? have : need;
        while (got < need) {
            ssize_t n = recv(fd, all + got, need - got, 0);
            if (n <= 0) {
                cmc_free(all);
                return;
            }
            got += (size_t)n;
        }
        size_t rest = have > need ? have - need : 0;
        memmove(buf, buf + need, rest);
        have = rest;
        all[need] = '\0';
        int close_after = 0;
        if (strncmp(all, "POST /v1/enroll ", 16) == 0)
            answer_enroll(fd);
        else if (strncmp(all, "GET /v1/pull?cursor=", 20) == 0)
            close_after = answer_pull(fd, strtoull(all + 20, NULL, 10), mode_file);
        else if (strncmp(all, "POST /v1/ack ", 13) == 0)
            answer_mp_ok(fd, "ok", 0);
        else if (strncmp(all, "POST /v1/audit ", 15) == 0)
            answer_mp_ok(fd, "acked_seq", 0);
        else
            respond_error(fd, 404, NULL);
        cmc_free(all);
        if (close_after)
            return;
    }
}

int main(int argc, char **argv)
{
    const char *mode_file = NULL, *port_file = NULL;
    const struct fault_arg args[] = {
        { "--mode-file", &mode_file, NULL },
        { "--port-file", &port_file, NULL },
        { "--plans", NULL, &n_plans },
    };
    fault_args(argc, argv, args, sizeof args / sizeof args[0]);
    if (mode_file == NULL || port_file == NULL || n_plans < 1 || n_plans > 1000) {
        fprintf(stderr, "usage: hostile_hub --mode-file FILE --port-file FILE [--plans N]\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN);
    uint8_t other_pk[CRY_SIGN_PK_BYTES];
    if (cry_init() != CMC_OK || cry_sign_keypair(hub_pk, &hub_sk) != CMC_OK || cry_sign_keypair(other_pk, &forger_sk) != CMC_OK)
        die("keys");
    make_plans();
    int ls = fault_listen("hostile_hub", 0, 16, port_file);
    if (ls < 0)
        return 1;
    for (;;) {
        int c = fault_accept(ls);
        if (c < 0)
            return 1;
        serve_conn(c, mode_file);
        close(c);
    }
}
