/* train.c - the train job (see train.h). */
#include "worker/jobs/train.h"

#include "common/check.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/data/loader.h"
#include "worker/data/mix.h"
#include "worker/jobs/batch.h"
#include "worker/jobs/checkpoint.h"
#include "worker/models/model.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"
#include "worker/nn/optim.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRAIN_LOG_EVERY 10 /* steps between training-metric points */

/* A run of consecutive parameters with the same weight decay: one optimizer call. */
typedef struct param_run {
    size_t off, n;
    float wd;
} param_run;

typedef struct trainer {
    const job_spec *spec;
    const train_env *env;
    const dist_info *d;
    int b; /* per-rank batch */
    int K; /* classes */
    net m;
    dataset train, test, val;
    loader *ld;
    job_batch bt; /* the batch buffers */
    nn_schedule sched;
    long steps_per_epoch, total_steps;
    param_run *runs;
    int n_runs;
    char *model_json, *spec_json;
    double allreduce_s; /* time in the gradient allreduce */
    double data_wait_s; /* time waiting for the loader */
    int data_rc;        /* a loader failure (data.image.on_bad_file "fail") */
    float *targets;     /* (b, K) soft targets when mixing */
    float *ema;         /* (n_params + n_buffers) moving average, or NULL */
    ckpt_ring ckpts;    /* checkpoints on disk */
} trainer;

static const job_sink *rank0_sink(const trainer *t)
{
    return t->d->rank == 0 ? t->env->sink : NULL;
}

static void emit(const trainer *t, const char *name, double v, long step)
{
    sink_metric(rank0_sink(t), name, v, step, t->steps_per_epoch);
}

/* Whether optim.freeze keeps tensor `name` fixed. */
static int frozen(const optim_spec *o, const char *name)
{
    for (int i = 0; i < o->n_freeze; i++)
        if (strncmp(name, o->freeze[i], strlen(o->freeze[i])) == 0)
            return 1;
    return 0;
}

/* Every optim.freeze prefix must name some tensor of the model. */
static int check_freeze(const trainer *t, errbuf *eb)
{
    const optim_spec *o = &t->spec->optim;
    for (int k = 0; k < o->n_freeze; k++) {
        int hit = 0;
        for (int i = 0; i < t->m.n_tensors && !hit; i++)
            hit = t->m.tensors[i].kind == NET_PARAM &&
                  strncmp(t->m.tensors[i].name, o->freeze[k], strlen(o->freeze[k])) == 0;
        if (!hit)
            return err_set(eb, ERR_INVALID,
                           "optim.freeze[%d]: '%s' is the start of no parameter's name of this "
                           "model (names as in its model.safetensors, e.g. '%s')",
                           k, o->freeze[k], t->m.n_tensors > 0 ? t->m.tensors[0].name : "");
    }
    return 0;
}

static void build_runs(trainer *t)
{
    const net *m = &t->m;
    float wd = (float)t->spec->optim.weight_decay;
    t->runs = xcalloc((size_t)m->n_tensors + 1, sizeof(param_run));
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *x = &m->tensors[i];
        if (x->kind != NET_PARAM || frozen(&t->spec->optim, x->name))
            continue;
        float w = x->decay ? wd : 0.0f;
        param_run *last = t->n_runs ? &t->runs[t->n_runs - 1] : NULL;
        if (last != NULL && last->wd == w && last->off + last->n == x->off)
            last->n += x->n;
        else
            t->runs[t->n_runs++] = (param_run){x->off, x->n, w};
    }
}

