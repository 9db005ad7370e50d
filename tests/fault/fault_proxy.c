/*
 * fault_proxy - a fault-injecting TCP proxy for the network fault tests (docs/TESTING.md).
 *
 *   fault_proxy --listen PORT|0 --to PORT --config FILE [--port-file FILE]
 *
 * Listens on 127.0.0.1, forwards every connection to 127.0.0.1:--to, and damages the
 * downstream direction (hub to device) as the first line of FILE says. FILE is read again for
 * every new connection, so a test changes the fault (or clears it with "none") without
 * restarting anything:
 *
 *   none            pass everything through
 *   latency MS      hold every downstream chunk MS milliseconds
 *   bw BYTES        cap downstream at BYTES per second
 *   stall N         forward N downstream bytes, then nothing more (the connection stays open)
 *   cut N           forward N downstream bytes, then close both sides cleanly (FIN)
 *   reset N         forward N downstream bytes, then reset both sides (RST)
 *   flip N          flip one bit in every N-th downstream byte (bytes N, 2N, ...)
 *   cutall N        the link goes down for good after N downstream bytes in all (counted
 *                   over every connection since this line was written): the connection
 *                   carrying byte N is cut there, and every later one at once
 *   resetall N      the same with resets
 *   idle MS         close both sides cleanly (FIN) once neither direction has carried a byte
 *                   for MS milliseconds, as proxies and NAT boxes end idle connections
 *   nowait          answer every "GET /v1/wait" 404 itself (upstream direction), as a hub
 *                   that predates the change feed does; everything else passes through
 *
 * The proxy sits behind the TLS terminator (stunnel in front of it, the hub's plain HTTP
 * behind it), so what it damages is what the agent's own framing and bundle verification see:
 * TLS would otherwise turn every flipped bit into a connection error.
 *
 * One child process per connection (killed with the proxy, PR_SET_PDEATHSIG). Test-only code:
 * it uses the OS directly, which product code outside platform/ may not.
 */
#include "tests/fault/fault_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum fault { F_NONE, F_LATENCY, F_BW, F_STALL, F_CUT, F_RESET, F_FLIP, F_CUTALL, F_RESETALL, F_IDLE, F_NOWAIT };

struct fault_cfg {
    enum fault kind;
    long arg;
    char line[128];
};

/* Downstream bytes over all connections since the config last changed (cutall, resetall):
 * shared with the per-connection children. */
static volatile long *total_down;

