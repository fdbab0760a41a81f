/* adapt_dna.c - DNA's search schedule in the elastic space (ALGORITHMS.md 3.2(e); see adapt.h).
 *
 * DMCP's schedule (prune_dmcp.c) over widths and depths. Every iteration
 * is one sandwich-rule weight step: the whole supernet (every group, every
 * block) with the labels, the smallest net (c_min, one block per stage)
 * and two random sub-nets with in-place distillation; random sub-nets draw
 * a group count per unit and a depth per stage uniformly in the warm-up,
 * and from the chains with probability 1 - p_s during the search (p_s as
 * in DMCP). From the end of the warm-up on, each weight step is followed
 * by an architecture step on the same batch: the supernet with every BN
 * output scaled by its channel keep probabilities and every droppable
 * block's branch by its block keep probability (x + q F(x)), loss CE + the
 * budget loss on the expected FLOPs over both kinds of chain, one SGD step
 * on alpha and beta. The elastic rules are checked every check_every
 * search steps (or at every epoch end), except in the last `freeze`
 * fraction of the search; after a change the architecture steps pause for
 * settle_steps steps. Every change is a log line and metric points
 * ("elastic/<kind>" and "elastic/events": running counts,
 * "elastic/supernet_mflops"). Data-parallel: every rank draws the same
 * sub-nets and makes the same changes (they depend on alpha and beta,
 * which the averaged gradients keep equal, and on the seed).
 * Checkpoints (kind adapt-search) at every epoch end, every
 * checkpoint.every_steps and on cancel hold the supernet as it is then
 * (config, windows, weights, momentum), the chains and their momentum, the
 * event log and the rules' counters.
 */
#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_EVERY 10
#define N_RANDOM  2
#define PS_DECAY  0.9999
#define RNG_TAG   0x646e615f73ULL /* "dna_s" */

typedef struct sums {
    double ce, kd, arch_ce, n, arch_n;
} sums;

typedef struct search {
    adapter *a;
    net min_net;         /* the smallest sub-net, rebuilt after every change */
    as_blockmap min_map; /* its blocks in the supernet */
    int *w;              /* (n_units) scratch widths */
    int d[AS_MAX_STAGES];
} search;

static double weight_lr(const adapter *a, long step)
{
    return nas_cosine(a->as.search.weights.lr, a->as.search.weights.min_lr, step, 0,
                      a->total_steps);
}

static double arch_lr(const adapter *a, long step)
{
    return nas_cosine(a->as.search.arch.lr, a->as.search.arch.min_lr, step, a->warmup_steps,
                      a->total_steps);
}

static int build_min(search *s, errbuf *eb)
{
    adapter *a = s->a;
    net_deinit(&s->min_net);
    free(s->w);
    s->w = xcalloc((size_t)a->st->as.sp.n_units, sizeof(int));
    adapt_min_arch(a->st, s->w, s->d);
    net_init(&s->min_net);
    return adapt_subnet(a->st, s->w, s->d, a->j.b, a->j.spec->seed, &s->min_net, &s->min_map, eb);
}

/* The architecture of random sub-net `which` at `step`. */
static void random_arch(search *s, long step, int which)
{
    adapter *a = s->a;
    rng r;
    rng_derive(&r, a->j.spec->seed ^ RNG_TAG, (uint64_t)step, (uint64_t)which);
    if (step >= a->warmup_steps) {
        long it = step - a->warmup_steps;
        long tens = it / 10; /* the decay steps every 10 iterations */
        double ps = pow(PS_DECAY, (double)(N_RANDOM * tens));
        if ((double)rng_uniform(&r) >= ps) {
            adapt_sample_arch(a->st, &r, s->w, s->d);
            return;
        }
    }
    adapt_random_arch(a->st, &r, s->w, s->d);
}

