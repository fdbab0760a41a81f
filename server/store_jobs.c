/* store_jobs.c - jobs in the store (see store.h): the state machine's names
 * and edges, creating, reading, listing, noting and deleting jobs, and the
 * compare-and-set every state change goes through. Part of the store
 * (store_impl.h).
 */
#include "common/clock.h"
#include "common/xalloc.h"
#include "store.h"
#include "store_impl.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

static const char *const state_names[JS__COUNT] = {
    "QUEUED", "STARTING", "RUNNING", "RESTARTING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED",
};

const char *store_state_name(job_state s)
{
    return (s >= 0 && s < JS__COUNT) ? state_names[s] : "?";
}

int store_state_parse(const char *name)
{
    for (int i = 0; i < JS__COUNT; i++)
        if (strcmp(state_names[i], name) == 0)
            return i;
    return -1;
}

int store_transition_legal(job_state from, job_state to)
{
    static const unsigned next[JS__COUNT] = {
        [JS_QUEUED] = JS_BIT(JS_STARTING) | JS_BIT(JS_CANCELLED),
        [JS_STARTING] =
            JS_BIT(JS_RUNNING) | JS_BIT(JS_RESTARTING) | JS_BIT(JS_FAILED) | JS_BIT(JS_CANCELLING),
        [JS_RUNNING] = JS_BIT(JS_SUCCEEDED) | JS_BIT(JS_FAILED) | JS_BIT(JS_RESTARTING) |
                       JS_BIT(JS_CANCELLING),
        [JS_RESTARTING] = JS_BIT(JS_STARTING) | JS_BIT(JS_FAILED) | JS_BIT(JS_CANCELLED),
        [JS_CANCELLING] = JS_BIT(JS_CANCELLED) | JS_BIT(JS_SUCCEEDED) | JS_BIT(JS_FAILED),
    };
    if (from < 0 || from >= JS__COUNT || to < 0 || to >= JS__COUNT)
        return 0;
    return (next[from] & JS_BIT(to)) != 0;
}

/* A job id sorts by creation time: "j" + 12 hex digits of milliseconds since
 * the epoch + 8 random hex digits. */
void sq_new_id(const char *prefix, char id[STORE_ID_MAX])
{
    unsigned long long ms = (unsigned long long)(clock_wall_s() * 1000.0);
    uuid_t u;
    uuid_generate_random(u);
    snprintf(id, STORE_ID_MAX, "%s%012llx%02x%02x%02x%02x", prefix, ms & 0xffffffffffffULL, u[0],
             u[1], u[2], u[3]);
}

static int sq_event(store *s, const char *id, double now, int from, job_state to,
                    const char *reason, const char *message, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_EVENT_INSERT);
    sq_bind_text(q, 1, id);
    sqlite3_bind_double(q, 2, now);
    sq_bind_text(q, 3, from >= 0 ? store_state_name((job_state)from) : NULL);
    sq_bind_text(q, 4, store_state_name(to));
    sq_bind_text(q, 5, reason);
    sq_bind_text(q, 6, message);
    int rc = sq_step_done(s, q, "insert event", eb);
    return rc;
}

/* The job an idempotency key names: 1 and its id when the body is the same,
 * ERR_EXISTS when it differs, 0 when the key is new. */
static int job_by_key(store *s, const char *key, const char *body_hash, char id[STORE_ID_MAX],
                      errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_BY_KEY);
    sq_bind_text(q, 1, key);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(id, STORE_ID_MAX, "%s", sq_col_text(q, 0));
        int same = body_hash != NULL && strcmp(sq_col_text(q, 1), body_hash) == 0;
        rc = same ? 1
                  : err_set(eb, ERR_EXISTS,
                            "idempotency key '%s' was used for job %s with a different body", key,
                            id);
    }
    sq_done(q);
    return rc;
}

/* ERR_TOO_LARGE when owner has max jobs waiting already; inside the transaction,
 * so that submissions committed together cannot pass the limit. */
