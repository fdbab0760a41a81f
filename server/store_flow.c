/* store_flow.c - lineage (after, init_from resolved) and uploaded models (see store.h).
 *
 * Part of the store (store_impl.h): the job_deps and models tables and the
 * init_* and blocked columns of jobs (schema version 2). Statements here are
 * prepared per call: they run once per submit, upload or blocked job, not
 * per metric.
 */
#include "common/xalloc.h"
#include "server/store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prepares sql (ours: a failure is a bug, reported as ERR_INTERNAL). */
static int prep(store *s, const char *sql, sqlite3_stmt **q, errbuf *eb)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, q, NULL) != SQLITE_OK) {
        *q = NULL;
        return sq_err(s, eb, "prepare");
    }
    return 0;
}

int sq_flow_insert(store *s, const char *id, const store_job_new *j, errbuf *eb)
{
    sqlite3_stmt *q;
    int rc = prep(s,
                  "UPDATE jobs SET init_file=?2, init_sha256=?3, init_size=?4, blocked=?5 "
                  "WHERE id=?1",
                  &q, eb);
    if (rc < 0)
        return rc;
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, j->init_file);
    sq_bind_text(q, 3, j->init_file != NULL ? j->init_sha256 : NULL);
    if (j->init_file != NULL)
        sqlite3_bind_int64(q, 4, j->init_size);
    sqlite3_bind_int(q, 5, j->waiting_for != NULL);
    rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "record init_from");
    sqlite3_finalize(q);
    for (int i = 0; rc == 0 && i < j->n_after; i++) {
        if ((rc = prep(s, "INSERT OR IGNORE INTO job_deps(job_id, after_id) VALUES(?1,?2)", &q,
                       eb)) < 0)
            return rc;
        sq_bind_text(q, 1, id);
        sq_bind_text(q, 2, j->after[i]);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "record after");
        sqlite3_finalize(q);
    }
    if (rc == 0 && j->waiting_for != NULL) {
        char text[160];
        snprintf(text, sizeof text, "WAITING_FOR %s: starts when it has succeeded", j->waiting_for);
        if ((rc = prep(s, "UPDATE jobs SET reason='WAITING_FOR', message=?2 WHERE id=?1", &q, eb)) <
            0)
            return rc;
        sq_bind_text(q, 1, id);
        sq_bind_text(q, 2, text);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "record waiting");
        sqlite3_finalize(q);
    }
    return rc;
}

void sq_lineage_json(store *s, const char *id, json_t *job)
{
    json_t *spec = json_object_get(job, "spec");
    json_t *init = json_object_get(spec, "init_from");
    json_object_set_new(job, "init_from", init != NULL ? json_incref(init) : json_null());
    json_t *after = json_array();
    sqlite3_stmt *q;
    errbuf eb;
    if (prep(s,
             "SELECT d.after_id, coalesce(j.state, 'DELETED') FROM job_deps d"
             " LEFT JOIN jobs j ON j.id = d.after_id WHERE d.job_id=?1 ORDER BY d.after_id",
             &q, &eb) == 0) {
        sq_bind_text(q, 1, id);
        while (sqlite3_step(q) == SQLITE_ROW)
            json_array_append_new(
                after, json_pack("{s:s,s:s}", "id", sq_col_text(q, 0), "state", sq_col_text(q, 1)));
        sqlite3_finalize(q);
    }
    json_object_set_new(job, "after", after);
    json_t *sha = json_null();
    int blocked = 0;
    if (prep(s, "SELECT init_sha256, blocked FROM jobs WHERE id=?1", &q, &eb) == 0) {
        sq_bind_text(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            if (sqlite3_column_type(q, 0) != SQLITE_NULL)
                sha = json_string(sq_col_text(q, 0));
            blocked = sqlite3_column_int(q, 1);
        }
        sqlite3_finalize(q);
    }
    json_object_set_new(job, "init_sha256", sha);
    json_object_set_new(job, "blocked", json_boolean(blocked));
}

