/* stats.h - the server's counters for /metrics: HTTP requests and latency by
 * route and status, ZeroMQ messages in and out by type, live event streams.
 *
 * Every counter is a relaxed atomic: recording never takes a lock, so the
 * HTTP threads and the broker thread can count from anywhere. stats_render
 * writes them in the Prometheus text format (0.0.4). The gauges that are
 * read from elsewhere (jobs by state, pools) are rendered by the handler.
 * No dependencies beyond libc; thread-safe.
 */
#ifndef KILN_STATS_H
#define KILN_STATS_H

#include <stddef.h>

typedef struct server_stats server_stats;

/* A growing text buffer for the exposition (stats_printf appends). */
typedef struct stats_buf {
    char *p; /* malloc'd, NUL-terminated */
    size_t len, cap;
} stats_buf;

void stats_buf_init(stats_buf *b);
void stats_printf(stats_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends v as a Prometheus label value (backslash, quote and newline escaped). */
void stats_label(stats_buf *b, const char *v);

/* stats_new: route_labels[i] (borrowed, static) names route i, e.g.
 * "GET /api/v1/jobs/{id}"; requests that match no route count as "other". */
server_stats *stats_new(const char *const *route_labels, int n_routes);
void stats_free(server_stats *s); /* NULL is a no-op */

/* One HTTP request: route index (-1 = none matched), status 100..599, seconds. */
void stats_http(server_stats *s, int route, int status, double seconds);

/* One ZeroMQ message: out = 0 received, 1 sent; type a msg_type (or -1 for
 * one that could not be decoded); bytes of all its frames. */
void stats_zmq(server_stats *s, int out, int type, size_t bytes);

/* A received message dropped as malformed, or a send that failed. */
void stats_zmq_error(server_stats *s, int out);

/* Event streams: +1 when one opens, -1 when it is freed. */
void stats_sse(server_stats *s, int delta);

/* Event streams open now. */
long stats_sse_open(const server_stats *s);

/* Appends every counter above in the exposition format. */
void stats_render(const server_stats *s, stats_buf *b);

#endif
