/* sse.c - Server-Sent Event streams (see sse.h).
 *
 * A stream buffers one batch of formatted events and hands it out as the
 * connection takes it; when the buffer is empty it reads the next batch
 * from the store (at most SSE_BATCH rows of each kind), or says "nothing
 * now" and sleeps until the hub wakes it. Lock order: hub.mu, then the
 * http layer's lock (inside http_stream_resume); the http layer never calls
 * back into the hub while holding its own.
 */
#include "sse.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SSE_BATCH 256

typedef struct sse_stream {
    struct sse_hub *hub;
    sse_kind kind;
    char job[STORE_ID_MAX];
    int64_t e, m, l, c; /* cursors: state-event seq, metric seq, log seq, checkpoint step */
    http_stream *h;     /* set by attach; under hub.mu */
    int listed;         /* in the hub's list (under hub.mu) */
    char *out;          /* formatted, not yet written: out[off, len) */
    size_t off, len, cap;
    atomic_llong last_write_ms;
    int end_sent;
    char owner[SSE_OWNER_MAX]; /* the token name or client address it counts against */
    struct sse_stream *prev, *next;
} sse_stream;

typedef struct owner_count {
    char owner[SSE_OWNER_MAX];
    int n;
} owner_count;

struct sse_hub {
    store *st;
    server_stats *stats;
    sse_options o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sse_stream *list;    /* attached streams */
    int open;            /* streams allocated (attached or not) */
    owner_count *owners; /* streams open per owner (n > 0 only) */
    int n_owners, cap_owners;
    int stop;
    pthread_t thread;
};

static void *hub_main(void *arg)
{
    sse_hub *h = arg;
    uint64_t seen = store_changes(h->st);
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_deadline(&ts, CLOCK_REALTIME, h->o.poll_ms);
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        uint64_t now_changes = store_changes(h->st);
        int changed = now_changes != seen;
        seen = now_changes;
        int64_t now = clock_mono_ms();
        for (sse_stream *s = h->list; s != NULL; s = s->next)
            if (changed || now - atomic_load(&s->last_write_ms) >= h->o.keepalive_ms)
                http_stream_resume(s->h);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

sse_hub *sse_hub_new(store *st, server_stats *stats, const sse_options *o)
{
    sse_hub *h = xcalloc(1, sizeof *h);
    h->st = st;
    h->stats = stats;
    if (o != NULL)
        h->o = *o;
    if (h->o.keepalive_ms <= 0)
        h->o.keepalive_ms = 15000;
    if (h->o.max_streams <= 0)
        h->o.max_streams = 64;
    if (h->o.poll_ms <= 0)
        h->o.poll_ms = 100;
    if (h->o.max_per_owner <= 0)
        h->o.max_per_owner = 16;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        /* Out of threads at start-up is out of resources, as for memory. */
        log_error("sse: cannot start the hub thread");
        abort();
    }
    return h;
}

void sse_hub_free(sse_hub *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->cv);
    int open = h->open;
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    if (open != 0)
        log_warn("sse: %d streams still open at shutdown", open);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->owners);
    free(h);
}

int sse_hub_count(sse_hub *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->open;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- formatting ------------------------------------------------------------------ */

static void out_add(sse_stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(sse_stream *s, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->out + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        s->cap = s->cap * 2 + (size_t)(n > 0 ? n : 0) + 64;
        s->out = xrealloc(s->out, s->cap);
    }
}

static void cursor_text(const sse_stream *s, char *buf, size_t len)
{
    switch (s->kind) {
    case SSE_JOB:
        snprintf(buf, len, "%" PRId64 ".%" PRId64 ".%" PRId64 ".%" PRId64, s->e, s->m, s->l, s->c);
        break;
    case SSE_LOGS:
        snprintf(buf, len, "%" PRId64, s->l);
        break;
    default:
        snprintf(buf, len, "%" PRId64, s->e);
    }
}

/* One event: the cursor after it, its type, its data as one JSON line. */
static void emit(sse_stream *s, const char *type, json_t *data)
{
    char id[128];
    cursor_text(s, id, sizeof id);
    char *text = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(16));
    out_add(s, "id: %s\nevent: %s\ndata: %s\n\n", id, type, text != NULL ? text : "{}");
    free(text);
}

