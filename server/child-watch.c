/*
 * child-watch.c - what a child process (daffid --child) tells its parent about the
 * calls it runs, through the board (board.h): every call of the plugin is noted when
 * it is routed and forgotten when its outcome is final (the handler returned or
 * completed, or it left the queue), and the oldest one held is published. A handler
 * that stays past its deadline stays on the board, so the parent's harakiri sees a
 * blocking handler that never returns, or an inline one that spins (see child.h).
 *
 * And it notes which callback each thread runs (a trampoline around the plugin's
 * handlers), so that a fatal signal or an exit() in a handler leaves that callback's
 * name on the board before the child dies.
 *
 * The watch runs on the child's one loop thread (the trampoline on whichever thread
 * runs a handler); the board is the only thing another process (the parent) reads. One child process has one
 * watch: its state is this file's.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "call-t.h"
#include "child.h"
#include "dispatch.h"
#include "server.h"
#include "table.h"

/* A call the child holds, in arrival order. */
typedef struct watch_node {
    dfd_call *call;
    uint64_t since_ns;
    unsigned index;               /* its callback's index in the plugin's table */
    struct watch_node *prev, *next;
} watch_node;

/* The calls held: a list in arrival order and an open-addressing map from the call
 * record to its node (tombstones: TOMB). */
static struct {
    dfd_board *board;
    watch_node *head, *tail;
    uint32_t count;
    watch_node **slots;
    dfd_call **keys;
    size_t mask, used;
} watch;

static watch_node tomb_node;
#define TOMB (&tomb_node)

static size_t watch_hash(const dfd_call *call)
{
    uintptr_t v = (uintptr_t)call;
    v ^= v >> 17;
    v *= 0x9e3779b97f4a7c15ull;
    return (size_t)(v >> 7);
}

/* Grows (or cleans) the map to hold twice the live nodes. Returns 0 or -1. */
static int watch_grow(void)
{
    size_t cap = 64;
    while (cap < (size_t)watch.count * 4 + 4)
        cap <<= 1;
    watch_node **slots = calloc(cap, sizeof(*slots));
    dfd_call **keys = calloc(cap, sizeof(*keys));
    if (slots == NULL || keys == NULL) {
        free(slots);
        free(keys);
        return -1;
    }
    for (watch_node *n = watch.head; n != NULL; n = n->next) {
        size_t at = watch_hash(n->call) & (cap - 1);
        while (slots[at] != NULL)
            at = (at + 1) & (cap - 1);
        slots[at] = n;
        keys[at] = n->call;
    }
    free(watch.slots);
    free(watch.keys);
    watch.slots = slots;
    watch.keys = keys;
    watch.mask = cap - 1;
    watch.used = watch.count;
    return 0;
}

/* The slot of call's node, or NULL. */
static watch_node **watch_find(const dfd_call *call)
{
    if (watch.slots == NULL)
        return NULL;
    for (size_t at = watch_hash(call) & watch.mask;; at = (at + 1) & watch.mask) {
        if (watch.slots[at] == NULL)
            return NULL;
        if (watch.slots[at] != TOMB && watch.keys[at] == call)
            return &watch.slots[at];
    }
}

/* Publishes the oldest call held (the list's head) on the board. */
static void watch_publish(void)
{
    if (watch.board == NULL)
        return;
    const watch_node *h = watch.head;
    atomic_store_explicit(&watch.board->oldest, h ? dfd_board_word(h->since_ns, h->index) : 0,
                          memory_order_release);
    atomic_store_explicit(&watch.board->running, watch.count, memory_order_relaxed);
}

static void watch_end(dfd_call *call);

/* The one hook a watched call carries: its outcome is final, its handler is done. */
static const dfd_call_hooks watch_hooks = {
    .before_answer = watch_end,
};

/* Notes call (for cb) as held from now. A call that cannot be noted (out of memory)
 * runs unwatched. */
