/*
 * seal_bytes - focused benchmark: what plan seals cost in bytes down. On a seeded hub it
 * enrolls two scope-"all" devices, pulls the whole snapshot for each (one without seals, as
 * an agent that predates them asks, one with `seal=1`), then changes CHANGES published plans
 * and pulls the incremental pages for both. Prints one JSON object; the hub directory is
 * changed (devices and plan versions are added), so run it on a scratch copy.
 *
 *   seal_bytes HUBDIR [CHANGES]
 */
#include "bench/bench_hub.h"
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/bundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_GP "seal-bench-gp"

struct dev {
    char id[PLAN_ID_LEN + 1];
    uint64_t cursor;
};

static int enroll(hub *h, const char *name, struct dev *d)
{
    struct cry_secret *sk = NULL;
    int rc = bench_enroll(h, name, "all", d->id, &sk);
    cry_secret_free(sk);
    d->cursor = 0;
    return rc;
}

/* Pulls pages until the hub has no more; adds their bytes, pages and wall time. */
static int pull_all(hub *h, struct dev *d, int seal, uint64_t *bytes, uint64_t *pages,
                    double *ms)
{
    int rc = CMC_OK;
    uint8_t pk[CRY_SIGN_PK_BYTES];
    uint64_t t0 = plat_mono_now_ns();
    hub_public_key(h, pk);
    for (int more = 1; rc == CMC_OK && more;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        struct bundle_header hdr;
        rc = hub_pull_sealed(h, d->id, d->cursor, d->cursor, 0, PLAN_EDITION_CURRENT, 0, seal, &buf,
                             &len);
        if (rc == CMC_OK)
            rc = bundle_verify(buf, len, pk, &hdr);
        if (rc == CMC_OK) {
            *bytes += len;
            (*pages)++;
            d->cursor = hdr.to_cursor;
            more = (hdr.flags & BUNDLE_FLAG_MORE) != 0;
        }
        cmc_free(buf);
    }
    *ms = (double)(plat_mono_now_ns() - t0) / 1e6;
    return rc;
}

static int change(hub *h, long count)
{
    struct bench_list p = { .width = PLAN_ID_LEN + 1 };
    int rc = bench_ensure_user(h, SEAL_GP, "gp");
    if (rc == CMC_OK)
        rc = hub_plan_list(h, 0, bench_collect_current, &p);
    for (long i = 0; rc == CMC_OK && i < count && (size_t)i < p.n; i++) {
        static const char doc[] = "{\"set\": {\"prognosis\": \"weeks (reviewed)\"}}";
        size_t k = (size_t)i * (p.n / (size_t)count);
        rc = bench_plan_change(h, SEAL_GP, bench_list_at(&p, k), doc, sizeof doc - 1);
    }
    bench_list_free(&p);
    return rc;
}

int main(int argc, char **argv)
{
    hub *h = NULL;
    struct dev off, on;
    uint64_t b[4] = { 0 }, pg[4] = { 0 };
    double ms[4] = { 0 };
    long changes = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
    if (argc < 2 || changes < 1) {
        fprintf(stderr, "usage: seal_bytes HUBDIR [CHANGES]\n");
        return 2;
    }
    plat_log_set_level(PLAT_LOG_ERROR);
    int rc = cry_init();
    if (rc == CMC_OK)
        rc = hub_open(argv[1], &h);
    if (rc == CMC_OK)
        rc = enroll(h, "seal-bench-off", &off);
    if (rc == CMC_OK)
        rc = enroll(h, "seal-bench-on", &on);
    if (rc == CMC_OK)
        rc = pull_all(h, &off, 0, &b[0], &pg[0], &ms[0]);
    if (rc == CMC_OK)
        rc = pull_all(h, &on, 1, &b[1], &pg[1], &ms[1]);
    if (rc == CMC_OK)
        rc = change(h, changes);
    if (rc == CMC_OK)
        rc = pull_all(h, &off, 0, &b[2], &pg[2], &ms[2]);
    if (rc == CMC_OK)
        rc = pull_all(h, &on, 1, &b[3], &pg[3], &ms[3]);
    if (rc != CMC_OK) {
        fprintf(stderr, "seal_bytes: %s\n", cmc_errmsg());
        hub_close(h);
        return 1;
    }
    printf("{\"snapshot\": {\"bytes_unsealed\": %llu, \"bytes_sealed\": %llu, \"pages\": %llu,"
           " \"increase_pct\": %.3f, \"hub_ms_unsealed\": %.1f, \"hub_ms_sealed\": %.1f},\n"
           " \"changes_%ld\": {\"bytes_unsealed\": %llu, \"bytes_sealed\": %llu, \"pages\": %llu,"
           " \"increase_pct\": %.3f}}\n",
           (unsigned long long)b[0], (unsigned long long)b[1], (unsigned long long)pg[1],
           100.0 * ((double)b[1] - (double)b[0]) / (double)b[0], ms[0], ms[1], changes,
           (unsigned long long)b[2], (unsigned long long)b[3], (unsigned long long)pg[3],
           100.0 * ((double)b[3] - (double)b[2]) / (double)b[2]);
    hub_close(h);
    return 0;
}
