/* http.c - libmicrohttpd adapter (see http.h). The only MHD file.
 *
 * Per request state (struct upload) buffers the body up to the limit.
 * A Content-Length over the limit is answered 413 at once, before the body
 * is read; a chunked body is counted and dropped once over the limit and
 * answered 413 at its end. A request to the spool path (POST, e.g. model
 * uploads) is written to a temporary file in the spool folder instead, up
 * to its own limit; the file is removed after the response unless the
 * handler moved it.
 *
 * Limits against slow and half-open clients: MHD caps connections in total
 * and per address and closes a connection idle for idle_timeout_s; on top,
 * a reaper thread shuts down a connection whose request headers have not
 * all arrived header_timeout_s after it opened (or after its previous
 * request ended), so a client trickling a byte at a time cannot hold it.
 *
 * Streams: a response with a stream function is served from an MHD content
 * reader. When the function has nothing to send, the connection is
 * suspended (pool and epoll modes) until http_stream_resume, or the reader
 * waits on a condition (thread-per-connection mode, where MHD cannot
 * suspend). http_stop resumes and ends every stream first: MHD must not be
 * stopped with a suspended connection.
 */
#include "http.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One accepted connection, for the header deadline (under http_server.mu). */
typedef struct conn {
    int fd;
    int in_headers;   /* waiting for (the rest of) a request's headers */
    int64_t phase_ms; /* when that wait began */
    int reaped;       /* shut down by the reaper */
    int ctl_escape;   /* the request escaped a NUL, or a control character in its path */
    struct conn *prev, *next;
} conn;

struct http_stream {
    http_server *h;
    struct MHD_Connection *c;
    http_stream_fn fn;
    void *ctx;
    void (*free_fn)(void *ctx);
    int suspended; /* under h->mu */
    int pending;   /* a resume came while the reader was running (under h->mu) */
    int ended;     /* the server is stopping, or the client went away: end the body */
    int fd;        /* the connection's socket, to notice the client closing it */
    struct http_stream *prev, *next;
};

struct http_server {
    struct MHD_Daemon *d;
    http_dispatch_fn fn;
    void *ctx;
    size_t body_limit;
    char spool_path[128], spool_dir[512];
    size_t spool_limit;
    int spool_needs_auth;
    int port;
    http_mode mode;
    unsigned prefix; /* random per process: request ids differ across restarts */
    atomic_ulong counter;
    pthread_mutex_t mu; /* conns, streams */
    pthread_cond_t cv;  /* streams in thread-per-connection mode, the reaper */
    conn *conns;
    http_stream *streams;
    atomic_int n_conns;
    atomic_ulong header_timeouts;
    atomic_ulong idle_evictions; /* idle connections closed to make room (evict_idle_locked) */
    int soft_limit;              /* connections before the oldest idle ones are closed */
    int n_reaped;                /* listed connections already shut down (under mu) */
    int header_timeout_ms;
    pthread_t reaper;
    int reaper_started, stopping;
};

typedef struct upload {
    char *buf;
    size_t len, cap;
    int too_large;
    const char *malformed;   /* see http_request.malformed */
    int fd;                  /* spooled body: the open temporary file, or -1 */
    char path[600];          /* its path ("" when not spooled) */
    http_deferred *deferred; /* the handler answers later (http_defer) */
} upload;

struct http_deferred {
    http_server *h;
    struct MHD_Connection *c;
    http_request *req; /* kept until the response is sent */
    http_response resp;
    http_response first; /* what the handler's resp carried: its headers go out too */
    int ready;           /* under h->mu: resp is filled */
    int suspended;       /* under h->mu */
};

http_deferred *http_defer(http_request *req, http_response *resp)
{
    if (req->defer_server == NULL)
        return NULL;
    http_deferred *d = xcalloc(1, sizeof *d);
    d->h = req->defer_server;
    d->c = req->defer_conn;
    d->req = req;
    http_response_init(&d->resp);
    resp->deferred = d;
    return d;
}

void http_defer_cancel(http_response *resp)
{
    http_deferred *d = resp->deferred;
    if (d == NULL)
        return;
    resp->deferred = NULL;
    http_response_free(&d->resp);
    free(d);
}

