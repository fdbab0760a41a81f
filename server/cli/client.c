/* client.c - the kiln CLI's HTTP client (see client.h). */
#include "server/cli/client.h"

#include "common/version.h"
#include "common/xalloc.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *base_url = "http://localhost:8080";
static const char *bearer;
static const char *cacert;

void client_init(const char *base, const char *token)
{
    base_url = base;
    bearer = token;
}

void client_set_cacert(const char *path)
{
    cacert = path != NULL && path[0] != '\0' ? path : NULL;
}

const char *client_base(void)
{
    return base_url;
}

typedef struct body {
    char *p;
    size_t n;
    FILE *file; /* download: write here instead */
} body;

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->file != NULL)
        return fwrite(data, 1, k, b->file);
    b->p = xrealloc(b->p, b->n + k + 1);
    memcpy(b->p + b->n, data, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static void die_curl(CURLcode rc, const char *url)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        fprintf(stderr,
                "kiln: cannot connect to %s (connection refused): is kiln-server running "
                "there? Set --url or KILN_URL.\n",
                base_url);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        fprintf(stderr, "kiln: '%s' is not a server URL (expected e.g. http://localhost:8080)\n",
                base_url);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        fprintf(stderr, "kiln: cannot resolve the host of %s: check --url or KILN_URL\n", base_url);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        fprintf(stderr,
                "kiln: the certificate of %s does not verify (%s): give the CA that signed it "
                "with --cacert FILE or KILN_CACERT\n",
                base_url, cacert != NULL ? cacert : "system CAs");
        break;
    case CURLE_SSL_CONNECT_ERROR:
        fprintf(stderr, "kiln: TLS handshake with %s failed: is it an https:// server?\n",
                base_url);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
        fprintf(stderr,
                "kiln: %s closed the connection without an answer: if the server has "
                "--tls-cert, use an https:// URL\n",
                base_url);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        fprintf(stderr, "kiln: %s did not answer in time\n", url);
        break;
    default:
        fprintf(stderr, "kiln: request to %s failed: %s\n", url, curl_easy_strerror(rc));
    }
    exit(1);
}

static void full_url(const char *path, char *url, size_t len)
{
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/')
        bl--;
    snprintf(url, len, "%.*s%s", (int)bl, base_url, path);
}

/* A curl handle for path with the token and the given extra header. */
static CURL *handle(const char *path, char *url, size_t ulen, struct curl_slist **h,
                    const char *extra)
{
    full_url(path, url, ulen);
    CURL *c = curl_easy_init();
    *h = curl_slist_append(NULL, "Expect:");
    if (extra != NULL)
        *h = curl_slist_append(*h, extra);
    if (bearer != NULL && bearer[0] != '\0') {
        char auth[400];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        *h = curl_slist_append(*h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln-cli/" KILN_VERSION);
    if (cacert != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    return c;
}

/* Runs the request c is set up for and frees c and its header list h; returns the
 * HTTP status, or exits 1 naming url when no answer came. */
static long perform(CURL *c, struct curl_slist *h, const char *url)
{
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        die_curl(rc, url);
    return status;
}

/* Performs a request; returns the status; the body in *out (or to its file). */
static long request(const char *method, const char *path, const char *data, body *out)
{
    char url[2048];
    struct curl_slist *h;
    CURL *c =
        handle(path, url, sizeof url, &h, data != NULL ? "Content-Type: application/json" : NULL);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (data != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, out->file != NULL ? 0L : 30L);
    return perform(c, h, url);
}

/* Prints an API error body (or says it is not one) and exits 1. */
static void die_api(long status, const char *method, const char *path, const json_t *j)
{
    json_t *e = json_object_get(j, "error");
    if (!json_is_object(e)) {
        fprintf(stderr,
                "kiln: %s answered HTTP %ld to %s %s and it is not a kiln error: is --url "
                "right?\n",
                base_url, status, method, path);
        exit(1);
    }
    fprintf(stderr, "kiln: %s: %s\n", json_string_value(json_object_get(e, "code")),
            json_string_value(json_object_get(e, "message")));
    json_t *details = json_object_get(e, "details");
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
    {
        if (json_array_size(details) == 1)
            break; /* the message already says it */
        fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(d, "field")),
                json_string_value(json_object_get(d, "reason")));
    }
    exit(1);
}

json_t *client_call(const char *method, const char *path, const char *data, long *status_out)
{
    body b = {NULL, 0, NULL};
    long status = request(method, path, data, &b);
    json_t *j = b.n > 0 ? json_loadb(b.p, b.n, 0, NULL) : NULL;
    free(b.p);
    if (status_out != NULL)
        *status_out = status;
    if (status >= 400)
        die_api(status, method, path, j);
    if (status != 204 && j == NULL) {
        fprintf(stderr, "kiln: %s did not answer %s %s with JSON (HTTP %ld): is --url right?\n",
                base_url, method, path, status);
        exit(1);
    }
    return j;
}

json_t *client_upload(const char *path, FILE *f, long long size)
{
    char url[4096];
    struct curl_slist *h;
    CURL *c = handle(path, url, sizeof url, &h, "Content-Type: application/octet-stream");
    body b = {NULL, 0, NULL};
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, f);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long status = perform(c, h, url);
    json_t *j = b.n > 0 ? json_loadb(b.p, b.n, 0, NULL) : NULL;
    free(b.p);
    if (status >= 400)
        die_api(status, "POST", path, j);
    return j;
}

