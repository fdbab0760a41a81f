/* err.h - kiln's error codes and the error-message buffer.
 *
 * Expected failures (bad input, I/O, a peer gone) are returned as a negative
 * ERR_* code; 0 is success. Functions that can say more take an `errbuf *`
 * (may be NULL) and write one human-readable line naming the problem: the
 * field, tensor, file or offset. Bugs use assert(); out-of-memory aborts in
 * xalloc.h, except on the try paths that return ERR_NOMEM. No dependencies beyond libc; thread-safe
 * (no global state).
 */
#ifndef KILN_ERR_H
#define KILN_ERR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_IO = -1,          /* open/read/write/fsync failed (errno in the message) */
    ERR_FORMAT = -2,      /* malformed or corrupt input: bad magic, bad JSON, truncation */
    ERR_INVALID = -3,     /* well-formed but not allowed: a field out of range, wrong type */
    ERR_NOT_FOUND = -4,   /* no such job, tensor, file, route */
    ERR_EXISTS = -5,      /* already there (duplicate id, idempotency key with another body) */
    ERR_STATE = -6,       /* not allowed in the current state (cancel a finished job) */
    ERR_BUSY = -7,        /* resource busy; retry later */
    ERR_TOO_LARGE = -8,   /* a size limit was exceeded */
    ERR_UNSUPPORTED = -9, /* a valid request that this build does not implement */
    ERR_CANCELLED = -10,  /* the operation was cancelled on request */
    ERR_TIMEOUT = -11,    /* a deadline passed */
    ERR_PEER = -12,       /* the other side went away or broke the protocol */
    ERR_AUTH = -13,       /* missing or bad credentials, or missing scope */
    ERR_INTERNAL = -14,   /* an unexpected failure of a library call */
    ERR_NOMEM = -15,      /* a large allocation (a model's buffers) cannot fit in memory */
};

/* One line of detail for the caller; always NUL-terminated. */
typedef struct errbuf {
    char msg[512];
} errbuf;

/* err_str returns a static, short English name for an ERR_* code. */
const char *err_str(int code);

/* err_set formats a message into eb (if eb is not NULL) and returns code, so
 * that a failing path can say `return err_set(eb, ERR_FORMAT, "...", ...)`. */
int err_set(errbuf *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* err_prefix prepends "prefix: " to the message already in eb (if any), so
 * that an outer layer can add context such as a file name. Returns code. */
int err_prefix(errbuf *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