static void optimizer_step(trainer *t, double lr, long step)
{
    const optim_spec *o = &t->spec->optim;
    net *m = &t->m;
    for (int i = 0; i < t->n_runs; i++) {
        const param_run *r = &t->runs[i];
        if (o->optimizer == OPT_ADAMW) {
            nn_adamw_params p = {(float)lr, (float)o->beta1, (float)o->beta2, (float)o->eps, r->wd};
            nn_adamw_step(m->params + r->off, m->opt_m + r->off, m->opt_v + r->off,
                          m->grads + r->off, r->n, &p, step + 1);
        } else {
            nn_sgd_params p = {(float)lr, (float)o->momentum, 0.0f, r->wd, o->nesterov};
            nn_sgd_step(m->params + r->off, m->opt_m + r->off, m->grads + r->off, r->n, &p,
                        step == 0);
        }
    }
}

/* Running statistics differ per rank (per-rank batch statistics): average them. */
static void sync_bn(trainer *t)
{
    if (t->d->world > 1 && t->m.n_buffers > 0)
        dist_allreduce_mean_f32(t->m.buffers, t->m.n_buffers);
}

void train_evaluate(net *m, const dataset *ds, int batch, const dist_info *d, eval_result *out)
{
    int rank = d ? d->rank : 0, world = d ? d->world : 1;
    if (batch > m->max_batch)
        batch = m->max_batch;
    loader_opts lo = {.batch = batch, .rank = rank, .world = world, .seed = 0, .train = 0};
    loader *ld = loader_new(ds, &lo);
    int K = (int)net_out_size(m);
    float *x = xmallocarray((size_t)batch * ds->H * ds->W * ds->C, sizeof(float));
    int32_t *y = xmallocarray((size_t)batch, sizeof(int32_t));
    float *probs = xmallocarray((size_t)batch * K, sizeof(float));
    int was_training = m->training;
    net_set_training(m, 0);
    loader_start_epoch(ld, 0, 0);
    double sums[3] = {0, 0, 0}; /* correct, loss * n, n */
    int n;
    while ((n = loader_next(ld, x, y)) > 0) {
        net_forward(m, x, n);
        int correct = 0;
        float loss = nn_crossentropy_forward(probs, &correct, net_out(m), y, n, K, 0.0f);
        sums[0] += correct;
        sums[1] += (double)loss * n;
        sums[2] += n;
    }
    if (world > 1)
        dist_allreduce_sum_f64(sums, 3);
    net_set_training(m, was_training);
    out->n = (long)sums[2];
    out->top1 = sums[2] > 0 ? sums[0] / sums[2] : 0;
    out->loss = sums[2] > 0 ? sums[1] / sums[2] : 0;
    free(probs);
    free(y);
    free(x);
    loader_free(ld);
}

/* ---- EMA of the weights (timm's ModelEmaV2: parameters and BN buffers) ---- */

static void ema_reset(trainer *t)
{
    memcpy(t->ema, t->m.params, t->m.n_params * sizeof(float));
    if (t->m.n_buffers > 0)
        memcpy(t->ema + t->m.n_params, t->m.buffers, t->m.n_buffers * sizeof(float));
}

static void ema_update(trainer *t)
{
    float d = (float)t->spec->optim.ema, d1 = 1.0f - d;
    const net *m = &t->m;
    for (size_t i = 0; i < m->n_params; i++)
        t->ema[i] = d * t->ema[i] + d1 * m->params[i];
    for (size_t i = 0; i < m->n_buffers; i++)
        t->ema[m->n_params + i] = d * t->ema[m->n_params + i] + d1 * m->buffers[i];
}

/* Exchanges the live weights with the average (twice restores them). */
static void ema_swap(trainer *t)
{
    net *m = &t->m;
    for (size_t i = 0; i < m->n_params; i++) {
        float v = m->params[i];
        m->params[i] = t->ema[i];
        t->ema[i] = v;
    }
    for (size_t i = 0; i < m->n_buffers; i++) {
        float v = m->buffers[i];
        m->buffers[i] = t->ema[m->n_params + i];
        t->ema[m->n_params + i] = v;
    }
}