/* One sandwich-rule weight step on the batch in a->j.x / a->j.y. */
static int sandwich(search *s, long step, sums *acc, errbuf *eb)
{
    adapter *a = s->a;
    nas_job *j = &a->j;
    net *m = &a->st->super;
    float ls = (float)a->as.search.label_smoothing;
    net_zero_grad(m);
    net_forward(m, j->x, j->b);
    float ce = nn_crossentropy_forward(j->probs, NULL, net_out(m), j->y, j->b, j->K, ls);
    memcpy(j->teacher, j->probs, (size_t)j->b * j->K * sizeof(float));
    memset(j->dlogits, 0, (size_t)j->b * j->K * sizeof(float));
    nn_crossentropy_backward(j->dlogits, j->probs, j->y, j->b, j->K, ls, 1.0f);
    net_backward(m, j->dlogits);
    slice_map mm = {as_map_name, &s->min_map};
    double kd = nas_distill(j, &s->min_net, m, &mm);
    for (int i = 0; i < N_RANDOM; i++) {
        random_arch(s, step, i);
        net sub;
        net_init(&sub);
        as_blockmap map;
        int rc = adapt_subnet(a->st, s->w, s->d, j->b, j->spec->seed, &sub, &map, eb);
        if (rc != 0) {
            net_deinit(&sub);
            return rc;
        }
        slice_map sm = {as_map_name, &map};
        kd += (double)nas_distill(j, &sub, m, &sm);
        net_deinit(&sub);
    }
    if (j->d->world > 1)
        dist_allreduce_mean_f32(m->grads, m->n_params);
    nas_weight_step(m, &a->as.search.weights, weight_lr(a, step), step == 0);
    acc->ce += (double)ce;
    acc->kd += kd / (1 + N_RANDOM);
    acc->n += 1;
    return 0;
}

/* One architecture step on the same batch. */
static void arch_step(search *s, long step, sums *acc)
{
    adapter *a = s->a;
    nas_job *j = &a->j;
    adapt_state *st = a->st;
    net *m = &st->super;
    float ls = (float)a->as.search.label_smoothing;
    adapt_set_scaling(st, 1);
    adapt_zero_arch_grad(st);
    net_forward(m, j->x, j->b);
    float ce = nn_crossentropy_forward(j->probs, NULL, net_out(m), j->y, j->b, j->K, ls);
    memset(j->dlogits, 0, (size_t)j->b * j->K * sizeof(float));
    nn_crossentropy_backward(j->dlogits, j->probs, j->y, j->b, j->K, ls, 1.0f);
    net_backward(m, j->dlogits); /* the weight gradients are dropped at the next zero_grad */
    if (j->d->world > 1) {
        dist_allreduce_mean_f32(st->ch.dscale, st->ch.s_off[st->as.sp.n_units]);
        if (st->dc.n > 0)
            dist_allreduce_mean_f32(st->dc.dq, (size_t)st->dc.n);
    }
    double dl, e = adapt_expected_macs(st, NULL, NULL) / 1e6;
    ps_budget_loss(e, a->target, a->as.search.flops_loss_weight, a->as.search.band, &dl);
    adapt_arch_backward(st, dl / 1e6);
    const search_sgd *o = &a->as.search.arch;
    adapt_arch_sgd(st, arch_lr(a, step), o->momentum, o->nesterov, o->weight_decay,
                   step == a->warmup_steps);
    adapt_set_scaling(st, 0);
    acc->arch_ce += (double)ce;
    acc->arch_n += 1;
}

static const char *phase_of(const adapter *a, long step)
{
    return step < a->warmup_steps ? "warmup" : "search";
}

static void emitf(const adapter *a, long step, const char *phase, const char *what, double v)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", phase, what);
    nas_emit(&a->j, name, v, step);
}

static void log_point(search *s, long step, sums *acc)
{
    adapter *a = s->a;
    double v[5] = {acc->ce, acc->kd, acc->arch_ce, acc->n, acc->arch_n};
    if (a->j.d->world > 1)
        dist_allreduce_sum_f64(v, 5);
    const char *ph = phase_of(a, step - 1);
    if (v[3] > 0) {
        emitf(a, step, ph, "train/loss", v[0] / v[3]);
        emitf(a, step, ph, "train/kd", v[1] / v[3]);
    }
    emitf(a, step, ph, "lr", weight_lr(a, step - 1));
    double dl, e = adapt_expected_macs(a->st, NULL, NULL) / 1e6;
    double lf =
        ps_budget_loss(e, a->target, a->as.search.flops_loss_weight, a->as.search.band, &dl);
    emitf(a, step, ph, "expected_mflops", e);
    emitf(a, step, ph, "flops_loss", lf);
    if (v[4] > 0) {
        emitf(a, step, ph, "arch/loss", v[2] / v[4]);
        emitf(a, step, ph, "arch/lr", arch_lr(a, step - 1));
    }
    memset(acc, 0, sizeof *acc);
}

