/* store.c - the SQLite job store (see store.h): opening, the schema and its
 * migrations, and the statement cache with the helpers every store_*.c file
 * uses. Jobs are in store_jobs.c, attempts in store_attempts.c, applying
 * pool messages in store_apply.c, reads of a job's rows in store_query.c,
 * lineage and models in store_flow.c.
 *
 * One connection, one mutex: every public function takes the lock for its
 * whole transaction. Every statement is prepared once, on first use, and
 * cached in s->stmt[] (reset after each use); only the pragmas and
 * migrations of store_open run as SQL text. Every write runs through
 * sq_write, in a BEGIN IMMEDIATE transaction, so that a compare-and-set is
 * never interleaved; reads go through sq_each / sq_collect.
 */
#include "store.h"

#include "common/check.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "store_impl.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- schema and migrations ------------------------------------------------ */

/* migrations[i] takes user_version i to i+1. Append only; never edit one
 * that has shipped. */
static const char *const migrations[] = {
    "CREATE TABLE jobs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " priority INTEGER NOT NULL,"
    " ranks INTEGER NOT NULL,"
    " max_restarts INTEGER NOT NULL,"
    " keep_last INTEGER NOT NULL,"
    " spec TEXT NOT NULL,"
    " params REAL NOT NULL,"
    " mflops REAL NOT NULL,"
    " state TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " message TEXT NOT NULL,"
    " idem_key TEXT UNIQUE,"
    " body_hash TEXT,"
    " created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL,"
    " started_at REAL,"
    " finished_at REAL,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " pool_id TEXT,"
    " metric_seq INTEGER NOT NULL DEFAULT 0,"
    " log_seq INTEGER NOT NULL DEFAULT 0,"
    " step INTEGER NOT NULL DEFAULT 0,"
    " total_steps INTEGER NOT NULL DEFAULT 0,"
    " latest TEXT NOT NULL DEFAULT '{}',"
    " result TEXT);"
    "CREATE INDEX jobs_runnable ON jobs(state, priority DESC, seq);"
    "CREATE TABLE attempts("
    " job_id TEXT NOT NULL, attempt INTEGER NOT NULL, pool_id TEXT NOT NULL,"
    " active INTEGER NOT NULL, started_at REAL NOT NULL, ended_at REAL,"
    " reason TEXT, message TEXT, last_seq INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(job_id, attempt)) WITHOUT ROWID;"
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, time REAL NOT NULL,"
    " from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX events_job ON events(job_id, seq);"
    "CREATE TABLE metrics("
    " job_id TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " name TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL, value REAL, time REAL NOT NULL,"
    " PRIMARY KEY(job_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE logs("
    " job_id TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " time REAL NOT NULL, level TEXT NOT NULL, text TEXT NOT NULL,"
    " PRIMARY KEY(job_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints("
    " job_id TEXT NOT NULL, step INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " path TEXT NOT NULL, size INTEGER NOT NULL, time REAL NOT NULL,"
    " PRIMARY KEY(job_id, step)) WITHOUT ROWID;"
    "CREATE TABLE artifacts("
    " job_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,"
    " time REAL NOT NULL, PRIMARY KEY(job_id, name)) WITHOUT ROWID;",
    /* 2: lineage (init_from resolved, after), uploaded models */
    "ALTER TABLE jobs ADD COLUMN init_file TEXT;"
    "ALTER TABLE jobs ADD COLUMN init_sha256 TEXT;"
    "ALTER TABLE jobs ADD COLUMN init_size INTEGER;"
    "ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE job_deps("
    " job_id TEXT NOT NULL, after_id TEXT NOT NULL, PRIMARY KEY(job_id, after_id)) WITHOUT ROWID;"
    "CREATE INDEX job_deps_after ON job_deps(after_id);"
    "CREATE TABLE models("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    " path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, model TEXT,"
    " tensors INTEGER NOT NULL, params INTEGER NOT NULL, created_at REAL NOT NULL);",
    /* 3: ownership: the name of the token that submitted a job ("" without tokens) */
    "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX jobs_owner ON jobs(owner, seq);",
    /* 4: the jobs waiting for others (lineage_poll, every scheduling pass),
     * found without reading the whole queue */
    "CREATE INDEX jobs_blocked ON jobs(seq) WHERE blocked=1;",
    /* 5: metric points a retry superseded (store_attempt_start): with them, the
     * points kept account for every metric seq the job was given */
    "ALTER TABLE jobs ADD COLUMN metrics_dropped INTEGER NOT NULL DEFAULT 0;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- statement cache ------------------------------------------------------- */

/* The columns of a models row, as model_row (store_flow.c) reads them. */
#define MODEL_COLS "id,name,size,sha256,model,tensors,params,created_at,path"

static const char *const sql_text[Q__COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT msg",
    [Q_ROLLBACK_TO] = "ROLLBACK TO msg",
    [Q_RELEASE] = "RELEASE msg",
    [Q_USER_VERSION] = "PRAGMA user_version",
    [Q_JOB_INSERT] = "INSERT INTO jobs(id,name,type,priority,ranks,max_restarts,keep_last,spec,"
                     "params,mflops,state,reason,message,idem_key,body_hash,created_at,updated_at,"
                     "owner) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'QUEUED','SUBMITTED',"
                     "'waiting for a free pool',?11,?12,?13,?13,?14)",
    [Q_JOB_BY_KEY] = "SELECT id, body_hash FROM jobs WHERE idem_key=?1",
    [Q_JOB_ROW] = "SELECT seq,id,name,type,priority,ranks,max_restarts,keep_last,spec,params,"
                  "mflops,state,reason,message,created_at,updated_at,started_at,finished_at,"
                  "attempt,pool_id,metric_seq,log_seq,step,total_steps,latest,result,idem_key,"
                  "owner,metrics_dropped FROM jobs WHERE id=?1",
    [Q_JOB_STATE] = "SELECT state, attempt, pool_id, max_restarts, metric_seq, log_seq, step,"
                    " latest, keep_last FROM jobs WHERE id=?1",
    [Q_JOB_SET_STATE] = "UPDATE jobs SET state=?2, reason=?3, message=?4, updated_at=?5,"
                        " started_at=CASE WHEN ?2='RUNNING' AND started_at IS NULL THEN ?5"
                        " ELSE started_at END,"
                        " finished_at=CASE WHEN ?2 IN ('SUCCEEDED','FAILED','CANCELLED')"
                        " THEN ?5 ELSE finished_at END,"
                        " pool_id=CASE WHEN ?2 IN ('STARTING','RUNNING','CANCELLING')"
                        " THEN pool_id ELSE NULL END"
                        " WHERE id=?1 AND state=?6",
    [Q_EVENT_INSERT] = "INSERT INTO events(job_id,time,from_state,to_state,reason,message)"
                       " VALUES(?1,?2,?3,?4,?5,?6)",
    [Q_JOB_LIST] = "SELECT seq,id,name,type,priority,ranks,state,reason,message,created_at,"
                   "updated_at,started_at,finished_at,attempt,pool_id,step,total_steps,params,"
                   "mflops,latest,owner FROM jobs"
                   " WHERE (?1 IS NULL OR state=?1) AND (?2 IS NULL OR type=?2)"
                   " AND (?3 IS NULL OR instr(name,?3)>0 OR instr(id,?3)>0)"
                   " AND (?6 IS NULL OR owner=?6)"
                   " AND seq<?4 ORDER BY seq DESC LIMIT ?5",
    [Q_JOB_LIST_PRIO] = "SELECT (priority<<48)|seq,id,name,type,priority,ranks,state,reason,"
                        "message,created_at,updated_at,started_at,finished_at,attempt,pool_id,"
                        "step,total_steps,params,mflops,latest,owner FROM jobs"
                        " WHERE (?1 IS NULL OR state=?1) AND (?2 IS NULL OR type=?2)"
                        " AND (?3 IS NULL OR instr(name,?3)>0 OR instr(id,?3)>0)"
                        " AND (?6 IS NULL OR owner=?6)"
                        " AND ((priority<<48)|seq)<?4 ORDER BY priority DESC, seq DESC LIMIT ?5",
    [Q_JOB_COUNT] = "SELECT count(*) FROM jobs",
    [Q_JOB_COUNTS] = "SELECT state, count(*) FROM jobs GROUP BY state",
    [Q_JOB_NOTE] = "UPDATE jobs SET message=?2, updated_at=?3 WHERE id=?1 AND state='QUEUED'"
                   " AND message<>?2",
    [Q_JOB_NOTE_ACTIVE] = "UPDATE jobs SET message=?2, updated_at=?3 WHERE id=?1 AND state IN"
                          " ('STARTING','RUNNING','CANCELLING') AND message<>?2",
    [Q_QUEUE] =
        "SELECT id,priority,ranks,seq,owner FROM jobs WHERE state IN ('QUEUED','RESTARTING')"
        " AND blocked=0 ORDER BY priority DESC, seq ASC",
    [Q_OWNER_USAGE] = "SELECT owner, count(*), sum(ranks) FROM jobs"
                      " WHERE state IN ('STARTING','RUNNING','CANCELLING') GROUP BY owner",
    [Q_OWNER_QUEUED] =
        "SELECT count(*) FROM jobs WHERE owner=?1 AND state IN ('QUEUED','RESTARTING')",
    [Q_ATTEMPT_INSERT] = "INSERT INTO attempts(job_id,attempt,pool_id,active,started_at)"
                         " VALUES(?1,?2,?3,1,?4)",
    [Q_ATTEMPT_GET] = "SELECT active,last_seq,pool_id FROM attempts WHERE job_id=?1 AND attempt=?2",
    [Q_ATTEMPT_END] = "UPDATE attempts SET active=0, ended_at=?3, reason=?4, message=?5"
                      " WHERE job_id=?1 AND attempt=?2 AND active=1",
    [Q_ATTEMPT_SEQ] = "UPDATE attempts SET last_seq=?3 WHERE job_id=?1 AND attempt=?2",
    [Q_ATTEMPTS_OF] = "SELECT attempt,pool_id,active,started_at,ended_at,reason,message,last_seq"
                      " FROM attempts WHERE job_id=?1 ORDER BY attempt",
    [Q_JOB_SET_ATTEMPT] = "UPDATE jobs SET attempt=?2, pool_id=?3 WHERE id=?1",
    [Q_METRICS_SUPERSEDE] = "DELETE FROM metrics WHERE job_id=?1 AND attempt<?2 AND step>?3",
    /* SQLite takes the bare columns of a max() aggregate from the row holding the maximum */
    [Q_METRICS_LATEST] =
        "SELECT name,value,step,max(seq) FROM metrics WHERE job_id=?1 GROUP BY name",
    [Q_JOB_REWIND] = "UPDATE jobs SET step=?2, latest=?3, metrics_dropped=metrics_dropped+?4"
                     " WHERE id=?1",
    [Q_JOB_PROGRESS] = "UPDATE jobs SET metric_seq=?2, log_seq=?3, step=?4, latest=?5,"
                       " updated_at=?6 WHERE id=?1",
    [Q_JOB_TOTAL] = "UPDATE jobs SET total_steps=?2 WHERE id=?1",
    [Q_JOB_RESULT] = "UPDATE jobs SET result=?2 WHERE id=?1",
    [Q_METRIC_INSERT] = "INSERT INTO metrics(job_id,seq,attempt,name,step,value,time,epoch)"
                        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [Q_LOG_INSERT] =
        "INSERT INTO logs(job_id,seq,attempt,time,level,text) VALUES(?1,?2,?3,?4,?5,?6)",
    [Q_CKPT_INSERT] = "INSERT OR REPLACE INTO checkpoints(job_id,step,attempt,path,size,time)"
                      " VALUES(?1,?2,?3,?4,?5,?6)",
    [Q_CKPT_OLD] = "SELECT step,path FROM checkpoints WHERE job_id=?1 ORDER BY step DESC"
                   " LIMIT -1 OFFSET ?2",
    [Q_CKPT_DELETE] = "DELETE FROM checkpoints WHERE job_id=?1 AND step=?2",
    [Q_CKPT_LATEST] =
        "SELECT step,path FROM checkpoints WHERE job_id=?1 ORDER BY step DESC LIMIT 1",
    [Q_ARTIFACT_INSERT] = "INSERT OR REPLACE INTO artifacts(job_id,name,path,size,time)"
                          " VALUES(?1,?2,?3,?4,?5)",
    [Q_ARTIFACT_GET] = "SELECT path,size FROM artifacts WHERE job_id=?1 AND name=?2",
    [Q_ARTIFACT_LIST] = "SELECT name,size FROM artifacts WHERE job_id=?1 ORDER BY name",
    [Q_ACTIVE] = "SELECT id,attempt,pool_id,state,ranks FROM jobs"
                 " WHERE state IN ('STARTING','RUNNING','CANCELLING') ORDER BY seq",
    [Q_METRICS] = "SELECT seq,name,step,value,time,epoch FROM metrics WHERE job_id=?1 AND seq>?2"
                  " AND (?3 IS NULL OR instr(?3, ','||name||',')>0) ORDER BY seq LIMIT ?4",
    [Q_LOGS_AFTER] = "SELECT seq,attempt,time,level,text FROM logs WHERE job_id=?1 AND seq>?2"
                     " ORDER BY seq LIMIT ?3",
    [Q_LOGS_TAIL] = "SELECT * FROM (SELECT seq,attempt,time,level,text FROM logs WHERE job_id=?1"
                    " ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
    [Q_EVENTS] = "SELECT seq,time,from_state,to_state,reason,message FROM events"
                 " WHERE job_id=?1 AND seq>?2 ORDER BY seq LIMIT ?3",
    [Q_EVENTS_RECENT] = "SELECT * FROM (SELECT seq,time,from_state,to_state,reason,message"
                        " FROM events WHERE job_id=?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
    [Q_EVENTS_ALL] = "SELECT seq,time,from_state,to_state,reason,message,job_id FROM events"
                     " WHERE seq>?1 ORDER BY seq LIMIT ?2",
    [Q_EVENTS_MAX] = "SELECT coalesce(max(seq),0) FROM events",
    [Q_CKPT_AFTER] = "SELECT step,attempt,size,time FROM checkpoints WHERE job_id=?1 AND step>?2"
                     " ORDER BY step LIMIT ?3",
    [Q_ATTEMPT_COUNTS] = "SELECT CASE WHEN active THEN 'ACTIVE' ELSE coalesce(reason,'?') END,"
                         " count(*) FROM attempts GROUP BY 1 ORDER BY 1",
    [Q_DEL_METRICS] = "DELETE FROM metrics WHERE job_id=?1",
    [Q_DEL_LOGS] = "DELETE FROM logs WHERE job_id=?1",
    [Q_DEL_EVENTS] = "DELETE FROM events WHERE job_id=?1",
    [Q_DEL_ATTEMPTS] = "DELETE FROM attempts WHERE job_id=?1",
    [Q_DEL_CKPTS] = "DELETE FROM checkpoints WHERE job_id=?1",
    [Q_DEL_ARTIFACTS] = "DELETE FROM artifacts WHERE job_id=?1",
    [Q_DEL_DEPS] = "DELETE FROM job_deps WHERE job_id=?1",
    [Q_DEL_JOB] = "DELETE FROM jobs WHERE id=?1",
    /* lineage and uploaded models (store_flow.c) */
    [Q_FLOW_INIT] = "UPDATE jobs SET init_file=?2, init_sha256=?3, init_size=?4, blocked=?5"
                    " WHERE id=?1",
    [Q_DEP_INSERT] = "INSERT OR IGNORE INTO job_deps(job_id, after_id) VALUES(?1,?2)",
    [Q_JOB_WAITING] = "UPDATE jobs SET reason='WAITING_FOR', message=?2 WHERE id=?1",
    [Q_DEPS_OF] = "SELECT d.after_id, j.state FROM job_deps d LEFT JOIN jobs j"
                  " ON j.id = d.after_id WHERE d.job_id=?1 ORDER BY d.after_id",
    [Q_JOB_LINEAGE] = "SELECT init_sha256, blocked FROM jobs WHERE id=?1",
    [Q_JOB_INIT] = "SELECT init_file, init_sha256, init_size FROM jobs WHERE id=?1",
    [Q_INIT_USERS] = "SELECT id FROM jobs WHERE substr(init_file, 1, length(?1)) = ?1"
                     " AND state NOT IN ('SUCCEEDED','FAILED','CANCELLED') LIMIT 1",
    /* INDEXED BY: without it SQLite reads every queued job through jobs_runnable
     * (state=?) to find the few blocked ones, on every broker wake-up (a fifth of
     * the server's CPU under a burst of POSTs); with it, only blocked rows. */
    [Q_BLOCKED] = "SELECT id, spec FROM jobs INDEXED BY jobs_blocked WHERE state='QUEUED'"
                  " AND blocked=1 ORDER BY seq",
    [Q_JOB_WAIT] = "UPDATE jobs SET reason='WAITING_FOR', message=?2, updated_at=?3 WHERE id=?1"
                   " AND state='QUEUED' AND blocked=1 AND (reason<>'WAITING_FOR' OR message<>?2)",
    [Q_JOB_UNBLOCK] =
        "UPDATE jobs SET blocked=0, reason='SUBMITTED', message='waiting for a free pool',"
        " init_file=?2, init_sha256=?3, init_size=?4, updated_at=?5,"
        " spec=coalesce(?6, spec), params=CASE WHEN ?6 IS NULL THEN params ELSE ?7 END,"
        " mflops=CASE WHEN ?6 IS NULL THEN mflops ELSE ?8 END"
        " WHERE id=?1 AND state='QUEUED' AND blocked=1",
    [Q_JOB_SPEC] = "SELECT spec FROM jobs WHERE id=?1",
    [Q_MODEL_INSERT] = "INSERT INTO models(id,name,path,size,sha256,model,tensors,params,"
                       "created_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [Q_MODEL_GET] = "SELECT " MODEL_COLS " FROM models WHERE id=?1",
    [Q_MODEL_LIST] = "SELECT " MODEL_COLS " FROM models ORDER BY seq DESC",
    [Q_MODEL_USERS] = "SELECT j.id FROM jobs j JOIN models m ON j.init_file = m.path"
                      " WHERE m.id=?1 AND j.state NOT IN ('SUCCEEDED','FAILED','CANCELLED')"
                      " LIMIT 1",
    [Q_MODEL_DELETE] = "DELETE FROM models WHERE id=?1 RETURNING path",
};

double store_now(void)
{
    return clock_wall_s();
}

void store_time_iso(double t, char buf[32])
{
    time_t sec = (time_t)floor(t);
    unsigned ms = (unsigned)((t - (double)sec) * 1000.0) % 1000u;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char tmp[24];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 32, "%.20s.%03uZ", tmp, ms);
}

