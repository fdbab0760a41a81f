/* nas_search.c - the architecture-search driver (see nas_search.h). */
#include "worker/jobs/nas_search.h"

#include "common/check.h"
#include "common/log.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_EVERY        10     /* steps between training-metric points */
#define N_RANDOM         2      /* random sub-nets per sandwich */
#define PRUNESPACE_DECAY 0.9999 /* p_s's decay per random sub-net, every tenth iteration */

/* Running sums of the training metrics between two log points. */
typedef struct sums {
    double ce, kd, arch_ce, n, arch_n;
} sums;

/* A run of the search: the settings and the smallest sub-net. */
typedef struct run {
    const nas_search *s;
    nas_job *j;
    const nas_space_ops *ops;
    void *ctx;
    net min_net;       /* the smallest sub-net, rebuilt after every change of the space */
    slice_map min_map; /* its names in the supernet */
    loader *ld;        /* the search's training batches */
    sums acc;
} run;

static double weight_lr(const nas_search *s, long step)
{
    return nas_cosine(s->goal->ss->weights.lr, s->goal->ss->weights.min_lr, step, 0,
                      s->goal->total_steps);
}

static double arch_lr(const nas_search *s, long step)
{
    return nas_cosine(s->goal->ss->arch.lr, s->goal->ss->arch.min_lr, step, s->goal->warmup_steps,
                      s->goal->total_steps);
}

static const char *phase_of(const nas_search *s, long step)
{
    return step < s->goal->warmup_steps ? "warmup" : "search";
}

static const slice_map *map_or_null(const slice_map *m)
{
    return m->fn != NULL ? m : NULL;
}

static int build_min(run *r, errbuf *eb)
{
    net_deinit(&r->min_net);
    net_init(&r->min_net);
    r->ops->sample(r->ctx, NAS_ARCH_MIN, NULL);
    return r->ops->build_subnet(r->ctx, NAS_SLOT_MIN, &r->min_net, &r->min_map, eb);
}

/* The supernet on j's batch with the labels: forward, CE (softmax in
 * j->bt.probs), backward. Returns the loss. */
static float ce_backward(nas_job *j, net *m, float ls)
{
    net_forward(m, j->bt.x, j->b);
    float ce = nn_crossentropy_forward(j->bt.probs, NULL, net_out(m), j->bt.y, j->b, j->K, ls);
    memset(j->bt.dlogits, 0, (size_t)j->b * j->K * sizeof(float));
    nn_crossentropy_backward(j->bt.dlogits, j->bt.probs, j->bt.y, j->b, j->K, ls, 1.0f);
    net_backward(m, j->bt.dlogits);
    return ce;
}

/* Sets the space to random sub-net `which` of `step`. */
static void draw(run *r, long step, int which)
{
    const nas_search *s = r->s;
    rng g;
    rng_derive(&g, r->j->spec->seed ^ r->ops->rng_tag, (uint64_t)step, (uint64_t)which);
    nas_arch kind = NAS_ARCH_UNIFORM;
    if (step >= s->goal->warmup_steps) {
        long tens = (step - s->goal->warmup_steps) / 10; /* the decay steps every 10 iterations */
        double ps = pow(PRUNESPACE_DECAY, (double)(N_RANDOM * tens));
        if ((double)rng_uniform(&g) >= ps)
            kind = NAS_ARCH_CHAINS;
    }
    r->ops->sample(r->ctx, kind, &g);
}

/* One sandwich-rule weight step on the batch in j->bt.x / j->bt.y. */
static int sandwich(run *r, long step, errbuf *eb)
{
    nas_job *j = r->j;
    net *m = r->ops->supernet(r->ctx);
    net_zero_grad(m);
    float ce = ce_backward(j, m, (float)r->s->goal->ss->label_smoothing);
    /* the teacher: the supernet's plain softmax, detached */
    memcpy(j->teacher, j->bt.probs, (size_t)j->b * j->K * sizeof(float));
    double kd = nas_distill(j, &r->min_net, m, map_or_null(&r->min_map));
    for (int i = 0; i < N_RANDOM; i++) {
        draw(r, step, i);
        net sub;
        slice_map map = {0};
        net_init(&sub);
        int rc = r->ops->build_subnet(r->ctx, NAS_SLOT_DRAW, &sub, &map, eb);
        if (rc == 0)
            kd += (double)nas_distill(j, &sub, m, map_or_null(&map));
        net_deinit(&sub);
        if (rc != 0)
            return rc;
    }
    if (j->d->world > 1)
        dist_allreduce_mean_f32(m->grads, m->n_params);
    nas_weight_step(m, &r->s->goal->ss->weights, weight_lr(r->s, step), step == 0);
    r->acc.ce += (double)ce;
    r->acc.kd += kd / (1 + N_RANDOM);
    r->acc.n += 1;
    return 0;
}

