/*
 * client_int.h - private helpers shared by the client library's files: the
 * synchronous client (client_sync.c), the asynchronous one (client_async*.c,
 * client_serve.c) and what both use (client_common.c, client_buf.c, client_result.c,
 * client_connect.c, client_control.c). The types are in client-t.h. Not installed.
 */
#ifndef DAFFI_CLIENT_INT_H
#define DAFFI_CLIENT_INT_H

#include <stdarg.h>

#include <daffi/client.h>
#include "client-t.h"

#if defined(__GNUC__) || defined(__clang__)
#define DAFFI_CL_PRINTF(fmt_, args_) __attribute__((format(printf, fmt_, args_)))
#else
#define DAFFI_CL_PRINTF(fmt_, args_)
#endif

/* ---- client_result.c ------------------------------------------------------------ */

/* Releases what e held, then sets code, name and a formatted message (raised here,
 * remote = 0). e may be NULL: nothing happens. */
void daffi__err_set(daffi_error *e, int code, const char *fmt, ...) DAFFI_CL_PRINTF(3, 4);

/* Turns one complete, scanned response message (size bytes at msg) into the outcome
 * of the call to method. Copies the bytes: msg need not outlive the call. Returns 0
 * with out filled (owned by the caller), or -1 with err set: the peer's error
 * (remote = 1, details owned by err), or PROTOCOL when the error array is malformed,
 * or UNAVAILABLE when memory ran out. */
int daffi__reply_take(const char *msg, size_t size, const char *method,
                      daffi_result *out, daffi_error *err);

/* ---- client_connect.c ----------------------------------------------------------- */

/* Opens a stream socket connected to a (TCP: TCP_NODELAY set), before deadline
 * (CLOCK_MONOTONIC nanoseconds, 0: no limit). Returns the non-blocking, close-on-exec
 * socket (owned by the caller), or -1 with a reason written to why. */
int daffi__connect_socket(const daffi_addr *a, int64_t deadline, char *why, size_t whylen);

/* Starts a non-blocking connect to one address (sa, salen; family AF_INET, AF_INET6
 * or AF_UNIX). Returns the socket (owned by the caller; TCP_NODELAY set on TCP) and
 * sets *in_progress to 1 when the connect has still to complete (wait for it to be
 * writable, then daffi__connect_finish()), 0 when it is done; or -1 with a reason in
 * why, *in_progress then 2 when a Unix listener's backlog was full (worth retrying
 * shortly), else 0. */
int daffi__connect_begin(const struct sockaddr *sa, socklen_t salen, int *in_progress,
                         char *why, size_t whylen);

/* Returns 0 when the connect begun on fd succeeded, or -1 with the reason in why. */
int daffi__connect_finish(int fd, char *why, size_t whylen);

/* Resolves a TCP address a (numeric hosts without a lookup). Returns 0 with *res
 * (freeaddrinfo() by the caller), or -1 with a reason in why. */
int daffi__resolve(const daffi_addr *a, struct addrinfo **res, char *why, size_t whylen);

/* ---- client_tls.c --------------------------------------------------------------- */

/* Reads the token and, for a tls:// address, builds the TLS context from o (or the
 * DAFFI_TLS_* environment). Returns 0, or -1 with err set (BAD_ARGS naming the file
 * that does not load). */
int daffi__tls_setup(daffi_client *c, const daffi_client_opts *o, daffi_error *err);
/* Frees the SSL, the context and the token. */
void daffi__tls_free(daffi_client *c);
/* Frees the connection's SSL (before its socket is closed). */
void daffi__tls_drop(daffi_client *c);
/* Runs the TLS handshake on the connected socket fd before deadline (ns, 0: none)
 * when c has a TLS context (else nothing), waiting with poll(). Returns 0 (c->ssl
 * set), or -1 with the reason in why (c->ssl NULL; the caller closes fd). */
int daffi__tls_handshake(daffi_client *c, int fd, int64_t deadline, char *why,
                         size_t whylen);