/* ---- small helpers ----------------------------------------------------------- */

int sq_err(store *s, errbuf *eb, const char *what)
{
    return err_set(eb, ERR_IO, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Prepares statement q into the cache unless it is there; ERR_IO on failure. */
static int sq_prepare(store *s, int q, errbuf *eb)
{
    if (s->stmt[q] != NULL)
        return 0;
    if (sqlite3_prepare_v3(s->db, sql_text[q], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[q], NULL) !=
        SQLITE_OK) {
        s->stmt[q] = NULL;
        return sq_err(s, eb, "prepare");
    }
    return 0;
}

sqlite3_stmt *sq_stmt(store *s, int q)
{
    errbuf eb;
    /* The SQL is ours and the schema is migrated: a failure is a bug. */
    int rc = sq_prepare(s, q, &eb);
    KILN_CHECKF(rc >= 0, "store: cannot prepare statement %d: %s", q, eb.msg);
    return s->stmt[q];
}

void sq_done(sqlite3_stmt *q)
{
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
}

void sq_bind_text(sqlite3_stmt *q, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
}

const char *sq_col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t != NULL ? (const char *)t : "";
}

int sq_each(store *s, sqlite3_stmt *q, sq_row_fn row, void *arg, const char *what, errbuf *eb)
{
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW)
        if (row(q, arg) != 0)
            break;
    int rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : sq_err(s, eb, what);
    sq_done(q);
    return rc;
}

