/*
 * tnats.c - real nats-server processes for tests (see tnats.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "daemon.h"
#include "tnats.h"

#define TNATS_START_MS 10000

const char *tnats_binary(void)
{
    static const char *const fixed[] = { "/usr/sbin/nats-server", "/usr/bin/nats-server" };
    const char *path = getenv("PATH");
    const char *forced = getenv("DAFFI_TEST_NATS_SERVER");
    static __thread char found[512]; /* per thread, not shared state */
    if (forced != NULL)
        return access(forced, X_OK) == 0 ? forced : NULL;
    if (path != NULL) {
        char *copy = strdup(path), *save = NULL;
        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d != NULL;
             d = strtok_r(NULL, ":", &save)) {
            snprintf(found, sizeof(found), "%s/nats-server", d);
            if (access(found, X_OK) == 0) {
                free(copy);
                return found;
            }
        }
        free(copy);
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (access(fixed[i], X_OK) == 0)
            return fixed[i];
    return NULL;
}

int tnats_init(tnats *n, int cluster)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "/tmp/tnats-XXXXXX");
    if (mkdtemp(n->dir) == NULL) {
        fprintf(stderr, "tnats: mkdtemp: %s\n", strerror(errno));
        n->dir[0] = '\0';
        return -1;
    }
    n->port = tdaemon_free_port();
    n->cport = cluster ? tdaemon_free_port() : 0;
    if (n->port == -1 || n->cport == -1)
        return -1;
    snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
    return 0;
}

/* 1 when 127.0.0.1:port accepts a connection. */
static int tnats_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd != -1 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd != -1)
        close(fd);
    return ok;
}

static void tnats_dump(const tnats *n)
{
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/nats.log", n->dir);
    FILE *f = fopen(path, "r");
    fprintf(stderr, "---- %s\n", path);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    if (f != NULL)
        fclose(f);
}

int tnats_start(tnats *n, const char *routes)
{
    const char *bin = tnats_binary();
    char port[16], cluster[64], log[128];
    if (bin == NULL) {
        fprintf(stderr, "tnats: nats-server not found\n");
        return -1;
    }
    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(cluster, sizeof(cluster), "nats://127.0.0.1:%d", n->cport);
    snprintf(log, sizeof(log), "%s/nats.log", n->dir);
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *argv[24] = { "nats-server", "-a", "127.0.0.1", "-p", port };
        int i = 5;
        if (n->config != NULL) {
            argv[i++] = "-c";
            argv[i++] = n->config;
        }
        if (n->tls_cert != NULL) {
            argv[i++] = "--tlscert";
            argv[i++] = n->tls_cert;
            argv[i++] = "--tlskey";
            argv[i++] = n->tls_key;
        }
        if (n->cport != 0) {
            argv[i++] = "--cluster";
            argv[i++] = cluster;
            argv[i++] = "--cluster_name";
            argv[i++] = "tnats";
            if (routes != NULL) {
                argv[i++] = "--routes";
                argv[i++] = routes;
            }
        }
        argv[i] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    n->pid = pid;
    for (int waited = 0; waited < TNATS_START_MS; waited += 10) {
        if (tnats_accepts(n->port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            n->pid = 0;
            break;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "tnats: nats-server on port %d did not start\n", n->port);
    tnats_dump(n);
    tnats_kill(n);
    return -1;
}

void tnats_kill(tnats *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
}

void tnats_cleanup(tnats *n)
{
    char path[128];
    tnats_kill(n);
    if (n->dir[0] == '\0')
        return;
    /* the dir may hold a test's certificates too */
    snprintf(path, sizeof(path), "rm -rf '%s'", n->dir);
    if (system(path) != 0)
        fprintf(stderr, "tnats: cannot remove %s\n", n->dir);
    n->dir[0] = '\0';
}
