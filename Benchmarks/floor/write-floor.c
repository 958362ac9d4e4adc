// The floor of a relay's fan-out on this machine: the CPU one write(2) of a 1 KiB WebSocket
// frame to a loopback TCP socket costs the writer, with a reader process draining the other
// end. Also writev(2) of 16 frames per call (what one event-loop tick flushing 16 queued frames
// costs per frame). And the fan-out of scenario (b) of bench-compare: one frame to each of 10
// sockets in turn out of SOCKETS (10,000), paced at RATE frames/s (10,000), so every write finds
// a cold socket and a sleeping reader, as a delivery to one of 10,000 subscribers does.
// Prints one JSON line.
// Usage: write-floor [SECONDS_PER_CASE [SOCKETS [RATE]]]   (build: cc -O2 -o write-floor write-floor.c)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* One frame to each of `n` loopback sockets in turn, 10 per tick, paced at `rate` frames/s; a
 * reader process drains them all with epoll. Returns the writer's CPU microseconds per frame. */
static int spread(int n, double rate, double seconds, const unsigned char *frame, size_t size, double *cpu_us, long *frames_out) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 4096) || getsockname(listener, (struct sockaddr *)&a, &len)) {
        perror("listen");
        return -1;
    }
    pid_t reader = fork();
    if (reader == 0) {
        int ep = epoll_create1(0), open_sockets = n;
        for (int i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); _exit(1); }
            fcntl(s, F_SETFL, O_NONBLOCK);
            struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        }
        static char buf[1 << 16];
        struct epoll_event evs[256];
        while (open_sockets > 0) {
            int k = epoll_wait(ep, evs, 256, -1);
            for (int i = 0; i < k; i++) {
                ssize_t r;
                while ((r = read(evs[i].data.fd, buf, sizeof buf)) > 0) {}
                if (r == 0) { close(evs[i].data.fd); open_sockets--; }
            }
        }
        _exit(0);
    }
    int *w = malloc(sizeof(int) * n), one = 1;
    for (int i = 0; i < n; i++) {
        w[i] = accept(listener, NULL, NULL);
        if (w[i] < 0) { perror("accept"); return -1; }
        setsockopt(w[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    sleep(1);  // the reader is now asleep in epoll_wait
    long frames = 0;
    int next = 0;
    double c0 = cpu_seconds(), t0 = wall_seconds();
    while (wall_seconds() - t0 < seconds) {
        for (int k = 0; k < 10; k++, frames++) {
            if (write(w[next], frame, size) != (ssize_t)size) { fprintf(stderr, "short write\n"); return -1; }
            next = (next + 1) % n;
        }
        double due = t0 + frames / rate, now = wall_seconds();
        if (due > now) {
            struct timespec ts = { .tv_sec = (time_t)(due - now), .tv_nsec = (long)((due - now - (time_t)(due - now)) * 1e9) };
            nanosleep(&ts, NULL);
        }
    }
    double cpu = cpu_seconds() - c0;
    for (int i = 0; i < n; i++) close(w[i]);
    close(listener);
    waitpid(reader, NULL, 0);
    free(w);
    *cpu_us = cpu / frames * 1e6;
    *frames_out = frames;
    return 0;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 1) || getsockname(listener, (struct sockaddr *)&a, &len)) {
        perror("listen");
        return 1;
    }
    pid_t reader = fork();
    if (reader == 0) {  // drains the socket until the writer closes it
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); _exit(1); }
        static char buf[1 << 16];
        while (read(s, buf, sizeof buf) > 0) {}
        _exit(0);
    }
    int w = accept(listener, NULL, NULL);
    int one = 1;
    setsockopt(w, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // a 1 KiB server-to-client text frame: 0x81, 126, 16-bit length 1020, payload
    static unsigned char frame[1024];
    frame[0] = 0x81; frame[1] = 126; frame[2] = 1020 >> 8; frame[3] = 1020 & 0xFF;
    memset(frame + 4, 'x', sizeof frame - 4);

    printf("{");
    for (int batch = 1; batch <= 16; batch += 15) {
        struct iovec iov[16];
        for (int i = 0; i < batch; i++) { iov[i].iov_base = frame; iov[i].iov_len = sizeof frame; }
        long frames = 0;
        double c0 = cpu_seconds(), t0 = wall_seconds();
        while (wall_seconds() - t0 < seconds) {
            for (int k = 0; k < 256; k++) {
                ssize_t n = batch == 1 ? write(w, frame, sizeof frame) : writev(w, iov, batch);
                if (n != (ssize_t)(sizeof frame * batch)) { fprintf(stderr, "short write %zd\n", n); return 1; }
                frames += batch;
            }
        }
        double cpu = cpu_seconds() - c0, wall = wall_seconds() - t0;
        printf("%s\"%s\":{\"frames\":%ld,\"cpu_us_per_frame\":%.3f,\"frames_per_cpu_second\":%.0f,\"wall_frames_per_second\":%.0f}",
               batch == 1 ? "" : ",", batch == 1 ? "write_1KiB" : "writev_16x1KiB", frames, cpu / frames * 1e6, frames / cpu, frames / wall);
    }
    close(w);
    waitpid(reader, NULL, 0);
    int sockets = argc > 2 ? atoi(argv[2]) : 10000;
    double rate = argc > 3 ? atof(argv[3]) : 10000;
    double cpu_us;
    long spread_frames;
    if (spread(sockets, rate, seconds * 5, frame, sizeof frame, &cpu_us, &spread_frames)) return 1;
    printf(",\"spread_1KiB\":{\"sockets\":%d,\"rate\":%.0f,\"frames\":%ld,\"cpu_us_per_frame\":%.3f}", sockets, rate, spread_frames, cpu_us);
    printf("}\n");
    return 0;
}
