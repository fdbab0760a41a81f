/* handlers_jobs.c - submit, list, get, cancel and delete jobs (see handlers.h). */
#include "common/clock.h"
#include "common/files.h"
#include "common/jobspec.h"
#include "common/log.h"
#include "common/modelmem.h"
#include "common/xalloc.h"
#include "server/admission.h"
#include "server/handlers.h"
#include "server/lineage.h"
#include "server/stats.h"
#include "server/submitq.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int app_parse_spec(const json_t *in, json_t **canonical, spec_info *info, field_errors *fe)
{
    return app_parse_spec_flags(in, canonical, info, fe, 0);
}

int app_parse_spec_flags(const json_t *in, json_t **canonical, spec_info *info, field_errors *fe,
                         unsigned flags)
{
    job_spec js;
    memset(info, 0, sizeof *info);
    int rc = jobspec_parse_flags(&js, canonical, in, fe, flags);
    if (rc == 0) {
        snprintf(info->name, sizeof info->name, "%s", js.name);
        snprintf(info->type, sizeof info->type, "%s", jobspec_type_name(js.type));
        info->priority = js.priority;
        info->ranks = js.ranks;
        info->max_restarts = js.max_restarts;
        info->keep_last = js.ckpt_keep_last;
        info->params = js.params;
        info->mflops = js.mflops;
        info->batch_per_rank = js.ranks > 0 ? js.optim.batch_size / js.ranks : 1;
        model_memory mm;
        modelmem_estimate(&js.model, info->batch_per_rank, js.optim.ema > 0, &mm);
        info->mem_per_rank = mm.total_bytes;
        info->mem_state = mm.state_bytes;
        snprintf(info->idem_key, sizeof info->idem_key, "%s", js.idempotency_key);
    }
    jobspec_free(&js);
    return rc;
}

void job_dir(const app *a, const char *id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/jobs/%s", a->data_dir, id);
}

int query_int(http_request *req, http_response *resp, const char *key, long long lo, long long hi,
              long long dflt, long long *out)
{
    const char *v = http_query(req, key);
    *out = dflt;
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    char reason[160];
    /* digits with an optional minus sign: no spaces, no plus, nothing after */
    if (v[0] == '\0' || *end != '\0' || !(isdigit((unsigned char)v[0]) || v[0] == '-')) {
        snprintf(reason, sizeof reason, "must be an integer, got '%.40s'", v);
        return api_error_field(resp, req, 400, key, reason);
    }
    if (errno == ERANGE || x < lo || x > hi) { /* out of range is refused, never clamped */
        if (errno == ERANGE) {
            snprintf(reason, sizeof reason, "must be in %lld..%lld, got '%.40s'", lo, hi, v);
            return api_error_field(resp, req, 400, key, reason);
        }
        snprintf(reason, sizeof reason, "must be in %lld..%lld, got %lld", lo, hi, x);
        return api_error_field(resp, req, 400, key, reason);
    }
    *out = x;
    return 0;
}

static int not_found(http_response *resp, http_request *req, const char *id)
{
    return api_error(resp, req, 404, NULL, "no job '%.80s'", id);
}

static int store_failure(http_response *resp, http_request *req, int rc, const errbuf *eb)
{
    log_error("%s %s: %s (%s)", req->method, req->path, eb->msg, err_str(rc));
    return api_error(resp, req, rc == ERR_BUSY ? 503 : 500, NULL, "the job store failed: %s",
                     eb->msg);
}

static void hash_hex(const char *text, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int flag_true(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || v[0] == '\0');
}

/* Admission control: 0 when the job may be queued, else the 400 answer. */
static int admit(app *a, http_request *req, http_response *resp, const spec_info *info)
{
    if (info->mem_per_rank <= 0)
        return 0;
    admission_need n = {.per_rank = info->mem_per_rank,
                        .state = info->mem_state,
                        .params = info->params,
                        .ranks = info->ranks > 0 ? info->ranks : 1,
                        .batch_per_rank = info->batch_per_rank};
    json_t *pools = a->workers != NULL ? a->workers(a->broker_ctx) : NULL;
    char field[32], reason[400];
    int rc = admission_check(&n, pools, a->max_job_memory, field, reason);
    json_decref(pools);
    if (rc == 0)
        return 0;
    log_info("job refused at admission: %s: %s", field, reason);
    return api_error_field(resp, req, 400, field, reason);
}

