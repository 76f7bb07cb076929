/*
 * admin.c - the admin socket's transport: the listening socket, the clients, lines in,
 * JSON replies out, and the limits (see admin.h for the protocol).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "admin-int.h"
#include "log.h"
#include "monitor.h"
#include "server.h"
#include "unixsock.h"

static void admin_on_read(struct bufferevent *bev, void *arg);
static void admin_on_write(struct bufferevent *bev, void *arg);
static void admin_on_event(struct bufferevent *bev, short what, void *arg);

/* Unlinks c from the admin and frees it (its socket is closed). */
static void admin_client_free(admin_client *c)
{
    dfd_admin *adm = c->adm;
    admin_monitor_leave(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        adm->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    adm->nclients--;
    bufferevent_free(c->bev);
    free(c);
}

/* Closes c once its output is written (now if there is none). May free c. */
static void admin_close_after_write(admin_client *c)
{
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        admin_client_free(c);
}

int admin_send(admin_client *c, json_t *reply)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(reply);
    if (text == NULL) {
        dfd_error("admin.oom", "msg=\"cannot encode a reply; closing the client\"");
        c->closing = 1;
        return -1;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_add(out, text, strlen(text)) == -1 || evbuffer_add(out, "\n", 1) == -1)
        c->closing = 1;
    free(text);
    c->adm->commands++;
    return c->closing ? -1 : 0;
}

void admin_send_error(admin_client *c, const char *command, const char *code, json_t *extra,
                      int close_after, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_t *r = json_object();
    if (r != NULL) {
        json_object_set_new(r, "status", json_string("error"));
        json_object_set_new(r, "command", command ? json_string(command) : json_null());
        json_object_set_new(r, "error", json_string(code));
        /* detail may hold what the client sent: admin_str escapes what is not text */
        json_object_set_new(r, "detail", admin_str(detail));
        if (extra != NULL)
            json_object_update(r, extra);
    }
    json_decref(extra);
    c->adm->errors++;
    dfd_info("admin.error", "uid=%ld command=%s error=%s", c->uid, command ? command : "-",
             code);
    if (admin_send(c, r) == -1 || close_after)
        c->closing = 1;
}

void admin_pause(admin_client *c)
{
    c->waiting = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
}

void admin_resume(admin_client *c)
{
    c->waiting = 0;
    if (c->closing) {
        admin_close_after_write(c);
        return;
    }
    /* a monitoring client is quiet by design: no idle timeout for it */
    uint64_t idle = c->monitoring ? 0 : c->adm->srv->cfg->admin_idle_ms;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)((idle % 1000) * 1000)};
    bufferevent_set_timeouts(c->bev, idle ? &tv : NULL, NULL);
    bufferevent_enable(c->bev, EV_READ);
    /* lines that arrived while the client waited */
    admin_on_read(c->bev, c);
}

/* Returns the offset of the first byte in p[0..n) that a text line may not hold
 * (control characters other than tab and a CR before the LF, DEL), or -1. Bytes from
 * 0x80 up are allowed: paths may be UTF-8. */
static long admin_first_binary(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = p[i];
        if ((b < 0x20 && b != '\t' && !(b == '\r' && i + 1 == n)) || b == 0x7f)
            return (long)i;
    }
    return -1;
}

/* Reads and runs every complete line; refuses over-long lines and binary input. */
static void admin_on_read(struct bufferevent *bev, void *arg)
{
    admin_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (!c->waiting && !c->closing) {
        size_t have = evbuffer_get_length(in);
        if (have == 0)
            break;
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t len = eol.pos == -1 ? have : (size_t)eol.pos;
        size_t look = len < DFD_ADMIN_MAX_LINE + 1 ? len : DFD_ADMIN_MAX_LINE + 1;
        const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)look);
        long bad = p ? admin_first_binary(p, look) : -1;
        if (bad != -1) {
            admin_send_error(c, NULL, "binary_input", NULL, 1,
                             "byte 0x%02x at column %ld: commands are lines of text",
                             p[bad], bad + 1);
            break;
        }
        if (len > DFD_ADMIN_MAX_LINE) {
            admin_send_error(c, NULL, "line_too_long", NULL, 1,
                             "a command line is at most %d bytes", DFD_ADMIN_MAX_LINE);
            break;
        }
        if (eol.pos == -1)
            break; /* wait for the rest of the line */
        char line[DFD_ADMIN_MAX_LINE + 1];
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        admin_run_line(c, line);
    }
    if (c->closing && !c->waiting)
        admin_close_after_write(c);
}

