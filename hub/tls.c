/*
 * tls.c - the hub's TLS pin set and its rotation (hub/tls.h).
 */
#include "hub/tls.h"
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SPKI of a private key, else of a certificate. */
static int hub_tls_spki(const gnutls_datum_t *in, gnutls_pubkey_t pub)
{
    gnutls_privkey_t priv = NULL;
    gnutls_x509_crt_t crt = NULL;
    int ok = 0;
    if (gnutls_privkey_init(&priv) >= 0 &&
        gnutls_privkey_import_x509_raw(priv, in, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0 &&
        gnutls_pubkey_import_privkey(pub, priv, 0, 0) >= 0)
        ok = 1;
    gnutls_privkey_deinit(priv);
    if (!ok && gnutls_x509_crt_init(&crt) >= 0 &&
        gnutls_x509_crt_import(crt, in, GNUTLS_X509_FMT_PEM) >= 0 &&
        gnutls_pubkey_import_x509(pub, crt, 0) >= 0)
        ok = 1;
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return ok;
}

int hub_tls_pin_of_pem(const char *pem, size_t len, char out[HUB_TLS_PIN_MAX])
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)pem, (unsigned)len};
    gnutls_datum_t spki = {NULL, 0};
    uint8_t digest[32];
    int rc = CMC_OK;

    out[0] = '\0';
    if (pem == NULL || len == 0 || len > 64 * 1024)
        return cmc_fail(CMC_ERR_USAGE, "TLS key: empty or too large");
    if (gnutls_pubkey_init(&pub) < 0)
        return cmc_fail(CMC_ERR_NOMEM, "TLS key");
    if (!hub_tls_spki(&in, pub) || gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0) {
        rc = cmc_fail(CMC_ERR_USAGE, "TLS key: not a PEM private key or certificate");
        goto out;
    }
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, digest) < 0) {
        rc = cmc_fail(CMC_ERR_CRYPTO, "TLS key: SHA-256 failed");
        goto out;
    }
    memcpy(out, "sha256//", 8);
    sodium_bin2base64(out + 8, HUB_TLS_PIN_MAX - 8, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL);
out:
    gnutls_free(spki.data);
    gnutls_pubkey_deinit(pub);
    return rc;
}

static int hub_meta_text(hub *h, const char *k, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, "SELECT v FROM meta WHERE k = ?1", &st), src;
    out[0] = '\0';
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0 &&
        (size_t)sqlite3_column_bytes(st, 0) < cap) {
        memcpy(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        out[sqlite3_column_bytes(st, 0)] = '\0';
    }
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "meta");
    sqlite3_finalize(st);
    return rc;
}

static int hub_meta_set(hub *h, const char *k, const char *v)
{
    sqlite3_stmt *st = NULL;
    int rc = hub_db_prepare(h, v != NULL ? "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)"
                                         : "DELETE FROM meta WHERE k = ?1",
                            &st), src;
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    if (v != NULL)
        sqlite3_bind_blob(st, 2, v, (int)strlen(v), SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "meta");
    sqlite3_finalize(st);
    return rc;
}

int hub_tls_announce(hub *h, const char *next_pin)
{
    char at[24];
    int rc;
    snprintf(at, sizeof at, "%lld", (long long)plat_wall_now());
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    if ((rc = hub_meta_set(h, "tls_next_pin", next_pin)) == CMC_OK &&
        (rc = hub_meta_set(h, "tls_next_at", at)) == CMC_OK)
        rc = hub_tx_commit(h);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    else
        plat_log(PLAT_LOG_INFO, "TLS key rotation: next key announced (%s)", next_pin);
    return rc;
}

