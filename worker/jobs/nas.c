/* nas.c - what the prune and adapt jobs share (see nas.h). */
#include "worker/jobs/nas.h"

#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "worker/jobs/checkpoint.h"
#include "worker/nn/loss.h"
#include "worker/nn/optim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CALIB_TAG 0x63616c6962ULL /* "calib" */
#define PI        3.14159265358979323846

double nas_now(void)
{
    return clock_mono_s();
}

/* ---- set-up ------------------------------------------------------------------------- */

/* The splits the search uses (the validation tail is left to the retrain). */
static int load_data(nas_job *j, const job_spec *spec, errbuf *eb)
{
    int rc = dataset_load(&j->train, &j->test, &spec->data, eb);
    if (rc != 0)
        return rc;
    if (spec->data.val_fraction > 0) {
        dataset val;
        int nval = dataset_val_count(&j->train, spec->data.val_fraction);
        dataset_split_tail(&j->train, &val, nval);
        dataset_free(&val);
    }
    return dataset_fits_model(&j->train, &spec->model, eb);
}

int nas_init(nas_job *j, const job_spec *spec, const job_env *env, int batch, int calib_batches,
             int eval_limit, errbuf *eb)
{
    memset(j, 0, sizeof *j);
    j->spec = spec;
    j->env = env;
    j->d = env->dist != NULL ? env->dist : dist_single();
    j->calib_batches = calib_batches;
    int rc = load_data(j, spec, eb);
    if (rc != 0)
        return rc;
    const model_cfg *c = &spec->model;
    j->K = c->num_classes;
    j->eval = j->test;
    if (eval_limit > 0 && eval_limit < j->eval.n)
        j->eval.n = eval_limit;
    if (batch % j->d->world != 0)
        return err_set(eb, ERR_INVALID, "batch size %d is not divisible by %d ranks", batch,
                       j->d->world);
    j->b = batch / j->d->world;
    j->steps_per_epoch = j->train.n / batch;
    if (j->steps_per_epoch < 1)
        return err_set(eb, ERR_INVALID, "the training set (%d samples) holds no full batch of %d",
                       j->train.n, batch);
    j->retrain_steps = (long)(j->train.n / spec->optim.batch_size) * spec->optim.epochs;
    if (spec->optim.max_steps > 0 && spec->optim.max_steps < j->retrain_steps)
        j->retrain_steps = spec->optim.max_steps;
    job_batch_alloc(&j->bt, c, j->b);
    j->teacher = xmallocarray((size_t)j->b * j->K, sizeof(float));
    j->sprobs = xmallocarray((size_t)j->b * j->K, sizeof(float));
    loader_opts lo = {.batch = j->b,
                      .rank = j->d->rank,
                      .world = j->d->world,
                      .seed = spec->seed ^ CALIB_TAG,
                      .train = 1,
                      .crop_padding = spec->data.crop_padding,
                      .hflip = spec->data.hflip};
    j->calib = loader_new(&j->train, &lo);
    return 0;
}

void nas_release(nas_job *j)
{
    loader_free(j->calib);
    j->calib = NULL;
    dataset_free(&j->train);
    dataset_free(&j->test);
    job_batch_free(&j->bt);
    free(j->teacher);
    free(j->sprobs);
    j->teacher = j->sprobs = NULL;
}

void nas_deinit(nas_job *j)
{
    nas_release(j);
}

/* ---- reporting ------------------------------------------------------------------------ */

const job_sink *nas_sink(const nas_job *j)
{
    return j->d->rank == 0 ? j->env->sink : NULL;
}

void nas_emit(const nas_job *j, const char *name, double v, long step)
{
    sink_metric(nas_sink(j), name, v, step, j->steps_per_epoch);
}

void nas_emit_phase(const nas_job *j, long step, const char *phase, const char *what, double v)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", phase, what);
    nas_emit(j, name, v, step);
}

int nas_cancel_now(const nas_job *j)
{
    return sink_cancel_now(nas_sink(j));
}

/* ---- training helpers ------------------------------------------------------------------ */

void nas_calibrate(nas_job *j, net *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind != NET_BUFFER)
            continue;
        float *v = net_tensor_data(m, i), init = t->init == NET_INIT_ONE ? 1.0f : 0.0f;
        for (size_t k = 0; k < t->n; k++)
            v[k] = init;
    }
    int was = m->training;
    net_set_training(m, 1);
    /* the same batches every time: calibration is then a function of the
     * weights alone, and a resumed search reports what the first run would */
    loader_start_epoch(j->calib, 0, 0);
    for (int i = 0; i < j->calib_batches; i++) {
        int n = loader_next(j->calib, j->bt.x, j->bt.y);
        if (n <= 0)
            break;
        m->bn_momentum = 1.0f / (float)(i + 1); /* cumulative mean over the batches */
        net_forward(m, j->bt.x, n);
    }
    m->bn_momentum = -1.0f;
    net_set_training(m, was);
    if (j->d->world > 1 && m->n_buffers > 0)
        dist_allreduce_mean_f32(m->buffers, m->n_buffers);
}