/* Output written: a closing client goes now. */
static void admin_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    admin_client *c = arg;
    if (c->closing && !c->waiting)
        admin_client_free(c);
}

/* EOF, error or the idle timeout. */
static void admin_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    admin_client *c = arg;
    if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
        uint64_t idle = c->adm->srv->cfg->admin_idle_ms;
        admin_send_error(c, NULL, "idle_timeout", NULL, 1,
                         "no complete command within %llu ms", (unsigned long long)idle);
        admin_close_after_write(c);
        return;
    }
    /* the peer left (or the socket failed): nothing more can be written */
    admin_client_free(c);
}

/* Reads the peer's credentials (for the log): -1 each when unknown. */
static void admin_peer(int fd, long *uid, long *pid, long *gid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    *uid = -1;
    *pid = -1;
    *gid = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        *uid = (long)cred.uid;
        *pid = (long)cred.pid;
        *gid = (long)cred.gid;
    }
}

/* [admin] allow_uids / allow_gids: 1 when the peer may use the socket (no list set:
 * anyone the socket's file mode lets connect). A peer whose credentials cannot be
 * read is refused when a list is set. */
static int admin_peer_allowed(const dfd_admin *adm, long uid, long gid)
{
    if (adm->nallow_uids == 0 && adm->nallow_gids == 0)
        return 1;
    for (size_t i = 0; i < adm->nallow_uids; i++)
        if (uid != -1 && adm->allow_uids[i] == uid)
            return 1;
    for (size_t i = 0; i < adm->nallow_gids; i++)
        if (gid != -1 && adm->allow_gids[i] == gid)
            return 1;
    return 0;
}

/* A copy of ids[n] into *out (NULL when n is 0). Returns 0, or -1 (out of memory). */
static int admin_ids_copy(const long *ids, size_t n, long **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if ((*out = malloc(n * sizeof(*ids))) == NULL)
        return -1;
    memcpy(*out, ids, n * sizeof(*ids));
    return 0;
}

/* Takes cfg's allow lists. Returns 1 when they differ from the ones adm had, 0 when
 * they are the same, -1 when memory ran out (adm unchanged). */
static int admin_allow_take(dfd_admin *adm, const dfd_config *cfg)
{
    long *uids, *gids;

    if (adm->nallow_uids == cfg->nadmin_allow_uids &&
        adm->nallow_gids == cfg->nadmin_allow_gids &&
        (adm->nallow_uids == 0 || memcmp(adm->allow_uids, cfg->admin_allow_uids,
                                         adm->nallow_uids * sizeof(long)) == 0) &&
        (adm->nallow_gids == 0 || memcmp(adm->allow_gids, cfg->admin_allow_gids,
                                         adm->nallow_gids * sizeof(long)) == 0))
        return 0;
    if (admin_ids_copy(cfg->admin_allow_uids, cfg->nadmin_allow_uids, &uids) == -1)
        return -1;
    if (admin_ids_copy(cfg->admin_allow_gids, cfg->nadmin_allow_gids, &gids) == -1) {
        free(uids);
        return -1;
    }
    free(adm->allow_uids);
    free(adm->allow_gids);
    adm->allow_uids = uids;
    adm->nallow_uids = cfg->nadmin_allow_uids;
    adm->allow_gids = gids;
    adm->nallow_gids = cfg->nadmin_allow_gids;
    return 1;
}

int dfd_admin_reload(dfd_server *srv, const dfd_config *nc)
{
    dfd_admin *adm = srv->admin;
    int rc;

    if (adm == NULL)
        return 0; /* no socket at start: [admin] socket is a restart setting */
    if ((rc = admin_allow_take(adm, nc)) == -1) {
        dfd_error("admin.reload_failed", "error=\"out of memory\" msg=\"the running "
                  "allow_uids and allow_gids stay\"");
        return -1;
    }
    if (rc == 1)
        dfd_info("admin.allow_reloaded", "allow_uids=%zu allow_gids=%zu msg=\"new admin "
                 "connections are checked against these; connected clients stay\"",
                 adm->nallow_uids, adm->nallow_gids);
    return 0;
}

uint64_t dfd_admin_denied(const dfd_server *srv)
{
    return srv->admin != NULL ? srv->admin->denied : 0;
}