http_response *http_deferred_response(http_deferred *d)
{
    return &d->resp;
}

void http_deferred_send(http_deferred *d)
{
    http_server *h = d->h;
    pthread_mutex_lock(&h->mu);
    d->ready = 1;
    if (d->suspended) {
        d->suspended = 0;
        MHD_resume_connection(d->c);
    }
    pthread_mutex_unlock(&h->mu);
}

static enum MHD_Result send_response(http_server *h, struct MHD_Connection *c, http_response *resp,
                                     const char *request_id);

/* The deferred answer with the first response's headers. */
static enum MHD_Result deferred_answer(http_server *h, struct MHD_Connection *c, http_deferred *d)
{
    for (int i = 0; i < d->first.n_headers; i++)
        http_response_header(&d->resp, d->first.hkey[i], d->first.hval[i]);
    return send_response(h, c, &d->resp, d->req->request_id);
}

static void deferred_free(http_deferred *d)
{
    http_response_free(&d->first);
    http_response_free(&d->resp);
    free(d->req);
    free(d);
}

const char *http_query(const http_request *r, const char *key)
{
    for (int i = 0; i < r->n_query; i++)
        if (strcmp(r->query[i].key, key) == 0)
            return r->query[i].value;
    return NULL;
}

const char *http_header(const http_request *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

void http_response_init(http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 500;
    resp->fd = -1;
}

void http_response_free(http_response *resp)
{
    if (resp->stream != NULL && resp->stream_free != NULL)
        resp->stream_free(resp->stream_ctx);
    json_decref(resp->json);
    free(resp->body);
    if (resp->fd >= 0)
        close(resp->fd);
    for (int i = 0; i < resp->n_headers; i++) {
        free(resp->hkey[i]);
        free(resp->hval[i]);
    }
    http_response_init(resp);
}

void http_response_header(http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= HTTP_MAX_RESP_HEADERS) {
        log_warn("http: response header %s dropped (too many)", name);
        return;
    }
    resp->hkey[resp->n_headers] = xstrdup(name);
    resp->hval[resp->n_headers] = xstrdup(value);
    resp->n_headers++;
}

void http_response_bytes(http_response *resp, int status, const char *content_type,
                         const void *data, size_t len)
{
    free(resp->body);
    json_decref(resp->json);
    resp->json = NULL;
    resp->status = status;
    resp->content_type = content_type;
    resp->body = xmalloc(len + 1);
    memcpy(resp->body, data, len);
    resp->body[len] = '\0';
    resp->len = len;
}

int http_mode_parse(const char *s)
{
    if (strcmp(s, "epoll") == 0)
        return HTTP_MODE_EPOLL;
    if (strcmp(s, "pool") == 0)
        return HTTP_MODE_POOL;
    if (strcmp(s, "per-connection") == 0)
        return HTTP_MODE_PER_CONNECTION;
    return -1;
}

typedef struct kv_sink {
    http_kv *arr;
    int *n;
} kv_sink;

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    kv_sink *k = cls;
    if (*k->n < HTTP_MAX_KV) {
        k->arr[*k->n].key = key;
        k->arr[*k->n].value = value != NULL ? value : "";
        (*k->n)++;
    }
    return MHD_YES;
}

static void collect(struct MHD_Connection *c, enum MHD_ValueKind kind, http_kv *arr, int *n)
{
    kv_sink k = {arr, n};
    *n = 0;
    MHD_get_connection_values(c, kind, collect_kv, &k);
}

/* ---- streams ------------------------------------------------------------------ */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_stream *s = cls;
    http_server *h = s->h;
    if (s->ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    long n = s->fn(s->ctx, buf, max);
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n > 0)
        return (ssize_t)n;
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        s->ended = 1;
    } else if (s->pending) {
        s->pending = 0; /* woken while producing: look again at once */
    } else if (h->mode == HTTP_MODE_PER_CONNECTION) {
        /* This thread is the connection's own: wait here (bounded, so a
         * closed client is noticed at the next keepalive). */
        struct timespec ts;
        clock_deadline(&ts, CLOCK_REALTIME, 1000);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        s->pending = 0;
    } else {
        s->suspended = 1;
        MHD_suspend_connection(s->c);
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void stream_release(void *cls)
{
    http_stream *s = cls;
    http_server *h = s->h;
    pthread_mutex_lock(&h->mu);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&h->mu);
    if (s->free_fn != NULL)
        s->free_fn(s->ctx);
    free(s);
}

