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
 * A shaped link instead (both directions, for benchmarks: bench/run.sh), as the line
 *
 *   link KBIT RTT_MS LOSS_PERMILLE
 *
 * e.g. "link 20000 50 0" (a 4G link) or "link 1000 300 10" (a poor one): each direction is
 * a delay line of RTT_MS / 2 behind a KBIT kbit/s serialiser; each 1448-byte segment is lost
 * with probability LOSS_PERMILLE / 1000 and then costs its direction one retransmission
 * timeout (RTT_MS + 200 ms, Linux's minimum RTO), holding back what follows it as TCP does.
 * A new connection's first bytes wait one round trip more (TCP's handshake); TCP's slow
 * start is not modelled. The proxy's TCP connections are plain, so a shaped link
 * carries TLS unchanged. With --stats FILE the proxy keeps "up BYTES down BYTES connections
 * N closed M" (bytes carried by shaped links, connections of any kind, since start) in FILE,
 * rewritten as each connection closes.
 *
 * The proxy sits behind the TLS terminator (stunnel in front of it, the hub's plain HTTP
 * behind it), so what it damages is what the agent's own framing and bundle verification see:
 * TLS would otherwise turn every flipped bit into a connection error.
 *
 * One child process per connection (killed with the proxy, PR_SET_PDEATHSIG). Test-only code:
 * it uses the OS directly, which product code outside platform/ may not.
 */
#include "tests/fault/fault_args.h"
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

/* ---- shaped links ------------------------------------------------------------------------ */

struct link_cfg {
    int on;
    long kbit, rtt_ms, loss_permille;
};

static void read_link(const char *path, struct link_cfg *lk)
{
    char line[128] = "";
    memset(lk, 0, sizeof *lk);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof line, f) != NULL &&
        sscanf(line, "link %ld %ld %ld", &lk->kbit, &lk->rtt_ms, &lk->loss_permille) == 3 &&
        lk->kbit > 0 && lk->rtt_ms >= 0 && lk->loss_permille >= 0 && lk->loss_permille < 1000)
        lk->on = 1;
    fclose(f);
}

/* Bytes and connections over the proxy's life: shared with the per-connection children. */
struct link_stats {
    long up, down, connections, closed;
};
static struct link_stats *stats;
static const char *stats_path;

static void stats_write(void)
{
    if (stats_path == NULL)
        return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%ld", stats_path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "up %ld down %ld connections %ld closed %ld\n", __atomic_load_n(&stats->up, __ATOMIC_SEQ_CST),
            __atomic_load_n(&stats->down, __ATOMIC_SEQ_CST), __atomic_load_n(&stats->connections, __ATOMIC_SEQ_CST),
            __atomic_load_n(&stats->closed, __ATOMIC_SEQ_CST));
    if (fclose(f) == 0)
        rename(tmp, stats_path);
    else
        unlink(tmp);
}

enum { SEG = 1448, LINK_QUEUE_MAX = 8 * 1024 * 1024 };

struct seg {
    struct seg *next;
    uint64_t due_ns;
    size_t len;
    unsigned char data[SEG];
};

