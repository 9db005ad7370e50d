/*
 * rr_forward.c - a round-robin TCP forwarder standing in for a load balancer in front of
 * several hub nodes (tests/e2e/test_hub_pg_nodes.sh).
 *
 *   rr_forward PORTFILE HOST:PORT [HOST:PORT...]
 *
 * Listens on 127.0.0.1 on a free port, writes that port to PORTFILE, and hands each new
 * connection to the next backend in turn; a backend that refuses the connection is skipped
 * for the next one (as a load balancer's health check would), so a killed node stops
 * receiving connections at once. Bytes are copied both ways unchanged (TLS passes through).
 * With RR_RECORD=DIR, connection N's backend index goes to DIR/N.backend and the bytes the
 * client sent to DIR/N.req (so a test can replay a plain-http request to another node).
 * One thread per connection; runs until killed. Test tool only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BACKENDS 8

struct backend {
    struct sockaddr_in addr;
};

static struct backend backends[MAX_BACKENDS];
static int n_backends;
static unsigned next_backend;
static unsigned n_conns;
static const char *record_dir;
static pthread_mutex_t next_mu = PTHREAD_MUTEX_INITIALIZER;

static int parse_backend(const char *s, struct backend *b)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(&b->addr, 0, sizeof b->addr);
    b->addr.sin_family = AF_INET;
    b->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &b->addr.sin_addr) == 1 ? 0 : -1;
}

static void record(unsigned conn, const char *ext, const void *p, size_t n, const char *mode)
{
    char path[512];
    FILE *f;
    if (record_dir == NULL)
        return;
    snprintf(path, sizeof path, "%s/%u.%s", record_dir, conn, ext);
    if ((f = fopen(path, mode)) != NULL) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* A connection to the next backend that accepts one (its index in *which); -1 when none. */
static int connect_next(unsigned *which)
{
    for (int tries = 0; tries < n_backends; tries++) {
        pthread_mutex_lock(&next_mu);
        unsigned i = next_backend++ % (unsigned)n_backends;
        pthread_mutex_unlock(&next_mu);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&backends[i].addr, sizeof backends[i].addr) == 0) {
            *which = i;
            return fd;
        }
        close(fd);
    }
    return -1;
}

static void *pump(void *arg)
{
    int client = (int)(intptr_t)arg;
    unsigned which = 0, conn;
    int server = connect_next(&which);
    char buf[16384];
    pthread_mutex_lock(&next_mu);
    conn = n_conns++;
    pthread_mutex_unlock(&next_mu);
    if (server >= 0) {
        char idx[16];
        int one = 1;
        /* as a load balancer does: each piece goes on at once, never held back by Nagle */
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int len = snprintf(idx, sizeof idx, "%u\n", which);
        record(conn, "backend", idx, (size_t)len, "w");
        struct pollfd p[2] = {{.fd = client, .events = POLLIN}, {.fd = server, .events = POLLIN}};
        for (;;) {
            if (poll(p, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            int done = 0;
            for (int k = 0; k < 2 && !done; k++) {
                if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                ssize_t n = read(p[k].fd, buf, sizeof buf);
                if (n <= 0) {
                    done = 1;
                    break;
                }
                if (k == 0)
                    record(conn, "req", buf, (size_t)n, "a");
                for (ssize_t off = 0; off < n;) {
                    ssize_t w = write(p[1 - k].fd, buf + off, (size_t)(n - off));
                    if (w <= 0) {
                        done = 1;
                        break;
                    }
                    off += w;
                }
            }
            if (done)
                break;
        }
        close(server);
    }
    close(client);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int lfd, one = 1;
    FILE *f;

    if (argc < 3) {
        fprintf(stderr, "usage: rr_forward PORTFILE HOST:PORT [HOST:PORT...]\n");
        return 2;
    }
    for (int i = 2; i < argc && n_backends < MAX_BACKENDS; i++)
        if (parse_backend(argv[i], &backends[n_backends++]) != 0) {
            fprintf(stderr, "rr_forward: bad backend %s\n", argv[i]);
            return 2;
        }
    record_dir = getenv("RR_RECORD");
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) != 0) {
        perror("rr_forward: listen");
        return 1;
    }
    if ((f = fopen(argv[1], "w")) == NULL) {
        perror("rr_forward: port file");
        return 1;
    }
    fprintf(f, "%u\n", ntohs(addr.sin_port));
    fclose(f);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        pthread_t t;
        if (c < 0) {
            if (errno == EINTR)
                continue;
            perror("rr_forward: accept");
            return 1;
        }
        if (pthread_create(&t, NULL, pump, (void *)(intptr_t)c) != 0) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
}
