/* stats.c - lock-free counters and their Prometheus exposition (see stats.h). */
#include "stats.h"

#include "common/msg.h"
#include "common/xalloc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_STATUS 500 /* 100..599 */
#define N_BUCKET 12

/* Upper bounds of the latency histogram, seconds (the last is +Inf). */
static const double bucket_le[N_BUCKET - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,   0.5,   1.0,  2.5};

typedef struct route_stats {
    atomic_ullong status[N_STATUS];
    atomic_ullong bucket[N_BUCKET]; /* not cumulative; summed when rendered */
    atomic_ullong sum_us;
} route_stats;

struct server_stats {
    const char *const *labels;
    int n_routes;
    route_stats *routes;                       /* n_routes + 1; the last is "other" */
    atomic_ullong zmq_msgs[2][MSG__COUNT + 1]; /* [out][type]; the last is "undecoded" */
    atomic_ullong zmq_bytes[2];
    atomic_ullong zmq_errors[2];
    atomic_long sse_open;
    atomic_ullong sse_total;
};

void stats_buf_init(stats_buf *b)
{
    b->cap = 4096;
    b->len = 0;
    b->p = xmalloc(b->cap);
    b->p[0] = '\0';
}

void stats_printf(stats_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        b->p = xrealloc(b->p, b->cap);
    }
}

void stats_label(stats_buf *b, const char *v)
{
    for (const char *c = v; *c; c++) {
        if (*c == '\\' || *c == '"')
            stats_printf(b, "\\%c", *c);
        else if (*c == '\n')
            stats_printf(b, "\\n");
        else
            stats_printf(b, "%c", *c);
    }
}

server_stats *stats_new(const char *const *route_labels, int n_routes)
{
    server_stats *s = xcalloc(1, sizeof *s);
    s->labels = route_labels;
    s->n_routes = n_routes;
    s->routes = xcalloc((size_t)n_routes + 1, sizeof *s->routes);
    return s;
}

void stats_free(server_stats *s)
{
    if (s == NULL)
        return;
    free(s->routes);
    free(s);
}

void stats_http(server_stats *s, int route, int status, double seconds)
{
    if (s == NULL)
        return;
    route_stats *r = &s->routes[route >= 0 && route < s->n_routes ? route : s->n_routes];
    if (status < 100 || status > 599)
        status = 500;
    atomic_fetch_add_explicit(&r->status[status - 100], 1, memory_order_relaxed);
    int b = 0;
    while (b < N_BUCKET - 1 && seconds > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (unsigned long long)(seconds * 1e6),
                              memory_order_relaxed);
}

void stats_zmq(server_stats *s, int out, int type, size_t bytes)
{
    if (s == NULL)
        return;
    int t = type >= 0 && type < MSG__COUNT ? type : MSG__COUNT;
    atomic_fetch_add_explicit(&s->zmq_msgs[out != 0][t], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->zmq_bytes[out != 0], bytes, memory_order_relaxed);
}

void stats_zmq_error(server_stats *s, int out)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->zmq_errors[out != 0], 1, memory_order_relaxed);
}

void stats_sse(server_stats *s, int delta)
{
    if (s == NULL)
        return;
    atomic_fetch_add(&s->sse_open, delta);
    if (delta > 0)
        atomic_fetch_add_explicit(&s->sse_total, (unsigned long long)delta, memory_order_relaxed);
}

long stats_sse_open(const server_stats *s)
{
    return s != NULL ? atomic_load(&s->sse_open) : 0;
}

static const char *route_label(const server_stats *s, int i)
{
    return i < s->n_routes ? s->labels[i] : "other";
}

