/* The offline command line, driven in-process: init, unlock, lookup card order, exit codes,
 * published-only through the CLI, user add/remove, edit by role, JSON output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/cli.h"
#include "agent/store.h"
#include "crypto/cry.h"
#include "crypto/cry_test.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "platform/plat_test.h"
#include "sync/plan.h"
#include "tests/support/example_plan_model.h"
#include "tests/support/run.h"
#include "tests/support/tmpdir.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char out_path[128];

#define PUB_ID "7c1f4e0a-3a51-4c55-9f3b-2d1e8f0b6a11"
#define PUB_NHS "9434765919"
#define DRAFT_ID "11111111-2222-4333-8444-555555555555"
#define DRAFT_NHS "4010232137"

static void set_text(char **field, const char *value)
{
    cmc_free(*field);
    *field = value != NULL ? cmc_strdup(value) : NULL;
}

/* The example plan (shared/examples/plan.json: every section of the card present) with this
 * identity, CPR decision, status and review date, a marker in the first problem's guidance,
 * and the LPA listed before the GP. */
static void make_plan(struct plan *p, const char *id, const char *nhs, const char *family, const char *cpr,
                      const char *marker, const char *status, int version, const char *review_due)
{
    char guidance[128];
    int published = strcmp(status, "published") == 0;
    struct plan_contact first;
    tst_example_plan_parse(p);
    set_text(&p->plan_id, id);
    set_text(&p->nhs_number, nhs);
    set_text(&p->patient.family_name, family);
    p->resuscitation.decision = strcmp(cpr, "dnacpr") == 0 ? PLAN_CPR_DNACPR : PLAN_CPR_FOR_CPR;
    snprintf(guidance, sizeof guidance, "Sit upright; %s", marker);
    assert_true(p->n_anticipated_problems > 0 && p->n_contacts > 1);
    set_text(&p->anticipated_problems[0].guidance, guidance);
    p->status = plan_status_from_name(status);
    p->version = version;
    set_text(&p->approved_by, published ? "Dr Amira Shah" : NULL);
    set_text(&p->approved_at, published ? "2026-02-11T15:02:00Z" : NULL);
    set_text(&p->review_due, review_due);
    first = p->contacts[0];
    p->contacts[0] = p->contacts[p->n_contacts - 1];
    p->contacts[p->n_contacts - 1] = first;
    assert_int_equal(p->contacts[0].role, PLAN_CONTACT_LPA);
}

static int run_cli(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "cmc-agent";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 30; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc++] = "--dir";
    argv[argc++] = dir;
    argv[argc] = NULL;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return rc;
}

static __attribute__((noinline)) char *output(void)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(plat_read_file(out_path, 1 << 20, &buf, &len), CMC_OK);
    return (char *)buf;
}

/* Where `needle` starts in `hay` at or after `from`; -1 when absent or from is -1. */
static long pos(const char *hay, long from, const char *needle)
{
    const char *at = from < 0 ? NULL : strstr(hay + from, needle);
    return at != NULL ? (long)(at - hay) : -1;
}

/* Puts plans straight into the replica through the store, as a sync would. */
static void seed_replica(void)
{
    struct cli_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    snprintf(o.slots_path, sizeof o.slots_path, "%s/keyslots", dir);
    snprintf(o.replica_path, sizeof o.replica_path, "%s/replica.db", dir);
    struct cli_session s;
    assert_int_equal(cli_unlock(&o, &s), CMC_OK);
    struct plan pub, draft, pub_v1;
    make_plan(&pub, PUB_ID, PUB_NHS, "Okafor", "dnacpr", "MARKER-PUBLISHED", "published", 4, "2027-02-11");
    make_plan(&draft, DRAFT_ID, DRAFT_NHS, "Draftperson", "for_cpr", "MARKER-DRAFT", "draft", 1, "2027-02-11");
    assert_int_equal(store_batch_begin(s.store), CMC_OK);
    assert_int_equal(store_put_version(s.store, &pub, 10), CMC_OK);
    assert_int_equal(store_put_version(s.store, &draft, 11), CMC_OK);
    assert_int_equal(store_batch_commit(s.store), CMC_OK);
    (void)pub_v1;
    plan_free(&pub);
    plan_free(&draft);
    cli_session_close(&s);
}

