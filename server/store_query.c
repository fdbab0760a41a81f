/* store_query.c - reading metrics, logs, events, artifacts and checkpoints (see store.h). */
#include "common/log.h"
#include "common/xalloc.h"
#include "store.h"
#include "store_impl.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sq_job_exists(store *s, const char *id, errbuf *eb)
{
    job_row r;
    int rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    return rc;
}

typedef struct mrow {
    int64_t seq, step;
    double value, time, epoch;
    int is_null, has_epoch;
    int name; /* index into the names seen */
} mrow;

static json_t *mrow_json(const mrow *r, const char *name)
{
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer(r->seq));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "step", json_integer(r->step));
    json_object_set_new(o, "value", r->is_null ? json_null() : json_real(r->value));
    json_object_set_new(o, "time", json_real(r->time));
    json_object_set_new(o, "epoch", r->has_epoch ? json_real(r->epoch) : json_null());
    return o;
}

/* Marks in keep[] the rows to keep of series idx[0..n) (row indices in seq
 * order): per bucket its first, last, min and max. */
static void downsample(const mrow *rows, const int *idx, int n, int max_points, char *keep)
{
    assert(max_points >= 4);
    if (n <= max_points) {
        for (int i = 0; i < n; i++)
            keep[idx[i]] = 1;
        return;
    }
    int buckets = max_points / 4 > 0 ? max_points / 4 : 1;
    for (int b = 0; b < buckets; b++) {
        int lo = (int)((long long)n * b / buckets), hi = (int)((long long)n * (b + 1) / buckets);
        if (lo >= hi)
            continue;
        int mn = lo, mx = lo;
        for (int i = lo; i < hi; i++) {
            if (rows[idx[i]].value < rows[idx[mn]].value)
                mn = i;
            if (rows[idx[i]].value > rows[idx[mx]].value)
                mx = i;
        }
        keep[idx[lo]] = keep[idx[hi - 1]] = keep[idx[mn]] = keep[idx[mx]] = 1;
    }
}

/* The names of the metric rows read so far, for fill_mrow. */
typedef struct metric_names {
    json_t *seen;  /* name -> index */
    json_t *order; /* index -> name */
} metric_names;

static void fill_mrow(sqlite3_stmt *q, void *elem, void *arg)
{
    metric_names *mn = arg;
    mrow *r = elem;
    r->seq = sqlite3_column_int64(q, 0);
    const char *nm = sq_col_text(q, 1);
    json_t *ix = json_object_get(mn->seen, nm);
    if (ix == NULL) {
        ix = json_integer((json_int_t)json_array_size(mn->order));
        json_object_set_new(mn->seen, nm, ix);
        json_array_append_new(mn->order, json_string(nm));
    }
    r->name = (int)json_integer_value(ix);
    r->step = sqlite3_column_int64(q, 2);
    r->is_null = sqlite3_column_type(q, 3) == SQLITE_NULL;
    r->value = sqlite3_column_double(q, 3);
    r->time = sqlite3_column_double(q, 4);
    r->has_epoch = sqlite3_column_type(q, 5) != SQLITE_NULL;
    r->epoch = sqlite3_column_double(q, 5);
}

int store_metrics(store *s, const char *id, const store_metric_query *mq, json_t **out, errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc < 0) {
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    char *names = NULL;
    if (mq->names != NULL && mq->names[0] != '\0') {
        size_t n = strlen(mq->names);
        names = xmalloc(n + 3);
        snprintf(names, n + 3, ",%s,", mq->names);
    }
    sqlite3_stmt *q = sq_stmt(s, Q_METRICS);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int64(q, 2, mq->after_seq);
    sq_bind_text(q, 3, names);
    sqlite3_bind_int(q, 4, mq->limit);
    json_t *seen = json_object(); /* name -> index */
    json_t *order = json_array(); /* index -> name */
    metric_names mn = {.seen = seen, .order = order};
    sq_rows got = {.size = sizeof(mrow)};
    rc = sq_collect(s, q, &got, fill_mrow, &mn, "read metrics", eb);
    mrow *rows = got.v;
    int n = got.n;
    pthread_mutex_unlock(&s->mu);
    free(names);
    if (rc < 0)
        goto out;
    char *keep = xcalloc((size_t)n + 1, 1);
    int downsampled = 0;
    if (mq->max_points > 0) {
        int *idx = xmallocarray((size_t)n + 1, sizeof *idx);
        for (size_t k = 0; k < json_array_size(order); k++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (rows[i].name == (int)k)
                    idx[m++] = i;
            if (m > mq->max_points)
                downsampled = 1;
            downsample(rows, idx, m, mq->max_points, keep);
        }
        free(idx);
    } else {
        memset(keep, 1, (size_t)n);
    }
    json_t *pts = json_array();
    for (int i = 0; i < n; i++)
        if (keep[i])
            json_array_append_new(pts, mrow_json(&rows[i], json_string_value(json_array_get(
                                                               order, (size_t)rows[i].name))));
    free(keep);
    json_t *o = json_object();
    json_object_set_new(o, "job_id", json_string(id));
    json_object_set_new(o, "points", pts);
    json_object_set_new(o, "next_seq", json_integer(n > 0 ? rows[n - 1].seq : mq->after_seq));
    json_object_set_new(o, "downsampled", json_boolean(downsampled));
    *out = o;
out:
    free(rows);
    json_decref(seen);
    json_decref(order);
    return rc;
}