static int owner_queue_full(store *s, const char *owner, int max, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_OWNER_QUEUED);
    sq_bind_text(q, 1, owner);
    int rc = 0;
    if (sqlite3_step(q) != SQLITE_ROW)
        rc = sq_err(s, eb, "count queued jobs");
    else if (sqlite3_column_int(q, 0) >= max)
        rc = err_set(eb, ERR_TOO_LARGE,
                     "owner '%s' has %d jobs waiting to run, the most one owner may have "
                     "(kiln-server --owner-max-queued %d): submit again when some have started",
                     owner, sqlite3_column_int(q, 0), max);
    sq_done(q);
    return rc;
}

typedef struct job_create_args {
    const store_job_new *j;
    char *id; /* STORE_ID_MAX bytes */
} job_create_args;

static int job_create_tx(store *s, void *arg, errbuf *eb)
{
    const store_job_new *j = ((job_create_args *)arg)->j;
    char *id = ((job_create_args *)arg)->id;
    const char *key = (j->idem_key != NULL && j->idem_key[0] != '\0') ? j->idem_key : NULL;
    int rc = key != NULL ? job_by_key(s, key, j->body_hash, id, eb) : 0;
    if (rc == 0 && j->owner_max_queued > 0)
        rc = owner_queue_full(s, j->owner != NULL ? j->owner : "", j->owner_max_queued, eb);
    if (rc != 0)
        return rc;
    sq_new_id("j", id);
    double now = store_now();
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_INSERT);
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, j->name);
    sq_bind_text(q, 3, j->type);
    sqlite3_bind_int(q, 4, j->priority);
    sqlite3_bind_int(q, 5, j->ranks);
    sqlite3_bind_int(q, 6, j->max_restarts);
    sqlite3_bind_int(q, 7, j->keep_last);
    sq_bind_text(q, 8, j->spec_json);
    sqlite3_bind_double(q, 9, j->params);
    sqlite3_bind_double(q, 10, j->mflops);
    sq_bind_text(q, 11, key);
    sq_bind_text(q, 12, key != NULL ? j->body_hash : NULL);
    sqlite3_bind_double(q, 13, now);
    sq_bind_text(q, 14, j->owner != NULL ? j->owner : "");
    rc = sq_step_done(s, q, "insert job", eb);
    char wait[160] = "waiting for a free pool";
    if (j->waiting_for != NULL)
        snprintf(wait, sizeof wait, "WAITING_FOR %s: starts when it has succeeded", j->waiting_for);
    if (rc == 0)
        rc = sq_event(s, id, now, -1, JS_QUEUED,
                      j->waiting_for != NULL ? "WAITING_FOR" : "SUBMITTED", wait, eb);
    if (rc == 0)
        rc = sq_flow_insert(s, id, j, eb);
    return rc;
}

int store_job_create(store *s, const store_job_new *j, char id[STORE_ID_MAX], errbuf *eb)
{
    job_create_args args = {.j = j, .id = id};
    return sq_write(s, SQ_COUNT_COMMIT, job_create_tx, &args, eb);
}

typedef struct job_batch_args {
    store_job_batch *b;
    int n;
} job_batch_args;

/* Each job in its own savepoint: one that fails is rolled back alone. */
static int job_batch_tx(store *s, void *arg, errbuf *eb)
{
    job_batch_args *a = arg;
    for (int i = 0; i < a->n; i++) {
        store_job_batch *x = &a->b[i];
        int rc = sq_run(s, Q_SAVEPOINT, eb);
        if (rc < 0)
            return rc;
        x->rc = job_create_tx(s, &(job_create_args){.j = x->job, .id = x->id}, &x->eb);
        rc = sq_run(s, x->rc < 0 ? Q_ROLLBACK_TO : Q_RELEASE, eb);
        if (rc == 0 && x->rc < 0)
            rc = sq_run(s, Q_RELEASE, eb); /* ROLLBACK TO keeps the savepoint open */
        if (rc < 0)
            return rc;
    }
    return 0;
}

