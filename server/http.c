/* http.c - libmicrohttpd adapter (see http.h). The only MHD file.
 *
 * Per connection state (struct upload) buffers the body up to the limit.
 * A Content-Length over the limit is answered 413 at once, before the body
 * is read; a chunked body is counted and dropped once over the limit and
 * answered 413 at its end.
 */
#include "http.h"

#include "common/log.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *d;
    http_dispatch_fn fn;
    void *ctx;
    size_t body_limit;
    int port;
    unsigned prefix; /* random per process: request ids differ across restarts */
    atomic_ulong counter;
};

typedef struct upload {
    char *buf;
    size_t len, cap;
    int too_large;
} upload;

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

static enum MHD_Result send_response(struct MHD_Connection *c, http_response *resp,
                                     const char *request_id)
{
    struct MHD_Response *r;
    const char *ctype = resp->content_type;
    if (resp->fd >= 0) {
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

static enum MHD_Result dispatch(http_server *h, struct MHD_Connection *c, const char *url,
                                const char *method, upload *up)
{
    http_request *req = xcalloc(1, sizeof *req);
    http_response resp;
    http_response_init(&resp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    req->method = method;
    req->path = url;
    collect(c, MHD_GET_ARGUMENT_KIND, req->query, &req->n_query);
    collect(c, MHD_HEADER_KIND, req->headers, &req->n_headers);
    if (up != NULL) {
        req->body = up->buf;
        req->len = up->len;
        req->too_large = up->too_large;
    }
    make_request_id(h, req->request_id);
    h->fn(h->ctx, req, &resp);
    enum MHD_Result ret = send_response(c, &resp, req->request_id);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (log_enabled(LOG_DEBUG))
        log_debug("http: %s %s -> %d (%.2f ms) %s", method, url, resp.status,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6,
                  req->request_id);
    http_response_free(&resp);
    free(req);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *h = cls;
    upload *up = *con_cls;
    if (up == NULL) {
        up = xcalloc(1, sizeof *up);
        *con_cls = up;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > h->body_limit) {
            /* Answer before reading the body; MHD closes the connection after. */
            up->too_large = 1;
            return dispatch(h, c, url, method, up);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
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
    (void)cls;
    (void)c;
    (void)toe;
    upload *up = *con_cls;
    if (up != NULL) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_warn("http: %s", buf);
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
    http_server *h = xcalloc(1, sizeof *h);
    h->fn = fn;
    h->ctx = ctx;
    h->body_limit = o->body_limit;
    h->prefix = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    unsigned flags = MHD_USE_ERROR_LOG;
    unsigned pool = 0;
    switch (o->mode) {
    case HTTP_MODE_PER_CONNECTION:
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
        break;
    case HTTP_MODE_POOL:
        flags |= MHD_USE_EPOLL_INTERNAL_THREAD;
        pool = o->threads > 1 ? (unsigned)o->threads : 2;
        break;
    default:
        flags |= MHD_USE_EPOLL_INTERNAL_THREAD;
        break;
    }
    h->d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_END);
    if (h->d == NULL) {
        free(h);
        return err_set(eb, ERR_IO, "http: cannot listen on %s:%d (in use, or not permitted)",
                       o->address, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : o->port;
    *out = h;
    return 0;
}

int http_port(const http_server *h)
{
    return h->port;
}

void http_stop(http_server *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
