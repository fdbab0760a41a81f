/* prune_dmcp.c - DMCP's search schedule (ALGORITHMS.md 2.6; see prune.h).
 *
 * Every iteration is one weight step: the sandwich rule on one batch - the
 * full supernet with the labels, then the c_min net and two random sub-nets
 * with in-place distillation (KL to the full net's detached softmax,
 * tau = 1) - gradients accumulated into the supernet and one SGD step
 * (Nesterov, per-iteration cosine from lr to min_lr over warm-up + search,
 * no decay on 1-D tensors). From the end of the warm-up on, each weight
 * step is followed by an architecture step on the same batch: the full
 * supernet with every unit's BN outputs scaled by its keep probabilities,
 * loss CE + the budget loss, and one SGD step on alpha only (lr held through
 * the warm-up, then cosine to min_lr). Random sub-nets are group-aligned
 * uniform widths during the warm-up; during the search they are uniform
 * with probability p_s and direct samples from the chains otherwise, p_s
 * decaying by 0.9999 per random sub-net on every tenth iteration, as the
 * reference code does (in iterations, so a short CPU run stays near
 * p_s = 1). Data-parallel: every rank draws the same sub-nets (the draw is
 * keyed by the step), weight and scale gradients are averaged.
 * Checkpoints (kind prune-search) at every epoch end, every
 * checkpoint.every_steps and on cancel hold everything needed to continue
 * exactly: supernet, momentum, alpha and its momentum, the step.
 */
#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "worker/jobs/prune.h"
#include "worker/models/slice.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"
#include "worker/nn/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_EVERY 10
#define N_RANDOM  2
#define PS_DECAY  0.9999
#define RNG_TAG   0x646d6370ULL /* "dmcp" */

/* Running sums of the training metrics between two log points. */
typedef struct sums {
    double ce, kd, arch_ce, n, arch_n;
} sums;

typedef struct search {
    pruner *p;
    net min_net; /* the c_min sub-net, built once */
    int *w;      /* (n_units) scratch widths */
} search;

static double weight_lr(const pruner *p, long step)
{
    return nas_cosine(p->ps.search.weights.lr, p->ps.search.weights.min_lr, step, 0,
                      p->total_steps);
}

static double arch_lr(const pruner *p, long step)
{
    return nas_cosine(p->ps.search.arch.lr, p->ps.search.arch.min_lr, step, p->warmup_steps,
                      p->total_steps);
}

/* Width draw for random sub-net `which` at `step`. */
static void random_widths(search *s, long step, int which, int *w)
{
    pruner *p = s->p;
    rng r;
    rng_derive(&r, p->j.spec->seed ^ RNG_TAG, (uint64_t)step, (uint64_t)which);
    if (step >= p->warmup_steps) {
        long it = step - p->warmup_steps;
        long tens = it / 10; /* the decay steps every 10 iterations */
        double ps = pow(PS_DECAY, (double)(N_RANDOM * tens));
        if ((double)rng_uniform(&r) >= ps) {
            chains_sample(&p->ch, &r, w);
            return;
        }
    }
    chains_random_widths(&p->sp, &r, w);
}

/* One sandwich-rule weight step on the batch in p->j.x / p->j.y. */
static int sandwich(search *s, long step, sums *acc, errbuf *eb)
{
    pruner *p = s->p;
    net *m = &p->super;
    float ls = (float)p->ps.search.label_smoothing;
    net_zero_grad(m);
    net_forward(m, p->j.x, p->j.b);
    float ce = nn_crossentropy_forward(p->j.probs, NULL, net_out(m), p->j.y, p->j.b, p->j.K, ls);
    /* the teacher: the full net's plain softmax, detached */
    memcpy(p->j.teacher, p->j.probs, (size_t)p->j.b * p->j.K * sizeof(float));
    memset(p->j.dlogits, 0, (size_t)p->j.b * p->j.K * sizeof(float));
    nn_crossentropy_backward(p->j.dlogits, p->j.probs, p->j.y, p->j.b, p->j.K, ls, 1.0f);
    net_backward(m, p->j.dlogits);
    double kd = nas_distill(&p->j, &s->min_net, m, NULL);
    for (int i = 0; i < N_RANDOM; i++) {
        random_widths(s, step, i, s->w);
        net sub;
        net_init(&sub);
        int rc = pruner_subnet(p, s->w, &sub, eb);
        if (rc != 0) {
            net_deinit(&sub);
            return rc;
        }
        kd += (double)nas_distill(&p->j, &sub, m, NULL);
        net_deinit(&sub);
    }
    if (p->j.d->world > 1)
        dist_allreduce_mean_f32(m->grads, m->n_params);
    nas_weight_step(m, &p->ps.search.weights, weight_lr(p, step), step == 0);
    acc->ce += (double)ce;
    acc->kd += kd / (1 + N_RANDOM);
    acc->n += 1;
    return 0;
}

