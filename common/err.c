/* err.c - error names and the errbuf helpers (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_IO:
        return "I/O error";
    case ERR_FORMAT:
        return "malformed input";
    case ERR_INVALID:
        return "invalid argument";
    case ERR_NOT_FOUND:
        return "not found";
    case ERR_EXISTS:
        return "already exists";
    case ERR_STATE:
        return "not allowed in this state";
    case ERR_BUSY:
        return "busy";
    case ERR_TOO_LARGE:
        return "too large";
    case ERR_UNSUPPORTED:
        return "not supported";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_TIMEOUT:
        return "timed out";
    case ERR_PEER:
        return "peer failure";
    case ERR_AUTH:
        return "not authorised";
    case ERR_INTERNAL:
        return "internal error";
    case ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

int err_set(errbuf *eb, int code, const char *fmt, ...)
{
    if (eb != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int err_prefix(errbuf *eb, int code, const char *fmt, ...)
{
    if (eb != NULL) {
        char old[sizeof eb->msg];
        memcpy(old, eb->msg, sizeof old);
        old[sizeof old - 1] = '\0';
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n + 2 < sizeof eb->msg) {
            size_t used = (size_t)n;
            size_t room = sizeof eb->msg - used - 2;
            size_t len = strlen(old);
            if (len > room)
                len = room;
            eb->msg[used] = ':';
            eb->msg[used + 1] = ' ';
            memcpy(eb->msg + used + 2, old, len);
            eb->msg[used + 2 + len] = '\0';
        }
    }
    return code;
}
