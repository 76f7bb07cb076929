/*
 * daffi/rpc.h - the MessagePack-RPC codec shared by daffid and every daffi client.
 *
 * Contract
 *   Wire format (normative, see sdk/PROTOCOL.md):
 *     request       [0, msgid:uint32, method:str|bin, params:array]
 *     response      [1, msgid:uint32, error:nil|[code, message(, details)], result:any]
 *     notification  [2, method:str|bin, params:array]
 *
 *   Decoding is two steps, so that nothing is ever allocated from a count the peer
 *   declared before that count has been checked against the bytes that can exist:
 *     1. daffi_scan_feed() walks the raw bytes of one message without allocating. It is
 *        resumable: feed it the same message start with more bytes as they arrive. It
 *        validates the envelope, the nesting depth and every declared length/count
 *        against the limits, and tells when a whole message is present and its size.
 *     2. daffi_msg_decode() decodes one complete, scanned message into msgpack-c objects
 *        (msgpack_object) allocated from a caller-owned zone. The objects reference the
 *        input bytes (str/bin/ext payloads are not copied): keep the bytes alive as long
 *        as the objects.
 *   Encoding uses msgpack-c's packer; the helpers below write envelope headers, the
 *   caller packs params/result after them.
 *
 *   Why a hand-written scanner and decoder: msgpack-c's unpacker allocates
 *   msgpack_object arrays from a container's declared count before its elements
 *   arrive, so a 5-byte header could ask for gigabytes; and it stops at 32 nested
 *   containers, while a request whose argument nests 32 deep has 34 levels with the
 *   envelope and the params array. The scanner rejects bad counts first; the decoder
 *   builds the same msgpack_object trees msgpack-c would (fuzzed against it).
 *
 * Thread safety: every function is reentrant; a daffi_scan belongs to one stream.
 */
#ifndef DAFFI_RPC_H
#define DAFFI_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <daffi/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Message kinds: the first element of every envelope. */
typedef enum daffi_msg_kind {
    DAFFI_MSG_REQUEST = 0,
    DAFFI_MSG_RESPONSE = 1,
    DAFFI_MSG_NOTIFY = 2
} daffi_msg_kind;

/* Returns the static upper-case name of an error code ("NO_CALLBACK", ...), or
 * "UNKNOWN" for a code outside 1..10. Never NULL; the caller does not free it. */
const char *daffi_error_name(int code);

/* Limits applied while scanning. max_depth counts the envelope array as depth 1,
 * so params nested 32 deep inside it is depth 33: DAFFI_DEFAULT_MAX_DEPTH bounds the
 * nesting of user values (params elements), as DESIGN.md's "deeper than 32" means. */
#define DAFFI_DEFAULT_MAX_MESSAGE ((size_t)16 * 1024 * 1024)
#define DAFFI_DEFAULT_MAX_DEPTH 32u
#define DAFFI_SCAN_MAX_DEPTH 65u /* the scan stack: max_depth (<= 62) + envelope, params
                                  * and a daffi.call wrapper */

typedef struct daffi_limits {
    size_t max_message;  /* bytes in one whole encoded message, >= 16 */
    unsigned max_depth;  /* nesting of values inside params/result, <= 62 */
} daffi_limits;

typedef enum daffi_scan_result {
    DAFFI_SCAN_NEED_MORE = 0, /* no verdict yet: call again with more bytes */
    DAFFI_SCAN_COMPLETE = 1,  /* one whole valid message of s->size bytes */
    DAFFI_SCAN_PROTOCOL = 2,  /* malformed: s->error says what */
    DAFFI_SCAN_TOO_LARGE = 3  /* the message cannot fit in max_message */
} daffi_scan_result;

/* Resumable scanner state. Fields above the private mark are results the caller
 * reads; initialise with daffi_scan_init() before each new message. */
