/* fielderr.c - validation problem lists (see fielderr.h). */
#include "fielderr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fe_init(field_errors *fe)
{
    memset(fe, 0, sizeof *fe);
}

void fe_add(field_errors *fe, const char *field, const char *fmt, ...)
{
    if (fe == NULL)
        return;
    if (fe->n >= FE_MAX) {
        fe->dropped++;
        return;
    }
    field_error *e = &fe->e[fe->n++];
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
}

void fe_format(const field_errors *fe, char *buf, unsigned long len)
{
    size_t used = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < fe->n && used + 1 < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s: %s", i ? "; " : "", fe->e[i].field,
                         fe->e[i].reason);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (fe->dropped && used + 1 < len)
        snprintf(buf + used, len - used, "; and %d more", fe->dropped);
}
