/*
 * web_req.h - small, strict parsers for what a browser sends the crew's page: the --listen
 * address (loopback only), urlencoded form bodies and the Cookie header.
 *
 * Everything here is input from the network, so nothing asserts: malformed input is an
 * error code with a detail naming the form field or cookie, never its value (a form value
 * may be an NHS number or a name). Outputs are caller-provided buffers; nothing allocates.
 * Thread-safety: pure functions.
 */
#ifndef CMC_WEB_REQ_H
#define CMC_WEB_REQ_H

#include <stddef.h>
#include <stdint.h>

/* Parses "HOST:PORT" where HOST is a loopback address: 127.0.0.0/8, "localhost" (given back
 * as 127.0.0.1) or "[::1]" (given back as ::1). Anything else is CMC_ERR_USAGE: the page
 * holds patient data and is for the device's own browser only. Port 0 means any free port. */
int web_parse_listen(const char *listen, char *host, size_t cap, uint16_t *port);

/* The value of field `name` in an application/x-www-form-urlencoded body of `len` bytes,
 * decoded ('+' is a space, %XX a byte) into out (cap bytes, NUL-terminated). Leading and
 * trailing spaces are trimmed. CMC_ERR_NOT_FOUND when absent, CMC_ERR_INVALID for a bad
 * escape or a NUL byte, CMC_ERR_TOO_LARGE when it does not fit. The first occurrence wins. */
int web_form_value(const char *body, size_t len, const char *name, char *out, size_t cap);

/* The value of cookie `name` in a Cookie header ("a=1; b=2"). CMC_ERR_NOT_FOUND when
 * absent (or header NULL), CMC_ERR_TOO_LARGE when it does not fit in cap bytes. */
int web_cookie_value(const char *header, const char *name, char *out, size_t cap);

#endif
