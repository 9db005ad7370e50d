/*
 * web.h - the crew's page: a local web view served by the agent on the device itself.
 *
 * `cmc-agent serve --listen 127.0.0.1:PORT` (loopback only) serves server-rendered HTML
 * (libmicrohttpd): unlock with user and PIN (the same key slots and throttling as the CLI),
 * find a patient by NHS number or by name, date of birth and postcode, and the summary card
 * in clinical order. Works with no network at all. docs/WEB.md describes the pages.
 *
 * web_serve() runs until SIGINT/SIGTERM and returns a cmc_err.
 */
#ifndef CMC_WEB_H
#define CMC_WEB_H

#include "agent/cli.h"

int web_serve(const struct cli_opts *o);

#endif