static int setup(void **state)
{
    (void)state;
    if (tst_tmpdir_make("cli", dir, sizeof dir) != 0)
        return -1;
    snprintf(out_path, sizeof out_path, "%s.out", dir);
    cry_kdf_set_test_limits(1);
    setenv("CMC_PIN", "4711-correct", 1);
    unsetenv("CMC_USER");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* the output and the files some tests write beside the directory, even after a failure */
    static const char *const beside[] = {".out", ".changes", ".pin"};
    int rc = tst_tmpdir_remove(dir);
    for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", dir, beside[i]);
        if (tst_tmpdir_remove(p) != 0)
            rc = -1;
    }
    return rc;
}

static void test_init_then_lookup_card_in_clinical_order(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    seed_replica();
    assert_int_equal(run_cli("lookup", "943 476 5919", NULL), 0);
    char *out = output();
    /* banner first, then the ten sections in DOMAIN.md order */
    const char *order[] = { "PLAN STATUS: PUBLISHED", "REVIEW DUE: 2027-02-11", "never synced", "1 PATIENT",
                            "2 CPR", "DNACPR - do NOT attempt CPR", "3 CEILING", "4 ADRT", "5 PREFERRED",
                            "6 CONTACTS", "7 DIAGNOSIS", "8 ANTICIPATORY MEDICINES", "9 ALLERGIES",
                            "10 ANTICIPATED PROBLEMS", "MARKER-PUBLISHED" };
    const char *at = out;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *found = strstr(at, order[i]);
        if (found == NULL)
            fail_msg("card: '%s' missing or out of order", order[i]);
        at = found;
    }
    /* GP is rung before the LPA even though the plan lists the LPA first */
    assert_true(strstr(out, "GP ") < strstr(out, "LPA "));
    cmc_free(out);
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    seed_replica();
    /* malformed NHS numbers: 2 */
    assert_int_equal(run_cli("lookup", "9434765918", NULL), 2);
    assert_int_equal(run_cli("lookup", "12345", NULL), 2);
    /* a valid number with no plan: 3 */
    assert_int_equal(run_cli("lookup", "4010232145", NULL), 3);
    /* usage: 2 */
    assert_int_equal(run_cli("lookup", NULL), 2);
    assert_int_equal(run_cli("frobnicate", NULL), 2);
    /* a second init refuses and changes nothing */
    assert_int_equal(run_cli("init", "--user", "x", "--role", "clinician", NULL), 1);
    assert_int_equal(run_cli("lookup", PUB_NHS, NULL), 0);
}

static void test_wrong_pin_exit_4_and_nothing_changed(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    seed_replica();
    char slots[128];
    snprintf(slots, sizeof slots, "%s/keyslots", dir);
    uint8_t *before, *after;
    size_t blen, alen;
    assert_int_equal(plat_read_file(slots, 1 << 16, &before, &blen), CMC_OK);
    setenv("CMC_PIN", "0000-wrong", 1);
    assert_int_equal(run_cli("lookup", PUB_NHS, NULL), 4);
    char *out = output();
    assert_null(strstr(out, "Okafor")); /* nothing shown */
    cmc_free(out);
    setenv("CMC_PIN", "4711-correct", 1);
    assert_int_equal(plat_read_file(slots, 1 << 16, &after, &alen), CMC_OK);
    assert_int_equal(blen, alen);
    assert_memory_equal(before, after, blen);
    cmc_free(before);
    cmc_free(after);
    assert_int_equal(run_cli("lookup", PUB_NHS, NULL), 0);
    /* an unknown user is "locked" too */
    assert_int_equal(run_cli("lookup", PUB_NHS, "--user", "nobody", NULL), 4);
}

