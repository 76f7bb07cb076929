/*
 * promcheck.c - the Prometheus exposition check (see promcheck.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "expect.h"
#include "promcheck.h"
#include "thttp.h"
#include "rawconn.h"

/* Run by python3 with the exposition's file as argv[1]; prints the samples. */
static const char check_py[] =
    "import re, sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "text = open(sys.argv[1]).read()\n"
    "assert text.endswith('\\n'), 'the exposition must end with a newline'\n"
    "fams = list(text_string_to_metric_families(text))\n"
    "name_re = r'[a-zA-Z_:][a-zA-Z0-9_:]*'\n"
    "helps, types, cur = set(), {}, None\n"
    "for i, line in enumerate(text.split('\\n')[:-1], 1):\n"
    "    if line.startswith('# HELP '):\n"
    "        name = line.split(' ')[2]\n"
    "        assert re.fullmatch(name_re, name) and name not in helps, (i, line)\n"
    "        helps.add(name)\n"
    "    elif line.startswith('# TYPE '):\n"
    "        f = line.split(' ')\n"
    "        assert len(f) == 4 and f[3] in ('counter', 'gauge', 'histogram'), (i, line)\n"
    "        assert f[2] in helps and f[2] not in types, ('TYPE without HELP or twice', i)\n"
    "        types[f[2]] = f[3]; cur = f[2]\n"
    "        assert (f[3] == 'counter') == f[2].endswith('_total'), ('_total is for counters, and every counter has it', i, line)\n"
    "        base = f[2][:-len('_total')] if f[3] == 'counter' else f[2]\n"
    "        for unit in ('seconds', 'bytes'):\n"
    "            assert unit not in base.split('_') or base.endswith('_' + unit), ('the unit must come last', i, line)\n"
    "    else:\n"
    "        m = re.fullmatch('(' + name_re + r')(\\{[^}]*\\})? (\\S+)', line)\n"
    "        assert m and cur is not None, ('bad sample line', i, line)\n"
    "        n = m.group(1)\n"
    "        assert n == cur or (types[cur] == 'histogram' and n in (cur + '_bucket', cur + '_sum', cur + '_count')), ('sample outside its family', i, line)\n"
    "        v = float(m.group(3))\n"
    "        assert types[cur] != 'counter' or v >= 0, ('negative counter', i)\n"
    "for f in fams:\n"
    "    for s in f.samples:\n"
    "        o = s.labels.get('outcome')\n"
    "        assert o is None or re.fullmatch('[a-z_]+', o), ('outcome values are lower case', s)\n"
    "    if f.type != 'histogram':\n"
    "        continue\n"
    "    series = {}\n"
    "    for s in f.samples:\n"
    "        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))\n"
    "        e = series.setdefault(key, {'b': [], 'count': None})\n"
    "        if s.name.endswith('_bucket'): e['b'].append((float(s.labels['le']), s.value))\n"
    "        elif s.name.endswith('_count'): e['count'] = s.value\n"
    "    for key, e in series.items():\n"
    "        les = [b[0] for b in e['b']]; vals = [b[1] for b in e['b']]\n"
    "        assert les == sorted(les) and les[-1] == float('inf'), ('buckets', key)\n"
    "        assert all(vals[i] <= vals[i + 1] for i in range(len(vals) - 1)), ('not cumulative', key)\n"
    "        assert vals[-1] == e['count'], ('+Inf bucket differs from _count', key)\n"
    "for f in fams:\n"
    "    for s in f.samples:\n"
    "        print('%s{%s} %d' % (s.name, ','.join('%s=%s' % (k, s.labels[k]) for k in sorted(s.labels)), s.value))\n";

/* Writes len bytes of p to a new temporary file; its path into path. */
static void write_temp(char *path, size_t size, const char *what, const char *p)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, size, "%s/daffid-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
    int fd = mkstemp(path);
    if (fd == -1)
        fail_msg("mkstemp %s failed", path);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(p, f);
    assert_int_equal(fclose(f), 0);
}

char *promcheck(const char *text)
{
    char script[256], data[256], cmd[800];
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";

    write_temp(script, sizeof(script), "promcheck-py", check_py);
    write_temp(data, sizeof(data), "promcheck-txt", text);
    snprintf(cmd, sizeof(cmd), "%s %s %s 2>&1", py, script, data);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    assert_non_null(out);
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 4096) {
            out = realloc(out, cap *= 2);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    int st = pclose(p);
    unlink(script);
    unlink(data);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the Prometheus check failed (python3-prometheus-client installed? "
                 "mk/deps.sh installs it):\n%s", out);
    return out;
}

long long promcheck_sample(const char *out, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = out; p != NULL && *p != '\0';) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

double promcheck_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    fail_msg("no sample of %s in the exposition", name);
    return -1;
}

char *promcheck_http_get(int port, const char *path)
{
    char addr[64], req[256];
    snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", port);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    return thttp_exchange(addr, req);
}

char *promcheck_scrape(int port, char **samples)
{
    char *resp = promcheck_http_get(port, "/metrics");
    if (strncmp(resp, "HTTP/1.", 7) != 0 || strncmp(resp + 9, "200", 3) != 0)
        fail_msg("GET /metrics on port %d: %.200s", port, resp);
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    char *text = strdup(body + 4);
    assert_non_null(text);
    free(resp);
    char *out = promcheck(text);
    if (samples != NULL)
        *samples = out;
    else
        free(out);
    return text;
}