/* One architecture step on the same batch. */
static void arch_step(run *r, long step)
{
    const nas_search *s = r->s;
    r->ops->arch_scaling(r->ctx, 1);
    /* the weight gradients are dropped at the next zero_grad */
    float ce = ce_backward(r->j, r->ops->supernet(r->ctx), (float)s->goal->ss->label_smoothing);
    double dl, e = r->ops->expected_macs(r->ctx) / 1e6;
    prunespace_budget_loss(e, s->goal->target, s->goal->ss->flops_loss_weight, s->goal->ss->band,
                           &dl);
    r->ops->arch_step(r->ctx, dl / 1e6, &s->goal->ss->arch, arch_lr(s, step),
                      step == s->goal->warmup_steps);
    r->ops->arch_scaling(r->ctx, 0);
    r->acc.arch_ce += (double)ce;
    r->acc.arch_n += 1;
}

/* ---- metric points ------------------------------------------------------------------ */

static void log_point(run *r, long step)
{
    const nas_search *s = r->s;
    sums *acc = &r->acc;
    double v[5] = {acc->ce, acc->kd, acc->arch_ce, acc->n, acc->arch_n};
    if (r->j->d->world > 1)
        dist_allreduce_sum_f64(v, 5);
    const char *ph = phase_of(s, step - 1);
    if (v[3] > 0) {
        nas_emit_phase(r->j, step, ph, "train/loss", v[0] / v[3]);
        nas_emit_phase(r->j, step, ph, "train/kd", v[1] / v[3]);
    }
    nas_emit_phase(r->j, step, ph, "lr", weight_lr(s, step - 1));
    double dl, e = r->ops->expected_macs(r->ctx) / 1e6;
    double lf = prunespace_budget_loss(e, s->goal->target, s->goal->ss->flops_loss_weight,
                                       s->goal->ss->band, &dl);
    nas_emit_phase(r->j, step, ph, "expected_mflops", e);
    nas_emit_phase(r->j, step, ph, "flops_loss", lf);
    if (v[4] > 0) {
        nas_emit_phase(r->j, step, ph, "arch/loss", v[2] / v[4]);
        nas_emit_phase(r->j, step, ph, "arch/lr", arch_lr(s, step - 1));
    }
    memset(acc, 0, sizeof *acc);
}

/* Top-1 on the eval split of architecture `which` (the supernet when
 * which < 0); *macs (may be NULL) receives its MACs. -1 when the sub-net
 * cannot be built. */
static double eval_arch(run *r, int which, double *macs, errbuf *eb)
{
    if (which < 0)
        return nas_evaluate(r->j, r->ops->supernet(r->ctx), &r->j->eval);
    r->ops->sample(r->ctx, (nas_arch)which, NULL);
    if (macs != NULL)
        *macs = r->ops->arch_macs(r->ctx);
    net m;
    slice_map map;
    net_init(&m);
    double top1 = -1;
    if (r->ops->build_subnet(r->ctx, NAS_SLOT_DRAW, &m, &map, eb) == 0)
        top1 = nas_evaluate(r->j, &m, &r->j->eval);
    net_deinit(&m);
    return top1;
}

/* End of an epoch: mean P_k per unit, the space's own points, and the
 * max, min and expected sub-nets' accuracy after BN recalibration. */
static int epoch_point(run *r, long step, errbuf *eb)
{
    const nas_search *s = r->s;
    const char *ph = phase_of(s, step - 1);
    const prune_chains *ch = r->ops->chains(r->ctx);
    char what[96];
    for (int u = 0; u < ch->sp->n_units; u++) {
        snprintf(what, sizeof what, "p_mean/%s", ch->sp->units[u].name);
        nas_emit_phase(r->j, step, ph, what, chains_p_mean(ch, u));
    }
    if (r->ops->epoch_metrics != NULL)
        r->ops->epoch_metrics(r->ctx, step, ph);
    double es_macs = 0;
    double top_max = eval_arch(r, -1, NULL, eb);
    double top_min = eval_arch(r, NAS_ARCH_MIN, NULL, eb);
    double top_es = eval_arch(r, NAS_ARCH_EXPECTED, &es_macs, eb);
    if (top_max < 0 || top_min < 0 || top_es < 0)
        return ERR_INVALID;
    nas_emit_phase(r->j, step, ph, "test/top1_max", top_max);
    nas_emit_phase(r->j, step, ph, "test/top1_min", top_min);
    nas_emit_phase(r->j, step, ph, "test/top1_expected", top_es);
    nas_emit_phase(r->j, step, ph, "expected_net_mflops", es_macs / 1e6);
    char note[200] = "";
    if (r->ops->epoch_note != NULL)
        r->ops->epoch_note(r->ctx, note, sizeof note);
    nas_say(r->j, "info",
            "%s epoch %.2f: top-1 max %.4f, min %.4f, expected %.4f (%.3f MFLOPs, target %.3f%s)",
            ph, (double)step / (double)r->j->steps_per_epoch, top_max, top_min, top_es,
            es_macs / 1e6, s->goal->target, note);
    return 0;
}

