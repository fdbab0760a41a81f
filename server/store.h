/* store.h - the job store: jobs, attempts, events, metrics, logs, files (SQLite).
 *
 * The store_*.c files are the only ones of the server that include sqlite3.h. The
 * database runs in WAL mode with synchronous=FULL and a busy timeout, every
 * statement is prepared once and cached, and the schema version lives in
 * PRAGMA user_version (migrations run at open). Every job state change is one
 * compare-and-set (store_transition and the functions built on it) that
 * writes an event row with a reason and a message in the same transaction.
 * Files (checkpoints, artifacts) are written by the caller (temp + fsync +
 * rename) before they are referenced here; the store keeps paths relative to
 * the data dir. Thread-safe: one connection behind a mutex.
 */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include "common/err.h"
#include "common/msg.h"

#include <jansson.h>
#include <stdint.h>

#define STORE_ID_MAX         MSG_ID_MAX
#define STORE_SCHEMA_VERSION 5

typedef enum {
    JS_QUEUED = 0,
    JS_STARTING,
    JS_RUNNING,
    JS_RESTARTING,
    JS_CANCELLING,
    JS_SUCCEEDED,
    JS_FAILED,
    JS_CANCELLED,
    JS__COUNT
} job_state;

#define JS_BIT(s)   (1u << (s))
#define JS_TERMINAL (JS_BIT(JS_SUCCEEDED) | JS_BIT(JS_FAILED) | JS_BIT(JS_CANCELLED))
#define JS_ON_POOL  (JS_BIT(JS_STARTING) | JS_BIT(JS_RUNNING) | JS_BIT(JS_CANCELLING))
#define JS_RUNNABLE (JS_BIT(JS_QUEUED) | JS_BIT(JS_RESTARTING))
#define JS_ALL      ((1u << JS__COUNT) - 1u)

typedef struct store store;

/* State names as in SERVICE.md ("QUEUED", ...). store_state_parse returns
 * -1 for an unknown name. */
const char *store_state_name(job_state s);
int store_state_parse(const char *name);

/* Whether from -> to is an edge of the state machine (SERVICE.md "States"). */
int store_transition_legal(job_state from, job_state to);

/* store_open opens (creating if needed) the database at path (":memory:"
 * for tests), sets WAL/synchronous/busy_timeout and migrates the schema to
 * STORE_SCHEMA_VERSION. A database with a newer user_version is refused
 * (ERR_UNSUPPORTED). Returns 0 or ERR_IO with eb naming the path. */
int store_open(store **out, const char *path, errbuf *eb);

/* store_close finalizes the cached statements and closes; NULL is a no-op. */
void store_close(store *s);

/* The PRAGMA user_version of the open database. */
int store_schema_version(store *s);

/* store_writable checks that a write transaction can be taken (readyz). */
int store_writable(store *s, errbuf *eb);

typedef struct store_job_new {
    const char *name;
    const char *type;      /* "train" | "prune" | "adapt" */
    int priority;          /* 0..100 */
    int ranks;             /* resources.ranks */
    int max_restarts;      /* retry.max_restarts */
    int keep_last;         /* checkpoint.keep_last (0 = keep all) */
    const char *spec_json; /* canonical spec, compact JSON (copied) */
    double params, mflops;
    const char *idem_key;  /* NULL or "" for none */
    const char *body_hash; /* hex digest of the canonical spec, for the key check */
    const char *owner;     /* the submitting token's name; NULL or "" without tokens */
    /* Lineage (store_flow.c): */
    const char *init_file;   /* weights the server holds for init_from, relative to the data
                              * dir; NULL: none (fresh, a pool-host path, or not resolved yet) */
    const char *init_sha256; /* their SHA-256 (hex) */
    int64_t init_size;
    const char *const *after; /* jobs this one waits for */
    int n_after;
    const char *waiting_for; /* non-NULL: the job starts blocked, waiting for this one */
    int owner_max_queued;    /* > 0: refuse (ERR_TOO_LARGE) when the owner has this many jobs
                              * QUEUED or RESTARTING already, counted in the transaction */
} store_job_new;