static int64_t seq_of(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* Reads what came after the cursors into the buffer; returns the rows added. */
static int fill_job(sse_stream *s, errbuf *eb)
{
    store *st = s->hub->st;
    int n = 0;
    json_t *page = NULL;
    size_t i;
    json_t *x;
    if (s->kind == SSE_JOB) {
        store_metric_query q = {.after_seq = s->m, .limit = SSE_BATCH};
        if (store_metrics(st, s->job, &q, &page, eb) < 0)
            return -1;
        json_array_foreach(json_object_get(page, "points"), i, x)
        {
            s->m = seq_of(x, "seq");
            emit(s, "metric", x);
            n++;
        }
        json_decref(page);
    }
    if (store_logs(st, s->job, s->l, SSE_BATCH, 0, &page, eb) < 0)
        return -1;
    json_array_foreach(json_object_get(page, "lines"), i, x)
    {
        s->l = seq_of(x, "seq");
        emit(s, "log", x);
        n++;
    }
    json_decref(page);
    if (s->kind == SSE_LOGS)
        return n;
    if (store_checkpoints(st, s->job, s->c, SSE_BATCH, &page, eb) < 0)
        return -1;
    json_array_foreach(page, i, x)
    {
        s->c = seq_of(x, "step");
        emit(s, "checkpoint", x);
        n++;
    }
    json_decref(page);
    if (store_events(st, s->job, s->e, SSE_BATCH, &page, eb) < 0)
        return -1;
    json_array_foreach(page, i, x)
    {
        s->e = seq_of(x, "seq");
        json_object_set_new(x, "job_id", json_string(s->job));
        emit(s, "state", x);
        n++;
    }
    json_decref(page);
    return n;
}

static void fill(sse_stream *s)
{
    errbuf eb;
    if (s->kind == SSE_ALL) {
        json_t *page;
        if (store_events_all(s->hub->st, s->e, SSE_BATCH, &page, &eb) == 0) {
            size_t i;
            json_t *x;
            json_array_foreach(page, i, x)
            {
                s->e = seq_of(x, "seq");
                emit(s, "state", x);
            }
            json_decref(page);
        } else {
            log_warn("sse: %s", eb.msg);
        }
    } else {
        /* The state is read before the rows: a job that was already terminal
         * then has every row it will ever have, so "nothing new" means done. */
        job_state state = JS_QUEUED;
        int src = store_job_state(s->hub->st, s->job, &state, NULL, NULL, &eb);
        int n = src == 0 ? fill_job(s, &eb) : 0;
        if (src == ERR_NOT_FOUND || (src == 0 && n == 0 && (JS_TERMINAL & JS_BIT(state)))) {
            json_t *d = json_pack("{s:s,s:s}", "job_id", s->job, "state",
                                  src == 0 ? store_state_name(state) : "DELETED");
            emit(s, "end", d);
            json_decref(d);
            s->end_sent = 1;
        } else if (src < 0 || n < 0) {
            log_warn("sse: job %s: %s", s->job, eb.msg);
        }
    }
    if (s->len == 0 && clock_mono_ms() - atomic_load(&s->last_write_ms) >= s->hub->o.keepalive_ms)
        out_add(s, ": keepalive\n\n");
}

/* ---- the stream callbacks ------------------------------------------------------------ */

static long stream_fn(void *ctx, char *buf, size_t max)
{
    sse_stream *s = ctx;
    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->end_sent)
            return -1;
        fill(s);
        if (s->len == 0)
            return 0;
    }
    size_t n = s->len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->out + s->off, n);
    s->off += n;
    atomic_store(&s->last_write_ms, clock_mono_ms());
    return (long)n;
}

static void stream_attach(void *ctx, http_stream *hs)
{
    sse_stream *s = ctx;
    sse_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    s->h = hs;
    s->listed = 1;
    s->next = h->list;
    if (h->list != NULL)
        h->list->prev = s;
    h->list = s;
    pthread_mutex_unlock(&h->mu);
}

/* Changes the count of owner's streams by delta; returns it. Under h->mu. */
static int owner_add(sse_hub *h, const char *owner, int delta)
{
    int i = 0;
    while (i < h->n_owners && strcmp(h->owners[i].owner, owner) != 0)
        i++;
    if (i == h->n_owners) {
        if (delta <= 0)
            return 0;
        if (h->n_owners == h->cap_owners) {
            h->cap_owners = h->cap_owners ? 2 * h->cap_owners : 16;
            h->owners = xrealloc(h->owners, (size_t)h->cap_owners * sizeof *h->owners);
        }
        snprintf(h->owners[i].owner, SSE_OWNER_MAX, "%s", owner);
        h->owners[i].n = 0;
        h->n_owners++;
    }
    int n = h->owners[i].n += delta;
    if (n <= 0)
        h->owners[i] = h->owners[--h->n_owners];
    return n;
}

