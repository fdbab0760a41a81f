/* store_apply.c - applying pool messages to the store exactly once (see store.h). */
#include "common/log.h"
#include "common/xalloc.h"
#include "store.h"
#include "store_impl.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int apply_metric(store *s, const msg *m, job_row *r, errbuf *eb)
{
    json_t *latest = json_loads(r->latest, 0, NULL);
    if (!json_is_object(latest)) {
        json_decref(latest);
        latest = json_object();
    }
    double now = store_now();
    json_t *pts = msg_get(m, "points");
    size_t i;
    json_t *p;
    int rc = 0;
    sqlite3_stmt *q = sq_stmt(s, Q_METRIC_INSERT);
    json_array_foreach(pts, i, p)
    {
        int64_t step = json_integer_value(json_object_get(p, "step"));
        json_t *tv = json_object_get(p, "time");
        double t = json_is_number(tv) ? json_number_value(tv) : now;
        json_t *ev = json_object_get(p, "epoch");
        if (step > r->step)
            r->step = step;
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v)
        {
            if (strcmp(k, "step") == 0 || strcmp(k, "time") == 0 || strcmp(k, "epoch") == 0)
                continue;
            double val = json_number_value(v);
            r->metric_seq++;
            sq_bind_text(q, 1, m->job_id);
            sqlite3_bind_int64(q, 2, r->metric_seq);
            sqlite3_bind_int(q, 3, m->attempt);
            sq_bind_text(q, 4, k);
            sqlite3_bind_int64(q, 5, step);
            sqlite3_bind_double(q, 6, val);
            sqlite3_bind_double(q, 7, t);
            if (json_is_number(ev))
                sqlite3_bind_double(q, 8, json_number_value(ev));
            else
                sqlite3_bind_null(q, 8);
            rc = sq_step_done(s, q, "insert metric", eb);
            if (rc < 0)
                goto out;
            json_t *l = json_object();
            json_object_set_new(l, "value", json_real(val));
            json_object_set_new(l, "step", json_integer(step));
            json_object_set_new(l, "seq", json_integer(r->metric_seq));
            json_object_set_new(latest, k, l);
        }
    }
    free(r->latest);
    r->latest = json_dumps(latest, JSON_COMPACT | JSON_SORT_KEYS);
out:
    json_decref(latest);
    return rc;
}

static int apply_log(store *s, const msg *m, job_row *r, errbuf *eb)
{
    double now = store_now();
    json_t *lines = msg_get(m, "lines");
    size_t i;
    json_t *l;
    sqlite3_stmt *q = sq_stmt(s, Q_LOG_INSERT);
    json_array_foreach(lines, i, l)
    {
        json_t *tv = json_object_get(l, "time");
        const char *level = json_string_value(json_object_get(l, "level"));
        r->log_seq++;
        sq_bind_text(q, 1, m->job_id);
        sqlite3_bind_int64(q, 2, r->log_seq);
        sqlite3_bind_int(q, 3, m->attempt);
        sqlite3_bind_double(q, 4, json_is_number(tv) ? json_number_value(tv) : now);
        sq_bind_text(q, 5, level != NULL ? level : "info");
        sq_bind_text(q, 6, json_string_value(json_object_get(l, "text")));
        int ok = sqlite3_step(q) == SQLITE_DONE;
        sq_done(q);
        if (!ok)
            return sq_err(s, eb, "insert log");
    }
    return 0;
}

/* The checkpoints past keep_last: their steps, and their paths to unlink. */
typedef struct old_ckpts {
    json_t *steps;
    store_apply_out *o;
} old_ckpts;

static int old_ckpt_row(sqlite3_stmt *q, void *arg)
{
    old_ckpts *old = arg;
    json_array_append_new(old->steps, json_integer(sqlite3_column_int64(q, 0)));
    if (old->o->unlink == NULL)
        old->o->unlink = json_array();
    json_array_append_new(old->o->unlink, json_string(sq_col_text(q, 1)));
    return 0;
}

static int apply_checkpoint(store *s, const store_apply_in *in, const job_row *r,
                            store_apply_out *o, errbuf *eb)
{
    const msg *m = in->m;
    if (in->blob_paths[0] == NULL)
        return err_set(eb, ERR_INVALID, "checkpoint without a file");
    sqlite3_stmt *q = sq_stmt(s, Q_CKPT_INSERT);
    sq_bind_text(q, 1, m->job_id);
    sqlite3_bind_int64(q, 2, msg_int(m, "step", 0));
    sqlite3_bind_int(q, 3, m->attempt);
    sq_bind_text(q, 4, in->blob_paths[0]);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)m->blobs[0].len);
    sqlite3_bind_double(q, 6, store_now());
    int rc = sq_step_done(s, q, "insert checkpoint", eb);
    if (rc < 0 || r->keep_last <= 0)
        return rc;
    /* Forget the checkpoints past keep_last; the caller removes the files. */
    q = sq_stmt(s, Q_CKPT_OLD);
    sq_bind_text(q, 1, m->job_id);
    sqlite3_bind_int(q, 2, r->keep_last);
    old_ckpts old = {.steps = json_array(), .o = o};
    (void)sq_each(s, q, old_ckpt_row, &old, "read old checkpoints", NULL);
    json_t *old_steps = old.steps;
    size_t i;
    json_t *v;
    json_array_foreach(old_steps, i, v)
    {
        if (rc < 0)
            break;
        q = sq_stmt(s, Q_CKPT_DELETE);
        sq_bind_text(q, 1, m->job_id);
        sqlite3_bind_int64(q, 2, json_integer_value(v));
        rc = sq_step_done(s, q, "delete checkpoint", eb);
    }
    json_decref(old_steps);
    return rc;
}

