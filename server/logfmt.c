/*
 * logfmt.c - writing and reading logfmt values (see logfmt.h).
 */
#include <stdio.h>
#include <string.h>

#include "logfmt.h"

static int bare_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '=' && ch != '\\';
}

const char *dfd_logfmt_value_n(char *out, size_t size, const char *s, size_t len)
{
    size_t i, o = 0;
    int bare = len > 0;
    for (i = 0; i < len && bare; i++)
        bare = bare_char((unsigned char)s[i]);
    if (bare && len < size) {
        memcpy(out, s, len);
        out[len] = '\0';
        return out;
    }
    if (size < 3) {
        if (size > 0)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[5];
        size_t n;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, n = 2;
        } else if (ch == '\n') {
            esc[0] = '\\', esc[1] = 'n', n = 2;
        } else if (ch == '\r') {
            esc[0] = '\\', esc[1] = 'r', n = 2;
        } else if (ch == '\t') {
            esc[0] = '\\', esc[1] = 't', n = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
            n = 4;
        } else {
            esc[0] = (char)ch, n = 1;
        }
        if (o + n + 2 > size) /* room for the closing quote and the NUL */
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *dfd_logfmt_value(char *out, size_t size, const char *s)
{
    return dfd_logfmt_value_n(out, size, s ? s : "", s ? strlen(s) : 0);
}

/* Reads one pair at *p. Calls emit(key, klen, value, vlen, quoted, arg) for it; the
 * value of a quoted one still holds its escapes. Returns 0, or -1 when malformed. */
typedef void (*pair_fn)(const char *k, size_t klen, const char *v, size_t vlen, int quoted,
                        void *arg);

static int read_pairs(const char *p, pair_fn emit, void *arg)
{
    if (*p == '\0')
        return -1;
    for (;;) {
        const char *k = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '_' || *p == '.' || *p == '-')
            p++;
        if (p == k || *p != '=')
            return -1;
        size_t klen = (size_t)(p - k);
        p++;
        const char *v = p;
        int quoted = *p == '"';
        if (quoted) {
            v = ++p;
            while (*p != '"') {
                if (*p == '\0' || (unsigned char)*p < 0x20)
                    return -1;
                if (*p == '\\') {
                    p++;
                    if (*p == 'x') {
                        if (!p[1] || !p[2])
                            return -1;
                        p += 2;
                    } else if (*p != '"' && *p != '\\' && *p != 'n' && *p != 'r' && *p != 't') {
                        return -1;
                    }
                }
                p++;
            }
            if (emit)
                emit(k, klen, v, (size_t)(p - v), 1, arg);
            p++;
        } else {
            while (bare_char((unsigned char)*p))
                p++;
            if (emit)
                emit(k, klen, v, (size_t)(p - v), 0, arg);
        }
        if (*p == '\0')
            return 0;
        if (*p != ' ' || p[1] == '\0')
            return -1;
        p++;
    }
}

int dfd_logfmt_valid(const char *line)
{
    return read_pairs(line, NULL, NULL) == 0;
}

typedef struct json_out {
    char *out;
    size_t size, len;
} json_out;

static void json_put(json_out *j, const char *s, size_t n)
{
    if (j->len + n + 1 > j->size)
        n = j->size > j->len + 1 ? j->size - j->len - 1 : 0;
    memcpy(j->out + j->len, s, n);
    j->len += n;
    j->out[j->len] = '\0';
}

/* Writes s (len bytes; logfmt escapes undone when unescape) as a JSON string. */
static void json_string(json_out *j, const char *s, size_t len, int unescape)
{
    json_put(j, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (unescape && ch == '\\' && i + 1 < len) {
            char e = s[++i];
            if (e == 'x' && i + 2 < len) {
                unsigned v = 0;
                sscanf(s + i + 1, "%2x", &v);
                ch = (unsigned char)v;
                i += 2;
            } else {
                ch = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : (unsigned char)e;
            }
        }
        char buf[8];
        if (ch == '"' || ch == '\\') {
            buf[0] = '\\', buf[1] = (char)ch;
            json_put(j, buf, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            int n = snprintf(buf, sizeof(buf), "\\u%04x", ch);
            json_put(j, buf, (size_t)n);
        } else {
            buf[0] = (char)ch;
            json_put(j, buf, 1);
        }
    }
    json_put(j, "\"", 1);
}

static void json_pair(const char *k, size_t klen, const char *v, size_t vlen, int quoted,
                      void *arg)
{
    json_out *j = arg;
    json_put(j, ",", 1);
    json_string(j, k, klen, 0);
    json_put(j, ":", 1);
    json_string(j, v, vlen, quoted);
}

int dfd_logfmt_to_json(const char *line, char *out, size_t size)
{
    json_out j = {out, size, 0};
    if (size > 0)
        out[0] = '\0';
    return read_pairs(line, json_pair, &j);
}