/* Under h->mu. */
static void stream_wake_locked(http_stream *s)
{
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->c);
    } else {
        s->pending = 1;
        if (s->h->mode == HTTP_MODE_PER_CONNECTION)
            pthread_cond_broadcast(&s->h->cv);
    }
}

void http_stream_resume(http_stream *s)
{
    pthread_mutex_lock(&s->h->mu);
    stream_wake_locked(s);
    pthread_mutex_unlock(&s->h->mu);
}

static struct MHD_Response *stream_response(http_server *h, struct MHD_Connection *c,
                                            http_response *resp)
{
    http_stream *s = xcalloc(1, sizeof *s);
    s->h = h;
    s->c = c;
    s->fn = resp->stream;
    s->ctx = resp->stream_ctx;
    s->free_fn = resp->stream_free;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci != NULL ? ci->connect_fd : -1;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_release);
    if (r == NULL) {
        free(s);
        return NULL; /* resp still owns the stream: http_response_free frees it */
    }
    resp->stream = NULL; /* the MHD response owns it now */
    pthread_mutex_lock(&h->mu);
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    if (h->stopping)
        s->ended = 1;
    pthread_mutex_unlock(&h->mu);
    if (resp->stream_attach != NULL)
        resp->stream_attach(s->ctx, s);
    return r;
}

static enum MHD_Result send_response(http_server *h, struct MHD_Connection *c, http_response *resp,
                                     const char *request_id)
{
    struct MHD_Response *r;
    const char *ctype = resp->content_type;
    if (resp->stream != NULL) {
        r = stream_response(h, c, resp);
    } else if (resp->fd >= 0) {
        r = MHD_create_response_from_fd_at_offset64((uint64_t)resp->length, resp->fd,
                                                    (uint64_t)resp->offset);
        if (r != NULL)
            resp->fd = -1; /* MHD closes it */
    } else if (resp->json != NULL) {
        char *text = json_dumps(resp->json, JSON_COMPACT | JSON_REAL_PRECISION(16));
        size_t n = text != NULL ? strlen(text) : 0;
        r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_COPY);
        free(text);
        if (ctype == NULL)
            ctype = "application/json";
    } else {
        r = MHD_create_response_from_buffer(resp->len, resp->body != NULL ? resp->body : "",
                                            MHD_RESPMEM_MUST_COPY);
    }
    if (r == NULL)
        return MHD_NO;
    if (ctype != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", request_id);
    for (int i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->hkey[i], resp->hval[i]);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

static void make_request_id(http_server *h, char id[24])
{
    unsigned long n = atomic_fetch_add(&h->counter, 1) + 1;
    snprintf(id, 24, "r%08x%010lx", h->prefix, n & 0xffffffffffUL);
}

/* After a handler deferred its answer: wait for it, suspended, unless it
 * came already. The request stays with the handle (freed once sent). */
static enum MHD_Result defer_wait(http_server *h, struct MHD_Connection *c, upload *up,
                                  http_response *resp)
{
    http_deferred *d = resp->deferred;
    resp->deferred = NULL;
    d->first = *resp; /* its headers; the rest is unused */
    http_response_init(resp);
    up->deferred = d;
    pthread_mutex_lock(&h->mu);
    int ready = d->ready;
    if (!ready) {
        d->suspended = 1;
        MHD_suspend_connection(c);
    }
    pthread_mutex_unlock(&h->mu);
    if (!ready)
        return MHD_YES; /* MHD calls on_request again after the resume */
    up->deferred = NULL;
    enum MHD_Result ret = deferred_answer(h, c, d);
    deferred_free(d);
    return ret;
}

static enum MHD_Result dispatch(http_server *h, struct MHD_Connection *c, const char *url,
                                const char *method, upload *up)
{
    http_request *req = xcalloc(1, sizeof *req);
    http_response resp;
    http_response_init(&resp);
    double t0 = clock_mono_s();
    req->method = method;
    req->path = url;
    collect(c, MHD_GET_ARGUMENT_KIND, req->query, &req->n_query);
    collect(c, MHD_HEADER_KIND, req->headers, &req->n_headers);
    if (up != NULL) {
        req->body = up->buf;
        req->len = up->len;
        req->too_large = up->too_large;
        req->malformed = up->malformed;
        if (up->path[0] != '\0' && !up->too_large) {
            if (up->fd >= 0)
                close(up->fd);
            up->fd = -1;
            req->body_file = up->path;
        }
    }
    make_request_id(h, req->request_id);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ai != NULL && ai->client_addr != NULL && ai->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->client_addr)->sin_addr, req->client,
                  sizeof req->client);
    if (h->mode != HTTP_MODE_PER_CONNECTION) {
        req->defer_server = h;
        req->defer_conn = c;
    }
    h->fn(h->ctx, req, &resp);
    if (resp.deferred != NULL)
        return defer_wait(h, c, up, &resp);
    enum MHD_Result ret = send_response(h, c, &resp, req->request_id);
    double t1 = clock_mono_s();
    if (log_enabled(LOG_DEBUG))
        log_debug("http: %s %s -> %d (%.2f ms) %s", method, url, resp.status, (t1 - t0) * 1e3,
                  req->request_id);
    http_response_free(&resp);
    free(req);
    return ret;
}

