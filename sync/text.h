/*
 * text.h - what the text of a plan may hold, and how text that holds more is shown.
 *
 * A crew reads a plan on a terminal and on a web page. Text that carries terminal control
 * sequences (ESC, CSI, CR, BEL), Unicode bidirectional overrides or invisible characters can
 * rewrite what the screen says: move the cursor over the CPR line, erase the banner, set the
 * window title, or reverse a name. One classifier decides what is refused and what a printer
 * must neutralise, so every boundary and every printer agree (docs/HAZARDS.md, H-27).
 *
 * Refused in every plan string (the plan validator, sync/plan.c, names the field):
 *   - C0 controls U+0000-U+001F other than tab and newline (ESC, CR, BEL, backspace, ...);
 *   - DEL U+007F and the C1 controls U+0080-U+009F (U+009B is a one-byte CSI on some
 *     terminals);
 *   - bidirectional formatting: U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069;
 *   - other invisible format characters and separators: U+00AD soft hyphen, U+180E,
 *     U+200B zero width space, U+2028, U+2029, U+2060-U+2064, U+206A-U+206F, U+FEFF,
 *     U+FFF9-U+FFFB, U+FFFE, U+FFFF, U+1BCA0-U+1BCA3, U+E0000-U+E007F (tags).
 * Kept on purpose: U+200C zero width non-joiner and U+200D zero width joiner (Persian,
 * Indic scripts and emoji sequences need them to spell words correctly), U+034F and the
 * variation selectors. They cannot move the cursor or reorder text.
 * A one-line field (a name, a phone number, a date: TEXT_ONE_LINE) refuses tab and newline
 * too, so a name cannot forge a line of the card; free text keeps them.
 *
 * Printers call text_put_terminal / text_put_json (and the page's web_buf_text) for text
 * that may still hold such characters, e.g. a replica written by an earlier version: C0
 * controls become caret notation ("^[" for ESC), DEL "^?", the rest "<U+202E>", ill-formed
 * UTF-8 U+FFFD. Nothing a plan holds then reaches the terminal as a control.
 *
 * Thread-safety: pure functions. No allocation; no errors beyond the return values.
 */
#ifndef CMC_TEXT_H
#define CMC_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum text_class {
    TEXT_OK = 0,
    TEXT_CONTROL,   /* C0 other than tab and newline, DEL, C1 */
    TEXT_LINE,      /* tab or newline, in a one-line field */
    TEXT_BIDI,      /* a bidirectional override, embedding, isolate or mark */
    TEXT_INVISIBLE, /* another invisible format character or separator */
    TEXT_ILL_FORMED /* not well-formed UTF-8 */
};

#define TEXT_ONE_LINE 1u /* text_check: tab and newline refused too */

/* The class of one code point (tab and newline are TEXT_OK here). */
enum text_class text_classify(uint32_t cp);

/* Decodes one well-formed UTF-8 code point from s[0..n) (n >= 1) into *cp and returns its
 * length; returns 0 for an ill-formed sequence (overlong, surrogate, past U+10FFFF,
 * truncated). */
size_t text_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* The first character of s[0..n) a plan may not hold: its class (TEXT_OK if none), its code
 * point in *cp (0 when ill-formed). `flags`: TEXT_ONE_LINE. */
enum text_class text_check(const char *s, size_t n, unsigned flags, uint32_t *cp);

/* Why a class is refused, for a detail line: "a control character", ... */
const char *text_class_words(enum text_class c);

/* Writes s[0..n) for a terminal: newline and tab kept, everything text_check refuses shown
 * as a visible marker (see above). Returns what fwrite reports in total. */
size_t text_put_terminal(FILE *out, const char *s, size_t n);

/* Writes s[0..n), a JSON document that jansson wrote, with DEL, C1, bidirectional and
 * invisible characters as \u escapes (jansson escapes C0 itself). JSON outside strings is
 * ASCII, so the document means the same. */
size_t text_put_json(FILE *out, const char *s, size_t n);

/* The marker a printer shows for code point cp that text_classify refuses, written to buf
 * (at least 12 bytes), NUL-terminated: "^[", "^?", "<U+202E>". */
void text_marker(uint32_t cp, char *buf, size_t cap);

#endif
