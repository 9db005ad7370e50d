/*
 * plan.h - the care plan model shared by the agent and the hub.
 *
 * A plan is a typed C struct (`struct plan`) holding every field of the JSON form in
 * shared/examples/plan.json. One table of field descriptors (plan_fields) describes the
 * struct: each field's dotted JSON path, its stable wire id, its type, where it lives in the
 * struct and its validation rules. The JSON codec, the msgpack codec, the change document,
 * field-level deltas and the three-way merge all walk that table, so adding a field is one
 * struct member plus one table row.
 *
 * Memory: a plan owns all of its strings and list arrays (allocated with cmc_malloc).
 * plan_free() releases them; plan_init() makes an empty plan; plan_copy() deep-copies.
 * A NULL string means "absent" (JSON null or missing). Enumerated values are stored as
 * small ints whose 0 means absent; booleans are tri-state (PLAN_UNSET, 0, 1).
 *
 * Errors: codecs return CMC_ERR_INVALID (with the field's dotted path in the detail, never
 * its value) for input that breaks a rule, CMC_ERR_CORRUPT for malformed encodings,
 * CMC_ERR_TOO_LARGE past a cap, CMC_ERR_NOMEM. On failure the output plan is left empty
 * (as after plan_init) and owns nothing.
 *
 * Thread-safety: functions touch only their arguments; the tables are constant.
 */
#ifndef CMC_PLAN_H
#define CMC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#define PLAN_UNSET (-1)            /* tri-state boolean: absent */
#define PLAN_ID_LEN 36             /* canonical UUID text */
#define PLAN_NHS_LEN 10
#define PLAN_MAX_PLACES 3          /* first, second (and third) choice */
#define PLAN_MAX_TEXT 4000         /* longest free-text field, bytes */
#define PLAN_MAX_SHORT 200         /* names, phone numbers, ids, locations */
#define PLAN_MAX_ITEMS 64          /* longest list (medications, contacts, ...) */
#define PLAN_MAX_ENCODED (256 * 1024) /* largest msgpack or JSON encoding accepted */
#define PLAN_ITEM_ID_MAX 64        /* list item ids: 1..64 of [A-Za-z0-9._-] */

/* Enumerations: 0 is always "absent"; the names are the JSON strings. */
enum plan_status {
    PLAN_STATUS_NONE = 0,
    PLAN_STATUS_DRAFT,              /* "draft" */
    PLAN_STATUS_NEEDS_FINALISATION, /* "needs_finalisation": admin prepared it for a clinician */
    PLAN_STATUS_AWAITING_APPROVAL,  /* "awaiting_approval" */
    PLAN_STATUS_PUBLISHED,          /* "published" */
};

enum plan_cpr {
    PLAN_CPR_NONE = 0,
    PLAN_CPR_FOR_CPR,       /* "for_cpr" */
    PLAN_CPR_DNACPR,        /* "dnacpr" */
    PLAN_CPR_NOT_DISCUSSED, /* "not_yet_discussed" */
};

enum plan_consent_basis {
    PLAN_CONSENT_NONE = 0,
    PLAN_CONSENT_PATIENT,        /* "patient" */
    PLAN_CONSENT_LPA,            /* "lpa": health-and-welfare lasting power of attorney */
    PLAN_CONSENT_BEST_INTEREST,  /* "best_interest": clinical team, no LPA */
};

/* ---- second edition (ReSPECT-aligned; shared/DOMAIN.md "The plan, second edition") ------ */

/* ReSPECT section 3: where the person sits between sustaining life and comfort. */
enum plan_preference {
    PLAN_PREF_NONE = 0,
    PLAN_PREF_SUSTAIN_LIFE,      /* "prioritise_sustaining_life" */
    PLAN_PREF_LEAN_SUSTAIN_LIFE, /* "lean_sustaining_life" */
    PLAN_PREF_BALANCED,          /* "balanced" */
    PLAN_PREF_LEAN_COMFORT,      /* "lean_comfort" */
    PLAN_PREF_COMFORT,           /* "prioritise_comfort" */
};

/* ReSPECT section 4: one recommendation per treatment. */
enum plan_recommendation {
    PLAN_REC_NONE = 0,
    PLAN_REC_RECOMMENDED,     /* "recommended" */
    PLAN_REC_NOT_RECOMMENDED, /* "not_recommended" */
    PLAN_REC_DISCUSS,         /* "discuss": talk to the person or their representative first */
};