/* The connection's own state (NULL before on_connection made it). */
static conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* MHD's unescape callback (the path, then each query key and value): decodes
 * as MHD does, and notes a NUL escaped anywhere (it would cut a path short:
 * "model.safetensors%00.txt") or any control character escaped in the path
 * (which starts with '/'; a query value may hold a newline). */
static size_t unescape_url(void *cls, struct MHD_Connection *c, char *uri)
{
    (void)cls;
    int path = uri[0] == '/';
    for (const char *p = uri; (p = strchr(p, '%')) != NULL; p++)
        if ((p[1] == '0' && p[2] == '0') ||
            (path && (p[1] == '0' || p[1] == '1') && isxdigit((unsigned char)p[2]))) {
            conn *k = conn_of(c);
            if (k != NULL)
                k->ctl_escape = 1;
        }
    return MHD_http_unescape(uri);
}

typedef struct header_scan {
    const char *content_length; /* the first value seen */
    int conflicting_length;
    int transfer_encoding;
    int host;
} header_scan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    header_scan *s = cls;
    if (value == NULL)
        value = "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (s->content_length == NULL)
            s->content_length = value;
        else if (strcmp(s->content_length, value) != 0)
            s->conflicting_length = 1;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        s->transfer_encoding = 1;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        s->host = 1;
    }
    return MHD_YES;
}

/* Why the request's head breaks HTTP/1.1's framing rules (RFC 9112), or NULL:
 * a proxy in front and kiln must never read one request two ways. */
static const char *malformed_head(struct MHD_Connection *c, const char *version)
{
    conn *k = conn_of(c);
    if (k != NULL && k->ctl_escape) {
        k->ctl_escape = 0;
        return "the URL escapes a NUL (%00), or a control character in its path";
    }
    header_scan s = {NULL, 0, 0, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &s);
    if (s.conflicting_length)
        return "conflicting Content-Length headers";
    if (s.content_length != NULL && s.transfer_encoding)
        return "both Content-Length and Transfer-Encoding";
    if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && !s.host)
        return "an HTTP/1.1 request without a Host header";
    return NULL;
}

/* Starts spooling the body of this request to a temporary file: 0, or -1
 * (the request is then answered 413/500 by the handler seeing no file). */
static void spool_open(http_server *h, upload *up)
{
    snprintf(up->path, sizeof up->path, "%s/upload-XXXXXX", h->spool_dir);
    up->fd = mkstemp(up->path);
    if (up->fd < 0) {
        log_warn("http: cannot create a spool file in %s: %s", h->spool_dir, strerror(errno));
        up->path[0] = '\0';
    }
}

