/*
 * fuzz_card - the card's printers (terminal, --json, the page) fed plans whose text holds any
 * bytes at all: what a replica written by an earlier version, or altered, may hold, since the
 * plan validator is bypassed here. Properties (docs/HAZARDS.md, H-27):
 *   - the terminal output, through text_put_terminal, holds no control character but newline
 *     and tab, is well-formed UTF-8 and holds no bidirectional or invisible character;
 *   - the JSON output, through text_put_json, is still valid JSON (when the card could be
 *     written as JSON at all) and holds no raw DEL, C1, bidirectional or invisible character;
 *   - the page holds no such character either, and no '<' that the renderer did not write
 *     (the input's text is escaped).
 *
 * Input: the text of plan fields, separated by NUL bytes, poured in order into the string
 * fields of a synthetic seed plan (top-level fields, then the items' fields).
 */
#include "agent/card.h"
#include "agent/web_html.h"
#include "sync/text.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

FUZZ_INITIALIZE_PLAIN()

/* Replaces the string at `slot` with data[0..n) (any bytes; NUL ends it anyway). */
static void put_text(char **slot, const uint8_t *data, size_t n)
{
    char *s = cmc_malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, n);
    s[n] = '\0';
    cmc_free(*slot);
    *slot = s;
}

/* Pours the NUL-separated pieces of the input into the plan's string fields. */
static void pour(struct plan *p, const uint8_t *data, size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < plan_n_fields && at < size; i++) {
        const struct plan_field *f = &plan_fields[i];
        if (f->type == PLAN_F_STRING && !(f->flags & PLAN_FF_KEY)) {
            const uint8_t *end = memchr(data + at, 0, size - at);
            size_t n = end != NULL ? (size_t)(end - (data + at)) : size - at;
            put_text((char **)((char *)p + f->offset), data + at, n);
            at += n + 1;
            continue;
        }
        if (f->type != PLAN_F_LIST)
            continue;
        size_t count = 0;
        char *items = plan_list_items(f, p, &count);
        for (size_t j = 0; j < count && at < size; j++)
            for (size_t k = 1; k < f->list->n_fields && at < size; k++) {
                const struct plan_field *itf = &f->list->fields[k];
                if (itf->type != PLAN_F_STRING)
                    continue;
                const uint8_t *end = memchr(data + at, 0, size - at);
                size_t n = end != NULL ? (size_t)(end - (data + at)) : size - at;
                put_text((char **)(items + j * f->list->item_size + itf->offset), data + at, n);
                at += n + 1;
            }
    }
}

/* Every character of s[0..n) is well-formed and allowed by sync/text.h (newline and tab
 * too); the page additionally allows nothing else. */
static void assert_clean(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = text_decode(u + i, n - i, &cp);
        if (k == 0 || text_classify(cp) != TEXT_OK)
            abort();
        i += k;
    }
}

static void check_terminal(const struct card_model *m)
{
    char *card = NULL, *out = NULL;
    size_t card_len = 0, out_len = 0;
    FILE *f = open_memstream(&card, &card_len);
    if (f == NULL)
        abort();
    card_print(f, m);
    fclose(f);
    if ((f = open_memstream(&out, &out_len)) == NULL)
        abort();
    text_put_terminal(f, card, card_len);
    fclose(f);
    assert_clean(out, out_len);
    free(card);
    free(out);
}

static void check_json(const struct plan *p, const struct card_model *m)
{
    json_t *doc = card_to_json(p, m);
    if (doc == NULL) /* jansson refuses ill-formed UTF-8: no output, no crash */
        return;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return;
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (f == NULL)
        abort();
    text_put_json(f, text, strlen(text));
    fclose(f);
    assert_clean(out, out_len);
    json_error_t err;
    json_t *back = json_loadb(out, out_len, 0, &err);
    if (back == NULL)
        abort(); /* the escapes broke the document */
    json_decref(back);
    free(out);
    void (*free_fn)(void *) = NULL;
    json_get_alloc_funcs(NULL, &free_fn);
    free_fn(text);
}

static void check_page(const struct plan *p, const struct card_context *ctx, const uint8_t *data, size_t size)
{
    struct web_buf b;
    struct web_chrome c;
    memset(&c, 0, sizeof c);
    c.title = "Summary card";
    c.night = -1;
    struct web_card card = { .p = p, .ctx = ctx, .view = WEB_VIEW_FULL };
    web_buf_init(&b);
    web_render_card(&b, &c, &card);
    if (web_buf_status(&b) == CMC_OK) {
        assert_clean(b.p, b.len);
        /* a '<' of the input must never reach the page as markup */
        if (memchr(data, '<', size) != NULL && strstr(b.p, "<script") != NULL)
            abort();
    }
    web_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plan p;
    int status = 0, extra = 0;
    plan_init(&p);
    if (hub_seed_plan(2, (long)(size % 7), &p, &status, &extra) != CMC_OK)
        abort();
    pour(&p, data, size);
    struct card_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.now = 1796274512;
    ctx.last_sync = ctx.now - 5 * 86400;
    ctx.lease_days_left = size % 3 == 0 ? 1 : -1;
    ctx.break_glass = size % 2;
    ctx.copy_age_days = 5;
    ctx.show_full = 1;
    struct card_model m;
    card_build(&p, &ctx, &m);
    check_terminal(&m);
    check_json(&p, &m);
    check_page(&p, &ctx, data, size);
    plan_free(&p);
    return 0;
}

int fuzz_make_seeds(const char *dir)
{
    static const char seed0[] = "Margaret\0Ok\xe2\x80\xae" "afor\0Maggie\0Flat 3\0SE15 4QT\0020 7946\0English";
    static const char seed1[] = "A\0B\0C\0D\0E\0F\0G\0H\0I\0J\0K\0L\0M\0N\0Comfort\x1b[3A\r 2 CPR  FOR CPR\x1b[K"
                                "\x1b]2;OWNED\x07\x1b[2J";
    static const char seed2[] = "\xc2\x9b" "2J\0\x7f\0\xf3\xa0\x80\x81\0\xff\xfe\0<script>alert(1)</script>\0"
                                "\xd9\x81\xd8\xa7\xd8\xb7\xd9\x85\xd8\xa9\0\xe2\x81\xa6x\xe2\x81\xa9";
    return fuzz_write_seed(dir, "seed-bidi-name", seed0, sizeof seed0 - 1) |
           fuzz_write_seed(dir, "seed-cursor-over-cpr", seed1, sizeof seed1 - 1) |
           fuzz_write_seed(dir, "seed-c1-tags-html", seed2, sizeof seed2 - 1);
}
