/*
 * tpm.c - a key slot's secret sealed to a TPM 2.0 through tpm2-tss's ESYS API (contract in
 * tpm.h, the slot's use of it in docs/STORAGE.md "TPM-bound slots").
 *
 * Each call opens the TCTI, recreates the owner hierarchy's storage primary key from its
 * template (same TPM, same owner seed: same key), does its one job and flushes every
 * transient object, so nothing is left loaded in the TPM between unlocks.
 *
 * The commands that carry secrets (Create with the sealed data and auth value, Unseal with
 * its answer) run in a salted HMAC session bound to the primary key with AES-128-CFB
 * parameter encryption, so the auth value never crosses the bus in clear (an HMAC proves
 * it) and neither does the secret; someone who only listens on a discrete TPM's bus learns
 * neither.
 */
#include "crypto/tpm.h"

#include "crypto/cry.h"
#include "platform/err.h"

#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

struct tpm_conn {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    ESYS_TR object;
    ESYS_TR session;
};

/* A TPM response code without its layer and the handle/session/parameter number of a
 * format-one code, so it compares with the TPM2_RC_ constants. */
static TSS2_RC rc_base(TSS2_RC rc)
{
    TSS2_RC base = rc & 0xFFFFu;
    if (base & TPM2_RC_FMT1)
        base &= TPM2_RC_FMT1 | 0x3Fu;
    return base;
}

static const char *tcti_name(void)
{
    const char *t = getenv("CMC_TPM_TCTI");
    return t != NULL && t[0] != '\0' ? t : CRY_TPM_TCTI_DEFAULT;
}

static void conn_close(struct tpm_conn *c)
{
    if (c->esys != NULL) {
        if (c->session != ESYS_TR_NONE)
            Esys_FlushContext(c->esys, c->session);
        if (c->object != ESYS_TR_NONE)
            Esys_FlushContext(c->esys, c->object);
        if (c->primary != ESYS_TR_NONE)
            Esys_FlushContext(c->esys, c->primary);
        Esys_Finalize(&c->esys);
    }
    if (c->tcti != NULL)
        Tss2_TctiLdr_Finalize(&c->tcti);
    c->object = c->primary = c->session = ESYS_TR_NONE;
}

/* The storage primary key's template: the usual ECC P-256 SRK (restricted decryption key,
 * AES-128-CFB for its children), so the same TPM always derives the same key. */
