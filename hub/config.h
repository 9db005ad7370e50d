/*
 * config.h - the hub's settings file (/etc/cmc/hub.conf, `cmc-hub --config FILE`, or
 * $CMC_HUB_CONFIG): every setting the hub otherwise takes from its command line or
 * environment, so a service manager needs no environment at all.
 *
 * Format: one "key = value" per line; '#' starts a comment; blank lines are ignored; values
 * run to the end of the line with surrounding blanks removed. Keys (docs/OPERATIONS.md):
 * dir, listen, tls_cert, tls_key, tls_next_key, metrics_listen, log, max_connections,
 * per_ip_connections, idle_timeout, request_deadline, enroll_per_minute, threads.
 * An unknown key or a bad number is an error naming the line (CMC_ERR_USAGE), so a typo
 * is never silently ignored. Precedence: command line, then environment, then this file,
 * then the built-in default.
 *
 * Memory: a struct hub_config holds its strings inline; nothing to free.
 */
#ifndef CMC_HUB_CONFIG_H
#define CMC_HUB_CONFIG_H

#include <stddef.h>

#define HUB_CONFIG_DEFAULT_PATH "/etc/cmc/hub.conf"
#define HUB_CONFIG_PATH_MAX 1024

struct hub_config {
    char path[HUB_CONFIG_PATH_MAX]; /* the file read; "" when none */
    char dir[HUB_CONFIG_PATH_MAX];
    char listen[128];
    char tls_cert[HUB_CONFIG_PATH_MAX];
    char tls_key[HUB_CONFIG_PATH_MAX];
    char tls_next_key[HUB_CONFIG_PATH_MAX];
    char metrics_listen[128];
    char log[16];
    unsigned max_connections;    /* 0: built-in default */
    unsigned per_ip_connections;
    unsigned idle_timeout;       /* seconds */
    unsigned request_deadline;   /* seconds */
    unsigned enroll_per_minute;
    unsigned threads;
};

/* Reads `path` into *out (zeroed first). path NULL: $CMC_HUB_CONFIG, else
 * HUB_CONFIG_DEFAULT_PATH when it exists, else no file (CMC_OK, all defaults). A named file
 * that does not exist is CMC_ERR_USAGE. */
int hub_config_load(const char *path, struct hub_config *out);
/* Parses the text of a settings file; `name` is used in error messages. */
int hub_config_parse(const char *text, size_t len, const char *name, struct hub_config *out);

#endif