static void watch_start(dfd_call *call, const dfd_callback *cb)
{
    if ((watch.used + 1) * 2 > watch.mask + 1 && watch_grow() == -1)
        return;
    watch_node *n = malloc(sizeof(*n));
    if (n == NULL)
        return;
    n->call = call;
    n->since_ns = call->start_ns;
    n->index = (unsigned)(cb - cb->plugin->callbacks);
    n->next = NULL;
    n->prev = watch.tail;
    if (watch.tail != NULL)
        watch.tail->next = n;
    else
        watch.head = n;
    watch.tail = n;
    watch.count++;
    size_t at = watch_hash(call) & watch.mask;
    while (watch.slots[at] != NULL && watch.slots[at] != TOMB)
        at = (at + 1) & watch.mask;
    if (watch.slots[at] == NULL)
        watch.used++;
    watch.slots[at] = n;
    watch.keys[at] = call;
    call->hooks = &watch_hooks;
    watch_publish();
}

static void watch_end(dfd_call *call)
{
    watch_node **slot = watch_find(call);
    call->hooks = NULL;
    if (slot == NULL)
        return;
    watch_node *n = *slot;
    *slot = TOMB;
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        watch.head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        watch.tail = n->prev;
    watch.count--;
    free(n);
    watch_publish();
}

/* ---- the callback each thread runs, for the note a dying child leaves ---------- */

/* The callback (index + 1) the calling thread is inside, 0 outside any (set around
 * each handler step). */
static _Thread_local unsigned watch_current;
/* The plugin's own handlers, by callback index (the table holds the trampoline). */
static daffi_handler_fn *watch_handlers;

static daffi_status watch_trampoline(daffi_call *base)
{
    const dfd_callback *cb = ((dfd_call *)base)->cb;
    size_t k = (size_t)(cb - cb->plugin->callbacks);
    unsigned outer = watch_current;
    watch_current = (unsigned)k + 1;
    daffi_status st = watch_handlers[k](base);
    watch_current = outer;
    return st;
}

/* A fatal signal on a thread running a handler: its callback goes on the board, then
 * the signal takes its ordinary course (the handler was reset: SA_RESETHAND). */
static void watch_fatal(int sig)
{
    if (watch_current != 0 && watch.board != NULL)
        atomic_store_explicit(&watch.board->fatal, watch_current, memory_order_release);
    raise(sig);
}

/* exit() called from a handler: the same note. */
static void watch_exit(void)
{
    if (watch_current != 0 && watch.board != NULL)
        atomic_store_explicit(&watch.board->fatal, watch_current, memory_order_release);
}

void dfd_child_watch_init(dfd_board *board, dfd_plugin *p)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
    watch.board = board;
    watch_publish();
    watch_handlers = calloc(p->ncallbacks ? p->ncallbacks : 1, sizeof(*watch_handlers));
    if (watch_handlers == NULL)
        return; /* unwatched: the parent names the oldest call instead */
    for (size_t k = 0; k < p->ncallbacks; k++) {
        watch_handlers[k] = p->callbacks[k].fn;
        p->callbacks[k].fn = watch_trampoline;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watch_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigaction(fatal[i], &sa, NULL);
    atexit(watch_exit);
}

void dfd_child_watch_free(void)
{
    while (watch.head != NULL) {
        watch_node *n = watch.head;
        watch.head = n->next;
        free(n);
    }
    free(watch.slots);
    free(watch.keys);
    memset(&watch, 0, sizeof(watch));
    /* the plugin is released before this: its table is gone with it */
    free(watch_handlers);
    watch_handlers = NULL;
}

void dfd_child_route(dfd_conn *c, dfd_call *call)
{
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    const dfd_callback *cb = dfd_table_find(call->loop->table, method, len);
    if (cb == NULL || strlen(method) != len) {
        dfd_dispatch_route_local(c, call); /* NO_CALLBACK, or a dropped notification */
        return;
    }
    watch_start(call, cb);
    dfd_dispatch_local(c, call, cb);
}