typedef struct collect_ctx {
    sq_rows *rows;
    sq_fill_fn fill;
    void *arg;
} collect_ctx;

static int collect_row(sqlite3_stmt *q, void *arg)
{
    collect_ctx *c = arg;
    sq_rows *r = c->rows;
    if (r->n == r->cap) {
        r->cap = r->cap > 0 ? 2 * r->cap : 16;
        r->v = xrealloc(r->v, (size_t)r->cap * r->size);
    }
    void *elem = (char *)r->v + (size_t)r->n * r->size;
    memset(elem, 0, r->size);
    r->n++;
    c->fill(q, elem, c->arg);
    return 0;
}

int sq_collect(store *s, sqlite3_stmt *q, sq_rows *rows, sq_fill_fn fill, void *arg,
               const char *what, errbuf *eb)
{
    collect_ctx c = {.rows = rows, .fill = fill, .arg = arg};
    return sq_each(s, q, collect_row, &c, what, eb);
}

int sq_list(store *s, int stmt, size_t size, sq_fill_fn fill, void (*free_elem)(void *elem),
            const char *what, void **out, int *n, errbuf *eb)
{
    sq_rows rows = {.size = size};
    pthread_mutex_lock(&s->mu);
    int rc = sq_collect(s, sq_stmt(s, stmt), &rows, fill, NULL, what, eb);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        for (int i = 0; free_elem != NULL && i < rows.n; i++)
            free_elem((char *)rows.v + (size_t)i * size);
        free(rows.v);
        rows.v = NULL;
        rows.n = 0;
    }
    *out = rows.v;
    *n = rows.n;
    return rc;
}

