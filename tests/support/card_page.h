/*
 * card_page.h - a plan's card page as the device's web server writes it, for the agent's unit
 * tests of the card and the page.
 *
 * tst_card_text() prints the card model as the terminal shows it (card_print) into a new string
 * (free() it). tst_card_page() renders the card (web_render_card) with this chrome into a new string
 * (cmc_free it); it fails the running cmocka test when rendering fails. Archived into the
 * test-support library, linked only into tests that call it (those link the agent library).
 */
#ifndef CMC_TEST_SUPPORT_CARD_PAGE_H
#define CMC_TEST_SUPPORT_CARD_PAGE_H

#include "agent/card.h"
#include "agent/web_html.h"

char *tst_card_text(const struct card_model *m);
char *tst_card_page(const struct web_chrome *c, const struct web_card *card);

#endif
