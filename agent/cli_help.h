/*
 * cli_help.h - `cmc-agent --version`, `cmc-agent COMMAND --help`, and the answer to a
 * mistyped command ("unknown command 'lst' — did you mean 'list'?", exit 2).
 *
 * cli_help_intercept looks at the raw arguments before the command line is parsed; when it
 * has answered (help or version printed, or an unknown command refused) it returns 1 with
 * the exit code in *exit_code, else 0 and the normal dispatch goes on. It opens nothing.
 */
#ifndef CMC_AGENT_CLI_HELP_H
#define CMC_AGENT_CLI_HELP_H

#include <stdio.h>

int cli_help_intercept(int argc, char **argv, int *exit_code);
/* The program's version and those of the libraries it runs on, one per line. */
void cli_help_version(FILE *f);

#endif