typedef struct collect_json_ctx {
    json_t *arr;
    sq_json_fn make;
    void *arg;
} collect_json_ctx;

static int collect_json_row(sqlite3_stmt *q, void *arg)
{
    collect_json_ctx *c = arg;
    json_t *v = c->make(q, c->arg);
    if (v == NULL)
        return 1;
    json_array_append_new(c->arr, v);
    return 0;
}

int sq_collect_json(store *s, sqlite3_stmt *q, json_t *arr, sq_json_fn make, void *arg,
                    const char *what, errbuf *eb)
{
    collect_json_ctx c = {.arr = arr, .make = make, .arg = arg};
    return sq_each(s, q, collect_json_row, &c, what, eb);
}

int sq_exec(store *s, const char *sql, errbuf *eb)
{
    char *emsg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &emsg) != SQLITE_OK) {
        int rc = err_set(eb, ERR_IO, "store: %s: %s", sql, emsg != NULL ? emsg : "?");
        sqlite3_free(emsg);
        return rc;
    }
    return 0;
}

int sq_run(store *s, int q, errbuf *eb)
{
    sqlite3_stmt *st = sq_stmt(s, q);
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = err_set(eb, ERR_IO, "store: %s: %s", sql_text[q], sqlite3_errmsg(s->db));
    sq_done(st);
    return rc;
}