enum plan_capacity {
    PLAN_CAPACITY_NONE = 0,
    PLAN_CAPACITY_YES,         /* "yes" */
    PLAN_CAPACITY_NO,          /* "no" */
    PLAN_CAPACITY_FLUCTUATING, /* "fluctuating" */
};

enum plan_relationship {
    PLAN_REL_NONE = 0,
    PLAN_REL_SPOUSE,       /* "spouse" */
    PLAN_REL_PARTNER,      /* "partner" */
    PLAN_REL_SON,          /* "son" */
    PLAN_REL_DAUGHTER,     /* "daughter" */
    PLAN_REL_PARENT,       /* "parent" */
    PLAN_REL_SIBLING,      /* "sibling" */
    PLAN_REL_GRANDCHILD,   /* "grandchild" */
    PLAN_REL_OTHER_FAMILY, /* "other_family" */
    PLAN_REL_FRIEND,       /* "friend" */
    PLAN_REL_NEIGHBOUR,    /* "neighbour" */
    PLAN_REL_GUARDIAN,     /* "guardian" */
    PLAN_REL_OTHER,        /* "other" */
};

/* Fields of a later edition this build does not know, kept so that re-encoding the plan
 * loses nothing (plan_unpack_keep): the raw msgpack key/value pairs, ascending ids, every id
 * above the highest this build knows. */
struct plan_unknown {
    uint8_t *bytes;
    size_t len;
    uint32_t count; /* pairs */
};

/* A structured recommendation: the value and its free-text note. */
struct plan_rec {
    int value; /* enum plan_recommendation */
    char *note;
};

enum plan_gender {
    PLAN_GENDER_NONE = 0,
    PLAN_GENDER_FEMALE,  /* "female" */
    PLAN_GENDER_MALE,    /* "male" */
    PLAN_GENDER_OTHER,   /* "other" */
    PLAN_GENDER_UNKNOWN, /* "unknown" */
};

enum plan_place {
    PLAN_PLACE_NONE = 0,
    PLAN_PLACE_HOME,       /* "home" */
    PLAN_PLACE_HOSPICE,    /* "hospice" */
    PLAN_PLACE_HOSPITAL,   /* "hospital" */
    PLAN_PLACE_CARE_HOME,  /* "care_home" */
    PLAN_PLACE_OTHER,      /* "other" */
};

/* What an empty allergies list means. A non-empty list is the record itself. */
enum plan_allergies_status {
    PLAN_ALLERGIES_NONE = 0,
    PLAN_ALLERGIES_NKA,          /* "no_known_allergies": a clinician asked and recorded none */
    PLAN_ALLERGIES_NOT_RECORDED, /* "not_recorded": not yet asked; the same as absent */
};

enum plan_severity {
    PLAN_SEVERITY_NONE = 0,
    PLAN_SEVERITY_MILD,     /* "mild" */
    PLAN_SEVERITY_MODERATE, /* "moderate" */
    PLAN_SEVERITY_SEVERE,   /* "severe" */
    PLAN_SEVERITY_UNKNOWN,  /* "unknown" */
};

enum plan_contact_role {
    PLAN_CONTACT_NONE = 0,
    PLAN_CONTACT_GP,              /* "gp" */
    PLAN_CONTACT_PALLIATIVE_TEAM, /* "palliative_team" */
    PLAN_CONTACT_LPA,             /* "lpa" */
    PLAN_CONTACT_NEXT_OF_KIN,     /* "next_of_kin" */
    PLAN_CONTACT_MAIN_CARER,      /* "main_carer" */
    PLAN_CONTACT_KEY_WORKER,      /* "key_worker" */
    PLAN_CONTACT_OTHER,           /* "other" (other professionals involved) */
};

/* List items: every item has an `id` unique within its list; the change document, deltas
 * and the merge address items by it. */
struct plan_diagnosis {
    char *id;
    char *text;
    int primary; /* tri-state */
    char *snomed; /* SNOMED CT concept id (digits), second edition */
};

struct plan_medication {
    char *id;
    char *name;
    char *dose;
    int anticipatory; /* tri-state */
    char *dmd;        /* dm+d id (digits), second edition */
};