static void render_http(const server_stats *s, stats_buf *b)
{
    stats_printf(b, "# HELP kiln_http_requests_total HTTP requests answered, by route and status.\n"
                    "# TYPE kiln_http_requests_total counter\n");
    for (int i = 0; i <= s->n_routes; i++)
        for (int c = 0; c < N_STATUS; c++) {
            unsigned long long n =
                atomic_load_explicit(&s->routes[i].status[c], memory_order_relaxed);
            if (n == 0)
                continue;
            stats_printf(b, "kiln_http_requests_total{route=\"");
            stats_label(b, route_label(s, i));
            stats_printf(b, "\",code=\"%d\"} %llu\n", c + 100, n);
        }
    stats_printf(b, "# HELP kiln_http_request_duration_seconds Time to answer a request (the "
                    "handler; a stream's first bytes), by route.\n"
                    "# TYPE kiln_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= s->n_routes; i++) {
        const route_stats *r = &s->routes[i];
        unsigned long long cum = 0, counts[N_BUCKET];
        for (int k = 0; k < N_BUCKET; k++) {
            counts[k] = atomic_load_explicit(&r->bucket[k], memory_order_relaxed);
            cum += counts[k];
        }
        if (cum == 0)
            continue;
        unsigned long long run = 0;
        for (int k = 0; k < N_BUCKET; k++) {
            run += counts[k];
            stats_printf(b, "kiln_http_request_duration_seconds_bucket{route=\"");
            stats_label(b, route_label(s, i));
            if (k < N_BUCKET - 1)
                stats_printf(b, "\",le=\"%g\"} %llu\n", bucket_le[k], run);
            else
                stats_printf(b, "\",le=\"+Inf\"} %llu\n", run);
        }
        stats_printf(b, "kiln_http_request_duration_seconds_sum{route=\"");
        stats_label(b, route_label(s, i));
        stats_printf(b, "\"} %.6f\n",
                     (double)atomic_load_explicit(&r->sum_us, memory_order_relaxed) * 1e-6);
        stats_printf(b, "kiln_http_request_duration_seconds_count{route=\"");
        stats_label(b, route_label(s, i));
        stats_printf(b, "\"} %llu\n", cum);
    }
}

static void render_zmq(const server_stats *s, stats_buf *b)
{
    static const char *const dir[2] = {"in", "out"};
    stats_printf(b, "# HELP kiln_zmq_messages_total Pool protocol messages, by direction and "
                    "type.\n# TYPE kiln_zmq_messages_total counter\n");
    for (int d = 0; d < 2; d++)
        for (int t = 0; t <= MSG__COUNT; t++) {
            unsigned long long n = atomic_load_explicit(&s->zmq_msgs[d][t], memory_order_relaxed);
            /* The types a side sends always appear, so a rate() has a series. */
            int usual = t < MSG__COUNT &&
                        (d == 1 ? (t == MSG_WELCOME || t == MSG_HEARTBEAT || t == MSG_ASSIGN ||
                                   t == MSG_ACK)
                                : (t == MSG_HELLO || t == MSG_HEARTBEAT || t == MSG_METRIC));
            if (n == 0 && !usual)
                continue;
            stats_printf(b, "kiln_zmq_messages_total{direction=\"%s\",type=\"%s\"} %llu\n", dir[d],
                         t < MSG__COUNT ? msg_type_name((msg_type)t) : "undecoded", n);
        }
    stats_printf(b, "# HELP kiln_zmq_bytes_total Bytes of pool protocol messages (all frames).\n"
                    "# TYPE kiln_zmq_bytes_total counter\n");
    for (int d = 0; d < 2; d++)
        stats_printf(b, "kiln_zmq_bytes_total{direction=\"%s\"} %llu\n", dir[d],
                     atomic_load_explicit(&s->zmq_bytes[d], memory_order_relaxed));
    stats_printf(b, "# HELP kiln_zmq_errors_total Messages dropped as malformed (in) or not "
                    "delivered (out).\n# TYPE kiln_zmq_errors_total counter\n");
    for (int d = 0; d < 2; d++)
        stats_printf(b, "kiln_zmq_errors_total{direction=\"%s\"} %llu\n", dir[d],
                     atomic_load_explicit(&s->zmq_errors[d], memory_order_relaxed));
}

void stats_render(const server_stats *s, stats_buf *b)
{
    if (s == NULL)
        return;
    render_http(s, b);
    render_zmq(s, b);
    stats_printf(b,
                 "# HELP kiln_sse_streams Server-Sent Event streams open now.\n"
                 "# TYPE kiln_sse_streams gauge\nkiln_sse_streams %ld\n"
                 "# HELP kiln_sse_streams_total Server-Sent Event streams opened.\n"
                 "# TYPE kiln_sse_streams_total counter\nkiln_sse_streams_total %llu\n",
                 (long)atomic_load(&s->sse_open),
                 atomic_load_explicit(&s->sse_total, memory_order_relaxed));
}