/* store_job_create stores a QUEUED job (fsync'd on return) and writes its id.
 * Returns 0 for a new job; 1 when idem_key names an existing job with the
 * same body_hash (id = that job, nothing stored); ERR_EXISTS when it names a
 * job with another body; ERR_TOO_LARGE when the owner is at owner_max_queued;
 * ERR_IO on a database failure. */
int store_job_create(store *s, const store_job_new *j, char id[STORE_ID_MAX], errbuf *eb);

/* One job of store_job_create_batch: the job in, its outcome out. */
typedef struct store_job_batch {
    const store_job_new *job;
    char id[STORE_ID_MAX]; /* out, as store_job_create's id */
    int rc;                /* out, as store_job_create's result */
    errbuf eb;             /* out, the message when rc < 0 */
} store_job_batch;

/* store_job_create_batch stores n jobs in one write transaction, so one
 * fsync covers them all (group commit). Each job is created as
 * store_job_create would, in order (a later job sees an earlier one's
 * idempotency key), in its own savepoint: one that fails (ERR_EXISTS) leaves
 * the others stored. Returns 0 when the transaction committed (each job's
 * outcome in b[i]), or ERR_IO when it did not: then nothing is stored and
 * every b[i].rc is that error. */
int store_job_create_batch(store *s, store_job_batch *b, int n, errbuf *eb);

/* store_job_get gives the full job view (api/openapi.yaml `Job`): spec,
 * state, reason, attempts, progress, latest metrics, result, artifacts and
 * the recent events. *out is a new reference. ERR_NOT_FOUND if no such id. */
int store_job_get(store *s, const char *id, json_t **out, errbuf *eb);

/* store_job_state reads the state (and, if not NULL, the current attempt
 * number and pool id, pool_id of STORE_ID_MAX bytes). ERR_NOT_FOUND. */
int store_job_state(store *s, const char *id, job_state *st, int *attempt, char *pool_id,
                    errbuf *eb);

typedef struct store_list_query {
    int state;         /* job_state, or -1 for any */
    const char *type;  /* NULL for any */
    const char *q;     /* substring of name or id; NULL for any */
    const char *owner; /* exactly this owner (token name); NULL for any */
    int page_size;     /* 1..1000 */
    int by_priority;   /* 0: newest first; 1: highest priority first, newest first within */
    int64_t before;    /* cursor: only jobs after this order key; 0 = from the first */
} store_list_query;

/* store_job_list lists job summaries in the query's order. The order key is
 * the job's insertion seq, or with by_priority (priority << 48) | seq; pages
 * go down the key. *items is a new array; *next is the cursor (the last
 * row's key) for the next page, 0 when this page is the last. */
int store_job_list(store *s, const store_list_query *q, json_t **items, int64_t *next, errbuf *eb);

/* store_job_counts fills counts[s] with the number of jobs in each state. */
int store_job_counts(store *s, int64_t counts[JS__COUNT], errbuf *eb);

/* store_job_count counts jobs (all states). */
int store_job_count(store *s, int64_t *n, errbuf *eb);

/* store_transition moves job id to `to` if its state is in from_mask (a set
 * of JS_BIT), in one compare-and-set, and records an event with reason and
 * message. Writes the state found to *was (if not NULL). Returns 0,
 * ERR_NOT_FOUND, or ERR_STATE when the state is not in from_mask (nothing
 * changed; eb names the state). Asserts that every from -> to is legal. */
int store_transition(store *s, const char *id, unsigned from_mask, job_state to, const char *reason,
                     const char *message, job_state *was, errbuf *eb);

/* store_job_note replaces the message of a QUEUED job (why it waits) without
 * a transition or an event; nothing happens if the job is not QUEUED or the
 * message is the same. Returns 0 or ERR_IO. */
int store_job_note(store *s, const char *id, const char *message, errbuf *eb);

/* One note of store_job_notes. */
typedef struct store_note {
    const char *id, *message;
} store_note;

/* store_job_notes is store_job_note for n jobs in one transaction. */
int store_job_notes(store *s, const store_note *notes, int n, errbuf *eb);

