/* store.c - the SQLite job store (see store.h). The only SQLite file of the server.
 *
 * One connection, one mutex: every public function takes the lock for its
 * whole transaction. Statements are prepared on first use and cached in
 * s->stmt[] (reset after each use). Writes run in BEGIN IMMEDIATE
 * transactions so that a compare-and-set is never interleaved.
 */
#include "store.h"

#include "common/log.h"
#include "common/xalloc.h"
#include "store_impl.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

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
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- statement cache ------------------------------------------------------- */

static const char *const sql_text[Q__COUNT] = {
    [Q_JOB_INSERT] = "INSERT INTO jobs(id,name,type,priority,ranks,max_restarts,keep_last,spec,"
                     "params,mflops,state,reason,message,idem_key,body_hash,created_at,updated_at,"
                     "owner) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'QUEUED','SUBMITTED',"
                     "'waiting for a free pool',?11,?12,?13,?13,?14)",
    [Q_JOB_BY_KEY] = "SELECT id, body_hash FROM jobs WHERE idem_key=?1",
    [Q_JOB_ROW] = "SELECT seq,id,name,type,priority,ranks,max_restarts,keep_last,spec,params,"
                  "mflops,state,reason,message,created_at,updated_at,started_at,finished_at,"
                  "attempt,pool_id,metric_seq,log_seq,step,total_steps,latest,result,idem_key,"
                  "owner FROM jobs WHERE id=?1",
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
    [Q_QUEUE] = "SELECT id,priority,ranks,seq FROM jobs WHERE state IN ('QUEUED','RESTARTING')"
                " AND blocked=0 ORDER BY priority DESC, seq ASC",
    [Q_ATTEMPT_INSERT] = "INSERT INTO attempts(job_id,attempt,pool_id,active,started_at)"
                         " VALUES(?1,?2,?3,1,?4)",
    [Q_ATTEMPT_GET] = "SELECT active,last_seq,pool_id FROM attempts WHERE job_id=?1 AND attempt=?2",
    [Q_ATTEMPT_END] = "UPDATE attempts SET active=0, ended_at=?3, reason=?4, message=?5"
                      " WHERE job_id=?1 AND attempt=?2 AND active=1",
    [Q_ATTEMPT_SEQ] = "UPDATE attempts SET last_seq=?3 WHERE job_id=?1 AND attempt=?2",
    [Q_ATTEMPTS_OF] = "SELECT attempt,pool_id,active,started_at,ended_at,reason,message,last_seq"
                      " FROM attempts WHERE job_id=?1 ORDER BY attempt",
    [Q_JOB_SET_ATTEMPT] = "UPDATE jobs SET attempt=?2, pool_id=?3 WHERE id=?1",
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
    [Q_ACTIVE] = "SELECT id,attempt,pool_id,state FROM jobs"
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
};

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

double store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

sqlite3_stmt *sq_stmt(store *s, int q)
{
    if (s->stmt[q] == NULL) {
        int rc = sqlite3_prepare_v3(s->db, sql_text[q], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[q],
                                    NULL);
        /* The SQL is ours and the schema is migrated: a failure is a bug. */
        if (rc != SQLITE_OK) {
            log_error("store: cannot prepare statement %d: %s", q, sqlite3_errmsg(s->db));
            abort();
        }
    }
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

int sq_begin(store *s, errbuf *eb)
{
    return sq_exec(s, "BEGIN IMMEDIATE", eb);
}

int sq_end(store *s, int rc, errbuf *eb)
{
    if (rc < 0) {
        sq_exec(s, "ROLLBACK", NULL);
        return rc;
    }
    int crc = sq_exec(s, "COMMIT", eb);
    if (crc < 0) {
        sq_exec(s, "ROLLBACK", NULL);
        return crc;
    }
    atomic_fetch_add(&s->changes, 1);
    return rc;
}

static json_t *sq_json_time(double t)
{
    char buf[32];
    store_time_iso(t, buf);
    return json_string(buf);
}

json_t *sq_col_time(sqlite3_stmt *q, int i)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return json_null();
    return sq_json_time(sqlite3_column_double(q, i));
}

static json_t *sq_col_json(sqlite3_stmt *q, int i)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return json_null();
    json_t *j = json_loads(sq_col_text(q, i), 0, NULL);
    return j != NULL ? j : json_null();
}

/* ---- open / close ---------------------------------------------------------- */