/* path with ".safetensors" replaced by ".ema.safetensors" (or ".ema" appended). */
static void ema_path(char *out, size_t cap, const char *path)
{
    const char *ext = ".safetensors";
    size_t n = strlen(path), e = strlen(ext);
    if (n > e && strcmp(path + n - e, ext) == 0)
        snprintf(out, cap, "%.*s.ema%s", (int)(n - e), path, ext);
    else
        snprintf(out, cap, "%s.ema", path);
}

static int ema_save(trainer *t, const char *path, errbuf *eb)
{
    char p[1100];
    ema_path(p, sizeof p, path);
    ema_swap(t);
    int rc = net_save_state(&t->m, p, t->model_json, eb);
    ema_swap(t);
    return rc;
}

static int save_checkpoint(trainer *t, long step, errbuf *eb)
{
    sync_bn(t);
    if (t->d->rank != 0 || t->env->work_dir == NULL)
        return 0;
    char path[KILN_PATH_MAX];
    int rc = files_pathf(path, eb, "%s/ckpt-%08ld.safetensors", t->env->work_dir, step);
    if (rc != 0)
        return rc;
    ckpt_info info = {.step = step, .dp_rng = t->m.rng};
    rc = ckpt_save(path, &t->m, &info, t->model_json, t->spec_json, eb);
    if (rc == 0 && t->ema != NULL)
        rc = ema_save(t, path, eb);
    if (rc != 0)
        return rc;
    char dropped[CKPT_PATH_MAX];
    if (!ckpt_ring_push(&t->ckpts, path, t->spec->ckpt_keep_last, dropped, sizeof dropped))
        return 0; /* the same step again (e.g. the end of an epoch that was also a cancel) */
    if (dropped[0] && t->ema != NULL) {
        char ep[KILN_PATH_MAX];
        ema_path(ep, sizeof ep, dropped);
        unlink(ep);
    }
    sink_checkpoint(rank0_sink(t), path, step);
    return 0;
}

static int cancel_now(const trainer *t)
{
    return sink_cancel_now(rank0_sink(t));
}

/* Every rank must see the same files under data.root: the counts, bytes
 * and index hashes of both splits are compared with rank 0's. */
static int check_same_data(const trainer *t, errbuf *eb)
{
    if (t->d->world <= 1 || t->train.files == NULL)
        return 0;
    uint64_t mine[6] = {(uint64_t)t->train.n, t->train.files->total_bytes, t->train.files->hash,
                        (uint64_t)t->test.n,  t->test.files->total_bytes,  t->test.files->hash};
    uint64_t *all = xmallocarray((size_t)t->d->world * 6, sizeof(uint64_t));
    dist_allgather(mine, all, sizeof mine);
    int bad = -1;
    for (int r = 1; r < t->d->world && bad < 0; r++)
        if (memcmp(all, all + 6 * r, sizeof mine) != 0)
            bad = r;
    int rc = 0;
    if (bad >= 0)
        rc = err_set(eb, ERR_INVALID,
                     "data.root %s differs between ranks: rank 0 sees %" PRIu64 " training files "
                     "(%" PRIu64 " bytes, index hash %016" PRIx64 "), rank %d sees %" PRIu64
                     " (%" PRIu64 " bytes, hash %016" PRIx64
                     "); every pool host needs the same copy",
                     t->spec->data.root, all[0], all[1], all[2], bad, all[6 * bad],
                     all[6 * bad + 1], all[6 * bad + 2]);
    free(all);
    return rc;
}

/* The data of the job on this rank: the per-rank batch, the splits (the same files on
 * every rank), the validation tail, and a check that they fit the model. */
