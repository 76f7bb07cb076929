/*
 * client_addrs.c - a client's list of addresses: "tcp://a:1,tcp://b:2" names several
 * routers serving the same members (NATS gateways, README "Scaling out"). A connect
 * attempt tries them in order from the current one, each within the connect timeout,
 * until one answers; an attempt that went through the whole list fails (and backs off
 * when reconnecting); a connection that drops makes the next attempt start from the
 * next address, so that the router just lost is tried last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* See client_int.h. */
int daffi__addrs_parse(const char *address, daffi_addr **out, unsigned *n, daffi_error *err)
{
    size_t count = 1, len = strlen(address);
    const char *why = NULL;

    for (const char *p = address; *p != '\0'; p++)
        count += *p == ',';
    *out = calloc(count, sizeof(**out));
    *n = 0;
    if (*out == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: out of memory",
                       address);
        return -1;
    }
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (address[i] != ',' && address[i] != '\0')
            continue;
        char item[512];
        size_t a = start, b = i;
        while (a < b && (address[a] == ' ' || address[a] == '\t'))
            a++;
        while (b > a && (address[b - 1] == ' ' || address[b - 1] == '\t'))
            b--;
        start = i + 1;
        daffi_addr *d = &(*out)[*n];
        if (b - a >= sizeof(item)) {
            why = "too long";
        } else {
            memcpy(item, address + a, b - a);
            item[b - a] = '\0';
            if (b == a)
                why = "empty item";
            else if (daffi_addr_parse(item, d, &why) == 0)
                why = d->kind == DAFFI_ADDR_TCP && d->port == 0 ? "port 0" : NULL;
            else if (why == NULL)
                why = "missing";
        }
        if (why == NULL && *n > 0 && d->tls != (*out)[0].tls)
            why = "tls:// and plain addresses cannot be mixed in one list";
        if (why != NULL) {
            if (count == 1)
                daffi__err_set(err, DAFFI_E_BAD_ARGS, "bad address '%s': %s", address, why);
            else
                daffi__err_set(err, DAFFI_E_BAD_ARGS, "bad address '%s': item %u: %s",
                               address, *n + 1, why);
            free(*out);
            *out = NULL;
            return -1;
        }
        (*n)++;
    }
    return 0;
}

/* See client_int.h. */
int daffi__client_next_addr(daffi_client *c)
{
    if (c->naddrs <= 1)
        return 0;
    c->addr_i = (c->addr_i + 1) % c->naddrs;
    c->addr = c->addrs[c->addr_i];
    if (++c->addrs_tried < c->naddrs)
        return 1;
    c->addrs_tried = 0;
    return 0;
}

/* See client_int.h. */
void daffi__client_addr_lost(daffi_client *c)
{
    if (c->naddrs > 1) {
        c->addr_i = (c->addr_i + 1) % c->naddrs;
        c->addr = c->addrs[c->addr_i];
    }
    c->addrs_tried = 0;
}

/* See client_int.h. */
void daffi__client_attempt_over(daffi_client *c)
{
    c->addrs_tried = 0;
}

/* See client_int.h. */
const char *daffi__client_addr_label(const daffi_client *c, char *buf, size_t size)
{
    if (c->naddrs <= 1)
        snprintf(buf, size, "%s", "");
    else if (c->addr.kind == DAFFI_ADDR_UNIX)
        snprintf(buf, size, "%s: ", c->addr.path);
    else if (strchr(c->addr.host, ':') != NULL)
        snprintf(buf, size, "[%s]:%d: ", c->addr.host, c->addr.port);
    else
        snprintf(buf, size, "%s:%d: ", c->addr.host, c->addr.port);
    return buf;
}