int store_job_create_batch(store *s, store_job_batch *b, int n, errbuf *eb)
{
    for (int i = 0; i < n; i++) {
        b[i].rc = 0;
        b[i].id[0] = '\0';
        b[i].eb.msg[0] = '\0';
    }
    job_batch_args args = {.b = b, .n = n};
    int rc = sq_write(s, SQ_COUNT_COMMIT, job_batch_tx, &args, eb);
    if (rc < 0)
        for (int i = 0; i < n; i++) {
            b[i].rc = rc;
            b[i].eb = *eb;
        }
    return rc;
}

int sq_read_job(store *s, const char *id, job_row *r, errbuf *eb)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_STATE);
    sq_bind_text(q, 1, id);
    int step = sqlite3_step(q);
    int rc = 0;
    if (step == SQLITE_ROW) {
        r->state = (job_state)store_state_parse(sq_col_text(q, 0));
        r->attempt = sqlite3_column_int(q, 1);
        snprintf(r->pool_id, sizeof r->pool_id, "%s", sq_col_text(q, 2));
        r->max_restarts = sqlite3_column_int(q, 3);
        r->metric_seq = sqlite3_column_int64(q, 4);
        r->log_seq = sqlite3_column_int64(q, 5);
        r->step = sqlite3_column_int64(q, 6);
        r->latest = xstrdup(sq_col_text(q, 7));
        r->keep_last = sqlite3_column_int(q, 8);
    } else if (step == SQLITE_DONE) {
        rc = err_set(eb, ERR_NOT_FOUND, "no job '%s'", id);
    } else {
        rc = sq_err(s, eb, "read job");
    }
    sq_done(q);
    return rc;
}

int store_job_state(store *s, const char *id, job_state *stp, int *attempt, char *pool_id,
                    errbuf *eb)
{
    job_row r;
    pthread_mutex_lock(&s->mu);
    int rc = sq_read_job(s, id, &r, eb);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        *stp = r.state;
        if (attempt != NULL)
            *attempt = r.attempt;
        if (pool_id != NULL)
            snprintf(pool_id, STORE_ID_MAX, "%s", r.pool_id);
    }
    free(r.latest);
    return rc;
}

/* The compare-and-set at the heart of the state machine; inside a transaction. */
int sq_transition(store *s, const char *id, unsigned from_mask, job_state to, const char *reason,
                  const char *message, job_state *was, errbuf *eb)
{
    job_row r;
    int rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    if (rc < 0)
        return rc;
    if (was != NULL)
        *was = r.state;
    if ((from_mask & JS_BIT(r.state)) == 0)
        return err_set(eb, ERR_STATE, "job %s is %s; cannot move it to %s", id,
                       store_state_name(r.state), store_state_name(to));
    assert(store_transition_legal(r.state, to));
    double now = store_now();
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_SET_STATE);
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, store_state_name(to));
    sq_bind_text(q, 3, reason);
    sq_bind_text(q, 4, message);
    sqlite3_bind_double(q, 5, now);
    sq_bind_text(q, 6, store_state_name(r.state));
    rc = sq_step_done(s, q, "update state", eb);
    if (rc == 0 && sqlite3_changes(s->db) != 1)
        rc = err_set(eb, ERR_STATE, "job %s changed state concurrently", id);
    if (rc == 0)
        rc = sq_event(s, id, now, r.state, to, reason, message, eb);
    return rc;
}

typedef struct transition_args {
    const char *id;
    unsigned from_mask;
    job_state to;
    const char *reason, *message;
    job_state *was;
} transition_args;

static int transition_tx(store *s, void *arg, errbuf *eb)
{
    const transition_args *t = arg;
    return sq_transition(s, t->id, t->from_mask, t->to, t->reason, t->message, t->was, eb);
}

