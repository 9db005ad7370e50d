/*
 * engine_evidence.c - the plans this device holds from a restored hub's lost timeline, told
 * to the hub before the re-sync (agent/engine_evidence.h).
 */
#include "agent/engine_evidence.h"
#include "agent/store_evidence.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REWOUND_HEAD "its change log ends at "

int engine_rewound_head(const char *hub_message, uint64_t *head)
{
    const char *at = hub_message != NULL ? strstr(hub_message, REWOUND_HEAD) : NULL;
    char *end = NULL;
    *head = 0;
    if (at == NULL)
        return 0;
    at += strlen(REWOUND_HEAD);
    if (*at < '0' || *at > '9')
        return 0;
    unsigned long long v = strtoull(at, &end, 10);
    if (end == at || (*end != ',' && *end != ')'))
        return 0;
    *head = (uint64_t)v;
    return 1;
}

/* The plans to report, read from the replica before anything goes on the network. */
struct evidence_list {
    struct wire_evidence *v;
    size_t n, cap;
};

static int evidence_add(const char *plan_id, int64_t version, int64_t change_seq, void *ctx)
{
    struct evidence_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct wire_evidence *v = cmc_realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return cmc_fail(CMC_ERR_NOMEM, "evidence");
        l->v = v;
        l->cap = cap;
    }
    struct wire_evidence *e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->plan_id, sizeof e->plan_id, "%s", plan_id != NULL ? plan_id : "");
    e->version = version;
    e->seq = (uint64_t)change_seq;
    return CMC_OK;
}

int engine_evidence_report(store *s, http_client *client, uint64_t head, size_t *sent)
{
    struct evidence_list l = { 0 };
    int rc = store_evidence_each(s, (int64_t)head, evidence_add, &l);
    *sent = 0;
    for (size_t at = 0; rc == CMC_OK && at < l.n;) {
        size_t n = l.n - at < WIRE_EVIDENCE_MAX ? l.n - at : WIRE_EVIDENCE_MAX;
        struct http_response resp;
        uint8_t *body = NULL;
        size_t len = 0;
        http_response_init(&resp);
        if ((rc = wire_evidence_encode(l.v + at, n, &body, &len)) == CMC_OK)
            rc = http_request(client, "POST", "/v1/evidence", NULL, body, len, 0, &resp);
        cmc_free(body);
        http_response_free(&resp);
        if (rc == CMC_OK) {
            at += n;
            *sent = at;
        }
    }
    cmc_free(l.v);
    return rc;
}

void engine_evidence_send(store *s, http_client *client, const uint64_t *head)
{
    size_t sent = 0;
    int rc;
    if (head == NULL) {
        plat_log(PLAT_LOG_WARN, "sync: the hub did not say where its restored change log ends;"
                 " the plans held from after it are not reported");
        return;
    }
    rc = engine_evidence_report(s, client, *head, &sent);
    if (rc != CMC_OK)
        plat_log(PLAT_LOG_WARN, "sync: could not tell the hub which plans this device holds from"
                 " after its backup (%zu told): %s", sent, cmc_errmsg());
    else if (sent > 0)
        plat_log(PLAT_LOG_WARN, "sync: told the hub this device holds %zu plans from after its"
                 " backup (the operator sees them in `cmc-hub restore report`)", sent);
    cmc_err_clear();
}