/* Top-1 of the sub-net (w, d) (NULL, NULL: the supernet) on the eval split. */
static double eval_arch(adapter *a, const int *w, const int *d, errbuf *eb)
{
    if (w == NULL)
        return nas_evaluate(&a->j, &a->st->super, &a->j.eval);
    net m;
    net_init(&m);
    as_blockmap map;
    double top1 = -1;
    if (adapt_subnet(a->st, w, d, a->j.b, a->j.spec->seed, &m, &map, eb) == 0)
        top1 = nas_evaluate(&a->j, &m, &a->j.eval);
    net_deinit(&m);
    return top1;
}

/* End of an epoch: mean P_k per unit, expected depths, and the max, min
 * and expected sub-nets' accuracy after BN recalibration. */
static int epoch_point(search *s, long step, errbuf *eb)
{
    adapter *a = s->a;
    adapt_state *st = a->st;
    const char *ph = phase_of(a, step - 1);
    char what[96];
    for (int u = 0; u < st->as.sp.n_units; u++) {
        snprintf(what, sizeof what, "p_mean/%s", st->as.sp.units[u].name);
        emitf(a, step, ph, what, chains_p_mean(&st->ch, u));
    }
    double ed[AS_MAX_STAGES];
    adapt_expected(st, NULL, ed);
    for (int i = 0; i < st->as.n_stages; i++) {
        snprintf(what, sizeof what, "expected_depth/stage%d", i + 1);
        emitf(a, step, ph, what, ed[i]);
    }
    emitf(a, step, ph, "supernet_mflops", modelcfg_macs(&st->as.sp.super) / 1e6);
    int *w = xcalloc((size_t)st->as.sp.n_units, sizeof(int)), d[AS_MAX_STAGES];
    double top_max = eval_arch(a, NULL, NULL, eb);
    adapt_min_arch(st, w, d);
    double top_min = eval_arch(a, w, d, eb);
    adapt_expected_arch(st, w, d);
    double es_mflops = as_macs(&st->as, w, d) / 1e6;
    double top_es = eval_arch(a, w, d, eb);
    free(w);
    if (top_max < 0 || top_min < 0 || top_es < 0)
        return ERR_INVALID;
    emitf(a, step, ph, "test/top1_max", top_max);
    emitf(a, step, ph, "test/top1_min", top_min);
    emitf(a, step, ph, "test/top1_expected", top_es);
    emitf(a, step, ph, "expected_net_mflops", es_mflops);
    nas_say(&a->j, "info",
            "%s epoch %.2f: top-1 max %.4f, min %.4f, expected %.4f (%.3f MFLOPs, target %.3f; "
            "supernet %.3f MFLOPs, %d elastic events so far)",
            ph, (double)step / (double)a->j.steps_per_epoch, top_max, top_min, top_es, es_mflops,
            a->target, modelcfg_macs(&st->as.sp.super) / 1e6, a->el.n_ev);
    return 0;
}

/* ---- elastic checks ------------------------------------------------------------------ */

static int check_due(const adapter *a, long step)
{
    const adapt_elastic *e = &a->as.elastic;
    if (!e->enabled || step < a->warmup_steps || step < a->settle_until)
        return 0;
    long search_steps = a->total_steps - a->warmup_steps;
    long freeze_at = a->warmup_steps + (long)floor((1.0 - e->freeze) * (double)search_steps);
    if (step >= freeze_at)
        return 0;
    long done = step + 1 - a->warmup_steps;
    if (e->check_every > 0)
        return done % e->check_every == 0;
    return (step + 1) % a->j.steps_per_epoch == 0;
}