static void stream_free(void *ctx)
{
    sse_stream *s = ctx;
    sse_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    if (s->listed) {
        if (s->prev != NULL)
            s->prev->next = s->next;
        else
            h->list = s->next;
        if (s->next != NULL)
            s->next->prev = s->prev;
    }
    h->open--;
    owner_add(h, s->owner, -1);
    pthread_mutex_unlock(&h->mu);
    stats_sse(h->stats, -1);
    free(s->out);
    free(s);
}

static int parse_cursor(sse_kind kind, const char *text, int64_t v[4], errbuf *eb)
{
    int want = kind == SSE_JOB ? 4 : 1;
    const char *p = text;
    for (int i = 0; i < want; i++) {
        char *end;
        long long x = strtoll(p, &end, 10);
        int last_ok = i == want - 1 ? *end == '\0' : *end == '.';
        /* The checkpoint step starts at -1 (none sent yet); the rest at 0. */
        if (end == p || !last_ok || x < (kind == SSE_JOB && i == 3 ? -1 : 0))
            return err_set(eb, ERR_INVALID,
                           "Last-Event-ID '%.60s' is not an id of this stream (want %s)", text,
                           kind == SSE_JOB ? "E.M.L.C, four integers" : "an integer");
        v[i] = x;
        p = end + 1;
    }
    return 0;
}

int sse_open(sse_hub *h, sse_kind kind, const char *job_id, const char *last_event_id,
             const char *owner, http_response *resp, errbuf *eb)
{
    if (owner == NULL)
        owner = "";
    int64_t v[4] = {0, 0, 0, -1};
    int has_id = last_event_id != NULL && last_event_id[0] != '\0';
    if (has_id && parse_cursor(kind, last_event_id, v, eb) < 0)
        return ERR_INVALID;
    pthread_mutex_lock(&h->mu);
    if (h->open >= h->o.max_streams) {
        pthread_mutex_unlock(&h->mu);
        return err_set(eb, ERR_BUSY, "%d event streams are open, the most this server keeps",
                       h->o.max_streams);
    }
    if (owner_add(h, owner, 0) >= h->o.max_per_owner) {
        pthread_mutex_unlock(&h->mu);
        return err_set(eb, ERR_BUSY, "%d event streams are open for %s, the most one client keeps",
                       h->o.max_per_owner, owner[0] ? owner : "this client");
    }
    owner_add(h, owner, +1);
    h->open++;
    pthread_mutex_unlock(&h->mu);
    stats_sse(h->stats, +1);
    sse_stream *s = xcalloc(1, sizeof *s);
    s->hub = h;
    s->kind = kind;
    snprintf(s->owner, sizeof s->owner, "%s", owner);
    snprintf(s->job, sizeof s->job, "%s", job_id != NULL ? job_id : "");
    s->cap = 4096;
    s->out = xmalloc(s->cap);
    if (kind == SSE_JOB) {
        s->e = v[0];
        s->m = v[1];
        s->l = v[2];
        s->c = v[3];
    } else if (kind == SSE_LOGS) {
        s->l = v[0];
    } else {
        s->e = has_id ? v[0] : store_events_max(h->st);
    }
    /* The stream starts with a comment so that a client sees its headers
     * and the connection at once, even when nothing has happened yet. */
    out_add(s, ": kiln %s stream\nretry: 2000\n\n",
            kind == SSE_ALL ? "jobs" : (kind == SSE_LOGS ? "log" : "job"));
    atomic_store(&s->last_write_ms, clock_mono_ms());
    resp->status = 200;
    resp->content_type = "text/event-stream; charset=utf-8";
    http_response_header(resp, "Cache-Control", "no-cache");
    http_response_header(resp, "X-Accel-Buffering", "no");
    resp->stream = stream_fn;
    resp->stream_ctx = s;
    resp->stream_attach = stream_attach;
    resp->stream_free = stream_free;
    return 0;
}