/* A spec without "model" whose init_from names a job or uploaded model
 * takes the model of those weights: *filled is the spec with it (new
 * reference), or NULL with *flags JOBSPEC_MODEL_LATER when the source is
 * an `after` job that has not ended. 0, or 400 filled in resp. */
static int fill_model(app *a, http_request *req, http_response *resp, json_t **filled,
                      unsigned *flags)
{
    *filled = NULL;
    *flags = 0;
    const json_t *in = req->json;
    if (!json_is_object(in) || json_object_get(in, "model") != NULL ||
        json_object_get(in, "init_from") == NULL)
        return 0;
    json_t *m = NULL;
    int deferred = 0;
    errbuf eb;
    if (initsrc_source_model(a->st, a->data_dir, in, &m, &deferred, &eb) != 0) {
        const char *why = strncmp(eb.msg, "init_from: ", 11) == 0 ? eb.msg + 11 : eb.msg;
        return api_error_field(resp, req, 400, "init_from", why);
    }
    if (m != NULL) {
        *filled = json_deep_copy(in);
        json_object_set_new(*filled, "model", m);
    } else if (deferred) {
        *flags = JOBSPEC_MODEL_LATER;
    }
    return 0;
}

/* Parses the submitted spec (the model of its init_from filled in when it
 * has none): 0 with *canon and *info, or the error status with resp filled. */
static int parse_submitted(app *a, http_request *req, http_response *resp, json_t **canon,
                           spec_info *info)
{
    field_errors fe;
    fe_init(&fe);
    spec_parse_fn parse = a->parse_spec != NULL ? a->parse_spec : app_parse_spec;
    json_t *filled;
    unsigned flags;
    if (fill_model(a, req, resp, &filled, &flags) != 0)
        return resp->status;
    int rc = flags != 0 ? app_parse_spec_flags(req->json, canon, info, &fe, flags)
                        : parse(filled != NULL ? filled : req->json, canon, info, &fe);
    json_decref(filled);
    if (rc == ERR_UNSUPPORTED) {
        const char *t = json_string_value(json_object_get(req->json, "type"));
        return api_error(resp, req, 501, &fe,
                         "job type '%s' is valid but not implemented in this build yet; only "
                         "train jobs can run",
                         t != NULL ? t : "?");
    }
    if (rc < 0) {
        char text[768];
        fe_format(&fe, text, sizeof text);
        return api_error(resp, req, 400, &fe, "the job spec is invalid: %s", text);
    }
    return 0;
}

/* The Idempotency-Key header into info (it must agree with the spec's
 * idempotency_key): 0, or 400 with resp filled. */
static int idem_header(http_request *req, http_response *resp, spec_info *info)
{
    const char *hkey = http_header(req, "Idempotency-Key");
    if (hkey == NULL || hkey[0] == '\0')
        return 0;
    if (strlen(hkey) >= sizeof info->idem_key)
        return api_error_field(resp, req, 400, "Idempotency-Key", "longer than 127 bytes");
    if (info->idem_key[0] != '\0' && strcmp(info->idem_key, hkey) != 0)
        return api_error_field(resp, req, 400, "idempotency_key",
                               "differs from the Idempotency-Key header");
    snprintf(info->idem_key, sizeof info->idem_key, "%s", hkey);
    return 0;
}

/* lineage_prepare with its failure answered (400 naming the field, or 500). */
static int check_lineage(app *a, http_request *req, http_response *resp, const json_t *canon,
                         lineage *lin)
{
    char field[32];
    errbuf eb;
    int rc = lineage_prepare(a->st, a->data_dir, canon, lin, field, sizeof field, &eb);
    if (rc == 0)
        return 0;
    lineage_free(lin);
    if (rc != ERR_INVALID)
        return store_failure(resp, req, rc, &eb);
    size_t fl = strlen(field);
    const char *why = eb.msg;
    if (strncmp(why, field, fl) == 0 && strncmp(why + fl, ": ", 2) == 0)
        why += fl + 2;
    return api_error_field(resp, req, 400, field, why);
}

/* Stores the job; answers 201 (or 200 for an idempotent replay) with it. */
/* A submission on its way to the store: what store_job_new points to. */
typedef struct submission {
    app *a;
    http_request *req;
    http_deferred *d; /* NULL: stored and answered on the handler's thread */
    spec_info info;
    lineage lin;
    char *text; /* the canonical spec, compact */
    char hash[65];
    store_job_new nj;
    double t0; /* when the handler began, for the request's time in the stats */
} submission;

