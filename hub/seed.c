/*
 * seed.c - realistic synthetic London care plans for demos, tests and benchmarks.
 *
 * Plan i of seed S is a pure function of (S, i): each plan draws from its own splitmix64
 * stream, so the same seed gives the same plans whatever else the hub holds, and any one
 * plan can be regenerated alone (hub_seed_plan). NHS numbers are unique within a seed by
 * construction: candidate k maps to 400000000 + (offset + k * stride) mod 400000000 with a
 * stride coprime to the modulus (a bijection), and plan i takes the first candidate among
 * k = 16i .. 16i+15 whose Modulus 11 check digit exists. Every name, address and phone
 * number is invented (phone numbers use Ofcom's drama ranges 020 7946 0xxx and 07700 900xxx).
 *
 * Storing is one transaction with prepared statements reused for every plan.
 */
#include "hub/internal.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SEED_EPOCH 1767225600 /* 2026-01-01T00:00:00Z: dates are relative to it, not now */
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

struct problem {
    const char *problem;
    const char *guidance;
};
static const struct problem problems[] = {
    {"Breathlessness", "Sit upright, open a window or use a fan, give oral morphine as prescribed; "
                       "call the 24/7 palliative line if not settling within 30 minutes."},
    {"Pain", "Give the prescribed breakthrough dose; if two doses within 4 hours do not help, use "
             "the anticipatory injection and call the palliative team."},
    {"Agitation or distress", "Look for reversible causes (pain, full bladder, constipation); "
                              "midazolam from the just-in-case box as prescribed."},
    {"Seizures", "Keep safe, time the seizure; buccal or s/c midazolam if longer than 5 minutes. "
                 "Do not admit unless the family wish it."},
    {"Catastrophic bleed", "Dark towels are in the bedroom; stay with the patient, give midazolam "
                           "s/c, support the family. Not for transfer."},
    {"Noisy respiratory secretions", "Reposition onto the side; hyoscine butylbromide s/c as "
                                     "prescribed; reassure the family that this is not distressing."},
    {"Nausea and vomiting", "Haloperidol s/c as prescribed; check for constipation; small sips."},
    {"Fall at home", "Check for injury and assess; if uninjured, help up and leave at home with "
                     "carers; inform the GP the next working day."},
    {"Hypoglycaemia", "Check glucose; oral glucose if able to swallow; glucagon i/m if not. "
                      "Do not admit for this alone."},
    {"Chest infection", "Oral antibiotics from the rescue pack if the patient wishes; comfort "
                        "measures otherwise. Not for hospital admission."},
};

