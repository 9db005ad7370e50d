/*
 * engine.c - one sync round (engine_sync): pull, push, purge acknowledgements, the proving
 * pull, then the audit upload; and what every stage needs from the enrollment. The stages
 * live in engine_enroll.c, engine_pull.c (the download/decode pipeline), engine_apply.c,
 * engine_push.c and engine_conflicts.c (engine_int.h).
 */
#include "agent/engine_int.h"

#include "agent/lease.h"
#include "agent/tls_pins.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/wire.h"

#include <stdio.h>
#include <string.h>

void engine_enrollment_free(struct enrollment *e)
{
    cmc_free(e->hub_url);
    cmc_free(e->tls_pin);
    cmc_free(e->ca_file);
    cry_secret_free(e->device_sk);
    memset(e, 0, sizeof *e);
}

static int state_hex(store *s, const char *key, uint8_t *out, size_t len)
{
    char *v = NULL;
    int rc = store_state_get(s, key, &v);
    if (rc == CMC_OK)
        rc = cry_unhex(out, len, v);
    if (v != NULL) {
        cry_memzero(v, strlen(v));
        cmc_free(v);
    }
    return rc;
}

int engine_load_enrollment(store *s, struct enrollment *e)
{
    memset(e, 0, sizeof *e);
    char *id = NULL;
    int rc = store_state_get(s, ST_HUB_URL, &e->hub_url);
    if (rc == CMC_ERR_NOT_FOUND)
        return cmc_fail(CMC_ERR_STATE, "this device is not enrolled: run 'cmc-agent enroll --hub URL --code CODE'");
    if (rc != CMC_OK)
        goto out;
    if ((rc = store_state_get(s, ST_DEVICE_ID, &id)) != CMC_OK)
        goto out;
    snprintf(e->device_id, sizeof e->device_id, "%s", id);
    if ((rc = plan_uuid_bytes(e->device_id, e->device_uuid)) != CMC_OK)
        goto out;
    if ((rc = cry_secret_new(CRY_SIGN_SK_BYTES, &e->device_sk)) != CMC_OK)
        goto out;
    if ((rc = state_hex(s, ST_DEVICE_SK, e->device_sk->buf, CRY_SIGN_SK_BYTES)) != CMC_OK)
        goto out;
    if ((rc = state_hex(s, ST_HUB_PK, e->hub_pk, CRY_SIGN_PK_BYTES)) != CMC_OK)
        goto out;
    if (store_state_get(s, ST_TLS_PIN, &e->tls_pin) != CMC_OK)
        e->tls_pin = NULL;
    if (store_state_get(s, ST_CA_FILE, &e->ca_file) != CMC_OK)
        e->ca_file = NULL;
out:
    cmc_free(id);
    if (rc != CMC_OK) {
        if (rc == CMC_ERR_INVALID || rc == CMC_ERR_NOT_FOUND)
            rc = cmc_fail(CMC_ERR_TAMPERED, "the enrollment kept in the replica is damaged");
        engine_enrollment_free(e);
    }
    return rc;
}

static int client_for(const struct enrollment *e, const struct engine_config *cfg, http_client **out)
{
    struct http_options opt = {
        .base_url = e->hub_url,
        .ca_file = e->ca_file != NULL && e->ca_file[0] != '\0' ? e->ca_file : NULL,
        .pinned_pubkey = e->tls_pin != NULL && e->tls_pin[0] != '\0' ? e->tls_pin : NULL,
        .max_attempts = cfg->max_attempts,
        .user_agent = "cmc-agent",
    };
    int rc = http_client_new(&opt, out);
    if (rc == CMC_OK && (rc = http_client_set_device(*out, e->device_id, e->device_sk)) != CMC_OK) {
        http_client_free(*out);
        *out = NULL;
    }
    return rc;
}

void engine_add_stats(struct engine_report *r, http_client *c)
{
    struct http_stats st;
    http_client_stats(c, &st);
    r->bytes_received = st.bytes_received;
    r->bytes_sent = st.bytes_sent;
    r->requests = st.requests;
    r->connections = st.connections;
}

/* After a verified wipe order: the key slots are already destroyed (crypto-erase); now the
 * replica's files go, then the hub hears that the order was carried out. */