double nas_evaluate(nas_job *j, net *m, const dataset *ds)
{
    eval_result e;
    nas_calibrate(j, m);
    train_evaluate(m, ds, j->b, j->d, &e);
    return e.top1;
}

double nas_cosine(double peak, double floor_, long t, long t0, long t1)
{
    if (t1 <= t0)
        return peak;
    double f = (double)(t - t0) / (double)(t1 - t0);
    if (f < 0)
        f = 0;
    if (f > 1)
        f = 1;
    return floor_ + (peak - floor_) * (1.0 + cos(PI * f)) / 2.0;
}

void nas_weight_step(net *m, const search_sgd *o, double lr, int first)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind != NET_PARAM)
            continue;
        nn_sgd_params sp = {(float)lr, (float)o->momentum, 0.0f,
                            t->decay ? (float)o->weight_decay : 0.0f, o->nesterov};
        nn_sgd_step(m->params + t->off, m->opt_m + t->off, m->grads + t->off, t->n, &sp, first);
    }
}

float nas_distill(nas_job *j, net *sub, net *super, const slice_map *map)
{
    net_slice_gather_map(sub, super, map);
    net_zero_grad(sub);
    net_forward(sub, j->bt.x, j->b);
    float kl = nn_softtarget_forward(j->sprobs, net_out(sub), j->teacher, j->b, j->K);
    memset(j->bt.dlogits, 0, (size_t)j->b * j->K * sizeof(float));
    nn_softtarget_backward(j->bt.dlogits, j->sprobs, j->teacher, j->b, j->K, 1.0f);
    net_backward(sub, j->bt.dlogits);
    net_slice_scatter_grads_map(super, sub, map);
    return kl;
}

void nas_keep_checkpoint(nas_job *j, const char *path, long step)
{
    char dropped[CKPT_PATH_MAX];
    if (j->d->rank == 0 &&
        ckpt_ring_push(&j->ckpts, path, j->spec->ckpt_keep_last, dropped, sizeof dropped))
        sink_checkpoint(nas_sink(j), path, step);
}

/* ---- artifacts ---------------------------------------------------------------------------- */

void nas_out_path(const nas_job *j, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", j->env->out_dir, name);
}

int nas_write_json(const nas_job *j, const char *name, const json_t *v, errbuf *eb)
{
    if (j->d->rank != 0)
        return 0;
    char path[KILN_PATH_MAX];
    nas_out_path(j, path, sizeof path, name);
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
    if (text == NULL)
        return err_set(eb, ERR_INTERNAL, "cannot encode %s", path);
    int rc = files_write_atomic(path, text, strlen(text), eb); /* fsync'd, crash-safe */
    free(text);
    return rc;
}

json_t *nas_load_json(const nas_job *j, const char *name)
{
    char path[KILN_PATH_MAX];
    nas_out_path(j, path, sizeof path, name);
    json_t *v = json_load_file(path, 0, NULL);
    if (v == NULL) {
        v = json_object();
        char note[200];
        snprintf(note, sizeof note, "resumed in the retrain; %s of the search was not found", name);
        json_object_set_new(v, "notes", json_pack("[s]", note));
    }
    return v;
}

json_t *nas_int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

int nas_resume_kind(const char *path, const char *search_kind, char **model_json, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    const char *kind = st_meta(f, "kind"), *model = st_meta(f, "model");
    if (kind != NULL && strcmp(kind, search_kind) == 0)
        rc = 1;
    else if (kind != NULL && strcmp(kind, "checkpoint") == 0 && model != NULL) {
        *model_json = xstrdup(model);
        rc = 2;
    } else
        rc = err_set(eb, ERR_FORMAT, "%s is neither a search nor a retrain checkpoint", path);
    st_close(f);
    return rc;
}

/* ---- the retrain's sink: names "retrain/...", steps after the search -------------- */

typedef struct phase_sink {
    const job_sink *inner;
    long offset, total;
} phase_sink;

static void ph_metric(void *ctx, const char *name, double v, long step, double epoch)
{
    phase_sink *ps = ctx;
    char n[160];
    snprintf(n, sizeof n, "retrain/%s", name);
    if (ps->inner->metric != NULL)
        ps->inner->metric(ps->inner->ctx, n, v, step + ps->offset, epoch);
}

