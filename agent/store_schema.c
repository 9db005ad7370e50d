/*
 * store_schema.c - the replica's schema: numbered migrations, the secondary indexes and
 * bulk loading (see store_int.h; docs/STORAGE.md documents every step).
 */
#include "agent/store.h"
#include "agent/store_int.h"

#include "platform/err.h"
#include "sync/db.h"

/* ---- migrations ------------------------------------------------------------------------------ */

/* Numbered migrations: step i takes user_version i to i + 1. Never edit a released step;
 * add a new one (and document it in docs/STORAGE.md). */
static const char *const schema_steps[] = {
    /* 1: plan versions, the identity index, tombstones, sync state, the role views. */
    "CREATE TABLE plan_versions ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  version INTEGER NOT NULL CHECK (version > 0),"
    "  status TEXT NOT NULL CHECK (status IN ('draft', 'needs_finalisation',"
    "                                         'awaiting_approval', 'published')),"
    "  nhs_number TEXT NOT NULL CHECK (length(nhs_number) = 10),"
    "  change_seq INTEGER NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  UNIQUE (plan_id, version)"
    ");"
    "CREATE INDEX plan_versions_nhs ON plan_versions (nhs_number);"
    "CREATE INDEX plan_versions_status ON plan_versions (status, plan_id, version);"
    "CREATE TABLE plan_identity ("
    "  version_id INTEGER PRIMARY KEY REFERENCES plan_versions (id) ON DELETE CASCADE,"
    "  plan_id TEXT NOT NULL,"
    "  nhs_number TEXT NOT NULL,"
    "  family_name TEXT NOT NULL,"
    "  given_name TEXT NOT NULL,"
    "  date_of_birth TEXT,"
    "  postcode TEXT,"
    "  postcode_outward TEXT"
    ");"
    "CREATE INDEX plan_identity_plan ON plan_identity (plan_id);"
    "CREATE INDEX plan_identity_nhs ON plan_identity (nhs_number);"
    "CREATE INDEX plan_identity_family ON plan_identity (family_name);"
    "CREATE INDEX plan_identity_given ON plan_identity (given_name);"
    "CREATE INDEX plan_identity_dob ON plan_identity (date_of_birth);"
    "CREATE INDEX plan_identity_postcode ON plan_identity (postcode);"
    "CREATE TABLE tombstones ("
    "  plan_id TEXT PRIMARY KEY,"
    "  nhs_hash BLOB CHECK (nhs_hash IS NULL OR length(nhs_hash) = 32),"
    "  reason TEXT NOT NULL,"
    "  change_seq INTEGER NOT NULL,"
    "  purged_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE sync_state ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE VIEW published_versions AS"
    "  SELECT * FROM plan_versions WHERE status = 'published';"
    "CREATE VIEW urgent_care_plans AS"
    "  SELECT * FROM published_versions p"
    "  WHERE p.version = (SELECT max(q.version) FROM published_versions q"
    "                     WHERE q.plan_id = p.plan_id);"
    "CREATE VIEW clinician_plans AS"
    "  SELECT * FROM plan_versions p"
    "  WHERE p.version = (SELECT max(q.version) FROM plan_versions q"
    "                     WHERE q.plan_id = p.plan_id);",

    /* 2: pending local edits (with the plan each was made on), conflicts, three-way merge
     * state, the audit log. */
    "CREATE TABLE pending_edits ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  base_version INTEGER NOT NULL CHECK (base_version > 0),"
    "  idempotency_id TEXT NOT NULL UNIQUE,"
    "  user TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  change BLOB NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
    "  base BLOB,"
    "  hub_version INTEGER"
    ");"
    "CREATE INDEX pending_edits_plan ON pending_edits (plan_id);"
    "CREATE TABLE merges ("
    "  plan_id TEXT PRIMARY KEY CHECK (length(plan_id) = 36),"
    "  base BLOB NOT NULL,"
    "  local BLOB NOT NULL,"
    "  remote BLOB NOT NULL,"
    "  choices TEXT NOT NULL DEFAULT '{}',"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE conflicts ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  field_path TEXT NOT NULL,"
    "  pending_id INTEGER,"
    "  base_value BLOB,"
    "  local_value BLOB,"
    "  remote_value BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (plan_id, field_path)"
    ");"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  device TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  plan_id TEXT,"
    "  identifier TEXT,"
    "  action TEXT NOT NULL,"
    "  wall_time INTEGER NOT NULL,"
    "  mono INTEGER NOT NULL"
    ");",

    /* 3: fewer indexes, each of them used. None on plan_versions itself: a lookup by NHS
     * number goes through plan_identity's index to the version's row, a search scans
     * plan_identity's small rows and reads the versions it matches, and "the newest
     * version" uses the (plan_id, version) key. (Building an index over plan_versions
     * reads and decrypts every plan body; every index costs each stored version a random
     * insert.) The name, date-of-birth and postcode indexes served no query: a search
     * matches name prefixes and optional terms, which no such index answers. */
    "DROP INDEX IF EXISTS plan_versions_nhs;"
    "DROP INDEX IF EXISTS plan_versions_status;"
    "DROP INDEX IF EXISTS plan_identity_family;"
    "DROP INDEX IF EXISTS plan_identity_given;"
    "DROP INDEX IF EXISTS plan_identity_dob;"
    "DROP INDEX IF EXISTS plan_identity_postcode;",

    /* 4: the conflicts table goes: edits held by a conflict live in the three-way merge
     * state (merges), and nothing in the product wrote or read this table. */
    "DROP TABLE IF EXISTS conflicts;",

    /* 5: names fold typographic apostrophes, hyphens and dashes (U+02BC, U+2010..U+201F,
     * U+2032) as they fold ' and - (store_name_normalise): index rows written before drop
     * them too, so O'Brien typed with a curly apostrophe finds "OBrien", and rows still
     * match their plans. */
    "UPDATE plan_identity SET family_name = replace(replace(replace(replace(replace(replace(r"
    "eplace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(r"
    "eplace(family_name,char(700),''),char(8208),''),char(8209),''),char(8210),''),char(8211)"
    ",''),char(8212),''),char(8213),''),char(8214),''),char(8215),''),char(8216),''),char(821"
    "7),''),char(8218),''),char(8219),''),char(8220),''),char(8221),''),char(8222),''),char(8"
    "223),''),char(8242),''), given_name = replace(replace(replace(replace(replace(replace(re"
    "place(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(re"
    "place(given_name,char(700),''),char(8208),''),char(8209),''),char(8210),''),char(8211),'"
    "'),char(8212),''),char(8213),''),char(8214),''),char(8215),''),char(8216),''),char(8217)"
    ",''),char(8218),''),char(8219),''),char(8220),''),char(8221),''),char(8222),''),char(822"
    "3),''),char(8242),'');",

    /* 6: plan counts kept as the replica changes (agent/store_counts.c), so `status` never
     * decodes every plan. plan_heads holds one row per plan: its newest version, whether
     * that is published, whether any version is; plan_counts holds their sums, kept by
     * triggers on plan_heads. A stored version updates its plan's head in one upsert (a
     * snapshot's inserts stay cheap); a deleted or changed version (replace, prune, purge,
     * wipe) recomputes the head from the plan's few versions. Both tables are filled from
     * the existing rows here, starting afresh, so the step can run again on a replica set
     * back to an earlier version. */
    "DROP TRIGGER IF EXISTS plan_versions_head_ins;"
    "DROP TRIGGER IF EXISTS plan_versions_head_del;"
    "DROP TRIGGER IF EXISTS plan_versions_head_upd;"
    "DROP TABLE IF EXISTS plan_heads;"
    "DROP TABLE IF EXISTS plan_counts;"
    "CREATE TABLE plan_heads ("
    "  plan_id TEXT PRIMARY KEY,"
    "  newest_version INTEGER NOT NULL,"
    "  newest_published INTEGER NOT NULL CHECK (newest_published IN (0, 1)),"
    "  has_published INTEGER NOT NULL CHECK (has_published IN (0, 1))"
    ") WITHOUT ROWID;"
    "CREATE TABLE plan_counts ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  plans INTEGER NOT NULL,"
    "  published INTEGER NOT NULL,"
    "  newest_published INTEGER NOT NULL"
    ");"
    "INSERT INTO plan_heads (plan_id, newest_version, newest_published, has_published)"
    "  SELECT p.plan_id, max(p.version),"
    "    coalesce((SELECT q.status = 'published' FROM plan_versions q"
    "              WHERE q.plan_id = p.plan_id ORDER BY q.version DESC LIMIT 1), 0),"
    "    max(p.status = 'published')"
    "  FROM plan_versions p GROUP BY p.plan_id;"
    "INSERT INTO plan_counts (id, plans, published, newest_published)"
    "  SELECT 1, count(*), coalesce(sum(has_published), 0), coalesce(sum(newest_published), 0)"
    "  FROM plan_heads;"
    "CREATE TRIGGER plan_heads_counted AFTER INSERT ON plan_heads BEGIN"
    "  UPDATE plan_counts SET plans = plans + 1, published = published + NEW.has_published,"
    "    newest_published = newest_published + NEW.newest_published WHERE id = 1;"
    " END;"
    "CREATE TRIGGER plan_heads_recounted AFTER UPDATE ON plan_heads BEGIN"
    "  UPDATE plan_counts SET published = published - OLD.has_published + NEW.has_published,"
    "    newest_published = newest_published - OLD.newest_published + NEW.newest_published"
    "    WHERE id = 1;"
    " END;"
    "CREATE TRIGGER plan_heads_uncounted AFTER DELETE ON plan_heads BEGIN"
    "  UPDATE plan_counts SET plans = plans - 1, published = published - OLD.has_published,"
    "    newest_published = newest_published - OLD.newest_published WHERE id = 1;"
    " END;"
    "CREATE TRIGGER plan_versions_head_ins AFTER INSERT ON plan_versions BEGIN"
    "  INSERT INTO plan_heads (plan_id, newest_version, newest_published, has_published)"
    "    VALUES (NEW.plan_id, NEW.version, NEW.status = 'published', NEW.status = 'published')"
    "    ON CONFLICT (plan_id) DO UPDATE SET"
    "      newest_published = CASE WHEN excluded.newest_version > newest_version"
    "        THEN excluded.newest_published ELSE newest_published END,"
    "      newest_version = max(newest_version, excluded.newest_version),"
    "      has_published = max(has_published, excluded.has_published);"
    " END;"
#define STORE_HEAD_OF(who)                                                                 \
    "  DELETE FROM plan_heads WHERE plan_id = " who ".plan_id;"                             \
    "  INSERT INTO plan_heads (plan_id, newest_version, newest_published, has_published)"  \
    "    SELECT q.plan_id, q.version, q.status = 'published',"                              \
    "      EXISTS (SELECT 1 FROM plan_versions r WHERE r.plan_id = q.plan_id"               \
    "              AND r.status = 'published')"                                             \
    "    FROM plan_versions q WHERE q.plan_id = " who ".plan_id"                            \
    "    ORDER BY q.version DESC LIMIT 1;"
    "CREATE TRIGGER plan_versions_head_del AFTER DELETE ON plan_versions BEGIN"
    STORE_HEAD_OF("OLD")
    " END;"
    "CREATE TRIGGER plan_versions_head_upd AFTER UPDATE OF plan_id, version, status"
    "  ON plan_versions BEGIN"
    STORE_HEAD_OF("OLD")
    STORE_HEAD_OF("NEW")
    " END;",
#undef STORE_HEAD_OF

    /* 7: the hub's seal on each plan version (its inclusion proof in the page it came in,
     * docs/STORAGE.md "Plan seals"), in a table of its own: a plan's row and its seal
     * together pass half a 4 KiB page, so two versions would no longer share one. And the
     * forward-secure seal of each audit entry. Versions stored before seals have none: an
     * enrolled replica refuses to show them, so the next sync is told to pull every plan
     * again. */
    "CREATE TABLE plan_seals ("
    "  version_id INTEGER PRIMARY KEY REFERENCES plan_versions (id) ON DELETE CASCADE,"
    "  seal BLOB NOT NULL"
    ");"
    "ALTER TABLE audit ADD COLUMN seal BLOB;"
    "INSERT INTO sync_state (key, value) SELECT 'seal_repair', '1'"
    "  WHERE EXISTS (SELECT 1 FROM plan_versions) ON CONFLICT (key) DO NOTHING;",
    /* 8: plan versions that are not published leave the replica (docs/STORAGE.md, "Keys per
     * role"): a session without the role key seals them here, to a public key whose secret
     * half only the role key derives; the next clinician session opens them into the clinical
     * file. Rows already in plan_versions move when the replica is next opened by a session
     * that can place them (store_drafts.c: sealing needs code, not SQL). Runs again safely
     * on a replica set back to an earlier version. */
    "CREATE TABLE IF NOT EXISTS sealed_drafts ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id TEXT NOT NULL CHECK (length(plan_id) = 36),"
    "  box BLOB NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS sealed_drafts_plan ON sealed_drafts (plan_id);",
    /* pending_edits and merges belong to the clinical file now (store_clinical.c): no step
     * may touch them; their user_sig column is added there, when missing. */
};