/* Appends n bytes of a spooled body; past the limit the file goes. */
static void spool_write(http_server *h, upload *up, const char *data, size_t n)
{
    if (up->too_large || up->fd < 0)
        return;
    if (up->len + n > h->spool_limit) {
        up->too_large = 1;
    } else {
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(up->fd, data + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                log_warn("http: spool file %s: %s", up->path, strerror(errno));
                up->too_large = 1;
                break;
            }
            done += (size_t)w;
        }
        up->len += n;
        if (!up->too_large)
            return;
    }
    close(up->fd);
    up->fd = -1;
    unlink(up->path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *h = cls;
    upload *up = *con_cls;
    if (up != NULL && up->deferred != NULL) {
        /* resumed: the deferred answer is ready */
        http_deferred *d = up->deferred;
        up->deferred = NULL;
        enum MHD_Result ret = deferred_answer(h, c, d);
        deferred_free(d);
        return ret;
    }
    if (up == NULL) {
        /* The headers are all in: the header deadline no longer applies. */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci != NULL && ci->socket_context != NULL) {
            pthread_mutex_lock(&h->mu);
            ((conn *)ci->socket_context)->in_headers = 0;
            pthread_mutex_unlock(&h->mu);
        }
        up = xcalloc(1, sizeof *up);
        up->fd = -1;
        *con_cls = up;
        up->malformed = malformed_head(c, version);
        if (up->malformed != NULL)
            return dispatch(h, c, url, method, up); /* answered before any body is read */
        int spool = h->spool_path[0] != '\0' && strcmp(method, "POST") == 0 &&
                    strcmp(url, h->spool_path) == 0;
        size_t limit = spool ? h->spool_limit : h->body_limit;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > limit) {
            /* Answer before reading the body; MHD closes the connection after. */
            up->too_large = 1;
            return dispatch(h, c, url, method, up);
        }
        if (spool && h->spool_needs_auth &&
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) ==
                NULL) {
            /* nothing is written for a request the router answers 401 */
            up->too_large = 1;
            up->path[0] = '\0';
        } else if (spool) {
            spool_open(h, up);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->path[0] != '\0') {
            spool_write(h, up, upload_data, n);
            return MHD_YES;
        }
        if (up->too_large)
            return MHD_YES;
        if (up->len + n > h->body_limit) {
            up->too_large = 1;
            free(up->buf);
            up->buf = NULL;
            up->len = up->cap = 0;
            return MHD_YES;
        }
        if (up->len + n + 1 > up->cap) {
            up->cap = (up->len + n + 1) * 2;
            if (up->cap > h->body_limit + 1)
                up->cap = h->body_limit + 1;
            up->buf = xrealloc(up->buf, up->cap);
        }
        memcpy(up->buf + up->len, upload_data, n);
        up->len += n;
        up->buf[up->len] = '\0';
        return MHD_YES;
    }
    return dispatch(h, c, url, method, up);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    http_server *h = cls;
    /* A kept-alive connection now waits for its next request's headers. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci != NULL && ci->socket_context != NULL) {
        pthread_mutex_lock(&h->mu);
        conn *k = ci->socket_context;
        k->in_headers = 1;
        k->phase_ms = clock_mono_ms();
        pthread_mutex_unlock(&h->mu);
    }
    upload *up = *con_cls;
    if (up != NULL) {
        if (up->deferred != NULL && up->deferred->ready)
            deferred_free(up->deferred); /* sent, but the client left before it was written */
        if (up->fd >= 0)
            close(up->fd);
        if (up->path[0] != '\0')
            unlink(up->path); /* ENOENT when the handler kept it */
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

/* Shuts k down (MHD then closes it in its own thread). Under h->mu. */
static void reap_locked(http_server *h, conn *k)
{
    k->reaped = 1;
    h->n_reaped++;
    shutdown(k->fd, SHUT_RDWR);
}

/* Over the soft limit, closes the connections that have waited longest for
 * a request's headers (idle keep-alives, sockets that never spoke), oldest
 * first, never `fresh`. So a flood of idle sockets cannot lock new clients
 * out: a real client sends its request at once and is served long before
 * it would be the oldest idle one. Connections inside a request (a body
 * upload, an event stream) are never closed. Under h->mu. */