/* The handshake in steps, for a caller that waits on its own loop: begin makes c->ssl
 * on the connected non-blocking fd when c has a TLS context (else nothing) and returns
 * 0, or -1 (out of memory, why set). Each step runs the handshake as far as the socket
 * allows: DAFFI__TLS_DONE, DAFFI__TLS_WANT_READ or _WANT_WRITE (call again once fd is
 * readable / writable), or -1 with the reason in why and c->ssl freed (NULL). A
 * handshake given up between steps is freed with daffi__tls_drop(). */
enum { DAFFI__TLS_DONE = 0, DAFFI__TLS_WANT_READ = 1, DAFFI__TLS_WANT_WRITE = 2 };
int daffi__tls_begin(daffi_client *c, int fd, char *why, size_t whylen);
int daffi__tls_step(daffi_client *c, char *why, size_t whylen);
/* SSL_write() / SSL_read() on a non-blocking socket, as send() and recv() are: bytes,
 * 0 at the end (recv), or -1 with errno (EAGAIN: not now; EPROTO: a TLS error, the
 * reason left in OpenSSL's error queue for the caller). recv reads as many records as
 * fit in len and stops once OpenSSL holds nothing more (one read() per readiness with
 * read-ahead). daffid's connections use them too (server/conn-tls.c). */
ssize_t daffi__ssl_send(void *ssl, const char *p, size_t len);
ssize_t daffi__ssl_recv(void *ssl, char *p, size_t len);
/* send()/recv() on c->fd, through the SSL when there is one (errno EAGAIN: not now). */
ssize_t daffi__io_send(daffi_client *c, const char *p, size_t len);
ssize_t daffi__io_recv(daffi_client *c, char *p, size_t len);
/* 1 when the SSL holds decrypted bytes no poll() would announce. */
int daffi__io_pending(const daffi_client *c);
/* Makes params the array [c->token] (tok holds the string; c->token not NULL). */
void daffi__auth_params(const daffi_client *c, msgpack_object *params, msgpack_object *tok);
/* Synchronous client: appends daffi.auth [token] (nothing without a token), its msgid
 * in c->auth_msgid. Returns 0 or -1 (out of memory). */
int daffi__auth_append(daffi_client *c);
/* Its reply (one scanned response): 0 when accepted, -1 with the reason in why. */
int daffi__auth_reply(daffi_client *c, const char *msg, size_t size, char *why,
                      size_t whylen);

/* ---- client_common.c ------------------------------------------------------------ */

/* Returns CLOCK_MONOTONIC in nanoseconds. */
int64_t daffi__now_ns(void);

/* Allocates a client for address with opts (may be NULL) applied, not connected
 * (fd -1). Returns it (free with daffi__client_free()), or NULL with err set:
 * BAD_ARGS for an address or option that is wrong, UNAVAILABLE without memory. */
daffi_client *daffi__client_alloc(const char *address, const daffi_client_opts *opts,
                                  daffi_error *err);

/* Closes the socket (if open) and frees what the common part of c owns, then c. */
void daffi__client_free(daffi_client *c);

/* Parses address, one address or a comma-separated list of them (blanks around items
 * dropped; all tls:// or none), into *out (n of them; the caller frees *out). Returns
 * 0, or -1 with err set (BAD_ARGS naming the item and why, UNAVAILABLE without
 * memory). */
int daffi__addrs_parse(const char *address, daffi_addr **out, unsigned *n, daffi_error *err);

/* A connect attempt on c->addr failed: c->addr becomes the next address of c's list
 * (rotation). Returns 1 when this attempt has not tried it yet (try it now), 0 when
 * the attempt went through the whole list (back off, then start again from the
 * address it is at). A single address: 0. */
int daffi__client_next_addr(daffi_client *c);
/* The connection was up and dropped: the next attempt starts from the next address
 * of the list (the one just lost is tried last). */
void daffi__client_addr_lost(daffi_client *c);
/* The attempt is over (connected, or given up before its deadline): the next one goes
 * through the whole list again. */
void daffi__client_attempt_over(daffi_client *c);
/* "host:port: " or "path: " of c->addr, the prefix of a reason naming which address
 * of a list failed ("" with a single address). Returns buf. */
const char *daffi__client_addr_label(const daffi_client *c, char *buf, size_t size);