void sq_fill_init(store *s, const char *id, store_assignment *a)
{
    sqlite3_stmt *q;
    errbuf eb;
    if (prep(s, "SELECT init_file, init_sha256, init_size FROM jobs WHERE id=?1", &q, &eb) < 0)
        return;
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        snprintf(a->init_file, sizeof a->init_file, "%s", sq_col_text(q, 0));
        snprintf(a->init_sha256, sizeof a->init_sha256, "%s", sq_col_text(q, 1));
        a->init_size = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
}

int sq_init_users(store *s, const char *id, errbuf *eb)
{
    sqlite3_stmt *q;
    int rc = prep(s,
                  "SELECT id FROM jobs WHERE substr(init_file, 1, length(?1)) = ?1"
                  " AND state NOT IN ('SUCCEEDED','FAILED','CANCELLED') LIMIT 1",
                  &q, eb);
    if (rc < 0)
        return rc;
    char prefix[STORE_ID_MAX + 8];
    snprintf(prefix, sizeof prefix, "jobs/%s/", id);
    sq_bind_text(q, 1, prefix);
    if (sqlite3_step(q) == SQLITE_ROW)
        rc = err_set(eb, ERR_STATE, "job %s, which has not ended, starts from job %s's weights",
                     sq_col_text(q, 0), id);
    sqlite3_finalize(q);
    return rc;
}

int store_blocked_list(store *s, store_blocked **out, int *n, errbuf *eb)
{
    *out = NULL;
    *n = 0;
    int cap = 0, step;
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(s, "SELECT id, spec FROM jobs WHERE state='QUEUED' AND blocked=1 ORDER BY seq",
                  &q, eb);
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_blocked *b = &(*out)[(*n)++];
        snprintf(b->id, sizeof b->id, "%s", sq_col_text(q, 0));
        b->spec_json = xstrdup(sq_col_text(q, 1));
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sq_err(s, eb, "list blocked jobs");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_deps_state(store *s, const char *id, char which[STORE_ID_MAX], int *st, errbuf *eb)
{
    which[0] = '\0';
    *st = -1;
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(s,
                  "SELECT d.after_id, j.state FROM job_deps d LEFT JOIN jobs j"
                  " ON j.id = d.after_id WHERE d.job_id=?1 ORDER BY d.after_id",
                  &q, eb);
    if (rc == 0)
        sq_bind_text(q, 1, id);
    int result = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        int state =
            sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : store_state_parse(sq_col_text(q, 1));
        int r = state == JS_SUCCEEDED ? 0 : (state < 0 || (JS_TERMINAL & JS_BIT(state))) ? 2 : 1;
        if (r > result) {
            result = r;
            snprintf(which, STORE_ID_MAX, "%s", sq_col_text(q, 0));
            *st = state;
        }
        if (r == 2)
            break;
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc < 0 ? rc : result;
}

typedef struct job_wait_args {
    const char *id, *message;
} job_wait_args;

static int job_wait_tx(store *s, void *arg, errbuf *eb)
{
    const job_wait_args *x = arg;
    sqlite3_stmt *q;
    int rc = prep(s,
                  "UPDATE jobs SET reason='WAITING_FOR', message=?2, updated_at=?3 WHERE id=?1"
                  " AND state='QUEUED' AND blocked=1 AND (reason<>'WAITING_FOR' OR message<>?2)",
                  &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, x->id);
        sq_bind_text(q, 2, x->message);
        sqlite3_bind_double(q, 3, store_now());
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "note waiting");
    }
    sqlite3_finalize(q);
    return rc;
}

/* Counts in store_changes only when the message changed: lineage notes
 * every blocked job on each poll. */
int store_job_wait(store *s, const char *id, const char *message, errbuf *eb)
{
    job_wait_args x = {.id = id, .message = message};
    return sq_write(s, SQ_COUNT_ROWS, job_wait_tx, &x, eb);
}

