/*
 * calc - arithmetic on two numbers: add, multiply, divide.
 *
 *   add(a, b), multiply(a, b)  integers in, int64 out; overflow is HANDLER_ERROR.
 *                              If either argument is a float the result is a float64.
 *   divide(a, b)               always float64; division by zero is HANDLER_ERROR.
 *
 * Non-numbers and wrong arity are BAD_ARGS, with a message naming the argument.
 * An unsigned integer above INT64_MAX is not an int64, so add/multiply answer BAD_ARGS
 * for it ("argument 1 does not fit in int64"): the caller sent a value outside the
 * domain, nothing overflowed. divide converts it to float64 like any integer.
 *
 * The handlers are inline (flags 0): each is a few instructions and never blocks.
 * Instance state counts the calls; fini logs the count, so a reload shows what the
 * old generation served.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <daffi/plugin.h>

typedef struct calc_state {
    const daffi_host *host;   /* for logging from fini */
    atomic_ulong calls;       /* handlers run on every loop thread at once */
} calc_state;

/* One operand: an integer that fits int64, or a number seen as a double. */
typedef struct calc_num {
    int is_float;             /* the argument was a float32/float64 */
    int fits_int64;           /* integers only: the value fits in int64 */
    int64_t i;                /* valid when fits_int64 */
    double d;                 /* always valid */
} calc_num;

/* Returns the MessagePack type name of o, for error messages. */
static const char *calc_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

/* Reads the two operands of call into a and b. Returns 0, or -1 after replying
 * BAD_ARGS (wrong arity, or an argument that is not a number). */
static int calc_operands(daffi_call *call, calc_num *a, calc_num *b)
{
    calc_num *out[2] = {a, b};
    size_t argc = daffi_argc(call);

    if (argc != 2) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "%s takes 2 arguments (a, b), got %zu",
                          daffi_call_method(call), argc);
        return -1;
    }
    for (size_t i = 0; i < 2; i++) {
        const msgpack_object *o = daffi_arg(call, i);
        calc_num *n = out[i];

        if (daffi_arg_double(call, i, &n->d) == -1) {
            daffi_reply_error(call, DAFFI_E_BAD_ARGS, "argument %zu must be a number, got %s",
                              i + 1, calc_type_name(o));
            return -1;
        }
        n->is_float = o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64;
        n->fits_int64 = !n->is_float && daffi_arg_int(call, i, &n->i) == 0;
    }
    return 0;
}

/* Returns 0 when both operands are usable as int64, or -1 after replying BAD_ARGS for
 * the first one that is an unsigned integer beyond INT64_MAX. */
static int calc_int_operands(daffi_call *call, const calc_num *a, const calc_num *b)
{
    if (!a->fits_int64 || !b->fits_int64) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "argument %d does not fit in int64",
                          a->fits_int64 ? 2 : 1);
        return -1;
    }
    return 0;
}

/* Counts one call on the instance that serves it. */
static void calc_count(daffi_call *call)
{
    calc_state *st = daffi_call_state(call);
    atomic_fetch_add_explicit(&st->calls, 1, memory_order_relaxed);
}

/* add and multiply: a op b (op '+' or '*'), int64 when both are integers (overflow is
 * HANDLER_ERROR), float64 when either is a float. */
static daffi_status calc_arith(daffi_call *call, char op)
{
    calc_num a, b;
    int64_t r;
    int overflow;

    calc_count(call);
    if (calc_operands(call, &a, &b) == -1)
        return DAFFI_DONE;
    if (a.is_float || b.is_float) {
        daffi_reply_double(call, op == '+' ? a.d + b.d : a.d * b.d);
        return DAFFI_DONE;
    }
    if (calc_int_operands(call, &a, &b) == -1)
        return DAFFI_DONE;
    overflow = op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
                         : __builtin_mul_overflow(a.i, b.i, &r);
    if (overflow)
        daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "integer overflow: %lld %c %lld",
                          (long long)a.i, op, (long long)b.i);
    else
        daffi_reply_int(call, r);
    return DAFFI_DONE;
}

/* add(a, b): a + b. */
static daffi_status calc_add(daffi_call *call)
{
    return calc_arith(call, '+');
}

/* multiply(a, b): a * b. */
static daffi_status calc_multiply(daffi_call *call)
{
    return calc_arith(call, '*');
}

/* divide(a, b): a / b as float64, integers included (divide(7, 2) is 3.5). */
static daffi_status calc_divide(daffi_call *call)
{
    calc_num a, b;

    calc_count(call);
    if (calc_operands(call, &a, &b) == -1)
        return DAFFI_DONE;
    if (b.d == 0.0) /* also true for -0.0 */
        daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "division by zero");
    else
        daffi_reply_double(call, a.d / b.d);
    return DAFFI_DONE;
}

/* Creates the instance state and logs the [config] entries it was given. */
static int calc_init(daffi_host *host, void **state)
{
    calc_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        daffi_host_error(host, "out of memory");
        return -1;
    }
    st->host = host;
    atomic_init(&st->calls, 0);
    for (size_t i = 0; i < daffi_config_count(host); i++)
        daffi_log(host, DAFFI_LOG_INFO, "config %s=%s", daffi_config_key(host, i),
                  daffi_config_value(host, i));
    *state = st;
    return 0;
}

/* Logs how many calls this instance served and frees its state. */
static void calc_fini(void *state)
{
    calc_state *st = state;

    daffi_log(st->host, DAFFI_LOG_INFO, "served %lu calls",
              atomic_load_explicit(&st->calls, memory_order_relaxed));
    free(st);
}

static const daffi_callback_def calc_callbacks[] = {
    {"add", calc_add, 0, "add(a, b): a + b, int64 or float64"},
    {"multiply", calc_multiply, 0, "multiply(a, b): a * b, int64 or float64"},
    {"divide", calc_divide, 0, "divide(a, b): a / b as float64"},
    {NULL, NULL, 0, NULL}
};

DAFFI_PLUGIN("calc", "1.0.0", calc_init, calc_fini, calc_callbacks);