static void evict_idle_locked(http_server *h, const conn *fresh)
{
    while (atomic_load(&h->n_conns) - h->n_reaped > h->soft_limit) {
        conn *oldest = NULL;
        for (conn *k = h->conns; k != NULL; k = k->next)
            if (k != fresh && k->in_headers && !k->reaped && k->fd >= 0 &&
                (oldest == NULL || k->phase_ms < oldest->phase_ms))
                oldest = k;
        if (oldest == NULL)
            return; /* every connection is busy: MHD's own limit decides */
        reap_locked(h, oldest);
        atomic_fetch_add(&h->idle_evictions, 1);
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    http_server *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *k = xcalloc(1, sizeof *k);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci != NULL ? ci->connect_fd : -1;
        k->in_headers = 1;
        k->phase_ms = clock_mono_ms();
        pthread_mutex_lock(&h->mu);
        k->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = k;
        h->conns = k;
        atomic_fetch_add(&h->n_conns, 1);
        evict_idle_locked(h, k);
        pthread_mutex_unlock(&h->mu);
        *socket_context = k;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        conn *k = *socket_context;
        pthread_mutex_lock(&h->mu);
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            h->conns = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
        if (k->reaped)
            h->n_reaped--;
        atomic_fetch_sub(&h->n_conns, 1);
        pthread_mutex_unlock(&h->mu);
        free(k);
        *socket_context = NULL;
    }
}

/* Whether the peer closed the socket: readable, and a peek reads nothing. */
static int client_gone(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR))
        return 1;
    char ch;
    return (p.revents & POLLIN) && recv(fd, &ch, 1, MSG_PEEK) == 0;
}

/* The reaper: shuts down connections past the header deadline. MHD then
 * sees the socket end and closes the connection in its own thread. The fd
 * is still MHD's while the connection is listed (it is unlisted before MHD
 * closes it), so it cannot be another file. */