/* The target and its bands as metric points at the search's step 0, so
 * that a dashboard can draw expected_mflops against them while it runs:
 * target/mflops, target/band_low_mflops and target/band_high_mflops (the
 * band the derived network must meet), target/deadband_low_mflops (where
 * the budget loss stops pulling, band * target). */
static void emit_target(const nas_search *s, long step)
{
    nas_emit(s->j, "target/mflops", s->goal->target, step);
    nas_emit(s->j, "target/band_low_mflops", s->goal->target * (1 - s->goal->target_tol), step);
    nas_emit(s->j, "target/band_high_mflops", s->goal->target * (1 + s->goal->target_tol), step);
    nas_emit(s->j, "target/deadband_low_mflops", s->goal->target * s->goal->ss->band, step);
}

static void progress(run *r, long step, long start, double t0)
{
    const job_sink *k = nas_sink(r->j);
    if (k != NULL && k->progress != NULL)
        k->progress(k->ctx, step, r->s->goal->total_steps + r->j->retrain_steps,
                    r->acc.n > 0 ? r->acc.ce / r->acc.n : 0.0,
                    (double)(step - start) * r->s->goal->ss->batch_size / (nas_now() - t0));
}

/* ---- checkpoints ---------------------------------------------------------------------- */

/* Running statistics differ per rank: average them before a file holds them. */
static void sync_buffers(const run *r, net *m)
{
    if (r->j->d->world > 1 && m->n_buffers > 0)
        dist_allreduce_mean_f32(m->buffers, m->n_buffers);
}

static int save_checkpoint(run *r, long step, errbuf *eb)
{
    net *m = r->ops->supernet(r->ctx);
    sync_buffers(r, m);
    if (r->j->d->rank != 0)
        return 0;
    char path[CKPT_PATH_MAX];
    snprintf(path, sizeof path, "%s/search-%08ld.safetensors", r->j->env->out_dir, step);
    st_writer *w = st_writer_new();
    st_writer_meta(w, "kind", r->ops->kind);
    char *model = r->ops->model_json(r->ctx);
    st_writer_meta(w, "model", model);
    free(model);
    if (r->ops->save_meta != NULL)
        r->ops->save_meta(r->ctx, w);
    net_add_state(m, w, "");
    net_add_param_like(m, w, "optim.m.", m->opt_m);
    r->ops->save_state(r->ctx, w);
    int64_t sv = step;
    st_writer_add(w, "train.step", ST_I64, 0, NULL, &sv);
    int rc = st_writer_save(w, path, eb);
    st_writer_free(w);
    if (rc == 0)
        nas_keep_checkpoint(r->j, path, step);
    return rc;
}

/* The supernet after the warm-up: a starting point for other targets. */
static int save_supernet(run *r, errbuf *eb)
{
    net *m = r->ops->supernet(r->ctx);
    sync_buffers(r, m);
    if (r->j->d->rank != 0)
        return 0;
    char path[CKPT_PATH_MAX];
    nas_out_path(r->j, path, sizeof path, "supernet.safetensors");
    char *model = r->ops->model_json(r->ctx);
    int rc = net_save_state(m, path, model, eb);
    free(model);
    return rc;
}

static const char *const SEARCH_PREFIXES[] = {"optim.", "train.", "arch.", NULL};