/* Remembers why the connection is down (replacing the previous reason; a formatted
 * copy owned by c). */
void daffi__client_set_why(daffi_client *c, const char *fmt, ...) DAFFI_CL_PRINTF(2, 3);

/* daffi__client_set_why() with the arguments in ap. */
void daffi__client_vset_why(daffi_client *c, const char *fmt, va_list ap)
    DAFFI_CL_PRINTF(2, 0);

/* Sets b up for attempts backing off from min_ms (> 0) doubling up to max_ms (raised
 * to min_ms when lower), with a jitter seed of its own. daffid's worker role uses it
 * too, for its links to the router. */
void daffi__backoff_init(daffi__backoff *b, int min_ms, int max_ms);

/* Returns the delay in ms before the next connect attempt and counts the failure
 * that made it necessary: 0 for the first, then min_ms doubling up to max_ms, plus
 * up to 25% jitter. Only for a client with reconnect on. */
int daffi__backoff_next(daffi__backoff *b);

/* A connection was established: the next failure retries at once again. */
void daffi__backoff_reset(daffi__backoff *b);

/* ---- client_buf.c --------------------------------------------------------------- */

/* msgpack_packer writer appending to a daffi__outbuf (data). Returns 0, or -1 when
 * memory ran out (b->oom set). */
int daffi__out_write(void *data, const char *buf, size_t len);

/* Ensures room for need more bytes in b. Returns 0, or -1 (out of memory). */
int daffi__out_reserve(daffi__outbuf *b, size_t need);

/* Empties b once everything was written, freeing a large buffer. */
void daffi__out_shrink_if_idle(daffi__outbuf *b);

/* Drops all pending output and input (the connection they belonged to is gone). */
void daffi__bufs_reset(daffi_client *c);

/* Makes room to read into c->in (see client_buf.c). Returns 0, or -1 (out of memory). */
int daffi__in_make_room(daffi_client *c);

/* After the messages of the read buffer were handled: empties it when all was
 * consumed, freeing a large buffer. */
void daffi__in_settle(daffi__inbuf *b);

/* Checks that params (len bytes) hold exactly one msgpack array. Returns 0, or -1
 * with err set (BAD_ARGS). */
int daffi__raw_params_check(const char *params, size_t len, daffi_error *err);

/* One message for daffi__append(): a request (msgid) or notification (is_notify) of
 * method, the params as an object (NULL: none) or raw bytes (raw not NULL). With to
 * or deadline_ms > 0 it is wrapped: daffi.call [method, params, {"to": to,
 * "timeout_ms": deadline_ms}], the timeout always a uint32 (5 bytes, so that a
 * queued call can refresh it in place). */
typedef struct daffi__outmsg {
    int is_notify;
    uint32_t msgid;
    const char *method;
    const msgpack_object *params;
    const char *raw;
    size_t raw_len;
    const char *to;
    int deadline_ms;
} daffi__outmsg;

/* Appends m to c->out. A message over max_message is TOO_LARGE and nothing of it is
 * kept. Returns 0, or -1 with err set (BAD_ARGS, TOO_LARGE, UNAVAILABLE when out of
 * memory). With deadline_at not NULL it gets the offset, from the message's start,
 * of the uint32 timeout_ms (0 when none was written). */
int daffi__append(daffi_client *c, const daffi__outmsg *m, size_t *deadline_at,
                  daffi_error *err);

/* Returns the timeout_ms a call of method with timeout_ms left should carry: 0 (send
 * it plain) for a daffi.* method, no timeout, or a client with local_timeouts. */
int daffi__deadline_to_send(const daffi_client *c, const char *method, int timeout_ms);

/* Writes v big-endian into the 4 bytes at p (a uint32's body, after its 0xce). */
void daffi__put_u32(char *p, uint32_t v);

/* Checks the options of a call with options: to (may be NULL) cannot go with a daffi.*
 * method. Returns 0, or -1 with err set (BAD_ARGS). */
int daffi__check_to(const char *method, const char *to, daffi_error *err);