struct plan_allergy {
    char *id;
    char *substance;
    char *reaction;
    int severity; /* enum plan_severity */
    char *snomed; /* SNOMED CT concept id (digits), second edition */
};

struct plan_contact {
    char *id;
    int role; /* enum plan_contact_role */
    char *name;
    char *phone;
    char *available;
    int relationship; /* enum plan_relationship, second edition */
};

struct plan_problem {
    char *id;
    char *problem;
    char *guidance;
};

struct plan_places {
    size_t n;
    int v[PLAN_MAX_PLACES]; /* enum plan_place, first choice first */
};

struct plan {
    char *plan_id;    /* UUID, lower-case hex with dashes */
    char *nhs_number; /* 10 digits, Modulus 11 check digit valid */
    struct {
        char *given_name;
        char *family_name;
        char *preferred_name;
        char *date_of_birth; /* YYYY-MM-DD */
        int gender;          /* enum plan_gender */
        char *address;
        char *postcode;
        char *phone;
        char *language;
        int interpreter_needed; /* tri-state */
    } patient;
    char *region;
    char *team;
    char *care_home;
    struct {
        int basis;          /* enum plan_consent_basis */
        char *recorded_at;  /* YYYY-MM-DDTHH:MM:SSZ */
        char *recorded_by;
    } consent;
    struct {
        int decision;        /* enum plan_cpr */
        char *decided_at;    /* YYYY-MM-DD */
        char *decided_by;
        char *form_location;
        char *review_date;   /* YYYY-MM-DD */
        int patient_aware;   /* tri-state */
        int family_aware;    /* tri-state */
    } resuscitation;
    char *ceiling_of_treatment;
    int hospital_admission_wanted; /* tri-state */
    struct {
        int exists; /* tri-state */
        char *location;
        /* second edition */
        char *refuses;        /* what treatment it refuses */
        char *circumstances;  /* in which circumstances */
        int life_sustaining;  /* tri-state: it refuses life-sustaining treatment */
        int signed_witnessed; /* tri-state: written, signed and witnessed */
    } adrt;
    struct plan_places preferred_place_of_care;
    struct plan_places preferred_place_of_death;
    char *prognosis;
    struct plan_diagnosis *diagnoses;
    size_t n_diagnoses;
    struct plan_medication *medications;
    size_t n_medications;
    char *anticipatory_medicines_location;
    struct plan_allergy *allergies;
    size_t n_allergies;
    struct plan_contact *contacts;
    size_t n_contacts;
    char *social_support;
    char *what_matters_to_me;
    struct plan_problem *anticipated_problems;
    size_t n_anticipated_problems;
    char *organ_donation;
    /* record metadata: set by the hub, not editable by a change document */
    int status;       /* enum plan_status */
    int64_t version;  /* 1, 2, ... per plan; 0 = not yet assigned */
    char *approved_by;
    char *approved_at; /* YYYY-MM-DDTHH:MM:SSZ */
    char *review_due;  /* YYYY-MM-DD */
    char *updated_at;  /* YYYY-MM-DDTHH:MM:SSZ */

    /* ---- second edition: all optional; sync/rules.h says which ones a rule needs ---- */
    struct {
        int scale; /* enum plan_preference */
        char *note;
    } preferences;
    struct {
        struct plan_rec cpr, hospital_admission, critical_care, noninvasive_ventilation,
            intubation, iv_antibiotics, nutrition_hydration;
        char *other;
        char *recommended_by;
        char *recommended_at; /* YYYY-MM-DD */
    } recommendations;
    struct {
        int has_capacity;      /* enum plan_capacity: for these decisions */
        char *assessed_at;     /* YYYY-MM-DD */
        char *assessed_by;
        int lpa_health_welfare; /* tri-state: a health-and-welfare LPA exists */
        int lpa_registered;     /* tri-state: registered with the Office of the Public Guardian */
        char *lpa_contact;      /* id of the attorney in contacts */
        char *deputy;           /* court-appointed deputy, name */
        char *parental_responsibility_contact; /* id in contacts, under-18s */
        int gillick_competent;  /* tri-state */
        int imca_involved;      /* tri-state */
    } capacity;
    struct {
        char *needs;       /* sensory or cognitive needs */
        char *adjustments; /* reasonable adjustments */
    } communication;
    struct {
        char *risk_to_staff; /* free text, no diagnosis labels */
        char *access;        /* how to get in; never a key-safe code */
        char *pets;
    } safety;
    struct {
        int icd;                    /* tri-state: implanted cardioverter-defibrillator */
        int icd_shocks_deactivated; /* tri-state */
        int syringe_driver;         /* tri-state */
        int home_oxygen;            /* tri-state */
        char *other;
    } devices;
    char *care_home_address;  /* for a resident: the care home's address */
    int allergies_status;     /* enum plan_allergies_status: NONE = not said */

