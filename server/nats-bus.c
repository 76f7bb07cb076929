/*
 * nats-bus.c - the libnats connection, subjects and mails the NATS roles share (see
 * nats-bus.h, docs/NATS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nats-bus.h"
#include "nats-gateway.h"
#include "nats-member.h"
#include "server.h"

#define NATS_MAX_SERVERS 32
#define NATS_RECONNECT_WAIT_MS 250

static void nats_on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    dfd_nats_ctx *x = closure;
    if (atomic_load(&x->closing))
        return;
    dfd_warn("nats.disconnected", "role=%s msg=\"NATS connection lost; reconnecting (calls "
             "in flight end at their deadline)\"", x->what);
}

static void nats_on_reconnected(natsConnection *nc, void *closure)
{
    const dfd_nats_ctx *x = closure;
    char url[256] = "?";
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    dfd_info("nats.reconnected", "role=%s url=%s", x->what, url);
    if (x->on_reconnect != NULL)
        x->on_reconnect(x->arg);
}

/* The connection is closed for good (libnats gives up after the server refused the
 * credentials twice in a row): nothing will reach this member or gateway again. */
static void nats_on_closed(natsConnection *nc, void *closure)
{
    const dfd_nats_ctx *x = closure;
    (void)nc;
    if (atomic_load(&x->closing))
        return;
    dfd_error("nats.closed", "role=%s msg=\"libnats closed the NATS connection for good "
              "(refused credentials?): restart daffid once NATS takes them\"", x->what);
}

static void nats_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
                          void *closure)
{
    (void)nc;
    (void)sub;
    const dfd_nats_ctx *x = closure;
    dfd_warn("nats.error", "role=%s status=\"%s\"", x->what, natsStatus_GetText(err));
}

/* Splits urls (comma separated, blanks around items dropped) into servers[]. Returns
 * the count; the strings live in copy (the caller frees it). */
static int nats_split(char *copy, const char **servers, int max)
{
    int n = 0;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL && n < max;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        char *end = item + strlen(item);
        while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*item != '\0')
            servers[n++] = item;
    }
    return n;
}

/* The first connection of dfd_nats_connect with opts into *nc, retrying in the
 * background when no server answers yet (a NATS down at start is not fatal;
 * nats.reconnected says when it came). libnats' background retries do not say why
 * they fail, so then one probe connection without retries asks in the foreground:
 * its error is logged, and credentials the server refused end the start (named with
 * the nats_creds file). The connection that serves is made exactly as before the
 * probe existed (retrying, every callback set). Returns NATS_OK, or the failure
 * (logged). */
static natsStatus nats_connect_first(const dfd_server *srv, const char *urls,
                                     dfd_nats_ctx *x, natsOptions *opts, natsOptions *popts,
                                     natsConnection **nc)
{
    const dfd_config *cfg = srv->cfg;
    natsStatus s = natsOptions_SetRetryOnFailedConnect(opts, true, nats_on_reconnected, x);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, opts);
    if (s == NATS_OK) {
        char url[256] = "?";
        natsConnection_GetConnectedUrl(*nc, url, sizeof(url));
        dfd_info("nats.connected", "role=%s url=%s namespace=%s", x->what, url,
                 dfd_nats_namespace(srv));
        return NATS_OK;
    }
    if (s != NATS_NOT_YET_CONNECTED) {
        dfd_error("nats.connect", "role=%s servers=%s status=\"%s\" msg=\"%s\"", x->what, urls,
                  natsStatus_GetText(s), nats_GetLastError(NULL));
        return s;
    }
    /* the probe: its own options (popts, the serving ones but for loop 0's event
     * loop: it must not attach there) */
    natsConnection *probe = NULL;
    natsStatus ps = popts != NULL ? NATS_OK : NATS_NO_MEMORY;
    if (ps == NATS_OK)
        ps = natsOptions_SetRetryOnFailedConnect(popts, false, NULL, NULL);
    if (ps == NATS_OK)
        ps = natsOptions_SetClosedCB(popts, NULL, NULL);
    if (ps == NATS_OK)
        ps = natsOptions_SetDisconnectedCB(popts, NULL, NULL);
    if (ps == NATS_OK)
        ps = natsOptions_SetReconnectedCB(popts, NULL, NULL);
    if (ps == NATS_OK)
        ps = natsOptions_SetErrorHandler(popts, NULL, NULL);
    if (ps == NATS_OK)
        ps = natsConnection_Connect(&probe, popts);
    natsConnection_Destroy(probe);
    if (ps == NATS_OK)
        return NATS_OK; /* a server came meanwhile: the background one connects too */
    char error[256];
    const char *last = nats_GetLastError(NULL);
    if (last != NULL && *last == '(' && strstr(last, "): ") != NULL)
        last = strstr(last, "): ") + 3; /* libnats' "(conn.c:1905): " */
    snprintf(error, sizeof(error), "%s", last != NULL && *last != '\0' ? last
                                                                      : natsStatus_GetText(ps));
    for (char *p = error; *p != '\0'; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    if (ps == NATS_CONNECTION_AUTH_FAILED || ps == NATS_NOT_PERMITTED) {
        /* libnats would close the connection for good on the second refusal anyway:
         * a start that cannot work says so, rather than a member nobody reaches */
        dfd_error("nats.connect", "role=%s servers=%s status=\"%s\" error=\"%s\" "
                  "nats_creds=%s msg=\"NATS refused the credentials%s\"", x->what, urls,
                  natsStatus_GetText(ps), error,
                  cfg->nats_creds != NULL ? cfg->nats_creds : "(none)",
                  cfg->nats_creds != NULL ? " in nats_creds" : ": it wants some (nats_creds)");
        atomic_store(&x->closing, 1); /* its loss is not news */
        natsConnection_Destroy(*nc);
        *nc = NULL;
        atomic_store(&x->closing, 0);
        return ps;
    }
    if (cfg->nats_creds != NULL && ps != NATS_NO_SERVER)
        dfd_warn("nats.connect", "role=%s servers=%s status=\"%s\" error=\"%s\" nats_creds=%s "
                 "msg=\"NATS refused the connection; retrying in the background\"", x->what,
                 urls, natsStatus_GetText(ps), error, cfg->nats_creds);
    else
        dfd_warn("nats.connect", "role=%s servers=%s status=\"%s\" error=\"%s\" msg=\"no "
                 "NATS server accepts the connection yet; retrying in the background\"",
                 x->what, urls, natsStatus_GetText(ps), error);
    return NATS_OK;
}

