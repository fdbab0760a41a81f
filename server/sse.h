/* sse.h - Server-Sent Event streams over the job store.
 *
 * Three kinds of stream (api/openapi.yaml):
 *   SSE_JOB   GET /api/v1/jobs/{id}/events: `state`, `metric`, `log` and
 *             `checkpoint` events of one job; id = the cursor "E.M.L.C"
 *             (last state-event seq, metric seq, log seq, checkpoint step).
 *   SSE_LOGS  GET /api/v1/jobs/{id}/logs?follow=true: `log` events; id = log seq.
 *   SSE_ALL   GET /api/v1/events: `state` events of every job; id = event seq.
 * A client that reconnects with Last-Event-ID gets exactly what came after
 * it. A job stream replays from the start when no id is given, and ends with
 * an `end` event once the job is terminal and everything was sent; the
 * all-jobs stream starts at the present and never ends. A comment line
 * (": keepalive") goes out when nothing else was written for keepalive_ms.
 *
 * The hub owns a thread that wakes the streams (http_stream_resume) when the
 * store committed something (store_changes) or a keepalive is due; each
 * stream reads the store from the HTTP thread that serves it. When the
 * connection closes, the http layer frees the stream and the hub forgets
 * it. Thread-safe. Depends on http.h (no MHD), store.h, stats.h.
 */
#ifndef KILN_SSE_H
#define KILN_SSE_H

#include "common/err.h"
#include "server/http.h"
#include "server/stats.h"
#include "server/store.h"

typedef enum { SSE_JOB = 0, SSE_LOGS, SSE_ALL } sse_kind;

typedef struct sse_hub sse_hub;

#define SSE_OWNER_MAX 64

typedef struct sse_options {
    int keepalive_ms;  /* default 15000 */
    int max_streams;   /* open at once; default 64 */
    int max_per_owner; /* open at once for one token (or client address); default 16 */
    int poll_ms;       /* how often the hub looks for changes; default 100 */
} sse_options;

/* sse_hub_new starts the hub thread. st and stats (may be NULL) are
 * borrowed for the hub's life. */
sse_hub *sse_hub_new(store *st, server_stats *stats, const sse_options *o);

/* sse_hub_free stops the thread and frees the hub. Every stream must have
 * been freed first (stop the HTTP server before). NULL is a no-op. */
void sse_hub_free(sse_hub *h);

/* Streams open now. */
int sse_hub_count(sse_hub *h);

/* sse_open makes resp a stream of `kind` (job_id for SSE_JOB and SSE_LOGS,
 * which must exist), starting after last_event_id (NULL or "" = the default
 * start above), counted against owner (the token name, or the client's
 * address without tokens). Returns 0 (resp: 200, text/event-stream),
 * ERR_INVALID (the id is not a cursor of this kind; eb says the shape), or
 * ERR_BUSY (too many streams in all, or for this owner). */
int sse_open(sse_hub *h, sse_kind kind, const char *job_id, const char *last_event_id,
             const char *owner, http_response *resp, errbuf *eb);

#endif
