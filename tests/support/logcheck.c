/*
 * logcheck.c - see logcheck.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logcheck.h"

static int key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

int logcheck_line(const char *p)
{
    int pairs = 0;
    const char *keys[64];
    size_t lens[64];
    while (*p != '\0') {
        const char *k = p;
        while (key_char(*p))
            p++;
        if (p == k || *p != '=')
            return 0;
        /* a key said twice (event=... event=...) is ambiguous to every reader */
        for (int i = 0; i < pairs && i < 64; i++)
            if (lens[i] == (size_t)(p - k) && memcmp(keys[i], k, lens[i]) == 0)
                return 0;
        if (pairs < 64) {
            keys[pairs] = k;
            lens[pairs] = (size_t)(p - k);
        }
        p++;
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\0' || (unsigned char)*p < 0x20)
                    return 0;
                if (*p == '\\' && strchr("\"\\nrtx", *++p) == NULL)
                    return 0;
            }
            p++;
        } else {
            const char *v = p;
            while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '"' &&
                   *p != '=' && *p != '\\')
                p++;
            if (p == v)
                return 0; /* an empty value is written "" */
        }
        pairs++;
        if (*p == ' ') {
            p++;
            if (*p == '\0')
                return 0;
        } else if (*p != '\0') {
            return 0;
        }
    }
    return pairs >= 3; /* ts, level, event at least */
}

int logcheck_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int bad = 0, no = 0;

    if (f == NULL)
        return -1;
    while ((n = getline(&line, &cap, f)) != -1) {
        no++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (strncmp(line, "ts=", 3) != 0)
            continue;
        if (!logcheck_line(line)) {
            if (bad++ < 10)
                fprintf(stderr, "logcheck: %s:%d is not logfmt: %s\n", path, no, line);
        }
    }
    free(line);
    fclose(f);
    return bad;
}
