/* httpstrict.c - requests the server refuses (see httpstrict.h). */
#include "server/httpstrict.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t httpstrict_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    httpstrict_flag_fn flag_of = (httpstrict_flag_fn)(uintptr_t)cls;
    if (strstr(s, "%00") != NULL) {
        int *flag = flag_of(c);
        if (flag != NULL)
            *flag = 1;
    }
    return MHD_http_unescape(s);
}

typedef struct cl_state {
    int count;
    int conflict;
    char first[32];
} cl_state;

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    cl_state *st = cls;
    if (key == NULL || strcasecmp(key, "Content-Length") != 0)
        return MHD_YES;
    const char *v = value != NULL ? value : "";
    while (*v == ' ' || *v == '\t')
        v++;
    if (st->count++ == 0) {
        snprintf(st->first, sizeof st->first, "%s", v);
    } else if (strcmp(st->first, v) != 0) {
        st->conflict = 1;
    }
    return MHD_YES;
}

const char *httpstrict_check(struct MHD_Connection *c, const char *version, int nul_seen,
                             const char **field)
{
    if (nul_seen) {
        *field = "path";
        return "%00 (a NUL byte) is not allowed in a path or query";
    }
    cl_state st;
    memset(&st, 0, sizeof st);
    MHD_get_connection_values(c, MHD_HEADER_KIND, each_header, &st);
    if (st.conflict) {
        *field = "Content-Length";
        return "two Content-Length headers that differ";
    }
    if (version != NULL && strcmp(version, "HTTP/1.1") == 0 &&
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST) == NULL) {
        *field = "Host";
        return "an HTTP/1.1 request needs a Host header";
    }
    return NULL;
}