/* Makes the options of a connection to servers[n] for srv into *out (the caller
 * destroys them). Returns libnats' status, with *step the option that failed. */
static natsStatus nats_options(const dfd_server *srv, dfd_nats_ctx *x, const char **servers,
                               int n, natsOptions **out, const char **step)
{
    const dfd_config *cfg = srv->cfg;
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    *step = "options";
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, servers, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, cfg->name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, NATS_RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, nats_on_disconnected, x);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, nats_on_reconnected, x);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, nats_on_error, x);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, nats_on_closed, x);
    if (s == NATS_OK && cfg->nats_creds != NULL) {
        *step = "nats_creds";
        s = natsOptions_SetUserCredentialsFromFiles(opts, cfg->nats_creds, NULL);
    }
    if (s == NATS_OK && cfg->nats_tls_ca != NULL) {
        *step = "nats_tls_ca";
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(opts, cfg->nats_tls_ca);
    }
    *out = opts;
    return s;
}

natsConnection *dfd_nats_connect(dfd_server *srv, const char *urls, dfd_nats_ctx *x)
{
    const char *what = x->what;
    natsOptions *opts = NULL, *popts = NULL;
    natsConnection *nc = NULL;
    const char *servers[NATS_MAX_SERVERS];
    char *copy = strdup(urls);
    int n = copy != NULL ? nats_split(copy, servers, NATS_MAX_SERVERS) : 0;
    const char *step = "options";
    natsStatus s = copy != NULL ? nats_options(srv, x, servers, n, &opts, &step)
                                : NATS_NO_MEMORY;
    if (s == NATS_OK) {
        /* the serving connection lives on loop 0 (nats-io.h); the probe (popts) not */
        step = "event loop";
        x->io = dfd_nats_io_new(&srv->loops[0]);
        s = x->io != NULL ? dfd_nats_io_options(x->io, opts) : NATS_NO_MEMORY;
    }
    if (s == NATS_OK)
        s = nats_options(srv, x, servers, n, &popts, &step);
    if (s == NATS_OK) {
        step = "connect";
        s = nats_connect_first(srv, urls, x, opts, popts, &nc);
    }
    natsOptions_Destroy(popts);
    natsOptions_Destroy(opts);
    free(copy);
    if (s != NATS_OK && strcmp(step, "connect") == 0) {
        natsConnection_Destroy(nc); /* logged */
        return NULL;
    }
    if (s != NATS_OK) {
        dfd_error("nats.connect", "role=%s servers=%s step=%s status=\"%s\" msg=\"%s\"", what,
                  urls, step, natsStatus_GetText(s), nats_GetLastError(NULL));
        natsConnection_Destroy(nc);
        return NULL;
    }
    return nc;
}

const char *dfd_nats_namespace(const dfd_server *srv)
{
    return srv->cfg->nats_namespace != NULL ? srv->cfg->nats_namespace
                                            : DFD_NATS_DEFAULT_NAMESPACE;
}

int dfd_nats_subject_ok(const char *name, size_t len)
{
    if (len == 0 || name[0] == '.' || name[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch == 0x7f || ch == '*' || ch == '>' ||
            (ch == '.' && name[i + 1] == '.'))
            return 0;
    }
    return 1;
}