/* One direction of a shaped link. */
struct lane {
    int from, to;
    struct seg *head, *tail;
    size_t queued;
    uint64_t free_ns; /* when the serialiser has sent everything queued */
    long *count;
    int eof;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t link_rand(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Reads what `from` has (one segment at a time) into the lane's delay line. */
static int lane_take(struct lane *l, const struct link_cfg *lk, uint64_t *rng)
{
    struct seg *sg = malloc(sizeof *sg);
    if (sg == NULL)
        return -1;
    ssize_t n = recv(l->from, sg->data, SEG, 0);
    if (n <= 0) {
        free(sg);
        l->eof = 1;
        return 0;
    }
    uint64_t now = mono_ns();
    uint64_t start = l->free_ns > now ? l->free_ns : now;
    uint64_t tx = (uint64_t)n * 8u * 1000000u / (uint64_t)lk->kbit; /* ns on the wire */
    l->free_ns = start + tx;
    if (lk->loss_permille > 0 && (long)(link_rand(rng) % 1000u) < lk->loss_permille)
        l->free_ns += (uint64_t)(lk->rtt_ms + 200) * 1000000u; /* lost: one RTO */
    sg->due_ns = l->free_ns + (uint64_t)lk->rtt_ms * 500000u; /* half the RTT each way */
    sg->len = (size_t)n;
    sg->next = NULL;
    if (l->tail != NULL)
        l->tail->next = sg;
    else
        l->head = sg;
    l->tail = sg;
    l->queued += (size_t)n;
    return 0;
}

/* Delivers every segment that is due; returns -1 when the receiver is gone. */
static int lane_give(struct lane *l)
{
    uint64_t now = mono_ns();
    while (l->head != NULL && l->head->due_ns <= now) {
        struct seg *sg = l->head;
        if (fault_write_all(l->to, sg->data, sg->len) != 0)
            return -1;
        __atomic_add_fetch(l->count, (long)sg->len, __ATOMIC_SEQ_CST);
        l->queued -= sg->len;
        l->head = sg->next;
        if (l->head == NULL)
            l->tail = NULL;
        free(sg);
    }
    return 0;
}

static void relay_link(int client, int upstream, const struct link_cfg *lk)
{
    struct lane lanes[2] = {
        { .from = client, .to = upstream, .count = &stats->up },
        { .from = upstream, .to = client, .count = &stats->down },
    };
    uint64_t rng = 0x11c0ffeeull ^ (uint64_t)getpid();
    /* TCP's handshake: the client's first bytes leave one round trip after it connected */
    lanes[0].free_ns = mono_ns() + (uint64_t)lk->rtt_ms * 1000000u;
    for (;;) {
        struct pollfd p[2];
        for (int i = 0; i < 2; i++) {
            p[i].fd = lanes[i].from;
            p[i].events = !lanes[i].eof && lanes[i].queued < LINK_QUEUE_MAX ? POLLIN : 0;
            p[i].revents = 0;
        }
        /* a side that closed, once everything it sent is delivered, closes the other */
        for (int i = 0; i < 2; i++)
            if (lanes[i].eof && lanes[i].head == NULL) {
                shutdown(lanes[i].to, SHUT_WR);
                if (lanes[1 - i].eof && lanes[1 - i].head == NULL)
                    return;
            }
        int timeout = -1;
        uint64_t now = mono_ns();
        for (int i = 0; i < 2; i++)
            if (lanes[i].head != NULL) {
                uint64_t due = lanes[i].head->due_ns;
                int ms = due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
                if (timeout < 0 || ms < timeout)
                    timeout = ms;
            }
        if (timeout < 0 && lanes[0].eof && lanes[1].eof)
            return;
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            return;
        for (int i = 0; i < 2; i++)
            if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) && lane_take(&lanes[i], lk, &rng) != 0)
                return;
        for (int i = 0; i < 2; i++)
            if (lane_give(&lanes[i]) != 0)
                return;
    }
}

int main(int argc, char **argv)
{
    long listen_port = -1, to_port = -1;
    const char *config = NULL, *port_file = NULL;
    const struct fault_arg args[] = {
        { "--listen", NULL, &listen_port },  { "--to", NULL, &to_port },
        { "--config", &config, NULL },       { "--port-file", &port_file, NULL },
        { "--stats", &stats_path, NULL },
    };
    fault_args(argc, argv, args, sizeof args / sizeof args[0]);
    if (listen_port < 0 || listen_port > 65535 || to_port <= 0 || to_port > 65535 || config == NULL) {
        fprintf(stderr, "usage: fault_proxy --listen PORT|0 --to PORT --config FILE [--port-file FILE]\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
    int ls = fault_listen("fault_proxy", (int)listen_port, 64, port_file);
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
    stats = mmap(NULL, sizeof *stats, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED) {
        perror("fault_proxy: mmap");
        return 1;
    }
    memset(stats, 0, sizeof *stats);
    stats_write();
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
        /* counted before the child runs: a reader that sees as many closed as connections
         * knows every byte is in the file */
        __atomic_add_fetch(&stats->connections, 1, __ATOMIC_SEQ_CST);
        stats_write();
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            close(ls);
            int up = connect_upstream((int)to_port);
            if (up < 0)
                _exit(0);
            struct link_cfg lk;
            read_link(config, &lk);
            if (lk.on)
                relay_link(c, up, &lk);
            else
                relay(c, up, &cfg);
            __atomic_add_fetch(&stats->closed, 1, __ATOMIC_SEQ_CST);
            stats_write();
            _exit(0);
        }
        close(c);
    }
}