static int setup_data(trainer *t, const job_spec *spec, errbuf *eb)
{
    if (spec->optim.batch_size % t->d->world != 0)
        return err_set(eb, ERR_INVALID, "optim.batch_size %d is not divisible by %d ranks",
                       spec->optim.batch_size, t->d->world);
    t->b = spec->optim.batch_size / t->d->world;
    int rc = dataset_load(&t->train, &t->test, &spec->data, eb);
    if (t->d->world > 1 && (spec->data.dataset == DS_FOLDER || spec->data.dataset == DS_MANIFEST)) {
        /* A rank that cannot read its copy must not leave the others waiting. */
        if (dist_any(rc != 0) && rc == 0)
            return err_set(eb, ERR_IO, "data.root %s: another rank cannot read its copy",
                           spec->data.root);
        if (rc == 0 && (rc = check_same_data(t, eb)) != 0)
            return rc;
    }
    if (rc != 0)
        return rc;
    if (spec->data.val_fraction > 0) {
        int nval = dataset_val_count(&t->train, spec->data.val_fraction);
        if (nval > 0)
            dataset_split_tail(&t->train, &t->val, nval);
    }
    return dataset_fits_model(&t->train, &spec->model, eb);
}

static int setup(trainer *t, const job_spec *spec, const train_env *env, errbuf *eb)
{
    t->spec = spec;
    t->env = env;
    t->d = env->dist != NULL ? env->dist : dist_single();
    int rc = setup_data(t, spec, eb);
    if (rc != 0)
        return rc;
    const model_cfg *c = &spec->model;
    t->K = c->num_classes;
    model_opts mo = {.drop_path = (float)spec->optim.drop_path};
    net_init(&t->m);
    rc = model_build(&t->m, c, t->b, spec->seed, &mo, eb);
    /* A rank that cannot hold the model must not leave the others waiting. */
    if (t->d->world > 1 && dist_any(rc != 0) && rc == 0)
        return err_set(eb, ERR_NOMEM, "another rank cannot hold the model in its memory");
    if (rc != 0)
        return rc;
    /* Every rank starts from rank 0's parameters (equal already for equal
     * seeds; the broadcast makes it a guarantee). */
    if (t->d->world > 1)
        dist_bcast(t->m.params, t->m.n_params * sizeof(float), 0);
    loader_opts lo = {.batch = t->b,
                      .rank = t->d->rank,
                      .world = t->d->world,
                      .seed = spec->seed,
                      .train = 1,
                      .crop_padding = spec->data.crop_padding,
                      .hflip = spec->data.hflip,
                      .repeats = spec->data.repeated_aug};
    t->ld = loader_new(&t->train, &lo);
    t->steps_per_epoch = loader_batches_per_epoch(t->ld);
    if (t->steps_per_epoch < 1)
        return err_set(eb, ERR_INVALID,
                       "the training set (%d samples) holds no full global batch of %d", t->train.n,
                       spec->optim.batch_size);
    t->total_steps = t->steps_per_epoch * spec->optim.epochs;
    if (spec->optim.max_steps > 0 && spec->optim.max_steps < t->total_steps)
        t->total_steps = spec->optim.max_steps;
    t->sched.base_lr = spec->optim.lr;
    t->sched.min_lr = spec->optim.min_lr;
    t->sched.warmup_steps = lround(spec->optim.warmup_epochs * (double)t->steps_per_epoch);
    t->sched.total_steps = t->steps_per_epoch * spec->optim.epochs;
    t->sched.cosine = spec->optim.schedule == SCHED_COSINE;
    job_batch_alloc(&t->bt, c, t->b);
    t->targets = xmallocarray((size_t)t->b * t->K, sizeof(float));
    if (spec->optim.ema > 0) {
        t->ema = xmallocarray(t->m.n_params + t->m.n_buffers + 1, sizeof(float));
        ema_reset(t);
    }
    int frc = check_freeze(t, eb);
    if (frc != 0)
        return frc;
    build_runs(t);
    json_t *mj = modelcfg_to_json(c);
    t->model_json = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    return 0;
}

static void teardown(trainer *t)
{
    loader_free(t->ld);
    net_deinit(&t->m);
    dataset_free(&t->train);
    dataset_free(&t->test);
    dataset_free(&t->val);
    job_batch_free(&t->bt);
    free(t->targets);
    free(t->ema);
    free(t->runs);
    free(t->model_json);
    free(t->spec_json);
}