typedef struct daffi_scan {
    size_t size;            /* COMPLETE: bytes of the whole message */
    int kind;               /* -1 until read, then a daffi_msg_kind */
    int have_msgid;         /* 1 once a valid uint32 msgid was read (req/resp) */
    uint32_t msgid;
    const char *error;      /* PROTOCOL/TOO_LARGE: static text naming the fault */
    /* private */
    size_t pos;             /* bytes consumed so far (start of next element) */
    unsigned depth;         /* containers open */
    unsigned top_index;     /* index of the next envelope element */
    size_t method_at;       /* offset of the method's bytes */
    size_t method_len;
    unsigned wrapped;       /* daffi.call/cast/stream: the callback's params nest one
                               level deeper, and max_depth counts from there */
    uint32_t remain[DAFFI_SCAN_MAX_DEPTH]; /* elements left per open container */
    uint8_t is_map[DAFFI_SCAN_MAX_DEPTH];
} daffi_scan;

void daffi_scan_init(daffi_scan *s);

/* Scans the message that starts at buf, of which len bytes are available (len may
 * hold further messages after it: they are not looked at). Call again with the same
 * message start (the bytes may have moved) and len >= the previous len. Rules:
 *   - the top level is an array: 4 elements for kinds 0 and 1, 3 for kind 2;
 *     element 0 an integer 0..2; msgid any uint encoding <= 0xffffffff;
 *     method str or bin; params an array; error nil or array.
 *   - nesting deeper than max_depth inside the envelope (counted from the values inside
 *     params; for daffi.call, daffi.cast and daffi.stream, which carry a callback's
 *     params as their second argument, from the values inside those), the reserved
 *     byte 0xc1, or a
 *     container whose declared count cannot fit in max_message bytes: PROTOCOL.
 *   - a str/bin/ext whose declared length would end past max_message, or
 *     len >= max_message without a complete message: TOO_LARGE.
 * Allocates nothing. */
daffi_scan_result daffi_scan_feed(daffi_scan *s, const char *buf, size_t len,
                                  const daffi_limits *lim);

/* Returns the encoded size of the one msgpack object at p (len bytes available), or 0
 * when the bytes hold no complete object. Does not validate limits: use it on bytes
 * daffi_scan_feed() already accepted. */
size_t daffi_object_size(const char *p, size_t len);

/* ---- Walking encoded bytes (no decoding, no allocation) ----
 * For bytes daffi_scan_feed() accepted (so every object is whole). */

/* Reads the array header at p: element count and header size. Returns 0, or -1 when p
 * does not start with an array. */
int daffi_array_header(const char *p, size_t len, uint32_t *count, size_t *hdr);
/* Finds element i of the encoded array at p. Returns 0, or -1 when there is none. */
int daffi_array_element(const char *p, size_t len, size_t i, const char **elem,
                        size_t *elem_len);
/* Splits a response envelope [1, msgid, error, result] into its encoded error and
 * result elements. Returns 0, or -1 when the bytes are not a response envelope. */
int daffi_response_split(const char *bytes, size_t size, const char **err, size_t *err_len,
                         const char **result, size_t *result_len);
/* The code of an encoded error array [code, message(, details)] (for counters), or 0
 * when it has no readable non-negative code. */
int daffi_error_code_of(const char *p, size_t len);

/* A decoded message. Pointers reference the zone and the input bytes. */
typedef struct daffi_msg {
    daffi_msg_kind kind;
    uint32_t msgid;                 /* request, response */
    const char *method;             /* request, notify: not NUL-terminated */
    size_t method_len;
    const msgpack_object *params;   /* request, notify: an array */
    const char *params_raw;         /* request, notify: encoded params array */
    size_t params_raw_len;
    const msgpack_object *error;    /* response: nil or array */
    const msgpack_object *result;   /* response */
} daffi_msg;

/* Decodes one complete message of size bytes (as daffi_scan_feed() measured it) into
 * out, allocating objects from zone (owned by the caller, who clears or destroys it).
 * Returns 0, or -1 when the bytes are not a valid message (which cannot happen for
 * bytes the scanner accepted with the same limits). */