int dfd_nats_subject(char *out, size_t size, const dfd_server *srv, const char *kind,
                     const char *name, size_t name_len)
{
    int n;
    if (name == NULL) {
        n = snprintf(out, size, "%s.%s", dfd_nats_namespace(srv), kind);
    } else {
        if (!dfd_nats_subject_ok(name, name_len) || name_len > size)
            return -1;
        n = snprintf(out, size, "%s.%s.%.*s", dfd_nats_namespace(srv), kind, (int)name_len,
                     name);
    }
    return n > 0 && (size_t)n < size ? 0 : -1;
}

dfd_nats_note *dfd_nats_note_shrink(dfd_nats_note *note)
{
    /* the data is last in buf (dfd_nats_mail_msg): the subject and reply stay */
    size_t keep = (size_t)(note->data - note->buf);
    size_t reply_off = note->reply != NULL ? (size_t)(note->reply - note->buf) : 0;
    dfd_nats_note *small = realloc(note, sizeof(*note) + keep);
    if (small == NULL)
        small = note; /* a smaller block refused: keep the big one */
    small->subject = small->buf;
    small->reply = small->reply != NULL ? small->buf + reply_off : NULL;
    small->data = NULL;
    small->len = 0;
    return small;
}

dfd_nats_note *dfd_nats_note_of(natsMsg *msg, void *arg)
{
    const char *subject = natsMsg_GetSubject(msg), *reply = natsMsg_GetReply(msg);
    size_t slen = strlen(subject) + 1, rlen = reply != NULL ? strlen(reply) + 1 : 0;
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    dfd_nats_note *note = malloc(sizeof(*note) + slen + rlen + len);
    if (note != NULL) {
        char *p = note->buf;
        memcpy(p, subject, slen);
        note->subject = p;
        p += slen;
        note->reply = NULL;
        if (reply != NULL) {
            memcpy(p, reply, rlen);
            note->reply = p;
            p += rlen;
        }
        memcpy(p, natsMsg_GetData(msg), len);
        note->data = p;
        note->len = len;
        note->no_responders = natsMsg_IsNoResponders(msg);
        note->arg = arg;
    }
    natsMsg_Destroy(msg);
    if (note == NULL)
        dfd_error("nats.oom", "msg=\"cannot copy a NATS message: dropped\"");
    return note;
}

int dfd_nats_mail_msg(dfd_loop *loop, void (*run)(dfd_loop *loop, void *note), natsMsg *msg,
                      void *arg)
{
    dfd_nats_note *note = dfd_nats_note_of(msg, arg);
    if (note == NULL)
        return -1;
    if (dfd_loop_post(loop, run, free, note) == 0)
        return 0;
    dfd_error("nats.oom", "loop=%u msg=\"cannot hand a NATS message to the loop: dropped\"",
              loop->index);
    free(note);
    return -1;
}

void dfd_nats_hand_msg(dfd_loop *loops, unsigned i, void (*run)(dfd_loop *loop, void *note),
                       natsMsg *msg, void *arg)
{
    if (i != 0) {
        dfd_nats_mail_msg(&loops[i], run, msg, arg);
        return;
    }
    dfd_nats_note *note = dfd_nats_note_of(msg, arg);
    if (note != NULL)
        run(&loops[0], note);
}

int dfd_nats_word_subject(char *out, size_t size, const char *reply, char kind)
{
    size_t n = strlen(reply);
    int r;
    if (n >= 2 && strcmp(reply + n - 2, ".q") == 0)
        r = snprintf(out, size, "%.*sa.%c", (int)(n - 1), reply, kind);
    else if (kind == 'r')
        r = snprintf(out, size, "%s", reply);
    else
        r = snprintf(out, size, "%s.%c", reply, kind);
    return r > 0 && (size_t)r < size ? 0 : -1;
}

int dfd_nats_publish(dfd_loop *loop, natsConnection *nc, const char *subject,
                     const char *reply, const void *data, size_t len)
{
    natsStatus s = reply != NULL ? natsConnection_PublishRequest(nc, subject, reply, data, (int)len)
                                 : natsConnection_Publish(nc, subject, data, (int)len);
    if (s == NATS_OK)
        return 0;
    if (loop != NULL)
        dfd_stat_add(&loop->stats, DFD_STAT_nats_publish_errors, 1);
    dfd_debug("nats.publish", "subject=%s status=\"%s\"", subject, natsStatus_GetText(s));
    return -1;
}

int dfd_nats_conn_state(natsConnection *nc, char *url, size_t size)
{
    url[0] = '\0';
    if (nc == NULL || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED)
        return 0;
    if (natsConnection_GetConnectedUrl(nc, url, size) != NATS_OK)
        url[0] = '\0';
    return 1;
}

natsConnection *dfd_nats_conn_of(const dfd_server *srv)
{
    if (srv->nats_member != NULL)
        return dfd_nats_member_conn(srv->nats_member);
    if (srv->nats_gateway != NULL)
        return dfd_nats_gateway_conn(srv->nats_gateway);
    return NULL;
}

void dfd_nats_shutdown(void)
{
    nats_CloseAndWait(2000);
}