int nas_search_load(const nas_search *s, const char *path, long *step, errbuf *eb)
{
    const nas_space_ops *ops = s->ops;
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    int64_t sv = 0;
    const char *kind = st_meta(f, "kind");
    if (kind == NULL || strcmp(kind, ops->kind) != 0)
        rc = err_set(eb, ERR_FORMAT, "not a checkpoint of kind %s (kind %s)", ops->kind,
                     kind ? kind : "missing");
    else if (ops->load_meta != NULL)
        rc = ops->load_meta(s->ctx, f, eb);
    net *m = rc == 0 ? ops->supernet(s->ctx) : NULL;
    if (rc == 0 && (rc = net_load_state(m, f, SEARCH_PREFIXES, eb)) == 0 &&
        (rc = net_read_param_like(m, f, "optim.m.", m->opt_m, eb)) == 0 &&
        (rc = ops->load_state(s->ctx, f, eb)) == 0 &&
        (rc = st_read_i64(f, "train.step", &sv, 1, eb)) == 0 && sv < 0)
        rc = err_set(eb, ERR_FORMAT, "negative train.step");
    st_close(f);
    if (rc != 0)
        return err_prefix(eb, rc, "checkpoint %s", path);
    *step = (long)sv;
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------- */

/* One iteration at `step` on the next batch of the epoch ending at
 * epoch_end: weight step, architecture step, the space's check, metric
 * points, progress and the periodic checkpoint. */
static int iteration(run *r, long step, long start, long epoch_end, double t0, errbuf *eb)
{
    const nas_search *s = r->s;
    nas_job *j = r->j;
    int n = loader_next(r->ld, j->bt.x, j->bt.y);
    KILN_CHECKF(n == j->b, "loader returned %d samples at step %ld, expected %d", n, step, j->b);
    int rc = sandwich(r, step, eb);
    if (rc != 0)
        return rc;
    if (step >= s->goal->warmup_steps &&
        (r->ops->arch_due == NULL || r->ops->arch_due(r->ctx, step)))
        arch_step(r, step);
    if (r->ops->on_check != NULL) {
        int changes = r->ops->on_check(r->ctx, step, eb);
        if (changes < 0)
            return changes;
        if (changes > 0 && (rc = build_min(r, eb)) != 0)
            return rc;
    }
    step++;
    if (step % LOG_EVERY == 0 || step == epoch_end)
        log_point(r, step);
    progress(r, step, start, t0);
    if (r->ops->save_supernet && step == s->goal->warmup_steps && (rc = save_supernet(r, eb)) != 0)
        return rc;
    long every = j->spec->ckpt_every_steps;
    if (every > 0 && step % every == 0 && step < epoch_end)
        return save_checkpoint(r, step, eb);
    return 0;
}

static int search_loop(run *r, long start, errbuf *eb)
{
    const nas_search *s = r->s;
    nas_job *j = r->j;
    double t0 = nas_now();
    long step = start;
    while (step < s->goal->total_steps) {
        int epoch = (int)(step / j->steps_per_epoch);
        loader_start_epoch(r->ld, epoch, step % j->steps_per_epoch);
        long epoch_end = (long)(epoch + 1) * j->steps_per_epoch;
        for (; step < epoch_end; step++) {
            if (nas_cancel_now(j)) {
                int rc = save_checkpoint(r, step, eb);
                return rc != 0 ? rc
                               : err_set(eb, ERR_CANCELLED, "cancelled in the search at step %ld",
                                         step);
            }
            int rc = iteration(r, step, start, epoch_end, t0, eb);
            if (rc != 0)
                return rc;
        }
        int rc = epoch_point(r, step, eb);
        if (rc != 0 || (rc = save_checkpoint(r, step, eb)) != 0)
            return rc;
    }
    return 0;
}

int nas_search_run(const nas_search *s, long start, double *top1_super, errbuf *eb)
{
    run r = {.s = s, .j = s->j, .ops = s->ops, .ctx = s->ctx};
    nas_job *j = s->j;
    net_init(&r.min_net);
    int rc = build_min(&r, eb);
    if (rc == 0) {
        loader_opts lo = {.batch = j->b,
                          .rank = j->d->rank,
                          .world = j->d->world,
                          .seed = j->spec->seed,
                          .train = 1,
                          .crop_padding = j->spec->data.crop_padding,
                          .hflip = j->spec->data.hflip};
        r.ld = loader_new(&j->train, &lo);
        char line[400];
        s->ops->describe(s->ctx, line, sizeof line);
        nas_say(j, "info", "%s", line);
        if (start == 0) /* a resumed search's job has them from its first run */
            emit_target(s, 0);
        rc = search_loop(&r, start, eb);
    }
    if (rc == 0)
        *top1_super = nas_evaluate(j, s->ops->supernet(s->ctx), &j->test);
    loader_free(r.ld);
    net_deinit(&r.min_net);
    return rc;
}