static int finish_wipe(store **sp, const struct engine_config *cfg, http_client *client)
{
    static const char *const suffixes[] = { "", "-wal", "-shm" };
    store_close(*sp);
    *sp = NULL;
    for (size_t i = 0; i < 3; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", cfg->replica_path, suffixes[i]);
        plat_shred(p);
        /* the clinical file beside it (pending edits, merges) goes the same way */
        if (plat_path_join(p, sizeof p, cfg->dir, i == 0 ? "clinical.db" : i == 1 ? "clinical.db-wal" : "clinical.db-shm") == CMC_OK)
            plat_shred(p);
    }
    struct wire_ack ack = { .wipe = 1 };
    uint8_t *body = NULL;
    size_t len = 0;
    struct http_response resp;
    http_response_init(&resp);
    int rc = wire_ack_encode(&ack, &body, &len);
    if (rc == CMC_OK)
        rc = http_request(client, "POST", "/v1/ack", NULL, body, len, 0, &resp);
    if (rc != CMC_OK)
        plat_log(PLAT_LOG_WARN, "wipe: done, but the hub could not be told (%s)", cmc_errmsg());
    cmc_free(body);
    http_response_free(&resp);
    char ca[4300];
    if (plat_path_join(ca, sizeof ca, cfg->dir, "hub-ca.pem") == CMC_OK)
        plat_remove(ca);
    return cmc_fail(CMC_ERR_WIPED, "the hub ordered this device wiped: its keys and plans are destroyed");
}

int engine_sync(store **sp, const struct engine_config *cfg, engine_progress_fn progress, void *ctx,
                struct engine_report *rep)
{
    store *s = *sp;
    memset(rep, 0, sizeof *rep);
    struct enrollment e;
    http_client *client = NULL;
    int rc = engine_load_enrollment(s, &e);
    if (rc != CMC_OK)
        return rc;
    if ((rc = client_for(&e, cfg, &client)) != CMC_OK)
        goto out;
    if ((rc = engine_seal_repair(s, rep)) != CMC_OK)
        goto out;
    rc = engine_pull_pages(s, cfg, &e, client, 0, progress, ctx, rep);
    if (rc == CMC_ERR_TLS && e.tls_pin != NULL && (rc = tls_pins_recover(s, e.hub_url, e.ca_file,
                                                                         e.hub_pk, &e.tls_pin)) == CMC_OK) {
        http_client_free(client); /* the hub's key changed and its signing key vouched for it */
        client = NULL;
        if ((rc = client_for(&e, cfg, &client)) == CMC_OK)
            rc = engine_pull_pages(s, cfg, &e, client, 0, progress, ctx, rep);
    }
    if (rc == CMC_ERR_TAMPERED && !rep->wiped) {
        /* a page this session could not check (a change against a draft it cannot open, or a
         * version failing its seal) marks the replica for the repair, which asks for every
         * plan whole: once, in this sync. Anything else keeps its own message. */
        char why[512];
        int wanted = 0;
        snprintf(why, sizeof why, "%s", cmc_errmsg());
        if (engine_repair_wanted(s, &wanted) == CMC_OK && wanted) {
            plat_log(PLAT_LOG_WARN, "sync: %s", why);
            if ((rc = engine_seal_repair(s, rep)) == CMC_OK)
                rc = engine_pull_pages(s, cfg, &e, client, 0, progress, ctx, rep);
        } else {
            rc = cmc_fail(rc, "%s", why);
        }
    }
    if (rep->wiped) {
        rc = finish_wipe(sp, cfg, client);
        goto out;
    }
    if (rc == CMC_OK)
        rc = engine_push_all(s, client, cfg->slots_path, rep);
    if (rc == CMC_OK)
        rc = engine_send_purge_acks(s, client);
    /* One more pull after a sync that changed anything: it proves to the hub that this
     * device committed everything up to its cursor (what lets the hub catch a replica
     * restored from an older copy later), and picks up the drafts our pushes made. */
    if (rc == CMC_OK && !rep->wiped && rep->puts + rep->deltas + rep->purges + rep->pushed > 0) {
        rc = engine_pull_pages(s, cfg, &e, client, 64, NULL, NULL, rep);
        if (rep->wiped) {
            rc = finish_wipe(sp, cfg, client);
            goto out;
        }
    }
    /* The plans are now as fresh as the hub's: that is what the copy's age and the lease
     * measure, whatever happens to the audit upload below. */
    if (rc == CMC_OK)
        rc = store_state_set_int(s, ST_LAST_SYNC, plat_wall_now());
    if (rc == CMC_OK)
        rc = lease_note_sync(s, rep->hub_time);
    if (rc == CMC_OK)
        rc = engine_upload_audit(s, client);
    if (rc == CMC_OK && tls_pins_refresh(s, client, e.hub_pk) != CMC_OK)
        plat_log(PLAT_LOG_WARN, "could not refresh the hub's TLS keys: %s", cmc_errmsg());
    engine_add_stats(rep, client);
out:
    http_client_free(client);
    engine_enrollment_free(&e);
    return rc;
}

