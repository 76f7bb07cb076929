/*
 * json.h - daffictl's conversion between JSON text and MessagePack: command-line
 * arguments in, results out. Part of daffictl, not of libdaffi (which needs no JSON
 * library); the unit tests and the fuzz target link it from here.
 *
 * Contract: the mapping
 *   JSON -> MessagePack (ctl_json_pack, ctl_json_arg)
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
 *     {"$map": [[key, value]...]}   map   (exactly that one key; keys of any type,
 *                              duplicates kept, in order)
 *   MessagePack -> JSON (ctl_json_dump)
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
 *     map                      an object, entries in order, when every key is a str
 *                              or a scalar (nil, bool, int, float: the key is the
 *                              string of its JSON text, 1 -> "1", nil -> "null"), the
 *                              key strings are distinct and hold no NUL, and the map
 *                              is not one entry named $bin, $ext or $map; any other
 *                              map (a key that is an array, map, bin or ext,
 *                              duplicate keys) is {"$map": [[key, value]...]} with
 *                              every key written as a value
 *   So JSON -> MessagePack -> JSON gives back the same text (once normalised by one
 *   pass), and MessagePack -> JSON -> MessagePack gives back the same value except
 *   for: scalar keys of an object (read back as str), float32 (read back as
 *   float64), NaN/inf, integers above 2^63-1 (the parser refuses them), invalid
 *   UTF-8.
 *   Size: each value is written once, so output and time are linear in the input.
 *   Compact output is at most 10 bytes per byte of the object's msgpack encoding;
 *   pretty output adds a newline and 2 x depth spaces per element.
 *   The output is written here rather than by jansson's encoder because jansson's
 *   values cannot hold a uint64 above 2^63-1, a duplicate key or a float32's
 *   precision; parsing uses jansson.
 *
 * Memory: ctl_json_dump() returns a string the caller frees with free(). The packers
 * write into whatever buffer the caller's msgpack_packer owns.
 * Thread safety: every function is reentrant.
 */
#ifndef DAFFICTL_JSON_H
#define DAFFICTL_JSON_H

#include <stddef.h>
#include <msgpack.h>

/* Where and why JSON text was rejected. line/column are 1-based (0 when unknown). */
typedef struct ctl_json_error {
    int line;
    int column;
    size_t position; /* byte offset */
    char text[192];  /* e.g. "'[' or '{' expected near 'x'" */
} ctl_json_error;

/* Parses len bytes of JSON text (any value, not only arrays/objects) and packs it as
 * one msgpack object into pk. Returns 0, or -1 with err (may be NULL) filled: bad
 * JSON, an integer out of range, a malformed $bin/$ext/$map, or the packer's writer
 * failing. Nothing is packed when the text is rejected; on a writer failure the
 * buffer holds a partial object and should be discarded. */
int ctl_json_pack(msgpack_packer *pk, const char *text, size_t len, ctl_json_error *err);

/* Packs one command-line argument: a JSON value where arg parses as one, else the
 * string arg itself. So `3` is an int, `-2.5` a float, `"x"` the string x, `hello`
 * the string hello, `[1,2]` an array, `{"a":1}` a map, `true` a boolean, `[1,` and
 * `` (empty) strings. Returns 0, or -1 with err filled when arg is valid JSON with a
 * malformed $bin/$ext/$map (a mistake worth reporting rather than sending as text),
 * or when the packer's writer failed. */
int ctl_json_arg(msgpack_packer *pk, const char *arg, ctl_json_error *err);

/* Output flags of ctl_json_dump(). */
#define CTL_JSON_COMPACT 0x0u /* one line, no spaces: [1,{"a":2}] */
#define CTL_JSON_PRETTY 0x1u  /* indented by 2, one element per line */

/* Returns the JSON text of obj as a NUL-terminated string owned by the caller
 * (free()), without a trailing newline, or NULL when memory ran out. */
char *ctl_json_dump(const msgpack_object *obj, unsigned flags);

#endif /* DAFFICTL_JSON_H */
