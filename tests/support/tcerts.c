/*
 * tcerts.c - test certificates made with the openssl command line (see tcerts.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcerts.h"

const char *tcerts_path(const tcerts *t, const char *name, char *out, unsigned long outsz)
{
    snprintf(out, outsz, "%s/%s", t->dir, name);
    return out;
}

/* Runs one shell command in t->dir, its output kept in a log file there. Returns 0, or
 * -1 after printing the command and what it said. */
static int run(const tcerts *t, const char *cmd)
{
    char line[4096], log[300];

    snprintf(log, sizeof(log), "%s/openssl.log", t->dir);
    snprintf(line, sizeof(line), "cd '%s' && (%s) >openssl.log 2>&1", t->dir, cmd);
    if (system(line) == 0)
        return 0;
    fprintf(stderr, "tcerts: failed: %s\n", cmd);
    FILE *f = fopen(log, "r");
    if (f != NULL) {
        size_t n;
        char buf[2048];
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
    }
    return -1;
}

#define KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

int tcerts_make(tcerts *t, const char *dir)
{
    static const char *const cmds[] = {
        "openssl req -x509 " KEY " -keyout ca.key -out ca.pem -days 2 -subj /CN=daffi-test-ca",
        "openssl req -x509 " KEY " -keyout ca2.key -out ca2.pem -days 2 -subj /CN=daffi-test-ca2",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext",
        "openssl req " KEY " -keyout server.key -out server.csr -subj /CN=localhost && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 2 -extfile server.ext",
        "openssl req " KEY " -keyout server2.key -out server2.csr -subj /CN=localhost && "
        "openssl x509 -req -in server2.csr -CA ca2.pem -CAkey ca2.key -CAcreateserial "
        "-out server2.pem -days 2 -extfile server.ext",
        "openssl req " KEY " -keyout alice.key -out alice.csr -subj /CN=alice && "
        "openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out alice.pem -days 2",
        "openssl req " KEY " -keyout expired.key -out expired.csr -subj /CN=old && "
        "openssl x509 -req -in expired.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out expired.pem -days -1",
        "openssl req -x509 " KEY " -keyout rogue.key -out rogue.pem -days 2 -subj /CN=mallory",
    };

    snprintf(t->dir, sizeof(t->dir), "%s", dir);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (run(t, cmds[i]) == -1)
            return -1;
    return 0;
}
