/* http.h - the HTTP server adapter: libmicrohttpd in, plain structs out.
 *
 * http.c is the only file that includes microhttpd.h. It turns each request
 * into an http_request {method, path, query, headers, body, len} (the body
 * buffered per connection, up to a size limit) and hands it to one dispatch
 * function, which fills an http_response {status, JSON or bytes or a file
 * range, headers}. Everything above this layer (routes.c, handlers_*.c) is
 * plain C that never sees a socket, so it is tested by calling it directly.
 * Threads: the dispatch function is called from MHD's threads (how many
 * depends on the mode) and must be thread-safe.
 */
#ifndef KILN_HTTP_H
#define KILN_HTTP_H

#include "common/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_KV     64
#define HTTP_MAX_PARAMS 4

typedef struct http_kv {
    const char *key;   /* borrowed, valid during the dispatch call */
    const char *value; /* borrowed; "" for a query key without '=' */
} http_kv;

typedef struct http_request {
    const char *method; /* "GET", "POST", ... ("HEAD" is passed as is) */
    const char *path;   /* decoded path, without the query string */
    http_kv query[HTTP_MAX_KV];
    int n_query;
    http_kv headers[HTTP_MAX_KV];
    int n_headers;
    const char *body; /* NUL-terminated copy of the upload, or NULL */
    size_t len;
    int too_large;         /* the body went over the limit: answer 413 */
    const char *malformed; /* why the request breaks HTTP/1.1's rules (answer 400), or NULL */
    const char *body_file; /* a spooled body (http_options.spool_path): its temporary file,
                            * len bytes; the handler may rename it away, else it is removed */
    char request_id[24];
    /* Filled by the router: */
    const char *params[HTTP_MAX_PARAMS]; /* path parameters ({id}, {name}), in order */
    int n_params;
    char param_buf[HTTP_MAX_PARAMS][256]; /* storage of params[] */
    json_t *json;       /* the parsed JSON body, for routes that take one (borrowed) */
    char principal[64]; /* the name of the bearer token used, or "" */
    unsigned scopes;    /* its scopes (auth.h AUTH_*); 0 when the server has no tokens */
    char client[48];    /* the client's address (IPv4 text), or "" */
    int route;          /* the router's index of the matched route, or -1 */
    /* The http layer's own, for http_defer (NULL: this request cannot wait). */
    void *defer_server, *defer_conn;
} http_request;

#define HTTP_MAX_RESP_HEADERS 8

/* A streamed body (Server-Sent Events). The http layer owns the handle; the
 * producer keeps it from attach until free to wake the stream. */
typedef struct http_stream http_stream;

/* Writes the next bytes of a streamed body into buf (at most max) and
 * returns how many (> 0); 0 when there is nothing to send now (the stream
 * sleeps until http_stream_resume, so call that when there may be more);
 * -1 to end the body. Called from the HTTP threads, one call at a time. */
typedef long (*http_stream_fn)(void *ctx, char *buf, size_t max);

/* A response given later (see http_defer). */
typedef struct http_deferred http_deferred;

typedef struct http_response {
    int status;
    json_t *json; /* body as JSON (owned), or NULL */
    char *body;   /* raw body (owned, malloc'd), used when json is NULL */
    size_t len;
    const char *content_type; /* static string; default application/json */
    int fd;                   /* >= 0: serve [offset, offset+length) of this file (owned) */
    int64_t offset, length;
    int n_headers;
    char *hkey[HTTP_MAX_RESP_HEADERS], *hval[HTTP_MAX_RESP_HEADERS]; /* owned */
    /* Streamed body, when stream != NULL (status and headers as usual): */
    http_stream_fn stream;
    void *stream_ctx;                                 /* owned until stream_free */
    void (*stream_attach)(void *ctx, http_stream *h); /* once, before the first read; may be NULL */
    void (*stream_free)(void *ctx); /* once, when the connection is done (or never started) */
    /* Set by http_defer: the answer comes later, through this handle. */
    http_deferred *deferred;
} http_response;

/* http_defer lets a handler answer later, from another thread (the group
 * commit of POST /jobs): it marks resp as deferred and returns a handle;
 * the handler then returns without filling resp. The connection waits
 * without holding an HTTP thread (suspended) until http_deferred_send; req
 * and what it points to stay valid until then. Returns NULL when this
 * server mode cannot suspend a connection (thread per connection): answer
 * now, as usual. Headers added to resp after the handler returned (the
 * router's) are sent with the later answer too. Every handle must be
 * sent, and before http_stop. */