int store_transition(store *s, const char *id, unsigned from_mask, job_state to, const char *reason,
                     const char *message, job_state *was, errbuf *eb)
{
    transition_args t = {.id = id,
                         .from_mask = from_mask,
                         .to = to,
                         .reason = reason,
                         .message = message,
                         .was = was};
    return sq_write(s, SQ_COUNT_COMMIT, transition_tx, &t, eb);
}

static json_t *sq_progress_json(int64_t step, int64_t total)
{
    json_t *p = json_object();
    json_object_set_new(p, "step", json_integer(step));
    json_object_set_new(p, "total_steps", json_integer(total));
    double frac = total > 0 ? (double)step / (double)total : 0.0;
    json_object_set_new(p, "fraction", json_real(frac > 1.0 ? 1.0 : frac));
    return p;
}

/* The job view of the current Q_JOB_ROW row (without attempts, artifacts,
 * events and lineage). */
static json_t *job_view(sqlite3_stmt *q)
{
    static const sq_json_col head[] = {
        {"id", 1, SQ_J_TEXT},
        {"name", 2, SQ_J_TEXT},
        {"type", 3, SQ_J_TEXT},
        {"priority", 4, SQ_J_INT},
        {"ranks", 5, SQ_J_INT},
        {"max_restarts", 6, SQ_J_INT},
        {"spec", 8, SQ_J_JSON},
        {"params", 9, SQ_J_REAL_INT},
        {"mflops", 10, SQ_J_REAL},
        {"state", 11, SQ_J_TEXT},
        {"reason", 12, SQ_J_TEXT},
        {"message", 13, SQ_J_TEXT},
        {"owner", 27, SQ_J_TEXT},
        {"created_at", 14, SQ_J_TIME},
        {"updated_at", 15, SQ_J_TIME},
        {"started_at", 16, SQ_J_TIME},
        {"finished_at", 17, SQ_J_TIME},
        {"attempt", 18, SQ_J_INT},
        {"pool_id", 19, SQ_J_TEXT_NULL},
        {"metric_count", 20, SQ_J_INT},
        {"log_count", 21, SQ_J_INT},
        {"metrics_dropped", 28, SQ_J_INT},
    };
    static const sq_json_col tail[] = {
        {"latest_metrics", 24, SQ_J_JSON},
        {"result", 25, SQ_J_JSON},
        {"idempotency_key", 26, SQ_J_TEXT_NULL},
    };
    json_t *o = sq_row_json(NULL, q, head, SQ_NCOLS(head));
    json_object_set_new(o, "progress",
                        sq_progress_json(sqlite3_column_int64(q, 22), sqlite3_column_int64(q, 23)));
    return sq_row_json(o, q, tail, SQ_NCOLS(tail));
}

int store_job_get(store *s, const char *id, json_t **out, errbuf *eb)
{
    *out = NULL;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_ROW);
    sq_bind_text(q, 1, id);
    int step = sqlite3_step(q);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? err_set(eb, ERR_NOT_FOUND, "no job '%s'", id)
                                 : sq_err(s, eb, "read job");
        sq_done(q);
        goto out;
    }
    json_t *o = job_view(q);
    sq_done(q);
    json_object_set_new(o, "attempts", sq_attempts_json(s, id));
    json_object_set_new(o, "artifacts", sq_artifacts_json(s, id));
    json_t *ev = json_array();
    q = sq_stmt(s, Q_EVENTS_RECENT);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, 50);
    (void)sq_collect_json(s, q, ev, sq_event_row, NULL, "read events", NULL);
    json_object_set_new(o, "events", ev);
    sq_lineage_json(s, id, o);
    *out = o;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Paging through a job list: the rows taken and the key of the last. */
typedef struct list_page {
    int n, page_size;
    int64_t last, *next;
} list_page;

/* One job summary of a Q_JOB_LIST(_PRIO) row (an sq_json_fn); stops at the
 * row past the page, setting the cursor. */