/* store_job_note_active is store_job_note for a job on a pool (STARTING,
 * RUNNING, CANCELLING): why it cannot go on (the server cannot store its
 * files). Returns 0 or ERR_IO. */
int store_job_note_active(store *s, const char *id, const char *message, errbuf *eb);

/* store_job_delete deletes a terminal job and all its rows. Returns 0,
 * ERR_NOT_FOUND, or ERR_STATE if the job is not terminal. The caller removes
 * its files afterwards. */
int store_job_delete(store *s, const char *id, errbuf *eb);

/* A runnable job as the scheduler sees it. */
typedef struct store_queued {
    char id[STORE_ID_MAX];
    int priority;
    int ranks;
    int64_t order;  /* submission order (FIFO key) */
    char owner[64]; /* the submitting token's name, "" without tokens */
} store_queued;

/* What one owner has on pools: jobs STARTING, RUNNING or CANCELLING, and
 * the ranks they hold. */
typedef struct store_owner_usage {
    char owner[64];
    int running;
    int ranks;
} store_owner_usage;

/* store_owner_usage lists the owners with jobs on pools (*out malloc'd, *n
 * its length; NULL and 0 on an error). */
int store_owner_usage_list(store *s, store_owner_usage **out, int *n, errbuf *eb);

/* store_queue lists QUEUED and RESTARTING jobs, highest priority first, FIFO
 * within a priority. *out is malloc'd (free it); *n its length (on an
 * error *out is NULL and *n 0). */
int store_queue(store *s, store_queued **out, int *n, errbuf *eb);

/* What a pool needs to start an attempt. */
typedef struct store_assignment {
    char job_id[STORE_ID_MAX];
    int attempt;
    char *spec_json;     /* malloc'd canonical spec */
    char ckpt_path[512]; /* newest checkpoint, relative to the data dir, or "" */
    long ckpt_step;
    char init_file[512]; /* weights to start from, relative to the data dir, or "" */
    char init_sha256[65];
    int64_t init_size;
    int ranks;          /* resources.ranks */
    int64_t superseded; /* metric points of earlier attempts after ckpt_step, dropped */
} store_assignment;

/* store_attempt_start moves a runnable job (QUEUED or RESTARTING) to
 * STARTING on pool_id and opens attempt n+1, in one transaction. A retry
 * drops the metric points earlier attempts logged after the step it resumes
 * from (all of them without a checkpoint): the new attempt logs those steps
 * again, and a series keeps each step once. Fills *a
 * (free a->spec_json). Returns 0, ERR_NOT_FOUND, or ERR_STATE if the job is
 * no longer runnable (cancelled meanwhile). */
int store_attempt_start(store *s, const char *id, const char *pool_id, store_assignment *a,
                        errbuf *eb);

/* store_assignment_get reloads the assignment of an attempt that is still
 * STARTING (to send the same assign again). ERR_STATE if it is not. */
int store_assignment_get(store *s, const char *id, int attempt, store_assignment *a, errbuf *eb);

/* store_attempt_lost ends attempt (id, attempt) because its pool died:
 * CANCELLING -> CANCELLED; STARTING/RUNNING -> RESTARTING when
 * retry.max_restarts allows another attempt, else FAILED with
 * BACKOFF_LIMIT_EXCEEDED. reason/message describe the loss (WORKER_LOST).
 * Returns 0, or ERR_STATE if that attempt is not the job's active one. */
int store_attempt_lost(store *s, const char *id, int attempt, const char *reason,
                       const char *message, errbuf *eb);

/* An attempt the store considers running on a pool. */
typedef struct store_active {
    char job_id[STORE_ID_MAX];
    int attempt;
    char pool_id[STORE_ID_MAX];
    job_state state;
    int ranks; /* resources.ranks: what it holds of its pool */
} store_active;

/* store_active_list lists every job in STARTING/RUNNING/CANCELLING with its
 * attempt and pool (used at server start to reconcile). *out malloc'd
 * (NULL with *n 0 on an error). */
int store_active_list(store *s, store_active **out, int *n, errbuf *eb);

