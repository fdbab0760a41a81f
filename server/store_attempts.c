/* store_attempts.c - attempts in the store (see store.h): starting one on a
 * pool, reloading its assignment, ending it (finished, failed, pool lost) and
 * listing the active ones. Part of the store (store_impl.h).
 */
#include "common/xalloc.h"
#include "store.h"
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *attempt_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
    static const sq_json_col cols[] = {
        {"attempt", 0, SQ_J_INT},       {"pool_id", 1, SQ_J_TEXT},
        {"active", 2, SQ_J_BOOL},       {"started_at", 3, SQ_J_TIME},
        {"ended_at", 4, SQ_J_TIME},     {"reason", 5, SQ_J_TEXT_NULL},
        {"message", 6, SQ_J_TEXT_NULL}, {"messages_applied", 7, SQ_J_INT},
    };
    return sq_row_json(NULL, q, cols, SQ_NCOLS(cols));
}

json_t *sq_attempts_json(store *s, const char *id)
{
    json_t *a = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPTS_OF);
    sq_bind_text(q, 1, id);
    (void)sq_collect_json(s, q, a, attempt_row, NULL, "read attempts", NULL);
    return a;
}

static int sq_fill_assignment(store *s, const char *id, int attempt, store_assignment *a,
                              errbuf *eb)
{
    memset(a, 0, sizeof *a);
    snprintf(a->job_id, sizeof a->job_id, "%s", id);
    a->attempt = attempt;
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_ROW);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sq_done(q);
        return err_set(eb, ERR_NOT_FOUND, "no job '%s'", id);
    }
    a->spec_json = xstrdup(sq_col_text(q, 8));
    a->ranks = sqlite3_column_int(q, 5);
    sq_done(q);
    sq_fill_init(s, id, a);
    q = sq_stmt(s, Q_CKPT_LATEST);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        a->ckpt_step = (long)sqlite3_column_int64(q, 0);
        snprintf(a->ckpt_path, sizeof a->ckpt_path, "%s", sq_col_text(q, 1));
    }
    sq_done(q);
    return 0;
}

typedef struct attempt_start_args {
    const char *id, *pool_id;
    store_assignment *a;
} attempt_start_args;

/* Records attempt n+1 of job id on pool_id (the job row and an attempts row). */
static int attempt_open(store *s, const char *id, int attempt, const char *pool_id, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_SET_ATTEMPT);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, attempt);
    sq_bind_text(q, 3, pool_id);
    int rc = sq_step_done(s, q, "set attempt", eb);
    if (rc < 0)
        return rc;
    q = sq_stmt(s, Q_ATTEMPT_INSERT);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, attempt);
    sq_bind_text(q, 3, pool_id);
    sqlite3_bind_double(q, 4, store_now());
    rc = sq_step_done(s, q, "insert attempt", eb);
    return rc;
}

/* The latest point of each metric name of job id, as the jobs row keeps it. */
static char *latest_of(store *s, const char *id)
{
    json_t *latest = json_object();
    sqlite3_stmt *q = sq_stmt(s, Q_METRICS_LATEST);
    sq_bind_text(q, 1, id);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_object_set_new(latest, sq_col_text(q, 0),
                            json_pack("{s:f, s:I, s:I}", "value", sqlite3_column_double(q, 1),
                                      "step", (json_int_t)sqlite3_column_int64(q, 2), "seq",
                                      (json_int_t)sqlite3_column_int64(q, 3)));
    sq_done(q);
    char *text = json_dumps(latest, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(latest);
    return text;
}

/* A retry runs again from its checkpoint's step (from_step; -1 without a
 * checkpoint): the points earlier attempts logged after that step are
 * superseded by the ones this attempt will log, and are deleted, so that the
 * job's series has each step once (as TensorBoard's purge_step does). The
 * job's progress step and latest values go back with them. *dropped = how
 * many points went. Inside the transaction that opens the attempt. */
static int supersede_metrics(store *s, const char *id, int attempt, long from_step,
                             const job_row *r, int64_t *dropped, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_METRICS_SUPERSEDE);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, attempt);
    sqlite3_bind_int64(q, 3, from_step);
    int rc = sq_step_done(s, q, "drop superseded metrics", eb);
    *dropped = rc == 0 ? sqlite3_changes(s->db) : 0;
    if (rc < 0 || (*dropped == 0 && r->step <= from_step))
        return rc;
    char *latest = latest_of(s, id);
    q = sq_stmt(s, Q_JOB_REWIND);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int64(q, 2, r->step < from_step ? r->step : (from_step > 0 ? from_step : 0));
    sq_bind_text(q, 3, latest);
    sqlite3_bind_int64(q, 4, *dropped);
    rc = sq_step_done(s, q, "rewind the job's progress", eb);
    free(latest);
    return rc;
}

static int attempt_start_tx(store *s, void *arg, errbuf *eb)
{
    const attempt_start_args *x = arg;
    store_assignment *a = x->a;
    job_row r;
    int rc = sq_read_job(s, x->id, &r, eb);
    free(r.latest);
    r.latest = NULL;
    int attempt = r.attempt + 1;
    if (rc == 0)
        rc = sq_fill_assignment(s, x->id, attempt, a, eb);
    if (rc == 0 && attempt > 1)
        rc = supersede_metrics(s, x->id, attempt, a->ckpt_path[0] ? a->ckpt_step : -1, &r,
                               &a->superseded, eb);
    char from[80] = "", dropped[120] = "", text[360];
    if (a->ckpt_path[0])
        snprintf(from, sizeof from, ", resuming from the checkpoint at step %ld", a->ckpt_step);
    else if (attempt > 1)
        snprintf(from, sizeof from, ", from the start (no checkpoint)");
    if (a->superseded > 0)
        snprintf(dropped, sizeof dropped,
                 "; the %lld metric points earlier attempts logged after that are dropped",
                 (long long)a->superseded);
    snprintf(text, sizeof text, "attempt %d assigned to pool %s%s%s", attempt, x->pool_id, from,
             dropped);
    if (rc == 0)
        rc = sq_transition(s, x->id, JS_RUNNABLE, JS_STARTING, "SCHEDULED", text, NULL, eb);
    if (rc == 0)
        rc = attempt_open(s, x->id, attempt, x->pool_id, eb);
    return rc;
}