static int migrate(store *s, errbuf *eb)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK)
        return sq_err(s, eb, "read user_version");
    int v = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (v > STORE_SCHEMA_VERSION)
        return err_set(eb, ERR_UNSUPPORTED,
                       "store: database schema version %d is newer than this server's %d", v,
                       STORE_SCHEMA_VERSION);
    for (; v < STORE_SCHEMA_VERSION; v++) {
        int rc;
        if ((rc = sq_begin(s, eb)) < 0)
            return rc;
        rc = sq_exec(s, migrations[v], eb);
        if (rc == 0) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
            rc = sq_exec(s, sql, eb);
        }
        if ((rc = sq_end(s, rc, eb)) < 0)
            return err_prefix(eb, rc, "migration to schema version %d", v + 1);
        log_info("store: migrated schema to version %d", v + 1);
    }
    return 0;
}

int store_open(store **out, const char *path, errbuf *eb)
{
    *out = NULL;
    store *s = xcalloc(1, sizeof *s);
    int rc = 0;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = err_set(eb, ERR_IO, "store: cannot open %s: %s", path,
                     s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if ((rc = sq_exec(s, "PRAGMA journal_mode=WAL", eb)) < 0 ||
        (rc = sq_exec(s, "PRAGMA synchronous=FULL", eb)) < 0 ||
        (rc = sq_exec(s, "PRAGMA foreign_keys=ON", eb)) < 0)
        goto out;
    if ((rc = migrate(s, eb)) < 0)
        goto out;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
out:
    if (s->db != NULL)
        sqlite3_close(s->db);
    free(s);
    return err_prefix(eb, rc, "%s", path);
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < Q__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_schema_version(store *s)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->mu);
    return v;
}

int store_writable(store *s, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_begin(s, eb);
    if (rc == 0)
        sq_exec(s, "ROLLBACK", NULL);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------------- */

/* A job id sorts by creation time: "j" + 12 hex digits of milliseconds since
 * the epoch + 8 random hex digits. */
void sq_new_id(const char *prefix, char id[STORE_ID_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long ms =
        (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
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
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "insert event");
    sq_done(q);
    return rc;
}

int store_job_create(store *s, const store_job_new *j, char id[STORE_ID_MAX], errbuf *eb)
{
    int rc = 0;
    const char *key = (j->idem_key != NULL && j->idem_key[0] != '\0') ? j->idem_key : NULL;
    pthread_mutex_lock(&s->mu);
    if ((rc = sq_begin(s, eb)) < 0)
        goto out;
    if (key != NULL) {
        sqlite3_stmt *q = sq_stmt(s, Q_JOB_BY_KEY);
        sq_bind_text(q, 1, key);
        if (sqlite3_step(q) == SQLITE_ROW) {
            snprintf(id, STORE_ID_MAX, "%s", sq_col_text(q, 0));
            int same = j->body_hash != NULL && strcmp(sq_col_text(q, 1), j->body_hash) == 0;
            sq_done(q);
            rc = same ? 1
                      : err_set(eb, ERR_EXISTS,
                                "idempotency key '%s' was used for job %s with a different body",
                                key, id);
            goto tx;
        }
        sq_done(q);
    }
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
    rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "insert job");
    sq_done(q);
    char wait[160] = "waiting for a free pool";
    if (j->waiting_for != NULL)
        snprintf(wait, sizeof wait, "WAITING_FOR %s: starts when it has succeeded", j->waiting_for);
    if (rc == 0)
        rc = sq_event(s, id, now, -1, JS_QUEUED,
                      j->waiting_for != NULL ? "WAITING_FOR" : "SUBMITTED", wait, eb);
    if (rc == 0)
        rc = sq_flow_insert(s, id, j, eb);
tx:
    rc = sq_end(s, rc, eb);
out:
    pthread_mutex_unlock(&s->mu);
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
    rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "update state");
    sq_done(q);
    if (rc == 0 && sqlite3_changes(s->db) != 1)
        rc = err_set(eb, ERR_STATE, "job %s changed state concurrently", id);
    if (rc == 0)
        rc = sq_event(s, id, now, r.state, to, reason, message, eb);
    return rc;
}