static void primary_template(TPM2B_PUBLIC *pub)
{
    memset(pub, 0, sizeof *pub);
    TPMT_PUBLIC *t = &pub->publicArea;
    t->type = TPM2_ALG_ECC;
    t->nameAlg = TPM2_ALG_SHA256;
    t->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                          TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                          TPMA_OBJECT_NODA;
    t->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    t->parameters.eccDetail.symmetric.keyBits.aes = 128;
    t->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    t->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    t->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* The storage primary key's name (ESYS checks it against the public key the TPM returned). */
static int primary_name(struct tpm_conn *c, uint8_t name[CRY_TPM_NAME_BYTES])
{
    TPM2B_NAME *n = NULL;
    int rc = CMC_OK;
    if (Esys_TR_GetName(c->esys, c->primary, &n) != TSS2_RC_SUCCESS || n->size != CRY_TPM_NAME_BYTES)
        rc = cmc_fail(CMC_ERR_IO, "the TPM's storage key has no usable name");
    else
        memcpy(name, n->name, CRY_TPM_NAME_BYTES);
    Esys_Free(n);
    return rc;
}

/* Opens the TPM and makes its storage primary key. */
static int conn_open(struct tpm_conn *c)
{
    memset(c, 0, sizeof *c);
    c->primary = c->object = c->session = ESYS_TR_NONE;
    /* tpm2-tss logs every TPM error response (a wrong PIN among them) to stderr unless told
     * otherwise; the messages here say what matters once. */
    if (getenv("TSS2_LOG") == NULL)
        setenv("TSS2_LOG", "all+NONE", 0);
    const char *name = tcti_name();
    if (Tss2_TctiLdr_Initialize(name, &c->tcti) != TSS2_RC_SUCCESS) {
        c->tcti = NULL;
        return cmc_fail(CMC_ERR_IO, "no TPM could be reached (%s)", name);
    }
    if (Esys_Initialize(&c->esys, c->tcti, NULL) != TSS2_RC_SUCCESS) {
        c->esys = NULL;
        conn_close(c);
        return cmc_fail(CMC_ERR_IO, "the TPM could not be opened (%s)", name);
    }
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    memset(&sens, 0, sizeof sens);
    memset(&outside, 0, sizeof outside);
    memset(&pcrs, 0, sizeof pcrs);
    primary_template(&tmpl);
    TSS2_RC rc = Esys_CreatePrimary(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                    &sens, &tmpl, &outside, &pcrs, &c->primary, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        c->primary = ESYS_TR_NONE;
        conn_close(c);
        if (rc_base(rc) == TPM2_RC_BAD_AUTH || rc_base(rc) == TPM2_RC_AUTH_FAIL)
            return cmc_fail(CMC_ERR_IO, "the TPM's owner hierarchy has a password; key slots need it empty");
        return cmc_fail(CMC_ERR_IO, "the TPM refused to make its storage key (TPM code 0x%x)", (unsigned)rc);
    }
    return CMC_OK;
}

/* A salted HMAC session for one command: `flags` says which way its parameters are
 * encrypted (TPMA_SESSION_DECRYPT: the command's first parameter, TPMA_SESSION_ENCRYPT: the
 * response's). Without continueSession the TPM ends it after that command. */
static int session_start(struct tpm_conn *c, TPMA_SESSION flags)
{
    TPMT_SYM_DEF sym;
    memset(&sym, 0, sizeof sym);
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    TSS2_RC rc = Esys_StartAuthSession(c->esys, c->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &c->session);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_TRSess_SetAttributes(c->esys, c->session, flags, 0xff);
    if (rc != TSS2_RC_SUCCESS)
        return cmc_fail(CMC_ERR_IO, "the TPM refused an encrypted session (TPM code 0x%x)", (unsigned)rc);
    return CMC_OK;
}

/* After the session's one command: the TPM ends a session without continueSession when the
 * command succeeds (its handle is only forgotten here), not when it fails (a wrong auth
 * value, a lockout), so then it is flushed, or the TPM's session slots would fill up. */
static void session_spent(struct tpm_conn *c, TSS2_RC command_rc)
{
    if (c->session == ESYS_TR_NONE)
        return;
    if (command_rc == TSS2_RC_SUCCESS)
        Esys_TR_Close(c->esys, &c->session);
    else
        Esys_FlushContext(c->esys, c->session);
    c->session = ESYS_TR_NONE;
}

static void auth_set(TPM2B_AUTH *a, const uint8_t auth[CRY_TPM_AUTH_BYTES])
{
    memset(a, 0, sizeof *a);
    a->size = CRY_TPM_AUTH_BYTES;
    memcpy(a->buffer, auth, CRY_TPM_AUTH_BYTES);
}

int cry_tpm_seal(const uint8_t auth[CRY_TPM_AUTH_BYTES], uint8_t secret[CRY_TPM_SECRET_BYTES],
                 uint8_t pub[CRY_TPM_BLOB_MAX], size_t *pub_len, uint8_t priv[CRY_TPM_BLOB_MAX],
                 size_t *priv_len, uint8_t parent[CRY_TPM_NAME_BYTES])
{
    struct tpm_conn c;
    TPM2B_PRIVATE *out_priv = NULL;
    TPM2B_PUBLIC *out_pub = NULL;
    *pub_len = *priv_len = 0;
    int rc = conn_open(&c);
    if (rc != CMC_OK)
        return rc;
    if ((rc = primary_name(&c, parent)) != CMC_OK) {
        conn_close(&c);
        return rc;
    }
    TPM2B_SENSITIVE_CREATE sens;
    memset(&sens, 0, sizeof sens);
    auth_set(&sens.sensitive.userAuth, auth);
    cry_random(secret, CRY_TPM_SECRET_BYTES);
    sens.sensitive.data.size = CRY_TPM_SECRET_BYTES;
    memcpy(sens.sensitive.data.buffer, secret, CRY_TPM_SECRET_BYTES);
    /* A sealed-data object: never leaves this TPM, opened only with its auth value, and
     * (NODA clear) every wrong auth value counts towards the dictionary-attack lockout. */
    TPM2B_PUBLIC tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    memset(&outside, 0, sizeof outside);
    memset(&pcrs, 0, sizeof pcrs);
    TSS2_RC trc = TSS2_RC_SUCCESS;
    if ((rc = session_start(&c, TPMA_SESSION_DECRYPT)) == CMC_OK) {
        trc = Esys_Create(c.esys, c.primary, c.session, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs,
                          &out_priv, &out_pub, NULL, NULL, NULL);
        session_spent(&c, trc);
    }
    cry_memzero(&sens, sizeof sens);
    if (rc != CMC_OK)
        goto out;
    if (trc != TSS2_RC_SUCCESS) {
        rc = cmc_fail(CMC_ERR_IO, "the TPM could not seal the key slot's secret (TPM code 0x%x)", (unsigned)trc);
        goto out;
    }
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(out_pub, pub, CRY_TPM_BLOB_MAX, &off) != TSS2_RC_SUCCESS) {
        rc = cmc_fail(CMC_ERR_IO, "the TPM's sealed object is larger than a key slot holds");
        goto out;
    }
    *pub_len = off;
    off = 0;
    if (Tss2_MU_TPM2B_PRIVATE_Marshal(out_priv, priv, CRY_TPM_BLOB_MAX, &off) != TSS2_RC_SUCCESS) {
        rc = cmc_fail(CMC_ERR_IO, "the TPM's sealed object is larger than a key slot holds");
        goto out;
    }
    *priv_len = off;
out:
    Esys_Free(out_pub);
    Esys_Free(out_priv);
    conn_close(&c);
    if (rc != CMC_OK) {
        cry_memzero(secret, CRY_TPM_SECRET_BYTES);
        *pub_len = *priv_len = 0;
    }
    return rc;
}