/* One architecture step on the same batch. */
static void arch_step(search *s, long step, sums *acc)
{
    pruner *p = s->p;
    net *m = &p->super;
    prune_chains *ch = &p->ch;
    float ls = (float)p->ps.search.label_smoothing;
    chains_set_scaling(ch, 1);
    chains_zero_grad(ch);
    net_forward(m, p->j.x, p->j.b);
    float ce = nn_crossentropy_forward(p->j.probs, NULL, net_out(m), p->j.y, p->j.b, p->j.K, ls);
    memset(p->j.dlogits, 0, (size_t)p->j.b * p->j.K * sizeof(float));
    nn_crossentropy_backward(p->j.dlogits, p->j.probs, p->j.y, p->j.b, p->j.K, ls, 1.0f);
    net_backward(m, p->j.dlogits); /* the weight gradients are dropped at the next zero_grad */
    if (p->j.d->world > 1)
        dist_allreduce_mean_f32(ch->dscale, ch->s_off[p->sp.n_units]);
    double dl;
    double e = chains_expected_macs(ch, NULL) / 1e6;
    ps_budget_loss(e, p->target, p->ps.search.flops_loss_weight, p->ps.search.band, &dl);
    chains_backward(ch, dl / 1e6);
    const search_sgd *o = &p->ps.search.arch;
    chains_sgd_step(ch, arch_lr(p, step), o->momentum, o->nesterov, o->weight_decay,
                    step == p->warmup_steps);
    chains_set_scaling(ch, 0);
    acc->arch_ce += (double)ce;
    acc->arch_n += 1;
}

static const char *phase_of(const pruner *p, long step)
{
    return step < p->warmup_steps ? "warmup" : "search";
}

static void emitf(const pruner *p, long step, const char *phase, const char *what, double v)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", phase, what);
    nas_emit(&p->j, name, v, step);
}

static void log_point(search *s, long step, sums *acc)
{
    pruner *p = s->p;
    double v[5] = {acc->ce, acc->kd, acc->arch_ce, acc->n, acc->arch_n};
    if (p->j.d->world > 1)
        dist_allreduce_sum_f64(v, 5);
    const char *ph = phase_of(p, step - 1);
    if (v[3] > 0) {
        emitf(p, step, ph, "train/loss", v[0] / v[3]);
        emitf(p, step, ph, "train/kd", v[1] / v[3]);
    }
    emitf(p, step, ph, "lr", weight_lr(p, step - 1));
    double dl, e = chains_expected_macs(&p->ch, NULL) / 1e6;
    double lf =
        ps_budget_loss(e, p->target, p->ps.search.flops_loss_weight, p->ps.search.band, &dl);
    emitf(p, step, ph, "expected_mflops", e);
    emitf(p, step, ph, "flops_loss", lf);
    if (v[4] > 0) {
        emitf(p, step, ph, "arch/loss", v[2] / v[4]);
        emitf(p, step, ph, "arch/lr", arch_lr(p, step - 1));
    }
    memset(acc, 0, sizeof *acc);
}

/* End of an epoch: mean P_k per unit, and the max, min and expected
 * sub-nets' accuracy after BN recalibration. */