int store_attempt_start(store *s, const char *id, const char *pool_id, store_assignment *a,
                        errbuf *eb)
{
    memset(a, 0, sizeof *a);
    attempt_start_args x = {.id = id, .pool_id = pool_id, .a = a};
    int rc = sq_write(s, SQ_COUNT_COMMIT, attempt_start_tx, &x, eb);
    if (rc < 0) {
        free(a->spec_json);
        a->spec_json = NULL;
    }
    return rc;
}

int store_assignment_get(store *s, const char *id, int attempt, store_assignment *a, errbuf *eb)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_lock(&s->mu);
    job_row r;
    int rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    if (rc == 0 && (r.state != JS_STARTING || r.attempt != attempt))
        rc = err_set(eb, ERR_STATE, "job %s attempt %d is not starting", id, attempt);
    if (rc == 0)
        rc = sq_fill_assignment(s, id, attempt, a, eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sq_attempt_end(store *s, const char *id, int attempt, const char *reason, const char *message,
                   errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_END);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, attempt);
    sqlite3_bind_double(q, 3, store_now());
    sq_bind_text(q, 4, reason);
    sq_bind_text(q, 5, message);
    int rc = sq_step_done(s, q, "end attempt", eb);
    return rc;
}

/* Reasons a retry cannot fix: the job goes FAILED at once. */
static int sq_reason_final(const char *reason)
{
    static const char *const final[] = {"INVALID_SPEC", "INVALID_DATA", "UNSUPPORTED",
                                        "INVALID_INIT", "OUT_OF_MEMORY"};
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        if (strcmp(reason, final[i]) == 0)
            return 1;
    return 0;
}

/* Ends the active attempt of a job that failed or lost its pool, and moves
 * the job on: CANCELLED when it was being cancelled, RESTARTING when a retry
 * remains, FAILED otherwise. Inside a transaction. */
int sq_attempt_failed(store *s, const char *id, const job_row *r, const char *reason,
                      const char *message, errbuf *eb)
{
    int rc = sq_attempt_end(s, id, r->attempt, reason, message, eb);
    if (rc < 0)
        return rc;
    char text[600];
    if (r->state == JS_CANCELLING) {
        snprintf(text, sizeof text, "cancelled; attempt %d ended: %s: %.400s", r->attempt, reason,
                 message);
        return sq_transition(s, id, JS_BIT(JS_CANCELLING), JS_CANCELLED, "USER_CANCELLED", text,
                             NULL, eb);
    }
    unsigned from = JS_BIT(JS_STARTING) | JS_BIT(JS_RUNNING);
    if (sq_reason_final(reason))
        return sq_transition(s, id, from, JS_FAILED, reason, message, NULL, eb);
    int restarts_used = r->attempt - 1;
    if (restarts_used < r->max_restarts) {
        snprintf(text, sizeof text,
                 "attempt %d: %.400s; restart %d of %d from the latest checkpoint", r->attempt,
                 message, restarts_used + 1, r->max_restarts);
        return sq_transition(s, id, from, JS_RESTARTING, reason, text, NULL, eb);
    }
    snprintf(text, sizeof text,
             "attempt %d failed (%s: %.400s) and retry.max_restarts=%d is used up", r->attempt,
             reason, message, r->max_restarts);
    return sq_transition(s, id, from, JS_FAILED, "BACKOFF_LIMIT_EXCEEDED", text, NULL, eb);
}

typedef struct attempt_lost_args {
    const char *id;
    int attempt;
    const char *reason, *message;
} attempt_lost_args;

static int attempt_lost_tx(store *s, void *arg, errbuf *eb)
{
    const attempt_lost_args *x = arg;
    job_row r;
    int rc = sq_read_job(s, x->id, &r, eb);
    if (rc == 0 && ((JS_ON_POOL & JS_BIT(r.state)) == 0 || r.attempt != x->attempt))
        rc = err_set(eb, ERR_STATE, "job %s attempt %d is not active", x->id, x->attempt);
    if (rc == 0)
        rc = sq_attempt_failed(s, x->id, &r, x->reason, x->message, eb);
    free(r.latest);
    return rc;
}

int store_attempt_lost(store *s, const char *id, int attempt, const char *reason,
                       const char *message, errbuf *eb)
{
    attempt_lost_args x = {.id = id, .attempt = attempt, .reason = reason, .message = message};
    return sq_write(s, SQ_COUNT_COMMIT, attempt_lost_tx, &x, eb);
}

static void fill_active(sqlite3_stmt *q, void *elem, void *arg)
{
    (void)arg;
    store_active *a = elem;
    snprintf(a->job_id, sizeof a->job_id, "%s", sq_col_text(q, 0));
    a->attempt = sqlite3_column_int(q, 1);
    snprintf(a->pool_id, sizeof a->pool_id, "%s", sq_col_text(q, 2));
    a->state = (job_state)store_state_parse(sq_col_text(q, 3));
    a->ranks = sqlite3_column_int(q, 4);
}

int store_active_list(store *s, store_active **out, int *n, errbuf *eb)
{
    return sq_list(s, Q_ACTIVE, sizeof **out, fill_active, NULL, "read active jobs", (void **)out,
                   n, eb);
}