static submission *submission_new(app *a, http_request *req, const json_t *canon,
                                  const spec_info *info, lineage *lin)
{
    submission *sb = xcalloc(1, sizeof *sb);
    sb->t0 = clock_mono_s();
    sb->a = a;
    sb->req = req;
    sb->info = *info;
    lineage_move(&sb->lin, lin);
    sb->text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    hash_hex(sb->text, sb->hash);
    const spec_info *in = &sb->info;
    sb->nj = (store_job_new){.name = in->name,
                             .type = in->type,
                             .priority = in->priority,
                             .ranks = in->ranks,
                             .max_restarts = in->max_restarts,
                             .keep_last = in->keep_last,
                             .spec_json = sb->text,
                             .params = in->params,
                             .mflops = in->mflops,
                             .idem_key = in->idem_key,
                             .body_hash = sb->hash,
                             .owner = req->principal,
                             .owner_max_queued = a->owner_limits.max_queued};
    lineage_to_job(&sb->lin, &sb->nj);
    return sb;
}

static void submission_free(submission *sb)
{
    lineage_free(&sb->lin);
    free(sb->text);
    free(sb);
}

/* The answer to a stored (or refused) submission: 201 with the job, 200
 * with the job an idempotency key already made, 409 or a store failure. */
static int answer_submission(submission *sb, http_response *resp, const store_job_batch *out)
{
    app *a = sb->a;
    http_request *req = sb->req;
    if (out->rc == ERR_EXISTS)
        return api_error_field(resp, req, 409, "idempotency_key", out->eb.msg);
    if (out->rc == ERR_TOO_LARGE) /* the owner's queue is full */
        return api_error(resp, req, 429, NULL, "%s", out->eb.msg);
    if (out->rc < 0)
        return store_failure(resp, req, out->rc, &out->eb);
    json_t *job;
    errbuf eb;
    int grc = store_job_get(a->st, out->id, &job, &eb);
    if (grc < 0)
        return store_failure(resp, req, grc, &eb);
    char loc[128];
    snprintf(loc, sizeof loc, "/api/v1/jobs/%s", out->id);
    http_response_header(resp, "Location", loc);
    if (out->rc == 1) /* the same request again: the job it made */
        return api_json(resp, 200, job);
    log_info("job %s submitted: %s '%s', priority %d, %d ranks", out->id, sb->info.type,
             sb->info.name, sb->info.priority, sb->info.ranks);
    if (a->wake != NULL)
        a->wake(a->broker_ctx);
    return api_json(resp, 201, job);
}

/* submitq's callback, on its thread: answer the waiting client. */
static void submission_done(void *ctx, const store_job_batch *out)
{
    submission *sb = ctx;
    http_deferred *d = sb->d;
    int status = answer_submission(sb, http_deferred_response(d), out);
    stats_http(sb->a->stats, sb->req->route, status, clock_mono_s() - sb->t0);
    submission_free(sb);
    http_deferred_send(d); /* req is the http layer's again from here */
}

/* Stores the job: through the group commit when the server has one and the
 * connection can wait for it, else here. Either way the reply follows the
 * job's fsync. lin is moved into the submission. */
static int store_submitted(app *a, http_request *req, http_response *resp, const json_t *canon,
                           const spec_info *info, lineage *lin)
{
    submission *sb = submission_new(a, req, canon, info, lin);
    if (a->submits != NULL) {
        sb->d = http_defer(req, resp);
        if (sb->d != NULL) {
            if (submitq_push(a->submits, &sb->nj, submission_done, sb) == 0)
                return 0; /* answered by submission_done */
            /* draining (the server stops): store it here after all */
            http_defer_cancel(resp);
            sb->d = NULL;
        }
    }
    store_job_batch out = {.job = &sb->nj};
    out.rc = store_job_create(a->st, &sb->nj, out.id, &out.eb);
    int status = answer_submission(sb, resp, &out);
    submission_free(sb);
    return status;
}