int store_transition(store *s, const char *id, unsigned from_mask, job_state to, const char *reason,
                     const char *message, job_state *was, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_begin(s, eb);
    if (rc == 0)
        rc = sq_end(s, sq_transition(s, id, from_mask, to, reason, message, was, eb), eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static json_t *sq_attempts_json(store *s, const char *id)
{
    json_t *a = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPTS_OF);
    sq_bind_text(q, 1, id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "attempt", json_integer(sqlite3_column_int(q, 0)));
        json_object_set_new(o, "pool_id", json_string(sq_col_text(q, 1)));
        json_object_set_new(o, "active", json_boolean(sqlite3_column_int(q, 2)));
        json_object_set_new(o, "started_at", sq_col_time(q, 3));
        json_object_set_new(o, "ended_at", sq_col_time(q, 4));
        json_object_set_new(o, "reason",
                            sqlite3_column_type(q, 5) == SQLITE_NULL
                                ? json_null()
                                : json_string(sq_col_text(q, 5)));
        json_object_set_new(o, "message",
                            sqlite3_column_type(q, 6) == SQLITE_NULL
                                ? json_null()
                                : json_string(sq_col_text(q, 6)));
        json_object_set_new(o, "messages_applied", json_integer(sqlite3_column_int64(q, 7)));
        json_array_append_new(a, o);
    }
    sq_done(q);
    return a;
}

json_t *sq_event_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(q, 0)));
    json_object_set_new(o, "time", sq_col_time(q, 1));
    json_object_set_new(o, "from",
                        sqlite3_column_type(q, 2) == SQLITE_NULL ? json_null()
                                                                 : json_string(sq_col_text(q, 2)));
    json_object_set_new(o, "to", json_string(sq_col_text(q, 3)));
    json_object_set_new(o, "reason", json_string(sq_col_text(q, 4)));
    json_object_set_new(o, "message", json_string(sq_col_text(q, 5)));
    return o;
}