static void *reaper_main(void *arg)
{
    http_server *h = arg;
    unsigned long reported = 0; /* idle evictions logged so far */
    int64_t reported_ms = -10000;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_deadline(&ts, CLOCK_REALTIME, 250);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        int64_t now = clock_mono_ms();
        /* A stream waits suspended, where MHD does not watch its socket: a
         * client that closed it is noticed here, and its stream ended at
         * once (MHD's completion callback then frees its slot). */
        for (http_stream *s = h->streams; s != NULL; s = s->next)
            if (!s->ended && client_gone(s->fd)) {
                s->ended = 1;
                stream_wake_locked(s);
            }
        for (conn *k = h->conns; k != NULL; k = k->next)
            if (k->in_headers && !k->reaped && k->fd >= 0 &&
                now - k->phase_ms > h->header_timeout_ms) {
                reap_locked(h, k);
                atomic_fetch_add(&h->header_timeouts, 1);
            }
        unsigned long ev = atomic_load(&h->idle_evictions);
        if (ev != reported && now - reported_ms >= 10000) {
            log_warn("http: %lu idle connection(s) closed to make room for new ones (connection "
                     "limit %d reached: a client holding many idle connections?)",
                     ev - reported, h->soft_limit);
            reported = ev;
            reported_ms = now;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* A client that went away (an event stream closed, a download stopped)
     * or was refused by a limit is routine, not a warning: under a flood of
     * them the log would become the attack. */
    if (strstr(buf, "no longer available") != NULL || strstr(buf, "onnection reset") != NULL ||
        strstr(buf, "forcibly closed") != NULL || strstr(buf, "connection closure") != NULL ||
        strstr(buf, "connection limit") != NULL || strstr(buf, "limit on the number") != NULL)
        log_debug("http: %s", buf);
    else
        log_warn("http: %s", buf);
}

/* A server not started yet: its settings from o. */
static http_server *server_new(const http_options *o, http_dispatch_fn fn, void *ctx)
{
    http_server *h = xcalloc(1, sizeof *h);
    h->fn = fn;
    h->ctx = ctx;
    h->body_limit = o->body_limit;
    if (o->spool_path != NULL && o->spool_dir != NULL) {
        snprintf(h->spool_path, sizeof h->spool_path, "%s", o->spool_path);
        snprintf(h->spool_dir, sizeof h->spool_dir, "%s", o->spool_dir);
        h->spool_limit = o->spool_limit;
        h->spool_needs_auth = o->spool_needs_auth;
    }
    h->mode = o->mode;
    h->prefix = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    h->header_timeout_ms = 1000 * (o->header_timeout_s > 0 ? o->header_timeout_s : 10);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    return h;
}

static void server_free_unstarted(http_server *h)
{
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

/* libmicrohttpd's flags for the threading mode; *pool: its thread pool's size (0 = none). */
static unsigned mode_flags(const http_options *o, unsigned *pool)
{
    unsigned flags = MHD_USE_ERROR_LOG;
    *pool = 0;
    switch (o->mode) {
    case HTTP_MODE_PER_CONNECTION:
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
        break;
    case HTTP_MODE_POOL:
        flags |= MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
        *pool = o->threads > 1 ? (unsigned)o->threads : 2;
        break;
    default:
        flags |= MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
        break;
    }
    return flags;
}

int http_start(http_server **out, const http_options *o, http_dispatch_fn fn, void *ctx, errbuf *eb)
{
    *out = NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->address, &sa.sin_addr) != 1)
        return err_set(eb, ERR_INVALID, "http: '%s' is not an IPv4 address", o->address);
    http_server *h = server_new(o, fn, ctx);
    unsigned pool = 0, flags = mode_flags(o, &pool);
    unsigned conn_limit = o->conn_limit > 0 ? (unsigned)o->conn_limit : 512;
    /* conn_limit is where the oldest idle connections start being closed;
     * MHD's own refusal sits above it, for the moments before it has
     * closed them. */
    h->soft_limit = (int)conn_limit;
    unsigned hard_limit = conn_limit + (conn_limit / 8 > 16 ? conn_limit / 8 : 16);
    unsigned per_ip = o->per_ip_limit > 0 ? (unsigned)o->per_ip_limit : 64;
    unsigned idle = o->idle_timeout_s > 0 ? (unsigned)o->idle_timeout_s : 30;
    int tls = o->tls_cert_pem != NULL;
    if (tls && (o->tls_key_pem == NULL || MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)) {
        server_free_unstarted(h);
        return err_set(eb, ERR_INVALID,
                       o->tls_key_pem == NULL ? "http: a TLS certificate needs its key"
                                              : "http: this libmicrohttpd was built without TLS");
    }
    if (tls)
        flags |= MHD_USE_TLS;
    /* Options that depend on the configuration go through MHD_OPTION_ARRAY. */
    struct MHD_OptionItem extra[5];
    int n = 0;
    if (tls) {
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                             (void *)(uintptr_t)o->tls_cert_pem};
        extra[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)o->tls_key_pem};
    }
    if (pool > 0)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, pool, NULL};
    extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url,
        h, MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_CONNECTION_LIMIT, hard_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
    if (h->d == NULL) {
        server_free_unstarted(h);
        return err_set(eb, ERR_IO,
                       tls ? "http: cannot serve HTTPS on %s:%d (port in use or not permitted, or "
                             "GnuTLS refused the certificate or key; the log line above says which)"
                           : "http: cannot listen on %s:%d (in use, or not permitted)",
                       o->address, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : o->port;
    h->reaper_started = pthread_create(&h->reaper, NULL, reaper_main, h) == 0;
    if (!h->reaper_started)
        log_warn("http: no header-deadline thread: slow clients are bounded by the idle timeout "
                 "and the connection limits only");
    *out = h;
    return 0;
}

int http_port(const http_server *h)
{
    return h->port;
}

int http_connections(const http_server *h)
{
    return h != NULL ? atomic_load(&h->n_conns) : 0;
}

unsigned long http_idle_evictions(const http_server *h)
{
    return h != NULL ? atomic_load(&h->idle_evictions) : 0;
}

unsigned long http_header_timeouts(const http_server *h)
{
    return h != NULL ? atomic_load(&h->header_timeouts) : 0;
}

void http_stop(http_server *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    /* MHD must not stop with a suspended connection: wake every stream; its
     * reader sees `stopping` and ends the body. */
    for (http_stream *s = h->streams; s != NULL; s = s->next) {
        s->ended = 1;
        stream_wake_locked(s);
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->reaper_started)
        pthread_join(h->reaper, NULL);
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
