/*
 * seed_plan.c - realistic, coherent synthetic London care plans for demos, tests and benchmarks.
 *
 * Plan i of seed S is a pure function of (S, i): each plan draws from its own splitmix64
 * stream, so the same seed gives the same plans whatever else the hub holds, and any one
 * plan can be regenerated alone (hub_seed_plan). NHS numbers are unique within a seed by
 * construction: candidate k maps to 400000000 + (offset + k * stride) mod 400000000 with a
 * stride coprime to the modulus (a bijection), and plan i takes the first candidate among
 * k = 16i .. 16i+15 whose Modulus 11 check digit exists. Every name, address and phone
 * number is invented (phone numbers use Ofcom's drama ranges 020 7946 0xxx and 07700 900xxx).
 *
 * Dates are relative to the day the seed runs (midnight UTC), so the review dates look like a
 * working caseload whenever it is made: about one published plan in ten is overdue. Every
 * plan keeps the consistency rules of sync/rules.h: one treatment profile (comfort,
 * balanced, active) drives the CPR decision, the recommendations, the ceiling and the
 * guidance; consent follows capacity and the LPA; guidance names only prescribed drugs;
 * relatives' names fit the relationship. Storing is in seed.c.
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NHS_RANGE 400000000ull
#define NHS_STRIDE 387420489ull /* 3^18: coprime to 4 * 10^8 */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

#define PICK(r, a) ((a)[rng_below((r), (uint32_t)N_ELEM(a))])

/* ---- vocabulary ------------------------------------------------------------------------ */

struct region {
    const char *name;
    const char *const teams[3];
    const char *const homes[3];
    const char *const districts[4];
    const char *const postcodes[4];
    const char *const hospice;
};

static const struct region regions[] = {
    {"north-central-london",
     {"camden-district-nursing", "islington-community-palliative", "barnet-district-nursing"},
     {"hampstead-lodge", "highgate-view-care-home", "finchley-gardens"},
     {"Camden", "Islington", "Barnet", "Haringey"},
     {"NW1", "N7", "N12", "N17"},
     "North London Hospice"},
    {"north-east-london",
     {"hackney-district-nursing", "newham-community-palliative", "havering-district-nursing"},
     {"clapton-court", "stratford-house", "romford-grange"},
     {"Hackney", "Newham", "Tower Hamlets", "Havering"},
     {"E8", "E15", "E1", "RM1"},
     "St Joseph's Hospice"},
    {"north-west-london",
     {"brent-district-nursing", "ealing-community-palliative", "harrow-district-nursing"},
     {"willesden-manor", "ealing-park-care-home", "harrow-weald-house"},
     {"Brent", "Ealing", "Harrow", "Hillingdon"},
     {"NW10", "W5", "HA1", "UB8"},
     "Marie Curie Hospice Hampstead"},
    {"south-east-london",
     {"peckham-district-nursing", "lewisham-community-palliative", "bromley-district-nursing"},
     {"nunhead-care-home", "blackheath-lodge", "beckenham-court"},
     {"Southwark", "Lewisham", "Bromley", "Greenwich"},
     {"SE15", "SE13", "BR1", "SE10"},
     "St Christopher's Hospice"},
    {"south-west-london",
     {"lambeth-district-nursing", "wandsworth-community-palliative", "croydon-district-nursing"},
     {"brixton-hill-house", "tooting-bec-care-home", "purley-oaks"},
     {"Lambeth", "Wandsworth", "Croydon", "Merton"},
     {"SW9", "SW17", "CR0", "SW19"},
     "Royal Trinity Hospice"},
};

static const char *const given_f[] = {"Margaret", "Patricia", "Joan", "Dorothy", "Irene", "Olive",
                                      "Grace", "Adaeze", "Fatima", "Shirin", "Mei", "Priya",
                                      "Bernadette", "Eileen", "Rosa", "Hannah", "Yetunde", "Ayesha",
                                      "Kathleen", "Doreen"};
static const char *const given_m[] = {"George", "Harold", "Kenneth", "Desmond", "Winston", "Patrick",
                                      "Samuel", "Tariq", "Ravi", "Kwame", "Chidi", "Stanislaw",
                                      "Ahmed", "Dennis", "Leonard", "Arthur", "Hyacinth", "Joseph",
                                      "Francis", "Abdul"};
static const char *const family[] = {"Okafor", "Smith", "Jones", "Patel", "Begum", "Williams",
                                     "O'Connor", "Campbell", "Nowak", "Brown", "Khan", "Taylor",
                                     "Mensah", "Davies", "Hussain", "Evans", "Adeyemi", "Murphy",
                                     "Chen", "Rossi", "Kowalski", "Ahmed", "Thompson", "Osei",
                                     "Reid", "Clarke", "Ali", "Walker", "Shah", "Greene"};
static const char *const streets[] = {"Larkspur Road", "Rye Lane", "Albion Street", "Chatsworth Way",
                                      "Elm Grove", "Queens Road", "Victoria Terrace", "Mill Lane",
                                      "Church Street", "Station Approach", "Park View", "Holly Walk",
                                      "Sycamore Close", "Brunswick Square", "Orchard Place"};
static const char *const languages[] = {"English", "English", "English", "English", "Bengali",
                                        "Polish", "Gujarati", "Turkish", "Somali", "Portuguese",
                                        "Yoruba", "Urdu"};