/* Outcome of applying one job message. */
typedef enum {
    APPLY_OK = 0, /* applied now */
    APPLY_DUP,    /* seq already applied */
    APPLY_GAP,    /* an earlier seq is missing: not applied */
    APPLY_STALE,  /* not the job's active attempt: dropped */
    APPLY_BAD,    /* the message cannot be applied (bad content): dropped */
} store_apply_outcome;

typedef struct store_apply_in {
    const msg *m;                          /* a job message (msg_is_job_message) */
    const char *pool_id;                   /* the sender */
    const char *blob_paths[MSG_MAX_BLOBS]; /* checkpoint / artifacts, relative, already on disk */
} store_apply_in;

typedef struct store_apply_out {
    store_apply_outcome outcome;
    uint64_t ack_seq; /* what to acknowledge for (job, attempt) */
    int ended;        /* the attempt ended (finished/failed applied) */
    json_t *unlink;   /* relative paths the caller removes after the commit, or NULL */
} store_apply_out;

/* store_apply_batch applies n job messages in order in ONE transaction
 * (committed, fsync'd, before it returns), each exactly once: seq must be
 * last_seq + 1 of its (job, attempt). Fills out[i] for each (release
 * out[i].unlink with json_decref). Returns 0 or ERR_IO (nothing applied:
 * send no ack). */
int store_apply_batch(store *s, const store_apply_in *in, store_apply_out *out, int n, errbuf *eb);

/* Whether a job message (job_id, attempt, seq) from pool_id could still be
 * applied: the attempt is active, held by that pool, and seq is past the
 * last one applied. The coordinator writes a message's files only then, so
 * a resent checkpoint that was applied (and maybe pruned since) is not
 * written again, and no other pool's blob reaches the attempt's files. */
int store_attempt_wants(store *s, const char *job_id, int attempt, const char *pool_id,
                        uint64_t seq);

typedef struct store_metric_query {
    int64_t after_seq; /* exclusive cursor */
    int limit;         /* 1..100000 rows scanned */
    const char *names; /* comma-separated names, or NULL for all */
    int max_points;    /* 0 = no downsampling; else (>= 4) at most this many per name */
} store_metric_query;

/* store_metrics reads metric points of a job: {"job_id", "points": [{seq,
 * name, step, value, time, epoch}], "next_seq", "downsampled"}. next_seq is the seq
 * of the last row scanned (pass it as after_seq to continue), or after_seq
 * when nothing new. With max_points, each name's rows are cut into
 * max_points/4 buckets and each bucket keeps its first, last, min and max.
 * ERR_NOT_FOUND if no such job. */
int store_metrics(store *s, const char *id, const store_metric_query *q, json_t **out, errbuf *eb);

/* store_logs reads log lines: seq > after_seq, at most limit; tail > 0
 * instead gives the last `tail` lines. {"job_id","lines":[...],"next_seq"}. */
int store_logs(store *s, const char *id, int64_t after_seq, int limit, int tail, json_t **out,
               errbuf *eb);

/* store_artifact finds artifact `name` of a job: its relative path (into
 * path[pathlen]) and size. ERR_NOT_FOUND (job or artifact). */
int store_artifact(store *s, const char *id, const char *name, char *path, size_t pathlen,
                   int64_t *size, errbuf *eb);

/* store_artifacts lists a job's artifacts: [{"name","size"}]. */
int store_artifacts(store *s, const char *id, json_t **out, errbuf *eb);

/* store_events lists a job's events with seq > after, oldest first. */
int store_events(store *s, const char *id, int64_t after, int limit, json_t **out, errbuf *eb);

/* store_events_all lists the events of every job with seq > after, oldest
 * first; each row also has "job_id". */
int store_events_all(store *s, int64_t after, int limit, json_t **out, errbuf *eb);

/* The seq of the newest event of any job (0 when there is none). */
int64_t store_events_max(store *s);

/* store_checkpoints lists a job's checkpoints with step > after_step:
 * [{"step","attempt","size","time"}], by step. ERR_NOT_FOUND. */
int store_checkpoints(store *s, const char *id, int64_t after_step, int limit, json_t **out,
                      errbuf *eb);

/* store_attempt_counts counts attempts by how they ended: {"ACTIVE": n,
 * "COMPLETED": n, "WORKER_LOST": n, ...} (the reason of ended ones). */