    struct plan_unknown unknown; /* later-edition fields (plan_unpack_keep), else empty */
};

/* ---- the field table ------------------------------------------------------------------- */

enum plan_ftype {
    PLAN_F_STRING,   /* char *, free text up to max_len bytes of UTF-8 */
    PLAN_F_DATE,     /* char *, "YYYY-MM-DD", a real calendar date */
    PLAN_F_DATETIME, /* char *, "YYYY-MM-DDTHH:MM:SSZ" */
    PLAN_F_UUID,     /* char *, canonical lower-case UUID */
    PLAN_F_NHS,      /* char *, 10 digits with a valid Modulus 11 check digit */
    PLAN_F_BOOL,     /* int, tri-state */
    PLAN_F_ENUM,     /* int, index into enum_names plus 1; 0 absent */
    PLAN_F_PLACES,   /* struct plan_places */
    PLAN_F_INT,      /* int64_t */
    PLAN_F_LIST,     /* pointer + count of items described by `list` */
};

/* How a field's value is held: the five text types (STRING, DATE, DATETIME, UUID, NHS) all
 * hold a char *, so code that moves, compares, encodes or frees values switches on this and
 * keeps type-specific checks (formats, lengths) to the one place that needs them. */
enum plan_fkind {
    PLAN_K_TEXT,   /* char * */
    PLAN_K_BOOL,   /* int, tri-state */
    PLAN_K_ENUM,   /* int, 0 absent */
    PLAN_K_PLACES, /* struct plan_places */
    PLAN_K_INT,    /* int64_t */
    PLAN_K_LIST,   /* pointer + count */
};

enum plan_fflag {
    PLAN_FF_REQUIRED = 1u << 0, /* must be present (non-NULL / non-zero) in a valid plan */
    PLAN_FF_META = 1u << 1,     /* record metadata: not addressable by a change document */
    PLAN_FF_IDENTITY = 1u << 2, /* part of the identity index (name, dob, postcode, NHS) */
    PLAN_FF_KEY = 1u << 3,      /* plan_id / item id: never changed once set */
    PLAN_FF_DRAFT = 1u << 4,    /* required even in a draft (plan_id, nhs_number, names, dob) */
    PLAN_FF_ED2 = 1u << 5,      /* second edition: the JSON form omits it when absent, so a
                                   first-edition plan keeps its exact JSON and msgpack forms */
    PLAN_FF_CODE = 1u << 6,     /* a SNOMED CT or dm+d id: 6 to 18 digits (sync/rules.h) */
    PLAN_FF_REF = 1u << 7,      /* the id of an item in contacts (sync/rules.h) */
};

struct plan_list_desc;

struct plan_field {
    uint8_t wire_id;   /* stable id in the msgpack encoding; never reused */
    const char *path;  /* dotted JSON path, e.g. "resuscitation.decision"; for item fields,
                          the key within the item, e.g. "dose" */
    enum plan_ftype type;
    size_t offset;     /* of the member within struct plan (or within the item struct) */
    unsigned flags;    /* enum plan_fflag */
    size_t max_len;    /* strings: byte cap */
    const char *const *enum_names; /* PLAN_F_ENUM / PLAN_F_PLACES: NULL-terminated names */
    const struct plan_list_desc *list; /* PLAN_F_LIST only */
};

struct plan_list_desc {
    size_t item_size;            /* sizeof the item struct */
    size_t count_offset;         /* offset of the size_t count within struct plan */
    const struct plan_field *fields; /* the item's fields; fields[0] is always "id" */
    size_t n_fields;
    size_t max_items;
};

extern const struct plan_field plan_fields[];
extern const size_t plan_n_fields;

/* How `f`'s value is held (enum plan_fkind). */
enum plan_fkind plan_field_kind(const struct plan_field *f);

/* The descriptor for a dotted top-level path ("resuscitation.decision", "medications"),
 * or NULL. */