static void read_config(const char *path, struct fault_cfg *cfg)
{
    char line[128] = "", word[32] = "";
    long arg = 0;
    cfg->kind = F_NONE;
    cfg->arg = 0;
    cfg->line[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof line, f) != NULL && sscanf(line, "%31s %ld", word, &arg) >= 1) {
        static const struct { const char *name; enum fault kind; } names[] = {
            { "latency", F_LATENCY }, { "bw", F_BW },       { "stall", F_STALL },
            { "cut", F_CUT },         { "reset", F_RESET }, { "flip", F_FLIP },
            { "cutall", F_CUTALL },   { "resetall", F_RESETALL }, { "idle", F_IDLE },
            { "nowait", F_NOWAIT },
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(word, names[i].name) == 0)
                cfg->kind = names[i].kind;
        cfg->arg = arg;
        snprintf(cfg->line, sizeof cfg->line, "%s", line);
    }
    fclose(f);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void hard_reset(int fd)
{
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static int connect_upstream(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Relays one connection until either side closes, applying the fault downstream. */
static void relay(int client, int upstream, const struct fault_cfg *cfg)
{
    unsigned char buf[16384];
    long down = 0; /* downstream bytes forwarded so far */
    int stalled = 0;
    int global = cfg->kind == F_CUTALL || cfg->kind == F_RESETALL;
    if (global && *total_down >= cfg->arg) {
        if (cfg->kind == F_RESETALL)
            hard_reset(client);
        return;
    }
    for (;;) {
        struct pollfd p[2] = { { client, POLLIN, 0 }, { upstream, stalled ? 0 : POLLIN, 0 } };
        int ready = poll(p, 2, cfg->kind == F_IDLE && cfg->arg > 0 ? (int)cfg->arg : -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (ready == 0) { /* idle for cfg->arg ms */
            shutdown(client, SHUT_RDWR);
            shutdown(upstream, SHUT_RDWR);
            return;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            static const char wait_req[] = "GET /v1/wait";
            static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                            "Content-Length: 50\r\n\r\n"
                                            "{\"error\":\"not_found\",\"message\":\"no such endpoint\"}";
            ssize_t n = recv(client, buf, sizeof buf, 0);
            if (n > 0 && cfg->kind == F_NOWAIT && (size_t)n >= sizeof wait_req - 1 &&
                memcmp(buf, wait_req, sizeof wait_req - 1) == 0) {
                if (fault_write_all(client, (const unsigned char *)not_found, sizeof not_found - 1) != 0)
                    return;
                continue;
            }
            if (n <= 0 || fault_write_all(upstream, buf, (size_t)n) != 0)
                return;
        }
        if (stalled || !(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        size_t want = sizeof buf;
        if (cfg->kind == F_BW && cfg->arg > 0 && want > (size_t)cfg->arg / 10 + 1)
            want = (size_t)cfg->arg / 10 + 1; /* about ten chunks a second */
        ssize_t n = recv(upstream, buf, want, 0);
        if (n <= 0)
            return;
        size_t len = (size_t)n;
        int after = 0; /* what to do once the limit is reached */
        if ((cfg->kind == F_STALL || cfg->kind == F_CUT || cfg->kind == F_RESET) && down + n >= cfg->arg) {
            len = (size_t)(cfg->arg - down);
            after = 1;
        }
        if (global && *total_down + n >= cfg->arg) {
            long room = cfg->arg - *total_down;
            len = room > 0 ? (size_t)room : 0;
            after = 1;
        }
        if (cfg->kind == F_FLIP && cfg->arg > 0)
            for (size_t i = 0; i < len; i++)
                if ((down + (long)i + 1) % cfg->arg == 0)
                    buf[i] ^= (unsigned char)(1u << ((down + (long)i) / cfg->arg % 8));
        if (cfg->kind == F_LATENCY)
            sleep_ms(cfg->arg);
        if (len > 0 && fault_write_all(client, buf, len) != 0)
            return;
        down += (long)len;
        if (global)
            __atomic_add_fetch(total_down, (long)len, __ATOMIC_SEQ_CST);
        if (cfg->kind == F_BW && cfg->arg > 0)
            sleep_ms((long)len * 1000 / cfg->arg);
        if (after) {
            if (cfg->kind == F_STALL) {
                stalled = 1;
            } else if (cfg->kind == F_CUT || cfg->kind == F_CUTALL) {
                shutdown(client, SHUT_RDWR);
                return;
            } else {
                hard_reset(client);
                hard_reset(upstream);
                _exit(0);
            }
        }
    }
}

int main(int argc, char **argv)
{
    int listen_port = -1, to_port = -1;
    const char *config = NULL, *port_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--to") == 0)
            to_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[i + 1];
    }
    if (listen_port < 0 || to_port <= 0 || config == NULL) {
        fprintf(stderr, "usage: fault_proxy --listen PORT|0 --to PORT --config FILE [--port-file FILE]\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
    int ls = fault_listen("fault_proxy", listen_port, 64, port_file);
    if (ls < 0)
        return 1;
    pid_t parent = getpid();
    char last_line[128] = "";
    total_down = mmap(NULL, sizeof *total_down, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (total_down == MAP_FAILED) {
        perror("fault_proxy: mmap");
        return 1;
    }
    *total_down = 0;
    for (;;) {
        int c = fault_accept(ls);
        if (c < 0) {
            perror("fault_proxy: accept");
            return 1;
        }
        struct fault_cfg cfg;
        read_config(config, &cfg);
        if (strcmp(cfg.line, last_line) != 0) {
            snprintf(last_line, sizeof last_line, "%s", cfg.line);
            *total_down = 0;
        }
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            close(ls);
            int up = connect_upstream(to_port);
            if (up < 0)
                _exit(0);
            relay(c, up, &cfg);
            _exit(0);
        }
        close(c);
    }
}