json_t *sq_artifacts_json(store *s, const char *id)
{
    json_t *a = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_ARTIFACT_LIST);
    sq_bind_text(q, 1, id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(sq_col_text(q, 0)));
        json_object_set_new(o, "size", json_integer(sqlite3_column_int64(q, 1)));
        json_array_append_new(a, o);
    }
    sq_done(q);
    return a;
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
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(sq_col_text(q, 1)));
    json_object_set_new(o, "name", json_string(sq_col_text(q, 2)));
    json_object_set_new(o, "type", json_string(sq_col_text(q, 3)));
    json_object_set_new(o, "priority", json_integer(sqlite3_column_int(q, 4)));
    json_object_set_new(o, "ranks", json_integer(sqlite3_column_int(q, 5)));
    json_object_set_new(o, "max_restarts", json_integer(sqlite3_column_int(q, 6)));
    json_object_set_new(o, "spec", sq_col_json(q, 8));
    json_object_set_new(o, "params", json_integer((json_int_t)sqlite3_column_double(q, 9)));
    json_object_set_new(o, "mflops", json_real(sqlite3_column_double(q, 10)));
    json_object_set_new(o, "state", json_string(sq_col_text(q, 11)));
    json_object_set_new(o, "reason", json_string(sq_col_text(q, 12)));
    json_object_set_new(o, "message", json_string(sq_col_text(q, 13)));
    json_object_set_new(o, "owner", json_string(sq_col_text(q, 27)));
    json_object_set_new(o, "created_at", sq_col_time(q, 14));
    json_object_set_new(o, "updated_at", sq_col_time(q, 15));
    json_object_set_new(o, "started_at", sq_col_time(q, 16));
    json_object_set_new(o, "finished_at", sq_col_time(q, 17));
    json_object_set_new(o, "attempt", json_integer(sqlite3_column_int(q, 18)));
    json_object_set_new(
        o, "pool_id",
        sqlite3_column_type(q, 19) == SQLITE_NULL ? json_null() : json_string(sq_col_text(q, 19)));
    json_object_set_new(o, "metric_count", json_integer(sqlite3_column_int64(q, 20)));
    json_object_set_new(o, "log_count", json_integer(sqlite3_column_int64(q, 21)));
    json_object_set_new(o, "progress",
                        sq_progress_json(sqlite3_column_int64(q, 22), sqlite3_column_int64(q, 23)));
    json_object_set_new(o, "latest_metrics", sq_col_json(q, 24));
    json_object_set_new(o, "result", sq_col_json(q, 25));
    json_object_set_new(
        o, "idempotency_key",
        sqlite3_column_type(q, 26) == SQLITE_NULL ? json_null() : json_string(sq_col_text(q, 26)));
    sq_done(q);
    json_object_set_new(o, "attempts", sq_attempts_json(s, id));
    json_object_set_new(o, "artifacts", sq_artifacts_json(s, id));
    json_t *ev = json_array();
    q = sq_stmt(s, Q_EVENTS_RECENT);
    sq_bind_text(q, 1, id);
    sqlite3_bind_int(q, 2, 50);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(ev, sq_event_row(q));
    sq_done(q);
    json_object_set_new(o, "events", ev);
    sq_lineage_json(s, id, o);
    *out = o;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_list(store *s, const store_list_query *lq, json_t **items, int64_t *next, errbuf *eb)
{
    *items = NULL;
    *next = 0;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, lq->by_priority ? Q_JOB_LIST_PRIO : Q_JOB_LIST);
    sq_bind_text(q, 1, lq->state >= 0 ? store_state_name((job_state)lq->state) : NULL);
    sq_bind_text(q, 2, lq->type);
    sq_bind_text(q, 3, lq->q != NULL && lq->q[0] != '\0' ? lq->q : NULL);
    sqlite3_bind_int64(q, 4, lq->before > 0 ? lq->before : INT64_MAX);
    sqlite3_bind_int(q, 5, lq->page_size + 1); /* one more: is there a next page? */
    sq_bind_text(q, 6, lq->owner);
    json_t *a = json_array();
    int n = 0, step;
    int64_t last = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == lq->page_size) {
            *next = last;
            break;
        }
        json_t *o = json_object();
        last = sqlite3_column_int64(q, 0);
        json_object_set_new(o, "id", json_string(sq_col_text(q, 1)));
        json_object_set_new(o, "name", json_string(sq_col_text(q, 2)));
        json_object_set_new(o, "type", json_string(sq_col_text(q, 3)));
        json_object_set_new(o, "priority", json_integer(sqlite3_column_int(q, 4)));
        json_object_set_new(o, "ranks", json_integer(sqlite3_column_int(q, 5)));
        json_object_set_new(o, "state", json_string(sq_col_text(q, 6)));
        json_object_set_new(o, "reason", json_string(sq_col_text(q, 7)));
        json_object_set_new(o, "message", json_string(sq_col_text(q, 8)));
        json_object_set_new(o, "created_at", sq_col_time(q, 9));
        json_object_set_new(o, "updated_at", sq_col_time(q, 10));
        json_object_set_new(o, "started_at", sq_col_time(q, 11));
        json_object_set_new(o, "finished_at", sq_col_time(q, 12));
        json_object_set_new(o, "attempt", json_integer(sqlite3_column_int(q, 13)));
        json_object_set_new(o, "pool_id",
                            sqlite3_column_type(q, 14) == SQLITE_NULL
                                ? json_null()
                                : json_string(sq_col_text(q, 14)));
        json_object_set_new(
            o, "progress",
            sq_progress_json(sqlite3_column_int64(q, 15), sqlite3_column_int64(q, 16)));
        json_object_set_new(o, "params", json_integer((json_int_t)sqlite3_column_double(q, 17)));
        json_object_set_new(o, "mflops", json_real(sqlite3_column_double(q, 18)));
        json_object_set_new(o, "latest_metrics", sq_col_json(q, 19));
        json_object_set_new(o, "owner", json_string(sq_col_text(q, 20)));
        json_array_append_new(a, o);
        n++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sq_err(s, eb, "list jobs");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        json_decref(a);
    else
        *items = a;
    return rc;
}

int store_job_counts(store *s, int64_t counts[JS__COUNT], errbuf *eb)
{
    memset(counts, 0, sizeof(int64_t) * JS__COUNT);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_COUNTS);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        int k = store_state_parse(sq_col_text(q, 0));
        if (k >= 0)
            counts[k] = sqlite3_column_int64(q, 1);
    }
    int rc = step == SQLITE_DONE ? 0 : sq_err(s, eb, "count jobs by state");
    sq_done(q);
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

