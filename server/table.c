/*
 * table.c - the callback table (see table.h).
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "table.h"

/* FNV-1a: short method names, one pass, good spread for a power-of-two table. */
size_t dfd_name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

dfd_table *dfd_table_build(dfd_plugin *const *plugins, size_t nplugins, dfd_errors *errs)
{
    size_t total = 0;
    for (size_t i = 0; i < nplugins; i++)
        total += plugins[i]->ncallbacks;
    size_t size = 16;
    while (size < total * 2)
        size <<= 1;

    dfd_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->slots = calloc(size, sizeof(*t->slots));
    t->plugins = calloc(nplugins ? nplugins : 1, sizeof(*t->plugins));
    if (t->slots == NULL || t->plugins == NULL)
        goto fail;
    t->mask = size - 1;
    atomic_init(&t->refs, 1);

    int clash = 0;
    for (size_t i = 0; i < nplugins; i++) {
        for (size_t k = 0; k < plugins[i]->ncallbacks; k++) {
            const dfd_callback *cb = &plugins[i]->callbacks[k];
            size_t len = strlen(cb->name);
            const dfd_callback *other = dfd_table_find(t, cb->name, len);
            if (other != NULL) {
                dfd_errors_add(errs, "callback '%s' is exposed by both plugin '%s' (%s) and "
                               "plugin '%s' (%s)", cb->name, other->plugin->name,
                               other->plugin->ini, cb->plugin->name, cb->plugin->ini);
                clash = 1;
                continue;
            }
            size_t at = dfd_name_hash(cb->name, len) & t->mask;
            while (t->slots[at] != NULL)
                at = (at + 1) & t->mask;
            t->slots[at] = cb;
            t->ncallbacks++;
        }
    }
    if (clash)
        goto fail;
    for (size_t i = 0; i < nplugins; i++) {
        dfd_plugin_retain(plugins[i]);
        t->plugins[i] = plugins[i];
    }
    t->nplugins = nplugins;
    return t;
fail:
    free(t->slots);
    free(t->plugins);
    free(t);
    return NULL;
}

const dfd_callback *dfd_table_find(const dfd_table *t, const char *name, size_t len)
{
    size_t at = dfd_name_hash(name, len) & t->mask;
    for (;;) {
        const dfd_callback *cb = t->slots[at];
        if (cb == NULL)
            return NULL;
        if (strncmp(cb->name, name, len) == 0 && cb->name[len] == '\0')
            return cb;
        at = (at + 1) & t->mask;
    }
}

int dfd_table_same_callbacks(const dfd_table *a, const dfd_table *b)
{
    if (a->ncallbacks != b->ncallbacks)
        return 0;
    for (size_t i = 0; i < a->nplugins; i++)
        for (size_t k = 0; k < a->plugins[i]->ncallbacks; k++) {
            const char *name = a->plugins[i]->callbacks[k].name;
            if (dfd_table_find(b, name, strlen(name)) == NULL)
                return 0;
        }
    return 1;
}

void dfd_table_retain(dfd_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void dfd_table_release(dfd_table *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->nplugins; i++)
        dfd_plugin_release(t->plugins[i]);
    free(t->plugins);
    free(t->slots);
    free(t);
}