struct diagnosis {
    const char *text;
    const char *prognosis;
};
static const struct diagnosis diagnoses[] = {
    {"Metastatic breast cancer", "weeks to months"},
    {"Advanced lung cancer", "weeks"},
    {"Pancreatic cancer", "weeks"},
    {"Metastatic prostate cancer", "months"},
    {"Colorectal cancer with liver metastases", "months"},
    {"End-stage heart failure (NYHA IV)", "months"},
    {"Severe COPD with type 2 respiratory failure", "months"},
    {"Advanced dementia (Alzheimer's type)", "months to a year"},
    {"Motor neurone disease", "months"},
    {"End-stage renal disease, not for dialysis", "months"},
    {"Idiopathic pulmonary fibrosis", "months"},
    {"Advanced Parkinson's disease", "months to a year"},
    {"Frailty with recurrent falls", "a year or more"},
    {"Glioblastoma", "weeks to months"},
};
static const char *const comorbid[] = {"Type 2 diabetes", "Hypertension", "Atrial fibrillation",
                                       "Chronic kidney disease stage 3", "Osteoarthritis",
                                       "Depression", "Hypothyroidism", "Previous stroke",
                                       "Macular degeneration", "Osteoporosis"};

struct medicine {
    const char *name;
    const char *dose;
    int anticipatory;
};
static const struct medicine medicines[] = {
    {"Morphine sulfate oral solution", "2.5-5 mg every 4 hours as needed", 0},
    {"Oxycodone modified release", "10 mg twice daily", 0},
    {"Paracetamol", "1 g four times daily", 0},
    {"Furosemide", "40 mg once daily", 0},
    {"Bisoprolol", "2.5 mg once daily", 0},
    {"Apixaban", "2.5 mg twice daily", 0},
    {"Metformin", "500 mg twice daily", 0},
    {"Lansoprazole", "30 mg once daily", 0},
    {"Sertraline", "50 mg once daily", 0},
    {"Levothyroxine", "75 micrograms once daily", 0},
    {"Salbutamol inhaler", "2 puffs as needed", 0},
    {"Dexamethasone", "4 mg once daily in the morning", 0},
    {"Senna", "15 mg at night", 0},
    {"Midazolam injection", "2.5-5 mg s/c as needed for agitation", 1},
    {"Morphine sulfate injection", "2.5-5 mg s/c every 2-4 hours as needed for pain", 1},
    {"Haloperidol injection", "0.5-1.5 mg s/c as needed for nausea", 1},
    {"Levomepromazine injection", "6.25 mg s/c as needed for nausea or agitation", 1},
    {"Hyoscine butylbromide injection", "20 mg s/c as needed for secretions", 1},
};

struct allergy {
    const char *substance;
    const char *reaction;
    int severity;
};
static const struct allergy allergies[] = {
    {"Penicillin", "Anaphylaxis", PLAN_SEVERITY_SEVERE},
    {"Penicillin", "Rash", PLAN_SEVERITY_MILD},
    {"Codeine", "Vomiting", PLAN_SEVERITY_MODERATE},
    {"Latex", "Contact dermatitis", PLAN_SEVERITY_MILD},
    {"Trimethoprim", "Swollen lips", PLAN_SEVERITY_MODERATE},
    {"Ibuprofen", "Bronchospasm", PLAN_SEVERITY_SEVERE},
    {"Chlorhexidine", "Hives", PLAN_SEVERITY_MODERATE},
    {"Peanuts", "Anaphylaxis", PLAN_SEVERITY_SEVERE},
};

/* Anticipatory guidance: `drug` (when set) must be prescribed for the problem to be chosen,
 * `profiles` says which treatment profiles it fits (guidance that says not to admit belongs
 * to comfort-focused plans only), `needs_dx` a diagnosis it needs. */
struct problem {
    const char *problem;
    const char *guidance;
    const char *drug;
    unsigned profiles;
    const char *needs_dx;
};

enum { PROF_COMFORT, PROF_BALANCED, PROF_ACTIVE, PROF_N };
#define P_ALL 7u
#define P_COMFORT (1u << PROF_COMFORT)
#define P_NOT_COMFORT ((1u << PROF_BALANCED) | (1u << PROF_ACTIVE))

static const struct problem problems[] = {
    {"Breathlessness", "Sit upright, open a window or use a fan, give oral morphine as prescribed; "
                       "call the 24/7 palliative line if not settling within 30 minutes.",
     "morphine sulfate oral", P_ALL, NULL},
    {"Pain", "Give the prescribed breakthrough dose; if two doses within 4 hours do not help, use "
             "the anticipatory injection and call the palliative team.", "injection", P_ALL, NULL},
    {"Agitation or distress", "Look for reversible causes (pain, full bladder, constipation); "
                              "midazolam from the just-in-case box as prescribed.",
     "midazolam", P_ALL, NULL},
    {"Seizures", "Keep safe, time the seizure; s/c midazolam if longer than 5 minutes. "
                 "Do not admit unless the family wish it.", "midazolam", P_COMFORT, NULL},
    {"Catastrophic bleed", "Dark towels are in the bedroom; stay with the patient, give midazolam "
                           "s/c, support the family. Not for transfer.", "midazolam", P_COMFORT, NULL},
    {"Noisy respiratory secretions", "Reposition onto the side; hyoscine butylbromide s/c as "
                                     "prescribed; reassure the family that this is not distressing.",
     "hyoscine", P_ALL, NULL},
    {"Nausea and vomiting", "Haloperidol s/c as prescribed; check for constipation; small sips.",
     "haloperidol", P_ALL, NULL},
    {"Fall at home", "Check for injury and assess; if uninjured, help up and leave at home with "
                     "carers; inform the GP the next working day.", NULL, P_ALL, NULL},
    {"Hypoglycaemia", "Check glucose; oral glucose if able to swallow; if not, follow the diabetes "
                      "plan in the folder and call the GP or 111.", NULL, P_ALL, "diabetes"},
    {"Chest infection", "Oral antibiotics from the rescue pack if the patient wishes; comfort "
                        "measures otherwise. Not for hospital admission.", NULL, P_COMFORT, NULL},
    {"Chest infection", "Oral antibiotics from the rescue pack; if not improving within 48 hours, "
                        "for hospital assessment.", NULL, P_NOT_COMFORT, NULL},
};