int sq_step_done(store *s, sqlite3_stmt *q, const char *what, errbuf *eb)
{
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, what);
    sq_done(q);
    return rc;
}

int sq_write(store *s, sq_count count, sq_tx_fn fn, void *arg, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_run(s, Q_BEGIN, eb);
    if (rc < 0)
        goto out;
    sqlite3_int64 rows = sqlite3_total_changes64(s->db);
    rc = fn(s, arg, eb);
    if (rc >= 0) {
        int crc = sq_run(s, Q_COMMIT, eb);
        if (crc < 0)
            rc = crc;
        else if (count == SQ_COUNT_COMMIT ||
                 (count == SQ_COUNT_ROWS && sqlite3_total_changes64(s->db) != rows))
            atomic_fetch_add(&s->changes, 1);
    }
    if (rc < 0)
        sq_run(s, Q_ROLLBACK, NULL);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static json_t *sq_json_time(double t)
{
    char buf[32];
    store_time_iso(t, buf);
    return json_string(buf);
}

json_t *sq_row_json(json_t *o, sqlite3_stmt *q, const sq_json_col *cols, int n)
{
    if (o == NULL)
        o = json_object();
    for (int k = 0; k < n; k++) {
        int i = cols[k].col;
        int null = sqlite3_column_type(q, i) == SQLITE_NULL;
        json_t *v;
        switch (cols[k].kind) {
        case SQ_J_TEXT_NULL:
            v = null ? json_null() : json_string(sq_col_text(q, i));
            break;
        case SQ_J_INT:
            v = json_integer(sqlite3_column_int64(q, i));
            break;
        case SQ_J_BOOL:
            v = json_boolean(sqlite3_column_int64(q, i) != 0);
            break;
        case SQ_J_REAL:
            v = json_real(sqlite3_column_double(q, i));
            break;
        case SQ_J_REAL_INT:
            v = json_integer((json_int_t)sqlite3_column_double(q, i));
            break;
        case SQ_J_TIME:
            v = sq_col_time(q, i);
            break;
        case SQ_J_JSON:
            v = sq_col_json(q, i);
            break;
        case SQ_J_TEXT:
        default:
            v = json_string(sq_col_text(q, i));
            break;
        }
        json_object_set_new(o, cols[k].name, v);
    }
    return o;
}

json_t *sq_col_time(sqlite3_stmt *q, int i)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return json_null();
    return sq_json_time(sqlite3_column_double(q, i));
}