http_deferred *http_defer(http_request *req, http_response *resp);

/* http_defer_cancel takes back an http_defer before the handler returned:
 * resp is answered now, as usual. */
void http_defer_cancel(http_response *resp);

/* The response to fill before http_deferred_send (initialised as by
 * http_response_init). */
http_response *http_deferred_response(http_deferred *d);

/* http_deferred_send sends the filled response and gives d back to the
 * http layer (do not use it after). Thread-safe. */
void http_deferred_send(http_deferred *d);

/* http_stream_resume wakes a stream whose function returned 0. Thread-safe;
 * h must still be attached (between stream_attach and stream_free). */
void http_stream_resume(http_stream *h);

/* The query value of key (first occurrence), or NULL. */
const char *http_query(const http_request *r, const char *key);

/* The header value, name compared case-insensitively, or NULL. */
const char *http_header(const http_request *r, const char *name);

/* http_response_init sets status 500, no body, fd -1. */
void http_response_init(http_response *resp);

/* http_response_free releases body, json, headers and fd, and a stream not
 * handed to a connection (stream_free is called). */
void http_response_free(http_response *resp);

/* Adds a header (both strings copied); past HTTP_MAX_RESP_HEADERS it is dropped. */
void http_response_header(http_response *resp, const char *name, const char *value);

/* Sets a raw body (copied) with its content type (a static string). */
void http_response_bytes(http_response *resp, int status, const char *content_type,
                         const void *data, size_t len);

/* dispatch fills resp for req; called once per request. */
typedef void (*http_dispatch_fn)(void *ctx, http_request *req, http_response *resp);

typedef enum {
    HTTP_MODE_EPOLL = 0,     /* one internal thread, epoll */
    HTTP_MODE_POOL,          /* epoll, a pool of `threads` threads */
    HTTP_MODE_PER_CONNECTION /* one thread per connection (poll) */
} http_mode;

typedef struct http_options {
    const char *address;    /* IPv4 address to bind, e.g. "127.0.0.1" or "0.0.0.0" */
    int port;               /* 0 = any free port (read it back with http_port) */
    size_t body_limit;      /* bodies larger than this get 413 */
    const char *spool_path; /* POSTs to this exact path are written to a file in spool_dir
                             * (NULL: none), up to spool_limit bytes */
    const char *spool_dir;
    size_t spool_limit;
    int spool_needs_auth; /* spool only requests with an Authorization header (the others
                           * are answered 401 by the router: their body is dropped) */
    http_mode mode;
    int threads;              /* HTTP_MODE_POOL only */
    int conn_limit;           /* connections at once before the oldest idle ones are closed
                               * (a little above it new ones are refused); 0 = default 512 */
    int per_ip_limit;         /* connections at once from one address; 0 = default 64 */
    int idle_timeout_s;       /* a connection silent this long is closed; 0 = default 30 */
    int header_timeout_s;     /* a request's headers must arrive within this (from the
                               * connection or the previous request); 0 = default 10 */
    const char *tls_cert_pem; /* PEM certificate chain (NUL-terminated text): serve HTTPS;
                               * NULL = plain HTTP */
    const char *tls_key_pem;  /* its PEM private key; required with tls_cert_pem */
} http_options;

typedef struct http_server http_server;

/* http_start starts serving (HTTPS through libmicrohttpd's GnuTLS when
 * o->tls_cert_pem is set). Returns 0, or ERR_IO (bind failed, eb says why)
 * or ERR_INVALID (bad address, TLS asked of a libmicrohttpd without it, or a
 * certificate/key GnuTLS refuses). */
int http_start(http_server **out, const http_options *o, http_dispatch_fn fn, void *ctx,
               errbuf *eb);

/* The port actually bound. */
int http_port(const http_server *h);

/* Connections open now (accepted, not yet closed). Thread-safe. */
int http_connections(const http_server *h);

/* Idle connections closed to make room: past conn_limit connections, the
 * ones that have waited longest for a request's headers are closed. */
unsigned long http_idle_evictions(const http_server *h);

/* Connections closed because their request headers took too long. */
unsigned long http_header_timeouts(const http_server *h);

/* http_stop ends every open stream, stops the daemon (waits for its
 * threads) and frees h; NULL ok. */
void http_stop(http_server *h);

/* Parses a mode name ("epoll", "pool", "per-connection"); -1 if unknown. */
int http_mode_parse(const char *s);

#endif
