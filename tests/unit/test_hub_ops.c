/*
 * test_hub_ops.c - what an operator depends on: the settings file, "did you mean", devices
 * by name and unique names, the scopes the hub knows, the metrics exposition, and the signed
 * TLS pin set that lets the hub change its key without re-enrolling devices.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/cry.h"
#include "hub/admin.h"
#include "hub/cli.h"
#include "hub/config.h"
#include "hub/hub.h"
#include "hub/metrics.h"
#include "hub/tls.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "tests/support/hub_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setup(void **state)
{
    struct tst_hub *e = calloc(1, sizeof *e);
    assert_non_null(e);
    tst_hub_open(e, 0); /* the real clock */
    assert_int_equal(hub_seed(e->h, 40, 3, NULL, NULL), CMC_OK);
    *state = e;
    return 0;
}

static void test_config_parse(void **state)
{
    static const char text[] = "# settings\n\n  dir = /var/lib/cmc-hub  \nlisten=0.0.0.0:8443\n"
                               "per_ip_connections = 7\r\nrequest_deadline = 9\n";
    struct hub_config cfg;
    (void)state;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(hub_config_parse(text, sizeof text - 1, "t.conf", &cfg), CMC_OK);
    assert_string_equal(cfg.dir, "/var/lib/cmc-hub");
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    assert_int_equal(cfg.per_ip_connections, 7);
    assert_int_equal(cfg.request_deadline, 9);

    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(hub_config_parse("dir = x\nlsiten = y\n", 19, "t.conf", &cfg), CMC_ERR_USAGE);
    assert_non_null(strstr(cmc_errmsg(), "line 2"));
    assert_non_null(strstr(cmc_errmsg(), "lsiten"));
    assert_int_equal(hub_config_parse("threads = -1\n", 13, "t.conf", &cfg), CMC_ERR_USAGE);
    assert_int_equal(hub_config_parse("threads = 4x\n", 13, "t.conf", &cfg), CMC_ERR_USAGE);
    assert_int_equal(hub_config_parse("just words\n", 11, "t.conf", &cfg), CMC_ERR_USAGE);
    assert_int_equal(hub_config_load("/nonexistent/hub.conf", &cfg), CMC_ERR_USAGE);
}

static void test_closest(void **state)
{
    static const char *const subs[] = {"add", "list", "revoke", "wipe", "lease"};
    (void)state;
    assert_string_equal(hub_cli_closest("lst", subs, 5), "list");
    assert_string_equal(hub_cli_closest("revok", subs, 5), "revoke");
    assert_string_equal(hub_cli_closest("wipe", subs, 5), "wipe");
    assert_null(hub_cli_closest("frobnicate", subs, 5));
    assert_int_equal(hub_cli_unknown("command", "lst", subs, 5), CMC_ERR_USAGE);
    assert_non_null(strstr(cmc_errmsg(), "did you mean 'list'?"));
}

struct first_scope {
    char region[HUB_SCOPE_MAX + 1];
    int n;
    int64_t plans;
};

static int first_region(const struct hub_scope_info *si, void *ctx)
{
    struct first_scope *fs = ctx;
    fs->n++;
    if (fs->region[0] == '\0' && strncmp(si->scope, "region:", 7) == 0) {
        snprintf(fs->region, sizeof fs->region, "%s", si->scope);
        fs->plans = si->plans;
    }
    return 0;
}

static void test_scopes(void **state)
{
    struct tst_hub *e = *state;
    struct first_scope fs;
    char typo[HUB_SCOPE_MAX + 2];
    int known = 0;
    memset(&fs, 0, sizeof fs);
    assert_int_equal(hub_scope_list(e->h, first_region, &fs), CMC_OK);
    assert_true(fs.n >= 3);
    assert_true(fs.region[0] != '\0');
    assert_true(fs.plans >= 1);
    assert_int_equal(hub_scope_known(e->h, fs.region, &known), CMC_OK);
    assert_int_equal(known, 1);
    snprintf(typo, sizeof typo, "%sx", fs.region);
    assert_int_equal(hub_scope_known(e->h, typo, &known), CMC_OK);
    assert_int_equal(known, 0);
    assert_int_equal(hub_scope_known(e->h, "all", &known), CMC_OK);
    assert_int_equal(known, 1);
    assert_int_equal(hub_scope_known(e->h, "planet:mars", &known), CMC_ERR_USAGE);
}

static void test_devices_by_name(void **state)
{
    struct tst_hub *e = *state;
    char id1[PLAN_ID_LEN + 1], id2[PLAN_ID_LEN + 1], got[PLAN_ID_LEN + 1];
    char code[HUB_CODE_LEN + 1];
    assert_int_equal(hub_device_name_free(e->h, "amb-12"), CMC_OK);
    assert_int_equal(hub_device_add(e->h, "amb-12", "all", "urgent_care", id1, code), CMC_OK);
    assert_int_equal(hub_device_add(e->h, "amb-13", "all", "urgent_care", id2, code), CMC_OK);
    assert_int_equal(hub_device_resolve(e->h, "amb-12", got), CMC_OK);
    assert_string_equal(got, id1);
    assert_int_equal(hub_device_resolve(e->h, id2, got), CMC_OK);
    assert_string_equal(got, id2);
    assert_int_equal(hub_device_resolve(e->h, "amb-99", got), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_device_name_free(e->h, "amb-12"), CMC_ERR_EXISTS);
    /* revoked: the name is free again, and a new device of that name wins the lookup */
    assert_int_equal(hub_device_revoke(e->h, id1), CMC_OK);
    assert_int_equal(hub_device_name_free(e->h, "amb-12"), CMC_OK);
    assert_int_equal(hub_device_resolve(e->h, "amb-12", got), CMC_OK);
    assert_string_equal(got, id1);
    assert_int_equal(hub_device_add(e->h, "amb-12", "all", "urgent_care", id2, code), CMC_OK);
    assert_int_equal(hub_device_resolve(e->h, "amb-12", got), CMC_OK);
    assert_string_equal(got, id2);
}

