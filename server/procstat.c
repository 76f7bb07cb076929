/*
 * procstat.c - this process's CPU time, memory, descriptors and start time from /proc
 * (see procstat.h), computed as the Prometheus client libraries do: CPU from
 * utime + stime of /proc/self/stat, the start from its starttime plus the boot time
 * (btime) of /proc/stat.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procstat.h"

/* Reads at most size - 1 bytes of path into buf, NUL-terminated. Returns the length,
 * or -1. */
static long read_small_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    int err = ferror(f);
    fclose(f);
    if (err)
        return -1;
    buf[n] = '\0';
    return (long)n;
}

/* The btime line of /proc/stat: boot time in seconds since the epoch, or 0. */
static uint64_t boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    uint64_t bt = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return bt;
}

/* Open descriptors: the entries of /proc/self/fd but the one reading it. */
static int count_fds(uint64_t *out)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    *out = n > 0 ? n - 1 : 0;
    return 0;
}

int dfd_procstat_read(dfd_procstat *out)
{
    char buf[1024];
    memset(out, 0, sizeof(*out));

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || count_fds(&out->open_fds) == -1)
        return -1;
    out->max_fds = (uint64_t)rl.rlim_cur;

    /* pid (comm) state ppid ...: comm may hold spaces and parentheses, so the fields
     * are counted from the last ')'; utime is field 14, stime 15, starttime 22,
     * vsize 23, rss 24 (in pages) */
    long n = read_small_file("/proc/self/stat", buf, sizeof(buf));
    char *p = n > 0 ? strrchr(buf, ')') : NULL, *save = NULL;
    if (p == NULL)
        return -1;
    /* field k (3.. after the ')'), all of them plain numbers but the state (3) */
    uint64_t f[25] = {0};
    int k = 3;
    for (char *tok = strtok_r(p + 1, " \n", &save); tok != NULL && k < 25;
         tok = strtok_r(NULL, " \n", &save), k++)
        f[k] = strtoull(tok, NULL, 10);
    if (k < 25)
        return -1;
    uint64_t utime = f[14], stime = f[15], start = f[22], vsize = f[23];
    int64_t rss = (int64_t)f[24];
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t btime = boot_time_s();
    if (tck <= 0 || page <= 0 || btime == 0)
        return -1;
    out->cpu_us = (utime + stime) * 1000000u / (uint64_t)tck;
    out->start_time_us = btime * 1000000u + start * 1000000u / (uint64_t)tck;
    out->vsize_bytes = vsize;
    out->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    return 0;
}