static json_t *job_summary(sqlite3_stmt *q, void *arg)
{
    list_page *pg = arg;
    if (pg->n == pg->page_size) {
        *pg->next = pg->last;
        return NULL;
    }
    pg->n++;
    pg->last = sqlite3_column_int64(q, 0);
    static const sq_json_col head[] = {
        {"id", 1, SQ_J_TEXT},          {"name", 2, SQ_J_TEXT},
        {"type", 3, SQ_J_TEXT},        {"priority", 4, SQ_J_INT},
        {"ranks", 5, SQ_J_INT},        {"state", 6, SQ_J_TEXT},
        {"reason", 7, SQ_J_TEXT},      {"message", 8, SQ_J_TEXT},
        {"created_at", 9, SQ_J_TIME},  {"updated_at", 10, SQ_J_TIME},
        {"started_at", 11, SQ_J_TIME}, {"finished_at", 12, SQ_J_TIME},
        {"attempt", 13, SQ_J_INT},     {"pool_id", 14, SQ_J_TEXT_NULL},
    };
    static const sq_json_col tail[] = {
        {"params", 17, SQ_J_REAL_INT},
        {"mflops", 18, SQ_J_REAL},
        {"latest_metrics", 19, SQ_J_JSON},
        {"owner", 20, SQ_J_TEXT},
    };
    json_t *o = sq_row_json(NULL, q, head, SQ_NCOLS(head));
    json_object_set_new(o, "progress",
                        sq_progress_json(sqlite3_column_int64(q, 15), sqlite3_column_int64(q, 16)));
    sq_row_json(o, q, tail, SQ_NCOLS(tail));
    return o;
}

int store_job_list(store *s, const store_list_query *lq, json_t **items, int64_t *next, errbuf *eb)
{
    *items = NULL;
    *next = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, lq->by_priority ? Q_JOB_LIST_PRIO : Q_JOB_LIST);
    sq_bind_text(q, 1, lq->state >= 0 ? store_state_name((job_state)lq->state) : NULL);
    sq_bind_text(q, 2, lq->type);
    sq_bind_text(q, 3, lq->q != NULL && lq->q[0] != '\0' ? lq->q : NULL);
    sqlite3_bind_int64(q, 4, lq->before > 0 ? lq->before : INT64_MAX);
    sqlite3_bind_int(q, 5, lq->page_size + 1); /* one more: is there a next page? */
    sq_bind_text(q, 6, lq->owner);
    json_t *a = json_array();
    list_page pg = {.page_size = lq->page_size, .next = next};
    int rc = sq_collect_json(s, q, a, job_summary, &pg, "list jobs", eb);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        json_decref(a);
    else
        *items = a;
    return rc;
}

static int count_state(sqlite3_stmt *q, void *arg)
{
    int64_t *counts = arg;
    int k = store_state_parse(sq_col_text(q, 0));
    if (k >= 0)
        counts[k] = sqlite3_column_int64(q, 1);
    return 0;
}

