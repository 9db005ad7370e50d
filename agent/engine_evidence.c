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

/* The plans are read from the replica first, then sent a page at a time: nothing is held
 * open on the replica while the network is slow. */
int engine_evidence_report(store *s, http_client *client, uint64_t head, size_t *sent)
{
    struct store_evidence *held = NULL;
    struct wire_evidence *page = NULL;
    size_t n_held = 0;
    int rc = store_evidence_list(s, (int64_t)head, &held, &n_held);
    *sent = 0;
    if (rc == CMC_OK && n_held > 0 && (page = cmc_calloc(WIRE_EVIDENCE_MAX, sizeof *page)) == NULL)
        rc = cmc_fail(CMC_ERR_NOMEM, "evidence");
    while (rc == CMC_OK && *sent < n_held) {
        size_t n = n_held - *sent < WIRE_EVIDENCE_MAX ? n_held - *sent : WIRE_EVIDENCE_MAX;
        struct http_response resp;
        uint8_t *body = NULL;
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            const struct store_evidence *h = &held[*sent + i];
            snprintf(page[i].plan_id, sizeof page[i].plan_id, "%s", h->plan_id);
            page[i].version = h->version;
            page[i].seq = (uint64_t)h->change_seq;
        }
        http_response_init(&resp);
        if ((rc = wire_evidence_encode(page, n, &body, &len)) == CMC_OK)
            rc = http_request(client, "POST", "/v1/evidence", NULL, body, len, 0, &resp);
        cmc_free(body);
        http_response_free(&resp);
        if (rc == CMC_OK)
            *sent += n;
    }
    cmc_free(page);
    cmc_free(held);
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