static void test_published_only_through_cli(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    seed_replica();
    assert_int_equal(run_cli("lookup", DRAFT_NHS, NULL), 3);
    char *out = output();
    assert_null(strstr(out, "MARKER-DRAFT"));
    cmc_free(out);
    assert_int_equal(run_cli("show", DRAFT_ID, NULL), 3);
    assert_int_equal(run_cli("search", "--name", "draftperson", NULL), 3);
    assert_int_equal(run_cli("list", "--json", NULL), 0);
    out = output();
    assert_null(strstr(out, DRAFT_NHS));
    assert_non_null(strstr(out, PUB_NHS));
    cmc_free(out);
    /* urgent care cannot edit */
    char changes[128];
    snprintf(changes, sizeof changes, "%s.changes", dir);
    const char *doc = "{\"set\":{\"prognosis\":\"days\"}}";
    assert_int_equal(plat_write_atomic(changes, doc, strlen(doc)), CMC_OK);
    assert_int_equal(run_cli("edit", PUB_NHS, "--file", changes, NULL), 2);
    plat_remove(changes);
}

static void test_clinician_sees_draft_and_pending_edit_marked(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "nurse1", "--role", "clinician", NULL), 0);
    seed_replica();
    assert_int_equal(run_cli("lookup", DRAFT_NHS, NULL), 0);
    char *out = output();
    assert_non_null(strstr(out, "DRAFT - not approved"));
    cmc_free(out);
    char changes[128];
    snprintf(changes, sizeof changes, "%s.changes", dir);
    const char *doc = "{\"set\":{\"prognosis\":\"days\"}}";
    assert_int_equal(plat_write_atomic(changes, doc, strlen(doc)), CMC_OK);
    assert_int_equal(run_cli("edit", PUB_NHS, "--file", changes, NULL), 0);
    assert_int_equal(run_cli("lookup", PUB_NHS, "--json", NULL), 0);
    out = output();
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "plan"), "prognosis")), "days");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "banner"), "pending_edits")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "not_yet_approved_fields"), 0)),
                        "prognosis");
    json_decref(j);
    cmc_free(out);
    /* an unknown path is refused: exit 2 */
    doc = "{\"set\":{\"resuscitation.colour\":\"blue\"}}";
    assert_int_equal(plat_write_atomic(changes, doc, strlen(doc)), CMC_OK);
    assert_int_equal(run_cli("edit", PUB_NHS, "--file", changes, NULL), 2);
    assert_int_equal(run_cli("status", "--json", NULL), 0);
    out = output();
    j = json_loads(out, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "pending_edits")), 1);
    assert_true(json_is_null(json_object_get(j, "last_sync")));
    json_decref(j);
    cmc_free(out);
    plat_remove(changes);
}

/* A clinician's unapproved change of the CPR decision: the card shows the published decision
 * with its approver, and the change inside the CPR section as a proposal; an urgent-care user
 * on the same device sees the published decision and no proposal at all. */