char *client_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *out = xstrdup(e != NULL ? e : "");
    curl_free(e);
    curl_easy_cleanup(c);
    return out;
}

char *client_job_path(const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *eid = client_escape(id), *rest = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(rest, (size_t)n + 1, fmt, ap);
    va_end(ap);
    size_t len = strlen("/api/v1/jobs/") + strlen(eid) + (size_t)n + 1;
    char *path = xmalloc(len);
    snprintf(path, len, "/api/v1/jobs/%s%s", eid, rest);
    free(rest);
    free(eid);
    return path;
}

json_t *client_job(const char *method, const char *id, const char *rest)
{
    char *path = client_job_path(id, "%s", rest);
    json_t *j = client_call(method, path, NULL, NULL);
    free(path);
    return j;
}

long client_download(const char *path, FILE *f)
{
    body b = {NULL, 0, f};
    long status = request("GET", path, NULL, &b);
    if (status != 200) {
        body e = {NULL, 0, NULL};
        request("GET", path, NULL, &e); /* again, for the error body */
        json_t *j = e.n > 0 ? json_loadb(e.p, e.n, 0, NULL) : NULL;
        free(e.p);
        if (status >= 400)
            die_api(status, "GET", path, j);
        json_decref(j);
    }
    return status;
}

/* ---- event streams ----------------------------------------------------------------- */

typedef struct sse {
    char *buf; /* bytes not yet split into lines */
    size_t n;
    char id[128], type[32];
    char *data;
    size_t dlen;
    client_event_fn fn;
    void *ctx;
    int stopped;       /* the callback said stop */
    json_t *end;       /* the `end` event's data */
    long status;       /* HTTP status of this connection */
    body err;          /* the body of an error answer */
    int events;        /* events seen on this connection */
    char last_id[128]; /* the cursor to resume from */
} sse;

/* One complete event (at a blank line). Returns 1 to stop reading. */
static int sse_dispatch(sse *s)
{
    int stop = 0;
    if (s->data != NULL) {
        json_t *d = json_loadb(s->data, s->dlen, 0, NULL);
        if (s->id[0] != '\0')
            snprintf(s->last_id, sizeof s->last_id, "%s", s->id);
        if (d != NULL) {
            s->events++;
            if (strcmp(s->type, "end") == 0) {
                s->end = d;
                d = NULL;
                stop = 1;
            } else if (s->fn(s->ctx, s->type, d, s->id) != 0) {
                s->stopped = 1;
                stop = 1;
            }
        }
        json_decref(d);
    }
    free(s->data);
    s->data = NULL;
    s->dlen = 0;
    s->id[0] = '\0';
    snprintf(s->type, sizeof s->type, "message");
    return stop;
}

