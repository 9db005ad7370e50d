/*
 * bench_hub.h - what the benchmark drivers do to a hub store directly: a user made sure of, a
 * list of plan ids or NHS numbers collected from hub_plan_list, one plan changed as a clinician
 * would (edit, submit, approve). Header-only, like bench_util.h: each driver is its own program.
 *
 * A bench_list owns its strings (cmc_realloc); bench_list_free releases them. Errors are cmc
 * codes with the message set, as everywhere else.
 */
#ifndef CMC_BENCH_HUB_H
#define CMC_BENCH_HUB_H

#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/http.h"
#include "sync/plan.h"

#include <string.h>

/* n fixed-width, NUL-terminated strings of `width` bytes each (width includes the NUL). */
struct bench_list {
    char *v;
    size_t n, cap, width;
};

static inline char *bench_list_at(const struct bench_list *l, size_t i)
{
    return l->v + i * l->width;
}

static inline int bench_list_add(struct bench_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        void *grown = cmc_realloc(l->v, cap * l->width);
        if (grown == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "benchmark list");
        l->v = grown;
        l->cap = cap;
    }
    memcpy(bench_list_at(l, l->n++), s, l->width);
    return 0;
}

static inline void bench_list_free(struct bench_list *l)
{
    cmc_free(l->v);
    memset(l, 0, sizeof *l);
}

/* hub_plan_list callback: the ids of plans whose current version is the published one (a
 * change to them publishes a new version at once). ctx: a bench_list of PLAN_ID_LEN + 1. */
static inline int bench_collect_current(const struct hub_plan_info *info, void *ctx)
{
    if (info->published_version <= 0 || info->consent_withdrawn ||
        info->version != info->published_version)
        return 0;
    return bench_list_add(ctx, info->plan_id);
}

/* hub_plan_list callback: the NHS numbers a scope-"all" device holds (published, consent not
 * withdrawn). ctx: a bench_list of PLAN_NHS_LEN + 1. */
static inline int bench_collect_nhs(const struct hub_plan_info *info, void *ctx)
{
    if (info->published_version <= 0 || info->consent_withdrawn)
        return 0;
    return bench_list_add(ctx, info->nhs_number);
}

/* The hub user `name` with `role`, added when it is not there yet. */
static inline int bench_ensure_user(hub *h, const char *name, const char *role)
{
    int have = 0;
    int rc = hub_user_role(h, name, &have);
    if (rc == CMC_ERR_NOT_FOUND) {
        cmc_err_clear();
        rc = hub_user_add(h, name, role);
    }
    return rc;
}

/* One new published version of `plan_id` by the GP `gp`: the edit `doc` (a change document),
 * submitted and approved. */
static inline int bench_plan_change(hub *h, const char *gp, const char *plan_id, const char *doc,
                                    size_t len)
{
    int64_t version = 0;
    int rc = hub_plan_edit(h, gp, plan_id, doc, len, &version);
    if (rc == CMC_OK)
        rc = hub_plan_submit(h, gp, plan_id);
    if (rc == CMC_OK)
        rc = hub_plan_approve(h, gp, plan_id);
    return rc;
}

/* The urgent-care device `name` with `scope` added and enrolled on the hub directly, as
 * POST /v1/enroll runs it: its id in `id`, its new signing key in *sk (the caller frees it with
 * cry_secret_free, also on failure). */
static inline int bench_enroll(hub *h, const char *name, const char *scope, char id[PLAN_ID_LEN + 1],
                               struct cry_secret **sk)
{
    char code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct hub_enrollment en;
    int rc = hub_device_add(h, name, scope, "urgent_care", id, code);
    if (rc == CMC_OK)
        rc = cry_sign_keypair(pk, sk);
    if (rc == CMC_OK)
        rc = hub_enroll(h, code, pk, name, &en);
    return rc;
}

/* An HTTP client with `opt` that signs its requests as the device `id` with `sk`. Carries an
 * earlier step's failure `rc` through untouched, so a caller can chain it. */
static inline int bench_device_client(int rc, const struct http_options *opt, const char *id,
                                      struct cry_secret *sk, http_client **out)
{
    if (rc == CMC_OK)
        rc = http_client_new(opt, out);
    if (rc == CMC_OK)
        rc = http_client_set_device(*out, id, sk);
    return rc;
}

#endif