/* One optimizer step on the next batch; returns the local mean loss. */
static float train_step(trainer *t, long step, int *correct)
{
    net *m = &t->m;
    double w0 = clock_mono_s();
    int n = loader_next(t->ld, t->bt.x, t->bt.y);
    t->data_wait_s += clock_mono_s() - w0;
    if (n < 0) {
        t->data_rc = n;
        return 0.0f;
    }
    /* The sampler yields full batches for exactly steps_per_epoch steps;
     * anything else is a broken invariant. */
    KILN_CHECKF(n == t->b, "loader returned %d samples at step %ld, expected %d", n, step, t->b);
    float ls = (float)t->spec->optim.label_smoothing;
    const mix_spec *mx = &t->spec->data.mix;
    int mixing = mix_enabled(mx);
    if (mixing) {
        /* One stream per (step, rank): each rank mixes its own slice, as timm under DDP. */
        rng r;
        rng_derive(&r, t->spec->seed ^ 0x6b696c6e4d495855ULL, (uint64_t)step, (uint64_t)t->d->rank);
        const model_cfg *c = &t->spec->model;
        mix_batch(t->bt.x, t->targets, t->bt.y, n, c->image_size, c->image_size, c->in_channels,
                  t->K, mx, ls, &r);
    }
    net_zero_grad(m);
    net_forward(m, t->bt.x, n);
    float loss;
    memset(t->bt.dlogits, 0, (size_t)n * t->K * sizeof(float));
    if (mixing) {
        loss = nn_softtarget_forward(t->bt.probs, net_out(m), t->targets, n, t->K);
        nn_softtarget_backward(t->bt.dlogits, t->bt.probs, t->targets, n, t->K, 1.0f);
        *correct = 0;
        for (int i = 0; i < n; i++) { /* accuracy against the unmixed label */
            const float *p = t->bt.probs + (size_t)i * t->K;
            int best = 0;
            for (int k = 1; k < t->K; k++)
                best = p[k] > p[best] ? k : best;
            *correct += best == t->bt.y[i];
        }
    } else {
        loss = nn_crossentropy_forward(t->bt.probs, correct, net_out(m), t->bt.y, n, t->K, ls);
        nn_crossentropy_backward(t->bt.dlogits, t->bt.probs, t->bt.y, n, t->K, ls, 1.0f);
    }
    net_backward(m, t->bt.dlogits);
    if (t->d->world > 1) {
        double t0 = clock_mono_s();
        dist_allreduce_mean_f32(m->grads, m->n_params);
        t->allreduce_s += clock_mono_s() - t0;
    }
    if (t->spec->optim.grad_clip > 0)
        nn_clip_grad_norm(m->grads, m->n_params, t->spec->optim.grad_clip);
    optimizer_step(t, nn_schedule_lr(&t->sched, step), step);
    if (t->ema != NULL)
        ema_update(t);
    return loss;
}

static void evaluate_epoch(trainer *t, long step, train_result *res)
{
    sync_bn(t);
    eval_result e;
    train_evaluate(&t->m, &t->test, t->b, t->d, &e);
    res->test_top1 = e.top1;
    res->test_loss = e.loss;
    emit(t, "test/top1", e.top1, step);
    emit(t, "test/loss", e.loss, step);
    if (t->val.n > 0) {
        eval_result v;
        train_evaluate(&t->m, &t->val, t->b, t->d, &v);
        res->val_top1 = v.top1;
        emit(t, "val/top1", v.top1, step);
    }
    sink_say(rank0_sink(t), "info", "epoch %.2f: test top-1 %.4f, test loss %.4f",
             (double)step / (double)t->steps_per_epoch, e.top1, e.loss);
    if (t->ema != NULL) {
        eval_result ee;
        ema_swap(t);
        train_evaluate(&t->m, &t->test, t->b, t->d, &ee);
        ema_swap(t);
        res->ema_top1 = ee.top1;
        emit(t, "test/top1_ema", ee.top1, step);
        emit(t, "test/loss_ema", ee.loss, step);
        sink_say(rank0_sink(t), "info", "epoch %.2f: EMA test top-1 %.4f",
                 (double)step / (double)t->steps_per_epoch, ee.top1);
    }
    long bad = loader_bad_files(t->ld);
    if (t->d->world > 1) {
        double v = (double)bad;
        dist_allreduce_sum_f64(&v, 1);
        bad = (long)v;
    }
    res->bad_files = bad;
    if (t->train.files != NULL) {
        emit(t, "data/bad_files", (double)bad, step);
        if (bad > 0)
            sink_say(rank0_sink(t), "warn",
                     "%ld bad image files skipped so far (data.image.on_bad_file \"skip\")", bad);
    }
}