static int epoch_point(search *s, long step, errbuf *eb)
{
    pruner *p = s->p;
    const char *ph = phase_of(p, step - 1);
    char what[96];
    for (int u = 0; u < p->sp.n_units; u++) {
        snprintf(what, sizeof what, "p_mean/%s", p->sp.units[u].name);
        emitf(p, step, ph, what, chains_p_mean(&p->ch, u));
    }
    double top_max = pruner_eval_widths(p, NULL, &p->j.eval, eb);
    ps_min_widths(&p->sp, s->w);
    double top_min = pruner_eval_widths(p, s->w, &p->j.eval, eb);
    chains_es_widths(&p->ch, s->w);
    double es_mflops = ps_macs(&p->sp, s->w) / 1e6;
    double top_es = pruner_eval_widths(p, s->w, &p->j.eval, eb);
    if (top_max < 0 || top_min < 0 || top_es < 0)
        return ERR_INVALID;
    emitf(p, step, ph, "test/top1_max", top_max);
    emitf(p, step, ph, "test/top1_min", top_min);
    emitf(p, step, ph, "test/top1_expected", top_es);
    emitf(p, step, ph, "expected_net_mflops", es_mflops);
    nas_say(&p->j, "info",
            "%s epoch %.2f: top-1 max %.4f, min %.4f, expected %.4f (%.3f MFLOPs, target "
            "%.3f)",
            ph, (double)step / (double)p->j.steps_per_epoch, top_max, top_min, top_es, es_mflops,
            p->target);
    return 0;
}

/* ---- checkpoints ------------------------------------------------------------ */

static int save_checkpoint(search *s, long step, errbuf *eb)
{
    pruner *p = s->p;
    if (p->j.d->world > 1 && p->super.n_buffers > 0)
        dist_allreduce_mean_f32(p->super.buffers, p->super.n_buffers);
    if (p->j.d->rank != 0)
        return 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/search-%08ld.safetensors", p->j.env->out_dir, step);
    st_writer *w = st_writer_new();
    st_writer_meta(w, "kind", "prune-search");
    json_t *mj = modelcfg_to_json(&p->sp.super);
    char *model = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    st_writer_meta(w, "model", model);
    free(model);
    net_add_state(&p->super, w, "");
    net_add_param_like(&p->super, w, "optim.m.", p->super.opt_m);
    int na = (int)(p->ch.n_alpha ? p->ch.n_alpha : 1);
    st_writer_add_f32(w, "arch.alpha", 1, &na, p->ch.alpha);
    st_writer_add_f32(w, "arch.momentum", 1, &na, p->ch.mom);
    int64_t st = step;
    st_writer_add(w, "train.step", ST_I64, 0, NULL, &st);
    int rc = st_writer_save(w, path, eb);
    st_writer_free(w);
    if (rc == 0)
        nas_keep_checkpoint(&p->j, path, step);
    return rc;
}

static const char *const SEARCH_PREFIXES[] = {"optim.", "train.", "arch.", NULL};

int dmcp_load_checkpoint(pruner *p, const char *path, long *step, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    int64_t st = 0;
    size_t na = p->ch.n_alpha ? p->ch.n_alpha : 1;
    const char *kind = st_meta(f, "kind");
    if (kind == NULL || strcmp(kind, "prune-search") != 0)
        rc = err_set(eb, ERR_FORMAT, "not a prune-search checkpoint (kind %s)",
                     kind ? kind : "missing");
    else if ((rc = net_load_state(&p->super, f, SEARCH_PREFIXES, eb)) == 0 &&
             (rc = net_read_param_like(&p->super, f, "optim.m.", p->super.opt_m, eb)) == 0 &&
             (rc = st_read_f32(f, "arch.alpha", p->ch.alpha, na, eb)) == 0 &&
             (rc = st_read_f32(f, "arch.momentum", p->ch.mom, na, eb)) == 0 &&
             (rc = st_read_i64(f, "train.step", &st, 1, eb)) == 0 && st < 0)
        rc = err_set(eb, ERR_FORMAT, "negative train.step");
    st_close(f);
    if (rc != 0)
        return err_prefix(eb, rc, "checkpoint %s", path);
    chains_update(&p->ch);
    *step = (long)st;
    return 0;
}