static void admin_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    dfd_admin *adm = arg;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                dfd_warn("admin.accept", "errno=%d msg=\"%s\"", errno, strerror(errno));
            return;
        }
        struct bufferevent *bev =
            bufferevent_socket_new(adm->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
        long uid, pid, gid;
        admin_peer(fd, &uid, &pid, &gid);
        if (!admin_peer_allowed(adm, uid, gid)) {
            static const char refusal[] =
                "{\"status\":\"error\",\"command\":null,\"error\":\"denied\",\"detail\":"
                "\"this uid and gid are not in [admin] allow_uids or allow_gids\"}\n";
            adm->denied++;
            dfd_warn("admin.denied", "uid=%ld gid=%ld pid=%ld msg=\"peer not in [admin] "
                     "allow_uids or allow_gids: connection closed\"", uid, gid, pid);
            if (write(fd, refusal, sizeof(refusal) - 1) < 0) {
                /* the refusal is a courtesy: the log line says it */
            }
            if (bev != NULL)
                bufferevent_free(bev);
            else
                close(fd);
            continue;
        }
        if (bev == NULL || admin_client_add(adm, bev, uid, pid) == -1) {
            if (bev != NULL)
                bufferevent_free(bev);
            else
                close(fd);
            dfd_error("admin.oom", "msg=\"cannot accept an admin client\"");
        }
    }
}

/* See admin-int.h. */
int admin_client_add(dfd_admin *adm, struct bufferevent *bev, long uid, long pid)
{
    admin_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->adm = adm;
    c->bev = bev;
    c->uid = uid;
    c->pid = pid;
    c->next = adm->clients;
    if (adm->clients)
        adm->clients->prev = c;
    adm->clients = c;
    adm->nclients++;
    bufferevent_setcb(bev, admin_on_read, admin_on_write, admin_on_event, c);
    /* the input never holds much more than one line beyond what was handled */
    bufferevent_setwatermark(bev, EV_READ, 0, 2 * DFD_ADMIN_MAX_LINE + 2);
    if (adm->nclients > DFD_ADMIN_MAX_CLIENTS) {
        admin_send_error(c, NULL, "busy", NULL, 1,
                         "%d admin clients are connected already; try again later",
                         DFD_ADMIN_MAX_CLIENTS);
        admin_close_after_write(c);
        return 0;
    }
    dfd_debug("admin.open", "uid=%ld pid=%ld", c->uid, c->pid);
    admin_resume(c);
    return 0;
}

/* See admin-int.h. */
dfd_admin *admin_new(dfd_server *srv)
{
    dfd_admin *adm = calloc(1, sizeof(*adm));
    if (adm == NULL)
        return NULL;
    adm->srv = srv;
    adm->fd = -1;
    srv->admin = adm;
    return adm;
}

int dfd_admin_start(dfd_server *srv, dfd_errors *errs)
{
    const dfd_config *cfg = srv->cfg;
    if (cfg->admin_socket == NULL)
        return 0;
    dfd_admin *adm = admin_new(srv);
    if (adm == NULL) {
        dfd_errors_add(errs, "[admin] socket: out of memory");
        return -1;
    }
    snprintf(adm->path, sizeof(adm->path), "%s", cfg->admin_socket);
    if (admin_allow_take(adm, cfg) == -1) {
        dfd_errors_add(errs, "[admin] allow_uids, allow_gids: out of memory");
        return -1;
    }
    adm->fd = dfd_unix_listen(cfg->admin_socket, cfg->admin_mode, cfg->admin_uid,
                              cfg->admin_gid, 16, "[admin] socket", &adm->made, errs);
    if (adm->fd == -1)
        return -1;
    adm->accept_ev = event_new(srv->base, adm->fd, EV_READ | EV_PERSIST, admin_on_accept, adm);
    if (adm->accept_ev == NULL || event_add(adm->accept_ev, NULL) == -1) {
        dfd_errors_add(errs, "[admin] socket %s: cannot watch it", adm->path);
        return -1;
    }
    dfd_monitor_set_sink(&srv->monitor, admin_monitor_sink, adm);
    dfd_info("admin.listen", "path=%s mode=%04o", adm->path, cfg->admin_mode);
    return 0;
}

void dfd_admin_stop(dfd_server *srv)
{
    dfd_admin *adm = srv->admin;
    if (adm == NULL)
        return;
    dfd_monitor_set_sink(&srv->monitor, NULL, NULL);
    while (adm->clients != NULL) {
        admin_client *c = adm->clients;
        /* last words (a shutdown's reply): one non-blocking attempt */
        evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
        admin_client_free(c);
    }
    if (adm->accept_ev)
        event_free(adm->accept_ev);
    if (adm->drain_timer)
        event_free(adm->drain_timer);
    if (adm->fd != -1) {
        close(adm->fd);
        dfd_unix_unlink(adm->path, &adm->made);
    }
    admin_overrides_free(adm);
    free(adm->allow_uids);
    free(adm->allow_gids);
    free(adm);
    srv->admin = NULL;
}