static int elastic_point(search *s, long step, errbuf *eb)
{
    adapter *a = s->a;
    int first = a->el.n_ev;
    int rc = elastic_check(&a->el, &a->st, step + 1, a->j.b, eb);
    if (rc <= 0)
        return rc;
    a->settle_until = step + 1 + a->as.elastic.settle_steps;
    for (int i = first; i < a->el.n_ev; i++) {
        char line[400];
        elastic_event_text(&a->el.ev[i], a->j.steps_per_epoch, line, sizeof line);
        nas_say(&a->j, "info", "%s", line);
        char name[64];
        snprintf(name, sizeof name, "elastic/%s", elastic_kind_name(a->el.ev[i].kind));
        emitf(a, step + 1, "search", name, a->el.counts[a->el.ev[i].kind]);
    }
    emitf(a, step + 1, "search", "elastic/events", a->el.n_ev);
    emitf(a, step + 1, "search", "elastic/supernet_mflops",
          modelcfg_macs(&a->st->as.sp.super) / 1e6);
    return build_min(s, eb);
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static char *compact(json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

/* The space beyond its config: every unit's grid and nominal width, the
 * stages' existing depths. */
static json_t *space_json(const adapt_space *as)
{
    json_t *units = json_array(), *d0 = json_array();
    for (int u = 0; u < as->sp.n_units; u++) {
        const ps_unit *x = &as->sp.units[u];
        json_array_append_new(units,
                              json_pack("[i, i, i, i]", x->c_min, x->group, x->K, as->nominal[u]));
    }
    for (int i = 0; i < as->n_stages; i++)
        json_array_append_new(d0, json_integer(as->depth0[i]));
    return json_pack("{s:o, s:o}", "units", units, "depth0", d0);
}

static json_t *rules_json(const adapter *a)
{
    const elastic *e = &a->el;
    int ns = a->st->as.n_stages;
    return json_pack("{s:o, s:o, s:o, s:o, s:I}", "w_up", nas_int_array(e->w_up, e->n_units),
                     "w_down", nas_int_array(e->w_down, e->n_units), "d_up",
                     nas_int_array(e->d_up, ns), "d_down", nas_int_array(e->d_down, ns),
                     "settle_until", (json_int_t)a->settle_until);
}

static int save_checkpoint(search *s, long step, errbuf *eb)
{
    adapter *a = s->a;
    adapt_state *st = a->st;
    net *m = &st->super;
    if (a->j.d->world > 1 && m->n_buffers > 0)
        dist_allreduce_mean_f32(m->buffers, m->n_buffers);
    if (a->j.d->rank != 0)
        return 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/search-%08ld.safetensors", a->j.env->out_dir, step);
    st_writer *w = st_writer_new();
    st_writer_meta(w, "kind", "adapt-search");
    char *t = compact(modelcfg_to_explicit_json(&st->as.sp.super));
    st_writer_meta(w, "model", t);
    free(t);
    t = compact(space_json(&st->as));
    st_writer_meta(w, "space", t);
    free(t);
    t = compact(elastic_events_json(&a->el, a->j.steps_per_epoch));
    st_writer_meta(w, "events", t);
    free(t);
    t = compact(rules_json(a));
    st_writer_meta(w, "rules", t);
    free(t);
    net_add_state(m, w, "");
    net_add_param_like(m, w, "optim.m.", m->opt_m);
    int na = (int)(st->ch.n_alpha ? st->ch.n_alpha : 1), nb = st->dc.n ? st->dc.n : 1;
    st_writer_add_f32(w, "arch.alpha", 1, &na, st->ch.alpha);
    st_writer_add_f32(w, "arch.alpha_momentum", 1, &na, st->ch.mom);
    st_writer_add_f32(w, "arch.beta", 1, &nb, st->dc.beta);
    st_writer_add_f32(w, "arch.beta_momentum", 1, &nb, st->dc.mom);
    int64_t sv = step;
    st_writer_add(w, "train.step", ST_I64, 0, NULL, &sv);
    int rc = st_writer_save(w, path, eb);
    st_writer_free(w);
    if (rc == 0)
        nas_keep_checkpoint(&a->j, path, step);
    return rc;
}

/* The state of a checkpoint's metadata: config, grids, nominal widths. */
static int restore_state(adapter *a, const st_file *f, errbuf *eb)
{
    const char *model = st_meta(f, "model"), *space = st_meta(f, "space");
    json_t *mj = model ? json_loads(model, 0, NULL) : NULL;
    json_t *sj = space ? json_loads(space, 0, NULL) : NULL;
    json_t *units = json_object_get(sj, "units"), *d0 = json_object_get(sj, "depth0");
    model_cfg c;
    field_errors fe;
    fe_init(&fe);
    adapt_space as;
    memset(&as, 0, sizeof as);
    int rc = 0;
    if (mj == NULL || modelcfg_parse(&c, mj, "model", &fe) != 0 || !json_is_array(units) ||
        !json_is_array(d0))
        rc = err_set(eb, ERR_FORMAT, "bad model or space metadata");
    else if ((rc = as_init_super(&as, &c, eb)) == 0 &&
             (json_array_size(units) != (size_t)as.sp.n_units ||
              json_array_size(d0) != (size_t)as.n_stages))
        rc = err_set(eb, ERR_FORMAT, "space metadata does not match the model (%zu units, %d)",
                     json_array_size(units), as.sp.n_units);
    for (int u = 0; rc == 0 && u < as.sp.n_units; u++) {
        int lo, g, K, nom;
        if (json_unpack(json_array_get(units, (size_t)u), "[iiii]", &lo, &g, &K, &nom) != 0 ||
            lo < 1 || g < 1 || K < 0 || lo + K * g != as.sp.units[u].channels) {
            rc =
                err_set(eb, ERR_FORMAT, "space metadata: bad grid of unit %s", as.sp.units[u].name);
            break;
        }
        ps_set_grid(&as.sp, u, lo, g, K);
        as.nominal[u] = nom;
    }
    for (int i = 0; rc == 0 && i < as.n_stages; i++)
        as.depth0[i] = (int)json_integer_value(json_array_get(d0, (size_t)i));
    json_decref(mj);
    json_decref(sj);
    if (rc != 0) {
        as_deinit(&as);
        return rc;
    }
    adapt_state *st = adapt_state_new(&as, a->j.b, a->j.spec->seed, eb);
    if (st == NULL)
        return ERR_FORMAT;
    adapt_state_free(a->st);
    a->st = st;
    return 0;
}

static void restore_rules(adapter *a, const st_file *f)
{
    const char *ev = st_meta(f, "events"), *rules = st_meta(f, "rules");
    json_t *ej = ev ? json_loads(ev, 0, NULL) : NULL,
           *rj = rules ? json_loads(rules, 0, NULL) : NULL;
    elastic_events_restore(&a->el, ej);
    elastic *e = &a->el;
    if (e->n_units != a->st->as.sp.n_units)
        elastic_resize(e, a->st->as.sp.n_units);
    const char *keys[4] = {"w_up", "w_down", "d_up", "d_down"};
    int *dst[4] = {e->w_up, e->w_down, e->d_up, e->d_down};
    int lens[4] = {e->n_units, e->n_units, a->st->as.n_stages, a->st->as.n_stages};
    for (int k = 0; k < 4; k++) {
        json_t *arr = json_object_get(rj, keys[k]);
        for (int i = 0; i < lens[k] && (size_t)i < json_array_size(arr); i++)
            dst[k][i] = (int)json_integer_value(json_array_get(arr, (size_t)i));
    }
    a->settle_until = (long)json_integer_value(json_object_get(rj, "settle_until"));
    json_decref(ej);
    json_decref(rj);
}

static const char *const SEARCH_PREFIXES[] = {"optim.", "train.", "arch.", NULL};

int dna_load_checkpoint(adapter *a, const char *path, long *step, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    int64_t sv = 0;
    const char *kind = st_meta(f, "kind");
    if (kind == NULL || strcmp(kind, "adapt-search") != 0)
        rc = err_set(eb, ERR_FORMAT, "not an adapt-search checkpoint (kind %s)",
                     kind ? kind : "missing");
    else
        rc = restore_state(a, f, eb);
    if (rc == 0) {
        adapt_state *st = a->st;
        size_t na = st->ch.n_alpha ? st->ch.n_alpha : 1, nb = (size_t)(st->dc.n ? st->dc.n : 1);
        if ((rc = net_load_state(&st->super, f, SEARCH_PREFIXES, eb)) == 0 &&
            (rc = net_read_param_like(&st->super, f, "optim.m.", st->super.opt_m, eb)) == 0 &&
            (rc = st_read_f32(f, "arch.alpha", st->ch.alpha, na, eb)) == 0 &&
            (rc = st_read_f32(f, "arch.alpha_momentum", st->ch.mom, na, eb)) == 0 &&
            (rc = st_read_f32(f, "arch.beta", st->dc.beta, nb, eb)) == 0 &&
            (rc = st_read_f32(f, "arch.beta_momentum", st->dc.mom, nb, eb)) == 0 &&
            (rc = st_read_i64(f, "train.step", &sv, 1, eb)) == 0 && sv < 0)
            rc = err_set(eb, ERR_FORMAT, "negative train.step");
        if (rc == 0) {
            adapt_update(st);
            restore_rules(a, f);
        }
    }
    st_close(f);
    if (rc != 0)
        return err_prefix(eb, rc, "checkpoint %s", path);
    *step = (long)sv;
    return 0;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* The target and its bands as metric points at the search's first step, so
 * that a dashboard can draw expected_mflops against them while it runs:
 * target/mflops, target/band_low_mflops and target/band_high_mflops (the
 * band the derived network must meet), target/deadband_low_mflops (where
 * the budget loss stops pulling, band * target). */
static void emit_target(const adapter *a, long step)
{
    nas_emit(&a->j, "target/mflops", a->target, step);
    nas_emit(&a->j, "target/band_low_mflops", a->target * (1 - ADAPT_TARGET_TOL), step);
    nas_emit(&a->j, "target/band_high_mflops", a->target * (1 + ADAPT_TARGET_TOL), step);
    nas_emit(&a->j, "target/deadband_low_mflops", a->target * a->as.search.band, step);
}

int dna_search(adapter *a, long start, errbuf *eb)
{
    search s;
    memset(&s, 0, sizeof s);
    s.a = a;
    net_init(&s.min_net);
    loader *ld = NULL;
    int rc = build_min(&s, eb);
    if (rc != 0)
        goto done;
    nas_job *j = &a->j;
    loader_opts lo = {.batch = j->b,
                      .rank = j->d->rank,
                      .world = j->d->world,
                      .seed = j->spec->seed,
                      .train = 1,
                      .crop_padding = j->spec->data.crop_padding,
                      .hflip = j->spec->data.hflip};
    ld = loader_new(&j->train, &lo);
    nas_say(j, "info",
            "dna: %d units, %zu width and %d depth parameters, %d stages; target %.3f MFLOPs, "
            "existing network %.3f, supernet %.3f; %ld warm-up + %ld search steps; elastic %s",
            a->st->as.sp.n_units, a->st->ch.n_alpha, a->st->dc.n, a->st->as.n_stages, a->target,
            a->full_mflops, modelcfg_macs(&a->st->as.sp.super) / 1e6, a->warmup_steps,
            a->total_steps - a->warmup_steps, a->as.elastic.enabled ? "on" : "off");
    emit_target(a, start);
    sums acc = {0};
    double t0 = nas_now();
    long step = start;
    while (step < a->total_steps) {
        int epoch = (int)(step / j->steps_per_epoch);
        loader_start_epoch(ld, epoch, step % j->steps_per_epoch);
        long epoch_end = (long)(epoch + 1) * j->steps_per_epoch;
        while (step < epoch_end) {
            if (nas_cancel_now(j)) {
                rc = save_checkpoint(&s, step, eb);
                if (rc == 0)
                    rc = err_set(eb, ERR_CANCELLED, "cancelled in the search at step %ld", step);
                goto done;
            }
            int n = loader_next(ld, j->x, j->y);
            if (n != j->b) {
                log_error("loader returned %d samples at step %ld, expected %d", n, step, j->b);
                abort();
            }
            if ((rc = sandwich(&s, step, &acc, eb)) != 0)
                goto done;
            if (step >= a->warmup_steps && step >= a->settle_until)
                arch_step(&s, step, &acc);
            if (check_due(a, step)) {
                int changes = elastic_point(&s, step, eb);
                if (changes < 0) {
                    rc = changes;
                    goto done;
                }
            }
            step++;
            if (step % LOG_EVERY == 0 || step == epoch_end)
                log_point(&s, step, &acc);
            const job_sink *k = nas_sink(j);
            if (k != NULL && k->progress != NULL)
                k->progress(k->ctx, step, a->total_steps + j->retrain_steps,
                            acc.n > 0 ? acc.ce / acc.n : 0.0,
                            (double)(step - start) * a->as.search.batch_size / (nas_now() - t0));
            if (j->spec->ckpt_every_steps > 0 && step % j->spec->ckpt_every_steps == 0 &&
                step < epoch_end && (rc = save_checkpoint(&s, step, eb)) != 0)
                goto done;
        }
        if ((rc = epoch_point(&s, step, eb)) != 0 || (rc = save_checkpoint(&s, step, eb)) != 0)
            goto done;
    }
    a->top1_super = nas_evaluate(j, &a->st->super, &j->test);
done:
    loader_free(ld);
    net_deinit(&s.min_net);
    free(s.w);
    return rc;
}