static int apply_finished(store *s, const store_apply_in *in, job_row *r, errbuf *eb)
{
    const msg *m = in->m;
    int rc = 0;
    json_t *arts = msg_get(m, "artifacts");
    size_t i;
    json_t *a;
    json_array_foreach(arts, i, a)
    {
        if (in->blob_paths[i] == NULL)
            return err_set(eb, ERR_INVALID, "artifact %zu without a file", i);
        sqlite3_stmt *q = sq_stmt(s, Q_ARTIFACT_INSERT);
        sq_bind_text(q, 1, m->job_id);
        sq_bind_text(q, 2, json_string_value(json_object_get(a, "name")));
        sq_bind_text(q, 3, in->blob_paths[i]);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)m->blobs[i].len);
        sqlite3_bind_double(q, 5, store_now());
        rc = sq_step_done(s, q, "insert artifact", eb);
        if (rc < 0)
            return rc;
    }
    json_t *res = msg_get(m, "result");
    if (res != NULL) {
        char *text = json_dumps(res, JSON_COMPACT);
        sqlite3_stmt *q = sq_stmt(s, Q_JOB_RESULT);
        sq_bind_text(q, 1, m->job_id);
        sq_bind_text(q, 2, text);
        rc = sq_step_done(s, q, "store result", eb);
        free(text);
        if (rc < 0)
            return rc;
    }
    int ok = strcmp(msg_str(m, "status", ""), "succeeded") == 0;
    char text[256];
    if ((rc = sq_attempt_end(s, m->job_id, m->attempt, ok ? "COMPLETED" : "USER_CANCELLED",
                             ok ? "finished" : "cancelled", eb)) < 0)
        return rc;
    if (r->state == JS_STARTING) {
        rc = sq_transition(s, m->job_id, JS_BIT(JS_STARTING), JS_RUNNING, "STARTED", "running",
                           NULL, eb);
        if (rc < 0)
            return rc;
        r->state = JS_RUNNING;
    }
    if (ok) {
        snprintf(text, sizeof text, "attempt %d finished on pool %s", m->attempt, r->pool_id);
        return sq_transition(s, m->job_id, JS_BIT(JS_RUNNING) | JS_BIT(JS_CANCELLING), JS_SUCCEEDED,
                             "COMPLETED", text, NULL, eb);
    }
    if (r->state == JS_RUNNING) {
        rc = sq_transition(s, m->job_id, JS_BIT(JS_RUNNING), JS_CANCELLING, "USER_CANCELLED",
                           "the pool cancelled the job", NULL, eb);
        if (rc < 0)
            return rc;
    }
    snprintf(text, sizeof text, "cancelled at step %lld; the final checkpoint is kept",
             (long long)r->step);
    return sq_transition(s, m->job_id, JS_BIT(JS_CANCELLING), JS_CANCELLED, "USER_CANCELLED", text,
                         NULL, eb);
}

int store_attempt_wants(store *s, const char *job_id, int attempt, const char *pool_id,
                        uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_GET);
    sq_bind_text(q, 1, job_id);
    sqlite3_bind_int(q, 2, attempt);
    int wants = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) != 0 &&
                (uint64_t)sqlite3_column_int64(q, 1) < seq &&
                strcmp(sq_col_text(q, 2), pool_id) == 0;
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return wants;
}

/* Where message m stands in its attempt's sequence: 1 when it is the next
 * one to apply; else 0 with o->outcome (STALE, DUP, GAP) and o->ack_seq. */
static int apply_in_sequence(store *s, const store_apply_in *in, const job_row *r,
                             store_apply_out *o)
{
    const msg *m = in->m;
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_GET);
    sq_bind_text(q, 1, m->job_id);
    sqlite3_bind_int(q, 2, m->attempt);
    int found = sqlite3_step(q) == SQLITE_ROW;
    int active = found && sqlite3_column_int(q, 0) != 0;
    uint64_t last = found ? (uint64_t)sqlite3_column_int64(q, 1) : 0;
    int same_pool = found && strcmp(sq_col_text(q, 2), in->pool_id) == 0;
    sq_done(q);
    if (!found || !same_pool || r->attempt != m->attempt) {
        o->outcome = APPLY_STALE;
        return 0;
    }
    if (m->seq <= last) {
        o->outcome = APPLY_DUP;
        o->ack_seq = last;
        return 0;
    }
    if (!active) {
        o->outcome = APPLY_STALE;
        return 0;
    }
    if (m->seq != last + 1) {
        o->outcome = APPLY_GAP;
        o->ack_seq = last;
        return 0;
    }
    return 1;
}

