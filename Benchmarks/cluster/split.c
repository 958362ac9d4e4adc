/*
 * split.c — spreads the load generator's connections over several server nodes.
 *
 * `relayctl bench` speaks to one host:port. For `make bench-cluster` the harness preloads this
 * shim into relayctl (LD_PRELOAD) and points relayctl at a port nothing listens on (the
 * "virtual" port); connect(2) calls to 127.0.0.1:<virtual port> are sent to one of the nodes'
 * real ports instead. Nothing else changes: no proxy, no extra hop, no per-packet cost; the
 * rewrite happens once per connection, before the kernel sees it.
 *
 * Which node:
 *  - subscribers: relayctl binds each subscriber socket to a loopback source address
 *    127.0.0.<1 + i mod S> (--sources S) before connecting. Source octet o goes to node
 *    ((o - 1) mod S) * N / S, so with S = 16 and N = 2 octets 1–8 go to the first node and
 *    9–16 to the second. Subscriber i listens to channel i mod C; with C = 1 (or C ≡ 8 mod 16,
 *    e.g. 1000) every channel has subscribers on both nodes, half each.
 *  - publishers: their sockets are not bound (address 0.0.0.0 before connect). They go to
 *    node RELAY_SPLIT_PUBLISH (an index, default 0), or alternate over the nodes when it is "rr".
 *
 * Environment:
 *   RELAY_SPLIT_PORT     the virtual port (required; without it the shim does nothing)
 *   RELAY_SPLIT_NODES    comma-separated real ports, one per node (required)
 *   RELAY_SPLIT_SOURCES  S, as passed to relayctl --sources (default 16)
 *   RELAY_SPLIT_PUBLISH  publisher node index or "rr" (default 0)
 *   RELAY_SPLIT_REPORT   file to append the per-node counts to at exit (optional)
 *
 * Build: cc -O2 -shared -fPIC -o split.so split.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_NODES 8

static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int virtual_port = -1;
static int node_ports[MAX_NODES];
static int node_count;
static int sources = 16;
static int publish_node;   /* -1 = round robin */
static const char *report_path;
static atomic_long sub_counts[MAX_NODES], pub_counts[MAX_NODES], pub_next;

static void report(void) {
    if (!report_path || virtual_port < 0) return;
    FILE *f = fopen(report_path, "a");
    if (!f) return;
    for (int n = 0; n < node_count; n++)
        fprintf(f, "node %d port %d subscribers %ld publishers %ld\n", n, node_ports[n],
                atomic_load(&sub_counts[n]), atomic_load(&pub_counts[n]));
    fclose(f);
}

__attribute__((constructor)) static void split_init(void) {
    real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *p = getenv("RELAY_SPLIT_PORT"), *nodes = getenv("RELAY_SPLIT_NODES");
    if (!p || !nodes) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", nodes);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && node_count < MAX_NODES; t = strtok_r(NULL, ",", &save))
        node_ports[node_count++] = atoi(t);
    if (node_count == 0) return;
    const char *s = getenv("RELAY_SPLIT_SOURCES");
    if (s && atoi(s) > 0) sources = atoi(s);
    const char *pub = getenv("RELAY_SPLIT_PUBLISH");
    publish_node = (pub && strcmp(pub, "rr") == 0) ? -1 : (pub ? atoi(pub) % node_count : 0);
    report_path = getenv("RELAY_SPLIT_REPORT");
    virtual_port = atoi(p);
    atexit(report);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (virtual_port > 0 && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (ntohs(in->sin_port) == virtual_port && ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK) {
            struct sockaddr_in local;
            socklen_t llen = sizeof local;
            int node;
            if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0 && local.sin_family == AF_INET &&
                local.sin_addr.s_addr != htonl(INADDR_ANY)) {
                int octet = (int)(ntohl(local.sin_addr.s_addr) & 0xff);
                node = ((octet - 1) % sources) * node_count / sources;
                atomic_fetch_add(&sub_counts[node], 1);
            } else {
                node = publish_node >= 0 ? publish_node : (int)(atomic_fetch_add(&pub_next, 1) % node_count);
                atomic_fetch_add(&pub_counts[node], 1);
            }
            struct sockaddr_in to = *in;
            to.sin_port = htons((unsigned short)node_ports[node]);
            return real_connect(fd, (const struct sockaddr *)&to, sizeof to);
        }
    }
    return real_connect(fd, addr, len);
}
