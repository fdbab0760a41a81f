/* httpc.c - libcurl test client (see httpc.h). */
#include "httpc.h"

#include "common/xalloc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t sink(char *data, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t k = size * n;
    b->p = xrealloc(b->p, b->n + k + 1);
    memcpy(b->p + b->n, data, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static int perform(const char *method, const char *url, const char *const *extra_headers,
                   const void *body, size_t len, long timeout_ms, int stream, httpc_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    buf b = {xcalloc(1, 1), 0}, h = {xcalloc(1, 1), 0};
    struct curl_slist *hl = NULL;
    for (int i = 0; extra_headers != NULL && extra_headers[i] != NULL; i++)
        hl = curl_slist_append(hl, extra_headers[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r->body = b.p;
    r->len = b.n;
    r->headers = h.p;
    r->json = r->len > 0 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    if (stream && rc == CURLE_OPERATION_TIMEDOUT && r->status > 0)
        return 0;
    return rc == CURLE_OK ? 0 : -1;
}

int httpc_do(const char *method, const char *url, const char *const *extra_headers,
             const void *body, size_t len, httpc_resp *r)
{
    return perform(method, url, extra_headers, body, len, 10000, 0, r);
}

int httpc_stream(const char *url, const char *const *extra_headers, long max_ms, httpc_resp *r)
{
    return perform("GET", url, extra_headers, NULL, 0, max_ms, 1, r);
}

int httpc_get(const char *url, httpc_resp *r)
{
    return httpc_do("GET", url, NULL, NULL, 0, r);
}

int httpc_post_json(const char *url, const char *json_text, httpc_resp *r)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return httpc_do("POST", url, h, json_text, strlen(json_text), r);
}

const char *httpc_header(const httpc_resp *r, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t k = end != NULL ? (size_t)(end - v) : strlen(v);
            if (k >= len)
                k = len - 1;
            memcpy(out, v, k);
            out[k] = '\0';
            return out;
        }
        line = end != NULL ? end + 2 : NULL;
    }
    return NULL;
}

void httpc_free(httpc_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}