static void ph_log(void *ctx, const char *level, const char *msg)
{
    phase_sink *ps = ctx;
    char m[600];
    snprintf(m, sizeof m, "retrain: %s", msg);
    if (ps->inner->log != NULL)
        ps->inner->log(ps->inner->ctx, level, m);
}

static void ph_progress(void *ctx, long step, long total, double loss, double ips)
{
    (void)total;
    phase_sink *ps = ctx;
    if (ps->inner->progress != NULL)
        ps->inner->progress(ps->inner->ctx, step + ps->offset, ps->total, loss, ips);
}

static void ph_checkpoint(void *ctx, const char *path, long step)
{
    phase_sink *ps = ctx;
    if (ps->inner->checkpoint != NULL)
        ps->inner->checkpoint(ps->inner->ctx, path, step + ps->offset);
}

static int ph_cancel(void *ctx)
{
    phase_sink *ps = ctx;
    return ps->inner->cancel_requested != NULL && ps->inner->cancel_requested(ps->inner->ctx);
}

int nas_retrain(nas_job *j, const model_cfg *found, const char *init, const char *resume,
                long offset, train_result *tr, errbuf *eb)
{
    job_spec rs = *j->spec;
    rs.type = JOB_TRAIN;
    rs.prune = NULL;
    rs.adapt = NULL;
    rs.model = *found;
    rs.params = (double)modelcfg_params(found);
    rs.mflops = modelcfg_macs(found) / 1e6;
    char weights[1100];
    nas_out_path(j, weights, sizeof weights, "model.safetensors");
    phase_sink ps = {.inner = j->env->sink, .offset = offset, .total = offset + j->retrain_steps};
    job_sink wrapped = {.ctx = &ps,
                        .metric = ph_metric,
                        .log = ph_log,
                        .progress = ph_progress,
                        .checkpoint = ph_checkpoint,
                        .cancel_requested = ph_cancel};
    train_env te = {.dist = j->env->dist,
                    .work_dir = j->env->out_dir,
                    .resume_path = resume,
                    .init_weights = init,
                    .weights_out = weights,
                    .sink = j->env->sink != NULL ? &wrapped : NULL};
    return train_run(&rs, &te, tr, eb);
}

int nas_resumed_network(const nas_job *j, const char *model_json, model_cfg *found, json_t **report,
                        errbuf *eb)
{
    json_t *mj = json_loads(model_json, 0, NULL);
    field_errors fe;
    fe_init(&fe);
    int rc = mj == NULL || modelcfg_parse(found, mj, "model", &fe) != 0
                 ? err_set(eb, ERR_FORMAT, "%s: bad model metadata", j->env->resume_path)
                 : 0;
    json_decref(mj);
    if (rc == 0)
        *report = nas_load_json(j, "search.json");
    return rc;
}

/* ---- the job's frame ------------------------------------------------------------------ */

void nas_reparse_begin(nas_reparse *r)
{
    fe_init(&r->fe);
    jsonfield_open(&r->root, NULL, "", &r->fe);
}

int nas_reparse_end(nas_reparse *r, const char *what, errbuf *eb)
{
    if (r->root.n_err == 0)
        return 0;
    char msg[400];
    fe_format(&r->fe, msg, sizeof msg);
    return err_set(eb, ERR_INVALID, "%s: %s", what, msg);
}

int nas_world(const job_env *env)
{
    return env->dist != NULL ? env->dist->world : 1;
}

int nas_start(nas_job *j, const char *search_kind, long search_steps, char **model_json, errbuf *eb)
{
    int kind = 0;
    if (j->env->resume_path != NULL &&
        (kind = nas_resume_kind(j->env->resume_path, search_kind, model_json, eb)) < 0)
        return kind;
    const job_sink *s = nas_sink(j);
    if (s != NULL && s->started != NULL)
        s->started(s->ctx, search_steps + j->retrain_steps);
    return kind;
}

int nas_write_found(const nas_job *j, const model_cfg *found, const json_t *report, errbuf *eb)
{
    json_t *arch = modelcfg_to_explicit_json(found);
    int rc = nas_write_json(j, "architecture.json", arch, eb);
    json_decref(arch);
    return rc != 0 ? rc : nas_write_json(j, "search.json", report, eb);
}