/* One line of the stream (without its newline). Returns 1 to stop. */
static int sse_line(sse *s, const char *line, size_t len)
{
    if (len == 0)
        return sse_dispatch(s);
    if (line[0] == ':')
        return 0;
    const char *colon = memchr(line, ':', len);
    size_t klen = colon != NULL ? (size_t)(colon - line) : len;
    const char *v = colon != NULL ? colon + 1 : line + len;
    if (v < line + len && *v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    if (klen == 2 && memcmp(line, "id", 2) == 0) {
        snprintf(s->id, sizeof s->id, "%.*s", (int)vlen, v);
    } else if (klen == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(s->type, sizeof s->type, "%.*s", (int)vlen, v);
    } else if (klen == 4 && memcmp(line, "data", 4) == 0) {
        s->data = xrealloc(s->data, s->dlen + vlen + 2);
        if (s->dlen > 0)
            s->data[s->dlen++] = '\n';
        memcpy(s->data + s->dlen, v, vlen);
        s->dlen += vlen;
        s->data[s->dlen] = '\0';
    }
    return 0;
}

static size_t sse_data(char *data, size_t size, size_t n, void *ud)
{
    sse *s = ud;
    size_t k = size * n;
    if (s->status >= 300) /* status: set by sse_header */
        return on_data(data, size, n, &s->err);
    s->buf = xrealloc(s->buf, s->n + k + 1);
    memcpy(s->buf + s->n, data, k);
    s->n += k;
    size_t start = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->buf[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > 0 && s->buf[start + len - 1] == '\r')
            len--;
        if (sse_line(s, s->buf + start, len)) {
            s->n = 0;
            return 0; /* stop: curl aborts the transfer */
        }
        start = i + 1;
    }
    memmove(s->buf, s->buf + start, s->n - start);
    s->n -= start;
    return k;
}

static size_t sse_header(char *data, size_t size, size_t n, void *ud)
{
    sse *s = ud;
    size_t k = size * n;
    if (k > 9 && memcmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', k);
        s->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
    }
    return k;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int client_stream(const char *path, const char *last_id, client_event_fn fn, void *ctx, int idle_s,
                  int retry_ms, int max_retries, json_t **end_state)
{
    sse s;
    memset(&s, 0, sizeof s);
    s.fn = fn;
    s.ctx = ctx;
    snprintf(s.last_id, sizeof s.last_id, "%s", last_id != NULL ? last_id : "");
    snprintf(s.type, sizeof s.type, "message");
    int fails = 0;
    for (;;) {
        char url[2048], hdr[200] = "";
        if (s.last_id[0] != '\0')
            snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", s.last_id);
        struct curl_slist *h;
        CURL *c = handle(path, url, sizeof url, &h, hdr[0] ? hdr : NULL);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sse_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)idle_s);
        s.status = 0;
        s.events = 0;
        s.n = 0;
        CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (s.status >= 400 && s.status != 503) {
            json_t *j = s.err.n > 0 ? json_loadb(s.err.p, s.err.n, 0, NULL) : NULL;
            die_api(s.status, "GET", path, j);
        }
        free(s.err.p);
        s.err.p = NULL;
        s.err.n = 0;
        if (s.end != NULL || s.stopped) {
            free(s.buf);
            free(s.data);
            if (end_state != NULL)
                *end_state = s.end;
            else
                json_decref(s.end);
            return s.stopped ? 1 : 0;
        }
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
            rc == CURLE_URL_MALFORMAT || s.status == 503 || s.events == 0)
            fails++;
        else
            fails = 0;
        if (fails > max_retries) {
            if (rc != CURLE_OK)
                die_curl(rc, url);
            fprintf(stderr, "kiln: the event stream %s keeps ending without news (HTTP %ld)\n", url,
                    s.status);
            exit(1);
        }
        free(s.data); /* a half event of a dropped connection */
        s.data = NULL;
        s.dlen = 0;
        sleep_ms(retry_ms);
    }
}