/* Pumps the synchronous client c until the stream s has credit, was aborted, or its
 * connection failed, at most timeout_ms (0: forever). Returns 0 (look at s), or -1
 * with err set (TIMEOUT, or the connection's failure). */
int daffi__sync_wait_credit(daffi_client *c, daffi_stream *s, int timeout_ms,
                            daffi_error *err);

/* ---- client_stream.c -------------------------------------------------------------- */

/* Applies a notification from the peer (size bytes at msg, scanned) to the streams of
 * c: daffi.credit and daffi.abort. Returns the stream it concerned, or NULL when it
 * was none of these (the caller counts it as ignored). */
daffi_stream *daffi__stream_note(daffi_client *c, const char *msg, size_t size);

/* The connection of c is gone: its streams are dead (their ids meant that connection).
 * With closing (daffi_close) they are also detached from c. */
void daffi__streams_lost(daffi_client *c, int closing);

/* Unlinks s from its client's list (when it still has a client). */
void daffi__stream_unlink(daffi_stream *s);

/* Makes the stream that daffi.stream's answer (the result object answer) opened on c,
 * linked in c's list (async: of an asynchronous client). Returns it (the caller owns
 * it), or NULL with err set: PROTOCOL when the answer is not {"stream": id, "window":
 * n > 0}, UNAVAILABLE without memory (the stream is then aborted on the receiver). */
daffi_stream *daffi__stream_opened(daffi_client *c, const msgpack_object *answer, int async,
                                   daffi_error *err);

/* Fails an operation on s when it cannot go on (client closed, connection gone,
 * aborted by the receiver). Returns 0 when it can, or -1 with err set (UNAVAILABLE). */
int daffi__stream_usable(const daffi_stream *s, daffi_error *err);

/* Encodes [id] (the id always a uint32: 6 bytes) into p: the params of daffi.end and
 * daffi.abort. */
void daffi__stream_id_params(char p[6], uint32_t id);

/* ---- client_astream.c: streams of an asynchronous client --------------------------- */

/* Applies a notification from the peer (size bytes at msg, scanned) to the streams of
 * the asynchronous client c, telling ready callbacks what changed. Returns 1 when it
 * was a daffi.credit or daffi.abort for one of them (consumed), else 0. */
int daffi__astream_note(daffi_client *c, const char *msg, size_t size);

/* The connection of the asynchronous client c dropped: its streams are dead, and each
 * ready callback is told once. Runs callbacks: call inside an enter/leave bracket. */
void daffi__astreams_lost(daffi_client *c);

/* daffi_stream_abort() of an asynchronous stream: daffi.abort when its connection is
 * up, then frees s. */
void daffi__astream_abort(daffi_stream *s);

/* ---- client_async.c: the calls of an asynchronous client ------------------------- */

/* The records of calls (client_async.c), for client_async_call.c, which starts them.
 * daffi__acall_get() returns a zeroed record bound to c (its timer assigned to c's
 * loop), or NULL without memory; owned by c until daffi__acall_recycle() (which needs
 * it out of the table and the queue, its timer stopped). daffi__acall_table_put()
 * gives it the next msgid of c whose slot is free and puts it in the table (0, or -1
 * without memory); daffi__acall_table_del() takes it out. daffi__acall_queue_push()
 * appends it to the tail of a wait queue. */
daffi__acall *daffi__acall_get(daffi_client *c);
void daffi__acall_recycle(daffi_client *c, daffi__acall *call);
int daffi__acall_table_put(daffi_client *c, daffi__acall *call);
void daffi__acall_table_del(daffi__acall_table *t, const daffi__acall *call);
void daffi__acall_queue_push(daffi__acall_queue *q, daffi__acall *call);

/* daffi_close() of an asynchronous client. */
void daffi__async_close(daffi_client *c);

/* Returns 1 while the asynchronous client c has an established connection. */
int daffi__async_connected(const daffi_client *c);

/* Library code that may run user callbacks brackets them with enter/leave, so that a
 * daffi_close() from inside one only frees c once the outermost frame is done.
 * daffi__as_leave() returns 1 when c was freed (the caller must not touch it). */
void daffi__as_enter(daffi_client *c);
int daffi__as_leave(daffi_client *c);