/* {mflops, params, [key: v], <top1_key>: top1 or null} of network c. */
static json_t *network_facts(const model_cfg *c, double mflops, const char *key, json_t *v,
                             const char *top1_key, double top1)
{
    json_t *o = json_pack("{s:f, s:I}", "mflops", mflops, "params", (json_int_t)modelcfg_params(c));
    if (key != NULL)
        json_object_set_new(o, key, v);
    json_object_set_new(o, top1_key, top1 >= 0 ? json_real(top1) : json_null());
    return o;
}

json_t *nas_report_head(const nas_job *j, const nas_outcome *o, const model_cfg *found,
                        double top1_inherited, const char *key, json_t *before_v, json_t *after_v)
{
    json_t *rep = json_object();
    json_object_set_new(rep, "method", json_string(o->method));
    json_object_set_new(rep, "target_mflops", json_real(o->target));
    json_object_set_new(
        rep, "target_band_mflops",
        json_pack("[f, f]", o->target * (1 - o->target_tol), o->target * (1 + o->target_tol)));
    json_object_set_new(
        rep, "before",
        network_facts(&j->spec->model, o->full_mflops, key, before_v, "top1", o->top1_before));
    json_object_set_new(rep, "after",
                        network_facts(found, modelcfg_macs(found) / 1e6, key, after_v,
                                      "top1_inherited", top1_inherited));
    return rep;
}

int nas_finish(const nas_job *j, const nas_outcome *o, const model_cfg *found,
               const train_result *tr, json_t *report, job_result *res, errbuf *eb)
{
    const model_cfg *full = &j->spec->model;
    json_object_set_new(report, "retrain",
                        json_pack("{s:s, s:i, s:I, s:f, s:f, s:f}", "from", o->from, "epochs",
                                  j->spec->optim.epochs, "steps", (json_int_t)tr->steps,
                                  "test_top1", tr->test_top1, "test_loss", tr->test_loss, "seconds",
                                  tr->seconds));
    json_t *after = json_object_get(report, "after");
    if (after != NULL)
        json_object_set_new(after, "top1", json_real(tr->test_top1));
    res->summary = json_pack(
        "{s:s, s:f, s:f, s:f, s:I, s:I, s:f, s:I, s:f}", "method", o->method, "target_mflops",
        o->target, "mflops", modelcfg_macs(found) / 1e6, "mflops_full", o->full_mflops, "params",
        (json_int_t)modelcfg_params(found), "params_full", (json_int_t)modelcfg_params(full),
        "test_top1", tr->test_top1, "steps", (json_int_t)o->search_steps + (json_int_t)tr->steps,
        "seconds", nas_now() - o->t0);
    json_object_set_new(res->summary, "top1_before",
                        o->top1_before >= 0 ? json_real(o->top1_before) : json_null());
    job_result_add_artifact(res, "model.safetensors");
    job_result_add_artifact(res, "architecture.json");
    job_result_add_artifact(res, "report.json");
    int rc = nas_write_json(j, "report.json", report, eb);
    for (int i = 0; rc == 0 && i < o->n_extra; i++) {
        char path[KILN_PATH_MAX];
        nas_out_path(j, path, sizeof path, o->extra[i]);
        if (access(path, R_OK) == 0)
            job_result_add_artifact(res, o->extra[i]);
    }
    return rc;
}

int nas_run_job(nas_job *j, const nas_job_ops *ops, void *ctx, long search_steps, job_result *res,
                errbuf *eb)
{
    json_t *report = NULL;
    char *resume_model = NULL, init[CKPT_PATH_MAX] = "";
    long start = 0;
    model_cfg found;
    int phase = nas_start(j, ops->search_kind, search_steps, &resume_model, eb);
    int rc = phase < 0 ? phase : ops->prepare(ctx, phase, &start, eb);
    if (rc == 0)
        rc = phase == 2 ? nas_resumed_network(j, resume_model, &found, &report, eb)
                        : ops->search(ctx, start, &found, &report, init, sizeof init, eb);
    if (rc != 0) {
        res->cancelled = rc == ERR_CANCELLED;
    } else {
        ops->release(ctx);
        train_result tr;
        rc = nas_retrain(j, &found, init[0] ? init : NULL, phase == 2 ? j->env->resume_path : NULL,
                         search_steps, &tr, eb);
        res->cancelled = tr.cancelled;
        if (init[0] && j->d->rank != 0)
            unlink(init); /* a private copy (rank 0's is an artifact) */
        nas_outcome o;
        if (rc == 0) {
            ops->outcome(ctx, &o);
            rc = nas_finish(j, &o, &found, &tr, report, res, eb);
            if (ops->finished != NULL)
                ops->finished(ctx, report, res);
        }
    }
    json_decref(report);
    free(resume_model);
    return rc;
}
