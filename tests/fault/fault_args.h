/*
 * fault_args.h - the command lines of the fault harnesses (fault_proxy, hostile_hub, oom_loop,
 * powerloss): "--name value" pairs, read against a table of the options a harness knows.
 *
 * fault_args() walks argv in pairs and, for each name in the table, stores its value: the text
 * itself where the option has `text`, else the number (atol) in `number`. A later option wins;
 * an unknown name, or a last name with no value, is passed over. Checking the values (ranges,
 * options that must be there) is the harness's. Header-only, like fault_net.h.
 */
#ifndef CMC_FAULT_ARGS_H
#define CMC_FAULT_ARGS_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct fault_arg {
    const char *name; /* "--listen" */
    const char **text;
    long *number;
};

static inline void fault_args(int argc, char **argv, const struct fault_arg *args, size_t n)
{
    for (int i = 1; i + 1 < argc; i += 2)
        for (size_t k = 0; k < n; k++) {
            if (strcmp(argv[i], args[k].name) != 0)
                continue;
            if (args[k].text != NULL)
                *args[k].text = argv[i + 1];
            else
                *args[k].number = atol(argv[i + 1]);
        }
}

#endif