static const char *const ceilings[] = {
    "Prioritise comfort. Treat reversible causes at home; avoid admission unless symptoms cannot "
    "be controlled.",
    "Ward-based care including antibiotics and fluids, but not for intensive care or "
    "non-invasive ventilation.",
    "Full active treatment except CPR; for admission if needed.",
    "Comfort care only at home; not for hospital transfer.",
    "Balance of sustaining life and comfort: for oral antibiotics and hospital assessment if the "
    "patient agrees at the time.",
};
static const char *const matters[] = {
    "Staying at home with my cat.",
    "Being with my family and hearing my music.",
    "Seeing my grandchildren every weekend.",
    "Not going back into hospital.",
    "My faith: please call the imam (or the priest) if I am dying.",
    "Being kept clean and comfortable, and my dignity respected.",
    "Going out to the garden when I can.",
    "Having my daughter with me, whatever the hour.",
};
static const char *const support[] = {
    "Lives alone; carers four times a day.",
    "Lives with spouse, who is the main carer.",
    "Daughter lives nearby and visits daily.",
    "Lives with son and his family; district nurses twice weekly.",
    "Resident in a care home with 24-hour nursing.",
    "Neighbour holds a key; no family in London.",
};
static const char *const form_places[] = {
    "Purple folder on the kitchen table", "In the red folder by the front door",
    "With the care home's nursing records", "On the fridge, in a clear wallet",
    "In the bedside drawer",
};
static const char *const med_places[] = {
    "Just-in-case box in the bedroom wardrobe", "Locked cupboard in the kitchen",
    "Care home treatment room, labelled with the resident's name",
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

/* ---- building one plan ----------------------------------------------------------------- */

struct gen {
    struct rng r;
    int err;
};

static void gen_str(struct gen *g, char **dst, const char *s)
{
    if (g->err != CMC_OK)
        return;
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

int hub_seed_plan(uint64_t seed, long i, struct plan *p, int *status, int *extra_draft)
{
    struct gen g = {.r = {.s = seed * 0xd1b54a32d192ed03ull ^ ((uint64_t)i + 1) * 0x9e3779b97f4a7c15ull},
                    .err = CMC_OK};
    struct rng *r = &g.r;
    const struct region *reg = &PICK(r, regions);
    uint8_t u[16];
    char nhs[PLAN_NHS_LEN + 1];
    int female = (int)rng_below(r, 2);
    int64_t consent_at, approved_at;
    int roll = (int)rng_below(r, 100);

    plan_init(p);
    /* status mix: mostly published, some with a newer draft, drafts, awaiting approval,
     * needs finalisation */
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
    int partial = (*status == PLAN_STATUS_DRAFT || *status == PLAN_STATUS_NEEDS_FINALISATION) &&
                  rng_below(r, 2) == 0;

    for (size_t k = 0; k < sizeof u; k += 8) {
        uint64_t x = rng_next(r);
        memcpy(u + k, &x, 8);
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    gen_fmt(&g, &p->plan_id,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
            u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    seed_nhs(seed, i, nhs);
    gen_str(&g, &p->nhs_number, nhs);

    const char *given = female ? PICK(r, given_f) : PICK(r, given_m);
    const char *fam = PICK(r, family);
    gen_str(&g, &p->patient.given_name, given);
    gen_str(&g, &p->patient.family_name, fam);
    if (rng_below(r, 3) == 0)
        gen_fmt(&g, &p->patient.preferred_name, "%.3s", given);
    gen_date(&g, &p->patient.date_of_birth,
             SEED_EPOCH - (int64_t)(50 + rng_below(r, 50)) * 365 * 86400 -
                 (int64_t)rng_below(r, 365) * 86400,
             1);
    p->patient.gender = female ? PLAN_GENDER_FEMALE : PLAN_GENDER_MALE;
    uint32_t d = rng_below(r, 4);
    gen_fmt(&g, &p->patient.address, "%s%u %s, %s, London", rng_below(r, 3) == 0 ? "Flat 2, " : "",
            1 + rng_below(r, 180), PICK(r, streets), reg->districts[d]);
    gen_fmt(&g, &p->patient.postcode, "%s %u%c%c", reg->postcodes[d], 1 + rng_below(r, 9),
            'A' + (int)rng_below(r, 26), 'A' + (int)rng_below(r, 26));
    gen_fmt(&g, &p->patient.phone, "020 7946 0%03u", rng_below(r, 1000));
    const char *lang = PICK(r, languages);
    gen_str(&g, &p->patient.language, lang);
    p->patient.interpreter_needed = strcmp(lang, "English") != 0 && rng_below(r, 2) == 0;
    gen_str(&g, &p->region, reg->name);
    gen_str(&g, &p->team, reg->teams[rng_below(r, 3)]);
    int in_home = rng_below(r, 100) < 15;
    if (in_home)
        gen_str(&g, &p->care_home, reg->homes[rng_below(r, 3)]);

    const char *gp = PICK(r, gps);
    const char *practice = PICK(r, practices);
    consent_at = SEED_EPOCH - (int64_t)rng_below(r, 700) * 86400 - (int64_t)rng_below(r, 36000);
    approved_at = consent_at + (int64_t)(1 + rng_below(r, 20)) * 86400;
    if (!partial) {
        p->consent.basis = 1 + (int)rng_below(r, 3);
        gen_date(&g, &p->consent.recorded_at, consent_at, 0);
        gen_str(&g, &p->consent.recorded_by, gp);
        p->resuscitation.decision = rng_below(r, 10) < 7 ? PLAN_CPR_DNACPR
                                    : rng_below(r, 2)    ? PLAN_CPR_FOR_CPR
                                                         : PLAN_CPR_NOT_DISCUSSED;
        gen_date(&g, &p->resuscitation.decided_at, consent_at, 1);
        gen_str(&g, &p->resuscitation.decided_by, gp);
        gen_str(&g, &p->resuscitation.form_location, PICK(r, form_places));
        gen_date(&g, &p->resuscitation.review_date, consent_at + 365 * 86400, 1);
        p->resuscitation.patient_aware = rng_below(r, 10) < 8;
        p->resuscitation.family_aware = rng_below(r, 10) < 7;
    }
    gen_str(&g, &p->ceiling_of_treatment, PICK(r, ceilings));
    p->hospital_admission_wanted = rng_below(r, 3) == 0;
    p->adrt.exists = rng_below(r, 5) == 0;
    if (p->adrt.exists == 1)
        gen_str(&g, &p->adrt.location, "Copy with GP and in the folder by the bed");
    p->preferred_place_of_care.n = 2;
    p->preferred_place_of_care.v[0] = in_home ? PLAN_PLACE_CARE_HOME : PLAN_PLACE_HOME;
    p->preferred_place_of_care.v[1] = PLAN_PLACE_HOSPICE;
    p->preferred_place_of_death.n = 1 + rng_below(r, 2);
    p->preferred_place_of_death.v[0] = in_home ? PLAN_PLACE_CARE_HOME : PLAN_PLACE_HOME;
    p->preferred_place_of_death.v[1] = PLAN_PLACE_HOSPICE;

    const struct diagnosis *dx = &PICK(r, diagnoses);
    gen_str(&g, &p->prognosis, dx->prognosis);
    p->n_diagnoses = 1 + rng_below(r, 3);
    p->diagnoses = gen_items(&g, p->n_diagnoses, sizeof *p->diagnoses);
    for (size_t k = 0; p->diagnoses != NULL && k < p->n_diagnoses; k++) {
        gen_fmt(&g, &p->diagnoses[k].id, "d%zu", k + 1);
        gen_str(&g, &p->diagnoses[k].text, k == 0 ? dx->text : comorbid[(k * 3 + i) % N_ELEM(comorbid)]);
        p->diagnoses[k].primary = k == 0;
    }
    p->n_medications = 1 + rng_below(r, 8);
    p->medications = gen_items(&g, p->n_medications, sizeof *p->medications);
    uint32_t m0 = rng_below(r, (uint32_t)N_ELEM(medicines));
    for (size_t k = 0; p->medications != NULL && k < p->n_medications; k++) {
        const struct medicine *m = &medicines[(m0 + k * 5) % N_ELEM(medicines)];
        gen_fmt(&g, &p->medications[k].id, "m%zu", k + 1);
        gen_str(&g, &p->medications[k].name, m->name);
        gen_str(&g, &p->medications[k].dose, m->dose);
        p->medications[k].anticipatory = m->anticipatory;
    }
    gen_str(&g, &p->anticipatory_medicines_location, PICK(r, med_places));
    p->n_allergies = rng_below(r, 3);
    p->allergies = gen_items(&g, p->n_allergies, sizeof *p->allergies);
    uint32_t a0 = rng_below(r, (uint32_t)N_ELEM(allergies));
    for (size_t k = 0; p->allergies != NULL && k < p->n_allergies; k++) {
        const struct allergy *a = &allergies[(a0 + k * 3) % N_ELEM(allergies)];
        gen_fmt(&g, &p->allergies[k].id, "a%zu", k + 1);
        gen_str(&g, &p->allergies[k].substance, a->substance);
        gen_str(&g, &p->allergies[k].reaction, a->reaction);
        p->allergies[k].severity = a->severity;
    }
    p->n_contacts = 2 + rng_below(r, 4);
    p->contacts = gen_items(&g, p->n_contacts, sizeof *p->contacts);
    for (size_t k = 0; p->contacts != NULL && k < p->n_contacts; k++) {
        struct plan_contact *c = &p->contacts[k];
        gen_fmt(&g, &c->id, "c%zu", k + 1);
        if (k == 0) {
            c->role = PLAN_CONTACT_GP;
            gen_fmt(&g, &c->name, "%s, %s", gp, practice);
            gen_fmt(&g, &c->phone, "020 7946 0%03u", rng_below(r, 1000));
            gen_str(&g, &c->available, "08:00-18:30 weekdays");
        } else if (k == 1) {
            c->role = PLAN_CONTACT_PALLIATIVE_TEAM;
            gen_fmt(&g, &c->name, "%s 24/7 advice line", reg->hospice);
            gen_fmt(&g, &c->phone, "020 7946 0%03u", rng_below(r, 1000));
            gen_str(&g, &c->available, "24/7");
        } else {
            static const int roles[] = {PLAN_CONTACT_NEXT_OF_KIN, PLAN_CONTACT_LPA,
                                        PLAN_CONTACT_MAIN_CARER, PLAN_CONTACT_KEY_WORKER};
            static const char *const rel[] = {"daughter", "son", "wife", "husband", "niece", "friend"};
            c->role = roles[(k - 2) % N_ELEM(roles)];
            gen_fmt(&g, &c->name, "%s %s (%s)", rng_below(r, 2) ? PICK(r, given_f) : PICK(r, given_m), fam,
                    PICK(r, rel));
            gen_fmt(&g, &c->phone, "07700 900%03u", rng_below(r, 1000));
            gen_str(&g, &c->available, rng_below(r, 2) ? "any time" : "evenings and weekends");
        }
    }
    gen_str(&g, &p->social_support, in_home ? support[4] : PICK(r, support));
    gen_str(&g, &p->what_matters_to_me, PICK(r, matters));
    p->n_anticipated_problems = 1 + rng_below(r, 4);
    p->anticipated_problems = gen_items(&g, p->n_anticipated_problems, sizeof *p->anticipated_problems);
    uint32_t p0 = rng_below(r, (uint32_t)N_ELEM(problems));
    for (size_t k = 0; p->anticipated_problems != NULL && k < p->n_anticipated_problems; k++) {
        const struct problem *pr = &problems[(p0 + k * 3) % N_ELEM(problems)];
        gen_fmt(&g, &p->anticipated_problems[k].id, "p%zu", k + 1);
        gen_str(&g, &p->anticipated_problems[k].problem, pr->problem);
        gen_str(&g, &p->anticipated_problems[k].guidance, pr->guidance);
    }
    gen_str(&g, &p->organ_donation, PICK(r, organ));

    p->status = *status;
    p->version = 1;
    if (*status == PLAN_STATUS_PUBLISHED) {
        gen_str(&g, &p->approved_by, gp);
        gen_date(&g, &p->approved_at, approved_at, 0);
        gen_date(&g, &p->review_due, approved_at + 365 * 86400, 1);
        gen_date(&g, &p->updated_at, approved_at, 0);
    } else {
        gen_date(&g, &p->updated_at, consent_at, 0);
    }
    if (g.err != CMC_OK) {
        plan_free(p);
        return g.err;
    }
    return CMC_OK;
}

/* The newer draft of a published plan: a changed prognosis and one more medicine. */
static int seed_make_draft(const struct plan *pub, struct plan *draft)
{
    struct plan_medication *meds;
    int rc = plan_copy(draft, pub);
    if (rc != CMC_OK)
        return rc;
    draft->version = pub->version + 1;
    draft->status = PLAN_STATUS_DRAFT;
    cmc_free(draft->approved_by);
    cmc_free(draft->approved_at);
    draft->approved_by = draft->approved_at = NULL;
    cmc_free(draft->prognosis);
    draft->prognosis = cmc_strdup("weeks");
    if (draft->prognosis == NULL || draft->n_medications >= PLAN_MAX_ITEMS)
        goto out;
    meds = cmc_realloc(draft->medications, (draft->n_medications + 1) * sizeof *meds);
    if (meds == NULL)
        goto nomem;
    draft->medications = meds;
    memset(&meds[draft->n_medications], 0, sizeof *meds);
    meds[draft->n_medications].id = cmc_strdup("m90");
    meds[draft->n_medications].name = cmc_strdup("Levomepromazine injection");
    meds[draft->n_medications].dose = cmc_strdup("6.25 mg s/c as needed for nausea or agitation");
    meds[draft->n_medications].anticipatory = 1;
    draft->n_medications++;
    if (meds[draft->n_medications - 1].id == NULL || meds[draft->n_medications - 1].name == NULL ||
        meds[draft->n_medications - 1].dose == NULL)
        goto nomem;
out:
    if (draft->prognosis == NULL)
        goto nomem;
    return CMC_OK;
nomem:
    plan_free(draft);
    return cmc_fail(CMC_ERR_NOMEM, "seed");
}

/* ---- storing --------------------------------------------------------------------------- */

enum { ST_VERSION, ST_PLAN, ST_EVENT, ST_CHANGE, ST_SEQ, ST_CASELOAD, ST_N };

static const char *const seed_sql[ST_N] = {
    "INSERT INTO versions(plan_id, version, status, body, actor, action, at)"
    " VALUES(?1, ?2, ?3, ?4, 'seed', 'seed', ?5)",
    "INSERT INTO plans(plan_id, nhs, latest, latest_status, published, region, team, care_home,"
    " seq, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
    "INSERT INTO events(plan_id, version, actor, action, at) VALUES(?1, ?2, 'seed', 'seed', ?3)",
    "INSERT INTO changes(plan_id, what, at) VALUES(?1, 'seed', ?2)",
    "UPDATE plans SET seq = ?2 WHERE plan_id = ?1",
    "INSERT OR IGNORE INTO caseload(team, nhs) VALUES(?1, ?2)",
};

static int seed_step(hub *h, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        if ((src & 0xff) == SQLITE_CONSTRAINT)
            return cmc_fail(CMC_ERR_EXISTS, "seed: a seeded plan is already on the hub (%s);"
                                            " use another --seed", what);
        return hub_db_fail(h, src, what);
    }
    return CMC_OK;
}

static int seed_store(hub *h, sqlite3_stmt **st, const struct plan *p, int64_t now)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = plan_pack(p, &body, &len);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st[ST_VERSION], 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_VERSION], 2, p->version);
    sqlite3_bind_int(st[ST_VERSION], 3, p->status);
    sqlite3_bind_blob(st[ST_VERSION], 4, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_VERSION], 5, now);
    rc = seed_step(h, st[ST_VERSION], "version");
    sqlite3_clear_bindings(st[ST_VERSION]);
    cmc_free(body);
    if (rc != CMC_OK)
        return rc;
    sqlite3_bind_text(st[ST_EVENT], 1, p->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[ST_EVENT], 2, p->version);
    sqlite3_bind_int64(st[ST_EVENT], 3, now);
    return seed_step(h, st[ST_EVENT], "event");
}