/* The storage primary key comes from the TPM's owner seed: another TPM, or this one
 * cleared, has another key, and the slot's object cannot be loaded under it. */
static int not_this_tpm(void)
{
    return cmc_fail(CMC_ERR_LOCKED, "this key slot is sealed to another TPM (or this TPM was cleared); it cannot "
                                    "be unlocked on this device");
}

/* What an unseal's TPM response means for the person at the keyboard. */
static int unseal_failure(TSS2_RC rc)
{
    TSS2_RC base = rc_base(rc);
    if (base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH)
        return cmc_fail(CMC_ERR_AUTH, "wrong user or PIN");
    if (base == TPM2_RC_LOCKOUT)
        return cmc_fail(CMC_ERR_THROTTLED, "the TPM has locked out PIN attempts after too many wrong PINs; "
                                           "try again later or ask your IT team");
    return cmc_fail(CMC_ERR_IO, "the TPM could not unseal the key slot (TPM code 0x%x)", (unsigned)rc);
}

int cry_tpm_unseal(const uint8_t auth[CRY_TPM_AUTH_BYTES], const uint8_t *pub, size_t pub_len,
                   const uint8_t *priv, size_t priv_len, const uint8_t parent[CRY_TPM_NAME_BYTES],
                   uint8_t secret[CRY_TPM_SECRET_BYTES])
{
    TPM2B_PUBLIC in_pub;
    TPM2B_PRIVATE in_priv;
    TPM2B_SENSITIVE_DATA *out = NULL;
    memset(&in_pub, 0, sizeof in_pub);
    memset(&in_priv, 0, sizeof in_priv);
    /* The TPM first: without one, that is what the person unlocking needs to hear. */
    struct tpm_conn c;
    int rc = conn_open(&c);
    if (rc != CMC_OK)
        return rc;
    size_t pub_off = 0, priv_off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_len, &pub_off, &in_pub) != TSS2_RC_SUCCESS || pub_off != pub_len ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv, priv_len, &priv_off, &in_priv) != TSS2_RC_SUCCESS ||
        priv_off != priv_len) {
        rc = cmc_fail(CMC_ERR_CORRUPT, "the key slot's TPM object is malformed");
        goto out;
    }
    uint8_t name[CRY_TPM_NAME_BYTES];
    if ((rc = primary_name(&c, name)) != CMC_OK)
        goto out;
    if (!cry_memeq(name, parent, CRY_TPM_NAME_BYTES)) {
        rc = not_this_tpm();
        goto out;
    }
    TSS2_RC trc = Esys_Load(c.esys, c.primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &in_priv, &in_pub,
                            &c.object);
    if (trc != TSS2_RC_SUCCESS) {
        c.object = ESYS_TR_NONE;
        rc = not_this_tpm();
        goto out;
    }
    TPM2B_AUTH a;
    auth_set(&a, auth);
    trc = Esys_TR_SetAuth(c.esys, c.object, &a);
    cry_memzero(&a, sizeof a);
    if (trc != TSS2_RC_SUCCESS) {
        rc = cmc_fail(CMC_ERR_IO, "the TPM library refused the key slot's auth value");
        goto out;
    }
    if ((rc = session_start(&c, TPMA_SESSION_ENCRYPT)) != CMC_OK)
        goto out;
    trc = Esys_Unseal(c.esys, c.object, c.session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
    session_spent(&c, trc);
    if (trc != TSS2_RC_SUCCESS) {
        out = NULL;
        rc = unseal_failure(trc);
        goto out;
    }
    if (out->size != CRY_TPM_SECRET_BYTES) {
        rc = cmc_fail(CMC_ERR_CORRUPT, "the key slot's TPM object holds a secret of the wrong size");
        goto out;
    }
    memcpy(secret, out->buffer, CRY_TPM_SECRET_BYTES);
out:
    if (out != NULL) {
        cry_memzero(out, sizeof *out);
        Esys_Free(out);
    }
    /* Esys_TR_SetAuth keeps a copy in the context, which Esys_Finalize frees. */
    conn_close(&c);
    cry_memzero(&in_priv, sizeof in_priv);
    return rc;
}
