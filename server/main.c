/*
 * main.c - daffid's command line: daffid [-c DIR] [-o section.key=value]... [-t]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "config.h"
#include "isolate.h"
#include "log.h"
#include "pidfile.h"
#include "plugin.h"
#include "server.h"

#ifndef DAFFID_CONFDIR
#define DAFFID_CONFDIR "/etc/daffid/conf.d"
#endif

#define MAX_OVERRIDES 256

static void usage(FILE *out)
{
    fprintf(out,
            "usage: daffid [-c DIR] [-o SECTION.KEY=VALUE]... [-t]\n"
            "\n"
            "  -c, --config DIR     configuration directory (default " DAFFID_CONFDIR ")\n"
            "  -o, --set S.K=V      override a key: server sections as section.key=value,\n"
            "                       a plugin's keys as NAME:plugin.key=value or\n"
            "                       NAME:config.key=value (repeatable)\n"
            "  -t, --test           check the configuration and test-load every plugin,\n"
            "                       then exit: 0 when good, 1 with the errors\n"
            "  -v, -V, --version    print the version\n"
            "      --keys           list every configuration key (SECTION.KEY), then exit\n"
            "  -h, --help           this text\n");
}

static void print_errors(const dfd_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "daffid: %s\n", errs->msgs[i]);
}

/* daffid -t: the configuration, then every plugin loaded, ABI-checked, initialised,
 * finalised and unloaded again, and the callback table built. */
static int check_only(dfd_config *cfg)
{
    dfd_errors errs = {0};
    dfd_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    int rc = 0;
    if (dfd_server_private_dir(&srv) == -1) {
        dfd_errors_add(&errs, "cannot create a private directory for plugin copies");
        rc = -1;
    } else {
        rc = dfd_server_load_plugins(&srv, &errs);
    }
    size_t ncallbacks = srv.table ? srv.table->ncallbacks : 0;
    dfd_table_release(srv.table);
    for (size_t i = 0; i < srv.nplugins; i++)
        dfd_plugin_release(srv.plugins[i]);
    free(srv.plugins);
    dfd_supervisor_free(&srv); /* isolated plugins were test-loaded in children */
    dfd_server_private_dir_remove(&srv);
    if (rc == -1) {
        print_errors(&errs);
        fprintf(stderr, "daffid: configuration %s: test failed\n", cfg->dir);
        dfd_errors_free(&errs);
        return 1;
    }
    printf("daffid: configuration %s: ok (%zu plugins, %zu callbacks, %zu listeners)\n",
           cfg->dir, srv.nplugins, ncallbacks, cfg->nlisten);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = DAFFID_CONFDIR;
    const char *overrides[MAX_OVERRIDES];
    size_t noverrides = 0;
    int test = 0;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 'o'},
        {"test", no_argument, NULL, 't'},         {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {"keys", no_argument, NULL, 'K'},
        {NULL, 0, NULL, 0}};
    int opt;
    /* a child process of an isolated plugin (isolation = process): daffid started it */
    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return dfd_child_main();
    while ((opt = getopt_long(argc, argv, "c:o:tvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            dir = optarg;
            break;
        case 'o':
            if (noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "daffid: too many -o options (at most %d)\n", MAX_OVERRIDES);
                return 1;
            }
            overrides[noverrides++] = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'K':
            dfd_config_list_keys(stdout);
            return 0;
        case 'v':
        case 'V':
            printf("daffid %s (plugin ABI %u.%u)\n", DAFFID_VERSION, DAFFI_ABI_MAJOR,
                   DAFFI_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "daffid: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    /* a peer that vanishes mid-write must cost an EPIPE, never the process */
    signal(SIGPIPE, SIG_IGN);

    dfd_config *cfg = calloc(1, sizeof(*cfg));
    dfd_errors errs = {0};
    if (cfg == NULL)
        return 1;
    if (dfd_config_load(cfg, dir, overrides, noverrides, 1, &errs) == -1) {
        print_errors(&errs);
        fprintf(stderr, "daffid: configuration %s: %zu error%s\n", dir, errs.count,
                errs.count == 1 ? "" : "s");
        dfd_errors_free(&errs);
        free(cfg);
        return 1;
    }
    dfd_log_setup(cfg->log_level, cfg->log_target, cfg->log_format, "daffid");
    if (test) {
        int rc = check_only(cfg);
        dfd_config_free(cfg);
        free(cfg);
        return rc;
    }

    /* The pidfile first: a second daffid on it stops here, before it binds anything. */
    dfd_pidfile pidfile = {.fd = -1};
    if (cfg->pidfile && dfd_pidfile_acquire(&pidfile, cfg->pidfile, &errs) == -1) {
        print_errors(&errs);
        fprintf(stderr, "daffid: cannot start\n");
        dfd_errors_free(&errs);
        dfd_config_free(cfg);
        free(cfg);
        return 1;
    }

    /* Signals are handled by the main loop (evsignal); block them in every thread we
     * start so the kernel delivers them to the main thread only. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);

    dfd_server srv;
    int rc = dfd_server_init(&srv, cfg, &errs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == -1) {
        print_errors(&errs);
        fprintf(stderr, "daffid: cannot start\n");
        dfd_errors_free(&errs);
        dfd_server_destroy(&srv);
        dfd_pidfile_release(&pidfile);
        return 1;
    }
    /* every reload reads the directory again with the same overrides */
    srv.overrides = overrides;
    srv.noverrides = noverrides;
    /* The main thread accepts, reloads and answers the admin socket; the loops and
     * the blocking pool (started above, at the default priority) serve calls. Running
     * the main thread a little nicer keeps a burst of reloads (copies, dlopen) from
     * taking CPU time the calls in flight need. Best effort: errors are ignored. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
    rc = dfd_server_run(&srv);
    if (rc == -1) {
        /* shutdown_timeout passed: handlers are still running on other threads, so
         * leave without finalising plugins under them */
        dfd_pidfile_release(&pidfile);
        dfd_error("server.exit", "code=1 abandoned=%u msg=\"shutdown_timeout passed: "
                  "exiting with calls unfinished\"", srv.abandoned);
        _exit(1);
    }
    dfd_server_destroy(&srv);
    dfd_pidfile_release(&pidfile);
    dfd_info("server.exit", "code=%d", rc);
    return rc;
}
