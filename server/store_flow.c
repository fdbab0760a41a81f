/* store_flow.c - lineage (after, init_from resolved) and uploaded models (see store.h).
 *
 * Part of the store (store_impl.h): the job_deps and models tables and the
 * init_* and blocked columns of jobs (schema version 2). Like every store
 * statement, these are prepared once and cached (sq_stmt).
 */
#include "common/xalloc.h"
#include "server/store_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_flow_insert(store *s, const char *id, const store_job_new *j, errbuf *eb)
{
    sqlite3_stmt *q = sq_stmt(s, Q_FLOW_INIT);
    sq_bind_text(q, 1, id);
    sq_bind_text(q, 2, j->init_file);
    sq_bind_text(q, 3, j->init_file != NULL ? j->init_sha256 : NULL);
    if (j->init_file != NULL)
        sqlite3_bind_int64(q, 4, j->init_size);
    sqlite3_bind_int(q, 5, j->waiting_for != NULL);
    int rc = sq_step_done(s, q, "record init_from", eb);
    for (int i = 0; rc == 0 && i < j->n_after; i++) {
        q = sq_stmt(s, Q_DEP_INSERT);
        sq_bind_text(q, 1, id);
        sq_bind_text(q, 2, j->after[i]);
        rc = sq_step_done(s, q, "record after", eb);
    }
    if (rc == 0 && j->waiting_for != NULL) {
        char text[160];
        snprintf(text, sizeof text, "WAITING_FOR %s: starts when it has succeeded", j->waiting_for);
        q = sq_stmt(s, Q_JOB_WAITING);
        sq_bind_text(q, 1, id);
        sq_bind_text(q, 2, text);
        rc = sq_step_done(s, q, "record waiting", eb);
    }
    return rc;
}

/* One dependency of the lineage view: {"id","state"} ("DELETED" when gone). */
static json_t *dep_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
    const char *state = sqlite3_column_type(q, 1) == SQLITE_NULL ? "DELETED" : sq_col_text(q, 1);
    return json_pack("{s:s,s:s}", "id", sq_col_text(q, 0), "state", state);
}

void sq_lineage_json(store *s, const char *id, json_t *job)
{
    json_t *spec = json_object_get(job, "spec");
    json_t *init = json_object_get(spec, "init_from");
    json_object_set_new(job, "init_from", init != NULL ? json_incref(init) : json_null());
    json_t *after = json_array();
    sqlite3_stmt *q = sq_stmt(s, Q_DEPS_OF);
    sq_bind_text(q, 1, id);
    (void)sq_collect_json(s, q, after, dep_row, NULL, "read after", NULL);
    json_object_set_new(job, "after", after);
    json_t *sha = json_null();
    int blocked = 0;
    q = sq_stmt(s, Q_JOB_LINEAGE);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        if (sqlite3_column_type(q, 0) != SQLITE_NULL)
            sha = json_string(sq_col_text(q, 0));
        blocked = sqlite3_column_int(q, 1);
    }
    sq_done(q);
    json_object_set_new(job, "init_sha256", sha);
    json_object_set_new(job, "blocked", json_boolean(blocked));
}

void sq_fill_init(store *s, const char *id, store_assignment *a)
{
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_INIT);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        snprintf(a->init_file, sizeof a->init_file, "%s", sq_col_text(q, 0));
        snprintf(a->init_sha256, sizeof a->init_sha256, "%s", sq_col_text(q, 1));
        a->init_size = sqlite3_column_int64(q, 2);
    }
    sq_done(q);
}

int sq_init_users(store *s, const char *id, errbuf *eb)
{
    char prefix[STORE_ID_MAX + 8];
    snprintf(prefix, sizeof prefix, "jobs/%s/", id);
    sqlite3_stmt *q = sq_stmt(s, Q_INIT_USERS);
    sq_bind_text(q, 1, prefix);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        rc = err_set(eb, ERR_STATE, "job %s, which has not ended, starts from job %s's weights",
                     sq_col_text(q, 0), id);
    sq_done(q);
    return rc;
}

static void fill_blocked(sqlite3_stmt *q, void *elem, void *arg)
{
    (void)arg;
    store_blocked *b = elem;
    snprintf(b->id, sizeof b->id, "%s", sq_col_text(q, 0));
    b->spec_json = xstrdup(sq_col_text(q, 1));
}

static void free_blocked(void *elem)
{
    free(((store_blocked *)elem)->spec_json);
}

int store_blocked_list(store *s, store_blocked **out, int *n, errbuf *eb)
{
    return sq_list(s, Q_BLOCKED, sizeof **out, fill_blocked, free_blocked, "list blocked jobs",
                   (void **)out, n, eb);
}

/* How the after list stands so far (store_deps_state). */
typedef struct deps_worst {
    int result; /* 0 all succeeded, 1 one still to end, 2 one ended otherwise or gone */
    char *which;
    int *st;
} deps_worst;

static int dep_state_row(sqlite3_stmt *q, void *arg)
{
    deps_worst *w = arg;
    int state =
        sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : store_state_parse(sq_col_text(q, 1));
    int r = state == JS_SUCCEEDED ? 0 : (state < 0 || (JS_TERMINAL & JS_BIT(state))) ? 2 : 1;
    if (r > w->result) {
        w->result = r;
        snprintf(w->which, STORE_ID_MAX, "%s", sq_col_text(q, 0));
        *w->st = state;
    }
    return r == 2;
}