/* Each treatment profile: its ceilings, preference points and recommendations (CPR is set
 * with the decision). */
struct profile {
    const char *ceilings[2];
    int scale[2];
    int admission, critical_care, niv, intubation, antibiotics, nutrition;
};
static const struct profile profiles[PROF_N] = {
    {{"Prioritise comfort. Treat reversible causes at home; avoid admission unless symptoms "
      "cannot be controlled.",
      "Comfort care only at home; not for hospital transfer."},
     {PLAN_PREF_COMFORT, PLAN_PREF_LEAN_COMFORT},
     PLAN_REC_DISCUSS, PLAN_REC_NOT_RECOMMENDED, PLAN_REC_NOT_RECOMMENDED, PLAN_REC_NOT_RECOMMENDED,
     PLAN_REC_DISCUSS, PLAN_REC_NOT_RECOMMENDED},
    {{"Ward-based care including antibiotics and fluids, but not for intensive care or "
      "non-invasive ventilation.",
      "Balance of sustaining life and comfort: for oral antibiotics and hospital assessment if "
      "the patient agrees at the time."},
     {PLAN_PREF_BALANCED, PLAN_PREF_BALANCED},
     PLAN_REC_RECOMMENDED, PLAN_REC_NOT_RECOMMENDED, PLAN_REC_NOT_RECOMMENDED, PLAN_REC_NOT_RECOMMENDED,
     PLAN_REC_RECOMMENDED, PLAN_REC_DISCUSS},
    {{"Full active treatment; for admission and intensive care if needed.",
      "Full active treatment; for admission, intensive care and ventilation if needed."},
     {PLAN_PREF_SUSTAIN_LIFE, PLAN_PREF_LEAN_SUSTAIN_LIFE},
     PLAN_REC_RECOMMENDED, PLAN_REC_RECOMMENDED, PLAN_REC_RECOMMENDED, PLAN_REC_DISCUSS,
     PLAN_REC_RECOMMENDED, PLAN_REC_DISCUSS},
};

static const char *const matters[] = {
    "Staying at home with my cat.",
    "Being with my family and hearing my music.",
    "Seeing my grandchildren every weekend.",
    "Not going back into hospital.",
    "My faith: please call the imam (or the priest) if I am dying.",
    "Being kept clean and comfortable, and my dignity respected.",
    "Going out to the garden when I can.",
    "Having my family with me, whatever the hour.",
};
static const char *const support[] = {
    "Lives alone; carers four times a day.",
    "Lives with spouse, who is the main carer.",
    "Family live nearby and visit daily.",
    "Lives with family; district nurses twice weekly.",
    "Resident in a care home with 24-hour nursing.",
    "Neighbour holds a key; no family in London.",
};
static const char *const form_places[] = {
    "Purple folder on the kitchen table", "In the red folder by the front door",
    "On the fridge, in a clear wallet", "In the bedside drawer", "No paper form",
};
static const char *const med_places[] = {
    "Just-in-case box in the bedroom wardrobe", "Locked cupboard in the kitchen",
    "Box on top of the fridge", "Bedside cabinet, top drawer",
};
static const char *const gps[] = {"Dr Amira Shah", "Dr Tom Hughes", "Dr Ngozi Eze", "Dr Lena Fischer",
                                  "Dr Sunil Rao", "Dr Claire O'Brien", "Dr David Cohen",
                                  "Dr Farah Siddiqui"};
static const char *const practices[] = {"Rye Lane Surgery", "Park Road Medical Centre",
                                        "The Grove Practice", "Riverside Health Centre",
                                        "Church Street Surgery", "High Street Medical Practice"};
static const char *const organ[] = {"Wishes to donate corneas", "Does not wish to donate",
                                    "Undecided; family to be asked",
                                    "Registered organ donor; tissue donation only"};
static const char *const adrt_refusals[] = {
    "Intubation and mechanical ventilation", "Clinically assisted nutrition by tube",
    "Intravenous antibiotics for pneumonia"};
static const char *const comm_needs[] = {
    "Hard of hearing; hearing aids are on the bedside table",
    "Registered blind; please say who you are when you come in",
    "Finds long sentences hard when tired; one question at a time"};
static const char *const pets[] = {"Cat, friendly", "Dog, kept in the kitchen when staff visit",
                                   "Budgie"};

/* SNOMED CT concept ids for the diagnoses above (and the comorbidities), in table order. */
static const char *const dx_snomed[] = {"254837009", "363358000", "363418001", "399068003",
                                        "363406005", "84114007",  "13645005",  "26929004",
                                        "37340000",  "46177005",  "700250006", "49049000",
                                        "248279007", "393563007"};