int jobs_create(app *a, http_request *req, http_response *resp)
{
    const char *dry = http_query(req, "dry_run");
    if (dry != NULL && !flag_true(dry) && strcmp(dry, "false") != 0 && strcmp(dry, "0") != 0)
        return api_error_field(resp, req, 400, "dry_run", "must be true or false");
    spec_info info;
    memset(&info, 0, sizeof info);
    json_t *canon = NULL;
    lineage lin;
    if (parse_submitted(a, req, resp, &canon, &info) != 0)
        return resp->status;
    if (admit(a, req, resp, &info) != 0 || idem_header(req, resp, &info) != 0 ||
        check_lineage(a, req, resp, canon, &lin) != 0) {
        json_decref(canon);
        return resp->status;
    }
    int status;
    if (flag_true(dry))
        status = api_json(resp, 200,
                          json_pack("{s:b,s:O,s:I,s:f}", "valid", 1, "spec", canon, "params",
                                    (json_int_t)info.params, "mflops", info.mflops));
    else
        status = store_submitted(a, req, resp, canon, &info, &lin); /* takes lin */
    lineage_free(&lin);
    json_decref(canon);
    return status;
}

/* Page tokens are opaque to clients: "p" (newest first) or "r" (by
 * priority) + the hex cursor; a token works only with its own order. */
static void token_make(char order, int64_t cursor, char out[32])
{
    snprintf(out, 32, "%c%" PRIx64, order, (uint64_t)cursor);
}

static int token_parse(const char *t, char order, int64_t *cursor)
{
    if (t[0] != order || t[1] == '\0' || strlen(t) > 17)
        return -1;
    char *end;
    unsigned long long v = strtoull(t + 1, &end, 16);
    if (*end != '\0' || v == 0 || v > INT64_MAX)
        return -1;
    *cursor = (int64_t)v;
    return 0;
}

int jobs_list(app *a, http_request *req, http_response *resp)
{
    store_list_query q = {.state = -1};
    long long ps;
    if (query_int(req, resp, "page_size", 1, 1000, 50, &ps) != 0)
        return resp->status;
    q.page_size = (int)ps;
    const char *state = http_query(req, "state");
    if (state != NULL) {
        q.state = store_state_parse(state);
        if (q.state < 0)
            return api_error_field(resp, req, 400, "state",
                                   "must be one of QUEUED, STARTING, RUNNING, RESTARTING, "
                                   "CANCELLING, SUCCEEDED, FAILED, CANCELLED");
    }
    const char *type = http_query(req, "type");
    if (type != NULL) {
        if (strcmp(type, "train") != 0 && strcmp(type, "prune") != 0 && strcmp(type, "adapt") != 0)
            return api_error_field(resp, req, 400, "type", "must be train, prune or adapt");
        q.type = type;
    }
    q.q = http_query(req, "q");
    q.owner = http_query(req, "owner");
    const char *order = http_query(req, "order_by");
    if (order != NULL && strcmp(order, "created_at") != 0 && strcmp(order, "priority") != 0)
        return api_error_field(resp, req, 400, "order_by", "must be created_at or priority");
    q.by_priority = order != NULL && strcmp(order, "priority") == 0;
    char ord = q.by_priority ? 'r' : 'p';
    const char *tok = http_query(req, "page_token");
    if (tok != NULL && tok[0] != '\0' && token_parse(tok, ord, &q.before) != 0)
        return api_error_field(resp, req, 400, "page_token",
                               "not a token this server gave out for this order_by (use "
                               "next_page_token)");
    json_t *items;
    int64_t next;
    errbuf eb;
    int rc = store_job_list(a->st, &q, &items, &next, &eb);
    if (rc < 0)
        return store_failure(resp, req, rc, &eb);
    json_t *out = json_pack("{s:o}", "jobs", items);
    if (next > 0) {
        char t[32];
        token_make(ord, next, t);
        json_object_set_new(out, "next_page_token", json_string(t));
    } else {
        json_object_set_new(out, "next_page_token", json_null());
    }
    return api_json(resp, 200, out);
}

/* The job view of id into *job (new reference): 0, or the answer's status (404 or a
 * store failure) with resp filled. */
static int job_or_answer(app *a, http_request *req, http_response *resp, const char *id,
                         json_t **job)
{
    errbuf eb;
    int rc = store_job_get(a->st, id, job, &eb);
    if (rc == ERR_NOT_FOUND)
        return not_found(resp, req, id);
    return rc < 0 ? store_failure(resp, req, rc, &eb) : 0;
}

int jobs_get(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0];
    if (!store_id_valid(id))
        return not_found(resp, req, id);
    json_t *job;
    int rc = job_or_answer(a, req, resp, id, &job);
    return rc != 0 ? rc : api_json(resp, 200, job);
}

