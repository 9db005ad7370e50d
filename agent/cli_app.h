/*
 * cli_app.h - `cmc-agent app add NAME`: registers an app on this device that may read the
 * loopback FHIR endpoint of `cmc-agent serve` (agent/web_fhir.h); `app list` shows them and
 * `app remove NAME` ends one (both add and remove need a user's PIN). Returns a cmc_err.
 */
#ifndef CMC_CLI_APP_H
#define CMC_CLI_APP_H

#include "agent/cli.h"

int cli_app(struct cli_opts *o);

#endif
