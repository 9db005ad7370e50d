/* card_page.c - see card_page.h. */
#include "tests/support/card_page.h"

#include "platform/alloc.h"
#include "platform/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

char *tst_card_text(const struct card_model *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    card_print(f, m);
    assert_int_equal(fclose(f), 0);
    return text;
}

char *tst_card_page(const struct web_chrome *c, const struct web_card *card)
{
    struct web_buf b;
    web_buf_init(&b);
    web_render_card(&b, c, card);
    assert_int_equal(web_buf_status(&b), CMC_OK);
    char *html = cmc_strdup(b.p);
    web_buf_free(&b);
    assert_non_null(html);
    return html;
}