int hub_seed(hub *h, long n, uint64_t seed, void (*progress)(long done, long total, void *ctx),
             void *ctx)
{
    sqlite3_stmt *st[ST_N] = {0};
    struct plan p, draft;
    int64_t now = plat_wall_now();
    int status, extra, rc = CMC_OK;

    plan_init(&p);
    plan_init(&draft);
    if (n < 0 || n > 10000000)
        return cmc_fail(CMC_ERR_USAGE, "--plans: 0 to 10000000");
    /* A large page cache for the bulk insert: the key indexes take random inserts. */
    if ((rc = hub_db_exec(h, "PRAGMA cache_size = -262144")) != CMC_OK)
        return rc;
    if ((rc = hub_tx_begin(h)) != CMC_OK)
        return rc;
    for (int k = 0; k < ST_N; k++)
        if ((rc = hub_db_prepare(h, seed_sql[k], &st[k])) != CMC_OK)
            goto out;
    for (long i = 0; i < n; i++) {
        if ((rc = hub_seed_plan(seed, i, &p, &status, &extra)) != CMC_OK)
            goto out;
        if ((rc = seed_store(h, st, &p, now)) != CMC_OK)
            goto out;
        int64_t latest = 1;
        int latest_status = p.status;
        if (extra) {
            if ((rc = seed_make_draft(&p, &draft)) != CMC_OK)
                goto out;
            if ((rc = seed_store(h, st, &draft, now)) != CMC_OK)
                goto out;
            latest = draft.version;
            latest_status = draft.status;
            plan_free(&draft);
        }
        sqlite3_bind_text(st[ST_PLAN], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 2, p.nhs_number, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_PLAN], 3, latest);
        sqlite3_bind_int(st[ST_PLAN], 4, latest_status);
        sqlite3_bind_int64(st[ST_PLAN], 5, status == PLAN_STATUS_PUBLISHED ? 1 : 0);
        sqlite3_bind_text(st[ST_PLAN], 6, p.region, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 7, p.team, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_PLAN], 8, p.care_home, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_PLAN], 9, now);
        if ((rc = seed_step(h, st[ST_PLAN], "plan")) != CMC_OK)
            goto out;
        sqlite3_clear_bindings(st[ST_PLAN]);
        sqlite3_bind_text(st[ST_CHANGE], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_CHANGE], 2, now);
        if ((rc = seed_step(h, st[ST_CHANGE], "change log")) != CMC_OK)
            goto out;
        sqlite3_bind_text(st[ST_SEQ], 1, p.plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[ST_SEQ], 2, sqlite3_last_insert_rowid(h->db));
        if ((rc = seed_step(h, st[ST_SEQ], "change log")) != CMC_OK)
            goto out;
        sqlite3_bind_text(st[ST_CASELOAD], 1, p.team, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[ST_CASELOAD], 2, p.nhs_number, -1, SQLITE_STATIC);
        if ((rc = seed_step(h, st[ST_CASELOAD], "caseload")) != CMC_OK)
            goto out;
        plan_free(&p);
        if (progress != NULL && ((i + 1) % 1000 == 0 || i + 1 == n))
            progress(i + 1, n, ctx);
    }
    for (int k = 0; k < ST_N; k++) {
        sqlite3_finalize(st[k]);
        st[k] = NULL;
    }
    rc = hub_tx_commit(h);
out:
    for (int k = 0; k < ST_N; k++)
        sqlite3_finalize(st[k]);
    if (rc != CMC_OK)
        hub_tx_rollback(h);
    plan_free(&p);
    plan_free(&draft);
    return rc;
}
