/* httpc.h - a small libcurl client for the HTTP tests.
 *
 * One blocking request per call; the response body is kept (NUL-terminated)
 * with its headers, and parsed as JSON when it is JSON. Test code only.
 */
#ifndef KILN_HTTPC_H
#define KILN_HTTPC_H

#include <jansson.h>
#include <stddef.h>

typedef struct httpc_resp {
    long status;
    char *body; /* malloc'd, NUL-terminated */
    size_t len;
    char *headers; /* raw response headers, malloc'd */
    json_t *json;  /* the body as JSON, or NULL */
} httpc_resp;

/* httpc_do performs the request; extra_headers is a NULL-terminated list of
 * "Name: value" (or NULL). Returns 0, or -1 when no HTTP answer came. */
int httpc_do(const char *method, const char *url, const char *const *extra_headers,
             const void *body, size_t len, httpc_resp *r);

/* httpc_stream GETs a stream (Server-Sent Events) for at most max_ms: 0 when
 * the body ended or the time ran out after the status came (the body so
 * far is kept), -1 when no HTTP answer came. */
int httpc_stream(const char *url, const char *const *extra_headers, long max_ms, httpc_resp *r);

/* Shorthands: GET, and a JSON POST. */
int httpc_get(const char *url, httpc_resp *r);
int httpc_post_json(const char *url, const char *json_text, httpc_resp *r);

/* The value of a response header (case-insensitive), copied into buf; NULL if absent. */
const char *httpc_header(const httpc_resp *r, const char *name, char *buf, size_t len);

void httpc_free(httpc_resp *r);

#endif