static const char *const comorbid_snomed[] = {"44054006",  "38341003", "49436004", "433144002",
                                              "396275006", "35489007", "40930008", "230690007",
                                              "267718000", "64859006"};

/* ---- building one plan ----------------------------------------------------------------- */

struct gen {
    struct rng r;
    int err;
};

static void gen_str(struct gen *g, char **dst, const char *s)
{
    if (g->err != CMC_OK)
        return;
    cmc_free(*dst);
    if ((*dst = cmc_strdup(s)) == NULL)
        g->err = cmc_fail(CMC_ERR_NOMEM, "seed");
}

__attribute__((format(printf, 3, 4))) static void gen_fmt(struct gen *g, char **dst,
                                                          const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    gen_str(g, dst, buf);
}

static void gen_date(struct gen *g, char **dst, int64_t t, int date_only)
{
    char buf[21];
    plat_format_time(t, buf);
    if (date_only)
        buf[10] = '\0';
    gen_str(g, dst, buf);
}

static void *gen_items(struct gen *g, size_t n, size_t size)
{
    void *p;
    if (g->err != CMC_OK || n == 0)
        return NULL;
    if ((p = cmc_calloc(n, size)) == NULL)
        g->err = cmc_fail(CMC_ERR_NOMEM, "seed");
    return p;
}

static int nhs_check_digit(uint64_t n9)
{
    int sum = 0;
    for (int i = 8; i >= 0; i--) {
        sum += (int)(n9 % 10) * (10 - i);
        n9 /= 10;
    }
    int r = 11 - sum % 11;
    return r == 11 ? 0 : r; /* 10 means no valid number */
}

static void seed_nhs(uint64_t seed, long i, char out[PLAN_NHS_LEN + 1])
{
    uint64_t off = (seed * 0x9e3779b97f4a7c15ull) % NHS_RANGE;
    for (uint64_t j = 0; j < 16; j++) {
        uint64_t k = 16u * (uint64_t)i + j;
        uint64_t n9 = 400000000ull + (off + (k % NHS_RANGE) * NHS_STRIDE) % NHS_RANGE;
        int cd = nhs_check_digit(n9);
        if (cd != 10) {
            snprintf(out, PLAN_NHS_LEN + 1, "%09u%c", (unsigned)(n9 % 1000000000u),
                     (char)('0' + cd % 10));
            return;
        }
    }
    /* (1/11)^16: never in practice; keep the last candidate's shape valid anyway */
    snprintf(out, PLAN_NHS_LEN + 1, "4000000004");
}

/* What one plan's steps share: the draws that later steps must agree with. */
struct seed_plan {
    struct gen g;
    long i;
    const struct region *reg;
    int female, in_home, home, partial, profile, lpa, capacity;
    const char *family, *gp, *practice;
    const struct diagnosis *dx;
    int64_t today;      /* midnight UTC of the day the seed runs */
    int64_t consent_at; /* and approval, for published plans */
    int64_t approved_at;
    int review_days;
};

static const char *given_name(struct rng *r, int female)
{
    return female ? PICK(r, given_f) : PICK(r, given_m);
}

/* "hampstead-lodge" -> "Hampstead Lodge" */
static void home_title(const char *slug, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t j = 0; slug[j] != '\0' && k + 1 < cap; j++) {
        char ch = slug[j] == '-' ? ' ' : slug[j];
        if (j == 0 || slug[j - 1] == '-')
            ch = (char)(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
        out[k++] = ch;
    }
    out[k] = '\0';
}

static void seed_status(struct seed_plan *s, int *status, int *extra_draft)
{
    int roll = (int)rng_below(&s->g.r, 100);
    /* mostly published, some with a newer draft, drafts, awaiting approval, needs finalisation */
    *extra_draft = 0;
    if (roll < 70) {
        *status = PLAN_STATUS_PUBLISHED;
    } else if (roll < 78) {
        *status = PLAN_STATUS_PUBLISHED;
        *extra_draft = 1;
    } else if (roll < 88) {
        *status = PLAN_STATUS_DRAFT;
    } else if (roll < 94) {
        *status = PLAN_STATUS_AWAITING_APPROVAL;
    } else {
        *status = PLAN_STATUS_NEEDS_FINALISATION;
    }
    s->partial = (*status == PLAN_STATUS_DRAFT || *status == PLAN_STATUS_NEEDS_FINALISATION) &&
                 rng_below(&s->g.r, 2) == 0;
}

/* Plan id, NHS number, the person and where they live (a care-home resident lives at the
 * home's address). */