/* The supernet after the warm-up: a starting point for other targets. */
static int save_supernet(pruner *p, errbuf *eb)
{
    if (p->j.d->world > 1 && p->super.n_buffers > 0)
        dist_allreduce_mean_f32(p->super.buffers, p->super.n_buffers);
    if (p->j.d->rank != 0)
        return 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/supernet.safetensors", p->j.env->out_dir);
    json_t *mj = modelcfg_to_json(&p->sp.super);
    char *model = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    int rc = net_save_state(&p->super, path, model, eb);
    free(model);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------ */

static int search_setup(search *s, pruner *p, errbuf *eb)
{
    memset(s, 0, sizeof *s);
    s->p = p;
    s->w = xcalloc((size_t)p->sp.n_units, sizeof(int));
    ps_min_widths(&p->sp, s->w);
    net_init(&s->min_net);
    return pruner_subnet(p, s->w, &s->min_net, eb);
}

static void search_teardown(search *s)
{
    net_deinit(&s->min_net);
    free(s->w);
}

/* The target and its bands as metric points at the search's first step, so
 * that a dashboard can draw expected_mflops against them while it runs:
 * target/mflops, target/band_low_mflops and target/band_high_mflops (the
 * band the derived network must meet), target/deadband_low_mflops (where
 * the budget loss stops pulling, band * target). */
static void emit_target(const pruner *p, long step)
{
    nas_emit(&p->j, "target/mflops", p->target, step);
    nas_emit(&p->j, "target/band_low_mflops", p->target * (1 - PRUNE_TARGET_TOL), step);
    nas_emit(&p->j, "target/band_high_mflops", p->target * (1 + PRUNE_TARGET_TOL), step);
    nas_emit(&p->j, "target/deadband_low_mflops", p->target * p->ps.search.band, step);
}

int dmcp_search(pruner *p, long start, errbuf *eb)
{
    search s;
    loader *ld = NULL;
    int rc = search_setup(&s, p, eb);
    if (rc != 0)
        goto done;
    loader_opts lo = {.batch = p->j.b,
                      .rank = p->j.d->rank,
                      .world = p->j.d->world,
                      .seed = p->j.spec->seed,
                      .train = 1,
                      .crop_padding = p->j.spec->data.crop_padding,
                      .hflip = p->j.spec->data.hflip};
    ld = loader_new(&p->j.train, &lo);
    nas_say(&p->j, "info",
            "dmcp: %d units, %zu architecture parameters, target %.3f of %.3f MFLOPs; %ld "
            "warm-up + %ld search steps",
            p->sp.n_units, p->ch.n_alpha, p->target, p->full_mflops, p->warmup_steps,
            p->total_steps - p->warmup_steps);
    emit_target(p, start);
    sums acc = {0};
    double t0 = nas_now();
    long step = start;
    while (step < p->total_steps) {
        int epoch = (int)(step / p->j.steps_per_epoch);
        loader_start_epoch(ld, epoch, step % p->j.steps_per_epoch);
        long epoch_end = (long)(epoch + 1) * p->j.steps_per_epoch;
        while (step < epoch_end) {
            if (nas_cancel_now(&p->j)) {
                rc = save_checkpoint(&s, step, eb);
                if (rc == 0)
                    rc = err_set(eb, ERR_CANCELLED, "cancelled in the search at step %ld", step);
                goto done;
            }
            int n = loader_next(ld, p->j.x, p->j.y);
            if (n != p->j.b) {
                log_error("loader returned %d samples at step %ld, expected %d", n, step, p->j.b);
                abort();
            }
            if ((rc = sandwich(&s, step, &acc, eb)) != 0)
                goto done;
            if (step >= p->warmup_steps)
                arch_step(&s, step, &acc);
            step++;
            if (step % LOG_EVERY == 0 || step == epoch_end)
                log_point(&s, step, &acc);
            const job_sink *k = nas_sink(&p->j);
            if (k != NULL && k->progress != NULL)
                k->progress(k->ctx, step, p->total_steps + p->j.retrain_steps,
                            acc.n > 0 ? acc.ce / acc.n : 0.0,
                            (double)(step - start) * p->ps.search.batch_size / (nas_now() - t0));
            if (step == p->warmup_steps && (rc = save_supernet(p, eb)) != 0)
                goto done;
            if (p->j.spec->ckpt_every_steps > 0 && step % p->j.spec->ckpt_every_steps == 0 &&
                step < epoch_end && (rc = save_checkpoint(&s, step, eb)) != 0)
                goto done;
        }
        if ((rc = epoch_point(&s, step, eb)) != 0 || (rc = save_checkpoint(&s, step, eb)) != 0)
            goto done;
    }
    p->top1_max = pruner_eval_widths(p, NULL, &p->j.test, eb);
done:
    loader_free(ld);
    search_teardown(&s);
    return rc;
}
