/*
 * daffi/json.h - converting between JSON text and MessagePack, for command lines
 * (daffictl), logs and tests.
 *
 * Contract: the mapping
 *   JSON -> MessagePack (daffi_json_pack, daffi_json_arg)
 *     integer                  int (the smallest encoding; -2^63 .. 2^63-1, larger
 *                              integers are an error: jansson reads int64)
 *     real (1.5, 1e3, 2.0)     float64
 *     string                   str (UTF-8; "\u0000" allowed)
 *     true / false / null      true / false / nil
 *     array                    array
 *     object                   map with str keys, in the text's order (a duplicate
 *                              key: the last value wins)
 *     {"$bin": "<base64>"}     bin        (an object of exactly that one key)
 *     {"$ext": [type, "<base64>"]}  ext   (type -128..127; exactly that one key)
 *   MessagePack -> JSON (daffi_json_dump)
 *     nil, true/false          null, true/false
 *     int, uint                integer, exact over the whole int64/uint64 range
 *     float64, float32         number, shortest text that reads back to the same
 *                              float (float32 at float32 precision, so 0.1f is 0.1);
 *                              always with a '.' or exponent ("2.0"), so it reads
 *                              back as a real; NaN and +/-inf become null
 *     str                      string (bytes that are not valid UTF-8 become U+FFFD)
 *     bin                      {"$bin": "<base64>"}
 *     ext                      {"$ext": [type, "<base64>"]}
 *     array                    array
 *     map                      object, entries in order (duplicates kept as they
 *                              are); a key that is not a str becomes the string of
 *                              its compact JSON text: 1 -> "1", [1,2] -> "[1,2]",
 *                              nil -> "null"
 *   So JSON -> MessagePack -> JSON gives back the same value, and MessagePack ->
 *   JSON -> MessagePack does too except for: non-str map keys, float32 (read back as
 *   float64), NaN/inf, integers above 2^63-1, invalid UTF-8.
 *   The output is written here rather than by jansson's encoder because jansson's
 *   values cannot hold a uint64 above 2^63-1, a duplicate key or a float32's
 *   precision; parsing uses jansson.
 *
 * Memory: daffi_json_dump() returns a string the caller frees with free(). The
 * packers write into whatever buffer the caller's msgpack_packer owns.
 * Thread safety: every function is reentrant.
 */
#ifndef DAFFI_JSON_H
#define DAFFI_JSON_H

#include <stddef.h>
#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where and why JSON text was rejected. line/column are 1-based (0 when unknown). */
typedef struct daffi_json_error {
    int line;
    int column;
    size_t position; /* byte offset */
    char text[192];  /* e.g. "'[' or '{' expected near 'x'" */
} daffi_json_error;

/* Parses len bytes of JSON text (any value, not only arrays/objects) and packs it as
 * one msgpack object into pk. Returns 0, or -1 with err (may be NULL) filled: bad
 * JSON, an integer out of range, a malformed $bin/$ext, or the packer's writer
 * failing. Nothing is packed when the text is rejected; on a writer failure the
 * buffer holds a partial object and should be discarded. */
int daffi_json_pack(msgpack_packer *pk, const char *text, size_t len, daffi_json_error *err);

/* Packs one command-line argument: a JSON value where arg parses as one, else the
 * string arg itself. So `3` is an int, `-2.5` a float, `"x"` the string x, `hello`
 * the string hello, `[1,2]` an array, `{"a":1}` a map, `true` a boolean, `[1,` and
 * `` (empty) strings. Returns 0, or -1 with err filled when arg is valid JSON with a
 * malformed $bin/$ext (a mistake worth reporting rather than sending as text), or
 * when the packer's writer failed. */
int daffi_json_arg(msgpack_packer *pk, const char *arg, daffi_json_error *err);

/* Output flags of daffi_json_dump(). */
#define DAFFI_JSON_COMPACT 0x0u /* one line, no spaces: [1,{"a":2}] */
#define DAFFI_JSON_PRETTY 0x1u  /* indented by 2, one element per line */

/* Returns the JSON text of obj as a NUL-terminated string owned by the caller
 * (free()), without a trailing newline, or NULL when memory ran out. */
char *daffi_json_dump(const msgpack_object *obj, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* DAFFI_JSON_H */