_Static_assert(sizeof schema_steps / sizeof schema_steps[0] == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION must be the number of migration steps");

/* ---- bulk loading ---------------------------------------------------------------------- */

/* The secondary indexes (those migration 1 makes that migration 3 keeps). A snapshot of tens of thousands of
 * plans inserts rows in rowid order, but every secondary index receives them in random key
 * order: once the indexes outgrow the page cache, each insert reads and decrypts pages again.
 * Setting the indexes aside for a multi-page snapshot and building them once at its end
 * (a sort) makes the load linear. */
static const char secondary_indexes_sql[] =
    "CREATE INDEX IF NOT EXISTS plan_identity_plan ON plan_identity (plan_id);"
    "CREATE INDEX IF NOT EXISTS plan_identity_nhs ON plan_identity (nhs_number);";

static const char drop_secondary_indexes_sql[] =
    "DROP INDEX IF EXISTS plan_identity_plan;"
    "DROP INDEX IF EXISTS plan_identity_nhs;";

int store_bulk_begin(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: bulk loading needs a batch");
    store_stmt_cache_clear(s); /* statements that name the indexes are prepared again */
    return db_exec(s->db, drop_secondary_indexes_sql);
}

int store_bulk_end(store *s)
{
    if (!s->in_batch)
        return cmc_fail(CMC_ERR_STATE, "replica: bulk loading needs a batch");
    return db_exec(s->db, secondary_indexes_sql);
}

int store_schema_open(sqlite3 *db)
{
    int rc = db_migrate(db, schema_steps, STORE_SCHEMA_VERSION, NULL);
    if (rc != CMC_OK)
        return rc;
    /* A snapshot interrupted while its indexes were set aside leaves them missing: lookups
     * must never wait for the next sync to be fast again. */
    return db_exec(db, secondary_indexes_sql);
}
