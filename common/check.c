/* check.c - the failure path of KILN_CHECK (see check.h). */
#include "check.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

_Noreturn void kiln_check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char detail[512] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    log_error("check failed at %s:%d: %s%s%s", file, line, expr, detail[0] ? ": " : "", detail);
    abort();
}