/* Ownership: with tokens, a token without the admin scope acts only on the
 * jobs it submitted. 0 when req may act on job id, else the answer's status
 * (403 naming the owner, 404, or a store failure) with resp filled. */
static int may_act(app *a, http_request *req, http_response *resp, const char *id, const char *what)
{
    if (a->auth == NULL || (req->scopes & AUTH_ADMIN) != 0)
        return 0;
    json_t *job;
    int rc = job_or_answer(a, req, resp, id, &job);
    if (rc != 0)
        return rc;
    const char *owner = json_string_value(json_object_get(job, "owner"));
    if (owner == NULL)
        owner = "";
    if (strcmp(owner, req->principal) == 0) {
        json_decref(job);
        return 0;
    }
    rc = api_error(resp, req, 403, NULL,
                   "job %s belongs to '%s': token '%s' may %s only the jobs it submitted (an "
                   "admin token may act on any)",
                   id, owner[0] ? owner : "(submitted without a token)", req->principal, what);
    json_decref(job);
    return rc;
}

/* The job a cancel or delete (`what`) names, when req may act on it; NULL with resp
 * filled (404, 403 or a store failure) otherwise. */
static const char *job_to_act_on(app *a, http_request *req, http_response *resp, const char *what)
{
    const char *id = req->params[0];
    if (!store_id_valid(id)) {
        not_found(resp, req, id);
        return NULL;
    }
    return may_act(a, req, resp, id, what) == 0 ? id : NULL;
}

int jobs_cancel(app *a, http_request *req, http_response *resp)
{
    const char *id = job_to_act_on(a, req, resp, "cancel");
    if (id == NULL)
        return resp->status;
    errbuf eb;
    int rc = 0;
    /* A compare-and-set can lose a race with the broker (the job just
     * started or ended): read again and retry a few times. */
    for (int tries = 0; tries < 5; tries++) {
        job_state st;
        rc = store_job_state(a->st, id, &st, NULL, NULL, &eb);
        if (rc == ERR_NOT_FOUND)
            return not_found(resp, req, id);
        if (rc < 0)
            return store_failure(resp, req, rc, &eb);
        if (JS_TERMINAL & JS_BIT(st))
            return api_error(resp, req, 409, NULL,
                             "job %s is already %s; only queued or running jobs can be cancelled",
                             id, store_state_name(st));
        if (st == JS_CANCELLING) {
            rc = 0;
            break;
        }
        if (JS_RUNNABLE & JS_BIT(st))
            rc = store_transition(a->st, id, JS_BIT(st), JS_CANCELLED, "USER_CANCELLED",
                                  st == JS_QUEUED ? "cancelled before it started"
                                                  : "cancelled while waiting to restart",
                                  NULL, &eb);
        else
            rc = store_transition(a->st, id, JS_BIT(st), JS_CANCELLING, "USER_CANCELLED",
                                  "cancel requested; the pool stops at its next step", NULL, &eb);
        if (rc != ERR_STATE)
            break;
    }
    if (rc < 0)
        return store_failure(resp, req, rc, &eb);
    if (a->wake != NULL)
        a->wake(a->broker_ctx);
    log_info("job %s: cancel requested", id);
    json_t *job;
    rc = store_job_get(a->st, id, &job, &eb);
    if (rc < 0)
        return store_failure(resp, req, rc, &eb);
    return api_json(resp, 202, job);
}

int jobs_delete(app *a, http_request *req, http_response *resp)
{
    const char *id = job_to_act_on(a, req, resp, "delete");
    if (id == NULL)
        return resp->status;
    errbuf eb;
    int rc = store_job_delete(a->st, id, &eb);
    if (rc == ERR_NOT_FOUND)
        return not_found(resp, req, id);
    if (rc == ERR_STATE)
        return api_error(resp, req, 409, NULL, "%s; cancel it first", eb.msg);
    if (rc < 0)
        return store_failure(resp, req, rc, &eb);
    char dir[KILN_PATH_MAX];
    job_dir(a, id, dir, sizeof dir);
    if (files_remove_tree(dir, &eb) < 0)
        log_warn("job %s deleted, but its files were not all removed: %s", id, eb.msg);
    log_info("job %s deleted", id);
    resp->status = 204;
    return 204;
}