const struct plan_field *plan_field_by_path(const char *path);
const struct plan_field *plan_field_by_wire_id(uint8_t wire_id);
/* Within a list's item fields. */
const struct plan_field *plan_item_field_by_name(const struct plan_list_desc *list, const char *name);

/* Names of enumerated values: NULL when out of range or 0. */
const char *plan_enum_name(const struct plan_field *f, int value);
const char *plan_status_name(int status);
const char *plan_cpr_name(int decision);     /* "for_cpr", ... */
const char *plan_place_name(int place);
int plan_status_from_name(const char *name); /* 0 if unknown */

/* ---- single fields and list items (for deltas and the three-way merge) ----------------
 *
 * `base` is the struct a field lives in: struct plan for top-level fields (plan_fields),
 * the item struct for item fields (list->fields). A LIST field compares and copies the
 * whole list (items in order). */

/* 1 if the field's values in a and b are equal (strings by bytes, NULL == NULL). */
int plan_field_equal(const struct plan_field *f, const void *a, const void *b);
/* Replaces dst's value with a deep copy of src's; on CMC_ERR_NOMEM dst is unchanged. */
int plan_field_copy(const struct plan_field *f, void *dst, const void *src);
/* Frees the field's value and sets it absent. */
void plan_field_clear(const struct plan_field *f, void *base);
/* Checks one field's value against its type rules (not whether it is required); the
 * detail names `path`. */
int plan_field_check(const struct plan_field *f, const void *base, const char *path);

/* Items: `item` points at list->item_size bytes. init makes an empty item (all absent),
 * free releases its members and re-inits it, copy deep-copies into an item that owns
 * nothing (on failure dst is left empty). */
void plan_item_init(const struct plan_list_desc *list, void *item);
void plan_item_free(const struct plan_list_desc *list, void *item);
int plan_item_copy(const struct plan_list_desc *list, void *dst, const void *src);
int plan_item_equal(const struct plan_list_desc *list, const void *a, const void *b);
/* The id of an item (its fields[0]); NULL if absent. */
const char *plan_item_id(const struct plan_list_desc *list, const void *item);
/* A list field's items and count within p. */
void *plan_list_items(const struct plan_field *f, const struct plan *p, size_t *n);
/* The item of list field f with id `id`: 1 and *index if found, else 0. */
int plan_list_find(const struct plan_field *f, const struct plan *p, const char *id, size_t *index);
/* 1 if `s` is a well-formed item id (1..PLAN_ITEM_ID_MAX of [A-Za-z0-9._-]). Item ids
 * carry no patient data, so details may name them. */
int plan_item_id_valid(const char *s);

/* ---- UUIDs (plan ids, device ids, idempotency ids) ------------------------------------ */

/* 1 if `s` is a canonical lower-case UUID (8-4-4-4-12 hex digits). */
int plan_uuid_valid(const char *s);
int plan_uuid_valid_n(const char *s, size_t len);
/* A new random (version 4) UUID. */
void plan_uuid_new(char out[PLAN_ID_LEN + 1]);
/* The 16 bytes of a UUID; CMC_ERR_INVALID if `s` is not one. */
int plan_uuid_bytes(const char *s, uint8_t out[16]);

/* ---- lifetime -------------------------------------------------------------------------- */

void plan_init(struct plan *p);
void plan_free(struct plan *p);    /* frees members and re-inits; NULL is a no-op */
/* dst is overwritten (it must own nothing, e.g. fresh or after plan_free); on failure it is
 * left empty. */
int plan_copy(struct plan *dst, const struct plan *src);
/* 1 if every field (including lists, in order, and kept unknown fields) is equal, else 0. */
int plan_equal(const struct plan *a, const struct plan *b);

/* ---- validation ------------------------------------------------------------------------ */

/* 1 if `s` is exactly 10 digits whose Modulus 11 check digit is right, else 0. Spaces are
 * not accepted here; see plan_nhs_normalise. */
int plan_nhs_valid(const char *s);

/* The Modulus 11 check digit (0..9) of an NHS number's first nine digits (ASCII '0'..'9');
 * -1 when no valid number starts with them (the remainder asks for a check digit of 10). */
int plan_nhs_check_digit(const char *nine);
/* Copies `in` to `out` without spaces or dashes ("943 476 5919" -> "9434765919") and checks
 * it: CMC_ERR_INVALID with a clear detail ("NHS number must be 10 digits", "NHS number check
 * digit is wrong") otherwise. */