typedef struct job_unblock_args {
    const char *id, *init_file, *init_sha256;
    int64_t init_size;
    const char *spec_json;
    double params, mflops;
} job_unblock_args;

static int job_unblock_tx(store *s, void *arg, errbuf *eb)
{
    const job_unblock_args *x = arg;
    sqlite3_stmt *q;
    int rc =
        prep(s,
             "UPDATE jobs SET blocked=0, reason='SUBMITTED', message='waiting for a free pool',"
             " init_file=?2, init_sha256=?3, init_size=?4, updated_at=?5,"
             " spec=coalesce(?6, spec), params=CASE WHEN ?6 IS NULL THEN params ELSE ?7 END,"
             " mflops=CASE WHEN ?6 IS NULL THEN mflops ELSE ?8 END"
             " WHERE id=?1 AND state='QUEUED' AND blocked=1",
             &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, x->id);
        sq_bind_text(q, 2, x->init_file);
        sq_bind_text(q, 3, x->init_file != NULL ? x->init_sha256 : NULL);
        if (x->init_file != NULL)
            sqlite3_bind_int64(q, 4, x->init_size);
        sqlite3_bind_double(q, 5, store_now());
        sq_bind_text(q, 6, x->spec_json);
        sqlite3_bind_double(q, 7, x->params);
        sqlite3_bind_double(q, 8, x->mflops);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "unblock job");
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = err_set(eb, ERR_STATE, "job %s is no longer waiting", x->id);
    }
    sqlite3_finalize(q);
    return rc;
}

int store_job_unblock(store *s, const char *id, const char *init_file, const char *init_sha256,
                      int64_t init_size, const char *spec_json, double params, double mflops,
                      errbuf *eb)
{
    job_unblock_args x = {.id = id,
                          .init_file = init_file,
                          .init_sha256 = init_sha256,
                          .init_size = init_size,
                          .spec_json = spec_json,
                          .params = params,
                          .mflops = mflops};
    return sq_write(s, SQ_COUNT_COMMIT, job_unblock_tx, &x, eb);
}

int store_job_spec(store *s, const char *id, char **spec_json, errbuf *eb)
{
    *spec_json = NULL;
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(s, "SELECT spec FROM jobs WHERE id=?1", &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW)
            *spec_json = xstrdup(sq_col_text(q, 0));
        else
            rc = err_set(eb, ERR_NOT_FOUND, "no job '%s'", id);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_checkpoint_latest(store *s, const char *id, char *path, size_t pathlen, long *step,
                            errbuf *eb)
{
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(
        s, "SELECT step, path FROM checkpoints WHERE job_id=?1 ORDER BY step DESC LIMIT 1", &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            *step = (long)sqlite3_column_int64(q, 0);
            snprintf(path, pathlen, "%s", sq_col_text(q, 1));
        } else {
            rc = err_set(eb, ERR_NOT_FOUND, "job %s has no checkpoint", id);
        }
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- uploaded models ---- */

void store_new_id(const char *prefix, char id[STORE_ID_MAX])
{
    sq_new_id(prefix, id);
}

typedef struct model_create_args {
    const store_model_new *m;
    const char *id;
} model_create_args;

static int model_create_tx(store *s, void *arg, errbuf *eb)
{
    const store_model_new *m = ((const model_create_args *)arg)->m;
    sqlite3_stmt *q;
    int rc = prep(s,
                  "INSERT INTO models(id,name,path,size,sha256,model,tensors,params,created_at)"
                  " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                  &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, ((const model_create_args *)arg)->id);
        sq_bind_text(q, 2, m->name);
        sq_bind_text(q, 3, m->path);
        sqlite3_bind_int64(q, 4, m->size);
        sq_bind_text(q, 5, m->sha256);
        sq_bind_text(q, 6, m->model_json);
        sqlite3_bind_int(q, 7, m->tensors);
        sqlite3_bind_int64(q, 8, m->params);
        sqlite3_bind_double(q, 9, store_now());
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : sq_err(s, eb, "insert model");
    }
    sqlite3_finalize(q);
    return rc;
}

int store_model_create(store *s, const store_model_new *m, const char *id, errbuf *eb)
{
    model_create_args x = {.m = m, .id = id};
    return sq_write(s, SQ_COUNT_COMMIT, model_create_tx, &x, eb);
}

#define MODEL_COLS "id,name,size,sha256,model,tensors,params,created_at,path"

static json_t *model_row(sqlite3_stmt *q)
{
    json_t *model = NULL;
    if (sqlite3_column_type(q, 4) != SQLITE_NULL)
        model = json_loads(sq_col_text(q, 4), 0, NULL);
    char url[128];
    snprintf(url, sizeof url, "/api/v1/models/%s/file", sq_col_text(q, 0));
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:i,s:I,s:o,s:s}", "id", sq_col_text(q, 0), "name",
                     sq_col_text(q, 1), "size", (json_int_t)sqlite3_column_int64(q, 2), "sha256",
                     sq_col_text(q, 3), "model", model != NULL ? model : json_null(), "tensors",
                     sqlite3_column_int(q, 5), "params", (json_int_t)sqlite3_column_int64(q, 6),
                     "created_at", sq_col_time(q, 7), "url", url);
}

