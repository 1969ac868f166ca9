/* redis_fixture.h - a real redis-server of the test's own: started on a unix socket in a
 * folder of the test (no TCP port, AOF with appendfsync always, no RDB), ready once it answers
 * PING with PONG (not while it still loads its AOF), stopped by its pid. Header-only, for the
 * unit tests that need Redis (test_log, test_server). */
#ifndef DR_TEST_REDIS_FIXTURE_H
#define DR_TEST_REDIS_FIXTURE_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct redis_srv {
    pid_t pid;
    char dir[256], sock[320];
} redis_srv;

static int redis_installed(void) { return system("command -v redis-server >/dev/null 2>&1") == 0; }

/* 1 when the server at path answers PING with +PONG (a loading server answers -LOADING). */
static int redis_ready(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    char buf[64] = {0};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6 && recv(fd, buf, sizeof buf - 1, 0) > 0 &&
             strncmp(buf, "+PONG", 5) == 0;
    close(fd);
    return ok;
}

/* Starts redis-server in r->dir on r->sock (both set by the caller); 0 once it answers, -1
 * (with a message on stderr) when it exited or did not answer within 5 s. */
static int redis_start(redis_srv *r) {
    fflush(NULL); /* the child must not write our buffered output again */
    r->pid = fork();
    if (r->pid < 0) return -1;
    if (r->pid == 0) {
        char log[400];
        snprintf(log, sizeof log, "%s/redis.log", r->dir);
        if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(126);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", r->sock,
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--dir", r->dir,
               "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int k = 0; k < 500; k++) { /* 5 s */
        if (redis_ready(r->sock)) return 0;
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            fprintf(stderr, "redis-server exited (status %d), see %s/redis.log\n", status, r->dir);
            r->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    fprintf(stderr, "redis-server did not answer on %s\n", r->sock);
    return -1;
}

/* Stops it with sig (SIGTERM: a clean stop; SIGKILL: a crash) and reaps it. */
static void redis_stop(redis_srv *r, int sig) {
    if (r->pid <= 0) return;
    kill(r->pid, sig);
    int status;
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

#endif /* DR_TEST_REDIS_FIXTURE_H */
