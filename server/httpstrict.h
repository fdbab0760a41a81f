/* httpstrict.h - what the HTTP layer refuses that libmicrohttpd lets through.
 *
 * A request is refused with 400 (and its connection closed) when it has two
 * Content-Length headers that differ (a request-smuggling primitive behind a
 * proxy), is HTTP/1.1 without a Host header (RFC 9112 3.2), or has %00 in its
 * path or query (a NUL would cut a path short: model.safetensors%00.txt).
 * Used by http.c only; thread-safe (no state of its own).
 */
#ifndef KILN_HTTPSTRICT_H
#define KILN_HTTPSTRICT_H

#include <microhttpd.h>

/* The unescape callback for MHD_OPTION_UNESCAPE_CALLBACK: MHD's own
 * unescaping, after noting in *flag_of(c) that the text had "%00". cls is a
 * function that gives that flag for a connection. */
typedef int *(*httpstrict_flag_fn)(struct MHD_Connection *c);
size_t httpstrict_unescape(void *cls, struct MHD_Connection *c, char *s);

/* Why the request on c (headers complete) must be refused, or NULL. nul_seen
 * is the flag the unescape callback set. *field names the culprit. */
const char *httpstrict_check(struct MHD_Connection *c, const char *version, int nul_seen,
                             const char **field);

#endif