/* The weights a run starts from: a checkpoint to resume (its step into *step, with the
 * EMA saved beside it, if any) or init_from weights (the same on every rank). Returns 0
 * or an ERR_* (eb says why). */
static int start_weights(trainer *t, const train_env *env, long *step, errbuf *eb)
{
    int rc = 0;
    if (env->resume_path != NULL) {
        ckpt_info info;
        if ((rc = ckpt_load(env->resume_path, &t->m, &info, eb)) != 0)
            return rc;
        *step = info.step;
        t->m.rng = info.dp_rng;
        if (t->ema != NULL) {
            char ep[KILN_PATH_MAX];
            ema_path(ep, sizeof ep, env->resume_path);
            if (access(ep, R_OK) == 0) {
                ema_swap(t);
                rc = ckpt_load_weights(ep, &t->m, eb);
                ema_swap(t);
                if (rc != 0)
                    return rc;
            } else {
                ema_reset(t);
            }
        }
        sink_say(rank0_sink(t), "info", "resumed from %s at step %ld", env->resume_path, *step);
    } else if (env->init_weights != NULL) {
        char fresh[400] = "";
        if ((rc = ckpt_load_init(env->init_weights, &t->m, t->spec->model.num_classes, fresh,
                                 sizeof fresh, eb)) != 0)
            return rc;
        if (fresh[0] != '\0')
            sink_say(rank0_sink(t), "info", "init_from %s: %s", env->init_weights, fresh);
        if (t->d->world > 1)
            dist_bcast(t->m.params, t->m.n_params * sizeof(float), 0);
        if (t->ema != NULL)
            ema_reset(t);
    }
    return 0;
}

/* The training steps since the last metric point: their summed loss and correct
 * answers, the images seen, and when and at which step the window opened. */
typedef struct train_window {
    double loss_sum, correct_sum, seen, opened;
    long from;
} train_window;

/* A metric point at step of the window (averaged over the ranks): loss, accuracy, the
 * learning rate, throughput and, for image files, the time share spent waiting for
 * them; then a new window opens. */
static void window_emit(trainer *t, train_window *w, long step, train_result *res)
{
    double v[3] = {w->loss_sum, w->correct_sum, w->seen};
    if (t->d->world > 1)
        dist_allreduce_sum_f64(v, 3);
    double now = clock_mono_s(), n_steps = (double)(step - w->from);
    res->last_train_loss = v[0] / (n_steps * t->d->world);
    emit(t, "train/loss", res->last_train_loss, step);
    emit(t, "train/acc", v[1] / v[2], step);
    emit(t, "lr", nn_schedule_lr(&t->sched, step - 1), step);
    emit(t, "throughput", v[2] / (now - w->opened), step);
    if (t->train.files != NULL) /* share of the time spent waiting for images */
        emit(t, "data/wait_fraction", t->data_wait_s / (now - w->opened), step);
    t->data_wait_s = 0;
    *w = (train_window){.opened = now, .from = step};
}

