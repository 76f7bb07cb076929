/*
 * admin_view.h - daffictl's readable views of daffid's admin replies: tables for the
 * lists (plugins, callbacks, members, stats), aligned "key value" lines for the rest,
 * the raw text for metrics.
 */
#ifndef DAFFICTL_ADMIN_VIEW_H
#define DAFFICTL_ADMIN_VIEW_H

#include <stdio.h>

#include <jansson.h>

/* Prints the successful reply of admin command name to out. The reply stays the
 * caller's. */
void ctl_admin_view(const char *name, json_t *reply, FILE *out);

#endif /* DAFFICTL_ADMIN_VIEW_H */
