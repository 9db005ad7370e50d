/*
 * store_identity.c - identity normalisation (store.h) and the identity index row of a plan:
 * what is stored in plan_identity and how a row is checked against its plan (store_int.h).
 */
#include "agent/store.h"
#include "agent/store_int.h"

#include "platform/alloc.h"
#include "platform/err.h"
#include "sync/plan.h"

#include <string.h>

/* ---- identity normalisation ------------------------------------------------------------ */

/* U+00C0..U+00FF folded (lower case); "" drops the character (x and division signs). */
static const char *const fold_latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};
/* U+0100..U+017F (Latin Extended-A), one letter each. */
static const char fold_ext_a[] = "aaaaaaccccccccdd"
                                 "ddeeeeeeeeeegggg"
                                 "gggghhhhiiiiiiii"
                                 "iiiijjkkklllllll"
                                 "lllnnnnnnnnnoooo"
                                 "oooorrrrrrssssss"
                                 "ssttttttuuuuuuuu"
                                 "uuuuwwyyyzzzzzzs";
_Static_assert(sizeof fold_ext_a == 129, "one letter per code point U+0100..U+017F");

static int is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

void store_name_normalise(const char *in, char *out)
{
    const unsigned char *p = (const unsigned char *)(in != NULL ? in : "");
    size_t o = 0;
    while (*p != '\0') {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z')
                out[o++] = (char)(c - 'A' + 'a');
            else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                out[o++] = (char)c;
            p++;
        } else if (c >= 0xc2 && c <= 0xdf && is_cont(p[1])) {
            unsigned cp = ((unsigned)(c & 0x1f) << 6) | (unsigned)(p[1] & 0x3f);
            const char *f = NULL;
            char one[2] = {0, 0};
            if (cp >= 0xc0 && cp <= 0xff) {
                f = fold_latin1[cp - 0xc0];
            } else if (cp == 0x132 || cp == 0x133) {
                f = "ij";
            } else if (cp == 0x152 || cp == 0x153) {
                f = "oe";
            } else if (cp >= 0x100 && cp <= 0x17f) {
                one[0] = fold_ext_a[cp - 0x100];
                f = one;
            } else if (cp == 0x2bc) {
                /* U+02BC modifier letter apostrophe: dropped like ' */
            } else if (cp >= 0x180) {
                /* Other scripts: kept as written (no case folding we could do simply). */
                out[o++] = (char)p[0];
                out[o++] = (char)p[1];
            }
            /* U+0080..U+00BF are punctuation and symbols: dropped like ASCII ones. Every
             * folding is at most two bytes, the length of what it replaces. */
            for (; f != NULL && *f != '\0'; f++)
                out[o++] = *f;
            p += 2;
        } else if (c >= 0xe0 && c <= 0xef && is_cont(p[1]) && is_cont(p[2])) {
            unsigned cp = ((unsigned)(c & 0x0f) << 12) | ((unsigned)(p[1] & 0x3f) << 6) | (unsigned)(p[2] & 0x3f);
            /* Hyphens, dashes and typographic quotes (U+2010..U+201F, U+2032 prime) are
             * punctuation like '-' and '\'': O’Brien, typed on a phone, is O'Brien. */
            if (!((cp >= 0x2010 && cp <= 0x201f) || cp == 0x2032)) {
                memcpy(out + o, p, 3);
                o += 3;
            }
            p += 3;
        } else if (c >= 0xf0 && c <= 0xf4 && is_cont(p[1]) && is_cont(p[2]) && is_cont(p[3])) {
            memcpy(out + o, p, 4);
            o += 4;
            p += 4;
        } else {
            p++; /* not UTF-8: dropped */
        }
    }
    out[o] = '\0';
}

void store_postcode_normalise(const char *in, char *out)
{
    size_t o = 0;
    for (const char *p = in != NULL ? in : ""; *p != '\0'; p++) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-')
            continue;
        out[o++] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    out[o] = '\0';
}

/* The outward code of a normalised postcode: all but the three-character inward code. */
static size_t postcode_outward_len(const char *norm)
{
    size_t n = strlen(norm);
    return n > 4 ? n - 3 : n;
}

void store_identity_free(struct store_identity *id)
{
    cmc_free(id->family);
    cmc_free(id->given);
    cmc_free(id->postcode);
    cmc_free(id->outward);
    memset(id, 0, sizeof *id);
}

static char *normalised_name(const char *in)
{
    char *out = cmc_malloc(strlen(in != NULL ? in : "") + 1);
    if (out != NULL)
        store_name_normalise(in, out);
    return out;
}

int store_identity_of(const struct plan *p, struct store_identity *id)
{
    memset(id, 0, sizeof *id);
    id->family = normalised_name(p->patient.family_name);
    id->given = normalised_name(p->patient.given_name);
    if (id->family == NULL || id->given == NULL)
        goto nomem;
    if (p->patient.postcode != NULL) {
        id->postcode = cmc_malloc(strlen(p->patient.postcode) + 1);
        if (id->postcode == NULL)
            goto nomem;
        store_postcode_normalise(p->patient.postcode, id->postcode);
        id->outward = cmc_strndup(id->postcode, postcode_outward_len(id->postcode));
        if (id->outward == NULL)
            goto nomem;
    }
    return CMC_OK;
nomem:
    store_identity_free(id);
    return cmc_fail(CMC_ERR_NOMEM, "replica: out of memory");
}

int store_text_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* A mismatch between the index row and the decoded plan means a search could put the wrong
 * patient's plan in front of a crew, so it counts as tampering. */
int store_identity_matches(sqlite3_stmt *st, int first, const struct plan *p, int *match)
{
    struct store_identity id;
    int rc = store_identity_of(p, &id);
    *match = 0;
    if (rc != CMC_OK)
        return rc;
    *match = sqlite3_column_type(st, first) != SQLITE_NULL &&
             store_text_eq(store_col_text(st, first), id.family) &&
             store_text_eq(store_col_text(st, first + 1), id.given) &&
             store_text_eq(store_col_text(st, first + 2), p->patient.date_of_birth) &&
             store_text_eq(store_col_text(st, first + 3), id.postcode);
    store_identity_free(&id);
    return CMC_OK;
}
