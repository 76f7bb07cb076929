/*
 * sync_caller.c - a synchronous daffi caller: connect, call, read results and errors.
 *
 *   cc sync_caller.c $(pkg-config --cflags --libs daffi) -o sync_caller
 *   ./sync_caller [ADDRESS]        (default $DAFFI_ADDRESS, else tcp://127.0.0.1:6001)
 *
 * Against a daffid serving the example plugins (make run) it prints:
 *   ping: pong in 0.052 ms
 *   add(1, 2) = 3
 *   echo({"list": [1, 2.5]}) = {"list": [1, 2.5]}
 *   divide(1, 0): HANDLER_ERROR (code 4): division by zero
 *   echo_after(500, "late") with a 50 ms timeout: TIMEOUT after 50 ms
 *   add(20, 22) = 42
 * and exits 0 when every answer was the expected one, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <daffi/client.h>

/* Builds params [a, b] for two integers into objs (no allocation). */
static msgpack_object two_ints(msgpack_object objs[2], int64_t a, int64_t b)
{
    msgpack_object params;

    objs[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    objs[0].via.u64 = (uint64_t)a;
    objs[1].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    objs[1].via.u64 = (uint64_t)b;
    params.type = MSGPACK_OBJECT_ARRAY;
    params.via.array.size = 2;
    params.via.array.ptr = objs;
    return params;
}

/* Calls add(a, b); returns 0 when the answer is a + b. */
static int call_add(daffi_client *c, int64_t a, int64_t b)
{
    msgpack_object objs[2], params = two_ints(objs, a, b);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    int64_t sum;

    if (daffi_rpc(c, "add", &params, 1000, &res, &err) == -1) {
        printf("add: %s (code %d): %s\n", err.name, err.code, err.message);
        daffi_error_clear(&err);
        return -1;
    }
    if (daffi_obj_int(&res.obj, &sum) == -1 || sum != a + b) {
        printf("add(%" PRId64 ", %" PRId64 "): unexpected result\n", a, b);
        daffi_result_free(&res);
        return -1;
    }
    printf("add(%" PRId64 ", %" PRId64 ") = %" PRId64 "\n", a, b, sum);
    daffi_result_free(&res);
    return 0;
}

/* Calls echo({"list": [1, 2.5]}) with params packed by hand; returns 0 when the map
 * comes back. */
static int call_echo(daffi_client *c)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    daffi_result res;
    daffi_error err = DAFFI_ERROR_INIT;
    const msgpack_object *list;
    int64_t first;
    double second;
    int rc = -1;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);        /* params: one argument */
    msgpack_pack_map(&pk, 1);          /* {"list": [1, 2.5]} */
    msgpack_pack_str_with_body(&pk, "list", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_double(&pk, 2.5);
    if (daffi_rpc_raw(c, "echo", sb.data, sb.size, 1000, &res, &err) == 0) {
        list = daffi_obj_get(&res.obj, "list");
        if (daffi_obj_int(daffi_obj_at(list, 0), &first) == 0 &&
            daffi_obj_double(daffi_obj_at(list, 1), &second) == 0 && first == 1 &&
            second == 2.5) {
            printf("echo({\"list\": [1, 2.5]}) = {\"list\": [%" PRId64 ", %g]}\n", first,
                   second);
            rc = 0;
        }
        daffi_result_free(&res);
    } else {
        printf("echo: %s (code %d): %s\n", err.name, err.code, err.message);
        daffi_error_clear(&err);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Calls divide(1, 0), which fails; returns 0 when it failed with HANDLER_ERROR. */
static int call_divide_by_zero(daffi_client *c)
{
    msgpack_object objs[2], params = two_ints(objs, 1, 0);
    daffi_error err = DAFFI_ERROR_INIT;
    int rc;

    if (daffi_rpc(c, "divide", &params, 1000, NULL, &err) == 0) {
        printf("divide(1, 0): succeeded?\n");
        return -1;
    }
    printf("divide(1, 0): %s (code %d): %s\n", err.name, err.code, err.message);
    rc = err.code == DAFFI_E_HANDLER_ERROR && err.remote ? 0 : -1;
    daffi_error_clear(&err);
    return rc;
}

/* Calls echo_after(500, "late") with a 50 ms timeout; returns 0 when it timed out
 * after about 50 ms. The connection stays usable: the late reply is discarded. */
static int call_with_timeout(daffi_client *c)
{
    msgpack_object objs[2], params = two_ints(objs, 500, 0);
    daffi_error err = DAFFI_ERROR_INIT;
    int rc;

    objs[1].type = MSGPACK_OBJECT_STR;
    objs[1].via.str.ptr = "late";
    objs[1].via.str.size = 4;
    if (daffi_rpc(c, "echo_after", &params, 50, NULL, &err) == 0) {
        printf("echo_after: answered within 50 ms?\n");
        return -1;
    }
    printf("echo_after(500, \"late\") with a 50 ms timeout: %s after %" PRId64 " ms\n",
           err.name, err.elapsed_ms);
    rc = err.code == DAFFI_E_TIMEOUT && err.elapsed_ms >= 50 ? 0 : -1;
    daffi_error_clear(&err);
    return rc;
}

int main(int argc, char **argv)
{
    const char *env = getenv("DAFFI_ADDRESS");
    const char *address = argc > 1 ? argv[1] : env != NULL ? env : "tcp://127.0.0.1:6001";
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c;
    int64_t rtt_us;
    int failed = 0;

    c = daffi_connect(address, NULL, &err);
    if (c == NULL) {
        fprintf(stderr, "sync_caller: %s (code %d): %s\n", err.name, err.code, err.message);
        daffi_error_clear(&err);
        return 1;
    }
    if (daffi_ping(c, 1000, &rtt_us, &err) == 0) {
        printf("ping: pong in %.3f ms\n", (double)rtt_us / 1000.0);
    } else {
        printf("ping: %s: %s\n", err.name, err.message);
        failed++;
    }
    failed += call_add(c, 1, 2) != 0;
    failed += call_echo(c) != 0;
    failed += call_divide_by_zero(c) != 0;
    failed += call_with_timeout(c) != 0;
    failed += call_add(c, 20, 22) != 0; /* same connection, after the timeout */
    daffi_error_clear(&err);
    daffi_close(c);
    return failed == 0 ? 0 : 1;
}