int plan_nhs_normalise(const char *in, char out[PLAN_NHS_LEN + 1]);

/* How complete a plan must be. A patient or an admin may start a plan that lacks clinical
 * fields; it stays a draft until a clinician completes it. Submission, approval and
 * anything a device is sent as published must pass PLAN_CHECK_COMPLETE. */
enum plan_check {
    PLAN_CHECK_DRAFT,    /* identity (plan_id, nhs_number, names, date of birth) + all types */
    PLAN_CHECK_COMPLETE, /* and every PLAN_FF_REQUIRED field */
    PLAN_CHECK_STORED,   /* as DRAFT, but text an earlier version let through (sync/text.h) is
                            not refused: a plan read back from a device's own replica is shown,
                            its printers escaping that text, rather than hidden from a crew */
};

/* Checks every rule of the table: required fields, types, dates, enum values, lengths, list
 * sizes, unique item ids, at most one primary diagnosis, text a screen could be spoofed
 * with (sync/text.h: controls, bidirectional overrides, invisible characters; newlines
 * only in free text). The detail names the first failing
 * field by its dotted path ("resuscitation.decision: not one of for_cpr, dnacpr,
 * not_yet_discussed", "medications[m2].dose: longer than 200 bytes"), never its value. */
int plan_validate(const struct plan *p, enum plan_check level);

/* The schema edition a plan needs: 2 when any second-edition field holds a value, else 1;
 * PLAN_EDITION_CURRENT + 1 when it carries fields of a later edition this build does not
 * know (p->unknown), which a device must say it cannot show. A device or a hub that knows
 * only the first edition cannot hold an edition-2 plan without losing content
 * (docs/PROTOCOL.md, "Mixed versions"). */
#define PLAN_EDITION_CURRENT 2
int plan_edition(const struct plan *p);

/* ---- JSON (jansson) -------------------------------------------------------------------- */

/* Points jansson's allocator at cmc_malloc/cmc_free (once per process; the JSON functions
 * here call it themselves) so out-of-memory tests reach inside jansson too. */
void plan_json_init(void);

/* Parses the JSON form of examples/plan.json and validates it (PLAN_CHECK_DRAFT). Unknown
 * keys are refused (naming the key). First- and second-edition forms are both accepted. */
int plan_from_json(const char *json, size_t len, struct plan *out);
/* Serialises every field in the order of examples/plan.json; absent first-edition fields are
 * null, empty lists []; absent second-edition fields (and groups) are left out, so a
 * first-edition plan's JSON is what it always was. `pretty` indents. Caller frees *out with cmc_free. */
int plan_to_json(const struct plan *p, int pretty, char **out, size_t *len);

/* ---- msgpack --------------------------------------------------------------------------- */

/* Encoding: a map from wire_id (positive fixint) to value; absent fields are omitted;
 * strings are str, booleans bool, enums their positive int value, places an array of ints,
 * lists an array of maps from item wire_id to value. Keys are written in ascending id order,
 * so equal plans encode to equal bytes. Documented in docs/PROTOCOL.md. Caller frees *out. */
int plan_pack(const struct plan *p, uint8_t **out, size_t *len);
/* Strict decoding: at most PLAN_MAX_ENCODED bytes, nesting and counts bounded by the table,
 * every count checked against the bytes remaining before allocating, unknown wire ids and
 * wrong types refused, trailing bytes refused, then plan_validate(PLAN_CHECK_DRAFT). */
int plan_unpack(const uint8_t *buf, size_t len, struct plan *out);
/* As plan_unpack, but fields with ids above the highest this build knows are kept in
 * out->unknown (each value checked to be one well-formed msgpack value within the depth
 * cap) instead of refused, and plan_pack writes them back after the known ones: an older
 * agent holding a newer plan drops nothing. Unknown ids below the highest known id are
 * refused (ids are never reused). The JSON form and change documents cannot show them. */
int plan_unpack_keep(const uint8_t *buf, size_t len, struct plan *out);
/* As plan_unpack_keep, validated with PLAN_CHECK_STORED: for a plan this device already
 * accepted, read back from its replica. */
int plan_unpack_stored(const uint8_t *buf, size_t len, struct plan *out);

#endif