int store_deps_state(store *s, const char *id, char which[STORE_ID_MAX], int *st, errbuf *eb)
{
    (void)eb; /* a failed read counts as what was read so far */
    which[0] = '\0';
    *st = -1;
    deps_worst w = {.which = which, .st = st};
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_DEPS_OF);
    sq_bind_text(q, 1, id);
    (void)sq_each(s, q, dep_state_row, &w, "read after", NULL);
    pthread_mutex_unlock(&s->mu);
    return w.result;
}

typedef struct job_wait_args {
    const char *id, *message;
} job_wait_args;

static int job_wait_tx(store *s, void *arg, errbuf *eb)
{
    const job_wait_args *x = arg;
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_WAIT);
    sq_bind_text(q, 1, x->id);
    sq_bind_text(q, 2, x->message);
    sqlite3_bind_double(q, 3, store_now());
    return sq_step_done(s, q, "note waiting", eb);
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
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_UNBLOCK);
    sq_bind_text(q, 1, x->id);
    sq_bind_text(q, 2, x->init_file);
    sq_bind_text(q, 3, x->init_file != NULL ? x->init_sha256 : NULL);
    if (x->init_file != NULL)
        sqlite3_bind_int64(q, 4, x->init_size);
    sqlite3_bind_double(q, 5, store_now());
    sq_bind_text(q, 6, x->spec_json);
    sqlite3_bind_double(q, 7, x->params);
    sqlite3_bind_double(q, 8, x->mflops);
    int rc = sq_step_done(s, q, "unblock job", eb);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_STATE, "job %s is no longer waiting", x->id);
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
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_JOB_SPEC);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW)
        *spec_json = xstrdup(sq_col_text(q, 0));
    else
        rc = err_set(eb, ERR_NOT_FOUND, "no job '%s'", id);
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_checkpoint_latest(store *s, const char *id, char *path, size_t pathlen, long *step,
                            errbuf *eb)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_CKPT_LATEST);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        *step = (long)sqlite3_column_int64(q, 0);
        snprintf(path, pathlen, "%s", sq_col_text(q, 1));
    } else {
        rc = err_set(eb, ERR_NOT_FOUND, "job %s has no checkpoint", id);
    }
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- uploaded models ---- */

void store_new_id(const char *prefix, char id[STORE_ID_MAX])
{
    sq_new_id(prefix, id);
}

int store_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= STORE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
            return 0;
    return 1;
}

typedef struct model_create_args {
    const store_model_new *m;
    const char *id;
} model_create_args;

static int model_create_tx(store *s, void *arg, errbuf *eb)
{
    const model_create_args *x = arg;
    const store_model_new *m = x->m;
    sqlite3_stmt *q = sq_stmt(s, Q_MODEL_INSERT);
    sq_bind_text(q, 1, x->id);
    sq_bind_text(q, 2, m->name);
    sq_bind_text(q, 3, m->path);
    sqlite3_bind_int64(q, 4, m->size);
    sq_bind_text(q, 5, m->sha256);
    sq_bind_text(q, 6, m->model_json);
    sqlite3_bind_int(q, 7, m->tensors);
    sqlite3_bind_int64(q, 8, m->params);
    sqlite3_bind_double(q, 9, store_now());
    return sq_step_done(s, q, "insert model", eb);
}

int store_model_create(store *s, const store_model_new *m, const char *id, errbuf *eb)
{
    model_create_args x = {.m = m, .id = id};
    return sq_write(s, SQ_COUNT_COMMIT, model_create_tx, &x, eb);
}

/* One models row (Q_MODEL_GET / Q_MODEL_LIST columns) as the API shows it
 * (an sq_json_fn; arg unused). */
static json_t *model_row(sqlite3_stmt *q, void *arg)
{
    (void)arg;
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
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = sq_stmt(s, Q_MODEL_GET);
    sq_bind_text(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        *out = model_row(q, NULL);
        if (path != NULL)
            snprintf(path, pathlen, "%s", sq_col_text(q, 8));
    } else {
        rc = err_set(eb, ERR_NOT_FOUND, "no uploaded model '%s'", id);
    }
    sq_done(q);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_model_list(store *s, json_t **out, errbuf *eb)
{
    *out = json_array();
    pthread_mutex_lock(&s->mu);
    int rc = sq_collect_json(s, sq_stmt(s, Q_MODEL_LIST), *out, model_row, NULL, "list models", eb);
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
    sqlite3_stmt *q = sq_stmt(s, Q_MODEL_USERS);
    sq_bind_text(q, 1, x->id);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        rc = err_set(eb, ERR_STATE, "job %s, which has not ended, starts from model %s",
                     sq_col_text(q, 0), x->id);
    sq_done(q);
    if (rc < 0)
        return rc;
    q = sq_stmt(s, Q_MODEL_DELETE);
    sq_bind_text(q, 1, x->id);
    if (sqlite3_step(q) == SQLITE_ROW)
        snprintf(x->path, x->pathlen, "%s", sq_col_text(q, 0));
    else
        rc = err_set(eb, ERR_NOT_FOUND, "no uploaded model '%s'", x->id);
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
    }
    sq_done(q);
    return rc;
}

int store_model_delete(store *s, const char *id, char *path, size_t pathlen, errbuf *eb)
{
    model_delete_args x = {.id = id, .path = path, .pathlen = pathlen};
    return sq_write(s, SQ_COUNT_COMMIT, model_delete_tx, &x, eb);
}