static int apply_started(store *s, const msg *m, const job_row *r, errbuf *eb)
{
    int rc = 0;
    if (json_is_integer(msg_get(m, "total_steps"))) {
        sqlite3_stmt *q = sq_stmt(s, Q_JOB_TOTAL);
        sq_bind_text(q, 1, m->job_id);
        sqlite3_bind_int64(q, 2, msg_int(m, "total_steps", 0));
        rc = sq_step_done(s, q, "set total_steps", eb);
    }
    if (rc == 0 && r->state == JS_STARTING) {
        char text[160];
        snprintf(text, sizeof text, "attempt %d running on pool %s", m->attempt, r->pool_id);
        rc =
            sq_transition(s, m->job_id, JS_BIT(JS_STARTING), JS_RUNNING, "STARTED", text, NULL, eb);
    }
    return rc;
}

static int apply_progress(store *s, const msg *m, const job_row *r, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_PROGRESS);
    sq_bind_text(q, 1, m->job_id);
    sqlite3_bind_int64(q, 2, r->metric_seq);
    sqlite3_bind_int64(q, 3, r->log_seq);
    sqlite3_bind_int64(q, 4, r->step);
    sq_bind_text(q, 5, r->latest);
    sqlite3_bind_double(q, 6, store_now());
    return sq_step_done(s, q, "update progress", eb);
}

/* Applies the content of message in->m to its job (inside the savepoint). */
static int apply_content(store *s, const store_apply_in *in, job_row *r, store_apply_out *o,
                         errbuf *eb)
{
    const msg *m = in->m;
    int rc;
    switch (m->type) {
    case MSG_STARTED:
        return apply_started(s, m, r, eb);
    case MSG_METRIC:
        rc = apply_metric(s, m, r, eb);
        return rc == 0 ? apply_progress(s, m, r, eb) : rc;
    case MSG_LOG:
        rc = apply_log(s, m, r, eb);
        return rc == 0 ? apply_progress(s, m, r, eb) : rc;
    case MSG_CHECKPOINT:
        return apply_checkpoint(s, in, r, o, eb);
    case MSG_FINISHED:
        o->ended = 1;
        return apply_finished(s, in, r, eb);
    case MSG_FAILED:
        o->ended = 1;
        return sq_attempt_failed(s, m->job_id, r, msg_str(m, "reason", "INTERNAL"),
                                 msg_str(m, "message", ""), eb);
    default:
        return err_set(eb, ERR_INVALID, "not a job message");
    }
}

static int apply_one(store *s, const store_apply_in *in, store_apply_out *o, errbuf *eb)
{
    const msg *m = in->m;
    memset(o, 0, sizeof *o);
    o->ack_seq = m->seq;
    job_row r;
    int rc = sq_read_job(s, m->job_id, &r, eb);
    if (rc == ERR_NOT_FOUND) {
        o->outcome = APPLY_STALE;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (!apply_in_sequence(s, in, &r, o))
        goto out;
    if ((rc = sq_run(s, Q_SAVEPOINT, eb)) < 0)
        goto out;
    errbuf local;
    int arc = apply_content(s, in, &r, o, &local);
    if (arc == ERR_IO) {
        sq_run(s, Q_ROLLBACK_TO, NULL);
        sq_run(s, Q_RELEASE, NULL);
        rc = err_set(eb, arc, "%s", local.msg);
        goto out;
    }
    if (arc < 0) {
        /* Content the store cannot apply (an illegal transition, a missing
         * file): drop this message but move past it, so the pool is not stuck
         * resending it. */
        sq_run(s, Q_ROLLBACK_TO, NULL);
        log_warn("store: dropped %s seq %llu of job %s attempt %d: %s", msg_type_name(m->type),
                 (unsigned long long)m->seq, m->job_id, m->attempt, local.msg);
        o->outcome = APPLY_BAD;
        o->ended = 0;
        json_decref(o->unlink);
        o->unlink = NULL;
    }
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_SEQ);
    sq_bind_text(q, 1, m->job_id);
    sqlite3_bind_int(q, 2, m->attempt);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)m->seq);
    rc = sq_step_done(s, q, "update attempt seq", eb);
    sq_run(s, Q_RELEASE, NULL);
    o->ack_seq = m->seq;
out:
    free(r.latest);
    return rc;
}

typedef struct apply_batch {
    const store_apply_in *in;
    store_apply_out *out;
    int n;
} apply_batch;

static int apply_batch_tx(store *s, void *arg, errbuf *eb)
{
    apply_batch *b = arg;
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->n; i++)
        rc = apply_one(s, &b->in[i], &b->out[i], eb);
    return rc;
}

int store_apply_batch(store *s, const store_apply_in *in, store_apply_out *out, int n, errbuf *eb)
{
    apply_batch b = {.in = in, .out = out, .n = n};
    int rc = sq_write(s, SQ_COUNT_COMMIT, apply_batch_tx, &b, eb);
    if (rc < 0)
        for (int i = 0; i < n; i++) {
            json_decref(out[i].unlink);
            out[i].unlink = NULL;
        }
    return rc;
}
