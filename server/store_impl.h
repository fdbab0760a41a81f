/* store_impl.h - internals shared by the files of the SQLite store.
 *
 * The store is one module in several files: store.c (connection, schema,
 * migrations, statement cache), store_jobs.c (jobs and their states),
 * store_attempts.c (attempts), store_apply.c (applying pool messages exactly
 * once), store_query.c (metrics, logs, events, artifacts, checkpoints) and
 * store_flow.c (lineage, uploaded models). Only these files include
 * sqlite3.h; everything else sees store.h.
 * Every function here but sq_write expects the caller to hold s->mu.
 */
#ifndef KILN_STORE_IMPL_H
#define KILN_STORE_IMPL_H

#include "common/err.h"
#include "server/store.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_ROLLBACK_TO,
    Q_RELEASE,
    Q_USER_VERSION,
    Q_JOB_INSERT,
    Q_JOB_BY_KEY,
    Q_JOB_ROW,
    Q_JOB_STATE,
    Q_JOB_SET_STATE,
    Q_EVENT_INSERT,
    Q_JOB_LIST,
    Q_JOB_LIST_PRIO,
    Q_JOB_COUNT,
    Q_JOB_NOTE,
    Q_JOB_NOTE_ACTIVE,
    Q_JOB_COUNTS,
    Q_QUEUE,
    Q_OWNER_USAGE,
    Q_OWNER_QUEUED,
    Q_ATTEMPT_INSERT,
    Q_ATTEMPT_GET,
    Q_ATTEMPT_END,
    Q_ATTEMPT_SEQ,
    Q_ATTEMPTS_OF,
    Q_JOB_SET_ATTEMPT,
    Q_METRICS_SUPERSEDE,
    Q_METRICS_LATEST,
    Q_JOB_REWIND,
    Q_JOB_PROGRESS,
    Q_JOB_TOTAL,
    Q_JOB_RESULT,
    Q_METRIC_INSERT,
    Q_LOG_INSERT,
    Q_CKPT_INSERT,
    Q_CKPT_OLD,
    Q_CKPT_DELETE,
    Q_CKPT_LATEST,
    Q_ARTIFACT_INSERT,
    Q_ARTIFACT_GET,
    Q_ARTIFACT_LIST,
    Q_ACTIVE,
    Q_METRICS,
    Q_LOGS_AFTER,
    Q_LOGS_TAIL,
    Q_EVENTS,
    Q_EVENTS_RECENT,
    Q_EVENTS_ALL,
    Q_EVENTS_MAX,
    Q_CKPT_AFTER,
    Q_ATTEMPT_COUNTS,
    Q_DEL_METRICS,
    Q_DEL_LOGS,
    Q_DEL_EVENTS,
    Q_DEL_ATTEMPTS,
    Q_DEL_CKPTS,
    Q_DEL_ARTIFACTS,
    Q_DEL_DEPS,
    Q_DEL_JOB,
    Q_FLOW_INIT,
    Q_DEP_INSERT,
    Q_JOB_WAITING,
    Q_DEPS_OF,
    Q_JOB_LINEAGE,
    Q_JOB_INIT,
    Q_INIT_USERS,
    Q_BLOCKED,
    Q_JOB_WAIT,
    Q_JOB_UNBLOCK,
    Q_JOB_SPEC,
    Q_MODEL_INSERT,
    Q_MODEL_GET,
    Q_MODEL_LIST,
    Q_MODEL_USERS,
    Q_MODEL_DELETE,
    Q__COUNT
};

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmt[Q__COUNT];
    atomic_ullong changes; /* committed write transactions */
};

/* The state row of a job, read inside a transaction. */
typedef struct job_row {
    job_state state;
    int attempt;
    char pool_id[STORE_ID_MAX];
    int max_restarts;
    int64_t metric_seq, log_seq, step;
    char *latest; /* malloc'd JSON text */
    int keep_last;
} job_row;