static void test_metrics(void **state)
{
    struct tst_hub *e = *state;
    hub_metrics *m = NULL;
    char *text = NULL;
    size_t len = 0;
    assert_string_equal(hub_metrics_endpoint("/v1/pull?cursor=3"), "pull");
    assert_string_equal(hub_metrics_endpoint("/v1/pullx"), "other");
    assert_string_equal(hub_metrics_endpoint("/healthz"), "healthz");
    assert_string_equal(hub_metrics_endpoint("/v1/tls-pins"), "tls-pins");
    assert_int_equal(hub_metrics_new(&m), CMC_OK);
    hub_metrics_observe(m, "pull", 200, 3000);   /* 3 ms */
    hub_metrics_observe(m, "pull", 200, 700000); /* 0.7 s */
    hub_metrics_observe(m, "push", 503, 1000);
    hub_metrics_limit(m, "deadline");
    assert_int_equal(hub_metrics_render(m, e->h, &text, &len), CMC_OK);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "cmc_hub_requests_total{endpoint=\"pull\",status=\"200\"} 2\n"));
    assert_non_null(strstr(text, "cmc_hub_request_duration_seconds_bucket{endpoint=\"pull\","
                                 "le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "cmc_hub_request_duration_seconds_bucket{endpoint=\"pull\","
                                 "le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "cmc_hub_store_errors_total 1\n"));
    assert_non_null(strstr(text, "cmc_hub_limited_total{limit=\"deadline\"} 1\n"));
    assert_non_null(strstr(text, "cmc_hub_up 1\n"));
    assert_non_null(strstr(text, "cmc_hub_plans "));
    cmc_free(text);
    hub_metrics_free(m);
}

/* Checks a pin document the way a device does; returns its pins (static). */
static const char *verify_doc(struct tst_hub *e, const char *doc, size_t len)
{
    static char pins[256];
    uint8_t pk[CRY_SIGN_PK_BYTES], sig[CRY_SIG_BYTES];
    char msg[400];
    const char *p = NULL, *s = NULL;
    json_int_t at = 0;
    json_t *j = json_loadb(doc, len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_unpack(j, "{s:s, s:I, s:s}", "pins", &p, "at", &at, "sig", &s), 0);
    assert_int_equal(cry_unhex(sig, sizeof sig, s), CMC_OK);
    hub_public_key(e->h, pk);
    int n = snprintf(msg, sizeof msg, "%s%s\n%lld", HUB_TLS_PINS_DOMAIN, p, (long long)at);
    assert_int_equal(cry_verify(pk, msg, (size_t)n, sig), CMC_OK);
    msg[strlen(HUB_TLS_PINS_DOMAIN)] ^= 1; /* any change breaks it */
    assert_int_not_equal(cry_verify(pk, msg, (size_t)n, sig), CMC_OK);
    snprintf(pins, sizeof pins, "%s", p);
    json_decref(j);
    return pins;
}

static void test_tls_rotation(void **state)
{
    struct tst_hub *e = *state;
    struct hub_tls_state ts;
    char *doc = NULL, expect[200];
    size_t len = 0;
    int completed = -1;
    const char *cur = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const char *next = "sha256//BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=";

    assert_int_equal(hub_tls_pins_doc(e->h, &doc, &len), CMC_ERR_NOT_FOUND);
    assert_int_equal(hub_tls_started(e->h, cur, &completed), CMC_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(hub_tls_pins_doc(e->h, &doc, &len), CMC_OK);
    assert_string_equal(verify_doc(e, doc, len), cur);
    cmc_free(doc);

    assert_int_equal(hub_tls_announce(e->h, next), CMC_OK);
    assert_int_equal(hub_tls_pins_doc(e->h, &doc, &len), CMC_OK);
    snprintf(expect, sizeof expect, "%s;%s", cur, next);
    assert_string_equal(verify_doc(e, doc, len), expect);
    cmc_free(doc);
    assert_int_equal(hub_tls_state(e->h, &ts, NULL, NULL), CMC_OK);
    assert_string_equal(ts.next_pin, next);

    /* restarting with the old key keeps the announcement; with the new one completes it */
    assert_int_equal(hub_tls_started(e->h, cur, &completed), CMC_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(hub_tls_started(e->h, next, &completed), CMC_OK);
    assert_int_equal(completed, 1);
    assert_int_equal(hub_tls_pins_doc(e->h, &doc, &len), CMC_OK);
    assert_string_equal(verify_doc(e, doc, len), next);
    cmc_free(doc);
}

TST_HUB_MAIN_WITH(setup, test_config_parse, test_closest, test_scopes, test_devices_by_name,
                  test_metrics, test_tls_rotation)
