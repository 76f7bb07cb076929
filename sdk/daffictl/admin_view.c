/*
 * admin_view.c - tables and key/value views of admin replies (see admin_view.h).
 */
#include <stdlib.h>
#include <string.h>

#include "admin_view.h"

/* The text of a scalar JSON value into buf ("-" for null or absent). */
static const char *view_text(json_t *v, char *buf, size_t size)
{
    if (v == NULL || json_is_null(v))
        snprintf(buf, size, "-");
    else if (json_is_string(v))
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, size, "%.1f", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
    else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        snprintf(buf, size, "%s", t ? t : "?");
        free(t);
    }
    return buf;
}

/* "key   value" for every member of o but status and command; objects nest with a
 * "key.sub" prefix. */
static void view_pairs(json_t *o, const char *prefix, FILE *out)
{
    const char *key;
    json_t *v;
    char buf[512], name[128];

    json_object_foreach(o, key, v) {
        if (prefix[0] == '\0' && (strcmp(key, "status") == 0 || strcmp(key, "command") == 0))
            continue;
        snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (json_is_object(v)) {
            view_pairs(v, name, out);
            continue;
        }
        fprintf(out, "%-22s %s\n", name, view_text(v, buf, sizeof(buf)));
    }
}

/* A table of the objects of list: each column is {title, key, width}; key may be
 * "a.b" for a member of a nested object. */
typedef struct view_col {
    const char *title;
    const char *key;
    int width;
} view_col;

static json_t *view_get(json_t *o, const char *key)
{
    const char *dot = strchr(key, '.');
    if (dot == NULL)
        return json_object_get(o, key);
    char first[64];
    snprintf(first, sizeof(first), "%.*s", (int)(dot - key), key);
    return json_object_get(json_object_get(o, first), dot + 1);
}

static void view_table(json_t *list, const view_col *cols, size_t ncols, FILE *out)
{
    char buf[512];
    size_t i;
    json_t *row;

    for (size_t c = 0; c < ncols; c++)
        fprintf(out, "%-*s%s", cols[c].width, cols[c].title, c + 1 < ncols ? " " : "\n");
    json_array_foreach(list, i, row) {
        for (size_t c = 0; c < ncols; c++)
            fprintf(out, "%-*s%s", cols[c].width, view_text(view_get(row, cols[c].key), buf,
                                                             sizeof(buf)),
                    c + 1 < ncols ? " " : "\n");
    }
}

void ctl_admin_view(const char *name, json_t *reply, FILE *out)
{
    if (strcmp(name, "metrics") == 0) {
        fputs(json_string_value(json_object_get(reply, "text")), out);
        return;
    }
    if (strcmp(name, "plugins") == 0) {
        static const view_col cols[] = {
            {"NAME", "name", 14}, {"VERSION", "version", 9}, {"GEN", "generation", 4},
            {"CALLS", "calls", 10}, {"ERRORS", "errors", 8}, {"INFLIGHT", "in_flight", 8},
            {"LOADED", "loaded_at", 20}, {"RELOAD", "last_reload.result", 9},
            {"FILE", "file", 0},
        };
        view_table(json_object_get(reply, "plugins"), cols, sizeof(cols) / sizeof(cols[0]),
                   out);
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(reply, "plugins"), i, p) {
            const char *err = json_string_value(view_get(p, "last_reload.error"));
            if (err != NULL)
                fprintf(out, "%s: last reload failed: %s\n",
                        json_string_value(json_object_get(p, "name")), err);
        }
        return;
    }
    if (strcmp(name, "callbacks") == 0) {
        static const view_col cols[] = {
            {"CALLBACK", "name", 16}, {"PLUGIN", "plugin", 12}, {"GEN", "generation", 4},
            {"CALLS", "calls", 10}, {"ERRORS", "errors", 8}, {"INFLIGHT", "in_flight", 8},
            {"MEAN_US", "mean_us", 9}, {"OUTCOMES", "outcomes", 0},
        };
        view_table(json_object_get(reply, "callbacks"), cols, sizeof(cols) / sizeof(cols[0]),
                   out);
        return;
    }
    if (strcmp(name, "members") == 0) {
        static const view_col cols[] = {
            {"MEMBER", "name", 20}, {"SELF", "self", 5}, {"CALLBACKS", "callbacks", 0},
        };
        view_table(json_object_get(reply, "members"), cols, sizeof(cols) / sizeof(cols[0]),
                   out);
        return;
    }
    if (strcmp(name, "stats") == 0) {
        const char *kinds[] = {"counters", "gauges"};
        const char *key;
        json_t *v;
        char buf[64];
        fprintf(out, "%-26s %-8s %s\n", "NAME", "TYPE", "VALUE");
        for (int k = 0; k < 2; k++)
            json_object_foreach(json_object_get(reply, kinds[k]), key, v)
                fprintf(out, "%-26s %-8s %s\n", key, k ? "gauge" : "counter",
                        view_text(v, buf, sizeof(buf)));
        return;
    }
    if (strcmp(name, "reload") == 0) {
        static const view_col cols[] = {
            {"PLUGIN", "name", 14}, {"GEN", "generation", 4}, {"RESULT", "result", 10},
            {"ERROR", "error", 0},
        };
        view_table(json_object_get(reply, "plugins"), cols, sizeof(cols) / sizeof(cols[0]),
                   out);
        return;
    }
    view_pairs(reply, "", out);
}