/* Tells the sink the job started and what it trains. */
static void announce(trainer *t, const job_spec *spec)
{
    const job_sink *s = rank0_sink(t);
    if (s != NULL && s->started != NULL)
        s->started(s->ctx, t->total_steps);
    sink_say(s, "info", "training %s: %zu params, %ld steps of %d images (%d per rank x %d ranks)",
             spec->name, t->m.n_params, t->total_steps, spec->optim.batch_size, t->b, t->d->world);
}

/* 0, or the error of a bad image file, on this rank or on another: every rank
 * then stops at the same step. */
static int data_error(trainer *t, errbuf *eb)
{
    if (t->d->world > 1 && dist_any(t->data_rc != 0) && t->data_rc == 0)
        t->data_rc = err_set(eb, ERR_FORMAT, "a bad image file stopped another rank");
    else if (t->data_rc != 0)
        err_set(eb, t->data_rc, "%s", loader_error(t->ld));
    return t->data_rc;
}

/* The sink's progress after `step`: the step's loss and the images per second. */
static void say_progress(trainer *t, long step, float loss, double images_per_s)
{
    const job_sink *s = rank0_sink(t);
    if (s != NULL && s->progress != NULL)
        s->progress(s->ctx, step, t->total_steps, (double)loss, images_per_s);
}

int train_run(const job_spec *spec, const train_env *env, train_result *res, errbuf *eb)
{
    trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->val_top1 = -1;
    double t0 = clock_mono_s();
    int rc = setup(&t, spec, env, eb);
    if (rc != 0)
        goto out;
    long step = 0;
    if ((rc = start_weights(&t, env, &step, eb)) != 0)
        goto out;
    announce(&t, spec);
    train_window w = {.opened = clock_mono_s(), .from = step};
    long step0 = step;
    while (step < t.total_steps) {
        int epoch = (int)(step / t.steps_per_epoch);
        loader_start_epoch(t.ld, epoch, step % t.steps_per_epoch);
        long epoch_end = (long)(epoch + 1) * t.steps_per_epoch;
        if (epoch_end > t.total_steps)
            epoch_end = t.total_steps;
        while (step < epoch_end) {
            if (cancel_now(&t)) {
                res->cancelled = 1;
                rc = save_checkpoint(&t, step, eb);
                if (rc == 0)
                    rc = err_set(eb, ERR_CANCELLED, "cancelled at step %ld", step);
                goto done;
            }
            int correct = 0;
            double ts = clock_mono_s();
            float loss = train_step(&t, step, &correct);
            res->step_seconds += clock_mono_s() - ts;
            if ((rc = data_error(&t, eb)) != 0)
                goto done;
            step++;
            w.loss_sum += (double)loss;
            w.correct_sum += correct;
            w.seen += t.b;
            if (step % TRAIN_LOG_EVERY == 0 || step == epoch_end)
                window_emit(&t, &w, step, res);
            say_progress(&t, step, loss,
                         (double)(step - step0) * spec->optim.batch_size / (clock_mono_s() - t0));
            /* not at the epoch's end: its checkpoint comes after the evaluation there,
             * since a run resumed from a step never logs that step's points again */
            if (spec->ckpt_every_steps > 0 && step % spec->ckpt_every_steps == 0 &&
                step < epoch_end && (rc = save_checkpoint(&t, step, eb)) != 0)
                goto done;
        }
        evaluate_epoch(&t, step, res);
        if ((rc = save_checkpoint(&t, step, eb)) != 0)
            goto done;
    }
    if (env->weights_out != NULL && t.d->rank == 0) {
        rc = net_save_state(&t.m, env->weights_out, t.model_json, eb);
        if (rc == 0 && t.ema != NULL)
            rc = ema_save(&t, env->weights_out, eb);
    }
done:
    res->steps = step;
    res->run_steps = step - step0;
    res->allreduce_seconds = t.allreduce_s;
    res->seconds = clock_mono_s() - t0;
    res->images_per_s =
        res->seconds > 0 ? (double)(step - step0) * spec->optim.batch_size / res->seconds : 0;
out:
    teardown(&t);
    return rc;
}