/* Records SQLite's error for `what` in eb and returns ERR_INTERNAL (ERR_BUSY when locked). */
int sq_err(store *s, errbuf *eb, const char *what);
/* The cached prepared statement Q_* (prepared on first use); sq_done resets it. */
sqlite3_stmt *sq_stmt(store *s, int q);
void sq_done(sqlite3_stmt *q);
/* Binds a string (NULL binds SQL NULL); reads a column as a string ("" for NULL). */
void sq_bind_text(sqlite3_stmt *q, int i, const char *v);
const char *sq_col_text(sqlite3_stmt *q, int i);
/* ---- reading rows ---- */

/* Called by sq_each on each row of q: 0 to go on, 1 to stop there. */
typedef int (*sq_row_fn)(sqlite3_stmt *q, void *arg);
/* sq_each steps the bound statement q through its rows, calling row(q, arg)
 * on each, and resets q. Returns 0 (also when row stopped it), or ERR_IO
 * naming `what` when a step fails (the rows before were seen). */
int sq_each(store *s, sqlite3_stmt *q, sq_row_fn row, void *arg, const char *what, errbuf *eb);

/* A growable array of elements of `size` bytes: v (malloc'd) holds n of cap. */
typedef struct sq_rows {
    void *v;
    int n, cap;
    size_t size;
} sq_rows;
/* Fills elem (a new element, zeroed) from the current row of q. */
typedef void (*sq_fill_fn)(sqlite3_stmt *q, void *elem, void *arg);
/* sq_collect appends one element per row of q to rows, filled by
 * fill(q, elem, arg), growing rows->v as needed; as sq_each otherwise. */
int sq_collect(store *s, sqlite3_stmt *q, sq_rows *rows, sq_fill_fn fill, void *arg,
               const char *what, errbuf *eb);

/* sq_list runs the unbound cached statement Q_* `stmt` under s->mu and returns its rows
 * as a new array in *out (*n elements of `size` bytes, each filled by fill(q, elem,
 * NULL)). On a failed step it frees what was collected (each element with free_elem
 * first, when not NULL), sets *out NULL and *n 0, and returns ERR_IO naming `what`. The
 * caller must not hold s->mu. */
int sq_list(store *s, int stmt, size_t size, sq_fill_fn fill, void (*free_elem)(void *elem),
            const char *what, void **out, int *n, errbuf *eb);

/* The JSON value of the current row of q, or NULL to stop before it. */
typedef json_t *(*sq_json_fn)(sqlite3_stmt *q, void *arg);
/* sq_collect_json appends make(q, arg) of each row of q to the JSON array
 * arr; as sq_each otherwise. */
int sq_collect_json(store *s, sqlite3_stmt *q, json_t *arr, sq_json_fn make, void *arg,
                    const char *what, errbuf *eb);

/* Runs SQL text without results, prepared for this call: only for what runs
 * once per open (pragmas, migrations). */
int sq_exec(store *s, const char *sql, errbuf *eb);
/* Steps the cached statement q, which returns no rows (BEGIN, SAVEPOINT,
 * ...), and resets it. ERR_IO naming the SQL (eb may be NULL). */
int sq_run(store *s, int q, errbuf *eb);
/* Steps the bound statement q, which returns no rows (INSERT, UPDATE, DELETE),
 * and resets it: 0, or sq_err's code with SQLite's message naming what. */
int sq_step_done(store *s, sqlite3_stmt *q, const char *what, errbuf *eb);

/* The body of a write transaction: runs with s->mu held, inside BEGIN
 * IMMEDIATE. Returns < 0 (an ERR_* code, message in eb) to roll back, or a
 * result >= 0 to commit. */
typedef int (*sq_tx_fn)(store *s, void *arg, errbuf *eb);

/* How a committed write transaction counts in store_changes (what the event
 * streams wake on): always, only when it changed rows, or never. */
typedef enum { SQ_COUNT_COMMIT, SQ_COUNT_ROWS, SQ_COUNT_NONE } sq_count;