/* One logs row as JSON (an sq_json_fn); *(int64_t *)arg gets its seq. */
static json_t *log_line(sqlite3_stmt *q, void *arg)
{
    json_t *l = json_object();
    int64_t seq = sqlite3_column_int64(q, 0);
    *(int64_t *)arg = seq;
    json_object_set_new(l, "seq", json_integer(seq));
    json_object_set_new(l, "attempt", json_integer(sqlite3_column_int(q, 1)));
    json_object_set_new(l, "time", sq_col_time(q, 2));
    json_object_set_new(l, "level", json_string(sq_col_text(q, 3)));
    json_object_set_new(l, "text", json_string(sq_col_text(q, 4)));
    return l;
}

int store_logs(store *s, const char *id, int64_t after_seq, int limit, int tail, json_t **out,
               errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc < 0)
        goto out;
    sqlite3_stmt *q;
    if (tail > 0) {
        q = sq_stmt(s, Q_LOGS_TAIL);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, tail);
    } else {
        q = sq_stmt(s, Q_LOGS_AFTER);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, after_seq);
        sqlite3_bind_int(q, 3, limit);
    }
    json_t *lines = json_array();
    int64_t next = after_seq;
    rc = sq_collect_json(s, q, lines, log_line, &next, "read logs", eb);
    if (rc < 0) {
        json_decref(lines);
        goto out;
    }
    *out = json_object();
    json_object_set_new(*out, "job_id", json_string(id));
    json_object_set_new(*out, "lines", lines);
    json_object_set_new(*out, "next_seq", json_integer(next));
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_artifact(store *s, const char *id, const char *name, char *path, size_t pathlen,
                   int64_t *size, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc == 0) {
        sqlite3_stmt *q = sq_stmt(s, Q_ARTIFACT_GET);
        sq_bind_text(q, 1, id);
        sq_bind_text(q, 2, name);
        if (sqlite3_step(q) == SQLITE_ROW) {
            snprintf(path, pathlen, "%s", sq_col_text(q, 0));
            *size = sqlite3_column_int64(q, 1);
        } else {
            rc = err_set(eb, ERR_NOT_FOUND, "job %s has no artifact '%s'", id, name);
        }
        sq_done(q);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_artifacts(store *s, const char *id, json_t **out, errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc == 0)
        *out = sq_artifacts_json(s, id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_events(store *s, const char *id, int64_t after, int limit, json_t **out, errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc == 0) {
        sqlite3_stmt *q = sq_stmt(s, Q_EVENTS);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, after);
        sqlite3_bind_int(q, 3, limit);
        *out = json_array();
        (void)sq_collect_json(s, q, *out, sq_event_row, NULL, "read events", NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

json_t *sq_event_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
    static const sq_json_col cols[] = {
        {"seq", 0, SQ_J_INT}, {"time", 1, SQ_J_TIME},   {"from", 2, SQ_J_TEXT_NULL},
        {"to", 3, SQ_J_TEXT}, {"reason", 4, SQ_J_TEXT}, {"message", 5, SQ_J_TEXT},
    };
    return sq_row_json(NULL, q, cols, SQ_NCOLS(cols));
}

static json_t *artifact_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
    static const sq_json_col cols[] = {{"name", 0, SQ_J_TEXT}, {"size", 1, SQ_J_INT}};
    return sq_row_json(NULL, q, cols, SQ_NCOLS(cols));
}

json_t *sq_artifacts_json(store *s, const char *id)
{
    json_t *a = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_ARTIFACT_LIST);
    sq_bind_text(q, 1, id);
    (void)sq_collect_json(s, q, a, artifact_row, NULL, "read artifacts", NULL);
    return a;
}

uint64_t store_changes(store *s)
{
    return atomic_load(&s->changes);
}

/* An events row with its job_id (an sq_json_fn). */
static json_t *event_row_of_any(sqlite3_stmt *q, void *arg)
{
    json_t *o = sq_event_row(q, arg);
    json_object_set_new(o, "job_id", json_string(sq_col_text(q, 6)));
    return o;
}

int store_events_all(store *s, int64_t after, int limit, json_t **out, errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    json_t *a = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_EVENTS_ALL);
    sqlite3_bind_int64(q, 1, after);
    sqlite3_bind_int(q, 2, limit);
    rc = sq_collect_json(s, q, a, event_row_of_any, NULL, "read events", eb);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

int64_t store_events_max(store *s)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_EVENTS_MAX);
    int64_t max = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return max;
}

static json_t *checkpoint_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
    static const sq_json_col cols[] = {
        {"step", 0, SQ_J_INT},
        {"attempt", 1, SQ_J_INT},
        {"size", 2, SQ_J_INT},
        {"time", 3, SQ_J_TIME},
    };
    return sq_row_json(NULL, q, cols, SQ_NCOLS(cols));
}

int store_checkpoints(store *s, const char *id, int64_t after_step, int limit, json_t **out,
                      errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sq_job_exists(s, id, eb);
    if (rc == 0) {
        sqlite3_stmt *q = sq_stmt(s, Q_CKPT_AFTER);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, after_step);
        sqlite3_bind_int(q, 3, limit);
        json_t *a = json_array();
        (void)sq_collect_json(s, q, a, checkpoint_row, NULL, "read checkpoints", NULL);
        *out = a;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int count_attempts(sqlite3_stmt *q, void *arg)
{
    json_object_set_new(arg, sq_col_text(q, 0), json_integer(sqlite3_column_int64(q, 1)));
    return 0;
}

int store_attempt_counts(store *s, json_t **out, errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_COUNTS);
    json_t *o = json_object();
    int rc = sq_each(s, q, count_attempts, o, "count attempts", eb);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        json_decref(o);
    else
        *out = o;
    return rc;
}