/* Called by the connection code (loop context) once a connection is established:
 * announces exposed callbacks, sends the calls that waited, tells the state callback. */
void daffi__as_connected(daffi_client *c);

/* Called by the connection code after a connection dropped (was_up 1) or an attempt
 * failed (0); why is c->closed_why. Fails the calls in flight with code (UNAVAILABLE,
 * or PROTOCOL / TOO_LARGE for a message from the peer that broke the stream), and
 * with final (no reconnect) those waiting too, with UNAVAILABLE; tells the state
 * callback. */
void daffi__as_disconnected(daffi_client *c, int was_up, int final, int code);

/* Hands one whole response (size bytes at msg, scanned as s) to the call it answers,
 * or counts it as late. */
void daffi__as_response(daffi_client *c, const char *msg, size_t size, const daffi_scan *s);

/* Starts one asynchronous request (is_ping: its result must be "pong") or
 * notification, params as an object (may be NULL) or raw bytes, to the member to (may
 * be NULL); the timer is timeout_ms + grace_ms (timeout_ms 0: none), and a request of
 * a callback with a timeout carries it (daffi__deadline_to_send). Returns 0 or -1 as
 * daffi_rpc_async(). */
int daffi__async_send(daffi_client *c, int is_notify, int is_ping, const char *method,
                      const char *to, const msgpack_object *params, const char *raw,
                      size_t raw_len, int timeout_ms, int grace_ms, daffi_reply_fn fn,
                      void *arg, daffi_error *err);

/* ---- client_async_io.c: the connection of an asynchronous client ------------------ */

/* Starts a connect attempt now (state CONNECTING), or on failure schedules the next
 * one (BACKOFF) or gives up (CLOSED). */
void daffi__as_connect(daffi_client *c);

/* Output was appended to c->out: it is written from the loop, in the same pass (at
 * the end of the read batch that runs, or by the write event made active). Never
 * fails the connection inline: a write error is handled from the loop. */
void daffi__as_output_added(daffi_client *c);

/* Stops every event of c and closes its socket (daffi_close). */
void daffi__as_stop_io(daffi_client *c);

/* ---- client_serve.c: callbacks exposed by an asynchronous client ------------------ */

/* Serves one whole request or notification from the peer (size bytes at msg, scanned
 * as s): an exposed callback, a membership event, or a refusal / count. */
void daffi__serve_message(daffi_client *c, const char *msg, size_t size, const daffi_scan *s);

/* Appends the announcements a new connection starts with: daffi.hello when callbacks
 * are exposed, daffi.subscribe when a subscription is to be renewed. */
void daffi__serve_announce(daffi_client *c);

/* Frees the exposed table and detaches the calls still being served (their
 * completion then frees them without replying). For daffi_close(). */
void daffi__serve_release(daffi_client *c);

/* ---- client_sync.c / client_async_call.c: the raw forms the router calls build on ---- */

/* Sends method with raw params as a synchronous call, waiting timeout_ms (0: forever)
 * plus grace_ms before giving up. Returns as daffi_rpc_raw(). */
int daffi__sync_call_raw(daffi_client *c, const char *method, const char *params,
                         size_t params_len, int timeout_ms, int grace_ms,
                         daffi_result *out, daffi_error *err);

/* Starts method with raw params as an asynchronous call (is_notify: a notification,
 * fn unused), waiting timeout_ms (0: forever) plus grace_ms. Returns as
 * daffi_rpc_raw_async(). */
int daffi__async_call_raw(daffi_client *c, int is_notify, const char *method,
                          const char *params, size_t params_len, int timeout_ms,
                          int grace_ms, daffi_reply_fn fn, void *arg, daffi_error *err);

/* Packs the params of daffi.stream, [callback, params, {"to": to, "window": n}], into
 * sb (shared by the sync and async streams). Returns 0, or -1 with err set. */
int daffi__stream_pack_open(msgpack_sbuffer *sb, const char *callback,
                            const msgpack_object *params, const char *to, unsigned window,
                            daffi_error *err);

#endif /* DAFFI_CLIENT_INT_H */