static void test_pending_cpr_edit_is_a_proposal_never_the_decision(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "nurse1", "--role", "clinician", NULL), 0);
    seed_replica();
    char changes[128], pinfile[128];
    snprintf(changes, sizeof changes, "%s.changes", dir);
    snprintf(pinfile, sizeof pinfile, "%s.pin", dir);
    const char *doc = "{\"set\":{\"resuscitation.decision\":\"for_cpr\"}}";
    assert_int_equal(plat_write_atomic(changes, doc, strlen(doc)), CMC_OK);
    assert_int_equal(run_cli("edit", PUB_NHS, "--file", changes, NULL), 0);

    assert_int_equal(run_cli("lookup", PUB_NHS, NULL), 0);
    char *out = output();
    assert_non_null(strstr(out, "PLAN STATUS: PUBLISHED v4 + your unapproved changes to: CPR decision\n"));
    assert_non_null(strstr(out, "approved by Dr Amira Shah on 2026-02-11"));
    /* in order: the decision, the proposal inside its section, then the next section */
    long cpr = pos(out, 0, " 2 CPR          DNACPR - do NOT attempt CPR\n");
    long proposal = pos(out, cpr, ">> PROPOSED on this device, not approved (nurse1, ");
    long value = pos(out, proposal, "CPR decision: FOR CPR - attempt CPR   [plan: DNACPR - do NOT attempt CPR]");
    assert_true(cpr >= 0 && proposal > cpr && value > proposal);
    assert_true(pos(out, 0, "FOR CPR") > proposal); /* never shown as the decision */
    assert_true(pos(out, 0, " 3 CEILING") > value);
    cmc_free(out);

    assert_int_equal(run_cli("lookup", PUB_NHS, "--json", NULL), 0);
    out = output();
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *c = json_object_get(j, "cpr");
    assert_string_equal(json_string_value(json_object_get(c, "decision")), "dnacpr");
    assert_string_equal(json_string_value(json_object_get(c, "state")), "published");
    assert_string_equal(json_string_value(json_object_get(c, "approved_by")), "Dr Amira Shah");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "proposal"), "decision")), "for_cpr");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "proposal"), "state")), "proposed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "proposal"), "proposed_by")), "nurse1");
    json_decref(j);
    cmc_free(out);

    /* the crew on the same device */
    assert_int_equal(plat_write_atomic(pinfile, "2222-second\n", 12), CMC_OK);
    assert_int_equal(run_cli("user", "add", "crew1", "--role", "urgent_care", "--new-pin-file", pinfile, NULL), 0);
    assert_int_equal(run_cli("lookup", PUB_NHS, "--user", "crew1", "--pin-file", pinfile, NULL), 0);
    out = output();
    assert_non_null(strstr(out, " 2 CPR          DNACPR - do NOT attempt CPR\n"));
    assert_null(strstr(out, "FOR CPR"));
    assert_null(strstr(out, "PROPOSED"));
    assert_null(strstr(out, "unapproved"));
    cmc_free(out);
    assert_int_equal(run_cli("lookup", PUB_NHS, "--json", "--user", "crew1", "--pin-file", pinfile, NULL), 0);
    out = output();
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(json_object_get(j, "cpr"), "proposal"));
    assert_int_equal(json_array_size(json_object_get(j, "proposals")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "plan"), "resuscitation") != NULL
                                              ? json_object_get(json_object_get(json_object_get(j, "plan"),
                                                                                "resuscitation"),
                                                                "decision")
                                              : NULL),
                        "dnacpr");
    json_decref(j);
    cmc_free(out);
    plat_remove(changes);
    plat_remove(pinfile);
}

static void test_users_added_and_removed(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    char pinfile[128];
    snprintf(pinfile, sizeof pinfile, "%s.pin", dir);
    assert_int_equal(plat_write_atomic(pinfile, "2222-second\n", 12), CMC_OK);
    /* an urgent-care user cannot create a clinician */
    assert_int_equal(run_cli("user", "add", "nurse", "--role", "clinician", "--new-pin-file", pinfile, NULL), 2);
    assert_int_equal(run_cli("user", "add", "crew2", "--role", "urgent_care", "--new-pin-file", pinfile, NULL), 0);
    assert_int_equal(run_cli("lookup", PUB_NHS, "--user", "crew2", "--pin-file", pinfile, NULL), 3);
    assert_int_equal(run_cli("user", "remove", "crew2", "--user", "crew1", NULL), 0);
    assert_int_equal(run_cli("lookup", PUB_NHS, "--user", "crew2", "--pin-file", pinfile, NULL), 4);
    plat_remove(pinfile);
}

static void test_verify_and_tamper(void **state)
{
    (void)state;
    assert_int_equal(run_cli("init", "--user", "crew1", "--role", "urgent_care", NULL), 0);
    seed_replica();
    assert_int_equal(run_cli("verify", NULL), 0);
    char db[128];
    snprintf(db, sizeof db, "%s/replica.db", dir);
    uint64_t size;
    assert_int_equal(plat_file_size(db, &size), CMC_OK);
    assert_true(size > 8192);
    int fd = open(db, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 4096 + 100), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, 4096 + 100), 1);
    close(fd);
    int rc = run_cli("verify", NULL);
    assert_int_not_equal(rc, 0);
    assert_int_equal(rc, cmc_exit_code(CMC_ERR_TAMPERED));
}

static int init(void)
{
    return cry_init() == CMC_OK ? 0 : -1;
}

TST_MAIN(init, setup, teardown,
         test_init_then_lookup_card_in_clinical_order, test_exit_codes,
         test_wrong_pin_exit_4_and_nothing_changed, test_published_only_through_cli,
         test_clinician_sees_draft_and_pending_edit_marked, test_pending_cpr_edit_is_a_proposal_never_the_decision,
         test_users_added_and_removed,
         test_verify_and_tamper)
