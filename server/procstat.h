/*
 * procstat.h - what the kernel says about this process (Linux /proc), for the
 * process_* entries of the counter table (stats.h): the figures the Prometheus client
 * libraries export under the same names.
 */
#ifndef DFD_PROCSTAT_H
#define DFD_PROCSTAT_H

#include <stdint.h>

typedef struct dfd_procstat {
    uint64_t cpu_us;          /* user + system CPU time, microseconds */
    uint64_t rss_bytes;       /* resident set size */
    uint64_t vsize_bytes;     /* virtual memory size */
    uint64_t open_fds;        /* descriptors open now */
    uint64_t max_fds;         /* RLIMIT_NOFILE, soft */
    uint64_t start_time_us;   /* process start, microseconds since the Unix epoch */
} dfd_procstat;

/* Reads the figures of the calling process into *out. Returns 0, or -1 when /proc
 * (self/stat, self/fd, stat) or the descriptor limit cannot be read or parsed; *out
 * is then incomplete and not to be shown. */
int dfd_procstat_read(dfd_procstat *out);

#endif /* DFD_PROCSTAT_H */