json_t *sq_col_json(sqlite3_stmt *q, int i)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return json_null();
    json_t *j = json_loads(sq_col_text(q, i), 0, NULL);
    return j != NULL ? j : json_null();
}

/* ---- open / close ---------------------------------------------------------- */

/* PRAGMA user_version into *v (the cached statement, prepared without abort():
 * this is the first read of a file that may not be a database). */
static int read_user_version(store *s, int *v, errbuf *eb)
{
    if (sq_prepare(s, Q_USER_VERSION, NULL) < 0)
        return sq_err(s, eb, "read user_version");
    sqlite3_stmt *q = s->stmt[Q_USER_VERSION];
    int rc = 0;
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        *v = sqlite3_column_int(q, 0);
    else
        rc = sq_err(s, eb, "read user_version");
    sq_done(q);
    return rc;
}

/* One migration: *(int *)arg is the version it starts from. */
static int migrate_one(store *s, void *arg, errbuf *eb)
{
    int v = *(const int *)arg;
    int rc = sq_exec(s, migrations[v], eb);
    if (rc == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
        rc = sq_exec(s, sql, eb);
    }
    return rc;
}

static int migrate(store *s, errbuf *eb)
{
    int v = 0;
    pthread_mutex_lock(&s->mu);
    int rc = read_user_version(s, &v, eb);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        return rc;
    if (v > STORE_SCHEMA_VERSION)
        return err_set(eb, ERR_UNSUPPORTED,
                       "store: database schema version %d is newer than this server's %d", v,
                       STORE_SCHEMA_VERSION);
    for (; v < STORE_SCHEMA_VERSION; v++) {
        if ((rc = sq_write(s, SQ_COUNT_COMMIT, migrate_one, &v, eb)) < 0)
            return err_prefix(eb, rc, "migration to schema version %d", v + 1);
        log_info("store: migrated schema to version %d", v + 1);
    }
    return 0;
}

