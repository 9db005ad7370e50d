/*
 * fault_net.h - the socket steps the fault harnesses that stand in for a network peer share
 * (fault_proxy, hostile_hub): a loopback listener whose port is published in a file, and a
 * send that writes everything or fails.
 *
 * fault_listen() binds a TCP listener on 127.0.0.1:port (0 for any free port), with a backlog
 * of `backlog`, and when port_file is not NULL writes the port actually bound, as one decimal
 * line, to port_file through a rename (a reader never sees a half-written file). It returns
 * the listening socket, or -1 after printing why (prefixed by `who`) to stderr.
 * fault_accept() waits for the next connection, retrying on EINTR; -1 (errno set) on any other
 * failure. fault_write_all() sends all n bytes (retrying on EINTR, never raising SIGPIPE) and returns
 * 0, or -1 when the peer is gone. Header-only: each harness is one program with no library of
 * its own.
 */
#ifndef CMC_FAULT_NET_H
#define CMC_FAULT_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int fault_listen(const char *who, int port, int backlog, const char *port_file)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t alen = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls >= 0)
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, backlog) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "%s: listen: %s\n", who, strerror(errno));
        if (ls >= 0)
            close(ls);
        return -1;
    }
    if (port_file != NULL) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "%s: port file: %s\n", who, strerror(errno));
            close(ls);
            return -1;
        }
    }
    return ls;
}

static inline int fault_accept(int ls)
{
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c >= 0 || errno != EINTR)
            return c;
    }
}

static inline int fault_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

#endif