int daffi_msg_decode(const char *buf, size_t size, msgpack_zone *zone, daffi_msg *out);

/* Envelope writers. Each returns 0 or -1 when the packer's writer failed.
 * After daffi_pack_request()/daffi_pack_notify() pack exactly nparams objects; after
 * daffi_pack_response_ok() pack exactly one object (the result). */
int daffi_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method,
                       size_t method_len, uint32_t nparams);
int daffi_pack_notify(msgpack_packer *pk, const char *method, size_t method_len,
                      uint32_t nparams);
int daffi_pack_response_ok(msgpack_packer *pk, uint32_t msgid);
/* Packs a whole error response [1, msgid, [code, message], nil]. message may be NULL
 * (then the error's name is used). */
int daffi_pack_response_error(msgpack_packer *pk, uint32_t msgid, int code,
                              const char *message);
/* Packs the header of an error response whose error array carries a details map:
 * [1, msgid, [code, message, <details>], nil] - the caller packs exactly one object
 * (the details map) and then calls daffi_pack_response_error_end(). */
int daffi_pack_response_error_details(msgpack_packer *pk, uint32_t msgid, int code,
                                      const char *message);
int daffi_pack_response_error_end(msgpack_packer *pk);
/* Packs a str object from a NUL-terminated string. */
int daffi_pack_cstr(msgpack_packer *pk, const char *s);

/* Reads an error array ([code, message(, details)]) of a response. Returns 0 and sets
 * *code, *message (not NUL-terminated, may be NULL/0) and *details (may be NULL), or -1
 * when the object is not such an array. */
int daffi_error_parse(const msgpack_object *err, int *code, const char **message,
                      size_t *message_len, const msgpack_object **details);

/* Typed readers for result values (any msgpack_object, e.g. &res.obj or an element
 * of it). Each returns 0 and stores the value, or -1 when o is NULL or of another
 * type, with no conversion except: daffi_obj_int/daffi_obj_uint accept any integer
 * that fits, daffi_obj_double accepts integers and float32. Strings and bins are not
 * NUL-terminated and point into the result. */
int daffi_obj_int(const msgpack_object *o, int64_t *out);
int daffi_obj_uint(const msgpack_object *o, uint64_t *out);
int daffi_obj_double(const msgpack_object *o, double *out);
int daffi_obj_bool(const msgpack_object *o, int *out);
int daffi_obj_str(const msgpack_object *o, const char **p, size_t *len);
int daffi_obj_bin(const msgpack_object *o, const char **p, size_t *len);
/* Returns element i of an array, or NULL when o is not an array or i is past its end. */
const msgpack_object *daffi_obj_at(const msgpack_object *o, size_t i);
/* Returns the value of the first entry of map o whose key (str or bin) is key, or NULL. */
const msgpack_object *daffi_obj_get(const msgpack_object *o, const char *key);
/* Reads a str or a bin (names may arrive as either). Returns 0, or -1. */
int daffi_obj_text(const msgpack_object *o, const char **p, size_t *len);

/* Address parsing shared by daemon and clients: "tcp://host:port" (host may be
 * "[v6]"), "tls://host:port" (the same, TLS over it: kind TCP with tls set) or
 * "unix:///absolute/path" / "unix://relative/path". */
typedef enum daffi_addr_kind { DAFFI_ADDR_TCP = 1, DAFFI_ADDR_UNIX = 2 } daffi_addr_kind;
typedef struct daffi_addr {
    daffi_addr_kind kind;
    char host[256];   /* TCP: host name or address, without brackets */
    int port;         /* TCP: 1..65535 (0 allowed only where the caller permits) */
    char path[108];   /* UNIX: filesystem path (sun_path size) */
    int tls;          /* TCP: 1 for a tls:// address */
} daffi_addr;

/* Parses text into out. Returns 0, or -1 with a static reason in *why. */
int daffi_addr_parse(const char *text, daffi_addr *out, const char **why);

#ifdef __cplusplus
}
#endif
#endif /* DAFFI_RPC_H */
