/*
 * rpc_walk.c - readers of encoded messages that need no decoding (see daffi/rpc.h,
 * "Walking encoded bytes"): array headers, the parts of a response envelope, the code
 * of an encoded error. Every msgpack walker of daffid and the client lives here.
 */
#include <msgpack.h>

#include <daffi/rpc.h>

int daffi_array_header(const char *p, size_t len, uint32_t *count, size_t *hdr)
{
    if (len == 0)
        return -1;
    unsigned char b = (unsigned char)p[0];
    if ((b & 0xf0) == 0x90) {
        *count = b & 0x0f;
        *hdr = 1;
    } else if (b == 0xdc && len >= 3) {
        *count = ((uint32_t)(unsigned char)p[1] << 8) | (unsigned char)p[2];
        *hdr = 3;
    } else if (b == 0xdd && len >= 5) {
        *count = ((uint32_t)(unsigned char)p[1] << 24) | ((uint32_t)(unsigned char)p[2] << 16) |
                 ((uint32_t)(unsigned char)p[3] << 8) | (unsigned char)p[4];
        *hdr = 5;
    } else {
        return -1;
    }
    return 0;
}

int daffi_array_element(const char *p, size_t len, size_t i, const char **elem,
                        size_t *elem_len)
{
    uint32_t count;
    size_t off;
    if (daffi_array_header(p, len, &count, &off) == -1 || i >= count)
        return -1;
    for (size_t k = 0;; k++) {
        size_t n = daffi_object_size(p + off, len - off);
        if (n == 0)
            return -1;
        if (k == i) {
            *elem = p + off;
            *elem_len = n;
            return 0;
        }
        off += n;
    }
}

int daffi_response_split(const char *bytes, size_t size, const char **err, size_t *err_len,
                         const char **result, size_t *result_len)
{
    uint32_t count;
    size_t off;
    if (daffi_array_header(bytes, size, &count, &off) == -1 || count != 4)
        return -1;
    for (int i = 0; i < 2; i++) { /* kind, msgid */
        size_t n = daffi_object_size(bytes + off, size - off);
        if (n == 0)
            return -1;
        off += n;
    }
    size_t n = daffi_object_size(bytes + off, size - off);
    if (n == 0)
        return -1;
    *err = bytes + off;
    *err_len = n;
    off += n;
    n = daffi_object_size(bytes + off, size - off);
    if (n == 0)
        return -1;
    *result = bytes + off;
    *result_len = n;
    return 0;
}

int daffi_error_code_of(const char *p, size_t len)
{
    uint32_t count;
    size_t off;
    if (daffi_array_header(p, len, &count, &off) == -1 || count < 2 || off >= len)
        return 0;
    unsigned char b = (unsigned char)p[off];
    if (b <= 0x7f)
        return b;
    if (b == 0xcc && off + 1 < len)
        return (unsigned char)p[off + 1];
    if (b == 0xcd && off + 2 < len)
        return ((unsigned char)p[off + 1] << 8) | (unsigned char)p[off + 2];
    return 0;
}