static void seed_identity(struct seed_plan *s, uint64_t seed, struct plan *p)
{
    struct gen *g = &s->g;
    struct rng *r = &g->r;
    uint8_t u[16];
    char nhs[PLAN_NHS_LEN + 1];
    for (size_t k = 0; k < sizeof u; k += 8) {
        uint64_t x = rng_next(r);
        memcpy(u + k, &x, 8);
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    gen_fmt(g, &p->plan_id,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
            u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    seed_nhs(seed, s->i, nhs);
    gen_str(g, &p->nhs_number, nhs);

    const char *given = given_name(r, s->female);
    gen_str(g, &p->patient.given_name, given);
    gen_str(g, &p->patient.family_name, s->family);
    if (rng_below(r, 3) == 0)
        gen_fmt(g, &p->patient.preferred_name, "%.3s", given);
    gen_date(g, &p->patient.date_of_birth,
             s->today - (int64_t)(50 + rng_below(r, 50)) * 365 * 86400 -
                 (int64_t)rng_below(r, 365) * 86400, 1);
    p->patient.gender = s->female ? PLAN_GENDER_FEMALE : PLAN_GENDER_MALE;
    uint32_t d = rng_below(r, 4);
    if (s->in_home) {
        /* the home's own address, the same for every resident */
        char title[64];
        size_t hid = (size_t)(s->reg - regions) * 3 + (size_t)s->home;
        d = (uint32_t)(hid % 4);
        home_title(s->reg->homes[s->home], title, sizeof title);
        gen_fmt(g, &p->patient.address, "%s, %zu %s, %s, London", title, 10 + hid * 7,
                streets[hid % N_ELEM(streets)], s->reg->districts[d]);
        gen_fmt(g, &p->patient.postcode, "%s %zu%c%c", s->reg->postcodes[d], 1 + hid % 9,
                'A' + (int)(hid % 26), 'B' + (int)(hid % 24));
        gen_str(g, &p->care_home, s->reg->homes[s->home]);
        if (p->patient.address != NULL && p->patient.postcode != NULL)
            gen_fmt(g, &p->care_home_address, "%s %s", p->patient.address, p->patient.postcode);
    } else {
        gen_fmt(g, &p->patient.address, "%s%u %s, %s, London", rng_below(r, 3) == 0 ? "Flat 2, " : "",
                1 + rng_below(r, 180), PICK(r, streets), s->reg->districts[d]);
        gen_fmt(g, &p->patient.postcode, "%s %u%c%c", s->reg->postcodes[d], 1 + rng_below(r, 9),
                'A' + (int)rng_below(r, 26), 'A' + (int)rng_below(r, 26));
    }
    gen_fmt(g, &p->patient.phone, "020 7946 0%03u", rng_below(r, 1000));
    const char *lang = PICK(r, languages);
    gen_str(g, &p->patient.language, lang);
    p->patient.interpreter_needed = strcmp(lang, "English") != 0 && rng_below(r, 2) == 0;
    gen_str(g, &p->region, s->reg->name);
    gen_str(g, &p->team, s->reg->teams[rng_below(r, 3)]);
}

static int has_dx(const struct plan *p, const char *what)
{
    for (size_t k = 0; what != NULL && k < p->n_diagnoses; k++)
        if (strstr(p->diagnoses[k].text, what) != NULL)
            return 1;
    return what == NULL;
}

static int ci_contains(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (; *text != '\0'; text++)
        if (strncasecmp(text, word, n) == 0)
            return 1;
    return 0;
}

static int has_med(const struct plan *p, const char *what)
{
    for (size_t k = 0; what != NULL && k < p->n_medications; k++)
        if (ci_contains(p->medications[k].name, what))
            return 1;
    return what == NULL;
}

static void add_medicine(struct seed_plan *s, struct plan *p, const struct medicine *m)
{
    struct plan_medication *pm = &p->medications[p->n_medications++];
    gen_fmt(&s->g, &pm->id, "m%zu", p->n_medications);
    gen_str(&s->g, &pm->name, m->name);
    gen_str(&s->g, &pm->dose, m->dose);
    pm->anticipatory = m->anticipatory;
}

/* Diagnoses (with SNOMED CT codes for most plans), regular medicines, the just-in-case
 * medicines a comfort-focused plan usually has, allergies. */
static void seed_clinical(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    struct rng *r = &g->r;
    int coded = rng_below(r, 10) < 7;
    gen_str(g, &p->prognosis, s->dx->prognosis);
    p->n_diagnoses = 1 + rng_below(r, 3);
    p->diagnoses = gen_items(g, p->n_diagnoses, sizeof *p->diagnoses);
    for (size_t k = 0; p->diagnoses != NULL && k < p->n_diagnoses; k++) {
        size_t c = (k * 3 + (size_t)s->i) % N_ELEM(comorbid);
        gen_fmt(g, &p->diagnoses[k].id, "d%zu", k + 1);
        gen_str(g, &p->diagnoses[k].text, k == 0 ? s->dx->text : comorbid[c]);
        p->diagnoses[k].primary = k == 0;
        if (coded)
            gen_str(g, &p->diagnoses[k].snomed,
                    k == 0 ? dx_snomed[s->dx - diagnoses] : comorbid_snomed[c]);
    }
    /* regular medicines, then the anticipatory set */
    size_t regular = 1 + rng_below(r, 5), jic = 0;
    static const unsigned jic_chance[PROF_N] = {85, 40, 10};
    if (rng_below(r, 100) < jic_chance[s->profile])
        jic = 3 + rng_below(r, 2);
    p->medications = gen_items(g, regular + jic, sizeof *p->medications);
    uint32_t m0 = rng_below(r, 13);
    for (size_t k = 0; p->medications != NULL && k < regular; k++)
        add_medicine(s, p, &medicines[(m0 + k * 5) % 13]);
    for (size_t k = 0; p->medications != NULL && k < jic; k++)
        add_medicine(s, p, &medicines[13 + (k == 3 ? 3 + rng_below(r, 2) : k)]);
    gen_str(g, &p->anticipatory_medicines_location,
            s->in_home ? "Care home treatment room, labelled with the resident's name"
                       : PICK(r, med_places));
    p->n_allergies = rng_below(r, 3);
    p->allergies = gen_items(g, p->n_allergies, sizeof *p->allergies);
    uint32_t a0 = rng_below(r, (uint32_t)N_ELEM(allergies));
    for (size_t k = 0; p->allergies != NULL && k < p->n_allergies; k++) {
        const struct allergy *a = &allergies[(a0 + k * 3) % N_ELEM(allergies)];
        gen_fmt(g, &p->allergies[k].id, "a%zu", k + 1);
        gen_str(g, &p->allergies[k].substance, a->substance);
        gen_str(g, &p->allergies[k].reaction, a->reaction);
        p->allergies[k].severity = a->severity;
        if (coded && strcmp(a->substance, "Penicillin") == 0)
            gen_str(g, &p->allergies[k].snomed, "91936005");
    }
    /* a positive "no known allergies" on about a third of the plans listing none (drawn from
     * a0, so every later draw, and so every other seeded value, stays as it was) */
    if (p->n_allergies == 0 && a0 % 3 == 0)
        p->allergies_status = PLAN_ALLERGIES_NKA;
}

/* GP, palliative line, then family and friends whose names fit their relationship. The
 * attorney, when there is an LPA, is one of them. */
static void seed_contacts(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    struct rng *r = &g->r;
    static const int rels[] = {PLAN_REL_SON,    PLAN_REL_DAUGHTER,     PLAN_REL_SPOUSE,
                               PLAN_REL_PARTNER, PLAN_REL_OTHER_FAMILY, PLAN_REL_FRIEND,
                               PLAN_REL_NEIGHBOUR};
    size_t kin = (s->lpa ? 1 : 0) + rng_below(r, 3);
    p->contacts = gen_items(g, 2 + kin, sizeof *p->contacts);
    if (p->contacts == NULL)
        return;
    p->n_contacts = 2 + kin;
    for (size_t k = 0; k < p->n_contacts; k++) {
        struct plan_contact *c = &p->contacts[k];
        gen_fmt(g, &c->id, "c%zu", k + 1);
        if (k == 0) {
            c->role = PLAN_CONTACT_GP;
            gen_fmt(g, &c->name, "%s, %s", s->gp, s->practice);
            gen_fmt(g, &c->phone, "020 7946 0%03u", rng_below(r, 1000));
            gen_str(g, &c->available, "08:00-18:30 weekdays");
            continue;
        }
        if (k == 1) {
            c->role = PLAN_CONTACT_PALLIATIVE_TEAM;
            gen_fmt(g, &c->name, "%s 24/7 advice line", s->reg->hospice);
            gen_fmt(g, &c->phone, "020 7946 0%03u", rng_below(r, 1000));
            gen_str(g, &c->available, "24/7");
            continue;
        }
        int rel = PICK(r, rels);
        int female = rel == PLAN_REL_SON        ? 0
                     : rel == PLAN_REL_DAUGHTER ? 1
                     : rel == PLAN_REL_SPOUSE   ? !s->female
                                                : (int)rng_below(r, 2);
        int same_family = rel == PLAN_REL_SON || rel == PLAN_REL_SPOUSE ||
                          (rel != PLAN_REL_FRIEND && rel != PLAN_REL_NEIGHBOUR && rng_below(r, 3) != 0);
        c->relationship = rel;
        c->role = k == 2 ? (s->lpa ? PLAN_CONTACT_LPA : PLAN_CONTACT_NEXT_OF_KIN)
                         : (rng_below(r, 2) ? PLAN_CONTACT_MAIN_CARER : PLAN_CONTACT_OTHER);
        gen_fmt(g, &c->name, "%s %s", given_name(r, female),
                same_family ? s->family : PICK(r, family));
        gen_fmt(g, &c->phone, "07700 900%03u", rng_below(r, 1000));
        gen_str(g, &c->available, rng_below(r, 2) ? "any time" : "evenings and weekends");
    }
}

/* Consent, capacity and representation, agreeing with each other: capacity "no" consents
 * through a registered LPA when there is one, else in the person's best interest. */
static void seed_consent(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    if (s->partial)
        return;
    p->capacity.has_capacity = s->capacity;
    gen_date(g, &p->capacity.assessed_at, s->consent_at, 1);
    gen_str(g, &p->capacity.assessed_by, s->gp);
    p->capacity.lpa_health_welfare = s->lpa;
    if (s->lpa) {
        p->capacity.lpa_registered = 1;
        gen_str(g, &p->capacity.lpa_contact, "c3");
    }
    if (s->capacity == PLAN_CAPACITY_NO) {
        p->consent.basis = s->lpa ? PLAN_CONSENT_LPA : PLAN_CONSENT_BEST_INTEREST;
        p->capacity.imca_involved = !s->lpa && p->n_contacts <= 2;
    } else {
        p->consent.basis = PLAN_CONSENT_PATIENT;
    }
    gen_date(g, &p->consent.recorded_at, s->consent_at, 0);
    gen_str(g, &p->consent.recorded_by, s->gp);
}

static void set_rec(struct seed_plan *s, struct plan_rec *rec, int value, const char *note)
{
    rec->value = value;
    if (note != NULL)
        gen_str(&s->g, &rec->note, note);
}

/* The CPR decision, the recommendations and the ceiling all follow the plan's treatment
 * profile, so they cannot contradict each other. */
static void seed_decisions(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    struct rng *r = &g->r;
    const struct profile *pr = &profiles[s->profile];
    unsigned pick = rng_below(r, 2);
    int64_t cpr_review = s->consent_at + (int64_t)s->review_days * 86400;

    p->preferences.scale = pr->scale[pick];
    gen_str(g, &p->ceiling_of_treatment, pr->ceilings[pick]);
    p->hospital_admission_wanted = s->profile == PROF_COMFORT ? 0
                                   : s->profile == PROF_ACTIVE ? 1
                                   : rng_below(r, 2) ? 1 : PLAN_UNSET;
    if (s->profile == PROF_COMFORT && pick == 1)
        set_rec(s, &p->recommendations.hospital_admission, PLAN_REC_NOT_RECOMMENDED, NULL);
    else
        set_rec(s, &p->recommendations.hospital_admission, pr->admission, NULL);
    set_rec(s, &p->recommendations.critical_care, pr->critical_care, NULL);
    set_rec(s, &p->recommendations.noninvasive_ventilation, pr->niv, NULL);
    set_rec(s, &p->recommendations.intubation, pr->intubation, NULL);
    set_rec(s, &p->recommendations.iv_antibiotics, pr->antibiotics, NULL);
    set_rec(s, &p->recommendations.nutrition_hydration, pr->nutrition, NULL);
    if (s->partial)
        return; /* a draft started by the patient or an admin: the clinician decides CPR */
    int dnacpr = s->profile == PROF_COMFORT || (s->profile == PROF_BALANCED && rng_below(r, 100) < 85);
    int discussed = dnacpr || rng_below(r, 10) < 7;
    gen_str(g, &p->recommendations.recommended_by, s->gp);
    gen_date(g, &p->recommendations.recommended_at, s->consent_at, 1);
    if (dnacpr) {
        p->resuscitation.decision = PLAN_CPR_DNACPR;
        set_rec(s, &p->recommendations.cpr, PLAN_REC_NOT_RECOMMENDED,
                "CPR would not be successful and would cause harm; discussed with the patient"
                " or their representative.");
    } else if (discussed) {
        p->resuscitation.decision = PLAN_CPR_FOR_CPR;
        set_rec(s, &p->recommendations.cpr, PLAN_REC_RECOMMENDED, NULL);
    } else {
        p->resuscitation.decision = PLAN_CPR_NOT_DISCUSSED;
        set_rec(s, &p->recommendations.cpr, PLAN_REC_DISCUSS, NULL);
        return;
    }
    gen_date(g, &p->resuscitation.decided_at, s->consent_at, 1);
    gen_str(g, &p->resuscitation.decided_by, s->gp);
    if (dnacpr)
        gen_str(g, &p->resuscitation.form_location,
                s->in_home ? "With the care home's nursing records" : PICK(r, form_places));
    gen_date(g, &p->resuscitation.review_date, cpr_review, 1);
    p->resuscitation.patient_aware = s->capacity != PLAN_CAPACITY_NO;
    p->resuscitation.family_aware = p->n_contacts > 2 ? 1 : PLAN_UNSET;
}

/* Anticipated problems whose guidance fits the profile and names only prescribed drugs. */
static void seed_problems(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    size_t want = 1 + rng_below(&g->r, 4), k = 0;
    uint32_t p0 = rng_below(&g->r, (uint32_t)N_ELEM(problems));
    p->anticipated_problems = gen_items(g, want, sizeof *p->anticipated_problems);
    for (size_t j = 0; p->anticipated_problems != NULL && j < N_ELEM(problems) && k < want; j++) {
        const struct problem *pr = &problems[(p0 + j * 3) % N_ELEM(problems)];
        if (!(pr->profiles & (1u << s->profile)) || !has_med(p, pr->drug) || !has_dx(p, pr->needs_dx))
            continue;
        struct plan_problem *pp = &p->anticipated_problems[k++];
        gen_fmt(g, &pp->id, "p%zu", k);
        gen_str(g, &pp->problem, pr->problem);
        gen_str(g, &pp->guidance, pr->guidance);
    }
    p->n_anticipated_problems = k;
    if (k == 0) {
        cmc_free(p->anticipated_problems);
        p->anticipated_problems = NULL;
    }
}

/* Wishes, ADRT, communication, safety and access, devices. */
static void seed_wishes(struct seed_plan *s, struct plan *p)
{
    struct gen *g = &s->g;
    struct rng *r = &g->r;
    gen_str(g, &p->social_support, s->in_home ? support[4] : PICK(r, support));
    gen_str(g, &p->what_matters_to_me, PICK(r, matters));
    gen_str(g, &p->organ_donation, PICK(r, organ));
    p->preferred_place_of_care.n = 2;
    p->preferred_place_of_care.v[0] = s->in_home ? PLAN_PLACE_CARE_HOME : PLAN_PLACE_HOME;
    p->preferred_place_of_care.v[1] = PLAN_PLACE_HOSPICE;
    p->preferred_place_of_death.n = 1 + rng_below(r, 2);
    p->preferred_place_of_death.v[0] = s->in_home ? PLAN_PLACE_CARE_HOME : PLAN_PLACE_HOME;
    p->preferred_place_of_death.v[1] = PLAN_PLACE_HOSPICE;
    p->adrt.exists = s->profile != PROF_ACTIVE && rng_below(r, 6) == 0;
    if (p->adrt.exists == 1) {
        /* a balanced plan still recommends antibiotics and feeding: it refuses ventilation */
        const char *what = s->profile == PROF_COMFORT ? PICK(r, adrt_refusals) : adrt_refusals[0];
        gen_str(g, &p->adrt.location, "Copy with GP and in the folder by the bed");
        gen_str(g, &p->adrt.refuses, what);
        gen_str(g, &p->adrt.circumstances, "If I cannot make or communicate the decision myself");
        p->adrt.life_sustaining = 1;
        p->adrt.signed_witnessed = 1;
    }
    if (rng_below(r, 5) == 0)
        gen_str(g, &p->communication.needs, PICK(r, comm_needs));
    if (!s->in_home) {
        if (rng_below(r, 2) == 0)
            gen_fmt(g, &p->safety.access, "Key safe by the front door; the code is held by the %s"
                                          " team", p->team);
        if (rng_below(r, 4) == 0)
            gen_str(g, &p->safety.pets, PICK(r, pets));
    }
    if (strstr(s->dx->text, "heart failure") != NULL && rng_below(r, 10) < 4) {
        p->devices.icd = 1;
        p->devices.icd_shocks_deactivated = s->profile == PROF_COMFORT;
    }
    if (strstr(s->dx->text, "COPD") != NULL || strstr(s->dx->text, "fibrosis") != NULL)
        p->devices.home_oxygen = rng_below(r, 10) < 6;
    if (s->profile == PROF_COMFORT && strcmp(s->dx->prognosis, "weeks") == 0 && rng_below(r, 3) == 0)
        p->devices.syringe_driver = 1;
}

/* Record metadata. A published plan was approved within the last ~13 months and is due for
 * review 12 months (6 for a prognosis of weeks) after approval, so about one in ten is
 * overdue on the day the seed runs. */
static void seed_record(struct seed_plan *s, struct plan *p, int status)
{
    struct gen *g = &s->g;
    p->status = status;
    p->version = 1;
    if (status == PLAN_STATUS_PUBLISHED) {
        gen_str(g, &p->approved_by, s->gp);
        gen_date(g, &p->approved_at, s->approved_at, 0);
        gen_date(g, &p->review_due, s->approved_at + (int64_t)s->review_days * 86400, 1);
        gen_date(g, &p->updated_at, s->approved_at, 0);
    } else {
        gen_date(g, &p->updated_at, s->consent_at, 0);
    }
}

/* The first draws of a plan: who it is, where, and the profile every later step follows. */
static void seed_draws(struct seed_plan *s, int status)
{
    struct rng *r = &s->g.r;
    s->reg = &PICK(r, regions);
    s->female = (int)rng_below(r, 2);
    s->family = PICK(r, family);
    s->in_home = rng_below(r, 100) < 15;
    s->home = (int)rng_below(r, 3);
    s->gp = PICK(r, gps);
    s->practice = PICK(r, practices);
    s->dx = &PICK(r, diagnoses);
    uint32_t roll = rng_below(r, 100);
    s->profile = roll < 60 ? PROF_COMFORT : roll < 85 ? PROF_BALANCED : PROF_ACTIVE;
    int dementia = strstr(s->dx->text, "dementia") != NULL;
    /* full active treatment is not what advanced dementia or a prognosis of weeks plans for */
    if (s->profile == PROF_ACTIVE && (dementia || strncmp(s->dx->prognosis, "weeks", 5) == 0))
        s->profile = PROF_BALANCED;
    roll = rng_below(r, 100);
    if (dementia)
        s->capacity = roll < 80 ? PLAN_CAPACITY_NO : PLAN_CAPACITY_FLUCTUATING;
    else
        s->capacity = roll < 85 ? PLAN_CAPACITY_YES : roll < 95 ? PLAN_CAPACITY_FLUCTUATING
                                                                 : PLAN_CAPACITY_NO;
    s->lpa = rng_below(r, 100) < (s->capacity == PLAN_CAPACITY_NO ? 55u : 25u);
    int weeks = strcmp(s->dx->prognosis, "weeks") == 0;
    s->review_days = weeks ? 182 : 365;
    /* published: approved 1 day to ~13 months ago (short prognoses recently); otherwise the
     * plan has been in preparation for one to five months */
    if (status == PLAN_STATUS_PUBLISHED)
        s->approved_at = s->today - (int64_t)(1 + rng_below(r, weeks ? 190 : 400)) * 86400 -
                         (int64_t)rng_below(r, 36000);
    else
        s->approved_at = s->today - (int64_t)(35 + rng_below(r, 120)) * 86400;
    s->consent_at = s->approved_at - (int64_t)(1 + rng_below(r, 20)) * 86400;
}

int hub_seed_plan(uint64_t seed, long i, struct plan *p, int *status, int *extra_draft)
{
    struct seed_plan s;
    memset(&s, 0, sizeof s);
    s.g.r.s = seed * 0xd1b54a32d192ed03ull ^ ((uint64_t)i + 1) * 0x9e3779b97f4a7c15ull;
    s.g.err = CMC_OK;
    s.i = i;
    s.today = plat_wall_now() / 86400 * 86400;
    plan_init(p);
    seed_status(&s, status, extra_draft);
    seed_draws(&s, *status);
    seed_identity(&s, seed, p);
    seed_clinical(&s, p);
    seed_contacts(&s, p);
    seed_consent(&s, p);
    seed_decisions(&s, p);
    seed_problems(&s, p);
    seed_wishes(&s, p);
    seed_record(&s, p, *status);
    if (s.g.err != CMC_OK) {
        plan_free(p);
        return s.g.err;
    }
    return CMC_OK;
}