/* Finalizes the cached statements and closes the connection. */
static void sq_close(store *s)
{
    for (int i = 0; i < Q__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_open(store **out, const char *path, errbuf *eb)
{
    *out = NULL;
    store *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    int rc = 0;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = err_set(eb, ERR_IO, "store: cannot open %s: %s", path,
                     s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* This process is the database's only user: holding its locks for good
     * (set before WAL is entered, so the WAL index lives in the heap, not in
     * shared memory) saves the fcntl() lock calls of every transaction, which
     * cost a third of the server's CPU under load; and a second server on the
     * same data dir is refused instead of sharing it. */
    if ((rc = sq_exec(s, "PRAGMA locking_mode=EXCLUSIVE", eb)) < 0 ||
        (rc = sq_exec(s, "PRAGMA cache_size=-32768", eb)) < 0 || /* 32 MiB of pages */
        (rc = sq_exec(s, "PRAGMA journal_mode=WAL", eb)) < 0 ||
        (rc = sq_exec(s, "PRAGMA synchronous=FULL", eb)) < 0 ||
        (rc = sq_exec(s, "PRAGMA foreign_keys=ON", eb)) < 0) {
        if (sqlite3_errcode(s->db) == SQLITE_BUSY)
            rc = err_set(eb, ERR_BUSY,
                         "store: the database is locked by another process (a kiln-server "
                         "on the same data dir?): one server per data dir");
        goto out;
    }
    if ((rc = migrate(s, eb)) < 0)
        goto out;
    *out = s;
    return 0;
out:
    sq_close(s);
    return err_prefix(eb, rc, "%s", path);
}

void store_close(store *s)
{
    if (s != NULL)
        sq_close(s);
}

int store_schema_version(store *s)
{
    int v = -1;
    pthread_mutex_lock(&s->mu);
    if (read_user_version(s, &v, NULL) < 0)
        v = -1;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int store_writable(store *s, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_run(s, Q_BEGIN, eb);
    if (rc == 0)
        sq_run(s, Q_ROLLBACK, NULL);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