int store_job_note(store *s, const char *id, const char *message, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_NOTE);
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, message);
    sqlite3_bind_double(q, 3, store_now());
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "note job");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_note_active(store *s, const char *id, const char *message, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_NOTE_ACTIVE);
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, message);
    sqlite3_bind_double(q, 3, store_now());
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "note job");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_delete(store *s, const char *id, errbuf *eb)
{
    static const char *const del[] = {
        "DELETE FROM metrics WHERE job_id=?1",     "DELETE FROM logs WHERE job_id=?1",
        "DELETE FROM events WHERE job_id=?1",      "DELETE FROM attempts WHERE job_id=?1",
        "DELETE FROM checkpoints WHERE job_id=?1", "DELETE FROM artifacts WHERE job_id=?1",
        "DELETE FROM job_deps WHERE job_id=?1",    "DELETE FROM jobs WHERE id=?1",
    };
    pthread_mutex_lock(&s->mu);
    int rc = sq_begin(s, eb);
    if (rc < 0)
        goto out;
    job_row r;
    rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    if (rc == 0 && (JS_TERMINAL & JS_BIT(r.state)) == 0)
        rc = err_set(eb, ERR_STATE, "job %s is %s; only a finished job can be deleted", id,
                     store_state_name(r.state));
    if (rc == 0)
        rc = sq_init_users(s, id, eb);
    for (size_t i = 0; rc == 0 && i < sizeof del / sizeof del[0]; i++) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, del[i], -1, &q, NULL) != SQLITE_OK) {
            rc = sq_err(s, eb, "prepare delete");
            break;
        }
        sq_bind_text(q, 1, id);
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = sq_err(s, eb, "delete job rows");
        sqlite3_finalize(q);
    }
    rc = sq_end(s, rc, eb);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_queue(store *s, store_queued **out, int *n, errbuf *eb)
{
    *out = NULL;
    *n = 0;
    int cap = 0, rc = 0, step;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_QUEUE);
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_queued *j = &(*out)[(*n)++];
        snprintf(j->id, sizeof j->id, "%s", sq_col_text(q, 0));
        j->priority = sqlite3_column_int(q, 1);
        j->ranks = sqlite3_column_int(q, 2);
        j->order = sqlite3_column_int64(q, 3);
    }
    if (step != SQLITE_DONE)
        rc = sq_err(s, eb, "read queue");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- attempts ------------------------------------------------------------------ */

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

int store_attempt_start(store *s, const char *id, const char *pool_id, store_assignment *a,
                        errbuf *eb)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_lock(&s->mu);
    int rc = sq_begin(s, eb);
    if (rc < 0)
        goto out;
    job_row r;
    rc = sq_read_job(s, id, &r, eb);
    free(r.latest);
    int attempt = r.attempt + 1;
    char msgtext[160];
    snprintf(msgtext, sizeof msgtext, "attempt %d assigned to pool %s", attempt, pool_id);
    if (rc == 0)
        rc = sq_transition(s, id, JS_RUNNABLE, JS_STARTING, "SCHEDULED", msgtext, NULL, eb);
    if (rc == 0) {
        sqlite3_stmt *q = sq_stmt(s, Q_JOB_SET_ATTEMPT);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, attempt);
        sq_bind_text(q, 3, pool_id);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "set attempt");
        sq_done(q);
    }
    if (rc == 0) {
        sqlite3_stmt *q = sq_stmt(s, Q_ATTEMPT_INSERT);
        sq_bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, attempt);
        sq_bind_text(q, 3, pool_id);
        sqlite3_bind_double(q, 4, store_now());
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "insert attempt");
        sq_done(q);
    }
    if (rc == 0)
        rc = sq_fill_assignment(s, id, attempt, a, eb);
    rc = sq_end(s, rc, eb);
    if (rc < 0) {
        free(a->spec_json);
        a->spec_json = NULL;
    }
out:
    pthread_mutex_unlock(&s->mu);
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
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "end attempt");
    sq_done(q);
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

int store_attempt_lost(store *s, const char *id, int attempt, const char *reason,
                       const char *message, errbuf *eb)
{
    pthread_mutex_lock(&s->mu);
    int rc = sq_begin(s, eb);
    if (rc < 0)
        goto out;
    job_row r;
    rc = sq_read_job(s, id, &r, eb);
    if (rc == 0 && ((JS_ON_POOL & JS_BIT(r.state)) == 0 || r.attempt != attempt))
        rc = err_set(eb, ERR_STATE, "job %s attempt %d is not active", id, attempt);
    if (rc == 0)
        rc = sq_attempt_failed(s, id, &r, reason, message, eb);
    free(r.latest);
    rc = sq_end(s, rc, eb);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_active_list(store *s, store_active **out, int *n, errbuf *eb)
{
    *out = NULL;
    *n = 0;
    int cap = 0, rc = 0, step;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_ACTIVE);
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_active *a = &(*out)[(*n)++];
        snprintf(a->job_id, sizeof a->job_id, "%s", sq_col_text(q, 0));
        a->attempt = sqlite3_column_int(q, 1);
        snprintf(a->pool_id, sizeof a->pool_id, "%s", sq_col_text(q, 2));
        a->state = (job_state)store_state_parse(sq_col_text(q, 3));
    }
    if (step != SQLITE_DONE)
        rc = sq_err(s, eb, "read active jobs");
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- applying job messages ----------------------------------------------------- */