/* sq_write runs fn(s, arg, eb) as one write transaction: takes s->mu, BEGIN
 * IMMEDIATE, then COMMIT when fn returned >= 0, else ROLLBACK (also when the
 * COMMIT fails), and unlocks. Returns fn's result, or its error (or the
 * BEGIN's or COMMIT's) with the message in eb. The caller must not hold
 * s->mu. */
int sq_write(store *s, sq_count count, sq_tx_fn fn, void *arg, errbuf *eb);
/* How a column becomes a JSON member (sq_row_json). */
typedef enum {
    SQ_J_TEXT,      /* a string ("" for SQL NULL) */
    SQ_J_TEXT_NULL, /* a string, or null for SQL NULL */
    SQ_J_INT,       /* an integer */
    SQ_J_BOOL,      /* true for a non-zero integer */
    SQ_J_REAL,      /* a real */
    SQ_J_REAL_INT,  /* a REAL column as an integer (a count stored as a double) */
    SQ_J_TIME,      /* sq_col_time */
    SQ_J_JSON,      /* sq_col_json */
} sq_json_kind;

/* One member of a row's JSON object: its name, column and kind. */
typedef struct sq_json_col {
    const char *name;
    int col;
    sq_json_kind kind;
} sq_json_col;

/* The number of members of a static sq_json_col array. */
#define SQ_NCOLS(cols) ((int)(sizeof(cols) / sizeof((cols)[0])))

/* Adds to the JSON object o (NULL: a new one) the n members cols of the current row of
 * q, in that order; returns o. */
json_t *sq_row_json(json_t *o, sqlite3_stmt *q, const sq_json_col *cols, int n);

/* A REAL time column as ISO-8601 JSON text, or JSON null. */
json_t *sq_col_time(sqlite3_stmt *q, int i);
/* A TEXT column holding JSON, parsed (JSON null for SQL NULL or bad JSON). */
json_t *sq_col_json(sqlite3_stmt *q, int i);
/* The state row of job id (ERR_NOT_FOUND if none); free r->latest. */
int sq_read_job(store *s, const char *id, job_row *r, errbuf *eb);
/* Compare-and-set of a job's state from any state in from_mask to `to`,
 * with an event row; ERR_STATE (and *was) when the job is elsewhere. */
int sq_transition(store *s, const char *id, unsigned from_mask, job_state to, const char *reason,
                  const char *message, job_state *was, errbuf *eb);
/* One events row as a JSON object (an sq_json_fn; arg unused). */
json_t *sq_event_row(sqlite3_stmt *q, void *arg);
/* The attempts of a job as a JSON array (store_attempts.c). */
json_t *sq_attempts_json(store *s, const char *id);
/* The artifact list of a job as a JSON array. */
json_t *sq_artifacts_json(store *s, const char *id);
/* Ends an attempt with a reason; sq_attempt_failed also moves the job to
 * RESTARTING or to FAILED (final reasons, or no restarts left). */
int sq_attempt_end(store *s, const char *id, int attempt, const char *reason, const char *message,
                   errbuf *eb);
int sq_attempt_failed(store *s, const char *id, const job_row *r, const char *reason,
                      const char *message, errbuf *eb);

/* store_flow.c: after a job row is inserted, its deps and init columns; the
 * lineage fields of the job view ("init_from", "after", "init_sha256",
 * "waiting_for"); the init weights of an assignment. */
int sq_flow_insert(store *s, const char *id, const store_job_new *j, errbuf *eb);
void sq_lineage_json(store *s, const char *id, json_t *job);
void sq_fill_init(store *s, const char *id, store_assignment *a);
/* ERR_STATE naming a job that has not ended and starts from job id's files
 * (its artifact or checkpoint), else 0: such a job's files must stay. */
int sq_init_users(store *s, const char *id, errbuf *eb);
/* A new random id with a prefix ("j-", "m-"), as store.c makes job ids. */
void sq_new_id(const char *prefix, char id[STORE_ID_MAX]);

#endif
