/*
 * daffi/errors.h - the error codes of the wire protocol (sdk/PROTOCOL.md, normative),
 * one name each. Included by <daffi/plugin.h> (handlers set them with
 * daffi_reply_error) and <daffi/rpc.h> (the codec and clients read them).
 */
#ifndef DAFFI_ERRORS_H
#define DAFFI_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes carried in a response's error array. */
typedef enum daffi_error_code {
    DAFFI_OK = 0,
    DAFFI_E_NO_CALLBACK = 1,
    DAFFI_E_BAD_ARGS = 2,
    DAFFI_E_TIMEOUT = 3,
    DAFFI_E_HANDLER_ERROR = 4,
    DAFFI_E_UNAVAILABLE = 5,
    DAFFI_E_OVERLOADED = 6,
    DAFFI_E_TOO_LARGE = 7,
    DAFFI_E_PROTOCOL = 8,
    DAFFI_E_DENIED = 9,
    DAFFI_E_SHUTTING_DOWN = 10
} daffi_error_code;

#ifdef __cplusplus
}
#endif

#endif /* DAFFI_ERRORS_H */