int store_model_get(store *s, const char *id, json_t **out, char *path, size_t pathlen, errbuf *eb)
{
    *out = NULL;
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(s, "SELECT " MODEL_COLS " FROM models WHERE id=?1", &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            *out = model_row(q);
            if (path != NULL)
                snprintf(path, pathlen, "%s", sq_col_text(q, 8));
        } else {
            rc = err_set(eb, ERR_NOT_FOUND, "no uploaded model '%s'", id);
        }
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_model_list(store *s, json_t **out, errbuf *eb)
{
    *out = json_array();
    sqlite3_stmt *q;
    pthread_mutex_lock(&s->mu);
    int rc = prep(s, "SELECT " MODEL_COLS " FROM models ORDER BY seq DESC", &q, eb), step;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW)
        json_array_append_new(*out, model_row(q));
    if (rc == 0 && step != SQLITE_DONE)
        rc = sq_err(s, eb, "list models");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

typedef struct model_delete_args {
    const char *id;
    char *path;
    size_t pathlen;
} model_delete_args;

static int model_delete_tx(store *s, void *arg, errbuf *eb)
{
    const model_delete_args *x = arg;
    sqlite3_stmt *q;
    int rc = prep(s,
                  "SELECT j.id FROM jobs j JOIN models m ON j.init_file = m.path WHERE m.id=?1"
                  " AND j.state NOT IN ('SUCCEEDED','FAILED','CANCELLED') LIMIT 1",
                  &q, eb);
    if (rc == 0) {
        sq_bind_text(q, 1, x->id);
        if (sqlite3_step(q) == SQLITE_ROW)
            rc = err_set(eb, ERR_STATE, "job %s, which has not ended, starts from model %s",
                         sq_col_text(q, 0), x->id);
    }
    sqlite3_finalize(q);
    if (rc == 0)
        rc = prep(s, "DELETE FROM models WHERE id=?1 RETURNING path", &q, eb);
    else
        q = NULL;
    if (rc == 0) {
        sq_bind_text(q, 1, x->id);
        if (sqlite3_step(q) == SQLITE_ROW)
            snprintf(x->path, x->pathlen, "%s", sq_col_text(q, 0));
        else
            rc = err_set(eb, ERR_NOT_FOUND, "no uploaded model '%s'", x->id);
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        }
    }
    sqlite3_finalize(q);
    return rc;
}

int store_model_delete(store *s, const char *id, char *path, size_t pathlen, errbuf *eb)
{
    model_delete_args x = {.id = id, .path = path, .pathlen = pathlen};
    return sq_write(s, SQ_COUNT_COMMIT, model_delete_tx, &x, eb);
}