int store_job_counts(store *s, int64_t counts[JS__COUNT], errbuf *eb)
{
    memset(counts, 0, sizeof(int64_t) * JS__COUNT);
    pthread_mutex_lock(&s->mu);
    int rc = sq_each(s, sq_stmt(s, Q_JOB_COUNTS), count_state, counts, "count jobs by state", eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_count(store *s, int64_t *n, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_COUNT);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        *n = sqlite3_column_int64(q, 0);
    else
        rc = sq_err(s, eb, "count jobs");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

typedef struct note_args {
    int q; /* Q_JOB_NOTE or Q_JOB_NOTE_ACTIVE */
    const char *id, *message;
} note_args;

static int note_tx(store *s, void *arg, errbuf *eb)
{
    const note_args *n = arg;
    sqlite3_stmt *q = sq_stmt(s, n->q);
    sq_bind_text(q, 1, n->id);
    sq_bind_text(q, 2, n->message);
    sqlite3_bind_double(q, 3, store_now());
    int rc = sq_step_done(s, q, "note job", eb);
    return rc;
}

/* A note is no change the event streams wake for (it counts nowhere). */
int store_job_note(store *s, const char *id, const char *message, errbuf *eb)
{
    note_args n = {.q = Q_JOB_NOTE, .id = id, .message = message};
    return sq_write(s, SQ_COUNT_NONE, note_tx, &n, eb);
}

typedef struct notes_args {
    const store_note *notes;
    int n;
} notes_args;

static int notes_tx(store *s, void *arg, errbuf *eb)
{
    const notes_args *a = arg;
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        note_args one = {.q = Q_JOB_NOTE, .id = a->notes[i].id, .message = a->notes[i].message};
        rc = note_tx(s, &one, eb);
    }
    return rc;
}

int store_job_notes(store *s, const store_note *notes, int n, errbuf *eb)
{
    if (n <= 0)
        return 0;
    notes_args a = {.notes = notes, .n = n};
    return sq_write(s, SQ_COUNT_NONE, notes_tx, &a, eb);
}

int store_job_note_active(store *s, const char *id, const char *message, errbuf *eb)
{
    note_args n = {.q = Q_JOB_NOTE_ACTIVE, .id = id, .message = message};
    return sq_write(s, SQ_COUNT_NONE, note_tx, &n, eb);
}

/* The rows of a job, children first: one cached DELETE per table. */
static const int job_delete_q[] = {
    Q_DEL_METRICS, Q_DEL_LOGS,      Q_DEL_EVENTS, Q_DEL_ATTEMPTS,
    Q_DEL_CKPTS,   Q_DEL_ARTIFACTS, Q_DEL_DEPS,   Q_DEL_JOB,
};

/* arg: the job id (const char **). */
static int job_delete_tx(store *s, void *arg, errbuf *eb)
{
    const char *id = *(const char **)arg;
    job_row r;
    int rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    if (rc == 0 && (JS_TERMINAL & JS_BIT(r.state)) == 0)
        rc = err_set(eb, ERR_STATE, "job %s is %s; only a finished job can be deleted", id,
                     store_state_name(r.state));
    if (rc == 0)
        rc = sq_init_users(s, id, eb);
    for (size_t i = 0; rc == 0 && i < sizeof job_delete_q / sizeof job_delete_q[0]; i++) {
        sqlite3_stmt *q = sq_stmt(s, job_delete_q[i]);
        sq_bind_text(q, 1, id);
        rc = sq_step_done(s, q, "delete job rows", eb);
    }
    return rc;
}

int store_job_delete(store *s, const char *id, errbuf *eb)
{
    return sq_write(s, SQ_COUNT_COMMIT, job_delete_tx, &id, eb);
}

static void fill_queued(sqlite3_stmt *q, void *elem, void *arg)
{
    (void)arg;
    store_queued *j = elem;
    snprintf(j->id, sizeof j->id, "%s", sq_col_text(q, 0));
    j->priority = sqlite3_column_int(q, 1);
    j->ranks = sqlite3_column_int(q, 2);
    j->order = sqlite3_column_int64(q, 3);
    snprintf(j->owner, sizeof j->owner, "%s", sq_col_text(q, 4));
}

static void fill_usage(sqlite3_stmt *q, void *elem, void *arg)
{
    (void)arg;
    store_owner_usage *u = elem;
    snprintf(u->owner, sizeof u->owner, "%s", sq_col_text(q, 0));
    u->running = sqlite3_column_int(q, 1);
    u->ranks = sqlite3_column_int(q, 2);
}

int store_owner_usage_list(store *s, store_owner_usage **out, int *n, errbuf *eb)
{
    return sq_list(s, Q_OWNER_USAGE, sizeof **out, fill_usage, NULL, "read owners' use",
                   (void **)out, n, eb);
}

int store_queue(store *s, store_queued **out, int *n, errbuf *eb)
{
    return sq_list(s, Q_QUEUE, sizeof **out, fill_queued, NULL, "read queue", (void **)out, n, eb);
}