int hub_tls_started(hub *h, const char *current_pin, int *completed)
{
    char next[HUB_TLS_PIN_MAX];
    int rc;
    *completed = 0;
    if ((rc = hub_meta_text(h, "tls_next_pin", next, sizeof next)) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    rc = hub_meta_set(h, "tls_current_pin", current_pin);
    if (rc == CMC_OK && strcmp(next, current_pin) == 0) {
        *completed = 1;
        if ((rc = hub_meta_set(h, "tls_next_pin", NULL)) == CMC_OK)
            rc = hub_meta_set(h, "tls_next_at", NULL);
    }
    if (rc == CMC_OK)
        rc = hub_tx_commit(h);
    else
        hub_tx_rollback(h);
    return rc;
}

int hub_tls_state(hub *h, struct hub_tls_state *out,
                  int (*cb)(const char *name, const char *id, void *), void *ctx)
{
    char at[24];
    sqlite3_stmt *st = NULL;
    int rc, src;
    memset(out, 0, sizeof *out);
    if ((rc = hub_meta_text(h, "tls_current_pin", out->current_pin, sizeof out->current_pin)) !=
            CMC_OK ||
        (rc = hub_meta_text(h, "tls_next_pin", out->next_pin, sizeof out->next_pin)) != CMC_OK ||
        (rc = hub_meta_text(h, "tls_next_at", at, sizeof at)) != CMC_OK)
        return rc;
    out->next_at = at[0] != '\0' ? strtoll(at, NULL, 10) : 0;
    if ((rc = hub_db_prepare(h, "SELECT d.name, d.device_id, COALESCE((SELECT CAST(m.v AS"
                                " INTEGER) FROM meta m WHERE m.k = 'tls_seen:' || d.device_id),"
                                " 0) FROM devices d WHERE d.state = 'active' ORDER BY d.name",
                             &st)) != CMC_OK)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        out->active++;
        if (out->next_pin[0] != '\0' && sqlite3_column_int64(st, 2) <= out->next_at) {
            out->behind++;
            if (cb != NULL && (rc = cb(hub_col_text(st, 0), hub_col_text(st, 1), ctx)) != 0)
                goto out;
        }
    }
    rc = src == SQLITE_DONE ? CMC_OK : hub_db_fail(h, src, "devices");
out:
    sqlite3_finalize(st);
    return rc;
}

int hub_tls_note_fetch(hub *h, const char *device_id)
{
    char k[16 + PLAN_ID_LEN], at[24];
    snprintf(k, sizeof k, "tls_seen:%s", device_id);
    snprintf(at, sizeof at, "%lld", (long long)plat_wall_now());
    return hub_meta_set(h, k, at);
}

int hub_tls_pins_doc(hub *h, char **out, size_t *len)
{
    struct hub_tls_state ts;
    char pins[2 * HUB_TLS_PIN_MAX + 2], msg[sizeof pins + 64];
    char sig_hex[2 * CRY_SIG_BYTES + 1];
    uint8_t sig[CRY_SIG_BYTES];
    int64_t at = plat_wall_now();
    int rc, n;

    *out = NULL;
    *len = 0;
    if ((rc = hub_tls_state(h, &ts, NULL, NULL)) != CMC_OK)
        return rc;
    if (ts.current_pin[0] == '\0')
        return cmc_fail(CMC_ERR_NOT_FOUND, "no TLS key in use");
    if (ts.next_pin[0] != '\0' && strcmp(ts.next_pin, ts.current_pin) != 0)
        snprintf(pins, sizeof pins, "%s;%s", ts.current_pin, ts.next_pin);
    else
        snprintf(pins, sizeof pins, "%s", ts.current_pin);
    n = snprintf(msg, sizeof msg, "%s%s\n%lld", HUB_TLS_PINS_DOMAIN, pins, (long long)at);
    if ((rc = cry_sign(h->sk, msg, (size_t)n, sig)) != CMC_OK)
        return rc;
    cry_hex(sig_hex, sig, sizeof sig);
    if ((*out = cmc_malloc(sizeof pins + sizeof sig_hex + 64)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "TLS pins");
    n = snprintf(*out, sizeof pins + sizeof sig_hex + 64, "{\"pins\":\"%s\",\"at\":%lld,\"sig\":\"%s\"}",
                 pins, (long long)at, sig_hex);
    *len = (size_t)n;
    return CMC_OK;
}