int store_attempt_counts(store *s, json_t **out, errbuf *eb);

/* store_changes counts the write transactions committed so far that change
 * what a stream shows (notes, and store_job_wait calls that change nothing,
 * do not count): a cheap "did anything change?" for the event streams.
 * Thread-safe, lock-free. */
uint64_t store_changes(store *s);

/* ---- lineage: after and init_from (store_flow.c) ---- */

/* A job that waits (QUEUED, blocked) for the jobs in its after list. */
typedef struct store_blocked {
    char id[STORE_ID_MAX];
    char *spec_json; /* malloc'd */
} store_blocked;

/* store_blocked_list lists the blocked QUEUED jobs, oldest first. *out
 * malloc'd (free each spec_json, then out). */
int store_blocked_list(store *s, store_blocked **out, int *n, errbuf *eb);

/* store_deps_state finds how the after list of job id stands: 0 when every
 * job SUCCEEDED; 1 when one has not ended yet (its id in `which`, its state
 * in *st); 2 when one ended without success or no longer exists (id in
 * which, *st its state, -1 if deleted). */
int store_deps_state(store *s, const char *id, char which[STORE_ID_MAX], int *st, errbuf *eb);

/* store_job_wait sets reason WAITING_FOR and message of a blocked QUEUED
 * job (no event; nothing if they are the same). */
int store_job_wait(store *s, const char *id, const char *message, errbuf *eb);

/* store_job_unblock lets a blocked QUEUED job run: records its init weights
 * (init_file NULL: none) and, when spec_json is not NULL, its completed spec
 * (params, mflops). ERR_STATE when the job is no longer QUEUED. */
int store_job_unblock(store *s, const char *id, const char *init_file, const char *init_sha256,
                      int64_t init_size, const char *spec_json, double params, double mflops,
                      errbuf *eb);

/* store_job_spec reads a job's stored spec (malloc'd text). ERR_NOT_FOUND. */
int store_job_spec(store *s, const char *id, char **spec_json, errbuf *eb);

/* store_checkpoint_latest finds a job's newest checkpoint (relative path,
 * step). ERR_NOT_FOUND (no job, or no checkpoint). */
int store_checkpoint_latest(store *s, const char *id, char *path, size_t pathlen, long *step,
                            errbuf *eb);

/* ---- uploaded models (store_flow.c) ---- */

typedef struct store_model_new {
    const char *name;
    const char *path; /* relative to the data dir, already on disk */
    int64_t size;
    const char *sha256;
    const char *model_json; /* model config (compact JSON), or NULL */
    int tensors;
    int64_t params;
} store_model_new;

/* A new unique-enough id: prefix, then milliseconds and random hex
 * (jobs "j...", models "m..."). */
void store_new_id(const char *prefix, char id[STORE_ID_MAX]);

/* Whether id could be one store_new_id made (or a test's): 1 to STORE_ID_MAX - 1
 * letters, digits, '-' and '_'. Anything else names no job or model. */
int store_id_valid(const char *id);

/* store_model_create records an uploaded model under id (store_new_id("m")). */
int store_model_create(store *s, const store_model_new *m, const char *id, errbuf *eb);

/* store_model_get: {"id","name","size","sha256","model","tensors","params",
 * "created_at"} and, if path is not NULL, its relative path. ERR_NOT_FOUND. */
int store_model_get(store *s, const char *id, json_t **out, char *path, size_t pathlen, errbuf *eb);

/* store_model_list: every model, newest first, as store_model_get shows it. */
int store_model_list(store *s, json_t **out, errbuf *eb);

/* store_model_delete removes the row (path gets its relative path, for the
 * caller to unlink). ERR_NOT_FOUND; ERR_STATE while a job that has not
 * ended starts from it. */
int store_model_delete(store *s, const char *id, char *path, size_t pathlen, errbuf *eb);

/* store_now is the wall clock in Unix seconds (double), as stored. */
double store_now(void);

/* store_time_iso formats Unix seconds as RFC 3339 UTC with milliseconds. */
void store_time_iso(double t, char buf[32]);

#endif
